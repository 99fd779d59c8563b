//! The gateway's client of the control server.
//!
//! Two conversations (US 2017/0257341, claims 2–4 and 7): asking for the SP
//! identity of a device that appeared (`POST /v1/resolve`, with the gateway's
//! geo-location, subscription identity and service type), and following the
//! stream of unsolicited association updates (`GET /v1/updates?after=N`,
//! server-sent events, acknowledged with `POST /v1/updates/ack`). The gateway
//! authenticates both with its subscription identity and credential (HTTP
//! Basic).
//!
//! Every failure is a [`ControlError`] that says which: the server could not
//! be reached, refused this gateway, does not know the device, or its SP
//! refused it. A gateway never guesses an SP.
//!
//! **Catch-up in batches.** [`ControlServer::update_batches`] reads the
//! stream on a task of its own into a bounded queue, and hands the caller
//! everything queued (up to its batch size) at once: while the gateway
//! applies one batch (one transaction, one fsync) the next one fills, so a
//! gateway 100,000 updates behind applies them in about a hundred
//! transactions, not 100,000. Acknowledgements go through an
//! [`Acknowledger`], which sends only the latest applied position and never
//! holds up applying: an acknowledgement only lets the server prune, the
//! gateway resumes from its own stored position, so a lost one costs
//! nothing but a later prune.
//!
//! **Fail-over.** The client knows several replicas of the control server
//! (`base_url` first, the preferred one, then `fallback_urls`; all share one
//! database). Opening the stream, resolving and acknowledging start at the
//! replica last reached and move on to the next one when a replica cannot
//! be reached, so a killed replica costs one failed connection attempt. The
//! stream resumes from the gateway's stored position whatever replica
//! serves it: sequence numbers are per gateway in the shared database, so
//! nothing is missed or applied twice. While a stream is served by another
//! replica than the preferred one, it is ended after
//! `prefer_primary_after` (if set) and the next connection tries the
//! preferred replica first; [`ControlServer::prefer_primary`] does the same
//! for the next connection at once.
//!
//! What the server sends is bounded: HTTP redirects are not followed (an
//! answer `3xx` is [`ControlError::Redirected`]), an answer body is read up
//! to [`CONTROL_ANSWER_MAX`] bytes, and the update stream is guarded against
//! silence and oversized events ([`crate::update_stream`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use control_api::gateway::{
    ASSOCIATION_EVENT, AckRequest, AssociationEvent, ResolveRequest, ResolveResponse, STREAM_IDLE_TIMEOUT,
};
use control_api::http_client::{BodyError, read_body};
use control_api::{ErrorBody, ErrorCode, routes};
use eventsource_stream::Eventsource;
use futures::{Stream, StreamExt};
use sp_bound_id::{AccessTechnology, Eui, SpIdentity};
use tokio::sync::{mpsc, watch};

pub use control_api::gateway::Geo;

use crate::store::AssociationUpdate;
use crate::update_stream::{MAX_EVENT_BYTES, guard};

/// A resolve answer: the device's SP and what its devices need to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedSp {
    pub sp: SpIdentity,
    /// `None`: the SP was registered without one.
    pub endpoint: Option<String>,
    pub public_key: Option<[u8; 32]>,
}

/// Largest answer body read from the control server (a resolve answer or an
/// error body is a short JSON object).
pub const CONTROL_ANSWER_MAX: usize = 64 * 1024;

/// How the gateway reaches and identifies itself to the control server.
#[derive(Debug, Clone)]
pub struct ControlServerConfig {
    /// The preferred replica, e.g. `http://127.0.0.1:8080`.
    pub base_url: String,
    /// Further replicas (same database), tried in order after `base_url`.
    pub fallback_urls: Vec<String>,
    /// A stream served by another replica than `base_url` is ended after
    /// this long, and the next connection tries `base_url` first; `None`:
    /// stay on whichever replica answers until it fails.
    pub prefer_primary_after: Option<Duration>,
    /// The gateway's subscription identity.
    pub gateway_id: String,
    pub credential: String,
    /// Where the gateway is, sent with every resolve.
    pub geo: Option<Geo>,
    /// The service type the gateway asks for.
    pub service_type: Option<String>,
    /// Per-request timeout of resolve and ack calls.
    pub timeout: Duration,
    /// The update stream is taken as dead (and reconnected) after this long
    /// without a byte; default [`STREAM_IDLE_TIMEOUT`].
    pub stream_idle_timeout: Duration,
}

impl ControlServerConfig {
    /// A configuration with the default timeouts (5 s per call, the
    /// documented stream idle timeout).
    pub fn new(base_url: impl Into<String>, gateway_id: impl Into<String>, credential: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            fallback_urls: Vec::new(),
            prefer_primary_after: None,
            gateway_id: gateway_id.into(),
            credential: credential.into(),
            geo: None,
            service_type: None,
            timeout: Duration::from_secs(5),
            stream_idle_timeout: STREAM_IDLE_TIMEOUT,
        }
    }
}

/// Why the control server could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    #[error("the control server at {url} could not be reached: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the control server refused this gateway ({code}): {message}")]
    GatewayRefused { code: String, message: String },
    #[error("the control server knows no service provider for device {device}: {message}")]
    UnknownDevice { device: Eui, message: String },
    #[error("the service provider refused device {device} ({code}): {message}")]
    SpRefused { device: Eui, code: String, message: String },
    #[error("the control server could not validate the association ({code}): {message}")]
    Failed { code: String, message: String },
    #[error("the control server's answer is malformed: {0}")]
    Malformed(String),
    #[error(
        "the control server at {url} answered with an HTTP redirect ({status}{}); redirects are not followed: \
         configure control_server.url as the server's own address",
        location.as_deref().map(|l| format!(" to {l}")).unwrap_or_default()
    )]
    Redirected { url: String, status: u16, location: Option<String> },
    #[error("the HTTP client could not be set up: {0}")]
    ClientSetup(String),
    /// The stream was served by a fallback replica for
    /// `prefer_primary_after`; the next connection tries the preferred one.
    #[error("returning to the preferred control server {url} after {after:?} on {from}")]
    BackToPreferred { url: String, from: String, after: Duration },
}

/// The control-server client of one gateway.
#[derive(Clone)]
pub struct ControlServer {
    config: ControlServerConfig,
    http: reqwest::Client,
    /// `base_url`, then `fallback_urls`: never empty.
    urls: Arc<[String]>,
    /// Index in `urls` of the replica last reached.
    active: Arc<AtomicUsize>,
}

/// Which failures of one replica make the client try the next: it could not
/// be reached, or answered with a server error that is not about the device.
fn try_next(e: &ControlError) -> bool {
    matches!(e, ControlError::Unreachable { .. })
}

impl ControlServer {
    /// Fails if the TLS backend cannot be set up or no URL is given.
    pub fn new(config: ControlServerConfig) -> Result<Self, ControlError> {
        let http = crate::http_client().map_err(|e| ControlError::ClientSetup(e.to_string()))?;
        let mut urls: Vec<String> = Vec::new();
        for url in std::iter::once(&config.base_url).chain(&config.fallback_urls) {
            let url = url.trim_end_matches('/').to_owned();
            if !url.is_empty() && !urls.contains(&url) {
                urls.push(url);
            }
        }
        if urls.is_empty() {
            return Err(ControlError::ClientSetup("no control-server URL is configured".into()));
        }
        Ok(Self { config, http, urls: urls.into(), active: Arc::new(AtomicUsize::new(0)) })
    }

    pub fn config(&self) -> &ControlServerConfig {
        &self.config
    }

    /// The HTTP client (shared: cloning it is cheap), for the gateway's other
    /// remote calls.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Every replica, the preferred one first.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// The replica last reached (the one the next call tries first).
    pub fn current_url(&self) -> &str {
        &self.urls[self.active.load(Ordering::Acquire) % self.urls.len()]
    }

    /// The next connection (stream, resolve, ack) tries the preferred
    /// replica first. An open stream is not cut: it ends at its
    /// `prefer_primary_after`, or when it fails.
    pub fn prefer_primary(&self) {
        self.active.store(0, Ordering::Release);
    }

    /// The replicas in the order to try them: the one last reached first.
    fn order(&self) -> impl Iterator<Item = (usize, &str)> {
        let n = self.urls.len();
        let start = self.active.load(Ordering::Acquire) % n;
        (0..n).map(move |k| {
            let i = (start + k) % n;
            (i, self.urls[i].as_str())
        })
    }

    /// Runs `call` on each replica in turn until one answers with something
    /// other than a failure to reach it; remembers that replica.
    async fn on_some_replica<'a, T, F, Fut>(&'a self, mut call: F) -> Result<T, ControlError>
    where
        F: FnMut(&'a str) -> Fut,
        Fut: std::future::Future<Output = Result<T, ControlError>>,
    {
        let mut last = None;
        for (i, base) in self.order() {
            match call(base).await {
                Err(e) if try_next(&e) => {
                    tracing::debug!(url = base, error = %e, "control server replica not reachable; trying the next");
                    last = Some(e);
                }
                other => {
                    self.active.store(i, Ordering::Release);
                    return other;
                }
            }
        }
        Err(last.unwrap_or_else(|| ControlError::ClientSetup("no control-server URL is configured".into())))
    }

    /// Refuses a `3xx` answer: it is not followed.
    fn refuse_redirect(base: &str, response: &reqwest::Response) -> Result<(), ControlError> {
        if !response.status().is_redirection() {
            return Ok(());
        }
        let location =
            response.headers().get(reqwest::header::LOCATION).map(|l| String::from_utf8_lossy(l.as_bytes()).into_owned());
        Err(ControlError::Redirected { url: base.to_owned(), status: response.status().as_u16(), location })
    }

    /// The answer body, at most [`CONTROL_ANSWER_MAX`] bytes.
    async fn body(base: &str, response: reqwest::Response) -> Result<Vec<u8>, ControlError> {
        read_body(response, CONTROL_ANSWER_MAX).await.map_err(|e| match e {
            BodyError::TooLarge { limit } => ControlError::Malformed(format!("the answer is larger than {limit} bytes")),
            other => unreachable_at(base, other),
        })
    }

    /// Asks for the SP identity of `device`, from the first replica that
    /// can be reached.
    pub async fn resolve(&self, device: Eui, access: AccessTechnology) -> Result<SpIdentity, ControlError> {
        self.resolve_sp(device, access).await.map(|resolved| resolved.sp)
    }

    /// Asks for the SP of `device` with what its devices need to talk to it
    /// (endpoint, key), from the first replica that can be reached.
    pub async fn resolve_sp(&self, device: Eui, access: AccessTechnology) -> Result<ResolvedSp, ControlError> {
        let body = ResolveRequest {
            device_id: device.to_string(),
            access: Some(access.as_str().to_owned()),
            geo: self.config.geo,
            subscription: Some(self.config.gateway_id.clone()),
            service_type: self.config.service_type.clone(),
            full_identifier: false,
        };
        let body = &body;
        self.on_some_replica(|base| self.resolve_at(base, device, body)).await
    }

    async fn resolve_at(&self, base: &str, device: Eui, body: &ResolveRequest) -> Result<ResolvedSp, ControlError> {
        let response = self
            .http
            .post(format!("{base}{}", routes::RESOLVE))
            .basic_auth(&self.config.gateway_id, Some(&self.config.credential))
            .timeout(self.config.timeout)
            .json(body)
            .send()
            .await
            .map_err(|e| unreachable_at(base, e))?;
        Self::refuse_redirect(base, &response)?;
        let status = response.status();
        let bytes = Self::body(base, response).await?;
        if status.is_success() {
            let resolved: ResolveResponse =
                serde_json::from_slice(&bytes).map_err(|e| ControlError::Malformed(format!("resolve answer: {e}")))?;
            let sp = SpIdentity::new(&resolved.sp)
                .map_err(|e| ControlError::Malformed(format!("resolve answer names SP {:?}: {e}", resolved.sp)))?;
            let public_key = resolved
                .sp_public_key
                .as_deref()
                .map(|k| {
                    crate::store::parse_sp_key(k)
                        .ok_or_else(|| ControlError::Malformed(format!("resolve answer: sp_public_key {k:?} is not 64 hex digits")))
                })
                .transpose()?;
            return Ok(ResolvedSp { sp, endpoint: resolved.sp_endpoint, public_key });
        }
        let body: Option<ErrorBody> = serde_json::from_slice(&bytes).ok();
        let known = body.as_ref().and_then(|b| b.code().ok());
        let (code, message) = match body {
            Some(b) => (b.error, b.message),
            None => (format!("http_{}", status.as_u16()), String::from_utf8_lossy(&bytes).into_owned()),
        };
        Err(match (status.as_u16(), known) {
            (401 | 403, _) => ControlError::GatewayRefused { code, message },
            (404, _) => ControlError::UnknownDevice { device, message },
            (_, Some(ErrorCode::SpRejected)) => ControlError::SpRefused { device, code, message },
            (502..=504, Some(ErrorCode::SpUnreachable)) => ControlError::Failed { code, message },
            (502..=504, _) => unreachable_at(base, format!("{code}: {message}")),
            _ => ControlError::Failed { code, message },
        })
    }

    /// Pushed association updates after `after`, as they come, from the
    /// first replica that can be reached. The stream ends (with an error
    /// item) when the connection drops, or with
    /// [`ControlError::BackToPreferred`] after `prefer_primary_after` on a
    /// fallback replica; the caller reconnects from the last update it
    /// applied.
    pub async fn updates(
        &self,
        after: u64,
    ) -> Result<impl Stream<Item = Result<AssociationUpdate, ControlError>> + Send + use<>, ControlError> {
        let stream = self.on_some_replica(|base| self.updates_at(base, after)).await?;
        let serving = self.active.load(Ordering::Acquire);
        let back_after = self.config.prefer_primary_after.filter(|_| serving != 0);
        let fired = Arc::new(AtomicBool::new(false));
        let timer = {
            let (fired, active) = (fired.clone(), self.active.clone());
            async move {
                match back_after {
                    Some(after) => {
                        tokio::time::sleep(after).await;
                        active.store(0, Ordering::Release);
                        fired.store(true, Ordering::Release);
                    }
                    None => std::future::pending::<()>().await,
                }
            }
        };
        let (url, from) = (self.urls[0].clone(), self.urls[serving % self.urls.len()].clone());
        let back = futures::stream::once(async move {
            fired
                .load(Ordering::Acquire)
                .then(|| Err(ControlError::BackToPreferred { url, from, after: back_after.unwrap_or_default() }))
        })
        .filter_map(std::future::ready);
        Ok(stream.take_until(timer).chain(back))
    }

    async fn updates_at(
        &self,
        base: &str,
        after: u64,
    ) -> Result<impl Stream<Item = Result<AssociationUpdate, ControlError>> + Send + use<>, ControlError> {
        let response = self
            .http
            .get(format!("{base}{}?after={after}", routes::UPDATES))
            .basic_auth(&self.config.gateway_id, Some(&self.config.credential))
            .header("accept", "text/event-stream")
            .send()
            .await
            .map_err(|e| unreachable_at(base, e))?;
        Self::refuse_redirect(base, &response)?;
        let status = response.status();
        if !status.is_success() {
            let bytes = Self::body(base, response).await.unwrap_or_default();
            let body: Option<ErrorBody> = serde_json::from_slice(&bytes).ok();
            let (code, message) = body.map(|b| (b.error, b.message)).unwrap_or((format!("http_{status}"), String::new()));
            return Err(match status.as_u16() {
                401 | 403 => ControlError::GatewayRefused { code, message },
                // A replica that cannot serve (its database is down, it is
                // shutting down): the next one may.
                500..=599 => unreachable_at(base, format!("{code}: {message}")),
                _ => ControlError::Failed { code, message },
            });
        }
        let base = base.to_owned();
        let guarded = guard(response.bytes_stream(), self.config.stream_idle_timeout, MAX_EVENT_BYTES);
        Ok(guarded.eventsource().filter_map(move |event| {
            let base = base.clone();
            async move {
                match event {
                    Err(e) => Some(Err(ControlError::Unreachable { url: base, reason: e.to_string() })),
                    Ok(event) if event.event == ASSOCIATION_EVENT => Some(
                        serde_json::from_str::<AssociationEvent>(&event.data)
                            .map_err(|e| e.to_string())
                            .and_then(|e| AssociationUpdate::try_from(e).map_err(|e| e.to_string()))
                            .map_err(|e| ControlError::Malformed(format!("update {}: {e}", event.id))),
                    ),
                    Ok(_) => None,
                }
            }
        }))
    }

    /// The update stream after `after` in batches of at most `max_batch`:
    /// a task reads ahead into a queue of `2 × max_batch` updates, and
    /// [`UpdateBatches::next`] takes everything queued at once.
    pub async fn update_batches(&self, after: u64, max_batch: usize) -> Result<UpdateBatches, ControlError> {
        let max_batch = max_batch.max(1);
        let stream = self.updates(after).await?;
        let (tx, rx) = mpsc::channel(max_batch.saturating_mul(2));
        let reader = tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(item) = stream.next().await {
                let failed = item.is_err();
                if tx.send(item).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok(UpdateBatches { rx, max_batch, failed: None, reader })
    }

    /// Tells the server everything up to `seq` is durably applied (the
    /// first replica that can be reached; any replica will do, they share
    /// the database).
    pub async fn ack(&self, seq: u64) -> Result<(), ControlError> {
        self.on_some_replica(|base| self.ack_at(base, seq)).await
    }

    async fn ack_at(&self, base: &str, seq: u64) -> Result<(), ControlError> {
        let response = self
            .http
            .post(format!("{base}{}", routes::UPDATES_ACK))
            .basic_auth(&self.config.gateway_id, Some(&self.config.credential))
            .timeout(self.config.timeout)
            .json(&AckRequest { seq })
            .send()
            .await
            .map_err(|e| unreachable_at(base, e))?;
        Self::refuse_redirect(base, &response)?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(ControlError::Failed { code: format!("http_{}", response.status()), message: "ack refused".into() })
        }
    }

    /// A handle that acknowledges positions in the background, newest
    /// first: [`Acknowledger::ack`] never waits, and positions reported while
    /// an acknowledgement is under way are folded into the next one. The
    /// last position reported is still sent after the handle is dropped.
    pub fn acknowledger(&self) -> Acknowledger {
        let (tx, mut rx) = watch::channel(0u64);
        let control = self.clone();
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let seq = *rx.borrow_and_update();
                if let Err(e) = control.ack(seq).await {
                    tracing::warn!(seq, error = %e, "acknowledging updates failed; the next batch acknowledges again");
                }
            }
        });
        Acknowledger { tx }
    }
}

fn unreachable_at(base: &str, e: impl std::fmt::Display) -> ControlError {
    ControlError::Unreachable { url: base.to_owned(), reason: e.to_string() }
}

/// Batches of the update stream ([`ControlServer::update_batches`]). The
/// reading task ends when this is dropped.
pub struct UpdateBatches {
    rx: mpsc::Receiver<Result<AssociationUpdate, ControlError>>,
    max_batch: usize,
    /// The failure that ended the stream, after the updates before it.
    failed: Option<ControlError>,
    reader: tokio::task::JoinHandle<()>,
}

impl UpdateBatches {
    /// The updates received since the last call (waiting for at least one),
    /// at most `max_batch`; then the error that ended the stream, if any;
    /// `None` once it has ended.
    pub async fn next(&mut self) -> Option<Result<Vec<AssociationUpdate>, ControlError>> {
        if let Some(e) = self.failed.take() {
            return Some(Err(e));
        }
        let mut items = Vec::with_capacity(self.max_batch.min(1024));
        if self.rx.recv_many(&mut items, self.max_batch).await == 0 {
            return None;
        }
        let mut batch = Vec::with_capacity(items.len());
        for item in items {
            match item {
                Ok(update) => batch.push(update),
                Err(e) => {
                    // The reader stops at its first error: nothing follows it.
                    self.failed = Some(e);
                    break;
                }
            }
        }
        if batch.is_empty() { self.failed.take().map(Err) } else { Some(Ok(batch)) }
    }
}

impl Drop for UpdateBatches {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Acknowledges applied positions in the background
/// ([`ControlServer::acknowledger`]).
pub struct Acknowledger {
    tx: watch::Sender<u64>,
}

impl Acknowledger {
    /// Reports `seq` applied; returns at once.
    pub fn ack(&self, seq: u64) {
        self.tx.send_if_modified(|last| {
            let newer = seq > *last;
            if newer {
                *last = seq;
            }
            newer
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures::StreamExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    const WITHIN: Duration = Duration::from_secs(5);

    /// A control server stand-in on loopback that answers every request with
    /// `head` and then `body` (raw HTTP), keeping the connection open; counts
    /// the connections it accepted.
    async fn stub(head: String, body: Vec<u8>) -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let (head, body) = (head.clone(), body.clone());
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while matches!(socket.read(&mut buf).await, Ok(n) if n > 0) {
                        let _ = socket.write_all(head.as_bytes()).await;
                        let _ = socket.write_all(&body).await;
                    }
                });
            }
        });
        (format!("http://{addr}"), accepted)
    }

    fn client(base: &str, idle: Duration) -> ControlServer {
        ControlServer::new(ControlServerConfig {
            stream_idle_timeout: idle,
            ..ControlServerConfig::new(base, "gw-1", "secret-1")
        })
        .unwrap()
    }

    const SSE_HEAD: &str = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";

    fn chunk(text: &[u8]) -> Vec<u8> {
        let mut out = format!("{:x}\r\n", text.len()).into_bytes();
        out.extend_from_slice(text);
        out.extend_from_slice(b"\r\n");
        out
    }

    #[tokio::test]
    async fn a_silent_update_stream_ends_so_the_gateway_reconnects() {
        let (base, _) = stub(SSE_HEAD.into(), chunk(b": connected\n\n")).await;
        let control = client(&base, Duration::from_millis(200));
        let stream = control.updates(0).await.expect("stream opens");
        let mut stream = std::pin::pin!(stream);
        let first = tokio::time::timeout(WITHIN, stream.next()).await.expect("the stream ends instead of hanging");
        match first {
            Some(Err(ControlError::Unreachable { reason, .. })) => assert!(reason.contains("silent"), "{reason}"),
            other => panic!("expected an idle error, got {other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_gateway_reconnects_a_silent_update_stream() {
        use enrollment_assistant::{AssistantRuntime, Sandbox, SandboxConfig, Timeouts, TrustedKeys};

        let (base, accepted) = stub(SSE_HEAD.into(), chunk(b": connected\n\n")).await;
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::GatewayStore::open(&dir.path().join("gateway.sqlite")).unwrap();
        let control = client(&base, Duration::from_millis(200));
        let services = crate::services::GatewayServices::new(control.clone(), store.clone());
        let identity = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
        let sandbox = Arc::new(Sandbox::new(SandboxConfig { max_concurrent_halves: 1, ..SandboxConfig::default() }).unwrap());
        let assistant = AssistantRuntime::new(sandbox, Arc::new(services), identity.clone(), Timeouts::default()).unwrap();
        let gateway = Arc::new(crate::Gateway::new(assistant, store, control, identity, TrustedKeys::new(), Timeouts::default()));
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let follower = tokio::spawn(gateway.clone().follow_updates(stopped));
        let deadline = tokio::time::Instant::now() + WITHIN;
        let mut said_silent = false;
        while accepted.load(Ordering::SeqCst) < 2 || !said_silent {
            assert!(tokio::time::Instant::now() < deadline, "the gateway never reconnected (silent seen: {said_silent})");
            said_silent |= gateway.stream_state().borrow().last_error.as_deref().is_some_and(|e| e.contains("silent"));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = stop.send(true);
        let _ = follower.await;
    }

    #[tokio::test]
    async fn an_endless_event_is_cut() {
        let mut body = chunk(b"data: ");
        for _ in 0..100 {
            body.extend_from_slice(&chunk(&[b'x'; 1024]));
        }
        let (base, _) = stub(SSE_HEAD.into(), body).await;
        let control = client(&base, WITHIN);
        let stream = control.updates(0).await.expect("stream opens");
        let mut stream = std::pin::pin!(stream);
        let first = tokio::time::timeout(WITHIN, stream.next()).await.expect("not buffered for ever");
        match first {
            Some(Err(ControlError::Unreachable { reason, .. })) => assert!(reason.contains("larger than 65536"), "{reason}"),
            other => panic!("expected an event-size error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn redirects_from_the_control_server_are_not_followed() {
        let answer = br#"{"device_id":"AC-DE-48-00-00-80","sp":"sp-evil.example","service_type":null,"source":"table","validated_at":"2023-11-14T22:13:20Z","identifier":null}"#;
        let ok = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n", answer.len());
        let (elsewhere, followed) = stub(ok, answer.to_vec()).await;
        let redirect = format!("HTTP/1.1 307 Temporary Redirect\r\nlocation: {elsewhere}/v1/resolve\r\ncontent-length: 0\r\n\r\n");
        let (base, _) = stub(redirect, Vec::new()).await;
        let control = client(&base, WITHIN);
        let device: Eui = "AC-DE-48-00-00-80".parse().unwrap();
        let refused = control.resolve(device, AccessTechnology::Wifi).await.unwrap_err();
        assert!(matches!(refused, ControlError::Redirected { status: 307, .. }), "{refused}");
        assert!(refused.to_string().contains("not followed"), "{refused}");
        assert_eq!(followed.load(Ordering::SeqCst), 0, "nothing was sent to the redirect's target");
        let refused = control.updates(0).await.err().expect("the stream is refused too");
        assert!(matches!(refused, ControlError::Redirected { .. }), "{refused}");
        assert!(matches!(control.ack(1).await, Err(ControlError::Redirected { .. })));
    }

    /// A loopback address nothing listens on (a killed replica).
    async fn dead_url() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn resolve_stream_and_ack_move_to_the_next_replica_and_back_when_asked() {
        let answer = br#"{"device_id":"AC-DE-48-00-00-80","sp":"sp-one.example","service_type":null,"source":"table","validated_at":"2023-11-14T22:13:20Z","identifier":null}"#;
        let ok = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n", answer.len());
        let (live, answered) = stub(ok, answer.to_vec()).await;
        let dead = dead_url().await;
        let control = ControlServer::new(ControlServerConfig {
            fallback_urls: vec![live.clone()],
            ..ControlServerConfig::new(&dead, "gw-1", "secret-1")
        })
        .unwrap();
        assert_eq!(control.urls(), [dead.clone(), live.clone()]);
        let device: Eui = "AC-DE-48-00-00-80".parse().unwrap();
        let sp = control.resolve(device, AccessTechnology::Wifi).await.expect("the second replica answers");
        assert_eq!(sp.as_str(), "sp-one.example");
        assert_eq!(control.current_url(), live, "the replica that answered is tried first next time");
        control.ack(1).await.expect("acknowledged by the live replica");
        assert!(answered.load(Ordering::SeqCst) >= 1);
        control.prefer_primary();
        assert_eq!(control.current_url(), dead);

        // Every replica down: the last failure, naming a replica.
        let all_dead = ControlServer::new(ControlServerConfig {
            fallback_urls: vec![dead_url().await],
            ..ControlServerConfig::new(&dead, "gw-1", "secret-1")
        })
        .unwrap();
        let refused = all_dead.resolve(device, AccessTechnology::Wifi).await.unwrap_err();
        assert!(matches!(refused, ControlError::Unreachable { .. }), "{refused}");
    }

    #[tokio::test]
    async fn a_stream_on_a_fallback_replica_returns_to_the_preferred_one() {
        let event = br#"{"seq":1,"device_id":"AC-DE-48-00-00-80","sp":"sp-two.example","previous_sp":null,"service_type":null,"changed_at":"2023-11-14T22:13:20Z","message_id":"m-1"}"#;
        let mut sse = b"id: 1\nevent: association\ndata: ".to_vec();
        sse.extend_from_slice(event);
        sse.extend_from_slice(b"\n\n");
        let (live, _) = stub(SSE_HEAD.into(), chunk(&sse)).await;
        let dead = dead_url().await;
        let control = ControlServer::new(ControlServerConfig {
            fallback_urls: vec![live.clone()],
            prefer_primary_after: Some(Duration::from_millis(200)),
            ..ControlServerConfig::new(&dead, "gw-1", "secret-1")
        })
        .unwrap();
        let mut batches = control.update_batches(0, 16).await.expect("the fallback serves the stream");
        assert_eq!(control.current_url(), live);
        let first = tokio::time::timeout(WITHIN, batches.next()).await.expect("an update").expect("not ended");
        assert_eq!(first.expect("a batch").iter().map(|u| u.seq).collect::<Vec<_>>(), vec![1]);
        let back = tokio::time::timeout(WITHIN, batches.next()).await.expect("ends").expect("with a reason");
        assert!(matches!(back, Err(ControlError::BackToPreferred { .. })), "{back:?}");
        assert!(batches.next().await.is_none(), "nothing after the end");
        assert_eq!(control.current_url(), dead, "the next connection tries the preferred replica first");
    }

    #[tokio::test]
    async fn the_acknowledger_sends_the_newest_position_only() {
        let (base, acks) = stub("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n".into(), b"{}".to_vec()).await;
        let control = client(&base, WITHIN);
        let acker = control.acknowledger();
        acker.ack(5);
        acker.ack(3); // older: ignored
        acker.ack(9);
        drop(acker); // the last position is still sent
        let deadline = tokio::time::Instant::now() + WITHIN;
        while acks.load(Ordering::SeqCst) == 0 {
            assert!(tokio::time::Instant::now() < deadline, "no acknowledgement was sent");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn oversized_answers_are_refused() {
        let mut answer = br#"{"device_id":"AC-DE-48-00-00-80","sp":"sp-one.example","service_type":null,"source":"table","validated_at":"2023-11-14T22:13:20Z","identifier":null}"#.to_vec();
        answer.resize(CONTROL_ANSWER_MAX + 1, b' ');
        let ok = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n", answer.len());
        let (base, _) = stub(ok, answer.clone()).await;
        let control = client(&base, WITHIN);
        let device: Eui = "AC-DE-48-00-00-80".parse().unwrap();
        let refused = control.resolve(device, AccessTechnology::Wifi).await.unwrap_err();
        assert!(matches!(&refused, ControlError::Malformed(m) if m.contains("larger than 65536")), "{refused}");
        // Within the limit the same answer is read.
        answer.truncate(CONTROL_ANSWER_MAX);
        let ok = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n", answer.len());
        let (base, _) = stub(ok, answer).await;
        let sp = client(&base, WITHIN).resolve(device, AccessTechnology::Wifi).await.expect("within the limit");
        assert_eq!(sp.as_str(), "sp-one.example");
    }
}
