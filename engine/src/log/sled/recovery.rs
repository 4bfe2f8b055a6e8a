//! Opening a store: the format check, the tail frame's check, the head
//! anchor kept outside sled, and bringing the derived index up to the head.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{mpsc as std_mpsc, Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::frame::{check_frame, checked_view, frame_key, key_position, view_frame};
use super::indexer::{indexer_loop, Committed, INDEX_FORMAT};
use super::writer::writer_loop;
use super::{storage, Inner, Pending, SledLog, SledOptions};
use crate::log::record::{ChainVerifier, GENESIS_HASH, RECORD_FORMAT};
use crate::log::LogError;
use crate::log::{LogHead, Position};
use crate::time::{Clock, Timestamp};

/// How long an open waits for a file lock held by a just-dropped handle.
pub(super) const LOCK_WAIT: Duration = Duration::from_secs(3);

impl SledLog {
    /// Opens (or creates) the log at `path`, running the recovery path.
    pub fn open(
        path: impl AsRef<Path>,
        options: SledOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<SledLog, LogError> {
        let path = path.as_ref().to_path_buf();
        // sled's background threads can hold the file lock for a moment
        // after a previous handle in this process was dropped, so a lock
        // failure is retried for up to LOCK_WAIT before it is reported.
        // [recovery 1] Open sled with the page cache and segment size of the options.
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
                    return Err(LogError::Storage(format!(
                        "the store at {} is in use by another process; stop it first",
                        path.display()
                    )));
                }
                Err(other) => {
                    return Err(LogError::Storage(format!(
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

        // [recovery 2] Refuse a store written by a newer build.
        match meta.get(b"format").map_err(storage)? {
            Some(v) => {
                let found = v.first().copied().unwrap_or(0);
                if found > RECORD_FORMAT {
                    return Err(LogError::NewerFormat {
                        found: found as u32,
                        supported: RECORD_FORMAT as u32,
                    });
                }
            }
            None => {
                meta.insert(b"format", &[RECORD_FORMAT]).map_err(storage)?;
            }
        }

        // [recovery 3] Find and check the tail frame; it gives the chain head and the clock floor.
        let (head, last_recorded) = Self::recover_tail(&frames)?;

        // [recovery 4] Compare with the anchor kept outside sled: sled takes a corrupt
        // record for a torn tail and silently drops it and everything after
        // it, so only a head recorded elsewhere can tell truncation from a
        // clean end.
        check_anchor(&path, &frames, head)?;

        let (head_tx, _) = watch::channel(head.position);
        let data_file = open_data_file(&path)?;
        let inner = Arc::new(Inner {
            db,
            data_file,
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

        // [recovery 5] and [recovery 6]: bring the derived index up to the
        // head (cleared first if it claims more or has another layout), then
        // load stream heads from it.
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
        *inner.heads.write().map_err(|_| LogError::Internal("heads lock poisoned".into()))? = heads;

        // [recovery 7] Start the writer and the indexer.
        let (tx, rx) = mpsc::channel(options.queue_depth);
        // The writer hands each committed group to the indexer over this.
        let (handoff_tx, handoff_rx) = std_mpsc::channel::<Committed>();
        let w_inner = inner.clone();
        let writer = std::thread::Builder::new()
            .name("gridcase-log-writer".into())
            .spawn(move || writer_loop(w_inner, rx, handoff_tx, clock, head, last_recorded))
            .map_err(|e| LogError::Internal(format!("cannot start the writer thread: {e}")))?;
        let i_inner = inner.clone();
        let indexer = std::thread::Builder::new()
            .name("gridcase-log-indexer".into())
            .spawn(move || indexer_loop(i_inner, handoff_rx))
            .map_err(|e| LogError::Internal(format!("cannot start the indexer thread: {e}")))?;
        Ok(SledLog { inner, tx: Some(tx), writer: Some(writer), indexer: Some(indexer) })
    }

    fn recover_tail(frames: &sled::Tree) -> Result<(LogHead, Timestamp), LogError> {
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
        let last_at = check_frame(first, &v, &mut verifier)?;
        Ok((LogHead { position: verifier.head_position(), hash: verifier.head_hash() }, last_at))
    }
}

/// File beside sled's own, holding a durable head: `position hash-hex`.
pub(super) const ANCHOR_FILE: &str = "gridcase-anchor";
/// How often the writer refreshes the anchor (and, in `Buffered` mode, flushes for it).
pub(super) const ANCHOR_EVERY: Duration = Duration::from_secs(1);

pub(super) fn write_anchor(dir: &Path, head: LogHead) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = dir.join(format!("{ANCHOR_FILE}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    writeln!(f, "{} {}", head.position, crate::log::hex(&head.hash))?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(ANCHOR_FILE))?;
    std::fs::File::open(dir)?.sync_all()
}

pub(super) fn check_anchor(dir: &Path, frames: &sled::Tree, head: LogHead) -> Result<(), LogError> {
    let text = match std::fs::read_to_string(dir.join(ANCHOR_FILE)) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(LogError::Storage(format!("cannot read the head anchor: {e}"))),
    };
    let mut parts = text.split_whitespace();
    let position: Position = parts.next().and_then(|p| p.parse().ok()).ok_or_else(|| {
        LogError::Corruption { position: 0, reason: "the head anchor file is unreadable".into() }
    })?;
    let hash = parts.next().unwrap_or("");
    if position > head.position {
        return Err(LogError::Corruption {
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
        .ok_or_else(|| LogError::Corruption {
            position,
            reason: "the anchored record is missing".into(),
        })?
        .map_err(storage)?;
    let first = key_position(&k)?;
    let view = view_frame(first, &v)?;
    let i = (position - first) as usize;
    let (Some(raw), Some(check)) = (view.records.get(i), view.checks.get(i)) else {
        return Err(LogError::Corruption {
            position,
            reason: "the anchored record is missing".into(),
        });
    };
    let rec = checked_view(position, raw, check)?;
    if crate::log::hex(&rec.hash) != hash {
        return Err(LogError::Corruption {
            position,
            reason: "the record differs from the one anchored".into(),
        });
    }
    Ok(())
}

/// The file sled 0.34 writes its log and pages to. It exists once sled has
/// opened the store; the directory is synced once here so that the file's
/// own entry is durable before the first group relies on `fdatasync` of it.
fn open_data_file(dir: &Path) -> Result<std::fs::File, LogError> {
    let path = dir.join(SLED_DATA_FILE);
    let file = std::fs::File::open(&path).map_err(|e| {
        LogError::Storage(format!("cannot open sled's data file {}: {e}", path.display()))
    })?;
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| {
        LogError::Storage(format!("cannot sync the store directory {}: {e}", dir.display()))
    })?;
    Ok(file)
}

/// The name of sled 0.34's data file inside a store's directory.
const SLED_DATA_FILE: &str = "db";
