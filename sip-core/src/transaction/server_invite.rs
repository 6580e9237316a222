//! INVITE server transaction (RFC 3261 §17.2.1, Figure 7, with the Accepted state of
//! RFC 6026). In Accepted it also retransmits the 2xx until the ACK arrives (the job
//! RFC 3261 §13.3.1.4 gives the UAS core), so that a TU only says "answer".

use super::outputs::{Action, Actions};
use super::timer::{Timer, Timers};
use bytes::Bytes;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Proceeding,
    Completed,
    Accepted,
    Confirmed,
    Terminated,
}

#[derive(Debug)]
pub(crate) struct ServerInvite {
    state: State,
    last_response: Option<Bytes>,
    provisional_sent: bool,
    acked: bool,
    reliable: bool,
    timers: Timers,
    retransmits: u32,
}

/// How long the server waits for the TU before sending 100 Trying itself (§17.2.1).
pub(crate) const TRYING_DELAY: Duration = Duration::from_millis(200);

impl ServerInvite {
    pub(crate) fn new(reliable: bool, timers: Timers, now: Instant, out: &mut Actions) -> Self {
        out.push(Action::Arm(Timer::Trying, now + TRYING_DELAY));
        ServerInvite {
            state: State::Proceeding,
            last_response: None,
            provisional_sent: false,
            acked: false,
            reliable,
            timers,
            retransmits: 0,
        }
    }

    pub(crate) fn state(&self) -> State {
        self.state
    }

    pub(crate) fn has_sent_provisional(&self) -> bool {
        self.provisional_sent
    }

    /// A retransmission of the INVITE.
    pub(crate) fn on_request(&mut self, out: &mut Actions) {
        if let (State::Proceeding | State::Completed, Some(last)) =
            (self.state, &self.last_response)
        {
            out.push(Action::Send(last.clone()));
        }
    }

    /// The TU (or the layer's 100 Trying, or a CANCEL's 487) sends a response.
    pub(crate) fn respond(
        &mut self,
        wire: Bytes,
        code: u16,
        now: Instant,
        out: &mut Actions,
    ) -> bool {
        if self.state != State::Proceeding {
            return false;
        }
        out.push(Action::Send(wire.clone()));
        self.last_response = Some(wire);
        match code {
            100..=199 => self.provisional_sent = true,
            200..=299 => {
                self.state = State::Accepted;
                out.push(Action::Arm(Timer::L, now + self.timers.timeout()));
                if !self.reliable {
                    out.push(Action::Arm(Timer::G, now + self.timers.t1));
                }
            }
            _ => {
                self.state = State::Completed;
                if !self.reliable {
                    out.push(Action::Arm(Timer::G, now + self.timers.t1));
                }
                out.push(Action::Arm(Timer::H, now + self.timers.timeout()));
            }
        }
        true
    }

    /// An ACK: for a non-2xx final (matched by branch) or for a 2xx (matched by dialog).
    pub(crate) fn on_ack(&mut self, now: Instant, out: &mut Actions) {
        match self.state {
            State::Completed => {
                self.state = State::Confirmed;
                if self.reliable {
                    self.terminate(out);
                } else {
                    out.push(Action::Arm(Timer::I, now + self.timers.t4));
                }
            }
            State::Accepted => self.acked = true,
            _ => {}
        }
    }

    pub(crate) fn on_timer(&mut self, timer: Timer, now: Instant, out: &mut Actions) {
        match (self.state, timer) {
            (State::Proceeding, Timer::Trying) => {}
            (State::Completed, Timer::G) | (State::Accepted, Timer::G) if !(self.acked) => {
                if let Some(last) = &self.last_response {
                    out.push(Action::Send(last.clone()));
                }
                self.retransmits += 1;
                out.push(Action::Arm(
                    Timer::G,
                    now + self.timers.retransmit_interval(self.retransmits, true),
                ));
            }
            (State::Completed, Timer::H) => {
                out.push(Action::NoAck);
                self.terminate(out);
            }
            (State::Confirmed, Timer::I) => self.terminate(out),
            (State::Accepted, Timer::L) => {
                if !self.acked {
                    out.push(Action::NoAck);
                }
                self.terminate(out);
            }
            _ => {}
        }
    }

    fn terminate(&mut self, out: &mut Actions) {
        self.state = State::Terminated;
        out.push(Action::Terminated);
    }
}
