//! The log's transparency over HTTP: signed checkpoints, inclusion and
//! consistency proofs, a case's receipt (`/api/v1`), and the log as C2SP
//! tlog-tiles (`/tlog/checkpoint`, `/tlog/tile/…`).
//!
//! Checkpoints, proofs and hash tiles are public: hashes reveal nothing of
//! a case. Whatever carries records' bytes (entry bundles, receipts, the
//! leaves of an inclusion proof) goes only to those who may read them:
//! auditors and district supervisors, and for a receipt also whoever may
//! read the case's personal data ([`Scope::may_read_personal`]).

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use gridcase_engine::transparency::gridcase_trust::proof::ProofFile;
use gridcase_engine::transparency::gridcase_trust::tiles::Resource;
use gridcase_engine::transparency::gridcase_trust::Algorithms;
use gridcase_engine::transparency::SignedCheckpoint;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{authenticate, bearer, Principal};
use crate::dto::ErrorBody;
use crate::extract::{case_id, QueryParams};
use crate::scope::{readable_case, Scope};
use crate::state::AppState;
use crate::ApiError;

/// A signed checkpoint, as `/api/v1/checkpoint` returns it.
#[derive(Serialize, ToSchema)]
pub struct CheckpointView {
    /// The log's origin (the checkpoint's first line, the key's name).
    pub origin: String,
    /// The number of records the tree covers.
    pub size: u64,
    /// The tree's root, standard base64 (as in the note).
    pub root: String,
    /// The C2SP signed note: the checkpoint body, a blank line, the signature line.
    pub note: String,
    /// The verifier key in the C2SP vkey form.
    pub vkey: Option<String>,
    /// The algorithms of the chain, the tree, the signature and storage.
    #[schema(value_type = Object)]
    pub algorithms: Algorithms,
}

fn view(state: &AppState, s: &SignedCheckpoint) -> CheckpointView {
    use base64::Engine as _;
    CheckpointView {
        origin: s.checkpoint.origin.clone(),
        size: s.checkpoint.size,
        root: base64::engine::general_purpose::STANDARD.encode(s.checkpoint.root),
        note: s.note.clone(),
        vkey: state.transparency.verifier().map(|v| v.to_vkey()),
        algorithms: Algorithms::current(),
    }
}

fn no_checkpoint() -> ApiError {
    ApiError::NotFound(
        "no signed checkpoint yet: the server signs one periodically when it holds the log key, or POST /api/v1/checkpoint".into(),
    )
}

/// Refuses signing on a server that does not hold the log key.
fn no_key(state: &AppState) -> Result<(), ApiError> {
    if state.transparency.verifier().is_none() {
        return Err(ApiError::Unprocessable {
            code: "no_log_key",
            message: "this server holds no log key: it serves proofs and tiles but signs no checkpoint (start it with the key in <data>/trust)".into(),
        });
    }
    Ok(())
}

/// Whether `p` may read records' bytes wholesale: those whose scope is
/// everything (auditors and district supervisors).
fn reads_records(p: &Principal) -> bool {
    Scope::of(p) == Scope::All
}

/// The caller, if a key was sent (public routes that give more to some).
fn optional_principal(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Principal>, ApiError> {
    bearer(headers)?.map(|k| authenticate(state, &k)).transpose()
}

/// The latest signed checkpoint.
#[utoipa::path(
    get, path = "/api/v1/checkpoint", tag = "audit",
    summary = "The latest signed checkpoint of the log (C2SP tlog-checkpoint, signed note)",
    description = "Public. The tree size and root the server last signed with the district's log key; verify the note with the vkey (`gridcase checkpoint --vkey`). It proves nothing about records written after it.",
    responses(
        (status = 200, description = "The checkpoint", body = CheckpointView),
        (status = 404, description = "None signed yet", body = ErrorBody),
    ),
)]
pub async fn get_checkpoint(
    State(state): State<AppState>,
) -> Result<Json<CheckpointView>, ApiError> {
    let s = state.transparency.latest_signed().await?.ok_or_else(no_checkpoint)?;
    Ok(Json(view(&state, &s)))
}

/// Signs a checkpoint now.
#[utoipa::path(
    post, path = "/api/v1/checkpoint", tag = "audit",
    summary = "Sign and store a checkpoint of the whole log now",
    description = "For auditors and district supervisors. Refused (422) when the server holds no log key.",
    responses(
        (status = 201, description = "The new checkpoint", body = CheckpointView),
        (status = 401, description = "No or unknown API key", body = ErrorBody),
        (status = 403, description = "Not an auditor or district supervisor", body = ErrorBody),
        (status = 422, description = "The server has no log key", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn post_checkpoint(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Response, ApiError> {
    if !reads_records(&principal) {
        return Err(ApiError::Forbidden(
            "signing a checkpoint is for auditors and district supervisors".into(),
        ));
    }
    no_key(&state)?;
    let s = state.transparency.sign_checkpoint().await?;
    Ok((StatusCode::CREATED, Json(view(&state, &s))).into_response())
}

/// The query of an inclusion proof.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct InclusionQuery {
    /// The record's log position (1 for the first).
    pub position: u64,
    /// The tree size of a stored signed checkpoint (default: the latest).
    pub size: Option<u64>,
}

/// The signed checkpoint of `size` (default: the latest). A server without
/// the log key still serves proofs: against the tree's unsigned
/// checkpoint body when nothing signed is stored for that size.
async fn signed(state: &AppState, size: Option<u64>) -> Result<SignedCheckpoint, ApiError> {
    let t = &state.transparency;
    let stored = match size {
        Some(s) => t.signed_at(s).await?,
        None => t.latest_signed().await?,
    };
    match (stored, t.verifier()) {
        (Some(s), _) => Ok(s),
        (None, None) => Ok(t.unsigned(size)?),
        (None, Some(_)) => Err(match size {
            Some(s) => {
                ApiError::NotFound(format!("no signed checkpoint of tree size {s} is stored"))
            }
            None => no_checkpoint(),
        }),
    }
}

/// An inclusion proof.
#[utoipa::path(
    get, path = "/api/v1/proofs/inclusion", tag = "audit",
    summary = "Inclusion proof of a record in a signed checkpoint's tree (RFC 9162 §2.1.3)",
    description = "Public: the leaf hash and audit path, in the file format `gridcase audit check-proof` reads (kind `inclusion`). Auditors and district supervisors also get the record's bytes (`leaf`). A server without the log key answers against the tree's unsigned checkpoint body (`size` default: the whole tree).",
    params(InclusionQuery),
    responses(
        (status = 200, description = "The proof, with the signed checkpoint it is against", body = Object),
        (status = 400, description = "Malformed query", body = ErrorBody),
        (status = 404, description = "No such checkpoint", body = ErrorBody),
        (status = 422, description = "The position is not in that tree", body = ErrorBody),
    ),
)]
pub async fn inclusion(
    State(state): State<AppState>,
    headers: HeaderMap,
    QueryParams(q): QueryParams<InclusionQuery>,
) -> Result<Json<ProofFile>, ApiError> {
    let leaves = optional_principal(&state, &headers)?.is_some_and(|p| reads_records(&p));
    let s = signed(&state, q.size).await?;
    let file = state.transparency.inclusion_file(&s, &[q.position], None, leaves).await?;
    Ok(Json(ProofFile::Inclusion(file)))
}

/// The query of a consistency proof.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyQuery {
    /// The older signed checkpoint's tree size.
    pub from: u64,
    /// The newer signed checkpoint's tree size (default: the latest).
    pub to: Option<u64>,
}

/// A consistency proof.
#[utoipa::path(
    get, path = "/api/v1/proofs/consistency", tag = "audit",
    summary = "Consistency proof between two signed checkpoints (RFC 9162 §2.1.4)",
    description = "Public, in the file format `gridcase audit check-proof` reads (kind `consistency`), with both signed checkpoints (unsigned bodies from a server without the log key).",
    params(ConsistencyQuery),
    responses(
        (status = 200, description = "The proof and both checkpoints", body = Object),
        (status = 400, description = "Malformed query", body = ErrorBody),
        (status = 404, description = "No such checkpoint", body = ErrorBody),
        (status = 422, description = "from is after to", body = ErrorBody),
    ),
)]
pub async fn consistency(
    State(state): State<AppState>,
    QueryParams(q): QueryParams<ConsistencyQuery>,
) -> Result<Json<ProofFile>, ApiError> {
    let old = signed(&state, Some(q.from)).await?;
    let new = signed(&state, q.to).await?;
    let file = state.transparency.consistency_file(&old, &new)?;
    Ok(Json(ProofFile::Consistency(file)))
}

/// A case's receipt.
#[utoipa::path(
    get, path = "/api/v1/cases/{id}/receipt", tag = "cases",
    summary = "A case's receipt: the signed checkpoint and the inclusion proof of each of its events",
    description = "For callers who may read the case's personal data (Scope::may_read_personal: the resident who submitted it, the staff of its community and of the units holding it, auditors and district supervisors): the records carry the case's data, and the read is recorded as a PersonalDataRead. A case outside the caller's scope is 404. Against the latest signed checkpoint if it covers every event, else a new one is signed (422 when the server holds no log key). Check it offline with `gridcase audit check-proof` or any RFC 9162 / C2SP verifier.",
    params(("id" = String, Path, description = "Case id")),
    responses(
        (status = 200, description = "The receipt (kind `receipt`)", body = Object),
        (status = 401, description = "No or unknown API key", body = ErrorBody),
        (status = 403, description = "Not allowed to read this case's records", body = ErrorBody),
        (status = 404, description = "No such case", body = ErrorBody),
        (status = 422, description = "A new checkpoint is needed and the server has no log key", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn receipt(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<ProofFile>, ApiError> {
    let id = case_id(&id)?;
    // The one rule: outside the caller's scope the case does not exist;
    // inside it, the records carry the case's personal data, so the
    // receipt is for those who may read that, and the read is recorded.
    let case = readable_case(&state, &principal, &id).await?;
    if !Scope::of(&principal).may_read_personal_of(&case) {
        return Err(ApiError::Forbidden(
            "a receipt carries the case's records and personal data: for its resident, the staff of its community and its holders, auditors and district supervisors".into(),
        ));
    }
    state.record_read(&principal, &case, &["contact", "submitted_by"], "receipt").await?;
    let t = &state.transparency;
    t.sync().await?;
    let stream = gridcase_engine::log::StreamId::new(format!(
        "{}{id}",
        gridcase_engine::engine::CASE_STREAM_PREFIX
    ))
    .map_err(gridcase_engine::Error::from)?;
    let positions = t.stream_positions(&stream, u64::MAX).await?;
    let last = positions.last().copied().unwrap_or(0);
    let s = match t.latest_signed().await? {
        Some(s) if s.checkpoint.size >= last => s,
        _ => {
            no_key(&state)?;
            t.sign_checkpoint().await?
        }
    };
    let file = t.inclusion_file(&s, &positions, Some(id.to_string()), true).await?;
    Ok(Json(ProofFile::Receipt(file)))
}

/// The tlog-tiles checkpoint.
#[utoipa::path(
    get, path = "/tlog/checkpoint", tag = "audit",
    summary = "tlog-tiles: the latest signed checkpoint (text/plain signed note)",
    responses(
        (status = 200, description = "The signed note", body = String, content_type = "text/plain"),
        (status = 404, description = "None signed yet", body = ErrorBody),
    ),
)]
pub async fn tlog_checkpoint(State(state): State<AppState>) -> Result<Response, ApiError> {
    let s = state.transparency.latest_signed().await?.ok_or_else(no_checkpoint)?;
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        s.note,
    )
        .into_response())
}

/// A tlog-tiles tile or entry bundle.
#[utoipa::path(
    get, path = "/tlog/tile/{*path}", tag = "audit",
    summary = "tlog-tiles: a hash tile (`<L>/<N>[.p/<W>]`, public) or an entry bundle (`entries/<N>[.p/<W>]`, auditors and district supervisors)",
    description = "Laid out exactly as C2SP tlog-tiles specifies under the prefix /tlog: tile height 8, 32-byte SHA-256 hashes, N in x-prefixed 3-digit groups, entries as big-endian uint16 length and the record's canonical bytes.",
    params(("path" = String, Path, description = "The rest of the tile path, e.g. `0/x001/234` or `entries/000.p/17`")),
    responses(
        (status = 200, description = "The tile's bytes", body = Vec<u8>, content_type = "application/octet-stream"),
        (status = 400, description = "Not a tlog-tiles path", body = ErrorBody),
        (status = 401, description = "An entry bundle without an API key", body = ErrorBody),
        (status = 403, description = "An entry bundle for a key that may not read records", body = ErrorBody),
        (status = 404, description = "The tree has no such tile (yet)", body = ErrorBody),
    ),
)]
pub async fn tlog_tile(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(path): Path<String>,
) -> Result<Response, ApiError> {
    let resource = Resource::parse(&format!("tile/{path}"))
        .map_err(|e| ApiError::BadRequest { code: "bad_tile_path", message: e.to_string() })?;
    let full = match resource {
        Resource::Entries { width, .. } => {
            let p = optional_principal(&state, &headers)?.ok_or_else(|| {
                ApiError::Unauthenticated("entry bundles carry case data: send an auditor's or a district supervisor's API key".into())
            })?;
            if !reads_records(&p) {
                return Err(ApiError::Forbidden(
                    "entry bundles are for auditors and district supervisors".into(),
                ));
            }
            width == 256
        }
        Resource::Tile { width, .. } => width == 256,
        Resource::Checkpoint => false,
    };
    let t = &state.transparency;
    let bytes = t.tile(resource, t.size()).await?.ok_or_else(|| {
        ApiError::NotFound(format!("the tree of {} records has no {}", t.size(), resource.path()))
    })?;
    let public = matches!(resource, Resource::Tile { .. });
    // A full tile never changes; a partial one is replaced by wider ones.
    let cache = match (full, public) {
        (true, true) => "public, max-age=31536000, immutable",
        (true, false) => "private, max-age=31536000, immutable",
        (false, _) => "no-cache",
    };
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream")),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        ],
        bytes,
    )
        .into_response())
}
