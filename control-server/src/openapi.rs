//! The OpenAPI 3.1 description served at `GET /openapi.json`, written by
//! hand next to the types it describes; a test checks that every route of
//! [`crate::api::router`] is described and every error code is listed.

use control_api::routes;
use serde_json::{Value, json};

use crate::admin::http::WithAdminRoutes;
use crate::error::ApiError;

fn error_response(description: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } })
}

/// The routes the document describes, as (method, path).
pub const ROUTES: [(&str, &str); 8] = [
    ("post", routes::RESOLVE),
    ("get", routes::UPDATES),
    ("get", routes::UPDATES_POLL),
    ("post", routes::UPDATES_ACK),
    ("post", routes::SP_ASSOCIATIONS),
    ("get", routes::OPENAPI),
    ("get", routes::HEALTHZ),
    ("get", routes::METRICS),
];

pub fn document() -> Value {
    let codes: Vec<Value> = ApiError::catalogue()
        .into_iter()
        .map(|(code, status)| json!({ "code": code, "status": status }))
        .collect();
    let gateway_errors = json!({
        "400": error_response("malformed_request, unknown_field, invalid_device_id or invalid_ack"),
        "401": error_response("unauthenticated: missing or wrong HTTP Basic credentials"),
        "403": error_response("unknown_gateway, revoked_gateway or not_authorized"),
        "408": error_response("request_timeout: the body did not arrive, or the answer was not ready, within the request timeout"),
        "413": error_response("body_too_large: the body exceeds the route's limit")
    });
    let mut resolve_errors = gateway_errors.clone();
    if let Some(map) = resolve_errors.as_object_mut() {
        map.insert("404".into(), error_response("unknown_device: not in the mapping table"));
        map.insert("409".into(), error_response("sp_rejected: the SP rejected the association"));
        map.insert("422".into(), error_response("unknown_sp: a redirect named an SP that is not registered"));
        map.insert("502".into(), error_response("sp_unreachable (connection failed or 5xx) or sp_bad_answer (not a verdict, an HTTP redirect, or too large)"));
        map.insert("504".into(), error_response("sp_unreachable: the SP did not answer in time"));
        map.insert("508".into(), error_response("redirect_loop (A → B → A) or too_many_redirects"));
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "IoT enrollment control server",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Maps manufacturer device ids to service providers (SPs), validates associations with SPs (following redirects), accepts signed unsolicited association updates from SPs, and pushes every change to gateways through a durable per-gateway outbox. Error bodies are {\"error\": code, \"message\": text}; x-error-codes lists every code with its HTTP status."
        },
        "x-error-codes": codes,
        "components": {
            "securitySchemes": { "gateway": { "type": "http", "scheme": "basic", "description": "user name = the gateway's subscription identity, password = its credential" } },
            "schemas": {
                "Error": { "type": "object", "required": ["error", "message"], "properties": {
                    "error": { "type": "string", "description": "snake_case code, see x-error-codes" },
                    "message": { "type": "string" } } },
                "Geo": { "type": "object", "required": ["lat", "lon"], "additionalProperties": false, "properties": {
                    "lat": { "type": "number" }, "lon": { "type": "number" } } },
                "ResolveRequest": { "type": "object", "required": ["device_id"], "additionalProperties": false, "properties": {
                    "device_id": { "type": "string", "description": "EUI-48 or EUI-64 (AC-DE-48-00-00-80; ':' separators, lowercase and bare hex are accepted)" },
                    "access": { "type": "string", "enum": ["wifi", "zigbee", "thread", "ble", "lorawan", "ethernet", "cellular"] },
                    "geo": { "$ref": "#/components/schemas/Geo" },
                    "subscription": { "type": "string", "description": "the gateway's subscription identity; must equal the authenticated one" },
                    "service_type": { "type": "string" },
                    "full_identifier": { "type": "boolean", "default": false } } },
                "ResolveResponse": { "type": "object", "required": ["device_id", "sp", "service_type", "source", "validated_at", "identifier", "stale", "sp_endpoint", "sp_public_key"], "properties": {
                    "device_id": { "type": "string", "description": "canonical EUI text" },
                    "sp": { "type": "string" },
                    "service_type": { "type": ["string", "null"] },
                    "source": { "type": "string", "enum": ["table", "sp"] },
                    "validated_at": { "type": "string", "format": "date-time" },
                    "identifier": { "type": ["string", "null"], "description": "{sp}/{access}/{EUI}, when full_identifier was asked and the access technology is known" },
                    "stale": { "type": "boolean", "description": "the SP was unreachable and policy allowed the table's answer" },
                    "sp_endpoint": { "type": ["string", "null"], "description": "where the SP's devices and gateways reach it (device reports: POST {sp_endpoint}/v1/devices); null when the SP was registered without one (control-server sp add --endpoint)" },
                    "sp_public_key": { "type": ["string", "null"], "description": "Ed25519 key, 64 hex digits, devices verify the SP with: its device_public_key, else its registered public_key" } } },
                "AssociationEvent": { "type": "object", "required": ["seq", "device_id", "sp", "previous_sp", "service_type", "changed_at", "message_id"], "properties": {
                    "seq": { "type": "integer", "minimum": 1, "description": "per gateway, dense, from 1" },
                    "device_id": { "type": "string" },
                    "sp": { "type": "string" },
                    "previous_sp": { "type": ["string", "null"] },
                    "access": { "type": "string", "description": "access technology, when the mapping table knows it" },
                    "service_type": { "type": ["string", "null"] },
                    "changed_at": { "type": "string", "format": "date-time" },
                    "message_id": { "type": "string" },
                    "sp_endpoint": { "type": "string", "description": "the new SP's endpoint, when it registered one" },
                    "sp_public_key": { "type": "string", "description": "the new SP's device-facing Ed25519 key, hex" } } },
                "PollResponse": { "type": "object", "required": ["events", "next"], "properties": {
                    "events": { "type": "array", "items": { "$ref": "#/components/schemas/AssociationEvent" } },
                    "next": { "type": "integer", "description": "pass as `after` next time" } } },
                "Ack": { "type": "object", "required": ["seq"], "additionalProperties": false, "properties": { "seq": { "type": "integer", "minimum": 0 } } },
                "MoveAck": { "type": "object", "required": ["message_id", "accepted_at", "devices", "changed", "created", "gateways", "events"], "properties": {
                    "message_id": { "type": "string" },
                    "accepted_at": { "type": "string", "format": "date-time" },
                    "devices": { "type": "integer", "description": "devices listed (duplicates removed)" },
                    "changed": { "type": "integer" },
                    "created": { "type": "integer", "description": "devices the table did not have" },
                    "gateways": { "type": "integer", "description": "gateways that got outbox events" },
                    "events": { "type": "integer" } } }
            }
        },
        "paths": {
            "/v1/resolve": { "post": {
                "summary": "Which SP does this device belong to? Answers from the table while fresh, else validates with the SP (following redirects). Records the asking gateway against the device.",
                "security": [{ "gateway": [] }],
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ResolveRequest" } } } },
                "responses": { "200": { "description": "the device's SP", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ResolveResponse" } } } } }
            } },
            "/v1/updates": { "get": {
                "summary": "Server-sent events: first every outbox event of this gateway with seq > after, then live ones. Each event: id = seq, event = association, data = AssociationEvent JSON. Heartbeats are SSE comments.",
                "security": [{ "gateway": [] }],
                "parameters": [
                    { "name": "after", "in": "query", "schema": { "type": "integer", "minimum": 0, "default": 0 } },
                    { "name": "Last-Event-ID", "in": "header", "description": "used when `after` is absent", "schema": { "type": "integer" } }
                ],
                "responses": { "200": { "description": "the event stream", "content": { "text/event-stream": { "schema": { "type": "string" } } } } }
            } },
            "/v1/updates/poll": { "get": {
                "summary": "Long-poll: events with seq > after, waiting up to wait_ms (≤ 60,000) for the first one.",
                "security": [{ "gateway": [] }],
                "parameters": [
                    { "name": "after", "in": "query", "schema": { "type": "integer", "minimum": 0, "default": 0 } },
                    { "name": "wait_ms", "in": "query", "schema": { "type": "integer", "minimum": 0, "maximum": 60000, "default": 0 } },
                    { "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 10000, "default": 1000 } }
                ],
                "responses": { "200": { "description": "events (possibly none)", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/PollResponse" } } } } }
            } },
            "/v1/updates/ack": { "post": {
                "summary": "Acknowledge every event with seq ≤ the given one; acknowledged events are pruned after the retention time.",
                "security": [{ "gateway": [] }],
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Ack" } } } },
                "responses": { "200": { "description": "acknowledged (echoes the body)", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Ack" } } } } }
            } },
            "/v1/sp/associations": { "post": {
                "summary": "Unsolicited association update from an SP: a COSE_Sign1 (EdDSA, kid = SP identity) over a CBOR map {sender, new_sp, devices, service_type?, timestamp (unix s), nonce (16 bytes)}. One transaction.",
                "requestBody": { "required": true, "content": { "application/cose": { "schema": { "type": "string", "format": "binary" } } } },
                "responses": {
                    "200": { "description": "accepted and stored", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/MoveAck" } } } },
                    "400": error_response("malformed_request (not COSE, bad payload), unknown_field, invalid_device_id, timestamp_out_of_window"),
                    "401": error_response("bad_signature"),
                    "403": error_response("unknown_sp (kid not registered) or not_authorized"),
                    "408": error_response("request_timeout: the body did not arrive within the request timeout"),
                    "409": error_response("replayed_message"),
                    "413": error_response("batch_too_large (too many devices) or body_too_large (more bytes than max_batch devices can take)"),
                    "415": error_response("unsupported_media_type"),
                    "422": error_response("unknown_sp: new_sp is not registered"),
                    "503": error_response("overloaded: too many hand-overs are being verified; retry later")
                }
            } },
            "/openapi.json": { "get": { "summary": "This document.", "responses": { "200": { "description": "OpenAPI 3.1", "content": { "application/json": {} } } } } },
            "/healthz": { "get": { "summary": "Liveness.", "responses": { "200": { "description": "ok", "content": { "text/plain": {} } } } } },
            "/metrics": { "get": {
                "operationId": "getMetrics",
                "summary": "Counters, gauges and histograms in the Prometheus text format 0.0.4 (resolves by outcome and source, SP validations, hand-overs, streams, outbox lag per gateway, store commits). Needs the admin token.",
                "security": [{ "admin": [] }],
                "responses": {
                    "200": { "description": "the exposition", "content": { "text/plain; version=0.0.4": {} } },
                    "401": error_response("unauthenticated: no or a wrong admin bearer token"),
                    "403": error_response("no admin token is stored (control-server admin-token): the admin routes and /metrics are off")
                }
            } }
        }
    })
    .with_gateway_errors(gateway_errors, resolve_errors)
    .with_admin_routes()
}

trait WithErrors {
    fn with_gateway_errors(self, gateway: Value, resolve: Value) -> Value;
}

impl WithErrors for Value {
    /// Adds the shared error responses to the gateway routes.
    fn with_gateway_errors(mut self, gateway: Value, resolve: Value) -> Value {
        for (path, errors) in [
            (routes::RESOLVE, &resolve),
            (routes::UPDATES, &gateway),
            (routes::UPDATES_POLL, &gateway),
            (routes::UPDATES_ACK, &gateway),
        ] {
            let Some(op) = self.pointer_mut(&format!("/paths/{}", path.replace('/', "~1"))).and_then(|p| {
                p.as_object_mut().and_then(|m| m.values_mut().next())
            }) else {
                continue;
            };
            if let (Some(responses), Some(errors)) =
                (op.get_mut("responses").and_then(Value::as_object_mut), errors.as_object())
            {
                for (status, body) in errors {
                    responses.insert(status.clone(), body.clone());
                }
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_described_with_errors() {
        let doc = document();
        for (method, path) in ROUTES {
            let pointer = format!("/paths/{}/{method}", path.replace('/', "~1"));
            assert!(doc.pointer(&pointer).is_some(), "{method} {path} is not described");
        }
        assert!(doc.pointer("/paths/~1v1~1resolve/post/responses/508").is_some());
        assert!(doc.pointer("/paths/~1v1~1updates~1ack/post/responses/401").is_some());
        let codes = doc["x-error-codes"].as_array().unwrap();
        assert!(codes.iter().any(|c| c["code"] == "replayed_message"));
    }
}
