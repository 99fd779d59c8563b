//! The manifest: what a payload says about the application and the one
//! device it is for.
//!
//! It is carried uncompressed, as a CBOR map with small integer keys, because
//! it changes for every device while the halves do not: the halves are
//! compressed once per product and the manifest is encoded per device in
//! microseconds. Known values are integers rather than text (the access
//! technology is its index in the WIT enum, a capability its index in
//! [`CAPABILITIES`]) and the device id is its raw 6 or 8 octets, since every
//! byte is printed. The key table is in `FORMAT.md`.

use std::collections::BTreeMap;

use ciborium::Value;
use sp_bound_id::{AccessTechnology, Eui};

use crate::error::{PackError, PayloadError};

/// What an enrollment application is and which device a payload is for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    /// The bundle format version (set by the reader; ignored when sealing,
    /// which always writes [`crate::payload::FORMAT_VERSION`]).
    #[serde(default = "current_version")]
    pub format_version: u16,
    pub app_id: String,
    pub app_version: String,
    pub manufacturer: String,
    pub product: String,
    /// The access technology's canonical text: `wifi`, `zigbee`, `thread`,
    /// `ble`, `lorawan`, `ethernet`, `cellular`.
    pub access: String,
    /// The capabilities the halves use, e.g. `device.configure-network`.
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// The manufacturer device id in canonical text (`AC-DE-48-00-00-80`).
    #[serde(default)]
    pub device_id: Option<String>,
    /// A one-time secret for this device.
    #[serde(default, with = "hex_opt")]
    pub one_time_secret: Option<Vec<u8>>,
    /// Other per-device parameters.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
}

fn current_version() -> u16 {
    crate::payload::FORMAT_VERSION
}

/// The capabilities a manifest can name with one byte: the functions of the
/// WIT interfaces `device` and `assistant` (0.1.0), then of `offer`, `take`,
/// `device` and `assistant` (0.2.0). Other names are carried as text. Only
/// ever appended to: the index is the wire form.
pub const CAPABILITIES: &[&str] = &[
    "device.device-id",
    "device.technology",
    "device.configure-network",
    "device.set-owner",
    "device.set-location",
    "device.set-name",
    "device.generate-key-pair",
    "device.write-sp-bound-id",
    "device.seal",
    "assistant.location",
    "assistant.owner",
    "assistant.network-credentials",
    "assistant.resolve-sp",
    "assistant.relay",
    // WIT 0.2.0.
    "offer.assistant",
    "offer.name",
    "offer.parameter",
    "offer.record",
    "offer.finish",
    "take.next",
    "take.finish",
    "device.set-config",
    "assistant.device-id",
    "assistant.technology",
];

mod key {
    pub const APP_ID: u64 = 0;
    pub const APP_VERSION: u64 = 1;
    pub const MANUFACTURER: u64 = 2;
    pub const PRODUCT: u64 = 3;
    pub const ACCESS: u64 = 4;
    pub const CAPABILITIES: u64 = 5;
    pub const DEVICE_ID: u64 = 6;
    pub const ONE_TIME_SECRET: u64 = 7;
    pub const PARAMS: u64 = 8;
}

/// The longest one-time secret accepted, in bytes.
pub const MAX_SECRET_LEN: usize = 64;

impl Manifest {
    /// The device id, parsed.
    pub fn eui(&self) -> Option<Eui> {
        self.device_id.as_deref().and_then(|d| Eui::from_canonical(d).ok())
    }

    /// Checks what sealing needs: the fields are present, the access
    /// technology is known, the device id is a canonical EUI of the kind that
    /// technology uses.
    pub fn validate(&self) -> Result<(AccessTechnology, Option<Eui>), PackError> {
        let bad = |why: String| Err(PackError::Manifest(why));
        for (name, value) in [("app_id", &self.app_id), ("app_version", &self.app_version)] {
            if value.is_empty() {
                return bad(format!("{name} is empty"));
            }
        }
        let access: AccessTechnology = match self.access.parse() {
            Ok(access) => access,
            Err(e) => return bad(format!("access: {e}")),
        };
        let eui = match &self.device_id {
            None => None,
            Some(text) => match Eui::from_canonical(text) {
                Ok(eui) if access.accepts(eui.kind()) => Some(eui),
                Ok(eui) => return bad(format!("device id {eui} is an {:?}, which {access} devices do not use", eui.kind())),
                Err(e) => return bad(format!("device id {text:?}: {e}")),
            },
        };
        if self.one_time_secret.as_ref().is_some_and(|s| s.is_empty() || s.len() > MAX_SECRET_LEN) {
            return bad(format!("one_time_secret must be 1 to {MAX_SECRET_LEN} bytes"));
        }
        Ok((access, eui))
    }

    /// The manifest as CBOR (integer keys; absent options left out).
    pub fn to_cbor(&self) -> Result<Value, PackError> {
        let (access, eui) = self.validate()?;
        let text = |s: &str| Value::Text(s.to_owned());
        let mut map = vec![
            (key::APP_ID, text(&self.app_id)),
            (key::APP_VERSION, text(&self.app_version)),
            (key::MANUFACTURER, text(&self.manufacturer)),
            (key::PRODUCT, text(&self.product)),
            (key::ACCESS, Value::from(AccessTechnology::ALL.iter().position(|a| *a == access).unwrap_or(0) as u64)),
        ];
        if !self.capabilities.is_empty() {
            let caps = self
                .capabilities
                .iter()
                .map(|c| match CAPABILITIES.iter().position(|k| k == c) {
                    Some(i) => Value::from(i as u64),
                    None => text(c),
                })
                .collect();
            map.push((key::CAPABILITIES, Value::Array(caps)));
        }
        if let Some(eui) = eui {
            map.push((key::DEVICE_ID, Value::Bytes(eui.as_bytes().to_vec())));
        }
        if let Some(secret) = &self.one_time_secret {
            map.push((key::ONE_TIME_SECRET, Value::Bytes(secret.clone())));
        }
        if !self.params.is_empty() {
            let params = self.params.iter().map(|(k, v)| (text(k), text(v))).collect();
            map.push((key::PARAMS, Value::Map(params)));
        }
        Ok(Value::Map(map.into_iter().map(|(k, v)| (Value::from(k), v)).collect()))
    }

    /// Reads a manifest written by [`Manifest::to_cbor`]; anything else
    /// (unknown keys, wrong types, a bad device id) is a malformed bundle.
    pub(crate) fn from_cbor(value: Value, format_version: u16) -> Result<Self, PayloadError> {
        let bad = |why: String| PayloadError::MalformedBundle(format!("manifest: {why}"));
        let Value::Map(entries) = value else { return Err(bad("not a map".into())) };
        let mut m = Manifest {
            format_version,
            app_id: String::new(),
            app_version: String::new(),
            manufacturer: String::new(),
            product: String::new(),
            access: String::new(),
            capabilities: Vec::new(),
            device_id: None,
            one_time_secret: None,
            params: BTreeMap::new(),
        };
        let mut seen = Vec::new();
        for (k, v) in entries {
            let k = k.as_integer().and_then(|i| u64::try_from(i).ok()).ok_or_else(|| bad("a key is not a small integer".into()))?;
            if seen.contains(&k) {
                return Err(bad(format!("key {k} appears twice")));
            }
            seen.push(k);
            let text = |v: Value, what: &str| match v {
                Value::Text(t) => Ok(t),
                _ => Err(bad(format!("{what} is not text"))),
            };
            match k {
                key::APP_ID => m.app_id = text(v, "app id")?,
                key::APP_VERSION => m.app_version = text(v, "app version")?,
                key::MANUFACTURER => m.manufacturer = text(v, "manufacturer")?,
                key::PRODUCT => m.product = text(v, "product")?,
                key::ACCESS => {
                    let i = v.as_integer().and_then(|i| usize::try_from(i).ok());
                    let access = i.and_then(|i| AccessTechnology::ALL.get(i)).ok_or_else(|| bad("unknown access technology".into()))?;
                    m.access = access.as_str().to_owned();
                }
                key::CAPABILITIES => {
                    let Value::Array(items) = v else { return Err(bad("capabilities is not an array".into())) };
                    for item in items {
                        let cap = match item {
                            Value::Text(t) => t,
                            other => {
                                let i = other.as_integer().and_then(|i| usize::try_from(i).ok());
                                let known = i.and_then(|i| CAPABILITIES.get(i));
                                known.ok_or_else(|| bad("unknown capability number".into()))?.to_string()
                            }
                        };
                        m.capabilities.push(cap);
                    }
                }
                key::DEVICE_ID => {
                    let Value::Bytes(b) = v else { return Err(bad("device id is not bytes".into())) };
                    let eui = Eui::from_bytes(&b).map_err(|e| bad(format!("device id: {e}")))?;
                    m.device_id = Some(eui.to_string());
                }
                key::ONE_TIME_SECRET => {
                    let Value::Bytes(b) = v else { return Err(bad("one-time secret is not bytes".into())) };
                    m.one_time_secret = Some(b);
                }
                key::PARAMS => {
                    let Value::Map(params) = v else { return Err(bad("params is not a map".into())) };
                    for (pk, pv) in params {
                        let pk = text(pk, "a parameter name")?;
                        if m.params.insert(pk.clone(), text(pv, "a parameter value")?).is_some() {
                            return Err(bad(format!("parameter {pk:?} appears twice")));
                        }
                    }
                }
                other => return Err(bad(format!("unknown key {other}"))),
            }
        }
        for (k, what) in [(key::APP_ID, "app id"), (key::APP_VERSION, "app version"), (key::ACCESS, "access technology")] {
            if !seen.contains(&k) {
                return Err(bad(format!("no {what}")));
            }
        }
        Ok(m)
    }
}

/// `Option<Vec<u8>>` as hex text in JSON and TOML manifests.
mod hex_opt {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(bytes) => s.serialize_some(&hex::encode(bytes)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        text.map(|t| hex::decode(t).map_err(serde::de::Error::custom)).transpose()
    }
}

/// The manifest of a reference app of `enrollment-apps` (for `pack --app`,
/// the test vectors and the benchmarks): its access technology, a product
/// name, and the capabilities its halves use.
/// The device and access technology a manifest names: what both the
/// assistant and the device check before running anything of the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// The one device the label is for; `None` for a label packed `--unbound`.
    pub device: Option<Eui>,
    pub access: AccessTechnology,
}

/// Why a manifest does not name, or does not name this, device.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TargetError {
    #[error("the manifest names access technology {0:?}, which this runtime does not know")]
    UnknownAccess(String),
    #[error("the manifest's device id {0:?} is not a canonical EUI-48/EUI-64")]
    BadDeviceId(String),
    #[error("the label is for device {label}, but the device on the link is {device}")]
    OtherDevice { label: Eui, device: Eui },
    #[error("the label is for a {label} device, but the device on the link uses {device}")]
    OtherAccess { label: AccessTechnology, device: AccessTechnology },
}

impl Manifest {
    /// The device and access technology this manifest names.
    pub fn target(&self) -> Result<Target, TargetError> {
        let access = self.access.parse().map_err(|_| TargetError::UnknownAccess(self.access.clone()))?;
        let device = match &self.device_id {
            None => None,
            Some(text) => Some(Eui::from_canonical(text).map_err(|_| TargetError::BadDeviceId(text.clone()))?),
        };
        Ok(Target { device, access })
    }
}

impl Target {
    /// Checks that the device on the link is the one named.
    pub fn check(&self, device: Eui, access: AccessTechnology) -> Result<(), TargetError> {
        if let Some(label) = self.device
            && label != device
        {
            return Err(TargetError::OtherDevice { label, device });
        }
        if self.access != access {
            return Err(TargetError::OtherAccess { label: self.access, device: access });
        }
        Ok(())
    }
}

#[cfg(feature = "reference-apps")]
pub fn reference(app: &enrollment_apps::AppPair) -> Result<Manifest, PackError> {
    let (access, product) = match app.name {
        "wifi-meter" => ("wifi", "Smart meter M1"),
        "zigbee-sensor" => ("zigbee", "Door sensor Z2"),
        "ethernet-controller" => ("ethernet", "Building controller E1"),
        "ble-lock" => ("ble", "Smart lock B1"),
        other => return Err(PackError::Manifest(format!("no reference manifest for app {other:?}"))),
    };
    // No capability list: every half built on the SDK imports its whole
    // world, so the list would say nothing the world does not.
    let capabilities = Vec::new();
    Ok(Manifest {
        format_version: crate::payload::FORMAT_VERSION,
        app_id: app.name.into(),
        app_version: "1.0.0".into(),
        manufacturer: "Acme IoT".into(),
        product: product.into(),
        access: access.into(),
        capabilities,
        device_id: None,
        one_time_secret: None,
        params: BTreeMap::new(),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn meter() -> Manifest {
        Manifest {
            format_version: 1,
            app_id: "wifi-meter".into(),
            app_version: "0.1.0".into(),
            manufacturer: "Acme Energy".into(),
            product: "Smart meter M1".into(),
            access: "wifi".into(),
            capabilities: vec!["device.configure-network".into(), "vendor.display".into()],
            device_id: Some("AC-DE-48-00-00-80".into()),
            one_time_secret: Some(vec![7; 16]),
            params: [("region".to_string(), "EU".to_string())].into(),
        }
    }

    #[test]
    fn round_trips_through_cbor() {
        let m = meter();
        assert_eq!(Manifest::from_cbor(m.to_cbor().unwrap(), 1).unwrap(), m);
        let minimal = Manifest { capabilities: vec![], device_id: None, one_time_secret: None, params: BTreeMap::new(), ..m };
        assert_eq!(Manifest::from_cbor(minimal.to_cbor().unwrap(), 1).unwrap(), minimal);
    }

    #[test]
    fn bad_manifests_are_refused_when_sealing() {
        let cases = [
            Manifest { access: "carrier-pigeon".into(), ..meter() },
            Manifest { device_id: Some("ac-de-48-00-00-80".into()), ..meter() },
            Manifest { device_id: Some("AC-DE-48-00-00-00-00-80".into()), ..meter() },
            Manifest { app_id: String::new(), ..meter() },
            Manifest { one_time_secret: Some(vec![]), ..meter() },
        ];
        for m in cases {
            assert!(matches!(m.to_cbor(), Err(PackError::Manifest(_))), "{m:?}");
        }
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_malformed() {
        let Value::Map(mut entries) = meter().to_cbor().unwrap() else { panic!() };
        entries.push((Value::from(99u64), Value::Null));
        assert!(matches!(Manifest::from_cbor(Value::Map(entries), 1), Err(PayloadError::MalformedBundle(_))));
        assert!(Manifest::from_cbor(Value::Array(vec![]), 1).is_err());
        let no_app = Value::Map(vec![(Value::from(4u64), Value::from(0u64))]);
        assert!(Manifest::from_cbor(no_app, 1).is_err());
    }
}
