//! The HTTP routes (axum). Handlers only translate between HTTP and the
//! modules that decide ([`crate::resolve`], [`crate::unsolicited`],
//! [`crate::outbox`]); every failure is an [`ApiError`] with its JSON body.
//!
//! What a request may cost is bounded here ([`crate::limits`]): every route
//! has a deadline for receiving its body and answering (408
//! `request_timeout`), every body is read through [`read_body`] up to its
//! route's limit (413 `body_too_large`), and SP hand-overs, which anyone
//! may send, wait for no permit: one beyond
//! `limits.max_concurrent_handovers` is refused (503 `overloaded`) before
//! its body is read.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use control_api::gateway::{
    ASSOCIATION_EVENT, AckRequest, PollQuery, PollResponse, ResolveRequest, ResolveResponse, STREAM_KEEP_ALIVE,
    UpdatesQuery,
};
use control_api::routes;
use control_api::sp::MoveAck;
use futures::StreamExt;

use crate::error::{ApiError, parse_json};
use crate::limits::{ACK_BODY_MAX, LONG_POLL_MAX_WAIT, RESOLVE_BODY_MAX, STREAM_BATCH, handover_body_max};
use crate::outbox::OutboxReader;
use crate::state::ServerState;

pub fn router(state: ServerState) -> Router {
    let timeout = state.config.limits.request_timeout();
    let deadline = |limit: Duration| middleware::from_fn_with_state(limit, answer_within);
    let timed = Router::new()
        .route(routes::RESOLVE, post(resolve))
        .route(routes::UPDATES, get(updates_stream))
        .route(routes::UPDATES_ACK, post(ack))
        .route(routes::SP_ASSOCIATIONS, post(sp_associations))
        .route(routes::OPENAPI, get(openapi))
        .route(routes::HEALTHZ, get(|| async { "ok" }))
        .layer(deadline(timeout));
    let long_poll = Router::new().route(routes::UPDATES_POLL, get(updates_poll)).layer(deadline(timeout + LONG_POLL_MAX_WAIT));
    // Administration (`/v1/admin`, `/console`); the presence layer sees which gateways are connected.
    let admin = crate::admin::http::AdminState::new(&state);
    let presence = middleware::from_fn_with_state(admin.presence.clone(), crate::admin::presence::track);
    // `/metrics` is behind the admin token (`crate::metrics`), so it takes the admin state.
    let metrics = Router::new().route(routes::METRICS, get(crate::metrics::serve)).layer(deadline(timeout)).with_state(admin.clone());
    timed.merge(long_poll).with_state(state).merge(metrics).merge(crate::admin::http::router(admin)).layer(presence)
}

/// Answers `408 request_timeout` when the handler (reading the body
/// included) is not done within `limit`; the unread rest of the request is
/// dropped with the connection. A stream's body is not covered: only the
/// time to its first byte.
async fn answer_within(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::RequestTimeout(format!(
            "the request was not received and answered within {} ms (limits.request_timeout_ms); send the whole body at once",
            limit.as_millis()
        ))
        .into_response(),
    }
}

/// Reads a request body of at most `limit` bytes: a longer one (by its
/// `Content-Length`, or as it arrives) is refused without reading the rest.
async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let too_large = || ApiError::BodyTooLarge(format!("the request body exceeds the {limit} bytes this route accepts"));
    let announced = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut stream = body.into_data_stream();
    let mut bytes = Vec::with_capacity(announced.map_or(0, |n| n as usize));
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::MalformedRequest(format!("the request body could not be read: {e}")))?;
        if bytes.len() + chunk.len() > limit {
            return Err(too_large());
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(bytes))
}

async fn resolve(State(state): State<ServerState>, headers: HeaderMap, body: Body) -> Result<Json<ResolveResponse>, ApiError> {
    let gateway = state.auth.authenticate(&headers).await?;
    let body = read_body(&headers, body, RESOLVE_BODY_MAX).await?;
    let request: ResolveRequest = parse_json(&body)?;
    Ok(Json(crate::resolve::resolve(&state, &gateway, request).await?))
}

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(t)| t).map_err(|e| {
        // The deserializer's own message is the rejection's source; the
        // rejection's text adds a prefix of axum's.
        let unknown = match &e {
            QueryRejection::FailedToDeserializeQueryString(inner) => std::error::Error::source(inner)
                .is_some_and(|source| crate::error::is_unknown_field(&source.to_string())),
            _ => false,
        };
        let text = e.body_text();
        if unknown { ApiError::UnknownField(text) } else { ApiError::MalformedRequest(text) }
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
    let metrics = state.metrics.clone();
    tokio::spawn(async move {
        // Counted as connected while this task feeds the stream.
        let _connected = metrics.streams.track();
        if tx.send(Event::default().comment("connected")).await.is_err() {
            return;
        }
        loop {
            match reader.next_batch(STREAM_BATCH).await {
                Ok(events) if events.is_empty() => {
                    tokio::select! {
                        // No timer: an idle stream costs no query (axum's keep-alive writes the comments).
                        _ = reader.wait_for_wake() => {}
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
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(STREAM_KEEP_ALIVE)))
}

async fn updates_poll(
    State(state): State<ServerState>,
    headers: HeaderMap,
    q: Result<Query<PollQuery>, QueryRejection>,
) -> Result<Json<PollResponse>, ApiError> {
    let gateway = state.auth.authenticate(&headers).await?;
    let q = query(q)?;
    let after = to_seq(q.after.unwrap_or(0))?;
    let wait = Duration::from_millis(q.wait_ms.unwrap_or(0)).min(LONG_POLL_MAX_WAIT);
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

async fn ack(State(state): State<ServerState>, headers: HeaderMap, body: Body) -> Result<Json<AckRequest>, ApiError> {
    let gateway = state.auth.authenticate(&headers).await?;
    let body = read_body(&headers, body, ACK_BODY_MAX).await?;
    let request: AckRequest = parse_json(&body)?;
    let retention = i64::try_from(state.config.policy.outbox_retention_secs).unwrap_or(i64::MAX / 1000) * 1000;
    let prune_before = crate::clock::now_ms().saturating_sub(retention);
    state.store.ack(&gateway.id, to_seq(request.seq)?, prune_before).await.map_err(|e| match e {
        crate::store::AckError::BeyondLast { .. } => ApiError::InvalidAck(e.to_string()),
        crate::store::AckError::Store(e) => e.into(),
    })?;
    Ok(Json(request))
}

/// `POST /v1/sp/associations`, counted by outcome and code (`crate::metrics`).
async fn sp_associations(state: State<ServerState>, headers: HeaderMap, body: Body) -> Result<Json<MoveAck>, ApiError> {
    let metrics = state.metrics.clone();
    let answer = receive_handover(state, headers, body).await;
    metrics.handover(&answer);
    answer
}

async fn receive_handover(State(state): State<ServerState>, headers: HeaderMap, body: Body) -> Result<Json<MoveAck>, ApiError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("application/cose") {
        return Err(ApiError::UnsupportedMediaType(format!(
            "content-type must be application/cose (a COSE_Sign1 message), not {content_type:?}"
        )));
    }
    // Anyone may send a hand-over: take a permit before reading the body,
    // hold it until the message is verified and applied.
    let _permit = state.handovers.try_acquire().map_err(|_| {
        ApiError::Overloaded(format!(
            "{} SP hand-overs are being verified (limits.max_concurrent_handovers); retry in a moment",
            state.config.limits.max_concurrent_handovers
        ))
    })?;
    let limit = handover_body_max(state.config.policy.max_batch);
    let body = read_body(&headers, body, limit).await.map_err(|e| match e {
        ApiError::BodyTooLarge(_) => ApiError::BodyTooLarge(format!(
            "the message exceeds {limit} bytes, more than {} devices (policy.max_batch) can take; split it",
            state.config.policy.max_batch
        )),
        other => other,
    })?;
    let result = crate::unsolicited::accept(&state, &body).await;
    if let Err(e) = &result {
        tracing::info!(code = e.code(), error = %e, "unsolicited update refused");
    }
    crate::admin::journal::record(&state, &body, &result).await;
    Ok(Json(result?))
}

async fn openapi() -> Json<serde_json::Value> {
    Json(crate::openapi::document())
}
