//! Source descriptions (SDES, RFC 3550 §6.5).

use super::{Body, BuildError, ParseError, check_count};
use crate::packet::Ssrc;
use bytes::{BufMut, Bytes};

/// The type of an SDES item. An open set: unknown types round-trip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SdesItemType(pub u8);

impl SdesItemType {
    /// Canonical end-point identifier (required in every compound packet).
    pub const CNAME: SdesItemType = SdesItemType(1);
    /// User name.
    pub const NAME: SdesItemType = SdesItemType(2);
    /// E-mail address.
    pub const EMAIL: SdesItemType = SdesItemType(3);
    /// Phone number.
    pub const PHONE: SdesItemType = SdesItemType(4);
    /// Geographic location.
    pub const LOC: SdesItemType = SdesItemType(5);
    /// Application or tool name.
    pub const TOOL: SdesItemType = SdesItemType(6);
    /// Notice/status.
    pub const NOTE: SdesItemType = SdesItemType(7);
    /// Private extension (the value starts with a prefix length and prefix).
    pub const PRIV: SdesItemType = SdesItemType(8);
}

/// One SDES item: a type and up to 255 bytes of value (UTF-8 text for the standard
/// types, kept as bytes).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SdesItem {
    /// The item type (not 0, which ends a list).
    pub kind: SdesItemType,
    /// The value.
    pub value: Bytes,
}

impl SdesItem {
    /// A CNAME item.
    pub fn cname(cname: &str) -> SdesItem {
        SdesItem {
            kind: SdesItemType::CNAME,
            value: Bytes::copy_from_slice(cname.as_bytes()),
        }
    }
}

/// The items describing one source.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct SdesChunk {
    /// The source.
    pub ssrc: Ssrc,
    /// Its items in wire order.
    pub items: Vec<SdesItem>,
}

impl SdesChunk {
    /// The first CNAME of the chunk.
    pub fn cname(&self) -> Option<&Bytes> {
        self.items
            .iter()
            .find(|i| i.kind == SdesItemType::CNAME)
            .map(|i| &i.value)
    }
}

/// A source description packet: up to 31 chunks.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct SourceDescription {
    /// The chunks.
    pub chunks: Vec<SdesChunk>,
}

impl SourceDescription {
    pub(super) fn parse_body(count: u8, body: &Body) -> Result<SourceDescription, ParseError> {
        let mut chunks = Vec::with_capacity(usize::from(count));
        let mut at = 0;
        for _ in 0..count {
            let ssrc = Ssrc(body.u32_at(at, "SDES chunk SSRC")?);
            at += 4;
            let mut items = Vec::new();
            loop {
                let kind = body.get(at, 1, "SDES item")?[0];
                if kind == 0 {
                    // The end item, then null octets up to the next 32-bit boundary
                    // (the body starts on one). Padding may have cut the last ones.
                    at = (at + 1).next_multiple_of(4).min(body.len());
                    break;
                }
                let len = usize::from(body.get(at + 1, 1, "SDES item length")?[0]);
                body.get(at + 2, len, "SDES item value")?;
                items.push(SdesItem {
                    kind: SdesItemType(kind),
                    value: body.slice(at + 2, at + 2 + len),
                });
                at += 2 + len;
            }
            chunks.push(SdesChunk { ssrc, items });
        }
        if let Some(extra) = body.bytes.get(at..)
            && let Some(i) = extra.iter().position(|&b| b != 0)
        {
            return Err(body.malformed(at + i, "data after the last SDES chunk"));
        }
        Ok(SourceDescription { chunks })
    }

    pub(super) fn write_body(&self, out: &mut Vec<u8>) -> Result<u8, BuildError> {
        check_count("SDES chunks", self.chunks.len())?;
        for chunk in &self.chunks {
            let start = out.len();
            out.put_u32(chunk.ssrc.0);
            for item in &chunk.items {
                if item.kind.0 == 0 {
                    return Err(BuildError::SdesEndItem);
                }
                let len = u8::try_from(item.value.len()).map_err(|_| BuildError::TextTooLong {
                    what: "SDES item",
                    len: item.value.len(),
                })?;
                out.put_u8(item.kind.0);
                out.put_u8(len);
                out.put_slice(&item.value);
            }
            let len = out.len() - start + 1;
            out.put_bytes(0, 1 + len.next_multiple_of(4) - len);
        }
        Ok(self.chunks.len() as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtcp::{RtcpPacket, parse_compound};

    #[test]
    fn two_chunks() {
        let wire: &[u8] = &[
            0x82, 202, 0, 6, // header, two chunks
            0, 0, 0, 1, 1, 3, b'a', b'@', b'b', 0, // CNAME, end (10 bytes → 12)
            0, 0, //
            0, 0, 0, 2, 1, 1, b'x', 6, 2, b'p', b'k', 0, // CNAME + TOOL, end: exactly 12
        ];
        let p = RtcpPacket::parse(Bytes::from_static(wire)).unwrap();
        let RtcpPacket::SourceDescription(sdes) = &p else {
            panic!("{p:?}")
        };
        assert_eq!(sdes.chunks.len(), 2);
        assert_eq!(&sdes.chunks[0].cname().unwrap()[..], b"a@b");
        assert_eq!(sdes.chunks[1].items[1].kind, SdesItemType::TOOL);
        assert_eq!(p.to_bytes().unwrap(), wire);
    }

    #[test]
    fn malformed_chunks() {
        // Item value runs past the packet.
        let e = parse_compound(Bytes::from_static(&[
            0x81, 202, 0, 2, 0, 0, 0, 1, 1, 9, 0, 0,
        ]))
        .unwrap_err();
        assert!(matches!(
            e,
            ParseError::Truncated {
                what: "SDES item value",
                offset: 10,
                ..
            }
        ));
        // No end item.
        let e = parse_compound(Bytes::from_static(&[
            0x81, 202, 0, 2, 0, 0, 0, 1, 1, 2, 0, 0,
        ]))
        .unwrap_err();
        assert!(matches!(
            e,
            ParseError::Truncated {
                what: "SDES item",
                offset: 12,
                ..
            }
        ));
        // Junk after the announced chunks.
        let e = parse_compound(Bytes::from_static(&[
            0x81, 202, 0, 3, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 7,
        ]))
        .unwrap_err();
        assert!(matches!(
            e,
            ParseError::Malformed {
                packet_type: 202,
                offset: 15,
                ..
            }
        ));
        let long = SourceDescription {
            chunks: vec![SdesChunk {
                ssrc: Ssrc(1),
                items: vec![SdesItem {
                    kind: SdesItemType::NOTE,
                    value: Bytes::from(vec![b'x'; 256]),
                }],
            }],
        };
        assert!(matches!(
            RtcpPacket::SourceDescription(long).to_bytes(),
            Err(BuildError::TextTooLong { len: 256, .. })
        ));
    }
}
