//! Keeping trunks usable: an outbound registration per trunk that asks for one (the
//! sans-IO [`Registration`] of pbxkit-sip, driven here over the endpoint), and a
//! qualify loop that sends OPTIONS and marks a trunk down when it stops answering,
//! so that calls skip it instead of waiting for its timeout.

use crate::config::Trunk;
use crate::ids;
use crate::service::advertised;
use pbxkit_sip::endpoint::{ClientEvent, EndpointHandle};
use pbxkit_sip::registration::{Registration, RegistrationConfig, Status};
use pbxkit_sip::transaction::{Target, TransportKind};
use pbxkit_sip::{ByteStr, HeaderName, Message, Method, Uri};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How long a trunk has to answer an OPTIONS before it counts as down (Asterisk's
/// `qualify` default).
const QUALIFY_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether each trunk answers, by name. Every trunk starts up.
#[derive(Debug, Default)]
pub(crate) struct TrunkStates(HashMap<String, AtomicBool>);

impl TrunkStates {
    pub(crate) fn new(trunks: &[Trunk]) -> TrunkStates {
        TrunkStates(
            trunks
                .iter()
                .map(|t| (t.name.clone(), AtomicBool::new(true)))
                .collect(),
        )
    }

    /// Whether calls may go to `trunk`.
    pub(crate) fn is_up(&self, trunk: &str) -> bool {
        self.0
            .get(trunk)
            .is_none_or(|up| up.load(Ordering::Relaxed))
    }

    fn set(&self, trunk: &str, up: bool) -> bool {
        self.0
            .get(trunk)
            .is_some_and(|s| s.swap(up, Ordering::Relaxed) != up)
    }
}

/// The trunk's address, resolved now (names may move).
async fn target(trunk: &Trunk) -> Option<Target> {
    let addr = tokio::net::lookup_host((trunk.host.as_str(), trunk.port))
        .await
        .ok()?
        .next()?;
    Some(Target {
        addr,
        transport: TransportKind::Udp,
    })
}

/// Registers to the trunk and keeps the registration fresh, until the task is dropped.
pub(crate) async fn register(trunk: Trunk, endpoint: EndpointHandle) {
    let (Some(username), Some(password)) = (trunk.username.clone(), trunk.password.clone()) else {
        tracing::warn!(trunk = %trunk.name, "register = true needs username and password");
        return;
    };
    let Some(target) = target(&trunk).await else {
        tracing::warn!(trunk = %trunk.name, host = %trunk.host, "trunk host does not resolve");
        return;
    };
    let us = advertised(&endpoint, target.addr);
    let uri = |s: String| Uri::parse(&s).ok();
    let (Some(registrar), Some(aor), Some(contact)) = (
        uri(format!("sip:{}:{}", trunk.host, trunk.port)),
        uri(format!("sip:{username}@{}", trunk.host)),
        uri(format!("sip:{username}@{us}")),
    ) else {
        tracing::warn!(trunk = %trunk.name, "cannot build the registration's URIs");
        return;
    };
    let config = RegistrationConfig {
        registrar,
        aor,
        contact,
        via: format!("SIP/2.0/UDP {us}"),
        username,
        password,
        expires: 300,
        retry_min: Duration::from_secs(5),
        retry_max: Duration::from_secs(300),
    };
    let mut registration = Registration::new(
        config,
        &format!("{}@pbxkit", ids::token()),
        &ids::token(),
        &ids::token(),
        Instant::now(),
    );
    let mut registered = false;
    loop {
        if let Some(request) = registration.poll_request(Instant::now()) {
            let outcome = match endpoint.send_request(request, target).await {
                Ok(mut tx) => tx.final_response().await,
                Err(_) => ClientEvent::TransportError,
            };
            match outcome {
                ClientEvent::Response(r) => registration.handle_response(&r, Instant::now()),
                _ => registration.handle_failure(Instant::now()),
            }
            match registration.status() {
                Status::Registered { .. } if !registered => {
                    registered = true;
                    tracing::info!(trunk = %trunk.name, "registered to the trunk");
                }
                Status::Failed { code, .. } => {
                    registered = false;
                    tracing::warn!(trunk = %trunk.name, status = ?code.map(|c| c.as_u16()), "trunk registration failed");
                }
                _ => {}
            }
            continue;
        }
        match registration.poll_timeout() {
            Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
            None => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
}

/// Sends OPTIONS every `every` and records whether the trunk answers.
pub(crate) async fn qualify(
    trunk: Trunk,
    every: Duration,
    endpoint: EndpointHandle,
    states: Arc<TrunkStates>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let call_id = format!("{}@pbxkit", ids::token());
    let mut seq: u32 = 0;
    loop {
        tick.tick().await;
        let Some(target) = target(&trunk).await else {
            if states.set(&trunk.name, false) {
                tracing::warn!(trunk = %trunk.name, "trunk down: host does not resolve");
            }
            continue;
        };
        seq = seq.wrapping_add(1).max(1);
        let Ok(uri) = Uri::parse(&format!("sip:{}:{}", trunk.host, trunk.port)) else {
            return;
        };
        let us = advertised(&endpoint, target.addr);
        let mut options = Message::request(Method::Options, uri.clone());
        let h = options.headers_mut();
        h.push(
            HeaderName::Via,
            format!("SIP/2.0/UDP {us};branch={};rport", ids::branch()),
        );
        h.push(HeaderName::MaxForwards, ByteStr::from_static("70"));
        h.push(
            HeaderName::From,
            format!("<sip:pbxkit@{us}>;tag={}", ids::token()),
        );
        h.push(HeaderName::To, format!("<{uri}>"));
        h.push(HeaderName::CallId, call_id.clone());
        h.push(HeaderName::CSeq, format!("{seq} OPTIONS"));
        h.push(HeaderName::ContentLength, ByteStr::from_static("0"));
        let answered = match endpoint.send_request(options, target).await {
            Ok(mut tx) => matches!(
                tokio::time::timeout(QUALIFY_TIMEOUT, tx.final_response()).await,
                Ok(ClientEvent::Response(_))
            ),
            Err(_) => false,
        };
        if states.set(&trunk.name, answered) {
            if answered {
                tracing::info!(trunk = %trunk.name, "trunk up again");
            } else {
                tracing::warn!(trunk = %trunk.name, "trunk down: no answer to OPTIONS");
            }
        }
    }
}
