//! The [`Engine`]: what a portal embeds. It loads a case, decides a command
//! against it, and appends the resulting events with optimistic concurrency,
//! retrying on a conflict; it keeps the registry and the open cases in
//! memory and fires deadline escalations on [`Engine::tick`].
//!
//! **Architecture Invariant:** the engine writes to the log only through
//! [`EventLog::append`] with an exact expected version, so two engines (or
//! two processes) on one store can never both act on the same case state.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use futures::stream::BoxStream;

use crate::domain::{Actor, Case, Event};
use crate::log::{subscribe, EventLog, Position, RecordedEvent, SledLog, SledOptions, StreamId};
use crate::org::{Registry, Role};
use crate::time::Clock;
use crate::Error;

mod checkpoint;
mod command;
mod follow;
mod open_cases;
mod registry;
mod tick;

pub use command::{CommandOptions, CommandResult};
pub use tick::TickReport;

use follow::Follow;
use open_cases::OpenCases;

/// Prefix of every case stream.
pub const CASE_STREAM_PREFIX: &str = "case-";
pub(crate) const PAGE: usize = 4096;

/// Tunables of the engine.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// How often a command is re-decided after a concurrency conflict.
    pub max_retries: u32,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions { max_retries: 8 }
    }
}

/// The engine facade; cheap to share behind an `Arc`.
pub struct Engine {
    log: Arc<dyn EventLog>,
    clock: Arc<dyn Clock>,
    options: EngineOptions,
    registry: RwLock<Arc<Registry>>,
    open: Mutex<OpenCases>,
    follow: tokio::sync::Mutex<Follow>,
    next_seq: AtomicU64,
}

fn case_stream(id: &str) -> Result<StreamId, Error> {
    StreamId::new(format!("{CASE_STREAM_PREFIX}{id}"))
}

impl Engine {
    /// An engine over any log, reading the registry from it.
    pub async fn new(
        log: Arc<dyn EventLog>,
        clock: Arc<dyn Clock>,
        options: EngineOptions,
    ) -> Result<Engine, Error> {
        let engine = Engine {
            log,
            clock,
            options,
            registry: RwLock::new(Arc::new(Registry::default())),
            open: Mutex::new(OpenCases::default()),
            follow: tokio::sync::Mutex::new(Follow {
                position: 0,
                checkpoint_checked: false,
                restored_from: None,
            }),
            next_seq: AtomicU64::new(0),
        };
        engine.refresh_registry().await?;
        let ids = engine.log.streams_with_prefix(CASE_STREAM_PREFIX).await?;
        let max = ids
            .iter()
            .filter_map(|s| {
                s.strip_prefix(CASE_STREAM_PREFIX)?.strip_prefix("GC")?.parse::<u64>().ok()
            })
            .max();
        engine.next_seq.store(max.unwrap_or(0), Ordering::SeqCst);
        Ok(engine)
    }

    /// Opens the embedded sled store in `dir`.
    pub async fn open_sled(
        dir: impl AsRef<std::path::Path>,
        options: SledOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<Engine, Error> {
        let log = SledLog::open(dir, options, clock.clone())?;
        Engine::new(Arc::new(log), clock, EngineOptions::default()).await
    }

    /// The log underneath.
    pub fn log(&self) -> &Arc<dyn EventLog> {
        &self.log
    }

    /// The engine's clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Resolves an actor id: a staff id from the registry, or `resident:<id>`.
    pub fn actor(&self, id: &str) -> Result<Actor, Error> {
        if let Some(r) = id.strip_prefix("resident:") {
            if r.is_empty() || r.len() > 64 || r.chars().any(char::is_control) {
                return Err(Error::InvalidInput(
                    "a resident id is 1 to 64 printable characters after 'resident:'".into(),
                ));
            }
            return Ok(Actor::resident(r));
        }
        let reg = self.registry();
        let staff = reg
            .staff
            .get(id)
            .ok_or_else(|| Error::NotFound(format!("staff {id:?} is not in the registry")))?;
        if staff.retired {
            return Err(Error::InvalidInput(format!("staff {id:?} is retired and cannot act")));
        }
        Ok(Actor {
            id: staff.id.clone(),
            role: staff.role,
            unit: Some(staff.unit.clone()),
            system: false,
        })
    }

    /// Loads a case: from memory when it is open and known, else from its stream.
    pub async fn case(&self, id: &str) -> Result<Case, Error> {
        if let Some(c) = self.open.lock().unwrap_or_else(|p| p.into_inner()).cases.get(id) {
            return Ok(c.clone());
        }
        self.load_from_log(id).await
    }

    async fn load_from_log(&self, id: &str) -> Result<Case, Error> {
        let history = self.history(id).await?;
        let decoded: Vec<(Event, RecordedEvent)> = history;
        let case = Case::fold(decoded.iter().map(|(e, r)| (e, r.actor.as_str(), r.recorded_at)))
            .ok_or_else(|| Error::NotFound(format!("case {id:?} does not exist")))?;
        Ok(case)
    }

    /// A case's events with their envelopes, in order.
    pub async fn history(&self, id: &str) -> Result<Vec<(Event, RecordedEvent)>, Error> {
        let stream = case_stream(id)?;
        let mut out = Vec::new();
        let mut from = 1;
        loop {
            let page = self.log.read_stream(&stream, from, PAGE).await?;
            let Some(last) = page.last() else { break };
            from = last.version + 1;
            for rec in page {
                let ev = Event::from_recorded(&rec)
                    .map_err(|e| Error::Corruption { position: rec.position, reason: e.0 })?;
                out.push((ev, rec));
            }
        }
        if out.is_empty() {
            return Err(Error::NotFound(format!("case {id:?} does not exist")));
        }
        Ok(out)
    }

    /// Open cases known to the engine (complete after [`Engine::catch_up`]).
    pub fn open_cases(&self) -> Vec<Case> {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<Case> = open.cases.values().cloned().collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// Ids of open cases that `actor` may act on next, for simulators and work queues.
    pub fn open_case_ids(&self) -> Vec<String> {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<String> = open.cases.keys().cloned().collect();
        v.sort();
        v
    }

    /// Every event from `from` on, then live, with no gap and no duplicate.
    pub fn subscribe(&self, from: Position) -> BoxStream<'static, Result<RecordedEvent, Error>> {
        subscribe(self.log.clone(), from)
    }

    /// Staff of a role in a unit (first active one), for tools and simulators.
    pub fn staff_of(&self, role: Role, unit: &str) -> Option<String> {
        self.registry()
            .staff
            .values()
            .find(|s| s.role == role && s.unit == unit && !s.retired)
            .map(|s| s.id.clone())
    }
}
