//! Forwarding for devices without IP: a Zigbee, Thread or BLE device's
//! operational app reaches its SP through the gateway that enrolled it.
//!
//! The device posts its signed message to the gateway
//! (`POST /v1/uplink/v1/device-messages`) and fetches its SP's commands from
//! it (`GET /v1/uplink/v1/device-commands?identifier=…&after=N`); the gateway
//! forwards each to the endpoint the control server gave for the device's
//! current SP, byte for byte, and hands back the SP's answer. It forwards
//! only for a device it enrolled, under the identifier it holds for it. The
//! gateway is trusted with nothing: messages are signed by the device's key
//! over identifier, sequence number and body, commands by the SP's key, so a
//! gateway that alters one gets it refused (by the SP, or by the device).
//! These routes take no API token: devices on the local link hold none, and
//! what they carry is authenticated end to end.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use control_api::device::{DEVICE_COMMANDS, DEVICE_MESSAGES, DeviceMessage};
use sp_bound_id::SpBoundId;

use crate::Gateway;
use crate::store::DeviceStatus;

/// Where devices send (`HttpUplink::via` takes this, after the gateway's address).
pub const UPLINK_BASE: &str = "/v1/uplink";

/// Largest device message forwarded (a 1 KiB body, hex, and its envelope).
pub const MAX_FORWARDED: usize = 8 * 1024;
/// Largest SP answer handed back.
const MAX_ANSWER: usize = 256 * 1024;

/// The forwarding routes.
pub fn routes() -> Router<Arc<Gateway>> {
    Router::new()
        .route(&format!("{UPLINK_BASE}{DEVICE_MESSAGES}"), post(forward_message))
        .route(&format!("{UPLINK_BASE}{DEVICE_COMMANDS}"), get(forward_commands))
}

fn refuse(status: StatusCode, code: &str, message: String) -> Response {
    (status, axum::Json(serde_json::json!({ "error": code, "message": message }))).into_response()
}

/// The SP endpoint of the enrolled device named `identifier`, or why not.
async fn endpoint_for(gateway: &Gateway, identifier: &str) -> Result<String, Response> {
    let id: SpBoundId = identifier
        .parse()
        .map_err(|e| refuse(StatusCode::BAD_REQUEST, "invalid_identifier", format!("{identifier:?}: {e}")))?;
    let record = gateway
        .store()
        .device(*id.device())
        .await
        .map_err(|e| refuse(StatusCode::INTERNAL_SERVER_ERROR, "store", e.to_string()))?;
    let Some(record) = record.filter(|r| r.state == DeviceStatus::Enrolled) else {
        return Err(refuse(StatusCode::NOT_FOUND, "unknown_device", format!("{} was not enrolled through this gateway", id.device())));
    };
    if record.identifier.as_ref() != Some(&id) {
        let held = record.identifier.map(|i| i.to_string()).unwrap_or_default();
        return Err(refuse(
            StatusCode::CONFLICT,
            "identifier_mismatch",
            format!("this gateway holds {held} for the device, not {identifier} (a re-bind may be pending)"),
        ));
    }
    record.sp_endpoint.ok_or_else(|| {
        refuse(StatusCode::BAD_GATEWAY, "no_endpoint", format!("no SP endpoint is known for {identifier}; the control server gives it"))
    })
}

async fn forward_message(State(gateway): State<Arc<Gateway>>, body: Bytes) -> Response {
    if body.len() > MAX_FORWARDED {
        return refuse(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", format!("a device message is at most {MAX_FORWARDED} bytes"));
    }
    let message: DeviceMessage = match serde_json::from_slice(&body) {
        Ok(m) => m,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, "malformed_request", e.to_string()),
    };
    let endpoint = match endpoint_for(&gateway, &message.identifier).await {
        Ok(e) => e,
        Err(answer) => return answer,
    };
    let url = format!("{}{DEVICE_MESSAGES}", endpoint.trim_end_matches('/'));
    let request = gateway.sp_http().post(url).header(header::CONTENT_TYPE, "application/json").body(body);
    relay(request, &endpoint).await
}

async fn forward_commands(State(gateway): State<Arc<Gateway>>, RawQuery(query): RawQuery) -> Response {
    let query = query.unwrap_or_default();
    let identifier = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("identifier="))
        .map(percent_decode)
        .unwrap_or_default();
    let endpoint = match endpoint_for(&gateway, &identifier).await {
        Ok(e) => e,
        Err(answer) => return answer,
    };
    let url = format!("{}{DEVICE_COMMANDS}?{query}", endpoint.trim_end_matches('/'));
    relay(gateway.sp_http().get(url), &endpoint).await
}

/// Sends `request` to the SP and hands back its status and body (bounded).
async fn relay(request: reqwest::RequestBuilder, endpoint: &str) -> Response {
    let answer = match request.timeout(std::time::Duration::from_secs(5)).send().await {
        Ok(a) => a,
        Err(e) => return refuse(StatusCode::BAD_GATEWAY, "sp_unreachable", format!("{endpoint}: {e}")),
    };
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    match control_api::http_client::read_body(answer, MAX_ANSWER).await {
        Ok(bytes) => (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(e) => refuse(StatusCode::BAD_GATEWAY, "sp_bad_answer", format!("{endpoint}: {e}")),
    }
}

impl Gateway {
    /// The HTTP client the gateway reaches SPs with.
    fn sp_http(&self) -> &reqwest::Client {
        self.control.http()
    }
}

fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(&value[i + 1..i + 3], 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn query_values_are_decoded() {
        assert_eq!(super::percent_decode("sp-one.example%2Fwifi%2FAC-DE-48-00-00-80"), "sp-one.example/wifi/AC-DE-48-00-00-80");
        assert_eq!(super::percent_decode("a%2"), "a%2", "a cut escape stays as it is");
    }
}
