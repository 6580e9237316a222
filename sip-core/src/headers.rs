//! The header section: values are ranges of the received (UTF-8 validated) header
//! section, parsed into typed values on access; headers added in code own their text.
//!
//! Reading a received message's headers (compact forms and list headers included),
//! then editing them as a proxy does before forwarding:
//!
//! ```
//! use pbxkit_sip::{Contact, HeaderName, Message, NameAddr};
//!
//! let mut invite = Message::parse(
//!     "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
//!      v: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKh1\r\nMax-Forwards: 70\r\n\
//!      f: <sip:alice@atlanta.example.com>;tag=a1\r\nt: <sip:bob@biloxi.example.com>\r\n\
//!      i: h-1@192.0.2.1\r\nCSeq: 1 INVITE\r\n\
//!      Record-Route: <sip:p2.example.com;lr>, <sip:p1.example.com;lr>\r\n\
//!      X-Account: 4711\r\nl: 0\r\n\r\n",
//! )?;
//! let h = invite.headers();
//! // `i:` is Call-ID; unknown names are kept as written.
//! assert_eq!(h.get(&HeaderName::CallId), Some("h-1@192.0.2.1"));
//! assert_eq!(h.get(&HeaderName::parse("x-account")), Some("4711"));
//! assert_eq!(h.typed::<u8>(&HeaderName::MaxForwards).transpose()?, Some(70));
//! // A list header: each comma-separated element is one value.
//! let route: Vec<NameAddr> = h.typed_all(&HeaderName::RecordRoute).collect::<Result<_, _>>()?;
//! assert_eq!(route.len(), 2);
//! assert_eq!(route[1].uri.to_string(), "sip:p1.example.com;lr");
//! assert!(h.typed::<Contact>(&HeaderName::Contact).is_none());
//!
//! // Forwarding: our Via on top, one hop less, the private header gone.
//! let h = invite.headers_mut();
//! h.push_front(HeaderName::Via, "SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bKp1");
//! h.set(HeaderName::MaxForwards, "69");
//! assert_eq!(h.remove(&HeaderName::parse("X-Account")), 1);
//! assert_eq!(invite.vias().count(), 2);
//! assert_eq!(invite.top_via()?.branch(), Some("z9hG4bKp1"));
//! assert_eq!(invite.max_forwards().transpose()?, Some(69));
//! let wire = invite.to_bytes();
//! assert!(wire.starts_with(b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.1"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::bytestr::ByteStr;
use crate::error::{ErrorKind, ParseError, Part, ValueError};
use crate::name::HeaderName;
use crate::scan::split_commas;

/// A value type that can be parsed from one header value or one element of a
/// comma-separated list.
pub trait HeaderValue: Sized {
    /// Parses the value. `value` is trimmed; offsets in the error are relative to it.
    fn parse_value(value: &ByteStr) -> Result<Self, ValueError>;
}

/// A value type whose well-formedness can be checked without building it (no
/// allocation, no reference count): message parsing checks the essential headers this
/// way and builds them on first access. `check_value` accepts exactly what
/// `parse_value` accepts, with the same errors.
pub(crate) trait CheckValue: HeaderValue {
    /// Checks `value` (trimmed; offsets in the error are relative to it).
    fn check_value(value: &str) -> Result<(), ValueError>;
}

#[derive(Debug, Clone)]
enum Value {
    /// `head[start..end]` of a parsed message: no copy and no reference count per header.
    Received { start: u32, end: u32 },
    /// Text set in code.
    Owned(ByteStr),
}

#[derive(Debug, Clone)]
struct Entry {
    name: HeaderName,
    value: Value,
}

/// The headers of a message, in order.
#[derive(Debug, Clone, Default)]
pub struct Headers {
    /// The received header section (empty for messages built in code).
    head: ByteStr,
    entries: Vec<Entry>,
}

/// One header line (folded continuation lines included), borrowed from [`Headers`].
#[derive(Debug, Clone, Copy)]
pub struct HeaderRef<'a> {
    /// The name.
    pub name: &'a HeaderName,
    /// The value without leading and trailing white space; folded lines keep their
    /// line break.
    pub value: &'a str,
    /// Offset of the value in the received message (0 for headers set in code).
    pub offset: usize,
    base: &'a ByteStr,
}

impl<'a> HeaderRef<'a> {
    /// The value as a [`ByteStr`] sharing the message's buffer.
    pub fn to_bytestr(&self) -> ByteStr {
        self.base.slice_ref(self.value)
    }

    /// `e`, found in this value, as an error of the message.
    pub(crate) fn error(&self, e: ValueError) -> ParseError {
        e.into_parse(
            ErrorKind::InvalidHeader,
            Part::Header(self.name.clone()),
            self.offset,
        )
    }

    /// Parses the whole value as one `T`.
    pub fn parse<T: HeaderValue>(&self) -> Result<T, ParseError> {
        T::parse_value(&self.to_bytestr()).map_err(|e| self.error(e))
    }

    /// Checks the whole value as one `T`, with the error [`HeaderRef::parse`] would give.
    pub(crate) fn check<T: CheckValue>(&self) -> Result<(), ParseError> {
        T::check_value(self.value).map_err(|e| self.error(e))
    }

    /// Checks each comma-separated element as a `T`, with the errors
    /// [`HeaderRef::parse_list`] would give; returns how many there are.
    pub(crate) fn check_list<T: CheckValue>(&self) -> Result<usize, ParseError> {
        let mut n = 0;
        for (at, element) in split_commas(self.value) {
            T::check_value(element)
                .map_err(|e| self.error(ValueError::new(e.element, e.offset + at)))?;
            n += 1;
        }
        Ok(n)
    }

    /// Parses each comma-separated element as a `T`.
    pub fn parse_list<T: HeaderValue>(
        &self,
    ) -> impl Iterator<Item = Result<T, ParseError>> + use<'a, T> {
        let this = *self;
        let text = self.to_bytestr();
        split_commas(self.value).map(move |(at, element)| {
            T::parse_value(&text.slice_ref(element))
                .map_err(|e| this.error(ValueError::new(e.element, e.offset + at)))
        })
    }
}

impl Headers {
    /// No headers.
    pub fn new() -> Headers {
        Headers::default()
    }

    /// Headers of a received message: `head` is its validated header section.
    pub(crate) fn received(head: ByteStr, capacity: usize) -> Headers {
        Headers {
            head,
            entries: Vec::with_capacity(capacity),
        }
    }

    /// The header section of a received message (empty for one built in code).
    pub(crate) fn received_head(&self) -> &ByteStr {
        &self.head
    }

    /// Records a received header whose value is `head[start..end]`.
    #[inline]
    pub(crate) fn push_received(&mut self, name: HeaderName, start: usize, end: usize) {
        // Messages are far below 4 GiB: the parser bounds their size.
        let (start, end) = (
            u32::try_from(start).unwrap_or(u32::MAX),
            u32::try_from(end).unwrap_or(u32::MAX),
        );
        self.entries.push(Entry {
            name,
            value: Value::Received { start, end },
        });
    }

    #[inline]
    fn view<'a>(&'a self, e: &'a Entry) -> HeaderRef<'a> {
        match &e.value {
            Value::Received { start, end } => HeaderRef {
                name: &e.name,
                value: self.head.get(*start as usize..*end as usize).unwrap_or(""),
                offset: *start as usize,
                base: &self.head,
            },
            Value::Owned(text) => HeaderRef {
                name: &e.name,
                value: text,
                offset: 0,
                base: text,
            },
        }
    }

    /// All headers in order.
    pub fn iter(&self) -> impl Iterator<Item = HeaderRef<'_>> {
        self.entries.iter().map(|e| self.view(e))
    }

    /// The header line at `index` (0 is the first).
    pub(crate) fn at(&self, index: usize) -> Option<HeaderRef<'_>> {
        self.entries.get(index).map(|e| self.view(e))
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
    pub fn all<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = HeaderRef<'a>> + 'a {
        self.entries
            .iter()
            .filter(move |e| &e.name == name)
            .map(|e| self.view(e))
    }

    /// The first header line with this name.
    pub fn first(&self, name: &HeaderName) -> Option<HeaderRef<'_>> {
        self.entries
            .iter()
            .find(|e| &e.name == name)
            .map(|e| self.view(e))
    }

    /// Whether a header with this name is present.
    pub fn contains(&self, name: &HeaderName) -> bool {
        self.entries.iter().any(|e| &e.name == name)
    }

    /// The value of the first header with this name.
    pub fn get(&self, name: &HeaderName) -> Option<&str> {
        self.first(name).map(|h| h.value)
    }

    /// Parses the first header with this name (its first element for list headers).
    pub fn typed<T: HeaderValue>(&self, name: &HeaderName) -> Option<Result<T, ParseError>> {
        let first = self.first(name)?;
        if name.is_list() {
            first.parse_list().next()
        } else {
            Some(first.parse())
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
            let (one, many) = if list {
                (None, Some(h.parse_list()))
            } else {
                (Some(h.parse()), None)
            };
            one.into_iter().chain(many.into_iter().flatten())
        })
    }

    /// Appends a header.
    pub fn push(&mut self, name: HeaderName, value: impl Into<ByteStr>) {
        self.entries.push(Entry {
            name,
            value: Value::Owned(value.into()),
        });
    }

    /// Inserts a header before all others (a proxy's Via, say).
    pub fn push_front(&mut self, name: HeaderName, value: impl Into<ByteStr>) {
        self.entries.insert(
            0,
            Entry {
                name,
                value: Value::Owned(value.into()),
            },
        );
    }

    /// Replaces every header with this name by one line with `value`, at the place
    /// of the first one (or at the end).
    pub fn set(&mut self, name: HeaderName, value: impl Into<ByteStr>) {
        let value = Value::Owned(value.into());
        match self.entries.iter().position(|e| e.name == name) {
            Some(i) => {
                self.entries[i].value = value;
                let mut seen = 0;
                self.entries.retain(|e| {
                    if e.name == name {
                        seen += 1;
                        seen == 1
                    } else {
                        true
                    }
                });
            }
            None => self.entries.push(Entry { name, value }),
        }
    }

    /// Replaces the first value with this name: the first element of a comma-separated
    /// line for list headers (the rest of that line is kept), the whole line otherwise.
    /// Appends a header when there is none.
    pub fn replace_first_value(&mut self, name: &HeaderName, value: impl Into<ByteStr>) {
        let value: ByteStr = value.into();
        let Some(i) = self.entries.iter().position(|e| &e.name == name) else {
            self.push(name.clone(), value);
            return;
        };
        let current = self.view(&self.entries[i]).value;
        let rest: Vec<&str> = if name.is_list() {
            split_commas(current).skip(1).map(|(_, e)| e).collect()
        } else {
            Vec::new()
        };
        let text = if rest.is_empty() {
            value
        } else {
            ByteStr::from(format!("{value}, {}", rest.join(", ")))
        };
        self.entries[i].value = Value::Owned(text);
    }

    /// Removes every header with this name; returns how many there were.
    pub fn remove(&mut self, name: &HeaderName) -> usize {
        let before = self.entries.len();
        self.entries.retain(|e| &e.name != name);
        before - self.entries.len()
    }

    /// Removes the first header with this name and returns its value.
    pub fn remove_first(&mut self, name: &HeaderName) -> Option<ByteStr> {
        let i = self.entries.iter().position(|e| &e.name == name)?;
        let text = self.view(&self.entries[i]).to_bytestr();
        self.entries.remove(i);
        Some(text)
    }
}

impl PartialEq for Headers {
    /// Headers are equal when their names and values are, in order; where the values
    /// are stored does not matter.
    fn eq(&self, other: &Headers) -> bool {
        self.len() == other.len()
            && self
                .iter()
                .zip(other.iter())
                .all(|(a, b)| a.name == b.name && a.value == b.value)
    }
}

impl Eq for Headers {}
