//! Tamper detection on the sled backend: bytes changed behind the log's back,
//! through the `tamper_for_test` hook and by editing sled's files on disk,
//! must be reported by `verify()` (or at open) at the exact position.

use std::path::{Path, PathBuf};

use gridcase::engine::log::LogError;
use gridcase::engine::log::{EventLog, ExpectedVersion, SledOptions};

use super::backend::{open_sled, runtime};
use super::support::{event, request, sid};

fn expect_corruption_at(result: Result<impl std::fmt::Debug, LogError>, position: u64, what: &str) {
    match result {
        Err(LogError::Corruption { position: p, reason }) => {
            assert_eq!(p, position, "{what}: corruption reported at the wrong position ({reason})")
        }
        other => panic!("{what}: expected corruption at {position}, got {other:?}"),
    }
}

/// Every tampered position is named exactly, with several records per frame
/// (the default options pack a whole group commit into one frame).
#[test]
fn hook_tamper_is_reported_at_its_position() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let log = open_sled(dir.path(), &SledOptions::default()).unwrap();
        log.append(request("s", ExpectedVersion::Any, "one-frame", 600)).await.unwrap();
        for i in 0..20 {
            log.append(request("t", ExpectedVersion::Any, &format!("{i}"), 3)).await.unwrap();
        }
        let head = log.head().position;
        assert_eq!(head, 660);
        for position in [1, 2, 255, 256, 257, 300, 599, 600, 601, 633, head] {
            for byte in [0, 1, 2, 10, 40, 80, 10_000] {
                log.tamper_for_test(position, byte).unwrap();
                expect_corruption_at(log.verify().await, position, &format!("byte {byte}"));
                log.tamper_for_test(position, byte).unwrap();
            }
        }
        assert_eq!(log.verify().await.unwrap().events, head);
    });
}

/// A tampered record in the middle does not stop the store from opening (open
/// checks only the tail frame) but verify still names it after a restart, and
/// later appends do not hide it. A tampered tail record refuses the open.
#[test]
fn tamper_survives_restart_and_a_bad_tail_refuses_open() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let log = open_sled(dir.path(), &SledOptions::default()).unwrap();
        for i in 0..10 {
            log.append(request("s", ExpectedVersion::Any, &format!("{i}"), 5)).await.unwrap();
        }
        log.tamper_for_test(17, 30).unwrap();
        drop(log);
        let log = open_sled(dir.path(), &SledOptions::default()).unwrap();
        expect_corruption_at(log.verify().await, 17, "after restart");
        log.append(request("s", ExpectedVersion::Exact(50), "more", 5)).await.unwrap();
        expect_corruption_at(log.verify().await, 17, "after more appends");
        log.tamper_for_test(17, 30).unwrap();
        assert_eq!(log.verify().await.unwrap().events, 55);

        log.tamper_for_test(55, 30).unwrap();
        drop(log);
        expect_corruption_at(
            open_sled(dir.path(), &SledOptions::default()).map(|_| ()),
            55,
            "open of a store whose tail was tampered",
        );
    });
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Flips one byte inside every occurrence of `marker` in the files under
/// `dir`; returns how many occurrences there were.
fn flip_on_disk(dir: &Path, marker: &[u8], offset: usize) -> usize {
    let mut flipped = 0;
    for path in files_under(dir) {
        let mut bytes = std::fs::read(&path).unwrap();
        let hits: Vec<usize> = bytes
            .windows(marker.len())
            .enumerate()
            .filter(|(_, w)| *w == marker)
            .map(|(i, _)| i)
            .collect();
        for at in &hits {
            bytes[at + offset] ^= 0x01;
        }
        if !hits.is_empty() {
            eprintln!("{}: flipped {} occurrence(s)", path.display(), hits.len());
            std::fs::write(&path, &bytes).unwrap();
            flipped += hits.len();
        }
    }
    flipped
}

/// Edits the store's files directly: finds the bytes of one event (by a
/// unique payload marker) in sled's data file(s), flips one byte of every
/// copy, reopens. The change must not go unnoticed: either `verify` names
/// the tampered position, or sled/the log refuses to open or read the store.
///
/// Regression: sled 0.34 checks a CRC per log message and, on recovery,
/// takes the first bad one for the torn end of its log: it opens the store
/// cut short just before the tampered record, dropping it and every
/// acknowledged record after it, so `verify` alone would pass on the shorter
/// chain (seen: 80 of 162 events left). The head anchor kept outside sled
/// (`gridcase-anchor`) makes the open refuse such a store.
#[test]
fn on_disk_tamper_is_detected() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let marker = b"@@TAMPER-TARGET-7f3a9c61@@";
        let target = {
            let log = open_sled(dir.path(), &SledOptions::default()).unwrap();
            for i in 0..40 {
                log.append(request(
                    &format!("s{}", i % 3),
                    ExpectedVersion::Any,
                    &format!("{i}"),
                    2,
                ))
                .await
                .unwrap();
            }
            let mut r = request("victim", ExpectedVersion::Any, "v", 1);
            r.events.push(event(marker.to_vec()));
            let o = log.append(r).await.unwrap().outcome;
            for i in 0..40 {
                log.append(request(
                    &format!("s{}", i % 3),
                    ExpectedVersion::Any,
                    &format!("{i}"),
                    2,
                ))
                .await
                .unwrap();
            }
            log.verify().await.unwrap();
            o.last_position
        };
        let head = 2 * 40 + 2 + 2 * 40;
        let flipped = flip_on_disk(dir.path(), marker, 12);
        assert!(flipped > 0, "the event's bytes were not found in the store's files");

        match open_sled(dir.path(), &SledOptions::default()) {
            Err(e) => {
                eprintln!("outcome: open refused the tampered store: {e}");
                assert!(matches!(e, LogError::Corruption { .. }), "{e}");
            }
            Ok(log) => {
                match log.verify().await {
                    Err(LogError::Corruption { position, reason }) => {
                        eprintln!("outcome: verify reported corruption at {position}: {reason}");
                        assert_eq!(position, target);
                    }
                    Err(e) => eprintln!("outcome: verify failed with a storage error: {e}"),
                    Ok(report) => panic!(
                        "tampering went unnoticed: verify passed with {} of {head} events",
                        report.events
                    ),
                }
                let events = log.read_stream(&sid("victim"), 1, 10).await;
                eprintln!("reading the tampered stream: {events:?}");
            }
        }
    });
}
