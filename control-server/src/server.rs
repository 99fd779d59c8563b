//! Serving the routes on a listener with a [`ServerState`].
//!
//! Connections are served with hyper directly (not `axum::serve`) so that the
//! server, not its peers, decides how long a connection may hold a file
//! descriptor: at most [`Limits::max_connections`] are open at once (at the
//! cap the server stops accepting until one closes), and a connection that
//! sends no complete request head within [`Limits::header_read_timeout_ms`]
//! (a fresh one, or an idle keep-alive one) is closed. Only HTTP/1.1 is
//! served (what gateways and SPs speak); time per request is bounded in
//! [`crate::api`].
//!
//! [`Limits::max_connections`]: crate::limits::Limits::max_connections
//! [`Limits::header_read_timeout_ms`]: crate::limits::Limits::header_read_timeout_ms

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::state::{ServerState, StartError};

/// Pause after an accept error that is not about one connection (out of
/// file descriptors): accepting again at once would spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// A server running on a background task.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub state: ServerState,
    task: tokio::task::JoinHandle<()>,
}

impl RunningServer {
    /// Stops accepting and closes every open connection (streams are cut).
    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// Serves the API on `listen` (port 0: any free port; see `addr`).
pub async fn start(state: ServerState, listen: SocketAddr) -> Result<RunningServer, StartError> {
    let listener = TcpListener::bind(listen).await.map_err(|source| StartError::Listen { addr: listen, source })?;
    let addr = listener.local_addr().map_err(|source| StartError::Listen { addr: listen, source })?;
    let router = crate::api::router(state.clone());
    let limits = state.config.limits.clone();
    let max_connections = limits.effective_max_connections();
    if max_connections < limits.max_connections {
        tracing::warn!(
            configured = limits.max_connections,
            effective = max_connections,
            "limits.max_connections lowered to stay below the open-file limit"
        );
    }
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout());
    let task = tokio::spawn(accept_loop(listener, router, http, max_connections));
    Ok(RunningServer { addr, state, task })
}

/// Accepts while a connection permit is free; each connection holds its
/// permit until it closes. Dropping this future (on stop) aborts every
/// connection task.
async fn accept_loop(
    listener: TcpListener,
    router: axum::Router,
    http: hyper::server::conn::http1::Builder,
    max_connections: usize,
) {
    let permits = Arc::new(Semaphore::new(max_connections));
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let Ok(permit) = permits.clone().acquire_owned().await else { return };
        let stream = match listener.accept().await {
            Ok((stream, _peer)) => stream,
            Err(e) if is_per_connection(&e) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "accepting a connection failed; pausing");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let connection = http.serve_connection(TokioIo::new(stream), service);
        connections.spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
}

/// Accept errors that concern only the connection being accepted.
fn is_per_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted)
}
