//! Labels for printing: the QR code at a physical size, with what a person
//! needs to read on it, as PNG, SVG and PDF, and sheets of them for a label
//! printer.
//!
//! A printed label is the QR code with its 4-module quiet zone, `size_mm`
//! wide, and under it three lines of text: the product, the device id (or
//! "any device" for an unbound label) and the manufacturer key id, so an
//! installer can tell labels apart and a support desk can tell which key
//! signed one. PNGs carry their resolution (a `pHYs` chunk), so they print
//! at their size; SVG and PDF are vector and say their size in millimetres.
//!
//! A module smaller than [`MIN_MODULE_MM`] is refused: a phone camera at arm's
//! length (about 40 cm: some 0.14 mm of label per pixel of a 12-MP photo)
//! needs two to three pixels a module to read a code reliably. Below
//! [`ADVISED_MODULE_MM`] the label is made, with a warning.

use crate::label::Label;

/// Smallest module printed: below it a phone must come closer than ~25 cm.
pub const MIN_MODULE_MM: f64 = 0.25;

/// Module size a phone camera reads reliably at arm's length (~40 cm).
pub const ADVISED_MODULE_MM: f64 = 0.4;

/// Fewest printer dots a module may have in a PNG: with one, a dot's
/// spread on paper changes the pattern.
pub const MIN_DOTS_PER_MODULE: u32 = 2;

/// The quiet zone around the code, in modules (ISO/IEC 18004).
pub const QUIET_ZONE: usize = 4;

/// Physical size of a printed label.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PrintSpec {
    /// Width of the QR code with its quiet zone, in millimetres; `None`:
    /// the smallest whole millimetre at which modules are [`ADVISED_MODULE_MM`].
    pub size_mm: Option<f64>,
    /// Printer resolution for the PNG, in dots per inch.
    pub dpi: u32,
}

impl Default for PrintSpec {
    fn default() -> Self {
        Self { size_mm: None, dpi: 300 }
    }
}

/// The human-readable lines under the code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caption {
    pub product: String,
    /// The device id; `None` for a label packed `--unbound`.
    pub device_id: Option<String>,
    /// The manufacturer key id that signed the payload.
    pub key_id: String,
}

impl Caption {
    fn lines(&self) -> [String; 3] {
        [
            self.product.clone(),
            self.device_id.clone().unwrap_or_else(|| "any device".into()),
            format!("key {}", self.key_id),
        ]
    }
}

/// Why a label cannot be printed at the size asked for.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PrintError {
    #[error(
        "at {size_mm} mm a module of this version-{version} code is {module_mm:.2} mm, below the smallest printed ({MIN_MODULE_MM} mm; phones read {ADVISED_MODULE_MM} mm at arm's length): give --size-mm {advised} or more"
    )]
    ModuleTooSmall { size_mm: f64, version: i16, module_mm: f64, advised: u32 },
    #[error(
        "at {dpi} dpi a {size_mm} mm label gives a module {dots} printer dot(s), fewer than {MIN_DOTS_PER_MODULE}: give a higher --dpi or a larger --size-mm"
    )]
    TooFewDots { size_mm: f64, dpi: u32, dots: u32 },
    #[error("--size-mm must be between 5 and 500, not {0}")]
    BadSize(f64),
    #[error("--dpi must be between 72 and 2400, not {0}")]
    BadDpi(u32),
    #[error("PNG encoding failed: {0}")]
    Png(String),
}

/// A label laid out for printing.
pub struct Printed<'a> {
    label: &'a Label,
    caption: Caption,
    /// Width of the code with its quiet zone.
    size_mm: f64,
    dpi: u32,
    /// Printer dots per module in the PNG.
    dots: u32,
    /// Set when the module is below [`ADVISED_MODULE_MM`].
    warning: Option<String>,
}

impl<'a> Printed<'a> {
    /// Lays out `label` at `spec`, or says why it would not read.
    pub fn new(label: &'a Label, caption: Caption, spec: PrintSpec) -> Result<Self, PrintError> {
        let modules = label.width() + 2 * QUIET_ZONE;
        let advised_mm = (modules as f64 * ADVISED_MODULE_MM).ceil();
        let size_mm = spec.size_mm.unwrap_or(advised_mm);
        if !(5.0..=500.0).contains(&size_mm) {
            return Err(PrintError::BadSize(size_mm));
        }
        if !(72..=2400).contains(&spec.dpi) {
            return Err(PrintError::BadDpi(spec.dpi));
        }
        let module_mm = size_mm / modules as f64;
        if module_mm < MIN_MODULE_MM {
            return Err(PrintError::ModuleTooSmall {
                size_mm,
                version: label.version(),
                module_mm,
                advised: advised_mm as u32,
            });
        }
        // Whole dots a module, the nearest to the size asked for: the PNG
        // comes out within half a dot a module of `size_mm`.
        let dots = (size_mm / 25.4 * spec.dpi as f64 / modules as f64).round() as u32;
        if dots < MIN_DOTS_PER_MODULE {
            return Err(PrintError::TooFewDots { size_mm, dpi: spec.dpi, dots });
        }
        let warning = (module_mm < ADVISED_MODULE_MM).then(|| {
            format!(
                "a module is {module_mm:.2} mm, below the {ADVISED_MODULE_MM} mm phones read reliably at arm's length; \
                 {advised_mm} mm or more is advised"
            )
        });
        Ok(Self { label, caption, size_mm, dpi: spec.dpi, dots, warning })
    }

    /// Why the label may be hard to read, if it may.
    pub fn warning(&self) -> Option<&str> {
        self.warning.as_deref()
    }

    /// Width of the code with its quiet zone, in millimetres.
    pub fn size_mm(&self) -> f64 {
        self.size_mm
    }

    /// Width of the PNG's code with its quiet zone when printed at its
    /// resolution, in millimetres (whole dots a module).
    pub fn png_size_mm(&self) -> f64 {
        (self.modules() as u32 * self.dots) as f64 * 25.4 / self.dpi as f64
    }

    /// Module size in millimetres (vector formats).
    pub fn module_mm(&self) -> f64 {
        self.size_mm / self.modules() as f64
    }

    fn modules(&self) -> usize {
        self.label.width() + 2 * QUIET_ZONE
    }

    /// Height of one caption line, in millimetres.
    fn line_mm(&self) -> f64 {
        (self.size_mm * 0.07).clamp(2.0, 5.0)
    }

    /// Height of the whole label (code and caption), in millimetres.
    pub fn height_mm(&self) -> f64 {
        self.size_mm + 3.0 * self.line_mm() + self.line_mm() * 0.5
    }

    /// Runs of dark modules, `(x, y, length)` in modules with the quiet
    /// zone, row by row: one rectangle a run keeps SVG and PDF small.
    fn runs(&self) -> Vec<(usize, usize, usize)> {
        let width = self.label.width();
        let dark = self.label.dark();
        let mut runs = Vec::new();
        for (y, row) in dark.chunks(width).enumerate() {
            let mut x = 0;
            while x < width {
                if row[x] {
                    let start = x;
                    while x < width && row[x] {
                        x += 1;
                    }
                    runs.push((start + QUIET_ZONE, y + QUIET_ZONE, x - start));
                } else {
                    x += 1;
                }
            }
        }
        runs
    }

    /// A grayscale PNG at the label's dpi, with its resolution recorded.
    pub fn png(&self) -> Result<Vec<u8>, PrintError> {
        use image::ImageEncoder;
        use image::codecs::png::{CompressionType, FilterType, PngEncoder};
        let dots = self.dots as usize;
        let width = self.modules() * dots;
        let dots_per_mm = self.dpi as f64 / 25.4;
        let line = (self.line_mm() * dots_per_mm).round() as usize;
        let height = width + 3 * line + line / 2;
        let mut pixels = vec![255u8; width * height];
        for (x, y, n) in self.runs() {
            for row in y * dots..(y + 1) * dots {
                pixels[row * width + x * dots..row * width + (x + n) * dots].fill(0);
            }
        }
        for (i, text) in self.caption.lines().iter().enumerate() {
            draw_text(&mut pixels, width, text, width + i * line, line);
        }
        let mut png = Vec::new();
        PngEncoder::new_with_quality(&mut png, CompressionType::Default, FilterType::Sub)
            .write_image(&pixels, width as u32, height as u32, image::ExtendedColorType::L8)
            .map_err(|e| PrintError::Png(e.to_string()))?;
        Ok(with_resolution(png, self.dpi))
    }

    /// An SVG sized in millimetres.
    pub fn svg(&self) -> String {
        let (w, h) = (self.size_mm, self.height_mm());
        let m = self.module_mm();
        let mut path = String::new();
        for (x, y, n) in self.runs() {
            path.push_str(&format!("M{x} {y}h{n}v1h-{n}z"));
        }
        let line = self.line_mm();
        let mut text = String::new();
        for (i, t) in self.caption.lines().iter().enumerate() {
            let y = self.size_mm + line * (i as f64 + 0.8);
            text.push_str(&format!(
                r#"<text x="{:.3}" y="{y:.3}" font-family="DejaVu Sans Mono, Courier New, monospace" font-size="{:.3}" text-anchor="middle">{}</text>"#,
                w / 2.0,
                line * 0.8,
                xml_escape(&fit_chars(t, w, line * 0.8))
            ));
        }
        format!(
            r##"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{w:.3}mm" height="{h:.3}mm" viewBox="0 0 {w:.3} {h:.3}">
<rect width="100%" height="100%" fill="#fff"/>
<path transform="scale({m:.6})" fill="#000" shape-rendering="crispEdges" d="{path}"/>
{text}
</svg>
"##
        )
    }

    /// A one-page PDF the size of the label.
    pub fn pdf(&self) -> Vec<u8> {
        let (w, h) = (self.size_mm, self.height_mm());
        let mut content = String::new();
        self.draw_pdf(&mut content, 0.0, 0.0, h);
        pdf::document(&[(mm_to_pt(w), mm_to_pt(h), content)])
    }

    /// Draws the label into a PDF content stream with its top-left corner
    /// at (`x_mm`, `y_mm`) from the top-left of a page `page_h_mm` high.
    fn draw_pdf(&self, out: &mut String, x_mm: f64, y_mm: f64, page_h_mm: f64) {
        let m = self.module_mm();
        // PDF's origin is bottom-left; y grows upwards.
        let top = page_h_mm - y_mm;
        out.push_str("0 g\n");
        for (x, y, n) in self.runs() {
            let (px, py) = (x_mm + x as f64 * m, top - (y + 1) as f64 * m);
            let (w, h) = (mm_to_pt(n as f64 * m), mm_to_pt(m));
            out.push_str(&format!("{:.3} {:.3} {w:.3} {h:.3} re\n", mm_to_pt(px), mm_to_pt(py)));
        }
        out.push_str("f\n");
        let line = self.line_mm();
        let size_pt = mm_to_pt(line * 0.8);
        for (i, t) in self.caption.lines().iter().enumerate() {
            let t = fit_chars(t, self.size_mm, line * 0.8);
            // Courier: every glyph is 0.6 em wide.
            let text_w = mm_to_pt(t.chars().count() as f64 * 0.6 * line * 0.8);
            let x = mm_to_pt(x_mm + self.size_mm / 2.0) - text_w / 2.0;
            let y = mm_to_pt(top - self.size_mm - line * (i as f64 + 0.8));
            out.push_str(&format!("BT /F1 {size_pt:.2} Tf {x:.3} {y:.3} Td ({}) Tj ET\n", pdf::escape(&t)));
        }
    }
}

/// A sheet of labels for a label printer or an office printer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sheet {
    pub width_mm: f64,
    pub height_mm: f64,
    pub margin_mm: f64,
    pub gap_mm: f64,
}

impl Sheet {
    /// An A4 page, 10 mm margins, 4 mm between labels.
    pub const A4: Sheet = Sheet { width_mm: 210.0, height_mm: 297.0, margin_mm: 10.0, gap_mm: 4.0 };
}

/// Labels laid out on as many pages of `sheet` as they need, in order,
/// left to right and top to bottom; each label keeps its size. `None` if
/// a label is larger than the printable part of the sheet.
pub fn sheet_pdf(labels: &[Printed<'_>], sheet: Sheet) -> Option<Vec<u8>> {
    let (usable_w, usable_h) = (sheet.width_mm - 2.0 * sheet.margin_mm, sheet.height_mm - 2.0 * sheet.margin_mm);
    let mut pages: Vec<(f64, f64, String)> = Vec::new();
    let (mut x, mut y, mut row_h) = (0.0f64, 0.0f64, 0.0f64);
    let mut content = String::new();
    for label in labels {
        let (w, h) = (label.size_mm(), label.height_mm());
        if w > usable_w || h > usable_h {
            return None;
        }
        if x > 0.0 && x + w > usable_w {
            x = 0.0;
            y += row_h + sheet.gap_mm;
            row_h = 0.0;
        }
        if y > 0.0 && y + h > usable_h {
            pages.push((mm_to_pt(sheet.width_mm), mm_to_pt(sheet.height_mm), std::mem::take(&mut content)));
            (x, y, row_h) = (0.0, 0.0, 0.0);
        }
        label.draw_pdf(&mut content, sheet.margin_mm + x, sheet.margin_mm + y, sheet.height_mm);
        x += w + sheet.gap_mm;
        row_h = row_h.max(h);
    }
    if !content.is_empty() || pages.is_empty() {
        pages.push((mm_to_pt(sheet.width_mm), mm_to_pt(sheet.height_mm), content));
    }
    Some(pdf::document(&pages))
}

fn mm_to_pt(mm: f64) -> f64 {
    mm * 72.0 / 25.4
}

/// `text` cut to the characters a monospace line of `width_mm` holds at
/// `font_mm` (0.6 em a character), printable ASCII only.
fn fit_chars(text: &str, width_mm: f64, font_mm: f64) -> String {
    cut_to(text, ((width_mm / (0.6 * font_mm)).floor() as usize).max(1))
}

/// `text` in at most `max` printable ASCII characters, `~` marking a cut.
fn cut_to(text: &str, max: usize) -> String {
    let ascii: String = text.chars().map(|c| if (' '..='~').contains(&c) { c } else { '?' }).collect();
    if ascii.chars().count() <= max {
        ascii
    } else {
        let mut cut: String = ascii.chars().take(max.saturating_sub(1)).collect();
        cut.push('~');
        cut
    }
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Draws `text` centred in the line band starting at pixel row `top`,
/// `line` pixels high, with the 8x8 bitmap font scaled to fit.
fn draw_text(pixels: &mut [u8], width: usize, text: &str, top: usize, line: usize) {
    let scale = ((line * 8 / 10) / 8).max(1);
    let max_chars = (width / (8 * scale)).max(1);
    let text = cut_to(text, max_chars);
    let text_w = text.chars().count() * 8 * scale;
    let left = width.saturating_sub(text_w) / 2;
    let height = pixels.len() / width;
    for (i, c) in text.chars().enumerate() {
        let glyph = font8x8::legacy::BASIC_LEGACY[(c as usize) & 0x7F];
        for (gy, bits) in glyph.iter().enumerate() {
            for gx in 0..8 {
                if bits >> gx & 1 == 1 {
                    for dy in 0..scale {
                        let y = top + (line - 8 * scale) / 2 + gy * scale + dy;
                        let x0 = left + (i * 8 + gx) * scale;
                        if y < height && x0 + scale <= width {
                            pixels[y * width + x0..y * width + x0 + scale].fill(0);
                        }
                    }
                }
            }
        }
    }
}

/// Inserts a `pHYs` chunk (dots per metre) after a PNG's IHDR.
fn with_resolution(png: Vec<u8>, dpi: u32) -> Vec<u8> {
    // Signature (8) + IHDR chunk (4 length + 4 type + 13 data + 4 CRC).
    const AFTER_IHDR: usize = 8 + 25;
    let per_metre = (dpi as f64 / 0.0254).round() as u32;
    let mut chunk = Vec::with_capacity(21);
    chunk.extend_from_slice(&9u32.to_be_bytes());
    chunk.extend_from_slice(b"pHYs");
    chunk.extend_from_slice(&per_metre.to_be_bytes());
    chunk.extend_from_slice(&per_metre.to_be_bytes());
    chunk.push(1);
    let crc = crc32fast::hash(&chunk[4..]);
    chunk.extend_from_slice(&crc.to_be_bytes());
    let mut out = png;
    out.splice(AFTER_IHDR..AFTER_IHDR, chunk);
    out
}

/// The smallest PDF writer that will do: pages of rectangles and Courier
/// text (a standard font, so nothing is embedded).
mod pdf {
    /// A PDF with one page per `(width_pt, height_pt, content stream)`.
    pub fn document(pages: &[(f64, f64, String)]) -> Vec<u8> {
        // Objects: 1 catalog, 2 page tree, 3 font, then per page: page, content.
        let mut objects: Vec<String> = vec![
            "<< /Type /Catalog /Pages 2 0 R >>".into(),
            String::new(),
            "<< /Type /Font /Subtype /Type1 /BaseFont /Courier >>".into(),
        ];
        let mut kids = Vec::new();
        for (i, (w, h, content)) in pages.iter().enumerate() {
            let page = 4 + 2 * i;
            kids.push(format!("{page} 0 R"));
            objects.push(format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {w:.3} {h:.3}] /Resources << /Font << /F1 3 0 R >> >> /Contents {} 0 R >>",
                page + 1
            ));
            objects.push(format!("<< /Length {} >>\nstream\n{content}endstream", content.len()));
        }
        objects[1] = format!("<< /Type /Pages /Kids [{}] /Count {} >>", kids.join(" "), pages.len());
        let mut out = b"%PDF-1.4\n%\xE2\xE3\xCF\xD3\n".to_vec();
        let mut offsets = Vec::with_capacity(objects.len());
        for (i, object) in objects.iter().enumerate() {
            offsets.push(out.len());
            out.extend_from_slice(format!("{} 0 obj\n{object}\nendobj\n", i + 1).as_bytes());
        }
        let xref = out.len();
        out.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
        for offset in offsets {
            out.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
        }
        out.extend_from_slice(
            format!("trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1).as_bytes(),
        );
        out
    }

    /// Text for a PDF string literal.
    pub fn escape(text: &str) -> String {
        text.replace('\\', "\\\\").replace('(', "\\(").replace(')', "\\)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::label::Ec;

    fn caption() -> Caption {
        Caption { product: "Smart meter (Wi-Fi)".into(), device_id: Some("AC-DE-48-00-00-80".into()), key_id: "acme-1".into() }
    }

    fn text() -> String {
        format!("{}{}", crate::text::PREFIX, "QR0123456789 $%*+-./:".repeat(25))
    }

    #[test]
    fn the_default_size_gives_advised_modules_and_the_png_reads_back_at_its_resolution() {
        let label = Label::new(&text(), Ec::M).unwrap();
        let printed = Printed::new(&label, caption(), PrintSpec::default()).unwrap();
        assert!(printed.module_mm() >= ADVISED_MODULE_MM, "{}", printed.module_mm());
        assert_eq!(printed.warning(), None);
        let png = printed.png().unwrap();
        // pHYs: 300 dpi = 11811 dots per metre.
        let at = png.windows(4).position(|w| w == b"pHYs").expect("a pHYs chunk");
        assert_eq!(&png[at + 4..at + 8], &11811u32.to_be_bytes());
        let decoded = image::load_from_memory(&png).expect("a valid PNG after the chunk went in");
        assert!(decoded.height() > decoded.width(), "the caption is under the code");
        #[cfg(feature = "photo")]
        assert_eq!(crate::read_label_image(&png).unwrap(), text());
    }

    #[test]
    fn too_small_is_refused_and_small_is_warned_about() {
        let label = Label::new(&text(), Ec::M).unwrap();
        let modules = (label.width() + 8) as f64;
        let tiny = PrintSpec { size_mm: Some(modules * 0.2), dpi: 600 };
        assert!(matches!(Printed::new(&label, caption(), tiny), Err(PrintError::ModuleTooSmall { .. })));
        let small = PrintSpec { size_mm: Some(modules * 0.3), dpi: 600 };
        assert!(Printed::new(&label, caption(), small).unwrap().warning().unwrap().contains("below the 0.4 mm"));
        let coarse = PrintSpec { size_mm: Some(modules * 0.26), dpi: 120 };
        assert!(matches!(Printed::new(&label, caption(), coarse), Err(PrintError::TooFewDots { dots: 1, .. })));
    }

    #[test]
    fn svg_and_pdf_say_their_size_and_carry_the_caption() {
        let label = Label::new(&text(), Ec::M).unwrap();
        let printed = Printed::new(&label, caption(), PrintSpec { size_mm: Some(40.0), dpi: 300 }).unwrap();
        let svg = printed.svg();
        assert!(svg.contains(r#"width="40.000mm""#) && svg.contains("AC-DE-48-00-00-80") && svg.contains("key acme-1"), "{svg}");
        let pdf = printed.pdf();
        let text = String::from_utf8_lossy(&pdf);
        assert!(text.starts_with("%PDF-1.4") && text.ends_with("%%EOF\n"));
        assert!(text.contains("(AC-DE-48-00-00-80) Tj") && text.contains("(Smart meter \\(Wi-Fi\\)) Tj"), "{text}");
        // Every xref offset points at its object.
        let xref = text.rfind("xref\n").unwrap();
        for (i, line) in text[xref..].lines().skip(3).take_while(|l| l.ends_with(" n ")).enumerate() {
            let offset: usize = line[..10].parse().unwrap();
            assert!(text[offset..].starts_with(&format!("{} 0 obj", i + 1)), "object {}", i + 1);
        }
    }

    #[test]
    fn a_sheet_holds_labels_in_rows_and_pages() {
        let label = Label::new(&text(), Ec::M).unwrap();
        let spec = PrintSpec { size_mm: Some(50.0), dpi: 300 };
        let labels: Vec<Printed<'_>> = (0..20).map(|_| Printed::new(&label, caption(), spec).unwrap()).collect();
        let pdf = String::from_utf8_lossy(&sheet_pdf(&labels, Sheet::A4).unwrap()).into_owned();
        // 190 mm usable: 3 labels a row; 277 mm: 4 rows of ~62 mm: 12 a page.
        assert!(pdf.contains("/Count 2"), "two pages for 20 labels");
        assert_eq!(pdf.matches("(AC-DE-48-00-00-80) Tj").count(), 20);
        let huge = Printed::new(&label, caption(), PrintSpec { size_mm: Some(300.0), dpi: 300 }).unwrap();
        assert!(sheet_pdf(&[huge], Sheet::A4).is_none());
    }

    #[test]
    fn captions_are_cut_to_fit_and_kept_ascii() {
        assert_eq!(fit_chars("Zähler", 100.0, 2.0), "Z?hler");
        assert_eq!(fit_chars("ABCDEFGHIJ", 6.0, 2.0), "ABCD~");
    }
}
