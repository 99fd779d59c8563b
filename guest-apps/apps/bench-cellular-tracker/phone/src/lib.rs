//! The phone half of the cellular asset tracker's enrollment (world
//! `phone-half`).
//!
//! Before any item, a three-message exchange with the device half
//! (`shared/exchange.rs`): it reads the tracker's status (modem
//! capabilities, firmware, EUI), answers with the radio profile the tracker
//! should use, and checks the tracker's acknowledgement, keyed with the
//! label's one-time secret. Only then does it hand over the APN, the owner
//! and the service provider.
//!
//! Label parameters: `prefer` (`lte-m`, `nb-iot` or `gsm`; default `lte-m`),
//! `interval` (reporting interval in s, 60 to 86400; default 300 on LTE-M,
//! 3600 on NB-IoT, 600 on GSM; at least 900 on NB-IoT) and `psm` (`off`
//! turns power saving off). The label must carry a secret.

#![no_std]

extern crate alloc;

use enrollment_sdk::phone::{AccessTechnology, assistant, diagnostics, manifest, offer, transport};

#[path = "../../shared/exchange.rs"]
mod exchange;

use exchange::*;

/// Length of the profile message.
const PROFILE_LEN: usize = 10;

struct CellularTrackerPhone;

impl enrollment_sdk::phone::Guest for CellularTrackerPhone {
    fn enroll() -> Result<(), ()> {
        if assistant::technology() != AccessTechnology::Cellular {
            return Err(());
        }
        let secret = manifest::secret().ok_or(())?;
        let status = transport::receive().map_err(drop)?;
        let capabilities = read_status(&status)?;
        let profile = choose(capabilities)?;
        transport::send(&profile).map_err(drop)?;
        let ack = transport::receive().map_err(drop)?;
        let expected = tag(&secret, &[&status, &profile]);
        let Some((b"CA", got)) = ack.split_first_chunk::<2>() else { return Err(()) };
        // Compare all eight bytes whatever the first difference.
        let diff = got.iter().zip(expected.iter()).fold(got.len() ^ 8, |d, (a, b)| d | usize::from(a ^ b));
        if diff != 0 {
            diagnostics::log("tracker: acknowledgement does not match the label secret");
            return Err(());
        }
        diagnostics::log("tracker: profile acknowledged");
        offer::network().map_err(drop)?;
        offer::owner().map_err(drop)?;
        offer::service_provider().map_err(drop)?;
        offer::finish().map_err(drop)
    }
}

enrollment_sdk::phone_half!(CellularTrackerPhone);

/// The capabilities in a status message from the device on the link.
fn read_status(status: &[u8]) -> Result<u8, ()> {
    let [b'C', b'T', version, capabilities, _, _, eui_len, eui @ ..] = status else { return Err(()) };
    if *version != VERSION || usize::from(*eui_len) != eui.len() {
        return Err(());
    }
    // Another device answering on the link than the one the label names.
    if eui != assistant::device_id().as_slice() {
        return Err(());
    }
    Ok(*capabilities)
}

/// The profile message for a modem with `capabilities`.
fn choose(capabilities: u8) -> Result<[u8; PROFILE_LEN], ()> {
    let preferred = match manifest::param("prefer").as_deref().map(str::trim_ascii) {
        None | Some("lte-m") => RAT_LTE_M,
        Some("nb-iot") => RAT_NB_IOT,
        Some("gsm") => RAT_GSM,
        Some(_) => return Err(()),
    };
    let rat = [preferred, RAT_LTE_M, RAT_NB_IOT, RAT_GSM]
        .into_iter()
        .find(|&rat| capabilities & capability(rat) != 0)
        .ok_or(())?;
    let mut interval = match manifest::param("interval") {
        Some(text) => seconds(text.trim_ascii()).ok_or(())?,
        None if rat == RAT_NB_IOT => 3600,
        None if rat == RAT_GSM => 600,
        None => 300,
    };
    if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&interval) {
        return Err(());
    }
    if rat == RAT_NB_IOT {
        interval = interval.max(900);
    }
    let psm_wanted = manifest::param("psm").as_deref().map(str::trim_ascii) != Some("off");
    let psm = psm_wanted && capabilities & CAP_PSM != 0 && rat != RAT_GSM && interval >= 600;
    let active: u16 = match (psm, rat) {
        (false, _) => 0,
        (true, RAT_NB_IOT) => 20,
        (true, _) => 10,
    };
    let mut profile = [0u8; PROFILE_LEN];
    profile[..4].copy_from_slice(&[b'C', b'P', rat, u8::from(psm)]);
    profile[4..8].copy_from_slice(&interval.to_be_bytes());
    profile[8..].copy_from_slice(&active.to_be_bytes());
    Ok(profile)
}

fn seconds(text: &str) -> Option<u32> {
    if text.is_empty() || text.len() > 9 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.bytes().fold(0, |n, b| n * 10 + u32::from(b - b'0')))
}
