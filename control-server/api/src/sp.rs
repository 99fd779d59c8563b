//! Control server ↔ SP, and the device report a gateway relays to an SP.
//!
//! * The control server validates an association with the SP
//!   (`POST {sp}/v1/validate`: [`ValidateRequest`] → [`Verdict`]).
//! * An SP moves devices to a new SP with a signed unsolicited message
//!   (`POST /v1/sp/associations`): a COSE_Sign1 (EdDSA, `kid` = the sender's
//!   SP identity) whose payload is the CBOR encoding of a [`MovePayload`];
//!   the control server answers with a [`MoveAck`]. Building, signing and
//!   verifying the COSE message is the control server's (`control_server`).
//! * After an enrollment the gateway reports the device to its SP
//!   (`POST {sp}/v1/devices`: [`DeviceReport`]). A relay whose device then
//!   did not commit (the gateway asked the device after a lost answer) is
//!   withdrawn (`POST {sp}/v1/devices/withdraw`: [`DeviceWithdrawal`] →
//!   [`Withdrawn`]); the SP drops the key only if it is still the one it
//!   holds for that identifier, so a later enrollment's key stays.

use serde::{Deserialize, Serialize};

use crate::gateway::Geo;

/// What the control server sends an SP to validate an association.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidateRequest {
    pub device_id: String,
    pub service_type: Option<String>,
    pub gateway: String,
    pub geo: Option<Geo>,
}

/// An SP's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    Confirm,
    Redirect { sp: String },
    Reject { #[serde(default)] reason: String },
}

/// The signed payload of a move message: a CBOR map with text keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MovePayload {
    /// The signing SP's identity (must equal the COSE `kid`).
    pub sender: String,
    /// The SP the devices move to.
    pub new_sp: String,
    /// Manufacturer device ids (EUI-48/64).
    pub devices: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_type: Option<String>,
    /// Unix seconds.
    pub timestamp: u64,
    /// 16 random bytes; a CBOR byte string on the wire.
    #[serde(with = "byte_string")]
    pub nonce: Vec<u8>,
}

/// The control server's acknowledgement of an accepted message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveAck {
    pub message_id: String,
    pub accepted_at: String,
    /// Devices listed in the message (after removing duplicates).
    pub devices: usize,
    /// Devices whose association changed (including created ones).
    pub changed: usize,
    /// Devices the table did not have before.
    pub created: usize,
    /// Gateways that got outbox events.
    pub gateways: usize,
    /// Outbox events written.
    pub events: usize,
}

/// A device identity relayed to the SP after enrollment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceReport {
    /// The complete SP-bound identifier `{sp}/{access}/{EUI}`.
    pub identifier: String,
    /// The device's public key, hex.
    pub public_key: String,
    #[serde(default)]
    pub device_id: Option<String>,
    /// The id of the gateway that relayed the report.
    #[serde(default)]
    pub relayed_by: Option<String>,
}

/// A relayed identity and key that no device committed: drop them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceWithdrawal {
    /// The complete SP-bound identifier, as relayed.
    pub identifier: String,
    /// The public key relayed with it, hex.
    pub public_key: String,
    #[serde(default)]
    pub withdrawn_by: Option<String>,
}

/// The SP's answer to a [`DeviceWithdrawal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Withdrawn {
    /// Reports dropped (0: the SP did not hold this key for the identifier).
    pub dropped: usize,
}

/// `Vec<u8>` as a serde byte string (CBOR major type 2) rather than a
/// sequence of integers; reads either.
mod byte_string {
    use std::fmt;

    use serde::de::{Error, SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        deserializer.deserialize_byte_buf(BytesVisitor)
    }

    struct BytesVisitor;

    impl<'de> Visitor<'de> for BytesVisitor {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a byte string")
        }

        fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }

        fn visit_byte_buf<E: Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
            while let Some(b) = seq.next_element()? {
                out.push(b);
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_have_the_documented_json() {
        assert_eq!(serde_json::to_string(&Verdict::Confirm).unwrap(), r#"{"verdict":"confirm"}"#);
        let redirect: Verdict = serde_json::from_str(r#"{"verdict":"redirect","sp":"sp-two.example"}"#).unwrap();
        assert_eq!(redirect, Verdict::Redirect { sp: "sp-two.example".into() });
        let reject: Verdict = serde_json::from_str(r#"{"verdict":"reject"}"#).unwrap();
        assert_eq!(reject, Verdict::Reject { reason: String::new() });
        assert!(serde_json::from_str::<Verdict>(r#"{"verdict":"maybe"}"#).is_err());
    }

    /// The payload as it was defined before this crate (nonce a `serde_bytes::ByteBuf`).
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct EarlierPayload {
        sender: String,
        new_sp: String,
        devices: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        service_type: Option<String>,
        timestamp: u64,
        nonce: serde_bytes::ByteBuf,
    }

    fn cbor<T: Serialize>(value: &T) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::into_writer(value, &mut out).unwrap();
        out
    }

    #[test]
    fn move_payload_cbor_is_unchanged() {
        for service_type in [None, Some("metering".to_owned())] {
            let payload = MovePayload {
                sender: "sp-one.example".into(),
                new_sp: "sp-two.example".into(),
                devices: vec!["AC-DE-48-00-00-80".into(), "AC-DE-48-00-00-81".into()],
                service_type: service_type.clone(),
                timestamp: 1_700_000_000,
                nonce: (0u8..16).collect(),
            };
            let earlier = EarlierPayload {
                sender: payload.sender.clone(),
                new_sp: payload.new_sp.clone(),
                devices: payload.devices.clone(),
                service_type,
                timestamp: payload.timestamp,
                nonce: serde_bytes::ByteBuf::from(payload.nonce.clone()),
            };
            let bytes = cbor(&payload);
            assert_eq!(bytes, cbor(&earlier));
            let back: MovePayload = ciborium::from_reader(bytes.as_slice()).unwrap();
            assert_eq!(back, payload);
        }
        // The nonce is a byte string (major type 2, length 16: 0x50).
        let payload = MovePayload {
            sender: String::new(),
            new_sp: String::new(),
            devices: vec![],
            service_type: None,
            timestamp: 0,
            nonce: vec![7; 16],
        };
        let bytes = cbor(&payload);
        let at = bytes.windows(6).position(|w| w == b"\x65nonce").unwrap() + 6;
        assert_eq!(bytes[at], 0x50);
    }

    #[test]
    fn device_reports_read_what_the_gateway_sends() {
        let sent = r#"{"identifier":"sp-one.example/wifi/AC-DE-48-00-00-80","device_id":"AC-DE-48-00-00-80","public_key":"ab","relayed_by":"gw-1"}"#;
        let report: DeviceReport = serde_json::from_str(sent).unwrap();
        assert_eq!(report.relayed_by.as_deref(), Some("gw-1"));
        let minimal: DeviceReport = serde_json::from_str(r#"{"identifier":"x","public_key":"ab"}"#).unwrap();
        assert_eq!(minimal.device_id, None);
        assert!(serde_json::from_str::<DeviceReport>(r#"{"identifier":"x","public_key":"ab","extra":1}"#).is_err());
    }
}
