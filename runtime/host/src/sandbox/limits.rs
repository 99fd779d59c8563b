//! Per-half resource limits, with the violation remembered by name.
//!
//! wasmtime's stock `StoreLimits` turns an over-cap `memory.grow` into a
//! failed grow, which a Rust guest turns into an abort, which surfaces as an
//! anonymous `unreachable` trap. This limiter traps at the grow itself with a
//! [`LimitViolation`] that says what was asked and what the cap is.

use super::{HalfError, HalfKind};

/// A limit a half ran into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitViolation {
    /// Linear memory growth past the cap (bytes).
    Memory { requested: u64, cap: u64 },
    /// Table growth past the cap (elements).
    Table { requested: u64, cap: u64 },
}

impl LimitViolation {
    /// The error to report for a half of `kind`.
    pub fn into_half_error(self, kind: HalfKind) -> HalfError {
        match self {
            LimitViolation::Memory { requested, cap } => {
                HalfError::MemoryCap { half: kind.to_string(), requested, cap }
            }
            LimitViolation::Table { requested, cap } => HalfError::Trap {
                half: kind.to_string(),
                reason: format!("table growth to {requested} elements; the cap is {cap}"),
            },
        }
    }
}

impl std::fmt::Display for LimitViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LimitViolation::Memory { requested, cap } => {
                write!(f, "linear memory of {requested} bytes requested; the cap is {cap}")
            }
            LimitViolation::Table { requested, cap } => {
                write!(f, "table of {requested} elements requested; the cap is {cap}")
            }
        }
    }
}

impl std::error::Error for LimitViolation {}

/// Limits for one half's store.
#[derive(Debug, Clone)]
pub struct HalfLimiter {
    max_memory: usize,
    max_table_elements: usize,
    violation: Option<LimitViolation>,
}

impl HalfLimiter {
    /// A limiter with a memory cap in bytes.
    pub fn new(max_memory: usize) -> Self {
        Self { max_memory, max_table_elements: 1024, violation: None }
    }

    /// The first limit the half ran into, if any.
    pub fn violation(&self) -> Option<LimitViolation> {
        self.violation.clone()
    }
}

impl wasmtime::ResourceLimiter for HalfLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.max_memory {
            let v = LimitViolation::Memory { requested: desired as u64, cap: self.max_memory as u64 };
            self.violation.get_or_insert(v.clone());
            return Err(wasmtime::Error::new(v));
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.max_table_elements {
            let v = LimitViolation::Table { requested: desired as u64, cap: self.max_table_elements as u64 };
            self.violation.get_or_insert(v.clone());
            return Err(wasmtime::Error::new(v));
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        16
    }

    fn tables(&self) -> usize {
        8
    }

    fn memories(&self) -> usize {
        1
    }
}
