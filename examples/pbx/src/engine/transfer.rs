//! Transfers (RFC 3515 REFER, as RFC 5589 describes them). During a bridged call
//! one side, the transferor, sends REFER; the engine accepts it (202) and reports
//! progress with NOTIFYs carrying a `message/sipfrag`.
//!
//! - Blind: Refer-To names a number. The engine rings it through the dialplan
//!   with the transferee's media (the transferee hears ringback meanwhile); when it
//!   answers it takes the transferor's side of the call, which hangs up. The
//!   transferor may hang up first: the target still rings for the transferee.
//! - Attended: Refer-To carries a `Replaces` (RFC 3891) naming the transferor's
//!   dialog in a second, answered call. The other party of that call moves into
//!   this one in the transferor's place (re-INVITEd onto this call's media, the
//!   transferee re-INVITEd off hold), and the transferor leaves both calls.
//! - Semi-attended: the dialog Replaces names is a call the transferor placed that
//!   still rings. That call stops, and its number rings for the transferee as in a
//!   blind transfer.
//!
//! When the target cannot be reached the transferor is told (the final NOTIFY)
//! and keeps its call; if it has already left, the transferee is hung up.

use super::call::Caller;
use super::call::{OwnOffer, Role, Transfer};
use super::plan::Plan;
use super::{AnyLeg, Call, CallId, Directory, Engine, Event, LegId, Outcome, release};
use crate::hangup::HangupCause;
use bytes::Bytes;
use pbxkit_dialplan::Decision;
use pbxkit_sip::b2bua::{BranchId, DialogKey, Established, Leg, Refer};
use pbxkit_sip::sdp::{Direction, Session};
use pbxkit_sip::{ByteStr, StatusCode, Uri};
use std::time::Instant;

/// `sdp` with every stream sending and receiving: the party leaves hold (the
/// transferor may have held either call before it transferred).
fn active(sdp: &Bytes) -> Bytes {
    let Ok(mut session) = Session::parse_body(sdp) else {
        return sdp.clone();
    };
    session.attributes.retain(|a| {
        !matches!(
            a.name.as_str(),
            "sendrecv" | "sendonly" | "recvonly" | "inactive"
        )
    });
    for m in &mut session.media {
        m.set_direction(Direction::SendRecv);
    }
    Bytes::from(session.to_string())
}

impl<D: Directory> Engine<D> {
    /// A leg's confirmed dialog.
    fn established(&mut self, id: LegId) -> Option<&mut Established> {
        match &mut self.legs.get_mut(id.0)?.leg {
            AnyLeg::Incoming(l) => l.dialog(),
            AnyLeg::Outgoing(l) => l.dialog(),
        }
    }

    /// The media description a leg's party last gave.
    pub(super) fn remote_sdp(&mut self, id: LegId) -> Option<Bytes> {
        self.established(id)?.remote_sdp().cloned()
    }

    /// Tells the transferor how its transfer goes (RFC 3515 §2.4.5).
    fn notify_transferor(
        &mut self,
        id: Option<LegId>,
        status: StatusCode,
        done: bool,
        now: Instant,
    ) {
        if let Some(id) = id {
            self.with_dialog(id, |d, now| d.notify_refer(status, done, now), now);
        }
    }

    /// A REFER from side `from` of `call`.
    pub(super) fn refer(&mut self, call: CallId, from: LegId, refer: Refer, now: Instant) {
        let Some(c) = self.calls.get(call.0) else {
            return;
        };
        let Some(from_is_a) = c.role(from).map(|r| r == Role::A) else {
            return;
        };
        if !c.may_transfer() || c.is_application() {
            // Another exchange (a transfer, an offer) is in progress: later.
            self.with_dialog(
                from,
                |d, now| d.reject_refer(StatusCode::REQUEST_PENDING, now),
                now,
            );
            return;
        }
        self.with_dialog(from, |d, now| d.accept_refer(now), now);
        self.notify_transferor(Some(from), StatusCode::TRYING, false, now);
        match refer.replaces {
            None => {
                let number = match &refer.refer_to {
                    Uri::Sip(sip) => sip.user.as_ref().map(ToString::to_string),
                    Uri::Tel(tel) => Some(tel.number.to_string()),
                    _ => None,
                }
                .unwrap_or_default();
                self.ring_target(call, Some(from), from_is_a, &number, now);
            }
            Some(replaces) => {
                let key = |tag: &ByteStr| DialogKey {
                    call_id: replaces.call_id.clone(),
                    local_tag: tag.clone(),
                };
                // The tags as the transferor sees its dialog with us: ours is its
                // to-tag, but take either.
                let found = self
                    .routes
                    .leg(&key(&replaces.to_tag))
                    .or_else(|| self.routes.leg(&key(&replaces.from_tag)));
                self.attended(call, from, from_is_a, found, now);
            }
        }
    }

    /// Rings `number` for the caller of an answered `call` that has no other side
    /// (a queue's caller timed out): as a blind transfer whose transferor has left.
    pub(super) fn ring_for_caller(&mut self, call: CallId, number: &str, now: Instant) {
        self.ring_target(call, None, false, number, now);
    }

    /// Rings `number` for the caller of a call an application of the PBX
    /// answered: as [`Engine::ring_for_caller`], and the caller, whose media was
    /// the application's, is given the call's (a re-INVITE) when the target
    /// answers.
    pub(super) fn divert(&mut self, call: CallId, number: &str, now: Instant) {
        self.ring_target(call, None, false, number, now);
        if let Some(t) = self.calls.get_mut(call.0).and_then(|c| c.transfer.as_mut()) {
            t.reanchor = true;
        }
    }

    /// Rings `number` for the transferee (the side of `call` that is not
    /// `transferor`), with the transferee's media.
    fn ring_target(
        &mut self,
        call: CallId,
        transferor: Option<LegId>,
        transferor_is_a: bool,
        number: &str,
        now: Instant,
    ) {
        let Some(c) = self.calls.get(call.0) else {
            return;
        };
        let transferee = if transferor_is_a { c.b } else { c.a };
        let who = c.party(!transferor_is_a).unwrap_or_default().to_owned();
        let caller = c.caller_id().clone();
        // The target as the dialplan reaches it from the call's context; only
        // users and groups (their first step) are rung.
        let dialplan = self.dialplan.clone();
        let random = self.random();
        let live = self.live(random);
        let attempt = self.attempt(&live, &caller, "default", number, now);
        let step = match dialplan.decide(&attempt).map(|r| r.decision) {
            Ok(Decision::Ring(ring)) => Plan::new("default", number, &ring, 0)
                .steps
                .into_iter()
                .next(),
            _ => None,
        };
        let Some(step) = step else {
            self.transfer_failed_early(call, transferor, StatusCode::NOT_FOUND, now);
            return;
        };
        let (contacts, held, busy) = self.gather(&step);
        if contacts.is_empty() {
            let status = if busy {
                StatusCode::BUSY_HERE
            } else {
                StatusCode::TEMPORARILY_UNAVAILABLE
            };
            self.transfer_failed_early(call, transferor, status, now);
            return;
        }
        let sdp = transferee.and_then(|t| self.remote_sdp(t));
        let offer = sdp.as_ref().map(|sdp| {
            self.media
                .offer(call, !transferor_is_a, sdp)
                .unwrap_or_else(|| sdp.clone())
        });
        let who = Caller::user(&who, self.directory.name(&who));
        let (leg, branches) = self.dial(&who, number, offer, contacts, now);
        let key = leg.key();
        let Some(target) = self.add_leg(call, AnyLeg::Outgoing(Box::new(leg))) else {
            for user in held {
                release(&mut self.in_use, &user);
            }
            self.transfer_failed_early(call, transferor, StatusCode::SERVICE_UNAVAILABLE, now);
            return;
        };
        self.routes.insert(key, target);
        let ring_time = step.timeout.unwrap_or(self.config.ring_time);
        let rung: Vec<String> = branches.iter().map(|(_, u)| u.clone()).collect();
        if let Some(c) = self.calls.get_mut(call.0) {
            c.transfer = Some(Transfer {
                transferor,
                transferor_is_a,
                target,
                branches,
                holds: held,
                until: Some(now + ring_time),
                reanchor: false,
            });
        }
        let mut users: Vec<String> = Vec::new();
        for user in rung {
            if !users.contains(&user) {
                users.push(user);
            }
        }
        self.events.push_back(Event::CallRinging {
            call,
            users,
            group: None,
        });
        // The transferee hears ringback while the target rings.
        self.media.ringback(call, !transferor_is_a, sdp.as_ref());
    }

    /// The transfer could not start: the transferor is told, the call goes on;
    /// without a transferor (it left) the call ends.
    fn transfer_failed_early(
        &mut self,
        call: CallId,
        transferor: impl Into<Option<LegId>>,
        status: StatusCode,
        now: Instant,
    ) {
        match transferor.into() {
            Some(transferor) => self.notify_transferor(Some(transferor), status, true, now),
            None => self.hang_up_call(call, HangupCause::Pbx, now),
        }
    }

    /// An attended transfer: `replaced` is the transferor's leg in its second call.
    fn attended(
        &mut self,
        call: CallId,
        transferor: LegId,
        transferor_is_a: bool,
        replaced: Option<LegId>,
        now: Instant,
    ) {
        let other_call = replaced.and_then(|l| self.legs.get(l.0).map(|s| s.call));
        let (Some(replaced), Some(other_call)) = (replaced, other_call) else {
            self.transfer_failed_early(call, transferor, StatusCode::CALL_DOES_NOT_EXIST, now);
            return;
        };
        let Some(c2) = self.calls.get(other_call.0).filter(|_| other_call != call) else {
            // A call cannot replace one of its own dialogs.
            self.transfer_failed_early(call, transferor, StatusCode::CALL_DOES_NOT_EXIST, now);
            return;
        };
        if c2.is_ringing() && c2.a == Some(replaced) {
            // Semi-attended: the transferor's call still rings. It stops (the
            // transferor gets 487) and its number rings for the transferee.
            let number = c2.dialed().to_owned();
            let b = self.calls.get_mut(other_call.0).and_then(Call::stop_step);
            if let Some(b) = b
                && let Some(AnyLeg::Outgoing(leg)) = self.legs.get_mut(b.0).map(|s| &mut s.leg)
            {
                leg.cancel_all(now);
                self.dirty.push_back(b);
            }
            self.refuse(other_call, StatusCode::REQUEST_TERMINATED, now);
            self.touched.push(other_call);
            self.ring_target(call, Some(transferor), transferor_is_a, &number, now);
            return;
        }
        if c2.transfer.is_some() {
            // The second call is itself being transferred: its party is promised
            // elsewhere. The transferor may try again once that is settled.
            self.transfer_failed_early(call, transferor, StatusCode::REQUEST_PENDING, now);
            return;
        }
        let joining = match c2.role(replaced) {
            Some(Role::A) if c2.is_answered() => c2.b.map(|q| (q, c2.callee().map(str::to_owned))),
            Some(Role::B) => c2.a.map(|q| (q, Some(c2.caller().to_owned()))),
            _ => None,
        };
        let Some((joining, Some(user))) = joining else {
            self.transfer_failed_early(call, transferor, StatusCode::CALL_DOES_NOT_EXIST, now);
            return;
        };
        let joining_was_a = c2.a == Some(joining);
        self.media
            .hand_over(other_call, joining_was_a, call, transferor_is_a);
        // The joining party leaves its call for this one, with its call count; the
        // transferor's dialog in that call ends (that call is over: transferred).
        if let Some(c2) = self.calls.get_mut(other_call.0) {
            if c2.a == Some(joining) {
                c2.a = None;
            }
            if c2.b == Some(joining) {
                c2.b = None;
            }
            c2.forget(joining);
            if let Some(i) = c2.holds.iter().position(|u| *u == user) {
                c2.holds.remove(i);
            }
            c2.end(Outcome::Answered(HangupCause::Transferred));
        }
        self.hang_up_leg(replaced, pbxkit_sip::cause::NORMAL_CLEARING, now);
        self.touched.push(other_call);
        if let Some(slot) = self.legs.get_mut(joining.0) {
            slot.call = call;
        }
        let transferee = self
            .calls
            .get(call.0)
            .and_then(|c| if transferor_is_a { c.b } else { c.a });
        if let Some(c) = self.calls.get_mut(call.0) {
            c.legs += 1;
            c.transfer = Some(Transfer {
                transferor: Some(transferor),
                transferor_is_a,
                target: joining,
                branches: Vec::new(),
                holds: vec![user],
                until: None,
                reanchor: false,
            });
        }
        // The joining party gets the transferee's media, on this call's side of the
        // transferor, both ways.
        let sdp = transferee
            .and_then(|t| self.remote_sdp(t))
            .map(|s| active(&s));
        let offer = sdp.as_ref().map(|sdp| {
            self.media
                .offer(call, !transferor_is_a, sdp)
                .unwrap_or_else(|| sdp.clone())
        });
        let mut sent = false;
        if let Some(offer) = offer {
            self.with_dialog(
                joining,
                |d, now| {
                    let r = d.reinvite(offer, now);
                    sent = r.is_ok();
                    r
                },
                now,
            );
        }
        if sent {
            if let Some(c) = self.calls.get_mut(call.0) {
                c.own_offers.push((joining, OwnOffer::Join));
                c.offer_sdp = sdp;
            }
        } else {
            self.join_failed(call, StatusCode::NOT_ACCEPTABLE_HERE, now);
        }
    }

    /// The target of a blind or semi-attended transfer answered: it takes the
    /// transferor's side of the call.
    pub(super) fn target_answered(
        &mut self,
        call: CallId,
        target: LegId,
        branch: BranchId,
        sdp: Option<Bytes>,
        now: Instant,
    ) {
        let Some(c) = self.calls.get_mut(call.0) else {
            return;
        };
        let Some(t) = c.transfer.take() else {
            return;
        };
        let Some(user) = t
            .branches
            .iter()
            .find(|(b, _)| *b == branch)
            .map(|(_, u)| u.clone())
        else {
            c.transfer = Some(t);
            return;
        };
        let transferee = if t.transferor_is_a { c.b } else { c.a };
        self.media.ringback(call, !t.transferor_is_a, None);
        // The media: the target's on the transferor's side; a media that does not
        // anchor gives the transferee the target's description instead.
        let offer = self
            .calls
            .get(call.0)
            .and(transferee)
            .and_then(|p| self.remote_sdp(p));
        let anchored = sdp.as_ref().and_then(|sdp| {
            self.media
                .answer(call, t.transferor_is_a, offer.as_ref(), sdp)
        });
        match (anchored, sdp, transferee) {
            // The transferee moves onto the call's media.
            (Some(anchored), _, Some(p)) if t.reanchor => {
                self.own_offer(call, p, anchored, OwnOffer::Refresh, now);
            }
            (None, Some(sdp), Some(p)) => self.own_offer(call, p, sdp, OwnOffer::Refresh, now),
            _ => {}
        }
        self.take_place(call, &t, target, user, now);
    }

    /// `target`, answering for `user`, takes the transferor's side; the
    /// transferor is told and hung up.
    fn take_place(
        &mut self,
        call: CallId,
        t: &Transfer,
        target: LegId,
        user: String,
        now: Instant,
    ) {
        let Some(c) = self.calls.get_mut(call.0) else {
            return;
        };
        // The answerer keeps its count; the others rung give theirs back, and so
        // does the transferor.
        let mut kept = false;
        for held in &t.holds {
            if *held == user && !kept {
                kept = true;
                c.holds.push(held.clone());
            } else {
                release(&mut self.in_use, held);
            }
        }
        let transferor = c.party(t.transferor_is_a).map(str::to_owned);
        if let Some(leaving) = &transferor
            && let Some(i) = c.holds.iter().position(|u| u == leaving)
        {
            c.holds.remove(i);
            release(&mut self.in_use, leaving);
        }
        // The transferor's hold of the transferee goes with it (the PBX takes
        // the transferee off hold).
        c.held[usize::from(!t.transferor_is_a)] = false;
        if t.transferor_is_a {
            c.a = Some(target);
        } else {
            c.b = Some(target);
            c.set_callee(user.clone());
        }
        self.events.push_back(Event::CallTransferred {
            call,
            user,
            transferor,
        });
        if let Some(transferor) = t.transferor {
            // Hung up once this NOTIFY is answered: the BYE must not overtake it.
            self.notify_transferor(Some(transferor), StatusCode::OK, true, now);
            if let Some(c) = self.calls.get_mut(call.0) {
                c.leaving.push(transferor);
            }
        }
    }

    /// A re-INVITE of the PBX's own to `leg` of `call`.
    fn own_offer(&mut self, call: CallId, leg: LegId, sdp: Bytes, purpose: OwnOffer, now: Instant) {
        let mut sent = false;
        self.with_dialog(
            leg,
            |d, now| {
                let r = d.reinvite(sdp, now);
                sent = r.is_ok();
                r
            },
            now,
        );
        if sent && let Some(c) = self.calls.get_mut(call.0) {
            c.own_offers.push((leg, purpose));
        }
    }

    /// Whether `leg` answers a re-INVITE of the PBX's own: then this handles it.
    pub(super) fn own_answer(
        &mut self,
        call: CallId,
        leg: LegId,
        reply: Result<Option<Bytes>, StatusCode>,
        now: Instant,
    ) -> bool {
        let Some(c) = self.calls.get_mut(call.0) else {
            return false;
        };
        let Some(i) = c.own_offers.iter().position(|(l, _)| *l == leg) else {
            return false;
        };
        let (_, purpose) = c.own_offers.remove(i);
        match purpose {
            OwnOffer::Refresh => {
                if let Ok(Some(sdp)) = reply {
                    let a = c.a == Some(leg);
                    let _ = self.media.answer(call, a, None, &sdp);
                }
            }
            OwnOffer::Join => match reply {
                Ok(Some(sdp)) => self.joined(call, leg, sdp, now),
                Ok(None) => self.join_failed(call, StatusCode::NOT_ACCEPTABLE_HERE, now),
                Err(status) => self.join_failed(call, status, now),
            },
        }
        true
    }

    /// The joining party of an attended transfer answered our re-INVITE with
    /// `sdp`: it takes the transferor's place, and the transferee gets its media.
    fn joined(&mut self, call: CallId, joining: LegId, sdp: Bytes, now: Instant) {
        let Some(c) = self.calls.get_mut(call.0) else {
            return;
        };
        let Some(t) = c.transfer.take() else {
            return;
        };
        let offer = c.offer_sdp.take();
        let transferee = if t.transferor_is_a { c.b } else { c.a };
        let user = t.holds.first().cloned().unwrap_or_default();
        let for_transferee = self
            .media
            .answer(call, t.transferor_is_a, offer.as_ref(), &sdp)
            .unwrap_or(sdp);
        if let Some(p) = transferee {
            self.own_offer(call, p, active(&for_transferee), OwnOffer::Refresh, now);
        }
        self.take_place(call, &t, joining, user, now);
    }

    /// The joining party could not join: it is hung up, the transferor told, and
    /// the call goes on as it was.
    fn join_failed(&mut self, call: CallId, status: StatusCode, now: Instant) {
        let Some(c) = self.calls.get_mut(call.0) else {
            return;
        };
        let Some(t) = c.transfer.take() else {
            return;
        };
        c.offer_sdp = None;
        for user in &t.holds {
            release(&mut self.in_use, user);
        }
        self.hang_up_leg(t.target, pbxkit_sip::cause::NORMAL_CLEARING, now);
        let status = if status.as_u16() >= 300 {
            status
        } else {
            StatusCode::SERVER_INTERNAL_ERROR
        };
        self.notify_transferor(t.transferor, status, true, now);
    }

    /// Every branch of the target failed with `status`.
    pub(super) fn target_failed(&mut self, call: CallId, status: StatusCode, now: Instant) {
        self.end_transfer(call, status, now);
    }

    /// The target's ring time is over.
    pub(super) fn transfer_timeout(&mut self, call: CallId, now: Instant) {
        let target = self
            .calls
            .get(call.0)
            .and_then(|c| c.transfer.as_ref())
            .map(|t| t.target);
        if let Some(target) = target
            && let Some(AnyLeg::Outgoing(leg)) = self.legs.get_mut(target.0).map(|s| &mut s.leg)
        {
            leg.cancel_all(now);
            self.dirty.push_back(target);
        }
        self.end_transfer(call, StatusCode::TEMPORARILY_UNAVAILABLE, now);
    }

    /// The transfer ended without a new party: the transferor is told and keeps
    /// its call, or, when it has left, the transferee is hung up.
    fn end_transfer(&mut self, call: CallId, status: StatusCode, now: Instant) {
        let Some(c) = self.calls.get_mut(call.0) else {
            return;
        };
        let Some(t) = c.transfer.take() else {
            return;
        };
        for user in &t.holds {
            release(&mut self.in_use, user);
        }
        self.media.ringback(call, !t.transferor_is_a, None);
        if !t.branches.is_empty() {
            // The target stops ringing; the call goes on (or its end follows).
            self.events.push_back(Event::CallRinging {
                call,
                users: Vec::new(),
                group: None,
            });
        }
        match t.transferor {
            Some(transferor) => self.notify_transferor(Some(transferor), status, true, now),
            None => self.hang_up_call(
                call,
                HangupCause::HungUp {
                    party: if t.transferor_is_a {
                        crate::hangup::Party::Caller
                    } else {
                        crate::hangup::Party::Callee
                    },
                    q850: pbxkit_sip::cause::NORMAL_CLEARING,
                },
                now,
            ),
        }
    }

    /// Whether `leg`'s BYE is the transferor leaving a transfer in progress (the
    /// target still rings for the transferee): then this handles it.
    pub(super) fn transferor_left(&mut self, call: CallId, leg: LegId) -> bool {
        let Some(c) = self.calls.get_mut(call.0) else {
            return false;
        };
        let Some(t) = c.transfer.as_mut().filter(|t| t.transferor == Some(leg)) else {
            return false;
        };
        t.transferor = None;
        true
    }

    /// The call ends during a transfer: the target stops ringing (or the joining
    /// party is hung up) and the transferor is told.
    pub(super) fn abort_transfer(&mut self, call: CallId, now: Instant) {
        let Some(c) = self.calls.get_mut(call.0) else {
            return;
        };
        let Some(t) = c.transfer.take() else {
            return;
        };
        for user in &t.holds {
            release(&mut self.in_use, user);
        }
        self.media.ringback(call, !t.transferor_is_a, None);
        self.hang_up_leg(t.target, pbxkit_sip::cause::NORMAL_CLEARING, now);
        self.notify_transferor(t.transferor, StatusCode::REQUEST_TERMINATED, true, now);
    }
}
