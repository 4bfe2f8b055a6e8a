//! The Merkle tree over every backend: the same records give the same
//! root on sled and PostgreSQL, the tree and the signed checkpoints survive
//! a restart (saved state that matches the log is used, caught up after),
//! and a tampered record stops a rebuild at its position.

use std::sync::Arc;

use gridcase::engine::log::{encode_record, envelope_of, EventLog, ExpectedVersion, LogError};
use gridcase::engine::transparency::gridcase_trust::checkpoint::Checkpoint;
use gridcase::engine::transparency::gridcase_trust::merkle::{verify_consistency, Tree};
use gridcase::engine::transparency::gridcase_trust::note::NoteSigner;
use gridcase::engine::transparency::gridcase_trust::proof::{check, ProofFile};
use gridcase::engine::transparency::Transparency;

use super::backend::run_all;
use super::support::{read_everything, request, sid};

/// The tree recomputed from `read_all`'s owned records, with none of the
/// follower's code: encode each record, hash it as a leaf.
async fn independent_root(log: &dyn EventLog) -> [u8; 32] {
    let mut tree = Tree::new();
    for r in read_everything(log, 500).await {
        tree.push(&encode_record(&envelope_of(&r)).unwrap());
    }
    tree.root(tree.size()).unwrap()
}

#[test]
fn the_tree_matches_an_independent_recomputation_on_every_backend_and_survives_restarts() {
    run_all(|backend| async move {
        let mut store = backend.create().await;
        let log = store.log();
        for i in 0..30 {
            log.append(request(
                &format!("case-{}", i % 4),
                ExpectedVersion::Any,
                &format!("{i}"),
                1 + i % 19,
            ))
            .await
            .unwrap();
        }
        let skey = NoteSigner::generate("test.example/log").unwrap().to_skey();
        let signer = || Some(NoteSigner::parse(&skey).unwrap());
        let t = Transparency::open(log.clone(), "test.example/log".into(), signer()).await.unwrap();
        assert_eq!(t.size(), log.head().position);
        assert_eq!(t.root(t.size()).unwrap(), independent_root(log.as_ref()).await);
        let first = t.sign_checkpoint().await.unwrap();
        let verifier = t.verifier().unwrap();
        assert_eq!(Checkpoint::open(&first.note, &verifier).unwrap(), first.checkpoint);
        drop(t);
        drop(log);

        store.reopen().await;
        let log = store.log();
        log.append(request("case-9", ExpectedVersion::Any, "after", 7)).await.unwrap();
        let t = Transparency::open(log.clone(), "test.example/log".into(), signer()).await.unwrap();
        assert_eq!(t.latest_signed().await.unwrap(), Some(first.clone()));
        assert_eq!(t.size(), log.head().position);
        assert_eq!(t.root(t.size()).unwrap(), independent_root(log.as_ref()).await);
        let second = t.sign_checkpoint().await.unwrap();
        let proof = t.consistency_proof(first.checkpoint.size, second.checkpoint.size).unwrap();
        verify_consistency(
            first.checkpoint.size,
            second.checkpoint.size,
            &proof,
            &first.checkpoint.root,
            &second.checkpoint.root,
        )
        .unwrap();
        let positions = t.stream_positions(&sid("case-9"), second.checkpoint.size).await.unwrap();
        assert_eq!(positions.len(), 7);
        let receipt = t.inclusion_file(&second, &positions, Some("9".into()), true).await.unwrap();
        check(&ProofFile::Receipt(receipt), &verifier, None).unwrap();
    });
}

#[test]
fn a_rebuild_over_a_tampered_record_stops_at_its_position() {
    run_all(|backend| async move {
        let store = backend.create().await;
        let log: Arc<dyn EventLog> = store.log();
        for i in 0..5 {
            log.append(request("s", ExpectedVersion::Any, &format!("{i}"), 4)).await.unwrap();
        }
        let Some(done) = store.tamper(9, 12).await else {
            eprintln!("-- {} has no tamper hook: skipped", backend.name());
            return;
        };
        done.unwrap();
        // The follower checks each record's link to the one before: the
        // changed record 9 no longer hashes to what record 10 links to. (A
        // backend whose reads check each record's own check bytes names 9.)
        match Transparency::open(log.clone(), "o".into(), None).await {
            Err(gridcase::engine::Error::Corruption { position, .. }) => {
                assert!(position == 9 || position == 10, "corruption named at {position}")
            }
            other => panic!("expected corruption at 9 or 10, got {other:?}"),
        }
        // The same error the log's own reads give.
        assert!(matches!(log.verify().await, Err(LogError::Corruption { position: 9, .. })));
    });
}
