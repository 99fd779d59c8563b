//! The `transport` capability: what a half sees of the link.
//!
//! A half sends and receives opaque messages; the host turns them into
//! [`Frame::Message`]s on the [`Link`]. Anything else that arrives while a half
//! waits (the peer failed, the assistant aborted, the device is ready to
//! commit) ends the conversation for the half with `closed`, and is kept for
//! the enrollment logic to act on once the half has returned.
//!
//! Limits are the host's: a receive that waits longer than the configured
//! timeout returns `timeout`, and a message over [`MAX_MESSAGE`] bytes ends the
//! half that sent it with [`HalfError::MessageTooLarge`].

use std::time::Duration;

use crate::bindings::LinkError;
use crate::bindings::device::iot_enroll::enrollment::transport::Host;
use crate::frame::Frame;
use crate::link::{Link, LinkFailure, MAX_MESSAGE};
use crate::sandbox::{HalfError, HalfErrorBox, HalfKind};

/// One half's end of the link.
pub struct TransportEnd {
    link: Link,
    half: HalfKind,
    receive_timeout: Duration,
    /// The frame that ended the conversation, if it was not a message.
    control: Option<Frame>,
    /// The link failure that ended it, if any.
    failure: Option<LinkFailure>,
    /// Whether the last receive timed out.
    timed_out: bool,
    /// Messages sent and received, for reports.
    pub sent: u32,
    pub received: u32,
}

impl TransportEnd {
    pub fn new(link: Link, half: HalfKind, receive_timeout: Duration) -> Self {
        Self { link, half, receive_timeout, control: None, failure: None, timed_out: false, sent: 0, received: 0 }
    }

    /// Gives back the link, with the control frame or failure that ended the
    /// conversation, if any.
    pub fn into_parts(self) -> (Link, Option<Frame>, Option<LinkFailure>) {
        (self.link, self.control, self.failure)
    }

    /// Sharpens a half's failure: a half that gave up right after its peer
    /// went silent failed because of the silence.
    pub fn explain(&self, error: HalfError) -> HalfError {
        match error {
            HalfError::Failed { half } if self.timed_out => {
                HalfError::PeerSilent { half, waited_ms: self.receive_timeout.as_millis() as u64 }
            }
            other => other,
        }
    }

    fn ended(&self) -> bool {
        self.control.is_some() || self.failure.is_some()
    }
}

impl Host for TransportEnd {
    async fn send(&mut self, message: Vec<u8>) -> wasmtime::Result<Result<(), LinkError>> {
        if message.len() > MAX_MESSAGE {
            return Err(wasmtime::Error::new(HalfErrorBox(HalfError::MessageTooLarge {
                half: self.half.to_string(),
                size: message.len() as u64,
                max: MAX_MESSAGE as u64,
            })));
        }
        if self.ended() {
            return Ok(Err(LinkError::Closed));
        }
        match self.link.tx.send(Frame::Message(message)).await {
            Ok(()) => {
                self.sent += 1;
                Ok(Ok(()))
            }
            Err(failure) => {
                self.failure = Some(failure);
                Ok(Err(LinkError::Closed))
            }
        }
    }

    async fn receive(&mut self) -> wasmtime::Result<Result<Vec<u8>, LinkError>> {
        if self.ended() {
            return Ok(Err(LinkError::Closed));
        }
        self.timed_out = false;
        match self.link.rx.recv_within(self.receive_timeout).await {
            Ok(Frame::Message(message)) => {
                self.received += 1;
                Ok(Ok(message))
            }
            Ok(other) => {
                self.control = Some(other);
                Ok(Err(LinkError::Closed))
            }
            Err(LinkFailure::Timeout(_)) => {
                self.timed_out = true;
                Ok(Err(LinkError::Timeout))
            }
            Err(failure) => {
                self.failure = Some(failure);
                Ok(Err(LinkError::Closed))
            }
        }
    }
}
