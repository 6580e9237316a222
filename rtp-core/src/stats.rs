//! Reception statistics and RTCP report timing (RFC 3550 Appendix A).
//!
//! - [`SourceStats`]: one remote source. Sequence tracking with probation and resync
//!   (A.1), cumulative and per-interval loss (A.3), interarrival jitter (A.8) with
//!   arrival times given as [`Instant`]s and converted to the media clock, and the
//!   last-SR bookkeeping of a [`ReportBlock`].
//! - [`ReceptionStats`]: every source heard on a session, bounded in number, producing
//!   the [`ReportBlock`]s of a [`ReceiverReport`].
//! - [`RtcpScheduler`]: when to send the next report (A.7): the interval computed from
//!   the session bandwidth, the number of members and senders and the average RTCP
//!   packet size, with a 5 s minimum, randomisation (the random value is a parameter,
//!   not a call into a generator) and timer reconsideration.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use pbxkit_rtp::packet::{RtpTimestamp, SeqNo, Ssrc};
//! use pbxkit_rtp::stats::SourceStats;
//!
//! let t0 = Instant::now();
//! let mut source = SourceStats::new(Ssrc(7), 8000);
//! for i in 0..50u16 {
//!     if i == 20 {
//!         continue; // lost
//!     }
//!     let at = t0 + Duration::from_millis(20 * u64::from(i));
//!     source.update(SeqNo(1000 + i), RtpTimestamp(160 * u32::from(i)), at);
//! }
//! let block = source.report_block(t0 + Duration::from_secs(1));
//! assert_eq!(block.cumulative_lost.get(), 1);
//! assert_eq!(block.extended_highest_seq, 1049);
//! assert_eq!(block.jitter, 0); // perfectly paced
//! ```

use crate::packet::{RtpTimestamp, SeqNo, Ssrc};
use crate::rtcp::{CumulativeLost, NtpTime, ReceiverReport, ReportBlock};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Packets in sequence needed before a new source is valid (A.1).
pub const MIN_SEQUENTIAL: u16 = 2;
/// The largest forward jump still taken as the same sequence (A.1).
pub const MAX_DROPOUT: u16 = 3000;
/// The largest backward jump still taken as reordering (A.1).
pub const MAX_MISORDER: u16 = 100;
const RTP_SEQ_MOD: u32 = 1 << 16;

/// What [`SourceStats::update`] made of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SeqStatus {
    /// The packet counts: in sequence, reordered or duplicated within the limits.
    Valid,
    /// The source is still on probation (fewer than [`MIN_SEQUENTIAL`] packets in
    /// sequence); the packet is not counted.
    Probation,
    /// A jump larger than [`MAX_DROPOUT`] (or backwards over [`MAX_MISORDER`]); the
    /// packet is not counted. If the next packet follows it, the sequence is reset there.
    BadJump,
    /// The packet followed a bad jump: the source restarted its sequence and the
    /// statistics were reset.
    Resynced,
}

/// Reception statistics for one source (RFC 3550 A.1, A.3, A.8).
#[derive(Debug, Clone)]
pub struct SourceStats {
    ssrc: Ssrc,
    clock_rate: u32,
    max_seq: u16,
    cycles: u32,
    base_seq: u32,
    bad_seq: u32,
    probation: u16,
    received: u32,
    expected_prior: u32,
    received_prior: u32,
    /// Arrival reference for converting `Instant`s to the media clock.
    epoch: Option<Instant>,
    transit: Option<u32>,
    /// Jitter scaled by 16, as in A.8.
    jitter_q4: u64,
    last_sr: Option<(u32, Instant)>,
}

impl SourceStats {
    /// Statistics for `ssrc`, whose media clock runs at `clock_rate` Hz (a rate of 0
    /// is taken as 8000).
    pub fn new(ssrc: Ssrc, clock_rate: u32) -> SourceStats {
        SourceStats {
            ssrc,
            clock_rate: if clock_rate == 0 { 8000 } else { clock_rate },
            max_seq: 0,
            cycles: 0,
            base_seq: 0,
            bad_seq: RTP_SEQ_MOD + 1,
            probation: MIN_SEQUENTIAL,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            epoch: None,
            transit: None,
            jitter_q4: 0,
            last_sr: None,
        }
    }

    /// The source.
    pub fn ssrc(&self) -> Ssrc {
        self.ssrc
    }

    fn init_seq(&mut self, seq: u16) {
        self.base_seq = u32::from(seq);
        self.max_seq = seq;
        self.bad_seq = RTP_SEQ_MOD + 1;
        self.cycles = 0;
        self.received = 0;
        self.received_prior = 0;
        self.expected_prior = 0;
    }

    /// Accounts for one received packet: its sequence number, media timestamp and
    /// arrival time.
    pub fn update(&mut self, seq: SeqNo, timestamp: RtpTimestamp, arrival: Instant) -> SeqStatus {
        self.account(seq, Some(timestamp), arrival)
    }

    /// Accounts for a packet whose timestamp is not its sampling instant (an RFC 4733
    /// telephone event carries the start of its event in every packet): it counts in
    /// the sequence and the losses, not in the jitter.
    pub fn update_sequence(&mut self, seq: SeqNo, arrival: Instant) -> SeqStatus {
        self.account(seq, None, arrival)
    }

    fn account(
        &mut self,
        seq: SeqNo,
        timestamp: Option<RtpTimestamp>,
        arrival: Instant,
    ) -> SeqStatus {
        let seq = seq.0;
        if self.epoch.is_none() {
            // First packet: A.1 initialisation with probation.
            self.init_seq(seq);
            self.max_seq = seq.wrapping_sub(1);
            self.probation = MIN_SEQUENTIAL;
        }
        let status = self.update_seq(seq);
        match timestamp {
            Some(timestamp) if matches!(status, SeqStatus::Valid | SeqStatus::Resynced) => {
                self.update_jitter(timestamp, arrival);
            }
            _ => {
                self.epoch.get_or_insert(arrival);
            }
        }
        status
    }

    /// A.1 `update_seq`.
    fn update_seq(&mut self, seq: u16) -> SeqStatus {
        let udelta = seq.wrapping_sub(self.max_seq);
        if self.probation > 0 {
            if seq == self.max_seq.wrapping_add(1) {
                self.probation -= 1;
                self.max_seq = seq;
                if self.probation == 0 {
                    self.init_seq(seq);
                    self.received += 1;
                    return SeqStatus::Valid;
                }
            } else {
                self.probation = MIN_SEQUENTIAL - 1;
                self.max_seq = seq;
            }
            return SeqStatus::Probation;
        }
        let mut status = SeqStatus::Valid;
        if udelta < MAX_DROPOUT {
            if seq < self.max_seq {
                // Wrapped: one more cycle.
                self.cycles = self.cycles.wrapping_add(RTP_SEQ_MOD);
            }
            self.max_seq = seq;
        } else if u32::from(udelta) <= RTP_SEQ_MOD - u32::from(MAX_MISORDER) {
            if u32::from(seq) == self.bad_seq {
                // Two packets in sequence after a jump: the source restarted.
                self.init_seq(seq);
                self.transit = None;
                status = SeqStatus::Resynced;
            } else {
                self.bad_seq = (u32::from(seq) + 1) & (RTP_SEQ_MOD - 1);
                return SeqStatus::BadJump;
            }
        }
        // Otherwise a duplicate or reordered packet: counted, as A.1 does.
        self.received = self.received.wrapping_add(1);
        status
    }

    /// The arrival time on the media clock, wrapping like an RTP timestamp.
    fn media_time(&mut self, arrival: Instant) -> u32 {
        let epoch = *self.epoch.get_or_insert(arrival);
        let elapsed = arrival.saturating_duration_since(epoch).as_nanos();
        let units = elapsed.saturating_mul(u128::from(self.clock_rate)) / 1_000_000_000;
        // Wrapping to 32 bits is intended: transit differences are taken modulo 2^32.
        units as u32
    }

    /// A.8: `J += (|D| - J) / 16`, kept scaled by 16.
    fn update_jitter(&mut self, timestamp: RtpTimestamp, arrival: Instant) {
        let transit = self.media_time(arrival).wrapping_sub(timestamp.0);
        if let Some(previous) = self.transit {
            // The wrapped difference reinterpreted as signed.
            let d = u64::from((transit.wrapping_sub(previous) as i32).unsigned_abs());
            self.jitter_q4 = self.jitter_q4 + d - ((self.jitter_q4 + 8) >> 4);
        }
        self.transit = Some(transit);
    }

    /// Packets counted so far (duplicates included, as in A.3).
    pub fn received(&self) -> u32 {
        self.received
    }

    /// The highest sequence number received, extended with the count of wraps.
    pub fn extended_highest_seq(&self) -> u32 {
        self.cycles.wrapping_add(u32::from(self.max_seq))
    }

    /// The number of packets expected since the start (A.3).
    pub fn expected(&self) -> u32 {
        if self.probation > 0 {
            return 0;
        }
        self.extended_highest_seq()
            .wrapping_sub(self.base_seq)
            .wrapping_add(1)
    }

    /// Packets lost since the start (negative when duplicates outnumber losses).
    pub fn cumulative_lost(&self) -> i64 {
        i64::from(self.expected()) - i64::from(self.received)
    }

    /// The interarrival jitter, in media timestamp units.
    pub fn jitter(&self) -> u32 {
        u32::try_from(self.jitter_q4 >> 4).unwrap_or(u32::MAX)
    }

    /// The interarrival jitter as a duration.
    pub fn jitter_duration(&self) -> Duration {
        let nanos = u128::from(self.jitter()) * 1_000_000_000 / u128::from(self.clock_rate);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// Records a sender report from this source, received at `now`, for the LSR and
    /// DLSR fields of the next report blocks.
    pub fn on_sender_report(&mut self, ntp_time: NtpTime, now: Instant) {
        self.last_sr = Some((ntp_time.middle_32(), now));
    }

    /// The fraction lost since the previous call, as a fraction of 256, and advances
    /// the interval (A.3).
    fn take_fraction_lost(&mut self) -> u8 {
        let expected = self.expected();
        let expected_interval = expected.wrapping_sub(self.expected_prior);
        self.expected_prior = expected;
        let received_interval = self.received.wrapping_sub(self.received_prior);
        self.received_prior = self.received;
        let lost_interval = i64::from(expected_interval) - i64::from(received_interval);
        if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            let fraction = (lost_interval << 8) / i64::from(expected_interval);
            u8::try_from(fraction).unwrap_or(u8::MAX)
        }
    }

    /// The report block about this source at `now`; starts a new loss interval.
    pub fn report_block(&mut self, now: Instant) -> ReportBlock {
        let fraction_lost = self.take_fraction_lost();
        let (last_sr, delay_since_last_sr) = match self.last_sr {
            Some((lsr, at)) => {
                let delay = now.saturating_duration_since(at);
                // Units of 1/65536 s, saturating.
                let units = delay.as_nanos().saturating_mul(65536) / 1_000_000_000;
                (lsr, u32::try_from(units).unwrap_or(u32::MAX))
            }
            None => (0, 0),
        };
        ReportBlock {
            ssrc: self.ssrc,
            fraction_lost,
            cumulative_lost: CumulativeLost::saturating(self.cumulative_lost()),
            extended_highest_seq: self.extended_highest_seq(),
            jitter: self.jitter(),
            last_sr,
            delay_since_last_sr,
        }
    }
}

/// The statistics of every source of a session, at most `max_sources` of them.
#[derive(Debug, Clone)]
pub struct ReceptionStats {
    clock_rate: u32,
    max_sources: usize,
    sources: HashMap<Ssrc, SourceStats>,
    refused: u64,
}

impl ReceptionStats {
    /// Statistics for sources with a `clock_rate` Hz media clock, keeping at most
    /// `max_sources` sources (further sources are counted in [`Self::refused`]).
    pub fn new(clock_rate: u32, max_sources: usize) -> ReceptionStats {
        ReceptionStats {
            clock_rate,
            max_sources,
            sources: HashMap::new(),
            refused: 0,
        }
    }

    /// Accounts for one packet; `None` when the source table is full.
    pub fn update(
        &mut self,
        ssrc: Ssrc,
        seq: SeqNo,
        timestamp: RtpTimestamp,
        arrival: Instant,
    ) -> Option<SeqStatus> {
        Some(self.entry(ssrc)?.update(seq, timestamp, arrival))
    }

    /// Accounts for one packet whose timestamp is not its sampling instant (see
    /// [`SourceStats::update_sequence`]); `None` when the source table is full.
    pub fn update_sequence(
        &mut self,
        ssrc: Ssrc,
        seq: SeqNo,
        arrival: Instant,
    ) -> Option<SeqStatus> {
        Some(self.entry(ssrc)?.update_sequence(seq, arrival))
    }

    /// The statistics of `ssrc`, new if needed and there is room.
    fn entry(&mut self, ssrc: Ssrc) -> Option<&mut SourceStats> {
        if !self.sources.contains_key(&ssrc) && self.sources.len() >= self.max_sources {
            self.refused += 1;
            return None;
        }
        let clock_rate = self.clock_rate;
        Some(
            self.sources
                .entry(ssrc)
                .or_insert_with(|| SourceStats::new(ssrc, clock_rate)),
        )
    }

    /// Packets refused because the source table was full.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// One source's statistics.
    pub fn source(&self, ssrc: Ssrc) -> Option<&SourceStats> {
        self.sources.get(&ssrc)
    }

    /// One source's statistics, to record a sender report.
    pub fn source_mut(&mut self, ssrc: Ssrc) -> Option<&mut SourceStats> {
        self.sources.get_mut(&ssrc)
    }

    /// Forgets a source (after its BYE or a timeout); true if it was known.
    pub fn remove(&mut self, ssrc: Ssrc) -> bool {
        self.sources.remove(&ssrc).is_some()
    }

    /// The number of sources.
    pub fn len(&self) -> usize {
        self.sources.len()
    }

    /// True when no source is known.
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// A receiver report from `reporter` with one block per valid source (sources on
    /// probation are left out), at most 31, ordered by SSRC.
    pub fn receiver_report(&mut self, reporter: Ssrc, now: Instant) -> ReceiverReport {
        let mut ssrcs: Vec<Ssrc> = self
            .sources
            .values()
            .filter(|s| s.probation == 0)
            .map(|s| s.ssrc)
            .collect();
        ssrcs.sort_unstable();
        ssrcs.truncate(crate::rtcp::MAX_COUNT);
        let mut reports = Vec::with_capacity(ssrcs.len());
        for ssrc in &ssrcs {
            if let Some(source) = self.sources.get_mut(ssrc) {
                reports.push(source.report_block(now));
            }
        }
        ReceiverReport {
            ssrc: reporter,
            reports,
            extension: bytes::Bytes::new(),
        }
    }
}

/// The parameters of the RTCP interval computation (RFC 3550 §6.2, A.7).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RtcpConfig {
    /// The session bandwidth in octets per second (RTP payload and headers; 64 kbit/s
    /// G.711 with 20 ms packets is about 10 000).
    pub session_bandwidth: f64,
    /// The fraction of it given to RTCP (RFC 3550: 5 %).
    pub rtcp_fraction: f64,
    /// The minimum interval (RFC 3550: 5 s; halved for the first report).
    pub min_interval: Duration,
    /// The assumed size of the first RTCP packets, in octets, lower layers included.
    pub initial_avg_size: f64,
}

impl Default for RtcpConfig {
    fn default() -> Self {
        RtcpConfig {
            session_bandwidth: 10_000.0,
            rtcp_fraction: 0.05,
            min_interval: Duration::from_secs(5),
            initial_avg_size: 128.0,
        }
    }
}

/// `e - 3/2`: compensates for the timer reconsideration algorithm converging to a
/// value below the intended average (A.7).
const COMPENSATION: f64 = std::f64::consts::E - 1.5;

/// The deterministic RTCP interval of A.7 `rtcp_interval`, before randomisation.
///
/// `rtcp_bw` is the RTCP bandwidth in octets per second, `avg_rtcp_size` the average
/// compound packet size in octets.
pub fn deterministic_interval(
    members: u32,
    senders: u32,
    rtcp_bw: f64,
    we_sent: bool,
    avg_rtcp_size: f64,
    initial: bool,
    min_interval: Duration,
) -> Duration {
    const SENDER_FRACTION: f64 = 0.25;
    const RECEIVER_FRACTION: f64 = 1.0 - SENDER_FRACTION;
    let mut min_time = min_interval.as_secs_f64();
    if initial {
        min_time /= 2.0;
    }
    let mut n = f64::from(members.max(1));
    let mut bw = rtcp_bw;
    if f64::from(senders) <= f64::from(members) * SENDER_FRACTION {
        if we_sent {
            bw *= SENDER_FRACTION;
            n = f64::from(senders.max(1));
        } else {
            bw *= RECEIVER_FRACTION;
            n = f64::from(members.saturating_sub(senders).max(1));
        }
    }
    let mut t = if bw > 0.0 && bw.is_finite() {
        avg_rtcp_size * n / bw
    } else {
        f64::INFINITY
    };
    if t.is_nan() || t < min_time {
        // NaN comes from a nonsensical configuration.
        t = if t.is_infinite() { 3600.0 } else { min_time };
    }
    Duration::from_secs_f64(t.min(3600.0))
}

/// The randomised interval of A.7: the deterministic interval times a factor in
/// [0.5, 1.5) chosen by `random` (a value in [0, 1), clamped), divided by `e - 3/2`.
pub fn randomized_interval(deterministic: Duration, random: f64) -> Duration {
    let r = if random.is_finite() {
        random.clamp(0.0, 1.0)
    } else {
        0.5
    };
    Duration::from_secs_f64(deterministic.as_secs_f64() * (r + 0.5) / COMPENSATION)
}

/// When to send RTCP reports (RFC 3550 §6.3, A.7), sans-IO: arm a timer at
/// [`RtcpScheduler::poll_timeout`], call [`RtcpScheduler::handle_timeout`] when it
/// fires; when that returns true, send a report and call
/// [`RtcpScheduler::on_rtcp_sent`], which draws the next deadline.
///
/// Randomness is a parameter: each call that may compute a new interval takes a value
/// in [0, 1) from the caller's generator.
///
/// ```
/// use std::time::{Duration, Instant};
/// use pbxkit_rtp::stats::{RtcpConfig, RtcpScheduler};
///
/// let t0 = Instant::now();
/// let mut rtcp = RtcpScheduler::new(RtcpConfig::default(), t0, 0.5);
/// let first = rtcp.poll_timeout();
/// // The first interval uses half the 5 s minimum: 2.5 s / (e - 1.5).
/// assert_eq!(first.duration_since(t0).as_millis(), 2052);
/// assert!(rtcp.handle_timeout(first, 0.5));
/// rtcp.on_rtcp_sent(100, 0.5); // redraws the interval, still "initial" (A.7)
/// let second = rtcp.poll_timeout();
/// assert_eq!(second.duration_since(first).as_millis(), 2052);
/// // No longer initial: at that deadline, reconsideration finds that the full 5 s
/// // minimum applies (5 s / (e - 1.5) after the last report) and moves the timer.
/// assert!(!rtcp.handle_timeout(second, 0.5));
/// let third = rtcp.poll_timeout();
/// assert_eq!(third.duration_since(first).as_millis(), 4104);
/// assert!(rtcp.handle_timeout(third, 0.5));
/// ```
#[derive(Debug, Clone)]
pub struct RtcpScheduler {
    config: RtcpConfig,
    members: u32,
    pmembers: u32,
    senders: u32,
    we_sent: bool,
    avg_rtcp_size: f64,
    initial: bool,
    sent_pending: bool,
    tp: Instant,
    tn: Instant,
}

impl RtcpScheduler {
    /// A scheduler for a session joined at `now`; `random` in [0, 1) randomises the
    /// first interval. The session starts with one member (us), no sender.
    pub fn new(config: RtcpConfig, now: Instant, random: f64) -> RtcpScheduler {
        let mut s = RtcpScheduler {
            config,
            members: 1,
            pmembers: 1,
            senders: 0,
            we_sent: false,
            avg_rtcp_size: config.initial_avg_size,
            initial: true,
            sent_pending: false,
            tp: now,
            tn: now,
        };
        s.tn = now + s.interval(random);
        s
    }

    fn rtcp_bw(&self) -> f64 {
        self.config.session_bandwidth * self.config.rtcp_fraction
    }

    /// The current deterministic interval, before randomisation.
    pub fn deterministic_interval(&self) -> Duration {
        deterministic_interval(
            self.members,
            self.senders,
            self.rtcp_bw(),
            self.we_sent,
            self.avg_rtcp_size,
            self.initial,
            self.config.min_interval,
        )
    }

    fn interval(&self, random: f64) -> Duration {
        randomized_interval(self.deterministic_interval(), random)
    }

    /// When the timer must fire.
    pub fn poll_timeout(&self) -> Instant {
        self.tn
    }

    /// The timer fired at `now`. Returns true when a report is due now (send it, then
    /// call [`Self::on_rtcp_sent`]); false when reconsideration moved the deadline.
    pub fn handle_timeout(&mut self, now: Instant, random: f64) -> bool {
        if now < self.tn {
            return false;
        }
        let t = self.interval(random);
        if self.tp + t <= now {
            self.tp = now;
            // Provisional: `on_rtcp_sent` redraws it with the new average size.
            self.tn = now + self.interval(random);
            self.pmembers = self.members;
            self.sent_pending = true;
            true
        } else {
            self.tn = self.tp + t;
            false
        }
    }

    /// We sent a compound RTCP packet of `size` octets (lower layers included). After a
    /// report that [`Self::handle_timeout`] asked for, the next deadline is drawn
    /// again (as A.7 does, with the updated average size); `random` is in [0, 1).
    pub fn on_rtcp_sent(&mut self, size: usize, random: f64) {
        self.update_avg(size);
        if self.sent_pending {
            self.sent_pending = false;
            self.tn = self.tp + self.interval(random);
            self.initial = false;
        }
    }

    /// We received a compound RTCP packet of `size` octets.
    pub fn on_rtcp_received(&mut self, size: usize) {
        self.update_avg(size);
    }

    fn update_avg(&mut self, size: usize) {
        // Sizes are small; the conversion is exact below 2^53.
        self.avg_rtcp_size = self.avg_rtcp_size * 15.0 / 16.0 + size as f64 / 16.0;
    }

    /// Whether we sent RTP since the report before last.
    pub fn set_we_sent(&mut self, we_sent: bool) {
        self.we_sent = we_sent;
    }

    /// The session's size (us included; at least 1) and number of senders, at `now`.
    /// A drop in members applies reverse reconsideration (§6.3.4).
    pub fn set_members(&mut self, members: u32, senders: u32, now: Instant) {
        let members = members.max(1);
        self.senders = senders.min(members);
        if members < self.pmembers && self.tn > now {
            let ratio = f64::from(members) / f64::from(self.pmembers);
            self.tn = now + (self.tn - now).mul_f64(ratio);
            self.tp = now
                .checked_sub(now.saturating_duration_since(self.tp).mul_f64(ratio))
                .unwrap_or(self.tp);
            self.pmembers = members;
        }
        self.members = members;
    }

    /// The average compound RTCP packet size, in octets.
    pub fn avg_rtcp_size(&self) -> f64 {
        self.avg_rtcp_size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn probation_then_valid() {
        let t0 = Instant::now();
        let mut s = SourceStats::new(Ssrc(1), 8000);
        assert_eq!(
            s.update(SeqNo(10), RtpTimestamp(0), t0),
            SeqStatus::Probation
        );
        assert_eq!(s.expected(), 0);
        assert_eq!(
            s.update(SeqNo(11), RtpTimestamp(160), at(t0, 20)),
            SeqStatus::Valid
        );
        assert_eq!(s.received(), 1);
        assert_eq!(s.expected(), 1);
        // A non-sequential packet during probation restarts it.
        let mut s = SourceStats::new(Ssrc(1), 8000);
        s.update(SeqNo(10), RtpTimestamp(0), t0);
        assert_eq!(
            s.update(SeqNo(50), RtpTimestamp(0), t0),
            SeqStatus::Probation
        );
        assert_eq!(s.update(SeqNo(51), RtpTimestamp(0), t0), SeqStatus::Valid);
    }

    #[test]
    fn wrap_counts_cycles() {
        let t0 = Instant::now();
        let mut s = SourceStats::new(Ssrc(1), 8000);
        for (i, seq) in (65530u16..=65535).chain(0..5).enumerate() {
            s.update(
                SeqNo(seq),
                RtpTimestamp(160 * i as u32),
                at(t0, 20 * i as u64),
            );
        }
        assert_eq!(s.extended_highest_seq(), 65536 + 4);
        assert_eq!(s.cumulative_lost(), 0);
    }

    #[test]
    fn big_jump_needs_two_packets() {
        let t0 = Instant::now();
        let mut s = SourceStats::new(Ssrc(1), 8000);
        for i in 0..10u16 {
            s.update(SeqNo(i), RtpTimestamp(0), t0);
        }
        assert_eq!(
            s.update(SeqNo(20000), RtpTimestamp(0), t0),
            SeqStatus::BadJump
        );
        assert_eq!(s.update(SeqNo(10), RtpTimestamp(0), t0), SeqStatus::Valid);
        assert_eq!(
            s.update(SeqNo(30000), RtpTimestamp(0), t0),
            SeqStatus::BadJump
        );
        assert_eq!(
            s.update(SeqNo(30001), RtpTimestamp(0), t0),
            SeqStatus::Resynced
        );
        assert_eq!(s.extended_highest_seq(), 30001);
        assert_eq!(s.expected(), 1);
        assert_eq!(s.received(), 1);
        // A small backwards step is reordering, counted.
        assert_eq!(
            s.update(SeqNo(29990), RtpTimestamp(0), t0),
            SeqStatus::Valid
        );
        assert_eq!(s.extended_highest_seq(), 30001);
    }

    #[test]
    fn fraction_lost_per_interval() {
        let t0 = Instant::now();
        let mut s = SourceStats::new(Ssrc(9), 8000);
        for i in 0..=100u16 {
            if i % 4 == 1 && i > 1 {
                continue; // a quarter lost after probation
            }
            s.update(
                SeqNo(i),
                RtpTimestamp(160 * u32::from(i)),
                at(t0, 20 * u64::from(i)),
            );
        }
        let b = s.report_block(at(t0, 3000));
        assert_eq!(b.ssrc, Ssrc(9));
        assert_eq!(b.extended_highest_seq, 100);
        assert_eq!(b.cumulative_lost.get(), 24);
        assert_eq!(b.fraction_lost, (24 * 256 / 100) as u8);
        // Nothing new: the next interval reports no loss.
        assert_eq!(s.report_block(at(t0, 8000)).fraction_lost, 0);
        // Duplicates make the interval's loss negative: reported as 0.
        s.update(SeqNo(100), RtpTimestamp(16000), at(t0, 9000));
        let b = s.report_block(at(t0, 9000));
        assert_eq!(b.fraction_lost, 0);
        assert_eq!(b.cumulative_lost.get(), 23);
    }

    #[test]
    fn jitter_follows_a8() {
        let t0 = Instant::now();
        let mut s = SourceStats::new(Ssrc(1), 8000);
        // Alternate arrivals 0 and 10 ms late: |D| = 80 units every packet after the
        // first pair, so J converges to 80.
        for i in 0..400u64 {
            let late = if i % 2 == 0 { 0 } else { 10 };
            s.update(
                SeqNo(i as u16),
                RtpTimestamp(160 * i as u32),
                at(t0, 20 * i + late),
            );
        }
        assert!((78..=80).contains(&s.jitter()), "{}", s.jitter());
        assert!((9..=10).contains(&s.jitter_duration().as_millis()));
    }

    #[test]
    fn sequence_only_packets_leave_the_jitter_alone() {
        let t0 = Instant::now();
        let mut s = SourceStats::new(Ssrc(1), 8000);
        // Audio paced at 20 ms, then five telephone events that all carry the event's
        // start timestamp, then audio again.
        for i in 0..10u16 {
            s.update(
                SeqNo(i),
                RtpTimestamp(160 * u32::from(i)),
                at(t0, 20 * u64::from(i)),
            );
        }
        for i in 10..15u16 {
            s.update_sequence(SeqNo(i), at(t0, 20 * u64::from(i)));
        }
        for i in 15..20u16 {
            s.update(
                SeqNo(i),
                RtpTimestamp(160 * u32::from(i)),
                at(t0, 20 * u64::from(i)),
            );
        }
        assert_eq!(s.jitter(), 0);
        assert_eq!((s.received(), s.cumulative_lost()), (19, 0));
        // The same events through `update` would have counted as jitter.
        let mut naive = SourceStats::new(Ssrc(1), 8000);
        for i in 0..20u16 {
            let ts = if (10..15).contains(&i) {
                1600
            } else {
                160 * u32::from(i)
            };
            naive.update(SeqNo(i), RtpTimestamp(ts), at(t0, 20 * u64::from(i)));
        }
        assert!(naive.jitter() > 50, "{}", naive.jitter());
    }

    #[test]
    fn dlsr_in_65536ths() {
        let t0 = Instant::now();
        let mut s = SourceStats::new(Ssrc(1), 8000);
        s.update(SeqNo(1), RtpTimestamp(0), t0);
        s.update(SeqNo(2), RtpTimestamp(160), t0);
        s.on_sender_report(NtpTime(0x1234_5678_9ABC_DEF0), t0);
        let b = s.report_block(at(t0, 1500));
        assert_eq!(b.last_sr, 0x5678_9ABC);
        assert_eq!(b.delay_since_last_sr, 98304);
    }

    #[test]
    fn reception_stats_bounded_and_reported() {
        let t0 = Instant::now();
        let mut r = ReceptionStats::new(8000, 2);
        for ssrc in [3, 1, 2] {
            for i in 0..3 {
                r.update(Ssrc(ssrc), SeqNo(i), RtpTimestamp(0), t0);
            }
        }
        assert_eq!(r.len(), 2);
        assert_eq!(r.refused(), 3);
        let rr = r.receiver_report(Ssrc(100), t0);
        let ssrcs: Vec<_> = rr.reports.iter().map(|b| b.ssrc).collect();
        assert_eq!(ssrcs, [Ssrc(1), Ssrc(3)]);
        assert!(r.remove(Ssrc(1)));
        assert!(!r.remove(Ssrc(1)));
    }

    #[test]
    fn interval_a7() {
        let min = Duration::from_secs(5);
        // Small sessions hit the minimum, halved initially.
        assert_eq!(
            deterministic_interval(2, 1, 500.0, true, 100.0, false, min),
            min
        );
        assert_eq!(
            deterministic_interval(2, 1, 500.0, true, 100.0, true, min),
            min / 2
        );
        // 1000 receivers, 2 senders, 500 octets/s of RTCP, 100-octet reports:
        // receivers share 75 %: 100 * 998 / 375 = 266.13 s.
        let t = deterministic_interval(1000, 2, 500.0, false, 100.0, false, min);
        assert!((t.as_secs_f64() - 266.133).abs() < 0.01, "{t:?}");
        // Senders share 25 %: 100 * 2 / 125 = 1.6 s -> the minimum.
        assert_eq!(
            deterministic_interval(1000, 2, 500.0, true, 100.0, false, min),
            min
        );
        // Many senders: everyone shares the whole bandwidth.
        let t = deterministic_interval(10, 5, 100.0, true, 200.0, false, min);
        assert_eq!(t, Duration::from_secs(20));
        // Randomisation spans [0.5, 1.5) / (e - 1.5).
        let lo = randomized_interval(min, 0.0).as_secs_f64();
        let hi = randomized_interval(min, 1.0).as_secs_f64();
        assert!((lo - 2.5 / COMPENSATION).abs() < 1e-9);
        assert!((hi - 7.5 / COMPENSATION).abs() < 1e-9);
        // Nonsense bandwidth does not panic.
        let _ = deterministic_interval(0, 0, 0.0, false, f64::NAN, false, min);
        let _ = randomized_interval(min, f64::NAN);
    }

    #[test]
    fn scheduler_reconsiders_and_reverse_reconsiders() {
        let t0 = Instant::now();
        let config = RtcpConfig {
            session_bandwidth: 2000.0,
            ..RtcpConfig::default()
        };
        let mut s = RtcpScheduler::new(config, t0, 0.5);
        // Early timer: no report.
        assert!(!s.handle_timeout(t0, 0.5));
        // Many members joined since: the interval grows, the timer is pushed back.
        s.set_members(200, 0, t0);
        let first = s.poll_timeout();
        assert!(!s.handle_timeout(first, 0.5));
        let pushed = s.poll_timeout();
        assert!(pushed > first);
        assert!(s.handle_timeout(pushed, 0.5));
        s.on_rtcp_sent(200, 0.5);
        let next = s.poll_timeout();
        // Most members leave: the deadline comes closer.
        s.set_members(2, 0, pushed);
        assert!(s.poll_timeout() < next);
        assert!(s.avg_rtcp_size() > 128.0);
    }
}
