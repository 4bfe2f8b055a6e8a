//! A unit's boundary as stored, and the local metric scale used to measure
//! areas and distances.

use geo::{Coord, LineString, MultiPolygon, Polygon};
use serde::{Deserialize, Serialize};

use super::GeoPoint;
use crate::Error;

/// One unit's boundary as a `BoundarySet` event stores it: polygons, each
/// an outer ring then its holes.
///
/// Each ring is its vertices as `lat, lon` in 10⁻⁷ degree, flattened; the
/// first vertex absolute and every later one as the difference from the
/// one before, and the closing vertex left out. Neighbouring vertices of a
/// micro-grid are a few hundred metres apart, so the differences are small
/// numbers that postcard's varints keep to two or three bytes: a generated
/// quadrilateral micro-grid takes about 30 bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Boundary {
    polygons: Vec<Vec<Vec<i64>>>,
}

impl Boundary {
    /// A boundary from polygons given as rings of points (outer ring
    /// first). A closing vertex equal to the first is dropped; each ring
    /// needs at least three distinct vertices.
    pub fn new(polygons: &[Vec<Vec<GeoPoint>>]) -> Result<Boundary, Error> {
        if polygons.is_empty() {
            return Err(Error::InvalidInput("a boundary needs at least one polygon".into()));
        }
        let mut out = Vec::with_capacity(polygons.len());
        for rings in polygons {
            if rings.is_empty() {
                return Err(Error::InvalidInput("a polygon needs an outer ring".into()));
            }
            let mut encoded = Vec::with_capacity(rings.len());
            for ring in rings {
                let mut pts: &[GeoPoint] = ring;
                if pts.len() > 1 && pts.first() == pts.last() {
                    pts = &pts[..pts.len() - 1];
                }
                let mut distinct = pts.to_vec();
                distinct.sort();
                distinct.dedup();
                if distinct.len() < 3 {
                    return Err(Error::InvalidInput(
                        "a ring needs at least three distinct vertices".into(),
                    ));
                }
                let mut flat = Vec::with_capacity(pts.len() * 2);
                let (mut lat0, mut lon0) = (0i64, 0i64);
                for p in pts {
                    let (lat, lon) = (i64::from(p.lat_e7()), i64::from(p.lon_e7()));
                    flat.push(lat - lat0);
                    flat.push(lon - lon0);
                    (lat0, lon0) = (lat, lon);
                }
                encoded.push(flat);
            }
            out.push(encoded);
        }
        Ok(Boundary { polygons: out })
    }

    /// The polygons as rings of points (closing vertex left out).
    pub fn polygons(&self) -> Vec<Vec<Vec<GeoPoint>>> {
        self.polygons
            .iter()
            .map(|rings| {
                rings
                    .iter()
                    .map(|flat| {
                        let (mut lat, mut lon) = (0i64, 0i64);
                        flat.chunks_exact(2)
                            .filter_map(|d| {
                                lat += d[0];
                                lon += d[1];
                                // Built from valid points, so in range; a
                                // hand-made event out of range loses the vertex.
                                GeoPoint::from_e7(
                                    i32::try_from(lat).ok()?,
                                    i32::try_from(lon).ok()?,
                                )
                                .ok()
                            })
                            .collect()
                    })
                    .collect()
            })
            .collect()
    }

    /// The boundary as a `geo` multipolygon in 10⁻⁷-degree units
    /// (x = longitude, y = latitude). Containment does not change under
    /// that scaling, and the stored integers are exact in `f64`, so a
    /// point on a shared edge is on it for both neighbours, exactly.
    pub fn to_multipolygon(&self) -> MultiPolygon<f64> {
        let ring = |pts: &[GeoPoint]| {
            LineString::from(
                pts.iter()
                    .map(|p| Coord { x: f64::from(p.lon_e7()), y: f64::from(p.lat_e7()) })
                    .collect::<Vec<_>>(),
            )
        };
        MultiPolygon(
            self.polygons()
                .iter()
                .filter(|rings| !rings.is_empty())
                .map(|rings| {
                    Polygon::new(ring(&rings[0]), rings[1..].iter().map(|r| ring(r)).collect())
                })
                .collect(),
        )
    }

    /// Number of vertices stored.
    pub fn vertex_count(&self) -> usize {
        self.polygons.iter().flatten().map(|r| r.len() / 2).sum()
    }
}

/// The district's bounding box: the south-west and north-east corners.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoundingBox {
    /// Southern latitude and western longitude.
    pub min: GeoPoint,
    /// Northern latitude and eastern longitude.
    pub max: GeoPoint,
}

impl BoundingBox {
    /// A box from `[west, south, east, north]` in degrees (GeoJSON's `bbox`
    /// order); refuses an empty or inverted box.
    pub fn from_wsen(b: [f64; 4]) -> Result<BoundingBox, Error> {
        let min = GeoPoint::new(b[1], b[0])?;
        let max = GeoPoint::new(b[3], b[2])?;
        if min.lat_e7() >= max.lat_e7() || min.lon_e7() >= max.lon_e7() {
            return Err(Error::InvalidInput(format!(
                "bounding box {b:?} is not [west, south, east, north] with west < east and south < north"
            )));
        }
        Ok(BoundingBox { min, max })
    }

    /// `[west, south, east, north]` in degrees.
    pub fn to_wsen(self) -> [f64; 4] {
        [self.min.lon(), self.min.lat(), self.max.lon(), self.max.lat()]
    }

    /// Whether the point lies in the box (edges included).
    pub fn contains(self, p: GeoPoint) -> bool {
        (self.min.lat_e7()..=self.max.lat_e7()).contains(&p.lat_e7())
            && (self.min.lon_e7()..=self.max.lon_e7()).contains(&p.lon_e7())
    }
}

/// Metres per 10⁻⁷ degree east and north around one latitude: a local
/// equirectangular approximation, within a fraction of a percent over a
/// district or a city (tens of kilometres).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scale {
    /// Metres per unit of x (longitude in 10⁻⁷ degree).
    pub x: f64,
    /// Metres per unit of y (latitude in 10⁻⁷ degree).
    pub y: f64,
}

impl Scale {
    /// The scale at a latitude in degrees (the WGS84 series for the length
    /// of a degree).
    pub fn at(lat: f64) -> Scale {
        let phi = lat.to_radians();
        let m_lat = 111_132.92 - 559.82 * (2.0 * phi).cos() + 1.175 * (4.0 * phi).cos();
        let m_lon = 111_412.84 * phi.cos() - 93.5 * (3.0 * phi).cos();
        Scale { x: m_lon / 1e7, y: m_lat / 1e7 }
    }

    /// Area in square metres of a shape in 10⁻⁷-degree units.
    pub fn area(self, shape: &MultiPolygon<f64>) -> f64 {
        use geo::Area;
        shape.unsigned_area() * self.x * self.y
    }

    /// Distance in metres between two coordinates in 10⁻⁷-degree units.
    pub fn distance(self, a: Coord<f64>, b: Coord<f64>) -> f64 {
        ((a.x - b.x) * self.x).hypot((a.y - b.y) * self.y)
    }

    /// Distance in metres from `p` to the nearest point of the shape's
    /// rings (0 inside is not implied: callers ask only for outside points).
    pub fn distance_to_rings(self, p: Coord<f64>, shape: &MultiPolygon<f64>) -> f64 {
        let mut best = f64::INFINITY;
        for poly in &shape.0 {
            for ring in std::iter::once(poly.exterior()).chain(poly.interiors()) {
                for seg in ring.lines() {
                    best = best.min(self.segment_distance(p, seg.start, seg.end));
                }
            }
        }
        best
    }

    fn segment_distance(self, p: Coord<f64>, a: Coord<f64>, b: Coord<f64>) -> f64 {
        // In metres, so "nearest point of the segment" is nearest on the ground.
        let (px, py) = ((p.x - a.x) * self.x, (p.y - a.y) * self.y);
        let (bx, by) = ((b.x - a.x) * self.x, (b.y - a.y) * self.y);
        let len2 = bx * bx + by * by;
        let t = if len2 > 0.0 { ((px * bx + py * by) / len2).clamp(0.0, 1.0) } else { 0.0 };
        (px - t * bx).hypot(py - t * by)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn p(lat: f64, lon: f64) -> GeoPoint {
        GeoPoint::new(lat, lon).unwrap()
    }

    #[test]
    fn boundaries_round_trip_compactly() {
        let ring = vec![p(33.39, 120.16), p(33.39, 120.163), p(33.392, 120.163), p(33.392, 120.16)];
        let mut closed = ring.clone();
        closed.push(ring[0]);
        let b = Boundary::new(&[vec![closed]]).unwrap();
        assert_eq!(b.polygons(), vec![vec![ring]]);
        assert_eq!(b.vertex_count(), 4);
        let bytes = postcard::to_allocvec(&b).unwrap();
        assert!(bytes.len() < 40, "{} bytes", bytes.len());
        assert_eq!(postcard::from_bytes::<Boundary>(&bytes).unwrap(), b);
        assert!(Boundary::new(&[]).is_err());
        assert!(Boundary::new(&[vec![vec![p(1.0, 1.0), p(1.0, 2.0), p(1.0, 1.0)]]]).is_err());
    }

    #[test]
    fn the_scale_measures_metres_near_yancheng() {
        let s = Scale::at(33.39);
        // A 0.01° square near 33.39°N is about 1,110 m by 929 m.
        let sq = Boundary::new(&[vec![vec![
            p(33.39, 120.16),
            p(33.39, 120.17),
            p(33.40, 120.17),
            p(33.40, 120.16),
        ]]])
        .unwrap();
        let area = s.area(&sq.to_multipolygon());
        assert!((area - 1_109_000.0 * 0.93).abs() < 10_000.0, "{area}");
        let d = s.distance_to_rings(
            Coord { x: 1_201_500_000.0, y: 333_950_000.0 },
            &sq.to_multipolygon(),
        );
        assert!((d - 929.9).abs() < 5.0, "{d}");
        assert!(BoundingBox::from_wsen([120.0, 33.0, 121.0, 34.0])
            .unwrap()
            .contains(p(33.5, 120.5)));
        assert!(BoundingBox::from_wsen([121.0, 33.0, 120.0, 34.0]).is_err());
    }
}
