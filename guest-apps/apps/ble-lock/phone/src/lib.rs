//! The phone half of the Bluetooth LE smart lock's enrollment (world
//! `phone-half`).
//!
//! It waits for the lock's hello (its EUI-48), resolves the lock's service
//! provider, then hands the lock, one tagged message each, its owner (`O`)
//! and the service provider (`S`). The lock joins no network and is given no
//! credentials or location. It answers with its SP-bound identifier and its
//! public key, which are relayed to the service provider.
//!
//! The guest only moves bytes between capabilities: the host parses and checks
//! everything. It avoids `core::fmt` entirely (no formatting, no `unwrap`), as
//! every byte counts towards the QR code the signed pair has to fit.

#![no_std]

extern crate alloc;
extern crate support;

use alloc::vec::Vec;
use iot_enroll::enrollment::assistant;
use iot_enroll::enrollment::transport;

wit_bindgen::generate!({
    world: "phone-half",
    path: "../../../../wit",
    // Less code: there are no static constructors to run, and the bindings
    // live in this crate, so their custom section needs no link helper.
    disable_run_ctors_once_workaround: true,
    disable_custom_section_link_helpers: true,
});

struct BleLockPhone;

export!(BleLockPhone);

impl Guest for BleLockPhone {
    fn enroll() -> Result<(), ()> {
        let id = transport::receive().map_err(drop)?;
        let sp = assistant::resolve_sp(&id).map_err(drop)?;
        send(b'O', &assistant::owner().map_err(drop)?)?;
        send(b'S', &sp)?;
        let identity = transport::receive().map_err(drop)?;
        let public_key = transport::receive().map_err(drop)?;
        assistant::relay(&identity, &public_key).map_err(drop)
    }
}

/// Sends `body` to the device, prefixed with the one-byte `tag`.
fn send(tag: u8, body: &[u8]) -> Result<(), ()> {
    let mut message = Vec::with_capacity(1 + body.len());
    message.push(tag);
    message.extend_from_slice(body);
    transport::send(&message).map_err(drop)
}
