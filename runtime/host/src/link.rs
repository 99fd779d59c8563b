//! The local link between the assisting phone or gateway and the device.
//!
//! On a real installation this is a local radio link (Bluetooth LE, Wi-Fi
//! soft-AP, a Zigbee commissioning channel); here it is either an in-process
//! channel pair or a TCP connection to a `device-agent`. Both carry the same
//! [`Frame`]s, so the enrollment logic in the assistant and device runtimes cannot tell them
//! apart.
//!
//! The frames themselves are in [`crate::frame`].
//!
//! On TCP a frame is a 4-byte big-endian length followed by the frame in CBOR.
//! The length is checked before anything is read into memory, so a peer cannot
//! make the other side allocate more than [`MAX_FRAME`] bytes.
//!
//! Every wait on a link is bounded, whatever the caller asks for. A send
//! waits at most the link's send limit (a peer that stops reading cannot
//! hold a sender; default [`DEFAULT_SEND_WAIT`]). Once a session has set the
//! end of the session ([`Link::end_session_at`]), no send or receive waits
//! past it: a peer that trickles frames to keep resetting someone's timer
//! still loses the link when the session is over.

use std::time::Duration;

use tokio::time::Instant;

use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

use crate::frame::Frame;

/// Largest frame on the link: a device half plus headroom.
pub const MAX_FRAME: usize = 256 * 1024;

/// Largest message one half may send to the other.
pub const MAX_MESSAGE: usize = 4096;

/// How long a send waits for the peer to take a frame, unless the session
/// sets another limit ([`Link::end_session_at`]).
pub const DEFAULT_SEND_WAIT: Duration = Duration::from_secs(5);

/// How long the last word of a session (`Abort`, `Failed`) may wait, even
/// after the session is over: long enough for a peer that is still
/// reading, too short to hold anyone.
pub const LAST_WORD_WAIT: Duration = Duration::from_secs(1);

/// Why a frame could not be sent or received.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkFailure {
    #[error("the link is closed")]
    Closed,
    #[error("no frame within {0:?}")]
    Timeout(Duration),
    #[error("the peer took no frame within {0:?} (it stopped reading)")]
    SendStalled(Duration),
    #[error("the session's time ({0:?} in all) is over")]
    SessionOver(Duration),
    #[error("link I/O error: {0}")]
    Io(String),
    #[error("malformed frame: {0}")]
    Malformed(String),
    #[error("unexpected frame: expected {expected}, got {got}")]
    Unexpected { expected: &'static str, got: String },
}

/// When waits on one end of a link must end.
#[derive(Debug, Clone, Copy)]
struct Bounds {
    /// Longest wait of one send.
    send_wait: Duration,
    /// The end of the session, and how long the session was, if one is set.
    session_end: Option<(Instant, Duration)>,
}

impl Default for Bounds {
    fn default() -> Self {
        Self { send_wait: DEFAULT_SEND_WAIT, session_end: None }
    }
}

impl Bounds {
    /// The earlier of `wanted` and the end of the session, and the failure
    /// to report if that moment passes.
    fn cut(&self, wanted: Instant, failure: LinkFailure) -> (Instant, LinkFailure) {
        match self.session_end {
            Some((end, length)) if end <= wanted => (end, LinkFailure::SessionOver(length)),
            _ => (wanted, failure),
        }
    }
}

enum Tx {
    Memory(mpsc::Sender<Frame>),
    Tcp(FramedWrite<OwnedWriteHalf, LengthDelimitedCodec>),
}

enum Rx {
    Memory(mpsc::Receiver<Frame>),
    Tcp(FramedRead<OwnedReadHalf, LengthDelimitedCodec>),
}

/// Sending side of a link.
pub struct LinkTx {
    inner: Tx,
    bounds: Bounds,
}

/// Receiving side of a link.
pub struct LinkRx {
    inner: Rx,
    bounds: Bounds,
}

/// Both sides of one end of a link.
pub struct Link {
    pub tx: LinkTx,
    pub rx: LinkRx,
}

impl Link {
    /// Two connected in-process ends.
    pub fn memory_pair() -> (Link, Link) {
        let (a_tx, b_rx) = mpsc::channel(16);
        let (b_tx, a_rx) = mpsc::channel(16);
        (Link::new(Tx::Memory(a_tx), Rx::Memory(a_rx)), Link::new(Tx::Memory(b_tx), Rx::Memory(b_rx)))
    }

    /// One end over a TCP connection.
    pub fn tcp(stream: TcpStream) -> Link {
        let _ = stream.set_nodelay(true);
        let (r, w) = stream.into_split();
        let codec = || LengthDelimitedCodec::builder().max_frame_length(MAX_FRAME).new_codec();
        Link::new(Tx::Tcp(FramedWrite::new(w, codec())), Rx::Tcp(FramedRead::new(r, codec())))
    }

    fn new(tx: Tx, rx: Rx) -> Link {
        Link { tx: LinkTx { inner: tx, bounds: Bounds::default() }, rx: LinkRx { inner: rx, bounds: Bounds::default() } }
    }

    /// Bounds every wait on this end from now on: a send by `send_wait`, and
    /// every send and receive by the end of the session, `length` from now.
    /// Returns the end of the session.
    pub fn end_session_at(&mut self, length: Duration, send_wait: Duration) -> Instant {
        let end = Instant::now() + length;
        let bounds = Bounds { send_wait, session_end: Some((end, length)) };
        self.tx.bounds = bounds;
        self.rx.bounds = bounds;
        end
    }
}

impl LinkTx {
    /// Sends one frame, waiting at most the link's send limit and never past
    /// the end of the session.
    pub async fn send(&mut self, frame: Frame) -> Result<(), LinkFailure> {
        let wait = self.bounds.send_wait;
        let (until, failure) = self.bounds.cut(Instant::now() + wait, LinkFailure::SendStalled(wait));
        self.send_until(frame, until, failure).await
    }

    /// Sends the last word of a session (`Abort`, `Failed`): waits at most
    /// [`LAST_WORD_WAIT`], even once the session is over.
    pub async fn send_last_word(&mut self, frame: Frame) -> Result<(), LinkFailure> {
        let wait = LAST_WORD_WAIT.min(self.bounds.send_wait);
        self.send_until(frame, Instant::now() + wait, LinkFailure::SendStalled(wait)).await
    }

    async fn send_until(&mut self, frame: Frame, until: Instant, failure: LinkFailure) -> Result<(), LinkFailure> {
        if Instant::now() >= until {
            return Err(failure);
        }
        let send = async {
            match &mut self.inner {
                Tx::Memory(tx) => tx.send(frame).await.map_err(|_| LinkFailure::Closed),
                Tx::Tcp(w) => {
                    let mut buf = Vec::new();
                    ciborium::into_writer(&frame, &mut buf).map_err(|e| LinkFailure::Malformed(e.to_string()))?;
                    w.send(bytes::Bytes::from(buf)).await.map_err(|e: std::io::Error| LinkFailure::Io(e.to_string()))
                }
            }
        };
        tokio::time::timeout_at(until, send).await.map_err(|_| failure)?
    }
}

impl LinkRx {
    /// Receives the next frame; `Closed` once the peer has gone. Waits no
    /// longer than the end of the session, if one is set.
    pub async fn recv(&mut self) -> Result<Frame, LinkFailure> {
        match self.bounds.session_end {
            Some((end, length)) => self.recv_until(end, LinkFailure::SessionOver(length)).await,
            None => self.recv_frame().await,
        }
    }

    /// Receives the next frame or gives up after `timeout` (or at the end of
    /// the session, whichever comes first).
    pub async fn recv_within(&mut self, timeout: Duration) -> Result<Frame, LinkFailure> {
        self.recv_before(Instant::now() + timeout, timeout).await
    }

    /// Receives the next frame or gives up at `deadline`, a moment fixed by
    /// the caller for a whole phase: frames the caller skips do not move it.
    /// `Timeout` reports `allowed`, the length of the phase.
    pub async fn recv_before(&mut self, deadline: Instant, allowed: Duration) -> Result<Frame, LinkFailure> {
        let (until, failure) = self.bounds.cut(deadline, LinkFailure::Timeout(allowed));
        self.recv_until(until, failure).await
    }

    async fn recv_until(&mut self, until: Instant, failure: LinkFailure) -> Result<Frame, LinkFailure> {
        if Instant::now() >= until {
            return Err(failure);
        }
        tokio::time::timeout_at(until, self.recv_frame()).await.map_err(|_| failure)?
    }

    async fn recv_frame(&mut self) -> Result<Frame, LinkFailure> {
        match &mut self.inner {
            Rx::Memory(rx) => rx.recv().await.ok_or(LinkFailure::Closed),
            Rx::Tcp(r) => match r.next().await {
                None => Err(LinkFailure::Closed),
                Some(Err(e)) => Err(LinkFailure::Io(e.to_string())),
                Some(Ok(bytes)) => {
                    ciborium::from_reader(&bytes[..]).map_err(|e| LinkFailure::Malformed(e.to_string()))
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::{FailureCode, WireFailure};
    use crate::frame::{Enrolled, Hello, PROTOCOL_VERSION, Start, rebind_message};

    fn sample_frames() -> Vec<Frame> {
        vec![
            Frame::Hello(Hello {
                protocol: PROTOCOL_VERSION,
                device_id: vec![0xAC, 0xDE, 0x48, 0, 0, 0x80],
                access: "wifi".into(),
                sealed: false,
                nonce: [7; 32],
            }),
            Frame::Start(Start { payload: vec![0xD2, 0x84], assistant_key: [1; 32], rebind: None }),
            Frame::Message(vec![b'N', 1, 2, 3]),
            Frame::Close,
            Frame::ReadyToCommit(Enrolled { sp_bound_id: "sp.example/wifi/AC-DE-48-00-00-80".into(), public_key: [2; 32] }),
            Frame::Commit,
            Frame::Abort(WireFailure::new(FailureCode::LabelRefused, "because")),
            Frame::Failed(WireFailure::code(FailureCode::Sealed)),
        ]
    }

    #[tokio::test]
    async fn frames_cross_tcp_unchanged() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::spawn(async move { Link::tcp(TcpStream::connect(addr).await.unwrap()) });
        let (server, _) = listener.accept().await.unwrap();
        let mut server = Link::tcp(server);
        let mut client = client.await.unwrap();
        for frame in sample_frames() {
            client.tx.send(frame.clone()).await.unwrap();
            assert_eq!(server.rx.recv().await.unwrap(), frame);
        }
        drop(client);
        assert_eq!(server.rx.recv().await, Err(LinkFailure::Closed));
    }

    #[tokio::test]
    async fn oversized_tcp_frame_is_refused_before_it_is_read() {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let writer = tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(&((MAX_FRAME as u32) + 1).to_be_bytes()).await.unwrap();
            s
        });
        let (server, _) = listener.accept().await.unwrap();
        let mut server = Link::tcp(server);
        let _keep = writer.await.unwrap();
        assert!(matches!(server.rx.recv().await, Err(LinkFailure::Io(_))));
    }

    #[tokio::test]
    async fn garbage_is_a_malformed_frame() {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let writer = tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(&[0, 0, 0, 3, 0xff, 0xff, 0xff]).await.unwrap();
            s
        });
        let (server, _) = listener.accept().await.unwrap();
        let mut server = Link::tcp(server);
        let _keep = writer.await.unwrap();
        assert!(matches!(server.rx.recv().await, Err(LinkFailure::Malformed(_))));
    }

    #[tokio::test(start_paused = true)]
    async fn a_send_to_a_peer_that_stops_reading_gives_up() {
        let (mut a, _b) = Link::memory_pair();
        let mut sent = 0;
        let failure = loop {
            match a.tx.send(Frame::Close).await {
                Ok(()) => sent += 1,
                Err(failure) => break failure,
            }
        };
        assert_eq!(sent, 16, "the channel's capacity, then the peer is not reading");
        assert_eq!(failure, LinkFailure::SendStalled(DEFAULT_SEND_WAIT));
        // The last word waits less, and is bounded too.
        assert_eq!(a.tx.send_last_word(Frame::Close).await, Err(LinkFailure::SendStalled(LAST_WORD_WAIT)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_trickles_frames_loses_the_link_at_the_end_of_the_session() {
        let (mut device, mut peer) = Link::memory_pair();
        let session = Duration::from_secs(30);
        let end = device.end_session_at(session, DEFAULT_SEND_WAIT);
        let trickle = tokio::spawn(async move {
            // One stray frame a second, for ever (well: until the test ends).
            while peer.tx.send(Frame::Close).await.is_ok() {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        // A caller that skips stray frames and waits 5 s for the one it
        // wants would never time out; the session still ends.
        let failure = loop {
            match device.rx.recv_within(Duration::from_secs(5)).await {
                Ok(_) => continue,
                Err(failure) => break failure,
            }
        };
        assert_eq!(failure, LinkFailure::SessionOver(session));
        assert!(Instant::now() >= end);
        assert_eq!(device.tx.send(Frame::Commit).await, Err(LinkFailure::SessionOver(session)));
        trickle.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_phase_deadline_is_not_moved_by_skipped_frames() {
        let (mut device, mut peer) = Link::memory_pair();
        tokio::spawn(async move {
            while peer.tx.send(Frame::Close).await.is_ok() {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
        let phase = Duration::from_secs(2);
        let deadline = Instant::now() + phase;
        let mut skipped = 0;
        let failure = loop {
            match device.rx.recv_before(deadline, phase).await {
                Ok(_) => skipped += 1,
                Err(failure) => break failure,
            }
        };
        assert_eq!(failure, LinkFailure::Timeout(phase));
        assert!((3..=5).contains(&skipped), "{skipped} frames skipped in a 2 s phase");
    }

    #[test]
    fn rebind_message_binds_device_and_nonce() {
        let a = rebind_message(&[1, 2, 3, 4, 5, 6], &[0; 32]);
        assert_ne!(a, rebind_message(&[1, 2, 3, 4, 5, 7], &[0; 32]));
        assert_ne!(a, rebind_message(&[1, 2, 3, 4, 5, 6], &[1; 32]));
    }
}
