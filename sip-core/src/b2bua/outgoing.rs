//! The UAC leg: one INVITE per contact rung at once, until one answers.
//!
//! Ringing a desk phone and a mobile at once: the desk phone rings, the mobile
//! answers; the leg ACKs the mobile's 200 and cancels the desk phone.
//!
//! ```
//! use pbxkit_sip::b2bua::{BranchId, BranchState, Leg, LegConfig, LegEvent, OutgoingLegs, Output};
//! use pbxkit_sip::transaction::{Target, Timers, TransactionLayer, TransportKind};
//! use pbxkit_sip::{HeaderName, Message, Method, StatusCode, Uri};
//! use std::time::Instant;
//!
//! /// Starts the leg's requests in the layer; returns the ACKs to put on the wire
//! /// and the leg's events.
//! fn drain(leg: &mut OutgoingLegs, layer: &mut TransactionLayer, now: Instant) -> (Vec<Message>, Vec<LegEvent>) {
//!     let (mut acks, mut events) = (Vec::new(), Vec::new());
//!     while let Some(output) = leg.poll_output() {
//!         match output {
//!             Output::Request { key, request, target } => {
//!                 let sent = layer.send_request(request, target, now);
//!                 leg.sent(key, sent, now);
//!             }
//!             Output::Ack { request, .. } => acks.push(request),
//!             Output::Event(event) => events.push(event),
//!             _ => {}
//!         }
//!     }
//!     (acks, events)
//! }
//! /// What the layer puts on the wire, and where.
//! fn wire(layer: &mut TransactionLayer) -> Vec<(Target, Message)> {
//!     let sent = std::iter::from_fn(|| layer.poll_transmit());
//!     sent.map(|t| (t.target, Message::parse(t.bytes).expect("ours parses"))).collect()
//! }
//! /// The phone's answer, with its tag and Contact (the URI it was called at).
//! fn answer(invite: &Message, status: StatusCode) -> Message {
//!     let mut response = Message::response_to(invite, status, Some("callee"));
//!     let contact = invite.request_uri().map(|uri| format!("<{uri}>")).unwrap_or_default();
//!     response.headers_mut().push(HeaderName::Contact, contact);
//!     response
//! }
//!
//! let now = Instant::now();
//! let mut layer = TransactionLayer::new(Timers::default());
//! let config = LegConfig::new("192.0.2.10:5060", Uri::parse("sip:pbx@192.0.2.10")?);
//! let mut template = Message::request(Method::Invite, Uri::parse("sip:1001@pbx.example.com")?);
//! let h = template.headers_mut();
//! h.push(HeaderName::From, "<sip:1002@pbx.example.com>");
//! h.push(HeaderName::To, "<sip:1001@pbx.example.com>");
//! h.push(HeaderName::CallId, "out-1@pbx");
//! // `token` (our From tag, the seed of our branches) is random in real use.
//! let mut leg = OutgoingLegs::new(config, "t7q2", template);
//! let desk = Target { addr: "192.0.2.20:5060".parse()?, transport: TransportKind::Udp };
//! let mobile = Target { addr: "192.0.2.30:5060".parse()?, transport: TransportKind::Udp };
//! leg.add_branch(Uri::parse("sip:1001@192.0.2.20")?, desk, None, now)?;
//! leg.add_branch(Uri::parse("sip:1001@192.0.2.30")?, mobile, None, now)?;
//! drain(&mut leg, &mut layer, now);
//! let invites = wire(&mut layer);
//! let invite_to = |phone| invites.iter().find(|(to, _)| *to == phone).map(|(_, m)| m).ok_or("no INVITE");
//!
//! // The desk phone rings (a CANCEL may follow only now, RFC 3261 §9.1); the mobile answers.
//! layer.handle_message(answer(invite_to(desk)?, StatusCode::RINGING), desk, now);
//! layer.handle_message(answer(invite_to(mobile)?, StatusCode::OK), mobile, now);
//! let (mut acks, mut events) = (Vec::new(), Vec::new());
//! while let Some(event) = layer.poll_event() {
//!     leg.handle_event(event, now);
//!     let (a, e) = drain(&mut leg, &mut layer, now);
//!     acks.extend(a);
//!     events.extend(e);
//! }
//! assert!(matches!(
//!     events[..],
//!     [LegEvent::Ringing { branch: BranchId(0), .. }, LegEvent::Answered { branch: BranchId(1), .. }]
//! ));
//! // The mobile's 200 is ACKed (outside transactions: the owner sends it).
//! assert_eq!(acks.len(), 1);
//! assert_eq!(acks[0].method(), Some(&Method::Ack));
//! assert_eq!(leg.branch_state(BranchId(1)), Some(BranchState::Answered));
//! // The desk phone gets a CANCEL: the call was completed elsewhere.
//! let sent = wire(&mut layer);
//! let cancel = sent.iter().find(|(to, m)| *to == desk && m.method() == Some(&Method::Cancel));
//! let reason = cancel.and_then(|(_, m)| m.headers().get(&HeaderName::Reason));
//! assert_eq!(reason, Some("SIP;cause=200;text=\"Call completed elsewhere\""));
//! assert!(leg.dialog().is_some());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use super::best::Best;
use super::established::{Established, Setup, our_timer};
use super::event::{BranchId, LegEvent};
use super::routes::DialogKey;
use super::{Ids, Leg, LegConfig, LegError, Output, RequestKey, sdp_of, set_sdp, via};
use crate::bytestr::ByteStr;
use crate::cause::{Protocol, Reason};
use crate::dialog::{Dialog, SessionTimer};
use crate::digest;
use crate::message::Message;
use crate::method::{Method, StatusCode};
use crate::name::HeaderName;
use crate::nameaddr::NameAddr;
use crate::transaction::{ClientTx, Event, SendError, Target, cancel_for};
use crate::uri::Uri;
use crate::values::{Auth, Parameterised};
use std::collections::{HashMap, VecDeque};
use std::time::Instant;

/// The longest session interval a 422's Min-SE may ask for (a day).
const MAX_MIN_SE: u32 = 86_400;

/// Credentials for the digest challenges (401/407) of a branch's callee.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub username: String,
    /// The password.
    pub password: String,
    /// The realm they are for; `None` answers any realm.
    pub realm: Option<String>,
}

/// Where a branch is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BranchState {
    /// INVITE sent, nothing back yet.
    Calling,
    /// A provisional response came.
    Proceeding,
    /// It answered and won: the set's dialog.
    Answered,
    /// It answered after the call was decided: ACKed and hung up (RFC 3261 §13.2.2.4).
    Lost,
    /// It ended with this status (408 when nothing came, 487 when cancelled).
    Failed(StatusCode),
}

impl BranchState {
    fn is_final(self) -> bool {
        !matches!(self, BranchState::Calling | BranchState::Proceeding)
    }
}

#[derive(Debug)]
struct Branch {
    target: Target,
    invite: Message,
    key: RequestKey,
    state: BranchState,
    /// Cancel asked for (with its Reason); sent once a provisional came (§9.1).
    cancel: Option<Option<Reason>>,
    cancel_sent: bool,
    /// When a CANCEL sent without a final response since gives up (64×T1, §9.1).
    guard: Option<Instant>,
    credentials: Option<Credentials>,
    realms_tried: Vec<String>,
    retried_422: bool,
    /// The session interval asked for (after a 422, the callee's Min-SE).
    interval: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Invite(BranchId),
    Cancel,
    /// The BYE of a 2xx that lost.
    LostBye,
}

#[derive(Debug)]
struct Request {
    purpose: Purpose,
    branch: String,
    tx: Option<ClientTx>,
}

#[derive(Debug)]
enum Outcome {
    Ringing,
    Answered(BranchId, Box<Established>),
    Failed,
}

/// The outgoing leg of a call: the same INVITE to one or more contacts at once.
///
/// Every branch shares the Call-ID and our From tag (the leg's token), as a forking
/// proxy's branches do, each with its own Via branch and client transaction; a callee
/// reached twice sees a merged request (RFC 3261 §8.2.2.2) and rings once. Each branch
/// reports [`LegEvent::Trying`], [`LegEvent::Ringing`] and [`LegEvent::EarlyMedia`] (per
/// early dialog); the first 2xx wins ([`LegEvent::Answered`]) and every other branch is
/// cancelled with `Reason: SIP;cause=200;text="Call completed elsewhere"`. A 6xx ends
/// the call at once (the others are cancelled); otherwise when every branch has failed
/// the best response (§16.7, see [`Best`]) comes as [`LegEvent::Failed`].
///
/// A branch's 401/407 is answered once per realm with its [`Credentials`], a 422 once
/// with the callee's Min-SE (RFC 4028 §7.4). A 2xx that loses (after another branch
/// won, on a cancelled branch, or a second dialog of a forking proxy) is ACKed and then
/// BYEd; every retransmitted 2xx gets the same ACK again. The overall ring time (Timer
/// C) is the owner's: it calls [`OutgoingLegs::cancel_all`].
///
/// Without SDP in the template the INVITEs make a late offer: the winning 2xx carries
/// the offer ([`LegEvent::Answered`]) and its ACK waits for the owner's answer,
/// [`Established::ack_answer`]. Requests on early dialogs (an early UPDATE, a BYE) are
/// refused with 481: no early offer/answer.
#[derive(Debug)]
pub struct OutgoingLegs {
    config: LegConfig,
    token: String,
    ids: Ids,
    template: Message,
    call_id: ByteStr,
    branches: Vec<Branch>,
    requests: HashMap<RequestKey, Request>,
    by_branch: HashMap<String, RequestKey>,
    by_tx: HashMap<ClientTx, RequestKey>,
    best: Best,
    outcome: Outcome,
    given_up: bool,
    /// The ACKs of 2xx answers that lost, by their To tag.
    lost: HashMap<String, Message>,
    lost_byes: usize,
    out: VecDeque<Output>,
    terminated: bool,
}

impl OutgoingLegs {
    /// A set whose INVITEs are built from `template`: its From (our tag is added), To,
    /// Call-ID (the token when absent), body and other headers are copied; Via, CSeq,
    /// Contact, Max-Forwards (70 when absent) and the session timer headers are ours.
    /// `token` is our From tag and the seed of our branches: unique and random.
    pub fn new(config: LegConfig, token: &str, template: Message) -> OutgoingLegs {
        let call_id = template
            .call_id()
            .map(|c| c.0.clone())
            .unwrap_or_else(|_| ByteStr::from(token.to_owned()));
        OutgoingLegs {
            token: token.to_owned(),
            ids: Ids::new(token, 'b'),
            template,
            call_id,
            branches: Vec::new(),
            requests: HashMap::new(),
            by_branch: HashMap::new(),
            by_tx: HashMap::new(),
            best: Best::new(),
            outcome: Outcome::Ringing,
            given_up: false,
            lost: HashMap::new(),
            lost_byes: 0,
            out: VecDeque::new(),
            terminated: false,
            config,
        }
    }

    fn event(&mut self, e: LegEvent) {
        self.out.push_back(Output::Event(e));
    }

    /// The INVITE for a new branch to `uri`.
    fn invite(&mut self, uri: Uri, target: Target, branch: &str) -> Message {
        let t = &self.template;
        let mut from = t
            .from()
            .cloned()
            .unwrap_or_else(|_| NameAddr::new(self.config.contact.clone()));
        from.set_tag(&self.token);
        let to = t
            .to()
            .cloned()
            .unwrap_or_else(|_| NameAddr::new(uri.clone()));
        let max_forwards = t.max_forwards().and_then(Result::ok).unwrap_or(70);
        let mut m = Message::request(Method::Invite, uri);
        let h = m.headers_mut();
        h.push(HeaderName::Via, via(&self.config, target, branch));
        h.push(HeaderName::MaxForwards, max_forwards.to_string());
        h.push(HeaderName::From, from.to_string());
        h.push(HeaderName::To, to.to_string());
        h.push(HeaderName::CallId, self.call_id.clone());
        h.push(HeaderName::CSeq, ByteStr::from_static("1 INVITE"));
        h.push(HeaderName::Contact, super::contact(&self.config, target));
        for header in t.headers().iter() {
            match header.name {
                HeaderName::Via
                | HeaderName::MaxForwards
                | HeaderName::From
                | HeaderName::To
                | HeaderName::CallId
                | HeaderName::CSeq
                | HeaderName::Contact
                | HeaderName::ContentLength => {}
                _ => h.push(header.name.clone(), header.to_bytestr()),
            }
        }
        if self.config.session_expires > 0 && !t.headers().contains(&HeaderName::SessionExpires) {
            if !super::lists(t, &HeaderName::Supported, "timer") {
                h.push(HeaderName::Supported, ByteStr::from_static("timer"));
            }
            let interval = self.config.session_expires.max(self.config.min_se);
            h.push(HeaderName::SessionExpires, interval.to_string());
            h.push(HeaderName::MinSe, self.config.min_se.to_string());
        }
        h.set(HeaderName::ContentLength, t.body.len().to_string());
        m.body = t.body.clone();
        m
    }

    fn send(
        &mut self,
        purpose: Purpose,
        request: Message,
        branch: String,
        target: Target,
    ) -> RequestKey {
        let key = self.ids.key();
        self.requests.insert(
            key,
            Request {
                purpose,
                branch: branch.clone(),
                tx: None,
            },
        );
        self.by_branch.insert(branch, key);
        self.out.push_back(Output::Request {
            key,
            request,
            target,
        });
        key
    }

    /// Rings `uri` at `target` as a new branch, answering its challenges with
    /// `credentials`.
    pub fn add_branch(
        &mut self,
        uri: Uri,
        target: Target,
        credentials: Option<Credentials>,
        _now: Instant,
    ) -> Result<BranchId, LegError> {
        if !matches!(self.outcome, Outcome::Ringing) || self.given_up {
            return Err(LegError::NotRinging);
        }
        let id =
            BranchId(u16::try_from(self.branches.len()).map_err(|_| LegError::TooManyBranches)?);
        let branch = self.ids.branch();
        let invite = self.invite(uri, target, &branch);
        let key = self.send(Purpose::Invite(id), invite.clone(), branch, target);
        self.branches.push(Branch {
            target,
            invite,
            key,
            state: BranchState::Calling,
            cancel: None,
            cancel_sent: false,
            guard: None,
            credentials,
            realms_tried: Vec::new(),
            retried_422: false,
            interval: None,
        });
        Ok(id)
    }

    /// Where a branch is.
    pub fn branch_state(&self, branch: BranchId) -> Option<BranchState> {
        self.branches.get(usize::from(branch.0)).map(|b| b.state)
    }

    /// The number of branches added.
    pub fn branch_count(&self) -> usize {
        self.branches.len()
    }

    /// The branch that answered.
    pub fn answered(&self) -> Option<BranchId> {
        match &self.outcome {
            Outcome::Answered(b, _) => Some(*b),
            _ => None,
        }
    }

    /// The confirmed dialog, once a branch answered.
    pub fn dialog(&mut self) -> Option<&mut Established> {
        match &mut self.outcome {
            Outcome::Answered(_, e) => Some(e),
            _ => None,
        }
    }

    /// Stops ringing one branch: CANCEL now if it sent a provisional response, else
    /// as soon as it does (RFC 3261 §9.1); nothing when it has a final response.
    pub fn cancel(&mut self, branch: BranchId, now: Instant) -> Result<(), LegError> {
        if usize::from(branch.0) >= self.branches.len() {
            return Err(LegError::UnknownBranch);
        }
        self.cancel_branch(branch, None, now);
        Ok(())
    }

    /// Stops ringing every branch (the owner's ring timeout, the caller hung up). The
    /// set ends with [`LegEvent::Failed`] once every branch has its final response.
    pub fn cancel_all(&mut self, now: Instant) {
        self.given_up = true;
        for i in 0..self.branches.len() {
            if let Ok(b) = u16::try_from(i) {
                self.cancel_branch(BranchId(b), None, now);
            }
        }
    }

    /// Ends the call whatever its state: cancels every branch while ringing, sends BYE
    /// with the Q.850 `cause` once answered.
    pub fn hang_up(&mut self, cause: u8, now: Instant) -> Result<(), LegError> {
        match &mut self.outcome {
            Outcome::Answered(_, e) => e.hang_up(cause, now),
            Outcome::Ringing => {
                self.cancel_all(now);
                Ok(())
            }
            Outcome::Failed => Err(LegError::Ending),
        }
    }

    fn cancel_branch(&mut self, id: BranchId, reason: Option<Reason>, now: Instant) {
        let Some(b) = self.branches.get_mut(usize::from(id.0)) else {
            return;
        };
        if b.state.is_final() || b.cancel.is_some() {
            return;
        }
        b.cancel = Some(reason);
        if b.state == BranchState::Proceeding {
            self.send_cancel(id, now);
        }
    }

    fn send_cancel(&mut self, id: BranchId, now: Instant) {
        let timeout = self.config.timers.timeout();
        let Some(b) = self.branches.get_mut(usize::from(id.0)) else {
            return;
        };
        if b.cancel_sent {
            return;
        }
        b.cancel_sent = true;
        b.guard = Some(now + timeout);
        let mut cancel = cancel_for(&b.invite);
        if let Some(Some(reason)) = &b.cancel {
            cancel
                .headers_mut()
                .push(HeaderName::Reason, reason.to_string());
        }
        let target = b.target;
        // CANCEL shares the INVITE's branch: key it apart so it can't shadow the INVITE.
        let branch = format!(
            "{}#cancel",
            b.invite
                .top_via()
                .ok()
                .and_then(|v| v.branch())
                .unwrap_or("")
        );
        self.send(Purpose::Cancel, cancel, branch, target);
    }

    fn on_response(&mut self, response: &Message, now: Instant) {
        let Ok(cseq) = response.cseq() else { return };
        let method = cseq.method.clone();
        let branch = response
            .top_via()
            .ok()
            .and_then(|v| v.branch())
            .unwrap_or("")
            .to_owned();
        let ours = self.by_branch.contains_key(&branch)
            || self.by_branch.contains_key(&format!("{branch}#cancel"));
        if let Outcome::Answered(_, e) = &mut self.outcome
            && (e.knows_branch(&branch) || !ours)
        {
            // The dialog's requests, and retransmitted 2xx of its re-INVITEs.
            e.on_response(response, now);
            return;
        }
        match method {
            Method::Invite => {
                let Some(key) = self.by_branch.get(&branch).copied() else {
                    return;
                };
                if let Some(Request {
                    purpose: Purpose::Invite(b),
                    ..
                }) = self.requests.get(&key)
                {
                    let b = *b;
                    self.on_invite_response(b, key, response, now);
                }
            }
            Method::Bye | Method::Cancel => {
                let status = response.status().unwrap_or(StatusCode::OK);
                if !status.is_provisional() {
                    let key = if method == Method::Cancel {
                        format!("{branch}#cancel")
                    } else {
                        branch
                    };
                    self.finish_request(&key);
                }
            }
            _ => {}
        }
    }

    /// Forgets a finished request of the set (a CANCEL or a lost 2xx's BYE).
    fn finish_request(&mut self, branch: &str) {
        if let Some(key) = self.by_branch.remove(branch)
            && let Some(r) = self.requests.remove(&key)
        {
            if let Some(tx) = r.tx {
                self.by_tx.remove(&tx);
            }
            if r.purpose == Purpose::LostBye {
                self.lost_byes = self.lost_byes.saturating_sub(1);
            }
        }
    }

    fn on_invite_response(
        &mut self,
        id: BranchId,
        key: RequestKey,
        response: &Message,
        now: Instant,
    ) {
        let Some(status) = response.status() else {
            return;
        };
        let Some(b) = self.branches.get_mut(usize::from(id.0)) else {
            return;
        };
        if status.is_success() {
            self.on_2xx(id, response, now);
            return;
        }
        if key != b.key || b.state.is_final() {
            return; // an earlier attempt, or a late response
        }
        if status.is_provisional() {
            b.state = BranchState::Proceeding;
            if b.cancel.is_some() {
                self.send_cancel(id, now);
                return;
            }
            let to_tag = response.to().ok().and_then(|t| t.tag()).map(str::to_owned);
            match (status, sdp_of(response), to_tag) {
                (StatusCode::TRYING, _, _) => self.event(LegEvent::Trying { branch: id }),
                (_, Some(sdp), Some(to_tag)) => self.event(LegEvent::EarlyMedia {
                    branch: id,
                    to_tag,
                    sdp,
                }),
                _ => self.event(LegEvent::Ringing { branch: id, status }),
            }
            return;
        }
        let ringing = matches!(self.outcome, Outcome::Ringing) && b.cancel.is_none();
        if ringing && matches!(status.as_u16(), 401 | 407) && self.retry_auth(id, response) {
            return;
        }
        if ringing
            && status == StatusCode::SESSION_INTERVAL_TOO_SMALL
            && self.retry_422(id, response)
        {
            return;
        }
        self.branch_failed(id, status, Some(response), now);
    }

    fn on_2xx(&mut self, id: BranchId, response: &Message, now: Instant) {
        let to_tag = response
            .to()
            .ok()
            .and_then(|t| t.tag())
            .unwrap_or("")
            .to_owned();
        if let Outcome::Answered(_, e) = &mut self.outcome
            && e.dialog().id.remote_tag == to_tag.as_str()
        {
            // The winner's 2xx again: its ACK again.
            e.on_response(response, now);
            return;
        }
        if let Some(ack) = self.lost.get(&to_tag) {
            let target = self.branches.get(usize::from(id.0)).map(|b| b.target);
            if let Some(target) = target {
                self.out.push_back(Output::Ack {
                    request: ack.clone(),
                    target,
                });
            }
            return;
        }
        let Some(b) = self.branches.get(usize::from(id.0)) else {
            return;
        };
        let Ok(mut dialog) = Dialog::uac(&b.invite, response) else {
            // No Contact (or tag) to make a dialog of: the branch failed.
            self.branch_failed(id, StatusCode::BAD_GATEWAY, None, now);
            return;
        };
        let target = b.target;
        let seq = b.invite.cseq().map_or(1, |c| c.seq);
        let wins = matches!(self.outcome, Outcome::Ringing) && b.cancel.is_none() && !self.given_up;
        let interval = b.interval;
        let ack_branch = self.ids.branch();
        let mut ack = dialog.ack(seq, &via(&self.config, target, &ack_branch));
        // A late offer (our INVITE had no SDP): the 2xx carries the offer and the ACK
        // the answer, the owner's when the branch wins, a refusal when it lost.
        let offer = sdp_of(response).filter(|_| sdp_of(&self.template).is_none());
        let answer_from_owner = wins && offer.is_some();
        if !answer_from_owner {
            if let Some(refusal) = offer.as_ref().and_then(super::refusing_answer) {
                set_sdp(&mut ack, Some(&refusal));
            }
            self.out.push_back(Output::Ack {
                request: ack.clone(),
                target,
            });
        }
        if wins {
            let timer = SessionTimer::negotiate_uac(response).or_else(|| {
                our_timer(&self.config).map(|mut t| {
                    if let Some(i) = interval {
                        t.interval = t.interval.max(i);
                    }
                    t
                })
            });
            let mut e = Established::new(
                Setup {
                    dialog,
                    target,
                    config: self.config.clone(),
                    ids: Ids::new(&self.token, 'd'),
                    timer,
                    local_sdp: sdp_of(&self.template),
                    remote_sdp: sdp_of(response),
                },
                now,
            );
            if answer_from_owner {
                e.hold_ack(seq, ack);
            } else {
                e.set_last_ack(seq, ack);
            }
            if let Some(b) = self.branches.get_mut(usize::from(id.0)) {
                b.state = BranchState::Answered;
                b.guard = None;
            }
            self.outcome = Outcome::Answered(id, Box::new(e));
            self.event(LegEvent::Answered {
                branch: id,
                sdp: sdp_of(response),
            });
            for i in 0..self.branches.len() {
                if let Ok(other) = u16::try_from(i)
                    && other != id.0
                {
                    self.cancel_branch(BranchId(other), Some(Reason::answered_elsewhere()), now);
                }
            }
        } else {
            // §13.2.2.4: ACK, then BYE.
            self.lost.insert(to_tag, ack);
            let bye_branch = self.ids.branch();
            let mut bye =
                dialog.request(Method::Bye, &via(&self.config, target, &bye_branch), None);
            bye.headers_mut().push(
                HeaderName::Reason,
                Reason::q850(crate::cause::NORMAL_CLEARING, "Call completed elsewhere").to_string(),
            );
            self.lost_byes += 1;
            self.send(Purpose::LostBye, bye, bye_branch, target);
            if let Some(b) = self.branches.get_mut(usize::from(id.0))
                && !b.state.is_final()
            {
                b.state = BranchState::Lost;
                b.guard = None;
            }
            self.check_done();
        }
    }

    /// A new attempt on branch `id` with `invite` (its CSeq and Via branch renewed).
    fn retry(&mut self, id: BranchId, mut invite: Message) {
        let Some(b) = self.branches.get(usize::from(id.0)) else {
            return;
        };
        let target = b.target;
        let seq = b.invite.cseq().map_or(1, |c| c.seq).saturating_add(1);
        let branch = self.ids.branch();
        let h = invite.headers_mut();
        h.set(HeaderName::Via, via(&self.config, target, &branch));
        h.set(HeaderName::CSeq, format!("{seq} INVITE"));
        let key = self.send(Purpose::Invite(id), invite.clone(), branch, target);
        if let Some(b) = self.branches.get_mut(usize::from(id.0)) {
            b.invite = invite;
            b.key = key;
            b.state = BranchState::Calling;
        }
    }

    /// Answers a 401/407 with the branch's credentials, once per realm.
    fn retry_auth(&mut self, id: BranchId, response: &Message) -> bool {
        let cnonce = self.ids.cnonce();
        let Some(b) = self.branches.get_mut(usize::from(id.0)) else {
            return false;
        };
        let Some(creds) = &b.credentials else {
            return false;
        };
        let (challenge, answer) = if response.status() == Some(StatusCode::UNAUTHORIZED) {
            (HeaderName::WwwAuthenticate, HeaderName::Authorization)
        } else {
            (
                HeaderName::ProxyAuthenticate,
                HeaderName::ProxyAuthorization,
            )
        };
        let uri = b
            .invite
            .request_uri()
            .map(ToString::to_string)
            .unwrap_or_default();
        let mut answers = Vec::new();
        for ch in response.headers().typed_all::<Auth>(&challenge).flatten() {
            let realm = ch.param("realm").unwrap_or_default();
            if b.realms_tried.contains(&realm) || creds.realm.as_ref().is_some_and(|r| *r != realm)
            {
                continue;
            }
            if let Some(a) = digest::respond(
                &ch,
                "INVITE",
                &uri,
                &creds.username,
                &creds.password,
                &cnonce,
                1,
            ) {
                answers.push(a);
                b.realms_tried.push(realm);
            }
        }
        if answers.is_empty() {
            return false;
        }
        let mut invite = b.invite.clone();
        let h = invite.headers_mut();
        h.remove(&answer);
        for a in answers {
            h.push(answer.clone(), a.to_string());
        }
        self.retry(id, invite);
        true
    }

    /// Asks again with the Min-SE of a 422 (RFC 4028 §7.4), once.
    fn retry_422(&mut self, id: BranchId, response: &Message) -> bool {
        let Some(b) = self.branches.get_mut(usize::from(id.0)) else {
            return false;
        };
        let min_se = response
            .headers()
            .typed::<Parameterised>(&HeaderName::MinSe)
            .and_then(Result::ok)
            .and_then(|p| p.number())
            .filter(|n| (1..=MAX_MIN_SE).contains(n));
        let Some(min_se) = min_se else { return false };
        if b.retried_422 {
            return false;
        }
        b.retried_422 = true;
        b.interval = Some(min_se);
        let mut invite = b.invite.clone();
        let h = invite.headers_mut();
        h.set(HeaderName::SessionExpires, min_se.to_string());
        h.set(HeaderName::MinSe, min_se.to_string());
        self.retry(id, invite);
        true
    }

    fn branch_failed(
        &mut self,
        id: BranchId,
        status: StatusCode,
        response: Option<&Message>,
        now: Instant,
    ) {
        let Some(b) = self.branches.get_mut(usize::from(id.0)) else {
            return;
        };
        if b.state.is_final() {
            return;
        }
        b.state = BranchState::Failed(status);
        b.guard = None;
        if matches!(self.outcome, Outcome::Ringing) {
            self.best.add(status, response);
            self.event(LegEvent::BranchFailed { branch: id, status });
            if self.best.is_global_failure() {
                // §16.7: a 6xx ends the call; the others are cancelled.
                let reason = Reason {
                    protocol: Protocol::Sip,
                    cause: status.as_u16(),
                    text: None,
                };
                for i in 0..self.branches.len() {
                    if let Ok(other) = u16::try_from(i) {
                        self.cancel_branch(BranchId(other), Some(reason.clone()), now);
                    }
                }
                self.fail();
            }
        }
        self.check_done();
    }

    fn fail(&mut self) {
        self.outcome = Outcome::Failed;
        // Nothing recorded: every branch lost a race with its cancel, or never answered.
        let nothing = if self.given_up {
            StatusCode::REQUEST_TERMINATED
        } else {
            StatusCode::REQUEST_TIMEOUT
        };
        let status = self.best.status().unwrap_or(nothing);
        let response = self.best.response().map(Box::new);
        self.event(LegEvent::Failed { status, response });
    }

    /// Ends the set when every branch is done.
    fn check_done(&mut self) {
        let all_final = self.branches.iter().all(|b| b.state.is_final());
        if !all_final {
            return;
        }
        if matches!(self.outcome, Outcome::Ringing) {
            self.fail();
        }
        self.check_terminated();
    }

    fn check_terminated(&mut self) {
        if self.terminated
            || self.lost_byes > 0
            || !self.branches.iter().all(|b| b.state.is_final())
        {
            return;
        }
        match &mut self.outcome {
            Outcome::Ringing => {}
            Outcome::Failed => {
                self.terminated = true;
                self.event(LegEvent::Terminated);
            }
            Outcome::Answered(_, e) => {
                if e.terminated {
                    self.terminated = true;
                    // After the dialog's own events.
                    e.out.push_back(Output::Event(LegEvent::Terminated));
                }
            }
        }
    }

    fn on_failure(&mut self, key: RequestKey, status: StatusCode, now: Instant) {
        let Some(r) = self.requests.get(&key) else {
            return;
        };
        let branch = r.branch.clone();
        match r.purpose {
            Purpose::Invite(id) => {
                let current = self
                    .branches
                    .get(usize::from(id.0))
                    .is_some_and(|b| b.key == key);
                if current {
                    self.branch_failed(id, status, None, now);
                }
            }
            Purpose::Cancel | Purpose::LostBye => self.finish_request(&branch),
        }
    }
}

impl Leg for OutgoingLegs {
    fn key(&self) -> DialogKey {
        DialogKey {
            call_id: self.call_id.clone(),
            local_tag: ByteStr::from(self.token.clone()),
        }
    }

    fn handle_event(&mut self, event: Event, now: Instant) {
        if self.terminated {
            return;
        }
        match event {
            Event::Response { response, .. } | Event::StrayResponse { response, .. } => {
                self.on_response(&response, now);
            }
            Event::Timeout { tx } | Event::TransportError { tx } => {
                if let Some(key) = self.by_tx.get(&tx).copied() {
                    let status = if matches!(event, Event::Timeout { .. }) {
                        StatusCode::REQUEST_TIMEOUT
                    } else {
                        StatusCode::SERVICE_UNAVAILABLE
                    };
                    self.on_failure(key, status, now);
                } else if let Outcome::Answered(_, e) = &mut self.outcome
                    && e.knows_tx(tx)
                {
                    e.on_timeout(tx, now);
                }
            }
            Event::Request { tx, request, .. } => match &mut self.outcome {
                Outcome::Answered(_, e) => e.on_request(tx, request, now),
                _ => {
                    let r = Message::response_to(&request, StatusCode::CALL_DOES_NOT_EXIST, None);
                    self.out.push_back(Output::Response { tx, response: r });
                }
            },
            Event::Ack { request, .. } => {
                if let Outcome::Answered(_, e) = &mut self.outcome {
                    e.on_ack(&request);
                }
            }
            Event::Cancelled { tx, .. } => {
                if let Outcome::Answered(_, e) = &mut self.outcome {
                    e.on_cancelled(tx);
                }
            }
            Event::NoAck { .. } => {
                if let Outcome::Answered(_, e) = &mut self.outcome {
                    e.on_no_ack();
                }
            }
        }
        self.check_terminated();
    }

    fn sent(&mut self, key: RequestKey, result: Result<ClientTx, SendError>, now: Instant) {
        if let Outcome::Answered(_, e) = &mut self.outcome
            && e.knows_key(key)
        {
            e.on_sent(key, result, now);
        } else {
            match result {
                Ok(tx) => {
                    if let Some(r) = self.requests.get_mut(&key) {
                        r.tx = Some(tx);
                        self.by_tx.insert(tx, key);
                    }
                }
                Err(_) => self.on_failure(key, StatusCode::SERVICE_UNAVAILABLE, now),
            }
        }
        self.check_terminated();
    }

    fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<BranchId> = self
            .branches
            .iter()
            .enumerate()
            .filter(|(_, b)| b.guard.is_some_and(|g| g <= now))
            .filter_map(|(i, _)| u16::try_from(i).ok().map(BranchId))
            .collect();
        for id in due {
            // §9.1: no final response 64×T1 after the CANCEL.
            self.branch_failed(id, StatusCode::REQUEST_TERMINATED, None, now);
        }
        if let Outcome::Answered(_, e) = &mut self.outcome {
            e.handle_timeout(now);
        }
        self.check_terminated();
    }

    fn poll_output(&mut self) -> Option<Output> {
        if let Some(o) = self.out.pop_front() {
            return Some(o);
        }
        match &mut self.outcome {
            Outcome::Answered(_, e) => e.out.pop_front(),
            _ => None,
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let guards = self.branches.iter().filter_map(|b| b.guard).min();
        let dialog = match &self.outcome {
            Outcome::Answered(_, e) => e.poll_timeout(),
            _ => None,
        };
        [guards, dialog].into_iter().flatten().min()
    }

    fn is_terminated(&self) -> bool {
        self.terminated
    }
}
