//! Dialogs (RFC 3261 §12): created from a request and a response with a To tag
//! (early on 1xx, confirmed on 2xx), with the route set from Record-Route, the remote
//! target from Contact (refreshed by re-INVITE and UPDATE), local and remote CSeq
//! rules, and in-dialog request construction. Session timers (RFC 4028) are data the
//! transaction user acts on.
//!
//! A UAC dialog from our INVITE and its 200 OK, and the BYE it builds:
//!
//! ```
//! use pbxkit_sip::dialog::{Dialog, Role, State};
//! use pbxkit_sip::{HeaderName, Message, Method, StatusCode};
//!
//! let invite = Message::parse(
//!     "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
//!      Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKinv1\r\nMax-Forwards: 70\r\n\
//!      From: <sip:alice@atlanta.example.com>;tag=alice-1\r\nTo: <sip:bob@biloxi.example.com>\r\n\
//!      Call-ID: call-1@192.0.2.1\r\nCSeq: 1 INVITE\r\n\
//!      Contact: <sip:alice@192.0.2.1:5060>\r\nContent-Length: 0\r\n\r\n",
//! )?;
//! // Bob's 200 OK: his To tag, and the Contact in-dialog requests go to.
//! let mut ok = Message::response_to(&invite, StatusCode::OK, Some("bob-9"));
//! ok.headers_mut().push(HeaderName::Contact, "<sip:bob@198.51.100.7:5060>");
//!
//! let mut dialog = Dialog::uac(&invite, &ok)?;
//! assert_eq!((dialog.role, dialog.state), (Role::Uac, State::Confirmed));
//! let bye = dialog.request(Method::Bye, "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKbye2", None);
//! assert_eq!(bye.method(), Some(&Method::Bye));
//! assert_eq!(bye.call_id()?.0, "call-1@192.0.2.1");
//! assert_eq!(bye.from()?.tag(), Some("alice-1"));
//! assert_eq!(bye.to()?.tag(), Some("bob-9"));
//! // The next local CSeq, and the request goes to Bob's Contact.
//! assert_eq!((bye.cseq()?.seq, &bye.cseq()?.method), (2, &Method::Bye));
//! let target = bye.request_uri().map(|uri| uri.to_string());
//! assert_eq!(target.as_deref(), Some("sip:bob@198.51.100.7:5060"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::bytestr::ByteStr;
use crate::message::Message;
use crate::method::{Method, StatusCode};
use crate::name::HeaderName;
use crate::nameaddr::{Contact, NameAddr};
use crate::uri::Uri;
use crate::values::Parameterised;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A dialog's identity from our side: Call-ID, our tag, the peer's tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogId {
    /// The Call-ID.
    pub call_id: ByteStr,
    /// Our tag (From tag as UAC, To tag as UAS).
    pub local_tag: ByteStr,
    /// The peer's tag.
    pub remote_tag: ByteStr,
}

impl DialogId {
    /// The id of the dialog a received request belongs to (its To tag is ours).
    pub fn of_request(request: &Message) -> Option<DialogId> {
        Some(DialogId {
            call_id: request.call_id().ok()?.0.clone(),
            local_tag: ByteStr::from(request.to().ok()?.tag()?),
            remote_tag: ByteStr::from(request.from().ok()?.tag()?),
        })
    }

    /// The id of the dialog a received response belongs to (its From tag is ours).
    pub fn of_response(response: &Message) -> Option<DialogId> {
        Some(DialogId {
            call_id: response.call_id().ok()?.0.clone(),
            local_tag: ByteStr::from(response.from().ok()?.tag()?),
            remote_tag: ByteStr::from(response.to().ok()?.tag()?),
        })
    }
}

/// Early (after a 1xx with a tag) or confirmed (after a 2xx).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Created by a provisional response.
    Early,
    /// Created or confirmed by a 2xx.
    Confirmed,
}

/// Which side of the dialog we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// We sent the request that created it.
    Uac,
    /// We received it.
    Uas,
}

/// Why a dialog operation failed, with the answer to give when there is one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DialogError {
    /// The messages lack a tag, Call-ID, CSeq or a usable Contact.
    #[error("message can't create a dialog: {0}")]
    Malformed(&'static str),
    /// An in-dialog request with a CSeq below the last one (answer 500).
    #[error("CSeq lower than the dialog's remote sequence")]
    OutOfOrder,
    /// No dialog matches (answer 481).
    #[error("no such dialog")]
    Unknown,
    /// Session-Expires below our minimum (answer 422 with Min-SE).
    #[error("session interval below our minimum {0} s")]
    IntervalTooSmall(u32),
}

impl DialogError {
    /// The status to answer an in-dialog request with.
    pub fn status(&self) -> StatusCode {
        match self {
            DialogError::OutOfOrder => StatusCode::SERVER_INTERNAL_ERROR,
            DialogError::Unknown => StatusCode::CALL_DOES_NOT_EXIST,
            DialogError::IntervalTooSmall(_) => {
                StatusCode::new(422).unwrap_or(StatusCode::BAD_REQUEST)
            }
            DialogError::Malformed(_) => StatusCode::BAD_REQUEST,
        }
    }
}

/// Who refreshes the session (RFC 4028 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresher {
    /// We refresh (send re-INVITE or UPDATE before half the interval).
    Local,
    /// The peer refreshes; we end the session if it doesn't.
    Remote,
}

/// A negotiated session timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimer {
    /// Session interval in seconds.
    pub interval: u32,
    /// Who refreshes.
    pub refresher: Refresher,
}

impl SessionTimer {
    /// When we must refresh (half the interval, §7.4) if we are the refresher.
    pub fn refresh_at(&self, since: Instant) -> Option<Instant> {
        (self.refresher == Refresher::Local)
            .then(|| since + Duration::from_secs(u64::from(self.interval / 2)))
    }

    /// When the session expires without a refresh: the interval minus
    /// min(32 s, interval/3) (§10), for the side that does not refresh.
    pub fn expires_at(&self, since: Instant) -> Instant {
        let margin = (self.interval / 3).min(32);
        since + Duration::from_secs(u64::from(self.interval - margin))
    }

    /// As UAS: reads Session-Expires/Min-SE from an INVITE and our minimum; `Ok(None)`
    /// when the UAC asks for no timer. Below our minimum: answer 422 with Min-SE.
    pub fn negotiate_uas(
        request: &Message,
        min_se: u32,
    ) -> Result<Option<SessionTimer>, DialogError> {
        let Some(Ok(se)) = request
            .headers()
            .typed::<Parameterised>(&HeaderName::SessionExpires)
        else {
            return Ok(None);
        };
        let Some(interval) = se.number() else {
            return Ok(None);
        };
        if interval < min_se {
            return Err(DialogError::IntervalTooSmall(min_se));
        }
        // The UAC chose; if it didn't, we refresh (§9: the UAS may choose either).
        let refresher = match se.params.get("refresher").flatten() {
            Some(r) if r.eq_ignore_ascii_case("uac") => Refresher::Remote,
            _ => Refresher::Local,
        };
        Ok(Some(SessionTimer {
            interval,
            refresher,
        }))
    }

    /// As UAC: the timer a 2xx to our INVITE (or UPDATE) sets; `None` when it has no
    /// Session-Expires (the UAS does not do session timers, RFC 4028 §7.4). Without a
    /// `refresher` parameter we refresh, as when we asked for it.
    pub fn negotiate_uac(response: &Message) -> Option<SessionTimer> {
        let se = response
            .headers()
            .typed::<Parameterised>(&HeaderName::SessionExpires)?
            .ok()?;
        let interval = se.number().filter(|i| *i > 0)?;
        let refresher = match se.params.get("refresher").flatten() {
            Some(r) if r.eq_ignore_ascii_case("uas") => Refresher::Remote,
            _ => Refresher::Local,
        };
        Some(SessionTimer {
            interval,
            refresher,
        })
    }

    /// The Session-Expires value for a refresh or re-INVITE we send (we are its UAC).
    pub fn header_value_uac(&self) -> String {
        let who = match self.refresher {
            Refresher::Local => "uac",
            Refresher::Remote => "uas",
        };
        format!("{};refresher={who}", self.interval)
    }

    /// The Session-Expires value for our 2xx as UAS.
    pub fn header_value_uas(&self) -> String {
        let who = match self.refresher {
            Refresher::Local => "uas",
            Refresher::Remote => "uac",
        };
        format!("{};refresher={who}", self.interval)
    }
}

/// A dialog.
#[derive(Debug, Clone)]
pub struct Dialog {
    /// Its identity.
    pub id: DialogId,
    /// Early or confirmed.
    pub state: State,
    /// Our side.
    pub role: Role,
    /// Our CSeq: the last one we used.
    pub local_seq: u32,
    /// The peer's last CSeq, once it sent an in-dialog request.
    pub remote_seq: Option<u32>,
    /// Our URI (From of our requests).
    pub local_uri: Uri,
    /// The peer's URI (To of our requests).
    pub remote_uri: Uri,
    /// Where in-dialog requests go: the peer's Contact.
    pub remote_target: Uri,
    /// The route set (loose routing), in the order our requests use it.
    pub route_set: Vec<ByteStr>,
    /// A negotiated session timer.
    pub session_timer: Option<SessionTimer>,
}

fn contact_uri(m: &Message) -> Option<Uri> {
    m.contacts().flatten().find_map(|c| match c {
        Contact::Addr(a) => Some(a.uri),
        Contact::Star => None,
    })
}

fn record_routes(m: &Message) -> Vec<ByteStr> {
    m.headers()
        .typed_all::<NameAddr>(&HeaderName::RecordRoute)
        .flatten()
        .map(|r| ByteStr::from(format!("<{}>{}", r.uri, r.params)))
        .collect()
}

impl Dialog {
    /// As UAC: the dialog created by `response` (1xx with a To tag, or 2xx) to our `request`.
    pub fn uac(request: &Message, response: &Message) -> Result<Dialog, DialogError> {
        let code = response
            .status()
            .ok_or(DialogError::Malformed("not a response"))?;
        let id =
            DialogId::of_response(response).ok_or(DialogError::Malformed("tags or Call-ID"))?;
        let cseq = request
            .cseq()
            .map_err(|_| DialogError::Malformed("CSeq"))?
            .seq;
        let mut route_set = record_routes(response);
        // §12.1.2: the UAC uses the Record-Route list in reverse order.
        route_set.reverse();
        Ok(Dialog {
            id,
            state: if code.is_success() {
                State::Confirmed
            } else {
                State::Early
            },
            role: Role::Uac,
            local_seq: cseq,
            remote_seq: None,
            local_uri: request
                .from()
                .map_err(|_| DialogError::Malformed("From"))?
                .uri
                .clone(),
            remote_uri: request
                .to()
                .map_err(|_| DialogError::Malformed("To"))?
                .uri
                .clone(),
            remote_target: contact_uri(response).ok_or(DialogError::Malformed("Contact"))?,
            route_set,
            session_timer: None,
        })
    }

    /// As UAS: the dialog created by our `response` (with our To tag) to `request`.
    pub fn uas(request: &Message, response: &Message) -> Result<Dialog, DialogError> {
        let code = response
            .status()
            .ok_or(DialogError::Malformed("not a response"))?;
        let call_id = request
            .call_id()
            .map_err(|_| DialogError::Malformed("Call-ID"))?
            .0
            .clone();
        let remote_tag = request
            .from()
            .ok()
            .and_then(|f| f.tag().map(ByteStr::from))
            .ok_or(DialogError::Malformed("From tag"))?;
        let local_tag = response
            .to()
            .ok()
            .and_then(|t| t.tag().map(ByteStr::from))
            .ok_or(DialogError::Malformed("To tag"))?;
        Ok(Dialog {
            id: DialogId {
                call_id,
                local_tag,
                remote_tag,
            },
            state: if code.is_success() {
                State::Confirmed
            } else {
                State::Early
            },
            role: Role::Uas,
            local_seq: 0,
            remote_seq: Some(
                request
                    .cseq()
                    .map_err(|_| DialogError::Malformed("CSeq"))?
                    .seq,
            ),
            local_uri: request
                .to()
                .map_err(|_| DialogError::Malformed("To"))?
                .uri
                .clone(),
            remote_uri: request
                .from()
                .map_err(|_| DialogError::Malformed("From"))?
                .uri
                .clone(),
            remote_target: contact_uri(request).ok_or(DialogError::Malformed("Contact"))?,
            // §12.1.1: the UAS keeps the Record-Route order.
            route_set: record_routes(request),
            session_timer: None,
        })
    }

    /// A 2xx for the request that created an early dialog confirms it; as UAC the 2xx
    /// also gives the final route set and remote target.
    pub fn confirm(&mut self, response: &Message) {
        if self.state == State::Early && response.status().is_some_and(StatusCode::is_success) {
            self.state = State::Confirmed;
            if self.role == Role::Uac {
                let mut routes = record_routes(response);
                routes.reverse();
                self.route_set = routes;
                if let Some(target) = contact_uri(response) {
                    self.remote_target = target;
                }
            }
        }
    }

    /// Checks and records an in-dialog request from the peer (§12.2.2): CSeq order,
    /// and the remote target refreshed by re-INVITE/UPDATE with a Contact.
    pub fn handle_request(&mut self, request: &Message) -> Result<(), DialogError> {
        let cseq = request.cseq().map_err(|_| DialogError::Malformed("CSeq"))?;
        let method = request
            .method()
            .ok_or(DialogError::Malformed("not a request"))?;
        // ACK and CANCEL reuse the CSeq of the request they belong to.
        if !matches!(method, Method::Ack | Method::Cancel) {
            if self.remote_seq.is_some_and(|last| cseq.seq < last) {
                return Err(DialogError::OutOfOrder);
            }
            self.remote_seq = Some(cseq.seq);
        }
        if matches!(method, Method::Invite | Method::Update)
            && let Some(target) = contact_uri(request)
        {
            self.remote_target = target;
        }
        Ok(())
    }

    /// Records a 2xx to our in-dialog re-INVITE/UPDATE: it refreshes the remote target.
    pub fn handle_response(&mut self, response: &Message) {
        let refresh = response
            .cseq()
            .is_ok_and(|c| matches!(c.method, Method::Invite | Method::Update));
        if refresh
            && response.status().is_some_and(StatusCode::is_success)
            && let Some(target) = contact_uri(response)
        {
            self.remote_target = target;
        }
    }

    /// Builds an in-dialog request (BYE, re-INVITE, UPDATE, INFO, REFER, NOTIFY...)
    /// with the next local CSeq (§12.2.1.1). `via` is our sent-by with its branch, e.g.
    /// `SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK...`; `contact` is set on target
    /// refresh requests.
    pub fn request(&mut self, method: Method, via: &str, contact: Option<&Uri>) -> Message {
        self.local_seq += 1;
        self.build(method, self.local_seq, via, contact)
    }

    /// The ACK for a 2xx to an INVITE with CSeq number `invite_seq` (§13.2.2.4).
    pub fn ack(&self, invite_seq: u32, via: &str) -> Message {
        self.build(Method::Ack, invite_seq, via, None)
    }

    fn build(&self, method: Method, seq: u32, via: &str, contact: Option<&Uri>) -> Message {
        let mut m = Message::request(method.clone(), self.remote_target.clone());
        let h = m.headers_mut();
        h.push(HeaderName::Via, via);
        h.push(HeaderName::MaxForwards, ByteStr::from_static("70"));
        h.push(
            HeaderName::From,
            format!("<{}>;tag={}", self.local_uri, self.id.local_tag),
        );
        h.push(
            HeaderName::To,
            format!("<{}>;tag={}", self.remote_uri, self.id.remote_tag),
        );
        h.push(HeaderName::CallId, self.id.call_id.clone());
        h.push(HeaderName::CSeq, format!("{seq} {method}"));
        for route in &self.route_set {
            h.push(HeaderName::Route, route.clone());
        }
        if let Some(c) = contact {
            h.push(HeaderName::Contact, format!("<{c}>"));
        }
        h.push(HeaderName::ContentLength, ByteStr::from_static("0"));
        m
    }
}

/// Dialogs by id, with the 481 rule for requests that match none.
#[derive(Debug, Default)]
pub struct Dialogs {
    by_id: HashMap<DialogId, Dialog>,
}

impl Dialogs {
    /// No dialogs.
    pub fn new() -> Dialogs {
        Dialogs::default()
    }

    /// Adds (or replaces) a dialog.
    pub fn insert(&mut self, dialog: Dialog) {
        self.by_id.insert(dialog.id.clone(), dialog);
    }

    /// A dialog by id.
    pub fn get_mut(&mut self, id: &DialogId) -> Option<&mut Dialog> {
        self.by_id.get_mut(id)
    }

    /// Removes a dialog (BYE, failure): tables return to empty when calls end.
    pub fn remove(&mut self, id: &DialogId) -> Option<Dialog> {
        self.by_id.remove(id)
    }

    /// Number of dialogs.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Routes an in-dialog request (one with a To tag) to its dialog and checks it;
    /// `Err(Unknown)` means 481, `Err(OutOfOrder)` 500.
    pub fn handle_request(&mut self, request: &Message) -> Result<&mut Dialog, DialogError> {
        let id = DialogId::of_request(request).ok_or(DialogError::Unknown)?;
        let dialog = self.by_id.get_mut(&id).ok_or(DialogError::Unknown)?;
        dialog.handle_request(request)?;
        Ok(dialog)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Message {
        Message::parse(s.replace('\n', "\r\n").into_bytes()).unwrap()
    }

    const INVITE: &str = "INVITE sip:bob@biloxi.example.com SIP/2.0
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK74bf9
Max-Forwards: 70
From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl
To: Bob <sip:bob@biloxi.example.com>
Call-ID: 3848276298220188511@atlanta.example.com
CSeq: 1 INVITE
Contact: <sip:alice@client.atlanta.example.com>
Session-Expires: 1800;refresher=uac
Record-Route: <sip:p2.example.com;lr>, <sip:p1.example.com;lr>
Content-Length: 0

";

    fn ok(to_tag: &str, contact: &str) -> Message {
        parse(&format!(
            "SIP/2.0 200 OK
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK74bf9
From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl
To: Bob <sip:bob@biloxi.example.com>;tag={to_tag}
Call-ID: 3848276298220188511@atlanta.example.com
CSeq: 1 INVITE
Contact: <{contact}>
Record-Route: <sip:p2.example.com;lr>
Record-Route: <sip:p1.example.com;lr>
Content-Length: 0

"
        ))
    }

    #[test]
    fn uac_dialog_routes_in_reverse_and_builds_requests() {
        let invite = parse(INVITE);
        let mut d = Dialog::uac(&invite, &ok("8321234356", "sip:bob@192.0.2.4")).unwrap();
        assert_eq!(d.state, State::Confirmed);
        assert_eq!(
            d.route_set,
            ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
        );
        let ack = d.ack(1, "SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKack");
        assert_eq!(ack.cseq().unwrap().seq, 1);
        assert_eq!(ack.request_uri().unwrap().to_string(), "sip:bob@192.0.2.4");
        let bye = d.request(
            Method::Bye,
            "SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKbye",
            None,
        );
        let bye = Message::parse(bye.to_bytes()).unwrap();
        assert_eq!(bye.cseq().unwrap().seq, 2);
        assert_eq!(bye.from().unwrap().tag(), Some("9fxced76sl"));
        assert_eq!(bye.to().unwrap().tag(), Some("8321234356"));
        let routes: Vec<&str> = bye
            .headers()
            .all(&HeaderName::Route)
            .map(|h| h.value)
            .collect();
        assert_eq!(
            routes,
            ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
        );
    }

    #[test]
    fn early_dialog_is_confirmed_by_2xx_with_its_target() {
        let invite = parse(INVITE);
        let ringing = parse(
            &INVITE
                .replace(
                    "INVITE sip:bob@biloxi.example.com SIP/2.0",
                    "SIP/2.0 180 Ringing",
                )
                .replace(
                    "To: Bob <sip:bob@biloxi.example.com>",
                    "To: Bob <sip:bob@biloxi.example.com>;tag=x1",
                )
                .replace(
                    "Contact: <sip:alice@client.atlanta.example.com>",
                    "Contact: <sip:bob@early>",
                ),
        );
        let mut d = Dialog::uac(&invite, &ringing).unwrap();
        assert_eq!(d.state, State::Early);
        d.confirm(&ok("x1", "sip:bob@final"));
        assert_eq!(d.state, State::Confirmed);
        assert_eq!(d.remote_target.to_string(), "sip:bob@final");
    }

    #[test]
    fn uas_dialog_checks_cseq_and_refreshes_target() {
        let invite = parse(INVITE);
        let mut answer = Message::response_to(&invite, StatusCode::OK, Some("uas1"));
        answer
            .headers_mut()
            .push(HeaderName::Contact, "<sip:bob@192.0.2.4>");
        let d = Dialog::uas(&invite, &answer).unwrap();
        assert_eq!(d.route_set[0], "<sip:p2.example.com;lr>");
        let mut dialogs = Dialogs::new();
        dialogs.insert(d);
        let reinvite = parse(
            &INVITE
                .replace(
                    "To: Bob <sip:bob@biloxi.example.com>",
                    "To: Bob <sip:bob@biloxi.example.com>;tag=uas1",
                )
                .replace("CSeq: 1 INVITE", "CSeq: 2 INVITE")
                .replace("client.atlanta", "moved.atlanta"),
        );
        let dialog = dialogs.handle_request(&reinvite).unwrap();
        assert_eq!(
            dialog.remote_target.to_string(),
            "sip:alice@moved.atlanta.example.com"
        );
        assert_eq!(dialog.remote_seq, Some(2));
        let old = parse(
            &INVITE
                .replace(
                    "To: Bob <sip:bob@biloxi.example.com>",
                    "To: Bob <sip:bob@biloxi.example.com>;tag=uas1",
                )
                .replace("INVITE sip", "INFO sip")
                .replace("CSeq: 1 INVITE", "CSeq: 1 INFO"),
        );
        assert_eq!(
            dialogs.handle_request(&old).unwrap_err(),
            DialogError::OutOfOrder
        );
        assert_eq!(
            DialogError::OutOfOrder.status(),
            StatusCode::SERVER_INTERNAL_ERROR
        );
        let stranger = parse(&INVITE.replace(
            "To: Bob <sip:bob@biloxi.example.com>",
            "To: Bob <sip:bob@biloxi.example.com>;tag=nobody",
        ));
        let e = dialogs.handle_request(&stranger).unwrap_err();
        assert_eq!(e.status(), StatusCode::CALL_DOES_NOT_EXIST);
        let id = DialogId::of_request(&reinvite).unwrap();
        assert!(dialogs.remove(&id).is_some());
        assert!(dialogs.is_empty());
    }

    #[test]
    fn session_timers() {
        let invite = parse(INVITE);
        let t = SessionTimer::negotiate_uas(&invite, 90).unwrap().unwrap();
        assert_eq!(
            t,
            SessionTimer {
                interval: 1800,
                refresher: Refresher::Remote
            }
        );
        assert_eq!(t.header_value_uas(), "1800;refresher=uac");
        let now = Instant::now();
        assert_eq!(t.refresh_at(now), None);
        assert_eq!(t.expires_at(now), now + Duration::from_secs(1800 - 32));
        let short =
            parse(&INVITE.replace("Session-Expires: 1800;refresher=uac", "Session-Expires: 60"));
        assert_eq!(
            SessionTimer::negotiate_uas(&short, 90),
            Err(DialogError::IntervalTooSmall(90))
        );
        let ours = parse(&INVITE.replace(
            "Session-Expires: 1800;refresher=uac",
            "Session-Expires: 600",
        ));
        let t = SessionTimer::negotiate_uas(&ours, 90).unwrap().unwrap();
        assert_eq!(t.refresh_at(now), Some(now + Duration::from_secs(300)));
        let none = parse(&INVITE.replace("Session-Expires: 1800;refresher=uac\n", ""));
        assert_eq!(SessionTimer::negotiate_uas(&none, 90), Ok(None));
        // As UAC, from the 2xx: the UAS named a refresher, or left it to us.
        let ok = |se: &str| {
            parse(&format!(
                "SIP/2.0 200 OK\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\nFrom: <sip:a@h>;tag=1\n\
                 To: <sip:b@h>;tag=2\nCall-ID: c\nCSeq: 1 INVITE\n{se}Content-Length: 0\n\n"
            ))
        };
        let uas = SessionTimer::negotiate_uac(&ok("Session-Expires: 900;refresher=uas\n"));
        assert_eq!(
            uas,
            Some(SessionTimer {
                interval: 900,
                refresher: Refresher::Remote
            })
        );
        assert_eq!(uas.unwrap().header_value_uac(), "900;refresher=uas");
        // `x` is the compact form.
        let ours = SessionTimer::negotiate_uac(&ok("x: 90\n"));
        assert_eq!(ours.map(|t| t.refresher), Some(Refresher::Local));
        assert_eq!(SessionTimer::negotiate_uac(&ok("")), None);
        assert_eq!(
            SessionTimer::negotiate_uac(&ok("Session-Expires: soon\n")),
            None
        );
    }
}
