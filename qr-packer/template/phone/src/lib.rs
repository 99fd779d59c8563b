//! The phone half of {{name}}'s enrollment (world `phone-half`): runs on the
//! phone or gateway that assists the installation.
//!
//! It offers hand-over items; the values (credentials, owner, the service
//! provider) come from the assistant, never through this code. Change the
//! sequence to what your device needs: see the author's guide.

#![no_std]

use enrollment_sdk::phone::{self, diagnostics, offer};

struct Phone;

impl phone::Guest for Phone {
    fn enroll() -> Result<(), ()> {
        diagnostics::log("phone half: handing over");
        offer::network().map_err(drop)?;
        offer::owner().map_err(drop)?;
        offer::location().map_err(drop)?;
        offer::service_provider().map_err(drop)?;
        offer::finish().map_err(drop)
    }
}

enrollment_sdk::phone_half!(Phone);
