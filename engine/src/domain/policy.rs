//! Deadline policy: how long each kind of request may take, and how long
//! each level may hold a case before it goes up.
//!
//! Defaults follow Beijing's 12345 hotline standard: emergencies in 2 hours,
//! water/power/gas/heating in 24 hours, ordinary requests in 7 days, complex
//! ones in 15 days.

use serde::{Deserialize, Serialize};

use super::{Priority, RequestKind};
use crate::Error;

/// Which time limits apply to a category.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadlineClass {
    /// Danger to life or property.
    Emergency,
    /// Water, power, gas, heating.
    Utilities,
    /// Everything else.
    Ordinary,
    /// Needs several departments or works.
    Complex,
}

/// Limits of one class, in minutes from submission (resolution, response)
/// or from arrival at the level (community, street, claim).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Submission to resolution.
    pub resolution_minutes: u32,
    /// Submission to first response (assigned, escalated, claimed or resolved).
    pub response_minutes: u32,
    /// How long the community may hold it before it is escalated to the street.
    pub community_minutes: u32,
    /// How long the street may hold it before it is dispatched to the category's department.
    pub street_minutes: u32,
    /// How long a department may leave a dispatch unclaimed before it is marked overdue.
    pub claim_minutes: u32,
}

impl Limits {
    const fn new(
        resolution_h: u32,
        response_h: u32,
        community_h: u32,
        street_h: u32,
        claim_h: u32,
    ) -> Limits {
        Limits {
            resolution_minutes: resolution_h * 60,
            response_minutes: response_h * 60,
            community_minutes: community_h * 60,
            street_minutes: street_h * 60,
            claim_minutes: claim_h * 60,
        }
    }
}

/// The deadline policy of a district.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeadlinePolicy {
    /// Emergency limits (also used for priority `emergency`).
    pub emergency: Limits,
    /// Water, power, gas, heating.
    pub utilities: Limits,
    /// Ordinary requests.
    pub ordinary: Limits,
    /// Complex requests.
    pub complex: Limits,
    /// Consultations are answered, not fixed: their resolution limit is capped at this many minutes.
    pub consultation_cap_minutes: u32,
    /// A case counts as "near its limit" once this share (percent) of its time has passed.
    pub near_due_percent: u8,
    /// A closed case may be reopened by a district supervisor for this many days.
    pub reopen_window_days: u32,
}

impl Default for DeadlinePolicy {
    fn default() -> Self {
        DeadlinePolicy {
            emergency: Limits {
                response_minutes: 30,
                community_minutes: 30,
                street_minutes: 30,
                claim_minutes: 30,
                resolution_minutes: 120,
            },
            utilities: Limits::new(24, 2, 6, 4, 4),
            ordinary: Limits::new(7 * 24, 24, 48, 24, 24),
            complex: Limits::new(15 * 24, 24, 96, 48, 48),
            consultation_cap_minutes: 3 * 24 * 60,
            near_due_percent: 80,
            reopen_window_days: 30,
        }
    }
}

impl DeadlinePolicy {
    /// The limits for a request of this kind, class and priority.
    pub fn limits(&self, kind: RequestKind, class: DeadlineClass, priority: Priority) -> Limits {
        let class = match priority {
            Priority::Emergency => DeadlineClass::Emergency,
            Priority::Urgent
                if matches!(class, DeadlineClass::Ordinary | DeadlineClass::Complex) =>
            {
                DeadlineClass::Utilities
            }
            _ => class,
        };
        let mut l = match class {
            DeadlineClass::Emergency => self.emergency,
            DeadlineClass::Utilities => self.utilities,
            DeadlineClass::Ordinary => self.ordinary,
            DeadlineClass::Complex => self.complex,
        };
        if kind == RequestKind::Consultation {
            l.resolution_minutes = l.resolution_minutes.min(self.consultation_cap_minutes);
        }
        l
    }

    /// Checks that every limit is positive and the levels fit inside the resolution limit.
    pub fn validate(&self) -> Result<(), Error> {
        for (name, l) in [
            ("emergency", self.emergency),
            ("utilities", self.utilities),
            ("ordinary", self.ordinary),
            ("complex", self.complex),
        ] {
            if l.resolution_minutes == 0
                || l.response_minutes == 0
                || l.community_minutes == 0
                || l.street_minutes == 0
                || l.claim_minutes == 0
            {
                return Err(Error::InvalidInput(format!(
                    "policy.{name}: every limit must be at least one minute"
                )));
            }
        }
        if self.near_due_percent == 0 || self.near_due_percent > 100 {
            return Err(Error::InvalidInput("policy.near_due_percent must be 1 to 100".into()));
        }
        Ok(())
    }
}
