//! Entry points for the fuzz targets (`fuzz/`, cargo-fuzz): the SP's signed
//! unsolicited hand-over (`POST /v1/sp/associations`) through the same
//! `unsolicited::accept` the route calls, against a real store (an
//! in-memory SQLite database) with two registered SPs and one device.
//! Not part of the server's API: hidden from the docs, kept out of the way.
#![doc(hidden)]

use control_api::sp::{MoveAck, MovePayload};
use ed25519_dalek::SigningKey;

use crate::config::Config;
use crate::store::Store;
use crate::unsolicited::MovePayloadExt;
use crate::{ServerState, StartError};

/// The sending SP's identity and signing key (a fixed seed).
pub const SENDER: &str = "sp-one.example";
/// The SP the device may be moved to.
pub const NEW_SP: &str = "sp-two.example";
/// The device `SENDER` holds.
pub const DEVICE: &str = "AC-DE-48-00-00-80";

/// A control server state and a runtime to drive it from a synchronous
/// fuzz loop.
pub struct UnsolicitedHarness {
    runtime: tokio::runtime::Runtime,
    state: ServerState,
    key: SigningKey,
}

/// Why the harness could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("no tokio runtime: {0}")]
    Runtime(#[from] std::io::Error),
    #[error("the store: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("the configuration: {0}")]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Start(#[from] StartError),
}

impl UnsolicitedHarness {
    pub fn new() -> Result<Self, HarnessError> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let key = SigningKey::from_bytes(&[1; 32]);
        let other = SigningKey::from_bytes(&[2; 32]);
        let config = Config::from_toml(&format!(
            r#"
            [[sp]]
            identity = "{SENDER}"
            base_url = "http://127.0.0.1:9"
            public_key = "{}"
            may_release = true
            may_move_to = ["*"]
            may_claim = true

            [[sp]]
            identity = "{NEW_SP}"
            base_url = "http://127.0.0.1:9"
            public_key = "{}"

            [[gateway]]
            id = "gw-1"
            credential = "secret"

            [[mapping]]
            device_id = "{DEVICE}"
            sp = "{SENDER}"
            access = "wifi"
            gateways = ["gw-1"]
            "#,
            hex::encode(key.verifying_key().to_bytes()),
            hex::encode(other.verifying_key().to_bytes()),
        ))?;
        let state = runtime.block_on(async {
            let store = Store::connect("sqlite::memory:").await?;
            Ok::<_, HarnessError>(ServerState::new(store, config).await?)
        })?;
        Ok(Self { runtime, state, key })
    }

    /// The request body as it arrives: COSE_Sign1 bytes, verified and
    /// applied. The error is `code: message`, as the route answers it.
    pub fn accept(&self, body: &[u8]) -> Result<MoveAck, String> {
        self.runtime
            .block_on(crate::unsolicited::accept(&self.state, body))
            .map_err(|e| format!("{}: {e}", e.code()))
    }

    /// `payload` (the CBOR the fuzzer made) signed by [`SENDER`], so the
    /// stages after the signature are reached. A CBOR map's `timestamp` is
    /// set to now first: the fuzzer cannot know the clock.
    pub fn sign_and_accept(&self, payload: &[u8]) -> Result<MoveAck, String> {
        let mut bytes = payload.to_vec();
        if let Ok(ciborium::Value::Map(mut entries)) = ciborium::from_reader::<ciborium::Value, _>(payload) {
            let now = u64::try_from(crate::clock::now_ms() / 1000).unwrap_or(0);
            for (k, v) in &mut entries {
                if k.as_text() == Some("timestamp") {
                    *v = ciborium::Value::from(now);
                }
            }
            bytes.clear();
            if ciborium::into_writer(&ciborium::Value::Map(entries), &mut bytes).is_err() {
                return Err("cannot re-encode the payload".into());
            }
        }
        let sign1 = coset::CoseSign1Builder::new()
            .protected(
                coset::HeaderBuilder::new()
                    .algorithm(coset::iana::Algorithm::EdDSA)
                    .key_id(SENDER.as_bytes().to_vec())
                    .build(),
            )
            .payload(bytes)
            .create_signature(b"", |data| ed25519_dalek::Signer::sign(&self.key, data).to_bytes().to_vec())
            .build();
        let body = coset::TaggedCborSerializable::to_tagged_vec(sign1).map_err(|e| e.to_string())?;
        self.accept(&body)
    }

    /// A valid signed message from [`SENDER`] (fresh timestamp and nonce).
    pub fn valid_message(&self, new_sp: &str, devices: Vec<String>) -> Result<Vec<u8>, String> {
        <MovePayload as MovePayloadExt>::new(SENDER, new_sp, devices, Some("metering".into()))
            .sign(&self.key)
            .map_err(|e| e.to_string())
    }

    /// A valid payload's CBOR (for [`UnsolicitedHarness::sign_and_accept`]).
    pub fn valid_payload(&self, devices: Vec<String>) -> Result<Vec<u8>, String> {
        let payload = <MovePayload as MovePayloadExt>::new(SENDER, NEW_SP, devices, None);
        let mut out = Vec::new();
        ciborium::into_writer(&payload, &mut out).map_err(|e| e.to_string())?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fuzz target only finds what the harness reaches: a signed move
    /// must get through to the transaction, and its replay be refused.
    #[test]
    fn the_harness_reaches_the_transaction_and_refuses_a_replay() {
        let harness = UnsolicitedHarness::new().unwrap();
        let payload = harness.valid_payload(vec![DEVICE.into()]).unwrap();
        let ack = harness.sign_and_accept(&payload).unwrap();
        assert_eq!((ack.devices, ack.changed), (1, 1));
        let replay = harness.sign_and_accept(&payload).unwrap_err();
        assert!(replay.starts_with("replayed_message: "), "{replay}");

        // The sender claims a device nobody holds (it may claim).
        let body = harness.valid_message(SENDER, vec!["AC-DE-48-00-00-81".into()]).unwrap();
        assert_eq!(harness.accept(&body).unwrap().created, 1);
        let mut tampered = body.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(harness.accept(&tampered).unwrap_err().starts_with("bad_signature: "));
    }
}
