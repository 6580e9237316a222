//! The [`Source`] trait every contact source implements, and what sources share:
//! [`SourceConfig`] (searched, first-matched and unique columns, `format_columns`) and
//! the [`Contact`] they return.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;

use crate::format::FormatColumns;

/// One directory entry as a source returns it: the source's name, the value of its
/// unique column (when it has one) and the fields, `format_columns` applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    /// The name of the source that returned the contact.
    pub source: Arc<str>,
    /// The value of the source's unique column, used by [`Source::list`] and favorites.
    pub id: Option<String>,
    /// Field name → value.
    pub fields: BTreeMap<String, String>,
}

impl Contact {
    /// The value of a field, if the contact has it.
    pub fn get(&self, field: &str) -> Option<&str> {
        self.fields.get(field).map(String::as_str)
    }
}

/// Who asks: personal contacts and favorites are per user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryContext {
    /// The user (XiVO user UUID or any stable id) on whose behalf the query is made.
    pub user: Option<String>,
}

impl QueryContext {
    /// A query on behalf of `user`.
    pub fn user(user: impl Into<String>) -> Self {
        Self {
            user: Some(user.into()),
        }
    }
}

/// The configuration every source has (wazo-dird's common source keys).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct SourceConfig {
    /// The source's name, unique among sources; profiles refer to it.
    pub name: String,
    /// Columns searched by a lookup: any containing the term (ignoring case, and for
    /// the sources that search their own data, accents) matches.
    pub searched_columns: Vec<String>,
    /// Columns used by a reverse lookup: a number equal to one of them matches.
    pub first_matched_columns: Vec<String>,
    /// The column that identifies an entry in the source (for `list` and favorites).
    pub unique_column: Option<String>,
    /// Output field → template, added to (or replacing fields of) every result.
    #[serde(deserialize_with = "deserialize_format_columns")]
    pub format_columns: FormatColumns,
}

fn deserialize_format_columns<'de, D>(deserializer: D) -> Result<FormatColumns, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let map = BTreeMap::<String, String>::deserialize(deserializer)?;
    Ok(FormatColumns::new(map))
}

impl SourceConfig {
    /// A configuration with a name and nothing else.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }

    /// Builds the [`Contact`] for a raw record: takes the unique column's value as id
    /// and applies `format_columns`.
    pub fn contact(&self, source: &Arc<str>, mut fields: BTreeMap<String, String>) -> Contact {
        let id = self
            .unique_column
            .as_ref()
            .and_then(|column| fields.get(column))
            .cloned();
        self.format_columns.apply(&mut fields);
        Contact {
            source: Arc::clone(source),
            id,
            fields,
        }
    }
}

/// Why a source could not answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The source's data could not be read (file, network).
    #[error("source {source_name}: {error}")]
    Io {
        /// The source's name.
        source_name: String,
        /// The underlying error.
        #[source]
        error: std::io::Error,
    },
    /// The source's data is malformed and no previous good data is available.
    #[error("source {source_name}: {message}")]
    Data {
        /// The source's name.
        source_name: String,
        /// What is wrong, and where.
        message: String,
    },
    /// The remote directory answered with an error or did not answer in time.
    #[error("source {source_name}: {message}")]
    Remote {
        /// The source's name.
        source_name: String,
        /// The remote error.
        message: String,
    },
}

/// A contact source (wazo-dird's back-end instance): CSV file, LDAP directory, personal
/// contacts, internal users…
///
/// Implementations answer from their own data; the lookup service adds the parallelism,
/// the deadlines and the display.
#[async_trait]
pub trait Source: Send + Sync {
    /// The source's name (its [`SourceConfig::name`]).
    fn name(&self) -> &str;

    /// Contacts whose searched columns contain `term`, case-insensitively. CSV, memory,
    /// personal and phonebook sources also ignore the accents of Latin letters
    /// ("helene" finds "Hélène"); LDAP follows the server's matching rules.
    async fn search(&self, term: &str, ctx: &QueryContext) -> Result<Vec<Contact>, SourceError>;

    /// The first contact with `number` in one of its first-matched columns (reverse
    /// lookup), if any.
    async fn first_match(
        &self,
        number: &str,
        ctx: &QueryContext,
    ) -> Result<Option<Contact>, SourceError>;

    /// The contacts whose unique column has one of `ids` (favorites), in `ids` order.
    async fn list(&self, ids: &[String], ctx: &QueryContext) -> Result<Vec<Contact>, SourceError>;
}
