//! The log key, signed checkpoints, proofs and receipts from the terminal:
//! `gridcase checkpoint`, `gridcase audit prove | receipt | check-proof | keygen`.
//!
//! The key files live in `<data>/trust/` (also for a PostgreSQL store:
//! `--data` names where the district keeps its key): `log.key`, the
//! private key in the Go `note` signer form, mode 0600, never printed,
//! exported or stored in the log; `log.vkey`, the verifier key in the C2SP
//! vkey form, which is public.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, Subcommand};
use gridcase_engine::log::{RecordView, StreamId};
use gridcase_engine::transparency::gridcase_trust::note::{self, NoteSigner, NoteVerifier};
use gridcase_engine::transparency::gridcase_trust::proof::{self, ProofFile};
use gridcase_engine::transparency::gridcase_trust::{Algorithms, TrustError};
use gridcase_engine::transparency::{SignedCheckpoint, Transparency};
use gridcase_engine::Engine;

use crate::error::CliError;
use crate::output;
use crate::store;
use crate::Global;

/// File name of the private log key inside the key directory.
const KEY_FILE: &str = "log.key";
/// File name of the public verifier key.
const VKEY_FILE: &str = "log.vkey";

/// The directory holding the district's key files.
pub fn key_dir(g: &Global) -> PathBuf {
    g.data.join("trust")
}

/// The default origin for a district: `gridcase/<district code>`.
pub fn default_origin(district_code: &str) -> String {
    format!("gridcase/{district_code}")
}

/// The origin `init` gives the log: `--origin`, or the key already in the
/// key directory, or the default for the district. A key of another name
/// already there is refused before anything is written.
pub fn init_origin(g: &Global, origin: Option<String>, district: &str) -> Result<String, CliError> {
    if let Some(o) = &origin {
        note::check_name(o).map_err(|e| CliError::Usage(format!("--origin: {e}")))?;
    }
    let dir = key_dir(g);
    match (load_signer(&dir)?, origin) {
        (Some(s), Some(o)) if s.name() != o => Err(CliError::Usage(format!(
            "{} already holds a log key named {:?}; remove it or pass that --origin",
            dir.display(),
            s.name()
        ))),
        (Some(s), _) => Ok(s.name().to_string()),
        (None, Some(o)) => Ok(o),
        (None, None) => Ok(default_origin(district)),
    }
}

/// Creates the log key and its vkey in `dir` unless a key is already there
/// (a district keeps its key: a new one would orphan every checkpoint).
/// Returns the verifier and whether it was created now.
pub fn ensure_key(dir: &Path, origin: &str) -> Result<(NoteVerifier, bool), CliError> {
    if let Some(signer) = load_signer(dir)? {
        return Ok((signer.verifier(), false));
    }
    let signer = NoteSigner::generate(origin)?;
    std::fs::create_dir_all(dir)
        .map_err(CliError::io(format!("cannot create {}", dir.display())))?;
    let path = dir.join(KEY_FILE);
    write_private(&path, &format!("{}\n", signer.to_skey()))?;
    let vkey = signer.verifier();
    std::fs::write(dir.join(VKEY_FILE), format!("{}\n", vkey.to_vkey()))
        .map_err(CliError::io(format!("cannot write {}", dir.join(VKEY_FILE).display())))?;
    Ok((vkey, true))
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> Result<(), CliError> {
    use std::os::unix::fs::OpenOptionsExt;
    // Created 0600 from the start: never readable by others, not even briefly.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(CliError::io(format!("cannot create {}", path.display())))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(CliError::io(format!("cannot write {}", path.display())))
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> Result<(), CliError> {
    std::fs::write(path, text).map_err(CliError::io(format!("cannot write {}", path.display())))
}

/// The signer in `dir`, if the key file exists.
pub fn load_signer(dir: &Path) -> Result<Option<NoteSigner>, CliError> {
    let path = dir.join(KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(
            NoteSigner::parse(text.trim())
                .map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CliError::Io { what: format!("cannot read {}", path.display()), source: e }),
    }
}

/// The verifier in `dir` (from the vkey file), if there is one.
fn load_verifier(dir: &Path) -> Result<Option<NoteVerifier>, CliError> {
    let path = dir.join(VKEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(
            NoteVerifier::parse(text.trim())
                .map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CliError::Io { what: format!("cannot read {}", path.display()), source: e }),
    }
}

/// Opens the tree over the store's log with the district's key, if any.
pub async fn open_transparency(g: &Global, engine: &Engine) -> Result<Arc<Transparency>, CliError> {
    // Inside a running server: its tree, which its follower keeps.
    if let Some(t) = crate::remote::transparency() {
        return Ok(t);
    }
    let dir = key_dir(g);
    let signer = load_signer(&dir)?;
    let origin = match (&signer, load_verifier(&dir)?) {
        (Some(s), _) => s.name().to_string(),
        (None, Some(v)) => v.name().to_string(),
        // No key at all: the origin the district's key would get.
        (None, None) => district_origin(engine).unwrap_or_else(|_| "unsigned".into()),
    };
    Ok(Arc::new(Transparency::open(engine.log().clone(), origin, signer).await?))
}

/// `gridcase checkpoint [--vkey]`.
pub async fn checkpoint(g: &Global, vkey_only: bool) -> Result<(), CliError> {
    let dir = key_dir(g);
    if vkey_only {
        let v = match load_signer(&dir)? {
            Some(s) => s.verifier(),
            None => load_verifier(&dir)?.ok_or_else(|| no_key(&dir))?,
        };
        if g.json {
            return output::json(&serde_json::json!({"vkey": v.to_vkey(), "origin": v.name()}));
        }
        crate::outln!("{}", v.to_vkey())?;
        return Ok(());
    }
    // Before the store is opened (and the tree rebuilt): without a key
    // there is nothing to sign.
    if load_signer(&dir)?.is_none() {
        return Err(no_key(&dir));
    }
    let engine = store::open(g).await?;
    let t = open_transparency(g, &engine).await?;
    let signed = t.sign_checkpoint().await?;
    print_signed(g, &signed, t.verifier())
}

fn no_key(dir: &Path) -> CliError {
    CliError::Usage(format!(
        "no log key in {}: `gridcase init` creates one for a new store, `gridcase audit keygen` for an existing one",
        dir.display()
    ))
}

fn print_signed(
    g: &Global,
    signed: &SignedCheckpoint,
    verifier: Option<NoteVerifier>,
) -> Result<(), CliError> {
    if g.json {
        return output::json(&serde_json::json!({
            "origin": signed.checkpoint.origin,
            "size": signed.checkpoint.size,
            "root": gridcase_engine::log::hex(&signed.checkpoint.root),
            "note": signed.note,
            "vkey": verifier.map(|v| v.to_vkey()),
            "algorithms": Algorithms::current(),
        }));
    }
    crate::out!("{}", signed.note)?;
    Ok(())
}

/// `gridcase audit keygen`: a log key for a store made before keys existed.
pub async fn keygen(g: &Global, origin: Option<String>) -> Result<(), CliError> {
    let engine = store::open(g).await?;
    let origin = match origin {
        Some(o) => o,
        None => district_origin(&engine)?,
    };
    let dir = key_dir(g);
    let (v, created) = ensure_key(&dir, &origin)?;
    if !created {
        return Err(CliError::Usage(format!(
            "{} already holds the log key {}; a district keeps its key",
            dir.display(),
            v.to_vkey()
        )));
    }
    report_key(g, &dir, &v)
}

/// The default origin of the engine's district.
pub fn district_origin(engine: &Engine) -> Result<String, CliError> {
    let reg = engine.registry();
    let district = reg.units.values().find(|u| u.parent.is_none()).ok_or_else(|| {
        CliError::Usage(
            "the store has no district unit to name its log after; pass --origin".into(),
        )
    })?;
    Ok(default_origin(&district.code))
}

/// Prints where a new key went and its vkey.
pub fn report_key(g: &Global, dir: &Path, v: &NoteVerifier) -> Result<(), CliError> {
    if g.json {
        return output::json(&serde_json::json!({
            "origin": v.name(), "vkey": v.to_vkey(), "key_dir": dir.display().to_string(),
        }));
    }
    crate::outln!(
        "log key created in {} (private: {KEY_FILE}, mode 0600); verifier key:",
        dir.display()
    )?;
    crate::outln!("{}", v.to_vkey())?;
    Ok(())
}

/// `gridcase audit prove …`.
#[derive(Subcommand, Debug)]
pub enum ProveCmd {
    /// The inclusion proof of a record in a signed checkpoint's tree.
    Inclusion {
        /// The record's log position (1 for the first).
        #[arg(long)]
        position: u64,
        /// The tree size of a stored checkpoint (default: the latest,
        /// signed anew if it does not cover the position).
        #[arg(long)]
        size: Option<u64>,
        #[command(flatten)]
        out: OutArg,
    },
    /// The consistency proof between two stored signed checkpoints.
    Consistency {
        /// The older checkpoint's tree size.
        #[arg(long)]
        from: u64,
        /// The newer checkpoint's tree size (default: the latest).
        #[arg(long)]
        to: Option<u64>,
        #[command(flatten)]
        out: OutArg,
    },
}

/// Where a proof or receipt file goes.
#[derive(Args, Debug)]
pub struct OutArg {
    /// Output file (default: standard output).
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
}

/// The stored checkpoint of `size`, or the latest one when it covers
/// `need` records, or a newly signed one.
async fn checkpoint_for(
    t: &Transparency,
    size: Option<u64>,
    need: u64,
) -> Result<SignedCheckpoint, CliError> {
    let stored = match size {
        Some(s) => t.signed_at(s).await?,
        None => t.latest_signed().await?.filter(|l| l.checkpoint.size >= need),
    };
    if let Some(s) = stored {
        return Ok(s);
    }
    if t.verifier().is_none() {
        // No key: the proof is against the unsigned tree, for a verifier
        // holding a signed checkpoint of that size from elsewhere.
        crate::errln!(
            "warning: this store has no log key: the proof is against the unsigned checkpoint body"
        );
        return Ok(t.unsigned(size)?);
    }
    match size {
        Some(s) => Err(CliError::Usage(format!(
            "no signed checkpoint of size {s} is stored; `gridcase checkpoint` signs one of the whole log"
        ))),
        None => Ok(t.sign_checkpoint().await?),
    }
}

fn write_out(out: &OutArg, file: &ProofFile) -> Result<(), CliError> {
    let text = file.to_json();
    match &out.out {
        Some(path) => std::fs::write(path, format!("{text}\n"))
            .map_err(CliError::io(format!("cannot write {}", path.display()))),
        None => {
            crate::outln!("{text}")?;
            Ok(())
        }
    }
}

/// `gridcase audit prove inclusion | consistency`.
pub async fn prove(g: &Global, cmd: ProveCmd) -> Result<(), CliError> {
    let engine = store::open(g).await?;
    let t = open_transparency(g, &engine).await?;
    match cmd {
        ProveCmd::Inclusion { position, size, out } => {
            if position == 0 || position > t.size() {
                return Err(CliError::Usage(format!(
                    "--position {position}: the log holds positions 1 to {}",
                    t.size()
                )));
            }
            let signed = checkpoint_for(&t, size, position).await?;
            let file = t.inclusion_file(&signed, &[position], None, true).await?;
            write_out(&out, &ProofFile::Inclusion(file))
        }
        ProveCmd::Consistency { from, to, out } => {
            let old = checkpoint_for(&t, Some(from), 0).await?;
            let new = checkpoint_for(&t, to, 0).await?;
            if old.checkpoint.size > new.checkpoint.size {
                return Err(CliError::Usage(format!(
                    "--from {} is after --to {}",
                    old.checkpoint.size, new.checkpoint.size
                )));
            }
            let file = t.consistency_file(&old, &new)?;
            write_out(&out, &ProofFile::Consistency(file))
        }
    }
}

/// `gridcase audit receipt --case ID`.
pub async fn receipt(g: &Global, case: &str, out: OutArg) -> Result<(), CliError> {
    let engine = store::open(g).await?;
    let id: gridcase_engine::domain::CaseId = case.parse()?;
    let t = open_transparency(g, &engine).await?;
    let stream = StreamId::new(format!("{}{id}", gridcase_engine::engine::CASE_STREAM_PREFIX))?;
    let positions = t.stream_positions(&stream, u64::MAX).await?;
    let Some(&last) = positions.last() else {
        return Err(CliError::Engine(gridcase_engine::Error::NotFound(format!("case {id}"))));
    };
    let signed = checkpoint_for(&t, None, last).await?;
    let file = t.inclusion_file(&signed, &positions, Some(id.to_string()), true).await?;
    write_out(&out, &ProofFile::Receipt(file))
}

/// `gridcase audit check-proof FILE --vkey KEY [--checkpoint FILE]`: no store.
pub fn check_proof(
    g: &Global,
    file: &Path,
    vkey: &str,
    checkpoint: Option<&Path>,
) -> Result<(), CliError> {
    let verifier = match NoteVerifier::parse(vkey) {
        Ok(v) => v,
        Err(parse) => match std::fs::read_to_string(vkey) {
            Ok(text) => NoteVerifier::parse(text.trim())
                .map_err(|e| CliError::Usage(format!("{vkey}: {e}")))?,
            // Not a file: if it looks like a key, say what is wrong with it.
            Err(_) if vkey.contains('+') => {
                return Err(CliError::Usage(format!("--vkey: {parse}")))
            }
            Err(e) => {
                return Err(CliError::Usage(format!(
                    "--vkey {vkey:?} is neither a verifier key nor a readable file ({e})"
                )))
            }
        },
    };
    let text = std::fs::read_to_string(file)
        .map_err(CliError::io(format!("cannot read {}", file.display())))?;
    let pf = ProofFile::from_json(&text)?;
    let cp_text = match checkpoint {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .map_err(CliError::io(format!("cannot read {}", p.display())))?,
        ),
        None => None,
    };
    let checked = proof::check(&pf, &verifier, cp_text.as_deref())?;
    // The leaves are the log's records: show what was proven, and for a
    // receipt check that each record is the named case's.
    let mut events = Vec::new();
    if let ProofFile::Inclusion(f) | ProofFile::Receipt(f) = &pf {
        for e in &f.entries {
            // A public proof carries only hashes: nothing to show. A
            // receipt must carry its records, or its case is unchecked.
            let Some(leaf) = &e.leaf else {
                if f.case.is_some() {
                    return Err(CliError::Usage(format!(
                        "position {}: a receipt carries each record, this one only its hash",
                        e.position
                    )));
                }
                continue;
            };
            let view = RecordView::decode(&leaf.0, e.position).map_err(|err| {
                CliError::Trust(TrustError::Verification(format!(
                    "position {}: the proven entry is not a gridcase record ({err})",
                    e.position
                )))
            })?;
            if view.position != e.position {
                return Err(CliError::Trust(TrustError::Verification(format!(
                    "the entry at leaf {} says it is position {}",
                    e.leaf_index, view.position
                ))));
            }
            if let Some(case) = &f.case {
                let want = format!("{}{case}", gridcase_engine::engine::CASE_STREAM_PREFIX);
                if view.stream != want {
                    return Err(CliError::Trust(TrustError::Verification(format!(
                        "position {} belongs to {}, not to case {case}",
                        e.position, view.stream
                    ))));
                }
            }
            events.push(serde_json::json!({
                "position": view.position, "stream": view.stream, "version": view.version,
                "type": view.event_type, "recorded_at": view.recorded_at.to_string(),
            }));
        }
    }
    if g.json {
        return output::json(&serde_json::json!({
            "verified": true, "kind": checked.kind, "origin": checked.origin,
            "tree_size": checked.tree_size, "old_size": checked.old_size, "events": events,
        }));
    }
    match checked.old_size {
        Some(old) => crate::outln!(
            "verified: {} at tree size {} extends its tree at size {old} (consistency proof, signed by {})",
            checked.origin, checked.tree_size, verifier.to_vkey()
        )?,
        None => {
            crate::outln!(
                "verified: {} {} included in {}'s signed tree of size {}",
                checked.positions.len(),
                if checked.positions.len() == 1 { "record is" } else { "records are" },
                checked.origin,
                checked.tree_size
            )?;
            for e in &events {
                crate::outln!(
                    "  {:>8}  {}  v{}  {}  {}",
                    e["position"], e["stream"].as_str().unwrap_or(""), e["version"],
                    e["type"].as_str().unwrap_or(""), e["recorded_at"].as_str().unwrap_or("")
                )?;
            }
        }
    }
    Ok(())
}
