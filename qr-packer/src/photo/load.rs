//! Decoding an image file to grey pixels, the only channel the decoders read.
//!
//! A JPEG (what a phone camera gives) is decoded straight to its luma
//! channel: that skips chroma upsampling and colour conversion, about half
//! the decoding time of a 12-megapixel photo. Anything else (PNG, or a JPEG
//! the luma path refuses) goes through `image` and is converted to grey.

use image::GrayImage;
use zune_jpeg::zune_core::bytestream::ZCursor;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;

use crate::error::PayloadError;

/// The most pixels a JPEG may declare to be decoded: 128 megapixels, 128 MB
/// of grey, as much as `image`'s default allocation limit (512 MiB) lets it
/// decode as RGBA. A phone photo is 12 to 50 megapixels.
pub const MAX_JPEG_PIXELS: u64 = 128_000_000;

/// The image's grey pixels.
pub(super) fn luma(bytes: &[u8]) -> Result<GrayImage, PayloadError> {
    // A JPEG the luma path cannot take goes to `image`, which decodes it or
    // says why not.
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF])
        && let Some(luma) = jpeg_luma(bytes)?
    {
        return Ok(luma);
    }
    let image = image::load_from_memory(bytes).map_err(|e| PayloadError::BadImage(e.to_string()))?;
    Ok(image.to_luma8())
}

/// A JPEG's luma channel; `None` when the luma decoder cannot give it (the
/// caller lets `image` try); `Err` when the photo has too many pixels.
fn jpeg_luma(bytes: &[u8]) -> Result<Option<GrayImage>, PayloadError> {
    let options = DecoderOptions::default()
        .set_strict_mode(false)
        .set_max_width(usize::from(u16::MAX))
        .set_max_height(usize::from(u16::MAX))
        .jpeg_set_out_colorspace(ColorSpace::Luma);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    if decoder.decode_headers().is_err() {
        return Ok(None);
    }
    let Some((width, height)) = decoder.dimensions() else { return Ok(None) };
    let pixels = width as u64 * height as u64;
    if pixels > MAX_JPEG_PIXELS {
        return Err(PayloadError::BadImage(format!(
            "the JPEG is {width} x {height} pixels, more than the {MAX_JPEG_PIXELS} this reader decodes: send a smaller photo"
        )));
    }
    if decoder.output_colorspace() != Some(ColorSpace::Luma) {
        return Ok(None);
    }
    let Ok(grey) = decoder.decode() else { return Ok(None) };
    let (Ok(width), Ok(height)) = (u32::try_from(width), u32::try_from(height)) else { return Ok(None) };
    Ok(GrayImage::from_raw(width, height, grey))
}
