//! Positions and times a client can send that must not overflow, wrap or
//! enter the log (issue 15, point 15).

use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn positions_past_the_head_and_times_outside_2000_to_2100_are_refused() {
    let t = TestServer::start().await;
    let id = t.submit(RESIDENT, G111).await;
    let (head, _) = t.head().await;

    // Last-Event-ID: u64::MAX used to overflow to a replay from position 1.
    for last in [u64::MAX.to_string(), (head + 1).to_string()] {
        let r = t
            .send(
                t.client
                    .get(format!("{}/api/v1/events", t.base))
                    .bearer_auth(t.key("ss1"))
                    .header("last-event-id", last.as_str()),
            )
            .await;
        assert_eq!(r.status, 400, "Last-Event-ID {last}: {}", r.text);
        assert_eq!(r.code(), "invalid_last_event_id");
    }
    let r = t.get(Some("ss1"), &format!("/api/v1/events?from={}", u64::MAX)).await;
    assert_eq!(r.status, 400, "{}", r.text);

    // A report's `now` at the ends of i64 used to wrap in the SLA arithmetic.
    // (A bare date is local midnight, +08:00: 2100-01-01 local is still
    // inside the range, which ends at 2100-01-01T00:00Z.)
    for now in ["-9223372036854775808", "9223372036854775807", "1999-12-31", "2100-01-01T08:00"] {
        let r = t.get(Some("sup"), &format!("/api/v1/overdue?now={now}")).await;
        assert_eq!(r.status, 400, "now={now}: {}", r.text);
    }

    // An extension to i64::MAX used to be approved.
    let before = t.head().await;
    for until in ["9223372036854775807", "2100-01-02T00:00:00Z"] {
        let r = t.command("cs11", &id, "extension", json!({"until": until, "reason": "x"})).await;
        assert_eq!(r.status, 422, "until {until}: {}", r.text);
    }
    assert_eq!(t.head().await, before, "nothing was written");
    t.stop().await;
}
