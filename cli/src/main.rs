//! `gridcase`: the command an operator, an auditor or a newcomer runs.
//!
//! `gridcase demo` is the main job: a Tinghu-sized district, a month of
//! simulated requests through the whole lifecycle, and the dashboard. The
//! other commands operate a store (init, case commands, tick), read it
//! (backlog, rates, chains, overdue, case show, stats) and audit it (replay,
//! audit verify, export, import). Every read command takes `--json`.

mod bench;
mod cases;
mod dashboard;
mod demo;
mod error;
mod output;
mod remote;
mod serve;
mod store;
mod trust;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use error::CliError;

/// Event-sourced case handling for resident requests in city grid governance.
#[derive(Parser, Debug)]
#[command(name = "gridcase", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Cmd,
}

/// Options every command takes.
#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Data directory of the embedded store.
    #[arg(long, global = true, env = "GRIDCASE_DATA", default_value = "./gridcase-data")]
    pub data: PathBuf,
    /// Another store instead of the data directory: `postgres://user:pass@host/db`.
    #[arg(long, global = true, env = "GRIDCASE_STORE")]
    pub store: Option<String>,
    /// Print JSON instead of tables (JSON lines for streams).
    #[arg(long, global = true)]
    pub json: bool,
    /// Act as if it were this time: a date (local midnight), a local time (2026-03-03T16:00), RFC 3339 with an offset, or epoch ms; local means the district's time zone. For scripted replays and tests.
    #[arg(long, global = true, env = "GRIDCASE_AT")]
    pub at: Option<String>,
    /// When appends are acknowledged: durable (power-loss safe: an fdatasync
    /// per group on sled, synchronous_commit=on on PostgreSQL), flushed
    /// (process-crash safe: sled's flush, synchronous_commit=off) or
    /// buffered. `strict` is accepted as an alias of durable. Default:
    /// durable, except for `demo` (see there).
    #[arg(long, global = true)]
    pub durability: Option<String>,
    /// API key for a command that changes the log while `gridcase serve`
    /// holds the store: the command then runs inside the server as the
    /// key's actor (`--as` must name it). Reads need none; ignored
    /// offline, where whoever holds the files acts.
    #[arg(long, global = true, env = "GRIDCASE_API_KEY", hide_env_values = true)]
    pub key: Option<String>,
}

impl Global {
    /// `--durability`, or `default` when it was not given.
    pub fn durability_or(
        &self,
        default: gridcase_engine::log::Durability,
    ) -> Result<gridcase_engine::log::Durability, error::CliError> {
        match &self.durability {
            Some(d) => Ok(d.parse()?),
            None => Ok(default),
        }
    }
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// The main job: simulate a month in a Tinghu-sized district and print the dashboard.
    Demo(DemoArgs),
    /// Create a store with an organisation from a TOML file.
    Init {
        /// Organisation file (see org/tinghu.toml).
        #[arg(long)]
        org: PathBuf,
        /// The log's C2SP origin, also the log key's name (default:
        /// `gridcase/<district code>`).
        #[arg(long)]
        origin: Option<String>,
    },
    /// Organisation files.
    #[command(subcommand)]
    Org(OrgCmd),
    /// Open a case.
    Submit(cases::SubmitArgs),
    /// Lifecycle commands on a case.
    #[command(flatten)]
    Case(cases::CaseCmd),
    /// Read cases.
    #[command(name = "case", subcommand)]
    Show(cases::ShowCmd),
    /// Open cases per grid, rolled up, with aging, overdue and "solved in the grid".
    Backlog(dashboard::Filters),
    /// Resolution, response, satisfaction, on-time, return and redo rates per unit; units below target flagged.
    Rates(dashboard::Filters),
    /// Escalation chains: shapes, time per level, escalation rates by category.
    Chains(dashboard::Filters),
    /// Open cases past or near their limit, by holder.
    Overdue(dashboard::Filters),
    /// Where a point or an address is: its micro-grid, grid, community and
    /// street, and the coordinates of the place (what a submission with it
    /// would be placed in).
    Locate {
        /// A point as LAT,LON in degrees.
        #[arg(
            long,
            value_name = "LAT,LON",
            allow_hyphen_values = true,
            conflicts_with = "address",
            required_unless_present = "address"
        )]
        point: Option<String>,
        /// A grid or micro-grid code, or text containing a registered address.
        #[arg(long)]
        address: Option<String>,
    },
    /// Cases per micro-grid submitted in a window (where the problems are),
    /// and how their locations were resolved (code, point, address).
    Places {
        /// Earliest submission (RFC 3339, a date, or epoch ms; default: 30 days before --until).
        #[arg(long)]
        since: Option<String>,
        /// Latest submission (default: now, or --at).
        #[arg(long)]
        until: Option<String>,
        /// Only places within this unit (street, community or grid code).
        #[arg(long)]
        unit: Option<String>,
        /// Rows to show.
        #[arg(long, default_value_t = 15)]
        top: usize,
    },
    /// Every report as it was at a past time or position, and the projection digests.
    Replay {
        /// A past time: a date (local midnight), a local time, RFC 3339 with an offset, or epoch ms.
        #[arg(long)]
        as_of: Option<String>,
        /// A past log position.
        #[arg(long)]
        position: Option<u64>,
        #[command(flatten)]
        filters: dashboard::Filters,
    },
    /// Record every deadline passed up to a time (the server does this continuously).
    Tick {
        /// The time to run deadlines up to, in the district's zone (a date is local midnight).
        #[arg(long)]
        now: String,
    },
    /// Audit the log: the hash chain, proofs, receipts, and checks that need no store.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Sign a checkpoint of the whole log with the district's log key (C2SP
    /// signed note) and store it; print the note.
    Checkpoint {
        /// Print the log's verifier key (C2SP vkey form) instead.
        #[arg(long)]
        vkey: bool,
    },
    /// Write every event with its envelope as JSON lines, in order; every record is checked first, and a corrupt one stops the export (exit 3).
    Export {
        /// Output file (default: standard output); it appears only when every record checked out.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Load an export into an empty store, verifying the chain.
    Import {
        /// The JSON-lines file written by `export`.
        file: PathBuf,
    },
    /// Store size, event count, per-type counts, open cases.
    Stats,
    /// Serve the native API, Open311 and the live event feed over HTTP.
    Serve(serve::ServeArgs),
    /// API keys of the HTTP server.
    #[command(subcommand)]
    Apikey(serve::ApiKeyCmd),
    /// Copy a store into an empty one (sled ↔ PostgreSQL), verifying the chain.
    Migrate {
        /// Source: a data directory or a postgres:// URL.
        #[arg(long)]
        from: String,
        /// Destination (must be empty): a data directory or a postgres:// URL.
        #[arg(long)]
        to: String,
    },
    /// Escalation throughput at city scale on sled, PostgreSQL or both, side by side.
    Bench(bench::BenchArgs),
}

#[derive(Args, Debug)]
struct DemoArgs {
    /// Simulated days.
    #[arg(long, default_value_t = 30)]
    days: u32,
    /// Seed of every random choice (same seed, same cases).
    #[arg(long, default_value_t = 12345)]
    seed: u64,
    /// Mean new requests per day.
    #[arg(long, default_value_t = 400.0)]
    rate: f64,
    /// Organisation file (default: the shipped Tinghu district).
    #[arg(long)]
    org: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum OrgCmd {
    /// Print a generated organisation file (tinghu: the shipped one; chengdu: city scale).
    Generate {
        /// tinghu or chengdu.
        #[arg(long, default_value = "tinghu")]
        shape: String,
        /// Write SHAPE.toml and its boundaries (SHAPE.geojson) into this
        /// directory instead of printing the TOML.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Check an organisation file and print its size.
    Check {
        /// The file.
        file: PathBuf,
    },
    /// Check a GeoJSON FeatureCollection of micro-grid boundaries (each
    /// feature's "code" property names its unit) and load it into the
    /// store's organisation; every problem found is listed.
    ImportGeojson {
        /// The GeoJSON file.
        file: PathBuf,
        /// Check it against this organisation file instead; nothing is written.
        #[arg(long)]
        org: Option<PathBuf>,
        /// The district's bounding box as W,S,E,N in degrees (default: the
        /// file's bbox, else the boundaries' extent).
        #[arg(long, value_name = "W,S,E,N", allow_hyphen_values = true)]
        bbox: Option<String>,
        /// Check against the store's organisation, write nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand, Debug)]
enum AuditCmd {
    /// Walk the hash chain: the number of events and the head hash, or the first bad position.
    Verify,
    /// Write an inclusion or consistency proof (JSON) against signed checkpoints.
    #[command(subcommand)]
    Prove(trust::ProveCmd),
    /// A resident's receipt: the signed checkpoint and the inclusion proof of each of a case's events.
    Receipt {
        /// The case id.
        #[arg(long)]
        case: String,
        #[command(flatten)]
        out: trust::OutArg,
    },
    /// Check a proof or receipt file offline, with the log's verifier key and no store.
    /// Exit 0: verified; 2: malformed input; 3: it does not verify.
    CheckProof {
        /// The proof or receipt file.
        file: PathBuf,
        /// The log's verifier key (`name+id+key`), or a file holding it.
        #[arg(long)]
        vkey: String,
        /// A signed checkpoint to check against instead of the file's own
        /// (the proof must be for its tree size).
        #[arg(long)]
        checkpoint: Option<PathBuf>,
    },
    /// Who was shown a case's personal data (contact, the resident's id) and
    /// when: the recorded `PersonalDataRead` events (at most one per reader
    /// per minute), times in the district's zone.
    Reads {
        /// The case id.
        #[arg(long)]
        case: String,
    },
    /// Create the log key of a store initialised without one.
    Keygen {
        /// The log's origin (default: `gridcase/<district code>`).
        #[arg(long)]
        origin: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("GRIDCASE_LOG"))
        .with_writer(std::io::stderr)
        .init();
    // While a server holds the store, the command runs inside it.
    if let Some(code) = remote::forward(&cli) {
        return code;
    }
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(line) = error_line(&e) {
                eprintln!("error: {line}");
            }
            ExitCode::from(e.exit_code())
        }
    }
}

/// The one line printed after `error: ` for a failed command, `None` when
/// nothing is printed (the reader went away). Messages quote input and
/// stored text: shown escaped.
pub(crate) fn error_line(e: &CliError) -> Option<String> {
    (!e.is_quiet()).then(|| output::clean(&e.to_string()).into_owned())
}

async fn run(cli: Cli) -> Result<(), CliError> {
    let g = cli.global;
    match cli.command {
        Cmd::Demo(a) => demo::demo(&g, a.days, a.seed, a.rate, a.org).await,
        Cmd::Init { org, origin } => store::init(&g, &org, origin).await,
        Cmd::Org(OrgCmd::Generate { shape, out }) => store::org_generate(&shape, out.as_deref()),
        Cmd::Org(OrgCmd::Check { file }) => store::org_check(&g, &file),
        Cmd::Org(OrgCmd::ImportGeojson { file, org, bbox, dry_run }) => {
            store::org_import_geojson(&g, &file, org.as_deref(), bbox.as_deref(), dry_run).await
        }
        Cmd::Submit(a) => cases::submit(&g, a).await,
        Cmd::Case(c) => cases::run(&g, c).await,
        Cmd::Show(c) => cases::show(&g, c).await,
        Cmd::Tick { now } => store::tick(&g, &now).await,
        Cmd::Backlog(f) => dashboard::report(&g, dashboard::Report::Backlog, f).await,
        Cmd::Rates(f) => dashboard::report(&g, dashboard::Report::Rates, f).await,
        Cmd::Chains(f) => dashboard::report(&g, dashboard::Report::Chains, f).await,
        Cmd::Overdue(f) => dashboard::report(&g, dashboard::Report::Overdue, f).await,
        Cmd::Locate { point, address } => {
            store::locate(&g, point.as_deref(), address.as_deref()).await
        }
        Cmd::Places { since, until, unit, top } => {
            dashboard::places(&g, since.as_deref(), until.as_deref(), unit.as_deref(), top).await
        }
        Cmd::Replay { as_of, position, filters } => {
            dashboard::replay(&g, as_of, position, filters).await
        }
        Cmd::Audit(AuditCmd::Verify) => store::verify(&g).await,
        Cmd::Audit(AuditCmd::Prove(c)) => trust::prove(&g, c).await,
        Cmd::Audit(AuditCmd::Receipt { case, out }) => trust::receipt(&g, &case, out).await,
        Cmd::Audit(AuditCmd::CheckProof { file, vkey, checkpoint }) => {
            trust::check_proof(&g, &file, &vkey, checkpoint.as_deref())
        }
        Cmd::Audit(AuditCmd::Reads { case }) => cases::audit_reads(&g, &case).await,
        Cmd::Audit(AuditCmd::Keygen { origin }) => trust::keygen(&g, origin).await,
        Cmd::Checkpoint { vkey } => trust::checkpoint(&g, vkey).await,
        Cmd::Export { out } => store::export(&g, out).await,
        Cmd::Import { file } => store::import(&g, &file).await,
        Cmd::Stats => store::stats(&g).await,
        Cmd::Serve(a) => serve::serve(&g, a).await,
        Cmd::Apikey(c) => serve::apikey(&g, c).await,
        Cmd::Bench(a) => bench::bench(&g, a).await,
        Cmd::Migrate { from, to } => store::migrate(&g, &from, &to).await,
    }
}
