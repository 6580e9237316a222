//! Typed values of the simpler headers: CSeq, Call-ID, numbers, tokens, media types,
//! authentication, session timers, events, Replaces, Reason, Privacy, Date, Timestamp.
//!
//! Each is read with [`Headers::typed`](crate::Headers::typed) (or
//! [`typed_all`](crate::Headers::typed_all) for every element of a list header):
//!
//! ```
//! use pbxkit_sip::{HeaderName, MediaType, Message, Parameterised, Privacy, Replaces, SipDate, Token};
//!
//! let invite = Message::parse(
//!     "INVITE sip:1001@pbx.example.com SIP/2.0\r\n\
//!      Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKv1\r\nMax-Forwards: 70\r\n\
//!      From: <sip:1002@pbx.example.com>;tag=a1\r\nTo: <sip:1001@pbx.example.com>\r\n\
//!      Call-ID: v-1@192.0.2.1\r\nCSeq: 7 INVITE\r\n\
//!      Supported: timer, replaces\r\nSession-Expires: 1800;refresher=uac\r\n\
//!      Replaces: 98asjd8@192.0.2.9;to-tag=12345;from-tag=54321;early-only\r\n\
//!      Privacy: id;header\r\nDate: Sat, 13 Nov 2010 23:29:00 GMT\r\n\
//!      Content-Type: application/SDP\r\nContent-Length: 0\r\n\r\n",
//! )?;
//! let h = invite.headers();
//! assert_eq!(invite.cseq()?.seq, 7);
//! let supported: Vec<Token> = h.typed_all(&HeaderName::Supported).collect::<Result<_, _>>()?;
//! assert!(supported.iter().any(|t| t.0 == "timer"));
//!
//! let timer: Parameterised = h.typed(&HeaderName::SessionExpires).ok_or("none")??;
//! assert_eq!(timer.number(), Some(1800));
//! assert_eq!(timer.param("refresher").as_deref(), Some("uac"));
//!
//! let replaces: Replaces = h.typed(&HeaderName::Replaces).ok_or("none")??;
//! assert_eq!((&*replaces.call_id, &*replaces.to_tag), ("98asjd8@192.0.2.9", "12345"));
//! assert!(replaces.early_only);
//!
//! let privacy: Privacy = h.typed(&HeaderName::Privacy).ok_or("none")??;
//! assert!(privacy.contains("id"));
//! let date: SipDate = h.typed(&HeaderName::Date).ok_or("none")??;
//! assert_eq!((date.year, date.month, date.day), (2010, 11, 13));
//! let kind: MediaType = h.typed(&HeaderName::ContentType).ok_or("none")??;
//! assert!(kind.is("application", "sdp"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::bytestr::{Build, ByteStr};
use crate::error::ValueError;
use crate::headers::HeaderValue;
use crate::method::Method;
use crate::params::{Params, parse_header_params, unquote_value};
use crate::scan::{Cursor, is_token, sub};
use std::fmt;

/// `CSeq: 4711 INVITE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    /// Sequence number, below 2^31 (RFC 3261 §8.1.1.5).
    pub seq: u32,
    /// The method.
    pub method: Method,
}

/// The largest CSeq number RFC 3261 allows.
pub const MAX_CSEQ: u32 = (1 << 31) - 1;

impl CSeq {
    /// The number and the method's text of a CSeq value.
    pub(crate) fn scan(value: &str) -> Result<(u32, &str), ValueError> {
        let mut c = Cursor::new(value);
        let seq = c.number(u64::from(MAX_CSEQ), "CSeq number")?;
        if !c.skip_lws() {
            return Err(c.error("CSeq method"));
        }
        let method = c.token("CSeq method")?;
        c.end("CSeq")?;
        // Bounded by MAX_CSEQ above.
        Ok((u32::try_from(seq).unwrap_or(MAX_CSEQ), method))
    }
}

impl HeaderValue for CSeq {
    fn parse_value(value: &ByteStr) -> Result<CSeq, ValueError> {
        let (seq, method) = CSeq::scan(value)?;
        Ok(CSeq {
            seq,
            method: Method::from_str_in(value, method),
        })
    }
}

impl crate::headers::CheckValue for CSeq {
    fn check_value(value: &str) -> Result<(), ValueError> {
        CSeq::scan(value).map(drop)
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

/// A Call-ID: `word [ "@" word ]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CallId(pub ByteStr);

fn is_word(b: u8) -> bool {
    crate::scan::is(b, crate::scan::WORD)
}

impl HeaderValue for CallId {
    fn parse_value(value: &ByteStr) -> Result<CallId, ValueError> {
        <CallId as crate::headers::CheckValue>::check_value(value)?;
        Ok(CallId(value.clone()))
    }
}

impl crate::headers::CheckValue for CallId {
    fn check_value(s: &str) -> Result<(), ValueError> {
        // One pass for the usual well-formed value; the slower walk below finds the
        // precise error otherwise.
        let mut at = None;
        let bytes = s.as_bytes();
        let clean = bytes
            .iter()
            .enumerate()
            .all(|(i, &b)| is_word(b) || (b == b'@' && at.replace(i).is_none()));
        if clean && at.map_or(!s.is_empty(), |i| i > 0 && i + 1 < s.len()) {
            return Ok(());
        }
        let (left, right) = match s.split_once('@') {
            Some((l, r)) => (l, Some(r)),
            None => (s, None),
        };
        if left.is_empty() || right.is_some_and(str::is_empty) {
            return Err(ValueError::new("Call-ID word", 0));
        }
        if let Some(i) = left.bytes().position(|b| !is_word(b)) {
            return Err(ValueError::new("Call-ID word", i));
        }
        if let Some(i) = right.and_then(|r| r.bytes().position(|b| !is_word(b))) {
            return Err(ValueError::new("Call-ID word", left.len() + 1 + i));
        }
        Ok(())
    }
}

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Free text (User-Agent, Server, Subject, Organization...), as received.
impl HeaderValue for ByteStr {
    fn parse_value(value: &ByteStr) -> Result<ByteStr, ValueError> {
        Ok(value.clone())
    }
}

/// A non-negative number: delta-seconds for Expires and Min-Expires, Content-Length,
/// RSeq. Values above 2^32-1 are errors (RFC 4475 §3.1.2.4: the caller chooses a default).
impl HeaderValue for u32 {
    fn parse_value(value: &ByteStr) -> Result<u32, ValueError> {
        let mut c = Cursor::new(value.as_str());
        let n = c.number(u64::from(u32::MAX), "number")?;
        c.end("number")?;
        u32::try_from(n).map_err(|_| ValueError::new("number", 0))
    }
}

/// Max-Forwards: 0 to 255.
impl HeaderValue for u8 {
    fn parse_value(value: &ByteStr) -> Result<u8, ValueError> {
        let mut c = Cursor::new(value.as_str());
        let n = c.number(255, "number 0-255")?;
        c.end("number 0-255")?;
        u8::try_from(n).map_err(|_| ValueError::new("number 0-255", 0))
    }
}

/// One token of a list: a method in Allow, an option tag in Supported/Require/
/// Proxy-Require/Unsupported, an event package in Allow-Events.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Token(pub ByteStr);

impl HeaderValue for Token {
    fn parse_value(value: &ByteStr) -> Result<Token, ValueError> {
        let mut c = Cursor::new(value.as_str());
        c.token("token")?;
        c.end("token")?;
        Ok(Token(value.clone()))
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A media type: Content-Type or an Accept element (`application/sdp;charset=utf-8`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaType {
    /// Type, e.g. `application` (`*` in Accept ranges).
    pub kind: ByteStr,
    /// Subtype, e.g. `sdp`.
    pub subtype: ByteStr,
    /// Parameters.
    pub params: Params,
}

impl MediaType {
    /// Whether this is `type/subtype`, case-insensitively.
    pub fn is(&self, kind: &str, subtype: &str) -> bool {
        self.kind.eq_ignore_ascii_case(kind) && self.subtype.eq_ignore_ascii_case(subtype)
    }
}

impl HeaderValue for MediaType {
    fn parse_value(value: &ByteStr) -> Result<MediaType, ValueError> {
        let mut c = Cursor::new(value.as_str());
        let kind = c.token("media type")?;
        if !c.eat_sep(b'/') {
            return Err(c.error("media subtype"));
        }
        let subtype = c.token("media subtype")?;
        let mut params = Params::new();
        parse_header_params(&mut c, Build::Into(value), &mut params)?;
        c.end("media type parameters")?;
        Ok(MediaType {
            kind: value.slice_ref(kind),
            subtype: value.slice_ref(subtype),
            params,
        })
    }
}

impl fmt::Display for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}{}", self.kind, self.subtype, self.params)
    }
}

/// A value with parameters: Event (`presence;id=1`), Subscription-State
/// (`active;expires=60`), Reason (`SIP;cause=200;text="Call completed elsewhere"`),
/// Session-Expires (`1800;refresher=uac`), Min-SE, Retry-After.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parameterised {
    /// The leading token.
    pub value: ByteStr,
    /// The parameters.
    pub params: Params,
}

impl Parameterised {
    /// The leading token as a number (Session-Expires, Min-SE, Retry-After).
    pub fn number(&self) -> Option<u32> {
        self.value.parse().ok()
    }

    /// A parameter without quotes or escapes (Reason's `text`, say).
    pub fn param(&self, name: &str) -> Option<String> {
        self.params.get_unquoted(name)
    }
}

impl HeaderValue for Parameterised {
    fn parse_value(value: &ByteStr) -> Result<Parameterised, ValueError> {
        let mut c = Cursor::new(value.as_str());
        let v = c.token("value")?;
        let mut params = Params::new();
        parse_header_params(&mut c, Build::Into(value), &mut params)?;
        c.end("parameters")?;
        Ok(Parameterised {
            value: value.slice_ref(v),
            params,
        })
    }
}

impl fmt::Display for Parameterised {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.value, self.params)
    }
}

/// Replaces (RFC 3891): `call-id;to-tag=..;from-tag=..[;early-only]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replaces {
    /// The Call-ID of the dialog to replace.
    pub call_id: ByteStr,
    /// Its To tag.
    pub to_tag: ByteStr,
    /// Its From tag.
    pub from_tag: ByteStr,
    /// Only replace an early dialog.
    pub early_only: bool,
}

impl HeaderValue for Replaces {
    fn parse_value(value: &ByteStr) -> Result<Replaces, ValueError> {
        let s = value.as_str();
        let end = s.find(';').unwrap_or(s.len());
        let call_id = sub(s, 0, end).trim_end();
        CallId::parse_value(&value.slice_ref(call_id))?;
        let mut c = Cursor::new(s);
        c.set_pos(end);
        let mut params = Params::new();
        parse_header_params(&mut c, Build::Into(value), &mut params)?;
        c.end("Replaces parameters")?;
        let tag = |name: &'static str| {
            params
                .get(name)
                .flatten()
                .map(|t| value.slice_ref(t))
                .ok_or(ValueError::new(name, end))
        };
        Ok(Replaces {
            call_id: value.slice_ref(call_id),
            to_tag: tag("to-tag")?,
            from_tag: tag("from-tag")?,
            early_only: params.contains("early-only"),
        })
    }
}

/// Privacy (RFC 3323): values separated by `;` (`id;header`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Privacy(pub Vec<ByteStr>);

impl Privacy {
    /// Whether a value (`id`, `header`, `session`, `user`, `none`, `critical`) is present.
    pub fn contains(&self, v: &str) -> bool {
        self.0.iter().any(|p| p.eq_ignore_ascii_case(v))
    }
}

impl HeaderValue for Privacy {
    fn parse_value(value: &ByteStr) -> Result<Privacy, ValueError> {
        let mut c = Cursor::new(value.as_str());
        let mut values = vec![value.slice_ref(c.token("priv-value")?)];
        while c.eat_sep(b';') {
            values.push(value.slice_ref(c.token("priv-value")?));
        }
        c.end("priv-value")?;
        Ok(Privacy(values))
    }
}

/// WWW-Authenticate / Proxy-Authenticate challenges and Authorization /
/// Proxy-Authorization credentials: a scheme and comma-separated `name=value` pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    /// `Digest`, or another scheme as received.
    pub scheme: ByteStr,
    /// The auth-params; values keep their quotes (use [`Auth::param`]).
    pub params: Params,
}

impl Auth {
    /// Whether the scheme is Digest.
    pub fn is_digest(&self) -> bool {
        self.scheme.eq_ignore_ascii_case("Digest")
    }

    /// A parameter's value without quotes (`realm`, `nonce`, `response`...).
    pub fn param(&self, name: &str) -> Option<String> {
        self.params.get(name).flatten().map(unquote_value)
    }
}

impl HeaderValue for Auth {
    fn parse_value(value: &ByteStr) -> Result<Auth, ValueError> {
        let s = value.as_str();
        let mut c = Cursor::new(s);
        let scheme = c.token("auth-scheme")?;
        let mut params = Params::new();
        if c.skip_lws() && !c.at_end() {
            loop {
                let name = c.token("auth-param name")?;
                if !c.eat_sep(b'=') {
                    return Err(c.error("auth-param ="));
                }
                let start = c.pos();
                if c.peek() == Some(b'"') {
                    c.quoted("auth-param value")?;
                } else {
                    // Tokens, plus '/' and ':' that some peers leave unquoted in uri=.
                    c.take_while(|b| is_token(b) || matches!(b, b'/' | b':' | b'@' | b'='));
                }
                let v = sub(s, start, c.pos());
                if v.is_empty() {
                    return Err(c.error("auth-param value"));
                }
                params.push(value.slice_ref(name), Some(value.slice_ref(v)));
                if !c.eat_sep(b',') {
                    break;
                }
                // Lenient with a trailing comma.
                if c.at_end() {
                    break;
                }
            }
        }
        c.end("auth-param")?;
        Ok(Auth {
            scheme: value.slice_ref(scheme),
            params,
        })
    }
}

impl fmt::Display for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.scheme)?;
        for (i, p) in self.params.iter().enumerate() {
            let sep = if i == 0 { " " } else { ", " };
            write!(f, "{sep}{}={}", p.name, p.value.as_deref().unwrap_or(""))?;
        }
        Ok(())
    }
}

/// Date (RFC 3261 §20.17): an RFC 1123 date, always in GMT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SipDate {
    /// Year.
    pub year: u16,
    /// Month, 1 to 12.
    pub month: u8,
    /// Day of the month, 1 to 31.
    pub day: u8,
    /// Hour, 0 to 23.
    pub hour: u8,
    /// Minute, 0 to 59.
    pub minute: u8,
    /// Second, 0 to 60 (leap second).
    pub second: u8,
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

impl HeaderValue for SipDate {
    fn parse_value(value: &ByteStr) -> Result<SipDate, ValueError> {
        let mut c = Cursor::new(value.as_str());
        let wkday = c.token("week day")?;
        if !DAYS.contains(&wkday) || !c.eat(b',') || !c.eat(b' ') {
            return Err(ValueError::new("week day", 0));
        }
        let two = |c: &mut Cursor<'_>, max: u64, what| -> Result<u8, ValueError> {
            let at = c.pos();
            let t = c.take_while(|b| b.is_ascii_digit());
            if t.len() != 2 {
                return Err(ValueError::new(what, at));
            }
            let n = crate::scan::parse_decimal(t, max).ok_or(ValueError::new(what, at))?;
            u8::try_from(n).map_err(|_| ValueError::new(what, at))
        };
        let day = two(&mut c, 31, "day")?;
        let at = c.pos();
        if !c.eat(b' ') {
            return Err(c.error("month"));
        }
        let month = c.take_while(|b| b.is_ascii_alphabetic());
        let month = MONTHS
            .iter()
            .position(|m| *m == month)
            .ok_or(ValueError::new("month", at + 1))?;
        if !c.eat(b' ') {
            return Err(c.error("year"));
        }
        let at = c.pos();
        let year = c.take_while(|b| b.is_ascii_digit());
        if year.len() != 4 {
            return Err(ValueError::new("year", at));
        }
        let year = crate::scan::parse_decimal(year, 9999).ok_or(ValueError::new("year", at))?;
        if !c.eat(b' ') {
            return Err(c.error("time"));
        }
        let hour = two(&mut c, 23, "hour")?;
        if !c.eat(b':') {
            return Err(c.error("time"));
        }
        let minute = two(&mut c, 59, "minute")?;
        if !c.eat(b':') {
            return Err(c.error("time"));
        }
        let second = two(&mut c, 60, "second")?;
        if !c.eat(b' ') || c.rest() != "GMT" {
            // RFC 4475 §3.1.2.12: "EST" and other zones are invalid.
            return Err(c.error("GMT time zone"));
        }
        if day == 0 {
            return Err(ValueError::new("day", 5));
        }
        Ok(SipDate {
            year: u16::try_from(year).unwrap_or(0),
            // position() < 12.
            month: u8::try_from(month + 1).unwrap_or(1),
            day,
            hour,
            minute,
            second,
        })
    }
}

/// Timestamp (RFC 3261 §20.40): a number and an optional delay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timestamp {
    /// The timestamp as sent (digits with an optional fraction).
    pub value: ByteStr,
    /// The delay, if a response added one.
    pub delay: Option<ByteStr>,
}

impl HeaderValue for Timestamp {
    fn parse_value(value: &ByteStr) -> Result<Timestamp, ValueError> {
        let mut c = Cursor::new(value.as_str());
        let number = |c: &mut Cursor<'_>| -> Result<(), ValueError> {
            if c.take_while(|b| b.is_ascii_digit()).is_empty() {
                return Err(c.error("timestamp number"));
            }
            if c.eat(b'.') {
                c.take_while(|b| b.is_ascii_digit());
            }
            Ok(())
        };
        number(&mut c)?;
        let ts = sub(value, 0, c.pos());
        let delay = if c.skip_lws() && !c.at_end() {
            let start = c.pos();
            number(&mut c)?;
            Some(value.slice_ref(sub(value, start, c.pos())))
        } else {
            None
        };
        c.end("timestamp")?;
        Ok(Timestamp {
            value: value.slice_ref(ts),
            delay,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p<T: HeaderValue>(s: &str) -> Result<T, ValueError> {
        T::parse_value(&ByteStr::from(s))
    }

    #[test]
    fn cseq() {
        let c: CSeq = p("0009\r\n  INVITE").unwrap();
        assert_eq!((c.seq, c.method), (9, Method::Invite));
        assert!(p::<CSeq>("36893488147419103232 REGISTER").is_err());
        assert!(p::<CSeq>("2147483648 INVITE").is_err());
        assert_eq!(p::<CSeq>("2147483647 INVITE").unwrap().seq, MAX_CSEQ);
        assert!(p::<CSeq>("1").is_err());
        assert!(p::<CSeq>("-1 INVITE").is_err());
        assert!(p::<CSeq>("1 INVITE x").is_err());
    }

    #[test]
    fn call_ids() {
        assert!(p::<CallId>("intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{").is_ok());
        assert!(p::<CallId>("a@b@c").is_err());
        assert!(p::<CallId>("has space").is_err());
        assert!(p::<CallId>("").is_err());
    }

    #[test]
    fn numbers() {
        assert_eq!(p::<u8>("0068").unwrap(), 68);
        assert!(p::<u8>("300").is_err());
        assert!(p::<u32>("10000000000000000000000000000000000000000").is_err());
        assert_eq!(p::<u32>("3600").unwrap(), 3600);
        assert!(p::<u32>("-999").is_err());
    }

    #[test]
    fn auth_params() {
        let a: Auth = p(r#"Digest username="alice", realm="pbx", nonce="abc", uri="sip:pbx", response="00ff", algorithm=MD5, qop=auth, nc=00000001, cnonce="x""#).unwrap();
        assert!(a.is_digest());
        assert_eq!(a.param("username").as_deref(), Some("alice"));
        assert_eq!(a.param("nc").as_deref(), Some("00000001"));
        assert_eq!(a.param("qop").as_deref(), Some("auth"));
        let a: Auth = p("NoOneKnowsThisScheme opaque-data=here").unwrap();
        assert!(!a.is_digest());
        assert!(p::<Auth>("Digest realm").is_err());
    }

    #[test]
    fn dates() {
        let d: SipDate = p("Sat, 13 Nov 2010 23:29:00 GMT").unwrap();
        assert_eq!((d.year, d.month, d.day, d.hour), (2010, 11, 13, 23));
        assert!(p::<SipDate>("Fri, 01 Jan 2010 16:00:00 EST").is_err());
        assert!(p::<SipDate>("Fri, 1 Jan 2010 16:00:00 GMT").is_err());
    }

    #[test]
    fn others() {
        let r: Replaces =
            p("425928@bobster.example.org;to-tag=7743;from-tag=6472;early-only").unwrap();
        assert_eq!(
            (r.to_tag.as_str(), r.from_tag.as_str(), r.early_only),
            ("7743", "6472", true)
        );
        assert!(p::<Replaces>("425928@bobster;to-tag=1").is_err());
        let reason: Parameterised = p("Q.850;cause=16;text=\"Normal call clearing\"").unwrap();
        assert_eq!(
            reason.param("text").as_deref(),
            Some("Normal call clearing")
        );
        let se: Parameterised = p("1800;refresher=uac").unwrap();
        assert_eq!(se.number(), Some(1800));
        let pr: Privacy = p("id;header").unwrap();
        assert!(pr.contains("id") && pr.contains("header"));
        let ct: MediaType = p("multipart/mixed;boundary=7a9cbec02ceef655").unwrap();
        assert!(ct.is("multipart", "mixed"));
        let ts: Timestamp = p("54.21 0.3").unwrap();
        assert_eq!(ts.delay.as_deref(), Some("0.3"));
    }
}
