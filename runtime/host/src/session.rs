//! What both sides of a session share: how long each waits, a half's
//! deadline over everything it does, and reading the frame that ended a
//! half's conversation.
//!
//! A session has three kinds of bound, none of which a peer can move:
//! the whole session ([`Timeouts::session`], set on the link by
//! [`start`]), each protocol phase ([`Timeouts::protocol`], fixed when the
//! phase begins; stray frames skipped meanwhile do not restart it), and each
//! send ([`Timeouts::send`]). A half's run is bounded by its deadline
//! ([`within_deadline`]) including the time it spends waiting in host calls.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::frame::Frame;
use crate::link::{Link, LinkFailure};
use crate::sandbox::{HalfError, HalfErrorBox, HalfKind};

/// How long each side waits for the other.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// A half waiting in `transport.receive`.
    pub receive: Duration,
    /// A side waiting for a protocol frame (Hello, Start, ReadyToCommit,
    /// Commit, Committed): the whole phase, however many stray frames come.
    pub protocol: Duration,
    /// One send waiting for the peer to take a frame.
    pub send: Duration,
    /// The whole session, from the first frame to the last.
    pub session: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            receive: Duration::from_secs(10),
            protocol: Duration::from_secs(30),
            send: crate::link::DEFAULT_SEND_WAIT,
            session: Duration::from_secs(90),
        }
    }
}

/// A session that has started on a link: when it ends, and its timeouts.
#[derive(Debug, Clone, Copy)]
pub struct SessionClock {
    timeouts: Timeouts,
    end: Instant,
}

/// Starts a session on `link`: from now on no wait on it goes past the end
/// of the session, and no send waits longer than [`Timeouts::send`].
pub fn start(link: &mut Link, timeouts: Timeouts) -> SessionClock {
    let end = link.end_session_at(timeouts.session, timeouts.send);
    SessionClock { timeouts, end }
}

impl SessionClock {
    /// The end of a protocol phase that starts now.
    pub fn phase(&self) -> Phase {
        Phase { deadline: Instant::now() + self.timeouts.protocol, length: self.timeouts.protocol }
    }

    /// When a half that starts now must be done: its deadline, or the end
    /// of the session if that comes first.
    pub fn half_until(&self, half_deadline: Duration) -> (Instant, Duration) {
        let wanted = Instant::now() + half_deadline;
        if self.end < wanted {
            (self.end, self.end.saturating_duration_since(Instant::now()))
        } else {
            (wanted, half_deadline)
        }
    }
}

/// One protocol phase: a deadline fixed when it began.
#[derive(Debug, Clone, Copy)]
pub struct Phase {
    deadline: Instant,
    length: Duration,
}

impl Phase {
    /// The next frame of this phase, skipping leftover transport messages
    /// and hand-over items (which do not move the deadline).
    pub async fn next_protocol_frame(&self, link: &mut Link) -> Result<Frame, LinkFailure> {
        loop {
            match link.rx.recv_before(self.deadline, self.length).await? {
                Frame::Message(_) | Frame::Item(_) | Frame::Close => continue,
                frame => return Ok(frame),
            }
        }
    }

    /// The next frame of this phase, whatever it is.
    pub async fn next_frame(&self, link: &mut Link) -> Result<Frame, LinkFailure> {
        link.rx.recv_before(self.deadline, self.length).await
    }
}

/// Runs a half's call (instantiation and `enroll`) until `until`: past it,
/// whatever the half is doing, a computation or a wait in a host call, it is
/// stopped and reported as [`HalfError::DeadlineExceeded`]. The epoch
/// deadline in the sandbox stops a half that computes; this also stops one
/// whose host call waits (a send to a peer that does not read).
pub async fn within_deadline<F>(
    kind: HalfKind,
    (until, allowed): (Instant, Duration),
    run: F,
) -> wasmtime::Result<Result<(), ()>>
where
    F: Future<Output = wasmtime::Result<Result<(), ()>>>,
{
    match tokio::time::timeout_at(until, run).await {
        Ok(result) => result,
        Err(_) => Err(wasmtime::Error::new(HalfErrorBox(HalfError::DeadlineExceeded {
            half: kind.to_string(),
            deadline_ms: allowed.as_millis() as u64,
        }))),
    }
}

/// The frame that ended a half's conversation. A half whose link closed
/// under it (its peer gave up and hung up) may not have read the peer's last
/// frame, an `Abort` or `Failed` that says why; it is still in the link.
pub async fn last_word(link: &mut Link, control: Option<Frame>, link_failed: bool) -> Option<Frame> {
    if control.is_some() || !link_failed {
        return control;
    }
    // One fixed deadline for the whole search: a peer that keeps sending
    // messages does not keep it going.
    let look = Duration::from_millis(200);
    let deadline = Instant::now() + look;
    loop {
        match link.rx.recv_before(deadline, look).await {
            Ok(Frame::Message(_) | Frame::Item(_)) => continue,
            Ok(frame) => return Some(frame),
            Err(_) => return None,
        }
    }
}
