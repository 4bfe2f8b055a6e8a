//! The engine's rules on time (issue 15, points 5 and 15): a command is
//! never decided at a time before the log's last record, and no time
//! outside 2000-01-01..2100-01-01 enters the log, whoever sends it.

use std::sync::Arc;

use gridcase::engine::domain::{Command, Rule};
use gridcase::engine::engine::CommandOptions;
use gridcase::engine::log::SledLog;
use gridcase::engine::time::{ManualClock, Timestamp};
use gridcase::engine::{Engine, EngineOptions, Error};

use super::fixture::*;

/// An engine whose clock stands at `engine_at` on a log whose clock
/// stands at `log_at` (and holds the organisation, recorded then).
async fn engine_behind_its_log(
    dir: &std::path::Path,
    log_at: Timestamp,
    engine_at: Timestamp,
) -> Engine {
    let log = SledLog::open(dir, test_sled_options(), Arc::new(ManualClock::new(log_at))).unwrap();
    let engine =
        Engine::new(Arc::new(log), Arc::new(ManualClock::new(engine_at)), EngineOptions::default())
            .await
            .unwrap();
    engine.init_org(&actor_id(SYSTEM), &org_file()).await.unwrap();
    engine
}

/// `--at` a day before the last record: refused, nothing written. Before
/// the fix the log clamped the record to its last time while the
/// deadlines came from the earlier time.
#[tokio::test]
async fn a_command_dated_before_the_last_record_is_refused_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_behind_its_log(dir.path(), at(DAY), t0()).await;
    let head = engine.log().head();
    let r = engine.submit(&actor_id(RESIDENT), street_light(), CommandOptions::default()).await;
    match r {
        Err(Error::InvalidInput(m)) => assert!(m.contains("before the log's last record"), "{m}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(engine.log().head(), head, "a refused command writes nothing");
}

/// A moment behind (a concurrent writer was recorded between reading the
/// clock and deciding) is not "the past": the command is decided at the
/// last record's time, so its recorded time and deadlines agree.
#[tokio::test]
async fn a_command_a_moment_behind_is_decided_at_the_last_record() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_behind_its_log(dir.path(), at(DAY), at(DAY - 2_000)).await;
    let r = engine
        .submit(&actor_id(RESIDENT), street_light(), CommandOptions::default())
        .await
        .unwrap();
    assert_eq!(r.case.submitted_at, at(DAY));
    let reference = TestEngine::start().await;
    let id = reference.submit(RESIDENT, street_light()).await;
    let c = reference.engine.case(&case_id(&id)).await.unwrap();
    assert_eq!(
        r.case.resolution_due.0 - r.case.submitted_at.0,
        c.resolution_due.0 - c.submitted_at.0,
        "the deadline counts from the recorded time"
    );
}

/// A clock past 2100 (or an `--at` far in the future) is refused by the
/// engine itself, so the CLI and the API both get the rule.
#[tokio::test]
async fn a_command_time_outside_the_accepted_range_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let far = Timestamp::parse("2099-12-31").unwrap().plus_ms(2 * DAY);
    let engine = engine_behind_its_log(dir.path(), t0(), far).await;
    let r = engine.submit(&actor_id(RESIDENT), street_light(), CommandOptions::default()).await;
    assert!(
        matches!(r, Err(Error::InvalidInput(ref m)) if m.contains("outside the accepted range")),
        "{r:?}"
    );
}

/// An extension to i64::MAX milliseconds would make a case that can never
/// be overdue: refused by the rules, whoever builds the command.
#[tokio::test]
async fn an_extension_outside_the_accepted_range_is_refused() {
    let t = TestEngine::start().await;
    let id = t.submit(RESIDENT, street_light()).await;
    for until in [Timestamp(i64::MAX), Timestamp::parse("2099-12-31").unwrap().plus_ms(2 * DAY)] {
        t.refused(
            &id,
            "cs11",
            Command::RequestExtension { until, reason: "等待配件".into() },
            Rule::InvalidArgument,
        )
        .await;
    }
}
