//! The native API's request and response bodies.
//!
//! Engine types do not derive `utoipa::ToSchema` (the engine knows nothing
//! of HTTP), so the API defines its own bodies and converts. Request bodies
//! deny unknown fields: a misspelt field is a 422, not a silently ignored
//! value. Times go out as RFC 3339 text in UTC.

use std::collections::BTreeMap;

use gridcase_engine::domain::{
    Case, Channel, Command, Contact, Event, Priority, RequestKind, Satisfaction, Submission,
};
use gridcase_engine::geo::GeoPoint;
use gridcase_engine::log::{hex, RecordedEvent};
use gridcase_engine::org::Registry;
use gridcase_engine::time::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::pseudonym::Pseudonyms;
use crate::scope::Scope;
use crate::ApiError;

macro_rules! mirror_enum {
    ($(#[$m:meta])* $name:ident => $engine:ident { $($(#[$vm:meta])* $v:ident),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vm])* $v),+ }
        impl From<$name> for $engine {
            fn from(v: $name) -> $engine { match v { $($name::$v => $engine::$v),+ } }
        }
    };
}

mirror_enum!(
    /// How a request reached the platform.
    ChannelDto => Channel {
        /// A government portal.
        Portal,
        /// The 12345 hotline.
        Hotline,
        /// Found by a grid worker on patrol.
        GridPatrol,
        /// A mobile app.
        App,
    }
);
mirror_enum!(
    /// The kind of request.
    KindDto => RequestKind {
        /// 咨询.
        Consultation,
        /// 求助.
        Help,
        /// 投诉.
        Complaint,
        /// 举报.
        Report,
        /// 建议.
        Suggestion,
    }
);
mirror_enum!(
    /// Urgency.
    PriorityDto => Priority {
        /// Ordinary.
        Normal,
        /// Faster limits.
        Urgent,
        /// Emergency limits.
        Emergency,
    }
);
mirror_enum!(
    /// The resident's rating at callback.
    SatisfactionDto => Satisfaction {
        /// 满意.
        Satisfied,
        /// 基本满意.
        BasicallySatisfied,
        /// 不满意.
        Unsatisfied,
    }
);

/// A resident's contact details.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactDto {
    /// Name.
    pub name: String,
    /// Phone number.
    pub phone: String,
}

/// A WGS84 position in degrees, as a phone's GPS reports it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PointDto {
    /// Latitude, −90 to 90.
    pub lat: f64,
    /// Longitude, −180 to 180.
    pub lon: f64,
}

impl From<GeoPoint> for PointDto {
    fn from(p: GeoPoint) -> PointDto {
        PointDto { lat: p.lat(), lon: p.lon() }
    }
}

/// `POST /api/v1/cases`: open a case.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitBody {
    /// Intake channel; defaults by the caller's role (residents: app,
    /// grid workers: grid_patrol, district supervisors: hotline, other staff: portal).
    #[serde(default)]
    pub channel: Option<ChannelDto>,
    /// Kind of request.
    pub kind: KindDto,
    /// Category code (see `/open311/v2/services.json`).
    pub category: String,
    /// Priority (default normal).
    #[serde(default)]
    pub priority: Option<PriorityDto>,
    /// What the resident said (1 to 4000 characters).
    pub description: String,
    /// A grid or micro-grid code, or a registered address; may be left
    /// out when `point` is given.
    #[serde(default)]
    pub location: String,
    /// Where the resident was: placed in its micro-grid by the district's
    /// boundaries. A code in `location` decides over it; it decides over
    /// an address.
    #[serde(default)]
    pub point: Option<PointDto>,
    /// Resident contact details.
    #[serde(default)]
    pub contact: Option<ContactDto>,
}

impl SubmitBody {
    /// The engine's submission, with the channel defaulted by role;
    /// refused when the point is not a position on Earth.
    pub fn into_command(self, caller: &Principal) -> Result<Command, gridcase_engine::Error> {
        use gridcase_engine::org::Role;
        let channel = self.channel.map(Channel::from).unwrap_or(match caller.role {
            Role::Resident => Channel::App,
            Role::GridWorker => Channel::GridPatrol,
            Role::DistrictSupervisor => Channel::Hotline,
            _ => Channel::Portal,
        });
        let point = self.point.map(|p| GeoPoint::new(p.lat, p.lon)).transpose()?;
        Ok(Command::Submit(Submission {
            channel,
            kind: self.kind.into(),
            category: self.category,
            priority: self.priority.map(Priority::from).unwrap_or(Priority::Normal),
            description: self.description,
            location: self.location,
            contact: self.contact.map(|c| Contact { name: c.name, phone: c.phone }),
            point,
            media: Vec::new(),
            reporter: None,
        }))
    }
}

/// Assign a grid worker.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignBody {
    /// Staff id of a grid worker of the case's community.
    pub worker: String,
}

/// A command that takes only a reason (reject, withdraw, escalate, return, reopen).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    /// Why (1 to 4000 characters).
    pub reason: String,
}

/// Merge into a duplicate.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeBody {
    /// The open case this one duplicates.
    pub into: String,
}

/// Dispatch to departments.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DispatchBody {
    /// Department codes.
    pub departments: Vec<String>,
    /// The lead department (default: the first).
    #[serde(default)]
    pub lead: Option<String>,
    /// Note to the departments.
    #[serde(default)]
    pub note: String,
}

/// A command without arguments (claim): `{}` or no body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmptyBody {}

/// Ask for more time.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtensionBody {
    /// The new resolution deadline asked for (RFC 3339).
    pub until: String,
    /// Why.
    pub reason: String,
}

/// Decide a pending extension.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtensionDecisionBody {
    /// Approve or refuse.
    pub approve: bool,
    /// Why (required to refuse).
    #[serde(default)]
    pub reason: String,
}

/// A command that takes a note (supervise, resolve).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteBody {
    /// The instruction or what was done.
    pub note: String,
}

/// Record the callback.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallbackBody {
    /// The resident's rating.
    pub satisfaction: SatisfactionDto,
    /// Whether the problem is solved.
    pub solved: bool,
    /// Note.
    #[serde(default)]
    pub note: String,
}

/// Close after the callback.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloseBody {
    /// Note.
    #[serde(default)]
    pub note: String,
}

/// RFC 3339 text of a time.
pub fn time(t: Timestamp) -> String {
    t.to_rfc3339()
}

/// Parses a client's time (RFC 3339, a date, or epoch milliseconds).
pub fn parse_time(field: &str, text: &str) -> Result<Timestamp, ApiError> {
    Timestamp::parse(text).map_err(|_| {
        ApiError::unprocessable(
            "invalid_time",
            format!("{field}: {text:?} is not a time; use RFC 3339, e.g. 2026-03-03T08:00:00Z"),
        )
    })
}

/// A unit holding a case.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HolderView {
    /// Unit code.
    pub unit: String,
    /// Unit name.
    pub unit_name: String,
    /// Since when.
    pub since: String,
    /// Lead department of a joint handling.
    pub lead: bool,
    /// Claimed (always true for community and street).
    pub claimed: bool,
    /// Resolved its part.
    pub resolved: bool,
    /// Claim deadline (departments).
    pub claim_due: Option<String>,
}

/// A pending extension request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ExtensionView {
    /// Asking unit.
    pub unit: String,
    /// Asked deadline.
    pub until: String,
}

/// The last callback.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CallbackView {
    /// Rating.
    pub satisfaction: SatisfactionDto,
    /// Whether the problem is solved.
    pub solved: bool,
    /// When.
    pub at: String,
}

fn satisfaction(s: Satisfaction) -> SatisfactionDto {
    match s {
        Satisfaction::Satisfied => SatisfactionDto::Satisfied,
        Satisfaction::BasicallySatisfied => SatisfactionDto::BasicallySatisfied,
        Satisfaction::Unsatisfied => SatisfactionDto::Unsatisfied,
    }
}

/// A case's state. `contact` is null with `contact_redacted: true` for
/// callers who may not see it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CaseView {
    /// Case id.
    pub id: String,
    /// Version (also the ETag).
    pub version: u64,
    /// submitted, assigned, escalated, dispatched, resolved, closed, rejected, merged or withdrawn.
    pub status: String,
    /// Intake channel.
    pub channel: String,
    /// Kind.
    pub kind: String,
    /// Category code.
    pub category: String,
    /// Category name.
    pub category_name: String,
    /// Priority.
    pub priority: String,
    /// Description.
    pub description: String,
    /// Location as given.
    pub location: String,
    /// Grid code.
    pub grid: String,
    /// Micro-grid code.
    pub micro_grid: Option<String>,
    /// The point the resident reported, if any.
    pub point: Option<PointDto>,
    /// How the location became a grid: code, point or address.
    pub located_by: String,
    /// Community code.
    pub community: String,
    /// Street code.
    pub street: String,
    /// Contact (null when redacted or not given).
    pub contact: Option<ContactDto>,
    /// True when the case has contact details this caller may not see.
    pub contact_redacted: bool,
    /// Who submitted it.
    pub submitted_by: String,
    /// Found on patrol.
    pub found_on_patrol: bool,
    /// Submission time.
    pub submitted_at: String,
    /// First response due.
    pub response_due: String,
    /// First response.
    pub responded_at: Option<String>,
    /// Resolution due.
    pub resolution_due: String,
    /// The resolution deadline was marked overdue.
    pub overdue_marked: bool,
    /// community, street or department.
    pub level: String,
    /// Units holding it.
    pub holders: Vec<HolderView>,
    /// Assigned grid worker.
    pub assigned_worker: Option<String>,
    /// End of the current community or street hold.
    pub hold_until: Option<String>,
    /// Pending extension request.
    pub pending_extension: Option<ExtensionView>,
    /// Units that resolved it last.
    pub last_resolvers: Vec<String>,
    /// When it was last resolved.
    pub resolved_at: Option<String>,
    /// Last callback.
    pub last_callback: Option<CallbackView>,
    /// When it was closed.
    pub closed_at: Option<String>,
    /// Duplicate of.
    pub merged_into: Option<String>,
    /// Reopens.
    pub reopen_count: u32,
    /// Returns by departments.
    pub return_count: u32,
    /// Went above the community at least once.
    pub left_community: bool,
    /// Time of the last event.
    pub updated_at: String,
}

impl CaseView {
    /// The view of `case` for `viewer`: contact details and the resident's
    /// real id only when the viewer may read the case's personal data
    /// ([`Scope::may_read_personal`]); otherwise no contact and the
    /// resident's pseudonym. The caller records what it showed
    /// ([`CaseView::personal_fields`]).
    pub fn new(case: &Case, reg: &Registry, viewer: &Principal, names: &Pseudonyms) -> CaseView {
        let may_see = Scope::of(viewer).may_read_personal_of(case);
        CaseView {
            id: case.id.clone(),
            version: case.version,
            status: case.status.as_str().into(),
            channel: case.channel.as_str().into(),
            kind: case.kind.as_str().into(),
            category: case.category.clone(),
            category_name: reg
                .categories
                .get(&case.category)
                .map(|c| c.name.clone())
                .unwrap_or_else(|| case.category.clone()),
            priority: case.priority.as_str().into(),
            description: case.description.clone(),
            location: case.location.clone(),
            grid: case.grid.clone(),
            micro_grid: case.micro_grid.clone(),
            point: case.point.map(PointDto::from),
            located_by: case.located_by.as_str().into(),
            community: case.community.clone(),
            street: case.street.clone(),
            contact: if may_see {
                case.contact
                    .as_ref()
                    .map(|c| ContactDto { name: c.name.clone(), phone: c.phone.clone() })
            } else {
                None
            },
            contact_redacted: !may_see && case.contact.is_some(),
            submitted_by: names.shown(&case.submitted_by, may_see),
            found_on_patrol: case.found_on_patrol,
            submitted_at: time(case.submitted_at),
            response_due: time(case.response_due),
            responded_at: case.responded_at.map(time),
            resolution_due: time(case.resolution_due),
            overdue_marked: case.overdue_marked,
            level: case.level.as_str().into(),
            holders: case
                .holders
                .iter()
                .map(|h| HolderView {
                    unit: h.unit.clone(),
                    unit_name: reg.name_of(&h.unit).to_string(),
                    since: time(h.since),
                    lead: h.lead,
                    claimed: h.claimed,
                    resolved: h.resolved,
                    claim_due: h.claim_due.map(time),
                })
                .collect(),
            assigned_worker: case.assigned_worker.clone(),
            hold_until: case.hold_until.map(time),
            pending_extension: case
                .pending_extension
                .as_ref()
                .map(|e| ExtensionView { unit: e.unit.clone(), until: time(e.until) }),
            last_resolvers: case.last_resolvers.clone(),
            resolved_at: case.resolved_at.map(time),
            last_callback: case.last_callback.as_ref().map(|c| CallbackView {
                satisfaction: satisfaction(c.satisfaction),
                solved: c.solved,
                at: time(c.at),
            }),
            closed_at: case.closed_at.map(time),
            merged_into: case.merged_into.clone(),
            reopen_count: case.reopen_count,
            return_count: case.return_count,
            left_community: case.left_community,
            updated_at: time(case.updated_at),
        }
    }
}

impl CaseView {
    /// The personal fields this view shows (`contact`, `submitted_by` when
    /// it is a resident's real id): what a read of it records.
    pub fn personal_fields(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.contact.is_some() {
            v.push("contact");
        }
        if is_real_resident(&self.submitted_by) {
            v.push("submitted_by");
        }
        v
    }
}

/// A resident id as stored (not a pseudonym).
pub(crate) fn is_real_resident(actor: &str) -> bool {
    actor.strip_prefix("resident:").is_some_and(|id| !id.starts_with('~'))
}

/// One recorded event: the envelope and the decoded event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EventView {
    /// Global position (also the SSE id).
    pub position: u64,
    /// Stream (`case-<id>` or `org`).
    pub stream: String,
    /// Version in the stream.
    pub version: u64,
    /// Stable event type, e.g. `CaseEscalated`.
    pub event_type: String,
    /// Schema version of the payload.
    pub schema_version: u16,
    /// When the log recorded it.
    pub recorded_at: String,
    /// Who caused it.
    pub actor: String,
    /// Correlation id.
    pub correlation_id: Option<String>,
    /// Hash of this record (hex).
    pub hash: String,
    /// Hash of the previous record (hex).
    pub prev_hash: String,
    /// The event's fields (times in epoch milliseconds). Contact details of
    /// a submission are null, with `contact_redacted: true`, for callers who
    /// may not see them.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

impl EventView {
    /// The view of one record for a viewer who may (`personal`) or may not
    /// read the personal data of the record's case: without it, a
    /// submission's contact is null and a resident actor is pseudonymised.
    pub fn new(
        rec: &RecordedEvent,
        event: &Event,
        personal: bool,
        names: &Pseudonyms,
    ) -> EventView {
        // serde's external tagging gives {"CaseAssigned": {...}}; the type is
        // already in the envelope, so the data is the inner object.
        let mut data = match serde_json::to_value(event) {
            Ok(serde_json::Value::Object(mut m)) => {
                m.remove(event.event_type()).unwrap_or(serde_json::Value::Object(m))
            }
            Ok(other) => other,
            Err(_) => serde_json::Value::Null,
        };
        if let Event::CaseSubmitted { contact: Some(_), .. } = event {
            if !personal {
                if let Some(obj) = data.as_object_mut() {
                    obj.insert("contact".into(), serde_json::Value::Null);
                    obj.insert("contact_redacted".into(), serde_json::Value::Bool(true));
                }
            }
        }
        // The reporter details are personal data of the same case: the same
        // right as the contact (`Scope::may_read_personal`).
        if let Event::SubmissionDetailed { reporter: Some(_), .. } = event {
            if !personal {
                if let Some(obj) = data.as_object_mut() {
                    obj.insert("reporter".into(), serde_json::Value::Null);
                    obj.insert("reporter_redacted".into(), serde_json::Value::Bool(true));
                }
            }
        }
        EventView {
            position: rec.position,
            stream: rec.stream.clone(),
            version: rec.version,
            event_type: rec.event_type.clone(),
            schema_version: rec.schema_version,
            recorded_at: time(rec.recorded_at),
            actor: names.shown(&rec.actor, personal),
            correlation_id: rec.correlation_id.clone(),
            hash: hex(&rec.hash),
            prev_hash: hex(&rec.prev_hash),
            data,
        }
    }
}

/// What a lifecycle command returns; a retry with the same Idempotency-Key
/// returns the same body (with `Idempotent-Replayed: true`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CommandResponse {
    /// The case right after the command.
    pub case: CaseView,
    /// The events the command appended.
    pub events: Vec<EventView>,
    /// Position of the first event.
    pub first_position: u64,
    /// Position of the last event.
    pub last_position: u64,
}

/// One line of a case's timeline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TimelineEntryView {
    /// Log position.
    pub position: u64,
    /// Version in the case stream.
    pub version: u64,
    /// When.
    pub at: String,
    /// Actor id.
    pub actor: String,
    /// The actor as a reader knows them.
    pub who: String,
    /// Event type.
    pub event_type: String,
    /// What happened.
    pub what: String,
    /// Why, when the event says.
    pub why: Option<String>,
}

/// A case's readable history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TimelineResponse {
    /// Case id.
    pub case_id: String,
    /// Entries, oldest first.
    pub entries: Vec<TimelineEntryView>,
}

/// A projection report with the position it was computed at.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReportResponse {
    /// The log position the projections had applied.
    pub position: u64,
    /// The log's head at the time of the answer (position - head is the lag).
    pub head_position: u64,
    /// The time the report is computed for.
    pub now: String,
    /// The report (see the projections crate for its fields).
    #[schema(value_type = Object)]
    pub report: serde_json::Value,
}

/// Projection digests, for comparing replays and live state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DigestsView {
    /// The position the state is at.
    pub position: u64,
    /// BLAKE3 per projection (hex).
    pub parts: BTreeMap<String, String>,
    /// BLAKE3 over the position and every part.
    pub combined: String,
}

impl From<gridcase_projections::Digests> for DigestsView {
    fn from(d: gridcase_projections::Digests) -> Self {
        DigestsView {
            position: d.position,
            parts: d.parts.into_iter().collect(),
            combined: d.combined,
        }
    }
}

/// The projections replayed up to a position or time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReplayResponse {
    /// The last position applied.
    pub position: u64,
    /// Hash of that record (hex).
    pub head_hash: String,
    /// Its recorded time.
    pub last_recorded_at: String,
    /// The time the reports are computed for (`as_of`, or the last recorded time).
    pub now: String,
    /// The digests.
    pub digests: DigestsView,
    /// The rates period reported (the month of `now`).
    pub period: String,
    /// Backlog report (absent with `reports=false`).
    #[schema(value_type = Option<Object>)]
    pub backlog: Option<serde_json::Value>,
    /// Rates report.
    #[schema(value_type = Option<Object>)]
    pub rates: Option<serde_json::Value>,
    /// Chain report.
    #[schema(value_type = Option<Object>)]
    pub chains: Option<serde_json::Value>,
    /// Overdue report.
    #[schema(value_type = Option<Object>)]
    pub overdue: Option<serde_json::Value>,
}

/// The result of walking the hash chain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VerifyResponse {
    /// True when every record checks out.
    pub ok: bool,
    /// Events checked (when ok).
    pub events: u64,
    /// Head position (when ok).
    pub head_position: u64,
    /// Head hash (hex, when ok).
    pub head_hash: String,
    /// The first bad position (when not ok).
    pub bad_position: Option<u64>,
    /// What failed (when not ok).
    pub reason: Option<String>,
}

/// Registry size.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RegistryStats {
    /// Units.
    pub units: usize,
    /// Staff.
    pub staff: usize,
    /// Categories.
    pub categories: usize,
}

/// Store and server figures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StatsResponse {
    /// The backend and where it stores.
    pub store: String,
    /// Bytes on disk.
    pub size_bytes: u64,
    /// Head position (the number of events).
    pub head_position: u64,
    /// Head hash (hex).
    pub head_hash: String,
    /// Open cases known to the engine.
    pub open_cases: usize,
    /// Cases in the Open311 listing (every case ever submitted).
    pub indexed_cases: usize,
    /// Position the projections have applied.
    pub projection_position: u64,
    /// Position the Open311 listing has applied (the projections' position:
    /// the listing is one of them).
    pub index_position: u64,
    /// Registry size.
    pub registry: RegistryStats,
    /// Seconds since the server started.
    pub uptime_seconds: u64,
}

/// A machine-readable error.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable code, e.g. `not_authorised`, `invalid_transition`,
    /// `invalid_argument`, `precondition_failed`, `malformed_json`,
    /// `invalid_body`, `corruption`.
    pub code: String,
    /// The engine rule that refused a command, when one did.
    pub rule: Option<String>,
    /// What went wrong and what to do.
    pub message: String,
    /// The case concerned.
    pub case_id: Option<String>,
    /// Its state.
    pub state: Option<String>,
    /// The request's correlation id (also in the logs and `X-Request-Id`).
    pub correlation_id: Option<String>,
    /// With code `corruption` (status 500): the log position of the first
    /// stored record that did not verify (its bytes against their stored
    /// check bytes, or its link to the record before). Nothing from that
    /// record was served; `gridcase audit verify` walks the whole chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<u64>,
}

/// The body of every native error response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use gridcase_engine::domain::{LocationSource, Reporter};

    /// A details event's reporter is personal data of its case: shown with
    /// the right to the case's personal data (`Scope::may_read_personal`),
    /// redacted without it; the point stays visible to every reader.
    #[test]
    fn a_details_event_shows_the_reporter_only_with_the_right_to_personal_data() {
        let event = Event::SubmissionDetailed {
            located_by: LocationSource::Point,
            point: Some(GeoPoint::new(33.39, 120.16).unwrap()),
            media: vec![],
            reporter: Some(Reporter { email: Some("li@example.cn".into()), ..Reporter::default() }),
        };
        let data = event.to_data();
        let rec = RecordedEvent {
            position: 7,
            stream: "case-GC0000001".into(),
            version: 2,
            event_type: data.event_type,
            schema_version: data.schema_version,
            recorded_at: Timestamp(0),
            actor: "resident:li".into(),
            correlation_id: None,
            causation_id: None,
            idempotency: None,
            payload_codec: data.payload_codec,
            payload: data.payload,
            prev_hash: [0; 32],
            hash: [0; 32],
        };
        let names = Pseudonyms::ephemeral().unwrap();
        let shown = EventView::new(&rec, &event, true, &names);
        assert_eq!(shown.data["reporter"]["email"], "li@example.cn");
        assert!(shown.data.get("reporter_redacted").is_none());
        assert_eq!(shown.actor, "resident:li");
        let hidden = EventView::new(&rec, &event, false, &names);
        assert!(hidden.data["reporter"].is_null());
        assert_eq!(hidden.data["reporter_redacted"], true);
        assert_eq!(hidden.data["point"], serde_json::json!({"lat": 33.39, "lon": 120.16}));
        assert_ne!(hidden.actor, "resident:li");
    }
}
