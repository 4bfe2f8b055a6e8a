//! The embedded default backend: the log on `sled` 0.34.
//!
//! Layout (see ARCHITECTURE.md, "The write path" and "The recovery path"):
//! - tree `frames`: one value per group-commit frame, keyed by the big-endian
//!   position of its first record. This is the only source of truth, and the
//!   only thing written on the durable path: sled's cost is per key, so one
//!   key per frame instead of one per event is what makes group commit pay.
//! - tree `index`: derived state, written in the background by the indexer
//!   and rebuilt from the tail of `frames` on open: `S stream \0 version` →
//!   the positions of a run of consecutive versions from that one (one key
//!   per stream per indexer pass, not per event: sled's cost is per key),
//!   `H stream` → last version, `I key` → idempotent outcome, `C` → the
//!   position the index is complete up to, and `F` → the index layout, so an
//!   index of another layout is rebuilt rather than misread.
//! - tree `meta`: the record format the store was written with.
//! - tree `checkpoints`: derived snapshots readers keep with the store (the
//!   engine's open cases), checked against the log before use.
//!
//! Concurrency checks and idempotency use in-memory state owned by the single
//! writer thread, so the index can lag without ever being consulted stale.

mod frame;
mod indexer;
mod recovery;
mod writer;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use async_trait::async_trait;
use tokio::sync::{mpsc, watch};

use crate::log::group::ask_writer;
use crate::log::record::{ChainVerifier, Hash, StoredRecord};
use crate::log::LogError;
use crate::log::{
    check_append, read_back_duplicate, AppendOutcome, AppendRequest, Appended, Durability,
    EventLog, LogHead, Position, RecordVisitor, RecordedEvent, StreamId, VerifyReport,
};
use frame::{check_frame, checked_view, frame_key, key_position, view_frame};
use indexer::stream_key;
use recovery::write_anchor;
use writer::Job;

/// Tunables of the sled backend.
#[derive(Clone, Debug)]
pub struct SledOptions {
    /// When an append is acknowledged.
    pub durability: Durability,
    /// sled page cache in bytes; sled's RSS grows to a multiple of it (sled #1309), so keep it small.
    pub cache_capacity: u64,
    /// Background flush interval (the `Buffered` mode's window of loss).
    pub flush_every_ms: u64,
    /// Most records in one frame.
    pub max_frame_events: usize,
    /// Most record bytes in one frame. Larger frames made sled 0.34 write
    /// blob files (not fsynced) under concurrent large appends: see the
    /// `blob_probe` example.
    pub max_frame_bytes: usize,
    /// Appends waiting for the writer before callers are made to wait.
    pub queue_depth: usize,
}

impl Default for SledOptions {
    fn default() -> Self {
        SledOptions {
            durability: Durability::Durable,
            cache_capacity: 64 * 1024 * 1024,
            flush_every_ms: 200,
            max_frame_events: 256,
            max_frame_bytes: 32 * 1024,
            queue_depth: 8192,
        }
    }
}

#[derive(Default)]
pub(super) struct Pending {
    /// Committed stream entries the index does not hold yet: stream → version → position.
    streams: HashMap<String, BTreeMap<u64, Position>>,
    /// Committed idempotency keys the index does not hold yet.
    idempotency: HashMap<String, (Hash, AppendOutcome)>,
}

pub(super) struct Inner {
    db: sled::Db,
    /// sled's data file (`<dir>/db`, where sled 0.34 writes everything it
    /// flushes), kept open so the `Durable` mode can `fdatasync` it per group.
    data_file: std::fs::File,
    frames: sled::Tree,
    index: sled::Tree,
    /// Derived checkpoints of readers (the engine's open cases), by name.
    checkpoints: sled::Tree,
    path: PathBuf,
    options: SledOptions,
    /// Last version of every stream (authoritative; updated after each commit).
    heads: RwLock<HashMap<String, u64>>,
    pending: Mutex<Pending>,
    head: Mutex<LogHead>,
    head_tx: watch::Sender<Position>,
    /// Set when a flush failed after a batch was applied: the store's state is
    /// unknown to us, so every later append is refused until it is reopened.
    poisoned: Mutex<Option<String>>,
}

/// The sled-backed [`EventLog`]. Dropping it stops the writer and indexer
/// threads after they finish what was queued.
pub struct SledLog {
    inner: Arc<Inner>,
    tx: Option<mpsc::Sender<Job>>,
    writer: Option<JoinHandle<()>>,
    indexer: Option<JoinHandle<()>>,
}

pub(super) fn storage(e: sled::Error) -> LogError {
    LogError::Storage(e.to_string())
}

impl SledLog {
    /// Where the store lives.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// How many events the index has absorbed (for tests and stats).
    pub fn indexed_upto(&self) -> Result<Position, LogError> {
        self.inner.index_checkpoint()
    }

    /// Test and audit hook: overwrites the raw bytes of the frame holding
    /// `position`, flipping one byte of that record. Used to prove that
    /// tampering is detected; it bypasses the chain on purpose. Only in
    /// builds with the `test-hooks` feature (and this crate's own tests).
    #[cfg(any(test, feature = "test-hooks"))]
    pub fn tamper_for_test(&self, position: Position, byte: usize) -> Result<(), LogError> {
        let (k, v) = self
            .inner
            .frames
            .range(..=frame_key(position))
            .next_back()
            .ok_or_else(|| LogError::InvalidInput(format!("no event at position {position}")))?
            .map_err(storage)?;
        let first = key_position(&k)?;
        let view = view_frame(first, &v)?;
        let idx = (position - first) as usize;
        let rec = view
            .records
            .get(idx)
            .ok_or_else(|| LogError::InvalidInput(format!("no event at position {position}")))?;
        let start = rec.as_ptr() as usize - v.as_ptr() as usize;
        let mut bytes = v.to_vec();
        let at = start + byte.min(rec.len().saturating_sub(1));
        bytes[at] ^= 0x01;
        self.inner.frames.insert(k, bytes).map_err(storage)?;
        self.inner.db.flush().map_err(storage)?;
        Ok(())
    }
}

impl Drop for SledLog {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
        if let Some(i) = self.indexer.take() {
            let _ = i.join();
        }
        if self.inner.db.flush().is_ok()
            && self.inner.poisoned.lock().map(|p| p.is_none()).unwrap_or(false)
        {
            let _ = write_anchor(&self.inner.path, self.inner.committed_head());
        }
    }
}

impl Inner {
    pub(super) fn committed_head(&self) -> LogHead {
        *self.head.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hands `visit` up to `limit` records from position `from`, never past
    /// `upto`, decoded in place over the frame bytes; returns how many.
    ///
    /// Every record handed over has been checked: its hash against the
    /// frame's check bytes, its position and its link against the record
    /// before it. For that the record before `from` is read too (one more
    /// decode per call), so the first record's link is checked against the
    /// hash of its predecessor's bytes, not taken on trust.
    pub(super) fn visit_range(
        &self,
        from: Position,
        limit: usize,
        upto: Position,
        visit: &mut RecordVisitor<'_>,
    ) -> Result<usize, LogError> {
        let from = from.max(1);
        if from > upto || limit == 0 {
            return Ok(0);
        }
        // `None` until the predecessor of `from` has been read.
        let mut chain = (from == 1).then(ChainVerifier::default);
        let mut served = 0;
        let start = if from == 1 { 1 } else { from - 1 };
        let want = limit + (from - start) as usize;
        self.scan_raw(start, want, upto, |pos, raw, check| {
            let view = checked_view(pos, raw, check)?;
            match &mut chain {
                Some(chain) => chain.check_view(&view)?,
                None => {
                    // The predecessor: it seeds the chain and is not served.
                    ChainVerifier::resume(pos, view.prev_hash).check_view(&view)?;
                    chain = Some(ChainVerifier::resume(pos + 1, view.hash));
                    return Ok(());
                }
            }
            visit(&view)?;
            served += 1;
            Ok(())
        })?;
        Ok(served)
    }

    /// Hands the raw bytes and stored check bytes of up to `limit` records
    /// from position `from`, never past `upto`, to `each` in position order.
    pub(super) fn scan_raw(
        &self,
        from: Position,
        limit: usize,
        upto: Position,
        mut each: impl FnMut(Position, &[u8], &[u8]) -> Result<(), LogError>,
    ) -> Result<(), LogError> {
        if from > upto || limit == 0 {
            return Ok(());
        }
        let start = match self.frames.range(..=frame_key(from)).next_back() {
            Some(item) => item.map_err(storage)?.0.to_vec(),
            None => frame_key(from).to_vec(),
        };
        let mut seen = 0;
        for item in self.frames.range(start..) {
            let (k, v) = item.map_err(storage)?;
            let first = key_position(&k)?;
            if first > upto {
                break;
            }
            let view = view_frame(first, &v)?;
            for (i, (raw, check)) in view.records.iter().zip(&view.checks).enumerate() {
                let pos = first + i as u64;
                if pos < from {
                    continue;
                }
                if pos > upto || seen >= limit {
                    return Ok(());
                }
                each(pos, raw, check)?;
                seen += 1;
            }
        }
        Ok(())
    }

    /// Reads the records at the given ascending positions (a stream's, from
    /// the index), each checked as it would be in a run: its bytes against
    /// the frame's check bytes, its position, and its link to the record
    /// before it, decoded, checked and hashed from that record's bytes.
    ///
    /// When the predecessor is the record read just before (a stream's
    /// consecutive positions) its hash is at hand; otherwise it is usually
    /// in the same frame (a frame holds a whole group) or in one of the last
    /// two frames read, which are kept: the link then costs one more decode
    /// and hash, and a frame lookup only when the predecessor is in a frame
    /// not otherwise read.
    pub(super) fn read_positions(
        &self,
        positions: &[Position],
    ) -> Result<Vec<RecordedEvent>, LogError> {
        let mut out = Vec::with_capacity(positions.len());
        let mut frames = RecentFrames::default();
        // The last record checked here and its hash, computed from its bytes:
        // the link of the record right after it needs nothing more.
        let mut last: Option<(Position, Hash)> = None;
        for &pos in positions {
            let (first, v) = frames.holding(self, pos, "indexed event has no frame")?;
            let view = view_frame(first, &v)?;
            let i = (pos - first) as usize;
            let (Some(raw), Some(check)) = (view.records.get(i), view.checks.get(i)) else {
                return Err(LogError::Corruption {
                    position: pos,
                    reason: "indexed event missing from its frame".into(),
                });
            };
            let rec = checked_view(pos, raw, check)?;
            match (last, i.checked_sub(1).and_then(|j| record_in(&view, j))) {
                (Some((p, hash)), _) if p + 1 == pos => {
                    ChainVerifier::resume(pos, hash).check_view(&rec)?
                }
                (_, Some(before)) => rec.check_link_to(Some(before))?,
                (_, None) if pos == 1 => rec.check_link_to(None)?,
                (_, None) => {
                    let (pfirst, pv) =
                        frames.holding(self, pos - 1, "the record before is missing")?;
                    let pview = view_frame(pfirst, &pv)?;
                    rec.check_link_to(record_in(&pview, (pos - 1 - pfirst) as usize))?;
                }
            }
            last = Some((pos, rec.hash));
            out.push(rec.to_owned());
        }
        Ok(out)
    }

    /// The frame holding `position`: its first position and its bytes.
    /// `missing` says what it means when there is none.
    fn frame_holding(
        &self,
        position: Position,
        missing: &str,
    ) -> Result<(Position, sled::IVec), LogError> {
        let (k, v) = self
            .frames
            .range(..=frame_key(position))
            .next_back()
            .ok_or_else(|| LogError::Corruption { position, reason: missing.into() })?
            .map_err(storage)?;
        Ok((key_position(&k)?, v))
    }
}

/// The last two frames a random-access read fetched, by the positions they
/// hold, so that reading a record and then its predecessor or successor
/// does not look a frame up again. (An `IVec` clone shares the bytes.)
#[derive(Default)]
struct RecentFrames {
    /// `(first position, one past the last, bytes)`, oldest first.
    frames: Vec<(Position, Position, sled::IVec)>,
}

impl RecentFrames {
    /// The frame holding `position` (its first position and bytes), from
    /// the two kept or looked up in `inner`; `missing` says what it means
    /// when there is none.
    fn holding(
        &mut self,
        inner: &Inner,
        position: Position,
        missing: &str,
    ) -> Result<(Position, sled::IVec), LogError> {
        if let Some((first, _, v)) =
            self.frames.iter().find(|(first, end, _)| (*first..*end).contains(&position))
        {
            return Ok((*first, v.clone()));
        }
        let (first, v) = inner.frame_holding(position, missing)?;
        let end = first + view_frame(first, &v)?.records.len() as u64;
        if self.frames.len() == 2 {
            self.frames.remove(0);
        }
        self.frames.push((first, end, v.clone()));
        Ok((first, v))
    }
}

/// The bytes and check bytes of record `i` of a frame, if it has one.
fn record_in<'a>(frame: &frame::FrameView<'a>, i: usize) -> Option<StoredRecord<'a>> {
    frame.records.get(i).copied().zip(frame.checks.get(i).copied())
}

pub(super) fn lookup_idempotency(
    inner: &Inner,
    key: &str,
) -> Result<Option<(Hash, AppendOutcome)>, LogError> {
    if let Some(e) = inner.pending.lock().unwrap_or_else(|p| p.into_inner()).idempotency.get(key) {
        return Ok(Some(*e));
    }
    let mut k = vec![b'I'];
    k.extend_from_slice(key.as_bytes());
    match inner.index.get(k).map_err(storage)? {
        Some(v) => postcard::from_bytes::<(Hash, AppendOutcome)>(&v).map(Some).map_err(|e| {
            LogError::Corruption { position: 0, reason: format!("idempotency index entry: {e}") }
        }),
        None => Ok(None),
    }
}

#[async_trait]
impl EventLog for SledLog {
    async fn append(&self, request: AppendRequest) -> Result<Appended, LogError> {
        check_append(&request)?;
        let tx = self.tx.as_ref().ok_or_else(|| LogError::Internal("log is closing".into()))?;
        let appended = ask_writer(tx, |reply| Job::Append { request, reply }).await?;
        read_back_duplicate(self, appended).await
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        // Snapshot the pending entries before scanning the index: the indexer
        // writes the index before it drops entries from pending, so every
        // committed entry is in one or the other.
        let pending: Vec<(u64, Position)> = {
            let p = self.inner.pending.lock().unwrap_or_else(|p| p.into_inner());
            p.streams
                .get(stream.as_str())
                .map(|m| m.range(from_version.max(1)..).map(|(v, p)| (*v, *p)).collect())
                .unwrap_or_default()
        };
        let from_version = from_version.max(1);
        // The run holding `from_version` starts at or before it: begin at the
        // last run key not after it, within this stream's keys.
        let lowest = stream_key(stream.as_str(), 0);
        let start = match self
            .inner
            .index
            .range(lowest..=stream_key(stream.as_str(), from_version))
            .next_back()
        {
            Some(item) => item.map_err(storage)?.0.to_vec(),
            None => stream_key(stream.as_str(), from_version),
        };
        let mut entries: BTreeMap<u64, Position> = BTreeMap::new();
        'runs: for item in self.inner.index.range(start..=stream_key(stream.as_str(), u64::MAX)) {
            let (k, v) = item.map_err(storage)?;
            let first = u64::from_be_bytes(k[k.len() - 8..].try_into().unwrap_or([0; 8]));
            for (i, p) in v.chunks_exact(8).enumerate() {
                let ver = first + i as u64;
                if ver < from_version {
                    continue;
                }
                entries.insert(ver, u64::from_be_bytes(p.try_into().unwrap_or([0; 8])));
                if entries.len() >= limit {
                    break 'runs;
                }
            }
        }
        entries.extend(pending);
        let positions: Vec<Position> = entries.into_values().take(limit).collect();
        self.inner.read_positions(&positions)
    }

    async fn read_all(&self, from: Position, limit: usize) -> Result<Vec<RecordedEvent>, LogError> {
        let upto = self.inner.committed_head().position;
        let mut out = Vec::with_capacity(limit.min(upto.saturating_sub(from) as usize + 1));
        self.inner.visit_range(from, limit, upto, &mut |view| {
            out.push(view.to_owned());
            Ok(())
        })?;
        Ok(out)
    }

    async fn read_all_with(
        &self,
        from: Position,
        limit: usize,
        visit: &mut RecordVisitor<'_>,
    ) -> Result<usize, LogError> {
        let upto = self.inner.committed_head().position;
        self.inner.visit_range(from, limit, upto, visit)
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<u64, LogError> {
        Ok(self
            .inner
            .heads
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(stream.as_str())
            .copied()
            .unwrap_or(0))
    }

    async fn streams_with_prefix(&self, prefix: &str) -> Result<Vec<String>, LogError> {
        let mut v: Vec<String> = self
            .inner
            .heads
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect();
        v.sort();
        Ok(v)
    }

    async fn import(&self, records: Vec<RecordedEvent>) -> Result<LogHead, LogError> {
        if records.is_empty() {
            return Ok(self.head());
        }
        let tx = self.tx.as_ref().ok_or_else(|| LogError::Internal("log is closing".into()))?;
        ask_writer(tx, |reply| Job::Import { records, reply }).await
    }

    async fn idempotency_lookup(
        &self,
        key: &str,
    ) -> Result<Option<(Hash, AppendOutcome)>, LogError> {
        lookup_idempotency(&self.inner, key)
    }

    fn head(&self) -> LogHead {
        self.inner.committed_head()
    }

    fn watch_head(&self) -> watch::Receiver<Position> {
        self.inner.head_tx.subscribe()
    }

    async fn verify(&self) -> Result<VerifyReport, LogError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut verifier = ChainVerifier::default();
            for item in inner.frames.iter() {
                let (k, v) = item.map_err(storage)?;
                let first = key_position(&k)?;
                if first != verifier.head_position() + 1 {
                    return Err(LogError::Corruption {
                        position: verifier.head_position() + 1,
                        reason: format!("next frame starts at position {first}"),
                    });
                }
                check_frame(first, &v, &mut verifier)?;
            }
            Ok(VerifyReport {
                events: verifier.events(),
                head: LogHead { position: verifier.head_position(), hash: verifier.head_hash() },
            })
        })
        .await
        .map_err(|e| LogError::Internal(format!("verify task failed: {e}")))?
    }

    async fn size_on_disk(&self) -> Result<u64, LogError> {
        self.inner.db.size_on_disk().map_err(storage)
    }

    fn describe(&self) -> String {
        format!("sled:{} ({:?})", self.inner.path.display(), self.inner.options.durability)
    }

    async fn save_checkpoint(&self, name: &str, bytes: Vec<u8>) -> Result<(), LogError> {
        // A large value becomes a sled blob file, which sled 0.34 writes
        // without fsync: a crash can tear it. Readers check a checkpoint
        // against its digest and the log, and fall back to the log.
        self.inner.checkpoints.insert(name.as_bytes(), bytes).map_err(storage)?;
        self.inner.db.flush_async().await.map_err(storage)?;
        Ok(())
    }

    async fn load_checkpoint(&self, name: &str) -> Result<Option<Vec<u8>>, LogError> {
        Ok(self.inner.checkpoints.get(name.as_bytes()).map_err(storage)?.map(|v| v.to_vec()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::log::{subscribe, EventData, ExpectedVersion, CODEC_POSTCARD};
    use crate::time::{ManualClock, Timestamp};
    use futures::StreamExt;

    fn ev(n: u8) -> EventData {
        EventData {
            event_type: "T".into(),
            schema_version: 1,
            payload_codec: CODEC_POSTCARD,
            payload: vec![n; 200],
        }
    }

    fn req(stream: &str, expected: ExpectedVersion, n: usize) -> AppendRequest {
        AppendRequest::new(
            StreamId::new(stream).unwrap(),
            expected,
            "t",
            (0..n).map(|i| ev(i as u8)).collect(),
        )
    }

    fn open(dir: &Path) -> SledLog {
        SledLog::open(dir, SledOptions::default(), Arc::new(ManualClock::new(Timestamp(1_000))))
            .unwrap()
    }

    #[tokio::test]
    async fn positions_versions_conflicts_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path());
        let a = log.append(req("a", ExpectedVersion::NoStream, 3)).await.unwrap().outcome;
        assert_eq!((a.first_position, a.last_position, a.last_version), (1, 3, 3));
        let b = log.append(req("b", ExpectedVersion::Any, 2)).await.unwrap().outcome;
        assert_eq!((b.first_position, b.last_version), (4, 2));
        let err = log.append(req("a", ExpectedVersion::Exact(2), 1)).await.unwrap_err();
        assert!(matches!(err, LogError::Conflict { actual: 3, .. }));
        assert_eq!(log.head().position, 5);
        let s = log.read_stream(&StreamId::new("a").unwrap(), 2, 10).await.unwrap();
        assert_eq!(s.iter().map(|e| e.position).collect::<Vec<_>>(), vec![2, 3]);
        let head = log.head();
        drop(log);
        let log = open(dir.path());
        assert_eq!(log.head(), head);
        assert_eq!(log.stream_version(&StreamId::new("a").unwrap()).await.unwrap(), 3);
        let c = log.append(req("a", ExpectedVersion::Exact(3), 1)).await.unwrap().outcome;
        assert_eq!((c.first_position, c.last_version), (6, 4));
        let all = log.read_all(1, 100).await.unwrap();
        assert_eq!(all.len(), 6);
        let report = log.verify().await.unwrap();
        assert_eq!(report.events, 6);
    }

    #[tokio::test]
    async fn idempotent_retry_and_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path());
        let mut r = req("a", ExpectedVersion::NoStream, 2);
        r.idempotency_key = Some("k1".into());
        let first = log.append(r.clone()).await.unwrap().outcome;
        let again = log.append(r.clone()).await.unwrap().outcome;
        assert!(again.deduplicated);
        assert_eq!(again.first_position, first.first_position);
        assert_eq!(log.head().position, 2);
        let mut other = req("a", ExpectedVersion::Any, 1);
        other.idempotency_key = Some("k1".into());
        assert!(matches!(log.append(other).await, Err(LogError::IdempotencyMismatch { .. })));
        drop(log);
        let log = open(dir.path());
        let again = log.append(r).await.unwrap().outcome;
        assert!(again.deduplicated);
        assert_eq!(log.head().position, 2);
    }

    #[tokio::test]
    async fn tamper_is_found_at_its_position() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path());
        for i in 0..20 {
            log.append(req(&format!("s{i}"), ExpectedVersion::Any, 5)).await.unwrap();
        }
        log.tamper_for_test(37, 60).unwrap();
        match log.verify().await {
            Err(LogError::Corruption { position, .. }) => assert_eq!(position, 37),
            other => panic!("expected corruption, got {other:?}"),
        }
    }

    /// The visiting read hands every page start the same records as the
    /// owned read, and refuses a changed record instead of serving it, from
    /// any start (the record's own bytes, or its successor's link).
    #[tokio::test]
    async fn visiting_read_matches_and_refuses_tampering() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path());
        for i in 0..20 {
            log.append(req(&format!("s{}", i % 3), ExpectedVersion::Any, 1 + i % 4)).await.unwrap();
        }
        let all = log.read_all(1, 1_000).await.unwrap();
        assert_eq!(all.len() as u64, log.head().position);
        for from in [1, 2, 5, 17, 40, 49, 50, 51] {
            let mut seen = Vec::new();
            let n = log
                .read_all_with(from, 7, &mut |v| {
                    seen.push(v.to_owned());
                    Ok(())
                })
                .await
                .unwrap();
            assert_eq!(n, seen.len());
            let want: Vec<_> = all.iter().filter(|e| e.position >= from).take(7).cloned().collect();
            assert_eq!(seen, want, "from {from}");
        }
        log.tamper_for_test(30, 40).unwrap();
        for from in [1, 29, 30, 31] {
            let r = log.read_all_with(from, 100, &mut |_| Ok(())).await;
            let position = match r {
                Err(LogError::Corruption { position, .. }) => position,
                other => panic!("from {from}: expected corruption, got {other:?}"),
            };
            // Read from 31, the bad record is 31's predecessor: its check
            // bytes no longer match, so nothing after it is served.
            assert_eq!(position, 30, "from {from}");
        }
        assert!(log.read_all_with(32, 100, &mut |_| Ok(())).await.is_ok());
        assert!(log.read_all(25, 10).await.is_err());
    }

    /// Changes the last payload byte of the record at `position` and
    /// rewrites its check bytes to match, as someone who knows the frame
    /// layout would: the record checks out alone, only the next record's
    /// link to it gives it away.
    fn rewrite_with_matching_check(log: &SledLog, position: Position) {
        let (first, v) = log.inner.frame_holding(position, "no frame").unwrap();
        let i = (position - first) as usize;
        let view = view_frame(first, &v).unwrap();
        let rec = view.records[i];
        let start = rec.as_ptr() as usize - v.as_ptr() as usize;
        let mut bytes = v.to_vec();
        // The payload is followed by the 32-byte previous hash.
        bytes[start + rec.len() - 33] ^= 0x01;
        let hash = blake3::hash(&bytes[start..start + rec.len()]);
        let at = 5 + frame::TABLE_ENTRY * i + 4;
        bytes[at..at + 8].copy_from_slice(&hash.as_bytes()[..8]);
        log.inner.frames.insert(frame_key(first), bytes).unwrap();
    }

    /// A stream read checks each record's link to the record before it in
    /// the log (in the same frame or the frame before), not only its check
    /// bytes: a record rewritten with matching check bytes is refused at
    /// the record that links to it.
    #[tokio::test]
    async fn stream_read_checks_the_link_to_the_record_before() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path());
        // Positions 1-3 in one frame, 4-5 in the next: 4's predecessor is
        // the last record of the frame before.
        log.append(req("a", ExpectedVersion::Any, 3)).await.unwrap();
        log.append(req("b", ExpectedVersion::Any, 2)).await.unwrap();
        let a = StreamId::new("a").unwrap();
        let b = StreamId::new("b").unwrap();
        assert_eq!(log.read_stream(&b, 1, 10).await.unwrap().len(), 2);
        rewrite_with_matching_check(&log, 3);
        // Alone, record 3 checks out; record 4 (stream b) links to it.
        assert_eq!(log.read_stream(&a, 3, 1).await.unwrap().len(), 1);
        match log.read_stream(&b, 1, 10).await {
            Err(LogError::Corruption { position, .. }) => assert_eq!(position, 4),
            other => panic!("expected corruption at 4, got {other:?}"),
        }
        rewrite_with_matching_check(&log, 3);
        rewrite_with_matching_check(&log, 1);
        match log.read_stream(&a, 1, 10).await {
            Err(LogError::Corruption { position, .. }) => assert_eq!(position, 2),
            other => panic!("expected corruption at 2, got {other:?}"),
        }
        // A flipped byte without the matching check bytes: refused at itself.
        rewrite_with_matching_check(&log, 1);
        log.tamper_for_test(5, 10).unwrap();
        match log.read_stream(&b, 2, 10).await {
            Err(LogError::Corruption { position, .. }) => assert_eq!(position, 5),
            other => panic!("expected corruption at 5, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn subscription_hands_over_from_catch_up_to_live() {
        let dir = tempfile::tempdir().unwrap();
        let log: Arc<dyn EventLog> = Arc::new(open(dir.path()));
        for _ in 0..10 {
            log.append(req("a", ExpectedVersion::Any, 3)).await.unwrap();
        }
        let mut sub = subscribe(log.clone(), 5);
        let writer = {
            let log = log.clone();
            tokio::spawn(async move {
                for _ in 0..50 {
                    log.append(req("b", ExpectedVersion::Any, 2)).await.unwrap();
                }
            })
        };
        let mut expect = 5;
        while expect <= 130 {
            let e = sub.next().await.unwrap().unwrap();
            assert_eq!(e.position, expect);
            expect += 1;
        }
        writer.await.unwrap();
    }

    /// The index written from what the writer handed over (interleaved
    /// streams, multi-event and keyed appends, several passes) answers
    /// stream reads and key lookups after a reopen, when the pending map
    /// is empty and only the index is consulted.
    #[tokio::test]
    async fn handed_index_serves_reads_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(open(dir.path()));
        let mut tasks = Vec::new();
        for w in 0..8 {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..40 {
                    let mut r = req(&format!("s{}", (w + i) % 5), ExpectedVersion::Any, 1 + i % 3);
                    r.idempotency_key = (i % 4 == 0).then(|| format!("k{w}-{i}"));
                    log.append(r).await.unwrap();
                    if i == 20 {
                        tokio::time::sleep(indexer::INDEX_LINGER * 2).await;
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let head = log.head();
        drop(Arc::try_unwrap(log).ok().unwrap());
        let log = open(dir.path());
        assert_eq!(log.indexed_upto().unwrap(), head.position);
        let all = log.read_all(1, 10_000).await.unwrap();
        for s in 0..5 {
            let name = format!("s{s}");
            let want: Vec<_> = all.iter().filter(|e| e.stream == name).cloned().collect();
            let got = log.read_stream(&StreamId::new(&name).unwrap(), 1, 10_000).await.unwrap();
            assert_eq!(got, want, "stream {name}");
            let tail = log.read_stream(&StreamId::new(&name).unwrap(), 7, 3).await.unwrap();
            assert_eq!(tail, want[6..9].to_vec(), "stream {name} from version 7");
        }
        for e in all.iter().filter(|e| e.idempotency.is_some()) {
            let key = &e.idempotency.as_ref().unwrap().key;
            let (_, outcome) = log.idempotency_lookup(key).await.unwrap().unwrap();
            assert_eq!(outcome.first_position, e.position, "key {key}");
        }
    }

    #[tokio::test]
    async fn concurrent_appends_are_gap_free() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(open(dir.path()));
        let mut tasks = Vec::new();
        for w in 0..16 {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                let mut expected = ExpectedVersion::NoStream;
                for _ in 0..20 {
                    let o = log.append(req(&format!("w{w}"), expected, 2)).await.unwrap().outcome;
                    expected = ExpectedVersion::Exact(o.last_version);
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let all = log.read_all(1, 10_000).await.unwrap();
        assert_eq!(all.len(), 640);
        assert!(all.iter().enumerate().all(|(i, e)| e.position == i as u64 + 1));
        log.verify().await.unwrap();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod import_tests {
    use super::*;
    use crate::log::{EventData, ExpectedVersion, CODEC_POSTCARD};
    use crate::time::{ManualClock, Timestamp};

    #[tokio::test]
    async fn import_reproduces_the_chain_and_refuses_a_broken_one() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let clock = Arc::new(ManualClock::new(Timestamp(5_000)));
        let src = SledLog::open(a.path(), SledOptions::default(), clock.clone()).unwrap();
        for i in 0..30u8 {
            let ev = EventData {
                event_type: "T".into(),
                schema_version: 1,
                payload_codec: CODEC_POSTCARD,
                payload: vec![i; 40],
            };
            let mut r = AppendRequest::new(
                StreamId::new(format!("s{}", i % 4)).unwrap(),
                ExpectedVersion::Any,
                "x",
                vec![ev],
            );
            r.idempotency_key = (i % 7 == 0).then(|| format!("k{i}"));
            src.append(r).await.unwrap();
        }
        let all = src.read_all(1, 100).await.unwrap();
        let dst = SledLog::open(b.path(), SledOptions::default(), clock.clone()).unwrap();
        let mut broken = all.clone();
        broken[10].payload[0] ^= 1;
        assert!(matches!(dst.import(broken).await, Err(LogError::Corruption { position: 11, .. })));
        assert_eq!(dst.head().position, 0);
        dst.import(all[..12].to_vec()).await.unwrap();
        dst.import(all[12..].to_vec()).await.unwrap();
        assert_eq!(dst.head(), src.head());
        assert_eq!(dst.verify().await.unwrap().head, src.head());
        assert!(dst.idempotency_lookup("k14").await.unwrap().is_some());
        assert_eq!(dst.stream_version(&StreamId::new("s1").unwrap()).await.unwrap(), 8);
    }
}
