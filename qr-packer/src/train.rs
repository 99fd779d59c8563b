//! A manufacturer's own dictionary, trained on the halves of its family of
//! products (`qr-packer train-dict --samples DIR`).
//!
//! The same raw-content approach as the shipped dictionary
//! ([`dictionary::train`]): the stripped phone halves, then the stripped
//! device halves, back to back. Every sample is measured **leave-one-out**,
//! compressed with a dictionary trained on the other samples only: a
//! dictionary measured on a sample it holds says nothing about the next
//! product.

use std::path::Path;

use crate::bundle::Halves;
use crate::dictionary::{self, Dictionary, TrainingApp};
use crate::error::PackError;
use crate::payload::strip_and_check;

/// One product of the family: its two halves, stripped and checked as `pack`
/// carries them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// `NAME` of `NAME-phone.wasm` and `NAME-device.wasm`.
    pub name: String,
    pub phone: Vec<u8>,
    pub device: Vec<u8>,
}

/// The samples of a directory, and the `*.wasm` files that are not.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    /// By name.
    pub samples: Vec<Sample>,
    /// File name and why it is not a sample (a core module, another name).
    pub skipped: Vec<(String, String)>,
}

/// Why a directory's samples could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{path}: {cause}")]
    Io { path: String, cause: std::io::Error },
    #[error("{file}: there is no {missing} to pair it with")]
    Unpaired { file: String, missing: String },
    #[error("sample {name}: {cause}")]
    Half { name: String, cause: PackError },
    #[error("{dir}: no component pairs NAME-phone.wasm + NAME-device.wasm")]
    NoSamples { dir: String },
}

const HALVES: [&str; 2] = ["-phone.wasm", "-device.wasm"];

/// Reads every component pair `NAME-phone.wasm` + `NAME-device.wasm` of
/// `dir` (the names `enrollment-apps` builds), stripped and checked as
/// [`crate::PreparedApp::prepare`] does. Core modules (`NAME-phone.core.wasm`)
/// and other `*.wasm` files are skipped and listed; a half without its
/// other half, or one `pack` would refuse, is an error.
pub fn samples_from_dir(dir: &Path) -> Result<Samples, TrainError> {
    let io = |path: &Path, cause| TrainError::Io { path: path.display().to_string(), cause };
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| io(dir, e))?
        .filter_map(|entry| entry.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|name| name.ends_with(".wasm"))
        .collect();
    files.sort();
    let mut out = Samples::default();
    let mut names = Vec::new();
    for file in &files {
        let bytes = std::fs::read(dir.join(file)).map_err(|e| io(&dir.join(file), e))?;
        let skip = if !wasmparser::Parser::is_component(&bytes) {
            Some("not a component (a core module, or not WebAssembly)")
        } else if !HALVES.iter().any(|suffix| file.strip_suffix(suffix).is_some_and(|n| !n.is_empty())) {
            Some("not named NAME-phone.wasm or NAME-device.wasm")
        } else {
            None
        };
        match skip {
            Some(why) => out.skipped.push((file.clone(), why.to_owned())),
            None => names.push(file.clone()),
        }
    }
    for file in &names {
        let Some(name) = file.strip_suffix(HALVES[0]) else {
            // A device half: read with its phone half, or unpaired.
            let name = file.strip_suffix(HALVES[1]).unwrap_or(file);
            if !names.contains(&format!("{name}{}", HALVES[0])) {
                return Err(TrainError::Unpaired { file: file.clone(), missing: format!("{name}{}", HALVES[0]) });
            }
            continue;
        };
        let device_file = format!("{name}{}", HALVES[1]);
        if !names.contains(&device_file) {
            return Err(TrainError::Unpaired { file: file.clone(), missing: device_file });
        }
        let read = |f: &str| std::fs::read(dir.join(f)).map_err(|e| io(&dir.join(f), e));
        let halves = Halves { phone: read(file)?, device: read(&device_file)?, operational: None };
        let stripped = strip_and_check(&halves).map_err(|cause| TrainError::Half { name: name.to_owned(), cause })?;
        out.samples.push(Sample { name: name.to_owned(), phone: stripped.phone, device: stripped.device });
    }
    if out.samples.is_empty() {
        return Err(TrainError::NoSamples { dir: dir.display().to_string() });
    }
    Ok(out)
}

/// The raw-content dictionary of `samples` (see [`dictionary::train`]).
pub fn train(samples: &[Sample]) -> Vec<u8> {
    let apps: Vec<TrainingApp<'_>> =
        samples.iter().map(|s| TrainingApp { name: &s.name, phone: &s.phone, device: &s.device }).collect();
    dictionary::train(&apps)
}

/// One sample's sizes, in bytes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Measured {
    pub name: String,
    /// The stripped halves with their trailer, as compressed.
    pub halves: usize,
    /// Compressed without a dictionary.
    pub no_dictionary: usize,
    /// Compressed with a dictionary trained on every other sample.
    pub leave_one_out: usize,
}

/// Every sample compressed without a dictionary and with a dictionary
/// trained on the others (never on itself).
pub fn leave_one_out(samples: &[Sample]) -> Result<Vec<Measured>, PackError> {
    let mut out = Vec::with_capacity(samples.len());
    for (i, sample) in samples.iter().enumerate() {
        let others: Vec<Sample> = samples.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, s)| s.clone()).collect();
        let dict = Dictionary::custom(*dictionary::MANUFACTURER_IDS.start(), "leave-one-out", train(&others));
        let halves = Halves { phone: sample.phone.clone(), device: sample.device.clone(), operational: None }.to_bytes()?;
        out.push(Measured {
            name: sample.name.clone(),
            halves: halves.len(),
            no_dictionary: dictionary::compress(&halves, &Dictionary::none())?.len(),
            leave_one_out: dictionary::compress(&halves, &dict)?.len(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use enrollment_apps::ALL;

    fn family_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for app in ALL {
            std::fs::write(dir.path().join(format!("{}-phone.wasm", app.name)), app.phone).unwrap();
            std::fs::write(dir.path().join(format!("{}-device.wasm", app.name)), app.device).unwrap();
            std::fs::write(dir.path().join(format!("{}-phone.core.wasm", app.name)), app.phone_core).unwrap();
        }
        std::fs::write(dir.path().join("notes.txt"), b"not wasm").unwrap();
        dir
    }

    #[test]
    fn a_family_directory_trains_what_the_reference_training_makes() {
        let dir = family_dir();
        let read = samples_from_dir(dir.path()).unwrap();
        let mut names: Vec<&str> = ALL.iter().map(|a| a.name).collect();
        names.sort();
        assert_eq!(read.samples.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), names);
        assert_eq!(read.skipped.len(), ALL.len(), "the core modules: {:?}", read.skipped);
        // The same bytes as the reference training, up to the apps' order.
        let mut reference: Vec<Sample> = ALL
            .iter()
            .map(|a| Sample {
                name: a.name.into(),
                phone: crate::strip::strip_custom_sections(a.phone).unwrap(),
                device: crate::strip::strip_custom_sections(a.device).unwrap(),
            })
            .collect();
        reference.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(read.samples, reference);
    }

    #[test]
    fn leave_one_out_never_measures_a_sample_with_itself() {
        let samples = samples_from_dir(family_dir().path()).unwrap().samples;
        let measured = leave_one_out(&samples).unwrap();
        for (m, sample) in measured.iter().zip(&samples) {
            let halves = Halves { phone: sample.phone.clone(), device: sample.device.clone(), operational: None };
            let with_itself = dictionary::compress(&halves.to_bytes().unwrap(), &Dictionary::custom(128, "all", train(&samples)));
            let with_itself = with_itself.unwrap().len();
            assert!(m.leave_one_out < m.no_dictionary, "{m:?}");
            assert!(with_itself < m.leave_one_out, "{}: {with_itself} with itself, {m:?}", m.name);
        }
        // One sample: its leave-one-out dictionary is empty.
        let one = leave_one_out(&samples[..1]).unwrap();
        assert_eq!(one[0].leave_one_out, one[0].no_dictionary);
    }

    #[test]
    fn unpaired_halves_and_refused_halves_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a-phone.wasm"), ALL[0].phone).unwrap();
        let err = samples_from_dir(dir.path()).unwrap_err();
        assert_eq!(err.to_string(), "a-phone.wasm: there is no a-device.wasm to pair it with");
        // Swapped worlds: pack would refuse them.
        std::fs::write(dir.path().join("a-phone.wasm"), ALL[0].device).unwrap();
        std::fs::write(dir.path().join("a-device.wasm"), ALL[0].phone).unwrap();
        assert!(matches!(samples_from_dir(dir.path()), Err(TrainError::Half { cause: PackError::ForbiddenImport { .. }, .. })));
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(samples_from_dir(empty.path()), Err(TrainError::NoSamples { .. })));
    }
}
