//! Case- and accent-insensitive search in every source that searches its own data:
//! CSV, memory, personal contacts and phonebooks.
#![cfg(feature = "tokio")]
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::collections::BTreeMap;
use std::sync::Arc;

use pbxkit_directory::{
    CsvConfig, CsvSource, MemorySource, NumberPlan, PersonalContacts, PhonebookSource, Phonebooks,
    QueryContext, Source, SourceConfig,
};

const PEOPLE: [[&str; 2]; 5] = [
    ["Hélène", "Dubois"],
    ["Jürgen", "Müller"],
    ["Ægir", "Þórsson"],
    ["Łukasz", "Straße"],
    ["Bob", "Plain"],
];

fn config(name: &str) -> SourceConfig {
    SourceConfig {
        searched_columns: vec!["firstname".into(), "lastname".into()],
        unique_column: Some("id".into()),
        ..SourceConfig::named(name)
    }
}

fn records() -> impl Iterator<Item = BTreeMap<String, String>> {
    PEOPLE.iter().enumerate().map(|(i, [first, last])| {
        BTreeMap::from([
            ("id".to_owned(), (i + 1).to_string()),
            ("firstname".to_owned(), (*first).to_owned()),
            ("lastname".to_owned(), (*last).to_owned()),
        ])
    })
}

/// The four sources, each holding `PEOPLE`, and the context to query them with.
fn sources() -> (Vec<Arc<dyn Source>>, QueryContext, tempfile_guard::Guard) {
    let memory = MemorySource::new(config("memory"), NumberPlan::default(), records());

    let guard = tempfile_guard::Guard::new("folding.csv");
    let mut csv = String::from("id,firstname,lastname\n");
    for record in records() {
        csv.push_str(&format!(
            "{},{},{}\n",
            record["id"], record["firstname"], record["lastname"]
        ));
    }
    std::fs::write(&guard.0, csv).unwrap();
    let csv = CsvSource::new(
        CsvConfig {
            source: config("csv"),
            file: guard.0.clone(),
            delimiter: ',',
        },
        NumberPlan::default(),
    )
    .unwrap();

    let personal = PersonalContacts::new(config("personal"), NumberPlan::default(), 100);
    let phonebooks = Arc::new(Phonebooks::new(100));
    phonebooks.create_phonebook("main", "").unwrap();
    for mut record in records() {
        record.remove("id");
        personal.create("u", record.clone()).unwrap();
        phonebooks.create_contact("main", record).unwrap();
    }
    let phonebook = PhonebookSource::new(
        phonebooks,
        "main",
        config("phonebook"),
        NumberPlan::default(),
    );
    (
        vec![
            Arc::new(memory),
            Arc::new(csv),
            Arc::new(personal),
            Arc::new(phonebook),
        ],
        QueryContext::user("u"),
        guard,
    )
}

mod tempfile_guard {
    /// A file under the temporary directory, removed when dropped.
    pub(crate) struct Guard(pub(crate) std::path::PathBuf);

    impl Guard {
        pub(crate) fn new(name: &str) -> Self {
            Self(
                std::env::temp_dir()
                    .join(format!("pbxkit-directory-{}-{name}", std::process::id())),
            )
        }
    }

    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

#[tokio::test]
async fn search_ignores_case_and_accents_in_every_source() {
    let (sources, ctx, _guard) = sources();
    let cases: &[(&str, &[&str])] = &[
        ("helene", &["Hélène"]),
        ("HELENE", &["Hélène"]),
        ("HÉLÈNE", &["Hélène"]),
        ("hélène", &["Hélène"]),
        ("muller", &["Jürgen"]),
        ("MÜLLER", &["Jürgen"]),
        ("jurgen", &["Jürgen"]),
        ("aegir", &["Ægir"]),
        ("thorsson", &["Ægir"]),
        ("lukasz", &["Łukasz"]),
        ("strasse", &["Łukasz"]),
        ("  Dubois ", &["Hélène"]),
        ("ll", &["Jürgen"]),
        ("e", &["Hélène", "Jürgen", "Ægir", "Łukasz"]),
        // An accent in the term is folded too.
        ("ö", &["Hélène", "Ægir", "Bob"]),
        ("zz", &[]),
    ];
    for source in &sources {
        for (term, expected) in cases {
            let found: Vec<String> = source
                .search(term, &ctx)
                .await
                .unwrap()
                .iter()
                .filter_map(|c| c.get("firstname").map(str::to_owned))
                .collect();
            assert_eq!(&found, expected, "{} {term:?}", source.name());
        }
    }
}
