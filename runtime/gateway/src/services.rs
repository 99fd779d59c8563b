//! What a gateway offers the phone halves it runs: the `assistant` capability
//! backed by the control server and the SP networks.
//!
//! `resolve-sp` asks the control server (and records the answer in the
//! gateway store: a new device gets its identifier, a known one has only its
//! SP part changed); `relay` posts the enrolled device's identifier and public
//! key to its service provider's endpoint. Location, owner and the network
//! credentials handed to devices come from the gateway's configuration.
//! An SP's answer to a relay is read up to [`SP_ANSWER_MAX`] bytes, and an
//! HTTP redirect from it is a refusal, not followed.

use std::collections::HashMap;
use std::time::Duration;

use futures::future::BoxFuture;

use super::control::{ControlError, ControlServer};
use super::store::GatewayStore;
use enrollment_assistant::NetworkCredentials;
use sp_bound_id::{AccessTechnology, Eui, SpBoundId, SpIdentity};
use enrollment_assistant::{AssistantServices, RelayError, RelayedDevice, ResolveError, SpBinding};

/// Most bytes of an SP's answer to a relay that are read (only its status
/// counts; the text goes into the error).
pub const SP_ANSWER_MAX: usize = 4 * 1024;

/// The gateway's assistant services.
pub struct GatewayServices {
    pub control: ControlServer,
    pub store: GatewayStore,
    /// Where each SP network accepts device reports (`POST {url}/v1/devices`).
    pub sp_endpoints: HashMap<SpIdentity, String>,
    pub location: Option<String>,
    pub owner: Option<String>,
    pub networks: Vec<NetworkCredentials>,
    /// This gateway's id, sent with relays.
    pub gateway_id: String,
    pub relay_timeout: Duration,
    http: reqwest::Client,
}

impl GatewayServices {
    pub fn new(control: ControlServer, store: GatewayStore, sp_endpoints: HashMap<SpIdentity, String>) -> Self {
        let gateway_id = control.config().gateway_id.clone();
        Self {
            http: control.http().clone(),
            control,
            store,
            sp_endpoints,
            location: None,
            owner: None,
            networks: Vec::new(),
            gateway_id,
            relay_timeout: Duration::from_secs(5),
        }
    }
}

impl GatewayServices {
    /// Tells the SP of `identifier` to drop `public_key`: it was relayed,
    /// and the device did not commit it. An SP that does not hold it
    /// (the relay never arrived) answers that nothing was dropped: done too.
    pub async fn withdraw(&self, identifier: &SpBoundId, public_key: &[u8; 32]) -> Result<usize, RelayError> {
        let sp = identifier.sp();
        let Some(endpoint) = self.sp_endpoints.get(sp) else {
            return Err(RelayError::Unreachable(format!("no endpoint configured for service provider {sp}: add it to [sp_endpoints] of the gateway's configuration")));
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
            let sp = self.control.resolve(device, access).await.map_err(resolve_error)?;
            self.store
                .record_resolved(device, access, sp.clone())
                .await
                .map_err(|e| ResolveError::Unreachable(format!("gateway store: {e}")))?;
            let endpoint = self.sp_endpoints.get(&sp).cloned();
            Ok(SpBinding { sp: sp.to_string(), endpoint, public_key: None })
        })
    }

    fn relay(&self, device: RelayedDevice) -> BoxFuture<'_, Result<(), RelayError>> {
        Box::pin(async move {
            let sp = device.sp_bound_id.sp();
            let Some(endpoint) = self.sp_endpoints.get(sp) else {
                return Err(RelayError::Unreachable(format!("no endpoint configured for service provider {sp}: add it to [sp_endpoints] of the gateway's configuration")));
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
