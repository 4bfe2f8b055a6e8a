//! Commands against a case: the lifecycle rules and the authority rules.
//!
//! [`decide`] is pure: given the case (or none, for a submission), the
//! command, the resolved actor, the registry and the time, it returns the
//! events to append or a [`Rejection`] naming the rule, case and state.
//! `LIFECYCLE.md` beside this file has the state machine and the authority table.

use super::event::{Event, OverdueKind};
use super::{
    Actor, Case, Command, HopReason, Level, LocationSource, MediaRef, Rejection, Reporter, Rule,
    Status, Submission,
};
use crate::org::{Registry, Role, UnitKind};
use crate::time::Timestamp;

/// What a decision needs besides the case and the command.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    /// The registry in force.
    pub registry: &'a Registry,
    /// The time of the decision.
    pub now: Timestamp,
    /// Id of the case (the new id for a submission).
    pub case_id: &'a str,
    /// For a merge: whether the target case exists and is open.
    pub merge_target_open: Option<bool>,
}

const MAX_TEXT: usize = 4000;
const MINUTE: i64 = 60_000;

struct Judge<'a> {
    command: &'a Command,
    case: Option<&'a Case>,
    ctx: &'a Context<'a>,
}

impl Judge<'_> {
    fn no(&self, rule: Rule, detail: impl Into<String>) -> Rejection {
        Rejection {
            rule,
            command: self.command.name().to_string(),
            case_id: Some(self.ctx.case_id.to_string()),
            state: self.case.map(|c| c.status),
            detail: detail.into(),
        }
    }
    fn auth(&self, ok: bool, who: &str) -> Result<(), Rejection> {
        if ok {
            Ok(())
        } else {
            Err(self.no(Rule::NotAuthorised, format!("only {who} may do this")))
        }
    }
    fn state(&self, ok: bool, why: &str) -> Result<(), Rejection> {
        if ok {
            Ok(())
        } else {
            Err(self.no(Rule::InvalidTransition, why.to_string()))
        }
    }
    fn text(&self, field: &str, text: &str) -> Result<(), Rejection> {
        if text.trim().is_empty() {
            return Err(self.no(Rule::InvalidArgument, format!("{field} must not be empty")));
        }
        if text.chars().count() > MAX_TEXT {
            return Err(self.no(
                Rule::InvalidArgument,
                format!("{field} is longer than {MAX_TEXT} characters"),
            ));
        }
        Ok(())
    }
}

fn is(actor: &Actor, role: Role, unit: &str) -> bool {
    actor.role == role && actor.unit.as_deref() == Some(unit) && !actor.system
}

fn supervisor(actor: &Actor) -> bool {
    actor.role == Role::DistrictSupervisor && !actor.system
}

/// Decides a command; see the module docs.
pub fn decide(
    case: Option<&Case>,
    command: &Command,
    actor: &Actor,
    ctx: &Context<'_>,
) -> Result<Vec<Event>, Rejection> {
    let j = Judge { command, case, ctx };
    let now = ctx.now;
    let Some(case) = case else {
        return match command {
            Command::Submit(s) => submit(&j, s, actor),
            _ => Err(Rejection {
                rule: Rule::InvalidArgument,
                command: command.name().into(),
                case_id: Some(ctx.case_id.into()),
                state: None,
                detail: "there is no such case".into(),
            }),
        };
    };
    let reg = ctx.registry;
    let limits = reg.policy.limits(case.kind, category_class(reg, &case.category), case.priority);
    let community_staff = is(actor, Role::CommunityStaff, &case.community);
    let street_staff = is(actor, Role::StreetStaff, &case.street);
    let assigned_worker = actor.role == Role::GridWorker
        && case.assigned_worker.as_deref() == Some(actor.id.as_str())
        && !actor.system;
    let open = case.is_open();
    match command {
        Command::Submit(_) => Err(j.no(Rule::InvalidTransition, "the case already exists")),
        Command::Assign { worker } => {
            j.auth(community_staff, "staff of the case's community")?;
            j.state(
                matches!(case.status, Status::Submitted | Status::Assigned),
                "only a case held by the community can be assigned",
            )?;
            let w = reg.staff.get(worker).filter(|s| !s.retired);
            let ok = w.is_some_and(|w| {
                w.role == Role::GridWorker && reg.is_within(&w.unit, &case.community)
            });
            if !ok {
                return Err(j.no(
                    Rule::InvalidArgument,
                    format!(
                        "{worker:?} is not an active grid worker of community {}",
                        case.community
                    ),
                ));
            }
            Ok(vec![Event::CaseAssigned { worker: worker.clone() }])
        }
        Command::Reject { reason } | Command::Withdraw { reason } => {
            let withdraw = matches!(command, Command::Withdraw { .. });
            j.text("reason", reason)?;
            if withdraw {
                j.auth(
                    actor.id == case.submitted_by || community_staff || supervisor(actor),
                    "the resident who submitted it, its community's staff or a district supervisor",
                )?;
                j.state(
                    open && case.status != Status::Resolved,
                    "only an open, unresolved case can be withdrawn",
                )?;
                Ok(vec![Event::CaseWithdrawn { reason: reason.clone() }])
            } else {
                j.auth(
                    (community_staff && case.level == Level::Community)
                        || (street_staff && case.level == Level::Street)
                        || supervisor(actor),
                    "the holding community or street, or a district supervisor",
                )?;
                j.state(
                    matches!(case.status, Status::Submitted | Status::Assigned | Status::Escalated),
                    "only a case not yet dispatched can be rejected",
                )?;
                Ok(vec![Event::CaseRejected { reason: reason.clone() }])
            }
        }
        Command::Merge { into } => {
            j.auth(
                (community_staff && case.level == Level::Community)
                    || (street_staff && case.level == Level::Street)
                    || supervisor(actor),
                "the holding community or street, or a district supervisor",
            )?;
            j.state(
                matches!(case.status, Status::Submitted | Status::Assigned | Status::Escalated),
                "only a case not yet dispatched can be merged",
            )?;
            if into == &case.id {
                return Err(j.no(Rule::InvalidArgument, "a case cannot be merged into itself"));
            }
            if ctx.merge_target_open != Some(true) {
                return Err(j.no(
                    Rule::InvalidArgument,
                    format!("case {into} does not exist or is no longer open"),
                ));
            }
            Ok(vec![Event::CaseMerged { into: into.clone() }])
        }
        Command::Escalate { reason } => {
            let grid_worker = actor.role == Role::GridWorker
                && actor.unit.as_deref() == Some(case.grid.as_str())
                && !actor.system;
            j.auth(
                community_staff || assigned_worker || grid_worker,
                "the case's community staff or grid worker",
            )?;
            j.state(
                matches!(case.status, Status::Submitted | Status::Assigned),
                "only a case held by the community can be escalated to the street",
            )?;
            j.text("reason", reason)?;
            Ok(vec![Event::CaseEscalated {
                from: case.community.clone(),
                to: case.street.clone(),
                reason: HopReason::Manual,
                note: reason.clone(),
                hold_until: now.plus_ms(limits.street_minutes as i64 * MINUTE),
            }])
        }
        Command::Dispatch { departments, lead, note } => {
            j.auth(
                street_staff || supervisor(actor),
                "staff of the case's street or a district supervisor",
            )?;
            j.state(matches!(case.status, Status::Escalated | Status::Dispatched), "only a case at the street (or already dispatched, to add departments) can be dispatched")?;
            if departments.is_empty() {
                return Err(j.no(Rule::InvalidArgument, "name at least one department"));
            }
            let mut seen = std::collections::HashSet::new();
            for d in departments {
                let ok =
                    reg.units.get(d).is_some_and(|u| u.kind == UnitKind::Department && !u.retired);
                if !ok {
                    return Err(
                        j.no(Rule::InvalidArgument, format!("{d:?} is not an active department"))
                    );
                }
                if !seen.insert(d) || case.status == Status::Dispatched && case.holder(d).is_some()
                {
                    return Err(j.no(
                        Rule::InvalidArgument,
                        format!("department {d} already holds the case or is named twice"),
                    ));
                }
            }
            let lead = lead.clone().unwrap_or_else(|| {
                case.holders
                    .iter()
                    .find(|h| h.lead && case.level == Level::Department)
                    .map(|h| h.unit.clone())
                    .unwrap_or_else(|| departments[0].clone())
            });
            let lead_ok = departments.contains(&lead)
                || (case.level == Level::Department && case.holder(&lead).is_some());
            if !lead_ok {
                return Err(j.no(
                    Rule::InvalidArgument,
                    format!("lead {lead:?} is not among the departments"),
                ));
            }
            Ok(vec![Event::CaseDispatched {
                from: case.street.clone(),
                departments: departments.clone(),
                lead,
                reason: if case.status == Status::Escalated {
                    case.redispatch_reason()
                } else {
                    HopReason::Manual
                },
                note: note.clone(),
                claim_due: now.plus_ms(limits.claim_minutes as i64 * MINUTE),
            }])
        }
        Command::Claim | Command::Return { .. } => {
            let unit = actor.unit.clone().unwrap_or_default();
            let holder = (actor.role == Role::DepartmentStaff && !actor.system)
                .then(|| case.holder(&unit))
                .flatten();
            j.auth(holder.is_some(), "staff of a department that holds the case")?;
            j.state(case.status == Status::Dispatched, "the case is not with departments")?;
            let Some(h) = holder else { return Err(j.no(Rule::NotAuthorised, "not a holder")) };
            if let Command::Return { reason } = command {
                j.text("reason", reason)?;
                j.state(!h.resolved, "this department already resolved its part")?;
                let last = case.holders.len() == 1;
                Ok(vec![Event::CaseReturned {
                    department: unit,
                    reason: reason.clone(),
                    street_hold_until: last
                        .then(|| now.plus_ms(limits.street_minutes as i64 * MINUTE)),
                }])
            } else {
                j.state(!h.claimed, "this department already claimed the case")?;
                Ok(vec![Event::CaseClaimed { department: unit }])
            }
        }
        Command::RequestExtension { until, reason } => {
            j.text("reason", reason)?;
            let unit = holding_unit(case, actor, community_staff, assigned_worker, street_staff);
            j.auth(unit.is_some(), "a unit that holds the case")?;
            j.state(
                open && case.status != Status::Resolved,
                "only a case being worked on can be extended",
            )?;
            j.state(case.pending_extension.is_none(), "an extension request is already pending")?;
            j.state(
                now <= case.resolution_due,
                "an extension must be requested before the deadline",
            )?;
            // The one accepted range of times (time.rs): an `until` of
            // i64::MAX would make a case that can never be overdue.
            if until.in_range("until").is_err() {
                return Err(j.no(
                    Rule::InvalidArgument,
                    format!(
                        "the new deadline {until} is outside the accepted range {} to {}",
                        crate::time::EARLIEST,
                        crate::time::LATEST
                    ),
                ));
            }
            if *until <= case.resolution_due {
                return Err(j.no(
                    Rule::InvalidArgument,
                    format!(
                        "the new deadline must be after the current one ({})",
                        case.resolution_due
                    ),
                ));
            }
            Ok(vec![Event::ExtensionRequested {
                unit: unit.unwrap_or_default(),
                until: *until,
                reason: reason.clone(),
            }])
        }
        Command::DecideExtension { approve, reason } => {
            let Some(req) = &case.pending_extension else {
                return Err(j.no(Rule::InvalidTransition, "no extension request is pending"));
            };
            let requester_is_community = req.unit == case.community;
            j.auth(supervisor(actor) || (requester_is_community && street_staff), "the unit above the requester (the street for a community, a district supervisor otherwise)")?;
            let by = actor.unit.clone().unwrap_or_else(|| actor.id.clone());
            if *approve {
                Ok(vec![Event::ExtensionApproved { by, resolution_due: req.until }])
            } else {
                j.text("reason", reason)?;
                Ok(vec![Event::ExtensionRefused { by, reason: reason.clone() }])
            }
        }
        Command::Supervise { note } => {
            j.auth(supervisor(actor) || (street_staff && case.level == Level::Community), "a superior of the holder (the street over a community, a district supervisor over anyone)")?;
            j.state(case.is_overdue(now), "only an overdue case can be supervised")?;
            j.text("note", note)?;
            Ok(vec![Event::CaseSupervised {
                by: actor.unit.clone().unwrap_or_else(|| actor.id.clone()),
                note: note.clone(),
            }])
        }
        Command::Resolve { note } => {
            j.text("note", note)?;
            j.state(
                matches!(
                    case.status,
                    Status::Submitted | Status::Assigned | Status::Escalated | Status::Dispatched
                ),
                "only a case being worked on can be resolved",
            )?;
            let unit = match case.level {
                Level::Community => {
                    (community_staff || assigned_worker).then(|| case.community.clone())
                }
                Level::Street => street_staff.then(|| case.street.clone()),
                Level::Department => {
                    let u = actor.unit.clone().unwrap_or_default();
                    let h = (actor.role == Role::DepartmentStaff && !actor.system)
                        .then(|| case.holder(&u))
                        .flatten();
                    if let Some(h) = h {
                        j.state(h.claimed, "claim the case before resolving it")?;
                        j.state(!h.resolved, "this department already resolved its part")?;
                    }
                    h.map(|_| u)
                }
            };
            let Some(unit) = unit else {
                return Err(j.no(
                    Rule::NotAuthorised,
                    "only the holder (its assigned grid worker or staff) may resolve the case",
                ));
            };
            let complete = case.holders.iter().all(|h| h.unit == unit || h.resolved);
            Ok(vec![Event::CaseResolved { unit, note: note.clone(), complete }])
        }
        Command::Callback { satisfaction, solved, note } => {
            j.auth(
                community_staff || supervisor(actor),
                "staff of the case's community or a district supervisor (hotline)",
            )?;
            j.state(case.status == Status::Resolved, "only a resolved case can be called back")?;
            Ok(vec![Event::CallbackRecorded {
                satisfaction: *satisfaction,
                solved: *solved,
                note: note.clone(),
            }])
        }
        Command::Reopen { reason } => {
            j.text("reason", reason)?;
            match case.status {
                Status::Resolved => {
                    j.auth(
                        community_staff || supervisor(actor),
                        "staff of the case's community or a district supervisor",
                    )?;
                    let unhappy = case.last_callback.as_ref().is_some_and(|c| {
                        c.satisfaction == super::Satisfaction::Unsatisfied || !c.solved
                    });
                    j.state(unhappy, "a resolved case is reopened only after a callback that is unsatisfied or not solved")?;
                }
                Status::Closed => {
                    j.auth(supervisor(actor), "a district supervisor (for a closed case)")?;
                    let window = reg.policy.reopen_window_days as i64 * 24 * 60 * MINUTE;
                    let in_window =
                        case.closed_at.is_some_and(|c| now.0 <= c.0.saturating_add(window));
                    j.state(in_window, "the reopen window of the closed case has passed")?;
                }
                _ => {
                    return Err(j.no(
                        Rule::InvalidTransition,
                        "only a resolved or recently closed case can be reopened",
                    ))
                }
            }
            let level = case.last_resolved_level;
            let hold_until = match level {
                Level::Community => Some(now.plus_ms(limits.community_minutes as i64 * MINUTE)),
                Level::Street => Some(now.plus_ms(limits.street_minutes as i64 * MINUTE)),
                Level::Department => None,
            };
            Ok(vec![Event::CaseReopened {
                reason: reason.clone(),
                level,
                holders: if case.last_resolvers.is_empty() {
                    case.holder_units()
                } else {
                    case.last_resolvers.clone()
                },
                resolution_due: now.plus_ms(limits.resolution_minutes as i64 * MINUTE),
                hold_until,
            }])
        }
        Command::Close { note } => {
            j.auth(
                community_staff || supervisor(actor),
                "staff of the case's community or a district supervisor",
            )?;
            j.state(case.status == Status::Resolved, "only a resolved case can be closed")?;
            j.state(case.last_callback.is_some(), "call the resident back before closing")?;
            Ok(vec![Event::CaseClosed { note: note.clone() }])
        }
        Command::CheckDeadlines => {
            j.auth(actor.system, "the engine itself")?;
            Ok(deadline_events(case, reg, now))
        }
    }
}

fn holding_unit(
    case: &Case,
    actor: &Actor,
    community_staff: bool,
    assigned_worker: bool,
    street_staff: bool,
) -> Option<String> {
    match case.level {
        Level::Community => (community_staff || assigned_worker).then(|| case.community.clone()),
        Level::Street => street_staff.then(|| case.street.clone()),
        Level::Department => {
            let u = actor.unit.as_deref()?;
            (actor.role == Role::DepartmentStaff && case.holder(u).is_some_and(|h| h.claimed))
                .then(|| u.to_string())
        }
    }
}

fn category_class(reg: &Registry, category: &str) -> super::DeadlineClass {
    reg.categories.get(category).map(|c| c.class).unwrap_or(super::DeadlineClass::Ordinary)
}

/// Every time limit passed at `now`, in the order they fell due, each
/// computed from the deadline itself (not from `now`) so that the result does
/// not depend on how often deadlines are checked.
fn deadline_events(case: &Case, reg: &Registry, now: Timestamp) -> Vec<Event> {
    let mut state = case.clone();
    let mut out = Vec::new();
    let limits = reg.policy.limits(case.kind, category_class(reg, &case.category), case.priority);
    for _ in 0..16 {
        let Some(due) = state.next_deadline().filter(|d| *d <= now) else { break };
        let event = if state.level == Level::Community && state.hold_until == Some(due) {
            Event::CaseEscalated {
                from: state.community.clone(),
                to: state.street.clone(),
                reason: HopReason::Deadline,
                note: "the community's time limit passed".into(),
                hold_until: due.plus_ms(limits.street_minutes as i64 * MINUTE),
            }
        } else if state.level == Level::Street && state.hold_until == Some(due) {
            let dept = reg.categories.get(&state.category).map(|c| c.department.clone());
            // Categories always name a department (the organisation file is
            // checked on load); without one there is nothing to dispatch to.
            let Some(d) = dept else { break };
            Event::CaseDispatched {
                from: state.street.clone(),
                departments: vec![d.clone()],
                lead: d,
                reason: HopReason::Deadline,
                note: "the street's time limit passed; sent to the category's department".into(),
                claim_due: due.plus_ms(limits.claim_minutes as i64 * MINUTE),
            }
        } else if let Some(h) = state
            .holders
            .iter()
            .find(|h| h.claim_due == Some(due) && !h.claimed && !h.claim_overdue)
        {
            Event::CaseOverdue { what: OverdueKind::Claim { department: h.unit.clone() }, due }
        } else if !state.overdue_marked && state.resolution_due == due {
            Event::CaseOverdue { what: OverdueKind::Resolution, due }
        } else {
            break;
        };
        state.apply(&event, now);
        out.push(event);
    }
    out
}

/// Longest contact name accepted, in characters.
const MAX_CONTACT_NAME: usize = 64;
/// Longest phone number accepted, in characters (with `+`, spaces, dashes).
const MAX_PHONE: usize = 32;

/// A contact is what a callback needs: a short printable name and a phone
/// number made of digits and the usual separators; either may be missing
/// (Open311 clients send what they have), not both. Anything else (a 30 KB
/// name, a number starting with NUL) is refused before it reaches the log,
/// where it would stay for good.
fn check_contact(j: &Judge<'_>, contact: &super::Contact) -> Result<(), Rejection> {
    let name = contact.name.trim();
    if name.chars().count() > MAX_CONTACT_NAME || name.chars().any(|c| c.is_control()) {
        return Err(j.no(
            Rule::InvalidArgument,
            format!("the contact name must be at most {MAX_CONTACT_NAME} printable characters"),
        ));
    }
    let phone = contact.phone.trim();
    let digits = phone.chars().filter(char::is_ascii_digit).count();
    let phone_ok = phone.is_empty()
        || (phone.chars().count() <= MAX_PHONE
            && digits >= 3
            && phone
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | ' ' | '(' | ')')));
    if !phone_ok {
        return Err(j.no(
            Rule::InvalidArgument,
            format!(
                "the contact phone must be a number of at most {MAX_PHONE} characters: digits, +, -, spaces and parentheses"
            ),
        ));
    }
    if name.is_empty() && phone.is_empty() {
        return Err(j.no(Rule::InvalidArgument, "a contact needs a name or a phone number"));
    }
    Ok(())
}

fn submit(j: &Judge<'_>, s: &Submission, actor: &Actor) -> Result<Vec<Event>, Rejection> {
    let ctx = j.ctx;
    let reg = ctx.registry;
    j.text("description", &s.description)?;
    if let Some(contact) = &s.contact {
        check_contact(j, contact)?;
    }
    let cat = reg.categories.get(&s.category).ok_or_else(|| {
        j.no(
            Rule::InvalidArgument,
            format!(
                "unknown category {:?}; the registry has {}",
                s.category,
                reg.categories.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        )
    })?;
    let media = check_media(j, &s.media)?;
    let reporter = match &s.reporter {
        Some(r) => check_reporter(j, r)?,
        None => None,
    };
    let location = s.location.trim();
    // A code names the grid outright. A GPS fix is more precise than free
    // text, so where the organisation has boundaries it decides over an
    // address; an address still places the case when the point lies
    // outside every micro-grid (a poor fix) or there are no boundaries.
    let by_point = match s.point {
        Some(p) if !reg.units.contains_key(location) => match reg.locate(p) {
            Ok(l) => Some((l.grid.to_string(), l.micro_grid.map(str::to_string))),
            Err(e) if location.is_empty() => return Err(j.no(Rule::InvalidArgument, e.to_string())),
            Err(_) => None,
        },
        _ => None,
    };
    let (located_by, (grid, micro_grid)) =
        match by_point {
            Some(found) => (LocationSource::Point, found),
            None if location.is_empty() => return Err(j.no(
                Rule::InvalidArgument,
                "give a location (a grid or micro-grid code, or a registered address) or a point",
            )),
            None => (
                if reg.units.contains_key(location) {
                    LocationSource::Code
                } else {
                    LocationSource::Address
                },
                reg.resolve_location(location)
                    .map_err(|e| j.no(Rule::InvalidArgument, e.to_string()))?,
            ),
        };
    if reg.units.get(&grid).is_some_and(|u| u.retired) {
        return Err(j.no(Rule::InvalidArgument, format!("grid {grid} is retired")));
    }
    let community = reg.ancestor(&grid, UnitKind::Community).map(|u| u.code.clone());
    let street = reg.ancestor(&grid, UnitKind::Street).map(|u| u.code.clone());
    let (Some(community), Some(street)) = (community, street) else {
        return Err(j.no(
            Rule::InvalidArgument,
            format!("grid {grid} is not under a community and street"),
        ));
    };
    let allowed = match actor.role {
        // A resident reports through the portal or the app. A hotline call
        // is taken down by the hotline operator (the district's 12345 desk)
        // and a patrol finding by the grid worker: a resident claiming those
        // channels would skew the channel statistics the seeds report.
        Role::Resident => {
            !matches!(s.channel, super::Channel::GridPatrol | super::Channel::Hotline)
        }
        Role::GridWorker => actor.unit.as_deref() == Some(grid.as_str()),
        Role::CommunityStaff => actor.unit.as_deref() == Some(community.as_str()),
        Role::StreetStaff => actor.unit.as_deref() == Some(street.as_str()),
        Role::DistrictSupervisor => !actor.system,
        Role::DepartmentStaff | Role::Auditor => false,
    };
    j.auth(allowed, "a resident (through the portal or the app), the grid's own grid worker, or staff of the community, street or district (the hotline desk)")?;
    let limits = reg.policy.limits(s.kind, cat.class, s.priority);
    let now = ctx.now;
    let mut events = vec![Event::CaseSubmitted {
        case_id: ctx.case_id.to_string(),
        channel: s.channel,
        kind: s.kind,
        category: s.category.clone(),
        priority: s.priority,
        description: s.description.clone(),
        // A point-only submission reads as its coordinates wherever the
        // location text is shown.
        location: match s.point {
            Some(p) if s.location.trim().is_empty() => p.to_string(),
            _ => s.location.clone(),
        },
        grid,
        micro_grid,
        community,
        street,
        contact: s.contact.clone(),
        found_on_patrol: actor.role == Role::GridWorker,
        response_due: now.plus_ms(limits.response_minutes as i64 * MINUTE),
        resolution_due: now.plus_ms(limits.resolution_minutes as i64 * MINUTE),
        hold_until: now.plus_ms(limits.community_minutes as i64 * MINUTE),
    }];
    // Only when there is something to add: a submission by code or address
    // with no extras stays one `CaseSubmitted`, as stores have always had.
    if s.point.is_some() || !media.is_empty() || reporter.is_some() {
        events.push(Event::SubmissionDetailed { located_by, point: s.point, media, reporter });
    }
    Ok(events)
}

/// Most files one submission may reference.
const MAX_MEDIA: usize = 16;
/// Longest reporter detail accepted, in characters.
const MAX_REPORTER_FIELD: usize = 128;

/// Media references as stored: the hash in lower case, a `type/subtype`
/// content type. Refused when malformed, so the log never points at a
/// file no store can name.
/// Longest media link accepted.
const MAX_MEDIA_URL: usize = 2048;

fn check_media(j: &Judge<'_>, media: &[MediaRef]) -> Result<Vec<MediaRef>, Rejection> {
    if media.len() > MAX_MEDIA {
        return Err(
            j.no(Rule::InvalidArgument, format!("at most {MAX_MEDIA} media files per submission"))
        );
    }
    media
        .iter()
        .map(|m| {
            if let Some(url) = &m.url {
                let url = url.trim();
                let ok = m.sha256.is_empty()
                    && m.content_type.is_empty()
                    && m.size == 0
                    && url.len() <= MAX_MEDIA_URL
                    && (url.starts_with("http://") || url.starts_with("https://"))
                    && url.chars().all(|c| !c.is_whitespace() && !c.is_control());
                if !ok {
                    return Err(j.no(
                        Rule::InvalidArgument,
                        format!("a media link must be an http(s) URL of at most {MAX_MEDIA_URL} characters, with no hash, type or size"),
                    ));
                }
                return Ok(MediaRef::link(url));
            }
            let sha256 = m.sha256.trim().to_ascii_lowercase();
            if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(j.no(
                    Rule::InvalidArgument,
                    format!("media sha256 {:?} is not 64 hexadecimal digits", m.sha256),
                ));
            }
            let content_type = m.content_type.trim().to_ascii_lowercase();
            let ok = content_type.len() <= 100
                && content_type
                    .split_once('/')
                    .is_some_and(|(t, s)| !t.is_empty() && !s.is_empty())
                && content_type.bytes().all(|b| b.is_ascii_graphic());
            if !ok {
                return Err(j.no(
                    Rule::InvalidArgument,
                    format!("media content type {:?} is not a type/subtype", m.content_type),
                ));
            }
            Ok(MediaRef { sha256, content_type, size: m.size, url: None })
        })
        .collect()
}

/// Reporter details trimmed, empty ones dropped (`None` when nothing is
/// left); each short and printable, the e-mail with an `@`.
fn check_reporter(j: &Judge<'_>, r: &Reporter) -> Result<Option<Reporter>, Rejection> {
    let field = |name: &str, v: &Option<String>| -> Result<Option<String>, Rejection> {
        let Some(v) = v.as_deref().map(str::trim).filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        if v.chars().count() > MAX_REPORTER_FIELD || v.chars().any(char::is_control) {
            return Err(j.no(
                Rule::InvalidArgument,
                format!("{name} must be at most {MAX_REPORTER_FIELD} printable characters"),
            ));
        }
        Ok(Some(v.to_string()))
    };
    let out = Reporter {
        device_id: field("device_id", &r.device_id)?,
        account_id: field("account_id", &r.account_id)?,
        email: field("email", &r.email)?,
        first_name: field("first_name", &r.first_name)?,
        last_name: field("last_name", &r.last_name)?,
    };
    if out.email.as_deref().is_some_and(|e| {
        let (user, host) = e.split_once('@').unwrap_or(("", ""));
        user.is_empty() || host.is_empty() || e.contains(char::is_whitespace)
    }) {
        return Err(j.no(Rule::InvalidArgument, "email is not an e-mail address"));
    }
    Ok((!out.is_empty()).then_some(out))
}
