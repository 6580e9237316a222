//! Built-in plugins: the code and templates that turn a device's effective raw config
//! into the files its firmware reads.
//!
//! Every plugin implements [`Plugin`]: a name, a [`Support`] score for an identified
//! device, and [`Plugin::configure`], which renders the device's files. A [`Registry`]
//! holds the plugins and picks the best one for a device (ties going to the highest
//! name, as provd does).
//!
//! | plugin | phones | file |
//! |---|---|---|
//! | `xivo-yealink` | Yealink T4x/T5x | `<mac>.cfg` |
//! | `xivo-snom` | Snom D7xx | `<MAC>.xml` |
//! | `xivo-polycom` | Polycom VVX | `<mac>-user.cfg`, `<mac>.cfg` (master) |
//! | `xivo-cisco-spa` | Cisco SPA5xx | `<mac>.xml` |
//! | `xivo-aastra` | Aastra/Mitel 6xxxi | `<MAC>.cfg` |
//! | `xivo-grandstream` | Grandstream GXP | `cfg<mac>.xml` |
//! | `null` | any (chosen by hand) | none |
//!
//! The vendor plugins share the resolution of lines, NTP, VLAN, syslog, credentials
//! and phonebook URL (module `common`), and each formats function keys, time zone and
//! language in its vendor's notation.

use std::fmt;

use crate::identify::{DeviceInfo, Support};
use crate::mac::Mac;
use crate::model::{Device, RawConfig, RawConfigError};
use crate::template::{TemplateDir, TemplateError};

pub mod aastra;
pub mod cisco;
mod common;
pub mod grandstream;
pub mod null;
pub mod polycom;
pub mod snom;
pub mod yealink;

/// A file generated for a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedFile {
    /// Its name, relative to the directory phones download from (`001565aabbcc.cfg`).
    pub name: String,
    /// Its content.
    pub content: Vec<u8>,
}

impl GeneratedFile {
    /// A file from its name and text.
    pub fn new(name: impl Into<String>, content: impl Into<Vec<u8>>) -> Self {
        Self {
            name: name.into(),
            content: content.into(),
        }
    }
}

/// Why a plugin cannot configure a device.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PluginError {
    /// The device has no MAC address, and the plugin names its files after it.
    #[error("plugin {plugin}: the device has no MAC address")]
    NoMac {
        /// The plugin.
        plugin: String,
    },
    /// A raw config key has the wrong shape.
    #[error(transparent)]
    RawConfig(#[from] RawConfigError),
    /// A template failed.
    #[error(transparent)]
    Template(#[from] TemplateError),
}

impl From<yealink::YealinkError> for PluginError {
    fn from(e: yealink::YealinkError) -> Self {
        match e {
            yealink::YealinkError::RawConfig(e) => Self::RawConfig(e),
            yealink::YealinkError::Template(e) => Self::Template(e),
        }
    }
}

/// A provisioning plugin.
pub trait Plugin: fmt::Debug + Send + Sync {
    /// Its name (`xivo-snom`), used by [`Device::plugin`].
    fn name(&self) -> &str;

    /// How well it supports `device`.
    fn support(&self, device: &DeviceInfo) -> Support;

    /// The files of `device` from its effective raw config `raw`.
    fn configure(
        &self,
        device: &Device,
        raw: &RawConfig,
    ) -> Result<Vec<GeneratedFile>, PluginError>;
}

/// The device's MAC, or the error a plugin returns without one.
pub(crate) fn require_mac(plugin: &str, device: &Device) -> Result<Mac, PluginError> {
    device.mac.ok_or_else(|| PluginError::NoMac {
        plugin: plugin.to_owned(),
    })
}

impl Plugin for yealink::Yealink {
    fn name(&self) -> &str {
        "xivo-yealink"
    }

    fn support(&self, device: &DeviceInfo) -> Support {
        crate::identify::support(&yealink::support_rules(), device)
    }

    fn configure(
        &self,
        device: &Device,
        raw: &RawConfig,
    ) -> Result<Vec<GeneratedFile>, PluginError> {
        let mac = require_mac(self.name(), device)?;
        let (name, text) = self.render(mac, device.model.as_deref(), raw)?;
        Ok(vec![GeneratedFile::new(name, text)])
    }
}

/// The plugins a server knows, by name.
#[derive(Debug, Default)]
pub struct Registry {
    plugins: Vec<Box<dyn Plugin>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every built-in plugin, each with `user` template overrides (provd's
    /// `var/templates` of that plugin) when given.
    ///
    /// ```
    /// use pbxkit_provisioning::identify::from_user_agent;
    /// use pbxkit_provisioning::plugins::Registry;
    /// let registry = Registry::builtin(|_| None);
    /// let info = from_user_agent("Mozilla/4.0 (compatible; snomD785-SIP 10.1.33.33)").unwrap_or_default();
    /// assert_eq!(registry.select(&info).map(|p| p.name()), Some("xivo-snom"));
    /// ```
    pub fn builtin(user: impl Fn(&str) -> Option<TemplateDir>) -> Self {
        let mut registry = Self::new();
        registry.add(Box::new(yealink::Yealink::with_user_templates(user(
            "xivo-yealink",
        ))));
        registry.add(Box::new(snom::Snom::with_user_templates(user("xivo-snom"))));
        registry.add(Box::new(polycom::Polycom::with_user_templates(user(
            "xivo-polycom",
        ))));
        registry.add(Box::new(cisco::CiscoSpa::with_user_templates(user(
            "xivo-cisco-spa",
        ))));
        registry.add(Box::new(aastra::Aastra::with_user_templates(user(
            "xivo-aastra",
        ))));
        registry.add(Box::new(grandstream::Grandstream::with_user_templates(
            user("xivo-grandstream"),
        )));
        registry.add(Box::new(null::Null));
        registry
    }

    /// Adds `plugin`, replacing one of the same name.
    pub fn add(&mut self, plugin: Box<dyn Plugin>) {
        self.plugins.retain(|p| p.name() != plugin.name());
        self.plugins.push(plugin);
    }

    /// The plugin named `name`.
    pub fn get(&self, name: &str) -> Option<&dyn Plugin> {
        self.plugins
            .iter()
            .find(|p| p.name() == name)
            .map(|p| p.as_ref())
    }

    /// The names of the plugins, in the order they were added.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.plugins.iter().map(|p| p.name())
    }

    /// The plugin that supports `device` best ([`crate::identify::select_plugin`]).
    pub fn select(&self, device: &DeviceInfo) -> Option<&dyn Plugin> {
        let name = crate::identify::select_plugin(
            self.plugins.iter().map(|p| (p.name(), p.support(device))),
        )?;
        self.get(name)
    }
}
