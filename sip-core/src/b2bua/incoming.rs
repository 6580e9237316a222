//! The UAS leg: an INVITE we received.
//!
//! A call from Alice: the layer hands us her INVITE, the leg rings and answers, and
//! her ACK confirms the dialog. (An owner with several legs finds each event's leg
//! with [`Routes`](super::Routes), as [the module](super) shows.)
//!
//! ```
//! use pbxkit_sip::b2bua::{IncomingLeg, Leg, LegConfig, LegEvent, Output};
//! use pbxkit_sip::transaction::{Event, Target, Timers, TransactionLayer, TransportKind};
//! use pbxkit_sip::{Message, StatusCode, Uri};
//! use std::time::Instant;
//!
//! /// Gives the leg's responses to the layer; returns the leg's events.
//! fn drain(leg: &mut IncomingLeg, layer: &mut TransactionLayer, now: Instant) -> Vec<LegEvent> {
//!     let mut events = Vec::new();
//!     while let Some(output) = leg.poll_output() {
//!         match output {
//!             Output::Response { tx, response } => layer.respond(tx, response, now).expect("our transaction"),
//!             Output::Event(event) => events.push(event),
//!             _ => {}
//!         }
//!     }
//!     events
//! }
//!
//! let via = "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK";
//! let dialog = "Max-Forwards: 70\r\nFrom: <sip:alice@192.0.2.1>;tag=a1\r\n\
//!     Call-ID: in-1@192.0.2.1\r\nContact: <sip:alice@192.0.2.1:5060>\r\n";
//! let offer = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
//! let invite = format!(
//!     "INVITE sip:1001@192.0.2.10 SIP/2.0\r\n{via}inv1\r\n{dialog}To: <sip:1001@192.0.2.10>\r\n\
//!      CSeq: 1 INVITE\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{offer}",
//!     offer.len()
//! );
//! let now = Instant::now();
//! let mut layer = TransactionLayer::new(Timers::default());
//! let alice = Target { addr: "192.0.2.1:5060".parse()?, transport: TransportKind::Udp };
//! layer.handle_message(Message::parse(invite)?, alice, now);
//! let Some(Event::Request { tx, request, source }) = layer.poll_event() else {
//!     return Err("an INVITE".into());
//! };
//!
//! // `token` (our To tag, the seed of our branches) is random in real use.
//! let config = LegConfig::new("192.0.2.10:5060", Uri::parse("sip:1001@192.0.2.10")?);
//! let mut leg = IncomingLeg::new(config, "k3j9", tx, request, source, now);
//! assert_eq!(leg.offer().as_deref(), Some(offer.as_bytes()));
//! leg.ring(None, now)?;
//! let answer = "v=0\r\no=- 2 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n";
//! leg.answer(Some(answer.into()), now)?;
//! assert!(drain(&mut leg, &mut layer, now).is_empty());
//!
//! // On the wire to Alice: 180 and 200, both with our tag.
//! let sent = std::iter::from_fn(|| layer.poll_transmit()).map(|t| Message::parse(t.bytes));
//! let sent = sent.collect::<Result<Vec<_>, _>>()?;
//! let codes: Vec<_> = sent.iter().filter_map(Message::status).collect();
//! assert_eq!(codes, [StatusCode::RINGING, StatusCode::OK]);
//! assert_eq!(sent[1].to()?.tag(), Some("k3j9"));
//! assert_eq!(&sent[1].body[..], answer.as_bytes());
//!
//! // Her ACK confirms the call; the leg is now a dialog.
//! let ack = format!(
//!     "ACK sip:1001@192.0.2.10 SIP/2.0\r\n{via}ack1\r\n{dialog}To: <sip:1001@192.0.2.10>;tag=k3j9\r\n\
//!      CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
//! );
//! layer.handle_message(Message::parse(ack)?, alice, now);
//! let event = layer.poll_event().ok_or("the ACK")?;
//! assert!(matches!(event, Event::Ack { .. }));
//! leg.handle_event(event, now);
//! assert!(matches!(drain(&mut leg, &mut layer, now)[..], [LegEvent::Confirmed { sdp: None }]));
//! assert!(leg.dialog().is_some());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use super::established::{Established, Setup, our_timer, timer_headers_uas};
use super::event::{LegEvent, Side};
use super::routes::DialogKey;
use super::{ALLOW, Ids, Leg, LegConfig, LegError, Output, RequestKey, sdp_of, set_sdp};
use crate::bytestr::ByteStr;
use crate::cause::{Protocol, Reason, status_for_cause};
use crate::dialog::{Dialog, SessionTimer};
use crate::message::Message;
use crate::method::{Method, StatusCode};
use crate::name::HeaderName;
use crate::transaction::{ClientTx, Event, SendError, ServerTx, Target};
use bytes::Bytes;
use std::collections::VecDeque;
use std::time::Instant;

#[derive(Debug)]
enum State {
    /// Before our final response.
    Early,
    /// Answered: the dialog does the rest.
    Answered(Box<Established>),
    /// Rejected, cancelled or ended before an answer.
    Done,
}

/// The leg of a call that came in: an INVITE and its server transaction.
///
/// Send provisional responses ([`IncomingLeg::ring`], [`IncomingLeg::progress`]), then
/// [`IncomingLeg::answer`] or [`IncomingLeg::reject`]. Our To tag is the leg's token,
/// the same on every response. A CANCEL gives [`LegEvent::Cancelled`]; after the
/// answer, [`IncomingLeg::dialog`] is the confirmed dialog.
///
/// An INVITE that cannot make a dialog (no From tag or Contact: 400), requires an
/// extension other than `timer` (420 with Unsupported; no 100rel here) or asks for a
/// session interval below our Min-SE (422, RFC 4028 §6) is refused at once, with
/// [`LegEvent::Failed`] and [`LegEvent::Terminated`].
#[derive(Debug)]
pub struct IncomingLeg {
    config: LegConfig,
    token: String,
    tx: ServerTx,
    invite: Message,
    source: Target,
    dialog: Option<Dialog>,
    timer: Option<SessionTimer>,
    state: State,
    out: VecDeque<Output>,
    terminated: bool,
}

impl IncomingLeg {
    /// A leg for `invite`, received on server transaction `tx` from `source`. `token`
    /// is our To tag and the seed of our branches: unique and random.
    pub fn new(
        config: LegConfig,
        token: &str,
        tx: ServerTx,
        invite: Message,
        source: Target,
        _now: Instant,
    ) -> IncomingLeg {
        let probe = Message::response_to(&invite, StatusCode::OK, Some(token));
        let dialog = Dialog::uas(&invite, &probe).ok();
        let timer = SessionTimer::negotiate_uas(&invite, config.min_se);
        let mut leg = IncomingLeg {
            token: token.to_owned(),
            tx,
            invite,
            source,
            dialog,
            timer: None,
            state: State::Early,
            out: VecDeque::new(),
            terminated: false,
            config,
        };
        // RFC 3261 §8.2.2.3: extensions the caller requires and we lack (100rel...).
        let unsupported: Vec<String> = leg
            .invite
            .headers()
            .all(&HeaderName::Require)
            .flat_map(|h| h.value.split(','))
            .map(str::trim)
            .filter(|o| !o.is_empty() && !o.eq_ignore_ascii_case("timer"))
            .map(str::to_owned)
            .collect();
        match (timer, leg.dialog.is_some()) {
            (_, false) => leg.refuse(StatusCode::BAD_REQUEST, None),
            _ if !unsupported.is_empty() => leg.refuse(
                StatusCode::BAD_EXTENSION,
                Some((HeaderName::Unsupported, unsupported.join(", "))),
            ),
            (Err(_), true) => {
                let min_se = leg.config.min_se.to_string();
                leg.refuse(
                    StatusCode::SESSION_INTERVAL_TOO_SMALL,
                    Some((HeaderName::MinSe, min_se)),
                );
            }
            (Ok(t), true) => leg.timer = t.or_else(|| our_timer(&leg.config)),
        }
        leg
    }

    fn refuse(&mut self, status: StatusCode, header: Option<(HeaderName, String)>) {
        let mut r = Message::response_to(&self.invite, status, Some(&self.token));
        if let Some((name, value)) = header {
            r.headers_mut().push(name, value);
        }
        self.out.push_back(Output::Response {
            tx: self.tx,
            response: r,
        });
        self.event(LegEvent::Failed {
            status,
            response: None,
        });
        self.finish();
    }

    fn event(&mut self, e: LegEvent) {
        self.out.push_back(Output::Event(e));
    }

    fn finish(&mut self) {
        self.state = State::Done;
        if !self.terminated {
            self.terminated = true;
            self.event(LegEvent::Terminated);
        }
    }

    /// The INVITE.
    pub fn invite(&self) -> &Message {
        &self.invite
    }

    /// The caller's SDP offer, when the INVITE has one.
    pub fn offer(&self) -> Option<Bytes> {
        sdp_of(&self.invite)
    }

    /// The INVITE's server transaction.
    pub fn server_tx(&self) -> ServerTx {
        self.tx
    }

    /// The session timer we will answer with.
    pub fn session_timer(&self) -> Option<SessionTimer> {
        self.timer
    }

    /// The confirmed dialog, once answered (and until it ends).
    pub fn dialog(&mut self) -> Option<&mut Established> {
        match &mut self.state {
            State::Answered(e) => Some(e),
            _ => None,
        }
    }

    /// Ok while no final response was sent.
    fn early(&self) -> Result<(), LegError> {
        match self.state {
            State::Early => Ok(()),
            State::Answered(_) => Err(LegError::AlreadyAnswered),
            State::Done => Err(LegError::Ending),
        }
    }

    fn response(&self, status: StatusCode, sdp: Option<&Bytes>) -> Message {
        let mut r = Message::response_to(&self.invite, status, Some(&self.token));
        r.headers_mut().push(
            HeaderName::Contact,
            super::contact(&self.config, self.source),
        );
        set_sdp(&mut r, sdp);
        r
    }

    /// 180 Ringing, or 183 Session Progress when `sdp` (early media) is given.
    pub fn ring(&mut self, sdp: Option<Bytes>, now: Instant) -> Result<(), LegError> {
        let status = if sdp.is_some() {
            StatusCode::SESSION_PROGRESS
        } else {
            StatusCode::RINGING
        };
        self.progress(status, sdp, now)
    }

    /// A provisional response (101–199) with optional SDP.
    pub fn progress(
        &mut self,
        status: StatusCode,
        sdp: Option<Bytes>,
        _now: Instant,
    ) -> Result<(), LegError> {
        self.early()?;
        if !status.is_provisional() || status == StatusCode::TRYING {
            return Err(LegError::BadStatus(status.as_u16()));
        }
        let response = self.response(status, sdp.as_ref());
        self.out.push_back(Output::Response {
            tx: self.tx,
            response,
        });
        Ok(())
    }

    /// Answers 200 with `sdp` (our answer, or our offer when the INVITE had none: the
    /// answer then comes in the ACK, [`LegEvent::Confirmed`]). The layer retransmits
    /// the 2xx until the ACK; without one, [`LegEvent::NoAck`].
    pub fn answer(&mut self, sdp: Option<Bytes>, now: Instant) -> Result<(), LegError> {
        self.early()?;
        let Some(mut dialog) = self.dialog.take() else {
            return Err(LegError::AlreadyAnswered);
        };
        let mut response = self.response(StatusCode::OK, sdp.as_ref());
        {
            let h = response.headers_mut();
            h.push(HeaderName::Allow, ByteStr::from_static(ALLOW));
            h.push(HeaderName::Supported, ByteStr::from_static("timer"));
        }
        timer_headers_uas(&mut response, &self.invite, self.timer);
        dialog.confirm(&response);
        let seq = self.invite.cseq().map_or(0, |c| c.seq);
        let mut e = Established::new(
            Setup {
                dialog,
                target: self.source,
                config: self.config.clone(),
                ids: Ids::new(&self.token, 'd'),
                timer: self.timer,
                local_sdp: sdp,
                remote_sdp: sdp_of(&self.invite),
            },
            now,
        );
        e.expect_ack(seq);
        self.out.push_back(Output::Response {
            tx: self.tx,
            response,
        });
        self.state = State::Answered(Box::new(e));
        Ok(())
    }

    /// Refuses the call with a final failure status, an optional Reason (RFC 3326) and
    /// extra headers (Retry-After, Warning...). The leg terminates.
    pub fn reject(
        &mut self,
        status: StatusCode,
        reason: Option<Reason>,
        headers: &[(HeaderName, String)],
        _now: Instant,
    ) -> Result<(), LegError> {
        self.early()?;
        if status.as_u16() < 300 {
            return Err(LegError::BadStatus(status.as_u16()));
        }
        let mut r = Message::response_to(&self.invite, status, Some(&self.token));
        {
            let h = r.headers_mut();
            if let Some(reason) = reason {
                h.push(HeaderName::Reason, reason.to_string());
            }
            for (name, value) in headers {
                h.push(name.clone(), value.clone());
            }
        }
        self.out.push_back(Output::Response {
            tx: self.tx,
            response: r,
        });
        self.finish();
        Ok(())
    }

    /// Ends the call whatever its state: before the answer a reject with the status of
    /// the Q.850 `cause` (RFC 3398), after it a BYE.
    pub fn hang_up(&mut self, cause: u8, now: Instant) -> Result<(), LegError> {
        match &mut self.state {
            State::Early => {
                let reason = Reason {
                    protocol: Protocol::Q850,
                    cause: u16::from(cause),
                    text: None,
                };
                self.reject(status_for_cause(cause), Some(reason), &[], now)
            }
            State::Answered(e) => e.hang_up(cause, now),
            State::Done => Err(LegError::Ending),
        }
    }

    fn cancelled(&mut self, cancel: &Message) {
        let reason = cancel
            .headers()
            .typed_all::<Reason>(&HeaderName::Reason)
            .flatten()
            .next();
        let elsewhere = reason
            .as_ref()
            .is_some_and(|r| r.protocol == Protocol::Sip && r.cause == 200);
        self.event(LegEvent::Cancelled {
            cause: reason.and_then(|r| r.q850_cause()),
            elsewhere,
        });
        self.finish();
    }

    /// Reports [`LegEvent::Terminated`] once the dialog is over, after its events.
    fn check_terminated(&mut self) {
        if let State::Answered(e) = &mut self.state
            && e.terminated
            && !self.terminated
        {
            self.terminated = true;
            e.out.push_back(Output::Event(LegEvent::Terminated));
        }
    }

    fn on_early_request(&mut self, tx: ServerTx, request: Message) {
        if request.method() == Some(&Method::Bye) {
            // The caller may end an early dialog with BYE (RFC 3261 §15).
            let ok = Message::response_to(&request, StatusCode::OK, None);
            self.out.push_back(Output::Response { tx, response: ok });
            let terminated = Message::response_to(
                &self.invite,
                StatusCode::REQUEST_TERMINATED,
                Some(&self.token),
            );
            self.out.push_back(Output::Response {
                tx: self.tx,
                response: terminated,
            });
            let cause = request
                .headers()
                .typed_all::<Reason>(&HeaderName::Reason)
                .flatten()
                .find_map(|r| r.q850_cause());
            self.event(LegEvent::Ended {
                by: Side::Remote,
                cause,
            });
            self.finish();
        } else {
            let r = Message::response_to(&request, StatusCode::CALL_DOES_NOT_EXIST, None);
            self.out.push_back(Output::Response { tx, response: r });
        }
    }
}

impl Leg for IncomingLeg {
    fn key(&self) -> DialogKey {
        DialogKey {
            call_id: self
                .invite
                .call_id()
                .map(|c| c.0.clone())
                .unwrap_or_default(),
            local_tag: ByteStr::from(self.token.clone()),
        }
    }

    fn handle_event(&mut self, event: Event, now: Instant) {
        match (&mut self.state, event) {
            (State::Done, _) => {}
            (State::Early, Event::Cancelled { tx, cancel }) if tx == self.tx => {
                self.cancelled(&cancel);
            }
            (State::Answered(_), Event::Cancelled { tx, cancel }) if tx == self.tx => {
                // The CANCEL won the race with our 2xx: the layer answered 487 and
                // refused our 2xx, so no ACK (and no NoAck) will come.
                self.cancelled(&cancel);
            }
            (State::Early, Event::Request { tx, request, .. }) => {
                self.on_early_request(tx, request);
            }
            (State::Early, _) => {}
            (State::Answered(e), event) => match event {
                Event::Request { tx, request, .. } => e.on_request(tx, request, now),
                Event::Ack { request, .. } => e.on_ack(&request),
                Event::Cancelled { tx, .. } => e.on_cancelled(tx),
                Event::NoAck { .. } => e.on_no_ack(),
                Event::Response { response, .. } | Event::StrayResponse { response, .. } => {
                    e.on_response(&response, now);
                }
                Event::Timeout { tx } | Event::TransportError { tx } => e.on_timeout(tx, now),
            },
        }
        self.check_terminated();
    }

    fn sent(&mut self, key: RequestKey, result: Result<ClientTx, SendError>, now: Instant) {
        if let State::Answered(e) = &mut self.state {
            e.on_sent(key, result, now);
        }
        self.check_terminated();
    }

    fn handle_timeout(&mut self, now: Instant) {
        if let State::Answered(e) = &mut self.state {
            e.handle_timeout(now);
        }
        self.check_terminated();
    }

    fn poll_output(&mut self) -> Option<Output> {
        if let Some(o) = self.out.pop_front() {
            return Some(o);
        }
        match &mut self.state {
            State::Answered(e) => e.out.pop_front(),
            _ => None,
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            State::Answered(e) => e.poll_timeout(),
            _ => None,
        }
    }

    fn is_terminated(&self) -> bool {
        self.terminated
    }
}
