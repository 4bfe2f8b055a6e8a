//! The SSE feed: catch-up then live, resumed with Last-Event-ID while
//! writes continue, with no gap and no duplicate.

use std::time::Duration;

use serde_json::Value;

use crate::common::*;

/// One SSE message.
#[derive(Debug)]
pub(crate) struct Message {
    pub(crate) id: u64,
    pub(crate) event: String,
    pub(crate) data: Value,
}

/// Reads SSE messages from a response until `stop` says so.
pub(crate) struct Feed {
    res: reqwest::Response,
    buf: String,
    comments: usize,
}

impl Feed {
    pub(crate) async fn open(t: &TestServer, actor: &str, query: &str, last: Option<u64>) -> Feed {
        let mut req =
            t.client.get(format!("{}/api/v1/events{query}", t.base)).bearer_auth(t.key(actor));
        if let Some(l) = last {
            req = req.header("last-event-id", l.to_string());
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 200);
        assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
        Feed { res, buf: String::new(), comments: 0 }
    }

    pub(crate) async fn next(&mut self) -> Message {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let (mut id, mut event, mut data) = (None, String::new(), String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id: ").or_else(|| line.strip_prefix("id:"))
                    {
                        id = Some(v.trim().parse::<u64>().unwrap());
                    } else if let Some(v) =
                        line.strip_prefix("event: ").or_else(|| line.strip_prefix("event:"))
                    {
                        event = v.trim().to_string();
                    } else if let Some(v) =
                        line.strip_prefix("data: ").or_else(|| line.strip_prefix("data:"))
                    {
                        data.push_str(v);
                    } else if line.starts_with(':') {
                        self.comments += 1;
                    }
                }
                if let Some(id) = id {
                    return Message { id, event, data: serde_json::from_str(&data).unwrap() };
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(20), self.res.chunk())
                .await
                .expect("the feed stalled")
                .unwrap()
                .expect("the feed ended");
            self.buf.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}

#[tokio::test]
async fn a_portal_resumes_the_feed_without_gaps_or_duplicates_while_writes_continue() {
    let t = std::sync::Arc::new(TestServer::start().await);
    let writer = {
        let t = t.clone();
        tokio::spawn(async move {
            for i in 0..30 {
                let actor = if i % 2 == 0 { RESIDENT } else { "gw111" };
                t.submit(actor, G111).await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let mut seen = Vec::new();
    {
        let mut feed = Feed::open(&t, "ss1", "?from=1", None).await;
        while seen.len() < 85 {
            let m = feed.next().await;
            assert_eq!(m.data["position"].as_u64(), Some(m.id));
            assert_eq!(m.data["event_type"].as_str(), Some(m.event.as_str()));
            if m.event == "CaseSubmitted" && m.data["actor"] == RESIDENT {
                // Street staff do not see residents' contact details.
                assert!(m.data["data"]["contact"].is_null());
                assert_eq!(m.data["data"]["contact_redacted"], true);
            }
            seen.push(m.id);
        }
        // Dropping the feed disconnects mid-stream.
    }
    let last = *seen.last().unwrap();
    let mut feed = Feed::open(&t, "ss1", "?from=1", Some(last)).await;
    writer.await.unwrap();
    let (head, _) = t.head().await;
    while *seen.last().unwrap() < head {
        seen.push(feed.next().await.id);
    }
    let expected: Vec<u64> = (1..=head).collect();
    assert_eq!(seen, expected, "every position exactly once, in order");

    // Live: a new event arrives on the open feed, and keep-alives flow while idle.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    t.submit(RESIDENT, G111).await;
    let m = feed.next().await;
    assert_eq!(m.id, head + 1);
    assert_eq!(m.event, "CaseSubmitted");
    assert!(feed.comments > 0, "keep-alive comments while idle");

    let bad = t.get(Some("ss1"), "/api/v1/events?from=abc").await;
    assert_eq!(bad.status, 400);
    let bad = t
        .send(
            t.client
                .get(format!("{}/api/v1/events", t.base))
                .bearer_auth(t.key("ss1"))
                .header("last-event-id", "x"),
        )
        .await;
    assert_eq!(bad.status, 400);
    drop(feed);
    match std::sync::Arc::try_unwrap(t) {
        Ok(t) => t.stop().await,
        Err(_) => panic!("the server is still shared"),
    }
}
