//! The device half of the Wi-Fi smart meter's enrollment (world `device-half`).
//!
//! Strict: the Wi-Fi credentials, the owner, the location and the service
//! provider, in that order, then the end; anything else fails the
//! enrollment and the meter stays as it was.

#![no_std]

use enrollment_sdk::device::{self, Item, take};

struct WifiMeterDevice;

impl enrollment_sdk::device::Guest for WifiMeterDevice {
    fn enroll() -> Result<(), ()> {
        device::expect(&Item::Network).map_err(drop)?;
        device::expect(&Item::Owner).map_err(drop)?;
        device::expect(&Item::Location).map_err(drop)?;
        device::expect(&Item::ServiceProvider).map_err(drop)?;
        device::expect(&Item::End).map_err(drop)?;
        take::finish().map_err(drop)
    }
}

enrollment_sdk::device_half!(WifiMeterDevice);
