//! The phone half of the Ethernet building controller's enrollment (world `phone-half`).
//!
//! Wired: no network credentials. Hands over owner and location, names the
//! controller after the site signed into the label (if any), binds it.

#![no_std]

use enrollment_sdk::phone::{manifest, offer};

struct EthernetControllerPhone;

impl enrollment_sdk::phone::Guest for EthernetControllerPhone {
    fn enroll() -> Result<(), ()> {
        offer::owner().map_err(drop)?;
        offer::location().map_err(drop)?;
        if let Some(site) = manifest::param("site") {
            offer::name(&site).map_err(drop)?;
        }
        offer::service_provider().map_err(drop)?;
        offer::finish().map_err(drop)
    }
}

enrollment_sdk::phone_half!(EthernetControllerPhone);
