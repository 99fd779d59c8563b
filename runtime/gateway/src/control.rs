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
//! What the server sends is bounded: HTTP redirects are not followed (an
//! answer `3xx` is [`ControlError::Redirected`]), an answer body is read up
//! to [`CONTROL_ANSWER_MAX`] bytes, and the update stream is guarded against
//! silence and oversized events ([`crate::update_stream`]).

use std::time::Duration;

use control_api::gateway::{
    ASSOCIATION_EVENT, AckRequest, AssociationEvent, ResolveRequest, ResolveResponse, STREAM_IDLE_TIMEOUT,
};
use control_api::http_client::{BodyError, read_body};
use control_api::{ErrorBody, ErrorCode, routes};
use eventsource_stream::Eventsource;
use futures::{Stream, StreamExt};
use sp_bound_id::{AccessTechnology, Eui, SpIdentity};

pub use control_api::gateway::Geo;

use crate::store::AssociationUpdate;
use crate::update_stream::{MAX_EVENT_BYTES, guard};

/// Largest answer body read from the control server (a resolve answer or an
/// error body is a short JSON object).
pub const CONTROL_ANSWER_MAX: usize = 64 * 1024;

/// How the gateway reaches and identifies itself to the control server.
#[derive(Debug, Clone)]
pub struct ControlServerConfig {
    /// e.g. `http://127.0.0.1:8080`
    pub base_url: String,
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
}

/// The control-server client of one gateway.
#[derive(Clone)]
pub struct ControlServer {
    config: ControlServerConfig,
    http: reqwest::Client,
}

impl ControlServer {
    /// Fails only if the TLS backend cannot be set up.
    pub fn new(config: ControlServerConfig) -> Result<Self, ControlError> {
        let http = crate::http_client().map_err(|e| ControlError::ClientSetup(e.to_string()))?;
        Ok(Self { config, http })
    }

    pub fn config(&self) -> &ControlServerConfig {
        &self.config
    }

    /// The HTTP client (shared: cloning it is cheap), for the gateway's other
    /// remote calls.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Refuses a `3xx` answer: it is not followed.
    fn refuse_redirect(&self, response: &reqwest::Response) -> Result<(), ControlError> {
        if !response.status().is_redirection() {
            return Ok(());
        }
        let location =
            response.headers().get(reqwest::header::LOCATION).map(|l| String::from_utf8_lossy(l.as_bytes()).into_owned());
        Err(ControlError::Redirected { url: self.config.base_url.clone(), status: response.status().as_u16(), location })
    }

    /// The answer body, at most [`CONTROL_ANSWER_MAX`] bytes.
    async fn body(&self, response: reqwest::Response) -> Result<Vec<u8>, ControlError> {
        read_body(response, CONTROL_ANSWER_MAX).await.map_err(|e| match e {
            BodyError::TooLarge { limit } => ControlError::Malformed(format!("the answer is larger than {limit} bytes")),
            other => self.unreachable(other),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.config.base_url.trim_end_matches('/'), path)
    }

    fn unreachable(&self, e: impl std::fmt::Display) -> ControlError {
        ControlError::Unreachable { url: self.config.base_url.clone(), reason: e.to_string() }
    }

    /// Asks for the SP identity of `device`.
    pub async fn resolve(&self, device: Eui, access: AccessTechnology) -> Result<SpIdentity, ControlError> {
        let body = ResolveRequest {
            device_id: device.to_string(),
            access: Some(access.as_str().to_owned()),
            geo: self.config.geo,
            subscription: Some(self.config.gateway_id.clone()),
            service_type: self.config.service_type.clone(),
            full_identifier: false,
        };
        let response = self
            .http
            .post(self.url(routes::RESOLVE))
            .basic_auth(&self.config.gateway_id, Some(&self.config.credential))
            .timeout(self.config.timeout)
            .json(&body)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        self.refuse_redirect(&response)?;
        let status = response.status();
        let bytes = self.body(response).await?;
        if status.is_success() {
            let resolved: ResolveResponse =
                serde_json::from_slice(&bytes).map_err(|e| ControlError::Malformed(format!("resolve answer: {e}")))?;
            return SpIdentity::new(&resolved.sp)
                .map_err(|e| ControlError::Malformed(format!("resolve answer names SP {:?}: {e}", resolved.sp)));
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
            (502..=504, _) => self.unreachable(format!("{code}: {message}")),
            _ => ControlError::Failed { code, message },
        })
    }

    /// Pushed association updates after `after`, as they come. The stream
    /// ends (with an error item) when the connection drops; the caller
    /// reconnects from the last update it applied.
    pub async fn updates(
        &self,
        after: u64,
    ) -> Result<impl Stream<Item = Result<AssociationUpdate, ControlError>> + use<>, ControlError> {
        let response = self
            .http
            .get(self.url(&format!("{}?after={after}", routes::UPDATES)))
            .basic_auth(&self.config.gateway_id, Some(&self.config.credential))
            .header("accept", "text/event-stream")
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        self.refuse_redirect(&response)?;
        let status = response.status();
        if !status.is_success() {
            let bytes = self.body(response).await.unwrap_or_default();
            let body: Option<ErrorBody> = serde_json::from_slice(&bytes).ok();
            let (code, message) = body.map(|b| (b.error, b.message)).unwrap_or((format!("http_{status}"), String::new()));
            return Err(match status.as_u16() {
                401 | 403 => ControlError::GatewayRefused { code, message },
                _ => ControlError::Failed { code, message },
            });
        }
        let base = self.config.base_url.clone();
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

    /// Tells the server everything up to `seq` is durably applied.
    pub async fn ack(&self, seq: u64) -> Result<(), ControlError> {
        let response = self
            .http
            .post(self.url(routes::UPDATES_ACK))
            .basic_auth(&self.config.gateway_id, Some(&self.config.credential))
            .timeout(self.config.timeout)
            .json(&AckRequest { seq })
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        self.refuse_redirect(&response)?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(ControlError::Failed { code: format!("http_{}", response.status()), message: "ack refused".into() })
        }
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
        let services = crate::services::GatewayServices::new(control.clone(), store.clone(), Default::default());
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
