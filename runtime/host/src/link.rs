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

use std::time::Duration;

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

/// Why a frame could not be sent or received.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkFailure {
    #[error("the link is closed")]
    Closed,
    #[error("no frame within {0:?}")]
    Timeout(Duration),
    #[error("link I/O error: {0}")]
    Io(String),
    #[error("malformed frame: {0}")]
    Malformed(String),
    #[error("unexpected frame: expected {expected}, got {got}")]
    Unexpected { expected: &'static str, got: String },
}

/// Sending side of a link.
pub enum LinkTx {
    Memory(mpsc::Sender<Frame>),
    Tcp(FramedWrite<OwnedWriteHalf, LengthDelimitedCodec>),
}

/// Receiving side of a link.
pub enum LinkRx {
    Memory(mpsc::Receiver<Frame>),
    Tcp(FramedRead<OwnedReadHalf, LengthDelimitedCodec>),
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
        (
            Link { tx: LinkTx::Memory(a_tx), rx: LinkRx::Memory(a_rx) },
            Link { tx: LinkTx::Memory(b_tx), rx: LinkRx::Memory(b_rx) },
        )
    }

    /// One end over a TCP connection.
    pub fn tcp(stream: TcpStream) -> Link {
        let _ = stream.set_nodelay(true);
        let (r, w) = stream.into_split();
        let codec = || LengthDelimitedCodec::builder().max_frame_length(MAX_FRAME).new_codec();
        Link { tx: LinkTx::Tcp(FramedWrite::new(w, codec())), rx: LinkRx::Tcp(FramedRead::new(r, codec())) }
    }
}

impl LinkTx {
    /// Sends one frame.
    pub async fn send(&mut self, frame: Frame) -> Result<(), LinkFailure> {
        match self {
            LinkTx::Memory(tx) => tx.send(frame).await.map_err(|_| LinkFailure::Closed),
            LinkTx::Tcp(w) => {
                let mut buf = Vec::new();
                ciborium::into_writer(&frame, &mut buf).map_err(|e| LinkFailure::Malformed(e.to_string()))?;
                w.send(bytes::Bytes::from(buf)).await.map_err(|e: std::io::Error| LinkFailure::Io(e.to_string()))
            }
        }
    }
}

impl LinkRx {
    /// Receives the next frame; `Closed` once the peer has gone.
    pub async fn recv(&mut self) -> Result<Frame, LinkFailure> {
        match self {
            LinkRx::Memory(rx) => rx.recv().await.ok_or(LinkFailure::Closed),
            LinkRx::Tcp(r) => match r.next().await {
                None => Err(LinkFailure::Closed),
                Some(Err(e)) => Err(LinkFailure::Io(e.to_string())),
                Some(Ok(bytes)) => {
                    ciborium::from_reader(&bytes[..]).map_err(|e| LinkFailure::Malformed(e.to_string()))
                }
            },
        }
    }

    /// Receives the next frame or gives up after `timeout`.
    pub async fn recv_within(&mut self, timeout: Duration) -> Result<Frame, LinkFailure> {
        tokio::time::timeout(timeout, self.recv()).await.map_err(|_| LinkFailure::Timeout(timeout))?
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

    #[test]
    fn rebind_message_binds_device_and_nonce() {
        let a = rebind_message(&[1, 2, 3, 4, 5, 6], &[0; 32]);
        assert_ne!(a, rebind_message(&[1, 2, 3, 4, 5, 7], &[0; 32]));
        assert_ne!(a, rebind_message(&[1, 2, 3, 4, 5, 6], &[1; 32]));
    }
}
