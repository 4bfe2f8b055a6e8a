//! The `EventLog` conformance suite: the storage contract of `log/mod.rs`
//! checked through the trait alone, once per backend of `backend::backends()`.

use std::sync::Arc;

use futures::StreamExt;
use gridcase::engine::log::LogError;
use gridcase::engine::log::{read_all_stream, request_digest, ExpectedVersion, GENESIS_HASH};

use super::backend::{run_all, Backend};
use super::support::{
    assert_consecutive, check_structure, collect_subscription, read_everything, request, sid,
};

/// Declares one `#[test]` per suite function, each run for every backend.
macro_rules! conformance_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                run_all(suite::$name);
            }
        )*
    };
}

conformance_tests!(
    positions_and_versions,
    conflicts_write_nothing,
    batches_are_atomic,
    invalid_requests_write_nothing,
    idempotent_retries,
    reads_filter_and_page,
    visiting_read_agrees_with_read_all,
    subscription_hands_over_from_catch_up_to_live,
    read_all_stream_stops_at_the_head,
    restart_rebuilds_heads_and_idempotency,
    tamper_is_found_at_its_position,
    reads_refuse_a_tampered_record,
    checkpoints_are_kept_apart_from_events,
);

mod suite {
    use super::*;

    pub async fn positions_and_versions(backend: Arc<dyn Backend>) {
        let store = backend.create().await;
        let log = store.log();
        assert_eq!(log.head().position, 0);
        assert_eq!(log.head().hash, GENESIS_HASH);
        assert!(log.read_all(1, 10).await.unwrap().is_empty());

        let a = log
            .append(request("case-a", ExpectedVersion::NoStream, "a1", 3))
            .await
            .unwrap()
            .outcome;
        assert_eq!((a.first_position, a.last_position, a.last_version), (1, 3, 3));
        assert!(!a.deduplicated);
        let b = log.append(request("case-b", ExpectedVersion::Any, "b1", 2)).await.unwrap().outcome;
        assert_eq!((b.first_position, b.last_position, b.last_version), (4, 5, 2));
        let a2 = log
            .append(request("case-a", ExpectedVersion::Exact(3), "a2", 1))
            .await
            .unwrap()
            .outcome;
        assert_eq!((a2.first_position, a2.last_position, a2.last_version), (6, 6, 4));
        assert!(a2.recorded_at >= b.recorded_at && b.recorded_at >= a.recorded_at);

        assert_eq!(log.stream_version(&sid("case-a")).await.unwrap(), 4);
        assert_eq!(log.stream_version(&sid("case-b")).await.unwrap(), 2);
        assert_eq!(log.stream_version(&sid("case-c")).await.unwrap(), 0);
        assert_eq!(log.streams_with_prefix("case-").await.unwrap(), vec!["case-a", "case-b"]);
        assert_eq!(log.streams_with_prefix("case-b").await.unwrap(), vec!["case-b"]);
        assert!(log.streams_with_prefix("org").await.unwrap().is_empty());

        let all = read_everything(log.as_ref(), 4).await;
        check_structure(log.as_ref(), &all);
        let summary: Vec<(&str, u64, &[u8])> =
            all.iter().map(|e| (e.stream.as_str(), e.version, e.payload.as_slice())).collect();
        assert_eq!(
            summary,
            vec![
                ("case-a", 1, &b"a1/0"[..]),
                ("case-a", 2, b"a1/1"),
                ("case-a", 3, b"a1/2"),
                ("case-b", 1, b"b1/0"),
                ("case-b", 2, b"b1/1"),
                ("case-a", 4, b"a2/0"),
            ]
        );
        assert!(all.iter().all(|e| e.actor == "tester" && e.event_type == "T"));
        assert_eq!(all[0].recorded_at, a.recorded_at);
        assert_eq!(all[5].recorded_at, a2.recorded_at);
        let report = log.verify().await.unwrap();
        assert_eq!(report.events, 6);
        assert_eq!(report.head, log.head());
    }

    pub async fn conflicts_write_nothing(backend: Arc<dyn Backend>) {
        let store = backend.create().await;
        let log = store.log();
        log.append(request("s", ExpectedVersion::NoStream, "first", 2)).await.unwrap();
        let head = log.head();
        let cases = [
            (ExpectedVersion::NoStream, 2),
            (ExpectedVersion::Exact(1), 2),
            (ExpectedVersion::Exact(3), 2),
            (ExpectedVersion::Exact(0), 2),
        ];
        for (expected, actual) in cases {
            match log.append(request("s", expected, "bad", 3)).await {
                Err(LogError::Conflict { stream, expected: e, actual: a }) => {
                    assert_eq!((stream.as_str(), e, a), ("s", expected, actual));
                }
                other => panic!("expected a conflict for {expected:?}, got {other:?}"),
            }
            assert_eq!(log.head(), head, "a conflict moved the head");
        }
        // A missing stream conflicts with any exact version but 0.
        assert!(matches!(
            log.append(request("t", ExpectedVersion::Exact(1), "bad", 1)).await,
            Err(LogError::Conflict { actual: 0, .. })
        ));
        assert_eq!(log.stream_version(&sid("t")).await.unwrap(), 0);
        assert!(log.streams_with_prefix("t").await.unwrap().is_empty());
        let ok = log.append(request("t", ExpectedVersion::Exact(0), "t", 1)).await.unwrap().outcome;
        assert_eq!((ok.first_position, ok.last_version), (3, 1));
        let all = read_everything(log.as_ref(), 100).await;
        check_structure(log.as_ref(), &all);
        assert_eq!(all.len(), 3);
        assert!(all.iter().all(|e| !e.payload.starts_with(b"bad")));
    }

    pub async fn batches_are_atomic(backend: Arc<dyn Backend>) {
        let store = backend.create().await;
        let log = store.log();
        log.append(request("x", ExpectedVersion::Any, "x", 1)).await.unwrap();
        let big = log
            .append(request("big", ExpectedVersion::NoStream, "big", 700))
            .await
            .unwrap()
            .outcome;
        assert_eq!((big.first_position, big.last_position, big.last_version), (2, 701, 700));
        // A conflicting batch (larger than any frame) leaves no trace.
        let err = log.append(request("big", ExpectedVersion::Exact(699), "lost", 600)).await;
        assert!(matches!(err, Err(LogError::Conflict { actual: 700, .. })), "{err:?}");
        log.append(request("x", ExpectedVersion::Exact(1), "x2", 5)).await.unwrap();
        let all = read_everything(log.as_ref(), 97).await;
        check_structure(log.as_ref(), &all);
        assert_eq!(all.len(), 706);
        assert!(all.iter().all(|e| !e.payload.starts_with(b"lost")));
        let big_events = log.read_stream(&sid("big"), 1, 10_000).await.unwrap();
        assert_eq!(big_events.len(), 700);
        assert_consecutive(big_events.iter().map(|e| e.position), 2);
        for (i, e) in big_events.iter().enumerate() {
            assert_eq!(e.payload, format!("big/{i}").into_bytes());
            assert_eq!(e.recorded_at, big.recorded_at, "one batch, one timestamp");
        }
    }

    pub async fn invalid_requests_write_nothing(backend: Arc<dyn Backend>) {
        let store = backend.create().await;
        let log = store.log();
        log.append(request("s", ExpectedVersion::Any, "ok", 1)).await.unwrap();
        let empty = request("s", ExpectedVersion::Any, "none", 0);
        assert!(matches!(log.append(empty).await, Err(LogError::InvalidInput(_))));
        assert_eq!(log.head().position, 1);
        assert!(StreamId::new("").is_err());
        assert!(StreamId::new("a\0b").is_err());
        assert!(StreamId::new("x".repeat(201)).is_err());
        assert!(StreamId::new("x".repeat(200)).is_ok());
        log.verify().await.unwrap();
    }

    use gridcase::engine::log::StreamId;

    pub async fn idempotent_retries(backend: Arc<dyn Backend>) {
        let mut store = backend.create().await;
        let log = store.log();
        let mut keyed = request("s", ExpectedVersion::NoStream, "keyed", 3);
        keyed.idempotency_key = Some("key-1".into());
        let first_append = log.append(keyed.clone()).await.unwrap();
        let first = first_append.outcome;
        assert!(!first.deduplicated);
        let again_append = log.append(keyed.clone()).await.unwrap();
        let again = again_append.outcome;
        assert!(again.deduplicated);
        // Both answer with the records as stored: the append with what it
        // wrote, the retry with the first call's records.
        let stored = log.read_all(1, 10).await.unwrap();
        assert_eq!(first_append.records, stored);
        assert_eq!(again_append.records, stored);
        assert_eq!(again, gridcase::engine::log::AppendOutcome { deduplicated: true, ..first });
        assert_eq!(log.head().position, 3);

        // The key is marked on the first event only, with the request's digest.
        let events = log.read_all(1, 10).await.unwrap();
        let mark = events[0].idempotency.clone().expect("first event carries the key");
        assert_eq!((mark.key.as_str(), mark.count), ("key-1", 3));
        assert_eq!(mark.digest, request_digest(&keyed));
        assert!(events[1..].iter().all(|e| e.idempotency.is_none()));

        // Other traffic in between does not change the retried outcome.
        log.append(request("s", ExpectedVersion::Exact(3), "other", 2)).await.unwrap();
        let head = log.head();
        assert_eq!(log.append(keyed.clone()).await.unwrap(), again_append);

        // Same key, different content: refused, nothing written.
        let mut variants = Vec::new();
        let mut v = request("s", ExpectedVersion::NoStream, "different", 3);
        v.idempotency_key = Some("key-1".into());
        variants.push(v);
        let mut v = request("s2", ExpectedVersion::NoStream, "keyed", 3);
        v.idempotency_key = Some("key-1".into());
        variants.push(v);
        let mut v = request("s", ExpectedVersion::Any, "keyed", 3);
        v.idempotency_key = Some("key-1".into());
        variants.push(v);
        let mut v = request("s", ExpectedVersion::NoStream, "keyed", 2);
        v.idempotency_key = Some("key-1".into());
        variants.push(v);
        let mut v = keyed.clone();
        v.actor = "someone-else".into();
        variants.push(v);
        for v in variants {
            match log.append(v.clone()).await {
                Err(LogError::IdempotencyMismatch { key }) => assert_eq!(key, "key-1"),
                other => panic!("expected a mismatch for {v:?}, got {other:?}"),
            }
            assert_eq!(log.head(), head);
        }

        // A keyed request that conflicted did not use up its key.
        let mut conflicting = request("s", ExpectedVersion::Exact(1), "late", 1);
        conflicting.idempotency_key = Some("key-2".into());
        assert!(matches!(log.append(conflicting).await, Err(LogError::Conflict { .. })));
        let mut fixed = request("s", ExpectedVersion::Exact(5), "late", 1);
        fixed.idempotency_key = Some("key-2".into());
        let fresh = log.append(fixed.clone()).await.unwrap().outcome;
        assert!(!fresh.deduplicated);
        assert_eq!((fresh.first_position, fresh.last_version), (6, 6));

        // The keys survive a restart.
        drop(log);
        store.reopen().await;
        let log = store.log();
        assert_eq!(log.append(keyed.clone()).await.unwrap(), again_append);
        assert_eq!(
            log.append(fixed).await.unwrap().outcome,
            gridcase::engine::log::AppendOutcome { deduplicated: true, ..fresh }
        );
        let mut v = keyed.clone();
        v.events.pop();
        assert!(matches!(log.append(v).await, Err(LogError::IdempotencyMismatch { .. })));
        assert_eq!(log.head().position, 6);
        let all = read_everything(log.as_ref(), 100).await;
        check_structure(log.as_ref(), &all);
    }

    pub async fn reads_filter_and_page(backend: Arc<dyn Backend>) {
        let store = backend.create().await;
        let log = store.log();
        for i in 0..10 {
            log.append(request("a", ExpectedVersion::Any, &format!("a{i}"), 2)).await.unwrap();
            log.append(request("b", ExpectedVersion::Any, &format!("b{i}"), 1)).await.unwrap();
        }
        assert_eq!(log.head().position, 30);
        let a = sid("a");
        let page = log.read_stream(&a, 5, 4).await.unwrap();
        assert_eq!(page.iter().map(|e| e.version).collect::<Vec<_>>(), vec![5, 6, 7, 8]);
        assert!(page.iter().all(|e| e.stream == "a"));
        let from_zero = log.read_stream(&a, 0, 3).await.unwrap();
        assert_eq!(from_zero.iter().map(|e| e.version).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert!(log.read_stream(&a, 21, 10).await.unwrap().is_empty());
        assert!(log.read_stream(&a, 1, 0).await.unwrap().is_empty());
        assert!(log.read_stream(&sid("nope"), 1, 10).await.unwrap().is_empty());
        let tail = log.read_stream(&a, 19, 100).await.unwrap();
        assert_eq!(tail.iter().map(|e| e.position).collect::<Vec<_>>(), vec![28, 29]);

        let mid = log.read_all(11, 5).await.unwrap();
        assert_consecutive(mid.iter().map(|e| e.position), 11);
        assert_eq!(mid.len(), 5);
        assert_eq!(log.read_all(0, 1).await.unwrap()[0].position, 1);
        assert_eq!(log.read_all(29, 100).await.unwrap().len(), 2);
        assert!(log.read_all(31, 100).await.unwrap().is_empty());
        assert!(log.read_all(1, 0).await.unwrap().is_empty());
        // Stream reads and the global read agree.
        let all = read_everything(log.as_ref(), 7).await;
        check_structure(log.as_ref(), &all);
        let b_all = log.read_stream(&sid("b"), 1, 100).await.unwrap();
        let b_from_all: Vec<_> = all.iter().filter(|e| e.stream == "b").cloned().collect();
        assert_eq!(b_all, b_from_all);
    }

    /// `read_all_with` hands the same records as `read_all`, for any start
    /// and limit, and stops at the first error its visitor returns.
    pub async fn visiting_read_agrees_with_read_all(backend: Arc<dyn Backend>) {
        let store = backend.create().await;
        let log = store.log();
        for i in 0..12 {
            log.append(request("a", ExpectedVersion::Any, &format!("a{i}"), 1 + i % 3))
                .await
                .unwrap();
        }
        let head = log.head().position;
        for (from, limit) in [(0, 5), (1, 100), (2, 1), (7, 9), (head, 3), (head + 1, 3), (3, 0)] {
            let want = log.read_all(from, limit).await.unwrap();
            let mut got = Vec::new();
            let n = log
                .read_all_with(from, limit, &mut |v| {
                    got.push(v.to_owned());
                    Ok(())
                })
                .await
                .unwrap();
            assert_eq!((n, &got), (want.len(), &want), "from {from}, limit {limit}");
        }
        let mut seen = 0;
        let stopped = log
            .read_all_with(1, 100, &mut |_| {
                seen += 1;
                if seen == 3 {
                    return Err(LogError::InvalidInput("enough".into()));
                }
                Ok(())
            })
            .await;
        assert!(matches!(stopped, Err(LogError::InvalidInput(_))), "{stopped:?}");
        assert_eq!(seen, 3);
    }

    pub async fn subscription_hands_over_from_catch_up_to_live(backend: Arc<dyn Backend>) {
        let store = backend.create().await;
        let log = store.log();
        for i in 0..25 {
            log.append(request("pre", ExpectedVersion::Any, &format!("p{i}"), 2)).await.unwrap();
        }
        let target = 50 + 8 * 20 * 3;
        let subscribers: Vec<_> = [1, 20, 50, 51]
            .into_iter()
            .map(|from| {
                let log = log.clone();
                tokio::spawn(async move { (from, collect_subscription(log, from, target).await) })
            })
            .collect();
        let writers: Vec<_> = (0..8)
            .map(|w| {
                let log = log.clone();
                tokio::spawn(async move {
                    for i in 0..20 {
                        let tag = format!("w{w}-{i}");
                        log.append(request(&format!("live-{w}"), ExpectedVersion::Any, &tag, 3))
                            .await
                            .unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.await.unwrap();
        }
        assert_eq!(log.head().position, target);
        let all = read_everything(log.as_ref(), 1000).await;
        check_structure(log.as_ref(), &all);
        for s in subscribers {
            let (from, got) = s.await.unwrap();
            assert_consecutive(got.iter().map(|e| e.position), from);
            assert_eq!(got.last().map(|e| e.position), Some(target));
            assert_eq!(got.as_slice(), &all[(from - 1) as usize..], "subscription from {from}");
        }
    }

    pub async fn read_all_stream_stops_at_the_head(backend: Arc<dyn Backend>) {
        let store = backend.create().await;
        let log = store.log();
        log.append(request("s", ExpectedVersion::Any, "s", 2500)).await.unwrap();
        let stream = read_all_stream(log.clone(), 7);
        log.append(request("s", ExpectedVersion::Any, "after", 3)).await.unwrap();
        let got: Vec<_> = stream.map(|r| r.unwrap().position).collect().await;
        assert_eq!(got.len(), 2494, "the stream ends at the head it started with");
        assert_consecutive(got, 7);
    }

    pub async fn restart_rebuilds_heads_and_idempotency(backend: Arc<dyn Backend>) {
        let mut store = backend.create().await;
        let log = store.log();
        let mut keyed = Vec::new();
        for i in 0..40 {
            let mut r =
                request(&format!("case-{}", i % 7), ExpectedVersion::Any, &format!("{i}"), 3);
            if i % 3 == 0 {
                r.idempotency_key = Some(format!("k{i}"));
            }
            let o = log.append(r.clone()).await.unwrap().outcome;
            if r.idempotency_key.is_some() {
                keyed.push((r, o));
            }
        }
        let head = log.head();
        let before = read_everything(log.as_ref(), 1000).await;
        let mut versions = Vec::new();
        for i in 0..7 {
            versions.push(log.stream_version(&sid(&format!("case-{i}"))).await.unwrap());
        }
        drop(log);
        // Restart right away (derived state may lag), then again after it settled.
        for _ in 0..2 {
            store.reopen().await;
            let log = store.log();
            assert_eq!(log.head(), head);
            assert_eq!(read_everything(log.as_ref(), 1000).await, before);
            for (i, v) in versions.iter().enumerate() {
                let s = sid(&format!("case-{i}"));
                assert_eq!(log.stream_version(&s).await.unwrap(), *v);
                let events = log.read_stream(&s, 1, 1000).await.unwrap();
                let expected: Vec<_> =
                    before.iter().filter(|e| e.stream == s.as_str()).cloned().collect();
                assert_eq!(events, expected);
            }
            let names = log.streams_with_prefix("case-").await.unwrap();
            assert_eq!(names, (0..7).map(|i| format!("case-{i}")).collect::<Vec<_>>());
            for (r, o) in &keyed {
                let again = log.append(r.clone()).await.unwrap().outcome;
                assert_eq!(
                    again,
                    gridcase::engine::log::AppendOutcome { deduplicated: true, ..*o }
                );
            }
            assert_eq!(log.head(), head);
            log.verify().await.unwrap();
        }
        // And it continues from the head.
        let log = store.log();
        let next = log.append(request("case-0", ExpectedVersion::Exact(versions[0]), "n", 1)).await;
        let next = next.unwrap().outcome;
        assert_eq!((next.first_position, next.last_version), (head.position + 1, versions[0] + 1));
        let all = read_everything(log.as_ref(), 1000).await;
        check_structure(log.as_ref(), &all);
        assert_eq!(all[all.len() - 2].hash, head.hash);
    }

    pub async fn tamper_is_found_at_its_position(backend: Arc<dyn Backend>) {
        let store = backend.create().await;
        let log = store.log();
        for i in 0..30 {
            log.append(request(&format!("s{}", i % 4), ExpectedVersion::Any, &format!("{i}"), 4))
                .await
                .unwrap();
        }
        let head = log.head().position;
        // (position, byte offset into the record): header, body, payload, last record.
        let targets = [(1, 0), (37, 1), (37, 60), (64, 9), (99, 30), (head, 25)];
        for (position, byte) in targets {
            // Each round flips a byte back and forth: tamper twice to restore.
            let Some(result) = store.tamper(position, byte).await else {
                eprintln!("note: backend {} has no tamper hook; skipped", backend.name());
                return;
            };
            result.unwrap();
            match log.verify().await {
                Err(LogError::Corruption { position: p, reason }) => {
                    assert_eq!(p, position, "byte {byte}: {reason}")
                }
                other => panic!("tampered position {position}: verify said {other:?}"),
            }
            store.tamper(position, byte).await.expect("hook").unwrap();
            let report = log.verify().await.unwrap();
            assert_eq!(report.events, head);
        }
    }

    /// Issue 12, part 1: no read serves a record whose bytes changed. Every
    /// read that would hand out the tampered record, or a record linked to
    /// it, stops with `Corruption` at its position: runs from before it, at
    /// it and just after it (whose link is checked against it), the
    /// visiting read, and stream reads of its stream and of the stream of
    /// the record after it. Reads that do not touch it still work.
    pub async fn reads_refuse_a_tampered_record(backend: Arc<dyn Backend>) {
        let store = backend.create().await;
        let log = store.log();
        for i in 0..30 {
            log.append(request(&format!("s{}", i % 4), ExpectedVersion::Any, &format!("{i}"), 4))
                .await
                .unwrap();
        }
        let all = read_everything(log.as_ref(), 1000).await;
        let (bad, next) = (&all[39], &all[40]);
        assert_ne!(bad.stream, next.stream, "the test wants the next record in another stream");
        let Some(result) = store.tamper(bad.position, 60).await else {
            eprintln!("note: backend {} has no tamper hook; skipped", backend.name());
            return;
        };
        result.unwrap();
        let at = |r: Result<usize, LogError>, what: &str| match r {
            Err(LogError::Corruption { position, reason }) => {
                assert_eq!(position, bad.position, "{what}: {reason}")
            }
            other => panic!("{what}: expected corruption at {}, got {other:?}", bad.position),
        };
        for from in [1, 30, bad.position, bad.position + 1] {
            at(log.read_all(from, 100).await.map(|p| p.len()), &format!("read_all from {from}"));
            at(log.read_all_with(from, 100, &mut |_| Ok(())).await, &format!("visit from {from}"));
        }
        at(log.read_stream(&sid(&bad.stream), 1, 100).await.map(|p| p.len()), "its stream");
        at(log.read_stream(&sid(&next.stream), 1, 100).await.map(|p| p.len()), "next's stream");
        let mut feed = read_all_stream(log.clone(), 1);
        let mut served = 0;
        let err = loop {
            match feed.next().await {
                Some(Ok(_)) => served += 1,
                Some(Err(e)) => break e,
                None => panic!("the feed ended without reporting the tampered record"),
            }
        };
        at(Err(err), "feed");
        assert!(served < bad.position as usize, "the feed served {served} records");
        drop(feed);
        let after = log.read_all(bad.position + 2, 1000).await.unwrap();
        assert_eq!(after.len(), all.len() - bad.position as usize - 1);
        let untouched = all.iter().find(|e| e.stream != bad.stream && e.stream != next.stream);
        let untouched = &untouched.expect("a third stream").stream;
        let want = all.iter().filter(|e| &e.stream == untouched).count();
        assert_eq!(log.read_stream(&sid(untouched), 1, 100).await.unwrap().len(), want);
        // Restored, everything reads again.
        store.tamper(bad.position, 60).await.expect("hook").unwrap();
        assert_eq!(read_everything(log.as_ref(), 7).await, all);
    }

    /// Checkpoints (derived state readers keep with the store) round-trip,
    /// replace each other by name, survive a reopen and touch no event.
    pub async fn checkpoints_are_kept_apart_from_events(backend: Arc<dyn Backend>) {
        let mut store = backend.create().await;
        let log = store.log();
        assert_eq!(log.load_checkpoint("engine/open-cases").await.unwrap(), None);
        log.append(request("s", ExpectedVersion::NoStream, "e", 2)).await.unwrap();
        let head = log.head();
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        log.save_checkpoint("engine/open-cases", vec![1, 2, 3]).await.unwrap();
        log.save_checkpoint("other", big.clone()).await.unwrap();
        log.save_checkpoint("engine/open-cases", vec![4, 5]).await.unwrap();
        assert_eq!(log.head(), head, "a checkpoint is not an event");
        drop(log);
        store.reopen().await;
        let log = store.log();
        assert_eq!(log.load_checkpoint("engine/open-cases").await.unwrap(), Some(vec![4, 5]));
        assert_eq!(log.load_checkpoint("other").await.unwrap(), Some(big));
        assert_eq!(log.head(), head);
        assert_eq!(log.verify().await.unwrap().events, 2);
    }
}
