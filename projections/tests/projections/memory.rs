//! What the case listing costs per case: it keeps every case for ever, so
//! its bytes per case bound the memory of a server with a long history.
//! Counted from the listing's capacities ([`Cases::heap_bytes`]: the bytes
//! its allocations ask for, without the allocator's own overhead); the
//! workspace forbids the `unsafe` a counting allocator would need.

use gridcase_engine::domain::{Case, Channel, Event, Priority, RequestKind, Satisfaction};
use gridcase_engine::log::{RecordView, RecordedEvent, CODEC_POSTCARD};
use gridcase_engine::time::{Timestamp, DAY_MS, HOUR_MS};
use gridcase_projections::cases::Cases;
use gridcase_projections::Projection;

fn record(position: u64, id: &str, version: u64, at: Timestamp, event: &Event) -> RecordedEvent {
    let data = event.to_data();
    RecordedEvent {
        position,
        stream: format!("case-{id}"),
        version,
        event_type: data.event_type,
        schema_version: data.schema_version,
        recorded_at: at,
        actor: "cs1".into(),
        correlation_id: None,
        causation_id: None,
        idempotency: None,
        payload_codec: CODEC_POSTCARD,
        payload: data.payload,
        prev_hash: [0; 32],
        hash: [0; 32],
    }
}

/// 20,000 cases with the benches' description (78 bytes) and a whole
/// lifecycle each (submit, assign, resolve with a note, callback, close):
/// the listing's own heap bytes per case.
#[test]
fn the_listing_is_small() {
    const N: usize = 20_000;
    let grids = ["G1", "G2", "G3", "G4"];
    let mut cases = Cases::default();
    let mut position = 0;
    let t0 = Timestamp(1_772_380_800_000);
    for i in 0..N {
        let id = format!("GC{:07}", i + 1);
        let at = t0.plus_ms(i as i64 * 20_000);
        let grid = grids[i % 4];
        let submitted = Event::CaseSubmitted {
            case_id: id.clone(),
            channel: Channel::App,
            kind: RequestKind::Complaint,
            category: "lighting".into(),
            priority: Priority::Normal,
            description: "小区门口路灯不亮已经三天了，晚上出行很不方便，请尽快处理".into(),
            location: format!("{grid}-1号楼"),
            grid: grid.into(),
            micro_grid: Some(format!("{grid}-1号楼")),
            community: "C1".into(),
            street: "S1".into(),
            contact: None,
            found_on_patrol: false,
            response_due: at.plus_ms(DAY_MS),
            resolution_due: at.plus_ms(7 * DAY_MS),
            hold_until: at.plus_ms(DAY_MS),
        };
        let steps = [
            Event::CaseAssigned { worker: "gw1".into() },
            Event::CaseResolved { unit: "C1".into(), note: "已处理".into(), complete: true },
            Event::CallbackRecorded {
                satisfaction: Satisfaction::Satisfied,
                solved: true,
                note: String::new(),
            },
            Event::CaseClosed { note: String::new() },
        ];
        position += 1;
        let rec = record(position, &id, 1, at, &submitted);
        let mut case = Case::start(&submitted, "resident:r1", at).unwrap();
        cases.apply(&RecordView::of(&rec), &submitted, None, Some(&case));
        for (v, step) in steps.iter().enumerate() {
            let t = at.plus_ms((v as i64 + 1) * HOUR_MS);
            let old = case.clone();
            case.apply(step, t);
            position += 1;
            let rec = record(position, &id, v as u64 + 2, t, step);
            cases.apply(&RecordView::of(&rec), step, Some(&old), Some(&case));
        }
    }
    assert_eq!(cases.len(), N);
    let per_case = cases.heap_bytes() as f64 / N as f64;
    eprintln!("case listing: {per_case:.0} bytes per case");
    assert!(per_case < 400.0, "the listing takes {per_case:.0} bytes per case");
}
