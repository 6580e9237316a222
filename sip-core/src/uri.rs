//! URIs: `sip:`/`sips:` (RFC 3261 §19.1), `tel:` (RFC 3966), and any other absolute URI
//! kept as text. Escaped forms are kept as received; [`unescape`] decodes them.
//!
//! ```
//! use pbxkit_sip::{Host, Uri, unescape};
//!
//! let uri = Uri::parse("sip:alice%20smith@Atlanta.example.com:5061;transport=TCP;lr")?;
//! let sip = uri.as_sip().ok_or("a SIP URI")?;
//! assert_eq!(sip.user.as_deref(), Some("alice%20smith"));
//! assert_eq!(sip.user_unescaped().as_deref(), Some(&b"alice smith"[..]));
//! assert_eq!(sip.host, Host::Name("Atlanta.example.com".into()));
//! assert_eq!(sip.port, Some(5061));
//! assert_eq!(sip.transport().as_deref(), Some("tcp"));
//! assert_eq!(sip.params.get("lr"), Some(None));
//! // Written back as received.
//! assert_eq!(uri.to_string(), "sip:alice%20smith@Atlanta.example.com:5061;transport=TCP;lr");
//!
//! // RFC 3261 §19.1.4: host and transport compare without case, escapes decoded.
//! let same = Uri::parse("sip:alice%20smith@atlanta.example.com:5061;transport=tcp;lr")?;
//! assert!(uri.equivalent(&same));
//! assert!(!uri.equivalent(&Uri::parse("sip:alice%20smith@atlanta.example.com")?));
//!
//! // tel: numbers compare without their visual separators.
//! let Uri::Tel(tel) = Uri::parse("tel:+33-1-23-45-67-89")? else { return Err("a tel URI".into()) };
//! assert!(tel.is_global());
//! assert_eq!(tel.digits(), "+33123456789");
//! assert_eq!(unescape("%2B33"), &b"+33"[..]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::bytestr::{Build, ByteStr};
use crate::error::{ErrorKind, ParseError, Part, ValueError};
use crate::params::Params;
use crate::scan::{Cursor, sub};
use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A URI as found in a Request-URI or a name-addr.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Uri {
    /// `sip:` or `sips:`.
    Sip(SipUri),
    /// `tel:`.
    Tel(TelUri),
    /// Any other scheme (`http:`, `urn:`...), kept as received.
    Other(ByteStr),
}

/// A `sip:` or `sips:` URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri {
    /// `sips:` rather than `sip:`.
    pub secure: bool,
    /// The user part, escaped as received (see [`SipUri::user_unescaped`]).
    pub user: Option<ByteStr>,
    /// The password part, escaped as received (deprecated by RFC 3261 but legal).
    pub password: Option<ByteStr>,
    /// The host.
    pub host: Host,
    /// The port, when given.
    pub port: Option<u16>,
    /// URI parameters (`;transport=tcp;lr`).
    pub params: Params,
    /// URI headers (`?Replaces=...&Subject=...`), names and values escaped.
    pub headers: Params,
}

/// A host: a name, an IPv4 address or an IPv6 reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A domain name, as received (compare with [`Host::eq_ignore_case`]).
    Name(ByteStr),
    /// An IP address (IPv6 is written in brackets).
    Ip(IpAddr),
}

/// A `tel:` URI (RFC 3966).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelUri {
    /// The number with its visual separators (`+33-1-23-45-67-89`).
    pub number: ByteStr,
    /// Parameters (`;phone-context=...`, `;ext=...`).
    pub params: Params,
}

impl Host {
    /// Parses a host: `[v6]`, dotted IPv4 or a host name.
    pub(crate) fn parse_str(s: &str, build: Build<'_>) -> Option<Host> {
        if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            return inner
                .parse::<Ipv6Addr>()
                .ok()
                .map(|a| Host::Ip(IpAddr::V6(a)));
        }
        if s.as_bytes().first()?.is_ascii_digit()
            && let Some(a) = parse_ipv4(s.as_bytes())
        {
            return Some(Host::Ip(IpAddr::V4(a)));
        }
        let mut numeric = true;
        for b in s.bytes() {
            if !crate::scan::is(b, crate::scan::HOST) {
                return None;
            }
            numeric &= b.is_ascii_digit() || b == b'.';
        }
        if numeric {
            // All digits and dots but not an IPv4 address: a top label can't be numeric.
            return None;
        }
        // Lenient about `_`: real deployments use it in host names.
        (!s.starts_with('.') && !s.starts_with('-')).then(|| Host::Name(build.slice(s)))
    }
    /// Compares hosts as RFC 3261 §19.1.4 says: names case-insensitively, addresses by value.
    pub fn eq_ignore_case(&self, other: &Host) -> bool {
        match (self, other) {
            (Host::Name(a), Host::Name(b)) => a.eq_ignore_ascii_case(b),
            (Host::Ip(a), Host::Ip(b)) => a == b,
            _ => false,
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(name) => f.write_str(name),
            Host::Ip(IpAddr::V4(a)) => write!(f, "{a}"),
            Host::Ip(IpAddr::V6(a)) => write!(f, "[{a}]"),
        }
    }
}

/// A dotted-quad IPv4 address as `Ipv4Addr::from_str` accepts it (four decimal octets,
/// no leading zeros), without its general-purpose parser's overhead.
fn parse_ipv4(s: &[u8]) -> Option<Ipv4Addr> {
    fn digit(b: &u8) -> Option<u16> {
        b.is_ascii_digit().then(|| u16::from(b - b'0'))
    }
    let mut octets = [0u8; 4];
    let mut i = 0;
    for (n, octet) in octets.iter_mut().enumerate() {
        if n > 0 {
            if s.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
        // One to three digits; a leading zero stands alone ("01" is refused).
        let mut value = digit(s.get(i)?)?;
        i += 1;
        if value != 0 {
            for _ in 0..2 {
                let Some(d) = s.get(i).and_then(digit) else {
                    break;
                };
                value = value * 10 + d;
                i += 1;
            }
        }
        *octet = u8::try_from(value).ok()?;
    }
    (i == s.len()).then_some(Ipv4Addr::from(octets))
}

fn is_unreserved(b: u8) -> bool {
    crate::scan::is(b, crate::scan::UNRESERVED)
}

/// Checks that `s` only has bytes allowed by `allowed` or well-formed `%HH` escapes.
fn check_escaped(s: &str, allowed: impl Fn(u8) -> bool) -> Result<(), usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let ok = b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
            if !ok {
                return Err(i);
            }
            i += 3;
        } else if allowed(b[i]) {
            i += 1;
        } else {
            return Err(i);
        }
    }
    Ok(())
}

/// Decodes `%HH` escapes. Malformed escapes are kept literally. The result may hold
/// any byte, NUL included (RFC 4475 §3.1.1.4).
pub fn unescape(s: &str) -> Cow<'_, [u8]> {
    if !s.contains('%') {
        return Cow::Borrowed(s.as_bytes());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |j: usize| b.get(j).and_then(|c| (*c as char).to_digit(16));
        match (b[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(h), Some(l)) => {
                // Two hex digits make at most 0xFF.
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    Cow::Owned(out)
}

impl Uri {
    /// Parses a URI on its own (e.g. from configuration).
    pub fn parse(s: &str) -> Result<Uri, ParseError> {
        let base = ByteStr::from(s);
        Uri::parse_bytestr(&base).map_err(|e| e.into_parse(ErrorKind::InvalidHeader, Part::Uri, 0))
    }

    /// Parses a URI that fills `base` entirely, sharing its buffer.
    pub(crate) fn parse_bytestr(base: &ByteStr) -> Result<Uri, ValueError> {
        Uri::parse_in(base.as_str(), Build::Into(base))
    }

    /// Parses a URI that fills `s`, building its parts as `build` says.
    pub(crate) fn parse_in(s: &str, build: Build<'_>) -> Result<Uri, ValueError> {
        // Nearly every URI is a `sip:` one: the general path below gives the same
        // result for it, with more work.
        if let Some(rest) = s.strip_prefix("sip:") {
            return SipUri::parse_after_scheme(rest, build, false)
                .map(Uri::Sip)
                .map_err(|e| ValueError::new(e.element, e.offset + 4));
        }
        // Byte loops rather than `str::find` here and below: URIs are short, and the
        // scheme's colon comes after a few bytes.
        let colon = s
            .bytes()
            .position(|b| b == b':')
            .ok_or(ValueError::new("URI scheme", 0))?;
        let scheme = sub(s, 0, colon);
        let valid_scheme = scheme
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic())
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
        if !valid_scheme {
            return Err(ValueError::new("URI scheme", 0));
        }
        let rest = sub(s, colon + 1, s.len());
        let at = colon + 1;
        if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") {
            let secure = scheme.len() == 4;
            SipUri::parse_after_scheme(rest, build, secure)
                .map(Uri::Sip)
                .map_err(|e| ValueError::new(e.element, e.offset + at))
        } else if scheme.eq_ignore_ascii_case("tel") {
            TelUri::parse_after_scheme(rest, build)
                .map(Uri::Tel)
                .map_err(|e| ValueError::new(e.element, e.offset + at))
        } else {
            // Opaque: anything but white space, brackets and quotes.
            let bad = rest
                .bytes()
                .position(|b| b <= b' ' || matches!(b, b'<' | b'>' | b'"') || b == 0x7f);
            match bad {
                Some(i) => Err(ValueError::new("URI", at + i)),
                None if rest.is_empty() => Err(ValueError::new("URI", at)),
                None => Ok(Uri::Other(build.slice(s))),
            }
        }
    }

    /// The SIP URI, if this is one.
    pub fn as_sip(&self) -> Option<&SipUri> {
        match self {
            Uri::Sip(u) => Some(u),
            _ => None,
        }
    }

    /// RFC 3261 §19.1.4 equality for SIP URIs; tel URIs compare numbers without visual
    /// separators and parameters as sets; other URIs compare as text.
    pub fn equivalent(&self, other: &Uri) -> bool {
        match (self, other) {
            (Uri::Sip(a), Uri::Sip(b)) => a.equivalent(b),
            (Uri::Tel(a), Uri::Tel(b)) => a.equivalent(b),
            (Uri::Other(a), Uri::Other(b)) => a == b,
            _ => false,
        }
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Uri::Sip(u) => u.fmt(f),
            Uri::Tel(u) => u.fmt(f),
            Uri::Other(u) => f.write_str(u),
        }
    }
}

impl SipUri {
    /// A `sip:user@host` URI.
    pub fn new(user: Option<&str>, host: Host) -> SipUri {
        SipUri {
            secure: false,
            user: user.map(ByteStr::from),
            password: None,
            host,
            port: None,
            params: Params::new(),
            headers: Params::new(),
        }
    }

    fn parse_after_scheme(s: &str, build: Build<'_>, secure: bool) -> Result<SipUri, ValueError> {
        // No unescaped '@' may appear in user, password, params or headers, so the first
        // one ends the userinfo.
        let (user, password, host_start) = match s.bytes().position(|b| b == b'@') {
            Some(at) => {
                let userinfo = sub(s, 0, at);
                let (user, password) = match userinfo.bytes().position(|b| b == b':') {
                    Some(c) => (
                        sub(userinfo, 0, c),
                        Some(sub(userinfo, c + 1, userinfo.len())),
                    ),
                    None => (userinfo, None),
                };
                if user.is_empty() {
                    return Err(ValueError::new("URI user", 0));
                }
                check_escaped(user, |b| {
                    is_unreserved(b)
                        || matches!(b, b'&' | b'=' | b'+' | b'$' | b',' | b';' | b'?' | b'/')
                })
                .map_err(|i| ValueError::new("URI user", i))?;
                if let Some(p) = password {
                    check_escaped(p, |b| {
                        is_unreserved(b) || matches!(b, b'&' | b'=' | b'+' | b'$' | b',')
                    })
                    .map_err(|i| ValueError::new("URI password", user.len() + 1 + i))?;
                }
                (
                    Some(build.slice(user)),
                    password.map(|p| build.slice(p)),
                    at + 1,
                )
            }
            None => (None, None, 0),
        };
        let mut c = Cursor::new(s);
        c.set_pos(host_start);
        let host_text = if c.peek() == Some(b'[') {
            let t = c.take_while(|b| b != b']');
            if !c.eat(b']') {
                return Err(ValueError::new("IPv6 reference", host_start));
            }
            sub(s, host_start, host_start + t.len() + 1)
        } else {
            c.take_while(|b| crate::scan::is(b, crate::scan::HOST))
        };
        let host =
            Host::parse_str(host_text, build).ok_or(ValueError::new("URI host", host_start))?;
        let port = if c.eat(b':') {
            let at = c.pos();
            let n = c.number(u64::from(u16::MAX), "URI port")?;
            Some(u16::try_from(n).map_err(|_| ValueError::new("URI port", at))?)
        } else {
            None
        };
        let mut params = Params::new();
        while c.eat(b';') {
            let at = c.pos();
            let name = c.take_while(|b| b != b'=' && b != b';' && b != b'?');
            let value = if c.eat(b'=') {
                Some(c.take_while(|b| b != b';' && b != b'?'))
            } else {
                None
            };
            let paramchar =
                |b| is_unreserved(b) || matches!(b, b'[' | b']' | b'/' | b':' | b'&' | b'+' | b'$');
            if name.is_empty() {
                return Err(ValueError::new("URI parameter", at));
            }
            check_escaped(name, paramchar).map_err(|i| ValueError::new("URI parameter", at + i))?;
            if let Some(v) = value {
                check_escaped(v, paramchar)
                    .map_err(|i| ValueError::new("URI parameter value", at + i))?;
            }
            build.push_param(&mut params, name, value);
        }
        let mut headers = Params::new();
        if c.eat(b'?') {
            loop {
                let at = c.pos();
                let name = c.take_while(|b| b != b'=' && b != b'&');
                if !c.eat(b'=') || name.is_empty() {
                    return Err(ValueError::new("URI header", at));
                }
                let value = c.take_while(|b| b != b'&');
                let hchar = |b| {
                    is_unreserved(b) || matches!(b, b'[' | b']' | b'/' | b'?' | b':' | b'+' | b'$')
                };
                check_escaped(name, hchar).map_err(|i| ValueError::new("URI header", at + i))?;
                check_escaped(value, hchar)
                    .map_err(|i| ValueError::new("URI header value", at + i))?;
                build.push_param(&mut headers, name, Some(value));
                if !c.eat(b'&') {
                    break;
                }
            }
        }
        if !c.at_end() {
            return Err(c.error("URI"));
        }
        Ok(SipUri {
            secure,
            user,
            password,
            host,
            port,
            params,
            headers,
        })
    }

    /// The user part with escapes decoded (may contain any byte).
    pub fn user_unescaped(&self) -> Option<Cow<'_, [u8]>> {
        self.user.as_deref().map(unescape)
    }

    /// The `transport` parameter, lower-cased.
    pub fn transport(&self) -> Option<String> {
        self.params
            .get("transport")
            .flatten()
            .map(str::to_ascii_lowercase)
    }

    /// RFC 3261 §19.1.4 comparison.
    pub fn equivalent(&self, other: &SipUri) -> bool {
        if self.secure != other.secure
            || self.port != other.port
            || !self.host.eq_ignore_case(&other.host)
        {
            return false;
        }
        // User and password: case-sensitive, escapes decoded.
        fn un(u: &Option<ByteStr>) -> Option<Cow<'_, [u8]>> {
            u.as_deref().map(unescape)
        }
        if un(&self.user) != un(&other.user) || un(&self.password) != un(&other.password) {
            return false;
        }
        // user, ttl, method, maddr and transport must match when either has them;
        // other parameters only when both have them.
        let value = |p: &Params, n: &str| {
            p.get(n)
                .map(|v| v.map(|v| unescape(v).to_ascii_lowercase()))
        };
        for name in ["user", "ttl", "method", "maddr", "transport"] {
            if value(&self.params, name) != value(&other.params, name) {
                return false;
            }
        }
        for p in self.params.iter() {
            if other.params.contains(&p.name)
                && value(&self.params, &p.name) != value(&other.params, &p.name)
            {
                return false;
            }
        }
        // Headers: the same set on both sides (a repeated header counts each time).
        fn headers(p: &Params) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
            let mut v: Vec<_> = p
                .iter()
                .map(|h| {
                    (
                        unescape(&h.name).to_ascii_lowercase(),
                        h.value.as_deref().map(|v| unescape(v).into_owned()),
                    )
                })
                .collect();
            v.sort();
            v
        }
        headers(&self.headers) == headers(&other.headers)
    }
}

impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.secure { "sips:" } else { "sip:" })?;
        if let Some(user) = &self.user {
            f.write_str(user)?;
            if let Some(pw) = &self.password {
                write!(f, ":{pw}")?;
            }
            f.write_str("@")?;
        }
        write!(f, "{}", self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        write!(f, "{}", self.params)?;
        for (i, h) in self.headers.iter().enumerate() {
            let sep = if i == 0 { '?' } else { '&' };
            write!(f, "{sep}{}={}", h.name, h.value.as_deref().unwrap_or(""))?;
        }
        Ok(())
    }
}

impl TelUri {
    fn parse_after_scheme(s: &str, build: Build<'_>) -> Result<TelUri, ValueError> {
        let mut c = Cursor::new(s);
        let number = c.take_while(|b| {
            b.is_ascii_hexdigit() || matches!(b, b'+' | b'-' | b'.' | b'(' | b')' | b'*' | b'#')
        });
        let digits = number
            .bytes()
            .filter(|b| b.is_ascii_hexdigit() || matches!(b, b'*' | b'#'))
            .count();
        if digits == 0
            || (number.starts_with('+') && !number[1..].bytes().any(|b| b.is_ascii_digit()))
        {
            return Err(ValueError::new("telephone number", 0));
        }
        let mut params = Params::new();
        while c.eat(b';') {
            let at = c.pos();
            let name = c.take_while(|b| b != b'=' && b != b';');
            let value = if c.eat(b'=') {
                Some(c.take_while(|b| b != b';'))
            } else {
                None
            };
            let pchar =
                |b| is_unreserved(b) || matches!(b, b'[' | b']' | b'/' | b':' | b'&' | b'+' | b'$');
            if name.is_empty() {
                return Err(ValueError::new("tel parameter", at));
            }
            check_escaped(name, pchar).map_err(|i| ValueError::new("tel parameter", at + i))?;
            if let Some(v) = value {
                check_escaped(v, pchar)
                    .map_err(|i| ValueError::new("tel parameter value", at + i))?;
            }
            build.push_param(&mut params, name, value);
        }
        if !c.at_end() {
            return Err(c.error("tel URI"));
        }
        Ok(TelUri {
            number: build.slice(number),
            params,
        })
    }

    /// Whether the number is global (`+` and country code).
    pub fn is_global(&self) -> bool {
        self.number.starts_with('+')
    }

    /// The number without visual separators (`+33123456789`).
    pub fn digits(&self) -> String {
        self.number
            .chars()
            .filter(|c| !matches!(c, '-' | '.' | '(' | ')'))
            .collect()
    }

    /// RFC 3966 §4 comparison: numbers without separators, parameters as sets
    /// (names and values case-insensitive; a repeated parameter counts each time).
    pub fn equivalent(&self, other: &TelUri) -> bool {
        fn normalised(params: &Params) -> Vec<(String, Option<String>)> {
            let mut v: Vec<_> = params
                .iter()
                .map(|p| {
                    (
                        p.name.to_ascii_lowercase(),
                        p.value.as_deref().map(str::to_ascii_lowercase),
                    )
                })
                .collect();
            v.sort();
            v
        }
        self.digits().eq_ignore_ascii_case(&other.digits())
            && normalised(&self.params) == normalised(&other.params)
    }
}

impl fmt::Display for TelUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tel:{}{}", self.number, self.params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn ipv4_agrees_with_std(s in "[0-9.]{0,17}") {
            proptest::prop_assert_eq!(parse_ipv4(s.as_bytes()), s.parse::<Ipv4Addr>().ok());
        }
    }

    #[test]
    fn ipv4_edge_cases_agree_with_std() {
        for s in [
            "0.0.0.0",
            "255.255.255.255",
            "256.0.0.1",
            "01.2.3.4",
            "1.2.3",
            "1.2.3.4.",
            "1..2.3",
            "1.2.3.4.5",
            "999.1.1.1",
            "0.00.0.0",
        ] {
            assert_eq!(parse_ipv4(s.as_bytes()), s.parse::<Ipv4Addr>().ok(), "{s}");
        }
    }

    fn sip(s: &str) -> SipUri {
        match Uri::parse(s).unwrap() {
            Uri::Sip(u) => u,
            other => panic!("not sip: {other:?}"),
        }
    }

    #[test]
    fn full_sip_uri() {
        let u =
            sip("sips:alice:secret@Example.COM:5061;transport=tcp;lr?Subject=hi&Priority=urgent");
        assert!(u.secure);
        assert_eq!(u.user.as_deref(), Some("alice"));
        assert_eq!(u.password.as_deref(), Some("secret"));
        assert_eq!(u.host, Host::Name("Example.COM".into()));
        assert_eq!(u.port, Some(5061));
        assert_eq!(u.transport().as_deref(), Some("tcp"));
        assert_eq!(u.params.get("lr"), Some(None));
        assert_eq!(u.headers.get("Priority"), Some(Some("urgent")));
        assert_eq!(
            u.to_string(),
            "sips:alice:secret@Example.COM:5061;transport=tcp;lr?Subject=hi&Priority=urgent"
        );
    }

    #[test]
    fn torture_user_parts() {
        // RFC 4475 §3.1.1.2: user with many reserved characters and a password.
        let u = sip(
            "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com",
        );
        assert_eq!(
            u.user.as_deref(),
            Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
        );
        assert_eq!(
            u.password.as_deref(),
            Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
        );
        // §3.1.1.9: semicolons in the user part.
        let u = sip("sip:user;par=u%40example.net@example.com");
        assert_eq!(u.user.as_deref(), Some("user;par=u%40example.net"));
        assert!(u.params.is_empty());
        // §3.1.1.3 and §3.1.1.4: escapes, NUL included.
        let u = sip("sip:sips%3Auser%40example.com@example.net");
        assert_eq!(&*u.user_unescaped().unwrap(), b"sips:user@example.com");
        let u = sip("sip:null-%00-null@example.com");
        assert_eq!(&*u.user_unescaped().unwrap(), b"null-\0-null");
    }

    #[test]
    fn ipv6_references() {
        let u = sip("sip:[2001:db8::10]:5070");
        assert_eq!(u.host, Host::Ip("2001:db8::10".parse().unwrap()));
        assert_eq!(u.port, Some(5070));
        // RFC 5118 §4.4: no port, the last group is part of the address.
        let u = sip("sip:user@[2001:db8::10:5070]");
        assert_eq!(u.port, None);
        assert!(Uri::parse("sip:user@2001:db8::10").is_err());
        assert!(Uri::parse("sip:[2001:db8::10").is_err());
        assert!(Uri::parse("sip:user@[2001:db8::10]x").is_err());
    }

    #[test]
    fn rejects_bad_uris() {
        for bad in [
            "sip:",
            "sip:@host",
            "sip:user@",
            "sip:host:99999",
            "sip:ho st",
            "sip:a@b;",
            "sip:a@b?x",
            "1sip:x",
            "tel:",
            "tel:+",
            "sip:us%zzer@host",
            "sip:host;p=%4",
        ] {
            assert!(Uri::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn comparison_rules_of_19_1_4() {
        let eq = |a: &str, b: &str| Uri::parse(a).unwrap().equivalent(&Uri::parse(b).unwrap());
        // Equivalent pairs from RFC 3261 §19.1.4.
        assert!(eq(
            "sip:%61lice@atlanta.com;transport=TCP",
            "sip:alice@AtLanTa.CoM;Transport=tcp"
        ));
        assert!(eq(
            "sip:carol@chicago.com",
            "sip:carol@chicago.com;newparam=5"
        ));
        assert!(eq(
            "sip:carol@chicago.com;security=on",
            "sip:carol@chicago.com;newparam=5"
        ));
        assert!(eq(
            "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
            "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com"
        ));
        assert!(eq(
            "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
            "sip:alice@atlanta.com?priority=urgent&subject=project%20x"
        ));
        // Non-equivalent pairs.
        assert!(!eq(
            "SIP:ALICE@AtLanTa.CoM;Transport=udp",
            "sip:alice@AtLanTa.CoM;Transport=UDP"
        ));
        assert!(!eq("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"));
        assert!(!eq(
            "sip:bob@biloxi.com",
            "sip:bob@biloxi.com;transport=udp"
        ));
        assert!(!eq(
            "sip:bob@biloxi.com",
            "sip:bob@biloxi.com:6000;transport=tcp"
        ));
        assert!(!eq(
            "sip:carol@chicago.com",
            "sip:carol@chicago.com?Subject=next%20meeting"
        ));
        assert!(!eq("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"));
        assert!(!eq(
            "sip:carol@chicago.com;security=on",
            "sip:carol@chicago.com;security=off"
        ));
    }

    #[test]
    fn tel_uris() {
        let Uri::Tel(t) = Uri::parse("tel:+33-1-23-45-67-89;ext=12").unwrap() else {
            panic!()
        };
        assert!(t.is_global());
        assert_eq!(t.digits(), "+33123456789");
        assert_eq!(t.params.get("ext"), Some(Some("12")));
        assert!(
            Uri::parse("tel:+331.23.45.67.89;ext=12")
                .unwrap()
                .equivalent(&Uri::parse("tel:+33123456789;EXT=12").unwrap())
        );
        let Uri::Tel(local) = Uri::parse("tel:7042;phone-context=example.com").unwrap() else {
            panic!()
        };
        assert!(!local.is_global());
    }

    #[test]
    fn other_schemes_are_kept() {
        assert_eq!(
            Uri::parse("soap.beep://192.0.2.103:3002").unwrap(),
            Uri::Other("soap.beep://192.0.2.103:3002".into())
        );
        assert!(matches!(
            Uri::parse("urn:service:sos").unwrap(),
            Uri::Other(_)
        ));
    }
}
