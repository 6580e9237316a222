//! RTCP (RFC 3550 §6): sender and receiver reports, source descriptions, BYE, APP and
//! compound packets.
//!
//! The packet kinds form a closed enum, [`RtcpPacket`], one module per kind; packet
//! types this crate does not model (feedback, XR, ...) are kept as
//! [`RtcpPacket::Unknown`] with their body, so a compound packet re-serialises with
//! them in place. Parsing keeps the received [`Bytes`]: variable-length data (SDES
//! values, BYE reasons, APP data, report extensions) are slices of it.
//!
//! ```
//! use pbxkit_rtp::packet::Ssrc;
//! use pbxkit_rtp::rtcp::{self, Goodbye, ReceiverReport, RtcpPacket, SdesChunk, SdesItem, SourceDescription};
//!
//! let compound = [
//!     RtcpPacket::ReceiverReport(ReceiverReport { ssrc: Ssrc(1), ..Default::default() }),
//!     RtcpPacket::SourceDescription(SourceDescription {
//!         chunks: vec![SdesChunk { ssrc: Ssrc(1), items: vec![SdesItem::cname("pbx@example.org")] }],
//!     }),
//!     RtcpPacket::Goodbye(Goodbye { sources: vec![Ssrc(1)], reason: None }),
//! ];
//! let wire = rtcp::serialize_compound(&compound)?;
//! assert_eq!(rtcp::parse_compound(wire)?, compound);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod app;
mod bye;
mod rr;
mod sdes;
mod sr;

pub use app::App;
pub use bye::Goodbye;
pub use rr::{CumulativeLost, ReceiverReport, ReportBlock};
pub use sdes::{SdesChunk, SdesItem, SdesItemType, SourceDescription};
pub use sr::{NtpTime, SenderReport};

use bytes::{BufMut, Bytes};

/// RTCP packet type of a sender report.
pub const TYPE_SR: u8 = 200;
/// RTCP packet type of a receiver report.
pub const TYPE_RR: u8 = 201;
/// RTCP packet type of a source description.
pub const TYPE_SDES: u8 = 202;
/// RTCP packet type of a BYE.
pub const TYPE_BYE: u8 = 203;
/// RTCP packet type of an APP packet.
pub const TYPE_APP: u8 = 204;

/// The largest value of the 5-bit count field (report blocks, chunks, sources).
pub const MAX_COUNT: usize = 31;

/// The most bytes one RTCP packet can have (its length field counts 32-bit words minus one).
const MAX_PACKET_LEN: usize = (u16::MAX as usize + 1) * 4;

/// One RTCP packet.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RtcpPacket {
    /// SR, packet type 200.
    SenderReport(SenderReport),
    /// RR, packet type 201.
    ReceiverReport(ReceiverReport),
    /// SDES, packet type 202.
    SourceDescription(SourceDescription),
    /// BYE, packet type 203.
    Goodbye(Goodbye),
    /// APP, packet type 204.
    App(App),
    /// Any other packet type, kept raw.
    Unknown(UnknownPacket),
}

/// An RTCP packet of a type this crate does not model (e.g. RTPFB 205, PSFB 206, XR 207).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UnknownPacket {
    /// The packet type (not 200–204).
    pub packet_type: u8,
    /// The 5-bit count/format field.
    pub count: u8,
    /// The bytes after the 4-byte header, without padding.
    pub body: Bytes,
}

impl RtcpPacket {
    /// The packet type on the wire.
    pub fn packet_type(&self) -> u8 {
        match self {
            RtcpPacket::SenderReport(_) => TYPE_SR,
            RtcpPacket::ReceiverReport(_) => TYPE_RR,
            RtcpPacket::SourceDescription(_) => TYPE_SDES,
            RtcpPacket::Goodbye(_) => TYPE_BYE,
            RtcpPacket::App(_) => TYPE_APP,
            RtcpPacket::Unknown(u) => u.packet_type,
        }
    }

    /// Parses one RTCP packet that fills `packet` exactly.
    pub fn parse(packet: impl Into<Bytes>) -> Result<RtcpPacket, ParseError> {
        let packet: Bytes = packet.into();
        let len = packet.len();
        let mut iter = CompoundIter::new(packet);
        match iter.next() {
            Some(Ok(p)) if iter.offset == len => Ok(p),
            Some(Ok(_)) => Err(ParseError::TrailingData {
                offset: iter.offset,
            }),
            Some(Err(e)) => Err(e),
            None => Err(ParseError::Truncated {
                what: "packet header",
                offset: 0,
                needed: 4,
                available: 0,
            }),
        }
    }

    /// Appends the packet in wire format to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) -> Result<(), BuildError> {
        let start = out.len();
        let result = self.write_unchecked(out, start);
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    fn write_unchecked(&self, out: &mut Vec<u8>, start: usize) -> Result<(), BuildError> {
        out.put_u32(0); // the header, filled in below
        let count = match self {
            RtcpPacket::SenderReport(sr) => sr.write_body(out)?,
            RtcpPacket::ReceiverReport(rr) => rr.write_body(out)?,
            RtcpPacket::SourceDescription(sdes) => sdes.write_body(out)?,
            RtcpPacket::Goodbye(bye) => bye.write_body(out)?,
            RtcpPacket::App(app) => app.write_body(out)?,
            RtcpPacket::Unknown(u) => {
                if (TYPE_SR..=TYPE_APP).contains(&u.packet_type) {
                    return Err(BuildError::KnownTypeAsUnknown(u.packet_type));
                }
                check_count("count field", usize::from(u.count))?;
                out.put_slice(&u.body);
                u.count
            }
        };
        let body_len = out.len() - start - 4;
        let padding = (4 - body_len % 4) % 4;
        if padding > 0 {
            out.put_bytes(0, padding - 1);
            // `padding` is 1..=3.
            out.put_u8(padding as u8);
        }
        let total = out.len() - start;
        if total > MAX_PACKET_LEN {
            return Err(BuildError::TooLong {
                packet_type: self.packet_type(),
                len: total,
            });
        }
        let mut first = 0x80 | count;
        if padding > 0 {
            first |= 0x20;
        }
        // `total <= MAX_PACKET_LEN`, so the word count minus one fits in 16 bits.
        let words = u16::try_from(total / 4 - 1).unwrap_or(u16::MAX);
        let header = [first, self.packet_type(), (words >> 8) as u8, words as u8];
        out[start..start + 4].copy_from_slice(&header);
        Ok(())
    }

    /// The packet in wire format.
    pub fn to_bytes(&self) -> Result<Bytes, BuildError> {
        let mut out = Vec::new();
        self.write_to(&mut out)?;
        Ok(out.into())
    }
}

/// Parses a compound RTCP packet (RFC 3550 §6.1): every packet's length is checked
/// against the datagram. The first-packet and padding rules of §6.1 are not enforced
/// (RFC 5506 reduced-size RTCP relaxes them).
pub fn parse_compound(datagram: impl Into<Bytes>) -> Result<Vec<RtcpPacket>, ParseError> {
    let datagram: Bytes = datagram.into();
    if datagram.is_empty() {
        return Err(ParseError::Truncated {
            what: "packet header",
            offset: 0,
            needed: 4,
            available: 0,
        });
    }
    CompoundIter::new(datagram).collect()
}

/// Serialises packets one after the other into a compound packet.
pub fn serialize_compound(packets: &[RtcpPacket]) -> Result<Bytes, BuildError> {
    let mut out = Vec::new();
    for packet in packets {
        packet.write_to(&mut out)?;
    }
    Ok(out.into())
}

/// Iterates over the packets of a compound RTCP packet; stops after the first error.
#[derive(Debug, Clone)]
pub struct CompoundIter {
    datagram: Bytes,
    offset: usize,
    failed: bool,
}

impl CompoundIter {
    /// Iterates over the packets of `datagram`.
    pub fn new(datagram: Bytes) -> CompoundIter {
        CompoundIter {
            datagram,
            offset: 0,
            failed: false,
        }
    }

    fn parse_next(&mut self) -> Result<RtcpPacket, ParseError> {
        let offset = self.offset;
        let available = self.datagram.len() - offset;
        let Some(header) = self.datagram.get(offset..offset + 4) else {
            return Err(ParseError::Truncated {
                what: "packet header",
                offset,
                needed: 4,
                available,
            });
        };
        let version = header[0] >> 6;
        if version != 2 {
            return Err(ParseError::Version { version, offset });
        }
        let has_padding = header[0] & 0x20 != 0;
        let count = header[0] & 0x1F;
        let packet_type = header[1];
        let len = (usize::from(u16::from_be_bytes([header[2], header[3]])) + 1) * 4;
        if len > available {
            return Err(ParseError::Length {
                offset,
                len,
                available,
            });
        }
        let mut end = offset + len;
        if has_padding {
            let pad = self.datagram[end - 1];
            if pad == 0 || usize::from(pad) > len - 4 {
                return Err(ParseError::BadPadding {
                    count: pad,
                    offset: end - 1,
                });
            }
            end -= usize::from(pad);
        }
        let body = self.datagram.slice(offset + 4..end);
        let at = Body {
            bytes: body,
            offset: offset + 4,
            packet_type,
        };
        let packet = match packet_type {
            TYPE_SR => RtcpPacket::SenderReport(SenderReport::parse_body(count, &at)?),
            TYPE_RR => RtcpPacket::ReceiverReport(ReceiverReport::parse_body(count, &at)?),
            TYPE_SDES => RtcpPacket::SourceDescription(SourceDescription::parse_body(count, &at)?),
            TYPE_BYE => RtcpPacket::Goodbye(Goodbye::parse_body(count, &at)?),
            TYPE_APP => RtcpPacket::App(App::parse_body(count, &at)?),
            _ => RtcpPacket::Unknown(UnknownPacket {
                packet_type,
                count,
                body: at.bytes,
            }),
        };
        self.offset = offset + len;
        Ok(packet)
    }
}

impl Iterator for CompoundIter {
    type Item = Result<RtcpPacket, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.offset >= self.datagram.len() {
            return None;
        }
        let result = self.parse_next();
        self.failed = result.is_err();
        Some(result)
    }
}

/// The body of one packet (after its 4-byte header, without padding), with the offset
/// of its first byte in the datagram for error messages.
#[derive(Debug)]
pub(crate) struct Body {
    bytes: Bytes,
    offset: usize,
    packet_type: u8,
}

impl Body {
    fn len(&self) -> usize {
        self.bytes.len()
    }

    /// `n` bytes at `at` (relative to the body), or a truncation error naming `what`.
    fn get(&self, at: usize, n: usize, what: &'static str) -> Result<&[u8], ParseError> {
        self.bytes.get(at..at + n).ok_or(ParseError::Truncated {
            what,
            offset: self.offset + at,
            needed: n,
            available: self.bytes.len().saturating_sub(at),
        })
    }

    fn u32_at(&self, at: usize, what: &'static str) -> Result<u32, ParseError> {
        let b = self.get(at, 4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn slice(&self, from: usize, to: usize) -> Bytes {
        self.bytes.slice(from..to)
    }

    fn malformed(&self, at: usize, reason: &'static str) -> ParseError {
        ParseError::Malformed {
            packet_type: self.packet_type,
            offset: self.offset + at,
            reason,
        }
    }
}

fn check_count(what: &'static str, count: usize) -> Result<(), BuildError> {
    if count > MAX_COUNT {
        Err(BuildError::TooMany { what, count })
    } else {
        Ok(())
    }
}

/// Why bytes are not a valid (compound) RTCP packet. Offsets count from the first byte
/// of the datagram.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The datagram ends inside a field.
    #[error("RTCP {what} truncated at byte {offset}: {needed} bytes needed, {available} left")]
    Truncated {
        /// The field.
        what: &'static str,
        /// Where it starts.
        offset: usize,
        /// Its length.
        needed: usize,
        /// The bytes left from `offset`.
        available: usize,
    },
    /// The version field is not 2.
    #[error("RTCP version {version} at byte {offset}, expected 2")]
    Version {
        /// The version.
        version: u8,
        /// The packet's first byte.
        offset: usize,
    },
    /// A packet's length field points past the end of the datagram.
    #[error("RTCP packet at byte {offset} has length {len}, only {available} bytes left")]
    Length {
        /// The packet's first byte.
        offset: usize,
        /// The length from its header, in bytes.
        len: usize,
        /// The bytes left from `offset`.
        available: usize,
    },
    /// The padding count is 0 or longer than the packet's body.
    #[error("RTCP padding count {count} at byte {offset} is invalid")]
    BadPadding {
        /// The count.
        count: u8,
        /// Where the count byte is.
        offset: usize,
    },
    /// The body does not have the structure of its packet type.
    #[error("RTCP packet type {packet_type} at byte {offset}: {reason}")]
    Malformed {
        /// The packet type.
        packet_type: u8,
        /// Where the fault is.
        offset: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// [`RtcpPacket::parse`] found more than one packet.
    #[error("data after the RTCP packet at byte {offset}")]
    TrailingData {
        /// Where the extra data starts.
        offset: usize,
    },
}

impl ParseError {
    /// The byte offset the error is about.
    pub fn offset(&self) -> usize {
        match self {
            ParseError::Truncated { offset, .. }
            | ParseError::Version { offset, .. }
            | ParseError::Length { offset, .. }
            | ParseError::BadPadding { offset, .. }
            | ParseError::Malformed { offset, .. }
            | ParseError::TrailingData { offset } => *offset,
        }
    }
}

/// Why an RTCP packet cannot be serialised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// More entries than the 5-bit count field holds.
    #[error("{count} entries in the {what}, at most 31 fit in one RTCP packet")]
    TooMany {
        /// What is counted.
        what: &'static str,
        /// How many there are.
        count: usize,
    },
    /// The packet is longer than its 16-bit length field allows.
    #[error("RTCP packet type {packet_type} would be {len} bytes, more than 262144")]
    TooLong {
        /// The packet type.
        packet_type: u8,
        /// Its length.
        len: usize,
    },
    /// An SDES item or BYE reason longer than 255 bytes.
    #[error("{what} of {len} bytes, at most 255 fit")]
    TextTooLong {
        /// Which text.
        what: &'static str,
        /// Its length.
        len: usize,
    },
    /// An SDES item of type 0 (that value ends an item list).
    #[error("SDES item type 0 is the end marker, not an item")]
    SdesEndItem,
    /// An APP subtype over five bits.
    #[error("APP subtype {0} does not fit in five bits")]
    AppSubtype(u8),
    /// An [`UnknownPacket`] whose type is one this crate models.
    #[error("packet type {0} must be built as its own variant, not as unknown")]
    KnownTypeAsUnknown(u8),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::Ssrc;

    #[test]
    fn unknown_packets_are_kept() {
        // A generic NACK (RTPFB 205, FMT 1) between an RR and a BYE.
        let wire: &[u8] = &[
            0x80, 201, 0, 1, 0, 0, 0, 1, // RR, no blocks
            0x81, 205, 0, 3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 5, 0, 0, // NACK
            0x81, 203, 0, 1, 0, 0, 0, 1, // BYE
        ];
        let packets = parse_compound(Bytes::from_static(wire)).unwrap();
        assert_eq!(packets.len(), 3);
        let RtcpPacket::Unknown(nack) = &packets[1] else {
            panic!("{packets:?}");
        };
        assert_eq!(
            (nack.packet_type, nack.count, nack.body.len()),
            (205, 1, 12)
        );
        assert_eq!(serialize_compound(&packets).unwrap(), wire);
    }

    #[test]
    fn lengths_are_checked() {
        let e = parse_compound(Bytes::from_static(&[0x80, 201, 0, 2, 0, 0, 0, 1])).unwrap_err();
        assert_eq!(
            e,
            ParseError::Length {
                offset: 0,
                len: 12,
                available: 8
            }
        );
        let e =
            parse_compound(Bytes::from_static(&[0x80, 201, 0, 1, 0, 0, 0, 1, 0x80])).unwrap_err();
        assert_eq!(e.offset(), 8);
        let e = parse_compound(Bytes::from_static(&[0x40, 201, 0, 0])).unwrap_err();
        assert!(matches!(
            e,
            ParseError::Version {
                version: 1,
                offset: 0
            }
        ));
        let e = parse_compound(Bytes::from_static(&[0xA0, 204, 0, 0])).unwrap_err();
        assert!(matches!(
            e,
            ParseError::BadPadding {
                count: 0,
                offset: 3
            }
        ));
        assert!(parse_compound(Bytes::new()).is_err());
        let e = RtcpPacket::parse(Bytes::from_static(&[
            0x80, 201, 0, 1, 0, 0, 0, 1, 0x80, 1, 0, 0,
        ]))
        .unwrap_err();
        assert_eq!(e, ParseError::TrailingData { offset: 8 });
    }

    #[test]
    fn padding_is_removed_and_regenerated() {
        // APP with 1 data byte plus 3 bytes of padding.
        let wire: &[u8] = &[
            0xA0, 204, 0, 3, 0, 0, 0, 9, b't', b'e', b's', b't', 0x42, 0, 0, 3,
        ];
        let p = RtcpPacket::parse(Bytes::from_static(wire)).unwrap();
        let RtcpPacket::App(app) = &p else {
            panic!("{p:?}")
        };
        assert_eq!(
            (app.ssrc, &app.name, &app.data[..]),
            (Ssrc(9), b"test", &[0x42][..])
        );
        assert_eq!(p.to_bytes().unwrap(), wire);
    }

    #[test]
    fn build_errors() {
        let unknown = RtcpPacket::Unknown(UnknownPacket {
            packet_type: 200,
            count: 0,
            body: Bytes::new(),
        });
        assert_eq!(unknown.to_bytes(), Err(BuildError::KnownTypeAsUnknown(200)));
        let bye = RtcpPacket::Goodbye(Goodbye {
            sources: vec![Ssrc(1); 32],
            reason: None,
        });
        assert!(matches!(
            bye.to_bytes(),
            Err(BuildError::TooMany { count: 32, .. })
        ));
        let rr = RtcpPacket::ReceiverReport(ReceiverReport {
            ssrc: Ssrc(1),
            reports: Vec::new(),
            extension: Bytes::from(vec![0; MAX_PACKET_LEN]),
        });
        assert!(matches!(
            rr.to_bytes(),
            Err(BuildError::TooLong {
                packet_type: 201,
                ..
            })
        ));
    }
}
