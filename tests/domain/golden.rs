//! Golden bytes of every `Event` variant: the stored type name and the
//! postcard payload of one example of each are pinned here, so that any
//! change that would make old logs unreadable (a reordered or removed
//! variant, a changed field, a renamed type) fails a test. Also: `decode`
//! round-trips every example, and refuses a newer schema version, an unknown
//! codec, a payload under the wrong type name and truncated bytes.
//!
//! If a test here fails, do not re-pin the bytes: add a new variant (or a new
//! schema version with an upgrade path) instead.

use gridcase::engine::domain::event::{OverdueKind, SCHEMA_VERSION};
use gridcase::engine::domain::{
    Channel, Contact, DeadlineClass, DeadlinePolicy, Event, HopReason, Level, Limits,
    LocationSource, MediaRef, Priority, Reporter, RequestKind, Satisfaction,
};
use gridcase::engine::geo::{Boundary, BoundingBox, GeoPoint};
use gridcase::engine::log::CODEC_POSTCARD;
use gridcase::engine::org::{Role, UnitKind};
use gridcase::engine::time::Timestamp;

/// 2026-03-02T08:00:00Z, and a week later.
const T: Timestamp = Timestamp(1_772_438_400_000);
const T7: Timestamp = Timestamp(1_772_438_400_000 + 7 * 86_400_000);

/// One example of every variant, in declaration order, with its pinned
/// type name and payload hex.
fn examples() -> Vec<(Event, &'static str, &'static str)> {
    vec![
        (
            Event::UnitAdded {
                code: "320902001001001".into(),
                name: "第一网格".into(),
                kind: UnitKind::Grid,
                parent: Some("320902001001".into()),
                address: Some("新村社区第一网格".into()),
            },
            "UnitAdded",
            "000f3332303930323030313030313030310ce7acace4b880e7bd91e6a0bc03010c3332303930323030313030310118e696b0e69d91e7a4bee58cbae7acace4b880e7bd91e6a0bc",
        ),
        (Event::UnitRenamed { code: "320902001".into(), name: "文峰街道".into() }, "UnitRenamed", "01093332303930323030310ce69687e5b3b0e8a197e98193"),
        (Event::UnitMoved { code: "320902001001002".into(), parent: "320902001002".into() }, "UnitMoved", "020f3332303930323030313030313030320c333230393032303031303032"),
        (Event::UnitRetired { code: "320902001003".into() }, "UnitRetired", "030c333230393032303031303033"),
        (
            Event::StaffAdded { id: "gw111".into(), name: "张伟".into(), role: Role::GridWorker, unit: "320902001001001".into() },
            "StaffAdded",
            "0405677731313106e5bca0e4bc9f010f333230393032303031303031303031",
        ),
        (Event::StaffRetired { id: "gw111".into() }, "StaffRetired", "05056777313131"),
        (
            Event::CategoryDefined {
                code: "street_light".into(),
                name: "路灯不亮".into(),
                department: "D01".into(),
                class: DeadlineClass::Ordinary,
            },
            "CategoryDefined",
            "060c7374726565745f6c696768740ce8b7afe781afe4b88de4baae0344303102",
        ),
        (
            Event::PolicySet {
                policy: DeadlinePolicy {
                    emergency: Limits { resolution_minutes: 120, response_minutes: 30, community_minutes: 30, street_minutes: 30, claim_minutes: 30 },
                    utilities: Limits { resolution_minutes: 1440, response_minutes: 120, community_minutes: 360, street_minutes: 240, claim_minutes: 240 },
                    ordinary: Limits { resolution_minutes: 10080, response_minutes: 1440, community_minutes: 2880, street_minutes: 1440, claim_minutes: 1440 },
                    complex: Limits { resolution_minutes: 21600, response_minutes: 1440, community_minutes: 5760, street_minutes: 2880, claim_minutes: 2880 },
                    consultation_cap_minutes: 4320,
                    near_due_percent: 80,
                    reopen_window_days: 30,
                },
            },
            "PolicySet",
            "07781e1e1e1ea00b78e802f001f001e04ea00bc016a00ba00be0a801a00b802dc016c016e021501e",
        ),
        (
            Event::CaseSubmitted {
                case_id: "GC0000001".into(),
                channel: Channel::App,
                kind: RequestKind::Complaint,
                category: "street_light".into(),
                priority: Priority::Urgent,
                description: "路灯不亮".into(),
                location: "新村社区第一网格2号楼".into(),
                grid: "320902001001001".into(),
                micro_grid: Some("32090200100100102".into()),
                community: "320902001001".into(),
                street: "320902001".into(),
                contact: Some(Contact { name: "李女士".into(), phone: "13800000001".into() }),
                found_on_patrol: false,
                response_due: T.plus_ms(86_400_000),
                resolution_due: T7,
                hold_until: T.plus_ms(2 * 86_400_000),
            },
            "CaseSubmitted",
            "080947433030303030303103020c7374726565745f6c69676874010ce8b7afe781afe4b88de4baae1fe696b0e69d91e7a4bee58cbae7acace4b880e7bd91e6a0bc32e58fb7e6a5bc0f333230393032303031303031303031011133323039303230303130303130303130320c333230393032303031303031093332303930323030310109e69d8ee5a5b3e5a3ab0b31333830303030303030310080a0b0ab966780c0e1999a678090e3fd9667",
        ),
        (Event::CaseAssigned { worker: "gw111".into() }, "CaseAssigned", "09056777313131"),
        (Event::CaseRejected { reason: "非本辖区事项".into() }, "CaseRejected", "0a12e99d9ee69cace8be96e58cbae4ba8be9a1b9"),
        (Event::CaseMerged { into: "GC0000002".into() }, "CaseMerged", "0b09474330303030303032"),
        (Event::CaseWithdrawn { reason: "已自行解决".into() }, "CaseWithdrawn", "0c0fe5b7b2e887aae8a18ce8a7a3e586b3"),
        (
            Event::CaseEscalated {
                from: "320902001001".into(),
                to: "320902001".into(),
                reason: HopReason::Deadline,
                note: "社区时限已到".into(),
                hold_until: T.plus_ms(3 * 86_400_000),
            },
            "CaseEscalated",
            "0d0c333230393032303031303031093332303930323030310112e7a4bee58cbae697b6e99990e5b7b2e588b0808096d09767",
        ),
        (
            Event::CaseDispatched {
                from: "320902001".into(),
                departments: vec!["D04".into(), "D01".into()],
                lead: "D04".into(),
                reason: HopReason::Return,
                note: "生态环境局牵头".into(),
                claim_due: T.plus_ms(4 * 86_400_000),
            },
            "CaseDispatched",
            "0e09333230393032303031020344303403443031034430340215e7949fe68081e78eafe5a283e5b180e789b5e5a4b480f0c8a29867",
        ),
        (Event::CaseClaimed { department: "D04".into() }, "CaseClaimed", "0f03443034"),
        (
            Event::CaseReturned { department: "D02".into(), reason: "不属于公安职责".into(), street_hold_until: Some(T.plus_ms(3_600_000)) },
            "CaseReturned",
            "100344303215e4b88de5b19ee4ba8ee585ace5ae89e8818ce8b4a30180eab4dc9567",
        ),
        (
            Event::ExtensionRequested { unit: "D04".into(), until: T.plus_ms(10 * 86_400_000), reason: "等待检测报告".into() },
            "ExtensionRequested",
            "11034430348090fa909c6712e7ad89e5be85e6a380e6b58be68aa5e5918a",
        ),
        (Event::ExtensionApproved { by: "320902".into(), resolution_due: T.plus_ms(10 * 86_400_000) }, "ExtensionApproved", "12063332303930328090fa909c67"),
        (Event::ExtensionRefused { by: "320902001".into(), reason: "不符合延期条件".into() }, "ExtensionRefused", "130933323039303230303115e4b88de7aca6e59088e5bbb6e69c9fe69da1e4bbb6"),
        (Event::CaseSupervised { by: "320902".into(), note: "请今日内办结".into() }, "CaseSupervised", "140633323039303212e8afb7e4bb8ae697a5e58685e58a9ee7bb93"),
        (Event::CaseOverdue { what: OverdueKind::Claim { department: "D01".into() }, due: T7 }, "CaseOverdue", "15010344303180c0e1999a67"),
        (Event::CaseResolved { unit: "D04".into(), note: "已责令整改".into(), complete: true }, "CaseResolved", "16034430340fe5b7b2e8b4a3e4bba4e695b4e694b901"),
        (
            Event::CallbackRecorded { satisfaction: Satisfaction::Unsatisfied, solved: false, note: "仍有异味".into() },
            "CallbackRecorded",
            "1702000ce4bb8de69c89e5bc82e591b3",
        ),
        (
            Event::CaseReopened {
                reason: "居民不满意".into(),
                level: Level::Department,
                holders: vec!["D04".into(), "D01".into()],
                resolution_due: T.plus_ms(15 * 86_400_000),
                hold_until: None,
            },
            "CaseReopened",
            "180fe5b185e6b091e4b88de6bba1e6848f0202034430340344303180c0f8ac9f6700",
        ),
        (Event::CaseClosed { note: "办结".into() }, "CaseClosed", "1906e58a9ee7bb93"),
        (
            Event::ZoneSet { time_zone: "Asia/Shanghai".into() },
            "ZoneSet",
            "1a0d417369612f5368616e67686169",
        ),
        (
            Event::SubmissionDetailed {
                located_by: LocationSource::Point,
                point: Some(GeoPoint::new(33.3912345, 120.1654321).unwrap()),
                media: vec![MediaRef {
                    sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
                    content_type: "image/jpeg".into(),
                    size: 204_800,
                    url: None,
                }],
                reporter: Some(Reporter {
                    device_id: Some("dev-1".into()),
                    account_id: None,
                    email: Some("li@example.cn".into()),
                    first_name: Some("娜".into()),
                    last_name: Some("李".into()),
                }),
            },
            "SubmissionDetailed",
            "1b0101b2e4b8be02e2a8fef9080140396638366430383138383463376436353961326665616130633535616430313561336266346631623262306238323263643135643663313562306630306130380a696d6167652f6a70656780c00c000101056465762d3100010d6c69406578616d706c652e636e0103e5a89c0103e69d8e",
        ),
        (
            Event::BoundarySet {
                code: "32090200100100101".into(),
                boundary: Boundary::new(&[vec![vec![
                    GeoPoint::new(33.3470034, 120.0899425).unwrap(),
                    GeoPoint::new(33.346874, 120.0929482).unwrap(),
                    GeoPoint::new(33.3492491, 120.0930168).unwrap(),
                    GeoPoint::new(33.3494439, 120.0900627).unwrap(),
                ]]])
                .unwrap(),
            },
            "BoundarySet",
            "1c113332303930323030313030313030313031010108a4e582be02c295a2f9089b14d2d5038ef302dc0ab81ec9cd03",
        ),
        (
            Event::BoundsSet {
                bounds: BoundingBox::from_wsen([120.0896, 33.3467, 120.2304, 33.4333]).unwrap(),
            },
            "BoundsSet",
            "1df0b582be0280e0a1f9089091ecbe0280d0cdfa08",
        ),
        (
            Event::PersonalDataRead {
                reader: "cs11".into(),
                case_id: "GC0000001".into(),
                fields: vec!["contact".into()],
                surface: "api".into(),
            },
            "PersonalDataRead",
            "1e0463733131094743303030303030310107636f6e7461637403617069",
        ),
    ]
}

/// Variants of the enums nested in events, pinned one by one (an event
/// above only pins the value it happens to carry).
fn nested_examples() -> Vec<(Event, &'static str)> {
    let mut v = Vec::new();
    for kind in [
        UnitKind::District,
        UnitKind::Street,
        UnitKind::Community,
        UnitKind::Grid,
        UnitKind::MicroGrid,
        UnitKind::Department,
    ] {
        v.push(Event::UnitAdded {
            code: "c".into(),
            name: "n".into(),
            kind,
            parent: None,
            address: None,
        });
    }
    for role in [
        Role::Resident,
        Role::GridWorker,
        Role::CommunityStaff,
        Role::StreetStaff,
        Role::DepartmentStaff,
        Role::DistrictSupervisor,
        Role::Auditor,
    ] {
        v.push(Event::StaffAdded { id: "i".into(), name: "n".into(), role, unit: "u".into() });
    }
    for class in [
        DeadlineClass::Emergency,
        DeadlineClass::Utilities,
        DeadlineClass::Ordinary,
        DeadlineClass::Complex,
    ] {
        v.push(Event::CategoryDefined {
            code: "c".into(),
            name: "n".into(),
            department: "d".into(),
            class,
        });
    }
    for reason in [HopReason::Manual, HopReason::Deadline, HopReason::Return, HopReason::Reopen] {
        v.push(Event::CaseEscalated {
            from: "f".into(),
            to: "t".into(),
            reason,
            note: String::new(),
            hold_until: Timestamp(0),
        });
    }
    for level in [Level::Community, Level::Street, Level::Department] {
        v.push(Event::CaseReopened {
            reason: "r".into(),
            level,
            holders: vec![],
            resolution_due: Timestamp(-1),
            hold_until: Some(Timestamp(i64::MAX)),
        });
    }
    for satisfaction in
        [Satisfaction::Satisfied, Satisfaction::BasicallySatisfied, Satisfaction::Unsatisfied]
    {
        v.push(Event::CallbackRecorded { satisfaction, solved: true, note: String::new() });
    }
    v.push(Event::CaseOverdue { what: OverdueKind::Resolution, due: Timestamp(1) });
    for located_by in [LocationSource::Code, LocationSource::Point, LocationSource::Address] {
        v.push(Event::SubmissionDetailed {
            located_by,
            point: None,
            media: vec![],
            reporter: None,
        });
    }
    let mut submitted = |channel, kind, priority| {
        v.push(Event::CaseSubmitted {
            case_id: "x".into(),
            channel,
            kind,
            category: "c".into(),
            priority,
            description: "d".into(),
            location: "l".into(),
            grid: "g".into(),
            micro_grid: None,
            community: "c".into(),
            street: "s".into(),
            contact: None,
            found_on_patrol: true,
            response_due: Timestamp(0),
            resolution_due: Timestamp(0),
            hold_until: Timestamp(0),
        })
    };
    for channel in [Channel::Portal, Channel::Hotline, Channel::GridPatrol, Channel::App] {
        submitted(channel, RequestKind::Help, Priority::Normal);
    }
    for kind in [
        RequestKind::Consultation,
        RequestKind::Help,
        RequestKind::Complaint,
        RequestKind::Report,
        RequestKind::Suggestion,
    ] {
        submitted(Channel::Portal, kind, Priority::Normal);
    }
    for priority in [Priority::Normal, Priority::Urgent, Priority::Emergency] {
        submitted(Channel::Portal, RequestKind::Help, priority);
    }
    let pinned = [
        "000163016e000000",
        "000163016e010000",
        "000163016e020000",
        "000163016e030000",
        "000163016e040000",
        "000163016e050000",
        "040169016e000175",
        "040169016e010175",
        "040169016e020175",
        "040169016e030175",
        "040169016e040175",
        "040169016e050175",
        "040169016e060175",
        "060163016e016400",
        "060163016e016401",
        "060163016e016402",
        "060163016e016403",
        "0d01660174000000",
        "0d01660174010000",
        "0d01660174020000",
        "0d01660174030000",
        "18017200000101feffffffffffffffff01",
        "18017201000101feffffffffffffffff01",
        "18017202000101feffffffffffffffff01",
        "17000100",
        "17010100",
        "17020100",
        "150002",
        "1b00000000",
        "1b01000000",
        "1b02000000",
        "08017800010163000164016c016700016301730001000000",
        "08017801010163000164016c016700016301730001000000",
        "08017802010163000164016c016700016301730001000000",
        "08017803010163000164016c016700016301730001000000",
        "08017800000163000164016c016700016301730001000000",
        "08017800010163000164016c016700016301730001000000",
        "08017800020163000164016c016700016301730001000000",
        "08017800030163000164016c016700016301730001000000",
        "08017800040163000164016c016700016301730001000000",
        "08017800010163000164016c016700016301730001000000",
        "08017800010163010164016c016700016301730001000000",
        "08017800010163020164016c016700016301730001000000",
    ];
    assert_eq!(v.len(), pinned.len());
    v.into_iter().zip(pinned).collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The declaration index of a variant. Exhaustive on purpose: a new variant
/// does not compile here until it gets a golden example above.
fn variant_index(e: &Event) -> u8 {
    match e {
        Event::UnitAdded { .. } => 0,
        Event::UnitRenamed { .. } => 1,
        Event::UnitMoved { .. } => 2,
        Event::UnitRetired { .. } => 3,
        Event::StaffAdded { .. } => 4,
        Event::StaffRetired { .. } => 5,
        Event::CategoryDefined { .. } => 6,
        Event::PolicySet { .. } => 7,
        Event::CaseSubmitted { .. } => 8,
        Event::CaseAssigned { .. } => 9,
        Event::CaseRejected { .. } => 10,
        Event::CaseMerged { .. } => 11,
        Event::CaseWithdrawn { .. } => 12,
        Event::CaseEscalated { .. } => 13,
        Event::CaseDispatched { .. } => 14,
        Event::CaseClaimed { .. } => 15,
        Event::CaseReturned { .. } => 16,
        Event::ExtensionRequested { .. } => 17,
        Event::ExtensionApproved { .. } => 18,
        Event::ExtensionRefused { .. } => 19,
        Event::CaseSupervised { .. } => 20,
        Event::CaseOverdue { .. } => 21,
        Event::CaseResolved { .. } => 22,
        Event::CallbackRecorded { .. } => 23,
        Event::CaseReopened { .. } => 24,
        Event::CaseClosed { .. } => 25,
        Event::ZoneSet { .. } => 26,
        Event::SubmissionDetailed { .. } => 27,
        Event::BoundarySet { .. } => 28,
        Event::BoundsSet { .. } => 29,
        Event::PersonalDataRead { .. } => 30,
    }
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

#[test]
fn the_examples_cover_every_variant_in_declaration_order() {
    let ex = examples();
    assert_eq!(ex.len(), 31);
    for (i, (e, name, payload)) in ex.iter().enumerate() {
        assert_eq!(variant_index(e) as usize, i, "{name} is out of order");
        assert_eq!(e.event_type(), *name);
        // postcard writes the variant index first (a one-byte varint here).
        assert_eq!(unhex(payload)[0] as usize, i, "{name}");
    }
    assert_eq!(SCHEMA_VERSION, 1, "a new schema version needs new golden examples");
    assert_eq!(CODEC_POSTCARD, gridcase::engine::log::CODEC_POSTCARD);
}

#[test]
fn every_variant_encodes_to_its_pinned_type_name_and_bytes() {
    let mut changed = Vec::new();
    for (e, name, payload) in examples() {
        let d = e.to_data();
        assert_eq!((d.schema_version, d.payload_codec), (SCHEMA_VERSION, CODEC_POSTCARD), "{name}");
        if d.event_type != name || hex(&d.payload) != payload {
            changed.push(format!("{name}: now {} {}", d.event_type, hex(&d.payload)));
        }
    }
    for (e, payload) in nested_examples() {
        if hex(&e.to_data().payload) != payload {
            changed.push(format!("{e:?}: was {payload}, now {}", hex(&e.to_data().payload)));
        }
    }
    assert!(
        changed.is_empty(),
        "the stored form of events changed; old logs would not decode:\n{}",
        changed.join("\n")
    );
}

#[test]
fn pinned_bytes_decode_to_the_examples() {
    for (e, name, payload) in examples() {
        let decoded = Event::decode(name, SCHEMA_VERSION, CODEC_POSTCARD, &unhex(payload));
        assert_eq!(decoded.as_ref(), Ok(&e), "{name}");
        // And today's encoding round-trips.
        let d = e.to_data();
        assert_eq!(
            Event::decode(&d.event_type, d.schema_version, d.payload_codec, &d.payload),
            Ok(e)
        );
    }
    for (e, payload) in nested_examples() {
        assert_eq!(
            Event::decode(e.event_type(), SCHEMA_VERSION, CODEC_POSTCARD, &unhex(payload)),
            Ok(e)
        );
    }
}

#[test]
fn decode_refuses_a_newer_schema_an_unknown_codec_a_wrong_type_and_short_bytes() {
    for (e, name, payload) in examples() {
        let bytes = unhex(payload);
        let newer = Event::decode(name, SCHEMA_VERSION + 1, CODEC_POSTCARD, &bytes).unwrap_err();
        assert!(newer.0.contains("newer"), "{name}: {newer}");
        assert!(Event::decode(name, SCHEMA_VERSION, CODEC_POSTCARD + 1, &bytes).is_err(), "{name}");
        let other = if name == "CaseClosed" { "CaseClaimed" } else { "CaseClosed" };
        let wrong = Event::decode(other, SCHEMA_VERSION, CODEC_POSTCARD, &bytes).unwrap_err();
        assert!(wrong.0.contains(name), "{wrong}");
        assert!(
            Event::decode(name, SCHEMA_VERSION, CODEC_POSTCARD, &bytes[..bytes.len() - 1]).is_err(),
            "{name} truncated"
        );
        assert_eq!(e.event_type(), name);
    }
    assert!(Event::decode("CaseClosed", SCHEMA_VERSION, CODEC_POSTCARD, &[]).is_err());
    assert!(
        Event::decode("CaseClosed", SCHEMA_VERSION, CODEC_POSTCARD, &[200]).is_err(),
        "unknown variant index"
    );
}
