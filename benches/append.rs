//! Criterion micro-benchmarks of the event log's append path on `SledLog`:
//! one awaited `EventLog::append`, from the request to the acknowledgement.
//!
//! - `append_buffered/*`, with `Durability::Buffered` (no flush before the
//!   acknowledgement, so this is the CPU path: the hand-over to the writer
//!   thread, the expected-version check, record encoding, the BLAKE3 chain,
//!   the frame, sled's `apply_batch`, publishing the head and the reply):
//!   - `single_any`: one `CaseSubmitted` event (~270 bytes of postcard) to
//!     one stream with `ExpectedVersion::Any`;
//!   - `single_exact`: the same with `ExpectedVersion::Exact(current)`, the
//!     optimistic-concurrency check every engine command makes;
//!   - `single_exact_conflict`: a stale `Exact` version, answered with
//!     `Conflict` before anything is encoded or written;
//!   - `single_new_stream`: `ExpectedVersion::NoStream` onto a new stream
//!     each time, as a case submission does;
//!   - `batch_100`: one append of 100 lifecycle events (submit, assign,
//!     escalate, dispatch, claim, resolve, callback, close, repeated) to one
//!     stream; the throughput is per event.
//! - `append_durable/*`, with `Durability::Durable` (sled's flush and one fdatasync before the
//!   acknowledgement, so this says what a durable commit costs on this disk;
//!   compare `cargo bench --bench fsync_probe`):
//!   - `single_any`: as above, one flush per append;
//!   - `concurrent_16`: 16 appends to 16 streams in flight at once, which the
//!     writer commits as one group behind one flush; the throughput is per
//!     append.
//!
//! Each benchmark function writes to its own fresh store in a temporary
//! directory (`TMPDIR` chooses the disk). The requests of a sample are built
//! before its clock starts. The log's indexer thread and sled's background
//! flusher run during the measurement, as they do in a server; on a machine
//! with few cores they compete with the writer for CPU.
//!
//! Run: `cargo bench --bench append`
//! (`-- --quick` for a short run; a criterion filter such as
//! `-- append_durable` runs one group).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use gridcase_engine::domain::{
    Channel, Contact, Event, HopReason, Priority, RequestKind, Satisfaction,
};
use gridcase_engine::log::LogError;
use gridcase_engine::log::{
    AppendRequest, Appended, Durability, EventData, EventLog, ExpectedVersion, SledLog,
    SledOptions, StreamId,
};
use gridcase_engine::time::{SystemClock, Timestamp, DAY_MS, HOUR_MS};
use tokio::runtime::Runtime;

/// 2026-03-02 08:00 +08:00, the submission time written into payloads.
const T0: Timestamp = Timestamp(1_772_409_600_000);
/// Requests built ahead of one timed run; bounds the memory a long sample
/// needs without building requests inside the timed loop.
const CHUNK: u64 = 4096;
/// The actor of every append: a community staff member's id.
const ACTOR: &str = "cs320902003005-0";

/// Community 5 of street 3, grid 2, micro-grid 3 (Tinghu-style codes).
const STREET: &str = "320902003";
const COMMUNITY: &str = "320902003005";
const GRID: &str = "320902003005002";

/// The submission payload every single append carries: what a resident's
/// app report encodes to, Chinese text and contact included.
fn submitted(seq: u64) -> Event {
    Event::CaseSubmitted {
        case_id: format!("GC{seq:09}"),
        channel: Channel::App,
        kind: RequestKind::Complaint,
        category: "cat02".into(),
        priority: Priority::Normal,
        description: "小区东门路灯连续三晚不亮，晚上出行很不方便，请尽快处理".into(),
        location: "盐城市亭湖区第3街道第5社区第2网格3号楼东门口".into(),
        grid: GRID.into(),
        micro_grid: Some(format!("{GRID}03")),
        community: COMMUNITY.into(),
        street: STREET.into(),
        contact: Some(Contact { name: "王女士".into(), phone: "13800000000".into() }),
        found_on_patrol: false,
        response_due: T0.plus_ms(DAY_MS),
        resolution_due: T0.plus_ms(7 * DAY_MS),
        hold_until: T0.plus_ms(2 * DAY_MS),
    }
}

/// The eight events of a lifecycle escalated to a department, in order.
fn lifecycle(seq: u64) -> Vec<Event> {
    vec![
        submitted(seq),
        Event::CaseAssigned { worker: format!("gw{GRID}") },
        Event::CaseEscalated {
            from: COMMUNITY.into(),
            to: STREET.into(),
            reason: HopReason::Manual,
            note: "社区无法解决".into(),
            hold_until: T0.plus_ms(3 * DAY_MS),
        },
        Event::CaseDispatched {
            from: STREET.into(),
            departments: vec!["D03".into()],
            lead: "D03".into(),
            reason: HopReason::Manual,
            note: String::new(),
            claim_due: T0.plus_ms(3 * DAY_MS + 4 * HOUR_MS),
        },
        Event::CaseClaimed { department: "D03".into() },
        Event::CaseResolved { unit: "D03".into(), note: "已更换灯具".into(), complete: true },
        Event::CallbackRecorded {
            satisfaction: Satisfaction::Satisfied,
            solved: true,
            note: String::new(),
        },
        Event::CaseClosed { note: "办结".into() },
    ]
}

/// A stream id from a name known to be valid.
fn stream(name: &str) -> StreamId {
    StreamId::new(name).expect("bench stream names are valid")
}

/// A log in its own temporary directory; the log is dropped (its threads
/// joined) before the directory is removed.
struct Store {
    log: SledLog,
    _dir: tempfile::TempDir,
}

/// A fresh, empty store with the given durability.
fn store(durability: Durability) -> Store {
    let dir = tempfile::tempdir().expect("create a temporary directory for the store");
    let options = SledOptions { durability, ..SledOptions::default() };
    // The wall clock, as in a server: the writer reads it once per group.
    let log = SledLog::open(dir.path(), options, Arc::new(SystemClock)).expect("open the sled log");
    Store { log, _dir: dir }
}

/// How a benchmark's appends must end; anything else aborts the run, so a
/// broken path cannot pass for a fast one.
#[derive(Clone, Copy)]
enum Expect {
    /// Accepted and written (not deduplicated).
    Written,
    /// Refused with `LogError::Conflict`.
    Conflict,
}

impl Expect {
    /// Panics unless `result` is what this benchmark expects.
    fn check(self, result: Result<Appended, LogError>) {
        match (self, result) {
            (Expect::Written, Ok(appended)) => assert!(!appended.outcome.deduplicated),
            (Expect::Conflict, Err(LogError::Conflict { .. })) => {}
            (_, other) => panic!("unexpected append outcome: {other:?}"),
        }
    }
}

/// Runs `iters` timed iterations of `per_iter` appends each (concurrent
/// when more than one) and returns the time spent in them alone: request
/// `i` is `make(i)`, and requests are built a chunk at a time before the
/// clock starts.
async fn timed_appends(
    log: &SledLog,
    iters: u64,
    per_iter: u64,
    expect: Expect,
    mut make: impl FnMut(u64) -> AppendRequest,
) -> Duration {
    let mut total = Duration::ZERO;
    let mut done = 0;
    while done < iters {
        let n = CHUNK.min(iters - done);
        let groups: Vec<Vec<AppendRequest>> = (done..done + n)
            .map(|i| (i * per_iter..(i + 1) * per_iter).map(&mut make).collect())
            .collect();
        let start = Instant::now();
        for group in groups {
            if per_iter == 1 {
                for r in group {
                    expect.check(log.append(r).await);
                }
            } else {
                for r in futures::future::join_all(group.into_iter().map(|r| log.append(r))).await {
                    expect.check(r);
                }
            }
        }
        total += start.elapsed();
        done += n;
    }
    total
}

/// A single-event append of `data` to `stream` with `expected`.
fn single(stream: &StreamId, expected: ExpectedVersion, data: &EventData) -> AppendRequest {
    AppendRequest::new(stream.clone(), expected, ACTOR, vec![data.clone()])
}

/// The `append_buffered` group.
fn bench_buffered(c: &mut Criterion, rt: &Runtime) {
    let payload = submitted(1).to_data();
    let batch: Vec<EventData> =
        (0..100).map(|i| lifecycle(i / 8)[(i % 8) as usize].to_data()).collect();
    let mean = batch.iter().map(|d| d.payload.len()).sum::<usize>() / batch.len();
    println!(
        "payloads: CaseSubmitted {} bytes; batch of 100 lifecycle events {mean} bytes on average",
        payload.payload.len()
    );

    let mut g = c.benchmark_group("append_buffered");
    g.throughput(Throughput::Elements(1));

    let target = stream("case-GC000000001");
    let (target, payload, batch) = (&target, &payload, &batch);

    let s = store(Durability::Buffered);
    let log = &s.log;
    g.bench_function("single_any", |b| {
        b.to_async(rt).iter_custom(|iters| {
            timed_appends(log, iters, 1, Expect::Written, move |_| {
                single(target, ExpectedVersion::Any, payload)
            })
        })
    });
    drop(s);

    let s = store(Durability::Buffered);
    let log = &s.log;
    g.bench_function("single_exact", |b| {
        b.to_async(rt).iter_custom(|iters| {
            async move {
                // Each accepted append moves the stream one version on, so
                // request i expects the version read before the run plus i.
                let base = log.stream_version(target).await.expect("read the stream version");
                timed_appends(log, iters, 1, Expect::Written, move |i| {
                    single(target, ExpectedVersion::Exact(base + i), payload)
                })
                .await
            }
        })
    });
    drop(s);

    let s = store(Durability::Buffered);
    let log = &s.log;
    // Two events in, so `Exact(1)` is a stale read, never a new stream.
    rt.block_on(async {
        for _ in 0..2 {
            Expect::Written.check(log.append(single(target, ExpectedVersion::Any, payload)).await);
        }
    });
    g.bench_function("single_exact_conflict", |b| {
        b.to_async(rt).iter_custom(|iters| {
            timed_appends(log, iters, 1, Expect::Conflict, move |_| {
                single(target, ExpectedVersion::Exact(1), payload)
            })
        })
    });
    drop(s);

    let s = store(Durability::Buffered);
    let log = &s.log;
    // Stream numbers carry on across criterion's calls, so every append
    // opens a stream that does not exist yet.
    let next_case = AtomicU64::new(1);
    g.bench_function("single_new_stream", |b| {
        b.to_async(rt).iter_custom(|iters| {
            let first = next_case.fetch_add(iters, Ordering::Relaxed);
            timed_appends(log, iters, 1, Expect::Written, move |i| {
                let new = stream(&format!("case-GC{:09}", first + i));
                single(&new, ExpectedVersion::NoStream, payload)
            })
        })
    });
    drop(s);

    let s = store(Durability::Buffered);
    let log = &s.log;
    g.throughput(Throughput::Elements(batch.len() as u64));
    g.bench_function("batch_100", |b| {
        b.to_async(rt).iter_custom(|iters| {
            timed_appends(log, iters, 1, Expect::Written, move |_| {
                AppendRequest::new(target.clone(), ExpectedVersion::Any, ACTOR, batch.clone())
            })
        })
    });
    drop(s);
    g.finish();
}

/// The `append_durable` group.
fn bench_durable(c: &mut Criterion, rt: &Runtime) {
    let payload = submitted(1).to_data();
    let mut g = c.benchmark_group("append_durable");
    // Each append waits for a flush (milliseconds on a virtual disk), so
    // fewer samples keep the group to tens of seconds.
    g.sample_size(10).measurement_time(Duration::from_secs(5));

    let target = stream("case-GC000000001");
    let (target, payload) = (&target, &payload);

    let s = store(Durability::Durable);
    let log = &s.log;
    g.throughput(Throughput::Elements(1));
    g.bench_function("single_any", |b| {
        b.to_async(rt).iter_custom(|iters| {
            timed_appends(log, iters, 1, Expect::Written, move |_| {
                single(target, ExpectedVersion::Any, payload)
            })
        })
    });
    drop(s);

    const CONCURRENT: u64 = 16;
    let s = store(Durability::Durable);
    let log = &s.log;
    let targets: Vec<StreamId> =
        (1..=CONCURRENT).map(|i| stream(&format!("case-GC{i:09}"))).collect();
    let targets = &targets;
    g.throughput(Throughput::Elements(CONCURRENT));
    g.bench_function("concurrent_16", |b| {
        b.to_async(rt).iter_custom(|iters| {
            timed_appends(log, iters, CONCURRENT, Expect::Written, move |i| {
                single(&targets[(i % CONCURRENT) as usize], ExpectedVersion::Any, payload)
            })
        })
    });
    drop(s);
    g.finish();
}

/// Every group, on one runtime.
fn benches(c: &mut Criterion) {
    // One thread: the benchmark awaits one append (or one group) at a time,
    // and the log's work happens on its own writer thread, so a second
    // runtime worker would only add wake-ups between threads.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build the tokio runtime");
    bench_buffered(c, &rt);
    bench_durable(c, &rt);
}

/// Short runs: the buffered appends settle within a second.
fn config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

/// Kept in a private module: `criterion_group!` declares a public function
/// that would otherwise need a doc comment.
mod groups {
    criterion::criterion_group! {
        name = append;
        config = super::config();
        targets = super::benches
    }
}

criterion::criterion_main!(groups::append);
