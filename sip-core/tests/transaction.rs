//! The transaction layer driven through simulated time: every timer path of RFC 3261
//! §17 (A–K, plus L and M of RFC 6026), CANCEL, and two layers talking over a lossy
//! simulated network.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use pbxkit_sip::transaction::*;
use pbxkit_sip::{HeaderName, Message, Method, StatusCode};
use std::time::{Duration, Instant};

const UAC: &str = "192.0.2.1:5060";
const UAS: &str = "192.0.2.2:5060";

fn target(addr: &str, transport: TransportKind) -> Target {
    Target {
        addr: addr.parse().unwrap(),
        transport,
    }
}

fn make_request(method: &str, branch: &str) -> Message {
    let body = format!(
        "{method} sip:bob@192.0.2.2 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch={branch};rport\r\n\
         From: <sip:alice@192.0.2.1>;tag=a1\r\nTo: <sip:bob@192.0.2.2>\r\nCall-ID: call-{branch}\r\n\
         CSeq: 1 {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    Message::parse(body.into_bytes()).unwrap()
}

/// Runs a layer's timers until `end`, returning (seconds since `t0`, transmit) pairs.
fn run_until(layer: &mut TransactionLayer, t0: Instant, end: Duration) -> Vec<(f64, Message)> {
    let mut sent = Vec::new();
    while let Some(at) = layer.poll_timeout() {
        if at > t0 + end {
            break;
        }
        layer.handle_timeout(at);
        while let Some(t) = layer.poll_transmit() {
            sent.push(((at - t0).as_secs_f64(), Message::parse(t.bytes).unwrap()));
        }
    }
    sent
}

fn drain(layer: &mut TransactionLayer) -> Vec<Message> {
    std::iter::from_fn(|| layer.poll_transmit())
        .map(|t| Message::parse(t.bytes).unwrap())
        .collect()
}

fn events(layer: &mut TransactionLayer) -> Vec<Event> {
    std::iter::from_fn(|| layer.poll_event()).collect()
}

fn times(sent: &[(f64, Message)]) -> Vec<f64> {
    sent.iter().map(|(t, _)| *t).collect()
}

#[test]
fn invite_client_retransmits_with_timer_a_and_times_out_with_timer_b() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(Timers::default());
    let tx = layer
        .send_request(
            make_request("INVITE", "z9hG4bKa"),
            target(UAS, TransportKind::Udp),
            t0,
        )
        .unwrap();
    assert_eq!(drain(&mut layer).len(), 1);
    let sent = run_until(&mut layer, t0, Duration::from_secs(40));
    // Timer A doubles from T1 without a cap: 0.5, 1, 2, 4, 8, 16 s.
    assert_eq!(times(&sent), [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]);
    let ev = events(&mut layer);
    assert!(
        matches!(ev.as_slice(), [Event::Timeout { tx: t }] if *t == tx),
        "{ev:?}"
    );
    assert!(layer.is_empty());
    assert_eq!(layer.poll_timeout(), None);
}

#[test]
fn non_invite_client_caps_timer_e_at_t2_and_uses_t2_when_proceeding() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(Timers::default());
    layer
        .send_request(
            make_request("OPTIONS", "z9hG4bKb"),
            target(UAS, TransportKind::Udp),
            t0,
        )
        .unwrap();
    drain(&mut layer);
    let sent = run_until(&mut layer, t0, Duration::from_secs(12));
    // 0.5, 1, 2, 4, then T2 = 4 s each time.
    assert_eq!(times(&sent), [0.5, 1.5, 3.5, 7.5, 11.5]);
    let sent = run_until(&mut layer, t0, Duration::from_secs(40));
    assert_eq!(
        sent.len(),
        5,
        "15.5 19.5 23.5 27.5 31.5: {:?}",
        times(&sent)
    );
    assert!(matches!(
        events(&mut layer).as_slice(),
        [Event::Timeout { .. }]
    ));
    assert!(layer.is_empty());

    // A provisional response moves the transaction to Proceeding: retransmit every T2.
    let mut layer = TransactionLayer::new(Timers::default());
    let req = make_request("OPTIONS", "z9hG4bKc");
    layer
        .send_request(req.clone(), target(UAS, TransportKind::Udp), t0)
        .unwrap();
    drain(&mut layer);
    let trying = Message::response_to(&req, StatusCode::TRYING, None);
    layer.handle_message(
        Message::parse(trying.to_bytes()).unwrap(),
        target(UAS, TransportKind::Udp),
        t0 + Duration::from_millis(100),
    );
    assert!(matches!(
        events(&mut layer).as_slice(),
        [Event::Response { .. }]
    ));
    let sent = run_until(&mut layer, t0, Duration::from_secs(10));
    assert_eq!(times(&sent), [0.5, 4.5, 8.5]);
}

#[test]
fn reliable_transports_do_not_retransmit() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(Timers::default());
    layer
        .send_request(
            make_request("INVITE", "z9hG4bKd"),
            target(UAS, TransportKind::Tcp),
            t0,
        )
        .unwrap();
    layer
        .send_request(
            make_request("REGISTER", "z9hG4bKe"),
            target(UAS, TransportKind::Tcp),
            t0,
        )
        .unwrap();
    assert_eq!(drain(&mut layer).len(), 2);
    let sent = run_until(&mut layer, t0, Duration::from_secs(40));
    assert!(sent.is_empty());
    assert_eq!(
        events(&mut layer)
            .iter()
            .filter(|e| matches!(e, Event::Timeout { .. }))
            .count(),
        2
    );
    assert!(layer.is_empty());
}

#[test]
fn non_invite_client_absorbs_retransmitted_finals_until_timer_k() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(Timers::default());
    let req = make_request("REGISTER", "z9hG4bKf");
    let tx = layer
        .send_request(req.clone(), target(UAS, TransportKind::Udp), t0)
        .unwrap();
    drain(&mut layer);
    let ok =
        Message::parse(Message::response_to(&req, StatusCode::OK, Some("b1")).to_bytes()).unwrap();
    let at = t0 + Duration::from_millis(300);
    layer.handle_message(ok.clone(), target(UAS, TransportKind::Udp), at);
    layer.handle_message(
        ok,
        target(UAS, TransportKind::Udp),
        at + Duration::from_millis(10),
    );
    let ev = events(&mut layer);
    assert!(
        matches!(ev.as_slice(), [Event::Response { tx: t, response }] if *t == tx && response.status() == Some(StatusCode::OK)),
        "{ev:?}"
    );
    // Timer K = T4 = 5 s, and no retransmission of the request after the final.
    assert!(run_until(&mut layer, at, Duration::from_secs(6)).is_empty());
    assert!(layer.is_empty());
}

#[test]
fn invite_client_acks_failures_itself_and_waits_timer_d() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(Timers::default());
    let invite = make_request("INVITE", "z9hG4bKg");
    layer
        .send_request(invite.clone(), target(UAS, TransportKind::Udp), t0)
        .unwrap();
    drain(&mut layer);
    let busy = Message::parse(
        Message::response_to(&invite, StatusCode::BUSY_HERE, Some("callee")).to_bytes(),
    )
    .unwrap();
    layer.handle_message(
        busy.clone(),
        target(UAS, TransportKind::Udp),
        t0 + Duration::from_secs(1),
    );
    let acks = drain(&mut layer);
    assert_eq!(acks.len(), 1);
    let ack = &acks[0];
    assert_eq!(ack.method(), Some(&Method::Ack));
    assert_eq!(ack.top_via().unwrap().branch(), Some("z9hG4bKg"));
    assert_eq!(ack.to().unwrap().tag(), Some("callee"));
    assert_eq!(ack.cseq().unwrap().seq, 1);
    assert_eq!(ack.cseq().unwrap().method, Method::Ack);
    assert_eq!(events(&mut layer).len(), 1);
    // A retransmitted 486 is acknowledged again and not passed up.
    layer.handle_message(
        busy,
        target(UAS, TransportKind::Udp),
        t0 + Duration::from_secs(2),
    );
    assert_eq!(drain(&mut layer).len(), 1);
    assert!(events(&mut layer).is_empty());
    // Timer D: 32 s on UDP; Timer A stopped at the response.
    assert!(run_until(&mut layer, t0, Duration::from_secs(40)).is_empty());
    assert!(layer.is_empty());
}

#[test]
fn invite_client_passes_2xx_retransmissions_up_until_timer_m() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(Timers::default());
    let invite = make_request("INVITE", "z9hG4bKh");
    layer
        .send_request(invite.clone(), target(UAS, TransportKind::Udp), t0)
        .unwrap();
    drain(&mut layer);
    let ok =
        Message::parse(Message::response_to(&invite, StatusCode::OK, Some("callee")).to_bytes())
            .unwrap();
    layer.handle_message(
        ok.clone(),
        target(UAS, TransportKind::Udp),
        t0 + Duration::from_secs(1),
    );
    layer.handle_message(
        ok.clone(),
        target(UAS, TransportKind::Udp),
        t0 + Duration::from_secs(2),
    );
    assert_eq!(
        events(&mut layer)
            .iter()
            .filter(|e| matches!(e, Event::Response { .. }))
            .count(),
        2
    );
    // No ACK from the transaction for a 2xx: the TU sends it end to end.
    assert!(drain(&mut layer).is_empty());
    run_until(&mut layer, t0, Duration::from_secs(34));
    assert!(layer.is_empty());
    layer.handle_message(
        ok,
        target(UAS, TransportKind::Udp),
        t0 + Duration::from_secs(40),
    );
    assert!(matches!(
        events(&mut layer).as_slice(),
        [Event::StrayResponse { .. }]
    ));
}

#[test]
fn non_invite_server_answers_retransmissions_then_timer_j() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(Timers::default());
    let req = make_request("OPTIONS", "z9hG4bKi");
    let src = target(UAC, TransportKind::Udp);
    layer.handle_message(req.clone(), src, t0);
    let ev = events(&mut layer);
    let [Event::Request { tx, request, .. }] = ev.as_slice() else {
        panic!("{ev:?}")
    };
    // Via stamped with rport (RFC 3581); the sent-by host is the source IP, so no received.
    assert_eq!(request.top_via().unwrap().rport(), Some(Some(5060)));
    layer.handle_message(req.clone(), src, t0 + Duration::from_millis(500));
    assert!(
        drain(&mut layer).is_empty(),
        "Trying state absorbs retransmissions"
    );
    assert!(events(&mut layer).is_empty());
    layer
        .respond(
            *tx,
            Message::response_to(request, StatusCode::OK, Some("s1")),
            t0 + Duration::from_secs(1),
        )
        .unwrap();
    assert_eq!(drain(&mut layer).len(), 1);
    layer.handle_message(req, src, t0 + Duration::from_secs(2));
    let again = drain(&mut layer);
    assert_eq!(again[0].status(), Some(StatusCode::OK));
    assert!(
        layer
            .respond(
                *tx,
                Message::response_to(request, StatusCode::OK, None),
                t0 + Duration::from_secs(3)
            )
            .is_err()
    );
    run_until(&mut layer, t0, Duration::from_secs(1 + 32));
    assert!(layer.is_empty());
}

#[test]
fn invite_server_sends_100_after_200ms_and_retransmits_failure_with_timer_g() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(Timers::default());
    let invite = make_request("INVITE", "z9hG4bKj");
    let src = target(UAC, TransportKind::Udp);
    layer.handle_message(invite.clone(), src, t0);
    let ev = events(&mut layer);
    let [Event::Request { tx, request, .. }] = ev.as_slice() else {
        panic!("{ev:?}")
    };
    let sent = run_until(&mut layer, t0, Duration::from_millis(300));
    assert_eq!(sent.len(), 1);
    assert!((sent[0].0 - 0.2).abs() < 1e-9);
    assert_eq!(sent[0].1.status(), Some(StatusCode::TRYING));
    // A retransmitted INVITE gets the last provisional again.
    layer.handle_message(invite.clone(), src, t0 + Duration::from_millis(500));
    assert_eq!(drain(&mut layer)[0].status(), Some(StatusCode::TRYING));
    let t1 = t0 + Duration::from_secs(1);
    layer
        .respond(
            *tx,
            Message::response_to(request, StatusCode::BUSY_HERE, Some("s2")),
            t1,
        )
        .unwrap();
    assert_eq!(drain(&mut layer).len(), 1);
    let sent = run_until(&mut layer, t1, Duration::from_secs(12));
    // Timer G: 0.5, 1, 2, 4, then T2 = 4 s.
    assert_eq!(times(&sent), [0.5, 1.5, 3.5, 7.5, 11.5]);
    // No ACK: Timer H (64 T1 after the final) gives up.
    run_until(&mut layer, t1, Duration::from_secs(33));
    assert!(matches!(
        events(&mut layer).as_slice(),
        [Event::NoAck { .. }]
    ));
    assert!(layer.is_empty());
}

#[test]
fn invite_server_stops_at_ack_and_absorbs_acks_with_timer_i() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(Timers::default());
    let invite = make_request("INVITE", "z9hG4bKk");
    let src = target(UAC, TransportKind::Udp);
    layer.handle_message(invite.clone(), src, t0);
    let Some(Event::Request { tx, request, .. }) = layer.poll_event() else {
        panic!()
    };
    layer
        .respond(
            tx,
            Message::response_to(&request, StatusCode::BUSY_HERE, Some("s3")),
            t0,
        )
        .unwrap();
    let busy = drain(&mut layer).remove(0);
    let ack = ack_for_failure(&invite, &busy);
    layer.handle_message(
        Message::parse(ack.to_bytes()).unwrap(),
        src,
        t0 + Duration::from_millis(100),
    );
    layer.handle_message(
        Message::parse(ack.to_bytes()).unwrap(),
        src,
        t0 + Duration::from_millis(200),
    );
    assert!(
        events(&mut layer).is_empty(),
        "the ACK of a failure stays in the transaction"
    );
    assert!(
        run_until(&mut layer, t0, Duration::from_secs(10)).is_empty(),
        "Timer G stopped"
    );
    assert!(layer.is_empty(), "Timer I (T4) ended it");
}

#[test]
fn invite_server_retransmits_2xx_until_its_ack() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(Timers::default());
    let invite = make_request("INVITE", "z9hG4bKl");
    let src = target(UAC, TransportKind::Udp);
    layer.handle_message(invite, src, t0);
    let Some(Event::Request { tx, request, .. }) = layer.poll_event() else {
        panic!()
    };
    layer
        .respond(
            tx,
            Message::response_to(&request, StatusCode::OK, Some("s4")),
            t0,
        )
        .unwrap();
    drain(&mut layer);
    let sent = run_until(&mut layer, t0, Duration::from_secs(2));
    assert_eq!(times(&sent), [0.5, 1.5]);
    // The ACK of a 2xx has a branch of its own; it matches by dialog and goes to the TU.
    let mut ack = request.clone();
    ack.start = pbxkit_sip::StartLine::Request {
        method: Method::Ack,
        uri: request.request_uri().unwrap().clone(),
    };
    let h = ack.headers_mut();
    h.set(
        HeaderName::Via,
        "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKack",
    );
    h.set(HeaderName::CSeq, "1 ACK");
    h.set(HeaderName::To, "<sip:bob@192.0.2.2>;tag=s4");
    layer.handle_message(
        Message::parse(ack.to_bytes()).unwrap(),
        src,
        t0 + Duration::from_secs(2),
    );
    assert!(matches!(events(&mut layer).as_slice(), [Event::Ack { .. }]));
    assert!(
        run_until(&mut layer, t0, Duration::from_secs(40)).is_empty(),
        "no 2xx after the ACK"
    );
    assert!(events(&mut layer).is_empty(), "no NoAck");
    assert!(layer.is_empty(), "Timer L ended it");
}

#[test]
fn cancel_of_a_proceeding_invite_gives_487_and_200() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(Timers::default());
    let invite = make_request("INVITE", "z9hG4bKm");
    let src = target(UAC, TransportKind::Udp);
    layer.handle_message(invite.clone(), src, t0);
    let Some(Event::Request { tx, request, .. }) = layer.poll_event() else {
        panic!()
    };
    layer
        .respond(
            tx,
            Message::response_to(&request, StatusCode::RINGING, Some("s5")),
            t0,
        )
        .unwrap();
    drain(&mut layer);
    let cancel = cancel_for(&invite);
    assert_eq!(cancel.method(), Some(&Method::Cancel));
    layer.handle_message(
        Message::parse(cancel.to_bytes()).unwrap(),
        src,
        t0 + Duration::from_secs(1),
    );
    let sent = drain(&mut layer);
    let codes: Vec<(u16, Method)> = sent
        .iter()
        .map(|m| {
            (
                m.status().unwrap().as_u16(),
                m.cseq().unwrap().method.clone(),
            )
        })
        .collect();
    assert_eq!(codes, [(200, Method::Cancel), (487, Method::Invite)]);
    assert!(matches!(events(&mut layer).as_slice(), [Event::Cancelled { tx: t, .. }] if *t == tx));
    // The TU can't answer any more.
    assert!(
        layer
            .respond(
                tx,
                Message::response_to(&request, StatusCode::OK, None),
                t0 + Duration::from_secs(2)
            )
            .is_err()
    );
    // A CANCEL for nothing gets 481.
    let stray = cancel_for(&make_request("INVITE", "z9hG4bKnothing"));
    layer.handle_message(
        Message::parse(stray.to_bytes()).unwrap(),
        src,
        t0 + Duration::from_secs(2),
    );
    assert_eq!(
        drain(&mut layer)[0].status(),
        Some(StatusCode::CALL_DOES_NOT_EXIST)
    );
}

#[test]
fn rfc2543_requests_match_without_a_magic_cookie() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(Timers::default());
    let req = make_request("OPTIONS", "old2543branch");
    let src = target(UAC, TransportKind::Udp);
    layer.handle_message(req.clone(), src, t0);
    layer.handle_message(req, src, t0 + Duration::from_millis(500));
    assert_eq!(events(&mut layer).len(), 1, "the retransmission matched");
}

#[test]
fn responses_go_back_where_the_request_came_from() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(Timers::default());
    let mut req = make_request("OPTIONS", "z9hG4bKn");
    req.headers_mut().set(
        HeaderName::Via,
        "SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bKn;rport",
    );
    let nat = target("198.51.100.7:40000", TransportKind::Udp);
    layer.handle_message(Message::parse(req.to_bytes()).unwrap(), nat, t0);
    let Some(Event::Request { tx, request, .. }) = layer.poll_event() else {
        panic!()
    };
    let via = request.top_via().unwrap();
    assert_eq!(via.received(), Some("198.51.100.7".parse().unwrap()));
    assert_eq!(via.rport(), Some(Some(40000)));
    layer
        .respond(tx, Message::response_to(&request, StatusCode::OK, None), t0)
        .unwrap();
    let t = layer.poll_transmit().unwrap();
    assert_eq!(t.target, nat, "rport: symmetric response routing");
    let ok = Message::parse(t.bytes).unwrap();
    assert_eq!(ok.top_via().unwrap().rport(), Some(Some(40000)));
}

/// Two layers and a network that drops datagrams by a seeded pattern.
struct Pair {
    uac: TransactionLayer,
    uas: TransactionLayer,
    now: Instant,
    seed: u64,
    drop_percent: u64,
    dropped: usize,
}

impl Pair {
    fn new(seed: u64, drop_percent: u64) -> Pair {
        Pair {
            uac: TransactionLayer::new(Timers::default()),
            uas: TransactionLayer::new(Timers::default()),
            now: Instant::now(),
            seed,
            drop_percent,
            dropped: 0,
        }
    }

    fn lose(&mut self) -> bool {
        // xorshift: deterministic per seed.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        self.seed % 100 < self.drop_percent
    }

    /// Delivers everything in flight, then advances to the next timer; answers every
    /// request the UAS sees with `answer`. Stops at `limit`.
    fn run(&mut self, limit: Duration, answer: StatusCode) -> Vec<Event> {
        let start = self.now;
        let mut uac_events = Vec::new();
        loop {
            let mut moved = false;
            while let Some(t) = self.uac.poll_transmit() {
                moved = true;
                if !self.lose() {
                    self.uas.handle_message(
                        Message::parse(t.bytes).unwrap(),
                        target(UAC, TransportKind::Udp),
                        self.now,
                    );
                } else {
                    self.dropped += 1;
                }
            }
            while let Some(t) = self.uas.poll_transmit() {
                moved = true;
                if !self.lose() {
                    self.uac.handle_message(
                        Message::parse(t.bytes).unwrap(),
                        target(UAS, TransportKind::Udp),
                        self.now,
                    );
                } else {
                    self.dropped += 1;
                }
            }
            while let Some(e) = self.uas.poll_event() {
                moved = true;
                // ACKs come as Event::Ack, never as requests to answer.
                if let Event::Request { tx, request, .. } = e {
                    self.uas
                        .respond(
                            tx,
                            Message::response_to(&request, answer, Some("uas")),
                            self.now,
                        )
                        .unwrap();
                }
            }
            uac_events.extend(std::iter::from_fn(|| self.uac.poll_event()));
            if moved {
                continue;
            }
            let next = [self.uac.poll_timeout(), self.uas.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(at) if at <= start + limit => {
                    self.now = at;
                    self.uac.handle_timeout(at);
                    self.uas.handle_timeout(at);
                }
                _ => return uac_events,
            }
        }
    }
}

#[test]
fn lossy_network_still_completes_transactions() {
    let mut completed = 0;
    let mut total_dropped = 0;
    for seed in 1..=40u64 {
        let mut pair = Pair::new(seed * 7919, 30);
        let req = make_request("REGISTER", &format!("z9hG4bKpair{seed}"));
        pair.uac
            .send_request(req, target(UAS, TransportKind::Udp), pair.now)
            .unwrap();
        let ev = pair.run(Duration::from_secs(60), StatusCode::OK);
        let ok = ev.iter().any(|e| matches!(e, Event::Response { response, .. } if response.status() == Some(StatusCode::OK)));
        let timed_out = ev.iter().any(|e| matches!(e, Event::Timeout { .. }));
        assert!(ok ^ timed_out, "seed {seed}: exactly one outcome: {ev:?}");
        completed += usize::from(ok);
        total_dropped += pair.dropped;
        // Every transaction ends: nothing leaks.
        assert!(
            pair.uac.is_empty() && pair.uas.is_empty(),
            "seed {seed}: {:?} {:?}",
            pair.uac.len(),
            pair.uas.len()
        );
    }
    assert!(total_dropped > 0);
    // With 30 % loss and 11 tries per request nearly all complete.
    assert!(completed >= 38, "{completed}/40");
}

#[test]
fn lossy_network_invite_failure_is_acked_and_everything_ends() {
    for seed in 1..=20u64 {
        let mut pair = Pair::new(seed * 104_729, 25);
        let invite = make_request("INVITE", &format!("z9hG4bKinv{seed}"));
        pair.uac
            .send_request(invite, target(UAS, TransportKind::Udp), pair.now)
            .unwrap();
        let ev = pair.run(Duration::from_secs(120), StatusCode::BUSY_HERE);
        let finals = ev.iter().filter(|e| matches!(e, Event::Response { response, .. } if response.status() == Some(StatusCode::BUSY_HERE))).count();
        assert!(finals <= 1, "seed {seed}: the final is passed up once");
        assert!(pair.uac.is_empty() && pair.uas.is_empty(), "seed {seed}");
    }
}
