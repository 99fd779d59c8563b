//! The OpenAPI 3.1 description of the gateway's local API, served at
//! `GET /openapi.json`. Written by hand next to the router
//! ([`crate::api::router`]); a test checks that every route in [`ROUTES`] is
//! described and answered by the router, so the two cannot drift apart.

use serde_json::{Value, json};

/// Every route of the local API: method, path (OpenAPI template), operationId, summary.
pub const ROUTES: [(&str, &str, &str, &str); 14] = [
    ("post", "/v1/enroll", "enrollDevice", "Enroll the device at `device` with a label (text or photo)"),
    ("get", "/v1/devices", "listDevices", "Every device this gateway knows"),
    ("get", "/v1/devices/{id}", "getDevice", "One device"),
    ("delete", "/v1/devices/{id}", "resetDevice", "Forget a device: its key withdrawn at its SP first, then its record and any enrollment in doubt"),
    ("post", "/v1/devices/{id}/rebind", "rebindDevice", "Tell an enrolled device its current SP now"),
    ("post", "/v1/rebind-pending", "rebindPending", "Tell every reachable device whose SP changed"),
    ("get", "/v1/in-doubt", "listInDoubt", "Enrollments whose answer to Commit was lost, not settled yet"),
    ("post", "/v1/in-doubt/settle", "settleInDoubt", "Ask those devices what they committed, now"),
    ("get", "/v1/stream", "getStream", "The control server's update stream: connected, replica, position, counters"),
    ("get", "/metrics", "getMetrics", "Counters and histograms, Prometheus text format 0.0.4 (`crate::metrics`)"),
    ("get", "/healthz", "getHealth", "Liveness: stream connected, enrollments in doubt (no token)"),
    ("get", "/openapi.json", "getOpenApi", "This document (no token)"),
    ("post", "/v1/uplink/v1/device-messages", "forwardDeviceMessage", "A device without IP: forward its signed message to its SP, unchanged (no token)"),
    ("get", "/v1/uplink/v1/device-commands", "forwardDeviceCommands", "A device without IP: fetch its SP's signed commands (?identifier=…&after=N; no token)"),
];

/// Routes served without the API token.
pub const PUBLIC: [&str; 4] = ["/healthz", "/openapi.json", "/v1/uplink/v1/device-messages", "/v1/uplink/v1/device-commands"];

fn error(description: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } })
}

/// The document.
pub fn document() -> Value {
    let mut paths = serde_json::Map::new();
    for (method, path, operation_id, summary) in ROUTES {
        let mut responses = serde_json::Map::new();
        responses.insert("200".into(), json!({ "description": "done (JSON)" }));
        if !PUBLIC.contains(&path) {
            responses.insert("401".into(), error("unauthenticated: no or wrong `Authorization: Bearer <api_token>`"));
            responses.insert("408".into(), error("request_timeout (api_limits.request_timeout_ms)"));
        }
        if path.contains("{id}") {
            responses.insert("400".into(), error("invalid_device_id"));
            responses.insert("404".into(), error("unknown_device"));
        }
        match operation_id {
            "enrollDevice" => {
                responses.insert("400".into(), error("malformed_request"));
                responses.insert("409".into(), error("device_sealed (re-bind or reset), device_refused, sp_refused"));
                responses.insert("413".into(), error("body_too_large (api_limits.max_body_bytes)"));
                responses.insert("422".into(), error("bad_label, label_not_for_device, app_failed"));
                responses.insert("500".into(), error("gateway_store_failed"));
                responses.insert("502".into(), error("device_unreachable, device_link_failed, sp_unreachable, control_server_failed (the device is unchanged)"));
                responses.insert("504".into(), error("commit_unknown: the device may have committed; the gateway keeps asking it (GET /v1/in-doubt)"));
            }
            "rebindDevice" => {
                responses.insert("409".into(), error("not_enrolled"));
                responses.insert("502".into(), error("device_unreachable, rebind_failed"));
            }
            "resetDevice" => {
                responses.insert("502".into(), error("sp_unreachable: the SP could not be told; nothing was forgotten"));
            }
            _ => {}
        }
        let mut operation = json!({ "operationId": operation_id, "summary": summary, "responses": responses });
        if PUBLIC.contains(&path) {
            operation["security"] = json!([]);
        }
        if path.contains("{id}") {
            operation["parameters"] = json!([{ "name": "id", "in": "path", "required": true,
                "schema": { "type": "string" }, "description": "EUI-48 or EUI-64, e.g. AC-DE-48-00-00-80" }]);
        }
        if operation_id == "enrollDevice" {
            operation["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/EnrollRequest" } } } });
        }
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        entry[method] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "IoT enrollment gateway, local API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Enrolls devices from their labels and keeps their identifiers current. Error bodies are {\"error\": code, \"message\": text}, the message saying what to do next."
        },
        "security": [{ "bearer": [] }],
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "description": "the configuration's api_token" } },
            "schemas": {
                "Error": { "type": "object", "required": ["error", "message"], "properties": {
                    "error": { "type": "string" }, "message": { "type": "string" } } },
                "EnrollRequest": { "type": "object", "required": ["device"], "additionalProperties": false, "properties": {
                    "label_text": { "type": "string", "description": "the payload text the QR code holds" },
                    "label_image_base64": { "type": "string", "description": "a PNG or JPEG photo of the label, base64" },
                    "device": { "type": "string", "description": "HOST:PORT of the device's local link" } },
                    "description": "exactly one of label_text and label_image_base64" }
            }
        },
        "paths": paths
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_described_once_with_an_operation_id() {
        let doc = document();
        let mut ids = std::collections::HashSet::new();
        for (method, path, operation_id, _) in ROUTES {
            let pointer = format!("/paths/{}/{method}/operationId", path.replace('/', "~1"));
            assert_eq!(doc.pointer(&pointer).and_then(Value::as_str), Some(operation_id), "{method} {path}");
            assert!(ids.insert(operation_id), "{operation_id} twice");
        }
        assert!(doc.pointer("/paths/~1v1~1enroll/post/responses/504").is_some());
    }
}
