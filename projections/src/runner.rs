//! Feeding a [`ProjectionSet`] from a log: catch-up to the head, live
//! following with a shared readable state, resuming from saved state, full
//! rebuilds and time travel.
//!
//! Catch-up folds inside the log's visiting read
//! ([`EventLog::read_all_with`]): each record is checked by the store,
//! viewed in place, chain-checked against the set's checkpoint, its payload
//! decoded and folded, without an owned copy of any record.

use std::sync::{Arc, PoisonError, RwLock};

use futures::StreamExt;
use gridcase_engine::domain::Event;
use gridcase_engine::log::{subscribe, EventLog, LogError, Position, RecordedEvent};
use gridcase_engine::time::Timestamp;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::set::{Config, ProjectionSet};
use crate::store::Store;
use crate::Error;

/// A set shared between a live follower (the only writer) and readers.
pub type SharedProjections = Arc<RwLock<ProjectionSet>>;

/// Records per log read.
const PAGE: usize = 4096;

#[derive(Clone, Copy, Debug)]
enum Until {
    Head,
    Position(Position),
    Time(Timestamp),
}

fn decode(rec: RecordedEvent) -> Result<(RecordedEvent, Event), Error> {
    let event = Event::from_recorded(&rec)
        .map_err(|e| Error::Decode { position: rec.position, reason: e.0 })?;
    Ok((rec, event))
}

async fn feed(
    set: &mut ProjectionSet,
    log: &Arc<dyn EventLog>,
    until: Until,
) -> Result<Position, Error> {
    let head = log.head().position;
    let upto = match until {
        Until::Position(p) => p.min(head),
        Until::Head | Until::Time(_) => head,
    };
    // The fold runs inside the log's read, on records borrowed from the
    // store: no record is copied, and only the payload is decoded.
    let mut stopped_by_time = false;
    while set.position() < upto && !stopped_by_time {
        let next = set.position() + 1;
        let want = PAGE.min((upto - next + 1) as usize);
        // The set's own error, kept here while the read ends with a log error.
        let mut failed: Option<Error> = None;
        let read = log
            .read_all_with(next, want, &mut |rec| {
                if let Until::Time(t) = until {
                    // Recorded times never go back: the rest of the page is
                    // later still, and is read but not applied.
                    if stopped_by_time || rec.recorded_at > t {
                        stopped_by_time = true;
                        return Ok(());
                    }
                }
                set.apply_view(rec).map_err(|e| {
                    let stop = LogError::Internal(format!("the fold stopped: {e}"));
                    failed = Some(e);
                    stop
                })
            })
            .await;
        if let Some(e) = failed {
            return Err(e);
        }
        if read? == 0 {
            break;
        }
    }
    if !stopped_by_time && set.position() < upto {
        return Err(Error::Log(gridcase_engine::Error::Internal(format!(
            "the log ended at position {} before the head {upto} it reported",
            set.position()
        ))));
    }
    Ok(set.position())
}

impl ProjectionSet {
    /// Applies every record from the checkpoint to the log's current head;
    /// returns the position reached.
    pub async fn catch_up(&mut self, log: &Arc<dyn EventLog>) -> Result<Position, Error> {
        feed(self, log, Until::Head).await
    }

    /// Applies records up to `position` (or the head, if it is lower).
    pub async fn catch_up_to(
        &mut self,
        log: &Arc<dyn EventLog>,
        position: Position,
    ) -> Result<Position, Error> {
        feed(self, log, Until::Position(position)).await
    }

    /// Applies records up to the last one recorded at or before `t`.
    pub async fn catch_up_until(
        &mut self,
        log: &Arc<dyn EventLog>,
        t: Timestamp,
    ) -> Result<Position, Error> {
        feed(self, log, Until::Time(t)).await
    }
}

/// A full rebuild: a new set fed from position 1 to the head.
pub async fn rebuild(log: &Arc<dyn EventLog>, config: Config) -> Result<ProjectionSet, Error> {
    let mut set = ProjectionSet::new(config);
    set.catch_up(log).await?;
    Ok(set)
}

/// The set as it stood after `position` (replayed from position 1).
pub async fn as_of_position(
    log: &Arc<dyn EventLog>,
    config: Config,
    position: Position,
) -> Result<ProjectionSet, Error> {
    let mut set = ProjectionSet::new(config);
    set.catch_up_to(log, position).await?;
    Ok(set)
}

/// The set as it stood at time `t`: every record with `recorded_at <= t`
/// (the log's recorded times never go back, so these are a prefix).
pub async fn as_of_time(
    log: &Arc<dyn EventLog>,
    config: Config,
    t: Timestamp,
) -> Result<ProjectionSet, Error> {
    let mut set = ProjectionSet::new(config);
    set.catch_up_until(log, t).await?;
    Ok(set)
}

/// Checks that a loaded set was built from this log: its checkpoint is not
/// past the head and the record there has the hash the set remembers.
pub async fn verify_against(set: &ProjectionSet, log: &Arc<dyn EventLog>) -> Result<(), Error> {
    let position = set.position();
    if position == 0 {
        return Ok(());
    }
    let head = log.head().position;
    if position > head {
        return Err(Error::NotThisLog {
            position,
            reason: format!("is past the log's head ({head})"),
        });
    }
    let rec = log.read_all(position, 1).await?;
    match rec.first() {
        Some(r) if r.position == position && r.hash == set.head_hash() => Ok(()),
        _ => Err(Error::NotThisLog {
            position,
            reason: "holds a different record in this log".into(),
        }),
    }
}

/// How [`open`] got its state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Start {
    /// Resumed from saved state at this position.
    Resumed {
        /// The saved checkpoint.
        from: Position,
    },
    /// Rebuilt from position 1.
    Rebuilt {
        /// Why the saved state was not used (none: there was none).
        reason: Option<String>,
    },
}

/// Loads the saved state if it fits this log and configuration (otherwise
/// rebuilds from position 1), catches up to the head and saves.
///
/// Saved state written by a newer build is an error rather than a rebuild,
/// so that an older binary never overwrites it.
pub async fn open(
    log: &Arc<dyn EventLog>,
    store: &Store,
    config: Config,
) -> Result<(ProjectionSet, Start), Error> {
    let (loaded, mut start) = match store.load(config) {
        Ok(Some(set)) => {
            let from = set.position();
            (Some(set), Start::Resumed { from })
        }
        Ok(None) => (None, Start::Rebuilt { reason: None }),
        Err(
            e @ (Error::Damaged { .. } | Error::ConfigMismatch { .. } | Error::OlderFormat { .. }),
        ) => {
            tracing::warn!(error = %e, "saved projection state not used; rebuilding");
            (None, Start::Rebuilt { reason: Some(e.to_string()) })
        }
        Err(e) => return Err(e),
    };
    let mut set = match loaded {
        Some(set) => match verify_against(&set, log).await {
            Ok(()) => set,
            Err(e @ Error::NotThisLog { .. }) => {
                tracing::warn!(error = %e, "saved projection state not used; rebuilding");
                start = Start::Rebuilt { reason: Some(e.to_string()) };
                ProjectionSet::new(config)
            }
            Err(e) => return Err(e),
        },
        None => ProjectionSet::new(config),
    };
    set.catch_up(log).await?;
    store.save(&set)?;
    tracing::info!(position = set.position(), ?start, "projections ready");
    Ok((set, start))
}

/// Tunables of [`follow`].
#[derive(Clone, Debug)]
pub struct FollowOptions {
    /// Where to save the state (none: never saved).
    pub store: Option<Store>,
    /// Save after this many applied events (and on stop).
    pub save_every_events: u64,
    /// Most records applied under one write lock.
    pub batch: usize,
}

impl Default for FollowOptions {
    fn default() -> Self {
        FollowOptions { store: None, save_every_events: 100_000, batch: 1024 }
    }
}

/// A running live follower.
pub struct Follower {
    position: watch::Receiver<Position>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), Error>>,
}

async fn save(store: &Store, shared: &SharedProjections) -> Result<(), Error> {
    // Encode under a read lock (readers keep reading), write outside it.
    let bytes = shared.read().unwrap_or_else(PoisonError::into_inner).to_bytes()?;
    let store = store.clone();
    tokio::task::spawn_blocking(move || store.save_bytes(&bytes))
        .await
        .map_err(|e| Error::FollowerStopped(format!("the save task failed: {e}")))??;
    Ok(())
}

/// Follows the log live from the shared set's checkpoint: every new record
/// is checked, decoded and applied under a short write lock, and the
/// position reached is published (compare it with the log's head for the
/// projection lag). Needs a Tokio runtime.
pub fn follow(
    log: Arc<dyn EventLog>,
    shared: SharedProjections,
    options: FollowOptions,
) -> Follower {
    let start = shared.read().unwrap_or_else(PoisonError::into_inner).position();
    let (pos_tx, pos_rx) = watch::channel(start);
    let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let mut stream = subscribe(log, start + 1).ready_chunks(options.batch.max(1));
        let mut unsaved = 0u64;
        loop {
            let chunk = tokio::select! {
                _ = &mut stop_rx => break,
                chunk = stream.next() => chunk,
            };
            let Some(chunk) = chunk else {
                return Err(Error::FollowerStopped("the log subscription ended".into()));
            };
            // Decode outside the lock, so readers wait only for the fold.
            let mut decoded = Vec::with_capacity(chunk.len());
            for item in chunk {
                decoded.push(decode(item?)?);
            }
            let position = {
                let mut set = shared.write().unwrap_or_else(PoisonError::into_inner);
                for (rec, event) in &decoded {
                    set.check(rec)?;
                    set.apply_decoded(rec, event);
                }
                set.position()
            };
            pos_tx.send_replace(position);
            unsaved += decoded.len() as u64;
            if let Some(store) = &options.store {
                if unsaved >= options.save_every_events {
                    save(store, &shared).await?;
                    unsaved = 0;
                }
            }
        }
        if let (Some(store), true) = (&options.store, unsaved > 0) {
            save(store, &shared).await?;
        }
        Ok(())
    });
    Follower { position: pos_rx, stop: Some(stop_tx), task }
}

impl Follower {
    /// The position applied so far.
    pub fn position(&self) -> Position {
        *self.position.borrow()
    }

    /// How many committed records the follower has not applied yet.
    pub fn lag(&self, log: &dyn EventLog) -> u64 {
        log.head().position.saturating_sub(self.position())
    }

    /// A receiver of the position, for servers that publish it.
    pub fn watch(&self) -> watch::Receiver<Position> {
        self.position.clone()
    }

    /// Waits until the follower has applied `position`; fails if it stopped first.
    pub async fn wait_for(&self, position: Position) -> Result<(), Error> {
        let mut rx = self.position.clone();
        loop {
            if *rx.borrow_and_update() >= position {
                return Ok(());
            }
            if rx.changed().await.is_err() {
                return Err(Error::FollowerStopped(format!(
                    "it stopped before position {position}"
                )));
            }
        }
    }

    /// Stops the follower (saving its state when it has a store) and
    /// returns how it ended.
    pub async fn stop(mut self) -> Result<(), Error> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task)
            .await
            .map_err(|e| Error::FollowerStopped(format!("its task failed: {e}")))?
    }
}
