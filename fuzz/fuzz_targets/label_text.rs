//! A scanned label, text to verified bundle: prefix, base45, COSE_Sign1,
//! algorithm, key id, signature, version, dictionary, zstd, manifest and
//! halves. A mutated label fails its signature, so each input is also
//! decoded without the signature check (`decode_unverified`, what
//! `inspect` does), which reaches the stages after it. Must never panic.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use qr_packer::{SignedPayload, TrustedKeys};

static TRUSTED: LazyLock<TrustedKeys> = LazyLock::new(enrollment_fuzz::vector_trust);

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (_stages, verified) = qr_packer::payload::read_text_traced(text, &TRUSTED, &[]);
    if let Ok(payload) = SignedPayload::from_text(text) {
        let unverified = payload.decode_unverified();
        for bundle in [verified, unverified].into_iter().flatten() {
            // What a reader does next with the manifest.
            let _ = bundle.manifest.validate();
            let _ = bundle.manifest.target();
        }
    }
});
