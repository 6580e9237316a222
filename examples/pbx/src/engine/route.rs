//! How a call follows the dialplan: the decision for a hop (context, number),
//! forwards and destinations, ring steps one after the other with their delays,
//! each user rung holding one of its calls, and the plan's fallbacks.

use super::Tone;
use super::call::Caller;
use super::plan::{self, Ending, Plan};
use super::trunk::Outcall;
use super::{
    AnyLeg, Application, CallId, Directory, Engine, Event, Live, Outcome, Unanswered, release,
};
use bytes::Bytes;
use pbxkit_dialplan::Decision;
use pbxkit_sip::b2bua::{Leg, OutgoingLegs};
use pbxkit_sip::transaction::Target;
use pbxkit_sip::{HeaderName, Message, Method, StatusCode, Uri};
use std::time::Instant;

/// How long a failed call from a trunk hears its busy or congestion tone.
pub(super) const FAILURE_TONE_TIME: std::time::Duration = std::time::Duration::from_secs(3);

impl<D: Directory> Engine<D> {
    /// The dialplan's view of the PBX now: calls in progress per user (the engine's
    /// own counts), users' live services (the directory's), the group history and
    /// `random` as this decision's draw.
    pub(super) fn live(&self, random: u64) -> Live<'_, D> {
        Live {
            in_use: &self.in_use,
            directory: &self.directory,
            history: &self.history,
            random,
        }
    }

    /// The call attempt the dialplan decides on for a hop of `caller`'s call.
    pub(super) fn attempt<'a>(
        &self,
        live: &'a Live<'a, D>,
        caller: &'a Caller,
        context: &'a str,
        number: &'a str,
        now: Instant,
    ) -> pbxkit_dialplan::CallAttempt<'a> {
        pbxkit_dialplan::CallAttempt {
            context,
            caller: pbxkit_dialplan::Caller {
                number: &caller.number,
                name: &caller.name,
                user: caller.as_user(),
            },
            dialed: number,
            at: jiff::Timestamp::from_second(i64::try_from(self.unix(now)).unwrap_or(0))
                .unwrap_or(jiff::Timestamp::UNIX_EPOCH),
            user_state: live,
        }
    }

    /// Asks the dialplan where a call to `number` from `context` goes, and follows
    /// the answer (`depth` decisions followed so far).
    pub(super) fn route(
        &mut self,
        call: CallId,
        context: &str,
        number: &str,
        depth: usize,
        now: Instant,
    ) {
        let Some(caller) = self.calls.get(call.0).map(|c| c.caller_id().clone()) else {
            return;
        };
        let dialplan = self.dialplan.clone();
        let random = self.random();
        let live = self.live(random);
        let attempt = self.attempt(&live, &caller, context, number, now);
        match dialplan.decide(&attempt) {
            Ok(routed) => {
                if plan::busy_in(&routed) {
                    self.set_last(call, StatusCode::BUSY_HERE, Ending::Busy);
                }
                let decision = routed.decision;
                self.follow(call, decision, context, number, depth, now);
            }
            Err(_) => self.refuse(call, StatusCode::NOT_FOUND, now),
        }
    }

    /// Follows a decision reached through the hop (`context`, `number`).
    pub(super) fn follow(
        &mut self,
        call: CallId,
        decision: Decision<'_>,
        context: &str,
        number: &str,
        depth: usize,
        now: Instant,
    ) {
        if depth > pbxkit_dialplan::decision::MAX_DEPTH {
            // A forward loop.
            self.refuse(call, StatusCode::LOOP_DETECTED, now);
            return;
        }
        let last = self
            .calls
            .get(call.0)
            .map_or(StatusCode::TEMPORARILY_UNAVAILABLE, |c| c.last.0);
        match decision {
            Decision::Ring(ring) => {
                let plan = Plan::new(context, number, &ring, depth);
                let group = plan.group.clone();
                if let Some(c) = self.calls.get_mut(call.0) {
                    c.plan = Some(plan);
                }
                if let Some(group) = group {
                    self.group_entered(call, &group, now);
                }
                self.next_step(call, now);
            }
            Decision::Forward {
                destination,
                context,
                ..
            } => {
                let (context, destination) = (context.to_owned(), destination.into_owned());
                self.route(call, &context, &destination, depth + 1, now);
            }
            Decision::Destination(d) => {
                let Some(caller) = self.calls.get(call.0).map(|c| c.caller_id().clone()) else {
                    return;
                };
                let dialplan = self.dialplan.clone();
                let random = self.random();
                let live = self.live(random);
                let attempt = self.attempt(&live, &caller, context, number, now);
                match dialplan.decide_destination(d, &attempt) {
                    Ok(routed) => {
                        let decision = routed.decision;
                        self.follow(call, decision, context, number, depth + 1, now);
                    }
                    Err(_) => self.refuse(call, last, now),
                }
            }
            Decision::Voicemail { mailbox, greeting } => {
                let Some(caller) = self.calls.get(call.0).map(|c| c.caller_id().clone()) else {
                    return;
                };
                let app = Application::Voicemail {
                    mailbox: mailbox.number.clone(),
                    busy: greeting == Some(pbxkit_dialplan::decision::Greeting::Busy),
                    caller: caller.number,
                    caller_name: caller.name,
                };
                self.run_application(call, &app, now);
            }
            // No prompts on the engine yet: the caller gets how ringing ended.
            Decision::Play { .. } => self.refuse(call, last, now),
            Decision::Hangup {
                cause: pbxkit_dialplan::decision::HangupCause::Forbidden,
            } => self.refuse(call, StatusCode::FORBIDDEN, now),
            Decision::Hangup { .. } => self.refuse(call, last, now),
            Decision::Feature { action, .. } => self.feature(call, action, now),
            Decision::Trunks {
                dial, caller_id, ..
            } => self.dial_out(call, Outcall::new(&dial, &caller_id), now),
            Decision::Queue(queue) => {
                let name = queue.name.clone();
                self.enter_queue(call, &name, now);
            }
            Decision::Conference(room) => {
                let app = Application::Conference {
                    room: room.name.clone(),
                };
                self.run_application(call, &app, now);
            }
            // Not on the engine yet: parking, IVRs...
            _ => self.refuse(call, StatusCode::NOT_IMPLEMENTED, now),
        }
    }

    pub(super) fn set_last(&mut self, call: CallId, status: StatusCode, ending: Ending) {
        if let Some(c) = self.calls.get_mut(call.0) {
            c.last = (status, ending);
        }
    }

    /// Rings the plan's next step (after its delay), or takes the plan's fallback.
    pub(super) fn next_step(&mut self, call: CallId, now: Instant) {
        let Some(c) = self.calls.get_mut(call.0) else {
            return;
        };
        let Some(plan) = c.plan.as_mut() else {
            return;
        };
        let Some(step) = plan.steps.get(plan.next).cloned() else {
            self.fallback(call, now);
            return;
        };
        if plan.next > 0 && !step.delay.is_zero() && plan.paused != Some(plan.next) {
            // A group's retry delay: the caller keeps hearing ringback.
            plan.paused = Some(plan.next);
            c.pause(now + step.delay);
            return;
        }
        plan.next += 1;
        self.ring_step(call, &step, now);
    }

    /// The registered contacts of a step's users. Each user rung holds one of its
    /// simultaneous calls while its phones ring (a user at its limit is busy and
    /// not rung): the contacts with their users, the users held, and whether one
    /// was busy.
    pub(super) fn gather(
        &mut self,
        step: &plan::Step,
    ) -> (Vec<(String, Uri, Target)>, Vec<String>, bool) {
        let mut contacts: Vec<(String, Uri, Target)> = Vec::new();
        let mut busy = false;
        let mut held = Vec::new();
        for t in &step.targets {
            let found: Vec<(Uri, Target)> = t
                .lines
                .iter()
                .flat_map(|line| self.directory.contacts(line))
                .collect();
            if found.is_empty() {
                continue;
            }
            let n = self.in_use.entry(t.user.clone()).or_default();
            if *n >= t.limit {
                busy = true;
                continue;
            }
            *n += 1;
            held.push(t.user.clone());
            contacts.extend(found.into_iter().map(|(u, tg)| (t.user.clone(), u, tg)));
        }
        (contacts, held, busy)
    }

    /// An INVITE for outgoing legs to `request_uri`, from `from` (asserted in
    /// P-Asserted-Identity and Remote-Party-ID, RFC 3325: the PBX authenticated it
    /// or trusts the trunk that asserted it) to `to`, with `offer`.
    pub(super) fn template(
        &mut self,
        request_uri: Uri,
        from: &str,
        to: &str,
        offer: Option<Bytes>,
    ) -> Message {
        let token = self.token();
        let mut template = Message::request(Method::Invite, request_uri);
        let h = template.headers_mut();
        h.push(HeaderName::From, from);
        h.push(HeaderName::To, to);
        h.push(HeaderName::CallId, format!("{token}@pbxkit"));
        h.push(HeaderName::PAssertedIdentity, from);
        // The same in Remote-Party-ID for phones that only read that one.
        h.push(
            HeaderName::RemotePartyId,
            format!("{from};party=calling;screen=yes;privacy=off"),
        );
        if let Some(sdp) = offer {
            h.set(HeaderName::ContentType, "application/sdp");
            template.body = sdp;
        }
        template
    }

    /// An outgoing leg from `from` to `to` (a user or number) ringing `contacts`
    /// with `offer`; the users each branch rings.
    pub(super) fn dial(
        &mut self,
        from: &Caller,
        to: &str,
        offer: Option<Bytes>,
        contacts: Vec<(String, Uri, Target)>,
        now: Instant,
    ) -> (OutgoingLegs, Vec<(pbxkit_sip::b2bua::BranchId, String)>) {
        let realm = self.config.realm.clone();
        let request_uri = match Uri::parse(&format!("sip:{to}@{realm}")) {
            Ok(uri) => uri,
            // Not a user part a URI takes: the first contact's URI instead.
            Err(_) => contacts.first().map_or_else(
                || {
                    Uri::parse(&format!("sip:{realm}"))
                        .unwrap_or_else(|_| self.config.leg.contact.clone())
                },
                |c| c.1.clone(),
            ),
        };
        let template = self.template(
            request_uri,
            &from.name_addr(&realm),
            &format!("<sip:{to}@{realm}>"),
            offer,
        );
        let token = self.token();
        let mut b = OutgoingLegs::new(self.config.leg.clone(), &token, template);
        let mut users = Vec::new();
        for (user, uri, target) in contacts {
            if let Ok(branch) = b.add_branch(uri, target, None, now) {
                users.push((branch, user));
            }
        }
        (b, users)
    }

    /// Rings every registered contact of a step's users at once; the one who
    /// answers keeps the call count it holds.
    pub(super) fn ring_step(&mut self, call: CallId, step: &plan::Step, now: Instant) {
        let (contacts, held, busy) = self.gather(step);
        if let Some(c) = self.calls.get_mut(call.0) {
            c.ringing_holds = held;
        }
        let Some(callee) = contacts.first().map(|c| c.0.clone()) else {
            let (status, ending) = if busy {
                (StatusCode::BUSY_HERE, Ending::Busy)
            } else {
                (StatusCode::TEMPORARILY_UNAVAILABLE, Ending::NoContact)
            };
            self.step_ended(call, status, ending, now);
            return;
        };
        let Some(caller) = self.calls.get(call.0).map(|c| c.caller_id().clone()) else {
            return;
        };
        let offer = self
            .a_offer(call)
            .map(|sdp| self.media.offer(call, true, &sdp).unwrap_or(sdp));
        let (b, users) = self.dial(&caller, &callee, offer, contacts, now);
        let key = b.key();
        let Some(b_id) = self.add_leg(call, AnyLeg::Outgoing(Box::new(b))) else {
            self.refuse(call, StatusCode::SERVICE_UNAVAILABLE, now);
            return;
        };
        self.routes.insert(key, b_id);
        let ring_time = step.timeout.unwrap_or(self.config.ring_time);
        let mut rung: Vec<String> = Vec::new();
        for (_, user) in &users {
            if !rung.contains(user) {
                rung.push(user.clone());
            }
        }
        let mut group = None;
        if let Some(c) = self.calls.get_mut(call.0) {
            group = c.plan.as_ref().and_then(|p| p.group.clone());
            c.ring(b_id, users, now + ring_time);
        }
        self.events.push_back(Event::CallRinging {
            call,
            users: rung,
            group,
        });
    }

    /// A step rang without an answer: the next step, or the fallback.
    pub(super) fn step_ended(
        &mut self,
        call: CallId,
        status: StatusCode,
        ending: Ending,
        now: Instant,
    ) {
        if self.calls.get(call.0).is_some_and(|c| c.outcall.is_some()) {
            self.trunk_failed(call, status, ending, now);
            return;
        }
        self.release_ringing(call);
        self.set_last(call, status, ending);
        if ending == Ending::Global {
            self.refuse(call, status, now);
            return;
        }
        self.next_step(call, now);
    }

    /// Gives back the counts of the users the call rang.
    pub(super) fn release_ringing(&mut self, call: CallId) {
        let Some(c) = self.calls.get_mut(call.0) else {
            return;
        };
        for user in std::mem::take(&mut c.ringing_holds) {
            release(&mut self.in_use, &user);
        }
    }

    /// Every step rang in vain: where the plan's fallback for how it ended goes.
    pub(super) fn fallback(&mut self, call: CallId, now: Instant) {
        let Some(c) = self.calls.get_mut(call.0) else {
            return;
        };
        let Some(plan) = c.plan.take() else {
            return;
        };
        let (status, ending) = c.last;
        let caller = c.caller_id().clone();
        self.group_left(call, ending, now);
        let dialplan = self.dialplan.clone();
        let random = self.random();
        let live = self.live(random);
        let attempt = self.attempt(&live, &caller, &plan.context, &plan.number, now);
        // The same hop asked again gives the same plan and its fallbacks.
        let Ok(routed) = dialplan.decide(&attempt) else {
            self.refuse(call, status, now);
            return;
        };
        let Decision::Ring(ring) = routed.decision else {
            self.refuse(call, status, now);
            return;
        };
        let fallbacks = ring.fallbacks;
        let next = match ending {
            Ending::Busy => fallbacks.busy,
            Ending::NoAnswer => fallbacks.no_answer,
            Ending::NoContact => fallbacks.failure,
            Ending::Failed | Ending::Global => fallbacks.congestion,
        };
        self.follow(
            call,
            *next,
            &plan.context,
            &plan.number,
            plan.depth + 1,
            now,
        );
    }

    /// The caller's SDP offer.
    pub(super) fn a_offer(&mut self, call: CallId) -> Option<Bytes> {
        let a = self.calls.get(call.0)?.a?;
        match &self.legs.get(a.0)?.leg {
            AnyLeg::Incoming(leg) => leg.offer(),
            AnyLeg::Outgoing(_) => None,
        }
    }

    /// The caller gets `status`; the call ends unanswered. A caller from a trunk
    /// hears why first, as from an exchange: the busy tone when the callee was
    /// busy, congestion when it could not be reached (Asterisk's Busy() and
    /// Congestion()), in early media for [`FAILURE_TONE_TIME`].
    pub(super) fn refuse(&mut self, call: CallId, status: StatusCode, now: Instant) {
        if self.tone_first(call, status, now) {
            return;
        }
        self.reject(call, status, now);
    }

    /// The caller gets `status` now.
    fn reject(&mut self, call: CallId, status: StatusCode, now: Instant) {
        let Some(c) = self.calls.get_mut(call.0) else {
            return;
        };
        c.end(Outcome::Unanswered(Unanswered::Refused(status)));
        if let Some(a) = c.a
            && let Some(AnyLeg::Incoming(leg)) = self.legs.get_mut(a.0).map(|s| &mut s.leg)
        {
            let _ = leg.reject(status, None, &[], now);
            self.dirty.push_back(a);
        }
    }

    /// Plays the failure tone `status` calls for to a trunk's caller; false when
    /// none is played.
    fn tone_first(&mut self, call: CallId, status: StatusCode, now: Instant) -> bool {
        let Some(c) = self.calls.get(call.0) else {
            return false;
        };
        if c.caller_id().trunk.is_none() || c.toned().is_some() || c.is_ended() {
            return false;
        }
        let ending = if c.last.0 == status {
            c.last.1
        } else {
            Ending::of(status)
        };
        let tone = match ending {
            Ending::Busy => Tone::Busy,
            Ending::NoContact => Tone::Congestion,
            Ending::Failed if status.as_u16() >= 500 => Tone::Congestion,
            _ => return false,
        };
        let Some(offer) = self.a_offer(call) else {
            return false;
        };
        let Some(sdp) = self.media.tone(call, tone, &offer) else {
            return false;
        };
        if let Some(c) = self.calls.get_mut(call.0) {
            c.tone(now + FAILURE_TONE_TIME, status);
        }
        self.with_a(call, |a, now| a.ring(Some(sdp), now), now);
        true
    }

    /// A deadline of the call: its ring time is over (stop ringing, go on with the
    /// plan), or a pause between two steps is.
    pub(super) fn ring_timeout(&mut self, call: CallId, now: Instant) {
        let Some(c) = self.calls.get_mut(call.0) else {
            return;
        };
        if c.transfer
            .as_ref()
            .and_then(|t| t.until)
            .is_some_and(|t| t <= now)
        {
            self.transfer_timeout(call, now);
            return;
        }
        if c.is_pausing() {
            c.resume();
            self.next_step(call, now);
            return;
        }
        if let Some(status) = c.toned() {
            self.reject(call, status, now);
            return;
        }
        if c.is_waiting() {
            // The PBX never acted on the call's feature code.
            self.refuse(call, StatusCode::SERVER_INTERNAL_ERROR, now);
            return;
        }
        let out = c.outcall.take().is_some();
        let b = c.stop_step();
        if let Some(b) = b
            && let Some(AnyLeg::Outgoing(leg)) = self.legs.get_mut(b.0).map(|s| &mut s.leg)
        {
            leg.cancel_all(now);
            self.dirty.push_back(b);
        }
        if out {
            // A call out that rang its whole time: no other trunk is tried.
            self.refuse(call, StatusCode::TEMPORARILY_UNAVAILABLE, now);
            return;
        }
        self.step_ended(
            call,
            StatusCode::TEMPORARILY_UNAVAILABLE,
            Ending::NoAnswer,
            now,
        );
    }
}
