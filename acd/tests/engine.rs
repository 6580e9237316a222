//! The engine against app_queue's choices on fixed inputs: strategies, penalties,
//! joinempty/leavewhenempty, diversions, timers, and a seeded simulation.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use pbxkit_acd::penalty::PenaltyRules;
use pbxkit_acd::queue_log::{Event, MemorySink};
use pbxkit_acd::skills::RuleSet;
use pbxkit_acd::{
    Acd, AcdError, Announcements, CallId, CallOptions, DeviceState, EmptyConditions,
    HoldTimeAnnouncement, Input, Leave, Output, QueueConfig, Refusal, Rng, SeededRng, Strategy,
};

struct Harness<R> {
    acd: Acd<MemorySink, R>,
    now: Instant,
    next_call: u32,
}

impl<R: Rng> Harness<R> {
    fn with_rng(configs: Vec<QueueConfig>, rng: R) -> Self {
        let start = Instant::now();
        let mut acd = Acd::new(MemorySink::new(), rng, start, 1_000_000);
        for c in configs {
            acd.add_queue(c).unwrap();
        }
        Self {
            acd,
            now: start,
            next_call: 0,
        }
    }

    fn input(&mut self, input: Input) -> Vec<Output> {
        self.acd.handle_input(self.now, input).unwrap();
        self.drain()
    }

    fn drain(&mut self) -> Vec<Output> {
        std::iter::from_fn(|| self.acd.poll_output()).collect()
    }

    fn login(&mut self, agent: &str, queues: &[(&str, u32)]) {
        self.acd.add_line(&format!("SIP/{agent}"));
        self.input(Input::AgentLogin {
            agent: agent.into(),
            channel: format!("SIP/{agent}"),
            queues: queues.iter().map(|(q, p)| ((*q).into(), *p)).collect(),
        });
    }

    fn call(&mut self, queue: &str) -> (CallId, Vec<Output>) {
        self.next_call += 1;
        let call = CallId(format!("c{}", self.next_call));
        let out = self.input(Input::CallArrived {
            call: call.clone(),
            queue: queue.into(),
            caller_id: "100".into(),
            priority: 0,
            options: CallOptions::default(),
        });
        (call, out)
    }

    fn advance(&mut self, secs: u64) -> Vec<Output> {
        let target = self.now + Duration::from_secs(secs);
        let mut out = Vec::new();
        while let Some(t) = self.acd.poll_timeout() {
            if t > target {
                break;
            }
            self.now = self.now.max(t);
            self.acd.handle_timeout(self.now);
            out.extend(self.drain());
        }
        self.now = target;
        out
    }

    fn answer(&mut self, call: &CallId, agent: &str) -> Vec<Output> {
        self.input(Input::MemberAnswered {
            call: call.clone(),
            agent: agent.into(),
            member_uniqueid: format!("{agent}-leg"),
        })
    }

    fn hang_up(&mut self, call: &CallId) -> Vec<Output> {
        self.input(Input::CallerHungUp { call: call.clone() })
    }

    fn events(&self) -> Vec<String> {
        self.acd
            .sink()
            .lines
            .iter()
            .map(|l| format!("{}|{}|{}", l.call_id, l.agent, l.event))
            .collect()
    }
}

fn harness(configs: Vec<QueueConfig>) -> Harness<SeededRng> {
    Harness::with_rng(configs, SeededRng::new(42))
}

fn rung(outputs: &[Output]) -> Vec<String> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Ring { agent, .. } => Some(agent.to_string()),
            _ => None,
        })
        .collect()
}

/// One call answered by whoever rings first, then hung up: the agent chosen.
fn serve_one<R: Rng>(h: &mut Harness<R>, queue: &str, talk: u64) -> String {
    let (call, out) = h.call(queue);
    let agents = rung(&out);
    assert_eq!(agents.len(), 1, "{out:?}");
    h.answer(&call, &agents[0]);
    h.advance(talk);
    h.hang_up(&call);
    agents[0].clone()
}

#[test]
fn rrmemory_goes_round_from_where_it_stopped() {
    let mut h = harness(vec![QueueConfig::new("q", Strategy::RrMemory)]);
    for a in ["A", "B", "C"] {
        h.login(a, &[("q", 0)]);
    }
    let order: Vec<String> = (0..5).map(|_| serve_one(&mut h, "q", 10)).collect();
    assert_eq!(order, ["A", "B", "C", "A", "B"]);
    // An unanswered attempt moves rrpos on too: C rings, times out, then A.
    let (call, out) = h.call("q");
    assert_eq!(rung(&out), ["C"]);
    let out = h.advance(15);
    assert!(out.contains(&Output::StopRinging {
        call: call.clone(),
        agent: "C".into()
    }));
    let out = h.advance(5);
    assert_eq!(rung(&out), ["A"]);
    assert!(h.events().contains(&"c6|C|RINGNOANSWER|15000".to_owned()));
}

#[test]
fn rrordered_matches_rrmemory_and_survives_removal() {
    let mut h = harness(vec![QueueConfig::new("q", Strategy::RrOrdered)]);
    for a in ["A", "B", "C"] {
        h.login(a, &[("q", 0)]);
    }
    assert_eq!(serve_one(&mut h, "q", 1), "A");
    assert_eq!(serve_one(&mut h, "q", 1), "B");
    // A leaves: rrpos (2, at C) moves back with the members after A.
    h.input(Input::AgentLogoff { agent: "A".into() });
    assert_eq!(serve_one(&mut h, "q", 1), "C");
    assert_eq!(serve_one(&mut h, "q", 1), "B");
}

#[test]
fn linear_starts_from_the_first_member_for_each_caller() {
    let mut h = harness(vec![QueueConfig::new("q", Strategy::Linear)]);
    for a in ["A", "B", "C"] {
        h.login(a, &[("q", 0)]);
    }
    assert_eq!(serve_one(&mut h, "q", 1), "A");
    assert_eq!(serve_one(&mut h, "q", 1), "A");
    // A busy with one caller: the next rings B.
    let (c1, out) = h.call("q");
    assert_eq!(rung(&out), ["A"]);
    h.answer(&c1, "A");
    let (c2, out) = h.call("q");
    assert_eq!(rung(&out), ["B"]);
    // B does not answer: this caller goes on to C (its own linpos), not back to A.
    let out = h.input(Input::MemberNoAnswer {
        call: c2.clone(),
        agent: "B".into(),
    });
    assert_eq!(rung(&out), ["C"]);
    let events = h.events();
    assert_eq!(events.last().unwrap(), "c4|B|RINGNOANSWER|0");
}

#[test]
fn linear_member_rejecting_rings_the_next_at_once() {
    let mut h = harness(vec![QueueConfig::new("q", Strategy::Linear)]);
    for a in ["A", "B"] {
        h.login(a, &[("q", 0)]);
    }
    let (c, out) = h.call("q");
    assert_eq!(rung(&out), ["A"]);
    let out = h.input(Input::MemberNoAnswer {
        call: c.clone(),
        agent: "A".into(),
    });
    assert_eq!(rung(&out), ["B"]);
}

#[test]
fn leastrecent_and_fewestcalls() {
    let mut h = harness(vec![QueueConfig::new("q", Strategy::LeastRecent)]);
    for a in ["A", "B", "C"] {
        h.login(a, &[("q", 0)]);
    }
    // Nobody called yet: all metrics 0, the first member wins the tie.
    assert_eq!(serve_one(&mut h, "q", 10), "A");
    assert_eq!(serve_one(&mut h, "q", 10), "B");
    assert_eq!(serve_one(&mut h, "q", 10), "C");
    // A's call ended longest ago.
    assert_eq!(serve_one(&mut h, "q", 10), "A");

    let mut h = harness(vec![QueueConfig::new("q", Strategy::FewestCalls)]);
    for a in ["A", "B"] {
        h.login(a, &[("q", 0)]);
    }
    assert_eq!(serve_one(&mut h, "q", 1), "A");
    assert_eq!(serve_one(&mut h, "q", 1), "B");
    assert_eq!(serve_one(&mut h, "q", 1), "A");
    // Penalty dominates: metric = penalty × 1 000 000 + calls.
    h.login("C", &[("q", 1)]);
    assert_eq!(serve_one(&mut h, "q", 1), "B");
}

#[test]
fn ringall_rings_the_best_penalty_together() {
    let mut h = harness(vec![QueueConfig::new("q", Strategy::RingAll)]);
    h.login("A", &[("q", 0)]);
    h.login("B", &[("q", 0)]);
    h.login("C", &[("q", 1)]);
    let (c, out) = h.call("q");
    assert_eq!(rung(&out), ["A", "B"]);
    // Both refuse: ringall's attempt is over; after retry the same two ring.
    h.input(Input::MemberNoAnswer {
        call: c.clone(),
        agent: "A".into(),
    });
    let out = h.input(Input::MemberNoAnswer {
        call: c.clone(),
        agent: "B".into(),
    });
    assert!(rung(&out).is_empty());
    assert_eq!(rung(&h.advance(5)), ["A", "B"]);
    // B answers: A stops ringing.
    let out = h.answer(&c, "B");
    assert_eq!(
        out[0],
        Output::StopRinging {
            call: c.clone(),
            agent: "A".into()
        }
    );
    assert!(out.contains(&Output::Connect {
        call: c.clone(),
        agent: "B".into()
    }));
    h.hang_up(&c);
    // With A and B paused, the next penalty level rings.
    h.input(Input::Pause {
        agent: "A".into(),
        queue: None,
        reason: "lunch".into(),
    });
    h.input(Input::Pause {
        agent: "B".into(),
        queue: Some("q".into()),
        reason: String::new(),
    });
    let (_, out) = h.call("q");
    assert_eq!(rung(&out), ["C"]);
    let events = h.events();
    assert!(events.contains(&"NONE|A|PAUSEALL|lunch".to_owned()));
    assert!(events.contains(&"NONE|A|PAUSE|lunch".to_owned()));
}

#[test]
fn random_and_wrandom_use_the_injected_numbers() {
    // random: rand % 1000 + penalty × 1 000 000.
    let mut seq = vec![500_u32, 1100, 900].into_iter().cycle();
    let mut h = Harness::with_rng(vec![QueueConfig::new("q", Strategy::Random)], move || {
        seq.next().unwrap()
    });
    for a in ["A", "B", "C"] {
        h.login(a, &[("q", 0)]);
    }
    let (_, out) = h.call("q");
    assert_eq!(rung(&out), ["B"]); // 500, 100, 900

    // wrandom: rand % ((1 + penalty) × 1000), no penalty offset.
    let mut seq = vec![999_u32, 1500].into_iter().cycle();
    let mut h = Harness::with_rng(vec![QueueConfig::new("q", Strategy::WRandom)], move || {
        seq.next().unwrap()
    });
    h.login("A", &[("q", 0)]);
    h.login("B", &[("q", 1)]);
    let (_, out) = h.call("q");
    assert_eq!(rung(&out), ["A"]); // 999 < 1500
    let mut seq = vec![999_u32, 500].into_iter().cycle();
    let mut h = Harness::with_rng(vec![QueueConfig::new("q", Strategy::WRandom)], move || {
        seq.next().unwrap()
    });
    h.login("A", &[("q", 0)]);
    h.login("B", &[("q", 1)]);
    let (_, out) = h.call("q");
    assert_eq!(rung(&out), ["B"]); // 999 > 500: a penalised member can win
}

#[test]
fn ringinuse_and_turns() {
    let mut h = harness(vec![QueueConfig::new("q", Strategy::RrMemory)]);
    h.login("A", &[("q", 0)]);
    let (_, out) = h.call("q");
    assert_eq!(rung(&out), ["A"]);
    let (_, out) = h.call("q");
    assert!(rung(&out).is_empty(), "A rings for one call at a time");

    let mut config = QueueConfig::new("q", Strategy::RrMemory);
    config.ring_in_use = true;
    let mut h = harness(vec![config]);
    h.login("A", &[("q", 0)]);
    let (c1, out) = h.call("q");
    assert_eq!(rung(&out), ["A"]);
    h.answer(&c1, "A");
    let (_, out) = h.call("q");
    assert_eq!(rung(&out), ["A"], "ringinuse rings a member on a call");
}

#[test]
fn priority_queues_ahead() {
    let mut h = harness(vec![QueueConfig::new("q", Strategy::RingAll)]);
    let (a, _) = h.call("q");
    let b = CallId("vip".into());
    let out = h.input(Input::CallArrived {
        call: b.clone(),
        queue: "q".into(),
        caller_id: "1".into(),
        priority: 5,
        options: CallOptions::default(),
    });
    assert!(out.contains(&Output::Position {
        call: b.clone(),
        position: 1,
        expected_wait: Duration::ZERO
    }));
    assert!(out.contains(&Output::Position {
        call: a.clone(),
        position: 2,
        expected_wait: Duration::ZERO
    }));
    h.acd.add_line("SIP/A");
    let out = h.input(Input::AgentLogin {
        agent: "A".into(),
        channel: "SIP/A".into(),
        queues: vec![("q".into(), 0)],
    });
    // The VIP, at the head, rings first; both still wait.
    assert!(out.contains(&Output::Ring {
        call: b.clone(),
        agent: "A".into()
    }));
    assert!(!out.contains(&Output::Ring {
        call: a.clone(),
        agent: "A".into()
    }));
    assert_eq!(h.acd.waiting(&"q".into()), 2);
    let events = h.events();
    assert!(
        events
            .iter()
            .any(|e| e.starts_with("vip|NONE|ENTERQUEUE||1|1"))
    );
}

#[test]
fn joinempty_factors() {
    let mut config = QueueConfig::new("q", Strategy::RingAll);
    config.join_empty =
        EmptyConditions::PAUSED | EmptyConditions::UNAVAILABLE | EmptyConditions::WRAPUP;
    config.wrap_up = Duration::from_secs(30);
    let mut h = harness(vec![config]);
    // No member at all.
    let (c, out) = h.call("q");
    assert_eq!(
        out,
        [Output::Refused {
            call: c,
            reason: Refusal::JoinEmpty
        }]
    );
    h.login("A", &[("q", 0)]);
    h.input(Input::Pause {
        agent: "A".into(),
        queue: None,
        reason: String::new(),
    });
    let (_, out) = h.call("q");
    assert!(matches!(
        out[0],
        Output::Refused {
            reason: Refusal::JoinEmpty,
            ..
        }
    ));
    h.input(Input::Unpause {
        agent: "A".into(),
        queue: None,
        reason: String::new(),
    });
    h.input(Input::DeviceState {
        agent: "A".into(),
        state: DeviceState::Unavailable,
    });
    let (_, out) = h.call("q");
    assert!(matches!(
        out[0],
        Output::Refused {
            reason: Refusal::JoinEmpty,
            ..
        }
    ));
    // In use is not a condition here: a member on someone else's call counts.
    h.input(Input::DeviceState {
        agent: "A".into(),
        state: DeviceState::InUse,
    });
    let (c, out) = h.call("q");
    assert!(matches!(out[0], Output::Position { .. }));
    h.hang_up(&c);
    // Wrap-up is.
    h.input(Input::DeviceState {
        agent: "A".into(),
        state: DeviceState::NotInUse,
    });
    serve_one(&mut h, "q", 5);
    assert!(h.events().iter().any(|e| e.ends_with("|A|WRAPUPSTART|30")));
    let (_, out) = h.call("q");
    assert!(matches!(
        out[0],
        Output::Refused {
            reason: Refusal::JoinEmpty,
            ..
        }
    ));
    let out = h.advance(30);
    assert!(out.contains(&Output::WrapUpEnded { agent: "A".into() }));
    let (_, out) = h.call("q");
    assert_eq!(rung(&out), ["A"]);
    assert_eq!(
        h.events()
            .iter()
            .filter(|e| e.ends_with("|JOINEMPTY|"))
            .count(),
        4
    );
}

#[test]
fn leavewhenempty_takes_callers_out() {
    let mut config = QueueConfig::new("q", Strategy::RingAll);
    config.leave_when_empty = EmptyConditions::PAUSED;
    let mut h = harness(vec![config]);
    h.login("A", &[("q", 0)]);
    let (c1, _) = h.call("q");
    h.answer(&c1, "A");
    let (c2, _) = h.call("q");
    h.advance(3);
    // A on a call does not empty the queue (inuse is not a condition)...
    assert_eq!(h.acd.waiting(&"q".into()), 1);
    // ...but paused does.
    let out = h.input(Input::Pause {
        agent: "A".into(),
        queue: None,
        reason: String::new(),
    });
    assert!(out.contains(&Output::Left {
        call: c2.clone(),
        reason: Leave::Empty
    }));
    assert!(h.events().contains(&"c2|NONE|EXITEMPTY|1|1|3".to_owned()));
    h.hang_up(&c1);
    assert_eq!(h.acd.active_calls(), 0);
}

#[test]
fn diversion_on_ratio_is_strict() {
    let mut config = QueueConfig::new("q", Strategy::RingAll);
    config.divert_ratio = Some(2.0);
    let mut h = harness(vec![config]);
    // Nobody waiting: accepted even with no agent.
    let (_, out) = h.call("q");
    assert!(matches!(out[0], Output::Position { .. }));
    // Someone waiting, no agent logged in: diverted.
    let (_, out) = h.call("q");
    assert!(matches!(
        out[0],
        Output::Refused {
            reason: Refusal::DivertRatio,
            ..
        }
    ));
    h.login("A", &[("q", 0)]);
    h.input(Input::Pause {
        agent: "A".into(),
        queue: None,
        reason: String::new(),
    });
    // (1 + 1) / 1 = 2: equal, not over.
    let (_, out) = h.call("q");
    assert!(matches!(out[0], Output::Position { position: 2, .. }));
    // (2 + 1) / 1 = 3 > 2.
    let (_, out) = h.call("q");
    assert!(matches!(
        out[0],
        Output::Refused {
            reason: Refusal::DivertRatio,
            ..
        }
    ));
    assert!(h.events().contains(&"c4|NONE|DIVERT_CA_RATIO|".to_owned()));
}

#[test]
fn diversion_on_expected_wait() {
    let mut config = QueueConfig::new("q", Strategy::RingAll);
    config.divert_hold_time = Some(Duration::from_secs(10));
    let mut h = harness(vec![config]);
    h.login("A", &[("q", 0)]);
    h.input(Input::Pause {
        agent: "A".into(),
        queue: None,
        reason: String::new(),
    });
    let (c1, _) = h.call("q");
    h.advance(40);
    h.input(Input::Unpause {
        agent: "A".into(),
        queue: None,
        reason: String::new(),
    });
    h.answer(&c1, "A");
    // EWT = (3 × 0 + 40) / 4 = 10.
    assert_eq!(h.acd.expected_wait(&"q".into()), Duration::from_secs(10));
    h.hang_up(&c1);
    h.input(Input::Pause {
        agent: "A".into(),
        queue: None,
        reason: String::new(),
    });
    // Nobody waiting: accepted whatever the EWT.
    let (c2, _) = h.call("q");
    // EWT equal to the threshold: accepted.
    let (c3, out) = h.call("q");
    assert!(matches!(out[0], Output::Position { position: 2, .. }));
    h.advance(20);
    h.input(Input::Unpause {
        agent: "A".into(),
        queue: None,
        reason: String::new(),
    });
    h.answer(&c2, "A");
    // EWT = (30 + 20) / 4 = 12 > 10, c3 waiting: diverted.
    assert_eq!(h.acd.expected_wait(&"q".into()), Duration::from_secs(12));
    let (_, out) = h.call("q");
    assert!(matches!(
        out[0],
        Output::Refused {
            reason: Refusal::DivertHoldTime,
            ..
        }
    ));
    h.hang_up(&c3);
    assert!(h.events().contains(&"c3|NONE|ABANDON|1|2|20".to_owned()));
}

#[test]
fn full_closed_timeout_and_key() {
    let mut config = QueueConfig::new("q", Strategy::RingAll);
    config.max_len = 1;
    config.timeout = Some(Duration::from_secs(60));
    let mut h = harness(vec![config]);
    let (c1, _) = h.call("q");
    let (_, out) = h.call("q");
    assert!(matches!(
        out[0],
        Output::Refused {
            reason: Refusal::Full,
            ..
        }
    ));
    let out = h.advance(60);
    assert!(out.contains(&Output::Left {
        call: c1,
        reason: Leave::Timeout
    }));
    h.acd.set_closed(&"q".into(), true).unwrap();
    let (_, out) = h.call("q");
    assert!(matches!(
        out[0],
        Output::Refused {
            reason: Refusal::Closed,
            ..
        }
    ));
    h.acd.set_closed(&"q".into(), false).unwrap();
    let (c4, _) = h.call("q");
    h.advance(7);
    h.input(Input::CallerLeftWithKey {
        call: c4,
        key: "5".into(),
    });
    let events = h.events();
    assert_eq!(
        events,
        [
            "c1|NONE|ENTERQUEUE||100|1",
            "c2|NONE|FULL|",
            "c1|NONE|EXITWITHTIMEOUT|1|1|60",
            "c3|NONE|CLOSED|",
            "c4|NONE|ENTERQUEUE||100|1",
            "c4|NONE|EXITWITHKEY|5|1|1|7",
        ]
    );
    assert_eq!(h.acd.active_calls(), 0);
}

#[test]
fn autopause_and_wrap_up_across_queues() {
    let mut q1 = QueueConfig::new("q1", Strategy::RrMemory);
    q1.autopause = true;
    q1.wrap_up = Duration::from_secs(20);
    let q2 = QueueConfig::new("q2", Strategy::RrMemory);
    let mut h = harness(vec![q1, q2]);
    h.login("A", &[("q1", 0), ("q2", 0)]);
    let (c, out) = h.call("q1");
    assert_eq!(rung(&out), ["A"]);
    h.advance(15);
    assert!(h.events().contains(&"NONE|A|PAUSE|Auto-Pause".to_owned()));
    // Paused in q1 only: a q2 caller still gets A.
    let (c2, out) = h.call("q2");
    assert_eq!(rung(&out), ["A"]);
    h.answer(&c2, "A");
    h.hang_up(&c2);
    h.input(Input::Unpause {
        agent: "A".into(),
        queue: Some("q1".into()),
        reason: String::new(),
    });
    // q2 has no wrap-up: A rings at once for the q1 caller after its retry.
    let out = h.advance(5);
    assert_eq!(rung(&out), ["A"]);
    h.answer(&c, "A");
    h.input(Input::AgentHungUp { call: c.clone() });
    assert_eq!(
        h.acd.agent_state(&"A".into(), h.now),
        pbxkit_acd::AgentState::WrapUp
    );
    // q1's wrap-up keeps A from ringing in q2 too.
    let (_, out) = h.call("q2");
    assert!(rung(&out).is_empty());
    assert_eq!(rung(&h.advance(20)), ["A"]);
}

#[test]
fn higher_weight_queue_served_first() {
    let mut hi = QueueConfig::new("hi", Strategy::RingAll);
    hi.weight = 10;
    let lo = QueueConfig::new("lo", Strategy::RingAll);
    let mut h = harness(vec![hi, lo]);
    let (_, _) = h.call("lo");
    let (hi_call, _) = h.call("hi");
    h.acd.add_line("SIP/a");
    h.input(Input::AgentLogin {
        agent: "A".into(),
        channel: "SIP/a".into(),
        queues: vec![("lo".into(), 0), ("hi".into(), 0)],
    });
    let events = h.events();
    assert_eq!(events[2], "NONE|A|AGENTLOGIN|SIP/a");
    // The shared agent rang for the heavier queue's caller only.
    let log_out = h.acd.agent_state(&"A".into(), h.now);
    assert_eq!(log_out, pbxkit_acd::AgentState::Ringing);
    let out = h.answer(&hi_call, "A");
    assert!(out.contains(&Output::Connect {
        call: hi_call,
        agent: "A".into()
    }));
}

/// A seeded simulation: calls in three queues sharing six agents, with random
/// answers, refusals, hang-ups and pauses. Every ENTERQUEUE ends with exactly one
/// terminal event, no agent rings for two calls at once, and the tables empty.
#[test]
fn simulation_invariants() {
    for seed in 0..20_u64 {
        simulate(seed);
    }
}

fn simulate(seed: u64) {
    let strategies = [
        Strategy::RrMemory,
        Strategy::RingAll,
        Strategy::LeastRecent,
        Strategy::WRandom,
        Strategy::Linear,
        Strategy::FewestCalls,
        Strategy::Random,
        Strategy::RrOrdered,
    ];
    let mut rng = SeededRng::new(seed);
    let mut configs = Vec::new();
    for (i, name) in ["q0", "q1", "q2"].iter().enumerate() {
        let mut c = QueueConfig::new(name, strategies[(seed as usize + i) % strategies.len()]);
        c.timeout = Some(Duration::from_secs(120));
        c.wrap_up = Duration::from_secs(u64::from(rng.next_u32() % 10));
        c.autopause = i == 1;
        c.weight = i as u32;
        c.max_len = 6;
        c.leave_when_empty = if i == 2 {
            EmptyConditions::PAUSED
        } else {
            EmptyConditions::NEVER
        };
        configs.push(c);
    }
    let mut h = Harness::with_rng(configs, SeededRng::new(seed ^ 0xABCD));
    let agents: Vec<String> = (0..6).map(|i| format!("Agent/{i}")).collect();
    for (i, a) in agents.iter().enumerate() {
        let queues: Vec<(&str, u32)> = ["q0", "q1", "q2"]
            .iter()
            .enumerate()
            .filter(|(j, _)| (i + j) % 3 != 0)
            .map(|(j, q)| (*q, ((i + j) % 2) as u32))
            .collect();
        h.login(a, &queues);
    }
    let mut ringing: BTreeMap<String, BTreeSet<CallId>> = BTreeMap::new();
    let mut connected: Vec<CallId> = Vec::new();
    let mut live: BTreeSet<CallId> = BTreeSet::new();
    let track = |out: &[Output],
                 ringing: &mut BTreeMap<String, BTreeSet<CallId>>,
                 connected: &mut Vec<CallId>,
                 live: &mut BTreeSet<CallId>| {
        for o in out {
            match o {
                Output::Ring { call, agent } => {
                    let set = ringing.entry(agent.to_string()).or_default();
                    assert!(set.is_empty(), "{agent} rings for {set:?} and {call}");
                    set.insert(call.clone());
                }
                Output::StopRinging { call, agent } | Output::Connect { call, agent } => {
                    ringing.entry(agent.to_string()).or_default().remove(call);
                    if matches!(o, Output::Connect { .. }) {
                        connected.push(call.clone());
                    }
                }
                Output::Refused { call, .. }
                | Output::Left { call, .. }
                | Output::Ended { call } => {
                    live.remove(call);
                }
                _ => {}
            }
        }
    };
    for _ in 0..400 {
        let dice = rng.next_u32() % 100;
        let out = match dice {
            0..=19 => {
                let q = ["q0", "q1", "q2"][(rng.next_u32() % 3) as usize];
                let (call, out) = h.call(q);
                live.insert(call);
                out
            }
            20..=49 => {
                // A ringing member answers or refuses.
                let pick: Vec<(String, CallId)> = ringing
                    .iter()
                    .flat_map(|(a, s)| s.iter().map(move |c| (a.clone(), c.clone())))
                    .collect();
                if pick.is_empty() {
                    continue;
                }
                let (agent, call) = pick[(rng.next_u32() as usize) % pick.len()].clone();
                if rng.next_u32().is_multiple_of(3) {
                    h.input(Input::MemberNoAnswer {
                        call,
                        agent: agent.as_str().into(),
                    })
                } else {
                    h.answer(&call, &agent)
                }
            }
            50..=64 => {
                if connected.is_empty() {
                    continue;
                }
                let call = connected.remove((rng.next_u32() as usize) % connected.len());
                if rng.next_u32().is_multiple_of(2) {
                    h.hang_up(&call)
                } else {
                    h.input(Input::AgentHungUp { call })
                }
            }
            65..=69 => {
                // A waiting caller abandons.
                let waiting: Vec<CallId> = live
                    .iter()
                    .filter(|c| !connected.contains(c))
                    .cloned()
                    .collect();
                if waiting.is_empty() {
                    continue;
                }
                let call = waiting[(rng.next_u32() as usize) % waiting.len()].clone();
                h.hang_up(&call)
            }
            70..=74 => {
                let agent = agents[(rng.next_u32() as usize) % agents.len()].as_str();
                let input = if rng.next_u32().is_multiple_of(2) {
                    Input::Pause {
                        agent: agent.into(),
                        queue: None,
                        reason: "sim".into(),
                    }
                } else {
                    Input::Unpause {
                        agent: agent.into(),
                        queue: None,
                        reason: String::new(),
                    }
                };
                h.input(input)
            }
            _ => {
                let secs = u64::from(rng.next_u32() % 8) + 1;
                h.advance(secs)
            }
        };
        track(&out, &mut ringing, &mut connected, &mut live);
    }
    // Wind down: unpause everyone, answer and hang up until nothing is left.
    for a in &agents {
        let out = h.input(Input::Unpause {
            agent: a.as_str().into(),
            queue: None,
            reason: String::new(),
        });
        track(&out, &mut ringing, &mut connected, &mut live);
    }
    for _ in 0..2000 {
        if h.acd.active_calls() == 0 {
            break;
        }
        let pick: Vec<(String, CallId)> = ringing
            .iter()
            .flat_map(|(a, s)| s.iter().map(move |c| (a.clone(), c.clone())))
            .collect();
        let out = if let Some(call) = connected.pop() {
            h.hang_up(&call)
        } else if let Some((agent, call)) = pick.first().cloned() {
            h.answer(&call, &agent)
        } else {
            h.advance(5)
        };
        track(&out, &mut ringing, &mut connected, &mut live);
    }
    assert_eq!(h.acd.active_calls(), 0, "seed {seed}: calls left");
    assert!(live.is_empty(), "seed {seed}: {live:?}");
    assert!(ringing.values().all(BTreeSet::is_empty));

    let mut entered: BTreeMap<String, usize> = BTreeMap::new();
    let mut terminal: BTreeMap<String, usize> = BTreeMap::new();
    for line in &h.acd.sink().lines {
        if matches!(line.event, Event::EnterQueue { .. }) {
            *entered.entry(line.call_id.clone()).or_default() += 1;
        }
        if line.event.is_terminal() {
            *terminal.entry(line.call_id.clone()).or_default() += 1;
        }
        // Every line we write parses back to itself.
        assert_eq!(
            pbxkit_acd::queue_log::Line::parse(&line.to_string()).as_ref(),
            Ok(line)
        );
    }
    assert!(!entered.is_empty());
    for (call, n) in &entered {
        assert_eq!(*n, 1);
        assert_eq!(
            terminal.get(call),
            Some(&1),
            "seed {seed}: {call} terminals"
        );
    }
    assert_eq!(entered.len(), terminal.len());
}

fn call_with(
    h: &mut Harness<SeededRng>,
    queue: &str,
    options: CallOptions,
) -> (CallId, Vec<Output>) {
    h.next_call += 1;
    let call = CallId(format!("c{}", h.next_call));
    let out = h.input(Input::CallArrived {
        call: call.clone(),
        queue: queue.into(),
        caller_id: "100".into(),
        priority: 0,
        options,
    });
    (call, out)
}

fn penalty_rules(rules: &[&str]) -> PenaltyRules {
    rules
        .iter()
        .map(|r| r.parse())
        .collect::<Result<_, _>>()
        .unwrap()
}

/// queuerules.conf over time: a caller limited to penalty 0 widens to 1 after 10 s
/// (relative `+1`), then is moved to exactly 2 after 30 s (absolute max and min); the
/// engine wakes itself at each rule's time, and an out-of-range member never rings.
#[test]
fn penalty_rules_widen_and_move_the_range_as_the_wait_grows() {
    let mut config = QueueConfig::new("q", Strategy::Linear);
    config.penalty_rules = penalty_rules(&["30,2,2", "10,+1"]);
    let mut h = harness(vec![config]);
    h.login("A", &[("q", 0)]);
    h.login("B", &[("q", 1)]);
    h.login("C", &[("q", 2)]);
    let (c1, out) = h.call("q");
    assert_eq!(rung(&out), ["A"], "no limit: the best penalty");
    h.answer(&c1, "A");
    let mut options = CallOptions::default();
    options.max_penalty = Some(0);
    let (c2, out) = call_with(&mut h, "q", options);
    assert!(rung(&out).is_empty(), "A busy, B and C out of range");
    // The engine asks to be woken at the first rule's time.
    assert_eq!(h.acd.poll_timeout(), Some(h.now + Duration::from_secs(10)));
    assert!(rung(&h.advance(9)).is_empty());
    assert_eq!(rung(&h.advance(1)), ["B"], "10 s: max 0 + 1");
    let out = h.input(Input::MemberNoAnswer {
        call: c2.clone(),
        agent: "B".into(),
    });
    assert!(rung(&out).is_empty(), "C (2) is still out of range");
    assert_eq!(rung(&h.advance(5)), ["B"], "after retry, B again");
    // 30 s: range [2, 2]. B's attempt (from 15 s) runs until 30 s, then retry 5 s.
    let out = h.advance(15);
    assert!(out.contains(&Output::StopRinging {
        call: c2.clone(),
        agent: "B".into()
    }));
    // A becomes free but is below the new minimum.
    h.hang_up(&c1);
    assert_eq!(rung(&h.advance(5)), ["C"]);
    h.answer(&c2, "C");
    assert!(
        h.events().contains(&"c2|C|CONNECT|35|C-leg|0".to_owned()),
        "{:?}",
        h.events()
    );

    // joinempty with the penalty condition judges the caller's own range.
    let mut config = QueueConfig::new("j", Strategy::RingAll);
    config.join_empty = EmptyConditions::PENALTY;
    let mut h = harness(vec![config]);
    h.login("B", &[("j", 1)]);
    let mut options = CallOptions::default();
    options.max_penalty = Some(0);
    let (c, out) = call_with(&mut h, "j", options.clone());
    assert_eq!(
        out,
        [Output::Refused {
            call: c,
            reason: Refusal::JoinEmpty
        }]
    );
    // A rule due at 0 s applies before the check.
    options.penalty_rules = Some(penalty_rules(&["0,+1"]));
    let (_, out) = call_with(&mut h, "j", options);
    assert_eq!(rung(&out), ["B"]);
}

/// XiVO skills routing in the engine: the first rule selecting a logged-in agent
/// wins even when that agent is busy; at WT = 60 the caller widens to the second rule.
/// A caller's own rule set reads its `$variables`.
#[test]
fn skill_rules_widen_when_the_wait_reaches_the_threshold() {
    let mut config = QueueConfig::new("q", Strategy::RrMemory);
    config.skill_rules = Some(RuleSet {
        rules: vec![
            "WT < 60, english > 50".parse().unwrap(),
            "english > 0".parse().unwrap(),
        ],
    });
    let mut h = harness(vec![config]);
    let skills = |pairs: &[(&str, i64)]| -> BTreeMap<String, i64> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    };
    h.acd
        .set_agent_skills("A".into(), skills(&[("english", 75)]));
    h.acd
        .set_agent_skills("B".into(), skills(&[("english", 25)]));
    h.acd
        .set_agent_skills("C".into(), skills(&[("german", 60)]));
    h.login("A", &[("q", 0)]);
    h.login("B", &[("q", 0)]);
    h.login("C", &[("q", 0)]);
    let (c1, out) = h.call("q");
    assert_eq!(rung(&out), ["A"], "rule 1 selects A only");
    h.answer(&c1, "A");
    let (c2, out) = h.call("q");
    assert!(rung(&out).is_empty(), "A is busy; B is not selected yet");
    assert_eq!(h.acd.poll_timeout(), Some(h.now + Duration::from_secs(60)));
    assert!(rung(&h.advance(59)).is_empty());
    assert_eq!(rung(&h.advance(1)), ["B"], "WT = 60: rule 2 selects B");
    h.answer(&c2, "B");

    // The caller's own rule set, with a variable naming the skill.
    let mut options = CallOptions::default();
    options.skill_rules = Some(RuleSet {
        rules: vec!["$lang > 50".parse().unwrap()],
    });
    options.skill_variables = BTreeMap::from([("lang".to_owned(), "german".to_owned())]);
    let (_, out) = call_with(&mut h, "q", options);
    assert_eq!(rung(&out), ["C"]);

    // Nobody selected by any rule (no german speaker free is fine, no rule matches
    // anybody here): the caller waits, and does not block a caller behind it.
    let mut options = CallOptions::default();
    options.skill_rules = Some(RuleSet {
        rules: vec!["spanish > 0".parse().unwrap()],
    });
    h.hang_up(&c1);
    let (c4, out) = call_with(&mut h, "q", options);
    assert!(rung(&out).is_empty());
    let (_, out) = h.call("q");
    assert_eq!(rung(&out), ["A"], "the caller behind gets the free agent");
    // Waiting: c3 and c5 ringing, c4 idle.
    assert_eq!(h.acd.waiting(&"q".into()), 3);
    h.hang_up(&c4);
}

/// XiVO-CC agent login cases: unknown line, already logged on the same line, logged
/// on another line, a line held by another agent (taken over), and logoff.
#[test]
fn agent_login_rules() {
    let mut h = harness(vec![QueueConfig::new("q", Strategy::RingAll)]);
    let login = |h: &mut Harness<SeededRng>, agent: &str, line: &str| {
        let now = h.now;
        h.acd.handle_input(
            now,
            Input::AgentLogin {
                agent: agent.into(),
                channel: line.into(),
                queues: vec![("q".into(), 0)],
            },
        )
    };
    assert_eq!(
        login(&mut h, "A", "1001"),
        Err(AcdError::UnknownLine("1001".into()))
    );
    assert!(h.events().is_empty(), "a refused login logs nothing");
    h.acd.add_line("1001");
    h.acd.add_line("1002");
    assert_eq!(login(&mut h, "A", "1001"), Ok(()));
    assert_eq!(h.acd.line_agent("1001"), Some(&"A".into()));
    // Same line again: stays logged in, nothing new.
    let before = h.events().len();
    assert_eq!(login(&mut h, "A", "1001"), Ok(()));
    assert_eq!(h.events().len(), before);
    // Another line: refused, still on 1001.
    assert_eq!(
        login(&mut h, "A", "1002"),
        Err(AcdError::LoggedInElsewhere {
            agent: "A".into(),
            line: "1001".into(),
            requested: "1002".into()
        })
    );
    assert_eq!(h.acd.line_agent("1001"), Some(&"A".into()));
    assert_eq!(h.acd.line_agent("1002"), None);
    // B asks for A's line: B takes it over, A is logged off.
    assert_eq!(login(&mut h, "B", "1001"), Ok(()));
    assert_eq!(
        h.drain(),
        [Output::AgentLoggedOff {
            agent: "A".into(),
            line: "1001".into()
        }]
    );
    assert_eq!(h.acd.line_agent("1001"), Some(&"B".into()));
    assert_eq!(
        h.acd.agent_state(&"A".into(), h.now),
        pbxkit_acd::AgentState::LoggedOut
    );
    let events = h.events();
    assert_eq!(
        events[before..],
        [
            "NONE|A|REMOVEMEMBER|",
            "NONE|A|AGENTLOGOFF|1001|0",
            "NONE|B|AGENTLOGIN|1001",
            "NONE|B|ADDMEMBER|",
        ]
    );
    // A may now log in on the free line; logoff frees it again.
    assert_eq!(login(&mut h, "A", "1002"), Ok(()));
    h.input(Input::AgentLogoff { agent: "A".into() });
    assert_eq!(h.acd.line_agent("1002"), None);
    let now = h.now;
    assert_eq!(
        h.acd
            .handle_input(now, Input::AgentLogoff { agent: "A".into() }),
        Err(AcdError::NotLoggedIn("A".into()))
    );
    // A login naming an unknown queue changes nothing, not even a takeover.
    let now = h.now;
    assert_eq!(
        h.acd.handle_input(
            now,
            Input::AgentLogin {
                agent: "C".into(),
                channel: "1001".into(),
                queues: vec![("nope".into(), 0)],
            }
        ),
        Err(AcdError::UnknownQueue("nope".into()))
    );
    assert_eq!(h.acd.line_agent("1001"), Some(&"B".into()));
}

/// Live queue gauges and daily counters, agent state times, and the reset.
#[test]
fn live_statistics() {
    let mut config = QueueConfig::new("q", Strategy::RrMemory);
    config.wrap_up = Duration::from_secs(10);
    let mut h = harness(vec![config]);
    h.login("A", &[("q", 0)]);
    h.login("B", &[("q", 0)]);
    let q: pbxkit_acd::QueueId = "q".into();
    h.input(Input::Pause {
        agent: "B".into(),
        queue: None,
        reason: String::new(),
    });
    let (c1, _) = h.call("q");
    h.advance(20);
    let live = h.acd.queue_live(&q, h.now).unwrap();
    assert_eq!(
        (
            live.waiting,
            live.longest_wait,
            live.logged,
            live.available,
            live.talking
        ),
        (1, Duration::from_secs(20), 2, 0, 0),
        "A rings (again, after a timeout and the retry), B paused"
    );
    h.answer(&c1, "A");
    let (c2, _) = h.call("q");
    h.advance(5);
    h.hang_up(&c2);
    h.advance(25);
    h.hang_up(&c1);
    let live = h.acd.queue_live(&q, h.now).unwrap();
    assert_eq!(live.expected_wait, Duration::from_secs(5), "(0 + 20) / 4");
    let c = live.counters;
    assert_eq!(
        (
            c.received,
            c.entered,
            c.answered,
            c.answered_within_sl,
            c.abandoned
        ),
        (2, 2, 1, 0, 1)
    );
    h.acd.set_closed(&q, true).unwrap();
    h.call("q");
    let c = h.acd.queue_live(&q, h.now).unwrap().counters;
    assert_eq!((c.received, c.closed), (3, 1));
    // A: ringing 20 s (ready), on call 30 s, then wrap-up.
    h.advance(4);
    let a = h.acd.agent_live(&"A".into(), h.now).unwrap();
    assert_eq!(a.state, pbxkit_acd::AgentState::WrapUp);
    assert_eq!(a.times.ready, Duration::from_secs(20));
    assert_eq!(a.times.on_call, Duration::from_secs(30));
    assert_eq!(a.times.wrap_up, Duration::from_secs(4));
    // Its first ring timed out after 15 s; the retry at 20 s was answered.
    assert_eq!((a.answered, a.unanswered), (1, 1));
    let b = h.acd.agent_live(&"B".into(), h.now).unwrap();
    assert_eq!(b.times.paused, Duration::from_secs(54));
    // Midnight: counters and times start again; states carry on.
    h.acd.reset_live_stats(h.now);
    h.advance(10);
    let c = h.acd.queue_live(&q, h.now).unwrap().counters;
    assert_eq!(c, pbxkit_acd::live::QueueCounters::default());
    let a = h.acd.agent_live(&"A".into(), h.now).unwrap();
    assert_eq!(a.state, pbxkit_acd::AgentState::Ready);
    assert_eq!(
        (a.times.wrap_up, a.times.ready, a.answered),
        (Duration::from_secs(6), Duration::from_secs(4), 0)
    );
}

/// What the simulated people do next.
#[derive(Debug, Clone)]
enum SimEvent {
    Arrive,
    Answer(CallId, String),
    Reject(CallId, String),
    HangUp(CallId, bool),
    Abandon(CallId, bool),
    Pause,
    Unpause(usize),
    /// Close q0 (its schedule) for a minute.
    Close(bool),
}

/// The simulated people's agenda, in time order (ties in the order scheduled).
#[derive(Default)]
struct Agenda {
    heap: std::collections::BinaryHeap<std::cmp::Reverse<(Instant, u64)>>,
    events: BTreeMap<u64, SimEvent>,
    seq: u64,
}

impl Agenda {
    fn push(&mut self, at: Instant, e: SimEvent) {
        self.seq += 1;
        self.events.insert(self.seq, e);
        self.heap.push(std::cmp::Reverse((at, self.seq)));
    }

    fn peek(&self) -> Option<Instant> {
        self.heap.peek().map(|r| r.0.0)
    }

    fn pop(&mut self) -> Option<SimEvent> {
        let seq = self.heap.pop()?.0.1;
        self.events.remove(&seq)
    }
}

/// A seeded call centre: 20 queues (every strategy, wrap-up, timeouts, autopause,
/// maxlen, joinempty, diversions), 200 agents in 3 queues each with penalties, 10 000
/// calls with random patience, answer delays, refusals, talk times and pauses.
///
/// - No agent rings for two calls at once; every call ends and the tables empty.
/// - Every ENTERQUEUE ends with exactly one terminal event.
/// - The statistics recomputed from the produced `queue_log` (stats::Aggregator)
///   equal the live counters, status by status.
/// - Each agent's state times add up to its time logged in.
/// - No call waits (neither connected nor ringing anybody) while a member of its
///   queue is available for longer than one member timeout (15 s).
#[test]
fn simulation_live_counters_match_the_queue_log() {
    use pbxkit_acd::stats::{Aggregator, StatsConfig};

    const CALLS: usize = 10_000;
    const AGENTS: usize = 200;
    const QUEUES: usize = 20;
    let member_timeout = Duration::from_secs(15);
    let strategies = [
        Strategy::RrMemory,
        Strategy::RingAll,
        Strategy::LeastRecent,
        Strategy::WRandom,
        Strategy::Linear,
        Strategy::FewestCalls,
        Strategy::Random,
        Strategy::RrOrdered,
    ];
    let mut rng = SeededRng::new(2026);
    let mut roll = |n: u32| rng.next_u32() % n;
    let names: Vec<String> = (0..QUEUES).map(|i| format!("q{i}")).collect();
    let mut configs = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let mut c = QueueConfig::new(name, strategies[i % strategies.len()]);
        c.member_timeout = member_timeout;
        c.timeout = Some(Duration::from_secs(60 + u64::from(roll(240))));
        c.wrap_up = Duration::from_secs(u64::from(roll(10)));
        c.autopause = i % 5 == 1;
        c.max_len = if i % 4 == 0 { 8 } else { 0 };
        if i % 7 == 3 {
            let busy = EmptyConditions::PAUSED
                | EmptyConditions::INUSE
                | EmptyConditions::RINGING
                | EmptyConditions::WRAPUP;
            c.join_empty = busy;
            c.leave_when_empty = busy;
        }
        if i % 6 == 2 {
            c.divert_ratio = Some(0.1);
        }
        if i % 9 == 4 {
            c.divert_hold_time = Some(Duration::from_secs(30));
        }
        configs.push(c);
    }
    let mut h = Harness::with_rng(configs, SeededRng::new(7));
    let start = h.now;
    let agents: Vec<String> = (0..AGENTS).map(|i| format!("Agent/{i}")).collect();
    for (i, a) in agents.iter().enumerate() {
        let mut queues: Vec<(&str, u32)> = Vec::new();
        for j in [i % QUEUES, (i * 7 + 3) % QUEUES, (i * 13 + 5) % QUEUES] {
            if !queues.iter().any(|(q, _)| *q == names[j]) {
                queues.push((&names[j], roll(3)));
            }
        }
        h.login(a, &queues);
    }

    let mut agenda = Agenda::default();
    agenda.push(start, SimEvent::Arrive);
    agenda.push(start + Duration::from_secs(20), SimEvent::Pause);
    agenda.push(start + Duration::from_secs(300), SimEvent::Close(true));

    let mut created = 0;
    let mut queue_of: BTreeMap<CallId, usize> = BTreeMap::new();
    let mut live: BTreeSet<CallId> = BTreeSet::new();
    let mut connected: BTreeSet<CallId> = BTreeSet::new();
    let mut ringing_agent: BTreeMap<String, CallId> = BTreeMap::new();
    let mut rings_of: BTreeMap<CallId, usize> = BTreeMap::new();
    let mut idle_since: BTreeMap<CallId, Instant> = BTreeMap::new();
    let mut rng = SeededRng::new(99);
    let mut roll = |n: u32| u64::from(rng.next_u32() % n);

    loop {
        let engine_at = h.acd.poll_timeout();
        let sim_at = agenda.peek();
        let at = match (engine_at, sim_at) {
            (None, None) => break,
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).unwrap(),
        };
        let now = h.now.max(at);
        // The state held from the last step until now: check the idle invariant.
        for (call, since) in &idle_since {
            assert!(
                now.saturating_duration_since(*since) <= member_timeout,
                "{call} waited {:?} in {} with a member available",
                now.saturating_duration_since(*since),
                names[queue_of[call]],
            );
        }
        h.now = now;
        let out = if engine_at.is_some_and(|t| t <= now) {
            h.acd.handle_timeout(now);
            h.drain()
        } else {
            let Some(event) = agenda.pop() else {
                break;
            };
            match event {
                SimEvent::Arrive => {
                    created += 1;
                    let q = roll(QUEUES as u32) as usize;
                    let (call, out) = h.call(&names[q]);
                    queue_of.insert(call.clone(), q);
                    live.insert(call.clone());
                    let patience = Duration::from_secs(5 + roll(400));
                    agenda.push(now + patience, SimEvent::Abandon(call, roll(10) == 0));
                    if created < CALLS {
                        agenda.push(now + Duration::from_millis(roll(2000)), SimEvent::Arrive);
                    }
                    out
                }
                SimEvent::Answer(call, agent) | SimEvent::Reject(call, agent)
                    if ringing_agent.get(&agent) != Some(&call) =>
                {
                    continue;
                }
                SimEvent::Answer(call, agent) => h.answer(&call, &agent),
                SimEvent::Reject(call, agent) => h.input(Input::MemberNoAnswer {
                    call,
                    agent: agent.as_str().into(),
                }),
                SimEvent::HangUp(call, _) if !connected.contains(&call) => continue,
                SimEvent::HangUp(call, by_caller) => {
                    if by_caller {
                        h.hang_up(&call)
                    } else {
                        h.input(Input::AgentHungUp { call })
                    }
                }
                SimEvent::Abandon(call, _)
                    if !live.contains(&call) || connected.contains(&call) =>
                {
                    continue;
                }
                SimEvent::Abandon(call, with_key) => {
                    if with_key {
                        h.input(Input::CallerLeftWithKey {
                            call,
                            key: "1".into(),
                        })
                    } else {
                        h.hang_up(&call)
                    }
                }
                SimEvent::Pause => {
                    let a = roll(AGENTS as u32) as usize;
                    let out = h.input(Input::Pause {
                        agent: agents[a].as_str().into(),
                        queue: None,
                        reason: "break".into(),
                    });
                    agenda.push(
                        now + Duration::from_secs(30 + roll(300)),
                        SimEvent::Unpause(a),
                    );
                    if created < CALLS {
                        agenda.push(now + Duration::from_secs(1 + roll(20)), SimEvent::Pause);
                    }
                    out
                }
                SimEvent::Close(closed) => {
                    h.acd.set_closed(&names[0].as_str().into(), closed).unwrap();
                    if closed {
                        agenda.push(now + Duration::from_secs(60), SimEvent::Close(false));
                    } else if created < CALLS {
                        agenda.push(now + Duration::from_secs(600), SimEvent::Close(true));
                    }
                    Vec::new()
                }
                SimEvent::Unpause(a) => h.input(Input::Unpause {
                    agent: agents[a].as_str().into(),
                    queue: None,
                    reason: String::new(),
                }),
            }
        };
        for o in &out {
            match o {
                Output::Ring { call, agent } => {
                    let previous = ringing_agent.insert(agent.to_string(), call.clone());
                    assert!(
                        previous.is_none(),
                        "{agent} rings for {previous:?} and {call}"
                    );
                    *rings_of.entry(call.clone()).or_default() += 1;
                    let delay = now + Duration::from_secs(roll(22));
                    let e = if roll(7) == 0 {
                        SimEvent::Reject(call.clone(), agent.to_string())
                    } else {
                        SimEvent::Answer(call.clone(), agent.to_string())
                    };
                    agenda.push(delay, e);
                }
                Output::StopRinging { call, agent } | Output::Connect { call, agent } => {
                    assert_eq!(ringing_agent.remove(agent.as_str()).as_ref(), Some(call));
                    if let Some(n) = rings_of.get_mut(call) {
                        *n -= 1;
                    }
                    if matches!(o, Output::Connect { .. }) {
                        connected.insert(call.clone());
                        let talk = Duration::from_secs(20 + roll(280));
                        agenda.push(now + talk, SimEvent::HangUp(call.clone(), roll(2) == 0));
                    }
                }
                Output::Refused { call, .. }
                | Output::Left { call, .. }
                | Output::Ended { call } => {
                    live.remove(call);
                    connected.remove(call);
                    rings_of.remove(call);
                }
                _ => {}
            }
        }
        // The callers now idle (neither connected nor ringing anybody) while a member
        // of their queue is available.
        let mut available: BTreeMap<usize, bool> = BTreeMap::new();
        let mut idle = BTreeSet::new();
        for call in &live {
            if connected.contains(call) || rings_of.get(call).copied().unwrap_or(0) > 0 {
                continue;
            }
            let q = queue_of[call];
            let any = *available.entry(q).or_insert_with(|| {
                let stats = h.acd.queue_live(&names[q].as_str().into(), now).unwrap();
                stats.available > 0
            });
            if any {
                idle.insert(call.clone());
            }
        }
        idle_since.retain(|c, _| idle.contains(c));
        for call in idle {
            idle_since.entry(call).or_insert(now);
        }
    }

    assert_eq!(created, CALLS);
    assert_eq!(h.acd.active_calls(), 0);
    assert!(live.is_empty() && connected.is_empty() && ringing_agent.is_empty());

    // Exactly one terminal event per entered call.
    let lines = &h.acd.sink().lines;
    let mut terminal: BTreeMap<&str, usize> = BTreeMap::new();
    let mut entered = 0;
    for line in lines {
        if matches!(line.event, Event::EnterQueue { .. }) {
            entered += 1;
        }
        if line.event.is_terminal() {
            *terminal.entry(&line.call_id).or_default() += 1;
        }
    }
    assert!(terminal.values().all(|n| *n == 1));

    // The historical statistics of the whole log against the live counters.
    let mut aggregator = Aggregator::new(StatsConfig::default());
    for line in lines {
        aggregator.push(line);
    }
    assert_eq!(aggregator.in_progress(), 0);
    assert_eq!(aggregator.anomalies(), Default::default());
    let mut from_log: BTreeMap<String, [u64; 11]> = BTreeMap::new();
    for p in aggregator.finish() {
        let sum = from_log.entry(p.queue.clone()).or_default();
        let row = [
            p.received,
            p.answered,
            p.answered_within_sl,
            p.abandoned,
            p.timeout,
            p.leaveempty,
            p.closed,
            p.full,
            p.joinempty,
            p.divert_ca_ratio,
            p.divert_waittime,
        ];
        for (s, v) in sum.iter_mut().zip(row) {
            *s += v;
        }
    }
    let mut total = [0_u64; 11];
    let mut total_entered = 0;
    for name in &names {
        let c = h
            .acd
            .queue_live(&name.as_str().into(), h.now)
            .unwrap()
            .counters;
        let live_row = [
            c.received,
            c.answered,
            c.answered_within_sl,
            c.abandoned,
            c.timeout,
            c.leaveempty,
            c.closed,
            c.full,
            c.joinempty,
            c.divert_ca_ratio,
            c.divert_waittime,
        ];
        assert_eq!(
            from_log.get(name).copied().unwrap_or_default(),
            live_row,
            "{name}"
        );
        for (t, v) in total.iter_mut().zip(live_row) {
            *t += v;
        }
        total_entered += c.entered;
    }
    assert_eq!(total[0], CALLS as u64, "every call presented is received");
    assert_eq!(total_entered, entered);
    // The mix is rich enough to mean something.
    assert!(
        total.iter().all(|n| *n > 0),
        "every status occurs: {total:?}"
    );

    // Every agent was logged in the whole run: its state times add up to it.
    let run = h.now.saturating_duration_since(start);
    for a in &agents {
        let s = h.acd.agent_live(&a.as_str().into(), h.now).unwrap();
        let t = s.times;
        assert_eq!(t.ready + t.paused + t.wrap_up + t.on_call, run, "{a}");
    }
}

fn announced(outputs: &[Output]) -> Vec<(String, Option<u32>, Option<Duration>)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Announce {
                call,
                position,
                expected_wait,
            } => Some((call.to_string(), *position, *expected_wait)),
            _ => None,
        })
        .collect()
}

#[test]
fn waiting_callers_are_told_their_position_on_entry_periodically_and_when_they_move_up() {
    let mut config = QueueConfig::new("q", Strategy::RingAll);
    config.announcements = Announcements {
        frequency: Some(Duration::from_secs(30)),
        hold_time: HoldTimeAnnouncement::Once,
        ..Announcements::default()
    };
    let mut h = harness(vec![config]);
    let zero = Some(Duration::ZERO);
    let (c1, out) = h.call("q");
    assert_eq!(announced(&out), [("c1".into(), Some(1), zero)]);
    let (_, out) = h.call("q");
    assert_eq!(announced(&out), [("c2".into(), Some(2), zero)]);
    // Nothing until the frequency, then both, without the hold time said once.
    assert!(announced(&h.advance(29)).is_empty());
    assert_eq!(
        announced(&h.advance(1)),
        [("c1".into(), Some(1), None), ("c2".into(), Some(2), None)]
    );
    // c2 moves up 5 s later: told 15 s after its last announcement, then every 30 s.
    h.advance(5);
    assert!(announced(&h.hang_up(&c1)).is_empty());
    assert!(announced(&h.advance(9)).is_empty());
    assert_eq!(announced(&h.advance(1)), [("c2".into(), Some(1), None)]);
    assert!(announced(&h.advance(29)).is_empty());
    assert_eq!(announced(&h.advance(1)), [("c2".into(), Some(1), None)]);
}

#[test]
fn the_first_caller_is_not_told_while_an_agent_rings_for_it_unless_asked() {
    for to_first in [false, true] {
        let mut config = QueueConfig::new("q", Strategy::RingAll);
        config.announcements = Announcements {
            frequency: Some(Duration::from_secs(20)),
            to_first,
            ..Announcements::default()
        };
        let mut h = harness(vec![config]);
        h.login("A", &[("q", 0)]);
        let (c, out) = h.call("q");
        assert_eq!(rung(&out), ["A"]);
        let told = announced(&out);
        if to_first {
            assert_eq!(told, [(c.to_string(), Some(1), None)]);
        } else {
            assert!(told.is_empty(), "{told:?}");
        }
        // Connected: never again.
        h.answer(&c, "A");
        assert!(announced(&h.advance(60)).is_empty());
    }
}

#[test]
fn announcement_frequencies_past_the_clocks_range_mean_never() {
    let mut config = QueueConfig::new("q", Strategy::RingAll);
    config.announcements = Announcements {
        frequency: Some(Duration::MAX),
        min_frequency: Duration::MAX,
        ..Announcements::default()
    };
    let mut h = harness(vec![config]);
    let (c1, out) = h.call("q");
    assert_eq!(announced(&out), [("c1".into(), Some(1), None)]);
    h.call("q");
    h.hang_up(&c1);
    assert!(announced(&h.advance(3600)).is_empty());
}

#[test]
fn a_queues_settings_change_while_its_callers_and_members_stay() {
    let mut cfg = QueueConfig::new("q", Strategy::RingAll);
    cfg.member_timeout = Duration::from_secs(15);
    let mut h = harness(vec![cfg.clone()]);
    h.login("a", &[("q", 0)]);
    h.login("b", &[("q", 0)]);
    let (first, out) = h.call("q");
    assert_eq!(rung(&out), ["a", "b"]);
    // Reloaded as linear with a 5 s ring: the ringing attempt goes on, the next
    // one follows the new settings.
    cfg.strategy = Strategy::Linear;
    cfg.member_timeout = Duration::from_secs(5);
    h.acd.set_queue_config(cfg.clone()).unwrap();
    assert_eq!(h.acd.waiting(&"q".into()), 1);
    let out = h.advance(15);
    assert!(
        out.iter().any(|o| matches!(o, Output::StopRinging { .. })),
        "{out:?}"
    );
    // Linear now: one member an attempt (where the caller's linpos points),
    // each ringing for the new 5 s.
    let out = h.advance(5);
    let one = rung(&out);
    assert_eq!(one.len(), 1, "{out:?}");
    let out = h.advance(5);
    assert!(
        out.iter().any(|o| matches!(o, Output::StopRinging { .. })),
        "{out:?}"
    );
    let out = h.advance(5);
    let other = rung(&out);
    assert_eq!(other.len(), 1, "{out:?}");
    assert_ne!(one, other, "linear goes on to the next member");
    h.answer(&first, &other[0]);
    let live = h.acd.queue_live(&"q".into(), h.now).unwrap();
    assert_eq!(
        (live.logged, live.counters.entered, live.counters.answered),
        (2, 1, 1)
    );
    // An unknown queue is an error, nothing changes.
    assert!(matches!(
        h.acd
            .set_queue_config(QueueConfig::new("nope", Strategy::RingAll)),
        Err(AcdError::UnknownQueue(_))
    ));
}
