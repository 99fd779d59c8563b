//! The label on an NFC tag (US 2025/0254525 claim 15): the same signed
//! payload as the QR code, as bytes.
//!
//! NFC carries binary, so there is no base45 and no prefix: the tag holds an
//! NDEF message with one record of the product's NFC Forum external type
//! [`RECORD_TYPE`] whose payload is the signed payload itself (the bytes a QR
//! label's base45 decodes to). Everything after reading (verification,
//! decompression, the halves) is the QR label's path unchanged.
//!
//! Readers take what NFC tools produce:
//!
//! - an NDEF message on its own (a `.ndef` file, as `qr-packer pack --ndef`
//!   writes it and as phone NFC APIs hand it over);
//! - a memory dump of an NFC Forum Type 2 tag (NTAG213/215/216 and the
//!   like: 4-byte pages, the capability container in page 3, TLV blocks from
//!   page 4 on);
//! - the NDEF file of a Type 4 tag (a 2-byte length, then the message), with
//!   or without its capability container file in front.
//!
//! Every length is checked against the bytes actually there before anything
//! is sliced, and a dump larger than [`MAX_TAG_BYTES`] is refused unread.

/// The NFC Forum external type of an enrollment label record (format
/// version 1, as the QR text's `EN1:` prefix).
pub const RECORD_TYPE: &[u8] = b"iot-enroll.org:en1";

/// Largest tag image a reader looks at: Type 4 NDEF files are at most
/// 65,535 bytes plus their length and capability container.
pub const MAX_TAG_BYTES: usize = 64 * 1024 + 64;

/// NFC Forum "external type" (TNF 4).
const TNF_EXTERNAL: u8 = 0x04;
const MB: u8 = 0x80;
const ME: u8 = 0x40;
const CF: u8 = 0x20;
const SR: u8 = 0x10;
const IL: u8 = 0x08;

/// Common tags and their user memory in bytes (what the NDEF TLV must fit).
pub const TAGS: [Tag; 3] = [
    Tag { name: "NTAG213", user_bytes: 144 },
    Tag { name: "NTAG215", user_bytes: 504 },
    Tag { name: "NTAG216", user_bytes: 888 },
];

/// An NFC Forum Type 2 tag model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag {
    pub name: &'static str,
    /// User memory from page 4 on, in bytes.
    pub user_bytes: usize,
}

impl Tag {
    /// Whether an NDEF message of `message_len` bytes fits this tag's user
    /// memory in its TLV.
    pub fn fits(&self, message_len: usize) -> bool {
        tlv_len(message_len) <= self.user_bytes
    }
}

/// Why a tag image or NDEF message holds no label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NfcError {
    #[error("the tag image is {len} bytes; no NFC tag holds more than {max}: refused unread")]
    TooLarge { len: usize, max: usize },
    #[error("not an NDEF message, a Type 2 tag dump or a Type 4 NDEF file: {0}")]
    UnknownImage(String),
    #[error("malformed NDEF message: {0}")]
    MalformedNdef(String),
    #[error("malformed Type 2 tag dump: {0}")]
    MalformedType2(String),
    #[error("the NDEF message has no enrollment label record (external type {expected}); its records are: {found}")]
    NoLabelRecord { expected: String, found: String },
    #[error("the signed payload is {len} bytes; an NDEF record of this product holds at most {max}")]
    PayloadTooLarge { len: usize, max: usize },
    #[error("the NFC reader or tag failed: {0}")]
    Card(String),
}

/// One record of an NDEF message, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    pub tnf: u8,
    pub record_type: &'a [u8],
    pub payload: &'a [u8],
}

/// The NDEF message carrying `signed_payload` in one record of
/// [`RECORD_TYPE`].
pub fn encode_message(signed_payload: &[u8]) -> Result<Vec<u8>, NfcError> {
    // A Type 4 NDEF file's 2-byte length bounds every message we write.
    let max = u16::MAX as usize - 6 - RECORD_TYPE.len();
    if signed_payload.len() > max {
        return Err(NfcError::PayloadTooLarge { len: signed_payload.len(), max });
    }
    let short = signed_payload.len() <= u8::MAX as usize;
    let mut out = Vec::with_capacity(signed_payload.len() + RECORD_TYPE.len() + 6);
    out.push(MB | ME | if short { SR } else { 0 } | TNF_EXTERNAL);
    out.push(RECORD_TYPE.len() as u8);
    if short {
        out.push(signed_payload.len() as u8);
    } else {
        out.extend_from_slice(&(signed_payload.len() as u32).to_be_bytes());
    }
    out.extend_from_slice(RECORD_TYPE);
    out.extend_from_slice(signed_payload);
    Ok(out)
}

/// The records of an NDEF message. Chunked records are refused (no label
/// is written chunked).
pub fn parse_message(message: &[u8]) -> Result<Vec<Record<'_>>, NfcError> {
    let bad = |why: String| NfcError::MalformedNdef(why);
    let mut records = Vec::new();
    let mut at = 0usize;
    loop {
        let header = *message.get(at).ok_or_else(|| bad(format!("the message ends at byte {at} before its last record")))?;
        if records.is_empty() && header & MB == 0 {
            return Err(bad("the first record does not begin the message (MB flag clear)".into()));
        }
        if header & CF != 0 {
            return Err(bad(format!("record {} is chunked, which no enrollment label uses", records.len() + 1)));
        }
        let mut take = |n: usize, what: &str| -> Result<&[u8], NfcError> {
            let end = at.checked_add(n).filter(|&end| end <= message.len());
            let Some(end) = end else {
                return Err(bad(format!("{what} of record {} runs past the end ({} bytes)", records.len() + 1, message.len())));
            };
            let slice = &message[at..end];
            at = end;
            Ok(slice)
        };
        take(1, "the header")?;
        let type_len = take(1, "the type length")?[0] as usize;
        let payload_len = if header & SR != 0 {
            take(1, "the payload length")?[0] as usize
        } else {
            let b = take(4, "the payload length")?;
            u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize
        };
        let id_len = if header & IL != 0 { take(1, "the id length")?[0] as usize } else { 0 };
        let record_type = take(type_len, "the type")?;
        take(id_len, "the id")?;
        let payload = take(payload_len, "the payload")?;
        records.push(Record { tnf: header & 0x07, record_type, payload });
        if header & ME != 0 {
            if at != message.len() {
                return Err(bad(format!("{} bytes after the last record", message.len() - at)));
            }
            return Ok(records);
        }
    }
}

/// The signed payload in an NDEF message: the payload of its record of
/// [`RECORD_TYPE`].
pub fn payload_of_message(message: &[u8]) -> Result<Vec<u8>, NfcError> {
    let records = parse_message(message)?;
    if let Some(label) = records.iter().find(|r| r.tnf == TNF_EXTERNAL && r.record_type == RECORD_TYPE) {
        return Ok(label.payload.to_vec());
    }
    let found = records
        .iter()
        .map(|r| format!("TNF {} type {:?}", r.tnf, String::from_utf8_lossy(r.record_type)))
        .collect::<Vec<_>>()
        .join(", ");
    Err(NfcError::NoLabelRecord { expected: String::from_utf8_lossy(RECORD_TYPE).into_owned(), found })
}

/// What kind of image a reader was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    NdefMessage,
    Type2Dump,
    Type4NdefFile,
}

/// The signed payload on a tag, from any of the images this module reads
/// (see the module docs); also says which kind the image was.
pub fn read_payload(image: &[u8]) -> Result<(Vec<u8>, ImageKind), NfcError> {
    if image.len() > MAX_TAG_BYTES {
        return Err(NfcError::TooLarge { len: image.len(), max: MAX_TAG_BYTES });
    }
    if is_type2_dump(image) {
        return Ok((payload_of_message(type2_message(image)?)?, ImageKind::Type2Dump));
    }
    if let Some(message) = type4_message(image) {
        return Ok((payload_of_message(message)?, ImageKind::Type4NdefFile));
    }
    match image.first() {
        Some(header) if header & MB != 0 => Ok((payload_of_message(image)?, ImageKind::NdefMessage)),
        Some(_) => Err(NfcError::UnknownImage(format!(
            "{} bytes starting {}",
            image.len(),
            hex::encode(&image[..image.len().min(8)])
        ))),
        None => Err(NfcError::UnknownImage("the image is empty".into())),
    }
}

/// Byte of page 3 that says "NDEF data on this tag" in a Type 2 tag's
/// capability container.
const CC_MAGIC: u8 = 0xE1;
/// Where a Type 2 tag's data area starts: page 4.
const T2_DATA: usize = 16;

fn is_type2_dump(image: &[u8]) -> bool {
    image.len() >= T2_DATA && image.len().is_multiple_of(4) && image[12] == CC_MAGIC && image[13] >> 4 == 1
}

/// The NDEF message in a Type 2 tag dump: the first NDEF Message TLV of the
/// data area (lock, memory control and NULL TLVs skipped).
fn type2_message(image: &[u8]) -> Result<&[u8], NfcError> {
    let bad = |why: String| NfcError::MalformedType2(why);
    // The CC's data area size is in units of 8 bytes; a dump may hold less
    // (a partial read) or more (configuration pages after user memory).
    let declared = image[14] as usize * 8;
    let end = (T2_DATA + declared).min(image.len());
    let mut at = T2_DATA;
    while at < end {
        let t = image[at];
        at += 1;
        match t {
            0x00 => continue,
            0xFE => return Err(bad("the terminator TLV comes before any NDEF message".into())),
            _ => {}
        }
        let first = *image.get(at).ok_or_else(|| bad(format!("TLV 0x{t:02X} at byte {} has no length", at - 1)))?;
        let (len, header) = if first == 0xFF {
            let b = image.get(at + 1..at + 3).ok_or_else(|| bad("a 3-byte TLV length runs past the dump".into()))?;
            (u16::from_be_bytes([b[0], b[1]]) as usize, 3)
        } else {
            (first as usize, 1)
        };
        at += header;
        let value = image
            .get(at..at + len)
            .filter(|_| at + len <= end)
            .ok_or_else(|| bad(format!("TLV 0x{t:02X} of {len} bytes runs past the data area ({declared} bytes)")))?;
        if t == 0x03 {
            return Ok(value);
        }
        at += len;
    }
    Err(bad("no NDEF Message TLV in the data area".into()))
}

/// The message in a Type 4 NDEF file (`NLEN`, message), with or without
/// the 15-byte capability container file in front; `None` if the image is
/// not one.
fn type4_message(image: &[u8]) -> Option<&[u8]> {
    let file = match image {
        // CCLEN 0x000F, mapping version 2.0 or 3.0, NDEF File Control TLV.
        [0x00, 0x0F, 0x20 | 0x30, _, _, _, _, 0x04, 0x06, ..] if image.len() >= 17 => &image[15..],
        _ => image,
    };
    let nlen = u16::from_be_bytes([*file.first()?, *file.get(1)?]) as usize;
    let message = file.get(2..2 + nlen)?;
    // The rest of the file, if any, is unused (zero) space.
    let rest_is_empty = file[2 + nlen..].iter().all(|&b| b == 0);
    (nlen > 0 && rest_is_empty && message[0] & MB != 0).then_some(message)
}

/// Reading a tag through a contactless smart-card reader (PC/SC): the
/// command sequences, over any `Transmit`, so they are tested against
/// simulated tags; the `pcsc` feature of `qr-packer-cli` connects them to a
/// real reader.
pub mod card {
    use super::{MAX_TAG_BYTES, NfcError, T2_DATA};

    /// Sends one command APDU to the tag, returning the response with its
    /// two status bytes.
    pub trait Transmit {
        fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, String>;
    }

    const OK: [u8; 2] = [0x90, 0x00];
    /// The NFC Forum Type 4 NDEF application.
    const NDEF_AID: [u8; 7] = [0xD2, 0x76, 0x00, 0x00, 0x85, 0x01, 0x01];

    /// Sends `apdu`; the response data if the status is 90 00.
    fn command(card: &mut dyn Transmit, apdu: &[u8], what: &str) -> Result<Vec<u8>, NfcError> {
        let mut response = card.transmit(apdu).map_err(|e| NfcError::Card(format!("{what}: {e}")))?;
        if response.len() < 2 || response[response.len() - 2..] != OK {
            let status = response.get(response.len().saturating_sub(2)..).map(hex::encode).unwrap_or_default();
            return Err(NfcError::Card(format!("{what}: status {status}")));
        }
        response.truncate(response.len() - 2);
        Ok(response)
    }

    /// Reads the tag on the reader: a Type 4 tag's capability container and
    /// NDEF file, or else a Type 2 tag's memory, as an image
    /// [`super::read_payload`] reads.
    pub fn read_tag(card: &mut dyn Transmit) -> Result<Vec<u8>, NfcError> {
        let mut select = vec![0x00, 0xA4, 0x04, 0x00, NDEF_AID.len() as u8];
        select.extend_from_slice(&NDEF_AID);
        select.push(0x00);
        match card.transmit(&select) {
            Ok(r) if r.ends_with(&OK) => read_type4(card),
            _ => read_type2(card),
        }
    }

    fn read_type4(card: &mut dyn Transmit) -> Result<Vec<u8>, NfcError> {
        command(card, &[0x00, 0xA4, 0x00, 0x0C, 0x02, 0xE1, 0x03], "selecting the capability container")?;
        let cc = command(card, &[0x00, 0xB0, 0x00, 0x00, 0x0F], "reading the capability container")?;
        let [_, _, _, mle_hi, mle_lo, _, _, 0x04, 0x06, id_hi, id_lo, ..] = cc[..] else {
            return Err(NfcError::Card(format!("not a Type 4 capability container: {}", hex::encode(&cc))));
        };
        // Read no more per command than the tag says it sends (MLe), and
        // never more than a short APDU's 255.
        let chunk = (u16::from_be_bytes([mle_hi, mle_lo]) as usize).clamp(1, 255);
        command(card, &[0x00, 0xA4, 0x00, 0x0C, 0x02, id_hi, id_lo], "selecting the NDEF file")?;
        let nlen = command(card, &[0x00, 0xB0, 0x00, 0x00, 0x02], "reading the NDEF length")?;
        let [hi, lo] = nlen[..] else {
            return Err(NfcError::Card("the NDEF length is not two bytes".into()));
        };
        let total = 2 + u16::from_be_bytes([hi, lo]) as usize;
        let mut image = cc;
        image.extend_from_slice(&nlen);
        let mut offset = 2;
        while offset < total {
            let n = chunk.min(total - offset);
            let [o_hi, o_lo] = (offset as u16).to_be_bytes();
            let data = command(card, &[0x00, 0xB0, o_hi, o_lo, n as u8], "reading the NDEF file")?;
            if data.is_empty() || data.len() > n {
                return Err(NfcError::Card(format!("the tag answered {} bytes to a read of {n}", data.len())));
            }
            offset += data.len();
            image.extend_from_slice(&data);
        }
        Ok(image)
    }

    fn read_type2(card: &mut dyn Transmit) -> Result<Vec<u8>, NfcError> {
        // PC/SC storage-card READ BINARY: 16 bytes (4 pages) from a page.
        let read = |card: &mut dyn Transmit, page: usize| {
            command(card, &[0xFF, 0xB0, 0x00, page as u8, 0x10], "reading Type 2 pages")
        };
        let mut image = read(card, 0)?;
        if image.len() != T2_DATA || image[12] != super::CC_MAGIC {
            return Err(NfcError::Card("neither an NFC Forum Type 4 nor a Type 2 tag (no NDEF capability container)".into()));
        }
        let total = (T2_DATA + image[14] as usize * 8).min(MAX_TAG_BYTES).min(T2_DATA + 255 * 4);
        while image.len() < total {
            let data = read(card, image.len() / 4)?;
            if data.len() != 16 {
                return Err(NfcError::Card(format!("the tag answered {} bytes to a read of 16", data.len())));
            }
            image.extend_from_slice(&data);
        }
        image.truncate(total);
        Ok(image)
    }
}

/// Bytes the NDEF Message TLV of a message needs (tag, length, value,
/// terminator).
fn tlv_len(message_len: usize) -> usize {
    let length = if message_len < 0xFF { 1 } else { 3 };
    1 + length + message_len + 1
}

/// A memory image of `tag` holding `message`: the way the tag reads after
/// being written (UID pages, capability container, NDEF TLV, terminator,
/// zeroes to the end of user memory). For tests and for tag writers that
/// take images.
pub fn type2_image(tag: Tag, uid: [u8; 7], message: &[u8]) -> Result<Vec<u8>, NfcError> {
    if !tag.fits(message.len()) {
        return Err(NfcError::PayloadTooLarge { len: message.len(), max: tag.user_bytes.saturating_sub(tlv_len(0)) });
    }
    let mut image = Vec::with_capacity(T2_DATA + tag.user_bytes);
    // Pages 0–2: UID with its check bytes, internal byte, lock bytes.
    let bcc0 = 0x88 ^ uid[0] ^ uid[1] ^ uid[2];
    let bcc1 = uid[3] ^ uid[4] ^ uid[5] ^ uid[6];
    image.extend_from_slice(&[uid[0], uid[1], uid[2], bcc0, uid[3], uid[4], uid[5], uid[6], bcc1, 0x48, 0x00, 0x00]);
    // Page 3: capability container (NDEF, mapping 1.0, size, read/write).
    image.extend_from_slice(&[CC_MAGIC, 0x10, (tag.user_bytes / 8) as u8, 0x00]);
    image.push(0x03);
    if message.len() < 0xFF {
        image.push(message.len() as u8);
    } else {
        image.push(0xFF);
        image.extend_from_slice(&(message.len() as u16).to_be_bytes());
    }
    image.extend_from_slice(message);
    image.push(0xFE);
    image.resize(T2_DATA + tag.user_bytes, 0);
    Ok(image)
}

/// A Type 4 tag's capability container file and NDEF file for `message`,
/// one after the other, as a Type 4 dump reads.
pub fn type4_image(message: &[u8]) -> Result<Vec<u8>, NfcError> {
    let max = u16::MAX as usize - 2;
    if message.len() > max {
        return Err(NfcError::PayloadTooLarge { len: message.len(), max });
    }
    let file_size = (message.len() + 2) as u16;
    let mut image = vec![0x00, 0x0F, 0x20, 0x00, 0x3B, 0x00, 0x34, 0x04, 0x06, 0xE1, 0x04];
    image.extend_from_slice(&file_size.to_be_bytes());
    image.extend_from_slice(&[0x00, 0x00]);
    image.extend_from_slice(&(message.len() as u16).to_be_bytes());
    image.extend_from_slice(message);
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + 3) as u8).collect()
    }

    #[test]
    fn short_and_long_records_round_trip() {
        for len in [0, 1, 255, 256, 400, 5000] {
            let message = encode_message(&payload(len)).unwrap();
            let (read, kind) = read_payload(&message).unwrap();
            assert_eq!((read, kind), (payload(len), ImageKind::NdefMessage), "{len}");
            assert_eq!(message.len(), len + RECORD_TYPE.len() + if len <= 255 { 3 } else { 6 });
        }
    }

    #[test]
    fn type2_and_type4_images_round_trip() {
        let message = encode_message(&payload(356)).unwrap();
        for tag in TAGS.iter().filter(|t| t.fits(message.len())) {
            let image = type2_image(*tag, [4, 1, 2, 3, 4, 5, 6], &message).unwrap();
            assert_eq!(image.len(), 16 + tag.user_bytes);
            assert_eq!(read_payload(&image).unwrap(), (payload(356), ImageKind::Type2Dump), "{}", tag.name);
        }
        let image = type4_image(&message).unwrap();
        assert_eq!(read_payload(&image).unwrap(), (payload(356), ImageKind::Type4NdefFile));
        // The NDEF file alone, as some tools dump it.
        assert_eq!(read_payload(&image[15..]).unwrap(), (payload(356), ImageKind::Type4NdefFile));
    }

    #[test]
    fn which_tags_a_message_fits() {
        let fits = |len: usize| TAGS.iter().filter(|t| t.fits(len)).map(|t| t.name).collect::<Vec<_>>();
        assert_eq!(fits(140), ["NTAG213", "NTAG215", "NTAG216"]);
        assert_eq!(fits(142), ["NTAG215", "NTAG216"], "tag, length and terminator take 3 bytes");
        assert_eq!(fits(500), ["NTAG216"], "a 3-byte TLV length above 254");
        assert!(fits(885).is_empty());
        assert!(type2_image(TAGS[0], [0; 7], &payload(200)).is_err());
    }

    #[test]
    fn type2_dumps_with_lock_tlvs_and_config_pages_are_read() {
        let message = encode_message(&payload(100)).unwrap();
        let mut image = type2_image(TAGS[1], [4, 9, 9, 9, 9, 9, 9], &message).unwrap();
        // A Lock Control TLV and a NULL TLV before the NDEF TLV, and the
        // tag's configuration pages after user memory.
        image.splice(16..16, [0x01, 0x03, 0xA0, 0x10, 0x44, 0x00]);
        image.truncate(16 + TAGS[1].user_bytes);
        image.extend_from_slice(&[0; 20]);
        assert_eq!(read_payload(&image).unwrap().0, payload(100));
    }

    /// A Type 2 tag on a PC/SC reader: answers READ BINARY of 4 pages.
    struct Type2Card(Vec<u8>);

    impl card::Transmit for Type2Card {
        fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, String> {
            match apdu {
                [0xFF, 0xB0, 0x00, page, 0x10] => {
                    let at = *page as usize * 4;
                    let mut data: Vec<u8> = (at..at + 16).map(|i| self.0.get(i).copied().unwrap_or(0)).collect();
                    data.extend_from_slice(&[0x90, 0x00]);
                    Ok(data)
                }
                _ => Ok(vec![0x6A, 0x82]),
            }
        }
    }

    /// A Type 4 tag: the NDEF application, its CC file and NDEF file.
    struct Type4Card {
        image: Vec<u8>,
        selected: Option<u16>,
        reads: usize,
    }

    impl card::Transmit for Type4Card {
        fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, String> {
            let ok = |mut d: Vec<u8>| {
                d.extend_from_slice(&[0x90, 0x00]);
                Ok(d)
            };
            match apdu {
                [0x00, 0xA4, 0x04, 0x00, 7, 0xD2, 0x76, 0x00, 0x00, 0x85, 0x01, 0x01, 0x00] => ok(vec![]),
                [0x00, 0xA4, 0x00, 0x0C, 0x02, hi, lo] => {
                    self.selected = Some(u16::from_be_bytes([*hi, *lo]));
                    ok(vec![])
                }
                [0x00, 0xB0, hi, lo, n] => {
                    self.reads += 1;
                    let offset = u16::from_be_bytes([*hi, *lo]) as usize;
                    let file = match self.selected {
                        Some(0xE103) => &self.image[..15],
                        Some(0xE104) => &self.image[15..],
                        _ => return Ok(vec![0x69, 0x86]),
                    };
                    ok(file.get(offset..(offset + *n as usize).min(file.len())).unwrap_or_default().to_vec())
                }
                _ => Ok(vec![0x6D, 0x00]),
            }
        }
    }

    #[test]
    fn tags_read_through_a_reader_give_the_images_the_readers_take() {
        let message = encode_message(&payload(600)).unwrap();
        let type2 = type2_image(TAGS[2], [4, 1, 2, 3, 4, 5, 6], &message).unwrap();
        let read = card::read_tag(&mut Type2Card(type2.clone())).unwrap();
        assert_eq!(read, type2);
        assert_eq!(read_payload(&read).unwrap(), (payload(600), ImageKind::Type2Dump));

        let type4 = type4_image(&message).unwrap();
        let mut tag = Type4Card { image: type4.clone(), selected: None, reads: 0 };
        let read = card::read_tag(&mut tag).unwrap();
        assert_eq!(read, type4);
        assert_eq!(read_payload(&read).unwrap(), (payload(600), ImageKind::Type4NdefFile));
        // MLe of 0x3B (59) bytes a read: CC, NLEN, then the file in chunks.
        assert_eq!(tag.reads, 2 + message.len().div_ceil(59));

        // A card that is neither.
        struct Nothing;
        impl card::Transmit for Nothing {
            fn transmit(&mut self, _: &[u8]) -> Result<Vec<u8>, String> {
                Ok(vec![0x6A, 0x82])
            }
        }
        assert!(matches!(card::read_tag(&mut Nothing), Err(NfcError::Card(why)) if why.contains("status 6a82")));
    }

    #[test]
    fn other_records_and_broken_images_get_specific_errors() {
        // A URI record only.
        let uri = [MB | ME | SR | 0x01, 1, 4, b'U', 0x04, b'a', b'.', b'b'];
        assert!(matches!(read_payload(&uri), Err(NfcError::NoLabelRecord { found, .. }) if found.contains("TNF 1 type \"U\"")));
        // Lengths past the end, at every cut.
        let message = encode_message(&payload(300)).unwrap();
        for cut in 1..message.len() {
            assert!(read_payload(&message[..cut]).is_err(), "cut at {cut}");
        }
        // A chunked record.
        let mut chunked = encode_message(&payload(10)).unwrap();
        chunked[0] |= CF;
        assert!(matches!(read_payload(&chunked), Err(NfcError::MalformedNdef(why)) if why.contains("chunked")));
        // A Type 2 dump whose TLV claims more than the data area.
        let mut image = type2_image(TAGS[2], [4; 7], &encode_message(&payload(50)).unwrap()).unwrap();
        image[17..20].copy_from_slice(&[0xFF, 0x10, 0x00]);
        assert!(matches!(read_payload(&image), Err(NfcError::MalformedType2(_))));
        assert!(matches!(read_payload(&vec![0; MAX_TAG_BYTES + 1]), Err(NfcError::TooLarge { .. })));
        assert!(matches!(read_payload(b"EN1:ABC"), Err(NfcError::UnknownImage(_))));
        assert!(matches!(read_payload(&[]), Err(NfcError::UnknownImage(_))));
    }
}
