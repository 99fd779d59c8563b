//! The device side of a status request: what this device committed, told
//! to the assistant that enrolled it.
//!
//! An assistant whose link broke after it sent `Commit` does not know
//! whether the device wrote the enrollment; the device's store is the truth.
//! The assistant asks with a [`StatusRequest`] after `Hello`; a sealed
//! device answers only the assistant on record (signature over this
//! connection's nonce, so a recorded request cannot be replayed), and signs
//! its answer with its own private key over the assistant's challenge: the
//! assistant learns that a device holding that key committed that identity,
//! not merely that something on the link says so. An unsealed device holds
//! nothing and answers anyone, unsigned.

use ed25519_dalek::{Signer, SigningKey};
use enrollment_host::frame::{
    DeviceStatus, Enrolled, Signature, StatusRequest, status_proof_message, status_request_message, verify_signature,
};
use sp_bound_id::Eui;

use crate::failure::DeviceFailure;
use crate::store::DeviceState;

/// Checks `request` against the assistant on record and answers it; `key`
/// is the device's private key (`None` before its first enrollment).
pub(crate) fn answer(
    device: &Eui,
    state: &DeviceState,
    key: Option<&SigningKey>,
    nonce: &[u8; 32],
    request: &StatusRequest,
) -> Result<DeviceStatus, DeviceFailure> {
    let (Some(id), Some(public_key)) = (&state.sp_bound_id, state.public_key) else {
        return Ok(DeviceStatus { enrolled: None, generation: state.generation, enrolled_by: None, proof: None });
    };
    if state.sealed {
        let message = status_request_message(device.as_bytes(), nonce, &request.challenge);
        let authorized = state.enrolled_by == Some(request.assistant_key)
            && verify_signature(&request.assistant_key, &message, &request.signature.0);
        if !authorized {
            return Err(DeviceFailure::BadStatusAuthorization);
        }
    }
    let enrolled = Enrolled { sp_bound_id: id.to_string(), public_key };
    let key = key.ok_or_else(|| DeviceFailure::Store("the device's private key is missing from its store".into()))?;
    if key.verifying_key().to_bytes() != public_key {
        return Err(DeviceFailure::Store("the stored private key does not match the stored public key".into()));
    }
    let proof = key.sign(&status_proof_message(device.as_bytes(), &request.challenge, state.generation, &enrolled));
    Ok(DeviceStatus {
        enrolled: Some(enrolled),
        generation: state.generation,
        enrolled_by: state.enrolled_by,
        proof: Some(Signature(proof.to_vec())),
    })
}
