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

use enrollment_sdk::device::device as plug;
use enrollment_sdk::device::{self, Item, take};
use enrollment_sdk::record::Reader;

#[path = "../../shared/wire.rs"]
mod wire;

struct ThreadPlugDevice;

impl enrollment_sdk::device::Guest for ThreadPlugDevice {
    fn enroll() -> Result<(), ()> {
        device::expect(&Item::Network).map_err(drop)?;
        commissioning(&record(take::next().map_err(drop)?, wire::COMMISSION)?)?;
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
fn record(item: Item, tag: u32) -> Result<alloc::vec::Vec<u8>, ()> {
    let Item::Record((got, mut bytes)) = item else { return Err(()) };
    let at = bytes.len().checked_sub(2).ok_or(())?;
    let crc = Reader::new(&bytes[at..]).u16().ok_or(())?;
    bytes.truncate(at);
    if got != tag || u32::from(wire::crc16(&bytes)) != crc {
        return Err(());
    }
    Ok(bytes)
}

fn commissioning(body: &[u8]) -> Result<(), ()> {
    let mut r = Reader::new(body);
    let (version, vendor, product) = (r.u8().ok_or(())?, r.u16().ok_or(())?, r.u16().ok_or(())?);
    let (_revision, window) = (r.u8().ok_or(())?, r.u16().ok_or(())?);
    let eui_len = r.u8().ok_or(())?;
    let eui = r.rest();
    if version != u32::from(wire::VERSION) || eui_len as usize != eui.len() {
        return Err(());
    }
    if !(1..=0xFFFE).contains(&vendor) || !(1..=0xFFFE).contains(&product) || !(30..=900).contains(&window) {
        return Err(());
    }
    // A label printed for another plug: its record names another EUI.
    if eui != plug::device_id().as_slice() {
        return Err(());
    }
    let mut value = [0; 7];
    value[..5].copy_from_slice(&body[1..6]);
    value[5..].copy_from_slice(&(window as u16).to_be_bytes());
    config("thread.commissioning", &value)
}

fn schedule(body: &[u8]) -> Result<(), ()> {
    let mut r = Reader::new(body);
    let count = r.u8().ok_or(())? as usize;
    if count == 0 || count > wire::MAX_WINDOWS || r.rest().len() != 4 * count {
        return Err(());
    }
    let mut previous_off = 0;
    for i in 0..count {
        let (on, off) = (r.u16().ok_or(())?, r.u16().ok_or(())?);
        // Sorted, not overlapping, each at least a minute, within the day.
        if on >= off || off > u32::from(wire::DAY) || (i > 0 && on < previous_off) {
            return Err(());
        }
        previous_off = off;
    }
    config("plug.schedule", body)
}

fn power_limit(body: &[u8]) -> Result<(), ()> {
    let mut r = Reader::new(body);
    let (watts, deciamps) = (r.u16().ok_or(())?, r.u16().ok_or(())?);
    let (volts, action) = (r.u8().ok_or(())?, r.u8().ok_or(())?);
    r.finish().ok_or(())?;
    if !(1..=3680).contains(&watts) || !(1..=160).contains(&deciamps) || !(100..=250).contains(&volts) || action > 1 {
        return Err(());
    }
    // A power limit the current limit would trip before it is reached.
    if watts * 10 > volts * deciamps {
        return Err(());
    }
    config("plug.limit", &[body[0], body[1], body[2], body[3], body[5]])?;
    let trip_ma = deciamps * 100 + deciamps * 5;
    config("plug.trip-ma", &trip_ma.to_be_bytes())
}

fn config(name: &str, value: &[u8]) -> Result<(), ()> {
    plug::set_config(name, value).map_err(drop)
}
