//! Trunks: dialing out through a route's trunks with failover and digest
//! ([`dial`]); keeping trunks usable with an outbound registration per trunk that
//! asks for one (the sans-IO [`Registration`] of pbxkit-sip, driven here over the
//! endpoint) and a qualify loop that sends OPTIONS and marks a trunk down when it
//! stops answering, so that calls skip it instead of waiting for its timeout.

use crate::call::{
    ALeg, Answered, Branch, CallInput, Ending, Rung, Unanswered, ring_branches, via, with_min_se,
};
use crate::config::Trunk;
use crate::ids;
use crate::service::{DialogKey, advertised};
use pbxkit_sip::endpoint::{ClientEvent, EndpointHandle};
use pbxkit_sip::registration::{Registration, RegistrationConfig, Status};
use pbxkit_sip::transaction::{Target, TransportKind};
use pbxkit_sip::{ByteStr, HeaderName, Message, Method, StatusCode, Uri};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

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

/// How long a call out through a trunk may ring.
const TRUNK_RING_TIME: Duration = Duration::from_secs(300);

/// Dials out through the trunks of a route in order: the next one when a trunk is disabled,
/// full, unreachable, or answers 5xx/408; a trunk's digest challenge is answered once
/// with its credentials.
pub(crate) async fn dial(
    leg: &ALeg<'_>,
    inputs: &mut mpsc::Receiver<CallInput>,
    keys: &mut Vec<DialogKey>,
    dial: &[pbxkit_dialplan::outcall::TrunkDial<'_>],
    caller_id: &pbxkit_dialplan::outcall::OutgoingCallerIdDecision,
) -> Result<Answered, Unanswered> {
    let mut last = Unanswered::new(StatusCode::SERVICE_UNAVAILABLE, Ending::Failed);
    for d in dial {
        let Some(trunk) = leg.setup.config.trunk(d.trunk).filter(|t| t.enabled) else {
            continue;
        };
        if !leg.setup.trunk_states.is_up(&trunk.name) {
            tracing::info!(trunk = %trunk.name, "trunk down (qualify): next one");
            continue;
        }
        let key = format!("trunk:{}", trunk.name);
        let Some(addr) = tokio::net::lookup_host((trunk.host.as_str(), trunk.port))
            .await
            .ok()
            .and_then(|mut addrs| addrs.next())
        else {
            tracing::warn!(trunk = %trunk.name, host = %trunk.host, "trunk host does not resolve");
            continue;
        };
        let target = Target {
            addr,
            transport: TransportKind::Udp,
        };
        let host = &trunk.host;
        let Ok(uri) = Uri::parse(&format!("sip:{}@{host}:{}", d.number, trunk.port)) else {
            continue;
        };
        let from = match caller_id {
            pbxkit_dialplan::outcall::OutgoingCallerIdDecision::Present { caller_id, .. } => {
                let (name, number) = split_caller_id(caller_id);
                let name = if name.is_empty() {
                    leg.setup.caller_name.as_str()
                } else {
                    name
                };
                format!(
                    "\"{}\" <sip:{number}@{host}>",
                    name.replace(['"', '\\'], "")
                )
            }
            _ => "\"Anonymous\" <sip:anonymous@anonymous.invalid>".to_owned(),
        };
        let to = format!("<sip:{}@{host}>", d.number);
        let mut branch = leg.invite(uri, target, &from, &to);
        if matches!(
            caller_id,
            pbxkit_dialplan::outcall::OutgoingCallerIdDecision::Anonymous
        ) {
            // Hidden from the callee, not from the trunk: the real identity goes in
            // P-Asserted-Identity with Privacy: id (RFC 3325 §7).
            let h = branch.invite.headers_mut();
            h.set(HeaderName::PAssertedIdentity, leg.from(host));
            h.push(HeaderName::Privacy, ByteStr::from_static("id"));
        }
        // Checked and counted in one step (after the last `continue`: nothing else
        // gives the count back), so simultaneous calls cannot overfill the trunk.
        let in_use = &leg.setup.live.in_use;
        if !in_use.try_add(&key, trunk.max_calls.unwrap_or(u32::MAX)) {
            tracing::info!(trunk = %trunk.name, "trunk full: next one");
            continue;
        }
        tracing::info!(trunk = %trunk.name, number = %d.number, "dialing out");
        let mut rung = Rung {
            callee: &key,
            group: None,
            ring_time: TRUNK_RING_TIME,
            holds: None,
        };
        let mut outcome = ring_branches(leg, inputs, keys, vec![branch.clone()], &mut rung).await;
        let mut sent = branch.clone();
        if let Err(u) = &outcome
            && matches!(u.status.as_u16(), 401 | 407)
            && let Some(challenge) = &u.challenge
            && let Some(retry) = authenticated(&branch, challenge, trunk, target, leg.endpoint)
        {
            sent = retry.clone();
            outcome = ring_branches(leg, inputs, keys, vec![retry], &mut rung).await;
        }
        // A trunk that wants a longer session interval (422) is asked again with it.
        if let Err(u) = &outcome
            && u.status.as_u16() == 422
            && let Some(too_brief) = &u.challenge
            && let Some(retry) = with_min_se(&sent, too_brief, leg.endpoint)
        {
            outcome = ring_branches(leg, inputs, keys, vec![retry], &mut rung).await;
        }
        in_use.remove(&key);
        match outcome {
            Ok(answered) => return Ok(answered),
            Err(u) => {
                let failover = matches!(u.ending, Ending::Failed | Ending::NoContact)
                    && (u.status.as_u16() >= 500
                        || matches!(u.status.as_u16(), 401 | 407 | 408 | 480));
                tracing::info!(trunk = %trunk.name, status = u.status.as_u16(), failover, "trunk did not take the call");
                if !failover {
                    return Err(u);
                }
                last = u;
            }
        }
    }
    Err(last)
}

/// A caller ID as the dialplan writes it, `"Name" <number>` or `number`, split into
/// its name and its number (only the characters a SIP user part may carry unescaped).
fn split_caller_id(caller_id: &str) -> (&str, String) {
    let (name, number) = match caller_id.rsplit_once('<') {
        Some((name, rest)) => (
            name.trim().trim_matches('"'),
            rest.split('>').next().unwrap_or_default(),
        ),
        None => ("", caller_id),
    };
    let number: String = number
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '*' | '#' | '-' | '.'))
        .collect();
    (
        name,
        if number.is_empty() {
            "anonymous".into()
        } else {
            number
        },
    )
}

/// The INVITE of `branch` again with credentials for the trunk's challenge (a 401's
/// WWW-Authenticate or a 407's Proxy-Authenticate), or `None` when the trunk has no
/// credentials or the challenge can't be answered.
fn authenticated(
    branch: &Branch,
    challenge: &Message,
    trunk: &crate::config::Trunk,
    target: Target,
    endpoint: &EndpointHandle,
) -> Option<Branch> {
    let (username, password) = (trunk.username.as_deref()?, trunk.password.as_deref()?);
    let proxy = challenge.status()?.as_u16() == 407;
    let (ask, answer) = if proxy {
        (
            HeaderName::ProxyAuthenticate,
            HeaderName::ProxyAuthorization,
        )
    } else {
        (HeaderName::WwwAuthenticate, HeaderName::Authorization)
    };
    let auth: pbxkit_sip::Auth = challenge.headers().typed(&ask)?.ok()?;
    let uri = branch.invite.request_uri()?.to_string();
    let creds =
        pbxkit_sip::digest::respond(&auth, "INVITE", &uri, username, password, &ids::token(), 1)?;
    let mut invite = branch.invite.clone();
    let h = invite.headers_mut();
    h.set(HeaderName::Via, via(endpoint, target));
    h.set(HeaderName::CSeq, ByteStr::from_static("2 INVITE"));
    h.push(answer, creds.to_string());
    Some(Branch {
        invite,
        target,
        key: branch.key.clone(),
        user: None,
    })
}

#[cfg(test)]
mod tests {
    use super::split_caller_id;

    #[test]
    fn caller_ids_split_into_name_and_number() {
        assert_eq!(
            split_caller_id("\"User 1000\" <1000>"),
            ("User 1000", "1000".into())
        );
        assert_eq!(split_caller_id("0123456789"), ("", "0123456789".into()));
        assert_eq!(
            split_caller_id("Sales <+33 1 23>"),
            ("Sales", "+33123".into())
        );
        assert_eq!(split_caller_id("<>"), ("", "anonymous".into()));
    }
}
