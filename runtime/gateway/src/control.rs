//! The gateway's client of the control server.
//!
//! Two conversations (US 2017/0257341, claims 2–4 and 7): asking for the SP
//! identity of a device that appeared (`POST /v1/resolve`, with the gateway's
//! geo-location, subscription identity and service type), and following the
//! stream of unsolicited association updates (`GET /v1/updates?after=N`,
//! server-sent events, acknowledged with `POST /v1/updates/ack`). The gateway
//! authenticates both with its subscription identity and credential (HTTP
//! Basic).
//!
//! Every failure is a [`ControlError`] that says which: the server could not
//! be reached, refused this gateway, does not know the device, or its SP
//! refused it. A gateway never guesses an SP.

use std::time::Duration;

use control_api::gateway::{
    ASSOCIATION_EVENT, AckRequest, AssociationEvent, ResolveRequest, ResolveResponse,
};
use control_api::{ErrorBody, ErrorCode, routes};
use eventsource_stream::Eventsource;
use futures::{Stream, StreamExt};
use sp_bound_id::{AccessTechnology, Eui, SpIdentity};

pub use control_api::gateway::Geo;

use crate::store::AssociationUpdate;

/// How the gateway reaches and identifies itself to the control server.
#[derive(Debug, Clone)]
pub struct ControlServerConfig {
    /// e.g. `http://127.0.0.1:8080`
    pub base_url: String,
    /// The gateway's subscription identity.
    pub gateway_id: String,
    pub credential: String,
    /// Where the gateway is, sent with every resolve.
    pub geo: Option<Geo>,
    /// The service type the gateway asks for.
    pub service_type: Option<String>,
    /// Per-request timeout of resolve and ack calls.
    pub timeout: Duration,
}

/// Why the control server could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    #[error("the control server at {url} could not be reached: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the control server refused this gateway ({code}): {message}")]
    GatewayRefused { code: String, message: String },
    #[error("the control server knows no service provider for device {device}: {message}")]
    UnknownDevice { device: Eui, message: String },
    #[error("the service provider refused device {device} ({code}): {message}")]
    SpRefused { device: Eui, code: String, message: String },
    #[error("the control server could not validate the association ({code}): {message}")]
    Failed { code: String, message: String },
    #[error("the control server's answer is malformed: {0}")]
    Malformed(String),
}

/// The control-server client of one gateway.
#[derive(Clone)]
pub struct ControlServer {
    config: ControlServerConfig,
    http: reqwest::Client,
}

impl ControlServer {
    pub fn new(config: ControlServerConfig) -> Self {
        Self { config, http: crate::http_client() }
    }

    pub fn config(&self) -> &ControlServerConfig {
        &self.config
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.config.base_url.trim_end_matches('/'), path)
    }

    fn unreachable(&self, e: impl std::fmt::Display) -> ControlError {
        ControlError::Unreachable { url: self.config.base_url.clone(), reason: e.to_string() }
    }

    /// Asks for the SP identity of `device`.
    pub async fn resolve(&self, device: Eui, access: AccessTechnology) -> Result<SpIdentity, ControlError> {
        let body = ResolveRequest {
            device_id: device.to_string(),
            access: Some(access.as_str().to_owned()),
            geo: self.config.geo,
            subscription: Some(self.config.gateway_id.clone()),
            service_type: self.config.service_type.clone(),
            full_identifier: false,
        };
        let response = self
            .http
            .post(self.url(routes::RESOLVE))
            .basic_auth(&self.config.gateway_id, Some(&self.config.credential))
            .timeout(self.config.timeout)
            .json(&body)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| self.unreachable(e))?;
        if status.is_success() {
            let resolved: ResolveResponse =
                serde_json::from_slice(&bytes).map_err(|e| ControlError::Malformed(format!("resolve answer: {e}")))?;
            return SpIdentity::new(&resolved.sp)
                .map_err(|e| ControlError::Malformed(format!("resolve answer names SP {:?}: {e}", resolved.sp)));
        }
        let body: Option<ErrorBody> = serde_json::from_slice(&bytes).ok();
        let known = body.as_ref().and_then(|b| b.code().ok());
        let (code, message) = match body {
            Some(b) => (b.error, b.message),
            None => (format!("http_{}", status.as_u16()), String::from_utf8_lossy(&bytes).into_owned()),
        };
        Err(match (status.as_u16(), known) {
            (401 | 403, _) => ControlError::GatewayRefused { code, message },
            (404, _) => ControlError::UnknownDevice { device, message },
            (_, Some(ErrorCode::SpRejected)) => ControlError::SpRefused { device, code, message },
            (502..=504, Some(ErrorCode::SpUnreachable)) => ControlError::Failed { code, message },
            (502..=504, _) => self.unreachable(format!("{code}: {message}")),
            _ => ControlError::Failed { code, message },
        })
    }

    /// Pushed association updates after `after`, as they come. The stream
    /// ends (with an error item) when the connection drops; the caller
    /// reconnects from the last update it applied.
    pub async fn updates(
        &self,
        after: u64,
    ) -> Result<impl Stream<Item = Result<AssociationUpdate, ControlError>> + use<>, ControlError> {
        let response = self
            .http
            .get(self.url(&format!("{}?after={after}", routes::UPDATES)))
            .basic_auth(&self.config.gateway_id, Some(&self.config.credential))
            .header("accept", "text/event-stream")
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        let status = response.status();
        if !status.is_success() {
            let bytes = response.bytes().await.unwrap_or_default();
            let body: Option<ErrorBody> = serde_json::from_slice(&bytes).ok();
            let (code, message) = body.map(|b| (b.error, b.message)).unwrap_or((format!("http_{status}"), String::new()));
            return Err(match status.as_u16() {
                401 | 403 => ControlError::GatewayRefused { code, message },
                _ => ControlError::Failed { code, message },
            });
        }
        let base = self.config.base_url.clone();
        Ok(response.bytes_stream().eventsource().filter_map(move |event| {
            let base = base.clone();
            async move {
                match event {
                    Err(e) => Some(Err(ControlError::Unreachable { url: base, reason: e.to_string() })),
                    Ok(event) if event.event == ASSOCIATION_EVENT => Some(
                        serde_json::from_str::<AssociationEvent>(&event.data)
                            .map_err(|e| e.to_string())
                            .and_then(|e| AssociationUpdate::try_from(e).map_err(|e| e.to_string()))
                            .map_err(|e| ControlError::Malformed(format!("update {}: {e}", event.id))),
                    ),
                    Ok(_) => None,
                }
            }
        }))
    }

    /// Tells the server everything up to `seq` is durably applied.
    pub async fn ack(&self, seq: u64) -> Result<(), ControlError> {
        let response = self
            .http
            .post(self.url(routes::UPDATES_ACK))
            .basic_auth(&self.config.gateway_id, Some(&self.config.credential))
            .timeout(self.config.timeout)
            .json(&AckRequest { seq })
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(ControlError::Failed { code: format!("http_{}", response.status()), message: "ack refused".into() })
        }
    }
}
