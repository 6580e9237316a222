//! The JSON file store survives its writer being killed: a child process (this test
//! binary, run with `PBXKIT_STORE_CHILD` set) adds devices in a loop and reports each
//! acknowledged write on stdout; it is killed with SIGKILL at a random point, several
//! times, and each time the store loads, is valid, and holds at least every
//! acknowledged device.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use pbxkit_provisioning::model::{Config, Device, RawConfig};
use pbxkit_provisioning::store::{JsonFileStore, Store};
use serde_json::json;

const CHILD: &str = "PBXKIT_STORE_CHILD";

fn device(n: u64) -> Device {
    Device {
        id: Some(format!("dev{n}").as_str().into()),
        mac: Some(
            format!("00:15:65:00:{:02x}:{:02x}", (n >> 8) & 0xff, n & 0xff)
                .parse()
                .unwrap(),
        ),
        model: Some(format!("model-{n}")),
        config: Some(format!("cfg{n}").as_str().into()),
        ..Device::default()
    }
}

/// The writer, when run as the child; a no-op in a normal test run.
#[test]
fn child_writer() {
    let Some(path) = std::env::var_os(CHILD) else {
        return;
    };
    let mut store = JsonFileStore::open(PathBuf::from(path)).unwrap();
    let mut n = store.devices().count() as u64;
    loop {
        n += 1;
        let raw =
            json!({"sip_lines": {"1": {"username": format!("u{n}"), "password": "x".repeat(200)}}});
        store
            .put_config(Config {
                id: Some(format!("cfg{n}").as_str().into()),
                raw_config: RawConfig(raw.as_object().cloned().unwrap()),
                ..Config::default()
            })
            .unwrap();
        store.put_device(device(n)).unwrap();
        // Acknowledged: both writes returned, so both are on disk.
        println!("ok {n}");
    }
}

#[test]
fn killed_writer_leaves_a_valid_store() {
    let dir = std::env::temp_dir().join(format!("pbxkit-store-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("provd.json");
    let mut acknowledged = 0;
    for round in 0..4u64 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_writer", "--nocapture", "--test-threads=1"])
            .env(CHILD, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // Let it write a varying number of times, then kill it mid-loop.
        let target = acknowledged + 20 + round * 7;
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(n) = line.strip_prefix("ok ").and_then(|n| n.parse::<u64>().ok()) {
                acknowledged = n;
                if n >= target {
                    break;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(round * 3));
        child.kill().unwrap();
        // Acknowledgements printed before the kill landed still count.
        for line in lines {
            if let Some(n) = line
                .ok()
                .and_then(|l| l.strip_prefix("ok ").and_then(|n| n.parse::<u64>().ok()))
            {
                acknowledged = n;
            }
        }
        child.wait().unwrap();

        let store = JsonFileStore::open(&path).unwrap();
        let count = store.devices().count() as u64;
        assert!(
            count >= acknowledged,
            "round {round}: {count} devices, {acknowledged} acknowledged"
        );
        assert!(
            count <= acknowledged + 1,
            "round {round}: {count} devices, {acknowledged} acknowledged"
        );
        let configs = store.configs();
        for n in 1..=count {
            let dev = store.device(&format!("dev{n}").as_str().into()).unwrap();
            assert_eq!(dev, &device(n));
            // A device is written after its config: the config is always there.
            let raw = configs.effective(dev.config.as_ref().unwrap()).unwrap();
            assert_eq!(raw.sip_lines().unwrap()[&1].username, Some(format!("u{n}")));
        }
        acknowledged = count;
    }
    let _ = std::fs::remove_dir_all(&dir);
}
