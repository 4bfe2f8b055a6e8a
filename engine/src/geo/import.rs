//! Boundaries from and to GeoJSON: the FeatureCollection a district's GIS
//! exports, checked against the organisation before anything is stored.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use geo::{BooleanOps, BoundingRect, MultiPolygon, Validation};
use geojson::{Feature, GeoJson, Geometry, JsonObject, Value};
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::RTree;

use super::{Boundary, BoundingBox, GeoPoint, Scale};
use crate::org::{Unit, UnitKind};
use crate::Error;

/// Overlap between two micro-grids tolerated as digitising noise, in
/// square metres (a sliver a metre wide along a 5 m stretch of border).
pub const OVERLAP_TOLERANCE_M2: f64 = 5.0;
/// How far an explicit street, community or grid boundary's area may be
/// from the sum of its micro-grids' areas, as a fraction.
pub const UNION_TOLERANCE: f64 = 0.01;
/// Problems listed in one error before the rest are counted.
const MAX_LISTED: usize = 12;

/// Checked boundaries for an organisation: one per placeable unit (every
/// micro-grid, and each grid that has no micro-grids), plus the district's
/// bounding box.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Geography {
    /// The district's bounding box (given, or the boundaries' extent).
    pub bounds: Option<BoundingBox>,
    /// Boundaries by unit code.
    pub boundaries: BTreeMap<String, Boundary>,
}

/// The units that need a boundary of their own: micro-grids, and grids
/// with no micro-grid. Everything above is the union of these.
pub fn placeable_units(units: &BTreeMap<String, Unit>) -> Vec<&Unit> {
    let has_micro: std::collections::HashSet<&str> = units
        .values()
        .filter(|u| u.kind == UnitKind::MicroGrid && !u.retired)
        .filter_map(|u| u.parent.as_deref())
        .collect();
    units
        .values()
        .filter(|u| !u.retired)
        .filter(|u| {
            u.kind == UnitKind::MicroGrid
                || (u.kind == UnitKind::Grid && !has_micro.contains(u.code.as_str()))
        })
        .collect()
}

struct Problems(Vec<String>, usize);

impl Problems {
    fn add(&mut self, p: String) {
        if self.0.len() < MAX_LISTED {
            self.0.push(p);
        }
        self.1 += 1;
    }
    fn into_result(self, what: &str) -> Result<(), Error> {
        if self.1 == 0 {
            return Ok(());
        }
        let mut msg = format!("{what}: {} problem(s): {}", self.1, self.0.join("; "));
        if self.1 > self.0.len() {
            let _ = write!(msg, "; and {} more", self.1 - self.0.len());
        }
        Err(Error::InvalidInput(msg))
    }
}

/// Reads a GeoJSON FeatureCollection of boundaries and checks it against
/// the organisation's units: every feature names a unit by its `code`
/// property and has a valid Polygon or MultiPolygon in WGS84
/// longitude/latitude; every micro-grid (and every grid without
/// micro-grids) has exactly one; no two of those overlap by more than
/// [`OVERLAP_TOLERANCE_M2`]; features of grids, communities or streets
/// (optional: they are the unions of their micro-grids) match their
/// micro-grids' total area within [`UNION_TOLERANCE`]; everything lies in
/// the bounding box, which is the collection's `bbox` when `bounds` is not
/// given, else the boundaries' extent. Every problem found is listed in one
/// error, so a GIS export is fixed in one pass.
pub fn import(
    text: &str,
    units: &BTreeMap<String, Unit>,
    bounds: Option<BoundingBox>,
) -> Result<Geography, Error> {
    let gj: GeoJson =
        text.parse().map_err(|e| Error::InvalidInput(format!("boundaries: not GeoJSON: {e}")))?;
    let GeoJson::FeatureCollection(fc) = gj else {
        return Err(Error::InvalidInput(
            "boundaries: the file is GeoJSON but not a FeatureCollection".into(),
        ));
    };
    let mut bounds = bounds;
    if bounds.is_none() {
        if let Some(b) = &fc.bbox {
            if let [w, s, e, n] = b[..] {
                bounds = Some(BoundingBox::from_wsen([w, s, e, n])?);
            } else {
                return Err(Error::InvalidInput(
                    "boundaries: bbox must be [west, south, east, north]".into(),
                ));
            }
        }
    }
    let mut problems = Problems(Vec::new(), 0);
    let mut shapes: BTreeMap<String, (usize, Boundary, MultiPolygon<f64>)> = BTreeMap::new();
    for (i, f) in fc.features.iter().enumerate() {
        let n = i + 1;
        let Some(code) = f.property("code").and_then(|v| v.as_str()) else {
            problems.add(format!("feature {n} has no string property \"code\" naming its unit"));
            continue;
        };
        let Some(unit) = units.get(code) else {
            problems.add(format!("feature {n}: code {code:?} is not a unit of the organisation"));
            continue;
        };
        if unit.kind == UnitKind::Department {
            problems.add(format!("feature {n}: {code} is a department, which has no area"));
            continue;
        }
        let boundary = match f.geometry.as_ref().map(|g| boundary_of(&g.value)) {
            None => Err(format!("feature {n} ({code}) has no geometry")),
            Some(Err(e)) => Err(format!("feature {n} ({code}): {e}")),
            Some(Ok(b)) => Ok(b),
        };
        let boundary = match boundary {
            Ok(b) => b,
            Err(e) => {
                problems.add(e);
                continue;
            }
        };
        let shape = boundary.to_multipolygon();
        if !shape.is_valid() {
            problems.add(format!(
                "feature {n} ({code}): the polygon is not valid (self-intersecting, or a hole outside its ring)"
            ));
            continue;
        }
        if let Some(b) = bounds {
            if boundary.polygons().iter().flatten().flatten().any(|p| !b.contains(*p)) {
                problems.add(format!(
                    "feature {n} ({code}) reaches outside the district's bounding box {:?}",
                    b.to_wsen()
                ));
            }
        }
        if shapes.insert(code.to_string(), (n, boundary, shape)).is_some() {
            problems.add(format!("{code} has more than one feature"));
        }
    }
    let leaves = placeable_units(units);
    let missing: Vec<&str> =
        leaves.iter().filter(|u| !shapes.contains_key(&u.code)).map(|u| u.code.as_str()).collect();
    if !missing.is_empty() {
        let shown: Vec<&str> = missing.iter().take(5).copied().collect();
        problems.add(format!(
            "{} micro-grid(s) (or grids without micro-grids) have no boundary: {}{}",
            missing.len(),
            shown.join(", "),
            if missing.len() > shown.len() { ", ..." } else { "" }
        ));
    }
    problems.into_result("boundaries")?;
    let mut problems = Problems(Vec::new(), 0);
    let extent = extent(shapes.values().map(|(_, _, s)| s));
    let scale = Scale::at(extent.map_or(0.0, |e| (e[1] + e[3]) / 2.0));
    let leaf_codes: std::collections::HashSet<&str> =
        leaves.iter().map(|u| u.code.as_str()).collect();
    let leaf_shapes: Vec<(&str, &MultiPolygon<f64>)> = shapes
        .iter()
        .filter(|(c, _)| leaf_codes.contains(c.as_str()))
        .map(|(c, (_, _, s))| (c.as_str(), s))
        .collect();
    for (a, b, area) in overlaps(&leaf_shapes, scale) {
        problems.add(format!("{a} and {b} overlap by {} m²", area.round()));
    }
    // Explicit boundaries of larger units: their area against the sum of
    // the micro-grids below them.
    let mut leaf_area: HashMap<&str, f64> = HashMap::new();
    for (code, shape) in &leaf_shapes {
        let a = scale.area(shape);
        let mut cur = Some(*code);
        for _ in 0..8 {
            let Some(c) = cur else { break };
            *leaf_area.entry(c).or_default() += a;
            cur = units.get(c).and_then(|u| u.parent.as_deref());
        }
    }
    for (code, (n, _, shape)) in &shapes {
        if leaf_codes.contains(code.as_str()) {
            continue;
        }
        let below = leaf_area.get(code.as_str()).copied().unwrap_or(0.0);
        let own = scale.area(shape);
        if (own - below).abs() > UNION_TOLERANCE * own.max(below) {
            problems.add(format!(
                "feature {n} ({code}) covers {} m² but its micro-grids cover {} m²",
                own.round(),
                below.round()
            ));
        }
    }
    problems.into_result("boundaries")?;
    let bounds = match (bounds, extent) {
        (Some(b), _) => Some(b),
        (None, Some(e)) => Some(BoundingBox::from_wsen(e)?),
        (None, None) => None,
    };
    let boundaries = shapes
        .into_iter()
        .filter(|(c, _)| leaf_codes.contains(c.as_str()))
        .map(|(c, (_, b, _))| (c, b))
        .collect();
    Ok(Geography { bounds, boundaries })
}

fn boundary_of(value: &Value) -> Result<Boundary, String> {
    let polygons: Vec<&Vec<Vec<Vec<f64>>>> = match value {
        Value::Polygon(p) => vec![p],
        Value::MultiPolygon(ps) => ps.iter().collect(),
        other => {
            return Err(format!(
                "geometry is a {}, not a Polygon or MultiPolygon",
                other.type_name()
            ))
        }
    };
    let mut out = Vec::with_capacity(polygons.len());
    for rings in polygons {
        let mut pr = Vec::with_capacity(rings.len());
        for ring in rings {
            let mut pts = Vec::with_capacity(ring.len());
            for pos in ring {
                let [lon, lat] = pos[..] else {
                    if pos.len() == 3 {
                        // [lon, lat, altitude]: the altitude is not kept.
                        pts.push(GeoPoint::new(pos[1], pos[0]).map_err(|e| e.to_string())?);
                        continue;
                    }
                    return Err(format!("position {pos:?} is not [longitude, latitude]"));
                };
                pts.push(GeoPoint::new(lat, lon).map_err(|e| e.to_string())?);
            }
            pr.push(pts);
        }
        out.push(pr);
    }
    Boundary::new(&out).map_err(|e| e.to_string())
}

fn extent<'a>(shapes: impl Iterator<Item = &'a MultiPolygon<f64>>) -> Option<[f64; 4]> {
    let mut e: Option<[f64; 4]> = None;
    for s in shapes {
        let Some(r) = s.bounding_rect() else { continue };
        let [w, so, ea, n] = e.get_or_insert([r.min().x, r.min().y, r.max().x, r.max().y]);
        *w = w.min(r.min().x);
        *so = so.min(r.min().y);
        *ea = ea.max(r.max().x);
        *n = n.max(r.max().y);
    }
    e.map(|[w, s, ea, n]| [w / 1e7, s / 1e7, ea / 1e7, n / 1e7])
}

/// Pairs of shapes whose overlap exceeds the tolerance, with its area in
/// square metres: only pairs whose envelopes meet are intersected.
pub fn overlaps<'a>(
    shapes: &[(&'a str, &MultiPolygon<f64>)],
    scale: Scale,
) -> Vec<(&'a str, &'a str, f64)> {
    let rects: Vec<_> = shapes
        .iter()
        .enumerate()
        .filter_map(|(i, (_, s))| {
            let r = s.bounding_rect()?;
            Some(GeomWithData::new(
                Rectangle::from_corners([r.min().x, r.min().y], [r.max().x, r.max().y]),
                i,
            ))
        })
        .collect();
    let tree = RTree::bulk_load(rects.clone());
    let mut out = Vec::new();
    for r in &rects {
        let i = r.data;
        for other in tree.locate_in_envelope_intersecting(&r.envelope_of()) {
            let j = other.data;
            if j <= i {
                continue;
            }
            let area = scale.area(&shapes[i].1.intersection(shapes[j].1));
            if area > OVERLAP_TOLERANCE_M2 {
                out.push((shapes[i].0, shapes[j].0, area));
            }
        }
    }
    out
}

trait EnvelopeOf {
    fn envelope_of(&self) -> rstar::AABB<[f64; 2]>;
}

impl EnvelopeOf for GeomWithData<Rectangle<[f64; 2]>, usize> {
    fn envelope_of(&self) -> rstar::AABB<[f64; 2]> {
        use rstar::RTreeObject;
        self.envelope()
    }
}

/// The boundaries as a GeoJSON FeatureCollection, one feature per line
/// (so a change to one micro-grid is a one-line diff): each feature's
/// properties are its `code`, `name`, `kind` and parent `grid`.
pub fn to_geojson(geo: &Geography, units: &BTreeMap<String, Unit>) -> String {
    let mut out = String::from("{\"type\":\"FeatureCollection\",");
    if let Some(b) = geo.bounds {
        let _ = write!(out, "\"bbox\":{},", serde_json::Value::from(b.to_wsen().to_vec()));
    }
    out.push_str("\"features\":[\n");
    let mut first = true;
    for (code, boundary) in &geo.boundaries {
        let polygons: Vec<Vec<Vec<Vec<f64>>>> = boundary
            .polygons()
            .iter()
            .map(|rings| {
                rings
                    .iter()
                    .map(|ring| {
                        // GeoJSON rings are closed: the first vertex again at the end.
                        ring.iter().chain(ring.first()).map(|p| vec![p.lon(), p.lat()]).collect()
                    })
                    .collect()
            })
            .collect();
        let value = match <[_; 1]>::try_from(polygons) {
            Ok([one]) => Value::Polygon(one),
            Err(many) => Value::MultiPolygon(many),
        };
        let mut props = JsonObject::new();
        props.insert("code".into(), code.clone().into());
        if let Some(u) = units.get(code) {
            props.insert("name".into(), u.name.clone().into());
            props.insert("kind".into(), u.kind.as_str().into());
            if let Some(p) = &u.parent {
                props.insert("parent".into(), p.clone().into());
            }
        }
        let f = Feature {
            bbox: None,
            geometry: Some(Geometry::new(value)),
            id: None,
            properties: Some(props),
            foreign_members: None,
        };
        if !first {
            out.push_str(",\n");
        }
        first = false;
        out.push_str(&f.to_string());
    }
    out.push_str("\n]}\n");
    out
}
