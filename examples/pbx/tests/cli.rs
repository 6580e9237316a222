//! The command-line tools as users and scripts run them: output, exit status, errors.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::process::{Command, Output};

fn pbxkit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pbxkit"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[test]
fn sip_check_reports_each_file() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../sip-core/tests/rfc4475");
    let files = [
        format!("{dir}/wsinv.sip"),
        format!("{dir}/noreason.sip"),
        format!("{dir}/badvers.sip"),
        format!("{dir}/nonexistent.sip"),
    ];
    let args: Vec<&str> = ["sip", "check"]
        .into_iter()
        .chain(files.iter().map(String::as_str))
        .collect();
    let out = pbxkit(&args);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], format!("{}: OK INVITE", files[0]));
    assert_eq!(lines[1], format!("{}: OK 100", files[1]));
    assert!(
        lines[2].starts_with(&format!("{}: ERR version: ", files[2])),
        "{}",
        lines[2]
    );
    assert!(
        lines[3].starts_with(&format!("{}: ERR io: ", files[3])),
        "{}",
        lines[3]
    );
    assert_eq!(out.status.code(), Some(1));
    let ok = pbxkit(&["sip", "check", &files[0]]);
    assert_eq!(ok.status.code(), Some(0));
}

#[test]
fn dialplan_order_follows_asterisk() {
    let out = pbxkit(&[
        "dialplan",
        "order",
        "_X.",
        "_1XXX",
        "1000",
        "_NXXX",
        "_1[0-2]XX",
        "_1!",
        "_100X",
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        stdout(&out),
        "1000\n_100X\n_1[0-2]XX\n_1XXX\n_1!\n_NXXX\n_X.\n"
    );
    let bad = pbxkit(&["dialplan", "order", "_1[2"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        String::from_utf8(bad.stderr)
            .unwrap()
            .starts_with("pbxkit dialplan order: _1[2: ")
    );
}

#[test]
fn dialplan_match_prints_the_winner_or_no_match() {
    let out = pbxkit(&[
        "dialplan", "match", "--number", "1042", "_X.", "_1XXX", "_10XX", "1000",
    ]);
    assert_eq!(
        (out.status.code(), stdout(&out)),
        (Some(0), "_10XX\n".into())
    );
    let exact = pbxkit(&["dialplan", "match", "--number", "1000", "_1XXX", "1000"]);
    assert_eq!(stdout(&exact), "1000\n");
    // Nothing found is an answer (exit 0), as for every tool; errors exit 1.
    let none = pbxkit(&["dialplan", "match", "--number", "2000", "_1XXX"]);
    assert_eq!(
        (none.status.code(), stdout(&none)),
        (Some(0), "no match\n".into())
    );
}

/// Every command that does something shows an example in its `--help`.
#[test]
fn every_subcommand_help_has_an_example() {
    let leaves: [&[&str]; 12] = [
        &["check-config"],
        &["sip", "check"],
        &["dialplan", "order"],
        &["dialplan", "explain"],
        &["dialplan", "match"],
        &["acd", "stats"],
        &["acd", "rule-check"],
        &["acd", "live"],
        &["provisioning", "render"],
        &["provisioning", "identify"],
        &["directory", "search"],
        &["directory", "reverse"],
    ];
    for leaf in leaves {
        let out = pbxkit(&[leaf, &["--help"]].concat());
        assert_eq!(out.status.code(), Some(0), "{leaf:?}");
        let help = stdout(&out);
        let example = format!("Example:\n  pbxkit {}", leaf.join(" "));
        assert!(help.contains(&example), "{leaf:?}: {help}");
    }
    // And no command is left out of that list.
    for group in ["sip", "dialplan", "acd", "provisioning", "directory"] {
        let help = stdout(&pbxkit(&[group, "--help"]));
        let listed = help
            .lines()
            .skip_while(|l| !l.starts_with("Commands:"))
            .skip(1)
            .take_while(|l| l.starts_with("  "))
            .filter_map(|l| l.split_whitespace().next())
            .filter(|c| *c != "help")
            .count();
        let tested = leaves.iter().filter(|l| l[0] == group).count();
        assert_eq!(listed, tested, "{group}: {help}");
    }
}

#[test]
fn help_describes_every_level() {
    for args in [
        vec!["--help"],
        vec!["sip", "--help"],
        vec!["sip", "check", "--help"],
        vec!["dialplan", "--help"],
        vec!["dialplan", "match", "--help"],
    ] {
        let out = pbxkit(&args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(stdout(&out).contains("Usage:"), "{args:?}");
    }
}

#[test]
fn acd_rule_check_parenthesises_or_points_at_the_column() {
    let out = pbxkit(&["acd", "rule-check", "french > 50 & (sales | support ! 0)"]);
    assert_eq!(
        (out.status.code(), stdout(&out)),
        (
            Some(0),
            "((french > 50) & (sales | (support ! 0)))\n".into()
        )
    );
    let bad = pbxkit(&["acd", "rule-check", "french > & sales"]);
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8(bad.stderr).unwrap();
    assert!(
        err.starts_with("pbxkit acd rule-check: column 10: "),
        "{err}"
    );
}

fn temp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("pbxkit-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn provisioning_render_and_identify() {
    let dir = temp("render");
    let user = dir.join("user");
    let plugin = dir.join("plugin");
    std::fs::create_dir_all(&user).unwrap();
    std::fs::create_dir_all(&plugin).unwrap();
    std::fs::write(
        plugin.join("base.tpl"),
        "[{% block lines %}{% endblock %}]\n",
    )
    .unwrap();
    std::fs::write(plugin.join("T46S.tpl"), "{% extends 'base.tpl' %}{% block lines %}{% for n, l in sip_lines.items() %}{{ n }}={{ l.number|e }};{% endfor %}{% endblock %}").unwrap();
    std::fs::write(
        user.join("base.tpl"),
        "user:[{% block lines %}{% endblock %}]",
    )
    .unwrap();
    let ctx = dir.join("ctx.json");
    std::fs::write(
        &ctx,
        r#"{"sip_lines": {"1": {"number": "1000"}, "2": {"number": "<1001>"}}}"#,
    )
    .unwrap();
    let out = pbxkit(&[
        "provisioning",
        "render",
        "--templates",
        user.to_str().unwrap(),
        "--templates",
        plugin.to_str().unwrap(),
        "--context",
        ctx.to_str().unwrap(),
        "T46S.tpl",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The user's base.tpl wins; no newline is added.
    assert_eq!(stdout(&out), "user:[1=1000;2=&lt;1001&gt;;]");
    std::fs::write(&ctx, "{ not json").unwrap();
    let bad = pbxkit(&[
        "provisioning",
        "render",
        "--templates",
        plugin.to_str().unwrap(),
        "--context",
        ctx.to_str().unwrap(),
        "T46S.tpl",
    ]);
    assert_eq!(bad.status.code(), Some(1));

    let out = pbxkit(&[
        "provisioning",
        "identify",
        "--user-agent",
        "Yealink SIP-T46S 66.84.0.15 80:5e:c0:11:22:33",
    ]);
    assert_eq!(
        stdout(&out),
        "{\"vendor\":\"Yealink\",\"model\":\"T46S\",\"version\":\"66.84.0.15\",\"mac\":\"80:5e:c0:11:22:33\"}\n"
    );
    let out = pbxkit(&[
        "provisioning",
        "identify",
        "--tftp-file",
        "SEP001122AABBCC.cnf.xml",
    ]);
    assert!(
        stdout(&out).contains("\"mac\":\"00:11:22:aa:bb:cc\""),
        "{}",
        stdout(&out)
    );
}

#[test]
fn directory_search_and_reverse_on_csv() {
    let dir = temp("dir");
    let csv = dir.join("people.csv");
    std::fs::write(
        &csv,
        "firstname,lastname,number\nAlice,Martin,+33 1 23 45 67 89\nBob,Durand,0612345678\n",
    )
    .unwrap();
    let out = pbxkit(&[
        "directory",
        "search",
        "--csv",
        csv.to_str().unwrap(),
        "mart",
    ]);
    assert_eq!(
        stdout(&out),
        "{\"firstname\":\"Alice\",\"lastname\":\"Martin\",\"number\":\"+33 1 23 45 67 89\"}\n"
    );
    let out = pbxkit(&[
        "directory",
        "reverse",
        "--csv",
        csv.to_str().unwrap(),
        "--columns",
        "number",
        "06.12.34.56.78",
    ]);
    assert!(
        stdout(&out).contains("\"firstname\":\"Bob\""),
        "{}",
        stdout(&out)
    );
    let missing = pbxkit(&["directory", "search", "--csv", "/nonexistent.csv", "x"]);
    assert_eq!(missing.status.code(), Some(1));
    let file = csv.to_str().unwrap();
    // An international calling number finds the national one once the country is
    // known; without it, nothing (an answer: exit 0).
    let intl = ["directory", "reverse", "--csv", file, "+33 6 12 34 56 78"];
    let none = pbxkit(&intl);
    assert_eq!(
        (none.status.code(), stdout(&none)),
        (Some(0), String::new())
    );
    let found = pbxkit(&[&intl[..4], &["--country-code", "33", intl[4]]].concat());
    assert!(
        stdout(&found).contains("\"firstname\":\"Bob\""),
        "{found:?}"
    );
    // A misspelt column or a country code that is not one is an error, not silence.
    for bad in [
        vec![
            "directory",
            "reverse",
            "--csv",
            file,
            "--columns",
            "numbre",
            "0612345678",
        ],
        vec![
            "directory",
            "search",
            "--csv",
            file,
            "--columns",
            "nom",
            "bob",
        ],
        vec![
            "directory",
            "reverse",
            "--csv",
            file,
            "--country-code",
            "+33",
            "0612345678",
        ],
    ] {
        let out = pbxkit(&bad);
        assert_eq!(out.status.code(), Some(1), "{bad:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("numbre") || err.contains("nom") || err.contains("+33"),
            "{err}"
        );
    }
}

#[test]
fn dialplan_explain_gives_the_decision_and_its_trace() {
    let out = pbxkit(&[
        "dialplan",
        "explain",
        "--from",
        "1000",
        "--number",
        "1001",
        "--at",
        "2026-11-23T10:00:00Z",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(text.contains("exact user '1001'"), "{text}");
    // The decision in words, not a Rust dump.
    let last = text.lines().last().unwrap();
    assert!(
        last.starts_with("=> ring 1001 for 30 s; no answer: "),
        "{text}"
    );
    assert!(!last.contains('{') && !last.contains("RingPlan"), "{text}");
    // The PBX's own service extensions, answered before the dialplan is asked.
    let echo = pbxkit(&["dialplan", "explain", "--from", "1000", "--number", "9000"]);
    assert_eq!(echo.status.code(), Some(0));
    assert!(stdout(&echo).ends_with("=> answered by the PBX: echo test: you hear yourself\n"));
    // A number nothing routes: what the PBX answers (exit 0, it is an answer).
    let none = pbxkit(&["dialplan", "explain", "--from", "1000", "--number", "4242"]);
    assert_eq!(none.status.code(), Some(0));
    let text = stdout(&none);
    assert!(text.contains("no entry for '4242'"), "{text}");
    assert!(text.ends_with("=> refused with 404 Not Found\n"), "{text}");
    let bad = pbxkit(&[
        "dialplan",
        "explain",
        "--from",
        "1000",
        "--number",
        "1001",
        "--at",
        "yesterday",
    ]);
    assert_eq!(bad.status.code(), Some(1));
}

#[test]
fn acd_stats_from_a_queue_log() {
    let dir = temp("stats");
    let log = dir.join("queue_log");
    // 09:00 period: one call answered after 10 s (talked 60 s), one abandoned after 20 s,
    // one turned away (CLOSED); then a malformed line.
    // A multiple of 900 s: the start of a 15-minute period.
    let base = 1_700_000_100u64;
    let text = format!(
        "{t0}|c1|sales|NONE|ENTERQUEUE||1000|1\n{t1}|c1|sales|Agent/1|CONNECT|10|c1|2\n{t2}|c1|sales|Agent/1|COMPLETECALLER|10|60|1\n\
         {t0}|c2|sales|NONE|ENTERQUEUE||1001|2\n{t3}|c2|sales|NONE|ABANDON|1|2|20\n{t0}|c3|sales|NONE|CLOSED|\nnot a queue_log line\n",
        t0 = base + 5,
        t1 = base + 15,
        t2 = base + 75,
        t3 = base + 25
    );
    std::fs::write(&log, text).unwrap();
    let out = pbxkit(&["acd", "stats", log.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let stats: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let period = &stats[0];
    assert_eq!(period["queue"], "sales");
    assert_eq!(period["period_start"], base);
    assert_eq!(
        (
            period["received"].as_u64(),
            period["answered"].as_u64(),
            period["abandoned"].as_u64(),
            period["closed"].as_u64()
        ),
        (Some(3), Some(1), Some(1), Some(1))
    );
    assert_eq!(period["answered_rate"], 0.5);
    assert_eq!(period["avg_talk"], 60.0);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("line 7") && err.contains("1 malformed line(s) skipped"),
        "{err}"
    );
    let table = pbxkit(&[
        "acd",
        "stats",
        "--format",
        "table",
        "--period",
        "1h",
        log.to_str().unwrap(),
    ]);
    // The table gives the period's start as a date (UTC), the JSON as Unix seconds.
    let table = stdout(&table);
    let row = table.lines().nth(1).unwrap();
    assert!(row.starts_with("sales"), "{table}");
    assert!(row.contains(" 2023-11-14 22:00 "), "{table}");
}

#[test]
fn error_paths_exit_1_with_a_message() {
    let cases: [&[&str]; 5] = [
        &["acd", "stats", "/nonexistent/queue_log"],
        &["provisioning", "identify", "--user-agent", "curl/8.0"],
        &[
            "provisioning",
            "render",
            "--templates",
            "/nonexistent",
            "--context",
            "/nonexistent.json",
            "base.tpl",
        ],
        &["check-config", "/nonexistent/pbx.toml"],
        &["dialplan", "match", "--number", "1", "_[5-1]"],
    ];
    for args in cases {
        let out = pbxkit(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?} says why on stderr");
    }
    // Usage errors are clap's (exit 2), never a panic.
    assert_eq!(pbxkit(&["sip", "check"]).status.code(), Some(2));
    assert_eq!(
        pbxkit(&[
            "provisioning",
            "identify",
            "--user-agent",
            "a",
            "--tftp-file",
            "b"
        ])
        .status
        .code(),
        Some(2)
    );
}
