//! `pbxkit-directory`: search, reverse lookup and phone rendering over an indexed
//! source the size of a large company (10,000 contacts). No peer crate does
//! wazo-dird-style lookups, so the group has pbxkit alone.
use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use pbxkit_directory::format::FormatColumns;
use pbxkit_directory::views::{Page, PhoneDisplay, Vendor, ViewOptions, render_results};
use pbxkit_directory::{ContactIndex, NumberPlan, SourceConfig, csv_source};

fn csv() -> String {
    let mut data = String::from("id,firstname,lastname,number,mobile\n");
    for n in 0..10_000u32 {
        data.push_str(&format!(
            "{n},First{n},Last{},01 23 {:02} {:02} {:02},06.{:02}.{:02}.{:02}.00\n",
            n % 977,
            n / 10_000,
            (n / 100) % 100,
            n % 100,
            n / 10_000,
            (n / 100) % 100,
            n % 100
        ));
    }
    data
}

fn config() -> SourceConfig {
    SourceConfig {
        searched_columns: vec!["firstname".into(), "lastname".into()],
        first_matched_columns: vec!["number".into(), "mobile".into()],
        unique_column: Some("id".into()),
        format_columns: FormatColumns::new([
            ("name", "{firstname} {lastname}"),
            ("phone", "{number}"),
            ("phone_mobile", "{mobile}"),
        ]),
        ..SourceConfig::named("bench")
    }
}

fn directory(c: &mut Criterion) {
    let data = csv();
    let plan = NumberPlan::with_country_code("33");
    let records = csv_source::parse(data.as_bytes(), ',').expect("valid CSV");
    let index = ContactIndex::build(&config(), &plan, records.iter().cloned());
    assert_eq!(index.search("last976").count(), 10);
    assert!(index.reverse(&plan, "+33 1 23 00 42 42").next().is_some());

    let mut group = c.benchmark_group("directory");
    group.bench_function("csv-parse-index-10k/pbxkit", |b| {
        b.iter(|| {
            let records: Vec<BTreeMap<String, String>> =
                csv_source::parse(black_box(data.as_bytes()), ',').expect("valid CSV");
            ContactIndex::build(&config(), &plan, records)
        })
    });
    group.bench_function("search-10k/pbxkit", |b| {
        b.iter(|| index.search(black_box("last976")).count())
    });
    group.bench_function("reverse-10k/pbxkit", |b| {
        b.iter(|| index.reverse(&plan, black_box("+33 1 23 00 42 42")).next())
    });
    group.bench_function("normalize/pbxkit", |b| {
        b.iter(|| plan.normalize(black_box("+33 (0)1 23 45 67 89")))
    });
    let found: Vec<_> = index.search("first1").cloned().collect();
    let entries = PhoneDisplay::default().entries(&found);
    let options = ViewOptions::new(
        "http://pbx:9498/0.1/directories/lookup/default/cisco",
        "first1",
    );
    group.bench_function("cisco-page/pbxkit", |b| {
        b.iter(|| {
            render_results(
                Vendor::Cisco,
                black_box(&entries),
                Page::first(16),
                &options,
            )
        })
    });
    group.finish();
}

criterion_group!(benches, directory);
criterion_main!(benches);
