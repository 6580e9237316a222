//! [`MemorySource`]: contacts the application supplies and replaces as a whole —
//! internal users from the PBX configuration, a phonebook kept in a database.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};

use async_trait::async_trait;

use crate::index::ContactIndex;
use crate::number::NumberPlan;
use crate::source::{Contact, QueryContext, Source, SourceConfig, SourceError};

/// A source over records held in memory, indexed like a CSV file.
#[derive(Debug)]
pub struct MemorySource {
    config: SourceConfig,
    plan: NumberPlan,
    index: RwLock<Arc<ContactIndex>>,
}

impl MemorySource {
    /// A source with these records (column → value).
    pub fn new(
        config: SourceConfig,
        plan: NumberPlan,
        records: impl IntoIterator<Item = BTreeMap<String, String>>,
    ) -> Self {
        let index = Arc::new(ContactIndex::build(&config, &plan, records));
        Self {
            config,
            plan,
            index: RwLock::new(index),
        }
    }

    /// A source from records written as arrays of `(column, value)` pairs.
    pub fn from_records<R, K, V>(
        config: SourceConfig,
        plan: NumberPlan,
        records: impl IntoIterator<Item = R>,
    ) -> Self
    where
        R: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let records = records.into_iter().map(|record| {
            record
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect::<BTreeMap<_, _>>()
        });
        Self::new(config, plan, records)
    }

    /// Replaces every record (the new index is built before the swap, so queries never
    /// see a partial one).
    pub fn replace(&self, records: impl IntoIterator<Item = BTreeMap<String, String>>) {
        let index = Arc::new(ContactIndex::build(&self.config, &self.plan, records));
        *self.index.write().unwrap_or_else(PoisonError::into_inner) = index;
    }

    /// The current index.
    pub fn index(&self) -> Arc<ContactIndex> {
        Arc::clone(&self.index.read().unwrap_or_else(PoisonError::into_inner))
    }
}

#[async_trait]
impl Source for MemorySource {
    fn name(&self) -> &str {
        &self.config.name
    }

    async fn search(&self, term: &str, _ctx: &QueryContext) -> Result<Vec<Contact>, SourceError> {
        Ok(self.index().search(term).cloned().collect())
    }

    async fn first_match(
        &self,
        number: &str,
        _ctx: &QueryContext,
    ) -> Result<Option<Contact>, SourceError> {
        Ok(self.index().reverse(&self.plan, number).next().cloned())
    }

    async fn list(&self, ids: &[String], _ctx: &QueryContext) -> Result<Vec<Contact>, SourceError> {
        let index = self.index();
        Ok(ids.iter().filter_map(|id| index.get(id)).cloned().collect())
    }
}
