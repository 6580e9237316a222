//! SIP messages: parsing from received bytes, typed access, building and serialising.
//!
//! Building a request in code: headers in the order pushed, and Content-Length
//! written from the body's real length when serialised (appended when absent):
//!
//! ```
//! use pbxkit_sip::{HeaderName, Message, Method, StartLine, Uri};
//!
//! let mut message = Message::request(Method::Message, Uri::parse("sip:bob@biloxi.example.com")?);
//! let h = message.headers_mut();
//! h.push(HeaderName::Via, "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKm1");
//! h.push(HeaderName::MaxForwards, "70");
//! h.push(HeaderName::From, "<sip:alice@atlanta.example.com>;tag=a1");
//! h.push(HeaderName::To, "<sip:bob@biloxi.example.com>");
//! h.push(HeaderName::CallId, "msg-1@192.0.2.1");
//! h.push(HeaderName::CSeq, "1 MESSAGE");
//! h.push(HeaderName::ContentType, "text/plain");
//! message.body = "Hello, Bob".into();
//!
//! let wire = message.to_bytes();
//! assert!(wire.starts_with(b"MESSAGE sip:bob@biloxi.example.com SIP/2.0\r\n"));
//! assert!(wire.ends_with(b"Content-Length: 10\r\n\r\nHello, Bob"));
//!
//! // The other side reads it back, Content-Length included, and writes it the same.
//! let received = Message::parse(wire.clone())?;
//! assert_eq!(received.headers().get(&HeaderName::ContentLength), Some("10"));
//! assert_eq!(received.to_bytes(), wire);
//! assert!(matches!(&received.start, StartLine::Request { method: Method::Message, .. }));
//! assert_eq!(received.headers().get(&HeaderName::ContentType), Some("text/plain"));
//! assert_eq!(&received.body[..], b"Hello, Bob");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A request that fails to parse still gets its answer when it can be routed
//! ([`Message::error_response`]):
//!
//! ```
//! use pbxkit_sip::{ErrorKind, HeaderName, Message, Part, StatusCode};
//!
//! let bad = b"OPTIONS sip:pbx.example.com SIP/2.0\r\n\
//!     Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKo1\r\n\
//!     From: <sip:alice@atlanta.example.com>;tag=a1\r\nTo: <sip:pbx.example.com>\r\n\
//!     Call-ID: o-1@192.0.2.1\r\nCSeq: one OPTIONS\r\nContent-Length: 0\r\n\r\n";
//! let error = Message::parse(&bad[..]).expect_err("CSeq is not a number");
//! assert_eq!((error.kind, &error.part), (ErrorKind::InvalidHeader, &Part::Header(HeaderName::CSeq)));
//!
//! let answer = Message::error_response(bad, &error).ok_or("an answer")?;
//! assert_eq!(answer.status(), Some(StatusCode::BAD_REQUEST));
//! assert_eq!(answer.top_via()?.branch(), Some("z9hG4bKo1"));
//! assert!(answer.to_bytes().starts_with(b"SIP/2.0 400 Bad Request (CSeq: "));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::bytestr::{Build, ByteStr};
use crate::error::{ErrorKind, ParseError, Part};
use crate::headers::{HeaderRef, HeaderValue, Headers};
use crate::method::{Method, StatusCode};
use crate::name::HeaderName;
use crate::nameaddr::{Contact, NameAddr};
use crate::scan::{is_token, sub};
use crate::uri::Uri;
use crate::values::{CSeq, CallId};
use crate::via::Via;
use bytes::{BufMut, Bytes, BytesMut};
use memchr::memmem::Finder;
use std::fmt;
use std::sync::{LazyLock, OnceLock};

/// At most this many header lines are accepted in one message: a bound on the work and
/// memory a peer can cause with a datagram of tiny headers.
pub const MAX_HEADERS: usize = 512;

/// The first line of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartLine {
    /// `METHOD Request-URI SIP/2.0`.
    Request {
        /// The method.
        method: Method,
        /// The Request-URI.
        uri: Uri,
    },
    /// `SIP/2.0 code reason`.
    Response {
        /// The status code.
        code: StatusCode,
        /// The reason phrase, as received.
        reason: ByteStr,
    },
}

/// A SIP request or response.
///
/// A parsed message keeps the bytes it was received in: header values and typed
/// values taken from them are slices of that buffer.
#[derive(Debug, Clone)]
pub struct Message {
    /// The request or status line.
    pub start: StartLine,
    /// The headers, in order (read with [`Message::headers`], change with
    /// [`Message::headers_mut`] so that the typed values cached below stay true).
    headers: Headers,
    /// The body (exactly Content-Length bytes for a parsed message).
    pub body: Bytes,
    /// The typed essential headers, built on first access. Boxed: they are large, and
    /// messages are moved around a lot.
    cache: OnceLock<Box<Cache>>,
}

/// The typed values of the headers every transaction reads. Parsing a message only
/// checks them (without allocating); the first access builds all five at once, since
/// whoever reads one (a transaction, a dialog) reads the others too.
#[derive(Debug, Clone)]
struct Cache {
    via: Result<Via, ParseError>,
    from: Result<NameAddr, ParseError>,
    to: Result<NameAddr, ParseError>,
    call_id: Result<CallId, ParseError>,
    cseq: Result<CSeq, ParseError>,
}

impl PartialEq for Message {
    /// Messages are equal when their start lines, headers and bodies are.
    fn eq(&self, other: &Message) -> bool {
        self.start == other.start && self.headers == other.headers && self.body == other.body
    }
}

impl Eq for Message {}

fn cached<T>(value: &Result<T, ParseError>) -> Result<&T, ParseError> {
    value.as_ref().map_err(Clone::clone)
}

fn err(kind: ErrorKind, part: Part, element: &'static str, offset: usize) -> ParseError {
    ParseError::new(kind, part, element, offset)
}

// Searchers for the end of a line followed by a blank line, built once: building one
// costs as much as a search.
static BLANK_CRLF: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\n\r\n"));
static BLANK_LF: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\n\n"));

/// Offset just past the blank line that ends the header section of the message starting
/// at `start` (after any leading CRLFs), or `None` if the section is not complete.
pub(crate) fn header_section_end(buf: &[u8], start: usize) -> Option<usize> {
    let rest = buf.get(start..)?;
    // The blank line is a line feed followed by CRLF or by another line feed. Messages
    // end lines with CRLF: one vectorised search finds the first "\n\r\n" (instead of
    // stopping at every line), then a second one looks for a bare "\n\n" before it.
    let crlf = BLANK_CRLF.find(rest);
    let before = rest.get(..crlf.map_or(rest.len(), |at| at + 1))?;
    match BLANK_LF.find(before) {
        Some(lf) => Some(start + lf + 2),
        None => crlf.map(|at| start + at + 3),
    }
}

/// Skips the CRLFs that may precede a start line (RFC 3261 §7.5).
pub(crate) fn skip_leading_crlf(buf: &[u8]) -> usize {
    buf.iter()
        .take_while(|b| matches!(b, b'\r' | b'\n'))
        .count()
}

impl Message {
    /// Parses one message from a datagram (or a frame cut by [`crate::StreamDecoder`]).
    ///
    /// The body is Content-Length bytes; octets after it are ignored (RFC 3261 §18.3).
    /// Without Content-Length the body is the rest of the input (allowed on UDP).
    /// Essential headers are checked: Via, From, To, Call-ID, CSeq (and its method
    /// against the request's) and Content-Length, so that a message that parses can be
    /// handled; other headers are parsed only when asked for.
    pub fn parse(input: impl Into<Bytes>) -> Result<Message, ParseError> {
        let buf: Bytes = input.into();
        let (message, _) = Self::parse_head_and_body(&buf, false)?;
        Ok(message)
    }

    /// Parses; `stream` requires Content-Length. Returns the message and its end offset.
    pub(crate) fn parse_head_and_body(
        buf: &Bytes,
        stream: bool,
    ) -> Result<(Message, usize), ParseError> {
        let start = skip_leading_crlf(buf);
        // Messages end their lines with CRLF: one search finds the blank line, and the
        // header lines are parsed up to it. A bare-LF blank line before it (rare) stops
        // that parse early, and may have caused an error (in what is in fact the body):
        // then the message is parsed again up to the exact end of its header section.
        if let Some(at) = buf.get(start..).and_then(|rest| BLANK_CRLF.find(rest)) {
            let end = start + at + 3;
            match Self::parse_until(buf, start, end, stream) {
                Ok(Some(parsed)) => return Ok(parsed),
                // The same parse as the one below: no need to do it again.
                Err(e) if header_section_end(buf, start) == Some(end) => return Err(e),
                _ => {}
            }
        }
        let Some(header_end) = header_section_end(buf, start) else {
            return Err(err(
                ErrorKind::Incomplete,
                Part::Body,
                "blank line after headers",
                buf.len(),
            ));
        };
        // `header_end` follows the first blank line: the parse does not stop before it.
        Self::parse_until(buf, start, header_end, stream)?.ok_or_else(|| {
            err(
                ErrorKind::Incomplete,
                Part::Body,
                "blank line after headers",
                header_end,
            )
        })
    }

    /// Parses a message whose header section is `buf[start..header_end]` (ending with
    /// a blank line); `None` when a blank line comes before its end.
    fn parse_until(
        buf: &Bytes,
        start: usize,
        header_end: usize,
        stream: bool,
    ) -> Result<Option<(Message, usize)>, ParseError> {
        // The header section is text: validate it once, then work on &str slices of one
        // shared copy (no per-value validation, no per-value reference count).
        let head_bytes = buf.get(start..header_end).unwrap_or_default();
        let text = std::str::from_utf8(head_bytes).map_err(|e| {
            err(
                ErrorKind::Utf8,
                Part::StartLine,
                "UTF-8 header section",
                start + e.valid_up_to(),
            )
        })?;
        let (message, essentials, content_length, stop) =
            parse_head(ByteStr::from(text), text, start)?;
        if stop != text.len() {
            return Ok(None);
        }
        let available = buf.len() - header_end;
        let body_len = match content_length {
            Some((n, at)) if n > available => {
                return Err(err(
                    if stream {
                        ErrorKind::Incomplete
                    } else {
                        ErrorKind::ContentLength
                    },
                    Part::Header(HeaderName::ContentLength),
                    "length beyond end of message",
                    at,
                ));
            }
            Some((n, _)) => n,
            None if stream => {
                return Err(err(
                    ErrorKind::MissingHeader,
                    Part::Header(HeaderName::ContentLength),
                    "Content-Length on a stream",
                    header_end,
                ));
            }
            None => available,
        };
        let (start_line, headers) = message;
        let message = Message {
            start: start_line,
            headers,
            body: buf.slice(header_end..header_end + body_len),
            cache: OnceLock::new(),
        };
        message.check_essentials(&essentials)?;
        Ok(Some((message, header_end + body_len)))
    }

    /// Checks the headers every transaction needs, so that a message that parsed can be
    /// matched and answered. Only checks: the typed values are built on first access
    /// (by the same parsers, so they build), and a message that is only relayed or
    /// dropped never pays for them.
    fn check_essentials(&self, found: &Essentials) -> Result<(), ParseError> {
        let [via, from, to, call_id, cseq] = found.lines;
        let (first_via, more_vias) = via.ok_or_else(|| self.missing(HeaderName::Via))?;
        let mut vias = 0;
        let lines = self.headers.iter().skip(first_via);
        let lines = lines.take(if more_vias { usize::MAX } else { 1 });
        for h in lines.filter(|h| *h.name == HeaderName::Via) {
            vias += h.check_list::<Via>()?;
        }
        if vias == 0 {
            return Err(self.missing(HeaderName::Via));
        }
        self.single(from, HeaderName::From)?.check::<NameAddr>()?;
        self.single(to, HeaderName::To)?.check::<NameAddr>()?;
        self.single(call_id, HeaderName::CallId)?
            .check::<CallId>()?;
        let cseq = self.single(cseq, HeaderName::CSeq)?;
        let (_, cseq_method) = CSeq::scan(cseq.value).map_err(|e| cseq.error(e))?;
        // Parsed methods are `Method::Other` only for names that are not known ones,
        // so comparing the text is comparing the methods.
        if let StartLine::Request { method, .. } = &self.start
            && method.as_str() != cseq_method
        {
            return Err(err(
                ErrorKind::CSeqMismatch,
                Part::Header(HeaderName::CSeq),
                "method differs from the request's",
                value_start_offset_of(cseq),
            ));
        }
        Ok(())
    }

    /// The typed essential headers, built on first access.
    fn cache(&self) -> &Cache {
        self.cache.get_or_init(|| {
            Box::new(Cache {
                // The first Via value, wherever it is: a first Via line may be empty.
                via: self
                    .vias()
                    .next()
                    .unwrap_or_else(|| Err(self.missing(HeaderName::Via))),
                from: self.required(HeaderName::From),
                to: self.required(HeaderName::To),
                call_id: self.required(HeaderName::CallId),
                cseq: self.required(HeaderName::CSeq),
            })
        })
    }

    fn missing(&self, name: HeaderName) -> ParseError {
        err(
            ErrorKind::MissingHeader,
            Part::Header(name),
            "required header",
            0,
        )
    }

    /// A header that must appear exactly once (`line`, as found while splitting the
    /// lines) named `name`.
    fn single(
        &self,
        line: Option<(usize, bool)>,
        name: HeaderName,
    ) -> Result<HeaderRef<'_>, ParseError> {
        let (first, more) = line.ok_or_else(|| self.missing(name.clone()))?;
        if more {
            let at = self
                .headers
                .all(&name)
                .nth(1)
                .map_or(0, value_start_offset_of);
            return Err(err(
                ErrorKind::DuplicateHeader,
                Part::Header(name),
                "second value of a single header",
                at,
            ));
        }
        self.headers.at(first).ok_or_else(|| self.missing(name))
    }

    /// A new request with no headers.
    pub fn request(method: Method, uri: Uri) -> Message {
        Message {
            start: StartLine::Request { method, uri },
            headers: Headers::new(),
            body: Bytes::new(),
            cache: OnceLock::new(),
        }
    }

    /// A response to `request` as RFC 3261 §8.2.6.2 says: Via (all, in order), From,
    /// To, Call-ID and CSeq copied, and a To tag added when the request has none and
    /// the response is not a 100 (`to_tag`). A 100 Trying copies Timestamp (§8.2.6.1).
    pub fn response_to(request: &Message, code: StatusCode, to_tag: Option<&str>) -> Message {
        let mut headers = Headers::new();
        for h in request.headers.iter() {
            match h.name {
                HeaderName::Via | HeaderName::From | HeaderName::CallId | HeaderName::CSeq => {
                    headers.push(h.name.clone(), h.to_bytestr());
                }
                HeaderName::To => {
                    let value = match (to_tag, h.parse::<NameAddr>()) {
                        (Some(tag), Ok(mut to))
                            if to.tag().is_none() && code != StatusCode::TRYING =>
                        {
                            to.set_tag(tag);
                            ByteStr::from(to.to_string())
                        }
                        _ => h.to_bytestr(),
                    };
                    headers.push(HeaderName::To, value);
                }
                HeaderName::Timestamp if code == StatusCode::TRYING => {
                    headers.push(HeaderName::Timestamp, h.to_bytestr());
                }
                _ => {}
            }
        }
        headers.push(HeaderName::ContentLength, ByteStr::from_static("0"));
        Message {
            start: StartLine::Response {
                code,
                reason: ByteStr::from_static(code.canonical_reason()),
            },
            headers,
            body: Bytes::new(),
            cache: OnceLock::new(),
        }
    }

    /// The answer to a request that failed to parse with `error`: 400 (or 505, 513)
    /// with a reason phrase naming the fault, when enough of it is readable to route
    /// an answer (a request line, a top Via that parses, From, To, Call-ID and CSeq);
    /// `None` when the message must be dropped instead (responses, ACKs, unreadable
    /// input).
    pub fn error_response(input: &[u8], error: &ParseError) -> Option<Message> {
        let start = skip_leading_crlf(input);
        let end = header_section_end(input, start).unwrap_or(input.len());
        let head = std::str::from_utf8(input.get(start..end)?).ok()?;
        let mut lines = head.split('\n').map(|l| l.trim_end_matches('\r'));
        let request_line = lines.next()?;
        let method = request_line.split(' ').next()?;
        if request_line.starts_with("SIP/") || method == "ACK" || method.is_empty() {
            return None;
        }
        let mut headers = Headers::new();
        let mut found = [false; 5];
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let name = HeaderName::parse(name.trim_end());
            let slot = match name {
                HeaderName::Via => 0,
                HeaderName::From => 1,
                HeaderName::To => 2,
                HeaderName::CallId => 3,
                HeaderName::CSeq => 4,
                _ => continue,
            };
            found[slot] = true;
            headers.push(name, value.trim());
        }
        if found.contains(&false) {
            return None;
        }
        // The answer is routed by the top Via: it must make sense.
        headers.typed::<Via>(&HeaderName::Via)?.ok()?;
        headers.push(HeaderName::ContentLength, ByteStr::from_static("0"));
        let code = StatusCode::new(error.status_code())?;
        Some(Message {
            start: StartLine::Response {
                code,
                reason: ByteStr::from(error.reason_phrase()),
            },
            headers,
            body: Bytes::new(),
            cache: OnceLock::new(),
        })
    }

    /// Whether this is a request.
    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    /// The request method (`None` for a response; see [`Message::cseq`] for its method).
    pub fn method(&self) -> Option<&Method> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// The status code of a response.
    pub fn status(&self) -> Option<StatusCode> {
        match &self.start {
            StartLine::Response { code, .. } => Some(*code),
            StartLine::Request { .. } => None,
        }
    }

    /// The Request-URI of a request.
    pub fn request_uri(&self) -> Option<&Uri> {
        match &self.start {
            StartLine::Request { uri, .. } => Some(uri),
            StartLine::Response { .. } => None,
        }
    }

    fn required<T: HeaderValue>(&self, name: HeaderName) -> Result<T, ParseError> {
        match self.headers.typed(&name) {
            Some(v) => v,
            None => Err(self.missing(name)),
        }
    }

    /// Every Via value, topmost first.
    pub fn vias(&self) -> impl Iterator<Item = Result<Via, ParseError>> + '_ {
        static VIA: HeaderName = HeaderName::Via;
        self.headers.typed_all(&VIA)
    }

    /// The headers.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The headers, to change them (the cached typed values are dropped).
    pub fn headers_mut(&mut self) -> &mut Headers {
        self.cache = OnceLock::new();
        &mut self.headers
    }

    /// The topmost Via (parsed on first access, with From, To, Call-ID and CSeq).
    pub fn top_via(&self) -> Result<&Via, ParseError> {
        cached(&self.cache().via)
    }

    /// From (parsed on first access, with the other essential headers).
    pub fn from(&self) -> Result<&NameAddr, ParseError> {
        cached(&self.cache().from)
    }

    /// To (parsed on first access, with the other essential headers).
    pub fn to(&self) -> Result<&NameAddr, ParseError> {
        cached(&self.cache().to)
    }

    /// Call-ID (parsed on first access, with the other essential headers).
    pub fn call_id(&self) -> Result<&CallId, ParseError> {
        cached(&self.cache().call_id)
    }

    /// CSeq (parsed on first access, with the other essential headers).
    pub fn cseq(&self) -> Result<&CSeq, ParseError> {
        cached(&self.cache().cseq)
    }

    /// Max-Forwards, if present.
    pub fn max_forwards(&self) -> Option<Result<u8, ParseError>> {
        self.headers.typed(&HeaderName::MaxForwards)
    }

    /// Expires, if present.
    pub fn expires(&self) -> Option<Result<u32, ParseError>> {
        self.headers.typed(&HeaderName::Expires)
    }

    /// Every Contact value.
    pub fn contacts(&self) -> impl Iterator<Item = Result<Contact, ParseError>> + '_ {
        static CONTACT: HeaderName = HeaderName::Contact;
        self.headers.typed_all(&CONTACT)
    }

    /// Serialises the message. Content-Length is written with the body's real length,
    /// in place of the stored one, or appended when absent.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.encoded_len_hint());
        self.write_to(&mut out);
        out.freeze()
    }

    fn encoded_len_hint(&self) -> usize {
        64 + self.body.len()
            + self
                .headers
                .iter()
                .map(|h| h.value.len() + 24)
                .sum::<usize>()
    }

    /// Appends the serialised message to `out`.
    pub fn write_to(&self, out: &mut BytesMut) {
        match &self.start {
            StartLine::Request { method, uri } => {
                out.put_slice(method.as_str().as_bytes());
                out.put_u8(b' ');
                out.put_slice(uri.to_string().as_bytes());
                out.put_slice(b" SIP/2.0\r\n");
            }
            StartLine::Response { code, reason } => {
                out.put_slice(b"SIP/2.0 ");
                out.put_slice(code.to_string().as_bytes());
                out.put_u8(b' ');
                out.put_slice(reason.as_bytes());
                out.put_slice(b"\r\n");
            }
        }
        let mut wrote_length = false;
        for h in self.headers.iter() {
            out.put_slice(h.name.as_str().as_bytes());
            out.put_slice(b": ");
            if *h.name == HeaderName::ContentLength {
                if wrote_length {
                    // One Content-Length only: a second one would make the message invalid.
                    out.truncate(out.len() - h.name.as_str().len() - 2);
                    continue;
                }
                wrote_length = true;
                out.put_slice(self.body.len().to_string().as_bytes());
            } else {
                out.put_slice(h.value.as_bytes());
            }
            out.put_slice(b"\r\n");
        }
        if !wrote_length {
            out.put_slice(b"Content-Length: ");
            out.put_slice(self.body.len().to_string().as_bytes());
            out.put_slice(b"\r\n");
        }
        out.put_slice(b"\r\n");
        out.put_slice(&self.body);
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
    }
}

fn value_start_offset_of(h: HeaderRef<'_>) -> usize {
    h.offset
}

type Head = (StartLine, Headers);

/// Where the essential headers are, found while splitting the lines: the checks then
/// go straight to them instead of searching the header list once per name.
#[derive(Default)]
struct Essentials {
    /// For Via, From, To, Call-ID and CSeq in that order: the index of the first line
    /// and whether there is more than one.
    lines: [Option<(usize, bool)>; 5],
}

impl Essentials {
    fn note(&mut self, name: &HeaderName, index: usize) {
        let slot = match name {
            HeaderName::Via => 0,
            HeaderName::From => 1,
            HeaderName::To => 2,
            HeaderName::CallId => 3,
            HeaderName::CSeq => 4,
            _ => return,
        };
        match &mut self.lines[slot] {
            Some((_, more)) => *more = true,
            line @ None => *line = Some((index, false)),
        }
    }
}

/// Parses the start line and header lines of `head` (a complete header section, ending
/// with its blank line). `base` is the offset of `head` in the input, for errors.
/// Returns the Content-Length value and its offset when present, and the offset just
/// past the first blank line (where the header lines stop).
///
/// `head` becomes the headers' buffer (moved there, not shared: no reference count to
/// take and drop); `text` is the same text borrowed from the input, read throughout.
#[allow(clippy::type_complexity)]
fn parse_head(
    head: ByteStr,
    text: &str,
    base: usize,
) -> Result<(Head, Essentials, Option<(usize, usize)>, usize), ParseError> {
    let bytes = text.as_bytes();
    // Walk the line feeds once; lines are consumed in order.
    let mut newlines = memchr::memchr_iter(b'\n', bytes);
    let mut line_end = |from: usize| -> Option<(usize, usize)> {
        let nl = newlines.next()?;
        let end = if nl > from && bytes.get(nl - 1) == Some(&b'\r') {
            nl - 1
        } else {
            nl
        };
        Some((end, nl + 1))
    };
    let (line_stop, mut pos) = line_end(0).ok_or_else(|| {
        err(
            ErrorKind::Incomplete,
            Part::StartLine,
            "end of start line",
            base,
        )
    })?;
    let start_line = parse_start_line(&head, line_stop, base)?;
    let mut headers = Headers::received(head, 16);
    let mut content_length = None;
    let mut essentials = Essentials::default();
    let mut stop = bytes.len();
    while let Some((end, next)) = line_end(pos) {
        if end == pos {
            stop = next;
            break;
        }
        if matches!(bytes[pos], b' ' | b'\t') {
            return Err(err(
                ErrorKind::HeaderLine,
                Part::StartLine,
                "folded line before any header",
                base + pos,
            ));
        }
        // Fold continuation lines (starting with SP or HT) into this header.
        let mut value_end = end;
        let mut after = next;
        while matches!(bytes.get(after), Some(b' ' | b'\t')) {
            match line_end(after) {
                Some((e, n)) => {
                    value_end = e;
                    after = n;
                }
                None => break,
            }
        }
        if headers.len() == MAX_HEADERS {
            return Err(err(
                ErrorKind::TooLarge,
                Part::StartLine,
                "number of headers",
                base + pos,
            ));
        }
        let (name, v_start, v_end) =
            parse_header_line(headers.received_head(), text, pos, value_end, base)?;
        if matches!(name, HeaderName::ContentLength) {
            let at = base + v_start;
            if content_length.is_some() {
                return Err(err(
                    ErrorKind::DuplicateHeader,
                    Part::Header(HeaderName::ContentLength),
                    "second Content-Length",
                    at,
                ));
            }
            let n = crate::scan::parse_decimal(sub(text, v_start, v_end), u64::from(u32::MAX))
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| {
                    err(
                        ErrorKind::ContentLength,
                        Part::Header(HeaderName::ContentLength),
                        "decimal length",
                        at,
                    )
                })?;
            content_length = Some((n, at));
        }
        essentials.note(&name, headers.len());
        headers.push_received(name, v_start, v_end);
        pos = after;
    }
    Ok(((start_line, headers), essentials, content_length, stop))
}

fn parse_start_line(head: &ByteStr, end: usize, base: usize) -> Result<StartLine, ParseError> {
    let text = head.as_str();
    let line = sub(text, 0, end);
    let bytes = line.as_bytes();
    let bad = |element, at: usize| err(ErrorKind::StartLine, Part::StartLine, element, base + at);
    let is_version = |v: &str| v.len() >= 4 && v.as_bytes()[..4].eq_ignore_ascii_case(b"SIP/");
    let version_ok = |v: &str| v.eq_ignore_ascii_case("SIP/2.0");
    if is_version(line) {
        // Status-Line: SIP-Version SP Status-Code SP Reason-Phrase
        let sp = memchr::memchr(b' ', bytes).ok_or_else(|| bad("status line", line.len()))?;
        if !version_ok(sub(line, 0, sp)) {
            return Err(err(ErrorKind::Version, Part::StartLine, "SIP/2.0", base));
        }
        let code_text = sub(line, sp + 1, (sp + 4).min(line.len()));
        if code_text.len() != 3 || !code_text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("three-digit status code", sp + 1));
        }
        let code = crate::scan::parse_decimal(code_text, 999)
            .and_then(|c| u16::try_from(c).ok())
            .and_then(StatusCode::new);
        let code = code.ok_or_else(|| bad("status code 100-699", sp + 1))?;
        if bytes.get(sp + 4) != Some(&b' ') {
            return Err(bad("space after status code", sp + 4));
        }
        let reason = sub(line, sp + 5, line.len());
        if reason.bytes().any(|b| b == b'\r' || b == b'\n') {
            return Err(bad("reason phrase", sp + 5));
        }
        return Ok(StartLine::Response {
            code,
            reason: head.slice_ref(reason),
        });
    }
    // Request-Line: Method SP Request-URI SP SIP-Version; single spaces only
    // (RFC 4475 §3.1.2.8-10 reject embedded, doubled and trailing white space).
    let sp1 = memchr::memchr(b' ', bytes).ok_or_else(|| bad("request line", 0))?;
    let sp2 = memchr::memrchr(b' ', bytes).unwrap_or(sp1);
    if sp2 == sp1 {
        return Err(bad("request line", sp1));
    }
    let method = sub(line, 0, sp1);
    if method.is_empty() || !method.bytes().all(is_token) {
        return Err(bad("method", 0));
    }
    let version = sub(line, sp2 + 1, line.len());
    if !is_version(version) {
        return Err(bad("SIP-Version at end of request line", sp2 + 1));
    }
    if !version_ok(version) {
        return Err(err(
            ErrorKind::Version,
            Part::StartLine,
            "SIP/2.0",
            base + sp2 + 1,
        ));
    }
    let uri_text = sub(line, sp1 + 1, sp2);
    if let Some(i) = uri_text.bytes().position(|b| b == b' ' || b == b'\t') {
        return Err(bad("Request-URI without white space", sp1 + 1 + i));
    }
    // Parts of the URI are slices of the head (no intermediate slice to count).
    let uri = Uri::parse_in(uri_text, Build::Into(head))
        .map_err(|e| e.into_parse(ErrorKind::StartLine, Part::StartLine, base + sp1 + 1))?;
    if let Uri::Sip(sip) = &uri {
        // RFC 3261 §19.1.5: headers are not allowed in a Request-URI (RFC 4475 §3.1.2.11).
        if !sip.headers.is_empty() {
            return Err(bad("Request-URI without headers", sp1 + 1));
        }
    }
    Ok(StartLine::Request {
        method: Method::from_str_in(head, method),
        uri,
    })
}

/// Splits a header line of `text` into its name and the bounds of its trimmed value.
fn parse_header_line(
    head: &ByteStr,
    text: &str,
    start: usize,
    end: usize,
    base: usize,
) -> Result<(HeaderName, usize, usize), ParseError> {
    let bytes = text.as_bytes().get(start..end).unwrap_or_default();
    // The name: token characters, then optional white space, then the colon. One pass
    // (names are short), no separate search for the colon.
    let mut i = 0;
    while bytes.get(i).copied().is_some_and(is_token) {
        i += 1;
    }
    let name_end = i;
    while matches!(bytes.get(i), Some(b' ' | b'\t')) {
        i += 1;
    }
    if name_end == 0 || bytes.get(i) != Some(&b':') {
        let element = if bytes[..i].contains(&b':') || !bytes.contains(&b':') {
            "colon after header name"
        } else {
            "header name"
        };
        return Err(err(
            ErrorKind::HeaderLine,
            Part::StartLine,
            element,
            base + start,
        ));
    }
    let is_ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    let mut v_start = i + 1;
    while bytes.get(v_start).is_some_and(is_ws) {
        v_start += 1;
    }
    let mut v_end = bytes.len();
    while v_end > v_start && bytes.get(v_end - 1).is_some_and(is_ws) {
        v_end -= 1;
    }
    // The name is ASCII (token characters): known names are found from the bytes;
    // only an unknown one is cut out of the text (`head` holds the same text).
    let name = match bytes.get(..name_end).and_then(HeaderName::known) {
        Some(known) => known,
        None => HeaderName::Other(head.slice_ref(sub(head, start, start + name_end))),
    };
    Ok((name, start + v_start, start + v_end))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTIONS: &[u8] = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";

    #[test]
    fn unparseable_requests_get_a_400_naming_the_fault_when_routable() {
        let text = std::str::from_utf8(OPTIONS).unwrap();
        let bad = text
            .replace("CSeq: 1 OPTIONS", "CSeq: 1 INVITE")
            .into_bytes();
        let e = Message::parse(bad.clone()).unwrap_err();
        let r = Message::error_response(&bad, &e).unwrap();
        assert_eq!(r.status(), Some(StatusCode::BAD_REQUEST));
        let StartLine::Response { reason, .. } = &r.start else {
            panic!()
        };
        assert_eq!(
            reason.as_str(),
            "Bad Request (CSeq: method differs from the request's)"
        );
        let again = Message::parse(r.to_bytes()).unwrap();
        assert_eq!(again.top_via().unwrap().branch(), Some("z9hG4bK1"));
        // No Call-ID: nothing to answer with.
        let bad = text.replace("Call-ID: c1\r\n", "").into_bytes();
        let e = Message::parse(bad.clone()).unwrap_err();
        assert!(Message::error_response(&bad, &e).is_none());
        // A bad version gets 505.
        let bad = text
            .replace("SIP/2.0\r\nVia", "SIP/3.0\r\nVia")
            .into_bytes();
        let e = Message::parse(bad.clone()).unwrap_err();
        assert_eq!(
            Message::error_response(&bad, &e).unwrap().status(),
            StatusCode::new(505)
        );
        // Responses and ACKs are never answered.
        let ack = text
            .replace("OPTIONS", "ACK")
            .replace("CSeq: 1 ACK", "CSeq: 1 INVITE")
            .into_bytes();
        let e = Message::parse(ack.clone()).unwrap_err();
        assert!(Message::error_response(&ack, &e).is_none());
    }

    #[test]
    fn the_top_via_is_the_first_value_after_empty_via_lines() {
        let text = std::str::from_utf8(OPTIONS).unwrap();
        let m = Message::parse(text.replace("Via: SIP", "Via:\r\nVia: SIP").into_bytes()).unwrap();
        assert_eq!(m.top_via().unwrap().branch(), Some("z9hG4bK1"));
    }

    #[test]
    fn a_bare_lf_blank_line_before_a_crlf_one_ends_the_headers() {
        let lf = b"OPTIONS sip:a@b SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\nFrom: <sip:x@y>;tag=1\nTo: <sip:a@b>\nCall-ID: c1\nCSeq: 1 OPTIONS\n\nbody\xff\n\r\nX: y\r\n\r\n";
        let m = Message::parse(&lf[..]).unwrap();
        assert_eq!(m.headers().len(), 5);
        assert_eq!(&m.body[..], b"body\xff\n\r\nX: y\r\n\r\n");
    }

    #[test]
    fn changing_headers_drops_cached_values() {
        let mut m = Message::parse(OPTIONS).unwrap();
        assert_eq!(m.from().unwrap().tag(), Some("1"));
        m.headers_mut().set(HeaderName::From, "<sip:x@y>;tag=2");
        assert_eq!(m.from().unwrap().tag(), Some("2"));
        m.headers_mut().remove(&HeaderName::CallId);
        assert_eq!(m.call_id().unwrap_err().kind, ErrorKind::MissingHeader);
    }

    #[test]
    fn essentials_are_checked_then_built_once_on_access() {
        let m = Message::parse(OPTIONS).unwrap();
        assert!(m.cache.get().is_none());
        assert_eq!(m.top_via().unwrap().branch(), Some("z9hG4bK1"));
        assert!(m.cache.get().is_some());
        assert_eq!(m.cseq().unwrap().method, Method::Options);
        let copy = m.clone();
        assert_eq!(copy.from().unwrap().tag(), Some("1"));
    }

    #[test]
    fn missing_and_duplicate_essentials() {
        let text = std::str::from_utf8(OPTIONS).unwrap();
        let e = Message::parse(text.replace("Call-ID: c1\r\n", "").into_bytes()).unwrap_err();
        assert_eq!(
            (e.kind, e.part),
            (ErrorKind::MissingHeader, Part::Header(HeaderName::CallId))
        );
        let e = Message::parse(
            text.replace("To: <sip:a@b>\r\n", "To: <sip:a@b>\r\nt: <sip:c@d>\r\n")
                .into_bytes(),
        )
        .unwrap_err();
        assert_eq!(
            (e.kind, e.part),
            (ErrorKind::DuplicateHeader, Part::Header(HeaderName::To))
        );
        let e = Message::parse(
            text.replace("Content-Length: 0", "Content-Length: 0\r\nl: 0")
                .into_bytes(),
        )
        .unwrap_err();
        assert_eq!(e.kind, ErrorKind::DuplicateHeader);
        let e = Message::parse(
            text.replace("Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\n", "")
                .into_bytes(),
        )
        .unwrap_err();
        assert_eq!(
            (e.kind, e.part),
            (ErrorKind::MissingHeader, Part::Header(HeaderName::Via))
        );
        let e = Message::parse(b"OPTIONS sip:a@b SIP/2.0\r\n\xff: x\r\n\r\n".to_vec()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Utf8);
    }
}
