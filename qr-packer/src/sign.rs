//! Manufacturer keys and the COSE_Sign1 envelope around a bundle.
//!
//! A payload is signed once, by the manufacturer, with Ed25519 (COSE
//! algorithm EdDSA, -8). The key id (`kid`) travels in the protected header,
//! so it is covered by the signature too, and tells a reader which of its
//! trusted keys to use. The signature covers the bundle exactly as it is
//! carried (compressed halves included), so a reader checks it before it
//! decompresses or parses anything the manufacturer did not vouch for; and
//! the device, which gets the same COSE_Sign1 bytes from the phone, checks it
//! with its own trusted keys, so a hostile phone cannot swap the device half.
//!
//! The envelope is emitted untagged (the `EN1:` prefix already says what it
//! is; the CBOR tag 18 would cost a byte of the QR code); a tagged one is
//! accepted on reading.

use std::collections::BTreeMap;
use std::path::Path;

use coset::{CborSerializable, CoseSign1, CoseSign1Builder, HeaderBuilder, TaggedCborSerializable, iana};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::error::{KeyError, PayloadError};

/// The longest key id accepted, in bytes: every byte of it is printed.
pub const MAX_KID_LEN: usize = 32;

/// Checks a key id: 1 to [`MAX_KID_LEN`] bytes of `A-Z a-z 0-9 . _ -`.
pub fn check_kid(kid: &str) -> Result<(), KeyError> {
    let ok = !kid.is_empty()
        && kid.len() <= MAX_KID_LEN
        && kid.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok { Ok(()) } else { Err(KeyError::BadKeyId(kid.to_owned())) }
}

/// A manufacturer's signing key (Ed25519) and the key id readers know it by.
#[derive(Clone)]
pub struct ManufacturerKey {
    kid: String,
    signing: SigningKey,
}

// Never print the secret.
impl std::fmt::Debug for ManufacturerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManufacturerKey").field("kid", &self.kid).finish_non_exhaustive()
    }
}

/// The JSON form of a signing key file (`keygen` writes it, mode 0600).
#[derive(Serialize, Deserialize)]
struct SigningKeyFile {
    kind: String,
    kid: String,
    ed25519_secret: String,
}

/// The JSON form of a public (verifying) key file.
#[derive(Serialize, Deserialize)]
struct VerifyingKeyFile {
    kind: String,
    kid: String,
    ed25519_public: String,
}

const SIGNING_KIND: &str = "enrollment-manufacturer-signing-key";
const VERIFYING_KIND: &str = "enrollment-manufacturer-verifying-key";

impl ManufacturerKey {
    /// A fresh key from the operating system's random source.
    pub fn generate(kid: &str) -> Result<Self, KeyError> {
        check_kid(kid)?;
        Ok(Self { kid: kid.to_owned(), signing: SigningKey::generate(&mut rand::rngs::OsRng) })
    }

    /// A key from its 32 secret bytes (test keys, HSM exports).
    pub fn from_secret(kid: &str, secret: [u8; 32]) -> Result<Self, KeyError> {
        check_kid(kid)?;
        Ok(Self { kid: kid.to_owned(), signing: SigningKey::from_bytes(&secret) })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn verifying(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    /// The trusted-keys set holding only this key's public half.
    pub fn trusted(&self) -> TrustedKeys {
        TrustedKeys::one(&self.kid, self.verifying())
    }

    /// Writes the signing key (readable by the owner only, on Unix).
    pub fn to_file(&self, path: &Path) -> Result<(), KeyError> {
        let file = SigningKeyFile {
            kind: SIGNING_KIND.into(),
            kid: self.kid.clone(),
            ed25519_secret: hex::encode(self.signing.to_bytes()),
        };
        write_private(path, &to_json(&file))
    }

    /// Writes the public half, for readers to trust.
    pub fn public_to_file(&self, path: &Path) -> Result<(), KeyError> {
        let file = VerifyingKeyFile {
            kind: VERIFYING_KIND.into(),
            kid: self.kid.clone(),
            ed25519_public: hex::encode(self.verifying().to_bytes()),
        };
        std::fs::write(path, to_json(&file)).map_err(|source| io(path, source))
    }

    pub fn from_file(path: &Path) -> Result<Self, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| io(path, source))?;
        let file: SigningKeyFile = serde_json::from_str(&text).map_err(|e| format(path, e.to_string()))?;
        if file.kind != SIGNING_KIND {
            return Err(format(path, format!("kind is {:?}, expected {SIGNING_KIND:?}", file.kind)));
        }
        let secret = hex32(&file.ed25519_secret).map_err(|reason| format(path, reason))?;
        Self::from_secret(&file.kid, secret)
    }

    /// Signs arbitrary bytes as the payload of a COSE_Sign1. [`crate::PreparedApp::seal`]
    /// is the way to sign a bundle; this is for test vectors that need
    /// properly signed but malformed bundles.
    pub fn sign_raw(&self, bundle: Vec<u8>) -> Result<crate::SignedPayload, crate::PackError> {
        let bytes = self.sign_cose(bundle).map_err(|e| crate::PackError::Sign(e.to_string()))?;
        Ok(crate::SignedPayload::from_bytes(bytes))
    }

    /// Signs `payload` as a COSE_Sign1 (EdDSA, kid in the protected header).
    pub(crate) fn sign_cose(&self, payload: Vec<u8>) -> Result<Vec<u8>, coset::CoseError> {
        let protected = HeaderBuilder::new().algorithm(iana::Algorithm::EdDSA).key_id(self.kid.as_bytes().to_vec()).build();
        CoseSign1Builder::new()
            .protected(protected)
            .payload(payload)
            .create_signature(b"", |tbs| self.signing.sign(tbs).to_bytes().to_vec())
            .build()
            .to_vec()
    }
}

/// The manufacturer keys a reader (phone app, runtime, device) trusts, by key id.
#[derive(Clone, Debug, Default)]
pub struct TrustedKeys {
    keys: BTreeMap<String, VerifyingKey>,
}

impl TrustedKeys {
    pub fn new() -> Self {
        Self::default()
    }

    /// A set of exactly one key.
    pub fn one(kid: &str, key: VerifyingKey) -> Self {
        let mut keys = BTreeMap::new();
        keys.insert(kid.to_owned(), key);
        Self { keys }
    }

    /// Adds a key; a key id already present is refused.
    pub fn add(&mut self, kid: &str, key: VerifyingKey) -> Result<(), KeyError> {
        check_kid(kid)?;
        if self.keys.contains_key(kid) {
            return Err(KeyError::DuplicateKeyId(kid.to_owned()));
        }
        self.keys.insert(kid.to_owned(), key);
        Ok(())
    }

    /// Reads public key files (or signing key files, whose public half is used).
    pub fn from_files<P: AsRef<Path>>(paths: &[P]) -> Result<Self, KeyError> {
        let mut trusted = Self::new();
        for path in paths {
            let (kid, key) = read_public(path.as_ref())?;
            trusted.add(&kid, key)?;
        }
        Ok(trusted)
    }

    /// Reads every `*.json` key file of a directory.
    pub fn from_dir(dir: &Path) -> Result<Self, KeyError> {
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .map_err(|source| io(dir, source))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        paths.sort();
        Self::from_files(&paths)
    }

    /// Every key, by key id.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &VerifyingKey)> {
        self.keys.iter().map(|(kid, key)| (kid.as_str(), key))
    }

    pub fn get(&self, kid: &str) -> Option<&VerifyingKey> {
        self.keys.get(kid)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// A COSE_Sign1 whose signature verified: the signer's key id and the
/// signed payload bytes.
pub(crate) struct Verified {
    pub kid: String,
    pub payload: Vec<u8>,
}

/// Stages Cose, Algorithm, KeyId and Signature of reading a payload.
///
/// `on_stage` is told each stage that passed, for the vector tests.
/// With `trusted` None (inspecting a label without keys) the key id and the
/// signature are not checked, and those two stages are not reported.
pub(crate) fn verify_cose(
    bytes: &[u8],
    trusted: Option<&TrustedKeys>,
    on_stage: &mut dyn FnMut(crate::error::Stage),
) -> Result<Verified, PayloadError> {
    use crate::error::Stage;
    let tagged = bytes.first() == Some(&0xD2);
    let sign1 = if tagged { CoseSign1::from_tagged_slice(bytes) } else { CoseSign1::from_slice(bytes) }
        .map_err(|e| PayloadError::BadCose(e.to_string()))?;
    let Some(payload) = sign1.payload.as_ref() else {
        return Err(PayloadError::BadCose("detached payload: a label carries its bundle".into()));
    };
    if sign1.signature.len() != Signature::BYTE_SIZE {
        return Err(PayloadError::BadCose(format!("signature is {} bytes, Ed25519 has 64", sign1.signature.len())));
    }
    on_stage(Stage::Cose);

    let header = &sign1.protected.header;
    let eddsa = coset::RegisteredLabelWithPrivate::Assigned(iana::Algorithm::EdDSA);
    match &header.alg {
        Some(alg) if *alg == eddsa => {}
        Some(alg) => return Err(PayloadError::UnexpectedAlgorithm { found: format!("{alg:?}") }),
        None if sign1.unprotected.alg.is_some() => {
            return Err(PayloadError::UnexpectedAlgorithm { found: "an algorithm outside the protected header".into() });
        }
        None => return Err(PayloadError::UnexpectedAlgorithm { found: "none named".into() }),
    }
    on_stage(Stage::Algorithm);

    let kid_bytes = if header.key_id.is_empty() { &sign1.unprotected.key_id } else { &header.key_id };
    let kid = String::from_utf8_lossy(kid_bytes).into_owned();
    let Some(trusted) = trusted else { return Ok(Verified { kid, payload: payload.clone() }) };
    let Some(key) = trusted.get(&kid) else { return Err(PayloadError::UnknownKeyId { kid }) };
    on_stage(Stage::KeyId);

    let bad = || PayloadError::BadSignature { kid: kid.clone() };
    sign1.verify_signature(b"", |signature, tbs| {
        let signature = Signature::from_slice(signature).map_err(|_| bad())?;
        key.verify_strict(tbs, &signature).map_err(|_| bad())
    })?;
    on_stage(Stage::Signature);
    Ok(Verified { kid, payload: payload.clone() })
}

fn read_public(path: &Path) -> Result<(String, VerifyingKey), KeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| io(path, source))?;
    if let Ok(file) = serde_json::from_str::<VerifyingKeyFile>(&text) {
        if file.kind != VERIFYING_KIND {
            return Err(format(path, format!("kind is {:?}, expected {VERIFYING_KIND:?}", file.kind)));
        }
        let bytes = hex32(&file.ed25519_public).map_err(|reason| format(path, reason))?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|e| format(path, e.to_string()))?;
        check_kid(&file.kid)?;
        return Ok((file.kid, key));
    }
    let key = ManufacturerKey::from_file(path)?;
    Ok((key.kid.clone(), key.verifying()))
}

fn hex32(text: &str) -> Result<[u8; 32], String> {
    let bytes = hex::decode(text).map_err(|e| format!("not hex: {e}"))?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| format!("{} bytes, expected 32", bytes.len()))
}

fn to_json<T: Serialize>(value: &T) -> String {
    // Serializing plain strings into JSON cannot fail.
    serde_json::to_string_pretty(value).unwrap_or_default() + "\n"
}

fn write_private(path: &Path, text: &str) -> Result<(), KeyError> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|source| io(path, source))?;
    file.write_all(text.as_bytes()).map_err(|source| io(path, source))
}

fn io(path: &Path, source: std::io::Error) -> KeyError {
    KeyError::Io { path: path.display().to_string(), source }
}

fn format(path: &Path, reason: String) -> KeyError {
    KeyError::Format { path: path.display().to_string(), reason }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Stage;

    fn key(kid: &str, seed: u8) -> ManufacturerKey {
        ManufacturerKey::from_secret(kid, [seed; 32]).unwrap()
    }

    #[test]
    fn signs_and_verifies_with_the_key_id_in_the_protected_header() {
        let k = key("acme-1", 1);
        let cose = k.sign_cose(b"bundle".to_vec()).unwrap();
        let mut stages = Vec::new();
        let verified = verify_cose(&cose, Some(&k.trusted()), &mut |s| stages.push(s)).unwrap();
        assert_eq!((verified.kid.as_str(), verified.payload.as_slice()), ("acme-1", &b"bundle"[..]));
        assert_eq!(stages, [Stage::Cose, Stage::Algorithm, Stage::KeyId, Stage::Signature]);
    }

    #[test]
    fn another_key_with_the_same_kid_is_a_bad_signature_and_an_unknown_kid_is_refused() {
        let cose = key("acme-1", 1).sign_cose(b"bundle".to_vec()).unwrap();
        let impostor = key("acme-1", 2).trusted();
        assert!(matches!(verify_cose(&cose, Some(&impostor), &mut |_| {}), Err(PayloadError::BadSignature { .. })));
        let other = key("other", 1).trusted();
        assert!(matches!(verify_cose(&cose, Some(&other), &mut |_| {}), Err(PayloadError::UnknownKeyId { kid }) if kid == "acme-1"));
    }

    #[test]
    fn key_files_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let k = ManufacturerKey::generate("acme-2026").unwrap();
        k.to_file(&dir.path().join("signing.key")).unwrap();
        k.public_to_file(&dir.path().join("acme.json")).unwrap();
        let back = ManufacturerKey::from_file(&dir.path().join("signing.key")).unwrap();
        assert_eq!(back.verifying(), k.verifying());
        let trusted = TrustedKeys::from_dir(dir.path()).unwrap();
        assert_eq!(trusted.get("acme-2026"), Some(&k.verifying()));
        assert!(matches!(ManufacturerKey::from_file(&dir.path().join("acme.json")), Err(KeyError::Format { .. })));
    }

    #[test]
    fn key_ids_are_checked() {
        assert!(ManufacturerKey::generate("").is_err());
        assert!(ManufacturerKey::generate("has space").is_err());
        assert!(ManufacturerKey::generate(&"x".repeat(33)).is_err());
        let mut trusted = key("a", 1).trusted();
        assert!(matches!(trusted.add("a", key("a", 2).verifying()), Err(KeyError::DuplicateKeyId(_))));
    }
}
