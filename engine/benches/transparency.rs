//! What the Merkle tree costs: per append (hashing a record into the tree,
//! and the follower's whole per-record work: read, chain check, re-encode,
//! leaf hash), proof generation and verification at a million records, and
//! signing a checkpoint.
//!
//! `cargo bench -p gridcase-engine --bench transparency`

#![allow(clippy::unwrap_used)]
// `criterion_group!` generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use gridcase_engine::log::{
    AppendRequest, EventData, EventLog, ExpectedVersion, SledLog, SledOptions, StreamId,
    CODEC_POSTCARD,
};
use gridcase_engine::time::SystemClock;
use gridcase_engine::transparency::gridcase_trust::checkpoint::Checkpoint;
use gridcase_engine::transparency::gridcase_trust::merkle::{
    leaf_hash, verify_consistency, verify_inclusion, Tree,
};
use gridcase_engine::transparency::gridcase_trust::note::NoteSigner;
use gridcase_engine::transparency::Transparency;

const MILLION: u64 = 1 << 20;

/// A record-sized entry (a typical case event's canonical bytes are ~300 B).
fn entry(i: u64) -> Vec<u8> {
    let mut e = vec![0x42u8; 300];
    e[..8].copy_from_slice(&i.to_be_bytes());
    e
}

fn big_tree(n: u64) -> Tree {
    let mut t = Tree::new();
    for i in 0..n {
        t.push_hash(leaf_hash(&i.to_be_bytes()));
    }
    t
}

fn tree(c: &mut Criterion) {
    let mut g = c.benchmark_group("merkle");
    g.throughput(Throughput::Elements(1));
    // One append: the leaf hash of a 300-byte record plus the tile-level
    // node hashes it completes (amortised: ~1 + 1/256 + …).
    let mut t = big_tree(MILLION);
    let e = entry(7);
    g.bench_function("append a 300-byte record to a 1M-leaf tree", |b| {
        b.iter(|| t.push(black_box(&e)))
    });
    let t = big_tree(MILLION);
    let size = t.size();
    let root = t.root(size).unwrap();
    g.bench_function("root of 1M leaves", |b| b.iter(|| t.root(black_box(size)).unwrap()));
    let mut i = 0u64;
    g.bench_function("inclusion proof at 1M", |b| {
        b.iter(|| {
            i = (i + 7_919) % size;
            t.inclusion_proof(black_box(i), size).unwrap()
        })
    });
    g.bench_function("consistency proof 700k → 1M", |b| {
        b.iter(|| t.consistency_proof(black_box(700_001), size).unwrap())
    });
    let p = t.inclusion_proof(12_345, size).unwrap();
    let leaf = t.leaf(12_345).unwrap();
    g.bench_function("verify an inclusion proof at 1M", |b| {
        b.iter(|| verify_inclusion(12_345, size, black_box(&leaf), &p, &root).unwrap())
    });
    let old_root = t.root(700_001).unwrap();
    let cp = t.consistency_proof(700_001, size).unwrap();
    g.bench_function("verify a consistency proof 700k → 1M", |b| {
        b.iter(|| verify_consistency(700_001, size, black_box(&cp), &old_root, &root).unwrap())
    });
    let signer = NoteSigner::generate("bench.example/log").unwrap();
    let body = Checkpoint { origin: "bench.example/log".into(), size, root };
    g.bench_function("sign a checkpoint note (Ed25519)", |b| {
        b.iter(|| body.sign(&signer).unwrap())
    });
    let note = body.sign(&signer).unwrap();
    let v = signer.verifier();
    g.bench_function("open a signed checkpoint", |b| {
        b.iter(|| Checkpoint::open(&note, &v).unwrap())
    });
    g.finish();
}

/// The follower's whole per-record cost, from a sled store: what catching
/// up (or rebuilding at open) costs per record, and so what each append
/// costs the server after it commits.
fn follower(c: &mut Criterion) {
    const N: u64 = 100_000;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn EventLog> =
        Arc::new(SledLog::open(dir.path(), SledOptions::default(), Arc::new(SystemClock)).unwrap());
    rt.block_on(async {
        for b in 0..N / 1000 {
            let events = (0..1000)
                .map(|i| EventData {
                    event_type: "CaseEscalated".into(),
                    schema_version: 1,
                    payload_codec: CODEC_POSTCARD,
                    payload: entry(b * 1000 + i)[..200].to_vec(),
                })
                .collect();
            let stream = StreamId::new(format!("case-GC{:07}", b)).unwrap();
            log.append(AppendRequest::new(stream, ExpectedVersion::Any, "S0042", events))
                .await
                .unwrap();
        }
    });
    let mut g = c.benchmark_group("follower");
    g.sample_size(10);
    g.throughput(Throughput::Elements(N));
    g.bench_function("rebuild the tree from 100k sled records", |b| {
        b.iter_batched(
            || (),
            |()| {
                rt.block_on(Transparency::open(log.clone(), "bench.example/log".into(), None))
                    .unwrap()
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, tree, follower);
criterion_main!(benches);
