//! One call: the PBX as a back-to-back user agent. The caller's INVITE (A leg) is
//! answered by the PBX, which places its own INVITE to the callee (B leg) and relays
//! provisional and final responses, the SDP bodies, BYE and CANCEL between the legs.
//!
//! Media is anchored on the PBX (see [`crate::media`]): re-INVITEs and UPDATEs (hold,
//! resume, codec changes) are relayed with their SDP rewritten both ways. Forking to
//! several contacts comes next.

use crate::cdr::{self, Cdr, Disposition, Record};
use crate::ids;
use crate::media::{PortPool, Relay};
use crate::service::{DialogKey, Notice, advertised, answer, binding_target, our_contact};
use pbxkit_sip::dialog::Dialog;
use pbxkit_sip::endpoint::{ClientEvent, ClientTransaction, EndpointHandle, ServerRequest};
use pbxkit_sip::registrar::Binding;
use pbxkit_sip::sdp::Session;
use pbxkit_sip::transaction::{Target, TransportKind, cancel_for};
use pbxkit_sip::{ByteStr, HeaderName, Message, Method, StatusCode};
use std::time::Duration;
use tokio::sync::mpsc;

/// What the main loop forwards to a call.
#[derive(Debug)]
pub(crate) enum CallInput {
    /// An in-dialog request for either leg (boxed: it is much larger than the rest).
    Request(Box<ServerRequest>),
    /// An ACK for either leg.
    Ack,
    /// The caller CANCELled (the endpoint has answered 487 on the A leg).
    Cancelled,
    /// The PBX is stopping: end the call now (CANCEL or BYE both legs).
    Shutdown,
}

/// Who calls whom, decided by the service.
#[derive(Debug)]
pub(crate) struct CallSetup {
    pub(crate) caller_exten: String,
    pub(crate) caller_name: String,
    pub(crate) callee: crate::config::User,
    pub(crate) bindings: Vec<Binding>,
    pub(crate) ring_time: Duration,
    pub(crate) realm: String,
    pub(crate) ports: std::sync::Arc<PortPool>,
    pub(crate) cdr: Cdr,
}

/// How a call that was not answered ended: the status the caller got.
struct Unanswered {
    status: StatusCode,
    /// Nobody answered in time, or the caller gave up while it rang.
    no_answer: bool,
}

impl Unanswered {
    fn failed(status: StatusCode) -> Unanswered {
        Unanswered {
            status,
            no_answer: false,
        }
    }

    fn disposition(&self) -> Disposition {
        match self.status.as_u16() {
            _ if self.no_answer => Disposition::NoAnswer,
            486 | 600 => Disposition::Busy,
            _ => Disposition::Failed,
        }
    }
}

fn via(endpoint: &EndpointHandle, target: Target) -> String {
    let t = if target.transport == TransportKind::Tcp {
        "TCP"
    } else {
        "UDP"
    };
    format!(
        "SIP/2.0/{t} {};branch={};rport",
        advertised(endpoint, target.addr),
        ids::branch()
    )
}

fn copy_body(from: &Message, to: &mut Message) {
    if !from.body.is_empty() {
        if let Some(ct) = from.headers().first(&HeaderName::ContentType) {
            to.headers_mut()
                .push(HeaderName::ContentType, ct.to_bytestr());
        }
        to.headers_mut()
            .set(HeaderName::ContentLength, from.body.len().to_string());
        to.body = from.body.clone();
    }
}

/// The SDP of a message, when it has one that parses.
fn sdp_of(m: &Message) -> Option<Session> {
    if m.body.is_empty() {
        return None;
    }
    Session::parse_body(&m.body).ok()
}

/// Puts `sdp` as the body of `to`.
fn set_sdp(to: &mut Message, sdp: &Session) {
    let text = sdp.to_string();
    let h = to.headers_mut();
    h.set(
        HeaderName::ContentType,
        ByteStr::from_static("application/sdp"),
    );
    h.set(HeaderName::ContentLength, text.len().to_string());
    to.body = text.into_bytes().into();
}

/// Relays media of the SDP in `from` towards the leg that receives `to`: records the
/// sender's media address and gives the receiver our address and port instead.
fn anchor(
    relay: &Relay,
    from_leg_a: bool,
    from: &Message,
    to: &mut Message,
    our_ip: std::net::IpAddr,
) {
    match sdp_of(from) {
        Some(sdp) => {
            relay.set_peer_from_sdp(from_leg_a, &sdp);
            set_sdp(to, &relay.rewrite(!from_leg_a, &sdp, our_ip));
        }
        // No SDP (or not SDP): passed through as is.
        None => copy_body(from, to),
    }
}

/// Runs one call to its end, then writes its CDR.
pub(crate) async fn run(
    setup: CallSetup,
    a: ServerRequest,
    endpoint: EndpointHandle,
    notices: mpsc::Sender<Notice>,
) {
    let start = cdr::now();
    let call_id = a
        .request
        .call_id()
        .map(|c| c.0.to_string())
        .unwrap_or_default();
    let cdr = setup.cdr.clone();
    let (src, dst) = (setup.caller_exten.clone(), setup.callee.exten.clone());
    let record = match connect(setup, a, endpoint, notices).await {
        Ok((answered, hangup_by)) => Record::new(
            start,
            Some(answered),
            &src,
            &dst,
            &call_id,
            Disposition::Answered,
            None,
            Some(hangup_by),
        ),
        Err(u) => Record::new(
            start,
            None,
            &src,
            &dst,
            &call_id,
            u.disposition(),
            Some(u.status.as_u16()),
            None,
        ),
    };
    cdr.write(record);
}

/// Rings the callee and bridges the call until it ends: the answer time and who hung
/// up, or how the call failed.
async fn connect(
    setup: CallSetup,
    a: ServerRequest,
    endpoint: EndpointHandle,
    notices: mpsc::Sender<Notice>,
) -> Result<(f64, &'static str), Unanswered> {
    let a_tag = ids::token();
    let a_call_id = a
        .request
        .call_id()
        .map(|c| c.0.to_string())
        .unwrap_or_default();
    let (inputs_tx, mut inputs) = mpsc::channel(64);
    let a_key: DialogKey = (a_call_id.clone(), a_tag.clone());
    let _ = notices
        .send(Notice::Route {
            keys: vec![a_key.clone()],
            tx: Some(a.tx),
            inputs: inputs_tx.clone(),
        })
        .await;

    let Some((binding, b_target)) = setup
        .bindings
        .iter()
        .find_map(|b| Some((b, binding_target(b)?)))
    else {
        answer(&a, StatusCode::TEMPORARILY_UNAVAILABLE).await;
        let _ = notices
            .send(Notice::Ended {
                keys: vec![a_key],
                tx: Some(a.tx),
            })
            .await;
        return Err(Unanswered::failed(StatusCode::TEMPORARILY_UNAVAILABLE));
    };

    // The B leg's INVITE: our identities, the caller's SDP.
    let b_tag = ids::token();
    let b_call_id = format!("{}@pbxkit", ids::token());
    let b_key: DialogKey = (b_call_id.clone(), b_tag.clone());
    let _ = notices
        .send(Notice::Route {
            keys: vec![b_key.clone()],
            tx: None,
            inputs: inputs_tx.clone(),
        })
        .await;
    let max_forwards = a
        .request
        .max_forwards()
        .and_then(Result::ok)
        .map_or(70, |m| m.saturating_sub(1).min(70));
    let host = &setup.realm;
    let mut b_invite = Message::request(Method::Invite, binding.uri.clone());
    {
        let h = b_invite.headers_mut();
        h.push(HeaderName::Via, via(&endpoint, b_target));
        h.push(HeaderName::MaxForwards, max_forwards.to_string());
        h.push(
            HeaderName::From,
            format!(
                "\"{}\" <sip:{}@{host}>;tag={b_tag}",
                setup.caller_name.replace('"', ""),
                setup.caller_exten
            ),
        );
        h.push(
            HeaderName::To,
            format!("<sip:{}@{host}>", setup.callee.exten),
        );
        h.push(HeaderName::CallId, b_call_id.clone());
        h.push(HeaderName::CSeq, ByteStr::from_static("1 INVITE"));
        h.push(HeaderName::Contact, our_contact(&endpoint, b_target));
        h.push(HeaderName::ContentLength, ByteStr::from_static("0"));
    }
    let Some(relay) = Relay::start(&setup.ports).await else {
        tracing::warn!("no free media ports");
        answer(&a, StatusCode::SERVICE_UNAVAILABLE).await;
        let _ = notices
            .send(Notice::Ended {
                keys: vec![a_key, b_key],
                tx: Some(a.tx),
            })
            .await;
        return Err(Unanswered::failed(StatusCode::SERVICE_UNAVAILABLE));
    };
    anchor(
        &relay,
        true,
        &a.request,
        &mut b_invite,
        advertised(&endpoint, b_target.addr).ip(),
    );
    tracing::info!(caller = %setup.caller_exten, callee = %setup.callee.exten, call_id = %a_call_id, "call");

    let mut b_tx = match endpoint.send_request(b_invite.clone(), b_target).await {
        Ok(tx) => tx,
        Err(_) => {
            answer(&a, StatusCode::SERVICE_UNAVAILABLE).await;
            let _ = notices
                .send(Notice::Ended {
                    keys: vec![a_key, b_key],
                    tx: Some(a.tx),
                })
                .await;
            return Err(Unanswered::failed(StatusCode::SERVICE_UNAVAILABLE));
        }
    };

    let answered = ringing(
        &setup,
        &a,
        &a_tag,
        &endpoint,
        &b_invite,
        b_target,
        &mut b_tx,
        &mut inputs,
        &relay,
    )
    .await;
    let (b_ok, a_dialog) = match answered {
        Ok(answered) => answered,
        Err(unanswered) => {
            let _ = notices
                .send(Notice::Ended {
                    keys: vec![a_key, b_key],
                    tx: Some(a.tx),
                })
                .await;
            return Err(unanswered);
        }
    };
    let answered_at = cdr::now();
    let Ok(mut b_dialog) = Dialog::uac(&b_invite, &b_ok) else {
        let _ = notices
            .send(Notice::Ended {
                keys: vec![a_key, b_key],
                tx: Some(a.tx),
            })
            .await;
        return Err(Unanswered::failed(StatusCode::SERVER_INTERNAL_ERROR));
    };
    endpoint
        .send_stateless(b_dialog.ack(1, &via(&endpoint, b_target)), b_target)
        .await;
    let mut a_dialog = a_dialog;
    let a_target = a.source;
    // The INVITE transaction is over: CANCELs can no longer reach it.
    let _ = notices
        .send(Notice::Ended {
            keys: vec![],
            tx: Some(a.tx),
        })
        .await;
    let hangup_by = talking(
        &endpoint,
        &mut a_dialog,
        a_target,
        &mut b_dialog,
        b_target,
        &a_call_id,
        &mut inputs,
        &relay,
    )
    .await;
    tracing::info!(
        call_id = %a_call_id,
        rtp_a_to_b = relay.counters.a_to_b.load(std::sync::atomic::Ordering::Relaxed),
        rtp_b_to_a = relay.counters.b_to_a.load(std::sync::atomic::Ordering::Relaxed),
        ignored = relay.counters.ignored.load(std::sync::atomic::Ordering::Relaxed),
        "call ended"
    );
    drop(relay);
    let _ = notices
        .send(Notice::Ended {
            keys: vec![a_key, b_key],
            tx: None,
        })
        .await;
    Ok((answered_at, hangup_by))
}

/// Until the callee answers (returns its 2xx and the A-leg dialog) or the call fails.
#[allow(clippy::too_many_arguments)]
async fn ringing(
    setup: &CallSetup,
    a: &ServerRequest,
    a_tag: &str,
    endpoint: &EndpointHandle,
    b_invite: &Message,
    b_target: Target,
    b_tx: &mut ClientTransaction,
    inputs: &mut mpsc::Receiver<CallInput>,
    relay: &Relay,
) -> Result<(Message, Dialog), Unanswered> {
    let no_answer = tokio::time::sleep(setup.ring_time);
    tokio::pin!(no_answer);
    // Set once the call is given up: what the caller got.
    let mut cancelling: Option<Unanswered> = None;
    loop {
        tokio::select! {
            event = b_tx.next() => {
                let response = match event {
                    Some(ClientEvent::Response(r)) => r,
                    Some(ClientEvent::Timeout) | Some(ClientEvent::TransportError) | None => {
                        return Err(match cancelling {
                            Some(given_up) => given_up,
                            None => {
                                answer(a, StatusCode::TEMPORARILY_UNAVAILABLE).await;
                                Unanswered::failed(StatusCode::TEMPORARILY_UNAVAILABLE)
                            }
                        });
                    }
                };
                let Some(code) = response.status() else {
                    continue;
                };
                if code == StatusCode::TRYING {
                    continue;
                }
                if let Some(given_up) = cancelling.take() {
                    // The callee answered or failed after our CANCEL: nothing reaches the caller.
                    if code.is_success() {
                        // It answered anyway: hang it up.
                        if let Ok(mut d) = Dialog::uac(b_invite, &response) {
                            endpoint.send_stateless(d.ack(1, &via(endpoint, b_target)), b_target).await;
                            let bye = d.request(Method::Bye, &via(endpoint, b_target), None);
                            let _ = endpoint.send_request(bye, b_target).await;
                        }
                    }
                    if !code.is_provisional() {
                        return Err(given_up);
                    }
                    cancelling = Some(given_up);
                    continue;
                }
                let mut relayed = Message::response_to(&a.request, code, Some(a_tag));
                if let pbxkit_sip::StartLine::Response { reason, .. } = &response.start {
                    relayed.start = pbxkit_sip::StartLine::Response { code, reason: reason.clone() };
                }
                if code.as_u16() < 300 {
                    relayed.headers_mut().push(HeaderName::Contact, our_contact(endpoint, a.source));
                    anchor(relay, false, &response, &mut relayed, advertised(endpoint, a.source.addr).ip());
                }
                let a_dialog = code.is_success().then(|| Dialog::uas(&a.request, &relayed).ok()).flatten();
                let _ = a.respond(relayed).await;
                if code.is_success() {
                    return a_dialog
                        .map(|d| (response, d))
                        .ok_or(Unanswered::failed(StatusCode::SERVER_INTERNAL_ERROR));
                }
                if !code.is_provisional() {
                    return Err(Unanswered::failed(code));
                }
            }
            input = inputs.recv() => match input {
                Some(CallInput::Cancelled) if cancelling.is_none() => {
                    cancelling = Some(Unanswered {
                        status: StatusCode::REQUEST_TERMINATED,
                        no_answer: true,
                    });
                    let _ = endpoint.send_request(cancel_for(b_invite), b_target).await;
                }
                Some(CallInput::Shutdown) if cancelling.is_none() => {
                    cancelling = Some(Unanswered::failed(StatusCode::SERVICE_UNAVAILABLE));
                    let _ = endpoint.send_request(cancel_for(b_invite), b_target).await;
                    answer(a, StatusCode::SERVICE_UNAVAILABLE).await;
                }
                Some(CallInput::Request(req)) => answer(&req, StatusCode::new(491).unwrap_or(StatusCode::BAD_REQUEST)).await,
                Some(CallInput::Ack | CallInput::Cancelled | CallInput::Shutdown) => {}
                None => {
                    return Err(cancelling
                        .unwrap_or(Unanswered::failed(StatusCode::SERVICE_UNAVAILABLE)))
                }
            },
            () = &mut no_answer, if cancelling.is_none() => {
                // Nobody answered within the ring time.
                cancelling = Some(Unanswered {
                    status: StatusCode::TEMPORARILY_UNAVAILABLE,
                    no_answer: true,
                });
                let _ = endpoint.send_request(cancel_for(b_invite), b_target).await;
                answer(a, StatusCode::TEMPORARILY_UNAVAILABLE).await;
            }
        }
    }
}

/// While the call is up: relay BYE from either side, answer the rest. Returns who
/// hung up.
#[allow(clippy::too_many_arguments)]
async fn talking(
    endpoint: &EndpointHandle,
    a_dialog: &mut Dialog,
    a_target: Target,
    b_dialog: &mut Dialog,
    b_target: Target,
    a_call_id: &str,
    inputs: &mut mpsc::Receiver<CallInput>,
    relay: &Relay,
) -> &'static str {
    while let Some(input) = inputs.recv().await {
        let req = match input {
            CallInput::Request(req) => req,
            CallInput::Shutdown => {
                // Both legs are told at once; each BYE waits a bounded time.
                let bye_a = a_dialog.request(Method::Bye, &via(endpoint, a_target), None);
                let bye_b = b_dialog.request(Method::Bye, &via(endpoint, b_target), None);
                tokio::join!(
                    send_bye(endpoint, bye_a, a_target, Duration::from_secs(2)),
                    send_bye(endpoint, bye_b, b_target, Duration::from_secs(2)),
                );
                return "pbx";
            }
            CallInput::Ack | CallInput::Cancelled => continue,
        };
        let from_a = req
            .request
            .call_id()
            .is_ok_and(|c| c.0.as_str() == a_call_id);
        let (this, other, other_target) = if from_a {
            (&mut *a_dialog, &mut *b_dialog, b_target)
        } else {
            (&mut *b_dialog, &mut *a_dialog, a_target)
        };
        if let Err(e) = this.handle_request(&req.request) {
            answer(&req, e.status()).await;
            continue;
        }
        match req.request.method() {
            Some(Method::Bye) => {
                answer(&req, StatusCode::OK).await;
                let bye = other.request(Method::Bye, &via(endpoint, other_target), None);
                send_bye(endpoint, bye, other_target, Duration::from_secs(32)).await;
                return if from_a { "caller" } else { "callee" };
            }
            // Hold, resume and codec changes: the offer goes to the other leg through
            // the relay, and its answer comes back the same way.
            Some(method @ (Method::Invite | Method::Update)) => {
                let method = method.clone();
                let this_target = if from_a { a_target } else { b_target };
                let media = Media {
                    relay,
                    from_leg_a: from_a,
                    this_target,
                    other_target,
                };
                renegotiate(endpoint, &req, method, other, &media).await;
            }
            _ => answer(&req, StatusCode::OK).await,
        }
    }
    "pbx"
}

/// The media side of a renegotiation: which leg offers, and where both legs are.
struct Media<'a> {
    relay: &'a Relay,
    from_leg_a: bool,
    this_target: Target,
    other_target: Target,
}

/// Relays a re-INVITE or UPDATE (`req`, on one leg) to the other leg's dialog, with
/// the media anchored on the relay both ways, and answers `req` with the outcome.
async fn renegotiate(
    endpoint: &EndpointHandle,
    req: &ServerRequest,
    method: Method,
    other: &mut Dialog,
    media: &Media<'_>,
) {
    let other_target = media.other_target;
    let mut offer = other.request(method.clone(), &via(endpoint, other_target), None);
    offer
        .headers_mut()
        .push(HeaderName::Contact, our_contact(endpoint, other_target));
    let other_ip = advertised(endpoint, other_target.addr).ip();
    anchor(
        media.relay,
        media.from_leg_a,
        &req.request,
        &mut offer,
        other_ip,
    );
    let seq = offer.cseq().map_or(0, |c| c.seq);
    let Ok(mut tx) = endpoint.send_request(offer, other_target).await else {
        answer(req, StatusCode::SERVICE_UNAVAILABLE).await;
        return;
    };
    let response = match tokio::time::timeout(Duration::from_secs(32), tx.final_response()).await {
        Ok(ClientEvent::Response(r)) => r,
        _ => {
            answer(req, StatusCode::REQUEST_TIMEOUT).await;
            return;
        }
    };
    let Some(code) = response.status() else {
        return;
    };
    other.handle_response(&response);
    if code.is_success() && method == Method::Invite {
        endpoint
            .send_stateless(other.ack(seq, &via(endpoint, other_target)), other_target)
            .await;
    }
    let mut relayed = Message::response_to(&req.request, code, None);
    if let pbxkit_sip::StartLine::Response { reason, .. } = &response.start {
        relayed.start = pbxkit_sip::StartLine::Response {
            code,
            reason: reason.clone(),
        };
    }
    if code.is_success() {
        let this_target = media.this_target;
        relayed
            .headers_mut()
            .push(HeaderName::Contact, our_contact(endpoint, this_target));
        let this_ip = advertised(endpoint, this_target.addr).ip();
        anchor(
            media.relay,
            !media.from_leg_a,
            &response,
            &mut relayed,
            this_ip,
        );
    }
    let _ = req.respond(relayed).await;
}

/// Sends a BYE and waits up to `wait` for its answer (the call is over either way).
async fn send_bye(endpoint: &EndpointHandle, bye: Message, target: Target, wait: Duration) {
    if let Ok(mut tx) = endpoint.send_request(bye, target).await {
        let _ = tokio::time::timeout(wait, tx.final_response()).await;
    }
}
