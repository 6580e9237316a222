//! A confirmed dialog side: what both kinds of leg do once answered.

use super::event::{LegEvent, Refer, Side};
use super::{ALLOW, Ids, LegConfig, Output, RequestKey, lists, sdp_of, set_sdp, via};
use crate::bytestr::ByteStr;
use crate::cause::Reason;
use crate::dialog::{Dialog, Refresher, Role, SessionTimer};
use crate::error::ValueError;
use crate::headers::HeaderValue;
use crate::message::Message;
use crate::method::{Method, StatusCode};
use crate::name::HeaderName;
use crate::nameaddr::NameAddr;
use crate::transaction::{ClientTx, SendError, ServerTx, Target};
use crate::uri::Uri;
use crate::values::Replaces;
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// The content type of SDP bodies.
const SDP: &str = "application/sdp";

/// How long to wait before trying a session refresh again when an offer/answer
/// exchange is in progress (the exchange itself refreshes the session when it ends).
const REFRESH_RETRY: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    /// Our BYE is on its way.
    Closing,
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Due {
    Refresh,
    Expiry,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// A re-INVITE or UPDATE; `refresh` when the session timer sent it.
    Offer {
        refresh: bool,
    },
    Bye,
    /// The NOTIFY that ends a REFER's subscription.
    LastNotify,
    Other,
}

#[derive(Debug)]
struct Pending {
    purpose: Purpose,
    method: Method,
    seq: u32,
    branch: String,
    tx: Option<ClientTx>,
}

#[derive(Debug)]
struct OfferIn {
    tx: ServerTx,
    request: Message,
    timer: Option<SessionTimer>,
}

/// What a leg hands its dialog when it is answered.
#[derive(Debug)]
pub(super) struct Setup {
    pub(super) dialog: Dialog,
    pub(super) target: Target,
    pub(super) config: LegConfig,
    pub(super) ids: Ids,
    pub(super) timer: Option<SessionTimer>,
    pub(super) local_sdp: Option<Bytes>,
    pub(super) remote_sdp: Option<Bytes>,
}

/// A confirmed dialog, from our side of either leg kind.
///
/// Received in-dialog requests are answered here: BYE (200, [`LegEvent::Ended`]),
/// re-INVITE and UPDATE ([`LegEvent::Offer`], or 491 while our own offer is pending,
/// RFC 3261 §14.1; a session refresh that changes nothing is answered without asking),
/// INFO, OPTIONS, NOTIFY (200) and REFER ([`LegEvent::Refer`]). The session timer of
/// RFC 4028 refreshes the session with a re-INVITE at half the interval when we are
/// the refresher, and reports [`LegEvent::SessionExpired`] when the peer is and did
/// not.
#[derive(Debug)]
pub struct Established {
    dialog: Dialog,
    target: Target,
    config: LegConfig,
    ids: Ids,
    timer: Option<SessionTimer>,
    due: Option<(Instant, Due)>,
    local_sdp: Option<Bytes>,
    remote_sdp: Option<Bytes>,
    offer_in: Option<OfferIn>,
    offer_out: Option<RequestKey>,
    refer_in: Option<(ServerTx, Message)>,
    /// The CSeq of the INVITE whose 2xx we sent and whose ACK has not come.
    awaiting_ack: Option<u32>,
    /// The cause of a hang-up waiting for the ACK of our 2xx.
    deferred_bye: Option<u8>,
    /// The ACK of a 2xx with an offer, waiting for our answer.
    held_ack: Option<(u32, Message)>,
    /// The last ACK we sent for a 2xx, sent again for its retransmissions.
    last_ack: Option<(u32, Message)>,
    pending: HashMap<RequestKey, Pending>,
    by_branch: HashMap<String, RequestKey>,
    by_tx: HashMap<ClientTx, RequestKey>,
    state: State,
    pub(super) out: VecDeque<Output>,
    pub(super) terminated: bool,
}

/// The session timer we run when the peer asked for none (we refresh).
pub(super) fn our_timer(config: &LegConfig) -> Option<SessionTimer> {
    (config.session_expires > 0).then_some(SessionTimer {
        interval: config.session_expires.max(config.min_se),
        refresher: Refresher::Local,
    })
}

/// Session-Expires (and Require: timer when the request said it supports timers) for
/// our 2xx to `request` (RFC 4028 §9).
pub(super) fn timer_headers_uas(m: &mut Message, request: &Message, t: Option<SessionTimer>) {
    let Some(t) = t else { return };
    let supports = lists(request, &HeaderName::Supported, "timer");
    let h = m.headers_mut();
    h.push(HeaderName::SessionExpires, t.header_value_uas());
    if supports {
        h.push(HeaderName::Require, ByteStr::from_static("timer"));
    }
}

/// The `o=` line of an SDP body, which changes (its version) when the session does.
fn origin(sdp: &Bytes) -> Option<&[u8]> {
    sdp.split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .find(|l| l.starts_with(b"o="))
}

impl Established {
    pub(super) fn new(setup: Setup, now: Instant) -> Established {
        let Setup {
            dialog,
            target,
            config,
            ids,
            timer,
            local_sdp,
            remote_sdp,
        } = setup;
        let mut e = Established {
            dialog,
            target,
            config,
            ids,
            timer,
            due: None,
            local_sdp,
            remote_sdp,
            offer_in: None,
            offer_out: None,
            refer_in: None,
            awaiting_ack: None,
            deferred_bye: None,
            held_ack: None,
            last_ack: None,
            pending: HashMap::new(),
            by_branch: HashMap::new(),
            by_tx: HashMap::new(),
            state: State::Open,
            out: VecDeque::new(),
            terminated: false,
        };
        e.arm_session(now);
        e
    }

    /// The dialog (ids, CSeqs, route set, remote target).
    pub fn dialog(&self) -> &Dialog {
        &self.dialog
    }

    /// Where the dialog's requests go.
    pub fn target(&self) -> Target {
        self.target
    }

    /// The negotiated session timer.
    pub fn session_timer(&self) -> Option<SessionTimer> {
        self.timer
    }

    /// The last SDP we sent (offer or answer).
    pub fn local_sdp(&self) -> Option<&Bytes> {
        self.local_sdp.as_ref()
    }

    /// The last SDP the peer sent.
    pub fn remote_sdp(&self) -> Option<&Bytes> {
        self.remote_sdp.as_ref()
    }

    /// Whether the dialog is still up (no BYE sent or received).
    pub fn is_open(&self) -> bool {
        self.state == State::Open
    }

    pub(super) fn expect_ack(&mut self, seq: u32) {
        self.awaiting_ack = Some(seq);
    }

    pub(super) fn set_last_ack(&mut self, seq: u32, ack: Message) {
        self.last_ack = Some((seq, ack));
    }

    /// The ACK of a 2xx that brought an offer, waiting for the owner's answer.
    pub(super) fn hold_ack(&mut self, seq: u32, ack: Message) {
        self.held_ack = Some((seq, ack));
    }

    /// Whether the 2xx that answered our late-offer INVITE waits for
    /// [`Established::ack_answer`].
    pub fn awaits_answer(&self) -> bool {
        self.held_ack.is_some()
    }

    /// Sends the ACK of a 2xx that carried an offer (our INVITE had none), with
    /// `sdp`, our answer; retransmissions of that 2xx get the same ACK.
    pub fn ack_answer(&mut self, sdp: Bytes, _now: Instant) -> Result<(), super::LegError> {
        let (seq, mut ack) = self
            .held_ack
            .take()
            .ok_or(super::LegError::NothingPending)?;
        set_sdp(&mut ack, Some(&sdp));
        self.local_sdp = Some(sdp);
        self.send_ack(seq, ack);
        Ok(())
    }

    fn send_ack(&mut self, seq: u32, ack: Message) {
        self.last_ack = Some((seq, ack.clone()));
        self.out.push_back(Output::Ack {
            request: ack,
            target: self.target,
        });
    }

    fn event(&mut self, e: LegEvent) {
        self.out.push_back(Output::Event(e));
    }

    /// The dialog is over; the leg owning it reports [`LegEvent::Terminated`].
    fn terminate(&mut self) {
        self.state = State::Closed;
        self.due = None;
        self.terminated = true;
    }

    fn arm_session(&mut self, now: Instant) {
        self.due = self.timer.map(|t| match t.refresh_at(now) {
            Some(at) => (at, Due::Refresh),
            None => (t.expires_at(now), Due::Expiry),
        });
    }

    fn respond(&mut self, tx: ServerTx, request: &Message, status: StatusCode) {
        let response = Message::response_to(request, status, Some(&self.dialog.id.local_tag));
        self.out.push_back(Output::Response { tx, response });
    }

    fn respond_with(
        &mut self,
        tx: ServerTx,
        request: &Message,
        status: StatusCode,
        header: (HeaderName, String),
    ) {
        let mut r = Message::response_to(request, status, Some(&self.dialog.id.local_tag));
        r.headers_mut().push(header.0, header.1);
        self.out.push_back(Output::Response { tx, response: r });
    }

    /// Builds and queues an in-dialog request.
    fn send(
        &mut self,
        method: Method,
        body: Option<(&'static str, Bytes)>,
        purpose: Purpose,
        extra: &[(HeaderName, String)],
    ) -> RequestKey {
        let branch = self.ids.branch();
        let v = via(&self.config, self.target, &branch);
        let refresh = matches!(method, Method::Invite | Method::Update);
        let contact = refresh.then(|| super::contact_uri(&self.config, self.target));
        let mut request = self.dialog.request(method.clone(), &v, contact.as_ref());
        let seq = self.dialog.local_seq;
        {
            let h = request.headers_mut();
            if refresh && let Some(t) = self.timer {
                h.push(HeaderName::Supported, ByteStr::from_static("timer"));
                h.push(HeaderName::SessionExpires, t.header_value_uac());
            }
            for (name, value) in extra {
                h.push(name.clone(), value.clone());
            }
        }
        if let Some((content_type, body)) = body {
            let h = request.headers_mut();
            h.set(HeaderName::ContentType, ByteStr::from_static(content_type));
            h.set(HeaderName::ContentLength, body.len().to_string());
            request.body = body;
        }
        let key = self.ids.key();
        self.pending.insert(
            key,
            Pending {
                purpose,
                method,
                seq,
                branch: branch.clone(),
                tx: None,
            },
        );
        self.by_branch.insert(branch, key);
        self.out.push_back(Output::Request {
            key,
            request,
            target: self.target,
        });
        key
    }

    /// Whether an offer/answer exchange is under way (either side's).
    fn exchanging(&self) -> bool {
        self.offer_in.is_some()
            || self.offer_out.is_some()
            || self.awaiting_ack.is_some()
            || self.held_ack.is_some()
    }

    fn can_offer(&self) -> Result<(), super::LegError> {
        use super::LegError;
        if self.state != State::Open {
            return Err(LegError::Ending);
        }
        if self.exchanging() {
            return Err(LegError::OfferPending);
        }
        Ok(())
    }

    /// Sends a re-INVITE offering `sdp`. The answer comes as
    /// [`LegEvent::OfferAnswered`] (and is ACKed) or [`LegEvent::OfferRejected`].
    /// (An offerless re-INVITE would need our answer in the ACK: not offered.)
    pub fn reinvite(&mut self, sdp: Bytes, _now: Instant) -> Result<(), super::LegError> {
        self.can_offer()?;
        let key = self.send(
            Method::Invite,
            Some((SDP, sdp.clone())),
            Purpose::Offer { refresh: false },
            &[],
        );
        self.local_sdp = Some(sdp);
        self.offer_out = Some(key);
        Ok(())
    }

    /// Sends a REFER (RFC 3515) asking the peer to call `refer_to` (a URI, with
    /// `?Replaces=` for an attended transfer, RFC 3891), as a transferor does. The
    /// peer's progress comes as [`LegEvent::Notify`].
    pub fn refer(&mut self, refer_to: &Uri, _now: Instant) -> Result<(), super::LegError> {
        if self.state != State::Open {
            return Err(super::LegError::Ending);
        }
        self.send(
            Method::Refer,
            None,
            Purpose::Other,
            &[(HeaderName::ReferTo, format!("<{refer_to}>"))],
        );
        Ok(())
    }

    /// Sends an UPDATE (RFC 3311) with `sdp`.
    pub fn update(&mut self, sdp: Bytes, _now: Instant) -> Result<(), super::LegError> {
        self.can_offer()?;
        let key = self.send(
            Method::Update,
            Some((SDP, sdp.clone())),
            Purpose::Offer { refresh: false },
            &[],
        );
        self.local_sdp = Some(sdp);
        self.offer_out = Some(key);
        Ok(())
    }

    /// Answers the peer's offer ([`LegEvent::Offer`]) with 200 and `sdp` (the
    /// answer; for a re-INVITE without SDP, our offer, answered in the ACK).
    pub fn accept_offer(
        &mut self,
        sdp: Option<Bytes>,
        now: Instant,
    ) -> Result<(), super::LegError> {
        let offer = self
            .offer_in
            .take()
            .ok_or(super::LegError::NothingPending)?;
        self.accept(offer, sdp, now);
        Ok(())
    }

    fn accept(&mut self, offer: OfferIn, sdp: Option<Bytes>, now: Instant) {
        let mut r = Message::response_to(
            &offer.request,
            StatusCode::OK,
            Some(&self.dialog.id.local_tag),
        );
        r.headers_mut().push(
            HeaderName::Contact,
            super::contact(&self.config, self.target),
        );
        timer_headers_uas(&mut r, &offer.request, offer.timer);
        set_sdp(&mut r, sdp.as_ref());
        if let Some(s) = sdp {
            self.local_sdp = Some(s);
        }
        if let Some(s) = sdp_of(&offer.request) {
            self.remote_sdp = Some(s);
        }
        self.timer = offer.timer;
        self.arm_session(now);
        if offer.request.method() == Some(&Method::Invite) {
            self.awaiting_ack = offer.request.cseq().ok().map(|c| c.seq);
        }
        self.out.push_back(Output::Response {
            tx: offer.tx,
            response: r,
        });
    }

    /// Refuses the peer's offer with a final failure status (488, 491...); the session
    /// stays as it was.
    pub fn reject_offer(
        &mut self,
        status: StatusCode,
        _now: Instant,
    ) -> Result<(), super::LegError> {
        if status.as_u16() < 300 {
            return Err(super::LegError::BadStatus(status.as_u16()));
        }
        let offer = self
            .offer_in
            .take()
            .ok_or(super::LegError::NothingPending)?;
        self.respond(offer.tx, &offer.request, status);
        Ok(())
    }

    /// Accepts the REFER of [`LegEvent::Refer`] with 202; report progress with
    /// [`Established::notify_refer`].
    pub fn accept_refer(&mut self, _now: Instant) -> Result<(), super::LegError> {
        let (tx, request) = self
            .refer_in
            .take()
            .ok_or(super::LegError::NothingPending)?;
        self.respond(tx, &request, StatusCode::ACCEPTED);
        Ok(())
    }

    /// Refuses the REFER of [`LegEvent::Refer`] (403, 603...).
    pub fn reject_refer(
        &mut self,
        status: StatusCode,
        _now: Instant,
    ) -> Result<(), super::LegError> {
        if status.as_u16() < 300 {
            return Err(super::LegError::BadStatus(status.as_u16()));
        }
        let (tx, request) = self
            .refer_in
            .take()
            .ok_or(super::LegError::NothingPending)?;
        self.respond(tx, &request, status);
        Ok(())
    }

    /// Sends the NOTIFY of an accepted REFER (RFC 3515 §2.4.5): `status` as a
    /// `message/sipfrag` (`SIP/2.0 200 OK`), the subscription terminated when `done`.
    pub fn notify_refer(
        &mut self,
        status: StatusCode,
        done: bool,
        _now: Instant,
    ) -> Result<(), super::LegError> {
        if self.state != State::Open {
            return Err(super::LegError::Ending);
        }
        let state = if done {
            "terminated;reason=noresource"
        } else {
            "active;expires=60"
        };
        let body = Bytes::from(format!(
            "SIP/2.0 {} {}\r\n",
            status.as_u16(),
            status.canonical_reason()
        ));
        self.send(
            Method::Notify,
            Some(("message/sipfrag;version=2.0", body)),
            if done {
                Purpose::LastNotify
            } else {
                Purpose::Other
            },
            &[
                (HeaderName::Event, "refer".to_owned()),
                (HeaderName::SubscriptionState, state.to_owned()),
            ],
        );
        Ok(())
    }

    /// Ends the dialog with a BYE carrying `Reason: Q.850;cause=<cause>`; the leg is
    /// [`LegEvent::Terminated`] when the BYE is answered (or times out).
    ///
    /// While our 2xx waits for its ACK the BYE waits too (RFC 3261 §15: not before
    /// the ACK or the server transaction's timeout).
    pub fn hang_up(&mut self, cause: u8, _now: Instant) -> Result<(), super::LegError> {
        if self.state != State::Open {
            return Err(super::LegError::Ending);
        }
        self.close_pending();
        self.state = State::Closing;
        self.due = None;
        if let Some((seq, mut ack)) = self.held_ack.take() {
            // The 2xx's offer is refused in its ACK, then the BYE follows (§13.2.2.4).
            if let Some(refusal) = self.remote_sdp.as_ref().and_then(super::refusing_answer) {
                set_sdp(&mut ack, Some(&refusal));
            }
            self.send_ack(seq, ack);
        }
        if self.awaiting_ack.is_some() {
            self.deferred_bye = Some(cause);
        } else {
            self.send_bye(cause);
        }
        Ok(())
    }

    fn send_bye(&mut self, cause: u8) {
        let reason = Reason::q850(cause, cause_text(cause));
        self.send(
            Method::Bye,
            None,
            Purpose::Bye,
            &[(HeaderName::Reason, reason.to_string())],
        );
    }

    /// Answers 487 to what the peer is waiting for: the dialog is going away.
    fn close_pending(&mut self) {
        if let Some(o) = self.offer_in.take() {
            self.respond(o.tx, &o.request, StatusCode::REQUEST_TERMINATED);
        }
        if let Some((tx, r)) = self.refer_in.take() {
            self.respond(tx, &r, StatusCode::REQUEST_TERMINATED);
        }
    }

    /// An in-dialog request from the peer.
    pub(super) fn on_request(&mut self, tx: ServerTx, request: Message, now: Instant) {
        let Some(method) = request.method().cloned() else {
            return;
        };
        if self.state == State::Closed {
            self.respond(tx, &request, StatusCode::CALL_DOES_NOT_EXIST);
            return;
        }
        let from_peer = request
            .from()
            .ok()
            .and_then(|f| f.tag())
            .is_some_and(|t| t == self.dialog.id.remote_tag.as_str());
        if !from_peer {
            // Another dialog with our tag (a forking proxy's other branch).
            self.respond(tx, &request, StatusCode::CALL_DOES_NOT_EXIST);
            return;
        }
        if let Err(e) = self.dialog.handle_request(&request) {
            self.respond(tx, &request, e.status());
            return;
        }
        match method {
            Method::Bye => {
                self.respond(tx, &request, StatusCode::OK);
                self.close_pending();
                let cause = request
                    .headers()
                    .typed_all::<Reason>(&HeaderName::Reason)
                    .flatten()
                    .find_map(|r| r.q850_cause());
                let ours = self.state == State::Closing;
                if !ours {
                    self.event(LegEvent::Ended {
                        by: Side::Remote,
                        cause,
                    });
                }
                self.terminate();
            }
            Method::Invite | Method::Update => self.on_offer(tx, request, method, now),
            Method::Info => {
                self.respond(tx, &request, StatusCode::OK);
                let content_type = request
                    .headers()
                    .get(&HeaderName::ContentType)
                    .map(str::to_owned);
                self.event(LegEvent::Info {
                    content_type,
                    body: request.body.clone(),
                });
            }
            Method::Notify => {
                self.respond(tx, &request, StatusCode::OK);
                let event = request.headers().get(&HeaderName::Event).map(str::to_owned);
                self.event(LegEvent::Notify {
                    event,
                    body: request.body.clone(),
                });
            }
            Method::Options => {
                let mut r =
                    Message::response_to(&request, StatusCode::OK, Some(&self.dialog.id.local_tag));
                let h = r.headers_mut();
                h.push(HeaderName::Allow, ByteStr::from_static(ALLOW));
                h.push(HeaderName::Accept, ByteStr::from_static("application/sdp"));
                self.out.push_back(Output::Response { tx, response: r });
            }
            Method::Refer => self.on_refer(tx, request),
            _ => self.respond_with(
                tx,
                &request,
                StatusCode::METHOD_NOT_ALLOWED,
                (HeaderName::Allow, ALLOW.to_owned()),
            ),
        }
    }

    fn on_offer(&mut self, tx: ServerTx, request: Message, method: Method, now: Instant) {
        if self.state != State::Open {
            self.respond(tx, &request, StatusCode::CALL_DOES_NOT_EXIST);
            return;
        }
        if self.offer_out.is_some() {
            // Glare (RFC 3261 §14.1, RFC 3311 §5.2).
            self.respond(tx, &request, StatusCode::REQUEST_PENDING);
            return;
        }
        if self.offer_in.is_some() || self.awaiting_ack.is_some() {
            // §14.2: an offer of the peer's own is still being answered.
            let retry = (HeaderName::RetryAfter, "1".to_owned());
            self.respond_with(tx, &request, StatusCode::SERVER_INTERNAL_ERROR, retry);
            return;
        }
        let timer = match SessionTimer::negotiate_uas(&request, self.config.min_se) {
            Ok(t) => t.or_else(|| our_timer(&self.config)),
            Err(_) => {
                let min_se = (HeaderName::MinSe, self.config.min_se.to_string());
                self.respond_with(tx, &request, StatusCode::SESSION_INTERVAL_TOO_SMALL, min_se);
                return;
            }
        };
        let sdp = sdp_of(&request);
        let offer = OfferIn { tx, request, timer };
        // A refresh that changes nothing (same origin line, RFC 3264 §8, or an UPDATE
        // without SDP) is answered here, with our SDP as it was.
        let unchanged = match (&sdp, &self.remote_sdp) {
            (Some(new), Some(old)) => origin(new).is_some() && origin(new) == origin(old),
            (None, _) => method == Method::Update,
            _ => false,
        };
        if unchanged {
            let answer = if sdp.is_some() {
                self.local_sdp.clone()
            } else {
                None
            };
            self.accept(offer, answer, now);
            return;
        }
        self.offer_in = Some(offer);
        self.event(LegEvent::Offer { method, sdp });
    }

    fn on_refer(&mut self, tx: ServerTx, request: Message) {
        if self.refer_in.is_some() || self.state != State::Open {
            self.respond(tx, &request, StatusCode::REQUEST_PENDING);
            return;
        }
        let refer_to = request
            .headers()
            .typed::<NameAddr>(&HeaderName::ReferTo)
            .and_then(Result::ok);
        let Some(refer_to) = refer_to else {
            self.respond(tx, &request, StatusCode::BAD_REQUEST);
            return;
        };
        let mut uri = refer_to.uri;
        let replaces = match replaces_of(&mut uri) {
            Ok(r) => r,
            Err(_) => {
                self.respond(tx, &request, StatusCode::BAD_REQUEST);
                return;
            }
        };
        let referred_by = request
            .headers()
            .get(&HeaderName::ReferredBy)
            .map(str::to_owned);
        self.refer_in = Some((tx, request));
        self.event(LegEvent::Refer(Refer {
            refer_to: uri,
            replaces,
            referred_by,
        }));
    }

    /// The ACK of a 2xx we sent.
    pub(super) fn on_ack(&mut self, ack: &Message) {
        let seq = ack.cseq().ok().map(|c| c.seq);
        if seq.is_none() || seq != self.awaiting_ack {
            return; // a retransmission
        }
        self.awaiting_ack = None;
        let sdp = sdp_of(ack);
        if let Some(s) = &sdp {
            self.remote_sdp = Some(s.clone());
        }
        self.event(LegEvent::Confirmed { sdp });
        if let Some(cause) = self.deferred_bye.take() {
            self.send_bye(cause);
        }
    }

    /// The layer gave up waiting for the ACK of our 2xx.
    pub(super) fn on_no_ack(&mut self) {
        if self.awaiting_ack.take().is_some() {
            self.event(LegEvent::NoAck);
        }
        if let Some(cause) = self.deferred_bye.take() {
            self.send_bye(cause);
        }
    }

    /// The peer cancelled its re-INVITE `tx` (the layer answered 487).
    pub(super) fn on_cancelled(&mut self, tx: ServerTx) {
        if self.offer_in.as_ref().is_some_and(|o| o.tx == tx) {
            self.offer_in = None;
            self.event(LegEvent::OfferCancelled);
        }
    }

    /// Whether this side sent the request with this Via branch (and still waits).
    pub(super) fn knows_branch(&self, branch: &str) -> bool {
        self.by_branch.contains_key(branch)
    }

    /// Whether `key` names one of this side's requests.
    pub(super) fn knows_key(&self, key: RequestKey) -> bool {
        self.pending.contains_key(&key)
    }

    /// Whether `tx` is one of this side's client transactions.
    pub(super) fn knows_tx(&self, tx: ClientTx) -> bool {
        self.by_tx.contains_key(&tx)
    }

    pub(super) fn on_sent(
        &mut self,
        key: RequestKey,
        result: Result<ClientTx, SendError>,
        now: Instant,
    ) {
        match result {
            Ok(tx) => {
                if let Some(p) = self.pending.get_mut(&key) {
                    p.tx = Some(tx);
                    self.by_tx.insert(tx, key);
                }
            }
            Err(_) => self.complete(key, StatusCode::SERVICE_UNAVAILABLE, None, now),
        }
    }

    pub(super) fn on_timeout(&mut self, tx: ClientTx, now: Instant) {
        if let Some(key) = self.by_tx.get(&tx).copied() {
            self.complete(key, StatusCode::REQUEST_TIMEOUT, None, now);
        }
    }

    /// A response to one of our in-dialog requests (or a 2xx retransmission).
    pub(super) fn on_response(&mut self, response: &Message, now: Instant) {
        let Some(status) = response.status() else {
            return;
        };
        let key = response
            .top_via()
            .ok()
            .and_then(|v| v.branch())
            .and_then(|b| self.by_branch.get(b).copied());
        let Some(key) = key else {
            // A 2xx retransmission after we ACKed: the same ACK again (§13.2.2.4).
            let seq = response.cseq().ok().map(|c| c.seq);
            if status.is_success()
                && let Some((ack_seq, ack)) = &self.last_ack
                && Some(*ack_seq) == seq
                && response.cseq().is_ok_and(|c| c.method == Method::Invite)
            {
                self.out.push_back(Output::Ack {
                    request: ack.clone(),
                    target: self.target,
                });
            }
            return;
        };
        if status.is_provisional() {
            return;
        }
        self.complete(key, status, Some(response), now);
    }

    /// A request of ours got its final status (from a response, a timeout, a failure to
    /// send).
    fn complete(
        &mut self,
        key: RequestKey,
        status: StatusCode,
        response: Option<&Message>,
        now: Instant,
    ) {
        let Some(p) = self.pending.remove(&key) else {
            return;
        };
        self.by_branch.remove(&p.branch);
        if let Some(tx) = p.tx {
            self.by_tx.remove(&tx);
        }
        match p.purpose {
            Purpose::Bye => self.terminate(),
            Purpose::LastNotify => self.event(LegEvent::ReferNotified),
            Purpose::Other => {}
            Purpose::Offer { refresh } => {
                if self.offer_out == Some(key) {
                    self.offer_out = None;
                }
                if self.state != State::Open {
                    return;
                }
                if status.is_success() {
                    let sdp = response.and_then(sdp_of);
                    if let Some(r) = response {
                        self.dialog.handle_response(r);
                        if p.method == Method::Invite {
                            self.ack(p.seq);
                        }
                        if let Some(t) = SessionTimer::negotiate_uac(r) {
                            self.timer = Some(t);
                        }
                    }
                    if let Some(s) = &sdp {
                        self.remote_sdp = Some(s.clone());
                    }
                    self.arm_session(now);
                    if !refresh {
                        self.event(LegEvent::OfferAnswered { sdp });
                    }
                } else if refresh {
                    match status.as_u16() {
                        // RFC 4028 §10: the session is gone.
                        408 | 481 => {
                            self.due = None;
                            self.event(LegEvent::SessionExpired);
                        }
                        491 => self.due = Some((now + self.glare_wait(), Due::Refresh)),
                        _ => self.arm_session(now),
                    }
                } else {
                    self.event(LegEvent::OfferRejected { status });
                }
            }
        }
    }

    /// How long to wait before offering again after a 491 (RFC 3261 §14.1): 2.1–4 s
    /// for the side that made the Call-ID, 0–2 s for the other, so that the two
    /// sides do not collide again. Fixed points of those ranges: no randomness here.
    pub fn glare_wait(&self) -> Duration {
        match self.dialog.role {
            Role::Uac => Duration::from_secs(3),
            Role::Uas => Duration::from_secs(1),
        }
    }

    fn ack(&mut self, seq: u32) {
        let branch = self.ids.branch();
        let v = via(&self.config, self.target, &branch);
        let ack = self.dialog.ack(seq, &v);
        self.send_ack(seq, ack);
    }

    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.due.map(|(at, _)| at)
    }

    pub(super) fn handle_timeout(&mut self, now: Instant) {
        let Some((at, due)) = self.due else { return };
        if at > now {
            return;
        }
        self.due = None;
        match due {
            Due::Expiry => self.event(LegEvent::SessionExpired),
            Due::Refresh => {
                if self.exchanging() {
                    self.due = Some((now + REFRESH_RETRY, Due::Refresh));
                    return;
                }
                let sdp = self.local_sdp.clone();
                let method = if sdp.is_some() {
                    Method::Invite
                } else {
                    Method::Update
                };
                let body = sdp.map(|s| (SDP, s));
                let key = self.send(method, body, Purpose::Offer { refresh: true }, &[]);
                self.offer_out = Some(key);
            }
        }
    }
}

/// The text of a Q.850 cause for the Reason of our BYE.
fn cause_text(cause: u8) -> &'static str {
    match cause {
        16 => "Normal call clearing",
        17 => "User busy",
        18 => "No user responding",
        19 => "No answer from user",
        21 => "Call rejected",
        31 => "Normal, unspecified",
        34 => "No circuit/channel available",
        38 => "Network out of order",
        41 => "Temporary failure",
        102 => "Recovery on timer expiry",
        _ => "Call cleared",
    }
}

/// Takes the `Replaces` URI header out of a Refer-To URI (RFC 3891 §3): `Ok(None)`
/// when there is none.
fn replaces_of(uri: &mut Uri) -> Result<Option<Replaces>, ValueError> {
    let Uri::Sip(sip) = uri else {
        return Ok(None);
    };
    let Some(value) = sip
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("Replaces"))
        .map(|h| h.value.clone().unwrap_or_default())
    else {
        return Ok(None);
    };
    sip.headers.remove("Replaces");
    let text = crate::uri::unescape(value.as_str());
    let text = String::from_utf8_lossy(&text).into_owned();
    Replaces::parse_value(&ByteStr::from(text)).map(Some)
}
