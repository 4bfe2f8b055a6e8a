//! The dashboard's HTTP side: the embedded page, sign-in with a session
//! cookie and CSRF token, read scoping, and `?as_of=` equal to replay.
//! (The page itself is tested in a real browser: cli/tests/browser.rs.)

use gridcase_engine::time::Clock;
use serde_json::{json, Value};

use crate::common::*;

/// `name=value` of the session cookie in a Set-Cookie header.
fn cookie_of(r: &Reply) -> String {
    let set = r.header("set-cookie").expect("a Set-Cookie header");
    set.split(';').next().unwrap().to_string()
}

async fn get_cookie(t: &TestServer, cookie: &str, path: &str) -> Reply {
    t.send(t.client.get(format!("{}{path}", t.base)).header("cookie", cookie)).await
}

async fn sign_in(t: &TestServer, actor: &str) -> (String, String) {
    let r = t
        .send(
            t.client
                .post(format!("{}/api/v1/dashboard/session", t.base))
                .json(&json!({"key": t.key(actor)})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let set = r.header("set-cookie").unwrap();
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"), "{set}");
    assert!(!set.contains("Secure"), "plain http on loopback: {set}");
    (cookie_of(&r), r.json()["csrf"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn the_page_and_its_assets_are_embedded_with_types_and_a_strict_policy() {
    let t = TestServer::start().await;
    let page = t.get(None, "/").await;
    assert_eq!(page.status, 200);
    assert!(page.header("content-type").unwrap().starts_with("text/html"));
    assert!(page.header("content-security-policy").unwrap().contains("default-src 'self'"));
    assert!(page.text.contains("/assets/vendor/echarts/echarts.min.js"));
    let js = t.get(None, "/assets/app.js").await;
    assert_eq!(js.status, 200);
    assert!(js.header("content-type").unwrap().starts_with("text/javascript"));
    let lib = t.get(None, "/assets/vendor/echarts/echarts.min.js").await;
    assert_eq!(lib.status, 200);
    assert!(lib.header("cache-control").unwrap().contains("max-age"));
    assert_eq!(t.get(None, "/assets/vendor/echarts/LICENSE").await.status, 200);
    let msgs = t.get(None, "/assets/messages.json").await.json();
    let zh: Vec<&String> = msgs["zh"].as_object().unwrap().keys().collect();
    let en: Vec<&String> = msgs["en"].as_object().unwrap().keys().collect();
    assert_eq!(zh, en, "every message in both languages");
    assert_eq!(t.get(None, "/assets/../Cargo.toml").await.status, 404);
    assert_eq!(t.get(None, "/assets/nothing.js").await.status, 404);
    // The page's own code stays small (the charting library aside).
    let own: usize = gridcase_api::dashboard::asset_sizes()
        .iter()
        .filter(|(p, _)| !p.starts_with("vendor/"))
        .map(|(_, n)| n)
        .sum();
    assert!(own < 200 * 1024, "page code is {own} bytes");
    t.stop().await;
}

#[tokio::test]
async fn a_key_is_exchanged_for_a_session_that_needs_csrf_to_change_anything_and_ends() {
    let t = TestServer::start().await;
    let bad = t
        .send(
            t.client
                .post(format!("{}/api/v1/dashboard/session", t.base))
                .json(&json!({"key": "gck_000000000000000000000000000000000000000000000000"})),
        )
        .await;
    assert_eq!(bad.status, 401);
    assert!(bad.header("set-cookie").is_none());

    let (cookie, csrf) = sign_in(&t, "sup").await;
    let me = get_cookie(&t, &cookie, "/api/v1/dashboard/session").await;
    assert_eq!(me.json()["actor"], "sup");
    assert_eq!(me.json()["csrf"], json!(csrf));
    assert_eq!(get_cookie(&t, &cookie, "/api/v1/dashboard/backlog").await.status, 200);
    // The cookie works on the rest of the API too (the page's event feed).
    assert_eq!(get_cookie(&t, &cookie, "/api/v1/stats").await.status, 200);

    // A state change by cookie without the token (a forged cross-site form) is refused.
    let submit = json!({"kind": "complaint", "category": "street_light", "description": "x", "location": G111});
    let forged = t
        .send(
            t.client
                .post(format!("{}/api/v1/cases", t.base))
                .header("cookie", &cookie)
                .json(&submit),
        )
        .await;
    assert_eq!(forged.status, 403, "{}", forged.text);
    let (head, _) = t.head().await;
    let with_token = t
        .send(
            t.client
                .post(format!("{}/api/v1/cases", t.base))
                .header("cookie", &cookie)
                .header("x-csrf-token", &csrf)
                .json(&submit),
        )
        .await;
    assert_eq!(with_token.status, 201, "{}", with_token.text);
    assert_eq!(t.head().await.0, head + 1, "only the request with the token wrote");

    let end = |token: Option<&str>| {
        let mut req = t
            .client
            .post(format!("{}/api/v1/dashboard/session/end", t.base))
            .header("cookie", &cookie);
        if let Some(tok) = token {
            req = req.header("x-csrf-token", tok);
        }
        t.send(req)
    };
    assert_eq!(end(Some("wrong")).await.status, 403);
    let out = end(Some(&csrf)).await;
    assert_eq!(out.status, 204);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert_eq!(get_cookie(&t, &cookie, "/api/v1/dashboard/backlog").await.status, 401);
    assert_eq!(
        get_cookie(&t, "gridcase_session=forged", "/api/v1/dashboard/backlog").await.status,
        401
    );
    t.stop().await;
}

#[tokio::test]
async fn revoking_the_key_ends_its_sessions() {
    let t = TestServer::start().await;
    let (cookie, _) = sign_in(&t, "cs11").await;
    let id = t.server().state().keys.lookup(t.key("cs11")).unwrap().id;
    assert!(t.server().state().keys.revoke(&id).unwrap());
    assert_eq!(get_cookie(&t, &cookie, "/api/v1/dashboard/backlog").await.status, 401);
    t.stop().await;
}

fn codes(rows: &Value) -> Vec<String> {
    rows.as_array().unwrap().iter().map(|r| r["code"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn each_caller_reads_only_their_scope() {
    let t = TestServer::start().await;
    let mine = t.submit(RESIDENT, G111).await;
    let theirs = t.submit(RESIDENT, G211).await;

    let b = t.get(Some("cs11"), "/api/v1/dashboard/backlog").await.json();
    let grids = codes(&b["report"]["grids"]);
    assert!(!grids.is_empty() && grids.iter().all(|g| g.starts_with("320902001001")), "{grids:?}");
    assert!(b["report"]["district"].is_null(), "no district totals outside the scope");
    let all = t.get(Some("sup"), "/api/v1/dashboard/backlog").await.json();
    assert!(codes(&all["report"]["grids"]).contains(&G211.to_string()));
    assert_eq!(all["report"]["district"]["open"], 2);

    let map = t.get(Some("cs11"), "/api/v1/dashboard/map").await.json();
    let shapes: Vec<&str> = map["report"]["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["properties"]["code"].as_str().unwrap())
        .collect();
    assert_eq!(shapes.len(), grids.len());

    assert_eq!(t.get(Some("cs11"), &format!("/api/v1/dashboard/cases/{mine}")).await.status, 200);
    let other = t.get(Some("cs11"), &format!("/api/v1/dashboard/cases/{theirs}")).await;
    assert_eq!(other.status, 404, "{}", other.text);
    let missing = t.get(Some("cs11"), "/api/v1/dashboard/cases/GC9999999").await;
    assert_eq!(missing.status, 404);
    assert_eq!(
        other.json()["error"]["message"].as_str().unwrap().replace(&theirs, "ID"),
        missing.json()["error"]["message"].as_str().unwrap().replace("GC9999999", "ID"),
        "an out-of-scope case reads like a missing one"
    );
    assert_eq!(t.get(Some("cs21"), &format!("/api/v1/dashboard/cases/{theirs}")).await.status, 200);
    // A department sees a case once it holds it.
    assert_eq!(t.get(Some("d01a"), &format!("/api/v1/dashboard/cases/{mine}")).await.status, 404);

    // Residents: their own case page, no aggregates.
    assert_eq!(t.get(Some(RESIDENT), "/api/v1/dashboard/backlog").await.status, 403);
    assert_eq!(t.get(Some(RESIDENT), &format!("/api/v1/dashboard/cases/{mine}")).await.status, 200);
    assert_eq!(
        t.get(Some(OTHER_RESIDENT), &format!("/api/v1/dashboard/cases/{mine}")).await.status,
        404
    );
    // Contact: the community's staff and supervisors, not a street.
    let page = t.get(Some("cs11"), &format!("/api/v1/dashboard/cases/{mine}")).await.json();
    assert_eq!(page["case"]["contact"]["phone"], "13800000001");
    assert!(!page["timeline"].as_array().unwrap().is_empty());
    t.stop().await;
}

#[tokio::test]
async fn as_of_shows_the_replay_of_that_time_with_its_digest() {
    let t = TestServer::start().await;
    t.submit(RESIDENT, G111).await;
    t.clock.advance(3_600_000);
    let between = gridcase_engine::time::Timestamp(t.clock.now().0 - 1000).to_rfc3339();
    t.clock.advance(3_600_000);
    t.submit(RESIDENT, G111).await;

    let q = format!("as_of={}", between.replace('+', "%2B"));
    let past = t.get(Some("sup"), &format!("/api/v1/dashboard/backlog?{q}")).await.json();
    let replay = t.get(Some("sup"), &format!("/api/v1/replay?{q}")).await.json();
    assert_eq!(past["live"], false);
    assert_eq!(past["report"], replay["backlog"]);
    assert_eq!(past["digest"], replay["digests"]["combined"]);
    assert_eq!(past["position"], replay["position"]);
    assert_eq!(past["report"]["district"]["open"], 1);
    let now = t.get(Some("sup"), "/api/v1/dashboard/backlog").await.json();
    assert_eq!(now["live"], true);
    assert_eq!(now["report"]["district"]["open"], 2);
    // The same moment again comes from the cache, unchanged.
    let again = t.get(Some("sup"), &format!("/api/v1/dashboard/backlog?{q}")).await.json();
    assert_eq!(again, past);
    let bad = t.get(Some("sup"), "/api/v1/dashboard/backlog?as_of=yesterday").await;
    assert_eq!((bad.status, bad.code()), (400, "invalid_time".to_string()));
    let unknown = t.get(Some("sup"), "/api/v1/dashboard/rates?color=red").await;
    assert_eq!(unknown.status, 400);
    t.stop().await;
}
