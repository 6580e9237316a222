//! The WebSocket `/events`, in wazo-websocketd's protocol (version 2): the token
//! in `?token=` (or `X-Auth-Token`) must grant `websocketd`; the server says
//! `{"op": "init"}`, the client subscribes to event names (`*`: all) and starts,
//! then gets `{"op": "event", "code": 0, "event": {name, required_acl,
//! origin_uuid, data}}` for each bus event it subscribed to and whose required
//! ACL its token grants. Close codes: 4001 no token, 4002 token refused, 4003
//! token expired or revoked, 4004 protocol error.

use super::{Shared, tokens};
use crate::events::Event;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query as Params, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// Largest client message, in bytes.
const MAX_MESSAGE: usize = 4096;
/// Most event names one connection subscribes to.
const MAX_SUBSCRIPTIONS: usize = 100;
/// How often a connection checks that its token is still good.
const TOKEN_CHECK: Duration = Duration::from_secs(1);

/// An event as clients get it: its name, the ACLs that may see it (any one
/// suffices), and its data.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Outgoing {
    pub(crate) name: String,
    pub(crate) required: Vec<String>,
    pub(crate) data: Value,
}

/// The client events of a bus event (some make several, none for internal ones).
pub(crate) fn outgoing(event: &Event) -> Vec<Outgoing> {
    let calls = |users: &[&str]| -> Vec<String> {
        let mut acls: Vec<String> = users
            .iter()
            .filter(|u| !u.is_empty())
            .map(|u| format!("events.calls.{u}"))
            .collect();
        acls.dedup();
        acls
    };
    let one = |name: &str, required: Vec<String>, data: Value| {
        vec![Outgoing {
            name: name.to_owned(),
            required,
            data,
        }]
    };
    match event {
        Event::CallCreated {
            call_id,
            caller,
            dialed,
        } => one(
            "call_created",
            calls(&[caller, dialed]),
            json!({ "call_id": call_id, "caller_id_number": caller, "dialed_extension": dialed, "status": "Ring" }),
        ),
        Event::CallAnswered {
            call_id,
            caller,
            callee,
        } => one(
            "call_updated",
            calls(&[caller, callee]),
            json!({ "call_id": call_id, "caller_id_number": caller, "peer": callee, "status": "Up" }),
        ),
        Event::CallEnded {
            call_id,
            caller,
            callee,
            answered,
            cause,
        } => one(
            "call_ended",
            calls(&[caller, callee.as_deref().unwrap_or("")]),
            json!({ "call_id": call_id, "caller_id_number": caller, "peer": callee, "answered": answered, "hangup_cause": cause }),
        ),
        Event::Registration { user, contacts } => one(
            "endpoint_status_update",
            vec!["events.statuses.endpoints".to_owned()],
            json!({ "line": user, "registered": *contacts > 0, "contacts": contacts }),
        ),
        Event::Hint { user, status } => one(
            "user_status_update",
            vec!["events.statuses.users".to_owned()],
            json!({ "user": user, "status": format!("{status:?}").to_lowercase() }),
        ),
        Event::UserServices { user, services } => {
            let acl = |what: &str| vec![format!("events.config.users.{user}.{what}.updated")];
            let forward = |name: &str, f: &pbxkit_dialplan::config::Forward| Outgoing {
                name: format!("users_forwards_{name}_updated"),
                required: acl(&format!("forwards.{name}")),
                data: json!({ "user": user, "enabled": f.enabled, "destination": f.destination }),
            };
            vec![
                Outgoing {
                    name: "users_services_dnd_updated".to_owned(),
                    required: acl("services.dnd"),
                    data: json!({ "user": user, "enabled": services.dnd }),
                },
                forward("busy", &services.forwards.busy),
                forward("noanswer", &services.forwards.no_answer),
                forward("unconditional", &services.forwards.unconditional),
            ]
        }
        Event::AgentStatus { agent, state } => one(
            "agent_status_update",
            vec!["events.statuses.agents".to_owned()],
            json!({ "agent_number": agent, "status": format!("{state:?}").to_lowercase() }),
        ),
        Event::QueueStatus(stats) => one(
            "queue_status_update",
            vec!["events.statuses.queues".to_owned()],
            json!({
                "queue": stats.queue,
                "waiting": stats.live.waiting,
                "longest_wait": stats.live.longest_wait.as_secs(),
                "logged_agents": stats.live.logged,
                "available_agents": stats.live.available,
                "talking_agents": stats.live.talking,
            }),
        ),
    }
}

/// `GET /events`: the upgrade; authentication comes after it, so that a refused
/// client learns why from the close code.
pub(super) async fn upgrade(
    State(api): State<Shared>,
    headers: HeaderMap,
    Params(params): Params<HashMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Response {
    let token = params.get("token").cloned().or_else(|| {
        headers
            .get("x-auth-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    });
    ws.max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .on_upgrade(move |socket| session(api, token, socket))
}

async fn close(mut socket: WebSocket, code: u16, reason: &'static str) {
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })))
        .await;
}

async fn send(socket: &mut WebSocket, value: Value) -> bool {
    socket
        .send(Message::Text(value.to_string().into()))
        .await
        .is_ok()
}

async fn session(api: Shared, token: Option<String>, mut socket: WebSocket) {
    let Some(id) = token else {
        return close(socket, 4001, "no token").await;
    };
    let Some(token) = api.token_by_id(&id).filter(|t| t.acl.allows("websocketd")) else {
        return close(socket, 4002, "authentication failed").await;
    };
    // Subscribed before init: no event published after the client hears init
    // is missed.
    let mut bus = api.services.bus.subscribe();
    if !send(
        &mut socket,
        json!({ "op": "init", "code": 0, "data": { "version": 2 } }),
    )
    .await
    {
        return;
    }
    let mut names: HashSet<String> = HashSet::new();
    let mut started = false;
    let mut check = tokio::time::interval(TOKEN_CHECK);
    loop {
        tokio::select! {
            message = socket.recv() => {
                let text = match message {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(Message::Binary(_))) => {
                        return close(socket, 4004, "text messages only").await;
                    }
                };
                let Some(reply) = command(text.as_str(), &mut names, &mut started) else {
                    return close(socket, 4004, "protocol error").await;
                };
                if !send(&mut socket, reply).await {
                    return;
                }
            }
            event = bus.recv() => {
                let event = match event {
                    Ok(event) => event,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::debug!(missed = n, "WebSocket client behind: events dropped");
                        continue;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                };
                if !started {
                    continue;
                }
                for out in outgoing(&event) {
                    if !wanted(&out, &names, &token) {
                        continue;
                    }
                    let payload = json!({
                        "name": out.name,
                        "required_acl": out.required.first(),
                        "origin_uuid": api.services.node,
                        "data": out.data,
                    });
                    if !send(&mut socket, json!({ "op": "event", "code": 0, "event": payload })).await {
                        return;
                    }
                }
            }
            _ = check.tick() => {
                let good = api.tokens.lock().is_ok_and(|t| t.get(&token.id, Instant::now()).is_some());
                if !good {
                    return close(socket, 4003, "token expired").await;
                }
            }
        }
    }
}

/// Whether a connection subscribed to `out` and may see it.
fn wanted(out: &Outgoing, names: &HashSet<String>, token: &tokens::Token) -> bool {
    (names.contains("*") || names.contains(&out.name))
        && out.required.iter().any(|acl| token.acl.allows(acl))
}

/// The answer to a client's message, `None` for a protocol error.
fn command(text: &str, names: &mut HashSet<String>, started: &mut bool) -> Option<Value> {
    let message: Value = serde_json::from_str(text).ok()?;
    match message.get("op")?.as_str()? {
        "subscribe" => {
            let name = message.get("data")?.get("event_name")?.as_str()?;
            if name.is_empty() || name.len() > 100 {
                return None;
            }
            if names.len() >= MAX_SUBSCRIPTIONS && !names.contains(name) {
                return None;
            }
            names.insert(name.to_owned());
            Some(json!({ "op": "subscribe", "code": 0 }))
        }
        "start" => {
            *started = true;
            Some(json!({ "op": "start", "code": 0 }))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::acl::Acl;
    use crate::api::tokens::Tokens;

    fn token(acl: &[&str], user: &str) -> tokens::Token {
        let grant = tokens::Grant {
            auth_id: user.to_owned(),
            user: Some(user.to_owned()),
            acl: Acl::new(acl, Some(user)),
            lifetime: Duration::from_secs(60),
        };
        Tokens::default()
            .issue("t".into(), grant, (Instant::now(), 0))
            .unwrap()
    }

    #[test]
    fn call_events_reach_the_parties_and_the_supervisors() {
        let created = outgoing(&Event::CallCreated {
            call_id: "c1".into(),
            caller: "1000".into(),
            dialed: "1001".into(),
        });
        assert_eq!(created.len(), 1);
        assert_eq!(created[0].name, "call_created");
        let subscribed: HashSet<String> = ["call_created".to_owned()].into();
        let all: HashSet<String> = ["*".to_owned()].into();
        let caller = token(super::super::USER_ACL, "1000");
        let callee = token(super::super::USER_ACL, "1001");
        let other = token(super::super::USER_ACL, "1002");
        let admin = token(&["#"], "admin");
        assert!(wanted(&created[0], &subscribed, &caller));
        assert!(wanted(&created[0], &all, &callee));
        assert!(!wanted(&created[0], &all, &other));
        assert!(wanted(&created[0], &all, &admin));
        let ended = outgoing(&Event::CallEnded {
            call_id: "c1".into(),
            caller: "1000".into(),
            callee: None,
            answered: false,
            cause: 16,
        });
        assert!(!wanted(&ended[0], &subscribed, &caller), "not subscribed");
        assert!(!wanted(&ended[0], &all, &callee), "1001 never answered it");
    }

    #[test]
    fn the_protocol_subscribes_starts_and_refuses_the_rest() {
        let (mut names, mut started) = (HashSet::new(), false);
        let sub = r#"{"op": "subscribe", "data": {"event_name": "call_created"}}"#;
        assert_eq!(
            command(sub, &mut names, &mut started),
            Some(json!({"op": "subscribe", "code": 0}))
        );
        assert!(!started);
        assert_eq!(
            command(r#"{"op": "start"}"#, &mut names, &mut started),
            Some(json!({"op": "start", "code": 0}))
        );
        assert!(started && names.contains("call_created"));
        for bad in [
            "nope",
            r#"{"op": "dance"}"#,
            r#"{"op": "subscribe"}"#,
            r#"{"op": "subscribe", "data": {"event_name": 3}}"#,
        ] {
            assert_eq!(command(bad, &mut names, &mut started), None, "{bad}");
        }
        for i in 0..MAX_SUBSCRIPTIONS {
            let sub = format!(r#"{{"op": "subscribe", "data": {{"event_name": "e{i}"}}}}"#);
            let _ = command(&sub, &mut names, &mut started);
        }
        assert_eq!(names.len(), MAX_SUBSCRIPTIONS);
    }
}
