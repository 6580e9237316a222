//! [`CsvSource`]: contacts from a CSV file, indexed in memory and reloaded when the
//! file changes.
//!
//! The first line names the columns; the delimiter is configurable (`,` by default).
//! The file is read again when its modification time or length changes; the new index
//! is built while queries keep using the old one, then swapped in. Queries look at the
//! file at most once per [check interval](CsvSource::with_check_interval) (a second by
//! default): the look (a `stat`) costs more than a reverse lookup in memory, and a
//! directory file changes far less often than calls come in; [`CsvSource::reload`]
//! looks at once. A malformed file (a line with the wrong number of fields, invalid
//! UTF-8) is reported with its line number by [`CsvSource::last_error`] and the
//! previous good data stays in use.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use serde::Deserialize;

use crate::index::ContactIndex;
use crate::number::NumberPlan;
use crate::source::{Contact, QueryContext, Source, SourceConfig, SourceError};

/// Why CSV data could not be read, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CsvError {
    /// A record does not have as many fields as the header.
    #[error("line {line}: {found} fields where the header has {expected}")]
    FieldCount {
        /// 1-based line number.
        line: u64,
        /// Fields in the header.
        expected: u64,
        /// Fields on the line.
        found: u64,
    },
    /// A line is not valid UTF-8.
    #[error("line {line}: invalid UTF-8")]
    Utf8 {
        /// 1-based line number.
        line: u64,
    },
    /// The delimiter is not a single ASCII character.
    #[error("delimiter {0:?} is not an ASCII character")]
    Delimiter(char),
    /// Any other fault of the CSV reader.
    #[error("line {line}: {message}")]
    Other {
        /// 1-based line number (0 when unknown).
        line: u64,
        /// The reader's message.
        message: String,
    },
}

impl CsvError {
    fn from_csv(error: &csv::Error) -> Self {
        let line = |pos: &Option<csv::Position>| pos.as_ref().map_or(0, csv::Position::line);
        match error.kind() {
            csv::ErrorKind::UnequalLengths {
                pos,
                expected_len,
                len,
            } => Self::FieldCount {
                line: line(pos),
                expected: *expected_len,
                found: *len,
            },
            csv::ErrorKind::Utf8 { pos, .. } => Self::Utf8 { line: line(pos) },
            _ => Self::Other {
                line: error.position().map_or(0, csv::Position::line),
                message: error.to_string(),
            },
        }
    }

    /// The 1-based line of the fault, if it has one.
    pub fn line(&self) -> Option<u64> {
        match *self {
            Self::FieldCount { line, .. } | Self::Utf8 { line } | Self::Other { line, .. } => {
                Some(line)
            }
            Self::Delimiter(_) => None,
        }
    }
}

/// Checks a delimiter and returns its byte.
pub(crate) fn delimiter_byte(delimiter: char) -> Result<u8, CsvError> {
    u8::try_from(delimiter)
        .ok()
        .filter(u8::is_ascii)
        .ok_or(CsvError::Delimiter(delimiter))
}

/// Parses CSV data with a header line into records (column → value). Every line must
/// have as many fields as the header; values are kept as written (not trimmed).
///
/// # Errors
/// The first malformed line, as a [`CsvError`].
pub fn parse(data: &[u8], delimiter: char) -> Result<Vec<BTreeMap<String, String>>, CsvError> {
    records(data, delimiter)?.collect()
}

/// The records of CSV data, read one at a time: [`CsvSource`] indexes each as it is
/// read instead of holding a million records at once.
fn records(
    data: &[u8],
    delimiter: char,
) -> Result<impl Iterator<Item = Result<BTreeMap<String, String>, CsvError>>, CsvError> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter_byte(delimiter)?)
        .has_headers(true)
        .flexible(false)
        .from_reader(data);
    let headers = reader
        .headers()
        .map_err(|e| CsvError::from_csv(&e))?
        .iter()
        .map(|h| h.trim().to_owned())
        .collect::<Vec<_>>();
    let mut record = csv::StringRecord::new();
    // Stops after the first error, as `collect` would.
    let mut failed = false;
    Ok(std::iter::from_fn(move || {
        if failed {
            return None;
        }
        match reader.read_record(&mut record) {
            Ok(true) => Some(Ok(headers
                .iter()
                .zip(record.iter())
                .map(|(h, v)| (h.clone(), v.to_owned()))
                .collect())),
            Ok(false) => None,
            Err(e) => {
                failed = true;
                Some(Err(CsvError::from_csv(&e)))
            }
        }
    }))
}

fn default_delimiter() -> char {
    ','
}

/// The configuration of a CSV source (wazo-dird's `csv` back-end, plus `delimiter`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CsvConfig {
    /// Name, searched/first-matched/unique columns and `format_columns`.
    #[serde(flatten)]
    pub source: SourceConfig,
    /// The CSV file.
    pub file: PathBuf,
    /// The field delimiter, an ASCII character.
    #[serde(default = "default_delimiter")]
    pub delimiter: char,
}

/// What identifies a version of the file: modification time and length.
type Stamp = (Option<SystemTime>, u64);

#[derive(Debug, Default)]
struct State {
    index: Option<Arc<ContactIndex>>,
    stamp: Option<Stamp>,
    last_error: Option<Arc<SourceError>>,
}

/// How long queries answer from the index before looking at the file again, unless
/// [`CsvSource::with_check_interval`] says otherwise.
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// `last_check` before the first look at the file.
const NEVER: u64 = u64::MAX;

/// Where a [`CsvSource`] reads the time for its check interval: `Instant::now`
/// unless [`CsvSource::with_clock`] gives another (a simulated clock in tests).
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> Instant + Send + Sync>);

impl Clock {
    /// A clock reading `now`.
    pub fn new(now: impl Fn() -> Instant + Send + Sync + 'static) -> Self {
        Self(Arc::new(now))
    }

    fn now(&self) -> Instant {
        (self.0)()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new(Instant::now)
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

/// A CSV file source. Cheap to query: the file is only read again when it changes, and
/// looked at (its modification time and length) at most once per check interval.
#[derive(Debug)]
pub struct CsvSource {
    config: CsvConfig,
    plan: NumberPlan,
    state: RwLock<State>,
    /// Queries within this long of the last look at the file answer from the index.
    check_interval: Duration,
    /// The time, for the check interval.
    clock: Clock,
    /// The origin of `last_check`.
    created: Instant,
    /// When the file was last looked at, in nanoseconds since `created` ([`NEVER`]
    /// before the first look). An atomic, so that queries check it without a lock.
    last_check: AtomicU64,
    /// Held while a new index is built, so that one query rebuilds and the others keep
    /// answering from the old index.
    reloading: Mutex<()>,
}

impl CsvSource {
    /// A source for `config`, reading numbers with `plan`. The file is read on the
    /// first query (or by [`CsvSource::reload`]).
    ///
    /// # Errors
    /// [`CsvError::Delimiter`] when the delimiter is not ASCII.
    pub fn new(config: CsvConfig, plan: NumberPlan) -> Result<Self, CsvError> {
        delimiter_byte(config.delimiter)?;
        let clock = Clock::default();
        Ok(Self {
            config,
            plan,
            state: RwLock::new(State::default()),
            check_interval: DEFAULT_CHECK_INTERVAL,
            created: clock.now(),
            clock,
            last_check: AtomicU64::new(NEVER),
            reloading: Mutex::new(()),
        })
    }

    /// Sets how long queries answer from the index before looking at the file again
    /// ([`DEFAULT_CHECK_INTERVAL`] by default): a change is seen by queries within that
    /// time. [`Duration::ZERO`] looks at every query; [`CsvSource::reload`] always
    /// looks.
    #[must_use]
    pub fn with_check_interval(mut self, interval: Duration) -> Self {
        self.check_interval = interval;
        self
    }

    /// Reads the time for the check interval from `clock` instead of
    /// `Instant::now` (a simulated clock: the interval's expiry is then testable
    /// without waiting).
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.created = clock.now();
        self.clock = clock;
        self.last_check = AtomicU64::new(NEVER);
        self
    }

    /// How long queries answer from the index before looking at the file again.
    pub fn check_interval(&self) -> Duration {
        self.check_interval
    }

    /// Nanoseconds since `created`, saturating (centuries away).
    fn now(&self) -> u64 {
        let elapsed = self.clock.now().saturating_duration_since(self.created);
        u64::try_from(elapsed.as_nanos()).unwrap_or(NEVER - 1)
    }

    /// The index queries answer from: the current one when the file was looked at less
    /// than a check interval ago, else [`CsvSource::reload`]'s.
    fn index(&self) -> Result<Arc<ContactIndex>, SourceError> {
        let last = self.last_check.load(Ordering::Relaxed);
        if last != NEVER
            && u128::from(self.now().saturating_sub(last)) < self.check_interval.as_nanos()
            && let Some(index) = &self
                .state
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .index
        {
            return Ok(Arc::clone(index));
        }
        self.reload()
    }

    /// The configuration.
    pub fn config(&self) -> &CsvConfig {
        &self.config
    }

    /// The error of the last reload attempt, if it failed (the previous data is still
    /// in use).
    pub fn last_error(&self) -> Option<Arc<SourceError>> {
        self.state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .last_error
            .clone()
    }

    fn io_error(&self, error: std::io::Error) -> SourceError {
        SourceError::Io {
            source_name: self.config.source.name.clone(),
            error,
        }
    }

    /// The current index, reading the file again if it changed since the last read
    /// (looks at the file now, whatever the check interval).
    ///
    /// # Errors
    /// When the file cannot be read or parsed and there is no previous good data.
    pub fn reload(&self) -> Result<Arc<ContactIndex>, SourceError> {
        let (current, stamp) = {
            let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
            (state.index.clone(), state.stamp)
        };
        // Before the look: a change made during it is seen by the next one.
        self.last_check.store(self.now(), Ordering::Relaxed);
        let new_stamp = match std::fs::metadata(&self.config.file) {
            Ok(meta) => (meta.modified().ok(), meta.len()),
            Err(error) => {
                let error = self.io_error(error);
                return match current {
                    Some(index) => {
                        self.record_error(error);
                        Ok(index)
                    }
                    None => Err(error),
                };
            }
        };
        if stamp == Some(new_stamp)
            && let Some(index) = &current
        {
            return Ok(Arc::clone(index));
        }
        // Someone else is building the new index: answer from the old one meanwhile.
        let _guard = match (self.reloading.try_lock(), &current) {
            (Ok(guard), _) => guard,
            (Err(_), Some(index)) => return Ok(Arc::clone(index)),
            (Err(_), None) => self
                .reloading
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        };
        {
            // Built by whoever held the lock before us?
            let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
            if state.stamp == Some(new_stamp)
                && let Some(index) = &state.index
            {
                return Ok(Arc::clone(index));
            }
        }
        let built = std::fs::read(&self.config.file)
            .map_err(|e| self.io_error(e))
            .and_then(|data| {
                self.build(&data).map_err(|e| SourceError::Data {
                    source_name: self.config.source.name.clone(),
                    message: format!("{}: {e}", self.config.file.display()),
                })
            })
            .map(Arc::new);
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        // A broken version is not parsed again until the file changes again.
        state.stamp = Some(new_stamp);
        match built {
            Ok(index) => {
                state.index = Some(Arc::clone(&index));
                state.last_error = None;
                Ok(index)
            }
            Err(error) => {
                let error = Arc::new(error);
                state.last_error = Some(Arc::clone(&error));
                match &state.index {
                    Some(index) => Ok(Arc::clone(index)),
                    None => Err(SourceError::Data {
                        source_name: self.config.source.name.clone(),
                        message: error.to_string(),
                    }),
                }
            }
        }
    }

    /// Indexes the records of `data` as they are parsed (a malformed line discards
    /// the partial index).
    fn build(&self, data: &[u8]) -> Result<ContactIndex, CsvError> {
        let mut error = None;
        // About one record a line (less the header; quoted values may span lines).
        let lines = memchr::memchr_iter(b'\n', data).count();
        let index = ContactIndex::build_with_capacity(
            &self.config.source,
            &self.plan,
            records(data, self.config.delimiter)?
                .map_while(|record| record.map_err(|e| error = Some(e)).ok()),
            lines,
        );
        match error {
            Some(error) => Err(error),
            None => Ok(index),
        }
    }

    fn record_error(&self, error: SourceError) {
        self.state
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .last_error = Some(Arc::new(error));
    }
}

#[async_trait]
impl Source for CsvSource {
    fn name(&self) -> &str {
        &self.config.source.name
    }

    async fn search(&self, term: &str, _ctx: &QueryContext) -> Result<Vec<Contact>, SourceError> {
        Ok(self.index()?.search(term).cloned().collect())
    }

    async fn first_match(
        &self,
        number: &str,
        _ctx: &QueryContext,
    ) -> Result<Option<Contact>, SourceError> {
        Ok(self.index()?.reverse(&self.plan, number).next().cloned())
    }

    async fn list(&self, ids: &[String], _ctx: &QueryContext) -> Result<Vec<Contact>, SourceError> {
        let index = self.index()?;
        Ok(ids.iter().filter_map(|id| index.get(id)).cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_with_delimiter_and_reports_lines() {
        let records = parse(b"id;fn;num\n1;Alice;101\n2;\"Bob; Jr\";102\n", ';').expect("valid");
        assert_eq!(records.len(), 2);
        assert_eq!(records[1]["fn"], "Bob; Jr");
        assert_eq!(
            parse(b"id,fn\n1,Alice\n2,Bob,extra\n", ','),
            Err(CsvError::FieldCount {
                line: 3,
                expected: 2,
                found: 3
            })
        );
        assert_eq!(
            parse(b"id,fn\n1,\xff\n", ',').map_err(|e| e.line()),
            Err(Some(2))
        );
        assert_eq!(parse(b"", ',').map(|r| r.len()), Ok(0));
        assert_eq!(parse(b"a", 'é'), Err(CsvError::Delimiter('é')));
    }
}
