//! What each kind of ACD decision costs with cold caches, as inside the PBX where
//! the SIP work between two decisions evicts the engine's tables (criterion's
//! `acd/call-cycle-one-queue` runs them back to back, warm).
//!
//! One queue of 1,000 agents (`rrmemory`, penalty 0), 800 calls connected; per
//! step (1.25 ms of simulated time, 800 calls/s) the oldest call ends, a caller
//! arrives and the agent rung answers. Before each decision a buffer of
//! `EVICT_KB` (default 4,096 KiB; 0 for warm caches) is written through. Prints
//! the median and p90 of arrivals, answers and hang-ups, and the median of all:
//! the figure `pbxkit acd live` reports from the PBX.
//!
//!   cargo run --release -p pbxkit-benches --example acd_cold [EVICT_KB]
use std::collections::VecDeque;
use std::hint::black_box;
use std::time::{Duration, Instant};

use pbxkit_acd::{Acd, CallId, CallOptions, Input, Output, SeededRng, Strategy};
use pbxkit_benches::acd::{Discard, one_queue};

const AGENTS: usize = 1_000;
const CONNECTED: usize = 800;
const STEPS: usize = 20_000;
/// Steps before the measured ones: the queue reaches its steady state.
const WARM_UP: usize = 2_000;

/// Writes one byte per cache line of `buffer`.
fn evict(buffer: &mut [u8]) {
    for b in buffer.iter_mut().step_by(64) {
        *b = b.wrapping_add(1);
    }
    black_box(buffer);
}

/// Runs `input` with cold caches; how long the decision took, outputs drained
/// into `outputs`.
fn decide(
    acd: &mut Acd<Discard, SeededRng>,
    buffer: &mut [u8],
    now: Instant,
    input: Input,
    outputs: &mut Vec<Output>,
) -> Result<Duration, pbxkit_acd::AcdError> {
    evict(buffer);
    let start = Instant::now();
    acd.handle_input(now, input)?;
    let took = start.elapsed();
    outputs.clear();
    outputs.extend(std::iter::from_fn(|| acd.poll_output()));
    Ok(took)
}

fn report(name: &str, times: &mut [Duration]) {
    times.sort_unstable();
    let at = |q: usize| {
        times
            .get(times.len() * q / 100)
            .copied()
            .unwrap_or_default()
    };
    println!("{name}: median {:.1?}, p90 {:.1?}", at(50), at(90));
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let evict_kb: usize = match std::env::args().nth(1) {
        Some(kb) => kb.parse()?,
        None => 4_096,
    };
    let bytes = evict_kb.checked_mul(1024).ok_or("EVICT_KB is too large")?;
    let mut buffer = vec![0_u8; bytes];
    let mut now = Instant::now();
    let mut acd = one_queue(Strategy::RrMemory, AGENTS, now)?;
    let mut connected: VecDeque<CallId> = VecDeque::new();
    let mut outputs = Vec::new();
    let (mut arrivals, mut answers, mut hang_ups) = (Vec::new(), Vec::new(), Vec::new());
    for step in 0..STEPS {
        let measured = step >= WARM_UP;
        now += Duration::from_micros(1_250);
        if connected.len() >= CONNECTED
            && let Some(call) = connected.pop_front()
        {
            let took = decide(
                &mut acd,
                &mut buffer,
                now,
                Input::CallerHungUp { call },
                &mut outputs,
            )?;
            if measured {
                hang_ups.push(took);
            }
        }
        // Uniqueids as the PBX mints them.
        let call: CallId = format!("1733580000.{step}").as_str().into();
        let arrived = Input::CallArrived {
            call: call.clone(),
            queue: "q0".into(),
            caller_id: "0612345678".into(),
            priority: 0,
            options: CallOptions::default(),
        };
        let took = decide(&mut acd, &mut buffer, now, arrived, &mut outputs)?;
        let rung = outputs.iter().find_map(|o| match o {
            Output::Ring { agent, .. } => Some(agent.clone()),
            _ => None,
        });
        let agent = rung.ok_or("a free agent is rung")?;
        let answered = Input::MemberAnswered {
            call: call.clone(),
            agent,
            member_uniqueid: "1733580000.0".into(),
        };
        let took_answer = decide(&mut acd, &mut buffer, now, answered, &mut outputs)?;
        if measured {
            arrivals.push(took);
            answers.push(took_answer);
        }
        connected.push_back(call);
    }
    let mut all: Vec<Duration> = [&arrivals, &answers, &hang_ups]
        .into_iter()
        .flatten()
        .copied()
        .collect();
    println!(
        "{AGENTS} agents, {CONNECTED} calls connected, {evict_kb} KiB evicted before each decision"
    );
    report("arrival (rings an agent)", &mut arrivals);
    report("answer", &mut answers);
    report("hang-up", &mut hang_ups);
    report("all decisions", &mut all);
    Ok(())
}
