//! Opening a store, and the store-wide commands: demo, init, tick, audit,
//! export, import, stats, org files.

use std::collections::BTreeMap;
use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::StreamExt;
use gridcase_engine::domain::ActorId;
use gridcase_engine::domain::Event;
use gridcase_engine::log::{
    hex, read_all_stream, ChainVerifier, Durability, EventLog, IdempotencyMark, RecordedEvent,
    SledLog, SledOptions,
};
use gridcase_engine::org::OrgFile;
use gridcase_engine::time::{Clock, ManualClock, SystemClock, Timestamp, Zone, EARLIEST};
use gridcase_engine::{Engine, EngineOptions, Error};
use serde::{Deserialize, Serialize};

use crate::error::CliError;
use crate::output::{self, Table};
use crate::Global;

pub(crate) const DEMO_MARKER: &str = ".gridcase-demo";

/// The shipped Tinghu organisation.
pub const TINGHU_TOML: &str = include_str!("../../org/tinghu.toml");
/// Its boundaries (the file its `[geography]` names).
pub const TINGHU_GEOJSON: &str = include_str!("../../org/tinghu.geojson");

/// The shipped Tinghu organisation with its boundaries.
pub fn tinghu_shipped() -> Result<OrgFile, CliError> {
    let mut org = OrgFile::parse(TINGHU_TOML)?;
    org.attach_geojson(TINGHU_GEOJSON)?;
    Ok(org)
}

/// The clock a command runs with: `--at` pins it, otherwise the wall clock.
///
/// `--at` is a time a person typed, so it is read in the district's zone,
/// which is only known once the store (or the organisation file) is open:
/// a pinned clock starts at [`EARLIEST`] and [`pin`] sets it before any
/// command runs.
pub fn clock(g: &Global) -> Result<(Arc<dyn Clock>, Option<ManualClock>), CliError> {
    match &g.at {
        Some(_) => {
            let c = ManualClock::new(EARLIEST);
            Ok((Arc::new(c.clone()), Some(c)))
        }
        None => Ok((Arc::new(SystemClock), None)),
    }
}

/// Sets a clock made by [`clock`] to `--at`, read in `zone`; returns "now".
pub fn pin(g: &Global, manual: &Option<ManualClock>, zone: &Zone) -> Result<Timestamp, CliError> {
    match (&g.at, manual) {
        (Some(t), Some(c)) => {
            let t = zone.parse(t)?;
            c.set(t);
            Ok(t)
        }
        _ => Ok(SystemClock.now()),
    }
}

/// "Now" for a report: `--at` in the district's zone, or the wall clock.
pub fn now_in(g: &Global, zone: &Zone) -> Result<Timestamp, CliError> {
    match &g.at {
        Some(t) => Ok(zone.parse(t)?),
        None => Ok(SystemClock.now()),
    }
}

pub(crate) fn log_dir(data: &Path) -> PathBuf {
    data.join("log")
}

/// Opens the log named by `--store`, or the sled store under `--data`.
/// With `create` false, a missing store is an error and nothing is created.
pub async fn open_log(
    g: &Global,
    clock: Arc<dyn Clock>,
    create: bool,
) -> Result<Arc<dyn EventLog>, CliError> {
    // Inside a running server: the log it holds open.
    if let Some(log) = crate::remote::log() {
        return Ok(log);
    }
    if let Some(url) = &g.store {
        return open_remote(url, clock).await;
    }
    let dir = log_dir(&g.data);
    if !create && !dir.join("db").exists() {
        return Err(CliError::Usage(format!(
            "no store in {}: run `gridcase init --org FILE` or `gridcase demo` first, or pass --data DIR",
            g.data.display()
        )));
    }
    let durability = g.durability_or(Durability::Durable)?;
    let log = SledLog::open(&dir, SledOptions { durability, ..SledOptions::default() }, clock)?;
    Ok(Arc::new(log))
}

#[cfg(feature = "postgres")]
async fn open_remote(url: &str, clock: Arc<dyn Clock>) -> Result<Arc<dyn EventLog>, CliError> {
    if !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
        return Err(CliError::Usage(format!(
            "--store {url:?}: only postgres:// URLs are supported"
        )));
    }
    Ok(gridcase_postgres::open_log(url, clock).await?)
}

#[cfg(not(feature = "postgres"))]
async fn open_remote(url: &str, _clock: Arc<dyn Clock>) -> Result<Arc<dyn EventLog>, CliError> {
    Err(CliError::Usage(format!(
        "--store {url:?}: this build has no PostgreSQL support (feature `postgres`)"
    )))
}

/// Opens an existing store with its organisation.
///
/// Inside a running server (a command a client sent) it is the server's
/// engine: its clock is the server's and is never pinned; `--at` still sets
/// the reports' "now" ([`now_in`]), and writes with `--at` are refused
/// before they get here (`crate::remote`).
pub async fn open(g: &Global) -> Result<Arc<Engine>, CliError> {
    if let Some(engine) = crate::remote::engine() {
        return Ok(engine);
    }
    let (clock, manual) = clock(g)?;
    let log = open_log(g, clock.clone(), false).await?;
    let engine = Engine::new(log, clock, EngineOptions::default()).await?;
    if !engine.has_org() {
        return Err(CliError::Usage(
            "the store has no organisation yet: run `gridcase init --org FILE`".into(),
        ));
    }
    pin(g, &manual, &engine.registry().zone)?;
    Ok(Arc::new(engine))
}

/// Reads an organisation file and the boundaries file it names.
pub(crate) fn read_org(path: &Path) -> Result<OrgFile, CliError> {
    // Read here first so an unreadable file is an I/O error (exit 1), not
    // a user error; `load` reads it again with the boundaries beside it.
    std::fs::metadata(path)
        .map_err(CliError::io(format!("cannot read organisation file {}", path.display())))?;
    Ok(OrgFile::load(path)?)
}

/// `gridcase init --org FILE`.
pub async fn init(g: &Global, org: &Path, origin: Option<String>) -> Result<(), CliError> {
    // Parse first: a bad file must not leave an empty store behind.
    let org = read_org(org)?;
    // Check the origin before anything is written, like the file.
    let origin = crate::trust::init_origin(g, origin, &org.district.code)?;
    let (clock, manual) = clock(g)?;
    pin(g, &manual, &org.zone()?)?;
    if g.store.is_none() && log_dir(&g.data).join("db").exists() {
        let log = open_log(g, clock.clone(), false).await?;
        if log.head().position > 0 {
            return Err(CliError::Usage(format!(
                "{} already holds a store; use a new --data directory",
                g.data.display()
            )));
        }
    }
    let log = open_log(g, clock.clone(), true).await?;
    let engine = Engine::new(log, clock, EngineOptions::default()).await?;
    let out = engine.init_org(&ActorId::System, &org).await?;
    let (vkey, _) = crate::trust::ensure_key(&crate::trust::key_dir(g), &origin)?;
    let reg = engine.registry();
    if g.json {
        return output::json(&serde_json::json!({
            "events": out.last_position - out.first_position + 1,
            "units": reg.units.len(), "staff": reg.staff.len(), "categories": reg.categories.len(),
            "head": out.last_position, "origin": vkey.name(), "vkey": vkey.to_vkey(),
            "algorithms": gridcase_engine::transparency::gridcase_trust::Algorithms::current(),
        }));
    }
    crate::outln!(
        "initialised {}: {} units, {} staff, {} categories ({} events)",
        engine.log().describe(),
        reg.units.len(),
        reg.staff.len(),
        reg.categories.len(),
        out.last_position - out.first_position + 1
    )?;
    crate::outln!(
        "log key in {}; verifier key: {}",
        crate::trust::key_dir(g).display(),
        vkey.to_vkey()
    )?;
    Ok(())
}

/// `gridcase org generate [--out DIR]`: the TOML on stdout, or the TOML
/// and its boundaries file written into DIR.
pub fn org_generate(shape: &str, out: Option<&Path>) -> Result<(), CliError> {
    let org = match shape {
        "tinghu" => gridcase_sim::org::tinghu(),
        "chengdu" => gridcase_sim::org::chengdu(),
        other => {
            return Err(CliError::Usage(format!("unknown shape {other:?}: use tinghu or chengdu")))
        }
    };
    let text = gridcase_sim::org::to_toml(&org)
        .map_err(|e| CliError::Usage(format!("cannot write TOML: {e}")))?;
    let Some(dir) = out else {
        crate::out!("{text}")?;
        return Ok(());
    };
    let geojson = gridcase_sim::org::to_geojson(&org)?;
    let geo_name = org.geography.as_ref().map(|g| g.boundaries.clone()).unwrap_or_default();
    std::fs::create_dir_all(dir)
        .map_err(CliError::io(format!("cannot create {}", dir.display())))?;
    let toml_path = dir.join(format!("{shape}.toml"));
    for (path, body) in [(toml_path.clone(), text), (dir.join(&geo_name), geojson)] {
        std::fs::write(&path, body)
            .map_err(CliError::io(format!("cannot write {}", path.display())))?;
    }
    crate::outln!("wrote {} and {}", toml_path.display(), dir.join(geo_name).display())?;
    Ok(())
}

/// `gridcase org check FILE`.
pub fn org_check(g: &Global, file: &Path) -> Result<(), CliError> {
    let org = read_org(file)?;
    let events = org.events()?;
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &events {
        if let Event::UnitAdded { kind, .. } = e {
            *counts.entry(kind.as_str()).or_default() += 1;
        }
    }
    let boundaries = org.boundaries.as_ref().map_or(0, |b| b.boundaries.len());
    if g.json {
        return output::json(
            &serde_json::json!({"units": counts, "staff": org.staff.len(), "categories": org.categories.len(),
                "boundaries": boundaries}),
        );
    }
    crate::outln!(
        "{} is valid: {:?}, {} staff, {} categories, {} boundaries",
        file.display(),
        counts,
        org.staff.len(),
        org.categories.len(),
        boundaries
    )?;
    Ok(())
}

/// `gridcase org import-geojson FILE [--org ORG] [--bbox W,S,E,N] [--dry-run]`.
pub async fn org_import_geojson(
    g: &Global,
    file: &Path,
    org: Option<&Path>,
    bbox: Option<&str>,
    dry_run: bool,
) -> Result<(), CliError> {
    let text = std::fs::read_to_string(file)
        .map_err(CliError::io(format!("cannot read boundaries file {}", file.display())))?;
    let bounds = match bbox {
        None => None,
        Some(b) => {
            let parts: Vec<f64> = b.split(',').filter_map(|p| p.trim().parse().ok()).collect();
            let [w, s, e, n] = parts[..] else {
                return Err(CliError::Usage(format!(
                    "--bbox {b:?}: give four numbers W,S,E,N in degrees"
                )));
            };
            Some(gridcase_engine::geo::BoundingBox::from_wsen([w, s, e, n])?)
        }
    };
    let report = |count: usize, bounds: Option<gridcase_engine::geo::BoundingBox>, what: &str| {
        if g.json {
            return output::json(&serde_json::json!({
                "boundaries": count, "bbox": bounds.map(|b| b.to_wsen()), "result": what,
            }));
        }
        crate::outln!(
            "{}: {count} boundaries, bounding box {:?}: {what}",
            file.display(),
            bounds.map(|b| b.to_wsen())
        )?;
        Ok(())
    };
    if let Some(org_path) = org {
        let org = read_org(org_path)?;
        let mut reg = gridcase_engine::org::Registry::default();
        for e in org.hierarchy_events()? {
            reg.apply(&e);
        }
        let geo = gridcase_engine::geo::import(&text, &reg.units, bounds)?;
        return report(
            geo.boundaries.len(),
            geo.bounds,
            "valid for that organisation (nothing written)",
        );
    }
    let engine = open(g).await?;
    if dry_run {
        let reg = engine.registry();
        let geo = gridcase_engine::geo::import(&text, &reg.units, bounds)?;
        return report(geo.boundaries.len(), geo.bounds, "valid (dry run: nothing written)");
    }
    let (out, count) = engine.import_boundaries(&ActorId::System, &text, bounds).await?;
    let bounds = engine.registry().bounds;
    report(
        count,
        bounds,
        &format!("loaded at positions {}..={}", out.first_position, out.last_position),
    )
}

/// `gridcase tick --now TIME`.
pub async fn tick(g: &Global, now: &str) -> Result<(), CliError> {
    let mut g = g.clone();
    g.at = Some(now.to_string());
    let engine = open(&g).await?;
    let zone = engine.registry().zone.clone();
    let now = zone.parse(now)?;
    let report = engine.tick(now).await?;
    // The tick followed the whole log: keep that view for the next start.
    // The tick itself has been recorded, so failing to save this derived
    // view is reported but does not make the command fail.
    if let Err(e) = engine.save_checkpoint().await {
        crate::errln!("warning: the engine checkpoint was not saved ({e}); the next start reads the whole log");
    }
    if g.json {
        return output::json(&report);
    }
    crate::outln!(
        "deadlines up to {}: {} cases checked, {} escalated to a street, {} dispatched to a department, {} overdue marks",
        zone.format(now), report.checked, report.escalations, report.dispatches, report.overdue_marks
    )?;
    Ok(())
}

/// `gridcase audit verify`.
pub async fn verify(g: &Global) -> Result<(), CliError> {
    let (clock, _) = clock(g)?;
    let log = open_log(g, clock, false).await?;
    let report = log.verify().await?;
    if g.json {
        return output::json(&serde_json::json!({
            "ok": true, "events": report.events, "head_position": report.head.position, "head_hash": hex(&report.head.hash),
        }));
    }
    crate::outln!(
        "OK: {} events, head {} hash {}",
        report.events,
        report.head.position,
        hex(&report.head.hash)
    )?;
    Ok(())
}

/// One exported event: the envelope with hex payload and hashes, plus the
/// fields people read (`recorded_at`, `event`). Those are derived from the
/// record's canonical bytes by [`readable`] on export, and import derives
/// them again and refuses a line where they differ: a reader of the file
/// sees what the chain covers, nothing else.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportLine {
    position: u64,
    stream: String,
    version: u64,
    event_type: String,
    schema_version: u16,
    recorded_at_ms: i64,
    recorded_at: String,
    actor: String,
    correlation_id: Option<String>,
    causation_id: Option<String>,
    idempotency: Option<ExportMark>,
    payload_codec: u8,
    payload: String,
    prev_hash: String,
    hash: String,
    #[serde(default)]
    event: Option<serde_json::Value>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportMark {
    key: String,
    digest: String,
    count: u32,
}

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn from_hex(s: &str, what: &str, line: usize) -> Result<Vec<u8>, CliError> {
    if s.len() % 2 != 0 {
        return Err(CliError::Json(format!("line {line}: {what} is not hex")));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&s[i..i + 2], 16)
                .map_err(|_| CliError::Json(format!("line {line}: {what} is not hex")))
        })
        .collect()
}

fn hash32(s: &str, what: &str, line: usize) -> Result<[u8; 32], CliError> {
    from_hex(s, what, line)?
        .try_into()
        .map_err(|_| CliError::Json(format!("line {line}: {what} is not 32 bytes")))
}

/// The fields of an export line that are there for people, not for the
/// chain: the recorded time in RFC 3339 and the decoded event as JSON
/// (`None` when the payload is not an event this build knows). Derived from
/// the record only, so that export writes them and import checks them the
/// same way.
struct Readable {
    recorded_at: String,
    event: Option<serde_json::Value>,
}

/// [`Readable`] of a record decoded from its canonical bytes.
fn readable(rec: &RecordedEvent) -> Readable {
    Readable {
        recorded_at: rec.recorded_at.to_rfc3339(),
        event: Event::from_recorded(rec).ok().and_then(|e| serde_json::to_value(e).ok()),
    }
}

/// `gridcase export`. With `--out`, the file appears only once every record
/// has been read and checked: the lines go to `FILE.partial`, renamed to
/// `FILE` at the end and removed when a record does not check out, so a
/// corrupt store never leaves an export behind that looks whole. On
/// standard output the lines before the bad record have been written when
/// the command fails (exit 3).
pub async fn export(g: &Global, out: Option<PathBuf>) -> Result<(), CliError> {
    let (clock, _) = clock(g)?;
    let log = open_log(g, clock, false).await?;
    let Some(path) = out else {
        let mut w = BufWriter::new(output::Stdout);
        write_export(&log, &mut w).await?;
        return Ok(());
    };
    let mut partial = path.clone().into_os_string();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let file = std::fs::File::create(&partial)
        .map_err(CliError::io(format!("cannot create {}", partial.display())))?;
    let mut w = BufWriter::new(file);
    let written = write_export(&log, &mut w).await;
    let done = written.and_then(|n| {
        let file =
            w.into_inner().map_err(|e| CliError::io("cannot write the export")(e.into_error()))?;
        file.sync_all().map_err(CliError::io("cannot write the export"))?;
        std::fs::rename(&partial, &path)
            .map_err(CliError::io(format!("cannot rename the export to {}", path.display())))?;
        Ok(n)
    });
    match done {
        Ok(n) => {
            crate::errln!("exported {n} events, head hash {}", hex(&log.head().hash));
            Ok(())
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e)
        }
    }
}

/// Writes every record of `log` as one export line each; returns how many.
async fn write_export(log: &Arc<dyn EventLog>, w: &mut impl Write) -> Result<u64, CliError> {
    let mut events = read_all_stream(log.clone(), 1);
    let mut n = 0u64;
    while let Some(rec) = events.next().await {
        let rec = rec?;
        let Readable { recorded_at, event } = readable(&rec);
        let line = ExportLine {
            position: rec.position,
            stream: rec.stream,
            version: rec.version,
            event_type: rec.event_type,
            schema_version: rec.schema_version,
            recorded_at_ms: rec.recorded_at.0,
            recorded_at,
            actor: rec.actor,
            correlation_id: rec.correlation_id,
            causation_id: rec.causation_id,
            idempotency: rec.idempotency.map(|m| ExportMark {
                key: m.key,
                digest: to_hex(&m.digest),
                count: m.count,
            }),
            payload_codec: rec.payload_codec,
            payload: to_hex(&rec.payload),
            prev_hash: to_hex(&rec.prev_hash),
            hash: to_hex(&rec.hash),
            event,
        };
        let text = serde_json::to_string(&line).map_err(|e| CliError::Json(e.to_string()))?;
        writeln!(w, "{text}").map_err(CliError::io("cannot write the export"))?;
        n += 1;
    }
    w.flush().map_err(CliError::io("cannot write the export"))?;
    Ok(n)
}

/// The path of the first place where `line` (what the file says) and
/// `derived` (what the record's bytes say) differ, e.g.
/// `event.CaseSubmitted.description`; `None` when they are equal.
fn first_difference(
    path: &str,
    line: &serde_json::Value,
    derived: &serde_json::Value,
) -> Option<String> {
    use serde_json::Value;
    match (line, derived) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            keys.into_iter().find_map(|k| {
                let null = Value::Null;
                let (x, y) = (a.get(k), b.get(k));
                if x.is_none() != y.is_none() {
                    return Some(format!("{path}.{k}"));
                }
                first_difference(&format!("{path}.{k}"), x.unwrap_or(&null), y.unwrap_or(&null))
            })
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (x, y))| first_difference(&format!("{path}[{i}]"), x, y)),
        (a, b) => (a != b).then(|| path.to_string()),
    }
}

/// Checks the readable fields of export line `line` against the record
/// they describe, as decoded from its canonical bytes.
fn check_readable(line: usize, stated: &Readable, rec: &RecordedEvent) -> Result<(), CliError> {
    let derived = readable(rec);
    let null = serde_json::Value::Null;
    let field = if stated.recorded_at != derived.recorded_at {
        Some("recorded_at".to_string())
    } else {
        first_difference(
            "event",
            stated.event.as_ref().unwrap_or(&null),
            derived.event.as_ref().unwrap_or(&null),
        )
    };
    match field {
        None => Ok(()),
        Some(field) => Err(Error::Corruption {
            position: rec.position,
            reason: format!(
                "line {line}: field {field} does not match the record's bytes; the file was edited after export"
            ),
        }
        .into()),
    }
}

/// An export line as the record it carries and the readable fields it states.
fn parse_line(text: &str, line: usize) -> Result<(RecordedEvent, Readable), CliError> {
    let l: ExportLine =
        serde_json::from_str(text).map_err(|e| CliError::Json(format!("line {line}: {e}")))?;
    let stated = Readable { recorded_at: l.recorded_at, event: l.event };
    let rec = RecordedEvent {
        position: l.position,
        stream: l.stream,
        version: l.version,
        event_type: l.event_type,
        schema_version: l.schema_version,
        recorded_at: Timestamp(l.recorded_at_ms),
        actor: l.actor,
        correlation_id: l.correlation_id,
        causation_id: l.causation_id,
        idempotency: match l.idempotency {
            Some(m) => Some(IdempotencyMark {
                key: m.key,
                digest: hash32(&m.digest, "idempotency digest", line)?,
                count: m.count,
            }),
            None => None,
        },
        payload_codec: l.payload_codec,
        payload: from_hex(&l.payload, "payload", line)?,
        prev_hash: hash32(&l.prev_hash, "prev_hash", line)?,
        hash: hash32(&l.hash, "hash", line)?,
    };
    Ok((rec, stated))
}

fn lines(file: &Path) -> Result<impl Iterator<Item = (usize, std::io::Result<String>)>, CliError> {
    let f = std::fs::File::open(file)
        .map_err(CliError::io(format!("cannot read {}", file.display())))?;
    Ok(std::io::BufReader::new(f).lines().enumerate().map(|(i, l)| (i + 1, l)))
}

/// `gridcase import FILE`: checks the whole file first, so a bad file writes nothing.
pub async fn import(g: &Global, file: &Path) -> Result<(), CliError> {
    // Pass 1: every line parses, hashes to its stated hash, chains, and
    // states readable fields that its bytes give.
    let mut verifier = ChainVerifier::default();
    for (n, text) in lines(file)? {
        let text = text.map_err(CliError::io(format!("cannot read {}", file.display())))?;
        if text.trim().is_empty() {
            continue;
        }
        let (rec, stated) = parse_line(&text, n)?;
        let bytes = gridcase_engine::log::encode_record(&gridcase_engine::log::envelope_of(&rec))?;
        let again = gridcase_engine::log::decode_record(&bytes, rec.position)?;
        if again.hash != rec.hash {
            return Err(Error::Corruption {
                position: rec.position,
                reason: "record does not hash to its stated hash".into(),
            }
            .into());
        }
        verifier.check(&again)?;
        check_readable(n, &stated, &again)?;
    }
    let (clock, _) = clock(g)?;
    let log = open_log(g, clock, true).await?;
    if log.head().position != 0 {
        return Err(CliError::Usage(
            "import needs an empty store: pass a new --data directory".into(),
        ));
    }
    // Pass 2: write in batches.
    let mut batch = Vec::with_capacity(10_000);
    for (n, text) in lines(file)? {
        let text = text.map_err(CliError::io(format!("cannot read {}", file.display())))?;
        if text.trim().is_empty() {
            continue;
        }
        batch.push(parse_line(&text, n)?.0);
        if batch.len() == 10_000 {
            log.import(std::mem::take(&mut batch)).await?;
        }
    }
    log.import(batch).await?;
    let report = log.verify().await?;
    if g.json {
        return output::json(
            &serde_json::json!({"events": report.events, "head_hash": hex(&report.head.hash)}),
        );
    }
    crate::outln!(
        "imported {} events; chain verified, head {} hash {}",
        report.events,
        report.head.position,
        hex(&report.head.hash)
    )?;
    Ok(())
}

/// `gridcase stats`.
pub async fn stats(g: &Global) -> Result<(), CliError> {
    let engine = open(g).await?;
    let log = engine.log().clone();
    let mut per_type: BTreeMap<String, u64> = BTreeMap::new();
    let mut events = read_all_stream(log.clone(), 1);
    let mut count = 0u64;
    while let Some(rec) = events.next().await {
        *per_type.entry(rec?.event_type).or_default() += 1;
        count += 1;
    }
    engine.catch_up().await?;
    let open_cases = engine.open_cases().len();
    let size = log.size_on_disk().await?;
    let head = log.head();
    if g.json {
        return output::json(&serde_json::json!({
            "store": log.describe(), "size_bytes": size, "events": count, "head_hash": hex(&head.hash),
            "per_type": per_type, "open_cases": open_cases,
        }));
    }
    crate::outln!("store       {}", log.describe())?;
    crate::outln!("size        {:.1} MiB", size as f64 / 1048576.0)?;
    crate::outln!("events      {count}")?;
    crate::outln!("head hash   {}", hex(&head.hash))?;
    crate::outln!("open cases  {open_cases}\n")?;
    let mut t = Table::new(&["event type", "count"]);
    for (k, v) in per_type {
        t.row(vec![k, v.to_string()]);
    }
    crate::out!("{}", t.render())?;
    Ok(())
}

/// Opens a store named on the command line: a `postgres://` URL, or a data
/// directory (optionally written `sled:DIR`).
async fn open_named(
    spec: &str,
    clock: Arc<dyn Clock>,
    create: bool,
) -> Result<Arc<dyn EventLog>, CliError> {
    let g = Global {
        data: PathBuf::from(spec.strip_prefix("sled:").unwrap_or(spec)),
        store: (spec.starts_with("postgres://") || spec.starts_with("postgresql://"))
            .then(|| spec.to_string()),
        json: false,
        at: None,
        durability: Some("durable".into()),
        key: None,
    };
    open_log(&g, clock, create).await
}

/// `gridcase migrate --from A --to B`: copies every record, byte for byte,
/// into an empty store, then verifies the copy's chain and compares heads.
pub async fn migrate(g: &Global, from: &str, to: &str) -> Result<(), CliError> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let src = open_named(from, clock.clone(), false).await?;
    let src_report = src.verify().await?;
    let dst = open_named(to, clock, true).await?;
    if dst.head().position != 0 {
        return Err(CliError::Usage(format!(
            "{to} is not empty: migrate copies into an empty store"
        )));
    }
    let mut next = 1;
    let mut copied = 0u64;
    while next <= src_report.head.position {
        let page = src.read_all(next, 10_000).await?;
        let Some(last) = page.last() else { break };
        next = last.position + 1;
        copied += page.len() as u64;
        dst.import(page).await?;
    }
    let dst_report = dst.verify().await?;
    if dst_report.head != src_report.head {
        return Err(Error::Corruption {
            position: dst_report.head.position,
            reason: "the copy's head differs from the source's".into(),
        }
        .into());
    }
    if g.json {
        return output::json(&serde_json::json!({
            "events": copied, "head_position": dst_report.head.position, "head_hash": hex(&dst_report.head.hash),
            "from": src.describe(), "to": dst.describe(),
        }));
    }
    crate::outln!(
        "migrated {copied} events from {} to {}; chain verified, head {} hash {}",
        src.describe(),
        dst.describe(),
        dst_report.head.position,
        hex(&dst_report.head.hash)
    )?;
    Ok(())
}

/// `gridcase locate --point LAT,LON | --address TEXT`.
pub async fn locate(
    g: &Global,
    point: Option<&str>,
    address: Option<&str>,
) -> Result<(), CliError> {
    let engine = open(g).await?;
    let reg = engine.registry();
    let (grid, micro, at) = match (point, address) {
        (Some(p), _) => {
            let p = gridcase_engine::geo::GeoPoint::parse(p)?;
            let l = reg.locate(p)?;
            (l.grid.to_string(), l.micro_grid.map(str::to_string), Some(p))
        }
        (None, Some(a)) => {
            let (grid, micro) = reg.resolve_location(a)?;
            let at = reg.point_of(micro.as_deref().unwrap_or(&grid));
            (grid, micro, at)
        }
        (None, None) => {
            return Err(CliError::Usage("give --point LAT,LON or --address TEXT".into()))
        }
    };
    let up = |kind| reg.ancestor(&grid, kind).map(|u| u.code.clone()).unwrap_or_default();
    let (community, street) =
        (up(gridcase_engine::org::UnitKind::Community), up(gridcase_engine::org::UnitKind::Street));
    if g.json {
        return output::json(&serde_json::json!({
            "micro_grid": micro, "grid": grid, "community": community, "street": street,
            "point": at,
        }));
    }
    let named = |code: &str| format!("{code} {}", output::clean(reg.name_of(code)));
    if let Some(m) = &micro {
        crate::outln!("micro-grid  {}", named(m))?;
    }
    crate::outln!("grid        {}", named(&grid))?;
    crate::outln!("community   {}", named(&community))?;
    crate::outln!("street      {}", named(&street))?;
    if let Some(p) = at {
        crate::outln!("point       {p}")?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::first_difference;
    use serde_json::json;

    /// The path names the first differing field, at any depth; equal
    /// values, key order aside, have none.
    #[test]
    fn first_difference_names_the_field() {
        let a = json!({"CaseSubmitted": {"description": "x", "contact": {"name": "a"}, "tags": [1, 2]}});
        let same = json!({"CaseSubmitted": {"tags": [1, 2], "contact": {"name": "a"}, "description": "x"}});
        assert_eq!(first_difference("event", &a, &same), None);
        let cases = [
            (
                json!({"CaseSubmitted": {"description": "y", "contact": {"name": "a"}, "tags": [1, 2]}}),
                "event.CaseSubmitted.description",
            ),
            (
                json!({"CaseSubmitted": {"description": "x", "contact": {"name": "b"}, "tags": [1, 2]}}),
                "event.CaseSubmitted.contact.name",
            ),
            (
                json!({"CaseSubmitted": {"description": "x", "contact": {"name": "a"}, "tags": [1, 3]}}),
                "event.CaseSubmitted.tags[1]",
            ),
            (
                json!({"CaseSubmitted": {"description": "x", "contact": {"name": "a"}, "tags": [1]}}),
                "event.CaseSubmitted.tags",
            ),
            (
                json!({"CaseSubmitted": {"description": "x", "contact": {}, "tags": [1, 2]}}),
                "event.CaseSubmitted.contact.name",
            ),
            (
                json!({"CaseSubmitted": {"description": "x", "contact": {"name": "a"}, "tags": [1, 2], "extra": 0}}),
                "event.CaseSubmitted.extra",
            ),
            (json!(null), "event"),
        ];
        for (line, path) in cases {
            assert_eq!(first_difference("event", &line, &a).as_deref(), Some(path), "{line}");
        }
    }
}
