//! Generated organisations: the Tinghu-sized district the demo ships with,
//! and city-scale shapes (Chengdu: 118 streets, thousands of communities)
//! for the throughput benchmark.
//!
//! The generator is deterministic: the same shape always yields the same
//! files, so `org/tinghu.toml` and `org/tinghu.geojson` in the repository
//! are exactly `tinghu()`.
//!
//! Boundaries: the district is a lattice of jittered quadrilaterals about
//! 250 m across, one per micro-grid, around the district's real centre.
//! Neighbouring cells share their corner vertices exactly, so the cells
//! tile the area with no gap and no overlap. Cells are handed out along a
//! generalised Hilbert curve in code order, so consecutive micro-grids are
//! neighbours and every grid, community and street (runs of consecutive
//! micro-grids) is one compact, connected patch.

use std::collections::BTreeMap;

use gridcase_engine::domain::DeadlineClass;
use gridcase_engine::geo::{Boundary, BoundingBox, GeoPoint, Geography, Scale};
use gridcase_engine::org::{
    CategorySpec, CommunitySpec, DistrictSpec, GeographySpec, GridSpec, OrgFile, Registry, Role,
    StaffSpec, StreetSpec, UnitSpec,
};

/// How big a generated district is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Streets.
    pub streets: usize,
    /// Communities, spread evenly over the streets.
    pub communities: usize,
    /// Grids, spread evenly over the communities.
    pub grids: usize,
    /// Micro-grids, spread evenly over the grids.
    pub micro_grids: usize,
    /// Centre of the generated boundaries, (latitude, longitude) in 10⁻⁷
    /// degree.
    pub centre: (i32, i32),
}

/// Tinghu district (`000` in the seeds): 70 communities, 427 grids, 1,976
/// micro-grids, over 9 streets, around Tinghu, Yancheng, Jiangsu.
pub const TINGHU: Shape = Shape {
    streets: 9,
    communities: 70,
    grids: 427,
    micro_grids: 1976,
    centre: (333_900_000, 1_201_600_000),
};

/// A city at Chengdu's scale (`001`): 118 streets with 25 communities each,
/// 4 grids per community, 2 micro-grids per grid (about 57,000 registry
/// events and 23,600 boundaries: one atomic append), around Chengdu.
pub const CHENGDU: Shape = Shape {
    streets: 118,
    communities: 2950,
    grids: 11_800,
    micro_grids: 23_600,
    centre: (306_600_000, 1_040_600_000),
};

/// Side of a generated micro-grid cell, in metres.
pub const CELL_METRES: f64 = 250.0;

const STREET_NAMES: &[&str] = &[
    "文峰", "先锋", "毓龙", "大洋", "五星", "新兴", "便仓", "盐东", "黄尖", "南洋", "新洋", "亭湖",
];
const COMMUNITY_WORDS: &[&str] = &[
    "新村", "幸福", "和平", "友谊", "东风", "建设", "人民", "光明", "解放", "开放", "青年", "花园",
    "育才", "朝阳", "聚亭", "怡景",
];

/// The departments every generated district has, with their codes.
pub const DEPARTMENTS: &[(&str, &str)] = &[
    ("D01", "城市管理局"),
    ("D02", "公安分局"),
    ("D03", "司法局"),
    ("D04", "生态环境局"),
    ("D05", "住房和城乡建设局"),
    ("D06", "市场监督管理局"),
    ("D07", "水务集团"),
    ("D08", "供电公司"),
    ("D09", "燃气公司"),
    ("D10", "民政局"),
    ("D11", "交通运输局"),
    ("D12", "卫生健康委员会"),
];

/// Categories: (code, name, department, class, relative frequency).
pub const CATEGORIES: &[(&str, &str, &str, DeadlineClass, u32)] = &[
    ("street_lighting", "路灯照明", "D01", DeadlineClass::Utilities, 10),
    ("sanitation", "环境卫生", "D01", DeadlineClass::Ordinary, 16),
    ("illegal_construction", "违章搭建", "D01", DeadlineClass::Complex, 5),
    ("blocked_lane", "占道堵塞", "D11", DeadlineClass::Ordinary, 8),
    ("noise_dispute", "噪音扰民", "D02", DeadlineClass::Ordinary, 10),
    ("neighbour_dispute", "邻里纠纷", "D03", DeadlineClass::Ordinary, 7),
    ("pollution", "污染排放", "D04", DeadlineClass::Ordinary, 4),
    ("housing_repair", "房屋维修", "D05", DeadlineClass::Complex, 7),
    ("market_fraud", "市场监管", "D06", DeadlineClass::Ordinary, 5),
    ("water_supply", "供水故障", "D07", DeadlineClass::Utilities, 8),
    ("power_outage", "停电故障", "D08", DeadlineClass::Utilities, 5),
    ("gas_leak", "燃气泄漏", "D09", DeadlineClass::Emergency, 1),
    ("elderly_care", "养老服务", "D10", DeadlineClass::Ordinary, 6),
    ("public_health", "公共卫生", "D12", DeadlineClass::Ordinary, 4),
];

fn spread(total: usize, parts: usize, i: usize) -> usize {
    total / parts + usize::from(i < total % parts)
}

/// The Tinghu-sized organisation the demo uses.
pub fn tinghu() -> OrgFile {
    generate(TINGHU, "320902", "亭湖区")
}

/// The Chengdu-sized city the throughput benchmark uses.
pub fn chengdu() -> OrgFile {
    generate(CHENGDU, "510100", "成都市")
}

/// A district of the given shape; codes follow the national grid-code style
/// (admin 6 digits + street 3 + community 3 + grid 3, micro-grid 2 more).
pub fn generate(shape: Shape, admin: &str, name: &str) -> OrgFile {
    let mut streets = Vec::new();
    let mut staff = Vec::new();
    let mut community_no = 0;
    let mut grid_no = 0;
    for s in 0..shape.streets {
        let scode = format!("{admin}{:03}", s + 1);
        let sname = match STREET_NAMES.get(s) {
            Some(n) if shape.streets <= STREET_NAMES.len() => format!("{n}街道"),
            _ => format!("第{}街道", s + 1),
        };
        for k in 1..=2 {
            staff.push(StaffSpec {
                id: format!("ss-{scode}-{k}"),
                name: format!("{sname}工作人员{k}"),
                role: Role::StreetStaff,
                unit: scode.clone(),
            });
        }
        let mut communities = Vec::new();
        for c in 0..spread(shape.communities, shape.streets, s) {
            let ccode = format!("{scode}{:03}", c + 1);
            let word = COMMUNITY_WORDS[community_no % COMMUNITY_WORDS.len()];
            let cname = if shape.communities <= COMMUNITY_WORDS.len() * 8 {
                format!(
                    "{word}{}社区",
                    ["", "东", "西", "南", "北", "中", "新", "前"]
                        [community_no / COMMUNITY_WORDS.len() % 8]
                )
            } else {
                format!("{word}{}社区", community_no + 1)
            };
            for k in 1..=2 {
                staff.push(StaffSpec {
                    id: format!("cs-{ccode}-{k}"),
                    name: format!("{cname}社工{k}"),
                    role: Role::CommunityStaff,
                    unit: ccode.clone(),
                });
            }
            let mut grids = Vec::new();
            for g in 0..spread(shape.grids, shape.communities, community_no) {
                let gcode = format!("{ccode}{:03}", g + 1);
                let gname = format!("第{}网格", g + 1);
                let micro = spread(shape.micro_grids, shape.grids, grid_no);
                let micro_grids = (0..micro).map(|m| format!("{}号楼", g * 10 + m + 1)).collect();
                staff.push(StaffSpec {
                    id: format!("gw-{gcode}"),
                    name: format!("{cname}{gname}网格员"),
                    role: Role::GridWorker,
                    unit: gcode.clone(),
                });
                grids.push(GridSpec { code: gcode, name: gname, address: None, micro_grids });
                grid_no += 1;
            }
            communities.push(CommunitySpec { code: ccode, name: cname, grids });
            community_no += 1;
        }
        streets.push(StreetSpec { code: scode, name: sname, communities });
    }
    let departments = DEPARTMENTS
        .iter()
        .map(|(c, n)| UnitSpec { code: c.to_string(), name: n.to_string() })
        .collect();
    for (code, dname) in DEPARTMENTS {
        for k in 1..=3 {
            staff.push(StaffSpec {
                id: format!("ds-{code}-{k}"),
                name: format!("{dname}办事员{k}"),
                role: Role::DepartmentStaff,
                unit: code.to_string(),
            });
        }
    }
    for k in 1..=3 {
        staff.push(StaffSpec {
            id: format!("sup-{k}"),
            name: format!("区督办员{k}"),
            role: Role::DistrictSupervisor,
            unit: admin.to_string(),
        });
    }
    staff.push(StaffSpec {
        id: "aud-1".into(),
        name: "审计员".into(),
        role: Role::Auditor,
        unit: admin.to_string(),
    });
    let categories = CATEGORIES
        .iter()
        .map(|(c, n, d, class, _)| CategorySpec {
            code: c.to_string(),
            name: n.to_string(),
            department: d.to_string(),
            class: *class,
        })
        .collect();
    let mut org = OrgFile {
        district: DistrictSpec {
            code: admin.to_string(),
            name: name.to_string(),
            time_zone: Some("Asia/Shanghai".to_string()),
        },
        geography: None,
        streets,
        departments,
        categories,
        staff,
        policy: Default::default(),
        boundaries: None,
    };
    let geo = boundaries(&org, shape.centre, admin);
    org.geography = geo.bounds.map(|b| GeographySpec {
        boundaries: format!("{}.geojson", file_stem(shape, admin)),
        bbox: b.to_wsen(),
    });
    org.boundaries = Some(geo);
    org
}

/// The base name of a shape's files: `tinghu`, `chengdu`, or the code.
fn file_stem(shape: Shape, admin: &str) -> String {
    match shape {
        s if s == TINGHU => "tinghu".into(),
        s if s == CHENGDU => "chengdu".into(),
        _ => admin.to_string(),
    }
}

/// The leaves of the hierarchy in code order: each micro-grid, or a grid
/// itself when it has none.
fn leaves(org: &OrgFile) -> Vec<String> {
    let mut out = Vec::new();
    for g in org.streets.iter().flat_map(|s| &s.communities).flat_map(|c| &c.grids) {
        if g.micro_grids.is_empty() {
            out.push(g.code.clone());
        }
        for i in 0..g.micro_grids.len() {
            out.push(format!("{}{:02}", g.code, i + 1));
        }
    }
    out
}

/// One jitter offset in (−max, max), from a hash of the seed and the
/// vertex: the same vertex always moves the same way.
fn jitter(seed: &str, i: usize, j: usize, axis: u8, max: i32) -> i32 {
    let h = blake3::hash(format!("{seed}:{i}:{j}:{axis}").as_bytes());
    let b = h.as_bytes();
    let r = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let span = 2 * i64::from(max) + 1;
    (i64::from(r) % span - i64::from(max)) as i32
}

/// Generated boundaries for every leaf of `org` (see the module docs).
fn boundaries(org: &OrgFile, centre: (i32, i32), seed: &str) -> Geography {
    let leaves = leaves(org);
    let n = leaves.len();
    if n == 0 {
        return Geography::default();
    }
    // A lattice a little wider than tall, with room for every leaf.
    let w = ((n as f64 * 4.0 / 3.0).sqrt().ceil() as usize).max(1);
    let h = n.div_ceil(w);
    let scale = Scale::at(f64::from(centre.0) / 1e7);
    let dx = (CELL_METRES / scale.x).round() as i32;
    let dy = (CELL_METRES / scale.y).round() as i32;
    let x0 = centre.1 - dx * (w as i32) / 2;
    let y0 = centre.0 - dy * (h as i32) / 2;
    // Corners move by up to a fifth of a cell: every cell stays a simple
    // quadrilateral, and neighbours share the moved corner.
    let vertex = |(i, j): (usize, usize)| -> Option<GeoPoint> {
        let lon = x0 + dx * i as i32 + jitter(seed, i, j, 0, dx / 5);
        let lat = y0 + dy * j as i32 + jitter(seed, i, j, 1, dy / 5);
        GeoPoint::from_e7(lat, lon).ok()
    };
    let mut out = BTreeMap::new();
    let (mut west, mut south, mut east, mut north) = (i32::MAX, i32::MAX, i32::MIN, i32::MIN);
    for (code, (i, j)) in leaves.into_iter().zip(gilbert(w, h)) {
        // Counter-clockwise from the south-west corner. A centre so near a
        // pole or the antimeridian that a corner is out of range leaves the
        // cell out (and the coverage check of an import would say so).
        let Some(ring) = [(i, j), (i + 1, j), (i + 1, j + 1), (i, j + 1)]
            .into_iter()
            .map(vertex)
            .collect::<Option<Vec<GeoPoint>>>()
        else {
            continue;
        };
        for p in &ring {
            west = west.min(p.lon_e7());
            east = east.max(p.lon_e7());
            south = south.min(p.lat_e7());
            north = north.max(p.lat_e7());
        }
        if let Ok(b) = Boundary::new(&[vec![ring]]) {
            out.insert(code, b);
        }
    }
    // The box on whole 10⁻⁴ degrees (about 10 m) around the cells.
    let down = |v: i32| v.div_euclid(1000) * 1000;
    let up = |v: i32| -(-v).div_euclid(1000) * 1000;
    let bounds = BoundingBox::from_wsen([
        f64::from(down(west)) / 1e7,
        f64::from(down(south)) / 1e7,
        f64::from(up(east)) / 1e7,
        f64::from(up(north)) / 1e7,
    ])
    .ok();
    Geography { bounds, boundaries: out }
}

/// The cells of a `w` × `h` lattice in the order of a generalised Hilbert
/// curve ("gilbert", after Jakub Červený's public-domain algorithm): every
/// cell once, each next to the one before when `w` and `h` are even.
pub fn gilbert(w: usize, h: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::with_capacity(w * h);
    let (w, h) = (w as i64, h as i64);
    if w >= h {
        gilbert_d2(&mut out, 0, 0, w, 0, 0, h);
    } else {
        gilbert_d2(&mut out, 0, 0, 0, h, w, 0);
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn gilbert_d2(out: &mut Vec<(usize, usize)>, x: i64, y: i64, ax: i64, ay: i64, bx: i64, by: i64) {
    let w = (ax + ay).abs();
    let h = (bx + by).abs();
    let (dax, day) = (ax.signum(), ay.signum());
    let (dbx, dby) = (bx.signum(), by.signum());
    let push = |out: &mut Vec<(usize, usize)>, x: i64, y: i64| out.push((x as usize, y as usize));
    if h == 1 {
        for i in 0..w {
            push(out, x + i * dax, y + i * day);
        }
        return;
    }
    if w == 1 {
        for i in 0..h {
            push(out, x + i * dbx, y + i * dby);
        }
        return;
    }
    let (mut ax2, mut ay2) = (ax.div_euclid(2), ay.div_euclid(2));
    let (mut bx2, mut by2) = (bx.div_euclid(2), by.div_euclid(2));
    let w2 = (ax2 + ay2).abs();
    let h2 = (bx2 + by2).abs();
    if 2 * w > 3 * h {
        if w2 % 2 != 0 && w > 2 {
            ax2 += dax;
            ay2 += day;
        }
        gilbert_d2(out, x, y, ax2, ay2, bx, by);
        gilbert_d2(out, x + ax2, y + ay2, ax - ax2, ay - ay2, bx, by);
    } else {
        if h2 % 2 != 0 && h > 2 {
            bx2 += dbx;
            by2 += dby;
        }
        gilbert_d2(out, x, y, bx2, by2, ax2, ay2);
        gilbert_d2(out, x + bx2, y + by2, ax, ay, bx - bx2, by - by2);
        gilbert_d2(
            out,
            x + (ax - dax) + (bx2 - dbx),
            y + (ay - day) + (by2 - dby),
            -bx2,
            -by2,
            -(ax - ax2),
            -(ay - ay2),
        );
    }
}

/// The organisation's boundaries as the GeoJSON file its `[geography]`
/// names (empty collection when it has none).
pub fn to_geojson(org: &OrgFile) -> Result<String, gridcase_engine::Error> {
    let mut reg = Registry::default();
    for e in org.hierarchy_events()? {
        reg.apply(&e);
    }
    let empty = Geography::default();
    Ok(gridcase_engine::geo::to_geojson(org.boundaries.as_ref().unwrap_or(&empty), &reg.units))
}

/// The organisation as TOML text, with a header telling users how to adapt it.
pub fn to_toml(org: &OrgFile) -> Result<String, toml::ser::Error> {
    let body = toml::to_string(org)?;
    Ok(format!(
        "# gridcase organisation file, generated by `gridcase org generate`.\n\
         # Copy it and describe your own district: streets hold communities, communities\n\
         # hold grids, grids list their micro-grids (buildings). Staff roles: resident,\n\
         # grid_worker, community_staff, street_staff, department_staff,\n\
         # district_supervisor, auditor. Deadline classes: emergency, utilities,\n\
         # ordinary, complex. Limits in [policy] are minutes. [geography] names the\n\
         # GeoJSON file of the micro-grids' boundaries (beside this file; check it with\n\
         # `gridcase org import-geojson`) and the bounding box [west, south, east, north].\n\n{body}"
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tinghu_has_the_seed_figures() {
        let org = tinghu();
        let communities: usize = org.streets.iter().map(|s| s.communities.len()).sum();
        let grids: usize =
            org.streets.iter().flat_map(|s| &s.communities).map(|c| c.grids.len()).sum();
        let micro: usize = org
            .streets
            .iter()
            .flat_map(|s| &s.communities)
            .flat_map(|c| &c.grids)
            .map(|g| g.micro_grids.len())
            .sum();
        assert_eq!((communities, grids, micro), (70, 427, 1976));
        assert_eq!(org.departments.len(), 12);
        assert_eq!(org.geography.as_ref().unwrap().boundaries, "tinghu.geojson");
        org.events().unwrap();
    }

    #[test]
    fn shipped_files_are_the_generator_output() {
        let shipped = include_str!("../../org/tinghu.toml");
        let shipped_geo = include_str!("../../org/tinghu.geojson");
        let org = tinghu();
        let regenerate = "regenerate with `gridcase org generate --shape tinghu --out org`";
        assert!(shipped == to_toml(&org).unwrap(), "org/tinghu.toml differs: {regenerate}");
        assert!(
            shipped_geo == to_geojson(&org).unwrap(),
            "org/tinghu.geojson differs: {regenerate}"
        );
        let mut parsed = OrgFile::parse(shipped).unwrap();
        parsed.attach_geojson(shipped_geo).unwrap();
        assert_eq!(parsed.events().unwrap(), org.events().unwrap());
    }

    #[test]
    fn the_curve_visits_every_cell_once_stepping_to_a_neighbour() {
        for (w, h) in [(52, 38), (178, 133), (7, 3), (4, 9), (1, 5)] {
            let cells = gilbert(w, h);
            assert_eq!(cells.len(), w * h);
            let mut seen = std::collections::HashSet::new();
            assert!(cells.iter().all(|c| c.0 < w && c.1 < h && seen.insert(*c)));
            if w % 2 == 0 && h % 2 == 0 {
                for pair in cells.windows(2) {
                    let d = pair[0].0.abs_diff(pair[1].0) + pair[0].1.abs_diff(pair[1].1);
                    assert_eq!(d, 1, "{w}x{h}: {:?} then {:?}", pair[0], pair[1]);
                }
            }
        }
    }

    #[test]
    fn generated_boundaries_cover_every_leaf_inside_the_box_near_the_centre() {
        for (org, centre) in [(tinghu(), TINGHU.centre)] {
            let geo = org.boundaries.as_ref().unwrap();
            assert_eq!(geo.boundaries.len(), 1976);
            let bounds = geo.bounds.unwrap();
            let (lat, lon) = (f64::from(centre.0) / 1e7, f64::from(centre.1) / 1e7);
            let [w, s, e, n] = bounds.to_wsen();
            assert!(w < lon && lon < e && s < lat && lat < n, "{:?}", bounds.to_wsen());
            // About 13 km by 9.5 km: a city district, not a continent.
            assert!((e - w) < 0.2 && (n - s) < 0.12, "{:?}", bounds.to_wsen());
            for b in geo.boundaries.values() {
                assert!(b.polygons().iter().flatten().flatten().all(|p| bounds.contains(*p)));
            }
        }
    }
}
