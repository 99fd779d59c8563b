//! The Wi-Fi smart meter's operational app (world `operational`): what the
//! meter runs after enrollment, once per activation.
//!
//! Each activation applies the SP's verified commands (`interval=SECONDS`,
//! kept; others are ignored), asks to be woken after the interval (kept,
//! else the enrollment's `interval`, else 60 s) and sends one reading,
//! `reading=R seq=N`: N counts the readings (1 first, kept as `seq`) and R
//! is [`reading`]`(N)`, a stand-in for the meter's register that tests can
//! recompute. The meter is an IP device: the host signs the message and
//! sends it to the SP's endpoint itself.

#![no_std]

use enrollment_sdk::operational::{self, schedule, uplink};
use enrollment_sdk::text::{Message, command_u32};

/// The reporting interval without a command or configuration, in seconds.
const DEFAULT_INTERVAL: u32 = 60;

/// The meter's reading for reading number `seq`, in watt-hours.
pub fn reading(seq: u32) -> u32 {
    1000u32.wrapping_add(seq.wrapping_mul(7))
}

struct WifiMeter;

impl operational::Guest for WifiMeter {
    fn activate() -> Result<(), ()> {
        let mut interval = operational::get_u32("interval").unwrap_or(DEFAULT_INTERVAL);
        while let Some(command) = uplink::next_command() {
            if let Some(seconds) = command_u32(&command, "interval") {
                operational::keep_u32("interval", seconds).map_err(drop)?;
                interval = seconds;
            }
        }
        // Asked before sending, so a failed send still comes back.
        schedule::wake_after(interval);

        let seq = operational::get_u32("seq").unwrap_or(0).wrapping_add(1);
        let mut message = Message::<40>::new();
        message.field("reading", reading(seq).into()).field("seq", seq.into());
        uplink::send(message.as_bytes()).map_err(drop)?;
        operational::keep_u32("seq", seq).map_err(drop)
    }
}

enrollment_sdk::operational_app!(WifiMeter);
