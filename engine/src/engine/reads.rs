//! The read-access audit: who was shown a case's personal data, and when.
//!
//! Every surface that shows a case's personal data (the contact's name and
//! phone, a resident's real id) calls [`Engine::record_personal_read`]; it
//! appends a [`Event::PersonalDataRead`] to the case's `reads-<id>` stream
//! (never the case stream: a read must not change the case's version, its
//! ETag, or its fold). Reads are batched: at most one event per reader per
//! case per minute, with the last recorded time per (reader, case) kept in
//! memory (and read from the case's reads stream the first time a process
//! meets the pair, so a CLI run or a restarted server batches too), so a
//! page that polls a case does not grow the log per request.

use std::collections::HashMap;

use super::Engine;
use crate::domain::{CaseId, Event};
use crate::log::{AppendRequest, ExpectedVersion, StreamId};
use crate::time::Timestamp;
use crate::Error;

/// Prefix of the per-case read-audit streams (`reads-<case id>`).
pub const READS_STREAM_PREFIX: &str = "reads-";

/// Reads of the same case by the same reader closer together than this
/// are covered by the first one's event.
pub const READ_BATCH_MS: i64 = 60_000;

/// Last recorded read time per (reader, case id).
pub(super) type ReadMarks = HashMap<(String, String), Timestamp>;

/// One recorded read of a case's personal data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PersonalRead {
    /// Log position of the event.
    pub position: u64,
    /// When it was recorded (the first read of its minute).
    pub at: Timestamp,
    /// Who read.
    pub reader: String,
    /// Which personal fields were shown.
    pub fields: Vec<String>,
    /// Where (`api`, `dashboard`, `open311`, `feed`, `cli`).
    pub surface: String,
}

fn reads_stream(id: &str) -> Result<StreamId, Error> {
    StreamId::new(format!("{READS_STREAM_PREFIX}{id}")).map_err(Error::from)
}

impl Engine {
    /// Records that `reader` was shown the personal `fields` of case `id`
    /// on `surface`, unless the same reader's read of the same case was
    /// recorded less than a minute ago. Returns whether an event was
    /// appended. Call it before the response leaves: a read that cannot
    /// be recorded is an error, not a silent gap in the audit.
    pub async fn record_personal_read(
        &self,
        reader: &str,
        id: &CaseId,
        fields: &[&str],
        surface: &str,
    ) -> Result<bool, Error> {
        let now = self.clock.now();
        let key = (reader.to_string(), id.to_string());
        let known = self.read_marks.lock().unwrap_or_else(|p| p.into_inner()).contains_key(&key);
        if !known {
            // First read of this pair by this process (a CLI run, a server
            // after a restart): the log knows the last one.
            let last =
                self.personal_reads(id).await?.into_iter().rev().find(|r| r.reader == reader);
            if let Some(r) = last {
                self.read_marks
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(key.clone())
                    .or_insert(r.at);
            }
        }
        {
            let mut marks = self.read_marks.lock().unwrap_or_else(|p| p.into_inner());
            match marks.get(&key) {
                Some(last) if now.0 - last.0 < READ_BATCH_MS && now.0 >= last.0 => {
                    return Ok(false)
                }
                _ => {}
            }
            // Marked before the append so concurrent reads of one pair
            // append once; unmarked again if the append fails.
            marks.insert(key.clone(), now);
        }
        let event = Event::PersonalDataRead {
            reader: reader.to_string(),
            case_id: id.to_string(),
            fields: fields.iter().map(|f| f.to_string()).collect(),
            surface: surface.to_string(),
        };
        let req = AppendRequest::new(
            reads_stream(id.as_str())?,
            ExpectedVersion::Any,
            reader.to_string(),
            vec![event.to_data()],
        );
        match self.log.append(req).await {
            Ok(done) => {
                self.note_recorded(done.outcome.recorded_at);
                Ok(true)
            }
            Err(e) => {
                self.read_marks.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
                Err(e.into())
            }
        }
    }

    /// Every recorded read of case `id`'s personal data, oldest first
    /// (empty when nobody has read it).
    pub async fn personal_reads(&self, id: &CaseId) -> Result<Vec<PersonalRead>, Error> {
        let stream = reads_stream(id.as_str())?;
        let mut out = Vec::new();
        let mut from = 1;
        loop {
            let page = self.log.read_stream(&stream, from, super::PAGE).await?;
            let Some(last) = page.last() else { break };
            from = last.version + 1;
            for rec in page {
                let ev = Event::from_recorded(&rec)
                    .map_err(|e| Error::Corruption { position: rec.position, reason: e.0 })?;
                if let Event::PersonalDataRead { reader, fields, surface, .. } = ev {
                    out.push(PersonalRead {
                        position: rec.position,
                        at: rec.recorded_at,
                        reader,
                        fields,
                        surface,
                    });
                }
            }
        }
        Ok(out)
    }
}
