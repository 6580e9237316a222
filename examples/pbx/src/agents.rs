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

/// Wrong agent passwords, counted like failed SIP authentications: a phone's user
/// that gets one agent's password wrong `max_failures` times within `window` is
/// refused that agent's login for `ban_time`. The count is per (user, agent): the
/// agent still logs in from other phones, the user still logs in other agents.
#[derive(Debug)]
pub(crate) struct LoginGuard {
    policy: crate::ban::Policy,
    /// Recent failures and the end of a ban, per (user, agent).
    tries: std::collections::HashMap<(String, String), Tries>,
}

#[derive(Debug, Default)]
struct Tries {
    failures: std::collections::VecDeque<std::time::Instant>,
    banned_until: Option<std::time::Instant>,
}

/// Pairs tracked at most: older entries are forgotten first when it is reached.
const MAX_TRACKED: usize = 10_000;

impl LoginGuard {
    pub(crate) fn new(policy: crate::ban::Policy) -> LoginGuard {
        LoginGuard {
            policy,
            tries: std::collections::HashMap::new(),
        }
    }

    /// Whether `user` may try `agent`'s password now.
    pub(crate) fn allowed(&self, user: &str, agent: &str, now: std::time::Instant) -> bool {
        self.tries
            .get(&(user.to_owned(), agent.to_owned()))
            .and_then(|t| t.banned_until)
            .is_none_or(|until| now >= until)
    }

    /// A wrong password: whether `user` is now refused `agent`'s login.
    pub(crate) fn failed(&mut self, user: &str, agent: &str, now: std::time::Instant) -> bool {
        if self.policy.max_failures == 0 {
            return false;
        }
        if self.tries.len() >= MAX_TRACKED {
            self.forget_expired(now);
        }
        if self.tries.len() >= MAX_TRACKED {
            // Still full of live entries: keep counting the ones already tracked.
            let key = (user.to_owned(), agent.to_owned());
            if !self.tries.contains_key(&key) {
                return false;
            }
        }
        let window = self.policy.window;
        let tries = self
            .tries
            .entry((user.to_owned(), agent.to_owned()))
            .or_default();
        tries.failures.push_back(now);
        while tries
            .failures
            .front()
            .is_some_and(|t| now.duration_since(*t) > window)
        {
            tries.failures.pop_front();
        }
        if tries.failures.len() >= self.policy.max_failures as usize {
            tries.failures.clear();
            tries.banned_until = Some(now + self.policy.ban_time);
            return true;
        }
        false
    }

    /// The right password: the count starts again.
    pub(crate) fn succeeded(&mut self, user: &str, agent: &str) {
        self.tries.remove(&(user.to_owned(), agent.to_owned()));
    }

    fn forget_expired(&mut self, now: std::time::Instant) {
        let window = self.policy.window;
        self.tries.retain(|_, t| {
            t.banned_until.is_some_and(|until| now < until)
                || t.failures
                    .back()
                    .is_some_and(|last| now.duration_since(*last) <= window)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_passwords_lock_one_user_out_of_one_agent_for_a_while() {
        let policy = crate::ban::Policy {
            max_failures: 3,
            window: std::time::Duration::from_secs(60),
            ban_time: std::time::Duration::from_secs(600),
            scanner_users: 0,
            max_challenges: 0,
        };
        let mut guard = LoginGuard::new(policy);
        let t0 = std::time::Instant::now();
        let s = std::time::Duration::from_secs;
        assert!(!guard.failed("1001", "1", t0));
        // Failures older than the window are forgotten.
        assert!(!guard.failed("1001", "1", t0 + s(100)));
        assert!(!guard.failed("1001", "1", t0 + s(101)));
        assert!(guard.allowed("1001", "1", t0 + s(101)));
        assert!(guard.failed("1001", "1", t0 + s(102)));
        assert!(!guard.allowed("1001", "1", t0 + s(103)));
        // Nobody else is locked out: the agent from another phone, the user for
        // another agent.
        assert!(guard.allowed("1002", "1", t0 + s(103)));
        assert!(guard.allowed("1001", "2", t0 + s(103)));
        assert!(guard.allowed("1001", "1", t0 + s(702)));
        guard.succeeded("1001", "1");
        assert!(!guard.failed("1001", "1", t0 + s(703)));
    }

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
