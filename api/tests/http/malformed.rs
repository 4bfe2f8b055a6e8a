//! Malformed input never changes the store; panics become 500s with a
//! correlation id; the OpenAPI document matches the router; metrics.

use std::collections::BTreeSet;

use axum::routing::get;
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn malformed_input_is_refused_with_a_machine_readable_error_and_changes_nothing() {
    let t = TestServer::start_with(|o| o.body_limit = 16 * 1024).await;
    let id = t.submit(RESIDENT, G111).await;
    let head = t.head().await;
    let post_raw = |path: String, ct: &'static str, body: String| {
        t.client
            .post(format!("{}{path}", t.base))
            .bearer_auth(t.key("cs11"))
            .header("content-type", ct)
            .body(body)
    };
    let cases: Vec<(u16, &str, reqwest::RequestBuilder)> = vec![
        (400, "malformed_json", post_raw("/api/v1/cases".into(), "application/json", "{\"kind\": ".into())),
        (400, "malformed_json", post_raw(format!("/api/v1/cases/{id}/reject"), "application/json", "not json".into())),
        (422, "invalid_body", post_raw(format!("/api/v1/cases/{id}/reject"), "application/json", "{\"reason\":\"x\",\"extra\":1}".into())),
        (422, "invalid_body", post_raw(format!("/api/v1/cases/{id}/reject"), "application/json", "{}".into())),
        (422, "invalid_body", post_raw(format!("/api/v1/cases/{id}/reject"), "application/json", "{\"reason\": 5}".into())),
        (422, "invalid_body", post_raw("/api/v1/cases".into(), "application/json",
            json!({"kind": "gossip", "category": "noise", "description": "x", "location": G111}).to_string())),
        (422, "invalid_argument", post_raw("/api/v1/cases".into(), "application/json",
            json!({"kind": "help", "category": "pothole", "description": "x", "location": G111}).to_string())),
        (422, "invalid_argument", post_raw("/api/v1/cases".into(), "application/json",
            json!({"kind": "help", "category": "noise", "description": "x", "location": "999999"}).to_string())),
        (422, "invalid_argument", post_raw(format!("/api/v1/cases/{id}/assign"), "application/json",
            json!({"worker": "gw211"}).to_string())),
        (422, "invalid_time", post_raw(format!("/api/v1/cases/{id}/extension"), "application/json",
            json!({"until": "next friday", "reason": "x"}).to_string())),
        (415, "unsupported_media_type", post_raw(format!("/api/v1/cases/{id}/reject"), "text/plain", "reason=x".into())),
        (413, "payload_too_large", post_raw(format!("/api/v1/cases/{id}/reject"), "application/json",
            json!({"reason": "x".repeat(20 * 1024)}).to_string())),
        (400, "invalid_case_id", post_raw("/api/v1/cases/GC%00%2F..%2F/reject".into(), "application/json", "{\"reason\":\"x\"}".into())),
        (404, "not_found", post_raw("/api/v1/cases/GC9999999/reject".into(), "application/json", "{\"reason\":\"x\"}".into())),
        (404, "not_found", post_raw("/api/v1/nowhere".into(), "application/json", "{}".into())),
        (405, "method_not_allowed", t.client.delete(format!("{}/api/v1/cases/{id}", t.base)).bearer_auth(t.key("cs11"))),
        (400, "invalid_query", t.client.get(format!("{}/api/v1/backlog?now=1&now=2", t.base)).bearer_auth(t.key("cs11"))),
        (400, "invalid_query", t.client.get(format!("{}/api/v1/events?from=soon", t.base)).bearer_auth(t.key("sup"))),
        (400, "invalid_time", t.client.get(format!("{}/api/v1/backlog?now=soon", t.base)).bearer_auth(t.key("cs11"))),
    ];
    for (status, code, req) in cases {
        let r = t.send(req).await;
        assert_eq!(r.status, status, "{code}: {}", r.text);
        let e = r.json();
        assert_eq!(e["error"]["code"], code, "{}", r.text);
        assert!(e["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert_eq!(e["error"]["correlation_id"].as_str(), r.header("x-request-id").as_deref());
    }
    // One rule for query strings on every route: an unknown parameter is
    // ignored (the answer is the one without it), a known one is checked.
    for path in [
        "/api/v1/backlog",
        "/api/v1/rates",
        "/open311/v2/services.json",
        "/open311/v2/requests.json",
    ] {
        let plain = t.get(Some("cs11"), path).await;
        let extra = t.get(Some("cs11"), &format!("{path}?foo=bar&client_version=3.1")).await;
        assert_eq!(plain.status, 200, "{path}: {}", plain.text);
        assert_eq!((extra.status, extra.text), (200, plain.text), "{path}");
    }
    // A body larger than the limit, announced by its Content-Length: refused before it is read.
    let big = t
        .send(
            t.client
                .post(format!("{}/open311/v2/requests.json", t.base))
                .header("content-type", "application/x-www-form-urlencoded")
                .body("a".repeat(64 * 1024)),
        )
        .await;
    assert_eq!(big.status, 413);
    assert_eq!(big.json()[0]["code"], 413);
    assert_eq!(t.head().await, head, "event count and head hash unchanged");
    t.stop().await;
}

async fn boom() -> &'static str {
    panic!("a bug")
}

async fn slow() -> &'static str {
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    "late"
}

#[tokio::test]
async fn a_panic_is_a_500_with_the_correlation_id_and_a_slow_handler_times_out() {
    let t =
        TestServer::start_with(|o| o.request_timeout = std::time::Duration::from_millis(300)).await;
    let state = t.server().state().clone();
    let app = gridcase_api::server::with_middleware(
        axum::Router::new()
            .route("/boom", get(boom))
            .route("/fine", get(|| async { "ok" }))
            .route("/slow", get(slow)),
        state,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let r = t
        .send(t.client.get(format!("http://{addr}/boom")).header("x-request-id", "trace-me-42"))
        .await;
    assert_eq!(r.status, 500);
    let e = r.json();
    assert_eq!(e["error"]["code"], "internal_panic");
    assert_eq!(e["error"]["correlation_id"], "trace-me-42");
    assert_eq!(r.header("x-request-id").as_deref(), Some("trace-me-42"));
    assert!(!r.text.contains("a bug"), "panic messages stay in the logs");
    let fine = t.send(t.client.get(format!("http://{addr}/fine"))).await;
    assert_eq!(fine.status, 200);
    let late = t.send(t.client.get(format!("http://{addr}/slow"))).await;
    assert_eq!(late.status, 503);
    assert_eq!(late.code(), "timeout");
    assert!(late.header("retry-after").is_some());
    server.abort();
    t.stop().await;
}

#[tokio::test]
async fn the_openapi_document_lists_exactly_the_routes_the_server_serves() {
    let t = TestServer::start().await;
    let r = t.get(None, "/api/v1/openapi.json").await;
    assert_eq!(r.status, 200);
    let doc = r.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    let served: BTreeSet<(String, String)> =
        gridcase_api::server::routes().list().into_iter().collect();
    assert_eq!(documented, served);
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    assert!(doc["components"]["schemas"]["CommandResponse"].is_object());

    // Metrics count requests per route template and status, and report the lags.
    t.submit(RESIDENT, G111).await;
    let m = t.get(None, "/metrics").await;
    assert_eq!(m.status, 200);
    assert!(m.header("content-type").unwrap().starts_with("text/plain"));
    assert!(m.text.contains("gridcase_http_requests_total{method=\"GET\",route=\"/api/v1/openapi.json\",status=\"200\"} 1"), "{}", m.text);
    assert!(m.text.contains("route=\"/api/v1/cases\",status=\"201\""));
    assert!(m.text.contains("gridcase_append_duration_seconds_count 1"));
    assert!(m.text.contains("gridcase_projection_lag_events"));
    assert!(m.text.contains("gridcase_projection_lag_seconds"));
    t.stop().await;
}
