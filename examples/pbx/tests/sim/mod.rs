//! The simulation the engine tests share: the call engine, phones with their own
//! transaction layers and legs, and a network that loses, duplicates and reorders
//! datagrams, all in simulated time.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
#![allow(dead_code, reason = "each test file uses part of this")]

use bytes::Bytes;
use pbxkit::engine::{
    Application, CallId, Directory, Engine, EngineConfig, Event, Media, QueueSetup,
};
use pbxkit_sip::b2bua::{
    Credentials, IncomingLeg, Leg, LegConfig, LegEvent, OutgoingLegs, Output, Routes,
};
use pbxkit_sip::transaction::{Event as TxEvent, Target, Timers, TransactionLayer, TransportKind};
use pbxkit_sip::{HeaderName, Message, Method, StatusCode, Uri};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// xorshift64*: deterministic per seed.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub(crate) fn percent(&mut self, p: u64) -> bool {
        self.next() % 100 < p
    }

    pub(crate) fn millis(&mut self, from: u64, to: u64) -> Duration {
        Duration::from_millis(from + self.next() % (to - from + 1))
    }
}

pub(crate) const PBX: &str = "10.0.0.1:5060";
pub(crate) const REALM: &str = "pbxkit";

pub(crate) fn udp(addr: SocketAddr) -> Target {
    Target {
        addr,
        transport: TransportKind::Udp,
    }
}

pub(crate) fn sdp(user: &str, version: u32, hold: bool) -> Bytes {
    Bytes::from(format!(
        "v=0\r\no={user} 1 {version} IN IP4 10.0.1.1\r\ns=-\r\nc=IN IP4 10.0.1.1\r\nt=0 0\r\n\
         m=audio 4000 RTP/AVP 0\r\n{}",
        if hold { "a=sendonly\r\n" } else { "" }
    ))
}

/// The users: extension, password, where its phone is (and where a second contact
/// with no phone behind it is, for some).
#[derive(Debug)]
pub(crate) struct Users(
    pub(crate) BTreeMap<String, SocketAddr>,
    pub(crate) BTreeMap<String, SocketAddr>,
);

impl Directory for Users {
    fn password(&self, user: &str) -> Option<String> {
        self.0.contains_key(user).then(|| format!("pw{user}"))
    }

    fn contacts(&self, line: &str) -> Vec<(Uri, Target)> {
        [self.0.get(line), self.1.get(line)]
            .into_iter()
            .flatten()
            .map(|addr| {
                (
                    Uri::parse(&format!("sip:{line}@{addr}")).unwrap(),
                    udp(*addr),
                )
            })
            .collect()
    }

    fn application(&self, number: &str) -> Option<Application> {
        match number {
            "9000" => Some(Application::Echo),
            "9001" => Some(Application::Playback { file: None }),
            "5000" => Some(Application::Ivr {
                menu: "5000".into(),
            }),
            _ => None,
        }
    }
}

/// The PBX's media for applications: answers with its own SDP, and remembers what
/// ran and what was closed.
#[derive(Debug, Default)]
pub(crate) struct AppMedia(pub(crate) Arc<std::sync::Mutex<Vec<String>>>);

impl Media for AppMedia {
    fn offer(&mut self, _: CallId, _: bool, _: &Bytes) -> Option<Bytes> {
        None
    }

    fn answer(&mut self, _: CallId, _: bool, _: Option<&Bytes>, _: &Bytes) -> Option<Bytes> {
        None
    }

    fn application(
        &mut self,
        call: CallId,
        app: &Application,
        _offer: &Bytes,
    ) -> Result<Bytes, StatusCode> {
        self.0.lock().unwrap().push(format!("{call:?} {app:?}"));
        Ok(sdp("pbx", 1, false))
    }

    fn close(&mut self, call: CallId) {
        self.0.lock().unwrap().push(format!("{call:?} closed"));
    }
}

pub(crate) fn dialplan(users: usize) -> pbxkit_dialplan::Dialplan {
    let mut text = String::from(
        "[[contexts]]\nname = \"default\"\nkind = \"internal\"\n\
         ranges.users = [{ start = \"1000\", end = \"1999\" }]\n",
    );
    for i in 0..users {
        let ext = 1000 + i;
        text.push_str(&format!(
            "[[users]]\nname = \"{ext}\"\nextension = \"{ext}\"\ncontext = \"default\"\n\
             lines = [\"{ext}\"]\nring_time = 8\nsimultaneous_calls = 1000\n"
        ));
    }
    pbxkit_dialplan::Dialplan::new(toml::from_str(&text).unwrap(), jiff::tz::db()).unwrap()
}

#[derive(Debug)]
pub(crate) enum AnyLeg {
    In(Box<IncomingLeg>),
    Out(Box<OutgoingLegs>),
}

impl AnyLeg {
    pub(crate) fn leg(&mut self) -> &mut dyn Leg {
        match self {
            AnyLeg::In(l) => l.as_mut(),
            AnyLeg::Out(l) => l.as_mut(),
        }
    }

    pub(crate) fn hang_up(&mut self, now: Instant) {
        let _ = match self {
            AnyLeg::In(l) => l.hang_up(16, now),
            AnyLeg::Out(l) => l.hang_up(16, now),
        };
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Act {
    Answer(u32),
    Reject(u32, u16),
    HangUp(u32),
    Hold(u32),
    /// REFER the first answered call to this number; hang up at once when set.
    Refer(&'static str, bool),
    /// Refuse with 401 and the phone's challenge.
    Challenge(u32),
    /// Blind transfer: REFER the call on this leg to a number; hang up once the
    /// REFER is surely there when set.
    Transfer {
        leg: u32,
        to: u32,
        leave: bool,
    },
    /// Attended transfer: REFER the call on `leg` to the party of `consult`, with
    /// Replaces naming the consultation's dialog.
    Attend {
        leg: u32,
        consult: u32,
    },
}

/// A phone: its own transaction layer and legs, and a user who acts at random.
pub(crate) struct Phone {
    pub(crate) user: String,
    pub(crate) addr: SocketAddr,
    pub(crate) layer: TransactionLayer,
    pub(crate) config: LegConfig,
    pub(crate) legs: BTreeMap<u32, AnyLeg>,
    pub(crate) routes: Routes<u32>,
    pub(crate) next: u32,
    pub(crate) acts: Vec<(Instant, Act)>,
    /// Calls this phone placed, by leg: the sim's record of what it dialled.
    pub(crate) placed: HashMap<u32, String>,
    pub(crate) answered: usize,
    /// Holds this phone's user asked for, and those the other party accepted.
    pub(crate) holds: (usize, usize),
    /// What the user does with a call: `None`, at random.
    pub(crate) script: Option<Script>,
    /// The requests this phone received, in order (method names).
    pub(crate) seen: Vec<String>,
    /// Whether its user keeps answered calls up (no random hold or hangup).
    pub(crate) quiet: bool,
    /// The sipfrag status lines of the NOTIFYs it received.
    pub(crate) notified: Vec<String>,
    /// The new requests it received (INVITEs outside a dialog, OPTIONS...).
    pub(crate) requests: Vec<Message>,
    /// Extra headers on the INVITEs it places (a trunk's P-Asserted-Identity).
    pub(crate) extra: Vec<(HeaderName, String)>,
    /// The WWW-Authenticate it challenges INVITEs without credentials with
    /// ([`Script::Challenge`]).
    pub(crate) challenge: String,
    /// Users of the simulation (1000 up), the numbers its random transfers name.
    pub(crate) population: u32,
    /// Consultation calls of attended transfers: consultation leg → the held call.
    pub(crate) consults: HashMap<u32, u32>,
    /// Blind and attended transfers this phone's user started.
    pub(crate) transfers: (usize, usize),
    /// Offers received in its dialogs (re-INVITEs, UPDATEs).
    pub(crate) offers: usize,
}

/// A phone's user that always does the same.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Script {
    /// Answers after this long.
    Answer(Duration),
    /// Refuses with this status at once.
    Reject(u16),
    /// Lets it ring.
    Ring,
    /// Challenges an INVITE without credentials (401), answers one with them
    /// after this long: a trunk that wants our account.
    Challenge(Duration),
}

impl Phone {
    pub(crate) fn new(user: String, addr: SocketAddr, timers: Timers) -> Phone {
        let contact = Uri::parse(&format!("sip:{user}@{addr}")).unwrap();
        let mut config = LegConfig::new(&addr.to_string(), contact);
        config.timers = timers;
        Phone {
            layer: TransactionLayer::new(timers),
            config,
            legs: BTreeMap::new(),
            routes: Routes::new(),
            next: 1,
            acts: Vec::new(),
            placed: HashMap::new(),
            answered: 0,
            holds: (0, 0),
            script: None,
            seen: Vec::new(),
            quiet: false,
            notified: Vec::new(),
            requests: Vec::new(),
            extra: Vec::new(),
            challenge: String::new(),
            population: 0,
            consults: HashMap::new(),
            transfers: (0, 0),
            user,
            addr,
            offers: 0,
        }
    }

    pub(crate) fn add(&mut self, leg: AnyLeg) -> u32 {
        let id = self.next;
        self.next += 1;
        let key = match &leg {
            AnyLeg::In(l) => l.key(),
            AnyLeg::Out(l) => l.key(),
        };
        self.routes.insert(key, id);
        if let AnyLeg::In(l) = &leg {
            self.routes.server(l.server_tx(), id);
        }
        self.legs.insert(id, leg);
        id
    }

    /// Dials `to` through the PBX; gives up after `give_up` unless answered. The
    /// new leg.
    pub(crate) fn dial(&mut self, to: &str, give_up: Option<Duration>, now: Instant) -> u32 {
        let uri = Uri::parse(&format!("sip:{to}@{PBX}")).unwrap();
        let mut template = Message::request(Method::Invite, uri.clone());
        let h = template.headers_mut();
        h.push(HeaderName::From, format!("<sip:{}@{REALM}>", self.user));
        h.push(HeaderName::To, format!("<sip:{to}@{REALM}>"));
        h.push(HeaderName::ContentType, "application/sdp");
        for (name, value) in &self.extra {
            h.push(name.clone(), value.clone());
        }
        template.body = sdp(&self.user, 1, false);
        let token = format!("{}c{}", self.user, self.next);
        let mut leg = OutgoingLegs::new(self.config.clone(), &token, template);
        let credentials = Credentials {
            username: self.user.clone(),
            password: format!("pw{}", self.user),
            realm: Some(REALM.into()),
        };
        leg.add_branch(uri, udp(PBX.parse().unwrap()), Some(credentials), now)
            .unwrap();
        let id = self.add(AnyLeg::Out(Box::new(leg)));
        self.placed.insert(id, to.to_owned());
        if let Some(after) = give_up {
            self.acts.push((now + after, Act::HangUp(id)));
        }
        id
    }

    pub(crate) fn pump(
        &mut self,
        rng: &mut Rng,
        now: Instant,
        wire: &mut Vec<(SocketAddr, SocketAddr, Bytes)>,
    ) {
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
                            let _ = self.layer.respond(tx, response, now);
                        }
                        Output::Ack { request, target } => {
                            wire.push((self.addr, target.addr, request.to_bytes()));
                        }
                        Output::Event(LegEvent::Terminated) => {
                            self.legs.remove(&id);
                            self.routes.remove(id);
                            break;
                        }
                        Output::Event(e) => self.react(id, e, rng, now),
                        _ => {}
                    }
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
                    _ => self.unrouted(ev, rng, now),
                }
            }
            if !moved {
                return;
            }
        }
    }

    pub(crate) fn unrouted(&mut self, ev: TxEvent, rng: &mut Rng, now: Instant) {
        let TxEvent::Request {
            tx,
            request,
            source,
        } = ev
        else {
            return;
        };
        if let Some(m) = request.method() {
            self.seen.push(m.to_string());
        }
        self.requests.push(request.clone());
        let authorized = request
            .headers()
            .first(&HeaderName::Authorization)
            .is_some();
        if request.method() == Some(&Method::Invite) && request.to().unwrap().tag().is_none() {
            let token = format!("{}i{}", self.user, self.next);
            let leg = IncomingLeg::new(self.config.clone(), &token, tx, request, source, now);
            let id = self.add(AnyLeg::In(Box::new(leg)));
            if let Some(AnyLeg::In(l)) = self.legs.get_mut(&id) {
                let _ = l.ring(None, now);
            }
            // The user answers, is busy, or lets it ring (the PBX gives up after 8 s).
            let (act, after) = match self.script {
                Some(Script::Answer(after)) => (Act::Answer(id), after),
                Some(Script::Reject(code)) => (Act::Reject(id, code), Duration::ZERO),
                Some(Script::Ring) => (Act::Reject(id, 480), Duration::from_secs(120)),
                Some(Script::Challenge(_)) if !authorized => (Act::Challenge(id), Duration::ZERO),
                Some(Script::Challenge(after)) => (Act::Answer(id), after),
                None => match rng.next() % 10 {
                    0..=5 => (Act::Answer(id), rng.millis(50, 3000)),
                    6 | 7 => (Act::Reject(id, 486), rng.millis(50, 3000)),
                    _ => (Act::Reject(id, 480), Duration::from_secs(30)),
                },
            };
            self.acts.push((now + after, act));
        } else {
            let r = Message::response_to(&request, StatusCode::CALL_DOES_NOT_EXIST, None);
            let _ = self.layer.respond(tx, r, now);
        }
    }

    pub(crate) fn react(&mut self, id: u32, e: LegEvent, rng: &mut Rng, now: Instant) {
        match e {
            LegEvent::Answered { .. } | LegEvent::Confirmed { .. } if self.quiet => {
                self.answered += 1;
            }
            LegEvent::Notify { body, .. } => {
                self.notified
                    .push(String::from_utf8_lossy(&body).trim().to_owned());
            }
            LegEvent::Answered { .. } | LegEvent::Confirmed { .. } => {
                self.answered += 1;
                if let Some(held) = self.consults.remove(&id) {
                    // The consultation is answered: hand the held party over,
                    // and hang up both calls later if the PBX has not.
                    self.acts.push((
                        now + rng.millis(100, 1000),
                        Act::Attend {
                            leg: held,
                            consult: id,
                        },
                    ));
                    self.acts
                        .push((now + Duration::from_secs(5), Act::HangUp(id)));
                    self.acts
                        .push((now + Duration::from_secs(5), Act::HangUp(held)));
                    return;
                }
                if self.population > 2 && rng.percent(8) {
                    let to = 1000 + (rng.next() % u64::from(self.population)) as u32;
                    if rng.percent(60) {
                        // Blind: the transferor leaves at once or waits for the
                        // outcome (then hangs up in a while, if still there).
                        let leave = rng.percent(50);
                        let at = now + rng.millis(200, 2000);
                        self.acts.push((at, Act::Transfer { leg: id, to, leave }));
                        self.acts
                            .push((at + Duration::from_secs(12), Act::HangUp(id)));
                    } else {
                        // Attended: hold this one, call the target, hand over.
                        self.acts.push((now + rng.millis(50, 500), Act::Hold(id)));
                        let consult = self.dial(&to.to_string(), None, now);
                        self.consults.insert(consult, id);
                        self.transfers.1 += 1;
                        // Also ends a consultation that is never answered.
                        self.acts
                            .push((now + Duration::from_secs(15), Act::HangUp(consult)));
                        self.acts
                            .push((now + Duration::from_secs(15), Act::HangUp(id)));
                    }
                    return;
                }
                // Talk, sometimes put the other on hold, then hang up (whoever
                // comes first of the two parties).
                if rng.percent(30) {
                    self.acts.push((now + rng.millis(100, 2000), Act::Hold(id)));
                }
                self.acts
                    .push((now + rng.millis(200, 6000), Act::HangUp(id)));
            }
            LegEvent::NoAck | LegEvent::SessionExpired => self.hang(id, now),
            LegEvent::OfferAnswered { .. } => self.holds.1 += 1,
            LegEvent::Offer { .. } => {
                self.offers += 1;
                if let Some(AnyLeg::In(l)) = self.legs.get_mut(&id) {
                    let answer = l.dialog().and_then(|d| d.local_sdp().cloned());
                    if let Some(d) = l.dialog() {
                        let _ = d.accept_offer(answer, now);
                    }
                } else if let Some(AnyLeg::Out(l)) = self.legs.get_mut(&id) {
                    let answer = l.dialog().and_then(|d| d.local_sdp().cloned());
                    if let Some(d) = l.dialog() {
                        let _ = d.accept_offer(answer, now);
                    }
                }
            }
            _ => {}
        }
    }

    pub(crate) fn hang(&mut self, id: u32, now: Instant) {
        if let Some(l) = self.legs.get_mut(&id) {
            l.hang_up(now);
        }
    }

    pub(crate) fn run_acts(&mut self, now: Instant) {
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
                        let _ = l.answer(Some(sdp(&self.user, 1, false)), now);
                    }
                }
                Act::Reject(id, code) => {
                    if let Some(AnyLeg::In(l)) = self.legs.get_mut(&id) {
                        let _ = l.reject(StatusCode::new(code).unwrap(), None, &[], now);
                    }
                }
                Act::HangUp(id) => self.hang(id, now),
                Act::Challenge(id) => {
                    let challenge = [(HeaderName::WwwAuthenticate, self.challenge.clone())];
                    if let Some(AnyLeg::In(l)) = self.legs.get_mut(&id) {
                        let _ = l.reject(StatusCode::UNAUTHORIZED, None, &challenge, now);
                    }
                }
                Act::Transfer { leg, to, leave } => {
                    let uri = Uri::parse(&format!("sip:{to}@{PBX}")).unwrap();
                    let dialog = match self.legs.get_mut(&leg) {
                        Some(AnyLeg::In(l)) => l.dialog(),
                        Some(AnyLeg::Out(l)) => l.dialog(),
                        None => None,
                    };
                    if let Some(d) = dialog
                        && d.refer(&uri, now).is_ok()
                    {
                        self.transfers.0 += 1;
                        if leave {
                            self.acts
                                .push((now + Duration::from_millis(100), Act::HangUp(leg)));
                        }
                    }
                }
                Act::Attend { leg, consult } => {
                    let replaced = match self.legs.get_mut(&consult) {
                        Some(AnyLeg::Out(l)) => l.dialog().map(|d| {
                            let id = &d.dialog().id;
                            let to = self.placed.get(&consult).cloned().unwrap_or_default();
                            format!(
                                "sip:{to}@{PBX}?Replaces={}%3Bto-tag%3D{}%3Bfrom-tag%3D{}",
                                escape(&id.call_id),
                                escape(&id.remote_tag),
                                escape(&id.local_tag)
                            )
                        }),
                        _ => None,
                    };
                    let dialog = match self.legs.get_mut(&leg) {
                        Some(AnyLeg::In(l)) => l.dialog(),
                        Some(AnyLeg::Out(l)) => l.dialog(),
                        None => None,
                    };
                    if let (Some(d), Some(uri)) = (dialog, replaced) {
                        let _ = d.refer(&Uri::parse(&uri).unwrap(), now);
                    }
                }
                Act::Refer(to, leave) => {
                    let ids: Vec<u32> = self.legs.keys().copied().collect();
                    for id in ids {
                        let dialog = match self.legs.get_mut(&id) {
                            Some(AnyLeg::In(l)) => l.dialog(),
                            Some(AnyLeg::Out(l)) => l.dialog(),
                            None => None,
                        };
                        let uri = Uri::parse(&format!("sip:{to}@{PBX}")).unwrap();
                        if let Some(d) = dialog
                            && d.refer(&uri, now).is_ok()
                        {
                            if leave {
                                // Once the REFER is surely there (the network
                                // reorders by up to 35 ms).
                                self.acts
                                    .push((now + Duration::from_millis(100), Act::HangUp(id)));
                            }
                            break;
                        }
                    }
                }
                Act::Hold(id) => {
                    let user = self.user.clone();
                    let dialog = match self.legs.get_mut(&id) {
                        Some(AnyLeg::In(l)) => l.dialog(),
                        Some(AnyLeg::Out(l)) => l.dialog(),
                        None => None,
                    };
                    if let Some(d) = dialog
                        && d.reinvite(sdp(&user, 2, true), now).is_ok()
                    {
                        self.holds.0 += 1;
                    }
                }
            }
        }
    }

    pub(crate) fn next_timeout(&mut self) -> Option<Instant> {
        let legs = self.legs.values().filter_map(|l| match l {
            AnyLeg::In(l) => l.poll_timeout(),
            AnyLeg::Out(l) => l.poll_timeout(),
        });
        let acts = self.acts.iter().map(|(at, _)| *at);
        let mine = legs.chain(acts).min();
        [mine, self.layer.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }
}

/// `s` percent-encoded for a URI header parameter (RFC 3261 §25.1 `hvalue`).
pub(crate) fn escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub(crate) struct Flight {
    pub(crate) at: Instant,
    pub(crate) seq: u64,
    pub(crate) from: SocketAddr,
    pub(crate) to: SocketAddr,
    pub(crate) bytes: Bytes,
}

/// The PBX, its phones and the network between them.
pub(crate) struct Sim {
    pub(crate) now: Instant,
    pub(crate) rng: Rng,
    pub(crate) engine: Engine<Users>,
    pub(crate) phones: Vec<Phone>,
    pub(crate) by_addr: HashMap<SocketAddr, usize>,
    pub(crate) flights: Vec<Flight>,
    pub(crate) seq: u64,
    pub(crate) loss: u64,
    pub(crate) dup: u64,
    /// Percent of callers who hang up before an answer, at a random time.
    pub(crate) give_up: u64,
    pub(crate) events: Vec<Event>,
}

impl Sim {
    pub(crate) fn new(seed: u64, users: usize, loss: u64, dup: u64) -> Sim {
        Sim::with_dialplan(seed, users, loss, dup, dialplan(users))
    }

    pub(crate) fn with_dialplan(
        seed: u64,
        users: usize,
        loss: u64,
        dup: u64,
        dialplan: pbxkit_dialplan::Dialplan,
    ) -> Sim {
        Sim::with_media(
            seed,
            users,
            loss,
            dup,
            dialplan,
            pbxkit::engine::PassThrough,
        )
    }

    pub(crate) fn with_media(
        seed: u64,
        users: usize,
        loss: u64,
        dup: u64,
        dialplan: pbxkit_dialplan::Dialplan,
        media: impl Media + Send + 'static,
    ) -> Sim {
        Sim::with_queues(seed, users, loss, dup, dialplan, media, Vec::new())
    }

    pub(crate) fn with_queues(
        seed: u64,
        users: usize,
        loss: u64,
        dup: u64,
        dialplan: pbxkit_dialplan::Dialplan,
        media: impl Media + Send + 'static,
        queues: Vec<QueueSetup>,
    ) -> Sim {
        let now = Instant::now();
        // A shorter T1 keeps the run short; the timers keep their ratios.
        let timers = Timers {
            t1: Duration::from_millis(100),
            t2: Duration::from_millis(800),
            t4: Duration::from_secs(1),
        };
        let mut directory = BTreeMap::new();
        let mut phones = Vec::new();
        let mut by_addr = HashMap::new();
        for i in 0..users {
            let user = (1000 + i).to_string();
            let addr: SocketAddr = format!("10.0.1.{}:5060", i + 1).parse().unwrap();
            directory.insert(user.clone(), addr);
            by_addr.insert(addr, phones.len());
            phones.push(Phone::new(user, addr, timers));
        }
        let config = EngineConfig::new(
            REALM,
            PBX,
            b"the simulation's nonce secret, 32+ bytes",
            seed,
        )
        .unwrap()
        .with_timers(timers);
        let config = EngineConfig { queues, ..config };
        let engine = Engine::new(
            config,
            Arc::new(dialplan),
            Users(directory, BTreeMap::new()),
            now,
            1_700_000_000,
        )
        .with_media(media);
        Sim {
            now,
            rng: Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1),
            engine,
            phones,
            by_addr,
            flights: Vec::new(),
            seq: 0,
            loss,
            dup,
            give_up: 15,
            events: Vec::new(),
        }
    }

    pub(crate) fn send(&mut self, wire: Vec<(SocketAddr, SocketAddr, Bytes)>) {
        for (from, to, bytes) in wire {
            if self.rng.percent(self.loss) {
                continue;
            }
            let copies = if self.rng.percent(self.dup) { 2 } else { 1 };
            for _ in 0..copies {
                // 5–40 ms: jitter reorders datagrams.
                let delay = self.rng.millis(5, 40);
                self.seq += 1;
                self.flights.push(Flight {
                    at: self.now + delay,
                    seq: self.seq,
                    from,
                    to,
                    bytes: bytes.clone(),
                });
            }
        }
    }

    pub(crate) fn pump(&mut self) {
        let pbx: SocketAddr = PBX.parse().unwrap();
        let mut wire = Vec::new();
        for p in &mut self.phones {
            p.pump(&mut self.rng, self.now, &mut wire);
        }
        while let Some(t) = self.engine.poll_transmit() {
            wire.push((pbx, t.target.addr, t.bytes));
        }
        while let Some(e) = self.engine.poll_event() {
            self.events.push(e);
        }
        // No REGISTER in this simulation: anything else the PBX would answer 405.
        while let Some(r) = self.engine.poll_request() {
            let answer = Message::response_to(&r.request, StatusCode::METHOD_NOT_ALLOWED, None);
            let _ = self.engine.respond(r.tx, answer, self.now);
        }
        if let Err(wrong) = self.engine.check_counts() {
            panic!(
                "call counts astray: {wrong}; last events {:?}",
                self.events.iter().rev().take(5).collect::<Vec<_>>()
            );
        }
        self.send(wire);
    }

    /// Runs until `end`, placing `calls` (time, caller, callee) as their time comes.
    pub(crate) fn run(&mut self, mut calls: Vec<(Instant, usize, usize)>, end: Instant) {
        calls.sort_by_key(|c| std::cmp::Reverse(c.0));
        loop {
            self.pump();
            let flights = self.flights.iter().map(|f| f.at).min();
            let phones = self.phones.iter_mut().filter_map(Phone::next_timeout).min();
            let next_call = calls.last().map(|c| c.0);
            let next = [flights, phones, self.engine.poll_timeout(), next_call]
                .into_iter()
                .flatten()
                .min();
            let Some(next) = next.filter(|n| *n <= end) else {
                self.now = end;
                return;
            };
            self.now = self.now.max(next);
            let now = self.now;
            while calls.last().is_some_and(|c| c.0 <= now) {
                let (_, from, to) = calls.pop().unwrap();
                let to = self.phones[to].user.clone();
                let give_up = self
                    .rng
                    .percent(self.give_up)
                    .then(|| Duration::from_millis(100 + self.rng.next() % 4000));
                self.phones[from].dial(&to, give_up, now);
            }
            let mut due = Vec::new();
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
                let message = Message::parse(f.bytes).unwrap();
                if f.to == PBX.parse().unwrap() {
                    self.engine.handle_message(message, udp(f.from), now);
                } else if let Some(&i) = self.by_addr.get(&f.to) {
                    self.phones[i]
                        .layer
                        .handle_message(message, udp(f.from), now);
                }
            }
            if self.engine.poll_timeout().is_some_and(|at| at <= now) {
                self.engine.handle_timeout(now);
            }
            for p in &mut self.phones {
                p.layer.handle_timeout(now);
                let ids: Vec<u32> = p.legs.keys().copied().collect();
                for id in ids {
                    let leg = p.legs.get_mut(&id).unwrap().leg();
                    if leg.poll_timeout().is_some_and(|at| at <= now) {
                        leg.handle_timeout(now);
                    }
                }
                p.run_acts(now);
            }
        }
    }
}
