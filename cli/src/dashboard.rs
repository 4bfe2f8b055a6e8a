//! The reports: the demo's dashboard, `backlog`, `rates`, `chains`,
//! `overdue`, `replay` and `case show`, all read from the projections.

use std::sync::Arc;

use clap::Args;
use gridcase_engine::log::{hex, EventLog};
use gridcase_engine::org::UnitKind;
use gridcase_engine::time::Timestamp;
use gridcase_engine::Engine;
use gridcase_projections::{Config, Period, PeriodKind, ProjectionSet};

use crate::error::CliError;
use crate::output::{self, duration_ms, Table};
use crate::{store, Global};

/// The district's target resolution rate, percent.
pub const TARGET_PERCENT: f64 = 98.5;

/// Filters shared by the report commands.
#[derive(Args, Debug, Clone, Default)]
pub struct Filters {
    /// Only this unit (grid, community, street, department code) and what lies below it.
    #[arg(long)]
    pub unit: Option<String>,
    /// Only this category (backlog) or period (rates: 2026-03, 2026-W10, 2026-03-03; default: the current month).
    #[arg(long)]
    pub period: Option<String>,
    /// Only this category code.
    #[arg(long)]
    pub category: Option<String>,
    /// Target resolution rate in percent (rates).
    #[arg(long, default_value_t = TARGET_PERCENT)]
    pub target: f64,
    /// Rows to show per table.
    #[arg(long, default_value_t = 15)]
    pub top: usize,
}

fn proj_err(e: gridcase_projections::Error) -> CliError {
    CliError::Usage(e.to_string())
}

/// The projections of a store: resumed from `<data>/projections`, caught up, saved.
pub async fn projections(g: &Global, log: &Arc<dyn EventLog>) -> Result<ProjectionSet, CliError> {
    let dir = g.data.join("projections");
    if g.store.is_none() && !g.data.exists() {
        return Err(CliError::Usage(format!("no store in {}", g.data.display())));
    }
    std::fs::create_dir_all(&dir)
        .map_err(CliError::io(format!("cannot create {}", dir.display())))?;
    let store = gridcase_projections::Store::open(&dir).map_err(proj_err)?;
    let (set, _) =
        gridcase_projections::open(log, &store, Config::default()).await.map_err(proj_err)?;
    Ok(set)
}

fn now_of(g: &Global) -> Result<Timestamp, CliError> {
    let (clock, _) = store::clock(g)?;
    Ok(clock.now())
}

fn within(set: &ProjectionSet, code: &str, unit: &Option<String>) -> bool {
    match unit {
        Some(u) => set.registry().is_within(code, u) || code == u,
        None => true,
    }
}

/// Prints the dashboard after a simulation.
pub async fn print(
    g: &Global,
    engine: &Engine,
    report: &gridcase_sim::SimReport,
    now: Timestamp,
) -> Result<(), CliError> {
    let log = engine.log().clone();
    let verify = log.verify().await?;
    let set = projections(g, &log).await?;
    let month = Period::containing(
        PeriodKind::Month,
        gridcase_sim::SimConfig::default().start,
        Config::default().utc_offset_minutes,
    );
    let f = Filters { top: 10, target: TARGET_PERCENT, ..Filters::default() };
    if g.json {
        return output::json(&serde_json::json!({
            "simulation": report,
            "backlog": set.backlog_report(now),
            "rates": set.rates_report(month, TARGET_PERCENT),
            "chains": set.chain_report(),
            "overdue": set.overdue_report(now),
            "audit": {"ok": true, "events": verify.events, "head_hash": hex(&verify.head.hash)},
            "digests": set.digests(),
            "now": now,
        }));
    }
    println!("== Simulation");
    println!(
        "{} cases submitted, {} commands, {} escalations, {} dispatches, {} returns, {} reopens, {} closed; {} events in {:.1}s",
        report.submitted, report.commands, report.escalations, report.dispatches, report.returns, report.reopens, report.closed, report.events, report.wall_seconds
    );
    println!("as of {now}\n");
    backlog_tables(&set, now, &f);
    rates_tables(&set, month, &f, &[UnitKind::District, UnitKind::Street, UnitKind::Department]);
    chain_tables(&set, &f);
    overdue_table(&set, now, &f);
    println!(
        "== Audit\nOK: {} events, head {} hash {}",
        verify.events,
        verify.head.position,
        hex(&verify.head.hash)
    );
    println!("projection digest {} at position {}", set.digests().combined, set.position());
    Ok(())
}

fn backlog_tables(set: &ProjectionSet, now: Timestamp, f: &Filters) {
    let r = set.backlog_report(now);
    let d = &r.district;
    println!("== Backlog");
    println!(
        "district: {} open ({} awaiting callback), {} overdue; solved in the grid: {}",
        d.open,
        d.awaiting_callback,
        d.overdue,
        d.solved_in_grid_percent
            .map(|p| format!("{p:.1}% of {} resolved", d.resolved))
            .unwrap_or_else(|| "-".into())
    );
    let mut grids: Vec<_> = r.grids.iter().filter(|g| within(set, &g.code, &f.unit)).collect();
    if let Some(c) = &f.category {
        grids.retain(|g| g.by_category.contains_key(c));
    }
    let row = |g: &gridcase_projections::backlog::BacklogRow| {
        let a = &g.aging;
        vec![
            g.code.clone(),
            g.name.clone(),
            g.open.to_string(),
            g.overdue.to_string(),
            format!(
                "{}/{}/{}/{}/{}",
                a.under_1_day, a.days_1_to_3, a.days_3_to_7, a.days_7_to_15, a.over_15_days
            ),
            g.solved_in_grid_percent.map(|p| format!("{p:.0}%")).unwrap_or_else(|| "-".into()),
        ]
    };
    let headers =
        ["grid", "name", "open", "overdue", "age <1/1-3/3-7/7-15/>15 d", "solved in grid"];
    grids.sort_by(|a, b| b.open.cmp(&a.open).then_with(|| a.code.cmp(&b.code)));
    let mut t = Table::new(&headers);
    for g in grids.iter().take(f.top) {
        t.row(row(g));
    }
    println!("\nlargest backlogs\n{}", t.render());
    grids.sort_by(|a, b| {
        let k = |g: &gridcase_projections::backlog::BacklogRow| {
            (g.aging.over_15_days, g.aging.days_7_to_15, g.aging.days_3_to_7, g.aging.days_1_to_3)
        };
        k(b).cmp(&k(a)).then_with(|| a.code.cmp(&b.code))
    });
    let mut t = Table::new(&headers);
    for g in grids.iter().take(f.top) {
        t.row(row(g));
    }
    println!("oldest backlogs\n{}", t.render());
}

fn rates_tables(set: &ProjectionSet, period: Period, f: &Filters, kinds: &[UnitKind]) {
    let r = set.rates_report(period, f.target);
    println!("== Rates for {} (target resolution rate {:.1}%)", r.period, f.target);
    let mut t = Table::new(&[
        "unit",
        "name",
        "resolution",
        "due",
        "response",
        "satisfaction",
        "on time",
        "returns",
        "redo",
        "",
    ]);
    for u in r.units.iter().filter(|u| kinds.contains(&u.kind) && within(set, &u.code, &f.unit)) {
        let p = |x: &gridcase_projections::rates::Rate| {
            x.percent().map(|p| format!("{p:.1}%")).unwrap_or_else(|| "-".into())
        };
        t.row(vec![
            u.code.clone(),
            u.name.clone(),
            p(&u.resolution),
            u.resolution.denominator.to_string(),
            p(&u.response),
            p(&u.satisfaction),
            p(&u.on_time),
            p(&u.return_rate),
            p(&u.redo),
            match u.below_target {
                Some(true) => "BELOW TARGET".into(),
                Some(false) => String::new(),
                None => "no data".into(),
            },
        ]);
    }
    print!("{}", t.render());
    let below: Vec<&str> =
        r.below_target().filter(|u| kinds.contains(&u.kind)).map(|u| u.code.as_str()).collect();
    println!(
        "{} of the units shown are below target{}\n",
        below.len(),
        if below.is_empty() { String::new() } else { format!(": {}", below.join(", ")) }
    );
}

fn chain_tables(set: &ProjectionSet, f: &Filters) {
    let r = set.chain_report();
    println!("== Escalation chains");
    let mut t = Table::new(&["chain", "cases"]);
    for s in r.shapes.iter().take(f.top) {
        t.row(vec![s.shape.clone(), s.cases.to_string()]);
    }
    print!("{}", t.render());
    let mut t = Table::new(&["level", "holds", "median", "p90"]);
    for l in &r.levels {
        let m = |x: Option<f64>| {
            x.map(|v| duration_ms((v * 60_000.0) as i64)).unwrap_or_else(|| "-".into())
        };
        t.row(vec![
            l.level.to_string(),
            l.holds.to_string(),
            m(l.median_minutes),
            m(l.p90_minutes),
        ]);
    }
    println!("\ntime held per level\n{}", t.render());
    let mut t = Table::new(&["category", "escalation rate", "cases"]);
    let mut cats: Vec<_> = r.categories.iter().collect();
    cats.sort_by(|a, b| b.rate.cmp_exact(&a.rate));
    for c in cats.iter().take(5) {
        t.row(vec![
            c.name.clone(),
            c.rate.percent().map(|p| format!("{p:.1}%")).unwrap_or_default(),
            c.rate.denominator.to_string(),
        ]);
    }
    println!("categories that escalate most\n{}", t.render());
}

fn overdue_table(set: &ProjectionSet, now: Timestamp, f: &Filters) {
    let r = set.overdue_report(now);
    println!(
        "== Overdue: {} past the limit, {} near it ({}% of the time used)",
        r.overdue, r.near_due, r.near_due_percent
    );
    let mut holders: Vec<_> = r.holders.iter().filter(|h| within(set, &h.unit, &f.unit)).collect();
    holders.sort_by(|a, b| {
        b.overdue
            .cmp(&a.overdue)
            .then(b.near_due.cmp(&a.near_due))
            .then_with(|| a.unit.cmp(&b.unit))
    });
    let mut t = Table::new(&[
        "holder",
        "name",
        "level",
        "open",
        "overdue",
        "near due",
        "unclaimed past due",
    ]);
    for h in holders.iter().take(f.top) {
        t.row(vec![
            h.unit.clone(),
            h.name.clone(),
            h.level.to_string(),
            h.open.to_string(),
            h.overdue.to_string(),
            h.near_due.to_string(),
            h.unclaimed_past_due.to_string(),
        ]);
    }
    println!("{}", t.render());
}

fn period_of(f: &Filters, now: Timestamp) -> Result<Period, CliError> {
    match &f.period {
        Some(p) => Period::parse(p).map_err(proj_err),
        None => {
            Ok(Period::containing(PeriodKind::Month, now, Config::default().utc_offset_minutes))
        }
    }
}

/// Which report a command prints.
#[derive(Clone, Copy, Debug)]
pub enum Report {
    /// Grid backlog.
    Backlog,
    /// Rates per unit.
    Rates,
    /// Escalation chains.
    Chains,
    /// Overdue by holder.
    Overdue,
}

/// `gridcase backlog|rates|chains|overdue`.
pub async fn report(g: &Global, which: Report, f: Filters) -> Result<(), CliError> {
    let engine = store::open(g).await?;
    let set = projections(g, engine.log()).await?;
    let now = now_of(g)?;
    let period = period_of(&f, now)?;
    if g.json {
        return match which {
            Report::Backlog => output::json(&set.backlog_report(now)),
            Report::Rates => output::json(&serde_json::json!({
                "rates": set.rates_report(period, f.target),
                "ranking": set.ranking(Period::containing(PeriodKind::Month, now, Config::default().utc_offset_minutes), f.target).ok(),
            })),
            Report::Chains => output::json(&set.chain_report()),
            Report::Overdue => output::json(&set.overdue_report(now)),
        };
    }
    match which {
        Report::Backlog => backlog_tables(&set, now, &f),
        Report::Rates => rates_tables(
            &set,
            period,
            &f,
            &[
                UnitKind::District,
                UnitKind::Street,
                UnitKind::Community,
                UnitKind::Grid,
                UnitKind::Department,
            ],
        ),
        Report::Chains => chain_tables(&set, &f),
        Report::Overdue => overdue_table(&set, now, &f),
    }
    Ok(())
}

/// `gridcase replay --as-of TIME | --position N`: every report as it was then, and the digests.
pub async fn replay(
    g: &Global,
    as_of: Option<String>,
    position: Option<u64>,
    f: Filters,
) -> Result<(), CliError> {
    let engine = store::open(g).await?;
    let log = engine.log();
    let set = match (as_of.as_deref(), position) {
        (Some(t), None) => {
            gridcase_projections::as_of_time(log, Config::default(), Timestamp::parse(t)?)
                .await
                .map_err(proj_err)?
        }
        (None, Some(p)) => {
            if p > log.head().position {
                return Err(CliError::Usage(format!(
                    "--position {p} is past the head ({})",
                    log.head().position
                )));
            }
            gridcase_projections::as_of_position(log, Config::default(), p)
                .await
                .map_err(proj_err)?
        }
        _ => {
            return Err(CliError::Usage("give exactly one of --as-of TIME or --position N".into()))
        }
    };
    let now = match as_of.as_deref() {
        Some(t) => Timestamp::parse(t)?,
        None => set.last_recorded_at(),
    };
    let period = period_of(&f, now)?;
    if g.json {
        return output::json(&serde_json::json!({
            "position": set.position(), "now": now,
            "backlog": set.backlog_report(now), "rates": set.rates_report(period, f.target),
            "chains": set.chain_report(), "overdue": set.overdue_report(now), "digests": set.digests(),
        }));
    }
    println!("== Replay as of {now}, position {}\n", set.position());
    backlog_tables(&set, now, &f);
    rates_tables(&set, period, &f, &[UnitKind::District, UnitKind::Street, UnitKind::Department]);
    chain_tables(&set, &f);
    overdue_table(&set, now, &f);
    let d = set.digests();
    println!("== Digests at position {}", d.position);
    for (name, h) in &d.parts {
        println!("{name:<10} {h}");
    }
    println!("{:<10} {}", "combined", d.combined);
    Ok(())
}
