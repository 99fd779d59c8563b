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

use enrollment_sdk::phone::{AccessTechnology, assistant, manifest, offer, param_number};
use enrollment_sdk::record::Writer;

#[path = "../../shared/wire.rs"]
mod wire;

struct ThreadPlugPhone;

impl enrollment_sdk::phone::Guest for ThreadPlugPhone {
    fn enroll() -> Result<(), ()> {
        if assistant::technology() != AccessTechnology::Thread {
            return Err(());
        }
        offer::network().map_err(drop)?;
        offer_sealed(wire::COMMISSION, commissioning()?)?;
        if let Some(text) = manifest::param("schedule") {
            offer_sealed(wire::SCHEDULE, schedule(text.as_bytes())?)?;
        }
        offer_sealed(wire::POWER_LIMIT, power_limit()?)?;
        offer::service_provider().map_err(drop)?;
        offer::finish().map_err(drop)
    }
}

enrollment_sdk::phone_half!(ThreadPlugPhone);

/// The longest record: the commissioning record with an EUI-64 and its checksum.
type Record = Writer<20>;

/// Offers the body followed by its checksum.
fn offer_sealed(tag: u32, mut body: Record) -> Result<(), ()> {
    let crc = wire::crc16(body.as_bytes());
    body.u16(u32::from(crc));
    offer::record(tag, body.as_bytes()).map_err(drop)
}

fn commissioning() -> Result<Record, ()> {
    let eui = assistant::device_id();
    let mut body = Record::new();
    body.u8(u32::from(wire::VERSION))
        .u16(param("vendor-id", None, 1, 0xFFFE)?)
        .u16(param("product-id", None, 1, 0xFFFE)?)
        .u8(param("hw-rev", Some(1), 0, 255)?)
        .u16(param("commissioning-window", Some(180), 30, 900)?)
        .u8(eui.len() as u32)
        .bytes(&eui);
    Ok(body)
}

/// `HH:MM-HH:MM` windows separated by commas, sorted by their start.
fn schedule(text: &[u8]) -> Result<Record, ()> {
    let mut windows = [(0, 0); wire::MAX_WINDOWS];
    let mut count = 0;
    for window in text.split(|&b| b == b',') {
        let (on, off) = split_at_byte(window, b'-').ok_or(())?;
        let entry = (minute_of_day(on)?, minute_of_day(off)?);
        if count == wire::MAX_WINDOWS {
            return Err(());
        }
        // Insertion by start: after every window that starts no later.
        let mut at = count;
        while at > 0 && windows[at - 1].0 > entry.0 {
            windows[at] = windows[at - 1];
            at -= 1;
        }
        windows[at] = entry;
        count += 1;
    }
    let mut body = Record::new();
    body.u8(count as u32);
    for &(on, off) in &windows[..count] {
        body.u16(on).u16(off);
    }
    Ok(body)
}

/// `HH:MM`, `24:00` for midnight at the end of the day.
fn minute_of_day(text: &[u8]) -> Result<u32, ()> {
    let (hours, minutes) = split_at_byte(text.trim_ascii(), b':').ok_or(())?;
    if hours.is_empty() || hours.len() > 2 || minutes.len() != 2 {
        return Err(());
    }
    let number = |digits| enrollment_sdk::text::parse_fixed(digits, 0).ok_or(());
    let (hours, minutes) = (number(hours)?, number(minutes)?);
    if minutes > 59 || hours * 60 + minutes > u32::from(wire::DAY) {
        return Err(());
    }
    Ok(hours * 60 + minutes)
}

fn power_limit() -> Result<Record, ()> {
    let action = match manifest::param("overload").as_deref().map(str::trim_ascii) {
        None | Some("off") => 0,
        Some("throttle") => 1,
        Some(_) => return Err(()),
    };
    let mut body = Record::new();
    body.u16(param("max-power", None, 1, 3680)?)
        .u16(param_number("max-current", 1, None, 1, 160).map_err(drop)?)
        .u8(param("mains-voltage", Some(230), 100, 250)?)
        .u8(action);
    Ok(body)
}

/// A whole-number label parameter in `min..=max`, or its default when absent.
fn param(name: &str, default: Option<u32>, min: u32, max: u32) -> Result<u32, ()> {
    param_number(name, 0, default, min, max).map_err(drop)
}

/// The bytes before and after the first `byte`.
fn split_at_byte(text: &[u8], byte: u8) -> Option<(&[u8], &[u8])> {
    let at = text.iter().position(|&b| b == byte)?;
    Some((&text[..at], &text[at + 1..]))
}
