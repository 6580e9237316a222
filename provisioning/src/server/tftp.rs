//! A TFTP server for read requests (RFC 1350) with option negotiation (RFC 2347,
//! 2348, 2349).
//!
//! Requests arrive on one socket; each transfer gets its own ephemeral socket (its
//! transfer ID) and runs in its own task, DATA and ACK in lock-step. A block not
//! acknowledged within the timeout (3 s, or the client's `timeout` option) is sent
//! again, at most [`TftpConfig::retries`] times; duplicate ACKs are ignored (no
//! "Sorcerer's Apprentice" retransmission). Answers:
//!
//! | request | answer |
//! |---|---|
//! | RRQ of a file of the source | OACK if options were asked, then the data |
//! | RRQ of a name refused by [`check_path`] | error 2, access violation |
//! | RRQ of a name the source does not have | error 1, file not found |
//! | RRQ beyond [`TftpConfig::max_transfers`] transfers | error 0, `busy` |
//! | RRQ with an option out of range or repeated | error 8, option refused |
//! | WRQ, mode `mail`, malformed packet | error 4, illegal operation |
//!
//! Files are sent as they are in both `octet` and `netascii` modes (phones use
//! `octet`; the files generated here are already in the phones' line ends).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::{Instant, timeout_at};

use super::{FileSource, MissingLog, RequestHook, RequestInfo, check_path};
use crate::tftp::{
    DEFAULT_BLKSIZE, ErrorCode, MAX_BLKSIZE, MAX_PACKET, MIN_BLKSIZE, Mode, Options, Packet,
    Request, TftpError,
};

/// Settings of a [`TftpServer`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TftpConfig {
    /// Time to wait for an ACK before sending again, unless the client negotiates
    /// `timeout`: 3 s.
    pub timeout: Duration,
    /// Retransmissions of one packet before the transfer is abandoned: 5.
    pub retries: u32,
    /// Transfers at once; a request beyond gets error 0 `busy`: 64.
    pub max_transfers: usize,
    /// Largest block size granted (a client asking more gets this): 65464.
    pub max_blksize: u16,
}

impl Default for TftpConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(3),
            retries: 5,
            max_transfers: 64,
            max_blksize: MAX_BLKSIZE,
        }
    }
}

/// A TFTP server; run it with [`TftpServer::run`].
pub struct TftpServer {
    socket: UdpSocket,
    source: Arc<dyn FileSource>,
    config: TftpConfig,
    active: Arc<AtomicUsize>,
    missing: Arc<MissingLog>,
    hook: Option<RequestHook>,
}

impl std::fmt::Debug for TftpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TftpServer")
            .field("socket", &self.socket)
            .field("config", &self.config)
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

/// Decrements the number of transfers when a transfer ends.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// How a transfer ended early.
#[derive(Debug)]
enum End {
    /// The client sent an ERROR.
    Aborted,
    /// The client sent something else than the expected ACK.
    Illegal,
    /// No ACK after every retransmission.
    TimedOut,
    /// The socket failed.
    Io(io::Error),
}

impl TftpServer {
    /// Binds the request socket on `addr` (port 69 for phones) to serve `source`.
    pub async fn bind(
        addr: SocketAddr,
        source: Arc<dyn FileSource>,
        config: TftpConfig,
    ) -> io::Result<Self> {
        Ok(Self {
            socket: UdpSocket::bind(addr).await?,
            source,
            config,
            active: Arc::new(AtomicUsize::new(0)),
            missing: Arc::new(MissingLog::default()),
            hook: None,
        })
    }

    /// Sets the hook called with each accepted read request.
    #[must_use]
    pub fn with_hook(mut self, hook: RequestHook) -> Self {
        self.hook = Some(hook);
        self
    }

    /// The address of the request socket.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// The requests for missing files.
    pub fn missing(&self) -> &MissingLog {
        &self.missing
    }

    /// The number of transfers under way.
    pub fn active_transfers(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }

    /// Serves requests until the request socket fails. Transfers run in tasks of
    /// the current tokio runtime.
    pub async fn run(&self) -> io::Result<()> {
        let mut buf = vec![0; MAX_PACKET + 1];
        loop {
            let (len, peer) = match self.socket.recv_from(&mut buf).await {
                Ok(r) => r,
                // ICMP errors of earlier replies, reported on some systems.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionRefused
                    ) =>
                {
                    continue;
                }
                Err(e) => return Err(e),
            };
            self.handle(buf.get(..len).unwrap_or_default(), peer).await;
        }
    }

    /// Sends an ERROR from the request socket; failures are only logged.
    async fn refuse(&self, peer: SocketAddr, code: ErrorCode, message: &str) {
        send_error(&self.socket, peer, code, message).await;
    }

    async fn handle(&self, datagram: &[u8], peer: SocketAddr) {
        let request = match Packet::parse(datagram) {
            Ok(Packet::Rrq(request)) => request,
            Ok(Packet::Wrq(request)) => {
                tracing::debug!(%peer, file = request.filename, "TFTP write request refused");
                return self
                    .refuse(
                        peer,
                        ErrorCode::ILLEGAL_OPERATION,
                        "write requests are refused",
                    )
                    .await;
            }
            // An error is never answered (RFC 1350 §7).
            Ok(Packet::Error { .. }) => return,
            Ok(_) => {
                return self
                    .refuse(peer, ErrorCode::ILLEGAL_OPERATION, "not a request")
                    .await;
            }
            Err(e) => {
                tracing::debug!(%peer, error = %e, "malformed TFTP request");
                let code = match e {
                    TftpError::BadOption { .. } | TftpError::DuplicateOption { .. } => {
                        ErrorCode::OPTION_REFUSED
                    }
                    _ => ErrorCode::ILLEGAL_OPERATION,
                };
                return self
                    .refuse(peer, code, &format!("malformed request: {e}"))
                    .await;
            }
        };
        if request.mode == Mode::Mail {
            return self
                .refuse(
                    peer,
                    ErrorCode::ILLEGAL_OPERATION,
                    "mail mode is not supported",
                )
                .await;
        }
        if let Err(e) = check_path(&request.filename) {
            tracing::info!(%peer, file = request.filename, reason = %e, "TFTP access violation");
            return self
                .refuse(peer, ErrorCode::ACCESS_VIOLATION, "access violation")
                .await;
        }
        // Take a transfer slot, or refuse.
        let taken = self
            .active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.config.max_transfers).then_some(n + 1)
            });
        if taken.is_err() {
            return self.refuse(peer, ErrorCode::NOT_DEFINED, "busy").await;
        }
        let slot = Slot(Arc::clone(&self.active));
        if let Some(hook) = &self.hook {
            hook(RequestInfo {
                peer,
                path: &request.filename,
                user_agent: None,
            });
        }
        let local = match self.socket.local_addr() {
            Ok(a) => SocketAddr::new(a.ip(), 0),
            Err(e) => {
                tracing::warn!(error = %e, "TFTP request socket has no address");
                return;
            }
        };
        let transfer = Transfer {
            peer,
            request,
            source: Arc::clone(&self.source),
            missing: Arc::clone(&self.missing),
            config: self.config.clone(),
        };
        tokio::spawn(async move {
            let _slot = slot;
            transfer.run(local).await;
        });
    }
}

/// Sends an ERROR packet; failures are only logged.
async fn send_error(socket: &UdpSocket, peer: SocketAddr, code: ErrorCode, message: &str) {
    let packet = Packet::Error {
        code,
        message: message.to_owned(),
    };
    match packet.to_bytes() {
        Ok(bytes) => {
            if let Err(e) = socket.send_to(&bytes, peer).await {
                tracing::debug!(%peer, error = %e, "cannot send TFTP error");
            }
        }
        Err(e) => tracing::debug!(error = %e, "cannot encode TFTP error"),
    }
}

/// One read transfer.
struct Transfer {
    peer: SocketAddr,
    request: Request,
    source: Arc<dyn FileSource>,
    missing: Arc<MissingLog>,
    config: TftpConfig,
}

impl Transfer {
    async fn run(self, local: SocketAddr) {
        let socket = match UdpSocket::bind(local).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot bind a TFTP transfer socket");
                return;
            }
        };
        let peer = self.peer;
        let name = self.request.filename.clone();
        let source = Arc::clone(&self.source);
        let content = match tokio::task::spawn_blocking(move || source.get(&name)).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "TFTP file source failed");
                return send_error(&socket, peer, ErrorCode::NOT_DEFINED, "internal error").await;
            }
        };
        let Some(content) = content else {
            self.missing
                .record(peer.ip(), &self.request.filename, "tftp");
            return send_error(&socket, peer, ErrorCode::FILE_NOT_FOUND, "file not found").await;
        };
        match self.send(&socket, &content).await {
            Ok(()) => tracing::debug!(%peer, file = self.request.filename, "TFTP transfer done"),
            Err(End::Illegal) => {
                send_error(
                    &socket,
                    peer,
                    ErrorCode::ILLEGAL_OPERATION,
                    "expected an ACK",
                )
                .await;
            }
            Err(End::TimedOut) => {
                tracing::debug!(%peer, file = self.request.filename, "TFTP transfer timed out");
                send_error(&socket, peer, ErrorCode::NOT_DEFINED, "timed out").await;
            }
            Err(End::Aborted) => {
                tracing::debug!(%peer, file = self.request.filename, "TFTP transfer aborted by the client");
            }
            Err(End::Io(e)) => {
                tracing::debug!(%peer, file = self.request.filename, error = %e, "TFTP transfer failed");
            }
        }
    }

    /// Negotiates, then sends `content` block by block.
    async fn send(&self, socket: &UdpSocket, content: &[u8]) -> Result<(), End> {
        let asked = self.request.options;
        let granted = Options {
            blksize: asked
                .blksize
                .map(|b| b.min(self.config.max_blksize).max(MIN_BLKSIZE)),
            tsize: asked.tsize.and_then(|_| u64::try_from(content.len()).ok()),
            timeout: asked.timeout,
        };
        let timeout = granted
            .timeout
            .map_or(self.config.timeout, |s| Duration::from_secs(u64::from(s)));
        let blksize = usize::from(granted.blksize.unwrap_or(DEFAULT_BLKSIZE));
        let mut out = Vec::with_capacity(4 + blksize);
        let mut buf = vec![0; MAX_PACKET + 1];
        if !granted.is_empty() {
            Packet::Oack(granted)
                .encode(&mut out)
                .map_err(|_| End::Illegal)?;
            self.lock_step(socket, &out, 0, timeout, &mut buf).await?;
        }
        let mut block: u16 = 0;
        let mut chunks = content.chunks(blksize);
        // The last block is shorter than `blksize`: empty if the size is a multiple.
        let mut last_full = true;
        loop {
            let data = match chunks.next() {
                Some(data) => data,
                None if last_full => &[][..],
                None => return Ok(()),
            };
            last_full = data.len() == blksize;
            block = block.wrapping_add(1);
            out.clear();
            Packet::Data { block, data }
                .encode(&mut out)
                .map_err(|_| End::Illegal)?;
            self.lock_step(socket, &out, block, timeout, &mut buf)
                .await?;
            if !last_full {
                return Ok(());
            }
        }
    }

    /// Sends `packet` until the ACK of `block` comes back, at most `1 + retries` times.
    async fn lock_step(
        &self,
        socket: &UdpSocket,
        packet: &[u8],
        block: u16,
        timeout: Duration,
        buf: &mut [u8],
    ) -> Result<(), End> {
        for _ in 0..=self.config.retries {
            socket.send_to(packet, self.peer).await.map_err(End::Io)?;
            let deadline = Instant::now() + timeout;
            loop {
                let (len, from) = match timeout_at(deadline, socket.recv_from(buf)).await {
                    Err(_) => break,
                    Ok(Ok(r)) => r,
                    Ok(Err(e)) => return Err(End::Io(e)),
                };
                if from != self.peer {
                    // Another transfer ID: answered, and the transfer goes on.
                    send_error(socket, from, ErrorCode::UNKNOWN_TID, "unknown transfer ID").await;
                    continue;
                }
                match Packet::parse(buf.get(..len).unwrap_or_default()) {
                    Ok(Packet::Ack { block: b }) if b == block => return Ok(()),
                    // A duplicate or late ACK: wait for the right one.
                    Ok(Packet::Ack { .. }) => {}
                    Ok(Packet::Error { .. }) => return Err(End::Aborted),
                    _ => return Err(End::Illegal),
                }
            }
        }
        Err(End::TimedOut)
    }
}
