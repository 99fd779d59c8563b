//! Guards on the bytes of the control server's update stream (SSE), before
//! they are parsed into events.
//!
//! The stream is an answer that never ends, so a bound on the whole answer
//! does not apply; two bounds do instead:
//!
//! * silence: the control server writes at least every
//!   [`control_api::gateway::STREAM_KEEP_ALIVE`] (an event or a keep-alive
//!   comment). Nothing for the configured idle timeout (default
//!   [`control_api::gateway::STREAM_IDLE_TIMEOUT`], three periods) means a
//!   dead connection (a half-open TCP connection, a stalled proxy): the
//!   stream ends with [`StreamGuardError::Idle`] and the gateway reconnects
//!   from its last applied update;
//! * size: one event (the bytes between two blank lines) of more than
//!   [`MAX_EVENT_BYTES`] ends the stream with
//!   [`StreamGuardError::EventTooLarge`] instead of being buffered.

use std::time::Duration;

use futures::{Stream, StreamExt};

/// Largest SSE event the gateway buffers (an association update is a few
/// hundred bytes).
pub const MAX_EVENT_BYTES: usize = 64 * 1024;

/// Why the guarded stream ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StreamGuardError {
    #[error("the update stream was silent for {after:?} (the server sends a keep-alive at least every {:?}); reconnecting", control_api::gateway::STREAM_KEEP_ALIVE)]
    Idle { after: Duration },
    #[error("an update-stream event is larger than {limit} bytes")]
    EventTooLarge { limit: usize },
    #[error("reading the update stream failed: {0}")]
    Read(String),
}

/// Counts the bytes of the event being received: lines end with CR, LF or
/// CRLF, and an empty line ends the event.
#[derive(Debug, Default)]
struct EventSize {
    event: usize,
    line: usize,
    after_cr: bool,
}

impl EventSize {
    fn feed(&mut self, bytes: &[u8], limit: usize) -> Result<(), StreamGuardError> {
        for &b in bytes {
            match b {
                b'\n' if self.after_cr => {}
                b'\r' | b'\n' => {
                    if self.line == 0 {
                        self.event = 0;
                    }
                    self.line = 0;
                }
                _ => {
                    self.line += 1;
                    self.event += 1;
                    if self.event > limit {
                        return Err(StreamGuardError::EventTooLarge { limit });
                    }
                }
            }
            self.after_cr = b == b'\r';
        }
        Ok(())
    }
}

/// `bytes` with both guards: an item within `idle` of the last one, and no
/// event longer than `max_event` bytes. After an error the stream ends.
pub fn guard<S, B, E>(bytes: S, idle: Duration, max_event: usize) -> impl Stream<Item = Result<B, StreamGuardError>>
where
    S: Stream<Item = Result<B, E>> + Send + 'static,
    B: AsRef<[u8]>,
    E: std::fmt::Display,
{
    let state = Some((Box::pin(bytes), EventSize::default()));
    futures::stream::unfold(state, move |state| async move {
        let (mut bytes, mut size) = state?;
        let item = match tokio::time::timeout(idle, bytes.next()).await {
            Err(_) => Err(StreamGuardError::Idle { after: idle }),
            Ok(None) => return None,
            Ok(Some(Err(e))) => Err(StreamGuardError::Read(e.to_string())),
            Ok(Some(Ok(chunk))) => size.feed(chunk.as_ref(), max_event).map(|()| chunk),
        };
        match item {
            Ok(chunk) => Some((Ok(chunk), Some((bytes, size)))),
            Err(e) => Some((Err(e), None)),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(parts: Vec<&'static [u8]>) -> impl Stream<Item = Result<&'static [u8], String>> + Send + 'static {
        futures::stream::iter(parts.into_iter().map(Ok))
    }

    #[tokio::test]
    async fn a_silent_stream_ends_with_idle() {
        let silent = futures::stream::pending::<Result<&'static [u8], String>>();
        let mut guarded = std::pin::pin!(guard(silent, Duration::from_millis(50), MAX_EVENT_BYTES));
        let first = tokio::time::timeout(Duration::from_secs(5), guarded.next()).await.expect("ended, not hanging");
        assert_eq!(first, Some(Err(StreamGuardError::Idle { after: Duration::from_millis(50) })));
        assert_eq!(guarded.next().await, None, "nothing after the error");
    }

    #[tokio::test]
    async fn events_are_bounded_between_blank_lines_only() {
        // Many small events in one chunk, with every line ending, pass.
        let many: &'static [u8] = b"id: 1\ndata: 0123456789\n\nid: 2\r\ndata: 0123456789\r\n\r\n: keep-alive\r\r";
        let ok: Vec<_> = guard(chunks(vec![many, many, many]), Duration::from_secs(5), 32).collect().await;
        assert!(ok.iter().all(Result::is_ok), "{ok:?}");
        // One event split over chunks and lines is counted whole.
        let split = chunks(vec![b"data: 0123456789\n", b"data: 0123456789\n", b"data: 0123456789\n"]);
        let out: Vec<_> = guard(split, Duration::from_secs(5), 32).collect().await;
        assert_eq!(out.last(), Some(&Err(StreamGuardError::EventTooLarge { limit: 32 })), "{out:?}");
        // A line that never ends.
        let endless = futures::stream::repeat(Ok::<_, String>(&[b'x'; 1024][..]));
        let out: Vec<_> = guard(endless, Duration::from_secs(5), MAX_EVENT_BYTES).collect().await;
        assert_eq!(out.len(), 65, "64 chunks, then the error");
        assert_eq!(out.last(), Some(&Err(StreamGuardError::EventTooLarge { limit: MAX_EVENT_BYTES })));
    }
}
