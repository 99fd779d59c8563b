//! The metrics vocabulary every service of the runtime shares: counters,
//! gauges and fixed-bucket histograms on atomics, grouped in label families,
//! rendered in the Prometheus text exposition format 0.0.4.
//!
//! Why a crate of our own, and this small: the control server, the gateway
//! and the device agent each serve `GET /metrics`, and the device agent must
//! not take an HTTP stack or any other dependency a device build does not
//! need (`scripts/check-device-tree`). Neither `prometheus` nor
//! `prometheus-client` is in the lock file; what the services need (counters
//! with a known set of label values, histograms with fixed buckets, gauges,
//! one text format) is a few hundred lines of std.
//!
//! Recording is lock-free: every series is an atomic, and a family's label
//! values are fixed when it is built (a failure code, a stage, an outcome),
//! so looking a series up is a short scan of a boxed slice, never a map
//! behind a lock. Values with open-ended labels (a gateway's outbox lag, one
//! series per registered gateway) are not stored here at all: the service
//! computes them at scrape time and writes them with
//! [`Exposition::gauge_values`].
//!
//! A label value nobody declared (a newer code than the family knows) is
//! counted in the family's `other` series rather than dropped or panicking.
//!
//! [`check`] parses an exposition back and checks what every scrape must
//! hold (each line a comment or a sample, each histogram's `+Inf` bucket
//! equal to its `_count`); the services' tests scrape over HTTP with it.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

pub mod check;

/// The `Content-Type` of [`Exposition::into_string`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The label value of the series that counts values a family did not declare.
pub const OTHER: &str = "other";

/// Bucket bounds (seconds) for a step of an enrollment or a request: 0.5 ms
/// to 30 s.
pub const LATENCY_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Bucket bounds (seconds) for a durable store commit (an fsync or two):
/// 0.1 ms to 5 s.
pub const COMMIT_BUCKETS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

/// A value that only goes up.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub const fn new() -> Self {
        Self(AtomicU64::new(0))
    }

    pub fn inc(&self) {
        self.add(1);
    }

    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    pub const fn new() -> Self {
        Self(AtomicI64::new(0))
    }

    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }

    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Increments now and decrements when the returned guard is dropped
    /// (an open connection, a running task).
    pub fn track(&self) -> GaugeGuard<'_> {
        self.inc();
        GaugeGuard(self)
    }
}

/// Decrements its [`Gauge`] when dropped ([`Gauge::track`]).
#[derive(Debug)]
pub struct GaugeGuard<'a>(&'a Gauge);

impl Drop for GaugeGuard<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Observations counted in fixed buckets, with their sum.
///
/// Each observation lands in exactly one bucket (the first whose upper
/// bound it does not exceed, or the overflow bucket); the cumulative
/// counts, and the total count, are summed at render time, so a scrape's
/// `+Inf` bucket always equals its `_count` even while observations race it.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// One per bound, then the overflow bucket (`+Inf`).
    buckets: Box<[AtomicU64]>,
    /// The sum of observations, as `f64` bits.
    sum: AtomicU64,
}

impl Histogram {
    /// A histogram with upper bounds `bounds` (finite, strictly increasing;
    /// `+Inf` is implied).
    ///
    /// # Panics
    /// If `bounds` is not finite and strictly increasing: a histogram is
    /// declared in code, and a wrong declaration must fail its first test.
    pub fn new(bounds: &'static [f64]) -> Self {
        assert!(
            bounds.iter().all(|b| b.is_finite()) && bounds.windows(2).all(|w| w[0] < w[1]),
            "histogram bounds must be finite and strictly increasing: {bounds:?}"
        );
        let buckets = (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect();
        Self { bounds, buckets, sum: AtomicU64::new(0f64.to_bits()) }
    }

    /// Records one observation; `NaN` is ignored.
    pub fn observe(&self, value: f64) {
        if value.is_nan() {
            return;
        }
        let index = self.bounds.iter().position(|&b| value <= b).unwrap_or(self.bounds.len());
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
        // Lock-free float add: retry while another observation raced us.
        let _ = self.sum.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
            Some((f64::from_bits(bits) + value).to_bits())
        });
    }

    /// Records a duration, in seconds.
    pub fn observe_duration(&self, d: Duration) {
        self.observe(d.as_secs_f64());
    }

    /// The upper bounds, without `+Inf`.
    pub fn bounds(&self) -> &'static [f64] {
        self.bounds
    }

    /// Cumulative counts per bound then `+Inf`, and the sum.
    pub fn snapshot(&self) -> (Vec<u64>, f64) {
        let mut running = 0u64;
        let cumulative = self
            .buckets
            .iter()
            .map(|b| {
                running = running.saturating_add(b.load(Ordering::Relaxed));
                running
            })
            .collect();
        (cumulative, f64::from_bits(self.sum.load(Ordering::Relaxed)))
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).fold(0, u64::saturating_add)
    }
}

/// Something a [`Family`] holds one of per label set, and how it renders.
pub trait Series {
    /// The `# TYPE` of the family.
    const KIND: &'static str;

    /// Writes this series' sample lines for metric `name` with `labels`.
    fn write(&self, out: &mut Exposition, name: &str, labels: &[(&str, &str)]);
}

impl Series for Counter {
    const KIND: &'static str = "counter";

    fn write(&self, out: &mut Exposition, name: &str, labels: &[(&str, &str)]) {
        out.sample(name, labels, self.get() as f64);
    }
}

impl Series for Gauge {
    const KIND: &'static str = "gauge";

    fn write(&self, out: &mut Exposition, name: &str, labels: &[(&str, &str)]) {
        out.sample(name, labels, self.get() as f64);
    }
}

impl Series for Histogram {
    const KIND: &'static str = "histogram";

    fn write(&self, out: &mut Exposition, name: &str, labels: &[(&str, &str)]) {
        let (cumulative, sum) = self.snapshot();
        let bucket = format!("{name}_bucket");
        for (i, count) in cumulative.iter().enumerate() {
            let le = match self.bounds.get(i) {
                Some(b) => format_value(*b),
                None => "+Inf".to_owned(),
            };
            let mut with_le: Vec<(&str, &str)> = labels.to_vec();
            with_le.push(("le", &le));
            out.sample(&bucket, &with_le, *count as f64);
        }
        let count = cumulative.last().copied().unwrap_or(0);
        out.sample(&format!("{name}_sum"), labels, sum);
        out.sample(&format!("{name}_count"), labels, count as f64);
    }
}

/// One metric: its name, help, label names, and one series per declared
/// set of label values (plus an `other` series for values nobody declared).
#[derive(Debug)]
pub struct Family<M> {
    name: &'static str,
    help: &'static str,
    label_names: &'static [&'static str],
    series: Box<[(Box<[String]>, M)]>,
}

impl<M> Family<M> {
    /// A family of `name` with `label_names` and a series for each entry of
    /// `label_values` (one value per label name, in order), each made by
    /// `make`. With labels, an `other` series (every label `other`) is added
    /// unless declared.
    ///
    /// # Panics
    /// If an entry of `label_values` does not have one value per label name.
    pub fn new<I, L, S>(
        name: &'static str,
        help: &'static str,
        label_names: &'static [&'static str],
        label_values: I,
        make: impl Fn() -> M,
    ) -> Self
    where
        I: IntoIterator<Item = L>,
        L: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut series: Vec<(Box<[String]>, M)> = Vec::new();
        for values in label_values {
            let values: Box<[String]> = values.into_iter().map(Into::into).collect();
            assert_eq!(values.len(), label_names.len(), "{name}: label values {values:?} for labels {label_names:?}");
            if !series.iter().any(|(v, _)| *v == values) {
                series.push((values, make()));
            }
        }
        if label_names.is_empty() {
            if series.is_empty() {
                series.push((Box::default(), make()));
            }
        } else {
            let other: Box<[String]> = label_names.iter().map(|_| OTHER.to_owned()).collect();
            if !series.iter().any(|(v, _)| *v == other) {
                series.push((other, make()));
            }
        }
        Self { name, help, label_names, series: series.into_boxed_slice() }
    }

    /// An unlabeled metric: a family of one series.
    pub fn single(name: &'static str, help: &'static str, make: impl Fn() -> M) -> Self {
        Self::new(name, help, &[], [[""; 0]], make)
    }

    /// The series with exactly these label values; the `other` series if
    /// there is none (and the only series of an unlabeled family).
    pub fn get(&self, label_values: &[&str]) -> &M {
        let found = self.series.iter().find(|(values, _)| {
            values.len() == label_values.len() && values.iter().zip(label_values).all(|(a, b)| a == b)
        });
        match found {
            Some((_, m)) => m,
            // Built with at least one series; the last is `other` (or the only one).
            None => &self.series[self.series.len() - 1].1,
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Every series with its label values.
    pub fn series(&self) -> impl Iterator<Item = (&[String], &M)> {
        self.series.iter().map(|(v, m)| (&**v, m))
    }
}

/// Prometheus text exposition (format 0.0.4) being written.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes a whole family: `# HELP`, `# TYPE`, then every series.
    pub fn family<M: Series>(&mut self, family: &Family<M>) -> &mut Self {
        self.header(family.name, family.help, M::KIND);
        for (values, series) in family.series.iter() {
            let labels: Vec<(&str, &str)> =
                family.label_names.iter().copied().zip(values.iter().map(String::as_str)).collect();
            series.write(self, family.name, &labels);
        }
        self
    }

    /// A gauge whose values are computed now (one series per row).
    pub fn gauge_values<'a>(
        &mut self,
        name: &str,
        help: &str,
        label_names: &[&str],
        rows: impl IntoIterator<Item = (Vec<&'a str>, f64)>,
    ) -> &mut Self {
        self.header(name, help, "gauge");
        for (values, value) in rows {
            let labels: Vec<(&str, &str)> = label_names.iter().copied().zip(values).collect();
            self.sample(name, &labels, value);
        }
        self
    }

    /// An unlabeled counter whose value is kept elsewhere (read now).
    pub fn counter_value(&mut self, name: &str, help: &str, value: u64) -> &mut Self {
        self.header(name, help, "counter");
        self.sample(name, &[], value as f64);
        self
    }

    /// An unlabeled gauge whose value is computed now.
    pub fn gauge_value(&mut self, name: &str, help: &str, value: f64) -> &mut Self {
        self.gauge_values(name, help, &[], [(Vec::new(), value)])
    }

    /// The `# HELP` and `# TYPE` lines of a metric.
    pub fn header(&mut self, name: &str, help: &str, kind: &str) {
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    /// One sample line: `name{labels} value`.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (label, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{label}=\"{}\"", escape_label_value(value));
            }
            self.out.push('}');
        }
        self.out.push(' ');
        self.out.push_str(&format_value(value));
        self.out.push('\n');
    }

    /// The text, to serve with [`CONTENT_TYPE`].
    pub fn into_string(self) -> String {
        self.out
    }
}

/// A label value as the format writes it: `\`, `"` and newline escaped.
pub fn escape_label_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A `# HELP` text as the format writes it: `\` and newline escaped.
pub fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A sample value or bucket bound: integers without a fraction, `+Inf`,
/// `-Inf`, `NaN`.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v == f64::INFINITY {
        "+Inf".to_owned()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        format!("{v}")
    }
}

/// Snake case of a type's `Debug` name (`HalfTrap` → `half_trap`), for
/// label values taken from enums that have no string name of their own.
pub fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label_value(r"a\b"), r"a\\b");
        assert_eq!(escape_label_value("say \"hi\""), r#"say \"hi\""#);
        assert_eq!(escape_label_value("two\nlines"), r"two\nlines");
        assert_eq!(escape_label_value("plain-value_1.2"), "plain-value_1.2");
        assert_eq!(escape_help("a\\b\nc \"q\""), "a\\\\b\\nc \"q\"");

        let family = Family::new("odd_total", "Odd label values.", &["v"], [["back\\slash"], ["quo\"te"], ["new\nline"]], Counter::new);
        family.get(&["quo\"te"]).inc();
        let mut out = Exposition::new();
        out.family(&family);
        let text = out.into_string();
        assert!(text.contains(r#"odd_total{v="back\\slash"} 0"#), "{text}");
        assert!(text.contains(r#"odd_total{v="quo\"te"} 1"#), "{text}");
        assert!(text.contains(r#"odd_total{v="new\nline"} 0"#), "{text}");
        // And the checker reads them back unescaped.
        let scrape = check::parse(&text).expect("parses");
        assert_eq!(scrape.value("odd_total", &[("v", "quo\"te")]), Some(1.0));
        assert_eq!(scrape.value("odd_total", &[("v", "new\nline")]), Some(0.0));
        assert_eq!(scrape.value("odd_total", &[("v", "back\\slash")]), Some(0.0));
    }

    #[test]
    fn a_histogram_renders_cumulative_buckets_sum_and_count() {
        let h = Histogram::new(&[0.1, 1.0]);
        for v in [0.05, 0.1, 0.5, 2.0, f64::NAN] {
            h.observe(v);
        }
        let mut out = Exposition::new();
        out.header("h_seconds", "A histogram.", Histogram::KIND);
        h.write(&mut out, "h_seconds", &[("stage", "x")]);
        let text = out.into_string();
        let expected = "# HELP h_seconds A histogram.\n# TYPE h_seconds histogram\n\
            h_seconds_bucket{stage=\"x\",le=\"0.1\"} 2\n\
            h_seconds_bucket{stage=\"x\",le=\"1\"} 3\n\
            h_seconds_bucket{stage=\"x\",le=\"+Inf\"} 4\n\
            h_seconds_sum{stage=\"x\"} 2.65\n\
            h_seconds_count{stage=\"x\"} 4\n";
        assert_eq!(text, expected);
        check::parse(&text).expect("a valid exposition");
        assert_eq!(h.count(), 4);
    }

    #[test]
    fn undeclared_label_values_count_as_other() {
        let family = Family::new("outcomes_total", "Outcomes.", &["outcome"], [["ok"], ["failed"]], Counter::new);
        family.get(&["ok"]).inc();
        family.get(&["brand_new"]).inc();
        family.get(&["ok", "too many"]).inc();
        assert_eq!(family.get(&["ok"]).get(), 1);
        assert_eq!(family.get(&[OTHER]).get(), 2);
        assert_eq!(family.series().count(), 3);

        let single = Family::single("up", "Up.", Gauge::new);
        single.get(&[]).set(1);
        let mut out = Exposition::new();
        out.family(&single).family(&family);
        let text = out.into_string();
        assert!(text.contains("\nup 1\n"), "{text}");
        assert!(text.contains("outcomes_total{outcome=\"other\"} 2"), "{text}");
    }

    #[test]
    fn values_and_gauges_computed_at_scrape_time() {
        let g = Gauge::new();
        {
            let _a = g.track();
            let _b = g.track();
            assert_eq!(g.get(), 2);
        }
        assert_eq!(g.get(), 0);
        let mut out = Exposition::new();
        out.gauge_values("lag", "Lag.", &["gateway"], [(vec!["gw-1"], 3.0), (vec!["gw-2"], 0.0)])
            .counter_value("done_total", "Done.", 7)
            .gauge_value("big", "Big.", 1.5e300);
        let text = out.into_string();
        let scrape = check::parse(&text).expect("parses");
        assert_eq!(scrape.value("lag", &[("gateway", "gw-1")]), Some(3.0));
        assert_eq!(scrape.value("done_total", &[]), Some(7.0));
        assert_eq!(scrape.value("big", &[]), Some(1.5e300));
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(3.0), "3");
        assert_eq!(snake_case("HalfTrap"), "half_trap");
    }

    #[test]
    #[should_panic(expected = "strictly increasing")]
    fn unordered_bounds_are_a_declaration_error() {
        let _ = Histogram::new(&[1.0, 0.5]);
    }
}
