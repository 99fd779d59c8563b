//! The device half of the Bluetooth LE smart lock's enrollment (world `device-half`).
//!
//! Strict: the owner, then the service provider, then the end.

#![no_std]

use enrollment_sdk::device::{self, Item, take};

struct BleLockDevice;

impl enrollment_sdk::device::Guest for BleLockDevice {
    fn enroll() -> Result<(), ()> {
        device::expect(&Item::Owner).map_err(drop)?;
        device::expect(&Item::ServiceProvider).map_err(drop)?;
        device::expect(&Item::End).map_err(drop)?;
        take::finish().map_err(drop)
    }
}

enrollment_sdk::device_half!(BleLockDevice);
