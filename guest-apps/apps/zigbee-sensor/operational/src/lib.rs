//! The Zigbee sensor's operational app (world `operational`): what the
//! sensor runs after enrollment, once per activation.
//!
//! Each activation applies the SP's verified commands (`interval=SECONDS`,
//! kept; others are ignored), asks to be woken after the interval (kept,
//! else the enrollment's `interval`, else 60 s) and sends one reading,
//! `temperature=T seq=N`: N counts the readings (1 first, kept as `seq`)
//! and T is [`temperature`]`(N)`, a stand-in for the sensor that tests can
//! recompute. The sensor has no IP: the host signs the message and its
//! gateway forwards it to the SP, unable to alter it unnoticed.

#![no_std]

use enrollment_sdk::operational::{self, schedule, uplink};
use enrollment_sdk::text::{Message, command_u32};

/// The reporting interval without a command or configuration, in seconds.
const DEFAULT_INTERVAL: u32 = 60;

/// The temperature for reading number `seq`, in hundredths of a degree
/// Celsius: 20.00 °C to 22.25 °C, in steps of 0.25 °C.
pub fn temperature(seq: u32) -> u32 {
    2000 + (seq % 10) * 25
}

struct ZigbeeSensor;

impl operational::Guest for ZigbeeSensor {
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
        message.field("temperature", temperature(seq).into()).field("seq", seq.into());
        uplink::send(message.as_bytes()).map_err(drop)?;
        operational::keep_u32("seq", seq).map_err(drop)
    }
}

enrollment_sdk::operational_app!(ZigbeeSensor);
