//! A global threshold (Otsu's) for the decoder that thresholds locally on its
//! own, and a local contrast stretch for dim, shadowed or grey prints.
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

/// Half the side of the square [`local_mean`] averages over: 20 pixels,
/// a 41-pixel window (ZXing's block binarizer looks at 40).
const MEAN_RADIUS: usize = 20;

/// How far below the local mean (in grey levels) a pixel must be to be
/// black: above the noise of a 3 x 3 average, below a dim print's contrast.
const MEAN_OFFSET: u32 = 3;

/// `image` in black (0) and white (255): a pixel (averaged with its 8
/// neighbours, against sensor noise) is black when it is darker than the
/// mean of the 41 x 41 pixels around it by [`MEAN_OFFSET`]. Unlike ZXing's
/// block binarizer it has no minimum contrast, so a print of 20 to 40 grey
/// levels (dim light, a shadow, grey ink) is split like a black one.
pub(super) fn local_mean(image: &GrayImage) -> GrayImage {
    let (width, height) = (image.width() as usize, image.height() as usize);
    let pixels = image.as_raw();
    // Summed-area table, one row and column of zeros in front.
    let stride = width + 1;
    let mut sums = vec![0u32; stride * (height + 1)];
    for y in 0..height {
        let mut row = 0u32;
        for x in 0..width {
            row += u32::from(pixels[y * width + x]);
            sums[(y + 1) * stride + x + 1] = sums[y * stride + x + 1] + row;
        }
    }
    let area = |x0: usize, y0: usize, x1: usize, y1: usize| {
        // Sum over [x0, x1) x [y0, y1).
        sums[y1 * stride + x1] + sums[y0 * stride + x0] - sums[y0 * stride + x1] - sums[y1 * stride + x0]
    };
    let mut out = image.clone();
    for (y, row) in out.chunks_exact_mut(width.max(1)).enumerate() {
        let (my0, my1) = (y.saturating_sub(MEAN_RADIUS), (y + MEAN_RADIUS + 1).min(height));
        let (ny0, ny1) = (y.saturating_sub(1), (y + 2).min(height));
        for (x, p) in row.iter_mut().enumerate() {
            let (mx0, mx1) = (x.saturating_sub(MEAN_RADIUS), (x + MEAN_RADIUS + 1).min(width));
            let (nx0, nx1) = (x.saturating_sub(1), (x + 2).min(width));
            let mean_area = ((mx1 - mx0) * (my1 - my0)) as u32;
            let near_area = ((nx1 - nx0) * (ny1 - ny0)) as u32;
            // near / near_area + offset < mean / mean_area, in integers.
            let near = u64::from(area(nx0, ny0, nx1, ny1)) * u64::from(mean_area);
            let mean = u64::from(area(mx0, my0, mx1, my1)) * u64::from(near_area);
            let offset = u64::from(MEAN_OFFSET) * u64::from(mean_area) * u64::from(near_area);
            *p = if near + offset < mean { 0 } else { 255 };
        }
    }
    out
}

/// The side of the blocks [`stretch`] measures the local light in, pixels.
const BLOCK: usize = 16;

/// How many blocks around a pixel's own, each way, [`stretch`] takes its
/// darkest and lightest grey from (a 5 x 5 block window, 80 pixels).
const REACH: usize = 2;

/// `image` with its contrast stretched locally: each pixel is mapped from
/// the darkest..lightest grey of the 5 x 5 blocks around it to 0..255. A
/// label in dim light, under a shadow or printed grey spans 30 grey levels
/// and less, which block binarizers take for a flat surface (ZXing's needs
/// 24 levels in a block); stretched, it spans the whole range.
pub(super) fn stretch(image: &GrayImage) -> GrayImage {
    let (width, height) = (image.width() as usize, image.height() as usize);
    let (bw, bh) = (width.div_ceil(BLOCK), height.div_ceil(BLOCK));
    let (mut low, mut high) = (vec![255u8; bw * bh], vec![0u8; bw * bh]);
    for (y, row) in image.as_raw().chunks_exact(width.max(1)).enumerate() {
        for (x, &p) in row.iter().enumerate() {
            let b = (y / BLOCK) * bw + x / BLOCK;
            low[b] = low[b].min(p);
            high[b] = high[b].max(p);
        }
    }
    let window = |values: &[u8], pick: fn(u8, u8) -> u8| {
        // Separable: along rows, then along columns.
        let mut rows = values.to_vec();
        for by in 0..bh {
            for bx in 0..bw {
                let (from, to) = (bx.saturating_sub(REACH), (bx + REACH).min(bw - 1));
                rows[by * bw + bx] = values[by * bw + from..=by * bw + to].iter().copied().fold(values[by * bw + bx], pick);
            }
        }
        let mut out = rows.clone();
        for by in 0..bh {
            for bx in 0..bw {
                let (from, to) = (by.saturating_sub(REACH), (by + REACH).min(bh - 1));
                out[by * bw + bx] = (from..=to).map(|y| rows[y * bw + bx]).fold(rows[by * bw + bx], pick);
            }
        }
        out
    };
    let (low, high) = (window(&low, u8::min), window(&high, u8::max));
    let mut out = image.clone();
    for (y, row) in out.chunks_exact_mut(width.max(1)).enumerate() {
        for (x, p) in row.iter_mut().enumerate() {
            let b = (y / BLOCK) * bw + x / BLOCK;
            let (lo, range) = (u32::from(low[b]), u32::from(high[b].saturating_sub(low[b])).max(12));
            *p = ((u32::from(*p).saturating_sub(lo) * 255) / range).min(255) as u8;
        }
    }
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

    #[test]
    fn stretching_spreads_a_dim_label_over_the_whole_grey_range() {
        // Modules of 4 pixels, "black" 120 and "white" 150, beside a bright box.
        let image = GrayImage::from_fn(200, 100, |x, y| {
            image::Luma([if x >= 160 { 250 } else if (x / 4 + y / 4) % 2 == 0 { 120 } else { 150 }])
        });
        let stretched = stretch(&image);
        assert_eq!(stretched.get_pixel(0, 0).0[0], 0);
        assert_eq!(stretched.get_pixel(4, 0).0[0], 255);
    }
}
