//! Peers that misbehave on purpose, over real HTTP on loopback: SPs that
//! answer with HTTP redirects or huge bodies, clients that open connections
//! and send nothing (or half a request), over-long bodies, and more
//! unauthenticated hand-overs at once than the server verifies. Each gets a
//! specific error, and the server keeps serving everyone else.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const LONG_AGO: Option<i64> = Some(1_000_000_000);

/// Generous bound for "the server got to it" (never a measured time).
const WITHIN: Duration = Duration::from_secs(5);

fn one_and_two() -> Vec<SpSpec> {
    vec![
        SpSpec { may_release: true, may_move_to: vec!["sp-two.example"], ..sp("sp-one.example") },
        SpSpec { may_claim: true, ..sp("sp-two.example") },
    ]
}

/// Reads until the server closes the connection; what it sent, or `None`
/// if it was still open after [`WITHIN`].
async fn read_until_closed(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(seen),
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sp_http_redirect_is_refused_not_followed() {
    let h = harness(Backend::Sqlite, one_and_two(), |c| {
        c.mappings.push(mapping(DEV_A, "sp-one.example", &[], LONG_AGO));
    })
    .await
    .expect("sqlite harness");
    // sp-one answers 307 to sp-two's validation endpoint, which would confirm.
    let elsewhere = format!("{}/v1/validate", h.sps["sp-two.example"].url());
    h.set_verdict("sp-one.example", None, &format!("http-redirect:{elsewhere}")).await;

    let (status, body) = h.resolve(GW1, json!({ "device_id": DEV_A })).await;
    assert_eq!((status, body["error"].as_str()), (502, Some("sp_bad_answer")), "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("HTTP redirect (307 to "), "{message}");
    assert!(message.contains("redirect verdict"), "says what an SP should do instead: {message}");
    assert_eq!(h.sp_calls("sp-two.example").await, 0, "the request was not re-sent to the redirect's target");
    let row = h.store().mapping(DEV_A).await.unwrap().unwrap();
    assert_eq!((row.sp.as_str(), row.validated_at), ("sp-one.example", 1_000_000_000_000), "table untouched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_sp_answer_is_refused() {
    let h = harness(Backend::Sqlite, one_and_two(), |c| {
        c.mappings.push(mapping(DEV_A, "sp-one.example", &[], LONG_AGO));
    })
    .await
    .expect("sqlite harness");
    // A valid confirmation, padded with whitespace to 8 MB.
    h.set_verdict("sp-one.example", None, "oversized:8000000").await;
    let (status, body) = h.resolve(GW1, json!({ "device_id": DEV_A })).await;
    assert_eq!((status, body["error"].as_str()), (502, Some("sp_bad_answer")), "{body}");
    assert!(body["message"].as_str().unwrap().contains("more than 65536 bytes"), "{body}");
    assert_eq!(h.store().mapping(DEV_A).await.unwrap().unwrap().validated_at, 1_000_000_000_000);
    // Within the limit it is an answer like any other.
    h.set_verdict("sp-one.example", None, "oversized:60000").await;
    let (status, body) = h.resolve(GW1, json!({ "device_id": DEV_A })).await;
    assert_eq!((status, body["source"].as_str()), (200, Some("sp")), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_half_sent_connections_are_closed_and_others_served() {
    let h = harness(Backend::Sqlite, one_and_two(), |c| {
        c.limits.max_connections = 16;
        c.limits.header_read_timeout_ms = 300;
        c.limits.request_timeout_ms = 500;
        c.mappings.push(mapping(DEV_A, "sp-one.example", &[], None));
    })
    .await
    .expect("sqlite harness");
    let addr = h.server.addr;
    // More idle connections than the cap, one with half a request head, one
    // with a complete head and half its body.
    let mut idle = Vec::new();
    for _ in 0..40 {
        idle.push(TcpStream::connect(addr).await.expect("connect"));
    }
    let mut half_head = TcpStream::connect(addr).await.unwrap();
    half_head.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let mut half_body = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/resolve HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"device",
        basic(GW1)
    );
    half_body.write_all(head.as_bytes()).await.unwrap();

    // A normal request is answered although more connections were opened than the cap.
    let answer = tokio::time::timeout(WITHIN, h.resolve(GW1, json!({ "device_id": DEV_A }))).await;
    let (status, body) = answer.expect("a normal request is answered while idle connections are open");
    assert_eq!(status, 200, "{body}");

    for (i, stream) in idle.iter_mut().enumerate() {
        let sent = read_until_closed(stream).await.unwrap_or_else(|| panic!("idle connection {i} is still open"));
        assert!(sent.is_empty() || sent.starts_with(b"HTTP/1.1 408"), "idle connection {i} got {sent:?}");
    }
    assert!(read_until_closed(&mut half_head).await.is_some(), "a half-sent request head is cut");
    let sent = read_until_closed(&mut half_body).await.expect("a half-sent body is cut");
    let sent = String::from_utf8_lossy(&sent);
    assert!(sent.starts_with("HTTP/1.1 408"), "{sent}");
    assert!(sent.contains("\"error\":\"request_timeout\""), "{sent}");
    // And the server still serves.
    let (status, _) = h.resolve(GW1, json!({ "device_id": DEV_A })).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_beyond_a_routes_limit_are_refused() {
    let h = harness(Backend::Sqlite, one_and_two(), |c| {
        c.policy.max_batch = 10;
        c.mappings.push(mapping(DEV_A, "sp-one.example", &[], None));
    })
    .await
    .expect("sqlite harness");
    // A hand-over body larger than 10 devices can take (well under the old 32 MiB).
    let answer = h
        .http
        .post(format!("{}/v1/sp/associations", h.base))
        .header("content-type", "application/cose")
        .body(vec![0u8; 100_000])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 413);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["error"], "body_too_large", "{body}");
    assert!(body["message"].as_str().unwrap().contains("policy.max_batch"), "{body}");

    // A resolve announcing 1 MB (a request is a few hundred bytes) is
    // answered from its head; so is one with wrong credentials.
    for (gw, expected) in [(GW1, "413 Payload Too Large"), (("gw-1", "wrong"), "401 Unauthorized")] {
        let mut stream = TcpStream::connect(h.server.addr).await.unwrap();
        let head = format!(
            "POST /v1/resolve HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Length: 1000000\r\n\r\n{{",
            basic(gw)
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let sent = read_until_closed(&mut stream).await.expect("answered and closed without the body");
        let sent = String::from_utf8_lossy(&sent);
        assert!(sent.starts_with(&format!("HTTP/1.1 {expected}")), "{sent}");
        let code = if expected.starts_with("413") { "body_too_large" } else { "unauthenticated" };
        assert!(sent.contains(&format!("\"error\":\"{code}\"")), "{sent}");
    }
    // A body that arrives without a length (chunked), beyond the limit.
    let mut stream = TcpStream::connect(h.server.addr).await.unwrap();
    let head = format!("POST /v1/resolve HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nTransfer-Encoding: chunked\r\n\r\n", basic(GW1));
    let mut request = head.into_bytes();
    for _ in 0..20 {
        request.extend_from_slice(b"400\r\n");
        request.extend_from_slice(&[b' '; 0x400]);
        request.extend_from_slice(b"\r\n");
    }
    stream.write_all(&request).await.unwrap();
    let sent = read_until_closed(&mut stream).await.expect("answered and closed");
    assert!(String::from_utf8_lossy(&sent).starts_with("HTTP/1.1 413"), "{}", String::from_utf8_lossy(&sent));
    let (status, _) = h.resolve(GW1, json!({ "device_id": DEV_A })).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handovers_beyond_the_concurrency_limit_get_overloaded() {
    let h = harness(Backend::Sqlite, one_and_two(), |c| {
        c.limits.max_concurrent_handovers = 2;
        c.mappings.push(mapping(DEV_A, "sp-one.example", &["gw-1"], None));
    })
    .await
    .expect("sqlite harness");
    // Two hand-overs whose bodies never finish hold both permits.
    let mut slow = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(h.server.addr).await.unwrap();
        stream
            .write_all(b"POST /v1/sp/associations HTTP/1.1\r\nHost: x\r\nContent-Type: application/cose\r\nContent-Length: 1000\r\n\r\n\xd2")
            .await
            .unwrap();
        slow.push(stream);
    }
    let deadline = tokio::time::Instant::now() + WITHIN;
    let refused = loop {
        match h.move_devices("sp-one.example", "sp-two.example", &[DEV_A]).await {
            Err(e) if e.code() == Some("overloaded") => break e,
            other => {
                assert!(tokio::time::Instant::now() < deadline, "a third hand-over was not refused: {other:?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert!(matches!(refused, control_server::sp_sim::SendError::Refused { status: 503, .. }), "{refused}");
    assert_eq!(h.store().mapping(DEV_A).await.unwrap().unwrap().sp, "sp-one.example", "nothing applied");

    // Once the slow senders are gone, hand-overs are verified again.
    drop(slow);
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        match h.move_devices("sp-one.example", "sp-two.example", &[DEV_A]).await {
            Ok(ack) => {
                assert_eq!(ack.changed, 1);
                break;
            }
            Err(e) => {
                assert_eq!(e.code(), Some("overloaded"), "{e}");
                assert!(tokio::time::Instant::now() < deadline, "permits were not released: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    assert_eq!(h.store().mapping(DEV_A).await.unwrap().unwrap().sp, "sp-two.example");
}
