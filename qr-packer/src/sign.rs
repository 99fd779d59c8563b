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

use crate::dictionary::{Dictionary, MANUFACTURER_IDS, NotAManufacturerId};
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
    /// The signer's own dictionaries (ids 128 to 255), in files next to the
    /// key file. Readers older than this field ignore it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    dictionaries: Vec<DictionaryFile>,
}

/// One entry of a public key file's `"dictionaries"`: a manufacturer
/// dictionary the key's labels may name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DictionaryFile {
    /// The id labels name it by, 128 to 255.
    pub id: u32,
    /// The dictionary's file, relative to the key file (or absolute).
    pub file: String,
    /// The SHA-256 of the file's bytes, hex: a changed file is refused,
    /// since labels already printed name the old bytes.
    pub sha256: String,
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
            dictionaries: Vec::new(),
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

/// The manufacturer keys a reader (phone app, runtime, device) trusts, by key
/// id, and the manufacturer dictionaries attached to each.
#[derive(Clone, Debug, Default)]
pub struct TrustedKeys {
    keys: BTreeMap<String, VerifyingKey>,
    /// By key id, then dictionary id (128 to 255).
    dictionaries: BTreeMap<String, BTreeMap<u32, Dictionary>>,
}

impl TrustedKeys {
    pub fn new() -> Self {
        Self::default()
    }

    /// A set of exactly one key.
    pub fn one(kid: &str, key: VerifyingKey) -> Self {
        let mut keys = BTreeMap::new();
        keys.insert(kid.to_owned(), key);
        Self { keys, dictionaries: BTreeMap::new() }
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

    /// Attaches a manufacturer dictionary (id 128 to 255) to the trusted key
    /// `kid`: payloads signed by that key may name it. Another key's
    /// dictionary of the same id is a different dictionary.
    pub fn add_dictionary(&mut self, kid: &str, dictionary: Dictionary) -> Result<(), KeyError> {
        let reason = |reason: String| KeyError::Dictionary { kid: kid.to_owned(), reason };
        if !self.keys.contains_key(kid) {
            return Err(KeyError::NoSuchKey(kid.to_owned()));
        }
        if !MANUFACTURER_IDS.contains(&dictionary.id()) {
            return Err(reason(NotAManufacturerId(dictionary.id()).to_string()));
        }
        let attached = self.dictionaries.entry(kid.to_owned()).or_default();
        if attached.contains_key(&dictionary.id()) {
            return Err(reason(format!("two dictionaries have id {}", dictionary.id())));
        }
        attached.insert(dictionary.id(), dictionary);
        Ok(())
    }

    /// The dictionary `id` attached to the key `kid`.
    pub fn dictionary(&self, kid: &str, id: u32) -> Option<&Dictionary> {
        self.dictionaries.get(kid).and_then(|d| d.get(&id))
    }

    /// Every dictionary attached to the key `kid`, by id.
    pub fn dictionaries(&self, kid: &str) -> impl Iterator<Item = &Dictionary> {
        self.dictionaries.get(kid).into_iter().flat_map(|d| d.values())
    }

    /// Adds every key of `other`, with its dictionaries; a key id present in
    /// both is refused.
    pub fn extend(&mut self, other: TrustedKeys) -> Result<(), KeyError> {
        for (kid, key) in other.keys {
            self.add(&kid, key)?;
        }
        for (kid, dictionaries) in other.dictionaries {
            for dictionary in dictionaries.into_values() {
                self.add_dictionary(&kid, dictionary)?;
            }
        }
        Ok(())
    }

    /// Reads public key files, with the dictionaries a public key file lists
    /// (see [`DictionaryFile`]): each is read from its path relative to the
    /// key file and must match its SHA-256.
    ///
    /// A signing key file is refused ([`KeyError::PrivateKey`]): whoever
    /// reads labels needs the public key only, and a private key handed to a
    /// device or an assistant is a private key copied to every one of them.
    pub fn from_files<P: AsRef<Path>>(paths: &[P]) -> Result<Self, KeyError> {
        let mut trusted = Self::new();
        for path in paths {
            let path = path.as_ref();
            let (kid, key, dictionaries) = read_public(path)?;
            trusted.add(&kid, key)?;
            for entry in dictionaries {
                trusted.add_dictionary(&kid, read_dictionary(path, &entry)?)?;
            }
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

fn read_public(path: &Path) -> Result<(String, VerifyingKey, Vec<DictionaryFile>), KeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| io(path, source))?;
    let kind = serde_json::from_str::<serde_json::Value>(&text).ok().and_then(|v| v.get("kind")?.as_str().map(str::to_owned));
    if kind.as_deref() == Some(SIGNING_KIND) || serde_json::from_str::<SigningKeyFile>(&text).is_ok() {
        // `keygen` writes KEY.json and KEY.pub.json by default.
        let public = path.with_extension("pub.json");
        return Err(KeyError::PrivateKey { path: path.display().to_string(), public: public.display().to_string() });
    }
    let file: VerifyingKeyFile = serde_json::from_str(&text).map_err(|e| format(path, e.to_string()))?;
    if file.kind != VERIFYING_KIND {
        return Err(format(path, format!("kind is {:?}, expected {VERIFYING_KIND:?}", file.kind)));
    }
    let bytes = hex32(&file.ed25519_public).map_err(|reason| format(path, reason))?;
    let key = VerifyingKey::from_bytes(&bytes).map_err(|e| format(path, e.to_string()))?;
    check_kid(&file.kid)?;
    Ok((file.kid, key, file.dictionaries))
}

/// A dictionary a key file lists, read next to it and checked against its
/// pinned SHA-256.
fn read_dictionary(key_file: &Path, entry: &DictionaryFile) -> Result<Dictionary, KeyError> {
    use sha2::{Digest, Sha256};
    let path = key_file.parent().unwrap_or(Path::new("")).join(&entry.file);
    let bytes = std::fs::read(&path).map_err(|source| io(&path, source))?;
    let found = hex::encode(Sha256::digest(&bytes));
    if !found.eq_ignore_ascii_case(&entry.sha256) {
        let reason = format!("its SHA-256 is {found}, the key file pins {}", entry.sha256);
        return Err(format(&path, reason));
    }
    Dictionary::manufacturer(entry.id, &entry.file, bytes).map_err(|e| format(key_file, e.to_string()))
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

fn io(path: &Path, cause: std::io::Error) -> KeyError {
    KeyError::Io { path: path.display().to_string(), cause }
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
    fn a_signing_key_given_as_a_trusted_key_is_refused_with_the_public_file_to_give() {
        let dir = tempfile::tempdir().unwrap();
        let k = ManufacturerKey::generate("acme-1").unwrap();
        let (private, public) = (dir.path().join("acme-1.json"), dir.path().join("acme-1.pub.json"));
        k.to_file(&private).unwrap();
        k.public_to_file(&public).unwrap();
        let error = TrustedKeys::from_files(&[&private]).unwrap_err();
        assert!(
            matches!(&error, KeyError::PrivateKey { path, public: hint } if *path == private.display().to_string()
                && *hint == public.display().to_string()),
            "{error:?}"
        );
        assert!(error.to_string().contains(".pub.json"), "{error}");
        // Also with its "kind" changed: the secret is what makes it private.
        let text = std::fs::read_to_string(&private).unwrap().replace(SIGNING_KIND, VERIFYING_KIND);
        std::fs::write(&private, text).unwrap();
        assert!(matches!(TrustedKeys::from_files(&[&private]), Err(KeyError::PrivateKey { .. })));
        // And in a directory of trusted keys.
        assert!(matches!(TrustedKeys::from_dir(dir.path()), Err(KeyError::PrivateKey { .. })));
        // The public file is what a reader takes.
        assert_eq!(TrustedKeys::from_files(&[&public]).unwrap().get("acme-1"), Some(&k.verifying()));
    }

    /// A public key file for `k` listing `dictionaries` (JSON entries).
    fn public_with(dir: &Path, k: &ManufacturerKey, dictionaries: serde_json::Value) -> std::path::PathBuf {
        let path = dir.join(format!("{}.pub.json", k.kid()));
        k.public_to_file(&path).unwrap();
        let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        json["dictionaries"] = dictionaries;
        std::fs::write(&path, json.to_string()).unwrap();
        path
    }

    fn sha256(bytes: &[u8]) -> String {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(bytes))
    }

    #[test]
    fn a_public_key_file_brings_its_pinned_dictionaries() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("dicts")).unwrap();
        std::fs::write(dir.path().join("dicts/family.zdict"), b"family bytes").unwrap();
        let k = key("acme-1", 1);
        let entry = serde_json::json!([{"id": 128, "file": "dicts/family.zdict", "sha256": sha256(b"family bytes")}]);
        let path = public_with(dir.path(), &k, entry);
        let trusted = TrustedKeys::from_files(&[&path]).unwrap();
        assert_eq!(trusted.dictionary("acme-1", 128).map(Dictionary::bytes), Some(&b"family bytes"[..]));
        assert_eq!(trusted.dictionaries("acme-1").count(), 1);
        assert!(trusted.dictionary("acme-1", 129).is_none() && trusted.dictionary("other", 128).is_none());
        // A file without the field (every key file before it) has none.
        let plain = dir.path().join("plain.json");
        key("plain", 2).public_to_file(&plain).unwrap();
        assert!(!std::fs::read_to_string(&plain).unwrap().contains("dictionaries"));
        assert_eq!(TrustedKeys::from_files(&[&plain]).unwrap().dictionaries("plain").count(), 0);

        let refused = |entries: serde_json::Value| {
            let sub = tempfile::tempdir_in(dir.path()).unwrap();
            std::fs::write(sub.path().join("family.zdict"), b"family bytes").unwrap();
            TrustedKeys::from_files(&[public_with(sub.path(), &k, entries)]).unwrap_err().to_string()
        };
        let changed = refused(serde_json::json!([{"id": 128, "file": "family.zdict", "sha256": sha256(b"other bytes")}]));
        assert!(changed.contains("family.zdict") && changed.contains("the key file pins"), "{changed}");
        let missing = refused(serde_json::json!([{"id": 128, "file": "absent.zdict", "sha256": sha256(b"")}]));
        assert!(missing.contains("absent.zdict"), "{missing}");
        let shipped = refused(serde_json::json!([{"id": 1, "file": "family.zdict", "sha256": sha256(b"family bytes")}]));
        assert!(shipped.contains("dictionary id 1 is not a manufacturer dictionary id"), "{shipped}");
        let twice = serde_json::json!({"id": 130, "file": "family.zdict", "sha256": sha256(b"family bytes")});
        let duplicate = refused(serde_json::json!([twice, twice]));
        assert_eq!(duplicate, "a dictionary of key \"acme-1\": two dictionaries have id 130");
        let typo = refused(serde_json::json!([{"id": 128, "file": "family.zdict", "sha": "00"}]));
        assert!(typo.contains("not a key file of this tool"), "{typo}");
    }

    #[test]
    fn dictionaries_attach_to_trusted_keys_only_with_manufacturer_ids() {
        let mut trusted = key("acme-1", 1).trusted();
        let family = Dictionary::custom(128, "f", vec![1]);
        assert!(matches!(trusted.add_dictionary("nobody", family.clone()), Err(KeyError::NoSuchKey(_))));
        let shipped = trusted.add_dictionary("acme-1", Dictionary::custom(1, "f", vec![1])).unwrap_err();
        assert!(matches!(shipped, KeyError::Dictionary { .. }), "{shipped}");
        trusted.add_dictionary("acme-1", family.clone()).unwrap();
        assert!(trusted.add_dictionary("acme-1", family.clone()).is_err());
        // Merging keeps each key's dictionaries; the same id under another key is fine.
        let mut other = key("other", 2).trusted();
        other.add_dictionary("other", Dictionary::custom(128, "g", vec![2])).unwrap();
        trusted.extend(other).unwrap();
        assert_eq!(trusted.dictionary("other", 128).map(Dictionary::bytes), Some(&[2u8][..]));
        assert_eq!(trusted.dictionary("acme-1", 128), Some(&family));
        assert!(matches!(trusted.extend(key("other", 3).trusted()), Err(KeyError::DuplicateKeyId(_))));
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
