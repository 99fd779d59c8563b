//! Moving an enrolled device to another service provider.
//!
//! When a device changes hands (sold on, an SP merger, a redirect found by the
//! control server), only the SP part of its identifier changes: the
//! manufacturer id, access technology, key pair and configuration stay (US
//! 2017/0257341, claims 1 and 8). Running the whole enrollment application
//! again for that would need the label and the phone half; instead the
//! assistant that enrolled the device sends one [`Frame::RebindSp`] after the
//! device's `Hello`:
//!
//! ```text
//!  assistant (gateway)                           device
//!      <------------------ Hello (id, access, sealed, nonce)
//!      RebindSp (new SP, assistant key, signature) --->  verify, one durable write
//!      <------------------ Rebound (new identifier, generation)
//! ```
//!
//! The device accepts it only from the assistant it enrolled with (its public
//! key is on record), only with a signature over this connection's fresh
//! nonce, the device id and the new SP ([`rebind_sp_message`]), so a recorded
//! request cannot be replayed and a request for one SP cannot be turned into
//! another. The write is one transaction ([`DeviceStore::rebind_sp`]).

use std::time::Duration;

use ed25519_dalek::{Signer, SigningKey};

use crate::device_store::DeviceState;
use crate::identifier::{Eui, SpBoundId, SpIdentity};
use crate::link::{
    DeviceFailure, Enrolled, Frame, Link, LinkFailure, PROTOCOL_VERSION, RebindSp, Signature, frame_name,
    rebind_sp_message,
};

/// Why an SP re-bind did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RebindError {
    #[error("link failed while {during}: {failure}")]
    Link { during: &'static str, failure: LinkFailure },
    #[error("link protocol error: {0}")]
    Protocol(String),
    #[error("the device is not enrolled, so there is no identifier to re-bind")]
    NotEnrolled,
    #[error("the device refused the re-bind: {0}")]
    Device(DeviceFailure),
    #[error("the device answered with identifier {got}, expected {expected}")]
    Mismatch { expected: String, got: String },
}

/// What a re-bind changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebindReport {
    pub device: Eui,
    pub sp_bound_id: SpBoundId,
    pub generation: u64,
}

/// Assistant side: moves the device at the other end of `link` to `new_sp`,
/// signing with the assistant's identity key.
pub async fn rebind_sp(
    mut link: Link,
    identity: &SigningKey,
    new_sp: &SpIdentity,
    timeout: Duration,
) -> Result<RebindReport, RebindError> {
    let hello = match recv(&mut link, timeout, "waiting for the device's Hello").await? {
        Frame::Hello(hello) => hello,
        Frame::Failed(f) => return Err(RebindError::Device(f)),
        other => return Err(RebindError::Protocol(format!("expected Hello, got {}", frame_name(&other)))),
    };
    if hello.protocol != PROTOCOL_VERSION {
        return Err(RebindError::Protocol(format!("device speaks link protocol {}", hello.protocol)));
    }
    let device = Eui::from_bytes(&hello.device_id).map_err(|e| RebindError::Protocol(format!("device id: {e}")))?;
    if !hello.sealed {
        let _ = link.tx.send(Frame::Abort { reason: "not enrolled; nothing to re-bind".into() }).await;
        return Err(RebindError::NotEnrolled);
    }
    let signature = identity.sign(&rebind_sp_message(&hello.device_id, &hello.nonce, new_sp.as_str()));
    let request = RebindSp {
        sp: new_sp.to_string(),
        assistant_key: identity.verifying_key().to_bytes(),
        signature: Signature(signature.to_vec()),
    };
    link.tx
        .send(Frame::RebindSp(request))
        .await
        .map_err(|failure| RebindError::Link { during: "sending RebindSp", failure })?;
    match recv(&mut link, timeout, "waiting for Rebound").await? {
        Frame::Rebound { sp_bound_id, generation } => {
            let id: SpBoundId = sp_bound_id
                .parse()
                .map_err(|e| RebindError::Protocol(format!("identifier in Rebound: {e}")))?;
            if id.sp() != new_sp || id.device() != &device {
                return Err(RebindError::Mismatch {
                    expected: format!("{new_sp}/…/{device}"),
                    got: sp_bound_id,
                });
            }
            Ok(RebindReport { device, sp_bound_id: id, generation })
        }
        Frame::Failed(f) => Err(RebindError::Device(f)),
        other => Err(RebindError::Protocol(format!("expected Rebound, got {}", frame_name(&other)))),
    }
}

/// Device side: checks that `request` comes from the assistant on record and
/// is signed for this connection, and returns the identifier to store.
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
    let message = rebind_sp_message(device.as_bytes(), nonce, &request.sp);
    if enrolled_by != request.assistant_key || !crate::enroll::verify(&request.assistant_key, &message, &request.signature.0)
    {
        return Err(DeviceFailure::BadRebindAuthorization);
    }
    let sp = SpIdentity::new(&request.sp).map_err(|e| DeviceFailure::Protocol(format!("new SP: {e}")))?;
    Ok(current.with_sp(sp))
}

/// The identifier and key a re-bound device now holds, as reported.
pub(crate) fn enrolled(id: &SpBoundId, state: &DeviceState) -> Enrolled {
    Enrolled { sp_bound_id: id.to_string(), public_key: state.public_key.unwrap_or_default() }
}

async fn recv(link: &mut Link, timeout: Duration, during: &'static str) -> Result<Frame, RebindError> {
    link.rx.recv_within(timeout).await.map_err(|failure| RebindError::Link { during, failure })
}
