//! Ring groups: the order members ring in for each [`RingStrategy`], and the steps
//! of a serial group call (one member a step, the member ring time each, the retry
//! delay between them, round again until the group's ring time runs out).
//!
//! Strategies that depend on history (last answerer, least recent, fewest calls) or
//! on chance read it from [`LiveState`]: the library keeps no state.

use std::time::Duration;

use crate::config::{GroupConfig, RingStrategy};
use crate::decision::LiveState;

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
/// in use.
pub(crate) fn member_order<'a>(group: &'a GroupConfig, state: &dyn LiveState) -> Vec<&'a str> {
    let mut members: Vec<&'a str> = group
        .members
        .iter()
        .map(String::as_str)
        .filter(|m| group.ring_in_use || state.in_use(m) == 0)
        .collect();
    let name = group.name.as_str();
    match group.strategy {
        RingStrategy::RingAll | RingStrategy::Linear => {}
        RingStrategy::RoundRobinMemory => {
            // Asterisk's rrmemory: the member after the one who answered last, going
            // round the definition order (a last answerer left out as in use, or no
            // longer a member, restarts from the first).
            let start = state
                .group_last_answered(name)
                .and_then(|last| members.iter().position(|m| *m == last))
                .map_or(0, |i| i + 1);
            let len = members.len();
            if len > 0 {
                members.rotate_left(start % len);
            }
        }
        // Stable sorts: ties keep the definition order.
        RingStrategy::LeastRecent => {
            members.sort_by_key(|m| state.member_last_call(name, m));
        }
        RingStrategy::FewestCalls => {
            members.sort_by_key(|m| state.member_calls(name, m));
        }
        RingStrategy::Random | RingStrategy::WeightedRandom => {
            shuffle(&mut members, state.random());
        }
    }
    members
}

/// Fisher–Yates with a SplitMix64 stream from `seed`: the same seed gives the same
/// order, so tests and simulations are deterministic.
fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut x = seed;
    let mut next = || {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    for i in (1..items.len()).rev() {
        let bound = u64::try_from(i).unwrap_or(u64::MAX).saturating_add(1);
        let j = usize::try_from(next() % bound).unwrap_or(0);
        items.swap(i, j);
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffle_is_a_permutation_and_depends_on_the_seed() {
        let base: Vec<u32> = (0..10).collect();
        let mut orders = std::collections::HashSet::new();
        for seed in 0..20 {
            let mut items = base.clone();
            shuffle(&mut items, seed);
            let mut sorted = items.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, base);
            orders.insert(items);
        }
        assert!(orders.len() > 10, "{orders:?}");
        let mut empty: Vec<u32> = Vec::new();
        shuffle(&mut empty, 7);
        assert!(empty.is_empty());
    }
}
