//! Live user state: what users change while the PBX runs (do-not-disturb and
//! forwards today; presence and agent states later), kept apart from the
//! configuration so that a reload does not undo it and a restart keeps it.
//!
//! [`Users`] holds the state in memory, where the dialplan reads it through
//! [`pbxkit_dialplan::LiveState::services`] without waiting, and writes every change
//! through a [`UserStore`] before it takes effect: a change the phone is told about
//! survives a crash. The store is a trait with fallible, asynchronous operations so
//! that a shared database can replace the file when several nodes serve the same
//! users; [`FileUserStore`] keeps `users.json` under `data_dir`.
//!
//! A user with no entry has the services of its configuration; once a user has
//! changed them (a feature code, the API), its entry wins over the
//! configuration until it is changed again.

use crate::events::{Bus, Event};
use pbxkit_dialplan::UserServices;
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

/// Why live state could not be read or saved.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    /// The storage failed.
    #[error("{path}: {source}")]
    Io {
        /// What was read or written.
        path: String,
        /// Why.
        source: io::Error,
    },
    /// What was stored does not parse.
    #[error("{path}: {source}")]
    Corrupt {
        /// What was read.
        path: String,
        /// Why.
        source: serde_json::Error,
    },
}

/// Where live user state is kept.
#[async_trait::async_trait]
pub(crate) trait UserStore: Send + Sync + std::fmt::Debug {
    /// Every user's saved services.
    async fn load(&self) -> Result<HashMap<String, UserServices>, StoreError>;
    /// Saves `user`'s services; done when they are durable.
    async fn save(&self, user: &str, services: &UserServices) -> Result<(), StoreError>;
}

/// Live state in `users.json`: the whole table rewritten atomically on each change
/// (changes come at the pace of people pressing keys, not of calls).
#[derive(Debug)]
pub(crate) struct FileUserStore {
    file: PathBuf,
    /// The table as saved, and the lock that orders writes.
    saved: tokio::sync::Mutex<BTreeMap<String, UserServices>>,
}

impl FileUserStore {
    pub(crate) fn new(data_dir: &std::path::Path) -> FileUserStore {
        FileUserStore {
            file: data_dir.join("users.json"),
            saved: tokio::sync::Mutex::default(),
        }
    }

    fn path(&self) -> String {
        self.file.display().to_string()
    }
}

#[async_trait::async_trait]
impl UserStore for FileUserStore {
    async fn load(&self) -> Result<HashMap<String, UserServices>, StoreError> {
        let file = self.file.clone();
        let read = tokio::task::spawn_blocking(move || std::fs::read(file)).await;
        let bytes = match read {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(e)) if e.kind() == io::ErrorKind::NotFound => return Ok(HashMap::new()),
            Ok(Err(source)) => {
                return Err(StoreError::Io {
                    path: self.path(),
                    source,
                });
            }
            Err(e) => {
                return Err(StoreError::Io {
                    path: self.path(),
                    source: io::Error::other(e),
                });
            }
        };
        let table: BTreeMap<String, UserServices> =
            serde_json::from_slice(&bytes).map_err(|source| StoreError::Corrupt {
                path: self.path(),
                source,
            })?;
        *self.saved.lock().await = table.clone();
        Ok(table.into_iter().collect())
    }

    async fn save(&self, user: &str, services: &UserServices) -> Result<(), StoreError> {
        let mut saved = self.saved.lock().await;
        let mut next = saved.clone();
        next.insert(user.to_owned(), services.clone());
        let bytes = serde_json::to_vec_pretty(&next).map_err(|e| StoreError::Io {
            path: self.path(),
            source: io::Error::other(e),
        })?;
        let file = self.file.clone();
        let written =
            tokio::task::spawn_blocking(move || crate::store::write_atomic(&file, &bytes)).await;
        match written {
            Ok(Ok(())) => {
                *saved = next;
                Ok(())
            }
            Ok(Err(source)) => Err(StoreError::Io {
                path: self.path(),
                source,
            }),
            Err(e) => Err(StoreError::Io {
                path: self.path(),
                source: io::Error::other(e),
            }),
        }
    }
}

/// Users' live services, shared by the service loop and every call.
#[derive(Debug, Clone)]
pub(crate) struct Users {
    services: Arc<RwLock<HashMap<String, UserServices>>>,
    store: Arc<dyn UserStore>,
    bus: Bus,
}

impl Users {
    /// The live state `store` holds.
    pub(crate) async fn open(store: Arc<dyn UserStore>, bus: Bus) -> Result<Users, StoreError> {
        let loaded = store.load().await?;
        Ok(Users {
            services: Arc::new(RwLock::new(loaded)),
            store,
            bus,
        })
    }

    /// `user`'s services as they are now, when it has changed them.
    pub(crate) fn get(&self, user: &str) -> Option<UserServices> {
        self.services.read().ok()?.get(user).cloned()
    }

    /// Changes `user`'s services with `change`, starting from its live ones or else
    /// `configured`; the new services apply once saved.
    pub(crate) async fn update(
        &self,
        user: &str,
        configured: &UserServices,
        change: impl FnOnce(&mut UserServices),
    ) -> Result<UserServices, StoreError> {
        let mut services = self.get(user).unwrap_or_else(|| configured.clone());
        change(&mut services);
        self.store.save(user, &services).await?;
        if let Ok(mut table) = self.services.write() {
            table.insert(user.to_owned(), services.clone());
        }
        self.bus.publish(Event::UserServices {
            user: user.to_owned(),
            services: services.clone(),
        });
        Ok(services)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pbxkit_dialplan::config::Forward;

    #[tokio::test]
    async fn changes_are_saved_and_read_back_after_a_restart() {
        let dir = std::env::temp_dir().join(format!("pbxkit-live-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let bus = Bus::new();
        let mut events = bus.subscribe();
        let users = Users::open(Arc::new(FileUserStore::new(&dir)), bus.clone())
            .await
            .unwrap();
        assert_eq!(users.get("1000"), None);
        let configured = UserServices {
            dnd: true,
            ..UserServices::default()
        };
        let changed = users
            .update("1000", &configured, |s| {
                s.forwards.busy = Forward {
                    enabled: true,
                    destination: "1001".into(),
                }
            })
            .await
            .unwrap();
        // The configured DND is kept; the busy forward is new.
        assert!(changed.dnd);
        assert_eq!(users.get("1000"), Some(changed.clone()));
        assert!(matches!(
            events.try_recv().unwrap().as_ref(),
            Event::UserServices { user, .. } if user == "1000"
        ));
        let reopened = Users::open(Arc::new(FileUserStore::new(&dir)), bus)
            .await
            .unwrap();
        assert_eq!(reopened.get("1000"), Some(changed));
        // A corrupt file is an error that names it, not an empty table.
        std::fs::write(dir.join("users.json"), b"{").unwrap();
        let err = FileUserStore::new(&dir).load().await.unwrap_err();
        assert!(err.to_string().contains("users.json"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
