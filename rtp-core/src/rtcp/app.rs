//! Application-defined packets (APP, RFC 3550 §6.7).

use super::{Body, BuildError, ParseError};
use crate::packet::Ssrc;
use bytes::{BufMut, Bytes};

/// An APP packet.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct App {
    /// The 5-bit subtype (in the header's count field).
    pub subtype: u8,
    /// The sender.
    pub ssrc: Ssrc,
    /// Four ASCII characters naming the application.
    pub name: [u8; 4],
    /// Application data (padded to 32 bits on the wire).
    pub data: Bytes,
}

impl App {
    pub(super) fn parse_body(count: u8, body: &Body) -> Result<App, ParseError> {
        let head = body.get(0, 8, "APP SSRC and name")?;
        Ok(App {
            subtype: count,
            ssrc: Ssrc(u32::from_be_bytes([head[0], head[1], head[2], head[3]])),
            name: [head[4], head[5], head[6], head[7]],
            data: body.slice(8, body.len()),
        })
    }

    pub(super) fn write_body(&self, out: &mut Vec<u8>) -> Result<u8, BuildError> {
        if self.subtype > 0x1F {
            return Err(BuildError::AppSubtype(self.subtype));
        }
        out.put_u32(self.ssrc.0);
        out.put_slice(&self.name);
        out.put_slice(&self.data);
        Ok(self.subtype)
    }
}
