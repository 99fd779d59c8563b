//! The device half of the Ethernet building controller's enrollment (world
//! `device-half`).
//!
//! The controller is wired: it gets its address on the wire and needs no
//! network credentials. It says hello with its device id (EUI-48), then
//! applies the phone's tagged messages, each one byte of tag and then the
//! value, until the last:
//!
//! - `O`: the owner, `L`: the location;
//! - `S`: the service provider. The controller writes its SP-bound
//!   identifier, generates its key pair, sends both back, asks to be sealed
//!   and is done.
//!
//! `N` (there is no network to configure), any other tag, an empty message,
//! a refused value or a broken link fail the enrollment, and the host then
//! commits nothing.
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

struct EthernetControllerDevice;

export!(EthernetControllerDevice);

impl Guest for EthernetControllerDevice {
    fn enroll() -> Result<(), ()> {
        transport::send(&device::device_id()).map_err(drop)?;
        loop {
            let message = transport::receive().map_err(drop)?;
            let Some((&tag, body)) = message.split_first() else { return Err(()) };
            match tag {
                b'O' => device::set_owner(body),
                b'L' => device::set_location(body),
                b'S' => {
                    let id = device::write_sp_bound_id(body).map_err(drop)?;
                    let public_key = device::generate_key_pair();
                    transport::send(&id).map_err(drop)?;
                    transport::send(&public_key).map_err(drop)?;
                    return device::seal().map_err(drop);
                }
                _ => return Err(()),
            }
            .map_err(drop)?;
        }
    }
}
