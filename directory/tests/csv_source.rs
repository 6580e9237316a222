//! The CSV source over real files: reload on change, malformed files keep the previous
//! data and report the line, delimiters.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use pbxkit_directory::format::FormatColumns;
use pbxkit_directory::{
    CsvConfig, CsvSource, NumberPlan, QueryContext, Source, SourceConfig, SourceError,
};

struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "pbxkit-directory-{}-{name}.csv",
            std::process::id()
        ));
        Self(path)
    }

    /// Writes the file and sets a modification time `tick` seconds after a fixed
    /// instant, so that consecutive versions differ even on coarse file systems.
    fn write(&self, data: &str, tick: u64) {
        std::fs::write(&self.0, data).unwrap();
        let file = std::fs::File::options().write(true).open(&self.0).unwrap();
        file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + tick))
            .unwrap();
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A source that looks at its file on every query, so that each change is seen at once
/// (the check interval has its own test).
fn source(file: &TempFile, delimiter: char) -> CsvSource {
    checked_every(file, delimiter, Duration::ZERO)
}

fn checked_every(file: &TempFile, delimiter: char, interval: Duration) -> CsvSource {
    CsvSource::new(
        CsvConfig {
            source: SourceConfig {
                searched_columns: vec!["fn".into(), "ln".into()],
                first_matched_columns: vec!["num".into()],
                unique_column: Some("id".into()),
                format_columns: FormatColumns::new([("name", "{fn} {ln}")]),
                ..SourceConfig::named("my_csv")
            },
            file: file.0.clone(),
            delimiter,
        },
        NumberPlan::default(),
    )
    .unwrap()
    .with_check_interval(interval)
}

async fn names(source: &CsvSource, term: &str) -> Vec<String> {
    source
        .search(term, &QueryContext::default())
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.fields["name"].clone())
        .collect()
}

#[tokio::test]
async fn reloads_when_the_file_changes_and_keeps_good_data_on_errors() {
    let file = TempFile::new("reload");
    file.write(
        "id,fn,ln,num\n1,Alice,Abrams,55553783147\n2,Bob,Benito,5551354958\n",
        1,
    );
    let source = source(&file, ',');
    let ctx = QueryContext::default();
    assert_eq!(names(&source, "b").await, ["Alice Abrams", "Bob Benito"]);
    let found = source
        .first_match("555-135-4958", &ctx)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id.as_deref(), Some("2"));
    assert_eq!(
        source
            .list(&["2".into(), "9".into(), "1".into()], &ctx)
            .await
            .unwrap()
            .len(),
        2
    );

    file.write("id,fn,ln,num\n3,Charles,Curie,5553132479\n", 2);
    assert_eq!(names(&source, "").await, ["Charles Curie"]);

    // Line 3 is malformed: the previous data stays, the error names the line.
    file.write("id,fn,ln,num\n4,Dan,Doe,1\n5,Eve\n", 3);
    assert_eq!(names(&source, "").await, ["Charles Curie"]);
    let error = source.last_error().unwrap();
    assert!(
        matches!(&*error, SourceError::Data { message, .. } if message.contains("line 3")),
        "{error}"
    );

    // Fixed: reloaded, error cleared.
    file.write("id,fn,ln,num\n4,Dan,Doe,1\n", 4);
    assert_eq!(names(&source, "").await, ["Dan Doe"]);
    assert!(source.last_error().is_none());

    // Removed: the last data stays, the error is recorded.
    std::fs::remove_file(&file.0).unwrap();
    assert_eq!(names(&source, "dan").await, ["Dan Doe"]);
    assert!(matches!(
        source.last_error().as_deref(),
        Some(SourceError::Io { .. })
    ));
}

#[tokio::test]
async fn a_first_bad_file_is_an_error_and_delimiters_are_configurable() {
    let file = TempFile::new("bad");
    file.write("id;fn;ln;num\n1;Alice;Abrams\n", 1);
    let source = source(&file, ';');
    let error = source
        .search("a", &QueryContext::default())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("line 2"), "{error}");
    file.write("id;fn;ln;num\n1;Alice;Abrams;1001\n", 2);
    assert_eq!(names(&source, "ABR").await, ["Alice Abrams"]);

    let missing = TempFile::new("missing");
    let source = self::source(&missing, ',');
    assert!(matches!(
        source.search("a", &QueryContext::default()).await,
        Err(SourceError::Io { .. })
    ));
    assert!(
        CsvSource::new(
            CsvConfig {
                source: SourceConfig::named("x"),
                file: missing.0.clone(),
                delimiter: '€'
            },
            NumberPlan::default()
        )
        .is_err()
    );
}

#[tokio::test]
async fn queries_look_at_the_file_once_per_check_interval() {
    let file = TempFile::new("interval");
    file.write("id,fn,ln,num\n1,Alice,Abrams,1001\n", 1);
    // An hour: the whole test runs within one interval, however slow the machine.
    let source = checked_every(&file, ',', Duration::from_secs(3600));
    assert_eq!(source.check_interval(), Duration::from_secs(3600));
    let ctx = QueryContext::default();
    assert_eq!(names(&source, "").await, ["Alice Abrams"]);

    // Changed, but looked at less than an interval ago: queries keep the index…
    file.write("id,fn,ln,num\n2,Bob,Benito,1002\n", 2);
    assert_eq!(names(&source, "").await, ["Alice Abrams"]);
    assert!(source.first_match("1002", &ctx).await.unwrap().is_none());
    assert_eq!(source.list(&["1".into()], &ctx).await.unwrap().len(), 1);

    // …until an explicit reload, which looks at once.
    assert_eq!(source.reload().unwrap().len(), 1);
    assert_eq!(names(&source, "").await, ["Bob Benito"]);
    let found = source.first_match("1002", &ctx).await.unwrap().unwrap();
    assert_eq!(found.id.as_deref(), Some("2"));

    // A first read that failed is retried by the next query, interval or not.
    let broken = TempFile::new("interval-broken");
    broken.write("id,fn,ln,num\n1,Alice\n", 1);
    let source = checked_every(&broken, ',', Duration::from_secs(3600));
    assert!(source.search("a", &ctx).await.is_err());
    broken.write("id,fn,ln,num\n1,Alice,Abrams,1001\n", 2);
    assert_eq!(names(&source, "").await, ["Alice Abrams"]);
}

#[tokio::test]
async fn after_the_check_interval_a_query_sees_the_change() {
    use std::sync::{Arc, Mutex};
    use std::time::Instant;
    let file = TempFile::new("interval-clock");
    file.write("id,fn,ln,num\n1,Alice,Abrams,1001\n", 1);
    // A simulated clock: the interval passes without waiting.
    let now = Arc::new(Mutex::new(Instant::now()));
    let read = Arc::clone(&now);
    let clock = pbxkit_directory::csv_source::Clock::new(move || {
        *read
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    });
    let source = checked_every(&file, ',', Duration::from_secs(10)).with_clock(clock);
    assert_eq!(names(&source, "").await, ["Alice Abrams"]);
    file.write("id,fn,ln,num\n2,Bob,Benito,1002\n", 2);
    let advance = |by: u64| {
        let mut t = now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *t += Duration::from_secs(by);
    };
    advance(9);
    assert_eq!(
        names(&source, "").await,
        ["Alice Abrams"],
        "within the interval"
    );
    advance(1);
    assert_eq!(names(&source, "").await, ["Bob Benito"], "once it is over");
}

#[test]
fn the_default_check_interval_is_a_second() {
    let file = TempFile::new("default-interval");
    let source = CsvSource::new(
        CsvConfig {
            source: SourceConfig::named("x"),
            file: file.0.clone(),
            delimiter: ',',
        },
        NumberPlan::default(),
    )
    .unwrap();
    assert_eq!(
        source.check_interval(),
        pbxkit_directory::csv_source::DEFAULT_CHECK_INTERVAL
    );
    assert_eq!(source.check_interval(), Duration::from_secs(1));
}
