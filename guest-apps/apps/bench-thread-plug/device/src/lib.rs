//! The device half of the Thread smart plug's enrollment (world `device-half`).
//!
//! Takes, in this order: the Thread dataset, the commissioning record, the
//! schedule record if the label has one, the power-limit record, the service
//! provider and the end. It decodes and checks each record itself (checksum,
//! length, bounds, the EUI against its own) and stages what the plug's
//! firmware reads at boot:
//!
//! | config | value |
//! | --- | --- |
//! | `thread.commissioning` | vendor id, product id (u16 each), hardware revision, window in s (u16) |
//! | `plug.schedule` | count, then on/off minute pairs (u16 each); count 0: always on |
//! | `plug.limit` | max power in W, max current in 0.1 A (u16 each), overload action |
//! | `plug.trip-ma` | the over-current trip point in mA (u32): the limit plus 5 % |
//!
//! Anything else, or a record that does not check, fails the enrollment and
//! the plug stays as it was.

#![no_std]

extern crate alloc;

use alloc::vec::Vec;
use enrollment_sdk::device::{self, Item, take};
use enrollment_sdk::device::device as plug;

#[path = "../../shared/wire.rs"]
mod wire;

struct ThreadPlugDevice;

impl enrollment_sdk::device::Guest for ThreadPlugDevice {
    fn enroll() -> Result<(), ()> {
        device::expect(&Item::Network).map_err(drop)?;
        let body = record(take::next().map_err(drop)?, wire::COMMISSION)?;
        commissioning(&body)?;
        let mut next = take::next().map_err(drop)?;
        if matches!(next, Item::Record((wire::SCHEDULE, _))) {
            schedule(&record(next, wire::SCHEDULE)?)?;
            next = take::next().map_err(drop)?;
        } else {
            config("plug.schedule", &[0])?;
        }
        power_limit(&record(next, wire::POWER_LIMIT)?)?;
        device::expect(&Item::ServiceProvider).map_err(drop)?;
        device::expect(&Item::End).map_err(drop)?;
        take::finish().map_err(drop)
    }
}

enrollment_sdk::device_half!(ThreadPlugDevice);

/// The body of a record with the expected tag whose checksum matches.
fn record(item: Item, tag: u32) -> Result<Vec<u8>, ()> {
    let Item::Record((got, mut bytes)) = item else { return Err(()) };
    let at = bytes.len().checked_sub(2).ok_or(())?;
    let crc = u16::from_be_bytes([bytes[at], bytes[at + 1]]);
    bytes.truncate(at);
    if got != tag || wire::crc16(&bytes) != crc {
        return Err(());
    }
    Ok(bytes)
}

fn commissioning(body: &[u8]) -> Result<(), ()> {
    let [version, v0, v1, p0, p1, _revision, w0, w1, eui_len, eui @ ..] = body else { return Err(()) };
    let (vendor, product, window) = (be16(*v0, *v1), be16(*p0, *p1), be16(*w0, *w1));
    if *version != wire::VERSION || usize::from(*eui_len) != eui.len() {
        return Err(());
    }
    if !(1..=0xFFFE).contains(&vendor) || !(1..=0xFFFE).contains(&product) || !(30..=900).contains(&window) {
        return Err(());
    }
    // A label printed for another plug: its record names another EUI.
    if eui != plug::device_id().as_slice() {
        return Err(());
    }
    let mut value = Vec::with_capacity(7);
    value.extend_from_slice(&body[1..6]);
    value.extend_from_slice(&window.to_be_bytes());
    config("thread.commissioning", &value)
}

fn schedule(body: &[u8]) -> Result<(), ()> {
    let (&count, windows) = body.split_first().ok_or(())?;
    let count = usize::from(count);
    if count == 0 || count > wire::MAX_WINDOWS || windows.len() != 4 * count {
        return Err(());
    }
    let mut previous_off = 0;
    for (i, window) in windows.chunks_exact(4).enumerate() {
        let (on, off) = (be16(window[0], window[1]), be16(window[2], window[3]));
        // Sorted, not overlapping, each at least a minute, within the day.
        if on >= off || off > wire::DAY || (i > 0 && on < previous_off) {
            return Err(());
        }
        previous_off = off;
    }
    config("plug.schedule", body)
}

fn power_limit(body: &[u8]) -> Result<(), ()> {
    let [w0, w1, a0, a1, volts, action] = body else { return Err(()) };
    let (watts, deciamps) = (u32::from(be16(*w0, *w1)), u32::from(be16(*a0, *a1)));
    if !(1..=3680).contains(&watts) || !(1..=160).contains(&deciamps) || !(100..=250).contains(volts) || *action > 1 {
        return Err(());
    }
    // A power limit the current limit would trip before it is reached.
    if watts * 10 > u32::from(*volts) * deciamps {
        return Err(());
    }
    config("plug.limit", &[*w0, *w1, *a0, *a1, *action])?;
    let trip_ma = deciamps * 100 + deciamps * 5;
    config("plug.trip-ma", &trip_ma.to_be_bytes())
}

fn be16(high: u8, low: u8) -> u16 {
    u16::from_be_bytes([high, low])
}

fn config(name: &str, value: &[u8]) -> Result<(), ()> {
    plug::set_config(name, value).map_err(drop)
}
