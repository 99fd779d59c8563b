//! What both sides of a session share: how long each waits, and reading the
//! frame that ended a half's conversation.

use std::time::Duration;

use crate::frame::Frame;
use crate::link::Link;

/// How long each side waits for the other.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// A half waiting in `transport.receive`.
    pub receive: Duration,
    /// A side waiting for a protocol frame (Hello, Start, ReadyToCommit,
    /// Commit, Committed).
    pub protocol: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self { receive: Duration::from_secs(10), protocol: Duration::from_secs(30) }
    }
}

/// The frame that ended a half's conversation. A half whose link closed
/// under it (its peer gave up and hung up) may not have read the peer's last
/// frame, an `Abort` or `Failed` that says why; it is still in the link.
pub async fn last_word(link: &mut Link, control: Option<Frame>, link_failed: bool) -> Option<Frame> {
    if control.is_some() || !link_failed {
        return control;
    }
    loop {
        match link.rx.recv_within(Duration::from_millis(100)).await {
            Ok(Frame::Message(_) | Frame::Item(_)) => continue,
            Ok(frame) => return Some(frame),
            Err(_) => return None,
        }
    }
}
