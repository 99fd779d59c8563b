//! Many devices of one product: a CSV of devices in, one payload (and label)
//! per device out, in parallel.
//!
//! The halves are compressed once ([`PreparedApp`]); each row only costs a
//! manifest encoding and a signature (and, with images, a QR encoding and a
//! PNG). A bad row is reported with its line number and does not stop the
//! others.

use std::collections::BTreeMap;

use rayon::prelude::*;

use crate::label::{Ec, Label, version_for};
use crate::manifest::Manifest;
use crate::payload::PreparedApp;
use crate::print::{Caption, PrintSpec, Printed};
use crate::report::{Parts, check_max_version};
use crate::sign::ManufacturerKey;

/// One device of the CSV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRow {
    /// The 1-based line of the CSV file it came from.
    pub line: usize,
    pub device_id: String,
    pub one_time_secret: Option<Vec<u8>>,
    pub params: BTreeMap<String, String>,
}

/// A row that could not be turned into a payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct RowError {
    pub line: usize,
    pub reason: String,
}

/// Reads a CSV with a header line: `device_id`, optionally
/// `one_time_secret` (hex), and any other columns, which become per-device
/// parameters.
pub fn parse_csv(text: &str) -> Result<Vec<Result<DeviceRow, RowError>>, RowError> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).trim(csv::Trim::All).from_reader(text.as_bytes());
    let header_err = |reason: String| RowError { line: 1, reason };
    let headers = reader.headers().map_err(|e| header_err(e.to_string()))?.clone();
    if headers.get(0) != Some("device_id") {
        return Err(header_err("the first column must be `device_id`".into()));
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        let row = match record {
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line() as usize);
                Err(RowError { line, reason: e.to_string() })
            }
            Ok(record) => {
                let line = record.position().map_or(0, |p| p.line() as usize);
                row_from(&headers, &record, line)
            }
        };
        rows.push(row);
    }
    Ok(rows)
}

fn row_from(headers: &csv::StringRecord, record: &csv::StringRecord, line: usize) -> Result<DeviceRow, RowError> {
    let err = |reason: String| RowError { line, reason };
    if record.len() != headers.len() {
        return Err(err(format!("{} fields, the header has {}", record.len(), headers.len())));
    }
    let mut row = DeviceRow { line, device_id: String::new(), one_time_secret: None, params: BTreeMap::new() };
    for (name, value) in headers.iter().zip(record.iter()) {
        match name {
            "device_id" => row.device_id = value.to_owned(),
            "one_time_secret" if value.is_empty() => {}
            "one_time_secret" => {
                row.one_time_secret = Some(hex::decode(value).map_err(|e| err(format!("one_time_secret: not hex: {e}")))?)
            }
            _ if value.is_empty() => {}
            _ => {
                row.params.insert(name.to_owned(), value.to_owned());
            }
        }
    }
    Ok(row)
}

/// What one row produced.
#[derive(Debug, Clone)]
pub struct DeviceOutput {
    pub line: usize,
    pub device_id: String,
    pub text: String,
    /// Size of the signed payload (what an NFC tag holds).
    pub signed_bytes: usize,
    /// The QR version at the batch's error-correction level.
    pub qr_version: i16,
    /// The PNG label, when images were asked for.
    pub png: Option<Vec<u8>>,
    pub svg: Option<String>,
}

/// Label options of a batch; `None` for payload text only.
#[derive(Debug, Clone, Copy)]
pub struct Images {
    pub ec: Ec,
    /// Pixels a module of a bare code (when `print` is `None`).
    pub scale: u32,
    /// Printable labels (size, caption) instead of bare codes.
    pub print: Option<PrintSpec>,
    pub svg: bool,
}

/// The QR code every payload of a batch must fit.
#[derive(Debug, Clone, Copy)]
pub struct Fit {
    /// The error-correction level.
    pub ec: Ec,
    /// The largest QR version a row may need (`None`: up to 40, `--force`).
    pub max_version: Option<i16>,
}

/// Seals one payload per row, in parallel on rayon's pool; `done` is
/// called after each row (for a progress bar). The output keeps the rows'
/// order. A row whose label needs a QR version above `fit.max_version` is a
/// row error naming the part to shrink.
pub fn produce(
    app: &PreparedApp,
    template: &Manifest,
    key: &ManufacturerKey,
    rows: &[DeviceRow],
    fit: Fit,
    images: Option<Images>,
    done: &(dyn Fn() + Sync),
) -> Vec<Result<DeviceOutput, RowError>> {
    rows.par_iter()
        .map(|row| {
            let result = one(app, template, key, row, fit, images);
            done();
            result
        })
        .collect()
}

fn one(
    app: &PreparedApp,
    template: &Manifest,
    key: &ManufacturerKey,
    row: &DeviceRow,
    Fit { ec, max_version }: Fit,
    images: Option<Images>,
) -> Result<DeviceOutput, RowError> {
    let err = |reason: String| RowError { line: row.line, reason };
    let mut manifest = template.clone();
    manifest.device_id = Some(row.device_id.clone());
    if row.one_time_secret.is_some() {
        manifest.one_time_secret = row.one_time_secret.clone();
    }
    manifest.params.extend(row.params.iter().map(|(k, v)| (k.clone(), v.clone())));
    let payload = app.seal(&manifest, key).map_err(|e| err(e.to_string()))?;
    let text = payload.to_text();
    let version = version_for(&text, ec).map_err(|e| err(e.to_string()))?;
    if let Some(max) = max_version
        && version > max
    {
        let parts = Parts::of(app, &payload).map_err(|e| err(e.to_string()))?;
        check_max_version(version, max, ec, &parts).map_err(|e| err(e.to_string()))?;
    }
    let (qr_version, png, svg) = match images {
        None => (version, None, None),
        Some(images) => {
            let label = Label::new(&text, ec).map_err(|e| err(e.to_string()))?;
            match images.print {
                None => {
                    let png = label.png(images.scale).map_err(|e| err(e.to_string()))?;
                    (label.version(), Some(png), images.svg.then(|| label.svg(images.scale)))
                }
                Some(spec) => {
                    let caption = Caption {
                        product: manifest.product.clone(),
                        device_id: manifest.device_id.clone(),
                        key_id: key.kid().to_owned(),
                    };
                    let printed = Printed::new(&label, caption, spec).map_err(|e| err(e.to_string()))?;
                    let png = printed.png().map_err(|e| err(e.to_string()))?;
                    (label.version(), Some(png), images.svg.then(|| printed.svg()))
                }
            }
        }
    };
    let signed_bytes = payload.as_bytes().len();
    Ok(DeviceOutput { line: row.line, device_id: row.device_id.clone(), text, signed_bytes, qr_version, png, svg })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_parse_with_line_numbers_and_bad_rows_are_reported() {
        let csv = "device_id,one_time_secret,region\nAC-DE-48-00-00-80,00ff,EU\nAC-DE-48-00-00-81,zz,EU\nAC-DE-48-00-00-82\n";
        let rows = parse_csv(csv).unwrap();
        assert_eq!(rows.len(), 3);
        let first = rows[0].as_ref().unwrap();
        assert_eq!((first.line, first.one_time_secret.as_deref()), (2, Some(&[0, 255][..])));
        assert_eq!(first.params.get("region").map(String::as_str), Some("EU"));
        assert_eq!(rows[1].as_ref().unwrap_err().line, 3);
        assert_eq!(rows[2].as_ref().unwrap_err().line, 4);
        assert!(parse_csv("serial\n1\n").is_err());
    }
}
