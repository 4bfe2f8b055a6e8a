//! The case domain: what a request is, what can happen to it, and who may do it.
//!
//! - [`event`]: the stored events, the compatibility boundary of the log.
//! - [`case`]: the `Case` aggregate, folded from its events.
//! - [`mod@decide`]: commands checked against the case state and the actor's
//!   authority, producing events or a [`Rejection`].
//! - [`policy`]: deadline limits per kind, class and priority.
//! - [`ids`]: typed actor and case ids.
//!
//! **Architecture Invariant:** deciding is a pure function of (case state,
//! command, actor, registry, now); it never reads a clock or the store, so a
//! replay of the log always reaches the same state.

pub mod case;
pub mod decide;
pub mod event;
pub mod ids;
pub mod policy;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use case::{Case, Holder};
pub use decide::decide;
pub use event::{Event, EventCodecError};
pub use ids::{ActorId, CaseId};
pub use policy::{DeadlineClass, DeadlinePolicy, Limits};

use crate::geo::GeoPoint;
use crate::org::Role;
use crate::time::Timestamp;

macro_rules! text_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident => $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vm])* $v),+ }
        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$v),+];
            /// The snake-case name used in files, URLs and reports.
            pub fn as_str(self) -> &'static str { match self { $($name::$v => $s),+ } }
        }
        impl std::str::FromStr for $name {
            type Err = crate::Error;
            fn from_str(s: &str) -> Result<Self, crate::Error> {
                match s { $($s => Ok($name::$v),)+ _ => Err(crate::Error::InvalidInput(format!(
                    concat!("unknown ", stringify!($name), " {:?}: use one of {}"), s,
                    [$($s),+].join(", ")))) }
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
    };
}

text_enum!(
    /// How a request reached the platform.
    Channel { /// A government portal.
    Portal => "portal", /// The 12345 hotline.
    Hotline => "hotline", /// Found by a grid worker on patrol (社区发现).
    GridPatrol => "grid_patrol", /// A mobile app ("one click", 一键发布).
    App => "app" });

text_enum!(
    /// The five kinds of request hotlines use.
    RequestKind { /// 咨询.
    Consultation => "consultation", /// 求助.
    Help => "help", /// 投诉.
    Complaint => "complaint", /// 举报.
    Report => "report", /// 建议.
    Suggestion => "suggestion" });

text_enum!(
    /// Urgency as set at intake.
    Priority { /// Ordinary.
    Normal => "normal", /// Faster limits.
    Urgent => "urgent", /// Emergency limits whatever the category.
    Emergency => "emergency" });

text_enum!(
    /// The resident's rating at callback (回访).
    Satisfaction { /// 满意.
    Satisfied => "satisfied", /// 基本满意.
    BasicallySatisfied => "basically_satisfied", /// 不满意.
    Unsatisfied => "unsatisfied" });

text_enum!(
    /// Where a case stands.
    Status { /// Registered, held by the community, not yet assigned.
    Submitted => "submitted", /// Assigned to a grid worker in the community.
    Assigned => "assigned", /// Held by the street, waiting to be dispatched.
    Escalated => "escalated", /// Held by one or more departments.
    Dispatched => "dispatched", /// Resolved, waiting for callback and closure.
    Resolved => "resolved", /// Closed.
    Closed => "closed", /// Rejected as invalid.
    Rejected => "rejected", /// Merged into a duplicate.
    Merged => "merged", /// Withdrawn by the resident.
    Withdrawn => "withdrawn" });

text_enum!(
    /// Which level of the hierarchy holds a case.
    Level { /// The community (and its grid worker).
    Community => "community", /// The street.
    Street => "street", /// District departments.
    Department => "department" });

text_enum!(
    /// Why a case moved between holders.
    HopReason { /// A person decided.
    Manual => "manual", /// A time limit passed.
    Deadline => "deadline", /// A department returned it (退单).
    Return => "return", /// The resident was unsatisfied (重办).
    Reopen => "reopen" });

text_enum!(
    /// How a submission's location was turned into a grid.
    LocationSource { /// A grid or micro-grid code was given.
    Code => "code", /// A GPS point, looked up in the micro-grid boundaries.
    Point => "point", /// A registered address in the free text.
    Address => "address" });

impl Status {
    /// Closed, rejected, merged or withdrawn: nothing more happens except a reopen of a closed case.
    pub fn is_final(self) -> bool {
        matches!(self, Status::Closed | Status::Rejected | Status::Merged | Status::Withdrawn)
    }
}

/// A resident's contact details; shown only to roles that need them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    /// Name.
    pub name: String,
    /// Phone number.
    pub phone: String,
}

/// Further details of the person who reported a request, as the Open311
/// GeoReport spec carries them (`device_id`, `account_id`, `email`,
/// `first_name`, `last_name`).
///
/// **Personal data**, like [`Contact`]: the two are the only places a
/// resident's identity is kept, shown only to the roles that see contacts,
/// and what a privacy change has to encrypt or erase. Keep any new
/// personal field here, not on the case.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reporter {
    /// The reporting device's id (Open311 `device_id`).
    #[serde(default)]
    pub device_id: Option<String>,
    /// The reporter's account in the calling app (Open311 `account_id`).
    #[serde(default)]
    pub account_id: Option<String>,
    /// E-mail address.
    #[serde(default)]
    pub email: Option<String>,
    /// Given name.
    #[serde(default)]
    pub first_name: Option<String>,
    /// Family name.
    #[serde(default)]
    pub last_name: Option<String>,
}

impl Reporter {
    /// True when no field is set (such a reporter is not stored).
    pub fn is_empty(&self) -> bool {
        let Reporter { device_id, account_id, email, first_name, last_name } = self;
        [device_id, account_id, email, first_name, last_name].iter().all(|f| f.is_none())
    }
}

/// A photo or other file attached to a submission. The log keeps only this
/// reference; the bytes live in a media store outside the log, addressed
/// by their hash, so the log stays small and the hash proves the file.
///
/// Or a link: an Open311 client may send `media_url`, a photo it keeps
/// elsewhere. The server does not fetch it (it would request any URL a
/// client names), so a link has no hash, type or size: `url` is set and
/// `sha256` and `content_type` are empty.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaRef {
    /// SHA-256 of the file's bytes, 64 lower-case hex digits (empty for a link).
    pub sha256: String,
    /// Its MIME type, for example `image/jpeg` (empty for a link).
    pub content_type: String,
    /// Its size in bytes (0 for a link).
    pub size: u64,
    /// An http(s) link to a file the server does not hold.
    #[serde(default)]
    pub url: Option<String>,
}

impl MediaRef {
    /// A link to a file elsewhere (Open311's posted `media_url`).
    pub fn link(url: impl Into<String>) -> MediaRef {
        MediaRef {
            sha256: String::new(),
            content_type: String::new(),
            size: 0,
            url: Some(url.into()),
        }
    }
}

/// What an intake records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Submission {
    /// Intake channel.
    pub channel: Channel,
    /// Kind of request.
    pub kind: RequestKind,
    /// Category code.
    pub category: String,
    /// Priority.
    #[serde(default = "default_priority")]
    pub priority: Priority,
    /// What the resident said.
    pub description: String,
    /// Grid or micro-grid code, or an address registered in the
    /// organisation; may be empty when `point` is given. A code decides
    /// over the point; a point decides over an address, which still places
    /// the case when the point lies outside every micro-grid or the
    /// organisation has no boundaries.
    #[serde(default)]
    pub location: String,
    /// Resident contact.
    #[serde(default)]
    pub contact: Option<Contact>,
    /// Where the resident was (a phone's GPS fix), WGS84.
    #[serde(default)]
    pub point: Option<GeoPoint>,
    /// Attached files (references only).
    #[serde(default)]
    pub media: Vec<MediaRef>,
    /// Further reporter details (personal data, like `contact`).
    #[serde(default)]
    pub reporter: Option<Reporter>,
}

fn default_priority() -> Priority {
    Priority::Normal
}

/// A request to change a case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case", deny_unknown_fields)]
// A command lives for one request and is never stored in bulk, so a large
// `Submit` costs nothing worth a box in every caller's hands.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Open a case.
    Submit(Submission),
    /// Community assigns to a grid worker (社区分单).
    Assign {
        /// Staff id of the grid worker.
        worker: String,
    },
    /// Reject as invalid.
    Reject {
        /// Why.
        reason: String,
    },
    /// Merge into a duplicate.
    Merge {
        /// Case id it duplicates.
        into: String,
    },
    /// The resident withdraws it.
    Withdraw {
        /// Why.
        reason: String,
    },
    /// The community escalates to its street (街镇呼叫).
    Escalate {
        /// Why.
        reason: String,
    },
    /// The street dispatches to departments (街道派单); also re-dispatch and joint handling.
    Dispatch {
        /// Department codes.
        departments: Vec<String>,
        /// The lead department (defaults to the first).
        #[serde(default)]
        lead: Option<String>,
        /// Note to the departments.
        #[serde(default)]
        note: String,
    },
    /// A department claims it (单位领单).
    Claim,
    /// A department returns it as not its responsibility (退单).
    Return {
        /// Why.
        reason: String,
    },
    /// The holder asks for more time (延期).
    RequestExtension {
        /// New resolution deadline asked for.
        until: Timestamp,
        /// Why.
        reason: String,
    },
    /// The unit above decides on a pending extension.
    DecideExtension {
        /// Approve or refuse.
        approve: bool,
        /// Why.
        #[serde(default)]
        reason: String,
    },
    /// A superior supervises an overdue case (督办).
    Supervise {
        /// Instruction.
        note: String,
    },
    /// The holder resolves it.
    Resolve {
        /// What was done.
        note: String,
    },
    /// The resident is called back (回访).
    Callback {
        /// Rating.
        satisfaction: Satisfaction,
        /// Whether the problem is solved.
        solved: bool,
        /// Note.
        #[serde(default)]
        note: String,
    },
    /// Sent back to the last holders (重办).
    Reopen {
        /// Why.
        reason: String,
    },
    /// Closed after callback.
    Close {
        /// Note.
        #[serde(default)]
        note: String,
    },
    /// Record whatever time limits have passed (system only).
    CheckDeadlines,
}

impl Command {
    /// Snake-case name of the command.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Submit(_) => "submit",
            Command::Assign { .. } => "assign",
            Command::Reject { .. } => "reject",
            Command::Merge { .. } => "merge",
            Command::Withdraw { .. } => "withdraw",
            Command::Escalate { .. } => "escalate",
            Command::Dispatch { .. } => "dispatch",
            Command::Claim => "claim",
            Command::Return { .. } => "return",
            Command::RequestExtension { .. } => "request_extension",
            Command::DecideExtension { .. } => "decide_extension",
            Command::Supervise { .. } => "supervise",
            Command::Resolve { .. } => "resolve",
            Command::Callback { .. } => "callback",
            Command::Reopen { .. } => "reopen",
            Command::Close { .. } => "close",
            Command::CheckDeadlines => "check_deadlines",
        }
    }
}

/// Who is acting, as resolved from the registry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// Staff id, `resident:<id>`, or `system`.
    pub id: String,
    /// Role.
    pub role: Role,
    /// The unit the role is bound to (none for residents and the system).
    pub unit: Option<String>,
    /// The engine itself (deadline escalations).
    pub system: bool,
}

impl Actor {
    /// The engine acting on deadlines.
    pub fn system() -> Actor {
        Actor { id: "system".into(), role: Role::DistrictSupervisor, unit: None, system: true }
    }

    /// A resident identified by `id` (for example a hashed phone number).
    pub fn resident(id: &str) -> Actor {
        Actor { id: format!("resident:{id}"), role: Role::Resident, unit: None, system: false }
    }
}

/// Which rule refused a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// The actor's role or unit may not do this.
    NotAuthorised,
    /// The case's state does not allow this command.
    InvalidTransition,
    /// An argument is unknown or malformed (unit, worker, category, time).
    InvalidArgument,
}

/// A refused command: which rule, which case, which state, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    /// The rule.
    pub rule: Rule,
    /// The command.
    pub command: String,
    /// The case, when there is one.
    pub case_id: Option<String>,
    /// Its state, when there is one.
    pub state: Option<Status>,
    /// What to know and do.
    pub detail: String,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rule = match self.rule {
            Rule::NotAuthorised => "not authorised",
            Rule::InvalidTransition => "invalid transition",
            Rule::InvalidArgument => "invalid argument",
        };
        write!(f, "{} refused ({rule})", self.command)?;
        if let Some(id) = &self.case_id {
            write!(f, " on case {id}")?;
        }
        if let Some(s) = self.state {
            write!(f, " in state {s}")?;
        }
        write!(f, ": {}", self.detail)
    }
}
