//! Transfers (RFC 3515 REFER, as RFC 5589 describes them). During a bridged call,
//! one side (the transferor) sends REFER; the PBX accepts (202) and reports progress
//! to it with NOTIFYs carrying a `message/sipfrag`.
//!
//! - Blind (§6): Refer-To names a third party. The PBX rings it through the dialplan
//!   and when it answers puts it in the transferor's place on the same relay ports,
//!   so the other side's media never moves (no re-INVITE towards it).
//! - Attended (§7): the transferor has a second call, and Refer-To carries a
//!   `Replaces` (RFC 3891) naming the transferor's dialog of that call. The PBX asks
//!   that call to hand its other party over, re-INVITEs that party onto this call's
//!   relay ports (and the transferee off hold), and ends the transferor's dialogs in
//!   both calls: the two remaining parties talk.
//!
//! - Semi-attended: the dialog Replaces names is a call still ringing. That call
//!   stops (its caller, the transferor, gets 487) and the number it rang is rung
//!   again for the transferee, as in a blind transfer.
//!
//! The transferor is hung up when the transfer succeeds and keeps its call when it
//! fails.

use crate::call::{
    ALeg, Branch, CallInput, Handover, Side, attempt, reinvite, sdp_of, set_sdp, via,
};
use crate::fork::{self, BranchEvent, Stop};
use crate::service::{DialogKey, Notice, advertised, answer, binding_target};
use pbxkit::hangup::{HangupCause, Party};
use pbxkit_dialplan::Decision;
use pbxkit_rtp::tones::CallProgress;
use pbxkit_sip::dialog::Dialog;
use pbxkit_sip::endpoint::ServerRequest;
use pbxkit_sip::sdp::{Direction, Session};
use pbxkit_sip::{
    ByteStr, HeaderName, HeaderValue, Method, NameAddr, Replaces, SipUri, StatusCode,
};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// How a REFER ended for the call.
pub(crate) enum Transfer {
    /// The transfer succeeded: this side takes the transferor's place (boxed: a
    /// side is much larger than the other outcomes).
    Done(Box<Side>),
    /// It failed: the call goes on as it was.
    Failed,
    /// The call ended while the transfer went on (the transferee hung up, the PBX
    /// is stopping): only the transferor is left to hang up.
    CallOver(HangupCause),
}

/// How ringing a transfer target ended without a new side.
enum NotTransferred {
    /// The target was not reached (this status): the call goes on as it was.
    Failed(StatusCode),
    /// The call is over.
    CallOver(HangupCause),
}

impl From<StatusCode> for NotTransferred {
    fn from(status: StatusCode) -> Self {
        NotTransferred::Failed(status)
    }
}

/// The call's inputs, for a transfer that waits: it reacts to what ends the call
/// (the transferee's BYE, shutdown) at once and sets the rest aside, in order, for
/// the call to handle once the transfer is over.
pub(crate) struct Inbox<'a> {
    pub(crate) inputs: &'a mut mpsc::Receiver<CallInput>,
    pub(crate) pending: &'a mut std::collections::VecDeque<CallInput>,
}

/// How long a call may take to hand a side over.
const HANDOVER_WAIT: Duration = Duration::from_secs(5);

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
    // Sent here, in order: a later NOTIFY must not overtake this one.
    let sent = endpoint.send_request(n, side.target).await;
    let answered = async move {
        if let Ok(mut tx) = sent {
            let _ = tokio::time::timeout(Duration::from_secs(2), tx.final_response()).await;
        }
    };
    if done {
        // The last NOTIFY must reach the transferor before the BYE that follows it.
        answered.await;
    } else {
        // Progress changes nothing: don't hold the transfer up for its answer.
        tokio::spawn(answered);
    }
}

/// The `Replaces` a Refer-To URI carries (escaped as a URI header): `None` when it
/// has none, `Some(Err(()))` when it has one that does not parse.
fn replaces_of(uri: &SipUri) -> Option<Result<Replaces, ()>> {
    let value = uri
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("Replaces"))?
        .value
        .clone()
        .unwrap_or_default();
    let text = pbxkit_sip::unescape(value.as_str());
    let parsed = std::str::from_utf8(&text)
        .map_err(|_| ())
        .and_then(|t| Replaces::parse_value(&ByteStr::from(t.to_owned())).map_err(|_| ()));
    Some(parsed)
}

/// Handles a REFER from `this` (side A when `this_is_a`): the side that takes its
/// place when the transfer succeeded, or why the call goes on as it was or is over.
pub(crate) async fn refer(
    leg: &ALeg<'_>,
    req: &ServerRequest,
    this: &mut Side,
    other: &mut Side,
    this_is_a: bool,
    keys: &mut Vec<DialogKey>,
    inbox: &mut Inbox<'_>,
) -> Transfer {
    let refer_to = req
        .request
        .headers()
        .typed::<NameAddr>(&HeaderName::ReferTo)
        .and_then(Result::ok);
    let Some(sip) = refer_to.as_ref().and_then(|r| r.uri.as_sip()) else {
        answer(req, StatusCode::BAD_REQUEST).await;
        return Transfer::Failed;
    };
    let parties = Parties {
        this,
        other,
        this_is_a,
    };
    match replaces_of(sip) {
        None => blind(leg, req, sip, parties, keys, inbox).await,
        Some(Ok(replaces)) => attended(leg, req, &replaces, parties, keys, inbox).await,
        Some(Err(())) => {
            answer(req, StatusCode::BAD_REQUEST).await;
            Transfer::Failed
        }
    }
}

/// The two sides of a call being transferred: the transferor (`this`, side A when
/// `this_is_a`) and the transferee.
struct Parties<'a> {
    this: &'a mut Side,
    other: &'a mut Side,
    this_is_a: bool,
}

/// Blind transfer to the user named in Refer-To.
async fn blind(
    leg: &ALeg<'_>,
    req: &ServerRequest,
    sip: &SipUri,
    parties: Parties<'_>,
    keys: &mut Vec<DialogKey>,
    inbox: &mut Inbox<'_>,
) -> Transfer {
    let Parties {
        this,
        other,
        this_is_a,
    } = parties;
    let number = sip
        .user
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    answer(req, StatusCode::new(202).unwrap_or(StatusCode::OK)).await;
    notify(leg, this, StatusCode::TRYING, "Trying", false).await;
    tracing::info!(call_id = %leg.a_call_id, to = %number, "blind transfer");
    ringing_outcome(
        leg,
        this,
        ring_target(leg, &number, other, this_is_a, keys, inbox).await,
    )
    .await
}

/// Reports how ringing the transfer target ended to the transferor, and what it
/// means for the call.
async fn ringing_outcome(
    leg: &ALeg<'_>,
    this: &mut Side,
    rung: Result<Side, NotTransferred>,
) -> Transfer {
    match rung {
        Ok(side) => {
            notify(leg, this, StatusCode::OK, "OK", true).await;
            Transfer::Done(Box::new(side))
        }
        Err(NotTransferred::Failed(status)) => {
            tracing::info!(call_id = %leg.a_call_id, status = status.as_u16(), "transfer failed");
            notify(leg, this, status, status.canonical_reason(), true).await;
            Transfer::Failed
        }
        Err(NotTransferred::CallOver(hangup)) => {
            let status = StatusCode::REQUEST_TERMINATED;
            notify(leg, this, status, status.canonical_reason(), true).await;
            Transfer::CallOver(hangup)
        }
    }
}

/// Attended transfer: the other party of the dialog `replaces` names (in another
/// call) takes `this` side's place, and both calls lose the transferor.
async fn attended(
    leg: &ALeg<'_>,
    req: &ServerRequest,
    replaces: &Replaces,
    parties: Parties<'_>,
    keys: &mut Vec<DialogKey>,
    inbox: &mut Inbox<'_>,
) -> Transfer {
    let Parties {
        this,
        other,
        this_is_a,
    } = parties;
    let call_id = replaces.call_id.to_string();
    answer(req, StatusCode::new(202).unwrap_or(StatusCode::OK)).await;
    notify(leg, this, StatusCode::TRYING, "Trying", false).await;
    tracing::info!(call_id = %leg.a_call_id, replaces = %call_id, "attended transfer");
    let fail = |status: StatusCode| {
        tracing::info!(call_id = %leg.a_call_id, status = status.as_u16(), "transfer failed");
        status
    };
    let handover = if call_id == this.call_id || call_id == other.call_id {
        // A call cannot replace one of its own dialogs.
        None
    } else {
        let (reply, handed) = oneshot::channel();
        let _ = leg
            .notices
            .send(Notice::Replace {
                call_id,
                tags: [replaces.to_tag.to_string(), replaces.from_tag.to_string()],
                reply,
            })
            .await;
        tokio::time::timeout(HANDOVER_WAIT, handed)
            .await
            .ok()
            .and_then(Result::ok)
    };
    let (mut new, origin) = match handover {
        Some(Handover::Side { side, origin }) => (*side, origin),
        // The other call was still ringing: ring its number again for the transferee.
        Some(Handover::Ringing(number)) => {
            tracing::info!(call_id = %leg.a_call_id, to = %number, "semi-attended transfer");
            let rung = ring_target(leg, &number, other, this_is_a, keys, inbox).await;
            return ringing_outcome(leg, this, rung).await;
        }
        None => {
            let status = fail(StatusCode::CALL_DOES_NOT_EXIST);
            notify(leg, this, status, status.canonical_reason(), true).await;
            return Transfer::Failed;
        }
    };
    // From now on the new side's requests come here.
    let key = new.key();
    keys.push(key.clone());
    let _ = leg
        .notices
        .send(Notice::Route {
            keys: vec![key],
            tx: None,
            inputs: leg.inputs_tx.clone(),
        })
        .await;
    leg.relay.set_origin(this_is_a, origin);
    let endpoint = leg.endpoint;
    // The new party gets the transferee's media on this side's ports, both ways
    // (the transferor may have held either call before transferring).
    let offer = other.sdp.as_ref().map(active);
    let answered = match offer {
        Some(offer) => {
            let ip = advertised(endpoint, new.target.addr).ip();
            reinvite(
                endpoint,
                &mut new,
                &leg.relay.rewrite(this_is_a, &offer, ip),
            )
            .await
            .and_then(|ok| sdp_of(&ok).ok_or(StatusCode::NOT_ACCEPTABLE_HERE))
        }
        None => Err(StatusCode::NOT_ACCEPTABLE_HERE),
    };
    let new_sdp = match answered {
        Ok(sdp) => sdp,
        Err(status) => {
            // The new party is off its own call and could not join this one.
            new.hang_up(endpoint, Duration::from_secs(2), HangupCause::Pbx)
                .await;
            let status = fail(status);
            notify(leg, this, status, status.canonical_reason(), true).await;
            return Transfer::Failed;
        }
    };
    leg.relay.set_peer_from_sdp(this_is_a, &new_sdp);
    // The new party answered from the transferee's own codecs: nothing to transcode.
    leg.relay.set_transcoding(None);
    new.refreshed = tokio::time::Instant::now();
    // The transferee hears the new party's media description and leaves hold; when it
    // refuses, the call goes on with the media as it was.
    let ip = advertised(endpoint, other.target.addr).ip();
    let refreshed = leg.relay.rewrite(!this_is_a, &active(&new_sdp), ip);
    if let Some(sdp) = reinvite(endpoint, other, &refreshed)
        .await
        .ok()
        .and_then(|ok| sdp_of(&ok))
    {
        leg.relay.set_peer_from_sdp(!this_is_a, &sdp);
        other.sdp = Some(sdp);
        other.refreshed = tokio::time::Instant::now();
    }
    new.sdp = Some(new_sdp);
    notify(leg, this, StatusCode::OK, "OK", true).await;
    Transfer::Done(Box::new(new))
}

/// `sdp` with every stream sending and receiving (off hold).
fn active(sdp: &Session) -> Session {
    let mut out = sdp.clone();
    out.attributes.retain(|a| {
        !matches!(
            a.name.as_str(),
            "sendrecv" | "sendonly" | "recvonly" | "inactive"
        )
    });
    for m in &mut out.media {
        m.set_direction(Direction::SendRecv);
    }
    out
}

/// Rings the transfer target's phones with `other`'s media (offered on the relay
/// ports of the leaving side); the new side when one answers.
async fn ring_target(
    leg: &ALeg<'_>,
    number: &str,
    other: &Side,
    this_is_a: bool,
    keys: &mut Vec<DialogKey>,
    inbox: &mut Inbox<'_>,
) -> Result<Side, NotTransferred> {
    let setup = leg.setup;
    let routed = setup
        .dialplan
        .decide(&attempt(setup, "default", number))
        .map_err(|_| StatusCode::NOT_FOUND)?;
    let Decision::Ring(plan) = routed.decision else {
        // Transfers go to users; anything else is not supported yet.
        return Err(StatusCode::TEMPORARILY_UNAVAILABLE.into());
    };
    let step = plan
        .steps
        .first()
        .ok_or(StatusCode::TEMPORARILY_UNAVAILABLE)?;
    let now = crate::service::unix_now();
    let bindings: Vec<(&str, _)> = match setup.registrar.lock() {
        Ok(registrar) => step
            .targets
            .iter()
            .flat_map(|t| t.lines.iter().map(move |line| (t.user, line)))
            .flat_map(|(user, line)| {
                registrar
                    .lookup(line, now)
                    .into_iter()
                    .map(move |b| (user, b))
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    let host = &setup.realm;
    let from = leg.from(host);
    let to = format!("<sip:{number}@{host}>");
    let branches: Vec<Branch> = bindings
        .iter()
        .filter_map(|(user, b)| {
            let target = binding_target(b)?;
            let mut branch = leg.invite_with(b.uri.clone(), target, &from, &to);
            branch.user = Some((*user).to_owned());
            if let Some(sdp) = &other.sdp {
                let ip = advertised(leg.endpoint, target.addr).ip();
                set_sdp(&mut branch.invite, &leg.relay.rewrite(this_is_a, sdp, ip));
            }
            Some(branch)
        })
        .collect();
    if branches.is_empty() {
        return Err(StatusCode::TEMPORARILY_UNAVAILABLE.into());
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
    // The transferee hears ringback while the target rings (until this returns).
    let _ringback = other
        .sdp
        .as_ref()
        .and_then(crate::codecs::Format::received_by)
        .and_then(|format| {
            let tone = setup.config.pbx.tone(CallProgress::Ringback);
            leg.relay.play(!this_is_a, tone, &format)
        });
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
                None => return Err(best.into()),
            },
            () = &mut ring_time => {
                stop.send_replace(Stop::All);
                return Err(StatusCode::TEMPORARILY_UNAVAILABLE.into());
            }
            input = inbox.inputs.recv() => match input {
                // The transferee hangs up: nobody is left to transfer.
                Some(CallInput::Request(req))
                    if req.request.method() == Some(&Method::Bye)
                        && req.request.call_id().is_ok_and(|c| c.0 == other.call_id.as_str()) =>
                {
                    answer(&req, StatusCode::OK).await;
                    stop.send_replace(Stop::All);
                    let cause = req
                        .request
                        .headers()
                        .typed::<pbxkit_sip::cause::Reason>(&HeaderName::Reason)
                        .and_then(Result::ok)
                        .and_then(|r| r.q850_cause())
                        .unwrap_or(pbxkit_sip::cause::NORMAL_CLEARING);
                    let party = if this_is_a { Party::Callee } else { Party::Caller };
                    return Err(NotTransferred::CallOver(HangupCause::HungUp {
                        party,
                        q850: cause,
                    }));
                }
                Some(CallInput::Shutdown) | None => {
                    stop.send_replace(Stop::All);
                    return Err(NotTransferred::CallOver(HangupCause::Pbx));
                }
                Some(input) => inbox.pending.push_back(input),
            },
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
        .send_ack(
            dialog.ack(seq, &via(leg.endpoint, branch.target)),
            branch.target,
        )
        .await;
    let sdp = sdp_of(&ok);
    if let Some(sdp) = &sdp {
        leg.relay.set_peer_from_sdp(this_is_a, sdp);
        // The target answered from the other side's own codecs: nothing to transcode.
        leg.relay.set_transcoding(None);
    }
    // The target is on a call now (its simultaneous-calls count).
    if let Some(user) = &branch.user {
        leg.setup.live.in_use.add(user);
    }
    Ok(Side {
        call_id: branch.key.0.clone(),
        dialog,
        target: branch.target,
        sdp,
        timer: crate::timer::for_callee(&ok, &setup.config.sip),
        refreshed: tokio::time::Instant::now(),
        holder: branch.user.clone(),
    })
}
