//! Typed identifiers for who acts and which case, so that an actor can never
//! be passed where a case id belongs (and back), and so that the special
//! actors (the engine itself, residents) are variants rather than string
//! conventions documented in one field.
//!
//! Both types parse from and print as the strings stored in the log
//! (`resident:<id>`, `system`, a staff id; `GC0000001`), so the stored
//! format does not change.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Error;

/// Longest id accepted for a staff member, a resident or a case, in bytes.
pub const MAX_ID_LEN: usize = 64;

fn check_id(what: &str, id: &str) -> Result<(), Error> {
    if id.is_empty() || id.len() > MAX_ID_LEN || id.chars().any(char::is_control) {
        return Err(Error::InvalidInput(format!(
            "a {what} id is 1 to {MAX_ID_LEN} bytes of printable characters"
        )));
    }
    Ok(())
}

/// Who causes a command: a staff member of the registry, a resident, or the
/// engine itself (deadline escalations and overdue marks).
///
/// Parsed from the stored form: `system`, `resident:<id>`, or a staff id.
/// Whether a staff id exists and is active is checked when the engine
/// resolves it ([`crate::Engine::actor`]), not here.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ActorId {
    /// A staff member, by the id in the organisation file.
    Staff(String),
    /// A resident, by a pseudonymous id (never a raw phone number).
    Resident(String),
    /// The engine acting on a deadline; also the actor of automated loads.
    System,
}

impl ActorId {
    /// The stored form of the engine's own actor.
    pub const SYSTEM: &'static str = "system";
    /// The prefix of a resident's stored actor id.
    pub const RESIDENT_PREFIX: &'static str = "resident:";

    /// A staff actor; fails on an empty, overlong or non-printable id, or
    /// one that would read back as a resident or the system.
    pub fn staff(id: impl Into<String>) -> Result<ActorId, Error> {
        let id = id.into();
        check_id("staff", &id)?;
        if id == Self::SYSTEM || id.starts_with(Self::RESIDENT_PREFIX) {
            return Err(Error::InvalidInput(format!("{id:?} is not a staff id")));
        }
        Ok(ActorId::Staff(id))
    }

    /// A resident actor with a pseudonymous id.
    pub fn resident(id: impl Into<String>) -> Result<ActorId, Error> {
        let id = id.into();
        check_id("resident", &id)?;
        Ok(ActorId::Resident(id))
    }

    /// The string stored on events (`system`, `resident:<id>`, or the staff id).
    pub fn to_stored(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActorId::Staff(id) => f.write_str(id),
            ActorId::Resident(id) => write!(f, "{}{id}", Self::RESIDENT_PREFIX),
            ActorId::System => f.write_str(Self::SYSTEM),
        }
    }
}

impl FromStr for ActorId {
    type Err = Error;
    fn from_str(s: &str) -> Result<ActorId, Error> {
        if s == Self::SYSTEM {
            Ok(ActorId::System)
        } else if let Some(r) = s.strip_prefix(Self::RESIDENT_PREFIX) {
            ActorId::resident(r)
        } else {
            ActorId::staff(s)
        }
    }
}

impl TryFrom<String> for ActorId {
    type Error = Error;
    fn try_from(s: String) -> Result<ActorId, Error> {
        s.parse()
    }
}

impl From<ActorId> for String {
    fn from(a: ActorId) -> String {
        a.to_string()
    }
}

/// A case's id, as allocated by the engine (`GC` and seven or more digits)
/// or as given by a caller looking one up.
///
/// Any printable id of 1 to 64 bytes is accepted so that a lookup of an id
/// that does not exist is a "not found", not a parse error.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CaseId(String);

impl CaseId {
    /// Validates an id: 1 to 64 bytes, no control characters.
    pub fn new(id: impl Into<String>) -> Result<CaseId, Error> {
        let id = id.into();
        check_id("case", &id)?;
        Ok(CaseId(id))
    }

    /// The id the engine allocates for the `seq`th case.
    pub fn from_seq(seq: u64) -> CaseId {
        CaseId(format!("GC{seq:07}"))
    }

    /// The sequence number of an engine-allocated id (`GC0000042` → 42).
    pub fn seq(&self) -> Option<u64> {
        self.0.strip_prefix("GC")?.parse().ok()
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for CaseId {
    type Err = Error;
    fn from_str(s: &str) -> Result<CaseId, Error> {
        CaseId::new(s)
    }
}

impl TryFrom<String> for CaseId {
    type Error = Error;
    fn try_from(s: String) -> Result<CaseId, Error> {
        CaseId::new(s)
    }
}

impl From<CaseId> for String {
    fn from(c: CaseId) -> String {
        c.0
    }
}

impl AsRef<str> for CaseId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn stored_forms_round_trip() {
        for s in ["system", "resident:13800000000h", "gw-0001", "区长"] {
            assert_eq!(s.parse::<ActorId>().unwrap().to_string(), s);
        }
        assert_eq!("system".parse::<ActorId>().unwrap(), ActorId::System);
        assert!("resident:".parse::<ActorId>().is_err());
        assert!("".parse::<ActorId>().is_err());
        assert!("a\u{1b}[2J".parse::<ActorId>().is_err());
        assert!(ActorId::staff("resident:x").is_err());
        assert!(ActorId::staff("system").is_err());
        assert_eq!(CaseId::from_seq(42).as_str(), "GC0000042");
        assert_eq!(CaseId::from_seq(42).seq(), Some(42));
        assert!(CaseId::new("").is_err());
        assert!(CaseId::new("x".repeat(65)).is_err());
    }

    proptest! {
        /// Every accepted actor id prints back as the string it was parsed from.
        #[test]
        fn actor_ids_round_trip(s in "\\PC{1,20}") {
            if let Ok(a) = s.parse::<ActorId>() {
                prop_assert_eq!(a.to_string(), s.clone());
                prop_assert_eq!(a.to_string().parse::<ActorId>().unwrap(), a);
            }
        }
    }
}
