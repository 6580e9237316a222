//! How long the engine's steps take on the real clock: a fixed-size histogram with
//! logarithmic buckets (32 per power of two, so a quantile is given within about
//! 3 %), cheap enough to record every step of a busy PBX.
//!
//! ```
//! use pbxkit::engine::Latencies;
//! use std::time::Duration;
//!
//! let mut l = Latencies::default();
//! for us in 1..=100 {
//!     l.record(Duration::from_micros(us));
//! }
//! assert_eq!(l.count(), 100);
//! let median = l.quantile(0.5).as_micros();
//! assert!((50..=52).contains(&median), "{median}");
//! assert_eq!(l.max(), Duration::from_micros(100));
//! ```

use std::time::Duration;

/// Bits of a value kept below its leading one: 2⁵ sub-buckets per power of two.
const BITS: u32 = 5;
/// Sub-buckets per power of two.
const SUB: u32 = 1 << BITS;
/// Powers of two of nanoseconds covered (2⁴⁰ ns is 18 minutes).
const POWERS: u32 = 40;

/// A histogram of durations.
#[derive(Clone)]
pub struct Latencies {
    counts: Box<[u64; (POWERS * SUB) as usize]>,
    count: u64,
    max: u64,
}

impl Default for Latencies {
    fn default() -> Latencies {
        Latencies {
            counts: Box::new([0; (POWERS * SUB) as usize]),
            count: 0,
            max: 0,
        }
    }
}

impl std::fmt::Debug for Latencies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Latencies")
            .field("count", &self.count)
            .field("median", &self.quantile(0.5))
            .field("max", &self.max())
            .finish()
    }
}

/// The bucket of `ns` nanoseconds: below [`SUB`] one per value, then the power of
/// two and the next [`BITS`] bits.
fn bucket(ns: u64) -> usize {
    if ns < u64::from(SUB) {
        return ns as usize;
    }
    let power = 63 - ns.leading_zeros(); // ≥ BITS
    let sub = (ns >> (power - BITS)) & u64::from(SUB - 1);
    let index = (power - BITS + 1) * SUB + sub as u32;
    (index as usize).min((POWERS * SUB) as usize - 1)
}

/// The largest value of bucket `index`.
fn upper(index: usize) -> u64 {
    let index = index as u32;
    if index < SUB {
        return u64::from(index);
    }
    let power = index / SUB + BITS - 1;
    let sub = u64::from(index % SUB);
    ((u64::from(SUB) + sub + 1) << (power - BITS)) - 1
}

impl Latencies {
    /// Counts one step that took `d`.
    pub fn record(&mut self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.counts[bucket(ns)] += 1;
        self.count += 1;
        self.max = self.max.max(ns);
    }

    /// Steps counted.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The longest step.
    pub fn max(&self) -> Duration {
        Duration::from_nanos(self.max)
    }

    /// The duration `q` (0 to 1) of the steps took at most, rounded up to its
    /// bucket (never above the longest step); zero when nothing was counted.
    pub fn quantile(&self, q: f64) -> Duration {
        if self.count == 0 {
            return Duration::ZERO;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Duration::from_nanos(upper(index).min(self.max));
            }
        }
        self.max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_falls_in_a_bucket_whose_bound_is_within_a_thirty_second() {
        for ns in (0..10_000u64).chain([1 << 20, (1 << 30) + 12_345, u64::from(u32::MAX)]) {
            let b = bucket(ns);
            assert!(upper(b) >= ns, "{ns}: bucket {b} ends at {}", upper(b));
            assert!(
                b == 0 || upper(b - 1) < ns,
                "{ns}: bucket {b} is not the first"
            );
            assert!(
                upper(b) - ns <= ns / u64::from(SUB),
                "{ns}: bound {}",
                upper(b)
            );
        }
        // Beyond the range, the last bucket.
        assert_eq!(bucket(u64::MAX), (POWERS * SUB) as usize - 1);
    }

    #[test]
    fn quantiles_follow_the_distribution() {
        let mut l = Latencies::default();
        assert_eq!(l.quantile(0.5), Duration::ZERO);
        for _ in 0..99 {
            l.record(Duration::from_micros(3));
        }
        l.record(Duration::from_millis(2));
        let p50 = l.quantile(0.5);
        assert!(p50 >= Duration::from_micros(3) && p50 < Duration::from_nanos(3_100));
        assert!(l.quantile(0.99) < Duration::from_nanos(3_100));
        assert_eq!(l.quantile(1.0), Duration::from_millis(2));
        assert_eq!(l.count(), 100);
    }
}
