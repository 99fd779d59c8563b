//! Issue 13 on the control server: acknowledgements are one row per gateway
//! and prune boundedly; a change committed by another replica wakes streams
//! and drops cached mapping rows at once (PostgreSQL `LISTEN/NOTIFY`), and
//! the safety sweep delivers what no notice announces (SQLite written by a
//! second server). Behaviour only; latencies are measured by
//! `benches/cross_replica.rs`.

mod common;

use std::time::Duration;

use common::*;
use control_server::config::Config;
use control_server::store::Store;
use control_server::{ServerState, sp_sim};
use control_api::sp::MovePayload;
use control_server::MovePayloadExt;
use serde_json::json;
use sqlx::Row;

const WITHIN: Duration = Duration::from_secs(10);

fn one_and_two() -> Vec<SpSpec> {
    vec![
        SpSpec { may_release: true, may_move_to: vec!["sp-two.example"], ..sp("sp-one.example") },
        SpSpec { may_release: true, may_move_to: vec!["sp-one.example"], ..sp("sp-two.example") },
    ]
}

async fn scalar(store: &Store, sql: &'static str) -> i64 {
    match store {
        Store::Sqlite(pool) => sqlx::query(sql).fetch_one(pool).await.unwrap().try_get(0).unwrap(),
        Store::Postgres(pool) => sqlx::query(sql).fetch_one(pool).await.unwrap().try_get(0).unwrap(),
    }
}

async fn acks_move_forward_and_prune_boundedly(backend: Backend) {
    let Some(h) = harness(backend, one_and_two(), |c| {
        c.policy.outbox_retention_secs = 0;
        for d in [DEV_A, DEV_B, DEV_C] {
            c.mappings.push(mapping(d, "sp-one.example", &["gw-1"], None));
        }
    })
    .await
    else {
        return;
    };
    h.move_devices("sp-one.example", "sp-two.example", &[DEV_A, DEV_B]).await.unwrap();
    h.move_devices("sp-one.example", "sp-two.example", &[DEV_C]).await.unwrap();
    let (status, body) = h.ack(GW1, 4).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_ack")), "beyond the last sequence");
    tokio::time::sleep(Duration::from_millis(5)).await; // the rows are older than the retention of 0 s
    assert_eq!(h.ack(GW1, 2).await.0, 200);
    const POSITION: &str = "SELECT acked_seq FROM outbox_acks WHERE gateway_id = 'gw-1'";
    const LEFT: &str = "SELECT COUNT(*) FROM outbox WHERE gateway_id = 'gw-1'";
    assert_eq!(scalar(h.store(), POSITION).await, 2);
    assert_eq!(scalar(h.store(), LEFT).await, 1, "the first ack of a gateway prunes what it acknowledged");
    assert_eq!(h.ack(GW1, 1).await.0, 200, "an old ack arriving late is accepted …");
    assert_eq!(scalar(h.store(), POSITION).await, 2, "… and changes nothing");
    assert_eq!(h.ack(GW1, 3).await.0, 200);
    assert_eq!(scalar(h.store(), POSITION).await, 3);
    assert_eq!(scalar(h.store(), LEFT).await, 1, "no prune on every ack: the next one is due after PRUNE_INTERVAL_MS");
    // Resuming does not depend on acknowledgements.
    let events = h.poll(GW1, 2).await;
    assert_eq!(events["events"][0]["seq"], 3);
}

async fn a_change_on_another_replica_reaches_streams_and_caches(backend: Backend) {
    let postgres = backend == Backend::Postgres;
    let Some(h) = harness(backend, one_and_two(), |c| {
        c.mappings.push(mapping(DEV_A, "sp-one.example", &["gw-1"], None));
        // PostgreSQL: an hour, so only the notice can deliver in time. SQLite
        // has no notices across processes: the sweep delivers.
        c.push.safety_poll_ms = if postgres { 3_600_000 } else { 100 };
    })
    .await
    else {
        return;
    };
    // Replica B: another server on the same database.
    let store_b = Store::connect(&h.db_url).await.expect("connect replica B");
    let b = control_server::start(ServerState::new(store_b, Config::default()).await.unwrap(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let base_b = format!("http://{}", b.addr);

    let (status, answer) = h.resolve(GW1, json!({ "device_id": DEV_A })).await;
    assert_eq!((status, answer["sp"].as_str()), (200, Some("sp-one.example")), "A caches the row");
    let mut stream = h.stream(GW1, 0).await;
    let payload = MovePayload::new("sp-one.example", "sp-two.example", vec![DEV_A.into()], None);
    sp_sim::send_move(&h.http, &base_b, &sp_key("sp-one.example"), &payload).await.expect("move on B");
    let event = stream.next(WITHIN).await.expect("B's change reaches a stream on A");
    assert_eq!((event.data["seq"].as_u64(), event.data["device_id"].as_str()), (Some(1), Some(DEV_A)));
    if postgres {
        let (_, answer) = h.resolve(GW1, json!({ "device_id": DEV_A })).await;
        assert_eq!(answer["sp"], "sp-two.example", "the notice dropped A's cached row (the TTL is 60 s)");
    }
    b.stop().await;
}

both_backends!(acks_move_forward_and_prune_boundedly, a_change_on_another_replica_reaches_streams_and_caches);
