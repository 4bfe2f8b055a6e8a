//! Geography: the generated boundaries tile the district, a point inside a
//! micro-grid locates to it, border points get a deterministic owner, a
//! point outside names the nearest grid, the boundaries reach the store,
//! and a GIS export is checked before it is accepted.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use geo::{Area, BooleanOps, MultiPolygon};
use gridcase::engine::domain::{Command, LocationSource, Submission};
use gridcase::engine::geo::{overlaps, GeoPoint, Scale};
use gridcase::engine::org::{OrgFile, Registry, UnitKind};
use gridcase_sim::org::{tinghu, to_geojson};
use proptest::prelude::*;

use super::fixture::*;

fn org() -> &'static OrgFile {
    static ORG: OnceLock<OrgFile> = OnceLock::new();
    ORG.get_or_init(tinghu)
}

fn registry_of(org: &OrgFile) -> Registry {
    let mut reg = Registry::default();
    for e in org.events().unwrap() {
        reg.apply(&e);
    }
    reg.reindex();
    reg
}

fn reg() -> &'static Registry {
    static REG: OnceLock<Registry> = OnceLock::new();
    REG.get_or_init(|| registry_of(org()))
}

/// The micro-grids' codes and their single quadrilateral ring.
fn quads() -> &'static Vec<(String, Vec<GeoPoint>)> {
    static Q: OnceLock<Vec<(String, Vec<GeoPoint>)>> = OnceLock::new();
    Q.get_or_init(|| {
        reg()
            .boundaries
            .iter()
            .map(|(c, b)| (c.clone(), b.polygons().remove(0).remove(0)))
            .collect()
    })
}

#[test]
fn tinghu_has_a_boundary_per_micro_grid_and_they_tile_without_gaps_or_overlaps() {
    let reg = reg();
    assert_eq!(reg.units_of(UnitKind::MicroGrid).count(), 1976);
    assert_eq!(reg.boundaries.len(), 1976);
    assert!(reg.units_of(UnitKind::MicroGrid).all(|u| reg.boundaries.contains_key(&u.code)));
    let shapes: Vec<(&str, MultiPolygon<f64>)> =
        reg.boundaries.iter().map(|(c, b)| (c.as_str(), b.to_multipolygon())).collect();
    let scale = Scale::at(33.39);
    let refs: Vec<(&str, &MultiPolygon<f64>)> = shapes.iter().map(|(c, s)| (*c, s)).collect();
    assert_eq!(overlaps(&refs, scale), vec![]);
    // No gaps: the pieces' areas add up to the area of their union, and
    // that union is one piece without holes.
    let sum: f64 = shapes.iter().map(|(_, s)| s.unsigned_area()).sum();
    let union = gridcase_union(shapes.iter().map(|(_, s)| s));
    assert_eq!(union.0.len(), 1, "the district is one piece");
    assert!(union.0[0].interiors().is_empty(), "the district has no holes");
    let rel = (union.unsigned_area() - sum).abs() / sum;
    assert!(rel < 1e-9, "union {} vs sum {sum}", union.unsigned_area());
    // About 13 km × 9.5 km of city.
    let km2 = scale.area(&union) / 1e6;
    assert!((100.0..150.0).contains(&km2), "{km2} km²");
}

fn gridcase_union<'a>(shapes: impl Iterator<Item = &'a MultiPolygon<f64>>) -> MultiPolygon<f64> {
    // Pairwise in a balanced tree: a left fold would redo the growing union.
    let mut layer: Vec<MultiPolygon<f64>> = shapes.cloned().collect();
    while layer.len() > 1 {
        layer = layer
            .chunks(2)
            .map(|c| if c.len() == 2 { c[0].union(&c[1]) } else { c[0].clone() })
            .collect();
    }
    layer.pop().unwrap_or(MultiPolygon(vec![]))
}

#[test]
fn every_community_and_street_is_one_connected_patch() {
    let reg = reg();
    let mut by_unit: BTreeMap<String, Vec<MultiPolygon<f64>>> = BTreeMap::new();
    for (code, b) in &reg.boundaries {
        for kind in [UnitKind::Grid, UnitKind::Community, UnitKind::Street] {
            let unit = reg.ancestor(code, kind).unwrap();
            by_unit.entry(unit.code.clone()).or_default().push(b.to_multipolygon());
        }
    }
    assert_eq!(by_unit.len(), 9 + 70 + 427);
    for (code, parts) in by_unit {
        let union = gridcase_union(parts.iter());
        assert_eq!(union.0.len(), 1, "{code} is {} pieces", union.0.len());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// A point strictly inside a micro-grid's quadrilateral (a convex
    /// combination of its corners with every weight positive: the
    /// generated quads are convex) locates to that micro-grid and its grid.
    #[test]
    fn a_point_inside_a_micro_grid_locates_to_it(
        pick in 0usize..1976,
        w in proptest::array::uniform4(1u32..1000),
    ) {
        let (code, ring) = &quads()[pick];
        let total: f64 = w.iter().map(|&x| f64::from(x)).sum();
        let (mut lat, mut lon) = (0.0, 0.0);
        for (p, &wi) in ring.iter().zip(&w) {
            lat += p.lat() * f64::from(wi) / total;
            lon += p.lon() * f64::from(wi) / total;
        }
        let point = GeoPoint::new(lat, lon).unwrap();
        let found = reg().locate(point).unwrap();
        prop_assert_eq!(found.micro_grid, Some(code.as_str()));
        prop_assert_eq!(Some(found.grid), reg().units[code].parent.as_deref());
    }

    /// A point on the edge between two micro-grids, or on a corner shared
    /// by up to four, belongs to the lowest code among them.
    #[test]
    fn a_border_point_belongs_to_the_lowest_code_that_shares_it(
        pick in 0usize..1976,
        edge in 0usize..4,
        corner in any::<bool>(),
    ) {
        let (code, ring) = &quads()[pick];
        let (a, b) = (ring[edge], ring[(edge + 1) % 4]);
        let point = if corner {
            a
        } else {
            // The midpoint, moved onto the 1e-7 grid only when it is on it
            // already (odd sums would round off the edge).
            let sl = i64::from(a.lat_e7()) + i64::from(b.lat_e7());
            let so = i64::from(a.lon_e7()) + i64::from(b.lon_e7());
            prop_assume!(sl % 2 == 0 && so % 2 == 0);
            GeoPoint::from_e7((sl / 2) as i32, (so / 2) as i32).unwrap()
        };
        let sharing: Vec<&String> = quads()
            .iter()
            .filter(|(_, r)| on_ring(point, r))
            .map(|(c, _)| c)
            .collect();
        prop_assert!(sharing.contains(&code));
        let expected = sharing.iter().min().unwrap();
        let found = reg().locate(point).unwrap();
        prop_assert_eq!(found.micro_grid, Some(expected.as_str()));
    }
}

/// Whether `p` lies on the ring's edges, in exact integer arithmetic.
fn on_ring(p: GeoPoint, ring: &[GeoPoint]) -> bool {
    (0..ring.len()).any(|i| {
        let (a, b) = (ring[i], ring[(i + 1) % ring.len()]);
        let (ax, ay) = (i128::from(a.lon_e7()), i128::from(a.lat_e7()));
        let (bx, by) = (i128::from(b.lon_e7()), i128::from(b.lat_e7()));
        let (px, py) = (i128::from(p.lon_e7()), i128::from(p.lat_e7()));
        let cross = (bx - ax) * (py - ay) - (by - ay) * (px - ax);
        cross == 0 && px >= ax.min(bx) && px <= ax.max(bx) && py >= ay.min(by) && py <= ay.max(by)
    })
}

#[test]
fn a_point_outside_names_the_nearest_grid_and_the_distance() {
    let bounds = reg().bounds.unwrap();
    // 0.012° east of the box at its middle latitude: about 1.1 km beyond it.
    let lat = (bounds.min.lat() + bounds.max.lat()) / 2.0;
    let point = GeoPoint::new(lat, bounds.max.lon() + 0.012).unwrap();
    let err = reg().locate(point).unwrap_err().to_string();
    assert!(err.contains("outside every micro-grid"), "{err}");
    let metres: f64 = err
        .rsplit(", ")
        .next()
        .and_then(|t| t.strip_suffix(" m away"))
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no distance in {err:?}"));
    assert!((1_000.0..1_600.0).contains(&metres), "{err}");
    assert!(err.contains("of grid 320902"), "{err}");
    // Far away (Beijing) the message still says where the district is.
    let err = reg().locate(GeoPoint::new(39.9, 116.4).unwrap()).unwrap_err().to_string();
    assert!(err.contains("m away"), "{err}");
}

#[test]
fn the_shipped_files_load_from_disk_with_their_boundaries() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("org/tinghu.toml");
    let loaded = OrgFile::load(&path).unwrap();
    assert_eq!(loaded.events().unwrap(), org().events().unwrap());
    // Without its boundaries, the file cannot start a store.
    let text = std::fs::read_to_string(&path).unwrap();
    let err = OrgFile::parse(&text).unwrap().events().unwrap_err().to_string();
    assert!(err.contains("tinghu.geojson"), "{err}");
}

#[test]
fn boundaries_are_compact_in_the_store() {
    let events = org().events().unwrap();
    let geo: Vec<usize> = events
        .iter()
        .filter(|e| e.event_type() == "BoundarySet")
        .map(|e| e.to_data().payload.len())
        .collect();
    assert_eq!(geo.len(), 1976);
    let mean = geo.iter().sum::<usize>() as f64 / geo.len() as f64;
    assert!(mean < 64.0, "a micro-grid's boundary takes {mean} bytes on average");
}

/// An app's report with only a GPS point, through a real engine on a
/// store: the case lands in the micro-grid, says how, and the store keeps
/// its geography across a restart without the organisation file.
#[tokio::test]
async fn a_point_alone_opens_a_case_in_its_micro_grid() {
    let h = TestEngine::start_with(org()).await;
    let (code, ring) = &quads()[1234];
    let lat = ring.iter().map(|p| p.lat()).sum::<f64>() / 4.0;
    let lon = ring.iter().map(|p| p.lon()).sum::<f64>() / 4.0;
    let point = GeoPoint::new(lat, lon).unwrap();
    let report = |point| Submission {
        channel: gridcase::engine::domain::Channel::App,
        kind: gridcase::engine::domain::RequestKind::Report,
        category: "sanitation".into(),
        priority: gridcase::engine::domain::Priority::Normal,
        description: "垃圾桶满了".into(),
        location: String::new(),
        contact: None,
        point: Some(point),
        media: vec![],
        reporter: None,
    };
    let id = h.submit(RESIDENT, report(point)).await;
    let case = h.folded(&id).await;
    assert_eq!(case.micro_grid.as_deref(), Some(code.as_str()));
    assert_eq!(Some(case.grid.as_str()), reg().units[code].parent.as_deref());
    assert_eq!(case.located_by, LocationSource::Point);
    assert_eq!(case.point, Some(point));
    assert_eq!(case.location, point.to_string());
    let h = h.reopen().await;
    let id2 = h.submit(RESIDENT, report(point)).await;
    assert_eq!(h.folded(&id2).await.micro_grid.as_deref(), Some(code.as_str()));
    // Outside the district: refused, naming the nearest grid; nothing stored.
    let before = h.head();
    let far = GeoPoint::new(33.0, 120.16).unwrap();
    let err = h
        .engine
        .submit(&actor_id(RESIDENT), report(far), Default::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("nearest") && err.contains("m away"), "{err}");
    assert_eq!(h.head(), before);
    // A code still decides over a point.
    let mut by_code = report(point);
    by_code.location = "320902001001001".into();
    let id3 = h.submit(RESIDENT, by_code).await;
    let c3 = h.folded(&id3).await;
    assert_eq!((c3.grid.as_str(), c3.located_by), ("320902001001001", LocationSource::Code));
    // And the case goes on as any other.
    let assigned = h
        .ok(&id3, "cs-320902001001-1", Command::Assign { worker: "gw-320902001001001".into() })
        .await;
    assert_eq!(assigned.case.assigned_worker.as_deref(), Some("gw-320902001001001"));
}

/// The simulator sends most requests as a phone would, with only a point,
/// and each such case is in the micro-grid the point lies in.
#[tokio::test]
async fn the_simulator_reports_by_point_and_the_cases_land_where_the_points_are() {
    use gridcase::engine::domain::Event;
    let (engine, clock, _dir) = TestEngine::shared_with(org()).await;
    let cfg = gridcase_sim::SimConfig {
        seed: 3,
        days: 1,
        requests_per_day: 150.0,
        actors: 1,
        start: t0(),
        ..Default::default()
    };
    clock.set(t0());
    gridcase_sim::run(engine.clone(), clock, &cfg, None).await.unwrap();
    let records = engine.log().read_all(1, 1_000_000).await.unwrap();
    let mut micro_of: BTreeMap<String, Option<String>> = BTreeMap::new();
    let (mut submitted, mut by_point) = (0, 0);
    for rec in &records {
        match Event::from_recorded(rec).unwrap() {
            Event::CaseSubmitted { micro_grid, .. } => {
                submitted += 1;
                micro_of.insert(rec.stream.to_string(), micro_grid);
            }
            Event::SubmissionDetailed {
                located_by: LocationSource::Point, point: Some(p), ..
            } => {
                by_point += 1;
                let here = reg().locate(p).unwrap().micro_grid.map(str::to_string);
                assert_eq!(micro_of[&rec.stream.to_string()], here, "{p}");
            }
            _ => {}
        }
    }
    assert!(submitted > 50, "{submitted} submissions");
    // Seven in ten by design; at least half whatever the draw.
    assert!(by_point * 2 > submitted, "{by_point} of {submitted} by point");
}

// ------------------------------------------------------------ import

fn tinghu_geojson() -> &'static str {
    static G: OnceLock<String> = OnceLock::new();
    G.get_or_init(|| to_geojson(org()).unwrap())
}

fn attach(text: &str) -> Result<(), String> {
    let mut o = org().clone();
    o.boundaries = None;
    o.attach_geojson(text).map_err(|e| e.to_string())
}

fn features() -> Vec<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_str(tinghu_geojson()).unwrap();
    v["features"].as_array().unwrap().clone()
}

fn collection(features: Vec<serde_json::Value>) -> String {
    serde_json::json!({"type": "FeatureCollection", "features": features}).to_string()
}

#[test]
fn the_generated_geojson_imports_cleanly() {
    attach(tinghu_geojson()).unwrap();
}

#[test]
fn import_refuses_what_does_not_fit_and_says_what() {
    let expect = |text: String, needles: &[&str]| {
        let err = attach(&text).unwrap_err();
        for n in needles {
            assert!(err.contains(n), "{n:?} not in {err:?}");
        }
    };
    expect("not json".into(), &["not GeoJSON"]);
    expect(r#"{"type":"Point","coordinates":[120.1,33.4]}"#.into(), &["not a FeatureCollection"]);
    // A micro-grid left out.
    let mut f = features();
    f.remove(7);
    expect(collection(f), &["1 micro-grid(s)", "have no boundary", "32090200100100203"]);
    // A feature without a code, one with an unknown code, a department.
    let mut f = features();
    f[0]["properties"] = serde_json::json!({"name": "x"});
    f[1]["properties"]["code"] = "999".into();
    f[2]["properties"]["code"] = "D01".into();
    expect(
        collection(f),
        &[
            "feature 1 has no string property \"code\"",
            "feature 2: code \"999\"",
            "D01 is a department",
        ],
    );
    // A micro-grid twice.
    let mut f = features();
    let dup = f[3].clone();
    f.push(dup);
    expect(collection(f), &["more than one feature"]);
    // A line instead of a polygon; a latitude out of range.
    let mut f = features();
    f[0]["geometry"] =
        serde_json::json!({"type": "LineString", "coordinates": [[120.1, 33.4], [120.2, 33.4]]});
    f[1]["geometry"]["coordinates"][0][1] = serde_json::json!([120.1, 95.0]);
    expect(collection(f), &["LineString, not a Polygon", "latitude 95"]);
    // A bow-tie (self-intersecting) ring.
    let mut f = features();
    let ring = f[5]["geometry"]["coordinates"][0].as_array().unwrap().clone();
    let bow =
        vec![ring[0].clone(), ring[2].clone(), ring[1].clone(), ring[3].clone(), ring[0].clone()];
    f[5]["geometry"]["coordinates"][0] = bow.into();
    expect(collection(f), &["feature 6", "not valid"]);
    // One micro-grid's shape copied over its neighbour's: they overlap.
    let mut f = features();
    f[11]["geometry"] = f[10]["geometry"].clone();
    expect(collection(f), &["overlap by"]);
    // Outside the bounding box of the organisation file.
    let mut f = features();
    let moved: Vec<serde_json::Value> = f[20]["geometry"]["coordinates"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| serde_json::json!([p[0].as_f64().unwrap() + 1.0, p[1]]))
        .collect();
    f[20]["geometry"]["coordinates"][0] = moved.into();
    expect(collection(f), &["outside the district's bounding box"]);
}

#[test]
fn import_checks_explicit_community_boundaries_against_their_micro_grids() {
    let reg = reg();
    let community = "320902001001";
    let parts: Vec<MultiPolygon<f64>> = reg
        .boundaries
        .iter()
        .filter(|(c, _)| reg.is_within(c, community))
        .map(|(_, b)| b.to_multipolygon())
        .collect();
    let union = gridcase_union(parts.iter());
    let ring: Vec<serde_json::Value> =
        union.0[0].exterior().coords().map(|c| serde_json::json!([c.x / 1e7, c.y / 1e7])).collect();
    let feature = |ring: Vec<serde_json::Value>| {
        serde_json::json!({"type": "Feature", "properties": {"code": community},
            "geometry": {"type": "Polygon", "coordinates": [ring]}})
    };
    let mut f = features();
    f.push(feature(ring.clone()));
    attach(&collection(f)).unwrap();
    // Its first micro-grid alone is far less than the community.
    let mut f = features();
    f.push(feature(f[0]["geometry"]["coordinates"][0].as_array().unwrap().clone()));
    let err = attach(&collection(f)).unwrap_err();
    assert!(err.contains(&format!("({community}) covers")), "{err}");
}

/// A registered address is somewhere: the point that stands for its
/// micro-grid lies in that micro-grid, and a grid's or community's lies
/// inside them.
#[test]
fn registered_addresses_carry_coordinates() {
    let reg = reg();
    let with_address: Vec<&str> = reg
        .units
        .values()
        .filter(|u| u.address.is_some())
        .map(|u| u.code.as_str())
        .step_by(97)
        .collect();
    assert!(with_address.len() > 10);
    for code in with_address {
        let p = reg.point_of(code).unwrap();
        assert_eq!(reg.locate(p).unwrap().micro_grid, Some(code));
    }
    for code in ["320902001001001", "320902003002", "320902009"] {
        let p = reg.point_of(code).unwrap();
        assert!(reg.is_within(reg.locate(p).unwrap().grid, code), "{code}");
    }
    assert_eq!(reg.point_of("D01"), None);
}
