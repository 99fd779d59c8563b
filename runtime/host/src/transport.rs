//! The `transport` capability, and the one ordered stream of frames both
//! `transport` and the hand-over (`offer` / `take`) read from.
//!
//! A half's messages and hand-over items travel as [`Frame::Message`] and
//! [`Frame::Item`] on the [`Link`], in the order they were sent. Whatever
//! arrives is kept at the head of the stream until the call that expects
//! it: `transport.receive` on an item, or `take.next` on a message, answers
//! `out-of-order` and leaves it there. Any other frame (the peer failed, the
//! assistant aborted, the device is ready to commit) ends the conversation
//! for the half with `closed`, and is kept for the enrollment logic to act
//! on once the half has returned.
//!
//! Limits are the host's: a receive that waits longer than the configured
//! timeout answers `timeout`, a message over [`MAX_MESSAGE`] bytes ends
//! the half that sent it with [`HalfError::MessageTooLarge`], and a half
//! that has sent [`MAX_SENDS`] messages and items in one enrollment is
//! refused more with `budget-exhausted` (each send costs the peer work).

use std::time::Duration;

use crate::bindings::Refusal;
use crate::bindings::device::iot_enroll::enrollment::transport::Host;
use crate::frame::Frame;
use crate::handover::HandoverItem;
use crate::link::{Link, LinkFailure, MAX_MESSAGE};
use crate::sandbox::{HalfError, HalfErrorBox, HalfKind};
use crate::trace::{HalfTrace, TraceKind};

/// Most messages and hand-over items one half may send in one enrollment;
/// the reference apps send fewer than 20.
pub const MAX_SENDS: u32 = 512;

/// One half's end of the link.
pub struct TransportEnd {
    link: Link,
    half: HalfKind,
    receive_timeout: Duration,
    /// A message or item received and not yet taken.
    head: Option<Frame>,
    /// The frame that ended the conversation, if it was not a message or item.
    control: Option<Frame>,
    /// The link failure that ended it, if any.
    failure: Option<LinkFailure>,
    /// Whether the last receive timed out.
    timed_out: bool,
    trace: HalfTrace,
    /// Messages and items sent and received, for reports.
    pub sent: u32,
    pub received: u32,
}

impl TransportEnd {
    pub fn new(link: Link, half: HalfKind, receive_timeout: Duration, trace: HalfTrace) -> Self {
        Self {
            link,
            half,
            receive_timeout,
            head: None,
            control: None,
            failure: None,
            timed_out: false,
            trace,
            sent: 0,
            received: 0,
        }
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

    /// The trace this half records into.
    pub fn trace(&self) -> &HalfTrace {
        &self.trace
    }

    fn ended(&self) -> bool {
        self.control.is_some() || self.failure.is_some()
    }

    /// Sends one hand-over item.
    pub async fn send_item(&mut self, item: HandoverItem) -> Result<(), Refusal> {
        let what = item.describe();
        self.send_frame(Frame::Item(item)).await?;
        self.trace.record(TraceKind::Sent, || what);
        Ok(())
    }

    async fn send_frame(&mut self, frame: Frame) -> Result<(), Refusal> {
        if self.ended() {
            return Err(Refusal::Closed);
        }
        if self.sent >= MAX_SENDS {
            self.trace.record(TraceKind::Refused, || format!("send: the budget of {MAX_SENDS} sends is spent"));
            return Err(Refusal::BudgetExhausted);
        }
        match self.link.tx.send(frame).await {
            Ok(()) => {
                self.sent += 1;
                Ok(())
            }
            Err(failure) => {
                self.failure = Some(failure);
                Err(Refusal::Closed)
            }
        }
    }

    /// Waits until a message or an item is at the head of the stream.
    async fn fill_head(&mut self) -> Result<(), Refusal> {
        if self.head.is_some() {
            return Ok(());
        }
        if self.ended() {
            return Err(Refusal::Closed);
        }
        self.timed_out = false;
        match self.link.rx.recv_within(self.receive_timeout).await {
            Ok(frame @ (Frame::Message(_) | Frame::Item(_))) => {
                self.head = Some(frame);
                Ok(())
            }
            Ok(other) => {
                self.control = Some(other);
                Err(Refusal::Closed)
            }
            Err(LinkFailure::Timeout(_)) => {
                self.timed_out = true;
                Err(Refusal::Timeout)
            }
            Err(failure) => {
                self.failure = Some(failure);
                Err(Refusal::Closed)
            }
        }
    }

    /// Takes the next hand-over item; `out-of-order` if a message is next.
    pub async fn next_item(&mut self) -> Result<HandoverItem, Refusal> {
        self.fill_head().await?;
        match self.head.take() {
            Some(Frame::Item(item)) => {
                self.received += 1;
                self.trace.record(TraceKind::Received, || item.describe());
                Ok(item)
            }
            other => {
                self.head = other;
                self.trace.record(TraceKind::Refused, || "take: a transport message is next, not an item".into());
                Err(Refusal::OutOfOrder)
            }
        }
    }

    /// Takes the next message; `out-of-order` if an item is next.
    async fn next_message(&mut self) -> Result<Vec<u8>, Refusal> {
        self.fill_head().await?;
        match self.head.take() {
            Some(Frame::Message(message)) => {
                self.received += 1;
                self.trace.record(TraceKind::Received, || format!("message ({} bytes)", message.len()));
                Ok(message)
            }
            other => {
                let what = match &other {
                    Some(Frame::Item(item)) => item.describe(),
                    _ => "something else".into(),
                };
                self.head = other;
                self.trace.record(TraceKind::Refused, || format!("receive: the next frame is an item ({what})"));
                Err(Refusal::OutOfOrder)
            }
        }
    }
}

impl Host for TransportEnd {
    async fn send(&mut self, message: Vec<u8>) -> wasmtime::Result<Result<(), Refusal>> {
        if message.len() > MAX_MESSAGE {
            return Err(wasmtime::Error::new(HalfErrorBox(HalfError::MessageTooLarge {
                half: self.half.to_string(),
                size: message.len() as u64,
                max: MAX_MESSAGE as u64,
            })));
        }
        let size = message.len();
        let sent = self.send_frame(Frame::Message(message)).await;
        if sent.is_ok() {
            self.trace.record(TraceKind::Sent, || format!("message ({size} bytes)"));
        }
        Ok(sent)
    }

    async fn receive(&mut self) -> wasmtime::Result<Result<Vec<u8>, Refusal>> {
        Ok(self.next_message().await)
    }
}
