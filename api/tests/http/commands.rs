//! Idempotent retries, ETag/If-Match preconditions and authorisation
//! denials: none of the refused requests may append anything.

use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn a_retried_request_returns_the_original_response_and_appends_nothing() {
    let t = TestServer::start().await;
    let body = json!({"kind": "help", "category": "street_light", "description": "灯不亮", "location": G111});
    let first =
        t.post(RESIDENT, "/api/v1/cases", body.clone(), &[("idempotency-key", "submit-1")]).await;
    assert_eq!(first.status, 201, "{}", first.text);
    let head = t.head().await;
    let again =
        t.post(RESIDENT, "/api/v1/cases", body.clone(), &[("idempotency-key", "submit-1")]).await;
    assert_eq!(again.status, 201);
    assert_eq!(again.text, first.text, "the same response");
    assert_eq!(again.header("idempotent-replayed").as_deref(), Some("true"));
    assert_eq!(t.head().await, head, "nothing appended");

    // Same key, different body: 409, nothing appended.
    let other =
        json!({"kind": "help", "category": "noise", "description": "噪音", "location": G111});
    let clash = t.post(RESIDENT, "/api/v1/cases", other, &[("idempotency-key", "submit-1")]).await;
    assert_eq!(clash.status, 409, "{}", clash.text);
    assert_eq!(clash.code(), "idempotency_mismatch");
    assert_eq!(t.head().await, head);

    // Keys are per caller: another resident's same key is a new request.
    let theirs =
        t.post(OTHER_RESIDENT, "/api/v1/cases", body, &[("idempotency-key", "submit-1")]).await;
    assert_eq!(theirs.status, 201, "{}", theirs.text);
    assert_ne!(theirs.json()["case"]["id"], first.json()["case"]["id"]);

    // A command retried after the case moved on still returns what it returned then.
    let id = first.json()["case"]["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/cases/{id}/assign");
    let assign =
        t.post("cs11", &path, json!({"worker": "gw111"}), &[("idempotency-key", "assign-1")]).await;
    assert_eq!(assign.status, 200);
    t.ok("gw111", &id, "escalate", json!({"reason": "上报"})).await;
    let head = t.head().await;
    let retry =
        t.post("cs11", &path, json!({"worker": "gw111"}), &[("idempotency-key", "assign-1")]).await;
    assert_eq!(retry.status, 200);
    assert_eq!(retry.text, assign.text);
    assert_eq!(retry.json()["case"]["status"], "assigned", "the case as the first call left it");
    assert_eq!(t.head().await, head);
    let bad_key =
        t.post("cs11", &path, json!({"worker": "gw111"}), &[("idempotency-key", "")]).await;
    assert_eq!(bad_key.status, 400);
    t.stop().await;
}

#[tokio::test]
async fn if_match_runs_a_command_only_at_the_expected_version() {
    let t = TestServer::start().await;
    let id = t.submit(RESIDENT, G111).await;
    let etag = t.get(Some("cs11"), &format!("/api/v1/cases/{id}")).await.header("etag").unwrap();
    assert_eq!(etag, "\"1\"");
    let path = format!("/api/v1/cases/{id}/assign");
    let ok = t.post("cs11", &path, json!({"worker": "gw111"}), &[("if-match", &etag)]).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(ok.header("etag").as_deref(), Some("\"2\""));
    let head = t.head().await;
    let stale = t
        .post(
            "gw111",
            &format!("/api/v1/cases/{id}/escalate"),
            json!({"reason": "x"}),
            &[("if-match", &etag)],
        )
        .await;
    assert_eq!(stale.status, 412, "{}", stale.text);
    assert_eq!(stale.code(), "precondition_failed");
    assert_eq!(t.head().await, head, "nothing appended");
    let garbage = t
        .post(
            "gw111",
            &format!("/api/v1/cases/{id}/escalate"),
            json!({"reason": "x"}),
            &[("if-match", "yesterday")],
        )
        .await;
    assert_eq!(garbage.status, 400);
    assert_eq!(garbage.code(), "invalid_if_match");
    let current = t
        .post(
            "gw111",
            &format!("/api/v1/cases/{id}/escalate"),
            json!({"reason": "x"}),
            &[("if-match", "\"2\"")],
        )
        .await;
    assert_eq!(current.status, 200, "{}", current.text);
    t.stop().await;
}

#[tokio::test]
async fn denials_for_role_and_unit_mismatches_append_nothing() {
    let t = TestServer::start().await;
    let id = t.submit(RESIDENT, G111).await;
    let head = t.head().await;
    // Refused to someone who may read the case: 403 with the rule.
    let r = t.command("aud", &id, "reject", json!({"reason": "x"})).await;
    assert_eq!(r.status, 403, "an auditor changes nothing: {}", r.text);
    let e = &r.json()["error"];
    assert_eq!(e["code"], "not_authorised");
    assert_eq!(e["rule"], "not_authorised");
    assert_eq!(e["case_id"], id.as_str());
    assert_eq!(e["state"], "submitted");
    assert!(e["correlation_id"].as_str().is_some_and(|c| !c.is_empty()));
    // Refused to someone outside the case's read scope: the same 404 as a
    // case that does not exist, so a command tells them nothing either.
    let missing = t.command("cs12", "GC9999999", "assign", json!({"worker": "gw111"})).await;
    assert_eq!(missing.status, 404, "{}", missing.text);
    let out_of_scope: &[(&str, &str, serde_json::Value)] = &[
        // Staff of another community.
        ("cs12", "assign", json!({"worker": "gw111"})),
        // A grid worker of another grid.
        ("gw112", "escalate", json!({"reason": "x"})),
        // A department on a case it does not hold.
        ("d01a", "claim", json!({})),
        // The street of another district part.
        ("ss2", "reject", json!({"reason": "x"})),
        // Another resident cannot withdraw this one's case.
        (OTHER_RESIDENT, "withdraw", json!({"reason": "x"})),
    ];
    for (actor, command, body) in out_of_scope {
        let r = t.command(actor, &id, command, body.clone()).await;
        assert_eq!(r.status, 404, "{actor} {command}: {}", r.text);
        assert_eq!(r.code(), "not_found", "{actor} {command}: {}", r.text);
        assert_eq!(
            r.json()["error"]["message"],
            missing.json()["error"]["message"].as_str().unwrap().replace("GC9999999", &id),
            "word for word the missing case's answer"
        );
    }
    // Submissions: an auditor and a department may not submit; a grid worker only in its grid.
    for (actor, location) in [("aud", G111), ("d01a", G111), ("gw111", G211)] {
        let r = t
            .post(actor, "/api/v1/cases", json!({"kind": "help", "category": "noise", "description": "x", "location": location}), &[])
            .await;
        assert_eq!(r.status, 403, "{actor} submit: {}", r.text);
    }
    // A state that does not allow the command is 409 with the rule.
    let r = t.command("cs11", &id, "close", json!({})).await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.json()["error"]["rule"], "invalid_transition");
    // No key, an unknown key, a malformed header: 401.
    let r = t
        .send(
            t.client
                .post(format!("{}/api/v1/cases/{id}/reject", t.base))
                .json(&json!({"reason": "x"})),
        )
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate").as_deref(), Some("Bearer"));
    let r = t
        .send(
            t.client
                .post(format!("{}/api/v1/cases/{id}/reject", t.base))
                .bearer_auth("gck_nope")
                .json(&json!({"reason": "x"})),
        )
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.code(), "unauthenticated");
    let r = t
        .send(
            t.client
                .get(format!("{}/api/v1/cases/{id}", t.base))
                .header("authorization", "Basic abc"),
        )
        .await;
    assert_eq!(r.status, 401);
    // Staff-only resources refuse residents.
    for path in ["/api/v1/backlog", "/api/v1/stats", "/api/v1/events", "/api/v1/replay?position=1"]
    {
        let r = t.get(Some(RESIDENT), path).await;
        assert_eq!(r.status, 403, "{path}");
    }
    assert_eq!(t.head().await, head, "event count and head hash unchanged");
    t.stop().await;
}
