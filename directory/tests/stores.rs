//! The durable stores over real files: personal contacts, phonebooks and favorites
//! survive a reopen, ignore a torn temporary file, report a corrupt file with its place,
//! and refuse a change they could not save.
#![cfg(feature = "tokio")]
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use pbxkit_directory::format::FormatColumns;
use pbxkit_directory::personal::{PersonalError, UserContacts};
use pbxkit_directory::phonebook::PhonebookError;
use pbxkit_directory::{
    Favorites, NumberPlan, PersonalContacts, PersonalFiles, PersonalStorage, PhonebookFiles,
    PhonebookSource, Phonebooks, QueryContext, Source, SourceConfig, SourceError, StoreError,
};

/// A directory under the system's temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "pbxkit-directory-stores-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        Self(path)
    }

    /// The only document (`*.json`) in the directory.
    fn document(&self) -> PathBuf {
        let mut found: Vec<PathBuf> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        assert_eq!(found.len(), 1, "{found:?}");
        found.pop().unwrap()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn fields(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn personal_config() -> SourceConfig {
    SourceConfig {
        format_columns: FormatColumns::new([("name", "{firstname} {lastname}")]),
        ..SourceConfig::named("personal")
    }
}

fn open_personal(dir: &Path) -> Result<PersonalContacts, StoreError> {
    PersonalContacts::open(
        personal_config(),
        NumberPlan::with_country_code("33"),
        100,
        Box::new(PersonalFiles::open(dir)?),
    )
}

fn names(contacts: &[pbxkit_directory::Contact]) -> Vec<&str> {
    contacts.iter().filter_map(|c| c.get("name")).collect()
}

#[tokio::test]
async fn personal_contacts_survive_a_reopen() {
    let dir = TempDir::new("personal");
    let store = open_personal(&dir.0).unwrap();
    let alice = |s: &PersonalContacts| s.list("alice");
    let first = store
        .create(
            "alice",
            fields(&[("firstname", "Hélène"), ("lastname", "Dubois")]),
        )
        .unwrap();
    let second = store
        .create(
            "alice",
            fields(&[("firstname", "Bob"), ("number", "06 11 22 33 44")]),
        )
        .unwrap();
    store
        .create(
            "bob",
            fields(&[("firstname", "Zoé"), ("lastname", "Bob's")]),
        )
        .unwrap();
    store
        .update(
            "alice",
            second.id.as_deref().unwrap(),
            fields(&[("firstname", "Bobby"), ("number", "06 11 22 33 44")]),
        )
        .unwrap();
    store.delete("alice", first.id.as_deref().unwrap()).unwrap();
    let report = store
        .import_csv("carol", b"firstname,lastname\nCarol,Ceres\n,\n")
        .unwrap();
    assert_eq!((report.created.len(), report.failed.len()), (1, 1));

    // A new store over the same directory sees exactly what was written.
    let reopened = open_personal(&dir.0).unwrap();
    for user in ["alice", "bob", "carol", "nobody"] {
        assert_eq!(reopened.list(user), store.list(user), "{user}");
    }
    assert_eq!(names(&alice(&reopened)), ["Bobby"]);
    let found = reopened
        .first_match("+33611223344", &QueryContext::user("alice"))
        .await
        .unwrap();
    assert_eq!(found.and_then(|c| c.id), second.id);

    // Ids are never reused, even after the newest contact was deleted and a reopen.
    reopened
        .delete("alice", second.id.as_deref().unwrap())
        .unwrap();
    let reopened = open_personal(&dir.0).unwrap();
    let third = reopened
        .create("alice", fields(&[("firstname", "Third")]))
        .unwrap();
    assert_eq!(third.id.as_deref(), Some("3"));
    reopened.delete_all("bob").unwrap();
    let reopened = open_personal(&dir.0).unwrap();
    assert!(reopened.list("bob").is_empty());
    assert_eq!(names(&reopened.list("alice")), ["Third"]);
}

#[test]
fn a_torn_temporary_file_is_ignored_and_a_corrupt_file_is_named() {
    let dir = TempDir::new("torn");
    let store = open_personal(&dir.0).unwrap();
    store
        .create("alice", fields(&[("firstname", "Alice")]))
        .unwrap();
    let document = dir.document();

    // A crash while writing leaves `<file>.tmp` half written (and a crash during a
    // first save leaves only a temporary file): both are ignored.
    let mut tmp = document.clone().into_os_string();
    tmp.push(".tmp");
    std::fs::write(&tmp, b"{\"user\": \"alice\", \"next_id\": 7, \"conta").unwrap();
    std::fs::write(dir.0.join("knew-user.json.tmp"), b"{\"us").unwrap();
    let reopened = open_personal(&dir.0).unwrap();
    assert_eq!(names(&reopened.list("alice")), ["Alice"]);
    assert!(reopened.list("new-user").is_empty());
    // The next write replaces the torn file.
    reopened
        .create("alice", fields(&[("firstname", "Again")]))
        .unwrap();
    assert_eq!(
        names(&open_personal(&dir.0).unwrap().list("alice")),
        ["Alice", "Again"]
    );

    // A document torn in place (not through our writes) is an error naming the file
    // and the place, never an empty book.
    std::fs::write(&document, b"{\n  \"user\": \"alice\",\n  \"next_id\": }").unwrap();
    match open_personal(&dir.0) {
        Err(StoreError::Corrupt {
            path, line, column, ..
        }) => {
            assert_eq!(path, document);
            assert_eq!((line, column), (3, 14));
        }
        other => panic!("{other:?}"),
    }
    let error = open_personal(&dir.0).err().unwrap();
    assert!(
        error
            .to_string()
            .starts_with(&format!("{}:3:14:", document.display())),
        "{error}"
    );
}

/// A storage in memory whose saves fail on demand; clones share it.
#[derive(Debug, Default, Clone)]
struct Flaky {
    fail: Arc<AtomicBool>,
    saved: Arc<std::sync::Mutex<Vec<UserContacts>>>,
}

impl PersonalStorage for Flaky {
    fn load(&self) -> Result<Vec<UserContacts>, StoreError> {
        Ok(self.saved.lock().unwrap().clone())
    }

    fn save(&self, contacts: &UserContacts) -> Result<(), StoreError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(StoreError::Io {
                path: "/full".into(),
                operation: "write",
                kind: std::io::ErrorKind::StorageFull,
                message: "no space left".into(),
            });
        }
        let mut saved = self.saved.lock().unwrap();
        saved.retain(|c| c.user != contacts.user);
        saved.push(contacts.clone());
        Ok(())
    }
}

#[test]
fn a_change_that_cannot_be_saved_changes_nothing() {
    let storage = Flaky::default();
    let store = PersonalContacts::open(
        personal_config(),
        NumberPlan::default(),
        10,
        Box::new(storage.clone()),
    )
    .unwrap();
    let kept = store.create("u", fields(&[("firstname", "Kept")])).unwrap();
    storage.fail.store(true, Ordering::SeqCst);
    assert!(matches!(
        store.create("u", fields(&[("firstname", "Lost")])),
        Err(PersonalError::Storage(StoreError::Io { .. }))
    ));
    assert!(matches!(
        store.delete("u", kept.id.as_deref().unwrap()),
        Err(PersonalError::Storage(_))
    ));
    assert!(store.import_csv("u", b"firstname\nLost\n").is_err());
    assert_eq!(names(&store.list("u")), ["Kept"]);
    // What the storage holds is what the store shows.
    storage.fail.store(false, Ordering::SeqCst);
    let reopened = PersonalContacts::open(
        personal_config(),
        NumberPlan::default(),
        10,
        Box::new(storage.clone()),
    )
    .unwrap();
    assert_eq!(reopened.list("u"), store.list("u"));
}

fn phonebook_source(phonebooks: &Arc<Phonebooks>, book: &str) -> PhonebookSource {
    PhonebookSource::new(
        Arc::clone(phonebooks),
        book,
        SourceConfig {
            searched_columns: vec!["firstname".into(), "lastname".into(), "company".into()],
            first_matched_columns: vec!["number".into()],
            format_columns: FormatColumns::new([("name", "{firstname} {lastname}")]),
            ..SourceConfig::named("phonebook")
        },
        NumberPlan::with_country_code("33"),
    )
}

fn open_phonebooks(dir: &Path) -> Result<Phonebooks, StoreError> {
    Phonebooks::open(1000, Box::new(PhonebookFiles::open(dir)?))
}

async fn search(source: &dyn Source, term: &str) -> Vec<String> {
    source
        .search(term, &QueryContext::default())
        .await
        .unwrap()
        .into_iter()
        .filter_map(|c| c.get("name").map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn phonebooks_crud_search_and_reopen() {
    let dir = TempDir::new("phonebook");
    let phonebooks = Arc::new(open_phonebooks(&dir.0).unwrap());
    phonebooks.create_phonebook("main", "Company").unwrap();
    phonebooks.create_phonebook("sales", "").unwrap();
    assert_eq!(
        phonebooks.create_phonebook("main", ""),
        Err(PhonebookError::Exists {
            name: "main".into()
        })
    );
    assert_eq!(
        phonebooks.create_phonebook("  ", ""),
        Err(PhonebookError::BlankName)
    );
    let main = phonebook_source(&phonebooks, "main");
    let sales = phonebook_source(&phonebooks, "sales");

    let anna = phonebooks
        .create_contact(
            "main",
            fields(&[
                ("firstname", "Anna"),
                ("lastname", "Müller"),
                ("number", "01 23 45 67 89"),
                ("office", "B12"),
            ]),
        )
        .unwrap();
    assert_eq!(anna["id"], "1");
    let created = phonebooks
        .create_contacts(
            "main",
            [
                fields(&[("firstname", "Ægir"), ("lastname", "Olsen")]),
                fields(&[("firstname", "Carl"), ("company", "Acme")]),
            ],
        )
        .unwrap();
    assert_eq!(created.len(), 2);
    // All or nothing.
    assert_eq!(
        phonebooks.create_contacts("main", [fields(&[("a", "b")]), fields(&[("a", "")])]),
        Err(PhonebookError::Empty)
    );
    phonebooks
        .create_contact("sales", fields(&[("firstname", "Sam")]))
        .unwrap();
    assert_eq!(
        search(&main, "").await,
        ["Anna Müller", "Ægir Olsen", "Carl"]
    );
    assert_eq!(search(&main, "MULLER").await, ["Anna Müller"]);
    assert_eq!(search(&sales, "").await, ["Sam"]);

    // The index follows the changes.
    phonebooks
        .update_contact(
            "main",
            "3",
            fields(&[("firstname", "Carla"), ("company", "Acme")]),
        )
        .unwrap();
    phonebooks.delete_contact("main", "2").unwrap();
    assert_eq!(search(&main, "").await, ["Anna Müller", "Carla"]);
    assert_eq!(
        phonebooks.delete_contact("main", "2"),
        Err(PhonebookError::NotFound {
            phonebook: "main".into(),
            id: "2".into()
        })
    );
    let ctx = QueryContext::default();
    let caller = main.first_match("+33123456789", &ctx).await.unwrap();
    assert_eq!(caller.unwrap().get("office"), Some("B12"));
    let listed = main.list(&["3".into(), "9".into(), "1".into()], &ctx).await;
    assert_eq!(names(&listed.unwrap()), ["Carla", "Anna Müller"]);
    phonebooks
        .describe_phonebook("sales", "Sales team")
        .unwrap();

    // Reopened from disk: the same phonebooks and contacts; ids go on.
    let reopened = Arc::new(open_phonebooks(&dir.0).unwrap());
    assert_eq!(reopened.list(), phonebooks.list());
    assert_eq!(
        reopened
            .list()
            .iter()
            .map(|p| (p.name.as_str(), p.description.as_str(), p.contacts))
            .collect::<Vec<_>>(),
        [("main", "Company", 2), ("sales", "Sales team", 1)]
    );
    assert_eq!(reopened.contacts("main"), phonebooks.contacts("main"));
    assert_eq!(reopened.contact("main", "1").unwrap()["lastname"], "Müller");
    let next = reopened
        .create_contact("main", fields(&[("firstname", "Dora")]))
        .unwrap();
    assert_eq!(next["id"], "4");

    // A deleted phonebook is gone from disk, and its source fails.
    reopened.delete_phonebook("sales").unwrap();
    let reopened = Arc::new(open_phonebooks(&dir.0).unwrap());
    assert_eq!(reopened.list().len(), 1);
    let gone = phonebook_source(&reopened, "sales");
    assert!(matches!(
        gone.search("", &ctx).await,
        Err(SourceError::Data { .. })
    ));
    assert_eq!(
        reopened.create_contact("sales", fields(&[("a", "b")])),
        Err(PhonebookError::UnknownPhonebook {
            name: "sales".into()
        })
    );
}

#[test]
fn a_corrupt_phonebook_is_named_and_a_torn_one_ignored() {
    let dir = TempDir::new("phonebook-corrupt");
    let phonebooks = open_phonebooks(&dir.0).unwrap();
    phonebooks.create_phonebook("main", "").unwrap();
    let document = dir.document();
    let mut tmp = document.clone().into_os_string();
    tmp.push(".tmp");
    std::fs::write(&tmp, b"{\"name\": \"main\", \"contacts\": {\"1\"").unwrap();
    assert_eq!(open_phonebooks(&dir.0).unwrap().list().len(), 1);
    std::fs::write(&document, b"[]").unwrap();
    let error = open_phonebooks(&dir.0).err().unwrap();
    assert!(
        matches!(&error, StoreError::Corrupt { line: 1, .. }),
        "{error:?}"
    );
    assert_eq!(error.path(), document);
}

#[tokio::test]
async fn favorites_survive_a_reopen() {
    let dir = TempDir::new("favorites");
    let favorites = Favorites::open(&dir.0, 2).unwrap();
    assert!(favorites.set("u1", "main", "1", true).unwrap());
    assert!(!favorites.set("u1", "main", "1", true).unwrap());
    assert!(favorites.set("u1", "csv", "7", true).unwrap());
    assert!(favorites.set("u2", "main", "1", true).unwrap());
    assert!(matches!(
        favorites.set("u1", "csv", "8", true),
        Err(pbxkit_directory::favorites::FavoriteError::Limit { limit: 2 })
    ));
    let reopened = Favorites::open(&dir.0, 2).unwrap();
    assert_eq!(
        reopened.list("u1"),
        [("csv".into(), "7".into()), ("main".into(), "1".into())]
    );
    assert!(reopened.contains("u2", "main", "1"));
    assert!(!reopened.contains("u2", "csv", "7"));
    assert!(reopened.set("u2", "main", "1", false).unwrap());
    assert!(!reopened.set("u2", "main", "1", false).unwrap());
    let reopened = Favorites::open(&dir.0, 2).unwrap();
    assert!(reopened.list("u2").is_empty());
    assert_eq!(reopened.list("u1").len(), 2);
}
