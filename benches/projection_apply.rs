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
//! district and the steps are `benches/support/district.rs`, shared with
//! `benches/projections.rs`; the mix is this file's. The events of all
//! cases are merged in time order and turned into log records exactly as
//! the writer makes them (postcard envelope, BLAKE3 chain) and decoded
//! back. The first `GRIDCASE_BENCH_WARM_DAYS` days (default 35, past the
//! 30-day reopen window, so closed cases are also being dropped) are
//! applied to a set: the warm state. The next 100,000 events are kept in
//! memory, records and decoded events, for the timed runs.
//!
//! Groups (times are per event for `apply*`):
//! - `apply/decoded`: `ProjectionSet::apply_decoded`, the registry, the one
//!   per-case fold (`Case::apply`, retention) and all five projections, on
//!   already decoded events: the fold alone;
//! - `apply/record`: `ProjectionSet::apply_record`, adding the chain check
//!   and the payload decode: what the runner does per record it reads;
//! - `apply_one/{backlog,rates,chains,overdue,cases}`: each projection
//!   alone, handed the case states before and after each event (computed
//!   outside the timing by folding the window with `Case::apply`);
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
use gridcase_engine::domain::{Case, Event};
use gridcase_engine::log::{
    decode_record, encode_record, Envelope, Hash, RecordView, RecordedEvent, CODEC_POSTCARD,
    GENESIS_HASH,
};
use gridcase_engine::org::ORG_STREAM;
use gridcase_engine::time::DAY_MS;
use gridcase_projections::{case_id, Config, Projection, ProjectionSet};

#[path = "support/district.rs"]
mod district;

use district::{case_stream, next_arrival, tinghu, Org, Plan, Rng, START};

/// Events timed per pass before the state is reset to the warm copy: a
/// few days of traffic, so the mix is the steady one, not one hour's.
const WINDOW: usize = 100_000;

/// One case's whole life, planned at submission: (time, actor, event) in
/// time order. The steady mix: about 60% solved in the community, 25% at
/// the street, 15% dispatched to a department; none marked overdue, every
/// one called back once and closed.
fn plan_case(seq: u64, t0: i64, org: &Org, rng: &mut Rng) -> Vec<(i64, String, Event)> {
    let mut case = Plan::submit(seq, t0, org, org.pick_grid(rng), rng);
    if case.route(rng) >= 85 {
        case.dispatch(org, rng);
        case.claim(rng);
    }
    // Resolved inside the limit: overdue marks are not part of this mix.
    case.t = (case.t + case.working_time(rng)).min(case.due.max(case.t));
    case.resolve("已处理");
    case.callback(rng);
    case.close(rng)
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
            rng: Rng::new(),
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
            let stream = case_stream(seq);
            self.live.insert(seq, Live { stream, version: 0, plan: plan.into() });
            self.next_arrival = next_arrival(self.next_arrival, &mut self.rng);
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
        "setup {:.1?}: warm state after {} events ({warm_days} days, {} cases); tracked cases {}; \
         rate rows {}; listed cases {} ({:.0} B each)",
        began.elapsed(),
        warm.position(),
        log.cases,
        warm.tracked_cases(),
        warm.rates().rows(),
        warm.cases().len(),
        warm.cases().heap_bytes() as f64 / warm.cases().len().max(1) as f64,
    );
    println!("timed window: {WINDOW} events over {days:.1} days; mix {mix:?}");
    Fixture { warm, window }
}

/// The case states before and after each event of the window, as the set
/// hands them to its projections, folded from the warm set's live cases.
type Change = (Option<Case>, Option<Case>);

fn changes(warm: &ProjectionSet, window: &[(RecordedEvent, Event)]) -> Vec<Change> {
    let mut live: HashMap<String, Case> = HashMap::new();
    window
        .iter()
        .map(|(rec, event)| {
            let Some(id) = case_id(&rec.stream) else { return (None, None) };
            let before = live.get(id).cloned().or_else(|| warm.case(id).cloned());
            let after = match &before {
                Some(b) => {
                    let mut a = b.clone();
                    a.apply(event, rec.recorded_at);
                    Some(a)
                }
                None => Case::start(event, &rec.actor, rec.recorded_at),
            };
            if let Some(a) = &after {
                live.insert(id.to_string(), a.clone());
            }
            (before, after)
        })
        .collect()
}

/// Times `apply` over the window from a copy of `warm`, continuing across
/// criterion's calls and starting again from a fresh copy (not timed) when
/// the window runs out.
fn bench_fold<S: Clone>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    warm: &S,
    window: &[(RecordedEvent, Event)],
    apply: impl Fn(&mut S, usize),
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
                for i in next..next + n {
                    apply(&mut state, i);
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

    let w = &window;
    let mut g = c.benchmark_group("apply");
    g.throughput(Throughput::Elements(1));
    bench_fold(&mut g, "decoded", &warm, w, |s, i| s.apply_decoded(&w[i].0, &w[i].1));
    bench_fold(&mut g, "record", &warm, w, |s, i| {
        s.apply_record(&w[i].0).expect("window records follow the warm state")
    });
    g.finish();

    // Each projection alone, on the states the set would hand it. Evictions
    // are left out (the window is shorter than the reopen window, and an
    // excluded case's record is dropped by the set, not the projection).
    let ch = changes(&warm, w);
    fn one<P: Projection>(p: &mut P, w: &[(RecordedEvent, Event)], ch: &[Change], i: usize) {
        p.apply(&RecordView::of(&w[i].0), &w[i].1, ch[i].0.as_ref(), ch[i].1.as_ref());
    }
    let mut g = c.benchmark_group("apply_one");
    g.throughput(Throughput::Elements(1));
    bench_fold(&mut g, "backlog", warm.backlog(), w, |p, i| one(p, w, &ch, i));
    bench_fold(&mut g, "rates", warm.rates(), w, |p, i| one(p, w, &ch, i));
    bench_fold(&mut g, "chains", warm.chains(), w, |p, i| one(p, w, &ch, i));
    bench_fold(&mut g, "overdue", warm.overdue(), w, |p, i| one(p, w, &ch, i));
    bench_fold(&mut g, "cases", warm.cases(), w, |p, i| one(p, w, &ch, i));
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
