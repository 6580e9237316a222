//! A SIP endpoint on tokio (feature `tokio`): UDP and TCP transports on one address,
//! driven by the sans-IO [`TransactionLayer`] in a single task.
//!
//! One task owns the layer and the sockets ([`Transports`]: UDP, the TCP listener and
//! the connection table; each TCP connection has a task that frames its stream). Nothing else is shared, so there is
//! no lock around the protocol state. Channels fed by the network are bounded: when
//! the application falls behind, new requests are answered 503 rather than queued
//! without limit.
//!
//! Not yet here: TLS and WebSocket (the [`TransportKind`](crate::transaction::TransportKind) set is ready for them), and
//! switching large UDP requests to TCP (RFC 3261 §18.1.1).
//!
//! Two endpoints on 127.0.0.1 (port 0: the system picks one), one asking the other
//! with OPTIONS; every wait is bounded by `tokio::time::timeout`:
//!
//! ```
//! use pbxkit_sip::endpoint::{ClientEvent, Endpoint, EndpointConfig, Incoming};
//! use pbxkit_sip::transaction::{Target, TransportKind};
//! use pbxkit_sip::{Message, StatusCode};
//! use std::time::Duration;
//! use tokio::time::timeout;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! # runtime.block_on(async {
//! let config = EndpointConfig { listen: "127.0.0.1:0".parse()?, ..EndpointConfig::default() };
//! let mut uas = Endpoint::bind(config.clone()).await?;
//! let uac = Endpoint::bind(config).await?;
//! let (to, me) = (uas.local_addr(), uac.local_addr());
//! let options = Message::parse(format!(
//!     "OPTIONS sip:uas@{to} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKopt1;rport\r\n\
//!      Max-Forwards: 70\r\nFrom: <sip:uac@{me}>;tag=u1\r\nTo: <sip:uas@{to}>\r\n\
//!      Call-ID: opt-1@{me}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
//! ))?;
//! let target = Target { addr: to, transport: TransportKind::Udp };
//! let mut tx = uac.send_request(options, target).await?;
//!
//! // The UAS answers the request on its server transaction.
//! let Some(Incoming::Request(req)) = timeout(Duration::from_secs(2), uas.next()).await? else {
//!     return Err("expected a request".into());
//! };
//! req.respond(Message::response_to(&req.request, StatusCode::OK, Some("s1"))).await?;
//!
//! let ClientEvent::Response(ok) = timeout(Duration::from_secs(2), tx.final_response()).await? else {
//!     return Err("no response".into());
//! };
//! assert_eq!(ok.status(), Some(StatusCode::OK));
//! timeout(Duration::from_secs(2), uac.shutdown()).await?;
//! timeout(Duration::from_secs(2), uas.shutdown()).await?;
//! # Ok(())
//! # })
//! # }
//! ```

use crate::bytestr::ByteStr;
use crate::message::Message;
use crate::method::{Method, StatusCode};
use crate::name::HeaderName;
use crate::stream::StreamLimits;
use crate::transaction::{ClientTx, Event, SendError, ServerTx, Target, Timers, TransactionLayer};
use crate::transports::{Received, Transports};
use crate::values::Token;
use bytes::Bytes;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

/// Endpoint settings.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// Address for UDP and TCP (port 0 picks one, the same for both).
    pub listen: SocketAddr,
    /// Transaction timers.
    pub timers: Timers,
    /// Limits for messages on TCP.
    pub stream_limits: StreamLimits,
    /// Option tags we support: requests requiring others get 420 (RFC 3261 §8.2.2.3).
    pub supported: Vec<String>,
    /// How many incoming requests may wait for the application before new ones get 503.
    pub queue: usize,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 5060)),
            timers: Timers::default(),
            stream_limits: StreamLimits::default(),
            supported: vec![
                "replaces".into(),
                "timer".into(),
                "path".into(),
                "outbound".into(),
            ],
            queue: 1024,
        }
    }
}

/// What happened to a client transaction.
#[derive(Debug, Clone)]
#[expect(
    clippy::large_enum_variant,
    reason = "responses are the common case; boxing them would cost an allocation each"
)]
pub enum ClientEvent {
    /// A response (provisional or final; 2xx retransmissions too for INVITE).
    Response(Message),
    /// No final response in time (treat as 408).
    Timeout,
    /// The request could not be sent (treat as 503).
    TransportError,
}

/// Something for the application.
#[derive(Debug)]
#[non_exhaustive]
pub enum Incoming {
    /// A new request to answer.
    Request(ServerRequest),
    /// An ACK for a 2xx (no transaction).
    Ack {
        /// The ACK.
        request: Message,
        /// Where it came from.
        source: Target,
    },
    /// A CANCEL ended this INVITE transaction (the endpoint answered 487 already).
    Cancelled {
        /// The cancelled INVITE's transaction.
        tx: ServerTx,
        /// The CANCEL, for its Reason header.
        cancel: Message,
    },
    /// No ACK came for a final response.
    NoAck(ServerTx),
}

/// A received request with the means to answer it.
#[derive(Debug)]
pub struct ServerRequest {
    /// The request (top Via stamped with received/rport).
    pub request: Message,
    /// Where it came from.
    pub source: Target,
    /// Its server transaction.
    pub tx: ServerTx,
    commands: mpsc::Sender<Command>,
}

impl ServerRequest {
    /// Sends a response on the request's transaction.
    pub async fn respond(&self, response: Message) -> Result<(), SendError> {
        respond(&self.commands, self.tx, response).await
    }

    /// A handle to answer later (after the request itself was dropped).
    pub fn responder(&self) -> Responder {
        Responder {
            tx: self.tx,
            commands: self.commands.clone(),
        }
    }
}

/// Answers one server transaction.
#[derive(Debug, Clone)]
pub struct Responder {
    tx: ServerTx,
    commands: mpsc::Sender<Command>,
}

impl Responder {
    /// Sends a response on the transaction.
    pub async fn respond(&self, response: Message) -> Result<(), SendError> {
        respond(&self.commands, self.tx, response).await
    }
}

async fn respond(
    commands: &mpsc::Sender<Command>,
    tx: ServerTx,
    response: Message,
) -> Result<(), SendError> {
    let (reply, result) = oneshot::channel();
    commands
        .send(Command::Respond {
            tx,
            response,
            reply,
        })
        .await
        .map_err(|_| SendError::UnknownTransaction)?;
    result.await.unwrap_or(Err(SendError::UnknownTransaction))
}

/// A client transaction's events.
#[derive(Debug)]
pub struct ClientTransaction {
    /// Its id in the layer.
    pub tx: ClientTx,
    events: mpsc::Receiver<ClientEvent>,
}

impl ClientTransaction {
    /// The next event; `None` once the transaction is over.
    pub async fn next(&mut self) -> Option<ClientEvent> {
        self.events.recv().await
    }

    /// Waits for the final response (skipping provisionals), or timeout/error.
    pub async fn final_response(&mut self) -> ClientEvent {
        while let Some(e) = self.next().await {
            match e {
                ClientEvent::Response(r) if r.status().is_some_and(|c| c.is_provisional()) => {
                    continue;
                }
                other => return other,
            }
        }
        ClientEvent::TransportError
    }
}

#[derive(Debug)]
enum Command {
    Send {
        request: Message,
        target: Target,
        reply: oneshot::Sender<Result<ClientTransaction, SendError>>,
    },
    Respond {
        tx: ServerTx,
        response: Message,
        reply: oneshot::Sender<Result<(), SendError>>,
    },
    Stateless {
        message: Message,
        target: Target,
    },
    Ack {
        ack: Message,
        target: Target,
    },
    Shutdown,
}

/// The 2xx an ACK answers: Call-ID, CSeq number and To tag (RFC 3261 §13.2.2.4).
type AckKey = (ByteStr, u32, ByteStr);

fn ack_key(message: &Message) -> Option<AckKey> {
    Some((
        message.call_id().ok()?.0.clone(),
        message.cseq().ok()?.seq,
        ByteStr::from(message.to().ok()?.tag()?.to_owned()),
    ))
}

/// Sends through a running endpoint; cheap to clone.
#[derive(Debug, Clone)]
pub struct EndpointHandle {
    local: SocketAddr,
    commands: mpsc::Sender<Command>,
}

impl EndpointHandle {
    /// The endpoint's bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Starts a client transaction.
    pub async fn send_request(
        &self,
        request: Message,
        target: Target,
    ) -> Result<ClientTransaction, SendError> {
        let (reply, result) = oneshot::channel();
        self.commands
            .send(Command::Send {
                request,
                target,
                reply,
            })
            .await
            .map_err(|_| SendError::UnknownTransaction)?;
        result.await.unwrap_or(Err(SendError::UnknownTransaction))
    }

    /// Sends a message outside any transaction (the ACK of a 2xx, say).
    pub async fn send_stateless(&self, message: Message, target: Target) {
        let _ = self
            .commands
            .send(Command::Stateless { message, target })
            .await;
    }

    /// Sends the ACK of a 2xx to an INVITE and remembers it for 64×T1: every
    /// retransmission of that 2xx (the callee did not get the ACK) is ACKed again
    /// with the same message (RFC 3261 §13.2.2.4), even after the application has
    /// dropped the INVITE's transaction.
    pub async fn send_ack(&self, ack: Message, target: Target) {
        let _ = self.commands.send(Command::Ack { ack, target }).await;
    }

    /// Answers a server transaction.
    pub async fn respond(&self, tx: ServerTx, response: Message) -> Result<(), SendError> {
        respond(&self.commands, tx, response).await
    }
}

/// A running endpoint.
#[derive(Debug)]
pub struct Endpoint {
    local: SocketAddr,
    commands: mpsc::Sender<Command>,
    incoming: mpsc::Receiver<Incoming>,
    task: tokio::task::JoinHandle<()>,
}

impl Endpoint {
    /// Binds UDP and TCP and starts the driver task on the current runtime.
    pub async fn bind(config: EndpointConfig) -> io::Result<Endpoint> {
        let transports = Transports::bind(config.listen, config.stream_limits).await?;
        let local = transports.local_addr();
        let (commands, command_rx) = mpsc::channel(1024);
        let (incoming_tx, incoming) = mpsc::channel(config.queue.max(1));
        let driver = Driver::new(config, transports, commands.clone(), incoming_tx);
        let task = tokio::spawn(driver.run(command_rx));
        Ok(Endpoint {
            local,
            commands,
            incoming,
            task,
        })
    }

    /// The bound address (UDP and TCP).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Starts a client transaction.
    pub async fn send_request(
        &self,
        request: Message,
        target: Target,
    ) -> Result<ClientTransaction, SendError> {
        self.handle().send_request(request, target).await
    }

    /// Sends a message outside any transaction (the ACK of a 2xx, say).
    pub async fn send_stateless(&self, message: Message, target: Target) {
        self.handle().send_stateless(message, target).await
    }

    /// Sends the ACK of a 2xx and ACKs that 2xx's retransmissions with it
    /// ([`EndpointHandle::send_ack`]).
    pub async fn send_ack(&self, ack: Message, target: Target) {
        self.handle().send_ack(ack, target).await
    }

    /// A cloneable handle for sending from other tasks (a call's, say).
    pub fn handle(&self) -> EndpointHandle {
        EndpointHandle {
            local: self.local,
            commands: self.commands.clone(),
        }
    }

    /// The next request (or ACK, CANCEL notice...) for the application.
    pub async fn next(&mut self) -> Option<Incoming> {
        self.incoming.recv().await
    }

    /// Stops the endpoint.
    pub async fn shutdown(self) {
        let _ = self.commands.send(Command::Shutdown).await;
        let _ = self.task.await;
    }
}

struct Driver {
    config: EndpointConfig,
    layer: TransactionLayer,
    transports: Transports,
    clients: HashMap<ClientTx, mpsc::Sender<ClientEvent>>,
    /// Client entries are swept (receivers dropped) when the table grows past this;
    /// it then doubles, so that sweeping costs O(1) per transaction.
    sweep_at: usize,
    /// ACKs of 2xx responses, sent again on every retransmission of their 2xx.
    acks: HashMap<AckKey, (Bytes, Target)>,
    /// When each remembered ACK is forgotten, oldest first.
    ack_expiry: std::collections::VecDeque<(Instant, AckKey)>,
    incoming: mpsc::Sender<Incoming>,
    commands: mpsc::Sender<Command>,
    local_tag: u64,
}

impl Driver {
    fn new(
        config: EndpointConfig,
        transports: Transports,
        commands: mpsc::Sender<Command>,
        incoming: mpsc::Sender<Incoming>,
    ) -> Driver {
        Driver {
            layer: TransactionLayer::new(config.timers),
            config,
            transports,
            clients: HashMap::new(),
            sweep_at: 64,
            acks: HashMap::new(),
            ack_expiry: std::collections::VecDeque::new(),
            incoming,
            commands,
            local_tag: 0,
        }
    }

    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        loop {
            let wake = self.layer.poll_timeout();
            tokio::select! {
                received = self.transports.recv() => match received {
                    Received::Message { message, source } => {
                        self.layer.handle_message(message, source, Instant::now());
                    }
                    Received::Bad { error, answer, source } => {
                        tracing::debug!(%error, peer = %source.addr, "unparseable SIP message");
                        if let Some(answer) = answer {
                            self.transports.send(source, answer.to_bytes());
                        }
                    }
                },
                command = commands.recv() => match command {
                    None | Some(Command::Shutdown) => return,
                    Some(command) => self.command(command),
                },
                _ = sleep_until(wake) => self.layer.handle_timeout(Instant::now()),
            }
            self.flush();
        }
    }

    fn command(&mut self, command: Command) {
        let now = Instant::now();
        match command {
            Command::Send {
                request,
                target,
                reply,
            } => {
                let result = self.layer.send_request(request, target, now).map(|tx| {
                    let (events_tx, events) = mpsc::channel(64);
                    self.clients.insert(tx, events_tx);
                    ClientTransaction { tx, events }
                });
                let _ = reply.send(result);
            }
            Command::Respond {
                tx,
                response,
                reply,
            } => {
                let _ = reply.send(self.layer.respond(tx, response, now));
            }
            Command::Stateless { message, target } => self.transmit(target, message.to_bytes()),
            Command::Ack { ack, target } => {
                let bytes = ack.to_bytes();
                self.transmit(target, bytes.clone());
                if let Some(key) = ack_key(&ack) {
                    self.forget_acks(now);
                    let keep = self.config.timers.t1.saturating_mul(64);
                    self.ack_expiry.push_back((now + keep, key.clone()));
                    self.acks.insert(key, (bytes, target));
                }
            }
            Command::Shutdown => {}
        }
    }

    fn transmit(&mut self, target: Target, bytes: Bytes) {
        self.transports.send(target, bytes);
    }

    /// Sends what the layer wants sent and hands its events on.
    fn flush(&mut self) {
        // Handling an event may answer it (420, 503), which queues more to send.
        loop {
            while let Some(t) = self.layer.poll_transmit() {
                self.transmit(t.target, t.bytes);
            }
            let Some(event) = self.layer.poll_event() else {
                break;
            };
            self.event(event);
        }
        // Forget the event channels of client transactions whose application has
        // gone; the table is swept each time it doubles, not at every message.
        if self.clients.len() > self.sweep_at {
            self.clients.retain(|_, tx| !tx.is_closed());
            self.sweep_at = (self.clients.len() * 2).max(64);
        }
    }

    /// Drops the ACKs whose 2xx can no longer be retransmitted.
    fn forget_acks(&mut self, now: Instant) {
        while let Some((at, _)) = self.ack_expiry.front()
            && *at <= now
        {
            if let Some((_, key)) = self.ack_expiry.pop_front() {
                self.acks.remove(&key);
            }
        }
    }

    /// A retransmitted 2xx to an INVITE that we have ACKed: the same ACK again.
    fn ack_again(&mut self, response: &Message) {
        let is_invite_2xx = response.status().is_some_and(|c| c.is_success())
            && response.cseq().is_ok_and(|c| c.method == Method::Invite);
        if !is_invite_2xx || self.acks.is_empty() {
            return;
        }
        self.forget_acks(Instant::now());
        if let Some((bytes, target)) = ack_key(response).and_then(|k| self.acks.get(&k)).cloned() {
            self.transmit(target, bytes);
        }
    }

    fn event(&mut self, event: Event) {
        let now = Instant::now();
        match event {
            Event::Request {
                tx,
                request,
                source,
            } => {
                if let Some(unsupported) = self.unsupported(&request) {
                    self.local_tag += 1;
                    let mut r = Message::response_to(
                        &request,
                        StatusCode::BAD_EXTENSION,
                        Some(&format!("e{}", self.local_tag)),
                    );
                    r.headers_mut().push(HeaderName::Unsupported, unsupported);
                    let _ = self.layer.respond(tx, r, now);
                    return;
                }
                let incoming = Incoming::Request(ServerRequest {
                    request: request.clone(),
                    source,
                    tx,
                    commands: self.commands.clone(),
                });
                if self.incoming.try_send(incoming).is_err() {
                    // The application is behind: refuse rather than queue without bound.
                    self.local_tag += 1;
                    let mut r = Message::response_to(
                        &request,
                        StatusCode::SERVICE_UNAVAILABLE,
                        Some(&format!("e{}", self.local_tag)),
                    );
                    r.headers_mut()
                        .push(HeaderName::RetryAfter, ByteStr::from_static("5"));
                    let _ = self.layer.respond(tx, r, now);
                }
            }
            Event::Ack { request, source } => {
                let _ = self.incoming.try_send(Incoming::Ack { request, source });
            }
            Event::Cancelled { tx, cancel } => {
                let _ = self.incoming.try_send(Incoming::Cancelled { tx, cancel });
            }
            Event::NoAck { tx } => {
                let _ = self.incoming.try_send(Incoming::NoAck(tx));
            }
            Event::Response { tx, response } => {
                self.ack_again(&response);
                let last = response.status().is_some_and(|c| c.as_u16() >= 300)
                    || (response.status().is_some_and(|c| c.is_success())
                        && response.cseq().is_ok_and(|c| c.method != Method::Invite));
                if let Some(events) = self.clients.get(&tx) {
                    let _ = events.try_send(ClientEvent::Response(response));
                }
                if last {
                    self.clients.remove(&tx);
                }
            }
            Event::Timeout { tx } => {
                if let Some(events) = self.clients.remove(&tx) {
                    let _ = events.try_send(ClientEvent::Timeout);
                }
            }
            Event::TransportError { tx } => {
                if let Some(events) = self.clients.remove(&tx) {
                    let _ = events.try_send(ClientEvent::TransportError);
                }
            }
            Event::StrayResponse { response, .. } => self.ack_again(&response),
        }
    }

    /// The Require option tags we don't support, comma-separated, if any.
    fn unsupported(&self, request: &Message) -> Option<String> {
        if matches!(request.method(), Some(Method::Ack | Method::Cancel)) {
            return None;
        }
        let missing: Vec<String> = request
            .headers()
            .typed_all::<Token>(&HeaderName::Require)
            .filter_map(Result::ok)
            .map(|t| t.0.to_string())
            .filter(|t| {
                !self
                    .config
                    .supported
                    .iter()
                    .any(|s| s.eq_ignore_ascii_case(t))
            })
            .collect();
        (!missing.is_empty()).then(|| missing.join(", "))
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
