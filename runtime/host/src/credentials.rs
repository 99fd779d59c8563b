//! Network credentials in the runtime's own encoding.
//!
//! The phone half asks its host for credentials (`assistant.network-credentials`)
//! and hands the bytes, untouched, to the device half, which passes them to
//! `device.configure-network`. The guests never parse them: the encoding is
//! the runtime's business (CBOR, like the rest of the IoT stack), validated on
//! both ends, so guest code stays a few hundred bytes.
//!
//! There is one variant per [`AccessTechnology`] that has a network to join.
//! Bluetooth LE has none, on purpose: a BLE device joins nothing, it is
//! reached through its gateway. No credentials are ever for BLE, so
//! [`NetworkCredentials::decode_for`] with a BLE device always fails with
//! [`CredentialsError::WrongTechnology`], which the device host answers to
//! `configure-network` as `not-applicable`; and an assistant has no BLE
//! entry to hand out (a gateway's `[[networks]]` cannot hold one).

use std::fmt;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use sp_bound_id::AccessTechnology;

/// The LoRaWAN regional parameter sets a join may name (RP002).
pub const LORAWAN_REGIONS: [&str; 8] = ["EU868", "US915", "AS923", "AU915", "KR920", "IN865", "CN470", "RU864"];

/// Credentials for joining one network.
///
/// Serialized as an externally tagged enum: `{"Wifi": {...}}` in CBOR, and
/// `Wifi = { ... }` in a gateway's `[[networks]]` TOML. Leave out an
/// `Option` field to give `None`. `Debug` redacts every secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum NetworkCredentials {
    /// A WPA2/WPA3-personal Wi-Fi network.
    Wifi { ssid: String, passphrase: String },
    /// A Zigbee PAN (the gateway's), joined with its network key.
    Zigbee { pan_id: u16, extended_pan_id: [u8; 8], channel: u8, network_key: [u8; 16] },
    /// A Thread network: its active operational dataset.
    Thread {
        /// Secret.
        network_key: [u8; 16],
        /// Not 0xFFFF (broadcast).
        pan_id: u16,
        extended_pan_id: [u8; 8],
        /// An IEEE 802.15.4 2.4 GHz channel, 11 to 26.
        channel: u8,
        /// A ULA /64: the first byte is 0xFD.
        mesh_local_prefix: [u8; 8],
        /// 1 to 16 bytes of UTF-8.
        network_name: String,
        /// Secret: the PSKc, when the dataset carries one.
        #[serde(default)]
        pskc: Option<[u8; 16]>,
    },
    /// A LoRaWAN network, joined over the air (OTAA).
    Lorawan {
        /// The JoinEUI (AppEUI before LoRaWAN 1.1).
        join_eui: [u8; 8],
        /// Secret, not all zero.
        app_key: [u8; 16],
        /// One of [`LORAWAN_REGIONS`].
        region: String,
        /// Secret: the NwkKey of a LoRaWAN 1.1 device.
        #[serde(default)]
        nwk_key: Option<[u8; 16]>,
    },
    /// A cellular data connection.
    Cellular {
        /// 1 to 63 bytes: labels of letters, digits and hyphens separated by dots.
        apn: String,
        /// At most 64 bytes.
        #[serde(default)]
        username: Option<String>,
        /// Secret, at most 64 bytes.
        #[serde(default)]
        password: Option<String>,
        /// Secret: the SIM PIN, 4 to 8 digits.
        #[serde(default)]
        pin: Option<String>,
    },
    /// A wired network. Nothing in it is secret; no VLAN and no static
    /// address means untagged DHCP.
    Ethernet {
        /// The 802.1Q VLAN id, 1 to 4094.
        #[serde(default)]
        vlan: Option<u16>,
        /// A static address; `None` means DHCP.
        #[serde(default)]
        ipv4: Option<StaticIpv4>,
    },
}

/// A static IPv4 configuration.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaticIpv4 {
    pub address: [u8; 4],
    /// 1 to 32.
    pub prefix_len: u8,
    pub gateway: [u8; 4],
}

impl fmt::Debug for StaticIpv4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (address, gateway) = (Ipv4Addr::from(self.address), Ipv4Addr::from(self.gateway));
        write!(f, "{address}/{} via {gateway}", self.prefix_len)
    }
}

/// Shown where a secret would be.
struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Shows whether an optional secret is there, never what it is.
fn redacted<T>(secret: &Option<T>) -> Option<Redacted> {
    secret.as_ref().map(|_| Redacted)
}

// Never print secrets.
impl fmt::Debug for NetworkCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Wifi { ssid, .. } => {
                f.debug_struct("Wifi").field("ssid", ssid).field("passphrase", &Redacted).finish()
            }
            Self::Zigbee { pan_id, channel, .. } => f
                .debug_struct("Zigbee")
                .field("pan_id", &format_args!("{pan_id:#06x}"))
                .field("channel", channel)
                .field("network_key", &Redacted)
                .finish(),
            Self::Thread { pan_id, extended_pan_id, channel, mesh_local_prefix, network_name, pskc, .. } => f
                .debug_struct("Thread")
                .field("network_name", network_name)
                .field("pan_id", &format_args!("{pan_id:#06x}"))
                .field("extended_pan_id", &format_args!("{}", hex::encode(extended_pan_id)))
                .field("channel", channel)
                .field("mesh_local_prefix", &format_args!("{}", hex::encode(mesh_local_prefix)))
                .field("network_key", &Redacted)
                .field("pskc", &redacted(pskc))
                .finish(),
            Self::Lorawan { join_eui, region, nwk_key, .. } => f
                .debug_struct("Lorawan")
                .field("join_eui", &format_args!("{}", hex::encode(join_eui)))
                .field("region", region)
                .field("app_key", &Redacted)
                .field("nwk_key", &redacted(nwk_key))
                .finish(),
            Self::Cellular { apn, username, password, pin } => f
                .debug_struct("Cellular")
                .field("apn", apn)
                .field("username", username)
                .field("password", &redacted(password))
                .field("pin", &redacted(pin))
                .finish(),
            Self::Ethernet { vlan, ipv4 } => {
                f.debug_struct("Ethernet").field("vlan", vlan).field("ipv4", ipv4).finish()
            }
        }
    }
}

/// Why credentials were refused. Secrets are never part of the message.
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
    #[error("Thread channel must be 11 to 26, got {0}")]
    ThreadChannel(u8),
    #[error("Thread PAN id {0:#06x} is reserved")]
    ThreadPanId(u16),
    #[error("Thread mesh-local prefix must be a ULA /64 (first byte 0xfd), got first byte {0:#04x}")]
    ThreadMeshLocalPrefix(u8),
    #[error("Thread network name must be 1 to 16 bytes, got {0}")]
    ThreadNetworkName(usize),
    #[error("LoRaWAN AppKey must not be all zero")]
    LorawanAppKey,
    #[error("LoRaWAN region {0:?} is not one of {regions}", regions = LORAWAN_REGIONS.join(", "))]
    LorawanRegion(String),
    #[error("cellular APN {0:?} must be 1 to 63 bytes of dot-separated labels of letters, digits and hyphens")]
    CellularApn(String),
    #[error("cellular username must be at most 64 bytes, got {0}")]
    CellularUsername(usize),
    #[error("cellular password must be at most 64 bytes")]
    CellularPassword,
    #[error("SIM PIN must be 4 to 8 digits")]
    CellularPin,
    #[error("Ethernet VLAN id must be 1 to 4094, got {0}")]
    EthernetVlan(u16),
    #[error("IPv4 prefix length must be 1 to 32, got {0}")]
    EthernetPrefixLength(u8),
    #[error("{given} credentials do not apply to a {device} device")]
    WrongTechnology { given: AccessTechnology, device: AccessTechnology },
}

impl NetworkCredentials {
    /// The access technology these credentials are for (never Bluetooth LE).
    pub fn technology(&self) -> AccessTechnology {
        match self {
            Self::Wifi { .. } => AccessTechnology::Wifi,
            Self::Zigbee { .. } => AccessTechnology::Zigbee,
            Self::Thread { .. } => AccessTechnology::Thread,
            Self::Lorawan { .. } => AccessTechnology::Lorawan,
            Self::Cellular { .. } => AccessTechnology::Cellular,
            Self::Ethernet { .. } => AccessTechnology::Ethernet,
        }
    }

    /// Checks the values against the standards they come from.
    pub fn validate(&self) -> Result<(), CredentialsError> {
        use CredentialsError as E;
        match self {
            Self::Wifi { ssid, passphrase } => {
                if ssid.is_empty() || ssid.len() > 32 {
                    return Err(E::SsidLength(ssid.len()));
                }
                let printable = passphrase.bytes().all(|b| (0x20..=0x7e).contains(&b));
                if !(8..=63).contains(&passphrase.len()) || !printable {
                    return Err(E::Passphrase);
                }
            }
            Self::Zigbee { pan_id, channel, .. } => ieee802154(*pan_id, *channel, E::ZigbeePanId, E::ZigbeeChannel)?,
            Self::Thread { pan_id, channel, mesh_local_prefix, network_name, .. } => {
                ieee802154(*pan_id, *channel, E::ThreadPanId, E::ThreadChannel)?;
                if mesh_local_prefix[0] != 0xFD {
                    return Err(E::ThreadMeshLocalPrefix(mesh_local_prefix[0]));
                }
                if !(1..=16).contains(&network_name.len()) {
                    return Err(E::ThreadNetworkName(network_name.len()));
                }
            }
            Self::Lorawan { app_key, region, .. } => {
                if app_key.iter().all(|&b| b == 0) {
                    return Err(E::LorawanAppKey);
                }
                if !LORAWAN_REGIONS.contains(&region.as_str()) {
                    return Err(E::LorawanRegion(region.clone()));
                }
            }
            Self::Cellular { apn, username, password, pin } => {
                if !is_apn(apn) {
                    return Err(E::CellularApn(apn.clone()));
                }
                if let Some(name) = username.as_ref().filter(|u| u.len() > 64) {
                    return Err(E::CellularUsername(name.len()));
                }
                if password.as_ref().is_some_and(|p| p.len() > 64) {
                    return Err(E::CellularPassword);
                }
                if pin.as_ref().is_some_and(|p| !(4..=8).contains(&p.len()) || !p.bytes().all(|b| b.is_ascii_digit())) {
                    return Err(E::CellularPin);
                }
            }
            Self::Ethernet { vlan, ipv4 } => {
                if let Some(id) = vlan.filter(|id| !(1..=4094).contains(id)) {
                    return Err(E::EthernetVlan(id));
                }
                if let Some(ip) = ipv4.filter(|ip| !(1..=32).contains(&ip.prefix_len)) {
                    return Err(E::EthernetPrefixLength(ip.prefix_len));
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

/// The IEEE 802.15.4 (2.4 GHz) rules Zigbee and Thread share: a channel of
/// 11 to 26 (checked first), a PAN id other than the broadcast 0xFFFF.
fn ieee802154(
    pan_id: u16,
    channel: u8,
    pan_error: fn(u16) -> CredentialsError,
    channel_error: fn(u8) -> CredentialsError,
) -> Result<(), CredentialsError> {
    if !(11..=26).contains(&channel) {
        return Err(channel_error(channel));
    }
    if pan_id == 0xFFFF {
        return Err(pan_error(pan_id));
    }
    Ok(())
}

/// An APN network identifier (3GPP TS 23.003 §9.1): 1 to 63 bytes, labels
/// of letters, digits and hyphens separated by dots.
fn is_apn(apn: &str) -> bool {
    (1..=63).contains(&apn.len())
        && apn
            .split('.')
            .all(|label| !label.is_empty() && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use CredentialsError as E;

    const ZIGBEE_KEY: [u8; 16] = [9; 16];
    const THREAD_KEY: [u8; 16] = [0xA7; 16];
    const PSKC: [u8; 16] = [0xB3; 16];
    const APP_KEY: [u8; 16] = [0xC5; 16];
    const NWK_KEY: [u8; 16] = [0xD9; 16];
    const PASSPHRASE: &str = "correct horse battery";
    const PASSWORD: &str = "s3cret-apn-pw";
    const PIN: &str = "4711";
    const ULA: [u8; 8] = [0xFD, 0, 0x0D, 0xB8, 0, 0, 0, 0];

    fn wifi() -> NetworkCredentials {
        NetworkCredentials::Wifi { ssid: "plant-3".into(), passphrase: PASSPHRASE.into() }
    }

    fn zigbee() -> NetworkCredentials {
        NetworkCredentials::Zigbee { pan_id: 0x1A62, extended_pan_id: [1; 8], channel: 15, network_key: ZIGBEE_KEY }
    }

    fn thread_with(pan_id: u16, channel: u8, mesh_local_prefix: [u8; 8], network_name: &str) -> NetworkCredentials {
        NetworkCredentials::Thread {
            network_key: THREAD_KEY,
            pan_id,
            extended_pan_id: [0xDE, 0xAD, 0x00, 0xBE, 0xEF, 0x00, 0xCA, 0xFE],
            channel,
            mesh_local_prefix,
            network_name: network_name.into(),
            pskc: Some(PSKC),
        }
    }

    fn thread() -> NetworkCredentials {
        thread_with(0x1234, 15, ULA, "plant-3")
    }

    fn lorawan_with(app_key: [u8; 16], region: &str) -> NetworkCredentials {
        let join_eui = [0x70, 0xB3, 0xD5, 0x7E, 0xD0, 0, 0, 1];
        NetworkCredentials::Lorawan { join_eui, app_key, region: region.into(), nwk_key: Some(NWK_KEY) }
    }

    fn lorawan() -> NetworkCredentials {
        lorawan_with(APP_KEY, "EU868")
    }

    fn cellular_with(apn: &str, username: &str, password: &str, pin: &str) -> NetworkCredentials {
        NetworkCredentials::Cellular {
            apn: apn.into(),
            username: Some(username.into()),
            password: Some(password.into()),
            pin: Some(pin.into()),
        }
    }

    fn cellular() -> NetworkCredentials {
        cellular_with("iot.acme-mobile.example", "meter", PASSWORD, PIN)
    }

    fn ethernet_with(vlan: u16, prefix_len: u8) -> NetworkCredentials {
        let ipv4 = StaticIpv4 { address: [192, 168, 7, 20], prefix_len, gateway: [192, 168, 7, 1] };
        NetworkCredentials::Ethernet { vlan: Some(vlan), ipv4: Some(ipv4) }
    }

    fn ethernet() -> NetworkCredentials {
        ethernet_with(42, 24)
    }

    /// `c` with every optional part left out.
    fn bare(mut c: NetworkCredentials) -> NetworkCredentials {
        match &mut c {
            NetworkCredentials::Thread { pskc, .. } => *pskc = None,
            NetworkCredentials::Lorawan { nwk_key, .. } => *nwk_key = None,
            NetworkCredentials::Cellular { username, password, pin, .. } => {
                (*username, *password, *pin) = (None, None, None);
            }
            NetworkCredentials::Ethernet { vlan, ipv4 } => (*vlan, *ipv4) = (None, None),
            NetworkCredentials::Wifi { .. } | NetworkCredentials::Zigbee { .. } => {}
        }
        c
    }

    /// A valid example of every variant, with its optional parts and without.
    fn all() -> Vec<NetworkCredentials> {
        let full = [wifi(), zigbee(), thread(), lorawan(), cellular(), ethernet()];
        let bare = full[2..].iter().cloned().map(bare);
        full.iter().cloned().chain(bare).collect()
    }

    #[test]
    fn valid_examples_pass() {
        for c in all() {
            assert_eq!(c.validate(), Ok(()), "{c:?}");
        }
        // Limits are inclusive; a Thread name is counted in bytes.
        for c in [
            thread_with(0xFFFE, 11, ULA, "éééééééé"),
            thread_with(0, 26, ULA, "x"),
            lorawan_with([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], "RU864"),
            cellular_with(&format!("{}.b", "a".repeat(61)), &"u".repeat(64), &"p".repeat(64), "12345678"),
            cellular_with("A-1.b2", "", "", "0000"),
            ethernet_with(1, 32),
            ethernet_with(4094, 1),
        ] {
            assert_eq!(c.validate(), Ok(()), "{c:?}");
        }
    }

    #[test]
    fn invalid_values_are_refused() {
        let cases = [
            (NetworkCredentials::Wifi { ssid: "x".into(), passphrase: "short".into() }, E::Passphrase),
            (NetworkCredentials::Wifi { ssid: String::new(), passphrase: "longenough".into() }, E::SsidLength(0)),
            (
                NetworkCredentials::Zigbee { pan_id: 1, extended_pan_id: [0; 8], channel: 27, network_key: [0; 16] },
                E::ZigbeeChannel(27),
            ),
            (
                NetworkCredentials::Zigbee {
                    pan_id: 0xFFFF,
                    extended_pan_id: [0; 8],
                    channel: 11,
                    network_key: [0; 16],
                },
                E::ZigbeePanId(0xFFFF),
            ),
            (thread_with(0xFFFF, 15, ULA, "plant-3"), E::ThreadPanId(0xFFFF)),
            (thread_with(0x1234, 10, ULA, "plant-3"), E::ThreadChannel(10)),
            (thread_with(0x1234, 27, ULA, "plant-3"), E::ThreadChannel(27)),
            (thread_with(0x1234, 15, [0xFE, 0x80, 0, 0, 0, 0, 0, 0], "plant-3"), E::ThreadMeshLocalPrefix(0xFE)),
            (thread_with(0x1234, 15, [0xFC, 0, 0, 0, 0, 0, 0, 0], "plant-3"), E::ThreadMeshLocalPrefix(0xFC)),
            (thread_with(0x1234, 15, ULA, ""), E::ThreadNetworkName(0)),
            (thread_with(0x1234, 15, ULA, "seventeen-bytes-x"), E::ThreadNetworkName(17)),
            (thread_with(0x1234, 15, ULA, "ééééééééé"), E::ThreadNetworkName(18)),
            (lorawan_with([0; 16], "EU868"), E::LorawanAppKey),
            (lorawan_with(APP_KEY, "eu868"), E::LorawanRegion("eu868".into())),
            (lorawan_with(APP_KEY, "EU433"), E::LorawanRegion("EU433".into())),
            (cellular_with("", "meter", PASSWORD, PIN), E::CellularApn(String::new())),
            (cellular_with(&"a".repeat(64), "meter", PASSWORD, PIN), E::CellularApn("a".repeat(64))),
            (cellular_with("iot..example", "meter", PASSWORD, PIN), E::CellularApn("iot..example".into())),
            (cellular_with(".iot", "meter", PASSWORD, PIN), E::CellularApn(".iot".into())),
            (cellular_with("iot.", "meter", PASSWORD, PIN), E::CellularApn("iot.".into())),
            (cellular_with("iot_apn", "meter", PASSWORD, PIN), E::CellularApn("iot_apn".into())),
            (cellular_with("iöt", "meter", PASSWORD, PIN), E::CellularApn("iöt".into())),
            (cellular_with("internet", &"u".repeat(65), PASSWORD, PIN), E::CellularUsername(65)),
            (cellular_with("internet", "meter", &"p".repeat(65), PIN), E::CellularPassword),
            (cellular_with("internet", "meter", PASSWORD, "123"), E::CellularPin),
            (cellular_with("internet", "meter", PASSWORD, "123456789"), E::CellularPin),
            (cellular_with("internet", "meter", PASSWORD, "12a4"), E::CellularPin),
            (cellular_with("internet", "meter", PASSWORD, "١٢٣٤"), E::CellularPin),
            (ethernet_with(0, 24), E::EthernetVlan(0)),
            (ethernet_with(4095, 24), E::EthernetVlan(4095)),
            (ethernet_with(42, 0), E::EthernetPrefixLength(0)),
            (ethernet_with(42, 33), E::EthernetPrefixLength(33)),
        ];
        for (c, want) in cases {
            assert_eq!(c.validate(), Err(want.clone()), "{c:?}");
            assert_eq!(c.encode(), Err(want.clone()), "{c:?}");
            // The receiving end checks too: bytes a hostile guest wrote itself.
            let mut bytes = Vec::new();
            ciborium::into_writer(&c, &mut bytes).unwrap();
            assert_eq!(NetworkCredentials::decode_for(&bytes, c.technology()), Err(want), "{c:?}");
        }
        assert!(matches!(
            NetworkCredentials::decode_for(b"\xff\x00", AccessTechnology::Wifi),
            Err(CredentialsError::Malformed(_))
        ));
    }

    #[test]
    fn round_trip() {
        for c in all() {
            let bytes = c.encode().unwrap();
            assert_eq!(NetworkCredentials::decode_for(&bytes, c.technology()).unwrap(), c);
        }
    }

    #[test]
    fn wifi_and_zigbee_encoding_is_unchanged() {
        // CBOR written out by hand: {"Wifi": {"ssid": …, "passphrase": …}} and
        // {"Zigbee": {…}} with the byte arrays as arrays of integers.
        let wifi = "a16457696669a2647373696467706c616e742d336a7061737370687261736575\
                    636f727265637420686f7273652062617474657279";
        let zigbee = "a1665a6967626565a46670616e5f6964191a626f657874656e6465645f70616e5f\
                      6964880101010101010101676368616e6e656c0f6b6e6574776f726b5f6b6579\
                      9009090909090909090909090909090909";
        assert_eq!(hex::encode(self::wifi().encode().unwrap()), wifi);
        assert_eq!(hex::encode(self::zigbee().encode().unwrap()), zigbee);
    }

    #[test]
    fn every_technology_but_ble_has_credentials() {
        let covered: Vec<AccessTechnology> = all().iter().map(NetworkCredentials::technology).collect();
        for t in AccessTechnology::ALL {
            assert_eq!(covered.contains(&t), t != AccessTechnology::BluetoothLe, "{t}");
        }
    }

    #[test]
    fn wrong_technology_is_refused() {
        for c in all() {
            let bytes = c.encode().unwrap();
            for device in AccessTechnology::ALL.into_iter().filter(|&t| t != c.technology()) {
                assert_eq!(
                    NetworkCredentials::decode_for(&bytes, device),
                    Err(CredentialsError::WrongTechnology { given: c.technology(), device }),
                    "{c:?} for {device}"
                );
            }
        }
    }

    #[test]
    fn debug_hides_secrets() {
        let keys = [ZIGBEE_KEY, THREAD_KEY, PSKC, APP_KEY, NWK_KEY];
        let mut secrets: Vec<String> = [PASSPHRASE, PASSWORD, PIN].map(String::from).into();
        for key in keys {
            secrets.extend([hex::encode(key), hex::encode_upper(key), format!("{key:?}"), format!("{key:#?}")]);
            secrets.push(format!("{:?}", &key[..2]).trim_end_matches(']').to_owned());
        }
        for c in all() {
            for shown in [format!("{c:?}"), format!("{c:#?}")] {
                for secret in &secrets {
                    assert!(!shown.contains(secret.as_str()), "{secret} in {shown}");
                }
            }
        }
        let shown = format!("{:?} {:?} {:?} {:?} {:?}", wifi(), zigbee(), thread(), lorawan(), cellular());
        assert_eq!(shown.matches("<redacted>").count(), 1 + 1 + 2 + 2 + 2, "{shown}");
        // What is not secret stays readable.
        assert!(format!("{:?}", thread()).contains("plant-3"));
        assert!(format!("{:?}", cellular()).contains("iot.acme-mobile.example"));
        assert_eq!(
            format!("{:?}", ethernet()),
            "Ethernet { vlan: Some(42), ipv4: Some(192.168.7.20/24 via 192.168.7.1) }"
        );
    }

    #[test]
    fn gateway_toml_takes_every_variant() {
        #[derive(Deserialize)]
        struct Gateway {
            networks: Vec<NetworkCredentials>,
        }
        let text = r#"
            [[networks]]
            Wifi = { ssid = "plant-3", passphrase = "correct horse battery" }

            [[networks]]
            Thread = { network_key = [167, 167, 167, 167, 167, 167, 167, 167, 167, 167, 167, 167, 167, 167, 167, 167], pan_id = 4660, extended_pan_id = [222, 173, 0, 190, 239, 0, 202, 254], channel = 15, mesh_local_prefix = [253, 0, 13, 184, 0, 0, 0, 0], network_name = "plant-3", pskc = [179, 179, 179, 179, 179, 179, 179, 179, 179, 179, 179, 179, 179, 179, 179, 179] }

            [[networks]]
            Lorawan = { join_eui = [112, 179, 213, 126, 208, 0, 0, 1], app_key = [197, 197, 197, 197, 197, 197, 197, 197, 197, 197, 197, 197, 197, 197, 197, 197], region = "EU868", nwk_key = [217, 217, 217, 217, 217, 217, 217, 217, 217, 217, 217, 217, 217, 217, 217, 217] }

            [[networks]]
            Cellular = { apn = "iot.acme-mobile.example", username = "meter", password = "s3cret-apn-pw", pin = "4711" }

            [[networks]]
            Ethernet = { vlan = 42, ipv4 = { address = [192, 168, 7, 20], prefix_len = 24, gateway = [192, 168, 7, 1] } }

            [[networks]]
            Ethernet = {}

            [[networks]]
            [networks.Thread]
            network_key = [0xa7, 0xa7, 0xa7, 0xa7, 0xa7, 0xa7, 0xa7, 0xa7, 0xa7, 0xa7, 0xa7, 0xa7, 0xa7, 0xa7, 0xa7, 0xa7]
            pan_id = 0x1234
            extended_pan_id = [0xde, 0xad, 0x00, 0xbe, 0xef, 0x00, 0xca, 0xfe]
            channel = 15
            mesh_local_prefix = [0xfd, 0x00, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00]
            network_name = "plant-3"

            [[networks]]
            Cellular = { apn = "internet" }
        "#;
        let parsed: Gateway = toml::from_str(text).unwrap();
        let want = [
            wifi(),
            thread(),
            lorawan(),
            cellular(),
            ethernet(),
            bare(ethernet()),
            bare(thread()),
            NetworkCredentials::Cellular { apn: "internet".into(), username: None, password: None, pin: None },
        ];
        assert_eq!(parsed.networks, want);
    }
}
