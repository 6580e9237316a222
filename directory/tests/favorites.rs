//! Favorites end to end through the lookup service: two sources (a CSV file and a
//! phonebook), favorites kept on disk, flagged in lookups and listed through each
//! source's `list`, the same after a restart.
#![cfg(feature = "tokio")]
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use pbxkit_directory::format::FormatColumns;
use pbxkit_directory::lookup::{Column, ColumnType, Display, LookupResult, Profile};
use pbxkit_directory::{
    CsvConfig, CsvSource, Directory, Favorites, NumberPlan, PhonebookFiles, PhonebookSource,
    Phonebooks, QueryContext, SourceConfig,
};

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "pbxkit-directory-favorites-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What the PBX does at start: opens the stores in `dir` and wires a directory with
/// the CSV source `company` and the phonebook source `phonebook`.
fn start(dir: &Path) -> (Directory, Arc<Phonebooks>) {
    let plan = NumberPlan::with_country_code("33");
    let csv = CsvSource::new(
        CsvConfig {
            source: SourceConfig {
                searched_columns: vec!["firstname".into(), "lastname".into()],
                first_matched_columns: vec!["number".into()],
                unique_column: Some("id".into()),
                format_columns: FormatColumns::new([("name", "{firstname} {lastname}")]),
                ..SourceConfig::named("company")
            },
            file: dir.join("company.csv"),
            delimiter: ',',
        },
        plan.clone(),
    )
    .unwrap();
    let phonebooks = Arc::new(
        Phonebooks::open(
            100,
            Box::new(PhonebookFiles::open(dir.join("phonebooks")).unwrap()),
        )
        .unwrap(),
    );
    let phonebook = PhonebookSource::new(
        Arc::clone(&phonebooks),
        "main",
        SourceConfig {
            format_columns: FormatColumns::new([("name", "{firstname} {lastname}")]),
            ..SourceConfig::named("phonebook")
        },
        plan,
    );
    let mut directory = Directory::new();
    directory.add_source(Arc::new(csv));
    directory.add_source(Arc::new(phonebook));
    directory.set_favorites(Arc::new(
        Favorites::open(dir.join("favorites"), 100).unwrap(),
    ));
    directory.add_display(
        "default",
        Display::new(vec![
            Column::new("Name", ColumnType::Name, "name"),
            Column::new("Number", ColumnType::Number, "number"),
        ]),
    );
    directory
        .add_profile("default", Profile::new(["company", "phonebook"], "default"))
        .unwrap();
    (directory, phonebooks)
}

fn rows(result: &LookupResult) -> Vec<(String, bool)> {
    result
        .rows
        .iter()
        .map(|r| (r.values[0].clone().unwrap_or_default(), r.favorite))
        .collect()
}

fn row(name: &str, favorite: bool) -> (String, bool) {
    (name.to_owned(), favorite)
}

#[tokio::test]
async fn favorites_across_two_sources_survive_a_restart() {
    let dir = TempDir::new("e2e");
    std::fs::write(
        dir.0.join("company.csv"),
        "id,firstname,lastname,number\n1,Alice,Abrams,1001\n2,Bob,Benito,1002\n",
    )
    .unwrap();
    let (directory, phonebooks) = start(&dir.0);
    phonebooks.create_phonebook("main", "").unwrap();
    let record = |first: &str, number: &str| {
        BTreeMap::from([
            ("firstname".to_owned(), first.to_owned()),
            ("lastname".to_owned(), "Book".to_owned()),
            ("number".to_owned(), number.to_owned()),
        ])
    };
    phonebooks
        .create_contact("main", record("Carol", "2001"))
        .unwrap();
    let dave = phonebooks
        .create_contact("main", record("Dave", "2002"))
        .unwrap();

    assert!(directory.set_favorite("u1", "company", "2", true).unwrap());
    assert!(
        directory
            .set_favorite("u1", "phonebook", &dave["id"], true)
            .unwrap()
    );
    // A favorite of another user, and one whose contact no source has.
    directory.set_favorite("u2", "company", "1", true).unwrap();
    directory.set_favorite("u1", "company", "99", true).unwrap();

    let u1 = QueryContext::user("u1");
    let found = directory.lookup("default", "", &u1).await.unwrap();
    assert_eq!(
        rows(&found),
        [
            row("Alice Abrams", false),
            row("Bob Benito", true),
            row("Carol Book", false),
            row("Dave Book", true),
        ]
    );
    let favorites = directory.favorites("default", &u1).await.unwrap();
    assert_eq!(
        rows(&favorites),
        [row("Bob Benito", true), row("Dave Book", true)]
    );
    assert!(favorites.failed.is_empty() && favorites.timed_out.is_empty());
    // No user, no favorites.
    let anonymous = directory
        .favorites("default", &QueryContext::default())
        .await
        .unwrap();
    assert!(anonymous.rows.is_empty());

    // After a restart, the same favorites from the files.
    drop(directory);
    let (directory, _) = start(&dir.0);
    let favorites = directory.favorites("default", &u1).await.unwrap();
    assert_eq!(
        rows(&favorites),
        [row("Bob Benito", true), row("Dave Book", true)]
    );
    let u2 = QueryContext::user("u2");
    let favorites = directory.favorites("default", &u2).await.unwrap();
    assert_eq!(rows(&favorites), [row("Alice Abrams", true)]);

    // Unmarked, and still unmarked after another restart.
    assert!(directory.set_favorite("u1", "company", "2", false).unwrap());
    drop(directory);
    let (directory, _) = start(&dir.0);
    let found = directory.lookup("default", "b", &u1).await.unwrap();
    assert_eq!(
        rows(&found),
        [
            row("Alice Abrams", false),
            row("Bob Benito", false),
            row("Carol Book", false),
            row("Dave Book", true),
        ]
    );
}
