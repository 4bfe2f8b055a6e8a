//! `gridcase bench`: escalation throughput at city scale, the same seeded
//! workload on the sled store and on PostgreSQL in one run, side by side.
//!
//! The workload is the simulator (the demo's, at city scale): residents
//! submitting on a Poisson schedule, grid workers, streets and departments
//! working their queues, deadlines firing, callbacks and reopens. Because the
//! simulator's choices are keyed by arrival number, both stores receive the
//! same requests and the same decisions, so their figures compare like for
//! like.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use gridcase_engine::domain::ActorId;
use gridcase_engine::log::{
    AppendRequest, Durability, EventData, EventLog, ExpectedVersion, SledLog, SledOptions,
    StreamId, CODEC_POSTCARD,
};
use gridcase_engine::org::OrgFile;
use gridcase_engine::time::{Clock, ManualClock};
use gridcase_engine::{Engine, EngineOptions};
use serde::Serialize;

use crate::error::CliError;
use crate::output::{self, Table};
use crate::Global;

/// Options of `gridcase bench`.
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// The global `--durability`, for both stores alike (set by `bench`).
    #[arg(skip)]
    durability: Durability,
    /// sled, postgres or both (`gridcase bench --store both` says the same).
    #[arg(long = "on", default_value = "sled")]
    on: String,
    /// PostgreSQL URL for the postgres runs.
    #[arg(long, env = "GRIDCASE_PG_URL")]
    pg_url: Option<String>,
    /// Organisation: chengdu (118 streets, 2,950 communities) or tinghu.
    #[arg(long, default_value = "chengdu")]
    shape: String,
    /// Simulated days of intake.
    #[arg(long, default_value_t = 1)]
    days: u32,
    /// Simulated days after intake stops, so cases finish.
    #[arg(long, default_value_t = 1)]
    drain_days: u32,
    /// Mean new requests per simulated day.
    #[arg(long, default_value_t = 20_000.0)]
    rate: f64,
    /// Concurrent actors.
    #[arg(long, default_value_t = 64)]
    actors: usize,
    /// Seed.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Also run the scaling curve over 1, 4, 16, 64, 256 actors.
    #[arg(long)]
    scaling: bool,
    /// Also run with this many events already in the store (repeatable, e.g. --preload 1000000).
    #[arg(long)]
    preload: Vec<u64>,
    /// Where the sled stores are made (removed afterwards).
    #[arg(long, default_value = "./gridcase-bench")]
    scratch: std::path::PathBuf,
}

/// The figures of one run.
#[derive(Clone, Debug, Serialize)]
pub struct Figures {
    /// sled or postgres.
    pub store: String,
    /// Concurrent actors.
    pub actors: usize,
    /// Events in the store before the run.
    pub preloaded: u64,
    /// Seconds to open the engine on the store (its catch-up over the
    /// events already there), before the timed run.
    pub start_seconds: f64,
    /// Seconds to save the engine's open-case checkpoint after the run.
    pub checkpoint_seconds: f64,
    /// Seconds to open the engine again from that checkpoint (catch-up included).
    pub restart_seconds: f64,
    /// Wall-clock seconds of the run.
    pub seconds: f64,
    /// Cases closed per second (full lifecycles).
    pub lifecycles_per_s: f64,
    /// Accepted commands per second.
    pub commands_per_s: f64,
    /// Escalations and dispatches per second.
    pub escalations_per_s: f64,
    /// Events appended per second.
    pub events_per_s: f64,
    /// Median command latency, microseconds.
    pub p50_us: u64,
    /// 99th percentile command latency, microseconds.
    pub p99_us: u64,
    /// Median time from an event's append to its arrival at a live subscriber, milliseconds.
    pub feed_lag_p50_ms: f64,
    /// 99th percentile of the same, milliseconds.
    pub feed_lag_p99_ms: f64,
    /// Store bytes per million events.
    pub mib_per_million_events: f64,
    /// Peak resident memory of the process during the run, MiB.
    pub peak_rss_mib: f64,
    /// Seconds the actors spent working cases (the rest: deadline ticks).
    pub work_seconds: f64,
    /// Seconds spent in deadline ticks.
    pub tick_seconds: f64,
    /// Cases submitted.
    pub cases: u64,
    /// Cases closed.
    pub closed: u64,
    /// Events appended.
    pub events: u64,
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn reset_peak_rss() {
    // Linux: writing 5 resets VmHWM to the current RSS, so each run reports its own peak.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

static RUN: AtomicU64 = AtomicU64::new(0);

async fn open_store(
    store: &str,
    a: &BenchArgs,
    clock: Arc<dyn Clock>,
) -> Result<(Arc<dyn EventLog>, Box<dyn FnOnce() + Send>), CliError> {
    let n = RUN.fetch_add(1, Ordering::SeqCst);
    match store {
        "sled" => {
            let dir = a.scratch.join(format!("sled-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            let log = SledLog::open(
                &dir,
                SledOptions { durability: a.durability, ..SledOptions::default() },
                clock,
            )?;
            let cleanup: Box<dyn FnOnce() + Send> = Box::new(move || {
                let _ = std::fs::remove_dir_all(&dir);
            });
            Ok((Arc::new(log), cleanup))
        }
        "postgres" => open_pg(a, clock, n).await,
        other => Err(CliError::Usage(format!("--on {other:?}: use sled, postgres or both"))),
    }
}

#[cfg(feature = "postgres")]
async fn open_pg(
    a: &BenchArgs,
    clock: Arc<dyn Clock>,
    n: u64,
) -> Result<(Arc<dyn EventLog>, Box<dyn FnOnce() + Send>), CliError> {
    let url = a
        .pg_url
        .clone()
        .ok_or_else(|| CliError::Usage("postgres runs need --pg-url or GRIDCASE_PG_URL".into()))?;
    let schema = format!("gc_bench_{}_{n}", std::process::id());
    let log = gridcase_postgres::PgLog::open(
        &url,
        gridcase_postgres::PgOptions {
            schema: schema.clone(),
            durability: a.durability,
            ..Default::default()
        },
        clock,
    )
    .await?;
    let cleanup: Box<dyn FnOnce() + Send> = Box::new(move || {
        // Dropping the schema needs the runtime; do it on a helper thread with its own.
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                let _ = rt.block_on(gridcase_postgres::PgLog::drop_store(&url, &schema));
            }
        })
        .join();
    });
    Ok((Arc::new(log), cleanup))
}

#[cfg(not(feature = "postgres"))]
async fn open_pg(
    _a: &BenchArgs,
    _clock: Arc<dyn Clock>,
    _n: u64,
) -> Result<(Arc<dyn EventLog>, Box<dyn FnOnce() + Send>), CliError> {
    Err(CliError::Usage("this build has no PostgreSQL support (feature `postgres`)".into()))
}

/// Appends `n` filler events (256-byte payloads, 1,000 streams) in large batches.
async fn preload(log: &Arc<dyn EventLog>, n: u64) -> Result<(), CliError> {
    let mut done = 0u64;
    let mut tasks = Vec::new();
    let per_task = n.div_ceil(16);
    for t in 0..16u64 {
        let log = log.clone();
        let count = per_task.min(n.saturating_sub(t * per_task));
        tasks.push(tokio::spawn(async move {
            let mut left = count;
            let mut i = 0u64;
            while left > 0 {
                let k = left.min(1000);
                let events = (0..k)
                    .map(|j| EventData {
                        event_type: "Filler".into(),
                        schema_version: 1,
                        payload_codec: CODEC_POSTCARD,
                        payload: vec![(j % 251) as u8; 256],
                    })
                    .collect();
                let stream = StreamId::new(format!("preload-{t}-{}", i % 64))?;
                log.append(AppendRequest::new(stream, ExpectedVersion::Any, "bench", events))
                    .await?;
                left -= k;
                i += 1;
            }
            Ok::<u64, gridcase_engine::Error>(count)
        }));
    }
    for t in tasks {
        done += t.await.map_err(|e| CliError::Usage(format!("preload task failed: {e}")))??;
    }
    debug_assert_eq!(done, n);
    Ok(())
}

fn org(shape: &str) -> Result<OrgFile, CliError> {
    match shape {
        "chengdu" => Ok(gridcase_sim::org::chengdu()),
        "tinghu" => Ok(gridcase_sim::org::tinghu()),
        other => Err(CliError::Usage(format!("--shape {other:?}: use chengdu or tinghu"))),
    }
}

async fn run_one(
    store: &str,
    a: &BenchArgs,
    actors: usize,
    preloaded: u64,
    org: &OrgFile,
) -> Result<Figures, CliError> {
    let cfg = gridcase_sim::SimConfig {
        seed: a.seed,
        days: a.days,
        drain_days: a.drain_days,
        requests_per_day: a.rate,
        actors,
        ..Default::default()
    };
    let clock = ManualClock::new(cfg.start);
    let (log, cleanup) = open_store(store, a, Arc::new(clock.clone())).await?;
    let result = async {
        if preloaded > 0 {
            preload(&log, preloaded).await?;
        }
        let opening = Instant::now();
        let engine = Arc::new(
            Engine::new(log.clone(), Arc::new(clock.clone()), EngineOptions::default()).await?,
        );
        engine.catch_up().await?;
        let start_seconds = opening.elapsed().as_secs_f64();
        engine.init_org(&ActorId::System, org).await?;
        engine.catch_up().await?;
        let start_pos = log.head().position;
        // Feed lag: a live subscriber notes when each event reaches it; the
        // writer side notes when the head moved past it.
        let lag = Arc::new(std::sync::Mutex::new(Vec::<f64>::new()));
        let seen_at =
            Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::<u64, Instant>::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let watcher = {
            let mut head = log.watch_head();
            let seen_at = seen_at.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    if tokio::time::timeout(Duration::from_millis(100), head.changed())
                        .await
                        .is_ok_and(|r| r.is_err())
                    {
                        break;
                    }
                    let p = *head.borrow_and_update();
                    seen_at.lock().unwrap_or_else(|e| e.into_inner()).insert(p, Instant::now());
                }
            })
        };
        let follower = {
            let mut sub = engine.subscribe(start_pos + 1);
            let lag = lag.clone();
            let seen_at = seen_at.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                use futures::StreamExt;
                while !stop.load(Ordering::Relaxed) {
                    let Ok(Some(Ok(ev))) =
                        tokio::time::timeout(Duration::from_millis(100), sub.next()).await
                    else {
                        continue;
                    };
                    let now = Instant::now();
                    let mut seen = seen_at.lock().unwrap_or_else(|e| e.into_inner());
                    // Sampled at the events that were the head when the writer published.
                    if let Some(t) = seen.get(&ev.position).copied() {
                        lag.lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(now.saturating_duration_since(t).as_secs_f64() * 1000.0);
                    }
                    let keep = seen.split_off(&(ev.position + 1));
                    *seen = keep;
                }
            })
        };
        reset_peak_rss();
        let started = Instant::now();
        let report = gridcase_sim::run(engine.clone(), clock.clone(), &cfg, None).await?;
        let seconds = started.elapsed().as_secs_f64();
        // Let the subscriber drain before stopping it.
        let end = log.head().position;
        let drain_deadline = Instant::now() + Duration::from_secs(30);
        while seen_at.lock().unwrap_or_else(|e| e.into_inner()).range(..=end).next().is_some()
            && Instant::now() < drain_deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.store(true, Ordering::Relaxed);
        let _ = watcher.await;
        let _ = follower.await;
        let peak = peak_rss_mib();
        let saving = Instant::now();
        engine.save_checkpoint().await?;
        let checkpoint_seconds = saving.elapsed().as_secs_f64();
        drop(engine);
        let reopening = Instant::now();
        let engine =
            Engine::new(log.clone(), Arc::new(clock.clone()), EngineOptions::default()).await?;
        engine.catch_up().await?;
        let restart_seconds = reopening.elapsed().as_secs_f64();
        drop(engine);
        let mut lags = lag.lock().unwrap_or_else(|e| e.into_inner()).clone();
        lags.sort_by(|a, b| a.total_cmp(b));
        let q = |p: f64| {
            if lags.is_empty() {
                0.0
            } else {
                lags[((lags.len() - 1) as f64 * p) as usize]
            }
        };
        let size = log.size_on_disk().await?;
        let total_events = log.head().position.max(1);
        Ok::<Figures, CliError>(Figures {
            store: store.to_string(),
            actors,
            preloaded,
            start_seconds,
            checkpoint_seconds,
            restart_seconds,
            seconds,
            lifecycles_per_s: report.closed as f64 / seconds,
            commands_per_s: report.commands as f64 / seconds,
            escalations_per_s: (report.escalations + report.dispatches) as f64 / seconds,
            events_per_s: report.events as f64 / seconds,
            p50_us: report.latency_us[0],
            p99_us: report.latency_us[1],
            feed_lag_p50_ms: q(0.5),
            feed_lag_p99_ms: q(0.99),
            mib_per_million_events: size as f64 / 1048576.0 / (total_events as f64 / 1e6),
            peak_rss_mib: peak,
            work_seconds: report.work_seconds,
            tick_seconds: report.tick_seconds,
            cases: report.submitted,
            closed: report.closed,
            events: report.events,
        })
    }
    .await;
    drop(log);
    cleanup();
    result
}

/// `gridcase bench`.
pub async fn bench(g: &Global, mut a: BenchArgs) -> Result<(), CliError> {
    // Both stores run in the same mode, so that like is compared with like:
    // durable (sled fdatasync per group, PostgreSQL synchronous_commit=on) or
    // flushed (sled's flush, synchronous_commit=off).
    a.durability = g.durability_or(Durability::Durable)?;
    // `--store` names a store for every other command; for bench it may name
    // the kind of store to measure, or the PostgreSQL server to measure on.
    match g.store.as_deref() {
        Some(kind @ ("sled" | "postgres" | "both")) => a.on = kind.to_string(),
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            a.pg_url = Some(url.to_string());
        }
        Some(other) => {
            return Err(CliError::Usage(format!(
                "bench --store {other:?}: use sled, postgres, both or a postgres:// URL"
            )))
        }
        None => {}
    }
    let stores: Vec<&str> = match a.on.as_str() {
        "both" => vec!["sled", "postgres"],
        "sled" => vec!["sled"],
        "postgres" => vec!["postgres"],
        other => {
            return Err(CliError::Usage(format!("--on {other:?}: use sled, postgres or both")))
        }
    };
    if a.actors == 0 || a.actors > 4096 || a.days == 0 || a.rate <= 0.0 {
        return Err(CliError::Usage("bench: --actors 1..4096, --days >= 1, --rate > 0".into()));
    }
    std::fs::create_dir_all(&a.scratch)
        .map_err(CliError::io(format!("cannot create {}", a.scratch.display())))?;
    let org = org(&a.shape)?;
    let mut runs: Vec<Figures> = Vec::new();
    let mut plan: Vec<(usize, u64)> = vec![(a.actors, 0)];
    if a.scaling {
        for n in [1, 4, 16, 64, 256] {
            if n != a.actors {
                plan.push((n, 0));
            }
        }
    }
    for p in &a.preload {
        plan.push((a.actors, *p));
    }
    for (actors, preloaded) in plan {
        for store in &stores {
            eprintln!(
                "bench: {store} ({:?}), {actors} actors, {preloaded} events preloaded ...",
                a.durability
            );
            let f = run_one(store, &a, actors, preloaded, &org).await?;
            eprintln!(
                "  {:.0} lifecycles/s, {:.0} commands/s, {:.0} events/s in {:.1}s (work {:.1}s, ticks {:.1}s)",
                f.lifecycles_per_s, f.commands_per_s, f.events_per_s, f.seconds, f.work_seconds, f.tick_seconds
            );
            runs.push(f);
        }
    }
    let _ = std::fs::remove_dir(&a.scratch);
    if g.json {
        return output::json(&serde_json::json!({"workload": {
            "shape": a.shape, "days": a.days, "drain_days": a.drain_days, "rate_per_day": a.rate, "seed": a.seed,
        }, "runs": runs}));
    }
    print_table(&runs)?;
    if stores.len() == 2 {
        print_ratios(&runs)?;
    }
    Ok(())
}

fn print_table(runs: &[Figures]) -> Result<(), CliError> {
    let mut t = Table::new(&[
        "store",
        "actors",
        "preloaded",
        "start s",
        "restart s",
        "lifecycles/s",
        "commands/s",
        "escalations/s",
        "events/s",
        "p50 ms",
        "p99 ms",
        "feed lag p50/p99 ms",
        "MiB/M events",
        "peak RSS MiB",
    ]);
    for f in runs {
        t.row(vec![
            f.store.clone(),
            f.actors.to_string(),
            f.preloaded.to_string(),
            format!("{:.1}", f.start_seconds),
            format!("{:.2}", f.restart_seconds),
            format!("{:.0}", f.lifecycles_per_s),
            format!("{:.0}", f.commands_per_s),
            format!("{:.0}", f.escalations_per_s),
            format!("{:.0}", f.events_per_s),
            format!("{:.2}", f.p50_us as f64 / 1000.0),
            format!("{:.2}", f.p99_us as f64 / 1000.0),
            format!("{:.1}/{:.1}", f.feed_lag_p50_ms, f.feed_lag_p99_ms),
            format!("{:.0}", f.mib_per_million_events),
            format!("{:.0}", f.peak_rss_mib),
        ]);
    }
    crate::out!("{}", t.render())
}

fn print_ratios(runs: &[Figures]) -> Result<(), CliError> {
    crate::outln!("\nsled / postgres, same workload:")?;
    let mut t = Table::new(&[
        "actors",
        "preloaded",
        "lifecycles/s",
        "commands/s",
        "escalations/s",
        "events/s",
        "p50 latency",
        "p99 latency",
        "start",
        "feed lag p50",
        "MiB/M events",
        "peak RSS",
    ]);
    for s in runs.iter().filter(|f| f.store == "sled") {
        let Some(p) = runs
            .iter()
            .find(|f| f.store == "postgres" && f.actors == s.actors && f.preloaded == s.preloaded)
        else {
            continue;
        };
        let r = |a: f64, b: f64| if b > 0.0 { format!("{:.1}x", a / b) } else { "-".into() };
        t.row(vec![
            s.actors.to_string(),
            s.preloaded.to_string(),
            r(s.lifecycles_per_s, p.lifecycles_per_s),
            r(s.commands_per_s, p.commands_per_s),
            r(s.escalations_per_s, p.escalations_per_s),
            r(s.events_per_s, p.events_per_s),
            r(p.p50_us as f64, s.p50_us as f64),
            r(p.p99_us as f64, s.p99_us as f64),
            r(p.start_seconds, s.start_seconds),
            r(p.feed_lag_p50_ms, s.feed_lag_p50_ms),
            r(p.mib_per_million_events, s.mib_per_million_events),
            r(p.peak_rss_mib, s.peak_rss_mib),
        ]);
    }
    crate::out!("{}", t.render())?;
    crate::outln!(
        "(rates: sled's figure over PostgreSQL's; latency, start, lag, size and memory: how many times lower sled's figure is)"
    )
}
