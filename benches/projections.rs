//! Full rebuild of every projection over a Tinghu-size district log.
//!
//! The log is generated once (and kept for reruns): an organisation the
//! size of Tinghu (10 streets, 70 communities, 427 grids, 1,976
//! micro-grids, 30 departments) and case lifecycles with realistic
//! escalation, returns, joint handling, extensions, overdue marks,
//! callbacks and reopens, appended straight to a `SledLog` in large
//! concurrent batches with `Buffered` durability, the log's clock set to
//! each batch's simulated time.
//!
//! The rebuild is then timed phase by phase, each a full pass over the log:
//! 1. read (sled + record decode + BLAKE3 of each record),
//! 2. + hash-chain check + payload decode,
//! 3. + apply to a `ProjectionSet` (single task; apply timed apart),
//! 4. the library's `rebuild` (read/decode and fold pipelined on two tasks),
//!    with peak memory (VmHWM, reset before the pass);
//!
//! plus BLAKE3 alone over a sample of canonical record bytes, the digest
//! and the saved state's size.
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
use gridcase_engine::domain::{
    Channel, Contact, DeadlineClass, DeadlinePolicy, Event, HopReason, Level, Priority,
    RequestKind, Satisfaction,
};
use gridcase_engine::log::{
    encode_record, AppendRequest, ChainVerifier, Durability, Envelope, EventLog, ExpectedVersion,
    SledLog, SledOptions, StreamId, CODEC_POSTCARD,
};
use gridcase_engine::org::Role;
use gridcase_engine::org::{
    CategorySpec, CommunitySpec, GridSpec, OrgFile, StaffSpec, StreetSpec, UnitSpec, ORG_STREAM,
};
use gridcase_engine::time::{ManualClock, Timestamp, DAY_MS, HOUR_MS};
use gridcase_projections::backlog::Backlog;
use gridcase_projections::chains::Chains;
use gridcase_projections::overdue::Overdue;
use gridcase_projections::rates::Rates;
use gridcase_projections::{rebuild, Config, Projection, ProjectionSet, Store};

const MINUTE: i64 = 60_000;
/// Simulated time covered by one append wave.
const WAVE_MS: i64 = 5 * MINUTE;
const CASES_PER_DAY: i64 = 4_000;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// A xorshift generator: deterministic, so every run generates the same log.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn between(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo).max(1) as u64) as i64
    }
}

struct Org {
    file: OrgFile,
    /// (grid code, community code, street code, micro-grid codes).
    grids: Vec<(String, String, String, Vec<String>)>,
    departments: Vec<String>,
    categories: Vec<(String, String, DeadlineClass)>,
    community_numbers: std::collections::HashMap<String, usize>,
    street_numbers: std::collections::HashMap<String, usize>,
}

/// A district the size of Tinghu: 10 streets, 70 communities, 427 grids, 1,976 micro-grids.
fn tinghu() -> Org {
    let (streets_n, communities_n, grids_n, micro_n) = (10usize, 70usize, 427usize, 1976usize);
    let mut streets = Vec::new();
    let mut grids = Vec::new();
    let mut staff = Vec::new();
    let mut grid_no = 0usize;
    let mut micro_no = 0usize;
    for s in 0..streets_n {
        let s_code = format!("320902{:03}", s + 1);
        let mut communities = Vec::new();
        for c in (s * communities_n / streets_n)..((s + 1) * communities_n / streets_n) {
            let c_code = format!("{s_code}{:03}", c + 1);
            let mut gs = Vec::new();
            let g_end = (c + 1) * grids_n / communities_n;
            while grid_no < g_end {
                let g_code = format!("{c_code}{:03}", grid_no + 1);
                let m_end = (grid_no + 1) * micro_n / grids_n;
                let names: Vec<String> =
                    (micro_no..m_end).map(|m| format!("{}号楼", m + 1)).collect();
                let micro_codes: Vec<String> =
                    (1..=names.len()).map(|i| format!("{g_code}{i:02}")).collect();
                micro_no = m_end;
                grids.push((g_code.clone(), c_code.clone(), s_code.clone(), micro_codes));
                staff.push(StaffSpec {
                    id: format!("gw{}", grid_no + 1),
                    name: format!("网格员{}", grid_no + 1),
                    role: Role::GridWorker,
                    unit: g_code.clone(),
                });
                gs.push(GridSpec {
                    code: g_code,
                    name: format!("第{}网格", grid_no + 1),
                    address: None,
                    micro_grids: names,
                });
                grid_no += 1;
            }
            staff.push(StaffSpec {
                id: format!("cs{}", c + 1),
                name: format!("社区工作者{}", c + 1),
                role: Role::CommunityStaff,
                unit: c_code.clone(),
            });
            communities.push(CommunitySpec {
                code: c_code,
                name: format!("社区{}", c + 1),
                grids: gs,
            });
        }
        staff.push(StaffSpec {
            id: format!("ss{}", s + 1),
            name: format!("街道干部{}", s + 1),
            role: Role::StreetStaff,
            unit: s_code.clone(),
        });
        streets.push(StreetSpec { code: s_code, name: format!("街道{}", s + 1), communities });
    }
    let departments: Vec<String> = (1..=30).map(|d| format!("D{d:02}")).collect();
    for (i, d) in departments.iter().enumerate() {
        staff.push(StaffSpec {
            id: format!("ds{}", i + 1),
            name: format!("部门员{}", i + 1),
            role: Role::DepartmentStaff,
            unit: d.clone(),
        });
    }
    staff.push(StaffSpec {
        id: "sup".into(),
        name: "区督办".into(),
        role: Role::DistrictSupervisor,
        unit: "320902".into(),
    });
    let classes = [
        DeadlineClass::Ordinary,
        DeadlineClass::Ordinary,
        DeadlineClass::Utilities,
        DeadlineClass::Complex,
    ];
    let categories: Vec<(String, String, DeadlineClass)> = (0..24)
        .map(|i| (format!("cat{i:02}"), departments[i % departments.len()].clone(), classes[i % 4]))
        .collect();
    let file = OrgFile {
        district: UnitSpec { code: "320902".into(), name: "亭湖区".into() },
        streets,
        departments: departments
            .iter()
            .enumerate()
            .map(|(i, d)| UnitSpec { code: d.clone(), name: format!("部门{}", i + 1) })
            .collect(),
        categories: categories
            .iter()
            .map(|(c, d, class)| CategorySpec {
                code: c.clone(),
                name: format!("类别{c}"),
                department: d.clone(),
                class: *class,
            })
            .collect(),
        staff,
        policy: DeadlinePolicy::default(),
    };
    let mut community_numbers = std::collections::HashMap::new();
    let mut street_numbers = std::collections::HashMap::new();
    for (i, s) in file.streets.iter().enumerate() {
        street_numbers.insert(s.code.clone(), i + 1);
    }
    for (i, c) in file.streets.iter().flat_map(|s| &s.communities).enumerate() {
        community_numbers.insert(c.code.clone(), i + 1);
    }
    Org { file, grids, departments, categories, community_numbers, street_numbers }
}

/// One case's whole life, planned at submission: (time, actor, event), in time order.
fn plan_case(seq: u64, t0: i64, org: &Org, rng: &mut Rng) -> Vec<(i64, String, Event)> {
    let policy = DeadlinePolicy::default();
    let (grid, community, street, micros) = &org.grids[rng.below(org.grids.len() as u64) as usize];
    // A draw kept so that this generator writes the very log BENCHMARKS.md measured.
    rng.next();
    let g_idx = org.grids.iter().position(|g| &g.0 == grid).unwrap_or(0);
    // Staff ids follow unit order: cs<community number>, ss<street number>.
    let c_idx = org.community_numbers.get(community).copied().unwrap_or(1);
    let s_idx = org.street_numbers.get(street).copied().unwrap_or(1);
    let (cat, cat_dept, class) = &org.categories[rng.below(org.categories.len() as u64) as usize];
    let priority = match rng.below(100) {
        0..=1 => Priority::Emergency,
        2..=9 => Priority::Urgent,
        _ => Priority::Normal,
    };
    let kind = [
        RequestKind::Complaint,
        RequestKind::Help,
        RequestKind::Report,
        RequestKind::Consultation,
        RequestKind::Suggestion,
    ][rng.below(5) as usize];
    let limits = policy.limits(kind, *class, priority);
    let resolution = limits.resolution_minutes as i64 * MINUTE;
    let worker = format!("gw{}", g_idx + 1);
    let cstaff = format!("cs{c_idx}");
    let sstaff = format!("ss{s_idx}");
    let micro = if micros.is_empty() {
        None
    } else {
        Some(micros[rng.below(micros.len() as u64) as usize].clone())
    };
    let patrol = rng.chance(30);
    let mut out: Vec<(i64, String, Event)> = Vec::with_capacity(10);
    let submitter =
        if patrol { worker.clone() } else { format!("resident:r{}", rng.below(500_000)) };
    out.push((
        t0,
        submitter,
        Event::CaseSubmitted {
            case_id: format!("GC{seq:09}"),
            channel: if patrol {
                Channel::GridPatrol
            } else {
                [Channel::App, Channel::Hotline, Channel::Portal][rng.below(3) as usize]
            },
            kind,
            category: cat.clone(),
            priority,
            description: "小区门口路灯不亮已经三天了，晚上出行很不方便，请尽快处理".into(),
            location: micro.clone().unwrap_or_else(|| grid.clone()),
            grid: grid.clone(),
            micro_grid: micro,
            community: community.clone(),
            street: street.clone(),
            contact: (!patrol && rng.chance(60))
                .then(|| Contact { name: "王女士".into(), phone: "13800000000".into() }),
            found_on_patrol: patrol,
            response_due: Timestamp(t0 + limits.response_minutes as i64 * MINUTE),
            resolution_due: Timestamp(t0 + resolution),
            hold_until: Timestamp(t0 + limits.community_minutes as i64 * MINUTE),
        },
    ));
    // Invalid, duplicate and withdrawn requests leave early.
    match rng.below(100) {
        0..=2 => {
            out.push((
                t0 + rng.between(10, 120) * MINUTE,
                cstaff,
                Event::CaseRejected { reason: "不属于受理范围".into() },
            ));
            return out;
        }
        3 => {
            out.push((
                t0 + rng.between(5, 60) * MINUTE,
                cstaff,
                Event::CaseMerged { into: format!("GC{:09}", seq.saturating_sub(1)) },
            ));
            return out;
        }
        4 => {
            out.push((
                t0 + rng.between(60, 2000) * MINUTE,
                "resident:r1".into(),
                Event::CaseWithdrawn { reason: "已自行解决".into() },
            ));
            return out;
        }
        _ => {}
    }
    let mut due = t0 + resolution;
    let mut t = t0;
    let mut holder_level = Level::Community;
    let mut holders: Vec<String> = vec![community.clone()];
    let route = rng.below(100);
    // Work at the community first.
    if route < 60 || rng.chance(50) {
        t += rng.between(5, 180) * MINUTE;
        out.push((t, cstaff.clone(), Event::CaseAssigned { worker: worker.clone() }));
    }
    if route >= 60 {
        let deadline = rng.chance(30);
        t = if deadline {
            t0 + limits.community_minutes as i64 * MINUTE
        } else {
            t + rng.between(30, 600) * MINUTE
        };
        out.push((
            t,
            if deadline { "system".into() } else { cstaff.clone() },
            Event::CaseEscalated {
                from: community.clone(),
                to: street.clone(),
                reason: if deadline { HopReason::Deadline } else { HopReason::Manual },
                note: String::new(),
                hold_until: Timestamp(t + limits.street_minutes as i64 * MINUTE),
            },
        ));
        holder_level = Level::Street;
        holders = vec![street.clone()];
        if route >= 72 {
            let joint = rng.chance(10);
            let mut depts = vec![cat_dept.clone()];
            if joint {
                depts.push(
                    org.departments[rng.below(org.departments.len() as u64) as usize].clone(),
                );
                depts.dedup();
            }
            t += rng.between(30, 900) * MINUTE;
            out.push((
                t,
                sstaff.clone(),
                Event::CaseDispatched {
                    from: street.clone(),
                    departments: depts.clone(),
                    lead: depts[0].clone(),
                    reason: HopReason::Manual,
                    note: String::new(),
                    claim_due: Timestamp(t + limits.claim_minutes as i64 * MINUTE),
                },
            ));
            if !joint && rng.chance(12) {
                t += rng.between(60, 600) * MINUTE;
                out.push((
                    t,
                    format!("ds{}", &depts[0][1..].trim_start_matches('0')),
                    Event::CaseReturned {
                        department: depts[0].clone(),
                        reason: "非本部门职责".into(),
                        street_hold_until: Some(Timestamp(
                            t + limits.street_minutes as i64 * MINUTE,
                        )),
                    },
                ));
                let other =
                    org.departments[rng.below(org.departments.len() as u64) as usize].clone();
                depts = vec![if other == depts[0] { org.departments[0].clone() } else { other }];
                t += rng.between(30, 600) * MINUTE;
                out.push((
                    t,
                    sstaff.clone(),
                    Event::CaseDispatched {
                        from: street.clone(),
                        departments: depts.clone(),
                        lead: depts[0].clone(),
                        reason: HopReason::Return,
                        note: String::new(),
                        claim_due: Timestamp(t + limits.claim_minutes as i64 * MINUTE),
                    },
                ));
            }
            for d in &depts {
                t += rng.between(10, 600) * MINUTE;
                out.push((
                    t,
                    format!("ds{}", d[1..].trim_start_matches('0')),
                    Event::CaseClaimed { department: d.clone() },
                ));
            }
            holder_level = Level::Department;
            holders = depts;
        }
    }
    // An extension, sometimes.
    if rng.chance(3) {
        let at = (t + MINUTE).min(due - MINUTE).max(t);
        out.push((
            at,
            "actor".into(),
            Event::ExtensionRequested {
                unit: holders[0].clone(),
                until: Timestamp(due + 3 * DAY_MS),
                reason: "需要施工".into(),
            },
        ));
        out.push((
            at + 30 * MINUTE,
            "sup".into(),
            Event::ExtensionApproved {
                by: "320902".into(),
                resolution_due: Timestamp(due + 3 * DAY_MS),
            },
        ));
        due += 3 * DAY_MS;
        t = at + 30 * MINUTE;
    }
    // Resolution: usually well inside the limit, sometimes late (then marked overdue first).
    let late = rng.chance(5);
    let mut resolved_at = if late {
        due + rng.between(60, 4 * 24 * 60) * MINUTE
    } else {
        t + rng.between(30, (resolution / MINUTE / 2).max(31)) * MINUTE
    };
    resolved_at = resolved_at.max(t + MINUTE);
    if resolved_at > due {
        out.push((
            due.max(t),
            "system".into(),
            Event::CaseOverdue { what: OverdueKind::Resolution, due: Timestamp(due) },
        ));
        if rng.chance(40) {
            out.push((
                due.max(t) + HOUR_MS,
                "sup".into(),
                Event::CaseSupervised { by: "320902".into(), note: "请加快办理".into() },
            ));
            resolved_at = resolved_at.max(due.max(t) + 2 * HOUR_MS);
        }
    }
    t = resolved_at;
    let resolver_actor = |unit: &str| match holder_level {
        Level::Community => cstaff.clone(),
        Level::Street => sstaff.clone(),
        Level::Department => format!("ds{}", unit[1..].trim_start_matches('0')),
    };
    for (i, h) in holders.iter().enumerate() {
        out.push((
            t,
            resolver_actor(h),
            Event::CaseResolved {
                unit: h.clone(),
                note: "已处理".into(),
                complete: i + 1 == holders.len(),
            },
        ));
        t += MINUTE;
    }
    // Callback, then close or reopen once.
    t += rng.between(60, 24 * 60) * MINUTE;
    let unhappy = rng.chance(6);
    out.push((
        t,
        cstaff.clone(),
        Event::CallbackRecorded {
            satisfaction: if unhappy {
                Satisfaction::Unsatisfied
            } else if rng.chance(80) {
                Satisfaction::Satisfied
            } else {
                Satisfaction::BasicallySatisfied
            },
            solved: !unhappy,
            note: String::new(),
        },
    ));
    if unhappy {
        t += rng.between(30, 240) * MINUTE;
        out.push((
            t,
            cstaff.clone(),
            Event::CaseReopened {
                reason: "问题仍未解决".into(),
                level: holder_level,
                holders: holders.clone(),
                resolution_due: Timestamp(t + resolution),
                hold_until: (holder_level != Level::Department).then_some(Timestamp(t + DAY_MS)),
            },
        ));
        t += rng.between(60, 2 * 24 * 60) * MINUTE;
        for (i, h) in holders.iter().enumerate() {
            out.push((
                t,
                resolver_actor(h),
                Event::CaseResolved {
                    unit: h.clone(),
                    note: "已重新处理".into(),
                    complete: i + 1 == holders.len(),
                },
            ));
            t += MINUTE;
        }
        t += rng.between(60, 24 * 60) * MINUTE;
        out.push((
            t,
            cstaff.clone(),
            Event::CallbackRecorded {
                satisfaction: Satisfaction::BasicallySatisfied,
                solved: true,
                note: String::new(),
            },
        ));
    }
    out.push((
        t + rng.between(10, 240) * MINUTE,
        cstaff,
        Event::CaseClosed { note: String::new() },
    ));
    // Keep the plan in time order (an extension or overdue mark can tie).
    out.sort_by_key(|(t, _, _)| *t);
    out
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
    let start = Timestamp::parse("2025-01-01T00:00:00Z")?.0;
    clock.set(Timestamp(start - DAY_MS));
    let org_events = org.file.events()?;
    log.append(AppendRequest::new(
        StreamId::new(ORG_STREAM)?,
        ExpectedVersion::NoStream,
        "admin",
        org_events.iter().map(Event::to_data).collect(),
    ))
    .await?;
    let began = Instant::now();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut heap: BinaryHeap<Reverse<(i64, u64)>> = BinaryHeap::new();
    let mut live: std::collections::HashMap<u64, Planned> = std::collections::HashMap::new();
    let (mut planned, mut seq) = (0u64, 0u64);
    let mut next_arrival = start;
    let mut wave_end = start;
    let arrival_gap = DAY_MS / CASES_PER_DAY;
    loop {
        wave_end += WAVE_MS;
        while planned < target && next_arrival < wave_end {
            seq += 1;
            let plan = plan_case(seq, next_arrival, &org, &mut rng);
            planned += plan.len() as u64;
            let mut it = plan.into_iter();
            let first = it.next();
            if let Some((t, _, _)) = &first {
                heap.push(Reverse((*t, seq)));
            }
            live.insert(
                seq,
                Planned {
                    stream: StreamId::new(format!("case-GC{seq:09}"))?,
                    events: it,
                    next: first,
                },
            );
            // Arrivals vary around the daily mean.
            next_arrival += arrival_gap / 2 + rng.below(arrival_gap as u64) as i64;
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

    // Phase 4: the library's pipelined rebuild, with peak memory.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let rss_before = status_kb("VmRSS:");
    let t = Instant::now();
    let set = rebuild(&log, config).await?;
    let full = t.elapsed();
    let peak = status_kb("VmHWM:");
    println!("4 rebuild (pipelined, two tasks):             {}", rate(head, full));
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
    fn alone<P: Projection + Default>(
        decoded: &[(gridcase_engine::log::RecordedEvent, Event)],
    ) -> Duration {
        let mut p = P::default();
        let t = Instant::now();
        for (rec, ev) in decoded {
            p.apply(rec, ev);
        }
        let d = t.elapsed();
        std::hint::black_box(&p);
        d
    }
    let n = decoded.len() as u64;
    println!("  apply alone, {n} events in memory:");
    println!("    backlog {}", rate(n, alone::<Backlog>(&decoded)));
    println!("    rates   {}", rate(n, alone::<Rates>(&decoded)));
    println!("    chains  {}", rate(n, alone::<Chains>(&decoded)));
    println!("    overdue {}", rate(n, alone::<Overdue>(&decoded)));
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
        "tracked cases: backlog {} rates {} chains {} overdue {}; rate rows {}",
        set.backlog().tracked_cases(),
        set.rates().tracked_cases(),
        set.chains().tracked_cases(),
        set.overdue().tracked_cases(),
        set.rates().rows()
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
