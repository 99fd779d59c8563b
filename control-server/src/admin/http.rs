//! The admin HTTP API (`/v1/admin/…`, bearer admin token) and the routes
//! shared with the console: the state they hold, how admin errors become
//! responses, and the OpenAPI description of the admin routes.
//!
//! Errors use the same body as the rest of the API, `{"error", "message"}`
//! with the existing codes (a CSV import adds `"lines"`); statuses are the
//! ones a REST client expects (404 for an unknown device, gateway or SP).

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use control_api::ErrorCode;
use serde_json::{Value, json};

use super::auth::{AdminAuth, Refusal};
use super::presence::Presence;
use super::{Admin, AdminError, GatewayView, MappingInput};
use crate::state::ServerState;
use crate::store::MappingFilter;

/// Route paths of the admin API.
pub mod routes {
    pub const MAPPINGS: &str = "/v1/admin/mappings";
    pub const MAPPINGS_IMPORT: &str = "/v1/admin/mappings/import";
    pub const MAPPING: &str = "/v1/admin/mappings/{device_id}";
    pub const MAPPING_HISTORY: &str = "/v1/admin/mappings/{device_id}/history";
    pub const SPS: &str = "/v1/admin/sps";
    pub const SP: &str = "/v1/admin/sps/{identity}";
    pub const GATEWAYS: &str = "/v1/admin/gateways";
    pub const GATEWAY: &str = "/v1/admin/gateways/{id}";
    pub const HANDOVERS: &str = "/v1/admin/handovers";
}

/// The admin routes as (method, path, operationId).
pub const ADMIN_ROUTES: [(&str, &str, &str); 11] = [
    ("get", routes::MAPPINGS, "listMappings"),
    ("post", routes::MAPPINGS, "addMapping"),
    ("post", routes::MAPPINGS_IMPORT, "importMappings"),
    ("get", routes::MAPPING, "getMapping"),
    ("delete", routes::MAPPING, "removeMapping"),
    ("get", routes::MAPPING_HISTORY, "getMappingHistory"),
    ("get", routes::SPS, "listSps"),
    ("get", routes::SP, "getSp"),
    ("get", routes::GATEWAYS, "listGateways"),
    ("get", routes::GATEWAY, "getGateway"),
    ("get", routes::HANDOVERS, "listHandovers"),
];

/// Largest `POST /v1/admin/mappings` body.
const ADD_BODY_MAX: usize = 16 * 1024;
/// Largest CSV import (100,000 rows of about 60 bytes fit).
pub const IMPORT_BODY_MAX: usize = 16 * 1024 * 1024;
/// Admin and console requests are answered within this.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(120);

/// What the admin API and the console share.
#[derive(Debug, Clone)]
pub struct AdminState {
    pub(crate) server: ServerState,
    pub(crate) auth: AdminAuth,
    pub(crate) presence: Presence,
}

impl AdminState {
    pub fn new(server: &ServerState) -> Self {
        Self {
            auth: AdminAuth::new(server.store.clone(), server.config.policy.auth_cache_ttl()),
            presence: Presence::default(),
            server: server.clone(),
        }
    }

    pub(crate) fn admin(&self, actor: &str) -> Admin {
        Admin::in_server(&self.server, actor)
    }

    /// Gateways with their presence on this replica.
    pub(crate) async fn gateways(&self) -> Result<Vec<GatewayView>, AdminError> {
        let mut gateways = self.admin("api").gateways().await?;
        for g in &mut gateways {
            self.fill_presence(g);
        }
        Ok(gateways)
    }

    pub(crate) fn fill_presence(&self, g: &mut GatewayView) {
        let seen = self.presence.of(&g.id);
        g.connected = Some(seen.connected());
        g.open_streams = Some(seen.open);
        g.last_seen_secs_ago = seen.last_seen.map(|d| d.as_secs());
    }
}

/// Says at start-up whether the admin API and console are on.
pub async fn announce(state: &ServerState) {
    match state.store.admin_credential().await {
        Ok(Some(_)) => tracing::info!("admin API (/v1/admin) and console (/console) are on (admin token set)"),
        Ok(None) => tracing::info!(
            "admin API and console are off: no admin token is set (`control-server --database … admin-token` sets one; \
             a running server notices within policy.auth_cache_ttl_ms)"
        ),
        Err(err) => tracing::warn!(%err, "cannot read the admin credential; the admin API and console answer 500 until it can"),
    }
}

/// A failure of an admin API request.
#[derive(Debug)]
pub enum AdminHttpError {
    Refused(Refusal),
    Admin(AdminError),
    BodyTooLarge(usize),
    Malformed(String),
}

impl From<AdminError> for AdminHttpError {
    fn from(e: AdminError) -> Self {
        Self::Admin(e)
    }
}

impl From<crate::store::StoreError> for AdminHttpError {
    fn from(e: crate::store::StoreError) -> Self {
        Self::Admin(AdminError::Store(e))
    }
}

/// The code and status of an admin error.
pub fn code_and_status(e: &AdminError) -> (ErrorCode, StatusCode) {
    match e {
        AdminError::Invalid(_) | AdminError::Csv(_) => (ErrorCode::MalformedRequest, StatusCode::BAD_REQUEST),
        AdminError::InvalidDeviceId(_) => (ErrorCode::InvalidDeviceId, StatusCode::BAD_REQUEST),
        AdminError::UnknownDevice(_) => (ErrorCode::UnknownDevice, StatusCode::NOT_FOUND),
        AdminError::UnknownSp(_) => (ErrorCode::UnknownSp, StatusCode::NOT_FOUND),
        AdminError::UnregisteredSp(_) => (ErrorCode::UnknownSp, StatusCode::UNPROCESSABLE_ENTITY),
        AdminError::UnknownGateway(_) => (ErrorCode::UnknownGateway, StatusCode::NOT_FOUND),
        AdminError::Change(_) => (ErrorCode::BatchTooLarge, StatusCode::PAYLOAD_TOO_LARGE),
        AdminError::Store(_) => (ErrorCode::Internal, StatusCode::INTERNAL_SERVER_ERROR),
    }
}

pub(crate) const OFF_MESSAGE: &str = "the admin API and console are off: no admin token is set; run \
     `control-server --database <the server's database> admin-token` (it prints the token once) and retry";

impl IntoResponse for AdminHttpError {
    fn into_response(self) -> Response {
        let (code, status, message, lines) = match self {
            AdminHttpError::Refused(Refusal::Off) => {
                (ErrorCode::NotAuthorized, StatusCode::FORBIDDEN, OFF_MESSAGE.to_owned(), None)
            }
            AdminHttpError::Refused(Refusal::Unauthenticated(m)) => (ErrorCode::Unauthenticated, StatusCode::UNAUTHORIZED, m, None),
            AdminHttpError::BodyTooLarge(limit) => (
                ErrorCode::BodyTooLarge,
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the request body exceeds the {limit} bytes this route accepts; split it"),
                None,
            ),
            AdminHttpError::Malformed(m) => (ErrorCode::MalformedRequest, StatusCode::BAD_REQUEST, m, None),
            AdminHttpError::Admin(e) => {
                let (code, status) = code_and_status(&e);
                if status.is_server_error() {
                    tracing::warn!(error = %e, "admin request failed");
                }
                let lines = match &e {
                    AdminError::Csv(lines) => Some(serde_json::to_value(lines).unwrap_or(Value::Null)),
                    _ => None,
                };
                (code, status, e.to_string(), lines)
            }
        };
        let mut body = json!({ "error": code.as_str(), "message": message });
        if let Some(lines) = lines {
            body["lines"] = lines;
        }
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"admin\""));
        }
        response
    }
}

type ApiResult<T> = Result<Json<T>, AdminHttpError>;

/// Lets in only requests with the admin bearer token.
async fn require_admin(State(state): State<AdminState>, request: Request, next: Next) -> Response {
    match state.auth.check_bearer(request.headers()).await {
        Ok(Ok(())) => next.run(request).await,
        Ok(Err(refusal)) => AdminHttpError::Refused(refusal).into_response(),
        Err(e) => AdminHttpError::from(e).into_response(),
    }
}

async fn within_deadline(request: Request, next: Next) -> Response {
    match tokio::time::timeout(ADMIN_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => (
            StatusCode::REQUEST_TIMEOUT,
            Json(json!({ "error": "request_timeout", "message": format!("not answered within {} s", ADMIN_TIMEOUT.as_secs()) })),
        )
            .into_response(),
    }
}

/// The admin API and the console, with their state.
pub fn router(state: AdminState) -> Router {
    let api = Router::new()
        .route(routes::MAPPINGS, get(list_mappings).post(add_mapping))
        .route(routes::MAPPINGS_IMPORT, axum::routing::post(import_mappings))
        .route(routes::MAPPING, get(get_mapping).delete(remove_mapping))
        .route(routes::MAPPING_HISTORY, get(mapping_history))
        .route(routes::SPS, get(list_sps))
        .route(routes::SP, get(get_sp))
        .route(routes::GATEWAYS, get(list_gateways))
        .route(routes::GATEWAY, get(get_gateway))
        .route(routes::HANDOVERS, get(list_handovers))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_admin));
    api.merge(crate::console::router())
        .layer(middleware::from_fn(within_deadline))
        .with_state(state)
}

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, AdminHttpError> {
    q.map(|Query(t)| t).map_err(|e| AdminHttpError::Malformed(e.body_text()))
}

async fn read_limited(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, AdminHttpError> {
    let announced = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit as u64) {
        return Err(AdminHttpError::BodyTooLarge(limit));
    }
    axum::body::to_bytes(body, limit).await.map_err(|_| AdminHttpError::BodyTooLarge(limit))
}

/// Query of `GET /v1/admin/mappings`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Part of the device id.
    pub q: Option<String>,
    pub sp: Option<String>,
    pub gateway: Option<String>,
    pub after: Option<String>,
    pub limit: Option<i64>,
}

impl ListQuery {
    pub fn filter(&self) -> Result<MappingFilter, AdminError> {
        let nonempty = |s: &Option<String>| s.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
        Ok(MappingFilter {
            device_contains: super::device_search(self.q.as_deref().unwrap_or(""))?,
            sp: nonempty(&self.sp),
            gateway: nonempty(&self.gateway),
            after: nonempty(&self.after),
            limit: self.limit.unwrap_or(100),
        })
    }
}

async fn list_mappings(
    State(state): State<AdminState>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult<super::MappingPage> {
    let q = query(q)?;
    Ok(Json(state.admin("api").list(q.filter()?).await?))
}

async fn add_mapping(State(state): State<AdminState>, headers: HeaderMap, body: Body) -> ApiResult<super::AddOutcome> {
    let bytes = read_limited(&headers, body, ADD_BODY_MAX).await?;
    let input: MappingInput = serde_json::from_slice(&bytes)
        .map_err(|e| AdminHttpError::Malformed(format!("the body is not {{\"device_id\", \"sp\", \"service_type\"?, \"access\"?}}: {e}")))?;
    Ok(Json(state.admin("api").add(&input).await?))
}

async fn import_mappings(State(state): State<AdminState>, headers: HeaderMap, body: Body) -> ApiResult<super::ImportOutcome> {
    let bytes = read_limited(&headers, body, IMPORT_BODY_MAX).await?;
    let text = std::str::from_utf8(&bytes).map_err(|e| AdminHttpError::Malformed(format!("the CSV is not UTF-8: {e}")))?;
    Ok(Json(state.admin("api").import_csv(text).await?))
}

async fn get_mapping(State(state): State<AdminState>, Path(device): Path<String>) -> ApiResult<super::MappingView> {
    Ok(Json(state.admin("api").show(&device).await?))
}

async fn remove_mapping(State(state): State<AdminState>, Path(device): Path<String>) -> ApiResult<super::RemoveOutcome> {
    Ok(Json(state.admin("api").remove(&device).await?))
}

async fn mapping_history(State(state): State<AdminState>, Path(device): Path<String>) -> ApiResult<Value> {
    let admin = state.admin("api");
    let history = admin.history(&device).await?;
    let device = super::canonical_device_id(&device)?;
    Ok(Json(json!({ "device_id": device, "history": history })))
}

async fn list_sps(State(state): State<AdminState>) -> ApiResult<Value> {
    Ok(Json(json!({ "sps": state.admin("api").sps().await? })))
}

async fn get_sp(State(state): State<AdminState>, Path(identity): Path<String>) -> ApiResult<super::SpView> {
    Ok(Json(state.admin("api").sp(&identity).await?))
}

async fn list_gateways(State(state): State<AdminState>) -> ApiResult<Value> {
    Ok(Json(json!({ "gateways": state.gateways().await? })))
}

async fn get_gateway(State(state): State<AdminState>, Path(id): Path<String>) -> ApiResult<GatewayView> {
    let mut g = state.admin("api").gateway(&id).await?;
    state.fill_presence(&mut g);
    Ok(Json(g))
}

/// Query of `GET /v1/admin/handovers`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandoverQuery {
    /// `accepted`, `refused`, or absent for both.
    pub outcome: Option<String>,
    pub limit: Option<i64>,
}

pub(crate) fn outcome_filter(outcome: Option<&str>) -> Result<Option<bool>, AdminError> {
    match outcome.map(str::trim) {
        None | Some("") | Some("all") => Ok(None),
        Some("accepted") => Ok(Some(true)),
        Some("refused") => Ok(Some(false)),
        Some(other) => Err(AdminError::Invalid(format!("outcome {other:?}: accepted, refused or all"))),
    }
}

async fn list_handovers(
    State(state): State<AdminState>,
    q: Result<Query<HandoverQuery>, QueryRejection>,
) -> ApiResult<Value> {
    let q = query(q)?;
    let accepted = outcome_filter(q.outcome.as_deref())?;
    let limit = q.limit.unwrap_or(100).clamp(1, super::HANDOVER_LOG_KEEP);
    let entries = state.server.store.recent_handovers(accepted, limit).await?;
    let entries: Vec<Value> = entries
        .iter()
        .map(|e| {
            let mut v = serde_json::to_value(e).unwrap_or(Value::Null);
            v["at"] = Value::String(crate::clock::rfc3339(e.at));
            v
        })
        .collect();
    Ok(Json(json!({ "handovers": entries })))
}

fn error_response(description: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } })
}

fn ok_json(description: &str, schema: Value) -> Value {
    json!({ "200": { "description": description, "content": { "application/json": { "schema": schema } } } })
}

/// The admin routes' part of the OpenAPI document: (paths, schemas).
pub fn openapi_paths() -> (Value, Value) {
    let device_param = json!({ "name": "device_id", "in": "path", "required": true, "schema": { "type": "string" }, "description": "EUI-48 or EUI-64, any spelling the resolve route accepts" });
    let obj = |r: &str| json!({ "$ref": format!("#/components/schemas/{r}") });
    let mut paths = json!({
        routes::MAPPINGS: {
            "get": { "operationId": "listMappings", "summary": "Mapping rows by device id, filtered by part of the id, SP and gateway; paged with after/limit.",
                "parameters": [
                    { "name": "q", "in": "query", "schema": { "type": "string" }, "description": "part of the device id (hex digits, '-' or ':')" },
                    { "name": "sp", "in": "query", "schema": { "type": "string" } },
                    { "name": "gateway", "in": "query", "schema": { "type": "string" }, "description": "devices this gateway asked about" },
                    { "name": "after", "in": "query", "schema": { "type": "string" }, "description": "the previous page's `next`" },
                    { "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 1000, "default": 100 } }
                ],
                "responses": ok_json("a page", obj("MappingPage")) },
            "post": { "operationId": "addMapping", "summary": "Add a device, or move it to another SP / change its service type or access. An SP change writes history and the gateways' outbox in one transaction, like an SP hand-over.",
                "requestBody": { "required": true, "content": { "application/json": { "schema": obj("MappingInput") } } },
                "responses": ok_json("what was done", obj("AddOutcome")) }
        },
        routes::MAPPINGS_IMPORT: {
            "post": { "operationId": "importMappings", "summary": "Import a CSV (device_id,sp[,service_type[,access]], optional header). Every row is checked first: any bad row and nothing is written (the answer lists the bad lines). Association changes are one transaction per SP and service type.",
                "requestBody": { "required": true, "content": { "text/csv": { "schema": { "type": "string" } } } },
                "responses": ok_json("imported", obj("ImportOutcome")) }
        },
        routes::MAPPING: {
            "get": { "operationId": "getMapping", "summary": "One device's mapping row.", "parameters": [device_param.clone()], "responses": ok_json("the row", obj("Mapping")) },
            "delete": { "operationId": "removeMapping", "summary": "Remove a device from the mapping table (its history stays; gateways are not told).", "parameters": [device_param.clone()],
                "responses": ok_json("removed", json!({ "type": "object", "properties": { "device_id": { "type": "string" }, "removed": { "type": "boolean" }, "sp": { "type": "string" } } })) }
        },
        routes::MAPPING_HISTORY: {
            "get": { "operationId": "getMappingHistory", "summary": "One device's SP changes, oldest first.", "parameters": [device_param],
                "responses": ok_json("the history", json!({ "type": "object", "properties": { "device_id": { "type": "string" }, "history": { "type": "array", "items": obj("HistoryEntry") } } })) }
        },
        routes::SPS: { "get": { "operationId": "listSps", "summary": "Registered SPs with the devices each holds.",
            "responses": ok_json("SPs", json!({ "type": "object", "properties": { "sps": { "type": "array", "items": obj("Sp") } } })) } },
        routes::SP: { "get": { "operationId": "getSp", "summary": "One registered SP.",
            "parameters": [{ "name": "identity", "in": "path", "required": true, "schema": { "type": "string" } }], "responses": ok_json("the SP", obj("Sp")) } },
        routes::GATEWAYS: { "get": { "operationId": "listGateways", "summary": "Registered gateways: outbox position and lag, devices, and whether connected to the replica that answers.",
            "responses": ok_json("gateways", json!({ "type": "object", "properties": { "gateways": { "type": "array", "items": obj("Gateway") } } })) } },
        routes::GATEWAY: { "get": { "operationId": "getGateway", "summary": "One gateway.",
            "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }], "responses": ok_json("the gateway", obj("Gateway")) } },
        routes::HANDOVERS: { "get": { "operationId": "listHandovers", "summary": "Recent SP hand-overs (unsolicited updates), accepted and refused with why, newest first (the newest 1,000 are kept).",
            "parameters": [
                { "name": "outcome", "in": "query", "schema": { "type": "string", "enum": ["accepted", "refused", "all"] } },
                { "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 1000, "default": 100 } }
            ],
            "responses": ok_json("hand-overs", json!({ "type": "object", "properties": { "handovers": { "type": "array", "items": obj("Handover") } } })) } }
    });
    if let Some(paths) = paths.as_object_mut() {
        for item in paths.values_mut() {
            if let Some(item) = item.as_object_mut() {
                for op in item.values_mut() {
                    op["security"] = json!([{ "admin": [] }]);
                    if let Some(responses) = op["responses"].as_object_mut() {
                        responses.insert("400".into(), error_response("malformed_request (bad query, body or CSV: `lines` lists the bad lines) or invalid_device_id"));
                        responses.insert("401".into(), error_response("unauthenticated: no or a wrong admin bearer token (gateway credentials are not admin credentials)"));
                        responses.insert("403".into(), error_response("not_authorized: the admin API is off (no admin token is set)"));
                        responses.insert("404".into(), error_response("unknown_device, unknown_sp or unknown_gateway"));
                        responses.insert("422".into(), error_response("unknown_sp: the mapping names an SP that is not registered"));
                    }
                }
            }
        }
    }
    let text = json!({ "type": "string" });
    let text_or_null = json!({ "type": ["string", "null"] });
    let schemas = json!({
        "MappingInput": { "type": "object", "required": ["device_id", "sp"], "additionalProperties": false, "properties": {
            "device_id": text, "sp": text, "service_type": text, "access": { "type": "string", "enum": ["wifi", "zigbee", "thread", "ble", "lorawan", "ethernet", "cellular"] } } },
        "Mapping": { "type": "object", "properties": {
            "device_id": text, "sp": text, "service_type": text_or_null, "access": text_or_null,
            "gateways": { "type": "array", "items": text },
            "created_at": { "type": "string", "format": "date-time" }, "updated_at": { "type": "string", "format": "date-time" }, "validated_at": { "type": "string", "format": "date-time" } } },
        "MappingPage": { "type": "object", "properties": { "mappings": { "type": "array", "items": obj("Mapping") }, "total": { "type": "integer" }, "next": text_or_null } },
        "AddOutcome": { "type": "object", "properties": { "device_id": text, "outcome": { "type": "string", "enum": ["created", "moved", "updated", "unchanged"] },
            "sp": text, "previous_sp": text_or_null, "events": { "type": "integer", "description": "outbox events written" } } },
        "ImportOutcome": { "type": "object", "properties": { "rows": { "type": "integer" }, "created": { "type": "integer" }, "changed": { "type": "integer" },
            "access_set": { "type": "integer" }, "unchanged": { "type": "integer" }, "events": { "type": "integer" }, "transactions": { "type": "integer" } } },
        "HistoryEntry": { "type": "object", "properties": { "old_sp": text_or_null, "new_sp": text, "changed_by": { "type": "string", "description": "an SP identity, redirect:<chain>, or admin:<cli|api>" },
            "message_id": text_or_null, "at": { "type": "string", "format": "date-time" } } },
        "Sp": { "type": "object", "properties": { "identity": text, "base_url": text, "public_key": text,
            "endpoint": { "type": ["string", "null"], "description": "where its devices and gateways reach it (null: none registered; gateways refuse to enroll devices to it)" },
            "device_public_key": { "type": "string", "description": "the Ed25519 key (hex) devices verify it with: its device-facing key, else public_key" }, "may_release": { "type": "boolean" },
            "may_move_to": { "type": "array", "items": text }, "may_claim": { "type": "boolean" }, "devices": { "type": "integer" } } },
        "Gateway": { "type": "object", "properties": { "id": text, "revoked": { "type": "boolean" }, "geo": { "$ref": "#/components/schemas/Geo" },
            "devices": { "type": "integer" }, "last_seq": { "type": "integer" }, "acked_seq": { "type": "integer", "description": "last acknowledged sequence" },
            "lag": { "type": "integer", "description": "outbox events not acknowledged yet" }, "created_at": { "type": "string", "format": "date-time" },
            "connected": { "type": "boolean", "description": "an open stream or long-poll on this replica, or one within the last 60 s" },
            "open_streams": { "type": "integer" }, "last_seen_secs_ago": { "type": ["integer", "null"] } } },
        "Handover": { "type": "object", "properties": { "id": { "type": "integer" }, "at": { "type": "string", "format": "date-time" }, "accepted": { "type": "boolean" },
            "sender": { "type": ["string", "null"], "description": "as the message claims (kid)" }, "new_sp": text_or_null,
            "devices": { "type": "integer" }, "changed": { "type": "integer" }, "events": { "type": "integer" },
            "code": { "type": "string", "description": "ok, or the error code the SP got" }, "reason": text, "message_id": text } }
    });
    (paths, schemas)
}

/// Adds the admin routes, their schemas and the `admin` security scheme to
/// the OpenAPI document.
pub trait WithAdminRoutes {
    fn with_admin_routes(self) -> Self;
}

impl WithAdminRoutes for Value {
    fn with_admin_routes(mut self) -> Self {
        let (paths, schemas) = openapi_paths();
        if let (Some(target), Some(paths)) = (self["paths"].as_object_mut(), paths.as_object()) {
            target.extend(paths.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        if let (Some(target), Some(schemas)) = (self["components"]["schemas"].as_object_mut(), schemas.as_object()) {
            target.extend(schemas.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        self["components"]["securitySchemes"]["admin"] = json!({
            "type": "http",
            "scheme": "bearer",
            "description": "the admin token (`control-server admin-token`); distinct from every gateway credential. Without one the admin API is off (403 not_authorized)."
        });
        self
    }
}
