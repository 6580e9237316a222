//! Boss/secretary call filters: calls to a boss ring the boss and/or the secretaries
//! following a strategy, as a ring plan of steps the PBX runs one after the other.
//!
//! Rules (reference 000 "Boss Secretary Filter", 003 "Filtrage Patron-secrétaire",
//! `DESIGN.md` §3 "Dialplan"):
//!
//! - A filter has one boss and one or more secretaries (003: "Un patron est unique et
//!   peut avoir plusieurs secrétaires"); boss and secretaries are in one context.
//! - It applies to calls of a given origin: all, external or internal (003
//!   "Provenance de l'appel : tout, externe ou interne"). Calls from the boss's own
//!   secretaries are never filtered (a secretary must be able to put a call through).
//! - Ring times for the boss and for the secretaries, unlimited when absent (003
//!   "Temps de sonnerie : Illimité", "avant passage en cas de non-réponse"); after the
//!   last step the filter's no-answer destination (003 "Non réponse" tab).
//! - Strategies ([`FilterStrategy`]): the five of 000/003 and "secretaries then boss"
//!   of `DESIGN.md`. In serial strategies each secretary rings alone for the
//!   secretaries' ring time, starting after the one that last answered; with no
//!   history the first called is the *last* in the list (000: "When one of serial
//!   strategies is used, the first secretary called is the last in the list"), then
//!   the list wraps around.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::Destination;

/// The ring strategy of a call filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FilterStrategy {
    /// The boss rings first, then the secretaries one by one (003 "Patron puis
    /// secrétaires en série").
    BossThenSecretariesSerial,
    /// The boss rings first, then all secretaries together (003 "Patron puis
    /// secrétaires en simultanés").
    BossThenSecretariesSimultaneous,
    /// The secretaries ring one by one (003 "Secrétaires en série").
    SecretariesSerial,
    /// The secretaries ring together (003 "Secrétaires en simultanés").
    SecretariesSimultaneous,
    /// Boss and secretaries ring together (003 "Patron et secrétaires en
    /// simultanés").
    BossAndSecretaries,
    /// The secretaries ring together, then the boss (`DESIGN.md`).
    SecretariesThenBoss,
}

/// Which calls a filter applies to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FilterOrigin {
    /// Every call.
    #[default]
    All,
    /// Calls from outside (incoming calls).
    External,
    /// Calls from users of the PBX.
    Internal,
}

fn default_true() -> bool {
    true
}

/// A boss/secretary call filter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallFilterConfig {
    /// The unique name.
    pub name: String,
    /// The boss (a user name).
    pub boss: String,
    /// The secretaries (user names), in list order.
    pub secretaries: Vec<String>,
    /// How they ring.
    pub strategy: FilterStrategy,
    /// Which calls are filtered.
    #[serde(default)]
    pub origin: FilterOrigin,
    /// Seconds the boss rings; unlimited when absent.
    #[serde(default)]
    pub boss_ring_time: Option<u32>,
    /// Seconds each secretary step rings; unlimited when absent.
    #[serde(default)]
    pub secretaries_ring_time: Option<u32>,
    /// Where the call goes when nobody answers; the boss's no-answer handling when
    /// absent.
    #[serde(default)]
    pub no_answer: Option<Destination>,
    /// Whether the filter is active (000: it "can be activated and deactivated by
    /// the boss or the secretary").
    #[serde(default = "default_true")]
    pub enabled: bool,
}

/// One step of a ring plan: these users ring together for `timeout` (forever when
/// `None`), then the next step starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingStep<'a> {
    /// The users to ring, by name.
    pub users: Vec<&'a str>,
    /// How long this step rings.
    pub timeout: Option<Duration>,
}

/// Whether a call of the given origin from `caller` is filtered.
pub fn applies(filter: &CallFilterConfig, external: bool, caller: Option<&str>) -> bool {
    let origin = match filter.origin {
        FilterOrigin::All => true,
        FilterOrigin::External => external,
        FilterOrigin::Internal => !external,
    };
    let from_secretary = caller.is_some_and(|c| filter.secretaries.iter().any(|s| s == c));
    filter.enabled && origin && !from_secretary
}

/// The secretaries in serial order: starting after `last_answered`; without it (or
/// when it is not a secretary of the filter) starting with the last of the list.
pub fn serial_order<'a>(filter: &'a CallFilterConfig, last_answered: Option<&str>) -> Vec<&'a str> {
    let n = filter.secretaries.len();
    let start = last_answered
        .and_then(|last| filter.secretaries.iter().position(|s| s == last))
        .map_or(n.saturating_sub(1), |i| i + 1);
    (0..n)
        .filter_map(|k| filter.secretaries.get((start + k) % n))
        .map(String::as_str)
        .collect()
}

/// The ring plan of a filtered call.
pub fn ring_plan<'a>(
    filter: &'a CallFilterConfig,
    last_answered: Option<&str>,
) -> Vec<RingStep<'a>> {
    let secs = |s: Option<u32>| s.map(|s| Duration::from_secs(u64::from(s)));
    let boss = || RingStep {
        users: vec![filter.boss.as_str()],
        timeout: secs(filter.boss_ring_time),
    };
    let together = || RingStep {
        users: filter.secretaries.iter().map(String::as_str).collect(),
        timeout: secs(filter.secretaries_ring_time),
    };
    let serial = || {
        serial_order(filter, last_answered)
            .into_iter()
            .map(|user| RingStep {
                users: vec![user],
                timeout: secs(filter.secretaries_ring_time),
            })
    };
    match filter.strategy {
        FilterStrategy::BossThenSecretariesSerial => {
            std::iter::once(boss()).chain(serial()).collect()
        }
        FilterStrategy::BossThenSecretariesSimultaneous => vec![boss(), together()],
        FilterStrategy::SecretariesSerial => serial().collect(),
        FilterStrategy::SecretariesSimultaneous => vec![together()],
        FilterStrategy::BossAndSecretaries => {
            let mut users = vec![filter.boss.as_str()];
            users.extend(filter.secretaries.iter().map(String::as_str));
            let timeout = filter
                .boss_ring_time
                .max(filter.secretaries_ring_time)
                .filter(|_| {
                    filter.boss_ring_time.is_some() && filter.secretaries_ring_time.is_some()
                });
            vec![RingStep {
                users,
                timeout: secs(timeout),
            }]
        }
        FilterStrategy::SecretariesThenBoss => vec![together(), boss()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn filter(strategy: FilterStrategy) -> CallFilterConfig {
        CallFilterConfig {
            name: "direction".into(),
            boss: "boss".into(),
            secretaries: vec!["jina".into(), "ptit".into(), "zoe".into()],
            strategy,
            origin: FilterOrigin::All,
            boss_ring_time: Some(10),
            secretaries_ring_time: Some(15),
            no_answer: None,
            enabled: true,
        }
    }

    fn steps(plan: &[RingStep<'_>]) -> Vec<(Vec<String>, Option<u64>)> {
        plan.iter()
            .map(|s| {
                (
                    s.users.iter().map(|u| (*u).to_owned()).collect(),
                    s.timeout.map(|t| t.as_secs()),
                )
            })
            .collect()
    }

    fn v(users: &[&str], t: Option<u64>) -> (Vec<String>, Option<u64>) {
        (users.iter().map(|u| (*u).to_owned()).collect(), t)
    }

    #[test]
    fn strategies_of_the_reference() {
        // 000 "Boss Secretary Filter" / 003 "Filtrage Patron-secrétaire" modes.
        let f = filter(FilterStrategy::BossThenSecretariesSimultaneous);
        let plan = ring_plan(&f, None);
        assert_eq!(
            steps(&plan),
            [
                v(&["boss"], Some(10)),
                v(&["jina", "ptit", "zoe"], Some(15))
            ]
        );
        let f = filter(FilterStrategy::SecretariesSimultaneous);
        let plan = ring_plan(&f, None);
        assert_eq!(steps(&plan), [v(&["jina", "ptit", "zoe"], Some(15))]);
        let f = filter(FilterStrategy::BossAndSecretaries);
        let plan = ring_plan(&f, None);
        assert_eq!(
            steps(&plan),
            [v(&["boss", "jina", "ptit", "zoe"], Some(15))]
        );
        let f = filter(FilterStrategy::SecretariesThenBoss);
        let plan = ring_plan(&f, None);
        assert_eq!(
            steps(&plan),
            [
                v(&["jina", "ptit", "zoe"], Some(15)),
                v(&["boss"], Some(10))
            ]
        );
    }

    #[test]
    fn serial_starts_with_the_last_then_after_the_last_answerer() {
        // 000: "the first secretary called is the last in the list".
        let f = filter(FilterStrategy::SecretariesSerial);
        assert_eq!(
            steps(&ring_plan(&f, None)),
            [
                v(&["zoe"], Some(15)),
                v(&["jina"], Some(15)),
                v(&["ptit"], Some(15))
            ]
        );
        // DESIGN.md: starting after the last one that answered.
        assert_eq!(serial_order(&f, Some("jina")), ["ptit", "zoe", "jina"]);
        assert_eq!(serial_order(&f, Some("zoe")), ["jina", "ptit", "zoe"]);
        assert_eq!(serial_order(&f, Some("stranger")), ["zoe", "jina", "ptit"]);
        let f = filter(FilterStrategy::BossThenSecretariesSerial);
        assert_eq!(
            steps(&ring_plan(&f, Some("ptit"))),
            [
                v(&["boss"], Some(10)),
                v(&["zoe"], Some(15)),
                v(&["jina"], Some(15)),
                v(&["ptit"], Some(15))
            ]
        );
    }

    #[test]
    fn unlimited_ring_times() {
        // 003: "Temps de sonnerie: Illimité".
        let mut f = filter(FilterStrategy::BossAndSecretaries);
        f.boss_ring_time = None;
        assert_eq!(steps(&ring_plan(&f, None))[0].1, None);
        f.secretaries_ring_time = None;
        f.strategy = FilterStrategy::BossThenSecretariesSimultaneous;
        assert_eq!(
            steps(&ring_plan(&f, None)),
            [v(&["boss"], None), v(&["jina", "ptit", "zoe"], None)]
        );
    }

    #[test]
    fn origin_and_secretaries_bypass() {
        // 003 "Provenance de l'appel : tout, externe ou interne".
        let mut f = filter(FilterStrategy::SecretariesSimultaneous);
        assert!(applies(&f, true, None));
        assert!(applies(&f, false, Some("alice")));
        assert!(
            !applies(&f, false, Some("jina")),
            "a secretary reaches the boss"
        );
        f.origin = FilterOrigin::External;
        assert!(!applies(&f, false, Some("alice")));
        assert!(applies(&f, true, None));
        f.origin = FilterOrigin::Internal;
        assert!(!applies(&f, true, None));
        f.origin = FilterOrigin::All;
        f.enabled = false;
        assert!(!applies(&f, true, None));
    }

    proptest! {
        /// Serial orders are rotations of the list: everyone once.
        #[test]
        fn serial_is_a_rotation(n in 1usize..6, last in proptest::option::of(0usize..8)) {
            let mut f = filter(FilterStrategy::SecretariesSerial);
            f.secretaries = (0..n).map(|i| format!("s{i}")).collect();
            let last = last.map(|i| format!("s{i}"));
            let order = serial_order(&f, last.as_deref());
            let mut sorted: Vec<&str> = order.clone();
            sorted.sort_unstable();
            let mut expected: Vec<&str> = f.secretaries.iter().map(String::as_str).collect();
            expected.sort_unstable();
            prop_assert_eq!(sorted, expected);
            if let Some(last) = last.as_deref().filter(|l| f.secretaries.iter().any(|s| s == l)) {
                prop_assert_eq!(order.last().copied(), Some(last));
            }
        }
    }
}
