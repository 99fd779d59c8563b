//! Dictionary seed, not an app: an operational app that calls every import
//! of world `operational` and every SDK helper for it once (see the phone
//! half), so a label that carries an operational app finds its component
//! structure in the shipped dictionary too.

#![no_std]

use enrollment_sdk::operational::{self, diagnostics, schedule, settings, uplink};
use enrollment_sdk::text::{Message, command_u32};

struct Seed;

impl operational::Guest for Seed {
    fn activate() -> Result<(), ()> {
        diagnostics::log("seed");
        let _ = settings::identifier();
        let mut n = operational::get_u32("n").unwrap_or(0);
        while let Some(command) = uplink::next_command() {
            if let Some(value) = command_u32(&command, "n") {
                operational::keep_u32("n", value).map_err(drop)?;
                n = value;
            }
        }
        schedule::wake_after(n);
        let mut message = Message::<40>::new();
        message.field("n", n.into()).field("seq", 1);
        uplink::send(message.as_bytes()).map_err(drop)?;
        settings::keep("raw", &[0]).map_err(drop)
    }
}

enrollment_sdk::operational_app!(Seed);
