//! INVITE client transaction (RFC 3261 §17.1.1, Figure 5, with the Accepted state of
//! RFC 6026).

use super::outputs::{Action, Actions};
use super::requests::ack_for_failure;
use super::timer::{Timer, Timers};
use crate::message::Message;
use bytes::Bytes;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Calling,
    Proceeding,
    Completed,
    Accepted,
    Terminated,
}

#[derive(Debug)]
pub(crate) struct ClientInvite {
    state: State,
    invite: Message,
    wire: Bytes,
    ack: Option<Bytes>,
    reliable: bool,
    timers: Timers,
    retransmits: u32,
}

impl ClientInvite {
    pub(crate) fn start(
        invite: Message,
        wire: Bytes,
        reliable: bool,
        timers: Timers,
        now: Instant,
        out: &mut Actions,
    ) -> Self {
        out.push(Action::Send(wire.clone()));
        if !reliable {
            out.push(Action::Arm(Timer::A, now + timers.t1));
        }
        out.push(Action::Arm(Timer::B, now + timers.timeout()));
        ClientInvite {
            state: State::Calling,
            invite,
            wire,
            ack: None,
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
            State::Calling | State::Proceeding if code.is_provisional() => {
                self.state = State::Proceeding;
                out.push(Action::Response(response));
            }
            State::Calling | State::Proceeding if code.is_success() => {
                // The TU acknowledges 2xx itself (end to end); keep passing retransmissions up.
                self.state = State::Accepted;
                out.push(Action::Response(response));
                out.push(Action::Arm(Timer::M, now + self.timers.timeout()));
            }
            State::Calling | State::Proceeding => {
                self.state = State::Completed;
                let ack = ack_for_failure(&self.invite, &response).to_bytes();
                out.push(Action::Send(ack.clone()));
                self.ack = Some(ack);
                out.push(Action::Response(response));
                if self.reliable {
                    self.terminate(out);
                } else {
                    // Timer D: at least 32 s on unreliable transports.
                    let wait = self.timers.timeout().max(Duration::from_secs(32));
                    out.push(Action::Arm(Timer::D, now + wait));
                }
            }
            State::Completed => {
                // A retransmitted final response: acknowledge it again.
                if !code.is_provisional()
                    && let Some(ack) = &self.ack
                {
                    out.push(Action::Send(ack.clone()));
                }
            }
            State::Accepted if code.is_success() => out.push(Action::Response(response)),
            State::Accepted | State::Terminated => {}
        }
    }

    pub(crate) fn on_timer(&mut self, timer: Timer, now: Instant, out: &mut Actions) {
        match (self.state, timer) {
            (State::Calling, Timer::A) => {
                out.push(Action::Send(self.wire.clone()));
                self.retransmits += 1;
                out.push(Action::Arm(
                    Timer::A,
                    now + self.timers.retransmit_interval(self.retransmits, false),
                ));
            }
            (State::Calling, Timer::B) => {
                out.push(Action::Timeout);
                self.terminate(out);
            }
            (State::Completed, Timer::D) | (State::Accepted, Timer::M) => self.terminate(out),
            _ => {}
        }
    }

    fn terminate(&mut self, out: &mut Actions) {
        self.state = State::Terminated;
        out.push(Action::Terminated);
    }
}
