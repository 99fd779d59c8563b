//! What the control server counts, served as `GET /metrics` (Prometheus
//! text format 0.0.4, [`enrollment_metrics`]).
//!
//! `/metrics` needs the admin token (`Authorization: Bearer <admin token>`,
//! `control-server admin-token`), unlike `/healthz`: the control server is
//! reached by SPs and gateways across networks, and its metrics name every
//! registered gateway (outbox lag) and show how hand-overs are refused,
//! which is the operator's to see. With no admin token stored the route is
//! off like the admin API. Prometheus sends the token with
//! `authorization: { credentials_file: … }` in its scrape config.
//!
//! | metric | type | labels | meaning |
//! | --- | --- | --- | --- |
//! | `control_resolve_requests_total` | counter | `outcome` | authenticated resolve requests: `ok` or the error code answered (`unknown_device`, `sp_rejected`, `sp_unreachable`, …) |
//! | `control_resolve_answers_total` | counter | `source` | successful resolves by where the answer came from: `cache` (the mapping table's in-memory cache), `table` (read from the database), `sp` (validated with the SP now), `stale` (the SP was unreachable and the policy allows the table's answer) |
//! | `control_resolve_duration_seconds` | histogram | `source` | time to answer a resolve, by source (`none`: failed before the table answered) |
//! | `control_sp_validations_total` | counter | `outcome` | validation calls to SPs, one per hop of a redirect chain: `confirm`, `redirect`, `reject`, `timeout`, `unreachable`, `bad_answer`, `http_redirect` (refused, never followed), `answer_too_large` |
//! | `control_handovers_total` | counter | `outcome`, `code` | signed SP hand-overs (`POST /v1/sp/associations`): `accepted`/`ok`, or `refused` with the error code answered (`bad_signature`, `replayed_message`, `not_authorized`, `overloaded`, …) |
//! | `control_update_streams_connected` | gauge | — | gateways' update streams (SSE) open on this replica now |
//! | `control_gateways_connected` | gauge | — | gateways connected to this replica (an open stream or long-poll, or seen within the last minute) |
//! | `control_outbox_lag` | gauge | `gateway` | per registered, non-revoked gateway: events written to its outbox and not acknowledged yet (one bounded query at scrape, at most [`MAX_LAG_ROWS`] gateways) |
//! | `control_store_readable` | gauge | — | `1` if that query answered, `0` if not |
//! | `control_store_commit_duration_seconds` | histogram | `op` | time of the store's write transactions in this process: `change_set` (a redirect or a hand-over applied: mapping, history, outbox), `ack` (a gateway's acknowledgement), `validated` (an SP confirmation recorded), `gateway_seen` (a gateway recorded against a device) |
//!
//! The store's histogram is process-wide (the store has no server state to
//! hang it on); several servers in one process (tests) share it.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use control_api::ErrorCode;
use control_api::sp::Verdict;
use enrollment_metrics::{COMMIT_BUCKETS, Counter, Exposition, Family, Gauge, Histogram, LATENCY_BUCKETS};
use sqlx::Row;

use crate::admin::http::{AdminHttpError, AdminState};
use crate::error::ApiError;
use crate::sp_client::ValidationError;
use crate::store::Store;

/// Most gateways `control_outbox_lag` reports (by id): a scrape costs one
/// bounded query whatever the registry holds.
pub const MAX_LAG_ROWS: i64 = 10_000;

/// Where a resolve's answer came from (the `source` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolveSource {
    /// Failed before the mapping table answered.
    None,
    Cache,
    Table,
    Sp,
    Stale,
}

impl ResolveSource {
    fn label(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Cache => "cache",
            Self::Table => "table",
            Self::Sp => "sp",
            Self::Stale => "stale",
        }
    }
}

const SOURCES: &[&str] = &["none", "cache", "table", "sp", "stale"];
const SP_OUTCOMES: &[&str] =
    &["confirm", "redirect", "reject", "timeout", "unreachable", "bad_answer", "http_redirect", "answer_too_large"];
const STORE_OPS: &[&str] = &["change_set", "ack", "validated", "gateway_seen"];

/// The control server's counters, histograms and gauges (one per
/// [`crate::ServerState`]; the store's commit histogram is process-wide).
#[derive(Debug)]
pub struct ControlMetrics {
    resolves: Family<Counter>,
    answers: Family<Counter>,
    resolve_seconds: Family<Histogram>,
    sp_validations: Family<Counter>,
    handovers: Family<Counter>,
    pub(crate) streams: Gauge,
}

impl Default for ControlMetrics {
    fn default() -> Self {
        let codes = || ErrorCode::ALL.iter().map(|c| c.as_str());
        Self {
            resolves: Family::new(
                "control_resolve_requests_total",
                "Authenticated resolve requests, by outcome (ok or the error code answered).",
                &["outcome"],
                std::iter::once("ok").chain(codes()).map(|o| [o]),
                Counter::new,
            ),
            answers: Family::new(
                "control_resolve_answers_total",
                "Successful resolves, by where the answer came from (cache, table, sp, stale).",
                &["source"],
                SOURCES[1..].iter().map(|s| [*s]),
                Counter::new,
            ),
            resolve_seconds: Family::new(
                "control_resolve_duration_seconds",
                "Time to answer a resolve request, by source (none: failed before the table answered).",
                &["source"],
                SOURCES.iter().map(|s| [*s]),
                || Histogram::new(LATENCY_BUCKETS),
            ),
            sp_validations: Family::new(
                "control_sp_validations_total",
                "Validation calls to SPs (one per hop of a redirect chain), by outcome.",
                &["outcome"],
                SP_OUTCOMES.iter().map(|o| [*o]),
                Counter::new,
            ),
            handovers: Family::new(
                "control_handovers_total",
                "Signed SP hand-overs received, accepted or refused with the error code answered.",
                &["outcome", "code"],
                std::iter::once(["accepted", "ok"]).chain(codes().map(|c| ["refused", c])),
                Counter::new,
            ),
            streams: Gauge::new(),
        }
    }
}

impl ControlMetrics {
    /// One authenticated resolve ended.
    pub(crate) fn resolved<T>(&self, answer: &Result<T, ApiError>, source: ResolveSource, took: Duration) {
        let outcome = match answer {
            Ok(_) => {
                self.answers.get(&[source.label()]).inc();
                "ok"
            }
            Err(e) => e.code_and_status().0.as_str(),
        };
        self.resolves.get(&[outcome]).inc();
        self.resolve_seconds.get(&[source.label()]).observe_duration(took);
    }

    /// One validation call to an SP ended.
    pub(crate) fn sp_validation(&self, result: &Result<Verdict, ValidationError>) {
        let outcome = match result {
            Ok(Verdict::Confirm) => "confirm",
            Ok(Verdict::Redirect { .. }) => "redirect",
            Ok(Verdict::Reject { .. }) => "reject",
            Err(ValidationError::Timeout { .. }) => "timeout",
            Err(ValidationError::Unreachable { .. }) => "unreachable",
            Err(ValidationError::HttpRedirect { .. }) => "http_redirect",
            Err(ValidationError::AnswerTooLarge { .. }) => "answer_too_large",
            Err(_) => "bad_answer",
        };
        self.sp_validations.get(&[outcome]).inc();
    }

    /// One SP hand-over was answered.
    pub(crate) fn handover<T>(&self, answer: &Result<T, ApiError>) {
        match answer {
            Ok(_) => self.handovers.get(&["accepted", "ok"]).inc(),
            Err(e) => self.handovers.get(&["refused", e.code_and_status().0.as_str()]).inc(),
        }
    }
}

/// The store's write transactions in this process, by operation.
pub(crate) static STORE_COMMIT: LazyLock<Family<Histogram>> = LazyLock::new(|| {
    Family::new(
        "control_store_commit_duration_seconds",
        "Time of the store's write transactions in this process, by operation.",
        &["op"],
        STORE_OPS.iter().map(|o| [*o]),
        || Histogram::new(COMMIT_BUCKETS),
    )
});

/// Records a store write (`op` one of `STORE_OPS`) that started at `started`.
pub(crate) fn store_commit(op: &str, started: Instant) {
    STORE_COMMIT.get(&[op]).observe_duration(started.elapsed());
}

/// `GET /metrics`, behind the admin token (see the module docs).
pub(crate) async fn serve(State(admin): State<AdminState>, headers: HeaderMap) -> Response {
    match admin.auth.check_bearer(&headers).await {
        Ok(Ok(())) => {}
        Ok(Err(refusal)) => return AdminHttpError::Refused(refusal).into_response(),
        Err(e) => return AdminHttpError::from(e).into_response(),
    }
    let text = render(&admin).await;
    ([(header::CONTENT_TYPE, enrollment_metrics::CONTENT_TYPE)], text).into_response()
}

/// Every metric of the module table, as `GET /metrics` serves it.
pub(crate) async fn render(admin: &AdminState) -> String {
    let state = &admin.server;
    let m = &state.metrics;
    let mut out = Exposition::new();
    out.family(&m.resolves).family(&m.answers).family(&m.resolve_seconds).family(&m.sp_validations).family(&m.handovers);
    out.gauge_value(
        "control_update_streams_connected",
        "Gateways' update streams (SSE) open on this replica now.",
        m.streams.get() as f64,
    );
    let lags = outbox_lags(&state.store).await;
    let connected = match &lags {
        Ok(rows) => rows.iter().filter(|(id, _)| admin.presence.of(id).connected()).count(),
        Err(_) => 0,
    };
    out.gauge_value(
        "control_gateways_connected",
        "Gateways connected to this replica (an open stream or long-poll, or seen within the last minute).",
        connected as f64,
    );
    if let Ok(rows) = &lags {
        out.gauge_values(
            "control_outbox_lag",
            "Events written to a gateway's outbox and not acknowledged yet.",
            &["gateway"],
            rows.iter().map(|(id, lag)| (vec![id.as_str()], *lag as f64)),
        );
    }
    if let Err(e) = &lags {
        tracing::warn!(error = %e, "metrics: the outbox lag query failed");
    }
    out.gauge_value(
        "control_store_readable",
        "1 if the store answered this scrape's outbox query, 0 if not.",
        if lags.is_ok() { 1.0 } else { 0.0 },
    );
    out.family(&STORE_COMMIT);
    out.into_string()
}

/// `(gateway, last written − acknowledged)` of every non-revoked gateway, by
/// id, at most [`MAX_LAG_ROWS`]: one query, the same SQL on both backends.
async fn outbox_lags(store: &Store) -> Result<Vec<(String, i64)>, sqlx::Error> {
    const SQL: &str = "SELECT g.id, g.last_seq, COALESCE(a.acked_seq, 0) FROM gateways g \
                       LEFT JOIN outbox_acks a ON a.gateway_id = g.id WHERE NOT g.revoked ORDER BY g.id LIMIT $1";
    fn lag(id: String, last: i64, acked: i64) -> (String, i64) {
        (id, (last - acked).max(0))
    }
    match store {
        Store::Sqlite(pool) => {
            let rows = sqlx::query(SQL).bind(MAX_LAG_ROWS).fetch_all(pool).await?;
            rows.iter().map(|r| Ok(lag(r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))).collect()
        }
        Store::Postgres(pool) => {
            let rows = sqlx::query(SQL).bind(MAX_LAG_ROWS).fetch_all(pool).await?;
            rows.iter().map(|r| Ok(lag(r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))).collect()
        }
    }
}
