//! SIP parsing: pbxkit-sip and rsip side by side on the same messages.
#![allow(clippy::unwrap_used, reason = "the samples are known to parse")]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pbxkit_benches::{INVITE, OK_200, REGISTER};
use rsip::prelude::*;
use std::hint::black_box;

fn parse(c: &mut Criterion) {
    for (name, sample) in [
        ("invite", INVITE),
        ("200ok", OK_200),
        ("register", REGISTER),
    ] {
        let mut group = c.benchmark_group(format!("parse/{name}"));
        group.throughput(Throughput::Elements(1));
        let bytes = bytes::Bytes::from_static(sample);
        group.bench_function("pbxkit", |b| {
            b.iter(|| pbxkit_sip::Message::parse(black_box(bytes.clone())).unwrap())
        });
        group.bench_function("rsip", |b| {
            b.iter(|| rsip::SipMessage::try_from(black_box(sample)).unwrap())
        });
        group.finish();
    }
}

/// What a proxy does with every message: parse, then read the transaction and dialog keys.
fn parse_and_read(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse+read/invite");
    group.throughput(Throughput::Elements(1));
    let bytes = bytes::Bytes::from_static(INVITE);
    group.bench_function("pbxkit", |b| {
        b.iter(|| {
            let m = pbxkit_sip::Message::parse(black_box(bytes.clone())).unwrap();
            let via = m.top_via().unwrap();
            let from = m.from().unwrap();
            let to = m.to().unwrap();
            let cseq = m.cseq().unwrap();
            let call_id = m.call_id().unwrap();
            black_box((
                via.branch().map(str::len),
                from.tag().map(str::len),
                to.tag().is_some(),
                cseq.seq,
                call_id.0.len(),
            ))
        })
    });
    group.bench_function("rsip", |b| {
        b.iter(|| {
            let m = rsip::SipMessage::try_from(black_box(INVITE)).unwrap();
            let via = m.via_header().unwrap().typed().unwrap();
            let from = m.from_header().unwrap().typed().unwrap();
            let to = m.to_header().unwrap().typed().unwrap();
            let cseq = m.cseq_header().unwrap().typed().unwrap();
            let call_id = m.call_id_header().unwrap().value().len();
            black_box((
                via.branch().map(|b| b.to_string().len()),
                from.tag().is_some(),
                to.tag().is_some(),
                cseq.seq,
                call_id,
            ))
        })
    });
    group.finish();
}

fn serialize(c: &mut Criterion) {
    let m = pbxkit_sip::Message::parse(INVITE).unwrap();
    let mut group = c.benchmark_group("serialize/invite");
    group.throughput(Throughput::Elements(1));
    group.bench_function("pbxkit", |b| b.iter(|| black_box(&m).to_bytes()));
    let r = rsip::SipMessage::try_from(INVITE).unwrap();
    group.bench_function("rsip", |b| b.iter(|| black_box(&r).to_string()));
    group.finish();
}

criterion_group!(benches, parse, parse_and_read, serialize);
criterion_main!(benches);
