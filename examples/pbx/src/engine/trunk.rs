//! Trunks: calls out through a route's trunks in failover order (their digest
//! challenges answered with the trunk's credentials), calls in from a trunk's
//! address routed by DID without a password, and what keeps trunks usable: an
//! outbound registration for each trunk that asks for one (pbxkit-sip's sans-IO
//! [`Registration`]) and OPTIONS pings ("qualify") that mark a silent trunk down so
//! that calls skip it instead of waiting for its timeout.

use super::call::Caller;
use super::plan::Ending;
use super::{AnyLeg, CallId, Directory, Engine, Event};
use pbxkit_dialplan::outcall::{OutgoingCallerIdDecision, TrunkDial};
use pbxkit_sip::b2bua::{Credentials, Leg, OutgoingLegs};
use pbxkit_sip::registration::{Registration, RegistrationConfig, Status};
use pbxkit_sip::transaction::{ClientTx, Event as TxEvent, Target};
use pbxkit_sip::{HeaderName, Message, Method, StatusCode, Uri};
use std::time::{Duration, Instant};

/// How long a trunk has to answer an OPTIONS before it counts as down (Asterisk's
/// `qualify` default).
pub const QUALIFY_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a call out through a trunk may ring.
const TRUNK_RING_TIME: Duration = Duration::from_secs(300);

/// A trunk: a SIP provider or another PBX calls go out through and come in from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trunk {
    /// Its name (in routes, in the calls' callee: `trunk:<name>`).
    pub name: String,
    /// Where its requests go (the PBX resolves its host name). Requests from this
    /// IP address are the trunk's: trusted without a password.
    pub target: Target,
    /// The host (and port) in the URIs of calls to it: `sip:<number>@<host>`.
    pub host: String,
    /// The context its calls start in (where the DIDs are).
    pub context: String,
    /// What answers its digest challenges (and registers, with `register`).
    pub credentials: Option<Credentials>,
    /// Most calls at once through it, both ways (no limit when `None`).
    pub max_calls: Option<u32>,
    /// Register to it for this many seconds (needs `credentials`).
    pub register: Option<u32>,
    /// Ping it with OPTIONS this often; calls skip it while it does not answer.
    pub qualify: Option<Duration>,
}

impl Trunk {
    /// The key its calls are counted under.
    fn key(&self) -> String {
        format!("trunk:{}", self.name)
    }
}

/// A trunk and what the engine knows of it now.
#[derive(Debug)]
pub(super) struct TrunkState {
    trunk: Trunk,
    /// Whether it answers its OPTIONS (up until it fails to).
    up: bool,
    registration: Option<Registration>,
    registered: bool,
    /// When the next OPTIONS goes.
    next_ping: Option<Instant>,
    /// The OPTIONS in flight, and when it counts as unanswered.
    ping: Option<(ClientTx, Instant)>,
    ping_seq: u32,
    ping_call_id: String,
}

/// What a request of the engine's own to a trunk is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TrunkRequest {
    Register,
    Options,
}

/// A call going out through trunks: what to dial on each, in failover order.
#[derive(Debug, Clone)]
pub(super) struct Outcall {
    /// (trunk, number), in order.
    dial: Vec<(String, String)>,
    next: usize,
    /// The caller ID to present as (name, number); `None`: anonymous.
    present: Option<(String, String)>,
}

impl Outcall {
    pub(super) fn new(dial: &[TrunkDial<'_>], caller_id: &OutgoingCallerIdDecision) -> Outcall {
        let present = match caller_id {
            OutgoingCallerIdDecision::Present { caller_id, .. } => {
                let (name, number) = split_caller_id(caller_id);
                Some((name.to_owned(), number))
            }
            _ => None,
        };
        Outcall {
            dial: dial
                .iter()
                .map(|d| (d.trunk.to_owned(), d.number.clone()))
                .collect(),
            next: 0,
            present,
        }
    }
}

/// Whether a trunk's refusal sends the call to the next trunk: it is out of
/// service (5xx), unreachable (408, 480) or refused our credentials (401, 407: the
/// leg answers a challenge once).
fn fails_over(status: StatusCode) -> bool {
    matches!(status.as_u16(), 500..=599 | 401 | 407 | 408 | 480)
}

impl<D: Directory> Engine<D> {
    /// Uses `trunks` from now on. A trunk whose settings did not change keeps its
    /// registration and state; calls in progress are not affected.
    pub fn set_trunks(&mut self, trunks: Vec<Trunk>, now: Instant) {
        let mut old = std::mem::take(&mut self.trunks);
        for trunk in trunks {
            if let Some(i) = old.iter().position(|s| s.trunk == trunk) {
                self.trunks.push(old.swap_remove(i));
                continue;
            }
            let registration = self.registration(&trunk, now);
            let next_ping = trunk.qualify.map(|_| now);
            let ping_call_id = format!("{}@pbxkit", self.token());
            self.trunks.push(TrunkState {
                trunk,
                up: true,
                registration,
                registered: false,
                next_ping,
                ping: None,
                ping_seq: 0,
                ping_call_id,
            });
        }
        // Requests in flight for trunks gone or changed are forgotten.
        let names: Vec<String> = self.trunks.iter().map(|t| t.trunk.name.clone()).collect();
        self.trunk_txs.retain(|_, (name, _)| names.contains(name));
        self.trunks_tick(now);
        self.drive(now);
    }

    /// Whether calls may go out through `trunk` (it answers its OPTIONS).
    pub fn trunk_is_up(&self, trunk: &str) -> bool {
        self.trunks.iter().any(|t| t.trunk.name == trunk && t.up)
    }

    /// Most calls at once through `trunk`.
    pub(super) fn trunks_max_calls(&self, trunk: &str) -> Option<u32> {
        self.trunks
            .iter()
            .find(|t| t.trunk.name == trunk)
            .and_then(|t| t.trunk.max_calls)
    }

    fn registration(&mut self, trunk: &Trunk, now: Instant) -> Option<Registration> {
        let expires = trunk.register?;
        let creds = trunk.credentials.as_ref()?;
        let sent_by = self.config.leg.sent_by.clone();
        let host = &trunk.host;
        let config = RegistrationConfig {
            registrar: Uri::parse(&format!("sip:{host}")).ok()?,
            aor: Uri::parse(&format!("sip:{}@{}", creds.username, host_only(host))).ok()?,
            contact: Uri::parse(&format!("sip:{}@{sent_by}", creds.username)).ok()?,
            via: format!("SIP/2.0/UDP {sent_by}"),
            username: creds.username.clone(),
            password: creds.password.clone(),
            expires,
            retry_min: Duration::from_secs(5),
            retry_max: Duration::from_secs(300),
        };
        let (call_id, tag, cnonce) = (self.token(), self.token(), self.token());
        Some(Registration::new(
            config,
            &format!("{call_id}@pbxkit"),
            &tag,
            &cnonce,
            now,
        ))
    }

    /// The trunk whose address `source` is.
    pub(super) fn trunk_at(&self, source: std::net::SocketAddr) -> Option<&Trunk> {
        self.trunks
            .iter()
            .map(|t| &t.trunk)
            .find(|t| t.target.addr.ip() == source.ip())
    }

    /// The next deadline of the trunks' registrations and pings.
    pub(super) fn trunks_deadline(&self) -> Option<Instant> {
        self.trunks
            .iter()
            .flat_map(|t| {
                [
                    t.registration.as_ref().and_then(Registration::poll_timeout),
                    t.next_ping,
                    t.ping.map(|(_, until)| until),
                ]
            })
            .flatten()
            .min()
    }

    /// Sends the trunks' REGISTERs and OPTIONS that are due; a ping unanswered in
    /// time marks its trunk down.
    pub(super) fn trunks_tick(&mut self, now: Instant) {
        for i in 0..self.trunks.len() {
            let Some(t) = self.trunks.get_mut(i) else {
                continue;
            };
            let (name, target) = (t.trunk.name.clone(), t.trunk.target);
            if let Some(request) = t.registration.as_mut().and_then(|r| r.poll_request(now)) {
                match self.layer.send_request(request, target, now) {
                    Ok(tx) => {
                        self.trunk_txs
                            .insert(tx, (name.clone(), TrunkRequest::Register));
                    }
                    Err(_) => self.registration_failed(&name, now),
                }
            }
            let Some(t) = self.trunks.get_mut(i) else {
                continue;
            };
            if t.ping.is_some_and(|(_, until)| until <= now) {
                if let Some((tx, _)) = t.ping.take() {
                    self.trunk_txs.remove(&tx);
                }
                self.trunk_answers(&name, false);
            }
            let Some(t) = self.trunks.get_mut(i) else {
                continue;
            };
            if t.ping.is_none()
                && let (Some(at), Some(every)) = (t.next_ping, t.trunk.qualify)
                && at <= now
            {
                t.next_ping = Some(now + every);
                t.ping_seq = t.ping_seq.wrapping_add(1).max(1);
                let options = self.options(i);
                let sent = options.and_then(|o| self.layer.send_request(o, target, now).ok());
                match sent {
                    Some(tx) => {
                        self.trunk_txs
                            .insert(tx, (name.clone(), TrunkRequest::Options));
                        if let Some(t) = self.trunks.get_mut(i) {
                            t.ping = Some((tx, now + QUALIFY_TIMEOUT));
                        }
                    }
                    None => self.trunk_answers(&name, false),
                }
            }
        }
    }

    /// An OPTIONS ping for trunk `i`.
    fn options(&mut self, i: usize) -> Option<Message> {
        let branch = self.token();
        let tag = self.token();
        let sent_by = self.config.leg.sent_by.clone();
        let t = self.trunks.get(i)?;
        let uri = Uri::parse(&format!("sip:{}", t.trunk.host)).ok()?;
        let mut options = Message::request(Method::Options, uri.clone());
        let h = options.headers_mut();
        h.push(
            HeaderName::Via,
            format!("SIP/2.0/UDP {sent_by};branch=z9hG4bK{branch};rport"),
        );
        h.push(HeaderName::MaxForwards, "70");
        h.push(
            HeaderName::From,
            format!("<sip:pbxkit@{sent_by}>;tag={tag}"),
        );
        h.push(HeaderName::To, format!("<{uri}>"));
        h.push(HeaderName::CallId, t.ping_call_id.clone());
        h.push(HeaderName::CSeq, format!("{} OPTIONS", t.ping_seq));
        h.push(HeaderName::ContentLength, "0");
        Some(options)
    }

    /// Takes a transaction event of the engine's own requests to trunks; gives
    /// back any other.
    pub(super) fn trunk_event(&mut self, event: TxEvent, now: Instant) -> Option<TxEvent> {
        let (tx, response) = match &event {
            TxEvent::Response { tx, response } => (*tx, Some(response)),
            TxEvent::Timeout { tx } | TxEvent::TransportError { tx } => (*tx, None),
            _ => return Some(event),
        };
        let Some((name, purpose)) = self.trunk_txs.get(&tx).cloned() else {
            return Some(event);
        };
        if response
            .and_then(Message::status)
            .is_some_and(|s| s.is_provisional())
        {
            return None;
        }
        self.trunk_txs.remove(&tx);
        match purpose {
            TrunkRequest::Options => {
                if let Some(t) = self.trunks.iter_mut().find(|t| t.trunk.name == name)
                    && t.ping.is_some_and(|(ping, _)| ping == tx)
                {
                    t.ping = None;
                    // Any answer, even an error, says the trunk is there.
                    self.trunk_answers(&name, response.is_some());
                }
            }
            TrunkRequest::Register => match response {
                Some(r) => {
                    if let Some(reg) = self.registration_of(&name) {
                        reg.handle_response(r, now);
                    }
                    self.registration_changed(&name);
                }
                None => self.registration_failed(&name, now),
            },
        }
        // A challenge is answered at once.
        self.trunks_tick(now);
        None
    }

    fn registration_of(&mut self, trunk: &str) -> Option<&mut Registration> {
        self.trunks
            .iter_mut()
            .find(|t| t.trunk.name == trunk)?
            .registration
            .as_mut()
    }

    fn registration_failed(&mut self, trunk: &str, now: Instant) {
        if let Some(reg) = self.registration_of(trunk) {
            reg.handle_failure(now);
        }
        self.registration_changed(trunk);
    }

    /// Reports a registration that succeeded, or failed after having succeeded
    /// (or for the first time).
    fn registration_changed(&mut self, trunk: &str) {
        let Some(t) = self.trunks.iter_mut().find(|t| t.trunk.name == trunk) else {
            return;
        };
        let Some(status) = t.registration.as_ref().map(Registration::status) else {
            return;
        };
        match status {
            Status::Registered { .. } if !t.registered => {
                t.registered = true;
                self.events.push_back(Event::TrunkRegistered {
                    trunk: trunk.to_owned(),
                });
            }
            Status::Failed { code, .. } => {
                t.registered = false;
                self.events.push_back(Event::TrunkRegistrationFailed {
                    trunk: trunk.to_owned(),
                    status: code,
                });
            }
            _ => {}
        }
    }

    /// Whether `trunk` answered its ping; a change is reported.
    fn trunk_answers(&mut self, trunk: &str, answered: bool) {
        let Some(t) = self.trunks.iter_mut().find(|t| t.trunk.name == trunk) else {
            return;
        };
        if t.up != answered {
            t.up = answered;
            let trunk = trunk.to_owned();
            self.events.push_back(if answered {
                Event::TrunkUp { trunk }
            } else {
                Event::TrunkDown { trunk }
            });
        }
    }

    /// A call out: its trunks are tried in order.
    pub(super) fn dial_out(&mut self, call: CallId, outcall: Outcall, now: Instant) {
        let Some(c) = self.calls.get_mut(call.0) else {
            return;
        };
        c.outcall = Some(outcall);
        c.last = (StatusCode::SERVICE_UNAVAILABLE, Ending::Failed);
        self.next_trunk(call, now);
    }

    /// Dials the call's next trunk that is up and not full; the caller gets the
    /// last refusal when none is left.
    pub(super) fn next_trunk(&mut self, call: CallId, now: Instant) {
        loop {
            let Some(c) = self.calls.get_mut(call.0) else {
                return;
            };
            let caller = c.caller_id().clone();
            let Some(outcall) = c.outcall.as_mut() else {
                return;
            };
            let Some((name, number)) = outcall.dial.get(outcall.next).cloned() else {
                let status = c.last.0;
                self.refuse(call, status, now);
                return;
            };
            outcall.next += 1;
            let present = outcall.present.clone();
            let Some(trunk) = self
                .trunks
                .iter()
                .find(|t| t.trunk.name == name)
                .filter(|t| t.up)
                .map(|t| t.trunk.clone())
            else {
                // Unknown, disabled, or down (qualify): the next one.
                continue;
            };
            let key = trunk.key();
            if self.in_use(&key) >= trunk.max_calls.unwrap_or(u32::MAX) {
                continue;
            }
            if self.ring_trunk(call, &trunk, &number, &caller, present, now) {
                return;
            }
        }
    }

    /// Rings `number` through `trunk` for `call`; false when the INVITE cannot be
    /// made (a number no URI takes).
    fn ring_trunk(
        &mut self,
        call: CallId,
        trunk: &Trunk,
        number: &str,
        caller: &Caller,
        present: Option<(String, String)>,
        now: Instant,
    ) -> bool {
        let host = host_only(&trunk.host).to_owned();
        let Ok(uri) = Uri::parse(&format!("sip:{number}@{}", trunk.host)) else {
            return false;
        };
        let shown = match &present {
            Some((name, number)) => {
                let name = if name.is_empty() { &caller.name } else { name };
                Caller {
                    number: number.clone(),
                    name: name.clone(),
                    trunk: None,
                }
            }
            None => Caller {
                number: "anonymous".into(),
                name: "Anonymous".into(),
                trunk: None,
            },
        };
        let from = if present.is_some() {
            shown.name_addr(&host)
        } else {
            "\"Anonymous\" <sip:anonymous@anonymous.invalid>".to_owned()
        };
        let offer = self
            .a_offer(call)
            .map(|sdp| self.media.offer(call, true, &sdp).unwrap_or(sdp));
        let mut template =
            self.template(uri.clone(), &from, &format!("<sip:{number}@{host}>"), offer);
        if present.is_none() {
            // Hidden from the callee, not from the trunk: the real identity goes in
            // P-Asserted-Identity with Privacy: id (RFC 3325 §7).
            let h = template.headers_mut();
            h.set(HeaderName::PAssertedIdentity, caller.name_addr(&host));
            h.remove(&HeaderName::RemotePartyId);
            h.push(HeaderName::Privacy, "id");
        }
        let token = self.token();
        let mut b = OutgoingLegs::new(self.config.leg.clone(), &token, template);
        let Ok(branch) = b.add_branch(uri, trunk.target, trunk.credentials.clone(), now) else {
            return false;
        };
        let leg_key = b.key();
        let Some(b_id) = self.add_leg(call, AnyLeg::Outgoing(Box::new(b))) else {
            return false;
        };
        self.routes.insert(leg_key, b_id);
        let key = trunk.key();
        *self.in_use.entry(key.clone()).or_default() += 1;
        if let Some(c) = self.calls.get_mut(call.0) {
            c.ringing_holds = vec![key.clone()];
            c.ring(b_id, vec![(branch, key.clone())], now + TRUNK_RING_TIME);
        }
        self.events.push_back(Event::CallRinging {
            call,
            users: vec![key],
            group: None,
        });
        true
    }

    /// A trunk did not take the call: the next one, or the caller gets why.
    pub(super) fn trunk_failed(
        &mut self,
        call: CallId,
        status: StatusCode,
        ending: Ending,
        now: Instant,
    ) {
        self.release_ringing(call);
        self.set_last(call, status, ending);
        if fails_over(status) {
            self.next_trunk(call, now);
        } else {
            self.refuse(call, status, now);
        }
    }
}

/// `host` without its port.
fn host_only(host: &str) -> &str {
    match host.rsplit_once(':') {
        // An IPv6 reference keeps its brackets; a bare IPv6 address has no port.
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(':') => h,
        _ => host,
    }
}

/// A caller ID as the dialplan writes it, `"Name" <number>` or `number`, split into
/// its name and its number (only the characters a SIP user part may carry unescaped).
fn split_caller_id(caller_id: &str) -> (&str, String) {
    let (name, number) = match caller_id.rsplit_once('<') {
        Some((name, rest)) => (
            name.trim().trim_matches('"'),
            rest.split('>').next().unwrap_or_default(),
        ),
        None => ("", caller_id),
    };
    let number: String = number
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '*' | '#' | '-' | '.'))
        .collect();
    (
        name,
        if number.is_empty() {
            "anonymous".into()
        } else {
            number
        },
    )
}

/// Who calls from a trunk: the identity the trunk asserts (P-Asserted-Identity, RFC
/// 3325, else Remote-Party-ID), else From; `anonymous` when the caller asked for
/// privacy (`Privacy: id`) or gave no number. Number first, then display name.
pub fn trunk_caller(request: &Message) -> (String, String) {
    let headers = request.headers();
    let hidden = headers
        .all(&HeaderName::Privacy)
        .filter_map(|h| h.parse::<pbxkit_sip::Privacy>().ok())
        .any(|p| p.contains("id"));
    if hidden {
        return ("anonymous".into(), "Anonymous".into());
    }
    let asserted = [HeaderName::PAssertedIdentity, HeaderName::RemotePartyId]
        .iter()
        .find_map(|name| headers.typed::<pbxkit_sip::NameAddr>(name)?.ok());
    let identity = asserted.or_else(|| request.from().ok().cloned());
    let number = identity
        .as_ref()
        .and_then(|i| match &i.uri {
            Uri::Sip(u) => u.user.as_ref().map(ToString::to_string),
            Uri::Tel(t) => Some(t.number.to_string()),
            _ => None,
        })
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "anonymous".into());
    let name = identity
        .as_ref()
        .and_then(|i| i.display.as_ref())
        .map(|d| d.text())
        .unwrap_or_default();
    (number, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_ids_split_into_name_and_number() {
        assert_eq!(
            split_caller_id("\"User 1000\" <1000>"),
            ("User 1000", "1000".into())
        );
        assert_eq!(split_caller_id("0123456789"), ("", "0123456789".into()));
        assert_eq!(
            split_caller_id("Sales <+33 1 23>"),
            ("Sales", "+33123".into())
        );
        assert_eq!(split_caller_id("<>"), ("", "anonymous".into()));
    }

    #[test]
    fn hosts_lose_their_port() {
        assert_eq!(host_only("192.0.2.1:5060"), "192.0.2.1");
        assert_eq!(host_only("sip.example.com"), "sip.example.com");
        assert_eq!(host_only("[2001:db8::1]:5062"), "[2001:db8::1]");
        assert_eq!(host_only("2001:db8::1"), "2001:db8::1");
    }

    #[test]
    fn refusals_that_try_the_next_trunk() {
        let s = |n| StatusCode::new(n).unwrap_or(StatusCode::OK);
        assert!(fails_over(s(503)));
        assert!(fails_over(s(408)));
        assert!(fails_over(s(401)));
        assert!(fails_over(s(480)));
        assert!(!fails_over(s(486)));
        assert!(!fails_over(s(404)));
        assert!(!fails_over(s(603)));
    }

    fn invite(extra: &str) -> Message {
        Message::parse(
            format!(
                "INVITE sip:0123@pbx SIP/2.0\r\nVia: SIP/2.0/UDP t;branch=z9hG4bK1\r\n\
                 From: \"Trunk\" <sip:account@provider>;tag=1\r\nTo: <sip:0123@pbx>\r\n\
                 Call-ID: c\r\nCSeq: 1 INVITE\r\n{extra}Content-Length: 0\r\n\r\n"
            )
            .into_bytes(),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn trunk_callers_are_who_the_trunk_asserts_unless_they_hide() {
        let id = |extra: &str| trunk_caller(&invite(extra));
        assert_eq!(id(""), ("account".into(), "Trunk".into()));
        assert_eq!(
            id("P-Asserted-Identity: \"Jane\" <sip:+331234@provider>\r\n"),
            ("+331234".into(), "Jane".into())
        );
        assert_eq!(
            id("P-Asserted-Identity: <tel:+331234>\r\n"),
            ("+331234".into(), String::new())
        );
        assert_eq!(
            id("Remote-Party-ID: \"Old\" <sip:0612@p>;party=calling;screen=yes\r\n"),
            ("0612".into(), "Old".into())
        );
        assert_eq!(
            id("P-Asserted-Identity: <sip:+331234@provider>\r\nPrivacy: id\r\n"),
            ("anonymous".into(), "Anonymous".into())
        );
    }
}
