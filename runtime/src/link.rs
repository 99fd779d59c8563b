//! The local link between the assisting phone or gateway and the device.
//!
//! On a real installation this is a local radio link (Bluetooth LE, Wi-Fi
//! soft-AP, a Zigbee commissioning channel); here it is either an in-process
//! channel pair or a TCP connection to a `device-agent`. Both carry the same
//! [`Frame`]s, so the enrollment logic in [`crate::enroll`] cannot tell them
//! apart.
//!
//! On TCP a frame is a 4-byte big-endian length followed by the frame in CBOR.
//! The length is checked before anything is read into memory, so a peer cannot
//! make the other side allocate more than [`MAX_FRAME`] bytes.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

use crate::sandbox::HalfError;

/// Version of the link protocol; a peer that speaks another is refused.
pub const PROTOCOL_VERSION: u16 = 1;

/// Largest frame on the link: a device half plus headroom.
pub const MAX_FRAME: usize = 256 * 1024;

/// Largest message one half may send to the other.
pub const MAX_MESSAGE: usize = 4096;

/// Everything that crosses the link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Frame {
    /// Device → assistant, first frame: who the device is and a fresh nonce
    /// that an authorized re-bind must sign.
    Hello(Hello),
    /// Assistant → device: the signed app (the device takes its half out of
    /// it after verifying it), and who is asking.
    Start(Start),
    /// Either way: one transport message between the halves.
    Message(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Assistant → device: the phone half has finished.
    Close,
    /// Device → assistant: the device half finished and staged this; nothing
    /// is written until the assistant says [`Frame::Commit`].
    ReadyToCommit(Enrolled),
    /// Assistant → device: the identity has been relayed; make it durable.
    Commit,
    /// Assistant → device: discard everything staged.
    Abort { reason: String },
    /// Device → assistant: written durably and sealed.
    Committed { enrolled: Enrolled, generation: u64 },
    /// Device → assistant: the enrollment failed; the device is unchanged.
    Failed(DeviceFailure),
    /// Assistant → device, instead of [`Frame::Start`]: move this enrolled
    /// device to another service provider (only the SP part of its
    /// identifier changes; see [`crate::rebind`]).
    RebindSp(RebindSp),
    /// Device → assistant: the re-bind is durable.
    Rebound { sp_bound_id: String, generation: u64 },
}

/// An authenticated request to change an enrolled device's service provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebindSp {
    /// The new SP identity, in its text form.
    pub sp: String,
    /// The assistant's Ed25519 public key (must be the one that enrolled the device).
    pub assistant_key: [u8; 32],
    /// Signature over [`rebind_sp_message`] for this connection's nonce.
    pub signature: Signature,
}

/// The device's greeting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol: u16,
    /// Manufacturer device id, raw EUI-48/EUI-64 bytes.
    #[serde(with = "serde_bytes")]
    pub device_id: Vec<u8>,
    /// Access technology, in its text form.
    pub access: String,
    /// Whether the device is already enrolled and sealed.
    pub sealed: bool,
    /// Fresh random bytes for this connection.
    pub nonce: [u8; 32],
}

/// The assistant's request to enroll.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Start {
    /// The signed payload from the label (COSE_Sign1 bytes), unchanged: the
    /// device verifies it itself and runs the device half in it.
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
    /// The assistant's Ed25519 public key; recorded by the device as the
    /// assistant it enrolled with.
    pub assistant_key: [u8; 32],
    /// For a sealed device: the assistant's signature over
    /// [`rebind_message`], proving it is the assistant the device enrolled with.
    pub rebind: Option<Signature>,
}

/// An Ed25519 signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature(#[serde(with = "serde_bytes")] pub Vec<u8>);

/// What the device half produced: its SP-bound identifier and public key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrolled {
    pub sp_bound_id: String,
    pub public_key: [u8; 32],
}

/// Why the device refused or failed an enrollment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum DeviceFailure {
    #[error("the device is sealed; a re-bind needs the authorization of the assistant it enrolled with")]
    Sealed,
    #[error("the re-bind authorization does not verify")]
    BadRebindAuthorization,
    #[error("the device refuses the app: {0}")]
    Untrusted(String),
    #[error("the app is not for this device: {0}")]
    NotForThisDevice(String),
    #[error("{0}")]
    Half(HalfError),
    #[error("the device half returned without {0}")]
    Incomplete(String),
    #[error("another enrollment of this device committed first")]
    Conflict,
    #[error("the device could not store the enrollment: {0}")]
    Store(String),
    #[error("the enrollment was aborted by the assistant: {0}")]
    Aborted(String),
    #[error("link protocol error: {0}")]
    Protocol(String),
}

/// The bytes an assistant signs to authorize re-binding a sealed device:
/// bound to this device and this connection's nonce, so it cannot be replayed.
pub fn rebind_message(device_id: &[u8], nonce: &[u8; 32]) -> Vec<u8> {
    let mut m = b"iot-enroll/rebind/v1\0".to_vec();
    m.extend_from_slice(&(device_id.len() as u16).to_be_bytes());
    m.extend_from_slice(device_id);
    m.extend_from_slice(nonce);
    m
}

/// The bytes an assistant signs to move a device to service provider `sp`:
/// bound to the device, the connection's nonce and the new SP.
pub fn rebind_sp_message(device_id: &[u8], nonce: &[u8; 32], sp: &str) -> Vec<u8> {
    let mut m = b"iot-enroll/rebind-sp/v1\0".to_vec();
    m.extend_from_slice(&(device_id.len() as u16).to_be_bytes());
    m.extend_from_slice(device_id);
    m.extend_from_slice(nonce);
    m.extend_from_slice(sp.as_bytes());
    m
}

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

/// A short name of a frame, for errors.
pub fn frame_name(frame: &Frame) -> String {
    match frame {
        Frame::Hello(_) => "Hello".into(),
        Frame::Start(_) => "Start".into(),
        Frame::Message(m) => format!("Message({} bytes)", m.len()),
        Frame::Close => "Close".into(),
        Frame::ReadyToCommit(_) => "ReadyToCommit".into(),
        Frame::Commit => "Commit".into(),
        Frame::Abort { .. } => "Abort".into(),
        Frame::Committed { .. } => "Committed".into(),
        Frame::Failed(f) => format!("Failed({f})"),
        Frame::RebindSp(_) => "RebindSp".into(),
        Frame::Rebound { .. } => "Rebound".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            Frame::Abort { reason: "because".into() },
            Frame::Failed(DeviceFailure::Sealed),
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
