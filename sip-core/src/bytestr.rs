//! `ByteStr`: shared UTF-8 text, so that values parsed out of a message point into
//! that message's text instead of being copied.
//!
//! ```
//! use pbxkit_sip::{ByteStr, HeaderName, Message};
//!
//! let message = Message::parse(
//!     "OPTIONS sip:pbx.example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKb1\r\n\
//!      From: <sip:a@example.com>;tag=a1\r\nTo: <sip:pbx.example.com>\r\n\
//!      Call-ID: b-1@192.0.2.1\r\nCSeq: 1 OPTIONS\r\nUser-Agent: Softphone/2.1\r\n\r\n",
//! )?;
//! // A value taken out of the message is a slice of its text: no copy.
//! let agent: ByteStr = message.headers().first(&HeaderName::UserAgent).ok_or("none")?.to_bytestr();
//! assert_eq!(agent, "Softphone/2.1");
//! let product = agent.slice_ref(agent.split('/').next().unwrap_or_default());
//! assert_eq!(product.as_str(), "Softphone");
//! // It reads as a `&str`, and outlives the message it came from.
//! drop(message);
//! assert!(agent.ends_with("2.1"));
//! assert_eq!(ByteStr::from_static("Softphone"), product);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

/// An immutable UTF-8 string that shares its buffer: cloning and slicing cost a
/// reference count, and reading it costs nothing (the text was validated once, when
/// the buffer was made).
#[derive(Clone)]
pub struct ByteStr(Repr);

#[derive(Clone)]
enum Repr {
    Static(&'static str),
    Shared { buf: Arc<str>, start: u32, end: u32 },
}

impl ByteStr {
    /// An empty string.
    pub const fn new() -> ByteStr {
        ByteStr(Repr::Static(""))
    }

    /// A string from static text, without allocation.
    pub const fn from_static(s: &'static str) -> ByteStr {
        ByteStr(Repr::Static(s))
    }

    /// Copies bytes into a new string; `None` when they are not UTF-8.
    pub fn from_utf8(bytes: &[u8]) -> Option<ByteStr> {
        std::str::from_utf8(bytes).ok().map(ByteStr::from)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Static(s) => s,
            Repr::Shared { buf, start, end } => {
                buf.get(*start as usize..*end as usize).unwrap_or("")
            }
        }
    }

    /// The text's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.as_str().as_bytes()
    }

    /// A sub-string sharing the same buffer. `sub` must be a slice of `self` (as
    /// returned by `str` methods on it); otherwise the text is copied.
    pub fn slice_ref(&self, sub: &str) -> ByteStr {
        if sub.is_empty() {
            return ByteStr::new();
        }
        let me = self.as_str();
        let base = me.as_ptr() as usize;
        let ptr = sub.as_ptr() as usize;
        if ptr < base || ptr + sub.len() > base + me.len() {
            return ByteStr::from(sub);
        }
        let offset = ptr - base;
        match &self.0 {
            Repr::Static(s) => ByteStr(Repr::Static(
                s.get(offset..offset + sub.len()).unwrap_or(""),
            )),
            Repr::Shared { buf, start, .. } => {
                // Offsets stay below the buffer length, which fits in u32 (see From).
                let start = *start as usize + offset;
                ByteStr(Repr::Shared {
                    buf: buf.clone(),
                    start: start as u32,
                    end: (start + sub.len()) as u32,
                })
            }
        }
    }
}

/// What a value parser does with the text it recognises: slice it out of `base` to build
/// the typed value, or nothing at all when the parse only checks that the value is
/// well-formed (message parsing checks the essential headers this way, without
/// allocations or reference counts, and builds them on first access). Both go through
/// the same code, so a value that passed the check always builds.
#[derive(Clone, Copy)]
pub(crate) enum Build<'a> {
    /// Build the value from slices of this buffer, which holds the text being parsed.
    Into(&'a ByteStr),
    /// Only check: slices are empty and parameter lists stay empty.
    Check,
}

impl Build<'_> {
    /// `text` as a [`ByteStr`] sharing the buffer (empty when only checking).
    pub(crate) fn slice(self, text: &str) -> ByteStr {
        match self {
            Build::Into(base) => base.slice_ref(text),
            Build::Check => ByteStr::new(),
        }
    }

    /// Appends a parameter (nothing when only checking: no allocation).
    pub(crate) fn push_param(
        self,
        params: &mut crate::params::Params,
        name: &str,
        value: Option<&str>,
    ) {
        if let Build::Into(base) = self {
            params.push(base.slice_ref(name), value.map(|v| base.slice_ref(v)));
        }
    }
}

impl Default for ByteStr {
    fn default() -> Self {
        ByteStr::new()
    }
}

impl Deref for ByteStr {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for ByteStr {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for ByteStr {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for ByteStr {
    fn from(s: &str) -> ByteStr {
        ByteStr::from(Arc::<str>::from(s))
    }
}

impl From<String> for ByteStr {
    fn from(s: String) -> ByteStr {
        ByteStr::from(Arc::<str>::from(s))
    }
}

impl From<Arc<str>> for ByteStr {
    fn from(buf: Arc<str>) -> ByteStr {
        // Text beyond 4 GiB is cut: SIP values are bounded far below that.
        let end = u32::try_from(buf.len()).unwrap_or(u32::MAX);
        ByteStr(Repr::Shared { buf, start: 0, end })
    }
}

impl PartialEq for ByteStr {
    fn eq(&self, other: &ByteStr) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for ByteStr {}

impl PartialOrd for ByteStr {
    fn partial_cmp(&self, other: &ByteStr) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ByteStr {
    fn cmp(&self, other: &ByteStr) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Hash for ByteStr {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl PartialEq<str> for ByteStr {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for ByteStr {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Display for ByteStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for ByteStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_share_and_compare_by_text() {
        let s = ByteStr::from("hello world");
        let w = s.slice_ref(&s[6..]);
        assert_eq!(w, "world");
        assert_eq!(w.slice_ref(&w[1..3]), "or");
        assert_eq!(s.slice_ref("elsewhere"), "elsewhere");
        assert_eq!(ByteStr::from_static("abc").slice_ref(&"abc"[1..]), "bc");
        assert_eq!(ByteStr::from_utf8(b"\xff"), None);
    }
}
