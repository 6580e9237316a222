//! Webhooks: each `[[webhooks]]` gets the events it names (`*`: all) POSTed to its
//! URL as JSON, `{name, origin_uuid, data}` as on the WebSocket, in the order they
//! happened.
//!
//! Delivery never holds calls up: a webhook has its own task and a queue of
//! [`QUEUE`] events; when the receiver is slower than the PBX the oldest waiting
//! events are dropped (logged once per run of drops). An event is tried
//! [`ATTEMPTS`] times, a second apart then doubling, each attempt bounded by
//! [`DEADLINE`]; a 2xx answer delivers it, anything else is a failure. Webhooks are
//! read at start: changing them needs a restart.

use super::events::outgoing;
use crate::config::Webhook;
use crate::events::Bus;
use axum::http::{Request, Uri, header};
use bytes::Bytes;
use http_body_util::Full;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// Events waiting per webhook at most.
pub(crate) const QUEUE: usize = 1000;
/// Tries per event.
pub(crate) const ATTEMPTS: u32 = 3;
/// Longest connect-and-answer of one attempt.
pub(crate) const DEADLINE: Duration = Duration::from_secs(5);

/// Starts the tasks of `hooks`.
pub(crate) fn spawn(hooks: &[Webhook], bus: &Bus, node: &str) {
    for hook in hooks {
        let Ok(url) = hook.url.parse::<Uri>() else {
            continue; // the configuration checked it
        };
        let queue = Arc::new(Queue::default());
        let mut events = bus.subscribe();
        let (names, node, filling) = (hook.events.clone(), node.to_owned(), queue.clone());
        let hook_url = url.clone();
        tokio::spawn(async move {
            loop {
                let event = match events.recv().await {
                    Ok(event) => event,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(url = %hook_url, missed = n, "webhook behind the bus: events dropped");
                        continue;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                };
                for out in outgoing(&event) {
                    if names.iter().any(|n| n == "*" || *n == out.name) {
                        filling.push(
                            json!({ "name": out.name, "origin_uuid": node, "data": out.data }),
                        );
                    }
                }
            }
        });
        tokio::spawn(deliver(url, queue));
    }
}

/// A webhook's waiting events, oldest first.
#[derive(Default)]
struct Queue {
    events: Mutex<VecDeque<Value>>,
    ready: Notify,
    /// Whether events are being dropped (logged when it starts).
    dropping: std::sync::atomic::AtomicBool,
}

impl Queue {
    fn push(&self, event: Value) {
        use std::sync::atomic::Ordering;
        let full = {
            let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
            let full = events.len() >= QUEUE;
            if full {
                events.pop_front();
            }
            events.push_back(event);
            full
        };
        if full && !self.dropping.swap(true, Ordering::Relaxed) {
            tracing::warn!("a webhook's receiver is too slow: its oldest events are dropped");
        } else if !full {
            self.dropping.store(false, Ordering::Relaxed);
        }
        self.ready.notify_one();
    }

    async fn pop(&self) -> Value {
        loop {
            if let Some(event) = self
                .events
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop_front()
            {
                return event;
            }
            self.ready.notified().await;
        }
    }
}

async fn deliver(url: Uri, queue: Arc<Queue>) {
    let mut failing = false;
    loop {
        let event = queue.pop().await;
        let body = Bytes::from(event.to_string());
        let mut delivered = false;
        let mut wait = Duration::from_secs(1);
        for attempt in 1..=ATTEMPTS {
            match post(&url, body.clone()).await {
                Ok(status) if status.is_success() => {
                    delivered = true;
                    break;
                }
                Ok(status) => {
                    tracing::debug!(%url, attempt, status = status.as_u16(), "webhook refused an event");
                }
                Err(e) => tracing::debug!(%url, attempt, error = %e, "webhook unreachable"),
            }
            if attempt < ATTEMPTS {
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
        if !delivered && !failing {
            tracing::warn!(%url, "webhook: an event was not delivered after {ATTEMPTS} tries");
        } else if delivered && failing {
            tracing::info!(%url, "webhook delivers again");
        }
        failing = !delivered;
    }
}

/// One POST of `body` to `url`: the answer's status.
async fn post(url: &Uri, body: Bytes) -> Result<axum::http::StatusCode, String> {
    let host = url.host().ok_or("no host")?;
    let port = url.port_u16().unwrap_or(80);
    let attempt = async {
        let stream = tokio::net::TcpStream::connect((host, port))
            .await
            .map_err(|e| e.to_string())?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        let authority = url.authority().map_or(host.to_owned(), |a| a.to_string());
        let path = url.path_and_query().map_or("/", |p| p.as_str());
        let request = Request::post(path)
            .header(header::HOST, authority)
            .header(header::CONTENT_TYPE, "application/json")
            .header(
                header::USER_AGENT,
                concat!("pbxkit/", env!("CARGO_PKG_VERSION")),
            )
            .body(Full::new(body))
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        Ok(response.status())
    };
    tokio::time::timeout(DEADLINE, attempt)
        .await
        .map_err(|_| "no answer in time".to_owned())?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_queue_keeps_the_newest_events_in_order() {
        let queue = Queue::default();
        for i in 0..QUEUE + 10 {
            queue.push(json!(i));
        }
        assert_eq!(queue.pop().await, json!(10), "the 10 oldest were dropped");
        assert_eq!(queue.pop().await, json!(11));
    }
}
