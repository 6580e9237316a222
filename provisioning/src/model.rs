//! Devices and configs as provd stores them, and the effective raw config of a config
//! tree.
//!
//! A [`Config`] names its parents in `parent_ids`; its effective raw config is the
//! depth-first merge of its parents' effective raw configs, in order, then its own
//! `raw_config` (later parents win over earlier ones, children over parents, nested maps
//! merged key by key). [`Configs::effective`] computes it and rejects cycles and unknown
//! parents with a [`ConfigError`].

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::mac::Mac;

/// The id of a [`Device`] (provd uses random hex strings).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeviceId(pub String);

/// The id of a [`Config`] (`base`, `defaultconfigdevice`, a line's id...).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConfigId(pub String);

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for ConfigId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for ConfigId {
    fn from(id: &str) -> Self {
        Self(id.to_owned())
    }
}

impl From<&str> for DeviceId {
    fn from(id: &str) -> Self {
        Self(id.to_owned())
    }
}

/// How a device entered the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Added {
    /// Created when an unknown phone made a request.
    Auto,
    /// Created through the API.
    Manual,
}

/// A phone known to the provisioning server.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Device {
    /// Its id.
    pub id: Option<DeviceId>,
    /// Its MAC address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<Mac>,
    /// Its last known IP address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    /// Vendor, as identification names it (`Yealink`, `Snom`...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    /// Model (`T46S`, `D785`...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Firmware version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The plugin that configures it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
    /// Its config.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<ConfigId>,
    /// Whether its plugin generated its files from its config.
    pub configured: bool,
    /// How it was created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub added: Option<Added>,
}

/// The special role of a config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Role {
    /// The config given to new devices.
    Default,
    /// The template from which a config is created for each new device.
    Autocreate,
}

/// A node of the config tree.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Its id.
    pub id: Option<ConfigId>,
    /// Its parents, the base first (later ones win).
    pub parent_ids: Vec<ConfigId>,
    /// Its own values; the effective values come from [`Configs::effective`].
    pub raw_config: RawConfig,
    /// Its special role, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// Whether it is deleted with the last device that uses it.
    pub transient: bool,
}

/// The values of a config: an open JSON map (plugins read their own `XX_*` keys), with
/// typed accessors for the keys this crate relies on.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RawConfig(pub Map<String, Value>);

/// One SIP line of `raw_config.sip_lines` (keys `"1"`, `"2"`...).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct SipLine {
    /// SIP user name.
    pub username: Option<String>,
    /// Authentication user name.
    pub auth_username: Option<String>,
    /// Authentication password.
    pub password: Option<String>,
    /// Caller name shown on the phone.
    pub display_name: Option<String>,
    /// Extension number.
    pub number: Option<String>,
    /// Proxy of this line (else `sip_proxy_ip`).
    pub proxy_ip: Option<String>,
    /// Registrar of this line (else `sip_registrar_ip`).
    pub registrar_ip: Option<String>,
    /// Voicemail number.
    pub voicemail: Option<String>,
}

/// A [`SipLine`] that borrows its strings from the raw config.
///
/// Plugins read the lines of every device they configure, and copying each string to
/// drop it once the file is rendered was a good part of the cost of a file. Same keys
/// and rules as [`SipLine`]; errors are [`RawConfig::sip_lines`]' own.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(default)]
pub(crate) struct SipLineRef<'a> {
    pub(crate) username: Option<&'a str>,
    pub(crate) auth_username: Option<&'a str>,
    pub(crate) password: Option<&'a str>,
    pub(crate) display_name: Option<&'a str>,
    pub(crate) number: Option<&'a str>,
    pub(crate) proxy_ip: Option<&'a str>,
    pub(crate) registrar_ip: Option<&'a str>,
    pub(crate) voicemail: Option<&'a str>,
}

/// What a function key does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum FuncKeyType {
    /// Dials `value`.
    Speeddial,
    /// Busy lamp field on `value`, with pickup.
    Blf,
    /// A parking slot.
    Park,
}

/// One function key of `raw_config.funckeys` (keys are positions `"1"`, `"2"`...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FuncKey {
    /// What the key does.
    #[serde(rename = "type")]
    pub kind: FuncKeyType,
    /// Number or extension.
    #[serde(default)]
    pub value: Option<String>,
    /// Label shown next to the key.
    #[serde(default)]
    pub label: Option<String>,
    /// The SIP line (`"1"`...) the key uses.
    #[serde(default, deserialize_with = "de_opt_stringish")]
    pub line: Option<String>,
}

/// Accepts a string or a number (`"line": 1` and `"line": "1"` both occur).
fn de_opt_stringish<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(other) => {
            return Err(serde::de::Error::custom(format!(
                "expected a string or a number, found {other}"
            )));
        }
    })
}

/// A raw config value that does not have the shape its key requires.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("raw_config key {key}: {reason}")]
pub struct RawConfigError {
    /// The key, with the sub-key for maps (`sip_lines.2`, `funckeys.x`).
    pub key: String,
    /// What is wrong.
    pub reason: String,
}

/// NTP settings (`ntp_enabled`, `ntp_ip`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ntp {
    /// Whether the phone uses NTP.
    pub enabled: bool,
    /// The server.
    pub ip: Option<String>,
}

/// VLAN settings (`vlan_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Vlan {
    /// VLAN id of the phone's traffic, 1 to 4094.
    pub id: u16,
    /// 802.1p priority, 0 to 7.
    pub priority: Option<u8>,
    /// VLAN id of the PC port.
    pub pc_port_id: Option<u16>,
}

/// Remote syslog settings (`syslog_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Syslog {
    /// The server.
    pub ip: String,
    /// Its UDP port.
    pub port: u16,
    /// `critical`, `error`, `warning`, `info` or `debug`, as provd names them.
    pub level: Option<String>,
}

impl RawConfig {
    /// An empty raw config.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of `key`, if set and not `null`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    /// The string value of `key`, if it is a string.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    fn typed<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<T>, RawConfigError> {
        self.get(key)
            .map(|v| {
                T::deserialize(v).map_err(|e| RawConfigError {
                    key: key.to_owned(),
                    reason: e.to_string(),
                })
            })
            .transpose()
    }

    /// The provisioning server address phones use (`ip`).
    pub fn ip(&self) -> Option<&str> {
        self.str("ip")
    }

    /// `http_port`.
    pub fn http_port(&self) -> Result<Option<u16>, RawConfigError> {
        self.typed("http_port")
    }

    /// `tftp_port`.
    pub fn tftp_port(&self) -> Result<Option<u16>, RawConfigError> {
        self.typed("tftp_port")
    }

    /// `ntp_enabled` and `ntp_ip`; `None` when `ntp_enabled` is not set.
    pub fn ntp(&self) -> Result<Option<Ntp>, RawConfigError> {
        Ok(self.typed::<bool>("ntp_enabled")?.map(|enabled| Ntp {
            enabled,
            ip: self.str("ntp_ip").map(str::to_owned),
        }))
    }

    /// `timezone`, an IANA name (`Europe/Paris`).
    pub fn timezone(&self) -> Option<&str> {
        self.str("timezone")
    }

    /// `locale` (`fr_FR`).
    pub fn locale(&self) -> Option<&str> {
        self.str("locale")
    }

    /// `sip_proxy_ip`.
    pub fn sip_proxy_ip(&self) -> Option<&str> {
        self.str("sip_proxy_ip")
    }

    /// `sip_registrar_ip`.
    pub fn sip_registrar_ip(&self) -> Option<&str> {
        self.str("sip_registrar_ip")
    }

    /// `X_xivo_phonebook_ip`, the directory server for phone views.
    pub fn phonebook_ip(&self) -> Option<&str> {
        self.str("X_xivo_phonebook_ip")
    }

    /// `vlan_enabled`, `vlan_id`, `vlan_priority` and `vlan_pc_port_id`; `None` unless
    /// `vlan_enabled` is true.
    pub fn vlan(&self) -> Result<Option<Vlan>, RawConfigError> {
        if self.typed::<bool>("vlan_enabled")? != Some(true) {
            return Ok(None);
        }
        let id = self
            .typed::<u16>("vlan_id")?
            .ok_or_else(|| RawConfigError {
                key: "vlan_id".to_owned(),
                reason: "required when vlan_enabled is true".to_owned(),
            })?;
        if !(1..=4094).contains(&id) {
            return Err(RawConfigError {
                key: "vlan_id".to_owned(),
                reason: format!("{id} is not a VLAN id (1 to 4094)"),
            });
        }
        let priority = self.typed::<u8>("vlan_priority")?;
        if let Some(p) = priority.filter(|p| *p > 7) {
            return Err(RawConfigError {
                key: "vlan_priority".to_owned(),
                reason: format!("{p} is not a priority (0 to 7)"),
            });
        }
        Ok(Some(Vlan {
            id,
            priority,
            pc_port_id: self.typed("vlan_pc_port_id")?,
        }))
    }

    /// `syslog_enabled`, `syslog_ip`, `syslog_port` (default 514) and `syslog_level`;
    /// `None` unless `syslog_enabled` is true and `syslog_ip` set.
    pub fn syslog(&self) -> Result<Option<Syslog>, RawConfigError> {
        if self.typed::<bool>("syslog_enabled")? != Some(true) {
            return Ok(None);
        }
        let Some(ip) = self.str("syslog_ip") else {
            return Ok(None);
        };
        Ok(Some(Syslog {
            ip: ip.to_owned(),
            port: self.typed("syslog_port")?.unwrap_or(514),
            level: self.str("syslog_level").map(str::to_owned),
        }))
    }

    /// The phone directory URL for `vendor` (`snom`, `polycom`...):
    /// `{scheme}://{ip}:{port}/0.1/directories/lookup/{profile}/{vendor}` from
    /// `X_xivo_phonebook_ip`, `X_xivo_phonebook_scheme` (default `http`),
    /// `X_xivo_phonebook_port` (default 9498) and `X_xivo_phonebook_profile` (default
    /// `default`); `None` without `X_xivo_phonebook_ip`.
    pub fn phonebook_url(&self, vendor: &str) -> Result<Option<String>, RawConfigError> {
        let Some(ip) = self.phonebook_ip() else {
            return Ok(None);
        };
        let scheme = self.str("X_xivo_phonebook_scheme").unwrap_or("http");
        let port: u16 = self.typed("X_xivo_phonebook_port")?.unwrap_or(9498);
        let profile = self.str("X_xivo_phonebook_profile").unwrap_or("default");
        Ok(Some(format!(
            "{scheme}://{ip}:{port}/0.1/directories/lookup/{profile}/{vendor}"
        )))
    }

    /// `sip_lines`, by line number.
    pub fn sip_lines(&self) -> Result<BTreeMap<u32, SipLine>, RawConfigError> {
        self.numbered("sip_lines")
    }

    /// [`RawConfig::sip_lines`] borrowing the strings of the raw config.
    pub(crate) fn sip_line_refs(&self) -> Result<BTreeMap<u32, SipLineRef<'_>>, RawConfigError> {
        self.numbered("sip_lines").map_err(|borrowed| {
            // The error of the owned parse, whose words (`expected a string`) are those
            // users see from `sip_lines`; the two parses accept the same values.
            self.sip_lines().err().unwrap_or(borrowed)
        })
    }

    /// `funckeys`, by position.
    pub fn funckeys(&self) -> Result<BTreeMap<u32, FuncKey>, RawConfigError> {
        self.numbered("funckeys")
    }

    fn numbered<'a, T: Deserialize<'a>>(
        &'a self,
        key: &str,
    ) -> Result<BTreeMap<u32, T>, RawConfigError> {
        let Some(value) = self.get(key) else {
            return Ok(BTreeMap::new());
        };
        let map = value.as_object().ok_or_else(|| RawConfigError {
            key: key.to_owned(),
            reason: "expected a map".to_owned(),
        })?;
        map.iter()
            .map(|(k, v)| {
                let error = |reason: String| RawConfigError {
                    key: format!("{key}.{k}"),
                    reason,
                };
                let n = k
                    .parse::<u32>()
                    .map_err(|_| error("the key is not a number".to_owned()))?;
                let item = T::deserialize(v).map_err(|e| error(e.to_string()))?;
                Ok((n, item))
            })
            .collect()
    }

    /// Merges `other` into `self`: `other`'s values win, maps are merged key by key.
    pub fn merge(&mut self, other: &RawConfig) {
        merge_maps(&mut self.0, &other.0);
    }
}

fn merge_maps(base: &mut Map<String, Value>, over: &Map<String, Value>) {
    for (key, value) in over {
        match (base.get_mut(key), value) {
            (Some(Value::Object(b)), Value::Object(o)) => merge_maps(b, o),
            _ => {
                base.insert(key.clone(), value.clone());
            }
        }
    }
}

/// Why the effective raw config of a config cannot be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No config has this id.
    #[error("config {0}: no such config")]
    Unknown(ConfigId),
    /// A config names a parent that does not exist.
    #[error("config {config}: parent {parent} does not exist")]
    UnknownParent {
        /// The child.
        config: ConfigId,
        /// The missing parent.
        parent: ConfigId,
    },
    /// The parents of a config lead back to it.
    #[error("config cycle: {}", chain.iter().map(|c| c.0.as_str()).collect::<Vec<_>>().join(" -> "))]
    Cycle {
        /// The configs of the cycle, from the first repeated one back to itself.
        chain: Vec<ConfigId>,
    },
    /// The chain of parents is deeper than [`Configs::MAX_DEPTH`].
    #[error("config {0}: parents nested deeper than {max}", max = Configs::MAX_DEPTH)]
    TooDeep(ConfigId),
}

/// A set of configs by id, which computes effective raw configs.
#[derive(Debug, Clone, Default)]
pub struct Configs {
    configs: BTreeMap<ConfigId, Config>,
}

impl Configs {
    /// The deepest chain of parents accepted.
    pub const MAX_DEPTH: usize = 64;

    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces `config` under `id`.
    pub fn insert(&mut self, id: ConfigId, config: Config) {
        self.configs.insert(id, config);
    }

    /// The config `id`.
    pub fn get(&self, id: &ConfigId) -> Option<&Config> {
        self.configs.get(id)
    }

    /// Removes the config `id`.
    pub fn remove(&mut self, id: &ConfigId) -> Option<Config> {
        self.configs.remove(id)
    }

    /// The configs, by id.
    pub fn iter(&self) -> impl Iterator<Item = (&ConfigId, &Config)> {
        self.configs.iter()
    }

    /// The config with `role`, if any (the lowest id when several have it).
    pub fn with_role(&self, role: Role) -> Option<(&ConfigId, &Config)> {
        self.configs.iter().find(|(_, c)| c.role == Some(role))
    }

    /// The effective raw config of `id`: its parents' effective raw configs merged in
    /// order, then its own on top.
    ///
    /// ```
    /// use pbxkit_provisioning::model::{Config, ConfigId, Configs, RawConfig};
    /// let raw = |v: serde_json::Value| RawConfig(v.as_object().cloned().unwrap_or_default());
    /// let mut configs = Configs::new();
    /// configs.insert("base".into(), Config {
    ///     raw_config: raw(serde_json::json!({"ip": "10.0.0.1", "sip_lines": {"1": {"username": "a"}}})),
    ///     ..Config::default()
    /// });
    /// configs.insert("dev".into(), Config {
    ///     parent_ids: vec!["base".into()],
    ///     raw_config: raw(serde_json::json!({"sip_lines": {"1": {"password": "p"}}})),
    ///     ..Config::default()
    /// });
    /// let effective = configs.effective(&"dev".into())?;
    /// assert_eq!(effective.ip(), Some("10.0.0.1"));
    /// let line = &effective.sip_lines()?[&1];
    /// assert_eq!((line.username.as_deref(), line.password.as_deref()), (Some("a"), Some("p")));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn effective(&self, id: &ConfigId) -> Result<RawConfig, ConfigError> {
        if !self.configs.contains_key(id) {
            return Err(ConfigError::Unknown(id.clone()));
        }
        // Each config's effective values are computed once, so that a tree where
        // parents share ancestors (diamonds) stays linear in its size.
        let mut done = BTreeMap::new();
        let mut path = Vec::new();
        self.effective_of(id, &mut done, &mut path)
    }

    fn effective_of(
        &self,
        id: &ConfigId,
        done: &mut BTreeMap<ConfigId, RawConfig>,
        path: &mut Vec<ConfigId>,
    ) -> Result<RawConfig, ConfigError> {
        if let Some(start) = path.iter().position(|p| p == id) {
            let mut chain = path.get(start..).unwrap_or_default().to_vec();
            chain.push(id.clone());
            return Err(ConfigError::Cycle { chain });
        }
        if let Some(raw) = done.get(id) {
            return Ok(raw.clone());
        }
        if path.len() >= Self::MAX_DEPTH {
            return Err(ConfigError::TooDeep(
                path.first().cloned().unwrap_or_else(|| id.clone()),
            ));
        }
        let config = self.configs.get(id).ok_or_else(|| match path.last() {
            Some(child) => ConfigError::UnknownParent {
                config: child.clone(),
                parent: id.clone(),
            },
            None => ConfigError::Unknown(id.clone()),
        })?;
        path.push(id.clone());
        let mut out = RawConfig::new();
        for parent in &config.parent_ids {
            out.merge(&self.effective_of(parent, done, path)?);
        }
        path.pop();
        out.merge(&config.raw_config);
        done.insert(id.clone(), out.clone());
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn raw(v: Value) -> RawConfig {
        RawConfig(v.as_object().cloned().unwrap_or_default())
    }

    fn config(parents: &[&str], v: Value) -> Config {
        Config {
            parent_ids: parents.iter().map(|p| ConfigId::from(*p)).collect(),
            raw_config: raw(v),
            ..Config::default()
        }
    }

    /// The borrowed lines are the owned ones, and fail with the same error.
    #[test]
    fn borrowed_sip_lines_match_the_owned_ones() {
        let good = raw(json!({"sip_lines": {
            "2": {"username": "u2", "auth_username": "a2", "password": "p", "display_name": "D",
                  "number": "1002", "proxy_ip": "10.0.0.2", "registrar_ip": "10.0.0.3",
                  "voicemail": "*98", "unknown": 1},
            "1": {"username": null},
        }}));
        let owned = good.sip_lines().unwrap_or_default();
        let borrowed = good.sip_line_refs().unwrap_or_default();
        assert_eq!(owned.len(), 2);
        assert!(owned.keys().eq(borrowed.keys()));
        for (line, view) in owned.values().zip(borrowed.values()) {
            let fields = [
                (line.username.as_deref(), view.username),
                (line.auth_username.as_deref(), view.auth_username),
                (line.password.as_deref(), view.password),
                (line.display_name.as_deref(), view.display_name),
                (line.number.as_deref(), view.number),
                (line.proxy_ip.as_deref(), view.proxy_ip),
                (line.registrar_ip.as_deref(), view.registrar_ip),
                (line.voicemail.as_deref(), view.voicemail),
            ];
            assert!(fields.iter().all(|(a, b)| a == b), "{fields:?}");
        }
        for bad in [
            json!({"sip_lines": {"1": {"username": 5}}}),
            json!({"sip_lines": {"x": {}}}),
            json!({"sip_lines": [1]}),
            json!({"sip_lines": {"1": "u"}}),
        ] {
            let bad = raw(bad);
            let owned = bad.sip_lines().err();
            assert!(owned.is_some());
            assert_eq!(bad.sip_line_refs().err(), owned);
        }
    }

    #[test]
    fn children_and_later_parents_win() {
        let mut c = Configs::new();
        c.insert(
            "base".into(),
            config(&[], json!({"a": 1, "b": 1, "m": {"x": 1, "y": 1}})),
        );
        c.insert(
            "p2".into(),
            config(&["base"], json!({"b": 2, "c": 2, "m": {"y": 2}})),
        );
        c.insert("p3".into(), config(&[], json!({"c": 3, "m": {"z": 3}})));
        c.insert(
            "dev".into(),
            config(&["p2", "p3"], json!({"d": 4, "m": {"x": 4}})),
        );
        let e = c.effective(&"dev".into()).unwrap_or_default();
        assert_eq!(
            Value::Object(e.0),
            json!({"a": 1, "b": 2, "c": 3, "d": 4, "m": {"x": 4, "y": 2, "z": 3}})
        );
    }

    #[test]
    fn cycles_and_missing_parents() {
        let mut c = Configs::new();
        c.insert("a".into(), config(&["b"], json!({})));
        c.insert("b".into(), config(&["c"], json!({})));
        c.insert("c".into(), config(&["a"], json!({})));
        c.insert("d".into(), config(&["nope"], json!({})));
        let err = c.effective(&"a".into());
        assert_eq!(
            err,
            Err(ConfigError::Cycle {
                chain: vec!["a".into(), "b".into(), "c".into(), "a".into()]
            })
        );
        assert_eq!(
            err.map(|_| ()).unwrap_err().to_string(),
            "config cycle: a -> b -> c -> a"
        );
        assert_eq!(
            c.effective(&"d".into()),
            Err(ConfigError::UnknownParent {
                config: "d".into(),
                parent: "nope".into()
            })
        );
        assert_eq!(
            c.effective(&"zz".into()),
            Err(ConfigError::Unknown("zz".into()))
        );
    }

    #[test]
    fn diamond_is_not_a_cycle() {
        let mut c = Configs::new();
        c.insert("base".into(), config(&[], json!({"a": 1})));
        c.insert("l".into(), config(&["base"], json!({})));
        c.insert("r".into(), config(&["base"], json!({})));
        c.insert("d".into(), config(&["l", "r"], json!({})));
        assert!(c.effective(&"d".into()).is_ok());
    }

    #[test]
    fn shared_ancestors_are_merged_once() {
        // 40 levels of diamonds: 2^40 paths, which a naive walk would not finish.
        let mut c = Configs::new();
        for i in 0..40 {
            let (a, b) = (format!("a{}", i + 1), format!("b{}", i + 1));
            let parents = [a.as_str(), b.as_str()];
            c.insert(ConfigId(format!("a{i}")), config(&parents, json!({"i": i})));
            c.insert(ConfigId(format!("b{i}")), config(&parents, json!({})));
        }
        c.insert("a40".into(), config(&[], json!({"base": true})));
        c.insert("b40".into(), config(&[], json!({})));
        let e = c.effective(&"a0".into()).unwrap_or_default();
        assert_eq!(Value::Object(e.0), json!({"base": true, "i": 0}));
    }

    #[test]
    fn deep_chain_is_bounded() {
        let mut c = Configs::new();
        for i in 0..200 {
            let parent = format!("c{}", i + 1);
            c.insert(
                ConfigId(format!("c{i}")),
                config(&[parent.as_str()], json!({})),
            );
        }
        c.insert("c200".into(), config(&[], json!({})));
        assert_eq!(
            c.effective(&"c0".into()),
            Err(ConfigError::TooDeep("c0".into()))
        );
    }

    #[test]
    fn typed_accessors() {
        let r = raw(json!({
            "http_port": 8667, "ntp_enabled": true, "ntp_ip": "10.0.0.1",
            "timezone": "Europe/Paris", "locale": "fr_FR",
            "sip_lines": {"1": {"username": "u1", "number": "1001"}},
            "funckeys": {"2": {"type": "blf", "value": "1002", "label": "Bob", "line": 1}},
            "X_xivo_phonebook_ip": "10.0.0.2",
        }));
        assert_eq!(r.http_port(), Ok(Some(8667)));
        assert_eq!(r.tftp_port(), Ok(None));
        assert_eq!(
            r.ntp(),
            Ok(Some(Ntp {
                enabled: true,
                ip: Some("10.0.0.1".into())
            }))
        );
        assert_eq!(r.timezone(), Some("Europe/Paris"));
        assert_eq!(r.locale(), Some("fr_FR"));
        assert_eq!(r.phonebook_ip(), Some("10.0.0.2"));
        let lines = r.sip_lines().unwrap_or_default();
        assert_eq!(
            lines.get(&1).and_then(|l| l.number.as_deref()),
            Some("1001")
        );
        let keys = r.funckeys().unwrap_or_default();
        let key = keys.get(&2);
        assert_eq!(key.map(|k| k.kind), Some(FuncKeyType::Blf));
        assert_eq!(key.and_then(|k| k.line.as_deref()), Some("1"));

        let bad = raw(
            json!({"funckeys": {"1": {"type": "nope"}}, "http_port": "x", "sip_lines": {"a": {}}}),
        );
        assert_eq!(
            bad.funckeys().map_err(|e| e.key),
            Err("funckeys.1".to_owned())
        );
        assert_eq!(
            bad.http_port().map_err(|e| e.key),
            Err("http_port".to_owned())
        );
        assert_eq!(
            bad.sip_lines().map_err(|e| e.key),
            Err("sip_lines.a".to_owned())
        );
    }

    #[test]
    fn vlan_syslog_and_phonebook() {
        let r = raw(json!({
            "vlan_enabled": true, "vlan_id": 20, "vlan_priority": 5,
            "syslog_enabled": true, "syslog_ip": "10.0.0.9",
            "X_xivo_phonebook_ip": "10.0.0.2", "X_xivo_phonebook_port": 443,
            "X_xivo_phonebook_scheme": "https",
        }));
        assert_eq!(
            r.vlan(),
            Ok(Some(Vlan {
                id: 20,
                priority: Some(5),
                pc_port_id: None
            }))
        );
        assert_eq!(
            r.syslog(),
            Ok(Some(Syslog {
                ip: "10.0.0.9".into(),
                port: 514,
                level: None
            }))
        );
        assert_eq!(
            r.phonebook_url("snom"),
            Ok(Some(
                "https://10.0.0.2:443/0.1/directories/lookup/default/snom".into()
            ))
        );
        let off = raw(json!({"vlan_enabled": false, "vlan_id": 99999, "syslog_ip": "x"}));
        assert_eq!(
            (off.vlan(), off.syslog(), off.phonebook_url("x")),
            (Ok(None), Ok(None), Ok(None))
        );
        for bad in [
            json!({"vlan_id": 0}),
            json!({"vlan_id": 20, "vlan_priority": 8}),
            json!({}),
        ] {
            let mut v = bad.as_object().cloned().unwrap_or_default();
            v.insert("vlan_enabled".into(), json!(true));
            assert!(RawConfig(v).vlan().is_err(), "{bad}");
        }
    }

    #[test]
    fn device_serde() {
        let d: Device = serde_json::from_value(json!({
            "id": "abc", "mac": "00:11:22:AA:BB:CC", "ip": "10.0.0.5", "vendor": "Yealink",
            "model": "T46S", "configured": true, "added": "auto", "config": "abc"
        }))
        .unwrap_or_default();
        assert_eq!(
            d.mac.map(|m| m.to_string()).as_deref(),
            Some("00:11:22:aa:bb:cc")
        );
        assert_eq!(d.added, Some(Added::Auto));
        assert!(d.configured);
        let c: Config = serde_json::from_value(json!({"id": "x", "parent_ids": ["base"], "role": "autocreate", "raw_config": {}, "transient": true})).unwrap_or_default();
        assert_eq!(c.role, Some(Role::Autocreate));
        assert!(c.transient);
    }
}
