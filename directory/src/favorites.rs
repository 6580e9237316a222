//! [`Favorites`]: each user's favorite contacts, as (source name, unique id) pairs
//! (wazo-dird's `favorites` service), in memory or durably on disk.
//!
//! [`Directory`](crate::Directory) flags favorite rows in lookups and lists a user's
//! favorites by asking each source for its ids ([`Source::list`](crate::Source::list)).
//! With [`Favorites::open`], each user's favorites are one JSON file in a directory,
//! replaced atomically on every change (see [`store`](crate::store)); a change is saved
//! before it becomes visible, and refused when the save fails.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError, RwLock};

use serde::{Deserialize, Serialize};

use crate::store::{JsonDir, StoreError};

/// Why a favorite could not be added or removed (nothing changed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FavoriteError {
    /// The user already has the maximum number of favorites.
    #[error("the user already has {limit} favorites")]
    Limit {
        /// The configured maximum per user.
        limit: usize,
    },
    /// The change could not be saved.
    #[error("favorites not saved: {0}")]
    Storage(#[from] StoreError),
}

/// One favorite as stored.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct Entry {
    source: String,
    id: String,
}

/// One user's favorites as stored.
#[derive(Debug, Serialize, Deserialize)]
struct Document {
    user: String,
    favorites: BTreeSet<Entry>,
}

/// The favorites of every user.
#[derive(Debug)]
pub struct Favorites {
    max_per_user: usize,
    dir: Option<JsonDir>,
    users: RwLock<HashMap<String, BTreeSet<Entry>>>,
    /// Held by a change from reading the user's set to publishing the new one, so that
    /// changes are saved in order while lookups keep reading the published sets.
    writer: Mutex<()>,
}

impl Favorites {
    /// No favorites, kept in memory only; each user has at most `max_per_user`.
    pub fn new(max_per_user: usize) -> Self {
        Self {
            max_per_user,
            dir: None,
            users: RwLock::new(HashMap::new()),
            writer: Mutex::new(()),
        }
    }

    /// The favorites kept in `dir` (created if missing), one JSON file per user.
    /// Favorites loaded beyond `max_per_user` are kept; the limit applies to new ones.
    ///
    /// # Errors
    /// When the directory cannot be read or a file is corrupt (the error names it).
    pub fn open(dir: impl Into<PathBuf>, max_per_user: usize) -> Result<Self, StoreError> {
        let dir = JsonDir::open(dir)?;
        let users = dir
            .load_all::<Document>()?
            .into_iter()
            .filter(|document| !document.favorites.is_empty())
            .map(|document| (document.user, document.favorites))
            .collect();
        Ok(Self {
            max_per_user,
            dir: Some(dir),
            users: RwLock::new(users),
            writer: Mutex::new(()),
        })
    }

    /// Marks (`favorite`) or unmarks a contact, by source name and unique id, as a
    /// favorite of `user`. Returns whether this changed anything.
    ///
    /// # Errors
    /// [`FavoriteError::Limit`] when adding past the limit, or
    /// [`FavoriteError::Storage`].
    pub fn set(
        &self,
        user: &str,
        source: &str,
        id: &str,
        favorite: bool,
    ) -> Result<bool, FavoriteError> {
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let mut set = self
            .users
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(user)
            .cloned()
            .unwrap_or_default();
        let entry = Entry {
            source: source.to_owned(),
            id: id.to_owned(),
        };
        if favorite {
            if set.contains(&entry) {
                return Ok(false);
            }
            if set.len() >= self.max_per_user {
                return Err(FavoriteError::Limit {
                    limit: self.max_per_user,
                });
            }
            set.insert(entry);
        } else if !set.remove(&entry) {
            return Ok(false);
        }
        if let Some(dir) = &self.dir {
            if set.is_empty() {
                dir.remove(user)?;
            } else {
                dir.save(
                    user,
                    &Document {
                        user: user.to_owned(),
                        favorites: set.clone(),
                    },
                )?;
            }
        }
        let mut users = self.users.write().unwrap_or_else(PoisonError::into_inner);
        if set.is_empty() {
            users.remove(user);
        } else {
            users.insert(user.to_owned(), set);
        }
        Ok(true)
    }

    /// Whether the contact `id` of `source` is a favorite of `user`.
    pub fn contains(&self, user: &str, source: &str, id: &str) -> bool {
        self.users
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(user)
            .is_some_and(|set| {
                set.contains(&Entry {
                    source: source.to_owned(),
                    id: id.to_owned(),
                })
            })
    }

    /// The favorites of `user` as (source, id) pairs, sorted.
    pub fn list(&self, user: &str) -> Vec<(String, String)> {
        self.users
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(user)
            .into_iter()
            .flatten()
            .map(|entry| (entry.source.clone(), entry.id.clone()))
            .collect()
    }
}
