//! The device half of {{name}}'s enrollment (world `device-half`): runs on
//! the device being enrolled.
//!
//! It takes the items the phone half offers, in order; the host checks and
//! stages each, and commits all of them at once only if this half finishes.

#![no_std]

use enrollment_sdk::device::{self, Item, take};

struct Device;

impl device::Guest for Device {
    fn enroll() -> Result<(), ()> {
        device::expect(&Item::Network).map_err(drop)?;
        device::expect(&Item::Owner).map_err(drop)?;
        device::expect(&Item::Location).map_err(drop)?;
        device::expect(&Item::ServiceProvider).map_err(drop)?;
        device::expect(&Item::End).map_err(drop)?;
        take::finish().map_err(drop)
    }
}

enrollment_sdk::device_half!(Device);
