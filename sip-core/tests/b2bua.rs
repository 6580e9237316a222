//! B2BUA legs driven through simulated time: real transaction layers on every node
//! (caller, PBX, callees) exchanging parsed bytes over a simulated network with seeded
//! loss, duplication and reordering; every timer path of the legs.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use bytes::Bytes;
use pbxkit_sip::b2bua::*;
use pbxkit_sip::cause::Reason;
use pbxkit_sip::digest::{Algorithm, DigestServer};
use pbxkit_sip::transaction::*;
use pbxkit_sip::{Auth, HeaderName, Message, Method, StatusCode, Uri};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// xorshift64*: deterministic per seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn percent(&mut self, p: u64) -> bool {
        self.next() % 100 < p
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

const SDP_A: &str = "v=0\r\no=alice 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
const SDP_B: &str = "v=0\r\no=bob 7 7 IN IP4 192.0.2.21\r\ns=-\r\nc=IN IP4 192.0.2.21\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n";
const SDP_HOLD: &str = "v=0\r\no=alice 1 2 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=sendonly\r\n";

fn sdp(s: &str) -> Bytes {
    Bytes::from(s.to_owned())
}

fn udp(addr: SocketAddr) -> Target {
    Target {
        addr,
        transport: TransportKind::Udp,
    }
}

#[derive(Debug)]
enum AnyLeg {
    In(IncomingLeg),
    Out(OutgoingLegs),
}

impl AnyLeg {
    fn leg(&mut self) -> &mut dyn Leg {
        match self {
            AnyLeg::In(l) => l,
            AnyLeg::Out(l) => l,
        }
    }

    fn leg_ref(&self) -> &dyn Leg {
        match self {
            AnyLeg::In(l) => l,
            AnyLeg::Out(l) => l,
        }
    }

    fn dialog(&mut self) -> &mut Established {
        match self {
            AnyLeg::In(l) => l.dialog().unwrap(),
            AnyLeg::Out(l) => l.dialog().unwrap(),
        }
    }

    fn inc(&mut self) -> &mut IncomingLeg {
        match self {
            AnyLeg::In(l) => l,
            AnyLeg::Out(_) => panic!("not an incoming leg"),
        }
    }

    fn out(&mut self) -> &mut OutgoingLegs {
        match self {
            AnyLeg::Out(l) => l,
            AnyLeg::In(_) => panic!("not an outgoing leg"),
        }
    }
}

/// What a node does by itself (the "user" of a phone, the call engine of the PBX).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Policy {
    /// Leaves unrouted events for the test (raw transaction-layer control).
    Raw,
    /// Makes an incoming leg of every new INVITE, and does nothing else.
    Legs,
    /// A phone: rings, then after `after` answers (`None`) or rejects; gives up after
    /// `give_up` with 480; hangs up `talk` after answering; BYEs on NoAck/expiry.
    Phone {
        after: Duration,
        reject: Option<u16>,
        talk: Option<Duration>,
    },
    /// The PBX: bridges every incoming call to the `callees`, with a ring timeout.
    Bridge,
}

#[derive(Debug, Clone, Copy)]
enum Act {
    Answer(u32),
    Reject(u32, u16),
    HangUp(u32),
    CancelAll(u32),
}

struct Node {
    name: &'static str,
    addr: SocketAddr,
    layer: TransactionLayer,
    legs: BTreeMap<u32, AnyLeg>,
    routes: Routes<u32>,
    next_leg: u32,
    created: u32,
    terminated: Vec<u32>,
    events: Vec<(Duration, u32, LegEvent)>,
    unrouted: Vec<Event>,
    policy: Policy,
    config: LegConfig,
    acts: Vec<(Instant, Act)>,
    /// Bridge: the callees to ring, and leg pairs (incoming ↔ outgoing).
    callees: Vec<SocketAddr>,
    peers: BTreeMap<u32, u32>,
    send_errors: usize,
    /// Calls placed with `call` carry no SDP (a late offer).
    late_offer: bool,
}

impl Node {
    fn new(name: &'static str, addr: &str, policy: Policy) -> Node {
        let addr: SocketAddr = addr.parse().unwrap();
        let contact = Uri::parse(&format!("sip:{name}@{addr}")).unwrap();
        Node {
            name,
            addr,
            layer: TransactionLayer::new(Timers::default()),
            legs: BTreeMap::new(),
            routes: Routes::new(),
            next_leg: 1,
            created: 0,
            terminated: Vec::new(),
            events: Vec::new(),
            unrouted: Vec::new(),
            policy,
            config: LegConfig::new(&addr.to_string(), contact),
            acts: Vec::new(),
            callees: Vec::new(),
            peers: BTreeMap::new(),
            send_errors: 0,
            late_offer: false,
        }
    }

    fn add(&mut self, leg: AnyLeg) -> u32 {
        let id = self.next_leg;
        self.next_leg += 1;
        self.created += 1;
        self.routes.insert(leg.leg_ref().key(), id);
        if let AnyLeg::In(l) = &leg {
            self.routes.server(l.server_tx(), id);
        }
        self.legs.insert(id, leg);
        id
    }

    fn token(&self) -> String {
        format!("{}{}x", self.name, self.next_leg)
    }

    /// An outgoing call to `to` through its `targets`.
    fn call(
        &mut self,
        to: &str,
        targets: &[SocketAddr],
        extra: &[(HeaderName, &str)],
        now: Instant,
    ) -> u32 {
        let uri = Uri::parse(to).unwrap();
        let mut template = Message::request(Method::Invite, uri.clone());
        let h = template.headers_mut();
        h.push(
            HeaderName::From,
            format!("<sip:{}@{}>", self.name, self.addr),
        );
        h.push(HeaderName::To, format!("<{to}>"));
        for (n, v) in extra {
            h.push(n.clone(), *v);
        }
        if !self.late_offer {
            h.push(HeaderName::ContentType, "application/sdp");
            template.body = sdp(SDP_A);
        }
        let mut leg = OutgoingLegs::new(self.config.clone(), &self.token(), template);
        for t in targets {
            leg.add_branch(uri.clone(), udp(*t), None, now).unwrap();
        }
        self.add(AnyLeg::Out(leg))
    }

    fn leg(&mut self, id: u32) -> &mut AnyLeg {
        self.legs.get_mut(&id).unwrap()
    }

    fn has_event(&self, leg: u32, f: impl Fn(&LegEvent) -> bool) -> bool {
        self.events.iter().any(|(_, l, e)| *l == leg && f(e))
    }

    fn event_time(&self, leg: u32, f: impl Fn(&LegEvent) -> bool) -> Option<Duration> {
        self.events
            .iter()
            .find(|(_, l, e)| *l == leg && f(e))
            .map(|(t, _, _)| *t)
    }

    fn is_clean(&self) -> bool {
        self.legs.is_empty() && self.routes.is_empty() && self.layer.is_empty()
    }

    /// Drains legs and layer until nothing moves; datagrams go to `wire`.
    fn pump(&mut self, t0: Instant, now: Instant, wire: &mut Vec<(SocketAddr, SocketAddr, Bytes)>) {
        loop {
            let mut moved = false;
            let ids: Vec<u32> = self.legs.keys().copied().collect();
            for id in ids {
                while let Some(out) = self.legs.get_mut(&id).and_then(|l| l.leg().poll_output()) {
                    moved = true;
                    match out {
                        Output::Request {
                            key,
                            request,
                            target,
                        } => {
                            let r = self.layer.send_request(request, target, now);
                            if let Ok(tx) = &r {
                                self.routes.client(*tx, id);
                            }
                            self.legs.get_mut(&id).unwrap().leg().sent(key, r, now);
                        }
                        Output::Response { tx, response } => {
                            let refused = self.layer.respond(tx, response, now).is_err();
                            self.send_errors += usize::from(refused);
                        }
                        Output::Ack { request, target } => {
                            wire.push((self.addr, target.addr, request.to_bytes()));
                        }
                        Output::Event(e) => {
                            self.react(id, &e, now);
                            self.events.push((now - t0, id, e));
                        }
                        _ => {}
                    }
                }
                if self
                    .legs
                    .get(&id)
                    .is_some_and(|l| l.leg_ref().is_terminated())
                {
                    assert!(
                        self.legs
                            .get_mut(&id)
                            .unwrap()
                            .leg()
                            .poll_output()
                            .is_none()
                    );
                    self.legs.remove(&id);
                    self.routes.remove(id);
                    self.terminated.push(id);
                }
            }
            while let Some(t) = self.layer.poll_transmit() {
                moved = true;
                wire.push((self.addr, t.target.addr, t.bytes));
            }
            while let Some(ev) = self.layer.poll_event() {
                moved = true;
                match self.routes.route(&ev) {
                    Some(id) if self.legs.contains_key(&id) => {
                        self.legs.get_mut(&id).unwrap().leg().handle_event(ev, now);
                    }
                    _ => self.unrouted(ev, now),
                }
            }
            if !moved {
                break;
            }
        }
    }

    fn unrouted(&mut self, ev: Event, now: Instant) {
        if self.policy == Policy::Raw {
            self.unrouted.push(ev);
            return;
        }
        match ev {
            Event::Request {
                tx,
                request,
                source,
            } if request.method() == Some(&Method::Invite)
                && request.to().unwrap().tag().is_none() =>
            {
                let token = self.token();
                let leg = IncomingLeg::new(self.config.clone(), &token, tx, request, source, now);
                let id = self.add(AnyLeg::In(leg));
                self.on_new_call(id, now);
            }
            Event::Request { tx, request, .. } => {
                // What any owner does with a request for no leg.
                let r = Message::response_to(&request, StatusCode::CALL_DOES_NOT_EXIST, None);
                let _ = self.layer.respond(tx, r, now);
            }
            other => self.unrouted.push(other),
        }
    }

    fn on_new_call(&mut self, id: u32, now: Instant) {
        match self.policy {
            Policy::Phone { after, reject, .. } => {
                let _ = self.leg(id).inc().ring(None, now);
                let act = match reject {
                    Some(code) => Act::Reject(id, code),
                    None => Act::Answer(id),
                };
                self.acts.push((now + after, act));
                self.acts
                    .push((now + Duration::from_secs(60), Act::Reject(id, 480)));
            }
            Policy::Bridge => {
                let offer = self.leg(id).inc().offer();
                let uri = Uri::parse("sip:callee@example.com").unwrap();
                let mut template = Message::request(Method::Invite, uri.clone());
                let h = template.headers_mut();
                h.push(HeaderName::From, "<sip:caller@pbx>");
                h.push(HeaderName::To, "<sip:callee@example.com>");
                if let Some(o) = offer {
                    h.push(HeaderName::ContentType, "application/sdp");
                    template.body = o;
                }
                let mut out = OutgoingLegs::new(self.config.clone(), &self.token(), template);
                for c in self.callees.clone() {
                    out.add_branch(uri.clone(), udp(c), None, now).unwrap();
                }
                let b = self.add(AnyLeg::Out(out));
                self.peers.insert(id, b);
                self.peers.insert(b, id);
                let _ = self.leg(id).inc().ring(None, now);
                self.acts
                    .push((now + Duration::from_secs(20), Act::CancelAll(b)));
            }
            Policy::Raw | Policy::Legs => {}
        }
    }

    /// The node's own reaction to a leg event.
    fn react(&mut self, id: u32, e: &LegEvent, now: Instant) {
        let peer = self.peers.get(&id).copied();
        let alive = |n: &Node, l: u32| n.legs.contains_key(&l);
        match (self.policy, e) {
            (
                Policy::Phone { talk, .. },
                LegEvent::Answered { .. } | LegEvent::Confirmed { .. },
            ) => {
                if let Some(AnyLeg::Out(l)) = self.legs.get_mut(&id)
                    && let Some(d) = l.dialog()
                    && d.awaits_answer()
                {
                    let _ = d.ack_answer(sdp(SDP_A), now);
                }
                if let Some(t) = talk {
                    self.acts.push((now + t, Act::HangUp(id)));
                }
            }
            (Policy::Bridge, LegEvent::Confirmed { sdp: Some(answer) }) => {
                // A late offer's answer, from the caller's ACK to the callee's.
                if let Some(AnyLeg::Out(l)) = peer.and_then(|p| self.legs.get_mut(&p))
                    && let Some(d) = l.dialog()
                    && d.awaits_answer()
                {
                    let _ = d.ack_answer(answer.clone(), now);
                }
            }
            (Policy::Phone { .. } | Policy::Bridge, LegEvent::NoAck | LegEvent::SessionExpired) => {
                self.hang_up(id, now);
            }
            (Policy::Bridge, LegEvent::Answered { sdp, .. }) => {
                if let Some(p) = peer.filter(|p| alive(self, *p)) {
                    if let AnyLeg::In(l) = self.leg(p)
                        && l.answer(sdp.clone(), now).is_err()
                    {
                        self.hang_up(id, now);
                    }
                } else {
                    self.hang_up(id, now);
                }
            }
            (Policy::Bridge, LegEvent::Failed { status, .. }) => {
                if let Some(p) = peer.filter(|p| alive(self, *p))
                    && let AnyLeg::In(l) = self.leg(p)
                {
                    let _ = l.reject(*status, None, &[], now);
                }
            }
            (Policy::Bridge, LegEvent::Cancelled { .. } | LegEvent::Ended { .. }) => {
                if let Some(p) = peer.filter(|p| alive(self, *p)) {
                    self.hang_up(p, now);
                }
            }
            (Policy::Bridge, LegEvent::Terminated) => {
                if let Some(p) = peer.filter(|p| alive(self, *p)) {
                    self.hang_up(p, now);
                }
            }
            (Policy::Phone { .. } | Policy::Bridge, LegEvent::Offer { .. }) => {
                let answer = self.leg(id).dialog().local_sdp().cloned();
                let _ = self.leg(id).dialog().accept_offer(answer, now);
            }
            _ => {}
        }
    }

    fn hang_up(&mut self, id: u32, now: Instant) {
        if let Some(l) = self.legs.get_mut(&id) {
            let _ = match l {
                AnyLeg::In(l) => l.hang_up(16, now),
                AnyLeg::Out(l) => l.hang_up(16, now),
            };
        }
    }

    fn run_acts(&mut self, now: Instant) {
        let due: Vec<Act> = self
            .acts
            .iter()
            .filter(|(at, _)| *at <= now)
            .map(|(_, a)| *a)
            .collect();
        self.acts.retain(|(at, _)| *at > now);
        for act in due {
            match act {
                Act::Answer(id) => {
                    if let Some(AnyLeg::In(l)) = self.legs.get_mut(&id) {
                        let _ = l.answer(Some(sdp(SDP_B)), now);
                    }
                }
                Act::Reject(id, code) => {
                    if let Some(AnyLeg::In(l)) = self.legs.get_mut(&id) {
                        let _ = l.reject(StatusCode::new(code).unwrap(), None, &[], now);
                    }
                }
                Act::HangUp(id) => self.hang_up(id, now),
                Act::CancelAll(id) => {
                    if let Some(AnyLeg::Out(l)) = self.legs.get_mut(&id) {
                        l.cancel_all(now);
                    }
                }
            }
        }
    }

    fn next_timeout(&self) -> Option<Instant> {
        let legs = self
            .legs
            .values()
            .filter_map(|l| l.leg_ref().poll_timeout())
            .min();
        let acts = self.acts.iter().map(|(at, _)| *at).min();
        [legs, acts].into_iter().flatten().min()
    }
}

/// A datagram on its way.
struct Flight {
    at: Instant,
    seq: u64,
    from: SocketAddr,
    to: SocketAddr,
    bytes: Bytes,
}

/// Everything sent, as parsed at send time: (seconds since t0, from, to, message).
type Log = Vec<(f64, &'static str, &'static str, Message)>;

/// Decides, from (sender, receiver, message), which datagrams the network loses.
type Filter = Box<dyn FnMut(&str, &str, &Message) -> bool>;

struct Net {
    t0: Instant,
    now: Instant,
    nodes: Vec<Node>,
    rng: Rng,
    loss: u64,
    dup: u64,
    jitter_ms: u64,
    flights: Vec<Flight>,
    seq: u64,
    log: Log,
    dropped: usize,
    /// Drops the datagrams this returns true for (before loss is drawn).
    filter: Filter,
}

impl Net {
    fn new(nodes: Vec<Node>) -> Net {
        let t0 = Instant::now();
        Net {
            t0,
            now: t0,
            nodes,
            rng: Rng(0x9e37_79b9_7f4a_7c15),
            loss: 0,
            dup: 0,
            jitter_ms: 0,
            flights: Vec::new(),
            seq: 0,
            log: Vec::new(),
            dropped: 0,
            filter: Box::new(|_, _, _| false),
        }
    }

    fn lossy(mut self, seed: u64, loss: u64, dup: u64, jitter_ms: u64) -> Net {
        self.rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        self.loss = loss;
        self.dup = dup;
        self.jitter_ms = jitter_ms;
        self
    }

    fn node(&mut self, name: &str) -> &mut Node {
        self.nodes.iter_mut().find(|n| n.name == name).unwrap()
    }

    fn addr(&self, name: &str) -> SocketAddr {
        self.nodes.iter().find(|n| n.name == name).unwrap().addr
    }

    fn name_of(&self, addr: SocketAddr) -> &'static str {
        self.nodes
            .iter()
            .find(|n| n.addr == addr)
            .map_or("?", |n| n.name)
    }

    fn secs(&self) -> f64 {
        (self.now - self.t0).as_secs_f64()
    }

    fn pump(&mut self) {
        let mut wire = Vec::new();
        for n in &mut self.nodes {
            n.pump(self.t0, self.now, &mut wire);
        }
        for (from, to, bytes) in wire {
            let msg = Message::parse(bytes.clone()).unwrap();
            let (f, t) = (self.name_of(from), self.name_of(to));
            self.log.push((self.secs(), f, t, msg.clone()));
            if (self.filter)(f, t, &msg) || self.rng.percent(self.loss) {
                self.dropped += 1;
                continue;
            }
            let copies = if self.rng.percent(self.dup) { 2 } else { 1 };
            for _ in 0..copies {
                let delay = 5 + self.rng.below(self.jitter_ms + 1);
                self.seq += 1;
                self.flights.push(Flight {
                    at: self.now + Duration::from_millis(delay),
                    seq: self.seq,
                    from,
                    to,
                    bytes: bytes.clone(),
                });
            }
        }
    }

    /// Runs for `d` of simulated time.
    fn run(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            self.pump();
            let flights = self.flights.iter().map(|f| f.at).min();
            let mut timers: Option<Instant> = None;
            for n in &mut self.nodes {
                for at in [n.layer.poll_timeout(), n.next_timeout()]
                    .into_iter()
                    .flatten()
                {
                    timers = Some(timers.map_or(at, |t: Instant| t.min(at)));
                }
            }
            let Some(next) = [flights, timers].into_iter().flatten().min() else {
                self.now = end;
                return;
            };
            if next > end {
                self.now = end;
                return;
            }
            self.now = self.now.max(next);
            let now = self.now;
            // Deliver what is due, in arrival order (jitter reorders).
            let mut due: Vec<Flight> = Vec::new();
            let mut i = 0;
            while i < self.flights.len() {
                if self.flights[i].at <= now {
                    due.push(self.flights.swap_remove(i));
                } else {
                    i += 1;
                }
            }
            due.sort_by_key(|f| (f.at, f.seq));
            for f in due {
                if let Some(n) = self.nodes.iter_mut().find(|n| n.addr == f.to) {
                    let source = udp(f.from);
                    n.layer
                        .handle_message(Message::parse(f.bytes).unwrap(), source, now);
                }
            }
            for n in &mut self.nodes {
                n.layer.handle_timeout(now);
                let ids: Vec<u32> = n.legs.keys().copied().collect();
                for id in ids {
                    let leg = n.legs.get_mut(&id).unwrap().leg();
                    if leg.poll_timeout().is_some_and(|at| at <= now) {
                        leg.handle_timeout(now);
                        // A timer handled is re-armed later or gone, never left behind.
                        assert!(
                            leg.poll_timeout().is_none_or(|at| at > now),
                            "{}: leg {id}",
                            n.name
                        );
                    }
                }
                n.run_acts(now);
            }
        }
    }

    /// Messages sent from `from` to `to` matching `f`, with their times.
    fn sent(&self, from: &str, to: &str, f: impl Fn(&Message) -> bool) -> Vec<(f64, Message)> {
        self.log
            .iter()
            .filter(|(_, a, b, m)| *a == from && *b == to && f(m))
            .map(|(t, _, _, m)| (*t, m.clone()))
            .collect()
    }
}

fn is(method: Method) -> impl Fn(&Message) -> bool {
    move |m| m.method() == Some(&method)
}

fn status(code: u16) -> impl Fn(&Message) -> bool {
    move |m| m.status().map(|s| s.as_u16()) == Some(code)
}

const ALICE: &str = "192.0.2.1:5060";
const PBX: &str = "192.0.2.10:5060";
const BOB1: &str = "192.0.2.21:5060";
const BOB2: &str = "192.0.2.22:5060";
const BOB3: &str = "192.0.2.23:5060";

fn alice_and_pbx() -> Net {
    Net::new(vec![
        Node::new("alice", ALICE, Policy::Legs),
        Node::new("pbx", PBX, Policy::Legs),
    ])
}

fn pbx_and(bobs: &[Policy]) -> Net {
    let mut nodes = vec![Node::new("pbx", PBX, Policy::Legs)];
    for (name, (addr, policy)) in ["bob1", "bob2", "bob3"]
        .into_iter()
        .zip([BOB1, BOB2, BOB3].into_iter().zip(bobs))
    {
        nodes.push(Node::new(name, addr, *policy));
    }
    Net::new(nodes)
}

fn phone(after_ms: u64, reject: Option<u16>) -> Policy {
    Policy::Phone {
        after: Duration::from_millis(after_ms),
        reject,
        talk: None,
    }
}

fn in_seconds(t: f64, from: f64) -> f64 {
    ((t - from) * 100.0).round() / 100.0
}

/// Alice calls the PBX (legs on both sides), which answers; returns (alice's leg,
/// the PBX's leg).
fn established(net: &mut Net, extra: &[(HeaderName, &str)]) -> (u32, u32) {
    let now = net.now;
    let pbx = net.addr("pbx");
    let a = net
        .node("alice")
        .call("sip:pbx@192.0.2.10", &[pbx], extra, now);
    net.run(Duration::from_millis(100));
    let p = *net.node("pbx").legs.keys().next().unwrap();
    let now = net.now;
    net.node("pbx")
        .leg(p)
        .inc()
        .answer(Some(sdp(SDP_B)), now)
        .unwrap();
    net.run(Duration::from_millis(100));
    assert!(
        net.node("alice")
            .has_event(a, |e| matches!(e, LegEvent::Answered { .. }))
    );
    assert!(
        net.node("pbx")
            .has_event(p, |e| matches!(e, LegEvent::Confirmed { .. }))
    );
    (a, p)
}

/// The unrouted INVITEs a raw node received.
fn invites(n: &mut Node) -> Vec<(ServerTx, Message)> {
    let mut found = Vec::new();
    n.unrouted.retain(|e| match e {
        Event::Request { tx, request, .. } if request.method() == Some(&Method::Invite) => {
            found.push((*tx, request.clone()));
            false
        }
        _ => true,
    });
    found
}

/// A raw callee's answer to `invite`, with its tag, Contact and SDP.
fn answer_of(invite: &Message, code: u16, tag: &str, contact: &str) -> Message {
    let mut r = Message::response_to(invite, StatusCode::new(code).unwrap(), Some(tag));
    r.headers_mut()
        .push(HeaderName::Contact, format!("<{contact}>"));
    if code == 200 {
        r.headers_mut()
            .push(HeaderName::ContentType, "application/sdp");
        r.headers_mut()
            .set(HeaderName::ContentLength, SDP_B.len().to_string());
        r.body = sdp(SDP_B);
    }
    r
}

#[test]
fn the_answer_is_retransmitted_until_the_ack_and_retransmissions_are_reacked() {
    let mut net = alice_and_pbx();
    let mut dropped = 0;
    net.filter = Box::new(move |from, _, m| {
        let drop = from == "alice" && m.method() == Some(&Method::Ack) && dropped < 2;
        dropped += usize::from(drop);
        drop
    });
    let (now, pbx) = (net.now, net.addr("pbx"));
    let a = net
        .node("alice")
        .call("sip:pbx@192.0.2.10", &[pbx], &[], now);
    net.run(Duration::from_millis(100));
    let now = net.now;
    net.node("pbx")
        .leg(1)
        .inc()
        .answer(Some(sdp(SDP_B)), now)
        .unwrap();
    let answered_at = net.secs();
    net.run(Duration::from_secs(40));
    let oks = net.sent("pbx", "alice", |m| {
        status(200)(m) && m.cseq().unwrap().method == Method::Invite
    });
    let times: Vec<f64> = oks
        .iter()
        .map(|(t, _)| in_seconds(*t, answered_at))
        .collect();
    // T1 doubling; the third ACK gets through and stops Timer G.
    assert_eq!(times, [0.0, 0.5, 1.5]);
    let acks = net.sent("alice", "pbx", is(Method::Ack));
    assert_eq!(acks.len(), 3, "every 2xx is ACKed");
    assert!(
        acks.iter()
            .all(|(_, m)| m.to_bytes() == acks[0].1.to_bytes()),
        "the same ACK"
    );
    assert_eq!(acks[0].1.cseq().unwrap().seq, 1);
    let confirmed = net
        .node("pbx")
        .event_time(1, |e| matches!(e, LegEvent::Confirmed { .. }))
        .unwrap();
    assert_eq!(in_seconds(confirmed.as_secs_f64(), answered_at), 1.51);
    assert!(
        !net.node("pbx")
            .has_event(1, |e| matches!(e, LegEvent::NoAck))
    );
    assert!(net.node("alice").has_event(
        a,
        |e| matches!(e, LegEvent::Answered { branch: BranchId(0), sdp: Some(s) } if s == SDP_B)
    ));
}

#[test]
fn no_ack_is_reported_after_64_t1_and_the_owner_hangs_up() {
    let mut net = alice_and_pbx();
    net.filter = Box::new(|from, _, m| from == "alice" && m.method() == Some(&Method::Ack));
    let (now, pbx) = (net.now, net.addr("pbx"));
    let a = net
        .node("alice")
        .call("sip:pbx@192.0.2.10", &[pbx], &[], now);
    net.run(Duration::from_millis(100));
    let now = net.now;
    net.node("pbx")
        .leg(1)
        .inc()
        .answer(Some(sdp(SDP_B)), now)
        .unwrap();
    let answered_at = net.secs();
    net.run(Duration::from_secs(31));
    assert!(
        !net.node("pbx")
            .has_event(1, |e| matches!(e, LegEvent::NoAck))
    );
    net.run(Duration::from_secs(2));
    let at = net
        .node("pbx")
        .event_time(1, |e| matches!(e, LegEvent::NoAck))
        .unwrap();
    assert_eq!(in_seconds(at.as_secs_f64(), answered_at), 32.0, "64×T1");
    let oks = net.sent("pbx", "alice", status(200));
    let times: Vec<f64> = oks
        .iter()
        .map(|(t, _)| in_seconds(*t, answered_at))
        .collect();
    assert_eq!(
        times,
        [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5],
        "capped at T2"
    );
    let now = net.now;
    net.node("pbx").leg(1).inc().hang_up(16, now).unwrap();
    net.run(Duration::from_secs(40));
    assert!(net.node("alice").has_event(a, |e| matches!(
        e,
        LegEvent::Ended {
            by: Side::Remote,
            cause: Some(16)
        }
    )));
    for n in &net.nodes {
        assert!(n.is_clean(), "{}", n.name);
        assert_eq!(n.terminated.len(), 1, "{}", n.name);
    }
}

#[test]
fn a_cancel_asked_before_any_provisional_waits_for_the_first_one() {
    let mut net = pbx_and(&[Policy::Raw]);
    // The callee's layer would send 100 Trying after 200 ms: lose it.
    net.filter = Box::new(|from, _, m| from == "bob1" && m.status() == Some(StatusCode::TRYING));
    let (now, bob) = (net.now, net.addr("bob1"));
    let p = net
        .node("pbx")
        .call("sip:bob@example.com", &[bob], &[], now);
    net.node("pbx")
        .leg(p)
        .out()
        .cancel(BranchId(0), now)
        .unwrap();
    net.run(Duration::from_secs(2));
    assert!(
        net.sent("pbx", "bob1", is(Method::Cancel)).is_empty(),
        "§9.1: not before a provisional"
    );
    let (tx, invite) = invites(net.node("bob1")).pop().unwrap();
    let now = net.now;
    let ringing = answer_of(&invite, 180, "b1", "sip:bob@192.0.2.21");
    net.node("bob1").layer.respond(tx, ringing, now).unwrap();
    let rang_at = net.secs();
    net.run(Duration::from_secs(5));
    let cancels = net.sent("pbx", "bob1", is(Method::Cancel));
    assert_eq!(cancels.len(), 1);
    let delivered = rang_at + 0.005;
    assert!(
        (cancels[0].0 - delivered).abs() < 1e-6,
        "as soon as the 180 arrived: {cancels:?}"
    );
    let pbx = net.node("pbx");
    assert!(
        !pbx.has_event(p, |e| matches!(e, LegEvent::Ringing { .. })),
        "a cancelled branch is silent"
    );
    assert!(pbx.has_event(p, |e| matches!(e, LegEvent::Failed { status, .. } if *status == StatusCode::REQUEST_TERMINATED)));
    assert_eq!(pbx.terminated, [p]);
    net.run(Duration::from_secs(40));
    assert!(net.nodes.iter().all(Node::is_clean));
}

#[test]
fn a_cancel_asked_before_any_provisional_is_dropped_when_a_final_comes() {
    let mut net = pbx_and(&[Policy::Raw]);
    net.filter = Box::new(|from, _, m| from == "bob1" && m.status() == Some(StatusCode::TRYING));
    let (now, bob) = (net.now, net.addr("bob1"));
    let p = net
        .node("pbx")
        .call("sip:bob@example.com", &[bob], &[], now);
    net.node("pbx")
        .leg(p)
        .out()
        .cancel(BranchId(0), now)
        .unwrap();
    net.run(Duration::from_secs(1));
    let (tx, invite) = invites(net.node("bob1")).pop().unwrap();
    let now = net.now;
    net.node("bob1")
        .layer
        .respond(tx, answer_of(&invite, 486, "b1", "sip:b@h"), now)
        .unwrap();
    net.run(Duration::from_secs(40));
    assert!(net.sent("pbx", "bob1", is(Method::Cancel)).is_empty());
    assert!(net.node("pbx").has_event(
        p,
        |e| matches!(e, LegEvent::Failed { status, .. } if *status == StatusCode::BUSY_HERE)
    ));
    assert!(net.nodes.iter().all(Node::is_clean));
}

#[test]
fn when_one_branch_answers_the_others_are_cancelled_elsewhere() {
    let mut net = pbx_and(&[phone(3000, None), phone(1000, None), phone(3000, Some(486))]);
    let now = net.now;
    let targets = [net.addr("bob1"), net.addr("bob2"), net.addr("bob3")];
    let p = net
        .node("pbx")
        .call("sip:bob@example.com", &targets, &[], now);
    net.run(Duration::from_secs(2));
    let pbx = net.node("pbx");
    assert!(pbx.has_event(p, |e| matches!(
        e,
        LegEvent::Answered {
            branch: BranchId(1),
            ..
        }
    )));
    for b in [0, 2] {
        assert!(pbx.has_event(
            p,
            |e| matches!(e, LegEvent::Ringing { branch, .. } if branch.0 == b)
        ));
        let state = pbx.leg(p).out().branch_state(BranchId(b));
        assert_eq!(
            state,
            Some(BranchState::Failed(StatusCode::REQUEST_TERMINATED))
        );
    }
    for bob in ["bob1", "bob3"] {
        let cancels = net.sent("pbx", bob, is(Method::Cancel));
        assert_eq!(cancels.len(), 1, "{bob}");
        let reason = cancels[0]
            .1
            .headers()
            .get(&HeaderName::Reason)
            .unwrap()
            .to_owned();
        assert_eq!(reason, Reason::answered_elsewhere().to_string());
        let n = net.node(bob);
        assert!(
            n.has_event(1, |e| matches!(
                e,
                LegEvent::Cancelled {
                    elsewhere: true,
                    ..
                }
            )),
            "{bob}"
        );
    }
    assert!(net.sent("pbx", "bob2", is(Method::Cancel)).is_empty());
    assert_eq!(
        net.node("pbx").leg(p).out().branch_state(BranchId(1)),
        Some(BranchState::Answered)
    );
    let now = net.now;
    net.node("pbx").leg(p).out().hang_up(16, now).unwrap();
    net.run(Duration::from_secs(40));
    assert!(net.node("bob2").has_event(1, |e| matches!(
        e,
        LegEvent::Ended {
            by: Side::Remote,
            cause: Some(16)
        }
    )));
    for n in &net.nodes {
        assert!(n.is_clean(), "{}", n.name);
    }
}

#[test]
fn a_global_failure_ends_the_call_at_once() {
    let mut net = pbx_and(&[phone(5000, None), phone(1000, Some(603))]);
    let now = net.now;
    let targets = [net.addr("bob1"), net.addr("bob2")];
    let p = net
        .node("pbx")
        .call("sip:bob@example.com", &targets, &[], now);
    net.run(Duration::from_secs(3));
    let at = net
        .node("pbx")
        .event_time(
            p,
            |e| matches!(e, LegEvent::Failed { status, .. } if *status == StatusCode::DECLINE),
        )
        .unwrap();
    assert!(
        at < Duration::from_millis(1100),
        "{at:?}: not waiting for the other branch"
    );
    let cancels = net.sent("pbx", "bob1", is(Method::Cancel));
    assert_eq!(cancels.len(), 1);
    assert!(cancels[0].0 < 1.1);
    assert!(
        net.node("bob1")
            .has_event(1, |e| matches!(e, LegEvent::Cancelled { .. }))
    );
    net.run(Duration::from_secs(40));
    assert!(
        !net.node("pbx")
            .has_event(p, |e| matches!(e, LegEvent::Answered { .. }))
    );
    assert!(net.nodes.iter().all(Node::is_clean));
}

#[test]
fn the_best_response_is_chosen_among_486_404_and_503() {
    let mut net = pbx_and(&[
        phone(3000, Some(503)),
        phone(1000, Some(486)),
        phone(2000, Some(404)),
    ]);
    let now = net.now;
    let targets = [net.addr("bob1"), net.addr("bob2"), net.addr("bob3")];
    let p = net
        .node("pbx")
        .call("sip:bob@example.com", &targets, &[], now);
    net.run(Duration::from_secs(2));
    assert!(
        !net.node("pbx")
            .has_event(p, |e| matches!(e, LegEvent::Failed { .. })),
        "one branch still rings"
    );
    net.run(Duration::from_secs(2));
    let pbx = net.node("pbx");
    let failed: Vec<_> = pbx
        .events
        .iter()
        .filter_map(|(_, _, e)| match e {
            LegEvent::Failed { status, response } => {
                Some((*status, response.as_ref().and_then(|r| r.status())))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        failed,
        [(StatusCode::BUSY_HERE, Some(StatusCode::BUSY_HERE))]
    );
    net.run(Duration::from_secs(40));
    assert!(net.nodes.iter().all(Node::is_clean));
}

/// The PBX calls a raw callee that challenges with `code` (401 or 407) until the
/// INVITE carries credentials for "pbx"/"secret"; returns the INVITEs it saw.
fn challenged_call(password: &str, code: u16) -> (Net, u32, usize) {
    let (challenge_name, answer_name) = if code == 401 {
        (HeaderName::WwwAuthenticate, HeaderName::Authorization)
    } else {
        (
            HeaderName::ProxyAuthenticate,
            HeaderName::ProxyAuthorization,
        )
    };
    let mut net = pbx_and(&[Policy::Raw]);
    let mut server = DigestServer::new("trunk", b"a secret of thirty-two bytes or more!", 300);
    let (now, bob) = (net.now, net.addr("bob1"));
    let uri = Uri::parse("sip:bob@example.com").unwrap();
    let mut template = Message::request(Method::Invite, uri.clone());
    template
        .headers_mut()
        .push(HeaderName::From, "<sip:pbx@pbx>");
    template
        .headers_mut()
        .push(HeaderName::To, "<sip:bob@example.com>");
    let token = net.node("pbx").token();
    let mut leg = OutgoingLegs::new(net.node("pbx").config.clone(), &token, template);
    let creds = Credentials {
        username: "pbx".into(),
        password: password.into(),
        realm: Some("trunk".into()),
    };
    leg.add_branch(uri, udp(bob), Some(creds), now).unwrap();
    let p = net.node("pbx").add(AnyLeg::Out(leg));
    let mut invites_seen = 0;
    for _ in 0..3 {
        net.run(Duration::from_millis(500));
        for (tx, invite) in invites(net.node("bob1")) {
            invites_seen += 1;
            let now = net.now;
            let auth = invite
                .headers()
                .typed::<Auth>(&answer_name)
                .and_then(Result::ok);
            let ok = auth.is_some_and(|a| {
                server
                    .verify(&a, "INVITE", 1_700_000_001, |u| {
                        (u == "pbx").then(|| "secret".to_owned())
                    })
                    .is_ok()
            });
            let r = if ok {
                answer_of(&invite, 200, "b1", "sip:bob@192.0.2.21")
            } else {
                let mut r = answer_of(&invite, code, "b1", "sip:bob@192.0.2.21");
                let challenge = server.challenge(1_700_000_000, Algorithm::Md5, false);
                r.headers_mut()
                    .push(challenge_name.clone(), challenge.to_string());
                r
            };
            net.node("bob1").layer.respond(tx, r, now).unwrap();
        }
    }
    (net, p, invites_seen)
}

#[test]
fn a_challenge_is_answered_once_per_realm_with_the_credentials() {
    for (code, header) in [
        (StatusCode::UNAUTHORIZED, HeaderName::WwwAuthenticate),
        (
            StatusCode::PROXY_AUTHENTICATION_REQUIRED,
            HeaderName::ProxyAuthenticate,
        ),
    ] {
        let (mut net, p, seen) = challenged_call("secret", code.as_u16());
        assert_eq!(seen, 2, "{code}");
        let invites = net.sent("pbx", "bob1", is(Method::Invite));
        let last = &invites.last().unwrap().1;
        assert_eq!(last.cseq().unwrap().seq, 2, "a new CSeq");
        assert_ne!(
            invites[0].1.top_via().unwrap().branch(),
            last.top_via().unwrap().branch()
        );
        assert!(
            net.node("pbx")
                .has_event(p, |e| matches!(e, LegEvent::Answered { .. })),
            "{code}"
        );

        // A wrong password: the second challenge (same realm) is not answered again.
        let (mut net, p, seen) = challenged_call("wrong", code.as_u16());
        assert_eq!(seen, 2, "{code}: once per realm");
        let failed = net.node("pbx").events.iter().find_map(|(_, l, e)| match e {
            LegEvent::Failed { status, response } if *l == p => Some((*status, response.clone())),
            _ => None,
        });
        let (status, response) = failed.unwrap();
        assert_eq!(status, code);
        assert!(
            response.unwrap().headers().contains(&header),
            "{code}: the challenge goes up"
        );
    }
}

#[test]
fn a_422_is_retried_with_the_callees_min_se() {
    let mut net = pbx_and(&[Policy::Raw]);
    let (now, bob) = (net.now, net.addr("bob1"));
    let p = net
        .node("pbx")
        .call("sip:bob@example.com", &[bob], &[], now);
    net.run(Duration::from_millis(100));
    let (tx, invite) = invites(net.node("bob1")).pop().unwrap();
    assert_eq!(
        invite.headers().get(&HeaderName::SessionExpires),
        Some("1800")
    );
    let mut too_small = answer_of(&invite, 422, "b1", "sip:b@h");
    too_small.headers_mut().push(HeaderName::MinSe, "3600");
    let now = net.now;
    net.node("bob1").layer.respond(tx, too_small, now).unwrap();
    net.run(Duration::from_millis(100));
    let (tx, invite) = invites(net.node("bob1")).pop().unwrap();
    assert_eq!(
        invite.headers().get(&HeaderName::SessionExpires),
        Some("3600")
    );
    assert_eq!(invite.headers().get(&HeaderName::MinSe), Some("3600"));
    assert_eq!(invite.cseq().unwrap().seq, 2);
    let mut ok = answer_of(&invite, 200, "b1", "sip:bob@192.0.2.21");
    ok.headers_mut()
        .push(HeaderName::SessionExpires, "3600;refresher=uac");
    let now = net.now;
    net.node("bob1").layer.respond(tx, ok, now).unwrap();
    net.run(Duration::from_millis(100));
    let timer = net.node("pbx").leg(p).dialog().session_timer().unwrap();
    assert_eq!(timer.interval, 3600);
    assert_eq!(timer.refresher, pbxkit_sip::dialog::Refresher::Local);
    assert!(
        !net.node("pbx")
            .has_event(p, |e| matches!(e, LegEvent::BranchFailed { .. }))
    );
}

#[test]
fn a_2xx_that_loses_is_acked_then_byed_and_retransmissions_get_the_same_ack() {
    let mut net = pbx_and(&[Policy::Raw, Policy::Raw]);
    let now = net.now;
    let targets = [net.addr("bob1"), net.addr("bob2")];
    let p = net
        .node("pbx")
        .call("sip:bob@example.com", &targets, &[], now);
    net.run(Duration::from_millis(100));
    let (tx1, inv1) = invites(net.node("bob1")).pop().unwrap();
    let (tx2, inv2) = invites(net.node("bob2")).pop().unwrap();
    let now = net.now;
    // Both answer at the same instant: bob2's 2xx crosses the CANCEL.
    let ok1 = answer_of(&inv1, 200, "b1", "sip:bob@192.0.2.21");
    net.node("bob1")
        .layer
        .respond(tx1, ok1.clone(), now)
        .unwrap();
    net.node("bob2")
        .layer
        .respond(tx2, answer_of(&inv2, 180, "b2", "sip:bob@192.0.2.22"), now)
        .unwrap();
    net.node("bob2")
        .layer
        .respond(tx2, answer_of(&inv2, 200, "b2", "sip:bob@192.0.2.22"), now)
        .unwrap();
    net.run(Duration::from_secs(1));
    assert!(net.node("pbx").has_event(p, |e| matches!(
        e,
        LegEvent::Answered {
            branch: BranchId(0),
            ..
        }
    )));
    let to_bob2: Vec<(f64, Message)> = net.sent("pbx", "bob2", |m| m.method().is_some());
    let methods: Vec<&str> = to_bob2
        .iter()
        .map(|(_, m)| m.method().unwrap().as_str())
        .collect();
    let ack = methods.iter().position(|m| *m == "ACK").unwrap();
    let bye = methods.iter().position(|m| *m == "BYE").unwrap();
    assert!(ack < bye, "ACK then BYE: {methods:?}");
    assert_eq!(to_bob2[bye].1.to().unwrap().tag(), Some("b2"));
    // Bob2's 2xx again (its ACK was not seen yet, say): the same ACK, no second BYE.
    let ok2_again = net
        .sent("bob2", "pbx", status(200))
        .first()
        .unwrap()
        .1
        .clone();
    let (now, bob2) = (net.now, net.addr("bob2"));
    net.node("pbx")
        .layer
        .handle_message(ok2_again, udp(bob2), now);
    // A forking proxy's second 2xx on bob1's branch, another dialog: ACK and BYE too.
    let mut forked = ok1.clone();
    forked
        .headers_mut()
        .set(HeaderName::To, "<sip:bob@example.com>;tag=fork2");
    let now = net.now;
    let bob1 = net.addr("bob1");
    net.node("pbx").layer.handle_message(
        Message::parse(forked.to_bytes()).unwrap(),
        udp(bob1),
        now,
    );
    // And bob1's own 2xx retransmitted.
    net.node("pbx")
        .layer
        .handle_message(Message::parse(ok1.to_bytes()).unwrap(), udp(bob1), now);
    net.run(Duration::from_secs(1));
    let acks2 = net.sent("pbx", "bob2", is(Method::Ack));
    assert_eq!(acks2.len(), 2);
    assert_eq!(acks2[0].1.to_bytes(), acks2[1].1.to_bytes());
    let mut byes: Vec<String> = net
        .sent("pbx", "bob2", is(Method::Bye))
        .iter()
        .map(|(_, m)| m.top_via().unwrap().branch().unwrap().to_owned())
        .collect();
    byes.dedup();
    assert_eq!(byes.len(), 1, "one BYE (retransmitted by its transaction)");
    let to_bob1 = net.sent("pbx", "bob1", |m| m.method().is_some());
    let winner_acks: Vec<&Message> = to_bob1
        .iter()
        .map(|(_, m)| m)
        .filter(|m| m.method() == Some(&Method::Ack) && m.to().unwrap().tag() == Some("b1"))
        .collect();
    assert_eq!(winner_acks.len(), 2, "the winner's 2xx re-ACKed");
    assert_eq!(
        winner_acks[0].to_bytes(),
        winner_acks[1].to_bytes(),
        "same CSeq, same branch"
    );
    let mut fork_byes: Vec<&str> = to_bob1
        .iter()
        .filter(|(_, m)| m.method() == Some(&Method::Bye) && m.to().unwrap().tag() == Some("fork2"))
        .map(|(_, m)| m.top_via().unwrap().branch().unwrap())
        .collect();
    fork_byes.dedup();
    assert_eq!(fork_byes.len(), 1);
    let fork_acks = to_bob1
        .iter()
        .filter(|(_, m)| m.method() == Some(&Method::Ack) && m.to().unwrap().tag() == Some("fork2"))
        .count();
    assert_eq!(fork_acks, 1);
    assert!(
        net.node("pbx").leg(p).dialog().is_open(),
        "the winner's dialog is untouched"
    );
    // Long after (Timer M is over, the layer calls it a stray): still the same ACK.
    net.run(Duration::from_secs(40));
    let now = net.now;
    net.node("pbx")
        .layer
        .handle_message(Message::parse(ok1.to_bytes()).unwrap(), udp(bob1), now);
    let stray = net.node("pbx").layer.poll_event();
    assert!(
        matches!(stray, Some(Event::StrayResponse { .. })),
        "{stray:?}"
    );
    let now = net.now;
    let leg = net.node("pbx").leg(p).leg();
    leg.handle_event(stray.unwrap(), now);
    net.run(Duration::from_millis(10));
    let winner_acks: Vec<Message> = net
        .sent("pbx", "bob1", is(Method::Ack))
        .into_iter()
        .map(|(_, m)| m)
        .filter(|m| m.to().unwrap().tag() == Some("b1"))
        .collect();
    assert_eq!(winner_acks.len(), 3);
    assert_eq!(winner_acks[2].to_bytes(), winner_acks[0].to_bytes());
}

#[test]
fn reinvites_both_ways_and_glare() {
    let mut net = alice_and_pbx();
    let (a, p) = established(&mut net, &[]);
    // Alice puts the call on hold.
    let now = net.now;
    net.node("alice")
        .leg(a)
        .dialog()
        .reinvite(sdp(SDP_HOLD), now)
        .unwrap();
    assert_eq!(
        net.node("alice").leg(a).dialog().reinvite(sdp(SDP_A), now),
        Err(LegError::OfferPending)
    );
    net.run(Duration::from_millis(100));
    assert!(net.node("pbx").has_event(
        p,
        |e| matches!(e, LegEvent::Offer { method: Method::Invite, sdp: Some(s) } if s == SDP_HOLD)
    ));
    let now = net.now;
    net.node("pbx")
        .leg(p)
        .dialog()
        .accept_offer(Some(sdp(SDP_B)), now)
        .unwrap();
    net.run(Duration::from_millis(100));
    assert!(net.node("alice").has_event(
        a,
        |e| matches!(e, LegEvent::OfferAnswered { sdp: Some(s) } if s == SDP_B)
    ));
    assert_eq!(
        net.sent("alice", "pbx", is(Method::Ack)).len(),
        2,
        "the INVITE's and the re-INVITE's"
    );
    assert_eq!(
        net.node("pbx")
            .events
            .iter()
            .filter(|(_, l, e)| *l == p && matches!(e, LegEvent::Confirmed { .. }))
            .count(),
        2
    );
    // The PBX updates the other way.
    let now = net.now;
    net.node("pbx")
        .leg(p)
        .dialog()
        .update(sdp(SDP_B.replace("7 7", "7 8").as_str()), now)
        .unwrap();
    net.run(Duration::from_millis(100));
    assert!(net.node("alice").has_event(a, |e| matches!(
        e,
        LegEvent::Offer {
            method: Method::Update,
            ..
        }
    )));
    let now = net.now;
    net.node("alice")
        .leg(a)
        .dialog()
        .accept_offer(Some(sdp(SDP_A)), now)
        .unwrap();
    net.run(Duration::from_millis(100));
    assert!(
        net.node("pbx")
            .has_event(p, |e| matches!(e, LegEvent::OfferAnswered { .. }))
    );
    // Glare: both re-INVITE at once, both get 491.
    let now = net.now;
    net.node("alice")
        .leg(a)
        .dialog()
        .reinvite(sdp(SDP_HOLD), now)
        .unwrap();
    net.node("pbx")
        .leg(p)
        .dialog()
        .reinvite(sdp(SDP_B), now)
        .unwrap();
    net.run(Duration::from_secs(1));
    for (node, leg) in [("alice", a), ("pbx", p)] {
        assert!(
            net.node(node).has_event(leg, |e| matches!(e, LegEvent::OfferRejected { status } if *status == StatusCode::REQUEST_PENDING)),
            "{node}"
        );
    }
    assert_eq!(net.sent("pbx", "alice", status(491)).len(), 1);
    assert_eq!(net.sent("alice", "pbx", status(491)).len(), 1);
    // After glare, a retry goes through.
    let now = net.now;
    net.node("alice")
        .leg(a)
        .dialog()
        .reinvite(sdp(SDP_HOLD), now)
        .unwrap();
    net.run(Duration::from_millis(100));
    assert_eq!(
        net.node("pbx")
            .events
            .iter()
            .filter(|(_, l, e)| *l == p && matches!(e, LegEvent::Offer { .. }))
            .count(),
        2
    );
}

#[test]
fn bye_in_both_directions() {
    let mut net = alice_and_pbx();
    let (a, p) = established(&mut net, &[]);
    let now = net.now;
    net.node("alice").leg(a).dialog().hang_up(16, now).unwrap();
    assert_eq!(
        net.node("alice").leg(a).dialog().hang_up(16, now),
        Err(LegError::Ending)
    );
    net.run(Duration::from_secs(1));
    assert!(net.node("pbx").has_event(p, |e| matches!(
        e,
        LegEvent::Ended {
            by: Side::Remote,
            cause: Some(16)
        }
    )));
    assert!(
        net.node("alice")
            .has_event(a, |e| matches!(e, LegEvent::Terminated))
    );
    assert!(
        !net.node("alice")
            .has_event(a, |e| matches!(e, LegEvent::Ended { .. })),
        "we hung up"
    );
    let bye = net.sent("alice", "pbx", is(Method::Bye)).pop().unwrap().1;
    assert_eq!(
        bye.headers().get(&HeaderName::Reason),
        Some("Q.850;cause=16;text=\"Normal call clearing\"")
    );

    let mut net = alice_and_pbx();
    let (a, p) = established(&mut net, &[]);
    let now = net.now;
    net.node("pbx").leg(p).inc().hang_up(17, now).unwrap();
    net.run(Duration::from_secs(1));
    assert!(net.node("alice").has_event(a, |e| matches!(
        e,
        LegEvent::Ended {
            by: Side::Remote,
            cause: Some(17)
        }
    )));
    net.run(Duration::from_secs(40));
    for n in &net.nodes {
        assert!(n.is_clean(), "{}", n.name);
    }
}

#[test]
fn session_timers_refresh_at_half_the_interval_and_expire() {
    let mut net = alice_and_pbx();
    let (a, p) = established(
        &mut net,
        &[(HeaderName::SessionExpires, "90;refresher=uas")],
    );
    let start = net.secs();
    let t = net.node("pbx").leg(p).dialog().session_timer().unwrap();
    assert_eq!(
        (t.interval, t.refresher),
        (90, pbxkit_sip::dialog::Refresher::Local)
    );
    let t = net.node("alice").leg(a).dialog().session_timer().unwrap();
    assert_eq!(
        (t.interval, t.refresher),
        (90, pbxkit_sip::dialog::Refresher::Remote)
    );
    net.run(Duration::from_secs(100));
    let refreshes: Vec<f64> = net
        .sent("pbx", "alice", is(Method::Invite))
        .iter()
        .map(|(t, _)| in_seconds(*t, start).round())
        .collect();
    assert_eq!(refreshes, [45.0, 90.0]);
    // A refresh that changes nothing is answered by the leg: no offer for the owner.
    assert!(!net.node("alice").has_event(a, |e| matches!(
        e,
        LegEvent::Offer { .. } | LegEvent::SessionExpired
    )));
    assert!(!net.node("pbx").has_event(p, |e| matches!(
        e,
        LegEvent::OfferAnswered { .. } | LegEvent::SessionExpired
    )));
    // The PBX's refreshes stop getting through: Alice's side expires 60 s (90 − 30)
    // after the last one, the PBX's when its re-INVITE times out (Timer B).
    net.filter = Box::new(|from, _, m| from == "pbx" && m.method() == Some(&Method::Invite));
    let last = start + 90.0;
    net.run(Duration::from_secs(100));
    let alice_expired = net
        .node("alice")
        .event_time(a, |e| matches!(e, LegEvent::SessionExpired))
        .unwrap();
    assert_eq!(in_seconds(alice_expired.as_secs_f64(), last).round(), 60.0);
    let pbx_expired = net
        .node("pbx")
        .event_time(p, |e| matches!(e, LegEvent::SessionExpired))
        .unwrap();
    assert_eq!(
        in_seconds(pbx_expired.as_secs_f64(), last).round(),
        45.0 + 32.0
    );
}

#[test]
fn refer_is_accepted_and_progress_notified() {
    let mut net = alice_and_pbx();
    let (a, p) = established(&mut net, &[]);
    let mut d = net.node("alice").leg(a).dialog().dialog().clone();
    let mut refer = d.request(
        Method::Refer,
        "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKrefer1;rport",
        None,
    );
    refer.headers_mut().push(
        HeaderName::ReferTo,
        "<sip:carol@example.com?Replaces=abc%40h%3Bto-tag%3D1%3Bfrom-tag%3D2>",
    );
    refer
        .headers_mut()
        .push(HeaderName::ReferredBy, "<sip:alice@192.0.2.1>");
    let (now, pbx) = (net.now, net.addr("pbx"));
    net.node("alice")
        .layer
        .send_request(refer, udp(pbx), now)
        .unwrap();
    net.run(Duration::from_millis(100));
    let refer = net.node("pbx").events.iter().find_map(|(_, _, e)| match e {
        LegEvent::Refer(r) => Some(r.clone()),
        _ => None,
    });
    let refer = refer.unwrap();
    assert_eq!(refer.refer_to.to_string(), "sip:carol@example.com");
    let replaces = refer.replaces.unwrap();
    assert_eq!(
        (
            replaces.call_id.as_str(),
            replaces.to_tag.as_str(),
            replaces.from_tag.as_str()
        ),
        ("abc@h", "1", "2")
    );
    assert_eq!(refer.referred_by.as_deref(), Some("<sip:alice@192.0.2.1>"));
    let now = net.now;
    let dialog = net.node("pbx").leg(p).dialog();
    dialog.accept_refer(now).unwrap();
    assert_eq!(dialog.accept_refer(now), Err(LegError::NothingPending));
    dialog.notify_refer(StatusCode::TRYING, false, now).unwrap();
    net.run(Duration::from_millis(100));
    let now = net.now;
    net.node("pbx")
        .leg(p)
        .dialog()
        .notify_refer(StatusCode::OK, true, now)
        .unwrap();
    net.run(Duration::from_millis(100));
    assert_eq!(net.sent("pbx", "alice", status(202)).len(), 1);
    let notifies = net.sent("pbx", "alice", is(Method::Notify));
    let states: Vec<&str> = notifies
        .iter()
        .map(|(_, m)| m.headers().get(&HeaderName::SubscriptionState).unwrap())
        .collect();
    assert_eq!(
        states,
        ["active;expires=60", "terminated;reason=noresource"]
    );
    assert!(
        notifies
            .iter()
            .all(|(_, m)| m.headers().get(&HeaderName::Event) == Some("refer"))
    );
    let bodies: Vec<Bytes> = net
        .node("alice")
        .events
        .iter()
        .filter_map(|(_, _, e)| match e {
            LegEvent::Notify {
                event: Some(ev),
                body,
            } if ev == "refer" => Some(body.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        bodies,
        [sdp("SIP/2.0 100 Trying\r\n"), sdp("SIP/2.0 200 OK\r\n")]
    );
    assert_eq!(
        net.sent("alice", "pbx", status(200))
            .iter()
            .filter(|(_, m)| m.cseq().unwrap().method == Method::Notify)
            .count(),
        2
    );
}

#[test]
fn the_caller_cancels_before_the_answer() {
    let mut net = alice_and_pbx();
    let (now, pbx) = (net.now, net.addr("pbx"));
    let a = net
        .node("alice")
        .call("sip:pbx@192.0.2.10", &[pbx], &[], now);
    net.run(Duration::from_millis(100));
    let now = net.now;
    net.node("pbx").leg(1).inc().ring(None, now).unwrap();
    net.run(Duration::from_millis(100));
    assert!(net.node("alice").has_event(
        a,
        |e| matches!(e, LegEvent::Ringing { status, .. } if *status == StatusCode::RINGING)
    ));
    let now = net.now;
    net.node("alice").leg(a).out().cancel_all(now);
    net.run(Duration::from_secs(1));
    assert!(net.node("pbx").has_event(1, |e| matches!(
        e,
        LegEvent::Cancelled {
            elsewhere: false,
            cause: None
        }
    )));
    assert!(net.node("alice").has_event(a, |e| matches!(e, LegEvent::Failed { status, .. } if *status == StatusCode::REQUEST_TERMINATED)));
    let rings = net.sent("pbx", "alice", status(180));
    assert_eq!(
        rings[0].1.to().unwrap().tag(),
        Some("pbx1x"),
        "our To tag is the token"
    );
    net.run(Duration::from_secs(40));
    assert!(net.nodes.iter().all(Node::is_clean));
}

#[test]
fn a_branch_that_never_answers_fails_408_after_timer_b() {
    let mut net = pbx_and(&[Policy::Raw]);
    net.filter = Box::new(|_, to, _| to == "bob1");
    let (now, bob) = (net.now, net.addr("bob1"));
    let p = net
        .node("pbx")
        .call("sip:bob@example.com", &[bob], &[], now);
    net.run(Duration::from_secs(31));
    assert!(
        !net.node("pbx")
            .has_event(p, |e| matches!(e, LegEvent::BranchFailed { .. }))
    );
    net.run(Duration::from_secs(2));
    let at = net.node("pbx").event_time(p, |e| matches!(e, LegEvent::BranchFailed { status, .. } if *status == StatusCode::REQUEST_TIMEOUT)).unwrap();
    assert_eq!(at, Duration::from_secs(32));
    assert!(net.node("pbx").has_event(p, |e| matches!(e, LegEvent::Failed { status, response: None } if *status == StatusCode::REQUEST_TIMEOUT)));
    assert!(net.node("pbx").is_clean());
}

#[test]
fn an_incoming_leg_refuses_a_short_session_interval_and_the_caller_retries() {
    let mut net = alice_and_pbx();
    let (now, pbx) = (net.now, net.addr("pbx"));
    let a = net.node("alice").call(
        "sip:pbx@192.0.2.10",
        &[pbx],
        &[(HeaderName::SessionExpires, "30")],
        now,
    );
    net.run(Duration::from_millis(200));
    let n = net.node("pbx");
    assert!(n.has_event(1, |e| matches!(e, LegEvent::Failed { status, .. } if *status == StatusCode::SESSION_INTERVAL_TOO_SMALL)));
    assert_eq!(n.terminated, [1]);
    let ok = n.legs.get_mut(&2).unwrap().inc();
    assert_eq!(
        ok.session_timer().unwrap().interval,
        90,
        "the caller asked again with our Min-SE"
    );
    let now = net.now;
    net.node("pbx")
        .leg(2)
        .inc()
        .answer(Some(sdp(SDP_B)), now)
        .unwrap();
    net.run(Duration::from_millis(100));
    assert!(
        net.node("alice")
            .has_event(a, |e| matches!(e, LegEvent::Answered { .. }))
    );
    assert_eq!(
        net.sent("pbx", "alice", status(422))[0]
            .1
            .headers()
            .get(&HeaderName::MinSe),
        Some("90")
    );
}

/// Many calls over a lossy, duplicating, reordering network through a bridging PBX
/// with random callee behaviour: every call ends, every leg terminates, every table
/// empties.
#[test]
fn lossy_calls_all_end_and_every_table_empties() {
    let mut answered = 0;
    let mut dropped = 0;
    let mut refreshes = 0;
    let mut late_answered = 0;
    for seed in 1..=150u64 {
        let mut rng = Rng(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1);
        let bob = |rng: &mut Rng| {
            let reject = match rng.below(8) {
                0 | 1 => Some(486),
                2 => Some(603),
                _ => None,
            };
            Policy::Phone {
                after: Duration::from_millis(200 + rng.below(8000)),
                reject,
                talk: Some(Duration::from_millis(500 + rng.below(150_000))),
            }
        };
        let alice = Policy::Phone {
            after: Duration::ZERO,
            reject: None,
            talk: Some(Duration::from_millis(500 + rng.below(150_000))),
        };
        let mut pbx = Node::new("pbx", PBX, Policy::Bridge);
        pbx.callees = vec![BOB1.parse().unwrap(), BOB2.parse().unwrap()];
        let nodes = vec![
            Node::new("alice", ALICE, alice),
            pbx,
            Node::new("bob1", BOB1, bob(&mut rng)),
            Node::new("bob2", BOB2, bob(&mut rng)),
        ];
        let late_offer = rng.below(3) == 0;
        let mut net = Net::new(nodes).lossy(seed, 5 + rng.below(26), 5, 40);
        net.node("alice").late_offer = late_offer;
        // Short session timers, so that long calls refresh over the lossy network.
        for n in &mut net.nodes {
            n.config.session_expires = 90;
        }
        let (now, pbx_addr) = (net.now, net.addr("pbx"));
        let a = net
            .node("alice")
            .call("sip:pbx@192.0.2.10", &[pbx_addr], &[], now);
        // Alice gives up on her own at some point (a CANCEL, or a BYE once talking).
        let give_up = now + Duration::from_millis(1000 + rng.below(200_000));
        net.node("alice").acts.push((give_up, Act::HangUp(a)));
        net.run(Duration::from_secs(500));
        let was_answered = net
            .node("alice")
            .has_event(a, |e| matches!(e, LegEvent::Answered { .. }));
        answered += usize::from(was_answered);
        if late_offer && was_answered {
            // The answer went from Alice's ACK through the PBX to Bob's.
            let acked = |from, to| {
                !net.sent(from, to, |m| {
                    m.method() == Some(&Method::Ack) && !m.body.is_empty()
                })
                .is_empty()
            };
            assert!(
                acked("alice", "pbx"),
                "seed {seed}: late offer answered in the ACK"
            );
            late_answered += usize::from(acked("pbx", "bob1") || acked("pbx", "bob2"));
        }
        for n in &net.nodes {
            assert!(
                n.legs.is_empty(),
                "seed {seed}: {} still has legs {:?}",
                n.name,
                n.legs
            );
            assert!(n.routes.is_empty(), "seed {seed}: {} routes", n.name);
            assert_eq!(
                n.created as usize,
                n.terminated.len(),
                "seed {seed}: {}",
                n.name
            );
        }
        for n in &mut net.nodes {
            assert!(
                n.layer.is_empty(),
                "seed {seed}: {} transactions {:?}",
                n.name,
                n.layer.len()
            );
        }
        let alice = net.node("alice");
        let outcomes = alice
            .events
            .iter()
            .filter(|(_, _, e)| matches!(e, LegEvent::Answered { .. } | LegEvent::Failed { .. }))
            .count();
        assert_eq!(outcomes, 1, "seed {seed}: one outcome per call");
        dropped += net.dropped;
        refreshes += net
            .log
            .iter()
            .filter(|(_, _, _, m)| {
                m.method() == Some(&Method::Invite) && m.to().unwrap().tag().is_some()
            })
            .count();
    }
    assert!(refreshes > 60, "sessions were refreshed: {refreshes}");
    assert!(
        late_answered > 10,
        "late offers answered end to end: {late_answered}"
    );
    assert!(answered >= 60, "calls were answered: {answered}/150");
    assert!(dropped > 300, "the network lost datagrams: {dropped}");
}

#[test]
fn a_cancel_that_crosses_the_answer_ends_the_leg() {
    let mut net = alice_and_pbx();
    // The CANCEL is handed to the PBX's layer by hand, to race the answer.
    net.filter = Box::new(|from, _, m| from == "alice" && m.method() == Some(&Method::Cancel));
    let (now, pbx) = (net.now, net.addr("pbx"));
    let a = net
        .node("alice")
        .call("sip:pbx@192.0.2.10", &[pbx], &[], now);
    net.run(Duration::from_millis(100));
    let now = net.now;
    net.node("pbx").leg(1).inc().ring(None, now).unwrap();
    net.run(Duration::from_millis(100));
    let now = net.now;
    net.node("alice").leg(a).out().cancel_all(now);
    net.run(Duration::from_millis(1));
    let cancel = net.sent("alice", "pbx", is(Method::Cancel)).remove(0).1;
    let (now, alice) = (net.now, net.addr("alice"));
    net.node("pbx")
        .layer
        .handle_message(cancel, udp(alice), now);
    // The owner answers before it has seen the Cancelled event.
    net.node("pbx")
        .leg(1)
        .inc()
        .answer(Some(sdp(SDP_B)), now)
        .unwrap();
    net.run(Duration::from_secs(60));
    let n = net.node("pbx");
    assert_eq!(n.send_errors, 1, "the layer refused the 2xx after its 487");
    assert!(n.has_event(1, |e| matches!(e, LegEvent::Cancelled { .. })));
    assert!(net.node("alice").has_event(a, |e| matches!(e, LegEvent::Failed { status, .. } if *status == StatusCode::REQUEST_TERMINATED)));
    for n in &net.nodes {
        assert!(n.is_clean(), "{}", n.name);
    }
}

#[test]
fn a_bye_that_gets_no_answer_still_ends_the_leg() {
    let mut net = alice_and_pbx();
    let (a, p) = established(&mut net, &[]);
    // Alice vanishes.
    net.filter = Box::new(|_, to, _| to == "alice");
    let now = net.now;
    net.node("pbx").leg(p).inc().hang_up(16, now).unwrap();
    let hung_up_at = net.secs();
    net.run(Duration::from_secs(31));
    assert!(
        !net.node("pbx")
            .has_event(p, |e| matches!(e, LegEvent::Terminated))
    );
    net.run(Duration::from_secs(2));
    let at = net
        .node("pbx")
        .event_time(p, |e| matches!(e, LegEvent::Terminated))
        .unwrap();
    assert_eq!(in_seconds(at.as_secs_f64(), hung_up_at), 32.0, "Timer F");
    assert!(net.node("pbx").is_clean());
    let _ = a;
}

#[test]
fn a_cancel_that_gets_no_final_response_gives_up_after_64_t1() {
    let mut net = pbx_and(&[Policy::Raw]);
    let (now, bob) = (net.now, net.addr("bob1"));
    let p = net
        .node("pbx")
        .call("sip:bob@example.com", &[bob], &[], now);
    net.run(Duration::from_millis(100));
    let (tx, invite) = invites(net.node("bob1")).pop().unwrap();
    let now = net.now;
    net.node("bob1")
        .layer
        .respond(tx, answer_of(&invite, 180, "b1", "sip:b@h"), now)
        .unwrap();
    net.run(Duration::from_millis(100));
    // From now on the callee is gone: no 200 for the CANCEL, no 487.
    net.filter = Box::new(|from, _, _| from == "bob1");
    let now = net.now;
    net.node("pbx").leg(p).out().cancel_all(now);
    let cancelled_at = net.secs();
    net.run(Duration::from_secs(31));
    assert!(
        !net.node("pbx")
            .has_event(p, |e| matches!(e, LegEvent::Failed { .. }))
    );
    net.run(Duration::from_secs(2));
    let at = net
        .node("pbx")
        .event_time(p, |e| matches!(e, LegEvent::Failed { .. }))
        .unwrap();
    assert_eq!(
        in_seconds(at.as_secs_f64(), cancelled_at),
        32.0,
        "RFC 3261 §9.1"
    );
    assert!(
        net.node("pbx")
            .has_event(p, |e| matches!(e, LegEvent::Terminated))
    );
    assert!(net.node("pbx").legs.is_empty());
}

#[test]
fn a_retransmitted_reinvite_2xx_is_reacked_on_both_leg_kinds() {
    for (offerer, answerer) in [("alice", "pbx"), ("pbx", "alice")] {
        let mut net = alice_and_pbx();
        let (a, p) = established(&mut net, &[]);
        let leg = |name: &str| if name == "alice" { a } else { p };
        // The first ACK of the re-INVITE's 2xx is lost.
        let mut lost = false;
        let from = offerer;
        net.filter = Box::new(move |f, _, m| {
            let drop = !lost && f == from && m.method() == Some(&Method::Ack);
            lost |= drop;
            drop
        });
        let now = net.now;
        net.node(offerer)
            .leg(leg(offerer))
            .dialog()
            .reinvite(sdp(SDP_HOLD), now)
            .unwrap();
        net.run(Duration::from_millis(100));
        let now = net.now;
        net.node(answerer)
            .leg(leg(answerer))
            .dialog()
            .accept_offer(Some(sdp(SDP_B)), now)
            .unwrap();
        net.run(Duration::from_secs(5));
        let reinvite = net
            .sent(offerer, answerer, is(Method::Invite))
            .pop()
            .unwrap()
            .1;
        let seq = reinvite.cseq().unwrap().seq;
        let acks: Vec<Message> = net
            .sent(offerer, answerer, is(Method::Ack))
            .into_iter()
            .map(|(_, m)| m)
            .filter(|m| m.cseq().unwrap().seq == seq)
            .collect();
        assert_eq!(acks.len(), 2, "{offerer}: re-ACKed");
        assert_eq!(
            acks[0].to_bytes(),
            acks[1].to_bytes(),
            "{offerer}: the same ACK"
        );
        assert!(
            net.node(answerer)
                .has_event(leg(answerer), |e| matches!(e, LegEvent::Confirmed { .. }))
        );
        let oks = net.sent(answerer, offerer, status(200));
        let oks = oks
            .iter()
            .filter(|(_, m)| *m.cseq().unwrap() == *reinvite.cseq().unwrap());
        assert_eq!(oks.count(), 2, "{answerer} retransmitted its 2xx once");
    }
}

#[test]
fn a_hang_up_before_the_ack_sends_its_bye_after_the_ack() {
    let mut net = alice_and_pbx();
    let mut lost = false;
    net.filter = Box::new(move |from, _, m| {
        let drop = !lost && from == "alice" && m.method() == Some(&Method::Ack);
        lost |= drop;
        drop
    });
    let (now, pbx) = (net.now, net.addr("pbx"));
    let a = net
        .node("alice")
        .call("sip:pbx@192.0.2.10", &[pbx], &[], now);
    net.run(Duration::from_millis(100));
    let now = net.now;
    let leg = net.node("pbx").leg(1).inc();
    leg.answer(Some(sdp(SDP_B)), now).unwrap();
    leg.hang_up(16, now).unwrap();
    let answered_at = net.secs();
    net.run(Duration::from_secs(5));
    let bye = net.sent("pbx", "alice", is(Method::Bye));
    // RFC 3261 §15: the first ACK was lost; the BYE waits for the second.
    assert_eq!(in_seconds(bye[0].0, answered_at), 0.51, "{bye:?}");
    assert!(net.node("alice").has_event(a, |e| matches!(
        e,
        LegEvent::Ended {
            by: Side::Remote,
            ..
        }
    )));
    net.run(Duration::from_secs(40));
    assert!(net.nodes.iter().all(Node::is_clean));
}

#[test]
fn an_invite_requiring_an_unknown_extension_gets_420() {
    let mut net = alice_and_pbx();
    let (now, pbx) = (net.now, net.addr("pbx"));
    let a = net.node("alice").call(
        "sip:pbx@192.0.2.10",
        &[pbx],
        &[(HeaderName::Require, "100rel")],
        now,
    );
    net.run(Duration::from_millis(100));
    let r = net.sent("pbx", "alice", status(420)).pop().unwrap().1;
    assert_eq!(r.headers().get(&HeaderName::Unsupported), Some("100rel"));
    assert!(net.node("alice").has_event(
        a,
        |e| matches!(e, LegEvent::Failed { status, .. } if *status == StatusCode::BAD_EXTENSION)
    ));
    assert_eq!(net.node("pbx").terminated, [1]);
}

#[test]
fn provisional_responses_become_trying_ringing_and_early_media_per_dialog() {
    let mut net = pbx_and(&[Policy::Raw]);
    let (now, bob) = (net.now, net.addr("bob1"));
    let p = net
        .node("pbx")
        .call("sip:bob@example.com", &[bob], &[], now);
    // The callee's layer sends 100 Trying by itself after 200 ms.
    net.run(Duration::from_millis(300));
    let (tx, invite) = invites(net.node("bob1")).pop().unwrap();
    let now = net.now;
    let bob1 = net.node("bob1");
    bob1.layer
        .respond(tx, answer_of(&invite, 180, "e1", "sip:b@h"), now)
        .unwrap();
    // A forking proxy's second early dialog, with early media.
    let mut early = answer_of(&invite, 183, "e2", "sip:b@h");
    early
        .headers_mut()
        .push(HeaderName::ContentType, "application/sdp");
    early.body = sdp(SDP_B);
    bob1.layer.respond(tx, early, now).unwrap();
    net.run(Duration::from_millis(100));
    let kinds: Vec<String> = net
        .node("pbx")
        .events
        .iter()
        .filter(|(_, l, _)| *l == p)
        .map(|(_, _, e)| match e {
            LegEvent::Trying { branch } => format!("trying {}", branch.0),
            LegEvent::Ringing { branch, status } => format!("ringing {} {status}", branch.0),
            LegEvent::EarlyMedia {
                branch,
                to_tag,
                sdp,
            } => {
                format!("early {} {to_tag} {}", branch.0, sdp.len())
            }
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "trying 0",
            "ringing 0 180",
            &format!("early 0 e2 {}", SDP_B.len())
        ]
    );
    assert_eq!(
        net.node("pbx").leg(p).out().branch_state(BranchId(0)),
        Some(BranchState::Proceeding)
    );
}

#[test]
fn info_options_and_bad_requests_in_the_dialog() {
    let mut net = alice_and_pbx();
    let (a, p) = established(&mut net, &[]);
    let mut d = net.node("alice").leg(a).dialog().dialog().clone();
    let via = |b: &str| format!("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK{b};rport");
    let mut info = d.request(Method::Info, &via("info"), None);
    info.headers_mut()
        .push(HeaderName::ContentType, "application/dtmf-relay");
    info.headers_mut().set(HeaderName::ContentLength, "24");
    info.body = sdp("Signal=5\r\nDuration=160\r\n");
    let options = d.request(Method::Options, &via("options"), None);
    let message = d.request(Method::Message, &via("message"), None);
    let mut stale = d.request(Method::Info, &via("stale"), None);
    stale.headers_mut().set(HeaderName::CSeq, "1 INFO");
    let mut stranger = d.request(Method::Info, &via("stranger"), None);
    stranger
        .headers_mut()
        .set(HeaderName::From, "<sip:alice@192.0.2.1>;tag=someone-else");
    let (now, pbx) = (net.now, net.addr("pbx"));
    for r in [info, options, message, stale, stranger] {
        let r = Message::parse(r.to_bytes()).unwrap();
        net.node("alice")
            .layer
            .send_request(r, udp(pbx), now)
            .unwrap();
    }
    net.run(Duration::from_millis(100));
    let answers: Vec<(String, u16)> = net
        .sent("pbx", "alice", |m| m.status().is_some())
        .iter()
        .map(|(_, m)| {
            let via = m
                .top_via()
                .unwrap()
                .branch()
                .unwrap()
                .trim_start_matches("z9hG4bK")
                .to_owned();
            (via, m.status().unwrap().as_u16())
        })
        .filter(|(b, _)| ["info", "options", "message", "stale", "stranger"].contains(&b.as_str()))
        .collect();
    assert_eq!(
        answers,
        [
            ("info".to_owned(), 200),
            ("options".to_owned(), 200),
            ("message".to_owned(), 405),
            ("stale".to_owned(), 500),
            ("stranger".to_owned(), 481),
        ]
    );
    let options = net
        .sent("pbx", "alice", status(200))
        .into_iter()
        .find(|(_, m)| m.cseq().unwrap().method == Method::Options)
        .unwrap()
        .1;
    assert!(
        options
            .headers()
            .get(&HeaderName::Allow)
            .unwrap()
            .contains("REFER")
    );
    assert!(net.node("pbx").has_event(p, |e| matches!(e, LegEvent::Info { content_type: Some(ct), body } if ct == "application/dtmf-relay" && body.starts_with(b"Signal=5"))));
    assert!(
        net.node("pbx").leg(p).dialog().is_open(),
        "none of it ends the call"
    );
}

#[test]
fn an_invite_that_cannot_make_a_dialog_gets_400() {
    let mut net = alice_and_pbx();
    let invite = Message::parse(
        &b"INVITE sip:pbx@192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKnocontact\r\n\
           From: <sip:alice@192.0.2.1>;tag=a1\r\nTo: <sip:pbx@192.0.2.10>\r\nCall-ID: nocontact\r\n\
           CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"[..],
    )
    .unwrap();
    let (now, pbx) = (net.now, net.addr("pbx"));
    net.node("alice")
        .layer
        .send_request(invite, udp(pbx), now)
        .unwrap();
    net.run(Duration::from_millis(100));
    assert_eq!(net.sent("pbx", "alice", status(400)).len(), 1);
    let n = net.node("pbx");
    assert!(n.has_event(
        1,
        |e| matches!(e, LegEvent::Failed { status, .. } if *status == StatusCode::BAD_REQUEST)
    ));
    assert_eq!(n.terminated, [1]);
    net.run(Duration::from_secs(40));
    assert!(net.nodes.iter().all(Node::is_clean));
}

/// The PBX rings Bob with an INVITE without SDP (a late offer).
fn late_offer_call(net: &mut Net) -> u32 {
    let (now, bob) = (net.now, net.addr("bob1"));
    let uri = Uri::parse("sip:bob@example.com").unwrap();
    let mut template = Message::request(Method::Invite, uri.clone());
    template
        .headers_mut()
        .push(HeaderName::From, "<sip:pbx@pbx>");
    template
        .headers_mut()
        .push(HeaderName::To, "<sip:bob@example.com>");
    let token = net.node("pbx").token();
    let mut leg = OutgoingLegs::new(net.node("pbx").config.clone(), &token, template);
    leg.add_branch(uri, udp(bob), None, now).unwrap();
    net.node("pbx").add(AnyLeg::Out(leg))
}

#[test]
fn a_late_offer_is_answered_in_the_ack_by_the_owner() {
    let mut net = pbx_and(&[phone(100, None)]);
    let p = late_offer_call(&mut net);
    net.run(Duration::from_secs(1));
    assert!(net.node("pbx").has_event(
        p,
        |e| matches!(e, LegEvent::Answered { sdp: Some(s), .. } if s == SDP_B)
    ));
    assert!(
        net.sent("pbx", "bob1", is(Method::Ack)).is_empty(),
        "the ACK waits for the answer"
    );
    assert!(
        net.sent("bob1", "pbx", status(200)).len() >= 2,
        "so Bob retransmits"
    );
    let now = net.now;
    let dialog = net.node("pbx").leg(p).dialog();
    assert!(dialog.awaits_answer());
    assert_eq!(
        dialog.reinvite(sdp(SDP_A), now),
        Err(LegError::OfferPending)
    );
    dialog.ack_answer(sdp(SDP_A), now).unwrap();
    assert_eq!(
        dialog.ack_answer(sdp(SDP_A), now),
        Err(LegError::NothingPending)
    );
    net.run(Duration::from_secs(5));
    let acks = net.sent("pbx", "bob1", is(Method::Ack));
    assert!(!acks.is_empty());
    assert!(
        acks.iter()
            .all(|(_, m)| m.body == SDP_A && m.to_bytes() == acks[0].1.to_bytes())
    );
    assert!(net.node("bob1").has_event(
        1,
        |e| matches!(e, LegEvent::Confirmed { sdp: Some(s) } if s == SDP_A)
    ));
}

#[test]
fn a_late_offer_hung_up_before_answering_is_refused_in_the_ack() {
    let mut net = pbx_and(&[phone(100, None)]);
    let p = late_offer_call(&mut net);
    net.run(Duration::from_secs(1));
    let now = net.now;
    net.node("pbx").leg(p).out().hang_up(16, now).unwrap();
    net.run(Duration::from_secs(1));
    let to_bob: Vec<Message> = net
        .sent("pbx", "bob1", |m| {
            m.method()
                .is_some_and(|m| *m == Method::Ack || *m == Method::Bye)
        })
        .into_iter()
        .map(|(_, m)| m)
        .collect();
    assert_eq!(to_bob[0].method(), Some(&Method::Ack));
    assert_eq!(to_bob[1].method(), Some(&Method::Bye));
    let answer = pbxkit_sip::sdp::Session::parse_body(&to_bob[0].body).unwrap();
    assert!(
        answer.media.iter().all(|m| m.port == 0),
        "every stream refused"
    );
    assert!(net.node("bob1").has_event(1, |e| matches!(
        e,
        LegEvent::Ended {
            by: Side::Remote,
            ..
        }
    )));
    net.run(Duration::from_secs(40));
    assert!(net.nodes.iter().all(Node::is_clean));
}

#[test]
fn odd_answers_fail_the_branch_and_commands_after_the_end_are_refused() {
    let mut net = pbx_and(&[Policy::Raw]);
    let (now, bob) = (net.now, net.addr("bob1"));
    let p = net
        .node("pbx")
        .call("sip:bob@example.com", &[bob], &[], now);
    net.run(Duration::from_millis(100));
    let (tx, invite) = invites(net.node("bob1")).pop().unwrap();
    // A 180 without To tag, then a 2xx without Contact: no dialog can be made of it.
    let now = net.now;
    let untagged = Message::response_to(&invite, StatusCode::RINGING, None);
    let bob1 = net.node("bob1");
    bob1.layer.respond(tx, untagged, now).unwrap();
    let bare = Message::response_to(&invite, StatusCode::OK, Some("b1"));
    bob1.layer.respond(tx, bare, now).unwrap();
    net.run(Duration::from_millis(100));
    let pbx = net.node("pbx");
    assert!(pbx.has_event(p, |e| matches!(e, LegEvent::Ringing { .. })));
    assert!(pbx.has_event(
        p,
        |e| matches!(e, LegEvent::Failed { status, .. } if *status == StatusCode::BAD_GATEWAY)
    ));
    assert!(pbx.legs.is_empty());

    // An incoming leg that was cancelled refuses what the owner tries next.
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(Timers::default());
    let alice = udp(ALICE.parse().unwrap());
    let invite = Message::parse(
        &b"INVITE sip:pbx@192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKc1\r\n\
           From: <sip:alice@192.0.2.1>;tag=a1\r\nTo: <sip:pbx@192.0.2.10>\r\nCall-ID: c1\r\n\
           CSeq: 1 INVITE\r\nContact: <sip:alice@192.0.2.1>\r\nContent-Length: 0\r\n\r\n"[..],
    )
    .unwrap();
    layer.handle_message(invite.clone(), alice, t0);
    let Some(Event::Request {
        tx,
        request,
        source,
    }) = layer.poll_event()
    else {
        panic!()
    };
    let config = LegConfig::new(PBX, Uri::parse("sip:pbx@192.0.2.10").unwrap());
    let mut leg = IncomingLeg::new(config, "p1", tx, request, source, t0);
    layer.handle_message(cancel_for(&invite), alice, t0);
    let cancelled = layer.poll_event().unwrap();
    assert!(matches!(cancelled, Event::Cancelled { .. }));
    leg.handle_event(cancelled, t0);
    assert_eq!(leg.answer(None, t0), Err(LegError::Ending));
    assert_eq!(leg.ring(None, t0), Err(LegError::Ending));
    assert_eq!(leg.hang_up(16, t0), Err(LegError::Ending));
    let events: Vec<String> = std::iter::from_fn(|| leg.poll_output())
        .map(|o| match o {
            Output::Event(e) => format!("{e:?}"),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        events,
        ["Cancelled { cause: None, elsewhere: false }", "Terminated"]
    );
    assert!(leg.is_terminated());
}
