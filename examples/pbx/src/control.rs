//! The control socket: `data_dir/control.sock`, a Unix socket that only the PBX's
//! own user can open (mode 0600, nothing on the network), where tools ask the
//! running PBX for its live state: `pbxkit acd live` reads the call centre's
//! statistics there. One request line, one JSON answer line, then the connection
//! closes.
//!
//! The shell answers from the engine's state at the moment it reads the query, so
//! the figures are the ones the queues run on (the HTTP API asks
//! its questions, calls in progress and hang-ups, on the same channel).

use serde_json::Value;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

/// The socket's file name in the data directory.
pub(crate) const SOCKET: &str = "control.sock";

/// Longest request line read.
const MAX_REQUEST: u64 = 256;
/// Time a client has to send its request, and the shell to answer it.
const DEADLINE: Duration = Duration::from_secs(2);
/// Longest socket path the kernel takes (`sun_path` is 108 bytes with its NUL).
const MAX_PATH: usize = 107;
/// Connections served at once; more wait to be accepted.
const MAX_CLIENTS: usize = 16;

/// A question (or an order) for the shell, from this socket or the REST API.
#[derive(Debug)]
pub(crate) enum Query {
    /// Queues' and agents' live statistics.
    Live(oneshot::Sender<Value>),
    /// The calls in progress, oldest first.
    Calls(oneshot::Sender<Vec<LiveCall>>),
    /// Hang up the call of this Call-ID (the caller's); whether there was one.
    HangUp {
        call_id: String,
        reply: oneshot::Sender<bool>,
    },
}

/// A call in progress, as the shell knows it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LiveCall {
    /// The caller's Call-ID.
    pub(crate) call_id: String,
    /// The caller's number, what it dialled and who answered.
    pub(crate) caller: String,
    pub(crate) dialed: String,
    pub(crate) callee: Option<String>,
    /// Unix seconds at creation and answer.
    pub(crate) start: f64,
    pub(crate) answer: Option<f64>,
}

/// Where the shell reads its queries, and the sender the socket and the API share.
pub(crate) fn channel() -> (mpsc::Sender<Query>, mpsc::Receiver<Query>) {
    mpsc::channel(MAX_CLIENTS * 4)
}

/// Listens on `data_dir/control.sock` and hands the queries to `tx` (the
/// shell reads them from [`channel`]'s receiver). A socket file left by a PBX that died is replaced; one that a
/// running PBX answers on is an error (two PBXs on one data directory).
pub(crate) fn serve(data_dir: &Path, tx: mpsc::Sender<Query>) -> io::Result<()> {
    let path = data_dir.join(SOCKET);
    if path.as_os_str().len() >= MAX_PATH {
        // A Unix socket's path is bounded (sun_path): a deep data directory runs
        // the PBX without the control socket rather than not at all.
        tracing::warn!(path = %path.display(), "data directory path too long for the control socket: `pbxkit acd live` will not reach this PBX");
        return Ok(());
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(&path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!(
                    "{}: another PBX runs on this data directory",
                    path.display()
                ),
            ));
        }
        std::fs::remove_file(&path)?;
    }
    let listener = tokio::net::UnixListener::bind(&path)?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    let clients = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CLIENTS));
    tokio::spawn(async move {
        loop {
            let Ok(permit) = clients.clone().acquire_owned().await else {
                return;
            };
            match listener.accept().await {
                Ok((stream, _)) => {
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        answer(stream, tx).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "control socket: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    Ok(())
}

/// Reads one request and writes its answer.
async fn answer(stream: tokio::net::UnixStream, shell: mpsc::Sender<Query>) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = tokio::io::BufReader::new(read.take(MAX_REQUEST));
    let reply = match tokio::time::timeout(DEADLINE, reader.read_line(&mut line)).await {
        Ok(Ok(_)) => match line.trim() {
            "live" => {
                let (tx, rx) = oneshot::channel();
                if shell.send(Query::Live(tx)).await.is_err() {
                    return;
                }
                match tokio::time::timeout(DEADLINE, rx).await {
                    Ok(Ok(value)) => value,
                    _ => serde_json::json!({ "error": "the PBX did not answer in time" }),
                }
            }
            other => serde_json::json!({
                "error": format!("unknown request {other:?} (known: live)")
            }),
        },
        _ => return,
    };
    let mut bytes = reply.to_string().into_bytes();
    bytes.push(b'\n');
    let _ = write.write_all(&bytes).await;
    let _ = write.shutdown().await;
}

/// Asks the PBX whose data directory is `data_dir` (blocking: for the CLI).
pub(crate) fn ask(data_dir: &Path, request: &str) -> io::Result<Value> {
    use std::io::{BufRead, Write};
    let path: PathBuf = data_dir.join(SOCKET);
    let mut stream = std::os::unix::net::UnixStream::connect(&path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("{}: {e} (is the PBX running?)", path.display()),
        )
    })?;
    stream.set_read_timeout(Some(DEADLINE * 2))?;
    stream.set_write_timeout(Some(DEADLINE))?;
    stream.write_all(format!("{request}\n").as_bytes())?;
    let mut line = String::new();
    // A bound on the answer too: a PBX with thousands of agents still fits.
    std::io::BufReader::new(std::io::Read::take(&stream, 64 << 20)).read_line(&mut line)?;
    let value: Value = serde_json::from_str(&line).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    })?;
    if let Some(error) = value.get("error").and_then(Value::as_str) {
        return Err(io::Error::other(error.to_owned()));
    }
    Ok(value)
}
