//! # pbxkit-dialplan
//!
//! Everything that decides where a call goes, as a pure library: Asterisk extension
//! patterns with pbx.c ordering, typed contexts, incoming and outgoing routes, caller-ID
//! rules, call permissions, schedules, forwards and feature codes. Given a call attempt
//! and the configuration it returns a decision and the rule that produced it. No SIP, no I/O.
//!
//! Status: the crate is being built (see the project issues); this release has no API yet.
#![forbid(unsafe_code)]
