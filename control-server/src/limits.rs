//! Every limit the server puts on what a peer can make it hold: connections,
//! time per request, request body sizes, concurrent signature checks, and
//! the size of an SP's answer. A peer that does not authenticate first (an
//! idle TCP connection, an SP hand-over before its signature is checked)
//! must not be able to exhaust file descriptors, memory or tasks.
//!
//! The tunable ones are [`Limits`] (`[limits]` in the configuration); the
//! rest are constants, each used in one place.

use std::time::Duration;

use serde::Deserialize;

/// `[limits]` of the configuration.
///
/// ```toml
/// [limits]
/// max_connections = 4096           # open HTTP connections (capped below the process's fd limit)
/// header_read_timeout_ms = 10000   # a connection that sends no complete request head in this time is closed
/// request_timeout_ms = 30000       # reading the body and answering one request (long-poll: plus its wait)
/// max_concurrent_handovers = 4     # SP hand-overs read and verified at once; more get 503 overloaded
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Most HTTP connections open at once. At the cap the server stops
    /// accepting (new connections wait in the kernel's backlog) until one
    /// closes. The effective cap is also kept [`RESERVED_FDS`] below the
    /// process's open-file limit, so the database and SP calls still get
    /// file descriptors.
    pub max_connections: usize,
    /// A connection that has not sent a complete request head this long after
    /// it opened, or after its previous answer (an idle keep-alive
    /// connection), is closed.
    pub header_read_timeout_ms: u64,
    /// Time to receive a request's body and answer it; beyond it the request
    /// gets `408 request_timeout` and the connection is closed. The
    /// long-poll route gets its longest wait ([`LONG_POLL_MAX_WAIT`]) on top.
    /// Must cover an SP redirect chain (`sp_timeout_ms` per hop).
    pub request_timeout_ms: u64,
    /// SP hand-overs (`POST /v1/sp/associations`, unauthenticated until
    /// the signature is checked) read and verified at the same time; one
    /// more is refused at once with `503 overloaded`, before its body is read.
    pub max_concurrent_handovers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_connections: 4096, header_read_timeout_ms: 10_000, request_timeout_ms: 30_000, max_concurrent_handovers: 4 }
    }
}

impl Limits {
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms)
    }
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// Refuses limits that would stop the server from serving at all.
    pub fn validate(&self) -> Result<(), String> {
        for (name, value) in [
            ("max_connections", self.max_connections as u64),
            ("header_read_timeout_ms", self.header_read_timeout_ms),
            ("request_timeout_ms", self.request_timeout_ms),
            ("max_concurrent_handovers", self.max_concurrent_handovers as u64),
        ] {
            if value == 0 {
                return Err(format!("limits.{name} must be at least 1"));
            }
        }
        Ok(())
    }

    /// [`Limits::max_connections`], lowered to stay [`RESERVED_FDS`] below the
    /// process's soft open-file limit (where it can be read).
    pub fn effective_max_connections(&self) -> usize {
        match open_file_limit() {
            Some(fds) => self.max_connections.min(fds.saturating_sub(RESERVED_FDS).max(1)),
            None => self.max_connections,
        }
    }
}

/// File descriptors kept out of [`Limits::max_connections`]: the listener,
/// the database pool, outgoing SP calls, logs.
pub const RESERVED_FDS: usize = 64;

/// Raises this process's soft open-file limit to its hard limit (what a
/// server may take without privileges), so `max_connections` is not lowered
/// for no reason. Returns the soft limit now in force, if it can be read.
pub fn raise_open_file_limit() -> Option<usize> {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
        let limit = getrlimit(Resource::Nofile);
        if limit.current != limit.maximum
            && let Err(e) = setrlimit(Resource::Nofile, Rlimit { current: limit.maximum, maximum: limit.maximum })
        {
            tracing::warn!(error = %e, "cannot raise the open-file limit");
        }
    }
    open_file_limit()
}

/// The soft open-file limit of this process.
fn open_file_limit() -> Option<usize> {
    #[cfg(unix)]
    {
        rustix::process::getrlimit(rustix::process::Resource::Nofile).current.and_then(|n| usize::try_from(n).ok())
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Largest `POST /v1/resolve` body: a device id, access technology, geo,
/// subscription and service type are a few hundred bytes.
pub const RESOLVE_BODY_MAX: usize = 16 * 1024;

/// Largest `POST /v1/updates/ack` body (`{"seq": N}`).
pub const ACK_BODY_MAX: usize = 1024;

/// Bytes one device id may take in a hand-over's CBOR payload: the longest
/// spelling of an EUI-64 (23 characters) with its CBOR header, rounded up.
pub const HANDOVER_BYTES_PER_DEVICE: usize = 32;

/// Bytes of a hand-over besides its device ids: COSE headers, signature,
/// sender, new SP, service type, timestamp, nonce.
pub const HANDOVER_OVERHEAD_BYTES: usize = 16 * 1024;

/// Largest `POST /v1/sp/associations` body for a policy allowing `max_batch`
/// devices per message (100,000 devices: about 3.2 MB). It is read before
/// the signature can be checked, so it is no larger than a valid message can
/// be.
pub fn handover_body_max(max_batch: usize) -> usize {
    max_batch.saturating_mul(HANDOVER_BYTES_PER_DEVICE).saturating_add(HANDOVER_OVERHEAD_BYTES)
}

/// Largest answer read from an SP's `POST /v1/validate` (a verdict is a
/// short JSON object; a redirect names one SP).
pub const SP_ANSWER_MAX: usize = 64 * 1024;

/// Longest `wait_ms` of a long-poll (`GET /v1/updates/poll`).
pub const LONG_POLL_MAX_WAIT: Duration = Duration::from_secs(60);

/// The events per SSE read from the store.
pub const STREAM_BATCH: i64 = 1000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_batch_fits_and_is_bounded() {
        assert!(handover_body_max(100_000) < 4 * 1024 * 1024);
        assert!(handover_body_max(1) >= HANDOVER_OVERHEAD_BYTES);
        assert_eq!(handover_body_max(usize::MAX), usize::MAX);
        assert!(Limits { max_connections: 0, ..Limits::default() }.validate().is_err());
        assert!(Limits::default().validate().is_ok());
        assert!(Limits::default().effective_max_connections() >= 1);
    }

    #[test]
    fn the_largest_valid_hand_over_fits_its_body_limit() {
        use crate::unsolicited::MovePayloadExt;
        let max_batch = 100_000;
        // The longest spelling of an EUI-64, with separators.
        let devices: Vec<String> = (0..max_batch)
            .map(|n: usize| {
                let b = (n as u32).to_be_bytes();
                format!("AC-DE-48-FF-{:02X}-{:02X}-{:02X}-{:02X}", b[0], b[1], b[2], b[3])
            })
            .collect();
        let payload = control_api::sp::MovePayload::new("sp-one.example", "sp-two.example", devices, Some("m".repeat(64)));
        let signed = payload.sign(&ed25519_dalek::SigningKey::from_bytes(&[1; 32])).unwrap();
        assert!(signed.len() <= handover_body_max(max_batch), "{} > {}", signed.len(), handover_body_max(max_batch));
    }
}
