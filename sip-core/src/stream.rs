//! Framing SIP messages out of a byte stream (TCP, TLS): by Content-Length, with
//! CRLF keep-alives (RFC 5626 §3.5.1) and bounded header and body sizes.
//!
//! Bytes come as the network cuts them: a message may arrive in pieces, and several
//! may come in one read.
//!
//! ```
//! use pbxkit_sip::{ErrorKind, Frame, StreamDecoder, StreamLimits};
//!
//! let options = "OPTIONS sip:pbx.example.com SIP/2.0\r\n\
//!     Via: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bKs1\r\n\
//!     From: <sip:alice@atlanta.example.com>;tag=a1\r\nTo: <sip:pbx.example.com>\r\n\
//!     Call-ID: s-1@192.0.2.1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 4\r\n\r\nping";
//! let mut decoder = StreamDecoder::new(StreamLimits::default());
//!
//! // The first read ends inside the body: nothing yet.
//! let (start, rest) = options.split_at(options.len() - 2);
//! decoder.extend(start.as_bytes());
//! assert_eq!(decoder.next_frame()?, None);
//!
//! // The second brings the end of it and a keep-alive ping (CRLF CRLF).
//! decoder.extend(format!("{rest}\r\n\r\n").as_bytes());
//! let Some(Frame::Message(message)) = decoder.next_frame()? else { panic!("a message") };
//! assert_eq!(&message.body[..], b"ping");
//! assert_eq!(decoder.next_frame()?, Some(Frame::Ping)); // answer with one CRLF
//! assert_eq!((decoder.next_frame()?, decoder.buffered()), (None, 0));
//!
//! // A header section past the limit is an error: close the connection.
//! let mut small = StreamDecoder::new(StreamLimits { max_header_bytes: 64, max_body_bytes: 0 });
//! small.extend(options.as_bytes());
//! assert_eq!(small.next_frame().map_err(|e| e.kind), Err(ErrorKind::TooLarge));
//! # Ok::<(), pbxkit_sip::ParseError>(())
//! ```

use crate::error::{ErrorKind, ParseError, Part};
use crate::message::{Message, header_section_end, skip_leading_crlf};
use bytes::{Buf, BytesMut};

/// Size limits for one message on a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLimits {
    /// Largest header section (start line and headers), in bytes.
    pub max_header_bytes: usize,
    /// Largest body, in bytes.
    pub max_body_bytes: usize,
}

impl Default for StreamLimits {
    fn default() -> Self {
        StreamLimits {
            max_header_bytes: 16 * 1024,
            max_body_bytes: 64 * 1024,
        }
    }
}

/// What the decoder found next in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
#[expect(
    clippy::large_enum_variant,
    reason = "keep-alives are rare; boxing every message would cost an allocation each"
)]
pub enum Frame {
    /// A complete message.
    Message(Message),
    /// A keep-alive ping (`CRLF CRLF`): answer it with one CRLF.
    Ping,
    /// A keep-alive pong (a single CRLF).
    Pong,
}

/// A pull decoder: feed bytes with [`StreamDecoder::extend`], take frames with
/// [`StreamDecoder::next_frame`] until it returns `Ok(None)`.
///
/// After an error the stream is out of sync (a message boundary cannot be trusted);
/// the connection should be closed.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    buf: BytesMut,
    limits: StreamLimits,
}

impl StreamDecoder {
    /// A decoder with the given limits.
    pub fn new(limits: StreamLimits) -> StreamDecoder {
        StreamDecoder {
            buf: BytesMut::new(),
            limits,
        }
    }

    /// Appends received bytes.
    pub fn extend(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Bytes received but not yet framed.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next frame, `Ok(None)` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, ParseError> {
        let crlf = skip_leading_crlf(&self.buf);
        if crlf > 0 {
            let rest = &self.buf[crlf..];
            if rest.is_empty() {
                // Only line breaks so far: a ping is CRLF CRLF, a pong a single CRLF.
                if self.buf.starts_with(b"\r\n\r\n") {
                    self.buf.advance(4);
                    return Ok(Some(Frame::Ping));
                }
                if self.buf[..] == b"\r\n"[..] {
                    self.buf.advance(2);
                    return Ok(Some(Frame::Pong));
                }
                return Ok(None);
            }
            // Line breaks before a message are skipped (RFC 3261 §7.5).
            self.buf.advance(crlf);
        }
        if self.buf.is_empty() {
            return Ok(None);
        }
        let Some(head_end) = header_section_end(&self.buf, 0) else {
            if self.buf.len() > self.limits.max_header_bytes {
                return Err(ParseError::new(
                    ErrorKind::TooLarge,
                    Part::StartLine,
                    "header section size",
                    self.limits.max_header_bytes,
                ));
            }
            return Ok(None);
        };
        if head_end > self.limits.max_header_bytes {
            return Err(ParseError::new(
                ErrorKind::TooLarge,
                Part::StartLine,
                "header section size",
                self.limits.max_header_bytes,
            ));
        }
        let length = content_length(&self.buf[..head_end])?;
        if length > self.limits.max_body_bytes {
            return Err(ParseError::new(
                ErrorKind::TooLarge,
                Part::Body,
                "body size",
                head_end,
            ));
        }
        let total = head_end + length;
        if self.buf.len() < total {
            return Ok(None);
        }
        let frame = self.buf.split_to(total).freeze();
        Message::parse_head_and_body(&frame, true).map(|(m, _)| Some(Frame::Message(m)))
    }
}

/// Finds the Content-Length in a header section without parsing the rest.
fn content_length(head: &[u8]) -> Result<usize, ParseError> {
    let mut found = None;
    for (offset, line) in lines(head) {
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        let name = line[..colon].trim_ascii_end();
        if name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l") {
            let value = std::str::from_utf8(line[colon + 1..].trim_ascii()).unwrap_or("");
            let n = crate::scan::parse_decimal(value, u64::from(u32::MAX))
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| {
                    ParseError::new(
                        ErrorKind::ContentLength,
                        Part::Header(crate::HeaderName::ContentLength),
                        "decimal length",
                        offset + colon + 1,
                    )
                })?;
            if found.is_some_and(|f| f != n) {
                return Err(ParseError::new(
                    ErrorKind::DuplicateHeader,
                    Part::Header(crate::HeaderName::ContentLength),
                    "second Content-Length",
                    offset,
                ));
            }
            found = Some(n);
        }
    }
    found.ok_or_else(|| {
        ParseError::new(
            ErrorKind::MissingHeader,
            Part::Header(crate::HeaderName::ContentLength),
            "Content-Length on a stream",
            head.len(),
        )
    })
}

/// Lines of a header section with their offsets (continuation lines are separate
/// lines here, which is harmless: a Content-Length value is never folded in practice,
/// and the full parse that follows checks the message properly).
fn lines(head: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        if pos >= head.len() {
            return None;
        }
        let rest = &head[pos..];
        let nl = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
        let line = &rest[..nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let at = pos;
        pos += nl + 1;
        Some((at, line))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTIONS: &[u8] = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 5\r\n\r\nhello";

    #[test]
    fn frames_split_anywhere() {
        let mut stream = Vec::new();
        stream.extend_from_slice(b"\r\n\r\n");
        stream.extend_from_slice(OPTIONS);
        stream.extend_from_slice(OPTIONS);
        for cut in 0..stream.len() {
            let mut d = StreamDecoder::default();
            let mut frames = Vec::new();
            for chunk in [&stream[..cut], &stream[cut..]] {
                d.extend(chunk);
                while let Some(f) = d.next_frame().unwrap() {
                    frames.push(f);
                }
            }
            let messages = frames
                .iter()
                .filter(|f| matches!(f, Frame::Message(m) if &m.body[..] == b"hello"))
                .count();
            assert_eq!(messages, 2, "cut at {cut}: {frames:?}");
            assert_eq!(d.buffered(), 0);
        }
    }

    #[test]
    fn ping_and_pong() {
        let mut d = StreamDecoder::default();
        d.extend(b"\r\n\r\n");
        assert_eq!(d.next_frame().unwrap(), Some(Frame::Ping));
        d.extend(b"\r\n");
        assert_eq!(d.next_frame().unwrap(), Some(Frame::Pong));
        assert_eq!(d.next_frame().unwrap(), None);
    }

    #[test]
    fn limits_and_missing_length() {
        let mut d = StreamDecoder::new(StreamLimits {
            max_header_bytes: 64,
            max_body_bytes: 4,
        });
        d.extend(&[b'A'; 100]);
        assert_eq!(d.next_frame().unwrap_err().kind, ErrorKind::TooLarge);

        let mut d = StreamDecoder::new(StreamLimits {
            max_header_bytes: 1024,
            max_body_bytes: 4,
        });
        d.extend(OPTIONS);
        assert_eq!(d.next_frame().unwrap_err().kind, ErrorKind::TooLarge);

        let mut d = StreamDecoder::default();
        d.extend(b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\n\r\n");
        assert_eq!(d.next_frame().unwrap_err().kind, ErrorKind::MissingHeader);
    }
}
