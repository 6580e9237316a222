//! [`LdapSource`] against a real OpenLDAP server: each test writes a `slapd.conf`
//! (mdb back-end, suffix `dc=pbxkit,dc=test`) in its own temporary directory, loads
//! 1,000 generated people with `slapadd`, starts `slapd -d 0` (foreground) on a free
//! loopback port and stops it by PID when done, also on failure.
//!
//! Skipped, with a `SKIPPED: slapd not installed` message, when `/usr/sbin/slapd` is
//! absent (Debian packages `slapd` and `ldap-utils`).
#![cfg(feature = "tokio")]
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::fmt::Write as _;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pbxkit_directory::format::FormatColumns;
use pbxkit_directory::ldap_source::UniqueColumnFormat;
use pbxkit_directory::lookup::{Column, ColumnType, Display, Profile};
use pbxkit_directory::{
    Directory, LdapConfig, LdapSource, MemorySource, NumberPlan, QueryContext, Source,
    SourceConfig, SourceError,
};

const SLAPD: &str = "/usr/sbin/slapd";
const SLAPADD: &str = "/usr/sbin/slapadd";
const SUFFIX: &str = "dc=pbxkit,dc=test";
const ROOT_DN: &str = "cn=admin,dc=pbxkit,dc=test";
const ROOT_PW: &str = "secret";
const PEOPLE: usize = 1000;
const GIVEN: [&str; 20] = [
    "Alice", "Bruno", "Chloé", "David", "Emma", "Fabrice", "Gaëlle", "Hugo", "Inès", "Jules",
    "Karim", "Léa", "Marc", "Nina", "Olivier", "Paula", "Quentin", "Rose", "Sami", "Tina",
];

/// The generated person `i`: `(given name, surname, telephoneNumber, mobile)`.
fn person(i: usize) -> (&'static str, String, String, String) {
    (
        GIVEN[i % GIVEN.len()],
        format!("Surname{i:03}"),
        format!("+33 1 23 45 {:02} {:02}", i / 100, i % 100),
        format!("06 12 34 {:02} {:02}", i / 100, i % 100),
    )
}

/// An LDIF value line, base64 (`attr:: …`) when it is not plain ASCII.
fn ldif_line(out: &mut String, attribute: &str, value: &str) {
    if value.is_ascii() {
        let _ = writeln!(out, "{attribute}: {value}");
    } else {
        let _ = writeln!(out, "{attribute}:: {}", base64(value.as_bytes()));
    }
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (k, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if k <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn people_ldif() -> String {
    let mut out = format!(
        "dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: pbxkit\ndc: pbxkit\n\n\
         dn: ou=people,{SUFFIX}\nobjectClass: organizationalUnit\nou: people\n\n"
    );
    for i in 0..PEOPLE {
        let (given, sn, phone, mobile) = person(i);
        let _ = writeln!(out, "dn: uid=p{i},ou=people,{SUFFIX}");
        out.push_str("objectClass: inetOrgPerson\n");
        let _ = writeln!(out, "uid: p{i}");
        ldif_line(&mut out, "cn", &format!("{given} {sn}"));
        ldif_line(&mut out, "givenName", given);
        let _ = writeln!(out, "sn: {sn}");
        let _ = writeln!(out, "telephoneNumber: {phone}");
        let _ = writeln!(out, "mobile: {mobile}");
        let _ = writeln!(out, "mail: p{i}@pbxkit.test\n");
    }
    out
}

/// A running slapd with its temporary directory; stopped and removed on drop.
struct Slapd {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Slapd {
    /// Writes the configuration, loads the people, starts slapd and waits (bounded)
    /// until it accepts connections. `None` when slapd is not installed.
    fn start(name: &str) -> Option<Self> {
        if !Path::new(SLAPD).exists() {
            eprintln!("SKIPPED: slapd not installed ({SLAPD} is absent)");
            return None;
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let dir = std::env::temp_dir().join(format!(
            "pbxkit-slapd-{name}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(dir.join("db")).unwrap();
        let conf = dir.join("slapd.conf");
        std::fs::write(
            &conf,
            format!(
                "include /etc/ldap/schema/core.schema\n\
                 include /etc/ldap/schema/cosine.schema\n\
                 include /etc/ldap/schema/inetorgperson.schema\n\
                 pidfile {dir}/slapd.pid\n\
                 modulepath /usr/lib/ldap\n\
                 moduleload back_mdb\n\
                 database mdb\n\
                 maxsize 67108864\n\
                 suffix \"{SUFFIX}\"\n\
                 rootdn \"{ROOT_DN}\"\n\
                 rootpw {ROOT_PW}\n\
                 directory {dir}/db\n",
                dir = dir.display()
            ),
        )
        .unwrap();
        let ldif = dir.join("people.ldif");
        std::fs::write(&ldif, people_ldif()).unwrap();
        let output = Command::new(SLAPADD)
            .arg("-q")
            .arg("-f")
            .arg(&conf)
            .arg("-l")
            .arg(&ldif)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "slapadd: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        // A free port can be taken between the probe and slapd's bind: retry.
        let mut last_log = String::new();
        for _ in 0..3 {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let log = std::fs::File::create(dir.join("slapd.log")).unwrap();
            let mut child = Command::new(SLAPD)
                .arg("-f")
                .arg(&conf)
                .arg("-h")
                .arg(format!("ldap://127.0.0.1:{port}/"))
                .args(["-d", "0"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    // Another test's slapd may hold the same port (both probed it
                    // free): ours then exits on its failed bind. Only a slapd still
                    // running a moment after the port answers is ours.
                    std::thread::sleep(Duration::from_millis(200));
                    if child.try_wait().unwrap().is_none() {
                        return Some(Slapd { child, dir, port });
                    }
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
            last_log = std::fs::read_to_string(dir.join("slapd.log")).unwrap_or_default();
        }
        let _ = std::fs::remove_dir_all(&dir);
        panic!("slapd did not start: {last_log}");
    }

    fn uri(&self) -> String {
        format!("ldap://127.0.0.1:{}/", self.port)
    }

    fn signal(&self, signal: &str) {
        assert!(kill(signal, self.child.id()), "kill -s {signal}");
        if signal == "STOP" {
            // kill(2) returns before every thread has stopped: a worker already
            // running could still answer. Wait (bounded) until the kernel reports
            // the process stopped ('T' in /proc/PID/stat).
            let stat = format!("/proc/{}/stat", self.child.id());
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let text = std::fs::read_to_string(&stat).unwrap_or_default();
                let state = text
                    .rsplit(')')
                    .next()
                    .and_then(|rest| rest.split_whitespace().next());
                if state == Some("T") || Instant::now() > deadline {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

/// `kill -SIGNAL pid` with the shell's builtin (no dependency on procps).
/// Whether it succeeded.
fn kill(signal: &str, pid: u32) -> bool {
    Command::new("/bin/sh")
        .args(["-c", "kill -s \"$0\" \"$1\""])
        .arg(signal)
        .arg(pid.to_string())
        .status()
        .is_ok_and(|status| status.success())
}

impl Drop for Slapd {
    fn drop(&mut self) {
        // Resume it first, should a test have failed while it was stopped.
        let _ = kill("CONT", self.child.id());
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn config(slapd: &Slapd) -> LdapConfig {
    LdapConfig {
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
        uri: slapd.uri(),
        base_dn: format!("ou=people,{SUFFIX}"),
        bind_dn: Some(ROOT_DN.into()),
        bind_password: Some(ROOT_PW.into()),
        ..LdapConfig::default()
    }
}

fn source(config: LdapConfig) -> LdapSource {
    LdapSource::new(config, NumberPlan::with_country_code("33")).unwrap()
}

#[tokio::test]
async fn search_reverse_and_list() {
    let Some(slapd) = Slapd::start("search") else {
        return;
    };
    let ctx = QueryContext::default();
    let ldap = source(config(&slapd));

    // Substring search, case-insensitive, on any searched column.
    let found = ldap.search("name042", &ctx).await.unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].get("name"), Some("Chloé Surname042"));
    assert_eq!(found[0].get("number"), Some("+33 1 23 45 00 42"));
    assert_eq!(found[0].source.as_ref(), "ldap");
    let alice = ldap.search("  aLiCe ", &ctx).await.unwrap();
    assert_eq!(alice.len(), PEOPLE / GIVEN.len());
    assert!(alice.iter().all(|c| c.get("givenName") == Some("Alice")));
    let chloe = ldap.search("chloé", &ctx).await.unwrap();
    assert_eq!(chloe.len(), PEOPLE / GIVEN.len());

    // The term is escaped: filter syntax matches literally, and nothing has it.
    for term in ["*)(uid=*", "*", ")(", "\\", "*)(|(cn=*"] {
        assert_eq!(ldap.search(term, &ctx).await.unwrap(), [], "{term:?}");
    }

    // Reverse lookup: the number as the caller ID shows it, in any spelling.
    for number in [
        "+33 1 23 45 00 42",
        "+33123450042",
        "0123450042",
        "01 23 45 00 42",
        "0033 1 23 45 00 42",
        "+33 (0)1 23 45 00 42",
        "+33612340042",
        "06.12.34.00.42",
    ] {
        let hit = ldap.first_match(number, &ctx).await.unwrap();
        assert_eq!(
            hit.as_ref().and_then(|c| c.get("sn")),
            Some("Surname042"),
            "{number}"
        );
    }
    for number in [
        "+33 1 23 45 99 99",
        "1001",
        "",
        "*)(uid=*",
        "+44 1 23 45 00 42",
    ] {
        assert_eq!(
            ldap.first_match(number, &ctx).await.unwrap(),
            None,
            "{number}"
        );
    }

    // Listing by unique column (entryUUID), in the order asked, unknown ids ignored.
    let ids: Vec<String> = ldap
        .search("Surname01", &ctx)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|c| c.id)
        .take(3)
        .collect();
    assert_eq!(ids.len(), 3);
    let mut asked = vec![
        ids[2].clone(),
        "00000000-0000-0000-0000-000000000000".into(),
    ];
    asked.extend(ids[..2].iter().cloned());
    let listed = ldap.list(&asked, &ctx).await.unwrap();
    let listed_ids: Vec<_> = listed.iter().filter_map(|c| c.id.clone()).collect();
    assert_eq!(listed_ids, [ids[2].clone(), ids[0].clone(), ids[1].clone()]);
    assert_eq!(ldap.list(&[], &ctx).await.unwrap(), []);

    // With the binary format, a textual unique column (OpenLDAP's entryUUID) is kept.
    let binary = source(LdapConfig {
        unique_column_format: UniqueColumnFormat::BinaryUuid,
        ..config(&slapd)
    });
    let found = binary.search("Surname01", &ctx).await.unwrap();
    let found_ids: Vec<_> = found.into_iter().filter_map(|c| c.id).take(3).collect();
    assert_eq!(found_ids, ids);

    // Custom filter ANDed with the generated one, `%Q` the escaped term.
    let custom = source(LdapConfig {
        custom_filter: Some("(|(givenName=Bruno)(mail=%Q@pbxkit.test))".into()),
        ..config(&slapd)
    });
    let found = custom.search("surname00", &ctx).await.unwrap();
    let mut names: Vec<_> = found.iter().filter_map(|c| c.get("sn")).collect();
    names.sort_unstable();
    assert_eq!(names, ["Surname001"]);

    // A size limit returns what the server sent before the limit.
    let limited = source(LdapConfig {
        size_limit: 10,
        ..config(&slapd)
    });
    assert_eq!(limited.search("surname", &ctx).await.unwrap().len(), 10);

    // Wrong credentials and a missing base are errors, not empty answers.
    let bad_password = source(LdapConfig {
        bind_password: Some("wrong".into()),
        ..config(&slapd)
    });
    let error = bad_password.search("alice", &ctx).await.unwrap_err();
    assert!(matches!(error, SourceError::Remote { .. }), "{error}");
    let bad_base = source(LdapConfig {
        base_dn: format!("ou=nobody,{SUFFIX}"),
        ..config(&slapd)
    });
    assert!(bad_base.search("alice", &ctx).await.is_err());

    // The whole directory over the LDAP source.
    let mut directory = Directory::new();
    directory.add_source(Arc::new(ldap));
    directory.add_display(
        "default",
        Display::new(vec![
            Column::new("Name", ColumnType::Name, "name"),
            Column::new("Number", ColumnType::Number, "number"),
        ]),
    );
    directory
        .add_profile("default", Profile::new(["ldap"], "default"))
        .unwrap();
    let result = directory.lookup("default", "name999", &ctx).await.unwrap();
    assert_eq!(
        result.rows[0].values,
        [
            Some("Tina Surname999".to_owned()),
            Some("+33 1 23 45 09 99".to_owned())
        ]
    );
    let caller = directory
        .reverse("default", "01 23 45 09 99", &ctx)
        .await
        .unwrap();
    assert_eq!(caller.unwrap().get("name"), Some("Tina Surname999"));
}

#[tokio::test]
async fn unreachable_server_fails_fast() {
    // A port nobody listens on: the connection is refused at once.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ldap = LdapSource::new(
        LdapConfig {
            source: SourceConfig {
                searched_columns: vec!["cn".into()],
                ..SourceConfig::named("ldap")
            },
            uri: format!("ldap://127.0.0.1:{port}/"),
            ..LdapConfig::default()
        },
        NumberPlan::default(),
    )
    .unwrap();
    let started = Instant::now();
    let error = ldap
        .search("alice", &QueryContext::default())
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(1), "{error}");
}

#[tokio::test]
async fn stopped_server_times_out() {
    let Some(slapd) = Slapd::start("stopped") else {
        return;
    };
    let ctx = QueryContext::default();
    let ldap = Arc::new(source(config(&slapd)));
    assert_eq!(ldap.search("name042", &ctx).await.unwrap().len(), 1);

    let phonebook = MemorySource::from_records(
        SourceConfig {
            searched_columns: vec!["name".into()],
            first_matched_columns: vec!["number".into()],
            unique_column: Some("id".into()),
            ..SourceConfig::named("phonebook")
        },
        NumberPlan::with_country_code("33"),
        [[
            ("id", "1"),
            ("name", "Reception Surname042"),
            ("number", "01 23 45 00 42"),
        ]],
    );
    let mut directory = Directory::new();
    directory.add_source(ldap.clone());
    directory.add_source(Arc::new(phonebook));
    directory.add_display(
        "default",
        Display::new(vec![Column::new("Name", ColumnType::Name, "name")]),
    );
    let deadline = Duration::from_millis(500);
    directory
        .add_profile(
            "default",
            Profile {
                timeout: Some(deadline),
                ..Profile::new(["ldap", "phonebook"], "default")
            },
        )
        .unwrap();

    // Both sources answer while slapd runs.
    let both = directory.lookup("default", "name042", &ctx).await.unwrap();
    assert_eq!(both.rows.len(), 2, "{:?}", both.rows);
    assert!(both.timed_out.is_empty());

    slapd.signal("STOP");
    // The kernel still accepts connections for the stopped process: only the
    // deadlines can end the query.
    let started = Instant::now();
    let result = directory.lookup("default", "name042", &ctx).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(result.timed_out, ["ldap"]);
    assert!(result.failed.is_empty(), "{:?}", result.failed);
    let names: Vec<_> = result.rows.iter().map(|r| r.values[0].clone()).collect();
    assert_eq!(names, [Some("Reception Surname042".to_owned())]);
    assert!(
        elapsed >= deadline && elapsed < deadline + Duration::from_millis(1000),
        "{elapsed:?}"
    );

    // Reverse lookup: the LDAP source comes first, so its silence is waited for up to
    // the reverse deadline (1 s), then the phonebook's answer is taken.
    let started = Instant::now();
    let caller = directory
        .reverse("default", "+33123450042", &ctx)
        .await
        .unwrap();
    assert_eq!(caller.unwrap().get("name"), Some("Reception Surname042"));
    assert!(started.elapsed() < Duration::from_millis(2000));

    // Alone, the source gives up after its operation timeout (1 s).
    let started = Instant::now();
    let error = ldap.search("alice", &ctx).await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(matches!(error, SourceError::Remote { .. }), "{error}");
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_millis(2000),
        "{elapsed:?} {error}"
    );

    // Resumed, the next query uses a new connection and works again.
    slapd.signal("CONT");
    assert_eq!(ldap.search("name042", &ctx).await.unwrap().len(), 1);
    let both = directory.lookup("default", "name042", &ctx).await.unwrap();
    assert_eq!(both.rows.len(), 2);
    drop(slapd);
}
