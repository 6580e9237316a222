//! RTP data packets (RFC 3550 §5.1) with CSRC lists, padding and header extensions in
//! the RFC 8285 one-byte and two-byte forms.
//!
//! [`RtpPacket::parse`] keeps the received [`Bytes`]: the payload and the extension
//! element data are slices of it, nothing is copied. [`RtpPacket::builder`] makes a new
//! packet and checks the limits of the wire format once, so that
//! [`RtpPacket::to_bytes`] cannot fail and `parse(to_bytes(p)) == p` for every packet.
//!
//! ```
//! use bytes::Bytes;
//! use pbxkit_rtp::packet::{PayloadType, RtpPacket, SeqNo, Ssrc, RtpTimestamp};
//!
//! let packet = RtpPacket::builder(PayloadType::PCMU, SeqNo(7), RtpTimestamp(160), Ssrc(0x1234))
//!     .marker(true)
//!     .payload(Bytes::from_static(&[0xFF; 160]))
//!     .build()?;
//! let wire = packet.to_bytes();
//! assert_eq!(wire.len(), 12 + 160);
//! assert_eq!(RtpPacket::parse(wire)?, packet);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use bytes::{BufMut, Bytes};
use std::fmt;

/// The length of the fixed RTP header.
pub const FIXED_HEADER_LEN: usize = 12;
/// The most CSRCs a packet can carry (the CC field has four bits).
pub const MAX_CSRCS: usize = 15;
/// The "defined by profile" value of the RFC 8285 one-byte header extension form.
pub const ONE_BYTE_PROFILE: u16 = 0xBEDE;
/// The "defined by profile" value of the RFC 8285 two-byte form, without its four
/// application bits (the value on the wire is `0x1000 | appbits`).
pub const TWO_BYTE_PROFILE: u16 = 0x1000;

/// A synchronisation source (or, in a CSRC list, contributing source) identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Ssrc(pub u32);

impl fmt::Display for Ssrc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#010x}", self.0)
    }
}

/// An RTP sequence number. It wraps at 2^16; compare with [`SeqNo::wrapping_diff`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SeqNo(pub u16);

impl SeqNo {
    /// The next sequence number (wrapping).
    pub fn next(self) -> SeqNo {
        SeqNo(self.0.wrapping_add(1))
    }

    /// How far `self` is ahead of `other`, taking wrap-around into account
    /// (negative when `self` is older).
    pub fn wrapping_diff(self, other: SeqNo) -> i16 {
        // Reinterpreting the wrapped difference as signed is the point here.
        self.0.wrapping_sub(other.0) as i16
    }
}

/// An RTP media timestamp, in units of the payload's clock rate. It wraps at 2^32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct RtpTimestamp(pub u32);

impl RtpTimestamp {
    /// This timestamp plus `samples`, wrapping.
    pub fn wrapping_add(self, samples: u32) -> RtpTimestamp {
        RtpTimestamp(self.0.wrapping_add(samples))
    }

    /// How far `self` is ahead of `other`, taking wrap-around into account
    /// (negative when `self` is older).
    pub fn wrapping_diff(self, other: RtpTimestamp) -> i32 {
        // Reinterpreting the wrapped difference as signed is the point here.
        self.0.wrapping_sub(other.0) as i32
    }
}

/// A 7-bit RTP payload type. Static types have constants; dynamic ones (96–127) are
/// negotiated in SDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PayloadType(u8);

impl PayloadType {
    /// G.711 µ-law (RFC 3551).
    pub const PCMU: PayloadType = PayloadType(0);
    /// G.711 A-law (RFC 3551).
    pub const PCMA: PayloadType = PayloadType(8);
    /// G.722 (RFC 3551; its RTP clock rate is 8000 although it samples at 16 kHz).
    pub const G722: PayloadType = PayloadType(9);
    /// Comfort noise (RFC 3389).
    pub const CN: PayloadType = PayloadType(13);

    /// The payload type `value`, or `None` if it does not fit in seven bits.
    pub const fn new(value: u8) -> Option<PayloadType> {
        if value <= 0x7F {
            Some(PayloadType(value))
        } else {
            None
        }
    }

    /// The numeric value, 0–127.
    pub const fn get(self) -> u8 {
        self.0
    }
}

impl fmt::Display for PayloadType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// One element of an RFC 8285 header extension: a local identifier (negotiated with
/// `a=extmap`) and its data, a slice of the received packet.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExtensionElement {
    id: u8,
    data: Bytes,
}

impl ExtensionElement {
    /// An element; the form it fits in is checked when the packet is built.
    pub fn new(id: u8, data: Bytes) -> ExtensionElement {
        ExtensionElement { id, data }
    }

    /// The local identifier (1–14 in the one-byte form, 1–255 in the two-byte form).
    pub fn id(&self) -> u8 {
        self.id
    }

    /// The element's data.
    pub fn data(&self) -> &Bytes {
        &self.data
    }
}

/// The header extension of an RTP packet (RFC 3550 §5.3.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HeaderExtension {
    /// RFC 8285 one-byte form (profile 0xBEDE): ids 1–14, 1–16 data bytes each.
    OneByte(Vec<ExtensionElement>),
    /// RFC 8285 two-byte form (profile 0x100X): ids 1–255, 0–255 data bytes each.
    TwoByte {
        /// The four application bits of the profile value.
        app_bits: u8,
        /// The elements in wire order.
        elements: Vec<ExtensionElement>,
    },
    /// Any other profile, kept as it was received (a multiple of four bytes).
    Other {
        /// The 16-bit "defined by profile" value.
        profile: u16,
        /// The extension data after the length word.
        data: Bytes,
    },
}

impl HeaderExtension {
    /// The elements of an RFC 8285 extension (empty for [`HeaderExtension::Other`]).
    pub fn elements(&self) -> &[ExtensionElement] {
        match self {
            HeaderExtension::OneByte(elements) | HeaderExtension::TwoByte { elements, .. } => {
                elements
            }
            HeaderExtension::Other { .. } => &[],
        }
    }

    /// The data of the first element with local identifier `id`.
    pub fn get(&self, id: u8) -> Option<&Bytes> {
        self.elements().iter().find(|e| e.id == id).map(|e| &e.data)
    }

    /// The profile value written on the wire.
    pub fn profile(&self) -> u16 {
        match self {
            HeaderExtension::OneByte(_) => ONE_BYTE_PROFILE,
            HeaderExtension::TwoByte { app_bits, .. } => TWO_BYTE_PROFILE | u16::from(*app_bits),
            HeaderExtension::Other { profile, .. } => *profile,
        }
    }

    /// The length of the extension data after the 4-byte extension header, padded to
    /// a multiple of four.
    fn data_len(&self) -> usize {
        let raw = match self {
            HeaderExtension::OneByte(elements) => elements.iter().map(|e| 1 + e.data.len()).sum(),
            HeaderExtension::TwoByte { elements, .. } => {
                elements.iter().map(|e| 2 + e.data.len()).sum()
            }
            HeaderExtension::Other { data, .. } => data.len(),
        };
        raw.next_multiple_of(4)
    }

    fn check(&self) -> Result<(), BuildError> {
        match self {
            HeaderExtension::OneByte(elements) => {
                for e in elements {
                    if !(1..=14).contains(&e.id) {
                        return Err(BuildError::ExtensionId { id: e.id, max: 14 });
                    }
                    if !(1..=16).contains(&e.data.len()) {
                        return Err(BuildError::ExtensionDataLength {
                            id: e.id,
                            len: e.data.len(),
                            min: 1,
                            max: 16,
                        });
                    }
                }
            }
            HeaderExtension::TwoByte { app_bits, elements } => {
                if *app_bits > 0x0F {
                    return Err(BuildError::AppBits(*app_bits));
                }
                for e in elements {
                    if e.id == 0 {
                        return Err(BuildError::ExtensionId { id: 0, max: 255 });
                    }
                    if e.data.len() > 255 {
                        return Err(BuildError::ExtensionDataLength {
                            id: e.id,
                            len: e.data.len(),
                            min: 0,
                            max: 255,
                        });
                    }
                }
            }
            HeaderExtension::Other { data, .. } => {
                if !data.len().is_multiple_of(4) {
                    return Err(BuildError::ExtensionNotAligned(data.len()));
                }
            }
        }
        if self.data_len() / 4 > usize::from(u16::MAX) {
            return Err(BuildError::ExtensionTooLong(self.data_len()));
        }
        Ok(())
    }

    fn write(&self, out: &mut Vec<u8>) {
        let len = self.data_len();
        out.put_u16(self.profile());
        // `check` keeps the length in range.
        out.put_u16(u16::try_from(len / 4).unwrap_or(u16::MAX));
        let start = out.len();
        match self {
            HeaderExtension::OneByte(elements) => {
                for e in elements {
                    // `check` keeps 1 <= len <= 16, so len - 1 fits in four bits.
                    let len_minus_one = e.data.len().saturating_sub(1) as u8;
                    out.put_u8((e.id << 4) | (len_minus_one & 0x0F));
                    out.put_slice(&e.data);
                }
            }
            HeaderExtension::TwoByte { elements, .. } => {
                for e in elements {
                    out.put_u8(e.id);
                    out.put_u8(u8::try_from(e.data.len()).unwrap_or(u8::MAX));
                    out.put_slice(&e.data);
                }
            }
            HeaderExtension::Other { data, .. } => out.put_slice(data),
        }
        out.resize(start + len, 0);
    }

    /// Parses the extension data (after the 4-byte header) starting at `offset` of
    /// the packet.
    fn parse(profile: u16, data: Bytes, offset: usize) -> Result<HeaderExtension, ParseError> {
        if profile == ONE_BYTE_PROFILE {
            let mut elements = Vec::new();
            let mut i = 0;
            while let Some(&byte) = data.get(i) {
                let id = byte >> 4;
                if byte == 0 {
                    i += 1;
                    continue;
                }
                if id == 15 {
                    // RFC 8285 §4.2: processing stops at the reserved id 15.
                    break;
                }
                if id == 0 {
                    return Err(ParseError::BadExtensionElement {
                        reason: "one-byte element with id 0 and a non-zero length",
                        offset: offset + i,
                    });
                }
                let len = usize::from(byte & 0x0F) + 1;
                if data.get(i + 1..i + 1 + len).is_none() {
                    return Err(ParseError::BadExtensionElement {
                        reason: "one-byte element runs past the extension",
                        offset: offset + i,
                    });
                }
                elements.push(ExtensionElement {
                    id,
                    data: data.slice(i + 1..i + 1 + len),
                });
                i += 1 + len;
            }
            Ok(HeaderExtension::OneByte(elements))
        } else if profile & 0xFFF0 == TWO_BYTE_PROFILE {
            let mut elements = Vec::new();
            let mut i = 0;
            while let Some(&id) = data.get(i) {
                if id == 0 {
                    i += 1;
                    continue;
                }
                let Some(&len) = data.get(i + 1) else {
                    return Err(ParseError::BadExtensionElement {
                        reason: "two-byte element without a length byte",
                        offset: offset + i,
                    });
                };
                let len = usize::from(len);
                if data.get(i + 2..i + 2 + len).is_none() {
                    return Err(ParseError::BadExtensionElement {
                        reason: "two-byte element runs past the extension",
                        offset: offset + i,
                    });
                }
                elements.push(ExtensionElement {
                    id,
                    data: data.slice(i + 2..i + 2 + len),
                });
                i += 2 + len;
            }
            Ok(HeaderExtension::TwoByte {
                app_bits: (profile & 0x0F) as u8,
                elements,
            })
        } else {
            Ok(HeaderExtension::Other { profile, data })
        }
    }
}

/// An RTP packet. Fields are read with accessors; a packet is made with
/// [`RtpPacket::builder`] or [`RtpPacket::parse`] and can be changed with the setters
/// that cannot break the wire format's limits (what a relay rewrites).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RtpPacket {
    marker: bool,
    payload_type: PayloadType,
    sequence: SeqNo,
    timestamp: RtpTimestamp,
    ssrc: Ssrc,
    csrcs: Vec<Ssrc>,
    extension: Option<HeaderExtension>,
    payload: Bytes,
    padding: u8,
}

impl RtpPacket {
    /// Starts a packet with the four fields every packet has; no marker, no CSRC, no
    /// extension, empty payload and no padding unless set.
    pub fn builder(
        payload_type: PayloadType,
        sequence: SeqNo,
        timestamp: RtpTimestamp,
        ssrc: Ssrc,
    ) -> RtpPacketBuilder {
        RtpPacketBuilder {
            packet: RtpPacket {
                marker: false,
                payload_type,
                sequence,
                timestamp,
                ssrc,
                csrcs: Vec::new(),
                extension: None,
                payload: Bytes::new(),
                padding: 0,
            },
        }
    }

    /// A packet with no marker, CSRC, extension or padding: what a media stream sends.
    pub fn new(
        payload_type: PayloadType,
        sequence: SeqNo,
        timestamp: RtpTimestamp,
        ssrc: Ssrc,
        payload: Bytes,
    ) -> RtpPacket {
        RtpPacket {
            marker: false,
            payload_type,
            sequence,
            timestamp,
            ssrc,
            csrcs: Vec::new(),
            extension: None,
            payload,
            padding: 0,
        }
    }

    /// Parses one RTP packet that fills `packet` exactly. The payload and extension
    /// data are slices of `packet`.
    pub fn parse(packet: impl Into<Bytes>) -> Result<RtpPacket, ParseError> {
        let packet: Bytes = packet.into();
        let len = packet.len();
        let Some(fixed) = packet.get(..FIXED_HEADER_LEN) else {
            return Err(ParseError::Truncated {
                what: Part::FixedHeader,
                offset: 0,
                needed: FIXED_HEADER_LEN,
                available: len,
            });
        };
        let version = fixed[0] >> 6;
        if version != 2 {
            return Err(ParseError::Version(version));
        }
        let has_padding = fixed[0] & 0x20 != 0;
        let has_extension = fixed[0] & 0x10 != 0;
        let csrc_count = usize::from(fixed[0] & 0x0F);
        let marker = fixed[1] & 0x80 != 0;
        let payload_type = PayloadType(fixed[1] & 0x7F);
        let sequence = SeqNo(u16::from_be_bytes([fixed[2], fixed[3]]));
        let timestamp = RtpTimestamp(u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]));
        let ssrc = Ssrc(u32::from_be_bytes([
            fixed[8], fixed[9], fixed[10], fixed[11],
        ]));

        let mut offset = FIXED_HEADER_LEN;
        let Some(csrc_bytes) = packet.get(offset..offset + 4 * csrc_count) else {
            return Err(ParseError::Truncated {
                what: Part::CsrcList,
                offset,
                needed: 4 * csrc_count,
                available: len - offset,
            });
        };
        let csrcs = csrc_bytes
            .chunks_exact(4)
            .map(|c| Ssrc(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
            .collect();
        offset += 4 * csrc_count;

        let extension = if has_extension {
            let Some(head) = packet.get(offset..offset + 4) else {
                return Err(ParseError::Truncated {
                    what: Part::ExtensionHeader,
                    offset,
                    needed: 4,
                    available: len - offset,
                });
            };
            let profile = u16::from_be_bytes([head[0], head[1]]);
            let words = usize::from(u16::from_be_bytes([head[2], head[3]]));
            let start = offset + 4;
            if packet.get(start..start + 4 * words).is_none() {
                return Err(ParseError::Truncated {
                    what: Part::Extension,
                    offset: start,
                    needed: 4 * words,
                    available: len - start,
                });
            }
            let data = packet.slice(start..start + 4 * words);
            offset = start + 4 * words;
            Some(HeaderExtension::parse(profile, data, start)?)
        } else {
            None
        };

        let mut end = len;
        let mut padding = 0;
        if has_padding {
            // `len >= 12`, so there is a last byte.
            let count = packet[len - 1];
            if count == 0 || usize::from(count) > len - offset {
                return Err(ParseError::BadPadding {
                    count,
                    offset: len - 1,
                    available: len - offset,
                });
            }
            padding = count;
            end = len - usize::from(count);
        }
        Ok(RtpPacket {
            marker,
            payload_type,
            sequence,
            timestamp,
            ssrc,
            csrcs,
            extension,
            payload: packet.slice(offset..end),
            padding,
        })
    }

    /// The number of bytes [`RtpPacket::to_bytes`] produces.
    pub fn encoded_len(&self) -> usize {
        FIXED_HEADER_LEN
            + 4 * self.csrcs.len()
            + self.extension.as_ref().map_or(0, |e| 4 + e.data_len())
            + self.payload.len()
            + usize::from(self.padding)
    }

    /// Appends the packet in wire format to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len());
        let mut first = 0x80 | (self.csrcs.len() as u8 & 0x0F);
        if self.padding > 0 {
            first |= 0x20;
        }
        if self.extension.is_some() {
            first |= 0x10;
        }
        out.put_u8(first);
        out.put_u8(u8::from(self.marker) << 7 | self.payload_type.0);
        out.put_u16(self.sequence.0);
        out.put_u32(self.timestamp.0);
        out.put_u32(self.ssrc.0);
        for csrc in &self.csrcs {
            out.put_u32(csrc.0);
        }
        if let Some(extension) = &self.extension {
            extension.write(out);
        }
        out.put_slice(&self.payload);
        if self.padding > 0 {
            out.put_bytes(0, usize::from(self.padding) - 1);
            out.put_u8(self.padding);
        }
    }

    /// The packet in wire format.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.write_to(&mut out);
        out.into()
    }

    /// The marker bit (start of a talkspurt for audio, RFC 3551 §4.1).
    pub fn marker(&self) -> bool {
        self.marker
    }
    /// The payload type.
    pub fn payload_type(&self) -> PayloadType {
        self.payload_type
    }
    /// The sequence number.
    pub fn sequence(&self) -> SeqNo {
        self.sequence
    }
    /// The media timestamp.
    pub fn timestamp(&self) -> RtpTimestamp {
        self.timestamp
    }
    /// The synchronisation source.
    pub fn ssrc(&self) -> Ssrc {
        self.ssrc
    }
    /// The contributing sources (at most [`MAX_CSRCS`]).
    pub fn csrcs(&self) -> &[Ssrc] {
        &self.csrcs
    }
    /// The header extension, if any.
    pub fn extension(&self) -> Option<&HeaderExtension> {
        self.extension.as_ref()
    }
    /// The payload, without padding.
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }
    /// The number of padding bytes after the payload, the count byte included
    /// (0: no padding).
    pub fn padding(&self) -> u8 {
        self.padding
    }

    /// Sets the marker bit.
    pub fn set_marker(&mut self, marker: bool) {
        self.marker = marker;
    }
    /// Sets the payload type.
    pub fn set_payload_type(&mut self, payload_type: PayloadType) {
        self.payload_type = payload_type;
    }
    /// Sets the sequence number.
    pub fn set_sequence(&mut self, sequence: SeqNo) {
        self.sequence = sequence;
    }
    /// Sets the timestamp.
    pub fn set_timestamp(&mut self, timestamp: RtpTimestamp) {
        self.timestamp = timestamp;
    }
    /// Sets the synchronisation source.
    pub fn set_ssrc(&mut self, ssrc: Ssrc) {
        self.ssrc = ssrc;
    }
    /// Replaces the payload.
    pub fn set_payload(&mut self, payload: Bytes) {
        self.payload = payload;
    }
    /// Sets the padding length, the count byte included (0: no padding).
    pub fn set_padding(&mut self, padding: u8) {
        self.padding = padding;
    }

    /// The payload, consuming the packet.
    pub fn into_payload(self) -> Bytes {
        self.payload
    }
}

/// Makes an [`RtpPacket`]; see [`RtpPacket::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct RtpPacketBuilder {
    packet: RtpPacket,
}

impl RtpPacketBuilder {
    /// Sets the marker bit.
    pub fn marker(mut self, marker: bool) -> Self {
        self.packet.marker = marker;
        self
    }
    /// Adds a contributing source (at most [`MAX_CSRCS`]).
    pub fn csrc(mut self, csrc: Ssrc) -> Self {
        self.packet.csrcs.push(csrc);
        self
    }
    /// Sets the header extension.
    pub fn extension(mut self, extension: HeaderExtension) -> Self {
        self.packet.extension = Some(extension);
        self
    }
    /// Sets the payload.
    pub fn payload(mut self, payload: Bytes) -> Self {
        self.packet.payload = payload;
        self
    }
    /// Adds `padding` bytes after the payload, the count byte included (0: none).
    pub fn padding(mut self, padding: u8) -> Self {
        self.packet.padding = padding;
        self
    }

    /// Checks the wire format's limits and returns the packet.
    pub fn build(self) -> Result<RtpPacket, BuildError> {
        if self.packet.csrcs.len() > MAX_CSRCS {
            return Err(BuildError::TooManyCsrcs(self.packet.csrcs.len()));
        }
        if let Some(extension) = &self.packet.extension {
            extension.check()?;
        }
        Ok(self.packet)
    }
}

/// The part of an RTP packet a [`ParseError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Part {
    /// The 12-byte fixed header.
    FixedHeader,
    /// The CSRC list.
    CsrcList,
    /// The 4-byte header of the header extension.
    ExtensionHeader,
    /// The header extension's data.
    Extension,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Part::FixedHeader => "fixed header",
            Part::CsrcList => "CSRC list",
            Part::ExtensionHeader => "header extension header",
            Part::Extension => "header extension",
        })
    }
}

/// Why bytes are not an RTP packet. Offsets count from the first byte of the packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The packet ends inside a part.
    #[error("RTP {what} truncated at byte {offset}: {needed} bytes needed, {available} left")]
    Truncated {
        /// The part.
        what: Part,
        /// Where the part starts.
        offset: usize,
        /// Its length.
        needed: usize,
        /// The bytes left from `offset`.
        available: usize,
    },
    /// The version field (byte 0, top two bits) is not 2.
    #[error("RTP version {0} at byte 0, expected 2")]
    Version(u8),
    /// The padding count in the last byte is 0 or longer than the payload.
    #[error(
        "RTP padding count {count} at byte {offset} is invalid: {available} bytes follow the header"
    )]
    BadPadding {
        /// The count.
        count: u8,
        /// Where the count byte is (the last byte).
        offset: usize,
        /// The bytes after the header, padding included.
        available: usize,
    },
    /// An RFC 8285 extension element has a malformed id or length.
    #[error("RTP header extension element at byte {offset}: {reason}")]
    BadExtensionElement {
        /// What is wrong.
        reason: &'static str,
        /// Where the element starts.
        offset: usize,
    },
}

impl ParseError {
    /// The byte offset the error is about.
    pub fn offset(&self) -> usize {
        match self {
            ParseError::Truncated { offset, .. }
            | ParseError::BadPadding { offset, .. }
            | ParseError::BadExtensionElement { offset, .. } => *offset,
            ParseError::Version(_) => 0,
        }
    }
}

/// Why an [`RtpPacketBuilder`] cannot make a packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// More than [`MAX_CSRCS`] contributing sources.
    #[error("{0} CSRCs, at most 15 fit in an RTP header")]
    TooManyCsrcs(usize),
    /// An extension element id outside the form's range.
    #[error("header extension element id {id} is outside 1..={max}")]
    ExtensionId {
        /// The id.
        id: u8,
        /// The largest id of the form.
        max: u8,
    },
    /// An extension element's data does not fit the form.
    #[error("header extension element {id} has {len} data bytes, the form allows {min}..={max}")]
    ExtensionDataLength {
        /// The element's id.
        id: u8,
        /// Its data length.
        len: usize,
        /// The smallest length of the form.
        min: usize,
        /// The largest length of the form.
        max: usize,
    },
    /// Two-byte form application bits over four bits.
    #[error("two-byte header extension app bits {0:#x} do not fit in four bits")]
    AppBits(u8),
    /// Raw extension data whose length is not a multiple of four.
    #[error("header extension data of {0} bytes is not a multiple of 4")]
    ExtensionNotAligned(usize),
    /// The extension is longer than its 16-bit word count allows.
    #[error("header extension of {0} bytes is longer than 65535 words")]
    ExtensionTooLong(usize),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(bytes: &[u8]) -> Result<RtpPacket, ParseError> {
        RtpPacket::parse(Bytes::copy_from_slice(bytes))
    }

    #[test]
    fn parses_a_plain_pcmu_packet() {
        let mut wire = vec![
            0x80, 0x00, 0x12, 0x34, 0, 0, 0x01, 0x40, 0xde, 0xad, 0xbe, 0xef,
        ];
        wire.extend_from_slice(&[0xFF; 160]);
        let p = RtpPacket::parse(wire.clone()).unwrap();
        assert_eq!(p.payload_type(), PayloadType::PCMU);
        assert_eq!(p.sequence(), SeqNo(0x1234));
        assert_eq!(p.timestamp(), RtpTimestamp(320));
        assert_eq!(p.ssrc(), Ssrc(0xdead_beef));
        assert!(!p.marker());
        assert_eq!(p.payload().len(), 160);
        assert_eq!(p.to_bytes(), wire);
    }

    #[test]
    fn csrcs_marker_and_padding() {
        let wire = [
            0xA2, 0x88, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, // header, P, CC=2, M, PT 8
            0, 0, 0, 4, 0, 0, 0, 5, // CSRCs
            0xAA, 0xBB, // payload
            0, 0, 3, // padding
        ];
        let p = RtpPacket::parse(wire.to_vec()).unwrap();
        assert!(p.marker());
        assert_eq!(p.payload_type(), PayloadType::PCMA);
        assert_eq!(p.csrcs(), &[Ssrc(4), Ssrc(5)]);
        assert_eq!(&p.payload()[..], &[0xAA, 0xBB]);
        assert_eq!(p.padding(), 3);
        assert_eq!(p.to_bytes(), wire[..]);
    }

    #[test]
    fn one_byte_extension_elements() {
        let wire = [
            0x90, 0x60, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, // header with X
            0xBE, 0xDE, 0, 2, // profile, two words
            0x10, 0x55, // id 1, one byte
            0x00, // padding between elements
            0x31, 0x01, 0x02, // id 3, two bytes
            0, 0,    // padding
            0x99, // payload
        ];
        let p = RtpPacket::parse(wire.to_vec()).unwrap();
        let ext = p.extension().unwrap();
        assert_eq!(ext.elements().len(), 2);
        assert_eq!(&ext.get(1).unwrap()[..], &[0x55]);
        assert_eq!(&ext.get(3).unwrap()[..], &[1, 2]);
        assert_eq!(&p.payload()[..], &[0x99]);
        assert_eq!(RtpPacket::parse(p.to_bytes()).unwrap(), p);
    }

    #[test]
    fn one_byte_id_15_stops_processing() {
        let wire = [
            0x90, 0x60, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0xBE, 0xDE, 0, 1, 0x10, 0x55, 0xF3, 0x77,
        ];
        let p = packet(&wire).unwrap();
        assert_eq!(p.extension().unwrap().elements().len(), 1);
    }

    #[test]
    fn two_byte_extension_elements() {
        let wire = [
            0x90, 0x60, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, // header with X
            0x10, 0x03, 0, 2, // two-byte profile with app bits 3
            0xC8, 0x00, // id 200, empty
            0x07, 0x03, 1, 2, 3, // id 7, three bytes
            0, // padding
        ];
        let p = packet(&wire).unwrap();
        let HeaderExtension::TwoByte { app_bits, elements } = p.extension().unwrap() else {
            panic!("not two-byte: {p:?}");
        };
        assert_eq!(*app_bits, 3);
        assert_eq!(elements[0].id(), 200);
        assert!(elements[0].data().is_empty());
        assert_eq!(&elements[1].data()[..], &[1, 2, 3]);
        assert_eq!(p.to_bytes(), wire[..]);
    }

    #[test]
    fn errors_name_what_and_where() {
        assert_eq!(
            packet(&[0x80, 0]).unwrap_err(),
            ParseError::Truncated {
                what: Part::FixedHeader,
                offset: 0,
                needed: 12,
                available: 2
            }
        );
        assert_eq!(
            packet(&[0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).unwrap_err(),
            ParseError::Version(1)
        );
        let e = packet(&[0x81, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2]).unwrap_err();
        assert_eq!(e.offset(), 12);
        assert_eq!(
            e.to_string(),
            "RTP CSRC list truncated at byte 12: 4 bytes needed, 2 left"
        );
        // Padding count zero, and padding longer than what follows the header.
        let e = packet(&[0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).unwrap_err();
        assert!(matches!(
            e,
            ParseError::BadPadding {
                count: 0,
                offset: 12,
                ..
            }
        ));
        let e = packet(&[0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 3]).unwrap_err();
        assert!(matches!(
            e,
            ParseError::BadPadding {
                count: 3,
                offset: 13,
                ..
            }
        ));
        // Extension word count past the end.
        let e = packet(&[
            0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xBE, 0xDE, 0, 2, 0, 0, 0, 0,
        ])
        .unwrap_err();
        assert!(matches!(
            e,
            ParseError::Truncated {
                what: Part::Extension,
                offset: 16,
                ..
            }
        ));
        // One-byte element longer than the extension.
        let e = packet(&[
            0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xBE, 0xDE, 0, 1, 0, 0, 0x13, 0,
        ])
        .unwrap_err();
        assert_eq!(e.offset(), 18);
        // Two-byte element without its length byte.
        let e = packet(&[
            0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 1, 0, 0, 0, 5,
        ])
        .unwrap_err();
        assert!(matches!(
            e,
            ParseError::BadExtensionElement { offset: 19, .. }
        ));
    }

    #[test]
    fn builder_checks_limits() {
        let b = || RtpPacket::builder(PayloadType::PCMU, SeqNo(0), RtpTimestamp(0), Ssrc(1));
        let mut many = b();
        for i in 0..16 {
            many = many.csrc(Ssrc(i));
        }
        assert_eq!(many.build().unwrap_err(), BuildError::TooManyCsrcs(16));
        let bad = b().extension(HeaderExtension::OneByte(vec![ExtensionElement::new(
            15,
            Bytes::from_static(b"x"),
        )]));
        assert!(matches!(
            bad.build(),
            Err(BuildError::ExtensionId { id: 15, .. })
        ));
        let bad = b().extension(HeaderExtension::OneByte(vec![ExtensionElement::new(
            1,
            Bytes::new(),
        )]));
        assert!(matches!(
            bad.build(),
            Err(BuildError::ExtensionDataLength { .. })
        ));
        let bad = b().extension(HeaderExtension::Other {
            profile: 1,
            data: Bytes::from_static(b"abc"),
        });
        assert_eq!(bad.build().unwrap_err(), BuildError::ExtensionNotAligned(3));
    }

    #[test]
    fn payload_is_not_copied() {
        let wire = Bytes::from(vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3]);
        let p = RtpPacket::parse(wire.clone()).unwrap();
        assert_eq!(p.payload().as_ptr(), wire[12..].as_ptr());
    }

    #[test]
    fn wrapping_comparisons() {
        assert_eq!(SeqNo(2).wrapping_diff(SeqNo(65535)), 3);
        assert_eq!(SeqNo(65535).wrapping_diff(SeqNo(2)), -3);
        assert_eq!(RtpTimestamp(5).wrapping_diff(RtpTimestamp(u32::MAX)), 6);
        assert_eq!(PayloadType::new(128), None);
    }
}
