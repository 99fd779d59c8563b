//! Asking a device what it committed.
//!
//! The two-phase commit of an enrollment ([`crate::AssistantRuntime`]) has
//! one window the assistant cannot see through: the link breaks after it
//! sent `Commit` and before `Committed` arrived. The device's store is the
//! truth, so the assistant asks it:
//!
//! ```text
//!  assistant                                     device
//!      <------------------ Hello (id, access, sealed, nonce)
//!      StatusRequest (assistant key, signature, challenge) --->
//!      <------------------ Status (identity, generation, enrolled-by, proof)
//! ```
//!
//! A sealed device answers only the assistant it enrolled with; the answer
//! is signed by the key the device committed ([`status_proof_message`]), so
//! a device that says "I hold this key" is shown to hold it. Nothing is
//! written on the device.

use std::time::Duration;

use ed25519_dalek::{Signer, SigningKey};
use enrollment_host::failure::WireFailure;
use enrollment_host::frame::{
    Enrolled, Frame, PROTOCOL_VERSION, Signature, StatusRequest, frame_name, status_proof_message,
    status_request_message, verify_signature,
};
use enrollment_host::link::{Link, LinkFailure};
use sp_bound_id::{Eui, SpBoundId};

/// Why a status request got no answer to trust.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StatusError {
    #[error("link failed while {during}: {failure}")]
    Link { during: &'static str, failure: LinkFailure },
    #[error("link protocol error: {0}")]
    Protocol(String),
    #[error("the device refused the status request: {0}")]
    Device(WireFailure),
    #[error("the device's status is not signed by the key it names")]
    BadProof,
}

/// What the device holds, verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedStatus {
    pub device: Eui,
    pub sealed: bool,
    /// The committed identity and key; `None` if the device never enrolled.
    pub enrolled: Option<(SpBoundId, [u8; 32])>,
    pub generation: u64,
    /// The assistant the device enrolled with.
    pub enrolled_by: Option<[u8; 32]>,
}

impl CommittedStatus {
    /// Whether the device committed exactly this key, enrolled by `assistant`.
    pub fn holds(&self, public_key: &[u8; 32], assistant: &[u8; 32]) -> bool {
        self.sealed
            && self.enrolled.as_ref().is_some_and(|(_, key)| key == public_key)
            && self.enrolled_by.as_ref() == Some(assistant)
    }
}

/// Assistant side: asks the device at the other end of `link` what it
/// committed, as the assistant with `identity`. Two waits of `timeout` at most.
pub async fn ask_status(mut link: Link, identity: &SigningKey, timeout: Duration) -> Result<CommittedStatus, StatusError> {
    link.end_session_at(timeout * 2, enrollment_host::link::DEFAULT_SEND_WAIT);
    let hello = match recv(&mut link, timeout, "waiting for the device's Hello").await? {
        Frame::Hello(hello) => hello,
        Frame::Failed(f) => return Err(StatusError::Device(f)),
        other => return Err(StatusError::Protocol(format!("expected Hello, got {}", frame_name(&other)))),
    };
    if hello.protocol != PROTOCOL_VERSION {
        return Err(StatusError::Protocol(format!("device speaks link protocol {}", hello.protocol)));
    }
    let device = Eui::from_bytes(&hello.device_id).map_err(|e| StatusError::Protocol(format!("device id: {e}")))?;
    let mut challenge = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut challenge);
    let signature = identity.sign(&status_request_message(&hello.device_id, &hello.nonce, &challenge));
    let request = StatusRequest {
        assistant_key: identity.verifying_key().to_bytes(),
        signature: Signature(signature.to_vec()),
        challenge,
    };
    link.tx
        .send(Frame::StatusRequest(request))
        .await
        .map_err(|failure| StatusError::Link { during: "sending StatusRequest", failure })?;
    let status = match recv(&mut link, timeout, "waiting for Status").await? {
        Frame::Status(status) => status,
        Frame::Failed(f) => return Err(StatusError::Device(f)),
        other => return Err(StatusError::Protocol(format!("expected Status, got {}", frame_name(&other)))),
    };
    let enrolled = match (&status.enrolled, &status.proof) {
        (None, _) => None,
        (Some(enrolled), Some(proof)) => {
            let message = status_proof_message(&hello.device_id, &challenge, status.generation, enrolled);
            if !verify_signature(&enrolled.public_key, &message, &proof.0) {
                return Err(StatusError::BadProof);
            }
            Some(parse(enrolled, &device)?)
        }
        (Some(_), None) => return Err(StatusError::BadProof),
    };
    Ok(CommittedStatus {
        device,
        sealed: hello.sealed,
        enrolled,
        generation: status.generation,
        enrolled_by: status.enrolled_by,
    })
}

fn parse(enrolled: &Enrolled, device: &Eui) -> Result<(SpBoundId, [u8; 32]), StatusError> {
    let id: SpBoundId = enrolled
        .sp_bound_id
        .parse()
        .map_err(|e| StatusError::Protocol(format!("identifier in Status: {e}")))?;
    if id.device() != device {
        return Err(StatusError::Protocol(format!("Status names device {}, the link's Hello {device}", id.device())));
    }
    Ok((id, enrolled.public_key))
}

async fn recv(link: &mut Link, timeout: Duration, during: &'static str) -> Result<Frame, StatusError> {
    link.rx.recv_within(timeout).await.map_err(|failure| StatusError::Link { during, failure })
}
