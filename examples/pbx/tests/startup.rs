//! The binary starts on its embedded default, prints its ports and users (with passwords
//! generated on first run, the same on the next), and exits 0 on SIGINT.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The binary on its embedded default, run in `dir`, up to its ready line: the process,
/// its banner, and the rest of its output as it comes.
fn start_on_default(dir: &std::path::Path) -> (Child, Vec<String>, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pbxkit"))
        .current_dir(dir)
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
    (child, banner, rx)
}

/// Sends SIGINT and checks that the PBX exits 0 within 10 s, saying it stopped.
fn stop_on_sigint(mut child: Child, rx: mpsc::Receiver<String>) {
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

/// The users' passwords as the banner prints them (`  1000   password XXX  User 1000`).
fn banner_passwords(banner: &[String]) -> Vec<(String, String)> {
    banner
        .iter()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                [exten, "password", password, ..] => {
                    Some(((*exten).to_owned(), (*password).to_owned()))
                }
                _ => None,
            }
        })
        .collect()
}

// One test for both runs: the embedded default's SIP port (0.0.0.0:5060) can't be
// changed without a file, so two tests starting it at once would clash.
#[test]
fn starts_on_embedded_default_with_generated_passwords_and_stops_on_sigint() {
    // Run where the default data directory (./pbxkit-data) may be created.
    let dir = std::env::temp_dir().join(format!("pbxkit-startup-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (child, banner, rx) = start_on_default(&dir);
    let text = banner.join("\n");
    assert!(text.contains("udp+tcp 0.0.0.0:5060"), "{text}");
    assert!(text.contains("udp 10000-20000"), "{text}");
    assert!(text.contains("provisioning  tcp 127.0.0.1:8667"), "{text}");
    assert!(text.contains("HTTP API      tcp 127.0.0.1:9486"), "{text}");
    // The API account's password is generated like the users'.
    let admin = banner
        .iter()
        .find_map(|l| l.strip_prefix("API user admin password "))
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("no API user in {text}"));
    assert_ne!(admin, "pbxadminpw", "a published password");
    assert!(admin.len() >= 12, "{admin}");
    // What it offers beside the users: a queue and a conference room.
    assert!(text.contains("queue 3100   support"), "{text}");
    assert!(text.contains("conference 4000   meeting"), "{text}");
    for exten in 1000..=1009 {
        assert!(
            text.contains(&format!("  {exten} ")),
            "user {exten} missing: {text}"
        );
    }
    let first = banner_passwords(&banner);
    assert_eq!(first.len(), 10, "{text}");
    for (exten, password) in &first {
        assert!(password.len() >= 12, "{exten}: {password}");
        assert_ne!(password, &format!("pbx{exten}pw"), "a published password");
        assert!(
            password.chars().all(|c| c.is_ascii_alphanumeric()),
            "{password}"
        );
    }
    let distinct: std::collections::HashSet<_> = first.iter().map(|(_, p)| p).collect();
    assert_eq!(distinct.len(), first.len(), "{first:?}");
    let stored = std::fs::read_to_string(dir.join("pbxkit-data/passwords.json")).unwrap();
    assert!(stored.contains(&first[0].1), "{stored}");
    stop_on_sigint(child, rx);

    // The second run reuses them.
    let (child, banner, rx) = start_on_default(&dir);
    assert_eq!(banner_passwords(&banner), first);
    stop_on_sigint(child, rx);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_config_warns_about_published_and_short_passwords() {
    let dir = std::env::temp_dir().join(format!("pbxkit-weak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pbxkit"))
        .arg("--print-default-config")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let check = |name: &str, text: &str| {
        let file = dir.join(name);
        std::fs::write(&file, text).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_pbxkit"))
            .args(["check-config", file.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "warnings do not fail the check");
        String::from_utf8(out.stderr).unwrap()
    };
    let published = check("published.toml", &text);
    for exten in 1000..=1009 {
        assert!(
            published.contains(&format!(
                "warning: the password of {exten} is one of the published example passwords"
            )),
            "{published}"
        );
    }
    let fixed = text
        .replace("\"pbx1000pw\"", "\"a long and private one\"")
        .replace("\"pbx1001pw\"", "\"short pw\"");
    let warned = check("fixed.toml", &fixed);
    assert!(!warned.contains("password of 1000 "), "{warned}");
    assert!(
        warned.contains("warning: the password of 1001 is shorter than 12 characters"),
        "{warned}"
    );
    let _ = std::fs::remove_dir_all(&dir);
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
