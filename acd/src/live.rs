//! Real-time statistics, as XiVO-CC's queue and agent counters: gauges read from the
//! engine's current state (waiting calls, longest wait, EWT, logged, available and
//! talking agents) and daily counters (calls received, answered, abandoned...) kept
//! since the last [`Acd::reset_live_stats`](crate::Acd::reset_live_stats).
//!
//! The engine does not know the PBX's time zone, so it does not reset by itself: the
//! PBX calls `reset_live_stats` at its local midnight (XiVO's default) or whenever it
//! wants a new day.
//!
//! The counters are counted from the engine's own `queue_log` events, with the same
//! meaning as the historical [`stats`](crate::stats): once every call has ended, the
//! day's counters equal the sum of that day's [`PeriodStats`](crate::stats::PeriodStats).

use std::time::Duration;

use crate::member::AgentState;
use crate::queue_log::Event;

/// Daily counters of one queue, one per call status (see [`stats`](crate::stats)),
/// counted when the status is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct QueueCounters {
    /// Calls presented to the queue: entered, or turned away (XiVO `received`).
    pub received: u64,
    /// Calls that entered (`ENTERQUEUE`; XiVO-CC `TotalNumberCallsEntered`).
    pub entered: u64,
    /// Calls answered (`CONNECT`).
    pub answered: u64,
    /// Calls answered after waiting at most the queue's service level (bound included).
    pub answered_within_sl: u64,
    /// Callers that hung up or left with a key while waiting.
    pub abandoned: u64,
    /// Abandoned calls that had waited over the service level.
    pub abandoned_after_sl: u64,
    /// Callers taken out by the queue timeout (`EXITWITHTIMEOUT`).
    pub timeout: u64,
    /// Callers taken out by leavewhenempty (`EXITEMPTY`).
    pub leaveempty: u64,
    /// Calls turned away by a closed queue (`CLOSED`).
    pub closed: u64,
    /// Calls turned away by a full queue (`FULL`).
    pub full: u64,
    /// Calls turned away by joinempty (`JOINEMPTY`).
    pub joinempty: u64,
    /// Calls diverted on the caller/agent ratio (`DIVERT_CA_RATIO`).
    pub divert_ca_ratio: u64,
    /// Calls diverted on the expected wait (`DIVERT_HOLDTIME`).
    pub divert_waittime: u64,
}

impl QueueCounters {
    /// Whether [`record`](Self::record) counts this event (the others need no look
    /// at the queue).
    pub(crate) fn counts(event: &Event) -> bool {
        matches!(
            event,
            Event::EnterQueue { .. }
                | Event::Connect { .. }
                | Event::Abandon(_)
                | Event::ExitWithKey { .. }
                | Event::ExitWithTimeout(_)
                | Event::ExitEmpty(_)
                | Event::Closed
                | Event::Full
                | Event::JoinEmpty
                | Event::DivertCaRatio
                | Event::DivertHoldTime
        )
    }

    /// Counts one event of this queue; `service_level` in seconds.
    pub(crate) fn record(&mut self, event: &Event, service_level: u64) {
        let turned_away = |c: &mut u64, received: &mut u64| {
            *c += 1;
            *received += 1;
        };
        match event {
            Event::EnterQueue { .. } => {
                self.entered += 1;
                self.received += 1;
            }
            Event::Connect { hold_time, .. } => {
                self.answered += 1;
                if *hold_time <= service_level {
                    self.answered_within_sl += 1;
                }
            }
            Event::Abandon(exit) | Event::ExitWithKey { exit, .. } => {
                self.abandoned += 1;
                if exit.wait_time > service_level {
                    self.abandoned_after_sl += 1;
                }
            }
            Event::ExitWithTimeout(_) => self.timeout += 1,
            Event::ExitEmpty(_) => self.leaveempty += 1,
            Event::Closed => turned_away(&mut self.closed, &mut self.received),
            Event::Full => turned_away(&mut self.full, &mut self.received),
            Event::JoinEmpty => turned_away(&mut self.joinempty, &mut self.received),
            Event::DivertCaRatio => turned_away(&mut self.divert_ca_ratio, &mut self.received),
            Event::DivertHoldTime => turned_away(&mut self.divert_waittime, &mut self.received),
            _ => {}
        }
    }
}

/// A queue's real-time statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueLive {
    /// Callers in the queue not yet connected (XiVO `WaitingCalls`).
    pub waiting: usize,
    /// The wait of the caller waiting longest (`LongestWaitTime`), zero when none.
    pub longest_wait: Duration,
    /// The expected wait (`EWT`, the smoothed hold time).
    pub expected_wait: Duration,
    /// Members logged in (`LoggedAgents`).
    pub logged: usize,
    /// Members that could be rung now: not paused, not in wrap-up, device free, not
    /// ringing nor talking (`AvailableAgents`).
    pub available: usize,
    /// Members talking to a queue caller (`TalkingAgents`).
    pub talking: usize,
    /// The day's counters.
    pub counters: QueueCounters,
}

/// Time an agent spent in each state since login or the last reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct AgentTimes {
    /// Logged in, free in at least one queue, or ringing (`ReadyTime`).
    pub ready: Duration,
    /// Paused in every queue (`PausedTime`).
    pub paused: Duration,
    /// In wrap-up (`WrapupTime`).
    pub wrap_up: Duration,
    /// Talking to a queue caller.
    pub on_call: Duration,
}

impl AgentTimes {
    pub(crate) fn add(&mut self, state: AgentState, d: Duration) {
        let slot = match state {
            AgentState::Ready | AgentState::Ringing => &mut self.ready,
            AgentState::Paused => &mut self.paused,
            AgentState::WrapUp => &mut self.wrap_up,
            AgentState::OnCall => &mut self.on_call,
            AgentState::LoggedOut => return,
        };
        *slot = slot.saturating_add(d);
    }
}

/// An agent's real-time statistics, kept from login (and across logins) until the
/// next reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct AgentLive {
    /// The current state.
    pub state: AgentState,
    /// Time per state, the current one included up to the time asked.
    pub times: AgentTimes,
    /// Queue calls answered (`CONNECT`).
    pub answered: u64,
    /// Rings that ended without an answer (`RINGNOANSWER`).
    pub unanswered: u64,
}
