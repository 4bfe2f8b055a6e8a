//! Rate limits: per address, per key, the submission quota, the listing's
//! cost; 429 with Retry-After in each surface's error format, counted in
//! /metrics, and nothing appended by a refused request.

use gridcase_api::limits::{Rate, RateLimits};
use serde_json::json;

use crate::common::*;

fn metric(text: &str, limit: &str) -> u64 {
    let line = format!("gridcase_rate_limited_total{{limit=\"{limit}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&line))
        .unwrap_or_else(|| panic!("no {line} in /metrics"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn an_address_over_its_burst_gets_429_with_retry_after_in_its_surfaces_format() {
    let t = TestServer::start_with(|o| {
        o.rate_limits = RateLimits { per_address: Rate::per_minute(6, 4), ..RateLimits::OFF };
    })
    .await;
    for _ in 0..4 {
        assert_eq!(t.get(None, "/open311/v2/services.json").await.status, 200);
    }
    let j = t.get(None, "/open311/v2/services.json").await;
    assert_eq!(j.status, 429, "{}", j.text);
    let wait: u64 = j.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=10).contains(&wait), "{wait}");
    assert_eq!(j.json()[0]["code"], 429);
    let x = t.get(None, "/open311/v2/services.xml").await;
    assert_eq!(x.status, 429);
    assert!(x.text.contains("<errors><error><code>429</code>"), "{}", x.text);
    let n = t.get(Some("sup"), "/api/v1/backlog").await;
    assert_eq!(n.status, 429);
    assert_eq!(n.code(), "rate_limited");
    assert!(n.header("retry-after").is_some());
    let stop = t.server().state().metrics.render(t.server().state().lags().await);
    assert_eq!(metric(&stop, "address"), 3);
    assert_eq!(metric(&stop, "submission"), 0);
    t.stop().await;
}

#[tokio::test]
async fn a_key_is_limited_wherever_it_is_presented_and_each_key_has_its_own_budget() {
    let t = TestServer::start_with(|o| {
        o.rate_limits = RateLimits { per_key: Rate::per_minute(6, 3), ..RateLimits::OFF };
    })
    .await;
    let key = t.key(RESIDENT).to_string();
    for _ in 0..2 {
        assert_eq!(t.get(Some(RESIDENT), "/open311/v2/services.json").await.status, 200);
    }
    // The same key in the query string draws on the same budget.
    let q = format!("/open311/v2/services.json?api_key={key}");
    assert_eq!(t.get(None, &q).await.status, 200);
    assert_eq!(t.get(None, &q).await.status, 429);
    assert_eq!(t.get(Some(RESIDENT), "/open311/v2/services.json").await.status, 429);
    // Another key, and no key (address limits are off here), still pass;
    // an invented key has no bucket of its own.
    assert_eq!(t.get(Some(OTHER_RESIDENT), "/open311/v2/services.json").await.status, 200);
    assert_eq!(t.get(None, "/open311/v2/services.json").await.status, 200);
    assert_eq!(t.get(None, "/open311/v2/services.json?api_key=gck_invented").await.status, 200);
    t.stop().await;
}

#[tokio::test]
async fn the_submission_quota_refuses_a_flood_from_one_key_and_appends_nothing() {
    let t = TestServer::start_with(|o| {
        o.rate_limits =
            RateLimits { submissions_per_key: Rate::per_minute(1, 2), ..RateLimits::OFF };
    })
    .await;
    let key = t.key(RESIDENT).to_string();
    t.submit(RESIDENT, G111).await;
    let form = format!("api_key={key}&service_code=noise&address_id={G111}");
    let post = || {
        t.client
            .post(format!("{}/open311/v2/requests.json", t.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.clone())
    };
    assert_eq!(t.send(post()).await.status, 200);
    let head = t.head().await;
    let refused = t.send(post()).await;
    assert_eq!(refused.status, 429, "{}", refused.text);
    assert!(refused.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
    let native = t
        .post(
            RESIDENT,
            "/api/v1/cases",
            json!({"kind": "complaint", "category": "street_light", "description": "x", "location": G111}),
            &[],
        )
        .await;
    assert_eq!(native.status, 429);
    assert_eq!(native.code(), "rate_limited");
    assert_eq!(t.head().await, head, "a refused submission appends nothing");
    // Another key's quota is its own; reads and other commands are not submissions.
    let other = t.key(OTHER_RESIDENT).to_string();
    let r = t
        .send(
            t.client
                .post(format!("{}/open311/v2/requests.json?api_key={other}", t.base))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("service_code=noise&address_id={G111}")),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(t.get(Some(RESIDENT), "/open311/v2/requests.json").await.status, 200);
    let text = t.get(None, "/metrics").await.text;
    assert_eq!(metric(&text, "submission"), 2);
    t.stop().await;
}

#[tokio::test]
async fn a_full_listing_costs_more_than_a_small_one_and_extended_pages_are_capped() {
    let t = TestServer::start_with(|o| {
        o.rate_limits = RateLimits { per_address: Rate::per_minute(1, 20), ..RateLimits::OFF };
    })
    .await;
    // A full page (up to 1000) costs 11 of the 20-cell burst...
    assert_eq!(t.get(None, "/open311/v2/requests.json").await.status, 200);
    // ...so a second is refused while small requests still pass.
    assert_eq!(t.get(None, "/open311/v2/requests.json").await.status, 429);
    assert_eq!(t.get(None, "/open311/v2/requests.json?page_size=50").await.status, 200);
    assert_eq!(t.get(None, "/open311/v2/services.json").await.status, 200);
    t.stop().await;

    let t = TestServer::start().await;
    t.submit(RESIDENT, G111).await;
    let ext = t.get(None, "/open311/v2/requests.json?extensions=true").await;
    assert_eq!(ext.status, 200, "{}", ext.text);
    assert_eq!(ext.json()[0]["notes"][0]["type"], "opened");
    assert_eq!(
        t.get(None, "/open311/v2/requests.json?extensions=true&page_size=100").await.status,
        200
    );
    let big = t.get(None, "/open311/v2/requests.json?extensions=true&page_size=101").await;
    assert_eq!(big.status, 400, "{}", big.text);
    assert!(big.json()[0]["description"].as_str().unwrap().contains("100"));
    assert_eq!(t.get(None, "/open311/v2/requests.json?page_size=1000").await.status, 200);
    t.stop().await;
}
