//! The header section: raw values kept as slices of the received message, parsed into
//! typed values on access.

use crate::bytestr::ByteStr;
use crate::error::{ErrorKind, ParseError, Part, ValueError};
use crate::name::HeaderName;
use crate::scan::split_commas;
use bytes::Bytes;

/// A value type that can be parsed from (and written as) one header value or one
/// element of a comma-separated list.
pub trait HeaderValue: Sized {
    /// Parses the value. `value` is trimmed; offsets in the error are relative to it.
    fn parse_value(value: &ByteStr) -> Result<Self, ValueError>;
}

/// One header line (folded continuation lines included).
#[derive(Debug, Clone)]
pub struct Header {
    /// The name.
    pub name: HeaderName,
    /// The value as received, without leading and trailing white space; folded lines
    /// keep their line break.
    pub value: Bytes,
    /// Offset of the value in the parsed message (0 for headers built in code).
    offset: usize,
}

impl PartialEq for Header {
    /// Headers are equal when their names and values are; where they were parsed
    /// from does not matter.
    fn eq(&self, other: &Header) -> bool {
        self.name == other.name && self.value == other.value
    }
}

impl Eq for Header {}

impl Header {
    /// A header built in code.
    pub fn new(name: HeaderName, value: impl Into<Bytes>) -> Header {
        Header {
            name,
            value: value.into(),
            offset: 0,
        }
    }

    pub(crate) fn parsed(name: HeaderName, value: Bytes, offset: usize) -> Header {
        Header {
            name,
            value,
            offset,
        }
    }

    /// Offset of the value in the message it was parsed from (0 when built in code).
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The value as UTF-8 text.
    pub fn text(&self) -> Result<ByteStr, ParseError> {
        ByteStr::from_utf8(self.value.clone()).ok_or_else(|| {
            ParseError::new(
                ErrorKind::Utf8,
                Part::Header(self.name.clone()),
                "UTF-8 text",
                self.offset,
            )
        })
    }

    fn error(&self, e: ValueError) -> ParseError {
        e.into_parse(
            ErrorKind::InvalidHeader,
            Part::Header(self.name.clone()),
            self.offset,
        )
    }

    /// Parses the whole value as one `T`.
    pub fn parse<T: HeaderValue>(&self) -> Result<T, ParseError> {
        let text = self.text()?;
        T::parse_value(&text).map_err(|e| self.error(e))
    }

    /// Parses each comma-separated element as a `T`.
    pub fn parse_list<T: HeaderValue>(&self) -> std::vec::IntoIter<Result<T, ParseError>> {
        let text = self.text();
        let elements: Vec<Result<T, ParseError>> = match text {
            Err(e) => vec![Err(e)],
            Ok(text) => split_commas(&text)
                .map(|(at, element)| {
                    T::parse_value(&text.slice_ref(element))
                        .map_err(|e| self.error(ValueError::new(e.element, e.offset + at)))
                })
                .collect(),
        };
        elements.into_iter()
    }
}

/// The headers of a message, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    entries: Vec<Header>,
}

impl Headers {
    /// No headers.
    pub fn new() -> Headers {
        Headers::default()
    }

    pub(crate) fn with_capacity(n: usize) -> Headers {
        Headers {
            entries: Vec::with_capacity(n),
        }
    }

    /// All headers in order.
    pub fn iter(&self) -> impl Iterator<Item = &Header> {
        self.entries.iter()
    }

    /// Number of header lines.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The header lines with this name.
    pub fn all<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a Header> + 'a {
        self.entries.iter().filter(move |h| &h.name == name)
    }

    /// The first header line with this name.
    pub fn first(&self, name: &HeaderName) -> Option<&Header> {
        self.entries.iter().find(|h| &h.name == name)
    }

    /// Whether a header with this name is present.
    pub fn contains(&self, name: &HeaderName) -> bool {
        self.first(name).is_some()
    }

    /// The raw value of the first header with this name.
    pub fn get(&self, name: &HeaderName) -> Option<&Bytes> {
        self.first(name).map(|h| &h.value)
    }

    /// Parses the first header with this name (its first element for list headers).
    pub fn typed<T: HeaderValue>(&self, name: &HeaderName) -> Option<Result<T, ParseError>> {
        if name.is_list() {
            self.typed_all(name).next()
        } else {
            self.first(name).map(Header::parse)
        }
    }

    /// Parses every value with this name: each comma-separated element of each line
    /// for list headers (RFC 3261 §7.3.1), each line otherwise.
    pub fn typed_all<'a, T: HeaderValue + 'a>(
        &'a self,
        name: &'a HeaderName,
    ) -> impl Iterator<Item = Result<T, ParseError>> + 'a {
        let list = name.is_list();
        self.all(name).flat_map(move |h| {
            let items: Box<dyn Iterator<Item = Result<T, ParseError>>> = if list {
                Box::new(h.parse_list())
            } else {
                Box::new(std::iter::once(h.parse()))
            };
            items
        })
    }

    /// Appends a header.
    pub fn push(&mut self, name: HeaderName, value: impl Into<Bytes>) {
        self.entries.push(Header::new(name, value));
    }

    pub(crate) fn push_header(&mut self, header: Header) {
        self.entries.push(header);
    }

    /// Inserts a header before all others (a proxy's Via, say).
    pub fn push_front(&mut self, name: HeaderName, value: impl Into<Bytes>) {
        self.entries.insert(0, Header::new(name, value));
    }

    /// Replaces every header with this name by one line with `value`, at the place
    /// of the first one (or at the end).
    pub fn set(&mut self, name: HeaderName, value: impl Into<Bytes>) {
        let value = value.into();
        match self.entries.iter().position(|h| h.name == name) {
            Some(i) => {
                self.entries[i] = Header::new(name.clone(), value);
                let mut seen = 0;
                self.entries.retain(|h| {
                    if h.name == name {
                        seen += 1;
                        seen == 1
                    } else {
                        true
                    }
                });
            }
            None => self.push(name, value),
        }
    }

    /// Removes every header with this name; returns how many there were.
    pub fn remove(&mut self, name: &HeaderName) -> usize {
        let before = self.entries.len();
        self.entries.retain(|h| &h.name != name);
        before - self.entries.len()
    }

    /// Removes the first header with this name and returns it.
    pub fn remove_first(&mut self, name: &HeaderName) -> Option<Header> {
        let i = self.entries.iter().position(|h| &h.name == name)?;
        Some(self.entries.remove(i))
    }
}
