//! The device half of the Ethernet building controller's enrollment (world
//! `device-half`).
//!
//! Strict: the owner, the location and the service provider, then the end.

#![no_std]

use enrollment_sdk::device::{self, Item, take};

struct EthernetControllerDevice;

impl enrollment_sdk::device::Guest for EthernetControllerDevice {
    fn enroll() -> Result<(), ()> {
        device::expect(&Item::Owner).map_err(drop)?;
        device::expect(&Item::Location).map_err(drop)?;
        device::expect(&Item::ServiceProvider).map_err(drop)?;
        device::expect(&Item::End).map_err(drop)?;
        take::finish().map_err(drop)
    }
}

enrollment_sdk::device_half!(EthernetControllerDevice);
