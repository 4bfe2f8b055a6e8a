//! Positions and times a client can send that must not overflow, wrap or
//! enter the log (issue 15, point 15), and connections that must not
//! hold the server (point 12).

use std::time::Duration;

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

/// Reads until the server closes the connection (0 bytes) or `within` passes.
async fn closed_within(s: &mut tokio::net::TcpStream, within: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

/// Idle connections are closed (silent ones, slow headers, idle keep-alive
/// after a response), at most `max_connections` are open at once, and the
/// API keeps answering while idle clients hold every slot they can: 20,000
/// idle connections used to exhaust the file handles and stop the server.
#[tokio::test]
async fn idle_and_slow_connections_are_closed_and_capped() {
    use tokio::io::AsyncWriteExt;
    let t = TestServer::start_with(|o| {
        o.connections.max_connections = 16;
        o.connections.header_read_timeout = Duration::from_millis(400);
    })
    .await;
    let addr = t.server().local_addr();
    // A silent connection, a slow header, and a keep-alive connection gone
    // idle after one response: all closed by the header timeout.
    let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /api/v1/openapi.json HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let mut kept = tokio::net::TcpStream::connect(addr).await.unwrap();
    kept.write_all(b"GET /api/v1/openapi.json HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    for (name, s) in [("silent", &mut silent), ("slow", &mut slow), ("keep-alive", &mut kept)] {
        assert!(closed_within(s, Duration::from_secs(5)).await, "{name} connection was not closed");
    }
    // Hold more idle connections than the cap: the excess waits in the
    // backlog, every slot frees within the timeout, and a real request
    // still gets its answer.
    let mut idle = Vec::new();
    for _ in 0..64 {
        idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    let open = t.get(None, "/metrics").await;
    assert_eq!(open.status, 200, "{}", open.text);
    let gauge = open
        .text
        .lines()
        .find_map(|l| l.strip_prefix("gridcase_http_connections "))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap();
    assert!(gauge <= 16.0, "{gauge} connections open with a cap of 16");
    for s in &mut idle {
        assert!(closed_within(s, Duration::from_secs(10)).await, "an idle connection stayed open");
    }
    t.stop().await;
}
