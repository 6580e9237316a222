//! The PBX's users as a pbxkit-dialplan configuration: one internal context,
//! `default`, with each user's extension, ring time, DND and forwards. The dialplan
//! crate decides where a call goes; [`crate::call`] executes the decision.

use crate::config::Config;
use pbxkit_dialplan::Dialplan;
use toml::{Table, Value};

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
        u.insert("forwards".into(), Value::Table(forwards));
        users.push(Value::Table(u));
    }
    let mut ranges = Table::new();
    ranges.insert("users".into(), Value::Array(range));
    let mut context = Table::new();
    context.insert("name".into(), Value::String("default".into()));
    context.insert("kind".into(), Value::String("internal".into()));
    context.insert("ranges".into(), Value::Table(ranges));
    let mut root = Table::new();
    root.insert("contexts".into(), Value::Array(vec![Value::Table(context)]));
    root.insert("users".into(), Value::Array(users));
    root
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
                    destination: "1002",
                    ..
                }
            ),
            "{:?}",
            plan.fallbacks.busy
        );
        assert!(matches!(
            *plan.fallbacks.no_answer,
            pbxkit_dialplan::Decision::Forward {
                destination: "1003",
                ..
            }
        ));
    }
}
