//! What an operator does to one device through the gateway: re-bind it now,
//! or reset (forget) it.
//!
//! A re-bind tells the device its current SP at once instead of waiting for
//! the retry interval (after the device was repaired, moved, or its link
//! address changed and the record was fixed). A reset is for a device that
//! leaves this gateway or was factory-reset: the gateway withdraws its key at
//! the SP first (a device that no longer holds the key must not be trusted by
//! it), then forgets the record and any enrollment in doubt of it. If the SP
//! cannot be told, nothing is forgotten and the error says so: a reset never
//! leaves the SP holding a key the gateway no longer knows about.

use serde::Serialize;

use enrollment_assistant::rebind::RebindReport;
use sp_bound_id::Eui;

use crate::store::DeviceStatus;
use crate::{Gateway, GatewayError};

/// Why an operator's request about one device was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceAdminError {
    #[error("device {0} is not known to this gateway (gateway devices lists them)")]
    Unknown(Eui),
    #[error("device {device} is not enrolled through this gateway ({reason}); enroll it first (gateway enroll)")]
    NotEnrolled { device: Eui, reason: &'static str },
    #[error("the SP could not be told to drop device {device}'s key ({cause}); nothing was forgotten, try again when the SP answers")]
    SpNotTold { device: Eui, cause: String },
    #[error(transparent)]
    Gateway(#[from] GatewayError),
}

/// What a reset did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResetReport {
    pub device: Eui,
    /// Reports the SP dropped (0 if it did not hold the key, or the device
    /// was never enrolled here).
    pub withdrawn_at_sp: usize,
    /// An enrollment in doubt of the device was forgotten too.
    pub in_doubt_forgotten: bool,
}

impl Gateway {
    /// Tells the enrolled `device` its current SP now.
    pub async fn rebind_device(&self, device: Eui) -> Result<RebindReport, DeviceAdminError> {
        let _one_at_a_time = self.rebinding.lock().await;
        let record = self.store.device(device).await.map_err(GatewayError::from)?.ok_or(DeviceAdminError::Unknown(device))?;
        if record.state != DeviceStatus::Enrolled {
            return Err(DeviceAdminError::NotEnrolled { device, reason: "only known from the control server" });
        }
        let (Some(id), Some(addr)) = (record.identifier.clone(), record.link_addr.clone()) else {
            return Err(DeviceAdminError::NotEnrolled { device, reason: "no identifier or link address on record" });
        };
        let report = self.rebind_one(&id, &record.sp_endpoint, &record.sp_public_key, &addr).await?;
        self.store.rebind_done(report.sp_bound_id.clone(), report.generation).await.map_err(GatewayError::from)?;
        self.stream_state.send_modify(|s| s.rebinds_done += 1);
        Ok(report)
    }

    /// Forgets `device`: its key withdrawn at its SP first, then its record
    /// and any enrollment in doubt of it.
    pub async fn reset_device(&self, device: Eui) -> Result<ResetReport, DeviceAdminError> {
        let record = self.store.device(device).await.map_err(GatewayError::from)?;
        let notes: Vec<_> =
            self.store.in_doubt().await.map_err(GatewayError::from)?.into_iter().filter(|n| n.device_id == device).collect();
        if record.is_none() && notes.is_empty() {
            return Err(DeviceAdminError::Unknown(device));
        }
        let mut keys = Vec::new();
        if let Some(r) = &record
            && r.state == DeviceStatus::Enrolled
            && let (Some(id), Some(hex_key)) = (&r.identifier, &r.public_key)
        {
            let mut key = [0u8; 32];
            if hex::decode_to_slice(hex_key, &mut key).is_ok() {
                keys.push((id.clone(), key, r.sp_endpoint.clone()));
            }
        }
        // A note's key went to the endpoint noted with it (its SP may have changed since).
        keys.extend(notes.iter().map(|n| (n.identifier.clone(), n.public_key, n.sp_endpoint.clone())));
        let mut withdrawn_at_sp = 0;
        for (id, key, endpoint) in &keys {
            let Some(services) = &self.services else {
                return Err(DeviceAdminError::SpNotTold { device, cause: "the gateway was built without its SP client".into() });
            };
            withdrawn_at_sp += services
                .withdraw(id, key, endpoint.as_deref())
                .await
                .map_err(|e| DeviceAdminError::SpNotTold { device, cause: e.to_string() })?;
        }
        self.store.forget(device).await.map_err(GatewayError::from)?;
        tracing::info!(%device, withdrawn_at_sp, "device reset: forgotten by the gateway");
        Ok(ResetReport { device, withdrawn_at_sp, in_doubt_forgotten: !notes.is_empty() })
    }
}
