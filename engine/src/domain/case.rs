//! The `Case` aggregate: a request's state, folded from its events.
//!
//! Folding never fails and never reads a clock: every time it keeps comes
//! from an event's recorded time or from a deadline the event carries.
//!
//! **Architecture Invariant:** this is the one fold of a case's events.
//! The engine's open-case cache, every projection and the API's case
//! listing read the state it produces; none of them re-implements `apply`.
//! The definitions the read models count by (in progress, excluded, due,
//! resolved now, working holders; `projections/RATES.md` states them) are
//! methods here, so each is written once.
//!
//! `Case` and its parts implement `clone_from` field by field: the
//! projections copy each live case into one scratch case before folding an
//! event into it, and reusing the scratch's string buffers keeps that copy
//! free of allocations.

use serde::{Deserialize, Serialize};

use super::event::{Event, OverdueKind};
use super::{
    Channel, Contact, HopReason, Level, LocationSource, MediaRef, Priority, Reporter, RequestKind,
    Satisfaction, Status,
};
use crate::geo::GeoPoint;
use crate::org::Registry;
use crate::time::Timestamp;

/// A unit holding the case (once the case has ended: one that held it
/// last, see [`Case::holders`]).
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
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

impl Clone for Holder {
    fn clone(&self) -> Holder {
        let Holder { unit, since, lead, claimed, resolved, claim_due, claim_overdue } = self;
        Holder {
            unit: unit.clone(),
            since: *since,
            lead: *lead,
            claimed: *claimed,
            resolved: *resolved,
            claim_due: *claim_due,
            claim_overdue: *claim_overdue,
        }
    }

    fn clone_from(&mut self, source: &Holder) {
        // Destructured without `..`: a new field fails to compile here
        // instead of being silently left out of the copy.
        let Holder { unit, since, lead, claimed, resolved, claim_due, claim_overdue } = source;
        self.unit.clone_from(unit);
        self.since = *since;
        self.lead = *lead;
        self.claimed = *claimed;
        self.resolved = *resolved;
        self.claim_due = *claim_due;
        self.claim_overdue = *claim_overdue;
    }
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
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtensionRequest {
    /// Asking unit.
    pub unit: String,
    /// Asked deadline.
    pub until: Timestamp,
}

impl Clone for ExtensionRequest {
    fn clone(&self) -> ExtensionRequest {
        ExtensionRequest { unit: self.unit.clone(), until: self.until }
    }

    fn clone_from(&mut self, source: &ExtensionRequest) {
        self.unit.clone_from(&source.unit);
        self.until = source.until;
    }
}

/// The state of one case.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Further reporter details; personal data like `contact`.
    pub reporter: Option<Reporter>,
    /// The point the resident reported (WGS84), if any.
    pub point: Option<GeoPoint>,
    /// How the location became a grid: a code, the point, or an address.
    pub located_by: LocationSource,
    /// Attached files (references).
    pub media: Vec<MediaRef>,
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
    /// Units holding it, the lead first among departments as dispatched.
    /// Once the case has ended (closed, rejected, merged, withdrawn) these
    /// stay as the units that held it last: a record of who had it, which
    /// Open311 shows as the responsible agency. Nobody works on an ended or
    /// resolved case; [`Case::working_holders`] is who works on it now,
    /// and that is what every read model counts.
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
    /// It went above the community at least once (escalated to the street
    /// or dispatched to a department).
    pub left_community: bool,
    /// It was dispatched to a department at least once.
    pub dispatched: bool,
    /// Some limit (the resolution deadline or a department's claim
    /// deadline) was marked overdue at least once; unlike
    /// `overdue_marked`, an extension or a reopen does not clear it.
    pub overdue_seen: bool,
    /// When it was last reopened: the start of its current resolution
    /// limit (see [`Case::limit_started_at`]).
    pub reopened_at: Option<Timestamp>,
    /// Time of the last event.
    pub updated_at: Timestamp,
}

impl Clone for Case {
    fn clone(&self) -> Case {
        let mut c = Case::empty();
        c.clone_from(self);
        c
    }

    fn clone_from(&mut self, source: &Case) {
        // Destructured without `..`: a new field fails to compile here
        // instead of being silently left out of the copy.
        let Case {
            id,
            version,
            status,
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
            reporter,
            point,
            located_by,
            media,
            submitted_by,
            found_on_patrol,
            submitted_at,
            response_due,
            responded_at,
            resolution_due,
            overdue_marked,
            level,
            holders,
            assigned_worker,
            hold_until,
            pending_extension,
            last_resolvers,
            last_resolved_level,
            resolved_at,
            last_callback,
            closed_at,
            merged_into,
            reopen_count,
            return_count,
            left_community,
            dispatched,
            overdue_seen,
            reopened_at,
            updated_at,
        } = source;
        self.id.clone_from(id);
        self.version = *version;
        self.status = *status;
        self.channel = *channel;
        self.kind = *kind;
        self.category.clone_from(category);
        self.priority = *priority;
        self.description.clone_from(description);
        self.location.clone_from(location);
        self.grid.clone_from(grid);
        self.micro_grid.clone_from(micro_grid);
        self.community.clone_from(community);
        self.street.clone_from(street);
        match (&mut self.contact, contact) {
            (Some(to), Some(from)) => {
                to.name.clone_from(&from.name);
                to.phone.clone_from(&from.phone);
            }
            (to, from) => *to = from.clone(),
        }
        self.reporter.clone_from(reporter);
        self.point = *point;
        self.located_by = *located_by;
        self.media.clone_from(media);
        self.submitted_by.clone_from(submitted_by);
        self.found_on_patrol = *found_on_patrol;
        self.submitted_at = *submitted_at;
        self.response_due = *response_due;
        self.responded_at = *responded_at;
        self.resolution_due = *resolution_due;
        self.overdue_marked = *overdue_marked;
        self.level = *level;
        self.holders.clone_from(holders);
        self.assigned_worker.clone_from(assigned_worker);
        self.hold_until = *hold_until;
        self.pending_extension.clone_from(pending_extension);
        self.last_resolvers.clone_from(last_resolvers);
        self.last_resolved_level = *last_resolved_level;
        self.resolved_at = *resolved_at;
        self.last_callback.clone_from(last_callback);
        self.closed_at = *closed_at;
        self.merged_into.clone_from(merged_into);
        self.reopen_count = *reopen_count;
        self.return_count = *return_count;
        self.left_community = *left_community;
        self.dispatched = *dispatched;
        self.overdue_seen = *overdue_seen;
        self.reopened_at = *reopened_at;
        self.updated_at = *updated_at;
    }
}

impl Case {
    /// A blank case (no strings allocated): what `clone` fills, and the
    /// lifecycle state every new case starts from (`Case::start`).
    fn empty() -> Case {
        Case {
            id: String::new(),
            version: 0,
            status: Status::Submitted,
            channel: Channel::App,
            kind: RequestKind::Help,
            category: String::new(),
            priority: Priority::Normal,
            description: String::new(),
            location: String::new(),
            grid: String::new(),
            micro_grid: None,
            community: String::new(),
            street: String::new(),
            contact: None,
            reporter: None,
            point: None,
            located_by: LocationSource::Code,
            media: Vec::new(),
            submitted_by: String::new(),
            found_on_patrol: false,
            submitted_at: Timestamp::default(),
            response_due: Timestamp::default(),
            responded_at: None,
            resolution_due: Timestamp::default(),
            overdue_marked: false,
            level: Level::Community,
            holders: Vec::new(),
            assigned_worker: None,
            hold_until: None,
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
            dispatched: false,
            overdue_seen: false,
            reopened_at: None,
            updated_at: Timestamp::default(),
        }
    }

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
            // What `CaseSubmitted` alone implies: its location is the code
            // it resolved to, or else an address. A point submission
            // follows with `SubmissionDetailed`, which says so.
            located_by: if location == grid || micro_grid.as_ref() == Some(location) {
                LocationSource::Code
            } else {
                LocationSource::Address
            },
            submitted_by: actor.to_string(),
            found_on_patrol: *found_on_patrol,
            submitted_at: at,
            response_due: *response_due,
            resolution_due: *resolution_due,
            holders: vec![Holder::new(community, at)],
            hold_until: Some(*hold_until),
            updated_at: at,
            // Everything a submission does not set starts as a blank case's.
            ..Case::empty()
        })
    }

    /// When `event`, recorded at `recorded_at` against this case as it
    /// stood, took effect.
    ///
    /// An automatic hop (an escalation or a dispatch whose reason is
    /// [`HopReason::Deadline`]) is effective at the deadline it enforces,
    /// the hold that ran out, whenever the tick that noticed it ran: the
    /// community held the case until its limit, not until the next tick.
    /// Without this, hold times depend on how often deadlines are checked
    /// (one tick on the 20th gave a community 20,480 minutes and the street
    /// 1; daily ticks gave 3,072 and 1,536 for the same case). Every other
    /// event is effective when recorded. The fold and the chain report both
    /// read times through here, so a holder's `since` and a hop's hold time
    /// agree.
    pub fn effective_at(&self, event: &Event, recorded_at: Timestamp) -> Timestamp {
        match event {
            Event::CaseEscalated { reason: HopReason::Deadline, .. }
            | Event::CaseDispatched { reason: HopReason::Deadline, .. } => match self.hold_until {
                Some(due) if due < recorded_at => due,
                _ => recorded_at,
            },
            _ => recorded_at,
        }
    }

    /// Folds one later event in, recorded at `recorded_at` (see
    /// [`Case::effective_at`] for the time it takes effect at).
    pub fn apply(&mut self, event: &Event, recorded_at: Timestamp) {
        let at = self.effective_at(event, recorded_at);
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
                self.dispatched = true;
                // Dispatched straight from the community (a hand-written
                // log can do it; the engine goes through the street) still
                // means the case left the community.
                self.left_community = true;
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
            Event::CaseOverdue { what, .. } => {
                self.overdue_seen = true;
                match what {
                    OverdueKind::Resolution => self.overdue_marked = true,
                    OverdueKind::Claim { department } => {
                        if let Some(h) = self.holders.iter_mut().find(|h| &h.unit == department) {
                            h.claim_overdue = true;
                        }
                    }
                }
            }
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
                self.reopened_at = Some(at);
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
            Event::SubmissionDetailed { located_by, point, media, reporter } => {
                self.located_by = *located_by;
                self.point = *point;
                self.media.clone_from(media);
                self.reporter.clone_from(reporter);
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

    /// **Open**: not closed, rejected, merged or withdrawn; that is, in
    /// progress ([`Case::is_in_progress`]) or resolved and waiting for its
    /// callback or closure. This is the one meaning of "open" every count
    /// uses (`case list`, `stats`, the backlog, the API's `open_cases`);
    /// RATES.md "Case states" states it in words.
    pub fn is_open(&self) -> bool {
        !self.status.is_final()
    }

    /// **Awaiting callback**: resolved, and not called back since (a
    /// reopen clears the callback, so a case resolved again awaits a new
    /// one). A resolved case whose callback is done awaits only closure.
    pub fn awaits_callback(&self) -> bool {
        self.status == Status::Resolved && self.last_callback.is_none()
    }

    /// Whether the case is `unit`'s: submitted in its subtree, or held by
    /// it (see [`Registry::case_concerns`], the one rule of every unit
    /// filter over cases).
    pub fn concerns(&self, registry: &Registry, unit: &str) -> bool {
        registry.case_concerns(&self.grid, self.holders.iter().map(|h| h.unit.as_str()), unit)
    }

    /// Rejected as invalid, merged into a duplicate or withdrawn: nothing
    /// can happen to it any more, and no rate counts it (RATES.md
    /// "excluded"). A closed case is not excluded: it can be reopened.
    pub fn is_excluded(&self) -> bool {
        matches!(self.status, Status::Rejected | Status::Merged | Status::Withdrawn)
    }

    /// Still being worked on: submitted, assigned, escalated or dispatched
    /// (open and not yet resolved).
    pub fn is_in_progress(&self) -> bool {
        matches!(
            self.status,
            Status::Submitted | Status::Assigned | Status::Escalated | Status::Dispatched
        )
    }

    /// Status resolved or closed (RATES.md "resolved-status").
    pub fn has_resolved_status(&self) -> bool {
        matches!(self.status, Status::Resolved | Status::Closed)
    }

    /// Resolved or closed, and the last callback since the last reopen (if
    /// any) did not say "not solved": the resident's problem counts as
    /// solved now.
    pub fn resolved_now(&self) -> bool {
        self.has_resolved_status() && self.last_callback.as_ref().is_none_or(|c| c.solved)
    }

    /// Due for the resolution rate (RATES.md "due"): not excluded, and
    /// resolved-status, marked overdue or reopened at least once. A case
    /// that is none of these is pending and in no resolution figure.
    pub fn is_due(&self) -> bool {
        !self.is_excluded()
            && (self.has_resolved_status() || self.overdue_marked || self.reopen_count > 0)
    }

    /// Its response can be judged (RATES.md response denominator, before
    /// exclusion): it responded, or some limit was marked overdue.
    pub fn response_judged(&self) -> bool {
        self.responded_at.is_some() || self.overdue_seen
    }

    /// It was resolved at least once (a reopen does not undo that).
    pub fn was_resolved(&self) -> bool {
        self.resolved_at.is_some()
    }

    /// The holders working on it now: none unless it is in progress, and
    /// among departments of a joint handling only those that have not
    /// resolved their part.
    pub fn working_holders(&self) -> impl Iterator<Item = &Holder> {
        let working = self.is_in_progress();
        self.holders.iter().filter(move |h| working && !h.resolved)
    }

    /// Start of the current resolution limit: the last reopen, else the
    /// submission.
    pub fn limit_started_at(&self) -> Timestamp {
        self.reopened_at.unwrap_or(self.submitted_at)
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
        Case::overdue(self.status, self.resolution_due, now)
    }

    /// [`Case::is_overdue`] from the two fields it reads, for read models
    /// that keep those and not the whole case (the Open311 listing).
    pub fn overdue(status: Status, resolution_due: Timestamp, now: Timestamp) -> bool {
        !status.is_final() && status != Status::Resolved && now > resolution_due
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
