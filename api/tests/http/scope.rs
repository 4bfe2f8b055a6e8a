//! Who may read what (`api/src/scope.rs`, one rule for every surface),
//! residents' pseudonyms, and the read audit (`PersonalDataRead`).

use serde_json::{json, Value};

use crate::common::*;
use crate::events::Feed;

const PHONE: &str = "13800000001";

/// The recorded reads of a case, as the supervisor sees them.
async fn reads(t: &TestServer, id: &str) -> Vec<Value> {
    let r = t.get(Some("sup"), &format!("/api/v1/cases/{id}/reads")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json().as_array().unwrap().clone()
}

fn count(reads: &[Value], reader: &str) -> usize {
    reads.iter().filter(|r| r["reader"] == reader).count()
}

#[tokio::test]
async fn each_caller_reads_only_its_scope_and_out_of_scope_is_not_found() {
    let t = TestServer::start().await;
    let id = t.submit(RESIDENT, G111).await;
    let case = |who: &'static str| {
        let path = format!("/api/v1/cases/{id}");
        let t = &t;
        async move { t.get(Some(who), &path).await }
    };
    // Another resident, another community, a department that never held
    // it: the same 404 as a case that does not exist.
    let missing = t.get(Some("sup"), "/api/v1/cases/GC9999999").await;
    assert_eq!(missing.status, 404);
    for who in [OTHER_RESIDENT, "cs21", "d01a", "ss2"] {
        for path in ["", "/timeline", "/chain", "/receipt"] {
            let r = t.get(Some(who), &format!("/api/v1/cases/{id}{path}")).await;
            assert_eq!(r.status, 404, "{who} {path}: {}", r.text);
            assert_eq!(r.json()["code"], missing.json()["code"], "{who} {path}");
        }
    }
    // Its community, its grid's worker, its street, the district: readable.
    for who in [RESIDENT, "cs11", "gw111", "ss1", "sup", "aud"] {
        assert_eq!(case(who).await.status, 200, "{who}");
    }
    // Personal data only for the resident, the community and the district.
    for who in [RESIDENT, "cs11", "sup", "aud"] {
        let c = case(who).await.json();
        assert_eq!(c["contact"]["phone"], PHONE, "{who}");
        assert_eq!(c["submitted_by"], RESIDENT, "{who}");
    }
    for who in ["gw111", "ss1"] {
        let r = case(who).await;
        assert!(!r.text.contains(PHONE), "{who} sees the phone: {}", r.text);
        let c = r.json();
        assert!(c["contact"].is_null() && c["contact_redacted"] == true, "{who}");
        let pseudonym = c["submitted_by"].as_str().unwrap().to_string();
        assert!(pseudonym.starts_with("resident:~"), "{who}: {pseudonym}");
        let tl = t.get(Some(who), &format!("/api/v1/cases/{id}/timeline")).await;
        assert!(!tl.text.contains(PHONE), "{who}'s timeline: {}", tl.text);
        assert_eq!(tl.json()["entries"][0]["actor"], pseudonym.as_str(), "stable pseudonym");
    }

    // Escalated to the street and dispatched to D01: the department now
    // reads it (it holds it), with the contact; D02 still does not.
    t.ok("cs11", &id, "escalate", json!({"reason": "需要街道协调"})).await;
    t.ok(
        "ss1",
        &id,
        "dispatch",
        json!({"departments": ["D01"], "note": format!("请联系居民 {PHONE}")}),
    )
    .await;
    assert_eq!(case("d01a").await.json()["contact"]["phone"], PHONE);
    assert_eq!(case("d02a").await.status, 404);
    // The community it came from keeps reading it.
    assert_eq!(case("cs11").await.status, 200);

    // Reports are narrowed too: another street's staff see no row of ours.
    let b = t.get(Some("ss2"), "/api/v1/backlog").await;
    assert_eq!(b.status, 200, "{}", b.text);
    assert!(!b.text.contains(G111), "ss2's backlog shows grid {G111}");
    assert!(b.json()["report"]["district"].is_null());
    assert!(t.get(Some("sup"), "/api/v1/backlog").await.text.contains(G111));

    // The public Open311 listing: no staff note, no phone number.
    for path in [
        "/open311/v2/requests.json".to_string(),
        format!("/open311/v2/requests/{id}.json?extensions=true"),
        "/open311/v2/requests.xml".to_string(),
    ] {
        let r = t.get(None, &path).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        assert!(!r.text.contains(PHONE), "{path} shows the phone: {}", r.text);
        assert!(!r.text.contains("请联系居民"), "{path} shows a staff note: {}", r.text);
    }
    t.stop().await;
}

#[tokio::test]
async fn showing_personal_data_is_recorded_once_a_minute_per_reader() {
    let t = TestServer::start().await;
    let id = t.submit(RESIDENT, G111).await;
    // The resident's own reads are not recorded.
    assert_eq!(t.get(Some(RESIDENT), &format!("/api/v1/cases/{id}")).await.status, 200);
    let before = reads(&t, &id).await;
    assert_eq!(count(&before, RESIDENT), 0);
    // Three reads within a minute by the community: one event.
    for _ in 0..3 {
        assert_eq!(t.get(Some("cs11"), &format!("/api/v1/cases/{id}")).await.status, 200);
    }
    let r = reads(&t, &id).await;
    assert_eq!(count(&r, "cs11"), 1, "{r:?}");
    let one = r.iter().find(|r| r["reader"] == "cs11").unwrap();
    assert_eq!(one["fields"], json!(["contact", "submitted_by"]));
    assert_eq!(one["surface"], "api");
    assert!(one["at"].as_str().unwrap().ends_with("+08:00"), "district zone: {one}");
    // A minute later, a new read is a new event.
    t.clock.advance(61_000);
    assert_eq!(t.get(Some("cs11"), &format!("/api/v1/cases/{id}")).await.status, 200);
    assert_eq!(count(&reads(&t, &id).await, "cs11"), 2);
    // The auditor's reads are recorded too; a redacted view is not a read.
    assert_eq!(t.get(Some("aud"), &format!("/api/v1/cases/{id}")).await.status, 200);
    assert_eq!(t.get(Some("gw111"), &format!("/api/v1/cases/{id}")).await.status, 200);
    let r = reads(&t, &id).await;
    assert_eq!(count(&r, "aud"), 1);
    assert_eq!(count(&r, "gw111"), 0);
    // Reading a case never changes its version (the reads are another stream).
    let c = t.get(Some("sup"), &format!("/api/v1/cases/{id}")).await.json();
    assert_eq!(c["version"], 1);
    // The read audit is for the district only.
    for who in ["cs11", "aud"] {
        let s = t.get(Some(who), &format!("/api/v1/cases/{id}/reads")).await.status;
        assert_eq!(s, if who == "aud" { 200 } else { 403 }, "{who}");
    }
    t.stop().await;
}

#[tokio::test]
async fn the_feed_sends_only_readable_cases_with_pseudonyms_where_due() {
    let t = TestServer::start().await;
    let mine = t.submit(RESIDENT, G111).await;
    let theirs = t.submit(OTHER_RESIDENT, G211).await;
    // Residents have no feed at all.
    assert_eq!(t.get(Some(RESIDENT), "/api/v1/events?from=1").await.status, 403);
    // cs21 (五星社区) gets registry events and its own case, not ours.
    let mut f = Feed::open(&t, "cs21", "?from=1", None).await;
    loop {
        let m = f.next().await;
        assert_ne!(m.data["stream"], format!("case-{mine}"), "cs21 got our case: {m:?}");
        if m.data["stream"] == format!("case-{theirs}") {
            assert_eq!(m.event, "CaseSubmitted");
            assert_eq!(m.data["actor"], OTHER_RESIDENT, "its community sees the resident");
            assert!(m.data["data"]["contact"].is_object());
            break;
        }
    }
    // The street above ours sees our case, pseudonymised and without contact.
    let mut f = Feed::open(&t, "ss1", "?from=1", None).await;
    loop {
        let m = f.next().await;
        assert_ne!(m.data["stream"], format!("case-{theirs}"));
        if m.data["stream"] == format!("case-{mine}") {
            assert!(m.data["actor"].as_str().unwrap().starts_with("resident:~"), "{m:?}");
            assert!(m.data["data"]["contact"].is_null());
            assert!(!m.data.to_string().contains(PHONE));
            break;
        }
    }
    t.stop().await;
}
