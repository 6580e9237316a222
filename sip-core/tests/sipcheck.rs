//! The `sipcheck` example run as users run it, on the RFC 4475 files.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::process::Command;

#[test]
fn sipcheck_reports_each_file() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/rfc4475");
    let out = Command::new(env!("CARGO"))
        .args([
            "run",
            "--quiet",
            "-p",
            "pbxkit-sip",
            "--example",
            "sipcheck",
            "--",
        ])
        .args([
            format!("{dir}/wsinv.sip"),
            format!("{dir}/noreason.sip"),
            format!("{dir}/badvers.sip"),
            format!("{dir}/missing.sip"),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    assert_eq!(lines[0], format!("{dir}/wsinv.sip: OK INVITE"));
    assert_eq!(lines[1], format!("{dir}/noreason.sip: OK 100"));
    assert!(
        lines[2].starts_with(&format!(
            "{dir}/badvers.sip: ERR version: start line: SIP/2.0 at byte "
        )),
        "{}",
        lines[2]
    );
    assert!(
        lines[3].starts_with(&format!("{dir}/missing.sip: ERR io: ")),
        "{}",
        lines[3]
    );
    assert_eq!(out.status.code(), Some(1));
}
