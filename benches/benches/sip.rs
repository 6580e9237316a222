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

/// Request in, final response out, through the sans-IO transaction layer (TCP, so that
/// non-INVITE transactions end at once; INVITE ones wait for Timer L, which simulated
/// time runs out regularly).
fn transactions(c: &mut Criterion) {
    use pbxkit_sip::transaction::{Event, Target, Timers, TransactionLayer, TransportKind};
    use pbxkit_sip::{Message, StatusCode};
    let source = Target {
        addr: "192.0.2.21:5060".parse().unwrap(),
        transport: TransportKind::Tcp,
    };
    let mut group = c.benchmark_group("transaction");
    group.throughput(Throughput::Elements(1));
    for (name, sample) in [("non-invite", REGISTER), ("invite", INVITE)] {
        let template = Message::parse(sample).unwrap();
        group.bench_function(name, |b| {
            let mut layer = TransactionLayer::new(Timers::default());
            let mut now = std::time::Instant::now();
            let n = std::cell::Cell::new(0u64);
            b.iter_batched(
                || {
                    // A new branch per request, as a new transaction needs.
                    n.set(n.get() + 1);
                    let n = n.get();
                    let mut m = template.clone();
                    m.headers_mut().set(
                        pbxkit_sip::HeaderName::Via,
                        format!("SIP/2.0/TCP 192.0.2.21:5060;branch=z9hG4bK{n}"),
                    );
                    m
                },
                |request| {
                    now += std::time::Duration::from_millis(1);
                    layer.handle_message(request, source, now);
                    while let Some(event) = layer.poll_event() {
                        if let Event::Request { tx, request, .. } = event {
                            let ok = Message::response_to(&request, StatusCode::OK, Some("bench"));
                            layer.respond(tx, ok, now).unwrap();
                        }
                    }
                    while let Some(t) = layer.poll_transmit() {
                        black_box(t);
                    }
                    if n.get().is_multiple_of(1024) {
                        layer.handle_timeout(now);
                    }
                },
                criterion::BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, parse, parse_and_read, serialize, transactions);
criterion_main!(benches);
