//! SIP messages: parsing from received bytes, typed access, building and serialising.

use crate::bytestr::ByteStr;
use crate::error::{ErrorKind, ParseError, Part};
use crate::headers::{Header, HeaderValue, Headers};
use crate::method::{Method, StatusCode};
use crate::name::HeaderName;
use crate::nameaddr::{Contact, NameAddr};
use crate::scan::is_token;
use crate::uri::Uri;
use crate::values::{CSeq, CallId};
use crate::via::Via;
use bytes::{BufMut, Bytes, BytesMut};
use std::fmt;

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The request or status line.
    pub start: StartLine,
    /// The headers, in order.
    pub headers: Headers,
    /// The body (exactly Content-Length bytes for a parsed message).
    pub body: Bytes,
}

fn err(kind: ErrorKind, part: Part, element: &'static str, offset: usize) -> ParseError {
    ParseError::new(kind, part, element, offset)
}

/// Finds the end of the line starting at `from`: returns (content end, next line start).
/// Lines end with CRLF; a bare LF is accepted too (lenient with sloppy peers).
fn line_end(buf: &[u8], from: usize) -> Option<(usize, usize)> {
    let rest = buf.get(from..)?;
    let nl = from + memchr::memchr(b'\n', rest)?;
    let end = if nl > from && buf.get(nl - 1) == Some(&b'\r') {
        nl - 1
    } else {
        nl
    };
    Some((end, nl + 1))
}

/// Offset just past the blank line that ends the header section of the message starting
/// at `start` (after any leading CRLFs), or `None` if the section is not complete.
pub(crate) fn header_section_end(buf: &[u8], start: usize) -> Option<usize> {
    let mut pos = start;
    loop {
        let (end, next) = line_end(buf, pos)?;
        if end == pos && pos > start {
            return Some(next);
        }
        pos = next;
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
        let Some((line_stop, mut pos)) = line_end(buf, start) else {
            return Err(err(
                ErrorKind::Incomplete,
                Part::StartLine,
                "end of start line",
                buf.len(),
            ));
        };
        let start_line = parse_start_line(buf, start, line_stop)?;

        let mut headers = Headers::with_capacity(16);
        let mut content_length: Option<(usize, usize)> = None;
        let header_end;
        loop {
            let Some((end, next)) = line_end(buf, pos) else {
                return Err(err(
                    ErrorKind::Incomplete,
                    Part::Body,
                    "blank line after headers",
                    buf.len(),
                ));
            };
            if end == pos {
                header_end = next;
                break;
            }
            if matches!(buf[pos], b' ' | b'\t') {
                // A continuation line with no header to continue.
                return Err(err(
                    ErrorKind::HeaderLine,
                    Part::StartLine,
                    "folded line before any header",
                    pos,
                ));
            }
            // Fold continuation lines (starting with SP or HT) into this header.
            let mut value_end = end;
            let mut after = next;
            while let Some(&b) = buf.get(after) {
                if b != b' ' && b != b'\t' {
                    break;
                }
                match line_end(buf, after) {
                    Some((e, n)) => {
                        value_end = e;
                        after = n;
                    }
                    None => {
                        return Err(err(
                            ErrorKind::Incomplete,
                            Part::Body,
                            "blank line after headers",
                            buf.len(),
                        ));
                    }
                }
            }
            if headers.len() == MAX_HEADERS {
                return Err(err(
                    ErrorKind::TooLarge,
                    Part::StartLine,
                    "number of headers",
                    pos,
                ));
            }
            let header = parse_header_line(buf, pos, value_end)?;
            if header.name == HeaderName::ContentLength {
                let at = header.offset();
                if content_length.is_some() {
                    return Err(err(
                        ErrorKind::DuplicateHeader,
                        Part::Header(HeaderName::ContentLength),
                        "second Content-Length",
                        at,
                    ));
                }
                let n = content_length_value(&header.value).ok_or_else(|| {
                    err(
                        ErrorKind::ContentLength,
                        Part::Header(HeaderName::ContentLength),
                        "decimal length",
                        at,
                    )
                })?;
                content_length = Some((n, at));
            }
            headers.push_header(header);
            pos = after;
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
        let body = buf.slice(header_end..header_end + body_len);
        let message = Message {
            start: start_line,
            headers,
            body,
        };
        message.check_essentials()?;
        Ok((message, header_end + body_len))
    }

    /// Checks the headers every transaction needs, so that a message that parsed can be
    /// matched and answered.
    fn check_essentials(&self) -> Result<(), ParseError> {
        let mut vias = 0;
        for via in self.vias() {
            via?;
            vias += 1;
        }
        if vias == 0 {
            return Err(self.missing(HeaderName::Via));
        }
        self.single::<NameAddr>(HeaderName::From)?;
        self.single::<NameAddr>(HeaderName::To)?;
        self.single::<CallId>(HeaderName::CallId)?;
        let cseq = self.single::<CSeq>(HeaderName::CSeq)?;
        if let StartLine::Request { method, .. } = &self.start
            && *method != cseq.method
        {
            let offset = self
                .headers
                .first(&HeaderName::CSeq)
                .map_or(0, value_start_offset_of);
            return Err(err(
                ErrorKind::CSeqMismatch,
                Part::Header(HeaderName::CSeq),
                "method differs from the request's",
                offset,
            ));
        }
        Ok(())
    }

    fn missing(&self, name: HeaderName) -> ParseError {
        err(
            ErrorKind::MissingHeader,
            Part::Header(name),
            "required header",
            0,
        )
    }

    /// A header that must appear exactly once, parsed.
    fn single<T: HeaderValue>(&self, name: HeaderName) -> Result<T, ParseError> {
        let mut all = self.headers.all(&name);
        let first = all.next().ok_or_else(|| self.missing(name.clone()))?;
        if let Some(second) = all.next() {
            let at = value_start_offset_of(second);
            return Err(err(
                ErrorKind::DuplicateHeader,
                Part::Header(name.clone()),
                "second value of a single header",
                at,
            ));
        }
        first.parse()
    }

    /// A new request with no headers.
    pub fn request(method: Method, uri: Uri) -> Message {
        Message {
            start: StartLine::Request { method, uri },
            headers: Headers::new(),
            body: Bytes::new(),
        }
    }

    /// A response to `request` as RFC 3261 §8.2.6.2 says: Via (all, in order), From,
    /// To, Call-ID and CSeq copied, and a To tag added when the request has none and
    /// the response is not a 100 (`to_tag`). A 100 Trying copies Timestamp (§8.2.6.1).
    pub fn response_to(request: &Message, code: StatusCode, to_tag: Option<&str>) -> Message {
        let mut headers = Headers::with_capacity(8);
        for h in request.headers.iter() {
            match &h.name {
                HeaderName::Via | HeaderName::From | HeaderName::CallId | HeaderName::CSeq => {
                    headers.push_header(Header::new(h.name.clone(), h.value.clone()));
                }
                HeaderName::To => {
                    let value = match (to_tag, h.parse::<NameAddr>()) {
                        (Some(tag), Ok(mut to))
                            if to.tag().is_none() && code != StatusCode::TRYING =>
                        {
                            to.set_tag(tag);
                            Bytes::from(to.to_string())
                        }
                        _ => h.value.clone(),
                    };
                    headers.push_header(Header::new(HeaderName::To, value));
                }
                HeaderName::Timestamp if code == StatusCode::TRYING => {
                    headers.push_header(Header::new(HeaderName::Timestamp, h.value.clone()));
                }
                _ => {}
            }
        }
        headers.push(HeaderName::ContentLength, Bytes::from_static(b"0"));
        Message {
            start: StartLine::Response {
                code,
                reason: ByteStr::from_static(code.canonical_reason()),
            },
            headers,
            body: Bytes::new(),
        }
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

    /// The topmost Via.
    pub fn top_via(&self) -> Result<Via, ParseError> {
        self.required(HeaderName::Via)
    }

    /// From.
    pub fn from(&self) -> Result<NameAddr, ParseError> {
        self.required(HeaderName::From)
    }

    /// To.
    pub fn to(&self) -> Result<NameAddr, ParseError> {
        self.required(HeaderName::To)
    }

    /// Call-ID.
    pub fn call_id(&self) -> Result<CallId, ParseError> {
        self.required(HeaderName::CallId)
    }

    /// CSeq.
    pub fn cseq(&self) -> Result<CSeq, ParseError> {
        self.required(HeaderName::CSeq)
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
            if h.name == HeaderName::ContentLength {
                if wrote_length {
                    // One Content-Length only: a second one would make the message invalid.
                    out.truncate(out.len() - h.name.as_str().len() - 2);
                    continue;
                }
                wrote_length = true;
                out.put_slice(self.body.len().to_string().as_bytes());
            } else {
                out.put_slice(&h.value);
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

fn value_start_offset_of(h: &Header) -> usize {
    h.offset()
}

fn content_length_value(v: &[u8]) -> Option<usize> {
    let s = std::str::from_utf8(v).ok()?;
    // Bounded well above any message we accept; longer digit strings are errors.
    crate::scan::parse_decimal(s.trim(), u64::from(u32::MAX)).and_then(|n| usize::try_from(n).ok())
}

fn parse_start_line(buf: &Bytes, start: usize, end: usize) -> Result<StartLine, ParseError> {
    let line = buf.get(start..end).unwrap_or_default();
    let bad = |element, at: usize| err(ErrorKind::StartLine, Part::StartLine, element, start + at);
    let version_ok = |v: &[u8]| v.eq_ignore_ascii_case(b"SIP/2.0");
    let is_version = |v: &[u8]| v.len() >= 4 && v[..4].eq_ignore_ascii_case(b"SIP/");
    if is_version(line) {
        // Status-Line: SIP-Version SP Status-Code SP Reason-Phrase
        let sp = memchr::memchr(b' ', line).ok_or_else(|| bad("status line", line.len()))?;
        if !version_ok(&line[..sp]) {
            return Err(err(ErrorKind::Version, Part::StartLine, "SIP/2.0", start));
        }
        let rest = &line[sp + 1..];
        let code_end = memchr::memchr(b' ', rest).unwrap_or(rest.len());
        let code_text = &rest[..code_end];
        if code_text.len() != 3 || !code_text.iter().all(u8::is_ascii_digit) {
            return Err(bad("three-digit status code", sp + 1));
        }
        let code = (u16::from(code_text[0] - b'0') * 100)
            + (u16::from(code_text[1] - b'0') * 10)
            + u16::from(code_text[2] - b'0');
        let code = StatusCode::new(code).ok_or_else(|| bad("status code 100-699", sp + 1))?;
        if code_end == rest.len() {
            return Err(bad("space after status code", sp + 1 + code_end));
        }
        let reason = buf.slice(start + sp + 1 + code_end + 1..end);
        if reason.iter().any(|&b| b == b'\r' || b == b'\n') {
            return Err(bad("reason phrase", sp + 1 + code_end + 1));
        }
        let reason = ByteStr::from_utf8(reason).ok_or_else(|| {
            err(
                ErrorKind::Utf8,
                Part::StartLine,
                "UTF-8 reason phrase",
                start + sp + 1 + code_end + 1,
            )
        })?;
        return Ok(StartLine::Response { code, reason });
    }
    // Request-Line: Method SP Request-URI SP SIP-Version; single spaces only
    // (RFC 4475 §3.1.2.8-10 reject embedded, doubled and trailing white space).
    let sp1 = memchr::memchr(b' ', line).ok_or_else(|| bad("request line", 0))?;
    let sp2 = memchr::memrchr(b' ', line).unwrap_or(sp1);
    if sp2 == sp1 {
        return Err(bad("request line", sp1));
    }
    let method = &line[..sp1];
    if method.is_empty() || !method.iter().all(|&b| is_token(b)) {
        return Err(bad("method", 0));
    }
    let version = &line[sp2 + 1..];
    if !is_version(version) {
        return Err(bad("SIP-Version at end of request line", sp2 + 1));
    }
    if !version_ok(version) {
        return Err(err(
            ErrorKind::Version,
            Part::StartLine,
            "SIP/2.0",
            start + sp2 + 1,
        ));
    }
    let uri_bytes = &line[sp1 + 1..sp2];
    if let Some(i) = uri_bytes.iter().position(|&b| b == b' ' || b == b'\t') {
        return Err(bad("Request-URI without white space", sp1 + 1 + i));
    }
    let uri_text = ByteStr::from_utf8(buf.slice(start + sp1 + 1..start + sp2))
        .ok_or_else(|| bad("Request-URI", sp1 + 1))?;
    let uri = Uri::parse_bytestr(&uri_text)
        .map_err(|e| e.into_parse(ErrorKind::StartLine, Part::StartLine, start + sp1 + 1))?;
    if let Uri::Sip(sip) = &uri {
        // RFC 3261 §19.1.5: headers are not allowed in a Request-URI (RFC 4475 §3.1.2.11).
        if !sip.headers.is_empty() {
            return Err(bad("Request-URI without headers", sp1 + 1));
        }
    }
    // Methods are tokens, hence ASCII.
    let method =
        ByteStr::from_utf8(buf.slice(start..start + sp1)).ok_or_else(|| bad("method", 0))?;
    Ok(StartLine::Request {
        method: Method::from_bytestr(method),
        uri,
    })
}

fn parse_header_line(buf: &Bytes, start: usize, end: usize) -> Result<Header, ParseError> {
    let line = buf.get(start..end).unwrap_or_default();
    let colon = memchr::memchr(b':', line).ok_or_else(|| {
        err(
            ErrorKind::HeaderLine,
            Part::StartLine,
            "colon after header name",
            start,
        )
    })?;
    let mut name_end = colon;
    while name_end > 0 && matches!(line[name_end - 1], b' ' | b'\t') {
        name_end -= 1;
    }
    let name = &line[..name_end];
    if name.is_empty() || !name.iter().all(|&b| is_token(b)) {
        return Err(err(
            ErrorKind::HeaderLine,
            Part::StartLine,
            "header name",
            start,
        ));
    }
    let mut v_start = colon + 1;
    while v_start < line.len() && matches!(line[v_start], b' ' | b'\t' | b'\r' | b'\n') {
        v_start += 1;
    }
    let mut v_end = line.len();
    while v_end > v_start && matches!(line[v_end - 1], b' ' | b'\t' | b'\r' | b'\n') {
        v_end -= 1;
    }
    // Header names are tokens, hence ASCII.
    let name = ByteStr::from_utf8(buf.slice(start..start + name_end)).unwrap_or_default();
    Ok(Header::parsed(
        HeaderName::from_bytestr(name),
        buf.slice(start + v_start..start + v_end),
        start + v_start,
    ))
}
