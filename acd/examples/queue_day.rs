//! An ACD queue driven by simulated time: three agents in one `rrmemory` queue with
//! wrap-up take twenty callers arriving over some ten minutes. One agent refuses the
//! first call it is offered and one caller hangs up before anyone can answer.
//!
//! The engine is sans-IO, so the example plays the PBX and the people: it feeds
//! [`Input`]s at hand-advanced `Instant`s (nothing sleeps; seeded, so every run is the
//! same), fires the engine's timers at [`Acd::poll_timeout`] and obeys its [`Output`]s.
//! At the end it prints the `queue_log` and its statistics, and checks the invariants.
//!
//! Run it with `cargo run -p pbxkit-acd --example queue_day`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use pbxkit_acd::queue_log::{Event, Line, MemorySink, parse_lines};
use pbxkit_acd::stats::{self, Period, StatsConfig};
use pbxkit_acd::{Acd, AgentId, CallId, CallOptions, Input, Output, QueueConfig, QueueId};
use pbxkit_acd::{Rng, SeededRng, Strategy};

/// 2023-11-14T22:00:00Z, on an hour boundary: the day fits in one statistics period.
const EPOCH: u64 = 1_699_999_200;
const AGENTS: [(&str, &str); 3] = [
    ("Agent/1001", "SIP/alice"),
    ("Agent/1002", "SIP/bob"),
    ("Agent/1003", "SIP/carol"),
];
/// This agent refuses the first call it is offered (busy with something else).
const REFUSER: &str = "Agent/1003";
const CALLERS: u32 = 20;
/// This caller hangs up after 2 s, sooner than any agent answers (3 to 8 s): one
/// abandon whatever the queue looks like when it arrives. The others wait for ever.
const IMPATIENT: u32 = 8;

/// Something the people around the engine do at a given time.
#[derive(Debug)]
enum Action {
    Arrive(u32),
    /// A rung agent picks up (`true`) or declines.
    React(CallId, AgentId, bool),
    /// The caller (`true`) or the agent hangs up: an abandon while the caller waits,
    /// the end of the conversation once connected.
    HangUp(CallId, bool),
}

/// The world around the engine: what is planned, and what the engine said so far
/// (so that only inputs that still apply are sent: a ring may be cancelled meanwhile).
struct World {
    start: Instant,
    rng: SeededRng,
    /// Actions by time, then by insertion (first in, first out at equal times).
    agenda: BTreeMap<(Instant, u64), Action>,
    seq: u64,
    ringing: BTreeSet<(CallId, AgentId)>,
    refused_once: bool,
}

impl World {
    fn plan(&mut self, at: Instant, action: Action) {
        self.seq += 1;
        self.agenda.insert((at, self.seq), action);
    }

    /// A random duration of `lo..=hi` seconds.
    fn secs(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_secs(lo + u64::from(self.rng.next_u32()) % (hi - lo + 1))
    }

    /// The engine input an action makes at `t`, if it still applies.
    fn input(&mut self, t: Instant, action: Action) -> Option<Input> {
        Some(match action {
            Action::Arrive(n) => {
                let call = CallId(format!("{}.{n}", EPOCH + (t - self.start).as_secs()));
                if n == IMPATIENT {
                    self.plan(
                        t + Duration::from_secs(2),
                        Action::HangUp(call.clone(), true),
                    );
                }
                Input::CallArrived {
                    call,
                    queue: "support".into(),
                    caller_id: format!("06123456{n:02}"),
                    priority: 0,
                    options: CallOptions::default(),
                }
            }
            Action::React(call, agent, _)
                if !self.ringing.contains(&(call.clone(), agent.clone())) =>
            {
                return None;
            }
            Action::React(call, agent, true) => {
                let member_uniqueid = format!("{call}-{agent}");
                Input::MemberAnswered {
                    call,
                    agent,
                    member_uniqueid,
                }
            }
            Action::React(call, agent, false) => Input::MemberNoAnswer { call, agent },
            Action::HangUp(call, true) => Input::CallerHungUp { call },
            Action::HangUp(call, false) => Input::AgentHungUp { call },
        })
    }

    /// Does what the engine says: rung agents react, conversations end later.
    fn obey(&mut self, now: Instant, output: Output) {
        match output {
            Output::Ring { call, agent } => {
                let answer = self.refused_once || agent.as_str() != REFUSER;
                self.refused_once |= !answer;
                let delay = if answer {
                    self.secs(3, 8)
                } else {
                    Duration::from_secs(1)
                };
                self.ringing.insert((call.clone(), agent.clone()));
                self.plan(now + delay, Action::React(call, agent, answer));
            }
            Output::StopRinging { call, agent } => {
                self.ringing.remove(&(call, agent));
            }
            Output::Connect { call, agent } => {
                self.ringing.remove(&(call.clone(), agent));
                let (talk, by_caller) = (self.secs(30, 150), self.rng.next_u32().is_multiple_of(2));
                self.plan(now + talk, Action::HangUp(call, by_caller));
            }
            // Position announcements, call and wrap-up ends: nothing to do here.
            _ => {}
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let start = Instant::now();
    // The engine's generator (random strategies) is not the world's: changing the
    // scenario's dice does not change the engine's.
    let mut acd = Acd::new(MemorySink::new(), SeededRng::new(7), start, EPOCH);
    let queue = QueueId::from("support");
    let mut config = QueueConfig::new("support", Strategy::RrMemory);
    config.wrap_up = Duration::from_secs(10);
    acd.add_queue(config)?;
    for (agent, line) in AGENTS {
        acd.add_line(line);
        let login = Input::AgentLogin {
            agent: agent.into(),
            channel: line.into(),
            queues: vec![(queue.clone(), 0)],
        };
        acd.handle_input(start, login)?;
    }

    let mut world = World {
        start,
        rng: SeededRng::new(2024),
        agenda: BTreeMap::new(),
        seq: 0,
        ringing: BTreeSet::new(),
        refused_once: false,
    };
    let mut at = start;
    for n in 1..=CALLERS {
        at += world.secs(5, 40);
        world.plan(at, Action::Arrive(n));
    }

    // The run loop: whichever comes first, the engine's next timer (ring timeout,
    // retry, wrap-up end) or the world's next action; then obey the outputs.
    let mut now = start;
    // Bounded, should the engine keep setting timers: the checks below then fail.
    for _ in 0..10_000 {
        let next = world.agenda.first_key_value().map(|(&(t, _), _)| t);
        match (next, acd.poll_timeout()) {
            (None, None) => break,
            (next, Some(timer)) if next.is_none_or(|t| timer < t) => {
                now = now.max(timer);
                acd.handle_timeout(now);
            }
            _ => {
                let ((t, _), action) = world.agenda.pop_first().ok_or("empty agenda")?;
                now = t;
                let arrival = matches!(action, Action::Arrive(_));
                if let Some(input) = world.input(t, action) {
                    acd.handle_input(t, input)?;
                }
                if arrival {
                    let live = acd.queue_live(&queue, t).ok_or("no such queue")?;
                    let (at, longest) = ((t - start).as_secs(), live.longest_wait.as_secs());
                    let (waiting, talking, free) = (live.waiting, live.talking, live.available);
                    println!(
                        "+{at:>3} s, a caller arrives: {waiting} waiting (longest {longest:>2} s), {talking} talking, {free} free"
                    );
                }
            }
        }
        while let Some(output) = acd.poll_output() {
            world.obey(now, output);
        }
    }

    let log = acd.sink().to_text();
    println!("\n--- queue_log ---\n{log}--- end of queue_log ---\n");

    // The statistics a reporting job computes from the file: parse it back first.
    let lines = parse_lines(&log).collect::<Result<Vec<_>, _>>()?;
    assert_eq!(lines, acd.sink().lines);
    let config = StatsConfig {
        period: Period::Hour,
        ..StatsConfig::default()
    };
    let [day] = stats::from_lines(&lines, &config)
        .try_into()
        .map_err(|_| "not one period")?;
    let (received, answered, abandoned) = (day.received, day.answered, day.abandoned);
    let (longest, average, sl) = (day.max_wait, day.avg_wait, 100.0 * day.service_level);
    println!(
        "received {received}, answered {answered}, abandoned {abandoned}; wait: longest {longest} s, average {average:.1} s"
    );
    println!(
        "service level: {sl:.0}% ({} answered within {} s)",
        day.answered_within_sl, config.service_level
    );
    for (agent, _) in AGENTS {
        let live = acd.agent_live(&agent.into(), now).ok_or("unknown agent")?;
        let (answered, missed) = (live.answered, live.unanswered);
        let (talk, wrap) = (live.times.on_call.as_secs(), live.times.wrap_up.as_secs());
        println!(
            "{agent}: answered {answered:>2}, refused or missed {missed}, on call {talk:>3} s, wrap-up {wrap:>3} s"
        );
    }

    // Invariants: the example fails loudly if the engine misbehaves.
    check_terminals(&lines)?;
    let all = u64::from(CALLERS);
    assert_eq!(
        (day.received, day.answered, day.abandoned),
        (all, all - 1, 1)
    );
    assert!(
        lines
            .iter()
            .any(|l| l.agent == REFUSER && matches!(l.event, Event::RingNoAnswer { .. }))
    );
    // The engine's live counters agree with the statistics of its log.
    let counters = acd.queue_live(&queue, now).ok_or("no such queue")?.counters;
    assert_eq!(counters.answered_within_sl, day.answered_within_sl);
    assert_eq!(
        (counters.received, counters.abandoned),
        (day.received, day.abandoned)
    );
    assert_eq!(acd.active_calls(), 0, "every call is over");
    assert!(
        world.agenda.is_empty() && acd.poll_timeout().is_none(),
        "the day is over"
    );
    println!("invariants hold");
    Ok(())
}

/// Every caller entered, and each `ENTERQUEUE` has exactly one terminal line.
fn check_terminals(lines: &[Line]) -> Result<(), Box<dyn std::error::Error>> {
    let mut terminals: BTreeMap<&str, u32> = BTreeMap::new();
    for line in lines
        .iter()
        .filter(|l| matches!(l.event, Event::EnterQueue { .. }))
    {
        terminals.insert(&line.call_id, 0);
    }
    for line in lines.iter().filter(|l| l.event.is_terminal()) {
        *terminals
            .get_mut(line.call_id.as_str())
            .ok_or("a terminal line without ENTERQUEUE")? += 1;
    }
    assert_eq!(terminals.len(), CALLERS as usize, "every caller entered");
    assert!(
        terminals.values().all(|&n| n == 1),
        "one terminal line a call: {terminals:?}"
    );
    Ok(())
}

// `cargo test` runs the example too (`test = true` in Cargo.toml): it asserts what
// it shows.
#[test]
fn runs() -> Result<(), Box<dyn std::error::Error>> {
    main()
}
