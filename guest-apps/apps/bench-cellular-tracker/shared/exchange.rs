//! The cellular tracker's exchange over `transport`, shared by both halves.
//!
//! 1. device → phone, `STATUS` (8 + EUI bytes): `C T`, version 1, modem
//!    capabilities (`CAP_*` bits), firmware version (u16), EUI length, EUI.
//! 2. phone → device, `PROFILE` (10 bytes): `C P`, radio (`RAT_*`), PSM on
//!    (0 or 1), reporting interval in s (u32), PSM active time in s (u16).
//! 3. device → phone, `ACK` (10 bytes): `C A`, then [`tag`] over the
//!    status and the profile, keyed with the label's one-time secret.
//!
//! Integers are big-endian. Only then does the phone offer the items.

/// The layout version of the status message.
pub const VERSION: u8 = 1;

pub const CAP_LTE_M: u8 = 1;
pub const CAP_NB_IOT: u8 = 2;
pub const CAP_GSM: u8 = 4;
pub const CAP_PSM: u8 = 8;

pub const RAT_LTE_M: u8 = 1;
pub const RAT_NB_IOT: u8 = 2;
pub const RAT_GSM: u8 = 3;

/// Shortest and longest reporting interval, in seconds.
pub const MIN_INTERVAL: u32 = 60;
pub const MAX_INTERVAL: u32 = 86_400;

/// The capability bit a radio needs.
pub fn capability(rat: u8) -> u8 {
    match rat {
        RAT_LTE_M => CAP_LTE_M,
        RAT_NB_IOT => CAP_NB_IOT,
        RAT_GSM => CAP_GSM,
        _ => 0,
    }
}

/// An 8-byte keyed check over `parts`: FNV-1a (64-bit) over the key, each
/// part with its length, and the key again, then a final avalanche. It
/// proves the device holds the label's one-time secret and saw the same
/// bytes; it is a checksum, not a cryptographic MAC.
pub fn tag(key: &[u8], parts: &[&[u8]]) -> [u8; 8] {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut absorb = |bytes: &[u8]| {
        for &byte in bytes {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    absorb(&(key.len() as u16).to_be_bytes());
    absorb(key);
    for part in parts {
        absorb(&(part.len() as u16).to_be_bytes());
        absorb(part);
    }
    absorb(key);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash.to_be_bytes()
}
