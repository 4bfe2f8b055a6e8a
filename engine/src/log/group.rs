//! The group-commit core every backend's writer runs: deciding a group of
//! appends (or checking an import) in memory before anything is written.
//!
//! A writer takes every append queued at that moment, decides each one here
//! against the committed state and against the appends before it in the same
//! group (the idempotency checks, the per-stream version overlay, positions
//! and the hash chain through [`chain_append`]), writes the resulting
//! [`GroupWrite`] in one atomic step of its store, and answers each caller
//! with [`replies`]. Only the write and the committed-state lookup
//! ([`CommittedState`]) differ between backends, so the rules that make two
//! stores of the same appends byte-identical live once, here.

use std::collections::BTreeMap;
use std::ops::Range;

use super::record::{
    chain_append, decode_record, encode_record, envelope_of, request_digest, ChainVerifier,
    ChainedRecord, Hash,
};
use super::{
    AppendOutcome, AppendRequest, Appended, LogHead, RecordedEvent, StreamId, MAX_PAYLOAD_BYTES,
};
use crate::log::LogError;
use crate::time::Timestamp;
use tokio::sync::{mpsc, oneshot};

/// Largest position or stream version a group may assign: PostgreSQL keeps
/// them as `bigint`, and a store must be exportable to every backend.
const MAX_POSITION: u64 = i64::MAX as u64;

/// The committed state a group is decided against, as one backend knows it
/// (the sled writer's in-memory maps, or what PostgreSQL returned under the
/// store lock). The group itself overlays what it writes on top.
pub trait CommittedState {
    /// Last committed version of `stream` (0 when it does not exist).
    fn stream_version(&self, stream: &str) -> Result<u64, LogError>;

    /// The request digest and first outcome committed under `key`, if any.
    fn idempotency(&self, key: &str) -> Result<Option<(Hash, AppendOutcome)>, LogError>;
}

/// What one append of a group comes to.
#[derive(Clone, Debug)]
pub enum Decision {
    /// Refused before anything was written (a conflict, a key reused for a
    /// different request, an encoding failure); the group goes on without it.
    Refused(LogError),
    /// A retry of a key committed before this group: answered without writing.
    Committed(AppendOutcome),
    /// A retry of a key written earlier in this same group: holds once the
    /// group commits.
    Repeat(AppendOutcome),
    /// Written by this group, as `records` of its [`GroupWrite`]; holds once
    /// the group commits.
    Written {
        /// The outcome the caller gets.
        outcome: AppendOutcome,
        /// Which records of the group are this append's.
        records: Range<usize>,
    },
}

/// What one group (or one import) writes, decided and encoded: the backend
/// stores exactly this, atomically, and then moves its head to `head`.
#[derive(Clone, Debug)]
pub struct GroupWrite {
    /// The new records in position order, chained from the old head.
    pub records: Vec<ChainedRecord>,
    /// The last version of every stream the group writes.
    pub stream_heads: BTreeMap<String, u64>,
    /// New idempotency entries: key → (request digest, first outcome). For
    /// an import the last record carrying a key wins, as when an index is
    /// rebuilt from the records.
    pub keys: BTreeMap<String, (Hash, AppendOutcome)>,
    /// The head once the group is committed.
    pub head: LogHead,
    /// The latest recorded-at in the store once the group is committed; no
    /// later append is stamped below it.
    pub recorded_at: Timestamp,
}

impl GroupWrite {
    fn empty(head: LogHead, recorded_at: Timestamp) -> GroupWrite {
        GroupWrite {
            records: Vec::new(),
            stream_heads: BTreeMap::new(),
            keys: BTreeMap::new(),
            head,
            recorded_at,
        }
    }

    /// The stream version as this group leaves it: its own writes first,
    /// then the committed state.
    fn stream_version(
        &self,
        stream: &str,
        committed: &impl CommittedState,
    ) -> Result<u64, LogError> {
        match self.stream_heads.get(stream) {
            Some(v) => Ok(*v),
            None => committed.stream_version(stream),
        }
    }
}

/// One group of appends being decided. Appends are decided in the order
/// they are given, each seeing the ones before it.
#[derive(Debug)]
pub struct Group {
    now: Timestamp,
    write: GroupWrite,
}

impl Group {
    /// A group that continues from `head`. Its records are stamped with the
    /// clock's `now`, or with `last_recorded` if the clock went back, so that
    /// recorded-at never decreases along the log.
    pub fn new(head: LogHead, last_recorded: Timestamp, now: Timestamp) -> Group {
        let now = now.max(last_recorded);
        Group { now, write: GroupWrite::empty(head, now) }
    }

    /// Decides one append against `committed` and the group so far. An
    /// append that is written is chained after the group's last record.
    /// `[write 5]` in ARCHITECTURE.md.
    pub fn decide(&mut self, req: &AppendRequest, committed: &impl CommittedState) -> Decision {
        match self.try_decide(req, committed) {
            Ok(d) => d,
            Err(e) => Decision::Refused(e),
        }
    }

    fn try_decide(
        &mut self,
        req: &AppendRequest,
        committed: &impl CommittedState,
    ) -> Result<Decision, LogError> {
        let digest = req.idempotency_key.as_ref().map(|_| request_digest(req));
        if let (Some(key), Some(digest)) = (&req.idempotency_key, digest) {
            let (seen, in_group) = match self.write.keys.get(key) {
                Some(e) => (Some(*e), true),
                None => (committed.idempotency(key)?, false),
            };
            if let Some((first_digest, mut outcome)) = seen {
                if first_digest != digest {
                    return Err(LogError::IdempotencyMismatch { key: key.clone() });
                }
                outcome.deduplicated = true;
                return Ok(if in_group {
                    Decision::Repeat(outcome)
                } else {
                    Decision::Committed(outcome)
                });
            }
        }
        let stream = req.stream.as_str();
        let current = self.write.stream_version(stream, committed)?;
        if !req.expected.admits(current) {
            return Err(LogError::Conflict {
                stream: stream.to_string(),
                expected: req.expected,
                actual: current,
            });
        }
        let head = self.write.head;
        let count = req.events.len() as u64;
        let first_position = head.position + 1;
        let last_position = head.position.saturating_add(count);
        let last_version = current.saturating_add(count);
        if last_position > MAX_POSITION || last_version > MAX_POSITION {
            return Err(LogError::InvalidInput("the log is full".into()));
        }
        let encoded = chain_append(req, first_position, current + 1, self.now, head.hash, digest)?;
        // Only now, with nothing left to fail, does the group take the append.
        let outcome = AppendOutcome {
            first_position,
            last_position,
            last_version,
            recorded_at: self.now,
            deduplicated: false,
        };
        let start = self.write.records.len();
        let hash = encoded.last().map(|r| r.record.hash).unwrap_or(head.hash);
        self.write.records.extend(encoded);
        self.write.stream_heads.insert(stream.to_string(), last_version);
        self.write.head = LogHead { position: last_position, hash };
        if let (Some(key), Some(digest)) = (&req.idempotency_key, digest) {
            self.write.keys.insert(key.clone(), (digest, outcome));
        }
        Ok(Decision::Written { outcome, records: start..self.write.records.len() })
    }

    /// What the group writes so far.
    pub fn write(&self) -> &GroupWrite {
        &self.write
    }

    /// True when no decided append writes anything (all were refused or retries).
    pub fn is_empty(&self) -> bool {
        self.write.records.is_empty()
    }

    /// Ends the group: what it writes, for the backend to commit.
    pub fn into_write(self) -> GroupWrite {
        self.write
    }
}

/// The answer to every append of a group, once its write ended with
/// `committed` (`Ok` also when the group wrote nothing). `records` are the
/// group's records ([`GroupWrite::records`]); each written append gets its
/// own, moved, not copied. A refused append keeps its own error whatever
/// happened to the write; every other append fails with the write's error.
/// A retry is answered with its outcome and no records: the backend's
/// `append` reads those back ([`super::read_back_duplicate`]).
pub fn replies(
    decisions: Vec<Decision>,
    records: Vec<ChainedRecord>,
    committed: Result<(), LogError>,
) -> Vec<Result<Appended, LogError>> {
    let mut records = records.into_iter().map(|c| c.record);
    decisions
        .into_iter()
        .map(|d| match (d, &committed) {
            (Decision::Refused(e), _) => Err(e),
            (_, Err(e)) => Err(e.clone()),
            (Decision::Committed(o) | Decision::Repeat(o), Ok(())) => {
                Ok(Appended::new(o, Vec::new()))
            }
            (Decision::Written { outcome, records: range }, Ok(())) => {
                Ok(Appended::new(outcome, records.by_ref().take(range.len()).collect()))
            }
        })
        .collect()
}

/// Queues a job for a backend's single writer (built by `job` around the
/// reply channel) and waits for the writer's answer. A writer that stopped,
/// or dropped the job without answering, is an internal error: the log is
/// closing or its writer died.
pub async fn ask_writer<J, T>(
    writer: &mpsc::Sender<J>,
    job: impl FnOnce(oneshot::Sender<Result<T, LogError>>) -> J,
) -> Result<T, LogError> {
    let (reply, answer) = oneshot::channel();
    writer.send(job(reply)).await.map_err(|_| LogError::Internal("log writer stopped".into()))?;
    answer
        .await
        .map_err(|_| LogError::Internal("log writer stopped before acknowledging".into()))?
}

/// Checks records exported from another store before they are appended as
/// they are: each within the payload limit, with a valid stream name, hashing
/// to its stated hash, continuing the chain from `head` and its stream from
/// the version `committed` has (or the import so far). All or nothing: the
/// first bad record fails the whole import and nothing is written.
pub fn check_import(
    records: &[RecordedEvent],
    head: LogHead,
    last_recorded: Timestamp,
    committed: &impl CommittedState,
) -> Result<GroupWrite, LogError> {
    let mut write = GroupWrite::empty(head, last_recorded);
    let mut verifier = ChainVerifier::resume(head.position + 1, head.hash);
    for rec in records {
        if rec.payload.len() > MAX_PAYLOAD_BYTES {
            return Err(LogError::InvalidInput(format!(
                "record {} has a payload over {MAX_PAYLOAD_BYTES} bytes",
                rec.position
            )));
        }
        StreamId::new(rec.stream.clone())?;
        if rec.position > MAX_POSITION || rec.version > MAX_POSITION {
            return Err(LogError::InvalidInput(format!(
                "record {} has a position or version past {MAX_POSITION}",
                rec.position
            )));
        }
        // Re-encoding proves the record's fields are its canonical bytes:
        // an exported record whose stated hash is not the hash of its own
        // fields was altered after it was written.
        let bytes = encode_record(&envelope_of(rec))?;
        let decoded = decode_record(&bytes, rec.position)?;
        if decoded.hash != rec.hash {
            return Err(LogError::Corruption {
                position: rec.position,
                reason: "record does not hash to its stated hash".into(),
            });
        }
        verifier.check(&decoded)?;
        let current = write.stream_version(&rec.stream, committed)?;
        if rec.version != current + 1 {
            return Err(LogError::Corruption {
                position: rec.position,
                reason: format!(
                    "stream {} jumps from version {current} to {}",
                    rec.stream, rec.version
                ),
            });
        }
        write.stream_heads.insert(rec.stream.clone(), rec.version);
        if let Some(mark) = &rec.idempotency {
            let count = u64::from(mark.count.max(1));
            let outcome = AppendOutcome {
                first_position: rec.position,
                last_position: rec.position + count - 1,
                last_version: rec.version + count - 1,
                recorded_at: rec.recorded_at,
                deduplicated: false,
            };
            write.keys.insert(mark.key.clone(), (mark.digest, outcome));
        }
        write.recorded_at = write.recorded_at.max(rec.recorded_at);
        write.records.push(ChainedRecord { record: decoded, bytes });
    }
    write.head = LogHead { position: verifier.head_position(), hash: verifier.head_hash() };
    Ok(write)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::log::{EventData, ExpectedVersion, CODEC_POSTCARD, GENESIS_HASH};

    #[derive(Default)]
    struct State {
        versions: HashMap<String, u64>,
        keys: HashMap<String, (Hash, AppendOutcome)>,
    }

    impl CommittedState for State {
        fn stream_version(&self, stream: &str) -> Result<u64, LogError> {
            Ok(self.versions.get(stream).copied().unwrap_or(0))
        }
        fn idempotency(&self, key: &str) -> Result<Option<(Hash, AppendOutcome)>, LogError> {
            Ok(self.keys.get(key).copied())
        }
    }

    fn req(stream: &str, expected: ExpectedVersion, n: usize, key: Option<&str>) -> AppendRequest {
        let events = (0..n)
            .map(|i| EventData {
                event_type: "T".into(),
                schema_version: 1,
                payload_codec: CODEC_POSTCARD,
                payload: vec![i as u8; 8],
            })
            .collect();
        let mut r = AppendRequest::new(StreamId::new(stream).unwrap(), expected, "t", events);
        r.idempotency_key = key.map(str::to_string);
        r
    }

    const EMPTY: LogHead = LogHead { position: 0, hash: GENESIS_HASH };

    #[test]
    fn a_group_sees_its_own_versions_and_keys() {
        let state = State::default();
        let mut g = Group::new(EMPTY, Timestamp(5), Timestamp(3));
        let a = g.decide(&req("a", ExpectedVersion::NoStream, 2, Some("k")), &state);
        let again = g.decide(&req("a", ExpectedVersion::NoStream, 2, Some("k")), &state);
        let late = g.decide(&req("a", ExpectedVersion::NoStream, 1, None), &state);
        let next = g.decide(&req("a", ExpectedVersion::Exact(2), 1, None), &state);
        let other = g.decide(&req("b", ExpectedVersion::Any, 1, Some("k")), &state);
        assert!(matches!(a, Decision::Written { records: Range { start: 0, end: 2 }, .. }));
        assert!(matches!(again, Decision::Repeat(o) if o.deduplicated && o.first_position == 1));
        assert!(matches!(late, Decision::Refused(LogError::Conflict { actual: 2, .. })));
        assert!(matches!(next, Decision::Written { outcome, .. } if outcome.first_position == 3));
        assert!(matches!(other, Decision::Refused(LogError::IdempotencyMismatch { .. })));
        // The clock went back: the group keeps the store's latest time.
        assert!(g.write().records.iter().all(|r| r.record.recorded_at == Timestamp(5)));
        assert_eq!(g.write().head.position, 3);

        let records = g.write().records.clone();
        let decisions = vec![a, again, late, next, other];
        let out = replies(decisions.clone(), records.clone(), Ok(()));
        let positions: Vec<Vec<u64>> = out
            .iter()
            .map(|r| r.as_ref().map(|a| a.records.iter().map(|e| e.position).collect()))
            .map(|r| r.unwrap_or_default())
            .collect();
        assert_eq!(positions, vec![vec![1, 2], vec![], vec![], vec![3], vec![]]);
        let failed = replies(decisions, records, Err(LogError::Storage("disk".into())));
        assert!(matches!(failed[0], Err(LogError::Storage(_))));
        assert!(matches!(failed[2], Err(LogError::Conflict { .. })));
    }

    #[test]
    fn committed_keys_are_retries_and_import_continues_the_chain() {
        let mut g = Group::new(EMPTY, Timestamp(0), Timestamp(9));
        let state = State::default();
        g.decide(&req("a", ExpectedVersion::Any, 3, Some("k")), &state);
        g.decide(&req("b", ExpectedVersion::Any, 1, None), &state);
        let write = g.into_write();
        let exported: Vec<RecordedEvent> = write.records.iter().map(|c| c.record.clone()).collect();

        let keys = write.keys.iter().map(|(k, v)| (k.clone(), *v)).collect();
        let state = State { keys, ..State::default() };
        let mut g = Group::new(write.head, write.recorded_at, Timestamp(1));
        let retry = g.decide(&req("a", ExpectedVersion::Any, 3, Some("k")), &state);
        assert!(matches!(retry, Decision::Committed(o) if o.first_position == 1));
        assert!(g.is_empty());

        let imported = check_import(&exported, EMPTY, Timestamp(0), &State::default()).unwrap();
        assert_eq!(imported.head, write.head);
        assert_eq!(imported.keys, write.keys);
        assert_eq!(imported.stream_heads, write.stream_heads);
        let bytes = |w: &GroupWrite| w.records.iter().map(|c| c.bytes.clone()).collect::<Vec<_>>();
        assert_eq!(bytes(&imported), bytes(&write));
        // Not from the start of the chain, or out of stream order: refused.
        assert!(matches!(
            check_import(&exported[1..], EMPTY, Timestamp(0), &State::default()),
            Err(LogError::Corruption { position: 1, .. })
        ));
        let mut state = State::default();
        state.versions.insert("a".into(), 1);
        assert!(matches!(
            check_import(&exported, EMPTY, Timestamp(0), &state),
            Err(LogError::Corruption { position: 1, .. })
        ));
    }
}
