//! The transaction layer (RFC 3261 §17) as a sans-IO state machine.
//!
//! Feed it received messages with [`TransactionLayer::handle_message`] and expired
//! timers with [`TransactionLayer::handle_timeout`]; start client transactions with
//! [`TransactionLayer::send_request`] and answer server ones with
//! [`TransactionLayer::respond`]. Then drain what it wants done:
//!
//! ```
//! # use pbxkit_sip::transaction::{TransactionLayer, Timers};
//! # let mut layer = TransactionLayer::new(Timers::default());
//! # let now = std::time::Instant::now();
//! layer.handle_timeout(now);
//! while let Some(transmit) = layer.poll_transmit() {
//!     // socket.send_to(&transmit.bytes, transmit.target.addr)
//! #   let _ = transmit;
//! }
//! while let Some(event) = layer.poll_event() {
//!     // hand requests, responses and timeouts to the transaction user
//! #   let _ = event;
//! }
//! let _wake_at = layer.poll_timeout();
//! ```
//!
//! It never reads the clock: every call takes `now`.
//!
//! Two layers talking over UDP, the network being the bytes passed between them: the
//! client retransmits its OPTIONS on Timer E, the server answers once and absorbs
//! the retransmission (answering it with the same response), and the client hears
//! the 200:
//!
//! ```
//! use pbxkit_sip::transaction::{Event, Target, Timers, TransactionLayer, TransportKind};
//! use pbxkit_sip::{Message, StatusCode};
//! use std::time::{Duration, Instant};
//!
//! let (alice, pbx) = ("192.0.2.1:5060".parse()?, "192.0.2.10:5060".parse()?);
//! let to_pbx = Target { addr: pbx, transport: TransportKind::Udp };
//! let from_alice = Target { addr: alice, transport: TransportKind::Udp };
//! let options = Message::parse(
//!     "OPTIONS sip:pbx@192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKt1\r\n\
//!      Max-Forwards: 70\r\nFrom: <sip:alice@192.0.2.1>;tag=a1\r\nTo: <sip:pbx@192.0.2.10>\r\n\
//!      Call-ID: t-1@192.0.2.1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
//! )?;
//! let t0 = Instant::now();
//! let mut client = TransactionLayer::new(Timers::default());
//! let mut server = TransactionLayer::new(Timers::default());
//!
//! let tx = client.send_request(options, to_pbx, t0)?;
//! let first = client.poll_transmit().ok_or("the request")?;
//! assert_eq!(first.target, to_pbx);
//! // Timer E: retransmitted after T1 (500 ms) while no response came.
//! let t1 = t0 + Duration::from_millis(500);
//! assert_eq!(client.poll_timeout(), Some(t1));
//! client.handle_timeout(t1);
//! let again = client.poll_transmit().ok_or("a retransmission")?;
//! assert_eq!(again.bytes, first.bytes);
//!
//! // The server hears both copies; the transaction user sees the request once.
//! server.handle_message(Message::parse(first.bytes)?, from_alice, t1);
//! let Some(Event::Request { tx: stx, request, .. }) = server.poll_event() else {
//!     return Err("a request".into());
//! };
//! server.respond(stx, Message::response_to(&request, StatusCode::OK, Some("p1")), t1)?;
//! server.handle_message(Message::parse(again.bytes)?, from_alice, t1);
//! assert!(server.poll_event().is_none());
//! let ok = server.poll_transmit().ok_or("the 200")?;
//! assert_eq!(server.poll_transmit().map(|t| t.bytes), Some(ok.bytes.clone()));
//!
//! client.handle_message(Message::parse(ok.bytes)?, to_pbx, t1);
//! let Some(Event::Response { tx: done, response }) = client.poll_event() else {
//!     return Err("the response".into());
//! };
//! assert_eq!((done, response.status()), (tx, Some(StatusCode::OK)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod client;
mod client_invite;
mod outputs;
mod requests;
mod server;
mod server_invite;
mod timer;

pub use requests::{ack_for_failure, cancel_for};
pub use timer::{Timer, Timers};

use crate::bytestr::ByteStr;
use crate::message::Message;
use crate::method::{Method, StatusCode};
use crate::name::HeaderName;
use crate::uri::Host;
use crate::via::{MAGIC_COOKIE, Transport};
use bytes::Bytes;
use client::ClientNonInvite;
use client_invite::ClientInvite;
use outputs::{Action, Actions};
use server::ServerNonInvite;
use server_invite::ServerInvite;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

/// Where a message comes from or goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Target {
    /// The peer's address.
    pub addr: SocketAddr,
    /// The transport (reliable transports get no retransmissions).
    pub transport: TransportKind,
}

/// The transports the layer knows how to time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// UDP: requests and responses are retransmitted.
    Udp,
    /// TCP.
    Tcp,
    /// TLS.
    Tls,
    /// WebSocket (plain or secure).
    Ws,
}

impl TransportKind {
    /// Whether the transport is reliable.
    pub fn is_reliable(self) -> bool {
        self != TransportKind::Udp
    }
}

/// Bytes to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to.
    pub target: Target,
    /// The serialised message.
    pub bytes: Bytes,
}

/// A client transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientTx(u64);

/// A server transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerTx(u64);

/// What the transaction user must hear about.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// A new request (not a retransmission): answer it with [`TransactionLayer::respond`].
    Request {
        /// Its server transaction.
        tx: ServerTx,
        /// The request, its top Via stamped with `received`/`rport` (RFC 3581).
        request: Message,
        /// Where it came from.
        source: Target,
    },
    /// An ACK that no transaction absorbs: the ACK for a 2xx, for the dialog layer.
    Ack {
        /// The ACK.
        request: Message,
        /// Where it came from.
        source: Target,
    },
    /// A CANCEL matched this INVITE transaction while it was proceeding: the layer has
    /// answered 200 to the CANCEL and 487 to the INVITE.
    Cancelled {
        /// The cancelled INVITE's transaction.
        tx: ServerTx,
        /// The CANCEL (its Reason says why, RFC 3326: "Call completed elsewhere"
        /// when another phone answered a forked call).
        cancel: Message,
    },
    /// A response for a client transaction (2xx retransmissions included for INVITE).
    Response {
        /// The client transaction.
        tx: ClientTx,
        /// The response.
        response: Message,
    },
    /// A response no transaction matches (e.g. a late 2xx retransmission).
    StrayResponse {
        /// The response.
        response: Message,
        /// Where it came from.
        source: Target,
    },
    /// No final response came in time (Timer B or F): treat as 408.
    Timeout {
        /// The client transaction.
        tx: ClientTx,
    },
    /// No ACK came for a final response (Timer H, or Timer L after a 2xx).
    NoAck {
        /// The server transaction.
        tx: ServerTx,
    },
    /// Sending failed for a client transaction: treat as 503 (RFC 3261 §8.1.3.1).
    TransportError {
        /// The client transaction.
        tx: ClientTx,
    },
}

/// Why a request or response could not be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The request has no top Via with a branch, or no CSeq.
    #[error("request needs a top Via with a branch and a CSeq")]
    NotTransactional,
    /// A client transaction with the same branch and method exists.
    #[error("a transaction with this branch already exists")]
    Duplicate,
    /// ACK is not sent through a transaction (send it directly).
    #[error("ACK is sent outside transactions")]
    Ack,
    /// The server transaction is gone.
    #[error("no such transaction")]
    UnknownTransaction,
    /// The message is not a response, or the transaction already answered finally.
    #[error("response not allowed in the transaction's state")]
    BadResponse,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum ServerKey {
    /// Branch with magic cookie, sent-by, method (ACK as INVITE).
    Rfc3261 {
        branch: String,
        sent_by: String,
        method: Method,
    },
    /// RFC 2543 peers: Request-URI, From tag, Call-ID, CSeq number, top Via, method.
    Rfc2543 {
        uri: String,
        from_tag: String,
        call_id: String,
        seq: u32,
        via: String,
        method: Method,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ClientKey {
    branch: String,
    method: Method,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct AckKey {
    call_id: String,
    seq: u32,
    from_tag: String,
}

#[derive(Debug)]
enum ClientKind {
    NonInvite(ClientNonInvite),
    // Boxed: it keeps the INVITE to build ACKs, which makes it much larger.
    Invite(Box<ClientInvite>),
}

#[derive(Debug)]
struct Client {
    kind: ClientKind,
    target: Target,
    key: ClientKey,
}

#[derive(Debug)]
enum ServerKind {
    NonInvite(ServerNonInvite),
    Invite(ServerInvite),
}

#[derive(Debug)]
struct Server {
    kind: ServerKind,
    target: Target,
    key: ServerKey,
    /// The INVITE, kept to build 100 Trying and 487 (INVITE transactions only).
    request: Option<Message>,
    ack_key: Option<AckKey>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum TxRef {
    Client(u64),
    Server(u64),
}

/// The transaction layer: client and server transactions, their timers, and the
/// queues of transmissions and events.
#[derive(Debug)]
pub struct TransactionLayer {
    timers: Timers,
    next_id: u64,
    clients: HashMap<u64, Client>,
    client_keys: HashMap<ClientKey, u64>,
    servers: HashMap<u64, Server>,
    server_keys: HashMap<ServerKey, u64>,
    acks: HashMap<AckKey, u64>,
    /// Deadlines in order; an entry is live only while `deadlines` holds the same instant.
    heap: BinaryHeap<Reverse<(Instant, TxRef, Timer)>>,
    deadlines: HashMap<(TxRef, Timer), Instant>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    scratch: Actions,
}

impl TransactionLayer {
    /// A layer with these timer values.
    pub fn new(timers: Timers) -> TransactionLayer {
        TransactionLayer {
            timers,
            next_id: 1,
            clients: HashMap::new(),
            client_keys: HashMap::new(),
            servers: HashMap::new(),
            server_keys: HashMap::new(),
            acks: HashMap::new(),
            heap: BinaryHeap::new(),
            deadlines: HashMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            scratch: Vec::new(),
        }
    }

    /// Live client and server transactions.
    pub fn len(&self) -> (usize, usize) {
        (self.clients.len(), self.servers.len())
    }

    /// Whether no transaction is alive.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty() && self.servers.is_empty()
    }

    /// The next bytes to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event for the transaction user.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`TransactionLayer::handle_timeout`] should next be called.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        // Drop entries whose timer was re-armed or whose transaction ended.
        while let Some(Reverse((at, tx, timer))) = self.heap.peek().copied() {
            if self.deadlines.get(&(tx, timer)) == Some(&at) {
                return Some(at);
            }
            self.heap.pop();
        }
        None
    }

    fn id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Starts a client transaction for `request` (INVITE or not) towards `target`.
    pub fn send_request(
        &mut self,
        request: Message,
        target: Target,
        now: Instant,
    ) -> Result<ClientTx, SendError> {
        let method = request
            .method()
            .cloned()
            .ok_or(SendError::NotTransactional)?;
        if method == Method::Ack {
            return Err(SendError::Ack);
        }
        let branch = request
            .top_via()
            .ok()
            .and_then(|v| v.branch().map(str::to_owned))
            .ok_or(SendError::NotTransactional)?;
        request.cseq().map_err(|_| SendError::NotTransactional)?;
        let key = ClientKey {
            branch,
            method: method.clone(),
        };
        if self.client_keys.contains_key(&key) {
            return Err(SendError::Duplicate);
        }
        let id = self.id();
        let wire = request.to_bytes();
        let reliable = target.transport.is_reliable();
        let mut out = std::mem::take(&mut self.scratch);
        let kind = if method == Method::Invite {
            ClientKind::Invite(Box::new(ClientInvite::start(
                request,
                wire,
                reliable,
                self.timers,
                now,
                &mut out,
            )))
        } else {
            ClientKind::NonInvite(ClientNonInvite::start(
                wire,
                reliable,
                self.timers,
                now,
                &mut out,
            ))
        };
        self.client_keys.insert(key.clone(), id);
        self.clients.insert(id, Client { kind, target, key });
        self.apply(TxRef::Client(id), &mut out);
        self.scratch = out;
        Ok(ClientTx(id))
    }

    /// Sends `response` on a server transaction.
    pub fn respond(
        &mut self,
        tx: ServerTx,
        response: Message,
        now: Instant,
    ) -> Result<(), SendError> {
        let code = response.status().ok_or(SendError::BadResponse)?;
        let server = self
            .servers
            .get_mut(&tx.0)
            .ok_or(SendError::UnknownTransaction)?;
        let mut out = std::mem::take(&mut self.scratch);
        let wire = response.to_bytes();
        let accepted = match &mut server.kind {
            ServerKind::NonInvite(s) => s.respond(wire, !code.is_provisional(), now, &mut out),
            ServerKind::Invite(s) => {
                let ok = s.respond(wire, code.as_u16(), now, &mut out);
                if ok && code.is_success() {
                    // Index the transaction for the 2xx's ACK, which has a new branch.
                    if let (Ok(call_id), Ok(cseq), Ok(from)) =
                        (response.call_id(), response.cseq(), response.from())
                    {
                        let key = AckKey {
                            call_id: call_id.0.to_string(),
                            seq: cseq.seq,
                            from_tag: from.tag().unwrap_or("").to_owned(),
                        };
                        server.ack_key = Some(key.clone());
                        self.acks.insert(key, tx.0);
                    }
                }
                ok
            }
        };
        self.apply(TxRef::Server(tx.0), &mut out);
        self.scratch = out;
        if accepted {
            Ok(())
        } else {
            Err(SendError::BadResponse)
        }
    }

    /// Reports that sending failed for a client transaction; it ends with
    /// [`Event::TransportError`].
    pub fn transport_error(&mut self, tx: ClientTx) {
        if self.clients.contains_key(&tx.0) {
            self.events.push_back(Event::TransportError { tx });
            self.remove(TxRef::Client(tx.0));
        }
    }

    /// Handles a message received from `source`.
    pub fn handle_message(&mut self, message: Message, source: Target, now: Instant) {
        if message.is_request() {
            self.handle_request(message, source, now);
        } else {
            self.handle_response(message, source, now);
        }
    }

    fn handle_response(&mut self, response: Message, source: Target, now: Instant) {
        let key = match (
            response
                .top_via()
                .ok()
                .and_then(|v| v.branch().map(str::to_owned)),
            response.cseq(),
        ) {
            (Some(branch), Ok(cseq)) => ClientKey {
                branch,
                method: cseq.method.clone(),
            },
            _ => {
                self.events
                    .push_back(Event::StrayResponse { response, source });
                return;
            }
        };
        let Some(&id) = self.client_keys.get(&key) else {
            self.events
                .push_back(Event::StrayResponse { response, source });
            return;
        };
        let mut out = std::mem::take(&mut self.scratch);
        if let Some(client) = self.clients.get_mut(&id) {
            match &mut client.kind {
                ClientKind::NonInvite(c) => c.on_response(response, now, &mut out),
                ClientKind::Invite(c) => c.on_response(response, now, &mut out),
            }
        }
        self.apply(TxRef::Client(id), &mut out);
        self.scratch = out;
    }

    fn handle_request(&mut self, mut request: Message, source: Target, now: Instant) {
        stamp_received(&mut request, source);
        let Some(method) = request.method().cloned() else {
            return;
        };
        let Some(key) = server_key(&request, &method) else {
            return;
        };
        if let Some(&id) = self.server_keys.get(&key) {
            // A retransmission, or the ACK of a non-2xx final response.
            let mut out = std::mem::take(&mut self.scratch);
            if let Some(server) = self.servers.get_mut(&id) {
                match (&mut server.kind, &method) {
                    (ServerKind::Invite(s), Method::Ack) => s.on_ack(now, &mut out),
                    (ServerKind::Invite(s), _) => s.on_request(&mut out),
                    (ServerKind::NonInvite(s), _) => s.on_request(&mut out),
                }
            }
            self.apply(TxRef::Server(id), &mut out);
            self.scratch = out;
            return;
        }
        match method {
            Method::Ack => {
                // The ACK of a 2xx: stop retransmitting that 2xx, and tell the TU.
                if let Some(id) = ack_key(&request).and_then(|k| self.acks.get(&k).copied()) {
                    let mut out = std::mem::take(&mut self.scratch);
                    if let Some(Server {
                        kind: ServerKind::Invite(s),
                        ..
                    }) = self.servers.get_mut(&id)
                    {
                        s.on_ack(now, &mut out);
                    }
                    self.apply(TxRef::Server(id), &mut out);
                    self.scratch = out;
                }
                self.events.push_back(Event::Ack { request, source });
            }
            Method::Cancel => self.handle_cancel(request, key, source, now),
            _ => {
                let id = self.new_server(&request, &method, key, source, now);
                self.events.push_back(Event::Request {
                    tx: ServerTx(id),
                    request,
                    source,
                });
            }
        }
    }

    fn new_server(
        &mut self,
        request: &Message,
        method: &Method,
        key: ServerKey,
        source: Target,
        now: Instant,
    ) -> u64 {
        let id = self.id();
        let reliable = source.transport.is_reliable();
        let mut out = std::mem::take(&mut self.scratch);
        let (kind, kept) = if *method == Method::Invite {
            (
                ServerKind::Invite(ServerInvite::new(reliable, self.timers, now, &mut out)),
                Some(request.clone()),
            )
        } else {
            (
                ServerKind::NonInvite(ServerNonInvite::new(reliable, self.timers)),
                None,
            )
        };
        let target = response_target(request, source);
        self.server_keys.insert(key.clone(), id);
        self.servers.insert(
            id,
            Server {
                kind,
                target,
                key,
                request: kept,
                ack_key: None,
            },
        );
        self.apply(TxRef::Server(id), &mut out);
        self.scratch = out;
        id
    }

    /// CANCEL (§9.2): a transaction of its own, answered 200 when it matches a
    /// proceeding INVITE (which then gets 487), 481 otherwise.
    fn handle_cancel(&mut self, cancel: Message, key: ServerKey, source: Target, now: Instant) {
        let invite_key = match &key {
            ServerKey::Rfc3261 {
                branch, sent_by, ..
            } => ServerKey::Rfc3261 {
                branch: branch.clone(),
                sent_by: sent_by.clone(),
                method: Method::Invite,
            },
            ServerKey::Rfc2543 {
                uri,
                from_tag,
                call_id,
                seq,
                via,
                ..
            } => ServerKey::Rfc2543 {
                uri: uri.clone(),
                from_tag: from_tag.clone(),
                call_id: call_id.clone(),
                seq: *seq,
                via: via.clone(),
                method: Method::Invite,
            },
        };
        let cancel_id = self.new_server(&cancel, &Method::Cancel, key, source, now);
        let invite = self.server_keys.get(&invite_key).copied();
        let proceeding = invite.and_then(|id| match self.servers.get(&id) {
            Some(Server {
                kind: ServerKind::Invite(s),
                request: Some(req),
                ..
            }) if s.state() == server_invite::State::Proceeding => Some((id, req.clone())),
            _ => None,
        });
        match proceeding {
            Some((invite_id, invite_request)) => {
                let ok = Message::response_to(&cancel, StatusCode::OK, Some(&local_tag(invite_id)));
                let _ = self.respond(ServerTx(cancel_id), ok, now);
                let terminated = Message::response_to(
                    &invite_request,
                    StatusCode::REQUEST_TERMINATED,
                    Some(&local_tag(invite_id)),
                );
                let _ = self.respond(ServerTx(invite_id), terminated, now);
                self.events.push_back(Event::Cancelled {
                    tx: ServerTx(invite_id),
                    cancel: cancel.clone(),
                });
            }
            None => {
                let unknown = Message::response_to(
                    &cancel,
                    StatusCode::CALL_DOES_NOT_EXIST,
                    Some(&local_tag(cancel_id)),
                );
                let _ = self.respond(ServerTx(cancel_id), unknown, now);
            }
        }
    }

    /// Handles every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, tx, timer))) = self.heap.peek().copied() {
            if at > now {
                break;
            }
            self.heap.pop();
            if self.deadlines.get(&(tx, timer)) != Some(&at) {
                continue;
            }
            self.deadlines.remove(&(tx, timer));
            let mut out = std::mem::take(&mut self.scratch);
            match tx {
                TxRef::Client(id) => {
                    if let Some(client) = self.clients.get_mut(&id) {
                        match &mut client.kind {
                            ClientKind::NonInvite(c) => c.on_timer(timer, now, &mut out),
                            ClientKind::Invite(c) => c.on_timer(timer, now, &mut out),
                        }
                    }
                }
                TxRef::Server(id) => match self.servers.get_mut(&id) {
                    Some(Server {
                        kind: ServerKind::Invite(s),
                        request: Some(req),
                        ..
                    }) if timer == Timer::Trying && !s.has_sent_provisional() => {
                        let trying = Message::response_to(req, StatusCode::TRYING, None).to_bytes();
                        s.respond(trying, 100, now, &mut out);
                    }
                    Some(Server {
                        kind: ServerKind::Invite(s),
                        ..
                    }) => s.on_timer(timer, now, &mut out),
                    Some(Server {
                        kind: ServerKind::NonInvite(s),
                        ..
                    }) => s.on_timer(timer, &mut out),
                    None => {}
                },
            }
            self.apply(tx, &mut out);
            self.scratch = out;
        }
    }

    /// Carries out a transaction's actions.
    fn apply(&mut self, tx: TxRef, out: &mut Actions) {
        let mut terminated = false;
        for action in out.drain(..) {
            match action {
                Action::Send(bytes) => {
                    let target = match tx {
                        TxRef::Client(id) => self.clients.get(&id).map(|c| c.target),
                        TxRef::Server(id) => self.servers.get(&id).map(|s| s.target),
                    };
                    if let Some(target) = target {
                        self.transmits.push_back(Transmit { target, bytes });
                    }
                }
                Action::Arm(timer, at) => {
                    self.deadlines.insert((tx, timer), at);
                    self.heap.push(Reverse((at, tx, timer)));
                }
                Action::Response(response) => {
                    if let TxRef::Client(id) = tx {
                        self.events.push_back(Event::Response {
                            tx: ClientTx(id),
                            response,
                        });
                    }
                }
                Action::Timeout => {
                    if let TxRef::Client(id) = tx {
                        self.events.push_back(Event::Timeout { tx: ClientTx(id) });
                    }
                }
                Action::NoAck => {
                    if let TxRef::Server(id) = tx {
                        self.events.push_back(Event::NoAck { tx: ServerTx(id) });
                    }
                }
                Action::Terminated => terminated = true,
            }
        }
        if terminated {
            self.remove(tx);
        }
    }

    fn remove(&mut self, tx: TxRef) {
        match tx {
            TxRef::Client(id) => {
                if let Some(c) = self.clients.remove(&id) {
                    self.client_keys.remove(&c.key);
                }
            }
            TxRef::Server(id) => {
                if let Some(s) = self.servers.remove(&id) {
                    self.server_keys.remove(&s.key);
                    if let Some(k) = s.ack_key {
                        self.acks.remove(&k);
                    }
                }
            }
        }
        // One lookup per timer kind, not a scan of every transaction's deadlines
        // (that made each removal cost as much as the whole layer). The heap's
        // entries for this transaction are dropped when they come up.
        for timer in Timer::ALL {
            self.deadlines.remove(&(tx, timer));
        }
    }
}

/// A To tag for the responses the layer makes itself (487, 481, CANCEL's 200).
fn local_tag(id: u64) -> String {
    format!("tx{id:x}")
}

/// The server transaction key of RFC 3261 §17.2.3 (with the RFC 2543 fallback).
fn server_key(request: &Message, method: &Method) -> Option<ServerKey> {
    let via = request.top_via().ok()?;
    // ACK matches the INVITE transaction; CANCEL has a transaction of its own.
    let method = if *method == Method::Ack {
        Method::Invite
    } else {
        method.clone()
    };
    match via.branch() {
        Some(branch) if branch.starts_with(MAGIC_COOKIE) => {
            let port = via.port.unwrap_or(5060);
            let sent_by = format!("{}:{port}", via.host).to_ascii_lowercase();
            Some(ServerKey::Rfc3261 {
                branch: branch.to_owned(),
                sent_by,
                method,
            })
        }
        _ => Some(ServerKey::Rfc2543 {
            uri: request.request_uri()?.to_string(),
            from_tag: request.from().ok()?.tag().unwrap_or("").to_owned(),
            call_id: request.call_id().ok()?.0.to_string(),
            seq: request.cseq().ok()?.seq,
            via: via.to_string(),
            method,
        }),
    }
}

fn ack_key(ack: &Message) -> Option<AckKey> {
    Some(AckKey {
        call_id: ack.call_id().ok()?.0.to_string(),
        seq: ack.cseq().ok()?.seq,
        from_tag: ack.from().ok()?.tag().unwrap_or("").to_owned(),
    })
}

/// RFC 3261 §18.2.1 and RFC 3581: record in the top Via where the request really came
/// from, so that responses find their way back through NATs.
fn stamp_received(request: &mut Message, source: Target) {
    let Ok(via) = request.top_via() else { return };
    let mut via = via.clone();
    let from_ip = source.addr.ip();
    let mut changed = false;
    if via.host != Host::Ip(from_ip) {
        via.params
            .set("received", Some(ByteStr::from(from_ip.to_string())));
        changed = true;
    }
    if via.params.get("rport") == Some(None) {
        via.params
            .set("rport", Some(ByteStr::from(source.addr.port().to_string())));
        changed = true;
    }
    if changed {
        request
            .headers_mut()
            .replace_first_value(&HeaderName::Via, via.to_string());
    }
}

/// RFC 3261 §18.2.2 with RFC 3581: where responses to this request go.
fn response_target(request: &Message, source: Target) -> Target {
    if source.transport.is_reliable() {
        return source;
    }
    let Ok(via) = request.top_via() else {
        return source;
    };
    if via.rport().is_some() {
        return source;
    }
    let ip: IpAddr = via.received().unwrap_or(source.addr.ip());
    Target {
        addr: SocketAddr::new(ip, via.port.unwrap_or(5060)),
        transport: source.transport,
    }
}

impl From<&Transport> for Option<TransportKind> {
    fn from(t: &Transport) -> Self {
        match t {
            Transport::Udp => Some(TransportKind::Udp),
            Transport::Tcp => Some(TransportKind::Tcp),
            Transport::Tls => Some(TransportKind::Tls),
            Transport::Ws | Transport::Wss => Some(TransportKind::Ws),
            _ => None,
        }
    }
}
