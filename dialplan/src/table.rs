//! [`ExtensionTable`]: the entries of one context, indexed so that a lookup returns
//! the entry Asterisk would choose without scanning every pattern.
//!
//! # How it is indexed
//!
//! Exact extensions live in a hash map (lookup) and an ordered set (prefix queries
//! for [`ExtensionTable::could_match_more`]). Patterns live in a trie whose edges are
//! pattern positions; a node keeps its children in `pbx.c` order (a literal, then
//! the sets by weight, then `.`, then `!`, and the pattern that ends there last).
//! Since the Asterisk order of two patterns is decided at their first differing
//! position, a depth-first walk of the trie that follows the dialled number meets
//! the patterns in exactly that order, and the first one that matches is the winner.
//! Each node is visited at most once per lookup; a node's literal child is found by
//! binary search, so literal-heavy dialplans cost a few steps per digit.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;

use crate::pattern::{CharSet, Pattern, Position};

/// A second entry equal to one already in the table (in the sense of `pbx.c`'s
/// `ext_cmp`, so `_X` collides with `_[0-9]` and `12-3` with `123`).
///
/// It gives the rejected pattern and value back.
#[derive(Debug, thiserror::Error)]
#[error("extension '{}' is already in the table as '{existing}'", .pattern)]
pub struct DuplicateEntry<T> {
    /// The pattern that was not inserted.
    pub pattern: Pattern,
    /// The value that was not inserted.
    pub value: T,
    /// The entry already in the table, as it was written.
    pub existing: Pattern,
}

/// A trie node for patterns. Indices point into [`ExtensionTable::nodes`] (children)
/// or [`ExtensionTable::entries`] (entries).
#[derive(Debug, Clone, Default)]
struct Node {
    /// One-character positions, sorted by character (their `pbx.c` order too).
    literals: Vec<(u8, usize)>,
    /// Sets of two characters or more, in `pbx.c` order.
    sets: Vec<(CharSet, usize)>,
    /// The entry whose pattern ends with `.` here (`.` is always last).
    dot: Option<usize>,
    /// The entry whose pattern ends with `!` here.
    bang: Option<usize>,
    /// The entry whose pattern ends here.
    end: Option<usize>,
}

/// The entries of a dialplan context (exact extensions and patterns), each with a
/// value of your choice, answering "which entry handles this number?" like Asterisk.
///
/// - [`lookup`](Self::lookup) returns the first matching entry in `pbx.c` order:
///   an exact extension if one matches, else the pattern that sorts first.
/// - [`could_match_more`](Self::could_match_more) answers "should an overlap-dialling
///   switch wait for more digits?".
///
/// Dashes in dialled numbers are ignored, as in Asterisk.
///
/// ```
/// use pbxkit_dialplan::pattern::Pattern;
/// use pbxkit_dialplan::table::ExtensionTable;
///
/// let mut table = ExtensionTable::new();
/// for (entry, route) in [("1000", "alice"), ("_1XXX", "users"), ("_0X.", "trunk")] {
///     table.insert(Pattern::parse(entry)?, route)?;
/// }
/// assert_eq!(table.lookup("1000").map(|(_, r)| *r), Some("alice"));
/// assert_eq!(table.lookup("1001").map(|(p, _)| p.as_str()), Some("_1XXX"));
/// assert!(table.lookup("2000").is_none());
/// assert!(table.could_match_more("10"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct ExtensionTable<T> {
    entries: Vec<(Pattern, T)>,
    /// Exact extension (separators removed) → entry.
    exact: HashMap<Box<str>, usize>,
    /// The same keys, ordered, for "is there an exact extension longer than this".
    exact_ordered: BTreeSet<Box<str>>,
    /// The pattern trie; `nodes[0]` is the root.
    nodes: Vec<Node>,
}

impl<T> Default for ExtensionTable<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> ExtensionTable<T> {
    /// An empty table.
    pub fn new() -> Self {
        Self {
            entries: Vec::new(),
            exact: HashMap::new(),
            exact_ordered: BTreeSet::new(),
            nodes: vec![Node::default()],
        }
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table has no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry equal to `pattern` (same extension for Asterisk), if any.
    pub fn get(&self, pattern: &Pattern) -> Option<(&Pattern, &T)> {
        let index = self.slot(pattern)?;
        self.entry(index)
    }

    /// Adds an entry.
    ///
    /// # Errors
    ///
    /// [`DuplicateEntry`], holding `pattern` and `value`, when an equal entry is
    /// already there (Asterisk refuses those too unless told to replace). Use
    /// [`replace`](Self::replace) to overwrite.
    pub fn insert(&mut self, pattern: Pattern, value: T) -> Result<(), DuplicateEntry<T>> {
        if let Some((existing, _)) = self.get(&pattern) {
            let existing = existing.clone();
            return Err(DuplicateEntry {
                pattern,
                value,
                existing,
            });
        }
        self.replace(pattern, value);
        Ok(())
    }

    /// Adds an entry, or replaces the equal one and returns it.
    pub fn replace(&mut self, pattern: Pattern, value: T) -> Option<(Pattern, T)> {
        if let Some(index) = self.slot(&pattern) {
            let slot = self.entries.get_mut(index)?;
            return Some(std::mem::replace(slot, (pattern, value)));
        }
        let index = self.entries.len();
        if let Some(exten) = pattern.exact() {
            self.exact.insert(exten.into(), index);
            self.exact_ordered.insert(exten.into());
        } else if let Some(positions) = pattern.positions() {
            let node = self.node_for(positions);
            if let Some(node) = self.nodes.get_mut(node) {
                match positions.last() {
                    Some(Position::Dot) => node.dot = Some(index),
                    Some(Position::Bang) => node.bang = Some(index),
                    _ => node.end = Some(index),
                }
            }
        }
        self.entries.push((pattern, value));
        None
    }

    /// The entry Asterisk would run for `number`: the first entry in `pbx.c` order
    /// that matches it (so an exact extension if there is one), or `None`.
    pub fn lookup(&self, number: &str) -> Option<(&Pattern, &T)> {
        let number = strip_dashes(number);
        if let Some(&index) = self.exact.get(number.as_ref()) {
            return self.entry(index);
        }
        let index = self.find_match(0, number.as_bytes())?;
        self.entry(index)
    }

    /// Whether Asterisk would wait for more digits after `number` (its `E_MATCHMORE`):
    /// the first entry in `pbx.c` order that a longer number could match exists and
    /// is not an early match.
    ///
    /// An entry ending with `!` that `number` already matches is "final": if it is
    /// the first candidate, the answer is `false` even though longer numbers match
    /// too. An entry that `number` matches exactly and no longer number would (such
    /// as the exact extension `number` itself) is not a candidate.
    pub fn could_match_more(&self, number: &str) -> bool {
        let number = strip_dashes(number);
        // Exact extensions sort before patterns: any longer one decides.
        let longer_exact = self
            .exact_ordered
            .range::<str, _>((Bound::Excluded(number.as_ref()), Bound::Unbounded))
            .next()
            .is_some_and(|exten| exten.starts_with(number.as_ref()));
        longer_exact || self.find_more(0, number.as_bytes()).unwrap_or(false)
    }

    /// Every entry in `pbx.c` order (the order of Asterisk's `dialplan show`).
    pub fn iter(&self) -> impl Iterator<Item = (&Pattern, &T)> {
        let mut order: Vec<usize> = Vec::with_capacity(self.entries.len());
        order.extend(
            self.exact_ordered
                .iter()
                .filter_map(|exten| self.exact.get(exten).copied()),
        );
        self.collect_patterns(0, &mut order);
        order.into_iter().filter_map(|index| self.entry(index))
    }

    fn entry(&self, index: usize) -> Option<(&Pattern, &T)> {
        self.entries.get(index).map(|(p, v)| (p, v))
    }

    /// The index of the entry equal to `pattern`.
    fn slot(&self, pattern: &Pattern) -> Option<usize> {
        if let Some(exten) = pattern.exact() {
            return self.exact.get(exten).copied();
        }
        let positions = pattern.positions()?;
        let (last, path) = match positions.split_last() {
            Some((last @ (Position::Dot | Position::Bang), path)) => (Some(*last), path),
            _ => (None, positions),
        };
        let mut node = self.nodes.first()?;
        for position in path {
            let child = match position {
                Position::Set(set) => self.child(node, *set)?,
                Position::Dot | Position::Bang => return None,
            };
            node = self.nodes.get(child)?;
        }
        match last {
            Some(Position::Dot) => node.dot,
            Some(Position::Bang) => node.bang,
            _ => node.end,
        }
    }

    fn child(&self, node: &Node, set: CharSet) -> Option<usize> {
        match set.single() {
            Some(c) => literal(node, c),
            None => node.sets.iter().find(|(s, _)| *s == set).map(|&(_, n)| n),
        }
    }

    /// The node where `positions` ends (before a final wildcard), created as needed.
    fn node_for(&mut self, positions: &[Position]) -> usize {
        let mut node = 0;
        for position in positions {
            let Position::Set(set) = *position else {
                break; // a wildcard is always last: it lives in the node itself
            };
            let existing = self.nodes.get(node).and_then(|n| self.child(n, set));
            node = match existing {
                Some(child) => child,
                None => {
                    let child = self.nodes.len();
                    self.nodes.push(Node::default());
                    if let Some(parent) = self.nodes.get_mut(node) {
                        match set.single() {
                            Some(c) => {
                                let at = parent.literals.partition_point(|&(l, _)| l < c);
                                parent.literals.insert(at, (c, child));
                            }
                            None => {
                                let key = Position::Set(set);
                                let at = parent
                                    .sets
                                    .partition_point(|&(s, _)| Position::Set(s) < key);
                                parent.sets.insert(at, (set, child));
                            }
                        }
                    }
                    child
                }
            };
        }
        node
    }

    /// The first pattern in order, under `node`, that `rest` matches.
    fn find_match(&self, node: usize, rest: &[u8]) -> Option<usize> {
        let node = self.nodes.get(node)?;
        let Some((&c, tail)) = rest.split_first() else {
            // Nothing left: only `!` (zero or more) or the end of a pattern match.
            return node.bang.or(node.end);
        };
        if let Some(found) = literal(node, c).and_then(|child| self.find_match(child, tail)) {
            return Some(found);
        }
        for &(set, child) in &node.sets {
            if set.contains(c)
                && let Some(found) = self.find_match(child, tail)
            {
                return Some(found);
            }
        }
        node.dot.or(node.bang)
    }

    /// Under `node`, the decision of the first pattern in order that a number
    /// longer than the dialled one could match: `Some(true)` for an ordinary one,
    /// `Some(false)` for an early match (`!` reached), `None` if there is none.
    fn find_more(&self, node: usize, rest: &[u8]) -> Option<bool> {
        let node = self.nodes.get(node)?;
        let Some((&c, tail)) = rest.split_first() else {
            // Every child leads to a pattern that needs (literal, set, `.`) or accepts
            // (`!`) more digits; the first in order decides. A pattern ending here is
            // a full match only, not a candidate.
            if !node.literals.is_empty() || !node.sets.is_empty() || node.dot.is_some() {
                return Some(true);
            }
            return node.bang.map(|_| false);
        };
        if let Some(found) = literal(node, c).and_then(|child| self.find_more(child, tail)) {
            return Some(found);
        }
        for &(set, child) in &node.sets {
            if set.contains(c)
                && let Some(found) = self.find_more(child, tail)
            {
                return Some(found);
            }
        }
        if node.dot.is_some() {
            Some(true)
        } else {
            node.bang.map(|_| false)
        }
    }

    /// Appends the patterns under `node` in `pbx.c` order.
    fn collect_patterns(&self, node: usize, order: &mut Vec<usize>) {
        let Some(node) = self.nodes.get(node) else {
            return;
        };
        for &(_, child) in &node.literals {
            self.collect_patterns(child, order);
        }
        for &(_, child) in &node.sets {
            self.collect_patterns(child, order);
        }
        order.extend(node.dot.into_iter().chain(node.bang).chain(node.end));
    }
}

impl<T> FromIterator<(Pattern, T)> for ExtensionTable<T> {
    /// Builds a table; a later duplicate replaces an earlier one.
    fn from_iter<I: IntoIterator<Item = (Pattern, T)>>(iter: I) -> Self {
        let mut table = Self::new();
        for (pattern, value) in iter {
            table.replace(pattern, value);
        }
        table
    }
}

fn literal(node: &Node, c: u8) -> Option<usize> {
    node.literals
        .binary_search_by_key(&c, |&(l, _)| l)
        .ok()
        .and_then(|i| node.literals.get(i))
        .map(|&(_, child)| child)
}

/// The number as Asterisk compares it: without `-`.
fn strip_dashes(number: &str) -> Cow<'_, str> {
    if number.contains('-') {
        Cow::Owned(number.replace('-', ""))
    } else {
        Cow::Borrowed(number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(text: &str) -> Pattern {
        Pattern::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    fn table(entries: &[&str]) -> ExtensionTable<usize> {
        let mut table = ExtensionTable::new();
        for (i, entry) in entries.iter().enumerate() {
            table.insert(p(entry), i).unwrap();
        }
        table
    }

    fn winner<'a>(table: &'a ExtensionTable<usize>, number: &str) -> Option<&'a str> {
        table.lookup(number).map(|(p, _)| p.as_str())
    }

    #[test]
    fn lookup_follows_pbx_c_order() {
        let t = table(&[
            "_X.", "_!", "_NXXXXXX", "_0X.", "100", "_1XX", "*98", "_12X", "_12!", "_12",
            "_[1-3]XX", "_1[0-5]X",
        ]);
        let cases = [
            ("100", Some("100")),      // exact before patterns
            ("101", Some("_1[0-5]X")), // [0-5] (0x630) before X (0xA30)
            ("161", Some("_1XX")),
            ("261", Some("_[1-3]XX")),
            ("121", Some("_12X")), // longer pattern sorts before its prefix
            ("12", Some("_12!")),  // `!` before the end of `_12`
            ("1", Some("_!")),     // `_X.` needs two characters, `_12!` needs "12"
            ("5551234", Some("_NXXXXXX")),
            ("0123", Some("_0X.")),
            ("01", Some("_X.")), // `_0X.` needs three characters
            ("*98", Some("*98")),
            ("*9", Some("_!")),
            ("", Some("_!")),
            ("55-5-1234", Some("_NXXXXXX")),
        ];
        for (number, expected) in cases {
            assert_eq!(winner(&t, number), expected, "{number:?}");
        }
        let t = table(&["_X.", "_NXX"]);
        assert_eq!(winner(&t, "1"), None);
        assert_eq!(winner(&t, "12"), Some("_X."));
        assert_eq!(winner(&t, "212"), Some("_NXX"));
        assert_eq!(winner(&t, "2123"), Some("_X."));
        assert_eq!(winner(&t, "abc"), None);
    }

    #[test]
    fn could_match_more_like_e_matchmore() {
        let t = table(&["1000", "_1XXX", "*98", "_*21!", "_*2X", "_9NXX", "_0X."]);
        for (number, expected) in [
            ("", true),
            ("1", true),
            ("100", true),
            ("1000", false), // matched exactly; `_1XXX` can't take a fifth digit
            ("*9", true),
            ("*98", false),
            ("*2", true),
            // `_*21!` sorts before `_*2X` ('1' 0x131 < X 0xA30) and "*21" reaches its
            // `!`: an early match, final, even though `_*2X` and longer numbers match.
            ("*21", false),
            ("9", true),
            ("92", true),
            ("9200", false),
            ("0", true),
            ("01", true),
            ("012345", true),
            ("5", false),
        ] {
            assert_eq!(t.could_match_more(number), expected, "{number:?}");
        }
        // A pattern that sorts before the early match keeps the switch waiting.
        let t = table(&["_*21!", "_*21X"]);
        assert!(t.could_match_more("*21"));
        assert!(!t.could_match_more("*215"));
        assert_eq!(winner(&t, "*215"), Some("_*21X"));
    }

    #[test]
    fn duplicates() {
        let mut t = table(&["_X", "12-3"]);
        let err = t.insert(p("_[0-9]"), 7).unwrap_err();
        assert_eq!(
            (err.pattern.as_str(), err.value, err.existing.as_str()),
            ("_[0-9]", 7, "_X")
        );
        assert_eq!(
            err.to_string(),
            "extension '_[0-9]' is already in the table as '_X'"
        );
        let err = t.insert(p("123"), 8).unwrap_err();
        assert_eq!(err.existing.as_str(), "12-3");
        assert_eq!(
            t.replace(p("_[0-9]"), 9).map(|(p, v)| (p.to_string(), v)),
            Some(("_X".into(), 0))
        );
        assert_eq!(
            t.lookup("5").map(|(p, v)| (p.as_str(), *v)),
            Some(("_[0-9]", 9))
        );
        assert_eq!(t.len(), 2);
        assert!(t.get(&p("_x")).is_some());
        assert!(t.get(&p("_Z")).is_none());
        assert!(t.insert(p("_X."), 3).is_ok());
        assert!(t.insert(p("_X!"), 3).is_ok());
        assert!(t.insert(p("_X.").clone(), 4).is_err());
        assert_eq!(t.len(), 4);
        assert!(!t.is_empty());
        assert!(ExtensionTable::<()>::default().is_empty());
    }

    #[test]
    fn iter_is_sorted() {
        let t = table(&[
            "_X.", "_!", "_0X.", "100", "_12!", "_12", "_12X", "*98", "_[13]", "_[14]",
        ]);
        let order: Vec<&str> = t.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            order,
            [
                "*98", "100", "_0X.", "_12X", "_12!", "_12", "_[13]", "_[14]", "_X.", "_!"
            ]
        );
    }

    #[test]
    fn large_table() {
        let mut t = ExtensionTable::new();
        for n in 0..100_000u32 {
            t.insert(p(&format!("{}", 1_000_000 + n)), n).unwrap();
        }
        for n in 0..1_000u32 {
            t.insert(p(&format!("_{n:03}XXXX")), n).unwrap();
        }
        assert_eq!(t.len(), 101_000);
        assert_eq!(t.lookup("1000042").map(|(_, v)| *v), Some(42));
        assert_eq!(
            t.lookup("0421234").map(|(p, _)| p.as_str()),
            Some("_042XXXX")
        );
        assert!(t.lookup("99").is_none());
        assert!(t.could_match_more("100004"));
        assert!(t.could_match_more("042"));
    }

    /// The reference: sort every entry by `Ord` (pbx.c's `ext_cmp`) and scan.
    fn brute_force<'a>(entries: &'a [Pattern], number: &str) -> (Option<&'a Pattern>, bool) {
        let mut sorted: Vec<&Pattern> = entries.iter().collect();
        sorted.sort();
        let winner = sorted.iter().find(|p| p.is_match(number)).copied();
        let more = sorted
            .iter()
            .find(|p| p.could_match_more(number))
            .is_some_and(|p| !(p.is_early_match() && p.is_match(number)));
        (winner, more)
    }

    fn entry_text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[0-3*-]{1,4}",
            "_([0-3XNZ*-]|\\[[0-3a]{1,3}\\]|\\[[0-2]-[1-3]\\]){1,4}[.!]?",
            "_[0-3XNZ]{0,2}[.!]",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn index_agrees_with_brute_force(
            texts in prop::collection::vec(entry_text(), 0..40),
            numbers in prop::collection::vec("[0-4a*-]{0,6}", 1..20),
        ) {
            let mut table = ExtensionTable::new();
            let mut kept = Vec::new();
            for text in &texts {
                let Ok(pattern) = Pattern::parse(text) else { continue };
                if table.insert(pattern.clone(), text.clone()).is_ok() {
                    kept.push(pattern);
                }
            }
            prop_assert_eq!(table.len(), kept.len());
            let mut sorted = kept.clone();
            sorted.sort();
            let listed: Vec<Pattern> = table.iter().map(|(p, _)| p.clone()).collect();
            prop_assert_eq!(&listed, &sorted);
            for number in &numbers {
                let (winner, more) = brute_force(&kept, number);
                let found = table.lookup(number);
                prop_assert_eq!(found.map(|(p, _)| p), winner, "lookup {:?}", number);
                if let Some((p, v)) = found {
                    prop_assert_eq!(p.as_str(), v.as_str());
                }
                prop_assert_eq!(table.could_match_more(number), more, "more {:?}", number);
            }
        }

        #[test]
        fn exact_extensions_win(
            exact in prop::collection::vec("[0-3]{1,4}", 1..20),
            patterns in prop::collection::vec(entry_text(), 0..30),
        ) {
            let mut table = ExtensionTable::new();
            for text in exact.iter().chain(&patterns) {
                if let Ok(pattern) = Pattern::parse(text) {
                    let _ = table.insert(pattern, ());
                }
            }
            for number in &exact {
                let found = table.lookup(number).map(|(p, _)| p);
                prop_assert!(found.is_some_and(|p| !p.is_pattern() && p.exact() == Some(number.as_str())));
            }
        }
    }
}
