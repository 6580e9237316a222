//! `pbxkit-dialplan`: extension lookups in a context the size of a large PBX
//! (10,000 exact extensions and 1,000 patterns). No peer crate does Asterisk
//! extension matching, so the group has pbxkit alone.
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use pbxkit_dialplan::{ExtensionTable, Pattern};

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

criterion_group!(benches, lookup);
criterion_main!(benches);
