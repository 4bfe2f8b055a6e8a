//! Prometheus metrics in the text exposition format, kept by hand.
//!
//! A handful of families do not justify a metrics framework: request counts
//! and latency histograms per (method, route template, status), the append
//! latency of commands, live SSE clients, the lags of the projections
//! and the Open311 listing (one of them; computed at scrape time from the
//! log's head), and the corruption alarm: how many times a read found a
//! stored record that does not verify, and the lowest such position.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::limits::Limit;

/// Histogram bucket bounds in seconds.
const BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Clone, Debug, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, d: Duration) {
        let s = d.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if s <= *b {
                self.counts[i] += 1;
            }
        }
        self.count += 1;
        self.sum += s;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {}", self.counts[i]);
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", self.count);
        let braced = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        let _ = writeln!(out, "{name}_sum{braced} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braced} {}", self.count);
    }
}

/// Figures read from the store at scrape time.
#[derive(Clone, Copy, Debug, Default)]
pub struct Lags {
    /// The log's head position.
    pub head: u64,
    /// The projections' position.
    pub projections: u64,
    /// Seconds since the oldest record the projections have not applied was recorded.
    pub projection_lag_seconds: f64,
    /// The Open311 listing's position (the projections' since the listing
    /// is one of them; kept as its own figure for existing dashboards).
    pub index: u64,
}

/// The server's metrics.
#[derive(Debug)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), Histogram>>,
    append: Mutex<Histogram>,
    sse_clients: AtomicI64,
    /// Requests refused by each rate limit (address, key, submission).
    rate_limited: [AtomicU64; 3],
    connections: AtomicI64,
    /// Reads that found a stored record that does not verify.
    corruptions: AtomicU64,
    /// The lowest position found corrupt (`u64::MAX`: none yet).
    first_corrupt: AtomicU64,
    started: Instant,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: Mutex::new(BTreeMap::new()),
            append: Mutex::new(Histogram::default()),
            sse_clients: AtomicI64::new(0),
            rate_limited: Default::default(),
            connections: AtomicI64::new(0),
            corruptions: AtomicU64::new(0),
            first_corrupt: AtomicU64::new(u64::MAX),
            started: Instant::now(),
        }
    }
}

/// Escapes a label value.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Decrements the SSE client gauge when a stream ends.
#[derive(Debug)]
pub struct SseGuard(Arc<Metrics>);

impl Drop for SseGuard {
    fn drop(&mut self) {
        self.0.sse_clients.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// Records one request. `route` is the route template, never the raw
    /// path, so ids do not blow up the label set.
    ///
    /// The method is the client's to choose (any token is a valid HTTP
    /// method), so only the standard ones get a series of their own and
    /// every other name counts as `other`: a client cannot grow the label
    /// set, and with it `/metrics`, by inventing methods.
    pub fn observe_request(&self, method: &str, route: &str, status: u16, d: Duration) {
        let method = match method {
            "GET" | "HEAD" | "POST" | "PUT" | "DELETE" | "PATCH" | "OPTIONS" => method,
            _ => "other",
        };
        let mut m = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        m.entry((method.to_string(), route.to_string(), status)).or_default().observe(d);
    }

    /// Counts a request refused by a rate limit.
    pub fn observe_rate_limited(&self, limit: Limit) {
        self.rate_limited[limit as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Records the latency of a command that appended events.
    pub fn observe_append(&self, d: Duration) {
        self.append.lock().unwrap_or_else(|p| p.into_inner()).observe(d);
    }

    /// Counts an SSE client until the guard drops.
    pub fn sse_client(self: &Arc<Self>) -> SseGuard {
        self.sse_clients.fetch_add(1, Ordering::Relaxed);
        SseGuard(self.clone())
    }

    /// A TCP connection was accepted ([`crate::listen`]).
    pub fn connection_opened(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    /// A TCP connection closed.
    pub fn connection_closed(&self) {
        self.connections.fetch_sub(1, Ordering::Relaxed);
    }

    /// The corruption alarm: a read (a request, the event feed) found that
    /// the stored record at `position` does not verify, and served nothing
    /// from it. Logged at `error` with the position and `what` found it,
    /// and counted in `gridcase_corruption_detected_total` and
    /// `gridcase_corruption_first_position` so that an operator's alert
    /// fires on the first request that hits it, not at the next audit.
    pub fn corruption(&self, position: u64, what: &str) {
        self.corruptions.fetch_add(1, Ordering::Relaxed);
        self.first_corrupt.fetch_min(position, Ordering::Relaxed);
        tracing::error!(
            position,
            found_by = what,
            "ALARM: a stored record does not verify; nothing from it was served; \
             run `gridcase audit verify` and restore the store from a verified export"
        );
    }

    /// Seconds since start.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// The exposition text.
    pub fn render(&self, lags: Lags) -> String {
        let mut out = String::with_capacity(8192);
        out.push_str("# HELP gridcase_http_requests_total HTTP requests by method, route and status.\n# TYPE gridcase_http_requests_total counter\n");
        let reqs = self.requests.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for ((method, route, status), h) in &reqs {
            let _ = writeln!(
                out,
                "gridcase_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{status}\"}} {}",
                label(method),
                label(route),
                h.count
            );
        }
        out.push_str("# HELP gridcase_http_request_duration_seconds HTTP request latency by method, route and status.\n# TYPE gridcase_http_request_duration_seconds histogram\n");
        for ((method, route, status), h) in &reqs {
            let labels = format!(
                "method=\"{}\",route=\"{}\",status=\"{status}\"",
                label(method),
                label(route)
            );
            h.render(&mut out, "gridcase_http_request_duration_seconds", &labels);
        }
        out.push_str("# HELP gridcase_append_duration_seconds Latency of commands that appended events (decide and durable append).\n# TYPE gridcase_append_duration_seconds histogram\n");
        self.append.lock().unwrap_or_else(|p| p.into_inner()).clone().render(
            &mut out,
            "gridcase_append_duration_seconds",
            "",
        );
        out.push_str("# HELP gridcase_corruption_detected_total Reads refused because a stored record did not verify (bytes against check bytes, or link to the record before).\n# TYPE gridcase_corruption_detected_total counter\n");
        let _ = writeln!(
            out,
            "gridcase_corruption_detected_total {}",
            self.corruptions.load(Ordering::Relaxed)
        );
        let first = self.first_corrupt.load(Ordering::Relaxed);
        out.push_str("# HELP gridcase_rate_limited_total Requests refused with 429 by each rate limit.\n# TYPE gridcase_rate_limited_total counter\n");
        for limit in [Limit::Address, Limit::Key, Limit::Submission] {
            let n = self.rate_limited[limit as usize].load(Ordering::Relaxed);
            let _ =
                writeln!(out, "gridcase_rate_limited_total{{limit=\"{}\"}} {n}", limit.as_str());
        }
        let gauges = [
            (
                "gridcase_http_connections",
                "Open HTTP connections (at most the server's --max-connections).",
                self.connections.load(Ordering::Relaxed) as f64,
            ),
            (
                "gridcase_corruption_first_position",
                "Lowest log position found corrupt since start (0: none).",
                if first == u64::MAX { 0.0 } else { first as f64 },
            ),
            (
                "gridcase_sse_clients",
                "Connected event-feed clients.",
                self.sse_clients.load(Ordering::Relaxed) as f64,
            ),
            ("gridcase_log_head_position", "The event log's head position.", lags.head as f64),
            (
                "gridcase_projection_position",
                "The position the projections have applied.",
                lags.projections as f64,
            ),
            (
                "gridcase_projection_lag_events",
                "Log head position minus projection position.",
                lags.head.saturating_sub(lags.projections) as f64,
            ),
            (
                "gridcase_projection_lag_seconds",
                "Age of the oldest record the projections have not applied.",
                lags.projection_lag_seconds,
            ),
            (
                "gridcase_open311_index_lag_events",
                "Log head position minus the Open311 index position.",
                lags.head.saturating_sub(lags.index) as f64,
            ),
            (
                "gridcase_uptime_seconds",
                "Seconds since the server started.",
                self.started.elapsed().as_secs_f64(),
            ),
        ];
        for (name, help, v) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (issue 15, point 13): 20,000 unauthenticated requests with
    /// distinct invented methods grew `/metrics` to 71 MB. Invented methods
    /// now share one series.
    #[test]
    fn invented_methods_share_one_series() {
        let m = Metrics::default();
        let lags = Lags { head: 0, projections: 0, projection_lag_seconds: 0.0, index: 0 };
        // How many lines (series and their help): what a new label value
        // would add. Not bytes: a histogram's `_sum` grows digits as
        // requests add up (0.999…, then 3.000…1), which made a byte count
        // flaky.
        let size = |m: &Metrics| m.render(lags).lines().count();
        m.observe_request("GET", "/api/v1/cases", 200, Duration::from_millis(1));
        let baseline = size(&m);
        for i in 0..1000 {
            m.observe_request(&format!("X{i}"), "unmatched", 405, Duration::from_millis(1));
        }
        let once = size(&m);
        for i in 1000..3000 {
            m.observe_request(&format!("X{i}"), "unmatched", 405, Duration::from_millis(1));
        }
        let text = m.render(lags);
        assert_eq!(size(&m), once, "more invented methods must not add series");
        assert!(once - baseline < 40, "one `other` series, not one per method");
        assert!(text.contains("method=\"other\",route=\"unmatched\",status=\"405\""));
        assert!(!text.contains("X1"));
    }

    /// The alarm counts every detection and keeps the lowest position.
    #[test]
    fn corruption_alarm_counts_and_keeps_the_first_position() {
        let m = Metrics::default();
        let lags = Lags { head: 0, projections: 0, projection_lag_seconds: 0.0, index: 0 };
        let text = m.render(lags);
        assert!(text.contains("\ngridcase_corruption_detected_total 0\n"), "{text}");
        assert!(text.contains("\ngridcase_corruption_first_position 0\n"), "{text}");
        m.corruption(40, "test");
        m.corruption(37, "test");
        m.corruption(90, "test");
        let text = m.render(lags);
        assert!(text.contains("\ngridcase_corruption_detected_total 3\n"), "{text}");
        assert!(text.contains("\ngridcase_corruption_first_position 37\n"), "{text}");
    }
}
