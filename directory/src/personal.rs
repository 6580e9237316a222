//! [`PersonalContacts`]: each user's own contacts, in memory, with CSV import (a report
//! of created and failed lines) and export.
//!
//! A contact is free-form fields (`firstname`, `lastname`, `number`, `email`,
//! `company`, `fax`, `mobile`…) plus an `id` the store assigns; the source's unique
//! column is always `id`. Searches and reverse lookups only see the contacts of the
//! user in the [`QueryContext`]. The PBX persists the store if it wants to (export and
//! import, or [`PersonalContacts::list`] and [`PersonalContacts::create`]).
//!
//! ```
//! use pbxkit_directory::{NumberPlan, PersonalContacts, SourceConfig};
//!
//! let store = PersonalContacts::new(SourceConfig::named("personal"), NumberPlan::default(), 1000);
//! let report = store.import_csv("alice", b"firstname,lastname,number\nJohn,Doe,5555551111\nJane,Roe\n,,\n")?;
//! assert_eq!(report.created.len(), 1);
//! assert_eq!(report.failed.iter().map(|f| f.line).collect::<Vec<_>>(), [3, 4]);
//! assert_eq!(
//!     store.export_csv("alice"),
//!     "firstname,id,lastname,number\nJohn,1,Doe,5555551111\n"
//! );
//! # Ok::<(), pbxkit_directory::CsvError>(())
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, PoisonError, RwLock};

use async_trait::async_trait;

use crate::csv_source::CsvError;
use crate::index::number_key;
use crate::number::NumberPlan;
use crate::source::{Contact, QueryContext, Source, SourceConfig, SourceError};

/// The field that holds a personal contact's id.
pub const ID_FIELD: &str = "id";

/// Why a personal contact was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PersonalError {
    /// Every field is empty.
    #[error("the contact has no non-empty field")]
    Empty,
    /// The user already has the maximum number of contacts.
    #[error("the user already has {limit} contacts")]
    Limit {
        /// The configured maximum per user.
        limit: usize,
    },
    /// No contact with this id for this user.
    #[error("no personal contact {id:?}")]
    NotFound {
        /// The id asked for.
        id: String,
    },
}

/// Why one line of an import was skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ImportFailureReason {
    /// The line does not have as many fields as the header.
    #[error("{found} fields where the header has {expected}")]
    FieldCount {
        /// Fields in the header.
        expected: usize,
        /// Fields on the line.
        found: usize,
    },
    /// The line is not valid UTF-8.
    #[error("invalid UTF-8")]
    Utf8,
    /// The contact was refused.
    #[error(transparent)]
    Refused(#[from] PersonalError),
}

/// One skipped line of an import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportFailure {
    /// 1-based line number in the file.
    pub line: u64,
    /// Why it was skipped.
    pub reason: ImportFailureReason,
}

/// The outcome of [`PersonalContacts::import_csv`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// The contacts created, ids assigned.
    pub created: Vec<Contact>,
    /// The lines skipped, in file order.
    pub failed: Vec<ImportFailure>,
}

#[derive(Debug, Default)]
struct Store {
    users: HashMap<String, BTreeMap<u64, BTreeMap<String, String>>>,
    next_id: u64,
}

/// Personal contacts of every user, and the source that searches them.
#[derive(Debug)]
pub struct PersonalContacts {
    config: SourceConfig,
    name: Arc<str>,
    plan: NumberPlan,
    max_per_user: usize,
    store: RwLock<Store>,
}

impl PersonalContacts {
    /// An empty store. `config.unique_column` is forced to `id`; `max_per_user` bounds
    /// each user's contacts.
    pub fn new(mut config: SourceConfig, plan: NumberPlan, max_per_user: usize) -> Self {
        config.unique_column = Some(ID_FIELD.to_owned());
        if config.searched_columns.is_empty() {
            config.searched_columns = ["firstname", "lastname", "company", "email"]
                .map(str::to_owned)
                .to_vec();
        }
        if config.first_matched_columns.is_empty() {
            config.first_matched_columns = ["number", "mobile", "fax"].map(str::to_owned).to_vec();
        }
        Self {
            name: Arc::from(config.name.as_str()),
            config,
            plan,
            max_per_user,
            store: RwLock::new(Store {
                users: HashMap::new(),
                next_id: 1,
            }),
        }
    }

    fn contact(&self, id: u64, fields: &BTreeMap<String, String>) -> Contact {
        let mut fields = fields.clone();
        fields.insert(ID_FIELD.to_owned(), id.to_string());
        self.config.contact(&self.name, fields)
    }

    fn insert(
        &self,
        store: &mut Store,
        user: &str,
        mut fields: BTreeMap<String, String>,
    ) -> Result<Contact, PersonalError> {
        fields.remove(ID_FIELD);
        fields.retain(|_, v| !v.is_empty());
        if fields.is_empty() {
            return Err(PersonalError::Empty);
        }
        let id = store.next_id;
        let book = store.users.entry(user.to_owned()).or_default();
        if book.len() >= self.max_per_user {
            return Err(PersonalError::Limit {
                limit: self.max_per_user,
            });
        }
        let contact = self.contact(id, &fields);
        book.insert(id, fields);
        store.next_id += 1;
        Ok(contact)
    }

    /// Creates a contact for `user` (an `id` field given is ignored; empty fields are
    /// dropped) and returns it with its id.
    ///
    /// # Errors
    /// [`PersonalError::Empty`] or [`PersonalError::Limit`].
    pub fn create(
        &self,
        user: &str,
        fields: BTreeMap<String, String>,
    ) -> Result<Contact, PersonalError> {
        let mut store = self.store.write().unwrap_or_else(PoisonError::into_inner);
        self.insert(&mut store, user, fields)
    }

    /// Replaces the fields of a contact.
    ///
    /// # Errors
    /// [`PersonalError::NotFound`] or [`PersonalError::Empty`].
    pub fn update(
        &self,
        user: &str,
        id: &str,
        mut fields: BTreeMap<String, String>,
    ) -> Result<Contact, PersonalError> {
        let not_found = || PersonalError::NotFound { id: id.to_owned() };
        let key: u64 = id.parse().map_err(|_| not_found())?;
        fields.remove(ID_FIELD);
        fields.retain(|_, v| !v.is_empty());
        if fields.is_empty() {
            return Err(PersonalError::Empty);
        }
        let mut store = self.store.write().unwrap_or_else(PoisonError::into_inner);
        let slot = store
            .users
            .get_mut(user)
            .and_then(|book| book.get_mut(&key))
            .ok_or_else(not_found)?;
        *slot = fields;
        Ok(self.contact(key, slot))
    }

    /// Deletes a contact.
    ///
    /// # Errors
    /// [`PersonalError::NotFound`].
    pub fn delete(&self, user: &str, id: &str) -> Result<(), PersonalError> {
        let not_found = || PersonalError::NotFound { id: id.to_owned() };
        let key: u64 = id.parse().map_err(|_| not_found())?;
        let mut store = self.store.write().unwrap_or_else(PoisonError::into_inner);
        let book = store.users.get_mut(user).ok_or_else(not_found)?;
        book.remove(&key).ok_or_else(not_found)?;
        if book.is_empty() {
            store.users.remove(user);
        }
        Ok(())
    }

    /// Deletes every contact of `user`.
    pub fn delete_all(&self, user: &str) {
        self.store
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .users
            .remove(user);
    }

    /// The contacts of `user`, in creation order.
    pub fn list(&self, user: &str) -> Vec<Contact> {
        let store = self.store.read().unwrap_or_else(PoisonError::into_inner);
        store
            .users
            .get(user)
            .into_iter()
            .flatten()
            .map(|(&id, fields)| self.contact(id, fields))
            .collect()
    }

    /// Imports contacts for `user` from CSV (comma-separated, a header line naming the
    /// fields, in any order). Valid lines are created; the others are reported with
    /// their line number and reason.
    ///
    /// # Errors
    /// Only when the header itself cannot be read.
    pub fn import_csv(&self, user: &str, data: &[u8]) -> Result<ImportReport, CsvError> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .from_reader(data);
        let headers: Vec<String> = reader
            .byte_headers()
            .map_err(|e| CsvError::Other {
                line: 1,
                message: e.to_string(),
            })?
            .iter()
            .map(|h| String::from_utf8(h.to_vec()).map(|h| h.trim().to_owned()))
            .collect::<Result<_, _>>()
            .map_err(|_| CsvError::Utf8 { line: 1 })?;
        let mut report = ImportReport::default();
        let mut store = self.store.write().unwrap_or_else(PoisonError::into_inner);
        for record in reader.byte_records() {
            let record = match record {
                Ok(record) => record,
                Err(error) => {
                    // Only I/O errors are possible with a flexible reader over bytes.
                    return Err(CsvError::Other {
                        line: error.position().map_or(0, csv::Position::line),
                        message: error.to_string(),
                    });
                }
            };
            let line = record.position().map_or(0, csv::Position::line);
            if record.len() != headers.len() {
                report.failed.push(ImportFailure {
                    line,
                    reason: ImportFailureReason::FieldCount {
                        expected: headers.len(),
                        found: record.len(),
                    },
                });
                continue;
            }
            let fields: Result<BTreeMap<String, String>, _> = headers
                .iter()
                .zip(record.iter())
                .map(|(h, v)| String::from_utf8(v.to_vec()).map(|v| (h.clone(), v)))
                .collect();
            let outcome = match fields {
                Err(_) => Err(ImportFailureReason::Utf8),
                Ok(fields) => self
                    .insert(&mut store, user, fields)
                    .map_err(ImportFailureReason::from),
            };
            match outcome {
                Ok(contact) => report.created.push(contact),
                Err(reason) => report.failed.push(ImportFailure { line, reason }),
            }
        }
        Ok(report)
    }

    /// Exports `user`'s contacts as CSV: the header is every field name and `id`, in
    /// alphabetical order; one line per contact, in creation order.
    pub fn export_csv(&self, user: &str) -> String {
        let store = self.store.read().unwrap_or_else(PoisonError::into_inner);
        let Some(book) = store.users.get(user) else {
            return String::new();
        };
        let mut columns: BTreeSet<&str> = book
            .values()
            .flat_map(|f| f.keys())
            .map(String::as_str)
            .collect();
        columns.insert(ID_FIELD);
        let mut out = String::new();
        let line = |out: &mut String, values: &mut dyn Iterator<Item = &str>| {
            let mut first = true;
            for value in values {
                if !first {
                    out.push(',');
                }
                first = false;
                if value.contains([',', '"', '\n', '\r']) {
                    out.push('"');
                    out.push_str(&value.replace('"', "\"\""));
                    out.push('"');
                } else {
                    out.push_str(value);
                }
            }
            out.push('\n');
        };
        line(&mut out, &mut columns.iter().copied());
        for (id, fields) in book {
            let id = id.to_string();
            line(
                &mut out,
                &mut columns.iter().map(|&c| {
                    if c == ID_FIELD {
                        id.as_str()
                    } else {
                        fields.get(c).map_or("", String::as_str)
                    }
                }),
            );
        }
        out
    }

    fn with_book<T>(
        &self,
        ctx: &QueryContext,
        f: impl FnOnce(&BTreeMap<u64, BTreeMap<String, String>>) -> T,
    ) -> T {
        let store = self.store.read().unwrap_or_else(PoisonError::into_inner);
        let empty = BTreeMap::new();
        f(ctx
            .user
            .as_ref()
            .and_then(|user| store.users.get(user))
            .unwrap_or(&empty))
    }
}

#[async_trait]
impl Source for PersonalContacts {
    fn name(&self) -> &str {
        &self.config.name
    }

    async fn search(&self, term: &str, ctx: &QueryContext) -> Result<Vec<Contact>, SourceError> {
        let term = term.trim().to_lowercase();
        Ok(self.with_book(ctx, |book| {
            book.iter()
                .filter(|(_, fields)| {
                    self.config.searched_columns.iter().any(|column| {
                        fields
                            .get(column)
                            .is_some_and(|v| v.to_lowercase().contains(&term))
                    })
                })
                .map(|(&id, fields)| self.contact(id, fields))
                .collect()
        }))
    }

    async fn first_match(
        &self,
        number: &str,
        ctx: &QueryContext,
    ) -> Result<Option<Contact>, SourceError> {
        let Some(key) = number_key(&self.plan, number) else {
            return Ok(None);
        };
        Ok(self.with_book(ctx, |book| {
            book.iter()
                .find(|(_, fields)| {
                    self.config.first_matched_columns.iter().any(|column| {
                        fields
                            .get(column)
                            .and_then(|v| number_key(&self.plan, v))
                            .is_some_and(|k| k == key)
                    })
                })
                .map(|(&id, fields)| self.contact(id, fields))
        }))
    }

    async fn list(&self, ids: &[String], ctx: &QueryContext) -> Result<Vec<Contact>, SourceError> {
        let store = self.store.read().unwrap_or_else(PoisonError::into_inner);
        let Some(book) = ctx.user.as_ref().and_then(|user| store.users.get(user)) else {
            return Ok(Vec::new());
        };
        Ok(ids
            .iter()
            .filter_map(|id| {
                let key = id.parse().ok()?;
                book.get(&key).map(|fields| self.contact(key, fields))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(limit: usize) -> PersonalContacts {
        PersonalContacts::new(
            SourceConfig::named("personal"),
            NumberPlan::default(),
            limit,
        )
    }

    #[test]
    fn import_reports_created_and_failed_lines() {
        let store = store(3);
        let data = b"lastname,firstname,number,email\nDoe,John,555,j@x\nRoe,Jane\n,,,\nA,\xff,1,\nB,b,2,\nC,c,3,\nD,d,4,\n";
        let report = store.import_csv("u", data).expect("header");
        assert_eq!(report.created.len(), 3);
        let failed: Vec<(u64, ImportFailureReason)> = report
            .failed
            .into_iter()
            .map(|f| (f.line, f.reason))
            .collect();
        assert_eq!(
            failed,
            [
                (
                    3,
                    ImportFailureReason::FieldCount {
                        expected: 4,
                        found: 2
                    }
                ),
                (4, ImportFailureReason::Refused(PersonalError::Empty)),
                (5, ImportFailureReason::Utf8),
                (
                    8,
                    ImportFailureReason::Refused(PersonalError::Limit { limit: 3 })
                ),
            ]
        );
        assert_eq!(
            store.export_csv("u"),
            "email,firstname,id,lastname,number\nj@x,John,1,Doe,555\n,b,2,B,2\n,c,3,C,3\n"
        );
        assert_eq!(store.export_csv("nobody"), "");
    }

    #[test]
    fn export_round_trips_through_import() {
        let a = store(10);
        let fields = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        a.create(
            "u",
            fields(&[("firstname", "Quote \"Q\", Jr"), ("company", "A\nB")]),
        )
        .expect("created");
        a.create("u", fields(&[("lastname", "Plain"), ("id", "ignored")]))
            .expect("created");
        let exported = a.export_csv("u");
        let b = store(10);
        let report = b.import_csv("v", exported.as_bytes()).expect("header");
        assert!(report.failed.is_empty(), "{:?}", report.failed);
        let strip = |c: Contact| {
            let mut f = c.fields;
            f.remove(ID_FIELD);
            f.retain(|_, v| !v.is_empty());
            f
        };
        assert_eq!(
            a.list("u").into_iter().map(strip).collect::<Vec<_>>(),
            b.list("v").into_iter().map(strip).collect::<Vec<_>>()
        );
    }

    #[test]
    fn update_and_delete() {
        let store = store(10);
        let created = store
            .create(
                "u",
                BTreeMap::from([("firstname".to_owned(), "A".to_owned())]),
            )
            .expect("created");
        let id = created.id.clone().expect("an id");
        let updated = store
            .update(
                "u",
                &id,
                BTreeMap::from([("lastname".to_owned(), "B".to_owned())]),
            )
            .expect("updated");
        assert_eq!(updated.get("lastname"), Some("B"));
        assert_eq!(updated.get("firstname"), None);
        assert_eq!(
            store.update(
                "other",
                &id,
                BTreeMap::from([("x".to_owned(), "y".to_owned())])
            ),
            Err(PersonalError::NotFound { id: id.clone() })
        );
        assert_eq!(
            store.delete("u", "nope"),
            Err(PersonalError::NotFound { id: "nope".into() })
        );
        store.delete("u", &id).expect("deleted");
        assert!(store.list("u").is_empty());
        store
            .create("u", BTreeMap::from([("a".to_owned(), "b".to_owned())]))
            .expect("created");
        store.delete_all("u");
        assert!(store.list("u").is_empty());
    }
}
