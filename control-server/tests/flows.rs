//! Every control server flow over real HTTP on loopback, against SQLite and
//! (when `TEST_POSTGRES_URL` is set) PostgreSQL.

mod common;

use std::time::Duration;

use common::*;
use control_api::sp::MovePayload;
use control_server::MovePayloadExt;
use control_server::config::{PushMode, UnseenDevices};
use control_server::sp_sim::Behaviour;
use serde_json::json;

const LONG_AGO: Option<i64> = Some(1_000_000_000); // 2001: stale under any max_age

fn one_and_two() -> Vec<SpSpec> {
    vec![
        SpSpec { may_release: true, may_move_to: vec!["sp-two.example"], ..sp("sp-one.example") },
        SpSpec { may_claim: true, ..sp("sp-two.example") },
    ]
}

async fn resolve_from_table(backend: Backend) {
    let Some(h) = harness(backend, one_and_two(), |c| {
        c.mappings.push(mapping(DEV_A, "sp-one.example", &[], None));
    })
    .await
    else {
        return;
    };
    let (status, body) = h.resolve(GW1, json!({ "device_id": "ac:de:48:00:00:80" })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["device_id"], DEV_A);
    assert_eq!(body["sp"], "sp-one.example");
    assert_eq!(body["source"], "table");
    assert_eq!(body["service_type"], "metering");
    assert_eq!(body["identifier"], serde_json::Value::Null);
    assert_eq!(h.sp_calls("sp-one.example").await, 0, "a fresh association is answered without the SP");
    // The asking gateway is recorded against the device.
    let row = h.store().mapping(DEV_A).await.unwrap().unwrap();
    assert_eq!(row.gateways, vec!["gw-1".to_owned()]);
    // A device not in the table.
    let (status, body) = h.resolve(GW1, json!({ "device_id": DEV_B })).await;
    assert_eq!((status, body["error"].as_str()), (404, Some("unknown_device")));
}

async fn stale_is_validated_with_the_sp(backend: Backend) {
    let Some(h) = harness(backend, one_and_two(), |c| {
        c.mappings.push(mapping(DEV_A, "sp-one.example", &[], LONG_AGO));
    })
    .await
    else {
        return;
    };
    let (status, body) = h.resolve(GW1, json!({ "device_id": DEV_A, "geo": { "lat": 52.0, "lon": 4.0 } })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["source"], "sp");
    assert_eq!(body["sp"], "sp-one.example");
    assert_eq!(h.sp_calls("sp-one.example").await, 1);
    let row = h.store().mapping(DEV_A).await.unwrap().unwrap();
    assert!(row.validated_at > 1_000_000_000_000, "validated_at refreshed");
    // Now fresh: from the table, no second SP call.
    let (_, body) = h.resolve(GW1, json!({ "device_id": DEV_A })).await;
    assert_eq!(body["source"], "table");
    assert_eq!(h.sp_calls("sp-one.example").await, 1);
    assert!(h.store().history(DEV_A).await.unwrap().is_empty(), "a confirmation is not a change");
}

async fn redirect_then_confirm_moves_the_device(backend: Backend) {
    let mut sps = one_and_two();
    sps[0].behaviour = Behaviour::Redirect("sp-two.example".into());
    let Some(h) = harness(backend, sps, |c| {
        c.mappings.push(mapping(DEV_A, "sp-one.example", &["gw-2"], LONG_AGO));
    })
    .await
    else {
        return;
    };
    let (status, body) = h.resolve(GW1, json!({ "device_id": DEV_A })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sp"], "sp-two.example");
    assert_eq!(body["source"], "sp");
    assert_eq!(h.sp_calls("sp-one.example").await, 1);
    assert_eq!(h.sp_calls("sp-two.example").await, 1);
    let row = h.store().mapping(DEV_A).await.unwrap().unwrap();
    assert_eq!(row.sp, "sp-two.example");
    let history = h.store().history(DEV_A).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].old_sp.as_deref(), Some("sp-one.example"));
    assert_eq!(history[0].new_sp, "sp-two.example");
    assert_eq!(history[0].changed_by, "redirect:sp-one.example>sp-two.example");
    // The device's other gateway is told.
    let events = h.poll(GW2, 0).await;
    assert_eq!(events["events"].as_array().unwrap().len(), 1, "{events}");
    assert_eq!(events["events"][0]["sp"], "sp-two.example");
    assert_eq!(events["events"][0]["previous_sp"], "sp-one.example");
    assert_eq!(events["events"][0]["seq"], 1);
}

async fn redirect_loop_is_an_error(backend: Backend) {
    let mut sps = one_and_two();
    sps[0].behaviour = Behaviour::Redirect("sp-two.example".into());
    sps[1].behaviour = Behaviour::Redirect("sp-one.example".into());
    let Some(h) = harness(backend, sps, |c| {
        c.mappings.push(mapping(DEV_A, "sp-one.example", &[], LONG_AGO));
    })
    .await
    else {
        return;
    };
    let (status, body) = h.resolve(GW1, json!({ "device_id": DEV_A })).await;
    assert_eq!((status, body["error"].as_str()), (508, Some("redirect_loop")), "{body}");
    assert!(body["message"].as_str().unwrap().contains("sp-one.example → sp-two.example → sp-one.example"));
    assert_eq!(h.store().mapping(DEV_A).await.unwrap().unwrap().sp, "sp-one.example", "table untouched");
    assert!(h.store().history(DEV_A).await.unwrap().is_empty());
}

async fn long_redirect_chain_is_cut(backend: Backend) {
    let mut sps = vec![sp("sp-one.example"), sp("sp-two.example"), sp("sp-three.example"), sp("sp-four.example")];
    sps[0].behaviour = Behaviour::Redirect("sp-two.example".into());
    sps[1].behaviour = Behaviour::Redirect("sp-three.example".into());
    sps[2].behaviour = Behaviour::Redirect("sp-four.example".into());
    let Some(h) = harness(backend, sps, |c| {
        c.policy.max_redirects = 2;
        c.mappings.push(mapping(DEV_A, "sp-one.example", &[], LONG_AGO));
    })
    .await
    else {
        return;
    };
    let (status, body) = h.resolve(GW1, json!({ "device_id": DEV_A })).await;
    assert_eq!((status, body["error"].as_str()), (508, Some("too_many_redirects")), "{body}");
    assert_eq!(h.sp_calls("sp-four.example").await, 0);
}

async fn redirect_to_unregistered_sp(backend: Backend) {
    let mut sps = one_and_two();
    sps[0].behaviour = Behaviour::Redirect("sp-rogue.example".into());
    let Some(h) = harness(backend, sps, |c| {
        c.mappings.push(mapping(DEV_A, "sp-one.example", &[], LONG_AGO));
    })
    .await
    else {
        return;
    };
    let (status, body) = h.resolve(GW1, json!({ "device_id": DEV_A })).await;
    assert_eq!((status, body["error"].as_str()), (422, Some("unknown_sp")), "{body}");
}

async fn reject_is_an_error(backend: Backend) {
    let mut sps = one_and_two();
    sps[0].behaviour = Behaviour::Reject("contract ended".into());
    let Some(h) = harness(backend, sps, |c| {
        c.mappings.push(mapping(DEV_A, "sp-one.example", &[], LONG_AGO));
    })
    .await
    else {
        return;
    };
    let (status, body) = h.resolve(GW1, json!({ "device_id": DEV_A })).await;
    assert_eq!((status, body["error"].as_str()), (409, Some("sp_rejected")), "{body}");
    assert!(body["message"].as_str().unwrap().contains("contract ended"));
}

async fn sp_down_or_slow_is_unreachable(backend: Backend) {
    let Some(h) = harness(backend, one_and_two(), |c| {
        c.policy.sp_timeout_ms = 300;
        c.mappings.push(mapping(DEV_A, "sp-one.example", &[], LONG_AGO));
        c.mappings.push(mapping(DEV_B, "sp-one.example", &[], LONG_AGO));
    })
    .await
    else {
        return;
    };
    h.set_verdict("sp-one.example", Some(DEV_A), "down").await;
    let (status, body) = h.resolve(GW1, json!({ "device_id": DEV_A })).await;
    assert_eq!((status, body["error"].as_str()), (502, Some("sp_unreachable")), "{body}");
    h.set_verdict("sp-one.example", Some(DEV_B), "slow:2000").await;
    let (status, body) = h.resolve(GW1, json!({ "device_id": DEV_B })).await;
    assert_eq!((status, body["error"].as_str()), (504, Some("sp_unreachable")), "{body}");
    // Nothing listening at all.
    let sim = h.sps.get("sp-one.example").unwrap();
    let _ = sim; // keep sp-two running; stop sp-one's port by re-registering it at a dead address
    h.store()
        .upsert_sp(&control_server::store::SpRecord {
            identity: "sp-one.example".into(),
            base_url: "http://127.0.0.1:9".into(),
            public_key: sp_key("sp-one.example").verifying_key().to_bytes().to_vec(),
            endpoint: None,
            device_public_key: None,
            may_release: true,
            may_claim: false,
            may_move_to: vec![],
        })
        .await
        .unwrap();
    let (status, body) = h.resolve(GW1, json!({ "device_id": DEV_A })).await;
    assert_eq!((status, body["error"].as_str()), (502, Some("sp_unreachable")), "{body}");
}

async fn stale_answer_when_policy_allows(backend: Backend) {
    let mut sps = one_and_two();
    sps[0].behaviour = Behaviour::Down;
    let Some(h) = harness(backend, sps, |c| {
        c.policy.allow_stale_when_sp_down = true;
        c.mappings.push(mapping(DEV_A, "sp-one.example", &[], LONG_AGO));
    })
    .await
    else {
        return;
    };
    let (status, body) = h.resolve(GW1, json!({ "device_id": DEV_A })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["stale"], true);
    assert_eq!(body["source"], "table");
    assert_eq!(body["sp"], "sp-one.example");
    // A rejection is never papered over.
    h.set_verdict("sp-one.example", None, "reject").await;
    let (status, body) = h.resolve(GW1, json!({ "device_id": DEV_A })).await;
    assert_eq!((status, body["error"].as_str()), (409, Some("sp_rejected")));
}

async fn full_identifier_mode(backend: Backend) {
    let Some(h) = harness(backend, one_and_two(), |c| {
        let mut m = mapping(DEV_A, "sp-one.example", &[], None);
        m.access = Some(sp_bound_id::AccessTechnology::Wifi);
        c.mappings.push(m);
        c.mappings.push(mapping(DEV_B, "sp-one.example", &[], None));
    })
    .await
    else {
        return;
    };
    let (_, body) = h.resolve(GW1, json!({ "device_id": DEV_A, "full_identifier": true })).await;
    assert_eq!(body["identifier"], "sp-one.example/wifi/AC-DE-48-00-00-80");
    // Access from the request when the table does not know it.
    let (_, body) = h.resolve(GW1, json!({ "device_id": DEV_B, "full_identifier": true, "access": "ble" })).await;
    assert_eq!(body["identifier"], "sp-one.example/ble/AC-DE-48-00-00-81");
    // Unknown access: no identifier.
    let (status, body) = h.resolve(GW1, json!({ "device_id": DEV_B, "full_identifier": true })).await;
    assert_eq!(status, 200);
    assert_eq!(body["identifier"], serde_json::Value::Null);
    // An EUI-48 is not a Zigbee device id.
    let (status, body) = h.resolve(GW1, json!({ "device_id": DEV_B, "access": "zigbee" })).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_device_id")));
}

async fn move_by_current_sp(backend: Backend) {
    let Some(h) = harness(backend, one_and_two(), |c| {
        c.mappings.push(mapping(DEV_A, "sp-one.example", &["gw-1", "gw-2"], None));
        c.mappings.push(mapping(DEV_B, "sp-one.example", &["gw-1"], None));
    })
    .await
    else {
        return;
    };
    let ack = h.move_devices("sp-one.example", "sp-two.example", &[DEV_A, DEV_B]).await.expect("accepted");
    assert_eq!((ack.devices, ack.changed, ack.created, ack.gateways, ack.events), (2, 2, 0, 2, 3));
    let (_, body) = h.resolve(GW1, json!({ "device_id": DEV_A })).await;
    assert_eq!(body["sp"], "sp-two.example", "the cache was invalidated");
    let history = h.store().history(DEV_B).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].changed_by, "sp-one.example");
    assert_eq!(history[0].message_id.as_deref(), Some(ack.message_id.as_str()));
    let gw1 = h.poll(GW1, 0).await;
    let seqs: Vec<u64> = gw1["events"].as_array().unwrap().iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, vec![1, 2]);
    assert_eq!(gw1["next"], 2);
    assert_eq!(h.poll(GW2, 0).await["events"].as_array().unwrap().len(), 1);
}

async fn move_claimed_by_new_sp(backend: Backend) {
    let Some(h) = harness(backend, one_and_two(), |c| {
        c.mappings.push(mapping(DEV_A, "sp-one.example", &["gw-1"], None));
    })
    .await
    else {
        return;
    };
    let ack = h.move_devices("sp-two.example", "sp-two.example", &[DEV_A]).await.expect("accepted");
    assert_eq!(ack.changed, 1);
    assert_eq!(h.store().mapping(DEV_A).await.unwrap().unwrap().sp, "sp-two.example");
    assert_eq!(h.store().history(DEV_A).await.unwrap()[0].changed_by, "sp-two.example");
}

async fn unauthorized_senders_are_refused(backend: Backend) {
    let mut sps = one_and_two();
    sps.push(sp("sp-three.example"));
    let Some(h) = harness(backend, sps, |c| {
        c.mappings.push(mapping(DEV_A, "sp-one.example", &["gw-1"], None));
    })
    .await
    else {
        return;
    };
    // Neither current nor new SP.
    let err = h.move_devices("sp-three.example", "sp-two.example", &[DEV_A]).await.unwrap_err();
    assert_eq!(err.code(), Some("not_authorized"), "{err}");
    // The new SP, but not authorized to claim.
    let err = h.move_devices("sp-three.example", "sp-three.example", &[DEV_A]).await.unwrap_err();
    assert_eq!(err.code(), Some("not_authorized"), "{err}");
    // The current SP, but not allowed to move devices to that SP.
    let err = h.move_devices("sp-one.example", "sp-three.example", &[DEV_A]).await.unwrap_err();
    assert_eq!(err.code(), Some("not_authorized"), "{err}");
    // The current SP of one device but not of the other: the whole message is refused.
    let err = h.move_devices("sp-one.example", "sp-two.example", &[DEV_A, DEV_B]).await.unwrap_err();
    assert_eq!(err.code(), Some("not_authorized"), "{err}");
    assert_eq!(h.store().mapping(DEV_A).await.unwrap().unwrap().sp, "sp-one.example");
    assert!(h.store().mapping(DEV_B).await.unwrap().is_none(), "nothing half-written");
    assert!(h.store().history(DEV_A).await.unwrap().is_empty());
    assert_eq!(h.poll(GW1, 0).await["events"].as_array().unwrap().len(), 0);
}

async fn replays_and_old_messages_are_refused(backend: Backend) {
    let Some(h) = harness(backend, one_and_two(), |c| {
        c.mappings.push(mapping(DEV_A, "sp-one.example", &["gw-1"], None));
    })
    .await
    else {
        return;
    };
    let payload = MovePayload::new("sp-one.example", "sp-two.example", vec![DEV_A.into()], None);
    let bytes = payload.sign(&sp_key("sp-one.example")).unwrap();
    control_server::sp_sim::send_message(&h.http, &h.base, bytes.clone()).await.expect("first is accepted");
    let err = control_server::sp_sim::send_message(&h.http, &h.base, bytes).await.unwrap_err();
    assert_eq!(err.code(), Some("replayed_message"), "{err}");
    // Same nonce, new signature (different devices): still a replay.
    let mut again = payload.clone();
    again.devices = vec![DEV_B.into()];
    let err = control_server::sp_sim::send_message(&h.http, &h.base, again.sign(&sp_key("sp-one.example")).unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("replayed_message"));
    // Ten minutes old.
    let mut old = MovePayload::new("sp-two.example", "sp-two.example", vec![DEV_A.into()], None);
    old.timestamp -= 600;
    let err = control_server::sp_sim::send_message(&h.http, &h.base, old.sign(&sp_key("sp-two.example")).unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("timestamp_out_of_window"));
    assert_eq!(h.store().history(DEV_A).await.unwrap().len(), 1);
}

async fn bad_signatures_and_unknown_sps(backend: Backend) {
    let Some(h) = harness(backend, one_and_two(), |c| {
        c.mappings.push(mapping(DEV_A, "sp-one.example", &["gw-1"], None));
    })
    .await
    else {
        return;
    };
    let payload = MovePayload::new("sp-one.example", "sp-two.example", vec![DEV_A.into()], None);
    let forged = payload.sign(&sp_key("sp-two.example")).unwrap();
    let err = control_server::sp_sim::send_message(&h.http, &h.base, forged).await.unwrap_err();
    assert_eq!(err.code(), Some("bad_signature"), "{err}");
    let mut tampered = payload.sign(&sp_key("sp-one.example")).unwrap();
    let n = tampered.len();
    tampered[n - 70] ^= 0x01; // inside the signature
    let err = control_server::sp_sim::send_message(&h.http, &h.base, tampered).await.unwrap_err();
    assert_eq!(err.code(), Some("bad_signature"), "{err}");
    // kid of an SP that is not registered.
    let rogue = MovePayload::new("sp-rogue.example", "sp-rogue.example", vec![DEV_A.into()], None);
    let err = control_server::sp_sim::send_message(&h.http, &h.base, rogue.sign(&sp_key("sp-rogue.example")).unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("unknown_sp"));
    assert!(matches!(err, control_server::sp_sim::SendError::Refused { status: 403, .. }));
    // Moving to an SP that is not registered.
    let err = h.move_devices("sp-one.example", "sp-nowhere.example", &[DEV_A]).await.unwrap_err();
    assert!(matches!(err, control_server::sp_sim::SendError::Refused { status: 422, .. }), "{err}");
    assert_eq!(h.store().mapping(DEV_A).await.unwrap().unwrap().sp, "sp-one.example");
}

async fn oversize_batches_are_refused(backend: Backend) {
    let Some(h) = harness(backend, one_and_two(), |c| {
        c.policy.max_batch = 10;
    })
    .await
    else {
        return;
    };
    let devices: Vec<String> = (0..11).map(|i| format!("AC-DE-48-00-01-{i:02X}")).collect();
    let refs: Vec<&str> = devices.iter().map(String::as_str).collect();
    let err = h.move_devices("sp-two.example", "sp-two.example", &refs).await.unwrap_err();
    assert_eq!(err.code(), Some("batch_too_large"), "{err}");
    assert!(matches!(err, control_server::sp_sim::SendError::Refused { status: 413, .. }));
    assert!(h.store().mapping(&devices[0]).await.unwrap().is_none());
    let ack = h.move_devices("sp-two.example", "sp-two.example", &refs[..10]).await.expect("10 is within the limit");
    assert_eq!(ack.created, 10);
}

async fn bad_input_gets_specific_errors(backend: Backend) {
    let Some(h) = harness(backend, one_and_two(), |c| {
        c.mappings.push(mapping(DEV_A, "sp-one.example", &[], None));
    })
    .await
    else {
        return;
    };
    let (status, body) = h.resolve_raw(GW1, "{\"device_id\": ").await;
    assert_eq!((status, body["error"].as_str()), (400, Some("malformed_request")));
    let (status, body) = h.resolve(GW1, json!({ "device_id": DEV_A, "colour": "blue" })).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("unknown_field")), "{body}");
    for bad in ["AC-DE-48-00-00", "01-00-5E-00-00-01", "zz-de-48-00-00-80", ""] {
        let (status, body) = h.resolve(GW1, json!({ "device_id": bad })).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_device_id")), "{bad}: {body}");
    }
    let (status, body) = h.resolve(GW1, json!({ "device_id": DEV_A, "access": "carrier-pigeon" })).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("malformed_request")));
    let (status, body) = h.resolve(GW1, json!({ "device_id": DEV_A, "subscription": "gw-2" })).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("not_authorized")));
    // Unsolicited endpoint.
    let post = |ct: &'static str, body: Vec<u8>| {
        h.http.post(format!("{}/v1/sp/associations", h.base)).header("content-type", ct).body(body).send()
    };
    let answer = post("application/json", b"{}".to_vec()).await.unwrap();
    assert_eq!(answer.status().as_u16(), 415);
    let answer = post("application/cose", b"not cbor".to_vec()).await.unwrap();
    assert_eq!(answer.status().as_u16(), 400);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["error"], "malformed_request");
    let err = h.move_devices("sp-one.example", "sp-two.example", &[DEV_A, "FF-FF-FF-FF-FF-FF"]).await.unwrap_err();
    assert_eq!(err.code(), Some("invalid_device_id"));
    assert_eq!(h.store().mapping(DEV_A).await.unwrap().unwrap().sp, "sp-one.example");
    // Outbox endpoints.
    let (status, body) = h.ack(GW1, 5).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_ack")));
    let answer = h
        .http
        .post(format!("{}/v1/updates/ack", h.base))
        .header("authorization", basic(GW1))
        .body(r#"{"seq":0,"extra":1}"#)
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["error"], "unknown_field");
    let answer = h
        .http
        .get(format!("{}/v1/updates/poll?after=minus-one", h.base))
        .header("authorization", basic(GW1))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 400);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["error"], "malformed_request");
}

async fn unknown_and_revoked_gateways(backend: Backend) {
    let Some(h) = harness(backend, one_and_two(), |c| {
        c.policy.auth_cache_ttl_ms = 0;
        c.mappings.push(mapping(DEV_A, "sp-one.example", &[], None));
    })
    .await
    else {
        return;
    };
    let ask = json!({ "device_id": DEV_A });
    assert_eq!(h.resolve(GW1, ask.clone()).await.0, 200);
    let (status, body) = h.resolve(("gw-9", "whatever"), ask.clone()).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("unknown_gateway")));
    let (status, body) = h.resolve(("gw-1", "wrong"), ask.clone()).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("unauthenticated")));
    let answer = h.http.post(format!("{}/v1/resolve", h.base)).json(&ask).send().await.unwrap();
    assert_eq!(answer.status().as_u16(), 401);
    assert!(h.store().revoke_gateway("gw-1").await.unwrap());
    let (status, body) = h.resolve(GW1, ask.clone()).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("revoked_gateway")));
    let answer = h
        .http
        .get(format!("{}/v1/updates/poll", h.base))
        .header("authorization", basic(GW1))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 403);
    assert_eq!(h.resolve(GW2, ask).await.0, 200, "other gateways are unaffected");
}

async fn outbox_resumes_after_disconnect(backend: Backend) {
    let Some(h) = harness(backend, one_and_two(), |c| {
        c.sps[0].may_move_to = vec!["*".into()];
        c.sps[1].may_release = true;
        c.sps[1].may_move_to = vec!["*".into()];
        c.mappings.push(mapping(DEV_A, "sp-one.example", &["gw-1"], None));
        c.mappings.push(mapping(DEV_B, "sp-one.example", &["gw-1"], None));
        c.mappings.push(mapping(DEV_C, "sp-one.example", &["gw-1"], None));
    })
    .await
    else {
        return;
    };
    let wait = Duration::from_secs(10);
    let mut stream = h.stream(GW1, 0).await;
    h.move_devices("sp-one.example", "sp-two.example", &[DEV_A]).await.unwrap();
    let first = stream.next(wait).await.expect("live event");
    assert_eq!(first.id.as_deref(), Some("1"));
    assert_eq!(first.event.as_deref(), Some("association"));
    assert_eq!(first.data["device_id"], DEV_A);
    assert_eq!(h.ack(GW1, 1).await.0, 200);
    drop(stream); // the gateway goes offline

    h.move_devices("sp-one.example", "sp-two.example", &[DEV_B]).await.unwrap();
    h.move_devices("sp-two.example", "sp-one.example", &[DEV_A]).await.unwrap();
    h.move_devices("sp-one.example", "sp-two.example", &[DEV_C]).await.unwrap();

    let mut stream = h.stream(GW1, 1).await;
    let mut got = Vec::new();
    for _ in 0..3 {
        let e = stream.next(wait).await.expect("missed event replayed");
        got.push((e.data["seq"].as_u64().unwrap(), e.data["device_id"].as_str().unwrap().to_owned()));
    }
    assert_eq!(got, vec![(2, DEV_B.to_owned()), (3, DEV_A.to_owned()), (4, DEV_C.to_owned())]);
    assert!(stream.next(Duration::from_millis(300)).await.is_none(), "exactly the missed events");
    // Live again after the replay.
    h.move_devices("sp-two.example", "sp-one.example", &[DEV_B]).await.unwrap();
    let live = stream.next(wait).await.expect("live after replay");
    assert_eq!(live.data["seq"], 5);
    assert_eq!(live.data["previous_sp"], "sp-two.example");
    // Long-poll sees the same sequence; a waiting poll is woken by a change.
    let poll = h.poll(GW1, 3).await;
    assert_eq!(poll["events"].as_array().unwrap().len(), 2);
    assert_eq!(poll["next"], 5);
    let waiting = {
        let http = h.http.clone();
        let url = format!("{}/v1/updates/poll?after=5&wait_ms=10000", h.base);
        tokio::spawn(async move {
            let answer = http.get(url).header("authorization", basic(GW1)).send().await.unwrap();
            answer.json::<serde_json::Value>().await.unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    h.move_devices("sp-one.example", "sp-two.example", &[DEV_A]).await.unwrap();
    let woke = waiting.await.unwrap();
    assert_eq!(woke["events"][0]["seq"], 6, "{woke}");
    assert_eq!(h.ack(GW1, 6).await.0, 200);
}

async fn unseen_devices_pushed_per_policy(backend: Backend) {
    // Policy: push devices the table did not have to every gateway.
    let Some(h) = harness(backend, one_and_two(), |c| {
        c.push.unseen_devices = UnseenDevices::AllGateways;
    })
    .await
    else {
        return;
    };
    let ack = h.move_devices("sp-two.example", "sp-two.example", &[DEV_A, DEV_B]).await.expect("claim");
    assert_eq!((ack.created, ack.gateways, ack.events), (2, 2, 4));
    for gw in [GW1, GW2] {
        let events = h.poll(gw, 0).await;
        let events = events["events"].as_array().unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0]["previous_sp"], serde_json::Value::Null);
        assert_eq!(events[0]["sp"], "sp-two.example");
    }
    let (_, body) = h.resolve(GW1, json!({ "device_id": DEV_B })).await;
    assert_eq!(body["sp"], "sp-two.example", "created devices resolve");

    // Default policy: created, but nobody is told.
    let Some(h) = harness(backend, one_and_two(), |_| {}).await else { return };
    let ack = h.move_devices("sp-two.example", "sp-two.example", &[DEV_A]).await.expect("claim");
    assert_eq!((ack.created, ack.events), (1, 0));
    assert_eq!(h.poll(GW1, 0).await["events"].as_array().unwrap().len(), 0);

    // Push disabled: known devices change silently.
    let Some(h) = harness(backend, one_and_two(), |c| {
        c.push.mode = PushMode::None;
        c.mappings.push(mapping(DEV_A, "sp-one.example", &["gw-1"], None));
    })
    .await
    else {
        return;
    };
    let ack = h.move_devices("sp-one.example", "sp-two.example", &[DEV_A]).await.expect("move");
    assert_eq!((ack.changed, ack.events), (1, 0));
}

async fn openapi_is_served(backend: Backend) {
    let Some(h) = harness(backend, one_and_two(), |_| {}).await else { return };
    let doc: serde_json::Value =
        h.http.get(format!("{}/openapi.json", h.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    for (method, path) in control_server::ROUTES {
        let answer = match method {
            "get" => h.http.get(format!("{}{path}", h.base)),
            _ => h.http.post(format!("{}{path}", h.base)),
        }
        .send()
        .await
        .unwrap();
        assert_ne!(answer.status().as_u16(), 404, "{method} {path} is routed");
        assert_ne!(answer.status().as_u16(), 405, "{method} {path} is routed");
    }
}

/// Issue 12: resolve answers and pushed events carry what a device needs to
/// talk to its SP, the endpoint and the device-facing key (the registered
/// key unless the SP registered a separate one).
async fn sp_details_travel_with_answers_and_events(backend: Backend) {
    let device_key = hex::encode(sp_key("sp-two-devices").verifying_key().to_bytes());
    let wanted = device_key.clone();
    let Some(h) = harness(backend, one_and_two(), move |c| {
        c.mappings.push(mapping(DEV_A, "sp-one.example", &["gw-1"], None));
        for sp in &mut c.sps {
            if sp.identity.as_str() == "sp-two.example" {
                sp.device_public_key = Some(wanted.clone());
            }
        }
    })
    .await
    else {
        return;
    };
    let one = &h.sps["sp-one.example"];
    let (status, body) = h.resolve(GW1, json!({ "device_id": DEV_A })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sp_endpoint"], one.url(), "{body}");
    assert_eq!(body["sp_public_key"], hex::encode(sp_key("sp-one.example").verifying_key().to_bytes()), "the registered key by default");

    h.move_devices("sp-one.example", "sp-two.example", &[DEV_A]).await.expect("accepted");
    let events = h.poll(GW1, 0).await;
    let event = &events["events"][0];
    assert_eq!(event["sp"], "sp-two.example", "{events}");
    assert_eq!(event["sp_endpoint"], h.sps["sp-two.example"].url(), "{event}");
    assert_eq!(event["sp_public_key"], device_key.as_str(), "the device-facing key, not the hand-over key: {event}");
    let (_, body) = h.resolve(GW1, json!({ "device_id": DEV_A })).await;
    assert_eq!((&body["sp_endpoint"], &body["sp_public_key"]), (&json!(h.sps["sp-two.example"].url()), &json!(device_key)));

    // An SP registered without an endpoint: the answer says so (null), the
    // gateway refuses to enroll to it.
    let mut record = h.store().sp("sp-two.example").await.unwrap().unwrap();
    record.endpoint = None;
    h.store().upsert_sp(&record).await.unwrap();
    let (status, body) = h.resolve(GW1, json!({ "device_id": DEV_A })).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["sp_endpoint"].is_null(), "{body}");
    assert_eq!(body["sp_public_key"], device_key.as_str());
}

both_backends!(
    sp_details_travel_with_answers_and_events,
    resolve_from_table,
    stale_is_validated_with_the_sp,
    redirect_then_confirm_moves_the_device,
    redirect_loop_is_an_error,
    long_redirect_chain_is_cut,
    redirect_to_unregistered_sp,
    reject_is_an_error,
    sp_down_or_slow_is_unreachable,
    stale_answer_when_policy_allows,
    full_identifier_mode,
    move_by_current_sp,
    move_claimed_by_new_sp,
    unauthorized_senders_are_refused,
    replays_and_old_messages_are_refused,
    bad_signatures_and_unknown_sps,
    oversize_batches_are_refused,
    bad_input_gets_specific_errors,
    unknown_and_revoked_gateways,
    outbox_resumes_after_disconnect,
    unseen_devices_pushed_per_policy,
    openapi_is_served,
);
