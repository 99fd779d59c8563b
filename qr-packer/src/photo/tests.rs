//! Labels made here with the crate's own renderer, photographed in code:
//! turned, in perspective, compressed, in a scene, or absent.

use image::{GrayImage, Luma};

use super::*;
use super::homography::{invert, square_to_quad};
use crate::label::{Ec, Label};
use crate::text::PREFIX;

/// A payload the size of a reference app's (about 500 characters, QR
/// version 14 at M).
fn payload() -> String {
    format!("{PREFIX}{}", "6BFOXN*TS0BI$ZD.P9UPMS%".repeat(21))
}

fn label(text: &str, scale: u32) -> GrayImage {
    let png = Label::new(text, Ec::M).unwrap().png(scale).unwrap();
    image::load_from_memory(&png).unwrap().to_luma8()
}

/// A deterministic cluttered background: stripes, blocks and noise.
fn scene(width: u32, height: u32) -> GrayImage {
    GrayImage::from_fn(width, height, |x, y| {
        let block = ((x / 37) * 7 + (y / 23) * 13) % 5;
        let noise = (x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503)) >> 27;
        Luma([(60 + block * 30 + noise) as u8])
    })
}

/// `code` drawn onto `background` with its corners at `quad`, bilinear.
fn place(code: &GrayImage, background: &mut GrayImage, quad: [(f64, f64); 4]) {
    let back = invert(square_to_quad(quad));
    let (w, h) = (f64::from(code.width()), f64::from(code.height()));
    for (x, y, pixel) in background.enumerate_pixels_mut() {
        let (px, py) = (f64::from(x) + 0.5, f64::from(y) + 0.5);
        let z = back[2][0] * px + back[2][1] * py + back[2][2];
        let u = (back[0][0] * px + back[0][1] * py + back[0][2]) / z;
        let v = (back[1][0] * px + back[1][1] * py + back[1][2]) / z;
        if !(0.0..1.0).contains(&u) || !(0.0..1.0).contains(&v) {
            continue;
        }
        let (sx, sy) = ((u * w - 0.5).clamp(0.0, w - 1.0), (v * h - 0.5).clamp(0.0, h - 1.0));
        let (x0, y0) = (sx.floor() as u32, sy.floor() as u32);
        let (x1, y1) = ((x0 + 1).min(code.width() - 1), (y0 + 1).min(code.height() - 1));
        let (fx, fy) = (sx.fract(), sy.fract());
        let at = |x, y| f64::from(code.get_pixel(x, y).0[0]);
        let top = at(x0, y0) * (1.0 - fx) + at(x1, y0) * fx;
        let bottom = at(x0, y1) * (1.0 - fx) + at(x1, y1) * fx;
        pixel.0[0] = (top * (1.0 - fy) + bottom * fy).round() as u8;
    }
}

/// The corners of a `side`-pixel square centred at (`cx`, `cy`), turned by
/// `degrees`.
fn turned(cx: f64, cy: f64, side: f64, degrees: f64) -> [(f64, f64); 4] {
    let (s, c) = degrees.to_radians().sin_cos();
    [(-1.0, -1.0), (1.0, -1.0), (1.0, 1.0), (-1.0, 1.0)].map(|(x, y)| {
        let (x, y) = (x * side / 2.0, y * side / 2.0);
        (cx + x * c - y * s, cy + x * s + y * c)
    })
}

fn png(image: &GrayImage) -> Vec<u8> {
    let mut out = Vec::new();
    image.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png).unwrap();
    out
}

fn jpeg(image: &GrayImage, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality).encode_image(image).unwrap();
    out
}

#[test]
fn a_clean_label_is_read() {
    let text = payload();
    assert_eq!(read_label_image(&png(&label(&text, 4))).unwrap(), text);
}

#[test]
fn a_label_turned_30_degrees_on_a_box_is_read() {
    let text = payload();
    let code = label(&text, 4);
    let mut photo = scene(700, 600);
    place(&code, &mut photo, turned(350.0, 300.0, 400.0, 30.0));
    assert_eq!(read_label_image(&png(&photo)).unwrap(), text);
}

#[test]
fn a_label_in_perspective_is_read() {
    // Seen from the side: the right edge 30 % shorter than the left.
    let text = payload();
    let code = label(&text, 4);
    let mut photo = scene(700, 600);
    place(&code, &mut photo, [(120.0, 90.0), (560.0, 150.0), (560.0, 450.0), (120.0, 510.0)]);
    assert_eq!(read_label_image(&png(&photo)).unwrap(), text);
}

#[test]
fn a_clean_jpeg_at_quality_90_is_read() {
    let text = payload();
    let code = label(&text, 5);
    let mut photo = GrayImage::from_pixel(code.width() + 100, code.height() + 80, Luma([200]));
    image::imageops::overlay(&mut photo, &code, 60, 30);
    assert_eq!(read_label_image(&jpeg(&photo, 90)).unwrap(), text);
}

#[test]
fn two_labels_in_one_jpeg_give_a_label_payload() {
    // The photo rqrr alone failed on ("Version information corrupt").
    let (first, second) = (payload(), format!("{PREFIX}{}", "Z9Y8X7W6V5".repeat(45)));
    let (a, b) = (label(&first, 4), label(&second, 4));
    let mut photo = GrayImage::from_pixel(a.width() + b.width() + 60, a.height().max(b.height()) + 40, Luma([230]));
    image::imageops::overlay(&mut photo, &a, 20, 20);
    image::imageops::overlay(&mut photo, &b, i64::from(a.width()) + 40, 20);
    let read = read_label_image(&jpeg(&photo, 90)).unwrap();
    assert!(read == first || read == second, "{read:.40}");
}

#[test]
fn a_small_label_in_a_large_scene_is_read_at_full_size() {
    // 2 pixels a module in a 3-megapixel scene: the working copy (half the
    // width) has 1 pixel a module, too few; the full photo has enough.
    let text = payload();
    let code = label(&text, 2);
    let mut photo = scene(2000, 1500);
    let side = f64::from(code.width());
    place(&code, &mut photo, turned(1300.0, 500.0, side, 0.0));
    let mut tried = Vec::new();
    assert_eq!(read_label_luma_traced(&photo, &mut |name| tried.push(name)).unwrap(), text);
    assert!(tried.last().unwrap().contains("full"), "{tried:?}");
}

#[test]
fn a_photo_without_a_qr_code_says_so() {
    assert_eq!(read_label_image(&png(&scene(640, 480))), Err(PayloadError::NoQrCodeInImage));
    assert_eq!(read_label_image(&jpeg(&scene(640, 480), 80)), Err(PayloadError::NoQrCodeInImage));
}

#[test]
fn a_qr_code_that_is_not_a_label_is_returned_for_the_caller_to_refuse() {
    // Every attempt looks for a label first; the other code's text comes
    // back so that the caller can say it is not an enrollment label.
    assert_eq!(read_label_image(&png(&label("https://example.com/manual", 4))).unwrap(), "https://example.com/manual");
}

#[test]
fn a_jpeg_declaring_more_pixels_than_the_limit_is_refused_before_decoding() {
    let mut bytes = jpeg(&scene(16, 16), 80);
    // Patch the frame header (SOF0: FF C0, length, precision, height, width)
    // to declare 60000 x 60000 pixels.
    let sof = bytes.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
    bytes[sof + 5..sof + 9].copy_from_slice(&[0xEA, 0x60, 0xEA, 0x60]);
    let Err(PayloadError::BadImage(why)) = read_label_image(&bytes) else { panic!("not refused") };
    assert!(why.contains("60000 x 60000") && why.contains("smaller photo"), "{why}");
}

#[test]
fn bytes_that_are_no_image_are_a_bad_image() {
    assert!(matches!(read_label_image(b"not an image"), Err(PayloadError::BadImage(_))));
    assert!(matches!(read_label_image(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 1]), Err(PayloadError::BadImage(_))));
}

#[test]
fn a_dim_grey_print_is_read_against_its_local_mean() {
    // Printed grey on grey: 40 grey levels between dark and light modules
    // with sensor noise, which ZXing's block threshold breaks up.
    let text = payload();
    let code = label(&text, 1);
    let dim = GrayImage::from_fn(code.width(), code.height(), |x, y| Luma([if code.get_pixel(x, y).0[0] < 128 { 120 } else { 160 }]));
    let mut photo = scene(900, 700);
    place(&dim, &mut photo, turned(450.0, 350.0, f64::from(code.width()) * 3.5, 3.0));
    for (i, p) in photo.pixels_mut().enumerate() {
        let noise = ((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 61) as u8; // 0..7
        p.0[0] = p.0[0].saturating_add(noise).saturating_sub(4);
    }
    let mut tried = Vec::new();
    assert_eq!(read_label_luma_traced(&photo, &mut |name| tried.push(name)).unwrap(), text);
    assert!(tried.last().unwrap().contains("local mean"), "{tried:?}");
}
