//! # pbxkit-acd
//!
//! The call-centre engine as a sans-IO library: calls and agents come in as events with
//! timestamps, and the engine answers with what to do (ring these members, divert, play
//! the position) and what to log, in the Asterisk `queue_log` format. Strategies,
//! penalties, skills and diversions follow Asterisk app_queue and XiVO.
//!
//! - [`queue_log`]: the `queue_log` line format, typed [`queue_log::Event`]s, a parser
//!   for existing files and the [`queue_log::Sink`] the engine writes to.
//! - [`skills`]: the skill rule language (`french > 50 & (sales | support ! 0) & WT < 60`).
//! - [`queue`]: the engine, [`Acd`]: [`Input`]s and timers in, [`Output`]s out.
//! - [`strategy`]: the eight app_queue strategies and their metrics.
//! - [`member`]: ids, device and agent states, joinempty/leavewhenempty conditions.
//! - [`stats`]: per queue and period statistics (received, answered, service level...)
//!   from a `queue_log` stream.
//! - [`live`]: real-time queue and agent statistics, read from the engine.
//! - [`penalty`]: penalty rules (`queuerules.conf`), widening a caller's penalty range
//!   as it waits.
//!
//! The run loop: feed inputs and timeouts, then drain the outputs.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use pbxkit_acd::queue_log::MemorySink;
//! use pbxkit_acd::{Acd, Input, Output, QueueConfig, SeededRng, Strategy};
//!
//! let start = Instant::now();
//! let mut acd = Acd::new(MemorySink::new(), SeededRng::new(1), start, 1_700_000_000);
//! acd.add_queue(QueueConfig::new("support", Strategy::RrMemory))?;
//! acd.add_line("SIP/alice");
//! acd.handle_input(start, Input::AgentLogin {
//!     agent: "Agent/1001".into(),
//!     channel: "SIP/alice".into(),
//!     queues: vec![("support".into(), 0)],
//! })?;
//! acd.handle_input(start, Input::CallArrived {
//!     call: "1700000000.1".into(),
//!     queue: "support".into(),
//!     caller_id: "0612345678".into(),
//!     priority: 0,
//!     options: Default::default(),
//! })?;
//! let mut ring = None;
//! while let Some(output) = acd.poll_output() {
//!     if let Output::Ring { call, agent } = output {
//!         ring = Some((call, agent));
//!     }
//! }
//! let (call, agent) = ring.expect("the agent rings");
//! // Nobody answers within the member timeout: the engine's timer fires.
//! let deadline = acd.poll_timeout().expect("a ring timeout");
//! assert_eq!(deadline, start + Duration::from_secs(15));
//! acd.handle_timeout(deadline);
//! assert_eq!(acd.poll_output(), Some(Output::StopRinging { call: call.clone(), agent: agent.clone() }));
//! // After `retry` (5 s) the agent rings again, and answers.
//! acd.handle_timeout(deadline + Duration::from_secs(5));
//! assert_eq!(acd.poll_output(), Some(Output::Ring { call: call.clone(), agent: agent.clone() }));
//! let answered = deadline + Duration::from_secs(7);
//! acd.handle_input(answered, Input::MemberAnswered { call: call.clone(), agent, member_uniqueid: "1700000000.2".into() })?;
//! acd.handle_input(answered + Duration::from_secs(60), Input::CallerHungUp { call })?;
//! let log = acd.sink().to_text();
//! assert!(log.contains("|1700000000.1|support|Agent/1001|RINGNOANSWER|15000\n"));
//! assert!(log.contains("|1700000000.1|support|Agent/1001|CONNECT|22|1700000000.2|2\n"));
//! assert!(log.ends_with("|1700000000.1|support|Agent/1001|COMPLETECALLER|22|60|1\n"));
//! # Ok::<(), pbxkit_acd::AcdError>(())
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod live;
pub mod member;
pub mod penalty;
pub mod queue;
pub mod queue_log;
pub mod skills;
pub mod stats;
pub mod strategy;

pub use member::{AgentId, AgentState, CallId, DeviceState, EmptyConditions, QueueId};
pub use queue::{
    Acd, AcdError, Announcements, CallOptions, HoldTimeAnnouncement, Input, Leave, Output,
    QueueConfig, Refusal,
};
pub use strategy::{Rng, SeededRng, Strategy};

/// Entry points for the fuzz targets in `fuzz/fuzz_targets/` and for replaying their
/// seed corpora in tests. Each function takes arbitrary bytes and must never panic
/// except on a broken invariant of this crate.
pub mod fuzzing {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use crate::queue_log::{Line, parse_lines};
    use crate::skills::{Context, Expr, Rule};
    use crate::stats::{Aggregator, StatsConfig};

    /// At most this many lines of one input are used, to keep runs fast.
    const MAX_LINES: usize = 256;

    /// A fuzz target: takes arbitrary bytes.
    pub type Target = fn(&[u8]);

    /// Every fuzz target of this crate, by name, for the workspace's seed replay.
    pub const TARGETS: &[(&str, Target)] = &[
        ("acd_queue_log", acd_queue_log),
        ("acd_skill_rule", acd_skill_rule),
    ];

    /// The input as a `queue_log` file: every line that parses must print to a line
    /// that parses to the same [`Line`], and print identically again. The lines that
    /// parse also feed the [`stats`](crate::stats) aggregator (a small open-call limit),
    /// whose periods must give every counted call exactly one status.
    pub fn acd_queue_log(data: &[u8]) {
        let text = String::from_utf8_lossy(data);
        let mut stats = Aggregator::new(StatsConfig {
            max_open_calls: 8,
            ..StatsConfig::default()
        });
        for result in parse_lines(&text).take(MAX_LINES) {
            let Ok(line) = result else {
                continue;
            };
            stats.push(&line);
            let printed = line.to_string();
            match Line::parse(&printed) {
                Ok(again) => {
                    assert_eq!(again, line, "{printed:?} parses differently");
                    assert_eq!(again.to_string(), printed);
                }
                Err(e) => panic!("printed line {printed:?} does not parse: {e}"),
            }
        }
        assert!(stats.in_progress() <= 8);
        for s in stats.finish() {
            let statuses = [
                s.answered,
                s.abandoned,
                s.timeout,
                s.closed,
                s.full,
                s.joinempty,
                s.leaveempty,
                s.divert_ca_ratio,
                s.divert_waittime,
            ];
            assert_eq!(statuses.iter().sum::<u64>(), s.received, "{s:?}");
            assert!(s.answered_within_sl <= s.answered, "{s:?}");
        }
    }

    /// The input's lines as skill rules (`[dynamic ,] skills`): each that parses is
    /// evaluated against a few agents (skills named by the input, valued 0, 1 and 50) and
    /// waits, and must print to a rule that parses to the same rule.
    pub fn acd_skill_rule(data: &[u8]) {
        let text = String::from_utf8_lossy(data);
        for source in text.lines().take(MAX_LINES) {
            let Ok(rule) = source.parse::<Rule>() else {
                if let Err(e) = source.parse::<Expr>() {
                    assert!(e.column <= source.chars().count() + 1, "{e}");
                }
                continue;
            };
            let printed = rule.to_string();
            match printed.parse::<Rule>() {
                Ok(again) => assert_eq!(again, rule, "{printed:?} parses differently"),
                Err(e) => panic!("printed rule {printed:?} does not parse: {e}"),
            }
            let names: Vec<String> = source
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
                .filter(|w| !w.is_empty())
                .take(8)
                .map(str::to_owned)
                .collect();
            let variables: BTreeMap<String, String> = names
                .iter()
                .zip(names.iter().rev())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            for weight in [0, 1, 50] {
                let skills: BTreeMap<String, i64> =
                    names.iter().map(|n| (n.clone(), weight)).collect();
                for wait in [0, 59, 60, 3600] {
                    let ctx = Context {
                        skills: &skills,
                        variables: &variables,
                        wait: Duration::from_secs(wait),
                        ewt: Duration::from_secs(wait / 2),
                    };
                    let dynamic = rule.dynamic.as_ref().is_none_or(|d| d.eval(&ctx));
                    let _ = dynamic && rule.skills.eval(&ctx);
                }
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use proptest::prelude::*;

        #[test]
        fn seeds_replay_and_parse() {
            let log = include_str!("../../fuzz/corpus/acd_queue_log/seed-agent.txt");
            assert!(parse_lines(log).all(|l| l.is_ok()));
            acd_queue_log(log.as_bytes());
            let rules = include_str!("../../fuzz/corpus/acd_skill_rule/seed-ruleset.txt");
            assert!(rules.lines().all(|r| r.parse::<Rule>().is_ok()));
            acd_skill_rule(rules.as_bytes());
            let errors = include_str!("../../fuzz/corpus/acd_queue_log/seed-errors.txt");
            assert_eq!(parse_lines(errors).filter(|l| l.is_err()).count(), 4);
            acd_queue_log(errors.as_bytes());
        }

        proptest! {
            #[test]
            fn arbitrary_bytes(data in prop::collection::vec(any::<u8>(), 0..200)) {
                acd_queue_log(&data);
                acd_skill_rule(&data);
            }

            #[test]
            fn rule_like_text(text in "[a-zA-Z$ ()&|!=<>0-9,-]{0,60}") {
                acd_skill_rule(text.as_bytes());
            }

            #[test]
            fn log_like_text(text in "[0-9]{1,3}\\|[a-z.]{0,4}\\|q\\|(NONE|A)\\|(ENTERQUEUE|CONNECT|ABANDON|PAUSE|FULL|X)(\\|[0-9a-z]{0,3}){0,5}") {
                acd_queue_log(text.as_bytes());
            }
        }
    }
}

// The README's example is a doctest too: the crate's page on crates.io stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
