//! Every lifecycle command over HTTP, case reads, contact redaction and
//! the projection endpoints.

use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn a_case_goes_up_the_chain_and_back_down_through_every_step() {
    let t = TestServer::start().await;
    let submitted = t
        .post(
            RESIDENT,
            "/api/v1/cases",
            json!({"kind": "complaint", "category": "street_light", "description": "路灯不亮", "location": G111,
                   "contact": {"name": "李四", "phone": "13800000001"}}),
            &[],
        )
        .await;
    assert_eq!(submitted.status, 201, "{}", submitted.text);
    assert_eq!(submitted.header("etag").as_deref(), Some("\"1\""));
    let body = submitted.json();
    let id = body["case"]["id"].as_str().unwrap().to_string();
    assert_eq!(submitted.header("location"), Some(format!("/api/v1/cases/{id}")));
    assert_eq!(body["case"]["status"], "submitted");
    assert_eq!(body["case"]["channel"], "app", "a resident's default channel");
    assert_eq!(body["events"][0]["event_type"], "CaseSubmitted");
    assert_eq!(
        body["events"][0]["data"]["contact"]["phone"], "13800000001",
        "the submitter sees its contact"
    );

    let v = t.ok("cs11", &id, "assign", json!({"worker": "gw111"})).await;
    assert_eq!(v["case"]["status"], "assigned");
    let v = t.ok("gw111", &id, "escalate", json!({"reason": "需要街道协调"})).await;
    assert_eq!(v["case"]["status"], "escalated");
    assert_eq!(v["case"]["holders"][0]["unit"], "320902001");
    let v = t.ok("ss1", &id, "dispatch", json!({"departments": ["D01"], "note": "请处理"})).await;
    assert_eq!(v["case"]["status"], "dispatched");
    let v = t.ok("d01a", &id, "claim", json!({})).await;
    assert_eq!(v["case"]["holders"][0]["claimed"], true);
    let due =
        gridcase_engine::time::Timestamp::parse(v["case"]["resolution_due"].as_str().unwrap())
            .unwrap();
    let until = due.plus_ms(2 * 86_400_000).to_rfc3339();
    let v = t.ok("d01a", &id, "extension", json!({"until": until, "reason": "需要采购灯具"})).await;
    assert_eq!(v["case"]["pending_extension"]["unit"], "D01");
    let v = t.ok("sup", &id, "extension/decision", json!({"approve": true})).await;
    assert_eq!(v["case"]["resolution_due"], until);
    let v = t.ok("d01a", &id, "resolve", json!({"note": "已更换灯具"})).await;
    assert_eq!(v["case"]["status"], "resolved");
    t.ok("cs11", &id, "callback", json!({"satisfaction": "unsatisfied", "solved": false})).await;
    let v = t.ok("cs11", &id, "reopen", json!({"reason": "灯又坏了"})).await;
    assert_eq!(v["case"]["status"], "dispatched");
    assert_eq!(v["case"]["reopen_count"], 1);
    t.ok("d01a", &id, "resolve", json!({"note": "更换了整条线路"})).await;
    t.ok(
        "cs11",
        &id,
        "callback",
        json!({"satisfaction": "satisfied", "solved": true, "note": "满意"}),
    )
    .await;
    let v = t.ok("cs11", &id, "close", json!({"note": "办结"})).await;
    assert_eq!(v["case"]["status"], "closed");
    let version = v["case"]["version"].as_u64().unwrap();

    // Reads: state with an ETag, the timeline, the chain.
    let got = t.get(Some("cs11"), &format!("/api/v1/cases/{id}")).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.header("etag"), Some(format!("\"{version}\"")));
    assert_eq!(got.json()["contact"]["name"], "李四", "the community's staff see the contact");
    let not_modified = t
        .send(
            t.client
                .get(format!("{}/api/v1/cases/{id}", t.base))
                .bearer_auth(t.key("cs11"))
                .header("if-none-match", format!("\"{version}\"")),
        )
        .await;
    assert_eq!(not_modified.status, 304);
    let tl = t.get(Some("ss1"), &format!("/api/v1/cases/{id}/timeline")).await.json();
    assert_eq!(tl["entries"].as_array().unwrap().len() as u64, version);
    assert_eq!(tl["entries"][0]["event_type"], "CaseSubmitted");
    let chain = t.get(Some("ss1"), &format!("/api/v1/cases/{id}/chain")).await;
    assert_eq!(chain.status, 200, "{}", chain.text);
    assert!(chain.json()["shape"].as_str().unwrap().contains("street"));

    // Read scoping: another resident and another community do not see the
    // case at all (404, as for a missing one); the street that held it
    // sees it without the contact and with the resident's pseudonym; the
    // department holding it last, the district and the resident see it all.
    for who in [OTHER_RESIDENT, "cs12"] {
        let r = t.get(Some(who), &format!("/api/v1/cases/{id}")).await;
        assert_eq!(r.status, 404, "{who}: {}", r.text);
    }
    for who in ["ss1"] {
        let c = t.get(Some(who), &format!("/api/v1/cases/{id}")).await.json();
        assert!(c["contact"].is_null(), "{who} must not see the contact");
        assert_eq!(c["contact_redacted"], true);
        assert!(c["submitted_by"].as_str().unwrap().starts_with("resident:~"), "{c}");
    }
    for who in ["sup", RESIDENT, "d01a"] {
        let c = t.get(Some(who), &format!("/api/v1/cases/{id}")).await.json();
        assert_eq!(c["contact"]["phone"], "13800000001", "{who} sees the contact");
    }
    t.stop().await;
}

#[tokio::test]
async fn reject_merge_withdraw_return_and_supervise() {
    let t = TestServer::start().await;
    let rejected = t.submit(RESIDENT, G111).await;
    let v = t.ok("cs11", &rejected, "reject", json!({"reason": "不属于受理范围"})).await;
    assert_eq!(v["case"]["status"], "rejected");

    let dup = t.submit(OTHER_RESIDENT, G111).await;
    let original = t.submit(RESIDENT, G111).await;
    let v = t.ok("cs11", &dup, "merge", json!({"into": original})).await;
    assert_eq!(v["case"]["status"], "merged");
    assert_eq!(v["case"]["merged_into"], original.as_str());

    let v = t.ok(RESIDENT, &original, "withdraw", json!({"reason": "已自行解决"})).await;
    assert_eq!(v["case"]["status"], "withdrawn");

    let joint = t.submit(RESIDENT, G111).await;
    t.ok("cs11", &joint, "escalate", json!({"reason": "多部门"})).await;
    t.ok("ss1", &joint, "dispatch", json!({"departments": ["D01", "D02"], "lead": "D01"})).await;
    let v = t.ok("d02a", &joint, "return", json!({"reason": "不是公安的职责"})).await;
    assert_eq!(v["case"]["holders"].as_array().unwrap().len(), 1);
    assert_eq!(v["case"]["return_count"], 1);

    // Past the resolution deadline (7 days for an ordinary request), a supervisor supervises.
    t.clock.advance(8 * 86_400_000);
    let v = t.ok("sup", &joint, "supervise", json!({"note": "请尽快办结"})).await;
    assert_eq!(v["events"][0]["event_type"], "CaseSupervised");

    // The projections see it all.
    let pos = t.head().await.0;
    t.server().state().projection_position.clone().wait_for(|p| *p >= pos).await.unwrap();
    for path in [
        "/api/v1/backlog",
        "/api/v1/rates",
        "/api/v1/chains",
        "/api/v1/overdue",
        "/api/v1/rates/ranking",
    ] {
        let r = t.get(Some("ss1"), path).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        assert_eq!(r.json()["position"].as_u64(), Some(pos), "{path}");
    }
    let overdue = t.get(Some("sup"), "/api/v1/overdue").await.json();
    assert!(overdue["report"]["overdue"].as_u64().unwrap() >= 1);
    let bad = t.get(Some("sup"), "/api/v1/rates?period=2026-13").await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.code(), "invalid_period");
    t.stop().await;
}

#[tokio::test]
async fn replay_to_the_live_position_gives_the_live_digests_and_audit_verifies() {
    let t = TestServer::start().await;
    let id = t.submit(RESIDENT, G111).await;
    t.ok("cs11", &id, "assign", json!({"worker": "gw111"})).await;
    let (head, hash) = t.head().await;
    t.server().state().projection_position.clone().wait_for(|p| *p >= head).await.unwrap();
    let live = t.server().state().projections.read().unwrap().digests();
    let r = t.get(Some("aud"), &format!("/api/v1/replay?position={head}")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert_eq!(v["digests"]["combined"], live.combined.as_str());
    assert_eq!(v["head_hash"], hash.as_str());
    assert!(v["backlog"].is_object());
    let earlier = t.get(Some("aud"), "/api/v1/replay?position=3&reports=false").await.json();
    assert_eq!(earlier["position"], 3);
    assert!(earlier["backlog"].is_null());
    let by_time = t.get(Some("aud"), "/api/v1/replay?as_of=2000-01-01T00:00:00Z").await.json();
    assert_eq!(by_time["position"], 0);
    for bad in [
        "/api/v1/replay",
        "/api/v1/replay?position=1&as_of=2026-01-01",
        "/api/v1/replay?as_of=yesterday",
    ] {
        let r = t.get(Some("aud"), bad).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
    }
    let audit = t.get(Some("aud"), "/api/v1/audit/verify").await.json();
    assert_eq!(audit["ok"], true);
    assert_eq!(audit["head_position"], head);
    assert_eq!(audit["head_hash"], hash.as_str());
    t.stop().await;
}

/// A phone app reports with only a GPS point: the case lands in the
/// micro-grid whose boundary holds it, says so, and keeps the point.
#[tokio::test]
async fn a_case_submitted_with_only_a_point_lands_in_its_micro_grid() {
    let t = TestServer::start().await;
    let submit = |point: serde_json::Value| json!({"kind": "report", "category": "street_light", "description": "路灯不亮", "point": point});
    let r = t
        .post(RESIDENT, "/api/v1/cases", submit(json!({"lat": 33.3905, "lon": 120.1605})), &[])
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let case = &r.json()["case"];
    assert_eq!(case["micro_grid"], "32090200100100101");
    assert_eq!(case["grid"], G111);
    assert_eq!(case["located_by"], "point");
    assert_eq!(case["point"], json!({"lat": 33.3905, "lon": 120.1605}));
    let events = r.json()["events"].as_array().unwrap().clone();
    assert_eq!(events[1]["event_type"], "SubmissionDetailed");
    let id = case["id"].as_str().unwrap();
    let got = t.get(Some(RESIDENT), &format!("/api/v1/cases/{id}")).await.json();
    assert_eq!(got["point"], json!({"lat": 33.3905, "lon": 120.1605}));
    // A code still decides, and the point is kept.
    let mut by_code = submit(json!({"lat": 33.3905, "lon": 120.1605}));
    by_code["location"] = G211.into();
    let r = t.post(RESIDENT, "/api/v1/cases", by_code, &[]).await.json();
    assert_eq!((&r["case"]["grid"], &r["case"]["located_by"]), (&json!(G211), &json!("code")));
    // Not a position on Earth, outside the district, or no location at all.
    let bad =
        t.post(RESIDENT, "/api/v1/cases", submit(json!({"lat": 91.0, "lon": 120.0})), &[]).await;
    assert_eq!(bad.status, 400, "{}", bad.text);
    assert!(bad.text.contains("latitude"), "{}", bad.text);
    let far =
        t.post(RESIDENT, "/api/v1/cases", submit(json!({"lat": 33.0, "lon": 120.16})), &[]).await;
    assert_eq!(far.status, 422, "{}", far.text);
    assert!(far.text.contains("nearest") && far.text.contains("m away"), "{}", far.text);
    let none = t
        .post(
            RESIDENT,
            "/api/v1/cases",
            json!({"kind": "report", "category": "street_light", "description": "x"}),
            &[],
        )
        .await;
    assert_eq!(none.status, 422, "{}", none.text);
    t.stop().await;
}
