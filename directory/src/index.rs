//! [`ContactIndex`]: the in-memory index of a file or memory source — contacts with
//! `format_columns` applied, a number index for reverse lookup and folded (lower-cased,
//! accents removed) searched columns for substring search.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::fold::fold;
use crate::number::NumberPlan;
use crate::source::{Contact, SourceConfig};

/// The key of a first-matched value: its normalised number, or the trimmed value when
/// it is not a number (a SIP URI, an e-mail address).
pub(crate) fn number_key(plan: &NumberPlan, value: &str) -> Option<String> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return None;
    }
    Some(
        plan.normalize(trimmed)
            .unwrap_or_else(|| trimmed.to_owned()),
    )
}

/// Contacts indexed for search, reverse lookup and listing by id.
#[derive(Debug, Clone, Default)]
pub struct ContactIndex {
    contacts: Vec<Contact>,
    /// Per contact, the folded values of the searched columns.
    searched: Vec<Vec<String>>,
    /// Normalised number → contacts having it in a first-matched column, in order.
    numbers: HashMap<String, Vec<usize>>,
    /// Unique column value → first contact having it.
    ids: HashMap<String, usize>,
}

impl ContactIndex {
    /// Indexes raw records (column → value) for a source.
    pub fn build(
        config: &SourceConfig,
        plan: &NumberPlan,
        records: impl IntoIterator<Item = BTreeMap<String, String>>,
    ) -> Self {
        let name: Arc<str> = Arc::from(config.name.as_str());
        let mut index = Self::default();
        for record in records {
            let position = index.contacts.len();
            index.searched.push(
                config
                    .searched_columns
                    .iter()
                    .filter_map(|column| record.get(column))
                    .filter(|value| !value.is_empty())
                    .map(|value| fold(value))
                    .collect(),
            );
            for column in &config.first_matched_columns {
                if let Some(key) = record.get(column).and_then(|v| number_key(plan, v)) {
                    let positions = index.numbers.entry(key).or_default();
                    if positions.last() != Some(&position) {
                        positions.push(position);
                    }
                }
            }
            let contact = config.contact(&name, record);
            if let Some(id) = &contact.id {
                index.ids.entry(id.clone()).or_insert(position);
            }
            index.contacts.push(contact);
        }
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
    /// searched value).
    pub fn search(&self, term: &str) -> impl Iterator<Item = &Contact> {
        let term = fold(term.trim());
        self.contacts
            .iter()
            .zip(&self.searched)
            .filter(move |(_, values)| values.iter().any(|value| value.contains(&term)))
            .map(|(contact, _)| contact)
    }

    /// The contacts with `number` in a first-matched column, in record order.
    pub fn reverse(&self, plan: &NumberPlan, number: &str) -> impl Iterator<Item = &Contact> {
        number_key(plan, number)
            .and_then(|key| self.numbers.get(&key))
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
}
