//! The frame codec: how a group's records are laid out in one sled value,
//! and how a stored frame is read back and checked.

use super::SledOptions;
use crate::log::record::{ChainVerifier, ChainedRecord, RecordView, GENESIS_HASH};
use crate::log::LogError;
use crate::log::Position;
use crate::time::Timestamp;

pub(super) const FRAME_FORMAT: u8 = 1;
pub(super) const FRAME_TRAILER: usize = 32;
pub(super) const TABLE_ENTRY: usize = 12;

pub(super) fn frame_key(p: Position) -> [u8; 8] {
    p.to_be_bytes()
}

pub(super) fn key_position(k: &[u8]) -> Result<Position, LogError> {
    let arr: [u8; 8] = k.try_into().map_err(|_| LogError::Corruption {
        position: 0,
        reason: format!("frame key of {} bytes", k.len()),
    })?;
    Ok(u64::from_be_bytes(arr))
}

/// Frame layout: `[FRAME_FORMAT][count u32 LE]`, then per record
/// `[offset u32 LE][first 8 bytes of its BLAKE3 hash]`, the records, and a
/// 32-byte trailer holding the hash of the last record. The per-record check
/// bytes let verify name the exact record whose bytes changed; the chain
/// (inside the hashed bytes) catches a rewrite that also fixed the table.
pub(super) fn encode_frame(records: &[ChainedRecord]) -> Vec<u8> {
    let body: usize = records.iter().map(|r| r.bytes.len()).sum();
    let mut out = Vec::with_capacity(5 + TABLE_ENTRY * records.len() + body + FRAME_TRAILER);
    out.push(FRAME_FORMAT);
    out.extend_from_slice(&(records.len() as u32).to_le_bytes());
    let mut offset = 0u32;
    for r in records {
        out.extend_from_slice(&offset.to_le_bytes());
        out.extend_from_slice(&r.record.hash[..8]);
        offset += r.bytes.len() as u32;
    }
    for r in records {
        out.extend_from_slice(&r.bytes);
    }
    let last_hash = records.last().map(|r| r.record.hash).unwrap_or(GENESIS_HASH);
    out.extend_from_slice(&last_hash);
    out
}

/// Cuts a group's records into frames of at most `max_frame_events` records
/// and `max_frame_bytes` record bytes (one larger record goes alone), keyed
/// by the position of their first record.
pub(super) fn frames_of(
    options: &SledOptions,
    records: &[ChainedRecord],
) -> Vec<(Position, Vec<u8>)> {
    let mut frames = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    let mut seal = |run: &[ChainedRecord]| {
        if let Some(first) = run.first() {
            frames.push((first.record.position, encode_frame(run)));
        }
    };
    for (i, r) in records.iter().enumerate() {
        let full = i - start >= options.max_frame_events
            || bytes + r.bytes.len() > options.max_frame_bytes;
        if i > start && full {
            seal(&records[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += r.bytes.len();
    }
    seal(&records[start..]);
    frames
}

/// A decoded frame header: where each record's bytes lie.
pub(super) struct FrameView<'a> {
    /// Each record's canonical bytes, in position order.
    pub(super) records: Vec<&'a [u8]>,
    /// Each record's stored check bytes (the first 8 bytes of its hash).
    pub(super) checks: Vec<&'a [u8]>,
    /// The hash of the frame's last record, as stored.
    pub(super) trailer: &'a [u8],
}

pub(super) fn view_frame(first: Position, bytes: &[u8]) -> Result<FrameView<'_>, LogError> {
    let bad = |reason: String| LogError::Corruption { position: first, reason };
    if bytes.len() < 5 + FRAME_TRAILER {
        return Err(bad("frame shorter than its header".into()));
    }
    if bytes[0] > FRAME_FORMAT {
        return Err(LogError::NewerFormat {
            found: bytes[0] as u32,
            supported: FRAME_FORMAT as u32,
        });
    }
    if bytes[0] != FRAME_FORMAT {
        return Err(bad(format!("unknown frame format {}", bytes[0])));
    }
    let count = u32::from_le_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
    let table_end = 5usize.checked_add(
        count.checked_mul(TABLE_ENTRY).ok_or_else(|| bad("frame count overflows".into()))?,
    );
    let table_end = table_end.ok_or_else(|| bad("frame count overflows".into()))?;
    if count == 0 || table_end + FRAME_TRAILER > bytes.len() {
        return Err(bad(format!("frame header claims {count} records")));
    }
    let body = &bytes[table_end..bytes.len() - FRAME_TRAILER];
    let mut offsets = Vec::with_capacity(count + 1);
    let mut checks = Vec::with_capacity(count);
    for i in 0..count {
        let at = 5 + TABLE_ENTRY * i;
        offsets
            .push(u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
                as usize);
        checks.push(&bytes[at + 4..at + TABLE_ENTRY]);
    }
    offsets.push(body.len());
    let mut records = Vec::with_capacity(count);
    for i in 0..count {
        let (s, e) = (offsets[i], offsets[i + 1]);
        if s > e || e > body.len() {
            return Err(LogError::Corruption {
                position: first + i as u64,
                reason: "record offsets out of range".into(),
            });
        }
        records.push(&body[s..e]);
    }
    Ok(FrameView { records, checks, trailer: &bytes[bytes.len() - FRAME_TRAILER..] })
}

/// Decodes a record of a frame in place and checks its hash against the
/// check bytes the frame stores for it (and its position). Every read of a
/// frame goes through here, so no record whose bytes changed is served.
pub(super) fn checked_view<'a>(
    position: Position,
    raw: &'a [u8],
    check: &[u8],
) -> Result<RecordView<'a>, LogError> {
    RecordView::decode_checked(raw, position, check)
}

/// Decodes every record of a frame and checks it against `verifier`
/// (positions, previous-hash links) and against the frame trailer; returns
/// when the frame's last record was recorded.
pub(super) fn check_frame(
    first: Position,
    bytes: &[u8],
    verifier: &mut ChainVerifier,
) -> Result<Timestamp, LogError> {
    let view = view_frame(first, bytes)?;
    let mut last_at = Timestamp(i64::MIN);
    for (i, (raw, check)) in view.records.iter().zip(&view.checks).enumerate() {
        let rec = checked_view(first + i as u64, raw, check)?;
        verifier.check_view(&rec)?;
        last_at = rec.recorded_at;
    }
    if view.trailer != verifier.head_hash() {
        return Err(LogError::Corruption {
            position: verifier.head_position(),
            reason: "frame trailer does not match the hash of its last record".into(),
        });
    }
    Ok(last_at)
}
