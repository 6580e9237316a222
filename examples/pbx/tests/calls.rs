//! End to end over loopback: the pbxkit binary with a test configuration, and phones
//! built on pbxkit-sip's Endpoint registering (digest) and calling each other through it.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

mod common;
mod phone;

use common::{Pbx, free_port, temp_dir};
use phone::*;

use pbxkit_sip::digest;
use pbxkit_sip::endpoint::{ClientEvent, Incoming};
use pbxkit_sip::transaction::cancel_for;
use pbxkit_sip::{Auth, HeaderName, Message, Method, StatusCode};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::timeout;

#[tokio::test]
async fn register_then_call_answer_and_hang_up() {
    let pbx = Pbx::start(temp_dir("call"), free_port());
    let alice = Phone::new("1000", pbx.addr)
        .await
        .with_password("pbx1000pw");
    let bob = Phone::new("1001", pbx.addr)
        .await
        .with_password("pbx1001pw");
    assert_eq!(alice.register().await.status(), Some(StatusCode::OK));
    let ok = bob.register().await;
    assert_eq!(ok.status(), Some(StatusCode::OK));
    assert_eq!(ok.contacts().count(), 1);
    let alice_rtp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let bob_rtp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let bob_log = bob.answer_calls_with(StatusCode::OK, sdp(bob_rtp.local_addr().unwrap().port()));

    let (invite, answer) =
        call_with(&alice, "1001", &sdp(alice_rtp.local_addr().unwrap().port())).await;
    assert_eq!(answer.status(), Some(StatusCode::OK), "{answer}");
    // The callee's answer reached the caller with the PBX's media address in it.
    let answer_sdp = pbxkit_sip::sdp::Session::parse_body(&answer.body).unwrap();
    let audio = &answer_sdp.media[0];
    assert_eq!(answer_sdp.media_address(audio), Some("127.0.0.1"));
    assert_ne!(
        audio.port,
        bob_rtp.local_addr().unwrap().port(),
        "media is anchored on the PBX"
    );
    assert_eq!(audio.payload_types().collect::<Vec<_>>(), [0, 8, 101]);
    // Audio flows both ways through the relay.
    let relay_for_alice: SocketAddr = format!("127.0.0.1:{}", audio.port).parse().unwrap();
    let mut buf = [0u8; 2048];
    let mut received = 0;
    for seq in 0..5u16 {
        alice_rtp.send_to(&rtp(seq), relay_for_alice).await.unwrap();
        let (n, relay_for_bob) = timeout(WAIT, bob_rtp.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf[..n], &rtp(seq)[..]);
        // Bob answers to where the media came from (symmetric RTP).
        bob_rtp
            .send_to(&rtp(1000 + seq), relay_for_bob)
            .await
            .unwrap();
        let (n, from) = timeout(WAIT, alice_rtp.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((&buf[..n], from), (&rtp(1000 + seq)[..], relay_for_alice));
        received += 1;
    }
    assert_eq!(received, 5);
    // A packet from a stranger to Alice's relay port is not forwarded: the leg is latched.
    let stranger = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    stranger.send_to(&rtp(666), relay_for_alice).await.unwrap();
    alice_rtp.send_to(&rtp(6), relay_for_alice).await.unwrap();
    let (n, _) = timeout(WAIT, bob_rtp.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..n], &rtp(6)[..], "the stranger's packet was dropped");
    let dialog = InDialog::ack(&alice, &invite, &answer, "1001").await;
    assert_eq!(dialog.bye(&alice).await, StatusCode::OK);
    let log = timeout(WAIT, bob_log).await.unwrap().unwrap();
    assert_eq!(log, ["INVITE", "ACK", "BYE"]);
}

/// RTP bleed: a stranger who sprays a call's relay port before the caller's phone
/// sends may hold it only until the phone's first packet from its SDP address;
/// then the call's audio goes to the phone, both ways, and never to the stranger.
#[tokio::test]
async fn a_stranger_who_sends_first_does_not_keep_the_callers_media() {
    let pbx = Pbx::start(temp_dir("bleed"), free_port());
    let alice = registered("1000", "pbx1000pw", &pbx).await;
    let bob = registered("1001", "pbx1001pw", &pbx).await;
    let alice_rtp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let bob_rtp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let bob_log = bob.answer_calls_with(StatusCode::OK, sdp(bob_rtp.local_addr().unwrap().port()));
    let (invite, answer) =
        call_with(&alice, "1001", &sdp(alice_rtp.local_addr().unwrap().port())).await;
    assert_eq!(answer.status(), Some(StatusCode::OK), "{answer}");
    let answer_sdp = pbxkit_sip::sdp::Session::parse_body(&answer.body).unwrap();
    let relay_for_alice: SocketAddr = format!("127.0.0.1:{}", answer_sdp.media[0].port)
        .parse()
        .unwrap();
    let stranger = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for seq in 500..510u16 {
        stranger.send_to(&rtp(seq), relay_for_alice).await.unwrap();
    }
    alice_rtp.send_to(&rtp(1), relay_for_alice).await.unwrap();
    // Bob may hear some of the stranger's packets, then Alice's.
    let mut buf = [0u8; 2048];
    let relay_for_bob = loop {
        let (n, from) = timeout(WAIT, bob_rtp.recv_from(&mut buf))
            .await
            .expect("Alice's packet reaches Bob")
            .unwrap();
        if buf[..n] == rtp(1)[..] {
            break from;
        }
    };
    for seq in 2..5u16 {
        alice_rtp.send_to(&rtp(seq), relay_for_alice).await.unwrap();
        let (n, _) = timeout(WAIT, bob_rtp.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf[..n], &rtp(seq)[..]);
        bob_rtp
            .send_to(&rtp(1000 + seq), relay_for_bob)
            .await
            .unwrap();
        let (n, _) = timeout(WAIT, alice_rtp.recv_from(&mut buf))
            .await
            .expect("Bob's audio goes to Alice")
            .unwrap();
        assert_eq!(&buf[..n], &rtp(1000 + seq)[..]);
    }
    // The stranger keeps sending: dropped; and it hears nothing of Bob.
    stranger.send_to(&rtp(600), relay_for_alice).await.unwrap();
    alice_rtp.send_to(&rtp(5), relay_for_alice).await.unwrap();
    let (n, _) = timeout(WAIT, bob_rtp.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..n], &rtp(5)[..], "the stranger's packet was dropped");
    assert!(
        timeout(Duration::from_millis(300), stranger.recv_from(&mut buf))
            .await
            .is_err(),
        "the stranger received the call's audio"
    );
    let dialog = InDialog::ack(&alice, &invite, &answer, "1001").await;
    assert_eq!(dialog.bye(&alice).await, StatusCode::OK);
    let _ = timeout(WAIT, bob_log).await;
}

#[tokio::test]
async fn phones_on_tcp_register_and_call_each_other_over_tcp() {
    let pbx = Pbx::start(temp_dir("tcp"), free_port());
    let alice = Phone::new("1000", pbx.addr)
        .await
        .with_password("pbx1000pw")
        .over_tcp();
    let bob = Phone::new("1001", pbx.addr)
        .await
        .with_password("pbx1001pw")
        .over_tcp();
    assert_eq!(alice.register().await.status(), Some(StatusCode::OK));
    assert_eq!(bob.register().await.status(), Some(StatusCode::OK));
    let offers = Offers::default();
    let bob_log = bob.answer_calls_seeing(StatusCode::OK, SDP.to_owned(), offers.clone(), 1);

    let (invite, answer) = call(&alice, "1001").await;
    assert_eq!(answer.status(), Some(StatusCode::OK), "{answer}");
    // The PBX rang Bob over TCP, and both sides were asked to stay on TCP.
    let rung = offers.invites.lock().unwrap()[0].clone();
    let via = rung
        .headers()
        .first(&HeaderName::Via)
        .unwrap()
        .value
        .to_string();
    assert!(via.starts_with("SIP/2.0/TCP "), "{via}");
    for m in [&rung, &answer] {
        let contact = m
            .headers()
            .first(&HeaderName::Contact)
            .unwrap()
            .value
            .to_string();
        assert!(contact.contains("transport=tcp"), "{contact}");
    }
    let dialog = InDialog::ack(&alice, &invite, &answer, "1001").await;
    assert_eq!(dialog.bye(&alice).await, StatusCode::OK);
    let log = timeout(WAIT, bob_log).await.unwrap().unwrap();
    assert_eq!(log, ["INVITE", "ACK", "BYE"]);
}

#[tokio::test]
async fn cancel_busy_unavailable_unknown_and_wrong_password() {
    let pbx = Pbx::start(temp_dir("fail"), free_port());
    let alice = Phone::new("1000", pbx.addr)
        .await
        .with_password("pbx1000pw");
    alice.register().await;
    // Unknown extension: 404; known but not registered: 480.
    assert_eq!(
        call(&alice, "4242").await.1.status(),
        Some(StatusCode::NOT_FOUND)
    );
    assert_eq!(
        call(&alice, "1002").await.1.status(),
        Some(StatusCode::TEMPORARILY_UNAVAILABLE)
    );
    // Busy callee: its 486 reaches the caller.
    let bob = Phone::new("1001", pbx.addr)
        .await
        .with_password("pbx1001pw");
    bob.register().await;
    let bob_log = bob.answer_calls(StatusCode::BUSY_HERE);
    assert_eq!(
        call(&alice, "1001").await.1.status(),
        Some(StatusCode::BUSY_HERE)
    );
    assert_eq!(timeout(WAIT, bob_log).await.unwrap().unwrap(), ["INVITE"]);
    // CANCEL while ringing: 487 for the caller, CANCEL at the callee.
    let carol = Phone::new("1002", pbx.addr)
        .await
        .with_password("pbx1002pw");
    carol.register().await;
    let carol_log = carol.answer_calls(StatusCode::RINGING);
    let uri = format!("sip:1002@{}", pbx.addr);
    let (invite, mut tx) = alice
        .send_authenticated("INVITE", &uri, "<sip:1002@pbxkit>", "call-cancel", SDP)
        .await;
    loop {
        match timeout(WAIT, tx.next()).await.unwrap() {
            Some(ClientEvent::Response(r)) if r.status() == Some(StatusCode::RINGING) => break,
            Some(ClientEvent::Response(_)) => continue,
            other => panic!("{other:?}"),
        }
    }
    let mut cancel = alice
        .ep
        .send_request(cancel_for(&invite), alice.target())
        .await
        .unwrap();
    let ClientEvent::Response(ok) = timeout(WAIT, cancel.final_response()).await.unwrap() else {
        panic!()
    };
    assert_eq!(ok.status(), Some(StatusCode::OK));
    let ClientEvent::Response(terminated) = timeout(WAIT, tx.final_response()).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(terminated.status(), Some(StatusCode::REQUEST_TERMINATED));
    assert_eq!(
        timeout(WAIT, carol_log).await.unwrap().unwrap(),
        ["INVITE", "CANCEL"]
    );
    // A wrong password is refused like an unknown user: another 401.
    let mallory = Phone::new("1003", pbx.addr).await.with_password("guessed!");
    assert_eq!(
        mallory.register().await.status(),
        Some(StatusCode::UNAUTHORIZED)
    );
    let nobody = Phone::new("7777", pbx.addr).await.with_password("whatever");
    assert_eq!(
        nobody.register().await.status(),
        Some(StatusCode::UNAUTHORIZED)
    );
}

#[tokio::test]
async fn no_answer_within_ring_time_gives_480() {
    let pbx = Pbx::start(temp_dir("noanswer"), free_port());
    let alice = Phone::new("1000", pbx.addr)
        .await
        .with_password("pbx1000pw");
    let bob = Phone::new("1001", pbx.addr)
        .await
        .with_password("pbx1001pw");
    alice.register().await;
    bob.register().await;
    let bob_log = bob.answer_calls(StatusCode::RINGING);
    // ring_time is 3 s in the test configuration.
    assert_eq!(
        call(&alice, "1001").await.1.status(),
        Some(StatusCode::TEMPORARILY_UNAVAILABLE)
    );
    assert_eq!(
        timeout(WAIT, bob_log).await.unwrap().unwrap(),
        ["INVITE", "CANCEL"]
    );
}

#[tokio::test]
async fn registrations_survive_kill_9_and_restart() {
    let dir = temp_dir("restart");
    let port = free_port();
    let mut pbx = Pbx::start(dir.clone(), port);
    let alice = Phone::new("1000", pbx.addr)
        .await
        .with_password("pbx1000pw");
    let bob = Phone::new("1001", pbx.addr)
        .await
        .with_password("pbx1001pw");
    alice.register().await;
    bob.register().await;
    pbx.kill();
    let _pbx = Pbx::start(dir, port);
    // No new REGISTER: the binding was on disk.
    let bob_log = bob.answer_calls(StatusCode::BUSY_HERE);
    assert_eq!(
        call(&alice, "1001").await.1.status(),
        Some(StatusCode::BUSY_HERE)
    );
    assert_eq!(timeout(WAIT, bob_log).await.unwrap().unwrap(), ["INVITE"]);
}

#[tokio::test]
async fn echo_test_sends_the_callers_audio_back() {
    let pbx = Pbx::start(temp_dir("echo"), free_port());
    let alice = Phone::new("1000", pbx.addr)
        .await
        .with_password("pbx1000pw");
    alice.register().await;
    let media = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let offer =
        sdp(media.local_addr().unwrap().port()).replace("RTP/AVP 0 8 101", "RTP/AVP 8 0 101");
    let (invite, answer) = call_with(&alice, "9000", &offer).await;
    assert_eq!(answer.status(), Some(StatusCode::OK), "{answer}");
    let sdp = pbxkit_sip::sdp::Session::parse_body(&answer.body).unwrap();
    let audio = &sdp.media[0];
    // The caller's order of the codecs we share, and telephone-event kept.
    assert_eq!(audio.payload_types().collect::<Vec<_>>(), [8, 0, 101]);
    let echo: SocketAddr = format!("127.0.0.1:{}", audio.port).parse().unwrap();
    let mut buf = [0u8; 2048];
    for seq in 0..5u16 {
        media.send_to(&rtp(seq), echo).await.unwrap();
        let (n, from) = timeout(WAIT, media.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((&buf[..n], from), (&rtp(seq)[..], echo));
    }
    // Not RTP: not echoed (the next packet back is the RTP one).
    media.send_to(b"hello", echo).await.unwrap();
    media.send_to(&rtp(9), echo).await.unwrap();
    let (n, _) = timeout(WAIT, media.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..n], &rtp(9)[..]);
    assert_eq!(
        ack_and_bye(&alice, &invite, &answer, "9000").await,
        StatusCode::OK
    );
    // No offer: nothing to echo to.
    let (_, refused) = call_with(&alice, "9000", "").await;
    assert_eq!(refused.status().map(|s| s.as_u16()), Some(488));
    // An Opus-only phone gets its Opus back: the echo decodes nothing.
    let opus = SDP
        .replace(
            "m=audio 4000",
            &format!("m=audio {}", media.local_addr().unwrap().port()),
        )
        .replace(
            "RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n",
            "RTP/AVP 96 101\r\na=rtpmap:96 opus/48000/2\r\na=rtpmap:101 telephone-event/48000\r\n",
        );
    let (invite, answer) = call_with(&alice, "9000", &opus).await;
    assert_eq!(answer.status(), Some(StatusCode::OK), "{answer}");
    let answered = pbxkit_sip::sdp::Session::parse_body(&answer.body).unwrap();
    assert_eq!(
        answered.media[0].payload_types().collect::<Vec<_>>(),
        [96, 101]
    );
    let echo: SocketAddr = format!("127.0.0.1:{}", answered.media[0].port)
        .parse()
        .unwrap();
    let mut packet = rtp(1);
    packet[1] = 96;
    media.send_to(&packet, echo).await.unwrap();
    let (n, _) = timeout(WAIT, media.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..n], &packet[..]);
    assert_eq!(
        ack_and_bye(&alice, &invite, &answer, "9000").await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn sigterm_ends_calls_with_bye_and_cdrs_record_every_call() {
    let dir = temp_dir("sigterm");
    let mut pbx = Pbx::start(dir.clone(), free_port());
    let mut alice = Phone::new("1000", pbx.addr)
        .await
        .with_password("pbx1000pw");
    let bob = Phone::new("1001", pbx.addr)
        .await
        .with_password("pbx1001pw");
    alice.register().await;
    bob.register().await;
    assert_eq!(
        call(&alice, "4242").await.1.status(),
        Some(StatusCode::NOT_FOUND)
    );
    let bob_log = bob.answer_calls(StatusCode::OK);
    let (invite, answer) = call(&alice, "1001").await;
    assert_eq!(answer.status(), Some(StatusCode::OK));
    InDialog::ack(&alice, &invite, &answer, "1001").await;

    // SIGTERM: both phones get a BYE, and the PBX exits cleanly.
    let terminated = tokio::task::spawn_blocking(move || {
        let status = pbx.terminate(Duration::from_secs(15));
        (pbx, status)
    });
    let bye = loop {
        match timeout(WAIT, alice.ep.next()).await.unwrap().unwrap() {
            Incoming::Request(req) => break req,
            _ => continue,
        }
    };
    assert_eq!(bye.request.method(), Some(&Method::Bye));
    bye.respond(Message::response_to(&bye.request, StatusCode::OK, None))
        .await
        .unwrap();
    assert_eq!(
        timeout(WAIT, bob_log).await.unwrap().unwrap(),
        ["INVITE", "ACK", "BYE"]
    );
    let (_pbx, status) = terminated.await.unwrap();
    assert!(status.success(), "{status}");

    let cdr = std::fs::read_to_string(dir.join("data").join("cdr.jsonl")).unwrap();
    let records: Vec<serde_json::Value> = cdr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 2, "{cdr}");
    assert_eq!(records[0]["dst"], "4242");
    assert_eq!(records[0]["disposition"], "FAILED");
    assert_eq!(records[0]["status"], 404);
    // Q.850 causes (RFC 3398): 404 is "unallocated number", a normal end 16.
    assert_eq!(records[0]["hangup_cause"], 1);
    assert_eq!(records[1]["hangup_cause"], 16);
    assert_eq!(records[1]["src"], "1000");
    assert_eq!(records[1]["dst"], "1001");
    assert_eq!(records[1]["disposition"], "ANSWERED");
    assert_eq!(records[1]["hangup_by"], "pbx");
    assert_eq!(
        records[1]["call_id"].as_str(),
        Some(invite.call_id().unwrap().0.as_str())
    );
    drop(alice);
}

#[tokio::test]
async fn repeated_authentication_failures_ban_the_source_and_user_only() {
    let pbx = Pbx::start_edited(temp_dir("ban"), free_port(), |c| {
        c.replace("max_auth_failures = 10", "max_auth_failures = 3")
    });
    let mallory = Phone::new_on("1003", pbx.addr, "127.0.0.2")
        .await
        .with_password("guessed!");
    for _ in 0..3 {
        assert_eq!(
            mallory.register().await.status(),
            Some(StatusCode::UNAUTHORIZED)
        );
    }
    // Banned: no answer at all for that user from that address, even with the right
    // password.
    let first = mallory.build(
        "REGISTER",
        &format!("sip:{}", pbx.addr),
        "<sip:1003@pbxkit>",
        "reg-banned",
        "",
    );
    let mut tx = mallory
        .ep
        .send_request(first, mallory.target())
        .await
        .unwrap();
    assert!(
        timeout(Duration::from_secs(2), tx.final_response())
            .await
            .is_err(),
        "a banned source got an answer"
    );
    let right = Phone::new_on("1003", pbx.addr, "127.0.0.2")
        .await
        .with_password("pbx1003pw");
    assert_eq!(right.try_register(Duration::from_secs(1)).await, None);
    // Another source is still served, and so is another user of the same source.
    let alice = Phone::new_on("1000", pbx.addr, "127.0.0.1")
        .await
        .with_password("pbx1000pw");
    assert_eq!(alice.register().await.status(), Some(StatusCode::OK));
    let neighbour = Phone::new_on("1004", pbx.addr, "127.0.0.2")
        .await
        .with_password("pbx1004pw");
    assert_eq!(neighbour.register().await.status(), Some(StatusCode::OK));
}

#[tokio::test]
async fn a_wrong_password_retry_storm_does_not_block_another_user_on_the_same_address() {
    let pbx = Pbx::start(temp_dir("storm"), free_port());
    // A softphone with a typo retries at once after each 401, as baresip does.
    let typo = Phone::new("1000", pbx.addr)
        .await
        .with_password("pbx1000px");
    let mut answered = 0;
    for _ in 0..20 {
        if let Some(status) = typo.try_register(Duration::from_millis(300)).await {
            assert_eq!(status, StatusCode::UNAUTHORIZED);
            answered += 1;
        }
    }
    assert_eq!(answered, 10, "the pair is ignored after max_auth_failures");
    // Another user on the same address registers and calls.
    let bob = Phone::new("1001", pbx.addr)
        .await
        .with_password("pbx1001pw");
    let carol = Phone::new("1002", pbx.addr)
        .await
        .with_password("pbx1002pw");
    assert_eq!(bob.register().await.status(), Some(StatusCode::OK));
    assert_eq!(carol.register().await.status(), Some(StatusCode::OK));
    let _carol = carol.answer_calls(StatusCode::OK);
    let (_, answer) = call(&bob, "1002").await;
    assert_eq!(answer.status(), Some(StatusCode::OK), "{answer}");
}

#[tokio::test]
async fn a_scanner_trying_a_hundred_users_is_banned() {
    let pbx = Pbx::start(temp_dir("scanner"), free_port());
    // Real users first, then names that do not exist: both are refused alike.
    let users = (0..100).map(|i| -> &'static str {
        let n = if i < 10 { 1000 + i } else { 2000 + i };
        Box::leak(n.to_string().into_boxed_str())
    });
    let (mut answered, mut silent) = (0, Vec::new());
    for user in users {
        let phone = Phone::new_on(user, pbx.addr, "127.0.0.2")
            .await
            .with_password("password1");
        if silent.is_empty() {
            match phone.try_register(Duration::from_secs(1)).await {
                Some(status) => {
                    assert_eq!(status, StatusCode::UNAUTHORIZED);
                    answered += 1;
                }
                None => silent.push(tokio::spawn(async { None })),
            }
        } else {
            // Banned already: the rest at once, so that the test does not wait for each.
            silent.push(tokio::spawn(async move {
                phone.try_register(Duration::from_millis(500)).await
            }));
        }
    }
    assert_eq!(answered, 5, "banned at the fifth user (scanner_users)");
    assert_eq!(silent.len(), 95);
    for attempt in silent {
        assert_eq!(
            attempt.await.unwrap(),
            None,
            "a banned scanner got an answer"
        );
    }
    // Nothing from that address is answered now, not even a right password...
    let right = Phone::new_on("1005", pbx.addr, "127.0.0.2")
        .await
        .with_password("pbx1005pw");
    assert_eq!(right.try_register(Duration::from_secs(1)).await, None);
    // ...while another address is served.
    let alice = Phone::new("1000", pbx.addr)
        .await
        .with_password("pbx1000pw");
    assert_eq!(alice.register().await.status(), Some(StatusCode::OK));
}

#[tokio::test]
async fn a_digest_response_without_qop_replayed_from_another_address_is_refused() {
    let pbx = Pbx::start(temp_dir("replay"), free_port());
    let alice = Phone::new("1000", pbx.addr)
        .await
        .with_password("pbx1000pw");
    let uri = format!("sip:{}", pbx.addr);
    let first = alice.build("REGISTER", &uri, "<sip:1000@pbxkit>", "reg-replay", "");
    let mut tx = alice.ep.send_request(first, alice.target()).await.unwrap();
    let ClientEvent::Response(challenge) = timeout(WAIT, tx.final_response()).await.unwrap() else {
        panic!("no challenge")
    };
    let mut offer: Auth = challenge
        .headers()
        .typed(&HeaderName::WwwAuthenticate)
        .unwrap()
        .unwrap();
    // A phone of the RFC 2069 kind: no qop, so no nonce count to tell requests apart.
    assert!(offer.params.remove("qop"));
    let creds = digest::respond(&offer, "REGISTER", &uri, "1000", "pbx1000pw", "", 1).unwrap();
    assert_eq!(creds.param("qop"), None);
    let mut register = alice.build("REGISTER", &uri, "<sip:1000@pbxkit>", "reg-replay", "");
    register
        .headers_mut()
        .push(HeaderName::Authorization, creds.to_string());
    let mut tx = alice
        .ep
        .send_request(register, alice.target())
        .await
        .unwrap();
    let ClientEvent::Response(ok) = timeout(WAIT, tx.final_response()).await.unwrap() else {
        panic!("no answer")
    };
    assert_eq!(ok.status(), Some(StatusCode::OK), "{ok}");
    // Mallory saw that REGISTER and sends its credentials again, from elsewhere, with
    // her own Contact (her phone would ring with Alice's calls).
    let mallory = Phone::new_on("1000", pbx.addr, "127.0.0.2").await;
    let mut replay = mallory.build("REGISTER", &uri, "<sip:1000@pbxkit>", "reg-replay", "");
    replay
        .headers_mut()
        .push(HeaderName::Authorization, creds.to_string());
    let mut tx = mallory
        .ep
        .send_request(replay, mallory.target())
        .await
        .unwrap();
    let ClientEvent::Response(refused) = timeout(WAIT, tx.final_response()).await.unwrap() else {
        panic!("no answer to the replay")
    };
    assert_eq!(
        refused.status(),
        Some(StatusCode::UNAUTHORIZED),
        "{refused}"
    );
    // A fresh challenge, stale=true: an honest phone retries without asking its user.
    let fresh: Auth = refused
        .headers()
        .typed(&HeaderName::WwwAuthenticate)
        .unwrap()
        .unwrap();
    assert_eq!(fresh.param("stale").as_deref(), Some("true"), "{refused}");
    assert_ne!(fresh.param("nonce"), offer.param("nonce"));
    // Only Alice's phone is bound.
    let bound = alice.register().await;
    assert_eq!(bound.status(), Some(StatusCode::OK));
    assert_eq!(bound.contacts().count(), 1, "{bound}");
    assert!(!bound.to_string().contains("127.0.0.2"), "{bound}");
}

#[tokio::test]
async fn sha256_is_offered_first_beside_md5_when_configured() {
    let pbx = Pbx::start_edited(temp_dir("sha256"), free_port(), |c| {
        c.replace(
            "digest_algorithms = [\"MD5\"]",
            "digest_algorithms = [\"SHA-256\", \"MD5\"]",
        )
    });
    let alice = Phone::new("1000", pbx.addr)
        .await
        .with_password("pbx1000pw");
    let uri = format!("sip:{}", pbx.addr);
    let first = alice.build("REGISTER", &uri, "<sip:1000@pbxkit>", "reg-sha", "");
    let mut tx = alice.ep.send_request(first, alice.target()).await.unwrap();
    let ClientEvent::Response(challenge) = timeout(WAIT, tx.final_response()).await.unwrap() else {
        panic!("no challenge")
    };
    let offers: Vec<Auth> = challenge
        .headers()
        .all(&HeaderName::WwwAuthenticate)
        .map(|h| h.parse::<Auth>().unwrap())
        .collect();
    let algorithms: Vec<_> = offers.iter().map(|a| a.param("algorithm")).collect();
    assert_eq!(
        algorithms,
        [Some("SHA-256".to_owned()), Some("MD5".to_owned())],
        "{challenge}"
    );
    // A client answering either challenge is let in.
    for (i, offer) in offers.iter().enumerate() {
        let creds =
            digest::respond(offer, "REGISTER", &uri, "1000", "pbx1000pw", "cnonce", 1).unwrap();
        let mut again = alice.build("REGISTER", &uri, "<sip:1000@pbxkit>", "reg-sha", "");
        again
            .headers_mut()
            .push(HeaderName::Authorization, creds.to_string());
        let mut tx = alice.ep.send_request(again, alice.target()).await.unwrap();
        let ClientEvent::Response(ok) = timeout(WAIT, tx.final_response()).await.unwrap() else {
            panic!("no answer")
        };
        assert_eq!(ok.status(), Some(StatusCode::OK), "challenge {i}: {ok}");
    }
    // Phones that take the first challenge speak SHA-256 and call as usual.
    let bob = Phone::new("1001", pbx.addr)
        .await
        .with_password("pbx1001pw");
    assert_eq!(bob.register().await.status(), Some(StatusCode::OK));
    let _bob = bob.answer_calls(StatusCode::OK);
    let (invite, answer) = call(&alice, "1001").await;
    assert!(
        invite
            .headers()
            .get(&HeaderName::Authorization)
            .is_some_and(|a| a.contains("SHA-256")),
        "{invite}"
    );
    assert_eq!(answer.status(), Some(StatusCode::OK), "{answer}");
}

#[tokio::test]
async fn an_algorithm_that_is_not_offered_is_refused() {
    let pbx = Pbx::start(temp_dir("md5only"), free_port());
    let alice = Phone::new("1000", pbx.addr)
        .await
        .with_password("pbx1000pw");
    let uri = format!("sip:{}", pbx.addr);
    let first = alice.build("REGISTER", &uri, "<sip:1000@pbxkit>", "reg-down", "");
    let mut tx = alice.ep.send_request(first, alice.target()).await.unwrap();
    let ClientEvent::Response(challenge) = timeout(WAIT, tx.final_response()).await.unwrap() else {
        panic!("no challenge")
    };
    assert_eq!(
        challenge
            .headers()
            .all(&HeaderName::WwwAuthenticate)
            .count(),
        1,
        "MD5 only by default: {challenge}"
    );
    let mut offer: Auth = challenge
        .headers()
        .typed(&HeaderName::WwwAuthenticate)
        .unwrap()
        .unwrap();
    // Right password, but SHA-256, which this PBX does not offer.
    offer.params.set(
        "algorithm",
        Some(pbxkit_sip::ByteStr::from_static("SHA-256")),
    );
    let creds =
        digest::respond(&offer, "REGISTER", &uri, "1000", "pbx1000pw", "cnonce", 1).unwrap();
    let mut again = alice.build("REGISTER", &uri, "<sip:1000@pbxkit>", "reg-down", "");
    again
        .headers_mut()
        .push(HeaderName::Authorization, creds.to_string());
    let mut tx = alice.ep.send_request(again, alice.target()).await.unwrap();
    let ClientEvent::Response(refused) = timeout(WAIT, tx.final_response()).await.unwrap() else {
        panic!("no answer")
    };
    assert_eq!(
        refused.status(),
        Some(StatusCode::UNAUTHORIZED),
        "{refused}"
    );
}

#[tokio::test]
async fn hold_re_invite_is_relayed_to_the_other_leg_with_media_anchored() {
    let pbx = Pbx::start(temp_dir("hold"), free_port());
    let alice = Phone::new("1000", pbx.addr)
        .await
        .with_password("pbx1000pw");
    let bob = Phone::new("1001", pbx.addr)
        .await
        .with_password("pbx1001pw");
    alice.register().await;
    bob.register().await;
    let bob_log = bob.answer_calls_with(StatusCode::OK, sdp(5000));
    let (invite, answer) = call_with(&alice, "1001", &sdp(4000)).await;
    assert_eq!(answer.status(), Some(StatusCode::OK));
    let first = pbxkit_sip::sdp::Session::parse_body(&answer.body).unwrap();
    let dialog = InDialog::ack(&alice, &invite, &answer, "1001").await;
    let (pbx_contact, to, call_id) = (&*dialog.contact, &*dialog.to, &*dialog.call_id);

    // Alice puts Bob on hold.
    let hold = format!("{}a=sendonly\r\n", sdp(4000)).replace("o=- 1 1", "o=- 1 2");
    let reinvite = alice.build("INVITE", pbx_contact, to, call_id, &hold);
    let mut tx = alice
        .ep
        .send_request(reinvite.clone(), alice.target())
        .await
        .unwrap();
    let ClientEvent::Response(ok) = timeout(WAIT, tx.final_response()).await.unwrap() else {
        panic!("no answer to the re-INVITE")
    };
    assert_eq!(ok.status(), Some(StatusCode::OK), "{ok}");
    // Bob's answer came back anchored: the PBX's address and Alice's same relay port.
    let held = pbxkit_sip::sdp::Session::parse_body(&ok.body).unwrap();
    assert_eq!(held.media_address(&held.media[0]), Some("127.0.0.1"));
    assert_eq!(held.media[0].port, first.media[0].port);
    assert_ne!(held.media[0].port, 5000);
    let mut ack = alice.build("ACK", pbx_contact, to, call_id, "");
    ack.headers_mut().set(
        HeaderName::CSeq,
        format!("{} ACK", reinvite.cseq().unwrap().seq),
    );
    alice.ep.send_stateless(ack, alice.target()).await;
    assert_eq!(
        ack_and_bye(&alice, &invite, &answer, "1001").await,
        StatusCode::OK
    );
    // Bob saw the hold offer (sendonly) in a re-INVITE, ACKed by the PBX.
    assert_eq!(
        timeout(WAIT, bob_log).await.unwrap().unwrap(),
        ["INVITE", "ACK", "INVITE sendonly", "ACK", "BYE"]
    );
}

#[tokio::test]
async fn every_registered_contact_rings_and_the_first_answer_wins() {
    let pbx = Pbx::start(temp_dir("fork"), free_port());
    let alice = Phone::new("1000", pbx.addr)
        .await
        .with_password("pbx1000pw");
    let desk = Phone::new("1001", pbx.addr)
        .await
        .with_password("pbx1001pw");
    let soft = Phone::new("1001", pbx.addr)
        .await
        .with_password("pbx1001pw");
    alice.register().await;
    desk.register().await;
    let ok = soft.register().await;
    assert_eq!(ok.contacts().count(), 2, "{ok}");
    let desk_log = desk.answer_calls(StatusCode::RINGING);
    let soft_log = soft.answer_calls(StatusCode::OK);
    let (invite, answer) = call(&alice, "1001").await;
    assert_eq!(answer.status(), Some(StatusCode::OK), "{answer}");
    // The phone that did not answer stops ringing, told that the call was answered
    // elsewhere (so it does not show a missed call).
    assert_eq!(
        timeout(WAIT, desk_log).await.unwrap().unwrap(),
        [
            "INVITE",
            "CANCEL SIP;cause=200;text=\"Call completed elsewhere\""
        ]
    );
    assert_eq!(
        ack_and_bye(&alice, &invite, &answer, "1001").await,
        StatusCode::OK
    );
    assert_eq!(
        timeout(WAIT, soft_log).await.unwrap().unwrap(),
        ["INVITE", "ACK", "BYE"]
    );
}

/// Registers two contacts for 1001 on a new PBX, answering with `desk` and `soft`;
/// returns the status Alice's call gets and what each contact saw.
async fn call_two_contacts(
    name: &str,
    desk: StatusCode,
    soft: StatusCode,
) -> (u16, Vec<String>, Vec<String>) {
    let pbx = Pbx::start(temp_dir(name), free_port());
    let alice = Phone::new("1000", pbx.addr)
        .await
        .with_password("pbx1000pw");
    let desk_phone = Phone::new("1001", pbx.addr)
        .await
        .with_password("pbx1001pw");
    let soft_phone = Phone::new("1001", pbx.addr)
        .await
        .with_password("pbx1001pw");
    alice.register().await;
    desk_phone.register().await;
    soft_phone.register().await;
    let desk_log = desk_phone.answer_calls(desk);
    let soft_log = soft_phone.answer_calls(soft);
    let status = call(&alice, "1001").await.1.status().unwrap().as_u16();
    let desk_log = timeout(WAIT, desk_log).await.unwrap().unwrap();
    let soft_log = timeout(WAIT, soft_log).await.unwrap().unwrap();
    (status, desk_log, soft_log)
}

#[tokio::test]
async fn busy_when_every_contact_is_busy_and_decline_is_global() {
    let (status, desk, soft) =
        call_two_contacts("forkbusy", StatusCode::BUSY_HERE, StatusCode::BUSY_HERE).await;
    assert_eq!(
        (status, desk, soft),
        (486, vec!["INVITE".into()], vec!["INVITE".into()])
    );
    // 603 Decline is global (RFC 3261 §16.7): it ends the call and is what the caller
    // gets, even though the other contact said busy.
    let decline = StatusCode::new(603).unwrap();
    let (status, _, _) = call_two_contacts("forkdecline", StatusCode::BUSY_HERE, decline).await;
    assert_eq!(status, 603);
}

/// A PBX where 1001 forwards to 1002 when busy and to 1003 when it does not answer,
/// 1004 forwards every call to 1002, and 1005 is in do-not-disturb.
fn forwarding_pbx(name: &str) -> Pbx {
    Pbx::start_edited(temp_dir(name), free_port(), |c| {
        c.replace(
            "password = \"pbx1001pw\"",
            "password = \"pbx1001pw\"\nforward_busy = \"1002\"\nforward_no_answer = \"1003\"",
        )
        .replace(
            "password = \"pbx1004pw\"",
            "password = \"pbx1004pw\"\nforward_unconditional = \"1002\"",
        )
        .replace(
            "password = \"pbx1005pw\"",
            "password = \"pbx1005pw\"\ndnd = true",
        )
    })
}

#[tokio::test]
async fn a_busy_callee_forwards_to_its_busy_destination() {
    let pbx = forwarding_pbx("fwdbusy");
    let alice = registered("1000", "pbx1000pw", &pbx).await;
    let bob = registered("1001", "pbx1001pw", &pbx).await;
    let carol = registered("1002", "pbx1002pw", &pbx).await;
    let bob_log = bob.answer_calls(StatusCode::BUSY_HERE);
    let carol_log = carol.answer_calls(StatusCode::OK);
    let (invite, answer) = call(&alice, "1001").await;
    assert_eq!(answer.status(), Some(StatusCode::OK), "{answer}");
    assert_eq!(timeout(WAIT, bob_log).await.unwrap().unwrap(), ["INVITE"]);
    assert_eq!(
        ack_and_bye(&alice, &invite, &answer, "1001").await,
        StatusCode::OK
    );
    assert_eq!(
        timeout(WAIT, carol_log).await.unwrap().unwrap(),
        ["INVITE", "ACK", "BYE"]
    );
}

#[tokio::test]
async fn an_unanswered_call_forwards_after_the_ring_time() {
    let pbx = forwarding_pbx("fwdnoanswer");
    let alice = registered("1000", "pbx1000pw", &pbx).await;
    let bob = registered("1001", "pbx1001pw", &pbx).await;
    let dave = registered("1003", "pbx1003pw", &pbx).await;
    let bob_log = bob.answer_calls(StatusCode::RINGING);
    let dave_log = dave.answer_calls(StatusCode::OK);
    // ring_time is 3 s in the test configuration: Bob rings, then Dave.
    let (invite, answer) = call(&alice, "1001").await;
    assert_eq!(answer.status(), Some(StatusCode::OK), "{answer}");
    assert_eq!(
        timeout(WAIT, bob_log).await.unwrap().unwrap(),
        ["INVITE", "CANCEL"]
    );
    assert_eq!(
        ack_and_bye(&alice, &invite, &answer, "1001").await,
        StatusCode::OK
    );
    assert_eq!(
        timeout(WAIT, dave_log).await.unwrap().unwrap(),
        ["INVITE", "ACK", "BYE"]
    );
}

#[tokio::test]
async fn unconditional_forward_and_do_not_disturb() {
    let pbx = forwarding_pbx("fwdalways");
    let alice = registered("1000", "pbx1000pw", &pbx).await;
    let erin = registered("1004", "pbx1004pw", &pbx).await;
    let frank = registered("1005", "pbx1005pw", &pbx).await;
    let carol = registered("1002", "pbx1002pw", &pbx).await;
    let erin_log = erin.answer_calls(StatusCode::OK);
    let frank_log = frank.answer_calls(StatusCode::OK);
    let carol_log = carol.answer_calls(StatusCode::OK);
    // 1004 forwards everything to 1002: its own phone never rings.
    let (invite, answer) = call(&alice, "1004").await;
    assert_eq!(answer.status(), Some(StatusCode::OK), "{answer}");
    assert_eq!(
        ack_and_bye(&alice, &invite, &answer, "1004").await,
        StatusCode::OK
    );
    assert_eq!(
        timeout(WAIT, carol_log).await.unwrap().unwrap(),
        ["INVITE", "ACK", "BYE"]
    );
    // 1005 is in DND: busy for the caller, and its phone does not ring.
    assert_eq!(
        call(&alice, "1005").await.1.status(),
        Some(StatusCode::BUSY_HERE)
    );
    // The phones that must not ring have seen nothing (their loops time out empty).
    drop(pbx);
    assert!(
        timeout(WAIT * 2, erin_log)
            .await
            .unwrap()
            .unwrap()
            .is_empty()
    );
    assert!(
        timeout(WAIT * 2, frank_log)
            .await
            .unwrap()
            .unwrap()
            .is_empty()
    );
}

/// The test configuration with two trunks on other loopback addresses (t1, t2 with
/// credentials), a route of 10-digit numbers through t1 then t2, and DID 0987654321
/// ringing 1001.
fn trunk_config(config: String, t1: SocketAddr, t2: SocketAddr) -> String {
    // No OPTIONS pings: the trunks' logs hold calls only.
    trunk_config_with(config, t1, t2, "qualify = 0", "qualify = 0")
}

/// [`trunk_config`] with more settings for each trunk.
fn trunk_config_with(
    config: String,
    t1: SocketAddr,
    t2: SocketAddr,
    t1_extra: &str,
    t2_extra: &str,
) -> String {
    config
        + &format!(
            "\n[[trunks]]\nname = \"t1\"\nhost = \"{}\"\nport = {}\n{t1_extra}\n\
             \n[[trunks]]\nname = \"t2\"\nhost = \"{}\"\nport = {}\nusername = \"pbx-account\"\npassword = \"trunk-secret\"\n{t2_extra}\n\
             \n[[routes]]\nname = \"national\"\npatterns = [{{ pattern = \"_0XXXXXXXXX\", strip = 1, prefix = \"+33\" }}]\ntrunks = [\"t1\", \"t2\"]\n\
             \n[[incalls]]\ndid = \"0987654321\"\nuser = \"1001\"\n",
            t1.ip(),
            t1.port(),
            t2.ip(),
            t2.port()
        )
}

#[tokio::test]
async fn outgoing_calls_fail_over_to_the_next_trunk_and_answer_its_challenge() {
    let port = free_port();
    let pbx_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let t1 = Phone::new_on("t1", pbx_addr, "127.0.0.2").await;
    let mut t2 = Phone::new_on("t2", pbx_addr, "127.0.0.3").await;
    let (a1, a2) = (t1.ep.local_addr(), t2.ep.local_addr());
    let pbx = Pbx::start_edited(temp_dir("trunks"), port, |c| trunk_config(c, a1, a2));
    let alice = registered("1000", "pbx1000pw", &pbx).await;
    // t1 is out of service; t2 wants digest credentials, then answers.
    let t1_log = t1.answer_calls(StatusCode::SERVICE_UNAVAILABLE);
    let t2_task = tokio::spawn(async move {
        let mut digest = pbxkit_sip::digest::DigestServer::new("provider", b"k", 300);
        let mut seen = Vec::new();
        while let Ok(Some(incoming)) = timeout(WAIT, t2.ep.next()).await {
            let Incoming::Request(req) = incoming else {
                continue;
            };
            let m = &req.request;
            seen.push(format!(
                "{} {}",
                m.method().unwrap(),
                m.request_uri().unwrap()
            ));
            match m.method().unwrap() {
                Method::Invite => {
                    // The PBX asserts the caller it authenticated.
                    let pai = m.headers().get(&HeaderName::PAssertedIdentity).unwrap();
                    assert!(pai.contains("sip:1000@"), "{pai}");
                    let creds = m
                        .headers()
                        .typed::<Auth>(&HeaderName::Authorization)
                        .and_then(Result::ok);
                    let Some(creds) = creds else {
                        let mut r =
                            Message::response_to(m, StatusCode::UNAUTHORIZED, Some("t2tag"));
                        r.headers_mut().push(
                            HeaderName::WwwAuthenticate,
                            digest
                                .challenge(1, pbxkit_sip::digest::Algorithm::Md5, false)
                                .to_string(),
                        );
                        req.respond(r).await.unwrap();
                        continue;
                    };
                    let ok = digest.verify(&creds, "INVITE", 1, |user| {
                        (user == "pbx-account").then(|| "trunk-secret".to_owned())
                    });
                    assert!(ok.is_ok(), "{ok:?}");
                    let mut r = Message::response_to(m, StatusCode::OK, Some("t2tag"));
                    let me = t2.ep.local_addr();
                    let h = r.headers_mut();
                    h.push(HeaderName::Contact, format!("<sip:t2@{me}>"));
                    h.push(HeaderName::ContentType, "application/sdp");
                    h.set(HeaderName::ContentLength, SDP.len().to_string());
                    r.body = SDP.as_bytes().to_vec().into();
                    req.respond(r).await.unwrap();
                }
                other => {
                    req.respond(Message::response_to(m, StatusCode::OK, None))
                        .await
                        .unwrap();
                    if *other == Method::Bye {
                        return seen;
                    }
                }
            }
        }
        seen
    });
    let (invite, answer) = call(&alice, "0612345678").await;
    assert_eq!(answer.status(), Some(StatusCode::OK), "{answer}");
    assert_eq!(timeout(WAIT, t1_log).await.unwrap().unwrap(), ["INVITE"]);
    assert_eq!(
        ack_and_bye(&alice, &invite, &answer, "0612345678").await,
        StatusCode::OK
    );
    // The route's transformation: leading 0 stripped, +33 added.
    let number = format!("sip:+33612345678@{}:{}", a2.ip(), a2.port());
    assert_eq!(
        timeout(WAIT, t2_task).await.unwrap().unwrap(),
        [
            format!("INVITE {number}"),
            format!("INVITE {number}"),
            format!("BYE sip:t2@{a2}")
        ]
    );
}

#[tokio::test]
async fn a_did_can_lead_to_a_queue() {
    let port = free_port();
    let pbx_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let trunk = Phone::new_on("0612345678", pbx_addr, "127.0.0.2").await;
    let unused = Phone::new_on("t2", pbx_addr, "127.0.0.3").await;
    let (a1, a2) = (trunk.ep.local_addr(), unused.ep.local_addr());
    let dir = temp_dir("did-queue");
    let pbx = Pbx::start_edited(dir.clone(), port, |c| {
        trunk_config(c, a1, a2) + "\n[[incalls]]\ndid = \"0987654322\"\nqueue = \"3100\"\n"
    });
    let invite = trunk.build(
        "INVITE",
        &format!("sip:0987654322@{pbx_addr}"),
        "<sip:0987654322@pbxkit>",
        "did-queue-call",
        SDP,
    );
    let mut tx = trunk
        .ep
        .send_request(invite.clone(), trunk.target())
        .await
        .unwrap();
    let ClientEvent::Response(answer) = timeout(WAIT, tx.final_response()).await.unwrap() else {
        panic!("no answer")
    };
    // Answered by the queue (music, nobody logged in), then the caller gives up.
    assert_eq!(answer.status(), Some(StatusCode::OK), "{answer}");
    assert_eq!(
        ack_and_bye(&trunk, &invite, &answer, "0987654322").await,
        StatusCode::OK
    );
    let lines = queue_log_with(&dir, &["ENTERQUEUE", "ABANDON"]).await;
    let enter = lines.iter().find(|l| l.contains("|ENTERQUEUE|")).unwrap();
    assert!(
        enter.contains("|support|NONE|ENTERQUEUE||0612345678|"),
        "{enter}"
    );
    drop(pbx);
}

#[tokio::test]
async fn calls_from_a_trunk_are_routed_by_did_without_a_password() {
    let port = free_port();
    let pbx_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    // The trunk asserts who calls (RFC 3325); From is its own account.
    let trunk = Phone::new_on("0612345678", pbx_addr, "127.0.0.2")
        .await
        .with_headers("P-Asserted-Identity: \"Jane Doe\" <sip:+33123456789@provider>\r\n");
    let unused = Phone::new_on("t2", pbx_addr, "127.0.0.3").await;
    let (a1, a2) = (trunk.ep.local_addr(), unused.ep.local_addr());
    let pbx = Pbx::start_edited(temp_dir("did"), port, |c| trunk_config(c, a1, a2));
    let bob = registered("1001", "pbx1001pw", &pbx).await;
    let bob_saw = Offers::default();
    let bob_log = bob.answer_calls_seeing(StatusCode::OK, SDP.to_owned(), bob_saw.clone(), 1);
    // No credentials at all: the trunk's address is trusted.
    let invite = trunk.build(
        "INVITE",
        &format!("sip:0987654321@{pbx_addr}"),
        "<sip:0987654321@pbxkit>",
        "did-call",
        SDP,
    );
    let mut tx = trunk
        .ep
        .send_request(invite.clone(), trunk.target())
        .await
        .unwrap();
    let ClientEvent::Response(answer) = timeout(WAIT, tx.final_response()).await.unwrap() else {
        panic!("no answer")
    };
    assert_eq!(answer.status(), Some(StatusCode::OK), "{answer}");
    assert_eq!(
        ack_and_bye(&trunk, &invite, &answer, "0987654321").await,
        StatusCode::OK
    );
    assert_eq!(
        timeout(WAIT, bob_log).await.unwrap().unwrap(),
        ["INVITE", "ACK", "BYE"]
    );
    // Bob's phone shows the asserted caller, in From and in Remote-Party-ID.
    let to_bob = bob_saw.invites.lock().unwrap()[0].clone();
    let from = to_bob.from().unwrap();
    assert_eq!(
        from.display.as_ref().map(|d| d.text()).as_deref(),
        Some("Jane Doe")
    );
    assert_eq!(
        from.uri.as_sip().and_then(|u| u.user.as_deref()),
        Some("+33123456789")
    );
    let rpid = to_bob.headers().first(&HeaderName::RemotePartyId).unwrap();
    assert!(rpid.value.contains("+33123456789") && rpid.value.contains("party=calling"));
    // An unknown DID from the trunk is not found; a stranger is still challenged.
    let other = trunk.build(
        "INVITE",
        &format!("sip:0111111111@{pbx_addr}"),
        "<sip:0111111111@pbxkit>",
        "did-unknown",
        SDP,
    );
    let mut tx = trunk.ep.send_request(other, trunk.target()).await.unwrap();
    let ClientEvent::Response(r) = timeout(WAIT, tx.final_response()).await.unwrap() else {
        panic!()
    };
    assert_eq!(r.status(), Some(StatusCode::NOT_FOUND), "{r}");
    let stranger = Phone::new_on("1000", pbx_addr, "127.0.0.4").await;
    let invite = stranger.build(
        "INVITE",
        &format!("sip:0987654321@{pbx_addr}"),
        "<sip:0987654321@pbxkit>",
        "stranger",
        SDP,
    );
    let mut tx = stranger
        .ep
        .send_request(invite, stranger.target())
        .await
        .unwrap();
    let ClientEvent::Response(r) = timeout(WAIT, tx.final_response()).await.unwrap() else {
        panic!()
    };
    assert_eq!(r.status(), Some(StatusCode::UNAUTHORIZED));
}

#[tokio::test]
async fn trunks_register_with_digest_and_a_silent_trunk_is_skipped() {
    let port = free_port();
    let pbx_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    // t1 never answers anything; t2 is a registrar that wants credentials.
    let mut t1 = Phone::new_on("t1", pbx_addr, "127.0.0.2").await;
    let mut t2 = Phone::new_on("t2", pbx_addr, "127.0.0.3").await;
    let (a1, a2) = (t1.ep.local_addr(), t2.ep.local_addr());
    let dir = temp_dir("trunkreg");
    let pbx = Pbx::start_edited(dir.clone(), port, |c| {
        trunk_config_with(c, a1, a2, "qualify = 1", "register = true\nqualify = 1")
    });
    let t2_task = tokio::spawn(async move {
        let mut digest = pbxkit_sip::digest::DigestServer::new("provider", b"k", 300);
        let mut seen = Vec::new();
        while let Ok(Some(incoming)) = timeout(WAIT, t2.ep.next()).await {
            let Incoming::Request(req) = incoming else {
                continue;
            };
            let m = &req.request;
            let method = m.method().unwrap().clone();
            let mut r = Message::response_to(m, StatusCode::OK, Some("t2tag"));
            match method {
                Method::Register => {
                    let creds = m
                        .headers()
                        .typed::<Auth>(&HeaderName::Authorization)
                        .and_then(Result::ok);
                    let verified = creds.and_then(|c| {
                        digest
                            .verify(&c, "REGISTER", 1, |u| {
                                (u == "pbx-account").then(|| "trunk-secret".to_owned())
                            })
                            .ok()
                    });
                    if verified.is_some() {
                        seen.push("REGISTER ok".to_owned());
                        let contact = m.headers().get(&HeaderName::Contact).unwrap().to_owned();
                        r.headers_mut()
                            .push(HeaderName::Contact, format!("{contact};expires=300"));
                    } else {
                        seen.push("REGISTER challenged".to_owned());
                        r = Message::response_to(m, StatusCode::UNAUTHORIZED, Some("t2tag"));
                        r.headers_mut().push(
                            HeaderName::WwwAuthenticate,
                            digest
                                .challenge(1, pbxkit_sip::digest::Algorithm::Md5, false)
                                .to_string(),
                        );
                    }
                }
                Method::Invite => {
                    seen.push("INVITE".to_owned());
                    let me = t2.ep.local_addr();
                    let h = r.headers_mut();
                    h.push(HeaderName::Contact, format!("<sip:t2@{me}>"));
                    h.push(HeaderName::ContentType, "application/sdp");
                    h.set(HeaderName::ContentLength, SDP.len().to_string());
                    r.body = SDP.as_bytes().to_vec().into();
                }
                Method::Bye => seen.push("BYE".to_owned()),
                _ => {}
            }
            req.respond(r).await.unwrap();
            if method == Method::Bye {
                return seen;
            }
        }
        seen
    });
    // Qualify notices that t1 does not answer (2 s without an answer to OPTIONS).
    let log = dir.join("pbx.log");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("trunk down")
    {
        assert!(std::time::Instant::now() < deadline, "t1 never marked down");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let alice = registered("1000", "pbx1000pw", &pbx).await;
    let (invite, answer) = call(&alice, "0612345678").await;
    assert_eq!(answer.status(), Some(StatusCode::OK), "{answer}");
    assert_eq!(
        ack_and_bye(&alice, &invite, &answer, "0612345678").await,
        StatusCode::OK
    );
    let seen = timeout(WAIT, t2_task).await.unwrap().unwrap();
    assert_eq!(
        seen,
        ["REGISTER challenged", "REGISTER ok", "INVITE", "BYE"]
    );
    // t1 got OPTIONS only: the call skipped it.
    drop(pbx);
    let mut t1_methods = Vec::new();
    while let Ok(Some(incoming)) = timeout(Duration::from_millis(200), t1.ep.next()).await {
        if let Incoming::Request(req) = incoming {
            t1_methods.push(req.request.method().unwrap().to_string());
        }
    }
    assert!(
        !t1_methods.is_empty() && t1_methods.iter().all(|m| m == "OPTIONS"),
        "{t1_methods:?}"
    );
}

#[tokio::test]
async fn blind_transfer_puts_the_target_in_the_transferors_place() {
    let dir = temp_dir("transfer");
    let mut pbx = Pbx::start(dir.clone(), free_port());
    let mut alice = registered("1000", "pbx1000pw", &pbx).await;
    let bob = registered("1001", "pbx1001pw", &pbx).await;
    let carol = registered("1002", "pbx1002pw", &pbx).await;
    let bob_log = bob.answer_calls(StatusCode::OK);
    let carol_log = carol.answer_calls(StatusCode::OK);
    let (invite, answer) = call(&alice, "1001").await;
    assert_eq!(answer.status(), Some(StatusCode::OK));
    let dialog = InDialog::ack(&alice, &invite, &answer, "1001").await;
    let (pbx_contact, to, call_id) = (&*dialog.contact, &*dialog.to, &*dialog.call_id);

    // Alice transfers Bob to Carol.
    let mut refer = alice.build("REFER", pbx_contact, to, call_id, "");
    refer
        .headers_mut()
        .push(HeaderName::ReferTo, format!("<sip:1002@{}>", pbx.addr));
    let mut tx = alice.ep.send_request(refer, alice.target()).await.unwrap();
    let ClientEvent::Response(accepted) = timeout(WAIT, tx.final_response()).await.unwrap() else {
        panic!("no answer to REFER")
    };
    assert_eq!(
        accepted.status().map(|s| s.as_u16()),
        Some(202),
        "{accepted}"
    );
    // Alice hears how it goes (NOTIFY with a sipfrag), then is hung up.
    let mut alice_saw = Vec::new();
    while let Ok(Some(incoming)) = timeout(WAIT, alice.ep.next()).await {
        let Incoming::Request(req) = incoming else {
            continue;
        };
        let method = req.request.method().unwrap().clone();
        let frag = String::from_utf8_lossy(&req.request.body).trim().to_owned();
        alice_saw.push(format!("{method} {frag}").trim().to_owned());
        req.respond(Message::response_to(&req.request, StatusCode::OK, None))
            .await
            .unwrap();
        if method == Method::Bye {
            break;
        }
    }
    assert_eq!(
        alice_saw,
        ["NOTIFY SIP/2.0 100 Trying", "NOTIFY SIP/2.0 200 OK", "BYE"]
    );
    // Bob and Carol are now together: stopping the PBX hangs both up.
    let mut pbx_proc = tokio::task::spawn_blocking(move || {
        pbx.terminate(Duration::from_secs(15));
        pbx
    });
    assert_eq!(
        timeout(WAIT, carol_log).await.unwrap().unwrap(),
        ["INVITE", "ACK", "BYE"]
    );
    assert_eq!(
        timeout(WAIT, bob_log).await.unwrap().unwrap(),
        ["INVITE", "ACK", "BYE"]
    );
    let _ = (&mut pbx_proc).await;
    let cdr = std::fs::read_to_string(dir.join("data").join("cdr.jsonl")).unwrap();
    assert!(cdr.contains("\"ANSWERED\""), "{cdr}");
}

#[tokio::test]
async fn playback_test_plays_the_prompt_then_hangs_up() {
    let pbx = Pbx::start(temp_dir("playback"), free_port());
    let mut alice = registered("1000", "pbx1000pw", &pbx).await;
    let media = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (invite, answer) =
        call_with(&alice, "9001", &sdp(media.local_addr().unwrap().port())).await;
    assert_eq!(answer.status(), Some(StatusCode::OK), "{answer}");
    // (The PBX's BYE waits for this ACK, RFC 3261 §15.)
    InDialog::ack(&alice, &invite, &answer, "9001").await;
    let answer_sdp = pbxkit_sip::sdp::Session::parse_body(&answer.body).unwrap();
    let pbx_media: SocketAddr = format!("127.0.0.1:{}", answer_sdp.media[0].port)
        .parse()
        .unwrap();
    // The built-in prompt: 1.25 s of G.711 µ-law in 20 ms packets, from the PBX's port.
    let mut buf = [0u8; 2048];
    let mut packets = Vec::new();
    while let Ok(Ok((n, from))) = timeout(Duration::from_secs(2), media.recv_from(&mut buf)).await {
        assert_eq!(from, pbx_media);
        packets.push(pbxkit_rtp::RtpPacket::parse(buf[..n].to_vec()).unwrap());
    }
    assert_eq!(packets.len(), 63);
    assert!(
        packets
            .iter()
            .all(|p| p.payload_type().get() == 0 && p.payload().len() == 160)
    );
    // Not silence: µ-law silence is 0xFF.
    assert!(packets[0].payload().iter().any(|&b| b != 0xFF));
    // Then the PBX hangs up.
    let bye = loop {
        match timeout(WAIT, alice.ep.next()).await.unwrap().unwrap() {
            Incoming::Request(req) => break req,
            _ => continue,
        }
    };
    assert_eq!(bye.request.method(), Some(&Method::Bye));
    bye.respond(Message::response_to(&bye.request, StatusCode::OK, None))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_user_at_its_simultaneous_calls_limit_is_busy() {
    let pbx = Pbx::start_edited(temp_dir("limit"), free_port(), |c| {
        c.replace(
            "password = \"pbx1006pw\"",
            "password = \"pbx1006pw\"\nsimultaneous_calls = 1",
        )
    });
    let alice = registered("1000", "pbx1000pw", &pbx).await;
    let carol = registered("1002", "pbx1002pw", &pbx).await;
    let gina = registered("1006", "pbx1006pw", &pbx).await;
    let gina_log = gina.answer_calls(StatusCode::OK);
    let (invite, answer) = call(&alice, "1006").await;
    assert_eq!(answer.status(), Some(StatusCode::OK));
    // Gina is on a call: her limit of one makes her busy for Carol, whose call does
    // not reach her phone.
    assert_eq!(
        call(&carol, "1006").await.1.status(),
        Some(StatusCode::BUSY_HERE)
    );
    assert_eq!(
        ack_and_bye(&alice, &invite, &answer, "1006").await,
        StatusCode::OK
    );
    assert_eq!(
        timeout(WAIT, gina_log).await.unwrap().unwrap(),
        ["INVITE", "ACK", "BYE"]
    );
}

/// The next request `phone` receives (other events skipped), answered 200 (the
/// NOTIFYs and BYEs a transferor gets).
async fn answered_request(phone: &mut Phone) -> Message {
    loop {
        let Ok(Some(incoming)) = timeout(WAIT, phone.ep.next()).await else {
            panic!("{} received no request", phone.user)
        };
        if let Incoming::Request(req) = incoming {
            req.respond(Message::response_to(&req.request, StatusCode::OK, None))
                .await
                .unwrap();
            return req.request;
        }
    }
}

/// The body of a NOTIFY's sipfrag, trimmed.
fn sipfrag(notify: &Message) -> String {
    String::from_utf8_lossy(&notify.body).trim().to_owned()
}

/// The relay port the last offer in `offers` told the phone to send to.
fn offered_port(offers: &Offers) -> u16 {
    offers.sdp.lock().unwrap().last().unwrap().media[0].port
}

#[tokio::test]
async fn attended_transfer_joins_the_two_other_parties() {
    let pbx = Pbx::start(temp_dir("attended"), free_port());
    let mut alice = registered("1000", "pbx1000pw", &pbx).await;
    let bob = registered("1001", "pbx1001pw", &pbx).await;
    let carol = registered("1002", "pbx1002pw", &pbx).await;
    let bob_media = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let carol_media = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (bob_offers, carol_offers) = (Offers::default(), Offers::default());
    let bob_log = bob.answer_calls_seeing(
        StatusCode::OK,
        sdp(bob_media.local_addr().unwrap().port()),
        bob_offers.clone(),
        1,
    );
    let carol_log = carol.answer_calls_seeing(
        StatusCode::OK,
        sdp(carol_media.local_addr().unwrap().port()),
        carol_offers.clone(),
        1,
    );
    // Alice talks to Bob, then consults Carol on a second call.
    let (invite1, answer1) = call(&alice, "1001").await;
    let first = InDialog::ack(&alice, &invite1, &answer1, "1001").await;
    let (invite2, answer2) = call(&alice, "1002").await;
    assert_eq!(answer2.status(), Some(StatusCode::OK));
    let second = InDialog::ack(&alice, &invite2, &answer2, "1002").await;
    let bob_port = offered_port(&bob_offers);
    let carol_origin = carol_offers.sdp.lock().unwrap()[0].origin.clone();

    // Alice transfers Bob to Carol: REFER on the first call, Replaces naming the second
    // (to-tag: the PBX's tag, from-tag: Alice's).
    let pbx_tag = answer2.to().unwrap().tag().unwrap().to_owned();
    let refer_to = format!(
        "<sip:1002@{}?Replaces={}%3Bto-tag%3D{pbx_tag}%3Bfrom-tag%3Dph1000>",
        pbx.addr, second.call_id
    );
    let mut refer = alice.build("REFER", &first.contact, &first.to, &first.call_id, "");
    refer.headers_mut().push(HeaderName::ReferTo, refer_to);
    let mut tx = alice.ep.send_request(refer, alice.target()).await.unwrap();
    let ClientEvent::Response(accepted) = timeout(WAIT, tx.final_response()).await.unwrap() else {
        panic!("no answer to REFER")
    };
    assert_eq!(accepted.status().map(|s| s.as_u16()), Some(202));
    // Alice hears that it worked, and both her calls are hung up.
    let mut alice_saw = Vec::new();
    let mut byes = Vec::new();
    while byes.len() < 2 {
        let req = answered_request(&mut alice).await;
        let method = req.method().unwrap().clone();
        if method == Method::Bye {
            byes.push(req.call_id().unwrap().0.to_string());
        } else {
            alice_saw.push(format!("{method} {}", sipfrag(&req)));
        }
    }
    assert_eq!(
        alice_saw,
        ["NOTIFY SIP/2.0 100 Trying", "NOTIFY SIP/2.0 200 OK"]
    );
    byes.sort();
    let mut calls = vec![first.call_id.clone(), second.call_id.clone()];
    calls.sort();
    assert_eq!(byes, calls);

    // Carol was moved onto the first call's relay (her origin continued), Bob was
    // re-offered media off hold on his unchanged port.
    let to_carol = carol_offers.sdp.lock().unwrap().last().unwrap().clone();
    assert_eq!(to_carol.origin.session_id, carol_origin.session_id);
    assert!(to_carol.origin.session_version > carol_origin.session_version);
    assert_eq!(
        to_carol.media[0].direction(to_carol.direction()),
        pbxkit_sip::sdp::Direction::SendRecv
    );
    assert_eq!(bob_offers.sdp.lock().unwrap().len(), 2);
    assert_eq!(offered_port(&bob_offers), bob_port);
    let carol_port = offered_port(&carol_offers);
    // Audio flows between Bob and Carol through the relay, both ways.
    let pbx_ip = pbx.addr.ip();
    let mut buf = [0u8; 2048];
    for (from, to_port, to) in [
        (&bob_media, bob_port, &carol_media),
        (&carol_media, carol_port, &bob_media),
    ] {
        let mut got = false;
        for seq in 0..50u16 {
            from.send_to(&rtp(seq), (pbx_ip, to_port)).await.unwrap();
            if let Ok(Ok((n, _))) =
                timeout(Duration::from_millis(100), to.recv_from(&mut buf)).await
            {
                assert_eq!(n, rtp(seq).len());
                got = true;
                break;
            }
        }
        assert!(got, "no audio relayed to port {to_port}");
    }
    // Bob and Carol are on one call now: stopping the PBX hangs both up.
    drop(alice);
    let stopped = {
        let mut pbx = pbx;
        tokio::task::spawn_blocking(move || pbx.terminate(Duration::from_secs(15)))
    };
    assert_eq!(
        timeout(WAIT, carol_log).await.unwrap().unwrap(),
        ["INVITE", "ACK", "INVITE", "ACK", "BYE"]
    );
    assert_eq!(
        timeout(WAIT, bob_log).await.unwrap().unwrap(),
        ["INVITE", "ACK", "INVITE", "ACK", "BYE"]
    );
    let _ = stopped.await;
}

#[tokio::test]
async fn attended_transfer_to_an_unknown_dialog_fails_and_the_call_goes_on() {
    let pbx = Pbx::start(temp_dir("attended-unknown"), free_port());
    let mut alice = registered("1000", "pbx1000pw", &pbx).await;
    let bob = registered("1001", "pbx1001pw", &pbx).await;
    let bob_log = bob.answer_calls(StatusCode::OK);
    let (invite, answer) = call(&alice, "1001").await;
    let dialog = InDialog::ack(&alice, &invite, &answer, "1001").await;
    let mut refer = alice.build("REFER", &dialog.contact, &dialog.to, &dialog.call_id, "");
    refer.headers_mut().push(
        HeaderName::ReferTo,
        format!(
            "<sip:1002@{}?Replaces=gone%40x%3Bto-tag%3D1%3Bfrom-tag%3D2>",
            pbx.addr
        ),
    );
    let mut tx = alice.ep.send_request(refer, alice.target()).await.unwrap();
    let ClientEvent::Response(accepted) = timeout(WAIT, tx.final_response()).await.unwrap() else {
        panic!("no answer to REFER")
    };
    assert_eq!(accepted.status().map(|s| s.as_u16()), Some(202));
    let mut frags = Vec::new();
    while frags.len() < 2 {
        frags.push(sipfrag(&answered_request(&mut alice).await));
    }
    assert_eq!(
        frags,
        [
            "SIP/2.0 100 Trying",
            "SIP/2.0 481 Call/Transaction Does Not Exist"
        ]
    );
    // Alice still has Bob.
    assert_eq!(dialog.bye(&alice).await, StatusCode::OK);
    assert_eq!(
        timeout(WAIT, bob_log).await.unwrap().unwrap(),
        ["INVITE", "ACK", "BYE"]
    );
}

#[tokio::test]
async fn session_intervals_below_min_se_are_refused_with_422() {
    let pbx = Pbx::start(temp_dir("min-se"), free_port());
    let alice = registered("1000", "pbx1000pw", &pbx)
        .await
        .with_headers("Supported: timer\r\nSession-Expires: 60\r\n");
    let (_, refused) = call(&alice, "1001").await;
    assert_eq!(refused.status().map(|s| s.as_u16()), Some(422), "{refused}");
    assert_eq!(
        refused.headers().first(&HeaderName::MinSe).map(|h| h.value),
        Some("90")
    );
}

#[tokio::test]
async fn session_timers_refresh_live_legs_and_hang_up_silent_ones() {
    let pbx = Pbx::start_edited(temp_dir("timers"), free_port(), |c| {
        c.replace(
            "session_expires = 1800\nmin_se = 90",
            "session_expires = 3\nmin_se = 1",
        )
    });
    // Alice asks to refresh herself (refresher=uac), then never does; Bob knows
    // nothing of session timers, so the PBX refreshes his leg.
    let mut alice = registered("1000", "pbx1000pw", &pbx)
        .await
        .with_headers("Supported: timer\r\nSession-Expires: 3;refresher=uac\r\n");
    let bob = registered("1001", "pbx1001pw", &pbx).await;
    let bob_offers = Offers::default();
    let bob_log = bob.answer_calls_seeing(StatusCode::OK, SDP.to_owned(), bob_offers.clone(), 1);
    let (invite, answer) = call(&alice, "1001").await;
    assert_eq!(answer.status(), Some(StatusCode::OK));
    let header = |name| answer.headers().first(&name).map(|h| h.value.to_owned());
    assert_eq!(
        header(HeaderName::SessionExpires).as_deref(),
        Some("3;refresher=uac")
    );
    assert_eq!(header(HeaderName::Require).as_deref(), Some("timer"));
    InDialog::ack(&alice, &invite, &answer, "1001").await;
    // 2 s without a refresh from Alice (3 s less a third): both legs get BYE.
    let Ok(Some(Incoming::Request(bye))) = timeout(WAIT, alice.ep.next()).await else {
        panic!("no BYE for alice")
    };
    assert_eq!(bye.request.method(), Some(&Method::Bye));
    bye.respond(Message::response_to(&bye.request, StatusCode::OK, None))
        .await
        .unwrap();
    assert_eq!(
        timeout(WAIT, bob_log).await.unwrap().unwrap(),
        ["INVITE", "ACK", "INVITE", "ACK", "BYE"]
    );
    // Bob's refresh (at half his 3 s) re-offered exactly what he had, version included.
    let offers = bob_offers.sdp.lock().unwrap();
    assert_eq!(offers.len(), 2);
    assert_eq!(offers[0], offers[1]);
}

#[tokio::test]
async fn the_relay_transcodes_when_the_phones_share_no_codec() {
    let pbx = Pbx::start(temp_dir("transcode"), free_port());
    let alice = registered("1000", "pbx1000pw", &pbx).await;
    let bob = registered("1001", "pbx1001pw", &pbx).await;
    let alice_media = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let bob_media = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let only = |port: u16, pt: &str| {
        sdp(port).replace(
            "RTP/AVP 0 8 101",
            &format!("RTP/AVP {pt} 101\r\na=fmtp:101 0-16"),
        )
    };
    // Alice has only G.722, Bob only PCMU.
    let bob_offers = Offers::default();
    let bob_log = bob.answer_calls_seeing(
        StatusCode::OK,
        only(bob_media.local_addr().unwrap().port(), "0"),
        bob_offers.clone(),
        1,
    );
    let (invite, answer) = call_with(
        &alice,
        "1001",
        &only(alice_media.local_addr().unwrap().port(), "9"),
    )
    .await;
    assert_eq!(answer.status(), Some(StatusCode::OK));
    let to_alice = pbxkit_sip::sdp::Session::parse_body(&answer.body).unwrap();
    let formats = |m: &pbxkit_sip::sdp::Media| {
        m.formats
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(formats(&to_alice.media[0]), ["9", "101"]);
    let offered = bob_offers.sdp.lock().unwrap()[0].clone();
    assert_eq!(formats(&offered.media[0])[..4], ["9", "101", "0", "8"]);
    let dialog = InDialog::ack(&alice, &invite, &answer, "1001").await;

    // G.722 from Alice reaches Bob as PCMU, and PCMU from Bob reaches Alice as G.722,
    // each 20 ms packet still 160 bytes; DTMF events pass on both.
    let packet = |pt: u8, seq: u16| {
        let mut p = rtp(seq);
        p[1] = pt;
        p
    };
    let mut buf = [0u8; 2048];
    for (from, to_port, to, sent_pt, got_pt) in [
        (&alice_media, to_alice.media[0].port, &bob_media, 9, 0),
        (&bob_media, offered.media[0].port, &alice_media, 0, 9),
        (&alice_media, to_alice.media[0].port, &bob_media, 101, 101),
    ] {
        let mut got = None;
        for seq in 0..50u16 {
            let mut p = packet(sent_pt, seq);
            if sent_pt == 101 {
                p.truncate(16);
            }
            from.send_to(&p, (pbx.addr.ip(), to_port)).await.unwrap();
            // Packets of an earlier round sent before one got through may still come
            // in (a loaded machine): only this round's payload type counts.
            if let Ok(Ok((n, _))) =
                timeout(Duration::from_millis(100), to.recv_from(&mut buf)).await
                && buf[1] & 0x7F == got_pt
            {
                got = Some(buf[..n].to_vec());
                break;
            }
        }
        let got = got.unwrap_or_else(|| panic!("nothing relayed from PT {sent_pt}"));
        assert_eq!(got[1] & 0x7F, got_pt);
        assert_eq!(got.len(), if sent_pt == 101 { 16 } else { 12 + 160 });
    }
    assert_eq!(dialog.bye(&alice).await, StatusCode::OK);
    assert_eq!(
        timeout(WAIT, bob_log).await.unwrap().unwrap(),
        ["INVITE", "ACK", "BYE"]
    );
}

/// The `queue_log` lines of `queue`, as `EVENT agent`.
fn in_queue(lines: &[String], queue: &str) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            (f.len() > 4 && f[2] == queue).then(|| format!("{} {}", f[4], f[3]))
        })
        .collect()
}

#[tokio::test]
async fn a_round_robin_group_remembers_who_answered_and_waits_between_members() {
    let dir = temp_dir("group");
    let pbx = Pbx::start_with(
        dir.clone(),
        free_port(),
        "\n[[groups]]\nexten = \"3000\"\nname = \"Sales\"\nstrategy = \"rrmemory\"\n\
         members = [\"1001\", \"1002\"]\nmember_ring_time = 1\nretry_delay = 1\n",
    );
    let alice = registered("1000", "pbx1000pw", &pbx).await;
    let bob = registered("1001", "pbx1001pw", &pbx).await;
    let carol = registered("1002", "pbx1002pw", &pbx).await;
    let bob_log = bob.answer_calls_seeing(StatusCode::OK, SDP.to_owned(), Offers::default(), 2);
    let carol_log = carol.answer_calls(StatusCode::RINGING);

    // No history: the first member, Bob, answers.
    let (invite, answer) = call(&alice, "3000").await;
    assert_eq!(answer.status(), Some(StatusCode::OK));
    assert_eq!(
        ack_and_bye(&alice, &invite, &answer, "3000").await,
        StatusCode::OK
    );
    // Bob answered last: Carol rings first, for her 1 s, then after the 1 s retry
    // delay Bob rings again and answers.
    let started = std::time::Instant::now();
    let (invite, answer) = call(&alice, "3000").await;
    assert_eq!(answer.status(), Some(StatusCode::OK));
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        ack_and_bye(&alice, &invite, &answer, "3000").await,
        StatusCode::OK
    );
    assert_eq!(
        timeout(WAIT, carol_log).await.unwrap().unwrap(),
        ["INVITE", "CANCEL"]
    );
    assert_eq!(
        timeout(WAIT, bob_log).await.unwrap().unwrap(),
        ["INVITE", "ACK", "BYE", "INVITE", "ACK", "BYE"]
    );
    // The order of the members rung is checked on the engine's CallRinging events
    // in tests/engine.rs.
    // Like XiVO's groups (queues), the group's calls are in the queue_log (under
    // its number: names are free text), and `pbxkit acd stats` counts them.
    // The journal syncs in batches: wait (bounded) for both calls' last lines.
    let mut lines = Vec::new();
    let mut sales: Vec<String> = Vec::new();
    for _ in 0..50 {
        lines = queue_log_with(&dir, &["ENTERQUEUE", "CONNECT", "COMPLETECALLER"]).await;
        sales = in_queue(&lines, "3000");
        if sales.len() >= 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        sales,
        [
            "ENTERQUEUE NONE",
            "CONNECT SIP/1001",
            "COMPLETECALLER SIP/1001",
            "ENTERQUEUE NONE",
            "CONNECT SIP/1001",
            "COMPLETECALLER SIP/1001"
        ],
        "{lines:?}"
    );
    let (received, answered, abandoned, timeout_) = queue_stats(&dir.join("data/queue_log"));
    assert_eq!((received, answered, abandoned, timeout_), (2, 2, 0, 0));
}

#[tokio::test]
async fn a_group_nobody_answers_in_its_time_exits_with_timeout_in_the_queue_log() {
    let dir = temp_dir("group-timeout");
    let pbx = Pbx::start_with(
        dir.clone(),
        free_port(),
        "\n[[groups]]\nexten = \"3000\"\nname = \"Night\"\nstrategy = \"ringall\"\n\
         members = [\"1001\"]\nring_time = 1\n",
    );
    let alice = registered("1000", "pbx1000pw", &pbx).await;
    let bob = registered("1001", "pbx1001pw", &pbx).await;
    let _bob_log = bob.answer_calls(StatusCode::RINGING);
    let (_, answer) = call(&alice, "3000").await;
    assert_eq!(
        answer.status(),
        Some(StatusCode::TEMPORARILY_UNAVAILABLE),
        "{answer}"
    );
    let lines = queue_log_with(&dir, &["ENTERQUEUE", "EXITWITHTIMEOUT"]).await;
    assert_eq!(
        in_queue(&lines, "3000"),
        ["ENTERQUEUE NONE", "EXITWITHTIMEOUT NONE"],
        "{lines:?}"
    );
    let (received, answered, _, timeout_) = queue_stats(&dir.join("data/queue_log"));
    assert_eq!((received, answered, timeout_), (1, 0, 1));
}

#[tokio::test]
async fn the_transferee_hears_ringback_while_the_target_rings() {
    let pbx = Pbx::start_edited(temp_dir("ringback"), free_port(), |c| {
        c.replace("ring_time = 30", "ring_time = 2")
    });
    let mut alice = registered("1000", "pbx1000pw", &pbx).await;
    let bob = registered("1001", "pbx1001pw", &pbx).await;
    let carol = registered("1002", "pbx1002pw", &pbx).await;
    let bob_media = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let bob_offers = Offers::default();
    let _bob_log = bob.answer_calls_seeing(
        StatusCode::OK,
        sdp(bob_media.local_addr().unwrap().port()),
        bob_offers.clone(),
        1,
    );
    // Carol rings and never answers: the transfer fails after her 2 s.
    let _carol_log = carol.answer_calls(StatusCode::RINGING);
    let (invite, answer) = call(&alice, "1001").await;
    let dialog = InDialog::ack(&alice, &invite, &answer, "1001").await;
    let relay_port = offered_port(&bob_offers);
    let mut refer = alice.build("REFER", &dialog.contact, &dialog.to, &dialog.call_id, "");
    refer
        .headers_mut()
        .push(HeaderName::ReferTo, format!("<sip:1002@{}>", pbx.addr));
    alice.ep.send_request(refer, alice.target()).await.unwrap();

    // Bob gets the French ringback (440 Hz) in PCMU, 20 ms packets from his relay port.
    let mut buf = [0u8; 2048];
    let mut packets = 0;
    while packets < 25 {
        let (n, from) = timeout(WAIT, bob_media.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(from.port(), relay_port);
        let p = pbxkit_rtp::RtpPacket::parse(buf[..n].to_vec()).unwrap();
        assert_eq!(p.payload_type(), pbxkit_rtp::PayloadType::PCMU);
        assert_eq!(p.payload().len(), 160);
        packets += 1;
    }
    // The transfer fails (NOTIFY with the failure), and the ringback stops.
    loop {
        let frag = sipfrag(&answered_request(&mut alice).await);
        if !frag.contains("100 Trying") {
            assert!(frag.starts_with("SIP/2.0 4"), "{frag}");
            break;
        }
    }
    // Packets already on their way may still come; then silence.
    tokio::time::sleep(Duration::from_millis(100)).await;
    while let Ok(Ok(_)) = timeout(Duration::from_millis(10), bob_media.recv_from(&mut buf)).await {}
    assert!(
        timeout(Duration::from_millis(300), bob_media.recv_from(&mut buf))
            .await
            .is_err(),
        "ringback went on after the transfer failed"
    );
    assert_eq!(dialog.bye(&alice).await, StatusCode::OK);
}

#[tokio::test]
async fn a_transfer_moves_the_call_count_from_the_transferor_to_the_target() {
    let pbx = Pbx::start_edited(temp_dir("transfer-count"), free_port(), |c| {
        ["1000", "1002"].iter().fold(c, |c, user| {
            c.replace(
                &format!("password = \"pbx{user}pw\""),
                &format!("password = \"pbx{user}pw\"\nsimultaneous_calls = 1"),
            )
        })
    });
    let mut alice = registered("1000", "pbx1000pw", &pbx).await;
    let bob = registered("1001", "pbx1001pw", &pbx).await;
    let carol = registered("1002", "pbx1002pw", &pbx).await;
    let dave = registered("1003", "pbx1003pw", &pbx).await;
    let _bob_log = bob.answer_calls(StatusCode::OK);
    let _carol_log = carol.answer_calls(StatusCode::OK);
    let (invite, answer) = call(&alice, "1001").await;
    let dialog = InDialog::ack(&alice, &invite, &answer, "1001").await;
    let mut refer = alice.build("REFER", &dialog.contact, &dialog.to, &dialog.call_id, "");
    refer
        .headers_mut()
        .push(HeaderName::ReferTo, format!("<sip:1002@{}>", pbx.addr));
    alice.ep.send_request(refer, alice.target()).await.unwrap();
    // Alice is hung up once Carol has answered.
    while answered_request(&mut alice).await.method() != Some(&Method::Bye) {}
    // Carol (limit 1) is on Bob's call now: busy for Dave. Alice (limit 1) left it:
    // Dave reaches her.
    assert_eq!(
        call(&dave, "1002").await.1.status(),
        Some(StatusCode::BUSY_HERE)
    );
    let alice_log = alice.answer_calls(StatusCode::OK);
    let (invite, answer) = call(&dave, "1000").await;
    assert_eq!(answer.status(), Some(StatusCode::OK), "{answer}");
    assert_eq!(
        ack_and_bye(&dave, &invite, &answer, "1000").await,
        StatusCode::OK
    );
    assert_eq!(
        timeout(WAIT, alice_log).await.unwrap().unwrap(),
        ["INVITE", "ACK", "BYE"]
    );
}

#[tokio::test]
async fn a_transfer_to_a_call_still_ringing_rings_the_target_for_the_transferee() {
    let pbx = Pbx::start(temp_dir("semi-attended"), free_port());
    let mut alice = registered("1000", "pbx1000pw", &pbx).await;
    let bob = registered("1001", "pbx1001pw", &pbx).await;
    let mut carol = registered("1002", "pbx1002pw", &pbx).await;
    let bob_log = bob.answer_calls(StatusCode::OK);
    // Carol lets Alice's call ring, and answers the next one (Bob, transferred).
    let carol_log = tokio::spawn(async move {
        let mut log = Vec::new();
        let mut invites = 0;
        while let Ok(Some(incoming)) = timeout(Duration::from_secs(15), carol.ep.next()).await {
            match incoming {
                Incoming::Request(req) => {
                    let method = req.request.method().unwrap().clone();
                    log.push(method.to_string());
                    let mut r = Message::response_to(&req.request, StatusCode::RINGING, Some("c"));
                    if method == Method::Invite {
                        invites += 1;
                        req.respond(r.clone()).await.unwrap();
                        if invites == 1 {
                            continue;
                        }
                        r = Message::response_to(&req.request, StatusCode::OK, Some("c"));
                        let h = r.headers_mut();
                        h.push(
                            HeaderName::Contact,
                            format!("<sip:1002@{}>", carol.ep.local_addr()),
                        );
                        h.push(HeaderName::ContentType, "application/sdp");
                        h.set(HeaderName::ContentLength, SDP.len().to_string());
                        r.body = SDP.as_bytes().to_vec().into();
                    } else {
                        r = Message::response_to(&req.request, StatusCode::OK, None);
                    }
                    req.respond(r).await.unwrap();
                    if method == Method::Bye {
                        break;
                    }
                }
                Incoming::Ack { .. } => log.push("ACK".into()),
                Incoming::Cancelled { .. } => log.push("CANCEL".into()),
                _ => {}
            }
        }
        log
    });
    let (invite1, answer1) = call(&alice, "1001").await;
    let first = InDialog::ack(&alice, &invite1, &answer1, "1001").await;
    // Alice calls Carol, who rings: the 180 gives the PBX's tag of that early dialog.
    let uri = format!("sip:1002@{}", pbx.addr);
    let (invite2, mut ringing) = alice
        .send_authenticated("INVITE", &uri, "<sip:1002@pbxkit>", "semi-2", SDP)
        .await;
    let ClientEvent::Response(r180) = timeout(WAIT, ringing.next()).await.unwrap().unwrap() else {
        panic!("no 180")
    };
    assert_eq!(r180.status(), Some(StatusCode::RINGING), "{r180}");
    let pbx_tag = r180.to().unwrap().tag().unwrap().to_owned();
    let refer_to = format!(
        "<sip:1002@{}?Replaces=semi-2%3Bto-tag%3D{pbx_tag}%3Bfrom-tag%3Dph1000>",
        pbx.addr
    );
    let mut refer = alice.build("REFER", &first.contact, &first.to, &first.call_id, "");
    refer.headers_mut().push(HeaderName::ReferTo, refer_to);
    alice.ep.send_request(refer, alice.target()).await.unwrap();
    // Alice's ringing call ends with 487; her first call ends once Carol answered.
    let ClientEvent::Response(terminated) = timeout(WAIT, ringing.final_response()).await.unwrap()
    else {
        panic!("no final response to the ringing call")
    };
    assert_eq!(terminated.status().map(|s| s.as_u16()), Some(487));
    let _ = invite2;
    let mut notified = Vec::new();
    loop {
        let req = answered_request(&mut alice).await;
        if req.method() == Some(&Method::Bye) {
            break;
        }
        notified.push(sipfrag(&req));
    }
    assert_eq!(notified.last().map(String::as_str), Some("SIP/2.0 200 OK"));
    // Bob and Carol talk; stopping the PBX hangs both up.
    let mut pbx = pbx;
    let stopped = tokio::task::spawn_blocking(move || pbx.terminate(Duration::from_secs(15)));
    // The first INVITE's CANCEL may come before or after the transfer's INVITE and
    // its ACK; the call ends with the BYE.
    let mut carol_saw = timeout(WAIT, carol_log).await.unwrap().unwrap();
    carol_saw[..4].sort();
    assert_eq!(carol_saw, ["ACK", "CANCEL", "INVITE", "INVITE", "BYE"]);
    assert_eq!(
        timeout(WAIT, bob_log).await.unwrap().unwrap(),
        ["INVITE", "ACK", "BYE"]
    );
    let _ = stopped.await;
}

#[tokio::test]
async fn a_trunk_caller_hears_the_busy_tone_before_486() {
    let port = free_port();
    let pbx_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let trunk = Phone::new_on("0612345678", pbx_addr, "127.0.0.2").await;
    let unused = Phone::new_on("t2", pbx_addr, "127.0.0.3").await;
    let (a1, a2) = (trunk.ep.local_addr(), unused.ep.local_addr());
    let pbx = Pbx::start_edited(temp_dir("busy-tone"), port, |c| trunk_config(c, a1, a2));
    let bob = registered("1001", "pbx1001pw", &pbx).await;
    let _bob_log = bob.answer_calls(StatusCode::BUSY_HERE);
    let media = tokio::net::UdpSocket::bind("127.0.0.2:0").await.unwrap();
    let offer =
        sdp(media.local_addr().unwrap().port()).replace("IN IP4 127.0.0.1", "IN IP4 127.0.0.2");
    let invite = trunk.build(
        "INVITE",
        &format!("sip:0987654321@{pbx_addr}"),
        "<sip:0987654321@pbxkit>",
        "busy-tone",
        &offer,
    );
    let started = std::time::Instant::now();
    let mut tx = trunk.ep.send_request(invite, trunk.target()).await.unwrap();
    // Early media: 183 with the PBX's SDP, then the busy tone in PCMU from that port.
    let progress = loop {
        let Some(ClientEvent::Response(r)) = timeout(WAIT, tx.next()).await.unwrap() else {
            panic!("no response")
        };
        if r.status() == Some(StatusCode::SESSION_PROGRESS) {
            break r;
        }
        assert!(r.status().unwrap().is_provisional(), "{r}");
    };
    let early = pbxkit_sip::sdp::Session::parse_body(&progress.body).unwrap();
    assert_eq!(early.media[0].formats.len(), 1, "{early}");
    let mut buf = [0u8; 2048];
    for _ in 0..20 {
        let (n, from) = timeout(WAIT, media.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(from.port(), early.media[0].port);
        let p = pbxkit_rtp::RtpPacket::parse(buf[..n].to_vec()).unwrap();
        assert_eq!(p.payload_type(), pbxkit_rtp::PayloadType::PCMU);
    }
    let ClientEvent::Response(busy) = timeout(WAIT, tx.final_response()).await.unwrap() else {
        panic!("no final response")
    };
    assert_eq!(busy.status(), Some(StatusCode::BUSY_HERE), "{busy}");
    assert_eq!(busy.to().unwrap().tag(), progress.to().unwrap().tag());
    assert!(started.elapsed() >= Duration::from_secs(3));
}

#[tokio::test]
async fn a_callee_asking_a_longer_session_interval_is_invited_again_with_it() {
    let pbx = Pbx::start(temp_dir("min-se-callee"), free_port());
    let alice = registered("1000", "pbx1000pw", &pbx).await;
    let mut bob = registered("1001", "pbx1001pw", &pbx).await;
    // Bob refuses intervals under an hour (422 with Min-SE), then answers.
    let bob_saw = tokio::spawn(async move {
        let mut intervals = Vec::new();
        while let Ok(Some(incoming)) = timeout(Duration::from_secs(15), bob.ep.next()).await {
            let Incoming::Request(req) = incoming else {
                continue;
            };
            let method = req.request.method().unwrap().clone();
            if method == Method::Invite {
                let se: u32 = req
                    .request
                    .headers()
                    .first(&HeaderName::SessionExpires)
                    .and_then(|h| h.value.split(';').next()?.trim().parse().ok())
                    .unwrap_or(0);
                intervals.push(se);
                let mut r = if se < 3600 {
                    let mut r = Message::response_to(
                        &req.request,
                        StatusCode::new(422).unwrap(),
                        Some("b"),
                    );
                    r.headers_mut().push(HeaderName::MinSe, "3600");
                    r
                } else {
                    let mut r = Message::response_to(&req.request, StatusCode::OK, Some("b"));
                    let h = r.headers_mut();
                    h.push(
                        HeaderName::Contact,
                        format!("<sip:1001@{}>", bob.ep.local_addr()),
                    );
                    h.push(HeaderName::SessionExpires, "3600;refresher=uac");
                    h.push(HeaderName::ContentType, "application/sdp");
                    h.set(HeaderName::ContentLength, SDP.len().to_string());
                    r.body = SDP.as_bytes().to_vec().into();
                    r
                };
                let len = r.body.len().to_string();
                r.headers_mut().set(HeaderName::ContentLength, len);
                req.respond(r).await.unwrap();
            } else {
                req.respond(Message::response_to(&req.request, StatusCode::OK, None))
                    .await
                    .unwrap();
                if method == Method::Bye {
                    break;
                }
            }
        }
        intervals
    });
    let (invite, answer) = call(&alice, "1001").await;
    assert_eq!(answer.status(), Some(StatusCode::OK), "{answer}");
    assert_eq!(
        ack_and_bye(&alice, &invite, &answer, "1001").await,
        StatusCode::OK
    );
    // The default 1800 s, refused, then the 3600 s Bob asked for.
    assert_eq!(timeout(WAIT, bob_saw).await.unwrap().unwrap(), [1800, 3600]);
}

#[tokio::test]
async fn a_line_at_its_call_limit_cannot_place_another_call() {
    let pbx = Pbx::start_edited(temp_dir("call-limit"), free_port(), |c| {
        c.replace(
            "password = \"pbx1000pw\"",
            "password = \"pbx1000pw\"\ncall_limit = 1",
        )
    });
    let alice = registered("1000", "pbx1000pw", &pbx).await;
    let bob = registered("1001", "pbx1001pw", &pbx).await;
    let bob_log = bob.answer_calls(StatusCode::OK);
    let (invite, answer) = call(&alice, "1001").await;
    assert_eq!(answer.status(), Some(StatusCode::OK));
    // Alice's line has its one call: the next one she places is refused at once.
    assert_eq!(
        call(&alice, "1002").await.1.status(),
        Some(StatusCode::BUSY_HERE)
    );
    assert_eq!(
        ack_and_bye(&alice, &invite, &answer, "1001").await,
        StatusCode::OK
    );
    assert_eq!(
        timeout(WAIT, bob_log).await.unwrap().unwrap(),
        ["INVITE", "ACK", "BYE"]
    );
}

/// A phone dials a feature code: the PBX answers, and the caller hangs up after the
/// confirmation (the change is saved before the 200).
async fn dial_feature(phone: &Phone, code: &str) {
    let (invite, answer) = call(phone, code).await;
    assert_eq!(answer.status(), Some(StatusCode::OK), "{code}: {answer}");
    assert_eq!(
        ack_and_bye(phone, &invite, &answer, code).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn forwards_and_dnd_set_from_a_phone_apply_to_the_next_call_and_survive_restart() {
    let dir = temp_dir("features");
    let port = free_port();
    let pbx = Pbx::start(dir.clone(), port);
    let alice = registered("1000", "pbx1000pw", &pbx).await;
    let bob = registered("1001", "pbx1001pw", &pbx).await;
    let carol = registered("1002", "pbx1002pw", &pbx).await;
    // Bob forwards all his calls to Carol (*21 + number).
    dial_feature(&bob, "*211002").await;
    let carol_log = carol.answer_calls(StatusCode::OK);
    let (invite, answer) = call(&alice, "1001").await;
    assert_eq!(answer.status(), Some(StatusCode::OK), "{answer}");
    ack_and_bye(&alice, &invite, &answer, "1001").await;
    assert_eq!(
        timeout(WAIT, carol_log).await.unwrap().unwrap(),
        ["INVITE", "ACK", "BYE"]
    );
    let saved = std::fs::read_to_string(dir.join("data/users.json")).unwrap();
    assert!(saved.contains("\"1002\""), "{saved}");
    // *21 alone turns it off; *25 puts Bob in DND: busy for callers.
    dial_feature(&bob, "*21").await;
    dial_feature(&bob, "*25").await;
    assert_eq!(
        call(&alice, "1001").await.1.status(),
        Some(StatusCode::BUSY_HERE)
    );
    // After a restart Bob is still in DND; *25 again and his phone rings.
    drop(pbx);
    // (The phones of the first run are gone: their registrations with them.)
    std::fs::remove_file(dir.join("data/registrations.json")).unwrap();
    let pbx = Pbx::start_edited(dir.clone(), port, |c| c);
    let alice = registered("1000", "pbx1000pw", &pbx).await;
    let bob = registered("1001", "pbx1001pw", &pbx).await;
    assert_eq!(
        call(&alice, "1001").await.1.status(),
        Some(StatusCode::BUSY_HERE)
    );
    dial_feature(&bob, "*25").await;
    let bob_log = bob.answer_calls(StatusCode::BUSY_HERE);
    assert_eq!(
        call(&alice, "1001").await.1.status(),
        Some(StatusCode::BUSY_HERE)
    );
    // This time the 486 is his phone's: it was rung.
    assert_eq!(timeout(WAIT, bob_log).await.unwrap().unwrap(), ["INVITE"]);
}

#[tokio::test]
async fn sighup_reloads_the_configuration_without_dropping_calls() {
    sighup_reload().await;
}

/// A user added to the file registers after SIGHUP; a call up before goes on; a
/// file that does not load changes nothing.
async fn sighup_reload() {
    let dir = temp_dir("sighup");
    let pbx = Pbx::start(dir.clone(), free_port());
    let alice = registered("1000", "pbx1000pw", &pbx).await;
    let bob = registered("1001", "pbx1001pw", &pbx).await;
    let _bob_log = bob.answer_calls(StatusCode::OK);
    let (invite, answer) = call(&alice, "1001").await;
    assert_eq!(answer.status(), Some(StatusCode::OK), "{answer}");
    let dialog = InDialog::ack(&alice, &invite, &answer, "1001").await;
    // A new user appears in the file; a SIGHUP makes it real.
    let file = dir.join("pbx.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    let added = format!(
        "{text}\n[[users]]\nexten = \"1010\"\nname = \"New\"\npassword = \"pbx1010pw\"\n\
         \n[[conferences]]\nexten = \"4010\"\nname = \"new room\"\n"
    );
    std::fs::write(&file, &added).unwrap();
    assert_eq!(
        call(&alice, "4010").await.1.status(),
        Some(StatusCode::NOT_FOUND)
    );
    let newcomer = Phone::new("1010", pbx.addr)
        .await
        .with_password("pbx1010pw");
    assert_eq!(
        newcomer.register().await.status(),
        Some(StatusCode::UNAUTHORIZED)
    );
    pbx.signal("HUP");
    let registered_after_reload = async {
        loop {
            if newcomer.register().await.status() == Some(StatusCode::OK) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    timeout(WAIT, registered_after_reload).await.unwrap();
    // So does the new conference room.
    let (room, _voice) = join(&alice, "4010", SDP, ulaw).await;
    assert_eq!(room.bye(&alice).await, StatusCode::OK);
    // A file that does not load is refused: the PBX goes on with what it has.
    std::fs::write(&file, "this is not [toml").unwrap();
    pbx.signal("HUP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(newcomer.register().await.status(), Some(StatusCode::OK));
    // The call that was up before the reloads is still up.
    assert_eq!(dialog.bye(&alice).await, StatusCode::OK);
}

#[tokio::test]
async fn a_call_slow_to_read_its_requests_does_not_stop_registrations_or_other_calls() {
    let pbx = Pbx::start(temp_dir("slowcall"), free_port());
    let alice = registered("1000", "pbx1000pw", &pbx).await;
    let mut bob = registered("1001", "pbx1001pw", &pbx).await;
    // Bob answers the call, then never answers the re-INVITE the PBX relays: the
    // call waits for him (up to 32 s) and reads nothing meanwhile.
    let bob_task = tokio::spawn(async move {
        let mut invites = 0;
        while let Ok(Some(incoming)) = timeout(Duration::from_secs(20), bob.ep.next()).await {
            if let Incoming::Request(req) = incoming
                && req.request.method() == Some(&Method::Invite)
            {
                invites += 1;
                if invites > 1 {
                    continue;
                }
                let mut ok = Message::response_to(&req.request, StatusCode::OK, Some("bob"));
                let me = bob.ep.local_addr();
                let h = ok.headers_mut();
                h.push(HeaderName::Contact, format!("<sip:1001@{me}>"));
                h.push(HeaderName::ContentType, "application/sdp");
                h.set(HeaderName::ContentLength, SDP.len().to_string());
                ok.body = SDP.as_bytes().to_vec().into();
                req.respond(ok).await.unwrap();
            }
        }
        bob
    });
    let (invite, answer) = call(&alice, "1001").await;
    assert_eq!(answer.status(), Some(StatusCode::OK), "{answer}");
    let dialog = InDialog::ack(&alice, &invite, &answer, "1001").await;
    let reinvite = alice.build("INVITE", &dialog.contact, &dialog.to, &dialog.call_id, SDP);
    let _stuck = alice
        .ep
        .send_request(reinvite, alice.target())
        .await
        .unwrap();
    // Alice floods the call with in-dialog requests, far more than it queues.
    let mut flood = Vec::new();
    for _ in 0..200 {
        let info = alice.build("INFO", &dialog.contact, &dialog.to, &dialog.call_id, "");
        flood.push(alice.ep.send_request(info, alice.target()).await.unwrap());
    }
    // Meanwhile other phones register and call as usual.
    let carol = Phone::new("1002", pbx.addr)
        .await
        .with_password("pbx1002pw");
    let registering = timeout(Duration::from_secs(3), carol.register())
        .await
        .expect("REGISTER answered while a call is stuck");
    assert_eq!(registering.status(), Some(StatusCode::OK));
    let (invite, answer) = timeout(Duration::from_secs(5), call(&carol, "9000"))
        .await
        .expect("a call placed while another is stuck");
    assert_eq!(answer.status(), Some(StatusCode::OK), "{answer}");
    ack_and_bye(&carol, &invite, &answer, "9000").await;
    // The engine has no per-call queue to fill: it answers every one.
    let (mut refused, mut answered) = (0, 0);
    for mut tx in flood {
        if let Ok(ClientEvent::Response(r)) =
            timeout(Duration::from_millis(50), tx.final_response()).await
        {
            answered += 1;
            refused += usize::from(r.status() == Some(StatusCode::SERVICE_UNAVAILABLE));
        }
    }
    assert_eq!(answered, 200, "every request answered");
    assert_eq!(refused, 0, "no request refused");
    drop(pbx);
    let _ = bob_task.await;
}

#[tokio::test]
async fn two_calls_placed_at_once_cannot_both_pass_a_call_limit_of_one() {
    let pbx = Pbx::start_edited(temp_dir("call-limit-race"), free_port(), |c| {
        c.replace(
            "password = \"pbx1000pw\"",
            "password = \"pbx1000pw\"\ncall_limit = 1",
        )
    });
    let alice = registered("1000", "pbx1000pw", &pbx).await;
    let bob = registered("1001", "pbx1001pw", &pbx).await;
    // Bob's phone rings and is never picked up: the first call holds the line.
    let bob_log = bob.answer_calls(StatusCode::RINGING);
    // Both INVITEs are authenticated first, then sent back to back.
    let invites = [
        authenticated_invite(&alice, "1001", "race-0").await,
        authenticated_invite(&alice, "1001", "race-1").await,
    ];
    let mut txs = Vec::new();
    for invite in invites {
        txs.push(alice.ep.send_request(invite, alice.target()).await.unwrap());
    }
    let mut finals = Vec::new();
    for mut tx in txs {
        let ClientEvent::Response(r) = timeout(WAIT, tx.final_response()).await.unwrap() else {
            panic!("no final response")
        };
        finals.push(r.status().unwrap());
    }
    finals.sort();
    assert_eq!(
        finals,
        [StatusCode::TEMPORARILY_UNAVAILABLE, StatusCode::BUSY_HERE]
    );
    // One INVITE reached Bob (CANCELled at the end of the ring time).
    let log = timeout(WAIT, bob_log).await.unwrap().unwrap();
    assert_eq!(log.iter().filter(|l| *l == "INVITE").count(), 1, "{log:?}");
}

/// A phone that is a bare UDP socket: it registers by hand, and the test sends and
/// retransmits exactly what it wants.
async fn raw_phone(user: &str, password: &str, pbx: SocketAddr) -> tokio::net::UdpSocket {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let me = socket.local_addr().unwrap();
    let uri = format!("sip:{pbx}");
    let register = |n: u32, auth: &str| {
        format!(
            "REGISTER {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKraw{n};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:{user}@pbxkit>;tag=raw\r\nTo: <sip:{user}@pbxkit>\r\n\
             Call-ID: raw-reg-{user}\r\nCSeq: {n} REGISTER\r\nContact: <sip:{user}@{me}>\r\n\
             {auth}Content-Length: 0\r\n\r\n"
        )
    };
    let mut buf = vec![0u8; 65_535];
    socket
        .send_to(register(1, "").as_bytes(), pbx)
        .await
        .unwrap();
    let (n, _) = timeout(WAIT, socket.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let challenge = Message::parse(buf[..n].to_vec()).unwrap();
    let auth: Auth = challenge
        .headers()
        .typed(&HeaderName::WwwAuthenticate)
        .unwrap()
        .unwrap();
    let creds = digest::respond(&auth, "REGISTER", &uri, user, password, "raw", 1).unwrap();
    let header = format!("Authorization: {creds}\r\n");
    socket
        .send_to(register(2, &header).as_bytes(), pbx)
        .await
        .unwrap();
    let (n, _) = timeout(WAIT, socket.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let ok = Message::parse(buf[..n].to_vec()).unwrap();
    assert_eq!(ok.status(), Some(StatusCode::OK), "{ok}");
    socket
}

/// The next request a bare-socket phone receives, and where from.
async fn raw_request(socket: &tokio::net::UdpSocket) -> (Message, SocketAddr) {
    let mut buf = vec![0u8; 65_535];
    loop {
        let (n, from) = timeout(WAIT, socket.recv_from(&mut buf))
            .await
            .expect("a request")
            .unwrap();
        let message = Message::parse(buf[..n].to_vec()).unwrap();
        if message.method().is_some() {
            return (message, from);
        }
    }
}

#[tokio::test]
async fn the_pbx_acks_every_retransmission_of_the_callees_2xx() {
    let pbx = Pbx::start(temp_dir("reack"), free_port());
    let alice = registered("1000", "pbx1000pw", &pbx).await;
    let bob = raw_phone("1001", "pbx1001pw", pbx.addr).await;
    let caller = tokio::spawn(async move {
        let (invite, answer) = call(&alice, "1001").await;
        (alice, invite, answer)
    });
    let (invite, pbx_leg) = raw_request(&bob).await;
    assert_eq!(invite.method(), Some(&Method::Invite));
    let mut ok = Message::response_to(&invite, StatusCode::OK, Some("bob"));
    let me = bob.local_addr().unwrap();
    let h = ok.headers_mut();
    h.push(HeaderName::Contact, format!("<sip:1001@{me}>"));
    h.push(HeaderName::ContentType, "application/sdp");
    h.set(HeaderName::ContentLength, SDP.len().to_string());
    ok.body = SDP.as_bytes().to_vec().into();
    let ok = ok.to_bytes();
    // Bob "does not see" the first ACKs: he sends his 200 again, and each time
    // the PBX ACKs it again, with the same ACK.
    let mut acks = Vec::new();
    for _ in 0..3 {
        bob.send_to(&ok, pbx_leg).await.unwrap();
        let (ack, _) = raw_request(&bob).await;
        assert_eq!(ack.method(), Some(&Method::Ack), "{ack}");
        acks.push(ack.to_bytes());
    }
    assert!(acks.iter().all(|a| *a == acks[0]));
    let (alice, invite, answer) = timeout(WAIT, caller).await.unwrap().unwrap();
    assert_eq!(answer.status(), Some(StatusCode::OK));
    let dialog = InDialog::ack(&alice, &invite, &answer, "1001").await;
    let hang_up = tokio::spawn(async move { dialog.bye(&alice).await });
    let (bye, from) = raw_request(&bob).await;
    assert_eq!(bye.method(), Some(&Method::Bye));
    bob.send_to(
        &Message::response_to(&bye, StatusCode::OK, None).to_bytes(),
        from,
    )
    .await
    .unwrap();
    assert_eq!(
        timeout(WAIT, hang_up).await.unwrap().unwrap(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_caller_that_never_acks_the_answer_is_hung_up_on_both_legs() {
    // T1 = 50 ms: the PBX gives up on the ACK after 64×T1 = 3.2 s.
    let dir = temp_dir("noack");
    let pbx = Pbx::start_edited(dir.clone(), free_port(), |c| {
        c.replace("t1_ms = 500", "t1_ms = 50")
    });
    let mut alice = registered("1000", "pbx1000pw", &pbx).await;
    let bob = registered("1001", "pbx1001pw", &pbx).await;
    let bob_log = bob.answer_calls(StatusCode::OK);
    let (invite, answer) = call(&alice, "1001").await;
    assert_eq!(answer.status(), Some(StatusCode::OK));
    // Alice never ACKs: the PBX ends the session with a BYE to each side.
    let bye = loop {
        match timeout(WAIT, alice.ep.next()).await.unwrap().unwrap() {
            Incoming::Request(req) if req.request.method() == Some(&Method::Bye) => break req,
            _ => continue,
        }
    };
    assert_eq!(
        bye.request.call_id().unwrap().0,
        invite.call_id().unwrap().0
    );
    bye.respond(Message::response_to(&bye.request, StatusCode::OK, None))
        .await
        .unwrap();
    assert_eq!(
        timeout(WAIT, bob_log).await.unwrap().unwrap(),
        ["INVITE", "ACK", "BYE"]
    );
    // The CDR says the call ended on a timer (Q.850 102).
    let call_id = invite.call_id().unwrap().0.to_string();
    let record = timeout(WAIT, async {
        loop {
            let cdr = std::fs::read_to_string(dir.join("data/cdr.jsonl")).unwrap_or_default();
            if let Some(line) = cdr.lines().find(|l| l.contains(&call_id)) {
                return serde_json::from_str::<serde_json::Value>(line).unwrap();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .unwrap();
    assert_eq!(record["hangup_by"], "timer", "{record}");
    assert_eq!(record["hangup_cause"], 102, "{record}");
}

#[tokio::test]
async fn a_transferee_hanging_up_while_the_target_rings_ends_the_call_at_once() {
    let dir = temp_dir("transferee-bye");
    let pbx = Pbx::start_edited(dir.clone(), free_port(), |c| {
        c.replace("ring_time = 3", "ring_time = 20")
    });
    let mut alice = registered("1000", "pbx1000pw", &pbx).await;
    let bob = registered("1001", "pbx1001pw", &pbx).await;
    let carol = registered("1002", "pbx1002pw", &pbx).await;
    let bob_offers = Offers::default();
    let _bob_log = bob.answer_calls_seeing(StatusCode::OK, SDP.into(), bob_offers.clone(), 1);
    // Carol's phone rings for as long as it is let.
    let carol_log = carol.answer_calls(StatusCode::RINGING);
    let (invite, answer) = call(&alice, "1001").await;
    let dialog = InDialog::ack(&alice, &invite, &answer, "1001").await;
    let mut refer = alice.build("REFER", &dialog.contact, &dialog.to, &dialog.call_id, "");
    refer
        .headers_mut()
        .push(HeaderName::ReferTo, format!("<sip:1002@{}>", pbx.addr));
    alice.ep.send_request(refer, alice.target()).await.unwrap();
    // Alice hears "Trying"; Carol is ringing.
    let frag = sipfrag(&answered_request(&mut alice).await);
    assert!(frag.contains("100 Trying"), "{frag}");
    // Bob (the transferee) hangs up in his dialog with the PBX.
    let b_invite = bob_offers.invites.lock().unwrap()[0].clone();
    let contact = match b_invite.contacts().next().unwrap().unwrap() {
        pbxkit_sip::Contact::Addr(a) => a.uri.to_string(),
        pbxkit_sip::Contact::Star => panic!(),
    };
    let hanging_up = Phone::new("1001", pbx.addr).await;
    let me = hanging_up.ep.local_addr();
    let bye = format!(
        "BYE {contact} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKtransferee;rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:1001@pbxkit>;tag=callee\r\nTo: {}\r\nCall-ID: {}\r\n\
         CSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
        b_invite.headers().first(&HeaderName::From).unwrap().value,
        b_invite.call_id().unwrap().0,
    );
    let mut tx = hanging_up
        .ep
        .send_request(
            Message::parse(bye.into_bytes()).unwrap(),
            hanging_up.target(),
        )
        .await
        .unwrap();
    // Answered at once, not when Carol's 20 s of ringing are over.
    let ClientEvent::Response(ok) = timeout(Duration::from_secs(2), tx.final_response())
        .await
        .expect("the transferee's BYE answered at once")
    else {
        panic!("no answer to the BYE")
    };
    assert_eq!(ok.status(), Some(StatusCode::OK), "{ok}");
    // Carol stops ringing; Alice hears the transfer is off, then is hung up.
    assert_eq!(
        timeout(WAIT, carol_log).await.unwrap().unwrap()[..2],
        ["INVITE", "CANCEL"]
    );
    let frag = sipfrag(&answered_request(&mut alice).await);
    assert!(frag.starts_with("SIP/2.0 487"), "{frag}");
    assert_eq!(
        answered_request(&mut alice).await.method(),
        Some(&Method::Bye)
    );
}

/// An INVITE from `phone` to `callee` with credentials for the PBX's challenge (got
/// by a first INVITE), ready to be sent when the test wants.
async fn authenticated_invite(phone: &Phone, callee: &str, call_id: &str) -> Message {
    let uri = format!("sip:{callee}@{}", phone.pbx);
    let to = format!("<sip:{callee}@pbxkit>");
    let first = phone.build("INVITE", &uri, &to, call_id, SDP);
    let mut tx = phone.ep.send_request(first, phone.target()).await.unwrap();
    let ClientEvent::Response(challenge) = timeout(WAIT, tx.final_response()).await.unwrap() else {
        panic!("no challenge")
    };
    let auth: Auth = challenge
        .headers()
        .typed(&HeaderName::WwwAuthenticate)
        .unwrap()
        .unwrap();
    let creds = digest::respond(&auth, "INVITE", &uri, phone.user, phone.password, "c", 1).unwrap();
    let mut invite = phone.build("INVITE", &uri, &to, call_id, SDP);
    invite
        .headers_mut()
        .push(HeaderName::Authorization, creds.to_string());
    invite
}

#[tokio::test]
async fn two_calls_arriving_at_once_cannot_both_ring_a_user_limited_to_one() {
    let pbx = Pbx::start_edited(temp_dir("callee-race"), free_port(), |c| {
        c.replace(
            "password = \"pbx1001pw\"",
            "password = \"pbx1001pw\"\nsimultaneous_calls = 1",
        )
    });
    let alice = registered("1000", "pbx1000pw", &pbx).await;
    let carol = registered("1002", "pbx1002pw", &pbx).await;
    let bob = registered("1001", "pbx1001pw", &pbx).await;
    let bob_log = bob.answer_calls(StatusCode::RINGING);
    let invites = [
        (
            &alice,
            authenticated_invite(&alice, "1001", "callee-race-a").await,
        ),
        (
            &carol,
            authenticated_invite(&carol, "1001", "callee-race-c").await,
        ),
    ];
    let mut txs = Vec::new();
    for (phone, invite) in invites {
        txs.push(phone.ep.send_request(invite, phone.target()).await.unwrap());
    }
    let mut finals = Vec::new();
    for mut tx in txs {
        let ClientEvent::Response(r) = timeout(WAIT, tx.final_response()).await.unwrap() else {
            panic!("no final response")
        };
        finals.push(r.status().unwrap());
    }
    finals.sort();
    // One rang Bob until the ring time (480), the other found him busy.
    assert_eq!(
        finals,
        [StatusCode::TEMPORARILY_UNAVAILABLE, StatusCode::BUSY_HERE]
    );
    let log = timeout(WAIT, bob_log).await.unwrap().unwrap();
    assert_eq!(log.iter().filter(|l| *l == "INVITE").count(), 1, "{log:?}");
}

/// Dials a feature code from `phone`: its final status (the PBX's confirmation is
/// hung up at once).
async fn feature_code(phone: &Phone, code: &str) -> StatusCode {
    let (invite, answer) = call(phone, code).await;
    let status = answer.status().unwrap();
    if status == StatusCode::OK {
        ack_and_bye(phone, &invite, &answer, code).await;
    }
    status
}

/// Reads `data/queue_log` until it holds `events` (the writer syncs in batches).
async fn queue_log_with(dir: &std::path::Path, events: &[&str]) -> Vec<String> {
    let file = dir.join("data").join("queue_log");
    let mut lines = Vec::new();
    for _ in 0..50 {
        lines = std::fs::read_to_string(&file)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect();
        if events
            .iter()
            .all(|e| lines.iter().any(|l| l.contains(&format!("|{e}|"))))
        {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("queue_log lacks some of {events:?}: {lines:?}");
}

#[tokio::test]
async fn an_agent_logs_in_from_a_phone_and_takes_a_queues_caller() {
    let dir = temp_dir("queue");
    // The queue records its calls from the agent's answer.
    let pbx = Pbx::start_edited(dir.clone(), free_port(), |c| {
        c.replacen(
            "name = \"support\"\n",
            "name = \"support\"\nrecord = true\n",
            1,
        )
    });
    let alice = registered("1000", "pbx1000pw", &pbx).await;
    let bob = registered("1001", "pbx1001pw", &pbx).await;
    // Bob's desk phone dials the codes (his registered one answers the queue).
    let desk = Phone::new("1001", pbx.addr)
        .await
        .with_password("pbx1001pw");
    assert_eq!(feature_code(&desk, "*319").await, StatusCode::NOT_FOUND);
    assert_eq!(feature_code(&desk, "*311").await, StatusCode::OK);
    // One agent per phone.
    assert_eq!(feature_code(&desk, "*312").await, StatusCode::BUSY_HERE);

    let agent_media = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let bob_log = bob.answer_calls_with(
        StatusCode::OK,
        sdp(agent_media.local_addr().unwrap().port()),
    );
    // Alice calls the queue: the PBX answers her with music, then rings bob.
    let media = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (invite, answer) =
        call_with(&alice, "3100", &sdp(media.local_addr().unwrap().port())).await;
    assert_eq!(answer.status(), Some(StatusCode::OK), "{answer}");
    let answered = pbxkit_sip::sdp::Session::parse_body(&answer.body).unwrap();
    // One codec (her first) and her DTMF.
    assert_eq!(
        answered.media[0].payload_types().collect::<Vec<_>>(),
        [0, 101]
    );
    let relay: SocketAddr = format!("127.0.0.1:{}", answered.media[0].port)
        .parse()
        .unwrap();
    let dialog = InDialog::ack(&alice, &invite, &answer, "3100").await;
    // Her audio reaches bob once he has answered (music until then is fine).
    let mut buf = [0u8; 2048];
    let mut reached = false;
    for seq in 0..100u16 {
        media.send_to(&rtp(seq), relay).await.unwrap();
        if let Ok(Ok((n, _))) =
            timeout(Duration::from_millis(50), agent_media.recv_from(&mut buf)).await
        {
            assert_eq!(&buf[12..n], &rtp(seq)[12..]);
            reached = true;
            break;
        }
    }
    assert!(reached, "the caller's audio never reached the agent");
    assert_eq!(dialog.bye(&alice).await, StatusCode::OK);
    assert_eq!(
        timeout(WAIT, bob_log).await.unwrap().unwrap(),
        ["INVITE", "ACK", "BYE"]
    );

    // Bob logs off; the next caller waits for nobody and hangs up: abandoned.
    assert_eq!(feature_code(&desk, "*32").await, StatusCode::OK);
    let (invite, answer) =
        call_with(&alice, "3100", &sdp(media.local_addr().unwrap().port())).await;
    assert_eq!(answer.status(), Some(StatusCode::OK), "{answer}");
    let dialog = InDialog::ack(&alice, &invite, &answer, "3100").await;
    // She hears the music: G.711 from the PBX's port, not silence.
    let answered = pbxkit_sip::sdp::Session::parse_body(&answer.body).unwrap();
    let relay: SocketAddr = format!("127.0.0.1:{}", answered.media[0].port)
        .parse()
        .unwrap();
    let mut music = Vec::new();
    while music.len() < 10 {
        let (n, from) = timeout(WAIT, media.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        if from == relay {
            music.push(pbxkit_rtp::RtpPacket::parse(buf[..n].to_vec()).unwrap());
        }
    }
    assert!(music.iter().all(|p| p.payload_type().get() == 0));
    assert!(music.iter().any(|p| p.payload().iter().any(|&b| b != 0xFF)));
    assert_eq!(dialog.bye(&alice).await, StatusCode::OK);
    let lines = queue_log_with(
        &dir,
        &[
            "AGENTLOGIN",
            "ENTERQUEUE",
            "CONNECT",
            "COMPLETECALLER",
            "AGENTLOGOFF",
            "ABANDON",
        ],
    )
    .await;
    let connect = lines.iter().find(|l| l.contains("|CONNECT|")).unwrap();
    assert!(connect.contains("|support|Agent/1|"), "{connect}");
    // One recording, of the call the agent took, its sidecar naming both.
    let recordings: Vec<std::path::PathBuf> = std::fs::read_dir(dir.join("data/recordings"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    assert_eq!(recordings.len(), 1, "{recordings:?}");
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&recordings[0]).unwrap()).unwrap();
    assert_eq!(
        (&info["queue"], &info["agent"]),
        (&"support".into(), &"1".into()),
        "{info}"
    );
    assert_eq!(info["callee"], "1001");
}

#[tokio::test]
async fn a_queue_that_refuses_callers_when_empty_sends_them_to_no_answer() {
    let dir = temp_dir("queue-joinempty");
    let edit = |c: String| {
        c.replace("# join_empty = \"\"", "join_empty = \"strict\"")
            .replace(
                "# no_answer = \"1000\"    # where",
                "no_answer = \"1001\"    # where",
            )
    };
    let pbx = Pbx::start_edited(dir.clone(), free_port(), edit);
    let alice = registered("1000", "pbx1000pw", &pbx).await;
    let bob = registered("1001", "pbx1001pw", &pbx).await;
    let bob_log = bob.answer_calls(StatusCode::OK);
    // No agent logged in: alice is not queued but rung through to bob.
    let (invite, answer) = call(&alice, "3100").await;
    assert_eq!(answer.status(), Some(StatusCode::OK), "{answer}");
    assert_eq!(
        ack_and_bye(&alice, &invite, &answer, "3100").await,
        StatusCode::OK
    );
    assert_eq!(
        timeout(WAIT, bob_log).await.unwrap().unwrap(),
        ["INVITE", "ACK", "BYE"]
    );
    let lines = queue_log_with(&dir, &["JOINEMPTY"]).await;
    assert!(
        !lines.iter().any(|l| l.contains("|ENTERQUEUE|")),
        "{lines:?}"
    );
}

#[tokio::test]
async fn a_skill_routed_queue_rings_only_the_agents_its_rules_select() {
    let dir = temp_dir("queue-skills");
    let edit = |c: String| {
        c + "\n[[queues]]\nexten = \"3101\"\nname = \"english\"\n\
             skill_rules = [\"english > 50\"]\n\
             \n[[agents]]\nnumber = \"11\"\nqueues = [\"english\"]\nskills = { english = 90 }\n\
             \n[[agents]]\nnumber = \"12\"\nqueues = [\"english\"]\nskills = { english = 10 }\n"
    };
    let pbx = Pbx::start_edited(dir.clone(), free_port(), edit);
    let alice = registered("1000", "pbx1000pw", &pbx).await;
    let bob = registered("1001", "pbx1001pw", &pbx).await;
    let carol = registered("1002", "pbx1002pw", &pbx).await;
    // Bob logs in as agent 12 (english 10), carol as 11 (english 90).
    assert_eq!(feature_code(&bob, "*3112").await, StatusCode::OK);
    assert_eq!(feature_code(&carol, "*3111").await, StatusCode::OK);
    let bob_saw = Offers::default();
    let bob_log = bob.answer_calls_seeing(StatusCode::OK, SDP.to_owned(), bob_saw.clone(), 1);
    let carol_log = carol.answer_calls(StatusCode::OK);
    let (invite, answer) = call(&alice, "3101").await;
    assert_eq!(answer.status(), Some(StatusCode::OK), "{answer}");
    let dialog = InDialog::ack(&alice, &invite, &answer, "3101").await;
    // Carol is rung and answers; then alice hangs up.
    let lines = queue_log_with(&dir, &["CONNECT"]).await;
    let connect = lines.iter().find(|l| l.contains("|CONNECT|")).unwrap();
    assert!(connect.contains("|english|Agent/11|"), "{connect}");
    assert_eq!(dialog.bye(&alice).await, StatusCode::OK);
    assert_eq!(
        timeout(WAIT, carol_log).await.unwrap().unwrap(),
        ["INVITE", "ACK", "BYE"]
    );
    let lines = queue_log_with(&dir, &["COMPLETECALLER"]).await;
    // Agent 12 has no line about a call (it logged in and joined, nothing more).
    let twelve: Vec<_> = lines.iter().filter(|l| l.contains("|Agent/12|")).collect();
    assert!(
        twelve.iter().all(|l| l.split('|').nth(1) == Some("NONE")),
        "{twelve:?}"
    );
    // And bob's phone never rang.
    assert!(bob_saw.invites.lock().unwrap().is_empty());
    bob_log.abort();
}

/// The PCMU payloads of prompt `name` (one per 20 ms packet, the last padded).
fn prompt_packets(name: &str) -> Vec<Vec<u8>> {
    let path = format!("{}/prompts/{name}.wav", env!("CARGO_MANIFEST_DIR"));
    let file = std::io::BufReader::new(std::fs::File::open(path).unwrap());
    let samples = pbxkit_rtp::wav::read_mono(file, 8000).unwrap();
    samples
        .chunks(160)
        .map(|chunk| {
            let mut frame = chunk.to_vec();
            frame.resize(160, 0);
            frame
                .iter()
                .map(|&s| pbxkit_rtp::g711::ulaw_encode(s))
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn a_queues_caller_hears_its_position_over_the_music() {
    let dir = temp_dir("queue-announce");
    let pbx = Pbx::start(dir.clone(), free_port());
    let alice = registered("1000", "pbx1000pw", &pbx).await;
    // Nobody logged in: she waits first in line, told so on entry (the default
    // queue announces every 30 s), the music before and after.
    let media = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (invite, answer) =
        call_with(&alice, "3100", &sdp(media.local_addr().unwrap().port())).await;
    assert_eq!(answer.status(), Some(StatusCode::OK), "{answer}");
    let dialog = InDialog::ack(&alice, &invite, &answer, "3100").await;
    let answered = pbxkit_sip::sdp::Session::parse_body(&answer.body).unwrap();
    let relay: SocketAddr = format!("127.0.0.1:{}", answered.media[0].port)
        .parse()
        .unwrap();
    let first = prompt_packets("queue-first");
    let mut buf = [0u8; 2048];
    let mut heard = Vec::new();
    // 4 s of packets: the whole sentence is under 4 s.
    while heard.len() < 200 {
        let (n, from) = timeout(WAIT, media.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        if from == relay {
            let p = pbxkit_rtp::RtpPacket::parse(buf[..n].to_vec()).unwrap();
            heard.push(p.payload().to_vec());
        }
    }
    let start = heard
        .iter()
        .position(|p| *p == first[0])
        .expect("the announcement never started");
    // The whole prompt, packet after packet, then thanks after a short gap.
    assert_eq!(&heard[start..start + first.len()], &first[..]);
    let thanks = prompt_packets("queue-thankyou");
    assert!(
        heard[start + first.len()..].contains(&thanks[0]),
        "no thanks"
    );
    assert_eq!(dialog.bye(&alice).await, StatusCode::OK);
    queue_log_with(&dir, &["ENTERQUEUE", "ABANDON"]).await;
}

/// `pbxkit acd stats` over a queue_log: (received, answered, abandoned, timeout)
/// summed over its periods.
fn queue_stats(file: &std::path::Path) -> (u64, u64, u64, u64) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pbxkit"))
        .args(["acd", "stats", "--period", "1d"])
        .arg(file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let periods: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let sum = |key: &str| periods.iter().map(|p| p[key].as_u64().unwrap()).sum();
    (
        sum("received"),
        sum("answered"),
        sum("abandoned"),
        sum("timeout"),
    )
}

#[tokio::test]
async fn agents_stay_logged_in_and_paused_across_a_restart_and_timeouts_go_to_no_answer() {
    let dir = temp_dir("agents-restart");
    let port = free_port();
    let edit = |c: String| {
        c.replace("timeout = 300", "timeout = 3").replace(
            "# no_answer = \"1000\"    # where",
            "no_answer = \"1002\"    # where",
        )
    };
    let mut pbx = Pbx::start_edited(dir.clone(), port, edit);
    let alice = registered("1000", "pbx1000pw", &pbx).await;
    let mut bob = registered("1001", "pbx1001pw", &pbx).await;
    let carol = registered("1002", "pbx1002pw", &pbx).await;
    let desk = Phone::new("1001", pbx.addr)
        .await
        .with_password("pbx1001pw");
    assert_eq!(feature_code(&desk, "*311").await, StatusCode::OK);
    assert_eq!(feature_code(&desk, "*34").await, StatusCode::OK);
    pbx.kill();
    let pbx = Pbx::start_edited(dir.clone(), port, edit);

    // Agent 1 is still logged in, and paused: the caller waits for nobody, and
    // after the queue's timeout carol (no_answer) rings for her.
    let carol_log = carol.answer_calls(StatusCode::OK);
    let (invite, answer) = call(&alice, "3100").await;
    assert_eq!(answer.status(), Some(StatusCode::OK), "{answer}");
    let dialog = InDialog::ack(&alice, &invite, &answer, "3100").await;
    let carol_log = async {
        // Her phone answers and stays until alice hangs up.
        queue_log_with(&dir, &["EXITWITHTIMEOUT"]).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(dialog.bye(&alice).await, StatusCode::OK);
        timeout(WAIT, carol_log).await.unwrap().unwrap()
    }
    .await;
    assert_eq!(carol_log, ["INVITE", "ACK", "BYE"]);
    assert!(
        timeout(Duration::from_millis(200), bob.ep.next())
            .await
            .is_err(),
        "a paused agent was rung"
    );

    // Unpaused, the agent takes the next caller.
    assert_eq!(feature_code(&desk, "*35").await, StatusCode::OK);
    let bob_log = bob.answer_calls(StatusCode::OK);
    let (invite, answer) = call(&alice, "3100").await;
    assert_eq!(answer.status(), Some(StatusCode::OK), "{answer}");
    let dialog = InDialog::ack(&alice, &invite, &answer, "3100").await;
    let lines = queue_log_with(&dir, &["CONNECT"]).await;
    assert_eq!(dialog.bye(&alice).await, StatusCode::OK);
    assert_eq!(
        timeout(WAIT, bob_log).await.unwrap().unwrap(),
        ["INVITE", "ACK", "BYE"]
    );
    // The restart was not a new session.
    let logins = lines.iter().filter(|l| l.contains("|AGENTLOGIN|")).count();
    assert_eq!(logins, 1, "{lines:?}");
    queue_log_with(&dir, &["COMPLETECALLER"]).await;
    let file = dir.join("data").join("queue_log");
    assert_eq!(queue_stats(&file), (2, 1, 0, 1));
    drop(pbx);
}

/// Dials `code` and, answered, says which of `prompts` the PBX plays first.
async fn feature_code_says(phone: &Phone, code: &str, prompts: &[&str]) -> Option<String> {
    let media = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (invite, answer) = call_with(phone, code, &sdp(media.local_addr().unwrap().port())).await;
    assert_eq!(answer.status(), Some(StatusCode::OK), "{code}: {answer}");
    let dialog = InDialog::ack(phone, &invite, &answer, code).await;
    let mut buf = [0u8; 2048];
    let (n, _) = timeout(WAIT, media.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let first = pbxkit_rtp::RtpPacket::parse(buf[..n].to_vec()).unwrap();
    let said = prompts
        .iter()
        .find(|p| prompt_packets(p)[0] == first.payload().as_ref())
        .map(|p| (*p).to_owned());
    // The PBX hangs up after the prompt; a BYE first is fine too.
    let _ = dialog.bye(phone).await;
    said
}

#[tokio::test]
async fn an_agent_password_is_asked_and_guessing_it_locks_that_phone_out() {
    let edit = |c: String| {
        c.replace(
            "# password = \"1234\"     # digits",
            "password = \"1234\"     # digits",
        )
        .replace("max_auth_failures = 10", "max_auth_failures = 3")
    };
    let pbx = Pbx::start_edited(temp_dir("agent-password"), free_port(), edit);
    let bob = Phone::new("1001", pbx.addr)
        .await
        .with_password("pbx1001pw");
    let carol = Phone::new("1002", pbx.addr)
        .await
        .with_password("pbx1002pw");
    let said = ["agent-incorrect", "agent-loggedin", "agent-loggedoff"];
    let incorrect = Some("agent-incorrect".to_owned());
    assert_eq!(feature_code_says(&bob, "*312", &said).await, incorrect);
    assert_eq!(feature_code_says(&bob, "*312*1111", &said).await, incorrect);
    assert_eq!(feature_code_says(&bob, "*312*2222", &said).await, incorrect);
    // The third wrong password: even the right one is refused from bob's phone now.
    assert_eq!(feature_code_says(&bob, "*312*1234", &said).await, incorrect);
    assert_eq!(feature_code(&bob, "*32").await, StatusCode::NOT_FOUND);
    // Carol's phone is not locked out.
    let logged_in = Some("agent-loggedin".to_owned());
    assert_eq!(
        feature_code_says(&carol, "*312*1234", &said).await,
        logged_in
    );
    assert_eq!(
        feature_code_says(&carol, "*32", &said).await,
        Some("agent-loggedoff".to_owned())
    );
    // An agent without a password needs none.
    assert_eq!(feature_code(&bob, "*311").await, StatusCode::OK);
}

#[tokio::test]
async fn an_agent_pauses_per_queue_with_a_reason_and_an_autopause_survives_a_restart() {
    let dir = temp_dir("agents-pause");
    let port = free_port();
    let edit = |c: String| {
        let sales = "[[queues]]\nexten = \"3101\"\nname = \"sales\"\n\
                     member_ring_time = 2\nretry_delay = 1\nautopause = true\n\
                     announce_frequency = 0\n\n[[agents]]\nnumber = \"1\"\n";
        c.replacen("[[agents]]\nnumber = \"1\"\n", sales, 1)
            .replacen(
                "queues = [\"support\"]",
                "queues = [\"support\", \"sales\"]",
                1,
            )
    };
    let mut pbx = Pbx::start_edited(dir.clone(), port, edit);
    let alice = registered("1000", "pbx1000pw", &pbx).await;
    let bob = registered("1001", "pbx1001pw", &pbx).await;
    let desk = Phone::new("1001", pbx.addr)
        .await
        .with_password("pbx1001pw");
    assert_eq!(feature_code(&desk, "*311").await, StatusCode::OK);
    // Paused in support only, for lunch (`[pause_reasons]` 1 in the default).
    assert_eq!(feature_code(&desk, "*343100*1").await, StatusCode::OK);
    // An unknown reason code or queue number changes nothing.
    assert_eq!(feature_code(&desk, "*34*9").await, StatusCode::NOT_FOUND);
    assert_eq!(feature_code(&desk, "*349999").await, StatusCode::NOT_FOUND);
    let lines = queue_log_with(&dir, &["PAUSE"]).await;
    assert!(
        lines
            .iter()
            .any(|l| l.ends_with("|support|Agent/1|PAUSE|lunch")),
        "{lines:?}"
    );
    assert!(!lines.iter().any(|l| l.contains("PAUSEALL")), "{lines:?}");

    // Sales still rings the agent; it refuses, and sales pauses it by itself.
    let bob_log =
        bob.answer_calls_seeing(StatusCode::BUSY_HERE, SDP.to_owned(), Offers::default(), 1);
    let (invite, answer) = call(&alice, "3101").await;
    assert_eq!(answer.status(), Some(StatusCode::OK), "{answer}");
    let dialog = InDialog::ack(&alice, &invite, &answer, "3101").await;
    // (The ACK of a refusal stays in the phone's transaction layer.)
    assert_eq!(timeout(WAIT, bob_log).await.unwrap().unwrap(), ["INVITE"]);
    let lines = queue_log_with(&dir, &["RINGNOANSWER"]).await;
    assert_eq!(dialog.bye(&alice).await, StatusCode::OK);
    queue_log_with(&dir, &["ABANDON"]).await;
    assert!(
        lines
            .iter()
            .any(|l| l.ends_with("|sales|Agent/1|PAUSE|Auto-Pause")),
        "{lines:?}"
    );

    // After kill -9 and a restart the agent is paused in both queues, with its
    // reasons: neither rings it.
    pbx.kill();
    let pbx = Pbx::start_edited(dir.clone(), port, edit);
    let saved = std::fs::read_to_string(dir.join("data").join("agents.json")).unwrap();
    assert!(saved.contains("\"sales\": \"Auto-Pause\""), "{saved}");
    assert!(saved.contains("\"support\": \"lunch\""), "{saved}");
    let mut bob = registered("1001", "pbx1001pw", &pbx).await;
    for queue in ["3100", "3101"] {
        let (invite, answer) = call(&alice, queue).await;
        assert_eq!(answer.status(), Some(StatusCode::OK), "{answer}");
        let dialog = InDialog::ack(&alice, &invite, &answer, queue).await;
        assert!(
            timeout(Duration::from_millis(500), bob.ep.next())
                .await
                .is_err(),
            "a paused agent was rung by {queue}"
        );
        assert_eq!(dialog.bye(&alice).await, StatusCode::OK);
    }
    // Unpaused in sales from the phone, the agent takes its next caller there.
    assert_eq!(feature_code(&desk, "*353101").await, StatusCode::OK);
    let bob_log = bob.answer_calls(StatusCode::OK);
    let (invite, answer) = call(&alice, "3101").await;
    assert_eq!(answer.status(), Some(StatusCode::OK), "{answer}");
    let dialog = InDialog::ack(&alice, &invite, &answer, "3101").await;
    queue_log_with(&dir, &["CONNECT"]).await;
    assert_eq!(dialog.bye(&alice).await, StatusCode::OK);
    assert_eq!(
        timeout(WAIT, bob_log).await.unwrap().unwrap(),
        ["INVITE", "ACK", "BYE"]
    );
    let saved = std::fs::read_to_string(dir.join("data").join("agents.json")).unwrap();
    assert!(!saved.contains("sales"), "{saved}");
    assert!(saved.contains("\"support\": \"lunch\""), "{saved}");
    drop(pbx);
}

/// `pbxkit acd live` against the PBX using `dir`, in `format`.
fn acd_live(dir: &std::path::Path, format: &str) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pbxkit"))
        .args(["acd", "live", "--format", format, "--data-dir"])
        .arg(dir.join("data"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// The live view's queue `name` and agent `number`.
fn live_of(dir: &std::path::Path, number: &str) -> (serde_json::Value, serde_json::Value) {
    let live: serde_json::Value = serde_json::from_str(&acd_live(dir, "json")).unwrap();
    let queue = live["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "support")
        .unwrap()
        .clone();
    let agent = live["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["number"] == number)
        .unwrap()
        .clone();
    (queue, agent)
}

#[tokio::test]
async fn the_live_view_shows_waiting_callers_agents_by_state_and_the_days_counts() {
    let dir = temp_dir("acd-live");
    let pbx = Pbx::start_edited(dir.clone(), free_port(), |c| c);
    let alice = registered("1000", "pbx1000pw", &pbx).await;
    let bob = registered("1001", "pbx1001pw", &pbx).await;
    let desk = Phone::new("1001", pbx.addr)
        .await
        .with_password("pbx1001pw");
    assert_eq!(feature_code(&desk, "*311").await, StatusCode::OK);
    assert_eq!(feature_code(&desk, "*34*2").await, StatusCode::OK);
    let (queue, agent) = live_of(&dir, "1");
    assert_eq!(
        (&queue["number"], &queue["logged"]),
        (&"3100".into(), &1.into())
    );
    assert_eq!(
        (&queue["waiting"], &queue["available"]),
        (&0.into(), &0.into())
    );
    assert_eq!(agent["state"], "paused");
    assert_eq!(
        (&agent["phone"], &agent["paused_reason"]),
        (&"1001".into(), &"break".into())
    );
    let (_, nobody) = live_of(&dir, "2");
    assert_eq!(
        (&nobody["state"], &nobody["phone"]),
        (&"logged_out".into(), &serde_json::Value::Null)
    );

    // A caller waits for the paused agent.
    let (invite, answer) = call(&alice, "3100").await;
    assert_eq!(answer.status(), Some(StatusCode::OK), "{answer}");
    let dialog = InDialog::ack(&alice, &invite, &answer, "3100").await;
    queue_log_with(&dir, &["ENTERQUEUE"]).await;
    let (queue, _) = live_of(&dir, "1");
    assert_eq!(
        (&queue["waiting"], &queue["received"]),
        (&1.into(), &1.into())
    );

    // Unpaused, the agent takes it: on a call, the queue's call answered.
    let bob_log = bob.answer_calls(StatusCode::OK);
    assert_eq!(feature_code(&desk, "*35").await, StatusCode::OK);
    queue_log_with(&dir, &["CONNECT"]).await;
    let (queue, agent) = live_of(&dir, "1");
    assert_eq!(
        (&queue["waiting"], &queue["talking"]),
        (&0.into(), &1.into())
    );
    assert_eq!(
        (&queue["answered"], &queue["service_level"]),
        (&1.into(), &1.0.into())
    );
    assert_eq!(
        (&agent["state"], &agent["answered"]),
        (&"on_call".into(), &1.into())
    );
    let table = acd_live(&dir, "table");
    let row = table.lines().find(|l| l.starts_with("support")).unwrap();
    assert_eq!(
        row.split_whitespace().collect::<Vec<_>>()[..4],
        ["support", "3100", "0", "0s"],
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("1 ") && l.contains("on_call")),
        "{table}"
    );
    // What the ACD's steps cost inside the PBX: the login, pause, caller,
    // unpause and answer at least, each timed.
    let live: serde_json::Value = serde_json::from_str(&acd_live(&dir, "json")).unwrap();
    let acd = &live["acd"];
    for key in ["steps", "decisions"] {
        let f = &acd[key];
        assert!(f["count"].as_u64().unwrap() >= 5, "{acd}");
        let (median, max) = (
            f["median_us"].as_f64().unwrap(),
            f["max_us"].as_f64().unwrap(),
        );
        assert!(median > 0.0 && median <= max, "{acd}");
    }
    // A decision is part of a step.
    assert!(acd["decisions"]["max_us"].as_f64() <= acd["steps"]["max_us"].as_f64());
    assert!(
        table.lines().any(|l| l.starts_with("ACD steps: ")),
        "{table}"
    );
    assert_eq!(dialog.bye(&alice).await, StatusCode::OK);
    assert_eq!(
        timeout(WAIT, bob_log).await.unwrap().unwrap(),
        ["INVITE", "ACK", "BYE"]
    );
    // A second PBX on the same data directory is refused at start.
    let config = std::fs::read_to_string(dir.join("pbx.toml")).unwrap();
    let other = config.replace(
        &format!("127.0.0.1:{}", pbx.addr.port()),
        &format!("127.0.0.1:{}", free_port()),
    );
    assert_ne!(config, other);
    std::fs::write(dir.join("pbx2.toml"), other).unwrap();
    let mut second = std::process::Command::new(env!("CARGO_BIN_EXE_pbxkit"))
        .arg("--config")
        .arg(dir.join("pbx2.toml"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut status = None;
    for _ in 0..100 {
        status = second.try_wait().unwrap();
        if status.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if status.is_none() {
        let _ = second.kill();
    }
    let out = second.wait_with_output().unwrap();
    assert!(status.is_some_and(|s| !s.success()), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("another PBX runs on this data directory"),
        "{out:?}"
    );
    // The first one still answers.
    assert_eq!(live_of(&dir, "1").1["state"], "ready");
    drop(pbx);
    // The PBX gone, the view says so.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pbxkit"))
        .args(["acd", "live", "--data-dir"])
        .arg(dir.join("data"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is the PBX running?"),
        "{out:?}"
    );
}

#[tokio::test]
async fn a_queue_added_by_a_reload_takes_callers_without_a_restart() {
    let dir = temp_dir("queue-reload");
    let pbx = Pbx::start(dir.clone(), free_port());
    let alice = registered("1000", "pbx1000pw", &pbx).await;
    let bob = registered("1001", "pbx1001pw", &pbx).await;
    let desk = Phone::new("1001", pbx.addr)
        .await
        .with_password("pbx1001pw");
    let file = dir.join("pbx.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        format!(
            "{text}\n[[queues]]\nexten = \"3102\"\nname = \"billing\"\nannounce_frequency = 0\n\
             \n[[agents]]\nnumber = \"3\"\nqueues = [\"billing\"]\n"
        ),
    )
    .unwrap();
    pbx.signal("HUP");
    let reloaded = async {
        loop {
            let live: serde_json::Value = serde_json::from_str(&acd_live(&dir, "json")).unwrap();
            if live["queues"]
                .as_array()
                .unwrap()
                .iter()
                .any(|q| q["name"] == "billing" && q["number"] == "3102")
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    timeout(WAIT, reloaded).await.unwrap();
    assert_eq!(feature_code(&desk, "*313").await, StatusCode::OK);
    let bob_log = bob.answer_calls(StatusCode::OK);
    let (invite, answer) = call(&alice, "3102").await;
    assert_eq!(answer.status(), Some(StatusCode::OK), "{answer}");
    let dialog = InDialog::ack(&alice, &invite, &answer, "3102").await;
    let lines = queue_log_with(&dir, &["CONNECT"]).await;
    assert!(
        lines
            .iter()
            .any(|l| l.contains("|billing|Agent/3|CONNECT|")),
        "{lines:?}"
    );
    assert_eq!(dialog.bye(&alice).await, StatusCode::OK);
    assert_eq!(
        timeout(WAIT, bob_log).await.unwrap().unwrap(),
        ["INVITE", "ACK", "BYE"]
    );
}

#[tokio::test]
async fn a_queue_caller_whose_phone_falls_silent_is_hung_up_and_abandons() {
    let dir = temp_dir("rtp-timeout");
    let pbx = Pbx::start_edited(dir.clone(), free_port(), |c| {
        c.replace("rtp_timeout = 7200", "rtp_timeout = 2")
    });
    let mut alice = registered("1000", "pbx1000pw", &pbx).await;
    // Nobody is logged in: she waits with music, sending her own audio.
    let media = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (invite, answer) =
        call_with(&alice, "3100", &sdp(media.local_addr().unwrap().port())).await;
    assert_eq!(answer.status(), Some(StatusCode::OK), "{answer}");
    InDialog::ack(&alice, &invite, &answer, "3100").await;
    let answered = pbxkit_sip::sdp::Session::parse_body(&answer.body).unwrap();
    let relay: SocketAddr = format!("127.0.0.1:{}", answered.media[0].port)
        .parse()
        .unwrap();
    // 3 s of her RTP, longer than the timeout: she stays.
    let talking = async {
        for seq in 0..150u16 {
            media.send_to(&rtp(seq), relay).await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::select! {
        () = talking => {}
        incoming = alice.ep.next() => panic!("hung up while sending: {incoming:?}"),
    }
    let (queue, _) = live_of(&dir, "1");
    assert_eq!(queue["waiting"], 1, "{queue}");
    // Then her phone vanishes: hung up within the timeout and a tick.
    let started = std::time::Instant::now();
    let Ok(Some(Incoming::Request(bye))) = timeout(WAIT, alice.ep.next()).await else {
        panic!("no BYE for alice")
    };
    assert_eq!(bye.request.method(), Some(&Method::Bye));
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    bye.respond(Message::response_to(&bye.request, StatusCode::OK, None))
        .await
        .unwrap();
    // The queue knows she left: her one terminal line is an ABANDON.
    let lines = queue_log_with(&dir, &["ENTERQUEUE", "ABANDON"]).await;
    assert_eq!(
        lines.iter().filter(|l| l.contains("|ABANDON|")).count(),
        1,
        "{lines:?}"
    );
    let (queue, _) = live_of(&dir, "1");
    assert_eq!(queue["waiting"], 0, "{queue}");
}

#[tokio::test]
async fn a_queues_caller_hears_the_music_on_hold_class_of_the_queue() {
    let dir = temp_dir("moh-class");
    // One second of a pattern no frame repeats, as the operator's WAV file.
    let moh = dir.join("moh");
    std::fs::create_dir_all(&moh).unwrap();
    let samples: Vec<i16> = (0..8000i32)
        .map(|i| ((i * i) % 7919 * 4 - 16000) as i16)
        .collect();
    let file = std::fs::File::create(moh.join("tune.wav")).unwrap();
    pbxkit_rtp::wav::write_mono(std::io::BufWriter::new(file), 8000, &samples).unwrap();
    let frames: Vec<Vec<u8>> = samples
        .chunks(160)
        .map(|c| {
            c.iter()
                .map(|&s| pbxkit_rtp::g711::ulaw_encode(s))
                .collect()
        })
        .collect();
    let class = format!(
        "\n[[music_on_hold]]\nname = \"tune\"\ndirectory = \"{}\"\n",
        moh.display()
    );
    let pbx = Pbx::start_edited(dir.clone(), free_port(), |c| {
        c.replace(
            "name = \"support\"\n",
            "name = \"support\"\nmusic_on_hold = \"tune\"\n",
        ) + &class
    });
    let alice = registered("1000", "pbx1000pw", &pbx).await;
    let media = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (invite, answer) =
        call_with(&alice, "3100", &sdp(media.local_addr().unwrap().port())).await;
    assert_eq!(answer.status(), Some(StatusCode::OK), "{answer}");
    let dialog = InDialog::ack(&alice, &invite, &answer, "3100").await;
    // Five seconds of what she hears: the position, then the class's music.
    let mut buf = [0u8; 2048];
    let mut heard = Vec::new();
    while heard.len() < 250 {
        let (n, _) = timeout(WAIT, media.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        if let Ok(p) = pbxkit_rtp::RtpPacket::parse(buf[..n].to_vec()) {
            heard.push(p.payload().to_vec());
        }
    }
    // Somewhere (the announcement pauses the music), 60 packets in a row are the
    // file frame after frame, round its loop.
    let run = |start: usize| {
        let Some(at) = frames.iter().position(|f| *f == heard[start]) else {
            return 0;
        };
        heard[start..]
            .iter()
            .enumerate()
            .take_while(|(k, p)| **p == frames[(at + k) % frames.len()])
            .count()
    };
    let longest = (0..heard.len()).map(run).max().unwrap_or(0);
    assert!(
        longest >= 60,
        "the longest run of the class's music: {longest} packets"
    );
    assert_eq!(dialog.bye(&alice).await, StatusCode::OK);
}

#[test]
fn a_queue_naming_an_unknown_music_class_is_refused_with_its_line() {
    let text = common::pbxkit_default_config().replace(
        "name = \"support\"\n",
        "name = \"support\"\nmusic_on_hold = \"nope\"\n",
    );
    let dir = temp_dir("moh-unknown");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("pbx.toml"), &text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pbxkit"))
        .arg("check-config")
        .arg(dir.join("pbx.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let line = text
        .lines()
        .position(|l| l == "music_on_hold = \"nope\"")
        .unwrap()
        + 1;
    let err =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        err.contains(&format!("pbx.toml:{line}:")) && err.contains("not a [[music_on_hold]] class"),
        "{err}"
    );
}

/// A phone's media in a conference test: it sends 20 ms packets in its codec and
/// keeps, for each packet it receives, when it came and how loud it was.
struct Voice {
    socket: std::sync::Arc<tokio::net::UdpSocket>,
    pbx: SocketAddr,
    pt: u8,
    codec: Box<dyn pbxkit_rtp::codec::Codec + Send>,
    seq: u16,
    ts: u32,
    heard: std::sync::Arc<std::sync::Mutex<Vec<(tokio::time::Instant, f64)>>>,
    listener: tokio::task::JoinHandle<()>,
}

impl Drop for Voice {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl Voice {
    /// Listens on `socket`, whose call was answered with `answer`, decoding with
    /// `codec()`.
    fn new(
        socket: tokio::net::UdpSocket,
        answer: &Message,
        codec: fn() -> Box<dyn pbxkit_rtp::codec::Codec + Send>,
    ) -> Voice {
        let sdp = pbxkit_sip::sdp::Session::parse_body(&answer.body).unwrap();
        let pt = sdp.media[0].payload_types().next().unwrap();
        let pbx: SocketAddr = format!("127.0.0.1:{}", sdp.media[0].port).parse().unwrap();
        let socket = std::sync::Arc::new(socket);
        let heard = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (rx, log) = (socket.clone(), heard.clone());
        let listener = tokio::spawn(async move {
            let mut ear = codec();
            let mut buf = [0u8; 2048];
            while let Ok((n, _)) = rx.recv_from(&mut buf).await {
                let Ok(p) = pbxkit_rtp::RtpPacket::parse(buf[..n].to_vec()) else {
                    continue;
                };
                let mut pcm = Vec::new();
                if p.payload_type().get() != pt || ear.decode(p.payload(), &mut pcm).is_err() {
                    continue;
                }
                let rms = (pcm.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>()
                    / pcm.len().max(1) as f64)
                    .sqrt();
                log.lock().unwrap().push((tokio::time::Instant::now(), rms));
            }
        });
        Voice {
            socket,
            pbx,
            pt,
            codec: codec(),
            seq: 1,
            ts: 0,
            heard,
            listener,
        }
    }

    /// Talks for `packets` × 20 ms: a 440 Hz tone.
    async fn talk(&mut self, packets: u16) {
        let rate = self.codec.sample_rate();
        let n = rate as usize / 50;
        let step = self.codec.clock_rate() / 50;
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        for _ in 0..packets {
            tick.tick().await;
            let start = usize::from(self.seq) * n;
            let pcm: Vec<i16> = (0..n)
                .map(|i| {
                    let t = (start + i) as f64 / f64::from(rate);
                    ((2.0 * std::f64::consts::PI * 440.0 * t).sin() * 9000.0) as i16
                })
                .collect();
            let mut payload = Vec::new();
            self.codec.encode(&pcm, &mut payload).unwrap();
            self.send(self.pt, payload, false).await;
            self.ts = self.ts.wrapping_add(step);
        }
    }

    async fn send(&mut self, pt: u8, payload: Vec<u8>, marker: bool) {
        let mut p = pbxkit_rtp::RtpPacket::new(
            pbxkit_rtp::PayloadType::new(pt).unwrap(),
            pbxkit_rtp::SeqNo(self.seq),
            pbxkit_rtp::RtpTimestamp(self.ts),
            pbxkit_rtp::Ssrc(0x5eed_0000 + u32::from(pt)),
            payload.into(),
        );
        p.set_marker(marker);
        self.socket.send_to(&p.to_bytes(), self.pbx).await.unwrap();
        self.seq = self.seq.wrapping_add(1);
    }

    /// Presses `keys` (RFC 4733 events, payload type 101), 100 ms each.
    async fn press(&mut self, keys: &str) {
        for key in keys.chars() {
            let code = pbxkit_rtp::EventCode::from_char(key).unwrap().0;
            for (i, end) in [false, false, true, true, true].into_iter().enumerate() {
                let duration = 400u16 + 200 * i as u16;
                let mut payload = vec![code, if end { 0x80 | 10 } else { 10 }];
                payload.extend_from_slice(&duration.to_be_bytes());
                self.send(101, payload, i == 0).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            self.ts = self.ts.wrapping_add(1600);
        }
    }

    /// The median loudness of what came between `from` and `to`.
    fn loudness(&self, from: tokio::time::Instant, to: tokio::time::Instant) -> f64 {
        let mut levels: Vec<f64> = self
            .heard
            .lock()
            .unwrap()
            .iter()
            .filter(|(at, _)| *at >= from && *at <= to)
            .map(|(_, rms)| *rms)
            .collect();
        assert!(levels.len() >= 5, "{} packets heard", levels.len());
        levels.sort_by(f64::total_cmp);
        levels[levels.len() / 2]
    }
}

fn ulaw() -> Box<dyn pbxkit_rtp::codec::Codec + Send> {
    Box::new(pbxkit_rtp::g711::Law::Ulaw)
}

fn g722() -> Box<dyn pbxkit_rtp::codec::Codec + Send> {
    Box::new(pbxkit_rtp::codec::G722::new())
}

/// Joins conference `room` from `phone` with the SDP `offer` (its port replaced).
async fn join(
    phone: &Phone,
    room: &str,
    offer: &str,
    codec: fn() -> Box<dyn pbxkit_rtp::codec::Codec + Send>,
) -> (InDialog, Voice) {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = socket.local_addr().unwrap().port();
    let offer = offer.replace("m=audio 4000", &format!("m=audio {port}"));
    let (invite, answer) = call_with(phone, room, &offer).await;
    assert_eq!(answer.status(), Some(StatusCode::OK), "{answer}");
    let dialog = InDialog::ack(phone, &invite, &answer, room).await;
    (dialog, Voice::new(socket, &answer, codec))
}

const G722_SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 9 101\r\na=rtpmap:9 G722/8000\r\na=rtpmap:101 telephone-event/8000\r\n";

#[tokio::test]
async fn a_conference_room_mixes_phones_in_their_own_codecs_and_star_1_mutes() {
    use tokio::time::{Instant, sleep};
    let pbx = Pbx::start(temp_dir("conference"), free_port());
    let alice = registered("1000", "pbx1000pw", &pbx).await;
    let bob = registered("1001", "pbx1001pw", &pbx).await;
    let ms = Duration::from_millis;

    // Alone in the room (G.711 µ-law): the prompt, then music.
    let (alice_call, mut alice_voice) = join(&alice, "4000", SDP, ulaw).await;
    let t = Instant::now();
    sleep(ms(1500)).await;
    assert!(alice_voice.loudness(t, Instant::now()) > 1000.0);

    // Bob joins in G.722 (a 16 kHz codec): he hears the room, quiet for now.
    let (bob_call, mut bob_voice) = join(&bob, "4000", G722_SDP, g722).await;
    sleep(ms(800)).await;
    let quiet = Instant::now();
    bob_voice.talk(25).await; // Bob's phone sends silence-free audio too...
    let bob_talked = Instant::now();
    // ...which Alice hears, in µ-law; the music stopped when Bob came.
    assert!(alice_voice.loudness(quiet + ms(300), bob_talked) > 1500.0);
    // Alice talks: Bob hears her, Alice does not hear herself.
    let talk = Instant::now();
    alice_voice.talk(50).await;
    let talked = Instant::now();
    assert!(bob_voice.loudness(talk + ms(300), talked) > 1500.0);
    assert!(alice_voice.loudness(talk + ms(300), talked) < 300.0);

    // *1: Alice is muted (and told so); her voice no longer reaches Bob.
    alice_voice.press("*1").await;
    let muted = Instant::now();
    sleep(ms(1500)).await;
    assert!(
        alice_voice.loudness(muted, Instant::now()) > 1000.0,
        "the prompt"
    );
    let talk = Instant::now();
    alice_voice.talk(50).await;
    assert!(bob_voice.loudness(talk + ms(300), Instant::now()) < 300.0);
    // *1 again: heard again.
    alice_voice.press("*1").await;
    sleep(ms(1500)).await;
    let talk = Instant::now();
    alice_voice.talk(50).await;
    assert!(bob_voice.loudness(talk + ms(300), Instant::now()) > 1500.0);

    assert_eq!(alice_call.bye(&alice).await, StatusCode::OK);
    assert_eq!(bob_call.bye(&bob).await, StatusCode::OK);
}

#[tokio::test]
async fn a_conference_pin_is_asked_three_times_and_a_full_room_is_busy() {
    use tokio::time::{Instant, sleep};
    let pbx = Pbx::start_with(
        temp_dir("conference-pin"),
        free_port(),
        "\n[[conferences]]\nexten = \"4001\"\nname = \"board\"\npin = \"1234\"\nmax_participants = 2\n",
    );
    let mut alice = registered("1000", "pbx1000pw", &pbx).await;
    let bob = registered("1001", "pbx1001pw", &pbx).await;
    let carol = registered("1002", "pbx1002pw", &pbx).await;
    let ms = Duration::from_millis;

    // Three wrong PINs: the PBX hangs up once it has said so.
    let (_call, mut voice) = join(&alice, "4001", SDP, ulaw).await;
    for _ in 0..3 {
        voice.press("99#").await;
    }
    let bye = loop {
        match timeout(Duration::from_secs(20), alice.ep.next())
            .await
            .unwrap()
            .unwrap()
        {
            Incoming::Request(req) if req.request.method() == Some(&Method::Bye) => break req,
            _ => continue,
        }
    };
    bye.respond(Message::response_to(&bye.request, StatusCode::OK, None))
        .await
        .unwrap();

    // The right PIN: Alice is in.
    let (alice_call, mut alice_voice) = join(&alice, "4001", SDP, ulaw).await;
    alice_voice.press("1234#").await;
    // Bob has not typed the PIN yet: past its prompt he hears nothing of the room.
    let (bob_call, mut bob_voice) = join(&bob, "4001", SDP, ulaw).await;
    sleep(ms(4500)).await;
    let talk = Instant::now();
    alice_voice.talk(50).await;
    assert!(bob_voice.loudness(talk + ms(300), Instant::now()) < 300.0);
    // Now he has: he hears Alice.
    bob_voice.press("1234#").await;
    sleep(ms(300)).await;
    let talk = Instant::now();
    alice_voice.talk(50).await;
    assert!(bob_voice.loudness(talk + ms(300), Instant::now()) > 1500.0);
    // Two is the room's limit: Carol is busy.
    let (_, busy) = call_with(&carol, "4001", SDP).await;
    assert_eq!(busy.status(), Some(StatusCode::BUSY_HERE), "{busy}");
    assert_eq!(alice_call.bye(&alice).await, StatusCode::OK);
    assert_eq!(bob_call.bye(&bob).await, StatusCode::OK);
    // Both left: Carol gets in (and hears the PIN prompt).
    let (call, _voice) = join(&carol, "4001", SDP, ulaw).await;
    assert_eq!(call.bye(&carol).await, StatusCode::OK);
}

/// Waits for the PBX's BYE on `phone` and answers it.
async fn hung_up_by_the_pbx(phone: &mut Phone, wait: Duration) {
    let bye = loop {
        match timeout(wait, phone.ep.next()).await.unwrap().unwrap() {
            Incoming::Request(req) if req.request.method() == Some(&Method::Bye) => break req,
            _ => continue,
        }
    };
    bye.respond(Message::response_to(&bye.request, StatusCode::OK, None))
        .await
        .unwrap();
}

/// The messages of a box's folder: (WAV, sidecar) pairs.
fn voicemail_files(dir: &std::path::Path, folder: &str) -> Vec<(Vec<i16>, serde_json::Value)> {
    let Ok(entries) = std::fs::read_dir(dir.join(folder)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "json") {
            let json = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            let wav = std::fs::File::open(path.with_extension("wav")).unwrap();
            let pcm = pbxkit_rtp::wav::read_mono(std::io::BufReader::new(wav), 16000).unwrap();
            out.push((pcm, json));
        }
    }
    out
}

#[tokio::test]
async fn an_unanswered_call_leaves_a_message_that_the_box_owner_listens_to() {
    let dir = temp_dir("voicemail");
    let pbx = Pbx::start_with_voicemail(dir.clone(), free_port(), |c| {
        c.replace("number = \"1001\"\n", "number = \"1001\"\npin = \"2580\"\n")
    });
    let mut alice = registered("1000", "pbx1000pw", &pbx).await;
    let mut carol = registered("1002", "pbx1002pw", &pbx).await;
    let box_dir = dir.join("data/voicemail/1001");

    // Bob (1001) has no phone registered: the call goes to his voicemail. A key
    // skips the greeting; after the tone Alice talks for two seconds, then #.
    let (_call, mut voice) = join(&alice, "1001", SDP, ulaw).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    voice.press("#").await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    voice.talk(100).await;
    voice.press("#").await;
    // "Your message has been saved. Goodbye.", then the PBX hangs up.
    hung_up_by_the_pbx(&mut alice, WAIT).await;
    let inbox = voicemail_files(&box_dir, "INBOX");
    assert_eq!(inbox.len(), 1, "{inbox:?}");
    let (pcm, envelope) = &inbox[0];
    assert_eq!(envelope["caller"], "1000");
    let duration = envelope["duration"].as_f64().unwrap();
    assert!((1.5..3.0).contains(&duration), "{duration}");
    let middle = &pcm[pcm.len() / 4..pcm.len() * 3 / 4];
    let rms =
        (middle.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / middle.len() as f64).sqrt();
    assert!(rms > 2000.0, "the message is what Alice said: {rms}");

    // Carol listens to Bob's box from her phone: wrong PINs three times, hung up.
    let (_call, mut voice) = join(&carol, "*991001", SDP, ulaw).await;
    for _ in 0..3 {
        voice.press("1111#").await;
    }
    hung_up_by_the_pbx(&mut carol, Duration::from_secs(20)).await;
    assert_eq!(voicemail_files(&box_dir, "INBOX").len(), 1);

    // With the PIN: "you have one new message" (5 skips it and plays the
    // message), then 9 saves it (into the old ones) and # leaves.
    let (_call, mut voice) = join(&carol, "*991001", SDP, ulaw).await;
    voice.press("2580#").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    voice.press("5").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    voice.press("9").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    voice.press("#").await;
    hung_up_by_the_pbx(&mut carol, WAIT).await;
    assert_eq!(voicemail_files(&box_dir, "INBOX").len(), 0);
    assert_eq!(voicemail_files(&box_dir, "Old").len(), 1);

    // Carol's own box has no PIN: *98 from her phone opens it at once (no
    // messages: the PBX says so and hangs up); *99 from another phone cannot.
    // (# passes the greetings menu it offers.)
    let (_call, mut voice) = join(&carol, "*98", SDP, ulaw).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    voice.press("#").await;
    hung_up_by_the_pbx(&mut carol, WAIT).await;
    let (_call, mut voice) = join(&alice, "*991002", SDP, ulaw).await;
    for _ in 0..3 {
        voice.press("#").await;
    }
    hung_up_by_the_pbx(&mut alice, Duration::from_secs(20)).await;

    // The message is still there after a restart.
    drop(pbx);
    let pbx = Pbx::start_with_voicemail(dir.clone(), free_port(), |c| {
        c.replace("number = \"1001\"\n", "number = \"1001\"\npin = \"2580\"\n")
    });
    let carol = registered("1002", "pbx1002pw", &pbx).await;
    let (_call, mut voice) = join(&carol, "*991001", SDP, ulaw).await;
    voice.press("2580#").await;
    // 7 deletes the message being played.
    tokio::time::sleep(Duration::from_millis(800)).await;
    voice.press("5").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    voice.press("7").await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(voicemail_files(&box_dir, "Old").len(), 0);
}

/// The next NOTIFY `phone` receives, answered 200.
async fn next_notify(phone: &mut Phone) -> Message {
    loop {
        match timeout(WAIT, phone.ep.next()).await.unwrap().unwrap() {
            Incoming::Request(req) if req.request.method() == Some(&Method::Notify) => {
                req.respond(Message::response_to(&req.request, StatusCode::OK, None))
                    .await
                    .unwrap();
                return req.request;
            }
            _ => continue,
        }
    }
}

fn header_of(m: &Message, name: HeaderName) -> String {
    m.headers()
        .first(&name)
        .map(|h| h.value.to_string())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_phone_subscribed_to_message_waiting_is_notified_of_new_messages() {
    let pbx = Pbx::start_with_voicemail(temp_dir("mwi"), free_port(), |c| c);
    let mut alice = registered("1000", "pbx1000pw", &pbx).await;
    // Bob's phone subscribes to its own box's message summary (it has not
    // registered: calls to Bob go to his voicemail).
    let mut bob = Phone::new("1001", pbx.addr)
        .await
        .with_password("pbx1001pw")
        .with_headers("Event: message-summary\r\nExpires: 600\r\n");
    let uri = format!("sip:1001@{}", pbx.addr);
    let (_, mut tx) = bob
        .send_authenticated("SUBSCRIBE", &uri, "<sip:1001@pbxkit>", "mwi-1", "")
        .await;
    let ClientEvent::Response(ok) = timeout(WAIT, tx.final_response()).await.unwrap() else {
        panic!("no answer to SUBSCRIBE")
    };
    assert_eq!(ok.status(), Some(StatusCode::OK), "{ok}");
    assert_eq!(header_of(&ok, HeaderName::Expires), "600");
    let first = next_notify(&mut bob).await;
    assert_eq!(header_of(&first, HeaderName::Event), "message-summary");
    assert!(header_of(&first, HeaderName::SubscriptionState).starts_with("active;expires="));
    let body = String::from_utf8(first.body.to_vec()).unwrap();
    assert!(body.contains("Messages-Waiting: no"), "{body}");
    assert!(body.contains("Voice-Message: 0/0"), "{body}");

    // Alice leaves Bob a message: Bob's phone hears of it.
    let (_call, mut voice) = join(&alice, "1001", SDP, ulaw).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    voice.press("#").await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    voice.talk(75).await;
    voice.press("#").await;
    hung_up_by_the_pbx(&mut alice, WAIT).await;
    let waiting = next_notify(&mut bob).await;
    let body = String::from_utf8(waiting.body.to_vec()).unwrap();
    assert!(body.contains("Messages-Waiting: yes"), "{body}");
    assert!(body.contains("Voice-Message: 1/0"), "{body}");
    assert!(waiting.cseq().unwrap().seq > first.cseq().unwrap().seq);

    // Bob unsubscribes (Expires: 0 in the dialog): the last NOTIFY says so.
    let to_tag = ok.to().unwrap().tag().unwrap().to_owned();
    // (From another port: NOTIFYs follow the latest SUBSCRIBE's source.)
    let mut leaving = Phone::new("1001", pbx.addr)
        .await
        .with_password("pbx1001pw")
        .with_headers("Event: message-summary\r\nExpires: 0\r\n");
    leaving.cseq.store(100, Ordering::Relaxed);
    let to = format!("<sip:1001@pbxkit>;tag={to_tag}");
    let (_, mut tx) = leaving
        .send_authenticated("SUBSCRIBE", &uri, &to, "mwi-1", "")
        .await;
    let ClientEvent::Response(ended) = timeout(WAIT, tx.final_response()).await.unwrap() else {
        panic!("no answer to the unsubscription")
    };
    assert_eq!(ended.status(), Some(StatusCode::OK), "{ended}");
    let last = next_notify(&mut leaving).await;
    assert!(header_of(&last, HeaderName::SubscriptionState).starts_with("terminated"));

    // Only one's own box, and only this event package.
    let nosy = Phone::new("1002", pbx.addr)
        .await
        .with_password("pbx1002pw")
        .with_headers("Event: message-summary\r\n");
    let (_, mut tx) = nosy
        .send_authenticated("SUBSCRIBE", &uri, "<sip:1001@pbxkit>", "mwi-2", "")
        .await;
    let ClientEvent::Response(refused) = timeout(WAIT, tx.final_response()).await.unwrap() else {
        panic!()
    };
    assert_eq!(refused.status(), Some(StatusCode::FORBIDDEN));
    let presence = Phone::new("1002", pbx.addr)
        .await
        .with_headers("Event: presence\r\n");
    let request = presence.build("SUBSCRIBE", &uri, "<sip:1002@pbxkit>", "mwi-3", "");
    let mut tx = presence
        .ep
        .send_request(request, presence.target())
        .await
        .unwrap();
    let ClientEvent::Response(bad) = timeout(WAIT, tx.final_response()).await.unwrap() else {
        panic!()
    };
    assert_eq!(bad.status().map(|s| s.as_u16()), Some(489));
    assert_eq!(
        header_of(&bad, HeaderName::AllowEvents),
        "message-summary, dialog"
    );
}

/// The dialog state a busy-lamp NOTIFY carries.
fn lamp_state(notify: &Message) -> String {
    let body = String::from_utf8(notify.body.to_vec()).unwrap();
    let start = body.find("<state>").unwrap() + "<state>".len();
    let end = body.find("</state>").unwrap();
    body[start..end].to_owned()
}

#[tokio::test]
async fn a_busy_lamp_follows_the_watched_user_ringing_talking_and_idle() {
    let pbx = Pbx::start(temp_dir("blf"), free_port());
    let alice = registered("1000", "pbx1000pw", &pbx).await;
    let bob = registered("1001", "pbx1001pw", &pbx).await;
    // Carol's phone watches Bob's lamp.
    let mut carol = Phone::new("1002", pbx.addr)
        .await
        .with_password("pbx1002pw")
        .with_headers("Event: dialog\r\nAccept: application/dialog-info+xml\r\n");
    let uri = format!("sip:1001@{}", pbx.addr);
    let (_, mut tx) = carol
        .send_authenticated("SUBSCRIBE", &uri, "<sip:1001@pbxkit>", "blf-1", "")
        .await;
    let ClientEvent::Response(ok) = timeout(WAIT, tx.final_response()).await.unwrap() else {
        panic!("no answer to SUBSCRIBE")
    };
    assert_eq!(ok.status(), Some(StatusCode::OK), "{ok}");
    let first = next_notify(&mut carol).await;
    assert_eq!(header_of(&first, HeaderName::Event), "dialog");
    assert_eq!(
        header_of(&first, HeaderName::ContentType),
        "application/dialog-info+xml"
    );
    assert_eq!(lamp_state(&first), "terminated", "Bob is idle");
    assert!(
        String::from_utf8(first.body.to_vec())
            .unwrap()
            .contains("version=\"0\"")
    );

    // Alice calls Bob, who answers, then Alice hangs up: the lamp follows.
    let bob_log = bob.answer_calls(StatusCode::OK);
    let (invite, answer) = call(&alice, "1001").await;
    assert_eq!(answer.status(), Some(StatusCode::OK));
    let dialog = InDialog::ack(&alice, &invite, &answer, "1001").await;
    let mut states = Vec::new();
    while states.last().map(String::as_str) != Some("confirmed") {
        states.push(lamp_state(&next_notify(&mut carol).await));
    }
    assert_eq!(dialog.bye(&alice).await, StatusCode::OK);
    states.push(lamp_state(&next_notify(&mut carol).await));
    assert_eq!(states, ["early", "confirmed", "terminated"]);
    timeout(WAIT, bob_log).await.unwrap().unwrap();
    // Unknown users have no lamp.
    let (_, mut tx) = carol
        .send_authenticated(
            "SUBSCRIBE",
            &format!("sip:4242@{}", pbx.addr),
            "<sip:4242@pbxkit>",
            "blf-2",
            "",
        )
        .await;
    let ClientEvent::Response(unknown) = timeout(WAIT, tx.final_response()).await.unwrap() else {
        panic!()
    };
    assert_eq!(unknown.status(), Some(StatusCode::NOT_FOUND));
}

const IVR: &str = "\n[[ivrs]]\nexten = \"5000\"\nname = \"reception\"\n\
                   choices = { \"1\" = \"1001\", \"2\" = \"1002\" }\ntimeout = 1\nretries = 2\n";

#[tokio::test]
async fn an_ivr_sends_the_caller_where_its_key_says_with_its_media() {
    let pbx = Pbx::start_with(temp_dir("ivr"), free_port(), IVR);
    let mut alice = registered("1000", "pbx1000pw", &pbx).await;
    let bob = registered("1001", "pbx1001pw", &pbx).await;
    let bob_media = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let bob_log =
        bob.answer_calls_with(StatusCode::OK, sdp(bob_media.local_addr().unwrap().port()));

    // The menu answers; during its prompt Alice presses 1 (Bob).
    let (call, mut voice) = join(&alice, "5000", SDP, ulaw).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    voice.press("1").await;
    // Bob answers: the PBX moves Alice onto the call's media with a re-INVITE.
    let reinvite = loop {
        match timeout(WAIT, alice.ep.next()).await.unwrap().unwrap() {
            Incoming::Request(req) if req.request.method() == Some(&Method::Invite) => break req,
            _ => continue,
        }
    };
    let offer = pbxkit_sip::sdp::Session::parse_body(&reinvite.request.body).unwrap();
    let relay: SocketAddr = format!("127.0.0.1:{}", offer.media[0].port)
        .parse()
        .unwrap();
    assert_ne!(relay, voice.pbx, "the call's media, not the menu's");
    let mut ok = Message::response_to(&reinvite.request, StatusCode::OK, None);
    let me = alice.ep.local_addr();
    let body = sdp(voice.socket.local_addr().unwrap().port());
    let h = ok.headers_mut();
    h.push(HeaderName::Contact, format!("<sip:1000@{me}>"));
    h.push(HeaderName::ContentType, "application/sdp");
    h.set(HeaderName::ContentLength, body.len().to_string());
    ok.body = body.into_bytes().into();
    reinvite.respond(ok).await.unwrap();
    // Alice talks: Bob hears her through the relay.
    voice.pbx = relay;
    voice.talk(40).await;
    let mut buf = [0u8; 2048];
    let mut heard = 0;
    while let Ok(Ok(_)) = timeout(Duration::from_millis(300), bob_media.recv_from(&mut buf)).await {
        heard += 1;
    }
    assert!(heard >= 20, "{heard} packets reached Bob");
    assert_eq!(call.bye(&alice).await, StatusCode::OK);
    assert_eq!(
        timeout(WAIT, bob_log).await.unwrap().unwrap(),
        ["INVITE", "ACK", "BYE"]
    );
}

#[tokio::test]
async fn an_ivr_without_a_choice_says_so_then_hangs_up_or_goes_to_its_default() {
    let pbx = Pbx::start_with(temp_dir("ivr-none"), free_port(), IVR);
    let mut alice = registered("1000", "pbx1000pw", &pbx).await;
    // A key that is no choice, then nothing: after two prompts the PBX hangs up.
    let (_call, mut voice) = join(&alice, "5000", SDP, ulaw).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    voice.press("9").await;
    hung_up_by_the_pbx(&mut alice, Duration::from_secs(15)).await;
    drop(pbx);
    // With a default, the caller goes there instead.
    let with_default = IVR.replace("retries = 2\n", "retries = 1\ndefault = \"1001\"\n");
    let pbx = Pbx::start_with(temp_dir("ivr-default"), free_port(), &with_default);
    let alice = registered("1000", "pbx1000pw", &pbx).await;
    let bob = registered("1001", "pbx1001pw", &pbx).await;
    let bob_log = bob.answer_calls(StatusCode::RINGING);
    let (call, _voice) = join(&alice, "5000", SDP, ulaw).await;
    // Bob's phone rings for Alice (the prompt, a second of waiting, then Bob).
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(call.bye(&alice).await, StatusCode::OK);
    let log = timeout(WAIT, bob_log).await.unwrap().unwrap();
    assert_eq!(log.first().map(String::as_str), Some("INVITE"), "{log:?}");
}

#[tokio::test]
async fn a_new_voicemail_message_is_mailed_with_its_wav_by_the_mail_command() {
    let dir = temp_dir("vm-mail");
    let captured = dir.join("mail.txt");
    let script = format!(
        "mail_command = [\"/bin/sh\", \"-c\", \"cat > '{}'\"]\nmail_from = \"pbx@example.com\"\n",
        captured.display()
    );
    let pbx = Pbx::start_with_voicemail(dir.clone(), free_port(), |c| {
        c.replace(
            "node_id = \"pbx\"\n",
            &format!("node_id = \"pbx\"\n{script}"),
        )
        .replace(
            "number = \"1001\"\n",
            "number = \"1001\"\nemail = \"bob@example.com\"\n",
        )
    });
    let mut alice = registered("1000", "pbx1000pw", &pbx).await;
    let (_call, mut voice) = join(&alice, "1001", SDP, ulaw).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    voice.press("#").await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    voice.talk(75).await;
    voice.press("#").await;
    hung_up_by_the_pbx(&mut alice, WAIT).await;
    // The program got the whole message on its standard input.
    let mut mail = String::new();
    for _ in 0..50 {
        mail = std::fs::read_to_string(&captured).unwrap_or_default();
        if mail.ends_with("--\r\n") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        mail.contains("From: pbxkit voicemail <pbx@example.com>\r\n"),
        "{mail}"
    );
    assert!(mail.contains("To: <bob@example.com>\r\n"), "{mail}");
    assert!(
        mail.contains("Subject: New voicemail from User 1000 (1000) in box 1001\r\n"),
        "{mail}"
    );
    assert!(mail.contains("Content-Type: audio/wav;"), "{mail}");
    // The attachment is the WAV: base64 of "RIFF".
    assert!(mail.contains("\r\n\r\nUklGR"), "{mail}");
    assert!(mail.len() > 40_000, "about 1.5 s at 16 kHz: {}", mail.len());
}

#[tokio::test]
async fn a_box_owner_records_the_greeting_callers_then_hear() {
    let dir = temp_dir("vm-greeting");
    let pbx = Pbx::start_with_voicemail(dir.clone(), free_port(), |c| c);
    let mut bob = registered("1001", "pbx1001pw", &pbx).await;
    // An empty box: "you have no messages", then the greetings menu: 1 records
    // the unavailable greeting after the tone, until #.
    let (call, mut voice) = join(&bob, "*98", SDP, ulaw).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    voice.press("1").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    voice.talk(75).await;
    voice.press("#").await;
    // "Your greeting has been saved", then goodbye and the PBX hangs up.
    hung_up_by_the_pbx(&mut bob, Duration::from_secs(15)).await;
    drop(call);
    let greeting = dir.join("data/voicemail/1001/greetings/unavailable.wav");
    let wav = std::fs::File::open(&greeting).unwrap();
    let pcm = pbxkit_rtp::wav::read_mono(std::io::BufReader::new(wav), 16000).unwrap();
    assert!(pcm.len() > 16000, "{} samples", pcm.len());
    let middle = &pcm[pcm.len() / 4..pcm.len() * 3 / 4];
    let rms =
        (middle.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / middle.len() as f64).sqrt();
    assert!(rms > 2000.0, "{rms}");
    // A caller Bob does not answer hears it: a steady tone, not the built-in
    // prompt's speech, from the first packets.
    let alice = registered("1000", "pbx1000pw", &pbx).await;
    drop(bob);
    let (_call, voice) = join(&alice, "1001", SDP, ulaw).await;
    let t = tokio::time::Instant::now();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let heard = voice.heard.lock().unwrap().clone();
    let levels: Vec<f64> = heard
        .iter()
        .filter(|(at, _)| *at > t + Duration::from_millis(200))
        .map(|(_, rms)| *rms)
        .collect();
    assert!(levels.len() > 20, "{}", levels.len());
    // The recorded tone (after the silence Bob left before talking): every packet
    // loud, where speech pauses between words.
    let tone: Vec<f64> = levels.iter().copied().skip_while(|l| *l < 1000.0).collect();
    assert!(tone.len() > 20, "{levels:?}");
    assert!(tone.iter().all(|l| *l > 1000.0), "{levels:?}");
}

#[tokio::test]
async fn a_user_who_records_incoming_calls_gets_a_wav_and_its_sidecar() {
    let dir = temp_dir("recording");
    let pbx = Pbx::start_edited(dir.clone(), free_port(), |c| {
        c.replace(
            "password = \"pbx1001pw\"\n",
            "password = \"pbx1001pw\"\nrecord_incoming = true\n",
        )
    });
    let alice = registered("1000", "pbx1000pw", &pbx).await;
    let bob = registered("1001", "pbx1001pw", &pbx).await;
    let bob_media = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let bob_log =
        bob.answer_calls_with(StatusCode::OK, sdp(bob_media.local_addr().unwrap().port()));
    let (call, mut voice) = join(&alice, "1001", SDP, ulaw).await;
    // Alice talks for two seconds; Bob's phone hears her and says nothing.
    voice.talk(100).await;
    assert_eq!(call.bye(&alice).await, StatusCode::OK);
    timeout(WAIT, bob_log).await.unwrap().unwrap();
    // Once the call is over the sidecar is written next to the WAV.
    let recordings = dir.join("data/recordings");
    let mut sidecar = None;
    for _ in 0..50 {
        sidecar = std::fs::read_dir(&recordings).ok().and_then(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .find(|p| p.extension().is_some_and(|x| x == "json"))
        });
        if sidecar.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sidecar = sidecar.expect("a sidecar");
    let name = sidecar.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("user-1000-1001-"), "{name}");
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&sidecar).unwrap()).unwrap();
    assert_eq!(info["caller"], "1000");
    assert_eq!(info["callee"], "1001");
    assert_eq!(info["call_id"], call.call_id.as_str());
    let duration = info["duration"].as_f64().unwrap();
    assert!((1.5..4.0).contains(&duration), "{duration}");
    let wav = std::fs::File::open(sidecar.with_extension("wav")).unwrap();
    let pcm = pbxkit_rtp::wav::read_mono(std::io::BufReader::new(wav), 16000).unwrap();
    let middle = &pcm[pcm.len() / 4..pcm.len() / 2];
    let rms =
        (middle.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / middle.len() as f64).sqrt();
    assert!(rms > 2000.0, "Alice is in the recording: {rms}");
    drop(bob_media);
}
