//! The reports: the demo's dashboard, `backlog`, `rates`, `chains`,
//! `overdue`, `replay` and `case show`, all read from the projections.

use std::sync::Arc;

use clap::Args;
use gridcase_engine::log::{hex, EventLog};
use gridcase_engine::org::UnitKind;
use gridcase_engine::time::{Timestamp, Zone};
use gridcase_engine::Engine;
use gridcase_projections::backlog::{BacklogReport, BacklogRow};
use gridcase_projections::chains::ChainReport;
use gridcase_projections::overdue::OverdueReport;
use gridcase_projections::rates::{RatesReport, UnitRates};
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
    /// The rates period (rates and replay only): a month 2026-03, an ISO
    /// week 2026-W10 or a day 2026-03-03; default: the current month.
    #[arg(long)]
    pub period: Option<String>,
    /// Only grids with open cases of this category code (backlog).
    #[arg(long)]
    pub category: Option<String>,
    /// Target resolution rate in percent, above 0 and at most 100 (rates).
    #[arg(long, default_value_t = TARGET_PERCENT)]
    pub target: f64,
    /// Rows to show per table.
    #[arg(long, default_value_t = 15)]
    pub top: usize,
}

fn proj_err(e: gridcase_projections::Error) -> CliError {
    CliError::Projections(e)
}

/// The projections of a store: resumed from `<data>/projections`, caught up,
/// saved. Its periods are those of the district's `zone`.
pub async fn projections(
    g: &Global,
    log: &Arc<dyn EventLog>,
    zone: &Zone,
) -> Result<ProjectionSet, CliError> {
    // Inside a running server: its live set (whose follower owns the saved state).
    if let Some(set) = crate::remote::live_projections(log).await? {
        return Ok(set);
    }
    let dir = g.data.join("projections");
    if g.store.is_none() && !g.data.exists() {
        return Err(CliError::Usage(format!("no store in {}", g.data.display())));
    }
    std::fs::create_dir_all(&dir)
        .map_err(CliError::io(format!("cannot create {}", dir.display())))?;
    let store = gridcase_projections::Store::open(&dir).map_err(proj_err)?;
    let (set, _) =
        gridcase_projections::open(log, &store, Config::for_zone(zone)).await.map_err(proj_err)?;
    Ok(set)
}

/// Whether `code` is the filter's unit or lies below it (every unit when
/// no `--unit` is given).
fn within(set: &ProjectionSet, code: &str, unit: &Option<String>) -> bool {
    unit.as_deref().is_none_or(|u| set.registry().is_within(code, u))
}

/// Checks the filters against the store before anything is printed: an
/// unknown `--unit` is an error (exit 2), not an empty report, and the
/// target is a percentage (`rates::check_target`, the API's check too).
fn check_filters(set: &ProjectionSet, f: &Filters) -> Result<(), CliError> {
    if let Some(u) = &f.unit {
        set.registry().unit(u)?;
    }
    gridcase_projections::rates::check_target(f.target)?;
    Ok(())
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
    let zone = engine.registry().zone.clone();
    let set = projections(g, &log, &zone).await?;
    let month = Period::containing(
        PeriodKind::Month,
        gridcase_sim::SimConfig::default().start,
        zone.offset_minutes(),
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
    crate::outln!("== Simulation")?;
    crate::outln!(
        "{} cases submitted, {} commands, {} escalations, {} dispatches, {} returns, {} reopens, {} closed; {} events in {:.1}s",
        report.submitted, report.commands, report.escalations, report.dispatches, report.returns, report.reopens, report.closed, report.events, report.wall_seconds
    )?;
    crate::outln!("as of {}\n", zone.format(now))?;
    backlog_tables(&set, now, &f)?;
    // The dashboard's rates table is its chosen kinds in full.
    rates_tables(
        &set,
        month,
        &f,
        &[UnitKind::District, UnitKind::Street, UnitKind::Department],
        usize::MAX,
    )?;
    chain_tables(&set, &f)?;
    overdue_table(&set, now, &f)?;
    crate::outln!(
        "== Audit\nOK: {} events, head {} hash {}",
        verify.events,
        verify.head.position,
        hex(&verify.head.hash)
    )?;
    crate::outln!("projection digest {} at position {}", set.digests().combined, set.position())?;
    Ok(())
}

/// The backlog narrowed to the filters: grids, communities and streets
/// within `--unit`, grids with an open case of `--category`. The backlog
/// counts cases where they were submitted, so a unit outside that tree (a
/// department, a micro-grid) has no backlog: that is an error, not an
/// empty report.
fn filtered_backlog(
    set: &ProjectionSet,
    now: Timestamp,
    f: &Filters,
) -> Result<BacklogReport, CliError> {
    let mut r = set.backlog_report(now);
    if let Some(u) = &f.unit {
        let kind = set.registry().unit(u)?.kind;
        if !matches!(
            kind,
            UnitKind::District | UnitKind::Street | UnitKind::Community | UnitKind::Grid
        ) {
            return Err(CliError::Usage(format!(
                "the backlog counts cases where they were submitted (district, streets, communities, grids); {u} is a {}: use `overdue --unit {u}` for what it holds",
                kind.as_str()
            )));
        }
        for rows in [&mut r.grids, &mut r.communities, &mut r.streets] {
            rows.retain(|row| within(set, &row.code, &f.unit));
        }
    }
    if let Some(c) = &f.category {
        r.grids.retain(|g| g.by_category.contains_key(c));
    }
    Ok(r)
}

/// The headline row of a backlog: the `--unit`'s own row, else the district's.
fn backlog_headline<'a>(r: &'a BacklogReport, unit: &Option<String>) -> &'a BacklogRow {
    let own = unit.as_deref().and_then(|u| {
        r.grids.iter().chain(&r.communities).chain(&r.streets).find(|row| row.code == u)
    });
    own.unwrap_or(&r.district)
}

fn backlog_tables(set: &ProjectionSet, now: Timestamp, f: &Filters) -> Result<(), CliError> {
    let r = filtered_backlog(set, now, f)?;
    let d = backlog_headline(&r, &f.unit);
    crate::outln!("== Backlog")?;
    crate::outln!(
        "{} {}: {} open ({} in progress, {} awaiting callback), {} overdue; solved in the grid: {}",
        d.kind.map(|k| k.as_str()).unwrap_or("unit"),
        output::clean(&d.name),
        d.open,
        d.in_progress,
        d.awaiting_callback,
        d.overdue,
        d.solved_in_grid_percent
            .map(|p| format!("{p:.1}% of {} resolved", d.resolved))
            .unwrap_or_else(|| "-".into())
    )?;
    let mut grids: Vec<&BacklogRow> = r.grids.iter().collect();
    let row = |g: &BacklogRow| {
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
            g.oldest_submitted_at
                .map(|t| duration_ms(now.0.saturating_sub(t.0)))
                .unwrap_or_else(|| "-".into()),
            g.solved_in_grid_percent.map(|p| format!("{p:.0}%")).unwrap_or_else(|| "-".into()),
        ]
    };
    let headers = [
        "grid",
        "name",
        "open",
        "overdue",
        "age <1/1-3/3-7/7-15/>15 d",
        "oldest open",
        "solved in grid",
    ];
    grids.sort_by(|a, b| b.open.cmp(&a.open).then_with(|| a.code.cmp(&b.code)));
    let mut t = Table::new(&headers);
    for g in grids.iter().take(f.top) {
        t.row(row(g));
    }
    crate::outln!("\nlargest backlogs\n{}", t.render())?;
    // Oldest first by the submission of each grid's oldest open case; a
    // grid with no open case has no backlog to be old.
    grids.retain(|g| g.oldest_submitted_at.is_some());
    grids.sort_by(|a, b| {
        a.oldest_submitted_at.cmp(&b.oldest_submitted_at).then_with(|| a.code.cmp(&b.code))
    });
    let mut t = Table::new(&headers);
    for g in grids.iter().take(f.top) {
        t.row(row(g));
    }
    crate::outln!("oldest backlogs\n{}", t.render())
}

/// The rates report narrowed to the units within `--unit`.
fn filtered_rates(set: &ProjectionSet, period: Period, f: &Filters) -> RatesReport {
    let mut r = set.rates_report(period, f.target);
    r.units.retain(|u| within(set, &u.code, &f.unit));
    r
}

fn rates_tables(
    set: &ProjectionSet,
    period: Period,
    f: &Filters,
    kinds: &[UnitKind],
    top: usize,
) -> Result<(), CliError> {
    let r = filtered_rates(set, period, f);
    crate::outln!("== Rates for {} (target resolution rate {:.1}%)", r.period, f.target)?;
    let units: Vec<&UnitRates> = r.units.iter().filter(|u| kinds.contains(&u.kind)).collect();
    let shown = &units[..units.len().min(top)];
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
        "target",
    ]);
    for u in shown {
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
                Some(true) => "BELOW".into(),
                Some(false) => "met".into(),
                None => "no data".into(),
            },
        ]);
    }
    crate::out!("{}", t.render())?;
    // The footer speaks of the rows above only.
    let below: Vec<&str> =
        shown.iter().filter(|u| u.below_target == Some(true)).map(|u| u.code.as_str()).collect();
    let hidden = units.len() - shown.len();
    crate::outln!(
        "{} of the {} units shown are below target{}{}\n",
        below.len(),
        shown.len(),
        if below.is_empty() { String::new() } else { format!(": {}", below.join(", ")) },
        if hidden > 0 { format!(" ({hidden} more units not shown: --top)") } else { String::new() }
    )
}

/// The chain report narrowed to `--unit`: the escalation rows of the
/// communities and streets within it. Shapes, hold times and categories
/// are kept for the whole district only.
fn filtered_chains(set: &ProjectionSet, f: &Filters) -> ChainReport {
    let mut r = set.chain_report();
    r.communities.retain(|row| within(set, &row.code, &f.unit));
    r.streets.retain(|row| within(set, &row.code, &f.unit));
    r
}

fn chain_tables(set: &ProjectionSet, f: &Filters) -> Result<(), CliError> {
    let r = filtered_chains(set, f);
    crate::outln!("== Escalation chains")?;
    let pct = |x: &gridcase_projections::rates::Rate| {
        x.percent().map(|p| format!("{p:.1}%")).unwrap_or_else(|| "-".into())
    };
    if f.unit.is_some() {
        let mut t = Table::new(&["unit", "name", "cases", "to street", "to department", "rate"]);
        for row in r.streets.iter().chain(&r.communities).take(f.top) {
            t.row(vec![
                row.code.clone(),
                row.name.clone(),
                row.counts.cases.to_string(),
                row.counts.to_street.to_string(),
                row.counts.to_department.to_string(),
                pct(&row.rate),
            ]);
        }
        crate::outln!("escalation by unit\n{}", t.render())?;
        crate::outln!("(the tables below are kept for the whole district)\n")?;
    }
    let mut t = Table::new(&["chain", "cases"]);
    for s in r.shapes.iter().take(f.top) {
        t.row(vec![s.shape.clone(), s.cases.to_string()]);
    }
    crate::out!("{}", t.render())?;
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
    crate::outln!("\ntime held per level\n{}", t.render())?;
    let mut t = Table::new(&["category", "escalation rate", "cases"]);
    let mut cats: Vec<_> = r.categories.iter().collect();
    cats.sort_by(|a, b| b.rate.cmp_exact(&a.rate));
    for c in cats.iter().take(f.top) {
        t.row(vec![c.name.clone(), pct(&c.rate), c.rate.denominator.to_string()]);
    }
    crate::outln!("categories that escalate most\n{}", t.render())
}

/// The overdue report of `--unit`'s cases, or of every case.
fn filtered_overdue(set: &ProjectionSet, now: Timestamp, f: &Filters) -> OverdueReport {
    match &f.unit {
        Some(u) => set.overdue_report_of(now, u),
        None => set.overdue_report(now),
    }
}

fn overdue_table(set: &ProjectionSet, now: Timestamp, f: &Filters) -> Result<(), CliError> {
    let r = filtered_overdue(set, now, f);
    crate::outln!(
        "== Overdue{}: {} past the limit, {} near it ({}% of the time used)",
        f.unit.as_deref().map(|u| format!(" ({} cases)", output::clean(u))).unwrap_or_default(),
        r.overdue,
        r.near_due,
        r.near_due_percent
    )?;
    let mut holders: Vec<_> = r.holders.iter().collect();
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
        "in progress",
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
    crate::outln!("{}", t.render())
}

fn period_of(set: &ProjectionSet, f: &Filters, now: Timestamp) -> Result<Period, CliError> {
    match &f.period {
        Some(p) => Period::parse(p).map_err(proj_err),
        None => Ok(Period::containing(PeriodKind::Month, now, set.config().utc_offset_minutes)),
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
    if f.period.is_some() && !matches!(which, Report::Rates) {
        return Err(CliError::Usage(
            "--period is the rates period; this report is as of --at (default: now)".into(),
        ));
    }
    let engine = store::open(g).await?;
    let zone = engine.registry().zone.clone();
    let set = projections(g, engine.log(), &zone).await?;
    check_filters(&set, &f)?;
    let now = store::now_in(g, &zone)?;
    let period = period_of(&set, &f, now)?;
    if g.json {
        return match which {
            Report::Backlog => output::json(&filtered_backlog(&set, now, &f)?),
            Report::Rates => {
                let month =
                    Period::containing(PeriodKind::Month, now, set.config().utc_offset_minutes);
                let ranking = set.ranking(month, f.target).ok().map(|mut r| {
                    for k in &mut r.kinds {
                        k.ranked.retain(|u| within(&set, &u.unit.code, &f.unit));
                        k.no_data.retain(|code| within(&set, code, &f.unit));
                    }
                    r
                });
                output::json(&serde_json::json!({
                    "rates": filtered_rates(&set, period, &f),
                    "ranking": ranking,
                }))
            }
            Report::Chains => output::json(&filtered_chains(&set, &f)),
            Report::Overdue => output::json(&filtered_overdue(&set, now, &f)),
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
            f.top,
        ),
        Report::Chains => chain_tables(&set, &f),
        Report::Overdue => overdue_table(&set, now, &f),
    }
}

/// `gridcase places [--since T] [--until T] [--unit U] [--top N]`.
pub async fn places(
    g: &Global,
    since: Option<&str>,
    until: Option<&str>,
    unit: Option<&str>,
    top: usize,
) -> Result<(), CliError> {
    let engine = store::open(g).await?;
    let zone = engine.registry().zone.clone();
    let set = projections(g, engine.log(), &zone).await?;
    let reg = set.registry();
    if let Some(u) = unit {
        if !reg.units.contains_key(u) {
            return Err(CliError::Usage(format!("--unit {u:?} is not in the registry")));
        }
    }
    let to = match until {
        Some(t) => zone.parse(t)?,
        None => store::now_in(g, &zone)?,
    };
    let from = match since {
        Some(t) => zone.parse(t)?,
        None => to.plus_ms(-30 * 24 * 3_600_000),
    };
    let mut r =
        set.cases().by_place(from, to, |place| unit.is_none_or(|u| reg.is_within(place, u)));
    r.places.truncate(top);
    if g.json {
        return output::json(&r);
    }
    let l = &r.located_by;
    crate::outln!(
        "cases submitted {} to {}: placed by point {}, by code {}, by address {}",
        zone.format(from),
        zone.format(to),
        l.point,
        l.code,
        l.address
    )?;
    let mut t = Table::new(&[
        "micro-grid",
        "name",
        "grid",
        "community",
        "cases",
        "open",
        "point",
        "code",
        "address",
    ]);
    for p in &r.places {
        let code = p.micro_grid.clone().unwrap_or_else(|| p.grid.clone());
        t.row(vec![
            code.clone(),
            reg.name_of(&code).to_string(),
            format!("{} {}", p.grid, reg.name_of(&p.grid)),
            reg.name_of(&p.community).to_string(),
            p.cases.to_string(),
            p.open.to_string(),
            p.by_point.to_string(),
            p.by_code.to_string(),
            p.by_address.to_string(),
        ]);
    }
    crate::outln!("{}", t.render())
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
    let zone = engine.registry().zone.clone();
    let config = Config::for_zone(&zone);
    let set = match (as_of.as_deref(), position) {
        (Some(t), None) => {
            gridcase_projections::as_of_time(log, config, zone.parse(t)?).await.map_err(proj_err)?
        }
        (None, Some(p)) => {
            if p > log.head().position {
                return Err(CliError::Usage(format!(
                    "--position {p} is past the head ({})",
                    log.head().position
                )));
            }
            gridcase_projections::as_of_position(log, config, p).await.map_err(proj_err)?
        }
        _ => {
            return Err(CliError::Usage("give exactly one of --as-of TIME or --position N".into()))
        }
    };
    check_filters(&set, &f)?;
    let now = match as_of.as_deref() {
        Some(t) => zone.parse(t)?,
        None => set.last_recorded_at(),
    };
    let period = period_of(&set, &f, now)?;
    if g.json {
        return output::json(&serde_json::json!({
            "position": set.position(), "now": now,
            "backlog": filtered_backlog(&set, now, &f)?, "rates": filtered_rates(&set, period, &f),
            "chains": filtered_chains(&set, &f), "overdue": filtered_overdue(&set, now, &f),
            "digests": set.digests(),
        }));
    }
    crate::outln!("== Replay as of {}, position {}\n", zone.format(now), set.position())?;
    backlog_tables(&set, now, &f)?;
    rates_tables(
        &set,
        period,
        &f,
        &[UnitKind::District, UnitKind::Street, UnitKind::Department],
        f.top,
    )?;
    chain_tables(&set, &f)?;
    overdue_table(&set, now, &f)?;
    let d = set.digests();
    crate::outln!("== Digests at position {}", d.position)?;
    for (name, h) in &d.parts {
        crate::outln!("{name:<10} {h}")?;
    }
    crate::outln!("{:<10} {}", "combined", d.combined)
}
