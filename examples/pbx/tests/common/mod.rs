//! What the end-to-end tests share: the PBX process with a test configuration.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
#![allow(dead_code, reason = "each test file uses part of this")]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The PBX process, stopped (SIGKILL) when dropped.
pub(crate) struct Pbx {
    child: Child,
    pub(crate) addr: SocketAddr,
    /// Where its REST API listens (a port the system chose).
    pub(crate) api: SocketAddr,
    /// Where its provisioning server listens.
    pub(crate) provisioning: SocketAddr,
    /// What it printed up to its ready line.
    pub(crate) banner: Vec<String>,
}

impl Pbx {
    pub(crate) fn start(dir: PathBuf, port: u16) -> Pbx {
        Self::start_with(dir, port, "")
    }

    /// Starts the PBX with `extra` appended to its configuration (more users, say).
    pub(crate) fn start_with(dir: PathBuf, port: u16, extra: &str) -> Pbx {
        Self::start_edited(dir, port, |c| c + extra)
    }

    /// Starts the PBX on the test configuration as changed by `edit`. The users
    /// have no voicemail box there, so that what callers get when nobody answers
    /// (480, 486, a forward) shows; [`Pbx::start_with_voicemail`] keeps them.
    pub(crate) fn start_edited(dir: PathBuf, port: u16, edit: impl Fn(String) -> String) -> Pbx {
        Self::start_edited_keeping(dir, port, |c| {
            let without: Vec<&str> = c
                .lines()
                .filter(|l| !l.starts_with("voicemail = \""))
                .collect();
            edit(without.join("\n") + "\n")
        })
    }

    /// Starts the PBX on the test configuration, the users' voicemail boxes
    /// kept, as changed by `edit`.
    pub(crate) fn start_with_voicemail(
        dir: PathBuf,
        port: u16,
        edit: impl Fn(String) -> String,
    ) -> Pbx {
        Self::start_edited_keeping(dir, port, edit)
    }

    fn start_edited_keeping(dir: PathBuf, port: u16, edit: impl Fn(String) -> String) -> Pbx {
        std::fs::create_dir_all(&dir).unwrap();
        let config = pbxkit_default_config()
            .replace(
                "listen = \"0.0.0.0:5060\"",
                &format!("listen = \"127.0.0.1:{port}\""),
            )
            .replace(
                "data_dir = \"pbxkit-data\"",
                &format!("data_dir = \"{}\"", dir.join("data").display()),
            )
            .replace("ring_time = 30", "ring_time = 3")
            .replace("listen = \"127.0.0.1:9486\"", "listen = \"127.0.0.1:0\"")
            .replace(
                "http_listen = \"127.0.0.1:8667\"",
                "http_listen = \"127.0.0.1:0\"",
            );
        let config = edit(config);
        let file = dir.join("pbx.toml");
        std::fs::write(&file, config).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_pbxkit"))
            .args(["--config", file.to_str().unwrap()])
            .stdout(Stdio::piped())
            // The log goes to pbx.log in the test's directory (tests may read it), or
            // to the terminal with PBXKIT_TEST_LOG set; with each relay's counters at
            // its end (debug lines of `pbxkit::media`).
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or("info,pbxkit::media=debug".into()),
            )
            .stderr(if std::env::var_os("PBXKIT_TEST_LOG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::from(std::fs::File::create(dir.join("pbx.log")).unwrap())
            })
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut banner = Vec::new();
        loop {
            let line = rx
                .recv_timeout(Duration::from_secs(20))
                .expect("pbxkit prints ready");
            let ready = line.starts_with("ready");
            banner.push(line);
            if ready {
                break;
            }
        }
        let api = banner
            .iter()
            .find_map(|l| l.trim().strip_prefix("HTTP API      tcp "))
            .and_then(|rest| rest.split(' ').next())
            .expect("the banner gives the API's address")
            .parse()
            .unwrap();
        let provisioning = banner
            .iter()
            .find_map(|l| l.trim().strip_prefix("provisioning  tcp "))
            .and_then(|rest| rest.split(' ').next())
            .expect("the banner gives the provisioning address")
            .parse()
            .unwrap();
        Pbx {
            child,
            addr: format!("127.0.0.1:{port}").parse().unwrap(),
            api,
            provisioning,
            banner,
        }
    }

    /// Sends SIGTERM and waits up to `limit` for the process to exit; its exit status.
    pub(crate) fn terminate(&mut self, limit: Duration) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "pbxkit still running after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends `signal` (`HUP`, say) to the PBX.
    pub(crate) fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    }

    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Pbx {
    fn drop(&mut self) {
        self.kill();
    }
}

pub(crate) fn pbxkit_default_config() -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_pbxkit"))
        .arg("--print-default-config")
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap()
}

pub(crate) fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pbxkit-e2e-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}
