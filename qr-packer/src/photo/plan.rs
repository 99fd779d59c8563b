//! The reader's fixed list of attempts, cheapest first, and how their
//! results add up to one answer.
//!
//! Each attempt is one decoder on one view of the photo. The views are made
//! when an attempt first needs them and kept for the next: the photo reduced
//! to at most [`WORKING_PIXELS`](super::scale::WORKING_PIXELS) (the photo
//! itself when it is that small), half that again (a large or blurred code),
//! the working view in black and white at Otsu's level, against its local
//! mean (a dim or grey print), by ZXing's block threshold (for `rqrr`, in
//! strong perspective) and contrast-stretched, then the full photo (a small
//! code in a large scene; skipped when it is the working view) and, for a
//! small image, the image at twice its size (modules of 2 pixels). Views
//! that do not apply to an image are skipped, so no attempt runs twice on
//! the same pixels. The order comes from `examples/distortions.rs`: what
//! reads most of its photos soonest comes first (BENCHMARKS.md, "Reading
//! label photos").
//! The list is a constant: a photo costs at most [`PLAN`]`.len()` decoder
//! runs, whatever it shows.

use image::GrayImage;

use super::binarize;
use super::decode::{self, Found, Threshold};
use super::scale;
use crate::error::PayloadError;
use crate::text::PREFIX;

/// The pixels one attempt decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum View {
    /// The photo reduced to at most `WORKING_PIXELS`.
    Working,
    /// The working view at half its width and height (when that leaves
    /// [`MIN_HALF_SIDE`] pixels a side).
    Half,
    /// The working view in black and white at Otsu's level.
    WorkingOtsu,
    /// The working view in black and white against its local mean.
    WorkingMean,
    /// The working view in black and white by ZXing's block threshold.
    WorkingHybrid,
    /// The working view with its contrast stretched locally.
    WorkingStretched,
    /// The photo as taken (only when the working view is smaller).
    Full,
    /// The photo at twice its width and height (only when it has at most
    /// [`MAX_DOUBLED_PIXELS`]).
    Doubled,
}

/// The decoder of one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decoder {
    Rqrr,
    /// `rxing` with a threshold; `true` scans every row for finder patterns.
    Rxing(Threshold, bool),
    /// The classic ZXing reader (Java port), local threshold, every row.
    RxingClassic,
}

/// One decoder on one view.
#[derive(Debug, Clone, Copy)]
pub(super) struct Attempt {
    pub name: &'static str,
    view: View,
    decoder: Decoder,
}

/// The half view's shortest side must keep this many pixels (a version 14
/// label, 81 modules with its quiet zone, at 3 pixels a module).
const MIN_HALF_SIDE: u32 = 240;

/// An image is doubled only up to this size (3 megapixels doubled).
const MAX_DOUBLED_PIXELS: u64 = 750_000;

/// Every attempt, in order: cheapest and most likely first.
pub(super) const PLAN: [Attempt; 15] = [
    Attempt { name: "rxing local, working", view: View::Working, decoder: Decoder::Rxing(Threshold::Local, false) },
    Attempt { name: "rqrr, working", view: View::Working, decoder: Decoder::Rqrr },
    Attempt { name: "rxing local, half", view: View::Half, decoder: Decoder::Rxing(Threshold::Local, false) },
    Attempt { name: "rxing global, working", view: View::Working, decoder: Decoder::Rxing(Threshold::Global, false) },
    Attempt { name: "rqrr, working otsu", view: View::WorkingOtsu, decoder: Decoder::Rqrr },
    Attempt { name: "rxing, working local mean", view: View::WorkingMean, decoder: Decoder::Rxing(Threshold::Global, false) },
    Attempt { name: "rqrr, working local mean", view: View::WorkingMean, decoder: Decoder::Rqrr },
    Attempt { name: "rxing local, working stretched", view: View::WorkingStretched, decoder: Decoder::Rxing(Threshold::Local, false) },
    Attempt { name: "rqrr, working stretched", view: View::WorkingStretched, decoder: Decoder::Rqrr },
    Attempt { name: "rqrr, working zxing threshold", view: View::WorkingHybrid, decoder: Decoder::Rqrr },
    Attempt { name: "rxing classic, working, every row", view: View::Working, decoder: Decoder::RxingClassic },
    Attempt { name: "rxing local closed, working, every row", view: View::Working, decoder: Decoder::Rxing(Threshold::LocalClosed, true) },
    Attempt { name: "rxing local, full, every row", view: View::Full, decoder: Decoder::Rxing(Threshold::Local, true) },
    Attempt { name: "rqrr, full", view: View::Full, decoder: Decoder::Rqrr },
    Attempt { name: "rxing local, doubled, every row", view: View::Doubled, decoder: Decoder::Rxing(Threshold::Local, true) },
];

/// The first label payload any attempt reads in `image`; else the text of
/// another QR code; else why a code found could not be read; else
/// `NoQrCodeInImage`.
pub(super) fn read(image: &GrayImage, on_attempt: &mut dyn FnMut(&'static str)) -> Result<String, PayloadError> {
    let mut views = Views::new(image);
    let (mut other_text, mut unreadable) = (None, None);
    for attempt in &PLAN {
        let Some(pixels) = views.get(attempt.view) else { continue };
        on_attempt(attempt.name);
        let found: Found = match attempt.decoder {
            Decoder::Rqrr => decode::rqrr(pixels),
            Decoder::Rxing(threshold, every_row) => decode::rxing(pixels, threshold, every_row),
            Decoder::RxingClassic => decode::rxing_classic(pixels),
        };
        let mut texts = found.texts.into_iter();
        for text in texts.by_ref() {
            if text.starts_with(PREFIX) {
                return Ok(text);
            }
            other_text.get_or_insert(text);
        }
        unreadable = found.unreadable.or(unreadable);
    }
    match (other_text, unreadable) {
        (Some(text), _) => Ok(text),
        (None, Some(why)) => Err(PayloadError::UnreadableQrCode(why)),
        (None, None) => Err(PayloadError::NoQrCodeInImage),
    }
}

/// The views of one photo, each made once, when first needed.
struct Views<'a> {
    full: &'a GrayImage,
    factor: u32,
    working: Option<GrayImage>,
    half: Option<Option<GrayImage>>,
    otsu: Option<GrayImage>,
    stretched: Option<GrayImage>,
    mean: Option<GrayImage>,
    hybrid: Option<GrayImage>,
    doubled: Option<Option<GrayImage>>,
}

impl<'a> Views<'a> {
    fn new(full: &'a GrayImage) -> Self {
        Views { full, factor: scale::working_factor(full), working: None, half: None, otsu: None, stretched: None, mean: None, hybrid: None, doubled: None }
    }

    /// The pixels of `view`, or `None` where it does not apply.
    fn get(&mut self, view: View) -> Option<&GrayImage> {
        match view {
            View::Working => Some(self.working()),
            View::Full => (self.factor > 1).then_some(self.full),
            View::Half => {
                if self.half.is_none() {
                    let working = self.working();
                    let half = (working.width().min(working.height()) / 2 >= MIN_HALF_SIDE)
                        .then(|| scale::downscale(working, 2))
                        .flatten();
                    self.half = Some(half);
                }
                self.half.as_ref().and_then(Option::as_ref)
            }
            View::WorkingOtsu => {
                if self.otsu.is_none() {
                    self.otsu = Some(binarize::otsu(self.working()));
                }
                self.otsu.as_ref()
            }
            View::WorkingMean => {
                if self.mean.is_none() {
                    self.mean = Some(binarize::local_mean(self.working()));
                }
                self.mean.as_ref()
            }
            View::WorkingHybrid => {
                if self.hybrid.is_none() {
                    self.hybrid = Some(decode::hybrid_black_white(self.working()));
                }
                self.hybrid.as_ref()
            }
            View::WorkingStretched => {
                if self.stretched.is_none() {
                    self.stretched = Some(binarize::stretch(self.working()));
                }
                self.stretched.as_ref()
            }
            View::Doubled => {
                let full = self.full;
                let small = u64::from(full.width()) * u64::from(full.height()) <= MAX_DOUBLED_PIXELS;
                self.doubled.get_or_insert_with(|| small.then(|| scale::upscale2(full)).flatten()).as_ref()
            }
        }
    }

    fn working(&mut self) -> &GrayImage {
        if self.factor == 1 {
            return self.full;
        }
        let (full, factor) = (self.full, self.factor);
        self.working.get_or_insert_with(|| scale::downscale(full, factor).unwrap_or_else(|| full.clone()))
    }
}
