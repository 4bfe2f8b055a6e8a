//! Generated organisations: the Tinghu-sized district the demo ships with,
//! and city-scale shapes (Chengdu: 118 streets, thousands of communities)
//! for the throughput benchmark.
//!
//! The generator is deterministic: the same shape always yields the same
//! file, so `org/tinghu.toml` in the repository is exactly `tinghu()`.

use gridcase_engine::domain::DeadlineClass;
use gridcase_engine::org::{
    CategorySpec, CommunitySpec, DistrictSpec, GridSpec, OrgFile, Role, StaffSpec, StreetSpec,
    UnitSpec,
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
}

/// Tinghu district (`000` in the seeds): 70 communities, 427 grids, 1,976
/// micro-grids, over 9 streets.
pub const TINGHU: Shape = Shape { streets: 9, communities: 70, grids: 427, micro_grids: 1976 };

/// A city at Chengdu's scale (`001`): 118 streets with 25 communities each,
/// 4 grids per community, 2 micro-grids per grid (about 57,000 registry
/// events: one atomic append).
pub const CHENGDU: Shape =
    Shape { streets: 118, communities: 2950, grids: 11_800, micro_grids: 23_600 };

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
    OrgFile {
        district: DistrictSpec {
            code: admin.to_string(),
            name: name.to_string(),
            time_zone: Some("Asia/Shanghai".to_string()),
        },
        streets,
        departments,
        categories,
        staff,
        policy: Default::default(),
    }
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
         # ordinary, complex. Limits in [policy] are minutes.\n\n{body}"
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
        org.events().unwrap();
    }

    #[test]
    fn shipped_file_is_the_generator_output() {
        let shipped = include_str!("../../org/tinghu.toml");
        assert_eq!(
            shipped,
            to_toml(&tinghu()).unwrap(),
            "regenerate with `gridcase org generate > org/tinghu.toml`"
        );
        let parsed = OrgFile::parse(shipped).unwrap();
        assert_eq!(parsed.events().unwrap(), tinghu().events().unwrap());
    }
}
