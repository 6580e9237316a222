//! Hints: each user's phone status as busy-lamp fields, supervision screens and
//! the CTI show it, derived from the call engine's events and the registrar's
//! counts. A consumer of [`Event`]s like the CDR: feed it every event and
//! registration change, publish the changes it returns.
//!
//! The statuses are Asterisk's device states as XiVO reports them (`phonestatus`
//! in the CTI's `login_capas`): −2 removed, −1 nonexistent, 0 idle, 1 in use,
//! 2 busy, 4 unavailable, 8 ringing, 9 in use and ringing, 16 on hold.
//!
//! ```
//! use pbxkit::hints::{HintStatus, Hints};
//!
//! let mut hints = Hints::default();
//! hints.add_user("1000", 1);
//! assert_eq!(hints.status("1000"), HintStatus::Unavailable);
//! assert_eq!(
//!     hints.registered("1000", 1),
//!     Some(("1000".to_owned(), HintStatus::Idle))
//! );
//! assert_eq!(hints.status("4242").code(), -1);
//! ```

use crate::engine::{CallId, Event};
use std::collections::HashMap;

/// A user's phone status (the codes are the reference's, in [`HintStatus::code`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HintStatus {
    /// The user was removed from the configuration (−2).
    Removed,
    /// No such user (−1).
    Nonexistent,
    /// Registered, in no call (0).
    Idle,
    /// In a call, ringing out or talking (1).
    InUse,
    /// In as many calls as its `simultaneous_calls` allows (2).
    Busy,
    /// No phone registered (4).
    Unavailable,
    /// Its phone rings (8).
    Ringing,
    /// In a call, and its phone rings for another (9).
    InUseRinging,
    /// It has put a call on hold (16).
    OnHold,
}

impl HintStatus {
    /// The status code events and the CTI carry.
    pub fn code(self) -> i8 {
        match self {
            HintStatus::Removed => -2,
            HintStatus::Nonexistent => -1,
            HintStatus::Idle => 0,
            HintStatus::InUse => 1,
            HintStatus::Busy => 2,
            HintStatus::Unavailable => 4,
            HintStatus::Ringing => 8,
            HintStatus::InUseRinging => 9,
            HintStatus::OnHold => 16,
        }
    }
}

/// What one user is doing.
#[derive(Debug, Default)]
struct User {
    /// Its `simultaneous_calls`: this many calls in use make it busy.
    limit: u32,
    contacts: usize,
    /// Calls it is in (caller, answerer, transfer target), ringing for, holding.
    in_use: u32,
    ringing: u32,
    holding: u32,
    /// The status last reported.
    status: Option<HintStatus>,
}

impl User {
    fn status(&self) -> HintStatus {
        if self.contacts == 0 {
            HintStatus::Unavailable
        } else if self.holding > 0 {
            HintStatus::OnHold
        } else if self.ringing > 0 && self.in_use > 0 {
            HintStatus::InUseRinging
        } else if self.ringing > 0 {
            HintStatus::Ringing
        } else if self.in_use > 0 && self.in_use >= self.limit {
            HintStatus::Busy
        } else if self.in_use > 0 {
            HintStatus::InUse
        } else {
            HintStatus::Idle
        }
    }
}

/// Who a live call involves.
#[derive(Debug, Default)]
struct Parties {
    /// Users in the call (each once).
    parties: Vec<String>,
    /// Users its ringing step rings.
    ringing: Vec<String>,
    /// Users holding the other party.
    holding: Vec<String>,
}

/// Every configured user's status, kept up to date from events.
#[derive(Debug, Default)]
pub struct Hints {
    users: HashMap<String, User>,
    calls: HashMap<CallId, Parties>,
}

/// A status change to publish: the user and its new status.
pub type Change = (String, HintStatus);

impl Hints {
    /// Starts following `user`, in at most `limit` calls at once.
    pub fn add_user(&mut self, user: &str, limit: u32) {
        self.users.entry(user.to_owned()).or_default().limit = limit;
    }

    /// Stops following `user` (removed from the configuration): its last change.
    pub fn remove_user(&mut self, user: &str) -> Option<Change> {
        self.users
            .remove(user)
            .map(|_| (user.to_owned(), HintStatus::Removed))
    }

    /// The users followed.
    pub fn users(&self) -> impl Iterator<Item = &str> {
        self.users.keys().map(String::as_str)
    }

    /// `user`'s status now.
    pub fn status(&self, user: &str) -> HintStatus {
        self.users
            .get(user)
            .map_or(HintStatus::Nonexistent, User::status)
    }

    /// `user` has `contacts` registered phones now.
    pub fn registered(&mut self, user: &str, contacts: usize) -> Option<Change> {
        self.users.get_mut(user)?.contacts = contacts;
        self.changed(user)
    }

    /// The changes `event` makes.
    pub fn handle(&mut self, event: &Event) -> Vec<Change> {
        let mut touched: Vec<String> = Vec::new();
        match event {
            Event::CallCreated { call, caller, .. } => {
                let parties = self.calls.entry(*call).or_default();
                count(&mut self.users, caller, |u| &mut u.in_use, 1);
                parties.parties.push(caller.clone());
                touched.push(caller.clone());
            }
            Event::CallRinging { call, users, .. } => {
                let Some(parties) = self.calls.get_mut(call) else {
                    return Vec::new();
                };
                // A new step replaces the one before.
                let before = std::mem::replace(&mut parties.ringing, users.clone());
                for user in &before {
                    count(&mut self.users, user, |u| &mut u.ringing, -1);
                }
                for user in users {
                    count(&mut self.users, user, |u| &mut u.ringing, 1);
                }
                touched.extend(before);
                touched.extend(users.iter().cloned());
            }
            // An agent who takes a queue's caller answers it like a callee.
            Event::CallAnswered { call, callee }
            | Event::AgentConnected {
                call, user: callee, ..
            } => {
                let Some(parties) = self.calls.get_mut(call) else {
                    return Vec::new();
                };
                let rung = std::mem::take(&mut parties.ringing);
                parties.parties.push(callee.clone());
                for user in &rung {
                    count(&mut self.users, user, |u| &mut u.ringing, -1);
                }
                count(&mut self.users, callee, |u| &mut u.in_use, 1);
                touched.extend(rung);
                touched.push(callee.clone());
            }
            Event::CallTransferred {
                call,
                user,
                transferor,
            } => {
                let Some(parties) = self.calls.get_mut(call) else {
                    return Vec::new();
                };
                // Whoever the transfer target's step rang stops ringing.
                let rung = std::mem::take(&mut parties.ringing);
                let mut left = Vec::new();
                if let Some(t) = transferor
                    && let Some(i) = parties.parties.iter().position(|p| p == t)
                {
                    parties.parties.remove(i);
                    left.push(t.clone());
                    if let Some(i) = parties.holding.iter().position(|p| p == t) {
                        parties.holding.remove(i);
                        count(&mut self.users, t, |u| &mut u.holding, -1);
                    }
                }
                parties.parties.push(user.clone());
                for u in &rung {
                    count(&mut self.users, u, |x| &mut x.ringing, -1);
                }
                for u in &left {
                    count(&mut self.users, u, |x| &mut x.in_use, -1);
                }
                count(&mut self.users, user, |u| &mut u.in_use, 1);
                touched.extend(rung);
                touched.extend(left);
                touched.push(user.clone());
            }
            Event::CallHeld { call, user, held } => {
                let Some(parties) = self.calls.get_mut(call) else {
                    return Vec::new();
                };
                let at = parties.holding.iter().position(|p| p == user);
                match (held, at) {
                    (true, None) => {
                        parties.holding.push(user.clone());
                        count(&mut self.users, user, |u| &mut u.holding, 1);
                    }
                    (false, Some(i)) => {
                        parties.holding.remove(i);
                        count(&mut self.users, user, |u| &mut u.holding, -1);
                    }
                    _ => {}
                }
                touched.push(user.clone());
            }
            Event::CallEnded { call, .. } => {
                let Some(parties) = self.calls.remove(call) else {
                    return Vec::new();
                };
                for user in &parties.parties {
                    count(&mut self.users, user, |u| &mut u.in_use, -1);
                }
                for user in &parties.ringing {
                    count(&mut self.users, user, |u| &mut u.ringing, -1);
                }
                for user in &parties.holding {
                    count(&mut self.users, user, |u| &mut u.holding, -1);
                }
                touched.extend(parties.parties);
                touched.extend(parties.ringing);
                touched.extend(parties.holding);
            }
            _ => {}
        }
        touched.sort();
        touched.dedup();
        touched.iter().filter_map(|u| self.changed(u)).collect()
    }

    /// `user`'s status, when it differs from the one last reported.
    fn changed(&mut self, user: &str) -> Option<Change> {
        let u = self.users.get_mut(user)?;
        let status = u.status();
        (u.status != Some(status)).then(|| {
            u.status = Some(status);
            (user.to_owned(), status)
        })
    }
}

/// Adds `by` to the counter `field` picks of `user`, if followed.
fn count(
    users: &mut HashMap<String, User>,
    user: &str,
    field: impl Fn(&mut User) -> &mut u32,
    by: i32,
) {
    if let Some(u) = users.get_mut(user) {
        let n = field(u);
        *n = n.saturating_add_signed(by);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Outcome;
    use crate::hangup::{HangupCause, Party};

    fn call(n: u32) -> CallId {
        CallId::for_tests(n)
    }

    fn hints() -> Hints {
        let mut h = Hints::default();
        for user in ["1000", "1001", "1002"] {
            h.add_user(user, 2);
            h.registered(user, 1);
        }
        h
    }

    fn ended(c: CallId) -> Event {
        Event::CallEnded {
            call: c,
            caller: "1000".into(),
            dialed: "1001".into(),
            callee: Some("1001".into()),
            outcome: Outcome::Answered(HangupCause::by(Party::Caller)),
        }
    }

    #[test]
    fn a_queues_agent_rings_then_is_in_use_once_connected() {
        let mut h = hints();
        let c = call(7);
        h.handle(&Event::CallCreated {
            call: c,
            sip_call_id: "q".into(),
            caller: "1000".into(),
            dialed: "3100".into(),
        });
        // The queue answers: nobody's phone changes.
        let answered = Event::CallAnswered {
            call: c,
            callee: "support".into(),
        };
        assert_eq!(h.handle(&answered), []);
        let ringing = Event::CallRinging {
            call: c,
            users: vec!["1001".into(), "1002".into()],
            group: Some("support".into()),
        };
        assert_eq!(h.handle(&ringing).len(), 2);
        let connected = Event::AgentConnected {
            call: c,
            queue: "support".into(),
            agent: "1".into(),
            user: "1001".into(),
        };
        assert_eq!(
            h.handle(&connected),
            [
                ("1001".into(), HintStatus::InUse),
                ("1002".into(), HintStatus::Idle)
            ]
        );
        assert_eq!(h.handle(&ended(c)).len(), 2);
        assert_eq!(h.status("1001"), HintStatus::Idle);
    }

    #[test]
    fn a_call_rings_is_answered_held_resumed_and_ends() {
        let mut h = hints();
        let c = call(1);
        let created = Event::CallCreated {
            call: c,
            sip_call_id: "x".into(),
            caller: "1000".into(),
            dialed: "1001".into(),
        };
        assert_eq!(h.handle(&created), [("1000".into(), HintStatus::InUse)]);
        let ringing = Event::CallRinging {
            call: c,
            users: vec!["1001".into()],
            group: None,
        };
        assert_eq!(h.handle(&ringing), [("1001".into(), HintStatus::Ringing)]);
        let answered = Event::CallAnswered {
            call: c,
            callee: "1001".into(),
        };
        assert_eq!(h.handle(&answered), [("1001".into(), HintStatus::InUse)]);
        let hold = |held| Event::CallHeld {
            call: c,
            user: "1001".into(),
            held,
        };
        assert_eq!(h.handle(&hold(true)), [("1001".into(), HintStatus::OnHold)]);
        assert_eq!(h.handle(&hold(true)), []);
        assert_eq!(h.handle(&hold(false)), [("1001".into(), HintStatus::InUse)]);
        assert_eq!(h.handle(&hold(true)).len(), 1);
        // The end clears everything, the hold included.
        assert_eq!(
            h.handle(&ended(c)),
            [
                ("1000".into(), HintStatus::Idle),
                ("1001".into(), HintStatus::Idle)
            ]
        );
        assert!(h.calls.is_empty());
    }

    #[test]
    fn in_use_and_ringing_busy_at_the_limit_and_unregistered_phones() {
        let mut h = hints();
        let (c1, c2, c3) = (call(1), call(2), call(3));
        let created = |c, caller: &str| Event::CallCreated {
            call: c,
            sip_call_id: "x".into(),
            caller: caller.into(),
            dialed: "1000".into(),
        };
        h.handle(&created(c1, "1000"));
        h.handle(&created(c2, "1001"));
        let ringing = Event::CallRinging {
            call: c2,
            users: vec!["1000".into()],
            group: None,
        };
        assert_eq!(
            h.handle(&ringing),
            [("1000".into(), HintStatus::InUseRinging)]
        );
        let answered = Event::CallAnswered {
            call: c2,
            callee: "1000".into(),
        };
        // Two calls for a user allowed two: busy.
        assert_eq!(h.handle(&answered), [("1000".into(), HintStatus::Busy)]);
        // A group's next step rings others instead.
        h.handle(&created(c3, "1002"));
        let step = |users: &[&str]| Event::CallRinging {
            call: c3,
            users: users.iter().map(|u| (*u).to_owned()).collect(),
            group: Some("3000".into()),
        };
        h.handle(&step(&["1001"]));
        assert_eq!(h.status("1001"), HintStatus::InUseRinging);
        h.handle(&step(&["4242"]));
        assert_eq!(h.status("1001"), HintStatus::InUse);
        // No phone: unavailable whatever it does; back when it registers.
        assert_eq!(
            h.registered("1002", 0),
            Some(("1002".into(), HintStatus::Unavailable))
        );
        assert_eq!(
            h.registered("1002", 2),
            Some(("1002".into(), HintStatus::InUse))
        );
        assert_eq!(h.registered("1002", 1), None);
        assert_eq!(
            h.remove_user("1002"),
            Some(("1002".into(), HintStatus::Removed))
        );
        assert_eq!(h.status("1002"), HintStatus::Nonexistent);
        assert_eq!(
            [HintStatus::Removed, HintStatus::OnHold].map(HintStatus::code),
            [-2, 16]
        );
    }

    #[test]
    fn a_transfer_moves_the_call_from_the_transferor_to_the_target() {
        let mut h = hints();
        let c = call(1);
        h.handle(&Event::CallCreated {
            call: c,
            sip_call_id: "x".into(),
            caller: "1000".into(),
            dialed: "1001".into(),
        });
        h.handle(&Event::CallAnswered {
            call: c,
            callee: "1001".into(),
        });
        h.handle(&Event::CallHeld {
            call: c,
            user: "1001".into(),
            held: true,
        });
        // 1001 transfers 1000 to 1002: the target rings, then takes its place.
        h.handle(&Event::CallRinging {
            call: c,
            users: vec!["1002".into()],
            group: None,
        });
        assert_eq!(h.status("1002"), HintStatus::Ringing);
        let changes = h.handle(&Event::CallTransferred {
            call: c,
            user: "1002".into(),
            transferor: Some("1001".into()),
        });
        assert_eq!(
            changes,
            [
                ("1001".into(), HintStatus::Idle),
                ("1002".into(), HintStatus::InUse)
            ]
        );
        h.handle(&ended(c));
        assert!(h.users().all(|u| h.status(u) == HintStatus::Idle));
    }
}
