//! The live event feed: `GET /api/v1/events` as Server-Sent Events.
//!
//! Each SSE message is one log record: `id:` is its position, `event:` its
//! type, `data:` the envelope and decoded event as JSON ([`EventView`]).
//! The stream is [`Engine::subscribe`](gridcase_engine::Engine::subscribe):
//! catch-up from the requested position, then live, with no gap or
//! duplicate at the hand-over. A client that reconnects with
//! `Last-Event-ID: N` resumes at N + 1, so a portal can drop and resume
//! without missing or repeating an event. Keep-alive comments keep proxies
//! from closing an idle stream; the stream ends when the server shuts down.

use std::convert::Infallible;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, StreamExt};
use gridcase_engine::domain::Event;
use gridcase_engine::engine::{CASE_STREAM_PREFIX, READS_STREAM_PREFIX};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::Principal;
use crate::dto::{ErrorBody, EventView};
use crate::extract::{header_text, QueryParams};
use crate::scope::{readable_case, Scope};
use crate::state::AppState;
use crate::ApiError;

/// Where the feed starts.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// The first position to send (default: only events committed from now on).
    pub from: Option<u64>,
}

/// Server-Sent Events, catch-up then live.
#[utoipa::path(
    get, path = "/api/v1/events", tag = "events",
    summary = "Every event from a position on, then live, as Server-Sent Events",
    description = "Each message has `id: <position>`, `event: <event type>` and JSON data (an EventView). Reconnect with `Last-Event-ID` to resume after the last event received; it takes precedence over `from`. A caller receives only the events of cases it may read (its scope, as everywhere), the registry's events, and (supervisors and auditors) the read-audit events; contact details and residents' real ids are shown only to callers who may read the case's personal data, and each showing is recorded as a PersonalDataRead. If a stored record does not verify, the feed sends one `event: error` message with data `{\"code\":\"corruption\",\"position\":N,\"message\":…}` and ends before that record.",
    params(
        EventsQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "The last position received; the feed resumes after it"),
    ),
    responses(
        (status = 200, description = "An event stream", content_type = "text/event-stream", body = String),
        (status = 400, description = "Bad from or Last-Event-ID: not a number, or past the log's head", body = ErrorBody),
        (status = 401, description = "No or unknown API key", body = ErrorBody),
        (status = 403, description = "Not a staff key", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn events(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    QueryParams(q): QueryParams<EventsQuery>,
) -> Result<Response, ApiError> {
    principal.require_staff()?;
    // One rule for both ways of saying where to start: a position the log
    // has (or the next one) is taken, anything past it is refused. A
    // client cannot have received an id past the head, and `n + 1` on
    // u64::MAX would otherwise wrap to 0 and replay the whole log.
    let head = state.engine.log().head().position;
    let start = match header_text(&headers, "last-event-id")? {
        Some(id) if !id.is_empty() => match id.parse::<u64>() {
            Ok(n) if n <= head => n + 1,
            Ok(n) => {
                return Err(ApiError::bad_request(
                    "invalid_last_event_id",
                    format!("Last-Event-ID {n} is past the log's head ({head})"),
                ))
            }
            Err(_) => {
                return Err(ApiError::bad_request(
                    "invalid_last_event_id",
                    "Last-Event-ID must be a log position (a number)",
                ))
            }
        },
        _ => match q.from {
            Some(from) if from > head.saturating_add(1) => {
                return Err(ApiError::bad_request(
                    "invalid_from",
                    format!("from {from} is past the log's next position ({})", head + 1),
                ))
            }
            Some(from) => from,
            None => head + 1,
        },
    };
    let mut shutdown = state.shutdown.clone();
    let metrics = state.metrics.clone();
    let keep_alive = state.options.sse_keep_alive;
    let records = state.engine.subscribe(start);
    let viewer = principal;
    let alarm = metrics.clone();
    let feed = stream::unfold((records, false, viewer), move |(mut records, done, viewer)| {
        let alarm = alarm.clone();
        let state = state.clone();
        async move {
            if done {
                return None;
            }
            let msg = loop {
                break match records.next().await {
                    Some(Ok(rec)) => match Event::from_recorded(&rec) {
                        Ok(ev) => {
                            // Only what the viewer may read: cases in its scope,
                            // the registry, and read-audit events for the district.
                            let personal = match sees(&state, &viewer, &rec.stream).await {
                                Ok(Visible::No) => continue,
                                Ok(Visible::Yes { personal }) => personal,
                                Err(e) => {
                                    let m = serde_json::json!({ "message": e.to_string() });
                                    return Some((
                                        Ok(SseEvent::default().event("error").data(m.to_string())),
                                        (records, true, viewer),
                                    ));
                                }
                            };
                            let view =
                                EventView::new(&rec, &ev, personal.is_some(), &state.pseudonyms);
                            if let Some(case) = &personal {
                                // What of the case's personal data this message shows.
                                let mut fields = Vec::new();
                                if matches!(ev, Event::CaseSubmitted { contact: Some(_), .. }) {
                                    fields.push("contact");
                                }
                                if crate::dto::is_real_resident(&view.actor) {
                                    fields.push("submitted_by");
                                }
                                if let Err(e) =
                                    state.record_read(&viewer, case, &fields, "feed").await
                                {
                                    tracing::error!(error = %e, "event feed: cannot record a read; the event is not sent");
                                    return None;
                                }
                            }
                            let data = serde_json::to_string(&view).unwrap_or_else(|_| "{}".into());
                            SseEvent::default()
                                .id(rec.position.to_string())
                                .event(rec.event_type.clone())
                                .data(data)
                        }
                        Err(e) => {
                            // Send the failure and end: skipping the record would be a gap.
                            tracing::error!(error = %e, "event feed: undecodable event");
                            let m = format!(
                                "{{\"position\":{},\"message\":{}}}",
                                rec.position,
                                serde_json::Value::String(e.0)
                            );
                            return Some((
                                Ok::<_, Infallible>(SseEvent::default().event("error").data(m)),
                                (records, true, viewer),
                            ));
                        }
                    },
                    Some(Err(e)) => {
                        // A record that does not verify ends the feed before it:
                        // the error event names its position, and the alarm fires.
                        let m = match &e {
                            gridcase_engine::Error::Corruption { position, .. } => {
                                alarm.corruption(*position, "event feed");
                                serde_json::json!({
                                    "code": "corruption", "position": position, "message": e.to_string(),
                                })
                            }
                            _ => {
                                tracing::error!(error = %e, "event feed: the log subscription failed");
                                serde_json::json!({ "message": e.to_string() })
                            }
                        };
                        return Some((
                            Ok(SseEvent::default().event("error").data(m.to_string())),
                            (records, true, viewer),
                        ));
                    }
                    None => return None,
                };
            };
            Some((Ok(msg), (records, false, viewer)))
        }
    });
    // Count the client for as long as the stream lives, and end the stream
    // when the server shuts down (graceful shutdown waits for open streams).
    let guard = metrics.sse_client();
    // The closure owns the guard, so it lives exactly as long as the stream.
    let guarded = feed
        .map(move |m| {
            let _keep = &guard;
            m
        })
        .take_until(async move {
            let _ = shutdown.wait_for(|s| *s).await;
        });
    Ok(Sse::new(guarded).keep_alive(KeepAlive::new().interval(keep_alive)).into_response())
}

/// Whether a viewer gets a record of `stream`, and with the case's
/// personal data (the case, when it may read them).
enum Visible {
    No,
    Yes { personal: Option<std::sync::Arc<gridcase_engine::domain::Case>> },
}

/// The feed's use of the one rule ([`Scope`]): a case event goes to those
/// who may read the case as it stands now (so a department that takes a
/// case over sees its later events), registry events to every staff key,
/// and read-audit events only to supervisors and auditors.
async fn sees(state: &AppState, viewer: &Principal, stream: &str) -> Result<Visible, ApiError> {
    let scope = Scope::of(viewer);
    if let Some(id) = stream.strip_prefix(CASE_STREAM_PREFIX) {
        let id = crate::extract::case_id(id)?;
        return match readable_case(state, viewer, &id).await {
            Ok(case) => {
                let personal = scope.may_read_personal_of(&case).then_some(case);
                Ok(Visible::Yes { personal })
            }
            Err(ApiError::NotFound(_)) => Ok(Visible::No),
            Err(e) => Err(e),
        };
    }
    if stream.starts_with(READS_STREAM_PREFIX) {
        return Ok(if scope == Scope::All { Visible::Yes { personal: None } } else { Visible::No });
    }
    Ok(Visible::Yes { personal: None })
}
