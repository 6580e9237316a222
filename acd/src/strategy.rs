//! Distribution strategies and their metrics, as app_queue's `calc_metric`: the member
//! with the lowest metric rings first (`ringall`: every member sharing the lowest
//! metric). The metric is `penalty × 1 000 000 + strategy metric`, except `wrandom`
//! whose metric is `rand % ((1 + penalty) × 1000)`.
//!
//! The queue engine ranks its members with these metrics, and so do the PBX's ring
//! groups ([`ring_order`]): XiVO runs groups as queues, so a group's `rrmemory` or
//! `wrandom` behaves as a queue's.
//!
//! ```
//! use pbxkit_acd::strategy::{MemberFacts, Strategy, ring_order};
//! use std::time::Duration;
//!
//! // Three members; the second ended a call 10 s ago, the others 60 s and never.
//! let mut members = [MemberFacts::at(0), MemberFacts::at(1), MemberFacts::at(2)];
//! members[0].since_last_call = Some(Duration::from_secs(60));
//! members[1].since_last_call = Some(Duration::from_secs(10));
//! let mut rng = || 0_u32;
//! assert_eq!(ring_order(Strategy::LeastRecent, &members, 0, &mut rng), [2, 0, 1]);
//! // rrmemory after member 0 answered: the cursor is past it.
//! assert_eq!(ring_order(Strategy::RrMemory, &members, 1, &mut rng), [1, 2, 0]);
//! ```

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// How a queue picks the members to ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Strategy {
    /// Ring every available member of the best penalty at once.
    #[default]
    RingAll,
    /// The member whose last call (in this queue) ended longest ago; never-called first.
    LeastRecent,
    /// The member with the fewest completed calls in this queue.
    FewestCalls,
    /// A random member (`rand % 1000`) within the best penalty.
    Random,
    /// Round robin remembering where the queue stopped (`rrpos`).
    RrMemory,
    /// As `rrmemory`, members kept in the order they were added.
    RrOrdered,
    /// Members in order, from the first, for each caller (the caller remembers `linpos`).
    Linear,
    /// Random weighted by penalty: `rand % ((1 + penalty) × 1000)`.
    WRandom,
}

impl Strategy {
    /// Every strategy, in app_queue's documentation order.
    pub const ALL: [Strategy; 8] = [
        Strategy::RingAll,
        Strategy::LeastRecent,
        Strategy::FewestCalls,
        Strategy::Random,
        Strategy::RrMemory,
        Strategy::RrOrdered,
        Strategy::Linear,
        Strategy::WRandom,
    ];

    /// The name used in configuration (`ringall`, `leastrecent`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RingAll => "ringall",
            Self::LeastRecent => "leastrecent",
            Self::FewestCalls => "fewestcalls",
            Self::Random => "random",
            Self::RrMemory => "rrmemory",
            Self::RrOrdered => "rrordered",
            Self::Linear => "linear",
            Self::WRandom => "wrandom",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A strategy name that is not one of app_queue's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown queue strategy {0:?}")]
pub struct UnknownStrategy(pub String);

impl FromStr for Strategy {
    type Err = UnknownStrategy;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "ringall" => Self::RingAll,
            "leastrecent" => Self::LeastRecent,
            "fewestcalls" => Self::FewestCalls,
            "random" => Self::Random,
            // app_queue accepts `roundrobin` as the old name of rrmemory.
            "rrmemory" | "roundrobin" => Self::RrMemory,
            "rrordered" => Self::RrOrdered,
            "linear" => Self::Linear,
            "wrandom" => Self::WRandom,
            _ => return Err(UnknownStrategy(s.to_owned())),
        })
    }
}

/// Randomness for `random` and `wrandom`, injected so that runs are reproducible.
pub trait Rng {
    /// A uniformly distributed non-negative number (app_queue's `ast_random()`).
    fn next_u32(&mut self) -> u32;
}

impl<F: FnMut() -> u32> Rng for F {
    fn next_u32(&mut self) -> u32 {
        self()
    }
}

/// A small seeded generator (SplitMix64) for simulations and the PBX.
#[derive(Debug, Clone)]
pub struct SeededRng(u64);

impl SeededRng {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
}

impl Rng for SeededRng {
    fn next_u32(&mut self) -> u32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        // A non-negative 31-bit value, as ast_random().
        ((z ^ (z >> 31)) >> 33) as u32
    }
}

/// What `calc_metric` needs to know about one member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemberFacts {
    /// Its penalty.
    pub penalty: u32,
    /// Its position in the queue's member list (`queuepos`, the iteration index),
    /// counting members that cannot ring now.
    pub position: usize,
    /// Completed calls in this queue.
    pub calls: u32,
    /// Time since its last call in this queue ended, if it had one.
    pub since_last_call: Option<Duration>,
}

impl MemberFacts {
    /// A member at `position` with no penalty and no history.
    pub fn at(position: usize) -> Self {
        Self {
            penalty: 0,
            position,
            calls: 0,
            since_last_call: None,
        }
    }
}

/// The indices of `members` in the order `strategy` offers them a call one after
/// another, as app_queue's `find_best` picks the untried member of lowest metric
/// (ties: the earlier position). `cursor` is the queue's `rrpos` for the round-robin
/// strategies (the position after the member who answered last) and the caller's
/// `linpos` for `linear` (0 for a new caller). `ringall` orders by penalty only:
/// the members sharing the first metric ring together.
pub fn ring_order(
    strategy: Strategy,
    members: &[MemberFacts],
    cursor: usize,
    rng: &mut dyn Rng,
) -> Vec<usize> {
    let mut wrapped = false;
    let mut ranked: Vec<(i64, usize, usize)> = members
        .iter()
        .enumerate()
        .map(|(i, m)| {
            (
                metric(strategy, *m, cursor, &mut wrapped, rng),
                m.position,
                i,
            )
        })
        .collect();
    ranked.sort_unstable();
    ranked.into_iter().map(|(_, _, i)| i).collect()
}

/// The metric of one member. `cursor` is the queue's `rrpos` (rr strategies) or the
/// caller's `linpos` (linear); `wrapped` is set when a member lies past the cursor.
///
/// Generic over the generator (not `dyn`): a large queue draws once per member,
/// and the draw is inlined; and inlined itself, so that a queue's loop over its
/// members tests the strategy once, not once per member.
#[inline(always)]
pub(crate) fn metric<R: Rng + ?Sized>(
    strategy: Strategy,
    member: MemberFacts,
    cursor: usize,
    wrapped: &mut bool,
    rng: &mut R,
) -> i64 {
    let penalty = i64::from(member.penalty) * 1_000_000;
    let position = i64::try_from(member.position).unwrap_or(i64::MAX / 4);
    let round_robin = |wrapped: &mut bool| {
        if member.position < cursor {
            1000 + position
        } else {
            if member.position > cursor {
                *wrapped = true;
            }
            position
        }
    };
    match strategy {
        Strategy::RingAll => penalty,
        Strategy::Linear | Strategy::RrMemory | Strategy::RrOrdered => {
            round_robin(wrapped) + penalty
        }
        Strategy::Random => i64::from(rng.next_u32() % 1000) + penalty,
        Strategy::WRandom => {
            let modulus = (1 + u64::from(member.penalty)) * 1000;
            i64::try_from(u64::from(rng.next_u32()) % modulus).unwrap_or(i64::MAX)
        }
        Strategy::FewestCalls => i64::from(member.calls) + penalty,
        Strategy::LeastRecent => {
            let recency = match member.since_last_call {
                None => 0,
                Some(d) => 1_000_000 - i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4),
            };
            recency + penalty
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(penalty: u32, position: usize) -> MemberFacts {
        MemberFacts {
            penalty,
            position,
            calls: 0,
            since_last_call: None,
        }
    }

    #[test]
    fn metrics_follow_calc_metric() {
        let mut wrapped = false;
        let mut rng = || 1234_u32;
        let m = |s, f, cursor, w: &mut bool, r: &mut dyn Rng| metric(s, f, cursor, w, r);
        assert_eq!(
            m(Strategy::RingAll, facts(2, 0), 0, &mut wrapped, &mut rng),
            2_000_000
        );
        assert_eq!(
            m(Strategy::RrMemory, facts(0, 1), 2, &mut wrapped, &mut rng),
            1001
        );
        assert!(!wrapped);
        assert_eq!(
            m(Strategy::RrMemory, facts(1, 3), 2, &mut wrapped, &mut rng),
            1_000_003
        );
        assert!(wrapped);
        assert_eq!(
            m(Strategy::Random, facts(1, 0), 0, &mut wrapped, &mut rng),
            1_000_234
        );
        // wrandom: no penalty offset, the modulus grows with the penalty.
        assert_eq!(
            m(Strategy::WRandom, facts(0, 0), 0, &mut wrapped, &mut rng),
            234
        );
        assert_eq!(
            m(Strategy::WRandom, facts(1, 0), 0, &mut wrapped, &mut rng),
            1234
        );
        let recent = MemberFacts {
            since_last_call: Some(Duration::from_secs(30)),
            calls: 4,
            ..facts(0, 0)
        };
        assert_eq!(
            m(Strategy::LeastRecent, recent, 0, &mut wrapped, &mut rng),
            999_970
        );
        assert_eq!(
            m(Strategy::FewestCalls, recent, 0, &mut wrapped, &mut rng),
            4
        );
    }

    #[test]
    fn names() {
        for s in Strategy::ALL {
            assert_eq!(s.as_str().parse::<Strategy>(), Ok(s));
        }
        assert_eq!("roundrobin".parse::<Strategy>(), Ok(Strategy::RrMemory));
        assert!("best".parse::<Strategy>().is_err());
        let mut a = SeededRng::new(7);
        let mut b = SeededRng::new(7);
        assert_eq!(a.next_u32(), b.next_u32());
        assert!(a.next_u32() < 1 << 31);
    }
}
