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
use std::hint::black_box;
use std::time::Instant;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use pbxkit_acd::queue_log::{Line, LineRef};
use pbxkit_acd::{Acd, CallOptions, Input, Output, QueueConfig, SeededRng, Strategy};

const QUEUES: usize = 100;
const AGENTS: usize = 1_000;
const CALLS: usize = 1_000;

/// A sink that drops the `queue_log` lines: the bench measures decisions, not logging.
#[derive(Debug, Default)]
struct Discard;

impl pbxkit_acd::queue_log::Sink for Discard {
    fn write(&mut self, line: Line) {
        black_box(line);
    }

    // The engine writes by reference: dropping the line copies nothing.
    fn write_ref(&mut self, line: LineRef<'_>) {
        black_box(line);
    }
}

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

criterion_group!(benches, dispatch, arrival, dispatch_one_queue);
criterion_main!(benches);
