//! The number of digits received on incall contexts (reference 003 "Les contextes
//! (entrants)": "Nb de chiffres reçus"; the installation wizard's "Nombre de chiffres
//! reçus : 4"), through the public API.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::collections::HashMap;

use pbxkit_dialplan::config::{Config, ConfigError, Destination, NumberRange};
use pbxkit_dialplan::decision::{Decision, Rule};
use pbxkit_dialplan::{CallAttempt, Caller, Dialplan, IncallOutcome, IncomingCall, RouteError};

/// The context keeps 4 digits (the wizard's value); the range of the single number
/// 0359083093 keeps all 10 (the second line of 003's table).
const CONFIG: &str = r#"
    [[contexts]]
    name = "default"
    kind = "internal"
    ranges.users = [{ start = "1000", end = "1999" }]

    [[contexts]]
    name = "from-extern"
    kind = "incall"
    did_length = 4
    ranges.incalls = [
        { start = "0320495000", end = "0320495999" },
        { start = "0359083093", did_length = 10 },
    ]

    [[users]]
    name = "alice"
    extension = "1000"
    context = "default"
    lines = ["alice"]

    [[users]]
    name = "bob"
    extension = "1001"
    context = "default"
    lines = ["bob"]

    [[incalls]]
    did = "5000"
    context = "from-extern"
    destination = { type = "user", name = "alice" }

    [[incalls]]
    did = "_50XX"
    context = "from-extern"
    destination = { type = "user", name = "bob" }

    [[incalls]]
    did = "0359083093"
    context = "from-extern"
    destination = { type = "hangup" }
"#;

fn dialplan_from(text: &str) -> Result<Dialplan, ConfigError> {
    let config: Config = toml::from_str(text).unwrap();
    Dialplan::new(config, jiff::tz::db())
}

fn incoming(did: &str) -> IncomingCall<'_> {
    IncomingCall {
        context: "from-extern",
        did,
        caller_number: "0612345678",
        caller_name: "",
        now: "2024-03-26T09:00:00Z".parse().unwrap(),
    }
}

/// The user an incall outcome sends to.
fn user<'a>(outcome: &IncallOutcome<'a>) -> Option<&'a str> {
    match outcome {
        IncallOutcome::Destination(Destination::User { name }) => Some(name),
        _ => None,
    }
}

#[test]
fn nb_de_chiffres_recus_keeps_the_last_digits_before_matching() {
    // 003 "Les contextes (entrants)": "0123456789 avec 4 chiffres reçus donnera 6789".
    let d = dialplan_from(CONFIG).unwrap();
    for did in ["0320495000", "+0320495000", "5000"] {
        let decision = d.route_incall(&incoming(did)).unwrap();
        assert_eq!(decision.did, "5000", "{did}");
        assert_eq!(decision.matched.as_str(), "5000", "{did}");
        assert_eq!(user(&decision.outcome), Some("alice"), "{did}");
    }
}

#[test]
fn most_specific_did_still_wins_after_the_cut() {
    // DESIGN.md §3 / 004 "Incall": the exact DID before patterns, on the kept digits.
    let d = dialplan_from(CONFIG).unwrap();
    let pattern = d.route_incall(&incoming("0320495012")).unwrap();
    assert_eq!(pattern.did, "5012");
    assert_eq!(pattern.matched.as_str(), "_50XX");
    assert_eq!(user(&pattern.outcome), Some("bob"));
    let exact = d.route_incall(&incoming("0320495000")).unwrap();
    assert_eq!(exact.matched.as_str(), "5000");
}

#[test]
fn a_range_keeps_its_own_number_of_digits() {
    // 003's table: 0359083093 on its own line with its own "Nb de chiffres reçus".
    let d = dialplan_from(CONFIG).unwrap();
    let decision = d.route_incall(&incoming("0359083093")).unwrap();
    assert_eq!(decision.did, "0359083093");
    assert_eq!(decision.matched.as_str(), "0359083093");
    // Outside every range: the context's 4 digits, which no incall has.
    assert!(matches!(
        d.route_incall(&incoming("0140000000")),
        Err(RouteError::NoMatch { number, .. }) if number == "0000"
    ));
}

#[test]
fn decide_routes_the_cut_did_and_traces_it() {
    let d = dialplan_from(CONFIG).unwrap();
    let state: HashMap<String, u32> = HashMap::new();
    let call = CallAttempt {
        context: "from-extern",
        caller: Caller {
            number: "0612345678",
            name: "",
            user: None,
        },
        dialed: "+0320495000",
        at: "2024-03-26T09:00:00Z".parse().unwrap(),
        user_state: &state,
    };
    let routed = d.decide(&call).unwrap();
    let Decision::Ring(plan) = &routed.decision else {
        panic!("{routed}")
    };
    assert_eq!(plan.steps[0].targets[0].user, "alice");
    let incall = routed
        .trace
        .iter()
        .find(|s| s.rule == Rule::Incall)
        .unwrap();
    assert!(incall.detail.contains("as '5000'"), "{routed}");
}

#[test]
fn without_did_length_numbers_match_whole() {
    // The existing behaviour: no setting, no cut (and a short DID is outside the
    // range of full numbers).
    let text = CONFIG.replace("did_length = 4\n", "");
    let err = dialplan_from(&text).unwrap_err();
    assert!(
        matches!(err, ConfigError::OutsideRange { ref extension, .. } if extension == "5000"),
        "{err}"
    );
}

#[test]
fn short_dids_must_be_tails_of_the_ranges() {
    // 003: "Un numéro non-renseigné dans les contextes ne pourra pas être utilisé".
    let text = CONFIG.replace("did = \"5000\"", "did = \"6000\"");
    assert!(matches!(
        dialplan_from(&text),
        Err(ConfigError::OutsideRange { .. })
    ));
}

#[test]
fn did_length_is_checked() {
    // On an internal context.
    let text = CONFIG.replace(
        "kind = \"internal\"\n",
        "kind = \"internal\"\n    did_length = 4\n",
    );
    assert!(matches!(
        dialplan_from(&text),
        Err(ConfigError::BadSetting {
            setting: "did_length",
            ..
        })
    ));
    // Zero.
    let text = CONFIG.replace("did_length = 4\n", "did_length = 0\n");
    assert!(matches!(
        dialplan_from(&text),
        Err(ConfigError::BadSetting {
            setting: "did_length",
            ..
        })
    ));
    // Longer than the range's numbers, or on a user range.
    let text = CONFIG.replace("did_length = 10", "did_length = 11");
    assert!(matches!(
        dialplan_from(&text),
        Err(ConfigError::BadRange { .. })
    ));
    let text = CONFIG.replace(
        "{ start = \"1000\", end = \"1999\" }",
        "{ start = \"1000\", end = \"1999\", did_length = 2 }",
    );
    assert!(matches!(
        dialplan_from(&text),
        Err(ConfigError::BadRange { .. })
    ));
}

#[test]
fn tails_of_a_range_across_heads() {
    let range = NumberRange {
        start: "0320499990".into(),
        end: Some("0320500009".into()),
        did_length: Some(4),
    };
    assert!(range.contains_tail("9995", 4));
    assert!(range.contains_tail("0005", 4));
    assert!(!range.contains_tail("5000", 4));
    assert!(!range.contains_tail("995", 4));
    assert!(!range.contains_tail("99a5", 4));
    // Heads more than one apart: every tail.
    let wide = NumberRange {
        start: "0320000000".into(),
        end: Some("0329999999".into()),
        did_length: None,
    };
    assert!(wide.contains_tail("0000", 4));
    assert!(!wide.contains_tail("00000000000", 11));
}
