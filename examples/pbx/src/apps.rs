//! Applications the PBX answers itself, on its own media ports: the echo test, which
//! sends every RTP packet back where it came from (as Asterisk's `Echo()` does), so
//! that a user hears their own voice with the network's round-trip delay.

use crate::call::CallInput;
use crate::cdr::{self, Cdr, Disposition, Record};
use crate::ids;
use crate::media::PortPool;
use crate::service::{DialogKey, Notice, advertised, answer, our_contact};
use pbxkit_sip::dialog::Dialog;
use pbxkit_sip::endpoint::{EndpointHandle, ServerRequest};
use pbxkit_sip::sdp::{self, AnswerPolicy, Codec, Connection, Direction, Origin, Session};
use pbxkit_sip::transaction::Target;
use pbxkit_sip::{ByteStr, HeaderName, Message, Method, StatusCode};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// An echo test ends by itself after this long, so that a forgotten call does not hold
/// ports forever.
const ECHO_LIMIT: Duration = Duration::from_secs(3600);

/// Our SDP answer to `offer`, with media on `port` of `ip`: G.711 and G.722, and
/// telephone-event, in the caller's order of the ones we share.
fn answer_sdp(offer: &Session, ip: IpAddr, port: u16) -> Session {
    let addr_type = ByteStr::from_static(if ip.is_ipv4() { "IP4" } else { "IP6" });
    let address = ByteStr::from(ip.to_string());
    let policy = AnswerPolicy {
        preferred: vec![],
        accepted: vec![Codec::PCMU, Codec::PCMA, Codec::G722],
        telephone_event: true,
        direction: Direction::SendRecv,
        rtcp_mux: false,
        origin: Origin {
            username: ByteStr::from_static("pbxkit"),
            session_id: ByteStr::from(ids::numeric_id()),
            session_version: 1,
            addr_type: addr_type.clone(),
            address: address.clone(),
        },
        connection: Connection { addr_type, address },
    };
    // Only the first audio stream gets media.
    let mut first_audio = true;
    let ports: Vec<Option<u16>> = offer
        .media
        .iter()
        .map(|m| {
            let take = first_audio && m.kind.as_str() == "audio" && m.port != 0;
            first_audio &= !take;
            take.then_some(port)
        })
        .collect();
    sdp::answer(offer, &policy, &ports)
}

/// Whether the answer kept a codec for the audio stream.
fn has_audio(answer: &Session) -> bool {
    answer
        .media
        .iter()
        .any(|m| m.kind.as_str() == "audio" && m.port != 0)
}

/// Who called which service extension, for the CDR.
pub(crate) struct AppCall {
    pub(crate) caller: String,
    pub(crate) exten: String,
    pub(crate) cdr: Cdr,
}

/// Runs an echo test call to its end and writes its CDR.
pub(crate) async fn echo(
    call: AppCall,
    a: ServerRequest,
    endpoint: EndpointHandle,
    notices: mpsc::Sender<Notice>,
    ports: Arc<PortPool>,
) {
    let start = cdr::now();
    let call_id = a
        .request
        .call_id()
        .map(|c| c.0.to_string())
        .unwrap_or_default();
    let (status, answered, hangup_by) = run_echo(a, endpoint, notices, ports).await;
    call.cdr.write(Record::new(
        start,
        answered,
        &call.caller,
        &call.exten,
        &call_id,
        if answered.is_some() {
            Disposition::Answered
        } else {
            Disposition::Failed
        },
        status.map(|s| s.as_u16()),
        hangup_by,
    ));
}

/// The echo test itself: the failure status, or the answer time and who hung up.
async fn run_echo(
    a: ServerRequest,
    endpoint: EndpointHandle,
    notices: mpsc::Sender<Notice>,
    ports: Arc<PortPool>,
) -> (Option<StatusCode>, Option<f64>, Option<&'static str>) {
    let tag = ids::token();
    let call_id = a
        .request
        .call_id()
        .map(|c| c.0.to_string())
        .unwrap_or_default();
    let key: DialogKey = (call_id.clone(), tag.clone());
    let (inputs_tx, mut inputs) = mpsc::channel(16);
    let _ = notices
        .send(Notice::Route {
            keys: vec![key.clone()],
            tx: Some(a.tx),
            inputs: inputs_tx,
        })
        .await;
    let ended = |keys: Vec<DialogKey>| Notice::Ended {
        keys,
        tx: Some(a.tx),
    };
    let offer = (!a.request.body.is_empty())
        .then(|| Session::parse_body(&a.request.body).ok())
        .flatten();
    let Some(offer) = offer else {
        // Without an offer there is nothing to echo to (late offers are not supported).
        let status = StatusCode::new(488).unwrap_or(StatusCode::BAD_REQUEST);
        answer(&a, status).await;
        let _ = notices.send(ended(vec![key])).await;
        return (Some(status), None, None);
    };
    let Some((rtp, rtcp)) = ports.bind_pair().await else {
        tracing::warn!("no free media ports");
        answer(&a, StatusCode::SERVICE_UNAVAILABLE).await;
        let _ = notices.send(ended(vec![key])).await;
        return (Some(StatusCode::SERVICE_UNAVAILABLE), None, None);
    };
    let our_ip = advertised(&endpoint, a.source.addr).ip();
    let port = rtp.local_addr().map_or(0, |s| s.port());
    let sdp = answer_sdp(&offer, our_ip, port);
    if !has_audio(&sdp) {
        let status = StatusCode::new(488).unwrap_or(StatusCode::BAD_REQUEST);
        answer(&a, status).await;
        let _ = notices.send(ended(vec![key])).await;
        return (Some(status), None, None);
    }
    let mut ok = Message::response_to(&a.request, StatusCode::OK, Some(&tag));
    {
        let text = sdp.to_string();
        let h = ok.headers_mut();
        h.push(HeaderName::Contact, our_contact(&endpoint, a.source));
        h.set(
            HeaderName::ContentType,
            ByteStr::from_static("application/sdp"),
        );
        h.set(HeaderName::ContentLength, text.len().to_string());
        ok.body = text.into_bytes().into();
    }
    let dialog = Dialog::uas(&a.request, &ok).ok();
    let _ = a.respond(ok).await;
    // The INVITE transaction is over: CANCELs can no longer reach it.
    let _ = notices
        .send(Notice::Ended {
            keys: vec![],
            tx: Some(a.tx),
        })
        .await;
    tracing::info!(call_id = %call_id, "echo test");
    let answered = Some(cdr::now());
    let Some(mut dialog) = dialog else {
        let _ = notices.send(ended(vec![key])).await;
        return (Some(StatusCode::SERVER_INTERNAL_ERROR), None, None);
    };
    let mut hangup_by = "pbx";
    let limit = tokio::time::sleep(ECHO_LIMIT);
    tokio::pin!(limit);
    let mut buf = vec![0u8; 2048];
    let mut rtcp_buf = vec![0u8; 2048];
    let mut echoed: u64 = 0;
    loop {
        tokio::select! {
            got = rtp.recv_from(&mut buf) => {
                if let Ok((n, from)) = got {
                    echo_back(&rtp, buf.get(..n).unwrap_or_default(), from).await;
                    echoed += 1;
                }
            }
            // RTCP is read so that the socket does not fill, and not answered: the
            // caller's reports describe its own stream, which we return unchanged.
            _ = rtcp.recv_from(&mut rtcp_buf) => {}
            input = inputs.recv() => match input {
                Some(CallInput::Request(req)) => {
                    if let Err(e) = dialog.handle_request(&req.request) {
                        answer(&req, e.status()).await;
                        continue;
                    }
                    match req.request.method() {
                        Some(Method::Bye) => {
                            answer(&req, StatusCode::OK).await;
                            hangup_by = "caller";
                            break;
                        }
                        Some(Method::Invite | Method::Update) => {
                            answer(&req, StatusCode::new(488).unwrap_or(StatusCode::BAD_REQUEST)).await;
                        }
                        _ => answer(&req, StatusCode::OK).await,
                    }
                }
                Some(CallInput::Shutdown) | None => {
                    hang_up(&endpoint, &mut dialog, a.source).await;
                    break;
                }
                Some(CallInput::Ack | CallInput::Cancelled) => {}
            },
            () = &mut limit => {
                hang_up(&endpoint, &mut dialog, a.source).await;
                break;
            }
        }
    }
    tracing::info!(call_id = %call_id, packets = echoed, "echo test ended");
    let _ = notices
        .send(Notice::Ended {
            keys: vec![key],
            tx: None,
        })
        .await;
    (None, answered, Some(hangup_by))
}

/// Sends a BYE and waits (bounded) for its answer.
async fn hang_up(endpoint: &EndpointHandle, dialog: &mut Dialog, to: Target) {
    let via = format!(
        "SIP/2.0/UDP {};branch={};rport",
        advertised(endpoint, to.addr),
        ids::branch()
    );
    let bye = dialog.request(Method::Bye, &via, None);
    if let Ok(mut tx) = endpoint.send_request(bye, to).await {
        let _ = tokio::time::timeout(Duration::from_secs(2), tx.final_response()).await;
    }
}

async fn echo_back(socket: &tokio::net::UdpSocket, packet: &[u8], to: SocketAddr) {
    // Only RTP (version 2) goes back: anything else on a media port is noise.
    if packet.len() >= 12 && packet[0] >> 6 == 2 {
        let _ = socket.send_to(packet, to).await;
    }
}
