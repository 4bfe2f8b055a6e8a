//! The city simulator: residents, grid workers, streets and departments
//! working cases through the same [`Engine`] API a portal uses.
//!
//! One simulator serves both the demo (`gridcase demo`) and the throughput
//! benchmark (`gridcase bench`). Simulated time advances in steps; in each
//! step residents submit on a Poisson schedule, every open case's holder may
//! act, and the engine records the deadlines that passed. Each case's choices
//! come from a random generator seeded by (seed, arrival number, step), and
//! every command of a step runs at the step's time, so what happens to each
//! request does not depend on how the concurrent actors interleaved (case
//! ids, which follow commit order, may).
//!
//! Where the organisation has boundaries, seven requests in ten arrive as a
//! phone app sends them: only a GPS point inside one of the grid's
//! micro-grids, which the engine's point lookup places; the rest name a
//! registered address or a code.
//!
//! **Architecture Invariant:** the simulator never writes events directly;
//! everything goes through [`Engine::submit`], [`Engine::execute`] and
//! [`Engine::tick`].

#![deny(missing_docs)]

pub mod org;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use gridcase_engine::domain::{
    ActorId, Case, CaseId, Channel, Command, Contact, Priority, RequestKind, Satisfaction, Status,
    Submission,
};
use gridcase_engine::engine::CommandOptions;
use gridcase_engine::geo::GeoPoint;
use gridcase_engine::org::{Registry, Role, UnitKind};
use gridcase_engine::time::{ManualClock, Timestamp, HOUR_MS};
use gridcase_engine::{Engine, Error};
use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// What to simulate.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SimConfig {
    /// Seed of every random choice.
    pub seed: u64,
    /// Simulated days.
    pub days: u32,
    /// Mean new requests per simulated day (Poisson).
    pub requests_per_day: f64,
    /// Concurrent actors (tokio tasks) working each step. Their commits
    /// interleave as the scheduler runs them, so positions and case ids
    /// (which follow commit order) vary from run to run; see
    /// [`SimConfig::canonical_order`].
    pub actors: usize,
    /// Run every command of a step in one canonical order (the step's
    /// arrivals in arrival order, then the open cases in id order) instead
    /// of on `actors` concurrent tasks, so that the same seed always gives
    /// the same log, byte for byte, with the same head hash. The demo runs
    /// this way; the benchmark runs concurrently, because concurrent
    /// writers are what it measures.
    pub canonical_order: bool,
    /// Simulated minutes per step.
    pub step_minutes: u32,
    /// Simulated start time.
    pub start: Timestamp,
    /// After the last day, keep working (without new requests) for this many days so most cases finish.
    pub drain_days: u32,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 12345,
            days: 30,
            requests_per_day: 400.0,
            actors: 16,
            canonical_order: false,
            step_minutes: 60,
            // 2026-03-01T00:00:00+08:00
            start: Timestamp(1_772_294_400_000),
            drain_days: 0,
        }
    }
}

/// What a simulation did.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SimReport {
    /// Cases submitted.
    pub submitted: u64,
    /// Commands executed (accepted), deadline checks excluded.
    pub commands: u64,
    /// Commands the engine rejected (the simulator sometimes tries what the rules forbid, as people do).
    pub rejected: u64,
    /// Escalations to a street (manual and on deadline).
    pub escalations: u64,
    /// Dispatches to departments (manual and on deadline).
    pub dispatches: u64,
    /// Returns by departments.
    pub returns: u64,
    /// Reopens after unsatisfied callbacks.
    pub reopens: u64,
    /// Cases closed (full lifecycles completed).
    pub closed: u64,
    /// Cases rejected, merged or withdrawn.
    pub ended_otherwise: u64,
    /// Events recorded by deadline ticks.
    pub deadline_events: u64,
    /// Events appended in all.
    pub events: u64,
    /// Wall-clock seconds.
    pub wall_seconds: f64,
    /// Of which: actors working cases and intake.
    pub work_seconds: f64,
    /// Of which: deadline ticks (including following the log).
    pub tick_seconds: f64,
    /// Command latency percentiles in microseconds: p50, p99, max.
    pub latency_us: [u64; 3],
    /// Simulated end time.
    pub end: Timestamp,
}

impl SimReport {
    fn merge(&mut self, o: &SimReport) {
        self.submitted += o.submitted;
        self.commands += o.commands;
        self.rejected += o.rejected;
        self.escalations += o.escalations;
        self.dispatches += o.dispatches;
        self.returns += o.returns;
        self.reopens += o.reopens;
        self.closed += o.closed;
        self.ended_otherwise += o.ended_otherwise;
        self.events += o.events;
    }
}

/// Called after every step with the step number, the simulated time and the totals so far.
pub type Progress<'a> = &'a (dyn Fn(u64, u64, Timestamp, &SimReport) + Sync);

fn rng_for(seed: u64, a: &str, b: u64) -> ChaCha8Rng {
    let mut h = blake3::Hasher::new();
    h.update(&seed.to_le_bytes());
    h.update(a.as_bytes());
    h.update(&b.to_le_bytes());
    let mut s = [0u8; 32];
    s.copy_from_slice(h.finalize().as_bytes());
    ChaCha8Rng::from_seed(s)
}

fn pick<T: Copy>(rng: &mut ChaCha8Rng, items: &[(T, u32)]) -> T {
    let total: u32 = items.iter().map(|(_, w)| *w).sum();
    let mut x = rng.random_range(0..total.max(1));
    for (t, w) in items {
        if x < *w {
            return *t;
        }
        x -= w;
    }
    items[0].0
}

/// The registry's units the simulator needs, looked up once.
struct Town {
    grids: Vec<(String, Vec<String>, String)>, // grid code, micro-grid codes, community name + grid name prefix
    categories: Vec<(String, u32)>,
    departments: Vec<String>,
    default_dept: HashMap<String, String>,
    /// The first active staff member of each role in each unit; looked up
    /// by `&str` (a lookup per simulated command must not allocate).
    staff: HashMap<Role, HashMap<String, String>>,
    supervisor: String,
    /// The latest case submitted in each grid before this step: where a duplicate is merged.
    latest_in_grid: std::sync::RwLock<HashMap<String, String>>,
    /// The arrival number of each case: the stable key of its random choices
    /// (case ids follow commit order, which concurrency makes vary).
    arrival_of: std::sync::RwLock<HashMap<String, u64>>,
}

impl Town {
    fn new(reg: &Registry) -> Result<Town, Error> {
        let mut staff = HashMap::new();
        let mut supervisor = None;
        for s in reg.staff.values().filter(|s| !s.retired) {
            staff
                .entry(s.role)
                .or_insert_with(HashMap::new)
                .entry(s.unit.clone())
                .or_insert_with(|| s.id.clone());
            if s.role == Role::DistrictSupervisor && supervisor.is_none() {
                supervisor = Some(s.id.clone());
            }
        }
        // One pass over the units: city-scale registries have ~100k of them.
        let mut micro_of: HashMap<&str, Vec<String>> = HashMap::new();
        for m in reg.units_of(UnitKind::MicroGrid).filter(|m| !m.retired) {
            if let Some(p) = m.parent.as_deref() {
                micro_of.entry(p).or_default().push(m.code.clone());
            }
        }
        let grids: Vec<_> = reg
            .units_of(UnitKind::Grid)
            .filter(|g| !g.retired)
            .map(|g| {
                let micro = micro_of.remove(g.code.as_str()).unwrap_or_default();
                let community =
                    g.parent.as_deref().map(|c| reg.name_of(c).to_string()).unwrap_or_default();
                (g.code.clone(), micro, format!("{community}{}", g.name))
            })
            .collect();
        if grids.is_empty() {
            return Err(Error::InvalidInput("the organisation has no grids to simulate".into()));
        }
        let weights: HashMap<&str, u32> =
            org::CATEGORIES.iter().map(|(c, _, _, _, w)| (*c, *w)).collect();
        let categories = reg
            .categories
            .keys()
            .map(|c| (c.clone(), weights.get(c.as_str()).copied().unwrap_or(5)))
            .collect();
        let departments = reg
            .units_of(UnitKind::Department)
            .filter(|d| !d.retired)
            .map(|d| d.code.clone())
            .collect();
        let default_dept =
            reg.categories.values().map(|c| (c.code.clone(), c.department.clone())).collect();
        Ok(Town {
            grids,
            categories,
            departments,
            default_dept,
            staff,
            supervisor: supervisor.ok_or_else(|| {
                Error::InvalidInput("the organisation has no district supervisor".into())
            })?,
            latest_in_grid: std::sync::RwLock::new(HashMap::new()),
            arrival_of: std::sync::RwLock::new(HashMap::new()),
        })
    }

    fn staff(&self, role: Role, unit: &str) -> Option<&str> {
        self.staff.get(&role)?.get(unit).map(String::as_str)
    }
}

/// Runs the simulation on `engine`, whose log must use `clock`.
pub async fn run(
    engine: Arc<Engine>,
    clock: ManualClock,
    cfg: &SimConfig,
    progress: Option<Progress<'_>>,
) -> Result<SimReport, Error> {
    let town = Arc::new(Town::new(&engine.registry())?);
    let started = Instant::now();
    let step_ms = cfg.step_minutes.max(1) as i64 * 60_000;
    let steps = (cfg.days as i64 * 24 * HOUR_MS / step_ms) as u64;
    let drain = (cfg.drain_days as i64 * 24 * HOUR_MS / step_ms) as u64;
    let rate_per_ms = cfg.requests_per_day / (24.0 * HOUR_MS as f64);
    let mut total = SimReport::default();
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
        .map_err(|e| Error::Internal(e.to_string()))?;
    let head0 = engine.log().head().position;
    let mut arrivals = rng_for(cfg.seed, "arrivals", 0);
    let mut next_arrival = cfg.start.0 as f64 + exp_sample(&mut arrivals, rate_per_ms);
    for step in 0..steps + drain {
        let now = Timestamp(cfg.start.0 + step as i64 * step_ms);
        let end = now.0 + step_ms;
        clock.set(now);
        // 1. Work: every open case's holder may act. Partitioned by case so one actor owns a case per step.
        // In canonical order one task does everything, in a fixed order.
        let tasks_n = if cfg.canonical_order { 1 } else { cfg.actors.max(1) };
        // Sorted by id, so the canonical order is fixed.
        let ids = engine.open_case_ids();
        let mut work: Vec<Vec<String>> = vec![Vec::new(); tasks_n];
        for (i, id) in ids.into_iter().enumerate() {
            work[i % tasks_n].push(id);
        }
        // 2. Intake: arrivals in [now, end), spread over the actors.
        let mut intake: Vec<Vec<u64>> = vec![Vec::new(); tasks_n];
        if step < steps && rate_per_ms > 0.0 {
            let mut n = 0u64;
            while next_arrival < end as f64 {
                intake[(n as usize) % tasks_n].push(step * 1_000_000 + n);
                n += 1;
                next_arrival += exp_sample(&mut arrivals, rate_per_ms);
            }
        }
        let work_started = Instant::now();
        let mut tasks = Vec::new();
        for (cases, arrivals) in work.into_iter().zip(intake) {
            let engine = engine.clone();
            let town = town.clone();
            let seed = cfg.seed;
            tasks.push(tokio::spawn(async move {
                let mut report = SimReport::default();
                let mut lat = Vec::with_capacity(cases.len() + arrivals.len());
                let mut new_cases = Vec::with_capacity(arrivals.len());
                for a in arrivals {
                    new_cases
                        .extend(submit_one(&engine, &town, seed, a, &mut report, &mut lat).await?);
                }
                for id in cases {
                    act(&engine, &town, seed, step, now, &id, &mut report, &mut lat).await?;
                }
                Ok::<_, Error>((report, lat, new_cases))
            }));
        }
        let mut new_cases = Vec::new();
        for t in tasks {
            let (r, lat, cases) =
                t.await.map_err(|e| Error::Internal(format!("simulation task failed: {e}")))??;
            total.merge(&r);
            for l in lat {
                let _ = hist.record(l.max(1));
            }
            new_cases.extend(cases);
        }
        // Publish this step's arrivals in arrival order, after the step, so
        // that no choice in a step depends on how its actors interleaved.
        new_cases.sort();
        {
            let mut latest = town.latest_in_grid.write().unwrap_or_else(|p| p.into_inner());
            let mut arrival = town.arrival_of.write().unwrap_or_else(|p| p.into_inner());
            for (n, grid, id) in new_cases {
                arrival.insert(id.clone(), n);
                latest.insert(grid, id);
            }
        }
        total.work_seconds += work_started.elapsed().as_secs_f64();
        // 3. Deadlines up to the end of the step.
        clock.set(Timestamp(end));
        let tick_started = Instant::now();
        let tick = engine.tick(Timestamp(end)).await?;
        total.tick_seconds += tick_started.elapsed().as_secs_f64();
        total.deadline_events += tick.events;
        total.escalations += tick.escalations;
        total.dispatches += tick.dispatches;
        if let Some(p) = progress {
            total.events = engine.log().head().position - head0;
            p(step + 1, steps + drain, Timestamp(end), &total);
        }
    }
    total.events = engine.log().head().position - head0;
    total.wall_seconds = started.elapsed().as_secs_f64();
    total.latency_us = [hist.value_at_quantile(0.5), hist.value_at_quantile(0.99), hist.max()];
    total.end = Timestamp(cfg.start.0 + (steps + drain) as i64 * step_ms);
    Ok(total)
}

fn exp_sample(rng: &mut ChaCha8Rng, rate: f64) -> f64 {
    let u: f64 = rng.random_range(f64::EPSILON..1.0);
    -u.ln() / rate
}

async fn timed(
    engine: &Engine,
    id: Option<&str>,
    cmd: Command,
    actor: &str,
    report: &mut SimReport,
    lat: &mut Vec<u64>,
) -> Result<Option<Arc<Case>>, Error> {
    // A unit without staff of the role gives an empty actor: a refusal,
    // like any other command nobody may make.
    let Ok(actor) = actor.parse::<ActorId>() else {
        report.rejected += 1;
        return Ok(None);
    };
    let t = Instant::now();
    let r = match id {
        Some(id) => engine.execute(&actor, &CaseId::new(id)?, cmd, CommandOptions::default()).await,
        None => match cmd {
            Command::Submit(s) => engine.submit(&actor, s, CommandOptions::default()).await,
            _ => return Err(Error::Internal("simulator: a submission without a Submit".into())),
        },
    };
    lat.push(t.elapsed().as_micros() as u64);
    match r {
        Ok(r) => {
            report.commands += 1;
            Ok(Some(r.case))
        }
        Err(Error::Rejected(_)) | Err(Error::NotFound(_)) => {
            report.rejected += 1;
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

async fn submit_one(
    engine: &Engine,
    town: &Town,
    seed: u64,
    n: u64,
    report: &mut SimReport,
    lat: &mut Vec<u64>,
) -> Result<Option<(u64, String, String)>, Error> {
    let mut rng = rng_for(seed, "submit", n);
    let (grid, micro, label) = &town.grids[rng.random_range(0..town.grids.len())];
    let channel = pick(
        &mut rng,
        &[
            (Channel::Portal, 30),
            (Channel::Hotline, 40),
            (Channel::App, 20),
            (Channel::GridPatrol, 10),
        ],
    );
    let kind = pick(
        &mut rng,
        &[
            (RequestKind::Consultation, 15),
            (RequestKind::Help, 25),
            (RequestKind::Complaint, 30),
            (RequestKind::Report, 20),
            (RequestKind::Suggestion, 10),
        ],
    );
    let priority =
        pick(&mut rng, &[(Priority::Normal, 90), (Priority::Urgent, 8), (Priority::Emergency, 2)]);
    let weights: Vec<(usize, u32)> =
        town.categories.iter().enumerate().map(|(i, (_, w))| (i, *w)).collect();
    let category = town.categories[pick(&mut rng, &weights)].0.clone();
    let reg = engine.registry();
    let roll = rng.random_range(0..10);
    // Where the organisation has boundaries, most requests come as a phone
    // would send them: a GPS point somewhere in one of the grid's
    // micro-grids, and nothing else (the engine's point lookup places it).
    let target = if micro.is_empty() { grid } else { &micro[rng.random_range(0..micro.len())] };
    let point = if roll >= 3 { point_in(&reg, target, &mut rng) } else { None };
    let location = match (point, micro.is_empty(), roll) {
        (Some(_), _, _) => String::new(),
        (None, false, 0..=1) => {
            // An address as a resident would say it: resolved to the micro-grid.
            let building = reg.units.get(target).map(|u| u.name.clone()).unwrap_or_default();
            format!("{label}{building}")
        }
        (None, false, 2..=5) => target.clone(),
        _ => grid.clone(),
    };
    let actor = if channel == Channel::GridPatrol {
        town.staff(Role::GridWorker, grid)
            .map(str::to_string)
            .unwrap_or_else(|| format!("resident:r{n}"))
    } else if channel == Channel::Hotline {
        // The hotline desk takes the call down; the resident is the contact.
        town.supervisor.clone()
    } else {
        format!("resident:r{}", rng.random_range(0..1_000_000u32))
    };
    let contact = (channel != Channel::GridPatrol).then(|| Contact {
        name: format!("居民{}", n % 10_000),
        phone: format!("138{:08}", n % 100_000_000),
    });
    let sub = Submission {
        channel: if actor.starts_with("resident:") && channel == Channel::GridPatrol {
            Channel::App
        } else {
            channel
        },
        kind,
        category: category.clone(),
        priority,
        description: format!(
            "{}：{}",
            label,
            org::CATEGORIES.iter().find(|c| c.0 == category).map(|c| c.1).unwrap_or("问题")
        ),
        location,
        contact,
        point,
        media: Vec::new(),
        reporter: None,
    };
    match timed(engine, None, Command::Submit(sub), &actor, report, lat).await? {
        Some(case) => {
            report.submitted += 1;
            Ok(Some((n, case.grid.clone(), case.id.clone())))
        }
        None => Ok(None),
    }
}

/// A point inside `unit`'s boundary, drawn uniformly from its bounding box
/// until the registry's own lookup places it in `unit` (a few tries for a
/// quadrilateral); `None` when the unit has no boundary or no draw landed.
fn point_in(reg: &Registry, unit: &str, rng: &mut ChaCha8Rng) -> Option<GeoPoint> {
    let rings = reg.boundaries.get(unit)?.polygons();
    let pts = rings.iter().flatten().flatten();
    let (mut s, mut w, mut n, mut e) = (i32::MAX, i32::MAX, i32::MIN, i32::MIN);
    for p in pts {
        (s, w) = (s.min(p.lat_e7()), w.min(p.lon_e7()));
        (n, e) = (n.max(p.lat_e7()), e.max(p.lon_e7()));
    }
    if s >= n || w >= e {
        return None;
    }
    for _ in 0..16 {
        let p = GeoPoint::from_e7(rng.random_range(s..=n), rng.random_range(w..=e)).ok()?;
        if reg.locate(p).is_ok_and(|l| l.micro_grid.unwrap_or(l.grid) == unit) {
            return Some(p);
        }
    }
    None
}

/// One holder's move on one case in one step.
#[allow(clippy::too_many_arguments)]
async fn act(
    engine: &Engine,
    town: &Town,
    seed: u64,
    step: u64,
    now: Timestamp,
    id: &str,
    report: &mut SimReport,
    lat: &mut Vec<u64>,
) -> Result<(), Error> {
    let case = match engine.case(&CaseId::new(id)?).await {
        Ok(c) => c,
        Err(Error::NotFound(_)) => return Ok(()),
        Err(e) => return Err(e),
    };
    let arrival = town.arrival_of.read().unwrap_or_else(|p| p.into_inner()).get(id).copied();
    let mut rng = match arrival {
        Some(n) => rng_for(seed, "case", n.wrapping_mul(1_000_003).wrapping_add(step)),
        None => rng_for(seed, id, step),
    };
    let roll: u32 = rng.random_range(0..1000);
    let community_staff =
        town.staff(Role::CommunityStaff, &case.community).unwrap_or("").to_string();
    let street_staff = town.staff(Role::StreetStaff, &case.street).unwrap_or("").to_string();
    let age_h = (now.0 - case.updated_at.0) / HOUR_MS;
    if case.pending_extension.is_some() && case.status != Status::Resolved {
        return decide_extension(engine, town, &case, &mut rng, report, lat).await;
    }
    let (cmd, actor): (Command, String) = match case.status {
        Status::Submitted => match roll {
            0..=4 => (Command::Reject { reason: "无效诉求：信息不实".into() }, community_staff),
            5..=9 => {
                // A duplicate of another open case in the same grid, if there is one.
                let other = town
                    .latest_in_grid
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&case.grid)
                    .cloned();
                match other {
                    Some(o) if o != case.id => (Command::Merge { into: o }, community_staff),
                    _ => return Ok(()),
                }
            }
            10..=12 => (Command::Withdraw { reason: "问题已自行解决".into() }, community_staff),
            13..=700 => match town.staff(Role::GridWorker, &case.grid) {
                Some(w) => (Command::Assign { worker: w.to_string() }, community_staff),
                None => (Command::Escalate { reason: "本社区无网格员".into() }, community_staff),
            },
            _ => return Ok(()),
        },
        Status::Assigned => {
            let worker = case.assigned_worker.clone().unwrap_or_default();
            let hard = matches!(case.kind, RequestKind::Complaint | RequestKind::Report);
            match roll {
                _ if age_h < 1 => return Ok(()),
                0..=179 => (Command::Resolve { note: "网格员现场处置完毕".into() }, worker),
                180..=259 if hard => {
                    (Command::Escalate { reason: "社区无法解决，呼叫街道".into() }, worker)
                }
                180..=209 => (Command::Escalate { reason: "需要街道协调".into() }, worker),
                260..=265 if now.0 < case.resolution_due.0 => (
                    Command::RequestExtension {
                        until: case.resolution_due.plus_ms(3 * 24 * HOUR_MS),
                        reason: "等待物业配合".into(),
                    },
                    worker,
                ),
                _ => return Ok(()),
            }
        }
        Status::Escalated => {
            let right = town
                .default_dept
                .get(&case.category)
                .cloned()
                .unwrap_or_else(|| town.departments[0].clone());
            match roll {
                0..=449 => {
                    let wrong =
                        town.departments[rng.random_range(0..town.departments.len())].clone();
                    let first = if case.return_count == 0 && rng.random_range(0..10) == 0 {
                        wrong
                    } else {
                        right.clone()
                    };
                    let joint = rng.random_range(0..10) == 0 && first == right;
                    let mut departments = vec![first.clone()];
                    if joint {
                        let other =
                            town.departments[rng.random_range(0..town.departments.len())].clone();
                        if other != first {
                            departments.push(other);
                        }
                    }
                    (
                        Command::Dispatch {
                            departments,
                            lead: Some(first),
                            note: "请尽快处理".into(),
                        },
                        street_staff,
                    )
                }
                450..=479 => (Command::Resolve { note: "街道协调解决".into() }, street_staff),
                _ => return Ok(()),
            }
        }
        Status::Dispatched => {
            let right = town.default_dept.get(&case.category).cloned().unwrap_or_default();
            // Each department moves independently.
            for h in case.holders.clone() {
                let staff = town.staff(Role::DepartmentStaff, &h.unit).unwrap_or("").to_string();
                let r: u32 = rng.random_range(0..1000);
                let cmd = if !h.claimed {
                    if h.unit != right && r < 600 && !(h.lead && case.holders.len() > 1) {
                        Command::Return { reason: "不属于本部门职责".into() }
                    } else if r < 750 {
                        Command::Claim
                    } else {
                        continue;
                    }
                } else if h.resolved {
                    continue;
                } else if r < 160 {
                    Command::Resolve { note: format!("{}已处置", h.unit) }
                } else if r < 166 && now.0 < case.resolution_due.0 {
                    Command::RequestExtension {
                        until: case.resolution_due.plus_ms(5 * 24 * HOUR_MS),
                        reason: "需要施工".into(),
                    }
                } else {
                    continue;
                };
                let is_return = matches!(cmd, Command::Return { .. });
                if timed(engine, Some(id), cmd, &staff, report, lat).await?.is_some() {
                    report.returns += u64::from(is_return);
                }
            }
            if case.is_overdue(now) && roll < 20 {
                timed(
                    engine,
                    Some(id),
                    Command::Supervise { note: "请加快办理".into() },
                    &town.supervisor,
                    report,
                    lat,
                )
                .await?;
            }
            return Ok(());
        }
        Status::Resolved => {
            if case.last_callback.is_none() {
                if age_h < 2 {
                    return Ok(());
                }
                let sat = pick(
                    &mut rng,
                    &[
                        (Satisfaction::Satisfied, 88),
                        (Satisfaction::BasicallySatisfied, 8),
                        (Satisfaction::Unsatisfied, 4),
                    ],
                );
                let solved = sat != Satisfaction::Unsatisfied || rng.random_range(0..2) == 0;
                (
                    Command::Callback { satisfaction: sat, solved, note: "回访完成".into() },
                    community_staff,
                )
            } else {
                // As in the sources: a case is redone when the problem is
                // not solved; a resident who is unhappy with how it went but
                // whose problem is solved is counted unsatisfied and the case
                // closes (the satisfaction rate's "unsatisfied but solved").
                let unsolved = case.last_callback.as_ref().is_some_and(|c| !c.solved);
                if unsolved && case.reopen_count < 2 {
                    (Command::Reopen { reason: "居民不满意，重办".into() }, community_staff)
                } else {
                    (Command::Close { note: "办结".into() }, community_staff)
                }
            }
        }
        _ => return Ok(()),
    };
    if actor.is_empty() {
        return Ok(());
    }
    let kind = std::mem::discriminant(&cmd);
    let is = |c: &Command| std::mem::discriminant(c) == kind;
    let escalate = is(&Command::Escalate { reason: String::new() });
    let dispatch = is(&Command::Dispatch { departments: vec![], lead: None, note: String::new() });
    let reopen = is(&Command::Reopen { reason: String::new() });
    let ending =
        matches!(cmd, Command::Reject { .. } | Command::Merge { .. } | Command::Withdraw { .. });
    if let Some(after) = timed(engine, Some(id), cmd, &actor, report, lat).await? {
        report.escalations += u64::from(escalate);
        report.dispatches += u64::from(dispatch);
        report.reopens += u64::from(reopen);
        report.closed += u64::from(after.status == Status::Closed);
        report.ended_otherwise += u64::from(ending);
    }
    Ok(())
}

async fn decide_extension(
    engine: &Engine,
    town: &Town,
    case: &Case,
    rng: &mut ChaCha8Rng,
    report: &mut SimReport,
    lat: &mut Vec<u64>,
) -> Result<(), Error> {
    let approve = rng.random_range(0..10) < 7;
    let reason = if approve { String::new() } else { "理由不充分".into() };
    timed(
        engine,
        Some(&case.id),
        Command::DecideExtension { approve, reason },
        &town.supervisor,
        report,
        lat,
    )
    .await?;
    Ok(())
}
