//! Registrations on disk, so that phones stay reachable across a restart (even after
//! `kill -9`): the table is written to `registrations.json` atomically (write a
//! temporary file, fsync it, rename it over the old one, fsync the directory), so a
//! crash leaves either the old or the new table, never half of one.
//!
//! Writing happens on a thread of its own, never on the PBX's event loop: each change
//! gets a generation number, the writer applies every change waiting, writes once
//! and publishes the last generation on disk (group commit). The PBX answers a
//! REGISTER when its generation is durable, so a 200 OK means the binding survives.

use pbxkit_sip::registrar::{Binding, BindingStore, MemoryStore};
use pbxkit_sip::{ByteStr, Transport, Uri};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use tokio::sync::watch;

#[derive(Debug, Serialize, Deserialize)]
struct Saved {
    uri: String,
    q: Option<u16>,
    call_id: String,
    cseq: u32,
    expires_at: u64,
    instance: Option<String>,
    path: Vec<String>,
    /// `udp:192.0.2.9:5060` style: where the REGISTER came from.
    #[serde(default)]
    source: Option<String>,
}

impl Saved {
    fn from_binding(b: &Binding) -> Saved {
        Saved {
            uri: b.uri.to_string(),
            q: b.q,
            call_id: b.call_id.to_string(),
            cseq: b.cseq,
            expires_at: b.expires_at,
            instance: b.instance.as_ref().map(ToString::to_string),
            path: b.path.iter().map(ToString::to_string).collect(),
            source: b
                .source
                .as_ref()
                .map(|(addr, t)| format!("{}:{addr}", t.as_str().to_ascii_lowercase())),
        }
    }

    fn into_binding(self) -> Option<Binding> {
        Some(Binding {
            uri: Uri::parse(&self.uri).ok()?,
            q: self.q,
            call_id: ByteStr::from(self.call_id),
            cseq: self.cseq,
            expires_at: self.expires_at,
            instance: self.instance.map(ByteStr::from),
            path: self.path.into_iter().map(ByteStr::from).collect(),
            source: self.source.and_then(|s| {
                let (transport, addr) = s.split_once(':')?;
                Some((addr.parse().ok()?, Transport::parse(transport)))
            }),
        })
    }
}

/// One change for the writer, with its generation.
enum Change {
    /// The bindings of an AOR (none: removed).
    Set(u64, String, Vec<Saved>),
    /// Bindings expired at this time are dropped.
    Expire(u64, u64),
}

/// A binding store kept in memory and mirrored to a file by a writer thread.
#[derive(Debug)]
pub(crate) struct FileStore {
    memory: MemoryStore,
    /// Bindings per AOR, as they stand in memory (the writer keeps its own copy).
    count: usize,
    generation: u64,
    changes: Option<mpsc::Sender<Change>>,
    durable: watch::Receiver<u64>,
    writer: Option<JoinHandle<()>>,
}

impl FileStore {
    /// Opens (or creates) the store in `dir`, loading what a previous run saved.
    pub(crate) fn open(dir: &Path) -> io::Result<FileStore> {
        fs::create_dir_all(dir)?;
        let file = dir.join("registrations.json");
        let aors: BTreeMap<String, Vec<Saved>> = match fs::read(&file) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {e}", file.display()),
                )
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e),
        };
        let mut memory = MemoryStore::new();
        let mut kept = BTreeMap::new();
        for (aor, saved) in aors {
            let bindings: Vec<Binding> =
                saved.into_iter().filter_map(Saved::into_binding).collect();
            memory.save(&aor, &bindings);
            kept.insert(
                aor,
                bindings.iter().map(Saved::from_binding).collect::<Vec<_>>(),
            );
        }
        let count = kept.values().map(Vec::len).sum();
        let (changes, rx) = mpsc::channel();
        let (durable_tx, durable) = watch::channel(0);
        let writer = std::thread::Builder::new()
            .name("registrations".into())
            .spawn(move || write_loop(file, kept, rx, durable_tx))?;
        Ok(FileStore {
            memory,
            count,
            generation: 0,
            changes: Some(changes),
            durable,
            writer: Some(writer),
        })
    }

    /// Number of bindings (registered contacts) kept.
    pub(crate) fn bindings(&self) -> usize {
        self.count
    }

    /// The generation of the last change: durable once [`FileStore::durable`] has
    /// reached it.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// The last generation written to disk.
    pub(crate) fn durable(&self) -> watch::Receiver<u64> {
        self.durable.clone()
    }

    fn change(&mut self, change: impl FnOnce(u64) -> Change) {
        self.generation += 1;
        let change = change(self.generation);
        let sent = self
            .changes
            .as_ref()
            .is_some_and(|tx| tx.send(change).is_ok());
        if !sent {
            tracing::error!("the registrations writer has stopped: change not saved");
        }
    }
}

impl Drop for FileStore {
    /// Lets the writer finish what is queued.
    fn drop(&mut self) {
        drop(self.changes.take());
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// The writer thread: applies every change waiting, writes the table once, then
/// publishes the last generation it holds.
fn write_loop(
    file: PathBuf,
    mut aors: BTreeMap<String, Vec<Saved>>,
    changes: mpsc::Receiver<Change>,
    durable: watch::Sender<u64>,
) {
    let mut failed_once = false;
    while let Ok(first) = changes.recv() {
        let mut last = 0;
        for change in std::iter::once(first).chain(changes.try_iter()) {
            match change {
                Change::Set(generation, aor, saved) => {
                    last = generation;
                    if saved.is_empty() {
                        aors.remove(&aor);
                    } else {
                        aors.insert(aor, saved);
                    }
                }
                Change::Expire(generation, now) => {
                    last = generation;
                    aors.retain(|_, v| {
                        v.retain(|b| b.expires_at > now);
                        !v.is_empty()
                    });
                }
            }
        }
        match write(&file, &aors) {
            Ok(()) => {
                failed_once = false;
                durable.send_replace(last);
            }
            Err(e) => {
                if !failed_once {
                    tracing::error!(error = %e, file = %file.display(), "cannot save registrations");
                    failed_once = true;
                }
                // Not durable, but answering is better than holding phones forever.
                durable.send_replace(last);
            }
        }
    }
}

fn write(file: &Path, aors: &BTreeMap<String, Vec<Saved>>) -> io::Result<()> {
    write_atomic(
        file,
        &serde_json::to_vec_pretty(aors).map_err(io::Error::other)?,
    )
}

/// Replaces `file` with `bytes` so that a crash leaves the old or the new content,
/// never part of one: a temporary file written and fsynced, renamed over `file`,
/// then the directory fsynced. Blocking: call it off the runtime's threads.
pub(crate) fn write_atomic(file: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with(file, bytes, &mut fs::OpenOptions::new())
}

/// [`write_atomic`] for a secret: the file (and its temporary) is readable and
/// writable by the owner only, from its creation on.
pub(crate) fn write_atomic_private(file: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    // A temporary left by a crash may have other permissions: start afresh.
    let _ = fs::remove_file(file.with_extension("tmp"));
    write_atomic_with(file, bytes, &mut options)
}

fn write_atomic_with(file: &Path, bytes: &[u8], options: &mut fs::OpenOptions) -> io::Result<()> {
    let tmp = file.with_extension("tmp");
    let mut f = options.write(true).create(true).truncate(true).open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, file)?;
    if let Some(dir) = file.parent() {
        // Make the rename itself durable.
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

impl BindingStore for FileStore {
    fn load(&self, aor: &str) -> Vec<Binding> {
        self.memory.load(aor)
    }

    fn save(&mut self, aor: &str, bindings: &[Binding]) {
        let before = self.memory.load(aor).len();
        self.memory.save(aor, bindings);
        self.count = self.count - before.min(self.count) + bindings.len();
        let saved = bindings.iter().map(Saved::from_binding).collect();
        self.change(|generation| Change::Set(generation, aor.to_owned(), saved));
    }

    fn expire(&mut self, now: u64) -> usize {
        let removed = self.memory.expire(now);
        if removed > 0 {
            self.count = self.count.saturating_sub(removed);
            self.change(|generation| Change::Expire(generation, now));
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bindings_survive_reopening() {
        let dir = std::env::temp_dir().join(format!("pbxkit-store-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let binding = Binding {
            uri: Uri::parse("sip:1000@192.0.2.9:5062;transport=tcp").unwrap(),
            q: Some(500),
            call_id: "c1".into(),
            cseq: 7,
            expires_at: 2_000,
            instance: Some("\"<urn:uuid:1>\"".into()),
            path: vec!["<sip:edge;lr>".into()],
            source: Some(("192.0.2.9:40000".parse().unwrap(), Transport::Tcp)),
        };
        {
            let mut store = FileStore::open(&dir).unwrap();
            store.save("1000", std::slice::from_ref(&binding));
            store.save("1001", std::slice::from_ref(&binding));
            store.save("1001", &[]);
        }
        let mut store = FileStore::open(&dir).unwrap();
        assert_eq!(store.load("1000"), vec![binding]);
        assert!(store.load("1001").is_empty());
        assert_eq!(store.expire(2_000), 1);
        assert_eq!(store.bindings(), 0);
        // Durable once the writer has published the change's generation.
        let (mut durable, generation) = (store.durable(), store.generation());
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(durable.wait_for(|d| *d >= generation))
            .unwrap();
        assert!(FileStore::open(&dir).unwrap().load("1000").is_empty());
        drop(store);
        fs::remove_dir_all(&dir).unwrap();
    }
}
