//! The phone half of the Wi-Fi smart meter's enrollment (world `phone-half`).
//!
//! Hands the meter its Wi-Fi credentials, owner and location, and the
//! reporting interval if the manufacturer signed one into the label, then
//! binds it to its service provider.

#![no_std]

use enrollment_sdk::phone::{self, offer};

struct WifiMeterPhone;

impl enrollment_sdk::phone::Guest for WifiMeterPhone {
    fn enroll() -> Result<(), ()> {
        offer::network().map_err(drop)?;
        offer::owner().map_err(drop)?;
        offer::location().map_err(drop)?;
        phone::forward_param("report-interval").map_err(drop)?;
        offer::service_provider().map_err(drop)?;
        offer::finish().map_err(drop)
    }
}

enrollment_sdk::phone_half!(WifiMeterPhone);
