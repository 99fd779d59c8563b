//! The phone half of the LoRaWAN environment sensor's enrollment (world
//! `phone-half`).
//!
//! Reads the radio settings signed into the label (`shared/radio.rs`: `sf`,
//! `interval`, `tx-power`, `adr`, `payload`), refuses the enrollment if one
//! is missing or out of range, and hands the sensor its OTAA keys, the
//! settings in their normal form as the parameters `lora.sf`,
//! `lora.tx-power`, `lora.interval`, `lora.adr` and `lora.payload` (in that
//! order), a name made of the label's `site` (if any) and the end of the
//! sensor's EUI (`Roof B env 12:34:56`), and its service provider.

#![no_std]

extern crate alloc;

use alloc::string::String;
use enrollment_sdk::phone::{AccessTechnology, assistant, manifest, offer};

#[path = "../../shared/radio.rs"]
mod radio;

use radio::{NAMES, Radio};

struct LorawanSensorPhone;

impl enrollment_sdk::phone::Guest for LorawanSensorPhone {
    fn enroll() -> Result<(), ()> {
        if assistant::technology() != AccessTechnology::Lorawan {
            return Err(());
        }
        let settings = Radio::from_label(manifest::param).ok_or(())?;
        offer::network().map_err(drop)?;
        let values = [
            decimal(u32::from(settings.sf)),
            decimal(u32::from(settings.tx_power)),
            decimal(settings.interval),
            String::from(if settings.adr { "on" } else { "off" }),
            decimal(u32::from(settings.payload)),
        ];
        for (name, value) in NAMES.iter().zip(values.iter()) {
            offer::parameter(name, value).map_err(drop)?;
        }
        offer::name(&name(manifest::param("site"), &assistant::device_id())).map_err(drop)?;
        offer::service_provider().map_err(drop)?;
        offer::finish().map_err(drop)
    }
}

enrollment_sdk::phone_half!(LorawanSensorPhone);

/// `<site> env XX:XX:XX`: the site, then the last three bytes of the EUI,
/// as printed on the sensor's housing.
fn name(site: Option<String>, eui: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut name = String::new();
    if let Some(site) = site {
        let site = site.trim_ascii();
        // Room for the suffix within the host's 256 bytes.
        if !site.is_empty() && site.len() <= 200 {
            // The host refuses a name with control characters.
            name.extend(site.chars().filter(|c| !c.is_control()));
            name.push(' ');
        }
    }
    name.push_str("env");
    for (i, byte) in eui.iter().skip(eui.len().saturating_sub(3)).enumerate() {
        name.push(if i == 0 { ' ' } else { ':' });
        name.push(char::from(HEX[usize::from(byte >> 4)]));
        name.push(char::from(HEX[usize::from(byte & 0x0F)]));
    }
    name
}

/// `n` in decimal, without `core::fmt`.
fn decimal(mut n: u32) -> String {
    let mut digits = [0u8; 10];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    digits[at..].iter().map(|&d| char::from(d)).collect()
}
