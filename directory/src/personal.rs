//! [`PersonalContacts`]: each user's own contacts, with CSV import (a report of created
//! and failed lines) and export, kept in memory or durably on disk.
//!
//! A contact is free-form fields (`firstname`, `lastname`, `number`, `email`,
//! `company`, `fax`, `mobile`…) plus an `id` the store assigns; the source's unique
//! column is always `id`. Ids count up per user and are never reused, so that a
//! favorite of a deleted contact never designates a later one. Searches and reverse
//! lookups only see the contacts of the user in the [`QueryContext`].
//!
//! Where the contacts are kept is a [`PersonalStorage`]: none ([`PersonalContacts::new`],
//! memory only) or [`PersonalFiles`], one JSON file per user written atomically
//! ([`PersonalContacts::open`]). Every change is saved before it becomes visible: when
//! the save fails, the change is refused with [`PersonalError::Storage`] and nothing
//! changes.
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
//! # Ok::<(), pbxkit_directory::personal::ImportError>(())
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::csv_source::CsvError;
use crate::fold::fold;
use crate::index::number_key;
use crate::number::NumberPlan;
use crate::source::{Contact, QueryContext, Source, SourceConfig, SourceError};
use crate::store::{JsonDir, StoreError};

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
    /// The change could not be saved; nothing changed.
    #[error("personal contacts not saved: {0}")]
    Storage(#[from] StoreError),
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

/// Why a whole import was refused (nothing was created).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// The CSV header cannot be read.
    #[error(transparent)]
    Csv(#[from] CsvError),
    /// The imported contacts could not be saved.
    #[error("personal contacts not saved: {0}")]
    Storage(#[from] StoreError),
}

/// One user's contacts as a [`PersonalStorage`] keeps them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserContacts {
    /// The user.
    pub user: String,
    /// The id the user's next contact gets (ids are never reused).
    pub next_id: u64,
    /// Id → fields (without the `id` field), in creation order.
    pub contacts: BTreeMap<u64, BTreeMap<String, String>>,
}

impl UserContacts {
    fn empty(user: &str) -> Self {
        Self {
            user: user.to_owned(),
            next_id: 1,
            contacts: BTreeMap::new(),
        }
    }
}

/// Where [`PersonalContacts`] keeps its contacts between runs.
pub trait PersonalStorage: Send + Sync + std::fmt::Debug {
    /// Every user's contacts as last saved.
    ///
    /// # Errors
    /// When the stored data cannot be read or is corrupt.
    fn load(&self) -> Result<Vec<UserContacts>, StoreError>;

    /// Replaces the stored contacts of `contacts.user`, atomically: after a crash, the
    /// next [`PersonalStorage::load`] finds the old version or the new one.
    ///
    /// # Errors
    /// When the data could not be written durably.
    fn save(&self, contacts: &UserContacts) -> Result<(), StoreError>;
}

/// [`PersonalStorage`] in a directory, one JSON file per user (see
/// [`store`](crate::store) for the atomic write).
#[derive(Debug, Clone)]
pub struct PersonalFiles {
    dir: JsonDir,
}

impl PersonalFiles {
    /// Stores in `dir`, created if missing.
    ///
    /// # Errors
    /// When the directory cannot be created.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, StoreError> {
        Ok(Self {
            dir: JsonDir::open(dir)?,
        })
    }
}

impl PersonalStorage for PersonalFiles {
    fn load(&self) -> Result<Vec<UserContacts>, StoreError> {
        self.dir.load_all()
    }

    fn save(&self, contacts: &UserContacts) -> Result<(), StoreError> {
        self.dir.save(&contacts.user, contacts)
    }
}

/// Personal contacts of every user, and the source that searches them.
#[derive(Debug)]
pub struct PersonalContacts {
    config: SourceConfig,
    name: Arc<str>,
    plan: NumberPlan,
    max_per_user: usize,
    storage: Option<Box<dyn PersonalStorage>>,
    users: RwLock<HashMap<String, UserContacts>>,
    /// Held by a change from reading the user's contacts to publishing the new ones, so
    /// that changes are saved in order while searches keep reading the published ones.
    writer: Mutex<()>,
}

/// Drops the `id` field and empty fields; refuses a contact with nothing left.
fn clean(mut fields: BTreeMap<String, String>) -> Result<BTreeMap<String, String>, PersonalError> {
    fields.remove(ID_FIELD);
    fields.retain(|_, v| !v.is_empty());
    if fields.is_empty() {
        return Err(PersonalError::Empty);
    }
    Ok(fields)
}

impl PersonalContacts {
    /// An empty store kept in memory only. `config.unique_column` is forced to `id`;
    /// `max_per_user` bounds each user's contacts.
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
            storage: None,
            users: RwLock::new(HashMap::new()),
            writer: Mutex::new(()),
        }
    }

    /// A store kept in `storage`, starting with what it holds (as [`PersonalContacts::new`]
    /// otherwise). Contacts loaded beyond `max_per_user` are kept; the limit applies to
    /// new ones.
    ///
    /// # Errors
    /// When the storage cannot be read or holds corrupt data (the error names the file).
    pub fn open(
        config: SourceConfig,
        plan: NumberPlan,
        max_per_user: usize,
        storage: Box<dyn PersonalStorage>,
    ) -> Result<Self, StoreError> {
        let mut store = Self::new(config, plan, max_per_user);
        let mut users = HashMap::new();
        for mut book in storage.load()? {
            // A hand-edited file may hold ids at or past its counter: never reuse them.
            let past_last = book.contacts.keys().next_back().map_or(1, |id| id + 1);
            book.next_id = book.next_id.max(past_last);
            users.insert(book.user.clone(), book);
        }
        store.users = RwLock::new(users);
        store.storage = Some(storage);
        Ok(store)
    }

    fn contact(&self, id: u64, fields: &BTreeMap<String, String>) -> Contact {
        let mut fields = fields.clone();
        fields.insert(ID_FIELD.to_owned(), id.to_string());
        self.config.contact(&self.name, fields)
    }

    /// Applies `change` to a copy of `user`'s contacts; when it succeeds and changed
    /// something, saves the copy, then publishes it. Nothing changes on any error.
    fn change<T, E: From<StoreError>>(
        &self,
        user: &str,
        change: impl FnOnce(&mut UserContacts) -> Result<T, E>,
    ) -> Result<T, E> {
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let before = self
            .users
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(user)
            .cloned();
        let mut book = before.clone().unwrap_or_else(|| UserContacts::empty(user));
        let value = change(&mut book)?;
        if before.as_ref() == Some(&book) || (before.is_none() && book.contacts.is_empty()) {
            return Ok(value);
        }
        if let Some(storage) = &self.storage {
            storage.save(&book)?;
        }
        self.users
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(user.to_owned(), book);
        Ok(value)
    }

    fn insert(
        &self,
        book: &mut UserContacts,
        fields: BTreeMap<String, String>,
    ) -> Result<Contact, PersonalError> {
        let fields = clean(fields)?;
        if book.contacts.len() >= self.max_per_user {
            return Err(PersonalError::Limit {
                limit: self.max_per_user,
            });
        }
        let id = book.next_id;
        let contact = self.contact(id, &fields);
        book.contacts.insert(id, fields);
        book.next_id = id.saturating_add(1);
        Ok(contact)
    }

    /// Creates a contact for `user` (an `id` field given is ignored; empty fields are
    /// dropped) and returns it with its id.
    ///
    /// # Errors
    /// [`PersonalError::Empty`], [`PersonalError::Limit`] or [`PersonalError::Storage`].
    pub fn create(
        &self,
        user: &str,
        fields: BTreeMap<String, String>,
    ) -> Result<Contact, PersonalError> {
        self.change(user, |book| self.insert(book, fields))
    }

    /// Replaces the fields of a contact.
    ///
    /// # Errors
    /// [`PersonalError::NotFound`], [`PersonalError::Empty`] or
    /// [`PersonalError::Storage`].
    pub fn update(
        &self,
        user: &str,
        id: &str,
        fields: BTreeMap<String, String>,
    ) -> Result<Contact, PersonalError> {
        let not_found = || PersonalError::NotFound { id: id.to_owned() };
        let key: u64 = id.parse().map_err(|_| not_found())?;
        let fields = clean(fields)?;
        self.change(user, |book| {
            let slot = book.contacts.get_mut(&key).ok_or_else(not_found)?;
            *slot = fields;
            Ok(self.contact(key, slot))
        })
    }

    /// Deletes a contact.
    ///
    /// # Errors
    /// [`PersonalError::NotFound`] or [`PersonalError::Storage`].
    pub fn delete(&self, user: &str, id: &str) -> Result<(), PersonalError> {
        let not_found = || PersonalError::NotFound { id: id.to_owned() };
        let key: u64 = id.parse().map_err(|_| not_found())?;
        self.change(user, |book| {
            book.contacts.remove(&key).map(drop).ok_or_else(not_found)
        })
    }

    /// Deletes every contact of `user`.
    ///
    /// # Errors
    /// [`PersonalError::Storage`].
    pub fn delete_all(&self, user: &str) -> Result<(), PersonalError> {
        self.change(user, |book| {
            book.contacts.clear();
            Ok(())
        })
    }

    /// The contacts of `user`, in creation order.
    pub fn list(&self, user: &str) -> Vec<Contact> {
        self.with_book(Some(user), |book| {
            book.iter()
                .map(|(&id, fields)| self.contact(id, fields))
                .collect()
        })
    }

    /// Imports contacts for `user` from CSV (comma-separated, a header line naming the
    /// fields, in any order). Valid lines are created; the others are reported with
    /// their line number and reason. The import is saved once, as a whole.
    ///
    /// # Errors
    /// When the header itself cannot be read, or the result cannot be saved (then
    /// nothing is created).
    pub fn import_csv(&self, user: &str, data: &[u8]) -> Result<ImportReport, ImportError> {
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
        self.change(user, |book| {
            let mut report = ImportReport::default();
            for record in reader.byte_records() {
                let record = match record {
                    Ok(record) => record,
                    Err(error) => {
                        // Only I/O errors are possible with a flexible reader over bytes.
                        return Err(ImportError::Csv(CsvError::Other {
                            line: error.position().map_or(0, csv::Position::line),
                            message: error.to_string(),
                        }));
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
                    Ok(fields) => self.insert(book, fields).map_err(ImportFailureReason::from),
                };
                match outcome {
                    Ok(contact) => report.created.push(contact),
                    Err(reason) => report.failed.push(ImportFailure { line, reason }),
                }
            }
            Ok(report)
        })
    }

    /// Exports `user`'s contacts as CSV: the header is every field name and `id`, in
    /// alphabetical order; one line per contact, in creation order.
    pub fn export_csv(&self, user: &str) -> String {
        self.with_book(Some(user), |book| {
            if book.is_empty() {
                return String::new();
            }
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
        })
    }

    fn with_book<T>(
        &self,
        user: Option<&str>,
        f: impl FnOnce(&BTreeMap<u64, BTreeMap<String, String>>) -> T,
    ) -> T {
        let users = self.users.read().unwrap_or_else(PoisonError::into_inner);
        let empty = BTreeMap::new();
        f(user
            .and_then(|user| users.get(user))
            .map_or(&empty, |book| &book.contacts))
    }
}

#[async_trait]
impl Source for PersonalContacts {
    fn name(&self) -> &str {
        &self.config.name
    }

    async fn search(&self, term: &str, ctx: &QueryContext) -> Result<Vec<Contact>, SourceError> {
        let term = fold(term.trim());
        Ok(self.with_book(ctx.user.as_deref(), |book| {
            book.iter()
                .filter(|(_, fields)| {
                    self.config
                        .searched_columns
                        .iter()
                        .any(|column| fields.get(column).is_some_and(|v| fold(v).contains(&term)))
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
        Ok(self.with_book(ctx.user.as_deref(), |book| {
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
        Ok(self.with_book(ctx.user.as_deref(), |book| {
            ids.iter()
                .filter_map(|id| {
                    let key = id.parse().ok()?;
                    book.get(&key).map(|fields| self.contact(key, fields))
                })
                .collect()
        }))
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
        store.delete_all("u").expect("deleted");
        assert!(store.list("u").is_empty());
    }
}
