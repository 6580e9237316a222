//! # pbxkit-dialplan
//!
//! Everything that decides where a call goes, as a pure library: Asterisk extension
//! patterns with pbx.c ordering, typed contexts, incoming and outgoing routes, caller-ID
//! rules, call permissions, schedules, forwards and feature codes. Given a call attempt
//! and the configuration it returns a decision and the rule that produced it. No SIP, no I/O.
//!
//! Status: extensions, configuration, contexts, incoming and outgoing routes, inbound
//! caller-ID rules, call permissions and schedules are here; forwards, feature codes,
//! boss/secretary and the full user-call decision are still to come.
//!
//! - [`pattern`]: [`Pattern`], an exact extension (`1000`) or an Asterisk pattern
//!   (`_NXX-XXXX`, `_0[1-5]X.`, `_*21!`), with matching and Asterisk's `ext_cmp` order.
//! - [`table`]: [`ExtensionTable`], the entries of a context indexed for lookups that
//!   return the entry Asterisk would pick, and the "wait for more digits?" answer for
//!   overlap dialling.
//! - [`config`]: [`Config`], the serde (TOML) configuration, and
//!   [`Config::validate`].
//! - [`context`]: [`Dialplan`], the compiled configuration; lookups through a
//!   context's includes.
//! - [`incall`]: [`Dialplan::route_incall`], DID routes with caller-ID modes.
//! - [`outcall`]: [`Dialplan::route_outcall`], route priority, trunk failover, number
//!   transformation and outgoing caller-ID precedence.
//! - [`callerid`]: inbound caller-ID normalisation and the reverse-lookup flag.
//! - [`permission`]: call permissions, the most precise entry deciding.
//! - [`schedule`]: opening hours in an IANA time zone, evaluated at a given instant.
//!
//! Time is an argument ([`jiff::Timestamp`]); time zones are resolved in a
//! [`jiff::tz::TimeZoneDatabase`] given to [`Dialplan::new`]. The crate does no I/O.
//!
//! ```
//! use pbxkit_dialplan::{ExtensionTable, Pattern};
//!
//! #[derive(Debug, PartialEq)]
//! enum Route {
//!     User(&'static str),
//!     Voicemail,
//!     Trunk,
//! }
//!
//! let mut internal = ExtensionTable::new();
//! internal.insert(Pattern::parse("1000")?, Route::User("alice"))?;
//! internal.insert(Pattern::parse("_1XXX")?, Route::User("any"))?;
//! internal.insert(Pattern::parse("*98")?, Route::Voicemail)?;
//! internal.insert(Pattern::parse("_0NXX-XXX-XXX")?, Route::Trunk)?;
//!
//! // An exact extension wins over every pattern.
//! assert_eq!(internal.lookup("1000").map(|(_, r)| r), Some(&Route::User("alice")));
//! // Otherwise the pattern that sorts first in Asterisk's order.
//! let (pattern, route) = internal.lookup("1042").expect("a user");
//! assert_eq!((pattern.as_str(), route), ("_1XXX", &Route::User("any")));
//! // Dashes in a dialled number are ignored, as in Asterisk.
//! assert_eq!(internal.lookup("0-212-555-123").map(|(_, r)| r), Some(&Route::Trunk));
//! // Overlap dialling: after "*9" or "02", wait; nothing starts with "5".
//! assert!(internal.could_match_more("*9"));
//! assert!(internal.could_match_more("02"));
//! assert!(!internal.could_match_more("5"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A routing decision from a configuration:
//!
//! ```
//! use pbxkit_dialplan::outcall::{CallerIdSource, OutgoingCallerIdDecision, TrunkDial};
//! use pbxkit_dialplan::permission::Verdict;
//! use pbxkit_dialplan::{Config, Dialplan, OutgoingCall};
//!
//! let config: Config = toml::from_str(r#"
//!     [[contexts]]
//!     name = "default"
//!     kind = "internal"
//!     includes = ["to-extern"]
//!     ranges.users = [{ start = "1000", end = "1999" }]
//!
//!     [[contexts]]
//!     name = "to-extern"
//!     kind = "outcall"
//!
//!     [[users]]
//!     name = "alice"
//!     extension = "1000"
//!     context = "default"
//!
//!     [[trunks]]
//!     name = "operator-a"
//!     [[trunks]]
//!     name = "operator-b"
//!
//!     [[outcalls]]
//!     name = "national"
//!     context = "to-extern"
//!     trunks = ["operator-a", "operator-b"]
//!     ## Users dial 0 for an outside line: strip it, send E.164.
//!     patterns = [{ pattern = "_00[1-9]XXXXXXXX", strip = 2, prefix = "+33", caller_id = "<+33320495000>" }]
//! "#)?;
//! let dialplan = Dialplan::new(config, jiff::tz::db())?;
//!
//! let decision = dialplan.route_outcall(&OutgoingCall {
//!     context: "default",
//!     number: "00612345678",
//!     user: Some("alice"),
//!     caller_id: "\"Alice\" <1000>",
//!     now: "2024-03-26T09:00:00Z".parse()?,
//! })?;
//! assert_eq!(decision.route.name, "national");
//! assert_eq!(decision.dial, [
//!     TrunkDial { trunk: "operator-a", number: "+33612345678".into() },
//!     TrunkDial { trunk: "operator-b", number: "+33612345678".into() },
//! ]);
//! assert_eq!(decision.caller_id, OutgoingCallerIdDecision::Present {
//!     caller_id: "<+33320495000>".into(),
//!     source: CallerIdSource::Route,
//! });
//! assert_eq!(decision.permission.verdict, Verdict::Allowed);
//! assert!(decision.schedule.is_open());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

pub mod callerid;
pub mod config;
pub mod context;
pub mod incall;
pub mod outcall;
pub mod pattern;
pub mod permission;
pub mod schedule;
pub mod table;

pub use config::{Config, ConfigError};
pub use context::{Dialplan, Hit, Reached, RouteError};
pub use incall::{IncallDecision, IncallOutcome, IncomingCall};
pub use outcall::{OutcallDecision, OutgoingCall};
pub use pattern::{Match, Pattern, PatternError};
pub use table::{DuplicateEntry, ExtensionTable};

/// Entry points for the fuzz targets in `fuzz/fuzz_targets/` and for replaying their
/// seed corpora in tests. Each function takes arbitrary bytes and must never panic
/// except on a broken invariant of this crate.
pub mod fuzzing {
    use crate::{ExtensionTable, Pattern};

    /// At most this many lines of one input are used, to keep runs fast.
    const MAX_LINES: usize = 64;

    /// The input as text lines: the first is a pattern, every line (the first one
    /// included) is both a number to dial and an entry of a table. Checks that
    /// matching, ordering and the table agree with each other.
    pub fn dialplan_pattern(data: &[u8]) {
        let text = String::from_utf8_lossy(data);
        let lines: Vec<&str> = text.split('\n').take(MAX_LINES).collect();
        let Some(first) = lines.first() else {
            return;
        };
        let parsed: Vec<Pattern> = lines
            .iter()
            .filter_map(|line| Pattern::parse(line).ok())
            .collect();

        if let Ok(pattern) = Pattern::parse(first) {
            assert_eq!(Pattern::parse(pattern.as_str()).ok(), Some(pattern.clone()));
            for number in &lines {
                let m = pattern.matches(number);
                assert_eq!(m.is_match(), pattern.is_match(number));
                assert_eq!(m.could_match_more(), pattern.could_match_more(number));
            }
        } else if let Err(err) = Pattern::parse(first) {
            assert!(err.position() <= first.len());
        }

        for a in &parsed {
            for b in &parsed {
                assert_eq!(a.cmp(b), b.cmp(a).reverse());
                assert_eq!(a == b, a.cmp(b).is_eq());
            }
        }

        let table: ExtensionTable<usize> = parsed.iter().cloned().zip(0..).collect();
        let mut sorted: Vec<&Pattern> = table.iter().map(|(p, _)| p).collect();
        assert!(sorted.is_sorted());
        sorted.dedup();
        assert_eq!(sorted.len(), table.len());
        for number in &lines {
            let expected = sorted.iter().find(|p| p.is_match(number));
            assert_eq!(table.lookup(number).map(|(p, _)| p), expected.copied());
            let first_more = sorted.iter().find(|p| p.could_match_more(number));
            let expected_more =
                first_more.is_some_and(|p| !(p.is_early_match() && p.is_match(number)));
            assert_eq!(table.could_match_more(number), expected_more);
        }
    }

    /// A fuzz target: takes arbitrary bytes.
    pub type Target = fn(&[u8]);

    /// Every fuzz target of this crate, by name, for the workspace's seed replay.
    pub const TARGETS: &[(&str, Target)] = &[("dialplan_pattern", dialplan_pattern)];

    #[cfg(test)]
    mod tests {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn arbitrary_bytes(data in prop::collection::vec(any::<u8>(), 0..200)) {
                dialplan_pattern(&data);
            }

            #[test]
            fn dialplan_like_lines(lines in prop::collection::vec("_?[0-3XNZ\\[\\]*.!-]{0,6}", 0..12)) {
                dialplan_pattern(lines.join("\n").as_bytes());
            }
        }
    }
}
