//! The stages after the signature: the input is the signed bundle (CBOR
//! `[version, dictionary, manifest, halves]`), signed here with the trusted
//! test key so the fuzzer is not stopped by the signature it cannot forge.
//! Then version, dictionary, zstd (with the shipped dictionaries and the
//! 128 KiB cap), manifest and halves. Must never panic.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use qr_packer::{ManufacturerKey, TrustedKeys};

static KEY: LazyLock<ManufacturerKey> = LazyLock::new(enrollment_fuzz::vector_key);
static TRUSTED: LazyLock<TrustedKeys> = LazyLock::new(enrollment_fuzz::vector_trust);

fuzz_target!(|data: &[u8]| {
    let Ok(signed) = KEY.sign_raw(data.to_vec()) else { return };
    if let Ok(bundle) = signed.verify(&TRUSTED) {
        let _ = bundle.manifest.validate();
        let _ = bundle.manifest.target();
    }
    // The halves' trailer decoder on its own, on the raw input.
    let _ = qr_packer::Halves::from_bytes(data);
});
