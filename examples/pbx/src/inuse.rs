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
