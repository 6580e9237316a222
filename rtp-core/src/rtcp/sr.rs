//! Sender reports (SR, RFC 3550 §6.4.1).

use super::{Body, BuildError, ParseError, ReportBlock, check_count};
use crate::packet::{RtpTimestamp, Ssrc};
use bytes::{BufMut, Bytes};
use std::time::Duration;

/// A 64-bit NTP timestamp: seconds since 1900 in the high 32 bits, the fraction of a
/// second in the low 32 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct NtpTime(pub u64);

impl NtpTime {
    /// Whole seconds since 1900-01-01 (wrapping in 2036).
    pub fn seconds(self) -> u32 {
        (self.0 >> 32) as u32
    }

    /// The middle 32 bits, as echoed in a report block's "last SR" field.
    pub fn middle_32(self) -> u32 {
        (self.0 >> 16) as u32
    }

    /// The NTP time of a wall-clock time given as the time since the Unix epoch (for
    /// example `SystemTime::now().duration_since(UNIX_EPOCH)`, read by the caller:
    /// this crate never reads the clock).
    pub fn from_unix(since_epoch: Duration) -> NtpTime {
        /// Seconds from 1900-01-01 to 1970-01-01.
        const UNIX_OFFSET: u64 = 2_208_988_800;
        NtpTime(UNIX_OFFSET << 32).wrapping_add(since_epoch)
    }

    /// This time plus `elapsed`, wrapping like the NTP era does.
    pub fn wrapping_add(self, elapsed: Duration) -> NtpTime {
        // Bits above 32 seconds are the era, dropped on purpose.
        let seconds = elapsed.as_secs() << 32;
        let fraction = (u64::from(elapsed.subsec_nanos()) << 32) / 1_000_000_000;
        NtpTime(self.0.wrapping_add(seconds).wrapping_add(fraction))
    }
}

/// A sender report: the sender's clocks and counters, and reception reports.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct SenderReport {
    /// The sender.
    pub ssrc: Ssrc,
    /// Wall-clock time when the report was sent.
    pub ntp_time: NtpTime,
    /// The same instant on the RTP media clock.
    pub rtp_time: RtpTimestamp,
    /// RTP packets sent so far.
    pub packet_count: u32,
    /// Payload octets sent so far.
    pub octet_count: u32,
    /// Reception reports, at most 31.
    pub reports: Vec<ReportBlock>,
    /// Profile-specific extension after the report blocks.
    pub extension: Bytes,
}

impl SenderReport {
    pub(super) fn parse_body(count: u8, body: &Body) -> Result<SenderReport, ParseError> {
        let info = body.get(0, 24, "sender info")?;
        let word = |i: usize| u32::from_be_bytes([info[i], info[i + 1], info[i + 2], info[i + 3]]);
        let ntp = u64::from(word(4)) << 32 | u64::from(word(8));
        let (ssrc, rtp_time, packet_count, octet_count) =
            (Ssrc(word(0)), RtpTimestamp(word(12)), word(16), word(20));
        let reports = ReportBlock::parse_list(count, body, 24)?;
        let end = 24 + 24 * usize::from(count);
        Ok(SenderReport {
            ssrc,
            ntp_time: NtpTime(ntp),
            rtp_time,
            packet_count,
            octet_count,
            reports,
            extension: body.slice(end, body.len()),
        })
    }

    pub(super) fn write_body(&self, out: &mut Vec<u8>) -> Result<u8, BuildError> {
        check_count("report blocks", self.reports.len())?;
        out.put_u32(self.ssrc.0);
        out.put_u64(self.ntp_time.0);
        out.put_u32(self.rtp_time.0);
        out.put_u32(self.packet_count);
        out.put_u32(self.octet_count);
        for block in &self.reports {
            block.write(out);
        }
        out.put_slice(&self.extension);
        Ok(self.reports.len() as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtcp::{CumulativeLost, RtcpPacket};

    #[test]
    fn sender_report_with_a_block() {
        let wire: &[u8] = &[
            0x81, 200, 0, 12, // header, one block
            0, 0, 0, 1, // ssrc
            0xE9, 0, 0, 0, 0x80, 0, 0, 0, // ntp
            0, 0, 0x1F, 0x40, // rtp time 8000
            0, 0, 0, 50, 0, 0, 0x1F, 0x40, // 50 packets, 8000 octets
            0, 0, 0, 2, // block ssrc
            0x40, 0xFF, 0xFF, 0xFE, // 25% lost, cumulative -2
            0, 1, 0, 10, 0, 0, 0, 20, 0, 0, 0, 30, 0, 0, 0, 40,
        ];
        let p = RtcpPacket::parse(Bytes::from_static(wire)).unwrap();
        let RtcpPacket::SenderReport(sr) = &p else {
            panic!("{p:?}")
        };
        assert_eq!(sr.ntp_time.seconds(), 0xE900_0000);
        assert_eq!(sr.ntp_time.middle_32(), 0x0000_8000);
        assert_eq!(sr.rtp_time, RtpTimestamp(8000));
        assert_eq!((sr.packet_count, sr.octet_count), (50, 8000));
        let block = &sr.reports[0];
        assert_eq!(block.ssrc, Ssrc(2));
        assert_eq!(block.fraction_lost, 0x40);
        assert_eq!(block.cumulative_lost, CumulativeLost::new(-2).unwrap());
        assert_eq!(block.extended_highest_seq, 0x0001_000A);
        assert_eq!(
            (block.jitter, block.last_sr, block.delay_since_last_sr),
            (20, 30, 40)
        );
        assert_eq!(p.to_bytes().unwrap(), wire);
    }

    #[test]
    fn ntp_from_unix() {
        // 2026-01-01T00:00:00.5Z: 1767225600 s after 1970, 3976214400 s after 1900.
        let t = NtpTime::from_unix(Duration::from_millis(1_767_225_600_500));
        assert_eq!(t.seconds(), 3_976_214_400);
        assert_eq!(t.0 as u32, 1 << 31);
        let later = t.wrapping_add(Duration::from_millis(1500));
        assert_eq!(later.seconds(), 3_976_214_402);
        assert_eq!(later.0 as u32, 0);
        // The middle 32 bits count 1/65536 s.
        assert_eq!(later.middle_32().wrapping_sub(t.middle_32()), 98304);
    }

    #[test]
    fn short_sender_info() {
        let e = RtcpPacket::parse(Bytes::from_static(&[0x80, 200, 0, 1, 0, 0, 0, 1])).unwrap_err();
        assert_eq!(
            e,
            ParseError::Truncated {
                what: "sender info",
                offset: 4,
                needed: 24,
                available: 4
            }
        );
    }
}
