//! Agents' logins as live state: which agent is logged in on which user's phone,
//! and whether it is paused, kept in `data_dir/agents.json` so that a restart of
//! the PBX does not log the call centre out.
//!
//! Every change is written (the whole table, atomically: write, fsync, rename)
//! before the agent hears its confirmation; changes come at the pace of people
//! pressing keys. At start the PBX logs the saved agents back in without writing
//! new `AGENTLOGIN` lines: for the `queue_log` their session goes on.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

/// An agent logged in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Login {
    /// The user whose phone rings for the agent.
    pub(crate) user: String,
    /// Why the agent paused, when it has.
    #[serde(default)]
    pub(crate) paused: Option<String>,
}

/// The table of logged-in agents in `agents.json`.
#[derive(Debug)]
pub(crate) struct AgentStore {
    file: PathBuf,
    /// The table as saved, and the lock that orders writes.
    saved: tokio::sync::Mutex<BTreeMap<String, Login>>,
}

impl AgentStore {
    /// Reads the saved table (none yet: empty); a file that does not parse is an
    /// error, never silently replaced.
    pub(crate) fn open(data_dir: &Path) -> io::Result<AgentStore> {
        let file = data_dir.join("agents.json");
        let table = match std::fs::read(&file) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {e}", file.display()),
                )
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e),
        };
        Ok(AgentStore {
            file,
            saved: tokio::sync::Mutex::new(table),
        })
    }

    /// The agents saved as logged in.
    pub(crate) async fn logins(&self) -> BTreeMap<String, Login> {
        self.saved.lock().await.clone()
    }

    /// Saves `agent`'s login (`None`: logged off); done when it is durable.
    pub(crate) async fn save(&self, agent: &str, login: Option<Login>) -> io::Result<()> {
        let mut saved = self.saved.lock().await;
        let mut next = saved.clone();
        match login {
            Some(login) => next.insert(agent.to_owned(), login),
            None => next.remove(agent),
        };
        let bytes = serde_json::to_vec_pretty(&next).map_err(io::Error::other)?;
        let file = self.file.clone();
        tokio::task::spawn_blocking(move || crate::store::write_atomic(&file, &bytes))
            .await
            .map_err(io::Error::other)??;
        *saved = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn logins_are_saved_and_read_back_after_a_restart() {
        let dir = std::env::temp_dir().join(format!("pbxkit-agents-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let _ = std::fs::remove_file(dir.join("agents.json"));
        let store = AgentStore::open(&dir).unwrap();
        let login = |paused: Option<&str>| Login {
            user: "1001".into(),
            paused: paused.map(Into::into),
        };
        store.save("1", Some(login(None))).await.unwrap();
        store.save("2", Some(login(None))).await.unwrap();
        store.save("1", Some(login(Some("lunch")))).await.unwrap();
        store.save("2", None).await.unwrap();
        let again = AgentStore::open(&dir).unwrap();
        let logins = again.logins().await;
        assert_eq!(logins.len(), 1);
        assert_eq!(logins["1"], login(Some("lunch")));
        std::fs::write(dir.join("agents.json"), b"{ not json").unwrap();
        assert!(AgentStore::open(&dir).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
