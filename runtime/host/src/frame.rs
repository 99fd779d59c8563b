//! The frames of the link protocol between an assistant and a device.
//!
//! ```text
//!  assistant                                   device
//!      <------------------ Hello (id, access, sealed, nonce)
//!      Start (signed payload, assistant key, re-bind signature?) ---->
//!  run phone half   <== Item / Message frames ==>        run device half
//!      Close (phone half done) ---------------------------->
//!      <------------------ ReadyToCommit (SP-bound id, public key)
//!      Commit ---------------------------------------------->  one durable
//!      <------------------ Committed (generation)               transaction
//! ```
//!
//! Or, for an enrolled device, `RebindSp` instead of `Start`, answered by
//! `Rebound`; or `StatusRequest`, answered by `Status`: what the device
//! committed, signed by the device's own key (how an assistant whose link
//! broke after `Commit` learns the outcome). Failures either way carry a
//! [`WireFailure`] (stable codes).

use ed25519_dalek::{Signature as EdSignature, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::failure::WireFailure;
use crate::handover::HandoverItem;

/// Version of the link protocol; a peer that speaks another is refused.
/// Version 2 carries hand-over items (WIT `iot-enroll:enrollment@0.2.0`);
/// version 3 adds [`Frame::StatusRequest`] / [`Frame::Status`]; version 4:
/// [`RebindSp`] carries the new SP's endpoint and key (issue 12).
pub const PROTOCOL_VERSION: u16 = 4;

/// Everything that crosses the link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Frame {
    /// Device → assistant, first frame: who the device is and a fresh nonce
    /// that an authorized re-bind must sign.
    Hello(Hello),
    /// Assistant → device: the signed app (the device takes its half out of
    /// it after verifying it), and who is asking.
    Start(Start),
    /// Either way: one transport message between the halves.
    Message(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Either way: one hand-over item (phone → device; the device's
    /// identity device → phone).
    Item(HandoverItem),
    /// Assistant → device: the phone half has finished.
    Close,
    /// Device → assistant: the device half finished and staged this; nothing
    /// is written until the assistant says [`Frame::Commit`].
    ReadyToCommit(Enrolled),
    /// Assistant → device: the identity has been relayed; make it durable.
    Commit,
    /// Assistant → device: discard everything staged.
    Abort(WireFailure),
    /// Device → assistant: written durably and sealed.
    Committed { enrolled: Enrolled, generation: u64 },
    /// Device → assistant: the enrollment failed; the device is unchanged.
    Failed(WireFailure),
    /// Assistant → device, instead of [`Frame::Start`]: move this enrolled
    /// device to another service provider (only the SP part of its
    /// identifier changes; the device and assistant runtimes).
    RebindSp(RebindSp),
    /// Device → assistant: the re-bind is durable.
    Rebound { sp_bound_id: String, generation: u64 },
    /// Assistant → device, instead of [`Frame::Start`]: what did you commit?
    StatusRequest(StatusRequest),
    /// Device → assistant: what the device holds now.
    Status(DeviceStatus),
}

/// An assistant asks what the device committed. A sealed device answers
/// only the assistant it enrolled with (its key is on record), signed over
/// this connection's nonce ([`status_request_message`]); an unsealed one
/// answers anyone (it holds nothing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusRequest {
    pub assistant_key: [u8; 32],
    /// Signature over [`status_request_message`].
    pub signature: Signature,
    /// Fresh random bytes the device's answer must sign.
    pub challenge: [u8; 32],
}

/// What a device holds, as it answers a [`StatusRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceStatus {
    /// The committed identity; `None` if the device never committed one.
    pub enrolled: Option<Enrolled>,
    /// The store's generation (0 when provisioned).
    pub generation: u64,
    /// The assistant the device enrolled with.
    pub enrolled_by: Option<[u8; 32]>,
    /// With `enrolled`: the device's signature, by the key in `enrolled`,
    /// over [`status_proof_message`]: the device holds that key now.
    pub proof: Option<Signature>,
}

/// The bytes an assistant signs to ask a sealed device for its status.
pub fn status_request_message(device_id: &[u8], nonce: &[u8; 32], challenge: &[u8; 32]) -> Vec<u8> {
    let mut m = b"iot-enroll/status/v1\0".to_vec();
    m.extend_from_slice(&(device_id.len() as u16).to_be_bytes());
    m.extend_from_slice(device_id);
    m.extend_from_slice(nonce);
    m.extend_from_slice(challenge);
    m
}

/// The bytes a device signs with its own key to prove what it committed:
/// bound to the assistant's challenge, the generation and the identity.
pub fn status_proof_message(device_id: &[u8], challenge: &[u8; 32], generation: u64, enrolled: &Enrolled) -> Vec<u8> {
    let mut m = b"iot-enroll/status-proof/v1\0".to_vec();
    m.extend_from_slice(&(device_id.len() as u16).to_be_bytes());
    m.extend_from_slice(device_id);
    m.extend_from_slice(challenge);
    m.extend_from_slice(&generation.to_be_bytes());
    m.extend_from_slice(&(enrolled.sp_bound_id.len() as u16).to_be_bytes());
    m.extend_from_slice(enrolled.sp_bound_id.as_bytes());
    m.extend_from_slice(&enrolled.public_key);
    m
}

/// An authenticated request to change an enrolled device's service provider.
///
/// It carries the whole new binding: identity, endpoint and key. The device
/// replaces all three in one write, so a device can never be bound to the
/// new SP while still trusting the old SP's key or reporting to its
/// endpoint; an absent endpoint or key is stored as absent, never kept from
/// before. The signature covers all three.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebindSp {
    /// The new SP identity, in its text form.
    pub sp: String,
    /// Where the device reaches the new SP, as the control server gave it.
    pub sp_endpoint: Option<String>,
    /// The new SP's Ed25519 key, as the control server gave it.
    pub sp_public_key: Option<[u8; 32]>,
    /// The assistant's Ed25519 public key (must be the one that enrolled the device).
    pub assistant_key: [u8; 32],
    /// Signature over [`rebind_sp_message`] for this connection's nonce.
    pub signature: Signature,
}

/// The device's greeting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol: u16,
    /// Manufacturer device id, raw EUI-48/EUI-64 bytes.
    #[serde(with = "serde_bytes")]
    pub device_id: Vec<u8>,
    /// Access technology, in its text form.
    pub access: String,
    /// Whether the device is already enrolled and sealed.
    pub sealed: bool,
    /// Fresh random bytes for this connection.
    pub nonce: [u8; 32],
}

/// The assistant's request to enroll.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Start {
    /// The signed payload from the label (COSE_Sign1 bytes), unchanged: the
    /// device verifies it itself and runs the device half in it.
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
    /// The assistant's Ed25519 public key; recorded by the device as the
    /// assistant it enrolled with.
    pub assistant_key: [u8; 32],
    /// For a sealed device: the assistant's signature over
    /// [`rebind_message`], proving it is the assistant the device enrolled with.
    pub rebind: Option<Signature>,
}

/// An Ed25519 signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature(#[serde(with = "serde_bytes")] pub Vec<u8>);

/// What the device half produced: its SP-bound identifier and public key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrolled {
    pub sp_bound_id: String,
    pub public_key: [u8; 32],
}

/// The bytes an assistant signs to authorize re-binding a sealed device:
/// bound to this device and this connection's nonce, so it cannot be replayed.
pub fn rebind_message(device_id: &[u8], nonce: &[u8; 32]) -> Vec<u8> {
    let mut m = b"iot-enroll/rebind/v1\0".to_vec();
    m.extend_from_slice(&(device_id.len() as u16).to_be_bytes());
    m.extend_from_slice(device_id);
    m.extend_from_slice(nonce);
    m
}

/// The bytes an assistant signs to move a device to another service
/// provider: bound to the device, the connection's nonce and the whole new
/// binding (identity, endpoint, key), so none of them can be swapped on the
/// way. Every field is length-prefixed or tagged: no two requests sign the
/// same bytes.
pub fn rebind_sp_message(device_id: &[u8], nonce: &[u8; 32], request: &RebindSp) -> Vec<u8> {
    let mut m = b"iot-enroll/rebind-sp/v2\0".to_vec();
    m.extend_from_slice(&(device_id.len() as u16).to_be_bytes());
    m.extend_from_slice(device_id);
    m.extend_from_slice(nonce);
    m.extend_from_slice(&(request.sp.len() as u16).to_be_bytes());
    m.extend_from_slice(request.sp.as_bytes());
    match &request.sp_endpoint {
        Some(endpoint) => {
            m.push(1);
            m.extend_from_slice(&(endpoint.len() as u16).to_be_bytes());
            m.extend_from_slice(endpoint.as_bytes());
        }
        None => m.push(0),
    }
    match &request.sp_public_key {
        Some(key) => {
            m.push(1);
            m.extend_from_slice(key);
        }
        None => m.push(0),
    }
    m
}

/// Whether `signature` is `key`'s Ed25519 signature over `message`.
pub fn verify_signature(key: &[u8; 32], message: &[u8], signature: &[u8]) -> bool {
    let (Ok(key), Ok(sig)) = (VerifyingKey::from_bytes(key), EdSignature::from_slice(signature)) else {
        return false;
    };
    key.verify(message, &sig).is_ok()
}

/// A short name of a frame, for errors.
pub fn frame_name(frame: &Frame) -> String {
    match frame {
        Frame::Hello(_) => "Hello".into(),
        Frame::Start(_) => "Start".into(),
        Frame::Message(m) => format!("Message({} bytes)", m.len()),
        Frame::Item(item) => format!("Item({})", item.describe()),
        Frame::Close => "Close".into(),
        Frame::ReadyToCommit(_) => "ReadyToCommit".into(),
        Frame::Commit => "Commit".into(),
        Frame::Abort(f) => format!("Abort({f})"),
        Frame::Committed { .. } => "Committed".into(),
        Frame::Failed(f) => format!("Failed({f})"),
        Frame::RebindSp(_) => "RebindSp".into(),
        Frame::Rebound { .. } => "Rebound".into(),
        Frame::StatusRequest(_) => "StatusRequest".into(),
        Frame::Status(_) => "Status".into(),
    }
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rebind_signature_covers_the_whole_new_binding() {
        let request = RebindSp {
            sp: "sp-two.example".into(),
            sp_endpoint: Some("http://127.0.0.1:9002".into()),
            sp_public_key: Some([2; 32]),
            assistant_key: [9; 32],
            signature: Signature(Vec::new()),
        };
        let signed = rebind_sp_message(b"dev", &[0; 32], &request);
        let other_endpoint = RebindSp { sp_endpoint: Some("http://evil.example".into()), ..request.clone() };
        let other_key = RebindSp { sp_public_key: Some([1; 32]), ..request.clone() };
        let no_key = RebindSp { sp_public_key: None, ..request.clone() };
        let no_endpoint = RebindSp { sp_endpoint: None, ..request.clone() };
        for changed in [other_endpoint, other_key, no_key, no_endpoint] {
            assert_ne!(rebind_sp_message(b"dev", &[0; 32], &changed), signed, "{changed:?}");
        }
        // Where one field ends and the next begins is fixed by the encoding.
        let shifted = RebindSp { sp: "sp-two.exampleh".into(), sp_endpoint: Some("ttp://127.0.0.1:9002".into()), ..request };
        assert_ne!(rebind_sp_message(b"dev", &[0; 32], &shifted), signed);
    }
}
