//! `pbxkit-dialplan`: extension lookups in a context the size of a large PBX
//! (10,000 exact extensions and 1,000 patterns). No peer crate does Asterisk
//! extension matching, so the group has pbxkit alone.
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use pbxkit_dialplan::{CallAttempt, Caller, Config, Decision, Dialplan};
use pbxkit_dialplan::{ExtensionTable, Pattern};
use std::collections::HashMap;

/// 10,000 users `100000`..`109999` and 1,000 patterns: 900 literal-prefixed
/// outgoing routes (`_9NNNNXXXX`), 100 routes with sets and wildcards
/// (`_0[1-5]NNX.`).
fn table() -> ExtensionTable<u32> {
    let mut table = ExtensionTable::new();
    for n in 0..10_000u32 {
        let exten = Pattern::parse(&format!("{}", 100_000 + n)).expect("valid exten");
        table.insert(exten, n).expect("distinct");
    }
    for n in 0..900u32 {
        let pattern = Pattern::parse(&format!("_9{n:03}NXXX")).expect("valid pattern");
        table.insert(pattern, n).expect("distinct");
    }
    for n in 0..100u32 {
        let pattern = Pattern::parse(&format!("_0[1-5]{n:02}X.")).expect("valid pattern");
        table.insert(pattern, n).expect("distinct");
    }
    table
}

fn lookup(c: &mut Criterion) {
    let table = table();
    assert!(table.lookup("104242").is_some_and(|(p, _)| !p.is_pattern()));
    assert!(
        table
            .lookup("94212345")
            .is_some_and(|(p, _)| p.is_pattern())
    );
    assert!(
        table
            .lookup("0342123456")
            .is_some_and(|(p, _)| p.is_pattern())
    );
    assert!(table.lookup("77777").is_none());

    let mut group = c.benchmark_group("dialplan/lookup");
    group.bench_function("exact/pbxkit", |b| {
        b.iter(|| table.lookup(black_box("104242")))
    });
    group.bench_function("pattern/pbxkit", |b| {
        b.iter(|| table.lookup(black_box("94212345")))
    });
    group.bench_function("pattern-wildcard/pbxkit", |b| {
        b.iter(|| table.lookup(black_box("0342123456")))
    });
    group.bench_function("miss/pbxkit", |b| {
        b.iter(|| table.lookup(black_box("77777")))
    });
    group.bench_function("could-match-more/pbxkit", |b| {
        b.iter(|| table.could_match_more(black_box("942")))
    });
    group.finish();
}

/// The same PBX as `table()`, as a configuration: 10,000 users `100000`..`109999` in
/// "default" (which includes "to-extern") and 1,000 routes (900 `_9nnnNXXX`,
/// 100 `_0[1-5]nnX.`).
fn dialplan() -> Dialplan {
    let mut text = String::from(
        "[[contexts]]\nname = \"default\"\nkind = \"internal\"\nincludes = [\"to-extern\"]\n\
         ranges.users = [{ start = \"100000\", end = \"109999\" }]\n\
         [[contexts]]\nname = \"to-extern\"\nkind = \"outcall\"\n[[trunks]]\nname = \"sip\"\n",
    );
    for n in 0..10_000u32 {
        text.push_str(&format!(
            "[[users]]\nname = \"u{n}\"\nextension = \"{}\"\ncontext = \"default\"\nlines = [\"l{n}\"]\n",
            100_000 + n
        ));
    }
    for n in 0..900u32 {
        text.push_str(&format!(
            "[[outcalls]]\nname = \"r{n}\"\ncontext = \"to-extern\"\ntrunks = [\"sip\"]\npatterns = [{{ pattern = \"_9{n:03}NXXX\", strip = 1 }}]\n"
        ));
    }
    for n in 0..100u32 {
        text.push_str(&format!(
            "[[outcalls]]\nname = \"w{n}\"\ncontext = \"to-extern\"\ntrunks = [\"sip\"]\npatterns = [{{ pattern = \"_0[1-5]{n:02}X.\" }}]\n"
        ));
    }
    let config: Config = toml::from_str(&text).expect("valid TOML");
    Dialplan::new(config, jiff::tz::db()).expect("valid dialplan")
}

fn decide(c: &mut Criterion) {
    let d = dialplan();
    let state: HashMap<String, u32> = HashMap::new();
    let at: jiff::Timestamp = "2024-03-26T09:00:00Z".parse().expect("timestamp");
    let call = |dialed| CallAttempt {
        context: "default",
        caller: Caller {
            number: "100001",
            name: "Alice",
            user: Some("u1"),
        },
        dialed,
        at,
        user_state: &state,
    };
    let internal = call("104242");
    let outgoing = call("94212345");
    assert!(matches!(
        d.decide(&internal).expect("routed").decision,
        Decision::Ring(_)
    ));
    assert!(matches!(
        d.decide(&outgoing).expect("routed").decision,
        Decision::Trunks { .. }
    ));

    let mut group = c.benchmark_group("dialplan/decide");
    group.bench_function("internal/pbxkit", |b| {
        b.iter(|| d.decide(black_box(&internal)))
    });
    group.bench_function("outgoing/pbxkit", |b| {
        b.iter(|| d.decide(black_box(&outgoing)))
    });
    group.finish();
}

criterion_group!(benches, lookup, decide);
criterion_main!(benches);
