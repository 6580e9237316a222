//! SIP over UDP and TCP on one address, on tokio (feature `tokio`): the sockets a
//! sans-IO stack (a [`TransactionLayer`](crate::transaction::TransactionLayer), a
//! call engine) is fed from and sends through.
//!
//! [`Transports`] owns the UDP socket, the TCP listener and the connection table;
//! each TCP connection has a task that frames its stream
//! ([`StreamDecoder`]) and writes what is sent to it. [`Transports::recv`] hands
//! back the next message from either transport, with the [`Target`] to answer it
//! on; [`Transports::send`] sends to a target, over the connection it came on, or
//! a new one to a TCP target we have none for. Keep-alives (CRLFs on UDP, double
//! CRLFs on TCP, RFC 5626 §3.5.1) are answered here and never reach the caller.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use pbxkit_sip::StreamLimits;
//! use pbxkit_sip::transports::{Received, Transports};
//!
//! let mut sockets = Transports::bind("127.0.0.1:5060".parse().unwrap(), StreamLimits::default()).await?;
//! loop {
//!     match sockets.recv().await {
//!         Received::Message { message, source } => {
//!             // Hand `message` to the transaction layer; send its output with
//!             // `sockets.send(target, bytes)`.
//!             let _ = (message, source);
//!         }
//!         Received::Bad { answer, source, .. } => {
//!             if let Some(answer) = answer {
//!                 sockets.send(source, answer.to_bytes());
//!             }
//!         }
//!     }
//! }
//! # }
//! ```

use crate::message::Message;
use crate::stream::{Frame, StreamDecoder, StreamLimits};
use crate::transaction::{Target, TransportKind};
use bytes::Bytes;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;

/// Messages waiting between the connection tasks and [`Transports::recv`]; a full
/// queue makes the connections wait (TCP back-pressure), never grows.
const NET_QUEUE: usize = 4096;

/// Writes waiting for one connection; past this a send to it is dropped (the
/// transaction layer retransmits or times out, as over a lossy network).
const WRITE_QUEUE: usize = 256;

/// What arrived.
#[derive(Debug)]
pub enum Received {
    /// A message, and where it came from (the target to answer it on).
    Message {
        /// The message.
        message: Message,
        /// Its source address and transport.
        source: Target,
    },
    /// Bytes that are not a SIP message.
    Bad {
        /// Why.
        error: crate::ParseError,
        /// The error response to send back, when the bytes were a request whose
        /// headers could be read far enough to answer ([`Message::error_response`]).
        answer: Option<Message>,
        /// Where they came from. A TCP connection out of sync is closed.
        source: Target,
    },
}

/// What connection tasks tell [`Transports`].
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "nearly every item is a message: boxing would cost an allocation each"
)]
enum Net {
    Message {
        message: Message,
        source: Target,
    },
    Bad {
        error: crate::ParseError,
        source: Target,
    },
    Ping {
        source: Target,
    },
    Closed {
        peer: SocketAddr,
    },
}

/// UDP and TCP sockets on one address, and the TCP connections.
#[derive(Debug)]
pub struct Transports {
    local: SocketAddr,
    udp: UdpSocket,
    tcp: TcpListener,
    limits: StreamLimits,
    connections: HashMap<SocketAddr, mpsc::Sender<Bytes>>,
    net_tx: mpsc::Sender<Net>,
    net_rx: mpsc::Receiver<Net>,
    buf: Vec<u8>,
}

impl Transports {
    /// Binds UDP on `listen`, then TCP on the address UDP got (port 0 picks one,
    /// the same for both).
    pub async fn bind(listen: SocketAddr, limits: StreamLimits) -> io::Result<Transports> {
        let udp = UdpSocket::bind(listen).await?;
        // tokio's try_send_to refuses (WouldBlock, nothing sent) until the reactor has
        // seen the new socket writable: without this wait the first datagram after
        // bind was dropped, and a request went out only at its first retransmission.
        udp.writable().await?;
        let local = udp.local_addr()?;
        let tcp = TcpListener::bind(local).await?;
        Ok(Transports::new(udp, tcp, limits))
    }

    /// Serves on sockets bound by the caller (the same address for both). Await
    /// `udp.writable()` before the first [`send`](Self::send), as
    /// [`bind`](Self::bind) does: tokio drops a datagram sent before its reactor has
    /// seen the socket writable.
    pub fn new(udp: UdpSocket, tcp: TcpListener, limits: StreamLimits) -> Transports {
        let (net_tx, net_rx) = mpsc::channel(NET_QUEUE);
        Transports {
            local: udp
                .local_addr()
                .unwrap_or_else(|_| ([0, 0, 0, 0], 0).into()),
            udp,
            tcp,
            limits,
            connections: HashMap::new(),
            net_tx,
            net_rx,
            buf: vec![0u8; 65_535],
        }
    }

    /// The bound address (UDP and TCP).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// How many TCP connections are open.
    pub fn connections(&self) -> usize {
        self.connections.len()
    }

    /// The next message from either transport. Cancel-safe: nothing is lost when
    /// the future is dropped (in a `select!`) before it completes.
    pub async fn recv(&mut self) -> Received {
        loop {
            tokio::select! {
                received = self.udp.recv_from(&mut self.buf) => {
                    let Ok((n, peer)) = received else { continue };
                    let bytes = self.buf.get(..n).unwrap_or_default();
                    // CRLF keep-alives (RFC 5626 §4.4.1 uses STUN, but phones send CRLFs).
                    if bytes.iter().all(|b| matches!(b, b'\r' | b'\n')) {
                        continue;
                    }
                    let source = Target { addr: peer, transport: TransportKind::Udp };
                    return match Message::parse(Bytes::copy_from_slice(bytes)) {
                        Ok(message) => Received::Message { message, source },
                        Err(error) => Received::Bad {
                            answer: Message::error_response(bytes, &error),
                            error,
                            source,
                        },
                    };
                }
                accepted = self.tcp.accept() => {
                    if let Ok((stream, peer)) = accepted {
                        let (writer, writes) = mpsc::channel(WRITE_QUEUE);
                        tokio::spawn(serve(stream, peer, self.limits, self.net_tx.clone(), writes));
                        self.connections.insert(peer, writer);
                    }
                }
                Some(net) = self.net_rx.recv() => match net {
                    Net::Message { message, source } => return Received::Message { message, source },
                    Net::Bad { error, source } => {
                        return Received::Bad { error, answer: None, source };
                    }
                    Net::Ping { source } => {
                        // RFC 5626 §3.5.1: answer a double CRLF with a single one.
                        if let Some(conn) = self.connections.get(&source.addr) {
                            let _ = conn.try_send(Bytes::from_static(b"\r\n"));
                        }
                    }
                    Net::Closed { peer } => {
                        // A connection replaced meanwhile (the peer connected again)
                        // stays: only a closed writer is forgotten.
                        if self.connections.get(&peer).is_some_and(mpsc::Sender::is_closed) {
                            self.connections.remove(&peer);
                        }
                    }
                },
            }
        }
    }

    /// Sends `bytes` to `target`: over UDP, or over the TCP connection to its
    /// address (opened in the background when there is none; what is sent
    /// meanwhile waits for it). A failure is logged at debug level and dropped:
    /// SIP retransmits or times out as over a lossy network.
    pub fn send(&mut self, target: Target, bytes: Bytes) {
        match target.transport {
            TransportKind::Udp => {
                if let Err(e) = self.udp.try_send_to(&bytes, target.addr) {
                    tracing::debug!(error = %e, peer = %target.addr, "UDP send failed");
                }
            }
            _ => {
                let conn = match self.connections.get(&target.addr) {
                    Some(c) if !c.is_closed() => c.clone(),
                    _ => {
                        let c = connect(target.addr, self.limits, self.net_tx.clone());
                        self.connections.insert(target.addr, c.clone());
                        c
                    }
                };
                if conn.try_send(bytes).is_err() {
                    tracing::debug!(peer = %target.addr, "TCP connection backlog full");
                }
            }
        }
    }
}

/// Connects in the background; returns the connection's writer.
fn connect(peer: SocketAddr, limits: StreamLimits, net: mpsc::Sender<Net>) -> mpsc::Sender<Bytes> {
    let (writer, writes) = mpsc::channel(WRITE_QUEUE);
    tokio::spawn(async move {
        match TcpStream::connect(peer).await {
            Ok(stream) => serve(stream, peer, limits, net, writes).await,
            Err(e) => {
                tracing::debug!(error = %e, %peer, "TCP connect failed");
                drop(writes);
                let _ = net.send(Net::Closed { peer }).await;
            }
        }
    });
    writer
}

/// Reads and frames one connection's stream, and writes what is sent to it.
async fn serve(
    mut stream: TcpStream,
    peer: SocketAddr,
    limits: StreamLimits,
    net: mpsc::Sender<Net>,
    mut writes: mpsc::Receiver<Bytes>,
) {
    let source = Target {
        addr: peer,
        transport: TransportKind::Tcp,
    };
    let mut decoder = StreamDecoder::new(limits);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            read = stream.read(&mut buf) => {
                let n = match read { Ok(0) | Err(_) => break, Ok(n) => n };
                decoder.extend(buf.get(..n).unwrap_or_default());
                loop {
                    match decoder.next_frame() {
                        Ok(Some(Frame::Message(message))) => {
                            if net.send(Net::Message { message, source }).await.is_err() { return; }
                        }
                        Ok(Some(Frame::Ping)) => { let _ = net.send(Net::Ping { source }).await; }
                        Ok(Some(Frame::Pong)) => {}
                        Ok(None) => break,
                        Err(error) => {
                            // The stream is out of sync: report it and close.
                            let _ = net.send(Net::Bad { error, source }).await;
                            drop(writes);
                            let _ = net.send(Net::Closed { peer }).await;
                            return;
                        }
                    }
                }
            }
            write = writes.recv() => match write {
                Some(bytes) => if stream.write_all(&bytes).await.is_err() { break },
                None => break,
            },
        }
    }
    drop(writes);
    let _ = net.send(Net::Closed { peer }).await;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

    use super::*;
    use std::time::Duration;

    const OPTIONS: &str = "OPTIONS sip:pbx@127.0.0.1 SIP/2.0\r\n\
        Via: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bKt1\r\n\
        From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:pbx@127.0.0.1>\r\n\
        Call-ID: t1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";

    async fn recv(t: &mut Transports) -> Received {
        tokio::time::timeout(Duration::from_secs(5), t.recv())
            .await
            .unwrap()
    }

    async fn read(stream: &mut tokio::net::TcpStream, len: usize) -> Vec<u8> {
        let mut got = vec![0u8; len];
        tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut got))
            .await
            .unwrap()
            .unwrap();
        got
    }

    #[tokio::test]
    async fn the_first_datagram_after_bind_is_sent() {
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut t = Transports::bind("127.0.0.1:0".parse().unwrap(), StreamLimits::default())
            .await
            .unwrap();
        let target = Target {
            transport: TransportKind::Udp,
            addr: peer.local_addr().unwrap(),
        };
        // At once, before the runtime has polled anything else.
        t.send(target, Bytes::from_static(b"first"));
        let mut buf = [0u8; 16];
        let (n, _) = peer.recv_from(&mut buf).expect("the datagram arrives");
        assert_eq!(&buf[..n], b"first");
    }

    #[tokio::test]
    async fn messages_arrive_over_both_transports_and_answers_go_back_on_theirs() {
        let mut t = Transports::bind("127.0.0.1:0".parse().unwrap(), StreamLimits::default())
            .await
            .unwrap();
        let local = t.local_addr();

        // UDP: a keep-alive is swallowed, garbage gets no message, a request arrives.
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        udp.send_to(b"\r\n\r\n", local).unwrap();
        udp.send_to(OPTIONS.as_bytes(), local).unwrap();
        let Received::Message { message, source } = recv(&mut t).await else {
            panic!("expected a message");
        };
        assert_eq!(&*message.call_id().unwrap().0, "t1");
        assert_eq!(source.transport, TransportKind::Udp);
        t.send(source, Bytes::from_static(b"pong"));
        let mut buf = [0u8; 16];
        udp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let (n, _) = udp.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"pong");

        // TCP: a ping is answered (while recv runs: it never returns for one).
        let mut tcp = tokio::net::TcpStream::connect(local).await.unwrap();
        tcp.write_all(b"\r\n\r\n").await.unwrap();
        let pending = tokio::time::timeout(Duration::from_millis(100), t.recv()).await;
        assert!(pending.is_err(), "a ping is not a message");
        assert_eq!(read(&mut tcp, 2).await, b"\r\n");
        // A request split over two writes.
        let (a, b) = OPTIONS.as_bytes().split_at(40);
        tcp.write_all(a).await.unwrap();
        let pending = tokio::time::timeout(Duration::from_millis(50), t.recv()).await;
        assert!(pending.is_err(), "half a message is not a message");
        tcp.write_all(b).await.unwrap();
        let Received::Message { source, .. } = recv(&mut t).await else {
            panic!("expected a message");
        };
        assert_eq!(source.transport, TransportKind::Tcp);
        assert_eq!(t.connections(), 1);
        t.send(source, Bytes::from_static(b"answer"));
        assert_eq!(read(&mut tcp, 6).await, b"answer");

        // A stream out of sync is reported once and closed.
        tcp.write_all(b"\x00\x01 not sip at all\r\n\r\n")
            .await
            .unwrap();
        let Received::Bad { source, .. } = recv(&mut t).await else {
            panic!("expected garbage");
        };
        assert_eq!(source.transport, TransportKind::Tcp);
        let mut chunk = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut chunk))
            .await
            .unwrap()
            .unwrap_or(0);
        assert_eq!(n, 0, "the connection is closed");
    }

    #[tokio::test]
    async fn a_tcp_target_without_a_connection_is_connected_to() {
        let mut t = Transports::bind("127.0.0.1:0".parse().unwrap(), StreamLimits::default())
            .await
            .unwrap();
        let peer = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = Target {
            addr: peer.local_addr().unwrap(),
            transport: TransportKind::Tcp,
        };
        t.send(target, Bytes::from_static(OPTIONS.as_bytes()));
        let (mut stream, _) = tokio::time::timeout(Duration::from_secs(5), peer.accept())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(read(&mut stream, OPTIONS.len()).await, OPTIONS.as_bytes());
        // Its answer comes back through recv.
        stream
            .write_all(OPTIONS.replace("t1", "t2").as_bytes())
            .await
            .unwrap();
        let Received::Message { message, source } = recv(&mut t).await else {
            panic!("expected a message");
        };
        assert_eq!(&*message.call_id().unwrap().0, "t2");
        assert_eq!(source, target);
    }
}
