//! The printable form of a payload: a short prefix, then base45.
//!
//! base45 (RFC 9285) uses exactly the QR code's alphanumeric character set,
//! so a QR code stores it at 5.5 bits a character, 2 bytes in 3 characters:
//! denser than QR byte mode for binary data. The prefix `EN1:` names the
//! format version (it uses only alphanumeric-mode characters too) and lets a
//! scanner tell an enrollment label from any other QR code at a glance.

use crate::error::PayloadError;

/// The prefix of format version 1.
pub const PREFIX: &str = "EN1:";

/// The most characters a QR code holds in alphanumeric mode (version 40,
/// error correction L); a longer text cannot have come from a label.
pub const MAX_TEXT_CHARS: usize = 4296;

/// Prefix + base45 of the COSE bytes.
pub fn encode(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(PREFIX.len() + bytes.len().div_ceil(2) * 3);
    text.push_str(PREFIX);
    text.push_str(&base45::encode(bytes));
    text
}

/// Stage `Prefix`: the text after the prefix. A trailing line break (from a
/// text file) is ignored; spaces are not, since base45 uses them.
pub fn strip_prefix(text: &str) -> Result<&str, PayloadError> {
    let text = text.trim_end_matches(['\n', '\r']);
    if text.len() > MAX_TEXT_CHARS {
        return Err(PayloadError::TextTooLong { len: text.len(), max: MAX_TEXT_CHARS });
    }
    text.strip_prefix(PREFIX).ok_or_else(|| PayloadError::WrongPrefix {
        expected: PREFIX,
        found: text.chars().take(PREFIX.len()).collect(),
    })
}

/// Stage `Base45`.
pub fn decode_base45(body: &str) -> Result<Vec<u8>, PayloadError> {
    base45::decode(body).map_err(|e| PayloadError::BadBase45(format!("{e:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_uses_only_qr_alphanumeric_characters() {
        let bytes: Vec<u8> = (0..=255).collect();
        let text = encode(&bytes);
        assert!(text.bytes().all(|b| b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:".contains(&b)));
        assert_eq!(text.len(), PREFIX.len() + 384);
        assert_eq!(decode_base45(strip_prefix(&format!("{text}\n")).unwrap()).unwrap(), bytes);
    }

    #[test]
    fn wrong_prefix_bad_base45_and_overlong_text_are_told_apart() {
        assert!(matches!(strip_prefix("HC1:NCF"), Err(PayloadError::WrongPrefix { found, .. }) if found == "HC1:"));
        assert!(matches!(strip_prefix("en1:ABC"), Err(PayloadError::WrongPrefix { .. })));
        assert!(matches!(decode_base45("abc"), Err(PayloadError::BadBase45(_))));
        assert!(matches!(decode_base45("GGW"), Err(PayloadError::BadBase45(_))), "over 65535");
        assert!(matches!(decode_base45("A"), Err(PayloadError::BadBase45(_))), "dangling character");
        let long = format!("{PREFIX}{}", "0".repeat(MAX_TEXT_CHARS));
        assert!(matches!(strip_prefix(&long), Err(PayloadError::TextTooLong { .. })));
    }
}
