//! Non-INVITE client transaction (RFC 3261 §17.1.2, Figure 6).

use super::outputs::{Action, Actions};
use super::timer::{Timer, Timers};
use crate::message::Message;
use bytes::Bytes;
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Trying,
    Proceeding,
    Completed,
    Terminated,
}

#[derive(Debug)]
pub(crate) struct ClientNonInvite {
    state: State,
    request: Bytes,
    reliable: bool,
    timers: Timers,
    retransmits: u32,
}

impl ClientNonInvite {
    pub(crate) fn start(
        request: Bytes,
        reliable: bool,
        timers: Timers,
        now: Instant,
        out: &mut Actions,
    ) -> Self {
        out.push(Action::Send(request.clone()));
        if !reliable {
            out.push(Action::Arm(Timer::E, now + timers.t1));
        }
        out.push(Action::Arm(Timer::F, now + timers.timeout()));
        ClientNonInvite {
            state: State::Trying,
            request,
            reliable,
            timers,
            retransmits: 0,
        }
    }

    pub(crate) fn on_response(&mut self, response: Message, now: Instant, out: &mut Actions) {
        let Some(code) = response.status() else {
            return;
        };
        match self.state {
            State::Trying | State::Proceeding if code.is_provisional() => {
                self.state = State::Proceeding;
                out.push(Action::Response(response));
            }
            State::Trying | State::Proceeding => {
                self.state = State::Completed;
                out.push(Action::Response(response));
                if self.reliable {
                    self.terminate(out);
                } else {
                    out.push(Action::Arm(Timer::K, now + self.timers.t4));
                }
            }
            // Retransmitted responses are absorbed.
            State::Completed | State::Terminated => {}
        }
    }

    pub(crate) fn on_timer(&mut self, timer: Timer, now: Instant, out: &mut Actions) {
        match (self.state, timer) {
            (State::Trying | State::Proceeding, Timer::E) => {
                out.push(Action::Send(self.request.clone()));
                self.retransmits += 1;
                // In Proceeding the interval is T2 (§17.1.2.2).
                let next = if self.state == State::Proceeding {
                    self.timers.t2
                } else {
                    self.timers.retransmit_interval(self.retransmits, true)
                };
                out.push(Action::Arm(Timer::E, now + next));
            }
            (State::Trying | State::Proceeding, Timer::F) => {
                out.push(Action::Timeout);
                self.terminate(out);
            }
            (State::Completed, Timer::K) => self.terminate(out),
            _ => {}
        }
    }

    fn terminate(&mut self, out: &mut Actions) {
        self.state = State::Terminated;
        out.push(Action::Terminated);
    }
}
