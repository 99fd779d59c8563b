//! Every way packing or reading a payload can fail, one variant per cause.
//!
//! Reading follows the validators of the EU digital COVID certificate: a
//! payload goes through fixed stages ([`Stage`]) and each stage has its own
//! error, so a scanner can say exactly what is wrong with a label (a smudged
//! print is `BadBase45`, a forged one `BadSignature`, an old reader
//! `UnsupportedVersion`) and tests can check that every stage is reached.

use std::fmt;

/// The stages a payload goes through when it is read, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    /// The text starts with the format prefix (`EN1:`).
    Prefix,
    /// The rest of the text is base45 (RFC 9285).
    Base45,
    /// The bytes are a COSE_Sign1 structure.
    Cose,
    /// The protected header names EdDSA, and only EdDSA.
    Algorithm,
    /// The key id names a trusted manufacturer key.
    KeyId,
    /// The Ed25519 signature over the (still compressed) bundle is valid.
    Signature,
    /// The signed bundle has a format version this reader knows.
    Version,
    /// The signed bundle names a dictionary this reader has.
    Dictionary,
    /// The compressed halves decompress, within the size cap.
    Decompress,
    /// The manifest and the halves parse.
    Bundle,
}

impl Stage {
    /// Every stage, in the order a payload goes through them.
    pub const ALL: [Stage; 10] = [
        Stage::Prefix,
        Stage::Base45,
        Stage::Cose,
        Stage::Algorithm,
        Stage::KeyId,
        Stage::Signature,
        Stage::Version,
        Stage::Dictionary,
        Stage::Decompress,
        Stage::Bundle,
    ];

    /// The stage's name in test vectors and `--json` output.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Prefix => "prefix",
            Stage::Base45 => "base45",
            Stage::Cose => "cose",
            Stage::Algorithm => "alg",
            Stage::KeyId => "kid",
            Stage::Signature => "signature",
            Stage::Version => "version",
            Stage::Dictionary => "dictionary",
            Stage::Decompress => "decompress",
            Stage::Bundle => "bundle",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a payload (text, bytes or a label image) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("not an enrollment payload: the text must start with `{expected}`, it starts with {found:?}")]
    WrongPrefix { expected: &'static str, found: String },
    #[error("payload text is {len} characters, more than the {max} a QR code can hold")]
    TextTooLong { len: usize, max: usize },
    #[error("the text after the prefix is not base45 (RFC 9285): {0}")]
    BadBase45(String),
    #[error("not a COSE_Sign1 structure: {0}")]
    BadCose(String),
    #[error("unexpected signature algorithm {found}: only EdDSA (Ed25519) is accepted")]
    UnexpectedAlgorithm { found: String },
    #[error("the payload is signed by key id {kid:?}, which is not a trusted manufacturer key")]
    UnknownKeyId { kid: String },
    #[error("the signature does not verify with the manufacturer key {kid:?}: the payload was altered or forged")]
    BadSignature { kid: String },
    #[error("bundle format version {found} is not supported (this reader knows version {supported})")]
    UnsupportedVersion { found: u64, supported: u16 },
    #[error("{}", unknown_dictionary(*.id, .signer))]
    UnknownDictionary { id: u64, signer: String },
    #[error("the compressed halves are not a valid zstd frame for their dictionary: {0}")]
    BadZstd(String),
    #[error("the halves decompress to more than {max} bytes: refused (a decompression bomb, or not for this reader)")]
    TooLarge { max: usize },
    #[error("malformed bundle: {0}")]
    MalformedBundle(String),
    #[error("no QR code found in the image")]
    NoQrCodeInImage,
    #[error("the image could not be decoded: {0}")]
    BadImage(String),
    #[error("a QR code was found in the image but could not be read: {0}")]
    UnreadableQrCode(String),
}

/// The text of [`PayloadError::UnknownDictionary`]: a manufacturer id is the
/// signer's, so the signer's key file is where the dictionary comes from.
fn unknown_dictionary(id: u64, signer: &str) -> String {
    let what = format!("the bundle was compressed with dictionary {id}");
    match u32::try_from(id) {
        Ok(id) if crate::dictionary::MANUFACTURER_IDS.contains(&id) => format!(
            "{what}, one of signer {signer:?}'s own, which this reader does not have: it comes with that signer's trusted public key file (\"dictionaries\")"
        ),
        Ok(id) if crate::dictionary::SHIPPED_IDS.contains(&id) => {
            format!("{what}, which this reader does not have (signed by {signer:?}; a newer qr-packer may ship it)")
        }
        _ => format!("{what}, which no reader has: ids are 0 to 255 (signed by {signer:?})"),
    }
}

impl PayloadError {
    /// The stage this error belongs to (image errors belong to no stage: they
    /// happen before there is any text).
    pub fn stage(&self) -> Option<Stage> {
        Some(match self {
            PayloadError::WrongPrefix { .. } | PayloadError::TextTooLong { .. } => Stage::Prefix,
            PayloadError::BadBase45(_) => Stage::Base45,
            PayloadError::BadCose(_) => Stage::Cose,
            PayloadError::UnexpectedAlgorithm { .. } => Stage::Algorithm,
            PayloadError::UnknownKeyId { .. } => Stage::KeyId,
            PayloadError::BadSignature { .. } => Stage::Signature,
            PayloadError::UnsupportedVersion { .. } => Stage::Version,
            PayloadError::UnknownDictionary { .. } => Stage::Dictionary,
            PayloadError::BadZstd(_) | PayloadError::TooLarge { .. } => Stage::Decompress,
            PayloadError::MalformedBundle(_) => Stage::Bundle,
            PayloadError::NoQrCodeInImage | PayloadError::BadImage(_) | PayloadError::UnreadableQrCode(_) => {
                return None;
            }
        })
    }

    /// The variant's name, as test vectors and `--json` output spell it.
    pub fn kind(&self) -> &'static str {
        match self {
            PayloadError::WrongPrefix { .. } => "WrongPrefix",
            PayloadError::TextTooLong { .. } => "TextTooLong",
            PayloadError::BadBase45(_) => "BadBase45",
            PayloadError::BadCose(_) => "BadCose",
            PayloadError::UnexpectedAlgorithm { .. } => "UnexpectedAlgorithm",
            PayloadError::UnknownKeyId { .. } => "UnknownKeyId",
            PayloadError::BadSignature { .. } => "BadSignature",
            PayloadError::UnsupportedVersion { .. } => "UnsupportedVersion",
            PayloadError::UnknownDictionary { .. } => "UnknownDictionary",
            PayloadError::BadZstd(_) => "BadZstd",
            PayloadError::TooLarge { .. } => "TooLarge",
            PayloadError::MalformedBundle(_) => "MalformedBundle",
            PayloadError::NoQrCodeInImage => "NoQrCodeInImage",
            PayloadError::BadImage(_) => "BadImage",
            PayloadError::UnreadableQrCode(_) => "UnreadableQrCode",
        }
    }
}

/// Why an application could not be packed.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[cfg(feature = "pack")]
    #[error("the {half} half: {cause}")]
    Strip { half: &'static str, cause: crate::strip::StripError },
    #[error("the {half} half is not a valid component: {reason}")]
    NotAComponent { half: &'static str, reason: String },
    #[error("the {half} half does not target world `{world}`: {reason}")]
    WrongWorld { half: &'static str, world: &'static str, reason: String },
    #[error(
        "the {half} half was built against WIT version {found} of the enrollment contract; this qr-packer supports version {supported} only (rebuild the half against its wit/enrollment.wit)"
    )]
    UnsupportedWitVersion { half: &'static str, found: String, supported: String },
    #[error("the {half} half imports `{import}`, which its world `{world}` does not offer")]
    ForbiddenImport { half: &'static str, world: &'static str, import: String },
    #[error(
        "the {half} half's core module asks for {bytes} bytes of initial linear memory; the runtime's cap is {cap} (link with -zstack-size=16384 --initial-memory=65536 --max-memory={cap}, as the .cargo/config.toml that `qr-packer new` writes does)"
    )]
    InitialMemoryTooLarge { half: &'static str, bytes: u64, cap: u64 },
    #[error("the {half} half is {bytes} bytes after stripping; the runtime compiles halves of at most {max} (move work to the operational app, or build with opt-level \"z\", LTO and panic = \"abort\")")]
    HalfOverSandboxCap { half: &'static str, bytes: usize, max: usize },
    #[error("the {half} half declares {locals} locals in all; the runtime's cap is {max} (a function with very many locals, often from an unoptimized build)")]
    TooManyLocals { half: &'static str, locals: u64, max: u64 },
    #[error("the {half} half defines {count} linear memories; the runtime gives a half at most {max}")]
    TooManyMemories { half: &'static str, count: usize, max: usize },
    #[error("the {half} half has a table of {elements} initial elements; the runtime's cap is {max}")]
    TableTooLarge { half: &'static str, elements: u64, max: u64 },
    #[error("the {half} half has a start function; the runtime runs a half only through its `enroll` export")]
    StartFunction { half: &'static str },
    #[error("the {half} half is {len} bytes; a half may be at most 65535 bytes")]
    HalfTooLarge { half: &'static str, len: usize },
    #[error(
        "the label needs QR version {version} at error correction {ec}, above the limit of version {max} (--max-version); the largest part after compression is the {part} ({bytes} bytes): shrink it first, or give --force to print it anyway"
    )]
    AboveMaxVersion { version: i16, max: i16, ec: String, part: &'static str, bytes: usize },
    #[error("invalid manifest: {0}")]
    Manifest(String),
    #[error("dictionary id {id} cannot be named by a label: ids are 0 to 255")]
    DictionaryId { id: u32 },
    #[error("compression failed: {0}")]
    Compress(String),
    #[error("signing failed: {0}")]
    Sign(String),
}

/// Why a key file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    // The cause is in the message, not a `source`: printed as a chain it
    // would say "No such file or directory" twice.
    #[error("{path}: {cause}")]
    Io { path: String, cause: std::io::Error },
    #[error("{path}: not a key file of this tool: {reason}")]
    Format { path: String, reason: String },
    /// A reader (device, assistant, gateway, `verify`) was given the
    /// manufacturer's private signing key instead of its public key.
    #[error("{path} holds a private signing key; a reader trusts only the public key: give the `.pub.json` file `qr-packer keygen` wrote next to it ({public}), and keep the signing key off devices and assistants")]
    PrivateKey { path: String, public: String },
    #[error("key id {0:?} is invalid: 1 to 32 bytes of QR-friendly text (A-Z a-z 0-9 . _ -) are allowed")]
    BadKeyId(String),
    #[error("two trusted keys have the same key id {0:?}")]
    DuplicateKeyId(String),
    #[error("no trusted key has key id {0:?}, to attach a dictionary to")]
    NoSuchKey(String),
    #[error("a dictionary of key {kid:?}: {reason}")]
    Dictionary { kid: String, reason: String },
}
