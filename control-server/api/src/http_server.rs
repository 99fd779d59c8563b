//! Serving an axum router on a listener with the bounds every HTTP service
//! of the product keeps (feature `http-server`): the control server's API
//! and the gateway's local API serve through [`serve`].
//!
//! Connections are served with hyper directly (not `axum::serve`) so that
//! the server, not its peers, decides how long a connection may hold a file
//! descriptor: at most [`ServeLimits::max_connections`] are open at once (at
//! the cap the server stops accepting until one closes), and a connection
//! that sends no complete request head within
//! [`ServeLimits::header_read_timeout`] (a fresh one, or an idle keep-alive
//! one) is closed. Only HTTP/1.1 is served. Time per request and body sizes
//! are the router's (its routes know their own).

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// Pause after an accept error that is not about one connection (out of
/// file descriptors): accepting again at once would spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// How many connections, and how long for a request head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeLimits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
}

/// Serves `router` on `listener` until the future is dropped (which closes
/// every open connection) or `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: ServeLimits,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    tokio::select! {
        () = accept_loop(listener, router, http, limits.max_connections.max(1)) => {}
        () = shutdown => {}
    }
}

/// Accepts while a connection permit is free; each connection holds its
/// permit until it closes. Dropping this future aborts every connection.
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
