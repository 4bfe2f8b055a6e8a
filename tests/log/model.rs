//! Model-based property test: random operation sequences run against a log
//! and against a plain in-memory model (a `Vec` of events, a `BTreeMap` of
//! stream versions, a `HashMap` of idempotency keys). After every operation
//! the log must match the model exactly; `verify()` must pass at the end.
//!
//! Operations: appends to a few streams with right and wrong expected
//! versions (conflicts write nothing), keyed appends from a small key pool
//! (reused keys with new content must be refused), exact retries of earlier
//! keyed appends (original outcome, nothing written), stream and global
//! reads, subscriptions that catch up and then follow live appends, and
//! restarts (drop and reopen the store).
//!
//! `PROPTEST_CASES=N` overrides the number of cases (default 48; each case runs on every backend).

use std::collections::{BTreeMap, HashMap};

use gridcase::engine::log::LogError;
use gridcase::engine::log::{
    request_digest, AppendOutcome, AppendRequest, Appended, EventData, ExpectedVersion,
    IdempotencyMark, RecordedEvent, CODEC_POSTCARD,
};
use proptest::prelude::*;

use super::backend::{backends, runtime, Backend};
use super::support::{check_structure, collect_subscription, read_everything, sid};

const STREAMS: [&str; 3] = ["case-0", "case-1", "org"];
const KEYS: usize = 5;

#[derive(Clone, Debug)]
enum Expect {
    Any,
    NoStream,
    Right,
    WrongBy(u64),
}

#[derive(Clone, Debug)]
enum Op {
    Append {
        stream: usize,
        expect: Expect,
        payloads: Vec<Vec<u8>>,
        key: Option<usize>,
        correlated: bool,
    },
    Retry(usize),
    ReadStream {
        stream: usize,
        from: u64,
        limit: usize,
    },
    ReadAll {
        from: u64,
        limit: usize,
    },
    Subscribe {
        back: u64,
        live_appends: usize,
    },
    Restart,
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        9 => proptest::collection::vec(any::<u8>(), 0..24),
        1 => proptest::collection::vec(any::<u8>(), 1000..3000),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let expect = prop_oneof![
        2 => Just(Expect::Any),
        1 => Just(Expect::NoStream),
        4 => Just(Expect::Right),
        1 => (1u64..3).prop_map(Expect::WrongBy),
    ];
    let append = (
        0..STREAMS.len(),
        expect,
        proptest::collection::vec(payload(), 1..5),
        proptest::option::weighted(0.4, 0..KEYS),
        any::<bool>(),
    )
        .prop_map(|(stream, expect, payloads, key, correlated)| Op::Append {
            stream,
            expect,
            payloads,
            key,
            correlated,
        });
    prop_oneof![
        10 => append,
        2 => any::<usize>().prop_map(Op::Retry),
        2 => (0..STREAMS.len(), 0u64..8, 0usize..6)
            .prop_map(|(stream, from, limit)| Op::ReadStream { stream, from, limit }),
        2 => (0u64..40, 0usize..12).prop_map(|(from, limit)| Op::ReadAll { from, limit }),
        1 => (0u64..12, 0usize..4).prop_map(|(back, live_appends)| Op::Subscribe { back, live_appends }),
        1 => Just(Op::Restart),
    ]
}

/// What the model remembers of an event.
#[derive(Clone, Debug)]
struct ModelEvent {
    stream: String,
    version: u64,
    data: EventData,
    actor: String,
    correlation_id: Option<String>,
    recorded_at: gridcase::engine::time::Timestamp,
    idempotency: Option<IdempotencyMark>,
}

#[derive(Default)]
struct Model {
    events: Vec<ModelEvent>,
    versions: BTreeMap<String, u64>,
    /// Key → the request that used it first and its outcome.
    keys: HashMap<String, (AppendRequest, AppendOutcome)>,
    /// Keyed requests that were written, for exact retries.
    keyed: Vec<AppendRequest>,
}

/// The parts of a request an idempotency key pins (correlation and causation are not).
fn same_content(a: &AppendRequest, b: &AppendRequest) -> bool {
    a.stream == b.stream && a.expected == b.expected && a.actor == b.actor && a.events == b.events
}

impl Model {
    fn version(&self, stream: &str) -> u64 {
        self.versions.get(stream).copied().unwrap_or(0)
    }

    /// Checks the log's answer to `req` against the model and applies it.
    fn append(&mut self, req: &AppendRequest, got: Result<Appended, LogError>) {
        // The records an append answers with are the records the log holds:
        // the ones it wrote, or on a retry the first call's.
        let records = got.as_ref().map(|a| a.records.clone()).unwrap_or_default();
        let got = got.map(|a| a.outcome);
        if let Some(key) = &req.idempotency_key {
            if let Some((first, outcome)) = self.keys.get(key) {
                if same_content(first, req) {
                    let got = got.unwrap_or_else(|e| panic!("retry of {key} failed: {e}"));
                    assert_eq!(got, AppendOutcome { deduplicated: true, ..*outcome });
                    let count = (outcome.last_position - outcome.first_position + 1) as usize;
                    assert_eq!(records.len(), count, "records of the retry of {key}");
                    self.assert_matches(&records, outcome.first_position);
                } else {
                    match got {
                        Err(LogError::IdempotencyMismatch { key: k }) => assert_eq!(&k, key),
                        other => panic!("reused key {key} with new content gave {other:?}"),
                    }
                }
                return;
            }
        }
        let current = self.version(req.stream.as_str());
        if !req.expected.admits(current) {
            match got {
                Err(LogError::Conflict { stream, expected, actual }) => {
                    assert_eq!(
                        (stream.as_str(), expected, actual),
                        (req.stream.as_str(), req.expected, current)
                    );
                }
                other => panic!("expected a conflict at version {current}, got {other:?}"),
            }
            return;
        }
        let got = got.unwrap_or_else(|e| panic!("append failed: {e}"));
        let n = req.events.len() as u64;
        let first = self.events.len() as u64 + 1;
        assert_eq!(
            (got.first_position, got.last_position, got.last_version, got.deduplicated),
            (first, first + n - 1, current + n, false)
        );
        if let Some(last) = self.events.last() {
            assert!(got.recorded_at >= last.recorded_at, "recorded_at went backwards");
        }
        for (i, data) in req.events.iter().enumerate() {
            self.events.push(ModelEvent {
                stream: req.stream.as_str().to_string(),
                version: current + 1 + i as u64,
                data: data.clone(),
                actor: req.actor.clone(),
                correlation_id: req.correlation_id.clone(),
                recorded_at: got.recorded_at,
                idempotency: match (&req.idempotency_key, i) {
                    (Some(key), 0) => Some(IdempotencyMark {
                        key: key.clone(),
                        digest: request_digest(req),
                        count: n as u32,
                    }),
                    _ => None,
                },
            });
        }
        assert_eq!(records.len() as u64, n, "records of an append");
        self.assert_matches(&records, first);
        self.versions.insert(req.stream.as_str().to_string(), current + n);
        if let Some(key) = &req.idempotency_key {
            self.keys.insert(key.clone(), (req.clone(), got));
            self.keyed.push(req.clone());
        }
    }

    fn assert_matches(&self, got: &[RecordedEvent], first_position: u64) {
        for (i, ev) in got.iter().enumerate() {
            let position = first_position + i as u64;
            let m = &self.events[(position - 1) as usize];
            assert_eq!(ev.position, position);
            assert_eq!((ev.stream.as_str(), ev.version), (m.stream.as_str(), m.version));
            assert_eq!(
                (&ev.event_type, ev.schema_version, ev.payload_codec, &ev.payload),
                (&m.data.event_type, m.data.schema_version, m.data.payload_codec, &m.data.payload),
                "event at {position}"
            );
            assert_eq!((&ev.actor, &ev.correlation_id), (&m.actor, &m.correlation_id));
            assert_eq!(ev.causation_id, None);
            assert_eq!(ev.recorded_at, m.recorded_at);
            assert_eq!(ev.idempotency, m.idempotency, "idempotency mark at {position}");
        }
    }
}

fn build_request(model: &Model, op: &Op, seq: usize) -> Option<AppendRequest> {
    let Op::Append { stream, expect, payloads, key, correlated } = op else { return None };
    let name = STREAMS[*stream];
    let current = model.version(name);
    let expected = match expect {
        Expect::Any => ExpectedVersion::Any,
        Expect::NoStream => ExpectedVersion::NoStream,
        Expect::Right => ExpectedVersion::Exact(current),
        Expect::WrongBy(d) => ExpectedVersion::Exact(current + d),
    };
    let events = payloads
        .iter()
        .enumerate()
        .map(|(i, p)| EventData {
            event_type: format!("E{}", i % 2),
            schema_version: 1 + (i % 3) as u16,
            payload_codec: CODEC_POSTCARD,
            payload: p.clone(),
        })
        .collect();
    let mut req = AppendRequest::new(sid(name), expected, format!("actor-{}", seq % 2), events);
    req.idempotency_key = key.map(|k| format!("key-{k}"));
    req.correlation_id = correlated.then(|| format!("corr-{seq}"));
    Some(req)
}

async fn check(log: &dyn gridcase::engine::log::EventLog, model: &Model) {
    assert_eq!(log.head().position, model.events.len() as u64, "head position");
    let all = read_everything(log, 64).await;
    check_structure(log, &all);
    model.assert_matches(&all, 1);
    for name in STREAMS {
        let s = sid(name);
        assert_eq!(log.stream_version(&s).await.unwrap(), model.version(name), "version of {name}");
        let events = log.read_stream(&s, 1, 10_000).await.unwrap();
        let expected: Vec<_> = all.iter().filter(|e| e.stream == name).cloned().collect();
        assert_eq!(events, expected, "read_stream({name})");
    }
    let names: Vec<String> = model.versions.keys().cloned().collect();
    assert_eq!(log.streams_with_prefix("").await.unwrap(), names);
}

async fn run_ops(backend: &dyn Backend, ops: &[Op]) {
    let mut store = backend.create().await;
    let mut model = Model::default();
    for (seq, op) in ops.iter().enumerate() {
        let log = store.log();
        match op {
            Op::Append { .. } => {
                let req = build_request(&model, op, seq).expect("an append");
                let got = log.append(req.clone()).await;
                model.append(&req, got);
            }
            Op::Retry(pick) => {
                if !model.keyed.is_empty() {
                    let req = model.keyed[pick % model.keyed.len()].clone();
                    let got = log.append(req.clone()).await;
                    model.append(&req, got);
                }
            }
            Op::ReadStream { stream, from, limit } => {
                let name = STREAMS[*stream];
                let got = log.read_stream(&sid(name), *from, *limit).await.unwrap();
                let want: Vec<u64> = model
                    .events
                    .iter()
                    .enumerate()
                    .filter(|(_, e)| e.stream == name && e.version >= (*from).max(1))
                    .map(|(i, _)| i as u64 + 1)
                    .take(*limit)
                    .collect();
                assert_eq!(got.iter().map(|e| e.position).collect::<Vec<_>>(), want);
                for e in &got {
                    model.assert_matches(std::slice::from_ref(e), e.position);
                }
            }
            Op::ReadAll { from, limit } => {
                let got = log.read_all(*from, *limit).await.unwrap();
                let start = (*from).max(1);
                let expect_len = (model.events.len() as u64 + 1).saturating_sub(start) as usize;
                assert_eq!(got.len(), expect_len.min(*limit));
                model.assert_matches(&got, start);
            }
            Op::Subscribe { back, live_appends } => {
                let head = model.events.len() as u64;
                let from = (head + 1).saturating_sub(*back).max(1);
                let target = head + *live_appends as u64 * 2;
                let sub = tokio::spawn(collect_subscription(log.clone(), from, target));
                let mut reqs = Vec::new();
                for i in 0..*live_appends {
                    let mut req = super::support::request("live", ExpectedVersion::Any, "live", 2);
                    req.actor = format!("actor-{}", (seq + i) % 2);
                    let got = log.append(req.clone()).await;
                    reqs.push((req, got));
                }
                let got = sub.await.expect("subscriber task");
                for (req, outcome) in reqs {
                    model.append(&req, outcome);
                }
                assert_eq!(got.len() as u64, target + 1 - from);
                model.assert_matches(&got, from);
            }
            Op::Restart => {
                drop(log);
                store.reopen().await;
            }
        }
        let log = store.log();
        check(log.as_ref(), &model).await;
    }
    let log = store.log();
    let report = log.verify().await.unwrap();
    assert_eq!(report.events, model.events.len() as u64);
    assert_eq!(report.head, log.head());
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), max_shrink_iters: 200, ..ProptestConfig::default() })]

    #[test]
    fn log_matches_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        for backend in backends() {
            runtime().block_on(run_ops(backend.as_ref(), &ops));
        }
    }
}
