//! One call: the PBX as a back-to-back user agent. The caller's INVITE (A leg) is
//! answered by the PBX, which places its own INVITE to the callee (B leg) and relays
//! provisional and final responses, the SDP bodies, BYE and CANCEL between the legs.
//!
//! Media is anchored on the PBX (see [`crate::media`]): re-INVITEs and UPDATEs (hold,
//! resume, codec changes) are relayed with their SDP rewritten both ways. Forking to
//! several contacts comes next.

use crate::cdr::{self, Cdr, Disposition, Record};
use crate::codecs::Transcoding;
use crate::fork::{self, BranchEvent, Stop};
use crate::ids;
use crate::media::{PortPool, Relay};
use crate::service::SharedRegistrar;
use crate::service::{DialogKey, Notice, advertised, answer, binding_target, our_contact};
use pbxkit::hangup::{HangupCause, Party};
use pbxkit_dialplan::decision::RingTarget;
use pbxkit_dialplan::{Decision, Dialplan};
use pbxkit_rtp::tones::CallProgress;
use pbxkit_sip::cause::Reason;
use pbxkit_sip::dialog::{Dialog, SessionTimer};
use pbxkit_sip::endpoint::{ClientEvent, EndpointHandle, ServerRequest};
use pbxkit_sip::registrar::Binding;
use pbxkit_sip::sdp::Session;
use pbxkit_sip::transaction::{Target, TransportKind};
use pbxkit_sip::{ByteStr, HeaderName, Message, Method, StatusCode, Uri};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// What the main loop forwards to a call.
#[derive(Debug)]
pub(crate) enum CallInput {
    /// An in-dialog request for either leg (boxed: it is much larger than the rest).
    Request(Box<ServerRequest>),
    /// An ACK for either leg.
    Ack,
    /// The caller CANCELled (the endpoint has answered 487 on the A leg).
    Cancelled,
    /// The caller never ACKed the PBX's 2xx (64×T1): the session is to be ended
    /// with BYE on both legs (RFC 3261 §13.3.1.4).
    NoAck,
    /// The PBX is stopping: end the call now (CANCEL or BYE both legs).
    Shutdown,
    /// Another call's attended transfer replaces the dialog with Call-ID `replaced`:
    /// give the other side away through `reply` (or, still ringing, the number rung)
    /// and end; a call that can do neither drops `reply`.
    HandOver {
        replaced: String,
        reply: oneshot::Sender<Handover>,
    },
}

/// What a call gives away for an attended transfer.
#[derive(Debug)]
pub(crate) enum Handover {
    /// Its answered other side, with the SDP origin that phone has seen so far.
    Side {
        // Boxed: a side is much larger than a number.
        side: Box<Side>,
        origin: crate::media::Origin,
    },
    /// It was still ringing this number (a "semi-attended" transfer): the transfer
    /// rings it again, as a blind transfer, while this call stops ringing it.
    Ringing(String),
}

/// Who calls what; the dialplan decides where the call goes.
pub(crate) struct CallSetup {
    pub(crate) config: Arc<crate::config::Config>,
    /// Which trunks answer (qualify).
    pub(crate) trunk_states: Arc<crate::trunks::TrunkStates>,
    /// The context the call starts in: `default` for users, the incall context for
    /// calls from trunks.
    pub(crate) context: &'static str,
    /// The caller's number (a user's extension, or what a trunk sent).
    pub(crate) caller_exten: String,
    pub(crate) caller_name: String,
    /// The calling user; `None` for calls from trunks.
    pub(crate) caller_user: Option<String>,
    pub(crate) dialed: String,
    pub(crate) dialplan: Arc<Dialplan>,
    pub(crate) registrar: SharedRegistrar,
    /// Calls in progress per user when the call arrived (for the busy rule).
    pub(crate) live: crate::groups::Live,
    pub(crate) realm: String,
    pub(crate) ports: Arc<PortPool>,
    pub(crate) cdr: Cdr,
    pub(crate) bus: crate::events::Bus,
}

/// How ringing ended without an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// The ring time ran out.
    NoAnswer,
    /// Every contact said busy.
    Busy,
    /// The callee has no registered contact.
    NoContact,
    /// Every contact failed otherwise.
    Failed,
    /// A contact gave a global failure (6xx): no other destination is tried.
    Global,
    /// The caller hung up (CANCEL); it has had its 487.
    CallerGone,
    /// The PBX is stopping.
    Shutdown,
}

/// How a call that was not answered ended: the status the caller gets.
#[derive(Debug, Clone)]
pub(crate) struct Unanswered {
    pub(crate) status: StatusCode,
    pub(crate) ending: Ending,
    /// The response that says how to try again: the 401/407 of a callee that wants
    /// credentials (trunks), or a 422 with the callee's Min-SE.
    pub(crate) challenge: Option<Box<Message>>,
}

impl Unanswered {
    pub(crate) fn new(status: StatusCode, ending: Ending) -> Unanswered {
        Unanswered {
            status,
            ending,
            challenge: None,
        }
    }

    fn failed(status: StatusCode) -> Unanswered {
        Unanswered::new(status, Ending::Failed)
    }

    fn disposition(&self) -> Disposition {
        match self.ending {
            Ending::NoAnswer | Ending::CallerGone => Disposition::NoAnswer,
            Ending::Busy => Disposition::Busy,
            _ if matches!(self.status.as_u16(), 486 | 600) => Disposition::Busy,
            _ => Disposition::Failed,
        }
    }
}

/// How an answered call went: when it was answered, who answered, who hung up.
pub(crate) struct Answered {
    at: f64,
    callee: String,
    hangup: HangupCause,
    /// The users whose call counts the call held when it ended (see [`Side::holder`]).
    holders: Vec<String>,
}

pub(crate) fn via(endpoint: &EndpointHandle, target: Target) -> String {
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
pub(crate) fn sdp_of(m: &Message) -> Option<Session> {
    if m.body.is_empty() {
        return None;
    }
    Session::parse_body(&m.body).ok()
}

/// Puts `sdp` as the body of `to`.
pub(crate) fn set_sdp(to: &mut Message, sdp: &Session) {
    let text = sdp.to_string();
    let h = to.headers_mut();
    h.set(
        HeaderName::ContentType,
        ByteStr::from_static("application/sdp"),
    );
    h.set(HeaderName::ContentLength, text.len().to_string());
    to.body = text.into_bytes().into();
}

/// Relays the SDP offer in `from` towards the leg that receives `to`: records the
/// offerer's media address and gives the receiver our address and port instead, with
/// the codecs the PBX can transcode added (see [`crate::codecs`]).
fn anchor_offer(
    relay: &Relay,
    from_leg_a: bool,
    from: &Message,
    to: &mut Message,
    our_ip: std::net::IpAddr,
) {
    match sdp_of(from) {
        Some(sdp) => {
            relay.set_peer_from_sdp(from_leg_a, &sdp);
            let offer = crate::codecs::widen(&sdp);
            set_sdp(to, &relay.rewrite(!from_leg_a, &offer, our_ip));
        }
        // No SDP (or not SDP): passed through as is.
        None => copy_body(from, to),
    }
}

/// Relays the SDP answer in `from` (to `offer`, the other leg's) towards the leg
/// that receives `to`, anchored like an offer; when the answerer chose a codec the
/// offerer lacks, the offerer is answered with one of its own and the relay
/// transcodes.
fn anchor_answer(
    relay: &Relay,
    from_leg_a: bool,
    offer: Option<&Session>,
    from: &Message,
    to: &mut Message,
    our_ip: std::net::IpAddr,
) {
    let Some(sdp) = sdp_of(from) else {
        copy_body(from, to);
        return;
    };
    relay.set_peer_from_sdp(from_leg_a, &sdp);
    let (answer, formats) = match offer {
        Some(offer) => crate::codecs::settle(offer, &sdp),
        None => (sdp, None),
    };
    relay.set_transcoding(formats.map(|(offerer, answerer)| {
        if from_leg_a {
            Transcoding {
                a: answerer,
                b: offerer,
            }
        } else {
            Transcoding {
                a: offerer,
                b: answerer,
            }
        }
    }));
    set_sdp(to, &relay.rewrite(!from_leg_a, &answer, our_ip));
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
    let bus = setup.bus.clone();
    let (src, dst) = (setup.caller_exten.clone(), setup.dialed.clone());
    bus.publish(crate::events::Event::CallCreated {
        call_id: call_id.clone(),
        caller: src.clone(),
        dialed: dst.clone(),
    });
    // The service counted the caller's call when it arrived; it is given back here.
    let in_use = setup.live.in_use.clone();
    let record = match connect(setup, a, endpoint, &notices).await {
        Ok(answered) => {
            // Whoever is still on the call is released (transfers moved the counts
            // of the parties who left or joined as they happened).
            for holder in &answered.holders {
                in_use.remove(holder);
            }
            let record = Record::new(
                start,
                Some(answered.at),
                &src,
                &dst,
                &call_id,
                Disposition::Answered,
                None,
                Some(answered.hangup),
            );
            bus.publish(crate::events::Event::CallEnded {
                call_id: call_id.clone(),
                answered: true,
                cause: answered.hangup.q850(),
            });
            record
        }
        Err(u) => {
            bus.publish(crate::events::Event::CallEnded {
                call_id: call_id.clone(),
                answered: false,
                cause: pbxkit_sip::cause::cause_for_status(u.status),
            });
            in_use.remove(&src);
            Record::new(
                start,
                None,
                &src,
                &dst,
                &call_id,
                u.disposition(),
                Some(u.status.as_u16()),
                None,
            )
        }
    };
    cdr.write(record);
}

/// Follows the dialplan's decision for the call: rings users, follows forwards and
/// fallbacks, and bridges the call when someone answers, until it ends.
async fn connect(
    setup: CallSetup,
    a: ServerRequest,
    endpoint: EndpointHandle,
    notices: &mpsc::Sender<Notice>,
) -> Result<Answered, Unanswered> {
    let a_tag = ids::token();
    let a_call_id = a
        .request
        .call_id()
        .map(|c| c.0.to_string())
        .unwrap_or_default();
    if let Err(min_se) = crate::timer::for_caller(&a.request, &setup.config.sip) {
        // RFC 4028 §8.1: an interval below our minimum is refused with ours.
        let mut r = Message::response_to(
            &a.request,
            StatusCode::new(422).unwrap_or(StatusCode::BAD_REQUEST),
            Some(&a_tag),
        );
        r.headers_mut().push(HeaderName::MinSe, min_se.to_string());
        let _ = a.respond(r).await;
        return Err(Unanswered::failed(
            StatusCode::new(422).unwrap_or(StatusCode::BAD_REQUEST),
        ));
    }
    let (inputs_tx, mut inputs) = mpsc::channel(crate::service::CALL_QUEUE);
    let a_key: DialogKey = (a_call_id.clone(), a_tag.clone());
    let _ = notices
        .send(Notice::Route {
            keys: vec![a_key.clone()],
            tx: Some(a.tx),
            inputs: inputs_tx.clone(),
        })
        .await;
    let mut keys = vec![a_key];
    let outcome = route(
        &setup,
        &a,
        &a_tag,
        &a_call_id,
        &endpoint,
        notices,
        &inputs_tx,
        &mut inputs,
        &mut keys,
    )
    .await;
    if let Err(u) = &outcome
        && u.ending != Ending::CallerGone
    {
        // Callers from the telephone network hear why in-band, as from an exchange.
        let tone = failure_tone(u).filter(|_| setup.caller_user.is_none());
        let still_there = match tone {
            Some(kind) => play_failure(&setup, &a, &a_tag, &endpoint, &mut inputs, kind).await,
            None => true,
        };
        if still_there {
            let _ = a
                .respond(Message::response_to(&a.request, u.status, Some(&a_tag)))
                .await;
        }
    }
    let _ = notices
        .send(Notice::Ended {
            keys,
            tx: Some(a.tx),
        })
        .await;
    outcome
}

/// How long a failed call from a trunk hears its busy or congestion tone.
const FAILURE_TONE_TIME: Duration = Duration::from_secs(3);

/// The tone a failed call's caller hears: busy when the callee was busy, congestion
/// when it could not be reached (Asterisk's Busy() and Congestion()).
fn failure_tone(u: &Unanswered) -> Option<CallProgress> {
    match u.ending {
        Ending::Busy => Some(CallProgress::Busy),
        Ending::NoContact => Some(CallProgress::Congestion),
        Ending::Failed if u.status.as_u16() >= 500 => Some(CallProgress::Congestion),
        _ => None,
    }
}

/// Plays `kind` to the caller in early media (183 with our SDP) for
/// [`FAILURE_TONE_TIME`]; false when the caller hung up meanwhile (it has had its
/// 487, nothing more is sent).
async fn play_failure(
    setup: &CallSetup,
    a: &ServerRequest,
    a_tag: &str,
    endpoint: &EndpointHandle,
    inputs: &mut mpsc::Receiver<CallInput>,
    kind: CallProgress,
) -> bool {
    let Some(offer) = sdp_of(&a.request) else {
        return true;
    };
    let Some(format) = crate::codecs::Format::received_by(&offer) else {
        return true;
    };
    let Some(relay) = Relay::start(&setup.ports).await else {
        return true;
    };
    relay.set_peer_from_sdp(true, &offer);
    let mut progress = Message::response_to(&a.request, StatusCode::SESSION_PROGRESS, Some(a_tag));
    progress
        .headers_mut()
        .push(HeaderName::Contact, our_contact(endpoint, a.source));
    let ip = advertised(endpoint, a.source.addr).ip();
    let ours = crate::codecs::answer_with(&offer, &format);
    set_sdp(&mut progress, &relay.rewrite(true, &ours, ip));
    let _ = a.respond(progress).await;
    let _tone = relay.play(true, setup.config.pbx.tone(kind), &format);
    let wait = tokio::time::sleep(FAILURE_TONE_TIME);
    tokio::pin!(wait);
    loop {
        tokio::select! {
            () = &mut wait => return true,
            input = inputs.recv() => match input {
                Some(CallInput::Cancelled) | None => return false,
                Some(CallInput::Shutdown) => return true,
                Some(CallInput::Request(req)) => {
                    answer(&req, StatusCode::new(491).unwrap_or(StatusCode::BAD_REQUEST)).await;
                }
                Some(CallInput::Ack | CallInput::NoAck | CallInput::HandOver { .. }) => {}
            },
        }
    }
}

/// The call attempt the dialplan decides on.
pub(crate) fn attempt<'a>(
    setup: &'a CallSetup,
    context: &'a str,
    number: &'a str,
) -> pbxkit_dialplan::CallAttempt<'a> {
    pbxkit_dialplan::CallAttempt {
        context,
        caller: pbxkit_dialplan::Caller {
            number: &setup.caller_exten,
            name: &setup.caller_name,
            user: setup.caller_user.as_deref(),
        },
        dialed: number,
        at: jiff::Timestamp::now(),
        user_state: &setup.live,
    }
}

/// A user in do-not-disturb or at its simultaneous-calls limit is busy for the
/// caller (the dialplan says so in its trace; its decision is the busy destination,
/// the same as for a phone that answers busy).
fn note_busy(routed: &pbxkit_dialplan::Routed<'_>, last: &mut Unanswered) {
    use pbxkit_dialplan::decision::{Outcome, Rule};
    if routed
        .trace
        .iter()
        .any(|step| matches!(step.rule, Rule::Dnd | Rule::Busy) && step.outcome == Outcome::Decided)
    {
        *last = Unanswered::new(StatusCode::BUSY_HERE, Ending::Busy);
    }
}

/// Waits `delay` between two ring steps; the caller may hang up meanwhile, and the
/// PBX may stop.
async fn pause(inputs: &mut mpsc::Receiver<CallInput>, delay: Duration) -> Result<(), Unanswered> {
    let wait = tokio::time::sleep(delay);
    tokio::pin!(wait);
    loop {
        tokio::select! {
            () = &mut wait => return Ok(()),
            input = inputs.recv() => match input {
                Some(CallInput::Cancelled) => {
                    return Err(Unanswered::new(StatusCode::REQUEST_TERMINATED, Ending::CallerGone));
                }
                Some(CallInput::Shutdown) | None => {
                    return Err(Unanswered::new(StatusCode::SERVICE_UNAVAILABLE, Ending::Shutdown));
                }
                // Nothing else can be done before the call is answered.
                Some(CallInput::Request(req)) => {
                    answer(&req, StatusCode::new(491).unwrap_or(StatusCode::BAD_REQUEST)).await;
                }
                Some(CallInput::Ack | CallInput::NoAck | CallInput::HandOver { .. }) => {}
            },
        }
    }
}

/// The status for a number the dialplan does not know.
fn not_found() -> Unanswered {
    Unanswered::failed(StatusCode::NOT_FOUND)
}

/// Executes decisions until the call is answered and over, or cannot go on.
#[allow(clippy::too_many_arguments)]
async fn route(
    setup: &CallSetup,
    a: &ServerRequest,
    a_tag: &str,
    a_call_id: &str,
    endpoint: &EndpointHandle,
    notices: &mpsc::Sender<Notice>,
    inputs_tx: &mpsc::Sender<CallInput>,
    inputs: &mut mpsc::Receiver<CallInput>,
    keys: &mut Vec<DialogKey>,
) -> Result<Answered, Unanswered> {
    let dialplan = &*setup.dialplan;
    // What the caller gets if the plan ends without an answer: the last ringing's
    // outcome (486 when the callee was busy), else 480.
    let mut last = Unanswered::new(StatusCode::TEMPORARILY_UNAVAILABLE, Ending::NoContact);
    let mut decision = match dialplan.decide(&attempt(setup, setup.context, &setup.dialed)) {
        Ok(routed) => {
            tracing::debug!(call_id = %a_call_id, "dialplan:\n{routed}");
            note_busy(&routed, &mut last);
            routed.decision
        }
        Err(e) => {
            tracing::info!(call_id = %a_call_id, dialed = %setup.dialed, error = %e, "not routed");
            return Err(not_found());
        }
    };
    let Some(relay) = Relay::start(&setup.ports).await else {
        tracing::warn!("no free media ports");
        return Err(Unanswered::failed(StatusCode::SERVICE_UNAVAILABLE));
    };
    for _ in 0..=pbxkit_dialplan::decision::MAX_DEPTH {
        decision = match decision {
            Decision::Ring(plan) => {
                let mut ended = last;
                for step in &plan.steps {
                    if !step.delay.is_zero() {
                        // A group's retry delay: the caller keeps hearing ringback.
                        pause(inputs, step.delay).await?;
                    }
                    let ring_time = step.timeout.unwrap_or(Duration::from_secs(3600));
                    let round = Round {
                        targets: &step.targets,
                        group: plan.group,
                        ring_time,
                    };
                    let leg = ALeg {
                        setup,
                        a,
                        a_tag,
                        a_call_id,
                        endpoint,
                        notices,
                        inputs_tx,
                        relay: &relay,
                    };
                    match ring_round(&leg, inputs, keys, &round).await {
                        Ok(answered) => {
                            if let Some(group) = plan.group {
                                let _ = notices
                                    .send(Notice::Group {
                                        group: group.to_owned(),
                                        member: answered.callee.clone(),
                                        ended: Some(jiff::Timestamp::now()),
                                    })
                                    .await;
                            }
                            return Ok(answered);
                        }
                        Err(u) => ended = u,
                    }
                    if matches!(
                        ended.ending,
                        Ending::CallerGone | Ending::Shutdown | Ending::Global
                    ) {
                        return Err(ended);
                    }
                }
                last = ended;
                let fallbacks = &plan.fallbacks;
                let next = match last.ending {
                    Ending::Busy => &fallbacks.busy,
                    Ending::NoAnswer => &fallbacks.no_answer,
                    Ending::NoContact => &fallbacks.failure,
                    _ => &fallbacks.congestion,
                };
                (**next).clone()
            }
            Decision::Forward {
                destination,
                context,
                reason,
            } => {
                tracing::info!(call_id = %a_call_id, to = %destination, ?reason, "forward");
                match dialplan.decide(&attempt(setup, context, &destination)) {
                    Ok(routed) => {
                        note_busy(&routed, &mut last);
                        routed.decision
                    }
                    Err(_) => return Err(not_found()),
                }
            }
            Decision::Destination(d) => {
                match dialplan.decide_destination(d, &attempt(setup, setup.context, &setup.dialed))
                {
                    Ok(routed) => routed.decision,
                    Err(_) => return Err(last),
                }
            }
            // No voicemail or prompts yet: the caller gets how ringing ended.
            Decision::Voicemail { greeting, .. } => {
                return Err(match greeting {
                    Some(pbxkit_dialplan::decision::Greeting::Busy) => {
                        Unanswered::new(StatusCode::BUSY_HERE, Ending::Busy)
                    }
                    _ => last,
                });
            }
            Decision::Play { .. } => return Err(last),
            Decision::Trunks {
                dial, caller_id, ..
            } => {
                let leg = ALeg {
                    setup,
                    a,
                    a_tag,
                    a_call_id,
                    endpoint,
                    notices,
                    inputs_tx,
                    relay: &relay,
                };
                return crate::trunks::dial(&leg, inputs, keys, &dial, &caller_id).await;
            }
            Decision::Hangup {
                cause: pbxkit_dialplan::decision::HangupCause::Forbidden,
            } => return Err(Unanswered::failed(StatusCode::FORBIDDEN)),
            Decision::Hangup { .. } => return Err(last),
            other => {
                tracing::info!(call_id = %a_call_id, decision = ?other, "not supported by this PBX yet");
                return Err(Unanswered::failed(
                    StatusCode::new(501).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
                ));
            }
        };
    }
    tracing::warn!(call_id = %a_call_id, "too many forwards: loop?");
    Err(Unanswered::failed(
        StatusCode::new(482).unwrap_or(last.status),
    ))
}

/// Who a set of branches rings, for how long, and the counts they hold.
pub(crate) struct Rung<'a, 'h> {
    /// Who answers when a branch has no user of its own (`trunk:<name>`).
    pub(crate) callee: &'a str,
    /// The group whose history learns who answered.
    pub(crate) group: Option<&'a str>,
    pub(crate) ring_time: Duration,
    /// The counts of the users rung (`None`: nothing held while ringing).
    pub(crate) holds: Option<&'h mut crate::inuse::Holds>,
}

/// One round of ringing: these lines, for this long.
struct Round<'a> {
    /// The users rung, with their lines.
    targets: &'a [RingTarget<'a>],
    /// The group whose members ring, for its history.
    group: Option<&'a str>,
    ring_time: Duration,
}

/// The caller's side of a call, as the ringing code needs it.
pub(crate) struct ALeg<'a> {
    pub(crate) setup: &'a CallSetup,
    pub(crate) a: &'a ServerRequest,
    pub(crate) a_tag: &'a str,
    pub(crate) a_call_id: &'a str,
    pub(crate) endpoint: &'a EndpointHandle,
    pub(crate) notices: &'a mpsc::Sender<Notice>,
    pub(crate) inputs_tx: &'a mpsc::Sender<CallInput>,
    pub(crate) relay: &'a Relay,
}

impl ALeg<'_> {
    /// A B-leg INVITE to `uri` at `target`: its own dialog, the caller's SDP anchored.
    pub(crate) fn invite(&self, uri: Uri, target: Target, from: &str, to: &str) -> Branch {
        let mut branch = self.invite_with(uri, target, from, to);
        let our_ip = advertised(self.endpoint, target.addr).ip();
        anchor_offer(
            self.relay,
            true,
            &self.a.request,
            &mut branch.invite,
            our_ip,
        );
        branch
    }

    /// A B-leg INVITE to `uri` at `target`, with no body yet.
    pub(crate) fn invite_with(&self, uri: Uri, target: Target, from: &str, to: &str) -> Branch {
        let (call_id, tag) = (format!("{}@pbxkit", ids::token()), ids::token());
        let max_forwards = self
            .a
            .request
            .max_forwards()
            .and_then(Result::ok)
            .map_or(70, |m| m.saturating_sub(1).min(70));
        let mut invite = Message::request(Method::Invite, uri);
        let h = invite.headers_mut();
        h.push(HeaderName::Via, via(self.endpoint, target));
        h.push(HeaderName::MaxForwards, max_forwards.to_string());
        h.push(HeaderName::From, format!("{from};tag={tag}"));
        // RFC 3325: the identity the PBX vouches for (it authenticated the caller), and
        // the same in Remote-Party-ID for phones that only read that one.
        h.push(HeaderName::PAssertedIdentity, from);
        h.push(
            HeaderName::RemotePartyId,
            format!("{from};party=calling;screen=yes;privacy=off"),
        );
        h.push(HeaderName::To, to);
        h.push(HeaderName::CallId, call_id.clone());
        h.push(HeaderName::CSeq, ByteStr::from_static("1 INVITE"));
        h.push(HeaderName::Contact, our_contact(self.endpoint, target));
        h.push(HeaderName::ContentLength, ByteStr::from_static("0"));
        crate::timer::offer(&mut invite, &self.setup.config.sip);
        Branch {
            invite,
            target,
            key: (call_id, tag),
            user: None,
        }
    }

    /// The caller as the From of a B leg towards `host`.
    pub(crate) fn from(&self, host: &str) -> String {
        let setup = self.setup;
        format!(
            "\"{}\" <sip:{}@{host}>",
            setup.caller_name.replace(['"', '\\'], ""),
            setup.caller_exten
        )
    }
}

/// Rings every registered contact of `round.lines`; when one answers, bridges the
/// call until it ends.
async fn ring_round(
    leg: &ALeg<'_>,
    inputs: &mut mpsc::Receiver<CallInput>,
    keys: &mut Vec<DialogKey>,
    round: &Round<'_>,
) -> Result<Answered, Unanswered> {
    let now = crate::service::unix_now();
    let bindings: Vec<(&str, Binding)> = match leg.setup.registrar.lock() {
        Ok(registrar) => round
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
    // Each user rung holds one of its simultaneous calls while its phones ring,
    // checked and taken at once: a user at its limit is busy and not rung (a group
    // that rings members in use takes one anyway).
    let ring_in_use = round
        .group
        .and_then(|g| leg.setup.config.group(g))
        .is_some_and(|g| g.ring_in_use);
    let mut holds = crate::inuse::Holds::new(&leg.setup.live.in_use);
    let mut busy = false;
    let bindings: Vec<(&str, Binding)> = bindings
        .into_iter()
        .filter(|(user, _)| {
            let limit = round
                .targets
                .iter()
                .find(|t| t.user == *user)
                .map(|t| t.simultaneous_calls)
                .filter(|_| !ring_in_use);
            // One count per user, however many phones it has.
            let held = holds.held(user) || holds.take(user, limit);
            busy |= !held;
            held
        })
        .collect();
    if bindings.is_empty() && busy {
        return Err(Unanswered::new(StatusCode::BUSY_HERE, Ending::Busy));
    }
    // Every registered contact of every target rings at once (parallel forking).
    let host = &leg.setup.realm;
    let from = leg.from(host);
    let branches: Vec<Branch> = bindings
        .iter()
        .filter_map(|(user, b)| {
            let to = format!("<sip:{user}@{host}>");
            let mut branch = leg.invite(b.uri.clone(), binding_target(b)?, &from, &to);
            branch.user = Some((*user).to_owned());
            Some(branch)
        })
        .collect();
    if branches.is_empty() {
        return Err(Unanswered::new(
            StatusCode::TEMPORARILY_UNAVAILABLE,
            Ending::NoContact,
        ));
    }
    let callee = round.targets.first().map_or("", |t| t.user);
    let mut rung = Rung {
        callee,
        group: round.group,
        ring_time: round.ring_time,
        holds: Some(&mut holds),
    };
    let outcome = ring_branches(leg, inputs, keys, branches.clone(), &mut rung).await;
    // A callee that wants a longer session interval (422) is asked again with it.
    match &outcome {
        Err(u) if u.status.as_u16() == 422 => {
            let Some(too_brief) = &u.challenge else {
                return outcome;
            };
            let retries: Vec<Branch> = branches
                .iter()
                .filter_map(|b| with_min_se(b, too_brief, leg.endpoint))
                .collect();
            if retries.is_empty() {
                return outcome;
            }
            ring_branches(leg, inputs, keys, retries, &mut rung).await
        }
        _ => outcome,
    }
}

/// Rings `branches` together for `ring_time`; when one answers, bridges the call
/// until it ends. Who answered is the branch's user, else `callee` (`trunk:<name>`);
/// a `group`'s history learns who answered its call.
pub(crate) async fn ring_branches(
    leg: &ALeg<'_>,
    inputs: &mut mpsc::Receiver<CallInput>,
    keys: &mut Vec<DialogKey>,
    branches: Vec<Branch>,
    rung: &mut Rung<'_, '_>,
) -> Result<Answered, Unanswered> {
    let (callee, group, ring_time) = (rung.callee, rung.group, rung.ring_time);
    let ALeg {
        setup,
        a,
        a_tag,
        a_call_id,
        endpoint,
        notices,
        inputs_tx,
        relay,
    } = *leg;
    let b_keys: Vec<DialogKey> = branches.iter().map(|b| b.key.clone()).collect();
    keys.extend(b_keys.iter().cloned());
    let _ = notices
        .send(Notice::Route {
            keys: b_keys,
            tx: None,
            inputs: inputs_tx.clone(),
        })
        .await;
    tracing::info!(
        caller = %setup.caller_exten,
        callee = %callee,
        group = %group.unwrap_or("-"),
        call_id = %a_call_id,
        contacts = branches.len(),
        "call"
    );
    let (events_tx, mut events) = mpsc::channel(16);
    let (stop, _) = watch::channel(Stop::Ringing);
    for (i, branch) in branches.iter().enumerate() {
        tokio::spawn(fork::run(
            i,
            endpoint.clone(),
            branch.invite.clone(),
            branch.target,
            events_tx.clone(),
            stop.subscribe(),
        ));
    }
    drop(events_tx);
    let ring = Ring {
        ring_time,
        sip: &setup.config.sip,
        a_call_id,
        dialed: &setup.dialed,
        a,
        a_tag,
        endpoint,
        branches: &branches,
        relay,
        stop: &stop,
    };
    let (winner, b_ok, a_dialog) = ringing(&ring, &mut events, inputs).await?;
    let callee = branches
        .get(winner)
        .and_then(|b| b.user.clone())
        .unwrap_or_else(|| callee.to_owned());
    // A user who answers is on a call; a trunk counts its calls itself.
    let b_holder = branches.get(winner).and_then(|b| b.user.clone());
    if let Some(user) = &b_holder {
        // The count the answerer held while ringing is the call's now (taken here
        // when nothing held one).
        let held = rung.holds.as_mut().is_some_and(|h| h.answered(user));
        if !held {
            setup.live.in_use.add(user);
        }
    } else if let Some(holds) = rung.holds.as_mut() {
        holds.answered("");
    }
    if let Some(group) = group {
        let _ = notices
            .send(Notice::Group {
                group: group.to_owned(),
                member: callee.clone(),
                ended: None,
            })
            .await;
    }
    // Branches that answer too late are hung up by whoever sees their 2xx.
    tokio::spawn(fork::hang_up_late(
        winner,
        endpoint.clone(),
        branches
            .iter()
            .map(|b| (b.invite.clone(), b.target))
            .collect(),
        events,
    ));
    let answered_at = cdr::now();
    setup.bus.publish(crate::events::Event::CallAnswered {
        call_id: a_call_id.to_owned(),
        callee: callee.clone(),
    });
    let Some(Branch {
        invite: b_invite,
        target: b_target,
        ..
    }) = branches.get(winner)
    else {
        return Err(Unanswered::failed(StatusCode::SERVER_INTERNAL_ERROR));
    };
    let b_target = *b_target;
    let Ok(b_dialog) = Dialog::uac(b_invite, &b_ok) else {
        return Err(Unanswered::failed(StatusCode::SERVER_INTERNAL_ERROR));
    };
    let seq = b_invite.cseq().map_or(1, |c| c.seq);
    endpoint
        .send_ack(b_dialog.ack(seq, &via(endpoint, b_target)), b_target)
        .await;
    // The A leg's INVITE transaction stays routed to this call until it ends: a
    // CANCEL can no longer reach it, but its no-ACK notice can.
    let sip = &setup.config.sip;
    let sides = [
        Side {
            call_id: a_call_id.to_owned(),
            dialog: a_dialog,
            target: a.source,
            sdp: sdp_of(&a.request),
            timer: crate::timer::for_caller(&a.request, sip).ok().flatten(),
            refreshed: tokio::time::Instant::now(),
            holder: Some(setup.caller_exten.clone()),
        },
        Side {
            call_id: b_dialog_call_id(&b_dialog),
            dialog: b_dialog,
            target: b_target,
            sdp: sdp_of(&b_ok),
            timer: crate::timer::for_callee(&b_ok, sip),
            refreshed: tokio::time::Instant::now(),
            holder: b_holder,
        },
    ];
    let (hangup, holders) = talking(leg, sides, inputs, keys).await;
    tracing::info!(
        call_id = %a_call_id,
        rtp_a_to_b = relay.counters.a_to_b.load(std::sync::atomic::Ordering::Relaxed),
        rtp_b_to_a = relay.counters.b_to_a.load(std::sync::atomic::Ordering::Relaxed),
        ignored = relay.counters.ignored.load(std::sync::atomic::Ordering::Relaxed),
        "call ended"
    );
    Ok(Answered {
        at: answered_at,
        callee,
        hangup,
        holders,
    })
}

/// The INVITE of `branch` again (next CSeq, new transaction) with the session interval
/// the callee's 422 asks for (RFC 4028 §7.4); `None` when the 422 has no usable Min-SE.
pub(crate) fn with_min_se(
    branch: &Branch,
    too_brief: &Message,
    endpoint: &EndpointHandle,
) -> Option<Branch> {
    let min_se = too_brief
        .headers()
        .typed::<pbxkit_sip::Parameterised>(&HeaderName::MinSe)?
        .ok()?
        .number()
        .filter(|n| (1..=86_400).contains(n))?;
    let seq = branch.invite.cseq().ok()?.seq.checked_add(1)?;
    let mut invite = branch.invite.clone();
    let h = invite.headers_mut();
    h.set(HeaderName::Via, via(endpoint, branch.target));
    h.set(HeaderName::CSeq, format!("{seq} INVITE"));
    h.set(HeaderName::SessionExpires, min_se.to_string());
    h.set(HeaderName::MinSe, min_se.to_string());
    Some(Branch {
        invite,
        ..branch.clone()
    })
}

/// One contact rung for the call: its INVITE, where it goes, its dialog key, and the
/// user it belongs to (`None` for trunks).
#[derive(Clone)]
pub(crate) struct Branch {
    pub(crate) invite: Message,
    pub(crate) target: Target,
    pub(crate) key: DialogKey,
    pub(crate) user: Option<String>,
}

/// What [`ringing`] works with.
struct Ring<'a> {
    ring_time: Duration,
    sip: &'a crate::config::Sip,
    /// The caller's Call-ID and the number it dialled (for semi-attended transfers).
    a_call_id: &'a str,
    dialed: &'a str,
    a: &'a ServerRequest,
    a_tag: &'a str,
    endpoint: &'a EndpointHandle,
    branches: &'a [Branch],
    relay: &'a Relay,
    stop: &'a watch::Sender<Stop>,
}

/// Until a contact answers (the winning branch, its 2xx and the A-leg dialog) or the
/// call fails: every branch failed (the best of their answers goes to the caller),
/// the caller gave up, or the ring time is over.
async fn ringing(
    ring: &Ring<'_>,
    events: &mut mpsc::Receiver<BranchEvent>,
    inputs: &mut mpsc::Receiver<CallInput>,
) -> Result<(usize, Message, Dialog), Unanswered> {
    let Ring {
        ring_time,
        sip,
        a_call_id,
        dialed,
        a,
        a_tag,
        endpoint,
        branches,
        relay,
        stop,
    } = *ring;
    let no_answer = tokio::time::sleep(ring_time);
    tokio::pin!(no_answer);
    // Set once the call is given up: how it ended.
    let mut cancelling: Option<Unanswered> = None;
    let mut best: Option<StatusCode> = None;
    let mut challenge: Option<Box<Message>> = None;
    loop {
        tokio::select! {
            event = events.recv() => {
                let (i, response) = match event {
                    Some(BranchEvent::Response(i, r)) => (i, *r),
                    Some(BranchEvent::Failed) => {
                        best = Some(best.map_or(StatusCode::TEMPORARILY_UNAVAILABLE, |b| better(b, StatusCode::TEMPORARILY_UNAVAILABLE)));
                        continue;
                    }
                    // Every branch is over.
                    None => {
                        return Err(cancelling.unwrap_or_else(|| {
                            let status = best.unwrap_or(StatusCode::TEMPORARILY_UNAVAILABLE);
                            let ending = if matches!(status.as_u16(), 486 | 600) {
                                Ending::Busy
                            } else {
                                Ending::Failed
                            };
                            let mut u = Unanswered::new(status, ending);
                            if matches!(status.as_u16(), 401 | 407 | 422) {
                                u.challenge = challenge;
                            }
                            u
                        }));
                    }
                };
                let Some(code) = response.status() else {
                    continue;
                };
                if code == StatusCode::TRYING {
                    continue;
                }
                if cancelling.is_some() {
                    // A branch answered before it saw our CANCEL: nothing reaches the caller.
                    if code.is_success()
                        && let Some(b) = branches.get(i)
                    {
                        fork::hang_up(endpoint, &b.invite, &response, b.target).await;
                    }
                    continue;
                }
                if code.as_u16() >= 300 {
                    // This branch failed; the others may still answer.
                    best = Some(best.map_or(code, |b| better(b, code)));
                    if matches!(code.as_u16(), 401 | 407 | 422) {
                        challenge = Some(Box::new(response));
                        continue;
                    }
                    if code.as_u16() >= 600 {
                        // A global failure ends the call (RFC 3261 §16.7).
                        stop.send_replace(Stop::All);
                        cancelling = Some(Unanswered::new(code, Ending::Global));
                    }
                    continue;
                }
                let mut relayed = Message::response_to(&a.request, code, Some(a_tag));
                if let pbxkit_sip::StartLine::Response { reason, .. } = &response.start {
                    relayed.start = pbxkit_sip::StartLine::Response { code, reason: reason.clone() };
                }
                if code.as_u16() < 300 {
                    relayed.headers_mut().push(HeaderName::Contact, our_contact(endpoint, a.source));
                    anchor_answer(relay, false, sdp_of(&a.request).as_ref(), &response, &mut relayed, advertised(endpoint, a.source.addr).ip());
                }
                if code.is_success() {
                    stop.send_replace(Stop::AllBut(i));
                    let timer = crate::timer::for_caller(&a.request, sip).ok().flatten();
                    crate::timer::response(&mut relayed, &a.request, timer);
                    let a_dialog = Dialog::uas(&a.request, &relayed).ok();
                    let _ = a.respond(relayed).await;
                    return a_dialog
                        .map(|d| (i, response, d))
                        .ok_or(Unanswered::failed(StatusCode::SERVER_INTERNAL_ERROR));
                }
                let _ = a.respond(relayed).await;
            }
            input = inputs.recv() => match input {
                Some(CallInput::Cancelled) if cancelling.is_none() => {
                    cancelling = Some(Unanswered::new(StatusCode::REQUEST_TERMINATED, Ending::CallerGone));
                    stop.send_replace(Stop::All);
                }
                Some(CallInput::Shutdown) if cancelling.is_none() => {
                    cancelling = Some(Unanswered::new(StatusCode::SERVICE_UNAVAILABLE, Ending::Shutdown));
                    stop.send_replace(Stop::All);
                }
                Some(CallInput::Request(req)) => answer(&req, StatusCode::new(491).unwrap_or(StatusCode::BAD_REQUEST)).await,
                // A semi-attended transfer replaces the caller's early dialog: the
                // transfer rings the number again and this call ends (487 to the caller).
                Some(CallInput::HandOver { replaced, reply }) if cancelling.is_none() && replaced == a_call_id => {
                    if reply.send(Handover::Ringing(dialed.to_owned())).is_ok() {
                        cancelling = Some(Unanswered::new(StatusCode::REQUEST_TERMINATED, Ending::Failed));
                        stop.send_replace(Stop::All);
                    }
                }
                Some(CallInput::Ack | CallInput::NoAck | CallInput::Cancelled | CallInput::Shutdown | CallInput::HandOver { .. }) => {}
                None => {
                    stop.send_replace(Stop::All);
                    return Err(cancelling
                        .unwrap_or(Unanswered::new(StatusCode::SERVICE_UNAVAILABLE, Ending::Shutdown)))
                }
            },
            () = &mut no_answer, if cancelling.is_none() => {
                // Nobody answered within the ring time: the branches are CANCELled,
                // and the plan goes on when they have ended.
                cancelling = Some(Unanswered::new(StatusCode::TEMPORARILY_UNAVAILABLE, Ending::NoAnswer));
                stop.send_replace(Stop::All);
            }
        }
    }
}

/// Which of two branch failures the caller should get: a 6xx, then busy, then the
/// lowest other code (a specific 4xx says more than a 5xx).
fn better(a: StatusCode, b: StatusCode) -> StatusCode {
    let rank = |s: StatusCode| match s.as_u16() {
        600..=699 => (0, s.as_u16()),
        486 => (1, 486),
        other => (2, other),
    };
    if rank(b) < rank(a) { b } else { a }
}

/// One side of a bridged call: side 0 uses the relay's A ports, side 1 its B ports
/// (a transfer replaces a side's dialog, not its ports).
#[derive(Debug)]
pub(crate) struct Side {
    pub(crate) call_id: String,
    pub(crate) dialog: Dialog,
    pub(crate) target: Target,
    /// The side's latest SDP, as it sent it (what a transfer target is offered).
    pub(crate) sdp: Option<Session>,
    /// The leg's session timer, and when the session was last refreshed on it.
    pub(crate) timer: Option<SessionTimer>,
    pub(crate) refreshed: tokio::time::Instant,
    /// The user whose simultaneous-calls count this side holds (the caller, or the
    /// user who answered); `None` for trunks, which count their calls themselves.
    /// It moves with the side when a transfer moves it.
    pub(crate) holder: Option<String>,
}

/// The Call-ID of a dialog.
fn b_dialog_call_id(dialog: &Dialog) -> String {
    dialog.id.call_id.to_string()
}

impl Side {
    /// How the main loop routes this side's requests: its Call-ID and our tag.
    pub(crate) fn key(&self) -> DialogKey {
        (self.call_id.clone(), self.dialog.id.local_tag.to_string())
    }

    /// Sends BYE on this side, with `cause` as its Reason, and waits up to `wait`
    /// for its answer.
    pub(crate) async fn hang_up(
        &mut self,
        endpoint: &EndpointHandle,
        wait: Duration,
        cause: HangupCause,
    ) {
        let mut bye = self
            .dialog
            .request(Method::Bye, &via(endpoint, self.target), None);
        bye.headers_mut()
            .push(HeaderName::Reason, cause.reason().to_string());
        send_bye(endpoint, bye, self.target, wait).await;
    }
}

/// While the call is up: relay BYE from either side, renegotiations, and transfers;
/// answer the rest. Returns who hung up.
async fn talking(
    leg: &ALeg<'_>,
    mut sides: [Side; 2],
    inputs: &mut mpsc::Receiver<CallInput>,
    keys: &mut Vec<DialogKey>,
) -> (HangupCause, Vec<String>) {
    let endpoint = leg.endpoint;
    let holders = |sides: &[Side; 2]| sides.iter().filter_map(|s| s.holder.clone()).collect();
    let mut pending = std::collections::VecDeque::new();
    loop {
        // The leg whose session timer is due first, if any.
        let due = (0..2)
            .filter_map(|i| Some((crate::timer::next(sides[i].timer, sides[i].refreshed)?, i)))
            .min_by_key(|((at, _), _)| *at);
        let wait_due = async {
            match due {
                Some(((at, _), _)) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        // Inputs a transfer set aside while it waited come first, in order.
        let input = if let Some(input) = pending.pop_front() {
            input
        } else {
            tokio::select! {
            input = inputs.recv() => match input {
                Some(input) => input,
                None => return (HangupCause::Pbx, holders(&sides)),
            },
            () = wait_due => {
                let Some(((_, what), i)) = due else { continue };
                if what == crate::timer::Due::Refresh
                    && refresh(leg, &mut sides[i], i == 0).await
                {
                    continue;
                }
                // Expired, or the refresh failed for good: the phone is gone.
                tracing::info!(call_id = %leg.a_call_id, leg = i, "session timer expired");
                let [x, y] = &mut sides;
                let wait = Duration::from_secs(2);
                let cause = HangupCause::SessionExpired;
                tokio::join!(x.hang_up(endpoint, wait, cause), y.hang_up(endpoint, wait, cause));
                return (cause, holders(&sides));
            }
            }
        };
        let req = match input {
            CallInput::Request(req) => req,
            CallInput::Shutdown => {
                // Both legs are told at once; each BYE waits a bounded time.
                let [x, y] = &mut sides;
                let wait = Duration::from_secs(2);
                let cause = HangupCause::Pbx;
                tokio::join!(
                    x.hang_up(endpoint, wait, cause),
                    y.hang_up(endpoint, wait, cause)
                );
                return (cause, holders(&sides));
            }
            CallInput::HandOver { replaced, reply } => {
                let Some(gone) = sides.iter().position(|s| s.call_id == replaced) else {
                    continue;
                };
                // The transferor's dialog here ends; the other side moves to the
                // call that asked, with the origin its phone has seen.
                let origin = leg.relay.origin(gone == 1);
                let [x, y] = sides;
                let (mut transferor, kept) = if gone == 0 { (x, y) } else { (y, x) };
                let kept_key = kept.key();
                keys.retain(|k| *k != kept_key);
                // The kept side's count goes with it to the other call.
                let mut left: Vec<String> = transferor.holder.iter().cloned().collect();
                if let Err(Handover::Side { side: mut kept, .. }) = reply.send(Handover::Side {
                    side: Box::new(kept),
                    origin,
                }) {
                    // The asking call is gone: this call ends without it.
                    keys.push(kept_key);
                    kept.hang_up(endpoint, Duration::from_secs(2), HangupCause::Pbx)
                        .await;
                    left.extend(kept.holder);
                }
                transferor
                    .hang_up(endpoint, Duration::from_secs(2), HangupCause::Transferred)
                    .await;
                return (HangupCause::Transferred, left);
            }
            CallInput::NoAck => {
                tracing::info!(call_id = %leg.a_call_id, "the caller never ACKed the 2xx: hanging up");
                let [x, y] = &mut sides;
                let wait = Duration::from_secs(2);
                let cause = HangupCause::NoAck;
                tokio::join!(
                    x.hang_up(endpoint, wait, cause),
                    y.hang_up(endpoint, wait, cause)
                );
                return (cause, holders(&sides));
            }
            CallInput::Ack | CallInput::Cancelled => continue,
        };
        let call_id = req.request.call_id().map(|c| c.0.to_string()).ok();
        let Some(i) = sides
            .iter()
            .position(|s| Some(&s.call_id) == call_id.as_ref())
        else {
            // A dialog this call no longer has (a transferor's): it is over.
            answer(&req, StatusCode::CALL_DOES_NOT_EXIST).await;
            continue;
        };
        let from_a = i == 0;
        let [x, y] = &mut sides;
        let (this, other) = if from_a { (x, y) } else { (y, x) };
        if let Err(e) = this.dialog.handle_request(&req.request) {
            answer(&req, e.status()).await;
            continue;
        }
        match req.request.method() {
            Some(Method::Bye) => {
                answer(&req, StatusCode::OK).await;
                let mut bye = other
                    .dialog
                    .request(Method::Bye, &via(endpoint, other.target), None);
                // The cause goes on to the other side (a trunk's Q.850 cause, say).
                let reason = req
                    .request
                    .headers()
                    .typed::<Reason>(&HeaderName::Reason)
                    .and_then(Result::ok);
                if let Some(reason) = &reason {
                    bye.headers_mut()
                        .push(HeaderName::Reason, reason.to_string());
                }
                send_bye(endpoint, bye, other.target, Duration::from_secs(32)).await;
                let hangup = HangupCause::HungUp {
                    party: if from_a { Party::Caller } else { Party::Callee },
                    q850: reason
                        .and_then(|r| r.q850_cause())
                        .unwrap_or(pbxkit_sip::cause::NORMAL_CLEARING),
                };
                return (hangup, holders(&sides));
            }
            // Hold, resume and codec changes: the offer goes to the other leg through
            // the relay, and its answer comes back the same way.
            // They also refresh the session timers of both legs.
            Some(method @ (Method::Invite | Method::Update)) => {
                let method = method.clone();
                let this_timer = match crate::timer::for_caller(&req.request, &leg.setup.config.sip)
                {
                    Ok(t) => t,
                    Err(min_se) => {
                        let mut r = Message::response_to(
                            &req.request,
                            StatusCode::new(422).unwrap_or(StatusCode::BAD_REQUEST),
                            None,
                        );
                        r.headers_mut().push(HeaderName::MinSe, min_se.to_string());
                        let _ = req.respond(r).await;
                        continue;
                    }
                };
                let media = Media {
                    relay: leg.relay,
                    from_leg_a: from_a,
                    this_target: this.target,
                    other_target: other.target,
                    this_timer,
                    other_timer: other.timer,
                };
                if let Some(ok) =
                    renegotiate(endpoint, &req, method, &mut other.dialog, &media).await
                {
                    let now = tokio::time::Instant::now();
                    this.timer = this_timer;
                    this.refreshed = now;
                    other.timer = crate::timer::for_callee(&ok, &leg.setup.config.sip);
                    other.refreshed = now;
                    if let (Some(offer), Some(answer)) = (sdp_of(&req.request), sdp_of(&ok)) {
                        this.sdp = Some(offer);
                        other.sdp = Some(answer);
                    }
                }
            }
            // Transfers: the side that sends REFER leaves, the party named in
            // Refer-To (or the other party of the dialog its Replaces names) takes its
            // place on the same relay ports.
            Some(Method::Refer) => {
                let mut inbox = crate::transfer::Inbox {
                    inputs: &mut *inputs,
                    pending: &mut pending,
                };
                match crate::transfer::refer(leg, &req, this, other, from_a, keys, &mut inbox).await
                {
                    crate::transfer::Transfer::Done(new_side) => {
                        let mut old = std::mem::replace(this, *new_side);
                        // The transferor is off this call.
                        if let Some(user) = old.holder.take() {
                            leg.setup.live.in_use.remove(&user);
                        }
                        old.hang_up(endpoint, Duration::from_secs(2), HangupCause::Transferred)
                            .await;
                    }
                    crate::transfer::Transfer::Failed => {}
                    crate::transfer::Transfer::CallOver(hangup) => {
                        // The transferee left while the target rang: the transferor
                        // is all that remains of the call.
                        this.hang_up(endpoint, Duration::from_secs(2), hangup).await;
                        return (hangup, holders(&sides));
                    }
                }
            }
            _ => answer(&req, StatusCode::OK).await,
        }
    }
}

/// Refreshes the session on a leg (the PBX is its refresher): a re-INVITE with the
/// SDP the phone already has. False when the leg is gone (408, 481 or no answer,
/// RFC 4028 §10); other failures leave the session as it is until the next refresh.
async fn refresh(leg: &ALeg<'_>, side: &mut Side, leg_a: bool) -> bool {
    side.refreshed = tokio::time::Instant::now();
    let Some(sdp) = leg.relay.given(leg_a) else {
        return true;
    };
    match reinvite(leg.endpoint, side, &sdp).await {
        Ok(ok) => {
            side.timer = crate::timer::for_callee(&ok, &leg.setup.config.sip);
            side.refreshed = tokio::time::Instant::now();
            true
        }
        Err(status) => !matches!(status.as_u16(), 408 | 481),
    }
}

/// Sends a re-INVITE with `offer` on a side's dialog (with its session timer) and
/// ACKs its 2xx: the 2xx, or the failure status (408 when nothing came back).
pub(crate) async fn reinvite(
    endpoint: &EndpointHandle,
    side: &mut Side,
    offer: &Session,
) -> Result<Message, StatusCode> {
    let target = side.target;
    let mut invite = side
        .dialog
        .request(Method::Invite, &via(endpoint, target), None);
    invite
        .headers_mut()
        .push(HeaderName::Contact, our_contact(endpoint, target));
    crate::timer::request(&mut invite, side.timer);
    set_sdp(&mut invite, offer);
    let seq = invite.cseq().map_or(0, |c| c.seq);
    let mut tx = endpoint
        .send_request(invite, target)
        .await
        .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
    let response = match tokio::time::timeout(Duration::from_secs(32), tx.final_response()).await {
        Ok(ClientEvent::Response(r)) => r,
        _ => return Err(StatusCode::REQUEST_TIMEOUT),
    };
    let status = response
        .status()
        .unwrap_or(StatusCode::SERVER_INTERNAL_ERROR);
    side.dialog.handle_response(&response);
    if !status.is_success() {
        return Err(status);
    }
    endpoint
        .send_ack(side.dialog.ack(seq, &via(endpoint, target)), target)
        .await;
    Ok(response)
}

/// The media side of a renegotiation: which leg offers, and where both legs are.
struct Media<'a> {
    relay: &'a Relay,
    from_leg_a: bool,
    this_target: Target,
    other_target: Target,
    /// The session timers of the offering leg (for our answer) and of the other.
    this_timer: Option<SessionTimer>,
    other_timer: Option<SessionTimer>,
}

/// Relays a re-INVITE or UPDATE (`req`, on one leg) to the other leg's dialog, with
/// the media anchored on the relay both ways, and answers `req` with the outcome:
/// the other leg's 2xx when it accepted.
async fn renegotiate(
    endpoint: &EndpointHandle,
    req: &ServerRequest,
    method: Method,
    other: &mut Dialog,
    media: &Media<'_>,
) -> Option<Message> {
    let other_target = media.other_target;
    let mut offer = other.request(method.clone(), &via(endpoint, other_target), None);
    offer
        .headers_mut()
        .push(HeaderName::Contact, our_contact(endpoint, other_target));
    crate::timer::request(&mut offer, media.other_timer);
    let other_ip = advertised(endpoint, other_target.addr).ip();
    anchor_offer(
        media.relay,
        media.from_leg_a,
        &req.request,
        &mut offer,
        other_ip,
    );
    let seq = offer.cseq().map_or(0, |c| c.seq);
    let Ok(mut tx) = endpoint.send_request(offer, other_target).await else {
        answer(req, StatusCode::SERVICE_UNAVAILABLE).await;
        return None;
    };
    let response = match tokio::time::timeout(Duration::from_secs(32), tx.final_response()).await {
        Ok(ClientEvent::Response(r)) => r,
        _ => {
            answer(req, StatusCode::REQUEST_TIMEOUT).await;
            return None;
        }
    };
    let code = response.status()?;
    other.handle_response(&response);
    if code.is_success() && method == Method::Invite {
        endpoint
            .send_ack(other.ack(seq, &via(endpoint, other_target)), other_target)
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
        anchor_answer(
            media.relay,
            !media.from_leg_a,
            sdp_of(&req.request).as_ref(),
            &response,
            &mut relayed,
            this_ip,
        );
        crate::timer::response(&mut relayed, &req.request, media.this_timer);
    }
    let _ = req.respond(relayed).await;
    code.is_success().then_some(response)
}

/// Sends a BYE and waits up to `wait` for its answer (the call is over either way).
pub(crate) async fn send_bye(
    endpoint: &EndpointHandle,
    bye: Message,
    target: Target,
    wait: Duration,
) {
    if let Ok(mut tx) = endpoint.send_request(bye, target).await {
        let _ = tokio::time::timeout(wait, tx.final_response()).await;
    }
}
