//! The pipeline, both ways: halves + manifest → signed payload → text, and
//! text → verified bundle, stage by stage in the order of [`Stage`].
//!
//! Packing is split in two so that a batch of labels is fast: a
//! [`PreparedApp`] strips, checks and compresses the halves of one product
//! once; [`PreparedApp::seal`] then only encodes one device's manifest and
//! signs, which takes microseconds.
//!
//! Reading checks the signature over the bundle as carried, before anything
//! is decompressed or parsed beyond the COSE structure, then the version and
//! the dictionary, then decompresses with a hard cap, then parses. The device
//! runs the same [`SignedPayload::verify`] on the bytes the phone forwards
//! it, with its own trusted keys.

use crate::bundle::{self, Halves, MAX_HALVES};
#[cfg(feature = "pack")]
use crate::check::{self, World};
use crate::dictionary::{self, Dictionary};
use crate::error::{PackError, PayloadError, Stage};
use crate::manifest::Manifest;
use crate::sign::{self, ManufacturerKey, TrustedKeys};
#[cfg(feature = "pack")]
use crate::strip::strip_custom_sections;
use crate::text;

/// The bundle format this crate writes and reads.
pub const FORMAT_VERSION: u16 = 1;

/// Sizes of a prepared application, in bytes, at every stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PreparedSizes {
    /// The halves as given (before stripping).
    pub phone_as_given: usize,
    pub device_as_given: usize,
    pub operational_as_given: Option<usize>,
    /// The halves stripped of custom sections.
    pub phone: usize,
    pub device: usize,
    pub operational: Option<usize>,
    /// The stripped halves with their length trailer, before compression.
    pub halves: usize,
    /// The compressed halves, as carried in every payload of this product.
    pub compressed: usize,
}

/// What each part of the halves adds to the compressed halves, in bytes, in
/// packing order: the phone half compressed alone, then what the device half
/// adds, then what the operational application adds (the 4-byte trailer is
/// counted with the last part). They sum to [`PreparedSizes::compressed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct CompressedParts {
    pub phone: usize,
    pub device: usize,
    pub operational: Option<usize>,
}

/// The stripped, checked and compressed halves of one product, compressed
/// once and sealed for every device.
#[derive(Debug, Clone)]
pub struct PreparedApp {
    halves: Halves,
    dictionary: Dictionary,
    compressed: Vec<u8>,
    sizes: PreparedSizes,
    /// Computed on first use (two more compressions), for size reports.
    parts: std::sync::OnceLock<CompressedParts>,
}

impl PreparedApp {
    /// Strips the halves of custom sections, checks each against its world
    /// ([`strip_and_check`]), and compresses them with `dictionary`.
    #[cfg(feature = "pack")]
    pub fn prepare(halves: Halves, dictionary: &Dictionary) -> Result<Self, PackError> {
        if dictionary.id() > *dictionary::MANUFACTURER_IDS.end() {
            return Err(PackError::DictionaryId { id: dictionary.id() });
        }
        let stripped = strip_and_check(&halves)?;
        let cbor = stripped.to_bytes()?;
        let compressed = dictionary::compress(&cbor, dictionary)?;
        let sizes = PreparedSizes {
            phone_as_given: halves.phone.len(),
            device_as_given: halves.device.len(),
            operational_as_given: halves.operational.as_ref().map(Vec::len),
            phone: stripped.phone.len(),
            device: stripped.device.len(),
            operational: stripped.operational.as_ref().map(Vec::len),
            halves: cbor.len(),
            compressed: compressed.len(),
        };
        Ok(Self { halves: stripped, dictionary: dictionary.clone(), compressed, sizes, parts: Default::default() })
    }

    /// The halves exactly as given, compressed, with NONE of the checks of
    /// [`PreparedApp::prepare`]: for testing readers against halves that a
    /// manufacturer signed but that are malformed or hostile. `pack` never
    /// uses it.
    #[doc(hidden)]
    pub fn unchecked(halves: Halves, dictionary: &Dictionary) -> Result<Self, PackError> {
        let cbor = halves.to_bytes()?;
        let compressed = dictionary::compress(&cbor, dictionary)?;
        let sizes = PreparedSizes {
            phone_as_given: halves.phone.len(),
            device_as_given: halves.device.len(),
            operational_as_given: halves.operational.as_ref().map(Vec::len),
            phone: halves.phone.len(),
            device: halves.device.len(),
            operational: halves.operational.as_ref().map(Vec::len),
            halves: cbor.len(),
            compressed: compressed.len(),
        };
        Ok(Self { halves, dictionary: dictionary.clone(), compressed, sizes, parts: Default::default() })
    }

    /// One device's payload: the manifest, encoded and signed with the
    /// compressed halves.
    pub fn seal(&self, manifest: &Manifest, key: &ManufacturerKey) -> Result<SignedPayload, PackError> {
        let bundle = bundle::encode(FORMAT_VERSION, self.dictionary.id(), manifest.to_cbor()?, &self.compressed);
        let bytes = key.sign_cose(bundle).map_err(|e| PackError::Sign(e.to_string()))?;
        Ok(SignedPayload { bytes })
    }

    /// The stripped halves.
    pub fn halves(&self) -> &Halves {
        &self.halves
    }

    pub fn dictionary(&self) -> &Dictionary {
        &self.dictionary
    }

    /// The compressed halves, the same bytes in every payload of this product.
    pub fn compressed(&self) -> &[u8] {
        &self.compressed
    }

    pub fn sizes(&self) -> PreparedSizes {
        self.sizes
    }

    /// What the phone half, the device half and the operational application
    /// each add to the compressed halves (see [`CompressedParts`]).
    pub fn compressed_parts(&self) -> Result<CompressedParts, PackError> {
        if let Some(parts) = self.parts.get() {
            return Ok(*parts);
        }
        let total = self.compressed.len();
        let phone = dictionary::compress(&self.halves.phone, &self.dictionary)?.len().min(total);
        let parts = match self.halves.operational {
            None => CompressedParts { phone, device: total - phone, operational: None },
            Some(_) => {
                let pair = [&self.halves.phone[..], &self.halves.device].concat();
                let both = dictionary::compress(&pair, &self.dictionary)?.len().clamp(phone, total);
                CompressedParts { phone, device: both - phone, operational: Some(total - both) }
            }
        };
        Ok(*self.parts.get_or_init(|| parts))
    }
}

/// The halves as `pack` carries them: stripped of custom sections, each
/// checked against its world and the runtime's limits
/// ([`check::check_half`]), the operational application checked to be valid
/// WebAssembly.
#[cfg(feature = "pack")]
pub fn strip_and_check(halves: &Halves) -> Result<Halves, PackError> {
    let strip =
        |half: &'static str, wasm: &[u8]| strip_custom_sections(wasm).map_err(|cause| PackError::Strip { half, cause });
    let stripped = Halves {
        phone: strip("phone", &halves.phone)?,
        device: strip("device", &halves.device)?,
        operational: halves.operational.as_deref().map(|op| strip("operational", op)).transpose()?,
    };
    check::check_half(&stripped.phone, World::Phone)?;
    check::check_half(&stripped.device, World::Device)?;
    if let Some(op) = &stripped.operational {
        check::check_operational(op)?;
    }
    Ok(stripped)
}

/// A signed payload: the COSE_Sign1 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedPayload {
    bytes: Vec<u8>,
}

/// Sizes of a read payload, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct BundleSizes {
    /// The COSE_Sign1 structure (signature included).
    pub signed: usize,
    /// The printed text: prefix + base45.
    pub text_chars: usize,
    /// The manifest's CBOR.
    pub manifest: usize,
    /// The compressed halves.
    pub compressed_halves: usize,
    /// The halves with their length trailer, after decompression.
    pub halves: usize,
    pub phone: usize,
    pub device: usize,
    pub operational: Option<usize>,
}

/// A payload that verified: who signed it, the manifest, the halves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedBundle {
    /// The key id of the manufacturer key that signed it.
    pub signer: String,
    pub manifest: Manifest,
    pub halves: Halves,
    /// The id of the dictionary the halves were compressed with.
    pub dictionary: u32,
    pub sizes: BundleSizes,
}

impl SignedPayload {
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self { bytes }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// The printable text: `EN1:` + base45.
    pub fn to_text(&self) -> String {
        text::encode(&self.bytes)
    }

    /// Stages Prefix and Base45.
    pub fn from_text(text: &str) -> Result<Self, PayloadError> {
        Self::from_text_traced(text, &mut |_| {})
    }

    /// [`SignedPayload::from_text`], telling `on_stage` each stage passed.
    pub fn from_text_traced(text: &str, on_stage: &mut dyn FnMut(Stage)) -> Result<Self, PayloadError> {
        let body = text::strip_prefix(text)?;
        on_stage(Stage::Prefix);
        let bytes = text::decode_base45(body)?;
        on_stage(Stage::Base45);
        Ok(Self { bytes })
    }

    /// Every stage from the COSE structure on, with the shipped dictionaries.
    pub fn verify(&self, trusted: &TrustedKeys) -> Result<VerifiedBundle, PayloadError> {
        self.verify_traced(trusted, &[], &mut |_| {})
    }

    /// [`SignedPayload::verify`], also accepting `extra` dictionaries that
    /// are not shipped, and telling `on_stage` each stage passed.
    pub fn verify_traced(
        &self,
        trusted: &TrustedKeys,
        extra: &[Dictionary],
        on_stage: &mut dyn FnMut(Stage),
    ) -> Result<VerifiedBundle, PayloadError> {
        open(&self.bytes, Some(trusted), extra, on_stage)
    }

    /// Decodes the payload WITHOUT checking the key id or the signature, for
    /// `inspect` on a label whose signer is not trusted here. Nothing it
    /// returns may be acted on.
    pub fn decode_unverified(&self) -> Result<VerifiedBundle, PayloadError> {
        open(&self.bytes, None, &[], &mut |_| {})
    }
}

/// The stages after base45.
fn open(
    bytes: &[u8],
    trusted: Option<&TrustedKeys>,
    extra: &[Dictionary],
    on_stage: &mut dyn FnMut(Stage),
) -> Result<VerifiedBundle, PayloadError> {
    let verified = sign::verify_cose(bytes, trusted, on_stage)?;

    let value = bundle::parse(&verified.payload)?;
    let version = bundle::version_of(&value)?;
    if version != u64::from(FORMAT_VERSION) {
        return Err(PayloadError::UnsupportedVersion { found: version, supported: FORMAT_VERSION });
    }
    on_stage(Stage::Version);

    let raw = bundle::split_v1(value)?;
    let dictionary = resolve_dictionary(raw.dictionary, &verified.kid, trusted, extra)?;
    on_stage(Stage::Dictionary);

    let halves_cbor = dictionary::decompress(&raw.halves, &dictionary, MAX_HALVES)?;
    on_stage(Stage::Decompress);

    let manifest_len = bundle::cbor_bytes(&raw.manifest).len();
    let manifest = Manifest::from_cbor(raw.manifest, FORMAT_VERSION)?;
    let halves = Halves::from_bytes(&halves_cbor)?;
    on_stage(Stage::Bundle);

    let sizes = BundleSizes {
        signed: bytes.len(),
        text_chars: text::PREFIX.len() + bytes.len() / 2 * 3 + bytes.len() % 2 * 2,
        manifest: manifest_len,
        compressed_halves: raw.halves.len(),
        halves: halves_cbor.len(),
        phone: halves.phone.len(),
        device: halves.device.len(),
        operational: halves.operational.as_ref().map(Vec::len),
    };
    Ok(VerifiedBundle { signer: verified.kid, manifest, halves, dictionary: dictionary.id(), sizes })
}

/// Stage Dictionary: id 0 is none; ids 1 to 127 are shipped; ids 128 to
/// 255 are the signer's own, attached to its trusted key (unknown without
/// trusted keys: an unverified signer has none). `extra` (measurements,
/// tests) is looked in last, for any id.
fn resolve_dictionary(
    id: u64,
    signer: &str,
    trusted: Option<&TrustedKeys>,
    extra: &[Dictionary],
) -> Result<Dictionary, PayloadError> {
    let found = u32::try_from(id).ok().and_then(|id| {
        let primary = if dictionary::MANUFACTURER_IDS.contains(&id) {
            trusted.and_then(|t| t.dictionary(signer, id)).cloned()
        } else {
            Dictionary::by_id(id)
        };
        primary.or_else(|| extra.iter().find(|d| d.id() == id).cloned())
    });
    found.ok_or_else(|| PayloadError::UnknownDictionary { id, signer: signer.to_owned() })
}

/// The whole read, text to verified bundle, recording every stage's outcome.
pub fn read_text_traced(
    text: &str,
    trusted: &TrustedKeys,
    extra: &[Dictionary],
) -> (Vec<Stage>, Result<VerifiedBundle, PayloadError>) {
    let mut passed = Vec::new();
    let result = SignedPayload::from_text_traced(text, &mut |s| passed.push(s))
        .and_then(|p| p.verify_traced(trusted, extra, &mut |s| passed.push(s)));
    (passed, result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::tests::meter;
    use enrollment_apps::{WIFI_METER, ZIGBEE_SENSOR};

    fn key() -> ManufacturerKey {
        ManufacturerKey::from_secret("acme-1", [42; 32]).unwrap()
    }

    fn prepared() -> PreparedApp {
        let halves = Halves { phone: WIFI_METER.phone.to_vec(), device: WIFI_METER.device.to_vec(), operational: None };
        PreparedApp::prepare(halves, &Dictionary::current()).unwrap()
    }

    #[test]
    fn seals_and_verifies_through_text_with_every_stage() {
        let app = prepared();
        let payload = app.seal(&meter(), &key()).unwrap();
        let (stages, result) = read_text_traced(&payload.to_text(), &key().trusted(), &[]);
        let bundle = result.unwrap();
        assert_eq!(stages, Stage::ALL);
        assert_eq!(bundle.signer, "acme-1");
        assert_eq!(bundle.manifest, meter());
        assert_eq!(&bundle.halves, app.halves());
        assert_eq!(bundle.sizes.text_chars, payload.to_text().len());
        assert_eq!(bundle.sizes.signed, payload.as_bytes().len());
        assert_eq!(bundle.sizes.compressed_halves, app.sizes().compressed);
    }

    #[test]
    fn devices_of_one_product_share_the_compressed_halves() {
        let app = prepared();
        let other = Manifest { device_id: Some("AC-DE-48-00-00-81".into()), ..meter() };
        let (a, b) = (app.seal(&meter(), &key()).unwrap(), app.seal(&other, &key()).unwrap());
        assert_ne!(a, b);
        let (a, b) = (a.verify(&key().trusted()).unwrap(), b.verify(&key().trusted()).unwrap());
        assert_eq!(a.halves, b.halves);
        assert_eq!(b.manifest.device_id.as_deref(), Some("AC-DE-48-00-00-81"));
    }

    #[test]
    fn halves_in_the_wrong_world_are_refused() {
        let swapped = Halves { phone: ZIGBEE_SENSOR.device.to_vec(), device: ZIGBEE_SENSOR.phone.to_vec(), operational: None };
        assert!(matches!(PreparedApp::prepare(swapped, &Dictionary::current()), Err(PackError::ForbiddenImport { .. })));
    }

    #[test]
    fn a_flipped_bit_anywhere_in_the_signed_part_is_a_bad_signature() {
        let payload = prepared().seal(&meter(), &key()).unwrap();
        let bytes = payload.as_bytes();
        // The signature is the last 64 bytes; the bundle sits before it.
        // (Bytes 0..~16 are the COSE headers: a flipped kid is an unknown key.)
        for at in [20, bytes.len() / 2, bytes.len() - 70, bytes.len() - 1] {
            let mut bad = bytes.to_vec();
            bad[at] ^= 1;
            let err = SignedPayload::from_bytes(bad).verify(&key().trusted()).unwrap_err();
            assert!(matches!(err, PayloadError::BadSignature { .. }), "byte {at}: {err}");
        }
    }

    #[test]
    fn a_manufacturer_dictionary_is_the_signers_own() {
        let halves = || Halves { phone: WIFI_METER.phone.to_vec(), device: WIFI_METER.device.to_vec(), operational: None };
        let family = |salt: u8| {
            let mut bytes = crate::dictionary::train_reference(Some("wifi-meter")).unwrap();
            bytes.push(salt);
            Dictionary::manufacturer(128, "family", bytes).unwrap()
        };
        let (acme, other) = (key(), ManufacturerKey::from_secret("other-1", [9; 32]).unwrap());
        let mut trusted = acme.trusted();
        trusted.add(other.kid(), other.verifying()).unwrap();
        trusted.add_dictionary(acme.kid(), family(1)).unwrap();
        trusted.add_dictionary(other.kid(), family(2)).unwrap();
        // Each signer's 128 is its own: both read back.
        for (signer, dict) in [(&acme, family(1)), (&other, family(2))] {
            let payload = PreparedApp::prepare(halves(), &dict).unwrap().seal(&meter(), signer).unwrap();
            let bundle = payload.verify(&trusted).unwrap();
            assert_eq!((bundle.dictionary, bundle.signer.as_str()), (128, signer.kid()));
        }
        // Another signer's dictionary of the same id is not used: compressed
        // with acme's bytes, signed by a key whose 128 is not attached.
        let third = ManufacturerKey::from_secret("third-1", [5; 32]).unwrap();
        trusted.add(third.kid(), third.verifying()).unwrap();
        let payload = PreparedApp::prepare(halves(), &family(1)).unwrap().seal(&meter(), &third).unwrap();
        let err = payload.verify(&trusted).unwrap_err();
        assert_eq!(err, PayloadError::UnknownDictionary { id: 128, signer: "third-1".into() });
        assert_eq!(
            err.to_string(),
            "the bundle was compressed with dictionary 128, one of signer \"third-1\"'s own, which this reader does not have: \
             it comes with that signer's trusted public key file (\"dictionaries\")"
        );
        // Without trusted keys the signer is unverified and has no dictionaries.
        assert!(matches!(payload.decode_unverified(), Err(PayloadError::UnknownDictionary { id: 128, .. })));
        // A label cannot name an id above 255.
        assert!(matches!(
            PreparedApp::prepare(halves(), &Dictionary::custom(256, "x", vec![1])),
            Err(PackError::DictionaryId { id: 256 })
        ));
    }

    #[test]
    fn inspecting_without_keys_decodes_but_verify_refuses() {
        let payload = prepared().seal(&meter(), &key()).unwrap();
        assert_eq!(payload.decode_unverified().unwrap().manifest, meter());
        assert!(matches!(payload.verify(&TrustedKeys::new()), Err(PayloadError::UnknownKeyId { .. })));
    }
}
