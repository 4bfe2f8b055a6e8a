//! The case index behind Open311's `GET requests`: every case (open or
//! finished) by id and by submission time, folded live from the log.
//!
//! The engine keeps only open cases in memory and the projections evict
//! finished ones, but Open311 lists requests of the last 90 days whatever
//! their state, so the API keeps its own read model. It holds the folded
//! [`Case`] plus the note of the event that set its current state (for
//! `status_notes`), which is a few hundred bytes per case: a district's
//! year of requests fits in tens of megabytes. Like every read model it
//! only reads the log; it is rebuilt from position 1 on start.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use gridcase_engine::domain::{Case, Event};
use gridcase_engine::engine::CASE_STREAM_PREFIX;
use gridcase_engine::log::{EventLog, Position, RecordedEvent};
use gridcase_engine::time::Timestamp;
use tokio::sync::watch;

/// One indexed case.
#[derive(Clone, Debug)]
pub struct Indexed {
    /// The case's state.
    pub case: Case,
    /// The note or reason of the last event that carried one.
    pub note: Option<String>,
}

#[derive(Default)]
struct State {
    cases: HashMap<String, Indexed>,
    by_time: BTreeSet<(Timestamp, String)>,
}

/// The index and the position it has applied.
pub struct CaseIndex {
    state: RwLock<State>,
    position: watch::Sender<Position>,
}

fn note_of(event: &Event) -> Option<&str> {
    match event {
        Event::CaseRejected { reason }
        | Event::CaseWithdrawn { reason }
        | Event::CaseReturned { reason, .. }
        | Event::CaseReopened { reason, .. } => Some(reason),
        Event::CaseEscalated { note, .. }
        | Event::CaseDispatched { note, .. }
        | Event::CaseResolved { note, .. }
        | Event::CaseClosed { note }
        | Event::CaseSupervised { note, .. }
        | Event::CallbackRecorded { note, .. } => Some(note),
        _ => None,
    }
}

impl Default for CaseIndex {
    fn default() -> Self {
        CaseIndex { state: RwLock::new(State::default()), position: watch::Sender::new(0) }
    }
}

impl CaseIndex {
    /// The position applied so far.
    pub fn position(&self) -> Position {
        *self.position.borrow()
    }

    /// Number of cases indexed.
    pub fn len(&self) -> usize {
        self.state.read().unwrap_or_else(|p| p.into_inner()).cases.len()
    }

    /// Whether no case is indexed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn apply(&self, batch: &[(RecordedEvent, Event)]) {
        let mut st = self.state.write().unwrap_or_else(|p| p.into_inner());
        for (rec, event) in batch {
            let Some(id) = rec.stream.strip_prefix(CASE_STREAM_PREFIX) else { continue };
            let note = note_of(event).map(str::trim).filter(|n| !n.is_empty()).map(str::to_string);
            if rec.version == 1 {
                if let Some(case) = Case::start(event, &rec.actor, rec.recorded_at) {
                    st.by_time.insert((case.submitted_at, id.to_string()));
                    st.cases.insert(id.to_string(), Indexed { case, note: None });
                }
            } else if let Some(entry) = st.cases.get_mut(id) {
                entry.case.apply(event, rec.recorded_at);
                if note.is_some() {
                    entry.note = note;
                }
            }
        }
    }

    /// A case by id.
    pub fn get(&self, id: &str) -> Option<Indexed> {
        self.state.read().unwrap_or_else(|p| p.into_inner()).cases.get(id).cloned()
    }

    /// Cases submitted in `[from, to]`, newest first: of those that pass
    /// `keep`, skips `skip` and maps at most `limit` with `map` (under the
    /// read lock, so that a page is built without cloning whole cases).
    pub fn range<T>(
        &self,
        from: Timestamp,
        to: Timestamp,
        skip: usize,
        limit: usize,
        keep: impl Fn(&Indexed) -> bool,
        map: impl Fn(&Indexed) -> T,
    ) -> Vec<T> {
        let st = self.state.read().unwrap_or_else(|p| p.into_inner());
        st.by_time
            .range((from, String::new())..=(to, String::from("\u{10FFFF}")))
            .rev()
            .filter_map(|(_, id)| st.cases.get(id))
            .filter(|c| keep(c))
            .skip(skip)
            .take(limit)
            .map(map)
            .collect()
    }

    /// Maps the cases with these ids (unknown ids are skipped).
    pub fn map_ids<T>(&self, ids: &[&str], map: impl Fn(&Indexed) -> T) -> Vec<T> {
        let st = self.state.read().unwrap_or_else(|p| p.into_inner());
        ids.iter().filter_map(|id| st.cases.get(*id)).map(map).collect()
    }

    /// Waits until the index has applied `position`, at most `timeout`;
    /// returns whether it has.
    pub async fn wait_for(&self, position: Position, timeout: Duration) -> bool {
        let mut rx = self.position.subscribe();
        let wait = async {
            loop {
                if *rx.borrow_and_update() >= position {
                    return true;
                }
                if rx.changed().await.is_err() {
                    return false;
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.unwrap_or(false)
    }

    /// Folds the log from position 1 and then follows it live until
    /// `shutdown` turns true or the subscription fails.
    pub async fn follow(
        self: Arc<Self>,
        log: Arc<dyn EventLog>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let from = self.position() + 1;
        let mut stream = gridcase_engine::log::subscribe(log, from).ready_chunks(1024);
        loop {
            let chunk = tokio::select! {
                _ = shutdown.wait_for(|s| *s) => return,
                c = stream.next() => c,
            };
            let Some(chunk) = chunk else { return };
            let mut batch = Vec::with_capacity(chunk.len());
            let mut last = None;
            for item in chunk {
                match item {
                    Ok(rec) => {
                        last = Some(rec.position);
                        // Registry events are skipped by `apply`; a payload
                        // that does not decode is logged once and skipped,
                        // so one bad record does not stop Open311 reads.
                        match Event::from_recorded(&rec) {
                            Ok(ev) => batch.push((rec, ev)),
                            Err(e) => tracing::error!(error = %e, "case index: undecodable event"),
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "case index: the log subscription failed; Open311 reads stop advancing");
                        self.apply(&batch);
                        if let Some(p) = last {
                            self.position.send_replace(p);
                        }
                        return;
                    }
                }
            }
            self.apply(&batch);
            if let Some(p) = last {
                self.position.send_replace(p);
            }
        }
    }
}
