//! A cursor over header text: the small set of RFC 3261 lexical rules every typed
//! header parser shares. Offsets are kept so that errors can say where they are.
//!
//! Hand-written rather than nom: errors need the byte offset and the element name,
//! and SIP's LWS-everywhere grammar reads more plainly as a cursor.

use crate::error::ValueError;

/// Character classes of RFC 3261 §25.1, one bit each in [`CLASS`]: a parser tests a
/// byte with one load instead of a chain of comparisons.
pub(crate) const TOKEN: u8 = 1;
/// `word` (Call-ID): token plus `( ) < > : \\ " / [ ] ? { }`.
pub(crate) const WORD: u8 = 2;
/// `unreserved`: alphanumeric and `- _ . ! ~ * ' ( )`.
pub(crate) const UNRESERVED: u8 = 4;
/// Linear white space inside a value: SP, HT, CR, LF.
pub(crate) const LWS: u8 = 8;
/// Host name characters we accept: alphanumeric, `-`, `.`, `_`.
pub(crate) const HOST: u8 = 16;

const fn class_of(b: u8) -> u8 {
    let alnum = b.is_ascii_alphanumeric();
    let mut c = 0;
    if alnum
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
    {
        c |= TOKEN | WORD;
    }
    if matches!(
        b,
        b'(' | b')' | b'<' | b'>' | b':' | b'\\' | b'"' | b'/' | b'[' | b']' | b'?' | b'{' | b'}'
    ) {
        c |= WORD;
    }
    if alnum
        || matches!(
            b,
            b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
        )
    {
        c |= UNRESERVED;
    }
    if matches!(b, b' ' | b'\t' | b'\r' | b'\n') {
        c |= LWS;
    }
    if alnum || matches!(b, b'-' | b'.' | b'_') {
        c |= HOST;
    }
    c
}

/// The class bits of every byte value.
pub(crate) static CLASS: [u8; 256] = {
    let mut table = [0; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = class_of(i as u8);
        i += 1;
    }
    table
};

/// Whether `b` is in all the classes of `mask`.
#[inline]
pub(crate) fn is(b: u8, mask: u8) -> bool {
    CLASS[b as usize] & mask != 0
}

/// `token` characters (RFC 3261 §25.1).
#[inline]
pub(crate) fn is_token(b: u8) -> bool {
    is(b, TOKEN)
}

/// Linear white space inside a header value (folding has already been kept as CRLF + WSP).
#[inline]
pub(crate) fn is_lws(b: u8) -> bool {
    is(b, LWS)
}

/// A `&str` slice that never panics: out-of-range or mid-character bounds give "".
pub(crate) fn sub(s: &str, start: usize, end: usize) -> &str {
    s.get(start..end).unwrap_or("")
}

pub(crate) struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(s: &'a str) -> Self {
        Cursor { s, pos: 0 }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// The whole text the cursor walks over.
    pub(crate) fn text(&self) -> &'a str {
        self.s
    }

    pub(crate) fn set_pos(&mut self, pos: usize) {
        self.pos = pos.min(self.s.len());
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    pub(crate) fn rest(&self) -> &'a str {
        sub(self.s, self.pos, self.s.len())
    }

    /// Consumes `b` if it is next.
    pub(crate) fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Skips linear white space; returns whether any was skipped.
    pub(crate) fn skip_lws(&mut self) -> bool {
        let start = self.pos;
        while self.peek().is_some_and(is_lws) {
            self.pos += 1;
        }
        self.pos > start
    }

    /// `LWS b LWS`: a separator with optional white space around it.
    pub(crate) fn eat_sep(&mut self, b: u8) -> bool {
        let save = self.pos;
        self.skip_lws();
        if self.eat(b) {
            self.skip_lws();
            true
        } else {
            self.pos = save;
            false
        }
    }

    /// Takes the longest run of bytes satisfying `f` (ASCII predicates only, so the
    /// cut is always on a character boundary).
    #[inline]
    pub(crate) fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        let rest = self.s.as_bytes().get(start..).unwrap_or_default();
        // An iterator rather than indexing: no bounds check per byte.
        let end = start + rest.iter().position(|&b| !f(b)).unwrap_or(rest.len());
        self.pos = end;
        sub(self.s, start, end)
    }

    /// One or more token characters.
    pub(crate) fn token(&mut self, element: &'static str) -> Result<&'a str, ValueError> {
        let t = self.take_while(is_token);
        if t.is_empty() {
            Err(self.error(element))
        } else {
            Ok(t)
        }
    }

    /// A quoted string starting at the cursor; returns its inside, escapes kept.
    pub(crate) fn quoted(&mut self, element: &'static str) -> Result<&'a str, ValueError> {
        let open = self.pos;
        if !self.eat(b'"') {
            return Err(self.error(element));
        }
        let start = self.pos;
        let bytes = self.s.as_bytes();
        while let Some(&b) = bytes.get(self.pos) {
            match b {
                b'"' => {
                    let inner = sub(self.s, start, self.pos);
                    self.pos += 1;
                    return Ok(inner);
                }
                // quoted-pair: any byte but CR and LF may be escaped.
                b'\\' => match bytes.get(self.pos + 1) {
                    Some(b'\r' | b'\n') | None => break,
                    Some(_) => self.pos += 2,
                },
                _ => self.pos += 1,
            }
        }
        Err(ValueError::new(element, open))
    }

    /// Unsigned decimal, at most `max`.
    pub(crate) fn number(&mut self, max: u64, element: &'static str) -> Result<u64, ValueError> {
        let start = self.pos;
        let digits = self.take_while(|b| b.is_ascii_digit());
        if digits.is_empty() {
            return Err(ValueError::new(element, start));
        }
        parse_decimal(digits, max).ok_or(ValueError::new(element, start))
    }

    pub(crate) fn error(&self, element: &'static str) -> ValueError {
        ValueError::new(element, self.pos)
    }

    /// Fails unless only white space remains.
    pub(crate) fn end(&mut self, element: &'static str) -> Result<(), ValueError> {
        self.skip_lws();
        if self.at_end() {
            Ok(())
        } else {
            Err(self.error(element))
        }
    }
}

/// Parses ASCII digits as a number no greater than `max`, without overflow.
pub(crate) fn parse_decimal(digits: &str, max: u64) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for b in digits.bytes() {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
        if n > max {
            return None;
        }
    }
    Some(n)
}

/// Removes the backslash of each quoted-pair.
pub(crate) fn unquote(inner: &str) -> String {
    let mut out = String::with_capacity(inner.len());
    let mut escaped = false;
    for c in inner.chars() {
        if escaped || c != '\\' {
            out.push(c);
            escaped = false;
        } else {
            escaped = true;
        }
    }
    out
}

/// Makes a quoted string's inside from text: `"` and `\` are escaped.
pub(crate) fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Splits a comma-separated header value into elements, ignoring commas inside quoted
/// strings and angle brackets; empty elements are skipped (peers send `Supported: ,a`).
/// Yields `(offset, element)` with the element trimmed.
pub(crate) fn split_commas(s: &str) -> impl Iterator<Item = (usize, &str)> {
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut done = false;
    std::iter::from_fn(move || {
        while !done {
            let mut i = start;
            let mut in_quote = false;
            let mut in_angle = false;
            let mut end = bytes.len();
            // Most values have no comma at all: one vectorised search says so, and the
            // byte-by-byte walk below (quotes, angle brackets) is skipped.
            if memchr::memchr(b',', bytes.get(start..).unwrap_or_default()).is_none() {
                i = bytes.len();
            }
            while i < bytes.len() {
                match bytes[i] {
                    b'\\' if in_quote => i += 1,
                    b'"' => in_quote = !in_quote,
                    b'<' if !in_quote => in_angle = true,
                    b'>' if !in_quote => in_angle = false,
                    b',' if !in_quote && !in_angle => {
                        end = i;
                        break;
                    }
                    _ => {}
                }
                i += 1;
            }
            let element_start = start;
            if end >= bytes.len() {
                done = true;
                end = bytes.len();
            } else {
                start = end + 1;
            }
            let raw = sub(s, element_start, end);
            let lead = raw.len() - raw.trim_start_matches(|c| is_lws(c as u8)).len();
            let trimmed = raw.trim_matches(|c: char| c.is_ascii() && is_lws(c as u8));
            if !trimmed.is_empty() {
                return Some((element_start + lead, trimmed));
            }
        }
        None
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_commas_respects_quotes_and_angles() {
        let v: Vec<_> = split_commas(r#" a , "x,\"y" <sip:a,b> ;p , ,b,"#).collect();
        assert_eq!(v, [(1, "a"), (5, r#""x,\"y" <sip:a,b> ;p"#), (29, "b")]);
    }

    #[test]
    fn class_table_matches_the_grammar() {
        for b in 0..=255u8 {
            let token = b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
                );
            assert_eq!(is_token(b), token, "{b}");
            let word = token || b"()<>:\\\"/[]?{}".contains(&b);
            assert_eq!(is(b, WORD), word, "{b}");
            let unreserved = b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b);
            assert_eq!(is(b, UNRESERVED), unreserved, "{b}");
            assert_eq!(is_lws(b), b" \t\r\n".contains(&b), "{b}");
            let host = b.is_ascii_alphanumeric() || b"-._".contains(&b);
            assert_eq!(is(b, HOST), host, "{b}");
        }
    }

    #[test]
    fn decimal_bounds() {
        assert_eq!(parse_decimal("0009", 100), Some(9));
        assert_eq!(parse_decimal("36893488147419103232", u64::MAX), None);
        assert_eq!(parse_decimal("256", 255), None);
        assert_eq!(parse_decimal("", 1), None);
    }

    #[test]
    fn quoted_string_with_escapes() {
        let mut c = Cursor::new(r#""J Rosenberg \\\"" rest"#);
        let inner = c.quoted("q").unwrap();
        assert_eq!(inner, r#"J Rosenberg \\\""#);
        assert_eq!(unquote(inner), r#"J Rosenberg \""#);
        assert!(Cursor::new(r#""open"#).quoted("q").is_err());
    }
}
