//! The provisioning service, end to end: the pbxkit binary serves a configured
//! desk phone the file of its user's line, as the phone asks for it over HTTP.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

mod common;

use common::{Pbx, free_port, temp_dir};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

const YEALINK: &str = "Yealink SIP-T46S 66.84.0.15 80:5e:c0:11:22:33";

/// GETs `path` as a phone with `user_agent`: the status and the body.
fn fetch(server: SocketAddr, path: &str, user_agent: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(server).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {server}\r\nUser-Agent: {user_agent}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer.split(' ').nth(1).unwrap().parse().unwrap();
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

const DEVICE: &str = "\n[[devices]]\nmac = \"80:5e:c0:11:22:33\"\nuser = \"1001\"\n";

#[test]
fn a_configured_yealink_gets_its_users_line_and_follows_a_reload() {
    let dir = temp_dir("provisioning");
    let pbx = Pbx::start_with(dir.clone(), free_port(), DEVICE);
    let server = pbx.provisioning;
    assert!(server.ip().is_loopback());
    let (status, file) = fetch(server, "/805ec0112233.cfg", YEALINK);
    assert_eq!(status, 200, "{file}");
    for expected in [
        "account.1.user_name = 1001\n".to_owned(),
        "account.1.password = pbx1001pw\n".to_owned(),
        "account.1.display_name = User 1001\n".to_owned(),
        "account.1.sip_server.1.address = 127.0.0.1\n".to_owned(),
        format!("account.1.sip_server.1.port = {}\n", pbx.addr.port()),
    ] {
        assert!(file.contains(&expected), "{expected:?} missing:\n{file}");
    }
    // Another phone is not served the line.
    let stranger = "Yealink SIP-T46S 66.84.0.15 80:5e:c0:99:99:99";
    assert_eq!(fetch(server, "/805ec0999999.cfg", stranger).0, 404);
    assert_eq!(fetch(server, "/../etc/passwd", stranger).0, 403);

    // The user's new name is in the file the phone fetches after the reload; a
    // device removed from the configuration is served nothing.
    let file_path = dir.join("pbx.toml");
    let renamed = std::fs::read_to_string(&file_path)
        .unwrap()
        .replace("name = \"User 1001\"", "name = \"Bob Martin\"");
    std::fs::write(&file_path, &renamed).unwrap();
    pbx.signal("HUP");
    let mut file = String::new();
    for _ in 0..100 {
        file = fetch(server, "/805ec0112233.cfg", YEALINK).1;
        if file.contains("display_name = Bob Martin") {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        file.contains("account.1.display_name = Bob Martin\n"),
        "{file}"
    );
    std::fs::write(&file_path, renamed.replace(DEVICE, "\n")).unwrap();
    pbx.signal("HUP");
    let mut status = 200;
    for _ in 0..100 {
        status = fetch(server, "/805ec0112233.cfg", YEALINK).0;
        if status == 404 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(status, 404);
}

#[test]
fn a_device_with_a_bad_mac_or_an_unknown_user_is_refused_at_start() {
    let config = |extra: &str| common::pbxkit_default_config() + extra;
    for (extra, message) in [
        (
            "\n[[devices]]\nmac = \"80:5e:c0\"\nuser = \"1001\"\n",
            "not a MAC",
        ),
        (
            "\n[[devices]]\nmac = \"80:5e:c0:11:22:33\"\nuser = \"7777\"\n",
            "no user",
        ),
    ] {
        let dir = temp_dir("provisioning-bad");
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("bad.toml");
        std::fs::write(&file, config(extra)).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_pbxkit"))
            .args(["check-config", file.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(!out.status.success());
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(text.contains(message), "{text}");
    }
}
