//! RFC 4733 telephone events (DTMF digits in RTP): the payload, a sender that paces the
//! packets of one event and a receiver that turns packets back into digits.
//!
//! Both machines are sans-IO. The [`DtmfSender`] takes the current [`Instant`] and
//! returns packets as they fall due (the caller wraps them in RTP with its own sequence
//! numbers and SSRC); the [`DtmfReceiver`] takes the RTP timestamp and payload of each
//! telephone-event packet and yields [`DtmfEvent`]s.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use pbxkit_rtp::dtmf::{DtmfEvent, DtmfReceiver, DtmfSender, EventCode, SenderConfig};
//! use pbxkit_rtp::packet::RtpTimestamp;
//!
//! let start = Instant::now();
//! let mut sender = DtmfSender::new(SenderConfig::default());
//! let five = EventCode::from_char('5').expect("a digit");
//! sender.start(start, RtpTimestamp(8000), five, Duration::from_millis(100))?;
//!
//! let mut receiver = DtmfReceiver::new();
//! let mut sent = 0;
//! // The event loop: send what is due, sleep until the next deadline.
//! while let Some(deadline) = sender.poll_timeout() {
//!     while let Some(packet) = sender.poll_packet(deadline) {
//!         sent += 1;
//!         receiver.handle_event(packet.timestamp, packet.event);
//!     }
//! }
//! assert_eq!(sent, 5 + 2); // 20 ms packets up to 100 ms, the last one sent three times
//! assert_eq!(
//!     receiver.poll_event(),
//!     Some(DtmfEvent::Started { event: five, timestamp: RtpTimestamp(8000) })
//! );
//! assert_eq!(
//!     receiver.poll_event(),
//!     Some(DtmfEvent::Ended { event: five, timestamp: RtpTimestamp(8000), duration: 800 })
//! );
//! assert_eq!(receiver.poll_event(), None);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::packet::{PayloadType, RtpPacket, RtpTimestamp, SeqNo, Ssrc};
use bytes::Bytes;
use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

/// The longest duration one packet can carry; longer events are split into segments
/// (RFC 4733 §2.5.2.3).
pub const MAX_SEGMENT: u16 = u16::MAX;

/// A telephone-event code (RFC 4733 §3.2): 0–9, `*` (10), `#` (11), A–D (12–15),
/// flash (16); other values are kept as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventCode(pub u8);

impl EventCode {
    /// Hook flash.
    pub const FLASH: EventCode = EventCode(16);

    /// The code of a DTMF key: `0`–`9`, `*`, `#`, `A`–`D` (either case).
    pub fn from_char(c: char) -> Option<EventCode> {
        let code = match c {
            '0'..='9' => c as u8 - b'0',
            '*' => 10,
            '#' => 11,
            'A'..='D' => c as u8 - b'A' + 12,
            'a'..='d' => c as u8 - b'a' + 12,
            _ => return None,
        };
        Some(EventCode(code))
    }

    /// The DTMF key of this code, if it is one.
    pub fn to_char(self) -> Option<char> {
        match self.0 {
            0..=9 => Some(char::from(b'0' + self.0)),
            10 => Some('*'),
            11 => Some('#'),
            12..=15 => Some(char::from(b'A' + self.0 - 12)),
            _ => None,
        }
    }
}

impl fmt::Display for EventCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_char() {
            Some(c) => write!(f, "{c}"),
            None => write!(f, "event {}", self.0),
        }
    }
}

/// One telephone-event payload (4 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TelephoneEvent {
    /// The event.
    pub event: EventCode,
    /// The E bit: this packet reports the end of the event.
    pub end: bool,
    /// Power level in -dBm0 (0–63; larger is quieter). Serialisation clamps it to 63.
    pub volume: u8,
    /// The duration so far, in RTP timestamp units, from the packet's timestamp.
    pub duration: u16,
}

/// The payload length of one telephone event.
pub const PAYLOAD_LEN: usize = 4;

impl TelephoneEvent {
    /// Parses a telephone-event payload. Packing several events in one payload
    /// (RFC 4733 §2.5.1.5) is not supported: the payload must be exactly 4 bytes.
    pub fn parse(payload: &[u8]) -> Result<TelephoneEvent, ParseError> {
        let &[event, flags, d0, d1] = payload else {
            return Err(ParseError::Length(payload.len()));
        };
        Ok(TelephoneEvent {
            event: EventCode(event),
            end: flags & 0x80 != 0,
            volume: flags & 0x3F,
            duration: u16::from_be_bytes([d0, d1]),
        })
    }

    /// The payload in wire format (the reserved bit is 0).
    pub fn to_bytes(&self) -> [u8; PAYLOAD_LEN] {
        let [d0, d1] = self.duration.to_be_bytes();
        let flags = u8::from(self.end) << 7 | self.volume.min(0x3F);
        [self.event.0, flags, d0, d1]
    }
}

/// Why a payload is not a telephone event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The payload is not 4 bytes long.
    #[error("telephone-event payload of {0} bytes, expected 4")]
    Length(usize),
}

/// One packet produced by a [`DtmfSender`]: an RTP timestamp, the marker bit and the
/// payload. The caller adds the payload type, sequence number and SSRC of its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DtmfPacket {
    /// The RTP timestamp: the event's start (or its segment's start).
    pub timestamp: RtpTimestamp,
    /// Set on the first packet of an event.
    pub marker: bool,
    /// The payload.
    pub event: TelephoneEvent,
}

impl DtmfPacket {
    /// The packet as RTP with the negotiated telephone-event payload type.
    pub fn to_rtp(&self, payload_type: PayloadType, sequence: SeqNo, ssrc: Ssrc) -> RtpPacket {
        let payload = Bytes::copy_from_slice(&self.event.to_bytes());
        let mut packet = RtpPacket::new(payload_type, sequence, self.timestamp, ssrc, payload);
        packet.set_marker(self.marker);
        packet
    }
}

/// The settings of a [`DtmfSender`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderConfig {
    /// The RTP clock rate of the telephone-event payload type (8000 by default).
    pub clock_rate: u32,
    /// Time between two packets (20 ms by default).
    pub packet_interval: Duration,
    /// Power level in -dBm0 (10 by default).
    pub volume: u8,
    /// How many times the end packet is sent, one interval apart (3 by default).
    pub end_packets: u8,
}

impl Default for SenderConfig {
    fn default() -> Self {
        SenderConfig {
            clock_rate: 8000,
            packet_interval: Duration::from_millis(20),
            volume: 10,
            end_packets: 3,
        }
    }
}

/// [`DtmfSender::start`] was called while an event was still being sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a telephone event is still being sent")]
pub struct SenderBusy;

/// Sends one telephone event at a time as RFC 4733 packets: a first packet with the
/// marker bit, one packet per interval with the duration so far, then the end packet
/// (E bit) sent [`SenderConfig::end_packets`] times with the same timestamp. Events
/// longer than 0xFFFF timestamp units are split into segments, each with the
/// timestamp of its start (RFC 4733 §2.5.2.3).
///
/// Packet `k` (from 1) covers the event up to `k` intervals and falls due `k`
/// intervals after the start, like an audio frame.
#[derive(Debug, Clone)]
pub struct DtmfSender {
    config: SenderConfig,
    active: Option<Active>,
}

#[derive(Debug, Clone)]
struct Active {
    event: EventCode,
    start: Instant,
    timestamp: RtpTimestamp,
    /// The event's length in timestamp units.
    total: u64,
    /// One interval in timestamp units (at least 1).
    interval: u64,
    /// The index of the next packet (from 1).
    next: u64,
    /// The segment and duration of the last packet sent.
    last: Option<(u64, u16)>,
    /// A packet already computed, sent at the next poll.
    pending: Option<DtmfPacket>,
    /// The end packet and how many times it was sent.
    end: Option<(DtmfPacket, u8)>,
}

impl DtmfSender {
    /// A sender with `config`.
    pub fn new(config: SenderConfig) -> DtmfSender {
        DtmfSender {
            config,
            active: None,
        }
    }

    /// Starts sending `event` for `duration`, beginning at `now` with RTP timestamp
    /// `timestamp` (the media clock's current value).
    pub fn start(
        &mut self,
        now: Instant,
        timestamp: RtpTimestamp,
        event: EventCode,
        duration: Duration,
    ) -> Result<(), SenderBusy> {
        if self.active.is_some() {
            return Err(SenderBusy);
        }
        let rate = u128::from(self.config.clock_rate);
        let samples = |d: Duration| u64::try_from(d.as_nanos() * rate / 1_000_000_000);
        let total = samples(duration).unwrap_or(u64::MAX);
        let interval = samples(self.config.packet_interval)
            .unwrap_or(u64::MAX)
            .max(1);
        self.active = Some(Active {
            event,
            start: now,
            timestamp,
            total,
            interval,
            next: 1,
            last: None,
            pending: None,
            end: None,
        });
        Ok(())
    }

    /// No event is being sent.
    pub fn is_idle(&self) -> bool {
        self.active.is_none()
    }

    /// When the next packet falls due, if an event is being sent.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let active = self.active.as_ref()?;
        let index = if active.pending.is_some() {
            active.next - 1
        } else {
            active.next
        };
        Some(self.due(active, index))
    }

    fn due(&self, active: &Active, index: u64) -> Instant {
        let steps = u32::try_from(index).unwrap_or(u32::MAX);
        let offset = self
            .config
            .packet_interval
            .checked_mul(steps)
            .unwrap_or(Duration::MAX);
        active.start.checked_add(offset).unwrap_or(active.start)
    }

    /// The next packet if it is due at `now`; call until `None`.
    pub fn poll_packet(&mut self, now: Instant) -> Option<DtmfPacket> {
        let due = self.due(self.active.as_ref()?, self.active.as_ref()?.next);
        let repeats = self.config.end_packets.max(1);
        let volume = self.config.volume;
        let active = self.active.as_mut()?;
        if let Some(packet) = active.pending.take() {
            if packet.event.end {
                return Some(self.sent_end(packet, repeats));
            }
            return Some(packet);
        }
        if now < due {
            return None;
        }
        active.next += 1;
        if let Some((packet, _)) = active.end {
            return Some(self.sent_end(packet, repeats));
        }
        let index = active.next - 1;
        let elapsed = index.saturating_mul(active.interval).min(active.total);
        let segment = elapsed.saturating_sub(1) / u64::from(MAX_SEGMENT);
        // `elapsed - segment * 0xFFFF` is in 0..=0xFFFF by the choice of `segment`.
        let duration = (elapsed - segment * u64::from(MAX_SEGMENT)) as u16;
        let (start_timestamp, code) = (active.timestamp, active.event);
        let packet_at = |segment: u64, duration: u16, end: bool, marker: bool| DtmfPacket {
            // Timestamps wrap at 2^32; truncating the segment offset is that wrap.
            timestamp: start_timestamp.wrapping_add((segment * u64::from(MAX_SEGMENT)) as u32),
            marker,
            event: TelephoneEvent {
                event: code,
                end,
                volume,
                duration,
            },
        };
        let end = elapsed >= active.total;
        let packet = packet_at(segment, duration, end, index == 1);
        let previous = active.last.replace((segment, duration));
        if let Some((last_segment, last_duration)) = previous
            && last_segment < segment
            && last_duration != MAX_SEGMENT
        {
            // Close the previous segment at its full length first.
            active.pending = Some(packet);
            return Some(packet_at(last_segment, MAX_SEGMENT, false, false));
        }
        if end {
            return Some(self.sent_end(packet, repeats));
        }
        Some(packet)
    }

    /// Records one sending of the end packet; the event is over after the last one.
    fn sent_end(&mut self, packet: DtmfPacket, repeats: u8) -> DtmfPacket {
        if let Some(active) = &mut self.active {
            let sent = active.end.map_or(0, |(_, n)| n) + 1;
            if sent >= repeats {
                self.active = None;
            } else {
                active.end = Some((packet, sent));
            }
        }
        packet
    }
}

/// What a [`DtmfReceiver`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DtmfEvent {
    /// A key was pressed (the first packet of an event arrived).
    Started {
        /// The key.
        event: EventCode,
        /// The RTP timestamp of the event's start.
        timestamp: RtpTimestamp,
    },
    /// The key was released, or the event was cut short by a newer one or by
    /// [`DtmfReceiver::flush`].
    Ended {
        /// The key.
        event: EventCode,
        /// The RTP timestamp of the event's start.
        timestamp: RtpTimestamp,
        /// The event's length in RTP timestamp units, all segments together.
        duration: u64,
    },
}

/// The most events a receiver holds before the oldest is dropped; one packet yields at
/// most three, so a caller that drains after every packet never loses one.
const MAX_QUEUED: usize = 16;

/// Turns telephone-event packets into key presses. Retransmitted end packets and
/// late packets of a finished event are ignored; a new event that arrives before the
/// end of the current one ends it with the last duration received.
#[derive(Debug, Clone, Default)]
pub struct DtmfReceiver {
    current: Option<Current>,
    /// Start and segment timestamps of the last event that ended.
    last_ended: Option<(RtpTimestamp, RtpTimestamp)>,
    events: VecDeque<DtmfEvent>,
}

#[derive(Debug, Clone, Copy)]
struct Current {
    event: EventCode,
    start: RtpTimestamp,
    segment: RtpTimestamp,
    /// The duration of the segments before `segment`.
    base: u64,
    duration: u64,
}

impl DtmfReceiver {
    /// A receiver with no event in progress.
    pub fn new() -> DtmfReceiver {
        DtmfReceiver::default()
    }

    /// Handles the payload of a telephone-event RTP packet with its RTP timestamp.
    pub fn handle_payload(
        &mut self,
        timestamp: RtpTimestamp,
        payload: &[u8],
    ) -> Result<(), ParseError> {
        self.handle_event(timestamp, TelephoneEvent::parse(payload)?);
        Ok(())
    }

    /// Handles a parsed telephone event with its RTP timestamp.
    pub fn handle_event(&mut self, timestamp: RtpTimestamp, event: TelephoneEvent) {
        if let Some(mut current) = self.current {
            let next_segment = current.segment.wrapping_add(u32::from(MAX_SEGMENT));
            if timestamp == current.segment
                || (timestamp == next_segment && event.event == current.event)
            {
                if timestamp == next_segment {
                    current.base += u64::from(MAX_SEGMENT);
                    current.segment = timestamp;
                }
                current.duration = current
                    .duration
                    .max(current.base + u64::from(event.duration));
                self.current = Some(current);
                if event.end {
                    self.end_current();
                }
                return;
            }
            if timestamp.wrapping_diff(current.segment) < 0 {
                return; // a late packet of an older event
            }
            self.end_current();
        }
        if let Some((start, segment)) = self.last_ended
            && (timestamp.wrapping_diff(segment) <= 0 || timestamp.wrapping_diff(start) <= 0)
        {
            return; // a retransmitted end packet or a late packet of the last event
        }
        self.push(DtmfEvent::Started {
            event: event.event,
            timestamp,
        });
        self.current = Some(Current {
            event: event.event,
            start: timestamp,
            segment: timestamp,
            base: 0,
            duration: u64::from(event.duration),
        });
        if event.end {
            self.end_current();
        }
    }

    /// Ends the event in progress, if any, with the last duration received (for a
    /// stream that stopped before its end packets arrived).
    pub fn flush(&mut self) {
        self.end_current();
    }

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<DtmfEvent> {
        self.events.pop_front()
    }

    fn end_current(&mut self) {
        if let Some(current) = self.current.take() {
            self.last_ended = Some((current.start, current.segment));
            self.push(DtmfEvent::Ended {
                event: current.event,
                timestamp: current.start,
                duration: current.duration,
            });
        }
    }

    fn push(&mut self, event: DtmfEvent) {
        if self.events.len() == MAX_QUEUED {
            self.events.pop_front();
        }
        self.events.push_back(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(sender: &mut DtmfSender, start: Instant) -> Vec<(Duration, DtmfPacket)> {
        let mut out = Vec::new();
        while let Some(deadline) = sender.poll_timeout() {
            assert_eq!(sender.poll_packet(deadline - Duration::from_nanos(1)), None);
            while let Some(p) = sender.poll_packet(deadline) {
                out.push((deadline - start, p));
            }
        }
        out
    }

    fn events(receiver: &mut DtmfReceiver) -> Vec<DtmfEvent> {
        std::iter::from_fn(|| receiver.poll_event()).collect()
    }

    #[test]
    fn payload_round_trip() {
        let wire = [11, 0x8A, 0x03, 0x20];
        let e = TelephoneEvent::parse(&wire).unwrap();
        assert_eq!(e.event.to_char(), Some('#'));
        assert!(e.end);
        assert_eq!((e.volume, e.duration), (10, 800));
        assert_eq!(e.to_bytes(), wire);
        // The reserved bit is ignored on receipt and cleared on sending.
        assert_eq!(
            TelephoneEvent::parse(&[1, 0x4A, 0, 0]).unwrap().to_bytes(),
            [1, 0x0A, 0, 0]
        );
        assert_eq!(
            TelephoneEvent::parse(&[1, 2, 3]),
            Err(ParseError::Length(3))
        );
        assert_eq!(TelephoneEvent::parse(&[0; 8]), Err(ParseError::Length(8)));
    }

    #[test]
    fn event_codes() {
        let all = "0123456789*#ABCD";
        for (i, c) in all.chars().enumerate() {
            assert_eq!(EventCode::from_char(c), Some(EventCode(i as u8)));
            assert_eq!(EventCode(i as u8).to_char(), Some(c));
        }
        assert_eq!(EventCode::from_char('d'), Some(EventCode(15)));
        assert_eq!(EventCode::from_char('E'), None);
        assert_eq!(EventCode::FLASH.to_string(), "event 16");
    }

    #[test]
    fn sender_schedule() {
        let start = Instant::now();
        let mut s = DtmfSender::new(SenderConfig::default());
        s.start(
            start,
            RtpTimestamp(1000),
            EventCode(1),
            Duration::from_millis(70),
        )
        .unwrap();
        assert_eq!(
            s.start(start, RtpTimestamp(0), EventCode(2), Duration::ZERO),
            Err(SenderBusy)
        );
        let packets = drain(&mut s, start);
        let summary: Vec<_> = packets
            .iter()
            .map(|(t, p)| {
                (
                    t.as_millis(),
                    p.timestamp.0,
                    p.marker,
                    p.event.end,
                    p.event.duration,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (20, 1000, true, false, 160),
                (40, 1000, false, false, 320),
                (60, 1000, false, false, 480),
                (80, 1000, false, true, 560),
                (100, 1000, false, true, 560),
                (120, 1000, false, true, 560),
            ]
        );
        assert!(s.is_idle());
    }

    #[test]
    fn long_events_are_split_into_segments() {
        let start = Instant::now();
        let mut s = DtmfSender::new(SenderConfig::default());
        // 9 s at 8 kHz = 72000 units: segment 0 up to 65535, segment 1 for 6465.
        s.start(
            start,
            RtpTimestamp(u32::MAX - 10),
            EventCode(0),
            Duration::from_secs(9),
        )
        .unwrap();
        let packets = drain(&mut s, start);
        let marked = packets.iter().filter(|(_, p)| p.marker).count();
        assert_eq!(marked, 1);
        let full = packets
            .iter()
            .position(|(_, p)| p.event.duration == MAX_SEGMENT)
            .unwrap();
        let (_, closing) = packets[full];
        let (_, next) = packets[full + 1];
        assert_eq!(closing.timestamp, RtpTimestamp(u32::MAX - 10));
        assert!(!closing.event.end);
        assert_eq!(
            next.timestamp,
            RtpTimestamp(u32::MAX - 10).wrapping_add(65535)
        );
        assert_eq!(next.event.duration, 65); // 410 × 160 − 65535
        let (_, last) = packets[packets.len() - 1];
        assert!(last.event.end);
        assert_eq!(last.event.duration, 6465); // 72000 − 65535

        let mut r = DtmfReceiver::new();
        for (_, p) in &packets {
            r.handle_event(p.timestamp, p.event);
        }
        assert_eq!(
            events(&mut r),
            [
                DtmfEvent::Started {
                    event: EventCode(0),
                    timestamp: RtpTimestamp(u32::MAX - 10)
                },
                DtmfEvent::Ended {
                    event: EventCode(0),
                    timestamp: RtpTimestamp(u32::MAX - 10),
                    duration: 72000
                },
            ]
        );
    }

    #[test]
    fn receiver_deduplicates_and_survives_loss() {
        let ev = |code, end, duration| TelephoneEvent {
            event: EventCode(code),
            end,
            volume: 10,
            duration,
        };
        let mut r = DtmfReceiver::new();
        // Digit 1: the first packets are lost, only the three end packets arrive.
        for _ in 0..3 {
            r.handle_event(RtpTimestamp(100), ev(1, true, 800));
        }
        // A late continuation packet of digit 1.
        r.handle_event(RtpTimestamp(100), ev(1, false, 480));
        // Digit 2: its end packets are all lost; digit 3 starts.
        r.handle_event(RtpTimestamp(2000), ev(2, false, 160));
        r.handle_event(RtpTimestamp(2000), ev(2, false, 320));
        r.handle_event(RtpTimestamp(4000), ev(3, false, 160));
        // A reordered packet of digit 2 arrives after digit 3 started.
        r.handle_event(RtpTimestamp(2000), ev(2, false, 480));
        r.flush();
        assert_eq!(
            events(&mut r),
            [
                DtmfEvent::Started {
                    event: EventCode(1),
                    timestamp: RtpTimestamp(100)
                },
                DtmfEvent::Ended {
                    event: EventCode(1),
                    timestamp: RtpTimestamp(100),
                    duration: 800
                },
                DtmfEvent::Started {
                    event: EventCode(2),
                    timestamp: RtpTimestamp(2000)
                },
                DtmfEvent::Ended {
                    event: EventCode(2),
                    timestamp: RtpTimestamp(2000),
                    duration: 320
                },
                DtmfEvent::Started {
                    event: EventCode(3),
                    timestamp: RtpTimestamp(4000)
                },
                DtmfEvent::Ended {
                    event: EventCode(3),
                    timestamp: RtpTimestamp(4000),
                    duration: 160
                },
            ]
        );
        // The same digit pressed twice gets two events (different timestamps).
        r.handle_event(RtpTimestamp(6000), ev(3, true, 400));
        r.handle_event(RtpTimestamp(7000), ev(3, true, 400));
        assert_eq!(events(&mut r).len(), 4);
        assert!(r.handle_payload(RtpTimestamp(9000), &[1]).is_err());
    }

    #[test]
    fn packets_become_rtp() {
        let p = DtmfPacket {
            timestamp: RtpTimestamp(5),
            marker: true,
            event: TelephoneEvent {
                event: EventCode(4),
                end: false,
                volume: 7,
                duration: 160,
            },
        };
        let pt = PayloadType::new(101).unwrap();
        let rtp = p.to_rtp(pt, SeqNo(9), Ssrc(3));
        assert!(rtp.marker());
        assert_eq!(rtp.payload_type(), pt);
        assert_eq!(&rtp.payload()[..], &[4, 7, 0, 160]);
    }
}
