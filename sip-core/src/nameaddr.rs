//! name-addr / addr-spec values: From, To, Contact, Route, Record-Route,
//! P-Asserted-Identity, Remote-Party-ID, Diversion, Refer-To, Referred-By, Path...
//!
//! ```
//! use pbxkit_sip::{ByteStr, Contact, DisplayName, HeaderValue, NameAddr, Uri};
//!
//! // A value on its own (as from configuration), parsed like a header's.
//! let text = r#""Alice \"Al\" Smith" <sip:alice@atlanta.example.com>;tag=a1"#;
//! let from = NameAddr::parse_value(&ByteStr::from(text))?;
//! let display = from.display.as_ref().map(DisplayName::text);
//! assert_eq!(display.as_deref(), Some(r#"Alice "Al" Smith"#));
//! assert_eq!(from.uri.to_string(), "sip:alice@atlanta.example.com");
//! assert_eq!(from.tag(), Some("a1"));
//!
//! // A Contact: header parameters (after `>`) are not the URI's.
//! let text = "<sip:1000@192.0.2.10:5062;transport=tcp>;expires=600;q=0.5";
//! let Contact::Addr(contact) = Contact::parse_value(&text.into())? else { panic!("not `*`") };
//! assert_eq!((contact.expires(), contact.q()), (Some(600), Some(500)));
//! assert!(contact.uri.as_sip().is_some_and(|u| u.params.contains("transport")));
//! assert_eq!(Contact::parse_value(&"*".into())?, Contact::Star);
//!
//! // Building one: the display name is quoted and escaped as needed.
//! let mut to = NameAddr::new(Uri::parse("sip:bob@biloxi.example.com")?);
//! to.display = Some(DisplayName::new("Bob"));
//! to.set_tag("b7");
//! assert_eq!(to.to_string(), r#""Bob" <sip:bob@biloxi.example.com>;tag=b7"#);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::bytestr::{Build, ByteStr};
use crate::error::ValueError;
use crate::headers::HeaderValue;
use crate::params::{Params, parse_header_params};
use crate::scan::{Cursor, is_lws, is_token, quote, sub, unquote};
use crate::uri::Uri;
use std::fmt;

/// A display name, kept as received: either a quoted string (quotes included) or a
/// sequence of tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(ByteStr);

impl DisplayName {
    /// A display name from text; quoted, with `"` and `\` escaped.
    pub fn new(text: &str) -> DisplayName {
        DisplayName(ByteStr::from(format!("\"{}\"", quote(text))))
    }

    /// The text, without quotes and escapes.
    pub fn text(&self) -> String {
        match self.0.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
            Some(inner) => unquote(inner),
            None => self.0.to_string(),
        }
    }

    /// The display name as it is written in the header.
    pub fn as_written(&self) -> &str {
        &self.0
    }
}

/// `[display-name] <URI> ;params` or `URI ;params`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// Display name, if any.
    pub display: Option<DisplayName>,
    /// The URI.
    pub uri: Uri,
    /// Header parameters (`tag`, `expires`, `q`...), not URI parameters.
    pub params: Params,
}

impl NameAddr {
    /// A name-addr without display name or parameters.
    pub fn new(uri: Uri) -> NameAddr {
        NameAddr {
            display: None,
            uri,
            params: Params::new(),
        }
    }

    /// The `tag` parameter (From/To).
    pub fn tag(&self) -> Option<&str> {
        self.params.get("tag").flatten()
    }

    /// Sets the `tag` parameter.
    pub fn set_tag(&mut self, tag: &str) {
        self.params.set("tag", Some(ByteStr::from(tag)));
    }

    /// The `expires` parameter of a Contact, if present and valid.
    pub fn expires(&self) -> Option<u32> {
        self.params.get("expires").flatten()?.parse().ok()
    }

    /// The `q` parameter of a Contact, in thousandths (`q=0.5` is 500).
    pub fn q(&self) -> Option<u16> {
        parse_qvalue(self.params.get("q").flatten()?)
    }
}

/// Parses a q-value (`0`, `0.5`, `1.000`) into thousandths.
pub(crate) fn parse_qvalue(s: &str) -> Option<u16> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths: u16 = 0;
    for (i, b) in frac.bytes().enumerate() {
        thousandths += u16::from(b - b'0') * [100, 10, 1][i];
    }
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

impl HeaderValue for NameAddr {
    fn parse_value(value: &ByteStr) -> Result<NameAddr, ValueError> {
        NameAddr::parse_in(value, Build::Into(value))
    }
}

impl crate::headers::CheckValue for NameAddr {
    fn check_value(value: &str) -> Result<(), ValueError> {
        NameAddr::parse_in(value, Build::Check).map(drop)
    }
}

impl NameAddr {
    // Inlined into the checking and the building caller: each gets a copy specialised
    // for its `build` (the check's builds nothing).
    #[inline(always)]
    fn parse_in(s: &str, build: Build<'_>) -> Result<NameAddr, ValueError> {
        let mut c = Cursor::new(s);
        c.skip_lws();
        let display;
        let uri;
        if c.peek() == Some(b'"') || has_angle_bracket(s) {
            display = if c.peek() == Some(b'"') {
                let start = c.pos();
                c.quoted("display-name")?;
                Some(DisplayName(build.slice(sub(s, start, c.pos()))))
            } else {
                // *(token LWS): stop at '<'.
                let start = c.pos();
                loop {
                    c.take_while(is_token);
                    if !c.skip_lws() {
                        break;
                    }
                }
                let text = sub(s, start, c.pos())
                    .trim_end_matches(|ch: char| ch.is_ascii() && is_lws(ch as u8));
                (!text.is_empty()).then(|| DisplayName(build.slice(text)))
            };
            c.skip_lws();
            if !c.eat(b'<') {
                return Err(c.error("display-name"));
            }
            let start = c.pos();
            let inner = c.take_while(|b| b != b'>');
            if !c.eat(b'>') {
                return Err(ValueError::new("closing >", c.pos()));
            }
            uri = Uri::parse_in(inner, build)
                .map_err(|e| ValueError::new(e.element, start + e.offset))?;
            if inner.bytes().any(is_lws) {
                // Uri rejects white space already; this keeps the reason precise.
                return Err(ValueError::new("white space in URI", start));
            }
        } else {
            // addr-spec: the URI ends at ';' or white space, and may not hold ',' or '?'
            // (RFC 3261 §20: such URIs must be in angle brackets).
            display = None;
            let start = c.pos();
            let text = c.take_while(|b| b != b';' && !is_lws(b));
            if let Some(i) = text.find(['?', ',']) {
                return Err(ValueError::new("URI needs angle brackets", start + i));
            }
            if text.is_empty() {
                return Err(ValueError::new("addr-spec", start));
            }
            uri = Uri::parse_in(text, build)
                .map_err(|e| ValueError::new(e.element, start + e.offset))?;
        }
        let mut params = Params::new();
        parse_header_params(&mut c, build, &mut params)?;
        c.end("header parameters")?;
        Ok(NameAddr {
            display,
            uri,
            params,
        })
    }
}

/// Whether `s` has a `<` outside a quoted string.
fn has_angle_bracket(s: &str) -> bool {
    let mut in_quote = false;
    let mut escaped = false;
    for b in s.bytes() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if in_quote => escaped = true,
            b'"' => in_quote = !in_quote,
            b'<' if !in_quote => return true,
            _ => {}
        }
    }
    false
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = &self.display {
            write!(f, "{} ", d.as_written())?;
        }
        write!(f, "<{}>{}", self.uri, self.params)
    }
}

/// A Contact value: `*` (REGISTER removal) or an address.
#[derive(Debug, Clone, PartialEq, Eq)]
#[expect(
    clippy::large_enum_variant,
    reason = "`*` is rare; boxing every address would cost an allocation per contact"
)]
pub enum Contact {
    /// `Contact: *`.
    Star,
    /// A contact address with its parameters (`expires`, `q`, `+sip.instance`...).
    Addr(NameAddr),
}

impl HeaderValue for Contact {
    fn parse_value(value: &ByteStr) -> Result<Contact, ValueError> {
        if value.trim() == "*" {
            Ok(Contact::Star)
        } else {
            NameAddr::parse_value(value).map(Contact::Addr)
        }
    }
}

impl fmt::Display for Contact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Contact::Star => f.write_str("*"),
            Contact::Addr(a) => a.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn na(s: &str) -> Result<NameAddr, ValueError> {
        NameAddr::parse_value(&ByteStr::from(s))
    }

    #[test]
    fn forms_of_name_addr() {
        let a = na(r#""J Rosenberg \\\""       <sip:jdrosen@example.com>
  ;
  tag = 98asjd8"#)
        .unwrap();
        assert_eq!(a.display.as_ref().unwrap().text(), r#"J Rosenberg \""#);
        assert_eq!(a.tag(), Some("98asjd8"));

        let a = na("caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(a.display.unwrap().text(), "caller");

        let a = na("sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n").unwrap();
        assert!(a.display.is_none());
        assert_eq!(a.tag(), Some("1918181833n"));

        let a = na("token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;fromParam''~+*_!.-%=\"работающий\";tag=_token~1'+`*%!-.").unwrap();
        assert_eq!(
            a.display.as_ref().unwrap().text(),
            "token1~` token2'+_ token3*%!.-"
        );
        assert_eq!(
            a.params.get_unquoted("fromParam''~+*_!.-%").as_deref(),
            Some("работающий")
        );
        assert_eq!(a.tag(), Some("_token~1'+`*%!-."));
    }

    #[test]
    fn contact_params_and_star() {
        let c = Contact::parse_value(&ByteStr::from("\"Quoted string \\\"\\\"\" <sip:jdrosen@example.com> ; newparam =\r\n      newvalue ;\r\n  secondparam ; q = 0.33")).unwrap();
        let Contact::Addr(a) = c else { panic!() };
        assert_eq!(a.q(), Some(330));
        assert_eq!(a.params.get("newparam"), Some(Some("newvalue")));
        assert_eq!(a.params.get("secondparam"), Some(None));
        assert_eq!(
            Contact::parse_value(&ByteStr::from("*")).unwrap(),
            Contact::Star
        );
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "\"Mr. J. User <sip:j.user@example.com>", // §3.1.2.6 unterminated quote
            "\"Watson, Thomas\" < sip:t.watson@example.org >", // §3.1.2.14 spaces in addr-spec
            "Bell, Alexander <sip:a.g.bell@example.com>;tag=43", // §3.1.2.15 comma in display name
            "sip:user@example.com?Route=%3Csip:sip.example.com%3E", // §3.1.2.13
            "\"Joe\" <sip:joe@example.org>;;;;",
            "<sip:a@b",
            "",
        ] {
            assert!(na(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn qvalues() {
        assert_eq!(parse_qvalue("1"), Some(1000));
        assert_eq!(parse_qvalue("1.000"), Some(1000));
        assert_eq!(parse_qvalue("0.5"), Some(500));
        assert_eq!(parse_qvalue("1.5"), None);
        assert_eq!(parse_qvalue("0.1234"), None);
    }
}
