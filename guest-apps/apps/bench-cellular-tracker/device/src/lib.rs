//! The device half of the cellular asset tracker's enrollment (world
//! `device-half`).
//!
//! Sends the tracker's status (`shared/exchange.rs`), takes the radio
//! profile the phone chose, checks it against what the modem can do,
//! stages it and acknowledges it with a check keyed by the label's one-time
//! secret; then takes the APN, the owner, the service provider and the end.
//!
//! The modem's capabilities are this firmware's (LTE-M, NB-IoT, PSM), or
//! the label's `modem` parameter for other SKUs: a comma-separated list of
//! `lte-m`, `nb-iot`, `gsm` and `psm`. Staged: `cell.rat` (`lte-m`,
//! `nb-iot` or `gsm`) and `cell.profile` (radio, PSM, interval in s as u32,
//! PSM active time in s as u16; big-endian).

#![no_std]

extern crate alloc;

use alloc::vec::Vec;
use enrollment_sdk::device::device as tracker;
use enrollment_sdk::device::{self, Item, diagnostics, manifest, take, transport};

#[path = "../../shared/exchange.rs"]
mod exchange;

use exchange::*;

/// This firmware's version, 2.3.
const FIRMWARE: u16 = 0x0203;

/// What this firmware's modem does unless the label says otherwise.
const DEFAULT_CAPABILITIES: u8 = CAP_LTE_M | CAP_NB_IOT | CAP_PSM;

/// Longest PSM active time (T3324) the tracker accepts, in seconds.
const MAX_ACTIVE: u16 = 255;

struct CellularTrackerDevice;

impl enrollment_sdk::device::Guest for CellularTrackerDevice {
    fn enroll() -> Result<(), ()> {
        let secret = manifest::secret().ok_or(())?;
        let capabilities = capabilities()?;
        let status = status(capabilities);
        transport::send(&status).map_err(drop)?;
        let profile = transport::receive().map_err(drop)?;
        check_profile(&profile, capabilities)?;
        let mut ack = Vec::with_capacity(10);
        ack.extend_from_slice(b"CA");
        ack.extend_from_slice(&tag(&secret, &[&status, &profile]));
        transport::send(&ack).map_err(drop)?;
        diagnostics::log("tracker: profile staged and acknowledged");
        device::expect(&Item::Network).map_err(drop)?;
        device::expect(&Item::Owner).map_err(drop)?;
        device::expect(&Item::ServiceProvider).map_err(drop)?;
        device::expect(&Item::End).map_err(drop)?;
        take::finish().map_err(drop)
    }
}

enrollment_sdk::device_half!(CellularTrackerDevice);

fn capabilities() -> Result<u8, ()> {
    let Some(list) = manifest::param("modem") else { return Ok(DEFAULT_CAPABILITIES) };
    let mut capabilities = 0;
    for word in list.split(',') {
        capabilities |= match word.trim_ascii() {
            "lte-m" => CAP_LTE_M,
            "nb-iot" => CAP_NB_IOT,
            "gsm" => CAP_GSM,
            "psm" => CAP_PSM,
            _ => return Err(()),
        };
    }
    // A modem with no radio at all.
    if capabilities & !CAP_PSM == 0 {
        return Err(());
    }
    Ok(capabilities)
}

fn status(capabilities: u8) -> Vec<u8> {
    let eui = tracker::device_id();
    let mut status = Vec::with_capacity(7 + eui.len());
    status.extend_from_slice(&[b'C', b'T', VERSION, capabilities]);
    status.extend_from_slice(&FIRMWARE.to_be_bytes());
    status.push(eui.len() as u8);
    status.extend_from_slice(&eui);
    status
}

/// Checks the phone's profile against the modem and stages it.
fn check_profile(profile: &[u8], capabilities: u8) -> Result<(), ()> {
    let [b'C', b'P', rat, psm, i0, i1, i2, i3, a0, a1] = *profile else { return Err(()) };
    let interval = u32::from_be_bytes([i0, i1, i2, i3]);
    let active = u16::from_be_bytes([a0, a1]);
    if capabilities & capability(rat) == 0 || !(MIN_INTERVAL..=MAX_INTERVAL).contains(&interval) {
        return Err(());
    }
    let psm_ok = match psm {
        0 => active == 0,
        1 => capabilities & CAP_PSM != 0 && rat != RAT_GSM && (1..=MAX_ACTIVE).contains(&active),
        _ => false,
    };
    if !psm_ok {
        return Err(());
    }
    let name: &[u8] = match rat {
        RAT_LTE_M => b"lte-m",
        RAT_NB_IOT => b"nb-iot",
        _ => b"gsm",
    };
    tracker::set_config("cell.rat", name).map_err(drop)?;
    tracker::set_config("cell.profile", &profile[2..]).map_err(drop)
}
