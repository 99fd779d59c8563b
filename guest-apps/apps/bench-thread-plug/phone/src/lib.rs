//! The phone half of the Thread smart plug's enrollment (world `phone-half`).
//!
//! Hands the plug its Thread dataset, then three records of the plug's own
//! (`shared/wire.rs`) built from the label's parameters, then its service
//! provider:
//!
//! - `vendor-id`, `product-id` (required, 1 to 65534), `hw-rev` (0 to 255,
//!   default 1), `commissioning-window` (30 to 900 s, default 180): the
//!   commissioning record, bound to the device on the link;
//! - `schedule` (optional, e.g. `06:30-09:00,17:00-23:30`): the schedule
//!   record, windows sorted by their start;
//! - `max-power` (W, 1 to 3680, required), `max-current` (A with one decimal,
//!   e.g. `10` or `13.5`, required), `mains-voltage` (100 to 250 V, default
//!   230), `overload` (`off` or `throttle`, default `off`): the power-limit
//!   record.

#![no_std]

extern crate alloc;

use alloc::vec::Vec;
use enrollment_sdk::phone::{AccessTechnology, assistant, manifest, offer};

#[path = "../../shared/wire.rs"]
mod wire;

struct ThreadPlugPhone;

impl enrollment_sdk::phone::Guest for ThreadPlugPhone {
    fn enroll() -> Result<(), ()> {
        if assistant::technology() != AccessTechnology::Thread {
            return Err(());
        }
        offer::network().map_err(drop)?;
        offer::record(wire::COMMISSION, &sealed(commissioning()?)).map_err(drop)?;
        if let Some(text) = manifest::param("schedule") {
            offer::record(wire::SCHEDULE, &sealed(schedule(&text)?)).map_err(drop)?;
        }
        offer::record(wire::POWER_LIMIT, &sealed(power_limit()?)).map_err(drop)?;
        offer::service_provider().map_err(drop)?;
        offer::finish().map_err(drop)
    }
}

enrollment_sdk::phone_half!(ThreadPlugPhone);

/// The body followed by its checksum.
fn sealed(mut body: Vec<u8>) -> Vec<u8> {
    let crc = wire::crc16(&body);
    body.extend_from_slice(&crc.to_be_bytes());
    body
}

fn commissioning() -> Result<Vec<u8>, ()> {
    let vendor = param("vendor-id", None, 1, 0xFFFE)? as u16;
    let product = param("product-id", None, 1, 0xFFFE)? as u16;
    let revision = param("hw-rev", Some(1), 0, 255)? as u8;
    let window = param("commissioning-window", Some(180), 30, 900)? as u16;
    let eui = assistant::device_id();
    let mut body = Vec::with_capacity(9 + eui.len() + 2);
    body.push(wire::VERSION);
    body.extend_from_slice(&vendor.to_be_bytes());
    body.extend_from_slice(&product.to_be_bytes());
    body.push(revision);
    body.extend_from_slice(&window.to_be_bytes());
    body.push(eui.len() as u8);
    body.extend_from_slice(&eui);
    Ok(body)
}

/// `HH:MM-HH:MM` windows separated by commas, sorted by their start.
fn schedule(text: &str) -> Result<Vec<u8>, ()> {
    let mut windows: Vec<(u16, u16)> = Vec::new();
    for window in text.split(',') {
        let (on, off) = window.trim_ascii().split_once('-').ok_or(())?;
        let entry = (minute_of_day(on)?, minute_of_day(off)?);
        let at = windows.iter().position(|w| w.0 > entry.0).unwrap_or(windows.len());
        windows.insert(at, entry);
    }
    if windows.len() > wire::MAX_WINDOWS {
        return Err(());
    }
    let mut body = Vec::with_capacity(1 + 4 * windows.len() + 2);
    body.push(windows.len() as u8);
    for (on, off) in windows {
        body.extend_from_slice(&on.to_be_bytes());
        body.extend_from_slice(&off.to_be_bytes());
    }
    Ok(body)
}

/// `HH:MM`, `24:00` for midnight at the end of the day.
fn minute_of_day(text: &str) -> Result<u16, ()> {
    let (hours, minutes) = text.trim_ascii().split_once(':').ok_or(())?;
    if hours.is_empty() || hours.len() > 2 || minutes.len() != 2 {
        return Err(());
    }
    let (hours, minutes) = (fixed(hours, 0).ok_or(())?, fixed(minutes, 0).ok_or(())?);
    if minutes > 59 || hours * 60 + minutes > u32::from(wire::DAY) {
        return Err(());
    }
    Ok((hours * 60 + minutes) as u16)
}

fn power_limit() -> Result<Vec<u8>, ()> {
    let watts = param("max-power", None, 1, 3680)? as u16;
    let current = manifest::param("max-current").ok_or(())?;
    let deciamps = fixed(current.trim_ascii(), 1).ok_or(())?;
    if deciamps == 0 || deciamps > 160 {
        return Err(());
    }
    let volts = param("mains-voltage", Some(230), 100, 250)? as u8;
    let action = match manifest::param("overload").as_deref().map(str::trim_ascii) {
        None | Some("off") => 0,
        Some("throttle") => 1,
        Some(_) => return Err(()),
    };
    let mut body = Vec::with_capacity(8);
    body.extend_from_slice(&watts.to_be_bytes());
    body.extend_from_slice(&(deciamps as u16).to_be_bytes());
    body.push(volts);
    body.push(action);
    Ok(body)
}

/// A whole-number label parameter in `min..=max`, or its default when absent.
fn param(name: &str, default: Option<u32>, min: u32, max: u32) -> Result<u32, ()> {
    let value = match manifest::param(name) {
        Some(text) => fixed(text.trim_ascii(), 0).ok_or(())?,
        None => default.ok_or(())?,
    };
    if value < min || value > max {
        return Err(());
    }
    Ok(value)
}

/// A decimal with at most `places` digits after the point, scaled by
/// `10^places`: `fixed("13.5", 1)` is 135, `fixed("16", 1)` is 160.
fn fixed(text: &str, places: usize) -> Option<u32> {
    let (whole, fraction) = match text.split_once('.') {
        Some((_, "")) => return None,
        Some(parts) => parts,
        None => (text, ""),
    };
    if whole.is_empty() || fraction.len() > places {
        return None;
    }
    let mut value: u32 = 0;
    for byte in whole.bytes().chain(fraction.bytes()) {
        let digit = byte.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u32::from(digit))?;
    }
    for _ in fraction.len()..places {
        value = value.checked_mul(10)?;
    }
    Some(value)
}
