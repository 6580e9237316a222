//! Shared company phonebooks (wazo-dird's internal phonebooks and its `dird_phonebook`
//! back-end): [`Phonebooks`] holds named phonebooks of contacts with arbitrary fields
//! and their CRUD; a [`PhonebookSource`] searches one of them like any other source.
//!
//! Each contact gets an `id` field, counted up per phonebook and never reused (favorites
//! refer to it); it is the source's unique column. Where phonebooks are kept is a
//! [`PhonebookStorage`]: none ([`Phonebooks::new`]) or [`PhonebookFiles`], one JSON file
//! per phonebook written atomically ([`Phonebooks::open`]). A change is saved before it
//! becomes visible; when the save fails, it is refused and nothing changes.
//!
//! ```
//! use std::collections::BTreeMap;
//! use std::sync::Arc;
//! use pbxkit_directory::{NumberPlan, PhonebookSource, Phonebooks, QueryContext, Source, SourceConfig};
//!
//! let phonebooks = Arc::new(Phonebooks::new(10_000));
//! phonebooks.create_phonebook("main", "The company's phonebook")?;
//! let record = |pairs: [(&str, &str); 3]| pairs.map(|(k, v)| (k.to_owned(), v.to_owned())).into();
//! let created = phonebooks.create_contact("main", record([("firstname", "Hélène"), ("lastname", "Dubois"), ("number", "0123456789")]))?;
//! assert_eq!(created.get("id").map(String::as_str), Some("1"));
//!
//! let source = PhonebookSource::new(Arc::clone(&phonebooks), "main", SourceConfig::named("phonebook"), NumberPlan::with_country_code("33"));
//! # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
//! let found = source.search("helene", &QueryContext::default()).await?;
//! assert_eq!(found[0].get("lastname"), Some("Dubois"));
//! let caller = source.first_match("+33 1 23 45 67 89", &QueryContext::default()).await?;
//! assert_eq!(caller.and_then(|c| c.id), Some("1".to_owned()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::index::ContactIndex;
use crate::number::NumberPlan;
use crate::source::{Contact, QueryContext, Source, SourceConfig, SourceError};
use crate::store::{JsonDir, StoreError};

/// The field that holds a phonebook contact's id.
pub const ID_FIELD: &str = "id";

/// Fields of a contact: name → value.
type Fields = BTreeMap<String, String>;

/// Why a phonebook operation was refused (nothing changed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PhonebookError {
    /// No phonebook has this name.
    #[error("no phonebook {name:?}")]
    UnknownPhonebook {
        /// The name asked for.
        name: String,
    },
    /// A phonebook with this name already exists.
    #[error("phonebook {name:?} already exists")]
    Exists {
        /// The name.
        name: String,
    },
    /// A phonebook name must have a non-blank character.
    #[error("a phonebook name cannot be blank")]
    BlankName,
    /// No contact with this id in the phonebook.
    #[error("phonebook {phonebook:?}: no contact {id:?}")]
    NotFound {
        /// The phonebook.
        phonebook: String,
        /// The id asked for.
        id: String,
    },
    /// Every field of a contact is empty.
    #[error("the contact has no non-empty field")]
    Empty,
    /// The phonebook already has the maximum number of contacts.
    #[error("the phonebook already has {limit} contacts")]
    Limit {
        /// The configured maximum per phonebook.
        limit: usize,
    },
    /// The change could not be saved.
    #[error("phonebook not saved: {0}")]
    Storage(#[from] StoreError),
}

/// One phonebook as a [`PhonebookStorage`] keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhonebookData {
    /// The phonebook's name, unique.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// The id the next contact gets (ids are never reused).
    pub next_id: u64,
    /// Id → fields (without the `id` field), in creation order.
    pub contacts: BTreeMap<u64, Fields>,
}

/// Where [`Phonebooks`] keeps its phonebooks between runs.
pub trait PhonebookStorage: Send + Sync + std::fmt::Debug {
    /// Every phonebook as last saved.
    ///
    /// # Errors
    /// When the stored data cannot be read or is corrupt.
    fn load(&self) -> Result<Vec<PhonebookData>, StoreError>;

    /// Replaces (or creates) the stored phonebook `phonebook.name`, atomically.
    ///
    /// # Errors
    /// When the data could not be written durably.
    fn save(&self, phonebook: &PhonebookData) -> Result<(), StoreError>;

    /// Removes the stored phonebook `name` (a missing one is not an error).
    ///
    /// # Errors
    /// When the removal could not be made durable.
    fn remove(&self, name: &str) -> Result<(), StoreError>;
}

/// [`PhonebookStorage`] in a directory, one JSON file per phonebook.
#[derive(Debug, Clone)]
pub struct PhonebookFiles {
    dir: JsonDir,
}

impl PhonebookFiles {
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

impl PhonebookStorage for PhonebookFiles {
    fn load(&self) -> Result<Vec<PhonebookData>, StoreError> {
        self.dir.load_all()
    }

    fn save(&self, phonebook: &PhonebookData) -> Result<(), StoreError> {
        self.dir.save(&phonebook.name, phonebook)
    }

    fn remove(&self, name: &str) -> Result<(), StoreError> {
        self.dir.remove(name)
    }
}

/// A phonebook's name, description and size, as [`Phonebooks::list`] returns them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhonebookInfo {
    /// The name.
    pub name: String,
    /// The description.
    pub description: String,
    /// The number of contacts.
    pub contacts: usize,
}

/// A published phonebook: its data and the generation that identifies this version,
/// so that sources know when to rebuild their index.
#[derive(Debug)]
struct Book {
    generation: u64,
    data: PhonebookData,
}

#[derive(Debug, Default)]
struct Books {
    by_name: HashMap<String, Arc<Book>>,
    /// The generation of the last published change.
    generation: u64,
}

/// Every phonebook, with their contacts.
#[derive(Debug)]
pub struct Phonebooks {
    max_contacts: usize,
    storage: Option<Box<dyn PhonebookStorage>>,
    books: RwLock<Books>,
    /// Held by a change from reading a phonebook to publishing the new version, so that
    /// changes are saved in order while searches keep reading the published version.
    writer: Mutex<()>,
}

fn record(id: u64, fields: &Fields) -> Fields {
    let mut record = fields.clone();
    record.insert(ID_FIELD.to_owned(), id.to_string());
    record
}

/// Drops the `id` field and empty fields; refuses a contact with nothing left.
fn clean(mut fields: Fields) -> Result<Fields, PhonebookError> {
    fields.remove(ID_FIELD);
    fields.retain(|_, v| !v.is_empty());
    if fields.is_empty() {
        return Err(PhonebookError::Empty);
    }
    Ok(fields)
}

impl Phonebooks {
    /// No phonebook, kept in memory only; each phonebook holds at most `max_contacts`.
    pub fn new(max_contacts: usize) -> Self {
        Self {
            max_contacts,
            storage: None,
            books: RwLock::new(Books::default()),
            writer: Mutex::new(()),
        }
    }

    /// The phonebooks kept in `storage`, starting with what it holds. Contacts loaded
    /// beyond `max_contacts` are kept; the limit applies to new ones.
    ///
    /// # Errors
    /// When the storage cannot be read or holds corrupt data (the error names the file).
    pub fn open(
        max_contacts: usize,
        storage: Box<dyn PhonebookStorage>,
    ) -> Result<Self, StoreError> {
        let mut books = Books::default();
        for mut data in storage.load()? {
            // A hand-edited file may hold ids at or past its counter: never reuse them.
            let past_last = data.contacts.keys().next_back().map_or(1, |id| id + 1);
            data.next_id = data.next_id.max(past_last);
            books.generation += 1;
            let book = Book {
                generation: books.generation,
                data,
            };
            books.by_name.insert(book.data.name.clone(), Arc::new(book));
        }
        Ok(Self {
            max_contacts,
            storage: Some(storage),
            books: RwLock::new(books),
            writer: Mutex::new(()),
        })
    }

    fn get(&self, name: &str) -> Option<Arc<Book>> {
        self.books
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .by_name
            .get(name)
            .cloned()
    }

    /// Saves and publishes a new version of a phonebook (`None`: removes it). Called
    /// with the writer lock held.
    fn publish(&self, name: &str, data: Option<PhonebookData>) -> Result<(), PhonebookError> {
        if let Some(storage) = &self.storage {
            match &data {
                Some(data) => storage.save(data)?,
                None => storage.remove(name)?,
            }
        }
        let mut books = self.books.write().unwrap_or_else(PoisonError::into_inner);
        match data {
            Some(data) => {
                books.generation += 1;
                let book = Book {
                    generation: books.generation,
                    data,
                };
                books.by_name.insert(name.to_owned(), Arc::new(book));
            }
            None => {
                books.by_name.remove(name);
            }
        }
        Ok(())
    }

    /// Applies `change` to a copy of phonebook `name`, then saves and publishes it.
    fn change<T>(
        &self,
        name: &str,
        change: impl FnOnce(&mut PhonebookData) -> Result<T, PhonebookError>,
    ) -> Result<T, PhonebookError> {
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let book = self
            .get(name)
            .ok_or_else(|| PhonebookError::UnknownPhonebook {
                name: name.to_owned(),
            })?;
        let mut data = book.data.clone();
        let value = change(&mut data)?;
        if data != book.data {
            self.publish(name, Some(data))?;
        }
        Ok(value)
    }

    /// Creates an empty phonebook.
    ///
    /// # Errors
    /// [`PhonebookError::BlankName`], [`PhonebookError::Exists`] or
    /// [`PhonebookError::Storage`].
    pub fn create_phonebook(&self, name: &str, description: &str) -> Result<(), PhonebookError> {
        if name.trim().is_empty() {
            return Err(PhonebookError::BlankName);
        }
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        if self.get(name).is_some() {
            return Err(PhonebookError::Exists {
                name: name.to_owned(),
            });
        }
        let data = PhonebookData {
            name: name.to_owned(),
            description: description.to_owned(),
            next_id: 1,
            contacts: BTreeMap::new(),
        };
        self.publish(name, Some(data))
    }

    /// Changes a phonebook's description.
    ///
    /// # Errors
    /// [`PhonebookError::UnknownPhonebook`] or [`PhonebookError::Storage`].
    pub fn describe_phonebook(&self, name: &str, description: &str) -> Result<(), PhonebookError> {
        self.change(name, |data| {
            description.clone_into(&mut data.description);
            Ok(())
        })
    }

    /// Deletes a phonebook and its contacts.
    ///
    /// # Errors
    /// [`PhonebookError::UnknownPhonebook`] or [`PhonebookError::Storage`].
    pub fn delete_phonebook(&self, name: &str) -> Result<(), PhonebookError> {
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        if self.get(name).is_none() {
            return Err(PhonebookError::UnknownPhonebook {
                name: name.to_owned(),
            });
        }
        self.publish(name, None)
    }

    /// Every phonebook, by name.
    pub fn list(&self) -> Vec<PhonebookInfo> {
        let books = self.books.read().unwrap_or_else(PoisonError::into_inner);
        let mut list: Vec<PhonebookInfo> = books
            .by_name
            .values()
            .map(|book| PhonebookInfo {
                name: book.data.name.clone(),
                description: book.data.description.clone(),
                contacts: book.data.contacts.len(),
            })
            .collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        list
    }

    fn insert(&self, data: &mut PhonebookData, fields: Fields) -> Result<Fields, PhonebookError> {
        let fields = clean(fields)?;
        if data.contacts.len() >= self.max_contacts {
            return Err(PhonebookError::Limit {
                limit: self.max_contacts,
            });
        }
        let id = data.next_id;
        let created = record(id, &fields);
        data.contacts.insert(id, fields);
        data.next_id = id.saturating_add(1);
        Ok(created)
    }

    /// Adds a contact to a phonebook (an `id` field given is ignored; empty fields are
    /// dropped) and returns its fields with its `id`.
    ///
    /// # Errors
    /// [`PhonebookError::UnknownPhonebook`], [`PhonebookError::Empty`],
    /// [`PhonebookError::Limit`] or [`PhonebookError::Storage`].
    pub fn create_contact(
        &self,
        phonebook: &str,
        fields: Fields,
    ) -> Result<Fields, PhonebookError> {
        self.change(phonebook, |data| self.insert(data, fields))
    }

    /// Adds several contacts at once, saved once (for imports): all are created, or
    /// none when one is refused.
    ///
    /// # Errors
    /// As [`Phonebooks::create_contact`], for the first contact refused.
    pub fn create_contacts(
        &self,
        phonebook: &str,
        contacts: impl IntoIterator<Item = Fields>,
    ) -> Result<Vec<Fields>, PhonebookError> {
        self.change(phonebook, |data| {
            contacts
                .into_iter()
                .map(|fields| self.insert(data, fields))
                .collect()
        })
    }

    /// Replaces the fields of a contact and returns them with its `id`.
    ///
    /// # Errors
    /// [`PhonebookError::UnknownPhonebook`], [`PhonebookError::NotFound`],
    /// [`PhonebookError::Empty`] or [`PhonebookError::Storage`].
    pub fn update_contact(
        &self,
        phonebook: &str,
        id: &str,
        fields: Fields,
    ) -> Result<Fields, PhonebookError> {
        let not_found = || PhonebookError::NotFound {
            phonebook: phonebook.to_owned(),
            id: id.to_owned(),
        };
        let key: u64 = id.parse().map_err(|_| not_found())?;
        let fields = clean(fields)?;
        self.change(phonebook, |data| {
            let slot = data.contacts.get_mut(&key).ok_or_else(not_found)?;
            *slot = fields;
            Ok(record(key, slot))
        })
    }

    /// Deletes a contact.
    ///
    /// # Errors
    /// [`PhonebookError::UnknownPhonebook`], [`PhonebookError::NotFound`] or
    /// [`PhonebookError::Storage`].
    pub fn delete_contact(&self, phonebook: &str, id: &str) -> Result<(), PhonebookError> {
        let not_found = || PhonebookError::NotFound {
            phonebook: phonebook.to_owned(),
            id: id.to_owned(),
        };
        let key: u64 = id.parse().map_err(|_| not_found())?;
        self.change(phonebook, |data| {
            data.contacts.remove(&key).map(drop).ok_or_else(not_found)
        })
    }

    /// A contact's fields with its `id`.
    ///
    /// # Errors
    /// [`PhonebookError::UnknownPhonebook`] or [`PhonebookError::NotFound`].
    pub fn contact(&self, phonebook: &str, id: &str) -> Result<Fields, PhonebookError> {
        let not_found = || PhonebookError::NotFound {
            phonebook: phonebook.to_owned(),
            id: id.to_owned(),
        };
        let book = self.book(phonebook)?;
        let key: u64 = id.parse().map_err(|_| not_found())?;
        book.data
            .contacts
            .get(&key)
            .map(|fields| record(key, fields))
            .ok_or_else(not_found)
    }

    /// Every contact of a phonebook with its `id`, in creation order.
    ///
    /// # Errors
    /// [`PhonebookError::UnknownPhonebook`].
    pub fn contacts(&self, phonebook: &str) -> Result<Vec<Fields>, PhonebookError> {
        let book = self.book(phonebook)?;
        Ok(book
            .data
            .contacts
            .iter()
            .map(|(&id, fields)| record(id, fields))
            .collect())
    }

    fn book(&self, name: &str) -> Result<Arc<Book>, PhonebookError> {
        self.get(name)
            .ok_or_else(|| PhonebookError::UnknownPhonebook {
                name: name.to_owned(),
            })
    }
}

/// A source searching one phonebook (wazo-dird's `dird_phonebook` back-end).
///
/// The phonebook is indexed like a CSV file; the index is rebuilt on the first query
/// after the phonebook changes.
#[derive(Debug)]
pub struct PhonebookSource {
    phonebooks: Arc<Phonebooks>,
    phonebook: String,
    config: SourceConfig,
    plan: NumberPlan,
    /// The index of the phonebook's generation it was built from.
    cache: Mutex<Option<(u64, Arc<ContactIndex>)>>,
}

impl PhonebookSource {
    /// A source named `config.name` over the phonebook `phonebook` of `phonebooks`.
    /// `config.unique_column` is forced to `id`; empty searched columns default to
    /// `firstname` and `lastname`, empty first-matched columns to `number` and `mobile`.
    pub fn new(
        phonebooks: Arc<Phonebooks>,
        phonebook: impl Into<String>,
        mut config: SourceConfig,
        plan: NumberPlan,
    ) -> Self {
        config.unique_column = Some(ID_FIELD.to_owned());
        if config.searched_columns.is_empty() {
            config.searched_columns = ["firstname", "lastname"].map(str::to_owned).to_vec();
        }
        if config.first_matched_columns.is_empty() {
            config.first_matched_columns = ["number", "mobile"].map(str::to_owned).to_vec();
        }
        Self {
            phonebooks,
            phonebook: phonebook.into(),
            config,
            plan,
            cache: Mutex::new(None),
        }
    }

    /// The index of the phonebook's current version, built if it changed.
    fn index(&self) -> Result<Arc<ContactIndex>, SourceError> {
        let book = self
            .phonebooks
            .get(&self.phonebook)
            .ok_or_else(|| SourceError::Data {
                source_name: self.config.name.clone(),
                message: format!("no phonebook {:?}", self.phonebook),
            })?;
        if let Some((generation, index)) =
            &*self.cache.lock().unwrap_or_else(PoisonError::into_inner)
            && *generation == book.generation
        {
            return Ok(Arc::clone(index));
        }
        // Built without holding the cache, so that queries are never blocked behind a
        // build; two concurrent first queries may both build, the last one is kept.
        let records = book
            .data
            .contacts
            .iter()
            .map(|(&id, fields)| record(id, fields));
        let index = Arc::new(ContactIndex::build(&self.config, &self.plan, records));
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        // A slower concurrent build of an older version must not replace a newer one.
        if cache
            .as_ref()
            .is_none_or(|(generation, _)| *generation < book.generation)
        {
            *cache = Some((book.generation, Arc::clone(&index)));
        }
        Ok(index)
    }
}

#[async_trait]
impl Source for PhonebookSource {
    fn name(&self) -> &str {
        &self.config.name
    }

    async fn search(&self, term: &str, _ctx: &QueryContext) -> Result<Vec<Contact>, SourceError> {
        Ok(self.index()?.search(term).cloned().collect())
    }

    async fn first_match(
        &self,
        number: &str,
        _ctx: &QueryContext,
    ) -> Result<Option<Contact>, SourceError> {
        Ok(self.index()?.reverse(&self.plan, number).next().cloned())
    }

    async fn list(&self, ids: &[String], _ctx: &QueryContext) -> Result<Vec<Contact>, SourceError> {
        let index = self.index()?;
        Ok(ids.iter().filter_map(|id| index.get(id)).cloned().collect())
    }
}
