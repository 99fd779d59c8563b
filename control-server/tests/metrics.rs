//! `GET /metrics` over real HTTP on loopback: behind the admin token, a
//! valid Prometheus exposition, and the counters move with resolves, SP
//! validations, hand-overs, streams and acknowledgements. Against SQLite
//! and (when `TEST_POSTGRES_URL` is set) PostgreSQL.

mod common;

use std::time::Duration;

use common::*;
use enrollment_metrics::check::{self, Scrape};
use serde_json::json;

const TOKEN: &str = "csadm_metrics-test-0123456789abcdef0123456789abcdef";
const LONG_AGO: Option<i64> = Some(1_000_000_000); // 2001: stale under any max_age

async fn scrape(h: &Harness) -> Scrape {
    let answer = h.http.get(format!("{}/metrics", h.base)).bearer_auth(TOKEN).send().await.expect("scrape");
    assert_eq!(answer.status().as_u16(), 200);
    let content_type = answer.headers()["content-type"].to_str().unwrap().to_owned();
    assert_eq!(content_type, enrollment_metrics::CONTENT_TYPE);
    let text = answer.text().await.expect("text");
    check::parse(&text).unwrap_or_else(|e| panic!("not a valid exposition: {e}\n{text}"))
}

async fn metrics_follow_what_the_server_does(backend: Backend) {
    let sps = vec![
        SpSpec { may_release: true, may_move_to: vec!["sp-two.example"], ..sp("sp-one.example") },
        SpSpec { may_claim: true, ..sp("sp-two.example") },
    ];
    let Some(h) = harness(backend, sps, |c| {
        // The admin token set below counts at once.
        c.policy.auth_cache_ttl_ms = 0;
        // Fresh, and already recorded against gw-1 (so the cache keeps it).
        c.mappings.push(mapping(DEV_A, "sp-one.example", &["gw-1"], None));
        // Stale: the SP is asked.
        c.mappings.push(mapping(DEV_B, "sp-one.example", &["gw-1"], LONG_AGO));
    })
    .await
    else {
        return;
    };

    // Off until an admin token is stored; then only with it.
    let off = h.http.get(format!("{}/metrics", h.base)).send().await.unwrap();
    assert_eq!(off.status().as_u16(), 403);
    control_server::admin::auth::set_token(h.store(), TOKEN).await.expect("set the admin token");
    let anonymous = h.http.get(format!("{}/metrics", h.base)).send().await.unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    let gateway = h.http.get(format!("{}/metrics", h.base)).header("authorization", basic(GW1)).send().await.unwrap();
    assert_eq!(gateway.status().as_u16(), 401, "gateway credentials are not the admin token");

    let before = scrape(&h).await;
    assert_eq!(before.value("control_resolve_requests_total", &[("outcome", "ok")]), Some(0.0));
    assert_eq!(before.value("control_outbox_lag", &[("gateway", "gw-1")]), Some(0.0));
    assert_eq!(before.value("control_store_readable", &[]), Some(1.0));

    // Resolves: from the table, then from the cache, then validated with the SP, then unknown.
    for device in [DEV_A, DEV_A, DEV_B] {
        let (status, body) = h.resolve(GW1, json!({ "device_id": device })).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, _) = h.resolve(GW1, json!({ "device_id": DEV_C })).await;
    assert_eq!(status, 404);

    // An update stream open.
    let stream = h.stream(GW1, 0).await;
    // Hand-overs: one accepted (DEV_A moves; gw-1 gets an event), one from an unknown SP.
    let ack = h.move_devices("sp-one.example", "sp-two.example", &[DEV_A]).await.expect("move");
    assert_eq!(ack.changed, 1);
    let refused = h.move_devices("sp-nine.example", "sp-two.example", &[DEV_B]).await;
    assert!(refused.is_err(), "an unknown SP's hand-over is refused");

    // The stream task counts itself once it runs: wait for it, without a clock.
    let mut after = scrape(&h).await;
    for _ in 0..100 {
        if after.value("control_update_streams_connected", &[]) == Some(1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        after = scrape(&h).await;
    }
    let resolves = |outcome: &str| after.value("control_resolve_requests_total", &[("outcome", outcome)]);
    assert_eq!(resolves("ok"), Some(3.0));
    assert_eq!(resolves("unknown_device"), Some(1.0));
    for (source, n) in [("table", 1.0), ("cache", 1.0), ("sp", 1.0), ("stale", 0.0)] {
        assert_eq!(after.value("control_resolve_answers_total", &[("source", source)]), Some(n), "source {source}");
    }
    assert_eq!(after.value("control_resolve_duration_seconds_count", &[("source", "none")]), Some(1.0));
    assert_eq!(after.sum("control_resolve_duration_seconds_count", &[]), 4.0);
    assert_eq!(after.value("control_sp_validations_total", &[("outcome", "confirm")]), Some(1.0));
    assert_eq!(after.value("control_handovers_total", &[("outcome", "accepted"), ("code", "ok")]), Some(1.0));
    assert_eq!(after.value("control_handovers_total", &[("outcome", "refused"), ("code", "unknown_sp")]), Some(1.0));
    assert_eq!(after.value("control_update_streams_connected", &[]), Some(1.0));
    assert_eq!(after.value("control_gateways_connected", &[]), Some(1.0));
    assert_eq!(after.value("control_outbox_lag", &[("gateway", "gw-1")]), Some(1.0), "one event not acknowledged");
    assert_eq!(after.value("control_outbox_lag", &[("gateway", "gw-2")]), Some(0.0));
    // The store's histogram is process-wide: at least what this test did.
    let commits = |op: &str| after.value("control_store_commit_duration_seconds_count", &[("op", op)]).unwrap_or(0.0);
    assert!(commits("change_set") >= 1.0 && commits("validated") >= 1.0, "{:?}", after.samples.len());

    // Acknowledged: no lag, one more commit.
    let (status, _) = h.ack(GW1, 1).await;
    assert_eq!(status, 200);
    drop(stream);
    let acked = scrape(&h).await;
    assert_eq!(acked.value("control_outbox_lag", &[("gateway", "gw-1")]), Some(0.0));
    assert!(acked.value("control_store_commit_duration_seconds_count", &[("op", "ack")]).unwrap_or(0.0) >= 1.0);
}

both_backends!(metrics_follow_what_the_server_does);
