//! The two QR decoders, behind one shape: every text a decoder read in an
//! image, and why a code it found could not be read.
//!
//! `rqrr` is small and fast on a clean, sharp code; `rxing` (the Rust port of
//! ZXing and of zxing-cpp's QR detector) finds codes at an angle, in
//! perspective and under blur that `rqrr` misses, and reads codes whose
//! version information `rqrr` takes for corrupt. A decoder that panics on a
//! hostile image counts as an attempt that found nothing readable: the photo
//! is untrusted input, and the reader goes on with its next attempt.

use std::collections::HashSet;
use std::panic::{AssertUnwindSafe, catch_unwind};

use image::GrayImage;
use rxing::common::{GlobalHistogramBinarizer, HybridBinarizer};
use rxing::multi::MultipleBarcodeReader;
use rxing::multi::qrcode::QRCodeMultiReader;
use rxing::qrcode::cpp_port::QrReader;
use rxing::{BarcodeFormat, Binarizer, BinaryBitmap, DecodeHints, Luma8Source};

/// What one decoder made of one image.
#[derive(Debug, Default)]
pub(super) struct Found {
    /// The texts of the codes read, in the decoder's order.
    pub texts: Vec<String>,
    /// Why a code that was found could not be read (the last such reason).
    pub unreadable: Option<String>,
}

/// How `rxing` turns grey into black and white.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Threshold {
    /// ZXing's `HybridBinarizer`: a threshold per 8 x 8 block from the 5 x 5
    /// blocks around it (shadows, gradients, uneven light).
    Local,
    /// The same, then a morphological closing (dilate, erode) that fills
    /// the holes a blur or JPEG noise leaves in dark modules.
    LocalClosed,
    /// ZXing's `GlobalHistogramBinarizer`: one threshold from the image's
    /// histogram (low contrast, even light).
    Global,
}

/// Every code `rqrr` reads in `image`.
pub(super) fn rqrr(image: &GrayImage) -> Found {
    guarded("rqrr", || {
        let (width, height) = (image.width() as usize, image.height() as usize);
        let pixels = image.as_raw();
        let mut prepared = rqrr::PreparedImage::prepare_from_greyscale(width, height, |x, y| pixels[y * width + x]);
        let mut found = Found::default();
        for grid in prepared.detect_grids() {
            match grid.decode() {
                Ok((_, text)) => found.texts.push(text),
                Err(e) => found.unreadable = Some(e.to_string()),
            }
        }
        found
    })
}

/// Every QR code `rxing` reads in `image`, thresholded by `binarizer`;
/// `try_harder` scans every row for finder patterns instead of a sample.
pub(super) fn rxing(image: &GrayImage, binarizer: Threshold, try_harder: bool) -> Found {
    guarded("rxing", || {
        let Ok(source) = Luma8Source::new_with_slice(image.as_raw(), image.width(), image.height()) else {
            return Found::default();
        };
        let hints = DecodeHints {
            PossibleFormats: Some(HashSet::from([BarcodeFormat::QR_CODE])),
            TryHarder: Some(try_harder),
            ..DecodeHints::default()
        };
        match binarizer {
            Threshold::Local => read_rxing(BinaryBitmap::new(HybridBinarizer::new(source)), false, &hints),
            Threshold::LocalClosed => read_rxing(BinaryBitmap::new(HybridBinarizer::new(source)), true, &hints),
            Threshold::Global => read_rxing(BinaryBitmap::new(GlobalHistogramBinarizer::new(source)), false, &hints),
        }
    })
}

fn read_rxing<B: Binarizer>(mut bitmap: BinaryBitmap<B>, close: bool, hints: &DecodeHints) -> Found {
    if close && bitmap.close().is_err() {
        return Found::default();
    }
    match QrReader.decode_multiple_with_hints(&mut bitmap, hints) {
        Ok(results) => Found { texts: results.iter().map(|r| r.getText().to_owned()).collect(), unreadable: None },
        Err(_) => Found::default(), // rxing reports no partial reads: nothing found
    }
}

/// Every QR code the classic ZXing reader (the Java port, with its own
/// finder-pattern search and alignment-pattern sampling) reads in `image`,
/// thresholded by ZXing's `HybridBinarizer`, every row scanned. It finds codes
/// under a deep shadow that the zxing-cpp detector misses.
pub(super) fn rxing_classic(image: &GrayImage) -> Found {
    guarded("rxing", || {
        let Ok(source) = Luma8Source::new_with_slice(image.as_raw(), image.width(), image.height()) else {
            return Found::default();
        };
        let hints = DecodeHints { TryHarder: Some(true), ..DecodeHints::default() };
        let mut bitmap = BinaryBitmap::new(HybridBinarizer::new(source));
        match QRCodeMultiReader::default().decode_multiple_with_hints(&mut bitmap, &hints) {
            Ok(results) => Found { texts: results.iter().map(|r| r.getText().to_owned()).collect(), unreadable: None },
            Err(_) => Found::default(),
        }
    })
}

/// `image` thresholded by ZXing's `HybridBinarizer`, as black (0) and white
/// (255) pixels: for `rqrr`, whose own moving-average threshold breaks up a
/// code in strong perspective that this one keeps whole.
pub(super) fn hybrid_black_white(image: &GrayImage) -> GrayImage {
    let mut out = image.clone();
    let Ok(source) = Luma8Source::new_with_slice(image.as_raw(), image.width(), image.height()) else {
        return out;
    };
    let bitmap = BinaryBitmap::new(HybridBinarizer::new(source));
    let matrix = bitmap.get_black_matrix();
    for (x, y, p) in out.enumerate_pixels_mut() {
        p.0[0] = if matrix.get(x, y) { 0 } else { 255 };
    }
    out
}

/// `decode()`, or "found nothing readable" if it panics.
fn guarded(decoder: &str, decode: impl FnOnce() -> Found) -> Found {
    catch_unwind(AssertUnwindSafe(decode)).unwrap_or_else(|_| Found {
        texts: Vec::new(),
        unreadable: Some(format!("the {decoder} decoder failed on this image")),
    })
}

