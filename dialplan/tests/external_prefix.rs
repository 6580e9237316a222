//! The outcall context's external prefix, what users dial for an outside line
//! (`DESIGN.md` §3 "outcall (… strip N digits; prefix; external prefix)"; reference
//! 003 "Appels sortants": "0 pour sortir"; 000 "Incoming caller number display":
//! "If you use a prefix to dial outgoing numbers (like a 0)"), through the public API.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::collections::HashMap;

use pbxkit_dialplan::config::{Config, ConfigError};
use pbxkit_dialplan::decision::{Decision, HangupCause};
use pbxkit_dialplan::outcall::TrunkDial;
use pbxkit_dialplan::{CallAttempt, Caller, Dialplan, OutgoingCall, RouteError};

/// Routes written as the operator numbers go (`0` national, `00` international,
/// `15`…`18`, `112`), reached by dialling `0` first.
const CONFIG: &str = r#"
    [[contexts]]
    name = "default"
    kind = "internal"
    includes = ["to-extern"]
    ranges.users = [{ start = "1000", end = "1999" }]

    [[contexts]]
    name = "to-extern"
    kind = "outcall"
    external_prefix = "0"

    [[users]]
    name = "alice"
    extension = "1000"
    context = "default"
    lines = ["alice"]

    [[trunks]]
    name = "sip"
    [[trunks]]
    name = "backup"

    [[outcalls]]
    name = "national"
    context = "to-extern"
    trunks = ["sip", "backup"]
    patterns = [{ pattern = "_0[1-9]XXXXXXXX", strip = 1, prefix = "+33" }]

    [[outcalls]]
    name = "international"
    context = "to-extern"
    trunks = ["sip"]
    patterns = [{ pattern = "_00X.", strip = 2, prefix = "+" }]
    call_permissions = ["no-international"]

    [[outcalls]]
    name = "emergency"
    context = "to-extern"
    priority = 0
    trunks = ["sip"]
    patterns = [{ pattern = "_1[5-8]" }, { pattern = "112" }]

    [[permissions]]
    name = "no-international"
    authorization = "deny"
    extensions = ["_000X."]
"#;

fn dialplan_from(text: &str) -> Result<Dialplan, ConfigError> {
    let config: Config = toml::from_str(text).unwrap();
    Dialplan::new(config, jiff::tz::db())
}

fn outgoing(number: &str) -> OutgoingCall<'_> {
    OutgoingCall {
        context: "default",
        number,
        user: Some("alice"),
        caller_id: "\"Alice\" <1000>",
        now: "2024-03-26T09:00:00Z".parse().unwrap(),
    }
}

fn numbers(dial: &[TrunkDial<'_>]) -> Vec<(String, String)> {
    dial.iter()
        .map(|d| (d.trunk.to_owned(), d.number.clone()))
        .collect()
}

#[test]
fn the_prefix_is_dialled_first_and_removed_before_strip_and_prefix() {
    // 003 "Appels sortants": strip then prefix, trunks in order; the outside-line 0
    // goes before the route's own strip (1) and prefix (+33).
    let d = dialplan_from(CONFIG).unwrap();
    let decision = d.route_outcall(&outgoing("00612345678")).unwrap();
    assert_eq!(decision.route.name, "national");
    assert_eq!(decision.matched.as_str(), "_00[1-9]XXXXXXXX");
    assert_eq!(
        numbers(&decision.dial),
        [
            ("sip".to_owned(), "+33612345678".to_owned()),
            ("backup".to_owned(), "+33612345678".to_owned())
        ]
    );
    let emergency = d.route_outcall(&outgoing("015")).unwrap();
    assert_eq!(emergency.route.name, "emergency");
    assert_eq!(emergency.dial[0].number, "15");
    let exact = d.route_outcall(&outgoing("0112")).unwrap();
    assert_eq!(exact.matched.as_str(), "0112");
    assert_eq!(exact.dial[0].number, "112");
    let abroad = d.route_outcall(&outgoing("00044123456")).unwrap();
    assert_eq!(abroad.dial[0].number, "+44123456");
}

#[test]
fn without_the_prefix_no_route_matches() {
    let d = dialplan_from(CONFIG).unwrap();
    for number in ["0612345678", "15", "112"] {
        assert!(
            matches!(
                d.route_outcall(&outgoing(number)),
                Err(RouteError::NoMatch { .. })
            ),
            "{number}"
        );
    }
    // Internal extensions are not behind the prefix.
    assert!(matches!(
        d.lookup("default", "1000").unwrap().reached,
        pbxkit_dialplan::Reached::User(_)
    ));
}

#[test]
fn overlap_dialling_waits_after_the_prefix() {
    let d = dialplan_from(CONFIG).unwrap();
    assert!(d.could_match_more("default", "0").unwrap());
    assert!(d.could_match_more("default", "00").unwrap());
    assert!(!d.could_match_more("default", "5").unwrap());
}

#[test]
fn permissions_see_the_number_as_dialled() {
    // 000 "Subroutine": XIVO_DSTNUM is "an outgoing extension including the local
    // prefix"; permissions are written on what users dial.
    let d = dialplan_from(CONFIG).unwrap();
    let state: HashMap<String, u32> = HashMap::new();
    let call = CallAttempt {
        context: "default",
        caller: Caller {
            number: "1000",
            name: "Alice",
            user: Some("alice"),
        },
        dialed: "00044123456",
        at: "2024-03-26T09:00:00Z".parse().unwrap(),
        user_state: &state,
    };
    assert_eq!(
        d.decide(&call).unwrap().decision,
        Decision::Hangup {
            cause: HangupCause::Forbidden
        }
    );
    let national = CallAttempt {
        dialed: "00612345678",
        ..call
    };
    let routed = d.decide(&national).unwrap();
    let Decision::Trunks { dial, .. } = &routed.decision else {
        panic!("{routed}")
    };
    assert_eq!(dial[0].number, "+33612345678");
}

#[test]
fn external_prefix_is_checked() {
    for (from, to) in [
        ("external_prefix = \"0\"", "external_prefix = \"0a\""),
        ("external_prefix = \"0\"", "external_prefix = \"\""),
        (
            "kind = \"internal\"\n",
            "kind = \"internal\"\n    external_prefix = \"9\"\n",
        ),
    ] {
        let text = CONFIG.replace(from, to);
        assert!(
            matches!(
                dialplan_from(&text),
                Err(ConfigError::BadSetting {
                    setting: "external_prefix",
                    ..
                })
            ),
            "{to}"
        );
    }
    // '*' and '#' are literal in patterns, so allowed.
    let text = CONFIG.replace("external_prefix = \"0\"", "external_prefix = \"*0\"");
    let d = dialplan_from(&text).unwrap();
    assert_eq!(
        d.route_outcall(&outgoing("*015")).unwrap().dial[0].number,
        "15"
    );
}
