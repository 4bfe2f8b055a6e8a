//! The event log: an append-only, gap-free, hash-chained sequence of records.
//!
//! This module owns the storage contract every backend keeps ([`EventLog`]):
//! global positions from 1 with no gaps, per-stream versions with optimistic
//! concurrency, atomic batches, idempotency keys, a hash chain over the
//! canonical record bytes, and subscriptions that hand over from catch-up to
//! live without a gap or a duplicate. [`SledLog`] is the embedded default;
//! the PostgreSQL backend lives in its own crate and implements the same trait.
//!
//! **Architecture Invariant:** the domain never sees a backend: it talks to
//! `Arc<dyn EventLog>` and to [`RecordedEvent`]s only.

mod error;
pub mod group;
mod record;
mod sled;
mod subscribe;

pub use error::LogError;
pub use record::{
    chain_append, decode_record, encode_record, envelope_of, hex, request_digest, ChainVerifier,
    ChainedRecord, Envelope, Hash, IdempotencyMark, IdempotencyMarkRef, RecordView, StoredRecord,
    CODEC_POSTCARD, GENESIS_HASH, RECORD_FORMAT,
};
pub use sled::{SledLog, SledOptions};
pub use subscribe::{read_all_stream, subscribe};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::time::Timestamp;

/// Largest payload accepted, by every backend. (In sled, larger values would
/// become blob files, which sled 0.34.7 writes without fsync.)
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;
/// Most events one append may carry, by every backend.
pub const MAX_EVENTS_PER_APPEND: usize = 100_000;

/// The checks every backend makes before queueing an append: at least one
/// event, at most [`MAX_EVENTS_PER_APPEND`], payloads within [`MAX_PAYLOAD_BYTES`].
pub fn check_append(request: &AppendRequest) -> Result<(), LogError> {
    if request.events.is_empty() {
        return Err(LogError::InvalidInput("an append needs at least one event".into()));
    }
    if request.events.len() > MAX_EVENTS_PER_APPEND {
        return Err(LogError::InvalidInput(format!(
            "an append may carry at most {MAX_EVENTS_PER_APPEND} events"
        )));
    }
    if let Some(e) = request.events.iter().find(|e| e.payload.len() > MAX_PAYLOAD_BYTES) {
        return Err(LogError::InvalidInput(format!(
            "event {} has a payload of {} bytes; the limit is {MAX_PAYLOAD_BYTES}",
            e.event_type,
            e.payload.len()
        )));
    }
    Ok(())
}

/// A record's global position: 1 for the first event, no gaps.
pub type Position = u64;

/// The name of a stream: one per case (`case-…`) plus the registry's (`org`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct StreamId(String);

impl StreamId {
    /// Longest stream name accepted, in bytes.
    pub const MAX_LEN: usize = 200;

    /// Validates a stream name: 1 to 200 bytes, no NUL (NUL separates index keys).
    pub fn new(name: impl Into<String>) -> Result<StreamId, LogError> {
        let name = name.into();
        if name.is_empty() || name.len() > Self::MAX_LEN || name.contains('\0') {
            return Err(LogError::InvalidInput(format!(
                "stream name {name:?} must be 1 to {} bytes without NUL",
                Self::MAX_LEN
            )));
        }
        Ok(StreamId(name))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What an append expects of the stream's current version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpectedVersion {
    /// No check.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream's last version must be exactly this (streams start at version 1).
    Exact(u64),
}

/// For people: "version 7", "no stream yet", "any version" (error
/// messages must not show the Rust form `Exact(7)`).
impl std::fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any version"),
            ExpectedVersion::NoStream => f.write_str("no stream yet"),
            ExpectedVersion::Exact(v) => write!(f, "version {v}"),
        }
    }
}

impl ExpectedVersion {
    /// Whether a stream whose last version is `current` (0: no stream) satisfies this.
    pub fn admits(self, current: u64) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => current == 0,
            ExpectedVersion::Exact(v) => current == v,
        }
    }
}

/// How long an append waits before it is acknowledged: which failure an
/// acknowledged append survives. Every mode is group commit: one flush or
/// sync serves every append of a group.
///
/// | mode | sled | PostgreSQL | survives |
/// |---|---|---|---|
/// | `Durable` (default) | sled's flush, then one `fdatasync` of its data file (`<dir>/db`) per group | `synchronous_commit = on` | a power cut or OS crash |
/// | `Flushed` | sled's flush only (`sync_file_range` on Linux: no file metadata, no disk-cache flush) | `synchronous_commit = off` | a crash of the process |
/// | `Buffered` | neither: flushed in the background within the flush interval | `synchronous_commit = off` | nothing: a crash can lose the last interval |
///
/// Parsed from `buffered`, `flushed` or `durable`; `strict` (a mode of
/// earlier builds that fsynced every file of the store) is accepted as an
/// alias of `durable`, which now gives the same promise, so stored configs
/// and scripts keep working.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Durability {
    /// Acknowledged once applied to the store; flushed in the background
    /// within the flush interval. A crash can lose the last interval.
    Buffered,
    /// Acknowledged after the store's flush returned: survives the process
    /// crashing, not a power cut (sled 0.34 flushes with `sync_file_range`,
    /// which persists neither file metadata nor the disk's cache: sled #1452).
    Flushed,
    /// Acknowledged after the group is on stable storage: survives a power
    /// cut. The default.
    #[default]
    #[serde(alias = "Strict")]
    Durable,
}

impl std::str::FromStr for Durability {
    type Err = LogError;
    fn from_str(s: &str) -> Result<Self, LogError> {
        match s.to_ascii_lowercase().as_str() {
            "buffered" => Ok(Durability::Buffered),
            "flushed" => Ok(Durability::Flushed),
            // `strict` was the power-loss-safe mode of earlier builds.
            "durable" | "strict" => Ok(Durability::Durable),
            _ => Err(LogError::InvalidInput(format!(
                "unknown durability {s:?}: use buffered, flushed or durable"
            ))),
        }
    }
}

/// One event to append.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventData {
    /// Stable type name, e.g. `CaseEscalated`.
    pub event_type: String,
    /// Schema version of the payload for that type.
    pub schema_version: u16,
    /// Codec of `payload` ([`CODEC_POSTCARD`] today).
    pub payload_codec: u8,
    /// The encoded event.
    pub payload: Vec<u8>,
}

/// An append: one or more events to one stream, all or nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendRequest {
    /// The stream appended to.
    pub stream: StreamId,
    /// The version the caller believes the stream has.
    pub expected: ExpectedVersion,
    /// The events, in order; at least one.
    pub events: Vec<EventData>,
    /// Who caused the events (staff id, `resident:…`, `system`).
    pub actor: String,
    /// Groups the events of one business transaction.
    pub correlation_id: Option<String>,
    /// The event or request that caused these.
    pub causation_id: Option<String>,
    /// A retried request with the same key returns the first outcome and writes nothing.
    pub idempotency_key: Option<String>,
    /// What "the same request" means for the key: when set, this digest is
    /// stored and compared instead of the digest of the events. The engine
    /// sets it to the digest of the *command*, because a retried command is
    /// decided against a newer state and would produce different events.
    pub content_digest: Option<Hash>,
}

impl AppendRequest {
    /// A request with no correlation, causation or idempotency key.
    pub fn new(
        stream: StreamId,
        expected: ExpectedVersion,
        actor: impl Into<String>,
        events: Vec<EventData>,
    ) -> Self {
        AppendRequest {
            stream,
            expected,
            events,
            actor: actor.into(),
            correlation_id: None,
            causation_id: None,
            idempotency_key: None,
            content_digest: None,
        }
    }
}

/// What an acknowledged append wrote (or, for a retried key, had written).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendOutcome {
    /// Position of the first event.
    pub first_position: Position,
    /// Position of the last event.
    pub last_position: Position,
    /// Stream version of the last event.
    pub last_version: u64,
    /// Time stamped on the events.
    pub recorded_at: Timestamp,
    /// True when the idempotency key was seen before and nothing was written.
    pub deduplicated: bool,
}

/// What an acknowledged append wrote: the outcome and the records exactly as stored.
///
/// `records` are the records the writer chained and committed, built from
/// what it encoded (no read-back), so a caller never has to read its own
/// write. On a deduplicated retry (`outcome.deduplicated`) they are the
/// first call's records, read back from the log by position: the one case
/// where the log reads what it did not just write.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Appended {
    /// Positions, version and time of the append (the first call's, on a retry).
    pub outcome: AppendOutcome,
    /// The appended records in position order, hashes and links included.
    pub records: Vec<RecordedEvent>,
}

impl Appended {
    /// An outcome with its records; for backends (the struct is non-exhaustive).
    pub fn new(outcome: AppendOutcome, records: Vec<RecordedEvent>) -> Appended {
        Appended { outcome, records }
    }
}

/// Completes the answer to a deduplicated append: the writer knows only the
/// first call's outcome, so its records are read back by position. Any other
/// answer is returned as it is. Every backend's `append` ends with this.
pub async fn read_back_duplicate<L: EventLog + ?Sized>(
    log: &L,
    appended: Appended,
) -> Result<Appended, LogError> {
    let o = appended.outcome;
    if !o.deduplicated || !appended.records.is_empty() {
        return Ok(appended);
    }
    let count = (o.last_position + 1).saturating_sub(o.first_position);
    let records = log.read_all(o.first_position, count as usize).await?;
    let whole = records.len() as u64 == count
        && records.iter().zip(o.first_position..).all(|(r, p)| r.position == p);
    if !whole {
        return Err(LogError::Corruption {
            position: o.first_position,
            reason: format!(
                "the records of a keyed append ({}..={}) are not all in the log",
                o.first_position, o.last_position
            ),
        });
    }
    Ok(Appended { outcome: o, records })
}

/// A stored event with its envelope, as read back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedEvent {
    /// Global position.
    pub position: Position,
    /// The stream it belongs to.
    pub stream: String,
    /// Its version in the stream.
    pub version: u64,
    /// Stable type name.
    pub event_type: String,
    /// Schema version of the payload.
    pub schema_version: u16,
    /// When the log recorded it (from the log's clock).
    pub recorded_at: Timestamp,
    /// Who caused it.
    pub actor: String,
    /// Correlation id.
    pub correlation_id: Option<String>,
    /// Causation id.
    pub causation_id: Option<String>,
    /// Set on the first event of a keyed append.
    pub idempotency: Option<IdempotencyMark>,
    /// Payload codec tag.
    pub payload_codec: u8,
    /// Encoded payload.
    pub payload: Vec<u8>,
    /// Hash of the previous record ([`GENESIS_HASH`] for position 1).
    pub prev_hash: Hash,
    /// Hash of this record's canonical bytes.
    pub hash: Hash,
}

/// The committed end of the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogHead {
    /// Last committed position (0 for an empty log).
    pub position: Position,
    /// Hash of the record at that position ([`GENESIS_HASH`] for an empty log).
    pub hash: Hash,
}

/// The result of walking the whole chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// Events checked.
    pub events: u64,
    /// The head after the walk.
    pub head: LogHead,
}

/// What [`EventLog::read_all_with`] hands each record to: it sees the
/// record only for the call (the view borrows the store's bytes), and an
/// error it returns ends the read.
pub type RecordVisitor<'f> = dyn for<'v> FnMut(&RecordView<'v>) -> Result<(), LogError> + Send + 'f;

/// The storage contract of the event log; see the module docs.
#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Appends a batch atomically after the optimistic-concurrency and
    /// idempotency checks; returns once the batch meets the log's durability,
    /// with the records it wrote (see [`Appended`]).
    async fn append(&self, request: AppendRequest) -> Result<Appended, LogError>;

    /// Up to `limit` events of `stream` with version >= `from_version`, in order.
    async fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError>;

    /// Up to `limit` events with position >= `from`, in order.
    async fn read_all(&self, from: Position, limit: usize) -> Result<Vec<RecordedEvent>, LogError>;

    /// Hands `visit` up to `limit` records with position >= `from`, in
    /// order, as borrowed [`RecordView`]s, and returns how many it handed.
    /// An error from `visit` ends the read and is returned. A backend that
    /// can decode in place (sled, over its frame bytes) copies nothing; the
    /// default reads a page with [`EventLog::read_all`] and views it.
    ///
    /// A backend serves only records that check out: sled compares each
    /// record's hash with its frame's check bytes and each record's link
    /// with the hash of the record before it (the first one's included).
    async fn read_all_with(
        &self,
        from: Position,
        limit: usize,
        visit: &mut RecordVisitor<'_>,
    ) -> Result<usize, LogError> {
        let page = self.read_all(from, limit).await?;
        for rec in &page {
            visit(&RecordView::of(rec))?;
        }
        Ok(page.len())
    }

    /// The last version of `stream` (0 when it does not exist).
    async fn stream_version(&self, stream: &StreamId) -> Result<u64, LogError>;

    /// Names of the streams that start with `prefix`, in order (for id allocation and listings).
    async fn streams_with_prefix(&self, prefix: &str) -> Result<Vec<String>, LogError>;

    /// Appends records exported from another store exactly as they were
    /// (positions, times, actors, hashes), checking that they continue this
    /// log's chain and streams. All or nothing; used by import and migrate.
    async fn import(&self, records: Vec<RecordedEvent>) -> Result<LogHead, LogError>;

    /// The digest and outcome recorded under an idempotency key, if the key was used.
    async fn idempotency_lookup(
        &self,
        key: &str,
    ) -> Result<Option<(Hash, AppendOutcome)>, LogError>;

    /// The committed head.
    fn head(&self) -> LogHead;

    /// Follows the committed head position; subscriptions wait on it.
    fn watch_head(&self) -> watch::Receiver<Position>;

    /// Walks the whole chain; the first bad record is `LogError::Corruption`.
    async fn verify(&self) -> Result<VerifyReport, LogError>;

    /// Bytes the store occupies, where the backend can tell.
    async fn size_on_disk(&self) -> Result<u64, LogError>;

    /// A short name of the backend and where it stores, for reports.
    fn describe(&self) -> String;

    /// Stores `bytes` as the derived checkpoint called `name`, replacing the
    /// previous one. Checkpoints are not events: they are not chained, and a
    /// reader must check one against the log before trusting it. A backend
    /// that keeps none ignores this.
    async fn save_checkpoint(&self, name: &str, bytes: Vec<u8>) -> Result<(), LogError> {
        let _ = (name, bytes);
        Ok(())
    }

    /// The checkpoint last saved under `name`, if any.
    async fn load_checkpoint(&self, name: &str) -> Result<Option<Vec<u8>>, LogError> {
        let _ = name;
        Ok(None)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::Durability;

    #[test]
    fn durability_names_and_the_strict_alias() {
        let parse = |s: &str| s.parse::<Durability>().unwrap();
        assert_eq!(parse("buffered"), Durability::Buffered);
        assert_eq!(parse("Flushed"), Durability::Flushed);
        assert_eq!(parse("durable"), Durability::Durable);
        assert_eq!(parse("strict"), Durability::Durable);
        assert_eq!(Durability::default(), Durability::Durable);
        assert!("fast".parse::<Durability>().is_err());
    }
}
