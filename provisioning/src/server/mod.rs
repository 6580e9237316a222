//! Servers phones download their files from (feature `server`, on tokio): TFTP
//! ([`tftp::TftpServer`]) and HTTP ([`http::HttpServer`]).
//!
//! Both serve a [`FileSource`], a map from a requested name to bytes that the caller
//! provides: the output directory of [`generate`](crate::generate) ([`DirFiles`]) or
//! an in-memory map ([`MemoryFiles`]). Names are checked by [`check_path`] before the
//! source sees them, so a source only ever gets a relative path of plain components.
//! Both report each request to an optional [`RequestHook`] (for identification from the
//! file name or the `User-Agent`) and count requests for missing files in a
//! [`MissingLog`], logging the repeated ones.
//!
//! ```no_run
//! use std::sync::Arc;
//! use pbxkit_provisioning::identify;
//! use pbxkit_provisioning::server::{DirFiles, RequestHook};
//! use pbxkit_provisioning::server::http::{HttpConfig, HttpServer};
//! use pbxkit_provisioning::server::tftp::{TftpConfig, TftpServer};
//!
//! # async fn serve() -> std::io::Result<()> {
//! // The directory `generate::write_files` writes to.
//! let files = Arc::new(DirFiles::new("/var/lib/pbxkit/tftpboot"));
//! let hook: RequestHook = Arc::new(|request| {
//!     let info = request
//!         .user_agent
//!         .and_then(identify::from_user_agent)
//!         .or_else(|| identify::from_filename(request.path));
//!     if let Some(info) = info {
//!         println!("{} is {info:?}", request.peer);
//!     }
//! });
//! let tftp = TftpServer::bind("0.0.0.0:69".parse().unwrap(), files.clone(), TftpConfig::default())
//!     .await?
//!     .with_hook(hook.clone());
//! let http = HttpServer::bind("0.0.0.0:8667".parse().unwrap(), files, HttpConfig::default())
//!     .await?
//!     .with_hook(hook);
//! tokio::try_join!(tftp.run(), http.run())?;
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

pub mod http;
pub mod tftp;

/// The longest file name served, in bytes.
pub const MAX_PATH_LEN: usize = 1024;

/// Where the files served come from.
///
/// `get` is called from a blocking thread (tokio's `spawn_blocking`), so it may read
/// files synchronously.
pub trait FileSource: Send + Sync {
    /// The content of the file `name`, a relative path already accepted by
    /// [`check_path`]; `None` when there is no such file (or it must not be served).
    fn get(&self, name: &str) -> Option<Arc<[u8]>>;
}

impl<T: FileSource + ?Sized> FileSource for Arc<T> {
    fn get(&self, name: &str) -> Option<Arc<[u8]>> {
        (**self).get(name)
    }
}

/// Files in memory, by name; can be updated while served.
#[derive(Debug, Default)]
pub struct MemoryFiles {
    files: RwLock<HashMap<String, Arc<[u8]>>>,
}

impl MemoryFiles {
    /// A map of `files`.
    pub fn new<N: Into<String>, C: Into<Arc<[u8]>>>(
        files: impl IntoIterator<Item = (N, C)>,
    ) -> Self {
        Self {
            files: RwLock::new(
                files
                    .into_iter()
                    .map(|(n, c)| (n.into(), c.into()))
                    .collect(),
            ),
        }
    }

    /// Adds or replaces a file.
    pub fn insert(&self, name: impl Into<String>, content: impl Into<Arc<[u8]>>) {
        self.files
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.into(), content.into());
    }

    /// Removes a file.
    pub fn remove(&self, name: &str) {
        self.files
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name);
    }
}

impl FileSource for MemoryFiles {
    fn get(&self, name: &str) -> Option<Arc<[u8]>> {
        self.files
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }
}

/// Regular files under a directory (such as the one [`generate::write_files`]
/// writes to), at most `max_size` bytes each; a path that resolves outside the
/// directory (through a symbolic link) is not served.
///
/// [`generate::write_files`]: crate::generate::write_files
#[derive(Debug, Clone)]
pub struct DirFiles {
    root: PathBuf,
    max_size: u64,
}

impl DirFiles {
    /// Default largest file served: 16 MiB (firmware images are larger: raise it).
    pub const DEFAULT_MAX_SIZE: u64 = 16 << 20;

    /// The files under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            max_size: Self::DEFAULT_MAX_SIZE,
        }
    }

    /// Sets the largest file served.
    #[must_use]
    pub fn with_max_size(mut self, max_size: u64) -> Self {
        self.max_size = max_size;
        self
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl FileSource for DirFiles {
    fn get(&self, name: &str) -> Option<Arc<[u8]>> {
        check_path(name).ok()?;
        let root = self.root.canonicalize().ok()?;
        let path = root.join(name).canonicalize().ok()?;
        if !path.starts_with(&root) {
            return None;
        }
        let meta = std::fs::metadata(&path).ok()?;
        if !meta.is_file() || meta.len() > self.max_size {
            return None;
        }
        let content = std::fs::read(&path).ok()?;
        (u64::try_from(content.len()).ok()? <= self.max_size).then(|| content.into())
    }
}

/// Why a requested name is refused (TFTP error 2, HTTP 403).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathDenied {
    /// Empty, or longer than [`MAX_PATH_LEN`].
    #[error("empty or too long")]
    Length,
    /// Starts with `/` or `\`, or with a drive letter (`C:`).
    #[error("absolute path")]
    Absolute,
    /// Contains a `\`, a control character or a `:`.
    #[error("forbidden character")]
    Character,
    /// A component is empty (`a//b`), or starts with `.` (`..`, `.`, hidden and
    /// temporary files).
    #[error("forbidden path component")]
    Component,
}

/// Accepts `name` only if it is a relative path of plain components: no `..` or `.`,
/// no hidden file, no absolute path, no backslash, colon or control character.
pub fn check_path(name: &str) -> Result<(), PathDenied> {
    if name.is_empty() || name.len() > MAX_PATH_LEN {
        return Err(PathDenied::Length);
    }
    if name.starts_with(['/', '\\']) {
        return Err(PathDenied::Absolute);
    }
    let bytes = name.as_bytes();
    if bytes.get(1) == Some(&b':') {
        return Err(PathDenied::Absolute);
    }
    if name
        .chars()
        .any(|c| c == '\\' || c == ':' || c.is_control())
    {
        return Err(PathDenied::Character);
    }
    if name.split('/').any(|c| c.is_empty() || c.starts_with('.')) {
        return Err(PathDenied::Component);
    }
    Ok(())
}

/// A request a server received, for identification.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct RequestInfo<'a> {
    /// Who asked.
    pub peer: SocketAddr,
    /// The name requested (checked by [`check_path`]).
    pub path: &'a str,
    /// The HTTP `User-Agent`, if any (never for TFTP).
    pub user_agent: Option<&'a str>,
}

/// Called for each accepted request, before the file is looked up, on the task that
/// receives requests (so it should be quick): for example to
/// run [`identify::from_user_agent`](crate::identify::from_user_agent) and
/// [`identify::from_filename`](crate::identify::from_filename).
pub type RequestHook = Arc<dyn Fn(RequestInfo<'_>) + Send + Sync>;

/// Counts requests for missing files per client address and name, and logs (with
/// `tracing`, at `warn`) each request after the first, so that a phone looping on a
/// missing file, or a scanner, can be noticed and banned. Bounded: when
/// [`MissingLog::CAPACITY`] pairs are counted, the counts restart.
#[derive(Default)]
pub struct MissingLog {
    counts: Mutex<HashMap<(IpAddr, String), u32>>,
}

impl fmt::Debug for MissingLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MissingLog").finish_non_exhaustive()
    }
}

impl MissingLog {
    /// The most (address, name) pairs counted at once.
    pub const CAPACITY: usize = 4096;

    /// Records a request by `ip` for the missing `name`: the number of such requests.
    pub fn record(&self, ip: IpAddr, name: &str, protocol: &str) -> u32 {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if counts.len() >= Self::CAPACITY && !counts.contains_key(&(ip, name.to_owned())) {
            counts.clear();
        }
        let count = counts.entry((ip, name.to_owned())).or_insert(0);
        *count = count.saturating_add(1);
        let count = *count;
        if count > 1 {
            tracing::warn!(%ip, file = name, count, protocol, "repeated request for a missing file");
        }
        count
    }

    /// How many requests `ip` made for the missing `name` (since the last restart).
    pub fn count(&self, ip: IpAddr, name: &str) -> u32 {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(ip, name.to_owned()))
            .copied()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        for ok in ["a.cfg", "SEP001122334455.cnf.xml", "firmware/x.ld", "a..b"] {
            assert_eq!(check_path(ok), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("", PathDenied::Length),
            ("/etc/passwd", PathDenied::Absolute),
            ("\\x", PathDenied::Absolute),
            ("C:x", PathDenied::Absolute),
            ("a\\b", PathDenied::Character),
            ("a\nb", PathDenied::Character),
            ("../x", PathDenied::Component),
            ("a/../../x", PathDenied::Component),
            ("..", PathDenied::Component),
            ("./a", PathDenied::Component),
            ("a//b", PathDenied::Component),
            ("a/", PathDenied::Component),
            (".a.cfg.tmp", PathDenied::Component),
        ] {
            assert_eq!(check_path(bad), Err(why), "{bad:?}");
        }
        assert_eq!(
            check_path(&"a".repeat(MAX_PATH_LEN + 1)),
            Err(PathDenied::Length)
        );
    }

    #[test]
    fn memory_files() {
        let files = MemoryFiles::new([("a", b"1".to_vec())]);
        assert_eq!(files.get("a").as_deref(), Some(&b"1"[..]));
        files.insert("b", b"2".to_vec());
        files.remove("a");
        assert!(files.get("a").is_none());
        assert_eq!(files.get("b").as_deref(), Some(&b"2"[..]));
    }

    #[test]
    fn dir_files_stay_inside() {
        let base = std::env::temp_dir().join(format!("pbxkit-dirfiles-{}", std::process::id()));
        let root = base.join("root");
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(base.join("secret"), b"s").unwrap();
        std::fs::write(root.join("a.cfg"), b"a").unwrap();
        std::fs::write(root.join("sub/b.cfg"), b"b").unwrap();
        std::fs::write(root.join("big"), vec![0; 100]).unwrap();
        let files = DirFiles::new(&root).with_max_size(10);
        assert_eq!(files.get("a.cfg").as_deref(), Some(&b"a"[..]));
        assert_eq!(files.get("sub/b.cfg").as_deref(), Some(&b"b"[..]));
        assert!(files.get("../secret").is_none());
        assert!(files.get("sub").is_none());
        assert!(files.get("big").is_none());
        assert!(files.get("nope").is_none());
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(base.join("secret"), root.join("link")).unwrap();
            assert!(files.get("link").is_none());
        }
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn missing_log_counts() {
        let log = MissingLog::default();
        let ip = IpAddr::from([10, 0, 0, 1]);
        assert_eq!(log.record(ip, "x", "tftp"), 1);
        assert_eq!(log.record(ip, "x", "tftp"), 2);
        assert_eq!(log.count(ip, "x"), 2);
        assert_eq!(log.count(ip, "y"), 0);
    }
}
