//! The organisation registry: district, streets, communities, grids,
//! micro-grids, departments, staff, categories and the deadline policy.
//!
//! The registry is event-sourced like cases are (stream `org`): it is loaded
//! from a TOML file on `init` as a batch of `UnitAdded`, `StaffAdded`, ...
//! events, and later changes (renames, retirements) are further events, so an
//! audit can rebuild the registry as it stood at any past position.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::domain::event::Event;
use crate::domain::policy::{DeadlineClass, DeadlinePolicy};
use aho_corasick::AhoCorasick;

use crate::geo::{Boundary, BoundingBox, GeoIndex, GeoPoint, Geography, Located};
use crate::time::Zone;
use crate::Error;

/// The stream that holds the registry's events.
pub const ORG_STREAM: &str = "org";

pub use crate::hierarchy::{Role, UnitKind};

/// One unit of the registry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unit {
    /// Stable code (national grid-code style: admin + street + community + grid digits).
    pub code: String,
    /// Display name (Chinese names round-trip).
    pub name: String,
    /// Level.
    pub kind: UnitKind,
    /// Parent unit code (none for the district).
    pub parent: Option<String>,
    /// An address that resolves to this unit (micro-grids and grids).
    pub address: Option<String>,
    /// Retired units take no new cases.
    pub retired: bool,
}

/// A staff member or registered actor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Staff {
    /// Stable id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Unit the role is bound to.
    pub unit: String,
    /// Retired staff cannot act.
    pub retired: bool,
}

/// A category of request and the department responsible by default.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Category {
    /// Stable code, also the Open311 service code.
    pub code: String,
    /// Display name.
    pub name: String,
    /// Default responsible department.
    pub department: String,
    /// Which deadline class applies.
    pub class: DeadlineClass,
}

/// The registry as folded from the `org` stream.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Registry {
    /// Units by code.
    pub units: BTreeMap<String, Unit>,
    /// Staff by id.
    pub staff: BTreeMap<String, Staff>,
    /// Categories by code.
    pub categories: BTreeMap<String, Category>,
    /// The deadline policy.
    pub policy: DeadlinePolicy,
    /// The district's time zone, in which every time is shown and typed
    /// (the default, `Asia/Shanghai`, until a `ZoneSet` event says otherwise).
    pub zone: Zone,
    /// Address → unit code, for resolving a submitted address to a grid.
    #[serde(skip)]
    addresses: HashMap<String, String>,
    /// An automaton over the keys of `addresses` that finds every
    /// registered address inside a text in one pass; built on first use,
    /// dropped when an address is added.
    #[serde(skip)]
    address_index: AddressCell,
    /// Version of the `org` stream folded in.
    pub version: u64,
    /// Boundaries by unit code: every micro-grid's, and those of grids
    /// without micro-grids (see [`crate::geo::placeable_units`]).
    pub boundaries: BTreeMap<String, Boundary>,
    /// The district's bounding box, when it has boundaries.
    pub bounds: Option<BoundingBox>,
    /// The point index over `boundaries`, built on first use (or by
    /// [`Registry::reindex`]) and dropped whenever a boundary or a unit's
    /// place in the hierarchy changes.
    #[serde(skip)]
    geo_index: IndexCell,
}

/// The lazily built address automaton and, for each of its patterns, the
/// address and the unit it names.
#[derive(Clone, Default)]
struct AddressCell(std::sync::OnceLock<Option<std::sync::Arc<AddressIndex>>>);

struct AddressIndex {
    automaton: AhoCorasick,
    /// (normalised address, unit code), in the automaton's pattern order.
    entries: Vec<(String, String)>,
}

impl std::fmt::Debug for AddressCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.get() {
            Some(Some(i)) => write!(f, "AddressIndex({} addresses)", i.entries.len()),
            _ => f.write_str("AddressIndex(not built)"),
        }
    }
}

/// Derived from `addresses`.
impl PartialEq for AddressCell {
    fn eq(&self, _: &AddressCell) -> bool {
        true
    }
}

/// The lazily built [`GeoIndex`]: derived from the registry's fields, so it
/// takes no part in equality and a clone shares the built index.
#[derive(Clone, Default)]
struct IndexCell(std::sync::OnceLock<std::sync::Arc<GeoIndex>>);

impl std::fmt::Debug for IndexCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.get() {
            Some(i) => i.fmt(f),
            None => f.write_str("GeoIndex(not built)"),
        }
    }
}

impl PartialEq for IndexCell {
    fn eq(&self, _: &IndexCell) -> bool {
        true
    }
}

impl Registry {
    /// Folds one registry event in. Events of other kinds are ignored.
    pub fn apply(&mut self, event: &Event) {
        if !self.boundaries.is_empty()
            && matches!(
                event,
                Event::UnitAdded { .. } | Event::UnitMoved { .. } | Event::UnitRetired { .. }
            )
        {
            self.geo_index = IndexCell::default();
        }
        match event {
            Event::BoundarySet { code, boundary } => {
                self.boundaries.insert(code.clone(), boundary.clone());
                self.geo_index = IndexCell::default();
            }
            Event::BoundsSet { bounds } => self.bounds = Some(*bounds),
            Event::UnitAdded { code, name, kind, parent, address } => {
                if let Some(a) = address {
                    self.addresses.insert(normalise(a), code.clone());
                    self.address_index = AddressCell::default();
                }
                self.units.insert(
                    code.clone(),
                    Unit {
                        code: code.clone(),
                        name: name.clone(),
                        kind: *kind,
                        parent: parent.clone(),
                        address: address.clone(),
                        retired: false,
                    },
                );
            }
            Event::UnitRenamed { code, name } => {
                if let Some(u) = self.units.get_mut(code) {
                    u.name = name.clone();
                }
            }
            Event::UnitMoved { code, parent } => {
                if let Some(u) = self.units.get_mut(code) {
                    u.parent = Some(parent.clone());
                }
            }
            Event::UnitRetired { code } => {
                if let Some(u) = self.units.get_mut(code) {
                    u.retired = true;
                }
            }
            Event::StaffAdded { id, name, role, unit } => {
                self.staff.insert(
                    id.clone(),
                    Staff {
                        id: id.clone(),
                        name: name.clone(),
                        role: *role,
                        unit: unit.clone(),
                        retired: false,
                    },
                );
            }
            Event::StaffRetired { id } => {
                if let Some(s) = self.staff.get_mut(id) {
                    s.retired = true;
                }
            }
            Event::CategoryDefined { code, name, department, class } => {
                self.categories.insert(
                    code.clone(),
                    Category {
                        code: code.clone(),
                        name: name.clone(),
                        department: department.clone(),
                        class: *class,
                    },
                );
            }
            Event::PolicySet { policy } => self.policy = policy.clone(),
            Event::ZoneSet { time_zone } => {
                // The name was checked when the event was written; a name
                // this build's database no longer knows keeps the offset
                // folded so far rather than failing the whole registry.
                if let Ok(zone) = Zone::named(time_zone) {
                    self.zone = zone;
                }
            }
            _ => {}
        }
    }

    /// A unit by code.
    pub fn unit(&self, code: &str) -> Result<&Unit, Error> {
        self.units
            .get(code)
            .ok_or_else(|| Error::NotFound(format!("unit {code:?} is not in the registry")))
    }

    /// The name of a unit, or its code when unknown.
    pub fn name_of<'a>(&'a self, code: &'a str) -> &'a str {
        self.units.get(code).map(|u| u.name.as_str()).unwrap_or(code)
    }

    /// The nearest ancestor (or the unit itself) of the given kind.
    pub fn ancestor(&self, code: &str, kind: UnitKind) -> Option<&Unit> {
        let mut cur = self.units.get(code)?;
        for _ in 0..8 {
            if cur.kind == kind {
                return Some(cur);
            }
            cur = self.units.get(cur.parent.as_deref()?)?;
        }
        None
    }

    /// Whether a case submitted in `grid` and held by `holders` is
    /// `unit`'s: the grid is `unit` or lies below it, or `unit` is one of
    /// the holders (a department sees the cases dispatched to it). The one
    /// rule behind every unit filter over cases: `case list --unit`, the
    /// API's case listing and the overdue report of one unit.
    pub fn case_concerns<'a>(
        &self,
        grid: &str,
        mut holders: impl Iterator<Item = &'a str>,
        unit: &str,
    ) -> bool {
        self.is_within(grid, unit) || holders.any(|h| h == unit)
    }

    /// Whether `inner` is `outer` or lies below it.
    pub fn is_within(&self, inner: &str, outer: &str) -> bool {
        let mut cur = Some(inner);
        for _ in 0..8 {
            match cur {
                Some(c) if c == outer => return true,
                Some(c) => cur = self.units.get(c).and_then(|u| u.parent.as_deref()),
                None => return false,
            }
        }
        false
    }

    /// Resolves a location to (grid, micro-grid): a grid or micro-grid code,
    /// or a registered address (exact, or the longest registered address the
    /// text contains).
    pub fn resolve_location(&self, location: &str) -> Result<(String, Option<String>), Error> {
        let found = if self.units.contains_key(location) {
            Some(location.to_string())
        } else {
            let key = normalise(location);
            self.addresses.get(&key).cloned().or_else(|| self.address_in(&key))
        };
        let code = found.ok_or_else(|| {
            Error::InvalidInput(format!(
                "location {location:?} is neither a grid code nor a registered address"
            ))
        })?;
        let unit = self.unit(&code)?;
        match unit.kind {
            UnitKind::Grid => Ok((code, None)),
            UnitKind::MicroGrid => {
                let grid = unit
                    .parent
                    .clone()
                    .ok_or_else(|| Error::Internal(format!("micro-grid {code} has no grid")))?;
                Ok((grid, Some(code)))
            }
            other => Err(Error::InvalidInput(format!(
                "location {location:?} names a {}, not a grid or micro-grid",
                other.as_str()
            ))),
        }
    }

    /// The micro-grid (and grid) a point lies in; on a border shared by
    /// several, the lowest code; outside every one, a user error naming the
    /// nearest and its distance in metres (see [`GeoIndex::locate`]).
    pub fn locate(&self, point: GeoPoint) -> Result<Located<'_>, Error> {
        self.geo_index().locate(point, &self.units)
    }

    /// The point index, built now if it is not yet.
    pub fn geo_index(&self) -> &GeoIndex {
        self.geo_index
            .0
            .get_or_init(|| std::sync::Arc::new(GeoIndex::build(&self.boundaries, &self.units)))
    }

    /// The unit of the longest registered address inside `text` (already
    /// normalised); among equally long ones, the lowest code. One pass of
    /// an Aho-Corasick automaton over all addresses, instead of a scan of
    /// every address.
    fn address_in(&self, text: &str) -> Option<String> {
        let index = self
            .address_index
            .0
            .get_or_init(|| {
                let mut entries: Vec<(String, String)> =
                    self.addresses.iter().map(|(a, c)| (a.clone(), c.clone())).collect();
                entries.sort();
                // Building fails only past the automaton's size limits
                // (far beyond any district's addresses); then no address
                // is found in free text, and exact addresses still work.
                AhoCorasick::new(entries.iter().map(|(a, _)| a.as_str()))
                    .ok()
                    .map(|automaton| std::sync::Arc::new(AddressIndex { automaton, entries }))
            })
            .as_deref()?;
        index
            .automaton
            .find_overlapping_iter(text)
            .filter_map(|m| index.entries.get(m.pattern().as_usize()))
            .max_by_key(|(a, code)| (a.len(), std::cmp::Reverse(code.as_str())))
            .map(|(_, c)| c.clone())
    }

    /// A point that represents a unit on the map: for a micro-grid (or a
    /// grid without micro-grids) a point inside its boundary; for a grid,
    /// community or street, that of its first micro-grid. This is where a
    /// registered address is.
    pub fn point_of(&self, code: &str) -> Option<GeoPoint> {
        use geo::InteriorPoint;
        let boundary = self.boundaries.get(code).or_else(|| {
            self.boundaries.iter().find(|(c, _)| self.is_within(c, code)).map(|(_, b)| b)
        })?;
        let p = boundary.to_multipolygon().interior_point()?;
        GeoPoint::from_e7(p.y().round() as i32, p.x().round() as i32).ok()
    }

    /// Units of one kind, in code order.
    pub fn units_of(&self, kind: UnitKind) -> impl Iterator<Item = &Unit> {
        self.units.values().filter(move |u| u.kind == kind)
    }

    /// The district's code.
    pub fn district(&self) -> Option<&Unit> {
        self.units_of(UnitKind::District).next()
    }

    /// Rebuilds address lookups after deserialising a registry, and the
    /// point index when there are boundaries (so the first point lookup
    /// does not pay for it).
    pub fn reindex(&mut self) {
        self.addresses = self
            .units
            .values()
            .filter_map(|u| u.address.as_ref().map(|a| (normalise(a), u.code.clone())))
            .collect();
        self.address_index = AddressCell::default();
        self.geo_index = IndexCell::default();
        if !self.boundaries.is_empty() {
            self.geo_index();
        }
    }
}

fn normalise(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_lowercase()
}

/// The TOML organisation file, as users write it.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OrgFile {
    /// The district.
    pub district: DistrictSpec,
    /// Where the boundaries are, and the district's bounding box.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geography: Option<GeographySpec>,
    /// Its streets, each with communities, grids and micro-grids.
    #[serde(default)]
    pub streets: Vec<StreetSpec>,
    /// District departments.
    #[serde(default)]
    pub departments: Vec<UnitSpec>,
    /// Request categories.
    #[serde(default)]
    pub categories: Vec<CategorySpec>,
    /// Staff.
    #[serde(default)]
    pub staff: Vec<StaffSpec>,
    /// Deadline policy; defaults to Beijing 12345's limits.
    #[serde(default)]
    pub policy: DeadlinePolicy,
    /// The boundaries named by `geography`, once loaded and checked
    /// ([`OrgFile::load`], [`OrgFile::attach_geojson`]); not part of the TOML.
    #[serde(skip)]
    pub boundaries: Option<Geography>,
}

/// The `[geography]` table: the boundaries file and the bounding box.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GeographySpec {
    /// A GeoJSON FeatureCollection of the micro-grids' boundaries, relative
    /// to the organisation file (see [`crate::geo::import()`]).
    pub boundaries: String,
    /// The district's bounding box, `[west, south, east, north]` in degrees.
    pub bbox: [f64; 4],
}

/// The district: its code, its name, and the time zone its people live in.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DistrictSpec {
    /// Code (the Open311 jurisdiction id).
    pub code: String,
    /// Name.
    pub name: String,
    /// The time zone every time is shown and typed in: an IANA name
    /// (`Asia/Shanghai`) or a fixed offset (`+08:00`). Absent means
    /// `Asia/Shanghai`, the zone every earlier file assumed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

/// A unit with a code and a name.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UnitSpec {
    /// Code.
    pub code: String,
    /// Name.
    pub name: String,
}

/// A street and its communities.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StreetSpec {
    /// Code.
    pub code: String,
    /// Name.
    pub name: String,
    /// Communities.
    #[serde(default)]
    pub communities: Vec<CommunitySpec>,
}

/// A community and its grids.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CommunitySpec {
    /// Code.
    pub code: String,
    /// Name.
    pub name: String,
    /// Grids.
    #[serde(default)]
    pub grids: Vec<GridSpec>,
}

/// A grid; its micro-grids get codes `grid code + two digits`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GridSpec {
    /// Code.
    pub code: String,
    /// Name.
    pub name: String,
    /// Addresses that resolve to the grid itself.
    #[serde(default)]
    pub address: Option<String>,
    /// Micro-grid (building) names; each is also a resolvable address
    /// (prefixed by the community name).
    #[serde(default)]
    pub micro_grids: Vec<String>,
}

/// A category.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CategorySpec {
    /// Code (the Open311 service code).
    pub code: String,
    /// Name.
    pub name: String,
    /// Default department code.
    pub department: String,
    /// Deadline class.
    pub class: DeadlineClass,
}

/// A staff member.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StaffSpec {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Unit code.
    pub unit: String,
}

impl OrgFile {
    /// The district's time zone as the file names it (`Asia/Shanghai` when
    /// the file names none).
    pub fn zone(&self) -> Result<Zone, Error> {
        match &self.district.time_zone {
            Some(tz) => Zone::named(tz),
            None => Ok(Zone::default()),
        }
    }

    /// Parses and checks an organisation file, without its boundaries
    /// (see [`OrgFile::load`] and [`OrgFile::attach_geojson`]).
    pub fn parse(text: &str) -> Result<OrgFile, Error> {
        let file: OrgFile = toml::from_str(text)
            .map_err(|e| Error::InvalidInput(format!("organisation file: {e}")))?;
        file.hierarchy_events()?;
        if let Some(g) = &file.geography {
            BoundingBox::from_wsen(g.bbox)
                .map_err(|e| Error::InvalidInput(format!("organisation file: [geography]: {e}")))?;
        }
        Ok(file)
    }

    /// Reads an organisation file and, when it has a `[geography]` table,
    /// the boundaries file it names (relative to the organisation file).
    pub fn load(path: &std::path::Path) -> Result<OrgFile, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::InvalidInput(format!("cannot read organisation file {}: {e}", path.display()))
        })?;
        let mut file = OrgFile::parse(&text)?;
        if let Some(g) = &file.geography {
            let geo_path = path.parent().unwrap_or(std::path::Path::new(".")).join(&g.boundaries);
            let text = std::fs::read_to_string(&geo_path).map_err(|e| {
                Error::InvalidInput(format!(
                    "cannot read the boundaries file {} named in {}: {e}",
                    geo_path.display(),
                    path.display()
                ))
            })?;
            file.attach_geojson(&text)?;
        }
        Ok(file)
    }

    /// Checks a GeoJSON FeatureCollection against this file's units (see
    /// [`crate::geo::import()`]) and keeps it as the file's boundaries.
    pub fn attach_geojson(&mut self, text: &str) -> Result<(), Error> {
        let mut reg = Registry::default();
        for e in self.hierarchy_events()? {
            reg.apply(&e);
        }
        let bounds = match &self.geography {
            Some(g) => Some(BoundingBox::from_wsen(g.bbox)?),
            None => None,
        };
        self.boundaries = Some(crate::geo::import(text, &reg.units, bounds)?);
        Ok(())
    }

    /// The registry events that describe this file: its hierarchy, staff,
    /// categories and policy ([`OrgFile::hierarchy_events`]), then its
    /// bounding box and one `BoundarySet` per micro-grid. A file whose
    /// `[geography]` names boundaries that were not loaded is refused, so
    /// a store never starts without the geography its file promised.
    pub fn events(&self) -> Result<Vec<Event>, Error> {
        let mut out = self.hierarchy_events()?;
        match (&self.geography, &self.boundaries) {
            (Some(g), None) => {
                return Err(Error::InvalidInput(format!(
                    "the organisation file names boundaries {:?} that were not loaded; load the file by path",
                    g.boundaries
                )))
            }
            (_, Some(geo)) => {
                if let Some(bounds) = geo.bounds {
                    out.push(Event::BoundsSet { bounds });
                }
                for (code, boundary) in &geo.boundaries {
                    out.push(Event::BoundarySet { code: code.clone(), boundary: boundary.clone() });
                }
            }
            (None, None) => {}
        }
        Ok(out)
    }

    /// The events of the file without its geography, checked for duplicate
    /// codes, dangling references and roles bound to the wrong kind of unit.
    pub fn hierarchy_events(&self) -> Result<Vec<Event>, Error> {
        let mut out = Vec::new();
        let mut kinds: HashMap<String, UnitKind> = HashMap::new();
        let mut add = |out: &mut Vec<Event>,
                       code: &str,
                       name: &str,
                       kind,
                       parent: Option<&str>,
                       address: Option<String>| {
            if code.trim().is_empty() || name.trim().is_empty() {
                return Err(Error::InvalidInput(format!(
                    "a {} has an empty code or name",
                    UnitKind::as_str(kind)
                )));
            }
            if kinds.insert(code.to_string(), kind).is_some() {
                return Err(Error::InvalidInput(format!(
                    "unit code {code:?} appears twice in the organisation file"
                )));
            }
            out.push(Event::UnitAdded {
                code: code.to_string(),
                name: name.to_string(),
                kind,
                parent: parent.map(str::to_string),
                address,
            });
            Ok(())
        };
        let d = &self.district;
        add(&mut out, &d.code, &d.name, UnitKind::District, None, None)?;
        for s in &self.streets {
            add(&mut out, &s.code, &s.name, UnitKind::Street, Some(&d.code), None)?;
            for c in &s.communities {
                add(&mut out, &c.code, &c.name, UnitKind::Community, Some(&s.code), None)?;
                for g in &c.grids {
                    add(
                        &mut out,
                        &g.code,
                        &g.name,
                        UnitKind::Grid,
                        Some(&c.code),
                        g.address.clone(),
                    )?;
                    for (i, m) in g.micro_grids.iter().enumerate() {
                        let code = format!("{}{:02}", g.code, i + 1);
                        let address = format!("{}{}{}", c.name, g.name, m);
                        add(&mut out, &code, m, UnitKind::MicroGrid, Some(&g.code), Some(address))?;
                    }
                }
            }
        }
        for dep in &self.departments {
            add(&mut out, &dep.code, &dep.name, UnitKind::Department, Some(&d.code), None)?;
        }
        for c in &self.categories {
            if kinds.get(&c.department) != Some(&UnitKind::Department) {
                return Err(Error::InvalidInput(format!(
                    "category {:?} names department {:?}, which is not a department in the file",
                    c.code, c.department
                )));
            }
            out.push(Event::CategoryDefined {
                code: c.code.clone(),
                name: c.name.clone(),
                department: c.department.clone(),
                class: c.class,
            });
        }
        let mut ids = std::collections::HashSet::new();
        for s in &self.staff {
            if !ids.insert(s.id.clone()) {
                return Err(Error::InvalidInput(format!("staff id {:?} appears twice", s.id)));
            }
            if s.id.starts_with("resident:") || s.id == "system" {
                return Err(Error::InvalidInput(format!("staff id {:?} is reserved", s.id)));
            }
            let kind = kinds.get(&s.unit).copied();
            if kind.is_none() || kind != s.role.unit_kind() {
                return Err(Error::InvalidInput(format!(
                    "staff {:?} has role {} but unit {:?} is {}",
                    s.id,
                    s.role.as_str(),
                    s.unit,
                    kind.map(UnitKind::as_str).unwrap_or("not in the file")
                )));
            }
            out.push(Event::StaffAdded {
                id: s.id.clone(),
                name: s.name.clone(),
                role: s.role,
                unit: s.unit.clone(),
            });
        }
        self.policy.validate()?;
        out.push(Event::PolicySet { policy: self.policy.clone() });
        if let Some(tz) = &self.district.time_zone {
            Zone::named(tz).map_err(|e| match e {
                Error::InvalidInput(m) => Error::InvalidInput(format!("[district] time_zone: {m}")),
                other => other,
            })?;
            out.push(Event::ZoneSet { time_zone: tz.trim().to_string() });
        }
        Ok(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SMALL: &str = r#"
[district]
code = "320902"
name = "亭湖区"

[[streets]]
code = "320902001"
name = "文峰街道"

[[streets.communities]]
code = "320902001001"
name = "新村社区"

[[streets.communities.grids]]
code = "320902001001001"
name = "第一网格"
micro_grids = ["1号楼", "2号楼"]

[[departments]]
code = "D01"
name = "城管局"

[[categories]]
code = "lighting"
name = "路灯照明"
department = "D01"
class = "utilities"

[[staff]]
id = "gw1"
name = "张三"
role = "grid_worker"
unit = "320902001001001"
"#;

    #[test]
    fn loads_and_resolves_addresses_with_chinese_names() {
        let f = OrgFile::parse(SMALL).unwrap();
        let mut r = Registry::default();
        for e in f.events().unwrap() {
            r.apply(&e);
        }
        assert_eq!(r.unit("320902001001").unwrap().name, "新村社区");
        let (g, m) = r.resolve_location("盐城市 新村社区第一网格2号楼 东门").unwrap();
        assert_eq!(g, "320902001001001");
        assert_eq!(m.as_deref(), Some("32090200100100102"));
        assert!(r.is_within("32090200100100102", "320902001"));
        assert_eq!(r.ancestor("320902001001001", UnitKind::Street).unwrap().code, "320902001");
        assert!(r.resolve_location("nowhere").is_err());
    }

    #[test]
    fn the_address_index_finds_the_longest_address_in_free_text() {
        let f = OrgFile::parse(&SMALL.replace(
            "name = \"第一网格\"\n",
            "name = \"第一网格\"\naddress = \"新村社区第一网格\"\n",
        ))
        .unwrap();
        let mut r = Registry::default();
        for e in f.events().unwrap() {
            r.apply(&e);
        }
        // The grid's own address is inside the building's: the longer wins.
        let (g, m) = r.resolve_location("请到新村社区第一网格2号楼看看").unwrap();
        assert_eq!((g.as_str(), m.as_deref()), ("320902001001001", Some("32090200100100102")));
        let (g, m) = r.resolve_location("新村社区第一网格门口").unwrap();
        assert_eq!((g.as_str(), m), ("320902001001001", None));
        // A unit added later is found: the index is rebuilt.
        r.apply(&Event::UnitAdded {
            code: "32090200100100103".into(),
            name: "3号楼".into(),
            kind: UnitKind::MicroGrid,
            parent: Some("320902001001001".into()),
            address: Some("新村社区第一网格3号楼".into()),
        });
        let (_, m) = r.resolve_location("新村社区 第一网格 3号楼 楼下").unwrap();
        assert_eq!(m.as_deref(), Some("32090200100100103"));
        assert!(r.resolve_location("某某小区").is_err());
    }

    #[test]
    fn rejects_bad_files() {
        let dup = SMALL.replace("code = \"D01\"", "code = \"320902001\"");
        assert!(OrgFile::parse(&dup).is_err());
        let wrong_role = SMALL.replace("role = \"grid_worker\"", "role = \"street_staff\"");
        assert!(OrgFile::parse(&wrong_role).is_err());
        assert!(OrgFile::parse("district = 3").is_err());
    }
}
