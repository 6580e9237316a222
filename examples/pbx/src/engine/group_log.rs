//! Ring groups in the `queue_log`: XiVO runs groups as queues, so its reports (and
//! `pbxkit acd stats`) count a group's calls like a queue's. A call ringing a group
//! is an `ENTERQUEUE` under the group's dialplan name (the PBX's: its number); the member who answers is a
//! `CONNECT` (member `SIP/<user>`), and the call's end its `COMPLETECALLER` or
//! `COMPLETEAGENT`; a call that leaves unanswered ends with one `ABANDON` (the
//! caller hung up), `EXITWITHTIMEOUT` (nobody answered in the group's time: its
//! no-answer fallback follows) or `EXITEMPTY` (no member could take it: busy,
//! unreachable, refused). Every `ENTERQUEUE` has exactly one of these.

use super::plan::Ending;
use super::{CallId, Directory, Engine, Event, Outcome, Unanswered};
use crate::hangup::{HangupCause, Party};
use pbxkit_acd::queue_log::{Event as LogEvent, Exit, Line};
use std::time::Instant;

/// A call's passage through a group, while it lasts.
#[derive(Debug, Clone)]
pub(super) struct InGroup {
    group: String,
    /// The call's id in the log.
    id: String,
    entered: Instant,
    /// When a member answered, and who.
    connected: Option<(Instant, String)>,
}

fn seconds(from: Instant, to: Instant) -> u64 {
    to.saturating_duration_since(from).as_secs()
}

fn exit(wait_time: u64) -> Exit {
    Exit {
        position: 1,
        original_position: 1,
        wait_time,
    }
}

impl<D: Directory> Engine<D> {
    fn group_line(&mut self, g: &InGroup, agent: &str, event: LogEvent, now: Instant) {
        self.events.push_back(Event::QueueLog(Line {
            time: self.unix(now),
            call_id: g.id.clone(),
            queue: g.group.clone(),
            agent: agent.to_owned(),
            event,
        }));
    }

    /// `call` starts ringing `group`'s members.
    pub(super) fn group_entered(&mut self, call: CallId, group: &str, now: Instant) {
        // Still in another group (a member's forward to a group): it is left first.
        self.group_left(call, Ending::Failed, now);
        let id = self.log_call_id(now);
        let Some(c) = self.calls.get_mut(call.0) else {
            return;
        };
        let caller_id = c.caller().to_owned();
        let g = InGroup {
            group: group.to_owned(),
            id,
            entered: now,
            connected: None,
        };
        c.in_group = Some(g.clone());
        let event = LogEvent::EnterQueue {
            url: String::new(),
            caller_id,
            position: 1,
            caller_name: None,
        };
        self.group_line(&g, "NONE", event, now);
    }

    /// `member` of the group `call` rings answered it.
    pub(super) fn group_connected(&mut self, call: CallId, member: &str, now: Instant) {
        let Some(g) = self.calls.get_mut(call.0).and_then(|c| c.in_group.as_mut()) else {
            return;
        };
        if g.connected.is_some() {
            return;
        }
        g.connected = Some((now, member.to_owned()));
        let g = g.clone();
        let hold_time = seconds(g.entered, now);
        let event = LogEvent::Connect {
            hold_time,
            member_uniqueid: g.id.clone(),
            ring_time: hold_time,
        };
        self.group_line(&g, &format!("SIP/{member}"), event, now);
    }

    /// The group's members rang in vain (`ending` says how): the call leaves it.
    pub(super) fn group_left(&mut self, call: CallId, ending: Ending, now: Instant) {
        let Some(c) = self.calls.get_mut(call.0) else {
            return;
        };
        if c.in_group.as_ref().is_none_or(|g| g.connected.is_some()) {
            return;
        }
        let Some(g) = c.in_group.take() else {
            return;
        };
        let wait = exit(seconds(g.entered, now));
        let event = match ending {
            Ending::NoAnswer => LogEvent::ExitWithTimeout(wait),
            _ => LogEvent::ExitEmpty(wait),
        };
        self.group_line(&g, "NONE", event, now);
    }

    /// `call` is over (its outcome set): the group it was in learns how.
    pub(super) fn group_call_ended(&mut self, call: CallId, now: Instant) {
        let Some(c) = self.calls.get_mut(call.0) else {
            return;
        };
        let Some(g) = c.in_group.take() else {
            return;
        };
        let outcome = c.outcome();
        let (agent, event) = match &g.connected {
            Some((at, member)) => {
                let (hold_time, call_time) = (seconds(g.entered, *at), seconds(*at, now));
                let by_member = matches!(
                    outcome,
                    Some(Outcome::Answered(HangupCause::HungUp {
                        party: Party::Callee,
                        ..
                    }))
                );
                let event = if by_member {
                    LogEvent::CompleteAgent {
                        hold_time,
                        call_time,
                        original_position: 1,
                    }
                } else {
                    LogEvent::CompleteCaller {
                        hold_time,
                        call_time,
                        original_position: 1,
                    }
                };
                (format!("SIP/{member}"), event)
            }
            None => {
                let wait = exit(seconds(g.entered, now));
                let event = match outcome {
                    Some(Outcome::Unanswered(Unanswered::Cancelled)) => LogEvent::Abandon(wait),
                    _ => LogEvent::ExitEmpty(wait),
                };
                ("NONE".to_owned(), event)
            }
        };
        self.group_line(&g, &agent, event, now);
    }
}
