//! What every handler shares: the engine, the keys, the live projections,
//! metrics and options ([`AppState`]), and the server's tunables.
//!
//! It sits below every handler module and imports none of them, so the
//! handlers depend on it and the server assembles them, without a circle.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gridcase_engine::log::Position;
use gridcase_engine::transparency::Transparency;
use gridcase_engine::Engine;
use gridcase_projections::SharedProjections;
use tokio::sync::{watch, Semaphore};

use crate::dashboard::DashboardCache;
use crate::keys::KeyStore;
use crate::limits::{Limiters, RateLimits};
use crate::metrics::{Lags, Metrics};
use crate::session::Sessions;

/// Tunables of the server.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Largest request body accepted, in bytes (larger: 413).
    pub body_limit: usize,
    /// Longest a request may take to produce its response head (then 503).
    pub request_timeout: Duration,
    /// How often deadlines are ticked (`None`: never; tests tick by hand).
    pub tick_interval: Option<Duration>,
    /// Interval of SSE keep-alive comments.
    pub sse_keep_alive: Duration,
    /// The Open311 jurisdiction id accepted besides the district's code.
    pub jurisdiction_id: Option<String>,
    /// Where the projections save their state (`None`: rebuilt on every start).
    pub projection_store: Option<PathBuf>,
    /// Connection cap and timeouts of the accept loop ([`crate::listen`]).
    pub connections: crate::listen::ConnectionLimits,
    /// How long a write waits for the projections (and with them the Open311
    /// listing) to show it (read-your-writes).
    pub write_visibility_wait: Duration,
    /// The log's Merkle tree with the district's log key (`None`: the
    /// server builds one without a key: it serves proofs and tiles but
    /// signs no checkpoint).
    pub transparency: Option<Arc<Transparency>>,
    /// How often the server signs a checkpoint if the log has grown since
    /// the last one (`None`: only on request).
    pub checkpoint_interval: Option<Duration>,
    /// Request and submission rate limits ([`crate::limits`]).
    pub rate_limits: RateLimits,
    /// Where uploaded media files are kept (`None`: media uploads are refused).
    pub media_dir: Option<PathBuf>,
    /// Largest media file accepted, in bytes.
    pub media_max_bytes: usize,
    /// Open311 listings built at once (more wait their turn): a listing
    /// holds a core while it builds, so a flood of them cannot take every
    /// core from the rest of the API. Default: the cores less one, at least 1.
    pub listing_concurrency: usize,
    /// Mark the dashboard's session cookie `Secure` (set it when the server
    /// is reached over HTTPS through a proxy that does not send
    /// `X-Forwarded-Proto: https`; with that header the cookie is Secure anyway).
    pub secure_cookies: bool,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            body_limit: 64 * 1024,
            request_timeout: Duration::from_secs(30),
            tick_interval: Some(Duration::from_secs(60)),
            sse_keep_alive: Duration::from_secs(15),
            jurisdiction_id: None,
            projection_store: None,
            connections: crate::listen::ConnectionLimits::default(),
            write_visibility_wait: Duration::from_secs(2),
            transparency: None,
            checkpoint_interval: Some(Duration::from_secs(300)),
            rate_limits: RateLimits::default(),
            media_dir: None,
            media_max_bytes: crate::media::DEFAULT_MAX_BYTES,
            listing_concurrency: std::thread::available_parallelism()
                .map_or(1, |n| n.get().saturating_sub(1))
                .max(1),
            secure_cookies: false,
        }
    }
}

/// What every handler shares.
pub struct Shared {
    /// The engine over the store.
    pub engine: Arc<Engine>,
    /// Accepted API keys.
    pub keys: Arc<KeyStore>,
    /// The live projections, the Open311 case listing among them
    /// (`ProjectionSet::cases`).
    pub projections: SharedProjections,
    /// The position the projection follower has applied.
    pub projection_position: watch::Receiver<Position>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Options.
    pub options: ServerOptions,
    /// One replay at a time: a replay folds the log from position 1.
    pub replay_gate: Semaphore,
    /// One chain verification at a time: it reads the whole log.
    pub verify_gate: Semaphore,
    /// The log's Merkle tree, kept up to date by the server's follower.
    pub transparency: Arc<Transparency>,
    /// Open311 listings being built at once (`listing_concurrency` permits).
    pub listing_gate: Semaphore,
    /// The rate limiters' live state.
    pub limiters: Limiters,
    /// Uploaded media files (`None` when the server keeps none).
    pub media: Option<crate::media::MediaStore>,
    /// Turns true when the server shuts down (ends event streams).
    pub shutdown: watch::Receiver<bool>,
    /// Dashboard sign-ins (cookie sessions).
    pub sessions: Sessions,
    /// The dashboard's answers and as-of projections, kept per position.
    pub dashboard: DashboardCache,
    /// Residents' pseudonyms for callers who may not read personal data.
    pub pseudonyms: crate::pseudonym::Pseudonyms,
}

/// The state handed to handlers; cheap to clone.
#[derive(Clone)]
pub struct AppState(pub Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    /// Records that `p` was shown the personal `fields` of `case` on
    /// `surface`; batched by the engine to one event per reader per case
    /// per minute. Nothing is recorded when no field was shown, or when the
    /// reader is the resident who submitted the case (their own data). A
    /// read that cannot be recorded fails the request: the audit has no
    /// silent gaps.
    pub async fn record_read(
        &self,
        p: &crate::auth::Principal,
        case: &gridcase_engine::domain::Case,
        fields: &[&str],
        surface: &str,
    ) -> Result<(), crate::ApiError> {
        if fields.is_empty() || p.actor == case.submitted_by {
            return Ok(());
        }
        let id = crate::extract::case_id(&case.id)?;
        self.engine.record_personal_read(&p.actor, &id, fields, surface).await?;
        Ok(())
    }

    /// The projections' position.
    pub fn projection_position(&self) -> Position {
        *self.projection_position.borrow()
    }

    /// Waits until the projections (and the Open311 listing, which is one of
    /// them) have applied `position`, at most `timeout`; returns whether
    /// they have. A command calls it so that its own write is visible to
    /// the reads that follow (read-your-writes).
    pub async fn wait_for_projections(&self, position: Position, timeout: Duration) -> bool {
        let mut rx = self.projection_position.clone();
        let reached = tokio::time::timeout(timeout, rx.wait_for(|p| *p >= position)).await;
        matches!(reached, Ok(Ok(_)))
    }

    /// Head, projection and index positions and the projection lag in seconds.
    pub async fn lags(&self) -> Lags {
        let head = self.engine.log().head().position;
        let projections = self.projection_position();
        let mut seconds = 0.0;
        if projections < head {
            // The age of the oldest record not yet applied: how stale the
            // reports are, in the units an operator alerts on.
            if let Ok(recs) = self.engine.log().read_all(projections + 1, 1).await {
                if let Some(r) = recs.first() {
                    let now = self.engine.clock().now();
                    seconds = (now.0 - r.recorded_at.0).max(0) as f64 / 1000.0;
                }
            }
        }
        // The Open311 listing is a projection: it is where they are.
        Lags { head, projections, projection_lag_seconds: seconds, index: projections }
    }
}
