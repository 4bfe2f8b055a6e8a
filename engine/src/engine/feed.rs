//! The typed feed a portal follows: every recorded event with its decoded
//! [`Event`], from a position on, optionally only one case's or some event
//! types', and either live (never ending) or ending at the head as it
//! stood when the feed was opened.

use futures::future;
use futures::stream::{BoxStream, StreamExt};

use super::{Engine, CASE_STREAM_PREFIX};
use crate::domain::{CaseId, Event};
use crate::log::{read_all_stream, subscribe, Position, RecordedEvent};
use crate::Error;

/// Which events a [`Engine::feed`] yields and when it ends.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct FeedOptions {
    /// Only this case's events.
    pub case: Option<CaseId>,
    /// Only events of these stable type names (`CaseEscalated`, ...); empty: all.
    pub event_types: Vec<String>,
    /// End once the head as of opening the feed is reached, instead of
    /// following new events live.
    pub until_head: bool,
}

impl FeedOptions {
    /// Every event, live.
    pub fn live() -> FeedOptions {
        FeedOptions::default()
    }

    /// Every event up to the current head, then the end.
    pub fn until_head() -> FeedOptions {
        FeedOptions { until_head: true, ..FeedOptions::default() }
    }

    /// Only `case`'s events.
    pub fn case(mut self, case: CaseId) -> FeedOptions {
        self.case = Some(case);
        self
    }

    /// Only events of type `name` (may be called again to add types).
    pub fn event_type(mut self, name: impl Into<String>) -> FeedOptions {
        self.event_types.push(name.into());
        self
    }
}

impl Engine {
    /// Every event from position `from` on as `(record, event)`, in log
    /// order with no gap and no duplicate, filtered by `options`.
    ///
    /// A record whose payload does not decode ends the feed with
    /// [`Error::Corruption`] naming its position. Dropping the stream at
    /// any point is safe: it only reads.
    pub fn feed(
        &self,
        from: Position,
        options: FeedOptions,
    ) -> BoxStream<'static, Result<(RecordedEvent, Event), Error>> {
        let records = if options.until_head {
            read_all_stream(self.log.clone(), from)
        } else {
            subscribe(self.log.clone(), from)
        };
        let stream = options.case.as_ref().map(|c| format!("{CASE_STREAM_PREFIX}{c}"));
        let types = options.event_types;
        records
            .filter(move |r| {
                let keep = match r {
                    Ok(rec) => {
                        stream.as_deref().is_none_or(|s| rec.stream == s)
                            && (types.is_empty() || types.contains(&rec.event_type))
                    }
                    Err(_) => true,
                };
                future::ready(keep)
            })
            .map(|r| {
                let rec = r?;
                let event = Event::from_recorded(&rec)
                    .map_err(|e| Error::Corruption { position: rec.position, reason: e.0 })?;
                Ok((rec, event))
            })
            .boxed()
    }
}
