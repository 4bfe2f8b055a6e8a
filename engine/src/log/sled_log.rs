//! The embedded default backend: the log on `sled` 0.34.
//!
//! Layout (see ARCHITECTURE.md, "The append path" and "The recovery path"):
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

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{mpsc as std_mpsc, Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot, watch};

use super::group::{ask_writer, check_import, replies, CommittedState, Group, GroupWrite};
use super::record::{
    decode_record, index_fields, ChainVerifier, ChainedRecord, Hash, GENESIS_HASH, RECORD_FORMAT,
};
use super::{
    check_append, read_back_duplicate, AppendOutcome, AppendRequest, Appended, Durability,
    EventLog, LogHead, Position, RecordedEvent, StreamId, VerifyReport,
};
use crate::time::{Clock, Timestamp};
use crate::Error;

const FRAME_FORMAT: u8 = 1;
const FRAME_TRAILER: usize = 32;
const TABLE_ENTRY: usize = 12;
const MAX_GROUP_REQUESTS: usize = 4096;
const INDEX_CHUNK: usize = 16_384;
/// The index layout written under key `F`; any other is dropped and rebuilt.
const INDEX_FORMAT: u8 = 2;
/// The indexer passes at most this often (sooner when `INDEX_CHUNK` events
/// wait): a longer pass sees several events of a busy stream, which then
/// share one key; reads meanwhile use the pending map. On the city bench,
/// 1 ms gained nothing over one key per event, 50 ms gave +19% throughput
/// for a higher p99, and 200 ms no more throughput and a worse p99.
const INDEX_LINGER: Duration = Duration::from_millis(50);
/// How long an open waits for a file lock held by a just-dropped handle.
const LOCK_WAIT: Duration = Duration::from_secs(3);

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

enum Job {
    Append { request: AppendRequest, reply: oneshot::Sender<Result<Appended, Error>> },
    Import { records: Vec<RecordedEvent>, reply: oneshot::Sender<Result<LogHead, Error>> },
}

#[derive(Default)]
struct Pending {
    /// Committed stream entries the index does not hold yet: stream → version → position.
    streams: HashMap<String, BTreeMap<u64, Position>>,
    /// Committed idempotency keys the index does not hold yet.
    idempotency: HashMap<String, (Hash, AppendOutcome)>,
}

struct Inner {
    db: sled::Db,
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

fn storage(e: sled::Error) -> Error {
    Error::Storage(e.to_string())
}

fn frame_key(p: Position) -> [u8; 8] {
    p.to_be_bytes()
}

/// An index pass's writes, cut into sled batches of at most `INDEX_BATCH_KEYS`.
#[derive(Default)]
struct Batches {
    full: Vec<sled::Batch>,
    current: sled::Batch,
    keys: usize,
}

/// Keys per index batch: small enough that the writer's commit never waits
/// long behind one.
const INDEX_BATCH_KEYS: usize = 512;

impl Batches {
    fn insert(&mut self, k: impl Into<sled::IVec>, v: impl Into<sled::IVec>) {
        if self.keys == INDEX_BATCH_KEYS {
            self.full.push(std::mem::take(&mut self.current));
            self.keys = 0;
        }
        self.current.insert(k, v);
        self.keys += 1;
    }
}

/// `S stream \0 version`: the index key of the run starting at `version`.
fn stream_key(stream: &str, version: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(stream.len() + 10);
    k.push(b'S');
    k.extend_from_slice(stream.as_bytes());
    k.push(0);
    k.extend_from_slice(&version.to_be_bytes());
    k
}

fn key_position(k: &[u8]) -> Result<Position, Error> {
    let arr: [u8; 8] = k.try_into().map_err(|_| Error::Corruption {
        position: 0,
        reason: format!("frame key of {} bytes", k.len()),
    })?;
    Ok(u64::from_be_bytes(arr))
}

/// Frame layout: `[FRAME_FORMAT][count u32 LE]`, then per record
/// `[offset u32 LE][first 8 bytes of its BLAKE3 hash]`, the records, and a
/// 32-byte trailer holding the hash of the last record. The per-record check
/// bytes let verify name the exact record whose bytes changed; the chain
/// (inside the hashed bytes) catches a rewrite that also fixed the table.
fn encode_frame(records: &[ChainedRecord]) -> Vec<u8> {
    let body: usize = records.iter().map(|r| r.bytes.len()).sum();
    let mut out = Vec::with_capacity(5 + TABLE_ENTRY * records.len() + body + FRAME_TRAILER);
    out.push(FRAME_FORMAT);
    out.extend_from_slice(&(records.len() as u32).to_le_bytes());
    let mut offset = 0u32;
    for r in records {
        out.extend_from_slice(&offset.to_le_bytes());
        out.extend_from_slice(&r.record.hash[..8]);
        offset += r.bytes.len() as u32;
    }
    for r in records {
        out.extend_from_slice(&r.bytes);
    }
    let last_hash = records.last().map(|r| r.record.hash).unwrap_or(GENESIS_HASH);
    out.extend_from_slice(&last_hash);
    out
}

/// Cuts a group's records into frames of at most `max_frame_events` records
/// and `max_frame_bytes` record bytes (one larger record goes alone), keyed
/// by the position of their first record.
fn frames_of(options: &SledOptions, records: &[ChainedRecord]) -> Vec<(Position, Vec<u8>)> {
    let mut frames = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    let mut seal = |run: &[ChainedRecord]| {
        if let Some(first) = run.first() {
            frames.push((first.record.position, encode_frame(run)));
        }
    };
    for (i, r) in records.iter().enumerate() {
        let full = i - start >= options.max_frame_events
            || bytes + r.bytes.len() > options.max_frame_bytes;
        if i > start && full {
            seal(&records[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += r.bytes.len();
    }
    seal(&records[start..]);
    frames
}

/// A decoded frame header: where each record's bytes lie.
struct FrameView<'a> {
    records: Vec<&'a [u8]>,
    checks: Vec<&'a [u8]>,
    trailer: &'a [u8],
}

fn view_frame(first: Position, bytes: &[u8]) -> Result<FrameView<'_>, Error> {
    let bad = |reason: String| Error::Corruption { position: first, reason };
    if bytes.len() < 5 + FRAME_TRAILER {
        return Err(bad("frame shorter than its header".into()));
    }
    if bytes[0] > FRAME_FORMAT {
        return Err(Error::NewerFormat { found: bytes[0] as u32, supported: FRAME_FORMAT as u32 });
    }
    if bytes[0] != FRAME_FORMAT {
        return Err(bad(format!("unknown frame format {}", bytes[0])));
    }
    let count = u32::from_le_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
    let table_end = 5usize.checked_add(
        count.checked_mul(TABLE_ENTRY).ok_or_else(|| bad("frame count overflows".into()))?,
    );
    let table_end = table_end.ok_or_else(|| bad("frame count overflows".into()))?;
    if count == 0 || table_end + FRAME_TRAILER > bytes.len() {
        return Err(bad(format!("frame header claims {count} records")));
    }
    let body = &bytes[table_end..bytes.len() - FRAME_TRAILER];
    let mut offsets = Vec::with_capacity(count + 1);
    let mut checks = Vec::with_capacity(count);
    for i in 0..count {
        let at = 5 + TABLE_ENTRY * i;
        offsets
            .push(u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
                as usize);
        checks.push(&bytes[at + 4..at + TABLE_ENTRY]);
    }
    offsets.push(body.len());
    let mut records = Vec::with_capacity(count);
    for i in 0..count {
        let (s, e) = (offsets[i], offsets[i + 1]);
        if s > e || e > body.len() {
            return Err(Error::Corruption {
                position: first + i as u64,
                reason: "record offsets out of range".into(),
            });
        }
        records.push(&body[s..e]);
    }
    Ok(FrameView { records, checks, trailer: &bytes[bytes.len() - FRAME_TRAILER..] })
}

/// Decodes every record of a frame and checks it against `verifier`
/// (positions, previous-hash links) and against the frame trailer.
fn check_frame(
    first: Position,
    bytes: &[u8],
    verifier: &mut ChainVerifier,
) -> Result<Vec<RecordedEvent>, Error> {
    let view = view_frame(first, bytes)?;
    let mut out = Vec::with_capacity(view.records.len());
    for (i, raw) in view.records.iter().enumerate() {
        let ev = decode_record(raw, first + i as u64)?;
        if view.checks[i] != &ev.hash[..8] {
            return Err(Error::Corruption {
                position: first + i as u64,
                reason: "record bytes do not match their stored check bytes".into(),
            });
        }
        verifier.check(&ev)?;
        out.push(ev);
    }
    if view.trailer != verifier.head_hash() {
        return Err(Error::Corruption {
            position: verifier.head_position(),
            reason: "frame trailer does not match the hash of its last record".into(),
        });
    }
    Ok(out)
}

impl SledLog {
    /// Opens (or creates) the log at `path`, running the recovery path.
    pub fn open(
        path: impl AsRef<Path>,
        options: SledOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<SledLog, Error> {
        let path = path.as_ref().to_path_buf();
        // sled's background threads can hold the file lock for a moment
        // after a previous handle in this process was dropped, so a lock
        // failure is retried for up to LOCK_WAIT before it is reported.
        let started = std::time::Instant::now();
        let db = loop {
            let attempt = sled::Config::new()
                .path(&path)
                .cache_capacity(options.cache_capacity)
                .segment_size(4 * 1024 * 1024)
                .flush_every_ms(Some(options.flush_every_ms))
                .open();
            match attempt {
                Ok(db) => break db,
                Err(sled::Error::Io(io)) if io.to_string().contains("could not acquire lock") => {
                    if started.elapsed() < LOCK_WAIT {
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    }
                    return Err(Error::Storage(format!(
                        "the store at {} is in use by another process; stop it first",
                        path.display()
                    )));
                }
                Err(other) => {
                    return Err(Error::Storage(format!(
                        "cannot open the store at {}: {other}",
                        path.display()
                    )))
                }
            }
        };
        let meta = db.open_tree("meta").map_err(storage)?;
        let frames = db.open_tree("frames").map_err(storage)?;
        let index = db.open_tree("index").map_err(storage)?;
        let checkpoints = db.open_tree("checkpoints").map_err(storage)?;

        // 1. Refuse a store written by a newer build.
        match meta.get(b"format").map_err(storage)? {
            Some(v) => {
                let found = v.first().copied().unwrap_or(0);
                if found > RECORD_FORMAT {
                    return Err(Error::NewerFormat {
                        found: found as u32,
                        supported: RECORD_FORMAT as u32,
                    });
                }
            }
            None => {
                meta.insert(b"format", &[RECORD_FORMAT]).map_err(storage)?;
            }
        }

        // 2. Find and check the tail frame; it gives the chain head and the clock floor.
        let (head, last_recorded) = Self::recover_tail(&frames)?;

        // 3. Compare with the anchor kept outside sled: sled takes a corrupt
        // record for a torn tail and silently drops it and everything after
        // it, so only a head recorded elsewhere can tell truncation from a
        // clean end.
        check_anchor(&path, &frames, head)?;

        let (head_tx, _) = watch::channel(head.position);
        let inner = Arc::new(Inner {
            db,
            frames,
            index,
            checkpoints,
            path,
            options: options.clone(),
            heads: RwLock::new(HashMap::new()),
            pending: Mutex::new(Pending::default()),
            head: Mutex::new(head),
            head_tx,
            poisoned: Mutex::new(None),
        });

        // 3. Bring the derived index up to the head, then load stream heads from it.
        let checkpoint = inner.index_checkpoint()?;
        let layout = inner.index.get(b"F").map_err(storage)?;
        if checkpoint > head.position || layout.as_deref() != Some(&[INDEX_FORMAT][..]) {
            // The index claims more than the log holds, or was written in
            // another layout: rebuild it from scratch (it is derived).
            inner.index.clear().map_err(storage)?;
            inner.index.insert(b"F", &[INDEX_FORMAT]).map_err(storage)?;
        }
        inner.index_catch_up(head.position)?;
        let mut heads = HashMap::new();
        for item in inner.index.scan_prefix(b"H") {
            let (k, v) = item.map_err(storage)?;
            let name = String::from_utf8_lossy(&k[1..]).into_owned();
            heads.insert(name, u64::from_be_bytes(v.as_ref().try_into().unwrap_or([0; 8])));
        }
        *inner.heads.write().map_err(|_| Error::Internal("heads lock poisoned".into()))? = heads;

        let (tx, rx) = mpsc::channel(options.queue_depth);
        let (notify_tx, notify_rx) = std_mpsc::channel::<()>();
        let w_inner = inner.clone();
        let writer = std::thread::Builder::new()
            .name("gridcase-log-writer".into())
            .spawn(move || writer_loop(w_inner, rx, notify_tx, clock, head, last_recorded))
            .map_err(|e| Error::Internal(format!("cannot start the writer thread: {e}")))?;
        let i_inner = inner.clone();
        let indexer = std::thread::Builder::new()
            .name("gridcase-log-indexer".into())
            .spawn(move || indexer_loop(i_inner, notify_rx))
            .map_err(|e| Error::Internal(format!("cannot start the indexer thread: {e}")))?;
        Ok(SledLog { inner, tx: Some(tx), writer: Some(writer), indexer: Some(indexer) })
    }

    fn recover_tail(frames: &sled::Tree) -> Result<(LogHead, Timestamp), Error> {
        let mut rev = frames.iter().rev();
        let Some(last) = rev.next() else {
            return Ok((LogHead { position: 0, hash: GENESIS_HASH }, Timestamp(i64::MIN)));
        };
        let (k, v) = last.map_err(storage)?;
        let first = key_position(&k)?;
        let prev_hash = match rev.next() {
            Some(prev) => {
                let (pk, pv) = prev.map_err(storage)?;
                let view = view_frame(key_position(&pk)?, &pv)?;
                let mut h = GENESIS_HASH;
                h.copy_from_slice(view.trailer);
                h
            }
            None => GENESIS_HASH,
        };
        let mut verifier = ChainVerifier::resume(first, prev_hash);
        let events = check_frame(first, &v, &mut verifier)?;
        let last_at = events.last().map(|e| e.recorded_at).unwrap_or(Timestamp(i64::MIN));
        Ok((LogHead { position: verifier.head_position(), hash: verifier.head_hash() }, last_at))
    }

    /// Where the store lives.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// How many events the index has absorbed (for tests and stats).
    pub fn indexed_upto(&self) -> Result<Position, Error> {
        self.inner.index_checkpoint()
    }

    /// Test and audit hook: overwrites the raw bytes of the frame holding
    /// `position`, flipping one byte of that record. Used to prove that
    /// tampering is detected; it bypasses the chain on purpose.
    pub fn tamper_for_test(&self, position: Position, byte: usize) -> Result<(), Error> {
        let (k, v) = self
            .inner
            .frames
            .range(..=frame_key(position))
            .next_back()
            .ok_or_else(|| Error::InvalidInput(format!("no event at position {position}")))?
            .map_err(storage)?;
        let first = key_position(&k)?;
        let view = view_frame(first, &v)?;
        let idx = (position - first) as usize;
        let rec = view
            .records
            .get(idx)
            .ok_or_else(|| Error::InvalidInput(format!("no event at position {position}")))?;
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

/// File beside sled's own, holding a durable head: `position hash-hex`.
const ANCHOR_FILE: &str = "gridcase-anchor";
/// How often the writer refreshes the anchor (and, in `Buffered` mode, flushes for it).
const ANCHOR_EVERY: Duration = Duration::from_secs(1);

fn write_anchor(dir: &Path, head: LogHead) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = dir.join(format!("{ANCHOR_FILE}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    writeln!(f, "{} {}", head.position, super::record::hex(&head.hash))?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(ANCHOR_FILE))?;
    std::fs::File::open(dir)?.sync_all()
}

fn check_anchor(dir: &Path, frames: &sled::Tree, head: LogHead) -> Result<(), Error> {
    let text = match std::fs::read_to_string(dir.join(ANCHOR_FILE)) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::Storage(format!("cannot read the head anchor: {e}"))),
    };
    let mut parts = text.split_whitespace();
    let position: Position = parts.next().and_then(|p| p.parse().ok()).ok_or_else(|| {
        Error::Corruption { position: 0, reason: "the head anchor file is unreadable".into() }
    })?;
    let hash = parts.next().unwrap_or("");
    if position > head.position {
        return Err(Error::Corruption {
            position: head.position + 1,
            reason: format!(
                "the store ends at position {} but its anchor records position {position}: records were lost or truncated",
                head.position
            ),
        });
    }
    if position == 0 {
        return Ok(());
    }
    let (k, v) = frames
        .range(..=frame_key(position))
        .next_back()
        .ok_or_else(|| Error::Corruption {
            position,
            reason: "the anchored record is missing".into(),
        })?
        .map_err(storage)?;
    let first = key_position(&k)?;
    let view = view_frame(first, &v)?;
    let raw = view.records.get((position - first) as usize).ok_or_else(|| Error::Corruption {
        position,
        reason: "the anchored record is missing".into(),
    })?;
    let rec = decode_record(raw, position)?;
    if super::record::hex(&rec.hash) != hash {
        return Err(Error::Corruption {
            position,
            reason: "the record differs from the one anchored".into(),
        });
    }
    Ok(())
}

impl Inner {
    fn index_checkpoint(&self) -> Result<Position, Error> {
        Ok(match self.index.get(b"C").map_err(storage)? {
            Some(v) => u64::from_be_bytes(v.as_ref().try_into().unwrap_or([0; 8])),
            None => 0,
        })
    }

    fn committed_head(&self) -> LogHead {
        *self.head.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Indexes every committed record after the checkpoint, in chunks, each
    /// chunk one atomic batch that also moves the checkpoint.
    fn index_catch_up(&self, upto: Position) -> Result<(), Error> {
        /// Consecutive versions of one stream and their positions.
        struct Run {
            first_version: u64,
            /// Big-endian positions, 8 bytes each: the `S` value as written.
            positions: Vec<u8>,
        }
        impl Run {
            fn last_version(&self) -> u64 {
                self.first_version + (self.positions.len() / 8) as u64 - 1
            }
        }
        loop {
            let from = self.index_checkpoint()? + 1;
            if from > upto {
                return Ok(());
            }
            let mut runs: HashMap<String, Vec<Run>> = HashMap::new();
            let mut batch = Batches::default();
            let mut keys = Vec::new();
            let mut last_pos = 0;
            self.scan_raw(from, INDEX_CHUNK, upto, |pos, raw| {
                let f = index_fields(raw, pos)?;
                if f.position != pos {
                    return Err(Error::Corruption {
                        position: pos,
                        reason: format!("record says position {}", f.position),
                    });
                }
                last_pos = pos;
                let stream_runs = match runs.get_mut(f.stream) {
                    Some(r) => r,
                    None => runs.entry(f.stream.to_string()).or_default(),
                };
                match stream_runs.last_mut() {
                    Some(run) if run.last_version() + 1 == f.version => {
                        run.positions.extend_from_slice(&pos.to_be_bytes());
                    }
                    _ => stream_runs.push(Run {
                        first_version: f.version,
                        positions: pos.to_be_bytes().to_vec(),
                    }),
                }
                if let Some(mark) = &f.idempotency {
                    let outcome = AppendOutcome {
                        first_position: pos,
                        last_position: pos + mark.count as u64 - 1,
                        last_version: f.version + mark.count as u64 - 1,
                        recorded_at: Timestamp(f.recorded_at),
                        deduplicated: false,
                    };
                    let value = postcard::to_allocvec(&(mark.digest, outcome))
                        .map_err(|e| Error::Codec(format!("idempotency entry: {e}")))?;
                    let mut k = vec![b'I'];
                    k.extend_from_slice(mark.key.as_bytes());
                    batch.insert(k, value);
                    keys.push(mark.key.to_string());
                }
                Ok(())
            })?;
            if last_pos == 0 {
                return Ok(());
            }
            let mut heads: Vec<(String, u64)> = Vec::with_capacity(runs.len());
            for (stream, stream_runs) in runs {
                for run in &stream_runs {
                    batch.insert(stream_key(&stream, run.first_version), run.positions.as_slice());
                }
                if let Some(run) = stream_runs.last() {
                    let mut k = vec![b'H'];
                    k.extend_from_slice(stream.as_bytes());
                    batch.insert(k, &run.last_version().to_be_bytes());
                    heads.push((stream, run.last_version()));
                }
            }
            // sled applies a batch under a lock that also holds off the
            // writer's commit, so a pass goes in small batches and only the
            // last moves the checkpoint. A crash between them leaves entries
            // past the checkpoint; they are true (every position has one
            // stream and version) and the next pass writes them again, maybe
            // as runs that overlap, which reads tolerate.
            batch.insert(b"C", &last_pos.to_be_bytes());
            for b in batch.full.drain(..) {
                self.index.apply_batch(b).map_err(storage)?;
            }
            self.index.apply_batch(batch.current).map_err(storage)?;
            let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            for (s, v) in &heads {
                if let Some(m) = p.streams.get_mut(s) {
                    *m = m.split_off(&(v + 1));
                    if m.is_empty() {
                        p.streams.remove(s);
                    }
                }
            }
            for k in keys {
                p.idempotency.remove(&k);
            }
        }
    }

    /// Up to `limit` records from position `from`, never past `upto`.
    fn read_range(
        &self,
        from: Position,
        limit: usize,
        upto: Position,
    ) -> Result<Vec<RecordedEvent>, Error> {
        let mut out = Vec::new();
        self.scan_raw(from, limit, upto, |pos, raw| {
            let ev = decode_record(raw, pos)?;
            if ev.position != pos {
                return Err(Error::Corruption {
                    position: pos,
                    reason: format!("record says position {}", ev.position),
                });
            }
            out.push(ev);
            Ok(())
        })?;
        Ok(out)
    }

    /// Hands the raw bytes of up to `limit` records from position `from`,
    /// never past `upto`, to `each` in position order.
    fn scan_raw(
        &self,
        from: Position,
        limit: usize,
        upto: Position,
        mut each: impl FnMut(Position, &[u8]) -> Result<(), Error>,
    ) -> Result<(), Error> {
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
            for (i, raw) in view.records.iter().enumerate() {
                let pos = first + i as u64;
                if pos < from {
                    continue;
                }
                if pos > upto || seen >= limit {
                    return Ok(());
                }
                each(pos, raw)?;
                seen += 1;
            }
        }
        Ok(())
    }

    /// Reads the records at the given ascending positions.
    fn read_positions(&self, positions: &[Position]) -> Result<Vec<RecordedEvent>, Error> {
        let mut out = Vec::with_capacity(positions.len());
        let mut cached: Option<(Position, sled::IVec)> = None;
        for &pos in positions {
            let hit = matches!(&cached, Some((first, v)) if pos >= *first && {
                let n = view_frame(*first, v).map(|f| f.records.len()).unwrap_or(0) as u64;
                pos < first + n
            });
            if !hit {
                let (k, v) = self
                    .frames
                    .range(..=frame_key(pos))
                    .next_back()
                    .ok_or_else(|| Error::Corruption {
                        position: pos,
                        reason: "indexed event has no frame".into(),
                    })?
                    .map_err(storage)?;
                cached = Some((key_position(&k)?, v));
            }
            let Some((first, v)) = &cached else { continue };
            let view = view_frame(*first, v)?;
            let raw =
                view.records.get((pos - first) as usize).ok_or_else(|| Error::Corruption {
                    position: pos,
                    reason: "indexed event missing from its frame".into(),
                })?;
            out.push(decode_record(raw, pos)?);
        }
        Ok(out)
    }

    fn fsync_files(&self) -> Result<(), Error> {
        fn walk(dir: &Path) -> std::io::Result<()> {
            for entry in std::fs::read_dir(dir)? {
                let entry = entry?;
                let p = entry.path();
                if entry.file_type()?.is_dir() {
                    walk(&p)?;
                } else {
                    std::fs::File::open(&p)?.sync_all()?;
                }
            }
            std::fs::File::open(dir)?.sync_all()
        }
        walk(&self.path)
            .map_err(|e| Error::Storage(format!("fsync of {} failed: {e}", self.path.display())))
    }
}

/// Refreshes the anchor at most every [`ANCHOR_EVERY`]; the anchored head
/// must be durable first, which in `Buffered` mode takes a flush.
fn maybe_anchor(inner: &Inner, head: LogHead, at: &mut std::time::Instant) {
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

fn writer_loop(
    inner: Arc<Inner>,
    mut rx: mpsc::Receiver<Job>,
    notify: std_mpsc::Sender<()>,
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
                    Some(reason) => Err(Error::Storage(reason)),
                    None => import_group(&inner, records, &mut head, &mut last_recorded, &notify),
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
                let _ = reply.send(Err(Error::Storage(reason.clone())));
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
                publish(&inner, &write);
                head = write.head;
                last_recorded = write.recorded_at;
                let _ = notify.send(());
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
    fn stream_version(&self, stream: &str) -> Result<u64, Error> {
        let heads = self.heads.read().unwrap_or_else(|p| p.into_inner());
        Ok(heads.get(stream).copied().unwrap_or(0))
    }

    fn idempotency(&self, key: &str) -> Result<Option<(Hash, AppendOutcome)>, Error> {
        lookup_idempotency(self, key)
    }
}

/// Makes a committed group visible: stream heads, the entries the index
/// has not absorbed yet, and the head and its watch, in that order (a
/// reader that sees the new head finds everything below it).
fn publish(inner: &Inner, write: &GroupWrite) {
    {
        let mut heads = inner.heads.write().unwrap_or_else(|p| p.into_inner());
        for (s, v) in &write.stream_heads {
            heads.insert(s.clone(), *v);
        }
    }
    {
        let mut p = inner.pending.lock().unwrap_or_else(|p| p.into_inner());
        for c in &write.records {
            let r = &c.record;
            p.streams.entry(r.stream.clone()).or_default().insert(r.version, r.position);
        }
        for (k, e) in &write.keys {
            p.idempotency.insert(k.clone(), *e);
        }
    }
    *inner.head.lock().unwrap_or_else(|p| p.into_inner()) = write.head;
    inner.head_tx.send_replace(write.head.position);
}

/// Checks and writes a run of exported records as one batch.
fn import_group(
    inner: &Inner,
    records: Vec<RecordedEvent>,
    head: &mut LogHead,
    last_recorded: &mut Timestamp,
    notify: &std_mpsc::Sender<()>,
) -> Result<LogHead, Error> {
    let write = check_import(&records, *head, *last_recorded, inner)?;
    if write.records.is_empty() {
        return Ok(*head);
    }
    commit(inner, &frames_of(&inner.options, &write.records))?;
    publish(inner, &write);
    *head = write.head;
    *last_recorded = write.recorded_at;
    let _ = notify.send(());
    Ok(*head)
}

fn lookup_idempotency(inner: &Inner, key: &str) -> Result<Option<(Hash, AppendOutcome)>, Error> {
    if let Some(e) = inner.pending.lock().unwrap_or_else(|p| p.into_inner()).idempotency.get(key) {
        return Ok(Some(*e));
    }
    let mut k = vec![b'I'];
    k.extend_from_slice(key.as_bytes());
    match inner.index.get(k).map_err(storage)? {
        Some(v) => postcard::from_bytes::<(Hash, AppendOutcome)>(&v).map(Some).map_err(|e| {
            Error::Corruption { position: 0, reason: format!("idempotency index entry: {e}") }
        }),
        None => Ok(None),
    }
}

fn commit(inner: &Inner, frames: &[(Position, Vec<u8>)]) -> Result<(), Error> {
    let mut batch = sled::Batch::default();
    for (first, bytes) in frames {
        batch.insert(&frame_key(*first), bytes.as_slice());
    }
    inner.frames.apply_batch(batch).map_err(storage)?;
    match inner.options.durability {
        Durability::Buffered => Ok(()),
        Durability::Durable => inner.db.flush().map(|_| ()).map_err(storage),
        Durability::Strict => {
            inner.db.flush().map_err(storage)?;
            inner.fsync_files()
        }
    }
}

fn indexer_loop(inner: Arc<Inner>, notify: std_mpsc::Receiver<()>) {
    let mut last_pass = std::time::Instant::now();
    let mut indexed = inner.index_checkpoint().unwrap_or(0);
    loop {
        let wait = INDEX_LINGER.saturating_sub(last_pass.elapsed()).max(Duration::from_millis(1));
        let alive = match notify.recv_timeout(wait) {
            Ok(()) => {
                while notify.try_recv().is_ok() {}
                true
            }
            Err(std_mpsc::RecvTimeoutError::Timeout) => true,
            Err(std_mpsc::RecvTimeoutError::Disconnected) => false,
        };
        let upto = inner.committed_head().position;
        let behind = upto.saturating_sub(indexed);
        if alive && (behind as usize) < INDEX_CHUNK && last_pass.elapsed() < INDEX_LINGER {
            continue;
        }
        last_pass = std::time::Instant::now();
        match inner.index_catch_up(upto) {
            Ok(()) => indexed = upto,
            Err(e) => {
                // The index is derived: a failure here costs only read latency of
                // the pending map, and the next open rebuilds from the checkpoint.
                tracing::error!(error = %e, "log indexer failed; will retry");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        if !alive {
            return;
        }
    }
}

#[async_trait]
impl EventLog for SledLog {
    async fn append(&self, request: AppendRequest) -> Result<Appended, Error> {
        check_append(&request)?;
        let tx = self.tx.as_ref().ok_or_else(|| Error::Internal("log is closing".into()))?;
        let appended = ask_writer(tx, |reply| Job::Append { request, reply }).await?;
        read_back_duplicate(self, appended).await
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, Error> {
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

    async fn read_all(&self, from: Position, limit: usize) -> Result<Vec<RecordedEvent>, Error> {
        let upto = self.inner.committed_head().position;
        self.inner.read_range(from.max(1), limit, upto)
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<u64, Error> {
        Ok(self
            .inner
            .heads
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(stream.as_str())
            .copied()
            .unwrap_or(0))
    }

    async fn streams_with_prefix(&self, prefix: &str) -> Result<Vec<String>, Error> {
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

    async fn import(&self, records: Vec<RecordedEvent>) -> Result<LogHead, Error> {
        if records.is_empty() {
            return Ok(self.head());
        }
        let tx = self.tx.as_ref().ok_or_else(|| Error::Internal("log is closing".into()))?;
        ask_writer(tx, |reply| Job::Import { records, reply }).await
    }

    async fn idempotency_lookup(&self, key: &str) -> Result<Option<(Hash, AppendOutcome)>, Error> {
        lookup_idempotency(&self.inner, key)
    }

    fn head(&self) -> LogHead {
        self.inner.committed_head()
    }

    fn watch_head(&self) -> watch::Receiver<Position> {
        self.inner.head_tx.subscribe()
    }

    async fn verify(&self) -> Result<VerifyReport, Error> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut verifier = ChainVerifier::default();
            for item in inner.frames.iter() {
                let (k, v) = item.map_err(storage)?;
                let first = key_position(&k)?;
                if first != verifier.head_position() + 1 {
                    return Err(Error::Corruption {
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
        .map_err(|e| Error::Internal(format!("verify task failed: {e}")))?
    }

    async fn size_on_disk(&self) -> Result<u64, Error> {
        self.inner.db.size_on_disk().map_err(storage)
    }

    fn describe(&self) -> String {
        format!("sled:{} ({:?})", self.inner.path.display(), self.inner.options.durability)
    }

    async fn save_checkpoint(&self, name: &str, bytes: Vec<u8>) -> Result<(), Error> {
        // A large value becomes a sled blob file, which sled 0.34 writes
        // without fsync: a crash can tear it. Readers check a checkpoint
        // against its digest and the log, and fall back to the log.
        self.inner.checkpoints.insert(name.as_bytes(), bytes).map_err(storage)?;
        self.inner.db.flush_async().await.map_err(storage)?;
        Ok(())
    }

    async fn load_checkpoint(&self, name: &str) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.inner.checkpoints.get(name.as_bytes()).map_err(storage)?.map(|v| v.to_vec()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::log::{subscribe, EventData, ExpectedVersion, CODEC_POSTCARD};
    use crate::time::ManualClock;
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
        assert!(matches!(err, Error::Conflict { actual: 3, .. }));
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
        assert!(matches!(log.append(other).await, Err(Error::IdempotencyMismatch { .. })));
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
            Err(Error::Corruption { position, .. }) => assert_eq!(position, 37),
            other => panic!("expected corruption, got {other:?}"),
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
    use crate::time::ManualClock;

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
        assert!(matches!(dst.import(broken).await, Err(Error::Corruption { position: 11, .. })));
        assert_eq!(dst.head().position, 0);
        dst.import(all[..12].to_vec()).await.unwrap();
        dst.import(all[12..].to_vec()).await.unwrap();
        assert_eq!(dst.head(), src.head());
        assert_eq!(dst.verify().await.unwrap().head, src.head());
        assert!(dst.idempotency_lookup("k14").await.unwrap().is_some());
        assert_eq!(dst.stream_version(&StreamId::new("s1").unwrap()).await.unwrap(), 8);
    }
}
