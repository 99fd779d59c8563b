//! The `device` capability: what a device offers its device half.
//!
//! Nothing the device half does is written as it happens. Every call stages a
//! value in [`Staged`]; the enrollment logic commits the whole set in one
//! durable transaction only when the half has returned successfully, asked
//! to be sealed, and the assistant has confirmed. A half that traps, loops,
//! lies or is cut off leaves the device exactly as it was.
//!
//! The host does all validation and all text: the guest passes bytes, and the
//! host checks UTF-8, lengths, credential formats and the identifier, and
//! answers with a [`Refusal`] the guest can act on.

use ed25519_dalek::SigningKey;
use wasmtime::component::{HasSelf, Linker};

use enrollment_host::bindings::device::iot_enroll::enrollment::{device, transport, types};
use enrollment_host::bindings::{Refusal, WitAccessTechnology, to_wit};
use enrollment_host::credentials::{CredentialsError, NetworkCredentials};
use enrollment_host::sandbox::{HalfLimiter, HasLimiter};
use enrollment_host::transport::TransportEnd;
use sp_bound_id::{AccessTechnology, Eui, SpBoundId, SpIdentity};

/// Longest owner, location or name the device stores, in bytes.
pub const MAX_TEXT: usize = 256;

/// Everything a device half has asked for, not yet written.
#[derive(Default)]
pub struct Staged {
    pub network: Option<NetworkCredentials>,
    pub owner: Option<String>,
    pub location: Option<String>,
    pub name: Option<String>,
    pub signing_key: Option<SigningKey>,
    pub sp_bound_id: Option<SpBoundId>,
    pub seal_requested: bool,
}

impl Staged {
    /// The public key of the staged key pair.
    pub fn public_key(&self) -> Option<[u8; 32]> {
        self.signing_key.as_ref().map(|k| k.verifying_key().to_bytes())
    }
}

/// Store data of a device half.
pub struct DeviceHost {
    pub transport: TransportEnd,
    pub device: Eui,
    pub access: AccessTechnology,
    pub staged: Staged,
    limiter: HalfLimiter,
}

impl DeviceHost {
    pub fn new(transport: TransportEnd, device: Eui, access: AccessTechnology, max_memory: usize) -> Self {
        Self { transport, device, access, staged: Staged::default(), limiter: HalfLimiter::new(max_memory) }
    }

    /// A linker that offers exactly the `device-half` world.
    pub fn linker(engine: &wasmtime::Engine) -> wasmtime::Result<Linker<DeviceHost>> {
        let mut linker = Linker::new(engine);
        transport::add_to_linker::<DeviceHost, HasSelf<TransportEnd>>(&mut linker, |h| &mut h.transport)?;
        types::add_to_linker::<DeviceHost, HasSelf<DeviceHost>>(&mut linker, |h| h)?;
        device::add_to_linker::<DeviceHost, HasSelf<DeviceHost>>(&mut linker, |h| h)?;
        Ok(linker)
    }
}

impl HasLimiter for DeviceHost {
    fn limiter(&mut self) -> &mut dyn wasmtime::ResourceLimiter {
        &mut self.limiter
    }
    fn limiter_state(&mut self) -> &HalfLimiter {
        &self.limiter
    }
}

/// Checks a text value from a guest: UTF-8, bounded, no control characters.
pub fn text(bytes: Vec<u8>) -> Result<String, Refusal> {
    if bytes.len() > MAX_TEXT {
        return Err(Refusal::TooLarge);
    }
    let s = String::from_utf8(bytes).map_err(|_| Refusal::InvalidValue)?;
    if s.trim().is_empty() || s.chars().any(char::is_control) {
        return Err(Refusal::InvalidValue);
    }
    Ok(s)
}

impl types::Host for DeviceHost {}

impl device::Host for DeviceHost {
    async fn device_id(&mut self) -> wasmtime::Result<Vec<u8>> {
        Ok(self.device.as_bytes().to_vec())
    }

    async fn technology(&mut self) -> wasmtime::Result<WitAccessTechnology> {
        Ok(to_wit(self.access))
    }

    async fn configure_network(&mut self, credentials: Vec<u8>) -> wasmtime::Result<Result<(), Refusal>> {
        Ok(match NetworkCredentials::decode_for(&credentials, self.access) {
            Ok(creds) => {
                self.staged.network = Some(creds);
                Ok(())
            }
            Err(CredentialsError::WrongTechnology { .. }) => Err(Refusal::NotApplicable),
            Err(_) => Err(Refusal::InvalidValue),
        })
    }

    async fn set_owner(&mut self, owner: Vec<u8>) -> wasmtime::Result<Result<(), Refusal>> {
        Ok(text(owner).map(|s| self.staged.owner = Some(s)))
    }

    async fn set_location(&mut self, location: Vec<u8>) -> wasmtime::Result<Result<(), Refusal>> {
        Ok(text(location).map(|s| self.staged.location = Some(s)))
    }

    async fn set_name(&mut self, name: Vec<u8>) -> wasmtime::Result<Result<(), Refusal>> {
        Ok(text(name).map(|s| self.staged.name = Some(s)))
    }

    async fn generate_key_pair(&mut self) -> wasmtime::Result<Vec<u8>> {
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        let public = key.verifying_key().to_bytes().to_vec();
        self.staged.signing_key = Some(key);
        Ok(public)
    }

    async fn write_sp_bound_id(&mut self, sp_identity: Vec<u8>) -> wasmtime::Result<Result<Vec<u8>, Refusal>> {
        let Ok(sp) = std::str::from_utf8(&sp_identity) else {
            return Ok(Err(Refusal::InvalidValue));
        };
        let Ok(sp) = SpIdentity::new(sp) else {
            return Ok(Err(Refusal::InvalidValue));
        };
        let Ok(id) = SpBoundId::new(sp, self.device, self.access) else {
            return Ok(Err(Refusal::InvalidValue));
        };
        let text = id.to_string().into_bytes();
        self.staged.sp_bound_id = Some(id);
        Ok(Ok(text))
    }

    async fn seal(&mut self) -> wasmtime::Result<Result<(), Refusal>> {
        if self.staged.sp_bound_id.is_none() || self.staged.signing_key.is_none() {
            return Ok(Err(Refusal::OutOfOrder));
        }
        self.staged.seal_requested = true;
        Ok(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_checks() {
        assert_eq!(text(b"ACME Utilities".to_vec()), Ok("ACME Utilities".into()));
        assert_eq!(text(vec![0xff, 0xfe]), Err(Refusal::InvalidValue));
        assert_eq!(text(b"a\nb".to_vec()), Err(Refusal::InvalidValue));
        assert_eq!(text(b"  ".to_vec()), Err(Refusal::InvalidValue));
        assert_eq!(text(vec![b'a'; MAX_TEXT + 1]), Err(Refusal::TooLarge));
    }
}
