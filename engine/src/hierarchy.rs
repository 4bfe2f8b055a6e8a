//! The kinds of unit in the administrative hierarchy and the roles bound to
//! them: the vocabulary both the registry ([`crate::org`]) and the stored
//! events ([`crate::domain::event`]) speak, kept below both so that neither
//! imports the other for it.

use serde::{Deserialize, Serialize};

/// The levels of the administrative hierarchy, plus district departments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitKind {
    /// 区: top of the chain; owns the departments.
    District,
    /// 街道: the hub between district and communities.
    Street,
    /// 社区: first level that owns cases.
    Community,
    /// 网格: a patch of a community with its grid worker.
    Grid,
    /// 微网格: a building cluster inside a grid.
    MicroGrid,
    /// 部门: a functional department at district level.
    Department,
}

impl UnitKind {
    /// Lower-case name used in files and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            UnitKind::District => "district",
            UnitKind::Street => "street",
            UnitKind::Community => "community",
            UnitKind::Grid => "grid",
            UnitKind::MicroGrid => "micro_grid",
            UnitKind::Department => "department",
        }
    }
}

/// The roles an actor can hold, each bound to one unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A resident (registered or identified by contact).
    Resident,
    /// 网格员, bound to a grid.
    GridWorker,
    /// Community staff, bound to a community.
    CommunityStaff,
    /// Street staff, bound to a street.
    StreetStaff,
    /// Department staff, bound to a department.
    DepartmentStaff,
    /// District supervisor (also runs the hotline), bound to the district.
    DistrictSupervisor,
    /// Auditor: reads everything, changes nothing.
    Auditor,
}

impl Role {
    /// Snake-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Resident => "resident",
            Role::GridWorker => "grid_worker",
            Role::CommunityStaff => "community_staff",
            Role::StreetStaff => "street_staff",
            Role::DepartmentStaff => "department_staff",
            Role::DistrictSupervisor => "district_supervisor",
            Role::Auditor => "auditor",
        }
    }

    /// The unit kind this role must be bound to.
    pub fn unit_kind(self) -> Option<UnitKind> {
        match self {
            Role::Resident => None,
            Role::GridWorker => Some(UnitKind::Grid),
            Role::CommunityStaff => Some(UnitKind::Community),
            Role::StreetStaff => Some(UnitKind::Street),
            Role::DepartmentStaff => Some(UnitKind::Department),
            Role::DistrictSupervisor | Role::Auditor => Some(UnitKind::District),
        }
    }
}
