//! Asterisk extension patterns: parsing, matching and the `pbx.c` ordering.
//!
//! An entry of a dialplan context is either an *exact extension* (`1000`, `*98`, `s`)
//! or, when it starts with `_`, a *pattern* (`_9NXXXXXX`, `_0[1-5]X.`, `_*21!`).
//!
//! | in a pattern | matches                                                   |
//! |--------------|-----------------------------------------------------------|
//! | `X` / `x`    | one digit `0`–`9`                                         |
//! | `Z` / `z`    | one digit `1`–`9`                                         |
//! | `N` / `n`    | one digit `2`–`9`                                         |
//! | `[15-7a]`    | one character of the set (`x-y` is a range; a `-` first or last is literal; everything inside is literal, so `[X]` is the letter `X`) |
//! | `.`          | one or more characters of any kind                        |
//! | `!`          | zero or more characters of any kind ("early match")       |
//! | `-`, ` `     | nothing: separators for readability (`_NXX-XXXX`)         |
//! | anything else| itself (digits, `*`, `#`, `+`, other letters, `_`), case-sensitive |
//!
//! # Choices, checked against Asterisk's `main/pbx.c`
//!
//! - **Dashes are fluff everywhere**, as in Asterisk since 2017 (`ext_strncpy`,
//!   `ext_fluff_count`, `ext_cmp_exten`): `555-1234` is the exact extension `5551234`,
//!   and a `-` in a *dialled number* is skipped too (`_extension_match_core` skips it in
//!   the data). Inside a `[...]` set a `-` is a range operator or a literal.
//!   Spaces outside a set are dropped like Asterisk does when it loads an extension.
//! - **A wildcard must end the pattern.** Asterisk documents `.` and `!` as "only
//!   allowed at the end"; its matcher ignores whatever follows them while its ordering
//!   does not, so `_X.1` would sort apart from `_X.` and match the same numbers. We
//!   reject such patterns with [`PatternError::AfterWildcard`].
//! - **Stricter than Asterisk, with an error rather than a silent surprise**: an empty
//!   set `[]` (Asterisk skips it), a reversed range `[5-1]` (Asterisk's set then matches
//!   nothing), an unterminated `[`, a stray `]`, a `/` (Asterisk's caller-ID separator,
//!   not part of an extension), control characters and non-ASCII text.
//! - **Equality is Asterisk's**: two entries are equal when `ext_cmp` says 0, i.e. when
//!   they accept the same characters position by position (`_X` = `_[0-9]` =
//!   `_[0123456789]`, `12-3` = `123`). [`Pattern::as_str`] keeps the text as written.
//!
//! # Ordering
//!
//! [`Pattern`]'s [`Ord`] is `ext_cmp` from `pbx.c` (the order of `dialplan show`, and
//! the order in which Asterisk's linear matcher tries extensions):
//!
//! 1. exact extensions sort before patterns; two exact extensions compare as byte
//!    strings (after removing dashes), so `1` < `10` < `2`;
//! 2. two patterns compare position by position. A position weighs
//!    `(number of characters it accepts << 8) | lowest character it accepts`
//!    (literal `5` = 0x135, `[12]` = 0x231, `N` = 0x832, `Z` = 0x931, `X` = 0xA30),
//!    `.` weighs 0x18000, `!` 0x28000 and the end of the pattern 0x30000. The lower
//!    weight sorts first. Between two sets of equal weight, the one holding the lowest
//!    character that only one of them holds sorts first (`[13]` before `[14]`).
//! 3. Because the end of a pattern weighs more than anything, a pattern sorts *after*
//!    its own extensions: `_12X` < `_12`, and `_12!` < `_12`.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// Why an entry is not a valid extension or pattern.
///
/// Every variant carries the byte offset in the text given to [`Pattern::parse`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PatternError {
    /// Nothing is left once the `_` and the separators (`-`, spaces) are removed.
    #[error("empty extension (at byte {position})")]
    Empty {
        /// Where the text ended.
        position: usize,
    },
    /// The text is longer than [`Pattern::MAX_LEN`] bytes.
    #[error("extension is {len} bytes long, more than the limit of {max} (at byte {position})")]
    TooLong {
        /// The length of the text, in bytes.
        len: usize,
        /// The limit, [`Pattern::MAX_LEN`].
        max: usize,
        /// The first byte past the limit.
        position: usize,
    },
    /// A `[` without its `]`.
    #[error("character set opened at byte {position} is not closed with ']'")]
    UnterminatedSet {
        /// Where the `[` is.
        position: usize,
    },
    /// `[]`: a set that accepts nothing.
    #[error("empty character set '[]' at byte {position}")]
    EmptySet {
        /// Where the `[` is.
        position: usize,
    },
    /// A range whose first character comes after its last, like `[5-1]`.
    #[error("range '{first}-{last}' at byte {position} is reversed")]
    ReversedRange {
        /// Where the first character of the range is.
        position: usize,
        /// The first character of the range.
        first: char,
        /// The last character of the range.
        last: char,
    },
    /// Something other than separators after a `.` or `!` wildcard.
    #[error(
        "'{ch}' at byte {position} follows the wildcard at byte {wildcard}; a wildcard must end the pattern"
    )]
    AfterWildcard {
        /// Where the offending character is.
        position: usize,
        /// The offending character.
        ch: char,
        /// Where the `.` or `!` is.
        wildcard: usize,
    },
    /// A character that can't appear in an extension: control characters, non-ASCII
    /// text, `/` (the caller-ID separator) and a `]` that closes no set.
    #[error("character {ch:?} at byte {position} is not allowed in an extension")]
    InvalidChar {
        /// Where the character is.
        position: usize,
        /// The character.
        ch: char,
    },
}

impl PatternError {
    /// The byte offset of the fault in the parsed text.
    pub fn position(&self) -> usize {
        match *self {
            Self::Empty { position }
            | Self::TooLong { position, .. }
            | Self::UnterminatedSet { position }
            | Self::EmptySet { position }
            | Self::ReversedRange { position, .. }
            | Self::AfterWildcard { position, .. }
            | Self::InvalidChar { position, .. } => position,
        }
    }
}

/// How a dialled number relates to a [`Pattern`], as returned by [`Pattern::matches`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Match {
    /// The number does not match, and no longer number starting with it would.
    No,
    /// The number does not match yet, but a longer one starting with it could
    /// (`_9NXX` and `9`): an overlap-dialling switch should wait for more digits.
    Partial,
    /// The number matches, and no longer number would (`_9NXX` and `9200`).
    Full,
    /// The number matches, and longer numbers would match too (`_9X.` and `912`,
    /// `_*21!` and `*21`).
    FullAndMore,
}

impl Match {
    /// Whether the number matches now ([`Match::Full`] or [`Match::FullAndMore`]).
    pub fn is_match(self) -> bool {
        matches!(self, Self::Full | Self::FullAndMore)
    }

    /// Whether some longer number starting with this one would match
    /// ([`Match::Partial`] or [`Match::FullAndMore`]).
    pub fn could_match_more(self) -> bool {
        matches!(self, Self::Partial | Self::FullAndMore)
    }
}

/// The characters one pattern position accepts: bit `127 - c` stands for ASCII `c`, so
/// that comparing two sets as integers compares them like `pbx.c`'s `memcmp` of its
/// bitmaps (lower characters are the more significant bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct CharSet(u128);

impl CharSet {
    const fn of(c: u8) -> Self {
        // `c` is ASCII here: the parser rejects everything else.
        Self(1u128 << (127 - (c & 0x7f)))
    }

    const fn range(first: u8, last: u8) -> Self {
        let mut bits = 0u128;
        let mut c = first;
        while c <= last {
            bits |= Self::of(c).0;
            if c == u8::MAX {
                break;
            }
            c += 1;
        }
        Self(bits)
    }

    /// `X`: 0-9.
    const X: Self = Self::range(b'0', b'9');
    /// `Z`: 1-9.
    const Z: Self = Self::range(b'1', b'9');
    /// `N`: 2-9.
    const N: Self = Self::range(b'2', b'9');

    pub(crate) fn contains(self, c: u8) -> bool {
        c < 128 && self.0 & Self::of(c).0 != 0
    }

    /// The single character of a one-character set (a literal).
    pub(crate) fn single(self) -> Option<u8> {
        if self.0.count_ones() == 1 {
            // The highest set bit is 127 - c.
            u8::try_from(self.0.leading_zeros()).ok()
        } else {
            None
        }
    }

    /// `(count << 8) | lowest`, as `ext_cmp_pattern_pos`.
    fn weight(self) -> u32 {
        // A set holds at most 128 characters: the weight stays below 0x8100, under
        // the wildcards' 0x18000. An empty set can't be built (the parser refuses it).
        (self.0.count_ones() << 8) | self.0.leading_zeros()
    }
}

/// One position of a pattern, after separators are removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Position {
    /// One character out of a set (a literal is a set of one).
    Set(CharSet),
    /// `.`: one or more characters.
    Dot,
    /// `!`: zero or more characters.
    Bang,
}

impl Position {
    /// `pbx.c` weight of `.`.
    const DOT_WEIGHT: u32 = 0x18000;
    /// `pbx.c` weight of `!`.
    const BANG_WEIGHT: u32 = 0x28000;

    fn weight(self) -> u32 {
        match self {
            Self::Set(set) => set.weight(),
            Self::Dot => Self::DOT_WEIGHT,
            Self::Bang => Self::BANG_WEIGHT,
        }
    }

    fn bits(self) -> u128 {
        match self {
            Self::Set(set) => set.0,
            Self::Dot | Self::Bang => 0,
        }
    }
}

impl Ord for Position {
    fn cmp(&self, other: &Self) -> Ordering {
        self.weight()
            .cmp(&other.weight())
            // Same weight: the set with the lowest character the other lacks comes
            // first, i.e. the larger bitmap (pbx.c: `memcmp(right, left)`).
            .then_with(|| other.bits().cmp(&self.bits()))
    }
}

impl PartialOrd for Position {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The canonical form that equality, hashing and ordering use.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    /// An exact extension, dashes and spaces removed.
    Exact(Box<str>),
    /// A pattern's positions; a wildcard can only be the last one.
    Pattern(Box<[Position]>),
}

/// An exact extension (`1000`) or an Asterisk extension pattern (`_NXXXXXX`).
///
/// See the [module documentation](self) for the syntax and the choices made where
/// Asterisk is lenient. [`Ord`] is Asterisk's `ext_cmp`, and equality is "`ext_cmp`
/// returns 0", so `_X` equals `_[0-9]`.
///
/// ```
/// use pbxkit_dialplan::pattern::{Match, Pattern};
///
/// let p = Pattern::parse("_9NXX-XXXX")?;
/// assert!(p.is_match("92001234"));
/// assert_eq!(p.matches("92"), Match::Partial);
/// assert_eq!(p.matches("91"), Match::No);
///
/// let exact = Pattern::parse("200")?;
/// assert!(exact < p, "exact extensions sort before patterns");
/// # Ok::<(), pbxkit_dialplan::pattern::PatternError>(())
/// ```
#[derive(Clone)]
pub struct Pattern {
    text: Box<str>,
    kind: Kind,
}

impl Pattern {
    /// The longest text [`Pattern::parse`] accepts, in bytes.
    pub const MAX_LEN: usize = 256;

    /// Parses an exact extension, or a pattern when `text` starts with `_`.
    ///
    /// # Errors
    ///
    /// A [`PatternError`] naming the fault and its byte offset in `text`.
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        if text.len() > Self::MAX_LEN {
            return Err(PatternError::TooLong {
                len: text.len(),
                max: Self::MAX_LEN,
                position: Self::MAX_LEN,
            });
        }
        let kind = match text.strip_prefix('_') {
            Some(body) => Kind::Pattern(parse_pattern(text, body)?),
            None => Kind::Exact(parse_exact(text)?),
        };
        Ok(Self {
            text: text.into(),
            kind,
        })
    }

    /// The text as it was given to [`Pattern::parse`].
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether this is a pattern (written with a leading `_`), not an exact extension.
    pub fn is_pattern(&self) -> bool {
        matches!(self.kind, Kind::Pattern(_))
    }

    /// Whether this pattern ends with `!`, Asterisk's "early match": once a number
    /// reaches it, the dialplan stops waiting for more digits even though longer
    /// numbers would match too (see [`ExtensionTable::could_match_more`]).
    ///
    /// [`ExtensionTable::could_match_more`]: crate::table::ExtensionTable::could_match_more
    pub fn is_early_match(&self) -> bool {
        match &self.kind {
            Kind::Pattern(positions) => positions.last() == Some(&Position::Bang),
            Kind::Exact(_) => false,
        }
    }

    /// How `number` relates to this entry. Dashes in `number` are ignored, as in
    /// Asterisk; every other character is compared as it is.
    pub fn matches(&self, number: &str) -> Match {
        let mut digits = number.bytes().filter(|&b| b != b'-');
        match &self.kind {
            Kind::Exact(exten) => {
                for expected in exten.bytes() {
                    match digits.next() {
                        None => return Match::Partial,
                        Some(c) if c == expected => {}
                        Some(_) => return Match::No,
                    }
                }
            }
            Kind::Pattern(positions) => {
                for position in positions.iter() {
                    match position {
                        Position::Dot => {
                            return if digits.next().is_some() {
                                Match::FullAndMore
                            } else {
                                Match::Partial
                            };
                        }
                        Position::Bang => return Match::FullAndMore,
                        Position::Set(set) => match digits.next() {
                            None => return Match::Partial,
                            Some(c) if set.contains(c) => {}
                            Some(_) => return Match::No,
                        },
                    }
                }
            }
        }
        if digits.next().is_none() {
            Match::Full
        } else {
            Match::No
        }
    }

    /// Whether `number` matches this entry now.
    pub fn is_match(&self, number: &str) -> bool {
        self.matches(number).is_match()
    }

    /// Whether a longer number starting with `number` would match: `_9NXX` with `9`
    /// (wait for more digits), `_9X.` with `91` (matches, and so does `912`).
    ///
    /// This is the plain meaning, so an entry ending with `!` answers `true` once
    /// reached; Asterisk's early-match rule is applied by the table, which knows the
    /// competing entries.
    pub fn could_match_more(&self, number: &str) -> bool {
        self.matches(number).could_match_more()
    }

    /// The exact extension, without separators, if this is one.
    pub(crate) fn exact(&self) -> Option<&str> {
        match &self.kind {
            Kind::Exact(exten) => Some(exten),
            Kind::Pattern(_) => None,
        }
    }

    /// The positions, if this is a pattern.
    pub(crate) fn positions(&self) -> Option<&[Position]> {
        match &self.kind {
            Kind::Pattern(positions) => Some(positions),
            Kind::Exact(_) => None,
        }
    }
}

/// The character at byte `position` of `text`, for error messages.
fn char_at(text: &str, position: usize) -> char {
    text.get(position..)
        .and_then(|rest| rest.chars().next())
        .unwrap_or(char::REPLACEMENT_CHARACTER)
}

/// Characters that may appear in an extension: printable ASCII, except the caller-ID
/// separator.
fn is_allowed(c: u8) -> bool {
    c.is_ascii_graphic() && c != b'/'
}

fn parse_exact(text: &str) -> Result<Box<str>, PatternError> {
    let mut exten = String::with_capacity(text.len());
    for (position, c) in text.bytes().enumerate() {
        match c {
            b'-' | b' ' => {}
            c if is_allowed(c) => exten.push(char::from(c)),
            _ => {
                return Err(PatternError::InvalidChar {
                    position,
                    ch: char_at(text, position),
                });
            }
        }
    }
    if exten.is_empty() {
        return Err(PatternError::Empty {
            position: text.len(),
        });
    }
    Ok(exten.into_boxed_str())
}

/// Parses `body`, the part of `text` after the leading `_` (offsets are reported
/// relative to `text`).
fn parse_pattern(text: &str, body: &str) -> Result<Box<[Position]>, PatternError> {
    let bytes = body.as_bytes();
    let at = |i: usize| i + 1; // offset in `text`
    let mut positions = Vec::with_capacity(bytes.len());
    let mut wildcard: Option<usize> = None;
    let mut i = 0;
    while let Some(&c) = bytes.get(i) {
        if c == b'-' || c == b' ' {
            i += 1;
            continue;
        }
        if let Some(wildcard) = wildcard {
            return Err(PatternError::AfterWildcard {
                position: at(i),
                ch: char_at(text, at(i)),
                wildcard,
            });
        }
        let position = match c {
            b'X' | b'x' => Position::Set(CharSet::X),
            b'Z' | b'z' => Position::Set(CharSet::Z),
            b'N' | b'n' => Position::Set(CharSet::N),
            b'.' => {
                wildcard = Some(at(i));
                Position::Dot
            }
            b'!' => {
                wildcard = Some(at(i));
                Position::Bang
            }
            b'[' => {
                let (set, next) = parse_set(text, bytes, i)?;
                i = next;
                positions.push(Position::Set(set));
                continue;
            }
            c if is_allowed(c) && c != b']' => Position::Set(CharSet::of(c)),
            _ => {
                return Err(PatternError::InvalidChar {
                    position: at(i),
                    ch: char_at(text, at(i)),
                });
            }
        };
        positions.push(position);
        i += 1;
    }
    if positions.is_empty() {
        return Err(PatternError::Empty {
            position: text.len(),
        });
    }
    Ok(positions.into_boxed_slice())
}

/// Parses the set whose `[` is at `bytes[open]`; returns it and the index after `]`.
///
/// As in `pbx.c`, everything up to the first `]` is literal, `a-b` is a range when
/// both ends are inside the set, and a `-` without two ends is a literal `-`.
fn parse_set(text: &str, bytes: &[u8], open: usize) -> Result<(CharSet, usize), PatternError> {
    let at = |i: usize| i + 1;
    let start = open + 1;
    let len = bytes
        .get(start..)
        .and_then(|rest| rest.iter().position(|&c| c == b']'))
        .ok_or(PatternError::UnterminatedSet { position: at(open) })?;
    let content = bytes.get(start..start + len).unwrap_or_default();
    if content.is_empty() {
        return Err(PatternError::EmptySet { position: at(open) });
    }
    if let Some(bad) = content.iter().position(|&c| !(is_allowed(c) || c == b' ')) {
        let position = at(start + bad);
        return Err(PatternError::InvalidChar {
            position,
            ch: char_at(text, position),
        });
    }
    let mut set = 0u128;
    let mut j = 0;
    while let Some(&first) = content.get(j) {
        match (content.get(j + 1), content.get(j + 2)) {
            (Some(b'-'), Some(&last)) => {
                if first > last {
                    return Err(PatternError::ReversedRange {
                        position: at(start + j),
                        first: char::from(first),
                        last: char::from(last),
                    });
                }
                set |= CharSet::range(first, last).0;
                j += 3;
            }
            _ => {
                set |= CharSet::of(first).0;
                j += 1;
            }
        }
    }
    Ok((CharSet(set), start + len + 1))
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind
    }
}

impl Eq for Pattern {}

impl std::hash::Hash for Pattern {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.kind.hash(state);
    }
}

impl Ord for Pattern {
    /// Asterisk's `ext_cmp`; see the [module documentation](self#ordering).
    fn cmp(&self, other: &Self) -> Ordering {
        match (&self.kind, &other.kind) {
            (Kind::Exact(a), Kind::Exact(b)) => a.as_bytes().cmp(b.as_bytes()),
            (Kind::Exact(_), Kind::Pattern(_)) => Ordering::Less,
            (Kind::Pattern(_), Kind::Exact(_)) => Ordering::Greater,
            (Kind::Pattern(a), Kind::Pattern(b)) => a
                .iter()
                .zip(b.iter())
                .map(|(x, y)| x.cmp(y))
                .find(|o| o.is_ne())
                // One is a prefix of the other: the end of a pattern (0x30000)
                // weighs more than any position, so the longer one sorts first.
                .unwrap_or_else(|| b.len().cmp(&a.len())),
        }
    }
}

impl PartialOrd for Pattern {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Pattern").field(&self.text).finish()
    }
}

impl FromStr for Pattern {
    type Err = PatternError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::{Equal, Greater, Less};
    use proptest::prelude::*;

    fn p(text: &str) -> Pattern {
        Pattern::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    #[test]
    fn weights_match_pbx_c() {
        let weight = |text: &str| p(text).positions().unwrap()[0].weight();
        assert_eq!(weight("_5"), 0x135);
        assert_eq!(weight("_[12]"), 0x231);
        assert_eq!(weight("_N"), 0x832);
        assert_eq!(weight("_Z"), 0x931);
        assert_eq!(weight("_X"), 0xA30);
        assert_eq!(weight("_."), 0x18000);
        assert_eq!(weight("_!"), 0x28000);
        assert_eq!(weight("_[a-z]"), (26 << 8) | 0x61);
    }

    #[test]
    fn parses_valid_entries() {
        for text in [
            "1000",
            "*98",
            "#",
            "+33123",
            "s",
            "fax",
            "555-1234",
            "1_2",
            "12]",
            "_9NXX-XXXX",
            "_x.",
            "_[1-5a]",
            "_*21!",
            "_+33X.",
            "_[X]",
            "_[-1]",
            "_[1-]",
            "_[[]",
            "_X. ",
            "_X!-",
            "_ 1 2",
            "__",
            "_[--3]",
        ] {
            assert!(Pattern::parse(text).is_ok(), "{text:?}");
        }
        assert!(p("_9NXX").is_pattern());
        assert!(!p("9").is_pattern());
        assert!(p("_9X!").is_early_match());
        assert!(!p("_9X.").is_early_match());
        assert!(
            !p("9!").is_early_match(),
            "an exact extension has no wildcard"
        );
        assert_eq!(p("555-1234").exact(), Some("5551234"));
        assert_eq!(p("_NXX-XX").as_str(), "_NXX-XX");
        assert_eq!(p("_NXX-XX").to_string(), "_NXX-XX");
        assert_eq!("_X.".parse::<Pattern>(), Ok(p("_X.")));
        assert_eq!(format!("{:?}", p("_X.")), "Pattern(\"_X.\")");
        let max = "1".repeat(Pattern::MAX_LEN);
        assert!(Pattern::parse(&max).is_ok());
    }

    #[test]
    fn rejects_invalid_entries_with_position() {
        use PatternError as E;
        let cases: &[(&str, PatternError)] = &[
            ("", E::Empty { position: 0 }),
            ("_", E::Empty { position: 1 }),
            ("_--", E::Empty { position: 3 }),
            ("- -", E::Empty { position: 3 }),
            ("_12[3", E::UnterminatedSet { position: 3 }),
            ("_[", E::UnterminatedSet { position: 1 }),
            ("_1[]", E::EmptySet { position: 2 }),
            (
                "_[5-1]",
                E::ReversedRange {
                    position: 2,
                    first: '5',
                    last: '1',
                },
            ),
            (
                "_[1a-A]",
                E::ReversedRange {
                    position: 3,
                    first: 'a',
                    last: 'A',
                },
            ),
            (
                "_X.1",
                E::AfterWildcard {
                    position: 3,
                    ch: '1',
                    wildcard: 2,
                },
            ),
            (
                "_X!- X",
                E::AfterWildcard {
                    position: 5,
                    ch: 'X',
                    wildcard: 2,
                },
            ),
            (
                "_..",
                E::AfterWildcard {
                    position: 2,
                    ch: '.',
                    wildcard: 1,
                },
            ),
            (
                "_12/34",
                E::InvalidChar {
                    position: 3,
                    ch: '/',
                },
            ),
            (
                "12/34",
                E::InvalidChar {
                    position: 2,
                    ch: '/',
                },
            ),
            (
                "_12]",
                E::InvalidChar {
                    position: 3,
                    ch: ']',
                },
            ),
            (
                "_1\t",
                E::InvalidChar {
                    position: 2,
                    ch: '\t',
                },
            ),
            (
                "_1é",
                E::InvalidChar {
                    position: 2,
                    ch: 'é',
                },
            ),
            (
                "1é",
                E::InvalidChar {
                    position: 1,
                    ch: 'é',
                },
            ),
            (
                "_[1é]",
                E::InvalidChar {
                    position: 3,
                    ch: 'é',
                },
            ),
            (
                "_[1/]",
                E::InvalidChar {
                    position: 3,
                    ch: '/',
                },
            ),
            (
                "1\u{7f}",
                E::InvalidChar {
                    position: 1,
                    ch: '\u{7f}',
                },
            ),
        ];
        for (text, expected) in cases {
            let err = Pattern::parse(text).expect_err(text);
            assert_eq!(&err, expected, "{text:?}");
            assert_eq!(err.position(), expected.position());
            assert!(
                err.to_string().contains(&err.position().to_string()),
                "{err}"
            );
        }
        let long = "1".repeat(Pattern::MAX_LEN + 1);
        assert_eq!(
            Pattern::parse(&long),
            Err(E::TooLong {
                len: 257,
                max: 256,
                position: 256
            })
        );
    }

    #[test]
    fn matching() {
        use Match::{Full, FullAndMore, No, Partial};
        let cases: &[(&str, &str, Match)] = &[
            ("_9NXX", "", Partial),
            ("_9NXX", "9", Partial),
            ("_9NXX", "92", Partial),
            ("_9NXX", "9200", Full),
            ("_9NXX", "92000", No),
            ("_9NXX", "91", No),
            ("_9NXX", "9-2-0-0", Full),
            ("_X.", "", Partial),
            ("_X.", "1", Partial), // `.` needs at least one character
            ("_X.", "12", FullAndMore),
            ("_X.", "1abc", FullAndMore),
            ("_X.", "a", No),
            ("_X!", "", Partial),
            ("_X!", "1", FullAndMore), // `!` accepts nothing
            ("_X!", "12", FullAndMore),
            ("_!", "", FullAndMore),
            ("_!", "anything", FullAndMore),
            ("_.", "", Partial),
            ("_.", "é", FullAndMore),
            ("_X", "é", No),
            ("_Z", "0", No),
            ("_Z", "1", Full),
            ("_N", "1", No),
            ("_N", "2", Full),
            ("_n", "9", Full),
            ("_[1-5a]", "a", Full),
            ("_[1-5a]", "A", No),
            ("_[1-5a]", "6", No),
            ("_[1-5a]", "3", Full),
            ("_[X]", "X", Full),
            ("_[X]", "1", No),
            ("_[-1]", "-", Partial), // dashes in the number are skipped
            ("_*21X.", "*2", Partial),
            ("_*21X.", "*2134", FullAndMore),
            ("_+33X.", "+331", Partial),
            ("_+33X.", "0033", No),
            ("_s", "s", Full),
            ("_s", "S", No), // literals are case-sensitive
            ("_x", "x", No), // `x` is X
            ("123", "", Partial),
            ("123", "12", Partial),
            ("123", "123", Full),
            ("123", "1-23", Full),
            ("123", "1234", No),
            ("123", "13", No),
            ("555-1234", "5551234", Full),
            ("_NXX-XXXX", "555-1234", Full),
            ("_X", "-", Partial),
        ];
        for &(pattern, number, expected) in cases {
            let pattern = p(pattern);
            assert_eq!(
                pattern.matches(number),
                expected,
                "{pattern} with {number:?}"
            );
            assert_eq!(pattern.is_match(number), expected.is_match());
            assert_eq!(
                pattern.could_match_more(number),
                expected.could_match_more()
            );
        }
    }

    /// `a.cmp(b)` for pairs worked out by hand from `ext_cmp` in Asterisk's
    /// `main/pbx.c` (see the module documentation for the weights).
    #[test]
    fn ordering_table() {
        let pairs: &[(&str, &str, Ordering)] = &[
            // Exact extensions: byte strings, dashes ignored.
            ("1", "2", Less),
            ("10", "2", Less), // not numeric: '1' < '2'
            ("1", "10", Less), // the end of a string (NUL) sorts first
            ("555-1234", "5551234", Equal),
            ("*98", "100", Less), // '*' 0x2A < '1'
            ("#", "*", Less),     // '#' 0x23 < '*' 0x2A
            ("s", "S", Greater),  // case-sensitive bytes
            ("+331", "0", Less),  // '+' 0x2B < '0'
            // Exact extensions before every pattern.
            ("9999", "_X", Less),
            ("_1", "1", Greater),
            ("zzz", "_.", Less),
            // One position: lower weight first.
            ("_1", "_2", Less),     // 0x131 < 0x132
            ("_5", "_[12]", Less),  // 0x135 < 0x231: a literal beats any set
            ("_[12]", "_N", Less),  // 0x231 < 0x832
            ("_N", "_Z", Less),     // 0x832 < 0x931
            ("_Z", "_X", Less),     // 0x931 < 0xA30
            ("_X", "_.", Less),     // 0xA30 < 0x18000
            ("_.", "_!", Less),     // 0x18000 < 0x28000
            ("_[0-8]", "_X", Less), // 0x930 < 0xA30
            ("_[0-8]", "_Z", Less), // 9 chars each: lowest '0' < '1'
            ("_[1-9]", "_[0-8]", Greater),
            ("_N", "_[2-8]", Greater), // 0x832 > 0x732: fewer characters first
            ("_[2-9]", "_[3-9a]", Less), // 0x832 < 0x833
            ("_[a-c]", "_[1-3]", Greater), // 0x361 > 0x331
            ("_[a-z]", "_X", Greater), // 26 characters: 0x1A61
            ("_[0-9a]", "_X", Greater), // 0xB30 > 0xA30
            ("_[Xx]", "_X", Less),     // letters X and x: 0x258 < 0xA30
            ("_[-1]", "_[01]", Less),  // '-' 0x2D is the lowest: 0x22D < 0x230
            ("_*X", "_#X", Greater),   // 0x12A > 0x123
            // Equal weights: the set with the lowest character the other lacks first.
            ("_[13]", "_[14]", Less),
            ("_[14]", "_[23]", Less),       // 0x231 < 0x232 (weights differ)
            ("_[1-3]", "_[124]", Less),     // both 0x331; '3' only in the first
            ("_[0-79]", "_[0-8]", Greater), // both 0x930; '8' only in the second
            // Same characters accepted: the same extension for Asterisk.
            ("_X", "_[0-9]", Equal),
            ("_x", "_X", Equal),
            ("_n", "_[2-9]", Equal),
            ("_[2-9]", "_N", Equal),
            ("_[5]", "_5", Equal),
            ("_[55]", "_5", Equal),
            ("_[1-2]", "_[12]", Equal),
            ("_[13]", "_[31]", Equal),
            ("_[-1]", "_[1-]", Equal), // both {'-', '1'}
            ("_NXX-XXXX", "_NXXXXXX", Equal),
            ("_5 5", "_55", Equal),
            // Several positions: the first difference decides.
            ("_9NXX", "_9XXX", Less),
            ("_9XXX", "_NXXX", Less), // literal 9 before N at the first position
            ("_0X.", "_00.", Greater),
            ("_NXXNXXXXXX", "_1NXXNXXXXXX", Greater), // N vs literal 1, length irrelevant
            ("_1234", "_123X", Less),
            ("_[12]X", "_1X", Greater),
            ("_Z.", "_X", Less), // decided at the first position
            ("_[1-3][1-3]", "_[1-3]X", Less),
            ("_*21!", "_*2X", Less), // '1' < X at the third position
            // One is a prefix of the other: the end (0x30000) weighs the most, so the
            // longer pattern sorts first.
            ("_12X", "_12", Less),
            ("_XXXX", "_XXX", Less),
            ("_12", "_12!", Greater), // '!' 0x28000 < end 0x30000
            ("_X.", "_X", Less),
            ("_X!", "_X", Less),
            // Wildcards against positions.
            ("_12.", "_12!", Less),
            ("_12X", "_12.", Less),
            ("_X.", "_XX", Greater),
            ("_!", "_X.", Greater),
            ("_9.", "_9!", Less),
            ("_.", "_X", Greater),
        ];
        assert!(pairs.len() >= 50);
        for &(a, b, expected) in pairs {
            let (pa, pb) = (p(a), p(b));
            assert_eq!(pa.cmp(&pb), expected, "{a} vs {b}");
            assert_eq!(pb.cmp(&pa), expected.reverse(), "{b} vs {a}");
            assert_eq!(pa == pb, expected == Equal, "{a} == {b}");
            assert_eq!(
                oracle::ext_cmp(a, b).cmp(&0),
                expected,
                "oracle: {a} vs {b}"
            );
        }
    }

    #[test]
    fn sorting_a_dialplan() {
        let mut entries: Vec<Pattern> = [
            "_X.", "_!", "_NXXXXXX", "_0X.", "100", "_1XX", "*98", "_12X", "_12!", "_12", "101",
        ]
        .iter()
        .map(|t| p(t))
        .collect();
        entries.sort();
        let sorted: Vec<&str> = entries.iter().map(Pattern::as_str).collect();
        assert_eq!(
            sorted,
            [
                "*98", "100", "101", "_0X.", "_12X", "_12!", "_12", "_1XX", "_NXXXXXX", "_X.", "_!"
            ]
        );
    }

    /// An independent, string-based model of `pbx.c` (`ext_cmp` and
    /// `_extension_match_core`), written from its documented behaviour, to check the
    /// parsed representation against on random input.
    mod oracle {
        use std::cmp::Ordering;

        /// `ext_cmp_pattern_pos`: the weight of the next position of `s` from `*i`,
        /// filling `bits` (bit 7 of byte 0 is character 0).
        fn pattern_pos(s: &[u8], i: &mut usize, bits: &mut [u8; 32]) -> u32 {
            let next = |i: &mut usize| {
                let c = s.get(*i).copied().unwrap_or(0);
                *i += 1;
                c
            };
            loop {
                let mut c = next(i);
                while c == b'-' {
                    c = next(i);
                }
                let mut mark = |c: u8| bits[usize::from(c / 8)] |= 0x80 >> (c % 8);
                match c {
                    0 => return 0x30000,
                    b'.' => return 0x18000,
                    b'!' => return 0x28000,
                    b'N' | b'n' => {
                        (b'2'..=b'9').for_each(&mut mark);
                        return 0x800 | u32::from(b'2');
                    }
                    b'Z' | b'z' => {
                        (b'1'..=b'9').for_each(&mut mark);
                        return 0x900 | u32::from(b'1');
                    }
                    b'X' | b'x' => {
                        (b'0'..=b'9').for_each(&mut mark);
                        return 0xA00 | u32::from(b'0');
                    }
                    b'[' => {
                        let Some(len) = s[*i..].iter().position(|&c| c == b']') else {
                            return 0x40000;
                        };
                        let end = *i + len;
                        let (mut count, mut min) = (0u32, 0xffu32);
                        while *i < end {
                            let first = s[*i];
                            let last = if *i + 2 < end && s[*i + 1] == b'-' {
                                *i += 2;
                                s[*i]
                            } else {
                                first
                            };
                            min = min.min(u32::from(first));
                            for c in first..=last {
                                let mask = 0x80 >> (c % 8);
                                if bits[usize::from(c / 8)] & mask == 0 {
                                    bits[usize::from(c / 8)] |= mask;
                                    count += 0x100;
                                }
                            }
                            *i += 1;
                        }
                        *i = end + 1;
                        if count != 0 {
                            return count | min;
                        }
                    }
                    c => {
                        mark(c);
                        return 0x100 | u32::from(c);
                    }
                }
            }
        }

        /// What Asterisk stores when it loads an entry (`ext_strncpy`): spaces are
        /// dropped, except inside the `[...]` sets of a pattern.
        fn load(entry: &str) -> String {
            let is_pattern = entry.starts_with('_');
            let mut in_set = false;
            let mut stored = String::new();
            for c in entry.chars() {
                match c {
                    '[' if is_pattern => in_set = true,
                    ']' => in_set = false,
                    ' ' if !in_set => continue,
                    _ => {}
                }
                stored.push(c);
            }
            stored
        }

        /// `ext_cmp` on the loaded entries, returning <0, 0 or >0.
        pub(super) fn ext_cmp(a: &str, b: &str) -> i64 {
            let (a, b) = (&*load(a), &*load(b));
            match (a.strip_prefix('_'), b.strip_prefix('_')) {
                (None, Some(_)) => -1,
                (Some(_), None) => 1,
                (None, None) => {
                    let strip = |s: &str| s.bytes().filter(|&c| c != b'-').collect::<Vec<_>>();
                    match strip(a).cmp(&strip(b)) {
                        Ordering::Less => -1,
                        Ordering::Equal => 0,
                        Ordering::Greater => 1,
                    }
                }
                (Some(a), Some(b)) => {
                    let (a, b) = (a.as_bytes(), b.as_bytes());
                    let (mut i, mut j) = (0, 0);
                    loop {
                        let (mut abits, mut bbits) = ([0u8; 32], [0u8; 32]);
                        let wa = pattern_pos(a, &mut i, &mut abits);
                        let wb = pattern_pos(b, &mut j, &mut bbits);
                        let mut cmp = i64::from(wa) - i64::from(wb);
                        if cmp == 0 {
                            cmp = match bbits.cmp(&abits) {
                                Ordering::Less => -1,
                                Ordering::Equal => 0,
                                Ordering::Greater => 1,
                            };
                        }
                        if cmp != 0 || wa == 0x30000 {
                            return cmp;
                        }
                    }
                }
            }
        }

        /// `_extension_match_core`: 0 no match, 1 match, 2 early match (`!`).
        /// `more` selects `E_MATCHMORE` instead of `E_MATCH`.
        pub(super) fn match_core(pattern: &str, data: &str, more: bool) -> u8 {
            let pattern = &*load(pattern);
            let Some(pattern) = pattern.strip_prefix('_') else {
                let strip = |s: &str| s.bytes().filter(|&c| c != b'-').collect::<Vec<_>>();
                let (p, d) = (strip(pattern), strip(data));
                return u8::from(if more {
                    p.len() > d.len() && p.starts_with(&d)
                } else {
                    p == d
                });
            };
            let (p, d) = (pattern.as_bytes(), data.as_bytes());
            let (mut i, mut j) = (0, 0);
            loop {
                while d.get(j) == Some(&b'-') {
                    j += 1;
                }
                while p.get(i) == Some(&b'-') {
                    i += 1;
                }
                let (Some(&c), Some(&pc)) = (d.get(j), p.get(i)) else {
                    break;
                };
                match pc {
                    b'[' => {
                        i += 1;
                        let Some(len) = p[i..].iter().position(|&c| c == b']') else {
                            return 0;
                        };
                        let end = i + len;
                        let mut found = false;
                        while i < end {
                            if i + 2 < end && p[i + 1] == b'-' {
                                if p[i] <= c && c <= p[i + 2] {
                                    found = true;
                                    break;
                                }
                                i += 3;
                            } else if p[i] == c {
                                found = true;
                                break;
                            } else {
                                i += 1;
                            }
                        }
                        if !found {
                            return 0;
                        }
                        i = end;
                    }
                    b'N' | b'n' if !(b'2'..=b'9').contains(&c) => return 0,
                    b'X' | b'x' if !c.is_ascii_digit() => return 0,
                    b'Z' | b'z' if !(b'1'..=b'9').contains(&c) => return 0,
                    b'N' | b'n' | b'X' | b'x' | b'Z' | b'z' => {}
                    b'.' => return 1,
                    b'!' => return 2,
                    pc if pc != c => return 0,
                    _ => {}
                }
                i += 1;
                j += 1;
            }
            if j < d.len() {
                return 0;
            }
            match p.get(i) {
                None => u8::from(!more),
                Some(b'!') => 2,
                Some(_) => u8::from(more),
            }
        }
    }

    /// Random entries over a small alphabet, so that collisions and shared prefixes
    /// are frequent.
    fn entry_text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[0-9*# -]{1,5}",
            "_([0-9XNZxnz*# -]|\\[[0-9a-c -]{1,4}\\]){1,5}[.!]?",
            "_[1-3XNZ]{0,3}[.!]?",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn ordering_agrees_with_pbx_c(a in entry_text(), b in entry_text()) {
            let (Ok(pa), Ok(pb)) = (Pattern::parse(&a), Pattern::parse(&b)) else {
                return Ok(());
            };
            prop_assert_eq!(pa.cmp(&pb), oracle::ext_cmp(&a, &b).cmp(&0), "{} vs {}", a, b);
            prop_assert_eq!(pa == pb, pa.cmp(&pb) == Equal);
        }

        #[test]
        fn matching_agrees_with_pbx_c(a in entry_text(), number in "[0-9a*#-]{0,7}") {
            let Ok(pattern) = Pattern::parse(&a) else {
                return Ok(());
            };
            prop_assert_eq!(
                pattern.is_match(&number),
                oracle::match_core(&a, &number, false) != 0,
                "{} with {:?}", a, number
            );
            let more = oracle::match_core(&a, &number, true);
            prop_assert_eq!(pattern.could_match_more(&number), more != 0, "{} with {:?}", a, number);
            prop_assert_eq!(more == 2, pattern.is_early_match() && pattern.is_match(&number));
        }

        #[test]
        fn ordering_is_a_total_order(a in entry_text(), b in entry_text(), c in entry_text()) {
            let (Ok(a), Ok(b), Ok(c)) = (Pattern::parse(&a), Pattern::parse(&b), Pattern::parse(&c)) else {
                return Ok(());
            };
            prop_assert_eq!(a.cmp(&b), b.cmp(&a).reverse());
            if a <= b && b <= c {
                prop_assert!(a <= c);
            }
        }

        #[test]
        fn never_panics(text in "\\PC{0,300}", number in "\\PC{0,20}") {
            if let Ok(pattern) = Pattern::parse(&text) {
                let m = pattern.matches(&number);
                prop_assert_eq!(m.is_match(), pattern.is_match(&number));
                prop_assert_eq!(pattern.cmp(&pattern), Equal);
            } else if let Err(err) = Pattern::parse(&text) {
                prop_assert!(err.position() <= text.len());
            }
        }

        /// A match that allows more means the number plus any digit matches or
        /// could still match; a plain full match means no longer number matches.
        #[test]
        fn match_kinds_are_consistent(a in entry_text(), number in "[0-9]{0,6}", digit in "[0-9]") {
            let Ok(pattern) = Pattern::parse(&a) else {
                return Ok(());
            };
            let longer = format!("{number}{digit}");
            match pattern.matches(&number) {
                Match::No | Match::Full => prop_assert_eq!(pattern.matches(&longer), Match::No),
                Match::FullAndMore => prop_assert!(pattern.is_match(&longer)),
                Match::Partial => {}
            }
        }
    }
}
