//! Which gateways are connected to this replica: open update streams and
//! long-polls, and when each gateway was last seen on the push routes. Kept
//! in memory (per replica) by a middleware around the routes, so the push
//! path itself is not touched; the console and the admin API show it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;
use control_api::routes;
use futures::StreamExt;

/// A gateway counts as connected this long after its last push request
/// ended (a long-poll client is between two polls most of the time).
pub const SEEN_RECENTLY: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
struct Entry {
    open: usize,
    last_seen: Option<Instant>,
}

/// Per-gateway presence on this replica.
#[derive(Debug, Default, Clone)]
pub struct Presence {
    inner: Arc<Mutex<HashMap<String, Entry>>>,
}

/// What presence says about one gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub open: usize,
    pub last_seen: Option<Duration>,
}

impl Seen {
    pub fn connected(&self) -> bool {
        self.open > 0 || self.last_seen.is_some_and(|d| d < SEEN_RECENTLY)
    }
}

impl Presence {
    pub fn of(&self, gateway: &str) -> Seen {
        let map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(gateway) {
            Some(e) => Seen { open: e.open, last_seen: e.last_seen.map(|t| t.elapsed()) },
            None => Seen { open: 0, last_seen: None },
        }
    }

    fn open(&self, gateway: &str) -> Guard {
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let e = map.entry(gateway.to_owned()).or_default();
        e.open += 1;
        e.last_seen = Some(Instant::now());
        Guard { presence: self.clone(), gateway: gateway.to_owned() }
    }
}

/// Closes one open request of a gateway when its response body is dropped.
struct Guard {
    presence: Presence,
    gateway: String,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let mut map = self.presence.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = map.get_mut(&self.gateway) {
            e.open = e.open.saturating_sub(1);
            e.last_seen = Some(Instant::now());
        }
    }
}

/// The gateway id a request claims (HTTP Basic user name), unverified: only
/// used once the handler answered 200, which means it authenticated.
fn claimed_gateway(request: &Request) -> Option<String> {
    let value = request.headers().get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ").or_else(|| value.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, _) = text.split_once(':')?;
    crate::gateway_auth::validate_gateway_id(id).ok()?;
    Some(id.to_owned())
}

/// Middleware: on the push routes, counts a successful response as an open
/// connection of its gateway until its body is done or dropped.
pub async fn track(State(presence): State<Presence>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if path != routes::UPDATES && path != routes::UPDATES_POLL && path != routes::UPDATES_ACK {
        return next.run(request).await;
    }
    let gateway = claimed_gateway(&request);
    let response = next.run(request).await;
    let Some(gateway) = gateway.filter(|_| response.status().is_success()) else { return response };
    let guard = presence.open(&gateway);
    let (parts, body) = response.into_parts();
    let body = Body::from_stream(body.into_data_stream().map(move |chunk| {
        let _held = &guard;
        chunk
    }));
    Response::from_parts(parts, body)
}
