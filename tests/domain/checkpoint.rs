//! The engine's open-case checkpoint: a restart from it sees the same open
//! cases as one that follows the whole log, including what changed after
//! it was taken, and a checkpoint that is torn, altered or from another
//! store is ignored rather than trusted.

use std::sync::Arc;

use gridcase::engine::domain::Command;
use gridcase::engine::{Engine, EngineOptions};

use super::fixture::*;

const NAME: &str = "engine/open-cases";

/// Open case ids by folding every case's history: the truth a restored
/// view must match.
async fn open_by_fold(h: &TestEngine, ids: &[String]) -> Vec<String> {
    let mut open = Vec::new();
    for id in ids {
        if h.folded(id).await.is_open() {
            open.push(id.clone());
        }
    }
    open.sort();
    open
}

async fn assert_view_is_the_logs(h: &TestEngine, ids: &[String]) {
    h.engine.catch_up().await.unwrap();
    assert_eq!(h.engine.open_case_ids(), open_by_fold(h, ids).await);
    for id in ids {
        assert_eq!(*h.engine.case(&case_id(id)).await.unwrap(), h.folded(id).await, "{id}");
    }
}

#[tokio::test]
async fn a_restart_from_a_checkpoint_takes_in_what_followed_it() {
    let h = TestEngine::start().await;
    let a = h.submit(RESIDENT, street_light()).await;
    let b = h.submit(RESIDENT, street_light()).await;
    let c = h.submit(OTHER_RESIDENT, street_light()).await;
    h.ok(&a, "cs11", Command::Escalate { reason: "社区无法解决".into() }).await;
    let at = h.engine.save_checkpoint().await.unwrap();
    assert_eq!(at, h.head());
    // After the checkpoint: one of its cases ends, one changes, one is new.
    h.ok(&b, RESIDENT, Command::Withdraw { reason: "已修好".into() }).await;
    h.ok(&c, "cs11", Command::Escalate { reason: "需要街道协调".into() }).await;
    let d = h.submit(RESIDENT, street_light()).await;
    let ids = vec![a, b, c, d];
    let h = h.reopen().await;
    assert_view_is_the_logs(&h, &ids).await;
    assert_eq!(h.engine.restored_from_checkpoint().await, Some(at));
    assert_eq!(h.engine.open_case_ids().len(), 3);
}

#[tokio::test]
async fn a_torn_or_altered_checkpoint_is_ignored() {
    let h = TestEngine::start().await;
    let a = h.submit(RESIDENT, street_light()).await;
    let b = h.submit(RESIDENT, street_light()).await;
    h.engine.save_checkpoint().await.unwrap();
    let good = h.log().load_checkpoint(NAME).await.unwrap().unwrap();
    h.ok(&b, RESIDENT, Command::Withdraw { reason: "已修好".into() }).await;
    let ids = vec![a, b];
    // A flipped byte anywhere, and a truncated copy.
    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x10;
    let truncated = good[..good.len() - 7].to_vec();
    let mut h = h;
    for bad in [flipped, truncated, b"nonsense".to_vec()] {
        h.log().save_checkpoint(NAME, bad).await.unwrap();
        h = h.reopen().await;
        assert_view_is_the_logs(&h, &ids).await;
        assert_eq!(h.engine.restored_from_checkpoint().await, None);
    }
}

#[tokio::test]
async fn a_checkpoint_from_another_store_is_ignored() {
    // Two stores with the same organisation and cases up to a point: the
    // other store's checkpoint is at a position this one has, but with
    // another history there, so its hash is not this log's.
    let other = TestEngine::start().await;
    other.submit(OTHER_RESIDENT, street_light()).await;
    let x = other.submit(OTHER_RESIDENT, street_light()).await;
    other.ok(&x, "cs11", Command::Escalate { reason: "社区无法解决".into() }).await;
    other.engine.save_checkpoint().await.unwrap();
    let foreign = other.log().load_checkpoint(NAME).await.unwrap().unwrap();

    let h = TestEngine::start().await;
    let a = h.submit(RESIDENT, street_light()).await;
    let b = h.submit(RESIDENT, street_light()).await;
    h.ok(&b, RESIDENT, Command::Withdraw { reason: "已修好".into() }).await;
    h.submit(RESIDENT, street_light()).await;
    h.log().save_checkpoint(NAME, foreign).await.unwrap();
    let h = h.reopen().await;
    let ids = vec![a, b, "GC0000003".to_string()];
    assert_view_is_the_logs(&h, &ids).await;
    assert_eq!(h.engine.restored_from_checkpoint().await, None);
    assert_eq!(h.engine.open_case_ids().len(), 2);
}

#[tokio::test]
async fn an_engine_starts_from_the_checkpoint() {
    let h = TestEngine::start().await;
    let a = h.submit(RESIDENT, street_light()).await;
    let at = h.engine.save_checkpoint().await.unwrap();
    // An engine opened on the same log decodes the checkpoint only when it
    // first needs the whole view, and then starts from it, keeping what it
    // changed in the meantime.
    let second = Engine::new(h.log().clone(), Arc::new(h.clock.clone()), EngineOptions::default())
        .await
        .unwrap();
    assert!(second.open_case_ids().is_empty(), "not loaded before it is needed");
    let b = second
        .submit(&actor_id(RESIDENT), street_light(), Default::default())
        .await
        .unwrap()
        .case
        .id
        .clone();
    second.catch_up().await.unwrap();
    assert_eq!(second.restored_from_checkpoint().await, Some(at));
    assert_eq!(second.open_case_ids(), vec![a, b]);
}
