//! The operational app of {{name}} (world `operational`): what the device
//! runs after it is enrolled, once per activation, in a sandbox of its own.
//!
//! Each activation applies the service provider's commands (the host has
//! verified them with the SP's key; `interval=SECONDS` is kept, others are
//! ignored), asks to be woken after the interval and sends one report,
//! `seq=N`, which the host signs with the device's key. Replace the report
//! with what your device measures: see the author's guide.

#![no_std]

use enrollment_sdk::operational::{self, schedule, uplink};
use enrollment_sdk::text::{Message, command_u32};

struct App;

impl operational::Guest for App {
    fn activate() -> Result<(), ()> {
        let mut interval = operational::get_u32("interval").unwrap_or(300);
        while let Some(command) = uplink::next_command() {
            if let Some(seconds) = command_u32(&command, "interval") {
                operational::keep_u32("interval", seconds).map_err(drop)?;
                interval = seconds;
            }
        }
        schedule::wake_after(interval);
        let seq = operational::get_u32("seq").unwrap_or(0).wrapping_add(1);
        let mut report = Message::<32>::new();
        report.field("seq", seq.into());
        uplink::send(report.as_bytes()).map_err(drop)?;
        operational::keep_u32("seq", seq).map_err(drop)
    }
}

enrollment_sdk::operational_app!(App);
