//! Signed checkpoints, proofs, receipts and tlog-tiles over HTTP, checked
//! the way an outsider would: with the vkey and the trust crate's
//! verifiers only, and with the tiles alone.

use gridcase_engine::transparency::gridcase_trust::checkpoint::Checkpoint;
use gridcase_engine::transparency::gridcase_trust::merkle::{leaf_hash, Tree};
use gridcase_engine::transparency::gridcase_trust::note::NoteVerifier;
use gridcase_engine::transparency::gridcase_trust::proof::{check, ProofFile};
use gridcase_engine::transparency::gridcase_trust::tiles::{decode_bundle, encode_index};
use serde_json::Value;

use crate::common::*;

async fn raw_get(
    t: &TestServer,
    actor: Option<&str>,
    path: &str,
) -> (u16, Vec<u8>, Option<String>) {
    let mut req = t.client.get(format!("{}{path}", t.base));
    if let Some(a) = actor {
        req = req.bearer_auth(t.key(a));
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let cache = res.headers().get("cache-control").map(|v| v.to_str().unwrap().to_string());
    (status, res.bytes().await.unwrap().to_vec(), cache)
}

fn proof_file(v: &Value) -> ProofFile {
    ProofFile::from_json(&v.to_string()).unwrap()
}

#[tokio::test]
async fn checkpoints_proofs_receipts_and_tiles_verify_offline() {
    let t = TestServer::start().await;
    // Nothing signed yet; only auditors and supervisors sign on request.
    assert_eq!(t.get(None, "/api/v1/checkpoint").await.status, 404);
    assert_eq!(t.get(None, "/tlog/checkpoint").await.status, 404);
    let refused = t.post(RESIDENT, "/api/v1/checkpoint", serde_json::json!({}), &[]).await;
    assert_eq!(refused.status, 403, "{}", refused.text);

    let case = t.submit(RESIDENT, G111).await;
    t.ok("cs11", &case, "assign", serde_json::json!({"worker": "gw111"})).await;
    let first = t.post("aud", "/api/v1/checkpoint", serde_json::json!({}), &[]).await;
    assert_eq!(first.status, 201, "{}", first.text);
    let first = first.json();
    let verifier = NoteVerifier::parse(first["vkey"].as_str().unwrap()).unwrap();
    assert_eq!(verifier.name(), LOG_ORIGIN);
    let cp1 = Checkpoint::open(first["note"].as_str().unwrap(), &verifier).unwrap();
    assert_eq!(cp1.size, t.head().await.0);
    assert_eq!(first["algorithms"]["merkle_hash"], "rfc9162-sha256");

    // The resident's receipt: both events, checked with the vkey alone.
    let r = t.get(Some(RESIDENT), &format!("/api/v1/cases/{case}/receipt")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let receipt = proof_file(&r.json());
    let ok = check(&receipt, &verifier, None).unwrap();
    assert_eq!(ok.positions.len(), 2);
    assert_eq!(ok.tree_size, cp1.size);
    // One changed byte of a record and it no longer verifies.
    let mut bad = r.json();
    let leaf = bad["entries"][0]["leaf"].as_str().unwrap().to_string();
    let flipped =
        if leaf.starts_with('A') { leaf.replacen('A', "B", 1) } else { format!("A{}", &leaf[1..]) };
    bad["entries"][0]["leaf"] = Value::String(flipped);
    assert!(check(&proof_file(&bad), &verifier, None).is_err());
    // Others' cases are not theirs to read (not found, as a missing case);
    // the auditor may.
    assert_eq!(
        t.get(Some(OTHER_RESIDENT), &format!("/api/v1/cases/{case}/receipt")).await.status,
        404
    );
    assert_eq!(t.get(Some("aud"), &format!("/api/v1/cases/{case}/receipt")).await.status, 200);
    assert_eq!(t.get(None, &format!("/api/v1/cases/{case}/receipt")).await.status, 401);

    // More events: a receipt then needs, and gets, a newer checkpoint.
    t.ok("gw111", &case, "resolve", serde_json::json!({"note": "换了灯泡"})).await;
    let r2 = t.get(Some(RESIDENT), &format!("/api/v1/cases/{case}/receipt")).await;
    let ok2 = check(&proof_file(&r2.json()), &verifier, None).unwrap();
    assert_eq!(ok2.positions.len(), 3);
    assert!(ok2.tree_size > cp1.size);

    // Public inclusion proofs carry hashes; the auditor's also the record.
    let pos = ok.positions[0];
    let p =
        t.get(None, &format!("/api/v1/proofs/inclusion?position={pos}&size={}", cp1.size)).await;
    assert_eq!(p.status, 200, "{}", p.text);
    assert!(p.json()["entries"][0].get("leaf").is_none());
    check(&proof_file(&p.json()), &verifier, None).unwrap();
    let pa = t.get(Some("aud"), &format!("/api/v1/proofs/inclusion?position={pos}")).await;
    assert!(pa.json()["entries"][0]["leaf"].is_string());
    check(&proof_file(&pa.json()), &verifier, None).unwrap();
    assert_eq!(t.get(None, "/api/v1/proofs/inclusion?position=1&size=2").await.status, 404);
    assert_eq!(t.get(None, "/api/v1/proofs/inclusion?position=0").await.status, 400);
    assert_eq!(t.get(None, "/api/v1/proofs/inclusion?position=x").await.status, 400);
    assert_eq!(
        t.get(None, &format!("/api/v1/proofs/inclusion?position={}", ok2.tree_size + 1))
            .await
            .status,
        400
    );

    // Consistency between the two checkpoints, both signed notes included.
    let c = t.get(None, &format!("/api/v1/proofs/consistency?from={}", cp1.size)).await;
    assert_eq!(c.status, 200, "{}", c.text);
    let cc = check(&proof_file(&c.json()), &verifier, None).unwrap();
    assert_eq!((cc.old_size, cc.tree_size), (Some(cp1.size), ok2.tree_size));
    assert_eq!(t.get(None, "/api/v1/proofs/consistency?from=7").await.status, 404);

    // tlog-tiles: the checkpoint as text, and the tiles alone rebuild its root.
    let (status, note, _) = raw_get(&t, None, "/tlog/checkpoint").await;
    assert_eq!(status, 200);
    let cp = Checkpoint::open(std::str::from_utf8(&note).unwrap(), &verifier).unwrap();
    assert_eq!(cp.size, ok2.tree_size);
    let mut tree = Tree::new();
    let mut n = 0;
    while tree.size() < cp.size {
        let w = (cp.size - 256 * n).min(256);
        let suffix = if w == 256 { String::new() } else { format!(".p/{w}") };
        let (status, tile, cache) =
            raw_get(&t, None, &format!("/tlog/tile/0/{}{suffix}", encode_index(n))).await;
        assert_eq!(status, 200);
        assert_eq!(tile.len() as u64, 32 * w);
        assert_eq!(cache.unwrap().contains("immutable"), w == 256);
        for h in tile.chunks(32) {
            tree.push_hash(h.try_into().unwrap());
        }
        n += 1;
    }
    assert_eq!(tree.root(cp.size).unwrap(), cp.root);
    // The level-1 tile holds the roots of the full level-0 tiles.
    let full = cp.size / 256;
    if full > 0 {
        let (status, t1, _) = raw_get(&t, None, &format!("/tlog/tile/1/000.p/{full}")).await;
        assert_eq!(status, 200);
        assert_eq!(&t1[..32], &tree.root(256).unwrap());
    } else {
        assert_eq!(raw_get(&t, None, "/tlog/tile/1/000.p/1").await.0, 404);
    }

    // Entry bundles carry case data: auditors and supervisors only.
    let last = (cp.size - 1) / 256;
    let w = cp.size - 256 * last;
    let path = format!("/tlog/tile/entries/{}.p/{w}", encode_index(last));
    assert_eq!(raw_get(&t, None, &path).await.0, 401);
    assert_eq!(raw_get(&t, Some(RESIDENT), &path).await.0, 403);
    let (status, bundle, _) = raw_get(&t, Some("sup"), &path).await;
    assert_eq!(status, 200);
    let entries = decode_bundle(&bundle).unwrap();
    assert_eq!(entries.len() as u64, w);
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(leaf_hash(e), tree.leaf(256 * last + i as u64).unwrap());
    }

    // Malformed and missing tiles.
    assert_eq!(raw_get(&t, None, "/tlog/tile/0/1").await.0, 400);
    assert_eq!(raw_get(&t, None, "/tlog/tile/0/000.p/256").await.0, 400);
    assert_eq!(raw_get(&t, None, &format!("/tlog/tile/0/{}", encode_index(last + 1))).await.0, 404);
    assert_eq!(
        raw_get(&t, None, &format!("/tlog/tile/0/{}.p/{}", encode_index(last), w + 1)).await.0,
        404
    );
    t.stop().await;
}

#[tokio::test]
async fn the_tree_follows_appends_without_a_request() {
    let t = TestServer::start().await;
    let case = t.submit(RESIDENT, G111).await;
    let head = t.head().await.0;
    let tr = t.server().state().transparency.clone();
    // The follower hashes after the commit, off the write path: wait for it.
    for _ in 0..3000 {
        if tr.size() == head {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(tr.size(), head, "the tree did not follow {case}");
    t.stop().await;
}

#[tokio::test]
async fn a_server_without_the_log_key_serves_proofs_but_signs_nothing() {
    let t = TestServer::start_with(|o| o.transparency = None).await;
    t.submit(RESIDENT, G111).await;
    let head = t.head().await.0;
    let refused = t.post("aud", "/api/v1/checkpoint", serde_json::json!({}), &[]).await;
    assert_eq!(refused.status, 422, "{}", refused.text);
    assert_eq!(refused.code(), "no_log_key");
    assert_eq!(t.get(None, "/api/v1/checkpoint").await.status, 404);
    // The tree follows the log in the background: wait for it.
    let tr = t.server().state().transparency.clone();
    for _ in 0..3000 {
        if tr.size() == head {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let p = t.get(None, &format!("/api/v1/proofs/inclusion?position=1&size={head}")).await;
    assert_eq!(p.status, 200, "{}", p.text);
    let v = p.json();
    let body = Checkpoint::parse(v["checkpoint"].as_str().unwrap()).unwrap();
    assert_eq!(body.size, head);
    // The proof checks against that root, though nothing signed it.
    let proof: Vec<[u8; 32]> = v["entries"][0]["inclusion_proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD
                .decode(h.as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap()
        })
        .collect();
    let leaf: [u8; 32] = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(v["entries"][0]["leaf_hash"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap()
    };
    gridcase_engine::transparency::gridcase_trust::merkle::verify_inclusion(
        0, head, &leaf, &proof, &body.root,
    )
    .unwrap();
    t.stop().await;
}
