//! Calls in progress per user (and per trunk, keyed `trunk:<name>`), shared by the
//! service loop and every call and changed in place: a limit is checked and taken
//! in one step ([`InUse::try_add`]), so two calls arriving together cannot both pass
//! a limit of one (the counts used to be snapshots taken when a call arrived,
//! updated later by messages).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The counters; cheap to clone (one table shared).
#[derive(Debug, Clone, Default)]
pub(crate) struct InUse {
    counts: Arc<Mutex<HashMap<String, u32>>>,
}

impl InUse {
    /// Calls `key` has in progress.
    pub(crate) fn get(&self, key: &str) -> u32 {
        self.counts
            .lock()
            .map_or(0, |c| c.get(key).copied().unwrap_or(0))
    }

    /// One call more for `key`.
    pub(crate) fn add(&self, key: &str) {
        if let Ok(mut counts) = self.counts.lock() {
            let n = counts.entry(key.to_owned()).or_default();
            *n = n.saturating_add(1);
        }
    }

    /// One call more for `key` if it has fewer than `limit`; false (and nothing
    /// counted) otherwise.
    pub(crate) fn try_add(&self, key: &str, limit: u32) -> bool {
        let Ok(mut counts) = self.counts.lock() else {
            return false;
        };
        let n = counts.entry(key.to_owned()).or_default();
        if *n >= limit {
            if *n == 0 {
                counts.remove(key);
            }
            return false;
        }
        *n += 1;
        true
    }

    /// One call less for `key`; keys back at zero are forgotten.
    pub(crate) fn remove(&self, key: &str) {
        if let Ok(mut counts) = self.counts.lock()
            && let Some(n) = counts.get_mut(key)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(key);
            }
        }
    }

    /// How many keys have calls (0 when every call has ended).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.counts.lock().map_or(0, |c| c.len())
    }
}

/// The counts a call takes for the users it rings: checked and taken when their
/// phones start ringing, given back when the ringing ends, except the one of the
/// user who answers, which passes to the call (see [`Holds::answered`]).
#[derive(Debug)]
pub(crate) struct Holds {
    in_use: InUse,
    users: Vec<String>,
}

impl Holds {
    pub(crate) fn new(in_use: &InUse) -> Holds {
        Holds {
            in_use: in_use.clone(),
            users: Vec::new(),
        }
    }

    /// Takes one of `user`'s calls if it has fewer than `limit` (always when `None`);
    /// false when it is at its limit (busy).
    pub(crate) fn take(&mut self, user: &str, limit: Option<u32>) -> bool {
        let taken = match limit {
            Some(limit) => self.in_use.try_add(user, limit),
            None => {
                self.in_use.add(user);
                true
            }
        };
        if taken {
            self.users.push(user.to_owned());
        }
        taken
    }

    /// Whether a count of `user` is held.
    pub(crate) fn held(&self, user: &str) -> bool {
        self.users.iter().any(|u| u == user)
    }

    /// `user` answered: the other users' counts are given back now, and true when
    /// `user` held one, which is the call's from now on (it gives it back when the
    /// user leaves the call).
    pub(crate) fn answered(&mut self, user: &str) -> bool {
        let kept = self.users.iter().position(|u| u == user);
        if let Some(i) = kept {
            self.users.swap_remove(i);
        }
        self.release();
        kept.is_some()
    }

    fn release(&mut self) {
        for user in self.users.drain(..) {
            self.in_use.remove(&user);
        }
    }
}

impl Drop for Holds {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_is_checked_and_taken_at_once() {
        let in_use = InUse::default();
        let shared = in_use.clone();
        assert!(in_use.try_add("1000", 1));
        assert!(!shared.try_add("1000", 1));
        assert_eq!(shared.get("1000"), 1);
        shared.add("1000");
        assert_eq!(in_use.get("1000"), 2);
        in_use.remove("1000");
        in_use.remove("1000");
        in_use.remove("1000");
        assert_eq!(in_use.get("1000"), 0);
        assert!(!in_use.try_add("trunk:t", 0));
        assert_eq!(in_use.len(), 0);
    }

    #[test]
    fn ringing_users_hold_a_call_until_one_answers() {
        let in_use = InUse::default();
        in_use.add("1002");
        let mut holds = Holds::new(&in_use);
        assert!(holds.take("1000", Some(1)));
        assert!(holds.take("1001", Some(1)));
        assert!(!holds.take("1002", Some(1)), "already on a call");
        assert!(holds.take("1002", None), "rung even when in use");
        assert_eq!(in_use.get("1002"), 2);
        assert!(holds.answered("1001"));
        assert_eq!(
            (in_use.get("1000"), in_use.get("1001"), in_use.get("1002")),
            (0, 1, 1)
        );
        drop(holds);
        assert_eq!(in_use.get("1001"), 1, "the answerer's count is the call's");
        let mut unanswered = Holds::new(&in_use);
        assert!(unanswered.take("1003", Some(5)));
        drop(unanswered);
        assert_eq!(in_use.get("1003"), 0);
    }

    #[test]
    fn threads_racing_for_a_limit_never_exceed_it() {
        let in_use = InUse::default();
        let taken: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| (0..100).filter(|_| in_use.try_add("1000", 50)).count()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
        });
        assert_eq!(taken, 50);
        assert_eq!(in_use.get("1000"), 50);
    }
}
