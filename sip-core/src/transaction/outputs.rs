//! What a transaction state machine asks its layer to do.

use super::timer::Timer;
use crate::message::Message;
use bytes::Bytes;
use std::time::Instant;

/// One action of a transaction.
#[derive(Debug, Clone)]
#[expect(
    clippy::large_enum_variant,
    reason = "responses are passed up once per message; boxing them would cost an allocation each"
)]
pub(crate) enum Action {
    /// Send these bytes to the transaction's peer.
    Send(Bytes),
    /// Arm (or re-arm) a timer.
    Arm(Timer, Instant),
    /// Pass a response up to the transaction user.
    Response(Message),
    /// Tell the transaction user the transaction timed out.
    Timeout,
    /// Tell the transaction user the server gave up waiting for an ACK.
    NoAck,
    /// The transaction is over: remove it.
    Terminated,
}

/// A reusable buffer of actions, so that handling a message allocates nothing per call.
pub(crate) type Actions = Vec<Action>;
