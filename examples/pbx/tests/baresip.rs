//! Two real softphones (baresip, run headless) register to the PBX with digest
//! authentication and call each other through it; audio flows both ways through the
//! PBX's media relay. Skipped (with a message) only when baresip is absent;
//! scripts/test installs it (Debian package baresip-core).
//!
//! What ../shared/TESTING.md says about driving baresip 1.0 applies: the `ausine`
//! source needs 48 kHz stereo, `sip_listen` also opens TLS on the next port, and calls
//! are placed through the `ctrl_tcp` module (netstring JSON commands).
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

mod common;

use common::{Pbx, free_port, temp_dir};
use std::io::Write;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn has_baresip() -> bool {
    let found = Command::new("baresip")
        .arg("-h")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        eprintln!(
            "SKIPPED: baresip is not installed (Debian package baresip-core; scripts/test installs it)"
        );
    }
    found
}

/// A port P with P and P+1 free on UDP and TCP (baresip takes P+1 for TLS).
fn free_pair() -> u16 {
    for _ in 0..100 {
        let p = free_port();
        let Some(next) = p.checked_add(1) else {
            continue;
        };
        let free = |port: u16| {
            UdpSocket::bind(("127.0.0.1", port)).is_ok()
                && TcpListener::bind(("127.0.0.1", port)).is_ok()
        };
        if free(p) && free(next) {
            return p;
        }
    }
    panic!("no free port pair");
}

/// A baresip process with its own configuration, killed when dropped.
struct Softphone {
    child: Child,
    control: u16,
    log: PathBuf,
}

impl Softphone {
    fn start(dir: &Path, user: &str, password: &str, pbx: u16) -> Softphone {
        let sip = free_pair();
        let control = free_port();
        std::fs::create_dir_all(dir).unwrap();
        let config = format!(
            "poll_method epoll\nsip_listen 127.0.0.1:{sip}\nnet_interface 127.0.0.1\n\
             audio_player aubridge,nil\naudio_alert aubridge,nil\naudio_source ausine,440\n\
             ausrc_srate 48000\nausrc_channels 2\n\
             module_path /usr/lib/baresip/modules\nmodule g711.so\nmodule ausine.so\n\
             module aubridge.so\nmodule account.so\nmodule menu.so\nmodule ctrl_tcp.so\n\
             ctrl_tcp_listen 127.0.0.1:{control}\n"
        );
        std::fs::write(dir.join("config"), config).unwrap();
        std::fs::write(
            dir.join("accounts"),
            format!(
                "<sip:{user}@127.0.0.1:{pbx}>;auth_pass={password};answermode=auto;regint=60\n"
            ),
        )
        .unwrap();
        let log = dir.join("baresip.log");
        let child = Command::new("baresip")
            .arg("-f")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Softphone {
            child,
            control,
            log,
        }
    }

    /// Sends a ctrl_tcp command (a netstring of JSON).
    fn command(&self, command: &str, params: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut stream = loop {
            match TcpStream::connect(("127.0.0.1", self.control)) {
                Ok(s) => break s,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("baresip control port: {e}"),
            }
        };
        let json = format!(r#"{{"command":"{command}","params":"{params}","token":"t"}}"#);
        stream
            .write_all(format!("{}:{json},", json.len()).as_bytes())
            .unwrap();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Softphone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits (bounded) until `found` holds on the text of `file`; returns that text.
fn wait_for(file: &Path, what: &str, found: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        if found(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The log without terminal colour codes.
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The number after `key=` on the line.
fn field(line: &str, key: &str) -> u64 {
    let at = line.find(&format!("{key}=")).unwrap() + key.len() + 1;
    line[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap()
}

#[test]
fn two_baresip_phones_call_each_other_with_audio_both_ways() {
    if !has_baresip() {
        return;
    }
    let dir = temp_dir("baresip");
    let port = free_port();
    let _pbx = Pbx::start(dir.clone(), port);
    let pbx_log = dir.join("pbx.log");
    let alice = Softphone::start(&dir.join("alice"), "1000", "pbx1000pw", port);
    let bob = Softphone::start(&dir.join("bob"), "1001", "pbx1001pw", port);
    wait_for(&pbx_log, "both registrations", |t| {
        let t = plain(t);
        t.contains("registered user=1000") && t.contains("registered user=1001")
    });
    alice.command("dial", &format!("sip:1001@127.0.0.1:{port}"));
    // Bob answers by himself (answermode=auto); let audio flow for a while.
    wait_for(&alice.log, "the call to be established", |t| {
        t.contains("Call established")
    });
    std::thread::sleep(Duration::from_secs(2));
    alice.command("hangup", "");
    let log = plain(&wait_for(&pbx_log, "the end of the call", |t| {
        plain(t).contains("call ended")
    }));
    let ended = log.lines().find(|l| l.contains("call ended")).unwrap();
    let (a_to_b, b_to_a) = (field(ended, "rtp_a_to_b"), field(ended, "rtp_b_to_a"));
    // 2 s of 20 ms packets is 100 each way; allow for start-up.
    assert!(a_to_b > 50 && b_to_a > 50, "{ended}");
    assert!(bob.log().contains("answering call"), "{}", bob.log());
    // baresip writes its end of the call after the PBX logged it: waited for,
    // bounded (it fails with alice's log after 20 s).
    wait_for(&alice.log, "alice's call to end", |t| {
        t.contains("terminated")
    });
}
