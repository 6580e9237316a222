//! The library side of the pbxkit reference PBX: the parts that run without sockets,
//! for the `pbxkit` binary, tests and simulations.
//!
//! - [`auth`]: digest authentication of users' requests, one policy for INVITE and
//!   REGISTER.
//! - [`engine`]: calls as sans-IO state machines over pbxkit-sip's B2BUA legs.
//! - [`hangup`]: why an answered call ended, mapped to the CDR and Q.850 causes.
//! - [`hints`]: each user's phone status (idle, ringing, in use, on hold...) from
//!   the engine's events.
//! - [`history`]: what group ring strategies remember between calls.

pub mod auth;
pub mod engine;
pub mod hangup;
pub mod hints;
pub mod history;
