//! Full rebuild of every projection over a Tinghu-size district log.
//!
//! The log is generated once (and kept for reruns): an organisation the
//! size of Tinghu (10 streets, 70 communities, 427 grids, 1,976
//! micro-grids, 30 departments) and case lifecycles with realistic
//! escalation, returns, joint handling, extensions, overdue marks,
//! callbacks and reopens, appended straight to a `SledLog` in large
//! concurrent batches with `Buffered` durability, the log's clock set to
//! each batch's simulated time. The district and the lifecycle steps are
//! `benches/support/district.rs`, shared with `benches/projection_apply.rs`;
//! the case mix is this file's.
//!
//! The rebuild is then timed phase by phase, each a full pass over the log:
//! 1. read (sled + record decode + BLAKE3 of each record),
//! 2. + hash-chain check + payload decode,
//! 3. + apply to a `ProjectionSet` (single task; apply timed apart),
//! 4. the library's `rebuild` (the fold inside the log's visiting read, on
//!    records borrowed from the store),
//!    with peak memory (VmHWM, reset before the pass);
//!
//! "Apply" is the set's one per-case fold (`Case::apply`, retention) and
//! every projection, the case listing included. Then BLAKE3 alone over a
//! sample of canonical record bytes, the digest and the saved state's size.
//!
//! Run: `cargo bench --bench projections` (10 million events), or
//! `GRIDCASE_BENCH_EVENTS=200000 cargo bench --bench projections` for a
//! quick run; `GRIDCASE_BENCH_DIR` chooses where the generated log is kept,
//! `GRIDCASE_BENCH_PHASES=read,decode,apply,rebuild` which passes run (a
//! rebuild alone in a fresh process gives a clean peak-memory figure) and
//! `GRIDCASE_BENCH_SLED_CACHE_MB` the sled page cache (default 64 MB).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gridcase_engine::domain::event::OverdueKind;
use gridcase_engine::domain::{Case, Event, HopReason, Level, Satisfaction};
use gridcase_engine::log::{
    encode_record, AppendRequest, ChainVerifier, Durability, Envelope, EventLog, ExpectedVersion,
    RecordView, SledLog, SledOptions, StreamId, CODEC_POSTCARD,
};
use gridcase_engine::org::ORG_STREAM;
use gridcase_engine::time::{ManualClock, Timestamp, DAY_MS, HOUR_MS};
use gridcase_projections::backlog::Backlog;
use gridcase_projections::cases::Cases;
use gridcase_projections::chains::Chains;
use gridcase_projections::overdue::Overdue;
use gridcase_projections::rates::Rates;
use gridcase_projections::{rebuild, Config, Projection, ProjectionSet, Store};

#[path = "support/district.rs"]
mod district;

use district::{
    case_id, case_stream, department_staff, next_arrival, tinghu, Org, Plan, Rng, MINUTE, START,
};

/// Simulated time covered by one append wave.
const WAVE_MS: i64 = 5 * MINUTE;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// One case's whole life, planned at submission: (time, actor, event), in
/// time order. The full mix: early exits, escalation, returns, joint
/// handling, extensions, overdue marks, supervision, callbacks and reopens.
fn plan_case(seq: u64, t0: i64, org: &Org, rng: &mut Rng) -> Vec<(i64, String, Event)> {
    let grid = org.pick_grid(rng);
    // A draw kept so that this generator writes the very log BENCHMARKS.md measured.
    rng.next();
    let mut case = Plan::submit(seq, t0, org, grid, rng);
    let cstaff = &grid.community_staff;
    // Invalid, duplicate and withdrawn requests leave early.
    match rng.below(100) {
        0..=2 => {
            let reason = "不属于受理范围".into();
            case.push(t0 + rng.minutes(10, 120), cstaff, Event::CaseRejected { reason });
            return case.events;
        }
        3 => {
            let into = case_id(seq.saturating_sub(1));
            case.push(t0 + rng.minutes(5, 60), cstaff, Event::CaseMerged { into });
            return case.events;
        }
        4 => {
            let reason = "已自行解决".into();
            case.push(t0 + rng.minutes(60, 2000), "resident:r1", Event::CaseWithdrawn { reason });
            return case.events;
        }
        _ => {}
    }
    // Work at the community first; 28% go on to a department.
    if case.route(rng) >= 72 {
        let joint = case.dispatch(org, rng);
        // A single department sometimes sends it back; the street picks another.
        if !joint && rng.chance(12) {
            case.t += rng.minutes(60, 600);
            let first = case.holders[0].clone();
            let street_hold = case.t + i64::from(case.limits.street_minutes) * MINUTE;
            case.push(
                case.t,
                department_staff(&first),
                Event::CaseReturned {
                    department: first.clone(),
                    reason: "非本部门职责".into(),
                    street_hold_until: Some(Timestamp(street_hold)),
                },
            );
            let other = org.departments[rng.below(org.departments.len())].clone();
            let next = if other == first { org.departments[0].clone() } else { other };
            case.t += rng.minutes(30, 600);
            case.dispatch_to(vec![next], HopReason::Return);
        }
        case.claim(rng);
    }
    // An extension, sometimes.
    if rng.chance(3) {
        let at = (case.t + MINUTE).min(case.due - MINUTE).max(case.t);
        let until = case.due + 3 * DAY_MS;
        let unit = case.holders[0].clone();
        let reason = "需要施工".into();
        case.push(at, "actor", Event::ExtensionRequested { unit, until: Timestamp(until), reason });
        case.push(
            at + 30 * MINUTE,
            "sup",
            Event::ExtensionApproved { by: "320902".into(), resolution_due: Timestamp(until) },
        );
        case.due = until;
        case.t = at + 30 * MINUTE;
    }
    // Resolution: usually well inside the limit, sometimes late (then marked overdue first).
    let late = rng.chance(5);
    let mut resolved_at = if late {
        case.due + rng.minutes(60, 4 * 24 * 60)
    } else {
        case.t + case.working_time(rng)
    };
    resolved_at = resolved_at.max(case.t + MINUTE);
    if resolved_at > case.due {
        let marked = case.due.max(case.t);
        let due = Timestamp(case.due);
        case.push(marked, "system", Event::CaseOverdue { what: OverdueKind::Resolution, due });
        if rng.chance(40) {
            let note = "请加快办理".into();
            case.push(marked + HOUR_MS, "sup", Event::CaseSupervised { by: "320902".into(), note });
            resolved_at = resolved_at.max(marked + 2 * HOUR_MS);
        }
    }
    case.t = resolved_at;
    case.resolve("已处理");
    // Callback, then close or reopen once.
    if !case.callback(rng) {
        case.t += rng.minutes(30, 240);
        let resolution_due = Timestamp(case.t + i64::from(case.limits.resolution_minutes) * MINUTE);
        let hold_until = (case.level != Level::Department).then_some(Timestamp(case.t + DAY_MS));
        case.push(
            case.t,
            cstaff,
            Event::CaseReopened {
                reason: "问题仍未解决".into(),
                level: case.level,
                holders: case.holders.clone(),
                resolution_due,
                hold_until,
            },
        );
        case.t += rng.minutes(60, 2 * 24 * 60);
        case.resolve("已重新处理");
        case.t += rng.minutes(60, 24 * 60);
        case.push(
            case.t,
            cstaff,
            Event::CallbackRecorded {
                satisfaction: Satisfaction::BasicallySatisfied,
                solved: true,
                note: String::new(),
            },
        );
    }
    case.close(rng)
}

struct Planned {
    stream: StreamId,
    events: std::vec::IntoIter<(i64, String, Event)>,
    next: Option<(i64, String, Event)>,
}

/// Generates the log (or reuses a complete one); returns it open.
async fn generate(dir: &PathBuf, target: u64, clock: &ManualClock) -> Res<Arc<dyn EventLog>> {
    let marker = dir.join("complete");
    let mut opts = SledOptions { durability: Durability::Buffered, ..SledOptions::default() };
    if let Some(mb) =
        std::env::var("GRIDCASE_BENCH_SLED_CACHE_MB").ok().and_then(|v| v.parse::<u64>().ok())
    {
        opts.cache_capacity = mb * 1024 * 1024;
    }
    if let Ok(text) = std::fs::read_to_string(&marker) {
        let log: Arc<dyn EventLog> =
            Arc::new(SledLog::open(dir.join("log"), opts.clone(), Arc::new(clock.clone()))?);
        if text.trim() == log.head().position.to_string() {
            eprintln!("reusing the log in {} ({} events)", dir.display(), log.head().position);
            return Ok(log);
        }
        drop(log);
    }
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    let log: Arc<dyn EventLog> =
        Arc::new(SledLog::open(dir.join("log"), opts, Arc::new(clock.clone()))?);
    let org = tinghu();
    clock.set(Timestamp(START - DAY_MS));
    let org_events = org.file.events()?;
    log.append(AppendRequest::new(
        StreamId::new(ORG_STREAM)?,
        ExpectedVersion::NoStream,
        "admin",
        org_events.iter().map(Event::to_data).collect(),
    ))
    .await?;
    let began = Instant::now();
    let mut rng = Rng::new();
    let mut heap: BinaryHeap<Reverse<(i64, u64)>> = BinaryHeap::new();
    let mut live: std::collections::HashMap<u64, Planned> = std::collections::HashMap::new();
    let (mut planned, mut seq) = (0u64, 0u64);
    let mut arrival = START;
    let mut wave_end = START;
    loop {
        wave_end += WAVE_MS;
        while planned < target && arrival < wave_end {
            seq += 1;
            let plan = plan_case(seq, arrival, &org, &mut rng);
            planned += plan.len() as u64;
            let mut it = plan.into_iter();
            let first = it.next();
            if let Some((t, _, _)) = &first {
                heap.push(Reverse((*t, seq)));
            }
            live.insert(
                seq,
                Planned { stream: StreamId::new(case_stream(seq))?, events: it, next: first },
            );
            arrival = next_arrival(arrival, &mut rng);
        }
        let mut requests = Vec::new();
        while let Some(Reverse((t, id))) = heap.peek().copied() {
            if t >= wave_end {
                break;
            }
            heap.pop();
            let Some(p) = live.get_mut(&id) else { continue };
            let mut events = Vec::new();
            let mut actor = String::new();
            while let Some((t, a, _)) = &p.next {
                if *t >= wave_end || (!events.is_empty() && *a != actor) {
                    break;
                }
                actor = a.clone();
                if let Some((_, _, e)) = p.next.take() {
                    events.push(e.to_data());
                }
                p.next = p.events.next();
            }
            requests.push(AppendRequest::new(
                p.stream.clone(),
                ExpectedVersion::Any,
                actor,
                events,
            ));
            match &p.next {
                Some((t, _, _)) => heap.push(Reverse((*t, id))),
                None => {
                    live.remove(&id);
                }
            }
        }
        if !requests.is_empty() {
            clock.set(Timestamp(wave_end));
            for r in futures::future::join_all(requests.into_iter().map(|r| log.append(r))).await {
                r?;
            }
        }
        if planned >= target && heap.is_empty() {
            break;
        }
        if wave_end % (30 * DAY_MS) < WAVE_MS {
            let head = log.head().position;
            eprintln!(
                "  generated {head} events ({:.0}/s)",
                head as f64 / began.elapsed().as_secs_f64()
            );
        }
    }
    let head = log.head().position;
    eprintln!("generated {head} events, {seq} cases, in {:.1?}", began.elapsed());
    std::fs::write(&marker, head.to_string())?;
    Ok(log)
}

fn status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn rate(n: u64, d: Duration) -> String {
    format!("{:>10.0} events/s ({:.2?})", n as f64 / d.as_secs_f64(), d)
}

const PAGE: usize = 4096;

async fn bench(events: u64, dir: PathBuf) -> Res<()> {
    // GRIDCASE_BENCH_PHASES=read,decode,apply,rebuild (default: all); a
    // rebuild alone in a fresh process gives a clean peak-memory figure.
    let phases = std::env::var("GRIDCASE_BENCH_PHASES")
        .unwrap_or_else(|_| "read,decode,apply,rebuild".into());
    let run = |p: &str| phases.split(',').any(|x| x.trim() == p);
    let clock = ManualClock::new(Timestamp(0));
    let log = generate(&dir, events, &clock).await?;
    let head = log.head().position;
    let config = Config::default();
    println!(
        "log: {head} events, {} on disk",
        log.size_on_disk().await.map(|b| format!("{:.2} GB", b as f64 / 1e9)).unwrap_or_default()
    );

    if run("read") {
        // Phase 1: read only.
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        let t = Instant::now();
        let mut next = 1;
        let mut bytes = 0u64;
        while next <= head {
            let page = log.read_all(next, PAGE).await?;
            let Some(last) = page.last() else { break };
            next = last.position + 1;
            bytes += page.iter().map(|r| r.payload.len() as u64).sum::<u64>();
        }
        let read = t.elapsed();
        println!(
            "1 read (sled + record decode + BLAKE3):       {}  payload {:.0} B/event",
            rate(head, read),
            bytes as f64 / head as f64
        );
        println!("  peak RSS {:.0} MB", status_kb("VmHWM:") as f64 / 1024.0);
    }

    if run("decode") {
        // Phase 2: + chain check + payload decode.
        let t = Instant::now();
        let mut next = 1;
        let mut chain = ChainVerifier::default();
        while next <= head {
            let page = log.read_all(next, PAGE).await?;
            let Some(last) = page.last() else { break };
            next = last.position + 1;
            for rec in &page {
                chain.check(rec)?;
                let ev = Event::from_recorded(rec).map_err(|e| e.0)?;
                std::hint::black_box(&ev);
            }
        }
        let decoded = t.elapsed();
        println!("2 + chain check + payload decode:             {}", rate(head, decoded));
    }

    let mut digest_single = None;
    if run("apply") {
        // Phase 3: + apply, single task, apply timed apart.
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        let t = Instant::now();
        let mut next = 1;
        let mut set = ProjectionSet::new(config);
        let mut apply = Duration::ZERO;
        while next <= head {
            let page = log.read_all(next, PAGE).await?;
            let Some(last) = page.last() else { break };
            next = last.position + 1;
            for rec in page {
                let ev = set.check_and_decode(&rec)?;
                let a = Instant::now();
                set.apply_decoded(&rec, &ev);
                apply += a.elapsed();
            }
        }
        let single = t.elapsed();
        println!("3 + apply (one task):                         {}", rate(head, single));
        println!("  of which apply:                             {}", rate(head, apply));
        println!("  peak RSS {:.0} MB", status_kb("VmHWM:") as f64 / 1024.0);
        digest_single = Some(set.digests().combined);
        drop(set);
    }
    if !run("rebuild") {
        return Ok(());
    }

    // Phase 4: the library's rebuild, with peak memory.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let rss_before = status_kb("VmRSS:");
    let t = Instant::now();
    let set = rebuild(&log, config).await?;
    let full = t.elapsed();
    let peak = status_kb("VmHWM:");
    println!("4 rebuild (library):                          {}", rate(head, full));
    println!(
        "  peak RSS {:.0} MB (RSS before {:.0} MB)",
        peak as f64 / 1024.0,
        rss_before as f64 / 1024.0
    );

    // Each projection alone, on a sample decoded into memory.
    let sample = log.read_all(1, 200_000.min(head as usize)).await?;
    let decoded: Vec<(gridcase_engine::log::RecordedEvent, Event)> = sample
        .iter()
        .map(|r| Event::from_recorded(r).map(|e| (r.clone(), e)))
        .collect::<Result<_, _>>()
        .map_err(|e| e.0)?;
    // The case states before and after each event, as the set hands them
    // to its projections (without evictions: the sample is the log's start).
    let mut live: std::collections::HashMap<String, Case> = std::collections::HashMap::new();
    let changes: Vec<(Option<Case>, Option<Case>)> = decoded
        .iter()
        .map(|(rec, ev)| {
            let Some(id) = gridcase_projections::case_id(&rec.stream) else { return (None, None) };
            let before = live.get(id).cloned();
            let after = match &before {
                Some(b) => {
                    let mut a = b.clone();
                    a.apply(ev, rec.recorded_at);
                    Some(a)
                }
                None => Case::start(ev, &rec.actor, rec.recorded_at),
            };
            if let Some(a) = &after {
                live.insert(id.to_string(), a.clone());
            }
            (before, after)
        })
        .collect();
    drop(live);
    fn alone<P: Projection + Default>(
        decoded: &[(gridcase_engine::log::RecordedEvent, Event)],
        changes: &[(Option<Case>, Option<Case>)],
    ) -> Duration {
        let mut p = P::default();
        let t = Instant::now();
        for ((rec, ev), (before, after)) in decoded.iter().zip(changes) {
            p.apply(&RecordView::of(rec), ev, before.as_ref(), after.as_ref());
        }
        let d = t.elapsed();
        std::hint::black_box(&p);
        d
    }
    let n = decoded.len() as u64;
    println!("  apply alone, {n} events in memory (given the case before and after):");
    println!("    backlog {}", rate(n, alone::<Backlog>(&decoded, &changes)));
    println!("    rates   {}", rate(n, alone::<Rates>(&decoded, &changes)));
    println!("    chains  {}", rate(n, alone::<Chains>(&decoded, &changes)));
    println!("    overdue {}", rate(n, alone::<Overdue>(&decoded, &changes)));
    println!("    cases   {}", rate(n, alone::<Cases>(&decoded, &changes)));
    drop(changes);
    let mut all = ProjectionSet::new(config);
    let t = Instant::now();
    for (rec, ev) in &decoded {
        all.apply_decoded(rec, ev);
    }
    println!("    all     {}", rate(n, t.elapsed()));
    drop(all);

    // Hashing alone, on a sample of canonical record bytes.
    let encoded: Vec<Vec<u8>> = sample
        .iter()
        .map(|r| {
            encode_record(&Envelope {
                position: r.position,
                stream: r.stream.clone(),
                version: r.version,
                event_type: r.event_type.clone(),
                schema_version: r.schema_version,
                recorded_at: r.recorded_at.0,
                actor: r.actor.clone(),
                correlation_id: r.correlation_id.clone(),
                causation_id: r.causation_id.clone(),
                idempotency: r.idempotency.clone(),
                payload_codec: CODEC_POSTCARD,
                payload: r.payload.clone(),
                prev_hash: r.prev_hash,
            })
        })
        .collect::<Result<_, _>>()?;
    let t = Instant::now();
    for b in &encoded {
        std::hint::black_box(blake3::hash(b));
    }
    let hash = t.elapsed();
    let rec_bytes: usize = encoded.iter().map(Vec::len).sum();
    println!(
        "  BLAKE3 alone: {} over {} sampled records ({:.0} B/record)",
        rate(encoded.len() as u64, hash),
        encoded.len(),
        rec_bytes as f64 / encoded.len() as f64
    );

    let t = Instant::now();
    let digests = set.digests();
    println!("digest {:.2?}: {}", t.elapsed(), digests.combined);
    if let Some(single) = digest_single {
        assert_eq!(digests.combined, single, "both rebuilds must reach the same state");
    }
    let store = Store::open(dir.join("state"))?;
    let t = Instant::now();
    let saved = store.save(&set)?;
    println!("state saved in {:.2?}: {:.1} MB", t.elapsed(), saved as f64 / 1e6);
    println!(
        "tracked cases {}; rate rows {}; listed cases {} ({:.0} B each, {:.1} MB)",
        set.tracked_cases(),
        set.rates().rows(),
        set.cases().len(),
        set.cases().heap_bytes() as f64 / set.cases().len().max(1) as f64,
        set.cases().heap_bytes() as f64 / 1e6,
    );
    let month = set.rates().periods(gridcase_projections::PeriodKind::Month);
    if let Some(m) = month.get(month.len().saturating_sub(2)) {
        let r = set.rates_report(*m, 98.5);
        let d = r
            .units
            .iter()
            .find(|u| u.kind == gridcase_engine::org::UnitKind::District)
            .ok_or("no district")?;
        println!(
            "district {}: resolution {:.2}% satisfaction {:.2}% on-time {:.2}% return {:.2}%; {} units below 98.5%",
            r.period,
            d.resolution.percent().unwrap_or(0.0),
            d.satisfaction.percent().unwrap_or(0.0),
            d.on_time.percent().unwrap_or(0.0),
            d.return_rate.percent().unwrap_or(0.0),
            r.below_target().count()
        );
    }
    let chains = set.chain_report();
    for s in chains.shapes.iter().take(5) {
        println!("  shape {:<40} {}", s.shape, s.cases);
    }
    Ok(())
}

fn main() -> Res<()> {
    let mut events: u64 = std::env::var("GRIDCASE_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(10_000_000);
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--events") {
        events = args
            .get(i + 1)
            .and_then(|v| v.replace('_', "").parse().ok())
            .ok_or("--events needs a number")?;
    }
    let dir = std::env::var("GRIDCASE_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(format!("target/bench-data/projections-{events}")));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(bench(events, dir))
}
