//! Network credentials in the runtime's own encoding.
//!
//! The phone half asks its host for credentials (`assistant.network-credentials`)
//! and hands the bytes, untouched, to the device half, which passes them to
//! `device.configure-network`. The guests never parse them: the encoding is
//! the runtime's business (CBOR, like the rest of the IoT stack), validated on
//! both ends, so guest code stays a few hundred bytes.

use serde::{Deserialize, Serialize};

use sp_bound_id::AccessTechnology;

/// Credentials for joining one network.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum NetworkCredentials {
    /// A WPA2/WPA3-personal Wi-Fi network.
    Wifi { ssid: String, passphrase: String },
    /// A Zigbee PAN (the gateway's), joined with its network key.
    Zigbee { pan_id: u16, extended_pan_id: [u8; 8], channel: u8, network_key: [u8; 16] },
}

// Never print secrets.
impl std::fmt::Debug for NetworkCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Wifi { ssid, .. } => write!(f, "Wifi {{ ssid: {ssid:?}, passphrase: <redacted> }}"),
            Self::Zigbee { pan_id, channel, .. } => {
                write!(f, "Zigbee {{ pan_id: {pan_id:#06x}, channel: {channel}, network_key: <redacted> }}")
            }
        }
    }
}

/// Why credentials were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    #[error("credentials are not in the runtime's encoding: {0}")]
    Malformed(String),
    #[error("Wi-Fi SSID must be 1 to 32 bytes, got {0}")]
    SsidLength(usize),
    #[error("WPA passphrase must be 8 to 63 printable ASCII characters")]
    Passphrase,
    #[error("Zigbee channel must be 11 to 26, got {0}")]
    ZigbeeChannel(u8),
    #[error("Zigbee PAN id {0:#06x} is reserved")]
    ZigbeePanId(u16),
    #[error("{given} credentials do not apply to a {device} device")]
    WrongTechnology { given: AccessTechnology, device: AccessTechnology },
}

impl NetworkCredentials {
    /// The access technology these credentials are for.
    pub fn technology(&self) -> AccessTechnology {
        match self {
            Self::Wifi { .. } => AccessTechnology::Wifi,
            Self::Zigbee { .. } => AccessTechnology::Zigbee,
        }
    }

    /// Checks the values against the standards they come from.
    pub fn validate(&self) -> Result<(), CredentialsError> {
        match self {
            Self::Wifi { ssid, passphrase } => {
                if ssid.is_empty() || ssid.len() > 32 {
                    return Err(CredentialsError::SsidLength(ssid.len()));
                }
                let printable = passphrase.bytes().all(|b| (0x20..=0x7e).contains(&b));
                if !(8..=63).contains(&passphrase.len()) || !printable {
                    return Err(CredentialsError::Passphrase);
                }
            }
            Self::Zigbee { pan_id, channel, .. } => {
                if !(11..=26).contains(channel) {
                    return Err(CredentialsError::ZigbeeChannel(*channel));
                }
                if *pan_id == 0xFFFF {
                    return Err(CredentialsError::ZigbeePanId(*pan_id));
                }
            }
        }
        Ok(())
    }

    /// Encodes for the wire (validated first).
    pub fn encode(&self) -> Result<Vec<u8>, CredentialsError> {
        self.validate()?;
        let mut out = Vec::new();
        ciborium::into_writer(self, &mut out).map_err(|e| CredentialsError::Malformed(e.to_string()))?;
        Ok(out)
    }

    /// Decodes and validates bytes from a guest, for a device of `device` technology.
    pub fn decode_for(bytes: &[u8], device: AccessTechnology) -> Result<Self, CredentialsError> {
        let creds: Self = ciborium::from_reader(bytes).map_err(|e| CredentialsError::Malformed(e.to_string()))?;
        creds.validate()?;
        if creds.technology() != device {
            return Err(CredentialsError::WrongTechnology { given: creds.technology(), device });
        }
        Ok(creds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wifi() -> NetworkCredentials {
        NetworkCredentials::Wifi { ssid: "plant-3".into(), passphrase: "correct horse battery".into() }
    }

    fn zigbee() -> NetworkCredentials {
        NetworkCredentials::Zigbee { pan_id: 0x1A62, extended_pan_id: [1; 8], channel: 15, network_key: [9; 16] }
    }

    #[test]
    fn round_trip() {
        for c in [wifi(), zigbee()] {
            let bytes = c.encode().unwrap();
            assert_eq!(NetworkCredentials::decode_for(&bytes, c.technology()).unwrap(), c);
        }
    }

    #[test]
    fn wrong_technology_is_refused() {
        let bytes = wifi().encode().unwrap();
        assert_eq!(
            NetworkCredentials::decode_for(&bytes, AccessTechnology::Zigbee),
            Err(CredentialsError::WrongTechnology { given: AccessTechnology::Wifi, device: AccessTechnology::Zigbee })
        );
    }

    #[test]
    fn invalid_values_are_refused() {
        let short = NetworkCredentials::Wifi { ssid: "x".into(), passphrase: "short".into() };
        assert_eq!(short.encode(), Err(CredentialsError::Passphrase));
        let no_ssid = NetworkCredentials::Wifi { ssid: String::new(), passphrase: "longenough".into() };
        assert_eq!(no_ssid.encode(), Err(CredentialsError::SsidLength(0)));
        let chan = NetworkCredentials::Zigbee { pan_id: 1, extended_pan_id: [0; 8], channel: 27, network_key: [0; 16] };
        assert_eq!(chan.encode(), Err(CredentialsError::ZigbeeChannel(27)));
        assert!(matches!(
            NetworkCredentials::decode_for(b"\xff\x00", AccessTechnology::Wifi),
            Err(CredentialsError::Malformed(_))
        ));
    }

    #[test]
    fn debug_hides_secrets() {
        let shown = format!("{:?} {:?}", wifi(), zigbee());
        assert!(!shown.contains("horse"));
        assert!(shown.contains("redacted"));
    }
}
