//! `gridcase demo`: a fresh embedded store with the Tinghu organisation, a
//! simulated stretch of resident requests through the whole lifecycle, and
//! the dashboard over the result.

use std::path::PathBuf;
use std::sync::Arc;

use gridcase_engine::domain::ActorId;
use gridcase_engine::log::{Durability, EventLog, SledLog, SledOptions};
use gridcase_engine::time::{Clock, ManualClock, Timestamp};
use gridcase_engine::{Engine, EngineOptions};

use crate::error::CliError;
use crate::store::{log_dir, read_org, tinghu_shipped, DEMO_MARKER};
use crate::Global;

/// `gridcase demo`: a fresh store, a simulated month, the dashboard.
pub async fn demo(
    g: &Global,
    days: u32,
    seed: u64,
    rate: f64,
    org: Option<PathBuf>,
) -> Result<(), CliError> {
    if g.store.is_some() {
        return Err(CliError::Usage("the demo runs on the embedded store; drop --store".into()));
    }
    if days == 0 || days > 3650 || !(0.0..=1_000_000.0).contains(&rate) {
        return Err(CliError::Usage("demo: --days 1..3650, --rate 0..1000000".into()));
    }
    let org = match org {
        Some(p) => read_org(&p)?,
        None => tinghu_shipped()?,
    };
    let data = &g.data;
    if data.exists() {
        let empty = std::fs::read_dir(data)
            .map_err(CliError::io(format!("cannot read {}", data.display())))?
            .next()
            .is_none();
        if !empty && !data.join(DEMO_MARKER).exists() {
            return Err(CliError::Usage(format!(
                "{} holds data that the demo did not create; pass another --data directory",
                data.display()
            )));
        }
        std::fs::remove_dir_all(data).map_err(CliError::io(format!(
            "cannot clear the old demo store in {}",
            data.display()
        )))?;
    }
    std::fs::create_dir_all(data)
        .map_err(CliError::io(format!("cannot create {}", data.display())))?;
    std::fs::write(
        data.join(DEMO_MARKER),
        b"created by gridcase demo; the next demo run replaces this directory\n",
    )
    .map_err(CliError::io("cannot write the demo marker"))?;
    let cfg = gridcase_sim::SimConfig {
        seed,
        days,
        requests_per_day: rate,
        // The same seed gives the same log, byte for byte: the demo is what
        // people compare (`audit verify`'s head hash, replay digests).
        canonical_order: true,
        ..Default::default()
    };
    let clock = ManualClock::new(cfg.start);
    // The demo's log is synthetic and rebuilt from the seed on every run,
    // and its commands run one at a time in a canonical order (so the same
    // seed gives the same log): acknowledging each after its own fdatasync
    // would make the main job wait on the disk some 80,000 times. It writes
    // buffered and the store is flushed to disk when the demo ends (closing
    // the log flushes); `--durability durable` restores the per-group sync.
    let durability = g.durability_or(Durability::Buffered)?;
    let log: Arc<dyn EventLog> = Arc::new(SledLog::open(
        log_dir(data),
        SledOptions { durability, ..SledOptions::default() },
        Arc::new(clock.clone()),
    )?);
    let engine = Arc::new(
        Engine::new(log.clone(), Arc::new(clock.clone()), EngineOptions::default()).await?,
    );
    engine.init_org(&ActorId::System, &org).await?;
    // The demo district gets a log key like `init` gives one, so the
    // auditor's walk (checkpoint, receipt, check-proof) runs on it.
    crate::trust::ensure_key(
        &crate::trust::key_dir(g),
        &crate::trust::default_origin(&org.district.code),
    )?;
    let reg = engine.registry();
    let zone = reg.zone.clone();
    eprintln!(
        "gridcase demo: {} with {} streets, {} communities, {} grids, {} micro-grids, {} departments; {days} days at {rate}/day, seed {seed}",
        reg.district().map(|d| d.name.as_str()).unwrap_or("district"),
        reg.units_of(gridcase_engine::org::UnitKind::Street).count(),
        reg.units_of(gridcase_engine::org::UnitKind::Community).count(),
        reg.units_of(gridcase_engine::org::UnitKind::Grid).count(),
        reg.units_of(gridcase_engine::org::UnitKind::MicroGrid).count(),
        reg.units_of(gridcase_engine::org::UnitKind::Department).count(),
    );
    let bar = indicatif::ProgressBar::new(days as u64 * 24);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} simulating [{bar:30}] {pos}/{len} h  {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let progress = |step: u64, _total: u64, at: Timestamp, r: &gridcase_sim::SimReport| {
        bar.set_position(step);
        if step % 24 == 0 {
            bar.set_message(format!(
                "{} · {} cases · {} events",
                zone.date(at),
                r.submitted,
                r.events
            ));
        }
    };
    let report = gridcase_sim::run(engine.clone(), clock.clone(), &cfg, Some(&progress)).await?;
    bar.finish_and_clear();
    // So that `serve` or `tick` on the demo store start from here.
    if let Err(e) = engine.save_checkpoint().await {
        eprintln!("warning: the engine checkpoint was not saved ({e}); the next start reads the whole log");
    }
    crate::dashboard::print(g, &engine, &report, clock.now()).await?;
    if !g.json {
        print_open_the_dashboard(g, &engine)?;
    }
    Ok(())
}

/// The demo's last lines: how to open the web dashboard on this store.
fn print_open_the_dashboard(g: &Global, engine: &Engine) -> Result<(), CliError> {
    let reg = engine.registry();
    let supervisor = reg
        .staff
        .values()
        .find(|s| !s.retired && s.role == gridcase_engine::org::Role::DistrictSupervisor)
        .map(|s| s.id.clone())
        .unwrap_or_else(|| "STAFF_ID".into());
    let store = match &g.store {
        Some(_) => "--store <the same store>".to_string(),
        None => format!("--data {}", g.data.display()),
    };
    crate::outln!("\n== Dashboard")?;
    crate::outln!(
        "gridcase apikey create --as {supervisor} {store}   # prints the key to sign in with"
    )?;
    crate::outln!("gridcase serve {store}")?;
    crate::outln!("open http://127.0.0.1:8080/ and sign in with the key")
}
