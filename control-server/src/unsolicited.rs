//! Unsolicited association updates: an SP moves devices to a new SP.
//!
//! The message is a COSE_Sign1 (RFC 9052), tagged or untagged, signed with
//! the sending SP's registered Ed25519 key: protected header `alg = EdDSA`
//! (-8) and `kid` = the sender's SP identity as UTF-8 bytes. The payload is a
//! CBOR map with text keys ([`MovePayload`], defined in `control_api::sp`;
//! [`MovePayloadExt`] stamps and signs one):
//!
//! | key | type | meaning |
//! | --- | --- | --- |
//! | `sender` | text | the signing SP's identity (must equal `kid`) |
//! | `new_sp` | text | the SP the devices move to (must be registered) |
//! | `devices` | array of text | manufacturer device ids (EUI-48/64), 1 to `max_batch` |
//! | `service_type` | text, optional | replaces the devices' service type |
//! | `timestamp` | uint | unix seconds; refused outside ± `message_window_secs` |
//! | `nonce` | bytes (16) | random; a nonce seen before is a replay |
//!
//! Refused, nothing written: bad COSE, unknown `kid`, bad signature, stale
//! timestamp, replayed nonce (nonces are kept in the database until they
//! leave the window), a sender that is neither the current SP of every
//! listed device (and allowed to move them to `new_sp`) nor the registered
//! new SP authorized to claim devices, too many devices. Accepted: one
//! transaction updates the mapping, writes history and the gateways' outbox;
//! devices the table did not have are created.

use std::collections::HashSet;
use std::str::FromStr;

use control_api::sp::{MoveAck, MovePayload};
use coset::{CborSerializable, CoseSign1, CoseSign1Builder, HeaderBuilder, TaggedCborSerializable, iana};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use rand::RngCore;
use sha2::{Digest, Sha256};
use sp_bound_id::{Eui, SpIdentity};

use crate::clock;
use crate::error::ApiError;
use crate::state::ServerState;
use crate::store::{ChangeError, ChangeSet, SpRecord};

/// Why a message could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot encode the payload: {0}")]
    Encode(String),
}

/// `n` random bytes as lowercase hex.
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Building a [`MovePayload`] and signing it as a COSE_Sign1 message.
pub trait MovePayloadExt: Sized {
    /// A payload stamped now, with a fresh random nonce.
    fn new(sender: &str, new_sp: &str, devices: Vec<String>, service_type: Option<String>) -> Self;

    /// The tagged COSE_Sign1 bytes, signed with `key` (kid = sender).
    fn sign(&self, key: &SigningKey) -> Result<Vec<u8>, BuildError>;
}

impl MovePayloadExt for MovePayload {
    fn new(sender: &str, new_sp: &str, devices: Vec<String>, service_type: Option<String>) -> Self {
        let mut nonce = vec![0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let timestamp = u64::try_from(clock::now_ms() / 1000).unwrap_or(0);
        Self { sender: sender.to_owned(), new_sp: new_sp.to_owned(), devices, service_type, timestamp, nonce }
    }

    fn sign(&self, key: &SigningKey) -> Result<Vec<u8>, BuildError> {
        let mut payload = Vec::new();
        ciborium::into_writer(self, &mut payload).map_err(|e| BuildError::Encode(e.to_string()))?;
        let protected = HeaderBuilder::new()
            .algorithm(iana::Algorithm::EdDSA)
            .key_id(self.sender.as_bytes().to_vec())
            .build();
        let sign1 = CoseSign1Builder::new()
            .protected(protected)
            .payload(payload)
            .create_signature(b"", |data| key.sign(data).to_bytes().to_vec())
            .build();
        sign1.to_tagged_vec().map_err(|e| BuildError::Encode(e.to_string()))
    }
}

fn parse_cose(body: &[u8]) -> Result<CoseSign1, ApiError> {
    CoseSign1::from_tagged_slice(body)
        .or_else(|_| CoseSign1::from_slice(body))
        .map_err(|e| ApiError::MalformedRequest(format!("body is not a COSE_Sign1 message: {e}")))
}

/// The SP identity named by the message's `kid`.
fn key_id(sign1: &CoseSign1) -> Result<String, ApiError> {
    let kid = if sign1.protected.header.key_id.is_empty() {
        &sign1.unprotected.key_id
    } else {
        &sign1.protected.header.key_id
    };
    if kid.is_empty() {
        return Err(ApiError::UnknownSp("the message has no kid naming the sending SP".into()));
    }
    let text = std::str::from_utf8(kid).map_err(|_| ApiError::UnknownSp("kid is not an SP identity (not UTF-8)".into()))?;
    SpIdentity::new(text).map_err(|e| ApiError::UnknownSp(format!("kid {text:?} is not an SP identity: {e}")))?;
    Ok(text.to_owned())
}

fn verify_signature(sign1: &CoseSign1, sp: &SpRecord) -> Result<(), ApiError> {
    let alg_ok = matches!(
        sign1.protected.header.alg,
        Some(coset::RegisteredLabelWithPrivate::Assigned(iana::Algorithm::EdDSA))
    );
    if !alg_ok {
        return Err(ApiError::BadSignature("the protected header must say alg = EdDSA".into()));
    }
    let key_bytes: [u8; 32] = sp
        .public_key
        .as_slice()
        .try_into()
        .map_err(|_| ApiError::Internal(format!("stored key of {} is not 32 bytes", sp.identity)))?;
    let key = VerifyingKey::from_bytes(&key_bytes)
        .map_err(|e| ApiError::Internal(format!("stored key of {} is invalid: {e}", sp.identity)))?;
    sign1
        .verify_signature(b"", |sig, data| {
            let sig = Signature::from_slice(sig).map_err(|e| e.to_string())?;
            key.verify_strict(data, &sig).map_err(|e| e.to_string())
        })
        .map_err(|e| ApiError::BadSignature(format!("signature does not verify with the key of {}: {e}", sp.identity)))
}

fn decode_payload(sign1: &CoseSign1) -> Result<MovePayload, ApiError> {
    let bytes = sign1.payload.as_deref().ok_or_else(|| ApiError::MalformedRequest("the message has no payload".into()))?;
    ciborium::from_reader(bytes).map_err(|e: ciborium::de::Error<std::io::Error>| match &e {
        ciborium::de::Error::Semantic(_, message) if crate::error::is_unknown_field(message) => {
            ApiError::UnknownField(format!("payload: {message}"))
        }
        _ => ApiError::MalformedRequest(format!("payload is not the documented CBOR map: {e}")),
    })
}

/// Who may make this move, given the current association of every device.
fn authorize(
    sender: &SpRecord,
    new_sp: &str,
    current: &[(String, Option<String>)],
) -> Result<(), String> {
    let not_sender = current.iter().find(|(_, sp)| sp.as_deref() != Some(sender.identity.as_str()));
    if sender.identity == new_sp {
        match not_sender {
            None => Ok(()),
            Some(_) if sender.may_claim => Ok(()),
            Some((device, sp)) => Err(format!(
                "{} is not authorized to claim devices it does not hold (device {device} is with {})",
                sender.identity,
                sp.as_deref().unwrap_or("no SP yet")
            )),
        }
    } else if let Some((device, sp)) = not_sender {
        Err(format!(
            "{} is neither the current SP of device {device} (that is {}) nor the new SP",
            sender.identity,
            sp.as_deref().unwrap_or("nobody")
        ))
    } else if !sender.may_move_to(new_sp) {
        Err(format!("{} is not authorized to move devices to {new_sp}", sender.identity))
    } else {
        Ok(())
    }
}

/// Verifies and applies one message (`POST /v1/sp/associations`).
pub async fn accept(state: &ServerState, body: &[u8]) -> Result<MoveAck, ApiError> {
    let started = std::time::Instant::now();
    let sign1 = parse_cose(body)?;
    let kid = key_id(&sign1)?;
    let sender = state
        .store
        .sp(&kid)
        .await?
        .ok_or_else(|| ApiError::UnknownSp(format!("SP {kid} is not registered with this control server")))?;
    verify_signature(&sign1, &sender)?;
    let payload = decode_payload(&sign1)?;

    if payload.sender != kid {
        return Err(ApiError::NotAuthorized(format!(
            "payload sender {:?} is not the signing SP {kid}",
            payload.sender
        )));
    }
    let policy = &state.config.policy;
    let now_ms = clock::now_ms();
    let now_s = now_ms / 1000;
    let window = i64::try_from(policy.message_window_secs).unwrap_or(i64::MAX);
    let ts = i64::try_from(payload.timestamp).unwrap_or(i64::MAX);
    if (now_s - ts).abs() > window {
        return Err(ApiError::TimestampOutOfWindow(format!(
            "timestamp {ts} is more than {window} s from the server's clock ({now_s})"
        )));
    }
    if payload.nonce.len() != 16 {
        return Err(ApiError::MalformedRequest(format!("nonce is 16 bytes, not {}", payload.nonce.len())));
    }
    if payload.devices.len() > policy.max_batch {
        return Err(ApiError::BatchTooLarge(format!(
            "{} devices in one message; the limit is {}",
            payload.devices.len(),
            policy.max_batch
        )));
    }
    if payload.devices.is_empty() {
        return Err(ApiError::MalformedRequest("devices is empty".into()));
    }
    let mut devices = Vec::with_capacity(payload.devices.len());
    let mut seen = HashSet::with_capacity(payload.devices.len());
    for text in &payload.devices {
        let eui = Eui::from_str(text).map_err(|e| ApiError::InvalidDeviceId(format!("device {text:?}: {e}")))?;
        let canonical = eui.to_string();
        if seen.insert(canonical.clone()) {
            devices.push(canonical);
        }
    }
    let new_sp = SpIdentity::new(&payload.new_sp)
        .map_err(|e| ApiError::MalformedRequest(format!("new_sp {:?}: {e}", payload.new_sp)))?;
    if state.store.sp(new_sp.as_str()).await?.is_none() {
        return Err(ApiError::UnregisteredTargetSp(format!("new SP {new_sp} is not registered")));
    }
    if let Some(st) = &payload.service_type
        && (st.is_empty() || st.len() > 64)
    {
        return Err(ApiError::MalformedRequest("service_type is 1 to 64 characters".into()));
    }

    let message_id = hex::encode(&Sha256::digest(body)[..16]);
    let device_count = devices.len();
    let set = ChangeSet {
        message_id: message_id.clone(),
        changed_by: kid.clone(),
        at: now_ms,
        new_sp: new_sp.as_str().to_owned(),
        service_type: payload.service_type.clone(),
        devices,
        nonce: Some((payload.nonce.clone(), kid.clone())),
        prune_nonces_before: now_ms - 2 * window.saturating_mul(1000),
        push: state.config.push.rule(),
    };
    let new_sp_text = set.new_sp.clone();
    tracing::debug!(elapsed = ?started.elapsed(), devices = device_count, "message verified and decoded");
    let outcome = state
        .mapping
        .apply_changes(&set, |current| authorize(&sender, &new_sp_text, current), &state.notifier)
        .await
        .map_err(|e| match e {
            ChangeError::Replayed => ApiError::ReplayedMessage(format!("nonce of message {message_id} was already used")),
            ChangeError::NotAuthorized(reason) => ApiError::NotAuthorized(reason),
            ChangeError::FanoutTooLarge { .. } => ApiError::BatchTooLarge(e.to_string()),
            ChangeError::Store(e) => e.into(),
        })?;
    tracing::info!(
        %message_id, sender = %kid, new_sp = %new_sp, devices = device_count, events = outcome.events,
        took_ms = started.elapsed().as_millis() as u64, "unsolicited update accepted"
    );
    Ok(MoveAck {
        message_id,
        accepted_at: clock::rfc3339(now_ms),
        devices: device_count,
        changed: outcome.changed,
        created: outcome.created,
        gateways: outcome.gateway_seqs.len(),
        events: outcome.events,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sp(identity: &str, may_release: bool, may_claim: bool, to: &[&str]) -> SpRecord {
        SpRecord {
            identity: identity.into(),
            base_url: "http://x".into(),
            public_key: SigningKey::from_bytes(&[1; 32]).verifying_key().to_bytes().to_vec(),
            endpoint: None,
            device_public_key: None,
            may_release,
            may_claim,
            may_move_to: to.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// A CBOR map of text keys to values, as an SP would put in its payload.
    fn payload_with(entries: Vec<(&str, ciborium::Value)>) -> CoseSign1 {
        let map = ciborium::Value::Map(entries.into_iter().map(|(k, v)| (ciborium::Value::Text(k.into()), v)).collect());
        let mut bytes = Vec::new();
        ciborium::into_writer(&map, &mut bytes).unwrap();
        CoseSign1 { payload: Some(bytes), ..Default::default() }
    }

    #[test]
    fn unknown_fields_are_told_apart_by_the_deserializers_message_not_by_input() {
        use ciborium::Value::{Array, Bytes, Integer, Text};
        let good = || {
            vec![
                ("sender", Text("sp-one.example".into())),
                ("new_sp", Text("sp-two.example".into())),
                ("devices", Array(vec![])),
                ("timestamp", Integer(1.into())),
                ("nonce", Bytes(vec![0; 16])),
            ]
        };
        assert!(decode_payload(&payload_with(good())).is_ok());
        let mut extra = good();
        extra.push(("colour", Text("blue".into())));
        assert!(matches!(decode_payload(&payload_with(extra)), Err(ApiError::UnknownField(_))));
        // A value that carries the words is a wrong type, not an unknown field.
        let mut sly = good();
        sly[3] = ("timestamp", Text("unknown field `x`".into()));
        assert!(matches!(decode_payload(&payload_with(sly)), Err(ApiError::MalformedRequest(_))));
    }

    #[test]
    fn signed_messages_verify_and_tampering_is_caught() {
        let key = SigningKey::from_bytes(&[1; 32]);
        let payload = MovePayload::new("sp-one.example", "sp-two.example", vec!["AC-DE-48-00-00-80".into()], None);
        let bytes = payload.sign(&key).unwrap();
        let sign1 = parse_cose(&bytes).unwrap();
        assert_eq!(key_id(&sign1).unwrap(), "sp-one.example");
        let record = sp("sp-one.example", true, false, &["*"]);
        verify_signature(&sign1, &record).unwrap();
        assert_eq!(decode_payload(&sign1).unwrap(), payload);

        let other = sp("sp-one.example", true, false, &["*"]);
        let mut wrong_key = other.clone();
        wrong_key.public_key = SigningKey::from_bytes(&[2; 32]).verifying_key().to_bytes().to_vec();
        assert_eq!(verify_signature(&sign1, &wrong_key).unwrap_err().code(), "bad_signature");

        let mut tampered = sign1.clone();
        tampered.payload.as_mut().unwrap()[5] ^= 1;
        assert_eq!(verify_signature(&tampered, &record).unwrap_err().code(), "bad_signature");
        assert_eq!(parse_cose(b"\x01\x02").unwrap_err().code(), "malformed_request");
    }

    #[test]
    fn authorization_rules() {
        let held = |sp: Option<&str>| vec![("AC-DE-48-00-00-80".to_owned(), sp.map(str::to_owned))];
        let one = sp("sp-one.example", true, false, &["sp-two.example"]);
        assert!(authorize(&one, "sp-two.example", &held(Some("sp-one.example"))).is_ok());
        assert!(authorize(&one, "sp-three.example", &held(Some("sp-one.example"))).is_err());
        assert!(authorize(&one, "sp-two.example", &held(Some("sp-two.example"))).is_err());
        assert!(authorize(&one, "sp-two.example", &held(None)).is_err());
        let no_release = sp("sp-one.example", false, false, &["*"]);
        assert!(authorize(&no_release, "sp-two.example", &held(Some("sp-one.example"))).is_err());
        let claimer = sp("sp-two.example", false, true, &[]);
        assert!(authorize(&claimer, "sp-two.example", &held(Some("sp-one.example"))).is_ok());
        assert!(authorize(&claimer, "sp-two.example", &held(None)).is_ok());
        let not_claimer = sp("sp-two.example", false, false, &[]);
        assert!(authorize(&not_claimer, "sp-two.example", &held(Some("sp-one.example"))).is_err());
        assert!(authorize(&not_claimer, "sp-two.example", &held(Some("sp-two.example"))).is_ok());
    }
}
