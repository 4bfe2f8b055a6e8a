//! Engine-driven scenarios: the projections over a real log made by the
//! real engine (deadline ticks included).

use std::sync::{Arc, RwLock};

use gridcase_engine::domain::Event;
use gridcase_engine::engine::CASE_STREAM_PREFIX;
use gridcase_engine::log::RecordedEvent;
use gridcase_engine::time::DAY_MS;
use gridcase_projections::chains::chain_of;
use gridcase_projections::{
    follow, open, rebuild, Config, FollowOptions, ProjectionSet, Start, Store,
};

use crate::support::{base, drive, engine, ops, Script};

async fn histories(engine: &gridcase_engine::Engine) -> Vec<Vec<(Event, RecordedEvent)>> {
    let mut out = Vec::new();
    for stream in engine.log().streams_with_prefix(CASE_STREAM_PREFIX).await.unwrap() {
        let id = stream.strip_prefix(CASE_STREAM_PREFIX).unwrap();
        let id = gridcase_engine::domain::CaseId::new(id).unwrap();
        out.push(engine.history(&id).await.unwrap());
    }
    out
}

/// Catch-up, live follow, save and resume all reach the digest of a full
/// rebuild; the live chain of an open case equals the one folded from its
/// history; the timeline names units and staff.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_follow_save_and_resume() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, clock, log) = engine(&dir.path().join("log"), base()).await;
    drive(&engine, &clock, &ops(11, 150)).await;

    let store = Store::open(dir.path().join("state")).unwrap();
    let (set, start) = open(&log, &store, Config::default()).await.unwrap();
    assert_eq!(start, Start::Rebuilt { reason: None });
    assert_eq!(set.position(), log.head().position);

    let shared = Arc::new(RwLock::new(set));
    let follower = follow(
        log.clone(),
        shared.clone(),
        FollowOptions { store: Some(store.clone()), save_every_events: 25, batch: 16 },
    );
    drive(&engine, &clock, &ops(12, 150)).await;
    let head = log.head().position;
    follower.wait_for(head).await.unwrap();
    assert_eq!(follower.lag(log.as_ref()), 0);
    follower.stop().await.unwrap();

    let full = rebuild(&log, Config::default()).await.unwrap();
    assert_eq!(shared.read().unwrap().digests(), full.digests());

    // A restart resumes from the saved checkpoint and saves nothing new.
    let (resumed, start) = open(&log, &store, Config::default()).await.unwrap();
    assert_eq!(start, Start::Resumed { from: head });
    assert_eq!(resumed.digests(), full.digests());

    // State from another configuration is not used.
    let other = Config { utc_offset_minutes: 0 };
    let (_, start) = open(&log, &store, other).await.unwrap();
    assert!(matches!(start, Start::Rebuilt { reason: Some(_) }), "{start:?}");

    let mut compared = 0;
    for history in histories(&engine).await {
        let folded = chain_of(&history).unwrap();
        if let Some(live) = full.chain(&folded.case_id) {
            assert_eq!(live, folded);
            compared += 1;
        }
        let lines = full.timeline(&history);
        assert_eq!(lines.len(), history.len());
        assert!(lines[0].what.contains("submitted"), "{:?}", lines[0]);
    }
    assert!(compared > 0);
    let some = &histories(&engine).await[0];
    let text: String =
        full.timeline(some).iter().map(|l| format!("{} {}\n", l.who, l.what)).collect();
    assert!(text.contains("网格"), "unit names come from the registry:\n{text}");
}

/// A state file of the previous format (before the one per-case fold) is
/// rebuilt, not decoded as the new layout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_of_an_older_format_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, clock, log) = engine(&dir.path().join("log"), base()).await;
    drive(&engine, &clock, &ops(3, 40)).await;
    let store = Store::open(dir.path().join("state")).unwrap();
    open(&log, &store, Config::default()).await.unwrap();
    // Rewrite the saved file as format 1, with a checksum that matches.
    let path = store.path();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.truncate(bytes.len() - 32);
    bytes[4] = 1;
    let check = *blake3::hash(&bytes).as_bytes();
    bytes.extend_from_slice(&check);
    std::fs::write(&path, &bytes).unwrap();
    assert!(matches!(
        store.load(Config::default()),
        Err(gridcase_projections::Error::OlderFormat { found: 1, .. })
    ));
    let (set, start) = open(&log, &store, Config::default()).await.unwrap();
    assert!(matches!(start, Start::Rebuilt { reason: Some(_) }), "{start:?}");
    assert_eq!(set.digests(), rebuild(&log, Config::default()).await.unwrap().digests());
}

/// A saved state from another log is detected and rebuilt, not trusted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_of_another_log_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let (e1, c1, log1) = engine(&dir.path().join("a"), base()).await;
    drive(&e1, &c1, &ops(3, 40)).await;
    let (e2, c2, log2) = engine(&dir.path().join("b"), base().plus_ms(DAY_MS)).await;
    drive(&e2, &c2, &ops(4, 60)).await;
    let store = Store::open(dir.path().join("state")).unwrap();
    open(&log1, &store, Config::default()).await.unwrap();
    let (set, start) = open(&log2, &store, Config::default()).await.unwrap();
    assert!(matches!(start, Start::Rebuilt { reason: Some(_) }), "{start:?}");
    assert_eq!(set.digests(), rebuild(&log2, Config::default()).await.unwrap().digests());
}

/// Closed cases are forgotten once their reopen window (30 days, plus a
/// day's grace) has passed by later events' times; their counts stay.
#[test]
fn closed_cases_are_evicted_after_the_reopen_window() {
    let mut s = Script::with_org();
    for l in [
        "d0 09:00 c1 submit G1",
        "d0 10:00 c1 resolve",
        "d1 09:00 c1 callback satisfied",
        "d1 10:00 c1 close",
    ] {
        s.line(l);
    }
    s.line("d31 09:00 c2 submit G2");
    let set = s.fold();
    assert_eq!(set.tracked_cases(), 2, "still inside window + grace");
    assert_eq!(set.rates().tracked_cases(), 2);
    s.line("d32 11:00 c3 submit G2");
    let set: ProjectionSet = s.fold();
    assert_eq!(set.tracked_cases(), 2);
    assert_eq!(set.rates().tracked_cases(), 2);
    assert_eq!(set.chains().tracked_cases(), 2);
    assert!(set.chain("c1").is_none());
    assert!(set.case("c1").is_none());
    // The listing keeps every case, evicted or not.
    assert_eq!(set.cases().len(), 3);
    assert_eq!(
        set.cases().get("c1").map(|c| c.status()),
        Some(gridcase_engine::domain::Status::Closed)
    );
    let march = gridcase_projections::Period::month(2026, 3);
    let g1 = set.rates().counts(gridcase_engine::org::UnitKind::Grid, "G1", march);
    assert_eq!((g1.due, g1.resolved), (1, 1));
}

/// Saving and reloading after every few records, over a long scenario with
/// closures, reopen windows passing and evictions, ends where a rebuild ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_everywhere_equals_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, clock, log) = engine(&dir.path().join("log"), base()).await;
    drive(&engine, &clock, &ops(5, 300)).await;
    let full = rebuild(&log, Config::default()).await.unwrap();
    let all = histories(&engine).await;
    let closed =
        all.iter().filter(|h| h.iter().any(|(e, _)| matches!(e, Event::CaseClosed { .. }))).count();
    let ended = all
        .iter()
        .filter(|h| {
            h.iter().any(|(e, _)| {
                matches!(
                    e,
                    Event::CaseRejected { .. }
                        | Event::CaseMerged { .. }
                        | Event::CaseWithdrawn { .. }
                )
            })
        })
        .count();
    // Some closed cases must have been evicted for this test to mean something.
    assert!(closed >= 3, "closed {closed}");
    assert!(full.tracked_cases() + ended < all.len(), "no closed case was evicted");
    let store = Store::open(dir.path().join("state")).unwrap();
    let mut set = ProjectionSet::new(Config::default());
    let head = log.head().position;
    for cut in (1..=head).step_by(7) {
        set.catch_up_to(&log, cut).await.unwrap();
        store.save(&set).unwrap();
        set = store.load(Config::default()).unwrap().unwrap();
    }
    set.catch_up(&log).await.unwrap();
    assert_eq!(set.digests(), full.digests());
}
