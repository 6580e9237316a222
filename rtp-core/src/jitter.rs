//! An adaptive jitter buffer for one RTP stream, sans-IO.
//!
//! [`JitterBuffer::push`] takes a received packet and its arrival [`Instant`];
//! [`JitterBuffer::pop`] is called once per frame period (e.g. every 20 ms) and returns
//! what to play now: the next packet in sequence order, a [`Playout::Conceal`] marker
//! when that packet is lost (the decoder's loss concealment hook), or `None` when
//! nothing is due (not started, underrun, or waiting for the playout delay).
//! [`JitterBuffer::poll_timeout`] says when something falls due.
//!
//! - **Playout schedule.** A packet is due at `base + (timestamp - base_ts) / rate +
//!   delay`, where `base` is the arrival time the earliest packets had relative to
//!   their timestamps. A packet earlier than that moves `base` back; a window of
//!   packets that were all later moves it forward (sender clock drift).
//! - **Adaptive delay.** The delay follows the largest lateness seen over the last
//!   two windows of [`WINDOW`] packets, within `[min_delay, max_delay]`: it grows at
//!   once, and shrinks by 1/32 of the excess per packet.
//! - **Bounded memory.** At most `max_packets` are held; beyond that the oldest is
//!   dropped and counted.
//! - **Ordering.** Packets are played in sequence order (wrap-around handled);
//!   duplicates and packets older than the one last played are dropped and counted.
//! - **Resets.** A change of SSRC, a sequence jump beyond [`MAX_DROPOUT`] confirmed by
//!   the next packet, or a timestamp that disagrees with the arrival time by more than
//!   `max_timestamp_jump` flushes the buffer and restarts it from the new packet.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use bytes::Bytes;
//! use pbxkit_rtp::jitter::{JitterBuffer, JitterConfig, Playout};
//! use pbxkit_rtp::packet::{PayloadType, RtpPacket, RtpTimestamp, SeqNo, Ssrc};
//!
//! let t0 = Instant::now();
//! let mut jb = JitterBuffer::new(JitterConfig::default())?;
//! let packet = |seq: u16| {
//!     let ts = RtpTimestamp(160 * u32::from(seq));
//!     RtpPacket::new(PayloadType::PCMU, SeqNo(seq), ts, Ssrc(1), Bytes::from_static(&[0xFF; 160]))
//! };
//! // Packet 1 is lost, 3 arrives before 2.
//! jb.push(packet(0), t0);
//! jb.push(packet(3), t0 + Duration::from_millis(55));
//! jb.push(packet(2), t0 + Duration::from_millis(60));
//!
//! let mut played = Vec::new();
//! let mut now = t0;
//! while played.len() < 4 {
//!     now += Duration::from_millis(20);
//!     if let Some(p) = jb.pop(now) {
//!         played.push(match p {
//!             Playout::Packet(p) => format!("play {}", p.sequence().0),
//!             Playout::Conceal { sequence, .. } => format!("conceal {}", sequence.0),
//!         });
//!     }
//! }
//! assert_eq!(played, ["play 0", "conceal 1", "play 2", "play 3"]);
//! assert_eq!(jb.stats().concealed, 1);
//! # Ok::<(), pbxkit_rtp::jitter::ConfigError>(())
//! ```

use crate::packet::{RtpPacket, RtpTimestamp, SeqNo, Ssrc};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Sequence jumps larger than this (either way) need confirmation by the next packet.
pub const MAX_DROPOUT: i64 = 3000;
/// The number of packets over which the lateness peak and the clock drift are measured.
pub const WINDOW: u32 = 64;

/// The settings of a [`JitterBuffer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JitterConfig {
    /// The media clock rate in Hz (8000 for G.711 and G.722).
    pub clock_rate: u32,
    /// The smallest playout delay.
    pub min_delay: Duration,
    /// The largest playout delay.
    pub max_delay: Duration,
    /// The delay before any measurement.
    pub initial_delay: Duration,
    /// The most packets held.
    pub max_packets: usize,
    /// The most consecutive lost frames concealed; past that, playout skips to the next
    /// packet held.
    pub max_conceal: u32,
    /// The largest disagreement between a timestamp and its arrival time before the
    /// stream is taken as restarted.
    pub max_timestamp_jump: Duration,
}

impl Default for JitterConfig {
    fn default() -> Self {
        JitterConfig {
            clock_rate: 8000,
            min_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(300),
            initial_delay: Duration::from_millis(40),
            max_packets: 64,
            max_conceal: 5,
            max_timestamp_jump: Duration::from_secs(2),
        }
    }
}

/// Why a [`JitterConfig`] is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The clock rate is zero.
    #[error("jitter buffer clock rate must not be zero")]
    ZeroClockRate,
    /// `max_packets` is zero.
    #[error("jitter buffer must hold at least one packet")]
    ZeroCapacity,
    /// The delays are not ordered `min_delay <= initial_delay <= max_delay`.
    #[error("jitter buffer delays must satisfy min {min:?} <= initial {initial:?} <= max {max:?}")]
    Delays {
        /// `min_delay`.
        min: Duration,
        /// `initial_delay`.
        initial: Duration,
        /// `max_delay`.
        max: Duration,
    },
}

/// What to play now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Playout {
    /// The next packet.
    Packet(RtpPacket),
    /// The packet with this sequence number is lost: conceal one frame.
    Conceal {
        /// The stream.
        ssrc: Ssrc,
        /// The missing sequence number.
        sequence: SeqNo,
        /// Its estimated timestamp.
        timestamp: RtpTimestamp,
    },
}

impl Playout {
    /// The sequence number played or concealed.
    pub fn sequence(&self) -> SeqNo {
        match self {
            Playout::Packet(p) => p.sequence(),
            Playout::Conceal { sequence, .. } => *sequence,
        }
    }

    /// The stream.
    pub fn ssrc(&self) -> Ssrc {
        match self {
            Playout::Packet(p) => p.ssrc(),
            Playout::Conceal { ssrc, .. } => *ssrc,
        }
    }

    /// The timestamp played or concealed.
    pub fn timestamp(&self) -> RtpTimestamp {
        match self {
            Playout::Packet(p) => p.timestamp(),
            Playout::Conceal { timestamp, .. } => *timestamp,
        }
    }
}

/// What [`JitterBuffer::push`] did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PushOutcome {
    /// Held for playout.
    Buffered,
    /// The buffer was flushed and restarted with this packet (new SSRC, confirmed
    /// sequence jump or timestamp jump).
    Reset,
    /// A copy is already held: dropped.
    Duplicate,
    /// Older than the packet last played: dropped.
    Late,
    /// A sequence jump beyond [`MAX_DROPOUT`]: dropped unless the next packet follows it.
    BadJump,
}

/// Counters of a [`JitterBuffer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JitterStats {
    /// Packets given to `push`.
    pub pushed: u64,
    /// Packets returned by `pop`.
    pub played: u64,
    /// Conceal markers returned by `pop`.
    pub concealed: u64,
    /// Lost frames skipped without concealment (longer gaps than `max_conceal`).
    pub skipped: u64,
    /// Packets dropped as late.
    pub late: u64,
    /// Packets dropped as duplicates.
    pub duplicates: u64,
    /// Packets dropped because the buffer was full.
    pub overflow: u64,
    /// Packets dropped after an unconfirmed sequence jump.
    pub bad_jumps: u64,
    /// Restarts (SSRC change, sequence or timestamp jump).
    pub resets: u64,
    /// Packets discarded by restarts.
    pub flushed: u64,
}

#[derive(Debug, Clone)]
struct Entry {
    packet: RtpPacket,
    ext_ts: i64,
}

/// The per-stream state, created by the first packet and replaced on a reset.
#[derive(Debug, Clone)]
struct Stream {
    ssrc: Ssrc,
    /// The highest sequence number pushed, extended and raw.
    highest: (i64, u16),
    /// The timestamp of the highest packet, extended and raw.
    ts_ref: (i64, u32),
    /// Arrival time of extended timestamp `base_ts` on the earliest-arrival schedule.
    base: Instant,
    base_ts: i64,
    /// The next sequence number to play (unset until the first pop).
    next_seq: Option<i64>,
    next_ts: i64,
    frame_samples: i64,
    conceal_run: u32,
    bad_seq: Option<u16>,
    window_count: u32,
    window_min: i128,
    window_max: i128,
    prev_window_max: i128,
}

/// An adaptive jitter buffer for one RTP stream; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct JitterBuffer {
    config: JitterConfig,
    packets: BTreeMap<i64, Entry>,
    stream: Option<Stream>,
    delay: Duration,
    stats: JitterStats,
}

fn nanos(d: Duration) -> i128 {
    i128::try_from(d.as_nanos()).unwrap_or(i128::MAX)
}

/// `instant + offset` nanoseconds, `None` when not representable.
fn shift(instant: Instant, offset: i128) -> Option<Instant> {
    let magnitude = Duration::from_nanos(u64::try_from(offset.unsigned_abs()).ok()?);
    if offset >= 0 {
        instant.checked_add(magnitude)
    } else {
        instant.checked_sub(magnitude)
    }
}

/// `a - b` in nanoseconds.
fn diff(a: Instant, b: Instant) -> i128 {
    if a >= b { nanos(a - b) } else { -nanos(b - a) }
}

impl JitterBuffer {
    /// An empty buffer, after checking the configuration.
    pub fn new(config: JitterConfig) -> Result<JitterBuffer, ConfigError> {
        if config.clock_rate == 0 {
            return Err(ConfigError::ZeroClockRate);
        }
        if config.max_packets == 0 {
            return Err(ConfigError::ZeroCapacity);
        }
        if !(config.min_delay <= config.initial_delay && config.initial_delay <= config.max_delay) {
            return Err(ConfigError::Delays {
                min: config.min_delay,
                initial: config.initial_delay,
                max: config.max_delay,
            });
        }
        Ok(JitterBuffer {
            config,
            packets: BTreeMap::new(),
            stream: None,
            delay: config.initial_delay,
            stats: JitterStats::default(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &JitterConfig {
        &self.config
    }

    /// The counters.
    pub fn stats(&self) -> &JitterStats {
        &self.stats
    }

    /// The number of packets held.
    pub fn len(&self) -> usize {
        self.packets.len()
    }

    /// True when no packet is held.
    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    /// The current playout delay.
    pub fn delay(&self) -> Duration {
        self.delay
    }

    /// The extended sequence number (counted from the stream's first packet, wraps
    /// included) of the next frame to play, once playout has started.
    pub fn next_extended_seq(&self) -> Option<i64> {
        self.stream.as_ref().and_then(|s| s.next_seq)
    }

    /// The stream being played, if any.
    pub fn ssrc(&self) -> Option<Ssrc> {
        self.stream.as_ref().map(|s| s.ssrc)
    }

    /// Media time `samples` as nanoseconds.
    fn media_nanos(&self, samples: i64) -> i128 {
        i128::from(samples) * 1_000_000_000 / i128::from(self.config.clock_rate)
    }

    /// Starts (or restarts) the stream with `packet`.
    fn start(&mut self, packet: RtpPacket, now: Instant) {
        let seq = packet.sequence().0;
        let ts = packet.timestamp().0;
        let ext_seq = i64::from(seq);
        let ext_ts = i64::from(ts);
        self.stream = Some(Stream {
            ssrc: packet.ssrc(),
            highest: (ext_seq, seq),
            ts_ref: (ext_ts, ts),
            base: now,
            base_ts: ext_ts,
            next_seq: None,
            next_ts: ext_ts,
            frame_samples: i64::from(self.config.clock_rate / 50).max(1),
            conceal_run: 0,
            bad_seq: None,
            window_count: 0,
            window_min: i128::MAX,
            window_max: 0,
            prev_window_max: 0,
        });
        self.packets.insert(ext_seq, Entry { packet, ext_ts });
    }

    fn reset(&mut self, packet: RtpPacket, now: Instant) -> PushOutcome {
        self.stats.resets += 1;
        self.stats.flushed += self.packets.len() as u64;
        self.packets.clear();
        self.start(packet, now);
        PushOutcome::Reset
    }

    /// Takes a received packet that arrived at `now`.
    pub fn push(&mut self, packet: RtpPacket, now: Instant) -> PushOutcome {
        self.stats.pushed += 1;
        let Some(stream) = self.stream.as_mut() else {
            self.start(packet, now);
            return PushOutcome::Buffered;
        };
        if stream.ssrc != packet.ssrc() {
            return self.reset(packet, now);
        }
        let seq = packet.sequence().0;
        let seq_diff = i64::from(SeqNo(seq).wrapping_diff(SeqNo(stream.highest.1)));
        if seq_diff.abs() > MAX_DROPOUT {
            if stream.bad_seq == Some(seq) {
                return self.reset(packet, now);
            }
            stream.bad_seq = Some(seq.wrapping_add(1));
            self.stats.bad_jumps += 1;
            return PushOutcome::BadJump;
        }
        stream.bad_seq = None;
        let ext_seq = stream.highest.0 + seq_diff;
        let ts = packet.timestamp().0;
        let ext_ts = stream.ts_ref.0
            + i64::from(RtpTimestamp(ts).wrapping_diff(RtpTimestamp(stream.ts_ref.1)));
        let base = stream.base;
        let base_ts = stream.base_ts;

        // Lateness relative to the earliest-arrival schedule.
        let expected = self.media_nanos(ext_ts - base_ts);
        let deviation = diff(now, base) - expected;
        if deviation.abs() > nanos(self.config.max_timestamp_jump) {
            return self.reset(packet, now);
        }
        let Some(stream) = self.stream.as_mut() else {
            return PushOutcome::Buffered;
        };
        if stream.next_seq.is_some_and(|next| ext_seq < next) {
            self.stats.late += 1;
            return PushOutcome::Late;
        }
        if self.packets.contains_key(&ext_seq) {
            self.stats.duplicates += 1;
            return PushOutcome::Duplicate;
        }

        if ext_seq > stream.highest.0 {
            // Learn the frame length from consecutive packets.
            if ext_seq == stream.highest.0 + 1 {
                let step = ext_ts - stream.ts_ref.0;
                if step > 0 && step <= i64::from(self.config.clock_rate) {
                    stream.frame_samples = step;
                }
            }
            stream.highest = (ext_seq, seq);
            stream.ts_ref = (ext_ts, ts);
        }
        self.packets.insert(ext_seq, Entry { packet, ext_ts });
        self.measure(deviation);

        while self.packets.len() > self.config.max_packets {
            let Some((dropped, entry)) = self.packets.pop_first() else {
                break;
            };
            self.stats.overflow += 1;
            if let Some(stream) = self.stream.as_mut()
                && let Some(next) = stream.next_seq
                && dropped >= next
            {
                stream.next_seq = Some(dropped + 1);
                stream.next_ts = entry.ext_ts + stream.frame_samples;
            }
        }
        PushOutcome::Buffered
    }

    /// Updates the schedule and the delay with one packet's lateness.
    fn measure(&mut self, mut deviation: i128) {
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        if deviation < 0 {
            // Earlier than any packet before: move the schedule back; the spread of
            // arrivals seen so far grows by as much.
            if let Some(base) = shift(stream.base, deviation) {
                stream.base = base;
                stream.window_max = stream.window_max.saturating_sub(deviation);
                stream.prev_window_max = stream.prev_window_max.saturating_sub(deviation);
                if stream.window_min != i128::MAX {
                    stream.window_min = stream.window_min.saturating_sub(deviation);
                }
            }
            deviation = 0;
        }
        stream.window_min = stream.window_min.min(deviation);
        stream.window_max = stream.window_max.max(deviation);
        stream.window_count += 1;
        let peak = stream.window_max.max(stream.prev_window_max);
        if stream.window_count >= WINDOW {
            // Every packet of the window was late: the sender's clock is slower than
            // ours, or the path got longer. Move the schedule forward.
            let drift = stream.window_min.max(0);
            if let Some(base) = shift(stream.base, drift) {
                stream.base = base;
            }
            stream.prev_window_max = stream.window_max.saturating_sub(drift);
            stream.window_max = 0;
            stream.window_min = i128::MAX;
            stream.window_count = 0;
        }
        let target = Duration::from_nanos(u64::try_from(peak.max(0)).unwrap_or(u64::MAX))
            .clamp(self.config.min_delay, self.config.max_delay);
        if target > self.delay {
            self.delay = target;
        } else {
            self.delay -= (self.delay - target) / 32;
        }
    }

    /// When the packet with extended timestamp `ext_ts` is due; `None` when not
    /// representable (treated as "long ago" if negative, "never" if positive).
    fn due(&self, stream: &Stream, ext_ts: i64) -> Result<Instant, bool> {
        let offset = self.media_nanos(ext_ts - stream.base_ts) + nanos(self.delay);
        shift(stream.base, offset).ok_or(offset < 0)
    }

    fn is_due(&self, stream: &Stream, ext_ts: i64, now: Instant) -> bool {
        match self.due(stream, ext_ts) {
            Ok(at) => at <= now,
            Err(past) => past,
        }
    }

    /// When [`Self::pop`] will next return something, if packets are held.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let stream = self.stream.as_ref()?;
        let (&first, entry) = self.packets.first_key_value()?;
        let ext_ts = match stream.next_seq {
            Some(next) if next < first => stream.next_ts.min(entry.ext_ts),
            _ => entry.ext_ts,
        };
        self.due(stream, ext_ts).ok()
    }

    /// What to play at `now`: at most one frame per call.
    pub fn pop(&mut self, now: Instant) -> Option<Playout> {
        let stream = self.stream.as_ref()?;
        let (&first, first_entry) = self.packets.first_key_value()?;
        let first_ts = first_entry.ext_ts;
        let next = stream.next_seq.unwrap_or(first);
        if first == next {
            if !self.is_due(stream, first_ts, now) {
                return None;
            }
            return self.play_first();
        }
        // `next` is missing (everything held is newer).
        let next_ts = stream.next_ts.min(first_ts);
        if !self.is_due(stream, next_ts, now) {
            return None;
        }
        let max_conceal = self.config.max_conceal;
        let stream = self.stream.as_mut()?;
        if stream.conceal_run >= max_conceal {
            // A long gap: skip to the next packet held.
            self.stats.skipped += u64::try_from(first - next).unwrap_or(0);
            stream.next_seq = Some(first);
            let stream = self.stream.as_ref()?;
            if !self.is_due(stream, first_ts, now) {
                return None;
            }
            return self.play_first();
        }
        stream.conceal_run += 1;
        stream.next_seq = Some(next + 1);
        stream.next_ts = next_ts + stream.frame_samples;
        self.stats.concealed += 1;
        // Truncation to the 16- and 32-bit wire values is the point.
        Some(Playout::Conceal {
            ssrc: stream.ssrc,
            sequence: SeqNo(next as u16),
            timestamp: RtpTimestamp(next_ts as u32),
        })
    }

    fn play_first(&mut self) -> Option<Playout> {
        let (seq, entry) = self.packets.pop_first()?;
        let stream = self.stream.as_mut()?;
        stream.next_seq = Some(seq + 1);
        stream.next_ts = entry.ext_ts + stream.frame_samples;
        stream.conceal_run = 0;
        self.stats.played += 1;
        Some(Playout::Packet(entry.packet))
    }

    /// Drops everything and forgets the stream (e.g. on hold or re-INVITE); the delay
    /// estimate is kept.
    pub fn clear(&mut self) {
        self.packets.clear();
        self.stream = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::PayloadType;
    use bytes::Bytes;

    fn packet(ssrc: u32, seq: u16, ts: u32) -> RtpPacket {
        RtpPacket::new(
            PayloadType::PCMU,
            SeqNo(seq),
            RtpTimestamp(ts),
            Ssrc(ssrc),
            Bytes::from_static(&[0xFF; 4]),
        )
    }

    fn ms(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    /// Pops every 20 ms from `from` to `to` ms; played sequence numbers as strings,
    /// concealed ones with a `c` prefix.
    fn drain(jb: &mut JitterBuffer, t0: Instant, from: u64, to: u64) -> Vec<String> {
        let mut out = Vec::new();
        let mut t = from;
        while t <= to {
            while let Some(p) = jb.pop(ms(t0, t)) {
                out.push(match p {
                    Playout::Packet(p) => format!("{}", p.sequence().0),
                    Playout::Conceal { sequence, .. } => format!("c{}", sequence.0),
                });
            }
            t += 20;
        }
        out
    }

    #[test]
    fn config_is_checked() {
        let bad = JitterConfig {
            min_delay: Duration::from_millis(100),
            ..JitterConfig::default()
        };
        assert!(matches!(
            JitterBuffer::new(bad),
            Err(ConfigError::Delays { .. })
        ));
        let bad = JitterConfig {
            max_packets: 0,
            ..JitterConfig::default()
        };
        assert_eq!(
            JitterBuffer::new(bad).unwrap_err(),
            ConfigError::ZeroCapacity
        );
        let bad = JitterConfig {
            clock_rate: 0,
            ..JitterConfig::default()
        };
        assert_eq!(
            JitterBuffer::new(bad).unwrap_err(),
            ConfigError::ZeroClockRate
        );
    }

    #[test]
    fn in_order_stream_plays_after_the_delay() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(JitterConfig::default()).unwrap();
        assert_eq!(jb.pop(t0), None);
        assert_eq!(jb.poll_timeout(), None);
        for i in 0..10u16 {
            jb.push(
                packet(1, 1000 + i, 160 * u32::from(i)),
                ms(t0, 20 * u64::from(i)),
            );
        }
        // Due at arrival + 40 ms initial delay (shrinking towards 20 ms).
        assert!(jb.poll_timeout().unwrap() <= ms(t0, 40));
        assert_eq!(jb.pop(ms(t0, 10)), None);
        let played = drain(&mut jb, t0, 40, 400);
        let expected: Vec<String> = (1000..1010).map(|s: u16| s.to_string()).collect();
        assert_eq!(played, expected);
        assert_eq!(jb.stats().played, 10);
        assert!(jb.is_empty());
    }

    #[test]
    fn reorder_duplicates_and_late() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(JitterConfig::default()).unwrap();
        assert_eq!(
            jb.push(packet(1, 2, 320), ms(t0, 40)),
            PushOutcome::Buffered
        );
        // Reordered before playout starts: still played in order.
        assert_eq!(
            jb.push(packet(1, 1, 160), ms(t0, 41)),
            PushOutcome::Buffered
        );
        assert_eq!(
            jb.push(packet(1, 1, 160), ms(t0, 42)),
            PushOutcome::Duplicate
        );
        assert_eq!(drain(&mut jb, t0, 60, 120), ["1", "2"]);
        assert_eq!(jb.push(packet(1, 0, 0), ms(t0, 130)), PushOutcome::Late);
        assert_eq!(jb.push(packet(1, 2, 320), ms(t0, 130)), PushOutcome::Late);
        let s = jb.stats();
        assert_eq!((s.duplicates, s.late), (1, 2));
    }

    #[test]
    fn loss_is_concealed_then_skipped() {
        let t0 = Instant::now();
        let config = JitterConfig {
            max_conceal: 2,
            ..JitterConfig::default()
        };
        let mut jb = JitterBuffer::new(config).unwrap();
        jb.push(packet(1, 0, 0), t0);
        jb.push(packet(1, 1, 160), ms(t0, 20));
        jb.push(packet(1, 3, 480), ms(t0, 60));
        // 4..=9 lost.
        jb.push(packet(1, 10, 1600), ms(t0, 200));
        let played = drain(&mut jb, t0, 20, 400);
        assert_eq!(played, ["0", "1", "c2", "3", "c4", "c5", "10"]);
        assert_eq!(jb.stats().skipped, 4);
        assert_eq!(jb.stats().concealed, 3);
    }

    #[test]
    fn wraps_around() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(JitterConfig::default()).unwrap();
        let seqs = [65534u16, 65535, 0, 1];
        for (i, s) in seqs.iter().enumerate() {
            let ts = (u32::MAX - 200).wrapping_add(160 * i as u32);
            jb.push(packet(1, *s, ts), ms(t0, 20 * i as u64));
        }
        assert_eq!(drain(&mut jb, t0, 0, 300), ["65534", "65535", "0", "1"]);
    }

    #[test]
    fn bounded_memory_drops_oldest() {
        let t0 = Instant::now();
        let config = JitterConfig {
            max_packets: 4,
            ..JitterConfig::default()
        };
        let mut jb = JitterBuffer::new(config).unwrap();
        for i in 0..10u16 {
            jb.push(packet(1, i, 160 * u32::from(i)), ms(t0, 20 * u64::from(i)));
            assert!(jb.len() <= 4);
        }
        assert_eq!(jb.stats().overflow, 6);
        let played = drain(&mut jb, t0, 200, 600);
        assert_eq!(played, ["6", "7", "8", "9"]);
    }

    #[test]
    fn ssrc_change_and_jumps_reset() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(JitterConfig::default()).unwrap();
        jb.push(packet(1, 10, 0), t0);
        jb.push(packet(1, 11, 160), ms(t0, 20));
        assert_eq!(
            jb.push(packet(2, 500, 9999), ms(t0, 40)),
            PushOutcome::Reset
        );
        assert_eq!(jb.ssrc(), Some(Ssrc(2)));
        assert_eq!(jb.len(), 1);
        assert_eq!(jb.stats().flushed, 2);
        // One stray packet far away is dropped; two in sequence restart the stream.
        assert_eq!(
            jb.push(packet(2, 20000, 0), ms(t0, 60)),
            PushOutcome::BadJump
        );
        assert_eq!(
            jb.push(packet(2, 501, 10159), ms(t0, 60)),
            PushOutcome::Buffered
        );
        assert_eq!(
            jb.push(packet(2, 30000, 0), ms(t0, 80)),
            PushOutcome::BadJump
        );
        assert_eq!(
            jb.push(packet(2, 30001, 160), ms(t0, 100)),
            PushOutcome::Reset
        );
        // A timestamp 10 s ahead of the arrival time: the source restarted.
        assert_eq!(
            jb.push(packet(2, 30002, 160 + 80_000), ms(t0, 120)),
            PushOutcome::Reset
        );
        assert_eq!(jb.stats().resets, 3);
        assert_eq!(drain(&mut jb, t0, 120, 300), ["30002"]);
    }

    #[test]
    fn delay_grows_fast_and_shrinks_slowly() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(JitterConfig::default()).unwrap();
        let mut now_ms = 0;
        for i in 0..50u16 {
            now_ms = 20 * u64::from(i);
            jb.push(packet(1, i, 160 * u32::from(i)), ms(t0, now_ms));
            let _ = jb.pop(ms(t0, now_ms));
        }
        assert!(jb.delay() < Duration::from_millis(30), "{:?}", jb.delay());
        // One packet 150 ms late: the delay jumps to cover it.
        jb.push(packet(1, 50, 8000), ms(t0, 1000 + 150));
        assert!(jb.delay() >= Duration::from_millis(150), "{:?}", jb.delay());
        // Smooth traffic afterwards: the delay is still high a few packets later and
        // back near the minimum after two windows.
        for i in 51..60u16 {
            jb.push(packet(1, i, 160 * u32::from(i)), ms(t0, 20 * u64::from(i)));
        }
        assert!(jb.delay() >= Duration::from_millis(140));
        for i in 60..400u16 {
            now_ms = 20 * u64::from(i);
            jb.push(packet(1, i, 160 * u32::from(i)), ms(t0, now_ms));
            while jb.pop(ms(t0, now_ms)).is_some() {}
        }
        assert!(jb.delay() < Duration::from_millis(40), "{:?}", jb.delay());
        let _ = now_ms;
    }

    #[test]
    fn slow_sender_clock_does_not_reset() {
        // The sender's clock runs 1 % slow: its packets come later and later. The
        // schedule follows; no reset over 5 minutes.
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(JitterConfig::default()).unwrap();
        for i in 0..15_000u32 {
            let arrival = t0 + Duration::from_micros(u64::from(i) * 20_200);
            jb.push(packet(1, i as u16, 160 * i), arrival);
            while jb.pop(arrival + Duration::from_millis(40)).is_some() {}
        }
        assert_eq!(jb.stats().resets, 0);
        assert_eq!(jb.stats().late, 0);
        assert!(jb.delay() < Duration::from_millis(100), "{:?}", jb.delay());
    }
}
