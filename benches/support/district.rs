//! The test district shared by `benches/projections.rs` and
//! `benches/projection_apply.rs`: a deterministic random source, an
//! organisation the size of Tinghu (10 streets, 70 communities, 427 grids,
//! 1,976 micro-grids, 30 departments, 24 categories) and the steps that
//! case lifecycles are planned from.
//!
//! It owns what the two benches must agree on for their figures to describe
//! the same district: the unit codes, the staff ids (`gw<grid>`,
//! `cs<community>`, `ss<street>`, `ds<department>`, `sup`), how a submission
//! is drawn and what each step (assign, escalate, dispatch, claim, resolve,
//! callback, close) writes. Each bench keeps its own case mix: which steps a
//! case takes and with what odds.
//!
//! `benches/projections.rs` keeps the log it generates and reuses it on the
//! next run: a change here that alters what is drawn, or in which order,
//! changes that log, so it must come with a new cache name there.

use gridcase_engine::domain::{
    Channel, Contact, DeadlineClass, DeadlinePolicy, Event, HopReason, Level, Limits, Priority,
    RequestKind, Satisfaction,
};
use gridcase_engine::org::{
    CategorySpec, CommunitySpec, DistrictSpec, GridSpec, OrgFile, Role, StaffSpec, StreetSpec,
    UnitSpec,
};
use gridcase_engine::time::{Timestamp, DAY_MS};

/// A minute in milliseconds: plans are drawn in whole minutes.
pub const MINUTE: i64 = 60_000;
/// Mean submissions a day.
pub const CASES_PER_DAY: i64 = 4_000;
/// 2025-01-01 00:00 UTC: the first submission (the registry is recorded a
/// day earlier).
pub const START: i64 = 1_735_689_600_000;
/// The district's unit code.
const DISTRICT: &str = "320902";

/// A xorshift generator: deterministic, so every run of a bench generates
/// the same events.
pub struct Rng(u64);

impl Rng {
    /// The generator at the seed both benches have always used.
    pub fn new() -> Rng {
        Rng(0x9e37_79b9_7f4a_7c15)
    }
    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// A number in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    /// A duration of `lo..hi` minutes, in milliseconds.
    pub fn minutes(&mut self, lo: i64, hi: i64) -> i64 {
        (lo + (self.next() % (hi - lo).max(1) as u64) as i64) * MINUTE
    }
}

/// The submission after one at `t`: gaps vary around the daily mean, so
/// cases do not arrive in lockstep.
pub fn next_arrival(t: i64, rng: &mut Rng) -> i64 {
    let gap = DAY_MS / CASES_PER_DAY;
    t + gap / 2 + rng.below(gap as usize) as i64
}

/// The id of the `seq`th case.
pub fn case_id(seq: u64) -> String {
    format!("GC{seq:09}")
}

/// The stream of the `seq`th case.
pub fn case_stream(seq: u64) -> String {
    format!("case-{}", case_id(seq))
}

/// The staff id of a department's clerk (`D07` → `ds7`).
pub fn department_staff(code: &str) -> String {
    format!("ds{}", code[1..].trim_start_matches('0'))
}

/// Where a case can be submitted, with the staff ids that work it.
pub struct Grid {
    /// The grid's unit code.
    pub code: String,
    /// Its community's unit code.
    pub community: String,
    /// Its street's unit code.
    pub street: String,
    /// Its micro-grids' unit codes.
    pub micro_grids: Vec<String>,
    /// Its grid worker.
    pub worker: String,
    /// Its community's staff member.
    pub community_staff: String,
    /// Its street's staff member.
    pub street_staff: String,
}

/// The organisation file and what case planning needs from it.
pub struct Org {
    /// The file whose events open the log.
    pub file: OrgFile,
    /// Every grid, in unit order.
    pub grids: Vec<Grid>,
    /// The departments' unit codes.
    pub departments: Vec<String>,
    /// (category code, its department, its deadline class).
    pub categories: Vec<(String, String, DeadlineClass)>,
}

impl Org {
    /// A grid to submit a case in, all grids alike.
    pub fn pick_grid(&self, rng: &mut Rng) -> &Grid {
        &self.grids[rng.below(self.grids.len())]
    }
}

/// A district the size of Tinghu: 10 streets, 70 communities, 427 grids,
/// 1,976 micro-grids, 30 departments, 24 categories.
///
/// The staff are listed, and named, as `benches/projections.rs` first did
/// it: the registry is the head of that bench's kept log.
pub fn tinghu() -> Org {
    let (streets_n, communities_n, grids_n, micro_n) = (10, 70, 427, 1976);
    let mut staff = Vec::new();
    let mut person = |id: String, name: String, role: Role, unit: &str| {
        staff.push(StaffSpec { id, name, role, unit: unit.to_string() });
    };
    let (mut streets, mut grids) = (Vec::new(), Vec::new());
    let (mut grid_no, mut micro_no) = (0, 0);
    for s in 0..streets_n {
        let s_code = format!("{DISTRICT}{:03}", s + 1);
        let mut communities = Vec::new();
        // Units are spread evenly: community c gets the grids up to its
        // share of the total, grid g the micro-grids up to its share.
        for c in (s * communities_n / streets_n)..((s + 1) * communities_n / streets_n) {
            let c_code = format!("{s_code}{:03}", c + 1);
            let mut specs = Vec::new();
            while grid_no < (c + 1) * grids_n / communities_n {
                let g_code = format!("{c_code}{:03}", grid_no + 1);
                let micro_end = (grid_no + 1) * micro_n / grids_n;
                let names: Vec<String> =
                    (micro_no..micro_end).map(|m| format!("{}号楼", m + 1)).collect();
                micro_no = micro_end;
                let worker = format!("gw{}", grid_no + 1);
                person(worker.clone(), format!("网格员{}", grid_no + 1), Role::GridWorker, &g_code);
                grids.push(Grid {
                    code: g_code.clone(),
                    community: c_code.clone(),
                    street: s_code.clone(),
                    // The registry names micro-grids `<grid><nn>`.
                    micro_grids: (1..=names.len()).map(|i| format!("{g_code}{i:02}")).collect(),
                    worker,
                    community_staff: format!("cs{}", c + 1),
                    street_staff: format!("ss{}", s + 1),
                });
                specs.push(GridSpec {
                    code: g_code,
                    name: format!("第{}网格", grid_no + 1),
                    address: None,
                    micro_grids: names,
                });
                grid_no += 1;
            }
            let name = format!("社区工作者{}", c + 1);
            person(format!("cs{}", c + 1), name, Role::CommunityStaff, &c_code);
            communities.push(CommunitySpec {
                code: c_code,
                name: format!("社区{}", c + 1),
                grids: specs,
            });
        }
        person(format!("ss{}", s + 1), format!("街道干部{}", s + 1), Role::StreetStaff, &s_code);
        streets.push(StreetSpec { code: s_code, name: format!("街道{}", s + 1), communities });
    }
    let departments: Vec<String> = (1..=30).map(|d| format!("D{d:02}")).collect();
    for (i, d) in departments.iter().enumerate() {
        person(department_staff(d), format!("部门员{}", i + 1), Role::DepartmentStaff, d);
    }
    person("sup".into(), "区督办".into(), Role::DistrictSupervisor, DISTRICT);
    let classes = [
        DeadlineClass::Ordinary,
        DeadlineClass::Ordinary,
        DeadlineClass::Utilities,
        DeadlineClass::Complex,
    ];
    let categories: Vec<(String, String, DeadlineClass)> = (0..24)
        .map(|i| (format!("cat{i:02}"), departments[i % departments.len()].clone(), classes[i % 4]))
        .collect();
    let file = OrgFile {
        district: DistrictSpec { code: DISTRICT.into(), name: "亭湖区".into(), time_zone: None },
        geography: None,
        streets,
        departments: departments
            .iter()
            .enumerate()
            .map(|(i, d)| UnitSpec { code: d.clone(), name: format!("部门{}", i + 1) })
            .collect(),
        categories: categories
            .iter()
            .map(|(c, d, class)| CategorySpec {
                code: c.clone(),
                name: format!("类别{c}"),
                department: d.clone(),
                class: *class,
            })
            .collect(),
        staff,
        policy: DeadlinePolicy::default(),
        boundaries: None,
    };
    Org { file, grids, departments, categories }
}

/// Minutes of a limit, in milliseconds.
fn ms(minutes: u32) -> i64 {
    i64::from(minutes) * MINUTE
}

/// One case's life while it is planned: the events so far, in the order the
/// steps were taken, and where the case stands. A bench chooses the steps;
/// each step starts at `t` and moves it on.
pub struct Plan<'a> {
    /// The grid it was submitted in: its staff work the case.
    pub grid: &'a Grid,
    /// Its category's department: where the street dispatches it.
    department: &'a str,
    /// Its limits under the default policy.
    pub limits: Limits,
    /// The submission time.
    pub t0: i64,
    /// The time of the latest step.
    pub t: i64,
    /// When resolution is due (an extension moves it).
    pub due: i64,
    /// The level of the units holding it.
    pub level: Level,
    /// The units holding it: those that resolve it.
    pub holders: Vec<String>,
    /// (time, actor, event), in the order they were planned.
    pub events: Vec<(i64, String, Event)>,
}

impl<'a> Plan<'a> {
    /// The `seq`th case, submitted in `grid` at `t0` (by its grid worker on
    /// patrol or by a resident), with deadlines from the default policy.
    /// The grid is the caller's draw because `benches/projections.rs` draws
    /// once more between it and the rest, to keep writing the same log.
    pub fn submit(seq: u64, t0: i64, org: &'a Org, grid: &'a Grid, rng: &mut Rng) -> Plan<'a> {
        let (category, department, class) = &org.categories[rng.below(org.categories.len())];
        let priority = match rng.below(100) {
            0..=1 => Priority::Emergency,
            2..=9 => Priority::Urgent,
            _ => Priority::Normal,
        };
        let kind = [
            RequestKind::Complaint,
            RequestKind::Help,
            RequestKind::Report,
            RequestKind::Consultation,
            RequestKind::Suggestion,
        ][rng.below(5)];
        let limits = DeadlinePolicy::default().limits(kind, *class, priority);
        let micro_grid = (!grid.micro_grids.is_empty())
            .then(|| grid.micro_grids[rng.below(grid.micro_grids.len())].clone());
        let patrol = rng.chance(30);
        let submitter =
            if patrol { grid.worker.clone() } else { format!("resident:r{}", rng.below(500_000)) };
        let due = t0 + ms(limits.resolution_minutes);
        let submitted = Event::CaseSubmitted {
            case_id: case_id(seq),
            channel: if patrol {
                Channel::GridPatrol
            } else {
                [Channel::App, Channel::Hotline, Channel::Portal][rng.below(3)]
            },
            kind,
            category: category.clone(),
            priority,
            description: "小区门口路灯不亮已经三天了，晚上出行很不方便，请尽快处理".into(),
            location: micro_grid.clone().unwrap_or_else(|| grid.code.clone()),
            grid: grid.code.clone(),
            micro_grid,
            community: grid.community.clone(),
            street: grid.street.clone(),
            contact: (!patrol && rng.chance(60))
                .then(|| Contact { name: "王女士".into(), phone: "13800000000".into() }),
            found_on_patrol: patrol,
            response_due: Timestamp(t0 + ms(limits.response_minutes)),
            resolution_due: Timestamp(due),
            hold_until: Timestamp(t0 + ms(limits.community_minutes)),
        };
        Plan {
            grid,
            department,
            limits,
            t0,
            t: t0,
            due,
            level: Level::Community,
            holders: vec![grid.community.clone()],
            events: vec![(t0, submitter, submitted)],
        }
    }

    /// Adds an event.
    pub fn push(&mut self, at: i64, actor: impl Into<String>, event: Event) {
        self.events.push((at, actor.into(), event));
    }

    /// Draws how far up the case goes, 0 to 99, and takes it to the street
    /// from 60 on; the community assigns it first when it keeps it, and
    /// half the time when it passes it up. Returns the draw: a bench
    /// dispatches its own share of the escalated cases.
    pub fn route(&mut self, rng: &mut Rng) -> usize {
        let route = rng.below(100);
        if route < 60 || rng.chance(50) {
            self.assign(rng);
        }
        if route >= 60 {
            self.escalate(rng);
        }
        route
    }

    /// The community assigns the case to the grid worker.
    pub fn assign(&mut self, rng: &mut Rng) {
        self.t += rng.minutes(5, 180);
        let worker = self.grid.worker.clone();
        self.push(self.t, self.grid.community_staff.clone(), Event::CaseAssigned { worker });
    }

    /// The case goes up to the street: by the community, or by the system
    /// when the community's hold runs out (three times in ten).
    pub fn escalate(&mut self, rng: &mut Rng) {
        let by_deadline = rng.chance(30);
        // A hold can run out before an assignment drawn above (an
        // emergency's is 30 minutes): `close` puts the plan in time order.
        self.t = if by_deadline {
            self.t0 + ms(self.limits.community_minutes)
        } else {
            self.t + rng.minutes(30, 600)
        };
        let grid = self.grid;
        self.push(
            self.t,
            if by_deadline { "system".into() } else { grid.community_staff.clone() },
            Event::CaseEscalated {
                from: grid.community.clone(),
                to: grid.street.clone(),
                reason: if by_deadline { HopReason::Deadline } else { HopReason::Manual },
                note: String::new(),
                hold_until: Timestamp(self.t + ms(self.limits.street_minutes)),
            },
        );
        self.level = Level::Street;
        self.holders = vec![grid.street.clone()];
    }

    /// The street dispatches the case to its category's department, one
    /// time in ten jointly with another one (when the draw differs).
    /// Returns whether a joint dispatch was drawn.
    pub fn dispatch(&mut self, org: &Org, rng: &mut Rng) -> bool {
        let joint = rng.chance(10);
        let mut departments = vec![self.department.to_string()];
        if joint {
            let other = &org.departments[rng.below(org.departments.len())];
            if *other != departments[0] {
                departments.push(other.clone());
            }
        }
        self.t += rng.minutes(30, 900);
        self.dispatch_to(departments, HopReason::Manual);
        joint
    }

    /// The street dispatches the case now to `departments`, the first
    /// leading.
    pub fn dispatch_to(&mut self, departments: Vec<String>, reason: HopReason) {
        let street = self.grid.street.clone();
        self.push(
            self.t,
            self.grid.street_staff.clone(),
            Event::CaseDispatched {
                from: street,
                departments: departments.clone(),
                lead: departments[0].clone(),
                reason,
                note: String::new(),
                claim_due: Timestamp(self.t + ms(self.limits.claim_minutes)),
            },
        );
        self.level = Level::Department;
        self.holders = departments;
    }

    /// Each department holding the case claims it, one after the other.
    pub fn claim(&mut self, rng: &mut Rng) {
        for department in self.holders.clone() {
            self.t += rng.minutes(10, 600);
            self.push(self.t, department_staff(&department), Event::CaseClaimed { department });
        }
    }

    /// How long a holder that resolves in time works on the case: half an
    /// hour to half the resolution limit.
    pub fn working_time(&self, rng: &mut Rng) -> i64 {
        rng.minutes(30, (i64::from(self.limits.resolution_minutes) / 2).max(31))
    }

    /// Every holder resolves its part, a minute apart, starting now; the
    /// last one's resolution completes the case.
    pub fn resolve(&mut self, note: &str) {
        let n = self.holders.len();
        for (i, unit) in self.holders.clone().into_iter().enumerate() {
            let actor = match self.level {
                Level::Community => self.grid.community_staff.clone(),
                Level::Street => self.grid.street_staff.clone(),
                Level::Department => department_staff(&unit),
            };
            let complete = i + 1 == n;
            self.push(self.t, actor, Event::CaseResolved { unit, note: note.into(), complete });
            self.t += MINUTE;
        }
    }

    /// The community calls the submitter back: unsatisfied (and not
    /// solved) six times in a hundred. Returns whether it was solved.
    pub fn callback(&mut self, rng: &mut Rng) -> bool {
        self.t += rng.minutes(60, 24 * 60);
        let unhappy = rng.chance(6);
        let satisfaction = if unhappy {
            Satisfaction::Unsatisfied
        } else if rng.chance(80) {
            Satisfaction::Satisfied
        } else {
            Satisfaction::BasicallySatisfied
        };
        self.push(
            self.t,
            self.grid.community_staff.clone(),
            Event::CallbackRecorded { satisfaction, solved: !unhappy, note: String::new() },
        );
        !unhappy
    }

    /// The community closes the case; the whole plan, in time order.
    pub fn close(mut self, rng: &mut Rng) -> Vec<(i64, String, Event)> {
        let at = self.t + rng.minutes(10, 240);
        self.push(at, self.grid.community_staff.clone(), Event::CaseClosed { note: String::new() });
        // Stable, so events at the same time (an extension or overdue mark
        // can tie with the next step) keep the order they were planned in.
        self.events.sort_by_key(|(t, _, _)| *t);
        self.events
    }
}
