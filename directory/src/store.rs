//! Durable JSON files for the stores the directory owns (personal contacts, phonebooks,
//! favorites): [`StoreError`], and a directory of JSON documents, one per key.
//!
//! A write replaces a document atomically: the new content goes to `<file>.tmp`, which
//! is flushed to disk (`fsync`), renamed over `<file>`, and the directory is flushed so
//! that the rename itself survives a crash. A reader therefore sees the old document or
//! the new one, never a mix; a temporary file left by a crash is ignored when loading
//! and overwritten by the next write. A document that does not parse is an error naming
//! the file, line and column: data is never dropped silently.
//!
//! One process owns a store directory: two processes writing the same document would
//! share its temporary file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why a store could not read or write its files.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A file operation failed.
    #[error("{}: {operation}: {message}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done (`"read"`, `"write"`, `"rename"`…).
        operation: &'static str,
        /// The kind of the I/O error.
        kind: io::ErrorKind,
        /// The I/O error's message.
        message: String,
    },
    /// A file does not hold a valid document.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// 1-based line of the fault (0 when unknown).
        line: usize,
        /// 1-based column of the fault (0 when unknown).
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// A document could not be encoded (a bug rather than bad input).
    #[error("{}: cannot encode: {message}", path.display())]
    Encode {
        /// The file.
        path: PathBuf,
        /// The encoder's message.
        message: String,
    },
}

impl StoreError {
    fn io(path: &Path, operation: &'static str, error: &io::Error) -> Self {
        Self::Io {
            path: path.to_owned(),
            operation,
            kind: error.kind(),
            message: error.to_string(),
        }
    }

    /// The file or directory at fault.
    pub fn path(&self) -> &Path {
        match self {
            Self::Io { path, .. } | Self::Corrupt { path, .. } | Self::Encode { path, .. } => path,
        }
    }
}

/// The extension of documents; anything else in the directory (temporary files) is
/// ignored by [`JsonDir::load_all`].
const EXTENSION: &str = "json";

/// A directory of JSON documents, one file per key.
#[derive(Debug, Clone)]
pub(crate) struct JsonDir {
    dir: PathBuf,
}

impl JsonDir {
    /// Opens (creating it if needed) the directory.
    pub(crate) fn open(dir: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let dir = dir.into();
        if !dir.is_dir() {
            fs::create_dir_all(&dir).map_err(|e| StoreError::io(&dir, "create directory", &e))?;
            // A new directory is an entry of its parent: flush it too, or the first
            // documents could vanish with it after a crash.
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
        }
        Ok(Self { dir })
    }

    /// The file of `key`. Keys are arbitrary strings (user ids, phonebook names), so
    /// every byte outside `[A-Za-z0-9_-]` is written `%XX`: no key can name another
    /// directory, a hidden file or a temporary file. The document itself records its key,
    /// so the name never needs decoding.
    pub(crate) fn path(&self, key: &str) -> PathBuf {
        let mut name = String::with_capacity(key.len() + 6);
        name.push('k');
        for byte in key.bytes() {
            if byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-' {
                name.push(char::from(byte));
            } else {
                name.push_str(&format!("%{byte:02X}"));
            }
        }
        name.push('.');
        name.push_str(EXTENSION);
        self.dir.join(name)
    }

    /// Every document of the directory, in file-name order.
    pub(crate) fn load_all<T: DeserializeOwned>(&self) -> Result<Vec<T>, StoreError> {
        let entries = fs::read_dir(&self.dir).map_err(|e| StoreError::io(&self.dir, "list", &e))?;
        let mut paths = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| StoreError::io(&self.dir, "list", &e))?;
            let path = entry.path();
            if path.extension().is_some_and(|ext| ext == EXTENSION) && path.is_file() {
                paths.push(path);
            }
        }
        paths.sort();
        paths.iter().map(|path| read_json(path)).collect()
    }

    /// Replaces (or creates) the document of `key`, atomically and durably.
    pub(crate) fn save<T: Serialize>(&self, key: &str, document: &T) -> Result<(), StoreError> {
        let path = self.path(key);
        let data = serde_json::to_vec_pretty(document).map_err(|e| StoreError::Encode {
            path: path.clone(),
            message: e.to_string(),
        })?;
        write_atomic(&path, &data)
    }

    /// Removes the document of `key`, durably; a missing document is not an error.
    pub(crate) fn remove(&self, key: &str) -> Result<(), StoreError> {
        let path = self.path(key);
        match fs::remove_file(&path) {
            Ok(()) => sync_dir(&self.dir),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io(&path, "remove", &e)),
        }
    }
}

/// Reads and parses one document.
fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, StoreError> {
    let data = fs::read(path).map_err(|e| StoreError::io(path, "read", &e))?;
    serde_json::from_slice(&data).map_err(|e| StoreError::Corrupt {
        path: path.to_owned(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })
}

/// Writes `data` to `path` through `<path>.tmp`: write, fsync, rename, fsync directory.
fn write_atomic(path: &Path, data: &[u8]) -> Result<(), StoreError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|e| StoreError::io(&tmp, "create", &e))?;
    file.write_all(data)
        .and_then(|()| file.sync_all())
        .map_err(|e| StoreError::io(&tmp, "write", &e))?;
    drop(file);
    fs::rename(&tmp, path).map_err(|e| StoreError::io(path, "rename", &e))?;
    match path.parent() {
        Some(dir) => sync_dir(dir),
        None => Ok(()),
    }
}

/// Flushes a directory's entries (a rename or removal in it) to disk.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io(dir, "sync directory", &e))
}

/// Directories cannot be opened as files on this platform; its rename is durable once
/// the file system commits it.
#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> Result<(), StoreError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_safe_distinct_file_names() {
        let dir = JsonDir {
            dir: PathBuf::from("/x"),
        };
        let name = |key: &str| {
            dir.path(key)
                .file_name()
                .and_then(|n| n.to_str())
                .map(str::to_owned)
        };
        assert_eq!(name("alice-1_B").as_deref(), Some("kalice-1_B.json"));
        assert_eq!(name("../etc").as_deref(), Some("k%2E%2E%2Fetc.json"));
        assert_eq!(name("").as_deref(), Some("k.json"));
        assert_eq!(name("é").as_deref(), Some("k%C3%A9.json"));
        assert_ne!(name("a b"), name("a%20b"));
        assert_eq!(dir.path("../etc").parent(), Some(Path::new("/x")));
    }
}
