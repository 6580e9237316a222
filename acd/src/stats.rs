//! Historical queue statistics from a `queue_log` stream, per queue and per period, as
//! XiVO's `stat_queue_periodic`.
//!
//! Every call presented to a queue gets exactly one status and is counted in the
//! period that contains its arrival time (its `ENTERQUEUE`, or the event that turned
//! it away):
//!
//! | status            | event(s)                                  |
//! |-------------------|-------------------------------------------|
//! | `full`            | `FULL`                                    |
//! | `closed`          | `CLOSED`                                  |
//! | `joinempty`       | `JOINEMPTY`                               |
//! | `leaveempty`      | `EXITEMPTY`                               |
//! | `divert_ca_ratio` | `DIVERT_CA_RATIO`                         |
//! | `divert_waittime` | `DIVERT_HOLDTIME`                         |
//! | `answered`        | `CONNECT` (then `COMPLETECALLER`/`COMPLETEAGENT`) |
//! | `abandoned`       | `ABANDON`, `EXITWITHKEY`                  |
//! | `timeout`         | `EXITWITHTIMEOUT`                         |
//!
//! From these, per period: `received` (every status), `answered_rate` =
//! answered / (received − closed), `answered_within_sl` (answered after waiting at
//! most the service-level threshold, 15 s by default, bound included),
//! `service_level` = answered_within_sl / answered, `avg_wait` (the `CONNECT` hold
//! time of answered calls), `max_wait` (among the calls that entered: answered,
//! abandoned, timeout, leaveempty) and `avg_talk` (the `COMPLETECALLER` /
//! `COMPLETEAGENT` call time of answered calls). A ratio or mean whose denominator
//! is 0 is 0.
//!
//! Choices where the rules are silent:
//!
//! - **Calls are counted when they end.** A call is keyed by (call id, queue) and
//!   counted at its terminal event, in the period of its arrival. A call without a
//!   terminal event at the end of the stream (still waiting, or still talking) is not
//!   counted in any period; [`Aggregator::in_progress`] says how many there are.
//! - **Missing `ENTERQUEUE`** (the stream starts in the middle of a call, or the
//!   call was dropped by the memory limit): the call still counts, in the period of
//!   the first of its events that was seen (its `CONNECT`, else its terminal event),
//!   and [`Anomalies::orphans`] counts it.
//! - **Bounded memory**: at most [`StatsConfig::max_open_calls`] calls are tracked
//!   at once; beyond, the oldest open call is forgotten ([`Anomalies::dropped`]).
//!   If its terminal event comes later it counts as an orphan.
//! - A second `ENTERQUEUE` for a call that is still open in the same queue replaces
//!   it; the replaced call is not counted ([`Anomalies::superseded`]).
//! - A call that was connected is answered, whatever its terminal event; its wait is
//!   the `CONNECT` hold time (the `COMPLETE*` hold time without a `CONNECT`). Its
//!   talk time comes from `COMPLETECALLER`/`COMPLETEAGENT`, or from the call time of
//!   Asterisk's `TRANSFER`, `BLINDTRANSFER` and `ATTENDEDTRANSFER`, which also end an
//!   answered call; `avg_talk` averages over the answered calls whose talk time is
//!   known (all of them in a well-formed log).
//! - Waits of calls that left come from the event's `waittime` field, not from time
//!   differences. Events on queue `NONE` and member events are ignored, as are
//!   `RINGNOANSWER` and unknown events.
//! - Only periods in which at least one call is counted are reported.
//!
//! ```
//! use pbxkit_acd::queue_log::parse_lines;
//! use pbxkit_acd::stats::{from_lines, StatsConfig};
//!
//! let log = "\
//! 1700000000|c1|q1|NONE|ENTERQUEUE||0612345678|1
//! 1700000012|c1|q1|Agent/1001|CONNECT|12|c2|3
//! 1700000072|c1|q1|Agent/1001|COMPLETECALLER|12|60|1
//! 1700000005|c3|q1|NONE|CLOSED|
//! ";
//! let lines = parse_lines(log).collect::<Result<Vec<_>, _>>()?;
//! let stats = from_lines(&lines, &StatsConfig::default());
//! assert_eq!(stats.len(), 1);
//! let s = &stats[0];
//! assert_eq!((s.queue.as_str(), s.period_start), ("q1", 1_699_999_200));
//! assert_eq!((s.received, s.answered, s.closed), (2, 1, 1));
//! assert_eq!(s.answered_rate, 1.0);
//! assert_eq!((s.answered_within_sl, s.service_level), (1, 1.0));
//! assert_eq!((s.avg_wait, s.max_wait, s.avg_talk), (12.0, 12, 60.0));
//! # Ok::<(), pbxkit_acd::queue_log::ParseError>(())
//! ```

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::queue_log::{Event, Line};

/// The length of the statistics periods. Periods are aligned on multiples of their
/// length since the Unix epoch (so on UTC quarters, hours and days).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Period {
    /// 15 minutes (XiVO-CC's `stat_queue_periodic`).
    #[default]
    FifteenMinutes,
    /// One hour (XiVO's `stat_queue_periodic`).
    Hour,
    /// One UTC day.
    Day,
}

impl Period {
    /// The period length in seconds.
    pub fn seconds(self) -> u64 {
        match self {
            Self::FifteenMinutes => 15 * 60,
            Self::Hour => 3600,
            Self::Day => 86_400,
        }
    }

    /// The start (epoch seconds) of the period containing `time`.
    pub fn start_of(self, time: u64) -> u64 {
        time - time % self.seconds()
    }
}

/// What the statistics are computed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsConfig {
    /// The period length (15 minutes by default).
    pub period: Period,
    /// The service-level threshold in seconds: an answered call that waited at most
    /// this long counts in `answered_within_sl` (15 by default).
    pub service_level: u64,
    /// At most this many open calls (entered, not yet ended) are tracked; beyond,
    /// the oldest is dropped and counted in [`Anomalies::dropped`] (100 000 by default).
    pub max_open_calls: usize,
}

impl Default for StatsConfig {
    fn default() -> Self {
        Self {
            period: Period::default(),
            service_level: 15,
            max_open_calls: 100_000,
        }
    }
}

/// The statistics of one queue over one period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeriodStats {
    /// The queue name.
    pub queue: String,
    /// The start of the period, epoch seconds (a multiple of the period length).
    pub period_start: u64,
    /// Calls presented to the queue whose arrival falls in the period, every status.
    pub received: u64,
    /// Calls answered by a member (`CONNECT`).
    pub answered: u64,
    /// Calls the caller left while waiting (`ABANDON`, `EXITWITHKEY`).
    pub abandoned: u64,
    /// Calls that reached the queue timeout (`EXITWITHTIMEOUT`).
    pub timeout: u64,
    /// Calls turned away because the queue was closed (`CLOSED`).
    pub closed: u64,
    /// Calls turned away because the queue was full (`FULL`).
    pub full: u64,
    /// Calls turned away because no member could take them (`JOINEMPTY`).
    pub joinempty: u64,
    /// Calls that left because the queue became empty (`EXITEMPTY`).
    pub leaveempty: u64,
    /// Calls diverted on the calls/agents ratio (`DIVERT_CA_RATIO`).
    pub divert_ca_ratio: u64,
    /// Calls diverted on the expected wait time (`DIVERT_HOLDTIME`).
    pub divert_waittime: u64,
    /// Answered calls that waited at most the service-level threshold.
    pub answered_within_sl: u64,
    /// answered / (received − closed), 0 when no call was received outside closing.
    pub answered_rate: f64,
    /// answered_within_sl / answered, 0 when no call was answered.
    pub service_level: f64,
    /// Mean wait of the answered calls in seconds, 0 when none.
    pub avg_wait: f64,
    /// Longest wait in seconds among the calls that entered (answered, abandoned,
    /// timeout, leaveempty), 0 when none.
    pub max_wait: u64,
    /// Mean talk time of the answered calls in seconds, 0 when none.
    pub avg_talk: f64,
}

/// Irregularities met in the stream, counted rather than reported as errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Anomalies {
    /// Open calls forgotten because of [`StatsConfig::max_open_calls`].
    pub dropped: u64,
    /// Calls counted without their `ENTERQUEUE` (in the period of their first seen
    /// event).
    pub orphans: u64,
    /// Open calls replaced by a second `ENTERQUEUE` for the same call and queue (not
    /// counted).
    pub superseded: u64,
}

/// The final status of a call that was not answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Full,
    Closed,
    JoinEmpty,
    LeaveEmpty,
    DivertCaRatio,
    DivertWaitTime,
    Abandoned,
    Timeout,
}

/// The additive counters of one (queue, period), from which [`PeriodStats`] is derived.
#[derive(Debug, Clone, Copy, Default)]
struct Totals {
    received: u64,
    answered: u64,
    abandoned: u64,
    timeout: u64,
    closed: u64,
    full: u64,
    joinempty: u64,
    leaveempty: u64,
    divert_ca_ratio: u64,
    divert_waittime: u64,
    answered_within_sl: u64,
    wait_total: u64,
    max_wait: u64,
    talked: u64,
    talk_total: u64,
}

/// A call that entered (or was first seen) and has not ended yet.
#[derive(Debug, Clone, Copy)]
struct Open {
    /// When it arrived (or was first seen), epoch seconds.
    arrival: u64,
    /// Insertion number, for dropping the oldest.
    seq: u64,
    /// The `CONNECT` hold time, once connected.
    connect_hold: Option<u64>,
    /// Whether its `ENTERQUEUE` was not seen.
    orphan: bool,
}

/// How a call ended, as read from its terminal event.
#[derive(Debug, Clone, Copy)]
enum End {
    /// Answered and over: hold time from the event, talk time if known.
    Talked { hold: u64, talk: Option<u64> },
    /// Left while waiting, after `wait` seconds.
    Left { status: Status, wait: u64 },
}

/// Streaming computation of [`PeriodStats`]: [`push`](Self::push) the lines in log
/// order, then [`finish`](Self::finish).
///
/// Memory: one entry per open call (bounded by [`StatsConfig::max_open_calls`]) and
/// one per (queue, period) with calls.
#[derive(Debug, Clone)]
pub struct Aggregator {
    config: StatsConfig,
    open: HashMap<(String, String), Open>,
    /// Open calls by insertion number, oldest first.
    order: BTreeMap<u64, (String, String)>,
    next_seq: u64,
    periods: BTreeMap<(String, u64), Totals>,
    anomalies: Anomalies,
}

impl Default for Aggregator {
    fn default() -> Self {
        Self::new(StatsConfig::default())
    }
}

impl Aggregator {
    /// An aggregator with this configuration.
    pub fn new(config: StatsConfig) -> Self {
        Self {
            config,
            open: HashMap::new(),
            order: BTreeMap::new(),
            next_seq: 0,
            periods: BTreeMap::new(),
            anomalies: Anomalies::default(),
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &StatsConfig {
        &self.config
    }

    /// Calls entered (or connected) and not ended yet: at [`finish`](Self::finish)
    /// these are not counted.
    pub fn in_progress(&self) -> usize {
        self.open.len()
    }

    /// The irregularities met so far.
    pub fn anomalies(&self) -> Anomalies {
        self.anomalies
    }

    /// Takes one `queue_log` line into account. Lines that are not about calls are
    /// ignored; this never fails.
    pub fn push(&mut self, line: &Line) {
        if line.queue == "NONE" {
            return;
        }
        let turned_away = match &line.event {
            Event::Full => Some(Status::Full),
            Event::Closed => Some(Status::Closed),
            Event::JoinEmpty => Some(Status::JoinEmpty),
            Event::DivertCaRatio => Some(Status::DivertCaRatio),
            Event::DivertHoldTime => Some(Status::DivertWaitTime),
            _ => None,
        };
        if let Some(status) = turned_away {
            self.count(&line.queue, line.time, End::Left { status, wait: 0 }, false);
            return;
        }
        match &line.event {
            Event::EnterQueue { .. } => self.enter(line, false, None),
            Event::Connect { hold_time, .. } => {
                let key = (line.call_id.clone(), line.queue.clone());
                match self.open.get_mut(&key) {
                    Some(open) => {
                        // A second CONNECT (malformed) keeps the first hold time.
                        open.connect_hold.get_or_insert(*hold_time);
                    }
                    None => self.enter(line, true, Some(*hold_time)),
                }
            }
            event => {
                if let Some(end) = terminal(event) {
                    self.end(line, end);
                }
            }
        }
    }

    /// The statistics of every (queue, period) in which a call was counted, sorted by
    /// queue then period. Calls still open are not counted.
    pub fn finish(self) -> Vec<PeriodStats> {
        self.periods
            .into_iter()
            .map(|((queue, period_start), t)| t.stats(queue, period_start))
            .collect()
    }

    /// Opens a call (`ENTERQUEUE`, or a `CONNECT` without one).
    fn enter(&mut self, line: &Line, orphan: bool, connect_hold: Option<u64>) {
        let key = (line.call_id.clone(), line.queue.clone());
        if let Some(old) = self.open.remove(&key) {
            self.order.remove(&old.seq);
            self.anomalies.superseded = self.anomalies.superseded.saturating_add(1);
        }
        if self.config.max_open_calls == 0 {
            self.anomalies.dropped = self.anomalies.dropped.saturating_add(1);
            return;
        }
        while self.open.len() >= self.config.max_open_calls {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.open.remove(&oldest);
            self.anomalies.dropped = self.anomalies.dropped.saturating_add(1);
        }
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        self.order.insert(seq, key.clone());
        self.open.insert(
            key,
            Open {
                arrival: line.time,
                seq,
                connect_hold,
                orphan,
            },
        );
    }

    /// Ends a call on its terminal event and counts it.
    fn end(&mut self, line: &Line, end: End) {
        let key = (line.call_id.clone(), line.queue.clone());
        let (arrival, connect_hold, orphan) = match self.open.remove(&key) {
            Some(open) => {
                self.order.remove(&open.seq);
                (open.arrival, open.connect_hold, open.orphan)
            }
            None => (line.time, None, true),
        };
        let end = match (connect_hold, end) {
            // Connected: answered, whatever the terminal event says.
            (Some(hold), End::Talked { talk, .. }) => End::Talked { hold, talk },
            (Some(hold), End::Left { .. }) => End::Talked { hold, talk: None },
            (None, end) => end,
        };
        let (_, queue) = key;
        self.count(&queue, arrival, end, orphan);
    }

    /// Counts one call that arrived at `arrival`.
    fn count(&mut self, queue: &str, arrival: u64, end: End, orphan: bool) {
        if orphan {
            self.anomalies.orphans = self.anomalies.orphans.saturating_add(1);
        }
        let period_start = self.config.period.start_of(arrival);
        let sl = self.config.service_level;
        let totals = self
            .periods
            .entry((queue.to_owned(), period_start))
            .or_default();
        totals.add(end, sl);
    }
}

/// How a terminal event ends a call, or `None` for other events.
fn terminal(event: &Event) -> Option<End> {
    Some(match event {
        Event::CompleteCaller {
            hold_time,
            call_time,
            ..
        }
        | Event::CompleteAgent {
            hold_time,
            call_time,
            ..
        } => End::Talked {
            hold: *hold_time,
            talk: Some(*call_time),
        },
        Event::Abandon(exit) | Event::ExitWithKey { exit, .. } => End::Left {
            status: Status::Abandoned,
            wait: exit.wait_time,
        },
        Event::ExitWithTimeout(exit) => End::Left {
            status: Status::Timeout,
            wait: exit.wait_time,
        },
        Event::ExitEmpty(exit) => End::Left {
            status: Status::LeaveEmpty,
            wait: exit.wait_time,
        },
        Event::Other { name, data }
            if matches!(
                name.as_str(),
                "TRANSFER" | "BLINDTRANSFER" | "ATTENDEDTRANSFER"
            ) =>
        {
            // `...|holdtime|calltime|origposition`: the fields before them vary
            // (extension|context, or the attended-transfer method and its data).
            let number = |back: usize| {
                data.len()
                    .checked_sub(back)
                    .and_then(|i| data.get(i))
                    .and_then(|s| s.parse::<u64>().ok())
            };
            End::Talked {
                hold: number(3).unwrap_or(0),
                talk: number(2),
            }
        }
        _ => return None,
    })
}

impl Totals {
    fn add(&mut self, end: End, sl: u64) {
        fn inc(n: &mut u64) {
            *n = n.saturating_add(1);
        }
        inc(&mut self.received);
        match end {
            End::Talked { hold, talk } => {
                inc(&mut self.answered);
                if hold <= sl {
                    inc(&mut self.answered_within_sl);
                }
                self.wait_total = self.wait_total.saturating_add(hold);
                self.max_wait = self.max_wait.max(hold);
                if let Some(talk) = talk {
                    inc(&mut self.talked);
                    self.talk_total = self.talk_total.saturating_add(talk);
                }
            }
            End::Left { status, wait } => {
                let counter = match status {
                    Status::Full => &mut self.full,
                    Status::Closed => &mut self.closed,
                    Status::JoinEmpty => &mut self.joinempty,
                    Status::DivertCaRatio => &mut self.divert_ca_ratio,
                    Status::DivertWaitTime => &mut self.divert_waittime,
                    Status::LeaveEmpty => &mut self.leaveempty,
                    Status::Abandoned => &mut self.abandoned,
                    Status::Timeout => &mut self.timeout,
                };
                inc(counter);
                if matches!(
                    status,
                    Status::LeaveEmpty | Status::Abandoned | Status::Timeout
                ) {
                    self.max_wait = self.max_wait.max(wait);
                }
            }
        }
    }

    fn stats(self, queue: String, period_start: u64) -> PeriodStats {
        PeriodStats {
            queue,
            period_start,
            received: self.received,
            answered: self.answered,
            abandoned: self.abandoned,
            timeout: self.timeout,
            closed: self.closed,
            full: self.full,
            joinempty: self.joinempty,
            leaveempty: self.leaveempty,
            divert_ca_ratio: self.divert_ca_ratio,
            divert_waittime: self.divert_waittime,
            answered_within_sl: self.answered_within_sl,
            answered_rate: ratio(self.answered, self.received.saturating_sub(self.closed)),
            service_level: ratio(self.answered_within_sl, self.answered),
            avg_wait: ratio(self.wait_total, self.answered),
            max_wait: self.max_wait,
            avg_talk: ratio(self.talk_total, self.talked),
        }
    }
}

/// `n / d`, 0 when `d` is 0.
fn ratio(n: u64, d: u64) -> f64 {
    if d == 0 { 0.0 } else { n as f64 / d as f64 }
}

/// The statistics of a whole stream of lines (owned or borrowed): [`Aggregator::push`]
/// each, then [`Aggregator::finish`].
pub fn from_lines<I>(lines: I, config: &StatsConfig) -> Vec<PeriodStats>
where
    I: IntoIterator,
    I::Item: Borrow<Line>,
{
    let mut aggregator = Aggregator::new(config.clone());
    for line in lines {
        aggregator.push(line.borrow());
    }
    aggregator.finish()
}
