//! Two endpoints over real loopback sockets (UDP and TCP): a REGISTER through a digest
//! challenge, an INVITE/200/ACK/BYE call, a CANCELled INVITE, a lossy UDP relay, and
//! bad input answered with 400/420.
#![cfg(feature = "tokio")]
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use pbxkit_sip::digest::{self, Algorithm, DigestServer};
use pbxkit_sip::endpoint::{ClientEvent, Endpoint, EndpointConfig, Incoming};
use pbxkit_sip::registrar::{MemoryStore, Registrar, RegistrarConfig};
use pbxkit_sip::transaction::{Target, TransportKind, cancel_for};
use pbxkit_sip::{Auth, HeaderName, Message, Method, StatusCode};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::time::timeout;

async fn endpoint() -> Endpoint {
    let config = EndpointConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..EndpointConfig::default()
    };
    Endpoint::bind(config).await.unwrap()
}

fn request(
    method: &str,
    from: SocketAddr,
    to: SocketAddr,
    transport: &str,
    call_id: &str,
    seq: u32,
    branch: &str,
) -> Message {
    let text = format!(
        "{method} sip:1000@{to} SIP/2.0\r\nVia: SIP/2.0/{transport} {from};branch=z9hG4bK{branch};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:1000@{to}>;tag=uac\r\nTo: <sip:1000@{to}>\r\nCall-ID: {call_id}\r\n\
         CSeq: {seq} {method}\r\nContact: <sip:1000@{from}>\r\nContent-Length: 0\r\n\r\n"
    );
    Message::parse(text.into_bytes()).unwrap()
}

/// A registrar server: challenges, then registers.
async fn serve_registrar(mut server: Endpoint) {
    let mut digest = DigestServer::new("pbxkit", b"0123456789abcdef0123456789abcdef", 300);
    let mut registrar = Registrar::new(RegistrarConfig::default(), MemoryStore::new());
    while let Some(Incoming::Request(req)) = server.next().await {
        let creds = req
            .request
            .headers()
            .typed::<Auth>(&HeaderName::Authorization)
            .and_then(Result::ok);
        let verified = creds.map(|c| {
            digest.verify(&c, "REGISTER", 1_000, |u| {
                (u == "1000").then(|| "pw".to_owned())
            })
        });
        let response = match verified {
            Some(Ok(_)) => {
                let bindings = registrar
                    .register(&req.request, "1000", None, 1_000)
                    .unwrap();
                Registrar::<MemoryStore>::ok_response(&req.request, &bindings, "reg", 1_000)
            }
            _ => {
                let mut r =
                    Message::response_to(&req.request, StatusCode::UNAUTHORIZED, Some("reg"));
                r.headers_mut().push(
                    HeaderName::WwwAuthenticate,
                    digest.challenge(1_000, Algorithm::Md5, false).to_string(),
                );
                r
            }
        };
        req.respond(response).await.unwrap();
    }
}

async fn register_through_challenge(
    client: &Endpoint,
    server_addr: SocketAddr,
    transport: TransportKind,
    name: &str,
) {
    let target = Target {
        addr: server_addr,
        transport,
    };
    let first = request(
        "REGISTER",
        client.local_addr(),
        server_addr,
        name,
        "reg-call",
        1,
        "r1",
    );
    let mut tx = client.send_request(first.clone(), target).await.unwrap();
    let ClientEvent::Response(challenge) = tx.final_response().await else {
        panic!("no 401")
    };
    assert_eq!(challenge.status(), Some(StatusCode::UNAUTHORIZED));
    let auth: Auth = challenge
        .headers()
        .typed(&HeaderName::WwwAuthenticate)
        .unwrap()
        .unwrap();
    let creds = digest::respond(
        &auth,
        "REGISTER",
        &format!("sip:{server_addr}"),
        "1000",
        "pw",
        "cn",
        1,
    )
    .unwrap();
    let mut second = request(
        "REGISTER",
        client.local_addr(),
        server_addr,
        name,
        "reg-call",
        2,
        "r2",
    );
    second
        .headers_mut()
        .push(HeaderName::Authorization, creds.to_string());
    let mut tx = client.send_request(second, target).await.unwrap();
    let ClientEvent::Response(ok) = tx.final_response().await else {
        panic!("no 200")
    };
    assert_eq!(ok.status(), Some(StatusCode::OK));
    assert_eq!(ok.contacts().count(), 1);
}

#[tokio::test]
async fn register_with_digest_over_udp_and_tcp() {
    for (transport, name) in [(TransportKind::Udp, "UDP"), (TransportKind::Tcp, "TCP")] {
        let server = endpoint().await;
        let server_addr = server.local_addr();
        tokio::spawn(serve_registrar(server));
        let client = endpoint().await;
        timeout(
            Duration::from_secs(10),
            register_through_challenge(&client, server_addr, transport, name),
        )
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn invite_200_ack_bye_call_over_udp_and_tcp() {
    for (transport, name) in [(TransportKind::Udp, "UDP"), (TransportKind::Tcp, "TCP")] {
        call(transport, name).await;
    }
}

async fn call(transport: TransportKind, name: &str) {
    let mut uas = endpoint().await;
    let uas_addr = uas.local_addr();
    let callee = tokio::spawn(async move {
        let mut log = Vec::new();
        while let Some(incoming) = uas.next().await {
            match incoming {
                Incoming::Request(req) => {
                    let method = req.request.method().unwrap().clone();
                    log.push(method.to_string());
                    if method == Method::Invite {
                        req.respond(Message::response_to(
                            &req.request,
                            StatusCode::RINGING,
                            Some("uas"),
                        ))
                        .await
                        .unwrap();
                    }
                    req.respond(Message::response_to(
                        &req.request,
                        StatusCode::OK,
                        Some("uas"),
                    ))
                    .await
                    .unwrap();
                    if method == Method::Bye {
                        return log;
                    }
                }
                Incoming::Ack { .. } => log.push("ACK".into()),
                other => panic!("{other:?}"),
            }
        }
        log
    });
    let uac = endpoint().await;
    let target = Target {
        addr: uas_addr,
        transport,
    };
    let invite = request(
        "INVITE",
        uac.local_addr(),
        uas_addr,
        "UDP",
        "call-1",
        1,
        "i1",
    );
    let mut tx = uac.send_request(invite.clone(), target).await.unwrap();
    let mut statuses = Vec::new();
    let ok = timeout(Duration::from_secs(10), async {
        loop {
            let Some(ClientEvent::Response(r)) = tx.next().await else {
                panic!()
            };
            statuses.push(r.status().unwrap().as_u16());
            if r.status() == Some(StatusCode::OK) {
                return r;
            }
        }
    })
    .await
    .unwrap();
    assert!(statuses.ends_with(&[180, 200]), "{statuses:?}");
    assert_eq!(ok.to().unwrap().tag(), Some("uas"));
    // ACK for the 2xx: end to end, new branch, outside transactions.
    let mut ack = request("ACK", uac.local_addr(), uas_addr, name, "call-1", 1, "a1");
    ack.headers_mut()
        .set(HeaderName::To, "<sip:1000@127.0.0.1>;tag=uas");
    uac.send_stateless(ack, target).await;
    let mut bye = request("BYE", uac.local_addr(), uas_addr, name, "call-1", 2, "b1");
    bye.headers_mut()
        .set(HeaderName::To, "<sip:1000@127.0.0.1>;tag=uas");
    let mut tx = uac.send_request(bye, target).await.unwrap();
    let ClientEvent::Response(bye_ok) = timeout(Duration::from_secs(10), tx.final_response())
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(bye_ok.status(), Some(StatusCode::OK));
    let log = timeout(Duration::from_secs(10), callee)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(log, ["INVITE", "ACK", "BYE"]);
}

#[tokio::test]
async fn cancelled_invite_gets_487() {
    let mut uas = endpoint().await;
    let uas_addr = uas.local_addr();
    let callee = tokio::spawn(async move {
        while let Some(incoming) = uas.next().await {
            match incoming {
                Incoming::Request(req) => {
                    req.respond(Message::response_to(
                        &req.request,
                        StatusCode::RINGING,
                        Some("uas"),
                    ))
                    .await
                    .unwrap();
                }
                // The ACK of the 487 stays in the transaction: the CANCEL notice is last.
                Incoming::Cancelled { .. } => return true,
                other => panic!("{other:?}"),
            }
        }
        false
    });
    let uac = endpoint().await;
    let target = Target {
        addr: uas_addr,
        transport: TransportKind::Udp,
    };
    let invite = request(
        "INVITE",
        uac.local_addr(),
        uas_addr,
        "UDP",
        "call-2",
        1,
        "i2",
    );
    let mut tx = uac.send_request(invite.clone(), target).await.unwrap();
    let ringing = timeout(Duration::from_secs(10), tx.next()).await.unwrap();
    assert!(
        matches!(&ringing, Some(ClientEvent::Response(r)) if r.status().unwrap().is_provisional()),
        "{ringing:?}"
    );
    let mut cancel = uac.send_request(cancel_for(&invite), target).await.unwrap();
    let ClientEvent::Response(cancel_ok) =
        timeout(Duration::from_secs(10), cancel.final_response())
            .await
            .unwrap()
    else {
        panic!()
    };
    assert_eq!(cancel_ok.status(), Some(StatusCode::OK));
    let ClientEvent::Response(terminated) = timeout(Duration::from_secs(10), tx.final_response())
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(terminated.status(), Some(StatusCode::REQUEST_TERMINATED));
    // The client transaction ACKed the 487 itself; the UAS saw the CANCEL.
    assert!(
        timeout(Duration::from_secs(10), callee)
            .await
            .unwrap()
            .unwrap(),
        "the UAS was told about the CANCEL"
    );
}

/// Relays datagrams between `a` and the endpoint at `b`, dropping every `n`-th one.
async fn lossy_relay(b: SocketAddr, n: usize) -> SocketAddr {
    let relay = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = relay.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_535];
        let mut client: Option<SocketAddr> = None;
        let mut count = 0;
        loop {
            let Ok((len, from)) = relay.recv_from(&mut buf).await else {
                return;
            };
            count += 1;
            if count % n == 0 {
                continue;
            }
            let to = if from == b {
                client
            } else {
                client = Some(from);
                Some(b)
            };
            if let Some(to) = to {
                let _ = relay.send_to(&buf[..len], to).await;
            }
        }
    });
    addr
}

#[tokio::test]
async fn register_survives_packet_loss() {
    let server = endpoint().await;
    let server_addr = server.local_addr();
    tokio::spawn(serve_registrar(server));
    // Every third datagram is lost, either way: retransmissions carry the exchange.
    let relay = lossy_relay(server_addr, 3).await;
    let client = endpoint().await;
    timeout(
        Duration::from_secs(30),
        register_through_challenge(&client, relay, TransportKind::Udp, "UDP"),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn bad_requests_get_400_or_420() {
    let mut server = endpoint().await;
    let server_addr = server.local_addr();
    let peer = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let me = peer.local_addr().unwrap();
    // CSeq method differs from the request's: 400 naming it.
    let text = format!(
        "OPTIONS sip:x@{server_addr} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKbad\r\nFrom: <sip:a@b>;tag=1\r\n\
         To: <sip:x@y>\r\nCall-ID: bad1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    );
    peer.send_to(text.as_bytes(), server_addr).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let (n, _) = timeout(Duration::from_secs(5), peer.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let answer = Message::parse(buf[..n].to_vec()).unwrap();
    assert_eq!(answer.status(), Some(StatusCode::BAD_REQUEST));
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("SIP/2.0 400 Bad Request (CSeq"));
    // Garbage: dropped, and the server keeps serving.
    peer.send_to(b"\x00\x01 not sip at all", server_addr)
        .await
        .unwrap();
    // Unknown Require: 420 with Unsupported.
    let text = format!(
        "OPTIONS sip:x@{server_addr} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKreq\r\nFrom: <sip:a@b>;tag=1\r\n\
         To: <sip:x@y>\r\nCall-ID: bad2\r\nCSeq: 1 OPTIONS\r\nRequire: nothingSupportsThis, timer\r\nContent-Length: 0\r\n\r\n"
    );
    peer.send_to(text.as_bytes(), server_addr).await.unwrap();
    let (n, _) = timeout(Duration::from_secs(5), peer.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let answer = Message::parse(buf[..n].to_vec()).unwrap();
    assert_eq!(answer.status(), Some(StatusCode::BAD_EXTENSION));
    assert_eq!(
        answer.headers().get(&HeaderName::Unsupported),
        Some("nothingSupportsThis")
    );
    // None of these reached the application.
    assert!(
        timeout(Duration::from_millis(200), server.next())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn every_retransmission_of_a_2xx_is_acked_again() {
    // The callee is a bare socket, so that the test decides what it retransmits.
    let callee = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let callee_addr = callee.local_addr().unwrap();
    let uac = endpoint().await;
    let target = Target {
        addr: callee_addr,
        transport: TransportKind::Udp,
    };
    let invite = request(
        "INVITE",
        uac.local_addr(),
        callee_addr,
        "UDP",
        "call-reack",
        7,
        "reack",
    );
    let mut tx = uac.send_request(invite, target).await.unwrap();
    let mut buf = vec![0u8; 65_535];
    let (n, from) = timeout(Duration::from_secs(5), callee.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let received = Message::parse(buf[..n].to_vec()).unwrap();
    let mut ok = Message::response_to(&received, StatusCode::OK, Some("callee"));
    ok.headers_mut()
        .push(HeaderName::Contact, format!("<sip:1000@{callee_addr}>"));
    let ok_bytes = ok.to_bytes();
    callee.send_to(&ok_bytes, from).await.unwrap();
    let ClientEvent::Response(answer) = timeout(Duration::from_secs(5), tx.final_response())
        .await
        .unwrap()
    else {
        panic!("no 200")
    };
    let dialog = pbxkit_sip::dialog::Dialog::uac(&received, &answer).unwrap();
    let via = format!("SIP/2.0/UDP {};branch=z9hG4bKack7", uac.local_addr());
    uac.send_ack(dialog.ack(7, &via), target).await;
    // The application is done with the transaction; the 2xx comes again, twice.
    drop(tx);
    let mut acks = Vec::new();
    for _ in 0..3 {
        let (n, _) = timeout(Duration::from_secs(5), callee.recv_from(&mut buf))
            .await
            .expect("an ACK for each 2xx")
            .unwrap();
        let ack = Message::parse(buf[..n].to_vec()).unwrap();
        assert_eq!(ack.method(), Some(&Method::Ack));
        assert_eq!(ack.cseq().unwrap().seq, 7);
        acks.push(ack.to_bytes());
        callee.send_to(&ok_bytes, from).await.unwrap();
    }
    // The same ACK each time (RFC 3261 §13.2.2.4).
    assert!(acks.iter().all(|a| *a == acks[0]));
}
