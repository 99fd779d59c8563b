//! What a gateway offers the phone halves it runs: the `assistant` capability
//! backed by the control server and the SP networks.
//!
//! `resolve-sp` asks the control server (and records the answer in the
//! gateway store: a new device gets its identifier, a known one has only its
//! SP part changed, and the SP's endpoint and key replace the ones held);
//! `relay` posts the enrolled device's identifier and public key to the
//! endpoint that resolve gave. The control server is the one place SP
//! endpoints are registered (`control-server sp add --endpoint`): a gateway
//! configures none, so a new SP or a moved endpoint needs no gateway change,
//! and an SP registered without one is refused at resolve, before the
//! device commits. Location, owner and the network credentials handed to
//! devices come from the gateway's configuration.
//! An SP's answer to a relay is read up to [`SP_ANSWER_MAX`] bytes, and an
//! HTTP redirect from it is a refusal, not followed.

use std::time::Duration;

use futures::future::BoxFuture;

use super::control::{ControlError, ControlServer};
use super::store::GatewayStore;
use enrollment_assistant::NetworkCredentials;
use sp_bound_id::{AccessTechnology, Eui, SpBoundId};
use enrollment_assistant::{AssistantServices, RelayError, RelayedDevice, ResolveError, SpBinding};

/// Most bytes of an SP's answer to a relay that are read (only its status
/// counts; the text goes into the error).
pub const SP_ANSWER_MAX: usize = 4 * 1024;

/// The gateway's assistant services.
pub struct GatewayServices {
    pub control: ControlServer,
    pub store: GatewayStore,
    pub location: Option<String>,
    pub owner: Option<String>,
    pub networks: Vec<NetworkCredentials>,
    /// This gateway's id, sent with relays.
    pub gateway_id: String,
    pub relay_timeout: Duration,
    http: reqwest::Client,
}

impl GatewayServices {
    pub fn new(control: ControlServer, store: GatewayStore) -> Self {
        let gateway_id = control.config().gateway_id.clone();
        Self {
            http: control.http().clone(),
            control,
            store,
            location: None,
            owner: None,
            networks: Vec::new(),
            gateway_id,
            relay_timeout: Duration::from_secs(5),
        }
    }
}

impl GatewayServices {
    /// Tells the SP of `identifier`, at `endpoint` (where the key was
    /// relayed), to drop `public_key`: it was relayed, and the device did not
    /// commit it. An SP that does not hold it (the relay never arrived)
    /// answers that nothing was dropped: done too.
    pub async fn withdraw(
        &self,
        identifier: &SpBoundId,
        public_key: &[u8; 32],
        endpoint: Option<&str>,
    ) -> Result<usize, RelayError> {
        let sp = identifier.sp();
        let Some(endpoint) = endpoint else {
            return Err(RelayError::Unreachable(no_endpoint(sp.as_str()).to_string()));
        };
        let body = control_api::sp::DeviceWithdrawal {
            identifier: identifier.to_string(),
            public_key: hex::encode(public_key),
            withdrawn_by: Some(self.gateway_id.clone()),
        };
        let response = self
            .http
            .post(format!("{}{}", endpoint.trim_end_matches('/'), control_api::routes::SP_DEVICES_WITHDRAW))
            .timeout(self.relay_timeout)
            .json(&body)
            .send()
            .await
            .map_err(|e| RelayError::Unreachable(format!("{sp} at {endpoint}: {e}")))?;
        let status = response.status();
        let bytes = control_api::http_client::read_body(response, SP_ANSWER_MAX)
            .await
            .map_err(|e| RelayError::Unreachable(format!("{sp} at {endpoint}: {e}")))?;
        if !status.is_success() {
            return Err(RelayError::Refused(format!("{sp} answered {status}: {}", String::from_utf8_lossy(&bytes))));
        }
        let answer: control_api::sp::Withdrawn = serde_json::from_slice(&bytes)
            .map_err(|e| RelayError::Refused(format!("{sp} answered a withdrawal with something else: {e}")))?;
        Ok(answer.dropped)
    }
}

impl AssistantServices for GatewayServices {
    fn location(&self) -> Option<String> {
        self.location.clone()
    }

    fn owner(&self) -> Option<String> {
        self.owner.clone()
    }

    fn network_credentials(&self, technology: AccessTechnology) -> Option<NetworkCredentials> {
        self.networks.iter().find(|n| n.technology() == technology).cloned()
    }

    fn resolve_sp(&self, device: Eui, access: AccessTechnology) -> BoxFuture<'_, Result<SpBinding, ResolveError>> {
        Box::pin(async move {
            let resolved = self.control.resolve_sp(device, access).await.map_err(resolve_error)?;
            self.store
                .record_resolved(device, access, resolved.sp.clone(), resolved.endpoint.clone(), resolved.public_key)
                .await
                .map_err(|e| ResolveError::Unreachable(format!("gateway store: {e}")))?;
            // No endpoint: the device could never reach its SP, and there is
            // nowhere to relay its key. Refused now, before the device commits.
            if resolved.endpoint.is_none() {
                return Err(no_endpoint(resolved.sp.as_str()));
            }
            Ok(SpBinding { sp: resolved.sp.to_string(), endpoint: resolved.endpoint, public_key: resolved.public_key })
        })
    }

    fn relay(&self, device: RelayedDevice) -> BoxFuture<'_, Result<(), RelayError>> {
        Box::pin(async move {
            let sp = device.sp_bound_id.sp();
            let Some(endpoint) = device.sp_endpoint.as_deref() else {
                return Err(RelayError::Unreachable(no_endpoint(sp.as_str()).to_string()));
            };
            let body = control_api::sp::DeviceReport {
                identifier: device.sp_bound_id.to_string(),
                device_id: Some(device.sp_bound_id.device().to_string()),
                public_key: hex::encode(device.public_key),
                relayed_by: Some(self.gateway_id.clone()),
            };
            let response = self
                .http
                .post(format!("{}{}", endpoint.trim_end_matches('/'), control_api::routes::SP_DEVICES))
                .timeout(self.relay_timeout)
                .json(&body)
                .send()
                .await
                .map_err(|e| RelayError::Unreachable(format!("{sp} at {endpoint}: {e}")))?;
            if response.status().is_success() {
                Ok(())
            } else {
                let status = response.status();
                let text = match control_api::http_client::read_body(response, SP_ANSWER_MAX).await {
                    Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                    Err(e) => e.to_string(),
                };
                Err(RelayError::Refused(format!("{sp} answered {status}: {text}")))
            }
        })
    }
}

/// The refusal for an SP the control server has no endpoint for: it names
/// the command that registers one.
fn no_endpoint(sp: &str) -> ResolveError {
    ResolveError::NoEndpoint { sp: sp.to_owned() }
}

/// What the phone half is told when the control server does not resolve a
/// device: the control server's own reason is kept, so the operator reads
/// why (no mapping, the SP said no) and not only that.
fn resolve_error(e: ControlError) -> ResolveError {
    match e {
        ControlError::UnknownDevice { device, message } => ResolveError::Unknown { device, reason: Some(message) },
        ControlError::SpRefused { device, code, message } => {
            ResolveError::Rejected { device, reason: Some(format!("{code}: {message}")) }
        }
        other => ResolveError::Unreachable(other.to_string()),
    }
}

#[cfg(test)]
mod resolve_error_tests {
    use super::*;

    #[test]
    fn the_control_servers_reason_reaches_the_refusal() {
        let device: Eui = "AC-DE-48-00-00-80".parse().unwrap();
        let message = "device AC-DE-48-00-00-80 has no mapping: add one (mapping add)".to_string();
        let unknown = resolve_error(ControlError::UnknownDevice { device, message });
        assert_eq!(
            unknown.to_string(),
            "no service provider is known for device AC-DE-48-00-00-80 (the control server: device AC-DE-48-00-00-80 has no mapping: add one (mapping add))"
        );
        let refused = resolve_error(ControlError::SpRefused { device, code: "sp_rejected".into(), message: "not ours".into() });
        assert!(refused.to_string().ends_with("(the control server: sp_rejected: not ours)"), "{refused}");
    }
}

#[cfg(test)]
mod sp_details_tests {
    use std::sync::{Arc, Mutex};

    use axum::routing::post;
    use axum::{Json, Router};

    use sp_bound_id::SpIdentity;

    use super::*;
    use crate::control::ControlServerConfig;

    /// Serves `router` on a loopback port; its base URL.
    async fn serve(router: Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        tokio::spawn(async move { axum::serve(listener, router).await });
        format!("http://{addr}")
    }

    /// A control server that resolves every device to `sp-one.example` with
    /// `endpoint` and key `[5; 32]`.
    async fn control_server(endpoint: Option<String>) -> String {
        let answer = serde_json::json!({
            "device_id": "AC-DE-48-00-00-80", "sp": "sp-one.example", "service_type": null, "source": "table",
            "validated_at": "2026-01-01T00:00:00Z", "identifier": null, "stale": false,
            "sp_endpoint": endpoint, "sp_public_key": hex::encode([5u8; 32]),
        });
        serve(Router::new().route(control_api::routes::RESOLVE, post(move || async move { Json(answer) }))).await
    }

    fn services(control_url: &str, dir: &tempfile::TempDir) -> GatewayServices {
        let control = ControlServer::new(ControlServerConfig::new(control_url, "gw-1", "secret-1")).expect("client");
        let store = GatewayStore::open(&dir.path().join("gw.db")).expect("store");
        GatewayServices::new(control, store)
    }

    #[tokio::test]
    async fn the_relay_goes_to_the_endpoint_resolve_gave() {
        let reports: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
        let seen = reports.clone();
        let sp = serve(Router::new().route(
            control_api::routes::SP_DEVICES,
            post(move |Json(report): Json<serde_json::Value>| async move {
                seen.lock().expect("lock").push(report);
                Json(serde_json::json!({}))
            }),
        ))
        .await;
        let dir = tempfile::tempdir().expect("tempdir");
        let services = services(&control_server(Some(sp.clone())).await, &dir);
        let device: Eui = "AC-DE-48-00-00-80".parse().expect("eui");

        let binding = services.resolve_sp(device, AccessTechnology::Wifi).await.expect("resolved");
        assert_eq!(binding, SpBinding { sp: "sp-one.example".into(), endpoint: Some(sp.clone()), public_key: Some([5; 32]) });
        let known = services.store.device(device).await.expect("read").expect("recorded");
        assert_eq!((known.sp_endpoint.as_deref(), known.sp_public_key), (Some(sp.as_str()), Some(hex::encode([5u8; 32]))));

        let id = SpBoundId::new(SpIdentity::new("sp-one.example").expect("sp"), device, AccessTechnology::Wifi).expect("id");
        let relayed = RelayedDevice { sp_bound_id: id.clone(), public_key: [9; 32], sp_endpoint: binding.endpoint };
        services.relay(relayed).await.expect("relayed");
        let reports = reports.lock().expect("lock").clone();
        assert_eq!(reports.len(), 1, "the SP at the resolved endpoint got the report");
        assert_eq!(reports[0]["identifier"], id.to_string());
        assert_eq!(reports[0]["public_key"], hex::encode([9u8; 32]));
    }

    #[tokio::test]
    async fn an_sp_without_an_endpoint_is_refused_at_resolve_naming_the_fix() {
        let dir = tempfile::tempdir().expect("tempdir");
        let services = services(&control_server(None).await, &dir);
        let device: Eui = "AC-DE-48-00-00-80".parse().expect("eui");
        let refused = services.resolve_sp(device, AccessTechnology::Wifi).await.expect_err("no endpoint");
        assert_eq!(refused, ResolveError::NoEndpoint { sp: "sp-one.example".into() });
        assert!(refused.to_string().contains("control-server sp add --identity sp-one.example --endpoint URL"), "{refused}");

        let id = SpBoundId::new(SpIdentity::new("sp-one.example").expect("sp"), device, AccessTechnology::Wifi).expect("id");
        let relay = services.relay(RelayedDevice { sp_bound_id: id.clone(), public_key: [9; 32], sp_endpoint: None }).await;
        assert!(matches!(&relay, Err(RelayError::Unreachable(why)) if why.contains("--endpoint")), "{relay:?}");
        let withdraw = services.withdraw(&id, &[9; 32], None).await;
        assert!(matches!(&withdraw, Err(RelayError::Unreachable(why)) if why.contains("--endpoint")), "{withdraw:?}");
    }
}
