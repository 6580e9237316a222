//! The lookup service: parallel search with a deadline, merge and deduplication,
//! displays, favorites, personal contacts and reverse lookup in source order.
#![cfg(feature = "tokio")]
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pbxkit_directory::format::FormatColumns;
use pbxkit_directory::lookup::{Column, ColumnType, Display, Profile};
use pbxkit_directory::{
    Contact, Directory, LookupError, MemorySource, NumberPlan, PersonalContacts, QueryContext,
    Source, SourceConfig, SourceError,
};

/// A source that answers after a delay, or fails.
struct Slow {
    name: String,
    delay: Duration,
    inner: MemorySource,
    fail: bool,
}

#[async_trait]
impl Source for Slow {
    fn name(&self) -> &str {
        &self.name
    }
    async fn search(&self, term: &str, ctx: &QueryContext) -> Result<Vec<Contact>, SourceError> {
        tokio::time::sleep(self.delay).await;
        if self.fail {
            return Err(SourceError::Remote {
                source_name: self.name.clone(),
                message: "down".into(),
            });
        }
        self.inner.search(term, ctx).await
    }
    async fn first_match(
        &self,
        number: &str,
        ctx: &QueryContext,
    ) -> Result<Option<Contact>, SourceError> {
        tokio::time::sleep(self.delay).await;
        if self.fail {
            return Err(SourceError::Remote {
                source_name: self.name.clone(),
                message: "down".into(),
            });
        }
        self.inner.first_match(number, ctx).await
    }
    async fn list(&self, ids: &[String], ctx: &QueryContext) -> Result<Vec<Contact>, SourceError> {
        self.inner.list(ids, ctx).await
    }
}

fn config(name: &str) -> SourceConfig {
    SourceConfig {
        searched_columns: vec!["fn".into(), "ln".into()],
        first_matched_columns: vec!["num".into()],
        unique_column: Some("id".into()),
        format_columns: FormatColumns::new([
            ("name", "{fn} {ln}"),
            ("number", "{num}"),
            ("reverse", "{fn} {ln}"),
        ]),
        ..SourceConfig::named(name)
    }
}

fn memory(name: &str, rows: &[[&str; 4]]) -> MemorySource {
    MemorySource::from_records(
        config(name),
        NumberPlan::with_country_code("33"),
        rows.iter()
            .map(|[id, f, l, n]| [("id", *id), ("fn", *f), ("ln", *l), ("num", *n)]),
    )
}

fn slow(name: &str, delay_ms: u64, fail: bool, rows: &[[&str; 4]]) -> Arc<Slow> {
    Arc::new(Slow {
        name: name.into(),
        delay: Duration::from_millis(delay_ms),
        inner: memory(name, rows),
        fail,
    })
}

fn display() -> Display {
    Display::new(vec![
        Column::new("Name", ColumnType::Name, "name"),
        Column::new("Number", ColumnType::Number, "number"),
        Column::new("Location", ColumnType::Other("location".into()), "country")
            .with_default("Canada"),
    ])
}

fn directory(sources: Vec<Arc<dyn Source>>, profile: Profile) -> Directory {
    let mut directory = Directory::new();
    for source in sources {
        directory.add_source(source);
    }
    directory.add_display("default", display());
    directory.add_profile("default", profile).unwrap();
    directory
}

fn names(result: &pbxkit_directory::lookup::LookupResult) -> Vec<String> {
    result
        .rows
        .iter()
        .map(|r| r.values[0].clone().unwrap_or_default())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn late_sources_are_dropped_and_failures_reported() {
    let fast = slow("fast", 10, false, &[["1", "Alice", "Abrams", "1001"]]);
    let late = slow("late", 800, false, &[["1", "Alicia", "Late", "1002"]]);
    let broken = slow("broken", 0, true, &[]);
    let mut profile = Profile::new(["late", "fast", "broken"], "default");
    profile.timeout = Some(Duration::from_millis(500));
    let directory = directory(vec![fast, late, broken], profile);

    let started = tokio::time::Instant::now();
    let result = directory
        .lookup("default", "ali", &QueryContext::default())
        .await
        .unwrap();
    assert_eq!(started.elapsed(), Duration::from_millis(500));
    assert_eq!(names(&result), ["Alice Abrams"]);
    assert_eq!(result.timed_out, ["late"]);
    assert_eq!(result.failed.len(), 1);
    assert_eq!(result.failed[0].0, "broken");
    assert_eq!(result.rows[0].values[2].as_deref(), Some("Canada"));
    assert_eq!(result.headers[1].kind, Some(ColumnType::Number));
}

#[tokio::test(start_paused = true)]
async fn without_deadline_every_source_is_awaited_in_profile_order() {
    let a = slow("a", 300, false, &[["1", "Bob", "Zed", "1001"]]);
    let b = slow("b", 10, false, &[["1", "Bob", "Abel", "1002"]]);
    let directory = directory(vec![a, b], Profile::new(["a", "b"], "default"));
    let result = directory
        .lookup("default", "BOB", &QueryContext::default())
        .await
        .unwrap();
    assert_eq!(names(&result), ["Bob Zed", "Bob Abel"]);
    assert!(result.timed_out.is_empty());
}

#[tokio::test(start_paused = true)]
async fn results_are_deduplicated() {
    let rows = [
        ["1", "Carl", "Dup", "1003"],
        ["1", "Carl", "Dup", "1003"],
        ["2", "Carl", "Dup", "1003"],
        ["3", "Carl", "Other", "1004"],
    ];
    let a = Arc::new(memory("a", &rows));
    let b = Arc::new(memory("b", &rows));
    let directory = directory(vec![a, b], Profile::new(["a", "b"], "default"));
    let result = directory
        .lookup("default", "carl", &QueryContext::default())
        .await
        .unwrap();
    // Same (source, id) once; identical displayed values once across sources.
    assert_eq!(names(&result), ["Carl Dup", "Carl Other"]);
    assert_eq!(result.rows[0].contact.source.as_ref(), "a");
}

#[tokio::test(start_paused = true)]
async fn reverse_lookup_returns_the_first_non_empty_answer_in_source_order() {
    // "first" answers late but before the deadline: it wins over the faster "second".
    let first = slow(
        "first",
        300,
        false,
        &[["1", "Alice", "First", "+33 1 23 45 67 89"]],
    );
    let second = slow(
        "second",
        10,
        false,
        &[["1", "Alice", "Second", "0123456789"]],
    );
    let empty = slow("empty", 0, false, &[]);
    let directory = directory(
        vec![first, second, empty],
        Profile::new(["empty", "first", "second"], "default"),
    );
    let ctx = QueryContext::default();
    let started = tokio::time::Instant::now();
    let found = directory
        .reverse("default", "01.23.45.67.89", &ctx)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.get("reverse"), Some("Alice First"));
    assert_eq!(started.elapsed(), Duration::from_millis(300));
    assert!(
        directory
            .reverse("default", "999", &ctx)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test(start_paused = true)]
async fn reverse_lookup_deadline_skips_slow_sources() {
    let stuck = slow("stuck", 5_000, false, &[["1", "Never", "Seen", "1001"]]);
    let failing = slow("failing", 0, true, &[]);
    let later = slow("later", 20, false, &[["1", "Bob", "Later", "1001"]]);
    let directory = directory(
        vec![stuck, failing, later],
        Profile::new(["stuck", "failing", "later"], "default"),
    );
    let started = tokio::time::Instant::now();
    let found = directory
        .reverse("default", "1001", &QueryContext::default())
        .await
        .unwrap();
    // The 1 s default deadline, then the first answer that came.
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    assert_eq!(found.unwrap().get("name"), Some("Bob Later"));
}

#[tokio::test(start_paused = true)]
async fn favorites_and_personal_contacts() {
    let internal = Arc::new(memory(
        "internal",
        &[
            ["7", "Alice", "Abrams", "1001"],
            ["8", "Bob", "Benito", "1002"],
        ],
    ));
    let personal = Arc::new(PersonalContacts::new(
        SourceConfig {
            format_columns: FormatColumns::new([("name", "{firstname} {lastname}")]),
            ..SourceConfig::named("personal")
        },
        NumberPlan::with_country_code("33"),
        100,
    ));
    personal
        .import_csv(
            "u1",
            b"firstname,lastname,number\nZoe,Perso,06 11 22 33 44\n",
        )
        .unwrap();
    let mut directory = Directory::new();
    directory.add_source(internal);
    directory.add_personal_source(personal.clone());
    directory.add_display("default", display());
    directory
        .add_profile("default", Profile::new(["internal", "personal"], "default"))
        .unwrap();
    directory.set_favorite("u1", "internal", "8", true).unwrap();

    let u1 = QueryContext::user("u1");
    let result = directory.lookup("default", "o", &u1).await.unwrap();
    assert_eq!(names(&result), ["Bob Benito", "Zoe Perso"]);
    assert_eq!(
        result
            .rows
            .iter()
            .map(|r| (r.favorite, r.personal))
            .collect::<Vec<_>>(),
        [(true, false), (false, true)]
    );
    // Another user sees no personal contact of u1 and no favorite.
    let u2 = QueryContext::user("u2");
    let result = directory.lookup("default", "o", &u2).await.unwrap();
    assert_eq!(names(&result), ["Bob Benito"]);
    assert!(!result.rows[0].favorite);

    let favorites = directory.favorites("default", &u1).await.unwrap();
    assert_eq!(names(&favorites), ["Bob Benito"]);
    directory
        .set_favorite("u1", "internal", "8", false)
        .unwrap();
    assert!(
        directory
            .favorites("default", &u1)
            .await
            .unwrap()
            .rows
            .is_empty()
    );

    let found = directory
        .reverse("default", "+33611223344", &u1)
        .await
        .unwrap();
    assert_eq!(found.unwrap().get("name"), Some("Zoe Perso"));
    assert!(
        directory
            .reverse("default", "+33611223344", &u2)
            .await
            .unwrap()
            .is_none()
    );
}

#[test]
fn configuration_errors_name_profile_and_culprit() {
    let mut directory = Directory::new();
    directory.add_source(Arc::new(memory("a", &[])));
    directory.add_display("default", display());
    assert_eq!(
        directory.add_profile("p", Profile::new(["a", "nope"], "default")),
        Err(LookupError::UnknownSource {
            profile: "p".into(),
            source_name: "nope".into()
        })
    );
    assert_eq!(
        directory.add_profile("p", Profile::new(["a"], "missing")),
        Err(LookupError::UnknownDisplay {
            profile: "p".into(),
            display: "missing".into()
        })
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let err = runtime
        .block_on(directory.lookup("p", "x", &QueryContext::default()))
        .unwrap_err();
    assert_eq!(
        err,
        LookupError::UnknownProfile {
            profile: "p".into()
        }
    );
}
