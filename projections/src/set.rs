//! [`ProjectionSet`]: every projection plus the registry, the one per-case
//! fold they share, and the checkpoint (position and hash of the last
//! record applied) that makes resuming, persistence and audits possible.
//!
//! Records are applied strictly in log order and each is chain-checked
//! against the checkpoint before it is applied, so a set can only ever be
//! the fold of a gap-free prefix of one log.
//!
//! For each record of a case stream the set does, once for all projections:
//! 1. forget the closed cases whose reopen window has passed by the
//!    record's time (`retention`), telling each projection (`evict`);
//! 2. fold the record into the case's [`Case`] with `Case::apply` (or
//!    `Case::start` for a new case), keeping the state before it;
//! 3. call every projection with (record, event, before, after);
//! 4. queue the case for eviction if the record closed it (or unqueue it
//!    if it reopened it), and forget it at once if it ended for good
//!    (rejected, merged, withdrawn).

use gridcase_engine::domain::{Case, Event};
use gridcase_engine::log::{
    hex, ChainVerifier, Hash, Position, RecordView, RecordedEvent, GENESIS_HASH,
};
use gridcase_engine::org::{Registry, ORG_STREAM};
use gridcase_engine::time::Timestamp;
use serde::{Deserialize, Serialize};

use crate::backlog::{Backlog, BacklogReport};
use crate::casemap::{case_id, CaseKey, CaseMap};

/// The cases that can still change (open, or closed inside their reopen
/// window), by id. Boxed: folding a record swaps the case with the scratch
/// copy (a pointer swap, not a copy of a 600-byte case) and the table's
/// entries stay small.
pub type LiveCases = CaseMap<Box<Case>>;
use crate::cases::Cases;
use crate::chains::{CaseChain, ChainReport, Chains};
use crate::overdue::{Overdue, OverdueReport};
use crate::period::Period;
use crate::projection::{digest_of, Projection};
use crate::rates::{Ranking, Rates, RatesReport};
use crate::retention::Retention;
use crate::timeline::{timeline, TimelineEntry};
use crate::Error;

/// What shapes the state (a change needs a rebuild).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// The district's time zone as minutes east of UTC (default +08:00);
    /// rate cohorts are the day, week and month of submission in it.
    pub utc_offset_minutes: i32,
}

impl Default for Config {
    fn default() -> Self {
        Config { utc_offset_minutes: 480 }
    }
}

impl Config {
    /// The configuration of a district in `zone` (the organisation's
    /// `[district] time_zone`, read from the registry): its periods are the
    /// days, weeks and months of that zone.
    pub fn for_zone(zone: &gridcase_engine::time::Zone) -> Config {
        Config { utc_offset_minutes: zone.offset_minutes() }
    }
}

impl std::fmt::Display for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = self.utc_offset_minutes;
        let sign = if m < 0 { '-' } else { '+' };
        write!(f, "UTC offset {sign}{:02}:{:02}", m.abs() / 60, m.abs() % 60)
    }
}

/// The digests an auditor compares: one per projection and a combined one, in hex.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digests {
    /// The position the state is at.
    pub position: Position,
    /// (name, BLAKE3 of the postcard bytes of its state), in a fixed order.
    pub parts: Vec<(String, String)>,
    /// BLAKE3 over the position and every part.
    pub combined: String,
}

/// A case to fold the next record into, kept between records so that its
/// strings' buffers are reused (`Case::clone_from`). Not state: it is
/// skipped when serialising and always equal.
#[derive(Clone, Debug, Default)]
struct Scratch(Option<Box<Case>>);

impl PartialEq for Scratch {
    fn eq(&self, _: &Scratch) -> bool {
        true
    }
}

/// All projections and the registry, at one checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProjectionSet {
    config: Config,
    position: Position,
    head_hash: Hash,
    last_recorded_at: Timestamp,
    registry: Registry,
    /// Every case that can still change (open, or closed inside its reopen
    /// window), as `Case::apply` folds it: the one per-case state every
    /// projection reads.
    live: LiveCases,
    /// When closed cases leave `live`.
    retention: Retention,
    /// Records of a case stream the set did not know (its case evicted
    /// after the reopen window, or a log that does not start it with
    /// `CaseSubmitted`).
    stray_events: u64,
    backlog: Backlog,
    rates: Rates,
    chains: Chains,
    overdue: Overdue,
    cases: Cases,
    #[serde(skip)]
    scratch: Scratch,
}

impl Default for ProjectionSet {
    fn default() -> Self {
        ProjectionSet::new(Config::default())
    }
}

impl ProjectionSet {
    /// An empty set, before position 1.
    pub fn new(config: Config) -> ProjectionSet {
        ProjectionSet {
            config,
            position: 0,
            head_hash: GENESIS_HASH,
            last_recorded_at: Timestamp::default(),
            registry: Registry::default(),
            live: CaseMap::default(),
            retention: Retention::default(),
            stray_events: 0,
            backlog: Backlog::default(),
            rates: Rates::new(config.utc_offset_minutes),
            chains: Chains::default(),
            overdue: Overdue::default(),
            cases: Cases::default(),
            scratch: Scratch::default(),
        }
    }

    /// Checks that `rec` is the next record of the log this set follows,
    /// decodes it and applies it.
    pub fn apply_record(&mut self, rec: &RecordedEvent) -> Result<(), Error> {
        self.apply_view(&RecordView::of(rec))
    }

    /// [`ProjectionSet::apply_record`] for a record borrowed from the log,
    /// as [`EventLog::read_all_with`](gridcase_engine::log::EventLog::read_all_with)
    /// hands them: nothing of the record is copied.
    pub fn apply_view(&mut self, rec: &RecordView<'_>) -> Result<(), Error> {
        self.check_view(rec)?;
        let event = Event::from_view(rec)
            .map_err(|e| Error::Decode { position: rec.position, reason: e.0 })?;
        self.apply_decoded_view(rec, &event);
        Ok(())
    }

    /// Checks that `rec` follows the checkpoint (position and hash chain) and decodes it.
    pub fn check_and_decode(&self, rec: &RecordedEvent) -> Result<Event, Error> {
        self.check(rec)?;
        Event::from_recorded(rec).map_err(|e| Error::Decode { position: rec.position, reason: e.0 })
    }

    /// Checks that `rec` follows the checkpoint: the next position, chained to the last hash.
    pub fn check(&self, rec: &RecordedEvent) -> Result<(), Error> {
        self.check_view(&RecordView::of(rec))
    }

    /// [`ProjectionSet::check`] for a borrowed record.
    fn check_view(&self, rec: &RecordView<'_>) -> Result<(), Error> {
        ChainVerifier::resume(self.position + 1, self.head_hash).check_view(rec)?;
        Ok(())
    }

    /// Applies an already checked and decoded record. Tests use it to feed
    /// hand-written records; everything reading a log uses [`ProjectionSet::apply_record`]
    /// or [`ProjectionSet::apply_view`].
    pub fn apply_decoded(&mut self, rec: &RecordedEvent, event: &Event) {
        self.apply_decoded_view(&RecordView::of(rec), event)
    }

    /// [`ProjectionSet::apply_decoded`] for a borrowed record: the one fold.
    fn apply_decoded_view(&mut self, rec: &RecordView<'_>, event: &Event) {
        // 1. Retention, once for every projection: measured with recorded
        // times, so a rebuild forgets exactly what the live run forgot.
        for key in self.retention.expired(rec.recorded_at) {
            if self.live.remove(&key).is_some() {
                self.evict(&key);
            }
        }
        if rec.stream == ORG_STREAM {
            self.registry.apply(event);
            self.registry.version = rec.version;
        }
        if let Event::PolicySet { policy } = event {
            self.retention.set_policy(policy);
        }
        match case_id(rec.stream) {
            Some(id) => self.apply_case(CaseKey::new(id), rec, event),
            None => self.each(rec, event, None, None),
        }
        self.position = rec.position;
        self.head_hash = rec.hash;
        self.last_recorded_at = rec.recorded_at;
    }

    /// Steps 2–4 of the module docs for a record of a case stream.
    fn apply_case(&mut self, key: CaseKey, rec: &RecordView<'_>, event: &Event) {
        let Some(case) = self.live.get_mut(&key) else {
            // 2. A new case, or a record of a case not kept (counted, not applied).
            match Case::start(event, rec.actor, rec.recorded_at) {
                Some(case) => {
                    self.each(rec, event, None, Some(&case));
                    self.live.insert(key, Box::new(case));
                }
                None => self.stray_events += 1,
            }
            return;
        };
        // 2. Fold into the scratch copy, so `case` is still the state before.
        let after = match &mut self.scratch.0 {
            Some(s) => {
                Case::clone_from(s, case);
                s
            }
            none => none.insert(case.clone()),
        };
        after.apply(event, rec.recorded_at);
        // 3. Every projection sees the same two states.
        let (before, after): (&Case, &Case) = (case, after);
        self.backlog.apply(rec, event, Some(before), Some(after));
        self.rates.apply(rec, event, Some(before), Some(after));
        self.chains.apply(rec, event, Some(before), Some(after));
        self.overdue.apply(rec, event, Some(before), Some(after));
        self.cases.apply(rec, event, Some(before), Some(after));
        let closed_before = before.closed_at;
        let excluded = after.is_excluded();
        // The new state goes into the map; the old one becomes the scratch.
        if let Some(s) = &mut self.scratch.0 {
            std::mem::swap::<Box<Case>>(case, s);
        }
        // 4. Retention bookkeeping.
        match event {
            Event::CaseClosed { .. } => self.retention.closed(&key, rec.recorded_at),
            Event::CaseReopened { .. } => {
                if let Some(at) = closed_before {
                    self.retention.reopened(&key, at);
                }
            }
            _ => {}
        }
        if excluded {
            self.live.remove(&key);
            self.evict(&key);
        }
    }

    /// Calls every projection with one record.
    fn each(
        &mut self,
        rec: &RecordView<'_>,
        event: &Event,
        before: Option<&Case>,
        after: Option<&Case>,
    ) {
        self.backlog.apply(rec, event, before, after);
        self.rates.apply(rec, event, before, after);
        self.chains.apply(rec, event, before, after);
        self.overdue.apply(rec, event, before, after);
        self.cases.apply(rec, event, before, after);
    }

    /// Tells every projection that the set forgot a case.
    fn evict(&mut self, key: &CaseKey) {
        self.backlog.evict(key);
        self.rates.evict(key);
        self.chains.evict(key);
        self.overdue.evict(key);
        self.cases.evict(key);
    }

    /// The configuration the state was built with.
    pub fn config(&self) -> Config {
        self.config
    }

    /// The position of the last record applied (0: none).
    pub fn position(&self) -> Position {
        self.position
    }

    /// The hash of the last record applied.
    pub fn head_hash(&self) -> Hash {
        self.head_hash
    }

    /// The recorded time of the last record applied.
    pub fn last_recorded_at(&self) -> Timestamp {
        self.last_recorded_at
    }

    /// The registry as of the checkpoint (unit names, policy).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The state of a case that can still change (open, or closed inside
    /// its reopen window), as `Case::apply` folded it.
    pub fn case(&self, case_id: &str) -> Option<&Case> {
        self.live.get(&CaseKey::new(case_id)).map(|c| &**c)
    }

    /// Every case that can still change, by id.
    pub fn live_cases(&self) -> &LiveCases {
        &self.live
    }

    /// Cases kept (open cases and closed ones inside their reopen window).
    pub fn tracked_cases(&self) -> usize {
        self.live.len()
    }

    /// Closed cases waiting for their reopen window to pass.
    pub fn retained_closed(&self) -> usize {
        self.retention.len()
    }

    /// Records of a case stream that arrived for a case no longer kept.
    pub fn stray_events(&self) -> u64 {
        self.stray_events
    }

    /// The case listing (every case ever submitted, for Open311).
    pub fn cases(&self) -> &Cases {
        &self.cases
    }

    /// The backlog projection.
    pub fn backlog(&self) -> &Backlog {
        &self.backlog
    }

    /// The rates projection.
    pub fn rates(&self) -> &Rates {
        &self.rates
    }

    /// The escalation-chain projection.
    pub fn chains(&self) -> &Chains {
        &self.chains
    }

    /// The SLA projection.
    pub fn overdue(&self) -> &Overdue {
        &self.overdue
    }

    /// The grid backlog at `now`.
    pub fn backlog_report(&self, now: Timestamp) -> BacklogReport {
        self.backlog.report(now, &self.registry, &self.live)
    }

    /// Every unit's rates in `period`, flagged against `target_percent`
    /// ([`crate::rates::DEFAULT_TARGET_PERCENT`] is 98.5).
    pub fn rates_report(&self, period: Period, target_percent: f64) -> RatesReport {
        self.rates.report(period, target_percent, &self.registry)
    }

    /// The monthly ranking of units of each kind.
    pub fn ranking(&self, month: Period, target_percent: f64) -> Result<Ranking, Error> {
        if !matches!(month, Period::Month(_)) {
            return Err(Error::InvalidInput(format!(
                "the ranking is monthly; {month} is not a month (use 2026-03)"
            )));
        }
        Ok(self.rates.ranking(month, target_percent, &self.registry))
    }

    /// Escalation chains across cases.
    pub fn chain_report(&self) -> ChainReport {
        self.chains.report(&self.registry)
    }

    /// The live path of a case that can still change; for any other case use
    /// [`crate::chains::chain_of`] on its history.
    pub fn chain(&self, case_id: &str) -> Option<CaseChain> {
        let case = self.case(case_id)?;
        let path = self.chains.path(case_id)?;
        Some(CaseChain::new(case_id, case, path))
    }

    /// Open cases past or near their limit at `now`, by holder.
    pub fn overdue_report(&self, now: Timestamp) -> OverdueReport {
        self.overdue.report(now, &self.registry, &self.live, None)
    }

    /// [`ProjectionSet::overdue_report`] of one unit's cases
    /// ([`Case::concerns`]: submitted in its subtree or held by it): the
    /// headline counts those cases, the rows are their holders.
    pub fn overdue_report_of(&self, now: Timestamp, unit: &str) -> OverdueReport {
        self.overdue.report(now, &self.registry, &self.live, Some(unit))
    }

    /// The readable timeline of a case's history, with names from this set's registry.
    pub fn timeline(&self, history: &[(Event, RecordedEvent)]) -> Vec<TimelineEntry> {
        timeline(history, &self.registry)
    }

    /// Per-projection digests and the combined digest.
    pub fn digests(&self) -> Digests {
        let parts: Vec<(&str, Hash)> = vec![
            ("registry", digest_of(&self.registry)),
            ("live", digest_of(&(&self.live, &self.retention, self.stray_events))),
            (Backlog::NAME, self.backlog.digest()),
            (Rates::NAME, self.rates.digest()),
            (Chains::NAME, self.chains.digest()),
            (Overdue::NAME, self.overdue.digest()),
            (Cases::NAME, self.cases.digest()),
        ];
        let mut h = blake3::Hasher::new();
        h.update(b"gridcase-projections/1\0");
        h.update(&self.position.to_le_bytes());
        for (name, d) in &parts {
            h.update(name.as_bytes());
            h.update(b"\0");
            h.update(d);
        }
        Digests {
            position: self.position,
            parts: parts.into_iter().map(|(n, d)| (n.to_string(), hex(&d))).collect(),
            combined: hex(h.finalize().as_bytes()),
        }
    }

    /// The postcard bytes of the whole set.
    pub fn to_bytes(&self) -> Result<Vec<u8>, Error> {
        postcard::to_allocvec(self)
            .map_err(|e| Error::InvalidInput(format!("cannot encode the projection state: {e}")))
    }

    /// Decodes [`ProjectionSet::to_bytes`] and restores what serialisation skips.
    pub fn from_bytes(bytes: &[u8]) -> Result<ProjectionSet, postcard::Error> {
        let mut set: ProjectionSet = postcard::from_bytes(bytes)?;
        // The registry's address index is not serialised.
        set.registry.reindex();
        Ok(set)
    }
}
