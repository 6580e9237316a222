//! A phone directory over two sources: a CSV file (written to the system temp dir,
//! removed at the end) and an in-memory list of internal users, searched through one
//! [`Directory`] profile and shown with its display: a lookup by name, accents and
//! case ignored, and reverse lookups of calling numbers written in any notation.
//!
//! With the `tokio` feature and `PBXKIT_LDAP_URL` set (say `ldap://127.0.0.1:3890/`),
//! an LDAP directory is searched too, configured as in `directory/tests/slapd.rs`
//! (base `ou=people,dc=pbxkit,dc=test`, bound as `cn=admin,dc=pbxkit,dc=test`,
//! password `secret`; `PBXKIT_LDAP_BASE_DN`, `PBXKIT_LDAP_BIND_DN` and
//! `PBXKIT_LDAP_PASSWORD` override them): its rows are printed, and it must answer
//! without error. Otherwise it is skipped with a note.
//!
//! Run it with `cargo run -p pbxkit-directory --example lookup`
//! (`--features tokio` for LDAP).

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use pbxkit_directory::format::FormatColumns;
use pbxkit_directory::lookup::{Column, ColumnType, Display, LookupResult, Profile};
use pbxkit_directory::{CsvConfig, CsvSource, Directory, MemorySource, NumberPlan};
use pbxkit_directory::{QueryContext, Source, SourceConfig, Timer};

type Result<T, E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

const CSV: &str = "id,firstname,lastname,phone,company\n\
    c1,Hélène,Durand,+33 1 44 55 66 77,Acme\n\
    c2,Marc,Lefèvre,04 72 10 20 30,\n\
    c3,Henri,Hellier,+44 20 7946 0000,Globex\n";

/// The directory's deadlines run on the runtime we give it: here tokio's clock.
struct TokioSleep;

impl Timer for TokioSleep {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// The CSV file, removed when dropped (also when an assertion fails).
struct TempCsv(PathBuf);

impl Drop for TempCsv {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Both sources name their output fields alike, so that one display shows them all.
fn config(name: &str, number: &str) -> SourceConfig {
    SourceConfig {
        searched_columns: vec!["firstname".into(), "lastname".into()],
        first_matched_columns: vec![number.into()],
        unique_column: Some("id".into()),
        format_columns: FormatColumns::new([
            ("name", "{firstname} {lastname}".to_owned()),
            ("number", format!("{{{number}}}")),
        ]),
        ..SourceConfig::named(name)
    }
}

/// The LDAP source when asked for (`PBXKIT_LDAP_URL`) and built with LDAP support.
#[cfg(feature = "tokio")]
fn ldap(plan: &NumberPlan) -> Result<Option<Arc<dyn Source>>> {
    use pbxkit_directory::{LdapConfig, LdapSource};
    let Ok(uri) = std::env::var("PBXKIT_LDAP_URL") else {
        println!("note: PBXKIT_LDAP_URL is not set, the LDAP source is skipped");
        return Ok(None);
    };
    let env = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    let config = LdapConfig {
        source: SourceConfig {
            searched_columns: vec!["cn".into(), "sn".into(), "givenName".into()],
            first_matched_columns: vec!["telephoneNumber".into(), "mobile".into()],
            unique_column: Some("entryUUID".into()),
            format_columns: FormatColumns::new([
                ("name", "{givenName} {sn}"),
                ("number", "{telephoneNumber}"),
            ]),
            ..SourceConfig::named("ldap")
        },
        uri,
        base_dn: env("PBXKIT_LDAP_BASE_DN", "ou=people,dc=pbxkit,dc=test"),
        bind_dn: Some(env("PBXKIT_LDAP_BIND_DN", "cn=admin,dc=pbxkit,dc=test")),
        bind_password: Some(env("PBXKIT_LDAP_PASSWORD", "secret")),
        ..LdapConfig::default()
    };
    Ok(Some(Arc::new(LdapSource::new(config, plan.clone())?)))
}

#[cfg(not(feature = "tokio"))]
fn ldap(_plan: &NumberPlan) -> Result<Option<Arc<dyn Source>>> {
    println!("note: built without the `tokio` feature, the LDAP source is skipped");
    Ok(None)
}

/// Prints every row; returns those of the CSV and memory sources as (name, number,
/// company), to check them whatever an LDAP directory holds.
fn rows(result: &LookupResult) -> Vec<[&str; 3]> {
    let mut ours = Vec::new();
    for row in &result.rows {
        let value = |i: usize| row.values.get(i).and_then(|v| v.as_deref()).unwrap_or("");
        let [name, number, company] = [0, 1, 2].map(value);
        println!(
            "    {name:<16} {number:<18} {company:<8} ({})",
            row.contact.source
        );
        if &*row.contact.source != "ldap" {
            ours.push([name, number, company]);
        }
    }
    ours
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    // The plan makes `+33 1 44…`, `01 44…` and `0033 1 44…` the same number.
    let plan = NumberPlan::with_country_code("33");
    let file =
        TempCsv(std::env::temp_dir().join(format!("pbxkit-lookup-{}.csv", std::process::id())));
    std::fs::write(&file.0, CSV)?;
    let csv = CsvSource::new(
        CsvConfig {
            source: config("contacts", "phone"),
            file: file.0.clone(),
            delimiter: ',',
        },
        plan.clone(),
    )?;
    let users = [
        ("u1", "Hélène", "Roux", "1003"),
        ("u2", "Paul", "Martin", "1004"),
    ]
    .map(|(id, first, last, exten)| {
        [
            ("id", id),
            ("firstname", first),
            ("lastname", last),
            ("exten", exten),
        ]
    });
    let users = MemorySource::from_records(config("internal", "exten"), plan.clone(), users);

    let mut directory = Directory::with_timer(Arc::new(TokioSleep));
    directory.add_source(Arc::new(users));
    directory.add_source(Arc::new(csv));
    let mut sources = vec!["internal", "contacts"];
    if let Some(ldap) = ldap(&plan)? {
        directory.add_source(ldap);
        sources.push("ldap");
    }
    directory.add_display(
        "phone",
        Display::new(vec![
            Column::new("Name", ColumnType::Name, "name"),
            Column::new("Number", ColumnType::Number, "number"),
            // Internal users have no company: the column's default shows instead.
            Column::new("Company", ColumnType::Other("company".into()), "company")
                .with_default("-"),
        ]),
    );
    // A source that has not answered within 2 s is left out, not waited for.
    let profile = Profile {
        timeout: Some(Duration::from_secs(2)),
        ..Profile::new(sources, "phone")
    };
    directory.add_profile("switchboard", profile)?;
    let ctx = QueryContext::default();

    println!("lookup \"HEL\" (internal users first: the profile's source order)");
    let found = directory.lookup("switchboard", "HEL", &ctx).await?;
    let trouble = (&found.failed, &found.timed_out);
    assert!(trouble.0.is_empty() && trouble.1.is_empty(), "{trouble:?}");
    assert_eq!(
        rows(&found),
        [
            ["Hélène Roux", "1003", "-"],
            ["Hélène Durand", "+33 1 44 55 66 77", "Acme"],
            ["Henri Hellier", "+44 20 7946 0000", "Globex"],
        ]
    );
    let titles: Vec<&str> = found.headers.iter().map(|h| h.title.as_str()).collect();
    assert_eq!(titles, ["Name", "Number", "Company"]);

    println!("lookup \"lefevre\" (no accent typed)");
    let found = directory.lookup("switchboard", "lefevre", &ctx).await?;
    assert_eq!(rows(&found), [["Marc Lefèvre", "04 72 10 20 30", "-"]]);

    // Caller IDs as trunks and phones send them: the first source that knows wins.
    for (caller, expected) in [
        ("01 44 55 66 77", Some("Hélène Durand")),
        ("+33472102030", Some("Marc Lefèvre")),
        ("1004", Some("Paul Martin")),
        ("+33 9 99 99 99 99", None),
    ] {
        let contact = directory.reverse("switchboard", caller, &ctx).await?;
        let name = contact.as_ref().and_then(|c| c.get("name"));
        println!("reverse {caller:<18} -> {}", name.unwrap_or("unknown"));
        assert_eq!(name, expected, "{caller}");
    }
    Ok(())
}

// `cargo test` runs the example too (`test = true` in Cargo.toml): it asserts what
// it shows.
#[test]
fn runs() -> Result<()> {
    main()
}
