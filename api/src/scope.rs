//! Who may read what: the one rule of read scoping, a function of the
//! caller, the registry and the case or unit, so every surface (the
//! dashboard now, the rest of the API when it adopts it) applies the same.
//!
//! - **District supervisors and auditors** read everything.
//! - **Grid workers, community and street staff** read the cases and units
//!   of their unit's subtree, and the cases their unit holds or held last
//!   (an escalated case stays visible to the community it came from, and a
//!   street sees what it was handed).
//! - **Department staff** read the cases their department holds or held
//!   last, and their department's own figures.
//! - **Residents** read only the cases they submitted; no aggregate.
//!
//! Personal data of a case (the contact's name and phone, the resident's
//! real id) is narrower ([`Scope::may_read_personal`]): supervisors and
//! auditors, the resident themself, and the staff of the units that hold
//! the case now (or held it last) or of its community, who call the
//! resident back. Everyone else who may read the case sees it without
//! contact and with the resident's pseudonym ([`crate::pseudonym`]).
//! Every showing of personal data is recorded ([`crate::state::AppState::record_read`]).
//!
//! "Held" is `Case::holders`, which after a case ends keeps the units that
//! held it last; the subtree test and the holder test together are
//! [`Registry::case_concerns`], the rule every unit filter over cases uses,
//! so "the cases of unit U" means the same here as in `--unit U`.

use gridcase_engine::domain::Case;
use gridcase_engine::org::{Registry, Role};

use crate::auth::Principal;
use crate::state::AppState;
use crate::ApiError;

/// Loads case `id` for `p`: the case when `p` may read it, and the same
/// 404 as for a missing case when not (no existence oracle).
pub async fn readable_case(
    state: &AppState,
    p: &Principal,
    id: &gridcase_engine::domain::CaseId,
) -> Result<std::sync::Arc<Case>, ApiError> {
    let not_found = || ApiError::NotFound(format!("no case {id} that you may read"));
    let case = match state.engine.case(id).await {
        Ok(c) => c,
        Err(gridcase_engine::Error::NotFound(_)) => return Err(not_found()),
        Err(e) => return Err(e.into()),
    };
    if Scope::of(p).may_read(&state.engine.registry(), &case) {
        Ok(case)
    } else {
        Err(not_found())
    }
}

/// What a caller may read, resolved once per request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Everything (supervisors, auditors).
    All,
    /// The subtree of this unit and the cases it holds or held.
    Unit(String),
    /// Only the cases this actor submitted (residents).
    OwnCases(String),
    /// Nothing (a staff member bound to no unit, which the registry should not have).
    Nothing,
}

impl Scope {
    /// The scope of a caller.
    pub fn of(p: &Principal) -> Scope {
        match p.role {
            Role::DistrictSupervisor | Role::Auditor => Scope::All,
            Role::Resident => Scope::OwnCases(p.actor.clone()),
            Role::GridWorker | Role::CommunityStaff | Role::StreetStaff | Role::DepartmentStaff => {
                match &p.unit {
                    Some(u) => Scope::Unit(u.clone()),
                    None => Scope::Nothing,
                }
            }
        }
    }

    /// A short stable name of the scope, for cache keys.
    pub fn key(&self) -> String {
        match self {
            Scope::All => "all".into(),
            Scope::Unit(u) => format!("unit:{u}"),
            Scope::OwnCases(a) => format!("own:{a}"),
            Scope::Nothing => "none".into(),
        }
    }

    /// Whether aggregate figures may be shown at all (staff only).
    pub fn sees_aggregates(&self) -> bool {
        matches!(self, Scope::All | Scope::Unit(_))
    }

    /// Whether the caller may read the figures of unit `code` (a backlog
    /// row, a rates row, a holder's overdue list): its own unit and what
    /// lies below it.
    pub fn may_read_unit(&self, registry: &Registry, code: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Unit(u) => registry.is_within(code, u),
            Scope::OwnCases(_) | Scope::Nothing => false,
        }
    }

    /// Whether the caller may read a case submitted in `grid` by
    /// `submitted_by` and held (now or last) by `holders`.
    pub fn may_read_case<'a>(
        &self,
        registry: &Registry,
        grid: &str,
        holders: impl Iterator<Item = &'a str>,
        submitted_by: &str,
    ) -> bool {
        match self {
            Scope::All => true,
            Scope::Unit(u) => registry.case_concerns(grid, holders, u),
            Scope::OwnCases(actor) => actor == submitted_by,
            Scope::Nothing => false,
        }
    }

    /// [`Scope::may_read_case`] for a folded case.
    pub fn may_read(&self, registry: &Registry, case: &Case) -> bool {
        self.may_read_case(
            registry,
            &case.grid,
            case.holders.iter().map(|h| h.unit.as_str()),
            &case.submitted_by,
        )
    }

    /// Whether the caller may read the personal data of a case of
    /// `community` submitted by `submitted_by` and held (now or last) by
    /// `holders`: all for supervisors and auditors, the submitter's own, and
    /// for staff only when their unit holds it or is its community (the
    /// community calls the resident back). A grid worker or a street above
    /// that merely may read the case does not see the resident's phone.
    pub fn may_read_personal<'a>(
        &self,
        community: &str,
        mut holders: impl Iterator<Item = &'a str>,
        submitted_by: &str,
    ) -> bool {
        match self {
            Scope::All => true,
            Scope::Unit(u) => u == community || holders.any(|h| h == u),
            Scope::OwnCases(actor) => actor == submitted_by,
            Scope::Nothing => false,
        }
    }

    /// [`Scope::may_read_personal`] for a folded case.
    pub fn may_read_personal_of(&self, case: &Case) -> bool {
        self.may_read_personal(
            &case.community,
            case.holders.iter().map(|h| h.unit.as_str()),
            &case.submitted_by,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridcase_engine::domain::ActorId;
    use gridcase_engine::org::OrgFile;

    const ORG: &str = include_str!("../tests/fixtures/org.toml");

    fn registry() -> Registry {
        let mut r = Registry::default();
        for e in OrgFile::parse(ORG)
            .unwrap_or_else(|e| panic!("{e}"))
            .events()
            .unwrap_or_else(|e| panic!("{e}"))
        {
            r.apply(&e);
        }
        r
    }

    fn principal(role: Role, unit: Option<&str>) -> Principal {
        Principal {
            actor: "x".into(),
            actor_id: ActorId::System,
            role,
            unit: unit.map(str::to_string),
            key_id: "k".into(),
        }
    }

    #[test]
    fn community_staff_read_their_subtree_and_what_they_held_only() {
        let r = registry();
        let s = Scope::of(&principal(Role::CommunityStaff, Some("320902001001")));
        assert!(s.may_read_unit(&r, "320902001001001"));
        assert!(s.may_read_unit(&r, "320902001001"));
        assert!(!s.may_read_unit(&r, "320902002001001"), "another community's grid");
        assert!(!s.may_read_unit(&r, "320902001"), "not the street above");
        assert!(s.may_read_case(&r, "320902001001001", std::iter::empty(), "resident:a"));
        assert!(!s.may_read_case(&r, "320902002001001", std::iter::empty(), "resident:a"));
        assert!(s.may_read_case(&r, "320902002001001", ["320902001001"].into_iter(), "resident:a"));
    }

    #[test]
    fn supervisors_read_all_residents_their_own_cases_and_no_aggregate() {
        let r = registry();
        let sup = Scope::of(&principal(Role::DistrictSupervisor, Some("320902")));
        assert!(sup.may_read_unit(&r, "320902002001001") && sup.sees_aggregates());
        let mut res = principal(Role::Resident, None);
        res.actor = "resident:a".into();
        let res = Scope::of(&res);
        assert!(!res.sees_aggregates() && !res.may_read_unit(&r, "320902001001001"));
        assert!(res.may_read_case(&r, "320902001001001", std::iter::empty(), "resident:a"));
        assert!(!res.may_read_case(&r, "320902001001001", std::iter::empty(), "resident:b"));
    }

    #[test]
    fn departments_read_what_they_hold_not_the_grids() {
        let r = registry();
        let d = Scope::of(&principal(Role::DepartmentStaff, Some("D01")));
        assert!(d.may_read_unit(&r, "D01"));
        assert!(!d.may_read_unit(&r, "320902001001001"));
        assert!(d.may_read_case(&r, "320902001001001", ["D01"].into_iter(), "resident:a"));
        assert!(!d.may_read_case(&r, "320902001001001", ["D02"].into_iter(), "resident:a"));
    }

    #[test]
    fn personal_data_is_for_holders_the_community_the_resident_and_the_district() {
        let d = Scope::of(&principal(Role::DepartmentStaff, Some("D01")));
        assert!(d.may_read_personal("320902001001", ["D01"].into_iter(), "resident:a"));
        assert!(!d.may_read_personal("320902001001", ["D02"].into_iter(), "resident:a"));
        let c = Scope::of(&principal(Role::CommunityStaff, Some("320902001001")));
        assert!(c.may_read_personal("320902001001", ["D01"].into_iter(), "resident:a"));
        let street = Scope::of(&principal(Role::StreetStaff, Some("320902001")));
        assert!(!street.may_read_personal("320902001001", ["320902001001"].into_iter(), "r"));
        let aud = Scope::of(&principal(Role::Auditor, Some("320902")));
        assert!(aud.may_read_personal("320902001001", std::iter::empty(), "resident:a"));
        let mut res = principal(Role::Resident, None);
        res.actor = "resident:a".into();
        let res = Scope::of(&res);
        assert!(res.may_read_personal("320902001001", std::iter::empty(), "resident:a"));
        assert!(!res.may_read_personal("320902001001", std::iter::empty(), "resident:b"));
    }
}
