//! Generation: a device's files from its config and plugin, written atomically into
//! the directory phones download from, only when their content changed.
//!
//! [`device_files`] renders; [`write_files`] writes; [`configure`] does both for one
//! device and [`configure_all`] for many, each device's failure reported apart so that
//! one broken config does not stop the others. Setting [`Device::configured`] from the
//! result is the caller's business (it owns the store).
//!
//! ```
//! use pbxkit_provisioning::generate;
//! use pbxkit_provisioning::model::{Config, Configs, Device};
//! use pbxkit_provisioning::plugins::Registry;
//! let plugins = Registry::builtin(|_| None);
//! let mut configs = Configs::new();
//! configs.insert("dev1".into(), Config::default());
//! let device = Device {
//!     mac: Some("00:15:65:aa:bb:cc".parse()?),
//!     plugin: Some("xivo-yealink".into()),
//!     config: Some("dev1".into()),
//!     ..Device::default()
//! };
//! let files = generate::device_files(&device, &configs, &plugins)?;
//! assert_eq!(files[0].name, "001565aabbcc.cfg");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::io;
use std::path::{Component, Path, PathBuf};

use crate::model::{ConfigError, ConfigId, Configs, Device};
use crate::plugins::{GeneratedFile, PluginError, Registry};
use crate::store::write_atomic;

/// Why a device's files cannot be generated or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GenerateError {
    /// The device names no plugin.
    #[error("device has no plugin")]
    NoPlugin,
    /// The device's plugin is not in the registry.
    #[error("plugin {0} is not installed")]
    UnknownPlugin(String),
    /// The device names no config.
    #[error("device has no config")]
    NoConfig,
    /// The device's effective config cannot be computed.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The plugin failed.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// A plugin produced a file name that is not a plain name in the directory.
    #[error("generated file name {0:?} is not a plain file name")]
    BadFileName(String),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

/// The files of `device`, rendered by its plugin (from `plugins`) from the effective
/// raw config of its config (in `configs`).
pub fn device_files(
    device: &Device,
    configs: &Configs,
    plugins: &Registry,
) -> Result<Vec<GeneratedFile>, GenerateError> {
    let name = device.plugin.as_deref().ok_or(GenerateError::NoPlugin)?;
    let plugin = plugins
        .get(name)
        .ok_or_else(|| GenerateError::UnknownPlugin(name.to_owned()))?;
    let config: &ConfigId = device.config.as_ref().ok_or(GenerateError::NoConfig)?;
    let raw = configs.effective(config)?;
    Ok(plugin.configure(device, &raw)?)
}

/// Whether `name` is one normal path component (no `/`, `..`, or root).
fn plain(name: &str) -> bool {
    let mut parts = Path::new(name).components();
    matches!(parts.next(), Some(Component::Normal(_))) && parts.next().is_none()
}

/// Writes each of `files` into `dir` whose content differs from the file there (or
/// that does not exist), atomically (`.<name>.tmp`, fsync, rename, fsync of `dir`),
/// and returns the names written, in order. Names are checked before anything is
/// written.
pub fn write_files(dir: &Path, files: &[GeneratedFile]) -> Result<Vec<String>, GenerateError> {
    if let Some(bad) = files.iter().find(|f| !plain(&f.name)) {
        return Err(GenerateError::BadFileName(bad.name.clone()));
    }
    let mut written = Vec::new();
    for file in files {
        let path = dir.join(&file.name);
        match std::fs::read(&path) {
            Ok(current) if current == file.content => continue,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(GenerateError::Io { path, source }),
        }
        // A hidden temporary name, so that a phone never downloads a half-written file.
        let temp = dir.join(format!(".{}.tmp", file.name));
        write_atomic(&path, &temp, &file.content)
            .map_err(|(path, source)| GenerateError::Io { path, source })?;
        written.push(file.name.clone());
    }
    Ok(written)
}

/// Generates the files of `device` and writes those that changed into `dir`: the
/// names written.
pub fn configure(
    device: &Device,
    configs: &Configs,
    plugins: &Registry,
    dir: &Path,
) -> Result<Vec<String>, GenerateError> {
    write_files(dir, &device_files(device, configs, plugins)?)
}

/// [`configure`] for each of `devices`: each device with its own result.
pub fn configure_all<'d>(
    devices: impl IntoIterator<Item = &'d Device>,
    configs: &Configs,
    plugins: &Registry,
    dir: &Path,
) -> Vec<(&'d Device, Result<Vec<String>, GenerateError>)> {
    devices
        .into_iter()
        .map(|d| (d, configure(d, configs, plugins, dir)))
        .collect()
}
