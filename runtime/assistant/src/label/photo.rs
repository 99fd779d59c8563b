//! Reading a label from a photo, within bounds.
//!
//! A label image comes from a camera or an upload, so it is untrusted input
//! like the label itself: a PNG of a few hundred bytes can declare
//! 40,000 x 40,000 pixels, which decoded is 1.6 G grey pixels (4.8 GB as
//! RGB) before the QR reader even starts. So the file's size is capped, its
//! dimensions are read from its header and capped *before* anything is
//! decoded, and decoding (CPU-bound, hundreds of milliseconds for a phone
//! photo) runs on a blocking thread, a bounded number at a time, never on the
//! async executor.

use std::io::Cursor;

use tokio::sync::Semaphore;

use super::LabelError;

/// The largest label image file read, in bytes. A 12-megapixel phone photo
/// is 2 to 8 MB as JPEG and up to ~25 MB as PNG; 32 MiB takes both, and a
/// label rendered by `qr-packer` is a few KiB.
pub const MAX_LABEL_IMAGE_BYTES: usize = 32 * 1024 * 1024;

/// The most pixels a label image may have. A phone photo is 12 MP (4000 x
/// 3000) and the largest phone sensors give 48 to 50 MP; a QR code needs far
/// fewer. 50 MP decodes to at most 200 MB (RGBA) plus 50 MB of grey for the
/// reader: large, but bounded, and [`MAX_CONCURRENT_DECODES`] of them at once.
pub const MAX_LABEL_IMAGE_PIXELS: u64 = 50_000_000;

/// How many label images are decoded at once.
pub const MAX_CONCURRENT_DECODES: usize = 2;

static DECODES: Semaphore = Semaphore::const_new(MAX_CONCURRENT_DECODES);

/// Checks the file size and the dimensions its header declares, without
/// decoding any pixel.
pub(super) fn check_image(image: &[u8]) -> Result<(), LabelError> {
    if image.len() > MAX_LABEL_IMAGE_BYTES {
        return Err(LabelError::ImageTooLarge { bytes: image.len() as u64, max: MAX_LABEL_IMAGE_BYTES as u64 });
    }
    let bad = |e: &dyn std::fmt::Display| LabelError::Payload(qr_packer::PayloadError::BadImage(e.to_string()));
    let reader = image::ImageReader::new(Cursor::new(image)).with_guessed_format().map_err(|e| bad(&e))?;
    let (width, height) = reader.into_dimensions().map_err(|e| bad(&e))?;
    if u64::from(width) * u64::from(height) > MAX_LABEL_IMAGE_PIXELS {
        return Err(LabelError::ImageTooManyPixels { width, height, max_pixels: MAX_LABEL_IMAGE_PIXELS });
    }
    Ok(())
}

/// The payload text of a label image, checked first and then decoded in
/// the calling thread (for tools that block anyway).
pub(super) fn read_text(image: &[u8]) -> Result<String, LabelError> {
    check_image(image)?;
    Ok(qr_packer::read_label_image(image)?)
}

/// The payload text of a label image, checked first and then decoded on a
/// blocking thread, at most [`MAX_CONCURRENT_DECODES`] at once.
pub(super) async fn read_text_off_executor(image: Vec<u8>) -> Result<String, LabelError> {
    check_image(&image)?;
    let _slot = DECODES.acquire().await.map_err(|_| LabelError::ImageDecoder("the decoder slots are closed".into()))?;
    tokio::task::spawn_blocking(move || qr_packer::read_label_image(&image))
        .await
        .map_err(|e| LabelError::ImageDecoder(format!("the decoder thread failed: {e}")))?
        .map_err(LabelError::Payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// A PNG that declares `width` x `height` grey pixels and holds none: a
    /// few dozen bytes.
    fn png_header(width: u32, height: u32) -> Vec<u8> {
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&width.to_be_bytes());
        ihdr.extend_from_slice(&height.to_be_bytes());
        ihdr.extend_from_slice(&[8, 0, 0, 0, 0]); // 8-bit greyscale, no interlace
        chunk(&mut png, b"IHDR", &ihdr);
        chunk(&mut png, b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
        chunk(&mut png, b"IEND", &[]);
        png
    }

    fn chunk(png: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        png.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let start = png.len();
        png.extend_from_slice(kind);
        png.extend_from_slice(data);
        let crc = crc32(&png[start..]);
        png.extend_from_slice(&crc.to_be_bytes());
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }

    #[tokio::test]
    async fn a_tiny_png_declaring_40000_by_40000_pixels_is_refused_before_decoding() {
        let png = png_header(40_000, 40_000);
        assert!(png.len() < 100, "{} bytes", png.len());
        let started = Instant::now();
        let error = read_text_off_executor(png.clone()).await.unwrap_err();
        assert_eq!(error, LabelError::ImageTooManyPixels { width: 40_000, height: 40_000, max_pixels: MAX_LABEL_IMAGE_PIXELS });
        assert_eq!(read_text(&png).unwrap_err(), error, "the blocking reader checks the same");
        assert!(error.to_string().contains("40000 x 40000"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(5), "refused from the header, without decoding");
        // Just over the cap too: 7,072 x 7,072 is 50.01 MP.
        assert!(matches!(check_image(&png_header(7_072, 7_072)), Err(LabelError::ImageTooManyPixels { .. })));
    }

    #[test]
    fn phone_photos_pass_the_checks() {
        for (width, height) in [(4_000, 3_000), (3_000, 4_000), (8_000, 6_000), (7_071, 7_071)] {
            check_image(&png_header(width, height)).unwrap_or_else(|e| panic!("{width} x {height}: {e}"));
        }
    }

    #[tokio::test]
    async fn an_oversized_file_is_refused_unread() {
        let mut big = png_header(100, 100);
        big.resize(MAX_LABEL_IMAGE_BYTES + 1, 0);
        let error = read_text_off_executor(big).await.unwrap_err();
        assert_eq!(error, LabelError::ImageTooLarge { bytes: MAX_LABEL_IMAGE_BYTES as u64 + 1, max: MAX_LABEL_IMAGE_BYTES as u64 });
    }

    #[tokio::test]
    async fn decoding_waits_for_a_free_decoder_slot() {
        let text = format!("{}{}", qr_packer::text::PREFIX, "SLOT".repeat(10));
        let png = qr_packer::render_png(&text, qr_packer::Ec::M, 4).unwrap();
        let all = DECODES.acquire_many(MAX_CONCURRENT_DECODES as u32).await.unwrap();
        let mut read = Box::pin(read_text_off_executor(png));
        // Every slot is taken: the decode cannot start, however long it waits.
        assert!(tokio::time::timeout(Duration::from_millis(200), &mut read).await.is_err(), "it waited for a slot");
        drop(all);
        assert_eq!(read.await.unwrap(), text);
    }

    #[tokio::test]
    async fn a_rendered_label_is_read_off_the_executor() {
        let text = format!("{}{}", qr_packer::text::PREFIX, "ABC123".repeat(20));
        let png = qr_packer::render_png(&text, qr_packer::Ec::M, 4).unwrap();
        assert_eq!(read_text_off_executor(png).await.unwrap(), text);
        let garbage = read_text_off_executor(b"not an image".to_vec()).await.unwrap_err();
        assert!(matches!(garbage, LabelError::Payload(qr_packer::PayloadError::BadImage(_))), "{garbage:?}");
    }
}
