//! Agents' logins as live state: which agent is logged in on which user's phone,
//! and where and why it is paused, kept in `data_dir/agents.json` so that a
//! restart of the PBX does not log the call centre out.
//!
//! The table follows the ACD's own `queue_log` lines ([`Agents::apply`]):
//! `AGENTLOGIN`, `AGENTLOGOFF`, `PAUSE`/`UNPAUSE` per queue, `PAUSEALL`/
//! `UNPAUSEALL`. So what the ACD does by itself (an autopause after a missed
//! call, a logoff) is kept as surely as what an agent dials. Every change is
//! written (the whole table, atomically: write, fsync, rename; the newest table
//! wins when writes overlap) and an agent hears its confirmation only once it is
//! written; changes come at the pace of people pressing keys and phones ringing.
//! At start the PBX logs the saved agents back in, paused where they were,
//! without writing new `AGENTLOGIN` or `PAUSE` lines: for the `queue_log` their
//! session goes on.

use pbxkit_acd::queue_log::{Event, Line};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

/// An agent logged in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Login {
    /// The user whose phone rings for the agent.
    pub(crate) user: String,
    /// The reason of a pause in every queue, while it lasts.
    #[serde(default)]
    pub(crate) paused: Option<String>,
    /// The queues the agent is paused in, with the reasons.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) paused_in: BTreeMap<String, String>,
}

impl Login {
    /// A login on `user`'s phone, not paused.
    pub(crate) fn on(user: &str) -> Login {
        Login {
            user: user.to_owned(),
            paused: None,
            paused_in: BTreeMap::new(),
        }
    }
}

/// The logged-in agents, by number, as the ACD's `queue_log` lines say.
#[derive(Debug, Default)]
pub(crate) struct Agents {
    logins: BTreeMap<String, Login>,
    /// Counts changes: a write of an older table never replaces a newer one.
    version: u64,
}

impl Agents {
    /// The table saved before (read at start).
    pub(crate) fn from_saved(logins: BTreeMap<String, Login>) -> Agents {
        Agents { logins, version: 0 }
    }

    /// The agents logged in.
    pub(crate) fn logins(&self) -> &BTreeMap<String, Login> {
        &self.logins
    }

    /// Follows one `queue_log` line; whether the table changed.
    pub(crate) fn apply(&mut self, line: &Line) -> bool {
        let number = line.agent.strip_prefix("Agent/").unwrap_or(&line.agent);
        let changed = match &line.event {
            Event::AgentLogin { channel } => {
                self.logins.insert(number.to_owned(), Login::on(channel));
                true
            }
            Event::AgentLogoff { .. } => self.logins.remove(number).is_some(),
            event => {
                let Some(login) = self.logins.get_mut(number) else {
                    return false;
                };
                match event {
                    Event::PauseAll { reason } => login.paused = Some(reason.clone()),
                    Event::UnpauseAll { .. } => login.paused = None,
                    Event::Pause { reason } => {
                        login.paused_in.insert(line.queue.clone(), reason.clone());
                    }
                    Event::Unpause { .. } => {
                        // No longer paused everywhere: the other queues' pauses are
                        // each in `paused_in` (a PAUSEALL is followed by its queues').
                        login.paused = None;
                        login.paused_in.remove(&line.queue);
                    }
                    _ => return false,
                }
                true
            }
        };
        if changed {
            self.version += 1;
        }
        changed
    }

    /// The table to write, with its version.
    pub(crate) fn snapshot(&self) -> (u64, BTreeMap<String, Login>) {
        (self.version, self.logins.clone())
    }
}

/// `data_dir/agents.json`.
#[derive(Debug)]
pub(crate) struct AgentStore {
    file: PathBuf,
    /// The version last written, and the lock that orders writes.
    written: tokio::sync::Mutex<u64>,
}

impl AgentStore {
    /// Opens the file and reads the saved table (none yet: empty); a file that
    /// does not parse is an error, never silently replaced.
    pub(crate) fn open(data_dir: &Path) -> io::Result<(AgentStore, BTreeMap<String, Login>)> {
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
        let store = AgentStore {
            file,
            written: tokio::sync::Mutex::new(0),
        };
        Ok((store, table))
    }

    /// Writes the table of `version`, unless a newer one is written already (it
    /// holds this change too); done when it is durable.
    pub(crate) async fn save(
        &self,
        (version, table): (u64, BTreeMap<String, Login>),
    ) -> io::Result<()> {
        let mut written = self.written.lock().await;
        if version <= *written {
            return Ok(());
        }
        let bytes = serde_json::to_vec_pretty(&table).map_err(io::Error::other)?;
        let file = self.file.clone();
        tokio::task::spawn_blocking(move || crate::store::write_atomic(&file, &bytes))
            .await
            .map_err(io::Error::other)??;
        *written = version;
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

    fn line(queue: &str, agent: &str, event: Event) -> Line {
        Line {
            time: 1,
            call_id: "NONE".into(),
            queue: queue.into(),
            agent: agent.into(),
            event,
        }
    }

    #[test]
    fn the_table_follows_the_acds_lines() {
        let mut agents = Agents::default();
        let reason = |r: &str| r.to_owned();
        assert!(agents.apply(&line(
            "NONE",
            "Agent/1",
            Event::AgentLogin {
                channel: "1001".into()
            }
        )));
        assert_eq!(agents.logins()["1"], Login::on("1001"));
        // PAUSEALL and its queues' PAUSE lines; then one queue unpaused.
        agents.apply(&line(
            "NONE",
            "Agent/1",
            Event::PauseAll {
                reason: reason("lunch"),
            },
        ));
        for q in ["sales", "support"] {
            agents.apply(&line(
                q,
                "Agent/1",
                Event::Pause {
                    reason: reason("lunch"),
                },
            ));
        }
        assert_eq!(agents.logins()["1"].paused.as_deref(), Some("lunch"));
        agents.apply(&line(
            "sales",
            "Agent/1",
            Event::Unpause {
                reason: String::new(),
            },
        ));
        let login = &agents.logins()["1"];
        assert_eq!(login.paused, None);
        assert_eq!(
            login.paused_in,
            BTreeMap::from([("support".to_owned(), reason("lunch"))])
        );
        // Lines about others or of no interest change nothing.
        let (version, _) = agents.snapshot();
        assert!(!agents.apply(&line(
            "sales",
            "Agent/9",
            Event::Pause {
                reason: reason("x")
            }
        )));
        assert!(!agents.apply(&line("sales", "Agent/1", Event::WrapUpStart { wrap_up: 5 })));
        assert_eq!(agents.snapshot().0, version);
        assert!(agents.apply(&line(
            "NONE",
            "Agent/1",
            Event::AgentLogoff {
                channel: "1001".into(),
                login_time: 60
            }
        )));
        assert!(agents.logins().is_empty());
    }

    #[tokio::test]
    async fn logins_are_saved_and_read_back_after_a_restart() {
        let dir = std::env::temp_dir().join(format!("pbxkit-agents-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let _ = std::fs::remove_file(dir.join("agents.json"));
        let (store, saved) = AgentStore::open(&dir).unwrap();
        assert!(saved.is_empty());
        let mut paused = Login::on("1001");
        paused
            .paused_in
            .insert("support".into(), "Auto-Pause".into());
        let table = |v: u64, logins: &[(&str, &Login)]| {
            let t: BTreeMap<String, Login> = logins
                .iter()
                .map(|(a, l)| ((*a).to_owned(), (*l).clone()))
                .collect();
            (v, t)
        };
        store
            .save(table(1, &[("1", &Login::on("1001"))]))
            .await
            .unwrap();
        store.save(table(3, &[("1", &paused)])).await.unwrap();
        // An older table written late does not replace the newer one.
        store.save(table(2, &[])).await.unwrap();
        let (_, logins) = AgentStore::open(&dir).unwrap();
        assert_eq!(logins.len(), 1);
        assert_eq!(logins["1"], paused);
        // A file of an older PBX (no `paused_in`) still reads.
        std::fs::write(
            dir.join("agents.json"),
            br#"{"2": {"user": "1002", "paused": "x"}}"#,
        )
        .unwrap();
        let (_, logins) = AgentStore::open(&dir).unwrap();
        assert_eq!(logins["2"].paused.as_deref(), Some("x"));
        std::fs::write(dir.join("agents.json"), b"{ not json").unwrap();
        assert!(AgentStore::open(&dir).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
