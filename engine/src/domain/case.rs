//! The `Case` aggregate: a request's state, folded from its events.
//!
//! Folding never fails and never reads a clock: every time it keeps comes
//! from an event's recorded time or from a deadline the event carries.

use serde::{Deserialize, Serialize};

use super::event::{Event, OverdueKind};
use super::{Channel, Contact, HopReason, Level, Priority, RequestKind, Satisfaction, Status};
use crate::time::Timestamp;

/// A unit currently holding the case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// Unit code.
    pub unit: String,
    /// Since when it holds the case.
    pub since: Timestamp,
    /// The lead department of a joint handling (协同整治).
    pub lead: bool,
    /// The department claimed it (always true for community and street).
    pub claimed: bool,
    /// This holder has resolved its part.
    pub resolved: bool,
    /// Claim deadline (departments).
    pub claim_due: Option<Timestamp>,
    /// The claim deadline was already marked overdue.
    pub claim_overdue: bool,
}

impl Holder {
    fn new(unit: &str, since: Timestamp) -> Holder {
        Holder {
            unit: unit.to_string(),
            since,
            lead: true,
            claimed: true,
            resolved: false,
            claim_due: None,
            claim_overdue: false,
        }
    }
}

/// The last callback.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Callback {
    /// Rating.
    pub satisfaction: Satisfaction,
    /// Whether the problem is solved.
    pub solved: bool,
    /// When.
    pub at: Timestamp,
}

/// A pending extension request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtensionRequest {
    /// Asking unit.
    pub unit: String,
    /// Asked deadline.
    pub until: Timestamp,
}

/// The state of one case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Case {
    /// Case id.
    pub id: String,
    /// Version of the case stream folded in.
    pub version: u64,
    /// Where it stands.
    pub status: Status,
    /// Channel.
    pub channel: Channel,
    /// Kind.
    pub kind: RequestKind,
    /// Category code.
    pub category: String,
    /// Priority.
    pub priority: Priority,
    /// Description.
    pub description: String,
    /// Location as given.
    pub location: String,
    /// Grid.
    pub grid: String,
    /// Micro-grid.
    pub micro_grid: Option<String>,
    /// Community (at submission).
    pub community: String,
    /// Street (at submission).
    pub street: String,
    /// Contact.
    pub contact: Option<Contact>,
    /// Who submitted it.
    pub submitted_by: String,
    /// Found on patrol.
    pub found_on_patrol: bool,
    /// Submission time.
    pub submitted_at: Timestamp,
    /// First response due.
    pub response_due: Timestamp,
    /// First response (assignment, escalation, claim or resolution).
    pub responded_at: Option<Timestamp>,
    /// Resolution due.
    pub resolution_due: Timestamp,
    /// The resolution deadline in `resolution_due` was already marked overdue.
    pub overdue_marked: bool,
    /// Level holding it.
    pub level: Level,
    /// Units holding it now.
    pub holders: Vec<Holder>,
    /// Grid worker assigned in the community.
    pub assigned_worker: Option<String>,
    /// End of the current community or street hold.
    pub hold_until: Option<Timestamp>,
    /// Pending extension request.
    pub pending_extension: Option<ExtensionRequest>,
    /// Units that resolved it last (where a reopen sends it).
    pub last_resolvers: Vec<String>,
    /// Level of the last resolvers.
    pub last_resolved_level: Level,
    /// When it was last resolved.
    pub resolved_at: Option<Timestamp>,
    /// Last callback.
    pub last_callback: Option<Callback>,
    /// When it was closed.
    pub closed_at: Option<Timestamp>,
    /// Duplicate of.
    pub merged_into: Option<String>,
    /// How often it was reopened.
    pub reopen_count: u32,
    /// How often a department returned it.
    pub return_count: u32,
    /// It went above the community at least once.
    pub left_community: bool,
    /// Time of the last event.
    pub updated_at: Timestamp,
}

impl Case {
    /// Starts a case from its first event; `None` if that is not `CaseSubmitted`.
    pub fn start(event: &Event, actor: &str, at: Timestamp) -> Option<Case> {
        let Event::CaseSubmitted {
            case_id,
            channel,
            kind,
            category,
            priority,
            description,
            location,
            grid,
            micro_grid,
            community,
            street,
            contact,
            found_on_patrol,
            response_due,
            resolution_due,
            hold_until,
        } = event
        else {
            return None;
        };
        Some(Case {
            id: case_id.clone(),
            version: 1,
            status: Status::Submitted,
            channel: *channel,
            kind: *kind,
            category: category.clone(),
            priority: *priority,
            description: description.clone(),
            location: location.clone(),
            grid: grid.clone(),
            micro_grid: micro_grid.clone(),
            community: community.clone(),
            street: street.clone(),
            contact: contact.clone(),
            submitted_by: actor.to_string(),
            found_on_patrol: *found_on_patrol,
            submitted_at: at,
            response_due: *response_due,
            responded_at: None,
            resolution_due: *resolution_due,
            overdue_marked: false,
            level: Level::Community,
            holders: vec![Holder::new(community, at)],
            assigned_worker: None,
            hold_until: Some(*hold_until),
            pending_extension: None,
            last_resolvers: Vec::new(),
            last_resolved_level: Level::Community,
            resolved_at: None,
            last_callback: None,
            closed_at: None,
            merged_into: None,
            reopen_count: 0,
            return_count: 0,
            left_community: false,
            updated_at: at,
        })
    }

    /// Folds one later event in.
    pub fn apply(&mut self, event: &Event, at: Timestamp) {
        self.version += 1;
        self.updated_at = at;
        match event {
            Event::CaseAssigned { worker } => {
                self.assigned_worker = Some(worker.clone());
                self.status = Status::Assigned;
                self.respond(at);
            }
            Event::CaseRejected { .. } => self.finish(Status::Rejected, at),
            Event::CaseWithdrawn { .. } => self.finish(Status::Withdrawn, at),
            Event::CaseMerged { into } => {
                self.merged_into = Some(into.clone());
                self.finish(Status::Merged, at);
            }
            Event::CaseEscalated { to, hold_until, reason, .. } => {
                self.level = Level::Street;
                self.status = Status::Escalated;
                self.holders = vec![Holder::new(to, at)];
                self.hold_until = Some(*hold_until);
                self.left_community = true;
                self.pending_extension = None;
                // A deadline escalation is the absence of a response, not one.
                if *reason != HopReason::Deadline {
                    self.respond(at);
                }
            }
            Event::CaseDispatched { departments, lead, claim_due, .. } => {
                if self.level != Level::Department {
                    self.holders.clear();
                }
                self.level = Level::Department;
                self.status = Status::Dispatched;
                self.hold_until = None;
                self.pending_extension = None;
                for h in &mut self.holders {
                    h.lead = false;
                }
                for d in departments {
                    if !self.holders.iter().any(|h| &h.unit == d) {
                        self.holders.push(Holder {
                            unit: d.clone(),
                            since: at,
                            lead: false,
                            claimed: false,
                            resolved: false,
                            claim_due: Some(*claim_due),
                            claim_overdue: false,
                        });
                    }
                }
                for h in &mut self.holders {
                    h.lead = &h.unit == lead;
                }
            }
            Event::CaseClaimed { department } => {
                if let Some(h) = self.holders.iter_mut().find(|h| &h.unit == department) {
                    h.claimed = true;
                }
                self.respond(at);
            }
            Event::CaseReturned { department, street_hold_until, .. } => {
                self.return_count += 1;
                let was_lead = self.holders.iter().any(|h| &h.unit == department && h.lead);
                self.holders.retain(|h| &h.unit != department);
                // Its extension request goes with it: it no longer holds the case.
                if self.pending_extension.as_ref().is_some_and(|r| &r.unit == department) {
                    self.pending_extension = None;
                }
                if was_lead {
                    if let Some(h) = self.holders.first_mut() {
                        h.lead = true;
                    }
                }
                if self.holders.is_empty() {
                    self.level = Level::Street;
                    self.status = Status::Escalated;
                    self.holders = vec![Holder::new(&self.street.clone(), at)];
                    self.hold_until = *street_hold_until;
                    self.pending_extension = None;
                } else if self.holders.iter().all(|h| h.resolved) {
                    // The departments left had all resolved their parts.
                    self.mark_resolved(at);
                }
            }
            Event::ExtensionRequested { unit, until, .. } => {
                self.pending_extension =
                    Some(ExtensionRequest { unit: unit.clone(), until: *until });
            }
            Event::ExtensionApproved { resolution_due, .. } => {
                self.pending_extension = None;
                if *resolution_due > self.resolution_due {
                    self.overdue_marked = false;
                }
                self.resolution_due = *resolution_due;
            }
            Event::ExtensionRefused { .. } => self.pending_extension = None,
            Event::CaseSupervised { .. } => {}
            Event::CaseOverdue { what, .. } => match what {
                OverdueKind::Resolution => self.overdue_marked = true,
                OverdueKind::Claim { department } => {
                    if let Some(h) = self.holders.iter_mut().find(|h| &h.unit == department) {
                        h.claim_overdue = true;
                    }
                }
            },
            Event::CaseResolved { unit, complete, .. } => {
                if let Some(h) = self.holders.iter_mut().find(|h| &h.unit == unit) {
                    h.resolved = true;
                }
                self.respond(at);
                if *complete {
                    self.mark_resolved(at);
                }
            }
            Event::CallbackRecorded { satisfaction, solved, .. } => {
                self.last_callback =
                    Some(Callback { satisfaction: *satisfaction, solved: *solved, at });
            }
            Event::CaseReopened { level, holders, resolution_due, hold_until, .. } => {
                self.reopen_count += 1;
                self.level = *level;
                self.status = match level {
                    Level::Community if self.assigned_worker.is_some() => Status::Assigned,
                    Level::Community => Status::Submitted,
                    Level::Street => Status::Escalated,
                    Level::Department => Status::Dispatched,
                };
                self.holders = holders
                    .iter()
                    .enumerate()
                    .map(|(i, u)| Holder { lead: i == 0, ..Holder::new(u, at) })
                    .collect();
                self.resolution_due = *resolution_due;
                self.overdue_marked = false;
                self.hold_until = *hold_until;
                self.closed_at = None;
                self.last_callback = None;
            }
            Event::CaseClosed { .. } => {
                self.status = Status::Closed;
                self.closed_at = Some(at);
            }
            // Registry events and a second submission never reach a case stream.
            _ => {}
        }
    }

    fn respond(&mut self, at: Timestamp) {
        if self.responded_at.is_none() {
            self.responded_at = Some(at);
        }
    }

    fn finish(&mut self, status: Status, at: Timestamp) {
        self.status = status;
        self.closed_at = Some(at);
        self.hold_until = None;
        self.pending_extension = None;
    }

    fn mark_resolved(&mut self, at: Timestamp) {
        self.status = Status::Resolved;
        self.resolved_at = Some(at);
        // Lead first: a reopen makes the first of these the lead again.
        let mut resolvers: Vec<&Holder> = self.holders.iter().collect();
        resolvers.sort_by_key(|h| !h.lead);
        self.last_resolvers = resolvers.into_iter().map(|h| h.unit.clone()).collect();
        self.last_resolved_level = self.level;
        self.hold_until = None;
        self.pending_extension = None;
    }

    /// Folds a whole history; `None` if it does not start with `CaseSubmitted`.
    pub fn fold<'a>(
        events: impl IntoIterator<Item = (&'a Event, &'a str, Timestamp)>,
    ) -> Option<Case> {
        let mut it = events.into_iter();
        let (first, actor, at) = it.next()?;
        let mut case = Case::start(first, actor, at)?;
        for (e, _, at) in it {
            case.apply(e, at);
        }
        Some(case)
    }

    /// Not closed, rejected, merged or withdrawn.
    pub fn is_open(&self) -> bool {
        !self.status.is_final()
    }

    /// The next moment a deadline check could record something, if any.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        if !self.is_open() || self.status == Status::Resolved {
            return None;
        }
        let mut next: Option<Timestamp> = None;
        let mut consider = |t: Timestamp| next = Some(next.map_or(t, |n| n.min(t)));
        if matches!(self.level, Level::Community | Level::Street) {
            if let Some(h) = self.hold_until {
                consider(h);
            }
        }
        for h in &self.holders {
            if let (Some(d), false, false) = (h.claim_due, h.claimed, h.claim_overdue) {
                consider(d);
            }
        }
        if !self.overdue_marked {
            consider(self.resolution_due);
        }
        next
    }

    /// Past its resolution deadline at `now` and still being worked on.
    pub fn is_overdue(&self, now: Timestamp) -> bool {
        self.is_open() && self.status != Status::Resolved && now > self.resolution_due
    }

    /// Holder whose unit is `unit`.
    pub fn holder(&self, unit: &str) -> Option<&Holder> {
        self.holders.iter().find(|h| h.unit == unit)
    }

    /// A short label of the current holders.
    pub fn holder_units(&self) -> Vec<String> {
        self.holders.iter().map(|h| h.unit.clone()).collect()
    }

    /// The reason code of the hop that a `CaseDispatched` after a return represents.
    pub fn redispatch_reason(&self) -> HopReason {
        if self.return_count > 0 {
            HopReason::Return
        } else {
            HopReason::Manual
        }
    }
}
