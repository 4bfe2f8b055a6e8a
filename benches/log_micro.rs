//! Criterion micro-benchmarks of the log's per-record hot path: encoding a
//! record (postcard envelope), decoding it (which hashes it with BLAKE3),
//! checking the chain link (in a run, and for a record read alone, which
//! also decodes and hashes its predecessor), and the idempotency request
//! digest.

#![allow(clippy::unwrap_used)]
// `criterion_group!` generates an undocumented public function.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use gridcase::engine::log::{
    decode_record, encode_record, request_digest, AppendRequest, ChainVerifier, Envelope,
    EventData, ExpectedVersion, RecordView, StreamId, CODEC_POSTCARD, GENESIS_HASH,
};
use std::hint::black_box;

fn envelope(position: u64, prev_hash: [u8; 32]) -> Envelope {
    Envelope {
        position,
        stream: "case-2026-000123".into(),
        version: position,
        event_type: "CaseEscalated".into(),
        schema_version: 1,
        recorded_at: 1_772_496_000_000,
        actor: "S0042".into(),
        correlation_id: Some("corr-8f2e".into()),
        causation_id: None,
        idempotency: None,
        payload_codec: CODEC_POSTCARD,
        payload: vec![0x42; 256],
        prev_hash,
    }
}

fn chain(n: u64) -> Vec<Vec<u8>> {
    let mut prev = GENESIS_HASH;
    (1..=n)
        .map(|p| {
            let bytes = encode_record(&envelope(p, prev)).unwrap();
            prev = *blake3::hash(&bytes).as_bytes();
            bytes
        })
        .collect()
}

fn record(c: &mut Criterion) {
    let env = envelope(7, [0xab; 32]);
    let bytes = encode_record(&env).unwrap();
    let mut g = c.benchmark_group("record");
    g.throughput(Throughput::Elements(1));
    g.bench_function("encode", |b| b.iter(|| encode_record(black_box(&env)).unwrap()));
    g.bench_function("blake3 of record", |b| b.iter(|| blake3::hash(black_box(&bytes))));
    g.bench_function("decode (incl. hash)", |b| {
        b.iter(|| decode_record(black_box(&bytes), 7).unwrap())
    });
    // The borrowed decode every whole-log fold uses: no allocation.
    g.bench_function("decode borrowed (RecordView, incl. hash)", |b| {
        b.iter(|| RecordView::decode(black_box(&bytes), 7).unwrap().hash)
    });
    // A record read alone (a stream read, a case load): checked against
    // its stored check bytes, then its link against its predecessor's
    // bytes (decoded, checked and hashed): the verified-read cost.
    let before = encode_record(&envelope(6, [0xcd; 32])).unwrap();
    let before_hash = *blake3::hash(&before).as_bytes();
    let linked = encode_record(&envelope(7, before_hash)).unwrap();
    let linked_hash = *blake3::hash(&linked).as_bytes();
    g.bench_function("decode_checked + check_link_to (a record read alone)", |b| {
        b.iter(|| {
            let view =
                RecordView::decode_checked(black_box(&linked), 7, &linked_hash[..8]).unwrap();
            view.check_link_to(Some((black_box(&before), &before_hash[..8]))).unwrap();
            view.hash
        })
    });
    let req = AppendRequest::new(
        StreamId::new("case-2026-000123").unwrap(),
        ExpectedVersion::Exact(3),
        "S0042",
        vec![EventData {
            event_type: "CaseEscalated".into(),
            schema_version: 1,
            payload_codec: CODEC_POSTCARD,
            payload: vec![0x42; 256],
        }],
    );
    g.bench_function("request digest", |b| b.iter(|| request_digest(black_box(&req))));
    g.finish();

    let records = chain(1024);
    let mut g = c.benchmark_group("chain");
    g.throughput(Throughput::Elements(records.len() as u64));
    g.bench_function("decode + verify 1024 records", |b| {
        b.iter(|| {
            let mut v = ChainVerifier::default();
            for (i, r) in records.iter().enumerate() {
                v.check(&decode_record(r, i as u64 + 1).unwrap()).unwrap();
            }
            v.events()
        })
    });
    g.bench_function("decode borrowed + verify 1024 records", |b| {
        b.iter(|| {
            let mut v = ChainVerifier::default();
            for (i, r) in records.iter().enumerate() {
                v.check_view(&RecordView::decode(r, i as u64 + 1).unwrap()).unwrap();
            }
            v.events()
        })
    });
    let decoded: Vec<_> =
        records.iter().enumerate().map(|(i, r)| decode_record(r, i as u64 + 1).unwrap()).collect();
    g.bench_function("verify only (decoded) 1024 records", |b| {
        b.iter_batched(
            ChainVerifier::default,
            |mut v| {
                for e in &decoded {
                    v.check(e).unwrap();
                }
                v
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, record);
criterion_main!(benches);
