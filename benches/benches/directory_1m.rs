//! `pbxkit-directory` at scale: search and reverse lookup through a [`CsvSource`] of
//! 1,000,000 contacts, as the lookup service calls it (`Source::search`,
//! `Source::first_match`: a file stamp check, then the in-memory index). The file is
//! written and indexed once, outside the measurements. No peer crate does
//! wazo-dird-style lookups, so the group has pbxkit alone.
use std::future::Future;
use std::hint::black_box;
use std::io::Write;
use std::path::PathBuf;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use pbxkit_directory::format::FormatColumns;
use pbxkit_directory::{CsvConfig, CsvSource, NumberPlan, QueryContext, Source, SourceConfig};

const CONTACTS: u32 = 1_000_000;

/// Runs a future that never waits (the CSV source answers from memory), without
/// pulling an async runtime into the benches.
fn ready<T>(future: impl Future<Output = T>) -> T {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(value) => value,
        Poll::Pending => panic!("the CSV source waited"),
    }
}

/// A temporary CSV file, removed when dropped.
struct CsvFile(PathBuf);

impl CsvFile {
    /// 1,000,000 contacts: names spread over 977 last names (some accented), office
    /// numbers 01 2x xx xx xx, mobiles 06 xx xx xx xx.
    fn write() -> Self {
        let path = std::env::temp_dir().join(format!(
            "pbxkit-bench-directory-1m-{}.csv",
            std::process::id()
        ));
        let file = std::fs::File::create(&path).expect("temporary CSV file");
        let mut out = std::io::BufWriter::new(file);
        writeln!(out, "id,firstname,lastname,number,mobile").expect("write");
        for n in 0..CONTACTS {
            let last = if n % 7 == 0 { "Müller" } else { "Last" };
            writeln!(
                out,
                "{n},First{n},{last}{},01 2{} {:02} {:02} {:02},06.{:02}.{:02}.{:02}.{:02}",
                n % 977,
                n / 1_000_000 % 10,
                n / 10_000 % 100,
                n / 100 % 100,
                n % 100,
                n / 1_000_000 % 100,
                n / 10_000 % 100,
                n / 100 % 100,
                n % 100,
            )
            .expect("write");
        }
        out.into_inner().expect("flush").sync_all().expect("sync");
        Self(path)
    }
}

impl Drop for CsvFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn directory_1m(c: &mut Criterion) {
    let file = CsvFile::write();
    let plan = NumberPlan::with_country_code("33");
    let source = CsvSource::new(
        CsvConfig {
            source: SourceConfig {
                searched_columns: vec!["firstname".into(), "lastname".into()],
                first_matched_columns: vec!["number".into(), "mobile".into()],
                unique_column: Some("id".into()),
                format_columns: FormatColumns::new([("name", "{firstname} {lastname}")]),
                ..SourceConfig::named("bench")
            },
            file: file.0.clone(),
            delimiter: ',',
        },
        plan,
    )
    .expect("valid configuration");
    // Reads and indexes the file once; queries then only check its stamp.
    assert_eq!(source.reload().expect("valid CSV").len(), 1_000_000);
    let ctx = QueryContext::default();

    // 1,023 contacts have the last-name suffix 976: 146 Müller (every 7th), 877 Last;
    // "muller976" exercises accent folding.
    let found = ready(source.search("last976", &ctx)).expect("search");
    assert_eq!(found.len(), 877);
    let found = ready(source.search("MULLER976", &ctx)).expect("search");
    assert_eq!(found.len(), 146);
    let last = "+33 1 20 99 99 99";
    let hit = ready(source.first_match(last, &ctx)).expect("reverse");
    assert_eq!(hit.and_then(|c| c.id).as_deref(), Some("999999"));
    let miss = ready(source.first_match("+33 9 99 99 99 99", &ctx)).expect("reverse");
    assert!(miss.is_none());

    let mut group = c.benchmark_group("directory");
    // A search scans every contact: few samples keep the run short.
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("csv-search-1m/pbxkit", |b| {
        b.iter(|| ready(source.search(black_box("last976"), &ctx)).map(|v| v.len()))
    });
    group.bench_function("csv-search-accent-1m/pbxkit", |b| {
        b.iter(|| ready(source.search(black_box("muller976"), &ctx)).map(|v| v.len()))
    });
    group.bench_function("csv-search-none-1m/pbxkit", |b| {
        b.iter(|| ready(source.search(black_box("nobody"), &ctx)).map(|v| v.len()))
    });
    group.finish();

    let mut group = c.benchmark_group("directory");
    group.bench_function("csv-reverse-1m/pbxkit", |b| {
        b.iter(|| ready(source.first_match(black_box(last), &ctx)).map(|c| c.is_some()))
    });
    group.bench_function("csv-reverse-miss-1m/pbxkit", |b| {
        b.iter(|| {
            ready(source.first_match(black_box("+33 9 99 99 99 99"), &ctx)).map(|c| c.is_some())
        })
    });
    group.finish();
}

criterion_group!(benches, directory_1m);
criterion_main!(benches);
