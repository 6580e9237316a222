//! Receiver reports (RR, RFC 3550 §6.4.2) and the report blocks SRs and RRs share.

use super::{Body, BuildError, ParseError, check_count};
use crate::packet::Ssrc;
use bytes::{BufMut, Bytes};

/// The cumulative number of packets lost, a signed 24-bit value (negative when
/// duplicates outnumber losses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct CumulativeLost(i32);

impl CumulativeLost {
    /// The largest value: 0x7FFFFF.
    pub const MAX: i32 = 0x7F_FFFF;
    /// The smallest value: -0x800000.
    pub const MIN: i32 = -0x80_0000;

    /// `value`, or `None` outside the 24-bit range.
    pub fn new(value: i32) -> Option<CumulativeLost> {
        (Self::MIN..=Self::MAX)
            .contains(&value)
            .then_some(CumulativeLost(value))
    }

    /// `value` clamped to the 24-bit range, as RFC 3550 §A.3 asks.
    pub fn saturating(value: i64) -> CumulativeLost {
        // The clamped value fits in an i32.
        CumulativeLost(value.clamp(i64::from(Self::MIN), i64::from(Self::MAX)) as i32)
    }

    /// The value.
    pub fn get(self) -> i32 {
        self.0
    }

    fn from_wire(bytes: [u8; 3]) -> CumulativeLost {
        // Sign-extend the 24-bit value.
        CumulativeLost(i32::from_be_bytes([bytes[0], bytes[1], bytes[2], 0]) >> 8)
    }

    fn to_wire(self) -> [u8; 3] {
        let b = self.0.to_be_bytes();
        [b[1], b[2], b[3]]
    }
}

/// A reception report about one source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ReportBlock {
    /// The source this block is about.
    pub ssrc: Ssrc,
    /// Packets lost since the previous report, as a fraction of 256.
    pub fraction_lost: u8,
    /// Packets lost since the beginning of reception.
    pub cumulative_lost: CumulativeLost,
    /// Highest sequence number received, extended with the count of wraps.
    pub extended_highest_seq: u32,
    /// Interarrival jitter in timestamp units.
    pub jitter: u32,
    /// The middle 32 bits of the NTP time of the last SR received (0: none).
    pub last_sr: u32,
    /// Delay since that SR, in units of 1/65536 s.
    pub delay_since_last_sr: u32,
}

impl ReportBlock {
    pub(super) fn parse_list(
        count: u8,
        body: &Body,
        start: usize,
    ) -> Result<Vec<ReportBlock>, ParseError> {
        (0..usize::from(count))
            .map(|i| {
                let b = body.get(start + 24 * i, 24, "report block")?;
                let word = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
                Ok(ReportBlock {
                    ssrc: Ssrc(word(0)),
                    fraction_lost: b[4],
                    cumulative_lost: CumulativeLost::from_wire([b[5], b[6], b[7]]),
                    extended_highest_seq: word(8),
                    jitter: word(12),
                    last_sr: word(16),
                    delay_since_last_sr: word(20),
                })
            })
            .collect()
    }

    pub(super) fn write(&self, out: &mut Vec<u8>) {
        out.put_u32(self.ssrc.0);
        out.put_u8(self.fraction_lost);
        out.put_slice(&self.cumulative_lost.to_wire());
        out.put_u32(self.extended_highest_seq);
        out.put_u32(self.jitter);
        out.put_u32(self.last_sr);
        out.put_u32(self.delay_since_last_sr);
    }
}

/// A receiver report: reception reports from a participant that does not send.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ReceiverReport {
    /// The reporter.
    pub ssrc: Ssrc,
    /// Reception reports, at most 31.
    pub reports: Vec<ReportBlock>,
    /// Profile-specific extension after the report blocks.
    pub extension: Bytes,
}

impl ReceiverReport {
    pub(super) fn parse_body(count: u8, body: &Body) -> Result<ReceiverReport, ParseError> {
        let ssrc = Ssrc(body.u32_at(0, "reporter SSRC")?);
        let reports = ReportBlock::parse_list(count, body, 4)?;
        let end = 4 + 24 * usize::from(count);
        Ok(ReceiverReport {
            ssrc,
            reports,
            extension: body.slice(end, body.len()),
        })
    }

    pub(super) fn write_body(&self, out: &mut Vec<u8>) -> Result<u8, BuildError> {
        check_count("report blocks", self.reports.len())?;
        out.put_u32(self.ssrc.0);
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
    use crate::rtcp::RtcpPacket;

    #[test]
    fn cumulative_lost_range() {
        assert_eq!(CumulativeLost::new(0x80_0000), None);
        assert_eq!(
            CumulativeLost::saturating(1 << 40).get(),
            CumulativeLost::MAX
        );
        assert_eq!(
            CumulativeLost::saturating(-(1 << 40)).get(),
            CumulativeLost::MIN
        );
        for v in [0, 1, -1, CumulativeLost::MAX, CumulativeLost::MIN] {
            let c = CumulativeLost(v);
            assert_eq!(CumulativeLost::from_wire(c.to_wire()), c);
        }
    }

    #[test]
    fn missing_report_block() {
        let e = RtcpPacket::parse(Bytes::from_static(&[0x81, 201, 0, 1, 0, 0, 0, 1])).unwrap_err();
        assert_eq!(e.offset(), 8);
        assert!(e.to_string().contains("report block"), "{e}");
    }
}
