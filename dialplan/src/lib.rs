//! # pbxkit-dialplan
//!
//! Everything that decides where a call goes, as a pure library: Asterisk extension
//! patterns with pbx.c ordering, typed contexts, incoming and outgoing routes, caller-ID
//! rules, call permissions, schedules, forwards and feature codes. Given a call attempt
//! and the configuration it returns a decision and the rule that produced it. No SIP, no I/O.
//!
//! The entry point is [`Dialplan::decide`]: a [`CallAttempt`] in, a [`Routed`] out —
//! the [`Decision`] the PBX executes (ring a plan, forward, voicemail, queue,
//! conference, trunks, a feature, a prompt, hang up) and the trace of the rules
//! evaluated, for logs and `pbxkit dialplan explain`.
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
//! - [`features`]: feature codes (`*8`, `*21<dest>`, `*25`, `*98`, `700`, …) parsed
//!   into [`FeatureAction`]s.
//! - [`filter`]: boss/secretary call filters and their ring plans.
//! - ring groups: the strategies of [`config::RingStrategy`] turned into ring plans
//!   by [`Dialplan::decide`]; the members' order is asked of
//!   [`LiveState::ring_order`], where the PBX plugs in pbxkit-acd's strategies
//!   (app_queue's metrics, as XiVO runs a group as a queue).
//! - [`decision`]: [`Dialplan::decide`], the whole decision for a call, in the
//!   documented order for calls to users (schedule → permissions → call filter →
//!   DND → unconditional forward → busy → ring → no-answer destination).
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
//! A call to a user, decided:
//!
//! ```
//! use std::collections::HashMap;
//! use pbxkit_dialplan::decision::{Decision, Greeting, Rule};
//! use pbxkit_dialplan::{CallAttempt, Caller, Config, Dialplan, ForwardKind};
//!
//! let config: Config = toml::from_str(r#"
//!     [[contexts]]
//!     name = "default"
//!     kind = "internal"
//!     ranges.users = [{ start = "1000", end = "1999" }]
//!
//!     [[users]]
//!     name = "alice"
//!     extension = "1000"
//!     context = "default"
//!     lines = ["alice-desk"]
//!     ring_time = 20
//!     voicemail = "alice"
//!
//!     [[users]]
//!     name = "bob"
//!     extension = "1001"
//!     context = "default"
//!     simultaneous_calls = 1
//!     forwards.busy = { enabled = true, destination = "1000" }
//!
//!     [[voicemails]]
//!     name = "alice"
//!     number = "1000"
//! "#)?;
//! let dialplan = Dialplan::new(config, jiff::tz::db())?;
//!
//! // The PBX tells who is on the phone: bob has one call, his limit.
//! let in_use = HashMap::from([("bob".to_owned(), 1)]);
//! let call = |dialed| CallAttempt {
//!     context: "default",
//!     caller: Caller { number: "1001", name: "Bob", user: Some("bob") },
//!     dialed,
//!     at: "2024-03-26T09:00:00Z".parse().expect("a timestamp"),
//!     user_state: &in_use,
//! };
//!
//! // Bob calls Alice: ring her line for 20 s, then her voicemail.
//! let routed = dialplan.decide(&call("1000"))?;
//! let Decision::Ring(plan) = &routed.decision else { panic!("{routed}") };
//! assert_eq!(plan.steps[0].targets[0].lines, ["alice-desk"]);
//! assert_eq!(plan.steps[0].timeout, Some(std::time::Duration::from_secs(20)));
//! assert!(matches!(
//!     *plan.fallbacks.no_answer,
//!     Decision::Voicemail { greeting: Some(Greeting::Unavailable), .. }
//! ));
//! assert_eq!(routed.trace.last().map(|step| step.rule), Some(Rule::Ring));
//!
//! // Alice calls Bob, who is busy: his busy forward.
//! let routed = dialplan.decide(&CallAttempt { caller: Caller { number: "1000", name: "Alice", user: Some("alice") }, ..call("1001") })?;
//! assert_eq!(routed.decision, Decision::Forward {
//!     destination: "1000".into(),
//!     context: "default",
//!     reason: ForwardKind::Busy,
//! });
//! // `Display` is the explanation, one rule a line.
//! println!("{routed}");
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
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod callerid;
pub mod config;
pub mod context;
pub mod decision;
pub mod features;
pub mod filter;
mod group;
pub mod incall;
pub mod outcall;
pub mod pattern;
pub mod permission;
pub mod schedule;
pub mod table;

pub use config::{Config, ConfigError};
pub use context::{Dialplan, Hit, Reached, RouteError};
pub use decision::{CallAttempt, Caller, Decision, GroupMember, LiveState, Routed, UserServices};
pub use features::{FeatureAction, ForwardKind, ForwardTarget};
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

    /// Inputs longer than this are ignored by [`dialplan_config`].
    const MAX_CONFIG_LEN: usize = 64 * 1024;

    /// The input as a TOML [`Config`](crate::Config) (when it is UTF-8 and parses);
    /// when the dialplan builds (time zones resolved in `jiff::tz::db()`), decides calls from every context (at most 8) to the numbers the
    /// configuration names and the digit runs of the input (at most 32), with and
    /// without busy users, and expands the destinations of ring fallbacks. Never
    /// panics; checks that every decision has a trace.
    pub fn dialplan_config(data: &[u8]) {
        use std::collections::HashMap;

        use crate::decision::{CallAttempt, Caller, Decision};
        use crate::{Config, Dialplan};

        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        if text.len() > MAX_CONFIG_LEN {
            return;
        }
        let Ok(config) = toml::from_str::<Config>(text) else {
            return;
        };
        // The harness (not the library) reads the system time-zone database, once.
        let Ok(dialplan) = Dialplan::new(config, jiff::tz::db()) else {
            return;
        };
        let config = dialplan.config();
        let extensions = config
            .users
            .iter()
            .filter_map(|u| u.extension.clone())
            .chain(config.groups.iter().filter_map(|g| g.extension.clone()))
            .chain(config.queues.iter().filter_map(|q| q.extension.clone()))
            .chain(
                config
                    .incalls
                    .iter()
                    .map(|i| i.did.trim_start_matches('_').to_owned()),
            );
        let runs = text
            .split(|c: char| !(c.is_ascii_digit() || c == '*' || c == '#' || c == '+'))
            .filter(|run| !run.is_empty() && run.len() <= 16)
            .map(str::to_owned);
        let mut numbers: Vec<String> = extensions.chain(runs).take(32).collect();
        numbers.dedup();
        let contexts: Vec<&str> = config
            .contexts
            .iter()
            .map(|c| c.name.as_str())
            .take(8)
            .collect();
        let caller = config.users.first();
        let busy: HashMap<String, u32> = config
            .users
            .iter()
            .map(|u| (u.name.clone(), u.simultaneous_calls))
            .collect();
        let idle: HashMap<String, u32> = HashMap::new();
        let at: jiff::Timestamp = jiff::Timestamp::from_second(1_711_443_600).unwrap_or_default();
        for context in &contexts {
            for number in &numbers {
                for state in [&idle, &busy] {
                    let call = CallAttempt {
                        context,
                        caller: Caller {
                            number: caller
                                .and_then(|u| u.extension.as_deref())
                                .unwrap_or("0612345678"),
                            name: caller.map_or("", |u| u.name.as_str()),
                            user: caller.map(|u| u.name.as_str()),
                        },
                        dialed: number,
                        at,
                        user_state: state,
                    };
                    let Ok(routed) = dialplan.decide(&call) else {
                        continue;
                    };
                    assert!(!routed.trace.is_empty());
                    let _ = routed.to_string();
                    if let Decision::Ring(plan) = &routed.decision {
                        let f = &plan.fallbacks;
                        for next in [&f.no_answer, &f.busy, &f.congestion, &f.failure] {
                            if let Decision::Destination(destination) = next.as_ref() {
                                let _ = dialplan.decide_destination(destination, &call);
                            }
                        }
                    }
                }
            }
        }
    }

    /// A fuzz target: takes arbitrary bytes.
    pub type Target = fn(&[u8]);

    /// Every fuzz target of this crate, by name, for the workspace's seed replay.
    pub const TARGETS: &[(&str, Target)] = &[
        ("dialplan_pattern", dialplan_pattern),
        ("dialplan_config", dialplan_config),
    ];

    #[cfg(test)]
    mod tests {
        use super::*;
        use proptest::prelude::*;

        /// The seed corpus of `dialplan_config`.
        const SEEDS: &[&str] = &[
            include_str!("../../fuzz/corpus/dialplan_config/seed-user-forwards.toml"),
            include_str!("../../fuzz/corpus/dialplan_config/seed-boss-secretary.toml"),
            include_str!("../../fuzz/corpus/dialplan_config/seed-incall-outcall.toml"),
            include_str!("../../fuzz/corpus/dialplan_config/seed-schedule-loop.toml"),
            include_str!("../../fuzz/corpus/dialplan_config/seed-features.toml"),
        ];

        #[test]
        fn config_seeds_build() {
            for seed in SEEDS {
                let config: crate::Config = toml::from_str(seed).expect("seed parses");
                crate::Dialplan::new(config, jiff::tz::db()).expect("seed builds");
                dialplan_config(seed.as_bytes());
            }
        }

        proptest! {
            #[test]
            fn arbitrary_bytes(data in prop::collection::vec(any::<u8>(), 0..200)) {
                dialplan_pattern(&data);
            }

            #[test]
            fn config_like_toml(
                users in prop::collection::vec(("[a-c]{1,2}", "1[0-9]{3}", 0u32..3, any::<bool>()), 0..5),
                numbers in prop::collection::vec("[0-9*]{1,5}", 0..5),
            ) {
                let mut text = String::from("[[contexts]]\nname = \"default\"\nkind = \"internal\"\nranges.users = [{ start = \"1000\", end = \"1999\" }]\n");
                for (name, ext, calls, dnd) in &users {
                    text.push_str(&format!("[[users]]\nname = \"{name}\"\nextension = \"{ext}\"\ncontext = \"default\"\nlines = [\"{name}\"]\nsimultaneous_calls = {calls}\ndnd = {dnd}\n"));
                }
                text.push_str(&format!("# {}\n", numbers.join(" ")));
                dialplan_config(text.as_bytes());
            }

            #[test]
            fn config_seeds_mutated(seed in 0usize..SEEDS.len(), cut in any::<prop::sample::Index>()) {
                let text = SEEDS.get(seed).copied().unwrap_or_default();
                let at = cut.index(text.len() + 1);
                dialplan_config(text.as_bytes().get(..at).unwrap_or_default());
            }

            #[test]
            fn config_arbitrary_bytes(data in prop::collection::vec(any::<u8>(), 0..300)) {
                dialplan_config(&data);
            }

            #[test]
            fn dialplan_like_lines(lines in prop::collection::vec("_?[0-3XNZ\\[\\]*.!-]{0,6}", 0..12)) {
                dialplan_pattern(lines.join("\n").as_bytes());
            }
        }
    }
}

// The README's example is a doctest too: the crate's page on crates.io stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
