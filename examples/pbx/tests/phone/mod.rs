//! A phone for the end-to-end tests: pbxkit-sip's Endpoint with a line on the PBX,
//! registering (digest), calling and answering.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
#![allow(dead_code, reason = "each test file uses part of this")]

use pbxkit_sip::digest;
use pbxkit_sip::endpoint::{ClientEvent, Endpoint, EndpointConfig, Incoming};
use pbxkit_sip::transaction::{Target, TransportKind};
use pbxkit_sip::{Auth, HeaderName, Message, Method, StatusCode};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::time::timeout;

pub(crate) const WAIT: Duration = Duration::from_secs(10);

pub(crate) static BRANCH: AtomicU32 = AtomicU32::new(1);

/// What a phone received, in order: the SDP offers, and the INVITEs themselves.
#[derive(Clone, Default)]
pub(crate) struct Offers {
    pub(crate) sdp: std::sync::Arc<std::sync::Mutex<Vec<pbxkit_sip::sdp::Session>>>,
    pub(crate) invites: std::sync::Arc<std::sync::Mutex<Vec<Message>>>,
}

/// A phone: an endpoint and a line on the PBX.
pub(crate) struct Phone {
    pub(crate) ep: Endpoint,
    pub(crate) user: &'static str,
    pub(crate) password: &'static str,
    pub(crate) pbx: SocketAddr,
    pub(crate) cseq: AtomicU32,
    /// Extra header lines (CRLF-terminated) in every request it builds.
    pub(crate) headers: &'static str,
    /// How it reaches the PBX (its Via and Contact say so).
    pub(crate) transport: TransportKind,
}

pub(crate) const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n";

/// An SDP offer or answer for media on `port` of 127.0.0.1.
pub(crate) fn sdp(port: u16) -> String {
    SDP.replace("m=audio 4000", &format!("m=audio {port}"))
}

/// A G.711 RTP packet with sequence number `seq`.
pub(crate) fn rtp(seq: u16) -> Vec<u8> {
    let mut p = vec![0x80, 0x00];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    p.extend(std::iter::repeat_n(0xFFu8, 160));
    p
}

impl Phone {
    pub(crate) async fn new(user: &'static str, pbx: SocketAddr) -> Phone {
        Phone::new_on(user, pbx, "127.0.0.1").await
    }

    /// A phone on another loopback address (another source for the PBX).
    pub(crate) async fn new_on(user: &'static str, pbx: SocketAddr, ip: &str) -> Phone {
        let config = EndpointConfig {
            listen: format!("{ip}:0").parse().unwrap(),
            ..EndpointConfig::default()
        };
        Phone {
            ep: Endpoint::bind(config).await.unwrap(),
            user,
            password: "",
            pbx,
            cseq: AtomicU32::new(1),
            headers: "",
            transport: TransportKind::Udp,
        }
    }

    /// The phone on TCP: its requests go over a connection to the PBX, and its
    /// Contact asks for TCP back.
    pub(crate) fn over_tcp(mut self) -> Phone {
        self.transport = TransportKind::Tcp;
        self
    }

    pub(crate) fn with_password(mut self, password: &'static str) -> Phone {
        self.password = password;
        self
    }

    pub(crate) fn with_headers(mut self, headers: &'static str) -> Phone {
        self.headers = headers;
        self
    }

    pub(crate) fn target(&self) -> Target {
        Target {
            addr: self.pbx,
            transport: self.transport,
        }
    }

    pub(crate) fn build(
        &self,
        method: &str,
        uri: &str,
        to: &str,
        call_id: &str,
        body: &str,
    ) -> Message {
        let me = self.ep.local_addr();
        let seq = self.cseq.fetch_add(1, Ordering::Relaxed);
        let branch = BRANCH.fetch_add(1, Ordering::Relaxed);
        let ct = if body.is_empty() {
            String::new()
        } else {
            "Content-Type: application/sdp\r\n".into()
        };
        let (via, param) = match self.transport {
            TransportKind::Tcp => ("TCP", ";transport=tcp"),
            _ => ("UDP", ""),
        };
        let text = format!(
            "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/{via} {me};branch=z9hG4bKph{branch};rport\r\nMax-Forwards: 70\r\n\
             From: <sip:{user}@pbxkit>;tag=ph{user}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {seq} {method}\r\n\
             Contact: <sip:{user}@{me}{param}>\r\n{extra}{ct}Content-Length: {}\r\n\r\n{body}",
            body.len(),
            user = self.user,
            extra = self.headers,
        );
        Message::parse(text.into_bytes()).unwrap()
    }

    /// Sends a request, answering one digest challenge; returns the client transaction
    /// of the authenticated request.
    pub(crate) async fn send_authenticated(
        &self,
        method: &str,
        uri: &str,
        to: &str,
        call_id: &str,
        body: &str,
    ) -> (Message, pbxkit_sip::endpoint::ClientTransaction) {
        let first = self.build(method, uri, to, call_id, body);
        let mut tx = self.ep.send_request(first, self.target()).await.unwrap();
        let ClientEvent::Response(challenge) = timeout(WAIT, tx.final_response()).await.unwrap()
        else {
            panic!("no challenge")
        };
        assert_eq!(
            challenge.status(),
            Some(StatusCode::UNAUTHORIZED),
            "{challenge}"
        );
        let auth: Auth = challenge
            .headers()
            .typed(&HeaderName::WwwAuthenticate)
            .unwrap()
            .unwrap();
        let creds =
            digest::respond(&auth, method, uri, self.user, self.password, "cnonce", 1).unwrap();
        let mut second = self.build(method, uri, to, call_id, body);
        second
            .headers_mut()
            .push(HeaderName::Authorization, creds.to_string());
        let tx = self
            .ep
            .send_request(second.clone(), self.target())
            .await
            .unwrap();
        (second, tx)
    }

    pub(crate) async fn register(&self) -> Message {
        let uri = format!("sip:{}", self.pbx);
        let to = format!("<sip:{}@pbxkit>", self.user);
        let (_, mut tx) = self
            .send_authenticated("REGISTER", &uri, &to, &format!("reg-{}", self.user), "")
            .await;
        let ClientEvent::Response(ok) = timeout(WAIT, tx.final_response()).await.unwrap() else {
            panic!()
        };
        ok
    }

    /// One REGISTER attempt that may go unanswered (a banned source): the final
    /// status, or `None` when the challenge or the final answer does not come in `wait`.
    pub(crate) async fn try_register(&self, wait: Duration) -> Option<StatusCode> {
        let uri = format!("sip:{}", self.pbx);
        let to = format!("<sip:{}@pbxkit>", self.user);
        let call_id = format!("reg-{}", self.user);
        let first = self.build("REGISTER", &uri, &to, &call_id, "");
        let mut tx = self.ep.send_request(first, self.target()).await.unwrap();
        let Ok(ClientEvent::Response(challenge)) = timeout(wait, tx.final_response()).await else {
            return None;
        };
        if challenge.status() != Some(StatusCode::UNAUTHORIZED) {
            return challenge.status();
        }
        let auth: Auth = challenge
            .headers()
            .typed(&HeaderName::WwwAuthenticate)
            .unwrap()
            .unwrap();
        let creds = digest::respond(
            &auth,
            "REGISTER",
            &uri,
            self.user,
            self.password,
            "cnonce",
            1,
        )
        .unwrap();
        let mut second = self.build("REGISTER", &uri, &to, &call_id, "");
        second
            .headers_mut()
            .push(HeaderName::Authorization, creds.to_string());
        let mut tx = self.ep.send_request(second, self.target()).await.unwrap();
        match timeout(wait, tx.final_response()).await {
            Ok(ClientEvent::Response(r)) => r.status(),
            _ => None,
        }
    }

    /// Answers incoming calls with 180 then `answer` (200 with SDP, or a failure).
    pub(crate) fn answer_calls(self, answer: StatusCode) -> tokio::task::JoinHandle<Vec<String>> {
        self.answer_calls_with(answer, SDP.to_owned())
    }

    /// Like [`Phone::answer_calls`], answering with `body` as SDP.
    pub(crate) fn answer_calls_with(
        self,
        answer: StatusCode,
        body: String,
    ) -> tokio::task::JoinHandle<Vec<String>> {
        self.answer_calls_seeing(answer, body, Offers::default(), 1)
    }

    /// Like [`Phone::answer_calls_with`], keeping the SDP of every INVITE in `offers`,
    /// for `calls` calls (each ends with a BYE, a CANCEL or a refusal).
    pub(crate) fn answer_calls_seeing(
        mut self,
        answer: StatusCode,
        body: String,
        offers: Offers,
        calls: usize,
    ) -> tokio::task::JoinHandle<Vec<String>> {
        tokio::spawn(async move {
            let mut log = Vec::new();
            let mut ended = 0;
            while let Ok(Some(incoming)) = timeout(Duration::from_secs(15), self.ep.next()).await {
                match incoming {
                    Incoming::Request(req) => {
                        let method = req.request.method().unwrap().clone();
                        let held = req.request.body.windows(10).any(|w| w == b"a=sendonly");
                        log.push(if held {
                            format!("{method} sendonly")
                        } else {
                            method.to_string()
                        });
                        match method {
                            Method::Invite => {
                                if let Ok(offer) =
                                    pbxkit_sip::sdp::Session::parse_body(&req.request.body)
                                {
                                    offers.sdp.lock().unwrap().push(offer);
                                }
                                offers.invites.lock().unwrap().push(req.request.clone());
                                req.respond(Message::response_to(
                                    &req.request,
                                    StatusCode::RINGING,
                                    Some("callee"),
                                ))
                                .await
                                .unwrap();
                                if answer == StatusCode::RINGING {
                                    continue;
                                }
                                let mut r =
                                    Message::response_to(&req.request, answer, Some("callee"));
                                if answer == StatusCode::OK {
                                    let me = self.ep.local_addr();
                                    let h = r.headers_mut();
                                    h.push(
                                        HeaderName::Contact,
                                        format!("<sip:{}@{me}>", self.user),
                                    );
                                    h.push(HeaderName::ContentType, "application/sdp");
                                    h.set(HeaderName::ContentLength, body.len().to_string());
                                    r.body = body.clone().into_bytes().into();
                                }
                                req.respond(r).await.unwrap();
                                if answer.as_u16() >= 300 {
                                    // A refused call is over for the callee.
                                    ended += 1;
                                    if ended == calls {
                                        return log;
                                    }
                                }
                            }
                            _ => {
                                req.respond(Message::response_to(
                                    &req.request,
                                    StatusCode::OK,
                                    None,
                                ))
                                .await
                                .unwrap();
                                if method == Method::Bye {
                                    ended += 1;
                                    if ended == calls {
                                        return log;
                                    }
                                }
                            }
                        }
                    }
                    Incoming::Ack { .. } => log.push("ACK".into()),
                    Incoming::Cancelled { cancel, .. } => {
                        // Why, when another phone answered (RFC 3326).
                        let reason = cancel
                            .headers()
                            .first(&HeaderName::Reason)
                            .map(|r| format!(" {}", r.value))
                            .unwrap_or_default();
                        log.push(format!("CANCEL{reason}"));
                        ended += 1;
                        if ended == calls {
                            return log;
                        }
                    }
                    _ => {}
                }
            }
            log
        })
    }
}

pub(crate) async fn call(caller: &Phone, callee: &str) -> (Message, Message) {
    call_with(caller, callee, SDP).await
}

pub(crate) async fn call_with(caller: &Phone, callee: &str, offer: &str) -> (Message, Message) {
    let uri = format!("sip:{callee}@{}", caller.pbx);
    let to = format!("<sip:{callee}@pbxkit>");
    let call_id = format!(
        "call-{}-{}",
        caller.user,
        BRANCH.fetch_add(1, Ordering::Relaxed)
    );
    let (invite, mut tx) = caller
        .send_authenticated("INVITE", &uri, &to, &call_id, offer)
        .await;
    let ClientEvent::Response(fin) = timeout(WAIT, tx.final_response()).await.unwrap() else {
        panic!("no final response")
    };
    (invite, fin)
}

/// The dialog a caller's answered call made with the PBX: where its in-dialog
/// requests go, their To (with the PBX's tag) and Call-ID.
pub(crate) struct InDialog {
    pub(crate) contact: String,
    pub(crate) to: String,
    pub(crate) call_id: String,
}

impl InDialog {
    /// ACKs `answer`, the 200 to `invite` (a call to `callee`).
    pub(crate) async fn ack(
        phone: &Phone,
        invite: &Message,
        answer: &Message,
        callee: &str,
    ) -> InDialog {
        let to_tag = answer.to().unwrap().tag().unwrap().to_owned();
        let contact = match answer.contacts().next().unwrap().unwrap() {
            pbxkit_sip::Contact::Addr(a) => a.uri.to_string(),
            pbxkit_sip::Contact::Star => panic!(),
        };
        let dialog = InDialog {
            contact,
            to: format!("<sip:{callee}@pbxkit>;tag={to_tag}"),
            call_id: invite.call_id().unwrap().0.to_string(),
        };
        let mut ack = phone.build("ACK", &dialog.contact, &dialog.to, &dialog.call_id, "");
        ack.headers_mut().set(
            HeaderName::CSeq,
            format!("{} ACK", invite.cseq().unwrap().seq),
        );
        phone.ep.send_stateless(ack, phone.target()).await;
        dialog
    }

    /// Hangs up with BYE; returns its final status.
    pub(crate) async fn bye(&self, phone: &Phone) -> StatusCode {
        let bye = phone.build("BYE", &self.contact, &self.to, &self.call_id, "");
        let mut tx = phone.ep.send_request(bye, phone.target()).await.unwrap();
        let ClientEvent::Response(ok) = timeout(WAIT, tx.final_response()).await.unwrap() else {
            panic!("no answer to BYE")
        };
        ok.status().unwrap()
    }
}

/// ACKs a 200 to `invite` and hangs up with BYE; returns the BYE's final status.
pub(crate) async fn ack_and_bye(
    phone: &Phone,
    invite: &Message,
    answer: &Message,
    callee: &str,
) -> StatusCode {
    InDialog::ack(phone, invite, answer, callee)
        .await
        .bye(phone)
        .await
}

/// `user`'s phone, registered to `pbx` with `password`.
pub(crate) async fn registered(
    user: &'static str,
    password: &'static str,
    pbx: &crate::common::Pbx,
) -> Phone {
    let phone = Phone::new(user, pbx.addr).await.with_password(password);
    assert_eq!(phone.register().await.status(), Some(StatusCode::OK));
    phone
}
