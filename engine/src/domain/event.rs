//! The stored events of the registry and of cases.
//!
//! Events are the compatibility boundary of the store: each has a stable type
//! name ([`Event::event_type`]) and schema version; the payload is postcard of
//! the enum, so **variants are only ever appended, never reordered or
//! removed**, and fields of an existing variant never change. The golden
//! tests at the bottom pin the bytes of every variant.

use serde::{Deserialize, Serialize};

use super::{
    Channel, Contact, HopReason, Level, LocationSource, MediaRef, Priority, Reporter, RequestKind,
    Satisfaction,
};
use crate::geo::{Boundary, BoundingBox, GeoPoint};
use crate::hierarchy::{Role, UnitKind};
use crate::log::{EventData, RecordView, RecordedEvent, CODEC_POSTCARD};
use crate::time::Timestamp;

use super::policy::{DeadlineClass, DeadlinePolicy};

/// Schema version written for every event type today.
pub const SCHEMA_VERSION: u16 = 1;

/// What kind of time limit passed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OverdueKind {
    /// The resolution deadline.
    Resolution,
    /// A department did not claim in time.
    Claim {
        /// The department.
        department: String,
    },
}

/// Every event gridcase stores.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// A unit joined the registry.
    UnitAdded {
        /// Code.
        code: String,
        /// Name.
        name: String,
        /// Level.
        kind: UnitKind,
        /// Parent code.
        parent: Option<String>,
        /// Resolvable address.
        address: Option<String>,
    },
    /// A unit was renamed.
    UnitRenamed {
        /// Code.
        code: String,
        /// New name.
        name: String,
    },
    /// A unit moved under another parent (a grid handed to another community).
    UnitMoved {
        /// Code.
        code: String,
        /// New parent.
        parent: String,
    },
    /// A unit was retired.
    UnitRetired {
        /// Code.
        code: String,
    },
    /// A staff member joined.
    StaffAdded {
        /// Id.
        id: String,
        /// Name.
        name: String,
        /// Role.
        role: Role,
        /// Unit.
        unit: String,
    },
    /// A staff member left.
    StaffRetired {
        /// Id.
        id: String,
    },
    /// A category was defined or redefined.
    CategoryDefined {
        /// Code.
        code: String,
        /// Name.
        name: String,
        /// Default department.
        department: String,
        /// Deadline class.
        class: DeadlineClass,
    },
    /// The deadline policy was set.
    PolicySet {
        /// The policy.
        policy: DeadlinePolicy,
    },
    /// A case was opened; held by the community of its grid.
    CaseSubmitted {
        /// Case id.
        case_id: String,
        /// Channel.
        channel: Channel,
        /// Kind.
        kind: RequestKind,
        /// Category code.
        category: String,
        /// Priority.
        priority: Priority,
        /// Description.
        description: String,
        /// The location as given.
        location: String,
        /// Resolved grid.
        grid: String,
        /// Resolved micro-grid.
        micro_grid: Option<String>,
        /// Community of the grid (at submission).
        community: String,
        /// Street of the community (at submission).
        street: String,
        /// Resident contact.
        contact: Option<Contact>,
        /// Found by a grid worker on patrol.
        found_on_patrol: bool,
        /// First response due.
        response_due: Timestamp,
        /// Resolution due.
        resolution_due: Timestamp,
        /// When the community's hold ends and the case goes to the street.
        hold_until: Timestamp,
    },
    /// The community assigned a grid worker.
    CaseAssigned {
        /// Staff id.
        worker: String,
    },
    /// Rejected as invalid.
    CaseRejected {
        /// Why.
        reason: String,
    },
    /// Merged into a duplicate.
    CaseMerged {
        /// The case it duplicates.
        into: String,
    },
    /// Withdrawn by the resident.
    CaseWithdrawn {
        /// Why.
        reason: String,
    },
    /// Escalated from the community to the street.
    CaseEscalated {
        /// Community code.
        from: String,
        /// Street code.
        to: String,
        /// Manual or deadline.
        reason: HopReason,
        /// Note.
        note: String,
        /// When the street's hold ends and the case goes to the category's department.
        hold_until: Timestamp,
    },
    /// The street dispatched to departments (also joint handling and re-dispatch).
    CaseDispatched {
        /// Street code.
        from: String,
        /// Departments added as holders.
        departments: Vec<String>,
        /// Lead department.
        lead: String,
        /// Manual, deadline or return (re-dispatch).
        reason: HopReason,
        /// Note.
        note: String,
        /// Claim deadline.
        claim_due: Timestamp,
    },
    /// A department claimed the case.
    CaseClaimed {
        /// Department.
        department: String,
    },
    /// A department returned the case; with no department left it is back at the street.
    CaseReturned {
        /// Department.
        department: String,
        /// Why.
        reason: String,
        /// Set when the case went back to the street: its new hold.
        street_hold_until: Option<Timestamp>,
    },
    /// The holder asked for an extension.
    ExtensionRequested {
        /// Asking unit.
        unit: String,
        /// Asked deadline.
        until: Timestamp,
        /// Why.
        reason: String,
    },
    /// The unit above approved the extension.
    ExtensionApproved {
        /// Approving unit (or actor id for the district).
        by: String,
        /// New resolution deadline.
        resolution_due: Timestamp,
    },
    /// The unit above refused the extension.
    ExtensionRefused {
        /// Refusing unit.
        by: String,
        /// Why.
        reason: String,
    },
    /// A superior supervises the overdue case.
    CaseSupervised {
        /// Supervising unit.
        by: String,
        /// Instruction.
        note: String,
    },
    /// A time limit passed.
    CaseOverdue {
        /// Which limit.
        what: OverdueKind,
        /// The limit.
        due: Timestamp,
    },
    /// A holder resolved (its part of) the case.
    CaseResolved {
        /// Resolving unit.
        unit: String,
        /// What was done.
        note: String,
        /// True when no holder is left with work: the case is resolved.
        complete: bool,
    },
    /// Callback result.
    CallbackRecorded {
        /// Rating.
        satisfaction: Satisfaction,
        /// Whether the problem is solved.
        solved: bool,
        /// Note.
        note: String,
    },
    /// Reopened to its last holders.
    CaseReopened {
        /// Why.
        reason: String,
        /// Level it goes back to.
        level: Level,
        /// Units it goes back to.
        holders: Vec<String>,
        /// New resolution deadline.
        resolution_due: Timestamp,
        /// New hold for community/street levels.
        hold_until: Option<Timestamp>,
    },
    /// Closed.
    CaseClosed {
        /// Note.
        note: String,
    },
    /// The district's time zone was set (from the organisation file's
    /// `[district] time_zone`). Stored as configured (an IANA name or an
    /// offset) and resolved again by [`Zone::named`](crate::time::Zone::named)
    /// when folded, so the log holds what the district wrote.
    ZoneSet {
        /// An IANA name (`Asia/Shanghai`) or a fixed offset (`+08:00`).
        time_zone: String,
    },
    /// What a submission carried beyond [`Event::CaseSubmitted`]'s fields:
    /// written in the same append, right after it, when the submission has
    /// a point, media or reporter details (a submission with none writes
    /// `CaseSubmitted` alone, byte for byte as before this event existed).
    SubmissionDetailed {
        /// How the location became a grid.
        located_by: LocationSource,
        /// The point the resident reported, if any.
        point: Option<GeoPoint>,
        /// Attached files (references; the bytes live outside the log).
        media: Vec<MediaRef>,
        /// Further reporter details (personal data, like the contact).
        reporter: Option<Reporter>,
    },
    /// A micro-grid's boundary (or a grid's, when it has no micro-grids)
    /// was set or replaced; registry stream.
    BoundarySet {
        /// Unit code.
        code: String,
        /// The boundary (compact delta encoding, see [`Boundary`]).
        boundary: Boundary,
    },
    /// The district's bounding box was set; registry stream.
    BoundsSet {
        /// The box.
        bounds: BoundingBox,
    },
    /// A caller was shown personal data of a case (the contact's name or
    /// phone, the resident's real id). Stored in the case's `reads-<id>`
    /// stream, not the case stream, so reading never changes a case's
    /// version and `Case::apply` never sees it; batched (at most one per
    /// reader per case per minute, see `Engine::record_personal_read`).
    PersonalDataRead {
        /// The actor who read (a staff id, `resident:…`, or the CLI's operator).
        reader: String,
        /// The case read.
        case_id: String,
        /// Which personal fields were shown (`contact`, `submitted_by`).
        fields: Vec<String>,
        /// Where (`api`, `dashboard`, `open311`, `cli`).
        surface: String,
    },
}

/// An event payload that does not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventCodecError(pub String);

impl std::fmt::Display for EventCodecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Event {
    /// The stable type name stored in the envelope.
    pub fn event_type(&self) -> &'static str {
        match self {
            Event::UnitAdded { .. } => "UnitAdded",
            Event::UnitRenamed { .. } => "UnitRenamed",
            Event::UnitMoved { .. } => "UnitMoved",
            Event::UnitRetired { .. } => "UnitRetired",
            Event::StaffAdded { .. } => "StaffAdded",
            Event::StaffRetired { .. } => "StaffRetired",
            Event::CategoryDefined { .. } => "CategoryDefined",
            Event::PolicySet { .. } => "PolicySet",
            Event::CaseSubmitted { .. } => "CaseSubmitted",
            Event::CaseAssigned { .. } => "CaseAssigned",
            Event::CaseRejected { .. } => "CaseRejected",
            Event::CaseMerged { .. } => "CaseMerged",
            Event::CaseWithdrawn { .. } => "CaseWithdrawn",
            Event::CaseEscalated { .. } => "CaseEscalated",
            Event::CaseDispatched { .. } => "CaseDispatched",
            Event::CaseClaimed { .. } => "CaseClaimed",
            Event::CaseReturned { .. } => "CaseReturned",
            Event::ExtensionRequested { .. } => "ExtensionRequested",
            Event::ExtensionApproved { .. } => "ExtensionApproved",
            Event::ExtensionRefused { .. } => "ExtensionRefused",
            Event::CaseSupervised { .. } => "CaseSupervised",
            Event::CaseOverdue { .. } => "CaseOverdue",
            Event::CaseResolved { .. } => "CaseResolved",
            Event::CallbackRecorded { .. } => "CallbackRecorded",
            Event::CaseReopened { .. } => "CaseReopened",
            Event::CaseClosed { .. } => "CaseClosed",
            Event::ZoneSet { .. } => "ZoneSet",
            Event::SubmissionDetailed { .. } => "SubmissionDetailed",
            Event::BoundarySet { .. } => "BoundarySet",
            Event::BoundsSet { .. } => "BoundsSet",
            Event::PersonalDataRead { .. } => "PersonalDataRead",
        }
    }

    /// Encodes the event for the log.
    pub fn to_data(&self) -> EventData {
        EventData {
            event_type: self.event_type().to_string(),
            schema_version: SCHEMA_VERSION,
            payload_codec: CODEC_POSTCARD,
            // Serialising a plain enum of owned data into a Vec cannot fail.
            payload: postcard::to_allocvec(self).unwrap_or_default(),
        }
    }

    /// Decodes a recorded event's payload, checking codec, schema and type name.
    pub fn from_recorded(rec: &RecordedEvent) -> Result<Event, EventCodecError> {
        Self::from_view(&RecordView::of(rec))
    }

    /// [`Event::from_recorded`] for a record borrowed from the store (see
    /// [`EventLog::read_all_with`](crate::log::EventLog::read_all_with)):
    /// decodes the payload in place, with the same checks.
    pub fn from_view(rec: &RecordView<'_>) -> Result<Event, EventCodecError> {
        Self::decode(rec.event_type, rec.schema_version, rec.payload_codec, rec.payload)
            .map_err(|e| EventCodecError(format!("position {}: {}", rec.position, e.0)))
    }

    /// Decodes a payload.
    pub fn decode(
        event_type: &str,
        schema: u16,
        codec: u8,
        payload: &[u8],
    ) -> Result<Event, EventCodecError> {
        if codec != CODEC_POSTCARD {
            return Err(EventCodecError(format!("{event_type}: unknown payload codec {codec}")));
        }
        if schema > SCHEMA_VERSION {
            return Err(EventCodecError(format!(
                "{event_type}: schema version {schema} is newer than this build's {SCHEMA_VERSION}; upgrade gridcase"
            )));
        }
        let ev: Event = postcard::from_bytes(payload)
            .map_err(|e| EventCodecError(format!("{event_type}: payload does not decode: {e}")))?;
        if ev.event_type() != event_type {
            return Err(EventCodecError(format!(
                "envelope says {event_type}, payload is {}",
                ev.event_type()
            )));
        }
        Ok(ev)
    }

    /// True for events of the `org` stream.
    pub fn is_registry(&self) -> bool {
        matches!(
            self,
            Event::UnitAdded { .. }
                | Event::UnitRenamed { .. }
                | Event::UnitMoved { .. }
                | Event::UnitRetired { .. }
                | Event::StaffAdded { .. }
                | Event::StaffRetired { .. }
                | Event::CategoryDefined { .. }
                | Event::PolicySet { .. }
                | Event::ZoneSet { .. }
                | Event::BoundarySet { .. }
                | Event::BoundsSet { .. }
        )
    }
}
