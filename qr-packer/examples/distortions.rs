//! The label-photo benchmark of issue 14: photos of the reference apps'
//! labels, made here with a fixed seed (the same set every run), read by
//! this crate's reader.
//!
//! `cargo run --release -p qr-packer --example distortions -- OUT_DIR`
//!
//! Writes every image to `OUT_DIR` with `index.tsv` (file, kind, what was
//! done, the text it holds), reads each with `read_label_image` and writes
//! `ours.tsv` (file, whether it read the label, the attempt that did,
//! milliseconds), then times a 12-megapixel JPEG photo (a label in a
//! 4000 x 3000 cluttered scene) 15 times, with and without the JPEG decoding,
//! and prints the medians. `scripts/bench-readers` runs zxing-cpp and zbar on
//! the same images and prints the comparison.
//!
//! The distortions: rotation up to 45 degrees, perspective (one edge up to
//! 35 % shorter), Gaussian blur, JPEG at quality 30 with sensor noise, low
//! contrast, shadow gradients, modules of 2 to 3 pixels, a small label in a
//! large scene, and combinations of them.

use std::error::Error;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use image::{GrayImage, Rgb, RgbImage};

// The geometry the photo tests draw with, shared rather than copied.
#[path = "../src/photo/homography.rs"]
mod homography;
use homography::{invert, square_to_quad};
use qr_packer::{Dictionary, Ec, Halves, Label, ManufacturerKey, PreparedApp};

/// A small fixed-seed generator (SplitMix64): the same images on every run
/// and every machine, whatever `rand`'s version.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [lo, hi).
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: u32) -> u32 {
        (self.next() % u64::from(n)) as u32
    }
    /// Roughly normal, mean 0, deviation 1 (sum of 4 uniforms).
    fn gauss(&mut self) -> f64 {
        ((0..4).map(|_| self.range(0.0, 1.0)).sum::<f64>() - 2.0) * 3f64.sqrt()
    }
}

/// The signed label texts of the four reference apps, bound to a device.
fn payloads() -> Result<Vec<String>, Box<dyn Error>> {
    let key = ManufacturerKey::from_secret("acme-1", [1; 32])?;
    let mut texts = Vec::new();
    for (app, device) in enrollment_apps::ALL.iter().zip(["AC-DE-48-00-00-80", "00-0D-6F-FF-FE-12-34-56", "AC-DE-48-00-00-90", "AC-DE-48-00-00-A0"]) {
        let halves = Halves { phone: app.phone.to_vec(), device: app.device.to_vec(), operational: None };
        let prepared = PreparedApp::prepare(halves, &Dictionary::current())?;
        let mut manifest = qr_packer::manifest::reference(app)?;
        manifest.device_id = Some(device.into());
        texts.push(prepared.seal(&manifest, &key)?.to_text());
    }
    Ok(texts)
}

/// How one photo is made.
#[derive(Clone, Debug)]
struct Shot {
    kind: &'static str,
    scene: (u32, u32),
    /// Pixels per module in the photo (at the label's centre).
    module: f64,
    degrees: f64,
    /// How much shorter the far edge is (perspective), 0 to 0.35.
    skew: f64,
    /// Gaussian blur, in modules.
    blur: f64,
    /// Dark and light of the print after the light (low contrast).
    contrast: Option<(f64, f64)>,
    /// Light falling off to this fraction across the label.
    shadow: Option<f64>,
    /// Sensor noise, grey levels (one deviation).
    noise: f64,
    jpeg: Option<u8>,
}

impl Shot {
    fn new(kind: &'static str) -> Shot {
        Shot {
            kind,
            scene: (1200, 900),
            module: 4.0,
            degrees: 0.0,
            skew: 0.0,
            blur: 0.0,
            contrast: None,
            shadow: None,
            noise: 2.0,
            jpeg: None,
        }
    }
    fn detail(&self) -> String {
        let mut d = format!("{}x{} {:.1}px/module", self.scene.0, self.scene.1, self.module);
        if self.degrees != 0.0 {
            let _ = write!(d, " rot {:.0}deg", self.degrees);
        }
        if self.skew > 0.0 {
            let _ = write!(d, " skew {:.0}%", self.skew * 100.0);
        }
        if self.blur > 0.0 {
            let _ = write!(d, " blur {:.2}mod", self.blur);
        }
        if let Some((lo, hi)) = self.contrast {
            let _ = write!(d, " contrast {lo:.0}-{hi:.0}");
        }
        if let Some(s) = self.shadow {
            let _ = write!(d, " shadow to {:.0}%", s * 100.0);
        }
        if let Some(q) = self.jpeg {
            let _ = write!(d, " jpeg q{q}");
        }
        d
    }
}

/// The fixed list of shots: ten kinds, seven each, drawn from one seed.
fn shots(rng: &mut Rng) -> Vec<Shot> {
    let mut shots = Vec::new();
    for module in [3.0, 4.0, 5.0, 6.0, 8.0, 3.5, 4.5] {
        shots.push(Shot { module, ..Shot::new("clean") });
    }
    for degrees in [8.0, 15.0, 22.0, 30.0, 37.0, 42.0, 45.0] {
        shots.push(Shot { degrees, module: rng.range(3.5, 5.0), ..Shot::new("rotation") });
    }
    for skew in [0.10, 0.15, 0.20, 0.25, 0.30, 0.35, 0.35] {
        shots.push(Shot { skew, degrees: rng.range(-10.0, 10.0), module: rng.range(4.0, 5.0), ..Shot::new("perspective") });
    }
    for blur in [0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85] {
        shots.push(Shot { blur, module: rng.range(4.0, 6.0), ..Shot::new("blur") });
    }
    for _ in 0..7 {
        shots.push(Shot { jpeg: Some(30), noise: 8.0, module: rng.range(3.0, 5.0), ..Shot::new("jpeg q30 + noise") });
    }
    for (lo, hi) in [(100.0, 150.0), (120.0, 160.0), (90.0, 130.0), (140.0, 175.0), (60.0, 95.0), (110.0, 140.0), (160.0, 190.0)] {
        shots.push(Shot { contrast: Some((lo, hi)), noise: 3.0, module: rng.range(4.0, 5.0), ..Shot::new("low contrast") });
    }
    for shadow in [0.5, 0.4, 0.3, 0.25, 0.2, 0.15, 0.35] {
        shots.push(Shot { shadow: Some(shadow), degrees: rng.range(-5.0, 5.0), module: rng.range(4.0, 5.0), ..Shot::new("shadow") });
    }
    for module in [2.0, 2.2, 2.4, 2.6, 2.8, 3.0, 2.1] {
        shots.push(Shot { module, degrees: rng.range(-4.0, 4.0), ..Shot::new("small modules") });
    }
    for module in [2.5, 2.8, 3.0, 3.3, 3.6, 4.0, 2.7] {
        shots.push(Shot { scene: (2400, 1800), module, degrees: rng.range(-20.0, 20.0), jpeg: Some(85), ..Shot::new("small label, large scene") });
    }
    for _ in 0..7 {
        shots.push(Shot {
            degrees: rng.range(-45.0, 45.0),
            skew: rng.range(0.1, 0.3),
            blur: rng.range(0.2, 0.45),
            shadow: Some(rng.range(0.35, 0.7)),
            contrast: (rng.below(2) == 0).then(|| (rng.range(40.0, 80.0), rng.range(150.0, 200.0))),
            noise: 5.0,
            jpeg: Some(rng.range(30.0, 60.0) as u8),
            module: rng.range(3.5, 5.5),
            ..Shot::new("combined")
        });
    }
    for _ in 0..2 {
        shots.push(Shot { scene: (4000, 3000), module: rng.range(9.0, 13.0), degrees: rng.range(-15.0, 15.0), skew: rng.range(0.0, 0.15), blur: 0.1, noise: 4.0, jpeg: Some(90), ..Shot::new("12 MP photo") });
    }
    shots
}

/// A cluttered colour scene: a floor gradient, boxes, printed-text stripes,
/// a barcode-like block.
fn scene(rng: &mut Rng, (width, height): (u32, u32)) -> RgbImage {
    let base = [rng.range(90.0, 170.0), rng.range(80.0, 160.0), rng.range(70.0, 150.0)];
    let mut img = RgbImage::from_fn(width, height, |x, y| {
        let t = f64::from(x + y) / f64::from(width + height);
        Rgb(base.map(|c| (c * (0.7 + 0.5 * t)).clamp(0.0, 255.0) as u8))
    });
    let area = f64::from(width) * f64::from(height);
    let boxes = (area / 40_000.0) as u32 + 6;
    for _ in 0..boxes {
        let (w, h) = (rng.range(20.0, f64::from(width) / 4.0) as u32, rng.range(20.0, f64::from(height) / 4.0) as u32);
        let (x0, y0) = (rng.below(width), rng.below(height));
        let colour = [rng.range(0.0, 255.0) as u8, rng.range(0.0, 255.0) as u8, rng.range(0.0, 255.0) as u8];
        let striped = rng.below(3) == 0;
        let period = rng.range(3.0, 12.0) as u32 + 1;
        for y in y0..(y0 + h).min(height) {
            for x in x0..(x0 + w).min(width) {
                if striped && ((y - y0) / period).is_multiple_of(2) && !((x - x0) / (period / 2 + 1)).is_multiple_of(3) {
                    img.put_pixel(x, y, Rgb([20, 20, 20]));
                } else {
                    img.put_pixel(x, y, Rgb(colour));
                }
            }
        }
    }
    img
}
/// The label's corners in the scene: a square of `side` pixels at the
/// centre, one edge shortened by `skew` (and foreshortened), turned.
fn corners(center: (f64, f64), side: f64, skew: f64, degrees: f64) -> [(f64, f64); 4] {
    let (s, c) = degrees.to_radians().sin_cos();
    let near = [(-1.0, -1.0), (1.0, -1.0), (1.0, 1.0), (-1.0, 1.0)];
    near.map(|(x, y): (f64, f64)| {
        // The right edge is the far one.
        let (x, y) = if x > 0.0 { (x * (1.0 - skew / 2.0), y * (1.0 - skew)) } else { (x, y) };
        let (x, y) = (x * side / 2.0, y * side / 2.0);
        (center.0 + x * c - y * s, center.1 + x * s + y * c)
    })
}

/// Draws `code` (grey, 1 = white) into `img` at `quad`, 3 x 3 supersampled;
/// `light(u, v)` scales the label's brightness (shadow), `ink` maps print
/// grey to the light the camera sees.
fn place(code: &GrayImage, img: &mut RgbImage, quad: [(f64, f64); 4], light: &dyn Fn(f64, f64) -> f64, ink: (f64, f64)) {
    let back = invert(square_to_quad(quad));
    let (cw, ch) = (f64::from(code.width()), f64::from(code.height()));
    let xs = quad.iter().map(|p| p.0);
    let ys = quad.iter().map(|p| p.1);
    let (x0, x1) = (xs.clone().fold(f64::MAX, f64::min).max(0.0) as u32, xs.fold(0f64, f64::max).min(f64::from(img.width() - 1)) as u32);
    let (y0, y1) = (ys.clone().fold(f64::MAX, f64::min).max(0.0) as u32, ys.fold(0f64, f64::max).min(f64::from(img.height() - 1)) as u32);
    for y in y0..=y1 {
        for x in x0..=x1 {
            let (mut sum, mut n) = (0.0, 0);
            let (mut uc, mut vc) = (0.0, 0.0);
            for sy in 0..3 {
                for sx in 0..3 {
                    let (px, py) = (f64::from(x) + (f64::from(sx) + 0.5) / 3.0, f64::from(y) + (f64::from(sy) + 0.5) / 3.0);
                    let z = back[2][0] * px + back[2][1] * py + back[2][2];
                    let u = (back[0][0] * px + back[0][1] * py + back[0][2]) / z;
                    let v = (back[1][0] * px + back[1][1] * py + back[1][2]) / z;
                    if (0.0..1.0).contains(&u) && (0.0..1.0).contains(&v) {
                        let p = code.get_pixel(((u * cw) as u32).min(code.width() - 1), ((v * ch) as u32).min(code.height() - 1));
                        sum += f64::from(p.0[0]) / 255.0;
                        n += 1;
                        uc = u;
                        vc = v;
                    }
                }
            }
            if n == 0 {
                continue;
            }
            let cover = f64::from(n) / 9.0;
            let grey = (ink.0 + (ink.1 - ink.0) * sum / f64::from(n)) * light(uc, vc);
            let p = img.get_pixel_mut(x, y);
            for c in p.0.iter_mut() {
                *c = (f64::from(*c) * (1.0 - cover) + grey * cover).clamp(0.0, 255.0) as u8;
            }
        }
    }
}

/// Separable Gaussian blur of `sigma` pixels.
fn blur(img: &RgbImage, sigma: f64) -> RgbImage {
    let radius = (sigma * 3.0).ceil() as i64;
    let kernel: Vec<f64> = (-radius..=radius).map(|i| (-(i * i) as f64 / (2.0 * sigma * sigma)).exp()).collect();
    let total: f64 = kernel.iter().sum();
    let kernel: Vec<f64> = kernel.iter().map(|k| k / total).collect();
    let (w, h) = (i64::from(img.width()), i64::from(img.height()));
    let pass = |src: &RgbImage, dx: i64, dy: i64| {
        RgbImage::from_fn(src.width(), src.height(), |x, y| {
            let mut acc = [0.0; 3];
            for (k, weight) in kernel.iter().enumerate() {
                let o = k as i64 - radius;
                let sx = (i64::from(x) + o * dx).clamp(0, w - 1) as u32;
                let sy = (i64::from(y) + o * dy).clamp(0, h - 1) as u32;
                let p = src.get_pixel(sx, sy).0;
                for c in 0..3 {
                    acc[c] += weight * f64::from(p[c]);
                }
            }
            Rgb(acc.map(|v| v.round().clamp(0.0, 255.0) as u8))
        })
    };
    pass(&pass(img, 1, 0), 0, 1)
}

fn make(shot: &Shot, text: &str, rng: &mut Rng) -> Result<Vec<u8>, Box<dyn Error>> {
    let label = Label::new(text, Ec::M)?;
    let code = image::load_from_memory(&label.png(1)?)?.to_luma8();
    let side = f64::from(code.width()) * shot.module;
    let (sw, sh) = (f64::from(shot.scene.0), f64::from(shot.scene.1));
    let margin = side * 0.75;
    let center = (rng.range(margin.min(sw / 2.0), (sw - margin).max(sw / 2.0)), rng.range(margin.min(sh / 2.0), (sh - margin).max(sh / 2.0)));
    let mut img = scene(rng, shot.scene);
    let quad = corners(center, side, shot.skew, shot.degrees);
    let angle = rng.range(0.0, std::f64::consts::TAU);
    let (dx, dy) = (angle.cos(), angle.sin());
    let light = |u: f64, v: f64| match shot.shadow {
        // Falls off linearly across the label, in a random direction.
        Some(low) => {
            let t = (((u - 0.5) * dx + (v - 0.5) * dy) / std::f64::consts::SQRT_2 + 0.5).clamp(0.0, 1.0);
            1.0 - (1.0 - low) * t
        }
        None => 1.0,
    };
    let ink = shot.contrast.unwrap_or((25.0, 235.0));
    place(&code, &mut img, quad, &light, ink);
    if shot.blur > 0.0 {
        img = blur(&img, shot.blur * shot.module);
    }
    if shot.noise > 0.0 {
        for p in img.pixels_mut() {
            let n = rng.gauss() * shot.noise;
            for c in p.0.iter_mut() {
                *c = (f64::from(*c) + n).clamp(0.0, 255.0) as u8;
            }
        }
    }
    let mut out = Vec::new();
    match shot.jpeg {
        Some(q) => image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, q).encode_image(&img)?,
        None => img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)?,
    }
    Ok(out)
}

/// The reader before issue 14, for comparison: `rqrr` once on the grey
/// image, the first code that decodes.
fn before_this_reader(luma: &GrayImage) -> Option<String> {
    let (w, h) = (luma.width() as usize, luma.height() as usize);
    let pixels = luma.as_raw();
    let mut prepared = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| pixels[y * w + x]);
    prepared.detect_grids().iter().find_map(|grid| grid.decode().ok().map(|(_, text)| text))
}

fn median_ms(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn main() -> Result<(), Box<dyn Error>> {
    let out: PathBuf = std::env::args_os().nth(1).map(PathBuf::from).ok_or("usage: distortions OUT_DIR")?;
    std::fs::create_dir_all(&out)?;
    let texts = payloads()?;
    // Another seed (`DISTORTIONS_SEED=7`) gives another set of the same kinds:
    // a check that the reader is not fitted to the default one.
    let seed = match std::env::var("DISTORTIONS_SEED") {
        Ok(seed) => seed.parse::<u64>().map_err(|e| format!("DISTORTIONS_SEED {seed:?}: {e}"))?,
        Err(_) => 0x1414_2026,
    };
    let mut rng = Rng(seed);
    let shots = shots(&mut rng);
    let mut index = String::from("file\tkind\tdetail\ttext\n");
    let mut ours = String::from("file\tread\tattempt\tms\tms per step\tbefore\n");
    let mut files = Vec::new();
    for (i, shot) in shots.iter().enumerate() {
        let text = &texts[i % texts.len()];
        let bytes = make(shot, text, &mut rng)?;
        let name = format!("{i:03}-{}.{}", shot.kind.replace([' ', ',', '+'], "-").replace("--", "-"), if shot.jpeg.is_some() { "jpg" } else { "png" });
        std::fs::write(out.join(&name), &bytes)?;
        let _ = writeln!(index, "{name}\t{}\t{}\t{text}", shot.kind, shot.detail());
        files.push((name, shot.kind, text.clone()));
    }
    std::fs::write(out.join("index.tsv"), &index)?;
    let mut read = 0;
    for (name, _, text) in &files {
        let bytes = std::fs::read(out.join(name))?;
        let started = Instant::now();
        let luma = image::load_from_memory(&bytes)?.to_luma8();
        let decoded = Instant::now();
        let mut attempts: Vec<(&str, Instant)> = Vec::new();
        let result = qr_packer::read_label_luma_traced(&luma, &mut |name| attempts.push((name, Instant::now())));
        let ms = started.elapsed().as_secs_f64() * 1e3;
        let last = attempts.last().map_or("", |(name, _)| name);
        // Milliseconds per attempt: until the next one started, the last until the end.
        let mut ends: Vec<Instant> = attempts.iter().skip(1).map(|(_, at)| *at).collect();
        ends.push(Instant::now());
        let mut spent = format!("decode {:.0}", (decoded - started).as_secs_f64() * 1e3);
        for ((name, at), end) in attempts.iter().zip(ends) {
            let _ = write!(spent, "; {name} {:.0}", (end - *at).as_secs_f64() * 1e3);
        }
        let ok = result.as_deref() == Ok(text.as_str());
        read += usize::from(ok);
        let before = u8::from(before_this_reader(&luma).as_deref() == Some(text.as_str()));
        let _ = writeln!(ours, "{name}\t{}\t{}\t{ms:.1}\t{spent}\t{before}", u8::from(ok), if ok { last } else { "-" });
    }
    std::fs::write(out.join("ours.tsv"), &ours)?;
    eprintln!("ours: {read} of {} read; images and index.tsv in {}", files.len(), out.display());
    time_12mp(&out, &files)?;
    time_no_label(&mut rng)?;
    Ok(())
}

/// Median of 5 reads of a 12-megapixel JPEG scene without a label: every
/// attempt of the plan runs, the reader's worst case.
fn time_no_label(rng: &mut Rng) -> Result<(), Box<dyn Error>> {
    let img = scene(rng, (4000, 3000));
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 90).encode_image(&img)?;
    let mut samples = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let read = qr_packer::read_label_image(&bytes);
        samples.push(started.elapsed().as_secs_f64() * 1e3);
        if read != Err(qr_packer::PayloadError::NoQrCodeInImage) {
            return Err(format!("a scene without a label read as {read:?}").into());
        }
    }
    println!("12-MP scene without a label (every attempt runs): {:.0} ms median from the JPEG bytes", median_ms(samples));
    Ok(())
}

/// Medians of 15 reads of the first 12-megapixel photo: from the JPEG bytes
/// (decoding included) and from its decoded grey pixels.
fn time_12mp(dir: &Path, files: &[(String, &str, String)]) -> Result<(), Box<dyn Error>> {
    let Some((name, _, text)) = files.iter().find(|(_, kind, _)| *kind == "12 MP photo") else { return Ok(()) };
    let bytes = std::fs::read(dir.join(name))?;
    let luma = image::load_from_memory(&bytes)?.to_luma8();
    let (mut with_decode, mut without) = (Vec::new(), Vec::new());
    for _ in 0..15 {
        let started = Instant::now();
        let read = qr_packer::read_label_image(&bytes)?;
        with_decode.push(started.elapsed().as_secs_f64() * 1e3);
        let started = Instant::now();
        let read_luma = qr_packer::read_label_luma(&luma)?;
        without.push(started.elapsed().as_secs_f64() * 1e3);
        if read != *text || read_luma != *text {
            return Err(format!("{name}: the 12-MP photo read another text").into());
        }
    }
    println!(
        "12-MP photo {name} ({} x {}, {} KB JPEG): {:.1} ms median from the JPEG bytes (decoding included), {:.1} ms from decoded grey pixels",
        luma.width(),
        luma.height(),
        bytes.len() / 1024,
        median_ms(with_decode),
        median_ms(without)
    );
    Ok(())
}
