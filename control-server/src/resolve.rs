//! Resolve: a gateway asks which SP a device belongs to.
//!
//! While the association is fresher than the policy's `max_age`, the answer
//! comes from the mapping table without calling anyone. Otherwise the SP
//! validates it ([`crate::sp_client`]); a confirmation refreshes it, a
//! redirect that ends in a confirmation moves the device to the new SP (one
//! transaction: mapping, history, outbox for the device's other gateways),
//! a rejection or failure is a specific error. An unreachable SP is an error
//! unless the operator's policy allows the table's stale answer, which is
//! then marked `"stale": true`. In full-identifier mode the answer also
//! carries the device's complete SP-bound identifier. Every answer carries
//! what the device needs to talk to its SP, the SP's endpoint and
//! device-facing key (issue 12): the gateway relays to that endpoint and
//! hands both to the device, so no gateway keeps a list of SP addresses.

use std::str::FromStr;

use control_api::gateway::{ResolveRequest, ResolveResponse, Source};
use control_api::sp::ValidateRequest;
use sp_bound_id::{AccessTechnology, Eui, SpBoundId, SpIdentity};

use crate::clock;
use crate::error::ApiError;
use crate::gateway_auth::AuthenticatedGateway;
use crate::metrics::ResolveSource;
use crate::state::ServerState;
use crate::store::{ChangeError, ChangeSet};

/// Answers one resolve request for an authenticated gateway (counted in
/// [`crate::metrics`]: outcome, source, time).
pub async fn resolve(
    state: &ServerState,
    gateway: &AuthenticatedGateway,
    request: ResolveRequest,
) -> Result<ResolveResponse, ApiError> {
    let started = std::time::Instant::now();
    let mut source = ResolveSource::None;
    let answer = resolve_from(state, gateway, request, &mut source).await;
    state.metrics.resolved(&answer, source, started.elapsed());
    answer
}

/// [`resolve`], noting in `source` where the answer came from.
async fn resolve_from(
    state: &ServerState,
    gateway: &AuthenticatedGateway,
    request: ResolveRequest,
    source: &mut ResolveSource,
) -> Result<ResolveResponse, ApiError> {
    let eui = Eui::from_str(&request.device_id)
        .map_err(|e| ApiError::InvalidDeviceId(format!("device_id {:?}: {e}", request.device_id)))?;
    let device_id = eui.to_string();
    let access = request
        .access
        .as_deref()
        .map(|a| AccessTechnology::from_str(a).map_err(|e| ApiError::MalformedRequest(format!("access: {e}"))))
        .transpose()?;
    if let Some(access) = access
        && !access.accepts(eui.kind())
    {
        return Err(ApiError::InvalidDeviceId(format!("{access} devices are not identified by an {}", eui.kind())));
    }
    if let Some(subscription) = &request.subscription
        && subscription != &gateway.id
    {
        return Err(ApiError::NotAuthorized(format!(
            "subscription {subscription:?} is not the authenticated gateway {:?}",
            gateway.id
        )));
    }

    let (row, cached) = state
        .mapping
        .lookup(&device_id)
        .await?
        .ok_or_else(|| ApiError::UnknownDevice(format!("device {device_id} is not in the mapping table")))?;
    *source = if cached { ResolveSource::Cache } else { ResolveSource::Table };
    let now = clock::now_ms();
    let max_age_ms = i64::try_from(state.config.policy.max_age().as_millis()).unwrap_or(i64::MAX);
    let fresh = now.saturating_sub(row.validated_at) < max_age_ms;

    let (sp, source, validated_at, stale) = if fresh {
        (row.sp.clone(), Source::Table, row.validated_at, false)
    } else {
        *source = ResolveSource::Sp;
        let ask = ValidateRequest {
            device_id: device_id.clone(),
            service_type: request.service_type.clone().or_else(|| row.service_type.clone()),
            gateway: gateway.id.clone(),
            geo: request.geo,
        };
        match state.sp_client.validate_chain(&state.store, &row.sp, &ask).await {
            Ok(confirmed) => {
                if confirmed.sp != row.sp {
                    let set = ChangeSet {
                        message_id: format!("resolve-{}", crate::unsolicited::random_hex(8)),
                        changed_by: format!("redirect:{}", confirmed.chain.join(">")),
                        at: now,
                        new_sp: confirmed.sp.clone(),
                        service_type: None,
                        devices: vec![device_id.clone()],
                        nonce: None,
                        prune_nonces_before: 0,
                        push: state.config.push.rule(),
                    };
                    state.mapping.apply_changes(&set, |_| Ok(()), &state.notifier).await.map_err(|e| match e {
                        ChangeError::Store(e) => ApiError::from(e),
                        other => ApiError::Internal(other.to_string()),
                    })?;
                }
                state.store.mark_validated(&device_id, now, access.map(AccessTechnology::as_str)).await?;
                state.mapping.invalidate([device_id.as_str()]);
                (confirmed.sp, Source::Sp, now, false)
            }
            Err(e) if e.is_unreachable() && state.config.policy.allow_stale_when_sp_down => {
                tracing::warn!(device = %device_id, error = %e, "SP unreachable; answering from the table by policy");
                *source = ResolveSource::Stale;
                (row.sp.clone(), Source::Table, row.validated_at, true)
            }
            Err(e) => return Err(e.into()),
        }
    };
    state.mapping.record_gateway(&row, &gateway.id).await?;

    let identifier = if request.full_identifier {
        let access = access.or_else(|| row.access.as_deref().and_then(|a| AccessTechnology::from_str(a).ok()));
        match access {
            Some(access) => {
                let sp_identity = SpIdentity::new(&sp)
                    .map_err(|e| ApiError::Internal(format!("stored SP identity {sp:?} is invalid: {e}")))?;
                let id = SpBoundId::new(sp_identity, eui, access)
                    .map_err(|e| ApiError::InvalidDeviceId(format!("cannot build the identifier: {e}")))?;
                Some(id.to_string())
            }
            None => None,
        }
    } else {
        None
    };

    // What the device needs to reach its SP: its endpoint and device-facing
    // key, as registered (`control-server sp add --endpoint`).
    let record = state.store.sp(&sp).await?.ok_or_else(|| {
        ApiError::UnregisteredTargetSp(format!(
            "device {device_id} is mapped to SP {sp:?}, which is not registered: register it (control-server sp add --identity {sp} --endpoint URL …)"
        ))
    })?;
    Ok(ResolveResponse {
        sp_endpoint: record.endpoint.clone(),
        sp_public_key: Some(hex::encode(record.device_key())),
        device_id,
        sp,
        service_type: row.service_type.clone(),
        source,
        validated_at: clock::rfc3339(validated_at),
        identifier,
        stale,
    })
}
