//! [`ContactIndex`]: the in-memory index of a file or memory source — contacts with
//! `format_columns` applied, a number index for reverse lookup and folded (lower-cased,
//! accents removed) searched columns for substring search.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use memchr::memmem;

use crate::fold::{fold, fold_into};
use crate::number::NumberPlan;
use crate::source::{Contact, SourceConfig};

/// The key of a first-matched value: its normalised number, or the trimmed value when
/// it is not a number (a SIP URI, an e-mail address).
pub(crate) fn number_key(plan: &NumberPlan, value: &str) -> Option<String> {
    let mut key = String::new();
    number_key_into(plan, value, &mut key).then_some(key)
}

/// [`number_key`] into `key` (replacing what it held), so that indexing reuses one
/// buffer; returns whether `value` has a key (is not blank).
fn number_key_into(plan: &NumberPlan, value: &str, key: &mut String) -> bool {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return false;
    }
    if !plan.normalize_into(trimmed, key) {
        key.clear();
        key.push_str(trimmed);
    }
    true
}

/// Packs a string of at most 32 digits, `*`, `#` and `+` into an integer, one nibble
/// (never 0, so that lengths differ) a character; other strings do not pack. Numbers
/// and most ids are such strings: packed, they are keyed without an allocation each
/// and hashed and compared as 16 bytes.
fn pack(key: &str) -> Option<u128> {
    if key.len() > 32 {
        return None;
    }
    key.bytes().try_fold(0u128, |packed, byte| {
        let nibble = match byte {
            b'0'..=b'9' => byte - b'0' + 1,
            b'*' => 11,
            b'#' => 12,
            b'+' => 13,
            _ => return None,
        };
        Some(packed << 4 | u128::from(nibble))
    })
}

/// A map with string keys, those that [`pack`] kept as integers.
#[derive(Debug, Clone)]
struct KeyMap<V> {
    packed: HashMap<u128, V>,
    text: HashMap<String, V>,
}

impl<V> Default for KeyMap<V> {
    fn default() -> Self {
        Self {
            packed: HashMap::new(),
            text: HashMap::new(),
        }
    }
}

impl<V> KeyMap<V> {
    /// Room for `capacity` keys that pack (the others are the exception).
    fn with_capacity(capacity: usize) -> Self {
        Self {
            packed: HashMap::with_capacity(capacity),
            text: HashMap::new(),
        }
    }

    fn get(&self, key: &str) -> Option<&V> {
        match pack(key) {
            Some(packed) => self.packed.get(&packed),
            None => self.text.get(key),
        }
    }

    /// Inserts `insert()` under `key`, or calls `update` on the value already there.
    fn upsert(&mut self, key: &str, insert: impl FnOnce() -> V, update: impl FnOnce(&mut V)) {
        match pack(key) {
            Some(packed) => {
                self.packed
                    .entry(packed)
                    .and_modify(update)
                    .or_insert_with(insert);
            }
            None => match self.text.get_mut(key) {
                Some(value) => update(value),
                None => {
                    self.text.insert(key.to_owned(), insert());
                }
            },
        }
    }
}

/// The contacts having one normalised number, in record order. Most numbers belong to
/// one contact, kept inline; the others' lists are in [`ContactIndex::shared`]. Two
/// words, without an allocation: a table of millions of numbers stays small.
#[derive(Debug, Clone, Copy)]
enum Positions {
    One(usize),
    /// An index in [`ContactIndex::shared`].
    Shared(usize),
}

/// The most records [`ContactIndex::build_with_capacity`] sizes its tables for: a size
/// hint is a guess (lines of a file that may be blank), and tables past it grow as
/// needed.
const MAX_PRESIZE: usize = 1 << 21;

/// Ends each folded value in [`ContactIndex::haystack`]. 0xFF never occurs in UTF-8, so
/// no (UTF-8) search term can match across two values or two contacts.
const VALUE_END: u8 = 0xFF;

/// Contacts indexed for search, reverse lookup and listing by id.
#[derive(Debug, Clone, Default)]
pub struct ContactIndex {
    contacts: Vec<Contact>,
    /// The folded values of the searched columns of every contact, in record order,
    /// each followed by [`VALUE_END`]: a search is one substring search over contiguous
    /// memory instead of a string comparison per value.
    haystack: Vec<u8>,
    /// Where each contact's values start in `haystack` (non-decreasing; a contact
    /// without searched values has an empty range), then `haystack.len()`.
    starts: Vec<usize>,
    /// Normalised number → contacts having it in a first-matched column, in order.
    numbers: KeyMap<Positions>,
    /// The contacts of the numbers that several contacts have ([`Positions::Shared`]).
    shared: Vec<Vec<usize>>,
    /// Unique column value → first contact having it.
    ids: KeyMap<usize>,
}

impl ContactIndex {
    /// Indexes raw records (column → value) for a source.
    pub fn build(
        config: &SourceConfig,
        plan: &NumberPlan,
        records: impl IntoIterator<Item = BTreeMap<String, String>>,
    ) -> Self {
        let records = records.into_iter();
        let capacity = records.size_hint().0;
        Self::build_with_capacity(config, plan, records, capacity)
    }

    /// [`ContactIndex::build`] for about `capacity` records: the tables are sized once
    /// instead of growing (and hashing every key again) as a large file is read.
    pub(crate) fn build_with_capacity(
        config: &SourceConfig,
        plan: &NumberPlan,
        records: impl IntoIterator<Item = BTreeMap<String, String>>,
        capacity: usize,
    ) -> Self {
        let name: Arc<str> = Arc::from(config.name.as_str());
        let capacity = capacity.min(MAX_PRESIZE);
        let mut index = Self {
            contacts: Vec::with_capacity(capacity),
            starts: Vec::with_capacity(capacity.saturating_add(1)),
            numbers: KeyMap::with_capacity(
                capacity.saturating_mul(config.first_matched_columns.len()),
            ),
            ids: KeyMap::with_capacity(if config.unique_column.is_some() {
                capacity
            } else {
                0
            }),
            ..Self::default()
        };
        // The key of each first-matched value, built in one buffer.
        let mut key = String::new();
        for record in records {
            let position = index.contacts.len();
            index.starts.push(index.haystack.len());
            for value in config
                .searched_columns
                .iter()
                .filter_map(|column| record.get(column))
                .filter(|value| !value.is_empty())
            {
                fold_into(value, &mut index.haystack);
                index.haystack.push(VALUE_END);
            }
            for column in &config.first_matched_columns {
                if let Some(value) = record.get(column)
                    && number_key_into(plan, value, &mut key)
                {
                    let shared = &mut index.shared;
                    index.numbers.upsert(
                        &key,
                        || Positions::One(position),
                        |positions| match *positions {
                            // The same number in two columns of a contact: listed once.
                            Positions::One(first) if first == position => {}
                            Positions::One(first) => {
                                *positions = Positions::Shared(shared.len());
                                shared.push(vec![first, position]);
                            }
                            Positions::Shared(list) => {
                                if let Some(list) = shared.get_mut(list)
                                    && list.last() != Some(&position)
                                {
                                    list.push(position);
                                }
                            }
                        },
                    );
                }
            }
            let contact = config.contact(&name, record);
            if let Some(id) = &contact.id {
                index.ids.upsert(id, || position, |_| {});
            }
            index.contacts.push(contact);
        }
        index.starts.push(index.haystack.len());
        index
    }

    /// The number of contacts.
    pub fn len(&self) -> usize {
        self.contacts.len()
    }

    /// Whether the index has no contact.
    pub fn is_empty(&self) -> bool {
        self.contacts.is_empty()
    }

    /// All contacts, in record order.
    pub fn contacts(&self) -> &[Contact] {
        &self.contacts
    }

    /// Contacts with a searched column containing `term`, ignoring case and accents
    /// ("helene" finds "Hélène"; an empty term matches every contact that has a
    /// searched value), in record order.
    pub fn search(&self, term: &str) -> impl Iterator<Item = &Contact> {
        let term = fold(term.trim());
        let finder = memmem::Finder::new(term.as_bytes()).into_owned();
        // The first contact not yet returned nor skipped.
        let mut next = 0;
        std::iter::from_fn(move || {
            let position = if term.is_empty() {
                // Every contact with a searched value: a non-empty range.
                let skipped = self
                    .starts
                    .get(next..)?
                    .windows(2)
                    .position(|range| range[0] < range[1])?;
                next + skipped
            } else {
                let from = *self.starts.get(next)?;
                let found = from + finder.find(self.haystack.get(from..)?)?;
                // The contact whose range holds the match: the last one starting at or
                // before it (ranges after `next` only, the matches come in order).
                let after = self
                    .starts
                    .get(next..self.contacts.len())?
                    .partition_point(|&start| start <= found);
                (next + after).checked_sub(1)?
            };
            // Past this contact: a contact is returned once, however many matches.
            next = position + 1;
            self.contacts.get(position)
        })
    }

    /// The contacts with `number` in a first-matched column, in record order.
    pub fn reverse(&self, plan: &NumberPlan, number: &str) -> impl Iterator<Item = &Contact> {
        number_key(plan, number)
            .and_then(|key| self.numbers.get(&key))
            .map(|positions| match *positions {
                Positions::One(ref position) => std::slice::from_ref(position),
                Positions::Shared(list) => self.shared.get(list).map_or(&[][..], Vec::as_slice),
            })
            .into_iter()
            .flatten()
            .filter_map(|&position| self.contacts.get(position))
    }

    /// The contact whose unique column is `id`.
    pub fn get(&self, id: &str) -> Option<&Contact> {
        self.ids
            .get(id)
            .and_then(|&position| self.contacts.get(position))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::FormatColumns;

    fn record(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn search_reverse_and_ids() {
        let config = SourceConfig {
            name: "my_csv".to_owned(),
            searched_columns: vec!["fn".to_owned(), "ln".to_owned()],
            first_matched_columns: vec!["num".to_owned(), "mobile".to_owned()],
            unique_column: Some("id".to_owned()),
            format_columns: FormatColumns::new([("name", "{fn} {ln}")]),
        };
        let plan = NumberPlan::with_country_code("33");
        let index = ContactIndex::build(
            &config,
            &plan,
            [
                record(&[
                    ("id", "1"),
                    ("fn", "Alice"),
                    ("ln", "Abrams"),
                    ("num", "01 23 45 67 89"),
                ]),
                record(&[
                    ("id", "2"),
                    ("fn", "Bob"),
                    ("ln", "Benito"),
                    ("num", "1002"),
                    ("mobile", "1002"),
                ]),
                record(&[("id", "3"), ("fn", "Élodie"), ("ln", "Bréal"), ("num", "")]),
            ],
        );
        let names = |it: Vec<&Contact>| {
            it.iter()
                .map(|c| c.fields["name"].clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(index.search("BEN").collect()), ["Bob Benito"]);
        assert_eq!(
            names(index.search("b").collect()),
            ["Alice Abrams", "Bob Benito", "Élodie Bréal"]
        );
        assert_eq!(names(index.search("élo").collect()), ["Élodie Bréal"]);
        assert_eq!(names(index.search("ELO").collect()), ["Élodie Bréal"]);
        assert_eq!(names(index.search("breal").collect()), ["Élodie Bréal"]);
        assert_eq!(
            names(index.reverse(&plan, "+33123456789").collect()),
            ["Alice Abrams"]
        );
        assert_eq!(
            names(index.reverse(&plan, "1002").collect()),
            ["Bob Benito"]
        );
        assert_eq!(index.reverse(&plan, "").count(), 0);
        assert_eq!(index.get("3").map(|c| c.source.as_ref()), Some("my_csv"));
        assert!(index.get("4").is_none());
    }

    #[test]
    fn a_number_shared_by_contacts_finds_each_once() {
        let config = SourceConfig {
            first_matched_columns: vec!["num".to_owned(), "mobile".to_owned()],
            unique_column: Some("id".to_owned()),
            ..SourceConfig::named("s")
        };
        let plan = NumberPlan::with_country_code("33");
        let index = ContactIndex::build(
            &config,
            &plan,
            [
                record(&[("id", "1"), ("num", "1001"), ("mobile", "06 12 34 56 78")]),
                record(&[
                    ("id", "2"),
                    ("num", "0612345678"),
                    ("mobile", "+33612345678"),
                ]),
                record(&[("id", "3"), ("num", "1001")]),
                record(&[("id", "4"), ("mobile", "+33 6 12 34 56 78")]),
            ],
        );
        let ids = |number: &str| {
            index
                .reverse(&plan, number)
                .filter_map(|c| c.id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids("+33612345678"), ["1", "2", "4"]);
        assert_eq!(ids("1001"), ["1", "3"]);
        assert!(ids("1002").is_empty());
        // Nothing searched: no contact matches, not even the empty term.
        assert_eq!(index.search("").count(), 0);
        assert_eq!(index.search("1").count(), 0);
        assert_eq!(ContactIndex::default().search("").count(), 0);
    }

    /// Values and terms from a small alphabet with accents, ligatures, spaces and
    /// upper case, so that matches, near-matches and folding are frequent.
    fn text(max: usize) -> impl proptest::strategy::Strategy<Value = String> {
        proptest::string::string_regex(&format!("[abAB éÉæß-]{{0,{max}}}"))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    proptest::proptest! {
        /// The one-buffer search finds exactly what comparing each folded value finds,
        /// in the same order: values never match across each other or contacts.
        #[test]
        fn search_equals_a_scan_of_every_value(
            records in proptest::collection::vec(
                (proptest::option::of(text(5)), proptest::option::of(text(5)), text(5)),
                0..40,
            ),
            terms in proptest::collection::vec(text(4), 1..6),
        ) {
            let config = SourceConfig {
                searched_columns: vec!["fn".to_owned(), "ln".to_owned()],
                unique_column: Some("id".to_owned()),
                ..SourceConfig::named("s")
            };
            let records: Vec<BTreeMap<String, String>> = records
                .into_iter()
                .enumerate()
                .map(|(i, (first, last, other))| {
                    let mut record = BTreeMap::from([
                        ("id".to_owned(), i.to_string()),
                        ("other".to_owned(), other),
                    ]);
                    record.extend(first.map(|v| ("fn".to_owned(), v)));
                    record.extend(last.map(|v| ("ln".to_owned(), v)));
                    record
                })
                .collect();
            let index = ContactIndex::build(
                &config,
                &NumberPlan::default(),
                records.iter().cloned(),
            );
            for term in &terms {
                let folded = fold(term.trim());
                let expected: Vec<String> = records
                    .iter()
                    .filter(|record| {
                        config
                            .searched_columns
                            .iter()
                            .filter_map(|column| record.get(column))
                            .filter(|value| !value.is_empty())
                            .any(|value| fold(value).contains(&folded))
                    })
                    .map(|record| record["id"].clone())
                    .collect();
                let found: Vec<String> = index
                    .search(term)
                    .filter_map(|contact| contact.id.clone())
                    .collect();
                proptest::prop_assert_eq!(found, expected, "term {:?}", term);
            }
        }
    }

    #[test]
    fn packed_keys_are_distinct() {
        assert_eq!(pack(""), Some(0));
        assert_ne!(pack("7"), pack("07"));
        assert_ne!(pack("+1"), pack("1"));
        assert_ne!(pack("*1"), pack("#1"));
        assert!(pack(&"9".repeat(32)).is_some());
        assert_eq!(pack(&"9".repeat(33)), None);
        assert_eq!(pack("12a"), None);
        assert_eq!(pack("sip:1001@pbx"), None);
    }

    /// Numbers, URIs and ids, some shared, some too long to pack.
    fn number(max: usize) -> impl proptest::strategy::Strategy<Value = String> {
        proptest::string::string_regex(&format!(
            "[+]?[0-9 *#a@]{{0,{max}}}|0[1-9]{{9}}|[+]33[1-9]{{9}}"
        ))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    proptest::proptest! {
        #[test]
        fn packing_is_injective(a in "[0-9*#+]{0,32}", b in "[0-9*#+]{0,32}") {
            proptest::prop_assert!(pack(&a).is_some());
            proptest::prop_assert_eq!(pack(&a) == pack(&b), a == b);
        }

        /// Reverse lookup and listing find what comparing every contact's keys finds.
        #[test]
        fn reverse_and_get_equal_a_scan(
            records in proptest::collection::vec((number(3), number(40), "[0-9a]{0,2}"), 0..30),
            queries in proptest::collection::vec(number(3), 1..6),
        ) {
            let config = SourceConfig {
                first_matched_columns: vec!["num".to_owned(), "mobile".to_owned()],
                unique_column: Some("id".to_owned()),
                ..SourceConfig::named("s")
            };
            let plan = NumberPlan::with_country_code("33");
            let records: Vec<BTreeMap<String, String>> = records
                .into_iter()
                .map(|(num, mobile, id)| {
                    BTreeMap::from([
                        ("num".to_owned(), num),
                        ("mobile".to_owned(), mobile),
                        ("id".to_owned(), id),
                    ])
                })
                .collect();
            let index = ContactIndex::build(&config, &plan, records.iter().cloned());
            let all = records.iter().flat_map(|r| [r["num"].clone(), r["mobile"].clone()]);
            for query in queries.into_iter().chain(all) {
                let key = number_key(&plan, &query);
                let expected: Vec<usize> = records
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| {
                        key.is_some()
                            && (number_key(&plan, &r["num"]) == key
                                || number_key(&plan, &r["mobile"]) == key)
                    })
                    .map(|(i, _)| i)
                    .collect();
                let found: Vec<usize> = index
                    .reverse(&plan, &query)
                    .filter_map(|c| index.contacts().iter().position(|d| std::ptr::eq(c, d)))
                    .collect();
                proptest::prop_assert_eq!(found, expected, "query {:?}", query);
            }
            for record in &records {
                let id = &record["id"];
                let first = records.iter().position(|r| &r["id"] == id);
                let got = index
                    .get(id)
                    .and_then(|c| index.contacts().iter().position(|d| std::ptr::eq(c, d)));
                proptest::prop_assert_eq!(got, first);
            }
            proptest::prop_assert!(index.get("missing").is_none());
        }
    }
}
