//! The device half of the Zigbee sensor's enrollment (world `device-half`).
//!
//! It says hello with the sensor's device id (EUI-64), then applies the phone's
//! tagged messages, each one byte of tag and then the value, until the last:
//!
//! - `N`: the credentials of the Zigbee network to join;
//! - `S`: the service provider. The sensor writes its SP-bound identifier,
//!   generates its key pair, sends both back, asks to be sealed and is done.
//!
//! The sensor takes no owner or location: `O`, `L` and any other tag, an empty
//! message, a refused value or a broken link fail the enrollment, and the host
//! then commits nothing.
//!
//! The guest only moves bytes between capabilities: the host parses and checks
//! everything. It avoids `core::fmt` entirely (no formatting, no `unwrap`), as
//! every byte counts towards the QR code the signed pair has to fit.

#![no_std]

extern crate alloc;
extern crate support;

use iot_enroll::enrollment::device;
use iot_enroll::enrollment::transport;

wit_bindgen::generate!({
    world: "device-half",
    path: "../../../../wit",
    // Less code: there are no static constructors to run, and the bindings
    // live in this crate, so their custom section needs no link helper.
    disable_run_ctors_once_workaround: true,
    disable_custom_section_link_helpers: true,
});

struct ZigbeeSensorDevice;

export!(ZigbeeSensorDevice);

impl Guest for ZigbeeSensorDevice {
    fn enroll() -> Result<(), ()> {
        transport::send(&device::device_id()).map_err(drop)?;
        loop {
            let message = transport::receive().map_err(drop)?;
            let Some((&tag, body)) = message.split_first() else { return Err(()) };
            match tag {
                b'N' => device::configure_network(body).map_err(drop)?,
                b'S' => {
                    let id = device::write_sp_bound_id(body).map_err(drop)?;
                    let public_key = device::generate_key_pair();
                    transport::send(&id).map_err(drop)?;
                    transport::send(&public_key).map_err(drop)?;
                    return device::seal().map_err(drop);
                }
                _ => return Err(()),
            }
        }
    }
}
