//! The engine against app_queue's choices on fixed inputs: strategies, penalties,
//! joinempty/leavewhenempty, diversions, timers, and a seeded simulation.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use pbxkit_acd::queue_log::{Event, MemorySink};
use pbxkit_acd::{
    Acd, CallId, DeviceState, EmptyConditions, Input, Leave, Output, QueueConfig, Refusal, Rng,
    SeededRng, Strategy,
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
