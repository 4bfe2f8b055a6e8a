//! Geography: WGS84 points as stored in events, the micro-grid boundaries
//! of the organisation ([`Boundary`], stored as `BoundarySet` events in the
//! `org` stream), the index that maps a point to its micro-grid
//! ([`GeoIndex`], built by the registry) and the GeoJSON import and export
//! ([`import()`], [`to_geojson`]).
//!
//! Points are stored as whole multiples of 10⁻⁷ degree (about 1 cm on the
//! ground), not as floats: events derive `Eq`, the golden tests pin their
//! bytes, and a fixed-point pair encodes the same way on every machine.

mod boundary;
mod import;
mod index;

use std::fmt;

pub use boundary::{Boundary, BoundingBox, Scale};
pub use import::{
    import, overlaps, placeable_units, to_geojson, Geography, OVERLAP_TOLERANCE_M2, UNION_TOLERANCE,
};
pub use index::GeoIndex;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Error;

/// Where a point lies: its micro-grid, and the grid that micro-grid is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Located<'a> {
    /// The micro-grid's code (none for a grid without micro-grids).
    pub micro_grid: Option<&'a str>,
    /// Its grid's code.
    pub grid: &'a str,
}

/// Units of 10⁻⁷ degree per degree.
const E7: f64 = 10_000_000.0;

/// A WGS84 position (latitude, longitude) as a resident's phone reports it.
///
/// In a binary encoding (postcard: events, saved state) it is the pair of
/// fixed-point integers; in a human-readable one (JSON, TOML) it is
/// `{"lat": 33.39, "lon": 120.16}` in degrees, so API callers never see the
/// fixed-point form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GeoPoint {
    /// Latitude in 10⁻⁷ degree, −90° to 90°.
    lat_e7: i32,
    /// Longitude in 10⁻⁷ degree, −180° to 180°.
    lon_e7: i32,
}

impl GeoPoint {
    /// A point from degrees, rounded to 10⁻⁷ degree; refuses a latitude
    /// outside ±90°, a longitude outside ±180° and non-finite numbers.
    pub fn new(lat: f64, lon: f64) -> Result<GeoPoint, Error> {
        if !lat.is_finite() || !(-90.0..=90.0).contains(&lat) {
            return Err(Error::InvalidInput(format!(
                "latitude {lat} is not a number between -90 and 90"
            )));
        }
        if !lon.is_finite() || !(-180.0..=180.0).contains(&lon) {
            return Err(Error::InvalidInput(format!(
                "longitude {lon} is not a number between -180 and 180"
            )));
        }
        // In range by the checks above, so the casts cannot saturate.
        Ok(GeoPoint { lat_e7: (lat * E7).round() as i32, lon_e7: (lon * E7).round() as i32 })
    }

    /// A point from its fixed-point parts, checked like [`GeoPoint::new`].
    pub fn from_e7(lat_e7: i32, lon_e7: i32) -> Result<GeoPoint, Error> {
        GeoPoint::new(f64::from(lat_e7) / E7, f64::from(lon_e7) / E7)
            .map(|_| GeoPoint { lat_e7, lon_e7 })
    }

    /// Parses `"LAT,LON"` in degrees (spaces allowed), the form the CLI's
    /// `--point` and Open311 logs use.
    pub fn parse(text: &str) -> Result<GeoPoint, Error> {
        let bad = || {
            Error::InvalidInput(format!(
                "point {text:?} is not LAT,LON in degrees (for example 33.39,120.16)"
            ))
        };
        let (lat, lon) = text.split_once(',').ok_or_else(bad)?;
        let lat: f64 = lat.trim().parse().map_err(|_| bad())?;
        let lon: f64 = lon.trim().parse().map_err(|_| bad())?;
        GeoPoint::new(lat, lon)
    }

    /// Latitude in degrees.
    pub fn lat(self) -> f64 {
        f64::from(self.lat_e7) / E7
    }

    /// Longitude in degrees.
    pub fn lon(self) -> f64 {
        f64::from(self.lon_e7) / E7
    }

    /// Latitude in 10⁻⁷ degree.
    pub fn lat_e7(self) -> i32 {
        self.lat_e7
    }

    /// Longitude in 10⁻⁷ degree.
    pub fn lon_e7(self) -> i32 {
        self.lon_e7
    }
}

impl fmt::Display for GeoPoint {
    /// `LAT,LON` with seven decimals: the exact stored value, and what
    /// [`GeoPoint::parse`] reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.7},{:.7}", self.lat(), self.lon())
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Degrees {
    lat: f64,
    lon: f64,
}

impl Serialize for GeoPoint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            Degrees { lat: self.lat(), lon: self.lon() }.serialize(s)
        } else {
            (self.lat_e7, self.lon_e7).serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for GeoPoint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<GeoPoint, D::Error> {
        if d.is_human_readable() {
            let Degrees { lat, lon } = Degrees::deserialize(d)?;
            GeoPoint::new(lat, lon).map_err(D::Error::custom)
        } else {
            let (lat_e7, lon_e7) = <(i32, i32)>::deserialize(d)?;
            GeoPoint::from_e7(lat_e7, lon_e7).map_err(D::Error::custom)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn points_round_to_1e7_and_refuse_impossible_values() {
        let p = GeoPoint::new(33.390_000_04, 120.16).unwrap();
        assert_eq!((p.lat_e7(), p.lon_e7()), (333_900_000, 1_201_600_000));
        assert!(GeoPoint::new(90.5, 0.0).is_err());
        assert!(GeoPoint::new(0.0, -180.1).is_err());
        assert!(GeoPoint::new(f64::NAN, 0.0).is_err());
        assert!(GeoPoint::from_e7(i32::MAX, 0).is_err());
    }

    #[test]
    fn text_json_and_postcard_forms_round_trip() {
        let p = GeoPoint::parse(" 33.3912345 , 120.1654321").unwrap();
        assert_eq!(GeoPoint::parse(&p.to_string()).unwrap(), p);
        assert!(GeoPoint::parse("33.39").is_err());
        assert!(GeoPoint::parse("north,east").is_err());
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(json, r#"{"lat":33.3912345,"lon":120.1654321}"#);
        assert_eq!(serde_json::from_str::<GeoPoint>(&json).unwrap(), p);
        assert!(serde_json::from_str::<GeoPoint>(r#"{"lat":91,"lon":0}"#).is_err());
        let bytes = postcard::to_allocvec(&p).unwrap();
        assert_eq!(postcard::from_bytes::<GeoPoint>(&bytes).unwrap(), p);
    }
}
