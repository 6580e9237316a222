//! What the dialplan's group strategies need to know when a call is routed: the calls
//! in progress per user, and each group's history (who answered its last call, when
//! each member last ended one of its calls and how many it completed), with a fresh
//! random draw per call for `random` and `wrandom`.

use jiff::Timestamp;
use pbxkit_dialplan::LiveState;
use std::sync::Arc;

pub(crate) use pbxkit::history::History;

/// The live state one call is routed with.
#[derive(Debug, Clone, Default)]
pub(crate) struct Live {
    /// Calls in progress per user (and per `trunk:<name>`), as they are now.
    pub(crate) in_use: crate::inuse::InUse,
    pub(crate) groups: Arc<History>,
    /// This call's draw for the random strategies.
    pub(crate) random: u64,
    /// Users' live services (DND, forwards), read when the call is routed.
    pub(crate) users: Option<crate::live::Users>,
}

impl LiveState for Live {
    fn in_use(&self, user: &str) -> u32 {
        self.in_use.get(user)
    }

    fn group_last_answered(&self, group: &str) -> Option<&str> {
        self.groups.last_answered(group)
    }

    fn member_last_call(&self, group: &str, user: &str) -> Option<Timestamp> {
        self.groups.last_call(group, user)
    }

    fn member_calls(&self, group: &str, user: &str) -> u32 {
        self.groups.calls(group, user)
    }

    fn random(&self) -> u64 {
        self.random
    }

    fn services(&self, user: &str) -> Option<pbxkit_dialplan::UserServices> {
        self.users.as_ref()?.get(user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_history_answers_what_the_strategies_ask() {
        let mut h = History::default();
        h.answered("3000", "1001");
        let t = Timestamp::from_second(1_700_000_000).unwrap();
        h.ended("3000", "1001", t);
        h.ended("3000", "1001", t);
        let live = Live {
            groups: Arc::new(h),
            random: 7,
            ..Live::default()
        };
        assert_eq!(live.group_last_answered("3000"), Some("1001"));
        assert_eq!(live.member_last_call("3000", "1001"), Some(t));
        assert_eq!(live.member_calls("3000", "1001"), 2);
        assert_eq!(live.member_calls("3000", "1002"), 0);
        assert_eq!(live.member_last_call("3001", "1001"), None);
        assert_eq!(live.random(), 7);
    }
}
