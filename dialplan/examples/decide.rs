//! A dialplan decision from a TOML file: a small PBX configuration (users, a ring
//! group, an outgoing route with its trunks, an incoming DID with opening hours) is
//! parsed with serde into [`Config`], validated and compiled into a [`Dialplan`], then
//! a few calls are decided. Each decision prints its trace: the rules evaluated, one
//! a line, then `=> ` and what the PBX must do.
//!
//! Run it with `cargo run -p pbxkit-dialplan --example decide`, or give your own
//! configuration: `cargo run -p pbxkit-dialplan --example decide -- my-pbx.toml` (the
//! same calls are then decided and printed, without checking what they give).

use jiff::Timestamp;
use pbxkit_dialplan::{CallAttempt, Caller, Config, Decision, Dialplan};

/// An office: three users, the `sales` group, national calls out through two
/// operators (failover), and the main number routed to the group in office hours.
const CONFIG: &str = r#"
[[contexts]]
name = "default"
kind = "internal"
includes = ["to-extern"]
ranges.users = [{ start = "1000", end = "1999" }]
ranges.groups = [{ start = "3000", end = "3099" }]

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
lines = ["alice-desk", "alice-mobile-app"]
ring_time = 20
voicemail = "vm-alice"

[[users]]
name = "bob"
extension = "1001"
context = "default"
lines = ["bob-desk"]

[[groups]]
name = "sales"
extension = "3000"
context = "default"
members = ["alice", "bob"]
strategy = "linear"
member_ring_time = 10
no_answer.no_answer = { type = "voicemail", name = "vm-sales" }

[[voicemails]]
name = "vm-alice"
number = "1000"

[[voicemails]]
name = "vm-sales"
number = "3000"

[[trunks]]
name = "operator-a"

[[trunks]]
name = "operator-b"

[[outcalls]]
name = "national"
context = "to-extern"
trunks = ["operator-a", "operator-b"]
# Send numbers in E.164, presenting the main number.
patterns = [{ pattern = "_0[1-9]XXXXXXXX", strip = 1, prefix = "+33", caller_id = "<+33320495000>" }]

[[incalls]]
did = "0320495000"
context = "from-extern"
destination = { type = "group", name = "sales" }
schedule = "office"

[[schedules]]
name = "office"
timezone = "Europe/Paris"
open = [{ hours = "09:00-18:00", weekdays = "1-5" }]
closed_destination = { type = "voicemail", name = "vm-sales" }
"#;

/// One call to decide, and what the embedded configuration must make of it.
struct Case {
    what: &'static str,
    context: &'static str,
    caller: Caller<'static>,
    dialed: &'static str,
    /// UTC; the schedule is evaluated in its own time zone (Paris: UTC+1 in
    /// winter, UTC+2 from the last Sunday of March).
    at: &'static str,
    expected: &'static str,
    check: fn(&Decision<'_>) -> bool,
}

const BOB: Caller<'static> = Caller {
    number: "1001",
    name: "Bob",
    user: Some("bob"),
};
const ALICE: Caller<'static> = Caller {
    number: "1000",
    name: "Alice",
    user: Some("alice"),
};
/// Someone outside: no user, a national number as the operator presents it.
const CUSTOMER: Caller<'static> = Caller {
    number: "0612345678",
    name: "",
    user: None,
};

const CASES: &[Case] = &[
    Case {
        what: "Bob calls Alice",
        context: "default",
        caller: BOB,
        dialed: "1000",
        at: "2024-03-26T09:00:00Z",
        expected: "ring alice's two lines for 20 s",
        check: |d| match d {
            Decision::Ring(plan) => match plan.steps.as_slice() {
                [step] => step.targets.iter().map(|t| t.lines.len()).eq([2]),
                _ => false,
            },
            _ => false,
        },
    },
    Case {
        what: "Bob calls the sales group",
        context: "default",
        caller: BOB,
        dialed: "3000",
        at: "2024-03-26T09:00:00Z",
        expected: "ring the group, one member at a time (linear)",
        check: |d| match d {
            Decision::Ring(plan) => plan.group == Some("sales") && plan.steps.len() == 2,
            _ => false,
        },
    },
    Case {
        what: "Alice calls a national number",
        context: "default",
        caller: ALICE,
        dialed: "0612345678",
        at: "2024-03-26T09:00:00Z",
        expected: "dial +33612345678 on operator-a, then operator-b",
        check: |d| match d {
            Decision::Trunks { route, dial, .. } => {
                let trunks: Vec<_> = dial.iter().map(|t| (t.trunk, t.number.as_str())).collect();
                route.name == "national"
                    && trunks
                        == [
                            ("operator-a", "+33612345678"),
                            ("operator-b", "+33612345678"),
                        ]
            }
            _ => false,
        },
    },
    Case {
        what: "A customer calls the main number on Tuesday at 10:00 Paris time",
        context: "from-extern",
        caller: CUSTOMER,
        dialed: "0320495000",
        at: "2024-03-26T09:00:00Z",
        expected: "open: ring the sales group",
        check: |d| match d {
            Decision::Ring(plan) => plan.group == Some("sales"),
            _ => false,
        },
    },
    Case {
        what: "The same customer on Tuesday at 20:00 Paris time",
        context: "from-extern",
        caller: CUSTOMER,
        dialed: "0320495000",
        at: "2024-03-26T19:00:00Z",
        expected: "closed: the sales voicemail",
        check: |d| match d {
            Decision::Voicemail { mailbox, .. } => mailbox.name == "vm-sales",
            _ => false,
        },
    },
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A path on the command line replaces the embedded configuration.
    run(std::env::args().nth(1))
}

fn run(path: Option<String>) -> Result<(), Box<dyn std::error::Error>> {
    let (text, source) = match &path {
        Some(path) => (std::fs::read_to_string(path)?, path.as_str()),
        None => (CONFIG.to_owned(), "the embedded configuration"),
    };
    // Serde catches syntax errors and unknown fields; `validate` the references
    // (unknown users, extensions outside their context's ranges, include cycles...).
    // `Dialplan::new` validates too; doing it first is what a config linter would do.
    let config: Config = toml::from_str(&text).map_err(|e| format!("{source}: {e}"))?;
    config.validate().map_err(|e| format!("{source}: {e}"))?;
    // The library does no I/O: the time-zone database is given (here the system's).
    let dialplan = Dialplan::new(config, jiff::tz::db())?;

    for case in CASES {
        let call = CallAttempt {
            context: case.context,
            caller: case.caller,
            dialed: case.dialed,
            at: case.at.parse::<Timestamp>()?,
            // Nobody is on the phone: no user counts as busy.
            user_state: &(),
        };
        println!(
            "## {} ({} dials {} in '{}' at {})",
            case.what, case.caller.number, case.dialed, case.context, case.at
        );
        match (dialplan.decide(&call), &path) {
            (Ok(routed), None) => {
                println!("{routed}\n");
                assert!(
                    (case.check)(&routed.decision),
                    "expected: {}; got {:?}",
                    case.expected,
                    routed.decision
                );
            }
            (Ok(routed), Some(_)) => println!("{routed}\n"),
            // Another configuration may not route these numbers: say so, go on.
            (Err(e), Some(_)) => println!("=> no decision: {e}\n"),
            (Err(e), None) => return Err(e.into()),
        }
    }
    Ok(())
}

// `cargo test` runs the example too (`test = true` in Cargo.toml): it asserts what
// it shows.
#[test]
fn runs() -> Result<(), Box<dyn std::error::Error>> {
    run(None)
}
