//! `gridcase serve` (the HTTP server over a store) and `gridcase apikey`
//! (the keys it accepts).
//!
//! The server opens the store like every other command, loads the key file
//! (`<data>/api_keys.toml` unless `--keys`), builds its read models, ticks
//! deadlines every `--tick-seconds`, limits request rates (`--rate-*`,
//! `--submissions-per-minute`; see `gridcase_api::limits`), keeps uploaded
//! Open311 photos under `<data>/media`, and runs until Ctrl-C or SIGTERM, when
//! it stops accepting requests, ends event streams and saves the
//! projections.
//!
//! On the embedded store it also listens on `<data>/control.sock`, so that
//! the other `gridcase` commands work while it runs: they run inside the
//! server (see `crate::remote`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use gridcase_api::limits::{Rate, RateLimits};
use gridcase_api::{ApiError, KeyStore, Server, ServerOptions};
use gridcase_engine::time::{Clock, SystemClock};

use crate::error::CliError;
use crate::{output, store, Global};

/// Options of `gridcase serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on (port 0: any free port, printed on start).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// API key file (default: `<data>/api_keys.toml`).
    #[arg(long)]
    keys: Option<PathBuf>,
    /// Seconds between deadline ticks (0: no automatic ticks).
    #[arg(long, default_value_t = 60)]
    tick_seconds: u64,
    /// Largest request body in KiB (larger: 413).
    #[arg(long, default_value_t = 64)]
    body_limit_kib: usize,
    /// Longest time a request may take to start its response, in seconds.
    #[arg(long, default_value_t = 30)]
    timeout_seconds: u64,
    /// Most HTTP connections open at once; past it new ones wait in the
    /// kernel's backlog. Keep it below the open-file limit (`ulimit -n`).
    #[arg(long, default_value_t = 4096)]
    max_connections: usize,
    /// Seconds a connection may take to send a request's head, counted from
    /// when the server waits for it; also closes idle keep-alive connections.
    #[arg(long, default_value_t = 15)]
    header_timeout_seconds: u64,
    /// An Open311 jurisdiction_id accepted besides the district's code.
    #[arg(long)]
    jurisdiction: Option<String>,
    /// Do not save projection state under `<data>/projections` (rebuild on every start).
    #[arg(long)]
    no_projection_state: bool,
    /// Seconds between signed checkpoints, signed only when the log has
    /// grown (0: only on request). Needs the log key in `<data>/trust`.
    #[arg(long, default_value_t = 300)]
    checkpoint_every: u64,
    /// Requests per second per client address (0: no limit). Behind a
    /// reverse proxy every client shares the proxy's address: raise it.
    #[arg(long, default_value_t = 100)]
    rate_per_address: u32,
    /// Requests a client address may send at once after being idle.
    #[arg(long, default_value_t = 200)]
    burst_per_address: u32,
    /// Requests per second per API key (0: no limit).
    #[arg(long, default_value_t = 50)]
    rate_per_key: u32,
    /// Requests a key may send at once after being idle.
    #[arg(long, default_value_t = 100)]
    burst_per_key: u32,
    /// New cases per minute per API key, native and Open311 (0: no limit).
    #[arg(long, default_value_t = 20)]
    submissions_per_minute: u32,
    /// New cases a key may submit at once after being idle.
    #[arg(long, default_value_t = 10)]
    submission_burst: u32,
    /// Largest photo an Open311 POST may upload as `media`, in KiB (0: no
    /// uploads). Files are kept under `<data>/media`, named by their SHA-256.
    #[arg(long, default_value_t = 5120)]
    media_max_kib: usize,
    /// Open311 listings built at once (default: the cores less one, at least 1).
    #[arg(long)]
    listing_concurrency: Option<usize>,
}

/// `gridcase apikey ...`.
#[derive(Subcommand, Debug)]
pub enum ApiKeyCmd {
    /// Create a key acting as a staff member (or `resident:<id>`); prints the key once.
    Create {
        /// The staff id (role and unit come from the registry) or `resident:<id>`.
        #[arg(long = "as")]
        actor: String,
        /// A note: which portal or app uses the key.
        #[arg(long, default_value = "")]
        label: String,
        /// Key file (default: `<data>/api_keys.toml`).
        #[arg(long)]
        keys: Option<PathBuf>,
    },
    /// List keys (ids and actors; the keys themselves are not stored).
    List {
        /// Key file (default: `<data>/api_keys.toml`).
        #[arg(long)]
        keys: Option<PathBuf>,
    },
    /// Revoke a key by id (a running server stops accepting it within a second).
    Revoke {
        /// The key id shown by `list`.
        id: String,
        /// Key file (default: `<data>/api_keys.toml`).
        #[arg(long)]
        keys: Option<PathBuf>,
    },
}

pub(crate) fn api_err(e: ApiError) -> CliError {
    match e {
        ApiError::Engine(e) => CliError::Engine(e),
        ApiError::Io { what, source } => CliError::Io { what, source },
        other => CliError::Usage(other.to_string()),
    }
}

fn key_file(g: &Global, keys: Option<PathBuf>) -> PathBuf {
    keys.unwrap_or_else(|| g.data.join("api_keys.toml"))
}

/// `gridcase serve`.
pub async fn serve(g: &Global, a: ServeArgs) -> Result<(), CliError> {
    if a.body_limit_kib == 0
        || a.timeout_seconds == 0
        || a.max_connections == 0
        || a.header_timeout_seconds == 0
    {
        return Err(CliError::Usage(
            "--body-limit-kib, --timeout-seconds, --max-connections and --header-timeout-seconds must be positive".into(),
        ));
    }
    let engine = store::open(g).await?;
    // The durability the log was opened with: a write sent through the
    // control socket may not ask for another.
    let durability = g.durability_or(gridcase_engine::log::Durability::Durable)?;
    let path = key_file(g, a.keys);
    let keys = Arc::new(KeyStore::load(&path).map_err(api_err)?);
    if keys.list().is_empty() {
        tracing::warn!(file = %path.display(), "no API keys yet: only Open311 reads will work; create one with `gridcase apikey create --as STAFF_ID`");
    }
    let transparency = crate::trust::open_transparency(g, &engine).await?;
    if transparency.verifier().is_none() {
        tracing::warn!(dir = %crate::trust::key_dir(g).display(), "no log key: the server serves proofs and tiles but signs no checkpoint");
    }
    let listener = tokio::net::TcpListener::bind(&a.listen)
        .await
        .map_err(CliError::io(format!("cannot listen on {}", a.listen)))?;
    let options = ServerOptions {
        body_limit: a.body_limit_kib * 1024,
        request_timeout: Duration::from_secs(a.timeout_seconds),
        connections: gridcase_api::listen::ConnectionLimits {
            max_connections: a.max_connections,
            header_read_timeout: Duration::from_secs(a.header_timeout_seconds),
            ..Default::default()
        },
        tick_interval: (a.tick_seconds > 0).then(|| Duration::from_secs(a.tick_seconds)),
        jurisdiction_id: a.jurisdiction,
        // Saved state only for the embedded store: the directory is the store's.
        projection_store: (g.store.is_none() && !a.no_projection_state)
            .then(|| g.data.join("projections")),
        transparency: Some(transparency),
        checkpoint_interval: (a.checkpoint_every > 0)
            .then(|| Duration::from_secs(a.checkpoint_every)),
        rate_limits: RateLimits {
            per_address: Rate::per_second(a.rate_per_address, a.burst_per_address),
            per_key: Rate::per_second(a.rate_per_key, a.burst_per_key),
            submissions_per_key: Rate::per_minute(a.submissions_per_minute, a.submission_burst),
        },
        media_dir: (a.media_max_kib > 0).then(|| g.data.join("media")),
        media_max_bytes: a.media_max_kib.saturating_mul(1024),
        listing_concurrency: a
            .listing_concurrency
            .unwrap_or(ServerOptions::default().listing_concurrency)
            .max(1),
        ..ServerOptions::default()
    };
    let server = Server::start(engine, keys, options, listener).await.map_err(api_err)?;
    let addr = server.local_addr();
    // The store is locked by this process from here on, so a control
    // socket left by a killed server is stale and is replaced. Without the
    // socket the server still serves HTTP: the CLI then says "in use".
    let control = match g.store {
        Some(_) => None,
        None => match crate::remote::listen(&g.data, server.state(), durability) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(error = %e, "no control socket: CLI commands cannot run while the server does");
                None
            }
        },
    };
    // One line on stdout for scripts (the port when --listen ends in :0).
    crate::outln!("listening on {addr}")?;
    eprintln!(
        "gridcase serving http://{addr}: native API /api/v1 (OpenAPI /api/v1/openapi.json), Open311 /open311/v2, events /api/v1/events, metrics /metrics, the log as tlog-tiles /tlog"
    );
    shutdown_signal().await;
    eprintln!("shutting down: finishing requests in flight and saving the projections");
    if let Some(c) = control {
        c.stop().await;
    }
    server.shutdown().await.map_err(api_err)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

/// `gridcase apikey ...`.
pub async fn apikey(g: &Global, cmd: ApiKeyCmd) -> Result<(), CliError> {
    match cmd {
        ApiKeyCmd::Create { actor, label, keys } => {
            // Check the actor against the registry when the store can be
            // opened; a running server holds the store's lock, and then the
            // server checks the actor on every request instead.
            match store::open(g).await {
                Ok(engine) => {
                    engine.actor(&actor.parse()?)?;
                }
                Err(e) => crate::errln!(
                    "warning: could not open the store to check {actor:?} ({e}); the server checks it on every request"
                ),
            }
            let path = key_file(g, keys);
            let store = match crate::remote::keys_at(&path) {
                Some(running) => running,
                None => Arc::new(KeyStore::load(&path).map_err(api_err)?),
            };
            // The key file is machine-read: its times stay in UTC.
            let now = SystemClock.now().to_rfc3339();
            let (key, entry) = store.create(&actor, &label, &now).map_err(api_err)?;
            if g.json {
                return output::json(&serde_json::json!({
                    "id": entry.id, "key": key, "actor": entry.actor, "file": path.display().to_string(),
                }));
            }
            crate::errln!(
                "created key {} for {} in {}; it is shown only once:",
                entry.id,
                entry.actor,
                path.display()
            );
            crate::outln!("{key}")?;
            Ok(())
        }
        ApiKeyCmd::List { keys } => {
            let path = key_file(g, keys);
            let list = KeyStore::load(&path).map_err(api_err)?.list();
            if g.json {
                let v: Vec<_> = list
                    .iter()
                    .map(|k| serde_json::json!({"id": k.id, "actor": k.actor, "label": k.label, "created_at": k.created_at}))
                    .collect();
                return output::json(&v);
            }
            let mut t = output::Table::new(&["id", "actor", "label", "created"]);
            for k in list {
                t.row(vec![k.id, k.actor, k.label, k.created_at]);
            }
            crate::out!("{}", t.render())?;
            Ok(())
        }
        ApiKeyCmd::Revoke { id, keys } => {
            let path = key_file(g, keys);
            let store = KeyStore::load(&path).map_err(api_err)?;
            if !store.revoke(&id).map_err(api_err)? {
                return Err(CliError::Usage(format!(
                    "no key with id {id:?} in {}",
                    path.display()
                )));
            }
            eprintln!("revoked {id}");
            Ok(())
        }
    }
}
