//! TFTP packets (RFC 1350) with option negotiation (RFC 2347: `blksize` RFC 2348,
//! `tsize` and `timeout` RFC 2349), sans I/O: [`Packet::parse`] reads one datagram,
//! [`Packet::encode`] writes one.
//!
//! Parsing takes untrusted bytes and never panics; every error is a [`TftpError`]
//! carrying the byte offset where the packet went wrong. Unknown options are ignored
//! (RFC 2347), known options with a value out of range are errors.
//!
//! ```
//! use pbxkit_provisioning::tftp::{Mode, Options, Packet, Request};
//! let bytes = b"\x00\x01SEP001122334455.cnf.xml\x00octet\x00blksize\x001428\x00tsize\x000\x00";
//! let Packet::Rrq(request) = Packet::parse(bytes)? else { panic!("not a read request") };
//! assert_eq!(request.filename, "SEP001122334455.cnf.xml");
//! assert_eq!(request.mode, Mode::Octet);
//! assert_eq!(request.options, Options { blksize: Some(1428), tsize: Some(0), timeout: None });
//! assert_eq!(Packet::Rrq(request).to_bytes()?, bytes);
//! # Ok::<(), pbxkit_provisioning::tftp::TftpError>(())
//! ```

use std::fmt;

/// The largest datagram [`Packet::parse`] accepts: a DATA packet of the largest block.
pub const MAX_PACKET: usize = 4 + MAX_BLKSIZE as usize;
/// The default block size (RFC 1350).
pub const DEFAULT_BLKSIZE: u16 = 512;
/// The smallest block size a client may ask for (RFC 2348).
pub const MIN_BLKSIZE: u16 = 8;
/// The largest block size a client may ask for (RFC 2348).
pub const MAX_BLKSIZE: u16 = 65464;
/// The longest option value accepted, in bytes (a `tsize` has at most 20 digits).
const MAX_VALUE_LEN: usize = 20;

/// Why a datagram is not a valid TFTP packet, or a packet cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TftpError {
    /// The datagram ends before the field that starts at `offset`.
    #[error("truncated packet at byte {offset}")]
    Truncated {
        /// Where the missing field starts.
        offset: usize,
    },
    /// The datagram is longer than [`MAX_PACKET`].
    #[error("packet of {len} bytes is too long")]
    TooLong {
        /// Its length.
        len: usize,
    },
    /// The opcode is not 1 to 6.
    #[error("unknown opcode {0}")]
    UnknownOpcode(u16),
    /// A string field starting at `offset` has no terminating NUL.
    #[error("string at byte {offset} is not NUL-terminated")]
    MissingNul {
        /// Where the string starts.
        offset: usize,
    },
    /// A string field starting at `offset` is not UTF-8.
    #[error("string at byte {offset} is not UTF-8")]
    NotUtf8 {
        /// Where the string starts.
        offset: usize,
    },
    /// The requested file name is empty.
    #[error("empty file name")]
    EmptyFilename,
    /// The transfer mode at `offset` is not `netascii`, `octet` or `mail`.
    #[error("unknown transfer mode at byte {offset}")]
    UnknownMode {
        /// Where the mode starts.
        offset: usize,
    },
    /// The value of option `name`, at `offset`, is not a number in its range.
    #[error("bad value for option {name} at byte {offset}")]
    BadOption {
        /// The option (lower case).
        name: &'static str,
        /// Where its value starts.
        offset: usize,
    },
    /// Option `name`, at `offset`, appears twice.
    #[error("option {name} repeated at byte {offset}")]
    DuplicateOption {
        /// The option (lower case).
        name: &'static str,
        /// Where the repetition starts.
        offset: usize,
    },
    /// Bytes follow the end of a fixed-size packet, from `offset`.
    #[error("trailing bytes at byte {offset}")]
    TrailingBytes {
        /// Where they start.
        offset: usize,
    },
    /// Encoding: a string field contains a NUL byte.
    #[error("string field contains a NUL byte")]
    NulInString,
    /// Encoding: a DATA block is longer than [`MAX_BLKSIZE`].
    #[error("data block of {len} bytes is too long")]
    DataTooLong {
        /// Its length.
        len: usize,
    },
    /// Encoding: an option value is out of its range.
    #[error("option {0} out of range")]
    OptionOutOfRange(&'static str),
}

/// A transfer mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Text with CR LF line ends.
    Netascii,
    /// Raw bytes.
    #[default]
    Octet,
    /// Obsolete mail mode.
    Mail,
}

impl Mode {
    /// The mode's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Netascii => "netascii",
            Self::Octet => "octet",
            Self::Mail => "mail",
        }
    }
}

/// The options of a request or of an OACK; `None` for an option not present.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Options {
    /// Block size in bytes, [`MIN_BLKSIZE`]..=[`MAX_BLKSIZE`] (RFC 2348).
    pub blksize: Option<u16>,
    /// Transfer size in bytes (RFC 2349): 0 in a read request, the file size in the OACK.
    pub tsize: Option<u64>,
    /// Retransmission timeout in seconds, 1..=255 (RFC 2349).
    pub timeout: Option<u8>,
}

impl Options {
    /// Whether no option is present.
    pub fn is_empty(&self) -> bool {
        self.blksize.is_none() && self.tsize.is_none() && self.timeout.is_none()
    }
}

/// A read or write request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Request {
    /// The file name, as sent (not checked as a path).
    pub filename: String,
    /// The transfer mode.
    pub mode: Mode,
    /// The options recognised (unknown ones are dropped).
    pub options: Options,
}

/// A TFTP error code (RFC 1350 §5, RFC 2347).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorCode(pub u16);

impl ErrorCode {
    /// 0: not defined, see the message.
    pub const NOT_DEFINED: Self = Self(0);
    /// 1: file not found.
    pub const FILE_NOT_FOUND: Self = Self(1);
    /// 2: access violation.
    pub const ACCESS_VIOLATION: Self = Self(2);
    /// 3: disk full or allocation exceeded.
    pub const DISK_FULL: Self = Self(3);
    /// 4: illegal TFTP operation.
    pub const ILLEGAL_OPERATION: Self = Self(4);
    /// 5: unknown transfer ID.
    pub const UNKNOWN_TID: Self = Self(5);
    /// 6: file already exists.
    pub const FILE_EXISTS: Self = Self(6);
    /// 7: no such user.
    pub const NO_SUCH_USER: Self = Self(7);
    /// 8: option negotiation refused (RFC 2347).
    pub const OPTION_REFUSED: Self = Self(8);
}

impl fmt::Debug for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ErrorCode({})", self.0)
    }
}

/// One TFTP packet; a DATA packet borrows its block from the datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet<'a> {
    /// Read request (opcode 1).
    Rrq(Request),
    /// Write request (opcode 2).
    Wrq(Request),
    /// A data block (opcode 3).
    Data {
        /// Block number, from 1.
        block: u16,
        /// At most the negotiated block size; shorter for the last block.
        data: &'a [u8],
    },
    /// Acknowledgement (opcode 4).
    Ack {
        /// The block acknowledged (0 acknowledges an OACK).
        block: u16,
    },
    /// Error (opcode 5).
    Error {
        /// The code.
        code: ErrorCode,
        /// The message (invalid UTF-8 replaced).
        message: String,
    },
    /// Option acknowledgement (opcode 6, RFC 2347).
    Oack(Options),
}

/// Reads bytes of a datagram, keeping track of the offset.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn u16(&mut self) -> Result<u16, TftpError> {
        let offset = self.pos;
        match self.bytes.get(offset..offset + 2) {
            Some(&[hi, lo]) => {
                self.pos += 2;
                Ok(u16::from_be_bytes([hi, lo]))
            }
            _ => Err(TftpError::Truncated { offset }),
        }
    }

    fn at_end(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    /// A NUL-terminated field: its bytes and its offset.
    fn cstr(&mut self) -> Result<(&'a [u8], usize), TftpError> {
        let offset = self.pos;
        let rest = self.bytes.get(offset..).unwrap_or_default();
        if rest.is_empty() {
            return Err(TftpError::Truncated { offset });
        }
        let nul = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(TftpError::MissingNul { offset })?;
        self.pos += nul + 1;
        Ok((rest.get(..nul).unwrap_or_default(), offset))
    }

    fn rest(&mut self) -> &'a [u8] {
        let rest = self.bytes.get(self.pos..).unwrap_or_default();
        self.pos = self.bytes.len();
        rest
    }

    fn end(&self) -> Result<(), TftpError> {
        if self.at_end() {
            Ok(())
        } else {
            Err(TftpError::TrailingBytes { offset: self.pos })
        }
    }
}

/// A decimal number of at most [`MAX_VALUE_LEN`] ASCII digits.
fn decimal(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > MAX_VALUE_LEN {
        return None;
    }
    value.iter().try_fold(0u64, |n, &b| {
        let digit = char::from(b).to_digit(10)?;
        n.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

/// Reads option name/value pairs up to the end of the datagram.
fn parse_options(r: &mut Reader<'_>) -> Result<Options, TftpError> {
    let mut options = Options::default();
    while !r.at_end() {
        let (name, name_offset) = r.cstr()?;
        let (value, offset) = r.cstr()?;
        let duplicate = |name| TftpError::DuplicateOption {
            name,
            offset: name_offset,
        };
        if name.eq_ignore_ascii_case(b"blksize") {
            let name = "blksize";
            let v = decimal(value)
                .and_then(|v| u16::try_from(v).ok())
                .filter(|v| (MIN_BLKSIZE..=MAX_BLKSIZE).contains(v))
                .ok_or(TftpError::BadOption { name, offset })?;
            if options.blksize.replace(v).is_some() {
                return Err(duplicate(name));
            }
        } else if name.eq_ignore_ascii_case(b"tsize") {
            let name = "tsize";
            let v = decimal(value).ok_or(TftpError::BadOption { name, offset })?;
            if options.tsize.replace(v).is_some() {
                return Err(duplicate(name));
            }
        } else if name.eq_ignore_ascii_case(b"timeout") {
            let name = "timeout";
            let v = decimal(value)
                .and_then(|v| u8::try_from(v).ok())
                .filter(|&v| v >= 1)
                .ok_or(TftpError::BadOption { name, offset })?;
            if options.timeout.replace(v).is_some() {
                return Err(duplicate(name));
            }
        }
        // Unknown options are ignored (RFC 2347).
    }
    Ok(options)
}

fn parse_request(r: &mut Reader<'_>) -> Result<Request, TftpError> {
    let (name, offset) = r.cstr()?;
    let filename = std::str::from_utf8(name)
        .map_err(|_| TftpError::NotUtf8 { offset })?
        .to_owned();
    if filename.is_empty() {
        return Err(TftpError::EmptyFilename);
    }
    let (mode, offset) = r.cstr()?;
    let mode = [Mode::Netascii, Mode::Octet, Mode::Mail]
        .into_iter()
        .find(|m| mode.eq_ignore_ascii_case(m.as_str().as_bytes()))
        .ok_or(TftpError::UnknownMode { offset })?;
    let options = parse_options(r)?;
    Ok(Request {
        filename,
        mode,
        options,
    })
}

impl<'a> Packet<'a> {
    /// Parses one datagram.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, TftpError> {
        if bytes.len() > MAX_PACKET {
            return Err(TftpError::TooLong { len: bytes.len() });
        }
        let mut r = Reader { bytes, pos: 0 };
        let packet = match r.u16()? {
            1 => Self::Rrq(parse_request(&mut r)?),
            2 => Self::Wrq(parse_request(&mut r)?),
            3 => {
                let block = r.u16()?;
                Self::Data {
                    block,
                    data: r.rest(),
                }
            }
            4 => {
                let block = r.u16()?;
                r.end()?;
                Self::Ack { block }
            }
            5 => {
                let code = ErrorCode(r.u16()?);
                // Some implementations omit the final NUL: the message is then the rest.
                let message = match r.cstr() {
                    Ok((m, _)) => m,
                    Err(TftpError::MissingNul { .. } | TftpError::Truncated { .. }) => r.rest(),
                    Err(e) => return Err(e),
                };
                let message = String::from_utf8_lossy(message).into_owned();
                // Padding after the message is tolerated.
                r.rest();
                Self::Error { code, message }
            }
            6 => Self::Oack(parse_options(&mut r)?),
            opcode => return Err(TftpError::UnknownOpcode(opcode)),
        };
        Ok(packet)
    }

    /// Appends the packet to `out`; on error `out` may hold part of it.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), TftpError> {
        fn cstr(out: &mut Vec<u8>, s: &str) -> Result<(), TftpError> {
            if s.as_bytes().contains(&0) {
                return Err(TftpError::NulInString);
            }
            out.extend_from_slice(s.as_bytes());
            out.push(0);
            Ok(())
        }
        fn options(out: &mut Vec<u8>, o: &Options) -> Result<(), TftpError> {
            if let Some(b) = o.blksize {
                if !(MIN_BLKSIZE..=MAX_BLKSIZE).contains(&b) {
                    return Err(TftpError::OptionOutOfRange("blksize"));
                }
                cstr(out, "blksize")?;
                cstr(out, &b.to_string())?;
            }
            if let Some(t) = o.tsize {
                cstr(out, "tsize")?;
                cstr(out, &t.to_string())?;
            }
            if let Some(t) = o.timeout {
                if t == 0 {
                    return Err(TftpError::OptionOutOfRange("timeout"));
                }
                cstr(out, "timeout")?;
                cstr(out, &t.to_string())?;
            }
            Ok(())
        }
        fn request(out: &mut Vec<u8>, opcode: u16, r: &Request) -> Result<(), TftpError> {
            if r.filename.is_empty() {
                return Err(TftpError::EmptyFilename);
            }
            out.extend_from_slice(&opcode.to_be_bytes());
            cstr(out, &r.filename)?;
            cstr(out, r.mode.as_str())?;
            options(out, &r.options)
        }
        match self {
            Self::Rrq(r) => request(out, 1, r),
            Self::Wrq(r) => request(out, 2, r),
            Self::Data { block, data } => {
                if data.len() > usize::from(MAX_BLKSIZE) {
                    return Err(TftpError::DataTooLong { len: data.len() });
                }
                out.extend_from_slice(&3u16.to_be_bytes());
                out.extend_from_slice(&block.to_be_bytes());
                out.extend_from_slice(data);
                Ok(())
            }
            Self::Ack { block } => {
                out.extend_from_slice(&4u16.to_be_bytes());
                out.extend_from_slice(&block.to_be_bytes());
                Ok(())
            }
            Self::Error { code, message } => {
                out.extend_from_slice(&5u16.to_be_bytes());
                out.extend_from_slice(&code.0.to_be_bytes());
                cstr(out, message)
            }
            Self::Oack(o) => {
                out.extend_from_slice(&6u16.to_be_bytes());
                options(out, o)
            }
        }
    }

    /// The packet as a new datagram.
    pub fn to_bytes(&self) -> Result<Vec<u8>, TftpError> {
        let mut out = Vec::new();
        self.encode(&mut out)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rrq(bytes: &[u8]) -> Result<Request, TftpError> {
        match Packet::parse(bytes)? {
            Packet::Rrq(r) => Ok(r),
            other => panic!("not an RRQ: {other:?}"),
        }
    }

    #[test]
    fn read_request_with_options() {
        let r = rrq(b"\0\x01a.cfg\0OCTET\0BLKSIZE\x001428\0tsize\x000\0timeout\x005\0").unwrap();
        assert_eq!(r.filename, "a.cfg");
        assert_eq!(r.mode, Mode::Octet);
        assert_eq!(
            r.options,
            Options {
                blksize: Some(1428),
                tsize: Some(0),
                timeout: Some(5)
            }
        );
    }

    #[test]
    fn unknown_options_are_ignored() {
        let r = rrq(b"\0\x01a\0netascii\0windowsize\x004\0blksize\x00512\0").unwrap();
        assert_eq!(r.mode, Mode::Netascii);
        assert_eq!(r.options.blksize, Some(512));
    }

    #[test]
    fn option_ranges() {
        assert!(rrq(b"\0\x01a\0octet\0blksize\x008\0").is_ok());
        assert!(rrq(b"\0\x01a\0octet\0blksize\x0065464\0").is_ok());
        assert_eq!(
            rrq(b"\0\x01a\0octet\0blksize\x007\0"),
            Err(TftpError::BadOption {
                name: "blksize",
                offset: 18
            })
        );
        assert!(rrq(b"\0\x01a\0octet\0blksize\x0065465\0").is_err());
        assert!(rrq(b"\0\x01a\0octet\0blksize\x00-1\0").is_err());
        assert!(rrq(b"\0\x01a\0octet\0timeout\x000\0").is_err());
        assert!(rrq(b"\0\x01a\0octet\0timeout\x00255\0").is_ok());
        assert!(rrq(b"\0\x01a\0octet\0timeout\x00256\0").is_err());
        assert!(rrq(b"\0\x01a\0octet\0tsize\x00123456789012345678901\0").is_err());
        assert_eq!(
            rrq(b"\0\x01a\0octet\0tsize\x000\0TSIZE\x000\0"),
            Err(TftpError::DuplicateOption {
                name: "tsize",
                offset: 18
            })
        );
    }

    #[test]
    fn malformed_requests_have_offsets() {
        assert_eq!(Packet::parse(b""), Err(TftpError::Truncated { offset: 0 }));
        assert_eq!(
            Packet::parse(b"\0"),
            Err(TftpError::Truncated { offset: 0 })
        );
        assert_eq!(Packet::parse(b"\0\x09"), Err(TftpError::UnknownOpcode(9)));
        assert_eq!(
            Packet::parse(b"\0\x01a.cfg"),
            Err(TftpError::MissingNul { offset: 2 })
        );
        assert_eq!(
            Packet::parse(b"\0\x01a.cfg\0"),
            Err(TftpError::Truncated { offset: 8 })
        );
        assert_eq!(
            Packet::parse(b"\0\x01a\0binary\0"),
            Err(TftpError::UnknownMode { offset: 4 })
        );
        assert_eq!(
            Packet::parse(b"\0\x01\xff\0octet\0"),
            Err(TftpError::NotUtf8 { offset: 2 })
        );
        assert_eq!(
            Packet::parse(b"\0\x01\0octet\0"),
            Err(TftpError::EmptyFilename)
        );
        assert_eq!(
            Packet::parse(b"\0\x01a\0octet\0blksize\0"),
            Err(TftpError::Truncated { offset: 18 })
        );
        assert_eq!(
            Packet::parse(b"\0\x04\0\x01\0"),
            Err(TftpError::TrailingBytes { offset: 4 })
        );
        assert_eq!(
            Packet::parse(b"\0\x04\0"),
            Err(TftpError::Truncated { offset: 2 })
        );
        let long = vec![0u8; MAX_PACKET + 1];
        assert_eq!(
            Packet::parse(&long),
            Err(TftpError::TooLong {
                len: MAX_PACKET + 1
            })
        );
    }

    #[test]
    fn write_request_data_ack_error_oack() {
        assert!(matches!(
            Packet::parse(b"\0\x02x\0octet\0"),
            Ok(Packet::Wrq(Request { .. }))
        ));
        assert_eq!(
            Packet::parse(b"\0\x03\0\x07abc"),
            Ok(Packet::Data {
                block: 7,
                data: b"abc"
            })
        );
        assert_eq!(
            Packet::parse(b"\0\x03\0\x07"),
            Ok(Packet::Data {
                block: 7,
                data: b""
            })
        );
        assert_eq!(
            Packet::parse(b"\0\x04\xff\xff"),
            Ok(Packet::Ack { block: 65535 })
        );
        assert_eq!(
            Packet::parse(b"\0\x05\0\x01File not found\0"),
            Ok(Packet::Error {
                code: ErrorCode::FILE_NOT_FOUND,
                message: "File not found".into()
            })
        );
        // No final NUL, or nothing at all after the code.
        assert_eq!(
            Packet::parse(b"\0\x05\0\x02denied"),
            Ok(Packet::Error {
                code: ErrorCode::ACCESS_VIOLATION,
                message: "denied".into()
            })
        );
        // Invalid UTF-8 is replaced, and the replacement encodes and parses back.
        let lossy = Packet::parse(b"\0\x05\0\x00a\xffb\0").unwrap();
        assert_eq!(
            lossy,
            Packet::Error {
                code: ErrorCode::NOT_DEFINED,
                message: "a\u{FFFD}b".into()
            }
        );
        assert_eq!(Packet::parse(&lossy.to_bytes().unwrap()), Ok(lossy));
        assert_eq!(
            Packet::parse(b"\0\x05\0\x00"),
            Ok(Packet::Error {
                code: ErrorCode::NOT_DEFINED,
                message: String::new()
            })
        );
        assert_eq!(
            Packet::parse(b"\0\x06blksize\x001428\0tsize\x00100000\0"),
            Ok(Packet::Oack(Options {
                blksize: Some(1428),
                tsize: Some(100_000),
                timeout: None
            }))
        );
    }

    #[test]
    fn encoding_rejects_what_cannot_be_parsed_back() {
        let nul = Packet::Error {
            code: ErrorCode(0),
            message: "a\0b".into(),
        };
        assert_eq!(nul.to_bytes(), Err(TftpError::NulInString));
        let big = vec![0; usize::from(MAX_BLKSIZE) + 1];
        assert!(
            Packet::Data {
                block: 1,
                data: &big
            }
            .to_bytes()
            .is_err()
        );
        let o = Options {
            blksize: Some(4),
            ..Options::default()
        };
        assert_eq!(
            Packet::Oack(o).to_bytes(),
            Err(TftpError::OptionOutOfRange("blksize"))
        );
        assert_eq!(
            Packet::Rrq(Request::default()).to_bytes(),
            Err(TftpError::EmptyFilename)
        );
    }

    fn options() -> impl Strategy<Value = Options> {
        (
            proptest::option::of(MIN_BLKSIZE..=MAX_BLKSIZE),
            proptest::option::of(any::<u64>()),
            proptest::option::of(1u8..=255),
        )
            .prop_map(|(blksize, tsize, timeout)| Options {
                blksize,
                tsize,
                timeout,
            })
    }

    fn request() -> impl Strategy<Value = Request> {
        (
            "[^\0]{1,40}",
            prop_oneof![Just(Mode::Netascii), Just(Mode::Octet), Just(Mode::Mail)],
            options(),
        )
            .prop_map(|(filename, mode, options)| Request {
                filename,
                mode,
                options,
            })
    }

    /// An owned packet description, since [`Packet::Data`] borrows.
    #[derive(Debug, Clone)]
    enum Owned {
        Rrq(Request),
        Wrq(Request),
        Data(u16, Vec<u8>),
        Ack(u16),
        Error(u16, String),
        Oack(Options),
    }

    fn owned() -> impl Strategy<Value = Owned> {
        prop_oneof![
            request().prop_map(Owned::Rrq),
            request().prop_map(Owned::Wrq),
            (
                any::<u16>(),
                proptest::collection::vec(any::<u8>(), 0..1500)
            )
                .prop_map(|(b, d)| Owned::Data(b, d)),
            any::<u16>().prop_map(Owned::Ack),
            (any::<u16>(), "[^\0]{0,40}").prop_map(|(c, m)| Owned::Error(c, m)),
            options().prop_map(Owned::Oack),
        ]
    }

    fn packet(o: &Owned) -> Packet<'_> {
        match o {
            Owned::Rrq(r) => Packet::Rrq(r.clone()),
            Owned::Wrq(r) => Packet::Wrq(r.clone()),
            Owned::Data(block, data) => Packet::Data {
                block: *block,
                data,
            },
            Owned::Ack(block) => Packet::Ack { block: *block },
            Owned::Error(code, message) => Packet::Error {
                code: ErrorCode(*code),
                message: message.clone(),
            },
            Owned::Oack(options) => Packet::Oack(*options),
        }
    }

    proptest! {
        #[test]
        fn round_trip(o in owned()) {
            let packet = packet(&o);
            let bytes = packet.to_bytes().unwrap();
            prop_assert_eq!(Packet::parse(&bytes), Ok(packet));
        }

        /// Valid packets with one byte changed, or cut short, through the fuzz target.
        #[test]
        fn fuzz_target_on_mutated_packets(
            o in owned(),
            at in any::<usize>(),
            byte in any::<u8>(),
            cut in any::<bool>(),
        ) {
            let mut bytes = packet(&o).to_bytes().unwrap();
            let i = at % bytes.len();
            if cut {
                bytes.truncate(i);
            } else if let Some(b) = bytes.get_mut(i) {
                *b = byte;
            }
            crate::fuzzing::provisioning_tftp_packet(&bytes);
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(p) = Packet::parse(&bytes) {
                // Whatever parses re-encodes (unknown options and padding dropped).
                prop_assert!(p.to_bytes().is_ok());
            }
        }
    }
}
