//! Issue 12, part 1: nothing unverified is served. A record whose bytes
//! changed in the store is refused by every endpoint that reads it, with a
//! 500 whose body names its position, an alarm in `/metrics`, and the
//! event feed's error message; records it does not touch are still served.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::*;

/// A 500 with code `corruption` naming `position`.
fn refused_at(r: &Reply, position: u64, what: &str) {
    assert_eq!(r.status, 500, "{what}: {}", r.text);
    let v = r.json();
    assert_eq!(v["error"]["code"], "corruption", "{what}: {}", r.text);
    assert_eq!(v["error"]["position"], json!(position), "{what}: {}", r.text);
    let message = v["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains(&format!("position {position}")), "{what}: {message}");
}

/// The value of an unlabelled series in the metrics text.
fn metric(text: &str, name: &str) -> f64 {
    let prefix = format!("{name} ");
    let line = text.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("{name}"));
    line[prefix.len()..].trim().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_record_is_refused_with_its_position() {
    let t = TestServer::start().await;
    let a = t.submit(RESIDENT, G111).await;
    let (submitted, _) = t.head().await;
    // Rejected, the case leaves the engine's open cases: reading it or
    // commanding it loads it from the log.
    t.ok("cs11", &a, "reject", json!({"reason": "不属于受理范围"})).await;
    let b = t.submit(RESIDENT, G111).await;
    let (head, _) = t.head().await;
    let metrics = t.get(None, "/metrics").await;
    assert_eq!(metric(&metrics.text, "gridcase_corruption_detected_total"), 0.0);

    t.log.tamper_for_test(submitted, 40).unwrap();

    let r = t.get(Some("sup"), &format!("/api/v1/cases/{a}")).await;
    refused_at(&r, submitted, "the case");
    let r = t.get(Some("sup"), &format!("/api/v1/cases/{a}/timeline")).await;
    refused_at(&r, submitted, "its timeline");
    // A command on the case is refused before anything is appended.
    let r = t.command(RESIDENT, &a, "withdraw", json!({"reason": "不需要了"})).await;
    refused_at(&r, submitted, "a command");
    assert_eq!(t.head().await.0, head, "the refused command appended");
    let r = t.get(Some("sup"), &format!("/api/v1/replay?position={head}")).await;
    refused_at(&r, submitted, "replay");

    // The feed from the start ends with an error naming the position.
    let res = t
        .client
        .get(format!("{}/api/v1/events?from=1", t.base))
        .bearer_auth(t.key("sup"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body = tokio::time::timeout(Duration::from_secs(20), res.text())
        .await
        .expect("the feed did not end at the bad record")
        .unwrap();
    let (_, error) = body.split_once("event: error\ndata: ").unwrap_or_else(|| panic!("{body}"));
    let data: Value = serde_json::from_str(error.lines().next().unwrap()).unwrap();
    assert_eq!(data["code"], "corruption");
    assert_eq!(data["position"], json!(submitted));
    let served: Vec<u64> = body
        .lines()
        .filter_map(|l| l.strip_prefix("id: ").or_else(|| l.strip_prefix("id:")))
        .map(|v| v.trim().parse().unwrap())
        .collect();
    // (A page holding a bad record is refused whole, so the records
    // before it in that page are not sent either.)
    assert!(served.iter().all(|&p| p < submitted), "the feed served past the bad record: {body}");

    // The alarm: every refusal counted, the position kept.
    let metrics = t.get(None, "/metrics").await;
    assert!(metric(&metrics.text, "gridcase_corruption_detected_total") >= 5.0);
    assert_eq!(metric(&metrics.text, "gridcase_corruption_first_position"), submitted as f64);
    // The audit reports it as a finding, not as an error.
    let v = t.get(Some("sup"), "/api/v1/audit/verify").await.json();
    assert_eq!(v["ok"], json!(false), "{v}");
    assert_eq!(v["bad_position"], json!(submitted), "{v}");

    // Records the change does not touch are still served.
    let r = t.get(Some("sup"), &format!("/api/v1/cases/{b}/timeline")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    t.stop().await;
}
