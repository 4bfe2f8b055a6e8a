//! Kill-the-writer crash test for the sled backend (Durable mode).
//!
//! Each cycle starts the `crash_writer` binary on the same store, reads its
//! acknowledgements over a pipe, kills it with SIGKILL at a random moment
//! (sometimes before it even finished opening), then reopens the store in
//! this process and checks: every acknowledged append is present at its
//! positions with its stream and versions, positions are gap-free, every
//! batch is whole or absent, each stream's versions run 1, 2, 3…, keyed
//! appends are deduplicated when retried, and `verify()` passes. The next
//! cycle's writer must report the head this cycle left.
//!
//! CI runs 20 cycles. The soak (about 1,000 kills; a fresh store every 50
//! cycles keeps the per-cycle check bounded):
//!
//! ```text
//! GRIDCASE_CRASH_CYCLES=1000 CARGO_TARGET_DIR=/work/target-logtests \
//!     cargo test --release --test tests log::crash -- --nocapture
//! ```
//! `GRIDCASE_CRASH_SEED=N` replays a run's kill schedule;
//! `GRIDCASE_CRASH_DURABILITY=flushed` runs the writer in another mode.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use gridcase::engine::log::{AppendRequest, EventData, EventLog, ExpectedVersion, SledOptions};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::backend::{open_sled, runtime};
use super::support::{check_structure, read_everything, sid};

const DEFAULT_CYCLES: usize = 20;
const CYCLES_PER_STORE: usize = 50;

/// The writer's durability: `durable` unless `GRIDCASE_CRASH_DURABILITY` says
/// otherwise (`buffered` acknowledges before the flush, so this test must
/// then fail: a way to see that it can).
fn durability() -> String {
    std::env::var("GRIDCASE_CRASH_DURABILITY").unwrap_or_else(|_| "durable".into())
}

/// One acknowledged append, as the writer printed it.
#[derive(Clone, Debug)]
struct Ack {
    first: u64,
    last: u64,
    stream: String,
    last_version: u64,
    batch: String,
    count: u64,
}

fn parse_ack(line: &str) -> Ack {
    let f: Vec<&str> = line.split_whitespace().collect();
    assert_eq!((f.len(), f[0]), (7, "ack"), "bad line from the writer: {line:?}");
    let num = |s: &str| s.parse::<u64>().unwrap_or_else(|_| panic!("bad number in {line:?}"));
    Ack {
        first: num(f[1]),
        last: num(f[2]),
        stream: f[3].to_string(),
        last_version: num(f[4]),
        batch: f[5].to_string(),
        count: num(f[6]),
    }
}

/// What one writer run printed before it died.
struct Run {
    ready: Option<u64>,
    acks: Vec<Ack>,
}

/// Starts the writer, kills it per the plan, returns what it acknowledged.
fn run_writer(dir: &Path, seed: u64, rng: &mut ChaCha8Rng) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_crash_writer"))
        .arg(dir)
        .args(["--tasks", "6", "--streams", "5", "--durability", &durability()])
        .args(["--max-seconds", "120", "--seed", &seed.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start crash_writer");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        loop {
            let mut line = String::new();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                // A line cut short by the kill is not an acknowledgement.
                Ok(_) if !line.ends_with('\n') => return,
                Ok(_) => {
                    if tx.send(line).is_err() {
                        return;
                    }
                }
            }
        }
    });

    let mut lines = Vec::new();
    let plan = rng.random_range(0..10);
    if plan == 0 {
        // Kill during startup and recovery.
        std::thread::sleep(Duration::from_micros(rng.random_range(0..40_000)));
    } else {
        // Kill after a random number of acknowledgements, plus a little.
        let want = if plan < 4 { rng.random_range(0..20) } else { rng.random_range(20..400) };
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut acks = 0;
        while acks < want + 1 {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    acks += usize::from(line.starts_with("ack "));
                    lines.push(line);
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!("the writer stopped acknowledging ({acks} of {want} acks)");
                }
            }
        }
        std::thread::sleep(Duration::from_micros(rng.random_range(0..3_000)));
    }
    child.kill().expect("SIGKILL the writer");
    let status = child.wait().expect("reap the writer");
    assert!(status.code().is_none(), "the writer exited by itself ({status}) before the kill");
    reader.join().expect("reader thread");
    lines.extend(rx.try_iter());

    let mut run = Run { ready: None, acks: Vec::new() };
    for line in &lines {
        if let Some(head) = line.strip_prefix("ready ") {
            run.ready = Some(head.trim().parse().expect("ready line"));
        } else {
            run.acks.push(parse_ack(line));
        }
    }
    run
}

/// Reopens the store and checks it against every acknowledgement so far.
/// Returns the head position.
async fn check_store(dir: &Path, acked: &BTreeMap<u64, Ack>, new_acks: &[Ack]) -> u64 {
    let log = open_sled(dir, &SledOptions::default()).expect("reopen after the kill");
    let report = log.verify().await.expect("verify after the kill");
    let head = log.head();
    assert_eq!((report.events, report.head), (head.position, head));
    let all = read_everything(&log, 4096).await;
    check_structure(&log, &all);

    // Every acknowledged append is there, whole, where it was acknowledged.
    for ack in acked.values() {
        assert!(ack.last <= head.position, "acknowledged {ack:?} lost (head {})", head.position);
        assert_eq!(ack.last - ack.first + 1, ack.count);
        for (i, ev) in all[(ack.first - 1) as usize..ack.last as usize].iter().enumerate() {
            let version = ack.last_version + 1 + i as u64 - ack.count;
            assert_eq!((ev.stream.as_str(), ev.version), (ack.stream.as_str(), version));
            let prefix = format!("{}/{i}/{}/", ack.batch, ack.count);
            assert!(ev.payload.starts_with(prefix.as_bytes()), "event {} of {ack:?}", ev.position);
        }
    }
    // Every batch in the log, acknowledged or not, is whole and contiguous.
    let mut i = 0;
    while i < all.len() {
        let text = String::from_utf8_lossy(&all[i].payload).into_owned();
        let parts: Vec<&str> = text.splitn(4, '/').collect();
        let (batch, count) = (parts[0], parts[2].parse::<usize>().expect("count"));
        assert_eq!(parts[1], "0", "position {} starts in the middle of a batch", all[i].position);
        assert!(i + count <= all.len(), "batch {batch} cut short at the head");
        for (j, ev) in all[i..i + count].iter().enumerate() {
            let want = format!("{batch}/{j}/{count}/");
            assert!(ev.payload.starts_with(want.as_bytes()), "batch {batch} broken at {j}");
            assert_eq!(ev.stream, all[i].stream);
        }
        i += count;
    }
    // Keyed appends of this run are deduplicated when retried after the crash.
    let by_first: HashMap<u64, &Ack> = new_acks.iter().map(|a| (a.first, a)).collect();
    let mut retried = 0;
    for ev in &all {
        let (Some(mark), Some(ack)) = (&ev.idempotency, by_first.get(&ev.position)) else {
            continue;
        };
        let events: Vec<EventData> = all[(ack.first - 1) as usize..ack.last as usize]
            .iter()
            .map(|e| EventData {
                event_type: e.event_type.clone(),
                schema_version: e.schema_version,
                payload_codec: e.payload_codec,
                payload: e.payload.clone(),
            })
            .collect();
        let mut request =
            AppendRequest::new(sid(&ev.stream), ExpectedVersion::Any, &ev.actor, events);
        request.idempotency_key = Some(mark.key.clone());
        let outcome = log.append(request).await.expect("retry of a keyed append").outcome;
        assert!(outcome.deduplicated, "key {} was not deduplicated after the crash", mark.key);
        assert_eq!((outcome.first_position, outcome.last_position), (ack.first, ack.last));
        retried += 1;
    }
    assert_eq!(log.head(), head, "a retry wrote something");
    eprintln!(
        "  head {}, {} acknowledged appends checked, {retried} keyed retries",
        head.position,
        acked.len()
    );
    head.position
}

#[test]
fn acknowledged_appends_survive_sigkill() {
    let cycles: usize = std::env::var("GRIDCASE_CRASH_CYCLES")
        .ok()
        .map(|v| v.parse().expect("GRIDCASE_CRASH_CYCLES must be a number"))
        .unwrap_or(DEFAULT_CYCLES);
    let seed: u64 = std::env::var("GRIDCASE_CRASH_SEED")
        .ok()
        .map(|v| v.parse().expect("GRIDCASE_CRASH_SEED must be a number"))
        .unwrap_or_else(|| rand::rng().random());
    eprintln!("crash test: {cycles} cycles, GRIDCASE_CRASH_SEED={seed}");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let rt = runtime();
    let mut dir = tempfile::tempdir().unwrap();
    let mut acked: BTreeMap<u64, Ack> = BTreeMap::new();
    let mut head = 0;
    let mut total_acks = 0;
    for cycle in 0..cycles {
        if cycle > 0 && cycle % CYCLES_PER_STORE == 0 {
            dir = tempfile::tempdir().unwrap();
            acked.clear();
            head = 0;
        }
        let run = run_writer(dir.path(), seed ^ cycle as u64, &mut rng);
        if let Some(ready) = run.ready {
            assert_eq!(ready, head, "cycle {cycle}: the writer did not continue from the head");
        }
        total_acks += run.acks.len();
        eprintln!("cycle {cycle}: ready {:?}, {} acks", run.ready, run.acks.len());
        for ack in &run.acks {
            let previous = acked.insert(ack.first, ack.clone());
            assert!(previous.is_none(), "position {} acknowledged twice", ack.first);
        }
        let new_head = rt.block_on(check_store(dir.path(), &acked, &run.acks));
        assert!(new_head >= head, "cycle {cycle}: the head went back from {head} to {new_head}");
        head = new_head;
    }
    assert!(total_acks > 0, "no append was ever acknowledged");
}
