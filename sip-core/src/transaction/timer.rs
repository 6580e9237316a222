//! RFC 3261 §17 timers: the base values T1, T2, T4 and the named timers A–K (and L,
//! M from RFC 6026) with the durations derived from them.

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
