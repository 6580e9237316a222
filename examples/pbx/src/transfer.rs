//! Blind transfer (RFC 3515 REFER, as RFC 5589 §6 describes it): during a bridged
//! call, one side sends REFER naming a third party. The PBX accepts (202), reports
//! progress to the transferor with NOTIFYs carrying a `message/sipfrag`, rings the
//! target through the dialplan, and when it answers puts it in the transferor's
//! place on the same relay ports, so the other side's media never moves (no
//! re-INVITE towards it). The transferor is then hung up.

use crate::call::{ALeg, Branch, Side, attempt, sdp_of, set_sdp, via};
use crate::fork::{self, BranchEvent, Stop};
use crate::service::{DialogKey, Notice, advertised, answer, binding_target};
use pbxkit_dialplan::Decision;
use pbxkit_sip::dialog::Dialog;
use pbxkit_sip::endpoint::ServerRequest;
use pbxkit_sip::{ByteStr, HeaderName, Method, NameAddr, StatusCode};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Sends the transferor a NOTIFY with the transfer's progress (`status` as a sipfrag).
async fn notify(leg: &ALeg<'_>, side: &mut Side, status: StatusCode, reason: &str, done: bool) {
    let endpoint = leg.endpoint;
    let mut n = side
        .dialog
        .request(Method::Notify, &via(endpoint, side.target), None);
    let body = format!("SIP/2.0 {} {reason}\r\n", status.as_u16());
    let h = n.headers_mut();
    h.push(HeaderName::Event, ByteStr::from_static("refer"));
    h.push(
        HeaderName::SubscriptionState,
        ByteStr::from_static(if done {
            "terminated;reason=noresource"
        } else {
            "active;expires=60"
        }),
    );
    h.push(
        HeaderName::ContentType,
        ByteStr::from_static("message/sipfrag;version=2.0"),
    );
    h.set(HeaderName::ContentLength, body.len().to_string());
    n.body = body.into_bytes().into();
    let target = side.target;
    let endpoint = endpoint.clone();
    let send = async move {
        if let Ok(mut tx) = endpoint.send_request(n, target).await {
            let _ = tokio::time::timeout(Duration::from_secs(2), tx.final_response()).await;
        }
    };
    if done {
        // The last NOTIFY must reach the transferor before the BYE that follows it.
        send.await;
    } else {
        // Progress changes nothing: don't hold the transfer up for its answer.
        tokio::spawn(send);
    }
}

/// Handles a REFER from `this` (side A when `this_is_a`): returns the side that takes
/// its place when the transfer target answered, `None` when the call stays as it was.
pub(crate) async fn blind(
    leg: &ALeg<'_>,
    req: &ServerRequest,
    this: &mut Side,
    other: &Side,
    this_is_a: bool,
    keys: &mut Vec<DialogKey>,
) -> Option<Side> {
    let refer_to = req
        .request
        .headers()
        .typed::<NameAddr>(&HeaderName::ReferTo)
        .and_then(Result::ok);
    let Some(sip) = refer_to.as_ref().and_then(|r| r.uri.as_sip()) else {
        answer(req, StatusCode::BAD_REQUEST).await;
        return None;
    };
    if sip
        .headers
        .iter()
        .any(|h| h.name.eq_ignore_ascii_case("Replaces"))
    {
        // Attended transfer (Replaces) is not handled yet.
        answer(req, StatusCode::new(501).unwrap_or(StatusCode::BAD_REQUEST)).await;
        return None;
    }
    let number = sip
        .user
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    answer(req, StatusCode::new(202).unwrap_or(StatusCode::OK)).await;
    notify(leg, this, StatusCode::TRYING, "Trying", false).await;
    tracing::info!(call_id = %leg.a_call_id, to = %number, "blind transfer");
    match ring_target(leg, &number, other, this_is_a, keys).await {
        Ok(side) => {
            notify(leg, this, StatusCode::OK, "OK", true).await;
            Some(side)
        }
        Err(status) => {
            tracing::info!(call_id = %leg.a_call_id, to = %number, status = status.as_u16(), "transfer failed");
            notify(leg, this, status, status.canonical_reason(), true).await;
            None
        }
    }
}

/// Rings the transfer target's phones with `other`'s media (offered on the relay
/// ports of the leaving side); the new side when one answers.
async fn ring_target(
    leg: &ALeg<'_>,
    number: &str,
    other: &Side,
    this_is_a: bool,
    keys: &mut Vec<DialogKey>,
) -> Result<Side, StatusCode> {
    let setup = leg.setup;
    let routed = setup
        .dialplan
        .decide(&attempt(setup, "default", number))
        .map_err(|_| StatusCode::NOT_FOUND)?;
    let Decision::Ring(plan) = routed.decision else {
        // Transfers go to users; anything else is not supported yet.
        return Err(StatusCode::TEMPORARILY_UNAVAILABLE);
    };
    let step = plan
        .steps
        .first()
        .ok_or(StatusCode::TEMPORARILY_UNAVAILABLE)?;
    let now = crate::service::unix_now();
    let bindings: Vec<_> = match setup.registrar.lock() {
        Ok(registrar) => step
            .targets
            .iter()
            .flat_map(|t| t.lines.iter())
            .flat_map(|line| registrar.lookup(line, now))
            .collect(),
        Err(_) => Vec::new(),
    };
    let host = &setup.realm;
    let from = leg.from(host);
    let to = format!("<sip:{number}@{host}>");
    let branches: Vec<Branch> = bindings
        .iter()
        .filter_map(|b| {
            let target = binding_target(b)?;
            let mut branch = leg.invite_with(b.uri.clone(), target, &from, &to);
            if let Some(sdp) = &other.sdp {
                let ip = advertised(leg.endpoint, target.addr).ip();
                set_sdp(&mut branch.invite, &leg.relay.rewrite(this_is_a, sdp, ip));
            }
            Some(branch)
        })
        .collect();
    if branches.is_empty() {
        return Err(StatusCode::TEMPORARILY_UNAVAILABLE);
    }
    let new_keys: Vec<DialogKey> = branches.iter().map(|b| b.key.clone()).collect();
    keys.extend(new_keys.iter().cloned());
    let _ = leg
        .notices
        .send(Notice::Route {
            keys: new_keys,
            tx: None,
            inputs: leg.inputs_tx.clone(),
        })
        .await;
    let (events_tx, mut events) = mpsc::channel(16);
    let (stop, _) = watch::channel(Stop::Ringing);
    for (i, b) in branches.iter().enumerate() {
        tokio::spawn(fork::run(
            i,
            leg.endpoint.clone(),
            b.invite.clone(),
            b.target,
            events_tx.clone(),
            stop.subscribe(),
        ));
    }
    drop(events_tx);
    let ring_time = tokio::time::sleep(step.timeout.unwrap_or(Duration::from_secs(60)));
    tokio::pin!(ring_time);
    let mut best = StatusCode::TEMPORARILY_UNAVAILABLE;
    let (winner, ok) = loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(BranchEvent::Response(i, r)) => match r.status() {
                    Some(code) if code.is_success() => break (i, *r),
                    Some(code) if code.as_u16() >= 300 => best = code,
                    _ => {}
                },
                Some(BranchEvent::Failed) => {}
                None => return Err(best),
            },
            () = &mut ring_time => {
                stop.send_replace(Stop::All);
                return Err(StatusCode::TEMPORARILY_UNAVAILABLE);
            }
        }
    };
    stop.send_replace(Stop::AllBut(winner));
    tokio::spawn(fork::hang_up_late(
        winner,
        leg.endpoint.clone(),
        branches
            .iter()
            .map(|b| (b.invite.clone(), b.target))
            .collect(),
        events,
    ));
    let branch = branches
        .get(winner)
        .ok_or(StatusCode::SERVER_INTERNAL_ERROR)?;
    let dialog = Dialog::uac(&branch.invite, &ok).map_err(|_| StatusCode::SERVER_INTERNAL_ERROR)?;
    let seq = branch.invite.cseq().map_or(1, |c| c.seq);
    leg.endpoint
        .send_stateless(
            dialog.ack(seq, &via(leg.endpoint, branch.target)),
            branch.target,
        )
        .await;
    let sdp = sdp_of(&ok);
    if let Some(sdp) = &sdp {
        leg.relay.set_peer_from_sdp(this_is_a, sdp);
    }
    Ok(Side {
        call_id: branch.key.0.clone(),
        dialog,
        target: branch.target,
        sdp,
    })
}
