//! [`ProjectionSet`]: every projection plus the registry, with the
//! checkpoint (position and hash of the last record applied) that makes
//! resuming, persistence and audits possible.
//!
//! Records are applied strictly in log order and each is chain-checked
//! against the checkpoint before it is applied, so a set can only ever be
//! the fold of a gap-free prefix of one log.

use gridcase_engine::domain::Event;
use gridcase_engine::log::{hex, ChainVerifier, Hash, Position, RecordedEvent, GENESIS_HASH};
use gridcase_engine::org::{Registry, ORG_STREAM};
use gridcase_engine::time::Timestamp;
use serde::{Deserialize, Serialize};

use crate::backlog::{Backlog, BacklogReport};
use crate::chains::{CaseChain, ChainReport, Chains};
use crate::overdue::{Overdue, OverdueReport};
use crate::period::Period;
use crate::projection::{digest_of, Projection};
use crate::rates::{Ranking, Rates, RatesReport};
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

/// All projections and the registry, at one checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProjectionSet {
    config: Config,
    position: Position,
    head_hash: Hash,
    last_recorded_at: Timestamp,
    registry: Registry,
    backlog: Backlog,
    rates: Rates,
    chains: Chains,
    overdue: Overdue,
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
            backlog: Backlog::default(),
            rates: Rates::new(config.utc_offset_minutes),
            chains: Chains::default(),
            overdue: Overdue::default(),
        }
    }

    /// Checks that `rec` is the next record of the log this set follows,
    /// decodes it and applies it.
    pub fn apply_record(&mut self, rec: &RecordedEvent) -> Result<(), Error> {
        let event = self.check_and_decode(rec)?;
        self.apply_decoded(rec, &event);
        Ok(())
    }

    /// Checks that `rec` follows the checkpoint (position and hash chain) and decodes it.
    pub fn check_and_decode(&self, rec: &RecordedEvent) -> Result<Event, Error> {
        self.check(rec)?;
        Event::from_recorded(rec).map_err(|e| Error::Decode { position: rec.position, reason: e.0 })
    }

    /// Checks that `rec` follows the checkpoint: the next position, chained to the last hash.
    pub fn check(&self, rec: &RecordedEvent) -> Result<(), Error> {
        ChainVerifier::resume(self.position + 1, self.head_hash).check(rec)?;
        Ok(())
    }

    /// Applies an already checked and decoded record. Tests use it to feed
    /// hand-written records; everything reading a log uses [`ProjectionSet::apply_record`].
    pub fn apply_decoded(&mut self, rec: &RecordedEvent, event: &Event) {
        if rec.stream == ORG_STREAM {
            self.registry.apply(event);
            self.registry.version = rec.version;
        }
        self.backlog.apply(rec, event);
        self.rates.apply(rec, event);
        self.chains.apply(rec, event);
        self.overdue.apply(rec, event);
        self.position = rec.position;
        self.head_hash = rec.hash;
        self.last_recorded_at = rec.recorded_at;
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
        self.backlog.report(now, &self.registry)
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
    pub fn chain(&self, case_id: &str) -> Option<&CaseChain> {
        self.chains.chain(case_id)
    }

    /// Open cases past or near their limit at `now`, by holder.
    pub fn overdue_report(&self, now: Timestamp) -> OverdueReport {
        self.overdue.report(now, &self.registry)
    }

    /// The readable timeline of a case's history, with names from this set's registry.
    pub fn timeline(&self, history: &[(Event, RecordedEvent)]) -> Vec<TimelineEntry> {
        timeline(history, &self.registry)
    }

    /// Per-projection digests and the combined digest.
    pub fn digests(&self) -> Digests {
        let parts: Vec<(&str, Hash)> = vec![
            ("registry", digest_of(&self.registry)),
            (Backlog::NAME, self.backlog.digest()),
            (Rates::NAME, self.rates.digest()),
            (Chains::NAME, self.chains.digest()),
            (Overdue::NAME, self.overdue.digest()),
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
