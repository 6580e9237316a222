//! Registrations on disk, so that phones stay reachable across a restart (even after
//! `kill -9`): the whole table is written to `registrations.json` on every change,
//! atomically (write a temporary file, fsync it, rename it over the old one, fsync the
//! directory). A crash leaves either the old or the new table, never half of one.

use pbxkit_sip::registrar::{Binding, BindingStore, MemoryStore};
use pbxkit_sip::{ByteStr, Transport, Uri};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

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

/// A binding store kept in memory and mirrored to a file.
#[derive(Debug)]
pub(crate) struct FileStore {
    memory: MemoryStore,
    aors: BTreeMap<String, Vec<Saved>>,
    file: PathBuf,
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
            kept.insert(aor, bindings.iter().map(Saved::from_binding).collect());
        }
        Ok(FileStore {
            memory,
            aors: kept,
            file,
        })
    }

    fn write(&self) -> io::Result<()> {
        let tmp = self.file.with_extension("json.tmp");
        let mut f = File::create(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(&self.aors).map_err(io::Error::other)?)?;
        f.sync_all()?;
        fs::rename(&tmp, &self.file)?;
        if let Some(dir) = self.file.parent() {
            // Make the rename itself durable.
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    }

    /// Number of bindings (registered contacts) kept.
    pub(crate) fn bindings(&self) -> usize {
        self.aors.values().map(Vec::len).sum()
    }

    fn persist(&self) {
        if let Err(e) = self.write() {
            tracing::error!(error = %e, file = %self.file.display(), "cannot save registrations");
        }
    }
}

impl BindingStore for FileStore {
    fn load(&self, aor: &str) -> Vec<Binding> {
        self.memory.load(aor)
    }

    fn save(&mut self, aor: &str, bindings: &[Binding]) {
        self.memory.save(aor, bindings);
        if bindings.is_empty() {
            self.aors.remove(aor);
        } else {
            self.aors.insert(
                aor.to_owned(),
                bindings.iter().map(Saved::from_binding).collect(),
            );
        }
        self.persist();
    }

    fn expire(&mut self, now: u64) -> usize {
        let removed = self.memory.expire(now);
        if removed > 0 {
            self.aors.retain(|_, v| {
                v.retain(|b| b.expires_at > now);
                !v.is_empty()
            });
            self.persist();
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
        assert!(FileStore::open(&dir).unwrap().load("1000").is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }
}
