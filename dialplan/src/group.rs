//! Ring groups: the order members ring in for each [`RingStrategy`], and the steps
//! of a serial group call (one member a step, the member ring time each, the retry
//! delay between them, round again until the group's ring time runs out).
//!
//! The order itself is asked of [`LiveState::ring_order`] with each member's facts:
//! XiVO runs groups as queues, so a group's strategies are app_queue's metrics,
//! implemented once in pbxkit-acd (`pbxkit_acd::strategy::ring_order`), which the
//! PBX plugs in there. The facts (last answerer, last call, calls, a draw) are read
//! from [`LiveState`] too: the library keeps no state.

use std::time::Duration;

use jiff::Timestamp;

use crate::config::GroupConfig;
use crate::decision::{GroupMember, LiveState};

/// Most steps of a serial plan beyond one round of the members: a long group ring
/// time with short member ring times stays a bounded plan.
const MAX_EXTRA_STEPS: usize = 64;

/// One serial step: a member, how long it rings, and the wait before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SerialStep<'a> {
    pub(crate) user: &'a str,
    pub(crate) timeout: Duration,
    pub(crate) delay: Duration,
}

/// The members of `group` to ring, in the strategy's order (definition order for
/// `ringall`). Members on a call are left out when the group does not ring members
/// in use. The order is [`LiveState::ring_order`]'s, given positions in the
/// definition order and the cursor after the last answerer.
pub(crate) fn member_order<'a>(
    group: &'a GroupConfig,
    state: &dyn LiveState,
    at: Timestamp,
) -> Vec<&'a str> {
    let name = group.name.as_str();
    let members: Vec<&'a str> = group.members.iter().map(String::as_str).collect();
    let facts: Vec<GroupMember> = members
        .iter()
        .enumerate()
        .map(|(position, m)| GroupMember {
            position,
            calls: state.member_calls(name, m),
            since_last_call: state.member_last_call(name, m).map(|last| {
                // A last call "in the future" (a clock step) counts as just now.
                Duration::try_from(at.duration_since(last)).unwrap_or(Duration::ZERO)
            }),
        })
        .collect();
    // Asterisk's rrpos: just after the member who answered last (one no longer a
    // member restarts from the first).
    let cursor = state
        .group_last_answered(name)
        .and_then(|last| members.iter().position(|m| *m == last))
        .map_or(0, |i| i + 1);
    state
        .ring_order(group.strategy, &facts, cursor, state.random())
        .into_iter()
        .filter_map(|i| members.get(i).copied())
        .filter(|m| group.ring_in_use || state.in_use(m) == 0)
        .collect()
}

/// The steps of a serial strategy over `order`: each member rings for
/// `member_ring_time`, `retry_delay` after the previous one. Without a group ring
/// time every member rings once; with one the order goes round until it runs out,
/// the last step cut to what is left.
pub(crate) fn serial_steps<'a>(group: &GroupConfig, order: &[&'a str]) -> Vec<SerialStep<'a>> {
    let secs = |s: u32| Duration::from_secs(u64::from(s));
    let member = secs(group.member_ring_time);
    let retry = secs(group.retry_delay);
    let delay = |k: usize| if k == 0 { Duration::ZERO } else { retry };
    let Some(total) = group.ring_time.filter(|&t| t > 0).map(secs) else {
        return order
            .iter()
            .enumerate()
            .map(|(k, &user)| SerialStep {
                user,
                timeout: member,
                delay: delay(k),
            })
            .collect();
    };
    let mut left = total;
    let mut steps = Vec::new();
    let most = order.len().saturating_add(MAX_EXTRA_STEPS);
    for (k, &user) in order.iter().cycle().enumerate().take(most) {
        let delay = delay(k);
        // A pause that uses up the ring time leaves nobody to ring.
        let Some(after) = left.checked_sub(delay).filter(|l| !l.is_zero()) else {
            break;
        };
        let timeout = member.min(after);
        steps.push(SerialStep {
            user,
            timeout,
            delay,
        });
        left = after.saturating_sub(timeout);
        if left.is_zero() {
            break;
        }
    }
    steps
}
