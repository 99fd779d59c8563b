//! The device half of the Ethernet building controller's enrollment (world `device-half`).
//!
//! Takes every item until the end, then finishes.

#![no_std]

use enrollment_sdk::device;

struct EthernetControllerDevice;

impl enrollment_sdk::device::Guest for EthernetControllerDevice {
    fn enroll() -> Result<(), ()> {
        device::take_all().map_err(drop)
    }
}

enrollment_sdk::device_half!(EthernetControllerDevice);
