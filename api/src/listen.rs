//! The accept loop: what keeps idle and slow connections from exhausting
//! the server.
//!
//! `axum::serve` sets no timer on its connections, so a client that opens
//! a connection and sends nothing (or sends a header a byte a minute, or
//! keeps a connection idle after a response) holds a file handle and a task
//! forever: 20,000 such connections exhausted the process's file handles
//! and stopped the API. This loop serves HTTP/1.1 with hyper directly and
//! adds the three limits every front-facing server has:
//!
//! - **header read timeout**: a request's head must arrive within
//!   [`ConnectionLimits::header_read_timeout`] of the connection waiting for
//!   it, which also closes idle keep-alive connections (hyper restarts the
//!   timer whenever it waits for the next request);
//! - **connection cap**: at most [`ConnectionLimits::max_connections`] at
//!   once; past it the loop stops accepting until one closes, so the kernel's
//!   backlog (not the process's file table) absorbs the excess and every
//!   connection already accepted keeps being served;
//! - **graceful shutdown with a bound**: on shutdown, connections finish
//!   their request in flight for at most [`ConnectionLimits::shutdown_grace`].
//!
//! Bodies are bounded in time by the request timeout layer (408 for a slow
//! body) and in size by the body limit, both in the router's middleware.
//! HTTP/2 is not served: the portals, Open311 clients and browsers that use
//! this API speak HTTP/1.1 over plain TCP, and hyper has no idle timeout
//! for HTTP/2 connections.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tower::ServiceExt;

use crate::metrics::Metrics;

/// Limits on connections (see the module docs for why each exists).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Most connections open at once; keep it below the process's
    /// open-file limit (`ulimit -n`) minus what the store needs.
    pub max_connections: usize,
    /// How long a connection may take to send a request head, counted from
    /// when the server starts waiting for it: bounds slow headers and idle
    /// keep-alive connections alike.
    pub header_read_timeout: Duration,
    /// How long connections may finish their requests after shutdown begins.
    pub shutdown_grace: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 4096,
            header_read_timeout: Duration::from_secs(15),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Serves `router` on `listener` until `stop` turns true, within `limits`.
/// Each request carries the peer's address as [`ConnectInfo`], as
/// `into_make_service_with_connect_info` would give it.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout).keep_alive(true);
    let mut last_accept_error: Option<std::time::Instant> = None;
    loop {
        // Wait for a free slot first: past the cap, connections wait in the
        // kernel's backlog instead of taking a file handle here.
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => match s {
                Ok(s) => s,
                Err(_) => break,
            },
            _ = stopped(&mut stop) => break,
        };
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stopped(&mut stop) => break,
        };
        let (stream, peer) = match accepted {
            Ok(c) => c,
            Err(e) => {
                // Out of file handles or a connection reset before accept:
                // not fatal. Log once a second at most and back off briefly
                // so the loop does not spin.
                if last_accept_error.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                    tracing::warn!(error = %e, "accept failed; backing off");
                    last_accept_error = Some(std::time::Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            let router = router.clone();
            async move {
                let response = match router.oneshot(req.map(Body::new)).await {
                    Ok(r) => r,
                    Err(never) => match never {},
                };
                Ok::<_, Infallible>(response)
            }
        });
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        let metrics = metrics.clone();
        metrics.connection_opened();
        tokio::spawn(async move {
            // A connection's error (a reset, a header timeout) concerns
            // that client only.
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            metrics.connection_closed();
            drop(slot);
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(limits.shutdown_grace) => {
            tracing::warn!("connections still open after the shutdown grace period; closing them");
        }
    }
    Ok(())
}

/// Resolves once `stop` is true (or its sender is gone). The guard
/// `wait_for` returns is dropped here, so the accept loop's future stays
/// `Send`.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
