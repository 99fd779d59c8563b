//! The device half of the Bluetooth LE smart lock's enrollment (world
//! `device-half`).
//!
//! The lock talks to its owner's phone and gateway over BLE, so it joins no
//! network and needs no credentials, and where it is installed is its
//! owner's business, not its service provider's. It says hello with its
//! device id (EUI-48, its BLE public address), then applies the phone's
//! tagged messages, each one byte of tag and then the value, until the last:
//!
//! - `O`: the owner;
//! - `S`: the service provider. The lock writes its SP-bound identifier,
//!   generates its key pair, sends both back, asks to be sealed and is done.
//!
//! Any other tag, an empty message, a refused value or a broken link fail the
//! enrollment, and the host then commits nothing.
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

struct BleLockDevice;

export!(BleLockDevice);

impl Guest for BleLockDevice {
    fn enroll() -> Result<(), ()> {
        transport::send(&device::device_id()).map_err(drop)?;
        loop {
            let message = transport::receive().map_err(drop)?;
            let Some((&tag, body)) = message.split_first() else { return Err(()) };
            match tag {
                b'O' => device::set_owner(body).map_err(drop)?,
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
