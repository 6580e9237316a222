//! What a call keeps of the dialplan's decision while it executes it: the ring steps
//! (owned: a decision borrows the dialplan, a call outlives the borrow), where they
//! came from, and how the last attempt ended.

use pbxkit_dialplan::Routed;
use pbxkit_dialplan::decision::{Outcome as TraceOutcome, RingPlan, Rule};
use pbxkit_sip::StatusCode;
use std::time::Duration;

/// A user to ring with its lines and its simultaneous-calls limit.
#[derive(Debug, Clone)]
pub(super) struct Target {
    pub(super) user: String,
    pub(super) lines: Vec<String>,
    pub(super) limit: u32,
}

/// One ring step.
#[derive(Debug, Clone)]
pub(super) struct Step {
    pub(super) targets: Vec<Target>,
    pub(super) timeout: Option<Duration>,
    pub(super) delay: Duration,
}

/// How ringing ended without an answer: which fallback applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ending {
    /// The ring time ran out.
    NoAnswer,
    /// The callee was busy (its phones said so, DND, its limit).
    Busy,
    /// Nothing to ring: no registered contact.
    NoContact,
    /// Every contact failed otherwise.
    Failed,
    /// A global failure (6xx): nothing else is tried.
    Global,
}

impl Ending {
    /// How a set of branches that all failed with `status` ended.
    pub(super) fn of(status: StatusCode) -> Ending {
        match status.as_u16() {
            486 | 600 => Ending::Busy,
            600..=699 => Ending::Global,
            408 | 480 => Ending::NoAnswer,
            _ => Ending::Failed,
        }
    }
}

/// The plan a call follows: the dialplan hop it came from (context and number, to
/// ask the dialplan again for the plan's fallbacks), its steps, the next one.
#[derive(Debug, Clone)]
pub(super) struct Plan {
    pub(super) context: String,
    pub(super) number: String,
    pub(super) steps: Vec<Step>,
    pub(super) next: usize,
    /// The step whose delay has been waited.
    pub(super) paused: Option<usize>,
    /// The group whose members ring, for its history.
    pub(super) group: Option<String>,
    /// Decisions followed so far (bounded by the dialplan's MAX_DEPTH).
    pub(super) depth: usize,
}

impl Plan {
    pub(super) fn new(context: &str, number: &str, plan: &RingPlan<'_>, depth: usize) -> Plan {
        Plan {
            context: context.to_owned(),
            number: number.to_owned(),
            steps: plan
                .steps
                .iter()
                .map(|s| Step {
                    targets: s
                        .targets
                        .iter()
                        .map(|t| Target {
                            user: t.user.to_owned(),
                            lines: t.lines.to_vec(),
                            limit: t.simultaneous_calls,
                        })
                        .collect(),
                    timeout: s.timeout,
                    delay: s.delay,
                })
                .collect(),
            next: 0,
            paused: None,
            group: plan.group.map(str::to_owned),
            depth,
        }
    }
}

/// Whether the dialplan found the user busy (DND, its limit) on the way: the
/// caller hears busy whatever the busy destination plays.
pub(super) fn busy_in(routed: &Routed<'_>) -> bool {
    routed.trace.iter().any(|step| {
        matches!(step.rule, Rule::Dnd | Rule::Busy) && step.outcome == TraceOutcome::Decided
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_map_to_the_fallback_they_take() {
        let of = |n| Ending::of(StatusCode::new(n).unwrap_or(StatusCode::OK));
        assert_eq!(of(486), Ending::Busy);
        assert_eq!(of(600), Ending::Busy);
        assert_eq!(of(603), Ending::Global);
        assert_eq!(of(408), Ending::NoAnswer);
        assert_eq!(of(503), Ending::Failed);
        assert_eq!(of(404), Ending::Failed);
    }
}
