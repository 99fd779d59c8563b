//! Reading the payload text from a photo or scan of a printed label.
//!
//! A label is photographed on a box, at an angle, out of focus, in poor
//! light, and a phone photo has 12 megapixels. No one decoder with one
//! threshold reads all of those, so the reader does what the best open
//! readers (ZXing, zxing-cpp) do: it makes a few cheap views of the photo (a
//! smaller copy of a big photo first, then the full one: [`scale`]; global and
//! local thresholds, a local contrast stretch: [`binarize`]) and runs two decoders on them ([`decode`]:
//! `rqrr`, and `rxing`, the Rust port of ZXing, whose detector samples the
//! code through a perspective transform), in a fixed order, cheapest first
//! ([`plan`]), and stops at the first label payload (`EN1:` text). The caller
//! verifies the signature: a QR code with other text is returned only when no
//! attempt found a label, so that the caller can say the code is not an
//! enrollment label.

mod binarize;
mod decode;
mod load;
mod plan;
mod scale;

use image::GrayImage;

use crate::error::PayloadError;

pub use load::MAX_JPEG_PIXELS;

/// Reads the payload text from a photo or scan of a label (PNG or JPEG).
pub fn read_label_image(image_bytes: &[u8]) -> Result<String, PayloadError> {
    read_label_luma(&load::luma(image_bytes)?)
}

/// Reads the payload text from an already decoded grey (luma) image, e.g. a
/// camera frame's Y plane.
pub fn read_label_luma(image: &GrayImage) -> Result<String, PayloadError> {
    read_label_luma_traced(image, &mut |_| {})
}

/// [`read_label_luma`], calling `on_attempt` with the name of each attempt
/// before it runs (for benchmarks and diagnostics: the last name given before
/// a success is the attempt that read the label).
pub fn read_label_luma_traced(image: &GrayImage, on_attempt: &mut dyn FnMut(&'static str)) -> Result<String, PayloadError> {
    plan::read(image, on_attempt)
}

// The tests draw labels with the renderer.
#[cfg(all(test, feature = "render"))]
mod tests;
#[cfg(all(test, feature = "render"))]
mod homography;
