//! Parse errors: what was wrong, in which part of the message, and where.
//!
//! ```
//! use pbxkit_sip::{ErrorKind, HeaderName, Message, Part};
//!
//! let bad = "OPTIONS sip:pbx.example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKe1\r\n\
//!     From: <sip:a@example.com>;tag=a1\r\nTo: <sip:pbx.example.com>\r\n\
//!     Call-ID: e-1@192.0.2.1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
//! let error = Message::parse(bad).expect_err("CSeq names another method");
//! assert_eq!(error.kind, ErrorKind::CSeqMismatch);
//! assert_eq!(error.part, Part::Header(HeaderName::CSeq));
//! // The offset points into the input, for logs and tools.
//! assert!(bad[error.offset..].starts_with("1 INVITE\r\n"));
//! // What a server answers with.
//! assert_eq!(error.status_code(), 400);
//! assert!(error.reason_phrase().starts_with("Bad Request (CSeq: "));
//! assert_eq!(error.kind.as_str(), "cseq-mismatch");
//! ```

use crate::name::HeaderName;
use std::fmt;

/// The category of a parse error, which is what a server needs to choose its answer
/// (400, 413, 505...) and what `sipcheck` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The input ends before the message does (stream framing: wait for more bytes).
    Incomplete,
    /// A configured size limit was exceeded (answer 413 or 513, or drop).
    TooLarge,
    /// The request line or status line is malformed.
    StartLine,
    /// The protocol version is not `SIP/2.0` (answer 505).
    Version,
    /// A header line has no colon or an invalid header name.
    HeaderLine,
    /// A header value does not follow its grammar.
    InvalidHeader,
    /// A header the message cannot do without is absent.
    MissingHeader,
    /// A header that must appear once appears several times with different values.
    DuplicateHeader,
    /// The CSeq method differs from the request method.
    CSeqMismatch,
    /// Content-Length is malformed or announces more bytes than the message has.
    ContentLength,
    /// Text that must be UTF-8 is not.
    Utf8,
}

impl ErrorKind {
    /// A short stable name, e.g. `invalid-header`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Incomplete => "incomplete",
            ErrorKind::TooLarge => "too-large",
            ErrorKind::StartLine => "start-line",
            ErrorKind::Version => "version",
            ErrorKind::HeaderLine => "header-line",
            ErrorKind::InvalidHeader => "invalid-header",
            ErrorKind::MissingHeader => "missing-header",
            ErrorKind::DuplicateHeader => "duplicate-header",
            ErrorKind::CSeqMismatch => "cseq-mismatch",
            ErrorKind::ContentLength => "content-length",
            ErrorKind::Utf8 => "utf8",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where in the message an error was found.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Part {
    /// The request line or status line.
    StartLine,
    /// A header, by name.
    Header(HeaderName),
    /// The body.
    Body,
    /// A URI given on its own (not inside a message).
    Uri,
    /// An SDP session description.
    Sdp,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Part::StartLine => f.write_str("start line"),
            Part::Header(name) => f.write_str(name.as_str()),
            Part::Body => f.write_str("body"),
            Part::Uri => f.write_str("URI"),
            Part::Sdp => f.write_str("SDP"),
        }
    }
}

/// A parse error: what (`kind` and `element`), in which part, and the byte offset
/// from the start of the parsed input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{part}: {element} at byte {offset}")]
pub struct ParseError {
    /// The category, for choosing a response.
    pub kind: ErrorKind,
    /// The part of the message (start line, which header, body).
    pub part: Part,
    /// The grammar element that was wrong, e.g. `"sent-protocol"`.
    pub element: &'static str,
    /// Byte offset of the fault from the start of the input.
    pub offset: usize,
}

impl ParseError {
    pub(crate) fn new(kind: ErrorKind, part: Part, element: &'static str, offset: usize) -> Self {
        ParseError {
            kind,
            part,
            element,
            offset,
        }
    }

    /// A reason phrase for a 400 answer that names the fault, e.g.
    /// `Bad Request (Via: bad sent-protocol)`. It never contains CR or LF.
    pub fn reason_phrase(&self) -> String {
        let head = match self.kind {
            ErrorKind::Version => "Version Not Supported",
            ErrorKind::TooLarge => "Message Too Large",
            _ => "Bad Request",
        };
        let text = format!("{head} ({}: {})", self.part, self.element);
        text.chars().filter(|c| !c.is_control()).collect()
    }

    /// The status code a server answers a request with this error: 400, 505 or 513.
    pub fn status_code(&self) -> u16 {
        match self.kind {
            ErrorKind::Version => 505,
            ErrorKind::TooLarge => 513,
            _ => 400,
        }
    }
}

/// An error in one header value, with the offset inside that value; the message layer
/// turns it into a [`ParseError`] naming the header and the absolute offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{element} at byte {offset} of the value")]
pub struct ValueError {
    /// The grammar element that was wrong.
    pub element: &'static str,
    /// Offset from the start of the value.
    pub offset: usize,
}

impl ValueError {
    /// An error about `element` at `offset` in the value.
    pub fn new(element: &'static str, offset: usize) -> Self {
        ValueError { element, offset }
    }

    pub(crate) fn into_parse(self, kind: ErrorKind, part: Part, base: usize) -> ParseError {
        ParseError::new(kind, part, self.element, base.saturating_add(self.offset))
    }
}
