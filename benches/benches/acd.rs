//! `pbxkit-acd`: the dispatch decision of a large call centre, per strategy: 100
//! queues, 1,000 logged-in agents (3 queues each, penalties 0–2) and 1,000 waiting
//! callers (10 per queue). No peer crate implements app_queue's distribution, so each
//! group has pbxkit alone.
//!
//! - `acd/dispatch/<strategy>`: every agent is paused and every caller waits; one
//!   agent unpauses, and the engine decides whom to ring (turns of 1,000 callers,
//!   metrics of the members of the agent's queues) and emits the rings.
//! - `acd/arrival/<strategy>`: the same engine without pauses, the agents ringing for
//!   the first callers; one more caller joins a queue and the engine re-runs dispatch
//!   over all queues.
//! - `acd/dispatch-one-queue/<strategy>`: one queue of the 1,000 agents, 10 callers.
//! - `acd/call-cycle-one-queue/<strategy>`: one queue of the 1,000 agents in the busy
//!   steady state (800 on a call): a call ends, a caller arrives and is answered.
use std::hint::black_box;
use std::time::Instant;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use pbxkit_acd::{Acd, CallOptions, Input, Output, QueueConfig, SeededRng, Strategy};
use pbxkit_benches::acd::{Discard, one_queue};

const QUEUES: usize = 100;
const AGENTS: usize = 1_000;
const CALLS: usize = 1_000;

fn arrive(acd: &mut Acd<Discard, SeededRng>, now: Instant, n: usize) {
    arrive_in(acd, now, n, QUEUES);
}

fn arrive_in(acd: &mut Acd<Discard, SeededRng>, now: Instant, n: usize, queues: usize) {
    acd.handle_input(
        now,
        Input::CallArrived {
            call: format!("call-{n}").as_str().into(),
            queue: format!("q{}", n % queues).as_str().into(),
            caller_id: "0612345678".into(),
            priority: 0,
            options: CallOptions::default(),
        },
    )
    .expect("the queue exists");
}

/// The engine with every agent logged in (paused when `paused`) and every caller
/// waiting, outputs drained.
fn engine(strategy: Strategy, paused: bool) -> (Acd<Discard, SeededRng>, Instant) {
    engine_of(QUEUES, CALLS, strategy, paused)
}

/// The same with `queues` queues (every agent in each when there is one) and
/// `calls` callers.
fn engine_of(
    queues_n: usize,
    calls: usize,
    strategy: Strategy,
    paused: bool,
) -> (Acd<Discard, SeededRng>, Instant) {
    let now = Instant::now();
    let mut acd = Acd::new(Discard, SeededRng::new(1), now, 1_700_000_000);
    for q in 0..queues_n {
        acd.add_queue(QueueConfig::new(&format!("q{q}"), strategy))
            .expect("distinct names");
    }
    for a in 0..AGENTS {
        let line = format!("SIP/{a}");
        acd.add_line(&line);
        let mut queues = Vec::new();
        for q in [
            a % queues_n,
            (a * 7 + 1) % queues_n,
            (a * 13 + 2) % queues_n,
        ] {
            let name = format!("q{q}").as_str().into();
            if !queues.iter().any(|(n, _)| n == &name) {
                queues.push((name, u32::try_from(a % 3).unwrap_or(0)));
            }
        }
        let agent = format!("Agent/{a}").as_str().into();
        acd.handle_input(
            now,
            Input::AgentLogin {
                agent,
                channel: line,
                queues,
            },
        )
        .expect("a new agent on a declared line");
        if paused {
            acd.handle_input(
                now,
                Input::Pause {
                    agent: format!("Agent/{a}").as_str().into(),
                    queue: None,
                    reason: String::new(),
                },
            )
            .expect("logged in");
        }
    }
    for n in 0..calls {
        arrive_in(&mut acd, now, n, queues_n);
    }
    while acd.poll_output().is_some() {}
    (acd, now)
}

/// Agent 0 unpauses: the engine decides whom to ring; its outputs drained.
/// Whether somebody rings.
fn unpause(acd: &mut Acd<Discard, SeededRng>, now: Instant) -> bool {
    acd.handle_input(
        now,
        Input::Unpause {
            agent: black_box("Agent/0".into()),
            queue: None,
            reason: String::new(),
        },
    )
    .expect("logged in");
    let mut rang = false;
    while let Some(o) = acd.poll_output() {
        rang |= matches!(o, Output::Ring { .. });
        black_box(o);
    }
    rang
}

/// Group `name`: per strategy, agent 0 unpausing in the engine `setup` makes.
fn bench_unpause(
    c: &mut Criterion,
    name: &str,
    setup: impl Fn(Strategy) -> (Acd<Discard, SeededRng>, Instant),
) {
    let mut group = c.benchmark_group(name);
    for strategy in Strategy::ALL {
        // Check once that the measured step does ring somebody.
        let (mut acd, now) = setup(strategy);
        assert!(
            unpause(&mut acd, now),
            "{name}/{strategy}: the unpaused agent rings"
        );
        group.bench_function(format!("{strategy}/pbxkit"), |b| {
            b.iter_batched(
                || setup(strategy),
                |(mut acd, now)| {
                    black_box(unpause(&mut acd, now));
                    // Returned so that dropping the engine is not measured.
                    acd
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

fn dispatch(c: &mut Criterion) {
    bench_unpause(c, "acd/dispatch", |strategy| engine(strategy, true));
}

fn arrival(c: &mut Criterion) {
    let mut group = c.benchmark_group("acd/arrival");
    for strategy in Strategy::ALL {
        group.bench_function(format!("{strategy}/pbxkit"), |b| {
            b.iter_batched(
                || engine(strategy, false),
                |(mut acd, now)| {
                    arrive(&mut acd, now, black_box(CALLS));
                    while let Some(o) = acd.poll_output() {
                        black_box(o);
                    }
                    acd
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

/// `acd/dispatch-one-queue/<strategy>`: one queue of all 1,000 agents with 10
/// callers, every agent paused; one unpauses and the engine decides whom to ring
/// over the whole queue (the shape of `scripts/bench-queue`).
fn dispatch_one_queue(c: &mut Criterion) {
    bench_unpause(c, "acd/dispatch-one-queue", |strategy| {
        engine_of(1, 10, strategy, true)
    });
}

/// Connected calls in the steady state of `acd/call-cycle-one-queue`: 800 of the
/// 1,000 agents on a call, as `scripts/bench-queue` at 800 calls/s held 1 s.
const CONNECTED: usize = 800;

/// The steady state of a busy queue: one queue of the 1,000 agents, `CONNECTED`
/// calls connected, the oldest first in `calls`.
struct Cycle {
    acd: Acd<Discard, SeededRng>,
    now: Instant,
    calls: std::collections::VecDeque<pbxkit_acd::CallId>,
    next: usize,
}

impl Cycle {
    fn new(strategy: Strategy) -> Cycle {
        let now = Instant::now();
        let acd = one_queue(strategy, AGENTS, now).expect("one queue, new agents");
        let mut cycle = Cycle {
            acd,
            now,
            calls: std::collections::VecDeque::new(),
            next: 0,
        };
        for _ in 0..CONNECTED {
            cycle.arrive_and_answer();
        }
        cycle
    }

    /// A caller joins; the agent rung for it answers at once. Whether one did.
    fn arrive_and_answer(&mut self) -> bool {
        let call: pbxkit_acd::CallId = format!("call-{}", self.next).as_str().into();
        self.next += 1;
        let arrived = Input::CallArrived {
            call: call.clone(),
            queue: "q0".into(),
            caller_id: "0612345678".into(),
            priority: 0,
            options: CallOptions::default(),
        };
        self.acd
            .handle_input(self.now, arrived)
            .expect("the queue exists");
        let mut rung = None;
        while let Some(o) = self.acd.poll_output() {
            if let Output::Ring { agent, .. } = &o {
                rung.get_or_insert_with(|| agent.clone());
            }
            black_box(o);
        }
        let Some(agent) = rung else {
            return false;
        };
        let answered = Input::MemberAnswered {
            call: call.clone(),
            agent,
            member_uniqueid: "1700000000.1".into(),
        };
        self.acd.handle_input(self.now, answered).expect("rung");
        while let Some(o) = self.acd.poll_output() {
            black_box(o);
        }
        self.calls.push_back(call);
        true
    }

    /// 1.25 ms later (800 calls/s), the oldest call ends and a new one is answered.
    fn step(&mut self) -> bool {
        self.now += std::time::Duration::from_micros(1_250);
        if let Some(call) = self.calls.pop_front() {
            self.acd
                .handle_input(self.now, Input::CallerHungUp { call })
                .expect("connected");
            while let Some(o) = self.acd.poll_output() {
                black_box(o);
            }
        }
        self.arrive_and_answer()
    }
}

/// `acd/call-cycle-one-queue/<strategy>`: the busy steady state of one queue of
/// 1,000 agents with 800 on a call; per iteration, a call ends, a caller arrives,
/// is rung to an agent who answers: three decisions, as the PBX makes them for
/// each call of `scripts/bench-queue`.
fn call_cycle_one_queue(c: &mut Criterion) {
    let mut group = c.benchmark_group("acd/call-cycle-one-queue");
    for strategy in Strategy::ALL {
        let mut cycle = Cycle::new(strategy);
        assert!(cycle.step(), "{strategy}: a free agent is rung and answers");
        group.bench_function(format!("{strategy}/pbxkit"), |b| {
            b.iter(|| black_box(cycle.step()))
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    dispatch,
    arrival,
    dispatch_one_queue,
    call_cycle_one_queue
);
criterion_main!(benches);
