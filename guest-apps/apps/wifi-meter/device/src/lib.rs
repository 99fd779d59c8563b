//! The device half of the Wi-Fi smart meter's enrollment (world `device-half`).
//!
//! Takes whatever the phone half offers (credentials, owner, location, the
//! service provider) and finishes at its end.

#![no_std]

use enrollment_sdk::device;

struct WifiMeterDevice;

impl enrollment_sdk::device::Guest for WifiMeterDevice {
    fn enroll() -> Result<(), ()> {
        device::take_all().map_err(drop)
    }
}

enrollment_sdk::device_half!(WifiMeterDevice);
