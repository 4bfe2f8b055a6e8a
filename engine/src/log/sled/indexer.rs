//! The indexer: derived state in the `index` tree (stream runs, stream
//! heads, idempotency entries, the checkpoint), written in the background so
//! that the writer's commit path writes frames only.
//!
//! The writer hands the indexer what each group committed ([`Committed`]:
//! per stream the runs of versions and positions, and the keyed outcomes),
//! so a pass writes the index from memory without reading frames back.
//! Records committed before a crash were never handed over: the open
//! indexes them from the frames past the index checkpoint
//! ([`Inner::index_catch_up`]), and so does a pass that finds a gap before
//! what it was handed.

use std::collections::HashMap;
use std::sync::{mpsc as std_mpsc, Arc};
use std::time::Duration;

use super::{storage, Inner};
use crate::log::group::GroupWrite;
use crate::log::record::{index_fields, Hash};
use crate::log::LogError;
use crate::log::{AppendOutcome, Position};
use crate::time::Timestamp;

pub(super) const INDEX_CHUNK: usize = 16_384;
/// The index layout written under key `F`; any other is dropped and rebuilt.
pub(super) const INDEX_FORMAT: u8 = 2;
/// The indexer passes at most this often (sooner when `INDEX_CHUNK` events
/// wait): a longer pass sees several events of a busy stream, which then
/// share one key; reads meanwhile use the pending map. On the city bench,
/// 1 ms gained nothing over one key per event, 50 ms gave +19% throughput
/// for a higher p99, and 200 ms no more throughput and a worse p99.
pub(super) const INDEX_LINGER: Duration = Duration::from_millis(50);

/// An index pass's writes, cut into sled batches of at most `INDEX_BATCH_KEYS`.
#[derive(Default)]
pub(super) struct Batches {
    full: Vec<sled::Batch>,
    current: sled::Batch,
    keys: usize,
}

/// Keys per index batch: small enough that the writer's commit never waits
/// long behind one.
pub(super) const INDEX_BATCH_KEYS: usize = 512;

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
pub(super) fn stream_key(stream: &str, version: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(stream.len() + 10);
    k.push(b'S');
    k.extend_from_slice(stream.as_bytes());
    k.push(0);
    k.extend_from_slice(&version.to_be_bytes());
    k
}

/// Consecutive versions of one stream at consecutive positions, as one
/// append (or an import's run) commits them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct CommittedRun {
    pub(super) stream: String,
    pub(super) first_version: u64,
    pub(super) first_position: Position,
    pub(super) count: u64,
}

/// What one committed group (or import) hands the indexer: everything a
/// pass writes, so it need not read the frames back.
#[derive(Debug, Default)]
pub(super) struct Committed {
    /// The group's records as runs, in position order, covering
    /// `first_position..=last_position` without a gap.
    pub(super) runs: Vec<CommittedRun>,
    /// The group's new idempotency entries.
    pub(super) keys: Vec<(String, (Hash, AppendOutcome))>,
}

impl Committed {
    /// The runs of a written group; its keys are added by the caller.
    pub(super) fn runs_of(write: &GroupWrite) -> Vec<CommittedRun> {
        let mut runs: Vec<CommittedRun> = Vec::new();
        for c in &write.records {
            let r = &c.record;
            match runs.last_mut() {
                Some(run)
                    if run.stream == r.stream
                        && run.first_version + run.count == r.version
                        && run.first_position + run.count == r.position =>
                {
                    run.count += 1
                }
                _ => runs.push(CommittedRun {
                    stream: r.stream.clone(),
                    first_version: r.version,
                    first_position: r.position,
                    count: 1,
                }),
            }
        }
        runs
    }

    fn first_position(&self) -> Option<Position> {
        self.runs.first().map(|r| r.first_position)
    }
}

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

/// The entries one index pass writes, gathered in position order from a
/// contiguous range of records, either handed over by the writer or read
/// from frames.
#[derive(Default)]
pub(super) struct IndexPass {
    runs: HashMap<String, Vec<Run>>,
    keys: Vec<(String, (Hash, AppendOutcome))>,
    /// First and last position gathered (0 when empty).
    first: Position,
    last: Position,
}

impl IndexPass {
    fn is_empty(&self) -> bool {
        self.last == 0
    }

    /// Adds `count` consecutive versions of `stream` from `first_version`,
    /// at consecutive positions from `first_position`.
    fn add_run(&mut self, stream: &str, first_version: u64, first_position: Position, count: u64) {
        let stream_runs = match self.runs.get_mut(stream) {
            Some(r) => r,
            None => self.runs.entry(stream.to_string()).or_default(),
        };
        let positions = (first_position..first_position + count).flat_map(u64::to_be_bytes);
        match stream_runs.last_mut() {
            Some(run) if run.last_version() + 1 == first_version => run.positions.extend(positions),
            _ => stream_runs.push(Run { first_version, positions: positions.collect() }),
        }
        if self.first == 0 {
            self.first = first_position;
        }
        self.last = first_position + count - 1;
    }

    fn add_key(&mut self, key: String, entry: (Hash, AppendOutcome)) {
        self.keys.push((key, entry));
    }

    /// Adds what a group committed.
    fn absorb(&mut self, committed: Committed) {
        for run in &committed.runs {
            self.add_run(&run.stream, run.first_version, run.first_position, run.count);
        }
        self.keys.extend(committed.keys);
    }
}

impl Inner {
    pub(super) fn index_checkpoint(&self) -> Result<Position, LogError> {
        Ok(match self.index.get(b"C").map_err(storage)? {
            Some(v) => u64::from_be_bytes(v.as_ref().try_into().unwrap_or([0; 8])),
            None => 0,
        })
    }

    /// Indexes every committed record after the checkpoint from the frames,
    /// in chunks, each chunk one pass that also moves the checkpoint. The
    /// open runs this for what was committed before a crash.
    pub(super) fn index_catch_up(&self, upto: Position) -> Result<(), LogError> {
        loop {
            let from = self.index_checkpoint()? + 1;
            if from > upto {
                return Ok(());
            }
            let mut pass = IndexPass::default();
            self.scan_raw(from, INDEX_CHUNK, upto, |pos, raw, _| {
                let f = index_fields(raw, pos)?;
                if f.position != pos {
                    return Err(LogError::Corruption {
                        position: pos,
                        reason: format!("record says position {}", f.position),
                    });
                }
                pass.add_run(f.stream, f.version, pos, 1);
                if let Some(mark) = &f.idempotency {
                    let outcome = AppendOutcome {
                        first_position: pos,
                        last_position: pos + mark.count as u64 - 1,
                        last_version: f.version + mark.count as u64 - 1,
                        recorded_at: Timestamp(f.recorded_at),
                        deduplicated: false,
                    };
                    pass.add_key(mark.key.to_string(), (mark.digest, outcome));
                }
                Ok(())
            })?;
            if pass.is_empty() {
                return Ok(());
            }
            self.write_pass(pass)?;
        }
    }

    /// Writes what the writer handed over. Anything between the checkpoint
    /// and the first handed record (there is nothing in a healthy run) is
    /// indexed from the frames first, so the checkpoint never skips a record.
    fn index_handed(&self, pass: IndexPass) -> Result<(), LogError> {
        if pass.is_empty() {
            return Ok(());
        }
        let checkpoint = self.index_checkpoint()?;
        if pass.first > checkpoint + 1 {
            self.index_catch_up(pass.first - 1)?;
        } else if pass.last <= checkpoint {
            return Ok(());
        }
        self.write_pass(pass)
    }

    /// Writes one pass's entries and moves the checkpoint to its last
    /// position, then drops what it wrote from the pending map.
    fn write_pass(&self, pass: IndexPass) -> Result<(), LogError> {
        let mut batch = Batches::default();
        let mut keys = Vec::with_capacity(pass.keys.len());
        for (key, entry) in pass.keys {
            let value = postcard::to_allocvec(&entry)
                .map_err(|e| LogError::Codec(format!("idempotency entry: {e}")))?;
            let mut k = vec![b'I'];
            k.extend_from_slice(key.as_bytes());
            batch.insert(k, value);
            keys.push(key);
        }
        let mut heads: Vec<(String, u64)> = Vec::with_capacity(pass.runs.len());
        for (stream, stream_runs) in pass.runs {
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
        batch.insert(b"C", &pass.last.to_be_bytes());
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
        Ok(())
    }
}

/// Gathers what the writer hands over and writes it every [`INDEX_LINGER`]
/// (or once [`INDEX_CHUNK`] records wait).
pub(super) fn indexer_loop(inner: Arc<Inner>, handed: std_mpsc::Receiver<Committed>) {
    let mut last_pass = std::time::Instant::now();
    let mut pass = IndexPass::default();
    let mut gathered = 0u64;
    // Set after a failed pass, whose records are then indexed from the frames.
    let mut behind = false;
    loop {
        let wait = INDEX_LINGER.saturating_sub(last_pass.elapsed()).max(Duration::from_millis(1));
        let mut take = |c: Committed| {
            if let (Some(first), Some(last)) = (c.first_position(), c.runs.last()) {
                gathered += last.first_position + last.count - first;
            }
            pass.absorb(c);
        };
        let alive = match handed.recv_timeout(wait) {
            Ok(c) => {
                take(c);
                while let Ok(c) = handed.try_recv() {
                    take(c);
                }
                true
            }
            Err(std_mpsc::RecvTimeoutError::Timeout) => true,
            Err(std_mpsc::RecvTimeoutError::Disconnected) => false,
        };
        if alive && (gathered as usize) < INDEX_CHUNK && last_pass.elapsed() < INDEX_LINGER {
            continue;
        }
        last_pass = std::time::Instant::now();
        let result = if pass.is_empty() && behind {
            inner.index_catch_up(inner.committed_head().position)
        } else {
            inner.index_handed(std::mem::take(&mut pass))
        };
        gathered = 0;
        match result {
            Ok(()) => behind = false,
            Err(e) => {
                // The index is derived and the frames hold every record: the
                // next pass (or the next open) indexes the gap from them, and
                // until then reads use the pending map.
                tracing::error!(error = %e, "log indexer failed; will retry");
                behind = true;
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        if !alive {
            return;
        }
    }
}
