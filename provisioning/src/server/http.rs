//! A minimal HTTP/1.1 file server for phones: `GET` and `HEAD` only, one request per
//! connection, a request head of at most [`MAX_HEAD`] bytes read within a deadline.
//!
//! The request line and headers are parsed strictly by [`parse_head`] (sans I/O); the
//! path is percent-decoded and checked by [`check_path`] (after removing the leading
//! `/` and any query). Answers: 200 with the file, 404 when the source has no such
//! file, 403 for a refused path, 405 for another method, 400 for a malformed request,
//! 431 for a head too long, 503 beyond [`HttpConfig::max_connections`] connections.
//! Every accepted request is passed, with its `User-Agent`, to the
//! [`RequestHook`] for identification.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

use super::{FileSource, MissingLog, RequestHook, RequestInfo, check_path};

/// The longest request head (request line and headers) accepted, in bytes.
pub const MAX_HEAD: usize = 8 * 1024;
/// The most header lines accepted.
pub const MAX_HEADERS: usize = 64;

/// Why a request head is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The head is longer than [`MAX_HEAD`] bytes (answered 431).
    #[error("request head too long")]
    TooLong,
    /// The head is not terminated by an empty line.
    #[error("request head not terminated")]
    Incomplete,
    /// The request line at byte `offset` is not `METHOD SP target SP HTTP/1.x`.
    #[error("bad request line at byte {offset}")]
    RequestLine {
        /// Where the problem is.
        offset: usize,
    },
    /// The header line starting at byte `offset` is malformed.
    #[error("bad header at byte {offset}")]
    Header {
        /// Where the header line starts.
        offset: usize,
    },
    /// The byte at `offset` is not part of valid UTF-8.
    #[error("invalid UTF-8 at byte {offset}")]
    NotUtf8 {
        /// Where.
        offset: usize,
    },
    /// More than [`MAX_HEADERS`] headers.
    #[error("too many headers")]
    TooManyHeaders,
    /// The target is not an origin-form path (`/...`) or is badly percent-encoded.
    #[error("bad request target")]
    Target,
}

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestHead {
    /// The method (case-sensitive, as sent).
    pub method: String,
    /// The decoded path without its leading `/` and without query.
    pub path: String,
    /// The `User-Agent`, if sent.
    pub user_agent: Option<String>,
}

/// The length of the head in `buf` (up to and including the empty line), if complete.
fn head_len(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// Decodes `%XX` escapes; `None` on a bad escape or a result that is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Parses a request head: `buf` must hold exactly the head, ending with the empty line.
pub fn parse_head(buf: &[u8]) -> Result<RequestHead, HttpError> {
    if buf.len() > MAX_HEAD {
        return Err(HttpError::TooLong);
    }
    let body = buf.strip_suffix(b"\r\n\r\n").ok_or(HttpError::Incomplete)?;
    let text = std::str::from_utf8(body).map_err(|e| HttpError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    let mut lines = text.split("\r\n");
    let line = lines.next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HttpError::RequestLine { offset: 0 });
    };
    if !is_token(method) {
        return Err(HttpError::RequestLine { offset: 0 });
    }
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(HttpError::RequestLine {
            offset: method.len() + target.len() + 2,
        });
    }
    let raw_path = target
        .strip_prefix('/')
        .ok_or(HttpError::Target)?
        .split(['?', '#'])
        .next()
        .unwrap_or_default();
    if target.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(HttpError::Target);
    }
    let path = percent_decode(raw_path).ok_or(HttpError::Target)?;
    let mut user_agent = None;
    let mut offset = line.len() + 2;
    for (n, line) in lines.enumerate() {
        if n >= MAX_HEADERS {
            return Err(HttpError::TooManyHeaders);
        }
        let (name, value) = line.split_once(':').ok_or(HttpError::Header { offset })?;
        // No folding, no space before the colon (RFC 9112 §5.1), no control characters.
        if !is_token(name) || value.chars().any(|c| c.is_control() && c != '\t') {
            return Err(HttpError::Header { offset });
        }
        if name.eq_ignore_ascii_case("user-agent") {
            user_agent = Some(value.trim_matches([' ', '\t']).to_owned());
        }
        offset += line.len() + 2;
    }
    Ok(RequestHead {
        method: method.to_owned(),
        path,
        user_agent,
    })
}

/// Settings of an [`HttpServer`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HttpConfig {
    /// Time allowed to receive the request head: 10 s.
    pub read_timeout: Duration,
    /// Time allowed to send the response: 60 s.
    pub write_timeout: Duration,
    /// Connections at once; beyond, 503: 256.
    pub max_connections: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            read_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(60),
            max_connections: 256,
        }
    }
}

/// An HTTP file server; run it with [`HttpServer::run`].
pub struct HttpServer {
    listener: TcpListener,
    source: Arc<dyn FileSource>,
    config: HttpConfig,
    active: Arc<AtomicUsize>,
    missing: Arc<MissingLog>,
    hook: Option<RequestHook>,
}

impl std::fmt::Debug for HttpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpServer")
            .field("listener", &self.listener)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Decrements the number of connections when one ends.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What one connection needs.
struct Conn {
    peer: SocketAddr,
    source: Arc<dyn FileSource>,
    config: HttpConfig,
    missing: Arc<MissingLog>,
    hook: Option<RequestHook>,
}

impl HttpServer {
    /// Listens on `addr` (port 8667 for phones) to serve `source`.
    pub async fn bind(
        addr: SocketAddr,
        source: Arc<dyn FileSource>,
        config: HttpConfig,
    ) -> io::Result<Self> {
        Ok(Self {
            listener: TcpListener::bind(addr).await?,
            source,
            config,
            active: Arc::new(AtomicUsize::new(0)),
            missing: Arc::new(MissingLog::default()),
            hook: None,
        })
    }

    /// Sets the hook called with each accepted request and its `User-Agent`.
    #[must_use]
    pub fn with_hook(mut self, hook: RequestHook) -> Self {
        self.hook = Some(hook);
        self
    }

    /// The address listened on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The requests for missing files.
    pub fn missing(&self) -> &MissingLog {
        &self.missing
    }

    /// Serves connections until accepting fails for another reason than a transient
    /// one. Connections run in tasks of the current tokio runtime.
    pub async fn run(&self) -> io::Result<()> {
        loop {
            let (mut stream, peer) = match self.listener.accept().await {
                Ok(c) => c,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionAborted
                            | io::ErrorKind::ConnectionReset
                            | io::ErrorKind::Interrupted
                    ) =>
                {
                    continue;
                }
                Err(e) => return Err(e),
            };
            let taken = self
                .active
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    (n < self.config.max_connections).then_some(n + 1)
                });
            let write_timeout = self.config.write_timeout;
            if taken.is_err() {
                tokio::spawn(async move {
                    let reply = respond(&mut stream, 503, "Service Unavailable", None, false);
                    let _ = timeout(write_timeout, reply).await;
                });
                continue;
            }
            let slot = Slot(Arc::clone(&self.active));
            let conn = Conn {
                peer,
                source: Arc::clone(&self.source),
                config: self.config.clone(),
                missing: Arc::clone(&self.missing),
                hook: self.hook.clone(),
            };
            tokio::spawn(async move {
                let _slot = slot;
                if let Err(e) = conn.serve(stream).await {
                    tracing::debug!(%peer, error = %e, "HTTP connection failed");
                }
            });
        }
    }
}

/// Writes a response (a body only if `body` is given and `head_only` is false) and
/// closes the sending side.
async fn respond(
    stream: &mut TcpStream,
    status: u16,
    reason: &str,
    body: Option<&[u8]>,
    head_only: bool,
) -> io::Result<()> {
    let len = body.map_or(0, <[u8]>::len);
    let mut head =
        format!("HTTP/1.1 {status} {reason}\r\nContent-Length: {len}\r\nConnection: close\r\n");
    if status == 405 {
        head.push_str("Allow: GET, HEAD\r\n");
    }
    if body.is_some() {
        head.push_str("Content-Type: application/octet-stream\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    if let (Some(body), false) = (body, head_only) {
        stream.write_all(body).await?;
    }
    stream.shutdown().await?;
    drain(stream).await;
    Ok(())
}

/// Reads what the client still sends (at most 64 KiB, for at most 1 s) before the
/// connection is dropped: closing with unread data would reset the connection and
/// could discard the response before the client reads it.
async fn drain(stream: &mut TcpStream) {
    let mut buf = [0; 4096];
    let mut total = 0;
    let _ = timeout(Duration::from_secs(1), async {
        while total < 64 * 1024 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    })
    .await;
}

/// Answers with an empty body, within `write`.
async fn reply(
    stream: &mut TcpStream,
    write: Duration,
    status: u16,
    reason: &str,
) -> io::Result<()> {
    match timeout(write, respond(stream, status, reason, None, false)).await {
        Ok(r) => r,
        Err(_) => Ok(()),
    }
}

impl Conn {
    /// Reads the request head, within the read timeout: `Ok(None)` on a timeout or an
    /// early close.
    async fn read_head(
        &self,
        stream: &mut TcpStream,
    ) -> io::Result<Option<Result<RequestHead, HttpError>>> {
        let mut buf = vec![0; MAX_HEAD];
        let mut len = 0;
        let read = async {
            loop {
                let free = buf.get_mut(len..).unwrap_or_default();
                if free.is_empty() {
                    return Ok(Some(Err(HttpError::TooLong)));
                }
                let n = stream.read(free).await?;
                if n == 0 {
                    return Ok(None);
                }
                // Only the new bytes (and the 3 before) can complete the terminator.
                let from = len.saturating_sub(3);
                len += n;
                let filled = buf.get(from..len).unwrap_or_default();
                if let Some(end) = head_len(filled) {
                    let head = buf.get(..from + end).unwrap_or_default();
                    return Ok(Some(parse_head(head)));
                }
            }
        };
        match timeout(self.config.read_timeout, read).await {
            Ok(r) => r,
            Err(_) => Ok(None),
        }
    }

    async fn serve(self, mut stream: TcpStream) -> io::Result<()> {
        let Some(head) = self.read_head(&mut stream).await? else {
            return Ok(());
        };
        let write = self.config.write_timeout;
        let stream = &mut stream;
        let head = match head {
            Ok(head) => head,
            Err(HttpError::TooLong) => {
                return reply(stream, write, 431, "Request Header Fields Too Large").await;
            }
            Err(e) => {
                tracing::debug!(peer = %self.peer, error = %e, "malformed HTTP request");
                return reply(stream, write, 400, "Bad Request").await;
            }
        };
        let head_only = match head.method.as_str() {
            "GET" => false,
            "HEAD" => true,
            _ => return reply(stream, write, 405, "Method Not Allowed").await,
        };
        if head.path.is_empty() {
            return reply(stream, write, 404, "Not Found").await;
        }
        if let Err(e) = check_path(&head.path) {
            tracing::info!(peer = %self.peer, path = head.path, reason = %e, "HTTP access violation");
            return reply(stream, write, 403, "Forbidden").await;
        }
        if let Some(hook) = &self.hook {
            hook(RequestInfo {
                peer: self.peer,
                path: &head.path,
                user_agent: head.user_agent.as_deref(),
            });
        }
        let source = Arc::clone(&self.source);
        let name = head.path.clone();
        let content = tokio::task::spawn_blocking(move || source.get(&name))
            .await
            .map_err(io::Error::other)?;
        let Some(content) = content else {
            self.missing.record(self.peer.ip(), &head.path, "http");
            return reply(stream, write, 404, "Not Found").await;
        };
        let send = respond(stream, 200, "OK", Some(&content), head_only);
        match timeout(write, send).await {
            Ok(r) => r,
            Err(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_phone_request() {
        let head = parse_head(
            b"GET /001565aabbcc.cfg?x=1 HTTP/1.1\r\nHost: pbx\r\nUser-Agent:  Yealink SIP-T46S 66.84.0.15 00:15:65:aa:bb:cc \r\n\r\n",
        )
        .unwrap();
        assert_eq!(head.method, "GET");
        assert_eq!(head.path, "001565aabbcc.cfg");
        assert_eq!(
            head.user_agent.as_deref(),
            Some("Yealink SIP-T46S 66.84.0.15 00:15:65:aa:bb:cc")
        );
        let head = parse_head(b"HEAD /a%20b HTTP/1.0\r\n\r\n").unwrap();
        assert_eq!((head.method.as_str(), head.path.as_str()), ("HEAD", "a b"));
        assert_eq!(head.user_agent, None);
        // Decoded before the path check: `%2e%2e/x` is `../x`.
        assert_eq!(
            parse_head(b"GET /%2e%2e/x HTTP/1.1\r\n\r\n").unwrap().path,
            "../x"
        );
    }

    #[test]
    fn refuses_malformed_heads() {
        for (bad, why) in [
            (&b"GET /a HTTP/1.1\r\n"[..], HttpError::Incomplete),
            (b"GET /a\r\n\r\n", HttpError::RequestLine { offset: 0 }),
            (
                b"GET  /a HTTP/1.1\r\n\r\n",
                HttpError::RequestLine { offset: 0 },
            ),
            (
                b"GET /a HTTP/2\r\n\r\n",
                HttpError::RequestLine { offset: 7 },
            ),
            (
                b"G(T /a HTTP/1.1\r\n\r\n",
                HttpError::RequestLine { offset: 0 },
            ),
            (b"GET a HTTP/1.1\r\n\r\n", HttpError::Target),
            (b"GET http://x/a HTTP/1.1\r\n\r\n", HttpError::Target),
            (b"GET /%zz HTTP/1.1\r\n\r\n", HttpError::Target),
            (b"GET /%ff HTTP/1.1\r\n\r\n", HttpError::Target),
            (b"GET /% HTTP/1.1\r\n\r\n", HttpError::Target),
            (
                b"GET /a HTTP/1.1\r\nNoColon\r\n\r\n",
                HttpError::Header { offset: 17 },
            ),
            (
                b"GET /a HTTP/1.1\r\nA: b\r\n folded\r\n\r\n",
                HttpError::Header { offset: 23 },
            ),
            (
                b"GET /a HTTP/1.1\r\nA : b\r\n\r\n",
                HttpError::Header { offset: 17 },
            ),
        ] {
            assert_eq!(
                parse_head(bad),
                Err(why),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let many = format!(
            "GET /a HTTP/1.1\r\n{}\r\n",
            "A: b\r\n".repeat(MAX_HEADERS + 1)
        );
        assert_eq!(parse_head(many.as_bytes()), Err(HttpError::TooManyHeaders));
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_HEAD));
        assert_eq!(parse_head(long.as_bytes()), Err(HttpError::TooLong));
        assert!(parse_head(b"GET /a HTTP/1.1\r\nA: \xff\r\n\r\n").is_err());
    }

    proptest::proptest! {
        #[test]
        fn parse_head_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = parse_head(&bytes);
            let mut head = b"GET /".to_vec();
            head.extend_from_slice(&bytes);
            head.extend_from_slice(b" HTTP/1.1\r\n\r\n");
            if let Ok(h) = parse_head(&head) {
                proptest::prop_assert!(h.path.len() <= bytes.len());
            }
        }
    }
}
