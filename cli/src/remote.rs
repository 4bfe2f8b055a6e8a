//! The CLI on a live district: while `gridcase serve` holds the embedded
//! store (sled allows one process), the other commands run *inside* the
//! server, through a Unix socket in the data directory.
//!
//! # How a command gets there
//!
//! `gridcase serve` listens on `<data>/control.sock` (mode 0600, and a
//! connecting process must run as the socket's owner or as root: only who
//! could read the store's files anyway may connect). A command that needs
//! the store first tries that socket ([`forward`]): nothing there, or
//! connection refused (a server killed with `kill -9` leaves its socket
//! file behind), and the command opens the store itself as before, which
//! says "in use" if something else holds it. A server removes a stale
//! socket and makes its own when it starts, and removes it when it stops.
//!
//! The client sends its argument vector, its working directory, the global
//! options as it resolved them (`--json`, `--at`, `--durability`, with
//! their environment variables) and its API key, as one JSON line. The
//! server parses the arguments with the same [`crate::Cli`] and runs the
//! same command function ([`crate::run`]) against its own open engine: a
//! task-local ([`HOSTED`]) makes `store::open`/`store::open_log` return the
//! server's engine and log, the reports start from a copy of the server's
//! live projections (caught up to the head) instead of the saved state,
//! the proofs from the server's Merkle tree, and `output::out` writes to
//! the socket. There is one implementation of each command; what it prints
//! is what it prints offline.
//!
//! The answer is a stream of frames: a tag byte, a big-endian `u32` length
//! and the bytes. `o`: standard output, `e`: standard error, `x`: the end,
//! the exit code byte followed by the error line (empty when there is
//! none). The client prints output as it arrives (so `export` streams)
//! and exits with the same code; a reader that goes away (`| head`) ends
//! the client quietly (exit 141), and the command in the server stops at
//! its next write.
//!
//! # What runs, and who may
//!
//! - Reads (reports, `case show`/`case list` as the district, `stats`,
//!   `export`, `audit verify|prove|receipt|reads`, `checkpoint`, `places`,
//!   `locate`, `replay`) need no key (a key given is still checked: an
//!   unknown one is refused). `--at`, `--json` and `--durability` mean what
//!   they mean offline.
//! - Commands that change the log (`submit`, the case lifecycle commands,
//!   `case show|list --as`, which records personal-data reads, and
//!   `org import-geojson`) need an API key of the server's key store
//!   (`--key` or `GRIDCASE_API_KEY`). A command acts as the key's actor:
//!   `--as` must name that actor (a different one is refused, never
//!   impersonated); `org import-geojson` needs a staff key and is recorded
//!   as the system, as offline. They are recorded at the server's clock, so
//!   `--at` is refused for them (the server's clock is never pinned), and a
//!   `--durability` other than the server's is refused too.
//! - Commands that need the files to themselves (`serve`, `demo`, `init`,
//!   `import`, `tick`, `audit keygen`, and `migrate` from or to a served
//!   directory) are refused with one line, exit code 4: stop the server
//!   first. The server ticks deadlines itself.
//! - `apikey create` runs in the server too (it checks the actor against
//!   the registry the server has open; the server picks the new key up
//!   from its key file).
//! - Commands that do not open the store (`org generate|check`,
//!   `audit check-proof`, `checkpoint --vkey`, `apikey list|revoke`,
//!   `bench`) run in the client as before.
//!
//! # Files
//!
//! A file a command reads or writes (`export --out`, `audit receipt --out`,
//! `audit prove … --out`, the GeoJSON of `org import-geojson`) is named
//! relative to the client's working directory and read or written by the
//! server process, which runs as the same user (see above). `export --out`
//! keeps its guarantees (the file appears whole or not at all) because it
//! is the same code.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use clap::Parser;
use gridcase_api::auth::Principal;
use gridcase_api::AppState;
use gridcase_engine::domain::ActorId;
use gridcase_engine::log::{Durability, EventLog};
use gridcase_engine::transparency::Transparency;
use gridcase_engine::Engine;
use gridcase_projections::ProjectionSet;
use serde::{Deserialize, Serialize};

use crate::error::CliError;
use crate::{AuditCmd, Cli, Cmd, Global, OrgCmd};

/// The control socket's file name inside the data directory.
pub const SOCKET: &str = "control.sock";

/// Bumped when the request or the frames change: a client and a server of
/// different protocols refuse each other instead of misreading.
const PROTOCOL: u32 = 1;
/// The longest request line a server reads.
const MAX_REQUEST: u64 = 1 << 20;
/// The longest frame a client accepts (a server sends at most `MAX_CHUNK`).
const MAX_FRAME: usize = 16 << 20;
/// Output larger than this is sent as several frames.
const MAX_CHUNK: usize = 1 << 20;
/// How long a server waits for a connected client's request line.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

const TAG_OUT: u8 = b'o';
const TAG_ERR: u8 = b'e';
const TAG_EXIT: u8 = b'x';

/// A command line as the client resolved it, sent as one JSON line.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    protocol: u32,
    /// The arguments, the program name first.
    argv: Vec<String>,
    /// Where relative file names point.
    cwd: PathBuf,
    json: bool,
    at: Option<String>,
    durability: Option<String>,
    key: Option<String>,
}

/// Which output stream a frame carries.
#[derive(Clone, Copy, Debug)]
pub enum Channel {
    /// The command's standard output.
    Stdout,
    /// Its notices and warnings.
    Stderr,
}

/// What a command run for a client sees instead of its own store.
struct Hosted {
    engine: Arc<Engine>,
    transparency: Arc<Transparency>,
    projections: gridcase_projections::SharedProjections,
    /// The server's key store: a key created through the server is in
    /// force at once.
    keys: Arc<gridcase_api::KeyStore>,
    /// The key's actor, when the client presented a key.
    principal: Option<Principal>,
    /// The socket the output goes to.
    sink: UnixStream,
}

tokio::task_local! {
    /// Set while the server runs a command for a client.
    static HOSTED: Arc<Hosted>;
}

/// Whether the running command was sent by a client (its output goes to
/// the socket).
pub fn is_hosted() -> bool {
    HOSTED.try_with(|_| ()).is_ok()
}

/// Writes `buf` to the client's `channel` when the command runs for a
/// client; `None` otherwise (the caller writes to its own stream). A client
/// that went away reads as a closed pipe.
pub fn sink_write(channel: Channel, buf: &[u8]) -> Option<std::io::Result<()>> {
    let tag = match channel {
        Channel::Stdout => TAG_OUT,
        Channel::Stderr => TAG_ERR,
    };
    HOSTED.try_with(|h| send(&h.sink, tag, buf)).ok()
}

/// The server's engine, for `store::open` when the command runs for a client.
pub fn engine() -> Option<Arc<Engine>> {
    HOSTED.try_with(|h| h.engine.clone()).ok()
}

/// The server's log, for `store::open_log` when the command runs for a client.
pub fn log() -> Option<Arc<dyn EventLog>> {
    HOSTED.try_with(|h| h.engine.log().clone()).ok()
}

/// The server's Merkle tree (kept by its follower, signing with its key).
pub fn transparency() -> Option<Arc<Transparency>> {
    HOSTED.try_with(|h| h.transparency.clone()).ok()
}

/// The server's key store when `path` is its file (`apikey create` through
/// the server adds to it, so the new key works at once).
pub fn keys_at(path: &Path) -> Option<Arc<gridcase_api::KeyStore>> {
    let keys = HOSTED.try_with(|h| h.keys.clone()).ok()?;
    let same = match (keys.path().map(std::fs::canonicalize), std::fs::canonicalize(path)) {
        (Some(Ok(a)), Ok(b)) => a == b,
        _ => false,
    };
    same.then_some(keys)
}

/// For a command run for a client: a copy of the server's live projections,
/// caught up to the head of `log`. The saved state is neither read nor
/// written (the server's follower owns it). `None` offline.
pub async fn live_projections(log: &Arc<dyn EventLog>) -> Result<Option<ProjectionSet>, CliError> {
    let Ok(shared) = HOSTED.try_with(|h| h.projections.clone()) else { return Ok(None) };
    // A copy, so that a slow reader never holds the follower back; the
    // follower may be a few records behind, which the catch-up applies
    // (the same fold, so the same state as a rebuild at that head).
    let mut set = shared.read().unwrap_or_else(PoisonError::into_inner).clone();
    set.catch_up(log).await?;
    Ok(Some(set))
}

/// Checks that a command run for a client may act as `actor`: the client
/// presented a key and the key acts as `actor`. Offline, anyone may (they
/// hold the store's files).
pub fn authorize(actor: &ActorId) -> Result<(), CliError> {
    let Ok(principal) = HOSTED.try_with(|h| h.principal.clone()) else { return Ok(()) };
    let p = principal.ok_or_else(need_key)?;
    if p.actor_id != *actor {
        return Err(CliError::Usage(format!(
            "the API key acts as {}, not as {actor}: through the running server a command acts as its key's actor",
            p.actor
        )));
    }
    Ok(())
}

fn need_key() -> CliError {
    CliError::Usage(
        "this command changes the log: through the running server it needs an API key (--key or GRIDCASE_API_KEY; `gridcase apikey create`); reads need none".into(),
    )
}

/// How a command runs while a server holds the store.
#[derive(Debug, PartialEq)]
enum Route {
    /// It does not open the store: it runs in the client.
    Local,
    /// It reads: the server runs it, no key needed.
    Read,
    /// It acts as an actor (`--as`): the server runs it with the key's actor.
    Act,
    /// It appends as the system: the server runs it for a staff key.
    System,
    /// It needs the files to itself; the reason, for the one line.
    Refuse(&'static str),
}

/// Every command's [`Route`]: a new command must say how it runs on a live
/// district (the match has no catch-all on purpose).
fn route(cmd: &Cmd) -> Route {
    use crate::cases::ShowCmd;
    match cmd {
        Cmd::Demo(_) => Route::Refuse("`demo` replaces the store"),
        Cmd::Init { .. } => Route::Refuse("`init` creates a store"),
        Cmd::Import { .. } => Route::Refuse("`import` writes into an empty store"),
        Cmd::Serve(_) => Route::Refuse("a server is already serving this store"),
        Cmd::Tick { .. } => Route::Refuse(
            "the server runs deadlines itself every --tick-seconds; `tick --now` pins the clock, which a live server never does",
        ),
        Cmd::Audit(AuditCmd::Keygen { .. }) => {
            Route::Refuse("the server signs with the key it loaded at start")
        }
        Cmd::Org(OrgCmd::Generate { .. } | OrgCmd::Check { .. }) => Route::Local,
        Cmd::Org(OrgCmd::ImportGeojson { org: Some(_), .. }) => Route::Local,
        Cmd::Org(OrgCmd::ImportGeojson { dry_run: true, .. }) => Route::Read,
        Cmd::Org(OrgCmd::ImportGeojson { .. }) => Route::System,
        Cmd::Submit(_) | Cmd::Case(_) => Route::Act,
        Cmd::Show(ShowCmd::Show { actor, .. } | ShowCmd::List { actor, .. }) => match actor {
            Some(_) => Route::Act,
            None => Route::Read,
        },
        Cmd::Backlog(_)
        | Cmd::Rates(_)
        | Cmd::Chains(_)
        | Cmd::Overdue(_)
        | Cmd::Locate { .. }
        | Cmd::Places { .. }
        | Cmd::Replay { .. }
        | Cmd::Export { .. }
        | Cmd::Stats => Route::Read,
        Cmd::Audit(
            AuditCmd::Verify | AuditCmd::Prove(_) | AuditCmd::Receipt { .. } | AuditCmd::Reads { .. },
        ) => Route::Read,
        Cmd::Audit(AuditCmd::CheckProof { .. }) => Route::Local,
        // Signing a checkpoint adds derived state beside the log, as the
        // server's own periodic signer does.
        Cmd::Checkpoint { vkey: false } => Route::Read,
        Cmd::Checkpoint { vkey: true } => Route::Local,
        // Its stores are named by --from/--to: checked in `forward`.
        Cmd::Migrate { .. } => Route::Local,
        // `create` checks the actor against the registry, which the
        // server has open; the key file is the server's to reload.
        Cmd::Apikey(crate::serve::ApiKeyCmd::Create { .. }) => Route::Read,
        Cmd::Apikey(_) | Cmd::Bench(_) => Route::Local,
    }
}

/// Makes the file names a command reads or writes absolute against the
/// client's working directory (the server's is another).
fn absolutize(cmd: &mut Cmd, cwd: &Path) {
    use crate::trust::ProveCmd;
    let fix = |p: &mut PathBuf| *p = cwd.join(&*p);
    match cmd {
        Cmd::Export { out: Some(p) } => fix(p),
        Cmd::Audit(AuditCmd::Receipt { out, .. })
        | Cmd::Audit(AuditCmd::Prove(
            ProveCmd::Inclusion { out, .. } | ProveCmd::Consistency { out, .. },
        )) => {
            if let Some(p) = &mut out.out {
                fix(p);
            }
        }
        Cmd::Org(OrgCmd::ImportGeojson { file, .. }) => fix(file),
        Cmd::Apikey(crate::serve::ApiKeyCmd::Create { keys: Some(p), .. }) => fix(p),
        _ => {}
    }
}

/// The lower-case name of a durability mode, as `--durability` takes it.
fn durability_name(d: Durability) -> String {
    format!("{d:?}").to_ascii_lowercase()
}

/// The checks before a command that changes the log runs for a client.
fn gate(
    g: &Global,
    principal: Option<&Principal>,
    route: &Route,
    served: Durability,
) -> Result<(), CliError> {
    let p = principal.ok_or_else(need_key)?;
    if g.at.is_some() {
        return Err(CliError::Usage(
            "--at (or GRIDCASE_AT): through the running server a change is recorded at the server's clock; leave it out, or stop the server to record at a chosen time".into(),
        ));
    }
    if let Some(d) = &g.durability {
        let d: Durability = d.parse()?;
        if d != served {
            return Err(CliError::Usage(format!(
                "--durability {}: the running server appends with durability {}; leave it out or stop the server",
                durability_name(d),
                durability_name(served)
            )));
        }
    }
    if *route == Route::System && !p.is_staff() {
        return Err(CliError::Usage(
            "this command acts for the district: it needs a staff member's API key".into(),
        ));
    }
    Ok(())
}

/// Sends one frame (several for a large body). A peer that went away is a
/// broken pipe whatever the system calls it.
fn send(mut w: &UnixStream, tag: u8, body: &[u8]) -> std::io::Result<()> {
    if body.is_empty() && tag != TAG_EXIT {
        return Ok(());
    }
    let mut rest = body;
    loop {
        let (chunk, tail) = rest.split_at(rest.len().min(MAX_CHUNK));
        let len = u32::try_from(chunk.len()).unwrap_or(u32::MAX).to_be_bytes();
        let mut frame = Vec::with_capacity(5 + chunk.len());
        frame.push(tag);
        frame.extend_from_slice(&len);
        frame.extend_from_slice(chunk);
        w.write_all(&frame).map_err(|e| match e.kind() {
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted => {
                std::io::Error::new(std::io::ErrorKind::BrokenPipe, e)
            }
            _ => e,
        })?;
        rest = tail;
        if rest.is_empty() {
            return Ok(());
        }
    }
}

/// Whether a server is listening on `dir`'s control socket.
fn served(dir: &Path) -> Option<UnixStream> {
    UnixStream::connect(dir.join(SOCKET)).ok()
}

/// The client side, called by `main` before anything else: when a server
/// holds the store named by `--data` and the command needs the store, runs
/// it through the server and returns its exit code. `None`: run it here
/// (no server, a stale socket, another store, or a command that opens no
/// store).
pub fn forward(cli: &Cli) -> Option<ExitCode> {
    if let Cmd::Migrate { from, to } = &cli.command {
        let live = [from, to].into_iter().find(|s| {
            !(s.starts_with("postgres://") || s.starts_with("postgresql://"))
                && served(Path::new(s.strip_prefix("sled:").unwrap_or(s))).is_some()
        });
        if let Some(dir) = live {
            return Some(refused(&format!("a server is serving {dir}")));
        }
    }
    if cli.global.store.is_some() {
        // PostgreSQL takes many processes: no server in between.
        return None;
    }
    let route = route(&cli.command);
    if route == Route::Local {
        return None;
    }
    let stream = served(&cli.global.data)?;
    if let Route::Refuse(why) = route {
        return Some(refused(why));
    }
    Some(match request(cli).and_then(|r| relay(stream, &r)) {
        Ok(code) => code,
        Err(line) => {
            eprintln!("error: {}", crate::output::clean(&line));
            ExitCode::from(1)
        }
    })
}

/// The one line and exit code of a command that needs the store to itself.
fn refused(why: &str) -> ExitCode {
    let e = CliError::Served(format!("{why}: stop the server first"));
    if let Some(line) = crate::error_line(&e) {
        eprintln!("error: {line}");
    }
    ExitCode::from(e.exit_code())
}

fn request(cli: &Cli) -> Result<Request, String> {
    let argv =
        std::env::args_os().map(|a| a.into_string()).collect::<Result<Vec<String>, _>>().map_err(
            |_| "the arguments are not UTF-8: the running server cannot take them".to_string(),
        )?;
    let cwd =
        std::env::current_dir().map_err(|e| format!("cannot read the working directory: {e}"))?;
    let g = &cli.global;
    Ok(Request {
        protocol: PROTOCOL,
        argv,
        cwd,
        json: g.json,
        at: g.at.clone(),
        durability: g.durability.clone(),
        key: g.key.clone(),
    })
}

/// Sends the request and prints the answer as it arrives; the exit code.
fn relay(stream: UnixStream, req: &Request) -> Result<ExitCode, String> {
    let lost = |e: std::io::Error| format!("the connection to the running server failed: {e}");
    let mut line = serde_json::to_vec(req).map_err(|e| e.to_string())?;
    line.push(b'\n');
    (&stream).write_all(&line).map_err(lost)?;
    let mut r = BufReader::new(&stream);
    let stdout = std::io::stdout();
    let mut head = [0u8; 5];
    loop {
        if let Err(e) = r.read_exact(&mut head) {
            return Err(match e.kind() {
                std::io::ErrorKind::UnexpectedEof => {
                    "the running server stopped before the command finished".to_string()
                }
                _ => lost(e),
            });
        }
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        if len > MAX_FRAME {
            return Err(format!("the running server sent a frame of {len} bytes"));
        }
        let mut body = vec![0u8; len];
        r.read_exact(&mut body).map_err(lost)?;
        match head[0] {
            TAG_OUT => {
                let mut out = stdout.lock();
                if let Err(e) = out.write_all(&body).and_then(|()| out.flush()) {
                    let e = crate::output::stdout_error(e);
                    if !e.is_quiet() {
                        eprintln!("error: {e}");
                    }
                    // Dropping the connection stops the command in the server.
                    return Ok(ExitCode::from(e.exit_code()));
                }
            }
            TAG_ERR => {
                let _ = std::io::stderr().lock().write_all(&body);
            }
            TAG_EXIT => {
                let Some((&code, text)) = body.split_first() else {
                    return Err("the running server sent an empty exit frame".into());
                };
                if !text.is_empty() {
                    eprintln!("error: {}", String::from_utf8_lossy(text));
                }
                return Ok(ExitCode::from(code));
            }
            other => return Err(format!("the running server sent an unknown frame {other:#04x}")),
        }
    }
}

/// What every command run for a client shares: the server's state.
struct Base {
    state: AppState,
    data: PathBuf,
    served: Durability,
}

/// The control socket of a running server; [`Control::stop`] removes it.
pub struct Control {
    path: PathBuf,
    task: tokio::task::JoinHandle<()>,
    /// One clone per command in flight (and one in the accept loop).
    active: Arc<()>,
}

/// How long a stopping server waits for the commands in flight.
const DRAIN: Duration = Duration::from_secs(10);

impl Control {
    /// Stops accepting commands, removes the socket file and waits (at most
    /// [`DRAIN`]) for the commands in flight to finish, so that a write a
    /// client sent is not cut off by the shutdown.
    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
        let _ = std::fs::remove_file(&self.path);
        let drained = tokio::time::timeout(DRAIN, async {
            while Arc::strong_count(&self.active) > 1 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!("control socket: commands still running at shutdown are cut off");
        }
    }
}

/// The server side: listens on `<data>/control.sock` for commands, run
/// against `state` (the server's engine, keys, projections and tree).
/// `served` is the durability the server's log appends with. The caller
/// holds the store's lock, so a socket file already there is stale (its
/// server is gone) and is replaced.
pub fn listen(data: &Path, state: &AppState, served: Durability) -> Result<Control, CliError> {
    let path = data.join(SOCKET);
    match std::fs::symlink_metadata(&path) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(&path)
            .map_err(CliError::io(format!("cannot remove the stale {}", path.display())))?,
        Ok(_) => {
            return Err(CliError::Usage(format!(
                "{} exists and is not a socket: move it away",
                path.display()
            )))
        }
        Err(_) => {}
    }
    let listener = tokio::net::UnixListener::bind(&path)
        .map_err(CliError::io(format!("cannot listen on {}", path.display())))?;
    // Only the owner may connect; a connection accepted before this took
    // effect still has to pass the owner check in `accept_loop`.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .map_err(CliError::io(format!("cannot restrict {}", path.display())))?;
    let owner = std::fs::metadata(&path)
        .map_err(CliError::io(format!("cannot read {}", path.display())))?
        .uid();
    let base = Arc::new(Base { state: state.clone(), data: data.to_path_buf(), served });
    let active = Arc::new(());
    let task = tokio::spawn(accept_loop(listener, owner, base, active.clone()));
    Ok(Control { path, task, active })
}

async fn accept_loop(
    listener: tokio::net::UnixListener,
    owner: u32,
    base: Arc<Base>,
    active: Arc<()>,
) {
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                // Out of file descriptors and the like: wait, do not spin.
                tracing::warn!(error = %e, "control socket: cannot accept");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        match stream.peer_cred() {
            Ok(c) if c.uid() == owner || c.uid() == 0 => {}
            _ => {
                tracing::warn!("control socket: refused a connection from another user");
                continue;
            }
        }
        let stream = match stream.into_std().and_then(|s| s.set_nonblocking(false).map(|()| s)) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "control socket: cannot use a connection");
                continue;
            }
        };
        let (base, handle) = (base.clone(), tokio::runtime::Handle::current());
        let active = active.clone();
        // A thread per command: its output is written with blocking writes
        // (`output::out` is synchronous), which must not stall the server's
        // async workers, and a slow reader only holds its own thread.
        let spawned =
            std::thread::Builder::new().name("gridcase-control".into()).spawn(move || {
                handle.block_on(serve_client(stream, base));
                drop(active);
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "control socket: cannot start a thread");
        }
    }
}

/// Runs one client's command and sends the exit frame.
async fn serve_client(stream: UnixStream, base: Arc<Base>) {
    let (code, line) = match run_for_client(&stream, &base).await {
        Ok(()) => (0, None),
        Err(e) => (e.exit_code(), crate::error_line(&e)),
    };
    let mut body = vec![code];
    body.extend_from_slice(line.unwrap_or_default().as_bytes());
    // The client may be gone (a closed pipe): nobody is left to tell.
    let _ = send(&stream, TAG_EXIT, &body);
}

async fn run_for_client(stream: &UnixStream, base: &Base) -> Result<(), CliError> {
    let req = read_request(stream)?;
    let mut cli = Cli::try_parse_from(&req.argv).map_err(|e| {
        CliError::Usage(e.to_string().lines().next().unwrap_or("bad arguments").to_string())
    })?;
    // The store is the server's; the options that shape the output are the
    // client's, as it resolved them (the server's environment plays no part).
    cli.global = Global {
        data: base.data.clone(),
        store: None,
        json: req.json,
        at: req.at,
        durability: req.durability,
        key: None,
    };
    let principal = match &req.key {
        Some(k) => {
            Some(gridcase_api::auth::authenticate(&base.state, k).map_err(crate::serve::api_err)?)
        }
        None => None,
    };
    let route = route(&cli.command);
    match &route {
        Route::Local => {
            return Err(CliError::Usage(
                "this command does not open the store: run it without the server".into(),
            ))
        }
        Route::Refuse(why) => {
            return Err(CliError::Served(format!("{why}: stop the server first")))
        }
        Route::Read => {}
        Route::Act | Route::System => gate(&cli.global, principal.as_ref(), &route, base.served)?,
    }
    absolutize(&mut cli.command, &req.cwd);
    let sink = stream.try_clone().map_err(CliError::io("cannot use the control connection"))?;
    let hosted = Arc::new(Hosted {
        engine: base.state.engine.clone(),
        transparency: base.state.transparency.clone(),
        projections: base.state.projections.clone(),
        keys: base.state.keys.clone(),
        principal,
        sink,
    });
    HOSTED.scope(hosted, crate::run(cli)).await
}

fn read_request(stream: &UnixStream) -> Result<Request, CliError> {
    let bad = |what: String| CliError::Usage(format!("control request: {what}"));
    stream.set_read_timeout(Some(REQUEST_TIMEOUT)).map_err(CliError::io("control socket"))?;
    let mut line = String::new();
    BufReader::new(stream)
        .take(MAX_REQUEST)
        .read_line(&mut line)
        .map_err(CliError::io("cannot read the control request"))?;
    let req: Request = serde_json::from_str(&line).map_err(|e| bad(e.to_string()))?;
    if req.protocol != PROTOCOL {
        return Err(bad(format!(
            "protocol {} is not this server's {PROTOCOL}: use the same gridcase build",
            req.protocol
        )));
    }
    if !req.cwd.is_absolute() {
        return Err(bad("the working directory is not absolute".into()));
    }
    Ok(req)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cmd(args: &[&str]) -> Cmd {
        let mut v = vec!["gridcase"];
        v.extend_from_slice(args);
        Cli::try_parse_from(v).unwrap().command
    }

    /// Reads need no key, writes act, and what must own the files is refused.
    #[test]
    fn routes() {
        assert_eq!(route(&cmd(&["rates"])), Route::Read);
        assert_eq!(route(&cmd(&["audit", "verify"])), Route::Read);
        assert_eq!(route(&cmd(&["case", "show", "X"])), Route::Read);
        assert_eq!(route(&cmd(&["case", "show", "X", "--as", "s1"])), Route::Act);
        assert_eq!(route(&cmd(&["claim", "X", "--as", "s1"])), Route::Act);
        assert_eq!(route(&cmd(&["org", "import-geojson", "f"])), Route::System);
        assert_eq!(route(&cmd(&["org", "import-geojson", "f", "--dry-run"])), Route::Read);
        assert_eq!(route(&cmd(&["org", "check", "f"])), Route::Local);
        assert_eq!(route(&cmd(&["checkpoint", "--vkey"])), Route::Local);
        for refused in [&["init", "--org", "f"][..], &["import", "f"], &["tick", "--now", "x"]] {
            assert!(matches!(route(&cmd(refused)), Route::Refuse(_)), "{refused:?}");
        }
    }

    /// Relative names point into the client's directory; absolute ones stay.
    #[test]
    fn files_are_the_clients() {
        let mut c = cmd(&["export", "--out", "e.jsonl"]);
        absolutize(&mut c, Path::new("/home/op"));
        assert!(matches!(&c, Cmd::Export { out: Some(p) } if p == Path::new("/home/op/e.jsonl")));
        let mut c = cmd(&["audit", "receipt", "--case", "X", "--out", "/tmp/r.json"]);
        absolutize(&mut c, Path::new("/home/op"));
        let Cmd::Audit(AuditCmd::Receipt { out, .. }) = c else { panic!() };
        assert_eq!(out.out.as_deref(), Some(Path::new("/tmp/r.json")));
    }

    /// A frame is the tag, the length and the bytes; an empty exit frame
    /// still goes out, empty output does not.
    #[test]
    fn frames() {
        let (a, mut b) = UnixStream::pair().unwrap();
        send(&a, TAG_OUT, b"").unwrap();
        send(&a, TAG_OUT, b"hi").unwrap();
        send(&a, TAG_EXIT, &[3]).unwrap();
        drop(a);
        let mut got = Vec::new();
        b.read_to_end(&mut got).unwrap();
        assert_eq!(got, [b'o', 0, 0, 0, 2, b'h', b'i', b'x', 0, 0, 0, 1, 3]);
    }

    /// Writes gated by the key: none, another actor, or `--at` are refused.
    #[test]
    fn writes_need_the_keys_actor_and_no_pinned_clock() {
        let g = |at: Option<&str>, d: Option<&str>| Global {
            data: PathBuf::from("d"),
            store: None,
            json: false,
            at: at.map(str::to_string),
            durability: d.map(str::to_string),
            key: None,
        };
        let p = Principal {
            actor: "s1".into(),
            actor_id: "s1".parse().unwrap(),
            role: gridcase_engine::hierarchy::Role::GridWorker,
            unit: None,
            key_id: "k".into(),
        };
        let d = Durability::Durable;
        assert!(gate(&g(None, None), None, &Route::Act, d).is_err());
        assert!(gate(&g(None, None), Some(&p), &Route::Act, d).is_ok());
        assert!(gate(&g(Some("2026-03-01"), None), Some(&p), &Route::Act, d).is_err());
        assert!(gate(&g(None, Some("buffered")), Some(&p), &Route::Act, d).is_err());
        assert!(gate(&g(None, Some("strict")), Some(&p), &Route::Act, d).is_ok());
        let resident = Principal {
            actor: "resident:1".into(),
            actor_id: "resident:1".parse().unwrap(),
            role: gridcase_engine::hierarchy::Role::Resident,
            ..p
        };
        assert!(gate(&g(None, None), Some(&resident), &Route::System, d).is_err());
    }
}
