//! The phone half of the Bluetooth LE smart lock's enrollment (world `phone-half`).
//!
//! A BLE lock joins no network (its gateway reaches it): the owner and the
//! service provider only.

#![no_std]

use enrollment_sdk::phone::offer;

struct BleLockPhone;

impl enrollment_sdk::phone::Guest for BleLockPhone {
    fn enroll() -> Result<(), ()> {
        offer::owner().map_err(drop)?;
        offer::service_provider().map_err(drop)?;
        offer::finish().map_err(drop)
    }
}

enrollment_sdk::phone_half!(BleLockPhone);
