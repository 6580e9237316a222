//! One call's state: its legs, where it is, and how it ended.

use super::{LegId, Outcome};
use std::time::Instant;

/// Which side of the call a leg is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// The caller's leg.
    A,
    /// The callee's (its branches).
    B,
}

/// Where a call is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Being routed.
    Routing,
    /// The callee's phones ring until `until`.
    Ringing { until: Instant },
    /// Answered: the legs are bridged.
    Answered,
    /// Over; its legs are ending.
    Ended,
}

/// A call.
#[derive(Debug)]
pub(super) struct Call {
    pub(super) a: Option<LegId>,
    pub(super) b: Option<LegId>,
    caller: String,
    dialed: String,
    /// The user rung, and who answered.
    callee: Option<String>,
    answered: bool,
    state: State,
    outcome: Option<Outcome>,
    /// Legs not yet terminated.
    pub(super) legs: usize,
    /// The leg whose offer (re-INVITE, UPDATE) waits for the other leg's answer.
    pub(super) offer_from: Option<LegId>,
}

impl Call {
    pub(super) fn new(caller: String, dialed: String) -> Call {
        Call {
            a: None,
            b: None,
            caller,
            dialed,
            callee: None,
            answered: false,
            state: State::Routing,
            outcome: None,
            legs: 0,
            offer_from: None,
        }
    }

    pub(super) fn role(&self, leg: LegId) -> Option<Role> {
        if self.a == Some(leg) {
            Some(Role::A)
        } else if self.b == Some(leg) {
            Some(Role::B)
        } else {
            None
        }
    }

    /// `b` rings `callee` until `until`.
    pub(super) fn ring(&mut self, b: LegId, callee: String, until: Instant) {
        self.b = Some(b);
        self.callee = Some(callee);
        if self.state == State::Routing {
            self.state = State::Ringing { until };
        }
    }

    /// When the ring time runs out.
    pub(super) fn deadline(&self) -> Option<Instant> {
        match self.state {
            State::Ringing { until } => Some(until),
            _ => None,
        }
    }

    pub(super) fn stop_ringing(&mut self) {
        if matches!(self.state, State::Ringing { .. } | State::Routing) {
            self.state = State::Ended;
        }
    }

    /// The callee answered: who, unless the call is no longer ringing.
    pub(super) fn answered(&mut self) -> Option<String> {
        if !matches!(self.state, State::Ringing { .. }) {
            return None;
        }
        self.state = State::Answered;
        self.answered = true;
        self.callee.clone()
    }

    pub(super) fn is_answered(&self) -> bool {
        self.answered
    }

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
        if self.offer_from == Some(leg) {
            self.offer_from = None;
        }
    }

    /// What the call's end reports: caller, dialled number, who answered, outcome.
    pub(super) fn finish(self) -> (String, String, Option<String>, Outcome) {
        let outcome = self
            .outcome
            .unwrap_or(Outcome::Answered(crate::hangup::HangupCause::Pbx));
        let callee = self.answered.then_some(self.callee).flatten();
        (self.caller, self.dialed, callee, outcome)
    }
}
