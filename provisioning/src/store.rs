//! Where devices and configs are kept: the [`Store`] trait, [`MemoryStore`] for tests
//! and embedding, and [`JsonFileStore`], a durable store in one JSON file.
//!
//! # Durability of [`JsonFileStore`]
//!
//! Every change rewrites the whole file: the new content goes to `<file>.tmp`, which
//! is flushed to disk (`fsync`), renamed over `<file>`, then the directory is flushed
//! so that the rename itself survives a crash. A change has reached the disk when its
//! method returns `Ok`. A crash at any point leaves either the old or the new file,
//! never a mix; a torn `<file>.tmp` left by a crash is ignored when loading, and
//! replaced by the next write. A failed write leaves the store's contents as they were.
//!
//! The file is small (hundreds of devices), so rewriting it on each change costs less
//! than the bookkeeping of a log would.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::{Config, ConfigId, Configs, Device, DeviceId};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A device without `id` cannot be stored.
    #[error("device has no id")]
    DeviceWithoutId,
    /// A config without `id` cannot be stored.
    #[error("config has no id")]
    ConfigWithoutId,
    /// Reading or writing the file failed.
    #[error("store {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The file is not a store this version wrote.
    #[error("store {path}, line {line}, column {column}: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// 1-based line of the fault.
        line: usize,
        /// 1-based column of the fault.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// The file was written by a newer version of the format.
    #[error("store {path}: format version {version} is not supported (at most {max})", max = Snapshot::VERSION)]
    Version {
        /// The file.
        path: PathBuf,
        /// The version it declares.
        version: u32,
    },
}

/// Devices and configs, by id.
pub trait Store {
    /// The device `id`.
    fn device(&self, id: &DeviceId) -> Option<&Device>;

    /// Every device, by id.
    fn devices(&self) -> Box<dyn Iterator<Item = &Device> + '_>;

    /// Adds or replaces `device` under its id.
    fn put_device(&mut self, device: Device) -> Result<(), StoreError>;

    /// Removes the device `id`, returning it.
    fn remove_device(&mut self, id: &DeviceId) -> Result<Option<Device>, StoreError>;

    /// The config `id`.
    fn config(&self, id: &ConfigId) -> Option<&Config>;

    /// Every config, as a [`Configs`] that computes effective raw configs.
    fn configs(&self) -> Configs;

    /// Adds or replaces `config` under its id.
    fn put_config(&mut self, config: Config) -> Result<(), StoreError>;

    /// Removes the config `id`, returning it.
    fn remove_config(&mut self, id: &ConfigId) -> Result<Option<Config>, StoreError>;
}

/// Everything a store holds, as it is written to a file.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Snapshot {
    /// The format version.
    pub version: u32,
    /// Devices, by id.
    pub devices: BTreeMap<DeviceId, Device>,
    /// Configs, by id.
    pub configs: BTreeMap<ConfigId, Config>,
}

impl Snapshot {
    /// The format version this crate writes.
    pub const VERSION: u32 = 1;

    fn new() -> Self {
        Self {
            version: Self::VERSION,
            ..Self::default()
        }
    }

    fn put_device(&mut self, device: Device) -> Result<(), StoreError> {
        let id = device.id.clone().ok_or(StoreError::DeviceWithoutId)?;
        self.devices.insert(id, device);
        Ok(())
    }

    fn put_config(&mut self, config: Config) -> Result<(), StoreError> {
        let id = config.id.clone().ok_or(StoreError::ConfigWithoutId)?;
        self.configs.insert(id, config);
        Ok(())
    }

    fn configs(&self) -> Configs {
        let mut configs = Configs::new();
        for (id, config) in &self.configs {
            configs.insert(id.clone(), config.clone());
        }
        configs
    }
}

/// A store in memory, lost with the process.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    data: Snapshot,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self {
            data: Snapshot::new(),
        }
    }
}

impl Store for MemoryStore {
    fn device(&self, id: &DeviceId) -> Option<&Device> {
        self.data.devices.get(id)
    }

    fn devices(&self) -> Box<dyn Iterator<Item = &Device> + '_> {
        Box::new(self.data.devices.values())
    }

    fn put_device(&mut self, device: Device) -> Result<(), StoreError> {
        self.data.put_device(device)
    }

    fn remove_device(&mut self, id: &DeviceId) -> Result<Option<Device>, StoreError> {
        Ok(self.data.devices.remove(id))
    }

    fn config(&self, id: &ConfigId) -> Option<&Config> {
        self.data.configs.get(id)
    }

    fn configs(&self) -> Configs {
        self.data.configs()
    }

    fn put_config(&mut self, config: Config) -> Result<(), StoreError> {
        self.data.put_config(config)
    }

    fn remove_config(&mut self, id: &ConfigId) -> Result<Option<Config>, StoreError> {
        Ok(self.data.configs.remove(id))
    }
}

/// A durable store in one JSON file (see the module documentation).
#[derive(Debug)]
pub struct JsonFileStore {
    path: PathBuf,
    data: Snapshot,
}

impl JsonFileStore {
    /// Opens the store in `path`, empty if the file does not exist yet (it is created
    /// by the first change).
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let path = path.into();
        let data = match fs::read(&path) {
            Ok(bytes) => parse(&path, &bytes)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Snapshot::new(),
            Err(source) => return Err(StoreError::Io { path, source }),
        };
        Ok(Self { path, data })
    }

    /// The file of the store.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of the temporary file a write goes through.
    pub fn temp_path(&self) -> PathBuf {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(".tmp");
        self.path.with_file_name(name)
    }

    /// Applies `change` to a copy of the data, writes the copy, then keeps it: a failed
    /// change or write leaves the store as it was.
    fn update<T>(
        &mut self,
        change: impl FnOnce(&mut Snapshot) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut next = self.data.clone();
        let out = change(&mut next)?;
        self.write(&next)?;
        self.data = next;
        Ok(out)
    }

    fn write(&self, data: &Snapshot) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec_pretty(data).map_err(|e| StoreError::Io {
            path: self.path.clone(),
            source: io::Error::other(e),
        })?;
        write_atomic(&self.path, &self.temp_path(), &bytes)
            .map_err(|(path, source)| StoreError::Io { path, source })
    }
}

fn parse(path: &Path, bytes: &[u8]) -> Result<Snapshot, StoreError> {
    let data: Snapshot = serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        path: path.to_owned(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    if data.version > Snapshot::VERSION || data.version == 0 {
        return Err(StoreError::Version {
            path: path.to_owned(),
            version: data.version,
        });
    }
    Ok(data)
}

/// Writes `bytes` to `path` through `temp`: write, fsync, rename, fsync the directory.
/// On failure, the path the failing step worked on and its error.
pub(crate) fn write_atomic(
    path: &Path,
    temp: &Path,
    bytes: &[u8],
) -> Result<(), (PathBuf, io::Error)> {
    let at = |p: &Path| {
        let p = p.to_owned();
        move |e| (p, e)
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(temp)
        .map_err(at(temp))?;
    file.write_all(bytes).map_err(at(temp))?;
    file.sync_all().map_err(at(temp))?;
    drop(file);
    fs::rename(temp, path).map_err(at(path))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // The rename is only durable once the directory entry is.
    File::open(dir).and_then(|d| d.sync_all()).map_err(at(dir))
}

impl Store for JsonFileStore {
    fn device(&self, id: &DeviceId) -> Option<&Device> {
        self.data.devices.get(id)
    }

    fn devices(&self) -> Box<dyn Iterator<Item = &Device> + '_> {
        Box::new(self.data.devices.values())
    }

    fn put_device(&mut self, device: Device) -> Result<(), StoreError> {
        self.update(|d| d.put_device(device))
    }

    fn remove_device(&mut self, id: &DeviceId) -> Result<Option<Device>, StoreError> {
        if !self.data.devices.contains_key(id) {
            return Ok(None);
        }
        self.update(|d| Ok(d.devices.remove(id)))
    }

    fn config(&self, id: &ConfigId) -> Option<&Config> {
        self.data.configs.get(id)
    }

    fn configs(&self) -> Configs {
        self.data.configs()
    }

    fn put_config(&mut self, config: Config) -> Result<(), StoreError> {
        self.update(|d| d.put_config(config))
    }

    fn remove_config(&mut self, id: &ConfigId) -> Result<Option<Config>, StoreError> {
        if !self.data.configs.contains_key(id) {
            return Ok(None);
        }
        self.update(|d| Ok(d.configs.remove(id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("pbxkit-prov-store-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let _ = fs::create_dir_all(&dir);
        dir
    }

    fn device(id: &str) -> Device {
        Device {
            id: Some(id.into()),
            model: Some("T46S".into()),
            ..Device::default()
        }
    }

    fn exercise(store: &mut dyn Store) {
        assert!(matches!(
            store.put_device(Device::default()),
            Err(StoreError::DeviceWithoutId)
        ));
        assert!(matches!(
            store.put_config(Config::default()),
            Err(StoreError::ConfigWithoutId)
        ));
        store.put_device(device("a")).ok();
        store.put_device(device("b")).ok();
        store
            .put_config(Config {
                id: Some("base".into()),
                ..Config::default()
            })
            .ok();
        assert_eq!(store.devices().count(), 2);
        assert_eq!(store.device(&"a".into()), Some(&device("a")));
        assert!(store.config(&"base".into()).is_some());
        assert!(store.configs().get(&"base".into()).is_some());
        assert_eq!(
            store.remove_device(&"b".into()).ok().flatten(),
            Some(device("b"))
        );
        assert_eq!(store.remove_device(&"b".into()).ok().flatten(), None);
        assert!(store.remove_config(&"zz".into()).ok().flatten().is_none());
    }

    #[test]
    fn memory_store() {
        exercise(&mut MemoryStore::new());
    }

    #[test]
    fn file_store_loads_what_it_wrote_and_ignores_a_torn_temp_file() {
        let dir = temp_dir("reload");
        let path = dir.join("store.json");
        let mut store = JsonFileStore::open(&path).unwrap_or_else(|e| panic!("{e}"));
        exercise(&mut store);
        fs::write(store.temp_path(), b"{\"version\": 1, \"devi").ok();
        let again = JsonFileStore::open(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again.data, store.data);
        assert_eq!(again.devices().count(), 1);
        // The next write replaces the torn file.
        let mut again = again;
        again.put_device(device("c")).ok();
        assert!(!again.temp_path().exists());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn corrupt_and_future_files_are_typed_errors() {
        let dir = temp_dir("corrupt");
        let path = dir.join("store.json");
        fs::write(&path, b"{\n  \"version\": 1,\n  \"devices\": [").ok();
        assert!(matches!(
            JsonFileStore::open(&path),
            Err(StoreError::Corrupt { line: 3, .. })
        ));
        fs::write(&path, b"{\"version\": 9, \"devices\": {}, \"configs\": {}}").ok();
        assert!(matches!(
            JsonFileStore::open(&path),
            Err(StoreError::Version { version: 9, .. })
        ));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_failed_write_changes_nothing() {
        let dir = temp_dir("fail");
        let path = dir.join("missing-dir").join("store.json");
        let mut store = JsonFileStore::open(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            store.put_device(device("a")),
            Err(StoreError::Io { .. })
        ));
        assert_eq!(store.devices().count(), 0);
        let _ = fs::remove_dir_all(&dir);
    }
}
