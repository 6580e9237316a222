//! The TFTP server on 127.0.0.1, against a client written here on a tokio UDP socket.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
#![cfg(feature = "server")]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pbxkit_provisioning::server::MemoryFiles;
use pbxkit_provisioning::server::tftp::{TftpConfig, TftpServer};
use pbxkit_provisioning::tftp::{ErrorCode, Mode, Options, Packet, Request};
use tokio::net::UdpSocket;
use tokio::time::timeout;

/// Longest wait for one datagram from the server.
const WAIT: Duration = Duration::from_secs(5);

/// 100 KB of bytes that differ from block to block.
fn big_file() -> Vec<u8> {
    (0..100_000u32).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// 65 537 blocks of 8 bytes: block numbers wrap past 65 535 to 0.
fn rollover_file() -> Vec<u8> {
    (0..8 * 65_536 + 3u32).map(|i| (i / 8) as u8).collect()
}

/// Starts a server of `a.cfg` (100 KB) and `exact` (1024 bytes): its address.
async fn start(config: TftpConfig) -> (Arc<TftpServer>, SocketAddr) {
    start_with(config, None).await
}

async fn start_with(
    config: TftpConfig,
    seen: Option<Arc<Mutex<Vec<String>>>>,
) -> (Arc<TftpServer>, SocketAddr) {
    let files = MemoryFiles::new([
        ("a.cfg", big_file()),
        ("exact", vec![b'x'; 1024]),
        ("empty", Vec::new()),
        ("rollover", rollover_file()),
    ]);
    let mut server = TftpServer::bind("127.0.0.1:0".parse().unwrap(), Arc::new(files), config)
        .await
        .unwrap();
    if let Some(seen) = seen {
        server = server.with_hook(Arc::new(move |info| {
            seen.lock().unwrap().push(info.path.to_owned());
        }));
    }
    let server = Arc::new(server);
    let addr = server.local_addr().unwrap();
    let running = Arc::clone(&server);
    tokio::spawn(async move { running.run().await });
    (server, addr)
}

async fn client() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.unwrap()
}

fn rrq(name: &str, options: Options) -> Vec<u8> {
    Packet::Rrq(Request {
        filename: name.into(),
        mode: Mode::Octet,
        options,
    })
    .to_bytes()
    .unwrap()
}

/// The next datagram: its bytes and sender.
async fn recv(socket: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = vec![0; 70_000];
    let (len, from) = timeout(WAIT, socket.recv_from(&mut buf))
        .await
        .expect("no answer from the server")
        .unwrap();
    buf.truncate(len);
    (buf, from)
}

async fn ack(socket: &UdpSocket, to: SocketAddr, block: u16) {
    let bytes = Packet::Ack { block }.to_bytes().unwrap();
    socket.send_to(&bytes, to).await.unwrap();
}

/// Downloads `name`: the OACK (if any) and the content.
async fn download(
    server: SocketAddr,
    name: &str,
    options: Options,
) -> Result<(Option<Options>, Vec<u8>), (ErrorCode, String)> {
    let socket = client().await;
    socket.send_to(&rrq(name, options), server).await.unwrap();
    let blksize = usize::from(options.blksize.unwrap_or(512));
    let mut oack = None;
    let mut content = Vec::new();
    let mut expected: u16 = 1;
    let mut tid = None;
    loop {
        let (bytes, from) = recv(&socket).await;
        // Transfer ID: a port of its own, then always the same.
        assert_ne!(from, server, "answered from the request port");
        assert_eq!(*tid.get_or_insert(from), from);
        match Packet::parse(&bytes).unwrap() {
            Packet::Oack(o) => {
                assert!(oack.is_none() && content.is_empty());
                oack = Some(o);
                ack(&socket, from, 0).await;
            }
            Packet::Data { block, data } => {
                assert_eq!(block, expected);
                assert!(data.len() <= blksize);
                content.extend_from_slice(data);
                ack(&socket, from, block).await;
                if data.len() < blksize {
                    return Ok((oack, content));
                }
                expected = expected.wrapping_add(1);
            }
            Packet::Error { code, message } => return Err((code, message)),
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// A request answered by a single ERROR (from any port): its code.
async fn error_of(server: SocketAddr, request: &[u8]) -> (ErrorCode, String) {
    let socket = client().await;
    socket.send_to(request, server).await.unwrap();
    let (bytes, _) = recv(&socket).await;
    match Packet::parse(&bytes).unwrap() {
        Packet::Error { code, message } => (code, message),
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test]
async fn downloads_with_blksize_1428_and_tsize() {
    let (_server, addr) = start(TftpConfig::default()).await;
    let options = Options {
        blksize: Some(1428),
        tsize: Some(0),
        timeout: None,
    };
    let (oack, content) = download(addr, "a.cfg", options).await.unwrap();
    assert_eq!(
        oack,
        Some(Options {
            blksize: Some(1428),
            tsize: Some(100_000),
            timeout: None,
        })
    );
    assert_eq!(content, big_file());
}

#[tokio::test]
async fn downloads_with_default_blksize_without_oack() {
    let (server, addr) = start(TftpConfig::default()).await;
    let (oack, content) = download(addr, "a.cfg", Options::default()).await.unwrap();
    assert_eq!(oack, None);
    assert_eq!(content, big_file());
    // A file of a multiple of the block size ends with an empty block.
    let (_, content) = download(addr, "exact", Options::default()).await.unwrap();
    assert_eq!(content, vec![b'x'; 1024]);
    let (_, content) = download(addr, "empty", Options::default()).await.unwrap();
    assert!(content.is_empty());
    assert_eq!(
        server
            .missing()
            .count("127.0.0.1".parse().unwrap(), "a.cfg"),
        0
    );
}

#[tokio::test]
async fn tsize_and_timeout_alone_are_answered() {
    let (_server, addr) = start(TftpConfig::default()).await;
    let options = Options {
        blksize: None,
        tsize: Some(0),
        timeout: Some(2),
    };
    let (oack, content) = download(addr, "a.cfg", options).await.unwrap();
    assert_eq!(
        oack,
        Some(Options {
            blksize: None,
            tsize: Some(100_000),
            timeout: Some(2)
        })
    );
    assert_eq!(content.len(), 100_000);
}

#[tokio::test]
async fn blksize_is_capped_by_the_config() {
    let mut config = TftpConfig::default();
    config.max_blksize = 1024;
    let (_server, addr) = start(config).await;
    let options = Options {
        blksize: Some(8192),
        ..Options::default()
    };
    // The client then uses the granted size.
    let socket = client().await;
    socket.send_to(&rrq("a.cfg", options), addr).await.unwrap();
    let (bytes, from) = recv(&socket).await;
    assert_eq!(
        Packet::parse(&bytes).unwrap(),
        Packet::Oack(Options {
            blksize: Some(1024),
            ..Options::default()
        })
    );
    ack(&socket, from, 0).await;
    let (bytes, _) = recv(&socket).await;
    let Packet::Data { block: 1, data } = Packet::parse(&bytes).unwrap() else {
        panic!("expected block 1");
    };
    assert_eq!(data.len(), 1024);
}

#[tokio::test]
async fn missing_file_is_error_1_and_repeats_are_counted() {
    let (server, addr) = start(TftpConfig::default()).await;
    let request = rrq("SEP001122334455.cnf.xml", Options::default());
    assert_eq!(error_of(addr, &request).await.0, ErrorCode::FILE_NOT_FOUND);
    assert_eq!(error_of(addr, &request).await.0, ErrorCode::FILE_NOT_FOUND);
    let ip = "127.0.0.1".parse().unwrap();
    assert_eq!(server.missing().count(ip, "SEP001122334455.cnf.xml"), 2);
}

#[tokio::test]
async fn traversal_and_absolute_paths_are_error_2() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (_server, addr) = start_with(TftpConfig::default(), Some(Arc::clone(&seen))).await;
    for name in ["../x", "a/../../x", "/etc/passwd", "..\\x", ".hidden"] {
        let (code, _) = error_of(addr, &rrq(name, Options::default())).await;
        assert_eq!(code, ErrorCode::ACCESS_VIOLATION, "{name}");
    }
    // Refused requests do not reach the hook; accepted ones do.
    download(addr, "empty", Options::default()).await.unwrap();
    assert_eq!(*seen.lock().unwrap(), ["empty"]);
}

#[tokio::test]
async fn write_requests_and_junk_are_error_4() {
    let (_server, addr) = start(TftpConfig::default()).await;
    let wrq = Packet::Wrq(Request {
        filename: "a.cfg".into(),
        mode: Mode::Octet,
        options: Options::default(),
    })
    .to_bytes()
    .unwrap();
    assert_eq!(error_of(addr, &wrq).await.0, ErrorCode::ILLEGAL_OPERATION);
    assert_eq!(
        error_of(addr, b"\x00\x01a.cfg\x00binary\x00").await.0,
        ErrorCode::ILLEGAL_OPERATION
    );
    assert_eq!(
        error_of(addr, b"\x00\x04\x00\x01").await.0,
        ErrorCode::ILLEGAL_OPERATION
    );
    assert_eq!(
        error_of(addr, b"\x00\x01a.cfg\x00octet\x00blksize\x004\x00")
            .await
            .0,
        ErrorCode::OPTION_REFUSED
    );
}

#[tokio::test]
async fn unacknowledged_block_is_sent_again_then_abandoned() {
    let mut config = TftpConfig::default();
    config.timeout = Duration::from_millis(100);
    config.retries = 2;
    let (server, addr) = start(config).await;
    let socket = client().await;
    socket
        .send_to(&rrq("a.cfg", Options::default()), addr)
        .await
        .unwrap();
    // The first block, then two retransmissions, then a timeout error.
    for _ in 0..3 {
        let (bytes, _) = recv(&socket).await;
        assert!(matches!(
            Packet::parse(&bytes).unwrap(),
            Packet::Data { block: 1, .. }
        ));
    }
    let (bytes, _) = recv(&socket).await;
    assert!(matches!(
        Packet::parse(&bytes).unwrap(),
        Packet::Error {
            code: ErrorCode::NOT_DEFINED,
            ..
        }
    ));
    // The slot is released (bounded wait: the task ends right after the error).
    for _ in 0..100 {
        if server.active_transfers() == 0 {
            break;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(server.active_transfers(), 0);
}

#[tokio::test]
async fn transfers_beyond_the_limit_are_busy() {
    let mut config = TftpConfig::default();
    config.max_transfers = 1;
    let (_server, addr) = start(config).await;
    // A first transfer, left waiting for its ACK.
    let first = client().await;
    first
        .send_to(&rrq("a.cfg", Options::default()), addr)
        .await
        .unwrap();
    let (bytes, tid) = recv(&first).await;
    assert!(matches!(
        Packet::parse(&bytes).unwrap(),
        Packet::Data { block: 1, .. }
    ));
    let (code, message) = error_of(addr, &rrq("a.cfg", Options::default())).await;
    assert_eq!((code, message.as_str()), (ErrorCode::NOT_DEFINED, "busy"));
    // A stranger writing to the transfer's port gets error 5; the transfer goes on.
    let stranger = client().await;
    stranger
        .send_to(&Packet::Ack { block: 1 }.to_bytes().unwrap(), tid)
        .await
        .unwrap();
    let (bytes, _) = recv(&stranger).await;
    assert!(matches!(
        Packet::parse(&bytes).unwrap(),
        Packet::Error {
            code: ErrorCode::UNKNOWN_TID,
            ..
        }
    ));
    ack(&first, tid, 1).await;
    let (bytes, _) = recv(&first).await;
    assert!(matches!(
        Packet::parse(&bytes).unwrap(),
        Packet::Data { block: 2, .. }
    ));
}

#[tokio::test]
async fn block_numbers_wrap_around() {
    let (_server, addr) = start(TftpConfig::default()).await;
    let options = Options {
        blksize: Some(8),
        ..Options::default()
    };
    let (_, content) = download(addr, "rollover", options).await.unwrap();
    assert_eq!(content, rollover_file());
}
