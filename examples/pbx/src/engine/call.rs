//! One call's state: its legs, where it is in its plan, and how it ended.

use super::plan::{Ending, Plan};
use super::{LegId, Outcome};
use pbxkit_sip::StatusCode;
use pbxkit_sip::b2bua::BranchId;
use std::time::Instant;

/// Who places a call: a user of the PBX, or someone calling in through a trunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Caller {
    /// The user, or the number the trunk asserts.
    pub(super) number: String,
    /// The display name (the user's, or the one the trunk asserts).
    pub(super) name: String,
    /// The trunk the call came in through; `None` for a user.
    pub(super) trunk: Option<String>,
}

impl Caller {
    /// `user` of the PBX, shown as `name`.
    pub(super) fn user(user: &str, name: Option<String>) -> Caller {
        Caller {
            number: user.to_owned(),
            name: name.unwrap_or_default(),
            trunk: None,
        }
    }

    /// The user the dialplan knows the caller as.
    pub(super) fn as_user(&self) -> Option<&str> {
        self.trunk.is_none().then_some(self.number.as_str())
    }

    /// The caller as a SIP identity at `host`: `"name" <sip:number@host>`.
    pub(super) fn name_addr(&self, host: &str) -> String {
        let name = self.name.replace(['"', '\\'], "");
        if name.is_empty() {
            format!("<sip:{}@{host}>", self.number)
        } else {
            format!("\"{name}\" <sip:{}@{host}>", self.number)
        }
    }
}

/// Which side of the call a leg is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// The caller's leg.
    A,
    /// The callee's (the branches of the step ringing, or the one that answered).
    B,
    /// A transfer's target, ringing for the transferee.
    Target,
}

/// A transfer in progress (RFC 5589): the REFER's sender leaves the call once the
/// target it named takes its place.
#[derive(Debug)]
pub(super) struct Transfer {
    /// The leg that sent the REFER; `None` once it hung up (a blind transfer's
    /// transferor may leave as soon as its REFER is accepted).
    pub(super) transferor: Option<LegId>,
    /// Whether the transferor is the call's A side (the target takes that side).
    pub(super) transferor_is_a: bool,
    /// The leg ringing the target (blind and semi-attended transfers), or joining
    /// the call (attended: the other party of the transferor's second call).
    pub(super) target: LegId,
    /// The users each branch of the target rings.
    pub(super) branches: Vec<(BranchId, String)>,
    /// The users the target holds a call of: those rung, or the joining party.
    pub(super) holds: Vec<String>,
    /// When the target's ring time is over (none for a joining party).
    pub(super) until: Option<Instant>,
    /// Whether the transferee's media is elsewhere than the call's (an
    /// application of the PBX answered it): it is given the call's when the
    /// target answers.
    pub(super) reanchor: bool,
}

/// An agent's phone ringing for a caller in a queue.
#[derive(Debug)]
pub(super) struct Ringing {
    /// The agent, as the ACD names it.
    pub(super) agent: pbxkit_acd::AgentId,
    /// The leg ringing its phone.
    pub(super) leg: LegId,
    /// The user whose phone it is (it holds one of that user's calls).
    pub(super) user: String,
}

/// A call in a queue.
#[derive(Debug)]
pub(super) struct Queued {
    /// The queue.
    pub(super) name: String,
    /// The ACD's id for the call.
    pub(super) id: pbxkit_acd::CallId,
    /// Agents' phones ringing for it.
    pub(super) ringing: Vec<Ringing>,
    /// Whether the PBX answered the caller (with music on hold).
    pub(super) answered: bool,
    /// Whether an agent took it.
    pub(super) connected: bool,
}

/// A re-INVITE the PBX sent itself, and what its answer is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OwnOffer {
    /// The joining party of an attended transfer, moved onto this call's media.
    Join,
    /// The transferee, given its new peer's media.
    Refresh,
}

/// Where a call is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Being routed, or between two ring steps.
    Routing,
    /// A step's phones ring until `until`.
    Ringing { until: Instant },
    /// Waiting `until`, ringback going on, before the next step (a group's delay).
    Pausing { until: Instant },
    /// Waiting `until` for the PBX to act on a feature code (a change of the
    /// caller's services being saved).
    Waiting { until: Instant },
    /// Answered: the legs are bridged.
    Answered,
    /// Answered by the PBX itself: an application runs on the caller's media.
    Application,
    /// Answered by the PBX, waiting in a queue with music on hold.
    Queued,
    /// Refused, the caller hearing why in early media (a busy or congestion tone)
    /// until `until`, then getting `status`.
    Tone { until: Instant, status: StatusCode },
    /// Over; its legs are ending.
    Ended,
}

/// A call.
#[derive(Debug)]
pub(super) struct Call {
    pub(super) a: Option<LegId>,
    pub(super) b: Option<LegId>,
    caller: Caller,
    dialed: String,
    /// The users each branch of the step ringing rings.
    branches: Vec<(BranchId, String)>,
    /// Who answered.
    callee: Option<String>,
    state: State,
    outcome: Option<Outcome>,
    /// The plan being followed.
    pub(super) plan: Option<Plan>,
    /// How the last attempt ended: what the caller gets if nothing answers.
    pub(super) last: (StatusCode, Ending),
    /// Users whose call count this call holds for good (the caller, who answered).
    pub(super) holds: Vec<String>,
    /// Users whose count the ringing step holds.
    pub(super) ringing_holds: Vec<String>,
    /// Legs not yet terminated.
    pub(super) legs: usize,
    /// The leg whose offer (re-INVITE, UPDATE) waits for the other leg's answer,
    /// and that offer as it made it.
    pub(super) offer_from: Option<LegId>,
    pub(super) offer_sdp: Option<bytes::Bytes>,
    /// The deadline queued for it in the engine's timers.
    pub(super) armed: Option<Instant>,
    /// The group whose member answered, for the group's history when the call ends.
    pub(super) group: Option<String>,
    /// The group it rings or was answered in, for the queue_log
    /// ([`super::group_log`]).
    pub(super) in_group: Option<super::group_log::InGroup>,
    /// A transfer in progress.
    pub(super) transfer: Option<Transfer>,
    /// Re-INVITEs the PBX sent itself, by leg, awaiting their answers.
    pub(super) own_offers: Vec<(LegId, OwnOffer)>,
    /// Transferors to hang up once their last NOTIFY is answered.
    pub(super) leaving: Vec<LegId>,
    /// The trunks a call out tries, when it goes out.
    pub(super) outcall: Option<super::trunk::Outcall>,
    /// Whether side A (`[0]`) or B (`[1]`) has put the other on hold.
    pub(super) held: [bool; 2],
    /// The call's tracing span: what is logged while the engine works on the
    /// call (the media's warnings, the PBX's) carries its Call-ID and parties.
    pub(super) span: tracing::Span,
    /// Its queue, while it is in one (waiting, or connected to an agent).
    pub(super) queue: Option<Queued>,
    /// The SDP of an agent who answered, until the ACD connects it.
    pub(super) agent_sdp: Option<bytes::Bytes>,
}

impl Call {
    pub(super) fn new(caller: Caller, dialed: String) -> Call {
        Call {
            a: None,
            b: None,
            caller,
            dialed,
            branches: Vec::new(),
            callee: None,
            state: State::Routing,
            outcome: None,
            plan: None,
            last: (StatusCode::TEMPORARILY_UNAVAILABLE, Ending::NoContact),
            holds: Vec::new(),
            ringing_holds: Vec::new(),
            legs: 0,
            offer_from: None,
            offer_sdp: None,
            armed: None,
            group: None,
            in_group: None,
            transfer: None,
            own_offers: Vec::new(),
            leaving: Vec::new(),
            outcall: None,
            held: [false; 2],
            span: tracing::Span::none(),
            queue: None,
            agent_sdp: None,
        }
    }

    /// The caller's user (or number, from a trunk).
    pub(super) fn caller(&self) -> &str {
        &self.caller.number
    }

    /// Who the caller is.
    pub(super) fn caller_id(&self) -> &Caller {
        &self.caller
    }

    pub(super) fn dialed(&self) -> &str {
        &self.dialed
    }

    pub(super) fn role(&self, leg: LegId) -> Option<Role> {
        if self.a == Some(leg) {
            Some(Role::A)
        } else if self.b == Some(leg) {
            Some(Role::B)
        } else if self.transfer.as_ref().is_some_and(|t| t.target == leg) {
            Some(Role::Target)
        } else {
            None
        }
    }

    /// `b` rings its `branches`' users until `until`.
    pub(super) fn ring(&mut self, b: LegId, branches: Vec<(BranchId, String)>, until: Instant) {
        if self.state == State::Routing {
            self.b = Some(b);
            self.branches = branches;
            self.state = State::Ringing { until };
        }
    }

    /// When the ring time or the pause runs out.
    pub(super) fn deadline(&self) -> Option<Instant> {
        let own = match self.state {
            State::Ringing { until }
            | State::Pausing { until }
            | State::Waiting { until }
            | State::Tone { until, .. } => Some(until),
            _ => None,
        };
        let transfer = self.transfer.as_ref().and_then(|t| t.until);
        own.into_iter().chain(transfer).min()
    }

    /// Whether the call is answered and bridged, nothing else going on: a transfer
    /// may start.
    pub(super) fn may_transfer(&self) -> bool {
        self.state == State::Answered
            && self.transfer.is_none()
            && self.own_offers.is_empty()
            && self.offer_from.is_none()
    }

    /// The user on side A (the caller) or B (who answered).
    pub(super) fn party(&self, a: bool) -> Option<&str> {
        if a {
            Some(&self.caller.number)
        } else {
            self.callee.as_deref()
        }
    }

    /// `user` now answers for side B (a transfer put it there).
    pub(super) fn set_callee(&mut self, user: String) {
        self.callee = Some(user);
    }

    pub(super) fn is_ringing(&self) -> bool {
        matches!(self.state, State::Ringing { .. })
    }

    pub(super) fn is_pausing(&self) -> bool {
        matches!(self.state, State::Pausing { .. })
    }

    pub(super) fn pause(&mut self, until: Instant) {
        if self.state == State::Routing {
            self.state = State::Pausing { until };
        }
    }

    /// The call waits until `until` for a command.
    pub(super) fn wait(&mut self, until: Instant) {
        if self.state == State::Routing {
            self.state = State::Waiting { until };
        }
    }

    /// The caller hears `status`'s tone until `until`, then gets `status`.
    pub(super) fn tone(&mut self, until: Instant, status: StatusCode) {
        self.state = State::Tone { until, status };
    }

    /// The status a caller hearing a tone gets when it is over.
    pub(super) fn toned(&self) -> Option<StatusCode> {
        match self.state {
            State::Tone { status, .. } => Some(status),
            _ => None,
        }
    }

    pub(super) fn is_waiting(&self) -> bool {
        matches!(self.state, State::Waiting { .. })
    }

    /// Whether the call is still being set up by the PBX (routing, waiting for a
    /// command): nothing rings, nothing answered.
    pub(super) fn is_unanswered_idle(&self) -> bool {
        matches!(self.state, State::Routing | State::Waiting { .. })
    }

    /// The PBX answers the call itself, as `who` (the application's extension).
    pub(super) fn answer_locally(&mut self, who: String) {
        self.state = State::Application;
        self.callee = Some(who);
    }

    /// The application that answered the caller hands it on: it goes on as an
    /// answered call (a destination rung for it takes the other side).
    pub(super) fn application_left(&mut self) {
        if self.state == State::Application {
            self.state = State::Answered;
        }
    }

    /// Whether an application of the PBX runs the call.
    pub(super) fn is_application(&self) -> bool {
        self.state == State::Application
    }

    /// The PBX answered the caller for queue `name`: it waits there.
    pub(super) fn queue_answered(&mut self, name: &str) {
        self.state = State::Queued;
        self.callee = Some(name.to_owned());
    }

    /// Whether the caller waits in a queue, answered by the PBX.
    pub(super) fn is_queued(&self) -> bool {
        self.state == State::Queued
    }

    /// The caller left its queue answered, without an agent: it goes on as an
    /// answered call (a destination rung for it takes the other side).
    pub(super) fn queue_left(&mut self) {
        if self.state == State::Queued {
            self.state = State::Answered;
        }
    }

    /// Agent `user`'s leg `b` takes the call from its queue.
    pub(super) fn connect(&mut self, b: LegId, user: String) {
        self.b = Some(b);
        self.callee = Some(user);
        self.state = State::Answered;
    }

    /// How the call ended, once it has.
    pub(super) fn outcome(&self) -> Option<Outcome> {
        self.outcome
    }

    pub(super) fn resume(&mut self) {
        if self.is_pausing() {
            self.state = State::Routing;
        }
    }

    /// The ringing step is over (the call goes on with its plan): the leg that rang.
    pub(super) fn stop_step(&mut self) -> Option<LegId> {
        if self.is_ringing() {
            self.state = State::Routing;
            self.branches.clear();
            return self.b;
        }
        None
    }

    pub(super) fn stop_ringing(&mut self) {
        if !matches!(self.state, State::Answered) {
            self.state = State::Ended;
        }
    }

    /// Branch `branch` answered: whose phone it is, unless the call no longer rings.
    pub(super) fn answered(&mut self, branch: BranchId) -> Option<String> {
        if !self.is_ringing() {
            return None;
        }
        let callee = self
            .branches
            .iter()
            .find(|(b, _)| *b == branch)
            .map(|(_, user)| user.clone())?;
        self.state = State::Answered;
        self.callee = Some(callee.clone());
        Some(callee)
    }

    pub(super) fn is_answered(&self) -> bool {
        self.callee.is_some()
    }

    /// Whether the call has its outcome (its legs may still be ending).
    pub(super) fn is_ended(&self) -> bool {
        self.outcome.is_some()
    }

    /// The call ends with `outcome` (the first one given counts).
    pub(super) fn end(&mut self, outcome: Outcome) {
        self.state = State::Ended;
        self.outcome.get_or_insert(outcome);
    }

    pub(super) fn forget(&mut self, leg: LegId) {
        self.legs = self.legs.saturating_sub(1);
        self.leaving.retain(|l| *l != leg);
        if self.offer_from == Some(leg) {
            self.offer_from = None;
        }
    }

    /// The user who answered.
    pub(super) fn callee(&self) -> Option<&str> {
        self.callee.as_deref()
    }

    /// What the call's end reports: caller, dialled number, who answered, outcome.
    pub(super) fn finish(self) -> (String, String, Option<String>, Outcome) {
        let outcome = self
            .outcome
            .unwrap_or(Outcome::Answered(crate::hangup::HangupCause::Pbx));
        (self.caller.number, self.dialed, self.callee, outcome)
    }
}
