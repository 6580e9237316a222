//! The PBX's users as a pbxkit-dialplan configuration: one internal context,
//! `default`, with each user's extension, ring time, DND and forwards. The dialplan
//! crate decides where a call goes; the engine executes the decision.

use crate::config::Config;
use pbxkit_dialplan::Dialplan;
use toml::{Table, Value};

/// Where outgoing routes live (included by `default`).
pub(crate) const OUTCALL_CONTEXT: &str = "to-extern";
/// Where calls from trunks start.
pub(crate) const INCALL_CONTEXT: &str = "from-extern";

/// A forward in the dialplan's form.
fn forward(destination: Option<&String>) -> Value {
    let mut t = Table::new();
    t.insert("enabled".into(), Value::Boolean(destination.is_some()));
    t.insert(
        "destination".into(),
        Value::String(destination.cloned().unwrap_or_default()),
    );
    Value::Table(t)
}

/// The dialplan configuration for the PBX's users, as the TOML the dialplan crate
/// reads (built as values, so that no name or number needs escaping).
pub(crate) fn dialplan_config(config: &Config) -> Table {
    let mut range = Vec::new();
    let mut users = Vec::new();
    for user in &config.users {
        let mut start = Table::new();
        start.insert("start".into(), Value::String(user.exten.clone()));
        range.push(Value::Table(start));
        let mut forwards = Table::new();
        forwards.insert(
            "unconditional".into(),
            forward(user.forward_unconditional.as_ref()),
        );
        forwards.insert("busy".into(), forward(user.forward_busy.as_ref()));
        forwards.insert("no_answer".into(), forward(user.forward_no_answer.as_ref()));
        let ring_time = user
            .ring_time
            .unwrap_or(u32::try_from(config.pbx.ring_time).unwrap_or(u32::MAX));
        let mut u = Table::new();
        u.insert("name".into(), Value::String(user.exten.clone()));
        u.insert("display_name".into(), Value::String(user.name.clone()));
        u.insert("extension".into(), Value::String(user.exten.clone()));
        u.insert("context".into(), Value::String("default".into()));
        u.insert(
            "lines".into(),
            Value::Array(vec![Value::String(user.exten.clone())]),
        );
        u.insert("ring_time".into(), Value::Integer(i64::from(ring_time)));
        u.insert("dnd".into(), Value::Boolean(user.dnd));
        if let Some(n) = user.simultaneous_calls {
            u.insert("simultaneous_calls".into(), Value::Integer(i64::from(n)));
        }
        u.insert("forwards".into(), Value::Table(forwards));
        if let Some(vm) = &user.voicemail {
            // Boxes are named by their number in the dialplan.
            u.insert("voicemail".into(), Value::String(vm.clone()));
        }
        users.push(Value::Table(u));
    }
    let mut ranges = Table::new();
    ranges.insert("users".into(), Value::Array(range));
    let group_range: Vec<Value> = config
        .groups
        .iter()
        .map(|g| {
            let mut start = Table::new();
            start.insert("start".into(), Value::String(g.exten.clone()));
            Value::Table(start)
        })
        .collect();
    ranges.insert("groups".into(), Value::Array(group_range));
    let queue_range: Vec<Value> = config
        .queues
        .iter()
        .map(|q| {
            let mut start = Table::new();
            start.insert("start".into(), Value::String(q.exten.clone()));
            Value::Table(start)
        })
        .collect();
    ranges.insert("queues".into(), Value::Array(queue_range));
    let room_range: Vec<Value> = config
        .conferences
        .iter()
        .map(|c| {
            let mut start = Table::new();
            start.insert("start".into(), Value::String(c.exten.clone()));
            Value::Table(start)
        })
        .collect();
    ranges.insert("conferences".into(), Value::Array(room_range));
    let mut context = Table::new();
    context.insert("name".into(), Value::String("default".into()));
    context.insert("kind".into(), Value::String("internal".into()));
    context.insert("ranges".into(), Value::Table(ranges));
    context.insert(
        "includes".into(),
        Value::Array(vec![Value::String(OUTCALL_CONTEXT.into())]),
    );
    let string = |s: &str| Value::String(s.to_owned());
    let table = |pairs: Vec<(&str, Value)>| {
        Value::Table(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    };
    let outcall_context = table(vec![
        ("name", string(OUTCALL_CONTEXT)),
        ("kind", string("outcall")),
    ]);
    let dids: Vec<Value> = config
        .incalls
        .iter()
        .map(|i| table(vec![("start", string(i.did.trim_start_matches('+')))]))
        .collect();
    let incall_context = table(vec![
        ("name", string(INCALL_CONTEXT)),
        ("kind", string("incall")),
        ("ranges", table(vec![("incalls", Value::Array(dids))])),
    ]);
    let enabled = |name: &String| config.trunk(name).is_some_and(|t| t.enabled);
    let trunks: Vec<Value> = config
        .trunks
        .iter()
        .filter(|t| t.enabled)
        .map(|t| table(vec![("name", string(&t.name))]))
        .collect();
    // Disabled trunks are left out; a route with none left is left out too.
    let outcalls: Vec<Value> = config
        .routes
        .iter()
        .filter(|r| r.trunks.iter().any(enabled))
        .map(|r| {
            let patterns = r
                .patterns
                .iter()
                .map(|p| {
                    table(vec![
                        ("pattern", string(&p.pattern)),
                        ("strip", Value::Integer(i64::try_from(p.strip).unwrap_or(0))),
                        ("prefix", string(&p.prefix)),
                    ])
                })
                .collect();
            table(vec![
                ("name", string(&r.name)),
                ("context", string(OUTCALL_CONTEXT)),
                ("priority", Value::Integer(i64::from(r.priority))),
                (
                    "trunks",
                    Value::Array(
                        r.trunks
                            .iter()
                            .filter(|t| enabled(t))
                            .map(|t| string(t))
                            .collect(),
                    ),
                ),
                ("patterns", Value::Array(patterns)),
            ])
        })
        .collect();
    // Users and groups are named by their extension in the dialplan.
    let destination = |exten: &str| {
        if let Some(q) = config.queue(exten) {
            // Queues keep their names (the queue_log's), not their extensions.
            return table(vec![("type", string("queue")), ("name", string(&q.name))]);
        }
        if let Some(room) = config.conference(exten) {
            return table(vec![
                ("type", string("conference")),
                ("name", string(&room.name)),
            ]);
        }
        let kind = if config.group(exten).is_some() {
            "group"
        } else {
            "user"
        };
        table(vec![("type", string(kind)), ("name", string(exten))])
    };
    let incalls: Vec<Value> = config
        .incalls
        .iter()
        .filter_map(|i| {
            let to = i.target()?;
            Some(table(vec![
                ("did", string(i.did.trim_start_matches('+'))),
                ("context", string(INCALL_CONTEXT)),
                ("destination", destination(to)),
            ]))
        })
        .collect();
    let groups: Vec<Value> = config
        .groups
        .iter()
        .map(|g| {
            let mut t = vec![
                ("name", string(&g.exten)),
                ("extension", string(&g.exten)),
                ("context", string("default")),
                (
                    "members",
                    Value::Array(g.members.iter().map(|m| string(m)).collect()),
                ),
                ("strategy", string(&g.strategy)),
                (
                    "member_ring_time",
                    Value::Integer(i64::from(g.member_ring_time)),
                ),
                ("retry_delay", Value::Integer(i64::from(g.retry_delay))),
                ("ring_in_use", Value::Boolean(g.ring_in_use)),
            ];
            if let Some(r) = g.ring_time {
                t.push(("ring_time", Value::Integer(i64::from(r))));
            }
            if let Some(to) = &g.no_answer {
                // Every way of not answering goes there.
                t.push((
                    "no_answer",
                    table(
                        ["no_answer", "busy", "congestion", "failure"]
                            .into_iter()
                            .map(|case| (case, destination(to)))
                            .collect(),
                    ),
                ));
            }
            table(t)
        })
        .collect();
    let queues: Vec<Value> = config
        .queues
        .iter()
        .map(|q| {
            table(vec![
                ("name", string(&q.name)),
                ("extension", string(&q.exten)),
                ("context", string("default")),
            ])
        })
        .collect();
    let mut root = Table::new();
    root.insert(
        "contexts".into(),
        Value::Array(vec![Value::Table(context), outcall_context, incall_context]),
    );
    root.insert("users".into(), Value::Array(users));
    root.insert("trunks".into(), Value::Array(trunks));
    root.insert("outcalls".into(), Value::Array(outcalls));
    root.insert("incalls".into(), Value::Array(incalls));
    root.insert("groups".into(), Value::Array(groups));
    root.insert("queues".into(), Value::Array(queues));
    let conferences: Vec<Value> = config
        .conferences
        .iter()
        .map(|c| {
            table(vec![
                ("name", string(&c.name)),
                ("extension", string(&c.exten)),
                ("context", string("default")),
            ])
        })
        .collect();
    root.insert("conferences".into(), Value::Array(conferences));
    let voicemails: Vec<Value> = config
        .voicemails
        .iter()
        .map(|v| {
            table(vec![
                ("name", string(&v.number)),
                ("number", string(&v.number)),
            ])
        })
        .collect();
    root.insert("voicemails".into(), Value::Array(voicemails));
    root
}

/// The engine's queues: their ACD settings and no-answer destinations.
pub(crate) fn queues(config: &Config) -> Vec<pbxkit::engine::QueueSetup> {
    let secs = |s: u32| std::time::Duration::from_secs(u64::from(s));
    config
        .queues
        .iter()
        .map(|q| {
            // A checked configuration names a known strategy.
            let strategy = q.strategy.parse().unwrap_or_default();
            let mut acd = pbxkit_acd::QueueConfig::new(&q.name, strategy);
            acd.member_timeout = secs(q.member_ring_time);
            acd.retry = secs(q.retry_delay);
            acd.wrap_up = secs(q.wrap_up);
            acd.max_len = q.max_callers as usize;
            acd.timeout = (q.timeout > 0).then(|| secs(q.timeout));
            acd.ring_in_use = q.ring_in_use;
            acd.autopause = q.autopause;
            acd.weight = q.weight;
            // A checked configuration's conditions parse.
            let empty = |s: &str| pbxkit_acd::EmptyConditions::parse(s).unwrap_or_default();
            acd.join_empty = empty(&q.join_empty);
            acd.leave_when_empty = empty(&q.leave_when_empty);
            acd.divert_hold_time = (q.divert_wait_time > 0).then(|| secs(q.divert_wait_time));
            acd.divert_ratio = (q.divert_wait_ratio > 0.0).then_some(q.divert_wait_ratio);
            acd.service_level = secs(q.service_level);
            // A checked configuration's rules parse.
            acd.skill_rules = q.skill_rule_set().ok().flatten();
            acd.announcements = pbxkit_acd::Announcements {
                frequency: (q.announce_frequency > 0).then(|| secs(q.announce_frequency)),
                min_frequency: secs(q.min_announce_frequency),
                position: q.announce_position,
                hold_time: match q.announce_holdtime {
                    crate::config::AnnounceHoldTime::No => pbxkit_acd::HoldTimeAnnouncement::Never,
                    crate::config::AnnounceHoldTime::Yes => {
                        pbxkit_acd::HoldTimeAnnouncement::Always
                    }
                    crate::config::AnnounceHoldTime::Once => pbxkit_acd::HoldTimeAnnouncement::Once,
                },
                to_first: q.announce_to_first,
            };
            pbxkit::engine::QueueSetup {
                acd,
                no_answer: q.no_answer.clone(),
                music: q.music_on_hold.clone(),
            }
        })
        .collect()
}

/// The compiled dialplan, or why it does not compile.
pub(crate) fn dialplan(config: &Config) -> Result<Dialplan, String> {
    let parsed: pbxkit_dialplan::Config = dialplan_config(config)
        .try_into()
        .map_err(|e| format!("dialplan: {e}"))?;
    Dialplan::new(parsed, jiff::tz::db()).map_err(|e| format!("dialplan: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_forwards_and_dnd_reach_the_dialplan() {
        let text = crate::config::DEFAULT.replace(
            "exten = \"1001\"\nname = \"User 1001\"\npassword = \"pbx1001pw\"",
            "exten = \"1001\"\nname = \"User \\\"1001\\\"\"\npassword = \"pbx1001pw\"\n\
             forward_busy = \"1002\"\nforward_no_answer = \"1003\"\nring_time = 12",
        );
        let config = Config::parse(&text).unwrap();
        let dp = dialplan(&config).unwrap();
        let attempt = pbxkit_dialplan::CallAttempt {
            context: "default",
            caller: pbxkit_dialplan::Caller {
                number: "1000",
                name: "User 1000",
                user: Some("1000"),
            },
            dialed: "1001",
            at: jiff::Timestamp::UNIX_EPOCH,
            user_state: &(),
        };
        let routed = dp.decide(&attempt).unwrap();
        let pbxkit_dialplan::Decision::Ring(plan) = routed.decision else {
            panic!("{routed}")
        };
        assert_eq!(plan.steps[0].targets[0].lines, ["1001".to_owned()]);
        assert_eq!(
            plan.steps[0].timeout,
            Some(std::time::Duration::from_secs(12))
        );
        assert!(
            matches!(
                *plan.fallbacks.busy,
                pbxkit_dialplan::Decision::Forward {
                    ref destination,
                    ..
                } if destination == "1002"
            ),
            "{:?}",
            plan.fallbacks.busy
        );
        assert!(matches!(
            *plan.fallbacks.no_answer,
            pbxkit_dialplan::Decision::Forward {
                ref destination,
                ..
            } if destination == "1003"
        ));
    }

    #[test]
    fn groups_ring_their_members_and_send_the_rest_to_no_answer() {
        let text = format!(
            "{}\n[[groups]]\nexten = \"3000\"\nname = \"Sales\"\nmembers = [\"1001\", \"1002\"]\n\
             ring_time = 20\nno_answer = \"1005\"\n\n[[incalls]]\ndid = \"0123\"\ngroup = \"3000\"\n",
            crate::config::DEFAULT
        );
        let config = Config::parse(&text).unwrap();
        let dp = dialplan(&config).unwrap();
        let attempt = |context, dialed| pbxkit_dialplan::CallAttempt {
            context,
            caller: pbxkit_dialplan::Caller {
                number: "1000",
                name: "User 1000",
                user: Some("1000"),
            },
            dialed,
            at: jiff::Timestamp::UNIX_EPOCH,
            user_state: &(),
        };
        for (context, dialed) in [("default", "3000"), (INCALL_CONTEXT, "0123")] {
            let routed = dp.decide(&attempt(context, dialed)).unwrap();
            let pbxkit_dialplan::Decision::Ring(plan) = routed.decision else {
                panic!("{routed}")
            };
            assert_eq!(plan.group, Some("3000"));
            let users: Vec<&str> = plan.steps[0].targets.iter().map(|t| t.user).collect();
            assert_eq!(users, ["1001", "1002"]);
            assert_eq!(
                plan.steps[0].timeout,
                Some(std::time::Duration::from_secs(20))
            );
            assert!(
                matches!(
                    &*plan.fallbacks.no_answer,
                    pbxkit_dialplan::Decision::Destination(
                        pbxkit_dialplan::config::Destination::User { name }
                    ) if name == "1005"
                ),
                "{:?}",
                plan.fallbacks.no_answer
            );
        }
    }

    #[test]
    fn a_room_is_reached_by_its_extension_and_by_a_did() {
        let text = format!(
            "{}\n[[incalls]]\ndid = \"0140\"\nconference = \"4000\"\n",
            crate::config::DEFAULT
        );
        let config = Config::parse(&text).unwrap();
        let dp = dialplan(&config).unwrap();
        for (context, dialed) in [("default", "4000"), (INCALL_CONTEXT, "0140")] {
            let attempt = pbxkit_dialplan::CallAttempt {
                context,
                caller: pbxkit_dialplan::Caller {
                    number: "1000",
                    name: "User 1000",
                    user: Some("1000"),
                },
                dialed,
                at: jiff::Timestamp::UNIX_EPOCH,
                user_state: &(),
            };
            let routed = dp.decide(&attempt).unwrap();
            assert!(
                matches!(routed.decision, pbxkit_dialplan::Decision::Conference(room) if room.name == "meeting"),
                "{routed}"
            );
        }
    }

    #[test]
    fn a_users_unanswered_calls_go_to_its_voicemail_box() {
        let config = Config::parse(crate::config::DEFAULT).unwrap();
        let dp = dialplan(&config).unwrap();
        let attempt = pbxkit_dialplan::CallAttempt {
            context: "default",
            caller: pbxkit_dialplan::Caller {
                number: "1000",
                name: "User 1000",
                user: Some("1000"),
            },
            dialed: "1001",
            at: jiff::Timestamp::UNIX_EPOCH,
            user_state: &(),
        };
        let routed = dp.decide(&attempt).unwrap();
        let pbxkit_dialplan::Decision::Ring(plan) = routed.decision else {
            panic!("{routed}")
        };
        for (fallback, busy) in [
            (&plan.fallbacks.no_answer, false),
            (&plan.fallbacks.busy, true),
        ] {
            let pbxkit_dialplan::Decision::Voicemail { mailbox, greeting } = &**fallback else {
                panic!("{fallback:?}")
            };
            assert_eq!(mailbox.number, "1001");
            assert_eq!(
                *greeting == Some(pbxkit_dialplan::decision::Greeting::Busy),
                busy
            );
        }
    }
}
