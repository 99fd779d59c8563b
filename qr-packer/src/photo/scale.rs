//! Smaller copies of a photo, by averaging square blocks of pixels.
//!
//! A QR code needs 2 to 3 pixels per module, and a 12-megapixel photo of a
//! label usually has 10 or more: reading a copy with a third of the width is
//! about nine times less work and, as the averaging also smooths sensor noise
//! and softens blur, often reads better. The full photo stays for a small
//! label in a large scene.

use image::GrayImage;

/// The pixel count a photo is first reduced to (at most): 1.5 megapixels, a
/// 12-megapixel photo at a third of its width and height.
pub(super) const WORKING_PIXELS: u64 = 1_500_000;

/// The smallest integer factor that brings `image` to at most
/// [`WORKING_PIXELS`] (1 when it is that small already).
pub(super) fn working_factor(image: &GrayImage) -> u32 {
    let pixels = u64::from(image.width()) * u64::from(image.height());
    let mut factor = 1u32;
    while pixels / (u64::from(factor) * u64::from(factor)) > WORKING_PIXELS && factor < 64 {
        factor += 1;
    }
    factor
}

/// `image` with each `factor` x `factor` block averaged into one pixel (the
/// last partial row and column of blocks dropped); `None` below 1 x 1.
pub(super) fn downscale(image: &GrayImage, factor: u32) -> Option<GrayImage> {
    let factor = factor.max(1);
    let (width, height) = (image.width() / factor, image.height() / factor);
    if width == 0 || height == 0 {
        return None;
    }
    let (source_width, f) = (image.width() as usize, factor as usize);
    let source = image.as_raw();
    let mut out = Vec::with_capacity(width as usize * height as usize);
    let mut sums = vec![0u32; width as usize];
    let area = (f * f) as u32;
    for y in 0..height as usize {
        sums.iter_mut().for_each(|s| *s = 0);
        for row in source.chunks_exact(source_width).skip(y * f).take(f) {
            for (sum, block) in sums.iter_mut().zip(row.chunks_exact(f)) {
                *sum += block.iter().map(|&p| u32::from(p)).sum::<u32>();
            }
        }
        out.extend(sums.iter().map(|&s| ((s + area / 2) / area) as u8));
    }
    GrayImage::from_raw(width, height, out)
}

/// `image` twice as wide and high, each pixel repeated (for codes whose
/// modules are only 2 pixels wide, which finder-pattern scans miss).
pub(super) fn upscale2(image: &GrayImage) -> Option<GrayImage> {
    let (width, height) = (image.width().checked_mul(2)?, image.height().checked_mul(2)?);
    let mut out = Vec::with_capacity(width as usize * height as usize);
    for row in image.as_raw().chunks_exact(image.width().max(1) as usize) {
        let doubled: Vec<u8> = row.iter().flat_map(|&p| [p, p]).collect();
        out.extend_from_slice(&doubled);
        out.extend_from_slice(&doubled);
    }
    GrayImage::from_raw(width, height, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_12_megapixel_photo_is_read_at_a_third_and_a_small_one_as_it_is() {
        assert_eq!(working_factor(&GrayImage::new(4000, 3000)), 3);
        assert_eq!(working_factor(&GrayImage::new(1200, 1000)), 1);
        assert_eq!(working_factor(&GrayImage::new(2000, 1500)), 2);
    }

    #[test]
    fn downscaling_averages_blocks_and_drops_the_partial_edge() {
        let image = GrayImage::from_fn(5, 4, |x, y| image::Luma([if (x + y) % 2 == 0 { 0 } else { 200 }]));
        let small = downscale(&image, 2).unwrap();
        assert_eq!(small.dimensions(), (2, 2));
        assert!(small.pixels().all(|p| p.0[0] == 100), "{small:?}");
        assert!(downscale(&image, 5).is_none());
        let big = upscale2(&small).unwrap();
        assert_eq!(big.dimensions(), (4, 4));
    }
}
