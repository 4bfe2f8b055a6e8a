//! Helpers shared by the log suites: building requests, reading a whole log,
//! and the structural checks every suite applies (gap-free positions, a
//! valid hash chain, hashes that are BLAKE3 of the canonical record bytes).

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use gridcase::engine::log::{
    encode_record, ChainVerifier, Envelope, EventData, EventLog, ExpectedVersion, Hash,
    RecordedEvent, StreamId, CODEC_POSTCARD,
};
use gridcase::engine::log::{subscribe, AppendRequest, Position};
use std::sync::Arc;

/// A stream id (panics on an invalid name: test input is fixed).
pub fn sid(name: &str) -> StreamId {
    StreamId::new(name).expect("valid stream name")
}

/// An event of type `T` carrying `payload`.
pub fn event(payload: impl Into<Vec<u8>>) -> EventData {
    EventData {
        event_type: "T".into(),
        schema_version: 1,
        payload_codec: CODEC_POSTCARD,
        payload: payload.into(),
    }
}

/// An append of events whose payloads are `tag/0`, `tag/1`, … .
pub fn request(stream: &str, expected: ExpectedVersion, tag: &str, n: usize) -> AppendRequest {
    AppendRequest::new(
        sid(stream),
        expected,
        "tester",
        (0..n).map(|i| event(format!("{tag}/{i}").into_bytes())).collect(),
    )
}

/// Every committed event, read in pages of `page`.
pub async fn read_everything(log: &dyn EventLog, page: usize) -> Vec<RecordedEvent> {
    let mut out: Vec<RecordedEvent> = Vec::new();
    loop {
        let from = out.last().map(|e| e.position + 1).unwrap_or(1);
        let batch = log.read_all(from, page).await.expect("read_all");
        if batch.is_empty() {
            return out;
        }
        out.extend(batch);
    }
}

/// The record hash recomputed from the event's fields: BLAKE3 of the canonical bytes.
pub fn recomputed_hash(ev: &RecordedEvent) -> Hash {
    let env = Envelope {
        position: ev.position,
        stream: ev.stream.clone(),
        version: ev.version,
        event_type: ev.event_type.clone(),
        schema_version: ev.schema_version,
        recorded_at: ev.recorded_at.0,
        actor: ev.actor.clone(),
        correlation_id: ev.correlation_id.clone(),
        causation_id: ev.causation_id.clone(),
        idempotency: ev.idempotency.clone(),
        payload_codec: ev.payload_codec,
        payload: ev.payload.clone(),
        prev_hash: ev.prev_hash,
    };
    *blake3::hash(&encode_record(&env).expect("encode")).as_bytes()
}

/// Checks a full read of the log: positions 1..=n with no gap, the chain
/// links, every hash is the hash of the canonical bytes, every stream's
/// versions run 1, 2, 3… in position order, and the head names the last record.
pub fn check_structure(log: &dyn EventLog, all: &[RecordedEvent]) {
    let mut chain = ChainVerifier::default();
    let mut versions: HashMap<&str, u64> = HashMap::new();
    for ev in all {
        chain.check(ev).unwrap_or_else(|e| panic!("chain broken: {e}"));
        assert_eq!(recomputed_hash(ev), ev.hash, "hash of position {}", ev.position);
        let v = versions.entry(ev.stream.as_str()).or_insert(0);
        assert_eq!(ev.version, *v + 1, "version of {} at position {}", ev.stream, ev.position);
        *v = ev.version;
    }
    let head = log.head();
    assert_eq!(head.position, all.len() as u64, "head position");
    assert_eq!(head.hash, chain.head_hash(), "head hash");
}

/// Collects a subscription from `from` until it has delivered `upto`,
/// failing if it stalls for 30 s.
pub async fn collect_subscription(
    log: Arc<dyn EventLog>,
    from: Position,
    upto: Position,
) -> Vec<RecordedEvent> {
    let mut sub = subscribe(log, from);
    let mut out = Vec::new();
    let mut next = from.max(1);
    while next <= upto {
        let item = tokio::time::timeout(Duration::from_secs(30), sub.next())
            .await
            .unwrap_or_else(|_| panic!("subscription stalled waiting for position {next}"))
            .expect("a subscription ends only on an error")
            .expect("subscription item");
        next = item.position + 1;
        out.push(item);
    }
    out
}

/// Asserts that `positions` is exactly `from, from+1, …`.
pub fn assert_consecutive(positions: impl IntoIterator<Item = Position>, from: Position) {
    for (i, p) in positions.into_iter().enumerate() {
        assert_eq!(p, from + i as u64, "item {i} of a run that should start at {from}");
    }
}
