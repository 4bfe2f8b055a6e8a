//! A case's history as readable entries: who did what, when and why, with
//! unit and staff names from a [`Registry`].
//!
//! This is a function over the events of one case (as `Engine::history`
//! returns them), not a stored projection: a case's history is short and
//! its stream is indexed, so reading it on demand is cheaper than keeping
//! every case's text in memory.

use gridcase_engine::domain::event::OverdueKind;
use gridcase_engine::domain::Event;
use gridcase_engine::log::{Position, RecordedEvent};
use gridcase_engine::org::Registry;
use gridcase_engine::time::Timestamp;
use serde::{Deserialize, Serialize};

/// One line of a case's timeline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// Log position.
    pub position: Position,
    /// Version in the case stream.
    pub version: u64,
    /// When (recorded time).
    pub at: Timestamp,
    /// The actor id (staff id, `resident:…`, `system`).
    pub actor: String,
    /// The actor as a reader knows them (staff name and unit, "resident", "the system").
    pub who: String,
    /// The stable event type.
    pub event_type: String,
    /// What happened, in words.
    pub what: String,
    /// Why, when the event says.
    pub why: Option<String>,
}

fn unit(reg: &Registry, code: &str) -> String {
    match reg.units.get(code) {
        Some(u) => format!("{} ({code})", u.name),
        None => code.to_string(),
    }
}

fn who(reg: &Registry, actor: &str) -> String {
    if actor == "system" {
        return "the system (time limit)".into();
    }
    if let Some(r) = actor.strip_prefix("resident:") {
        return format!("resident {r}");
    }
    match reg.staff.get(actor) {
        Some(s) => format!("{} ({}, {})", s.name, s.role.as_str(), reg.name_of(&s.unit)),
        None => actor.to_string(),
    }
}

fn text(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

/// (what, why) of one event.
fn describe(reg: &Registry, event: &Event) -> (String, Option<String>) {
    match event {
        Event::CaseSubmitted {
            category, priority, channel, grid, micro_grid, description, ..
        } => {
            let cat = reg.categories.get(category).map(|c| c.name.as_str()).unwrap_or(category);
            let place = match micro_grid {
                Some(m) => format!("{}, {}", unit(reg, grid), unit(reg, m)),
                None => unit(reg, grid),
            };
            (
                format!("submitted a {priority} {cat} request via {channel} in {place}"),
                text(description),
            )
        }
        Event::CaseAssigned { worker } => {
            let name = reg.staff.get(worker).map(|s| s.name.as_str()).unwrap_or(worker);
            (format!("assigned grid worker {name}"), None)
        }
        Event::CaseRejected { reason } => ("rejected the case as invalid".into(), text(reason)),
        Event::CaseMerged { into } => (format!("merged the case into duplicate {into}"), None),
        Event::CaseWithdrawn { reason } => ("withdrew the case".into(), text(reason)),
        Event::CaseEscalated { from, to, reason, note, .. } => (
            format!("escalated from {} to {} ({reason})", unit(reg, from), unit(reg, to)),
            text(note),
        ),
        Event::CaseDispatched { from, departments, lead, reason, note, .. } => {
            let deps: Vec<String> = departments.iter().map(|d| unit(reg, d)).collect();
            let lead = if departments.len() > 1 || departments.first() != Some(lead) {
                format!(", lead {}", unit(reg, lead))
            } else {
                String::new()
            };
            (
                format!(
                    "dispatched from {} to {}{lead} ({reason})",
                    unit(reg, from),
                    deps.join(" and ")
                ),
                text(note),
            )
        }
        Event::CaseClaimed { department } => {
            (format!("{} claimed the case", unit(reg, department)), None)
        }
        Event::CaseReturned { department, reason, street_hold_until } => {
            let back = if street_hold_until.is_some() { "; back at the street" } else { "" };
            (format!("{} returned the case{back}", unit(reg, department)), text(reason))
        }
        Event::ExtensionRequested { unit: u, until, reason } => {
            (format!("{} asked for an extension until {until}", unit(reg, u)), text(reason))
        }
        Event::ExtensionApproved { by, resolution_due } => {
            (format!("{} approved the extension: now due {resolution_due}", unit(reg, by)), None)
        }
        Event::ExtensionRefused { by, reason } => {
            (format!("{} refused the extension", unit(reg, by)), text(reason))
        }
        Event::CaseSupervised { by, note } => {
            (format!("{} supervises the overdue case (督办)", unit(reg, by)), text(note))
        }
        Event::CaseOverdue { what, due } => match what {
            OverdueKind::Resolution => (format!("the resolution deadline {due} passed"), None),
            OverdueKind::Claim { department } => {
                (format!("{} did not claim the case by {due}", unit(reg, department)), None)
            }
        },
        Event::CaseResolved { unit: u, note, complete } => {
            let what = if *complete {
                format!("{} resolved the case", unit(reg, u))
            } else {
                format!("{} resolved its part; other departments are still working", unit(reg, u))
            };
            (what, text(note))
        }
        Event::CallbackRecorded { satisfaction, solved, note } => {
            let solved = if *solved { "solved" } else { "not solved" };
            (format!("called the resident back: {satisfaction}, {solved}"), text(note))
        }
        Event::CaseReopened { reason, level, holders, resolution_due, .. } => {
            let to: Vec<String> = holders.iter().map(|h| unit(reg, h)).collect();
            (
                format!(
                    "reopened the case to the {level}: {} (due {resolution_due})",
                    to.join(", ")
                ),
                text(reason),
            )
        }
        Event::CaseClosed { note } => ("closed the case".into(), text(note)),
        Event::SubmissionDetailed { located_by, point, media, .. } => {
            let mut what = match point {
                Some(p) => format!("reported at {p}, placed by {located_by}"),
                None => format!("placed by {located_by}"),
            };
            if !media.is_empty() {
                what.push_str(&format!(", with {} attached file(s)", media.len()));
            }
            (what, None)
        }
        other => (format!("registry change: {}", other.event_type()), None),
    }
}

/// The readable timeline of one case's events.
pub fn timeline(history: &[(Event, RecordedEvent)], registry: &Registry) -> Vec<TimelineEntry> {
    history
        .iter()
        .map(|(event, rec)| {
            let (what, why) = describe(registry, event);
            TimelineEntry {
                position: rec.position,
                version: rec.version,
                at: rec.recorded_at,
                actor: rec.actor.clone(),
                who: who(registry, &rec.actor),
                event_type: event.event_type().to_string(),
                what,
                why,
            }
        })
        .collect()
}
