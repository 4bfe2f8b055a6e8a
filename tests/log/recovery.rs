//! The sled backend's recovery path, driven by editing the store with sled
//! directly between runs: a newer record format is refused, and the derived
//! index (tree `index`) is rebuilt from `frames` when it is missing or claims
//! more than the log holds, with stream heads and idempotency intact.

use std::collections::HashMap;
use std::path::Path;

use gridcase::engine::log::LogError;
use gridcase::engine::log::{
    EventLog, ExpectedVersion, RecordedEvent, SledLog, SledOptions, StreamId, RECORD_FORMAT,
};

use super::backend::{open_sled, retry_while_locked, runtime, sole_owner};
use super::support::{check_structure, read_everything, request, sid};

/// Opens the store's sled database as `SledLog` configures it (the segment
/// size is persisted and must match).
fn raw_sled(path: &Path) -> sled::Db {
    let config = sled::Config::new().path(path).segment_size(4 * 1024 * 1024);
    let locked = |e: &sled::Error| matches!(e, sled::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock);
    retry_while_locked(|| config.open(), locked).expect("open sled directly")
}

async fn fill(log: &SledLog) {
    for i in 0..30 {
        let mut r = request(&format!("case-{}", i % 4), ExpectedVersion::Any, &format!("{i}"), 3);
        r.idempotency_key = Some(format!("key-{i}"));
        log.append(r).await.unwrap();
    }
}

#[test]
fn newer_format_is_refused_on_open() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let log = open_sled(dir.path(), &SledOptions::default()).unwrap();
        fill(&log).await;
        drop(log);
        {
            let db = raw_sled(dir.path());
            let meta = db.open_tree("meta").unwrap();
            assert_eq!(meta.get(b"format").unwrap().as_deref(), Some(&[RECORD_FORMAT][..]));
            meta.insert(b"format", &[RECORD_FORMAT + 1]).unwrap();
            db.flush().unwrap();
        }
        match open_sled(dir.path(), &SledOptions::default()) {
            Err(LogError::NewerFormat { found, supported }) => {
                assert_eq!((found, supported), (RECORD_FORMAT as u32 + 1, RECORD_FORMAT as u32));
            }
            Err(other) => panic!("expected NewerFormat, got {other}"),
            Ok(_) => panic!("a store of a newer format was opened"),
        }
        // The refusal wrote nothing: putting the format back makes it usable again.
        {
            let db = raw_sled(dir.path());
            db.open_tree("meta").unwrap().insert(b"format", &[RECORD_FORMAT]).unwrap();
            db.flush().unwrap();
        }
        let log = open_sled(dir.path(), &SledOptions::default()).unwrap();
        assert_eq!(log.verify().await.unwrap().events, 90);
    });
}

/// Reopens after `edit` changed the raw index, then checks the log answers
/// as before: heads, stream reads, and retried keys deduplicated.
async fn reopen_after_index_edit(edit: impl FnOnce(&sled::Tree, &[RecordedEvent])) {
    let dir = tempfile::tempdir().unwrap();
    let log = open_sled(dir.path(), &SledOptions::default()).unwrap();
    fill(&log).await;
    let head = log.head();
    let before = read_everything(&log, 1000).await;
    drop(sole_owner(std::sync::Arc::new(log)));
    {
        let db = raw_sled(dir.path());
        edit(&db.open_tree("index").unwrap(), &before);
        db.flush().unwrap();
    }
    let log = open_sled(dir.path(), &SledOptions::default()).unwrap();
    assert_eq!(log.head(), head);
    assert_eq!(log.indexed_upto().unwrap(), head.position, "index rebuilt on open");
    for i in 0..4 {
        let s: StreamId = sid(&format!("case-{i}"));
        let want: Vec<_> = before.iter().filter(|e| e.stream == s.as_str()).cloned().collect();
        assert_eq!(log.stream_version(&s).await.unwrap(), want.len() as u64);
        assert_eq!(log.read_stream(&s, 1, 1000).await.unwrap(), want);
    }
    for i in 0..30 {
        let mut r = request(&format!("case-{}", i % 4), ExpectedVersion::Any, &format!("{i}"), 3);
        r.idempotency_key = Some(format!("key-{i}"));
        let o = log.append(r).await.unwrap().outcome;
        assert!(o.deduplicated && o.first_position == 1 + 3 * i as u64, "key-{i}: {o:?}");
    }
    let all = read_everything(&log, 1000).await;
    assert_eq!(all, before);
    check_structure(&log, &all);
}

#[test]
fn missing_index_is_rebuilt() {
    runtime().block_on(reopen_after_index_edit(|index, _| index.clear().unwrap()));
}

#[test]
fn index_claiming_too_much_is_rebuilt() {
    runtime().block_on(reopen_after_index_edit(|index, _| {
        // Wrong heads and a checkpoint past the head: must all be discarded.
        index.insert(b"C", &10_000u64.to_be_bytes()).unwrap();
        index.insert(b"Hcase-0", &500u64.to_be_bytes()).unwrap();
    }));
}

#[test]
fn index_of_another_layout_is_rebuilt() {
    runtime().block_on(reopen_after_index_edit(|index, _| {
        // An index from the one-key-per-event layout (or a future one):
        // its entries must not be read as runs.
        index.insert(b"F", &[1u8]).unwrap();
        let mut k = b"Scase-0\0".to_vec();
        k.extend_from_slice(&1u64.to_be_bytes());
        index.insert(k, &999u64.to_be_bytes()).unwrap();
    }));
}

#[test]
fn index_behind_its_own_entries_catches_up() {
    runtime().block_on(reopen_after_index_edit(|index, _| {
        // A crash between an index pass's batches: entries past the
        // checkpoint stay, and the next pass writes runs that overlap them.
        index.insert(b"C", &40u64.to_be_bytes()).unwrap();
    }));
}

#[test]
fn partially_indexed_store_catches_up() {
    runtime().block_on(reopen_after_index_edit(|index, events| {
        // Roll the index back to what it held at position 40, as if the
        // indexer had lagged behind the frames at a crash.
        // `S` values are runs of positions: keep each run's prefix at or
        // before `keep`, and drop runs that start after it.
        let keep = 40u64;
        let mut edits = Vec::new();
        for item in index.iter() {
            let (k, v) = item.unwrap();
            if k[0] != b'S' {
                continue;
            }
            let kept: Vec<u8> = v
                .chunks_exact(8)
                .take_while(|p| u64::from_be_bytes((*p).try_into().unwrap()) <= keep)
                .flatten()
                .copied()
                .collect();
            if kept.len() < v.len() {
                edits.push((k, kept));
            }
        }
        assert!(!edits.is_empty());
        for (k, kept) in edits {
            if kept.is_empty() {
                index.remove(k).unwrap();
            } else {
                index.insert(k, kept).unwrap();
            }
        }
        let mut heads: HashMap<&str, u64> = HashMap::new();
        for ev in events {
            let head_key = [b"H", ev.stream.as_bytes()].concat();
            if ev.position <= keep {
                heads.insert(&ev.stream, ev.version);
            } else if !heads.contains_key(ev.stream.as_str()) {
                index.remove(head_key).unwrap();
            }
            if let (Some(mark), true) = (&ev.idempotency, ev.position > keep) {
                index.remove([b"I", mark.key.as_bytes()].concat()).unwrap();
            }
        }
        for (stream, version) in heads {
            index.insert([b"H", stream.as_bytes()].concat(), &version.to_be_bytes()).unwrap();
        }
        index.insert(b"C", &keep.to_be_bytes()).unwrap();
    }));
}

#[test]
fn a_store_in_use_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let _first = SledLog::open(
        dir.path(),
        SledOptions::default(),
        std::sync::Arc::new(gridcase::engine::time::SystemClock),
    )
    .unwrap();
    let second = SledLog::open(
        dir.path(),
        SledOptions::default(),
        std::sync::Arc::new(gridcase::engine::time::SystemClock),
    );
    match second {
        Err(LogError::Storage(m)) => assert!(m.contains("in use by another process"), "{m}"),
        Err(other) => panic!("expected a storage error, got {other}"),
        Ok(_) => panic!("a store was opened twice"),
    }
}
