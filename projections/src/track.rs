//! The compact per-case state every projection folds: status, level,
//! holders and the times the rates need, without the texts of a case.
//!
//! It mirrors [`gridcase_engine::domain::Case::apply`] field for field (a
//! test folds engine-made histories both ways and compares), so that every
//! projection agrees with the engine on when a case is resolved, who holds
//! it and when it went overdue. A full `Case` per projection and open case
//! would carry descriptions, contacts and addresses nobody here reads.

use gridcase_engine::domain::event::OverdueKind;
use gridcase_engine::domain::{Event, HopReason, Level, Satisfaction, Status};
use gridcase_engine::time::Timestamp;
use serde::{Deserialize, Serialize};

/// A unit holding the case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    /// Unit code.
    pub unit: String,
    /// Since when.
    pub since: Timestamp,
    /// A department claimed it (always true for a community or street).
    pub claimed: bool,
    /// It resolved its part.
    pub resolved: bool,
    /// A department's claim deadline.
    pub claim_due: Option<Timestamp>,
}

impl Held {
    fn new(unit: &str, since: Timestamp) -> Held {
        Held { unit: unit.to_string(), since, claimed: true, resolved: false, claim_due: None }
    }
}

/// The last callback.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackResult {
    /// Rating.
    pub satisfaction: Satisfaction,
    /// Whether the resident said the problem is solved.
    pub solved: bool,
}

/// The compact state of one case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Track {
    /// Where it stands.
    pub status: Status,
    /// The level holding it.
    pub level: Level,
    /// Units holding it (cleared once closed: a reopen names its holders).
    pub holders: Vec<Held>,
    /// Submission time.
    pub submitted_at: Timestamp,
    /// First response due.
    pub response_due: Timestamp,
    /// First response (assignment, manual escalation, claim or resolution).
    pub responded_at: Option<Timestamp>,
    /// Resolution due, as extended or reset by a reopen.
    pub resolution_due: Timestamp,
    /// The current resolution deadline was marked overdue.
    pub overdue_marked: bool,
    /// Some limit (resolution or claim) was marked overdue at least once.
    pub overdue_seen: bool,
    /// A grid worker was assigned.
    pub assigned: bool,
    /// When it was last resolved.
    pub resolved_at: Option<Timestamp>,
    /// It was resolved at least once.
    pub ever_resolved: bool,
    /// When it was closed (or rejected, merged, withdrawn).
    pub closed_at: Option<Timestamp>,
    /// The last callback since the last reopen.
    pub callback: Option<CallbackResult>,
    /// Reopens.
    pub reopen_count: u32,
    /// Returns by departments.
    pub return_count: u32,
    /// It went above the community at least once.
    pub left_community: bool,
    /// It was dispatched to a department at least once.
    pub dispatched: bool,
}

impl Track {
    /// The state right after `CaseSubmitted`: held by the community.
    pub fn start(
        at: Timestamp,
        community: &str,
        response_due: Timestamp,
        resolution_due: Timestamp,
    ) -> Track {
        Track {
            status: Status::Submitted,
            level: Level::Community,
            holders: vec![Held::new(community, at)],
            submitted_at: at,
            response_due,
            responded_at: None,
            resolution_due,
            overdue_marked: false,
            overdue_seen: false,
            assigned: false,
            resolved_at: None,
            ever_resolved: false,
            closed_at: None,
            callback: None,
            reopen_count: 0,
            return_count: 0,
            left_community: false,
            dispatched: false,
        }
    }

    /// Folds a later event of the case; `street` is the case's street (a
    /// return by the last department hands the case back to it).
    pub fn apply(&mut self, event: &Event, at: Timestamp, street: &str) {
        match event {
            Event::CaseAssigned { .. } => {
                self.assigned = true;
                self.status = Status::Assigned;
                self.respond(at);
            }
            Event::CaseRejected { .. } => self.finish(Status::Rejected, at),
            Event::CaseWithdrawn { .. } => self.finish(Status::Withdrawn, at),
            Event::CaseMerged { .. } => self.finish(Status::Merged, at),
            Event::CaseEscalated { to, reason, .. } => {
                self.level = Level::Street;
                self.status = Status::Escalated;
                self.holders = vec![Held::new(to, at)];
                self.left_community = true;
                // A deadline escalation is the absence of a response, not one.
                if *reason != HopReason::Deadline {
                    self.respond(at);
                }
            }
            Event::CaseDispatched { departments, claim_due, .. } => {
                if self.level != Level::Department {
                    self.holders.clear();
                }
                self.level = Level::Department;
                self.status = Status::Dispatched;
                self.dispatched = true;
                self.left_community = true;
                for d in departments {
                    if !self.holders.iter().any(|h| &h.unit == d) {
                        self.holders.push(Held {
                            unit: d.clone(),
                            since: at,
                            claimed: false,
                            resolved: false,
                            claim_due: Some(*claim_due),
                        });
                    }
                }
            }
            Event::CaseClaimed { department } => {
                if let Some(h) = self.holders.iter_mut().find(|h| &h.unit == department) {
                    h.claimed = true;
                }
                self.respond(at);
            }
            Event::CaseReturned { department, .. } => {
                self.return_count += 1;
                self.holders.retain(|h| &h.unit != department);
                if self.holders.is_empty() {
                    self.level = Level::Street;
                    self.status = Status::Escalated;
                    self.holders = vec![Held::new(street, at)];
                } else if self.holders.iter().all(|h| h.resolved) {
                    // The departments left had all resolved their parts.
                    self.mark_resolved(at);
                }
            }
            Event::ExtensionApproved { resolution_due, .. } => {
                if *resolution_due > self.resolution_due {
                    self.overdue_marked = false;
                }
                self.resolution_due = *resolution_due;
            }
            Event::CaseOverdue { what, .. } => {
                self.overdue_seen = true;
                if *what == OverdueKind::Resolution {
                    self.overdue_marked = true;
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
                self.callback =
                    Some(CallbackResult { satisfaction: *satisfaction, solved: *solved });
            }
            Event::CaseReopened { level, holders, resolution_due, .. } => {
                self.reopen_count += 1;
                self.level = *level;
                self.status = match level {
                    Level::Community if self.assigned => Status::Assigned,
                    Level::Community => Status::Submitted,
                    Level::Street => Status::Escalated,
                    Level::Department => Status::Dispatched,
                };
                self.holders = holders.iter().map(|u| Held::new(u, at)).collect();
                self.resolution_due = *resolution_due;
                self.overdue_marked = false;
                self.closed_at = None;
                self.callback = None;
            }
            Event::CaseClosed { .. } => {
                self.status = Status::Closed;
                self.closed_at = Some(at);
                // Nobody works on a closed case, and a reopen names its holders.
                self.holders = Vec::new();
            }
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
    }

    fn mark_resolved(&mut self, at: Timestamp) {
        self.status = Status::Resolved;
        self.resolved_at = Some(at);
        self.ever_resolved = true;
    }

    /// Not rejected as invalid, merged into a duplicate or withdrawn.
    pub fn valid(&self) -> bool {
        !matches!(self.status, Status::Rejected | Status::Merged | Status::Withdrawn)
    }

    /// Rejected, merged or withdrawn: nothing can happen to it any more.
    pub fn ended_for_good(&self) -> bool {
        !self.valid()
    }

    /// Still being worked on: open and not resolved.
    pub fn in_progress(&self) -> bool {
        matches!(
            self.status,
            Status::Submitted | Status::Assigned | Status::Escalated | Status::Dispatched
        )
    }

    /// Resolved or closed, and the last callback (if any) did not say "not solved".
    pub fn resolved_now(&self) -> bool {
        matches!(self.status, Status::Resolved | Status::Closed)
            && self.callback.is_none_or(|c| c.solved)
    }

    /// Holders still working on their part.
    pub fn active_holders(&self) -> impl Iterator<Item = &Held> {
        let working = self.in_progress();
        self.holders.iter().filter(move |h| working && !h.resolved)
    }
}

/// The case id of a case stream (`case-<id>`), or `None` for other streams.
pub(crate) fn case_id(stream: &str) -> Option<&str> {
    stream.strip_prefix(gridcase_engine::engine::CASE_STREAM_PREFIX)
}

/// A case id as a map key that compares in one machine instruction.
///
/// Per-case maps are searched on every event, and comparing `String`s
/// there was a fifth of the fold's time. The first 16 bytes are kept as a
/// big-endian integer (zero-padded) and the rest as bytes; since stream
/// names hold no NUL byte, ordering by (head, tail) is exactly the
/// byte-wise order of the ids, and the key serialises as the id itself, so
/// the state's bytes are what a `BTreeMap<String, _>` would give.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CaseKey {
    head: u128,
    tail: Box<[u8]>,
}

impl CaseKey {
    /// The key of a case id.
    pub fn new(id: &str) -> CaseKey {
        let bytes = id.as_bytes();
        let n = bytes.len().min(16);
        let mut head = [0u8; 16];
        head[..n].copy_from_slice(&bytes[..n]);
        CaseKey { head: u128::from_be_bytes(head), tail: bytes[n..].into() }
    }

    /// The case id.
    pub fn id(&self) -> String {
        let head = self.head.to_be_bytes();
        let n = head.iter().position(|b| *b == 0).unwrap_or(16);
        let mut bytes = head[..n].to_vec();
        bytes.extend_from_slice(&self.tail);
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl Serialize for CaseKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.id())
    }
}

impl<'de> Deserialize<'de> for CaseKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<CaseKey, D::Error> {
        let id = String::deserialize(d)?;
        Ok(CaseKey::new(&id))
    }
}

#[cfg(test)]
mod tests {
    use super::CaseKey;

    #[test]
    fn case_keys_order_like_their_ids() {
        let ids = [
            "",
            "G",
            "GC0000001",
            "GC0000002",
            "GC00000010",
            "GC0000000000000001",
            "GC00000000000000010",
            "GC000000000000000a",
            "Z",
            "案件-1",
        ];
        let mut by_key: Vec<&str> = ids.to_vec();
        by_key.sort_by_key(|id| CaseKey::new(id));
        let mut by_text = ids.to_vec();
        by_text.sort();
        assert_eq!(by_key, by_text);
        for id in ids {
            assert_eq!(CaseKey::new(id).id(), id);
        }
    }
}
