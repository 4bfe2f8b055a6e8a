//! The stored record: its canonical bytes, its hash, and the chain check.
//!
//! A record is `[RECORD_FORMAT][envelope codec] ++ postcard(Envelope)`. The
//! hash of a record is BLAKE3 over exactly those bytes, and every envelope
//! carries the hash of the record before it, so changing any byte of any
//! record breaks the chain at that position. These bytes are the
//! compatibility boundary of the store: the golden tests below pin them.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::{AppendRequest, Position, RecordedEvent};
use crate::log::LogError;
use crate::time::Timestamp;

/// A BLAKE3 digest.
pub type Hash = [u8; 32];

/// A record as a store keeps it: its canonical bytes and its stored check
/// bytes (the start of its hash; see [`RecordView::decode_checked`]).
pub type StoredRecord<'a> = (&'a [u8], &'a [u8]);

/// The `prev_hash` of the record at position 1.
pub const GENESIS_HASH: Hash = [0u8; 32];

/// Version of the record layout written by this build. A store holding a
/// newer one is refused on open.
pub const RECORD_FORMAT: u8 = 1;

/// Codec tag of postcard (stable, documented wire format), for envelopes and payloads.
pub const CODEC_POSTCARD: u8 = 1;

/// Marks the first record of an append made with an idempotency key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyMark {
    /// The caller's key.
    pub key: String,
    /// Digest of the request's content, to tell a retry from a different request.
    pub digest: Hash,
    /// Number of events the keyed append wrote.
    pub count: u32,
}

/// The envelope as serialized. Field order is part of the format: append only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Global position.
    pub position: Position,
    /// Stream name.
    pub stream: String,
    /// Version in the stream.
    pub version: u64,
    /// Stable event type name.
    pub event_type: String,
    /// Payload schema version.
    pub schema_version: u16,
    /// Recorded-at, epoch milliseconds.
    pub recorded_at: i64,
    /// Actor.
    pub actor: String,
    /// Correlation id.
    pub correlation_id: Option<String>,
    /// Causation id.
    pub causation_id: Option<String>,
    /// Idempotency mark (first record of a keyed append only).
    pub idempotency: Option<IdempotencyMark>,
    /// Payload codec tag.
    pub payload_codec: u8,
    /// Payload bytes.
    pub payload: Vec<u8>,
    /// Hash of the previous record.
    pub prev_hash: Hash,
}

/// Canonical bytes of a record.
pub fn encode_record(envelope: &Envelope) -> Result<Vec<u8>, LogError> {
    let mut out = Vec::with_capacity(96 + envelope.payload.len() + envelope.stream.len());
    out.push(RECORD_FORMAT);
    out.push(CODEC_POSTCARD);
    let out = postcard::to_extend(envelope, out)
        .map_err(|e| LogError::Codec(format!("cannot encode envelope: {e}")))?;
    Ok(out)
}

/// The envelope bytes after the record's format and codec tags, once both
/// are known to this build.
fn envelope_body(bytes: &[u8], position: Position) -> Result<&[u8], LogError> {
    let [format, codec, body @ ..] = bytes else {
        return Err(LogError::Corruption {
            position,
            reason: "record shorter than its header".into(),
        });
    };
    if *format > RECORD_FORMAT {
        return Err(LogError::NewerFormat {
            found: *format as u32,
            supported: RECORD_FORMAT as u32,
        });
    }
    if *codec != CODEC_POSTCARD {
        return Err(LogError::Corruption {
            position,
            reason: format!("unknown envelope codec tag {codec}"),
        });
    }
    Ok(body)
}

/// Decodes canonical record bytes, computing the record's hash on the way.
/// A bad tag or undecodable bytes are reported against `position`.
pub fn decode_record(bytes: &[u8], position: Position) -> Result<RecordedEvent, LogError> {
    Ok(RecordView::decode(bytes, position)?.to_owned())
}

/// The envelope as serialized, borrowed from the record bytes: the same
/// fields in the same order as [`Envelope`] (postcard writes a `Vec<u8>`
/// and a `&[u8]` alike, as a length and the bytes), decoded without
/// copying a string or the payload.
#[derive(Deserialize)]
struct EnvelopeRef<'a> {
    position: Position,
    stream: &'a str,
    version: u64,
    event_type: &'a str,
    schema_version: u16,
    recorded_at: i64,
    actor: &'a str,
    correlation_id: Option<&'a str>,
    causation_id: Option<&'a str>,
    #[serde(borrow)]
    idempotency: Option<IdempotencyMarkRef<'a>>,
    payload_codec: u8,
    payload: &'a [u8],
    prev_hash: Hash,
}

/// The one envelope decoder: canonical record bytes to their borrowed
/// envelope, nothing hashed.
fn envelope_ref(bytes: &[u8], position: Position) -> Result<EnvelopeRef<'_>, LogError> {
    let body = envelope_body(bytes, position)?;
    postcard::from_bytes(body).map_err(|e| LogError::Corruption {
        position,
        reason: format!("envelope does not decode: {e}"),
    })
}

/// A record decoded in place: its strings and payload borrow the record
/// bytes (a sled frame, or a [`RecordedEvent`] through [`RecordView::of`]),
/// so reading one allocates nothing. Fields mean what they mean on
/// [`RecordedEvent`]; [`RecordView::to_owned`] makes one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordView<'a> {
    /// Global position, as the record says.
    pub position: Position,
    /// The stream it belongs to.
    pub stream: &'a str,
    /// Its version in the stream.
    pub version: u64,
    /// Stable type name.
    pub event_type: &'a str,
    /// Schema version of the payload.
    pub schema_version: u16,
    /// When the log recorded it.
    pub recorded_at: Timestamp,
    /// Who caused it.
    pub actor: &'a str,
    /// Correlation id.
    pub correlation_id: Option<&'a str>,
    /// Causation id.
    pub causation_id: Option<&'a str>,
    /// Set on the first event of a keyed append.
    pub idempotency: Option<IdempotencyMarkRef<'a>>,
    /// Payload codec tag.
    pub payload_codec: u8,
    /// Encoded payload.
    pub payload: &'a [u8],
    /// Hash of the previous record.
    pub prev_hash: Hash,
    /// BLAKE3 of this record's canonical bytes, computed once when decoded.
    pub hash: Hash,
    /// The canonical bytes it was decoded from, when it was decoded from
    /// stored bytes (`None` for a view of an owned record, which
    /// [`RecordView::canonical_bytes`] re-encodes).
    pub bytes: Option<&'a [u8]>,
}

impl<'a> RecordView<'a> {
    /// Decodes canonical record bytes in place and hashes them. A bad tag
    /// or undecodable bytes are reported against `position`. Nothing is
    /// checked against the chain here: see [`ChainVerifier::check_view`].
    pub fn decode(bytes: &'a [u8], position: Position) -> Result<RecordView<'a>, LogError> {
        let env = envelope_ref(bytes, position)?;
        Ok(RecordView {
            position: env.position,
            stream: env.stream,
            version: env.version,
            event_type: env.event_type,
            schema_version: env.schema_version,
            recorded_at: Timestamp(env.recorded_at),
            actor: env.actor,
            correlation_id: env.correlation_id,
            causation_id: env.causation_id,
            idempotency: env.idempotency,
            payload_codec: env.payload_codec,
            payload: env.payload,
            prev_hash: env.prev_hash,
            hash: *blake3::hash(bytes).as_bytes(),
            bytes: Some(bytes),
        })
    }

    /// The record's canonical bytes exactly as stored: borrowed when the
    /// view was decoded from them, otherwise re-encoded and checked against
    /// the record's hash (so what is returned is always the record the
    /// chain holds). What a Merkle leaf, a backup and a standby carry.
    pub fn canonical_bytes(&self) -> Result<Cow<'a, [u8]>, LogError> {
        if let Some(bytes) = self.bytes {
            return Ok(Cow::Borrowed(bytes));
        }
        let bytes = encode_record(&envelope_of(&self.to_owned()))?;
        if *blake3::hash(&bytes).as_bytes() != self.hash {
            return Err(LogError::Corruption {
                position: self.position,
                reason: "the record does not re-encode to its stored bytes".into(),
            });
        }
        Ok(Cow::Owned(bytes))
    }

    /// Decodes a stored record and checks it against what its store keeps
    /// beside it: `check` is the start of the record's hash as stored (sled
    /// keeps 8 bytes per record in the frame, PostgreSQL the whole 32 in
    /// the row; at least 8), and the record must say it is at `position`.
    /// Every backend's read decodes through here, so a record whose bytes
    /// changed is never handed out. The link to the record before is
    /// checked apart: by a [`ChainVerifier`] over a run of records, or by
    /// [`RecordView::check_link_to`] for a record read alone.
    pub fn decode_checked(
        bytes: &'a [u8],
        position: Position,
        check: &[u8],
    ) -> Result<RecordView<'a>, LogError> {
        let view = RecordView::decode(bytes, position)?;
        if check.len() < 8 || check.len() > view.hash.len() || check != &view.hash[..check.len()] {
            return Err(LogError::Corruption {
                position,
                reason: "record bytes do not match their stored check bytes".into(),
            });
        }
        if view.position != position {
            return Err(LogError::Corruption {
                position,
                reason: format!("record says position {}", view.position),
            });
        }
        Ok(view)
    }

    /// Checks the link of a record read alone (by key: a stream read, the
    /// head) to the record before it, given that record's canonical bytes
    /// and stored check bytes (`None` for the record at position 1). The
    /// predecessor is checked as a record first, so a changed predecessor
    /// is reported at its own position; its hash is then computed from its
    /// bytes, not taken from anything stored beside it, so the link holds
    /// only if both records are the ones the chain was built from. This
    /// costs one more decode and hash per record read alone.
    pub fn check_link_to(&self, predecessor: Option<StoredRecord<'_>>) -> Result<(), LogError> {
        let prev_hash = match predecessor {
            Some((bytes, check)) => {
                let before = self.position.checked_sub(1).ok_or_else(|| LogError::Corruption {
                    position: self.position,
                    reason: "a record before position 1".into(),
                })?;
                RecordView::decode_checked(bytes, before, check)?.hash
            }
            None if self.position == 1 => GENESIS_HASH,
            None => {
                return Err(LogError::Corruption {
                    position: self.position,
                    reason: format!("the record before it ({}) is missing", self.position - 1),
                })
            }
        };
        ChainVerifier::resume(self.position, prev_hash).check_view(self)
    }

    /// A view of an owned record, for code that folds views and is handed
    /// records (a backend without a zero-copy read, tests).
    pub fn of(rec: &'a RecordedEvent) -> RecordView<'a> {
        RecordView {
            position: rec.position,
            stream: &rec.stream,
            version: rec.version,
            event_type: &rec.event_type,
            schema_version: rec.schema_version,
            recorded_at: rec.recorded_at,
            actor: &rec.actor,
            correlation_id: rec.correlation_id.as_deref(),
            causation_id: rec.causation_id.as_deref(),
            idempotency: rec.idempotency.as_ref().map(|m| IdempotencyMarkRef {
                key: &m.key,
                digest: m.digest,
                count: m.count,
            }),
            payload_codec: rec.payload_codec,
            payload: &rec.payload,
            prev_hash: rec.prev_hash,
            hash: rec.hash,
            bytes: None,
        }
    }

    /// The owned record, copying every string and the payload.
    pub fn to_owned(&self) -> RecordedEvent {
        RecordedEvent {
            position: self.position,
            stream: self.stream.to_string(),
            version: self.version,
            event_type: self.event_type.to_string(),
            schema_version: self.schema_version,
            recorded_at: self.recorded_at,
            actor: self.actor.to_string(),
            correlation_id: self.correlation_id.map(str::to_string),
            causation_id: self.causation_id.map(str::to_string),
            idempotency: self.idempotency.map(|m| IdempotencyMark {
                key: m.key.to_string(),
                digest: m.digest,
                count: m.count,
            }),
            payload_codec: self.payload_codec,
            payload: self.payload.to_vec(),
            prev_hash: self.prev_hash,
            hash: self.hash,
        }
    }
}

/// [`IdempotencyMark`], borrowed from the record bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub struct IdempotencyMarkRef<'a> {
    /// The caller's key.
    pub key: &'a str,
    /// Digest of the request's content.
    pub digest: Hash,
    /// Number of events the keyed append wrote.
    pub count: u32,
}

/// The envelope fields a stream index needs, decoded in place and without
/// hashing: an index is derived state, and the chain is checked where
/// records are read.
pub(crate) struct IndexFields<'a> {
    pub position: Position,
    pub stream: &'a str,
    pub version: u64,
    pub recorded_at: i64,
    pub idempotency: Option<IdempotencyMarkRef<'a>>,
}

/// Decodes the fields of [`IndexFields`] from canonical record bytes.
pub(crate) fn index_fields(bytes: &[u8], position: Position) -> Result<IndexFields<'_>, LogError> {
    let env = envelope_ref(bytes, position)?;
    Ok(IndexFields {
        position: env.position,
        stream: env.stream,
        version: env.version,
        recorded_at: env.recorded_at,
        idempotency: env.idempotency,
    })
}

/// One event of an append, encoded and chained: the record as a reader will
/// get it back, and the canonical bytes the backend stores.
#[derive(Clone, Debug)]
pub struct ChainedRecord {
    /// The record exactly as stored (its position, version, links and hash),
    /// so a writer can answer with what it wrote without reading it back.
    pub record: RecordedEvent,
    /// The canonical record bytes; `record.hash` is BLAKE3 of them.
    pub bytes: Vec<u8>,
}

/// Encodes the events of an append as consecutive records from
/// `first_position` and stream version `first_version`, each chained to the
/// one before (the first to `prev_hash`); the first carries the idempotency
/// mark when the request has a key. Every backend's writer uses this, so the
/// bytes (and hashes) of an append do not depend on the backend.
pub fn chain_append(
    req: &AppendRequest,
    first_position: Position,
    first_version: u64,
    recorded_at: Timestamp,
    prev_hash: Hash,
    digest: Option<Hash>,
) -> Result<Vec<ChainedRecord>, LogError> {
    let mut hash = prev_hash;
    let mut out = Vec::with_capacity(req.events.len());
    for (i, ev) in req.events.iter().enumerate() {
        let env = Envelope {
            position: first_position + i as u64,
            stream: req.stream.as_str().to_string(),
            version: first_version + i as u64,
            event_type: ev.event_type.clone(),
            schema_version: ev.schema_version,
            recorded_at: recorded_at.0,
            actor: req.actor.clone(),
            correlation_id: req.correlation_id.clone(),
            causation_id: req.causation_id.clone(),
            idempotency: match (i, &req.idempotency_key, digest) {
                (0, Some(key), Some(digest)) => Some(IdempotencyMark {
                    key: key.clone(),
                    digest,
                    count: req.events.len() as u32,
                }),
                _ => None,
            },
            payload_codec: ev.payload_codec,
            payload: ev.payload.clone(),
            prev_hash: hash,
        };
        let bytes = encode_record(&env)?;
        hash = *blake3::hash(&bytes).as_bytes();
        // The envelope moves into the record: the fields were cloned once,
        // for the encoder, and are not cloned again for the reply.
        out.push(ChainedRecord { record: recorded_of(env, hash), bytes });
    }
    Ok(out)
}

/// The recorded event of a decoded envelope whose bytes hash to `hash`.
fn recorded_of(env: Envelope, hash: Hash) -> RecordedEvent {
    RecordedEvent {
        position: env.position,
        stream: env.stream,
        version: env.version,
        event_type: env.event_type,
        schema_version: env.schema_version,
        recorded_at: Timestamp(env.recorded_at),
        actor: env.actor,
        correlation_id: env.correlation_id,
        causation_id: env.causation_id,
        idempotency: env.idempotency,
        payload_codec: env.payload_codec,
        payload: env.payload,
        prev_hash: env.prev_hash,
        hash,
    }
}

/// The envelope of a recorded event, for re-encoding it byte for byte.
pub fn envelope_of(ev: &RecordedEvent) -> Envelope {
    Envelope {
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
    }
}

/// Digest of an append's content (stream, expectation, actor and events), so a
/// retried idempotency key can be told from a different request under the same key.
pub fn request_digest(req: &AppendRequest) -> Hash {
    if let Some(d) = req.content_digest {
        return d;
    }
    let mut h = blake3::Hasher::new();
    let mut field = |b: &[u8]| {
        h.update(&(b.len() as u64).to_le_bytes());
        h.update(b);
    };
    field(req.stream.as_str().as_bytes());
    field(format!("{:?}", req.expected).as_bytes());
    field(req.actor.as_bytes());
    for e in &req.events {
        field(e.event_type.as_bytes());
        field(&e.schema_version.to_le_bytes());
        field(&[e.payload_codec]);
        field(&e.payload);
    }
    *h.finalize().as_bytes()
}

/// Checks a run of records in position order: positions consecutive, each
/// record's `prev_hash` equal to the hash of the one before.
#[derive(Clone, Debug)]
pub struct ChainVerifier {
    next_position: Position,
    prev_hash: Hash,
    events: u64,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        ChainVerifier { next_position: 1, prev_hash: GENESIS_HASH, events: 0 }
    }
}

impl ChainVerifier {
    /// A verifier that expects `next_position` next, chained to `prev_hash`.
    pub fn resume(next_position: Position, prev_hash: Hash) -> Self {
        ChainVerifier { next_position, prev_hash, events: 0 }
    }

    /// Checks one record: it is at the next position and links to the
    /// hash of the record before.
    pub fn check(&mut self, event: &RecordedEvent) -> Result<(), LogError> {
        self.check_link(event.position, event.prev_hash, event.hash)
    }

    /// [`ChainVerifier::check`] for a borrowed record.
    pub fn check_view(&mut self, view: &RecordView<'_>) -> Result<(), LogError> {
        self.check_link(view.position, view.prev_hash, view.hash)
    }

    /// The one chain check: `position` is the next one, `prev_hash` the
    /// hash of the record before; `hash` becomes the link for the next.
    fn check_link(
        &mut self,
        position: Position,
        prev_hash: Hash,
        hash: Hash,
    ) -> Result<(), LogError> {
        let expected = self.next_position;
        if position != expected {
            return Err(LogError::Corruption {
                position: expected,
                reason: format!("expected position {expected}, record says {position}"),
            });
        }
        if prev_hash != self.prev_hash {
            return Err(LogError::Corruption {
                position: expected,
                reason: "previous-hash link does not match the record before".into(),
            });
        }
        self.prev_hash = hash;
        self.next_position += 1;
        self.events += 1;
        Ok(())
    }

    /// Records checked so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Hash of the last record checked.
    pub fn head_hash(&self) -> Hash {
        self.prev_hash
    }

    /// Position of the last record checked.
    pub fn head_position(&self) -> Position {
        self.next_position - 1
    }
}

/// Lower-case hex of a hash, for reports.
pub fn hex(hash: &Hash) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sample() -> Envelope {
        Envelope {
            position: 7,
            stream: "case-1".into(),
            version: 2,
            event_type: "CaseEscalated".into(),
            schema_version: 1,
            recorded_at: 1_772_496_000_000,
            actor: "S001".into(),
            correlation_id: Some("c1".into()),
            causation_id: None,
            idempotency: Some(IdempotencyMark { key: "k".into(), digest: [9; 32], count: 1 }),
            payload_codec: CODEC_POSTCARD,
            payload: vec![1, 2, 3],
            prev_hash: [0xab; 32],
        }
    }

    /// Pins the record layout: if this fails, old logs no longer decode the same.
    #[test]
    fn golden_record_bytes() {
        let bytes = encode_record(&sample()).unwrap();
        let expected_hex = "01010706636173652d31020d43617365457363616c617465640180d0f48f96670453303031010263310001016b\
            0909090909090909090909090909090909090909090909090909090909090909010103010203\
            abababababababababababababababababababababababababababababababab";
        let expected_hex: String = expected_hex.split_whitespace().collect();
        assert_eq!(hex_bytes(&bytes), expected_hex);
        let back = decode_record(&bytes, 7).unwrap();
        assert_eq!(back.position, 7);
        assert_eq!(back.stream, "case-1");
        assert_eq!(back.hash, *blake3::hash(&bytes).as_bytes());
    }

    fn hex_bytes(b: &[u8]) -> String {
        b.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn flipped_byte_breaks_decode_or_hash() {
        let bytes = encode_record(&sample()).unwrap();
        let good = decode_record(&bytes, 7).unwrap();
        for i in 2..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            if let Ok(ev) = decode_record(&bad, 7) {
                assert_ne!(ev.hash, good.hash, "byte {i}");
            }
        }
    }

    /// The borrowed view reads every field the owned envelope holds.
    #[test]
    fn view_round_trips_the_envelope() {
        for idempotency in [None, sample().idempotency] {
            let env = Envelope { idempotency, causation_id: Some("x".into()), ..sample() };
            let bytes = encode_record(&env).unwrap();
            let view = RecordView::decode(&bytes, 7).unwrap();
            assert_eq!(envelope_of(&view.to_owned()), env);
            assert_eq!(view.hash, *blake3::hash(&bytes).as_bytes());
            assert_eq!(RecordView::of(&view.to_owned()), RecordView { bytes: None, ..view });
            // The stored bytes come back borrowed; a view of an owned
            // record re-encodes to the same bytes.
            assert_eq!(view.canonical_bytes().unwrap().as_ref(), &bytes[..]);
            assert!(matches!(view.canonical_bytes().unwrap(), Cow::Borrowed(_)));
            let owned = view.to_owned();
            assert_eq!(RecordView::of(&owned).canonical_bytes().unwrap().as_ref(), &bytes[..]);
        }
    }

    /// The stored-record check: the hash against the stored check bytes
    /// (8 to 32 bytes), the position; the link of a record read alone
    /// against its predecessor's bytes, a changed predecessor named at its
    /// own position.
    #[test]
    fn checked_decode_and_link_of_a_record_read_alone() {
        let before = encode_record(&Envelope { position: 6, ..sample() }).unwrap();
        let before_hash = *blake3::hash(&before).as_bytes();
        let bytes = encode_record(&Envelope { prev_hash: before_hash, ..sample() }).unwrap();
        let hash = *blake3::hash(&bytes).as_bytes();
        let corrupt_at = |r: Result<_, LogError>| match r {
            Err(LogError::Corruption { position, .. }) => position,
            other => panic!("expected corruption, got {other:?}"),
        };
        for check in [&hash[..8], &hash[..]] {
            let view = RecordView::decode_checked(&bytes, 7, check).unwrap();
            view.check_link_to(Some((&before, &before_hash[..8]))).unwrap();
        }
        assert_eq!(corrupt_at(RecordView::decode_checked(&bytes, 7, &hash[..4]).map(|_| ())), 7);
        let mut wrong = hash;
        wrong[3] ^= 1;
        assert_eq!(corrupt_at(RecordView::decode_checked(&bytes, 7, &wrong[..8]).map(|_| ())), 7);
        assert_eq!(corrupt_at(RecordView::decode_checked(&bytes, 8, &hash[..8]).map(|_| ())), 8);

        let view = RecordView::decode_checked(&bytes, 7, &hash).unwrap();
        // A predecessor changed with matching check bytes: the link breaks.
        let other = encode_record(&Envelope { position: 6, actor: "S002".into(), ..sample() });
        let other = other.unwrap();
        let other_hash = *blake3::hash(&other).as_bytes();
        assert_eq!(corrupt_at(view.check_link_to(Some((&other, &other_hash[..8])))), 7);
        // A predecessor whose bytes changed: named at its own position.
        let mut flipped = before.clone();
        flipped[20] ^= 1;
        assert_eq!(corrupt_at(view.check_link_to(Some((&flipped, &before_hash[..8])))), 6);
        // No predecessor: only position 1 links to the genesis hash.
        assert_eq!(corrupt_at(view.check_link_to(None)), 7);
        let first = encode_record(&Envelope { position: 1, prev_hash: GENESIS_HASH, ..sample() });
        let first = first.unwrap();
        let first_hash = *blake3::hash(&first).as_bytes();
        RecordView::decode_checked(&first, 1, &first_hash).unwrap().check_link_to(None).unwrap();
    }

    #[test]
    fn newer_format_is_refused() {
        let mut bytes = encode_record(&sample()).unwrap();
        bytes[0] = RECORD_FORMAT + 1;
        assert!(matches!(decode_record(&bytes, 7), Err(LogError::NewerFormat { .. })));
    }

    #[test]
    fn index_fields_read_the_envelope_prefix() {
        for idempotency in [None, sample().idempotency] {
            let env = Envelope { idempotency, ..sample() };
            let bytes = encode_record(&env).unwrap();
            let f = index_fields(&bytes, 7).unwrap();
            assert_eq!((f.position, f.stream, f.version), (7, "case-1", 2));
            assert_eq!(f.recorded_at, env.recorded_at);
            let mark = f.idempotency.map(|m| (m.key.to_string(), m.digest, m.count));
            let want = env.idempotency.map(|m| (m.key, m.digest, m.count));
            assert_eq!(mark, want);
        }
    }
}
