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
//!      RebindSp (new SP, its endpoint and key,          verify, one durable write
//!                assistant key, signature) ------->
//!      <------------------ Rebound (new identifier, generation)
//! ```
//!
//! The device accepts it only from the assistant it enrolled with (its public
//! key is on record), only with a signature over this connection's fresh
//! nonce, the device id and the new binding — SP identity, endpoint and SP
//! key ([`rebind_sp_message`]) — so a recorded request cannot be replayed and
//! a request for one SP cannot be turned into another or given another key.
//! The write is one transaction on the device that replaces all three: the
//! device never holds the new SP's identity with the old SP's key.

use std::time::Duration;

use ed25519_dalek::{Signer, SigningKey};
use enrollment_host::failure::{FailureCode, WireFailure};
use enrollment_host::frame::{Frame, PROTOCOL_VERSION, RebindSp, Signature, frame_name, rebind_sp_message};
use enrollment_host::link::{Link, LinkFailure};
use sp_bound_id::{Eui, SpBoundId, SpIdentity};

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
    Device(WireFailure),
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

/// The SP a device is moved to, with what the device needs to talk to it
/// (as the control server gave them; `None` is sent as none, and the device
/// then holds none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSp {
    pub sp: SpIdentity,
    pub endpoint: Option<String>,
    pub public_key: Option<[u8; 32]>,
}

/// Assistant side: moves the device at the other end of `link` to `new`,
/// signing with the assistant's identity key.
pub async fn rebind_sp(
    mut link: Link,
    identity: &SigningKey,
    new: &NewSp,
    timeout: Duration,
) -> Result<RebindReport, RebindError> {
    let new_sp = &new.sp;
    // Two waits of `timeout` at most, and no more for the whole exchange.
    link.end_session_at(timeout * 2, enrollment_host::link::DEFAULT_SEND_WAIT);
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
        let _ = link.tx.send_last_word(Frame::Abort(WireFailure::new(FailureCode::NotEnrolled, "nothing to re-bind"))).await;
        return Err(RebindError::NotEnrolled);
    }
    let mut request = RebindSp {
        sp: new_sp.to_string(),
        sp_endpoint: new.endpoint.clone(),
        sp_public_key: new.public_key,
        assistant_key: identity.verifying_key().to_bytes(),
        signature: Signature(Vec::new()),
    };
    request.signature = Signature(identity.sign(&rebind_sp_message(&hello.device_id, &hello.nonce, &request)).to_vec());
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

async fn recv(link: &mut Link, timeout: Duration, during: &'static str) -> Result<Frame, RebindError> {
    link.rx.recv_within(timeout).await.map_err(|failure| RebindError::Link { during, failure })
}
