//! Regenerates the test vectors in `tests/vectors/` (workspace root),
//! deterministically: fixed keys, fixed manifests, Ed25519 and zstd are
//! deterministic, so running it twice gives the same files.
//!
//! `cargo run -p qr-packer --example make-vectors`
//!
//! Each vector is a JSON file with the payload text (or a label image next
//! to it) and the expected outcome of every stage: `ok`, the error variant
//! the stage fails with, or `skipped` (after a failure).
//! `qr-packer/tests/vectors.rs` runs them all and also checks that this
//! generator still produces exactly the committed files.

use std::path::{Path, PathBuf};

use ciborium::Value;
use coset::{CborSerializable, CoseSign1, CoseSign1Builder, HeaderBuilder, iana};
use qr_packer::bundle::{self, Halves};
use qr_packer::dictionary::{self, Dictionary};
use qr_packer::{Ec, Label, Manifest, ManufacturerKey, PreparedApp, SignedPayload, Stage};
use sha2::{Digest, Sha256};

/// One generated file: its name and its bytes.
pub struct VectorFile {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// The key the vectors are signed with (committed as `test-key.json`).
pub fn test_key() -> ManufacturerKey {
    fixed_key("vectors-1", "qr-packer test vectors: manufacturer key")
}

fn fixed_key(kid: &str, seed: &str) -> ManufacturerKey {
    let secret: [u8; 32] = Sha256::digest(seed.as_bytes()).into();
    ManufacturerKey::from_secret(kid, secret).expect("fixed key id is valid")
}

const EUI48: &str = "AC-DE-48-00-00-80";
const EUI64: &str = "AC-DE-48-00-00-00-00-80";

fn manifest(app: &enrollment_apps::AppPair) -> Manifest {
    let mut m = qr_packer::manifest::reference(app).expect("reference app");
    m.device_id = Some(if app.name == "zigbee-sensor" { EUI64 } else { EUI48 }.into());
    m.one_time_secret = Some(Sha256::digest(app.name.as_bytes())[..16].to_vec());
    m
}

fn prepared(app: &enrollment_apps::AppPair) -> PreparedApp {
    let halves = Halves { phone: app.phone.to_vec(), device: app.device.to_vec(), operational: None };
    PreparedApp::prepare(halves, &Dictionary::current()).expect("reference halves pack")
}

/// Expected outcomes: every stage before `failing` ok, `failing` fails with
/// `kind`, the rest skipped.
fn expect(failing: Option<(Stage, &str)>) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    let mut failed = false;
    for stage in Stage::ALL {
        let outcome = match failing {
            _ if failed => "skipped".to_string(),
            Some((s, kind)) if s == stage => {
                failed = true;
                kind.to_string()
            }
            _ => "ok".to_string(),
        };
        map.insert(stage.name().into(), outcome.into());
    }
    serde_json::Value::Object(map)
}

fn vector(name: &str, description: &str, text: &str, failing: Option<(Stage, &str)>, manifest: Option<&Manifest>) -> VectorFile {
    let mut json = serde_json::json!({
        "description": description,
        "text": text,
        "expected": expect(failing),
    });
    if let Some(m) = manifest {
        json["manifest"] = serde_json::to_value(m).expect("manifest serializes");
    }
    file(&format!("{name}.json"), &json)
}

fn file(name: &str, json: &serde_json::Value) -> VectorFile {
    let text = serde_json::to_string_pretty(json).expect("json") + "\n";
    VectorFile { name: name.into(), bytes: text.into_bytes() }
}

/// The wifi meter's bundle with the given parts replaced, signed properly.
fn signed_bundle(version: u16, dictionary: u32, manifest: Value, compressed: &[u8]) -> String {
    let bundle = bundle::encode(version, dictionary, manifest, compressed);
    test_key().sign_raw(bundle).expect("sign").to_text()
}

/// Every vector file, in a fixed order.
pub fn vectors() -> Vec<VectorFile> {
    use enrollment_apps::{ALL, WIFI_METER, ZIGBEE_SENSOR};
    let key = test_key();
    let mut out = Vec::new();

    // Keys: the signing key (test only!) and its public half.
    let trusted = serde_json::json!({
        "kind": "enrollment-manufacturer-verifying-key",
        "kid": key.kid(),
        "ed25519_public": hex::encode(key.verifying().to_bytes()),
    });
    out.push(file("test-key.pub.json", &trusted));

    // Valid payloads, one per reference app.
    for app in ALL {
        let m = manifest(app);
        let text = prepared(app).seal(&m, &key).expect("seal").to_text();
        let expected = Manifest { format_version: qr_packer::FORMAT_VERSION, ..m.clone() };
        out.push(vector(&format!("valid-{}", app.name), "a valid payload of a reference app", &text, None, Some(&expected)));
    }

    // A valid payload as a label image.
    let wifi = prepared(&WIFI_METER);
    let wifi_manifest = manifest(&WIFI_METER);
    let wifi_payload = wifi.seal(&wifi_manifest, &key).expect("seal");
    let wifi_text = wifi_payload.to_text();
    let png = Label::new(&wifi_text, Ec::M).and_then(|l| l.png(3)).expect("png");
    out.push(VectorFile { name: "valid-wifi-meter-label.png".into(), bytes: png });
    let mut image_vector = serde_json::json!({
        "description": "the valid wifi-meter payload, read from its PNG label",
        "image": "valid-wifi-meter-label.png",
        "text": wifi_text,
        "expected": expect(None),
    });
    image_vector["manifest"] = serde_json::to_value(&wifi_manifest).expect("manifest");
    out.push(file("valid-wifi-meter-label.json", &image_vector));

    let body = &wifi_text[qr_packer::text::PREFIX.len()..];
    out.push(vector("wrong-prefix", "a health certificate prefix", &format!("HC1:{body}"), Some((Stage::Prefix, "WrongPrefix")), None));
    out.push(vector(
        "bad-base45",
        "lowercase is not base45",
        &format!("{}{}", qr_packer::text::PREFIX, body.to_lowercase()),
        Some((Stage::Base45, "BadBase45")),
        None,
    ));
    out.push(vector(
        "bad-cose",
        "valid base45 of bytes that are not a COSE_Sign1",
        &SignedPayload::from_bytes(b"this is not COSE".to_vec()).to_text(),
        Some((Stage::Cose, "BadCose")),
        None,
    ));

    // ES256 named in the protected header: refused before the key id.
    let bundle_bytes = bundle::encode(1, dictionary::CURRENT_ID, wifi_manifest.to_cbor().expect("cbor"), wifi.compressed());
    let es256 = CoseSign1Builder::new()
        .protected(HeaderBuilder::new().algorithm(iana::Algorithm::ES256).key_id(key.kid().as_bytes().to_vec()).build())
        .payload(bundle_bytes.clone())
        .signature(vec![0x5A; 64])
        .build()
        .to_vec()
        .expect("cose");
    out.push(vector(
        "wrong-algorithm",
        "ES256 instead of EdDSA",
        &SignedPayload::from_bytes(es256).to_text(),
        Some((Stage::Algorithm, "UnexpectedAlgorithm")),
        None,
    ));

    let stranger = fixed_key("stranger", "qr-packer test vectors: a key nobody trusts");
    out.push(vector(
        "unknown-kid",
        "signed by a key the reader does not trust",
        &wifi.seal(&wifi_manifest, &stranger).expect("seal").to_text(),
        Some((Stage::KeyId, "UnknownKeyId")),
        None,
    ));

    let mut forged = wifi_payload.as_bytes().to_vec();
    let last = forged.len() - 1;
    forged[last] ^= 0x01;
    out.push(vector(
        "bad-signature",
        "one bit of the signature flipped",
        &SignedPayload::from_bytes(forged).to_text(),
        Some((Stage::Signature, "BadSignature")),
        None,
    ));

    // A hostile phone swaps the device half and keeps the original signature.
    let mut sign1 = CoseSign1::from_slice(wifi_payload.as_bytes()).expect("cose");
    let swapped_halves = Halves {
        phone: wifi.halves().phone.clone(),
        device: prepared(&ZIGBEE_SENSOR).halves().device.clone(),
        operational: None,
    };
    let swapped = dictionary::compress(&swapped_halves.to_bytes().expect("halves"), &Dictionary::current()).expect("zstd");
    sign1.payload = Some(bundle::encode(1, dictionary::CURRENT_ID, wifi_manifest.to_cbor().expect("cbor"), &swapped));
    out.push(vector(
        "device-half-swapped",
        "the phone replaced the device half and re-encoded the payload with the original signature",
        &SignedPayload::from_bytes(sign1.to_vec().expect("cose")).to_text(),
        Some((Stage::Signature, "BadSignature")),
        None,
    ));

    let manifest_cbor = wifi_manifest.to_cbor().expect("cbor");
    out.push(vector(
        "unsupported-version",
        "a properly signed bundle of format version 2",
        &signed_bundle(2, dictionary::CURRENT_ID, manifest_cbor.clone(), wifi.compressed()),
        Some((Stage::Version, "UnsupportedVersion")),
        None,
    ));
    out.push(vector(
        "unknown-dictionary",
        "a properly signed bundle naming dictionary 99",
        &signed_bundle(1, 99, manifest_cbor.clone(), wifi.compressed()),
        Some((Stage::Dictionary, "UnknownDictionary")),
        None,
    ));
    out.push(vector(
        "bad-zstd",
        "a properly signed bundle whose halves are not a zstd frame",
        &signed_bundle(1, dictionary::CURRENT_ID, manifest_cbor.clone(), &[0xFF; 40]),
        Some((Stage::Decompress, "BadZstd")),
        None,
    ));
    let bomb = dictionary::compress(&vec![0u8; 4 << 20], &Dictionary::current()).expect("zstd");
    out.push(vector(
        "zstd-bomb",
        "a properly signed bundle whose halves decompress to 4 MiB of zeros",
        &signed_bundle(1, dictionary::CURRENT_ID, manifest_cbor.clone(), &bomb),
        Some((Stage::Decompress, "TooLarge")),
        None,
    ));
    let bad_trailer = dictionary::compress(&[1, 2, 3, 0xFF, 0xFF, 0xFF, 0xFF], &Dictionary::current()).expect("zstd");
    out.push(vector(
        "malformed-halves",
        "a properly signed bundle whose halves' length trailer exceeds the halves",
        &signed_bundle(1, dictionary::CURRENT_ID, manifest_cbor, &bad_trailer),
        Some((Stage::Bundle, "MalformedBundle")),
        None,
    ));
    let bad_manifest = Value::Map(vec![(Value::from(0u8), Value::from(7u8))]);
    out.push(vector(
        "malformed-manifest",
        "a properly signed bundle whose manifest has a number for the app id",
        &signed_bundle(1, dictionary::CURRENT_ID, bad_manifest, wifi.compressed()),
        Some((Stage::Bundle, "MalformedBundle")),
        None,
    ));
    out
}

/// `tests/vectors/` of the workspace.
pub fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors")
}

#[allow(dead_code)]
fn main() -> std::io::Result<()> {
    let dir = vectors_dir();
    std::fs::create_dir_all(&dir)?;
    let files = vectors();
    for f in &files {
        std::fs::write(dir.join(&f.name), &f.bytes)?;
    }
    println!("{} files written to {}", files.len(), dir.display());
    Ok(())
}
