//! Non-INVITE server transaction (RFC 3261 §17.2.2, Figure 8).

use super::outputs::{Action, Actions};
use super::timer::{Timer, Timers};
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
pub(crate) struct ServerNonInvite {
    state: State,
    last_response: Option<Bytes>,
    reliable: bool,
    timers: Timers,
}

impl ServerNonInvite {
    pub(crate) fn new(reliable: bool, timers: Timers) -> Self {
        ServerNonInvite {
            state: State::Trying,
            last_response: None,
            reliable,
            timers,
        }
    }

    /// A retransmission of the request.
    pub(crate) fn on_request(&mut self, out: &mut Actions) {
        if let (State::Proceeding | State::Completed, Some(last)) =
            (self.state, &self.last_response)
        {
            out.push(Action::Send(last.clone()));
        }
    }

    /// The TU sends a response; `final_` for 200-699. Returns false when too late.
    pub(crate) fn respond(
        &mut self,
        wire: Bytes,
        final_: bool,
        now: Instant,
        out: &mut Actions,
    ) -> bool {
        if !matches!(self.state, State::Trying | State::Proceeding) {
            return false;
        }
        out.push(Action::Send(wire.clone()));
        self.last_response = Some(wire);
        if final_ {
            self.state = State::Completed;
            if self.reliable {
                self.terminate(out);
            } else {
                out.push(Action::Arm(Timer::J, now + self.timers.timeout()));
            }
        } else {
            self.state = State::Proceeding;
        }
        true
    }

    pub(crate) fn on_timer(&mut self, timer: Timer, out: &mut Actions) {
        if (self.state, timer) == (State::Completed, Timer::J) {
            self.terminate(out);
        }
    }

    fn terminate(&mut self, out: &mut Actions) {
        self.state = State::Terminated;
        out.push(Action::Terminated);
    }
}
