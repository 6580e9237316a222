//! What the dialplan's group strategies remember between calls: who answered each
//! group's last call (`rrmemory`), when each member last ended one of its calls
//! (`leastrecent`) and how many it completed (`fewestcalls`).

use jiff::Timestamp;
use std::collections::HashMap;

/// A member's record in one group.
#[derive(Debug, Clone, Copy)]
struct Member {
    last_call: Timestamp,
    calls: u32,
}

/// The history of every group, kept by the service and shared with calls (a call
/// routes with the history as it was when it arrived).
#[derive(Debug, Clone, Default)]
pub struct History {
    last_answered: HashMap<String, String>,
    members: HashMap<String, HashMap<String, Member>>,
}

impl History {
    /// `member` answered a call of `group`.
    pub fn answered(&mut self, group: &str, member: &str) {
        self.last_answered
            .insert(group.to_owned(), member.to_owned());
    }

    /// `member` ended a call of `group` at `at`.
    pub fn ended(&mut self, group: &str, member: &str, at: Timestamp) {
        let m = self
            .members
            .entry(group.to_owned())
            .or_default()
            .entry(member.to_owned())
            .or_insert(Member {
                last_call: at,
                calls: 0,
            });
        m.last_call = at;
        m.calls = m.calls.saturating_add(1);
    }
    /// The member who answered `group`'s last answered call.
    pub fn last_answered(&self, group: &str) -> Option<&str> {
        self.last_answered.get(group).map(String::as_str)
    }

    /// When `user` last ended a call of `group`.
    pub fn last_call(&self, group: &str, user: &str) -> Option<Timestamp> {
        Some(self.members.get(group)?.get(user)?.last_call)
    }

    /// Calls of `group` that `user` completed.
    pub fn calls(&self, group: &str, user: &str) -> u32 {
        self.members
            .get(group)
            .and_then(|m| m.get(user))
            .map_or(0, |m| m.calls)
    }
}
