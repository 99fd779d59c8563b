//! A frame-aware proxy on the local link, between a gateway and a device
//! agent, that loses exactly the frame a test asks it to: the device's
//! `Committed` (the device enrolled, the gateway does not know) or the
//! gateway's `Commit` (the device never enrolls). Everything else is
//! forwarded frame by frame, unchanged.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use enrollment_host::frame::Frame;
use enrollment_host::link::Link;
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does with the next connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyMode {
    /// Forward everything.
    Pass,
    /// Forward until the device answers `Committed`; drop it and both
    /// connections, then behave as `then`.
    LoseCommitted { then: AfterLoss },
    /// Forward until the gateway sends `Commit`; drop it and both
    /// connections, then behave as `then`.
    LoseCommit { then: AfterLoss },
    /// Accept and close at once (the device looks gone).
    Refuse,
}

/// How the proxy behaves after it lost a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterLoss {
    Pass,
    Refuse,
}

/// A running proxy: gateway → `addr` → `device`.
pub struct LinkProxy {
    pub addr: SocketAddr,
    mode: Arc<Mutex<ProxyMode>>,
    task: tokio::task::JoinHandle<()>,
}

impl LinkProxy {
    /// Starts a proxy on a free loopback port in front of `device`.
    pub async fn start(device: SocketAddr, mode: ProxyMode) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let mode = Arc::new(Mutex::new(mode));
        let shared = mode.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let current = *shared.lock().unwrap_or_else(|p| p.into_inner());
                tokio::spawn(serve(stream, device, current, shared.clone()));
            }
        });
        Ok(Self { addr, mode, task })
    }

    /// Changes what the next connections get.
    pub fn set(&self, mode: ProxyMode) {
        *self.mode.lock().unwrap_or_else(|p| p.into_inner()) = mode;
    }

    pub fn mode(&self) -> ProxyMode {
        *self.mode.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for LinkProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(gateway: TcpStream, device: SocketAddr, mode: ProxyMode, shared: Arc<Mutex<ProxyMode>>) {
    if mode == ProxyMode::Refuse {
        return;
    }
    let Ok(device) = TcpStream::connect(device).await else { return };
    let (mut gw, mut dev) = (Link::tcp(gateway), Link::tcp(device));
    let after = |then: AfterLoss| {
        *shared.lock().unwrap_or_else(|p| p.into_inner()) = match then {
            AfterLoss::Pass => ProxyMode::Pass,
            AfterLoss::Refuse => ProxyMode::Refuse,
        };
    };
    loop {
        tokio::select! {
            frame = dev.rx.recv() => {
                let Ok(frame) = frame else { return };
                if let (ProxyMode::LoseCommitted { then }, Frame::Committed { .. }) = (mode, &frame) {
                    after(then);
                    return;
                }
                if gw.tx.send(frame).await.is_err() { return }
            }
            frame = gw.rx.recv() => {
                let Ok(frame) = frame else { return };
                if let (ProxyMode::LoseCommit { then }, Frame::Commit) = (mode, &frame) {
                    after(then);
                    return;
                }
                if dev.tx.send(frame).await.is_err() { return }
            }
        }
    }
}
