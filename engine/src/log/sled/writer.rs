//! The single writer thread: takes every append queued at that moment,
//! decides them with the group-commit core, commits their frames in one
//! sled batch, meets the durability mode, then makes the group visible.

use std::sync::{mpsc as std_mpsc, Arc};

use tokio::sync::{mpsc, oneshot};

use super::frame::{frame_key, frames_of};
use super::indexer::Committed;
use super::recovery::{write_anchor, ANCHOR_EVERY};
use super::{lookup_idempotency, storage, Inner};
use crate::log::group::{check_import, replies, CommittedState, Group, GroupWrite};
use crate::log::record::Hash;
use crate::log::LogError;
use crate::log::{
    AppendOutcome, AppendRequest, Appended, Durability, LogHead, Position, RecordedEvent,
};
use crate::time::{Clock, Timestamp};

pub(super) const MAX_GROUP_REQUESTS: usize = 4096;

pub(super) enum Job {
    Append { request: AppendRequest, reply: oneshot::Sender<Result<Appended, LogError>> },
    Import { records: Vec<RecordedEvent>, reply: oneshot::Sender<Result<LogHead, LogError>> },
}

/// Refreshes the anchor at most every [`ANCHOR_EVERY`]; the anchored head
/// must be durable first, which in `Buffered` mode takes a flush.
pub(super) fn maybe_anchor(inner: &Inner, head: LogHead, at: &mut std::time::Instant) {
    if at.elapsed() < ANCHOR_EVERY {
        return;
    }
    *at = std::time::Instant::now();
    if inner.options.durability == Durability::Buffered && inner.db.flush().is_err() {
        return;
    }
    if let Err(e) = write_anchor(&inner.path, head) {
        tracing::warn!(error = %e, "cannot refresh the head anchor");
    }
}

pub(super) fn writer_loop(
    inner: Arc<Inner>,
    mut rx: mpsc::Receiver<Job>,
    handoff: std_mpsc::Sender<Committed>,
    clock: Arc<dyn Clock>,
    mut head: LogHead,
    mut last_recorded: Timestamp,
) {
    let mut held: Option<Job> = None;
    let mut anchored_at = std::time::Instant::now();
    loop {
        let first = match held.take() {
            Some(j) => j,
            None => match rx.blocking_recv() {
                Some(j) => j,
                None => break,
            },
        };
        let poisoned = inner.poisoned.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let first = match first {
            Job::Import { records, reply } => {
                let r = match poisoned {
                    Some(reason) => Err(LogError::Storage(reason)),
                    None => import_group(&inner, records, &mut head, &mut last_recorded, &handoff),
                };
                maybe_anchor(&inner, head, &mut anchored_at);
                let _ = reply.send(r);
                continue;
            }
            Job::Append { request, reply } => (request, reply),
        };
        let mut jobs = vec![first];
        while jobs.len() < MAX_GROUP_REQUESTS {
            match rx.try_recv() {
                Ok(Job::Append { request, reply }) => jobs.push((request, reply)),
                Ok(other) => {
                    // An import goes alone, after this group.
                    held = Some(other);
                    break;
                }
                Err(_) => break,
            }
        }
        if let Some(reason) = poisoned {
            for (_, reply) in jobs {
                let _ = reply.send(Err(LogError::Storage(reason.clone())));
            }
            continue;
        }
        let mut group = Group::new(head, last_recorded, clock.now());
        let mut decisions = Vec::with_capacity(jobs.len());
        let mut waiting = Vec::with_capacity(jobs.len());
        for (request, reply) in jobs {
            decisions.push(group.decide(&request, inner.as_ref()));
            waiting.push(reply);
        }
        let write = group.into_write();
        let result = if write.records.is_empty() {
            Ok(())
        } else {
            commit(&inner, &frames_of(&inner.options, &write.records))
        };
        match &result {
            Ok(()) if !write.records.is_empty() => {
                let committed = publish(&inner, &write);
                head = write.head;
                last_recorded = write.recorded_at;
                // The indexer is gone only when the store is closing.
                let _ = handoff.send(committed);
                maybe_anchor(&inner, head, &mut anchored_at);
            }
            Ok(()) => {}
            Err(e) => {
                tracing::error!(error = %e, "append batch failed; refusing further appends until reopened");
                *inner.poisoned.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(format!("an earlier write failed ({e}); reopen the store"));
            }
        }
        for (reply, r) in waiting.into_iter().zip(replies(decisions, write.records, result)) {
            let _ = reply.send(r);
        }
    }
}

/// The writer's committed state for [`Group::decide`]: the authoritative
/// stream heads, and the idempotency entries (pending ones, then the index).
impl CommittedState for Inner {
    fn stream_version(&self, stream: &str) -> Result<u64, LogError> {
        let heads = self.heads.read().unwrap_or_else(|p| p.into_inner());
        Ok(heads.get(stream).copied().unwrap_or(0))
    }

    fn idempotency(&self, key: &str) -> Result<Option<(Hash, AppendOutcome)>, LogError> {
        lookup_idempotency(self, key)
    }
}

/// Makes a committed group visible: stream heads, the entries the index
/// has not absorbed yet, and the head and its watch, in that order (a
/// reader that sees the new head finds everything below it). Returns what
/// the indexer is to be handed, so it need not read the group back.
pub(super) fn publish(inner: &Inner, write: &GroupWrite) -> Committed {
    {
        let mut heads = inner.heads.write().unwrap_or_else(|p| p.into_inner());
        for (s, v) in &write.stream_heads {
            heads.insert(s.clone(), *v);
        }
    }
    let committed = Committed {
        runs: Committed::runs_of(write),
        keys: write.keys.iter().map(|(k, e)| (k.clone(), *e)).collect(),
    };
    {
        let mut p = inner.pending.lock().unwrap_or_else(|p| p.into_inner());
        for run in &committed.runs {
            let versions = match p.streams.get_mut(&run.stream) {
                Some(m) => m,
                None => p.streams.entry(run.stream.clone()).or_default(),
            };
            for i in 0..run.count {
                versions.insert(run.first_version + i, run.first_position + i);
            }
        }
        for (k, e) in &committed.keys {
            p.idempotency.insert(k.clone(), *e);
        }
    }
    *inner.head.lock().unwrap_or_else(|p| p.into_inner()) = write.head;
    inner.head_tx.send_replace(write.head.position);
    committed
}

/// Checks and writes a run of exported records as one batch.
pub(super) fn import_group(
    inner: &Inner,
    records: Vec<RecordedEvent>,
    head: &mut LogHead,
    last_recorded: &mut Timestamp,
    handoff: &std_mpsc::Sender<Committed>,
) -> Result<LogHead, LogError> {
    let write = check_import(&records, *head, *last_recorded, inner)?;
    if write.records.is_empty() {
        return Ok(*head);
    }
    commit(inner, &frames_of(&inner.options, &write.records))?;
    let committed = publish(inner, &write);
    *head = write.head;
    *last_recorded = write.recorded_at;
    let _ = handoff.send(committed);
    Ok(*head)
}

pub(super) fn commit(inner: &Inner, frames: &[(Position, Vec<u8>)]) -> Result<(), LogError> {
    let mut batch = sled::Batch::default();
    for (first, bytes) in frames {
        batch.insert(&frame_key(*first), bytes.as_slice());
    }
    inner.frames.apply_batch(batch).map_err(storage)?;
    match inner.options.durability {
        Durability::Buffered => Ok(()),
        Durability::Flushed => inner.db.flush().map(|_| ()).map_err(storage),
        Durability::Durable => {
            inner.db.flush().map_err(storage)?;
            // sled's flush ends in sync_file_range, which leaves the data in
            // the disk's cache and the file's size unrecorded: one fdatasync
            // of the file sled wrote makes the whole group power-loss safe.
            inner.data_file.sync_data().map_err(|e| {
                LogError::Storage(format!("fdatasync of {} failed: {e}", inner.path.display()))
            })
        }
    }
}
