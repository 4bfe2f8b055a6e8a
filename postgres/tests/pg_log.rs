//! Integration tests of the PostgreSQL log against a real server.
//!
//! They run only when `GRIDCASE_TEST_PG_URL` names a database the tests may
//! create schemas in (`.ci/postgres.sh` sets one up and prints the URL);
//! otherwise each test says `SKIPPED` in the test output, and fails when
//! `CI` is set. Every test works in a
//! fresh schema of its own and drops it when it passes.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use gridcase_engine::log::LogError;
use gridcase_engine::log::{
    subscribe, AppendRequest, EventData, EventLog, ExpectedVersion, SledLog, SledOptions, StreamId,
    CODEC_POSTCARD, RECORD_FORMAT,
};
use gridcase_engine::time::{ManualClock, Timestamp};
use gridcase_postgres::{PgLog, PgOptions, LAYOUT_VERSION};
use tokio_postgres::NoTls;

/// The server `test` may use; without one the test says SKIPPED (and
/// fails under CI): `gridcase_postgres::testing::test_url`.
fn url(test: &str) -> Option<String> {
    gridcase_postgres::testing::test_url(test)
}

/// A schema no other test (or test run) uses.
fn fresh_schema() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("gc_test_{}_{nanos}_{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

async fn sql(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

async fn drop_schema(url: &str, schema: &str) {
    PgLog::drop_store(url, schema).await.unwrap();
    let db = sql(url).await;
    let left = db.query("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[&schema]).await.unwrap();
    assert!(left.is_empty(), "schema {schema} is still there");
}

fn options(schema: &str) -> PgOptions {
    PgOptions { schema: schema.to_string(), ..PgOptions::default() }
}

fn clock(ms: i64) -> Arc<ManualClock> {
    Arc::new(ManualClock::new(Timestamp(ms)))
}

async fn open(url: &str, schema: &str) -> PgLog {
    PgLog::open(url, options(schema), clock(1_000)).await.unwrap()
}

fn ev(n: u8, size: usize) -> EventData {
    EventData {
        event_type: "T".into(),
        schema_version: 1,
        payload_codec: CODEC_POSTCARD,
        payload: vec![n; size],
    }
}

fn req(stream: &str, expected: ExpectedVersion, n: usize) -> AppendRequest {
    AppendRequest::new(
        StreamId::new(stream).unwrap(),
        expected,
        "t",
        (0..n).map(|i| ev(i as u8, 200)).collect(),
    )
}

fn sid(s: &str) -> StreamId {
    StreamId::new(s).unwrap()
}

async fn assert_gap_free(log: &dyn EventLog, total: u64) {
    let all = log.read_all(1, 1_000_000).await.unwrap();
    assert_eq!(all.len() as u64, total);
    assert!(all.iter().enumerate().all(|(i, e)| e.position == i as u64 + 1));
    let report = log.verify().await.unwrap();
    assert_eq!(report.events, total);
    assert_eq!(report.head, log.head());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn positions_versions_conflicts_and_reopen() {
    let Some(url) = url("positions_versions_conflicts_and_reopen") else { return };
    let schema = fresh_schema();
    let log = open(&url, &schema).await;
    assert_eq!(log.head().position, 0);
    let a = log.append(req("a", ExpectedVersion::NoStream, 3)).await.unwrap().outcome;
    assert_eq!((a.first_position, a.last_position, a.last_version), (1, 3, 3));
    assert_eq!(a.recorded_at, Timestamp(1_000));
    let b = log.append(req("b", ExpectedVersion::Any, 2)).await.unwrap().outcome;
    assert_eq!((b.first_position, b.last_version), (4, 2));
    assert_eq!(log.head().position, 5);
    let s = log.read_stream(&sid("a"), 2, 10).await.unwrap();
    assert_eq!(s.iter().map(|e| (e.position, e.version)).collect::<Vec<_>>(), vec![(2, 2), (3, 3)]);
    assert_eq!(log.read_stream(&sid("a"), 1, 2).await.unwrap().len(), 2);
    assert_eq!(
        log.read_all(2, 2).await.unwrap().iter().map(|e| e.position).collect::<Vec<_>>(),
        [2, 3]
    );
    assert!(log.read_all(6, 10).await.unwrap().is_empty());
    assert_eq!(log.stream_version(&sid("a")).await.unwrap(), 3);
    assert_eq!(log.stream_version(&sid("zz")).await.unwrap(), 0);
    let head = log.head();
    drop(log);

    // A clock that went back: recorded-at must not.
    let log = PgLog::open(&url, options(&schema), clock(10)).await.unwrap();
    assert_eq!(log.head(), head);
    assert_eq!(log.stream_version(&sid("a")).await.unwrap(), 3);
    let c = log.append(req("a", ExpectedVersion::Exact(3), 1)).await.unwrap().outcome;
    assert_eq!((c.first_position, c.last_version), (6, 4));
    assert_eq!(c.recorded_at, Timestamp(1_000));
    assert_gap_free(&log, 6).await;
    assert!(log.describe().starts_with("postgres:"));
    assert!(!log.describe().contains("gridcase:gridcase@"), "no password in describe");
    assert!(log.size_on_disk().await.unwrap() > 0);
    drop(log);
    drop_schema(&url, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appenders_are_gap_free() {
    let Some(url) = url("concurrent_appenders_are_gap_free") else { return };
    let schema = fresh_schema();
    let log = Arc::new(open(&url, &schema).await);
    let mut tasks = Vec::new();
    for w in 0..32 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let mut expected = ExpectedVersion::NoStream;
            let mut shared_ok = 0u64;
            for i in 0..20 {
                let o = log.append(req(&format!("w{w}"), expected, 2)).await.unwrap().outcome;
                expected = ExpectedVersion::Exact(o.last_version);
                // Everyone also races on one stream: exactly one of a set of
                // equal expectations may win.
                if i % 5 == 0 {
                    let v = log.stream_version(&sid("shared")).await.unwrap();
                    match log.append(req("shared", ExpectedVersion::Exact(v), 1)).await {
                        Ok(_) => shared_ok += 1,
                        Err(LogError::Conflict { .. }) => {}
                        Err(e) => panic!("{e}"),
                    }
                }
            }
            shared_ok
        }));
    }
    let mut shared_ok = 0;
    for t in tasks {
        shared_ok += t.await.unwrap();
    }
    let shared = log.stream_version(&sid("shared")).await.unwrap();
    assert_eq!(shared, shared_ok);
    let versions: Vec<u64> =
        log.read_stream(&sid("shared"), 1, 1000).await.unwrap().iter().map(|e| e.version).collect();
    assert_eq!(versions, (1..=shared).collect::<Vec<_>>());
    assert_gap_free(&*log, 32 * 20 * 2 + shared).await;
    for w in 0..32 {
        assert_eq!(log.stream_version(&sid(&format!("w{w}"))).await.unwrap(), 40);
    }
    drop(log);
    drop_schema(&url, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflict_writes_nothing_and_batches_are_atomic() {
    let Some(url) = url("conflict_writes_nothing_and_batches_are_atomic") else { return };
    let schema = fresh_schema();
    let log = open(&url, &schema).await;
    log.append(req("a", ExpectedVersion::NoStream, 3)).await.unwrap();
    let head = log.head();
    for expected in
        [ExpectedVersion::Exact(2), ExpectedVersion::NoStream, ExpectedVersion::Exact(4)]
    {
        match log.append(req("a", expected, 5)).await {
            Err(LogError::Conflict { actual, stream, .. }) => {
                assert_eq!((actual, stream.as_str()), (3, "a"))
            }
            other => panic!("expected a conflict, got {other:?}"),
        }
    }
    assert!(matches!(
        log.append(req("new", ExpectedVersion::Exact(1), 1)).await,
        Err(LogError::Conflict { actual: 0, .. })
    ));
    assert_eq!(log.head(), head);
    assert_eq!(log.read_all(1, 100).await.unwrap().len(), 3);

    // A batch lands whole: contiguous positions and versions.
    let o = log.append(req("a", ExpectedVersion::Exact(3), 50)).await.unwrap().outcome;
    assert_eq!((o.first_position, o.last_position, o.last_version), (4, 53, 53));
    let s = log.read_stream(&sid("a"), 4, 100).await.unwrap();
    assert_eq!(s.len(), 50);
    assert!(s
        .iter()
        .enumerate()
        .all(|(i, e)| e.position == 4 + i as u64 && e.version == 4 + i as u64));

    // A batch with one bad event is refused whole.
    let mut bad = req("a", ExpectedVersion::Any, 3);
    bad.events[2].payload = vec![0; gridcase_postgres::MAX_PAYLOAD_BYTES + 1];
    assert!(matches!(log.append(bad).await, Err(LogError::InvalidInput(_))));
    let empty = req("a", ExpectedVersion::Any, 0);
    assert!(matches!(log.append(empty).await, Err(LogError::InvalidInput(_))));
    assert_gap_free(&log, 53).await;

    // Concurrent batches on one stream with the same expectation: one wins,
    // the others write nothing, even inside one group.
    let log = Arc::new(log);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            log.append(req("race", ExpectedVersion::NoStream, 4)).await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(o) => {
                wins += 1;
                assert_eq!(o.outcome.last_version, 4);
            }
            Err(LogError::Conflict { actual: 4, .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(wins, 1);
    assert_eq!(log.stream_version(&sid("race")).await.unwrap(), 4);
    assert_gap_free(&*log, 57).await;
    drop(log);
    drop_schema(&url, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_retry_and_mismatch() {
    let Some(url) = url("idempotent_retry_and_mismatch") else { return };
    let schema = fresh_schema();
    let log = open(&url, &schema).await;
    let mut r = req("a", ExpectedVersion::NoStream, 2);
    r.idempotency_key = Some("k1".into());
    let first = log.append(r.clone()).await.unwrap().outcome;
    assert!(!first.deduplicated);
    let again = log.append(r.clone()).await.unwrap().outcome;
    assert!(again.deduplicated);
    assert_eq!(AppendOutcome { deduplicated: false, ..again }, first);
    assert_eq!(log.head().position, 2);
    let mut other = req("a", ExpectedVersion::Any, 1);
    other.idempotency_key = Some("k1".into());
    assert!(matches!(log.append(other).await, Err(LogError::IdempotencyMismatch { .. })));
    let (digest, outcome) = log.idempotency_lookup("k1").await.unwrap().unwrap();
    assert_eq!(digest, gridcase_engine::log::request_digest(&r));
    assert_eq!(outcome, first);
    assert!(log.idempotency_lookup("nope").await.unwrap().is_none());
    // The key's mark is in the record itself, as in the sled log.
    let recorded = log.read_all(1, 1).await.unwrap();
    assert_eq!(recorded[0].idempotency.as_ref().unwrap().key, "k1");

    // A key with a NUL byte is stored fine (keys are bytea).
    let mut nul = req("b", ExpectedVersion::Any, 1);
    nul.idempotency_key = Some("k\0nul".into());
    let n1 = log.append(nul.clone()).await.unwrap().outcome;
    assert!(log.append(nul).await.unwrap().outcome.deduplicated);

    // The same keyed append sent many times at once: written once.
    let log = Arc::new(log);
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let log = log.clone();
        let mut r = req("c", ExpectedVersion::Any, 3);
        r.idempotency_key = Some("burst".into());
        tasks.push(tokio::spawn(async move { log.append(r).await.unwrap().outcome }));
    }
    let outcomes: Vec<_> =
        futures::future::join_all(tasks).await.into_iter().map(|r| r.unwrap()).collect();
    assert_eq!(outcomes.iter().filter(|o| !o.deduplicated).count(), 1);
    assert!(outcomes.iter().all(|o| o.first_position == outcomes[0].first_position));
    assert_eq!(log.stream_version(&sid("c")).await.unwrap(), 3);
    let head = log.head();
    assert_eq!(head.position, n1.last_position + 3);

    drop(log);
    let log = open(&url, &schema).await;
    let again = log.append(r).await.unwrap().outcome;
    assert!(again.deduplicated);
    assert_eq!(again.first_position, first.first_position);
    assert_eq!(log.head(), head);
    drop(log);
    drop_schema(&url, &schema).await;
}

use gridcase_engine::log::AppendOutcome;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_hands_over_from_catch_up_to_live() {
    let Some(url) = url("subscription_hands_over_from_catch_up_to_live") else { return };
    let schema = fresh_schema();
    let log: Arc<dyn EventLog> = Arc::new(open(&url, &schema).await);
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
        let e = tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(e.position, expect);
        expect += 1;
    }
    writer.await.unwrap();
    drop(sub);
    drop(log);
    drop_schema(&url, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_on_one_store_interleave_gap_free() {
    let Some(url) = url("two_writers_on_one_store_interleave_gap_free") else { return };
    let schema = fresh_schema();
    // One listens for the other's commits; the other only polls.
    let a: Arc<dyn EventLog> = Arc::new(open(&url, &schema).await);
    let b: Arc<dyn EventLog> = Arc::new(
        PgLog::open(&url, PgOptions { listen: false, ..options(&schema) }, clock(2_000))
            .await
            .unwrap(),
    );
    let mut sub_a = subscribe(a.clone(), 1);
    let mut sub_b = subscribe(b.clone(), 1);
    let mut tasks = Vec::new();
    for w in 0..8 {
        for (name, log) in [("a", a.clone()), ("b", b.clone())] {
            tasks.push(tokio::spawn(async move {
                for _ in 0..15 {
                    log.append(req(&format!("{name}{w}"), ExpectedVersion::Any, 2)).await.unwrap();
                    // Both writers race on one stream too, with correct expectations.
                    loop {
                        let v = log.stream_version(&sid("both")).await.unwrap();
                        match log.append(req("both", ExpectedVersion::Exact(v), 1)).await {
                            Ok(_) => break,
                            Err(LogError::Conflict { .. }) => continue,
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let total = 16 * 15 * 3;
    assert_eq!(a.stream_version(&sid("both")).await.unwrap(), 16 * 15);
    // Each subscription sees every record of both writers, in order.
    for sub in [&mut sub_a, &mut sub_b] {
        for expect in 1..=total {
            let e = tokio::time::timeout(Duration::from_secs(10), sub.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            assert_eq!(e.position, expect);
        }
    }
    // And each log's head catches up with the other's commits.
    let deadline = Instant::now() + Duration::from_secs(5);
    while a.head() != b.head() || a.head().position != total {
        assert!(Instant::now() < deadline, "heads {:?} / {:?}", a.head(), b.head());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // recorded_at never goes down, whichever writer's clock is ahead.
    let all = a.read_all(1, 100_000).await.unwrap();
    assert!(all.windows(2).all(|w| w[0].recorded_at <= w[1].recorded_at));
    assert_gap_free(&*a, total).await;
    drop((sub_a, sub_b, a, b));
    drop_schema(&url, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tamper_is_found_at_its_position() {
    let Some(url) = url("tamper_is_found_at_its_position") else { return };
    let schema = fresh_schema();
    let log = open(&url, &schema).await;
    for i in 0..20 {
        log.append(req(&format!("s{i}"), ExpectedVersion::Any, 5)).await.unwrap();
    }
    log.verify().await.unwrap();
    let db = sql(&url).await;
    let flip = |position: i64, byte: i32| {
        format!(
            r#"UPDATE "{schema}".events SET record = set_byte(record, {byte}, get_byte(record, {byte}) # 1)
               WHERE position = {position}"#
        )
    };
    db.batch_execute(&flip(37, 60)).await.unwrap();
    match log.verify().await {
        Err(LogError::Corruption { position, .. }) => assert_eq!(position, 37),
        other => panic!("expected corruption, got {other:?}"),
    }
    // Reads of the tampered record still decode or fail, but never panic.
    let _ = log.read_all(37, 1).await;
    db.batch_execute(&flip(37, 60)).await.unwrap();
    log.verify().await.unwrap();
    // The hook does the same, for every part of a record.
    for (position, byte) in [(1, 0), (2, 1), (99, 30), (100, 10_000)] {
        log.tamper_for_test(position, byte).await.unwrap();
        match log.verify().await {
            Err(LogError::Corruption { position: p, .. }) => assert_eq!(p, position, "byte {byte}"),
            other => panic!("expected corruption, got {other:?}"),
        }
        log.tamper_for_test(position, byte).await.unwrap();
        log.verify().await.unwrap();
    }
    assert!(matches!(log.tamper_for_test(101, 0).await, Err(LogError::InvalidInput(_))));

    // Bytes and stored hash rewritten together (a payload byte, so the
    // record still decodes): the next record's link breaks.
    let row = db
        .query_one(&format!(r#"SELECT record FROM "{schema}".events WHERE position = 50"#), &[])
        .await
        .unwrap();
    let mut record: Vec<u8> = row.get(0);
    let at = record.len() - 40;
    record[at] ^= 1;
    let hash = blake3::hash(&record).as_bytes().to_vec();
    db.execute(
        &format!(r#"UPDATE "{schema}".events SET record = $1, hash = $2 WHERE position = 50"#),
        &[&record, &hash],
    )
    .await
    .unwrap();
    match log.verify().await {
        Err(LogError::Corruption { position, .. }) => assert_eq!(position, 51),
        other => panic!("expected corruption, got {other:?}"),
    }
    // A missing record is a gap at its position, for verify and for reads.
    db.batch_execute(&format!(r#"DELETE FROM "{schema}".events WHERE position = 12"#))
        .await
        .unwrap();
    match log.verify().await {
        Err(LogError::Corruption { position, .. }) => assert_eq!(position, 12),
        other => panic!("expected corruption, got {other:?}"),
    }
    assert!(matches!(log.read_all(10, 10).await, Err(LogError::Corruption { position: 12, .. })));
    drop(log);
    drop_schema(&url, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newer_format_is_refused() {
    let Some(url) = url("newer_format_is_refused") else { return };
    let db = sql(&url).await;
    for (key, current) in [("format", u32::from(RECORD_FORMAT)), ("layout", LAYOUT_VERSION)] {
        let schema = fresh_schema();
        let log = open(&url, &schema).await;
        log.append(req("a", ExpectedVersion::Any, 1)).await.unwrap();
        drop(log);
        db.batch_execute(&format!(
            r#"UPDATE "{schema}".meta SET value = value + 1 WHERE key = '{key}'"#
        ))
        .await
        .unwrap();
        match PgLog::open(&url, options(&schema), clock(0)).await {
            Err(LogError::NewerFormat { found, supported }) => {
                assert_eq!((found, supported), (current + 1, current))
            }
            Err(e) => panic!("expected NewerFormat, got {e}"),
            Ok(_) => panic!("expected NewerFormat, the store opened"),
        }
        drop_schema(&url, &schema).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_listings_and_bad_input() {
    let Some(url) = url("stream_listings_and_bad_input") else { return };
    let schema = fresh_schema();
    let log = open(&url, &schema).await;
    for s in ["case-2", "case-10", "case-1", "org", "case\u{10FFFF}", "cas", "case-é"] {
        log.append(req(s, ExpectedVersion::Any, 1)).await.unwrap();
    }
    assert_eq!(
        log.streams_with_prefix("case-").await.unwrap(),
        vec!["case-1", "case-10", "case-2", "case-é"]
    );
    assert_eq!(log.streams_with_prefix("case").await.unwrap().len(), 5);
    assert_eq!(log.streams_with_prefix("").await.unwrap().len(), 7);
    assert!(log.streams_with_prefix("x").await.unwrap().is_empty());
    assert!(log.read_stream(&sid("org"), 1, 0).await.unwrap().is_empty());
    drop(log);

    for bad in ["", "Upper", "a;drop", "pg_catalog"] {
        let r = PgLog::open(&url, options(bad), clock(0)).await;
        assert!(matches!(r, Err(LogError::InvalidInput(_))), "{bad:?}");
    }
    let r = PgLog::open("postgres://nobody@127.0.0.1:1/none", options(&schema), clock(0)).await;
    assert!(matches!(r, Err(LogError::Storage(_))));
    drop_schema(&url, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_from_sled_reproduces_the_chain() {
    let Some(url) = url("import_from_sled_reproduces_the_chain") else { return };
    let dir = tempfile::tempdir().unwrap();
    let src = SledLog::open(dir.path(), SledOptions::default(), clock(5_000)).unwrap();
    let mut keyed = Vec::new();
    for i in 0..30u8 {
        let mut r = req(&format!("s{}", i % 4), ExpectedVersion::Any, 1 + (i % 3) as usize);
        r.idempotency_key = (i % 7 == 0).then(|| format!("k{i}"));
        let o = src.append(r.clone()).await.unwrap().outcome;
        if r.idempotency_key.is_some() {
            keyed.push((r, o));
        }
    }
    let all = src.read_all(1, 1000).await.unwrap();
    let schema = fresh_schema();
    let dst = open(&url, &schema).await;
    let mut broken = all.clone();
    broken[10].payload[0] ^= 1;
    assert!(matches!(dst.import(broken).await, Err(LogError::Corruption { position: 11, .. })));
    assert!(matches!(
        dst.import(all[1..].to_vec()).await,
        Err(LogError::Corruption { position: 1, .. })
    ));
    assert_eq!(dst.head().position, 0);
    assert_eq!(dst.import(Vec::new()).await.unwrap().position, 0);
    dst.import(all[..12].to_vec()).await.unwrap();
    // Not the continuation of the chain: refused, nothing written.
    assert!(dst.import(all[..3].to_vec()).await.is_err());
    let head = dst.import(all[12..].to_vec()).await.unwrap();
    assert_eq!(head, src.head());
    assert_eq!(dst.head(), src.head());
    assert_eq!(dst.verify().await.unwrap().head, src.head());
    assert_eq!(dst.read_all(1, 1000).await.unwrap(), all);
    for s in 0..4 {
        let s = sid(&format!("s{s}"));
        assert_eq!(dst.stream_version(&s).await.unwrap(), src.stream_version(&s).await.unwrap());
    }
    for (r, o) in keyed {
        let key = r.idempotency_key.clone().unwrap();
        assert_eq!(
            dst.idempotency_lookup(&key).await.unwrap(),
            src.idempotency_lookup(&key).await.unwrap()
        );
        assert_eq!(dst.append(r).await.unwrap().outcome, AppendOutcome { deduplicated: true, ..o });
    }
    // Appends continue the imported chain, never below its recorded times.
    let next = dst.append(req("s0", ExpectedVersion::Any, 1)).await.unwrap().outcome;
    assert_eq!(next.first_position, src.head().position + 1);
    assert_eq!(next.recorded_at, Timestamp(5_000));
    dst.verify().await.unwrap();
    drop(dst);
    drop_schema(&url, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_terminated_connections() {
    let Some(url) = url("survives_terminated_connections") else { return };
    let schema = fresh_schema();
    let log: Arc<dyn EventLog> = Arc::new(open(&url, &schema).await);
    let other: Arc<dyn EventLog> = Arc::new(open(&url, &schema).await);
    let mut sub = subscribe(log.clone(), 1);
    log.append(req("a", ExpectedVersion::Any, 2)).await.unwrap();
    let db = sql(&url).await;
    let kill = format!(
        "SELECT count(pg_terminate_backend(pid))::bigint FROM pg_stat_activity
         WHERE application_name LIKE 'gc-% {schema}'"
    );
    let killed: i64 = db.query_one(&kill, &[]).await.unwrap().get(0);
    // Two logs: writer, three readers and a follower each.
    assert_eq!(killed, 10);
    // Every part reconnects: the writer on its next group, reads on their
    // next query, the follower on its next poll.
    let o = log.append(req("a", ExpectedVersion::Exact(2), 1)).await.unwrap().outcome;
    assert_eq!(o.first_position, 3);
    assert_eq!(log.read_all(1, 10).await.unwrap().len(), 3);
    assert_eq!(log.stream_version(&sid("a")).await.unwrap(), 3);
    other.append(req("b", ExpectedVersion::Any, 1)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while log.head().position != 4 {
        assert!(Instant::now() < deadline, "the follower did not come back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for expect in 1..=4 {
        let e = tokio::time::timeout(Duration::from_secs(5), sub.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(e.position, expect);
    }
    assert_gap_free(&*log, 4).await;
    drop((sub, log, other));
    drop_schema(&url, &schema).await;
}

/// Append throughput with 64 concurrent appenders of 256-byte events. Run with
/// `cargo test -p gridcase-postgres --release -- --ignored --nocapture throughput`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn throughput_64_appenders() {
    let Some(url) = url("throughput_64_appenders") else { return };
    let schema = fresh_schema();
    let log = Arc::new(
        PgLog::open(&url, options(&schema), Arc::new(gridcase_engine::time::SystemClock))
            .await
            .unwrap(),
    );
    let seconds =
        std::env::var("GRIDCASE_BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    let until = Instant::now() + Duration::from_secs(seconds);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..64 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            let mut expected = ExpectedVersion::NoStream;
            while Instant::now() < until {
                let r = AppendRequest::new(
                    sid(&format!("case-{w}")),
                    expected,
                    "bench",
                    vec![ev(w as u8, 256)],
                );
                let o = log.append(r).await.unwrap().outcome;
                expected = ExpectedVersion::Exact(o.last_version);
                n += 1;
            }
            n
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "postgres log: {total} appends of one 256-byte event by 64 appenders in {secs:.1} s = {:.0} events/s",
        total as f64 / secs
    );
    assert_gap_free(&*log, total).await;
    drop(log);
    drop_schema(&url, &schema).await;
}

/// Issue 12, part 1: appends refuse to extend a log whose head does not
/// verify. The head is checked whenever the writer re-reads it (another
/// writer moved it) and on open, against its stored hash and its link to
/// the record before; a refused append writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_that_does_not_verify_is_not_extended() {
    let Some(url) = url("a_head_that_does_not_verify_is_not_extended") else { return };
    let schema = fresh_schema();
    let db = sql(&url).await;
    let count = || async {
        let row =
            db.query_one(&format!(r#"SELECT count(*) FROM "{schema}".events"#), &[]).await.unwrap();
        row.get::<_, i64>(0)
    };
    let a = open(&url, &schema).await;
    let b = open(&url, &schema).await;
    a.append(req("a", ExpectedVersion::Any, 3)).await.unwrap();
    b.append(req("b", ExpectedVersion::Any, 2)).await.unwrap();
    b.tamper_for_test(5, 10).await.unwrap();
    // A last wrote position 3: its next group re-reads the head (5).
    match a.append(req("a", ExpectedVersion::Any, 1)).await {
        Err(LogError::Corruption { position, .. }) => assert_eq!(position, 5),
        other => panic!("expected corruption at 5, got {other:?}"),
    }
    assert_eq!(count().await, 5, "a refused append wrote nothing");
    drop((a, b));
    match PgLog::open(&url, options(&schema), clock(1_000)).await {
        Err(LogError::Corruption { position, .. }) => assert_eq!(position, 5),
        Ok(_) => panic!("a store whose head does not verify was opened"),
        Err(e) => panic!("expected corruption at 5, got {e}"),
    }

    // Restored head; the record before it rewritten with a matching stored
    // hash (a payload byte, so it still decodes): the head's link breaks.
    db.batch_execute(&format!(
        r#"UPDATE "{schema}".events SET record = set_byte(record, 10, get_byte(record, 10) # 1)
           WHERE position = 5"#
    ))
    .await
    .unwrap();
    open(&url, &schema).await.verify().await.unwrap();
    let row = db
        .query_one(&format!(r#"SELECT record FROM "{schema}".events WHERE position = 4"#), &[])
        .await
        .unwrap();
    let mut record: Vec<u8> = row.get(0);
    let at = record.len() - 40;
    record[at] ^= 1;
    let hash = blake3::hash(&record).as_bytes().to_vec();
    db.execute(
        &format!(r#"UPDATE "{schema}".events SET record = $1, hash = $2 WHERE position = 4"#),
        &[&record, &hash],
    )
    .await
    .unwrap();
    match PgLog::open(&url, options(&schema), clock(1_000)).await {
        Err(LogError::Corruption { position, reason }) => {
            assert_eq!(position, 5, "{reason}");
            assert!(reason.contains("previous-hash link"), "{reason}");
        }
        Ok(_) => panic!("a store whose head's link does not verify was opened"),
        Err(e) => panic!("expected corruption at 5, got {e}"),
    }
    assert_eq!(count().await, 5);
    drop_schema(&url, &schema).await;
}
