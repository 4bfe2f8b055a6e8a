//! The OpenAPI 3 document, generated from the handlers' `#[utoipa::path]`
//! attributes and the DTOs' `ToSchema` derives, so it cannot drift from the
//! code; a test checks that its paths are exactly the router's.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::{dashboard, dto, events, native, open311, trust};

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API key from `gridcase apikey create --as STAFF_ID`"))
                    .build(),
            ),
        );
    }
}

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "gridcase",
        description = "Event-sourced case handling for resident requests in city grid governance: the native API (/api/v1), Open311 GeoReport v2 (/open311/v2) and a live event feed. On every route, unknown query parameters are ignored and a known one given twice is a 400. Requests are rate-limited per client address and per API key, and new cases per key; over a limit the answer is 429 with Retry-After.\n\nNothing unverified is served: every endpoint that reads the event log checks each record it uses (its bytes against their stored check bytes, its link to the record before). When one does not verify, the endpoint answers 500 with an ErrorBody whose `code` is `corruption` and whose `position` is that record's log position (Open311: status 500, the position in the description), the server logs an alarm, and `/metrics` counts it (`gridcase_corruption_detected_total`, `gridcase_corruption_first_position`).",
    ),
    modifiers(&BearerAuth),
    paths(
        native::submit, native::get_case, native::timeline, native::case_chain, native::case_reads,
        native::assign, native::reject, native::merge, native::withdraw, native::escalate,
        native::dispatch, native::claim, native::return_case, native::request_extension,
        native::decide_extension, native::supervise, native::resolve, native::callback,
        native::reopen, native::close,
        native::backlog, native::rates, native::ranking, native::chains, native::overdue,
        native::places,
        native::replay, native::audit_verify, native::stats, native::metrics,
        events::events, openapi_json,
        trust::get_checkpoint, trust::post_checkpoint, trust::inclusion, trust::consistency,
        trust::receipt, trust::tlog_checkpoint, trust::tlog_tile,
        dashboard::index, dashboard::asset, dashboard::whoami, dashboard::sign_in, dashboard::sign_out,
        dashboard::meta, dashboard::map, dashboard::backlog, dashboard::rates, dashboard::chains,
        dashboard::overdue, dashboard::case,
        open311::discovery_json, open311::discovery_xml, open311::services_json, open311::services_xml,
        open311::service_definition, open311::requests_json, open311::requests_xml,
        open311::post_request_json, open311::post_request_xml, open311::request, open311::token, open311::media,
    ),
    components(schemas(
        dto::SubmitBody, dto::AssignBody, dto::ReasonBody, dto::MergeBody, dto::DispatchBody,
        dto::EmptyBody, dto::ExtensionBody, dto::ExtensionDecisionBody, dto::NoteBody,
        dto::CallbackBody, dto::CloseBody, dto::CaseView, dto::CommandResponse, dto::ErrorBody, native::ReadView,
        trust::CheckpointView, dashboard::SignInBody, dashboard::SessionView,
    )),
    tags(
        (name = "lifecycle", description = "Commands on a case; each is authorised by the engine's rules for the key's actor"),
        (name = "cases", description = "Reading cases"),
        (name = "reports", description = "Live projections (staff keys)"),
        (name = "audit", description = "Replay, chain verification and figures (staff keys); signed checkpoints, proofs and the log as C2SP tlog-tiles (public hashes)"),
        (name = "events", description = "The live event feed"),
        (name = "dashboard", description = "The dashboard page, its sign-in (API key for a session cookie) and its JSON, every view with ?as_of= (sessions or bearer keys)"),
        (name = "open311", description = "Open311 GeoReport v2"),
        (name = "operations", description = "Metrics and this document"),
    )
)]
pub struct ApiDoc;

/// The document as served.
#[utoipa::path(
    get, path = "/api/v1/openapi.json", tag = "operations",
    summary = "This OpenAPI 3 document",
    responses((status = 200, description = "The document", body = Object)),
)]
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
