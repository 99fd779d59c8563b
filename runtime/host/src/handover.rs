//! Hand-over items: what the phone half offers and the device half takes.
//!
//! The phone half names an item (`offer.owner`, `offer.network`, ...); the
//! assistant's host fills in the value from what the assistant knows, checks
//! it, and sends it as one [`Frame::Item`](crate::frame::Frame::Item). The
//! device's host checks it again for this device (the assistant is not
//! trusted for the shape of anything) and stages it. App code never parses
//! or frames an item, which keeps halves small, and never sees a credential.
//!
//! Limits are checked by the one function per kind here, on both ends.

use serde::{Deserialize, Serialize};

use crate::link::MAX_MESSAGE;

/// Longest owner, location, name or parameter value, in bytes.
pub const MAX_TEXT: usize = 256;

/// Longest parameter or configuration name, in bytes.
pub const MAX_NAME: usize = 32;

/// Most configuration values one enrollment may stage.
pub const MAX_CONFIG_ENTRIES: usize = 64;

/// The service provider a device is bound to, with what the device needs to
/// talk to it (US 2025/0254525 claims 5–6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpBinding {
    /// The SP identity, in its text form.
    pub sp: String,
    /// Where the device reaches its SP (a URL), when the SP registered one.
    pub endpoint: Option<String>,
    /// The SP's Ed25519 public key, when the SP registered one.
    pub public_key: Option<[u8; 32]>,
}

/// One item on the link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HandoverItem {
    Owner(String),
    Location(String),
    Name(String),
    /// Network credentials in the runtime's encoding (`crate::credentials`).
    Network(#[serde(with = "serde_bytes")] Vec<u8>),
    ServiceProvider(SpBinding),
    Parameter { name: String, value: String },
    Record { tag: u32, #[serde(with = "serde_bytes")] value: Vec<u8> },
    /// Phone → device: nothing more.
    End,
    /// Device → phone, answering `End`: the identity and key the device staged.
    Identity { sp_bound_id: String, public_key: [u8; 32] },
}

impl HandoverItem {
    /// A short description for traces and errors: the kind and size, never
    /// the value (credentials travel as items).
    pub fn describe(&self) -> String {
        match self {
            HandoverItem::Owner(t) => format!("owner ({} bytes)", t.len()),
            HandoverItem::Location(t) => format!("location ({} bytes)", t.len()),
            HandoverItem::Name(t) => format!("name ({} bytes)", t.len()),
            HandoverItem::Network(b) => format!("network credentials ({} bytes)", b.len()),
            HandoverItem::ServiceProvider(b) => format!("service provider {}", b.sp),
            HandoverItem::Parameter { name, value } => format!("parameter {name} ({} bytes)", value.len()),
            HandoverItem::Record { tag, value } => format!("record {tag:#010x} ({} bytes)", value.len()),
            HandoverItem::End => "end of items".into(),
            HandoverItem::Identity { sp_bound_id, .. } => format!("identity {sp_bound_id}"),
        }
    }

    /// Checks the shape of the item (both ends call it).
    pub fn check(&self) -> Result<(), ItemError> {
        match self {
            HandoverItem::Owner(t) | HandoverItem::Location(t) | HandoverItem::Name(t) => check_text(t),
            HandoverItem::Network(bytes) if bytes.len() > MAX_MESSAGE => Err(ItemError::TooLarge),
            HandoverItem::Network(_) | HandoverItem::End | HandoverItem::Identity { .. } => Ok(()),
            HandoverItem::ServiceProvider(binding) => check_binding(binding),
            HandoverItem::Parameter { name, value } => {
                check_name(name)?;
                check_text(value)
            }
            HandoverItem::Record { value, .. } if value.len() > MAX_MESSAGE => Err(ItemError::TooLarge),
            HandoverItem::Record { .. } => Ok(()),
        }
    }
}

/// Why an item was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ItemError {
    #[error("the value is malformed")]
    Invalid,
    #[error("the value is too large")]
    TooLarge,
}

impl ItemError {
    /// The refusal a half gets for it.
    pub fn refusal(self) -> crate::bindings::Refusal {
        match self {
            ItemError::TooLarge => crate::bindings::Refusal::TooLarge,
            ItemError::Invalid => crate::bindings::Refusal::InvalidValue,
        }
    }
}

/// A text value: UTF-8 (guaranteed by the type), bounded, not blank, no
/// control characters.
pub fn check_text(text: &str) -> Result<(), ItemError> {
    if text.len() > MAX_TEXT {
        return Err(ItemError::TooLarge);
    }
    if text.trim().is_empty() || text.chars().any(char::is_control) {
        return Err(ItemError::Invalid);
    }
    Ok(())
}

/// A parameter or configuration name: 1 to [`MAX_NAME`] of `a-z 0-9 . _ -`.
pub fn check_name(name: &str) -> Result<(), ItemError> {
    if name.len() > MAX_NAME {
        return Err(ItemError::TooLarge);
    }
    let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-');
    if name.is_empty() || !name.chars().all(ok) {
        return Err(ItemError::Invalid);
    }
    Ok(())
}

fn check_binding(binding: &SpBinding) -> Result<(), ItemError> {
    sp_bound_id::SpIdentity::new(&binding.sp).map_err(|_| ItemError::Invalid)?;
    if let Some(endpoint) = &binding.endpoint {
        let scheme_ok = endpoint.starts_with("https://") || endpoint.starts_with("http://");
        if !scheme_ok || endpoint.len() > MAX_TEXT || endpoint.chars().any(|c| c.is_control() || c == ' ') {
            return Err(ItemError::Invalid);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_names_and_bindings_are_checked() {
        assert_eq!(check_text("ACME Utilities"), Ok(()));
        assert_eq!(check_text("a\nb"), Err(ItemError::Invalid));
        assert_eq!(check_text("  "), Err(ItemError::Invalid));
        assert_eq!(check_text(&"a".repeat(MAX_TEXT + 1)), Err(ItemError::TooLarge));
        assert_eq!(check_name("report-interval"), Ok(()));
        assert_eq!(check_name("Report"), Err(ItemError::Invalid));
        assert_eq!(check_name(""), Err(ItemError::Invalid));
        assert_eq!(check_name(&"a".repeat(MAX_NAME + 1)), Err(ItemError::TooLarge));
        let binding = |sp: &str, endpoint: Option<&str>| {
            HandoverItem::ServiceProvider(SpBinding { sp: sp.into(), endpoint: endpoint.map(Into::into), public_key: None })
        };
        assert_eq!(binding("sp-one.example", Some("https://sp-one.example/v1")).check(), Ok(()));
        assert_eq!(binding("not an sp", None).check(), Err(ItemError::Invalid));
        assert_eq!(binding("sp-one.example", Some("ftp://x")).check(), Err(ItemError::Invalid));
        let record = HandoverItem::Record { tag: 1, value: vec![0; MAX_MESSAGE + 1] };
        assert_eq!(record.check(), Err(ItemError::TooLarge));
    }

    #[test]
    fn descriptions_never_show_values() {
        let item = HandoverItem::Network(b"secret-passphrase".to_vec());
        assert!(!item.describe().contains("secret"));
    }
}
