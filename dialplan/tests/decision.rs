//! The user-call decision and the top-level dispatch, with examples from the
//! reference documentation (sections cited per test).

use std::collections::HashMap;
use std::time::Duration;

use pbxkit_dialplan::config::{Config, Destination};
use pbxkit_dialplan::decision::{Decision, Greeting, HangupCause, Outcome, Prompt, RingPlan, Rule};
use pbxkit_dialplan::{
    CallAttempt, Caller, Dialplan, FeatureAction, ForwardKind, ForwardTarget, RouteError, Routed,
};
use proptest::prelude::*;

const CONFIG: &str = r#"
    [[contexts]]
    name = "default"
    kind = "internal"
    includes = ["to-extern"]
    ranges.users = [{ start = "1000", end = "1999" }]
    ranges.groups = [{ start = "3000", end = "3099" }]
    ranges.queues = [{ start = "3200", end = "3299" }]
    ranges.conferences = [{ start = "4000", end = "4099" }]

    [[contexts]]
    name = "to-extern"
    kind = "outcall"

    [[contexts]]
    name = "from-extern"
    kind = "incall"
    ranges.incalls = [{ start = "0320495000", end = "0320495999" }]

    [[users]]
    name = "alice"
    extension = "1000"
    context = "default"
    lines = ["alice-desk", "alice-soft"]
    voicemail = "vm-alice"

    [[users]]
    name = "bob"
    extension = "1001"
    context = "default"
    lines = ["bob"]
    ring_time = 15
    forwards.no_answer = { enabled = true, destination = "1002" }

    [[users]]
    name = "carol"
    extension = "1002"
    context = "default"
    lines = ["carol"]
    dnd = true
    voicemail = "vm-carol"
    forwards.unconditional = { enabled = true, destination = "1000" }

    [[users]]
    name = "dave"
    extension = "1003"
    context = "default"
    lines = ["dave"]
    forwards.unconditional = { enabled = true, destination = "0612345678" }
    forwards.busy = { enabled = true, destination = "1000" }

    [[users]]
    name = "erin"
    extension = "1004"
    context = "default"
    lines = ["erin"]
    simultaneous_calls = 1
    forwards.busy = { enabled = true, destination = "1000" }

    [[users]]
    name = "frank"
    extension = "1005"
    context = "default"
    lines = ["frank"]
    simultaneous_calls = 1
    voicemail = "vm-frank"
    no_answer.busy = { type = "queue", name = "support" }

    [[users]]
    name = "gina"
    extension = "1006"
    context = "default"
    lines = ["gina"]
    schedule = "office"

    [[users]]
    name = "nolines"
    extension = "1007"
    context = "default"

    [[users]]
    name = "mallory"
    extension = "1008"
    context = "default"
    lines = ["mallory"]
    call_permissions = ["no-boss"]

    [[users]]
    name = "boss"
    extension = "1010"
    context = "default"
    lines = ["boss"]

    [[users]]
    name = "jina"
    extension = "1011"
    context = "default"
    lines = ["jina"]

    [[users]]
    name = "ptit"
    extension = "1012"
    context = "default"
    lines = ["ptit"]

    [[groups]]
    name = "sales"
    extension = "3000"
    context = "default"
    members = ["alice", "bob"]
    call_permissions = ["secret"]

    [[queues]]
    name = "support"
    extension = "3200"
    context = "default"

    [[conferences]]
    name = "weekly"
    extension = "4000"
    context = "default"

    [[voicemails]]
    name = "vm-alice"
    number = "1000"
    [[voicemails]]
    name = "vm-carol"
    number = "1002"
    [[voicemails]]
    name = "vm-frank"
    number = "1005"

    [[trunks]]
    name = "sip"

    [[outcalls]]
    name = "national"
    context = "to-extern"
    trunks = ["sip"]
    patterns = [{ pattern = "_0[1-9]XXXXXXXX", strip = 1, prefix = "+33" }]

    [[incalls]]
    did = "0320495000"
    context = "from-extern"
    destination = { type = "user", name = "alice" }

    [[incalls]]
    did = "0320495010"
    context = "from-extern"
    destination = { type = "extension", context = "default", exten = "1010" }

    [[call_filters]]
    name = "direction"
    boss = "boss"
    secretaries = ["jina", "ptit"]
    strategy = "boss_then_secretaries_simultaneous"
    boss_ring_time = 10
    secretaries_ring_time = 15

    [[permissions]]
    name = "no-boss"
    authorization = "deny"
    extensions = ["1010"]

    [[permissions]]
    name = "secret"
    authorization = "deny"
    password = "1234"
    extensions = ["1003"]

    [[schedules]]
    name = "office"
    timezone = "Europe/Paris"
    open = [{ hours = "09:00-18:00", weekdays = "1-5" }]
    closed_destination = { type = "voicemail", name = "vm-alice" }
"#;

const TUESDAY_10H: &str = "2024-03-26T09:00:00Z";
const SUNDAY: &str = "2024-03-24T09:00:00Z";

fn dialplan_from(text: &str) -> Dialplan {
    let config: Config = toml::from_str(text).expect("TOML");
    Dialplan::new(config, jiff::tz::db()).expect("valid")
}

fn dialplan() -> Dialplan {
    dialplan_from(CONFIG)
}

fn attempt<'a>(
    context: &'a str,
    user: Option<&'a str>,
    number: &'a str,
    dialed: &'a str,
    at: &str,
    state: &'a HashMap<String, u32>,
) -> CallAttempt<'a> {
    CallAttempt {
        context,
        caller: Caller {
            number,
            name: user.unwrap_or(""),
            user,
        },
        dialed,
        at: at.parse().expect("timestamp"),
        user_state: state,
    }
}

/// `user` (extension `from`) dials `dialed` on a Tuesday at 10:00 in Paris.
fn internal<'d>(d: &'d Dialplan, user: &str, from: &str, dialed: &str) -> Routed<'d> {
    let state = HashMap::new();
    d.decide(&attempt(
        "default",
        Some(user),
        from,
        dialed,
        TUESDAY_10H,
        &state,
    ))
    .expect("routed")
}

fn rules(routed: &Routed<'_>) -> Vec<(Rule, Outcome)> {
    routed.trace.iter().map(|s| (s.rule, s.outcome)).collect()
}

fn ring<'a, 'd>(decision: &'a Decision<'d>) -> &'a RingPlan<'d> {
    match decision {
        Decision::Ring(plan) => plan,
        other => panic!("not a ring plan: {other:?}"),
    }
}

fn ringing(plan: &RingPlan<'_>) -> Vec<(Vec<String>, Option<u64>)> {
    plan.steps
        .iter()
        .map(|s| {
            (
                s.targets.iter().map(|t| t.user.to_owned()).collect(),
                s.timeout.map(|t| t.as_secs()),
            )
        })
        .collect()
}

fn step(users: &[&str], secs: Option<u64>) -> (Vec<String>, Option<u64>) {
    (users.iter().map(|u| (*u).to_owned()).collect(), secs)
}

fn mailbox_of(decision: &Decision<'_>) -> Option<(String, Option<Greeting>)> {
    match decision {
        Decision::Voicemail { mailbox, greeting } => Some((mailbox.name.clone(), *greeting)),
        _ => None,
    }
}

#[test]
fn a_user_rings_for_its_ring_time_then_voicemail() {
    // DESIGN.md §3 PBX services: 30 s by default, then voicemail if any;
    // 003 "Non-réponse" "Aucun": the user's voicemail.
    let d = dialplan();
    let routed = internal(&d, "bob", "1001", "1000");
    let plan = ring(&routed.decision);
    assert_eq!(ringing(plan), [step(&["alice"], Some(30))]);
    assert_eq!(plan.steps[0].targets[0].lines, ["alice-desk", "alice-soft"]);
    assert_eq!(
        mailbox_of(&plan.fallbacks.no_answer),
        Some(("vm-alice".into(), Some(Greeting::Unavailable)))
    );
    assert_eq!(
        mailbox_of(&plan.fallbacks.busy),
        Some(("vm-alice".into(), Some(Greeting::Busy)))
    );
    assert_eq!(
        rules(&routed),
        [
            (Rule::Lookup, Outcome::Pass),
            (Rule::Permission, Outcome::Pass),
            (Rule::Ring, Outcome::Decided)
        ]
    );
    assert!(routed.to_string().contains("'alice' for 30 s"), "{routed}");
}

#[test]
fn no_answer_forward_overrides_the_destination() {
    // 003 "Renvois d'appels": *22 "surcharge la configuration … « Non-réponse »".
    let d = dialplan();
    let routed = internal(&d, "alice", "1000", "1001");
    let plan = ring(&routed.decision);
    assert_eq!(plan.steps[0].timeout, Some(Duration::from_secs(15)));
    assert_eq!(
        *plan.fallbacks.no_answer,
        Decision::Forward {
            destination: "1002".into(),
            context: "default",
            reason: ForwardKind::NoAnswer
        }
    );
    // No voicemail: the call-back-later prompt (003 "Aucun").
    assert_eq!(
        *plan.fallbacks.failure,
        Decision::Play {
            prompt: Prompt::CallBackLater
        }
    );
}

#[test]
fn dnd_comes_before_the_unconditional_forward() {
    // carol has DND *and* an unconditional forward: DND is evaluated first.
    let d = dialplan();
    let routed = internal(&d, "alice", "1000", "1002");
    assert_eq!(
        mailbox_of(&routed.decision),
        Some(("vm-carol".into(), Some(Greeting::Busy)))
    );
    assert_eq!(routed.trace.last().map(|s| s.rule), Some(Rule::Dnd));
}

#[test]
fn unconditional_forward_before_busy() {
    // 000 "Call Completion": "Unconditional call forwarding towards Charlie".
    let d = dialplan();
    let state = HashMap::from([("dave".to_owned(), 9)]);
    let routed = d
        .decide(&attempt(
            "default",
            Some("alice"),
            "1000",
            "1003",
            TUESDAY_10H,
            &state,
        ))
        .expect("routed");
    let Decision::Password { password, then } = routed.decision else {
        panic!("alice has no right on 1003 without the password")
    };
    assert_eq!(password, "1234", "group 'sales' permission 'secret'");
    assert_eq!(
        *then,
        Decision::Forward {
            destination: "0612345678".into(),
            context: "default",
            reason: ForwardKind::Unconditional
        }
    );
}

#[test]
fn busy_forward_and_busy_destination() {
    // 003 "Non-réponse": "Occupé : Le « Nombre d'appels simultanés » … est atteint".
    let d = dialplan();
    let busy = HashMap::from([("erin".to_owned(), 1), ("frank".to_owned(), 1)]);
    let routed = d
        .decide(&attempt(
            "default",
            Some("bob"),
            "1001",
            "1004",
            TUESDAY_10H,
            &busy,
        ))
        .expect("routed");
    assert_eq!(
        routed.decision,
        Decision::Forward {
            destination: "1000".into(),
            context: "default",
            reason: ForwardKind::Busy
        }
    );
    let routed = d
        .decide(&attempt(
            "default",
            Some("bob"),
            "1001",
            "1005",
            TUESDAY_10H,
            &busy,
        ))
        .expect("routed");
    assert!(
        matches!(routed.decision, Decision::Queue(q) if q.name == "support"),
        "{routed}"
    );
    // Not busy: ringing.
    let idle = HashMap::new();
    let routed = d
        .decide(&attempt(
            "default",
            Some("bob"),
            "1001",
            "1004",
            TUESDAY_10H,
            &idle,
        ))
        .expect("routed");
    assert_eq!(ringing(ring(&routed.decision)), [step(&["erin"], Some(30))]);
}

#[test]
fn schedule_first() {
    // 000 "Schedules": closed → the closed destination.
    let d = dialplan();
    let state = HashMap::new();
    let routed = d
        .decide(&attempt(
            "default",
            Some("bob"),
            "1001",
            "1006",
            SUNDAY,
            &state,
        ))
        .expect("routed");
    assert_eq!(
        mailbox_of(&routed.decision),
        Some(("vm-alice".into(), None))
    );
    assert_eq!(
        rules(&routed)[1],
        (Rule::Schedule, Outcome::Decided),
        "{routed}"
    );
    let routed = internal(&d, "bob", "1001", "1006");
    assert!(matches!(routed.decision, Decision::Ring(_)));
}

#[test]
fn permissions_before_the_filter() {
    // 000 "Call Completion": "Call permission forbidding Alice to call Bob".
    let d = dialplan();
    let routed = internal(&d, "mallory", "1008", "1010");
    assert_eq!(
        routed.decision,
        Decision::Hangup {
            cause: HangupCause::Forbidden
        }
    );
    assert!(!rules(&routed).iter().any(|(r, _)| *r == Rule::CallFilter));
}

#[test]
fn boss_secretary_filter() {
    // 003 "Filtrage Patron-secrétaire": "Patron puis secrétaires en simultanés".
    let d = dialplan();
    let routed = internal(&d, "alice", "1000", "1010");
    assert_eq!(
        ringing(ring(&routed.decision)),
        [step(&["boss"], Some(10)), step(&["jina", "ptit"], Some(15))]
    );
    // A secretary reaches the boss directly.
    let routed = internal(&d, "jina", "1011", "1010");
    assert_eq!(ringing(ring(&routed.decision)), [step(&["boss"], Some(30))]);
    // From outside, through an incall to the extension.
    let state = HashMap::new();
    let routed = d
        .decide(&attempt(
            "from-extern",
            None,
            "0612345678",
            "0320495010",
            TUESDAY_10H,
            &state,
        ))
        .expect("routed");
    assert_eq!(ring(&routed.decision).steps.len(), 2);
}

#[test]
fn a_user_without_lines_fails_at_once() {
    let d = dialplan();
    let routed = internal(&d, "alice", "1000", "1007");
    assert_eq!(
        routed.decision,
        Decision::Play {
            prompt: Prompt::CallBackLater
        }
    );
}

#[test]
fn feature_codes() {
    // 003 "Ne pas déranger : NPD côté XiVO (*25)"; 000 "Function keys": *21 alone.
    let d = dialplan();
    let feature = |user, from, dialed| match internal(&d, user, from, dialed).decision {
        Decision::Feature { action, user } => (action, user.map(str::to_owned)),
        other => panic!("{dialed}: {other:?}"),
    };
    assert_eq!(
        feature("alice", "1000", "*25"),
        (FeatureAction::ToggleDnd, Some("alice".into()))
    );
    assert_eq!(
        feature("dave", "1003", "*21").0,
        FeatureAction::SetForward {
            kind: ForwardKind::Unconditional,
            destination: ForwardTarget::Off
        }
    );
    assert_eq!(
        feature("alice", "1000", "*21").0,
        FeatureAction::SetForward {
            kind: ForwardKind::Unconditional,
            destination: ForwardTarget::Ask
        }
    );
    assert_eq!(
        feature("alice", "1000", "*231001").0,
        FeatureAction::SetForward {
            kind: ForwardKind::Busy,
            destination: ForwardTarget::Number("1001".into())
        }
    );
    assert_eq!(feature("alice", "1000", "700").0, FeatureAction::Park);
    assert_eq!(
        feature("alice", "1000", "*81001").0,
        FeatureAction::DirectedPickup { ext: "1001".into() }
    );
    // Not from an incall context.
    let state = HashMap::new();
    assert!(matches!(
        d.decide(&attempt(
            "from-extern",
            None,
            "0612345678",
            "*25",
            TUESDAY_10H,
            &state
        )),
        Err(RouteError::NoMatch { .. })
    ));
}

#[test]
fn groups_queues_conferences_outcalls() {
    let d = dialplan();
    let routed = internal(&d, "carol", "1002", "3000");
    assert_eq!(
        ringing(ring(&routed.decision)),
        [step(&["alice", "bob"], None)]
    );
    assert!(matches!(
        internal(&d, "carol", "1002", "3200").decision,
        Decision::Queue(_)
    ));
    assert!(matches!(
        internal(&d, "carol", "1002", "4000").decision,
        Decision::Conference(_)
    ));
    // 003 "Appels sortants": strip and prefix.
    let routed = internal(&d, "alice", "1000", "0612345678");
    let Decision::Trunks { route, dial, .. } = &routed.decision else {
        panic!("{routed}")
    };
    assert_eq!(route.name, "national");
    assert_eq!(dial[0].number, "+33612345678");
    assert!(matches!(
        d.decide(&attempt(
            "default",
            Some("alice"),
            "1000",
            "99",
            TUESDAY_10H,
            &HashMap::new()
        )),
        Err(RouteError::NoMatch { .. })
    ));
}

#[test]
fn incalls_reach_users() {
    // 004 "Incall": a leading + is dropped.
    let d = dialplan();
    let state = HashMap::new();
    let routed = d
        .decide(&attempt(
            "from-extern",
            None,
            "0612345678",
            "+0320495000",
            TUESDAY_10H,
            &state,
        ))
        .expect("routed");
    assert_eq!(
        ringing(ring(&routed.decision)),
        [step(&["alice"], Some(30))]
    );
    assert_eq!(
        routed.caller.as_ref().map(|c| c.number.as_str()),
        Some("0612345678")
    );
    assert_eq!(rules(&routed)[0], (Rule::Incall, Outcome::Pass));
}

#[test]
fn fallbacks_expand_on_demand() {
    let d = dialplan();
    let state = HashMap::new();
    let call = attempt("default", Some("bob"), "1001", "1005", TUESDAY_10H, &state);
    let routed = d.decide(&call).expect("routed");
    let Decision::Destination(destination) = *ring(&routed.decision).fallbacks.busy else {
        panic!("{routed}")
    };
    assert_eq!(
        destination,
        &Destination::Queue {
            name: "support".into()
        }
    );
    let next = d.decide_destination(destination, &call).expect("routed");
    assert!(matches!(next.decision, Decision::Queue(_)));
}

#[test]
fn destination_loops_are_errors() {
    let text = CONFIG.replace(
        "closed_destination = { type = \"voicemail\", name = \"vm-alice\" }",
        "closed_destination = { type = \"extension\", context = \"default\", exten = \"1006\" }",
    );
    let d = dialplan_from(&text);
    let state = HashMap::new();
    assert!(matches!(
        d.decide(&attempt(
            "default",
            Some("bob"),
            "1001",
            "1006",
            SUNDAY,
            &state
        )),
        Err(RouteError::TooDeep { .. })
    ));
}

/// `n` users `1000`.. in "default", which includes "to-extern" holding `patterns`.
fn users_and_patterns(n: usize, patterns: &[(String, u32)]) -> String {
    let mut text = String::from(
        r#"
        [[contexts]]
        name = "default"
        kind = "internal"
        includes = ["to-extern"]
        ranges.users = [{ start = "1000", end = "1999" }]
        [[contexts]]
        name = "to-extern"
        kind = "outcall"
        [[trunks]]
        name = "sip"
        "#,
    );
    for i in 0..n {
        text.push_str(&format!(
            "[[users]]\nname = \"u{i}\"\nextension = \"{}\"\ncontext = \"default\"\nlines = [\"l{i}\"]\n",
            1000 + i
        ));
    }
    for (i, (pattern, priority)) in patterns.iter().enumerate() {
        text.push_str(&format!(
            "[[outcalls]]\nname = \"r{i}\"\ncontext = \"to-extern\"\npriority = {priority}\ntrunks = [\"sip\"]\npatterns = [{{ pattern = \"{pattern}\" }}]\n"
        ));
    }
    text
}

proptest! {
    /// A number matched by an exact extension never goes to a pattern, whatever the
    /// patterns of the included routes (DESIGN.md §3: exact extensions before patterns).
    #[test]
    fn exact_extensions_never_go_to_patterns(
        user in 0usize..10,
        patterns in prop::collection::vec(("_1[0-9X]{0,3}[.!]?|_X\\.|_[1N]XXX|100[0-9]", 0u32..3), 0..6),
    ) {
        // Duplicate patterns at one priority are refused: dedup them.
        let mut seen = std::collections::HashSet::new();
        let patterns: Vec<(String, u32)> = patterns
            .into_iter()
            .filter(|(p, prio)| pbxkit_dialplan::Pattern::parse(p).is_ok() && seen.insert((pbxkit_dialplan::Pattern::parse(p).ok(), *prio)))
            .collect();
        let config: Config = toml::from_str(&users_and_patterns(10, &patterns)).expect("TOML");
        let Ok(d) = Dialplan::new(config, jiff::tz::db()) else {
            return Ok(());
        };
        let number = (1000 + user).to_string();
        let state = HashMap::new();
        let routed = d
            .decide(&attempt("default", Some("u0"), "1000", &number, TUESDAY_10H, &state))
            .expect("routed");
        let plan = ring(&routed.decision);
        let expected = format!("u{user}");
        prop_assert_eq!(plan.steps[0].targets[0].user, expected.as_str());
    }

    /// Adding a context nobody includes (with its users and routes) never changes a
    /// decision of the existing contexts.
    #[test]
    fn unrelated_context_changes_no_decision(
        dialed in "(10[0-1][0-9]|0[1-9][0-9]{8}|\\*[0-9]{1,4}|3[02]00|4000|700|\\+?03204950[01]0)",
        extra in prop::collection::vec("1[0-9]{3}", 0..5),
        patterns in prop::collection::vec("_[0-9*][0-9XN]{0,3}\\.?", 0..4),
        busy in 0u32..3,
    ) {
        let before = dialplan();
        let mut text = CONFIG.to_owned();
        text.push_str("[[contexts]]\nname = \"other\"\nkind = \"internal\"\nincludes = [\"other-out\"]\nranges.users = [{ start = \"1000\", end = \"1999\" }]\n");
        text.push_str("[[contexts]]\nname = \"other-out\"\nkind = \"outcall\"\n");
        let mut exts = std::collections::HashSet::new();
        for (i, ext) in extra.iter().enumerate() {
            if exts.insert(ext.clone()) {
                text.push_str(&format!("[[users]]\nname = \"x{i}\"\nextension = \"{ext}\"\ncontext = \"other\"\nlines = [\"x{i}\"]\n"));
            }
        }
        for (i, p) in patterns.iter().enumerate() {
            if pbxkit_dialplan::Pattern::parse(p).is_ok() {
                text.push_str(&format!("[[outcalls]]\nname = \"o{i}\"\ncontext = \"other-out\"\npriority = {i}\ntrunks = [\"sip\"]\npatterns = [{{ pattern = \"{p}\" }}]\n"));
            }
        }
        let after = dialplan_from(&text);
        let state = HashMap::from([("alice".to_owned(), busy), ("erin".to_owned(), busy)]);
        for (context, user) in [("default", Some("bob")), ("from-extern", None)] {
            for at in [TUESDAY_10H, SUNDAY] {
                let call = attempt(context, user, "1001", &dialed, at, &state);
                prop_assert_eq!(before.decide(&call), after.decide(&call));
            }
        }
    }
}

/// Services changed while the PBX runs (feature codes, the API), kept apart from the
/// configuration.
#[derive(Debug, Default)]
struct Live(HashMap<String, pbxkit_dialplan::UserServices>);

impl pbxkit_dialplan::LiveState for Live {
    fn services(&self, user: &str) -> Option<pbxkit_dialplan::UserServices> {
        self.0.get(user).cloned()
    }
}

#[test]
fn live_services_replace_the_configured_ones() {
    use pbxkit_dialplan::config::{Forward, Forwards};
    use pbxkit_dialplan::{LiveState, UserServices};
    let d = dialplan();
    let decide = |live: &Live, dialed: &'static str, from: &'static str| {
        let attempt = CallAttempt {
            context: "default",
            caller: Caller {
                number: from,
                name: "",
                user: Some(if from == "1000" { "alice" } else { "dave" }),
            },
            dialed,
            at: TUESDAY_10H.parse().expect("timestamp"),
            user_state: live as &dyn LiveState,
        };
        d.decide(&attempt).expect("routed").decision.clone()
    };
    let mut live = Live::default();
    // Carol is configured in DND with an unconditional forward; live, she is neither.
    live.0.insert("carol".into(), UserServices::default());
    assert!(matches!(decide(&live, "1002", "1000"), Decision::Ring(_)));
    // Alice turns an unconditional forward on at run time: owned destination.
    live.0.insert(
        "alice".into(),
        UserServices {
            dnd: false,
            forwards: Forwards {
                unconditional: Forward {
                    enabled: true,
                    destination: "1001".into(),
                },
                ..Forwards::default()
            },
        },
    );
    assert_eq!(
        decide(&live, "1000", "1003"),
        Decision::Forward {
            destination: "1001".into(),
            context: "default",
            reason: ForwardKind::Unconditional
        }
    );
    // *21 alone now turns it off (the live forward is on), instead of asking.
    let Decision::Feature { action, .. } = decide(&live, "*21", "1000") else {
        panic!("a feature")
    };
    assert_eq!(
        action,
        FeatureAction::SetForward {
            kind: ForwardKind::Unconditional,
            destination: ForwardTarget::Off
        }
    );
    // Live DND: busy, whatever the forwards say.
    live.0.get_mut("alice").expect("alice").dnd = true;
    assert!(!matches!(
        decide(&live, "1000", "1003"),
        Decision::Forward {
            reason: ForwardKind::Unconditional,
            ..
        }
    ));
    // A live busy forward is the busy fallback of a ring plan.
    live.0.insert(
        "bob".into(),
        UserServices {
            dnd: false,
            forwards: Forwards {
                busy: Forward {
                    enabled: true,
                    destination: "1003".into(),
                },
                ..Forwards::default()
            },
        },
    );
    let decision = decide(&live, "1001", "1000");
    let plan = ring(&decision);
    assert_eq!(
        *plan.fallbacks.busy,
        Decision::Forward {
            destination: "1003".into(),
            context: "default",
            reason: ForwardKind::Busy
        }
    );
    // Bob's configured no-answer forward is gone in his live services.
    assert!(!matches!(
        *plan.fallbacks.no_answer,
        Decision::Forward { .. }
    ));
}
