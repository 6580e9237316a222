//! # pbxkit-acd
//!
//! The call-centre engine as a sans-IO library: calls and agents come in as events with
//! timestamps, and the engine answers with what to do (ring these members, divert, play
//! the position) and what to log, in the Asterisk `queue_log` format. Strategies,
//! penalties, skills, diversions and statistics follow Asterisk app_queue and XiVO.
//!
//! Status: the crate is being built (see the project issues); this release has no API yet.
#![forbid(unsafe_code)]
