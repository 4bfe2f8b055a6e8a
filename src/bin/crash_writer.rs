//! Test-support binary for the log's crash test (`tests/log/crash.rs`): opens
//! a `SledLog` in the given directory and appends from several concurrent
//! tokio tasks to several streams until it is killed (or `--max-seconds`
//! passes), printing one line per ACKNOWLEDGED append and flushing stdout:
//!
//! ```text
//! ready <head position>
//! ack <first position> <last position> <stream> <last version> <batch tag> <events>
//! ```
//!
//! Event `i` of a batch carries the payload `<batch tag>/<i>/<events>/` plus
//! filler, so a reader can check every batch is whole. Usage:
//! `crash_writer DIR [--tasks N] [--streams N] [--durability MODE] [--max-seconds S] [--seed N]
//! [--appends N] [--events N]`: `--appends` stops each task after N appends
//! (then the process exits by itself), `--events` makes every append carry
//! exactly N events (the durability test's single-event appends).

use std::io::Write;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gridcase::engine::log::{
    AppendRequest, Durability, EventData, EventLog, ExpectedVersion, SledLog, SledOptions,
    StreamId, CODEC_POSTCARD,
};
use gridcase::engine::time::SystemClock;

struct Args {
    dir: String,
    tasks: usize,
    streams: usize,
    durability: Durability,
    max_seconds: u64,
    seed: u64,
    /// Appends per task before it stops (unbounded when `None`).
    appends: Option<u64>,
    /// Events per append (random sizes when `None`).
    events: Option<u64>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().ok_or("usage: crash_writer DIR [options]")?;
    let mut out = Args {
        dir,
        tasks: 8,
        streams: 5,
        durability: Durability::Durable,
        max_seconds: 60,
        seed: std::process::id() as u64,
        appends: None,
        events: None,
    };
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let num = || value.parse::<u64>().map_err(|e| format!("{flag} {value}: {e}"));
        match flag.as_str() {
            "--tasks" => out.tasks = num()? as usize,
            "--streams" => out.streams = num()? as usize,
            "--max-seconds" => out.max_seconds = num()?,
            "--seed" => out.seed = num()?,
            "--appends" => out.appends = Some(num()?),
            "--events" => out.events = Some(num()?.max(1)),
            "--durability" => {
                out.durability = Durability::from_str(&value).map_err(|e| e.to_string())?
            }
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(out)
}

/// xorshift64*: enough randomness for batch sizes without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Writes one whole line and flushes it, so the reader never sees half an ack.
fn emit(line: &str) {
    let mut out = std::io::stdout().lock();
    let ok = out.write_all(line.as_bytes()).and_then(|_| out.flush());
    if ok.is_err() {
        // The reader went away: nobody can learn of later acknowledgements.
        std::process::exit(0);
    }
}

async fn task(log: Arc<SledLog>, args: Arc<Args>, task: usize, deadline: Instant) {
    let mut rng = Rng((args.seed ^ (task as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1);
    let mut seq = 0u64;
    while Instant::now() < deadline && args.appends.is_none_or(|n| seq < n) {
        seq += 1;
        let stream = format!("crash-{}", rng.below(args.streams as u64));
        // Mostly small batches; now and then one that spans several frames.
        let count = match args.events {
            Some(n) => n,
            None if rng.below(50) == 0 => 300 + rng.below(400),
            None => 1 + rng.below(4),
        };
        let batch = format!("{:x}.{task}.{seq}", args.seed);
        let events = (0..count)
            .map(|i| {
                let mut payload = format!("{batch}/{i}/{count}/").into_bytes();
                payload.resize(payload.len() + 64 + rng.below(128) as usize, b'.');
                EventData {
                    event_type: "CrashTest".into(),
                    schema_version: 1,
                    payload_codec: CODEC_POSTCARD,
                    payload,
                }
            })
            .collect();
        let Ok(stream_id) = StreamId::new(stream.clone()) else { return };
        let mut request =
            AppendRequest::new(stream_id, ExpectedVersion::Any, "crash-writer", events);
        request.idempotency_key = (rng.below(4) == 0).then(|| format!("idem-{batch}"));
        match log.append(request).await.map(|a| a.outcome) {
            Ok(o) => emit(&format!(
                "ack {} {} {stream} {} {batch} {count}\n",
                o.first_position, o.last_position, o.last_version
            )),
            Err(e) => {
                eprintln!("crash_writer: append failed: {e}");
                std::process::exit(2);
            }
        }
    }
}

fn main() {
    let args = match parse_args() {
        Ok(a) => Arc::new(a),
        Err(e) => {
            eprintln!("crash_writer: {e}");
            std::process::exit(64);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("crash_writer: cannot start tokio: {e}");
            std::process::exit(1);
        }
    };
    runtime.block_on(async {
        let options = SledOptions { durability: args.durability, ..SledOptions::default() };
        let log = match SledLog::open(&args.dir, options, Arc::new(SystemClock)) {
            Ok(l) => Arc::new(l),
            Err(e) => {
                eprintln!("crash_writer: cannot open {}: {e}", args.dir);
                std::process::exit(1);
            }
        };
        emit(&format!("ready {}\n", log.head().position));
        let deadline = Instant::now() + Duration::from_secs(args.max_seconds);
        let tasks: Vec<_> = (0..args.tasks)
            .map(|t| tokio::spawn(task(log.clone(), args.clone(), t, deadline)))
            .collect();
        for t in tasks {
            let _ = t.await;
        }
    });
}
