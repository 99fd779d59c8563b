//! The gateway's local HTTP API, as a router: the `gateway` binary serves
//! it, and tests drive it in-process.
//!
//! `POST /v1/enroll` (`{"label_text"|"label_image_base64", "device": "HOST:PORT"}`),
//! `GET /v1/devices`, `GET /v1/devices/{id}`, `GET /v1/stream`,
//! `POST /v1/rebind-pending`, `GET /v1/in-doubt` (enrollments whose answer
//! was lost, `crate::in_doubt`), `POST /v1/in-doubt/settle` (ask those
//! devices now), `POST /v1/devices/{id}/rebind` (tell it its SP now),
//! `DELETE /v1/devices/{id}` (forget it, its key withdrawn at its SP first;
//! `crate::device_admin`), and, without a token, `GET /healthz` (liveness,
//! stream up, enrollments in doubt) and `GET /openapi.json` (this API,
//! `crate::openapi`). Every other route needs the gateway's API token
//! (`Authorization: Bearer <api_token>`, [`crate::api_auth`]); without it the
//! answer is `401 unauthenticated` and nothing is done.
//!
//! A failed enrollment answers `{"error": CODE, "message": …}` with what to do
//! next in the message (`answer_for`): `422 bad_label` / `label_not_for_device`
//! / `app_failed`, `409 device_sealed` (re-bind or reset) / `device_refused` /
//! `sp_refused`, `502 device_unreachable` / `device_link_failed` /
//! `sp_unreachable` / `control_server_failed` (the device is unchanged: try
//! again), `504 commit_unknown` (the gateway keeps asking the device; the
//! same enrollment again reports the committed result).

use std::net::SocketAddr;
use std::sync::Arc;

use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Path as UrlPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use control_api::http_server::ServeLimits;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde::Deserialize;
use sp_bound_id::Eui;

use crate::api_auth::{ApiToken, require_token};
use crate::config::ApiLimits;
use crate::{Gateway, GatewayError, Label};

/// The API of `gateway`, for callers holding `token`, within `limits`: a
/// body over `max_body_bytes` is refused (`413`) before it is read whole,
/// and a request not received and answered within `request_timeout_ms` gets
/// `408 request_timeout` (the update stream, which is meant to stay open,
/// excepted).
pub fn router(gateway: Arc<Gateway>, token: ApiToken, limits: ApiLimits) -> Router {
    let deadline = Duration::from_millis(limits.request_timeout_ms);
    let bounded = Router::new()
        .route("/v1/enroll", post(api_enroll))
        .route("/v1/devices", get(api_devices))
        .route("/v1/devices/{id}", get(api_device).delete(api_reset_device))
        .route("/v1/devices/{id}/rebind", post(api_rebind_device))
        .route("/v1/rebind-pending", post(api_rebind_pending))
        .route("/v1/in-doubt", get(api_in_doubt))
        .route("/v1/in-doubt/settle", post(api_settle_in_doubt))
        .route(control_api::routes::METRICS, get(api_metrics))
        .layer(middleware::from_fn_with_state(deadline, within_deadline));
    bounded
        .route("/v1/stream", get(api_stream))
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(middleware::from_fn_with_state(token, require_token))
        // Liveness for supervisors and load balancers: no token, says
        // nothing about devices.
        .route(control_api::routes::HEALTHZ, get(api_healthz))
        .route(control_api::routes::OPENAPI, get(api_openapi))
        // Devices without IP reach their SP through here: no token, what
        // they carry is signed end to end (`crate::uplink`).
        .merge(crate::uplink::routes().layer(DefaultBodyLimit::max(crate::uplink::MAX_FORWARDED)))
        .with_state(gateway)
}

/// `GET /openapi.json`: the API's description (no token: it holds no data).
async fn api_openapi() -> Response {
    Json(crate::openapi::document()).into_response()
}

fn device_id(id: &str) -> Result<Eui, Box<Response>> {
    id.parse()
        .map_err(|e: sp_bound_id::IdentifierError| Box::new(error(StatusCode::BAD_REQUEST, "invalid_device_id", e.to_string())))
}

/// The status and stable code of an operator's request that was refused.
fn admin_answer(e: &crate::device_admin::DeviceAdminError) -> Response {
    use crate::device_admin::DeviceAdminError as E;
    let (status, code) = match e {
        E::Unknown(_) => (StatusCode::NOT_FOUND, "unknown_device"),
        E::NotEnrolled { .. } => (StatusCode::CONFLICT, "not_enrolled"),
        E::SpNotTold { .. } => (StatusCode::BAD_GATEWAY, "sp_unreachable"),
        E::Gateway(GatewayError::DeviceUnreachable { .. }) => (StatusCode::BAD_GATEWAY, "device_unreachable"),
        E::Gateway(GatewayError::Rebind(_)) => (StatusCode::BAD_GATEWAY, "rebind_failed"),
        E::Gateway(_) => (StatusCode::INTERNAL_SERVER_ERROR, "gateway_error"),
    };
    error(status, code, e.to_string())
}

/// `POST /v1/devices/{id}/rebind`: tell the device its current SP now.
async fn api_rebind_device(State(gateway): State<Arc<Gateway>>, UrlPath(id): UrlPath<String>) -> Response {
    let device = match device_id(&id) {
        Ok(d) => d,
        Err(answer) => return *answer,
    };
    match gateway.rebind_device(device).await {
        Ok(r) => Json(serde_json::json!({"device": r.device.to_string(), "identifier": r.sp_bound_id.to_string(), "generation": r.generation}))
            .into_response(),
        Err(e) => admin_answer(&e),
    }
}

/// `DELETE /v1/devices/{id}`: forget the device (its key withdrawn at its SP first).
async fn api_reset_device(State(gateway): State<Arc<Gateway>>, UrlPath(id): UrlPath<String>) -> Response {
    let device = match device_id(&id) {
        Ok(d) => d,
        Err(answer) => return *answer,
    };
    match gateway.reset_device(device).await {
        Ok(report) => Json(report).into_response(),
        Err(e) => admin_answer(&e),
    }
}

/// `GET /healthz`: `200` with whether the update stream is up and how many
/// enrollments are in doubt; `503` if the gateway's store cannot be read.
async fn api_healthz(State(gateway): State<Arc<Gateway>>) -> Response {
    let connected = gateway.stream_state().borrow().connected;
    match gateway.store().in_doubt().await {
        Ok(notes) => {
            Json(serde_json::json!({"status": "ok", "stream_connected": connected, "in_doubt": notes.len()})).into_response()
        }
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, "store", e.to_string()),
    }
}

/// Serves the API on `listener` with `limits` until `shutdown` completes:
/// connections capped and idle ones closed (`control_api::http_server`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    gateway: Arc<Gateway>,
    token: ApiToken,
    limits: ApiLimits,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let bounds = ServeLimits {
        max_connections: limits.max_connections,
        header_read_timeout: Duration::from_millis(limits.header_read_timeout_ms),
    };
    control_api::http_server::serve(listener, router(gateway, token, limits), bounds, shutdown).await
}

/// Answers `408 request_timeout` when a request is not received and answered
/// within `limit` (the handler is dropped: an enrollment it ran is cut off
/// as if the caller had hung up, and the device is unchanged unless it had
/// committed).
async fn within_deadline(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => error(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!("the request was not answered within {} ms (api_limits.request_timeout_ms)", limit.as_millis()),
        ),
    }
}

/// `POST /v1/enroll`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnrollRequest {
    /// The payload text the QR code holds.
    #[serde(default)]
    label_text: Option<String>,
    /// A photo of the label, base64.
    #[serde(default)]
    label_image_base64: Option<String>,
    /// The device's local link.
    device: SocketAddr,
}

async fn api_enroll(State(gateway): State<Arc<Gateway>>, Json(request): Json<EnrollRequest>) -> Response {
    let label = match (request.label_text, request.label_image_base64) {
        (Some(text), None) => Label::Text(text),
        (None, Some(b64)) => match base64::engine::general_purpose::STANDARD.decode(b64.trim()) {
            Ok(bytes) => Label::Image(bytes),
            Err(e) => return error(StatusCode::BAD_REQUEST, "malformed_request", format!("label_image_base64: {e}")),
        },
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "malformed_request",
                "give exactly one of label_text and label_image_base64".into(),
            );
        }
    };
    match gateway.enroll(label, request.device).await {
        Ok(report) => Json(report).into_response(),
        Err(e) => {
            let (status, code, hint) = answer_for(&e);
            let message = match hint {
                Some(hint) => format!("{e}; {hint}"),
                None => e.to_string(),
            };
            error(status, code, message)
        }
    }
}

async fn api_devices(State(gateway): State<Arc<Gateway>>) -> Response {
    match gateway.store().devices().await {
        Ok(devices) => Json(devices).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "store", e.to_string()),
    }
}

async fn api_device(State(gateway): State<Arc<Gateway>>, UrlPath(id): UrlPath<String>) -> Response {
    let device: Eui = match id.parse() {
        Ok(d) => d,
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid_device_id", e.to_string()),
    };
    match gateway.store().device(device).await {
        Ok(Some(d)) => Json(d).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, "unknown_device", format!("{device} is not known here")),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "store", e.to_string()),
    }
}

async fn api_stream(State(gateway): State<Arc<Gateway>>) -> Response {
    Json(gateway.stream_state().borrow().clone()).into_response()
}

async fn api_rebind_pending(State(gateway): State<Arc<Gateway>>) -> Response {
    match gateway.rebind_pending().await {
        Ok(results) => {
            let done: Vec<_> = results
                .into_iter()
                .map(|r| match r {
                    Ok(report) => serde_json::json!({"device": report.device.to_string(), "identifier": report.sp_bound_id.to_string(), "generation": report.generation}),
                    Err((device, e)) => serde_json::json!({"device": device.to_string(), "error": e.to_string()}),
                })
                .collect();
            Json(done).into_response()
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "gateway_error", e.to_string()),
    }
}

/// `GET /metrics`: the Prometheus text of [`crate::metrics`] (behind the
/// token like the rest: see that module for why).
async fn api_metrics(State(gateway): State<Arc<Gateway>>) -> Response {
    let text = gateway.render_metrics().await;
    ([(axum::http::header::CONTENT_TYPE, enrollment_metrics::CONTENT_TYPE)], text).into_response()
}

async fn api_in_doubt(State(gateway): State<Arc<Gateway>>) -> Response {
    match gateway.store().in_doubt().await {
        Ok(notes) => Json(notes).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "store", e.to_string()),
    }
}

async fn api_settle_in_doubt(State(gateway): State<Arc<Gateway>>) -> Response {
    match gateway.settle_in_doubt().await {
        Ok(settled) => {
            let done: Vec<_> = settled
                .into_iter()
                .map(|(device, outcome)| serde_json::json!({"device": device.to_string(), "settled": outcome}))
                .collect();
            Json(done).into_response()
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "gateway_error", e.to_string()),
    }
}

/// The one mapping of an enrollment's failure to its HTTP status, its
/// stable code, and what to do about it: a device or an SP that refused is
/// a conflict the caller can act on, infrastructure that failed (the link,
/// an SP out of reach) is a bad gateway, an app that failed is unprocessable.
pub(crate) fn answer_for(e: &GatewayError) -> (StatusCode, &'static str, Option<&'static str>) {
    use enrollment_assistant::{EnrollError as E, RelayError};
    match e {
        GatewayError::Label(_) => (StatusCode::UNPROCESSABLE_ENTITY, "bad_label", None),
        GatewayError::DeviceUnreachable { .. } => {
            (StatusCode::BAD_GATEWAY, "device_unreachable", Some("check the device's address and that it is listening"))
        }
        GatewayError::Enroll(enroll) => match enroll {
            E::DeviceSealed => (
                StatusCode::CONFLICT,
                "device_sealed",
                Some("a sealed device is enrolled again only by a re-bind from the assistant that enrolled it (POST /v1/rebind-pending for an SP change), or after a factory reset of the device"),
            ),
            E::Device(_) => (StatusCode::CONFLICT, "device_refused", None),
            E::Label(_) => (StatusCode::UNPROCESSABLE_ENTITY, "label_not_for_device", Some("the label names another device or access technology")),
            E::PhoneHalf { .. } | E::NotRelayed | E::RelayMismatch { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, "app_failed", None)
            }
            E::Relay(RelayError::Refused(_)) => (StatusCode::CONFLICT, "sp_refused", None),
            E::Relay(RelayError::Unreachable(_)) => {
                (StatusCode::BAD_GATEWAY, "sp_unreachable", Some("the device is unchanged; enroll it again once the SP answers"))
            }
            E::Link { .. } | E::Protocol(_) => {
                (StatusCode::BAD_GATEWAY, "device_link_failed", Some("the device is unchanged; enroll it again"))
            }
            E::CommitUnknown(_) | E::CommitUnclear(_) => (
                StatusCode::GATEWAY_TIMEOUT,
                "commit_unknown",
                Some("the gateway asks the device what it committed every retry interval and at restart (GET /v1/in-doubt); enrolling it again with the same label reports the committed result"),
            ),
            E::Journal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "gateway_store_failed",
                Some("the device is unchanged and nothing was relayed; check the gateway's store file and disk, then enroll again"),
            ),
        },
        GatewayError::NotCommitted { .. } => {
            (StatusCode::BAD_GATEWAY, "device_link_failed", Some("the device is unchanged and its SP dropped the key; enroll it again"))
        }
        GatewayError::InDoubt { .. } => (
            StatusCode::GATEWAY_TIMEOUT,
            "commit_unknown",
            Some("the gateway asks the device what it committed every retry interval and at restart (GET /v1/in-doubt); enrolling it again with the same label reports the committed result"),
        ),
        GatewayError::Control(_) => (StatusCode::BAD_GATEWAY, "control_server_failed", None),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "gateway_error", None),
    }
}

fn error(status: StatusCode, code: &str, message: String) -> Response {
    (status, Json(serde_json::json!({ "error": code, "message": message }))).into_response()
}


#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ed25519_dalek::SigningKey;
    use enrollment_assistant::{AssistantRuntime, Sandbox, SandboxConfig, Timeouts};

    use super::*;
    use crate::control::{ControlServer, ControlServerConfig};
    use crate::services::GatewayServices;
    use crate::store::GatewayStore;

    /// A gateway whose control server is nowhere (nothing here reaches it),
    /// its API served on a loopback port.
    async fn serve_api(dir: &std::path::Path) -> String {
        serve_api_with(dir, ApiLimits::default()).await
    }

    async fn serve_api_with(dir: &std::path::Path, limits: ApiLimits) -> String {
        let store = GatewayStore::open(&dir.join("gateway.sqlite")).unwrap();
        let control = ControlServer::new(ControlServerConfig {
            timeout: Duration::from_millis(200),
            ..ControlServerConfig::new("http://127.0.0.1:9", "gw-test", "secret")
        })
        .unwrap();
        let services = GatewayServices::new(control.clone(), store.clone());
        let identity = SigningKey::from_bytes(&[9; 32]);
        let sandbox = Arc::new(Sandbox::new(SandboxConfig { max_concurrent_halves: 4, ..SandboxConfig::default() }).unwrap());
        let assistant =
            AssistantRuntime::new(sandbox, Arc::new(services), identity.clone(), Timeouts::default()).unwrap();
        let gateway = Gateway::new(assistant, store, control, identity, test_key().trusted(), Timeouts::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let token = ApiToken::new(TOKEN).unwrap();
        tokio::spawn(serve(listener, Arc::new(gateway), token, limits, std::future::pending()));
        format!("http://{addr}")
    }

    const TOKEN: &str = "test-token-0123456789";

    /// The manufacturer whose labels the test gateway trusts.
    fn test_key() -> qr_packer::ManufacturerKey {
        qr_packer::ManufacturerKey::from_secret("acme-api-test", [5; 32]).unwrap()
    }

    /// A client that sends the API token with every request.
    fn authorized() -> reqwest::Client {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {TOKEN}").parse().unwrap());
        control_api::http_client::client_builder().default_headers(headers).build().unwrap()
    }

    #[tokio::test]
    async fn idle_and_half_sent_connections_are_closed_and_big_bodies_refused() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let dir = tempfile::tempdir().unwrap();
        let limits = ApiLimits { header_read_timeout_ms: 300, max_body_bytes: 1024, max_connections: 8, ..ApiLimits::default() };
        let base = serve_api_with(dir.path(), limits).await;
        let addr = base.trim_start_matches("http://").to_owned();
        // A connection that sends half a request head, and one that sends nothing.
        let mut half = tokio::net::TcpStream::connect(&addr).await.unwrap();
        half.write_all(b"GET /v1/devices HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        let mut idle = tokio::net::TcpStream::connect(&addr).await.unwrap();
        for stream in [&mut half, &mut idle] {
            let mut buf = Vec::new();
            let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut buf)).await;
            assert!(read.is_ok(), "the server closed the connection (it used to keep it open)");
        }
        // A body over the limit is refused, not buffered.
        let big = serde_json::json!({"label_text": "A".repeat(4096), "device": "127.0.0.1:1"});
        let answer = authorized().post(format!("{base}/v1/enroll")).json(&big).send().await.unwrap();
        assert_eq!(answer.status(), 413);
        // Beyond the connection cap nothing is accepted until one closes;
        // a normal request still gets through afterwards.
        let mut held = Vec::new();
        for _ in 0..8 {
            held.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
        }
        drop(held);
        let answer = authorized().get(format!("{base}/v1/devices")).send().await.unwrap();
        assert_eq!(answer.status(), 200);
    }

    #[test]
    fn failures_of_infrastructure_are_not_conflicts() {
        use enrollment_assistant::{EnrollError, RelayError};
        use enrollment_host::link::LinkFailure;
        let status = |e: EnrollError| {
            let (status, code, _) = answer_for(&GatewayError::Enroll(e));
            (status.as_u16(), code)
        };
        assert_eq!(status(EnrollError::DeviceSealed), (409, "device_sealed"));
        let (_, _, hint) = answer_for(&GatewayError::Enroll(EnrollError::DeviceSealed));
        assert!(hint.unwrap().contains("re-bind"));
        assert_eq!(status(EnrollError::Link { during: "x", failure: LinkFailure::Closed }), (502, "device_link_failed"));
        assert_eq!(status(EnrollError::Relay(RelayError::Unreachable("down".into()))), (502, "sp_unreachable"));
        assert_eq!(status(EnrollError::Relay(RelayError::Refused("no".into()))), (409, "sp_refused"));
        assert_eq!(status(EnrollError::CommitUnknown(LinkFailure::Closed)), (504, "commit_unknown"));
        assert_eq!(status(EnrollError::NotRelayed), (422, "app_failed"));
    }

    #[tokio::test]
    async fn an_enrollment_past_the_request_deadline_answers_408() {
        let dir = tempfile::tempdir().unwrap();
        let limits = ApiLimits { request_timeout_ms: 300, ..ApiLimits::default() };
        let base = serve_api_with(dir.path(), limits).await;
        // A "device" that accepts the link and never says Hello.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let device = silent.local_addr().unwrap();
        let _keep = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((stream, _)) = silent.accept().await {
                open.push(stream);
            }
        });
        let signed = {
            let app = &enrollment_apps::WIFI_METER;
            let mut manifest = qr_packer::manifest::reference(app).unwrap();
            manifest.device_id = Some("AC-DE-48-00-00-80".into());
            enrollment_assistant::label::seal(app.phone, app.device, &manifest, &test_key()).unwrap().signed_bytes().to_vec()
        };
        let label = qr_packer::SignedPayload::from_bytes(signed).to_text();
        let request = serde_json::json!({"label_text": label, "device": device.to_string()});
        let answer = authorized().post(format!("{base}/v1/enroll")).json(&request).send().await.unwrap();
        assert_eq!(answer.status(), 408);
        let body: serde_json::Value = answer.json().await.unwrap();
        assert_eq!(body["error"], "request_timeout", "{body}");
        assert!(body["message"].as_str().unwrap().contains("api_limits.request_timeout_ms"), "{body}");
    }

    #[tokio::test]
    async fn every_route_needs_the_api_token() {
        let dir = tempfile::tempdir().unwrap();
        let base = serve_api(dir.path()).await;
        let anonymous = crate::http_client().unwrap();
        let label = serde_json::json!({"label_text": "EN1:not base45", "device": "127.0.0.1:1"});
        for bearer in [None, Some("Bearer wrong-token-0123456789"), Some("Basic dGVzdA==")] {
            let requests = [
                anonymous.get(format!("{base}/v1/devices")),
                anonymous.get(format!("{base}/v1/devices/AC-DE-48-00-00-80")),
                anonymous.get(format!("{base}/v1/stream")),
                anonymous.post(format!("{base}/v1/rebind-pending")),
                anonymous.get(format!("{base}/v1/in-doubt")),
                anonymous.post(format!("{base}/v1/in-doubt/settle")),
                anonymous.post(format!("{base}/v1/enroll")).json(&label),
            ];
            for request in requests {
                let request = match bearer {
                    Some(value) => request.header("authorization", value),
                    None => request,
                };
                let answer = request.send().await.unwrap();
                assert_eq!(answer.status(), 401, "{:?}", answer.url().path());
                let body: serde_json::Value = answer.json().await.unwrap();
                assert_eq!(body["error"], "unauthenticated", "{body}");
                assert!(body["message"].as_str().unwrap().contains("api_token"), "{body}");
            }
        }
        let answer = authorized().get(format!("{base}/v1/devices")).send().await.unwrap();
        assert_eq!(answer.status(), 200);

        // Liveness alone needs no token and tells nothing about devices.
        let health = anonymous.get(format!("{base}/healthz")).send().await.unwrap();
        assert_eq!(health.status(), 200);
        let health: serde_json::Value = health.json().await.unwrap();
        assert_eq!(health, serde_json::json!({"status": "ok", "stream_connected": false, "in_doubt": 0}));
    }

    /// The router and the OpenAPI document list the same routes: each one
    /// described is served (a token-free call answers 401 on protected
    /// ones, never 404 or 405).
    #[tokio::test]
    async fn every_described_route_is_served() {
        let dir = tempfile::tempdir().unwrap();
        let base = serve_api(dir.path()).await;
        let anonymous = crate::http_client().unwrap();
        for (method, path, operation_id, _) in crate::openapi::ROUTES {
            let url = format!("{base}{}", path.replace("{id}", "AC-DE-48-00-00-80"));
            let method: reqwest::Method = method.to_uppercase().parse().unwrap();
            let answer = anonymous.request(method.clone(), url).send().await.unwrap();
            let status = answer.status().as_u16();
            if crate::openapi::PUBLIC.contains(&path) {
                assert!(![401, 404, 405].contains(&status), "{method} {path} ({operation_id}): {status}");
            } else {
                assert_eq!(status, 401, "{method} {path} ({operation_id})");
            }
        }
    }

    #[tokio::test]
    async fn the_router_answers_in_process_with_specific_errors() {
        let dir = tempfile::tempdir().unwrap();
        let base = serve_api(dir.path()).await;
        let http = authorized();

        let devices = http.get(format!("{base}/v1/devices")).send().await.unwrap();
        assert_eq!(devices.status(), 200);
        assert_eq!(devices.json::<serde_json::Value>().await.unwrap(), serde_json::json!([]));

        let bad = http.get(format!("{base}/v1/devices/not-an-eui")).send().await.unwrap();
        assert_eq!(bad.status(), 400);
        assert_eq!(bad.json::<serde_json::Value>().await.unwrap()["error"], "invalid_device_id");

        let unknown = http.get(format!("{base}/v1/devices/AC-DE-48-00-00-80")).send().await.unwrap();
        assert_eq!(unknown.status(), 404);

        let both = serde_json::json!({"label_text": "EN1:x", "label_image_base64": "", "device": "127.0.0.1:1"});
        let refused = http.post(format!("{base}/v1/enroll")).json(&both).send().await.unwrap();
        assert_eq!(refused.status(), 400);
        assert_eq!(refused.json::<serde_json::Value>().await.unwrap()["error"], "malformed_request");

        let label = serde_json::json!({"label_text": "EN1:not base45", "device": "127.0.0.1:1"});
        let unreadable = http.post(format!("{base}/v1/enroll")).json(&label).send().await.unwrap();
        assert_eq!(unreadable.status(), 422);
        assert_eq!(unreadable.json::<serde_json::Value>().await.unwrap()["error"], "bad_label");
    }
}
