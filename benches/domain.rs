//! Case-domain benchmarks (criterion), on a Tinghu-sized organisation (10
//! streets, 70 communities, 427 grids, 1,976 micro-grids, 40 departments,
//! 20 categories, ~720 staff, as in the seeds):
//!
//! - `decide/*`: one decision of the pure `decide` function: a claim, a
//!   submission located by grid code and by free-text address, a deadline
//!   check with nothing due;
//! - `lifecycle/pure`: a full lifecycle (submit, assign, escalate, dispatch,
//!   claim, resolve, callback, close) decided and folded in memory;
//! - `lifecycle/engine_*`: the same through the `Engine` on a sled log
//!   (Buffered durability: no fsync per append), one task at a time and 64
//!   concurrent tasks;
//! - `load/cold/N`: a case loaded from the log (`Engine::history` + `Case::fold`)
//!   for histories of 10, 100 and 1,000 events (extension request/refusal
//!   cycles on a claimed case);
//! - `load/warm/N`: the same case from the engine's memory (`Engine::case`);
//! - `load/decode_and_fold/N`: the cold load's CPU part alone (records
//!   already read: decode every payload and fold);
//! - `restart/catch_up/N`: a fresh engine rebuilding its view of open cases
//!   from a log of N events (2,000 lifecycles, half of them left open).
//!
//! Run: `CARGO_TARGET_DIR=/work/target-domain cargo bench -p gridcase --bench domain`
//! (criterion filters work: `... --bench domain -- load/`).

#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use gridcase::engine::domain::decide::Context;
use gridcase::engine::domain::{
    decide, Actor, ActorId, Case, CaseId, Channel, Command, DeadlineClass, Event, Priority,
    RequestKind, Satisfaction, Submission,
};
use gridcase::engine::engine::CommandOptions;
use gridcase::engine::log::{Durability, SledLog, SledOptions};
use gridcase::engine::org::{
    CategorySpec, CommunitySpec, DistrictSpec, GridSpec, OrgFile, Registry, Role, StaffSpec,
    StreetSpec, UnitSpec,
};
use gridcase::engine::time::{ManualClock, Timestamp, DAY_MS};
use gridcase::engine::{Engine, EngineOptions};

const T0: Timestamp = Timestamp(1_772_438_400_000);

/// Tinghu's topology: 70 communities, 427 grids, 1,976 micro-grids.
fn tinghu() -> OrgFile {
    let (streets_n, communities_per_street, grids_total, micro_total) = (10, 7, 427, 1976);
    let communities_total = streets_n * communities_per_street;
    let mut staff = Vec::new();
    let mut add = |id: String, role: Role, unit: &str| {
        let name = format!("工作人员{}", staff.len() + 1);
        staff.push(StaffSpec { id, name, role, unit: unit.to_string() });
    };
    let mut streets = Vec::new();
    let (mut grid_no, mut micro_no) = (0, 0);
    for s in 0..streets_n {
        let s_code = format!("320902{:03}", s + 1);
        for k in 0..3 {
            add(format!("ss{}-{k}", s + 1), Role::StreetStaff, &s_code);
        }
        let mut communities = Vec::new();
        for c in 0..communities_per_street {
            let c_code = format!("{s_code}{:03}", c + 1);
            let c_index = s * communities_per_street + c;
            add(format!("cs{c_code}-0"), Role::CommunityStaff, &c_code);
            add(format!("cs{c_code}-1"), Role::CommunityStaff, &c_code);
            // 427 grids over 70 communities: 6 each, one more for the first 7.
            let grids_here = grids_total / communities_total
                + usize::from(c_index < grids_total % communities_total);
            let mut grids = Vec::new();
            for g in 0..grids_here {
                let g_code = format!("{c_code}{:03}", g + 1);
                add(format!("gw{g_code}"), Role::GridWorker, &g_code);
                // 1,976 micro-grids over 427 grids: 4 each, one more for the first 268.
                let micro_here =
                    micro_total / grids_total + usize::from(grid_no < micro_total % grids_total);
                grids.push(GridSpec {
                    code: g_code,
                    name: format!("第{}网格", g + 1),
                    address: None,
                    micro_grids: (0..micro_here).map(|m| format!("{}号楼", m + 1)).collect(),
                });
                grid_no += 1;
                micro_no += micro_here;
            }
            communities.push(CommunitySpec {
                code: c_code,
                name: format!("第{}街道第{}社区", s + 1, c + 1),
                grids,
            });
        }
        streets.push(StreetSpec { code: s_code, name: format!("第{}街道", s + 1), communities });
    }
    assert_eq!((grid_no, micro_no), (grids_total, micro_total));
    let departments: Vec<UnitSpec> = (1..=40)
        .map(|d| UnitSpec { code: format!("D{d:02}"), name: format!("区直部门{d}") })
        .collect();
    for d in &departments {
        for k in 0..3 {
            add(format!("{}-{k}", d.code.to_lowercase()), Role::DepartmentStaff, &d.code);
        }
    }
    for k in 0..5 {
        add(format!("sup{k}"), Role::DistrictSupervisor, "320902");
    }
    add("aud".into(), Role::Auditor, "320902");
    let classes = [
        DeadlineClass::Emergency,
        DeadlineClass::Utilities,
        DeadlineClass::Ordinary,
        DeadlineClass::Complex,
    ];
    let categories = (0..20)
        .map(|i| CategorySpec {
            code: format!("cat{i:02}"),
            name: format!("诉求类别{i}"),
            department: format!("D{:02}", i % 40 + 1),
            class: classes[i % 4],
        })
        .collect();
    OrgFile {
        district: DistrictSpec { code: "320902".into(), name: "亭湖区".into(), time_zone: None },
        geography: None,
        streets,
        departments,
        categories,
        staff,
        policy: Default::default(),
        boundaries: None,
    }
}

fn registry_of(org: &OrgFile) -> Registry {
    let mut reg = Registry::default();
    for e in org.events().unwrap() {
        reg.apply(&e);
        reg.version += 1;
    }
    reg.reindex();
    reg
}

fn staff(reg: &Registry, id: &str) -> Actor {
    let s = &reg.staff[id];
    Actor { id: s.id.clone(), role: s.role, unit: Some(s.unit.clone()), system: false }
}

/// Community 5 of street 3, grid 2 (category cat02: ordinary, department D03).
const COMMUNITY: &str = "320902003005";
const GRID: &str = "320902003005002";

fn report(location: &str) -> Submission {
    Submission {
        channel: Channel::App,
        kind: RequestKind::Complaint,
        category: "cat02".into(),
        priority: Priority::Normal,
        description: "小区东门路灯连续三晚不亮".into(),
        location: location.into(),
        contact: None,
        point: None,
        media: Vec::new(),
        reporter: None,
    }
}

/// The commands of a full lifecycle after the submission, with their actors.
fn lifecycle_commands() -> Vec<(String, Command)> {
    vec![
        (format!("cs{COMMUNITY}-0"), Command::Assign { worker: format!("gw{GRID}") }),
        (format!("gw{GRID}"), Command::Escalate { reason: "社区无法解决".into() }),
        (
            "ss3-0".into(),
            Command::Dispatch { departments: vec!["D03".into()], lead: None, note: String::new() },
        ),
        ("d03-0".into(), Command::Claim),
        ("d03-1".into(), Command::Resolve { note: "已修复".into() }),
        (
            format!("cs{COMMUNITY}-1"),
            Command::Callback {
                satisfaction: Satisfaction::Satisfied,
                solved: true,
                note: String::new(),
            },
        ),
        (format!("cs{COMMUNITY}-0"), Command::Close { note: "办结".into() }),
    ]
}

fn ctx<'a>(reg: &'a Registry, case_id: &'a str) -> Context<'a> {
    Context { registry: reg, now: T0, case_id, merge_target_open: None }
}

/// A full lifecycle decided and folded in memory; returns the closed case.
fn pure_lifecycle(reg: &Registry, commands: &[(Actor, Command)]) -> Case {
    let resident = Actor::resident("bench");
    let first =
        decide(None, &Command::Submit(report(GRID)), &resident, &ctx(reg, "GC0000001")).unwrap();
    let mut case = Case::start(&first[0], &resident.id, T0).unwrap();
    for (actor, command) in commands {
        for e in decide(Some(&case), command, actor, &ctx(reg, "GC0000001")).unwrap() {
            case.apply(&e, T0);
        }
    }
    case
}

fn bench_decide(c: &mut Criterion) {
    let org = tinghu();
    let reg = registry_of(&org);
    let commands: Vec<(Actor, Command)> =
        lifecycle_commands().into_iter().map(|(a, c)| (staff(&reg, &a), c)).collect();
    // A case dispatched to D03, not yet claimed.
    let mut case = pure_lifecycle(&reg, &[]);
    for (actor, command) in &commands[..3] {
        for e in decide(Some(&case), command, actor, &ctx(&reg, "GC0000001")).unwrap() {
            case.apply(&e, T0);
        }
    }
    let claimer = staff(&reg, "d03-0");
    let resident = Actor::resident("bench");
    let mut g = c.benchmark_group("decide");
    g.throughput(Throughput::Elements(1));
    g.bench_function("claim", |b| {
        b.iter(|| decide(Some(&case), &Command::Claim, &claimer, &ctx(&reg, "GC0000001")).unwrap())
    });
    let by_code = Command::Submit(report(GRID));
    g.bench_function("submit_by_grid_code", |b| {
        b.iter(|| decide(None, &by_code, &resident, &ctx(&reg, "GC0000002")).unwrap())
    });
    // Free text containing a registered address: a scan over ~2,000 addresses.
    let by_text = Command::Submit(report("盐城市亭湖区第3街道第5社区第2网格3号楼东门口"));
    g.bench_function("submit_by_free_text_address", |b| {
        b.iter(|| decide(None, &by_text, &resident, &ctx(&reg, "GC0000002")).unwrap())
    });
    let system = Actor::system();
    g.bench_function("check_deadlines_nothing_due", |b| {
        b.iter(|| {
            decide(Some(&case), &Command::CheckDeadlines, &system, &ctx(&reg, "GC0000001")).unwrap()
        })
    });
    g.finish();

    let mut g = c.benchmark_group("lifecycle");
    g.throughput(Throughput::Elements(1));
    g.bench_function("pure", |b| b.iter(|| pure_lifecycle(&reg, &commands)));
    g.finish();
}

struct Store {
    engine: Arc<Engine>,
    _dir: tempfile::TempDir,
}

async fn store(org: &OrgFile) -> Store {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let options = SledOptions { durability: Durability::Buffered, ..SledOptions::default() };
    let log = SledLog::open(dir.path(), options, Arc::new(clock.clone())).unwrap();
    let engine =
        Engine::new(Arc::new(log), Arc::new(clock), EngineOptions::default()).await.unwrap();
    engine.init_org(&ActorId::System, org).await.unwrap();
    Store { engine: Arc::new(engine), _dir: dir }
}

async fn engine_lifecycle(engine: &Engine, commands: &[(ActorId, Command)]) {
    let resident = ActorId::resident("bench").unwrap();
    let r = engine.submit(&resident, report(GRID), CommandOptions::default()).await.unwrap();
    let id = CaseId::new(r.case.id.as_str()).unwrap();
    for (actor, command) in commands {
        engine.execute(actor, &id, command.clone(), CommandOptions::default()).await.unwrap();
    }
}

/// A claimed case whose history is `n` events long: submit, escalate,
/// dispatch, claim, then extension request/refusal pairs.
async fn long_case(engine: &Engine, n: usize) -> CaseId {
    assert!(n >= 4 && n % 2 == 0);
    let resident = ActorId::resident("bench").unwrap();
    let r = engine.submit(&resident, report(GRID), CommandOptions::default()).await.unwrap();
    let id = CaseId::new(r.case.id.as_str()).unwrap();
    let run = |actor: &'static str, command: Command| {
        let id = id.clone();
        async move {
            let actor: ActorId = actor.parse().unwrap();
            engine.execute(&actor, &id, command, CommandOptions::default()).await.unwrap();
        }
    };
    run("gw320902003005002", Command::Escalate { reason: "社区无法解决".into() }).await;
    run(
        "ss3-0",
        Command::Dispatch { departments: vec!["D03".into()], lead: None, note: String::new() },
    )
    .await;
    run("d03-0", Command::Claim).await;
    for _ in 0..(n - 4) / 2 {
        run(
            "d03-0",
            Command::RequestExtension {
                until: T0.plus_ms(30 * DAY_MS), reason: "等待配件".into()
            },
        )
        .await;
        run("sup0", Command::DecideExtension { approve: false, reason: "不同意".into() }).await;
    }
    assert_eq!(engine.history(&id).await.unwrap().len(), n);
    id
}

fn bench_engine(c: &mut Criterion) {
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let org = tinghu();
    let s = rt.block_on(store(&org));
    let commands: Vec<(ActorId, Command)> =
        lifecycle_commands().into_iter().map(|(a, c)| (a.parse().unwrap(), c)).collect();

    let mut g = c.benchmark_group("lifecycle");
    g.throughput(Throughput::Elements(1));
    g.bench_function("engine_sequential", |b| {
        b.to_async(&rt).iter(|| engine_lifecycle(&s.engine, &commands))
    });
    const TASKS: u64 = 64;
    g.throughput(Throughput::Elements(TASKS));
    g.bench_function("engine_64_tasks", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (engine, commands) = (s.engine.clone(), commands.clone());
            async move {
                let start = Instant::now();
                for _ in 0..iters {
                    let tasks: Vec<_> = (0..TASKS)
                        .map(|_| {
                            let (engine, commands) = (engine.clone(), commands.clone());
                            tokio::spawn(async move { engine_lifecycle(&engine, &commands).await })
                        })
                        .collect();
                    for t in tasks {
                        t.await.unwrap();
                    }
                }
                start.elapsed()
            }
        })
    });
    g.finish();

    let mut g = c.benchmark_group("load");
    for n in [10usize, 100, 1000] {
        let id = rt.block_on(long_case(&s.engine, n));
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("cold", n), &id, |b, id| {
            b.to_async(&rt).iter(|| async {
                let history = s.engine.history(id).await.unwrap();
                Case::fold(history.iter().map(|(e, r)| (e, r.actor.as_str(), r.recorded_at)))
                    .unwrap()
            })
        });
        g.throughput(Throughput::Elements(1));
        g.bench_with_input(BenchmarkId::new("warm", n), &id, |b, id| {
            b.to_async(&rt).iter(|| async { s.engine.case(id).await.unwrap() })
        });
        // Decoding alone (no log), to split the cold cost.
        let history = rt.block_on(s.engine.history(&id)).unwrap();
        let records: Vec<_> = history.into_iter().map(|(_, r)| r).collect();
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("decode_and_fold", n), &records, |b, records| {
            b.iter_batched(
                || (),
                |_| {
                    let events: Vec<Event> =
                        records.iter().map(|r| Event::from_recorded(r).unwrap()).collect();
                    Case::fold(
                        events
                            .iter()
                            .zip(records)
                            .map(|(e, r)| (e, r.actor.as_str(), r.recorded_at)),
                    )
                    .unwrap()
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();

    // A restart: a new engine over a store of 2,000 lifecycles (1,000 closed,
    // 1,000 left open after dispatch) rebuilds its open-case view from one
    // pass over the log (`catch_up`), not from per-case history reads.
    let s = rt.block_on(store(&org));
    rt.block_on(async {
        for _ in 0..1000 {
            engine_lifecycle(&s.engine, &commands).await;
            engine_lifecycle(&s.engine, &commands[..3]).await;
        }
    });
    let events = s.engine.log().head().position;
    let mut g = c.benchmark_group("restart");
    g.throughput(Throughput::Elements(events));
    g.sample_size(10);
    g.bench_function(BenchmarkId::new("catch_up", events), |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let s = &s;
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let log = s.engine.log().clone();
                    let clock = s.engine.clock().clone();
                    let fresh = Engine::new(log, clock, EngineOptions::default()).await.unwrap();
                    let start = Instant::now();
                    fresh.catch_up().await.unwrap();
                    total += start.elapsed();
                    assert_eq!(fresh.open_case_ids().len(), 1000);
                }
                total
            }
        })
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = domain;
    config = config();
    targets = bench_decide, bench_engine
}
criterion_main!(domain);
