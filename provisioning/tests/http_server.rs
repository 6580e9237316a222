//! The HTTP file server on 127.0.0.1, against raw requests on a tokio TCP stream.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
#![cfg(feature = "server")]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pbxkit_provisioning::identify;
use pbxkit_provisioning::server::MemoryFiles;
use pbxkit_provisioning::server::http::{HttpConfig, HttpServer, MAX_HEAD};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Longest wait for the server's whole answer.
const WAIT: Duration = Duration::from_secs(5);

type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

fn big_file() -> Vec<u8> {
    (0..100_000u32).map(|i| (i % 253) as u8).collect()
}

async fn start(config: HttpConfig) -> (Arc<HttpServer>, SocketAddr, Seen) {
    let files = MemoryFiles::new([("001565aabbcc.cfg", big_file())]);
    let seen: Seen = Arc::default();
    let hook_seen = Arc::clone(&seen);
    let server = HttpServer::bind("127.0.0.1:0".parse().unwrap(), Arc::new(files), config)
        .await
        .unwrap()
        .with_hook(Arc::new(move |info| {
            hook_seen
                .lock()
                .unwrap()
                .push((info.path.to_owned(), info.user_agent.map(str::to_owned)));
        }));
    let server = Arc::new(server);
    let addr = server.local_addr().unwrap();
    let running = Arc::clone(&server);
    tokio::spawn(async move { running.run().await });
    (server, addr, seen)
}

/// Sends `request` and reads the answer to the end: status and body.
async fn exchange(addr: SocketAddr, request: &[u8]) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    timeout(WAIT, stream.read_to_end(&mut answer))
        .await
        .expect("the server did not close")
        .unwrap();
    let end = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = std::str::from_utf8(&answer[..end]).unwrap();
    let status = head[9..12].parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .unwrap()
        .parse()
        .unwrap();
    let body = answer[end + 4..].to_vec();
    if !request.starts_with(b"HEAD ") {
        assert_eq!(body.len(), length);
    }
    (status, body)
}

#[tokio::test]
async fn serves_a_file_and_passes_the_user_agent() {
    let (_server, addr, seen) = start(HttpConfig::default()).await;
    let ua = "Yealink SIP-T46S 66.84.0.15 00:15:65:aa:bb:cc";
    let request = format!("GET /001565aabbcc.cfg HTTP/1.1\r\nHost: x\r\nUser-Agent: {ua}\r\n\r\n");
    let (status, body) = exchange(addr, request.as_bytes()).await;
    assert_eq!(status, 200);
    assert_eq!(body, big_file());
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen, [("001565aabbcc.cfg".to_owned(), Some(ua.to_owned()))]);
    // The hook has what identification needs.
    let info = identify::from_user_agent(seen[0].1.as_deref().unwrap()).unwrap();
    assert_eq!(info.mac.unwrap().compact().to_string(), "001565aabbcc");
}

#[tokio::test]
async fn head_has_no_body() {
    let (_server, addr, _) = start(HttpConfig::default()).await;
    let (status, body) = exchange(addr, b"HEAD /001565aabbcc.cfg HTTP/1.1\r\n\r\n").await;
    assert_eq!(status, 200);
    assert!(body.is_empty());
}

#[tokio::test]
async fn missing_is_404_and_counted() {
    let (server, addr, _) = start(HttpConfig::default()).await;
    for _ in 0..2 {
        let (status, _) = exchange(addr, b"GET /SEP001122334455.cnf.xml HTTP/1.1\r\n\r\n").await;
        assert_eq!(status, 404);
    }
    let ip = "127.0.0.1".parse().unwrap();
    assert_eq!(server.missing().count(ip, "SEP001122334455.cnf.xml"), 2);
    assert_eq!(exchange(addr, b"GET / HTTP/1.1\r\n\r\n").await.0, 404);
}

#[tokio::test]
async fn traversal_is_403() {
    let (_server, addr, seen) = start(HttpConfig::default()).await;
    for target in [
        "/../x",
        "/a/../../x",
        "/%2e%2e/x",
        "//etc/passwd",
        "/.hidden",
        "/a%5cb",
    ] {
        let request = format!("GET {target} HTTP/1.1\r\n\r\n");
        assert_eq!(exchange(addr, request.as_bytes()).await.0, 403, "{target}");
    }
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn bad_requests() {
    let (_server, addr, _) = start(HttpConfig::default()).await;
    assert_eq!(exchange(addr, b"POST /a HTTP/1.1\r\n\r\n").await.0, 405);
    assert_eq!(exchange(addr, b"GET /a HTTP/9\r\n\r\n").await.0, 400);
    assert_eq!(exchange(addr, b"\x16\x03\x01\x02\x00\r\n\r\n").await.0, 400);
    let huge = format!("GET /a HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD));
    assert_eq!(exchange(addr, huge.as_bytes()).await.0, 431);
}

#[tokio::test]
async fn slow_clients_are_dropped() {
    let mut config = HttpConfig::default();
    config.read_timeout = Duration::from_millis(100);
    let (_server, addr, _) = start(config).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /001565aabbcc.cfg HTTP/1.1\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    timeout(WAIT, stream.read_to_end(&mut answer))
        .await
        .expect("the server did not close")
        .unwrap();
    assert!(answer.is_empty());
}

#[tokio::test]
async fn connections_beyond_the_limit_get_503() {
    let mut config = HttpConfig::default();
    config.max_connections = 1;
    let (_server, addr, _) = start(config).await;
    // A first connection that sends nothing holds the only slot.
    let _idle = TcpStream::connect(addr).await.unwrap();
    // Bounded wait for the server to accept it.
    let mut status = 0;
    for _ in 0..50 {
        status = exchange(addr, b"GET /001565aabbcc.cfg HTTP/1.1\r\n\r\n")
            .await
            .0;
        if status == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(status, 503);
}
