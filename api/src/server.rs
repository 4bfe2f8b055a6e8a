//! Assembling and running the server: shared state, the route table, the
//! middleware stack, and the background work (deadline ticks and the one
//! live follower, which feeds the projections and the Open311 case listing
//! alike).
//!
//! Middleware, outermost first: request id (set, then echoed in
//! `X-Request-Id`), tracing span, metrics, error rendering, rate limits
//! ([`crate::limits`]), panic catching, timeout, body limit. Error
//! rendering sits outside the rate limits and the panic, timeout and limit
//! layers so that what they produce is rendered like any handler error, and
//! inside metrics so that metrics count the final status. The rate limits
//! come before the body is read, so a refused request costs no upload.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::handler::Handler;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use axum::Router;
use gridcase_engine::transparency::Transparency;
use gridcase_engine::Engine;
use gridcase_projections::{Follower, SharedProjections};
use rand::RngCore;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;
use tower_http::catch_panic::{CatchPanicLayer, ResponseForPanic};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};

use crate::dashboard::DashboardCache;
use crate::dto::{ErrorBody, ErrorDetail};
use crate::error::ErrorInfo;
use crate::keys::KeyStore;
use crate::limits::Limiters;
use crate::metrics::Metrics;
use crate::pseudonym::Pseudonyms;
use crate::session::Sessions;
use crate::state::{AppState, ServerOptions, Shared};
use crate::{dashboard, events, native, open311, openapi, trust, ApiError};

/// The route table: every (method, path) and its handler. Building the
/// router and listing its routes share this one table, so the OpenAPI test
/// compares the document with what the server really serves.
pub struct Routes {
    map: BTreeMap<&'static str, MethodRouter<AppState>>,
    list: Vec<(Method, &'static str)>,
}

impl Routes {
    fn new() -> Routes {
        Routes { map: BTreeMap::new(), list: Vec::new() }
    }

    fn get<H: Handler<T, AppState>, T: 'static>(mut self, path: &'static str, h: H) -> Self {
        let mr = self.map.remove(path).unwrap_or_default().get(h);
        self.map.insert(path, mr);
        self.list.push((Method::GET, path));
        self
    }

    fn post<H: Handler<T, AppState>, T: 'static>(mut self, path: &'static str, h: H) -> Self {
        let mr = self.map.remove(path).unwrap_or_default().post(h);
        self.map.insert(path, mr);
        self.list.push((Method::POST, path));
        self
    }

    /// (method, path template) of every route.
    pub fn list(&self) -> Vec<(String, String)> {
        self.list.iter().map(|(m, p)| (m.as_str().to_string(), p.to_string())).collect()
    }

    fn into_router(self) -> Router<AppState> {
        self.map.into_iter().fold(Router::new(), |r, (path, mr)| r.route(path, mr))
    }
}

/// Every route the server serves.
pub fn routes() -> Routes {
    use native as n;
    use open311 as o;
    Routes::new()
        .post("/api/v1/cases", n::submit)
        .get("/api/v1/cases/{id}", n::get_case)
        .get("/api/v1/cases/{id}/timeline", n::timeline)
        .get("/api/v1/cases/{id}/reads", n::case_reads)
        .get("/api/v1/cases/{id}/chain", n::case_chain)
        .post("/api/v1/cases/{id}/assign", n::assign)
        .post("/api/v1/cases/{id}/reject", n::reject)
        .post("/api/v1/cases/{id}/merge", n::merge)
        .post("/api/v1/cases/{id}/withdraw", n::withdraw)
        .post("/api/v1/cases/{id}/escalate", n::escalate)
        .post("/api/v1/cases/{id}/dispatch", n::dispatch)
        .post("/api/v1/cases/{id}/claim", n::claim)
        .post("/api/v1/cases/{id}/return", n::return_case)
        .post("/api/v1/cases/{id}/extension", n::request_extension)
        .post("/api/v1/cases/{id}/extension/decision", n::decide_extension)
        .post("/api/v1/cases/{id}/supervise", n::supervise)
        .post("/api/v1/cases/{id}/resolve", n::resolve)
        .post("/api/v1/cases/{id}/callback", n::callback)
        .post("/api/v1/cases/{id}/reopen", n::reopen)
        .post("/api/v1/cases/{id}/close", n::close)
        .get("/api/v1/backlog", n::backlog)
        .get("/api/v1/rates", n::rates)
        .get("/api/v1/rates/ranking", n::ranking)
        .get("/api/v1/chains", n::chains)
        .get("/api/v1/overdue", n::overdue)
        .get("/api/v1/places", n::places)
        .get("/api/v1/replay", n::replay)
        .get("/api/v1/audit/verify", n::audit_verify)
        .get("/api/v1/stats", n::stats)
        .get("/api/v1/checkpoint", trust::get_checkpoint)
        .post("/api/v1/checkpoint", trust::post_checkpoint)
        .get("/api/v1/proofs/inclusion", trust::inclusion)
        .get("/api/v1/proofs/consistency", trust::consistency)
        .get("/api/v1/cases/{id}/receipt", trust::receipt)
        .get("/tlog/checkpoint", trust::tlog_checkpoint)
        .get("/tlog/tile/{*path}", trust::tlog_tile)
        .get("/api/v1/events", events::events)
        .get("/", dashboard::index)
        .get("/assets/{*path}", dashboard::asset)
        .get("/api/v1/dashboard/session", dashboard::whoami)
        .post("/api/v1/dashboard/session", dashboard::sign_in)
        .post("/api/v1/dashboard/session/end", dashboard::sign_out)
        .get("/api/v1/dashboard/meta", dashboard::meta)
        .get("/api/v1/dashboard/map", dashboard::map)
        .get("/api/v1/dashboard/backlog", dashboard::backlog)
        .get("/api/v1/dashboard/rates", dashboard::rates)
        .get("/api/v1/dashboard/chains", dashboard::chains)
        .get("/api/v1/dashboard/overdue", dashboard::overdue)
        .get("/api/v1/dashboard/cases/{id}", dashboard::case)
        .get("/api/v1/openapi.json", openapi::openapi_json)
        .get("/metrics", native::metrics)
        .get("/open311/v2/discovery.json", o::discovery_json)
        .get("/open311/v2/discovery.xml", o::discovery_xml)
        .get("/open311/v2/services.json", o::services_json)
        .get("/open311/v2/services.xml", o::services_xml)
        .get("/open311/v2/services/{service_code}", o::service_definition)
        .get("/open311/v2/requests.json", o::requests_json)
        .get("/open311/v2/requests.xml", o::requests_xml)
        .post("/open311/v2/requests.json", o::post_request_json)
        .post("/open311/v2/requests.xml", o::post_request_xml)
        .get("/open311/v2/requests/{service_request_id}", o::request)
        .get("/open311/v2/tokens/{token}", o::token)
        .get("/open311/v2/media/{sha256}", o::media)
}

/// The whole application: routes plus middleware.
pub fn app(state: AppState) -> Router {
    with_middleware(routes().into_router(), state)
}

/// Wraps any router in the server's middleware stack (tests use it to
/// check the stack with routes of their own, e.g. one that panics).
pub fn with_middleware(router: Router<AppState>, state: AppState) -> Router {
    // The outer bound on any body: a multipart Open311 POST may carry a
    // media file besides its fields. Every handler reads its body with its
    // own limit (`body_limit` for all but that one), so the others still
    // answer 413 past `body_limit`.
    let media = if state.options.media_dir.is_some() { state.options.media_max_bytes } else { 0 };
    let limit = state.options.body_limit.saturating_add(media);
    let timeout = state.options.request_timeout;
    router
        .fallback(|| async { StatusCode::NOT_FOUND })
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        .layer(RequestBodyLimitLayer::new(limit))
        .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, timeout))
        .layer(CatchPanicLayer::custom(PanicToError))
        .layer(axum::middleware::from_fn_with_state(state.clone(), rate_limit))
        .layer(axum::middleware::from_fn(render_errors))
        .layer(axum::middleware::from_fn_with_state(state.clone(), record_metrics))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request<Body>| {
                    let rid = req
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    // The path only: a query string may carry an Open311 api_key.
                    tracing::info_span!(
                        "http",
                        method = %req.method(),
                        path = %req.uri().path(),
                        request_id = %rid,
                        actor = tracing::field::Empty,
                    )
                })
                .on_response(DefaultOnResponse::new().level(tracing::Level::DEBUG)),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(RandomRequestId))
        .with_state(state)
}

/// Request ids: 16 random hex digits.
#[derive(Clone, Copy, Debug, Default)]
struct RandomRequestId;

impl MakeRequestId for RandomRequestId {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let mut b = [0u8; 8];
        rand::rng().fill_bytes(&mut b);
        let id: String = b.iter().map(|x| format!("{x:02x}")).collect();
        HeaderValue::from_str(&id).ok().map(RequestId::new)
    }
}

/// Turns a panic into a 500 whose body the error middleware renders with
/// the request's correlation id; the panic itself is logged here, inside
/// the request's tracing span (which carries the same id).
#[derive(Clone, Copy, Debug)]
struct PanicToError;

impl ResponseForPanic for PanicToError {
    type ResponseBody = Body;

    fn response_for_panic(
        &mut self,
        err: Box<dyn std::any::Any + Send + 'static>,
    ) -> axum::http::Response<Body> {
        let what = err
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| err.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".into());
        tracing::error!(panic = %what, "a handler panicked");
        let mut res = StatusCode::INTERNAL_SERVER_ERROR.into_response();
        res.extensions_mut().insert(ErrorInfo {
            code: "internal_panic".into(),
            message: "the server failed while handling this request; quote the correlation id when reporting it".into(),
            ..ErrorInfo::from_status(StatusCode::INTERNAL_SERVER_ERROR)
        });
        res
    }
}

async fn record_metrics(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().as_str().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let start = Instant::now();
    let res = next.run(req).await;
    state.metrics.observe_request(&method, &route, res.status().as_u16(), start.elapsed());
    if let Some(position) = res.extensions().get::<ErrorInfo>().and_then(|i| i.position) {
        state.metrics.corruption(position, &format!("{method} {route}"));
    }
    res
}

/// Which surface a path belongs to, for the error format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Surface {
    Native,
    Open311(open311::Format),
}

impl Surface {
    fn of(path: &str) -> Surface {
        if path.starts_with("/open311/") {
            let xml = path.ends_with(".xml");
            Surface::Open311(if xml { open311::Format::Xml } else { open311::Format::Json })
        } else {
            Surface::Native
        }
    }
}

async fn render_errors(req: Request, next: Next) -> Response {
    let surface = Surface::of(req.uri().path());
    let rid = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_string);
    let res = next.run(req).await;
    let status = res.status();
    if !status.is_client_error() && !status.is_server_error() {
        return res;
    }
    let info = res
        .extensions()
        .get::<ErrorInfo>()
        .cloned()
        .unwrap_or_else(|| ErrorInfo::from_status(status));
    if status.is_server_error() {
        tracing::error!(correlation_id = rid.as_deref().unwrap_or(""), code = %info.code, message = %info.message, "request failed");
    }
    let keep: Vec<(header::HeaderName, HeaderValue)> = res
        .headers()
        .iter()
        .filter(|(k, _)| {
            *k == header::ALLOW
                || *k == header::ETAG
                || *k == header::RETRY_AFTER
                || *k == header::WWW_AUTHENTICATE
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut out = match surface {
        Surface::Open311(format) => open311::error_response(&info, format),
        Surface::Native => {
            let body = ErrorBody {
                error: ErrorDetail {
                    code: info.code.clone(),
                    rule: info.rule.clone(),
                    message: info.message.clone(),
                    case_id: info.case_id.clone(),
                    state: info.state.clone(),
                    correlation_id: rid.clone(),
                    position: info.position,
                },
            };
            (status, axum::Json(body)).into_response()
        }
    };
    for (k, v) in keep {
        out.headers_mut().insert(k, v);
    }
    if out.status() == StatusCode::UNAUTHORIZED
        && !out.headers().contains_key(header::WWW_AUTHENTICATE)
    {
        out.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    if out.status() == StatusCode::SERVICE_UNAVAILABLE
        && !out.headers().contains_key(header::RETRY_AFTER)
    {
        out.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    }
    out.extensions_mut().insert(info);
    out
}

/// Events after the last engine checkpoint at which the ticker saves a new
/// one: a restart then reads at most about this many events to rebuild the
/// open-case view, and a busy server saves every few minutes at most.
const CHECKPOINT_EVERY_EVENTS: u64 = 200_000;

async fn tick_loop(engine: Arc<Engine>, every: Duration, mut shutdown: watch::Receiver<bool>) {
    let mut saved_at = engine.log().head().position;
    let mut iv = tokio::time::interval(every);
    iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|s| *s) => return,
            _ = iv.tick() => {}
        }
        let now = engine.clock().now();
        match engine.tick(now).await {
            Ok(r) if r.events > 0 => tracing::info!(
                checked = r.checked,
                escalations = r.escalations,
                dispatches = r.dispatches,
                overdue_marks = r.overdue_marks,
                "deadlines ticked"
            ),
            Ok(_) => {}
            // A failed tick is retried at the next interval: deadlines are
            // derived from the log, so nothing is lost by waiting.
            Err(e) => {
                tracing::warn!(error = %e, "deadline tick failed; retrying at the next interval")
            }
        }
        if engine.log().head().position >= saved_at + CHECKPOINT_EVERY_EVENTS {
            match engine.save_checkpoint().await {
                Ok(p) => saved_at = p,
                Err(e) => tracing::warn!(error = %e, "cannot save the engine checkpoint"),
            }
        }
    }
}

/// Keeps the Merkle tree at the log's head: hashes what each group
/// committed, after it committed, off the write path.
async fn tree_loop(
    transparency: Arc<Transparency>,
    mut head: watch::Receiver<u64>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        if let Err(e) = transparency.sync().await {
            // Retried at the next append: the tree is derived from the log.
            tracing::warn!(error = %e, "the Merkle tree cannot follow the log");
        }
        tokio::select! {
            _ = shutdown.wait_for(|s| *s) => return,
            changed = head.changed() => if changed.is_err() { return },
        }
    }
}

/// Signs a checkpoint every `every` when the log has grown since the last.
async fn checkpoint_loop(
    transparency: Arc<Transparency>,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut iv = tokio::time::interval(every);
    iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|s| *s) => return,
            _ = iv.tick() => {}
        }
        let signed = match transparency.latest_signed().await {
            Ok(s) => s.map_or(0, |s| s.checkpoint.size),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the latest checkpoint");
                continue;
            }
        };
        if transparency.size() <= signed && signed > 0 {
            continue;
        }
        match transparency.sign_checkpoint().await {
            Ok(s) => tracing::info!(size = s.checkpoint.size, "checkpoint signed"),
            Err(e) => {
                tracing::warn!(error = %e, "cannot sign a checkpoint; retrying at the next interval")
            }
        }
    }
}

/// Every minute, the rate limiters forget clients that have been idle
/// long enough to be back at a full burst, so their memory stays bounded
/// by the clients of the last minute.
async fn forget_idle_clients(state: AppState, mut shutdown: watch::Receiver<bool>) {
    let mut iv = tokio::time::interval(Duration::from_secs(60));
    iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|s| *s) => return,
            _ = iv.tick() => state.limiters.forget_idle(),
        }
    }
}

/// Counts the request against its client's address and API key
/// ([`crate::limits`]); over a limit it is answered 429 with `Retry-After`
/// and goes no further.
async fn rate_limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let addr = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    // The key as the handlers will see it: a bearer header or, on Open311,
    // `api_key` in the query string. Only a known key has a bucket, so
    // invented keys cannot grow the limiter's memory.
    let presented = crate::auth::bearer(req.headers()).ok().flatten().or_else(|| {
        let q = req.uri().query()?;
        serde_urlencoded::from_str::<Vec<(String, String)>>(q)
            .ok()?
            .into_iter()
            .find(|(k, _)| k == "api_key")
            .map(|(_, v)| v)
    });
    let key_id = presented.and_then(|k| state.keys.lookup(k.trim())).map(|e| e.id);
    let cost = if req.method() == Method::GET {
        open311::listing_cost(req.uri().path(), req.uri().query())
    } else {
        1
    };
    match state.limiters.request(addr, key_id.as_deref(), cost) {
        Ok(()) => next.run(req).await,
        Err(refused) => {
            state.metrics.observe_rate_limited(refused.limit);
            ApiError::from(refused).into_response()
        }
    }
}

/// A running server.
pub struct Server {
    addr: SocketAddr,
    state: AppState,
    shutdown: watch::Sender<bool>,
    http: JoinHandle<std::io::Result<()>>,
    tasks: Vec<JoinHandle<()>>,
    follower: Follower,
}

impl Server {
    /// Builds the read models (the projections, the Open311 listing among
    /// them, from their saved state or the log), starts their one live
    /// follower and the deadline ticker, and serves on `listener` until
    /// [`Server::shutdown`].
    pub async fn start(
        engine: Arc<Engine>,
        keys: Arc<KeyStore>,
        options: ServerOptions,
        listener: TcpListener,
    ) -> Result<Server, ApiError> {
        engine.catch_up().await?;
        let log = engine.log().clone();
        // The district's periods follow its zone, from the organisation in
        // the log (the one home of the zone), not a server option.
        let config = gridcase_projections::Config::for_zone(&engine.registry().zone);
        let store =
            options.projection_store.as_ref().map(gridcase_projections::Store::open).transpose()?;
        let set = match &store {
            Some(s) => gridcase_projections::open(&log, s, config).await?.0,
            None => gridcase_projections::rebuild(&log, config).await?,
        };
        let shared: SharedProjections = Arc::new(RwLock::new(set));
        let follower = gridcase_projections::follow(
            log.clone(),
            shared.clone(),
            gridcase_projections::FollowOptions { store, ..Default::default() },
        );
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        // The projections were caught up to the head above, so Open311
        // listings are complete from the first request on.
        let mut tasks = Vec::new();
        if let Some(every) = options.tick_interval {
            tasks.push(tokio::spawn(tick_loop(engine.clone(), every, shutdown_rx.clone())));
        }
        let transparency = match &options.transparency {
            Some(t) => t.clone(),
            None => Arc::new(Transparency::open(log.clone(), "unsigned".into(), None).await?),
        };
        tasks.push(tokio::spawn(tree_loop(
            transparency.clone(),
            log.watch_head(),
            shutdown_rx.clone(),
        )));
        if let (Some(every), Some(_)) = (options.checkpoint_interval, transparency.verifier()) {
            tasks.push(tokio::spawn(checkpoint_loop(
                transparency.clone(),
                every,
                shutdown_rx.clone(),
            )));
        }
        let (listing_concurrency, rate_limits) =
            (options.listing_concurrency.max(1), options.rate_limits);
        let media = options
            .media_dir
            .as_ref()
            .map(|d| crate::media::MediaStore::new(d, options.media_max_bytes));
        // The pseudonym key lives beside the API keys (never in the log).
        let pseudonyms = match keys.path().and_then(|p| p.parent()) {
            Some(dir) if !dir.as_os_str().is_empty() => Pseudonyms::load_or_create(dir)?,
            _ => Pseudonyms::ephemeral()?,
        };
        let state = AppState(Arc::new(Shared {
            engine,
            keys,
            projections: shared,
            projection_position: follower.watch(),
            metrics: Arc::new(Metrics::default()),
            options,
            replay_gate: Semaphore::new(1),
            verify_gate: Semaphore::new(1),
            transparency,
            listing_gate: Semaphore::new(listing_concurrency),
            limiters: Limiters::new(rate_limits),
            media,
            shutdown: shutdown_rx.clone(),
            sessions: Sessions::default(),
            dashboard: DashboardCache::default(),
            pseudonyms,
        }));
        let addr = listener.local_addr().map_err(|source| ApiError::Io {
            what: "cannot read the listening address".into(),
            source,
        })?;
        tasks.push(tokio::spawn(forget_idle_clients(state.clone(), shutdown_rx.clone())));
        let router = app(state.clone());
        // The accept loop gives each request its peer's address
        // (`ConnectInfo`), which the per-address rate limit counts.
        let limits = state.options.connections;
        let metrics = state.metrics.clone();
        let http =
            tokio::spawn(crate::listen::serve(listener, router, limits, metrics, shutdown_rx));
        tracing::info!(%addr, "gridcase API listening");
        Ok(Server { addr, state, shutdown: shutdown_tx, http, tasks, follower })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The handlers' shared state.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Stops accepting requests, ends event streams, waits for requests in
    /// flight, stops the background tasks and saves the projections and the
    /// engine's checkpoint (so the next start reads only what follows).
    pub async fn shutdown(self) -> Result<(), ApiError> {
        self.shutdown.send_replace(true);
        let served = self.http.await;
        for t in self.tasks {
            let _ = t.await;
        }
        self.follower.stop().await?;
        if let Err(e) = self.state.0.engine.save_checkpoint().await {
            // Derived state: the next start follows the whole log instead.
            tracing::warn!(error = %e, "cannot save the engine checkpoint at shutdown");
        }
        match served {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => Err(ApiError::Io { what: "the HTTP server failed".into(), source }),
            Err(e) => Err(ApiError::Internal(format!("the HTTP server task failed: {e}"))),
        }
    }
}
