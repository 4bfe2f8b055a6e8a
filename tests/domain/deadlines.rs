//! Deadline escalation through a real `Engine` with the injected clock: the
//! community's hold passing escalates to the street, the street's hold
//! passing dispatches to the category's department, an unclaimed dispatch and
//! the resolution deadline are marked overdue, an approved extension moves
//! the deadline; a tick is idempotent, survives a restart without firing
//! twice or missing anything, and gives the same result whether the clock is
//! checked hourly or once (deadline events are computed from due times).

use std::collections::BTreeMap;

use gridcase::engine::domain::event::OverdueKind;
use gridcase::engine::domain::{Case, Command, Event, HopReason, Level, Priority, Status};
use gridcase::engine::engine::TickReport;
use gridcase::engine::time::Timestamp;
use gridcase::engine::Error;

use super::fixture::*;

/// Sets the clock to `t` and ticks at `t`.
async fn tick_at(h: &TestEngine, t: Timestamp) -> TickReport {
    h.set_time(t);
    h.engine.tick(t).await.expect("tick")
}

/// The events of a case's history after its first `skip`.
async fn events_after(h: &TestEngine, id: &str, skip: usize) -> Vec<Event> {
    h.engine.history(&case_id(id)).await.unwrap().into_iter().skip(skip).map(|(e, _)| e).collect()
}

async fn all_events(h: &TestEngine, id: &str) -> Vec<Event> {
    events_after(h, id, 0).await
}

#[tokio::test]
async fn an_ignored_case_climbs_the_hierarchy_on_its_deadlines() {
    let h = TestEngine::start().await;
    let id = h.submit(RESIDENT, street_light()).await;
    // Ordinary limits: community 48 h, street 24 h, claim 24 h, resolution 7 days.
    let l = registry().policy.ordinary;
    assert_eq!(
        (l.community_minutes, l.street_minutes, l.claim_minutes),
        (48 * 60, 24 * 60, 24 * 60)
    );
    assert_eq!(l.resolution_minutes, 7 * 24 * 60);

    let quiet = tick_at(&h, at(48 * HOUR - 1)).await;
    assert_eq!((quiet.events, quiet.checked), (0, 0), "nothing is due a millisecond early");

    // The community's hold passes: automatic escalation to its street.
    let r = tick_at(&h, at(48 * HOUR)).await;
    assert_eq!((r.checked, r.events, r.escalations), (1, 1, 1));
    let e = events_after(&h, &id, 1).await;
    assert!(
        matches!(&e[..], [Event::CaseEscalated { from, to, reason: HopReason::Deadline, hold_until, .. }]
            if from == C11 && to == S1 && *hold_until == at(72 * HOUR)),
        "{e:?}"
    );
    let c = h.engine.case(&case_id(&id)).await.unwrap();
    assert_eq!(
        (c.status, c.level, c.hold_until),
        (Status::Escalated, Level::Street, Some(at(72 * HOUR)))
    );

    // The street's hold passes: automatic dispatch to the category's department.
    let r = tick_at(&h, at(72 * HOUR)).await;
    assert_eq!((r.events, r.dispatches), (1, 1));
    let e = events_after(&h, &id, 2).await;
    assert!(
        matches!(&e[..], [Event::CaseDispatched { from, departments, lead, reason: HopReason::Deadline, claim_due, .. }]
            if from == S1 && departments == &vec![D01.to_string()] && lead == D01 && *claim_due == at(96 * HOUR)),
        "{e:?}"
    );
    let c = h.engine.case(&case_id(&id)).await.unwrap();
    assert_eq!((c.status, c.level), (Status::Dispatched, Level::Department));

    // Nobody claims it: the claim is marked overdue, once.
    let r = tick_at(&h, at(96 * HOUR)).await;
    assert_eq!((r.events, r.overdue_marks), (1, 1));
    assert_eq!(
        events_after(&h, &id, 3).await,
        vec![Event::CaseOverdue {
            what: OverdueKind::Claim { department: D01.into() },
            due: at(96 * HOUR)
        }]
    );
    assert!(h.engine.case(&case_id(&id)).await.unwrap().holder(D01).unwrap().claim_overdue);

    // The resolution deadline passes: marked overdue, once.
    assert_eq!(tick_at(&h, at(7 * DAY - 1)).await.events, 0);
    let r = tick_at(&h, at(7 * DAY)).await;
    assert_eq!((r.events, r.overdue_marks), (1, 1));
    assert_eq!(
        events_after(&h, &id, 4).await,
        vec![Event::CaseOverdue { what: OverdueKind::Resolution, due: at(7 * DAY) }]
    );
    let c = h.engine.case(&case_id(&id)).await.unwrap();
    assert!(c.overdue_marked && c.next_deadline().is_none());
    // Nothing is left to fire; the supervisor may now step in.
    assert_eq!(tick_at(&h, at(60 * DAY)).await.events, 0);
    h.ok(&id, "sup", Command::Supervise { note: "请立即处理".into() }).await;
    assert_eq!(h.folded(&id).await, *h.engine.case(&case_id(&id)).await.unwrap());
}

#[tokio::test]
async fn one_late_tick_records_every_passed_deadline_from_its_due_time() {
    let h = TestEngine::start().await;
    let id = h.submit(RESIDENT, street_light()).await;
    let r = tick_at(&h, at(8 * DAY)).await;
    assert_eq!(
        (r.checked, r.events, r.escalations, r.dispatches, r.overdue_marks),
        (1, 4, 1, 1, 2)
    );
    let e = events_after(&h, &id, 1).await;
    // Every deadline is derived from the one before, not from the tick's time.
    assert!(
        matches!(&e[0], Event::CaseEscalated { hold_until, .. } if *hold_until == at(72 * HOUR)),
        "{e:?}"
    );
    assert!(
        matches!(&e[1], Event::CaseDispatched { claim_due, .. } if *claim_due == at(96 * HOUR)),
        "{e:?}"
    );
    assert_eq!(
        e[2],
        Event::CaseOverdue {
            what: OverdueKind::Claim { department: D01.into() },
            due: at(96 * HOUR)
        }
    );
    assert_eq!(e[3], Event::CaseOverdue { what: OverdueKind::Resolution, due: at(7 * DAY) });
}

#[tokio::test]
async fn every_deadline_class_escalates_on_its_own_limits() {
    let h = TestEngine::start().await;
    let reg = registry();
    let mut cases = Vec::new();
    for cat in reg.categories.values() {
        for priority in [Priority::Normal, Priority::Urgent, Priority::Emergency] {
            let mut s = submission(&cat.code, G211);
            s.priority = priority;
            let id = h.submit(OTHER_RESIDENT, s.clone()).await;
            cases.push((id, cat.clone(), reg.policy.limits(s.kind, cat.class, priority)));
        }
    }
    tick_at(&h, at(60 * DAY)).await;
    for (id, cat, l) in cases {
        let m = |minutes: u32| minutes as i64 * MINUTE;
        let street_from = at(m(l.community_minutes));
        let dept_from = street_from.plus_ms(m(l.street_minutes));
        let claim_due = dept_from.plus_ms(m(l.claim_minutes));
        let mut want = vec![
            (
                claim_due,
                Event::CaseOverdue {
                    what: OverdueKind::Claim { department: cat.department.clone() },
                    due: claim_due,
                },
            ),
            (
                at(m(l.resolution_minutes)),
                Event::CaseOverdue {
                    what: OverdueKind::Resolution,
                    due: at(m(l.resolution_minutes)),
                },
            ),
        ];
        want.sort_by_key(|(t, _)| *t);
        let e = events_after(&h, &id, 1).await;
        assert_eq!(e.len(), 4, "{}: {e:?}", cat.code);
        assert!(
            matches!(&e[0], Event::CaseEscalated { to, reason: HopReason::Deadline, hold_until, .. } if to == S2 && *hold_until == dept_from),
            "{}: {e:?}",
            cat.code
        );
        assert!(
            matches!(&e[1], Event::CaseDispatched { departments, reason: HopReason::Deadline, claim_due: c, .. }
                if departments == &vec![cat.department.clone()] && *c == claim_due),
            "{}: {e:?}",
            cat.code
        );
        assert_eq!(
            e[2..].to_vec(),
            want.into_iter().map(|(_, e)| e).collect::<Vec<_>>(),
            "{}",
            cat.code
        );
    }
}

/// Submitted, escalated, dispatched to D01 and claimed, all at t0.
async fn claimed_case(h: &TestEngine) -> String {
    let id = h.submit(RESIDENT, street_light()).await;
    h.ok(&id, "cs11", Command::Escalate { reason: "社区无法解决".into() }).await;
    let d = Command::Dispatch { departments: vec![D01.into()], lead: None, note: String::new() };
    h.ok(&id, "ss1", d).await;
    h.ok(&id, "d01a", Command::Claim).await;
    id
}

#[tokio::test]
async fn an_approved_extension_moves_the_resolution_deadline() {
    let h = TestEngine::start().await;
    let id = claimed_case(&h).await;
    let until = at(10 * DAY);
    h.ok(&id, "d01a", Command::RequestExtension { until, reason: "等待配件".into() }).await;
    // A pending request does not move anything yet.
    assert_eq!(h.engine.case(&case_id(&id)).await.unwrap().resolution_due, at(7 * DAY));
    h.ok(&id, "sup", Command::DecideExtension { approve: true, reason: String::new() }).await;
    let version = h.engine.case(&case_id(&id)).await.unwrap().version as usize;
    assert_eq!(tick_at(&h, at(7 * DAY)).await.events, 0, "the old deadline no longer fires");
    assert_eq!(tick_at(&h, at(10 * DAY - 1)).await.events, 0);
    assert_eq!(tick_at(&h, at(10 * DAY)).await.overdue_marks, 1);
    assert_eq!(
        events_after(&h, &id, version).await,
        vec![Event::CaseOverdue { what: OverdueKind::Resolution, due: until }]
    );
}

#[tokio::test]
async fn a_refused_extension_leaves_the_deadline_and_a_late_approval_rearms_it() {
    let h = TestEngine::start().await;
    let refused = claimed_case(&h).await;
    let late = claimed_case(&h).await;
    h.set_time(at(6 * DAY));
    for id in [&refused, &late] {
        h.ok(
            id,
            "d01a",
            Command::RequestExtension { until: at(12 * DAY), reason: "等待配件".into() },
        )
        .await;
    }
    h.ok(&refused, "sup", Command::DecideExtension { approve: false, reason: "不符合条件".into() })
        .await;
    // Both are overdue at the original deadline (the pending request does not hold it).
    let r = tick_at(&h, at(7 * DAY)).await;
    assert_eq!((r.checked, r.overdue_marks), (2, 2));
    // Approving afterwards moves the deadline and re-arms the mark.
    h.set_time(at(8 * DAY));
    let c = h
        .ok(&late, "sup", Command::DecideExtension { approve: true, reason: String::new() })
        .await
        .case;
    assert!(!c.overdue_marked && c.resolution_due == at(12 * DAY) && !c.is_overdue(at(8 * DAY)));
    let r = tick_at(&h, at(12 * DAY)).await;
    assert_eq!((r.checked, r.overdue_marks), (1, 1));
    let last = all_events(&h, &late).await.pop().unwrap();
    assert_eq!(last, Event::CaseOverdue { what: OverdueKind::Resolution, due: at(12 * DAY) });
    assert_eq!(all_events(&h, &refused).await.len(), 7, "the refused case was marked once");
}

#[tokio::test]
async fn resolved_and_finished_cases_have_no_deadlines() {
    let h = TestEngine::start().await;
    let resolved = h.submit(RESIDENT, street_light()).await;
    h.ok(&resolved, "cs11", Command::Resolve { note: "已修复".into() }).await;
    let withdrawn = h.submit(RESIDENT, street_light()).await;
    h.ok(&withdrawn, RESIDENT, Command::Withdraw { reason: "已修好".into() }).await;
    let rejected = h.submit(RESIDENT, street_light()).await;
    h.ok(&rejected, "cs11", Command::Reject { reason: "重复".into() }).await;
    let before = h.head();
    let r = tick_at(&h, at(90 * DAY)).await;
    assert_eq!(r, TickReport::default());
    assert_eq!(h.head(), before);
}

#[tokio::test]
async fn a_reopened_case_gets_fresh_holds_and_deadlines() {
    let h = TestEngine::start().await;
    let id = h.submit(RESIDENT, street_light()).await;
    h.ok(&id, "cs11", Command::Resolve { note: "已修复".into() }).await;
    h.set_time(at(9 * DAY));
    h.ok(
        &id,
        "cs11",
        Command::Callback {
            satisfaction: gridcase::engine::domain::Satisfaction::Unsatisfied,
            solved: false,
            note: String::new(),
        },
    )
    .await;
    let c = h.ok(&id, "cs11", Command::Reopen { reason: "路灯又坏了".into() }).await.case;
    assert_eq!(
        (c.level, c.hold_until, c.resolution_due),
        (Level::Community, Some(at(11 * DAY)), at(16 * DAY))
    );
    assert_eq!(tick_at(&h, at(11 * DAY - 1)).await.events, 0, "the old deadlines are gone");
    let r = tick_at(&h, at(11 * DAY)).await;
    assert_eq!(r.escalations, 1);
    assert_eq!(h.engine.case(&case_id(&id)).await.unwrap().hold_until, Some(at(12 * DAY)));
}

#[tokio::test]
async fn ticking_twice_at_the_same_time_records_nothing_the_second_time() {
    let h = TestEngine::start().await;
    let a = h.submit(RESIDENT, street_light()).await;
    let _b = claimed_case(&h).await;
    let first = tick_at(&h, at(8 * DAY)).await;
    assert_eq!(first.events, 5);
    let head = h.head();
    let second = h.engine.tick(at(8 * DAY)).await.unwrap();
    assert_eq!(second.events, 0, "{second:?}");
    assert_eq!(h.head(), head);
    // An earlier time after a later one is refused (the log cannot record
    // the past) and records nothing either.
    assert!(matches!(h.engine.tick(at(3 * DAY)).await, Err(Error::InvalidInput(_))));
    assert_eq!(h.head(), head);
    assert_eq!(h.folded(&a).await, *h.engine.case(&case_id(&a)).await.unwrap());
}

/// Three cases with staggered deadlines and a fourth handled by hand.
async fn staggered(h: &TestEngine) -> Vec<String> {
    let mut ids = Vec::new();
    for (offset, category, location) in [
        (0, "street_light", G111),
        (HOUR, "noise", G211),
        (20 * HOUR, "water_outage", "五星社区第一网格2号楼"),
    ] {
        h.set_time(at(offset));
        ids.push(h.submit(RESIDENT, submission(category, location)).await);
    }
    h.set_time(at(21 * HOUR));
    ids.push(claimed_case(h).await);
    ids
}

async fn snapshot(h: &TestEngine, ids: &[String]) -> BTreeMap<String, (Vec<Event>, Case)> {
    let mut out = BTreeMap::new();
    for id in ids {
        out.insert(
            id.clone(),
            (all_events(h, id).await, Case::clone(&h.engine.case(&case_id(id)).await.unwrap())),
        );
    }
    out
}

#[tokio::test]
async fn after_a_restart_nothing_fires_twice_and_nothing_is_missed() {
    // The reference never restarts.
    let reference = TestEngine::start().await;
    let ids = staggered(&reference).await;
    tick_at(&reference, at(49 * HOUR)).await;
    tick_at(&reference, at(30 * DAY)).await;
    let want = snapshot(&reference, &ids).await;

    let h = TestEngine::start().await;
    assert_eq!(staggered(&h).await, ids);
    let r = tick_at(&h, at(49 * HOUR)).await;
    assert_eq!(r.escalations, 3, "{r:?}");
    let head = h.head();
    let h = h.reopen().await;
    // The same tick after the restart finds everything already recorded.
    assert_eq!(
        h.engine.tick(at(49 * HOUR)).await.unwrap(),
        TickReport { checked: 0, ..TickReport::default() }
    );
    assert_eq!(h.head(), head);
    // Down for a month: the first tick after the restart records what was missed.
    let h = h.reopen().await;
    let r = tick_at(&h, at(30 * DAY)).await;
    assert!(r.events > 0);
    assert_eq!(snapshot(&h, &ids).await, want);
    // And once more after another restart: nothing.
    let head = h.head();
    let h = h.reopen().await;
    assert_eq!(h.engine.tick(at(30 * DAY)).await.unwrap().events, 0);
    assert_eq!(h.head(), head);
    assert_eq!(snapshot(&h, &ids).await, want);
    // The id sequence continues after the restart.
    let next = h.submit(RESIDENT, street_light()).await;
    assert!(!ids.contains(&next), "{next} reused");
}

/// What a case's deadlines made of it: everything except the times at which
/// overdue marks happened to be recorded (`updated_at`), which follow the
/// tick times by design. Holders' `since` is in: an automatic hop takes
/// effect at the deadline it enforces, however late the tick.
fn deadline_view(c: &Case) -> impl PartialEq + std::fmt::Debug {
    let holders: Vec<_> = c
        .holders
        .iter()
        .map(|h| {
            (h.unit.clone(), h.since, h.lead, h.claimed, h.resolved, h.claim_due, h.claim_overdue)
        })
        .collect();
    (
        c.version,
        c.status,
        c.level,
        holders,
        c.hold_until,
        c.resolution_due,
        c.overdue_marked,
        c.next_deadline(),
    )
}

/// A case's hops as the chain report shows them: kind, time, hold.
async fn hops(
    h: &TestEngine,
    id: &str,
) -> Vec<(gridcase::projections::chains::HopKind, Timestamp, Option<i64>)> {
    let history = h.engine.history(&case_id(id)).await.unwrap();
    let c = gridcase::projections::chains::chain_of(&history).unwrap();
    c.hops.iter().map(|h| (h.kind, h.at, h.held_ms)).collect()
}

/// The whole chain report (shapes, hold times per level) as JSON.
async fn chain_report(h: &TestEngine) -> serde_json::Value {
    let set = gridcase::projections::rebuild(h.engine.log(), Default::default()).await.unwrap();
    serde_json::to_value(set.chain_report()).unwrap()
}

#[tokio::test]
async fn hourly_ticks_and_one_big_tick_reach_the_same_states() {
    async fn setup() -> (TestEngine, Vec<String>) {
        let h = TestEngine::start().await;
        let mut ids = Vec::new();
        for cat in registry().categories.keys() {
            ids.push(h.submit(RESIDENT, submission(cat, G111)).await);
        }
        let mut urgent = submission("sewage", G211);
        urgent.priority = Priority::Urgent;
        ids.push(h.submit(OTHER_RESIDENT, urgent).await);
        ids.push(claimed_case(&h).await);
        // Joint handling, one department claims.
        let joint = h.submit(OTHER_RESIDENT, submission("sewage", G211)).await;
        h.ok(&joint, "cs21", Command::Escalate { reason: "需要多部门".into() }).await;
        let d = Command::Dispatch {
            departments: vec![D04.into(), D01.into()],
            lead: Some(D04.into()),
            note: String::new(),
        };
        h.ok(&joint, "ss2", d).await;
        h.ok(&joint, "d04a", Command::Claim).await;
        ids.push(joint);
        (h, ids)
    }
    let end = at(20 * DAY);
    let (hourly, ids) = setup().await;
    let mut t = t0();
    while t < end {
        t = t.plus_ms(HOUR);
        tick_at(&hourly, t).await;
    }
    let (once, ids2) = setup().await;
    assert_eq!(ids, ids2);
    let report = tick_at(&once, end).await;
    assert!(report.escalations >= 8 && report.overdue_marks >= 10, "{report:?}");
    let (irregular, _) = setup().await;
    for step in [7 * HOUR, 13 * HOUR, 2 * DAY + 5 * HOUR, 3 * DAY, 11 * DAY, 20 * DAY] {
        tick_at(&irregular, at(step)).await;
    }
    for id in &ids {
        let a = (
            all_events(&hourly, id).await,
            deadline_view(&hourly.engine.case(&case_id(id)).await.unwrap()),
        );
        let b = (
            all_events(&once, id).await,
            deadline_view(&once.engine.case(&case_id(id)).await.unwrap()),
        );
        let c = (
            all_events(&irregular, id).await,
            deadline_view(&irregular.engine.case(&case_id(id)).await.unwrap()),
        );
        assert_eq!(a, b, "{id}: hourly vs once");
        assert_eq!(a, c, "{id}: hourly vs irregular");
        // The chain report's hops and hold times, the same under any schedule.
        let (ca, cb, cc) =
            (hops(&hourly, id).await, hops(&once, id).await, hops(&irregular, id).await);
        assert_eq!(ca, cb, "{id}: chain, hourly vs once");
        assert_eq!(ca, cc, "{id}: chain, hourly vs irregular");
    }
    // The report over all cases, with time held per level.
    let (ra, rb, rc) =
        (chain_report(&hourly).await, chain_report(&once).await, chain_report(&irregular).await);
    assert_eq!(ra, rb, "chain report, hourly vs once");
    assert_eq!(ra, rc, "chain report, hourly vs irregular");
}

#[tokio::test]
async fn a_story_of_ticks_decides_the_same_in_the_pure_function_and_the_engine() {
    // Community and street holds pass, then the claim and the resolution deadlines,
    // checked at irregular times; `play` runs each tick through `Engine::tick`
    // and compares the recorded events with the pure decision.
    let story = Story::reported()
        .until(at(47 * HOUR))
        .tick()
        .until(at(50 * HOUR))
        .tick()
        .until(at(80 * HOUR))
        .tick()
        .by("d01a", Command::Return { reason: "不属于本单位职责".into() })
        .until(at(6 * DAY))
        .tick()
        .until(at(9 * DAY))
        .tick();
    let types: Vec<&str> = story.events().iter().map(|e| e.event_type()).collect();
    assert_eq!(
        types,
        [
            "CaseSubmitted",
            "CaseEscalated",
            "CaseDispatched",
            "CaseReturned",
            "CaseDispatched",
            "CaseOverdue",
            "CaseOverdue"
        ]
    );
    let c = story.case();
    assert_eq!((c.status, c.return_count, c.overdue_marked), (Status::Dispatched, 1, true));
    let h = TestEngine::start().await;
    h.play(&story).await;
}
