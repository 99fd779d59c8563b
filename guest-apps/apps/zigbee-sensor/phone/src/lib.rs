//! The phone half of the Zigbee door sensor's enrollment (world `phone-half`).
//!
//! The sensor needs only the Zigbee network and its service provider.

#![no_std]

use enrollment_sdk::phone::offer;

struct ZigbeeSensorPhone;

impl enrollment_sdk::phone::Guest for ZigbeeSensorPhone {
    fn enroll() -> Result<(), ()> {
        offer::network().map_err(drop)?;
        offer::service_provider().map_err(drop)?;
        offer::finish().map_err(drop)
    }
}

enrollment_sdk::phone_half!(ZigbeeSensorPhone);
