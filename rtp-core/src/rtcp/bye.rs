//! Goodbye packets (BYE, RFC 3550 §6.6).

use super::{Body, BuildError, ParseError, check_count};
use crate::packet::Ssrc;
use bytes::{BufMut, Bytes};

/// A BYE: sources leaving the session, with an optional reason.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Goodbye {
    /// The sources leaving, at most 31.
    pub sources: Vec<Ssrc>,
    /// Why they leave (text, at most 255 bytes).
    pub reason: Option<Bytes>,
}

impl Goodbye {
    pub(super) fn parse_body(count: u8, body: &Body) -> Result<Goodbye, ParseError> {
        let sources = (0..usize::from(count))
            .map(|i| body.u32_at(4 * i, "BYE SSRC").map(Ssrc))
            .collect::<Result<Vec<_>, _>>()?;
        let at = 4 * usize::from(count);
        if at == body.len() {
            return Ok(Goodbye {
                sources,
                reason: None,
            });
        }
        let len = usize::from(body.get(at, 1, "BYE reason length")?[0]);
        body.get(at + 1, len, "BYE reason")?;
        let end = at + 1 + len;
        if body.len() - end >= 4 {
            return Err(body.malformed(end, "data after the BYE reason"));
        }
        Ok(Goodbye {
            sources,
            reason: Some(body.slice(at + 1, end)),
        })
    }

    pub(super) fn write_body(&self, out: &mut Vec<u8>) -> Result<u8, BuildError> {
        check_count("BYE sources", self.sources.len())?;
        for ssrc in &self.sources {
            out.put_u32(ssrc.0);
        }
        if let Some(reason) = &self.reason {
            let len = u8::try_from(reason.len()).map_err(|_| BuildError::TextTooLong {
                what: "BYE reason",
                len: reason.len(),
            })?;
            out.put_u8(len);
            out.put_slice(reason);
            let written = 1 + reason.len();
            out.put_bytes(0, written.next_multiple_of(4) - written);
        }
        Ok(self.sources.len() as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtcp::RtcpPacket;

    #[test]
    fn bye_with_reason() {
        let wire: &[u8] = &[
            0x82, 203, 0, 4, 0, 0, 0, 1, 0, 0, 0, 2, 5, b'h', b'u', b'n', b'g', b' ', b'u', b'p',
        ];
        // The reason says 5 bytes; the packet is 20 bytes, so two of them are junk padding.
        let p = RtcpPacket::parse(Bytes::from_static(wire)).unwrap();
        let RtcpPacket::Goodbye(bye) = &p else {
            panic!("{p:?}")
        };
        assert_eq!(bye.sources, [Ssrc(1), Ssrc(2)]);
        assert_eq!(bye.reason.as_deref(), Some(&b"hung "[..]));
        let again = RtcpPacket::parse(p.to_bytes().unwrap()).unwrap();
        assert_eq!(again, p);
    }

    #[test]
    fn reason_past_the_end() {
        let e = RtcpPacket::parse(Bytes::from_static(&[
            0x81, 203, 0, 2, 0, 0, 0, 1, 9, b'x', 0, 0,
        ]))
        .unwrap_err();
        assert!(matches!(
            e,
            ParseError::Truncated {
                what: "BYE reason",
                offset: 9,
                ..
            }
        ));
    }
}
