//! The PBX's event bus: what happens to calls, registrations and users' settings,
//! as typed events. Events are the one way state leaves the core; consumers
//! (the debug log, the API's WebSocket `/events` and webhooks; CDR, BLF,
//! queue_log, wallboards and CTI as they move onto the bus) subscribe and never
//! reach into a call.
//!
//! The bus is a broadcast channel: publishing never waits, and a subscriber that
//! falls more than [`CAPACITY`] events behind loses the oldest ones and is told how
//! many (tokio's `Lagged`), so one slow consumer cannot stall calls.

use pbxkit_dialplan::UserServices;
use std::sync::Arc;
use tokio::sync::broadcast;

/// Events kept for a subscriber that has not read them yet.
pub(crate) const CAPACITY: usize = 4096;

/// Something that happened in the PBX.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub(crate) enum Event {
    /// A call arrived and is being routed.
    CallCreated {
        /// The caller's Call-ID.
        call_id: String,
        /// The caller's number.
        caller: String,
        /// What it dialled.
        dialed: String,
    },
    /// A call was answered.
    CallAnswered {
        /// The caller's Call-ID.
        call_id: String,
        /// The caller's number.
        caller: String,
        /// Who answered (a user, or the number a trunk reached).
        callee: String,
    },
    /// A call ended.
    CallEnded {
        /// The caller's Call-ID.
        call_id: String,
        /// The caller's number.
        caller: String,
        /// Who answered, if anyone.
        callee: Option<String>,
        /// Whether it had been answered.
        answered: bool,
        /// The Q.850 cause it ended with.
        cause: u8,
    },
    /// A user's line registered, refreshed or removed its contacts.
    Registration {
        /// The user.
        user: String,
        /// How many contacts it has now (0: unregistered).
        contacts: usize,
    },
    /// A user's phone status changed (busy-lamp fields, supervision).
    Hint {
        /// The user.
        user: String,
        /// Its status now.
        status: pbxkit::hints::HintStatus,
    },
    /// A user's live services changed (a feature code, the API).
    UserServices {
        /// The user.
        user: String,
        /// The services now.
        services: UserServices,
    },
    /// A call-centre agent's state changed (logged in or out, paused, ringing, on
    /// a call, wrap-up).
    AgentStatus {
        /// The agent's number.
        agent: String,
        /// Its state now.
        state: pbxkit_acd::AgentState,
    },
    /// A queue changed: its live statistics now (waiting callers, agents by
    /// state, the day's counters).
    QueueStatus(pbxkit::engine::QueueStats),
}

/// The bus: cheap to clone, shared by the service loop and every call.
#[derive(Debug, Clone)]
pub(crate) struct Bus {
    sender: broadcast::Sender<Arc<Event>>,
}

impl Default for Bus {
    fn default() -> Self {
        Bus::new()
    }
}

impl Bus {
    pub(crate) fn new() -> Bus {
        Bus {
            sender: broadcast::channel(CAPACITY).0,
        }
    }

    /// Publishes `event` to every subscriber (none: dropped). Never waits.
    pub(crate) fn publish(&self, event: Event) {
        let _ = self.sender.send(Arc::new(event));
    }

    /// A new subscriber, seeing the events published from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.sender.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_subscriber_sees_every_event_in_order() {
        let bus = Bus::new();
        bus.publish(Event::Registration {
            user: "nobody yet".into(),
            contacts: 0,
        });
        let (mut a, mut b) = (bus.subscribe(), bus.subscribe());
        for contacts in 1..=3 {
            bus.publish(Event::Registration {
                user: "1000".into(),
                contacts,
            });
        }
        for rx in [&mut a, &mut b] {
            let seen: Vec<usize> = std::iter::from_fn(|| rx.try_recv().ok())
                .map(|e| match e.as_ref() {
                    Event::Registration { contacts, .. } => *contacts,
                    other => panic!("{other:?}"),
                })
                .collect();
            assert_eq!(seen, [1, 2, 3]);
        }
    }
}
