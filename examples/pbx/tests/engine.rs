//! The whole call engine with simulated phones in simulated time, no socket: seeded
//! calls with random answers, busy callees, callers that give up, hangups from
//! either side, holds (re-INVITEs), blind and attended transfers (REFER, with
//! Replaces for attended), over a network that loses, duplicates and reorders
//! datagrams. Invariants: every call ends once with the right parties (or, after a
//! transfer, with its new ones), the call counts always match what live calls
//! hold, every leg and route of the engine is released, no phone keeps a leg, no
//! panic.
//! `cargo test` runs 1,000 calls; the 10,000-call run is ignored by default
//! (`cargo test -p pbxkit --test engine -- --ignored`).
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use bytes::Bytes;
use pbxkit::engine::{
    AgentCommand, Application, CallId, Command, Event, Media, Outcome, QueueSetup, Unanswered,
};
use pbxkit::hangup::HangupCause;
use pbxkit::hints::HintStatus;
use pbxkit_sip::b2bua::{Credentials, OutgoingLegs};
use pbxkit_sip::{HeaderName, Message, Method, StatusCode, Uri};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod sim;
use sim::*;

/// Runs `n` calls between `users` phones and checks every invariant.
fn simulate(seed: u64, n: usize, users: usize, loss: u64, dup: u64) {
    let mut sim = Sim::new(seed, users, loss, dup);
    for p in &mut sim.phones {
        p.population = users as u32;
    }
    let t0 = sim.now;
    let mut rng = Rng(seed | 1);
    // 50 calls a second, between two different users.
    let calls: Vec<(Instant, usize, usize)> = (0..n)
        .map(|i| {
            let from = (rng.next() % users as u64) as usize;
            let to = (from + 1 + (rng.next() % (users as u64 - 1)) as usize) % users;
            (t0 + Duration::from_millis(20 * i as u64), from, to)
        })
        .collect();
    let last = t0 + Duration::from_millis(20 * n as u64);
    // Enough for the longest call (8 s ring + 6 s talk) and every transaction's
    // absorbing timers (64×T1 at T1 = 100 ms) to run out.
    sim.run(calls, last + Duration::from_secs(60));

    let mut created: HashMap<CallId, (String, String)> = HashMap::new();
    let mut ended: HashMap<CallId, usize> = HashMap::new();
    let (mut answered, mut cancelled, mut refused) = (0, 0, 0);
    // Calls whose party changed by a transfer (ids are reused after a call ends:
    // cleared then), and the consultations an attended transfer ended.
    let mut transferred: std::collections::HashSet<CallId> = Default::default();
    let (mut blind_or_attended, mut replaced) = (0, 0);
    for e in &sim.events {
        match e {
            Event::CallTransferred { call, .. } => {
                assert!(created.contains_key(call), "transfer of a call not alive");
                transferred.insert(*call);
                blind_or_attended += 1;
            }
            Event::CallCreated {
                call,
                caller,
                dialed,
                ..
            } => {
                assert!(
                    created
                        .insert(*call, (caller.clone(), dialed.clone()))
                        .is_none(),
                    "call id reused while alive"
                );
            }
            Event::CallEnded {
                call,
                caller,
                dialed,
                callee,
                outcome,
            } => {
                let (c, d) = created.remove(call).expect("ended after created");
                let was_transferred = transferred.remove(call);
                *ended.entry(*call).or_default() += 1;
                match outcome {
                    Outcome::Answered(cause) => {
                        answered += 1;
                        // Nobody forwards here: who answered is who was dialled,
                        // unless a transfer put someone in a party's place.
                        if !was_transferred {
                            assert_eq!((&c, &d), (caller, dialed));
                            assert_eq!(callee.as_deref(), Some(dialed.as_str()));
                        }
                        replaced += usize::from(*cause == HangupCause::Transferred);
                        assert!(
                            matches!(
                                cause,
                                HangupCause::HungUp { .. }
                                    | HangupCause::NoAck
                                    | HangupCause::SessionExpired
                                    | HangupCause::Transferred
                            ),
                            "{cause:?}"
                        );
                    }
                    Outcome::Unanswered(Unanswered::Cancelled) => cancelled += 1,
                    Outcome::Unanswered(Unanswered::Refused(_)) => refused += 1,
                }
            }
            _ => {}
        }
    }
    assert!(created.is_empty(), "{} calls never ended", created.len());
    assert!(ended.values().all(|&n| n == 1));
    // Every call that got through authentication shows up once; with loss some
    // callers give up before the PBX sees their INVITE.
    let total = answered + cancelled + refused;
    assert!(
        total * 10 >= n * 8,
        "only {total} of {n} calls reached the PBX"
    );
    let (asked, accepted) = sim
        .phones
        .iter()
        .fold((0, 0), |(a, b), p| (a + p.holds.0, b + p.holds.1));
    let (blind, attended) = sim
        .phones
        .iter()
        .fold((0, 0), |(a, b), p| (a + p.transfers.0, b + p.transfers.1));
    eprintln!(
        "{n} calls: {answered} answered, {cancelled} cancelled, {refused} refused; \
         {accepted} of {asked} holds relayed and accepted; {blind} blind REFERs sent and \
         {attended} consultations placed, {blind_or_attended} transfers completed, \
         {replaced} consultations replaced"
    );
    assert!(
        blind_or_attended > 0 && replaced > 0,
        "transfers: {blind_or_attended} completed, {replaced} attended"
    );
    // The hints follow every call back to idle; each accepted hold shows.
    let mut hints = pbxkit::hints::Hints::default();
    for p in &sim.phones {
        hints.add_user(&p.user, 100);
        hints.registered(&p.user, 1);
    }
    let mut shown = HashMap::new();
    for e in &sim.events {
        for (user, status) in hints.handle(e) {
            *shown.entry(status).or_insert(0) += 1;
            assert_ne!(user, "", "{e:?}");
        }
    }
    let holds = sim
        .events
        .iter()
        .filter(|e| matches!(e, Event::CallHeld { held: true, .. }))
        .count();
    assert!(
        holds > 0 && holds <= accepted,
        "{holds} holds for {accepted} accepted"
    );
    for status in [
        HintStatus::InUse,
        HintStatus::Ringing,
        HintStatus::OnHold,
        HintStatus::InUseRinging,
    ] {
        assert!(
            shown.get(&status).is_some_and(|n| *n > 0),
            "{status:?} never shown: {shown:?}"
        );
    }
    for p in &sim.phones {
        assert_eq!(hints.status(&p.user), HintStatus::Idle, "{}", p.user);
    }
    // Holds cross the PBX both ways (a hold that meets the other side's BYE or
    // its own offer is refused, as it should be).
    assert!(accepted * 2 > asked, "{accepted} of {asked} holds accepted");
    assert!(
        answered > 0 && cancelled > 0 && refused > 0,
        "{answered} {cancelled} {refused}"
    );
    assert_eq!(sim.engine.calls(), 0);
    assert_eq!(sim.engine.legs(), 0);
    assert!(sim.engine.is_idle(), "routes left behind");
    for p in &sim.phones {
        assert!(p.legs.is_empty(), "{} keeps {} legs", p.user, p.legs.len());
    }
    assert!(sim.phones.iter().map(|p| p.answered).sum::<usize>() > 0);
}

/// Every call that entered a queue or a group left it with exactly one terminal
/// queue_log line.
fn one_terminal_line_each(events: &[Event]) {
    let mut entered: HashMap<String, (usize, usize)> = HashMap::new();
    for e in events {
        if let Event::QueueLog(line) = e {
            let n = entered.entry(line.call_id.clone()).or_default();
            if line.event.name() == "ENTERQUEUE" {
                n.0 += 1;
            } else if line.event.is_terminal() {
                n.1 += 1;
            }
        }
    }
    for (call, (enter, terminal)) in entered {
        if (enter, terminal) == (0, 0) {
            continue; // a member's line (login, pause)
        }
        assert_eq!((enter, terminal), (1, 1), "call {call} in the queue_log");
    }
}

#[test]
fn a_thousand_calls_over_a_perfect_network() {
    simulate(1, 1000, 20, 0, 0);
}

#[test]
fn a_thousand_calls_over_a_lossy_network() {
    simulate(2, 1000, 20, 3, 3);
}

#[test]
#[ignore = "long: 10,000 calls (run with --ignored)"]
fn ten_thousand_calls_over_a_lossy_network() {
    simulate(3, 10_000, 50, 3, 3);
}

#[test]
fn unknown_numbers_get_404_and_wrong_passwords_never_make_a_call() {
    let mut sim = Sim::new(4, 3, 0, 0);
    let now = sim.now;
    sim.phones[0].dial("1999", None, now);
    // A phone whose user has the wrong password: challenged, retried once, refused.
    let uri = Uri::parse(&format!("sip:1002@{PBX}")).unwrap();
    let mut template = Message::request(Method::Invite, uri.clone());
    let h = template.headers_mut();
    h.push(HeaderName::From, format!("<sip:1001@{REALM}>"));
    h.push(HeaderName::To, format!("<sip:1002@{REALM}>"));
    let mut leg = OutgoingLegs::new(sim.phones[1].config.clone(), "wrongpw", template);
    let wrong = Credentials {
        username: "1001".into(),
        password: "not the password".into(),
        realm: Some(REALM.into()),
    };
    leg.add_branch(uri, udp(PBX.parse().unwrap()), Some(wrong), now)
        .unwrap();
    sim.phones[1].add(AnyLeg::Out(Box::new(leg)));
    sim.run(Vec::new(), now + Duration::from_secs(40));
    let ended: Vec<(String, Outcome)> = sim
        .events
        .iter()
        .filter_map(|e| match e {
            Event::CallEnded {
                dialed, outcome, ..
            } => Some((dialed.clone(), *outcome)),
            _ => None,
        })
        .collect();
    assert_eq!(
        ended,
        [(
            "1999".to_owned(),
            Outcome::Unanswered(Unanswered::Refused(StatusCode::NOT_FOUND))
        )]
    );
    assert!(sim.engine.is_idle());
    assert!(sim.phones.iter().all(|p| p.legs.is_empty()));
}

/// A phone's index by extension.
fn at(ext: u32) -> usize {
    (ext - 1000) as usize
}

#[test]
fn forwards_groups_dnd_limits_and_loops_as_the_dialplan_decides() {
    let users = |extra: &str| {
        let mut text = String::from(
            "[[contexts]]\nname = \"default\"\nkind = \"internal\"\n\
             ranges.users = [{ start = \"1000\", end = \"1999\" }]\n\
             ranges.groups = [{ start = \"3000\", end = \"3099\" }]\n",
        );
        for ext in 1000..1012 {
            let more = match ext {
                1001 => {
                    "ring_time = 2\nforwards.no_answer = { enabled = true, destination = \"1002\" }\n"
                }
                1003 => "forwards.busy = { enabled = true, destination = \"1004\" }\n",
                1005 => "dnd = true\n",
                1008 => "simultaneous_calls = 1\nring_time = 3\n",
                1010 => "forwards.unconditional = { enabled = true, destination = \"1011\" }\n",
                1011 => "forwards.unconditional = { enabled = true, destination = \"1010\" }\n",
                _ => "",
            };
            text.push_str(&format!(
                "[[users]]\nname = \"{ext}\"\nextension = \"{ext}\"\ncontext = \"default\"\n\
                 lines = [\"{ext}\"]\n{more}"
            ));
        }
        text.push_str(extra);
        text
    };
    let text = users(
        "[[groups]]\nname = \"sales\"\nextension = \"3000\"\ncontext = \"default\"\n\
         members = [\"1006\", \"1007\"]\nstrategy = \"linear\"\nmember_ring_time = 2\n\
         retry_delay = 1\n",
    );
    let dialplan =
        pbxkit_dialplan::Dialplan::new(toml::from_str(&text).unwrap(), jiff::tz::db()).unwrap();
    let mut sim = Sim::with_dialplan(5, 12, 0, 0, dialplan);
    sim.give_up = 0;
    let answer = Script::Answer(Duration::from_millis(300));
    for (ext, script) in [
        (1001, Script::Ring),
        (1002, answer),
        (1003, Script::Reject(486)),
        (1004, answer),
        (1005, answer),
        (1006, Script::Ring),
        (1007, answer),
        (1008, Script::Ring),
    ] {
        sim.phones[at(ext)].script = Some(script);
    }
    let t0 = sim.now;
    let s = Duration::from_secs;
    let calls = vec![
        (t0, at(1000), at(1001)),
        (t0 + s(10), at(1000), at(1003)),
        (t0 + s(20), at(1000), at(1005)),
        (t0 + s(30), at(1000), at(1008)),
        (t0 + s(30), at(1009), at(1008)),
        (t0 + s(40), at(1000), at(1010)),
    ];
    sim.run(calls, t0 + s(45));
    // The group is dialled by its number, not a phone's.
    sim.phones[at(1000)].dial("3000", None, sim.now);
    let end = sim.now + s(60);
    sim.run(Vec::new(), end);

    let ended: Vec<(String, String, Option<String>, Outcome)> = sim
        .events
        .iter()
        .filter_map(|e| match e {
            Event::CallEnded {
                caller,
                dialed,
                callee,
                outcome,
                ..
            } => Some((caller.clone(), dialed.clone(), callee.clone(), *outcome)),
            _ => None,
        })
        .collect();
    let find = |caller: &str, dialed: &str| {
        ended
            .iter()
            .find(|(c, d, _, _)| c == caller && d == dialed)
            .unwrap_or_else(|| panic!("no call {caller} → {dialed}: {ended:?}"))
            .clone()
    };
    let refused = |status| Outcome::Unanswered(Unanswered::Refused(status));
    // No answer within 2 s: the no-answer forward rings 1002, who answers.
    assert_eq!(find("1000", "1001").2.as_deref(), Some("1002"));
    // Busy: the busy forward.
    assert_eq!(find("1000", "1003").2.as_deref(), Some("1004"));
    // DND: busy for the caller, the phone never rings.
    assert_eq!(find("1000", "1005").3, refused(StatusCode::BUSY_HERE));
    assert!(sim.phones[at(1005)].seen.is_empty());
    // A user limited to one call: of two calls at once, one rings (480 after the
    // ring time), the other is busy at once.
    let mut limited = [find("1000", "1008").3, find("1009", "1008").3];
    limited.sort_by_key(|o| format!("{o:?}"));
    assert_eq!(
        limited,
        [
            refused(StatusCode::TEMPORARILY_UNAVAILABLE),
            refused(StatusCode::BUSY_HERE)
        ]
    );
    assert_eq!(
        sim.phones[at(1008)]
            .seen
            .iter()
            .filter(|m| *m == "INVITE")
            .count(),
        1
    );
    // Two users forwarding to each other: a loop, refused.
    assert_eq!(find("1000", "1010").3, refused(StatusCode::LOOP_DETECTED));
    // The linear group rings 1006 for 2 s, waits 1 s, then 1007, who answers.
    assert_eq!(find("1000", "3000").2.as_deref(), Some("1007"));
    let group_rung: Vec<Vec<String>> = sim
        .events
        .iter()
        .filter_map(|e| match e {
            Event::CallRinging {
                users,
                group: Some(g),
                ..
            } if g == "sales" => Some(users.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        group_rung,
        [["1006"], ["1007"]],
        "each member rung, in order"
    );
    // (1006's CANCEL goes to its INVITE's transaction, not to `seen`; its leg ended.)
    assert_eq!(sim.phones[at(1006)].seen, ["INVITE"]);
    // The group is in the queue_log as XiVO's groups (queues) are: the caller
    // entered, 1007 answered (CONNECT), the call completed.
    let sales: Vec<String> = sim
        .events
        .iter()
        .filter_map(|e| match e {
            Event::QueueLog(l) if l.queue == "sales" => {
                Some(format!("{} {}", l.event.name(), l.agent))
            }
            _ => None,
        })
        .collect();
    assert_eq!(sales.len(), 3, "{sales:?}");
    assert_eq!(
        sales[..2],
        ["ENTERQUEUE NONE", "CONNECT SIP/1007"],
        "{sales:?}"
    );
    assert!(
        sales[2].starts_with("COMPLETE") && sales[2].ends_with("SIP/1007"),
        "{sales:?}"
    );
    one_terminal_line_each(&sim.events);
    assert!(sim.phones.iter().all(|p| p.legs.is_empty()));
    assert!(sim.engine.is_idle(), "the engine keeps state");
    for ext in 1000..1012 {
        assert_eq!(sim.engine.in_use(&ext.to_string()), 0);
    }
}

#[test]
fn hang_up_all_ends_every_call_when_the_pbx_stops() {
    let mut sim = Sim::new(6, 20, 0, 0);
    sim.give_up = 0;
    for p in &mut sim.phones {
        // Every phone answers after 0.3 s and nobody hangs up within the test's time
        // (the talk time is up to 6 s: stop at 1 s, while calls ring or talk).
        p.script = Some(Script::Answer(Duration::from_millis(300)));
    }
    let t0 = sim.now;
    let calls: Vec<(Instant, usize, usize)> = (0..10)
        .map(|i| {
            (
                t0 + Duration::from_millis(60 * i),
                i as usize,
                i as usize + 10,
            )
        })
        .collect();
    sim.run(calls, t0 + Duration::from_millis(600));
    assert!(
        sim.engine.calls() > 0,
        "calls in progress when the PBX stops"
    );
    let now = sim.now;
    sim.engine.hang_up_all(now);
    sim.run(Vec::new(), now + Duration::from_secs(40));
    let ended: Vec<Outcome> = sim
        .events
        .iter()
        .filter_map(|e| match e {
            Event::CallEnded { outcome, .. } => Some(*outcome),
            _ => None,
        })
        .collect();
    assert_eq!(ended.len(), 10);
    // (A call may have ended by itself before the stop, its parties done talking.)
    assert!(
        ended.iter().all(|o| matches!(
            o,
            Outcome::Answered(HangupCause::Pbx | HangupCause::HungUp { .. })
                | Outcome::Unanswered(_)
        )),
        "{ended:?}"
    );
    assert!(
        ended
            .iter()
            .any(|o| matches!(o, Outcome::Answered(HangupCause::Pbx)))
    );
    assert!(sim.engine.is_idle());
    assert!(sim.phones.iter().all(|p| p.legs.is_empty()));
}

#[test]
fn a_contact_that_never_answers_does_not_keep_a_call_up_after_its_end() {
    let mut sim = Sim::new(8, 2, 0, 0);
    sim.give_up = 0;
    // 1001 has a second registration whose phone is gone: its INVITE gets nothing
    // back, and its branch can't be CANCELled before a provisional (RFC 3261 §9.1),
    // so that leg lingers until Timer B.
    sim.engine
        .directory_mut()
        .1
        .insert("1001".into(), "10.0.9.9:5060".parse().unwrap());
    sim.phones[1].script = Some(Script::Answer(Duration::from_millis(200)));
    let t0 = sim.now;
    sim.run(vec![(t0, 0, 1)], t0 + Duration::from_millis(6300));
    // The call ended when its parties hung up, long before the lingering branch's
    // Timer B (64×T1 = 6.4 s here): its counts are back already.
    let ended = sim.events.iter().any(|e| {
        matches!(
            e,
            Event::CallEnded {
                outcome: Outcome::Answered(_),
                ..
            }
        )
    });
    assert!(ended, "{:?}", sim.events);
    assert_eq!(sim.engine.calls(), 0);
    assert_eq!(sim.engine.in_use("1000") + sim.engine.in_use("1001"), 0);
    let end = sim.now + Duration::from_secs(60);
    sim.run(Vec::new(), end);
    assert!(sim.engine.is_idle());
}

#[test]
fn applications_and_feature_codes_are_answered_by_the_pbx() {
    let ran = AppMedia::default();
    let log = ran.0.clone();
    let mut sim = Sim::with_media(9, 4, 0, 0, dialplan(4), ran);
    sim.give_up = 0;
    let t0 = sim.now;
    let s = Duration::from_secs;
    // The echo test: answered by the PBX's media at once; the caller hangs up.
    sim.phones[0].dial("9000", None, t0);
    // Two feature codes: *25 (DND) is acted on, *20 is never answered.
    sim.phones[1].dial("*25", None, t0);
    sim.phones[2].dial("*20", None, t0);
    sim.run(Vec::new(), t0 + s(1));
    let features: Vec<(CallId, String, pbxkit_dialplan::FeatureAction)> = sim
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Feature { call, user, action } => Some((*call, user.clone(), action.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(features.len(), 2, "{:?}", sim.events);
    let dnd = features.iter().find(|f| f.1 == "1001").unwrap();
    assert_eq!(dnd.2, pbxkit_dialplan::FeatureAction::ToggleDnd);
    // The PBX saved the change: the caller hears the confirmation, then the PBX
    // hangs up when it is over.
    let now = sim.now;
    sim.engine.command(
        dnd.0,
        Command::Run(Application::Playback { file: None }),
        now,
    );
    sim.run(Vec::new(), now + s(1));
    assert_eq!(sim.phones[1].answered, 1, "the caller got the confirmation");
    let now = sim.now;
    sim.engine.command(dnd.0, Command::HangUp, now);
    // A code the PBX does not take is refused the way it says.
    sim.phones[3].dial("*26", None, now);
    sim.run(Vec::new(), now + s(1));
    let record = sim
        .events
        .iter()
        .find_map(|e| match e {
            Event::Feature { call, action, .. }
                if *action == pbxkit_dialplan::FeatureAction::ToggleRecording =>
            {
                Some(*call)
            }
            _ => None,
        })
        .unwrap();
    let now = sim.now;
    sim.engine
        .command(record, Command::Reject(StatusCode::NOT_IMPLEMENTED), now);
    sim.run(Vec::new(), now + s(20));

    let ended: Vec<(String, String, Option<String>, Outcome)> = sim
        .events
        .iter()
        .filter_map(|e| match e {
            Event::CallEnded {
                caller,
                dialed,
                callee,
                outcome,
                ..
            } => Some((caller.clone(), dialed.clone(), callee.clone(), *outcome)),
            _ => None,
        })
        .collect();
    let find = |dialed: &str| {
        ended
            .iter()
            .find(|(_, d, _, _)| d == dialed)
            .unwrap_or_else(|| panic!("no call to {dialed}: {ended:?}"))
            .clone()
    };
    let echo = find("9000");
    assert_eq!(echo.2.as_deref(), Some("9000"));
    assert!(
        matches!(echo.3, Outcome::Answered(HangupCause::HungUp { .. })),
        "{echo:?}"
    );
    assert_eq!(find("*25").3, Outcome::Answered(HangupCause::Pbx));
    let refused = |status| Outcome::Unanswered(Unanswered::Refused(status));
    assert_eq!(find("*20").3, refused(StatusCode::SERVER_INTERNAL_ERROR));
    assert_eq!(find("*26").3, refused(StatusCode::NOT_IMPLEMENTED));
    let log = log.lock().unwrap().clone();
    assert_eq!(
        log.iter().filter(|l| l.ends_with("Echo")).count(),
        1,
        "{log:?}"
    );
    assert_eq!(
        log.iter().filter(|l| l.contains("Playback")).count(),
        1,
        "{log:?}"
    );
    assert!(sim.engine.is_idle());
    assert!(sim.phones.iter().all(|p| p.legs.is_empty()));
}

#[test]
fn blind_transfers_put_the_target_in_the_transferors_place() {
    // Duplicates, no loss: a lost REFER's retransmission could come after the
    // transferor's BYE, which ends the call instead.
    let mut sim = Sim::new(10, 8, 0, 5);
    sim.give_up = 0;
    let answer = Script::Answer(Duration::from_millis(300));
    for p in &mut sim.phones {
        p.quiet = true;
        p.script = Some(answer);
    }
    let t0 = sim.now;
    let s = Duration::from_secs;
    // 1000 → 1001; 1001 transfers 1000 to 1002 and waits for the outcome.
    // 1003 → 1004; 1003 transfers 1004 to 1005 and hangs up at once.
    // 1006 → 1007; 1007 transfers 1006 to a number nobody has: the call goes on.
    sim.run(vec![(t0, 0, 1), (t0, 3, 4), (t0, 6, 7)], t0 + s(3));
    sim.phones[1]
        .acts
        .push((sim.now, Act::Refer("1002", false)));
    sim.phones[3].acts.push((sim.now, Act::Refer("1005", true)));
    sim.phones[7]
        .acts
        .push((sim.now, Act::Refer("1999", false)));
    let now = sim.now;
    sim.run(Vec::new(), now + s(8));
    let transferred: Vec<String> = sim
        .events
        .iter()
        .filter_map(|e| match e {
            Event::CallTransferred { user, .. } => Some(user.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(transferred.len(), 2, "{:?}", sim.events);
    assert!(transferred.contains(&"1002".to_owned()) && transferred.contains(&"1005".to_owned()));
    assert_eq!(
        sim.phones[1].notified.last().map(String::as_str),
        Some("SIP/2.0 200 OK")
    );
    assert_eq!(
        sim.phones[7].notified.last().map(String::as_str),
        Some("SIP/2.0 404 Not Found")
    );
    // The transferors are off their calls; the others talk: two calls and the one
    // that failed to transfer, each with its two parties' counts.
    assert_eq!(sim.phones[1].legs.len(), 0, "the transferor was hung up");
    assert_eq!(sim.phones[3].legs.len(), 0);
    assert_eq!(sim.engine.calls(), 3);
    for (user, calls) in [
        ("1000", 1),
        ("1001", 0),
        ("1002", 1),
        ("1003", 0),
        ("1004", 1),
        ("1005", 1),
        ("1006", 1),
        ("1007", 1),
    ] {
        assert_eq!(sim.engine.in_use(user), calls, "{user}");
    }
    // The new pairs hang up: every call ends, answered, with its new callee.
    let now = sim.now;
    for i in [0, 4, 6] {
        let ids: Vec<u32> = sim.phones[i].legs.keys().copied().collect();
        for id in ids {
            sim.phones[i].acts.push((now, Act::HangUp(id)));
        }
    }
    sim.run(Vec::new(), now + s(40));
    let ended: Vec<(String, Option<String>)> = sim
        .events
        .iter()
        .filter_map(|e| match e {
            Event::CallEnded {
                caller,
                callee,
                outcome: Outcome::Answered(_),
                ..
            } => Some((caller.clone(), callee.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(ended.len(), 3, "{ended:?}");
    assert!(ended.contains(&("1000".to_owned(), Some("1002".to_owned()))));
    assert!(ended.contains(&("1003".to_owned(), Some("1004".to_owned()))));
    assert!(ended.contains(&("1006".to_owned(), Some("1007".to_owned()))));
    assert!(sim.engine.is_idle());
    assert!(sim.phones.iter().all(|p| p.legs.is_empty()));
}

/// Three users, and two trunks: `0` + nine digits goes out through t1 then t2, and
/// the DID 0987654321 reaches 1001.
fn trunk_dialplan() -> pbxkit_dialplan::Dialplan {
    let mut text = String::from(
        "[[contexts]]\nname = \"default\"\nkind = \"internal\"\nincludes = [\"to-extern\"]\n\
         ranges.users = [{ start = \"1000\", end = \"1999\" }]\n\
         [[contexts]]\nname = \"to-extern\"\nkind = \"outcall\"\n\
         [[contexts]]\nname = \"from-extern\"\nkind = \"incall\"\n\
         ranges.incalls = [{ start = \"0987654000\", end = \"0987654999\" }]\n\
         [[trunks]]\nname = \"t1\"\n[[trunks]]\nname = \"t2\"\n\
         [[outcalls]]\nname = \"national\"\ncontext = \"to-extern\"\ninternal = true\n\
         trunks = [\"t1\", \"t2\"]\npatterns = [{ pattern = \"_0XXXXXXXXX\" }]\n\
         [[incalls]]\ndid = \"0987654321\"\ncontext = \"from-extern\"\n\
         destination = { type = \"user\", name = \"1001\" }\n",
    );
    for ext in 1000..1003 {
        text.push_str(&format!(
            "[[users]]\nname = \"{ext}\"\nextension = \"{ext}\"\ncontext = \"default\"\n\
             lines = [\"{ext}\"]\nring_time = 8\n"
        ));
    }
    pbxkit_dialplan::Dialplan::new(toml::from_str(&text).unwrap(), jiff::tz::db()).unwrap()
}

/// Adds a trunk's far end to `sim`: a phone at `addr` that acts as `script`.
fn add_trunk_phone(sim: &mut Sim, name: &str, addr: &str, script: Script) -> usize {
    let addr: SocketAddr = addr.parse().unwrap();
    let timers = sim.phones[0].config.timers;
    let mut phone = Phone::new(name.into(), addr, timers);
    phone.script = Some(script);
    phone.quiet = true;
    sim.by_addr.insert(addr, sim.phones.len());
    sim.phones.push(phone);
    sim.phones.len() - 1
}

fn trunk(name: &str, addr: &str, credentials: Option<Credentials>) -> pbxkit::engine::Trunk {
    pbxkit::engine::Trunk {
        name: name.into(),
        target: udp(addr.parse().unwrap()),
        host: addr.into(),
        context: "from-extern".into(),
        credentials,
        max_calls: None,
        register: None,
        qualify: None,
    }
}

#[test]
fn calls_fail_over_between_trunks_answer_their_challenge_and_come_in_by_did() {
    let mut sim = Sim::with_dialplan(9, 3, 0, 0, trunk_dialplan());
    let now = sim.now;
    // t1 is out of service; t2 wants our account.
    let t1 = add_trunk_phone(&mut sim, "t1", "10.0.2.1:5060", Script::Reject(503));
    let t2 = add_trunk_phone(
        &mut sim,
        "t2",
        "10.0.2.2:5060",
        Script::Challenge(Duration::from_millis(300)),
    );
    let mut provider =
        pbxkit_sip::digest::DigestServer::new("provider", b"the provider's secret", 300);
    sim.phones[t2].challenge = provider
        .challenge(1_700_000_000, pbxkit_sip::digest::Algorithm::Md5, false)
        .to_string();
    let account = Credentials {
        username: "pbx-account".into(),
        password: "trunk-secret".into(),
        realm: None,
    };
    sim.engine.set_trunks(
        vec![
            trunk("t1", "10.0.2.1:5060", None),
            trunk("t2", "10.0.2.2:5060", Some(account)),
        ],
        now,
    );
    sim.phones[at(1000)].quiet = true;
    sim.phones[at(1000)].dial("0612345678", Some(Duration::from_secs(3)), now);
    // The provider brings a call in for the DID, asserting who calls (RFC 3325),
    // without any password: its address is trusted.
    sim.phones[t1].extra = vec![(
        HeaderName::PAssertedIdentity,
        "\"Jo\" <sip:+33698765432@provider>".into(),
    )];
    sim.phones[at(1001)].script = Some(Script::Answer(Duration::from_millis(200)));
    sim.phones[at(1001)].quiet = true;
    let later = now + Duration::from_secs(5);
    sim.run(Vec::new(), later);
    sim.phones[t1].dial("0987654321", Some(Duration::from_secs(2)), later);
    sim.run(Vec::new(), later + Duration::from_secs(40));

    // Out: t1 refused, t2 challenged, then answered the INVITE with our account.
    assert_eq!(sim.phones[t1].seen, ["INVITE"]);
    assert_eq!(sim.phones[t2].seen, ["INVITE", "INVITE"]);
    let first = &sim.phones[t1].requests[0];
    assert_eq!(
        first.request_uri().unwrap().to_string(),
        "sip:0612345678@10.0.2.1:5060"
    );
    let identity = first
        .headers()
        .first(&HeaderName::PAssertedIdentity)
        .unwrap();
    assert!(identity.value.contains("sip:1000@"), "{}", identity.value);
    let second = &sim.phones[t2].requests[1];
    let auth: pbxkit_sip::Auth = second
        .headers()
        .typed(&HeaderName::Authorization)
        .unwrap()
        .unwrap();
    let verified = provider
        .verify(&auth, "INVITE", 1_700_000_001, |u| {
            (u == "pbx-account").then(|| "trunk-secret".to_owned())
        })
        .unwrap();
    assert_eq!(verified.username, "pbx-account");

    // In: the DID rang 1001, the caller is who the trunk asserted.
    let calls: Vec<(String, String, Option<String>)> = sim
        .events
        .iter()
        .filter_map(|e| match e {
            Event::CallEnded {
                caller,
                dialed,
                callee,
                ..
            } => Some((caller.clone(), dialed.clone(), callee.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        calls,
        [
            ("1000".into(), "0612345678".into(), Some("trunk:t2".into())),
            (
                "+33698765432".into(),
                "0987654321".into(),
                Some("1001".into())
            ),
        ]
    );
    assert!(sim.engine.is_idle());
    assert!(sim.phones.iter().all(|p| p.legs.is_empty()));
}

/// The PBX's media for queues: answers callers with its own SDP, offers agents
/// its own, and remembers what it was asked.
#[derive(Debug, Default)]
struct QueueMedia(Arc<std::sync::Mutex<Vec<String>>>);

impl Media for QueueMedia {
    fn offer(&mut self, _: CallId, _: bool, _: &Bytes) -> Option<Bytes> {
        None
    }

    fn answer(&mut self, _: CallId, _: bool, _: Option<&Bytes>, _: &Bytes) -> Option<Bytes> {
        None
    }

    fn queue_wait(
        &mut self,
        call: CallId,
        _music: Option<&str>,
        _offer: &Bytes,
    ) -> Result<Bytes, StatusCode> {
        self.0.lock().unwrap().push(format!("{call:?} music"));
        Ok(sdp("pbx", 1, false))
    }

    fn queue_offer(&mut self, _: CallId) -> Option<Bytes> {
        Some(sdp("pbx", 2, false))
    }

    fn queue_connect(&mut self, call: CallId, _answer: &Bytes) {
        self.0.lock().unwrap().push(format!("{call:?} connect"));
    }

    fn close(&mut self, call: CallId) {
        self.0.lock().unwrap().push(format!("{call:?} closed"));
    }
}

fn queue_dialplan(users: usize) -> pbxkit_dialplan::Dialplan {
    let mut text = String::from(
        "[[contexts]]\nname = \"default\"\nkind = \"internal\"\n\
         ranges.users = [{ start = \"1000\", end = \"1999\" }]\n\
         ranges.queues = [{ start = \"3200\", end = \"3299\" }]\n\
         [[queues]]\nname = \"support\"\nextension = \"3200\"\ncontext = \"default\"\n",
    );
    for i in 0..users {
        let ext = 1000 + i;
        text.push_str(&format!(
            "[[users]]\nname = \"{ext}\"\nextension = \"{ext}\"\ncontext = \"default\"\n\
             lines = [\"{ext}\"]\nring_time = 8\nsimultaneous_calls = 10\n"
        ));
    }
    pbxkit_dialplan::Dialplan::new(toml::from_str(&text).unwrap(), jiff::tz::db()).unwrap()
}

/// The queue_log events the simulation wrote, as `EVENT agent` in order.
fn queue_log(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::QueueLog(line) => Some(format!("{} {}", line.event.name(), line.agent)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_queue_rings_its_logged_in_agents_and_logs_what_happens() {
    let media = QueueMedia::default();
    let log = media.0.clone();
    let mut support = pbxkit_acd::QueueConfig::new("support", pbxkit_acd::Strategy::RingAll);
    support.member_timeout = Duration::from_secs(4);
    support.retry = Duration::from_secs(1);
    support.timeout = Some(Duration::from_secs(20));
    let queues = vec![QueueSetup {
        acd: support,
        no_answer: None,
        music: None,
    }];
    let mut sim = Sim::with_queues(11, 5, 0, 0, queue_dialplan(5), media, queues);
    sim.give_up = 0;
    for p in &mut sim.phones {
        p.quiet = true;
    }
    sim.phones[1].script = Some(Script::Answer(Duration::from_secs(1)));
    sim.phones[2].script = Some(Script::Ring);
    let s = Duration::from_secs;
    let t0 = sim.now;
    for (agent, user) in [("1", "1001"), ("2", "1002")] {
        sim.engine
            .agent(
                AgentCommand::Login {
                    agent: agent.into(),
                    user: user.into(),
                    queues: vec![("support".into(), 0)],
                },
                t0,
            )
            .unwrap();
    }
    assert_eq!(sim.engine.agent_on_phone("1001").as_deref(), Some("1"));
    assert_eq!(sim.engine.agent_phone("2"), Some("1002"));
    // A caller waits with music; both agents ring, agent 1 answers after a second
    // and is bridged with the caller; agent 2 stops ringing.
    let caller = sim.phones[0].dial("3200", None, t0);
    sim.run(Vec::new(), t0 + s(3));
    assert_eq!(sim.phones[0].answered, 1, "the PBX answered the caller");
    assert_eq!(sim.phones[1].answered, 1, "agent 1 answered");
    let connected: Vec<(String, String, String)> = sim
        .events
        .iter()
        .filter_map(|e| match e {
            Event::AgentConnected {
                queue, agent, user, ..
            } => Some((queue.clone(), agent.clone(), user.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        connected,
        [("support".into(), "1".into(), "1001".into())],
        "{:?}",
        sim.events
    );
    assert!(sim.phones[2].legs.is_empty(), "agent 2 no longer rings");
    assert_eq!(sim.engine.queue_waiting("support"), 0);
    sim.engine.check_counts().unwrap();
    // Each change of an agent's state is an event, in order; a queue's status
    // follows each of its changes.
    let agent_states = |sim: &Sim, agent: &str| -> Vec<pbxkit_acd::AgentState> {
        sim.events
            .iter()
            .filter_map(|e| match e {
                Event::AgentStatus { agent: a, state } if a == agent => Some(*state),
                _ => None,
            })
            .collect()
    };
    use pbxkit_acd::AgentState as A;
    assert_eq!(agent_states(&sim, "1"), [A::Ready, A::Ringing, A::OnCall]);
    assert_eq!(agent_states(&sim, "2"), [A::Ready, A::Ringing, A::Ready]);
    let waiting: Vec<usize> = sim
        .events
        .iter()
        .filter_map(|e| match e {
            Event::QueueStatus(q) if q.queue == "support" => Some(q.live.waiting),
            _ => None,
        })
        .collect();
    assert_eq!(waiting.first(), Some(&0), "agents logging in: {waiting:?}");
    assert!(waiting.contains(&1), "{waiting:?}");
    assert_eq!(waiting.last(), Some(&0), "{waiting:?}");
    let stats = sim.engine.queue_stats(sim.now);
    assert_eq!(stats.len(), 1);
    let live = stats[0].live;
    assert_eq!((live.logged, live.talking, live.waiting), (2, 1, 0));
    assert_eq!((live.counters.entered, live.counters.answered), (1, 1));
    let one = sim.engine.agent_stats("1", sim.now);
    assert_eq!((one.phone.as_deref(), one.state), (Some("1001"), A::OnCall));
    assert!(one.live.is_some_and(|l| l.answered == 1), "{one:?}");
    let nobody = sim.engine.agent_stats("9", sim.now);
    assert_eq!(
        (nobody.phone, nobody.state, nobody.live),
        (None, A::LoggedOut, None)
    );
    // The caller hangs up: the call completes by the caller.
    let now = sim.now;
    sim.phones[0].acts.push((now, Act::HangUp(caller)));
    sim.run(Vec::new(), now + s(2));

    // With agent 1 paused and agent 2 logged off, a second caller waits for
    // nobody and gives up after three seconds: it abandons.
    let now = sim.now;
    let pause = AgentCommand::Pause {
        queue: None,
        agent: "1".into(),
        reason: Some("lunch".into()),
    };
    sim.engine.agent(pause, now).unwrap();
    sim.engine
        .agent(AgentCommand::Logoff { agent: "2".into() }, now)
        .unwrap();
    assert_eq!(sim.engine.agent_phone("2"), None);
    sim.phones[3].dial("3200", Some(s(3)), now);
    sim.run(Vec::new(), now + s(1));
    assert_eq!(sim.engine.queue_waiting("support"), 1);
    sim.run(Vec::new(), now + s(6));
    assert_eq!(sim.engine.queue_waiting("support"), 0);

    // A third caller waits until the queue's timeout: unpaused meanwhile, agent 1
    // lets it ring (no answer), and the caller leaves by the timeout.
    sim.phones[1].script = Some(Script::Ring);
    let now = sim.now;
    sim.phones[4].dial("3200", None, now);
    sim.run(Vec::new(), now + s(1));
    let unpause = AgentCommand::Pause {
        queue: None,
        agent: "1".into(),
        reason: None,
    };
    sim.engine.agent(unpause, sim.now).unwrap();
    sim.run(Vec::new(), now + s(40));

    // After the call, the pause; unpaused, it rings at once for the waiting
    // caller, then after each retry until the queue's timeout.
    let states = agent_states(&sim, "1");
    assert_eq!(
        states[3..6],
        [A::Ready, A::Paused, A::Ringing],
        "{states:?}"
    );
    assert_eq!(states.last(), Some(&A::Ready), "{states:?}");
    assert!(
        states[6..]
            .chunks(2)
            .all(|p| p == [A::Ready, A::Ringing] || p == [A::Ready]),
        "{states:?}"
    );
    assert_eq!(agent_states(&sim, "2").last(), Some(&A::LoggedOut));
    let day = sim.engine.queue_stats(sim.now)[0].live.counters;
    assert_eq!(
        (day.entered, day.answered, day.abandoned, day.timeout),
        (3, 1, 1, 1)
    );
    sim.engine.reset_queue_stats(sim.now);
    assert_eq!(sim.engine.queue_stats(sim.now)[0].live.counters.entered, 0);

    let lines = queue_log(&sim.events);
    let expected = [
        "AGENTLOGIN Agent/1",
        "AGENTLOGIN Agent/2",
        "ENTERQUEUE NONE",
        "CONNECT Agent/1",
        "COMPLETECALLER Agent/1",
        "PAUSEALL Agent/1",
        "AGENTLOGOFF Agent/2",
        "ENTERQUEUE NONE",
        "ABANDON NONE",
        "ENTERQUEUE NONE",
        "UNPAUSEALL Agent/1",
        "RINGNOANSWER Agent/1",
        "EXITWITHTIMEOUT NONE",
    ];
    let got: Vec<&str> = lines
        .iter()
        .map(String::as_str)
        .filter(|l| expected.contains(l))
        .collect();
    assert_eq!(got[..5], expected[..5], "{lines:?}");
    for line in &expected[5..] {
        assert!(lines.iter().any(|l| l == line), "no {line}: {lines:?}");
    }
    let ended: Vec<(String, Option<String>, Outcome)> = sim
        .events
        .iter()
        .filter_map(|e| match e {
            Event::CallEnded {
                caller,
                callee,
                outcome,
                ..
            } => Some((caller.clone(), callee.clone(), *outcome)),
            _ => None,
        })
        .collect();
    assert_eq!(ended.len(), 3, "{ended:?}");
    assert_eq!(ended[0].1.as_deref(), Some("1001"), "{ended:?}");
    assert!(
        matches!(ended[0].2, Outcome::Answered(HangupCause::HungUp { .. })),
        "{ended:?}"
    );
    // The timed-out caller was answered by the queue and hung up by the PBX.
    let timed_out = ended.iter().find(|e| e.0 == "1004").unwrap();
    assert_eq!(
        timed_out.2,
        Outcome::Answered(HangupCause::Pbx),
        "{ended:?}"
    );
    let log = log.lock().unwrap().clone();
    assert_eq!(log.iter().filter(|l| l.ends_with("music")).count(), 3);
    assert_eq!(log.iter().filter(|l| l.ends_with("connect")).count(), 1);
    // Transactions linger (timer D) before the engine is idle.
    let now = sim.now;
    sim.run(Vec::new(), now + s(40));
    assert!(sim.engine.is_idle());
    assert!(sim.phones.iter().all(|p| p.legs.is_empty()));
}

/// Four calls one after the other into a queue of `strategy` whose three agents
/// answer at once: the agents who took them, in order (`-` for a call nobody took).
fn agents_taking_calls(strategy: pbxkit_acd::Strategy, wrap_up: Duration) -> Vec<String> {
    let mut queue = pbxkit_acd::QueueConfig::new("support", strategy);
    queue.member_timeout = Duration::from_secs(4);
    queue.retry = Duration::from_secs(1);
    queue.timeout = Some(Duration::from_secs(10));
    queue.wrap_up = wrap_up;
    let queues = vec![QueueSetup {
        acd: queue,
        no_answer: None,
        music: None,
    }];
    let media = QueueMedia::default();
    let mut sim = Sim::with_queues(12, 4, 0, 0, queue_dialplan(4), media, queues);
    sim.give_up = 0;
    let s = Duration::from_secs;
    for p in &mut sim.phones {
        p.quiet = true;
        p.script = Some(Script::Answer(Duration::from_millis(200)));
    }
    let t0 = sim.now;
    for agent in 1..=3 {
        let login = AgentCommand::Login {
            agent: agent.to_string(),
            user: format!("100{agent}"),
            queues: vec![("support".into(), 0)],
        };
        sim.engine.agent(login, t0).unwrap();
    }
    let mut taken = Vec::new();
    for _ in 0..4 {
        let now = sim.now;
        let before = sim.events.len();
        let leg = sim.phones[0].dial("3200", None, now);
        sim.phones[0].acts.push((now + s(3), Act::HangUp(leg)));
        sim.run(Vec::new(), now + s(12));
        let agent = sim.events[before..].iter().find_map(|e| match e {
            Event::AgentConnected { agent, .. } => Some(agent.clone()),
            _ => None,
        });
        taken.push(agent.unwrap_or_else(|| "-".into()));
    }
    let now = sim.now;
    sim.run(Vec::new(), now + s(40));
    sim.engine.check_counts().unwrap();
    assert!(sim.engine.is_idle());
    taken
}

#[test]
fn queue_strategies_choose_their_agents_and_wrap_up_rests_them() {
    use pbxkit_acd::Strategy;
    let none = Duration::ZERO;
    // Linear: the first agent whenever it is free.
    assert_eq!(
        agents_taking_calls(Strategy::Linear, none),
        ["1", "1", "1", "1"]
    );
    // Round robin with memory: each in turn.
    assert_eq!(
        agents_taking_calls(Strategy::RrMemory, none),
        ["1", "2", "3", "1"]
    );
    // Least recent: those never called first, then the one idle longest.
    assert_eq!(
        agents_taking_calls(Strategy::LeastRecent, none),
        ["1", "2", "3", "1"]
    );
    // Fewest calls: the same here (each has one after three calls).
    assert_eq!(
        agents_taking_calls(Strategy::FewestCalls, none),
        ["1", "2", "3", "1"]
    );
    // Wrap-up: an agent rests after its call, the next one takes the caller; with
    // all three resting the fourth caller times out.
    assert_eq!(
        agents_taking_calls(Strategy::Linear, Duration::from_secs(60)),
        ["1", "2", "3", "-"]
    );
}

#[test]
fn callers_of_a_conference_room_are_answered_into_it_by_the_pbx() {
    let mut text = String::from(
        "[[contexts]]\nname = \"default\"\nkind = \"internal\"\n\
         ranges.users = [{ start = \"1000\", end = \"1999\" }]\n\
         ranges.conferences = [{ start = \"4000\" }]\n\
         [[conferences]]\nname = \"meeting\"\nextension = \"4000\"\ncontext = \"default\"\n",
    );
    for ext in 1000..1003 {
        text.push_str(&format!(
            "[[users]]\nname = \"{ext}\"\nextension = \"{ext}\"\ncontext = \"default\"\n\
             lines = [\"{ext}\"]\n"
        ));
    }
    let dialplan =
        pbxkit_dialplan::Dialplan::new(toml::from_str(&text).unwrap(), jiff::tz::db()).unwrap();
    let ran = AppMedia::default();
    let log = ran.0.clone();
    let mut sim = Sim::with_media(12, 3, 0, 0, dialplan, ran);
    sim.give_up = 0;
    for p in &mut sim.phones {
        p.quiet = true;
    }
    let t0 = sim.now;
    sim.phones[0].dial("4000", None, t0);
    sim.phones[1].dial("4000", None, t0);
    sim.run(Vec::new(), t0 + Duration::from_secs(1));
    assert_eq!(sim.phones[0].answered + sim.phones[1].answered, 2);
    let joined = log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.ends_with("Conference { room: \"meeting\" }"))
        .count();
    assert_eq!(joined, 2, "{:?}", log.lock().unwrap());
    // Each caller hangs up: each leaves the room (the media is closed).
    for i in 0..2 {
        let ids: Vec<u32> = sim.phones[i].legs.keys().copied().collect();
        for id in ids {
            let now = sim.now;
            sim.phones[i].acts.push((now, Act::HangUp(id)));
        }
    }
    let now = sim.now;
    sim.run(Vec::new(), now + Duration::from_secs(2));
    assert_eq!(sim.engine.calls(), 0);
    let closed = log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.ends_with("closed"))
        .count();
    assert_eq!(closed, 2);
}

#[test]
fn an_ivr_diverts_its_caller_who_gets_the_calls_media_when_the_target_answers() {
    let ran = AppMedia::default();
    let log = ran.0.clone();
    let mut sim = Sim::with_media(13, 2, 0, 0, dialplan(2), ran);
    sim.give_up = 0;
    sim.phones[0].quiet = true;
    sim.phones[1].quiet = true;
    sim.phones[1].script = Some(Script::Answer(Duration::from_millis(300)));
    let t0 = sim.now;
    sim.phones[0].dial("5000", None, t0);
    sim.run(Vec::new(), t0 + Duration::from_secs(1));
    assert_eq!(sim.phones[0].answered, 1, "the menu answers");
    let call = sim
        .events
        .iter()
        .find_map(|e| match e {
            Event::CallCreated { call, .. } => Some(*call),
            _ => None,
        })
        .unwrap();
    assert!(
        log.lock()
            .unwrap()
            .iter()
            .any(|l| l.ends_with("Ivr { menu: \"5000\" }"))
    );
    // The caller chose 1001: its phone rings and answers, the caller is
    // re-INVITEd onto the call's media.
    let offers_before = sim.phones[0].offers;
    let now = sim.now;
    sim.engine
        .command(call, Command::Divert("1001".into()), now);
    sim.run(Vec::new(), now + Duration::from_secs(2));
    assert_eq!(sim.phones[1].answered, 1);
    assert_eq!(sim.phones[0].offers, offers_before + 1);
    assert!(
        sim.events
            .iter()
            .any(|e| matches!(e, Event::CallTransferred { user, .. } if user == "1001"))
    );
    // A divert of a call no application holds is ignored.
    let now = sim.now;
    sim.engine
        .command(call, Command::Divert("1000".into()), now);
    sim.run(Vec::new(), now + Duration::from_millis(500));
    assert_eq!(sim.engine.calls(), 1);
    let ids: Vec<u32> = sim.phones[0].legs.keys().copied().collect();
    for id in ids {
        let now = sim.now;
        sim.phones[0].acts.push((now, Act::HangUp(id)));
    }
    let now = sim.now;
    sim.run(Vec::new(), now + Duration::from_secs(2));
    assert_eq!(sim.engine.calls(), 0);
    assert!(sim.phones.iter().all(|p| p.legs.is_empty()));
}
