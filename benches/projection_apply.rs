//! Criterion micro-benchmarks of folding recorded events into the read
//! models: the per-event cost of `ProjectionSet` application in a steady
//! state, and what an audit digest and a state snapshot cost.
//!
//! Setup, not timed: an organisation the size of Tinghu (10 streets, 70
//! communities, 427 grids, 1,976 micro-grids, 30 departments, 24
//! categories), then cases arriving at 4,000 a day, each planned at
//! submission as a lifecycle of submit, assign, escalate, dispatch, claim,
//! resolve, callback and close: about 60% solved in the community, 25% at
//! the street, 15% dispatched to a department (10% of those to two). The
//! events of all cases are merged in time order and turned into log records
//! exactly as the writer makes them (postcard envelope, BLAKE3 chain) and
//! decoded back. The first `GRIDCASE_BENCH_WARM_DAYS` days (default 35, past
//! the 30-day reopen window, so closed cases are also being dropped) are
//! applied to a set: the warm state. The next 100,000 events are kept in
//! memory, records and decoded events, for the timed runs.
//!
//! Groups (times are per event for `apply*`):
//! - `apply/decoded`: `ProjectionSet::apply_decoded`, the registry and all
//!   four projections, on already decoded events: the fold alone;
//! - `apply/record`: `ProjectionSet::apply_record`, adding the chain check
//!   and the payload decode: what the runner does per record it reads;
//! - `apply_one/{backlog,rates,chains,overdue}`: each projection alone;
//! - `state/{digests,to_bytes,from_bytes}`: the per-projection and combined
//!   digests of the warm state, and encoding and decoding it as a snapshot.
//!
//! Each timed run continues from where the previous one stopped and starts
//! again from a copy of the warm state (copied outside the timing) when the
//! 100,000 events run out, so every event applied is new to the state it is
//! applied to.
//!
//! Run: `cargo bench --bench projection_apply`
//! (`-- --quick` for a short run, `-- apply/` for one group;
//! `GRIDCASE_BENCH_WARM_DAYS=7` for a faster setup with a smaller state).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput};
use gridcase_engine::domain::{
    Channel, Contact, DeadlineClass, DeadlinePolicy, Event, HopReason, Priority, RequestKind,
    Satisfaction,
};
use gridcase_engine::log::{
    decode_record, encode_record, Envelope, Hash, RecordedEvent, CODEC_POSTCARD, GENESIS_HASH,
};
use gridcase_engine::org::{
    CategorySpec, CommunitySpec, GridSpec, OrgFile, Role, StaffSpec, StreetSpec, UnitSpec,
    ORG_STREAM,
};
use gridcase_engine::time::{Timestamp, DAY_MS};
use gridcase_projections::{Config, Projection, ProjectionSet};

const MINUTE: i64 = 60_000;
const CASES_PER_DAY: i64 = 4_000;
/// Events timed per pass before the state is reset to the warm copy: a
/// few days of traffic, so the mix is the steady one, not one hour's.
const WINDOW: usize = 100_000;
/// 2025-01-01 00:00 UTC: the first submission.
const START: i64 = 1_735_689_600_000;

/// A xorshift generator: deterministic, so every run folds the same events.
struct Rng(u64);

impl Rng {
    /// The next 64 random bits.
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// A number in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    /// True `percent` times in a hundred.
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    /// A duration of `lo..hi` minutes, in milliseconds.
    fn minutes(&mut self, lo: i64, hi: i64) -> i64 {
        (lo + (self.next() % (hi - lo).max(1) as u64) as i64) * MINUTE
    }
}

/// Where a case can be submitted, with the staff ids that work it.
struct Grid {
    code: String,
    community: String,
    street: String,
    micro_grids: Vec<String>,
    worker: String,
    community_staff: String,
    street_staff: String,
}

/// The organisation file and what case planning needs from it.
struct Org {
    file: OrgFile,
    grids: Vec<Grid>,
    departments: Vec<String>,
    /// (category code, its department, its deadline class).
    categories: Vec<(String, String, DeadlineClass)>,
}

/// A district the size of Tinghu, with the staff ids of `benches/projections.rs`.
fn tinghu() -> Org {
    let (streets_n, communities_n, grids_n, micro_n) = (10, 70, 427, 1976);
    let mut staff = Vec::new();
    let mut person = |id: String, role: Role, unit: &str| {
        let name = format!("工作人员{}", staff.len() + 1);
        staff.push(StaffSpec { id, name, role, unit: unit.to_string() });
    };
    let (mut streets, mut grids) = (Vec::new(), Vec::new());
    let (mut grid_no, mut micro_no) = (0, 0);
    for s in 0..streets_n {
        let s_code = format!("320902{:03}", s + 1);
        person(format!("ss{}", s + 1), Role::StreetStaff, &s_code);
        let mut communities = Vec::new();
        // Units are spread evenly: community c gets the grids up to its
        // share of the total, grid g the micro-grids up to its share.
        for c in (s * communities_n / streets_n)..((s + 1) * communities_n / streets_n) {
            let c_code = format!("{s_code}{:03}", c + 1);
            person(format!("cs{}", c + 1), Role::CommunityStaff, &c_code);
            let mut specs = Vec::new();
            while grid_no < (c + 1) * grids_n / communities_n {
                let g_code = format!("{c_code}{:03}", grid_no + 1);
                let micro_end = (grid_no + 1) * micro_n / grids_n;
                let names: Vec<String> =
                    (micro_no..micro_end).map(|m| format!("{}号楼", m + 1)).collect();
                micro_no = micro_end;
                let worker = format!("gw{}", grid_no + 1);
                person(worker.clone(), Role::GridWorker, &g_code);
                grids.push(Grid {
                    code: g_code.clone(),
                    community: c_code.clone(),
                    street: s_code.clone(),
                    // The registry names micro-grids `<grid><nn>`.
                    micro_grids: (1..=names.len()).map(|i| format!("{g_code}{i:02}")).collect(),
                    worker,
                    community_staff: format!("cs{}", c + 1),
                    street_staff: format!("ss{}", s + 1),
                });
                specs.push(GridSpec {
                    code: g_code,
                    name: format!("第{}网格", grid_no + 1),
                    address: None,
                    micro_grids: names,
                });
                grid_no += 1;
            }
            communities.push(CommunitySpec {
                code: c_code,
                name: format!("社区{}", c + 1),
                grids: specs,
            });
        }
        streets.push(StreetSpec { code: s_code, name: format!("街道{}", s + 1), communities });
    }
    let departments: Vec<String> = (1..=30).map(|d| format!("D{d:02}")).collect();
    for (i, d) in departments.iter().enumerate() {
        person(format!("ds{}", i + 1), Role::DepartmentStaff, d);
    }
    person("sup".into(), Role::DistrictSupervisor, "320902");
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
    Org { file, grids, departments, categories }
}

/// The staff id of a department's clerk (`D07` → `ds7`).
fn department_staff(code: &str) -> String {
    format!("ds{}", code[1..].trim_start_matches('0'))
}

/// One case's whole life, planned at submission: (time, actor, event) in
/// time order, with deadlines from the default policy.
fn plan_case(seq: u64, t0: i64, org: &Org, rng: &mut Rng) -> Vec<(i64, String, Event)> {
    let grid = &org.grids[rng.below(org.grids.len())];
    let (category, department, class) = &org.categories[rng.below(org.categories.len())];
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
    ][rng.below(5)];
    let limits = DeadlinePolicy::default().limits(kind, *class, priority);
    let minutes = |m: u32| i64::from(m) * MINUTE;
    let micro_grid = (!grid.micro_grids.is_empty())
        .then(|| grid.micro_grids[rng.below(grid.micro_grids.len())].clone());
    let patrol = rng.chance(30);
    let submitter =
        if patrol { grid.worker.clone() } else { format!("resident:r{}", rng.below(500_000)) };
    let mut out = vec![(
        t0,
        submitter,
        Event::CaseSubmitted {
            case_id: format!("GC{seq:09}"),
            channel: if patrol {
                Channel::GridPatrol
            } else {
                [Channel::App, Channel::Hotline, Channel::Portal][rng.below(3)]
            },
            kind,
            category: category.clone(),
            priority,
            description: "小区门口路灯不亮已经三天了，晚上出行很不方便，请尽快处理".into(),
            location: micro_grid.clone().unwrap_or_else(|| grid.code.clone()),
            grid: grid.code.clone(),
            micro_grid,
            community: grid.community.clone(),
            street: grid.street.clone(),
            contact: (!patrol && rng.chance(60))
                .then(|| Contact { name: "王女士".into(), phone: "13800000000".into() }),
            found_on_patrol: patrol,
            response_due: Timestamp(t0 + minutes(limits.response_minutes)),
            resolution_due: Timestamp(t0 + minutes(limits.resolution_minutes)),
            hold_until: Timestamp(t0 + minutes(limits.community_minutes)),
        },
    )];
    let route = rng.below(100);
    let mut t = t0;
    if route < 60 || rng.chance(50) {
        t += rng.minutes(5, 180);
        out.push((
            t,
            grid.community_staff.clone(),
            Event::CaseAssigned { worker: grid.worker.clone() },
        ));
    }
    // (unit, actor) of each holder that resolves its part.
    let mut holders = vec![(grid.community.clone(), grid.community_staff.clone())];
    if route >= 60 {
        // A third of the escalations are the community's hold running out.
        let by_deadline = rng.chance(30);
        t = if by_deadline {
            (t0 + minutes(limits.community_minutes)).max(t + MINUTE)
        } else {
            t + rng.minutes(30, 600)
        };
        out.push((
            t,
            if by_deadline { "system".into() } else { grid.community_staff.clone() },
            Event::CaseEscalated {
                from: grid.community.clone(),
                to: grid.street.clone(),
                reason: if by_deadline { HopReason::Deadline } else { HopReason::Manual },
                note: String::new(),
                hold_until: Timestamp(t + minutes(limits.street_minutes)),
            },
        ));
        holders = vec![(grid.street.clone(), grid.street_staff.clone())];
    }
    if route >= 85 {
        let mut departments = vec![department.clone()];
        if rng.chance(10) {
            let other = &org.departments[rng.below(org.departments.len())];
            if other != department {
                departments.push(other.clone());
            }
        }
        t += rng.minutes(30, 900);
        out.push((
            t,
            grid.street_staff.clone(),
            Event::CaseDispatched {
                from: grid.street.clone(),
                departments: departments.clone(),
                lead: departments[0].clone(),
                reason: HopReason::Manual,
                note: String::new(),
                claim_due: Timestamp(t + minutes(limits.claim_minutes)),
            },
        ));
        holders = departments.iter().map(|d| (d.clone(), department_staff(d))).collect();
        for (unit, actor) in &holders {
            t += rng.minutes(10, 600);
            out.push((t, actor.clone(), Event::CaseClaimed { department: unit.clone() }));
        }
    }
    // Resolved inside the limit: overdue marks are not part of this mix.
    let resolution = i64::from(limits.resolution_minutes);
    let due = t0 + minutes(limits.resolution_minutes);
    t = (t + rng.minutes(30, (resolution / 2).max(31))).min(due.max(t));
    for (i, (unit, actor)) in holders.iter().enumerate() {
        t += MINUTE;
        out.push((
            t,
            actor.clone(),
            Event::CaseResolved {
                unit: unit.clone(),
                note: "已处理".into(),
                complete: i + 1 == holders.len(),
            },
        ));
    }
    t += rng.minutes(60, 24 * 60);
    let satisfaction = match rng.below(100) {
        0..=5 => Satisfaction::Unsatisfied,
        6..=24 => Satisfaction::BasicallySatisfied,
        _ => Satisfaction::Satisfied,
    };
    let solved = satisfaction != Satisfaction::Unsatisfied;
    out.push((
        t,
        grid.community_staff.clone(),
        Event::CallbackRecorded { satisfaction, solved, note: String::new() },
    ));
    t += rng.minutes(10, 240);
    out.push((t, grid.community_staff.clone(), Event::CaseClosed { note: String::new() }));
    out
}

/// A case in flight: its stream, its next stream version and what is left of its plan.
struct Live {
    stream: String,
    version: u64,
    plan: VecDeque<(i64, String, Event)>,
}

/// The district's log, one record at a time: the registry first, then the
/// events of all cases merged in time order, encoded and chained as the
/// writer does it.
struct LogGen {
    org: Org,
    rng: Rng,
    registry: VecDeque<Event>,
    registry_version: u64,
    /// (time of the case's next event, case number).
    due: BinaryHeap<Reverse<(i64, u64)>>,
    live: HashMap<u64, Live>,
    next_arrival: i64,
    cases: u64,
    position: u64,
    prev_hash: Hash,
}

impl LogGen {
    /// The log of the Tinghu-size district, before its first record.
    fn new() -> LogGen {
        let org = tinghu();
        let registry = org.file.events().expect("the generated organisation is valid").into();
        LogGen {
            org,
            rng: Rng(0x9e37_79b9_7f4a_7c15),
            registry,
            registry_version: 0,
            due: BinaryHeap::new(),
            live: HashMap::new(),
            next_arrival: START,
            cases: 0,
            position: 0,
            prev_hash: GENESIS_HASH,
        }
    }

    /// The time the next record will carry.
    fn next_time(&self) -> i64 {
        match self.due.peek() {
            Some(Reverse((t, _))) => (*t).min(self.next_arrival),
            None => self.next_arrival,
        }
    }

    /// The next record of the log and its decoded event.
    fn next_record(&mut self) -> (RecordedEvent, Event) {
        if let Some(event) = self.registry.pop_front() {
            self.registry_version += 1;
            let version = self.registry_version;
            return self.record(ORG_STREAM.into(), version, START - DAY_MS, "admin".into(), event);
        }
        // Plan every case that arrives before the earliest planned event, so
        // the merge never has to go back in time.
        while self.due.peek().is_none_or(|Reverse((t, _))| self.next_arrival <= *t) {
            self.cases += 1;
            let seq = self.cases;
            let plan = plan_case(seq, self.next_arrival, &self.org, &mut self.rng);
            self.due.push(Reverse((plan[0].0, seq)));
            let stream = format!("case-GC{seq:09}");
            self.live.insert(seq, Live { stream, version: 0, plan: plan.into() });
            // Arrivals vary around the daily mean.
            let gap = DAY_MS / CASES_PER_DAY;
            self.next_arrival += gap / 2 + (self.rng.next() % gap as u64) as i64;
        }
        let Some(Reverse((_, seq))) = self.due.pop() else {
            unreachable!("a case was planned above");
        };
        let live = self.live.get_mut(&seq).expect("a due case is live");
        let (t, actor, event) = live.plan.pop_front().expect("a due case has an event left");
        live.version += 1;
        let (stream, version) = (live.stream.clone(), live.version);
        match live.plan.front() {
            // A case's plan is in time order; equal times keep plan order
            // because the case goes back under the same key.
            Some((next, _, _)) => self.due.push(Reverse((*next, seq))),
            None => {
                self.live.remove(&seq);
            }
        }
        self.record(stream, version, t, actor, event)
    }

    /// Encodes `event` as the next record, chained to the previous one, and
    /// reads it back.
    fn record(
        &mut self,
        stream: String,
        version: u64,
        recorded_at: i64,
        actor: String,
        event: Event,
    ) -> (RecordedEvent, Event) {
        self.position += 1;
        let data = event.to_data();
        let envelope = Envelope {
            position: self.position,
            stream,
            version,
            event_type: data.event_type,
            schema_version: data.schema_version,
            recorded_at,
            actor,
            correlation_id: None,
            causation_id: None,
            idempotency: None,
            payload_codec: CODEC_POSTCARD,
            payload: data.payload,
            prev_hash: self.prev_hash,
        };
        let bytes = encode_record(&envelope).expect("encode a generated record");
        let rec = decode_record(&bytes, self.position).expect("decode a generated record");
        self.prev_hash = rec.hash;
        // Decoded from the record, as a reader would, not the planned value.
        let event = Event::from_recorded(&rec).expect("decode a generated payload");
        (rec, event)
    }
}

/// The warm state and the events that follow it.
struct Fixture {
    warm: ProjectionSet,
    window: Vec<(RecordedEvent, Event)>,
}

/// Generates the log, folds the warm-up into a set and keeps the window.
fn fixture() -> Fixture {
    let warm_days: i64 = std::env::var("GRIDCASE_BENCH_WARM_DAYS")
        .ok()
        .map(|v| v.parse().expect("GRIDCASE_BENCH_WARM_DAYS is a number of days"))
        .unwrap_or(35);
    let began = Instant::now();
    let mut log = LogGen::new();
    let mut warm = ProjectionSet::new(Config::default());
    let warm_until = START + warm_days * DAY_MS;
    while !log.registry.is_empty() || log.next_time() < warm_until {
        let (rec, _) = log.next_record();
        warm.apply_record(&rec).expect("warm-up records follow each other");
    }
    let window: Vec<(RecordedEvent, Event)> = (0..WINDOW).map(|_| log.next_record()).collect();
    let mut mix: BTreeMap<&str, usize> = BTreeMap::new();
    for (rec, _) in &window {
        *mix.entry(rec.event_type.as_str()).or_default() += 1;
    }
    let days =
        (window[WINDOW - 1].0.recorded_at.0 - window[0].0.recorded_at.0) as f64 / DAY_MS as f64;
    println!(
        "setup {:.1?}: warm state after {} events ({warm_days} days, {} cases); tracked cases: \
         backlog {} rates {} chains {} overdue {}; rate rows {}",
        began.elapsed(),
        warm.position(),
        log.cases,
        warm.backlog().tracked_cases(),
        warm.rates().tracked_cases(),
        warm.chains().tracked_cases(),
        warm.overdue().tracked_cases(),
        warm.rates().rows(),
    );
    println!("timed window: {WINDOW} events over {days:.1} days; mix {mix:?}");
    Fixture { warm, window }
}

/// Times `apply` over the window from a copy of `warm`, continuing across
/// criterion's calls and starting again from a fresh copy (not timed) when
/// the window runs out.
fn bench_fold<S: Clone>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    warm: &S,
    window: &[(RecordedEvent, Event)],
    apply: impl Fn(&mut S, &RecordedEvent, &Event),
) {
    let mut state = warm.clone();
    let mut next = 0;
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters as usize;
            while left > 0 {
                if next == window.len() {
                    state = warm.clone();
                    next = 0;
                }
                let n = left.min(window.len() - next);
                let start = Instant::now();
                for (rec, event) in &window[next..next + n] {
                    apply(&mut state, rec, event);
                }
                total += start.elapsed();
                next += n;
                left -= n;
            }
            total
        })
    });
}

/// Every group, over one fixture (its setup takes seconds).
fn benches(c: &mut Criterion) {
    let Fixture { warm, window } = fixture();

    let mut g = c.benchmark_group("apply");
    g.throughput(Throughput::Elements(1));
    bench_fold(&mut g, "decoded", &warm, &window, |s, rec, event| s.apply_decoded(rec, event));
    bench_fold(&mut g, "record", &warm, &window, |s, rec, _| {
        s.apply_record(rec).expect("window records follow the warm state")
    });
    g.finish();

    let mut g = c.benchmark_group("apply_one");
    g.throughput(Throughput::Elements(1));
    bench_fold(&mut g, "backlog", warm.backlog(), &window, |p, rec, e| p.apply(rec, e));
    bench_fold(&mut g, "rates", warm.rates(), &window, |p, rec, e| p.apply(rec, e));
    bench_fold(&mut g, "chains", warm.chains(), &window, |p, rec, e| p.apply(rec, e));
    bench_fold(&mut g, "overdue", warm.overdue(), &window, |p, rec, e| p.apply(rec, e));
    g.finish();

    let bytes = warm.to_bytes().expect("encode the warm state");
    println!("snapshot of the warm state: {:.1} MB", bytes.len() as f64 / 1e6);
    let mut g = c.benchmark_group("state");
    // Each call takes a sizeable fraction of a second on a steady-state
    // set: flat sampling keeps it to one call per sample.
    g.sampling_mode(SamplingMode::Flat).sample_size(10);
    g.bench_function("digests", |b| b.iter(|| warm.digests()));
    // The results are dropped outside the timing: freeing a whole set is
    // not part of taking or restoring a snapshot.
    g.bench_function("to_bytes", |b| {
        b.iter_with_large_drop(|| warm.to_bytes().expect("encode the warm state"))
    });
    g.bench_function("from_bytes", |b| {
        b.iter_with_large_drop(|| ProjectionSet::from_bytes(&bytes).expect("decode the warm state"))
    });
    g.finish();
}

/// Short runs: the per-event figures settle within a second.
fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

/// Kept in a private module: `criterion_group!` declares a public function
/// that would otherwise need a doc comment.
mod groups {
    criterion::criterion_group! {
        name = projection_apply;
        config = super::config();
        targets = super::benches
    }
}

criterion::criterion_main!(groups::projection_apply);
