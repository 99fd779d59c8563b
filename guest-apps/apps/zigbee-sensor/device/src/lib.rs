//! The device half of the Zigbee door sensor's enrollment (world `device-half`).
//!
//! Strict: exactly the network, then the service provider, then the end;
//! anything else fails the enrollment and the device stays as it was.

#![no_std]

use enrollment_sdk::device::{self, Item, take};

struct ZigbeeSensorDevice;

impl enrollment_sdk::device::Guest for ZigbeeSensorDevice {
    fn enroll() -> Result<(), ()> {
        device::expect(&Item::Network).map_err(drop)?;
        device::expect(&Item::ServiceProvider).map_err(drop)?;
        device::expect(&Item::End).map_err(drop)?;
        take::finish().map_err(drop)
    }
}

enrollment_sdk::device_half!(ZigbeeSensorDevice);
