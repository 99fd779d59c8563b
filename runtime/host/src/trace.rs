//! What each half did, for `qr-packer simulate` and tests: items and
//! messages sent and received (kind and size, never values), staged writes,
//! diagnostics lines and refusals, in order, bounded.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use crate::sandbox::HalfKind;

/// Most events a trace keeps (the oldest are dropped first).
pub const MAX_EVENTS: usize = 512;

/// One thing a half did or was told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceEvent {
    pub half: HalfKind,
    pub kind: TraceKind,
    pub what: String,
}

/// What kind of event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceKind {
    Sent,
    Received,
    Staged,
    Refused,
    Diagnostic,
}

impl std::fmt::Display for TraceEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            TraceKind::Sent => "sent",
            TraceKind::Received => "received",
            TraceKind::Staged => "staged",
            TraceKind::Refused => "refused",
            TraceKind::Diagnostic => "log",
        };
        write!(f, "{:<11} {:<8} {}", self.half.name(), kind, self.what)
    }
}

/// A shared, bounded trace; cheap to clone. Halves record into it only when
/// one is given.
#[derive(Debug, Clone, Default)]
pub struct Trace(Arc<Mutex<VecDeque<TraceEvent>>>);

impl Trace {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn record(&self, half: HalfKind, kind: TraceKind, what: impl Into<String>) {
        if let Ok(mut events) = self.0.lock() {
            if events.len() == MAX_EVENTS {
                events.pop_front();
            }
            events.push_back(TraceEvent { half, kind, what: what.into() });
        }
    }

    /// Everything recorded, oldest first.
    pub fn events(&self) -> Vec<TraceEvent> {
        self.0.lock().map(|e| e.iter().cloned().collect()).unwrap_or_default()
    }

    /// The last `n` events of one half.
    pub fn last_of(&self, half: HalfKind, n: usize) -> Vec<TraceEvent> {
        let mine: Vec<_> = self.events().into_iter().filter(|e| e.half == half).collect();
        mine[mine.len().saturating_sub(n)..].to_vec()
    }
}

/// A recorder for one half: a no-op without a trace.
#[derive(Debug, Clone)]
pub struct HalfTrace {
    trace: Option<Trace>,
    half: HalfKind,
}

impl HalfTrace {
    pub fn new(trace: Option<Trace>, half: HalfKind) -> Self {
        Self { trace, half }
    }

    pub fn record(&self, kind: TraceKind, what: impl FnOnce() -> String) {
        if let Some(trace) = &self.trace {
            trace.record(self.half, kind, what());
        }
    }

    pub fn half(&self) -> HalfKind {
        self.half
    }
}
