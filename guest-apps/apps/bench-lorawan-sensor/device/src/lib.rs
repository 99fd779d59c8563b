//! The device half of the LoRaWAN environment sensor's enrollment (world
//! `device-half`).
//!
//! Takes the OTAA keys, the five radio parameters by name and in order
//! (`lora.sf`, `lora.tx-power`, `lora.interval`, `lora.adr`, `lora.payload`),
//! the name, the service provider and the end. The host stages each
//! parameter under its name but hands the half only the name, so the half
//! derives the radio settings from the signed label itself (`shared/radio.rs`)
//! and cross-checks them: an uplink of the configured size, at the
//! configured spreading factor, must fit the 1 % duty cycle of EU868 at the
//! configured interval. It then stages `lora.radio`, the blob the radio
//! driver reads at boot (big-endian):
//!
//! | bytes | what |
//! | --- | --- |
//! | 0 | layout version, 1 |
//! | 1 | spreading factor |
//! | 2 | TX power, dBm |
//! | 3 | flags: bit 0 ADR, bit 1 low data rate optimisation |
//! | 4 | application payload, bytes |
//! | 5..9 | uplink interval, s (u32) |
//! | 9..11 | time on air of one uplink, ms (u16) |
//! | 11..13 | Fletcher-16 of bytes 0..11 |

#![no_std]

extern crate alloc;

use alloc::vec::Vec;
use enrollment_sdk::device::device as sensor;
use enrollment_sdk::device::{self, Item, manifest, take};

#[path = "../../shared/radio.rs"]
mod radio;

use radio::{NAMES, Radio};

/// LoRaWAN framing around the application payload: MHDR (1), FHDR (7),
/// FPort (1), MIC (4).
const FRAME_OVERHEAD: u32 = 13;

/// EU868 sub-band duty cycle, 1 %: an uplink every 100 times its airtime.
const DUTY_CYCLE_INVERSE: u64 = 100;

struct LorawanSensorDevice;

impl enrollment_sdk::device::Guest for LorawanSensorDevice {
    fn enroll() -> Result<(), ()> {
        device::expect(&Item::Network).map_err(drop)?;
        for expected in NAMES {
            match take::next().map_err(drop)? {
                Item::Parameter((name, _)) if name == expected => {}
                _ => return Err(()),
            }
        }
        let settings = Radio::from_label(manifest::param).ok_or(())?;
        let airtime_us = airtime_us(settings.sf, u32::from(settings.payload) + FRAME_OVERHEAD);
        if u64::from(settings.interval) * 1_000_000 < airtime_us * DUTY_CYCLE_INVERSE {
            return Err(());
        }
        let blob = radio_blob(&settings, airtime_us.div_ceil(1000))?;
        sensor::set_config("lora.radio", &blob).map_err(drop)?;
        device::expect(&Item::Name).map_err(drop)?;
        device::expect(&Item::ServiceProvider).map_err(drop)?;
        device::expect(&Item::End).map_err(drop)?;
        take::finish().map_err(drop)
    }
}

enrollment_sdk::device_half!(LorawanSensorDevice);

/// Time on air of one frame of `bytes` at 125 kHz, coding rate 4/5, explicit
/// header, CRC on and an 8-symbol preamble (Semtech AN1200.13), in µs.
fn airtime_us(sf: u8, bytes: u32) -> u64 {
    let sf = u32::from(sf);
    let low_rate = u32::from(sf >= 11);
    // 8·PL − 4·SF + 28 + 16 (CRC), over 4·(SF − 2·DE), rounded up, times CR + 4.
    let numerator = (8 * bytes + 44).saturating_sub(4 * sf);
    let symbols = 8 + numerator.div_ceil(4 * (sf - 2 * low_rate)) * 5;
    // (preamble 8 + 4.25 + payload symbols) · 2^SF / 125 kHz, where 1/125 kHz is 8 µs.
    let quarter_symbols = u64::from(49 + 4 * symbols);
    quarter_symbols * (8u64 << sf) / 4
}

fn radio_blob(settings: &Radio, airtime_ms: u64) -> Result<Vec<u8>, ()> {
    let airtime_ms = u16::try_from(airtime_ms).map_err(drop)?;
    let flags = u8::from(settings.adr) | u8::from(settings.sf >= 11) << 1;
    let mut blob = Vec::with_capacity(13);
    blob.extend_from_slice(&[1, settings.sf, settings.tx_power, flags, settings.payload]);
    blob.extend_from_slice(&settings.interval.to_be_bytes());
    blob.extend_from_slice(&airtime_ms.to_be_bytes());
    let check = fletcher16(&blob);
    blob.extend_from_slice(&check.to_be_bytes());
    Ok(blob)
}

fn fletcher16(bytes: &[u8]) -> u16 {
    let (mut low, mut high) = (0u16, 0u16);
    for &byte in bytes {
        low = (low + u16::from(byte)) % 255;
        high = (high + low) % 255;
    }
    high << 8 | low
}
