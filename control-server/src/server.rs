//! Serving the routes on a listener with a [`ServerState`].
//!
//! Connections are served by `control_api::http_server`: at most
//! [`Limits::max_connections`] are open at once (at the cap the server stops
//! accepting until one closes), and a connection that sends no complete
//! request head within [`Limits::header_read_timeout_ms`] (a fresh one, or an
//! idle keep-alive one) is closed. Time per request is bounded in
//! [`crate::api`].
//!
//! [`Limits::max_connections`]: crate::limits::Limits::max_connections
//! [`Limits::header_read_timeout_ms`]: crate::limits::Limits::header_read_timeout_ms

use std::net::SocketAddr;

use control_api::http_server::{ServeLimits, serve};
use tokio::net::TcpListener;

use crate::state::{ServerState, StartError};

/// A server running on a background task.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub state: ServerState,
    task: tokio::task::JoinHandle<()>,
    /// The change-notice listener (PostgreSQL) and the outbox safety sweep.
    background: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningServer {
    /// Stops accepting and closes every open connection (streams are cut).
    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
        for task in self.background {
            task.abort();
            let _ = task.await;
        }
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
    let bounds = ServeLimits { max_connections, header_read_timeout: limits.header_read_timeout() };
    crate::admin::http::announce(&state).await;
    // Follows changes made by the CLI or other replicas; stops with the server.
    let follower = crate::admin::follow::start(state.store.clone(), state.mapping.clone()).await;
    let task = tokio::spawn(async move {
        let _follower = follower;
        serve(listener, router, bounds, std::future::pending()).await
    });
    let mut background = vec![crate::replicas::spawn_sweeper(
        state.store.clone(),
        state.notifier.clone(),
        std::time::Duration::from_millis(state.config.push.safety_poll_ms),
    )];
    if let crate::store::Store::Postgres(pool) = &state.store {
        background.push(crate::replicas::spawn_listener(pool.clone(), state.notifier.clone(), state.mapping.clone()));
    }
    Ok(RunningServer { addr, state, task, background })
}
