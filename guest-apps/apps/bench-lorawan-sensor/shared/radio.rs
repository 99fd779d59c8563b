//! The sensor's radio settings as the manufacturer signs them into the label,
//! read the same way by both halves: the phone offers them in their normal
//! form as parameters, and the device, which is handed only the names of
//! what it takes, derives its radio configuration from the same signed
//! values.
//!
//! | label param | accepted | normal form |
//! | --- | --- | --- |
//! | `sf` (required) | `7` to `12`, or `SF7` to `SF12` | `9` |
//! | `interval` (required) | seconds, or with `s`, `m`, `h`: 60 s to 24 h | seconds, `900` |
//! | `tx-power` | 2 to 14 dBm, `dBm` optional; rounded down to an even step | `14` (default) |
//! | `adr` | `on off true false yes no 1 0` | `on` (default) or `off` |
//! | `payload` | application bytes per uplink, 1 to the SF's maximum | `12` (default) |

/// The parameters the phone offers, in the order it offers them.
pub const NAMES: [&str; 5] = ["lora.sf", "lora.tx-power", "lora.interval", "lora.adr", "lora.payload"];

/// The radio settings, checked for range.
pub struct Radio {
    pub sf: u8,
    pub tx_power: u8,
    pub interval: u32,
    pub adr: bool,
    pub payload: u8,
}

impl Radio {
    /// Reads and checks the settings from the label; `None` if one is
    /// missing or out of range.
    pub fn from_label(param: fn(&str) -> Option<alloc::string::String>) -> Option<Radio> {
        let sf = param("sf")?;
        let sf = number(strip_prefix(sf.trim_ascii(), "sf"))?;
        if !(7..=12).contains(&sf) {
            return None;
        }
        let interval = param("interval")?;
        let interval = duration(interval.trim_ascii())?;
        if !(60..=86_400).contains(&interval) {
            return None;
        }
        let tx_power = match param("tx-power") {
            Some(text) => number(strip_suffix(text.trim_ascii(), "dbm").trim_ascii())?,
            None => 14,
        };
        if !(2..=14).contains(&tx_power) {
            return None;
        }
        let adr = match param("adr") {
            Some(text) => switch(text.trim_ascii())?,
            None => true,
        };
        let payload = match param("payload") {
            Some(text) => number(text.trim_ascii())?,
            None => 12,
        };
        if payload == 0 || payload > max_payload(sf as u8) {
            return None;
        }
        Some(Radio { sf: sf as u8, tx_power: (tx_power & !1) as u8, interval, adr, payload: payload as u8 })
    }
}

/// The largest application payload at a spreading factor (EU868 data rates).
pub fn max_payload(sf: u8) -> u32 {
    match sf {
        7 | 8 => 222,
        9 => 115,
        _ => 51,
    }
}

/// Digits only, at most nine of them.
fn number(text: &str) -> Option<u32> {
    if text.is_empty() || text.len() > 9 {
        return None;
    }
    let mut value = 0;
    for byte in text.bytes() {
        let digit = byte.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        value = value * 10 + u32::from(digit);
    }
    Some(value)
}

/// Seconds, or a number of seconds, minutes or hours.
fn duration(text: &str) -> Option<u32> {
    let (digits, unit) = match text.as_bytes().last()?.to_ascii_lowercase() {
        b's' => (&text[..text.len() - 1], 1),
        b'm' => (&text[..text.len() - 1], 60),
        b'h' => (&text[..text.len() - 1], 3600),
        _ => (text, 1),
    };
    number(digits.trim_ascii())?.checked_mul(unit)
}

fn switch(text: &str) -> Option<bool> {
    const ON: [&str; 4] = ["on", "true", "yes", "1"];
    const OFF: [&str; 4] = ["off", "false", "no", "0"];
    if ON.iter().any(|word| word.eq_ignore_ascii_case(text)) {
        Some(true)
    } else if OFF.iter().any(|word| word.eq_ignore_ascii_case(text)) {
        Some(false)
    } else {
        None
    }
}

/// `text` without `prefix`, in any case.
fn strip_prefix<'a>(text: &'a str, prefix: &str) -> &'a str {
    match text.get(..prefix.len()) {
        Some(head) if head.eq_ignore_ascii_case(prefix) => &text[prefix.len()..],
        _ => text,
    }
}

/// `text` without `suffix`, in any case.
fn strip_suffix<'a>(text: &'a str, suffix: &str) -> &'a str {
    let at = text.len().saturating_sub(suffix.len());
    match text.get(at..) {
        Some(tail) if tail.eq_ignore_ascii_case(suffix) => &text[..at],
        _ => text,
    }
}
