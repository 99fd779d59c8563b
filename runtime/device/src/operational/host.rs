//! What an operational app gets: exactly the `operational` world's imports.
//!
//! The app reads the device's identifier and configuration, keeps a few
//! values, queues messages for its SP, takes verified commands and asks when
//! to run next. Messages are only queued here: the runtime signs and sends
//! them after the activation returned `ok` (an activation that fails or is
//! stopped sends nothing), and the app never sees a key.

use std::collections::{BTreeMap, VecDeque};

use enrollment_host::bindings::device::iot_enroll::enrollment::{diagnostics, types};
use enrollment_host::bindings::operational::iot_enroll::enrollment::{schedule, settings, uplink};
use enrollment_host::bindings::Refusal;
use enrollment_host::manifest::Diagnostics;
use enrollment_host::sandbox::{HalfError, HalfErrorBox, HalfLimiter, HasLimiter};
use enrollment_host::trace::HalfTrace;
use wasmtime::component::{HasSelf, Linker};

/// Messages an activation may send.
pub const MAX_SENDS: usize = 8;
/// Refused sends past the budget before the activation is stopped.
pub const MAX_REFUSED_SENDS: u32 = 64;
/// Largest message body.
pub const MAX_MESSAGE: usize = control_api::device::MAX_BODY;
/// Names an app may keep, and their sizes.
pub const MAX_KEPT: usize = 16;
pub const MAX_KEPT_NAME: usize = 64;
pub const MAX_KEPT_VALUE: usize = 256;
/// The bounds of `schedule.wake-after`, in seconds.
pub const MIN_WAKE_SECS: u32 = 1;
pub const MAX_WAKE_SECS: u32 = 86_400;

/// The host state of one activation.
pub struct OperationalHost {
    pub(crate) identifier: String,
    pub(crate) config: BTreeMap<String, Vec<u8>>,
    pub(crate) kept: BTreeMap<String, Vec<u8>>,
    /// Message bodies queued by `send`, signed and sent after the activation.
    pub(crate) outbox: Vec<Vec<u8>>,
    /// Verified commands not yet taken, oldest first.
    pub(crate) commands: VecDeque<Vec<u8>>,
    pub(crate) wake_after: Option<u32>,
    refused_sends: u32,
    diagnostics: Diagnostics,
    limiter: HalfLimiter,
}

impl OperationalHost {
    pub(crate) fn new(
        identifier: String,
        config: BTreeMap<String, Vec<u8>>,
        kept: BTreeMap<String, Vec<u8>>,
        commands: VecDeque<Vec<u8>>,
        trace: HalfTrace,
        max_memory: usize,
    ) -> Self {
        Self {
            identifier,
            config,
            kept,
            outbox: Vec::new(),
            commands,
            wake_after: None,
            refused_sends: 0,
            diagnostics: Diagnostics::new(trace),
            limiter: HalfLimiter::new(max_memory),
        }
    }

    /// The linker with the `operational` world's imports and nothing else.
    pub fn linker(engine: &wasmtime::Engine) -> wasmtime::Result<Linker<OperationalHost>> {
        let mut linker = Linker::new(engine);
        types::add_to_linker::<OperationalHost, HasSelf<OperationalHost>>(&mut linker, |h| h)?;
        diagnostics::add_to_linker::<OperationalHost, HasSelf<Diagnostics>>(&mut linker, |h| &mut h.diagnostics)?;
        settings::add_to_linker::<OperationalHost, HasSelf<OperationalHost>>(&mut linker, |h| h)?;
        uplink::add_to_linker::<OperationalHost, HasSelf<OperationalHost>>(&mut linker, |h| h)?;
        schedule::add_to_linker::<OperationalHost, HasSelf<OperationalHost>>(&mut linker, |h| h)?;
        Ok(linker)
    }
}

impl HasLimiter for OperationalHost {
    fn limiter(&mut self) -> &mut dyn wasmtime::ResourceLimiter {
        &mut self.limiter
    }
    fn limiter_state(&mut self) -> &HalfLimiter {
        &self.limiter
    }
}

impl types::Host for OperationalHost {}

impl settings::Host for OperationalHost {
    async fn identifier(&mut self) -> wasmtime::Result<String> {
        Ok(self.identifier.clone())
    }

    async fn get(&mut self, name: String) -> wasmtime::Result<Option<Vec<u8>>> {
        Ok(self.kept.get(&name).or_else(|| self.config.get(&name)).cloned())
    }

    async fn keep(&mut self, name: String, value: Vec<u8>) -> wasmtime::Result<Result<(), Refusal>> {
        if name.is_empty() || name.len() > MAX_KEPT_NAME || name.chars().any(char::is_control) {
            return Ok(Err(Refusal::InvalidValue));
        }
        if value.len() > MAX_KEPT_VALUE {
            return Ok(Err(Refusal::TooLarge));
        }
        if !self.kept.contains_key(&name) && self.kept.len() >= MAX_KEPT {
            return Ok(Err(Refusal::BudgetExhausted));
        }
        self.kept.insert(name, value);
        Ok(Ok(()))
    }
}

impl uplink::Host for OperationalHost {
    async fn send(&mut self, message: Vec<u8>) -> wasmtime::Result<Result<(), Refusal>> {
        if message.len() > MAX_MESSAGE {
            return Ok(Err(Refusal::TooLarge));
        }
        if self.outbox.len() >= MAX_SENDS {
            self.refused_sends += 1;
            if self.refused_sends > MAX_REFUSED_SENDS {
                return Err(wasmtime::Error::new(HalfErrorBox(HalfError::Exhausted {
                    half: "operational app".into(),
                    reason: format!(
                        "it kept sending after its budget of {MAX_SENDS} messages per activation was spent \
                         ({MAX_REFUSED_SENDS} refused sends)"
                    ),
                })));
            }
            return Ok(Err(Refusal::BudgetExhausted));
        }
        self.outbox.push(message);
        Ok(Ok(()))
    }

    async fn next_command(&mut self) -> wasmtime::Result<Option<Vec<u8>>> {
        Ok(self.commands.pop_front())
    }
}

impl schedule::Host for OperationalHost {
    async fn wake_after(&mut self, seconds: u32) -> wasmtime::Result<()> {
        self.wake_after = Some(seconds.clamp(MIN_WAKE_SECS, MAX_WAKE_SECS));
        Ok(())
    }
}
