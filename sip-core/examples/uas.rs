//! A SIP user agent server on the async [`Endpoint`] (feature `tokio`), bound on
//! 127.0.0.1 over UDP: it answers OPTIONS with `200` and an Allow header, INVITE with
//! `180` then `200` carrying an SDP answer made by [`sdp::answer`] (RFC 3264), takes
//! the ACK, and answers the BYE of the dialog with `200`.
//!
//! In the same process a second endpoint plays the caller with the crate's client
//! side (client transactions and a [`Dialog`] for the ACK and the BYE) and checks
//! every answer. Every wait is bounded by `tokio::time::timeout`.
//!
//! Run it with `cargo run -p pbxkit-sip --features tokio --example uas`.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use pbxkit_sip::dialog::{Dialog, Dialogs};
use pbxkit_sip::endpoint::{ClientEvent, ClientTransaction, Endpoint, EndpointConfig, Incoming};
use pbxkit_sip::sdp::{self, AnswerPolicy, Codec, Connection, Direction, Origin, Session};
use pbxkit_sip::transaction::{Target, TransportKind};
use pbxkit_sip::{HeaderName, Message, Method, ParseError, StatusCode};

type Result<T, E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS";
/// Our To tag. One call only here; a real UAS makes a random one per dialog.
const TAG: &str = "uas-8d2f";
/// The RTP port the answer announces (no media flows in this example).
const RTP_PORT: u16 = 40_002;
/// The caller offers G.722 first; we prefer PCMA and accept PCMU.
const OFFER: &str = "v=0\r\no=alice 2890844526 1 IN IP4 127.0.0.1\r\ns=-\r\n\
    c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 9 0 8 101\r\n\
    a=rtpmap:9 G722/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
    a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=sendrecv\r\n";

/// `future`, or an error naming what did not come within 2 s.
async fn within<T>(what: &str, future: impl Future<Output = T>) -> Result<T> {
    let outcome = tokio::time::timeout(Duration::from_secs(2), future).await;
    Ok(outcome.map_err(|_| format!("timed out waiting for {what}"))?)
}

fn policy() -> AnswerPolicy {
    let ip = || "127.0.0.1".into();
    AnswerPolicy {
        preferred: vec![Codec::PCMA],
        accepted: vec![Codec::PCMU],
        telephone_event: true,
        direction: Direction::SendRecv,
        rtcp_mux: false,
        origin: Origin {
            username: "-".into(),
            session_id: "4711".into(),
            session_version: 1,
            addr_type: "IP4".into(),
            address: ip(),
        },
        connection: Connection {
            addr_type: "IP4".into(),
            address: ip(),
        },
    }
}

/// The UAS: answers until the BYE; returns the methods it saw, in order.
async fn serve(uas: &mut Endpoint) -> Result<Vec<String>> {
    let contact = format!("<sip:uas@{}>", uas.local_addr());
    let mut dialogs = Dialogs::new();
    let mut seen = Vec::new();
    loop {
        let incoming = within("a request", uas.next()).await?;
        let req = match incoming.ok_or("the endpoint stopped")? {
            Incoming::Request(req) => req,
            // The ACK of a 2xx is end to end: no transaction, the dialog's business.
            Incoming::Ack { request, .. } => {
                dialogs.handle_request(&request)?;
                println!("UAS: ACK, the call is up");
                seen.push("ACK".to_owned());
                continue;
            }
            other => return Err(format!("unexpected {other:?}").into()),
        };
        let method = req.request.method().ok_or("not a request")?.clone();
        println!("UAS: {method} from {}", req.source.addr);
        seen.push(method.to_string());
        let reply = |code| Message::response_to(&req.request, code, Some(TAG));
        let mut response = match method {
            Method::Options => reply(StatusCode::OK),
            Method::Invite => {
                // The 180 goes out at once; the transaction retransmits nothing for it.
                req.respond(reply(StatusCode::RINGING)).await?;
                let offer = Session::parse_body(&req.request.body)?;
                let answer = sdp::answer(&offer, &policy(), &[Some(RTP_PORT)]);
                let mut ok = reply(StatusCode::OK);
                // The caller's ACK and BYE go to this Contact (the dialog's target).
                let headers = ok.headers_mut();
                headers.push(HeaderName::Contact, contact.as_str());
                headers.push(HeaderName::ContentType, "application/sdp");
                ok.body = answer.to_string().into();
                dialogs.insert(Dialog::uas(&req.request, &ok)?);
                ok
            }
            // A BYE for no dialog of ours gets 481 (the error knows its status).
            Method::Bye => match dialogs.handle_request(&req.request) {
                Ok(dialog) => {
                    let id = dialog.id.clone();
                    dialogs.remove(&id);
                    reply(StatusCode::OK)
                }
                Err(error) => reply(error.status()),
            },
            _ => reply(StatusCode::METHOD_NOT_ALLOWED),
        };
        // The methods we take, for the caller that asked or that tried another.
        if method == Method::Options || code(&response) == 405 {
            response.headers_mut().push(HeaderName::Allow, ALLOW);
        }
        // Until the ACK, the INVITE transaction retransmits the 200 itself (UDP).
        req.respond(response).await?;
        if method == Method::Bye {
            return Ok(seen);
        }
    }
}

/// A request out of dialog from the caller at `me` to `uas`, as a phone writes it.
fn request(method: &str, me: SocketAddr, uas: SocketAddr, seq: u32) -> Result<Message, ParseError> {
    Message::parse(format!(
        "{method} sip:uas@{uas} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {me};branch=z9hG4bK{method}{seq};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:alice@{me}>;tag=alice-1\r\n\
         To: <sip:uas@{uas}>\r\nCall-ID: call-{seq}@{me}\r\nCSeq: {seq} {method}\r\n\
         Contact: <sip:alice@{me}>\r\nContent-Length: 0\r\n\r\n"
    ))
}

/// A response's status code (0 for a request).
fn code(message: &Message) -> u16 {
    message.status().map_or(0, StatusCode::as_u16)
}

/// The final response of a client transaction (provisionals are skipped).
async fn final_response(what: &str, tx: &mut ClientTransaction) -> Result<Message> {
    match within(what, tx.final_response()).await? {
        ClientEvent::Response(response) => Ok(response),
        other => Err(format!("{what}: {other:?}").into()),
    }
}

/// The caller: OPTIONS, then an INVITE/ACK/BYE call, checking every answer.
async fn call(uac: &Endpoint, uas: SocketAddr) -> Result<()> {
    let target = Target {
        addr: uas,
        transport: TransportKind::Udp,
    };
    let me = uac.local_addr();
    let mut tx = uac
        .send_request(request("OPTIONS", me, uas, 1)?, target)
        .await?;
    let ok = final_response("the answer to OPTIONS", &mut tx).await?;
    let allow = ok.headers().get(&HeaderName::Allow).unwrap_or("none");
    println!("UAC: OPTIONS -> {}, Allow: {allow}", code(&ok));
    assert_eq!((code(&ok), allow), (200, ALLOW));

    let mut invite = request("INVITE", me, uas, 2)?;
    invite
        .headers_mut()
        .push(HeaderName::ContentType, "application/sdp");
    invite.body = OFFER.into();
    let mut tx = uac.send_request(invite.clone(), target).await?;
    // Every response, provisional ones included, up to the 200.
    let mut codes = Vec::new();
    let ok = loop {
        let event = within("the answers to INVITE", tx.next()).await?;
        let Some(ClientEvent::Response(response)) = event else {
            return Err(format!("INVITE: {event:?}").into());
        };
        codes.push(code(&response));
        if code(&response) >= 200 {
            break response;
        }
    };
    println!("UAC: INVITE -> {codes:?}");
    // A 100 Trying comes first only if the UAS took more than 200 ms to ring.
    assert!(codes.ends_with(&[180, 200]), "{codes:?}");
    let answer = Session::parse_body(&ok.body)?;
    print!("UAC: SDP answer\n{answer}");
    let audio = answer.media.first().ok_or("no m= line in the answer")?;
    assert_eq!(audio.port, RTP_PORT);
    // Our preference first, G.722 dropped, telephone-event kept at the offer's type.
    assert_eq!(audio.payload_types().collect::<Vec<_>>(), [8, 0, 101]);

    // ACK and BYE are built by the dialog: tags, Call-ID, CSeq and target for us.
    let mut dialog = Dialog::uac(&invite, &ok)?;
    let via = |branch: &str| format!("SIP/2.0/UDP {me};branch=z9hG4bK{branch};rport");
    uac.send_ack(dialog.ack(2, &via("ack2")), target).await;
    let bye = dialog.request(Method::Bye, &via("bye3"), None);
    let mut tx = uac.send_request(bye, target).await?;
    let ok = final_response("the answer to BYE", &mut tx).await?;
    println!("UAC: BYE -> {}", code(&ok));
    assert_eq!(code(&ok), 200);
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    // Port 0: the system picks a free one (UDP and TCP get the same).
    let config = EndpointConfig {
        listen: "127.0.0.1:0".parse()?,
        ..EndpointConfig::default()
    };
    let mut uas = Endpoint::bind(config.clone()).await?;
    let uac = Endpoint::bind(config).await?;
    let (uas_addr, uac_addr) = (uas.local_addr(), uac.local_addr());
    println!("UAS on {uas_addr}, caller on {uac_addr}");
    // Both sides in one task: the first error (or timeout) stops the other.
    let (seen, ()) = tokio::try_join!(serve(&mut uas), call(&uac, uas_addr))?;
    assert_eq!(seen, ["OPTIONS", "INVITE", "ACK", "BYE"]);
    within("the caller to stop", uac.shutdown()).await?;
    within("the UAS to stop", uas.shutdown()).await?;
    Ok(())
}

// `cargo test` runs the example too (`test = true` in Cargo.toml): it asserts what
// it shows.
#[test]
fn runs() -> Result<()> {
    main()
}
