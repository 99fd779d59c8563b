//! The HTTP routes (axum). Handlers only translate between HTTP and the
//! modules that decide ([`crate::resolve`], [`crate::unsolicited`],
//! [`crate::outbox`]); every failure is an [`ApiError`] with its JSON body.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::{get, post};
use axum::{Json, Router};
use control_api::gateway::{ASSOCIATION_EVENT, AckRequest, PollQuery, PollResponse, ResolveRequest, ResolveResponse, UpdatesQuery};
use control_api::routes;
use control_api::sp::MoveAck;

use crate::error::{ApiError, parse_json};
use crate::outbox::OutboxReader;
use crate::state::ServerState;

/// Largest unsolicited message body accepted (100,000 device ids are ~2 MB).
pub const MAX_MESSAGE_BYTES: usize = 32 * 1024 * 1024;
/// Events per SSE read from the store.
const STREAM_BATCH: i64 = 1000;

pub fn router(state: ServerState) -> Router {
    Router::new()
        .route(routes::RESOLVE, post(resolve))
        .route(routes::UPDATES, get(updates_stream))
        .route(routes::UPDATES_POLL, get(updates_poll))
        .route(routes::UPDATES_ACK, post(ack))
        .route(routes::SP_ASSOCIATIONS, post(sp_associations))
        .route(routes::OPENAPI, get(openapi))
        .route(routes::HEALTHZ, get(|| async { "ok" }))
        .with_state(state)
}

async fn resolve(State(state): State<ServerState>, headers: HeaderMap, body: Bytes) -> Result<Json<ResolveResponse>, ApiError> {
    let gateway = state.auth.authenticate(&headers).await?;
    let request: ResolveRequest = parse_json(&body)?;
    Ok(Json(crate::resolve::resolve(&state, &gateway, request).await?))
}

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(t)| t).map_err(|e| {
        let text = e.body_text();
        if text.contains("unknown field") {
            ApiError::UnknownField(text)
        } else {
            ApiError::MalformedRequest(text)
        }
    })
}

fn to_seq(n: u64) -> Result<i64, ApiError> {
    i64::try_from(n).map_err(|_| ApiError::MalformedRequest(format!("sequence number {n} is too large")))
}

async fn updates_stream(
    State(state): State<ServerState>,
    headers: HeaderMap,
    q: Result<Query<UpdatesQuery>, QueryRejection>,
) -> Result<Sse<impl futures::Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let gateway = state.auth.authenticate(&headers).await?;
    let q = query(q)?;
    let last_event_id = headers
        .get("last-event-id")
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| ApiError::MalformedRequest("Last-Event-ID is not a sequence number".into()))
        })
        .transpose()?;
    let after = to_seq(q.after.or(last_event_id).unwrap_or(0))?;
    let mut reader = OutboxReader::new(state.store.clone(), &state.notifier, &gateway.id, after);
    let (tx, rx) = tokio::sync::mpsc::channel::<Event>(STREAM_BATCH as usize);
    tokio::spawn(async move {
        if tx.send(Event::default().comment("connected")).await.is_err() {
            return;
        }
        loop {
            match reader.next_batch(STREAM_BATCH).await {
                Ok(events) if events.is_empty() => {
                    tokio::select! {
                        _ = reader.wait(Duration::from_secs(15)) => {}
                        _ = tx.closed() => return,
                    }
                }
                Ok(events) => {
                    for e in events {
                        let data = match serde_json::to_string(&e) {
                            Ok(d) => d,
                            Err(err) => {
                                tracing::error!(%err, "cannot encode an outbox event");
                                return;
                            }
                        };
                        let event = Event::default().id(e.seq.to_string()).event(ASSOCIATION_EVENT).data(data);
                        if tx.send(event).await.is_err() {
                            return;
                        }
                    }
                }
                Err(err) => {
                    tracing::warn!(gateway = %gateway.id, %err, "outbox read failed; closing the stream");
                    let _ = tx.send(Event::default().comment("error: outbox read failed")).await;
                    return;
                }
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (Ok(e), rx)) });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

async fn updates_poll(
    State(state): State<ServerState>,
    headers: HeaderMap,
    q: Result<Query<PollQuery>, QueryRejection>,
) -> Result<Json<PollResponse>, ApiError> {
    let gateway = state.auth.authenticate(&headers).await?;
    let q = query(q)?;
    let after = to_seq(q.after.unwrap_or(0))?;
    let wait = Duration::from_millis(q.wait_ms.unwrap_or(0).min(60_000));
    let limit = q.limit.unwrap_or(1000).clamp(1, 10_000) as i64;
    let deadline = Instant::now() + wait;
    let mut reader = OutboxReader::new(state.store.clone(), &state.notifier, &gateway.id, after);
    loop {
        let events = reader.next_batch(limit).await?;
        let now = Instant::now();
        if !events.is_empty() || now >= deadline {
            return Ok(Json(PollResponse { events, next: reader.cursor() as u64 }));
        }
        reader.wait(deadline - now).await;
    }
}

async fn ack(State(state): State<ServerState>, headers: HeaderMap, body: Bytes) -> Result<Json<AckRequest>, ApiError> {
    let gateway = state.auth.authenticate(&headers).await?;
    let request: AckRequest = parse_json(&body)?;
    let retention = i64::try_from(state.config.policy.outbox_retention_secs).unwrap_or(i64::MAX / 1000) * 1000;
    let prune_before = crate::clock::now_ms().saturating_sub(retention);
    state.store.ack(&gateway.id, to_seq(request.seq)?, prune_before).await.map_err(|e| match e {
        crate::store::AckError::BeyondLast { .. } => ApiError::InvalidAck(e.to_string()),
        crate::store::AckError::Store(e) => e.into(),
    })?;
    Ok(Json(request))
}

async fn sp_associations(State(state): State<ServerState>, headers: HeaderMap, body: Body) -> Result<Json<MoveAck>, ApiError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("application/cose") {
        return Err(ApiError::UnsupportedMediaType(format!(
            "content-type must be application/cose (a COSE_Sign1 message), not {content_type:?}"
        )));
    }
    let body = axum::body::to_bytes(body, MAX_MESSAGE_BYTES).await.map_err(|_| {
        ApiError::BatchTooLarge(format!("message body exceeds {MAX_MESSAGE_BYTES} bytes"))
    })?;
    Ok(Json(crate::unsolicited::accept(&state, &body).await?))
}

async fn openapi() -> Json<serde_json::Value> {
    Json(crate::openapi::document())
}
