//! Starting the HTTP server on a listener with a [`ServerState`].

use std::net::SocketAddr;

use crate::state::{ServerState, StartError};

/// A server running on a background task.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub state: ServerState,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningServer {
    /// Stops accepting, lets open requests finish (streams are cut).
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task.abort();
        let _ = self.task.await;
    }
}

/// Serves the API on `listen` (port 0: any free port; see `addr`).
pub async fn start(state: ServerState, listen: SocketAddr) -> Result<RunningServer, StartError> {
    let listener =
        tokio::net::TcpListener::bind(listen).await.map_err(|source| StartError::Listen { addr: listen, source })?;
    let addr = listener.local_addr().map_err(|source| StartError::Listen { addr: listen, source })?;
    let router = crate::api::router(state.clone());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await
    });
    Ok(RunningServer { addr, state, shutdown: Some(tx), task })
}
