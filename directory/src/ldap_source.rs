//! [`LdapSource`]: contacts from an LDAP directory (wazo-dird's `ldap` back-end), over
//! plain `ldap://` with ldap3 (feature `tokio`).
//!
//! Every query opens its own connection: connect (bounded by
//! [`LdapConfig::network_timeout`], 0.3 s by default), simple bind when a bind DN is
//! configured, one search, unbind — the bind, search and unbind together bounded by
//! [`LdapConfig::operation_timeout`] (1 s by default). Nothing is kept between queries,
//! so a restarted or replaced server needs no reconnection logic, and a query the lookup
//! service abandons at its deadline closes its connection as it is dropped (the
//! connection is driven inside the query's future, no task is spawned).
//!
//! - Search: `(|(col1=*term*)(col2=*term*))` over the searched columns, ANDed with the
//!   custom filter where `%Q` is the term; the term is RFC 4515-escaped, so it matches
//!   literally (see [`ldap`](crate::ldap)).
//! - Reverse lookup: equality on the first-matched (number) attributes with the
//!   spellings of the number that the source's [`NumberPlan`] makes equivalent (as
//!   dialled, international `+33…`, national `0…`, `0033…`); the server's answers are
//!   then checked with the plan, so `+33 1 23 45 67 89` finds `01 23 45 67 89`.
//! - Listing (favorites): equality on the unique column. With
//!   [`UniqueColumnFormat::BinaryUuid`], a 16-byte value (`objectGUID`, a binary
//!   `entryUUID`) is shown as a UUID string and ids are searched as bytes.
//!
//! Attributes are returned under the spelling of the configuration when a configured
//! column names them (LDAP attribute names are case-insensitive); multi-valued
//! attributes show their first value; non-UTF-8 values (photos) are left out.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use async_trait::async_trait;
use ldap3::asn1::{PL, StructureTag};
use ldap3::{LdapConnAsync, LdapConnSettings, LdapError, Scope, SearchOptions};
use serde::{Deserialize, Deserializer};

use crate::index::number_key;
use crate::ldap::{LdapFilters, escape, escape_bytes, is_attribute_name};
use crate::number::NumberPlan;
use crate::source::{Contact, QueryContext, Source, SourceConfig, SourceError};

/// The connect deadline when the configuration does not set one (wazo-dird's
/// `ldap_network_timeout`).
pub const DEFAULT_NETWORK_TIMEOUT: Duration = Duration::from_millis(300);

/// The deadline of bind + search when the configuration does not set one (wazo-dird's
/// `ldap_timeout`).
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(1);

/// How the unique column's values are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum UniqueColumnFormat {
    /// Text, used as it is (OpenLDAP's `entryUUID`, `uid`…).
    #[default]
    String,
    /// 16 bytes shown as a UUID string (Active Directory's `objectGUID`, bytes in
    /// order); a textual value is kept as it is.
    BinaryUuid,
}

/// The configuration of an LDAP source. Keys follow wazo-dird's (`ldap_uri`,
/// `ldap_base_dn`, `ldap_username`, `ldap_password`, `ldap_custom_filter`,
/// `ldap_network_timeout`, `ldap_timeout` are accepted as aliases); timeouts are in
/// seconds (`0.3`).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct LdapConfig {
    /// Name, searched, first-matched and unique columns, `format_columns`.
    #[serde(flatten)]
    pub source: SourceConfig,
    /// The server, `ldap://host[:port]` (TLS is not supported by this build).
    #[serde(alias = "ldap_uri")]
    pub uri: String,
    /// Where searches start (subtree scope).
    #[serde(alias = "ldap_base_dn")]
    pub base_dn: String,
    /// The DN to bind as; anonymous when `None`.
    #[serde(alias = "ldap_username")]
    pub bind_dn: Option<String>,
    /// The bind password (never shown by `Debug`).
    #[serde(alias = "ldap_password")]
    pub bind_password: Option<String>,
    /// A filter ANDed with the generated ones; `%Q` is replaced by the escaped term.
    #[serde(alias = "ldap_custom_filter")]
    pub custom_filter: Option<String>,
    /// How the unique column is written.
    pub unique_column_format: UniqueColumnFormat,
    /// Deadline of the connection (TCP connect).
    #[serde(alias = "ldap_network_timeout", deserialize_with = "seconds")]
    pub network_timeout: Duration,
    /// Deadline of bind + search (+ unbind).
    #[serde(alias = "ldap_timeout", deserialize_with = "seconds")]
    pub operation_timeout: Duration,
    /// At most this many entries per search (0: the server's limit); a search that
    /// hits a limit returns the entries it got.
    pub size_limit: u32,
}

impl Default for LdapConfig {
    fn default() -> Self {
        Self {
            source: SourceConfig::default(),
            uri: String::new(),
            base_dn: String::new(),
            bind_dn: None,
            bind_password: None,
            custom_filter: None,
            unique_column_format: UniqueColumnFormat::String,
            network_timeout: DEFAULT_NETWORK_TIMEOUT,
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
            size_limit: 0,
        }
    }
}

impl std::fmt::Debug for LdapConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LdapConfig")
            .field("source", &self.source)
            .field("uri", &self.uri)
            .field("base_dn", &self.base_dn)
            .field("bind_dn", &self.bind_dn)
            .field("bind_password", &self.bind_password.as_ref().map(|_| "***"))
            .field("custom_filter", &self.custom_filter)
            .field("unique_column_format", &self.unique_column_format)
            .field("network_timeout", &self.network_timeout)
            .field("operation_timeout", &self.operation_timeout)
            .field("size_limit", &self.size_limit)
            .finish()
    }
}

/// Longest accepted timeout, so that a typo cannot hang lookups for hours.
const MAX_TIMEOUT_SECS: f64 = 3600.0;

fn seconds<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let secs = f64::deserialize(deserializer)?;
    if !(secs > 0.0 && secs <= MAX_TIMEOUT_SECS) {
        return Err(serde::de::Error::custom(format!(
            "timeout {secs} s: expected seconds in (0, {MAX_TIMEOUT_SECS}]"
        )));
    }
    Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
}

/// Why an LDAP configuration is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LdapConfigError {
    /// The URI is not `ldap://…` (or `ldapi://…`).
    #[error("LDAP URI {uri:?}: {reason}")]
    Uri {
        /// The URI.
        uri: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A column is not an attribute name (it would be pasted into filters).
    #[error("{column:?} is not an LDAP attribute name")]
    Attribute {
        /// The column.
        column: String,
    },
    /// The custom filter does not parse (with `%Q` replaced by a term).
    #[error("custom filter {filter:?} is not a valid LDAP filter")]
    CustomFilter {
        /// The filter.
        filter: String,
    },
    /// A timeout is zero.
    #[error("the {which} timeout must be positive")]
    Timeout {
        /// `network` or `operation`.
        which: &'static str,
    },
}

/// An LDAP directory as a contact source.
#[derive(Debug)]
pub struct LdapSource {
    config: LdapConfig,
    plan: NumberPlan,
    name: Arc<str>,
    filters: LdapFilters,
    /// Lower-cased attribute name → spelling of the configuration.
    spelling: HashMap<String, String>,
    /// The attributes asked for: all user attributes and the unique column.
    attributes: Vec<String>,
}

/// One entry as the server sent it: attribute (configured spelling) → values.
struct RawEntry {
    attributes: Vec<(String, Vec<Vec<u8>>)>,
}

impl LdapSource {
    /// A source for `config`; `plan` tells which spellings of a number are equivalent
    /// for reverse lookup. Connects only when queried.
    ///
    /// # Errors
    /// [`LdapConfigError`] when the URI, a column name, the custom filter or a timeout
    /// is unusable.
    pub fn new(config: LdapConfig, plan: NumberPlan) -> Result<Self, LdapConfigError> {
        let uri = config.uri.trim();
        let scheme_ok = ["ldap://", "ldapi://"].iter().any(|scheme| {
            uri.get(..scheme.len())
                .is_some_and(|s| s.eq_ignore_ascii_case(scheme))
        });
        if !scheme_ok {
            let reason = if uri.to_ascii_lowercase().starts_with("ldaps://") {
                "ldaps:// needs TLS, which this build does not include"
            } else {
                "expected ldap://host[:port]"
            };
            return Err(LdapConfigError::Uri {
                uri: config.uri.clone(),
                reason,
            });
        }
        let source = &config.source;
        let columns = source
            .searched_columns
            .iter()
            .chain(&source.first_matched_columns)
            .chain(&source.unique_column);
        let mut spelling = HashMap::new();
        for column in columns {
            if !is_attribute_name(column) {
                return Err(LdapConfigError::Attribute {
                    column: column.clone(),
                });
            }
            spelling
                .entry(column.to_ascii_lowercase())
                .or_insert_with(|| column.clone());
        }
        if let Some(filter) = config
            .custom_filter
            .as_deref()
            .filter(|f| !f.trim().is_empty())
            && ldap3::parse_filter(filter.replace("%Q", "x")).is_err()
        {
            return Err(LdapConfigError::CustomFilter {
                filter: filter.to_owned(),
            });
        }
        if config.network_timeout.is_zero() {
            return Err(LdapConfigError::Timeout { which: "network" });
        }
        if config.operation_timeout.is_zero() {
            return Err(LdapConfigError::Timeout { which: "operation" });
        }
        let mut attributes = vec!["*".to_owned()];
        attributes.extend(source.unique_column.iter().cloned());
        Ok(Self {
            name: Arc::from(source.name.as_str()),
            filters: LdapFilters {
                custom_filter: config.custom_filter.clone(),
                searched_columns: source.searched_columns.clone(),
                first_matched_columns: source.first_matched_columns.clone(),
            },
            spelling,
            attributes,
            config,
            plan,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &LdapConfig {
        &self.config
    }

    fn remote(&self, message: impl Into<String>) -> SourceError {
        SourceError::Remote {
            source_name: self.config.source.name.clone(),
            message: message.into(),
        }
    }

    fn error(&self, error: LdapError) -> SourceError {
        match error {
            LdapError::Io { source } => SourceError::Io {
                source_name: self.config.source.name.clone(),
                error: source,
            },
            other => self.remote(other.to_string()),
        }
    }

    /// Connects, binds, runs one search and unbinds, within the deadlines.
    async fn query(&self, filter: &str) -> Result<Vec<RawEntry>, SourceError> {
        let config = &self.config;
        let settings = LdapConnSettings::new().set_conn_timeout(config.network_timeout);
        let (conn, mut ldap) = match tokio::time::timeout(
            config.network_timeout,
            LdapConnAsync::with_settings(settings, config.uri.trim()),
        )
        .await
        {
            Ok(Ok(connected)) => connected,
            Ok(Err(error)) => return Err(self.error(error)),
            Err(_) => {
                return Err(
                    self.remote(format!("no connection within {:?}", config.network_timeout))
                );
            }
        };
        let operation = async move {
            if let Some(dn) = &config.bind_dn {
                ldap.simple_bind(dn, config.bind_password.as_deref().unwrap_or(""))
                    .await?
                    .success()?;
            }
            let mut options = SearchOptions::new();
            if config.size_limit > 0 {
                options = options.sizelimit(i32::try_from(config.size_limit).unwrap_or(i32::MAX));
            }
            let result = ldap
                .with_search_options(options)
                .search(
                    &config.base_dn,
                    Scope::Subtree,
                    filter,
                    self.attributes.as_slice(),
                )
                .await?;
            // The unbind closes the connection; its failure changes nothing.
            let _ = ldap.unbind().await;
            Ok::<_, LdapError>(result)
        };
        let result = match tokio::time::timeout(
            config.operation_timeout,
            drive_alongside(conn.drive(), operation),
        )
        .await
        {
            Ok(Ok(result)) => result,
            Ok(Err(error)) => return Err(self.error(error)),
            Err(_) => {
                return Err(self.remote(format!("no answer within {:?}", config.operation_timeout)));
            }
        };
        // 4: sizeLimitExceeded, 3: timeLimitExceeded: the entries received count.
        if !matches!(result.1.rc, 0 | 3 | 4) {
            return Err(self.error(LdapError::LdapResult { result: result.1 }));
        }
        let mut entries = Vec::with_capacity(result.0.len());
        for entry in result.0 {
            match self.raw_entry(entry.0) {
                Some(raw) => entries.push(raw),
                None => return Err(self.remote("malformed search result entry")),
            }
        }
        Ok(entries)
    }

    /// Reads a SearchResultEntry without panicking on malformed data.
    fn raw_entry(&self, tag: StructureTag) -> Option<RawEntry> {
        let mut parts = constructed(tag.match_id(4)?)?.into_iter();
        let _dn = primitive(parts.next()?)?;
        let mut attributes = Vec::new();
        for attribute in constructed(parts.next()?)? {
            let mut attribute = constructed(attribute)?.into_iter();
            let name = String::from_utf8(primitive(attribute.next()?)?).ok()?;
            let values = constructed(attribute.next()?)?
                .into_iter()
                .map(primitive)
                .collect::<Option<Vec<_>>>()?;
            let name = self
                .spelling
                .get(&name.to_ascii_lowercase())
                .cloned()
                .unwrap_or(name);
            attributes.push((name, values));
        }
        Some(RawEntry { attributes })
    }

    fn values<'a>(entry: &'a RawEntry, column: &str) -> impl Iterator<Item = &'a [u8]> {
        entry
            .attributes
            .iter()
            .filter(move |(name, _)| name == column)
            .flat_map(|(_, values)| values.iter().map(Vec::as_slice))
    }

    /// The contact of an entry: first UTF-8 value of each attribute, the unique column
    /// rendered per its format, `format_columns` applied.
    fn contact(&self, entry: &RawEntry) -> Contact {
        let unique = self.config.source.unique_column.as_deref();
        let mut fields = BTreeMap::new();
        for (name, values) in &entry.attributes {
            if fields.contains_key(name) {
                continue;
            }
            let value = values.iter().find_map(|value| {
                if Some(name.as_str()) == unique
                    && self.config.unique_column_format == UniqueColumnFormat::BinaryUuid
                    && let Ok(bytes) = <[u8; 16]>::try_from(value.as_slice())
                {
                    return Some(format_uuid(&bytes));
                }
                std::str::from_utf8(value).ok().map(str::to_owned)
            });
            if let Some(value) = value {
                fields.insert(name.clone(), value);
            }
        }
        self.config.source.contact(&self.name, fields)
    }

    /// The spellings of `number` that the plan makes equivalent, as dialled first.
    fn spellings(&self, number: &str) -> Vec<String> {
        let raw = number.trim();
        let mut out = vec![raw.to_owned()];
        if let Some(key) = self.plan.normalize(raw) {
            out.push(key.clone());
            if let Some(international) = key.strip_prefix('+') {
                out.push(format!("{}{international}", self.plan.international_prefix));
                if let Some(cc) = &self.plan.country_code
                    && let Some(national) = international.strip_prefix(cc.as_str())
                    && !national.is_empty()
                {
                    out.push(format!("{}{national}", self.plan.national_prefix));
                }
            }
        }
        let mut seen = HashSet::new();
        out.retain(|s| !s.is_empty() && seen.insert(s.clone()));
        out
    }
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, bytes in order (as Python's
/// `uuid.UUID(bytes=…)`, which wazo-dird uses).
fn format_uuid(bytes: &[u8; 16]) -> String {
    let mut out = String::with_capacity(36);
    for (i, byte) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// The 16 bytes of a UUID string (hyphens and braces ignored), if it is one.
fn parse_uuid(text: &str) -> Option<[u8; 16]> {
    let hex: Vec<u8> = text
        .bytes()
        .filter(|b| !matches!(b, b'-' | b'{' | b'}'))
        .collect();
    if hex.len() != 32 {
        return None;
    }
    let mut bytes = [0u8; 16];
    for (byte, pair) in bytes.iter_mut().zip(hex.chunks(2)) {
        let pair = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(bytes)
}

fn constructed(tag: StructureTag) -> Option<Vec<StructureTag>> {
    match tag.payload {
        PL::C(inner) => Some(inner),
        PL::P(_) => None,
    }
}

fn primitive(tag: StructureTag) -> Option<Vec<u8>> {
    match tag.payload {
        PL::P(inner) => Some(inner),
        PL::C(_) => None,
    }
}

/// Runs `operation` while polling the connection `driver` that carries its messages;
/// returns the operation's result, or the driver's error when the connection fails
/// first.
async fn drive_alongside<T>(
    driver: impl Future<Output = Result<(), LdapError>>,
    operation: impl Future<Output = Result<T, LdapError>>,
) -> Result<T, LdapError> {
    let mut driver = pin!(driver);
    let mut operation = pin!(operation);
    let mut driver_error = None;
    let mut driver_done = false;
    std::future::poll_fn(|cx| {
        if let Poll::Ready(result) = operation.as_mut().poll(cx) {
            return Poll::Ready(match (result, driver_error.take()) {
                (Err(_), Some(error)) => Err(error),
                (result, _) => result,
            });
        }
        if !driver_done && let Poll::Ready(result) = driver.as_mut().poll(cx) {
            driver_done = true;
            driver_error = result.err();
            // The connection is gone: the operation's pending replies fail now.
            if let Poll::Ready(result) = operation.as_mut().poll(cx) {
                return Poll::Ready(match (result, driver_error.take()) {
                    (Err(_), Some(error)) => Err(error),
                    (result, _) => result,
                });
            }
        }
        Poll::Pending
    })
    .await
}

#[async_trait]
impl Source for LdapSource {
    fn name(&self) -> &str {
        &self.config.source.name
    }

    async fn search(&self, term: &str, _ctx: &QueryContext) -> Result<Vec<Contact>, SourceError> {
        let Some(filter) = self.filters.search(term) else {
            return Ok(Vec::new());
        };
        let entries = self.query(&filter).await?;
        Ok(entries.iter().map(|entry| self.contact(entry)).collect())
    }

    async fn first_match(
        &self,
        number: &str,
        _ctx: &QueryContext,
    ) -> Result<Option<Contact>, SourceError> {
        let Some(key) = number_key(&self.plan, number) else {
            return Ok(None);
        };
        let Some(filter) = self.filters.reverse_any(&self.spellings(number)) else {
            return Ok(None);
        };
        let entries = self.query(&filter).await?;
        let columns = &self.config.source.first_matched_columns;
        Ok(entries
            .iter()
            .find(|entry| {
                columns.iter().any(|column| {
                    Self::values(entry, column).any(|value| {
                        std::str::from_utf8(value)
                            .ok()
                            .and_then(|v| number_key(&self.plan, v))
                            .is_some_and(|k| k == key)
                    })
                })
            })
            .map(|entry| self.contact(entry)))
    }

    async fn list(&self, ids: &[String], _ctx: &QueryContext) -> Result<Vec<Contact>, SourceError> {
        let Some(column) = self.config.source.unique_column.as_deref() else {
            return Ok(Vec::new());
        };
        let binary = self.config.unique_column_format == UniqueColumnFormat::BinaryUuid;
        let values: Vec<String> = ids
            .iter()
            .filter(|id| !id.is_empty())
            .map(|id| match parse_uuid(id) {
                Some(bytes) if binary => escape_bytes(&bytes),
                _ => escape(id),
            })
            .collect();
        let Some(filter) = LdapFilters::list(column, &values) else {
            return Ok(Vec::new());
        };
        let mut by_id: HashMap<String, Contact> = HashMap::new();
        for entry in self.query(&filter).await? {
            let contact = self.contact(&entry);
            if let Some(id) = contact.id.clone() {
                by_id.entry(id.to_ascii_lowercase()).or_insert(contact);
            }
        }
        // In `ids` order, each contact once (ids compare case-insensitively, as UUIDs
        // and most LDAP equality rules do).
        Ok(ids
            .iter()
            .filter_map(|id| by_id.remove(&id.to_ascii_lowercase()))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> LdapConfig {
        LdapConfig {
            source: SourceConfig {
                searched_columns: vec!["cn".into()],
                first_matched_columns: vec!["telephoneNumber".into(), "mobile".into()],
                unique_column: Some("entryUUID".into()),
                ..SourceConfig::named("ldap")
            },
            uri: "ldap://127.0.0.1:389".into(),
            base_dn: "dc=pbxkit,dc=test".into(),
            ..LdapConfig::default()
        }
    }

    #[test]
    fn defaults_and_serde() {
        let config: LdapConfig = serde_json::from_value(serde_json::json!({
            "name": "corp",
            "ldap_uri": "ldap://ldap.example.com",
            "ldap_base_dn": "ou=people,dc=example,dc=com",
            "ldap_username": "cn=reader,dc=example,dc=com",
            "ldap_password": "s3cret",
            "ldap_custom_filter": "(&(objectClass=person)(cn=*%Q*))",
            "searched_columns": ["cn", "mail"],
            "first_matched_columns": ["telephoneNumber"],
            "unique_column": "objectGUID",
            "unique_column_format": "binary_uuid",
            "format_columns": {"name": "{cn}"},
            "ldap_timeout": 2.5
        }))
        .unwrap();
        assert_eq!(config.source.name, "corp");
        assert_eq!(config.network_timeout, DEFAULT_NETWORK_TIMEOUT);
        assert_eq!(config.operation_timeout, Duration::from_millis(2500));
        assert_eq!(config.unique_column_format, UniqueColumnFormat::BinaryUuid);
        assert!(!format!("{config:?}").contains("s3cret"));
        assert!(LdapSource::new(config, NumberPlan::default()).is_ok());
        for bad in [-1.0, 0.0, 1e12, f64::NAN] {
            let parsed =
                serde_json::from_value::<LdapConfig>(serde_json::json!({ "network_timeout": bad }));
            assert!(parsed.is_err(), "{bad}");
        }
    }

    #[test]
    fn refused_configurations() {
        let plan = NumberPlan::default();
        let mut c = config();
        c.uri = "ldaps://x".into();
        assert!(matches!(
            LdapSource::new(c, plan.clone()),
            Err(LdapConfigError::Uri { .. })
        ));
        let mut c = config();
        c.source.searched_columns.push("cn)(uid=*".into());
        assert!(matches!(
            LdapSource::new(c, plan.clone()),
            Err(LdapConfigError::Attribute { .. })
        ));
        let mut c = config();
        c.custom_filter = Some("(cn=%Q".into());
        assert!(matches!(
            LdapSource::new(c, plan.clone()),
            Err(LdapConfigError::CustomFilter { .. })
        ));
        let mut c = config();
        c.operation_timeout = Duration::ZERO;
        assert!(matches!(
            LdapSource::new(c, plan),
            Err(LdapConfigError::Timeout { .. })
        ));
    }

    #[test]
    fn number_spellings() {
        let source = LdapSource::new(config(), NumberPlan::with_country_code("33")).unwrap();
        assert_eq!(
            source.spellings(" +33 1 23 45 67 89 "),
            [
                "+33 1 23 45 67 89",
                "+33123456789",
                "0033123456789",
                "0123456789"
            ]
        );
        assert_eq!(source.spellings("1001"), ["1001"]);
        assert_eq!(source.spellings("sip:bob"), ["sip:bob"]);
    }

    #[test]
    fn uuids() {
        let bytes = [
            0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab,
            0xcd, 0xef,
        ];
        let text = format_uuid(&bytes);
        assert_eq!(text, "12345678-9abc-def0-0123-456789abcdef");
        assert_eq!(parse_uuid(&text), Some(bytes));
        assert_eq!(parse_uuid(&text.to_uppercase()), Some(bytes));
        for bad in ["", "1234", "zz345678-9abc-def0-0123-456789abcdef", "é"] {
            assert_eq!(parse_uuid(bad), None, "{bad}");
        }
    }

    #[test]
    fn malformed_entries_are_refused() {
        let source = LdapSource::new(config(), NumberPlan::default()).unwrap();
        let tag = |id, payload| StructureTag {
            class: ldap3::asn1::TagClass::Application,
            id,
            payload,
        };
        assert!(source.raw_entry(tag(4, PL::P(vec![1]))).is_none());
        assert!(source.raw_entry(tag(5, PL::C(vec![]))).is_none());
        assert!(source.raw_entry(tag(4, PL::C(vec![]))).is_none());
        let entry = tag(
            4,
            PL::C(vec![
                tag(4, PL::P(b"uid=1".to_vec())),
                tag(
                    16,
                    PL::C(vec![tag(
                        16,
                        PL::C(vec![
                            tag(4, PL::P(b"TELEPHONENUMBER".to_vec())),
                            tag(17, PL::C(vec![tag(4, PL::P(b"1001".to_vec()))])),
                        ]),
                    )]),
                ),
            ]),
        );
        let raw = source.raw_entry(entry).unwrap();
        let contact = source.contact(&raw);
        assert_eq!(contact.get("telephoneNumber"), Some("1001"));
    }
}
