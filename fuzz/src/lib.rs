//! What the fuzz targets share: the keys the committed test vectors
//! (`tests/vectors/`) are signed with, so a real label verifies and the
//! fuzzer starts from inputs that pass every stage.

use qr_packer::{ManufacturerKey, TrustedKeys};
use sha2::{Digest, Sha256};

/// The manufacturer key of the test vectors (`qr-packer/examples/make-vectors.rs`
/// derives it the same way: SHA-256 of a fixed seed).
pub fn vector_key() -> ManufacturerKey {
    let secret: [u8; 32] = Sha256::digest(b"qr-packer test vectors: manufacturer key").into();
    match ManufacturerKey::from_secret("vectors-1", secret) {
        Ok(key) => key,
        Err(e) => panic!("the fixed key id is valid: {e}"),
    }
}

/// A reader that trusts the vectors' key.
pub fn vector_trust() -> TrustedKeys {
    vector_key().trusted()
}
