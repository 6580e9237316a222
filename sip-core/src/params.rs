//! `;name=value` parameters of URIs and headers.
//!
//! ```
//! use pbxkit_sip::{ByteStr, Params};
//!
//! let mut params = Params::new();
//! params.set("transport", Some(ByteStr::from("tcp")));
//! params.set("lr", None);
//! params.set("text", Some(ByteStr::from(r#""Call \"completed\"""#)));
//! // Names compare without case; `Some(None)` is a parameter without value.
//! assert_eq!(params.get("Transport"), Some(Some("tcp")));
//! assert_eq!(params.get("lr"), Some(None));
//! assert_eq!(params.get("maddr"), None);
//! assert_eq!(params.get_unquoted("text").as_deref(), Some(r#"Call "completed""#));
//! // Setting again replaces in place; written back as `;name=value`.
//! params.set("TRANSPORT", Some(ByteStr::from("udp")));
//! assert!(params.remove("text"));
//! assert_eq!(params.to_string(), ";transport=udp;lr");
//! ```

use crate::bytestr::{Build, ByteStr};
use crate::error::ValueError;
use crate::scan::{Cursor, is_token};
use std::fmt;

/// One parameter. The value is kept as received (a quoted value keeps its quotes),
/// so that a message re-serialises exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// Parameter name, as received.
    pub name: ByteStr,
    /// Value, if the parameter has one (`lr` has none, `transport=tcp` has `tcp`).
    pub value: Option<ByteStr>,
}

/// An ordered list of parameters; names compare case-insensitively.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(Vec<Param>);

impl Params {
    /// No parameters.
    pub const fn new() -> Params {
        Params(Vec::new())
    }

    /// Looks a parameter up: `None` when absent, `Some(None)` when present without value.
    pub fn get(&self, name: &str) -> Option<Option<&str>> {
        self.0
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .map(|p| p.value.as_deref())
    }

    /// The value of a parameter with its quotes and escapes removed.
    pub fn get_unquoted(&self, name: &str) -> Option<String> {
        let raw = self.get(name)??;
        Some(unquote_value(raw))
    }

    /// Whether the parameter is present (with or without a value).
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Sets a parameter, replacing an existing one of the same name in place.
    pub fn set(&mut self, name: impl Into<ByteStr>, value: Option<ByteStr>) {
        let name = name.into();
        if let Some(p) = self
            .0
            .iter_mut()
            .find(|p| p.name.eq_ignore_ascii_case(&name))
        {
            p.value = value;
        } else {
            self.0.push(Param { name, value });
        }
    }

    /// Removes a parameter; returns whether it was there.
    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.0.len();
        self.0.retain(|p| !p.name.eq_ignore_ascii_case(name));
        self.0.len() != before
    }

    /// The parameters in order.
    pub fn iter(&self) -> impl Iterator<Item = &Param> {
        self.0.iter()
    }

    /// Number of parameters.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn push(&mut self, name: ByteStr, value: Option<ByteStr>) {
        self.0.push(Param { name, value });
    }
}

impl fmt::Display for Params {
    /// Writes `;name=value` for each parameter.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.0 {
            write!(f, ";{}", p.name)?;
            if let Some(v) = &p.value {
                write!(f, "={v}")?;
            }
        }
        Ok(())
    }
}

/// Strips the quotes of a quoted parameter value and its escapes; a token is returned as is.
pub(crate) fn unquote_value(raw: &str) -> String {
    match raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        Some(inner) => crate::scan::unquote(inner),
        None => raw.to_owned(),
    }
}

/// Parses header parameters `*( SEMI generic-param )` where SEMI and EQUAL allow LWS
/// around them and a value is a token, a host (incl. an IPv6 reference) or a quoted
/// string. `build` holds the `ByteStr` the cursor's text was taken from, so that names
/// and values share its buffer. Stops (without error) at the first byte that is not `;`.
pub(crate) fn parse_header_params(
    c: &mut Cursor<'_>,
    build: Build<'_>,
    params: &mut Params,
) -> Result<(), ValueError> {
    while c.eat_sep(b';') {
        let name = c.token("parameter name")?;
        let value = if c.eat_sep(b'=') {
            let v = match c.peek() {
                Some(b'"') => {
                    let start = c.pos();
                    c.quoted("quoted parameter value")?;
                    crate::scan::sub(c.text(), start, c.pos())
                }
                Some(b'[') => {
                    let v = c.take_while(|b| {
                        b.is_ascii_hexdigit() || matches!(b, b'[' | b']' | b':' | b'.')
                    });
                    if !v.ends_with(']') {
                        return Err(c.error("IPv6 reference"));
                    }
                    v
                }
                _ => c.take_while(|b| is_token(b) || b == b':'),
            };
            if v.is_empty() {
                return Err(c.error("parameter value"));
            }
            Some(v)
        } else {
            None
        };
        build.push_param(params, name, value);
    }
    Ok(())
}
