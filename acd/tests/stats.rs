//! Queue statistics from `queue_log` text: every status, period boundaries, the
//! service-level bound, zero denominators, the memory limit, and hourly/daily
//! periods equal to the sum of the quarter-hours on random well-formed streams.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use pbxkit_acd::queue_log::{Event, Exit, Line, parse_lines};
use pbxkit_acd::stats::{Aggregator, Anomalies, Period, PeriodStats, StatsConfig, from_lines};
use proptest::prelude::*;

/// 2024-01-15 09:00:00 UTC.
const T: u64 = 1_705_309_200;

/// A hand-written log, `+N` meaning `T + N` seconds; in time order as Asterisk writes.
const LOG: &str = "\
+0|NONE|NONE|Agent/1001|AGENTLOGIN|SIP/alice
+0|NONE|support|Agent/1001|ADDMEMBER|
+10|c1|support|NONE|ENTERQUEUE||0611111111|1
+22|c1|support|Agent/1001|RINGNOANSWER|2000
+25|c1|support|Agent/1001|CONNECT|15|m1|3
+85|c1|support|Agent/1001|COMPLETECALLER|15|60|1
+100|c3|support|NONE|ENTERQUEUE||0633333333|1
+120|c3|support|NONE|ABANDON|1|1|20
+200|c4|support|NONE|ENTERQUEUE||0644444444|1
+205|c4|support|NONE|EXITWITHKEY|5|1|1|5
+300|c5|support|NONE|ENTERQUEUE||0655555555|1
+360|c5|support|NONE|EXITWITHTIMEOUT|1|1|60
+400|c6|support|NONE|ENTERQUEUE||0666666666|1
+403|c6|support|NONE|EXITEMPTY|1|1|3
+500|c7|support|NONE|FULL|
+501|c8|support|NONE|CLOSED|
+502|c9|support|NONE|JOINEMPTY|
+503|c10|support|NONE|DIVERT_CA_RATIO|
+504|c11|support|NONE|DIVERT_HOLDTIME|
+510|s1|sales|NONE|CLOSED|
+511|s2|sales|NONE|CLOSED|
+600|c12|support|NONE|ENTERQUEUE||0612121212|1
+616|c12|support|Agent/1001|CONNECT|16|m12|2
+700|c12|support|Agent/1001|COMPLETEAGENT|16|84|1
+700|c12|support|Agent/1001|WRAPUPSTART|30
+899|c2|support|NONE|ENTERQUEUE||0622222222|1
+900|c13|support|NONE|ENTERQUEUE||0613131313|2
+910|c13|support|NONE|ABANDON|2|2|10
+930|c2|support|Agent/1001|CONNECT|31|m2|1
+950|c14|support|NONE|ENTERQUEUE||0614141414|1
+1030|c2|support|Agent/1001|COMPLETEAGENT|31|100|1
+1500|s3|sales|NONE|ENTERQUEUE||0615151515|1
+1504|s3|sales|Agent/1002|CONNECT|4|m3|4
+2000|s20|sales|Agent/1002|COMPLETECALLER|5|30|1
";

fn lines(log: &str) -> Vec<Line> {
    let text: String = log
        .lines()
        .map(|l| {
            let (offset, rest) = l.split_once('|').unwrap();
            let offset: u64 = offset.trim_start_matches('+').parse().unwrap();
            format!("{}|{rest}\n", T + offset)
        })
        .collect();
    parse_lines(&text).collect::<Result<_, _>>().unwrap()
}

fn find<'a>(stats: &'a [PeriodStats], queue: &str, start: u64) -> &'a PeriodStats {
    stats
        .iter()
        .find(|s| s.queue == queue && s.period_start == start)
        .unwrap_or_else(|| panic!("no {queue} period at {start}: {stats:#?}"))
}

fn empty(queue: &str, period_start: u64) -> PeriodStats {
    PeriodStats {
        queue: queue.into(),
        period_start,
        received: 0,
        answered: 0,
        abandoned: 0,
        timeout: 0,
        closed: 0,
        full: 0,
        joinempty: 0,
        leaveempty: 0,
        divert_ca_ratio: 0,
        divert_waittime: 0,
        answered_within_sl: 0,
        answered_rate: 0.0,
        service_level: 0.0,
        avg_wait: 0.0,
        max_wait: 0,
        avg_talk: 0.0,
    }
}

#[test]
fn every_status_in_its_arrival_period() {
    let mut agg = Aggregator::new(StatsConfig::default());
    for line in lines(LOG) {
        agg.push(&line);
    }
    // c14 still waits and s3 still talks: not counted.
    assert_eq!(agg.in_progress(), 2);
    assert_eq!(
        agg.anomalies(),
        Anomalies {
            orphans: 1,
            ..Anomalies::default()
        }
    );
    let stats = agg.finish();
    let keys: Vec<_> = stats
        .iter()
        .map(|s| (s.queue.as_str(), s.period_start))
        .collect();
    assert_eq!(
        keys,
        [
            ("sales", T),
            ("sales", T + 1800),
            ("support", T),
            ("support", T + 900)
        ],
        "sorted by queue then period"
    );

    // c2 entered at 09:14:59 and was answered at 09:15:30: it counts at 09:00.
    assert_eq!(
        *find(&stats, "support", T),
        PeriodStats {
            received: 12,
            answered: 3,
            abandoned: 2,
            timeout: 1,
            closed: 1,
            full: 1,
            joinempty: 1,
            leaveempty: 1,
            divert_ca_ratio: 1,
            divert_waittime: 1,
            // c1 waited exactly 15 s; c12 (16 s) and c2 (31 s) did not make it.
            answered_within_sl: 1,
            answered_rate: 3.0 / 11.0,
            service_level: 1.0 / 3.0,
            avg_wait: (15.0 + 16.0 + 31.0) / 3.0,
            // The timeout's 60 s, longer than any answered call's wait.
            max_wait: 60,
            avg_talk: (60.0 + 84.0 + 100.0) / 3.0,
            ..empty("support", T)
        }
    );
    // c13 entered exactly at 09:15:00.
    assert_eq!(
        *find(&stats, "support", T + 900),
        PeriodStats {
            received: 1,
            abandoned: 1,
            answered_rate: 0.0,
            max_wait: 10,
            ..empty("support", T + 900)
        }
    );
    // Only closed calls: received − closed = 0 and answered = 0, every ratio is 0.
    assert_eq!(
        *find(&stats, "sales", T),
        PeriodStats {
            received: 2,
            closed: 2,
            ..empty("sales", T)
        }
    );
    // A COMPLETECALLER without ENTERQUEUE or CONNECT counts in its own period.
    assert_eq!(
        *find(&stats, "sales", T + 1800),
        PeriodStats {
            received: 1,
            answered: 1,
            answered_within_sl: 1,
            answered_rate: 1.0,
            service_level: 1.0,
            avg_wait: 5.0,
            max_wait: 5,
            avg_talk: 30.0,
            ..empty("sales", T + 1800)
        }
    );
}

#[test]
fn service_level_threshold_is_configurable_and_inclusive() {
    let config = StatsConfig {
        service_level: 16,
        ..StatsConfig::default()
    };
    let stats = from_lines(lines(LOG), &config);
    let s = find(&stats, "support", T);
    assert_eq!(s.answered_within_sl, 2);
    assert_eq!(s.service_level, 2.0 / 3.0);
    let config = StatsConfig {
        service_level: 14,
        ..StatsConfig::default()
    };
    let stats = from_lines(lines(LOG).iter(), &config);
    assert_eq!(find(&stats, "support", T).answered_within_sl, 0);
    assert_eq!(find(&stats, "support", T).service_level, 0.0);
}

#[test]
fn hourly_and_daily_periods() {
    let all = lines(LOG);
    let hourly = from_lines(
        &all,
        &StatsConfig {
            period: Period::Hour,
            ..StatsConfig::default()
        },
    );
    assert_eq!(hourly.len(), 2);
    let support = find(&hourly, "support", T);
    assert_eq!((support.received, support.abandoned), (13, 3));
    assert_eq!(support.answered_rate, 3.0 / 12.0);
    let sales = find(&hourly, "sales", T);
    assert_eq!((sales.received, sales.closed, sales.answered), (3, 2, 1));
    assert_eq!(sales.answered_rate, 1.0);

    let daily = from_lines(
        &all,
        &StatsConfig {
            period: Period::Day,
            ..StatsConfig::default()
        },
    );
    // 2024-01-15 00:00 UTC.
    let midnight = T - 9 * 3600;
    assert_eq!(Period::Day.start_of(T + 2000), midnight);
    assert_eq!(find(&daily, "support", midnight).received, 13);
}

#[test]
fn serializes_exactly_the_documented_fields() {
    let stats = from_lines(lines(LOG), &StatsConfig::default());
    let json = serde_json::to_value(&stats[0]).unwrap();
    let keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut expected = [
        "queue",
        "period_start",
        "received",
        "answered",
        "abandoned",
        "timeout",
        "closed",
        "full",
        "joinempty",
        "leaveempty",
        "divert_ca_ratio",
        "divert_waittime",
        "answered_within_sl",
        "answered_rate",
        "service_level",
        "avg_wait",
        "max_wait",
        "avg_talk",
    ];
    expected.sort_unstable();
    let mut keys = keys;
    keys.sort_unstable();
    assert_eq!(keys, expected);
    assert_eq!(json["queue"], "sales");
    assert_eq!(json["period_start"], T);
    assert!(json["answered_rate"].is_f64());
}

#[test]
fn open_calls_are_bounded() {
    let log = "\
+0|a|q|NONE|ENTERQUEUE||1|1
+1|b|q|NONE|ENTERQUEUE||2|2
+1000|c|q|NONE|ENTERQUEUE||3|3
+1001|a|q|NONE|ABANDON|1|1|1001
+1002|b|q|NONE|ABANDON|1|2|1001
+1003|c|q|NONE|ABANDON|1|3|3
";
    let mut agg = Aggregator::new(StatsConfig {
        max_open_calls: 2,
        ..StatsConfig::default()
    });
    for line in lines(log) {
        agg.push(&line);
    }
    assert_eq!(agg.in_progress(), 0);
    assert_eq!(
        agg.anomalies(),
        Anomalies {
            dropped: 1,
            orphans: 1,
            superseded: 0
        }
    );
    let stats = agg.finish();
    // `a` was forgotten when `c` entered: its ABANDON counts where it was logged.
    assert_eq!(find(&stats, "q", T).abandoned, 1);
    assert_eq!(find(&stats, "q", T + 900).abandoned, 2);
    assert_eq!(stats.iter().map(|s| s.received).sum::<u64>(), 3);

    // A limit of 0 tracks nothing: every terminal event is an orphan.
    let mut agg = Aggregator::new(StatsConfig {
        max_open_calls: 0,
        ..StatsConfig::default()
    });
    for line in lines(log) {
        agg.push(&line);
    }
    assert_eq!(agg.anomalies().dropped, 3);
    assert_eq!(agg.anomalies().orphans, 3);
    assert_eq!(agg.in_progress(), 0);
}

#[test]
fn irregular_streams() {
    let log = "\
+0|a|q|NONE|ENTERQUEUE||1|1
+5|a|q|NONE|ENTERQUEUE||1|1
+950|a|q|A|CONNECT|950|m|1
+960|a|q|A|CONNECT|1|m|1
+970|a|q|NONE|ABANDON|1|1|970
+980|a|other|NONE|ABANDON|1|1|3
+990|b|q|A|CONNECT|7|m|1
+999|b|q|A|ATTENDEDTRANSFER|BRIDGE|1234-5678|7|9|1
+1000|c|q|NONE|ENTERQUEUE||1|1
+1002|c|q|A|CONNECT|2|m|1
+1010|c|q|A|BLINDTRANSFER|200|default|2|8|1
+1020|d|q|NONE|ENTERQUEUE||1|1
+1022|d|q|A|CONNECT|2|m|1
+1030|d|q|A|TRANSFER|200|default|x|x|1
+1040|e|NONE|NONE|FULL|
";
    let mut agg = Aggregator::default();
    for line in lines(log) {
        agg.push(&line);
    }
    assert_eq!(
        agg.anomalies(),
        Anomalies {
            dropped: 0,
            orphans: 2,
            superseded: 1
        }
    );
    let stats = agg.finish();
    // `a` re-entered at +5: only the second entry counts, answered (a CONNECT wins
    // over the malformed ABANDON) with the first CONNECT's hold time and no talk time.
    let q0 = find(&stats, "q", T);
    assert_eq!((q0.received, q0.answered, q0.max_wait), (1, 1, 950));
    assert_eq!((q0.avg_wait, q0.avg_talk), (950.0, 0.0));
    // `a` in another queue is another call, without ENTERQUEUE.
    assert_eq!(find(&stats, "other", T + 900).abandoned, 1);
    // Transfers end answered calls; `b` was first seen at its CONNECT.
    let q1 = find(&stats, "q", T + 900);
    assert_eq!((q1.received, q1.answered), (3, 3));
    assert_eq!(q1.avg_wait, (7.0 + 2.0 + 2.0) / 3.0);
    // `d`'s call time does not parse: the mean is over the two known ones.
    assert_eq!(q1.avg_talk, (9.0 + 8.0) / 2.0);
    assert!(stats.iter().all(|s| s.queue != "NONE"));
}

/// One well-formed call of a generated stream.
#[derive(Debug, Clone)]
enum Call {
    TurnedAway(Event),
    Left { event: u8, wait: u64 },
    Answered { wait: u64, talk: u64 },
}

fn call() -> impl Strategy<Value = (u8, u64, Call)> {
    let turned_away = prop_oneof![
        Just(Event::Full),
        Just(Event::Closed),
        Just(Event::JoinEmpty),
        Just(Event::DivertCaRatio),
        Just(Event::DivertHoldTime),
    ]
    .prop_map(Call::TurnedAway);
    let left = (0u8..4, 0u64..400).prop_map(|(event, wait)| Call::Left { event, wait });
    let answered = (0u64..120, 0u64..2000).prop_map(|(wait, talk)| Call::Answered { wait, talk });
    (
        0u8..3,
        0u64..3 * 86_400,
        prop_oneof![turned_away, left, answered],
    )
}

/// The lines of the calls, sorted by time (ties keep the call's own order).
fn stream(calls: &[(u8, u64, Call)]) -> Vec<Line> {
    let mut out: Vec<(u64, usize, Line)> = Vec::new();
    for (i, (queue, arrival, call)) in calls.iter().enumerate() {
        let line = |time: u64, agent: &str, event: Event| Line {
            time: T + time,
            call_id: format!("{i}"),
            queue: format!("q{queue}"),
            agent: agent.into(),
            event,
        };
        let enter = Event::EnterQueue {
            url: String::new(),
            caller_id: "0600000000".into(),
            position: 1,
            caller_name: None,
        };
        let exit = |wait| Exit {
            position: 1,
            original_position: 1,
            wait_time: wait,
        };
        let mut push = |time, event| out.push((time, out.len(), line(time, "NONE", event)));
        match call {
            Call::TurnedAway(event) => push(*arrival, event.clone()),
            Call::Left { event, wait } => {
                push(*arrival, enter);
                let end = match event {
                    0 => Event::Abandon(exit(*wait)),
                    1 => Event::ExitWithKey {
                        key: "1".into(),
                        exit: exit(*wait),
                    },
                    2 => Event::ExitWithTimeout(exit(*wait)),
                    _ => Event::ExitEmpty(exit(*wait)),
                };
                push(arrival + wait, end);
            }
            Call::Answered { wait, talk } => {
                push(*arrival, enter);
                push(
                    arrival + wait,
                    Event::Connect {
                        hold_time: *wait,
                        member_uniqueid: "m".into(),
                        ring_time: 1,
                    },
                );
                push(
                    arrival + wait + talk,
                    Event::CompleteAgent {
                        hold_time: *wait,
                        call_time: *talk,
                        original_position: 1,
                    },
                );
            }
        }
    }
    out.sort_by_key(|(time, seq, _)| (*time, *seq));
    out.into_iter().map(|(_, _, line)| line).collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// The coarse periods' stats, rebuilt from the fine ones.
fn roll_up(fine: &[PeriodStats], period: Period) -> Vec<PeriodStats> {
    let mut out: Vec<PeriodStats> = Vec::new();
    let mut sums: Vec<(f64, f64, u64)> = Vec::new(); // wait total, talk total, talked
    for s in fine {
        let start = period.start_of(s.period_start);
        if out
            .last()
            .is_none_or(|l| l.queue != s.queue || l.period_start != start)
        {
            out.push(empty(&s.queue, start));
            sums.push((0.0, 0.0, 0));
        }
        let (o, sum) = (out.last_mut().unwrap(), sums.last_mut().unwrap());
        o.received += s.received;
        o.answered += s.answered;
        o.abandoned += s.abandoned;
        o.timeout += s.timeout;
        o.closed += s.closed;
        o.full += s.full;
        o.joinempty += s.joinempty;
        o.leaveempty += s.leaveempty;
        o.divert_ca_ratio += s.divert_ca_ratio;
        o.divert_waittime += s.divert_waittime;
        o.answered_within_sl += s.answered_within_sl;
        o.max_wait = o.max_wait.max(s.max_wait);
        sum.0 += s.avg_wait * s.answered as f64;
        sum.1 += s.avg_talk * s.answered as f64;
        sum.2 += s.answered;
    }
    for (o, (wait, talk, n)) in out.iter_mut().zip(sums) {
        let div = |x: f64, d: u64| if d == 0 { 0.0 } else { x / d as f64 };
        o.answered_rate = div(o.answered as f64, o.received - o.closed);
        o.service_level = div(o.answered_within_sl as f64, o.answered);
        o.avg_wait = div(wait, n);
        o.avg_talk = div(talk, n);
    }
    out
}

proptest! {
    #[test]
    fn coarse_periods_are_sums_of_quarters(
        calls in prop::collection::vec(call(), 0..120),
        sl in 0u64..40,
    ) {
        let lines = stream(&calls);
        let config = |period| StatsConfig { period, service_level: sl, ..StatsConfig::default() };
        let mut agg = Aggregator::new(config(Period::FifteenMinutes));
        for line in &lines {
            agg.push(line);
        }
        prop_assert_eq!(agg.in_progress(), 0);
        prop_assert_eq!(agg.anomalies(), Anomalies::default());
        let quarters = agg.finish();
        // No call lost, each with exactly one status.
        prop_assert_eq!(quarters.iter().map(|s| s.received).sum::<u64>(), calls.len() as u64);
        for s in &quarters {
            prop_assert_eq!(s.period_start % 900, 0);
            prop_assert_eq!(
                s.received,
                s.answered + s.abandoned + s.timeout + s.closed + s.full + s.joinempty
                    + s.leaveempty + s.divert_ca_ratio + s.divert_waittime
            );
            prop_assert!(s.answered_within_sl <= s.answered);
            prop_assert!((0.0..=1.0).contains(&s.answered_rate));
            prop_assert!((0.0..=1.0).contains(&s.service_level));
            prop_assert!(s.avg_wait <= s.max_wait as f64);
        }
        for period in [Period::Hour, Period::Day] {
            let coarse = from_lines(&lines, &config(period));
            let expected = roll_up(&quarters, period);
            prop_assert_eq!(coarse.len(), expected.len());
            for (c, e) in coarse.iter().zip(&expected) {
                prop_assert_eq!(
                    (&c.queue, c.period_start, c.received, c.answered, c.abandoned, c.timeout),
                    (&e.queue, e.period_start, e.received, e.answered, e.abandoned, e.timeout)
                );
                prop_assert_eq!(
                    (c.closed, c.full, c.joinempty, c.leaveempty, c.divert_ca_ratio),
                    (e.closed, e.full, e.joinempty, e.leaveempty, e.divert_ca_ratio)
                );
                prop_assert_eq!(
                    (c.divert_waittime, c.answered_within_sl, c.max_wait),
                    (e.divert_waittime, e.answered_within_sl, e.max_wait)
                );
                for (a, b) in [
                    (c.answered_rate, e.answered_rate),
                    (c.service_level, e.service_level),
                    (c.avg_wait, e.avg_wait),
                    (c.avg_talk, e.avg_talk),
                ] {
                    prop_assert!(close(a, b), "{:?} vs {:?}", c, e);
                }
            }
        }
    }

    #[test]
    fn any_parsed_lines_never_panic(text in "([0-9]{1,4}\\|[ab]\\|(q|NONE)\\|NONE\\|(ENTERQUEUE\\|\\|1\\|1|CONNECT\\|[0-9]{1,2}\\|m\\|1|COMPLETECALLER\\|[0-9]\\|[0-9]\\|1|ABANDON\\|1\\|1\\|[0-9]|FULL\\||CLOSED\\||TRANSFER\\|x\\|[0-9]|EXITEMPTY\\|1\\|1\\|9)\n){0,20}", limit in 0usize..3) {
        let lines: Vec<Line> = parse_lines(&text).filter_map(Result::ok).collect();
        let mut agg = Aggregator::new(StatsConfig { max_open_calls: limit, ..StatsConfig::default() });
        for line in &lines {
            agg.push(line);
            prop_assert!(agg.in_progress() <= limit);
        }
        let stats = agg.finish();
        let received: u64 = stats.iter().map(|s| s.received).sum();
        prop_assert!(received <= lines.len() as u64);
    }
}
