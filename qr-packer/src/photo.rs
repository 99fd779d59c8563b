//! Reading the payload text from a photo or scan of a printed label.

use crate::error::PayloadError;

/// Reads the payload text from a photo or scan of a label (PNG or JPEG).
pub fn read_label_image(image_bytes: &[u8]) -> Result<String, PayloadError> {
    let image = image::load_from_memory(image_bytes).map_err(|e| PayloadError::BadImage(e.to_string()))?;
    let luma = image.to_luma8();
    let (w, h) = (luma.width() as usize, luma.height() as usize);
    let mut prepared = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| luma.get_pixel(x as u32, y as u32).0[0]);
    let grids = prepared.detect_grids();
    let mut last_error = None;
    for grid in grids {
        match grid.decode() {
            Ok((_, content)) => return Ok(content),
            Err(e) => last_error = Some(e.to_string()),
        }
    }
    Err(match last_error {
        Some(e) => PayloadError::UnreadableQrCode(e),
        None => PayloadError::NoQrCodeInImage,
    })
}
