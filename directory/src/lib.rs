//! # pbxkit-directory
//!
//! What wazo-dird does, as an embeddable crate: one lookup API over contact sources
//! (CSV files, personal contacts, company phonebooks, in-memory lists such as internal
//! users, LDAP), favorites, reverse lookup of calling numbers, `format_columns`
//! templates, displays, and the XML directory views that desk phones request.
//!
//! Searches ignore case and, for the sources that search their own data (CSV, memory,
//! personal, phonebook), the accents of Latin letters: "helene" finds "Hélène".
//!
//! - [`format`](mod@format): `format_columns` templates (`"{firstname} {lastname}"`).
//! - [`number`]: [`NumberPlan`], phone number normalisation for reverse lookup
//!   (`+33 (0)1 23…` = `01 23…`).
//! - [`source`]: the async [`Source`] trait, [`SourceConfig`] and [`Contact`].
//! - [`index`]: [`ContactIndex`], the in-memory index behind file and memory sources.
//! - [`csv_source`]: [`CsvSource`], a CSV file reloaded when it changes.
//! - [`memory`]: [`MemorySource`], contacts the application supplies (internal users).
//! - [`personal`]: [`PersonalContacts`], per-user contacts with CSV import and export,
//!   in memory or on disk ([`PersonalFiles`]).
//! - [`phonebook`]: [`Phonebooks`], shared company phonebooks with their CRUD, on disk
//!   ([`PhonebookFiles`]) or in memory, and [`PhonebookSource`] to search one.
//! - [`favorites`]: [`Favorites`], each user's favorite contacts, on disk or in memory.
//! - [`store`]: [`StoreError`] and the atomic JSON files behind the stores above.
//! - [`lookup`]: [`Directory`], profiles and displays; parallel lookup with a
//!   deadline, merge and deduplication; reverse lookup.
//! - [`ldap`]: LDAP search, reverse-lookup and listing filters with RFC 4515 escaping.
//! - `ldap_source` (feature `tokio`): `LdapSource`, an LDAP directory over plain
//!   `ldap://` (ldap3), with connect and operation deadlines.
//! - [`views`]: directory XML for Cisco, Yealink, Snom, Polycom and Aastra phones,
//!   with paging, and the search forms they request.
//!
//! The core (templates, numbers, indexes, displays, views) is synchronous and does no
//! I/O; sources are async because some of them (LDAP, files) do I/O. The stores write
//! their files synchronously (`std::fs`, with `fsync`): a change returns once it is
//! durable. Lookups have deadlines, on the [`Timer`] the [`Directory`] is given: any
//! runtime's sleep; the `tokio` feature (off by default) adds `TokioTimer`,
//! `Directory::new()` and the LDAP source.
//!
//! ```
//! use std::future::Future;
//! use std::pin::Pin;
//! use std::sync::Arc;
//! use std::time::Duration;
//! use pbxkit_directory::lookup::{Column, ColumnType, Directory, Display, Profile};
//! use pbxkit_directory::{MemorySource, NumberPlan, QueryContext, SourceConfig};
//! use pbxkit_directory::format::FormatColumns;
//!
//! let config = SourceConfig {
//!     searched_columns: vec!["firstname".into(), "lastname".into()],
//!     first_matched_columns: vec!["exten".into(), "mobile".into()],
//!     unique_column: Some("id".into()),
//!     format_columns: FormatColumns::new([("name", "{firstname} {lastname}"), ("number", "{exten}")]),
//!     ..SourceConfig::named("internal")
//! };
//! let users = MemorySource::from_records(config, NumberPlan::with_country_code("33"), [
//!     [("id", "1"), ("firstname", "Alice"), ("lastname", "Abrams"), ("exten", "1001"), ("mobile", "06 12 34 56 78")],
//!     [("id", "2"), ("firstname", "Bob"), ("lastname", "Benito"), ("exten", "1002"), ("mobile", "")],
//! ]);
//!
//! // Lookups have deadlines: the directory sleeps on the runtime you give it (with
//! // the `tokio` feature, `Directory::new()` uses tokio's clock).
//! struct TokioSleep;
//! impl pbxkit_directory::Timer for TokioSleep {
//!     fn sleep(&self, d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
//!         Box::pin(tokio::time::sleep(d))
//!     }
//! }
//! let mut directory = Directory::with_timer(Arc::new(TokioSleep));
//! directory.add_source(Arc::new(users));
//! directory.add_display("default", Display::new(vec![
//!     Column::new("Name", ColumnType::Name, "name"),
//!     Column::new("Number", ColumnType::Number, "number"),
//! ]));
//! directory.add_profile("default", Profile::new(["internal"], "default"))?;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build()?.block_on(async {
//! let ctx = QueryContext::default();
//! let found = directory.lookup("default", "ali", &ctx).await?;
//! assert_eq!(found.rows[0].values, [Some("Alice Abrams".into()), Some("1001".into())]);
//!
//! // Reverse lookup of a calling number, in any notation.
//! let caller = directory.reverse("default", "+33 6 12 34 56 78", &ctx).await?;
//! assert_eq!(caller.as_ref().and_then(|c| c.get("name")), Some("Alice Abrams"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod csv_source;
pub mod favorites;
mod fold;
pub mod format;
pub mod index;
pub mod ldap;
#[cfg(feature = "tokio")]
pub mod ldap_source;
pub mod lookup;
pub mod memory;
pub mod number;
pub mod personal;
pub mod phonebook;
pub mod source;
pub mod store;
pub mod views;

pub use csv_source::{CsvConfig, CsvError, CsvSource};
pub use format::{FormatColumns, Template, TemplateError};
pub use index::ContactIndex;
#[cfg(feature = "tokio")]
pub use ldap_source::{LdapConfig, LdapConfigError, LdapSource};
#[cfg(feature = "tokio")]
pub use lookup::TokioTimer;
pub use lookup::{Directory, LookupError, Timer};

pub use favorites::Favorites;
pub use memory::MemorySource;
pub use number::NumberPlan;
pub use personal::{PersonalContacts, PersonalFiles, PersonalStorage};
pub use phonebook::{PhonebookFiles, PhonebookSource, Phonebooks};
pub use source::{Contact, QueryContext, Source, SourceConfig, SourceError};
pub use store::StoreError;

/// Entry points for the fuzz targets in `fuzz/fuzz_targets/directory_*.rs`; each takes
/// arbitrary bytes and panics only on a broken invariant.
pub mod fuzzing {
    use std::collections::BTreeMap;

    use crate::format::Template;
    use crate::index::ContactIndex;
    use crate::number::NumberPlan;
    use crate::source::SourceConfig;

    /// A fuzz entry point.
    pub type Target = fn(&[u8]);

    /// Every fuzz target of the crate, by name.
    pub const TARGETS: &[(&str, Target)] = &[
        ("directory_format", directory_format),
        ("directory_csv", directory_csv),
    ];

    /// At most this many bytes of one input are used, to keep runs fast.
    const MAX_LEN: usize = 4096;

    /// The first line is a template, the following lines `field=value` pairs: parses,
    /// renders, and checks that a parsed template re-parses from its text, renders
    /// trimmed, and that a parse error points inside the template.
    pub fn directory_format(data: &[u8]) {
        let text = String::from_utf8_lossy(data.get(..MAX_LEN).unwrap_or(data));
        let mut lines = text.split('\n');
        let template = lines.next().unwrap_or("");
        let fields: BTreeMap<String, String> = lines
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        match Template::parse(template) {
            Ok(parsed) => {
                assert_eq!(Template::parse(parsed.as_str()).as_ref(), Ok(&parsed));
                let rendered = parsed.render(&fields);
                assert_eq!(rendered.trim(), rendered);
                assert!(parsed.fields().all(|f| !f.is_empty()));
            }
            Err(error) => assert!(error.offset() <= template.len()),
        }
    }

    /// The first byte picks the delimiter, the rest is a CSV file: parses, indexes with
    /// every column searched and first-matched, then searches for and reverse-looks-up
    /// each value, checking that every answer contains what was asked.
    pub fn directory_csv(data: &[u8]) {
        let Some((&first, csv)) = data.split_first() else {
            return;
        };
        let delimiter = [',', ';', '\t', '|'][usize::from(first % 4)];
        let csv = csv.get(..MAX_LEN).unwrap_or(csv);
        let Ok(records) = crate::csv_source::parse(csv, delimiter) else {
            return;
        };
        let columns: Vec<String> = records
            .first()
            .map(|r| r.keys().cloned().collect())
            .unwrap_or_default();
        let config = SourceConfig {
            searched_columns: columns.clone(),
            first_matched_columns: columns.clone(),
            unique_column: columns.first().cloned(),
            ..SourceConfig::named("fuzz")
        };
        let plan = NumberPlan::with_country_code("33");
        let index = ContactIndex::build(&config, &plan, records.iter().cloned());
        assert_eq!(index.len(), records.len());
        for record in records.iter().take(32) {
            for value in record.values().take(8) {
                let term = crate::fold::fold(value.trim());
                for contact in index.search(value) {
                    assert!(columns.iter().any(|c| {
                        contact
                            .get(c)
                            .is_some_and(|v| crate::fold::fold(v).contains(&term))
                    }));
                }
                if !value.trim().is_empty() {
                    assert!(index.reverse(&plan, value).next().is_some());
                }
                for contact in index.reverse(&plan, value) {
                    let key = crate::index::number_key(&plan, value);
                    assert!(columns.iter().any(|c| {
                        contact
                            .get(c)
                            .is_some_and(|v| crate::index::number_key(&plan, v) == key)
                    }));
                }
            }
            if let Some(id) = columns.first().and_then(|c| record.get(c)) {
                assert!(index.get(id).is_some());
            }
        }
    }
}

// The README's example is a doctest too: the crate's page on crates.io stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
