//! Fail-over between control-server replicas (issue 13): two real
//! `control-server` processes on one PostgreSQL database, a gateway that
//! knows both. Replica A (preferred) is killed with SIGKILL; the gateway
//! streams from B, resumes from its stored position and applies every event
//! exactly once; A comes back and the gateway returns to it after
//! `prefer_primary_after_ms`. Behaviour only: the time it takes is measured
//! by `benches/failover.rs`.
//!
//! Needs `TEST_POSTGRES_URL` (`eval "$(scripts/postgres env)"`) and the
//! `control-server` binary (`cargo build -p control-server --bins`).

#[path = "replicas_support.rs"]
mod replicas;

use std::time::Duration;

use replicas::{Replicas, SP_ONE, SP_TWO, device, postgres_database, wait_for};

const WITHIN: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_replica_is_replaced_and_nothing_is_missed_or_repeated() {
    let Some(database) = postgres_database().await else { return };
    let mut replicas = Replicas::start(database, 30).await.expect("two replicas");
    let (gateway, _stop) = replicas.gateway(1_000).expect("gateway");
    let (a, b) = (replicas.a.url(), replicas.b.url());
    let ids: Vec<String> = (0..30).map(device).collect();

    // Streaming from A: events posted to A and to B (the other replica) arrive.
    wait_for(&gateway, WITHIN, "connected", |s| s.connected).await.unwrap();
    assert_eq!(replicas.hand_over(&a, SP_ONE, SP_TWO, &ids[0..5]).await.unwrap(), 5);
    assert_eq!(replicas.hand_over(&b, SP_ONE, SP_TWO, &ids[5..10]).await.unwrap(), 5);
    wait_for(&gateway, WITHIN, "first 10 events", |s| s.last_seq == 10).await.unwrap();

    // A dies; what is posted to B meanwhile reaches the gateway through B.
    replicas.a.kill();
    assert_eq!(replicas.hand_over(&b, SP_ONE, SP_TWO, &ids[10..20]).await.unwrap(), 10);
    wait_for(&gateway, WITHIN, "events posted to B after A died", |s| {
        s.last_seq == 20 && s.connected && s.control_url.as_deref() == Some(b.as_str())
    })
    .await
    .unwrap();
    let resolved = gateway.store().device(ids[15].parse().unwrap()).await.unwrap().expect("pushed device");
    assert_eq!(resolved.sp.map(|s| s.as_str().to_owned()).as_deref(), Some(SP_TWO));

    // A is back: after prefer_primary_after_ms the gateway returns to it.
    replicas.restart_a().expect("restart A");
    wait_for(&gateway, WITHIN, "streaming from the preferred replica again", |s| {
        s.connected && s.control_url.as_deref() == Some(a.as_str())
    })
    .await
    .unwrap();
    // B dies now: the gateway is on A and still hears everything.
    replicas.b.kill();
    assert_eq!(replicas.hand_over(&a, SP_ONE, SP_TWO, &ids[20..30]).await.unwrap(), 10);
    wait_for(&gateway, WITHIN, "events posted to A", |s| s.last_seq == 30).await.unwrap();

    // Every event applied exactly once: 30 applied, none skipped as a replay
    // would be counted separately, positions dense.
    let state = gateway.stream_state().borrow().clone();
    assert_eq!(state.updates_applied, 30, "{state:?}");
    for id in &ids {
        let d = gateway.store().device(id.parse().unwrap()).await.unwrap().expect("known");
        assert_eq!(d.sp.map(|s| s.as_str().to_owned()).as_deref(), Some(SP_TWO), "{id}");
    }
}
