//! The phone half of the Wi-Fi smart meter's enrollment (world `phone-half`).
//!
//! Hands the meter its Wi-Fi credentials, owner and location, then binds it
//! to its service provider: the SDK's common hand-over.

#![no_std]

use enrollment_sdk::phone;

struct WifiMeterPhone;

impl enrollment_sdk::phone::Guest for WifiMeterPhone {
    fn enroll() -> Result<(), ()> {
        phone::hand_over().map_err(drop)
    }
}

enrollment_sdk::phone_half!(WifiMeterPhone);
