//! Ring groups' strategies, ring times and no-answer destinations (reference 003
//! "Groupes": "Stratégie de sonnerie", "Temps de sonnerie", "Délai d'attente pour
//! joindre un utilisateur", "Délai d'attente avant rappel des utilisateurs",
//! "Appeler un membre déjà en communication", the "Non réponse" tab; strategy names
//! from 004 "Queues" / 000 "Queues", a group being an Asterisk queue), through the
//! public API, with the ring order the PBX gives the dialplan (pbxkit-acd's
//! strategies).
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::collections::HashMap;
use std::time::Duration;

use jiff::Timestamp;
use pbxkit_dialplan::config::{Config, ConfigError, Destination, RingStrategy};
use pbxkit_dialplan::decision::{Decision, HangupCause, RingPlan};
use pbxkit_dialplan::{CallAttempt, Caller, Dialplan, GroupMember, LiveState};

const CONFIG: &str = r#"
    [[contexts]]
    name = "default"
    kind = "internal"
    ranges.users = [{ start = "1000", end = "1999" }]
    ranges.groups = [{ start = "3000", end = "3099" }]

    [[users]]
    name = "a"
    extension = "1000"
    context = "default"
    lines = ["a"]
    [[users]]
    name = "b"
    extension = "1001"
    context = "default"
    lines = ["b"]
    [[users]]
    name = "c"
    extension = "1002"
    context = "default"
    lines = ["c"]
    [[users]]
    name = "caller"
    extension = "1009"
    context = "default"
    lines = ["caller"]

    [[voicemails]]
    name = "vm-sales"
    number = "3000"

    [[groups]]
    name = "g"
    extension = "3000"
    context = "default"
    members = ["a", "b", "c"]
    strategy = "STRATEGY"
    member_ring_time = 10
    retry_delay = 5
    no_answer.no_answer = { type = "voicemail", name = "vm-sales" }
    no_answer.busy = { type = "voicemail", name = "vm-sales" }
"#;

/// What the PBX would know: answers, call history, calls in progress, a draw.
#[derive(Debug, Default)]
struct State {
    last_answered: Option<&'static str>,
    last_call: HashMap<&'static str, Timestamp>,
    calls: HashMap<&'static str, u32>,
    in_use: HashMap<&'static str, u32>,
    draw: u64,
}

impl LiveState for State {
    fn in_use(&self, user: &str) -> u32 {
        self.in_use.get(user).copied().unwrap_or(0)
    }
    fn group_last_answered(&self, group: &str) -> Option<&str> {
        assert_eq!(group, "g");
        self.last_answered
    }
    fn member_last_call(&self, group: &str, user: &str) -> Option<Timestamp> {
        assert_eq!(group, "g");
        self.last_call.get(user).copied()
    }
    fn member_calls(&self, group: &str, user: &str) -> u32 {
        assert_eq!(group, "g");
        self.calls.get(user).copied().unwrap_or(0)
    }
    fn random(&self) -> u64 {
        self.draw
    }
    // The strategies as the PBX plugs them in: pbxkit-acd's.
    fn ring_order(
        &self,
        strategy: RingStrategy,
        members: &[GroupMember],
        cursor: usize,
        seed: u64,
    ) -> Vec<usize> {
        pbxkit::engine::group_ring_order(strategy, members, cursor, seed)
    }
}

fn dialplan(strategy: &str, extra: &str) -> Result<Dialplan, ConfigError> {
    let mut text = CONFIG.replace("STRATEGY", strategy);
    text.push_str(extra);
    let config: Config = toml::from_str(&text).unwrap();
    Dialplan::new(config, jiff::tz::db())
}

fn decide<'d>(d: &'d Dialplan, state: &State) -> Decision<'d> {
    let call = CallAttempt {
        context: "default",
        caller: Caller {
            number: "1009",
            name: "Caller",
            user: Some("caller"),
        },
        dialed: "3000",
        at: "2024-03-26T09:00:00Z".parse().unwrap(),
        user_state: state,
    };
    d.decide(&call).unwrap().decision
}

fn plan<'a, 'd>(decision: &'a Decision<'d>) -> &'a RingPlan<'d> {
    match decision {
        Decision::Ring(plan) => plan,
        other => panic!("not a ring plan: {other:?}"),
    }
}

/// Each step as (users, ring seconds, delay seconds).
fn steps<'d>(plan: &RingPlan<'d>) -> Vec<(Vec<&'d str>, Option<u64>, u64)> {
    plan.steps
        .iter()
        .map(|s| {
            (
                s.targets.iter().map(|t| t.user).collect(),
                s.timeout.map(|t| t.as_secs()),
                s.delay.as_secs(),
            )
        })
        .collect()
}

/// The members in the order of a serial plan.
fn order(d: &Dialplan, state: &State) -> Vec<String> {
    let decision = decide(d, state);
    plan(&decision)
        .steps
        .iter()
        .map(|s| {
            assert_eq!(s.targets.len(), 1, "serial: one member a step");
            s.targets[0].user.to_owned()
        })
        .collect()
}

#[test]
fn ringall_rings_every_member_in_one_step() {
    // 003 "Tous"; the group's "Temps de sonnerie" bounds it, unlimited by default.
    let d = dialplan("ringall", "").unwrap();
    let decision = decide(&d, &State::default());
    assert_eq!(steps(plan(&decision)), [(vec!["a", "b", "c"], None, 0)]);
    // The plan names its group, for the PBX's group history.
    assert_eq!(plan(&decision).group, Some("g"));
    let d = dialplan("ringall", "ring_time = 25\n").unwrap();
    let decision = decide(&d, &State::default());
    assert_eq!(steps(plan(&decision)), [(vec!["a", "b", "c"], Some(25), 0)]);
}

#[test]
fn ringall_is_the_default() {
    let text = CONFIG.replace("strategy = \"STRATEGY\"\n", "");
    let config: Config = toml::from_str(&text).unwrap();
    let d = Dialplan::new(config, jiff::tz::db()).unwrap();
    let decision = decide(&d, &State::default());
    assert_eq!(plan(&decision).steps.len(), 1);
}

#[test]
fn linear_rings_members_one_by_one_for_the_member_ring_time() {
    // 003 "Dans l'ordre de leur définition (un à un …)"; "Délai d'attente pour
    // joindre un utilisateur" per member, "Délai d'attente avant rappel" between.
    let d = dialplan("linear", "").unwrap();
    let decision = decide(&d, &State::default());
    assert_eq!(
        steps(plan(&decision)),
        [
            (vec!["a"], Some(10), 0),
            (vec!["b"], Some(10), 5),
            (vec!["c"], Some(10), 5)
        ]
    );
}

#[test]
fn the_group_ring_time_bounds_a_serial_plan() {
    // 003 "Temps de sonnerie : avant bascule en non-réponse": rounds go on until it
    // runs out, the last member cut short; a pause that would use it up ends the plan.
    let d = dialplan("linear", "ring_time = 48\n").unwrap();
    let decision = decide(&d, &State::default());
    assert_eq!(
        steps(plan(&decision)),
        [
            (vec!["a"], Some(10), 0),
            (vec!["b"], Some(10), 5),
            (vec!["c"], Some(10), 5),
            (vec!["a"], Some(3), 5)
        ]
    );
    let total: Duration = plan(&decision)
        .steps
        .iter()
        .map(|s| s.delay + s.timeout.unwrap())
        .sum();
    assert_eq!(total, Duration::from_secs(48));
    let d = dialplan("linear", "ring_time = 45\n").unwrap();
    assert_eq!(plan(&decide(&d, &State::default())).steps.len(), 3);
    let d = dialplan("linear", "ring_time = 4\n").unwrap();
    let decision = decide(&d, &State::default());
    assert_eq!(steps(plan(&decision)), [(vec!["a"], Some(4), 0)]);
    // A long ring time with short member times stays a bounded plan.
    let d = dialplan("linear", "ring_time = 86400\n").unwrap();
    let decision = decide(&d, &State::default());
    assert!(plan(&decision).steps.len() <= 3 + 64);
}

#[test]
fn rrmemory_starts_after_the_last_answerer() {
    // 003 "Répartition cyclique mémorisée (… se souvenant de la dernière personne
    // ayant décroché pour passer à la suivante)"; 004 "rrmemory".
    let d = dialplan("rrmemory", "").unwrap();
    assert_eq!(order(&d, &State::default()), ["a", "b", "c"]);
    let after_b = State {
        last_answered: Some("b"),
        ..State::default()
    };
    assert_eq!(order(&d, &after_b), ["c", "a", "b"]);
    let after_c = State {
        last_answered: Some("c"),
        ..State::default()
    };
    assert_eq!(order(&d, &after_c), ["a", "b", "c"]);
    let gone = State {
        last_answered: Some("zed"),
        ..State::default()
    };
    assert_eq!(order(&d, &gone), ["a", "b", "c"]);
}

#[test]
fn leastrecent_rings_who_hung_up_longest_ago_first() {
    // 003 "Le moins récent"; 004 "leastrecent: call the member who least recently
    // hung up a call". Never called rings first.
    let d = dialplan("leastrecent", "").unwrap();
    let state = State {
        last_call: HashMap::from([
            ("a", "2024-03-26T08:50:00Z".parse().unwrap()),
            ("c", "2024-03-26T08:00:00Z".parse().unwrap()),
        ]),
        ..State::default()
    };
    assert_eq!(order(&d, &state), ["b", "c", "a"]);
}

#[test]
fn fewestcalls_rings_who_took_fewest_calls_first() {
    // 003 "Le moins d'appels"; 004 "fewestcalls: call the member with the fewest
    // completed calls". Ties keep the definition order.
    let d = dialplan("fewestcalls", "").unwrap();
    let state = State {
        calls: HashMap::from([("a", 5), ("b", 2), ("c", 2)]),
        ..State::default()
    };
    assert_eq!(order(&d, &state), ["b", "c", "a"]);
}

#[test]
fn random_orders_are_drawn_from_the_live_state() {
    // 003 "Aléatoire"; 004 "random". The same draw gives the same order; wrandom is
    // random here (group members have no penalty).
    let d = dialplan("random", "").unwrap();
    let w = dialplan("wrandom", "").unwrap();
    let mut seen = std::collections::HashSet::new();
    for draw in 0..40 {
        let state = State {
            draw,
            ..State::default()
        };
        let mut members = order(&d, &state);
        assert_eq!(members, order(&d, &state));
        assert_eq!(members, order(&w, &state));
        seen.insert(members.clone());
        members.sort();
        assert_eq!(members, ["a", "b", "c"]);
    }
    assert!(seen.len() >= 4, "{seen:?}");
}

#[test]
fn members_in_use_are_skipped_unless_ring_in_use() {
    // 003 "Appeler un membre déjà en communication".
    let busy_b = State {
        in_use: HashMap::from([("b", 1)]),
        ..State::default()
    };
    let d = dialplan("linear", "").unwrap();
    assert_eq!(order(&d, &busy_b), ["a", "b", "c"]);
    let d = dialplan("linear", "ring_in_use = false\n").unwrap();
    assert_eq!(order(&d, &busy_b), ["a", "c"]);
    // Everybody on a call: the group's busy destination at once.
    let all = State {
        in_use: HashMap::from([("a", 1), ("b", 1), ("c", 1)]),
        ..State::default()
    };
    let decision = decide(&d, &all);
    assert!(
        matches!(&decision, Decision::Voicemail { mailbox, .. } if mailbox.name == "vm-sales"),
        "{decision:?}"
    );
}

#[test]
fn no_answer_goes_to_the_groups_destination() {
    // 003 "Groupes", "Non réponse" tab: per case; hang up when none is set.
    let d = dialplan("linear", "").unwrap();
    let decision = decide(&d, &State::default());
    let fallbacks = &plan(&decision).fallbacks;
    assert_eq!(
        *fallbacks.no_answer,
        Decision::Destination(&Destination::Voicemail {
            name: "vm-sales".into()
        })
    );
    assert_eq!(
        *fallbacks.failure,
        Decision::Hangup {
            cause: HangupCause::Normal
        }
    );
}

#[test]
fn strategy_names_and_settings_are_checked() {
    let text = CONFIG.replace("STRATEGY", "hunt");
    assert!(toml::from_str::<Config>(&text).is_err());
    let text = CONFIG
        .replace("STRATEGY", "linear")
        .replace("member_ring_time = 10", "member_ring_time = 0");
    let config: Config = toml::from_str(&text).unwrap();
    assert!(matches!(
        Dialplan::new(config, jiff::tz::db()),
        Err(ConfigError::BadSetting {
            setting: "member_ring_time",
            ..
        })
    ));
    let text = "no_answer.congestion = { type = \"queue\", name = \"nowhere\" }\n";
    assert!(matches!(
        dialplan("linear", text),
        Err(ConfigError::Unknown { .. })
    ));
}

/// The member a pbxkit-acd queue of `strategy` rings first for a new caller, its
/// members logged in in the group's order, the engine's draws from `seed`.
fn acd_first(strategy: pbxkit_acd::Strategy, seed: u64) -> String {
    use pbxkit_acd::queue_log::MemorySink;
    use pbxkit_acd::{Acd, Input, Output, QueueConfig, SeededRng};
    let now = std::time::Instant::now();
    let mut acd = Acd::new(MemorySink::new(), SeededRng::new(seed), now, 1_711_443_600);
    acd.add_queue(QueueConfig::new("g", strategy)).unwrap();
    for member in ["a", "b", "c"] {
        acd.add_line(member);
        acd.handle_input(
            now,
            Input::AgentLogin {
                agent: member.into(),
                channel: member.into(),
                queues: vec![("g".into(), 0)],
            },
        )
        .unwrap();
    }
    acd.handle_input(
        now,
        Input::CallArrived {
            call: "1.1".into(),
            queue: "g".into(),
            caller_id: "1009".into(),
            priority: 0,
            options: Default::default(),
        },
    )
    .unwrap();
    std::iter::from_fn(|| acd.poll_output())
        .find_map(|o| match o {
            Output::Ring { agent, .. } => Some(agent.to_string()),
            _ => None,
        })
        .unwrap()
}

#[test]
fn a_group_picks_its_members_as_the_acd_picks_a_queues() {
    // XiVO runs groups as queues: one implementation of the strategies (pbxkit-acd's),
    // so a group and a queue with the same strategy and draws ring the same member.
    for (name, strategy) in [
        ("random", pbxkit_acd::Strategy::Random),
        ("wrandom", pbxkit_acd::Strategy::WRandom),
    ] {
        let d = dialplan(name, "").unwrap();
        let mut firsts = std::collections::HashSet::new();
        for draw in 0..30 {
            let state = State {
                draw,
                ..State::default()
            };
            let first = order(&d, &state).swap_remove(0);
            assert_eq!(first, acd_first(strategy, draw), "{name}, draw {draw}");
            firsts.insert(first);
        }
        assert_eq!(
            firsts.len(),
            3,
            "{name}: every member comes first sometimes"
        );
    }
    for (name, strategy) in [
        ("linear", pbxkit_acd::Strategy::Linear),
        ("rrmemory", pbxkit_acd::Strategy::RrMemory),
        ("leastrecent", pbxkit_acd::Strategy::LeastRecent),
        ("fewestcalls", pbxkit_acd::Strategy::FewestCalls),
    ] {
        let d = dialplan(name, "").unwrap();
        assert_eq!(order(&d, &State::default())[0], acd_first(strategy, 0));
    }
}
