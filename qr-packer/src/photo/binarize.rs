//! A global threshold (Otsu's) for the decoder that thresholds locally on its
//! own.
//!
//! `rqrr` thresholds every pixel against a moving average of its row, which
//! breaks up a code under a blur or a JPEG's blocking; ZXing's readers then
//! try one threshold for the whole image. `rxing` brings its own binarizers
//! (ZXing's `HybridBinarizer`, local, and `GlobalHistogramBinarizer`), so this
//! module is only for `rqrr`: the image is thresholded here at Otsu's level
//! and handed over black and white, which `rqrr`'s own step leaves as it is.

use image::GrayImage;

/// Otsu's threshold of `image`: the grey level that best splits its
/// histogram into two classes (maximal between-class variance).
pub(super) fn otsu_level(image: &GrayImage) -> u8 {
    let mut histogram = [0u64; 256];
    for &p in image.as_raw() {
        histogram[usize::from(p)] += 1;
    }
    let total: u64 = histogram.iter().sum();
    let weighted_total: f64 = histogram.iter().enumerate().map(|(level, &n)| level as f64 * n as f64).sum();
    let (mut below, mut weighted_below) = (0u64, 0f64);
    let (mut best, mut best_variance) = (128u8, -1f64);
    for (level, &n) in histogram.iter().enumerate() {
        below += n;
        weighted_below += level as f64 * n as f64;
        let above = total - below;
        if below == 0 || above == 0 {
            continue;
        }
        let mean_below = weighted_below / below as f64;
        let mean_above = (weighted_total - weighted_below) / above as f64;
        let variance = below as f64 * above as f64 * (mean_below - mean_above).powi(2);
        if variance > best_variance {
            best_variance = variance;
            best = level as u8;
        }
    }
    best
}

/// `image` in black (0) and white (255), split at Otsu's level.
pub(super) fn otsu(image: &GrayImage) -> GrayImage {
    let level = otsu_level(image);
    let mut out = image.clone();
    out.iter_mut().for_each(|p| *p = if *p <= level { 0 } else { 255 });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn otsus_level_splits_a_dim_two_tone_image_between_its_tones() {
        // A low-contrast label: "black" 90, "white" 140, mostly white.
        let image = GrayImage::from_fn(40, 10, |x, _| image::Luma([if x < 12 { 90 } else { 140 }]));
        let level = otsu_level(&image);
        assert!((90..140).contains(&level), "{level}");
        let split = otsu(&image);
        assert_eq!(split.get_pixel(0, 0).0[0], 0);
        assert_eq!(split.get_pixel(39, 9).0[0], 255);
    }
}
