//! B2BUA legs: the two sides of a call a back-to-back user agent holds, as sans-IO
//! state machines over the [transaction layer](crate::transaction).
//!
//! - [`IncomingLeg`]: the UAS side, created from an INVITE and its [`ServerTx`]:
//!   provisional responses, answer, reject, CANCEL, and then the dialog.
//! - [`OutgoingLegs`]: the UAC side, ringing one or more contacts at once (one INVITE
//!   per [`BranchId`]), with CANCEL rules (RFC 3261 §9.1), digest retries, 422 retries,
//!   best-response selection (§16.7) and the ACK + BYE of 2xx answers that lost.
//! - [`Established`]: a confirmed dialog side, the same type for both: BYE, re-INVITE,
//!   UPDATE, INFO, OPTIONS, REFER and NOTIFY, glare (491), session timers (RFC 4028).
//! - [`anchor`]: the SDP a media-relaying B2BUA sends each side (our address and
//!   ports, one continuous origin per side, hold directions).
//!
//! # Who does what
//!
//! One [`TransactionLayer`] serves an endpoint; legs own dialog state only. A leg asks
//! for messages through [`Output`]: a request to start with
//! [`TransactionLayer::send_request`] (the owner then tells the leg its [`ClientTx`]
//! with [`Leg::sent`]), a response for [`TransactionLayer::respond`], a stateless ACK
//! to put on the wire as is, and typed [`LegEvent`]s. The owner hands the leg the
//! layer's [`Event`]s that belong to it ([`Routes`] finds which leg that is) and
//! calls [`Leg::handle_timeout`] when [`Leg::poll_timeout`] says so.
//!
//! The INVITE server transaction retransmits a 2xx itself until the ACK comes (T1
//! doubling to T2, RFC 3261 §13.3.1.4, as RFC 6026's Accepted state) and reports
//! [`Event::NoAck`] after 64×T1; a leg turns that into [`LegEvent::NoAck`] rather than
//! retransmitting the 2xx a second time.
//!
//! A client INVITE transaction passes retransmitted 2xx up as [`Event::Response`] for
//! 64×T1 after the first (RFC 6026 Timer M), and the layer as [`Event::StrayResponse`]
//! after that; both reach the leg (they carry its dialog key), which ACKs each with
//! the same ACK.
//!
//! In-dialog requests go to the leg's [`Target`] (where the INVITE came from, or the
//! branch's target); their Request-URI is the dialog's remote target.
//!
//! # The drain loop
//!
//! ```
//! use pbxkit_sip::b2bua::{Leg, LegConfig, LegEvent, OutgoingLegs, Output, Routes};
//! use pbxkit_sip::transaction::{Target, Timers, TransactionLayer, TransportKind};
//! use pbxkit_sip::{HeaderName, Message, Method, Uri};
//! use std::time::Instant;
//!
//! let now = Instant::now();
//! let mut layer = TransactionLayer::new(Timers::default());
//! let config = LegConfig::new("192.0.2.10:5060", Uri::parse("sip:pbx@192.0.2.10")?);
//! // What the INVITEs carry: From (our tag is added), To, Call-ID, and the SDP offer
//! // as the body (without one, as here, they make a late offer).
//! let mut template = Message::request(Method::Invite, Uri::parse("sip:bob@example.com")?);
//! let h = template.headers_mut();
//! h.push(HeaderName::From, "<sip:alice@example.com>");
//! h.push(HeaderName::To, "<sip:bob@example.com>");
//! h.push(HeaderName::CallId, "c1@pbx");
//! let mut leg = OutgoingLegs::new(config, "a8f3k", template);
//! let bob = Target { addr: "192.0.2.20:5060".parse()?, transport: TransportKind::Udp };
//! leg.add_branch(Uri::parse("sip:bob@192.0.2.20")?, bob, None, now)?;
//! let mut routes = Routes::new();
//! routes.insert(leg.key(), 1u32);
//!
//! // After every input (a received message, a timer, a command):
//! let mut wire = Vec::new();
//! loop {
//!     while let Some(out) = leg.poll_output() {
//!         match out {
//!             Output::Request { key, request, target } => {
//!                 let sent = layer.send_request(request, target, now);
//!                 if let Ok(tx) = &sent {
//!                     routes.client(*tx, 1);
//!                 }
//!                 leg.sent(key, sent, now);
//!             }
//!             Output::Response { tx, response } => {
//!                 let _ = layer.respond(tx, response, now);
//!             }
//!             Output::Ack { request, target } => wire.push((target, request.to_bytes())),
//!             Output::Event(LegEvent::Terminated) => routes.remove(1),
//!             Output::Event(_event) => { /* the call reacts */ }
//!             _ => {}
//!         }
//!     }
//!     while let Some(t) = layer.poll_transmit() {
//!         wire.push((t.target, t.bytes)); // socket.send_to(..)
//!     }
//!     let Some(event) = layer.poll_event() else { break };
//!     match routes.route(&event) {
//!         Some(_id) => leg.handle_event(event, now), // the leg `_id`
//!         // An INVITE without To tag is a new call: `IncomingLeg::new(config, token,
//!         // tx, request, source, now)`, then `routes.insert(leg.key(), id)` and
//!         // `routes.server(tx, id)`. Other requests for no leg: answer 481.
//!         None => {}
//!     }
//! }
//! assert_eq!(wire.len(), 1, "the INVITE");
//! let _wake_at = [leg.poll_timeout(), layer.poll_timeout()].into_iter().flatten().min();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Nothing here reads the clock or draws random numbers: tags, branches and cnonces
//! derive from the `token` the owner gives each leg, which must be unique and
//! unguessable (a random string).

pub mod anchor;
mod best;
mod error;
mod established;
mod event;
mod incoming;
mod outgoing;
mod routes;

pub use anchor::Anchor;
pub use best::Best;
pub use error::LegError;
pub use established::Established;
pub use event::{BranchId, LegEvent, Refer, Side};
pub use incoming::IncomingLeg;
pub use outgoing::{BranchState, Credentials, OutgoingLegs};
pub use routes::{DialogKey, Routes};

use crate::bytestr::ByteStr;
use crate::message::Message;
use crate::name::HeaderName;
#[cfg(doc)]
use crate::transaction::TransactionLayer;
use crate::transaction::{ClientTx, Event, SendError, ServerTx, Target, Timers, TransportKind};
use crate::uri::Uri;
use crate::via::MAGIC_COOKIE;
use bytes::Bytes;
use std::time::Instant;

/// What a leg needs to know about us.
#[derive(Debug, Clone)]
pub struct LegConfig {
    /// Our sent-by for Via (`host:port`).
    pub sent_by: String,
    /// Our Contact URI.
    pub contact: Uri,
    /// The transaction timers (T1 for the CANCEL guard of RFC 3261 §9.1).
    pub timers: Timers,
    /// The session interval we ask for and use when the peer has none (RFC 4028),
    /// in seconds; 0 disables session timers where the peer does not ask for them.
    pub session_expires: u32,
    /// The smallest session interval we accept (Min-SE).
    pub min_se: u32,
}

impl LegConfig {
    /// A configuration with the RFC timers, a 1800 s session interval and Min-SE 90.
    pub fn new(sent_by: &str, contact: Uri) -> LegConfig {
        LegConfig {
            sent_by: sent_by.to_owned(),
            contact,
            timers: Timers::default(),
            session_expires: 1800,
            min_se: 90,
        }
    }
}

/// A request a leg asked to send, named when the owner reports its [`ClientTx`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestKey(u64);

/// What a leg wants done.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Output {
    /// Start a client transaction: [`TransactionLayer::send_request`], then
    /// [`Leg::sent`] with `key` and the result.
    Request {
        /// Names the request in [`Leg::sent`].
        key: RequestKey,
        /// The request.
        request: Message,
        /// Where to send it.
        target: Target,
    },
    /// Answer a server transaction with [`TransactionLayer::respond`].
    Response {
        /// The server transaction.
        tx: ServerTx,
        /// The response.
        response: Message,
    },
    /// An ACK for a 2xx, sent outside transactions: put `request.to_bytes()` on the
    /// wire to `target`.
    Ack {
        /// The ACK.
        request: Message,
        /// Where to send it.
        target: Target,
    },
    /// Something the owner must hear about.
    Event(LegEvent),
}

/// What both kinds of leg offer to the loop that drives them.
pub trait Leg {
    /// The dialog key its messages carry (Call-ID and our tag), for [`Routes`].
    fn key(&self) -> DialogKey;
    /// Handles an event of the transaction layer that belongs to this leg.
    fn handle_event(&mut self, event: Event, now: Instant);
    /// Reports the outcome of [`TransactionLayer::send_request`] for an
    /// [`Output::Request`] (a failure counts as 503, RFC 3261 §8.1.3.1).
    fn sent(&mut self, key: RequestKey, result: Result<ClientTx, SendError>, now: Instant);
    /// Handles the leg's timers due at `now`.
    fn handle_timeout(&mut self, now: Instant);
    /// The next thing to do.
    fn poll_output(&mut self) -> Option<Output>;
    /// When [`Leg::handle_timeout`] should next be called.
    fn poll_timeout(&self) -> Option<Instant>;
    /// Whether the leg has reported [`LegEvent::Terminated`]: drop it.
    fn is_terminated(&self) -> bool;
}

/// Tags, branches, cnonces and request keys of one leg, from its token.
#[derive(Debug, Clone)]
struct Ids {
    token: String,
    scope: char,
    next: u64,
}

impl Ids {
    fn new(token: &str, scope: char) -> Ids {
        Ids {
            token: token.to_owned(),
            scope,
            next: 0,
        }
    }

    fn bump(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    /// A fresh request key; the two scopes of a leg (ringing and dialog) never meet.
    fn key(&mut self) -> RequestKey {
        let n = self.bump();
        RequestKey((n << 1) | u64::from(self.scope == 'd'))
    }

    fn branch(&mut self) -> String {
        let n = self.bump();
        format!("{MAGIC_COOKIE}{}{}{n}", self.token, self.scope)
    }

    fn cnonce(&mut self) -> String {
        let n = self.bump();
        format!("{}{}{n}", self.token, self.scope)
    }
}

fn transport_name(t: TransportKind) -> &'static str {
    match t {
        TransportKind::Udp => "UDP",
        TransportKind::Tcp => "TCP",
        TransportKind::Tls => "TLS",
        TransportKind::Ws => "WS",
    }
}

/// Our Contact towards `target`: with `transport=tcp` when the peer is reached
/// over TCP, so that its requests in the dialog come back over TCP too (RFC 3261
/// §19.1.1), unless the configured contact names a transport of its own.
fn contact_uri(config: &LegConfig, target: Target) -> Uri {
    let mut uri = config.contact.clone();
    if target.transport != TransportKind::Udp
        && let Uri::Sip(u) = &mut uri
        && u.transport().is_none()
    {
        let name = transport_name(target.transport).to_ascii_lowercase();
        u.params.set("transport", Some(ByteStr::from(name)));
    }
    uri
}

/// [`contact_uri`] as a Contact header value.
fn contact(config: &LegConfig, target: Target) -> String {
    format!("<{}>", contact_uri(config, target))
}

fn via(config: &LegConfig, target: Target, branch: &str) -> String {
    format!(
        "SIP/2.0/{} {};branch={branch};rport",
        transport_name(target.transport),
        config.sent_by
    )
}

/// Puts `sdp` (or nothing) as the body of `m`.
fn set_sdp(m: &mut Message, sdp: Option<&Bytes>) {
    let h = m.headers_mut();
    match sdp {
        Some(sdp) if !sdp.is_empty() => {
            h.set(
                HeaderName::ContentType,
                ByteStr::from_static("application/sdp"),
            );
            h.set(HeaderName::ContentLength, sdp.len().to_string());
            m.body = sdp.clone();
        }
        _ => {
            h.remove(&HeaderName::ContentType);
            h.set(HeaderName::ContentLength, ByteStr::from_static("0"));
            m.body = Bytes::new();
        }
    }
}

/// The body of `m` when it is SDP (or untyped), `None` when empty.
fn sdp_of(m: &Message) -> Option<Bytes> {
    if m.body.is_empty() {
        return None;
    }
    let sdp = match m.headers().get(&HeaderName::ContentType) {
        None => true,
        Some(ct) => ct
            .split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/sdp")),
    };
    sdp.then(|| m.body.clone())
}

/// An SDP answer refusing every stream of `offer` (all ports 0, RFC 3264 §6): what
/// an ACK must carry when a 2xx brought an offer we will not take up (a 2xx that lost,
/// a call hung up before answering), `None` when the offer does not parse.
fn refusing_answer(offer: &Bytes) -> Option<Bytes> {
    let mut answer = crate::sdp::Session::parse_body(offer).ok()?;
    for m in &mut answer.media {
        m.port = 0;
        m.port_count = None;
    }
    Some(Bytes::from(answer.to_text()))
}

/// Whether a header holding a comma-separated option list names `option`.
fn lists(m: &Message, name: &HeaderName, option: &str) -> bool {
    m.headers().all(name).any(|h| {
        h.value
            .split(',')
            .any(|o| o.trim().eq_ignore_ascii_case(option))
    })
}

/// The methods we accept in a dialog (Allow).
const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, UPDATE, INFO, OPTIONS, REFER, NOTIFY";

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

    use super::*;

    fn target(transport: TransportKind) -> Target {
        Target {
            addr: ([192, 0, 2, 1], 5060).into(),
            transport,
        }
    }

    #[test]
    fn a_peer_on_tcp_is_given_a_tcp_contact() {
        let config = LegConfig::new("192.0.2.10:5060", Uri::parse("sip:pbx@192.0.2.10").unwrap());
        assert_eq!(
            contact(&config, target(TransportKind::Udp)),
            "<sip:pbx@192.0.2.10>"
        );
        assert_eq!(
            contact(&config, target(TransportKind::Tcp)),
            "<sip:pbx@192.0.2.10;transport=tcp>"
        );
        // A contact that names its transport keeps it.
        let config = LegConfig::new(
            "192.0.2.10:5060",
            Uri::parse("sip:pbx@192.0.2.10;transport=udp").unwrap(),
        );
        assert_eq!(
            contact(&config, target(TransportKind::Tcp)),
            "<sip:pbx@192.0.2.10;transport=udp>"
        );
    }
}
