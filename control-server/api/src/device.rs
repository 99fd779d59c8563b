//! A device ↔ its SP, after enrollment: signed device messages and signed SP
//! commands (issue 12).
//!
//! * A device's operational app sends a message; the device's host signs it
//!   with the device's private key (the one whose public key was relayed to
//!   the SP at enrollment) and posts it (`POST {endpoint}/v1/device-messages`:
//!   [`DeviceMessage`]), itself if it has IP, else through its gateway, which
//!   forwards it unchanged: the signature covers identifier, sequence number
//!   and body, so nobody on the way can alter it. The SP verifies it with the
//!   relayed key and refuses a sequence number it has seen.
//! * The SP signs commands with its key (the SP public key the device got
//!   with its binding); the device fetches them
//!   (`GET {endpoint}/v1/device-commands?identifier=…&after=SEQ`: a list of
//!   [`SpCommand`]), verifies each and drops any other, or any already seen.
//!
//! The bytes signed are [`message_signed_bytes`] / [`command_signed_bytes`]:
//! a domain-separating tag, the identifier, the sequence number and the body,
//! each length-prefixed, so a signature for one purpose, device or position
//! means nothing elsewhere.

use serde::{Deserialize, Serialize};

/// Route on the SP: `POST` a [`DeviceMessage`].
pub const DEVICE_MESSAGES: &str = "/v1/device-messages";
/// Route on the SP: `GET ?identifier=…&after=SEQ` → `Vec<`[`SpCommand`]`>`.
pub const DEVICE_COMMANDS: &str = "/v1/device-commands";

/// Largest message body an operational app may send.
pub const MAX_BODY: usize = 1024;

/// A message from a device to its SP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceMessage {
    /// The device's SP-bound identifier `{sp}/{access}/{EUI}`.
    pub identifier: String,
    /// Larger than every earlier message of this device.
    pub seq: u64,
    /// The app's bytes, hex.
    pub body: String,
    /// Ed25519 signature by the device's key over [`message_signed_bytes`], hex.
    pub signature: String,
}

/// A command from an SP to one of its devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpCommand {
    pub identifier: String,
    /// Per device, increasing from 1.
    pub seq: u64,
    /// The command's bytes, hex.
    pub body: String,
    /// Ed25519 signature by the SP's key over [`command_signed_bytes`], hex.
    pub signature: String,
}

/// The SP's answer to a [`DeviceMessage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageAccepted {
    pub seq: u64,
}

/// The bytes a device signs for a message.
pub fn message_signed_bytes(identifier: &str, seq: u64, body: &[u8]) -> Vec<u8> {
    signed_bytes(b"iot-enroll/device-message/v1\0", identifier, seq, body)
}

/// The bytes an SP signs for a command.
pub fn command_signed_bytes(identifier: &str, seq: u64, body: &[u8]) -> Vec<u8> {
    signed_bytes(b"iot-enroll/sp-command/v1\0", identifier, seq, body)
}

fn signed_bytes(tag: &[u8], identifier: &str, seq: u64, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(tag.len() + 2 + identifier.len() + 8 + 4 + body.len());
    m.extend_from_slice(tag);
    m.extend_from_slice(&(identifier.len() as u16).to_be_bytes());
    m.extend_from_slice(identifier.as_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(&(body.len() as u32).to_be_bytes());
    m.extend_from_slice(body);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_and_a_command_never_sign_the_same_bytes() {
        let (id, body) = ("sp-one.example/wifi/AC-DE-48-00-00-80", b"reading=1");
        assert_ne!(message_signed_bytes(id, 1, body), command_signed_bytes(id, 1, body));
        assert_ne!(message_signed_bytes(id, 1, body), message_signed_bytes(id, 2, body));
        // Length prefixes: moving a byte from the identifier to the body changes the bytes.
        assert_ne!(message_signed_bytes("ab", 1, b"c"), message_signed_bytes("a", 1, b"bc"));
    }
}
