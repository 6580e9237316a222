//! Interoperability with a real peer: sipp's built-in `uac` scenario calls a minimal UAS
//! built on the Endpoint, and sipp's `uas` scenario answers calls placed by our UAC.
//! Skipped (with a message) only when sipp is not installed; scripts/test installs it.
#![cfg(feature = "tokio")]
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use pbxkit_sip::endpoint::{ClientEvent, Endpoint, EndpointConfig, Incoming};
use pbxkit_sip::transaction::{Target, TransportKind};
use pbxkit_sip::{HeaderName, Message, Method, StatusCode};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;
use tokio::time::timeout;

fn sipp() -> Option<&'static str> {
    let found = Command::new("sipp")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        eprintln!(
            "SKIPPED: sipp is not installed (Debian package sip-tester; scripts/test installs it)"
        );
    }
    found.then_some("sipp")
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn endpoint() -> Endpoint {
    Endpoint::bind(EndpointConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..EndpointConfig::default()
    })
    .await
    .unwrap()
}

const CALLS: u32 = 20;

#[tokio::test]
async fn sipp_uac_calls_our_uas() {
    let Some(sipp) = sipp() else { return };
    let mut uas = endpoint().await;
    let addr = uas.local_addr();
    let answered = tokio::spawn(async move {
        let (mut invites, mut byes) = (0, 0);
        while let Ok(Some(incoming)) = timeout(Duration::from_secs(30), uas.next()).await {
            let Incoming::Request(req) = incoming else {
                continue;
            };
            let tag = format!("t{}", invites + byes);
            match req.request.method() {
                Some(Method::Invite) => {
                    invites += 1;
                    req.respond(Message::response_to(
                        &req.request,
                        StatusCode::RINGING,
                        Some(&tag),
                    ))
                    .await
                    .unwrap();
                    let mut ok = Message::response_to(&req.request, StatusCode::OK, Some(&tag));
                    ok.headers_mut()
                        .push(HeaderName::Contact, format!("<sip:uas@{addr}>"));
                    req.respond(ok).await.unwrap();
                }
                Some(Method::Bye) => {
                    byes += 1;
                    req.respond(Message::response_to(&req.request, StatusCode::OK, None))
                        .await
                        .unwrap();
                    if byes == CALLS {
                        break;
                    }
                }
                _ => req
                    .respond(Message::response_to(&req.request, StatusCode::OK, None))
                    .await
                    .unwrap(),
            }
        }
        (invites, byes)
    });
    let port = free_udp_port().to_string();
    let remote = addr.to_string();
    let calls = CALLS.to_string();
    let status = tokio::task::spawn_blocking(move || {
        Command::new(sipp)
            .args([
                "-sn",
                "uac",
                &remote,
                "-i",
                "127.0.0.1",
                "-p",
                &port,
                "-m",
                &calls,
                "-r",
                "20",
                "-l",
                "10",
            ])
            .args(["-timeout", "30", "-timeout_error", "-d", "100", "-nostdin"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
    });
    // sipp exits 0 only when every call succeeded.
    let status = status.await.unwrap().unwrap();
    assert!(status.success(), "sipp uac: {status}");
    let (invites, byes) = timeout(Duration::from_secs(40), answered)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (invites, byes),
        (CALLS, CALLS),
        "every sipp call was set up and torn down"
    );
}

#[tokio::test]
async fn our_uac_calls_sipp_uas() {
    let Some(sipp) = sipp() else { return };
    let port = free_udp_port();
    let sipp_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let calls = CALLS.to_string();
    let child = std::thread::spawn(move || {
        Command::new(sipp)
            .args([
                "-sn",
                "uas",
                "-i",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-m",
                &calls,
                "-timeout",
                "30",
                "-timeout_error",
                "-nostdin",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
    });
    // Give sipp a moment to bind before the first INVITE (a real process: bounded wait).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let uac = endpoint().await;
    let me = uac.local_addr();
    let target = Target {
        addr: sipp_addr,
        transport: TransportKind::Udp,
    };
    for call in 0..CALLS {
        let call_id = format!("ours-{call}@127.0.0.1");
        let head = |method: &str, seq: u32, branch: &str, to_tag: &str| {
            format!(
                "{method} sip:service@{sipp_addr} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{branch};rport\r\nMax-Forwards: 70\r\n\
                 From: <sip:pbxkit@{me}>;tag=c{call}\r\nTo: <sip:service@{sipp_addr}>{to_tag}\r\nCall-ID: {call_id}\r\nCSeq: {seq} {method}\r\n\
                 Contact: <sip:pbxkit@{me}>\r\n"
            )
        };
        let sdp = format!(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
            20000 + call * 2
        );
        let invite = format!(
            "{}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            head("INVITE", 1, &format!("i{call}"), ""),
            sdp.len()
        );
        let mut tx = uac
            .send_request(Message::parse(invite.into_bytes()).unwrap(), target)
            .await
            .unwrap();
        let ClientEvent::Response(ok) = timeout(Duration::from_secs(10), tx.final_response())
            .await
            .unwrap()
        else {
            panic!("call {call}: no answer")
        };
        assert_eq!(ok.status(), Some(StatusCode::OK), "call {call}");
        let to_tag = format!(";tag={}", ok.to().unwrap().tag().unwrap());
        let ack = format!(
            "{}Content-Length: 0\r\n\r\n",
            head("ACK", 1, &format!("a{call}"), &to_tag)
        );
        uac.send_stateless(Message::parse(ack.into_bytes()).unwrap(), target)
            .await;
        let bye = format!(
            "{}Content-Length: 0\r\n\r\n",
            head("BYE", 2, &format!("b{call}"), &to_tag)
        );
        let mut tx = uac
            .send_request(Message::parse(bye.into_bytes()).unwrap(), target)
            .await
            .unwrap();
        let ClientEvent::Response(bye_ok) = timeout(Duration::from_secs(10), tx.final_response())
            .await
            .unwrap()
        else {
            panic!("call {call}: BYE")
        };
        assert_eq!(bye_ok.status(), Some(StatusCode::OK));
    }
    let status = tokio::task::spawn_blocking(move || child.join().unwrap())
        .await
        .unwrap();
    assert!(
        status.success(),
        "sipp uas saw every call succeed: {status}"
    );
}
