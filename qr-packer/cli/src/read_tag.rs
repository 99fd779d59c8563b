//! `qr-packer read-tag` (feature `pcsc`): reads the label on an NFC tag held
//! to a PC/SC contactless reader (ACR122U and the like) and writes the tag's
//! image, which `inspect`, `verify` and `simulate` read like any `.bin`.
//!
//! The command sequences (Type 4 NDEF application, else Type 2 pages) are in
//! `qr_packer::nfc::card`, tested there against simulated tags; this module
//! is only the connection to the reader.

use std::ffi::CString;
use std::path::Path;

use anyhow::{Context, Result, bail};
use qr_packer::nfc::card::{Transmit, read_tag};

/// A card connected through PC/SC.
struct PcscCard(pcsc::Card);

impl Transmit for PcscCard {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, String> {
        let mut buffer = [0u8; pcsc::MAX_BUFFER_SIZE];
        self.0.transmit(apdu, &mut buffer).map(<[u8]>::to_vec).map_err(|e| e.to_string())
    }
}

/// Reads the tag on the first reader whose name contains `reader` (any
/// reader if `None`) and writes its image to `out`.
pub fn read_tag_to(reader: Option<&str>, out: &Path) -> Result<usize> {
    let context = pcsc::Context::establish(pcsc::Scope::User)
        .context("connecting to the PC/SC service (is pcscd running?)")?;
    let readers: Vec<CString> = context.list_readers_owned().context("listing PC/SC readers")?;
    let names: Vec<String> = readers.iter().map(|r| r.to_string_lossy().into_owned()).collect();
    let Some(chosen) = readers.iter().zip(&names).find(|(_, name)| reader.is_none_or(|want| name.contains(want))) else {
        if names.is_empty() {
            bail!("no PC/SC reader is attached");
        }
        bail!("no reader matches {:?}; attached: {}", reader.unwrap_or_default(), names.join(", "));
    };
    let card = context
        .connect(chosen.0, pcsc::ShareMode::Shared, pcsc::Protocols::ANY)
        .with_context(|| format!("no tag on {} (hold the label to the reader)", chosen.1))?;
    let image = read_tag(&mut PcscCard(card)).with_context(|| format!("reading the tag on {}", chosen.1))?;
    std::fs::write(out, &image).with_context(|| format!("writing {}", out.display()))?;
    Ok(image.len())
}
