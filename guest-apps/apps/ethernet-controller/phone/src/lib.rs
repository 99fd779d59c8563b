//! The phone half of the Ethernet building controller's enrollment (world `phone-half`).
//!
//! Wired and on DHCP: no network item. Hands over owner and location and
//! binds it to its service provider.

#![no_std]

use enrollment_sdk::phone::offer;

struct EthernetControllerPhone;

impl enrollment_sdk::phone::Guest for EthernetControllerPhone {
    fn enroll() -> Result<(), ()> {
        offer::owner().map_err(drop)?;
        offer::location().map_err(drop)?;
        offer::service_provider().map_err(drop)?;
        offer::finish().map_err(drop)
    }
}

enrollment_sdk::phone_half!(EthernetControllerPhone);
