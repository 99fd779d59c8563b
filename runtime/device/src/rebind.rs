//! The device side of moving an enrolled device to another service provider.
//!
//! Only the SP part of the identifier changes (US 2017/0257341, claims 1 and
//! 8), and only at the request of the assistant the device enrolled with: its
//! public key is on record, and the request must carry its signature over
//! this connection's fresh nonce, the device id and the new binding — SP,
//! endpoint and SP key ([`rebind_sp_message`]) — so a recorded request cannot
//! be replayed and a request for one SP cannot be turned into another, nor
//! given another SP's key. The write is one transaction that replaces all
//! three ([`crate::store::DeviceStore::rebind_sp`]): a re-bound device never
//! keeps the old SP's endpoint or key.

use enrollment_host::frame::{Enrolled, RebindSp, rebind_sp_message, verify_signature};
use enrollment_host::handover::{HandoverItem, SpBinding};
use sp_bound_id::{Eui, SpBoundId, SpIdentity};

use crate::failure::DeviceFailure;
use crate::store::DeviceState;

/// Device side: checks that `request` comes from the assistant on record and
/// is signed for this connection, and returns the identifier to store (the
/// endpoint and key to store with it are the request's, checked here like a
/// hand-over's service-provider item).
pub(crate) fn authorize(
    device: &Eui,
    state: &DeviceState,
    nonce: &[u8; 32],
    request: &RebindSp,
) -> Result<SpBoundId, DeviceFailure> {
    let (Some(current), Some(enrolled_by)) = (&state.sp_bound_id, state.enrolled_by) else {
        return Err(DeviceFailure::Protocol("a re-bind needs an enrolled device".into()));
    };
    if !state.sealed {
        return Err(DeviceFailure::Protocol("a re-bind needs a sealed device".into()));
    }
    let message = rebind_sp_message(device.as_bytes(), nonce, request);
    if enrolled_by != request.assistant_key || !verify_signature(&request.assistant_key, &message, &request.signature.0) {
        return Err(DeviceFailure::BadRebindAuthorization);
    }
    let binding = SpBinding {
        sp: request.sp.clone(),
        endpoint: request.sp_endpoint.clone(),
        public_key: request.sp_public_key,
    };
    HandoverItem::ServiceProvider(binding)
        .check()
        .map_err(|e| DeviceFailure::Protocol(format!("new SP binding: {e}")))?;
    let sp = SpIdentity::new(&request.sp).map_err(|e| DeviceFailure::Protocol(format!("new SP: {e}")))?;
    Ok(current.with_sp(sp))
}

/// The identifier and key a re-bound device now holds, as reported.
pub(crate) fn enrolled(id: &SpBoundId, state: &DeviceState) -> Enrolled {
    Enrolled { sp_bound_id: id.to_string(), public_key: state.public_key.unwrap_or_default() }
}
