//! The binary starts on its embedded default, prints its ports and users, and exits 0 on SIGINT.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

#[test]
fn starts_on_embedded_default_and_stops_on_sigint() {
    // Run where the default data directory (./pbxkit-data) may be created.
    let dir = std::env::temp_dir().join(format!("pbxkit-startup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_pbxkit"))
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start pbxkit");
    let stdout = child.stdout.take().unwrap();

    // Read the banner on a thread so that a hung binary fails the test instead of blocking it.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut banner = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => {
                let ready = line.starts_with("ready");
                banner.push(line);
                if ready {
                    break;
                }
            }
            Err(e) => {
                let _ = child.kill();
                panic!("no ready line ({e}); got {banner:#?}");
            }
        }
    }
    let text = banner.join("\n");
    assert!(text.contains("udp+tcp 0.0.0.0:5060"), "{text}");
    assert!(text.contains("udp 10000-20000"), "{text}");
    for exten in 1000..=1009 {
        assert!(
            text.contains(&format!("  {exten} ")),
            "user {exten} missing: {text}"
        );
    }

    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    // Bounded wait: poll the child for up to 10 s.
    for _ in 0..200 {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            // The reader thread ends at EOF, which closes the channel.
            let mut rest = Vec::new();
            while let Ok(line) = rx.recv_timeout(Duration::from_secs(5)) {
                rest.push(line);
            }
            assert!(rest.iter().any(|l| l.contains("stopped")), "{rest:?}");
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("pbxkit did not stop within 10 s of SIGINT");
}

#[test]
fn print_default_config_prints_the_embedded_toml() {
    let out = Command::new(env!("CARGO_BIN_EXE_pbxkit"))
        .arg("--print-default-config")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("[[users]]") && text.contains("exten = \"1009\""));
}

#[test]
fn unreadable_config_file_exits_1() {
    let out = Command::new(env!("CARGO_BIN_EXE_pbxkit"))
        .args(["--config", "/nonexistent/pbxkit.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("cannot read /nonexistent/pbxkit.toml"),
        "{err}"
    );
}

#[test]
fn check_config_reports_file_line_and_column() {
    let dir = std::env::temp_dir().join(format!("pbxkit-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_pbxkit"))
        .arg("--print-default-config")
        .output()
        .unwrap();
    std::fs::write(&good, &out.stdout).unwrap();
    let ok = Command::new(env!("CARGO_BIN_EXE_pbxkit"))
        .args(["check-config", good.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(ok.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        text.replace("ring_time = 30", "ring_time = \"thirty\""),
    )
    .unwrap();
    let err = Command::new(env!("CARGO_BIN_EXE_pbxkit"))
        .args(["check-config", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(err.status.code(), Some(1));
    let message = String::from_utf8(err.stderr).unwrap();
    let line = text
        .lines()
        .position(|l| l.starts_with("ring_time"))
        .unwrap()
        + 1;
    assert!(
        message.starts_with(&format!("{}:{line}:", bad.display())),
        "{message}"
    );
}
