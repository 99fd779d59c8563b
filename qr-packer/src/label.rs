//! The printed label: the payload text as a QR code (PNG, SVG or terminal),
//! and reading it back from a photo.
//!
//! The text is all QR alphanumeric characters, so the encoder puts it in
//! alphanumeric mode; the smallest version that holds it at the chosen
//! error-correction level is used (M by default: 15% of the code can be
//! damaged or dirty). Reading uses `rqrr` on the image's luma channel.

use qrcode::{EcLevel, QrCode};


/// Error-correction levels, as printed in size reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Ec {
    L,
    M,
    Q,
    H,
}

impl Ec {
    fn level(self) -> EcLevel {
        match self {
            Ec::L => EcLevel::L,
            Ec::M => EcLevel::M,
            Ec::Q => EcLevel::Q,
            Ec::H => EcLevel::H,
        }
    }
}

impl std::str::FromStr for Ec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "L" | "l" => Ok(Ec::L),
            "M" | "m" => Ok(Ec::M),
            "Q" | "q" => Ok(Ec::Q),
            "H" | "h" => Ok(Ec::H),
            _ => Err(format!("error-correction level must be L, M, Q or H, not {s:?}")),
        }
    }
}

/// Why a label could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum LabelError {
    #[error("{chars} characters do not fit a QR code of version 40 at error correction {ec:?}")]
    TooLong { chars: usize, ec: Ec },
    #[error("PNG encoding failed: {0}")]
    Png(String),
}

/// A QR code for a payload text.
pub struct Label {
    code: QrCode,
    ec: Ec,
}

/// The most alphanumeric characters a QR code holds at each level (version 40).
pub fn max_chars(ec: Ec) -> usize {
    match ec {
        Ec::L => 4296,
        Ec::M => 3391,
        Ec::Q => 2420,
        Ec::H => 1852,
    }
}

impl Label {
    /// The smallest QR code holding `text` at error correction `ec`.
    pub fn new(text: &str, ec: Ec) -> Result<Self, LabelError> {
        let code = QrCode::with_error_correction_level(text.as_bytes(), ec.level())
            .map_err(|_| LabelError::TooLong { chars: text.len(), ec })?;
        Ok(Self { code, ec })
    }

    /// The QR version (1 to 40).
    pub fn version(&self) -> i16 {
        match self.code.version() {
            qrcode::Version::Normal(v) | qrcode::Version::Micro(v) => v,
        }
    }

    pub fn ec(&self) -> Ec {
        self.ec
    }

    /// Whether each module is dark, row by row, without the quiet zone.
    pub fn dark(&self) -> Vec<bool> {
        self.code.to_colors().iter().map(|c| *c == qrcode::Color::Dark).collect()
    }

    /// Modules per side, without the quiet zone.
    pub fn width(&self) -> usize {
        self.code.width()
    }

    /// A grayscale PNG: `scale` pixels per module, a 4-module quiet zone.
    pub fn png(&self, scale: u32) -> Result<Vec<u8>, LabelError> {
        use image::ImageEncoder;
        use image::codecs::png::{CompressionType, FilterType, PngEncoder};
        let scale = scale.max(1) as usize;
        let modules = self.code.width();
        let side = (modules + 8) * scale;
        let mut pixels = vec![255u8; side * side];
        for (i, color) in self.code.to_colors().iter().enumerate() {
            if *color == qrcode::Color::Dark {
                let (mx, my) = (i % modules + 4, i / modules + 4);
                for y in my * scale..(my + 1) * scale {
                    pixels[y * side + mx * scale..y * side + (mx + 1) * scale].fill(0);
                }
            }
        }
        let mut png = Vec::new();
        PngEncoder::new_with_quality(&mut png, CompressionType::Fast, FilterType::Sub)
            .write_image(&pixels, side as u32, side as u32, image::ExtendedColorType::L8)
            .map_err(|e| LabelError::Png(e.to_string()))?;
        Ok(png)
    }

    /// An SVG, `scale` user units per module.
    pub fn svg(&self, scale: u32) -> String {
        self.code
            .render::<qrcode::render::svg::Color<'_>>()
            .module_dimensions(scale.max(1), scale.max(1))
            .build()
    }

    /// Unicode half blocks, two modules per character cell, for a terminal.
    pub fn terminal(&self) -> String {
        self.code
            .render::<qrcode::render::unicode::Dense1x2>()
            .dark_color(qrcode::render::unicode::Dense1x2::Light)
            .light_color(qrcode::render::unicode::Dense1x2::Dark)
            .build()
    }
}

/// The QR version a text needs at error correction `ec`, without drawing
/// the code (no mask selection: microseconds instead of milliseconds).
pub fn version_for(text: &str, ec: Ec) -> Result<i16, LabelError> {
    let bits = qrcode::bits::encode_auto(text.as_bytes(), ec.level()).map_err(|_| LabelError::TooLong { chars: text.len(), ec })?;
    match bits.version() {
        qrcode::Version::Normal(v) | qrcode::Version::Micro(v) => Ok(v),
    }
}

/// A PNG label at error correction `ec`, `scale` pixels per module.
pub fn render_png(text: &str, ec: Ec, scale: u32) -> Result<Vec<u8>, LabelError> {
    Label::new(text, ec)?.png(scale)
}

/// An SVG label at error correction `ec`.
pub fn render_svg(text: &str, ec: Ec) -> Result<String, LabelError> {
    Ok(Label::new(text, ec)?.svg(4))
}

/// A terminal rendering at error correction `ec`.
pub fn render_terminal(text: &str, ec: Ec) -> Result<String, LabelError> {
    Ok(Label::new(text, ec)?.terminal())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::PayloadError;
    use crate::read_label_image;

    #[test]
    fn png_round_trips_through_the_reader() {
        let text = format!("{}{}", crate::text::PREFIX, "ABC123 $%*+-./:".repeat(40));
        let label = Label::new(&text, Ec::M).unwrap();
        assert!(label.version() >= 10, "{}", label.version());
        let png = label.png(3).unwrap();
        assert_eq!(read_label_image(&png).unwrap(), text);
    }

    #[test]
    fn a_jpeg_photo_with_noise_and_a_margin_is_read() {
        // A "photo": the label scaled up, set on a grey background off-centre,
        // with pixel noise, and saved as a lossy JPEG.
        let text = format!("{}{}", crate::text::PREFIX, "QR0123456789 $%*+-./:".repeat(30));
        let png = Label::new(&text, Ec::M).unwrap().png(4).unwrap();
        let code = image::load_from_memory(&png).unwrap().to_luma8();
        let (w, h) = code.dimensions();
        let mut photo = image::GrayImage::from_pixel(w + 90, h + 60, image::Luma([180]));
        image::imageops::overlay(&mut photo, &code, 55, 20);
        for (i, p) in photo.pixels_mut().enumerate() {
            let noise = ((i * 2_654_435_761) >> 13) % 41;
            p.0[0] = p.0[0].saturating_add(noise as u8).saturating_sub(20);
        }
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 70).encode_image(&photo).unwrap();
        assert_eq!(read_label_image(&jpeg).unwrap(), text);
    }

    #[test]
    fn versions_grow_with_the_text_and_970_chars_fit_version_20_at_m() {
        let fits = "A".repeat(970);
        assert_eq!(Label::new(&fits, Ec::M).unwrap().version(), 20);
        assert_eq!(Label::new(&"A".repeat(971), Ec::M).unwrap().version(), 21);
        assert!(matches!(Label::new(&"A".repeat(3392), Ec::M), Err(LabelError::TooLong { .. })));
        for n in [1, 100, 970, 971, 3391] {
            let text = "A".repeat(n);
            assert_eq!(version_for(&text, Ec::M).unwrap(), Label::new(&text, Ec::M).unwrap().version(), "{n}");
        }
    }

    #[test]
    fn images_without_codes_and_non_images_are_told_apart() {
        let blank = image::GrayImage::from_pixel(64, 64, image::Luma([255]));
        let mut png = Vec::new();
        blank.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
        assert_eq!(read_label_image(&png), Err(PayloadError::NoQrCodeInImage));
        assert!(matches!(read_label_image(b"not an image"), Err(PayloadError::BadImage(_))));
    }

    #[test]
    fn svg_and_terminal_render() {
        assert!(render_svg("EN1:ABC", Ec::M).unwrap().starts_with("<?xml"));
        assert!(render_terminal("EN1:ABC", Ec::M).unwrap().contains('█'));
    }
}
