//! The point → micro-grid index: an R-tree of boundary envelopes finds the
//! few candidates of a point, `geo`'s point-in-polygon test decides.

use std::collections::BTreeMap;

use geo::coordinate_position::CoordPos;
use geo::{BoundingRect, Coord, CoordinatePosition, MultiPolygon};
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::{RTree, AABB};

use super::{Boundary, GeoPoint, Located, Scale};
use crate::org::{Unit, UnitKind};
use crate::Error;

/// Candidates examined for the nearest micro-grid of a point outside every
/// one: the R-tree orders them by envelope distance in degrees, which is
/// close to but not exactly the order on the ground.
const NEAREST_CANDIDATES: usize = 16;

struct Entry {
    /// The micro-grid (or the grid, for a grid without micro-grids).
    code: String,
    grid: String,
    micro: bool,
    shape: MultiPolygon<f64>,
}

/// Where each micro-grid is: built from the registry's boundaries (see
/// [`Registry::locate`](crate::org::Registry::locate)).
pub struct GeoIndex {
    entries: Vec<Entry>,
    tree: RTree<GeomWithData<Rectangle<[f64; 2]>, usize>>,
    scale: Scale,
}

impl std::fmt::Debug for GeoIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GeoIndex({} boundaries)", self.entries.len())
    }
}

impl GeoIndex {
    /// The index of the placeable units' boundaries: every micro-grid's,
    /// and a grid's own only when it has no micro-grid with a boundary.
    pub fn build(
        boundaries: &BTreeMap<String, Boundary>,
        units: &BTreeMap<String, Unit>,
    ) -> GeoIndex {
        let grids_with_micro: std::collections::HashSet<&str> = boundaries
            .keys()
            .filter_map(|c| units.get(c))
            .filter(|u| u.kind == UnitKind::MicroGrid)
            .filter_map(|u| u.parent.as_deref())
            .collect();
        let mut entries = Vec::new();
        for (code, boundary) in boundaries {
            let Some(unit) = units.get(code) else { continue };
            let (grid, micro) = match unit.kind {
                UnitKind::MicroGrid => match &unit.parent {
                    Some(g) => (g.clone(), true),
                    None => continue,
                },
                UnitKind::Grid if !grids_with_micro.contains(code.as_str()) => {
                    (code.clone(), false)
                }
                _ => continue,
            };
            entries.push(Entry {
                code: code.clone(),
                grid,
                micro,
                shape: boundary.to_multipolygon(),
            });
        }
        let rects = entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| {
                let r = e.shape.bounding_rect()?;
                Some(GeomWithData::new(
                    Rectangle::from_corners([r.min().x, r.min().y], [r.max().x, r.max().y]),
                    i,
                ))
            })
            .collect();
        let tree = RTree::bulk_load(rects);
        let mid_lat = match tree.root().envelope() {
            e if tree.size() > 0 => (e.lower()[1] + e.upper()[1]) / 2e7,
            _ => 0.0,
        };
        GeoIndex { entries, tree, scale: Scale::at(mid_lat) }
    }

    /// How many boundaries the index holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there is no boundary to place a point in.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The micro-grid a point lies in. A point inside one polygon gets it;
    /// a point on a border shared by several (or inside overlapping ones)
    /// gets the lowest code among them, so the owner never depends on the
    /// order boundaries were loaded in. Outside every boundary: a user
    /// error naming the nearest micro-grid, its grid and the distance.
    pub fn locate(
        &self,
        point: GeoPoint,
        names: &BTreeMap<String, Unit>,
    ) -> Result<Located<'_>, Error> {
        if self.entries.is_empty() {
            return Err(Error::InvalidInput(format!(
                "point {point} cannot be placed: the organisation has no micro-grid boundaries; give a grid code or an address"
            )));
        }
        let c = Coord { x: f64::from(point.lon_e7()), y: f64::from(point.lat_e7()) };
        let mut inside: Option<&Entry> = None;
        let mut border: Option<&Entry> = None;
        for cand in self.tree.locate_all_at_point(&[c.x, c.y]) {
            let e = &self.entries[cand.data];
            let slot = match e.shape.coordinate_position(&c) {
                CoordPos::Inside => &mut inside,
                CoordPos::OnBoundary => &mut border,
                CoordPos::Outside => continue,
            };
            if slot.is_none_or(|s| e.code < s.code) {
                *slot = Some(e);
            }
        }
        if let Some(e) = inside.or(border) {
            return Ok(Located { micro_grid: e.micro.then_some(e.code.as_str()), grid: &e.grid });
        }
        let nearest = self
            .tree
            .nearest_neighbor_iter(&[c.x, c.y])
            .take(NEAREST_CANDIDATES)
            .map(|cand| {
                let e = &self.entries[cand.data];
                (self.scale.distance_to_rings(c, &e.shape), e)
            })
            .min_by(|(da, a), (db, b)| da.total_cmp(db).then_with(|| a.code.cmp(&b.code)));
        let Some((metres, e)) = nearest else {
            return Err(Error::InvalidInput(format!(
                "point {point} lies outside every micro-grid"
            )));
        };
        let name = |code: &str| names.get(code).map(|u| u.name.clone()).unwrap_or_default();
        let what = if e.micro {
            format!("micro-grid {} {} of grid {} {}", e.code, name(&e.code), e.grid, name(&e.grid))
        } else {
            format!("grid {} {}", e.grid, name(&e.grid))
        };
        Err(Error::InvalidInput(format!(
            "point {point} lies outside every micro-grid of the district; the nearest is {what}, {} m away",
            metres.round()
        )))
    }

    /// The envelope of every boundary in degrees `[west, south, east, north]`.
    pub fn extent(&self) -> Option<[f64; 4]> {
        (self.tree.size() > 0).then(|| {
            let e: AABB<[f64; 2]> = self.tree.root().envelope();
            [e.lower()[0] / 1e7, e.lower()[1] / 1e7, e.upper()[0] / 1e7, e.upper()[1] / 1e7]
        })
    }
}
