//! Whole-system benchmark of the sled event log (its own `main`, not
//! criterion: it measures throughput of the running log, not a function).
//!
//! - append throughput and latency (HdrHistogram) for 1, 8 and 64 concurrent
//!   writers (tokio tasks, one 256-byte event per append) in each durability
//!   mode (Buffered, Flushed, Durable);
//! - read-all throughput over a large store, decoded and chain-checked with
//!   `ChainVerifier`, and the log's own `verify()`;
//! - subscription throughput: catch-up over the store, and live while 64
//!   writers append (with delivery lag after acknowledgement);
//! - this machine's fsync latency (4 KiB append + fdatasync), which bounds
//!   the Durable mode (and, through sled's flush, Flushed).
//!
//! Prints markdown tables. Options (after `--`), or environment variables:
//!
//! ```text
//! cargo bench --bench log -- [--quick] [--events N] [--read-events N] [--seconds S]
//!     [--modes buffered,flushed,durable|none] [--writers 1,8,64] [--dir DIR]
//! GRIDCASE_BENCH_EVENTS=N GRIDCASE_BENCH_READ_EVENTS=N GRIDCASE_BENCH_DIR=DIR
//! ```
//! Defaults: 200,000 events per append run (each run also stops after
//! `--seconds`, 10), 1,000,000 events for the read runs, the system
//! temporary directory (it must be on the disk you mean to measure).
//! `--quick`: 20,000 / 100,000 events, 3 s.

#![allow(clippy::unwrap_used)]

#[path = "support/fsync.rs"]
mod fsync;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use gridcase::engine::log::{
    subscribe, AppendRequest, ChainVerifier, Durability, EventData, EventLog, ExpectedVersion,
    Position, SledLog, SledOptions, StreamId, CODEC_POSTCARD,
};
use gridcase::engine::time::SystemClock;
use hdrhistogram::Histogram;

const PAYLOAD: usize = 256;

struct Config {
    events: u64,
    read_events: u64,
    seconds: u64,
    modes: Vec<Durability>,
    writers: Vec<usize>,
    dir: PathBuf,
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn parse_args() -> Config {
    let mut c = Config {
        events: env_u64("GRIDCASE_BENCH_EVENTS").unwrap_or(200_000),
        read_events: env_u64("GRIDCASE_BENCH_READ_EVENTS").unwrap_or(1_000_000),
        seconds: 10,
        modes: vec![Durability::Buffered, Durability::Flushed, Durability::Durable],
        writers: vec![1, 8, 64],
        dir: std::env::var("GRIDCASE_BENCH_DIR").map(PathBuf::from).unwrap_or(std::env::temp_dir()),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--quick" => {
                c.events = 20_000;
                c.read_events = 100_000;
                c.seconds = 3;
            }
            "--events" => c.events = value().parse().expect("--events N"),
            "--read-events" => c.read_events = value().parse().expect("--read-events N"),
            "--seconds" => c.seconds = value().parse().expect("--seconds S"),
            "--dir" => c.dir = PathBuf::from(value()),
            "--modes" => {
                c.modes = value()
                    .split(',')
                    .filter(|m| !m.is_empty() && *m != "none")
                    .map(|m| m.parse().expect("a durability"))
                    .collect()
            }
            "--writers" => {
                c.writers = value().split(',').map(|w| w.parse().expect("a number")).collect()
            }
            // `cargo bench` passes `--bench`; ignore it and anything unknown.
            _ => {}
        }
    }
    c
}

fn open(path: &Path, durability: Durability) -> Arc<SledLog> {
    let options = SledOptions { durability, ..SledOptions::default() };
    Arc::new(SledLog::open(path, options, Arc::new(SystemClock)).expect("open the log"))
}

fn event(seq: u64) -> EventData {
    let mut payload = vec![0u8; PAYLOAD];
    payload[..8].copy_from_slice(&seq.to_le_bytes());
    for (i, b) in payload.iter_mut().enumerate().skip(8) {
        *b = (seq as usize).wrapping_mul(31).wrapping_add(i) as u8;
    }
    EventData {
        event_type: "CaseNoteAdded".into(),
        schema_version: 1,
        payload_codec: CODEC_POSTCARD,
        payload,
    }
}

fn append_request(writer: usize, seq: u64, events: Vec<EventData>) -> AppendRequest {
    let stream = StreamId::new(format!("case-{writer}-{}", seq % 64)).unwrap();
    AppendRequest::new(stream, ExpectedVersion::Any, "bench", events)
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).unwrap()
}

struct AppendRow {
    mode: Durability,
    writers: usize,
    events: u64,
    secs: f64,
    latency: Histogram<u64>,
}

async fn append_run(dir: &Path, mode: Durability, writers: usize, c: &Config) -> AppendRow {
    let store = tempfile::tempdir_in(dir).unwrap();
    let log = open(store.path(), mode);
    let per_writer = c.events.div_ceil(writers as u64);
    let cap = Duration::from_secs(c.seconds);
    let start = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let log = log.clone();
            tokio::spawn(async move {
                let mut h = histogram();
                for seq in 0..per_writer {
                    if start.elapsed() >= cap {
                        break;
                    }
                    let t = Instant::now();
                    log.append(append_request(w, seq, vec![event(seq)])).await.unwrap();
                    h.record(t.elapsed().as_micros().max(1) as u64).unwrap();
                }
                h
            })
        })
        .collect();
    let mut latency = histogram();
    for t in tasks {
        latency.add(t.await.unwrap()).unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    let events = latency.len();
    assert_eq!(log.head().position, events);
    drop(log);
    AppendRow { mode, writers, events, secs, latency }
}

/// Fills a store with `n` events quickly (Buffered, 1,000-event batches).
async fn fill(path: &Path, n: u64) -> f64 {
    let log = open(path, Durability::Buffered);
    let start = Instant::now();
    let writers = 4u64;
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let log = log.clone();
            tokio::spawn(async move {
                let mut seq = w;
                let mut left = n / writers + u64::from(w < n % writers);
                while left > 0 {
                    let k = left.min(1000);
                    let events = (0..k).map(|i| event(seq * 1000 + i)).collect();
                    log.append(append_request(w as usize, seq, events)).await.unwrap();
                    left -= k;
                    seq += writers;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(log.head().position, n);
    let secs = start.elapsed().as_secs_f64();
    drop(log);
    secs
}

struct ReadRow {
    what: &'static str,
    events: u64,
    secs: f64,
    note: String,
}

async fn read_all_verified(log: &Arc<SledLog>, what: &'static str) -> ReadRow {
    let start = Instant::now();
    let mut chain = ChainVerifier::default();
    let mut bytes = 0u64;
    loop {
        let page = log.read_all(chain.head_position() + 1, 1024).await.unwrap();
        if page.is_empty() {
            break;
        }
        for ev in &page {
            chain.check(ev).unwrap();
            bytes += ev.payload.len() as u64;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    ReadRow {
        what,
        events: chain.events(),
        secs,
        note: format!("{:.0} MB/s of payload", bytes as f64 / secs / 1e6),
    }
}

/// The same pass as [`read_all_verified`] over borrowed records
/// (`read_all_with`): nothing is copied, and the chain is checked as before.
async fn read_all_with_verified(log: &Arc<SledLog>, what: &'static str) -> ReadRow {
    let start = Instant::now();
    let mut chain = ChainVerifier::default();
    let mut bytes = 0u64;
    loop {
        let n = log
            .read_all_with(chain.head_position() + 1, 1024, &mut |view| {
                chain.check_view(view)?;
                bytes += view.payload.len() as u64;
                Ok(())
            })
            .await
            .unwrap();
        if n == 0 {
            break;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    ReadRow {
        what,
        events: chain.events(),
        secs,
        note: format!("{:.0} MB/s of payload", bytes as f64 / secs / 1e6),
    }
}

async fn subscribe_catch_up(log: &Arc<SledLog>) -> ReadRow {
    let head = log.head().position;
    let dynlog: Arc<dyn EventLog> = log.clone();
    let start = Instant::now();
    let mut sub = subscribe(dynlog, 1);
    let mut n = 0;
    while let Some(ev) = sub.next().await {
        n += 1;
        if ev.unwrap().position == head {
            break;
        }
    }
    ReadRow {
        what: "subscribe, catch-up from position 1",
        events: n,
        secs: start.elapsed().as_secs_f64(),
        note: String::new(),
    }
}

/// 64 writers append `events` (Durable) while one subscriber follows live.
async fn subscribe_live(dir: &Path, events: u64, seconds: u64) -> (ReadRow, Histogram<u64>) {
    let store = tempfile::tempdir_in(dir).unwrap();
    let log = open(store.path(), Durability::Durable);
    let writers = 64usize;
    let per_writer = events.div_ceil(writers as u64);
    let acks: Arc<Mutex<HashMap<Position, Instant>>> = Arc::default();
    let dynlog: Arc<dyn EventLog> = log.clone();
    let subscriber = tokio::spawn(async move {
        let mut sub = subscribe(dynlog, 1);
        let mut received = Vec::new();
        while let Some(ev) = sub.next().await {
            let ev = ev.unwrap();
            received.push((ev.position, Instant::now()));
            if ev.payload == b"STOP" {
                break;
            }
        }
        received
    });
    let start = Instant::now();
    let cap = Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let (log, acks) = (log.clone(), acks.clone());
            tokio::spawn(async move {
                let mut mine = Vec::new();
                for seq in 0..per_writer {
                    if start.elapsed() >= cap {
                        break;
                    }
                    let o =
                        log.append(append_request(w, seq, vec![event(seq)])).await.unwrap().outcome;
                    mine.push((o.last_position, Instant::now()));
                }
                acks.lock().unwrap().extend(mine);
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let mut stop = append_request(0, 0, vec![event(0)]);
    stop.events[0].payload = b"STOP".to_vec();
    log.append(stop).await.unwrap();
    let received = subscriber.await.unwrap();
    let secs = start.elapsed().as_secs_f64();
    let acks = acks.lock().unwrap();
    let mut lag = histogram();
    for (pos, at) in &received {
        if let Some(acked) = acks.get(pos) {
            lag.record(at.saturating_duration_since(*acked).as_micros().max(1) as u64).unwrap();
        }
    }
    let row = ReadRow {
        what: "subscribe, live behind 64 Durable writers",
        events: received.len() as u64,
        secs,
        note: format!(
            "delivery after ack: p50 {} µs, p99 {} µs",
            lag.value_at_quantile(0.5),
            lag.value_at_quantile(0.99)
        ),
    };
    drop(log);
    (row, lag)
}

fn main() {
    let c = parse_args();
    std::fs::create_dir_all(&c.dir).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);

    let probe = fsync::probe(&c.dir, 2000, Duration::from_secs(5)).unwrap();
    println!("machine: {cores} cores; store directory {}", c.dir.display());
    println!("{probe}\n");

    println!("### Append ({PAYLOAD}-byte payload, one event per append, ExpectedVersion::Any)\n");
    println!("| durability | writers | events | seconds | events/s | p50 µs | p99 µs | max µs |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for &mode in &c.modes {
        for &writers in &c.writers {
            let r = runtime.block_on(append_run(&c.dir, mode, writers, &c));
            println!(
                "| {:?} | {} | {} | {:.2} | {:.0} | {} | {} | {} |",
                r.mode,
                r.writers,
                r.events,
                r.secs,
                r.events as f64 / r.secs,
                r.latency.value_at_quantile(0.5),
                r.latency.value_at_quantile(0.99),
                r.latency.max()
            );
        }
    }

    println!("\n### Read and subscribe ({} events of {PAYLOAD} bytes)\n", c.read_events);
    // The live run goes first, on its own store, so the write-back of the
    // large store below does not slow its fsyncs.
    let live_events = (c.events / 2).max(1000);
    let live = runtime.block_on(subscribe_live(&c.dir, live_events, c.seconds)).0;
    let store = tempfile::tempdir_in(&c.dir).unwrap();
    let fill_secs = runtime.block_on(fill(store.path(), c.read_events));
    let mut rows = vec![live];
    rows.push(ReadRow {
        what: "fill (Buffered, 4 writers, 1,000-event appends)",
        events: c.read_events,
        secs: fill_secs,
        note: String::new(),
    });
    let t = Instant::now();
    let log = open(store.path(), Durability::Durable);
    let open_secs = t.elapsed().as_secs_f64();
    rows.push(runtime.block_on(read_all_verified(
        &log,
        "read_all, decoded + ChainVerifier (pages of 1,024), first pass after reopen",
    )));
    rows.push(
        runtime.block_on(read_all_verified(&log, "read_all, decoded + ChainVerifier, again")),
    );
    rows.push(runtime.block_on(read_all_with_verified(
        &log,
        "read_all_with, borrowed views + ChainVerifier (pages of 1,024)",
    )));
    let t = Instant::now();
    let report = runtime.block_on(log.verify()).unwrap();
    rows.push(ReadRow {
        what: "SledLog::verify (whole chain)",
        events: report.events,
        secs: t.elapsed().as_secs_f64(),
        note: String::new(),
    });
    rows.push(runtime.block_on(subscribe_catch_up(&log)));
    let size = runtime.block_on(log.size_on_disk()).unwrap_or(0);
    drop(log);
    println!("| run | events | seconds | events/s | note |");
    println!("|---|---:|---:|---:|---|");
    for r in rows {
        println!(
            "| {} | {} | {:.2} | {:.0} | {} |",
            r.what,
            r.events,
            r.secs,
            r.events as f64 / r.secs,
            r.note
        );
    }
    println!(
        "\nreopen of the {}-event store: {:.0} ms; size on disk {:.0} MB",
        c.read_events,
        open_secs * 1e3,
        size as f64 / 1e6
    );
    println!("{probe}");
}
