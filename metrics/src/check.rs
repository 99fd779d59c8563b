//! Reading an exposition back, and checking what every scrape must hold.
//!
//! The services' tests scrape `/metrics` over HTTP and hand the text to
//! [`parse`], which fails unless every line is empty, a comment, or a sample
//! `name{label="value",…} value [timestamp]`; `# TYPE` names a known type
//! at most once and before the metric's samples; no sample repeats; and
//! every histogram series has `_bucket`s with non-decreasing counts that end
//! in `le="+Inf"`, that bucket equal to its `_count`, and a `_sum`. Then
//! [`Scrape::value`] and [`Scrape::sum`] read the numbers.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    /// In the order written, values unescaped.
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    fn has(&self, wanted: &[(&str, &str)]) -> bool {
        wanted.iter().all(|(k, v)| self.labels.iter().any(|(lk, lv)| lk == k && lv == v))
    }
}

/// A parsed and checked exposition.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    pub samples: Vec<Sample>,
    /// Metric name → its `# TYPE`.
    pub types: HashMap<String, String>,
}

impl Scrape {
    /// The value of the sample of `name` whose labels are exactly `labels`
    /// (in any order).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples.iter().find(|s| s.name == name && s.labels.len() == labels.len() && s.has(labels)).map(|s| s.value)
    }

    /// The sum over every sample of `name` that has (at least) `labels`;
    /// `0` if there is none.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples.iter().filter(|s| s.name == name && s.has(labels)).map(|s| s.value).sum()
    }

    /// Whether any sample of `name` (or of a histogram `name`) is there.
    pub fn has(&self, name: &str) -> bool {
        self.types.contains_key(name) || self.samples.iter().any(|s| s.name == name)
    }
}

/// Why a text is not a valid exposition: the line (from 1) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.message)
        } else {
            write!(f, "line {}: {}", self.line, self.message)
        }
    }
}

impl std::error::Error for CheckError {}

const TYPES: &[&str] = &["counter", "gauge", "histogram", "summary", "untyped"];

/// Parses and checks `text` (see the module docs).
pub fn parse(text: &str) -> Result<Scrape, CheckError> {
    let mut scrape = Scrape::default();
    let mut seen: HashMap<(String, Vec<(String, String)>), usize> = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let err = |message: String| CheckError { line: n, message };
        if line.trim().is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.trim_start().splitn(3, ' ');
            match words.next() {
                Some("TYPE") => {
                    let name = words.next().ok_or_else(|| err("# TYPE without a name".into()))?;
                    let kind = words.next().map(str::trim).ok_or_else(|| err(format!("# TYPE {name} without a type")))?;
                    check_name(name).map_err(err)?;
                    if !TYPES.contains(&kind) {
                        return Err(err(format!("# TYPE {name}: unknown type {kind:?}")));
                    }
                    if scrape.types.insert(name.to_owned(), kind.to_owned()).is_some() {
                        return Err(err(format!("# TYPE {name} given twice")));
                    }
                    if scrape.samples.iter().any(|s| family_of(&s.name, kind) == Some(name)) {
                        return Err(err(format!("# TYPE {name} after its samples")));
                    }
                }
                Some("HELP") => {
                    let name = words.next().ok_or_else(|| err("# HELP without a name".into()))?;
                    check_name(name).map_err(err)?;
                }
                _ => {}
            }
            continue;
        }
        let sample = parse_sample(line).map_err(err)?;
        let mut key_labels = sample.labels.clone();
        key_labels.sort();
        if let Some(first) = seen.insert((sample.name.clone(), key_labels), n) {
            return Err(err(format!("{} with these labels is already on line {first}", sample.name)));
        }
        scrape.samples.push(sample);
    }
    check_histograms(&scrape)?;
    Ok(scrape)
}

/// The family a sample named `sample` belongs to if that family is of `kind`.
fn family_of<'a>(sample: &'a str, kind: &str) -> Option<&'a str> {
    if kind == "histogram" {
        ["_bucket", "_sum", "_count"].iter().find_map(|suffix| sample.strip_suffix(suffix))
    } else {
        Some(sample)
    }
}

fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':');
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
        Ok(())
    } else {
        Err(format!("{name:?} is not a metric name"))
    }
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ', '\t']).ok_or("a sample without a value")?;
    let name = &line[..name_end];
    check_name(name)?;
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        let (parsed, remaining) = parse_labels(after)?;
        labels = parsed;
        rest = remaining;
    }
    let mut fields = rest.split_whitespace();
    let value = fields.next().ok_or_else(|| format!("{name}: no value"))?;
    let value = parse_value(value).ok_or_else(|| format!("{name}: {value:?} is not a value"))?;
    if let Some(ts) = fields.next()
        && ts.parse::<i64>().is_err()
    {
        return Err(format!("{name}: {ts:?} is not a timestamp"));
    }
    if fields.next().is_some() {
        return Err(format!("{name}: text after the value and timestamp"));
    }
    if !rest.starts_with([' ', '\t']) {
        return Err(format!("{name}: no space before the value"));
    }
    Ok(Sample { name: name.to_owned(), labels, value })
}

/// Labels as written, values unescaped.
type Labels = Vec<(String, String)>;

/// Parses `label="value",…}`; returns the labels and what follows `}`.
fn parse_labels(mut s: &str) -> Result<(Labels, &str), String> {
    let mut labels: Labels = Vec::new();
    loop {
        s = s.trim_start();
        if let Some(rest) = s.strip_prefix('}') {
            return Ok((labels, rest));
        }
        let eq = s.find('=').ok_or("a label without =")?;
        let label = s[..eq].trim();
        check_name(label).map_err(|_| format!("{label:?} is not a label name"))?;
        if label.contains(':') {
            return Err(format!("{label:?} is not a label name"));
        }
        if labels.iter().any(|(l, _)| l == label) {
            return Err(format!("label {label} given twice"));
        }
        s = s[eq + 1..].trim_start().strip_prefix('"').ok_or_else(|| format!("label {label}: value not quoted"))?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err(format!("label {label}: unterminated value")),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("label {label}: bad escape {:?}", other.map(|(_, c)| c))),
                },
                Some((_, '\n')) => return Err(format!("label {label}: raw newline in a value")),
                Some((_, c)) => value.push(c),
            }
        };
        labels.push((label.to_owned(), value));
        s = s[end + 1..].trim_start();
        if let Some(rest) = s.strip_prefix(',') {
            s = rest;
        } else if !s.starts_with('}') {
            return Err(format!("after label {label}: expected , or }}"));
        }
    }
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => s.parse::<f64>().ok().filter(|v| v.is_finite()),
    }
}

/// Per histogram and label set (without `le`): the buckets, `_sum`, `_count`.
fn check_histograms(scrape: &Scrape) -> Result<(), CheckError> {
    type Key = Vec<(String, String)>;
    #[derive(Default)]
    struct Parts {
        buckets: Vec<(f64, f64)>,
        sum: Option<f64>,
        count: Option<f64>,
    }
    let fail = |message: String| CheckError { line: 0, message };
    for (name, kind) in &scrape.types {
        if kind != "histogram" {
            continue;
        }
        let mut series: BTreeMap<Key, Parts> = BTreeMap::new();
        for s in &scrape.samples {
            let Some(suffix) = s.name.strip_prefix(name.as_str()) else { continue };
            if !matches!(suffix, "_bucket" | "_sum" | "_count") {
                continue;
            }
            let mut key: Key = s.labels.iter().filter(|(l, _)| l != "le").cloned().collect();
            key.sort();
            let parts = series.entry(key).or_default();
            match suffix {
                "_bucket" => {
                    let le = s.labels.iter().find(|(l, _)| l == "le").map(|(_, v)| v.as_str());
                    let le = le.and_then(parse_value).ok_or_else(|| fail(format!("{}: a bucket without a valid le", s.name)))?;
                    parts.buckets.push((le, s.value));
                }
                "_sum" => parts.sum = Some(s.value),
                "_count" => parts.count = Some(s.value),
                _ => {}
            }
        }
        if series.is_empty() {
            return Err(fail(format!("histogram {name} has no samples")));
        }
        for (key, mut parts) in series {
            let what = format!("histogram {name}{key:?}");
            parts.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            if parts.buckets.windows(2).any(|w| w[1].1 < w[0].1) {
                return Err(fail(format!("{what}: bucket counts decrease")));
            }
            let Some(&(last_le, inf)) = parts.buckets.last() else {
                return Err(fail(format!("{what}: no buckets")));
            };
            if last_le != f64::INFINITY {
                return Err(fail(format!("{what}: no le=\"+Inf\" bucket")));
            }
            let count = parts.count.ok_or_else(|| fail(format!("{what}: no _count")))?;
            if count != inf {
                return Err(fail(format!("{what}: +Inf bucket {inf} is not _count {count}")));
            }
            if parts.sum.is_none() {
                return Err(fail(format!("{what}: no _sum")));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_not_an_exposition_is_refused() {
        for (text, why) in [
            ("just words\n", "not a value"),
            ("lonely\n", "without a value"),
            ("m{a=\"x\" 1\n", "expected"),
            ("m{a=x} 1\n", "not quoted"),
            ("m{a=\"x\\q\"} 1\n", "bad escape"),
            ("m 1 2 3\n", "after the value"),
            ("m one\n", "not a value"),
            ("m 1\nm 2\n", "already"),
            ("# TYPE m gauge\n# TYPE m gauge\n", "twice"),
            ("m 1\n# TYPE m gauge\n", "after its samples"),
            ("# TYPE m wibble\n", "unknown type"),
            ("9m 1\n", "not a metric name"),
        ] {
            let e = parse(text).expect_err(text);
            assert!(e.to_string().contains(why), "{text:?}: {e}");
        }
    }

    #[test]
    fn broken_histograms_are_refused() {
        let head = "# TYPE h histogram\n";
        for (body, why) in [
            ("h_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n", "+Inf"),
            ("h_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 1\n", "is not _count"),
            ("h_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n", "decrease"),
            ("h_bucket{le=\"+Inf\"} 1\nh_count 1\n", "no _sum"),
            ("h_bucket{le=\"+Inf\"} 1\nh_sum 1\n", "no _count"),
        ] {
            let text = format!("{head}{body}");
            let e = parse(&text).expect_err(&text);
            assert!(e.to_string().contains(why), "{text:?}: {e}");
        }
        let good = format!("{head}h_bucket{{le=\"1\"}} 1\nh_bucket{{le=\"+Inf\"}} 2\nh_sum 1.5\nh_count 2\n");
        let scrape = parse(&good).expect("valid");
        assert_eq!(scrape.value("h_count", &[]), Some(2.0));
        assert_eq!(scrape.sum("h_bucket", &[]), 3.0);
    }
}
