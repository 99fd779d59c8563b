//! The Thread smart plug's own records, shared by both halves: their tags and
//! the checksum that closes each of them.
//!
//! Every record is a body followed by its CRC-16/CCITT-FALSE (big-endian):
//!
//! | tag | body |
//! | --- | --- |
//! | `COMMISSION` | version 1, vendor id (u16), product id (u16), hardware revision (u8), commissioning window in s (u16), EUI length (6 or 8), the EUI |
//! | `SCHEDULE` | count n (1 to 4), then n times on and off minute of the day (u16 each) |
//! | `POWER_LIMIT` | max power in W (u16), max current in 0.1 A (u16), mains voltage in V (u8), overload action (0 off, 1 throttle) |
//!
//! All integers are big-endian.

/// "TP" and a number: the commissioning record.
pub const COMMISSION: u32 = 0x5450_0001;
/// The on/off schedule, offered only when the label has one.
pub const SCHEDULE: u32 = 0x5450_0002;
/// The power limit.
pub const POWER_LIMIT: u32 = 0x5450_0003;

/// The commissioning record's layout version.
pub const VERSION: u8 = 1;
/// Most on/off windows a schedule may hold.
pub const MAX_WINDOWS: usize = 4;
/// Minutes in a day: schedule minutes are below it.
pub const DAY: u16 = 1440;

/// CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF).
pub fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for &byte in bytes {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc
}
