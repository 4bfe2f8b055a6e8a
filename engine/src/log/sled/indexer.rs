//! The indexer: derived state in the `index` tree (stream runs, stream
//! heads, idempotency entries, the checkpoint), written in the background so
//! that the writer's commit path writes frames only.

use std::collections::HashMap;
use std::sync::{mpsc as std_mpsc, Arc};
use std::time::Duration;

use super::{storage, Inner};
use crate::log::record::index_fields;
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

impl Inner {
    pub(super) fn index_checkpoint(&self) -> Result<Position, LogError> {
        Ok(match self.index.get(b"C").map_err(storage)? {
            Some(v) => u64::from_be_bytes(v.as_ref().try_into().unwrap_or([0; 8])),
            None => 0,
        })
    }

    /// Indexes every committed record after the checkpoint, in chunks, each
    /// chunk one atomic batch that also moves the checkpoint.
    pub(super) fn index_catch_up(&self, upto: Position) -> Result<(), LogError> {
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
                    return Err(LogError::Corruption {
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
                        .map_err(|e| LogError::Codec(format!("idempotency entry: {e}")))?;
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
}

pub(super) fn indexer_loop(inner: Arc<Inner>, notify: std_mpsc::Receiver<()>) {
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
