//! Cancellation safety of the engine's public async methods: a portal's
//! HTTP handler drops a command's future when its client disconnects or a
//! timeout fires. Each test drops the future after every possible number of
//! polls (so at every await point it passes through) and checks that the
//! engine's view still equals the log's.

use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use gridcase::engine::domain::{Command, Status};
use gridcase::engine::engine::{CommandOptions, EngineOptions};
use gridcase::engine::Engine;

use super::fixture::*;

/// Waits until the log's head has stopped moving (the writer finished what
/// it had been handed).
async fn settle(h: &TestEngine) {
    let mut last = h.head();
    loop {
        tokio::time::sleep(Duration::from_millis(30)).await;
        let now = h.head();
        if now == last {
            return;
        }
        last = now;
    }
}

/// Polls `fut` up to `polls` times, yielding between polls so that the
/// log's writer can make progress, then (if it is still pending) waits
/// `linger` without polling it and drops it; returns whether it completed.
/// A linger lets a writer that was handed the append commit it while the
/// future can no longer see the acknowledgement: the window that matters.
async fn poll_then_drop<F: std::future::Future>(fut: F, polls: usize, linger: Duration) -> bool {
    let mut fut = pin!(fut);
    for _ in 0..polls {
        if futures::poll!(fut.as_mut()).is_ready() {
            return true;
        }
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(linger).await;
    false
}

/// Every (polls, linger) pair the tests try, in order.
fn schedule() -> impl Iterator<Item = (usize, Duration)> {
    (1..200).flat_map(|p| [(p, Duration::ZERO), (p, Duration::from_millis(40))])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_dropped_at_any_await_leaves_the_view_equal_to_the_log() {
    let mut dropped_after_commit = 0;
    for (polls, linger) in schedule() {
        let h = TestEngine::start().await;
        let id = h.submit(RESIDENT, street_light()).await;
        let before = h.head();
        let escalate = Command::Escalate { reason: "需要街道协调".into() };
        let (actor, case) = (actor_id("cs11"), case_id(&id));
        let fut = h.engine.execute(&actor, &case, escalate, CommandOptions::default());
        let completed = poll_then_drop(fut, polls, linger).await;
        settle(&h).await;
        let committed = h.head() > before;
        if committed && !completed {
            dropped_after_commit += 1;
        }
        // What the engine serves is what the log holds.
        let served = h.engine.case(&case_id(&id)).await.unwrap();
        assert_eq!(*served, h.folded(&id).await, "after {polls} polls, {linger:?}");
        assert_eq!(
            served.status == Status::Escalated,
            committed,
            "after {polls} polls, {linger:?}"
        );
        // And the next command is decided on that state.
        let next = h
            .engine
            .execute(
                &actor_id("ss1"),
                &case_id(&id),
                Command::Resolve { note: "街道协调解决".into() },
                CommandOptions::default(),
            )
            .await;
        assert_eq!(next.is_ok(), committed, "after {polls} polls, {linger:?}: {next:?}");
        h.engine.catch_up().await.unwrap();
        let open: Vec<_> = h.engine.open_cases().into_iter().filter(|c| c.id == id).collect();
        assert_eq!(open.len(), 1);
        assert_eq!(
            *open[0],
            h.folded(&id).await,
            "the open-case view after {polls} polls, {linger:?}"
        );
        // Done once the command has completed and at least one drop fell
        // between sending the append and its acknowledgement. (On a loaded
        // machine a command can, rarely, complete within its first poll;
        // the schedule then goes on, with a linger, until a drop lands.)
        if completed && dropped_after_commit > 0 {
            return;
        }
    }
    panic!(
        "no drop landed between the commit and the acknowledgement ({dropped_after_commit}); \
         the test proved nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submission_dropped_at_any_await_leaves_ids_and_view_consistent() {
    for (polls, linger) in schedule() {
        let h = TestEngine::start().await;
        let before = h.head();
        let resident = actor_id(RESIDENT);
        let fut = h.engine.submit(&resident, street_light(), CommandOptions::default());
        let completed = poll_then_drop(fut, polls, linger).await;
        settle(&h).await;
        h.engine.catch_up().await.unwrap();
        let committed = h.head() > before;
        assert_eq!(
            h.engine.open_cases().len(),
            usize::from(committed),
            "after {polls} polls, {linger:?}"
        );
        // The next submission gets a fresh id, never one already used.
        let next = h.submit(RESIDENT, street_light()).await;
        assert_eq!(h.engine.case(&case_id(&next)).await.unwrap().version, 1);
        if completed {
            return;
        }
    }
    panic!("the submission never completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catch_up_dropped_at_any_await_is_resumed_by_the_next() {
    // Another engine on the same store writes; ours follows.
    for (polls, linger) in schedule() {
        let h = TestEngine::start().await;
        let ids = [
            h.submit(RESIDENT, street_light()).await,
            h.submit(OTHER_RESIDENT, street_light()).await,
        ];
        let other =
            Engine::new(h.log().clone(), Arc::new(h.clock.clone()), EngineOptions::default())
                .await
                .unwrap();
        for id in &ids {
            other
                .execute(
                    &actor_id("cs11"),
                    &case_id(id),
                    Command::Escalate { reason: "需要街道协调".into() },
                    CommandOptions::default(),
                )
                .await
                .unwrap();
        }
        let completed = poll_then_drop(h.engine.catch_up(), polls, linger).await;
        h.engine.catch_up().await.unwrap();
        for id in &ids {
            let view = h.engine.open_cases().into_iter().find(|c| &c.id == id).unwrap();
            assert_eq!(*view, h.folded(id).await, "after {polls} polls, {linger:?}");
        }
        if completed {
            return;
        }
    }
    panic!("catch-up never completed");
}
