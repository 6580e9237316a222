//! What a call does with its legs' events once it rings: answer and bridge,
//! relay offers both ways, end both legs together.

use super::call::Role;
use super::plan::Ending;
use super::{AnyLeg, Call, CallId, Directory, Engine, Event, LegId, Outcome, Unanswered, release};
use crate::hangup::HangupCause;
use bytes::Bytes;
use pbxkit_sip::StatusCode;
use pbxkit_sip::b2bua::{IncomingLeg, LegEvent};
use pbxkit_sip::sdp::{Direction, Session};
use std::time::Instant;

impl<D: Directory> Engine<D> {
    /// Ends every leg of `call` for `cause`.
    pub(super) fn hang_up_call(&mut self, call: CallId, cause: HangupCause, now: Instant) {
        self.abort_transfer(call, now);
        let Some(c) = self.calls.get_mut(call.0) else {
            return;
        };
        let answered = c.is_answered();
        c.stop_ringing();
        c.end(if answered {
            Outcome::Answered(cause)
        } else {
            Outcome::Unanswered(Unanswered::Refused(StatusCode::REQUEST_TERMINATED))
        });
        for id in [c.a, c.b].into_iter().flatten() {
            self.hang_up_leg(id, cause.q850(), now);
        }
    }

    pub(super) fn hang_up_leg(&mut self, id: LegId, q850: u8, now: Instant) {
        if let Some(slot) = self.legs.get_mut(id.0) {
            let _ = match &mut slot.leg {
                AnyLeg::Incoming(l) => l.hang_up(q850, now),
                AnyLeg::Outgoing(l) => l.hang_up(q850, now),
            };
            self.dirty.push_back(id);
        }
    }

    /// What a call does when one of its legs tells it something.
    pub(super) fn leg_event(&mut self, call: CallId, id: LegId, event: LegEvent, now: Instant) {
        let Some(c) = self.calls.get(call.0) else {
            // The call is over; a branch that answers after all is hung up.
            if matches!(event, LegEvent::Answered { .. }) {
                self.hang_up_leg(id, pbxkit_sip::cause::NORMAL_CLEARING, now);
            }
            return;
        };
        if matches!(event, LegEvent::ReferNotified) {
            if c.leaving.contains(&id) {
                self.hang_up_leg(id, pbxkit_sip::cause::NORMAL_CLEARING, now);
            }
            return;
        }
        if self.is_agent_leg(call, id) {
            self.agent_event(call, id, event, now);
            return;
        }
        let Some(c) = self.calls.get(call.0) else {
            return;
        };
        let Some(role) = c.role(id) else {
            // A step the call has moved on from, answered after all: nobody is
            // there for it.
            if matches!(event, LegEvent::Answered { .. }) {
                self.hang_up_leg(id, pbxkit_sip::cause::NORMAL_CLEARING, now);
            }
            return;
        };
        let other = match role {
            Role::A => c.b,
            Role::B => c.a,
            Role::Target => None,
        };
        if role == Role::Target {
            self.target_event(call, id, event, now);
            return;
        }
        match (role, event) {
            (Role::B, LegEvent::Ringing { .. }) => {
                self.with_a(call, |a, now| a.ring(None, now), now)
            }
            (Role::B, LegEvent::EarlyMedia { sdp, .. }) => {
                let sdp = self.anchor_answer(call, false, &sdp);
                self.with_a(call, |a, now| a.ring(Some(sdp), now), now)
            }
            (Role::B, LegEvent::Answered { branch, sdp }) => {
                if let Some(c) = self.calls.get_mut(call.0)
                    && let Some(callee) = c.answered(branch)
                {
                    // A group's history learns who answered, and its queue_log.
                    if let Some(group) = c.plan.as_ref().and_then(|p| p.group.clone()) {
                        self.history.answered(&group, &callee);
                        c.group = Some(group);
                        self.group_connected(call, &callee, now);
                    }
                    let Some(c) = self.calls.get_mut(call.0) else {
                        return;
                    };
                    // The answerer keeps its count for the call; the others' go back.
                    let mut kept = false;
                    for user in std::mem::take(&mut c.ringing_holds) {
                        if user == callee && !kept {
                            kept = true;
                            c.holds.push(user);
                        } else {
                            release(&mut self.in_use, &user);
                        }
                    }
                    self.events.push_back(Event::CallAnswered { call, callee });
                    let sdp = sdp.map(|sdp| self.anchor_answer(call, false, &sdp));
                    self.with_a(call, |a, now| a.answer(sdp, now), now);
                } else {
                    // Answered after the caller left or the ring time ran out.
                    self.hang_up_leg(id, pbxkit_sip::cause::NORMAL_CLEARING, now);
                }
            }
            // Every branch of the step failed (unless the call already moved on:
            // caller gone, ring time over).
            (Role::B, LegEvent::Failed { status, .. })
                if self.calls.get(call.0).is_some_and(Call::is_ringing) =>
            {
                if let Some(c) = self.calls.get_mut(call.0) {
                    c.stop_step();
                }
                self.step_ended(call, status, Ending::of(status), now);
            }
            (Role::A, LegEvent::Cancelled { .. }) => {
                if let Some(c) = self.calls.get_mut(call.0) {
                    c.stop_ringing();
                    c.end(Outcome::Unanswered(Unanswered::Cancelled));
                }
                if let Some(b) = other {
                    self.hang_up_leg(b, pbxkit_sip::cause::NORMAL_CLEARING, now);
                }
            }
            (Role::A, LegEvent::Failed { status, .. }) => {
                // Refused by the leg itself (400, 420, 422): nothing was rung.
                if let Some(c) = self.calls.get_mut(call.0) {
                    c.end(Outcome::Unanswered(Unanswered::Refused(status)));
                }
            }
            (_, LegEvent::NoAck) => self.hang_up_call(call, HangupCause::NoAck, now),
            (_, LegEvent::SessionExpired) => {
                self.hang_up_call(call, HangupCause::SessionExpired, now)
            }
            (_, LegEvent::Ended { .. }) if self.transferor_left(call, id) => {
                // The target still rings for the transferee.
            }
            (_, LegEvent::Ended { cause, .. }) => {
                self.abort_transfer(call, now);
                let q850 = cause.unwrap_or(pbxkit_sip::cause::NORMAL_CLEARING);
                let party = match role {
                    Role::A => crate::hangup::Party::Caller,
                    _ => crate::hangup::Party::Callee,
                };
                if let Some(c) = self.calls.get_mut(call.0) {
                    c.stop_ringing();
                    if c.is_answered() {
                        c.end(Outcome::Answered(HangupCause::HungUp { party, q850 }));
                    } else {
                        c.end(Outcome::Unanswered(Unanswered::Cancelled));
                    }
                }
                if let Some(other) = other {
                    self.hang_up_leg(other, q850, now);
                }
            }
            (_, LegEvent::Offer { .. })
                if self
                    .calls
                    .get(call.0)
                    .is_some_and(|c| c.is_application() || c.is_queued()) =>
            {
                self.application_offer(id, now)
            }
            (_, LegEvent::Offer { sdp, .. }) => self.relay_offer(call, id, other, sdp, now),
            (_, LegEvent::OfferAnswered { sdp }) => self.offer_reply(call, id, other, Ok(sdp), now),
            (_, LegEvent::OfferRejected { status }) => {
                self.offer_reply(call, id, other, Err(status), now)
            }
            (_, LegEvent::Refer(refer)) => self.refer(call, id, refer, now),
            _ => {}
        }
    }

    /// A leg's answer to an offer: one of the PBX's own re-INVITEs, or one relayed
    /// from the other leg.
    fn offer_reply(
        &mut self,
        call: CallId,
        id: LegId,
        other: Option<LegId>,
        reply: Result<Option<Bytes>, StatusCode>,
        now: Instant,
    ) {
        if !self.own_answer(call, id, reply.clone(), now) {
            self.answer_offer(call, id, other, reply, now);
        }
    }

    /// What a transfer's target leg tells its call.
    fn target_event(&mut self, call: CallId, id: LegId, event: LegEvent, now: Instant) {
        match event {
            LegEvent::Answered { branch, sdp } => self.target_answered(call, id, branch, sdp, now),
            LegEvent::Failed { status, .. } => self.target_failed(call, status, now),
            LegEvent::OfferAnswered { sdp } => {
                self.own_answer(call, id, Ok(sdp), now);
            }
            LegEvent::OfferRejected { status } => {
                self.own_answer(call, id, Err(status), now);
            }
            LegEvent::Ended { .. } | LegEvent::NoAck | LegEvent::SessionExpired => {
                // The joining party left before it joined.
                if let Some(c) = self.calls.get_mut(call.0) {
                    c.own_offers.retain(|(l, _)| *l != id);
                }
                self.target_failed(call, StatusCode::REQUEST_TERMINATED, now);
            }
            _ => {}
        }
    }

    /// An offer from `from` goes to `to`'s dialog; its answer comes back in
    /// [`Engine::answer_offer`].
    pub(super) fn relay_offer(
        &mut self,
        call: CallId,
        from: LegId,
        to: Option<LegId>,
        sdp: Option<Bytes>,
        now: Instant,
    ) {
        let from_caller = self.calls.get(call.0).is_some_and(|c| c.a == Some(from));
        let relayed = match (to, sdp) {
            (Some(to), Some(sdp)) => {
                if let Some(c) = self.calls.get_mut(call.0) {
                    c.offer_sdp = Some(sdp.clone());
                }
                let sdp = self.media.offer(call, from_caller, &sdp).unwrap_or(sdp);
                let mut sent = Err(());
                self.with_dialog(
                    to,
                    |d, now| {
                        let r = d.reinvite(sdp, now);
                        sent = r.clone().map_err(|_| ());
                        r
                    },
                    now,
                );
                sent.is_ok()
            }
            _ => false,
        };
        if relayed {
            if let Some(c) = self.calls.get_mut(call.0) {
                c.offer_from = Some(from);
            }
        } else {
            // The other side is busy with an exchange of its own (or gone, or the
            // offer is empty): try again later (RFC 3261 §14.1).
            self.with_dialog(
                from,
                |d, now| d.reject_offer(StatusCode::REQUEST_PENDING, now),
                now,
            );
        }
    }

    /// `answered`'s reply to an offer relayed to it goes back to the leg that made it.
    pub(super) fn answer_offer(
        &mut self,
        call: CallId,
        answered: LegId,
        offerer: Option<LegId>,
        reply: Result<Option<Bytes>, StatusCode>,
        now: Instant,
    ) {
        let Some(c) = self.calls.get_mut(call.0) else {
            return;
        };
        if c.offer_from != offerer || offerer.is_none() {
            return;
        }
        c.offer_from = None;
        let offer = c.offer_sdp.take();
        let from_caller = c.a == Some(answered);
        if let Some(offerer) = offerer {
            match reply {
                Ok(sdp) => {
                    if let Some(offer) = &offer {
                        self.hold_changed(call, !from_caller, holds_other(offer));
                    }
                    let sdp = sdp.map(|sdp| {
                        self.media
                            .answer(call, from_caller, offer.as_ref(), &sdp)
                            .unwrap_or(sdp)
                    });
                    self.with_dialog(offerer, |d, now| d.accept_offer(sdp, now), now)
                }
                Err(status) => self.with_dialog(
                    offerer,
                    |d, now| {
                        let status = if status.as_u16() >= 300 {
                            status
                        } else {
                            StatusCode::SERVER_INTERNAL_ERROR
                        };
                        d.reject_offer(status, now)
                    },
                    now,
                ),
            }
        }
    }

    /// Side A (`by_a`) or B of `call` holds the other (`held`) or not, by an
    /// accepted offer: reported when that changes.
    fn hold_changed(&mut self, call: CallId, by_a: bool, held: bool) {
        let Some(c) = self.calls.get_mut(call.0) else {
            return;
        };
        let side = usize::from(!by_a);
        if c.held[side] == held {
            return;
        }
        c.held[side] = held;
        if let Some(user) = c.party(by_a).map(str::to_owned) {
            self.events.push_back(Event::CallHeld { call, user, held });
        }
    }

    /// The callee's (or the caller's, `from_caller`) answer to the caller's offer,
    /// as the other side is to receive it.
    fn anchor_answer(&mut self, call: CallId, from_caller: bool, sdp: &Bytes) -> Bytes {
        let offer = self.a_offer(call);
        self.media
            .answer(call, from_caller, offer.as_ref(), sdp)
            .unwrap_or_else(|| sdp.clone())
    }

    /// Runs `f` on the caller's leg while it rings.
    pub(super) fn with_a(
        &mut self,
        call: CallId,
        f: impl FnOnce(&mut IncomingLeg, Instant) -> Result<(), pbxkit_sip::b2bua::LegError>,
        now: Instant,
    ) {
        let Some(a) = self.calls.get(call.0).and_then(|c| c.a) else {
            return;
        };
        if let Some(AnyLeg::Incoming(leg)) = self.legs.get_mut(a.0).map(|s| &mut s.leg) {
            let _ = f(leg, now);
            self.dirty.push_back(a);
        }
    }

    /// Runs `f` on a leg's confirmed dialog.
    pub(super) fn with_dialog(
        &mut self,
        id: LegId,
        f: impl FnOnce(
            &mut pbxkit_sip::b2bua::Established,
            Instant,
        ) -> Result<(), pbxkit_sip::b2bua::LegError>,
        now: Instant,
    ) {
        let Some(slot) = self.legs.get_mut(id.0) else {
            return;
        };
        let dialog = match &mut slot.leg {
            AnyLeg::Incoming(l) => l.dialog(),
            AnyLeg::Outgoing(l) => l.dialog(),
        };
        if let Some(d) = dialog {
            let _ = f(d, now);
            self.dirty.push_back(id);
        }
    }

    /// A leg has terminated; the call ends with its last leg.
    pub(super) fn leg_gone(&mut self, call: CallId, id: LegId, now: Instant) {
        let Some(c) = self.calls.get_mut(call.0) else {
            return;
        };
        c.forget(id);
        if c.legs > 0 {
            return;
        }
        // No leg left without an outcome (should not happen): over all the same.
        c.end(Outcome::Answered(HangupCause::Pbx));
        self.finish_call(call, now);
    }

    /// The call has its outcome: it ends now (its counts given back, its media
    /// closed, its end reported), even if a leg still finishes its own business
    /// (a branch that never answered waiting for its Timer B, a BYE's answer).
    pub(super) fn finish_call(&mut self, call: CallId, now: Instant) {
        if !self.calls.get(call.0).is_some_and(Call::is_ended) {
            return;
        }
        self.release_ringing(call);
        // The ACD learns how a queue's call ended; agents still rung stop.
        self.queue_call_ended(call, now);
        self.group_call_ended(call, now);
        // A transfer still in progress goes with its call (its target stops
        // ringing, its counts are given back).
        self.abort_transfer(call, now);
        self.media.close(call);
        if let Some(c) = self.calls.remove(call.0) {
            // A transferor still waiting for its last NOTIFY's answer goes too.
            for id in &c.leaving {
                self.hang_up_leg(*id, pbxkit_sip::cause::NORMAL_CLEARING, now);
            }
            for user in &c.holds {
                release(&mut self.in_use, user);
            }
            if let (Some(group), Some(member)) = (&c.group, c.callee()) {
                let at = jiff::Timestamp::from_second(i64::try_from(self.unix(now)).unwrap_or(0))
                    .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
                self.history.ended(group, member, at);
            }
            let (caller, dialed, callee, outcome) = c.finish();
            self.events.push_back(Event::CallEnded {
                call,
                caller,
                dialed,
                callee,
                outcome,
            });
        }
    }
}

/// Whether an offer puts the other side on hold (RFC 3264 §8.4: its first audio
/// stream `sendonly` or `inactive`; RFC 2543: a `0.0.0.0` connection address).
/// An offer that does not parse, or has no audio, holds nothing.
fn holds_other(offer: &Bytes) -> bool {
    let Ok(session) = Session::parse_body(offer) else {
        return false;
    };
    let Some(audio) = session
        .media
        .iter()
        .find(|m| m.kind.as_str() == "audio" && m.port != 0)
    else {
        return false;
    };
    let direction = audio.direction(session.direction());
    matches!(direction, Direction::SendOnly | Direction::Inactive)
        || session.media_address(audio) == Some("0.0.0.0")
}
