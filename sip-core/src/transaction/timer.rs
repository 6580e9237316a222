//! RFC 3261 §17 timers: the base values T1, T2, T4 and the named timers A–K (and L,
//! M from RFC 6026) with the durations derived from them.
//!
//! ```
//! use pbxkit_sip::transaction::Timers;
//! use std::time::Duration;
//!
//! let timers = Timers::default();
//! // Timer B/F: 64 × T1.
//! assert_eq!(timers.timeout(), Duration::from_secs(32));
//! // Timer E doubles from T1 and stops at T2; Timer A keeps doubling.
//! let e: Vec<_> = (0..5).map(|n| timers.retransmit_interval(n, true).as_millis()).collect();
//! assert_eq!(e, [500, 1000, 2000, 4000, 4000]);
//! assert_eq!(timers.retransmit_interval(4, false), Duration::from_secs(8));
//! // A faster network: a smaller T1 shortens every timer derived from it.
//! let lan = Timers { t1: Duration::from_millis(100), ..Timers::default() };
//! assert_eq!(lan.timeout(), Duration::from_millis(6400));
//! ```

use std::time::Duration;

/// The timer base values; the RFC defaults are T1 = 500 ms, T2 = 4 s, T4 = 5 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// Round-trip time estimate.
    pub t1: Duration,
    /// Longest retransmit interval for non-INVITE requests and INVITE responses.
    pub t2: Duration,
    /// Longest time a message stays in the network.
    pub t4: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl Timers {
    /// 64 × T1: the transaction timeout (Timers B, F, H, J, L, M).
    pub fn timeout(&self) -> Duration {
        self.t1 * 64
    }

    /// The retransmit interval after `n` retransmissions, doubling from T1, capped at
    /// T2 when `capped` (Timers E and G) and uncapped otherwise (Timer A).
    pub fn retransmit_interval(&self, n: u32, capped: bool) -> Duration {
        let interval = self.t1.saturating_mul(1u32 << n.min(16));
        if capped {
            interval.min(self.t2)
        } else {
            interval
        }
    }
}

/// A named transaction timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Timer {
    /// INVITE client: retransmit the request (unreliable transports).
    A,
    /// INVITE client: give up waiting for a response.
    B,
    /// INVITE client: absorb response retransmissions after a non-2xx final.
    D,
    /// Non-INVITE client: retransmit the request.
    E,
    /// Non-INVITE client: give up waiting for a final response.
    F,
    /// INVITE server: retransmit the final response.
    G,
    /// INVITE server: give up waiting for the ACK.
    H,
    /// INVITE server: absorb ACK retransmissions.
    I,
    /// Non-INVITE server: absorb request retransmissions.
    J,
    /// Non-INVITE client: absorb response retransmissions.
    K,
    /// INVITE server, after a 2xx (RFC 6026): absorb INVITE retransmissions.
    L,
    /// INVITE client, after a 2xx (RFC 6026): pass 2xx retransmissions to the TU.
    M,
    /// INVITE server: send 100 Trying if the TU has not answered within 200 ms.
    Trying,
}

impl Timer {
    /// Every timer, for forgetting all of a transaction's deadlines.
    pub(crate) const ALL: [Timer; 13] = [
        Timer::A,
        Timer::B,
        Timer::D,
        Timer::E,
        Timer::F,
        Timer::G,
        Timer::H,
        Timer::I,
        Timer::J,
        Timer::K,
        Timer::L,
        Timer::M,
        Timer::Trying,
    ];
}

#[cfg(test)]
mod tests {
    use super::Timer;

    #[test]
    fn all_lists_every_timer_once() {
        // A new variant fails to compile here until it is added to `Timer::ALL`.
        let index = |t: Timer| match t {
            Timer::A => 0,
            Timer::B => 1,
            Timer::D => 2,
            Timer::E => 3,
            Timer::F => 4,
            Timer::G => 5,
            Timer::H => 6,
            Timer::I => 7,
            Timer::J => 8,
            Timer::K => 9,
            Timer::L => 10,
            Timer::M => 11,
            Timer::Trying => 12,
        };
        let mut seen = [false; Timer::ALL.len()];
        for t in Timer::ALL {
            assert!(!std::mem::replace(&mut seen[index(t)], true), "{t:?} twice");
        }
        assert!(seen.iter().all(|s| *s));
    }
}
