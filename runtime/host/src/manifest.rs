//! The `manifest` and `diagnostics` capabilities, the same for both halves.
//!
//! `manifest` reads what the manufacturer signed into the label; the host
//! hands the half only the parameters and the one-time secret, never the
//! rest of the payload. `diagnostics` takes short lines for the app's author
//! (bounded in count and length: a half cannot flood a log), shown by the
//! simulator and at `RUST_LOG=debug`.

use std::collections::BTreeMap;

use crate::bindings::device::iot_enroll::enrollment::{diagnostics, manifest};
use crate::failure::truncate_on_char_boundary;
use crate::trace::{HalfTrace, TraceKind};

/// Most diagnostics lines one half may log.
pub const MAX_DIAGNOSTICS: u32 = 32;

/// Longest diagnostics line kept, in bytes.
pub const MAX_DIAGNOSTIC_LINE: usize = 160;

/// What a half may read of the signed manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManifestView {
    pub params: BTreeMap<String, String>,
    pub secret: Option<Vec<u8>>,
}

impl ManifestView {
    /// The view of a verified manifest.
    pub fn of(manifest: &qr_packer::Manifest) -> Self {
        Self { params: manifest.params.clone(), secret: manifest.one_time_secret.clone() }
    }
}

impl manifest::Host for ManifestView {
    async fn param(&mut self, name: String) -> wasmtime::Result<Option<String>> {
        Ok(self.params.get(&name).cloned())
    }

    async fn secret(&mut self) -> wasmtime::Result<Option<Vec<u8>>> {
        Ok(self.secret.clone())
    }
}

/// A half's diagnostics lines.
#[derive(Debug)]
pub struct Diagnostics {
    trace: HalfTrace,
    logged: u32,
    /// Lines past the budget, counted, not kept.
    pub dropped: u32,
}

impl Diagnostics {
    pub fn new(trace: HalfTrace) -> Self {
        Self { trace, logged: 0, dropped: 0 }
    }
}

impl diagnostics::Host for Diagnostics {
    async fn log(&mut self, mut line: String) -> wasmtime::Result<()> {
        if self.logged >= MAX_DIAGNOSTICS {
            self.dropped += 1;
            return Ok(());
        }
        self.logged += 1;
        truncate_on_char_boundary(&mut line, MAX_DIAGNOSTIC_LINE);
        let line: String = line.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
        tracing::debug!(half = %self.trace.half(), "{line}");
        self.trace.record(TraceKind::Diagnostic, || line);
        Ok(())
    }
}
