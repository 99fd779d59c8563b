//! The gateway's local enrollment API as a real process: only callers with
//! the configuration's `api_token` are served, and the `gateway` CLI's
//! clients of it send the token.

use end_to_end_tests::system::{GATEWAY_API_TOKEN, System, run};

fn quiet(_: &str) {}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_api_serves_only_holders_of_its_token() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let system = System::start(dir.path(), &mut quiet).await?;
    let url = system.gateway.url();
    assert!(system.gateway.addr.ip().is_loopback(), "the API listens on loopback by default");

    let http = reqwest::Client::new();
    for authorization in [None, Some("Bearer not-the-token-at-all"), Some("Basic Z3c6c2VjcmV0")] {
        for path in ["/v1/devices", "/v1/stream"] {
            let request = http.get(format!("{url}{path}"));
            let request = match authorization {
                Some(value) => request.header("authorization", value),
                None => request,
            };
            let answer = request.send().await?;
            assert_eq!(answer.status().as_u16(), 401, "{path} with {authorization:?}");
            let body: serde_json::Value = answer.json().await?;
            assert_eq!(body["error"], "unauthenticated", "{body}");
        }
        let label = serde_json::json!({ "label_text": "EN1:x", "device": "127.0.0.1:1" });
        let request = http.post(format!("{url}/v1/enroll")).json(&label);
        let request = match authorization {
            Some(value) => request.header("authorization", value),
            None => request,
        };
        assert_eq!(request.send().await?.status().as_u16(), 401, "enroll with {authorization:?}");
    }

    // The CLI client with the token is served; without it, it says why.
    let listed = run("gateway", &["devices".into(), "--gateway".into(), url.clone(), "--token".into(), GATEWAY_API_TOKEN.into()])?;
    let devices: serde_json::Value = serde_json::from_str(listed.trim())?;
    assert!(devices.is_array(), "{listed}");
    let refused = run("gateway", &["devices".into(), "--gateway".into(), url, "--token".into(), "wrong-token-0123456789".into()]);
    let refused = refused.expect_err("a wrong token fails the command").to_string();
    assert!(refused.contains("401"), "{refused}");
    Ok(())
}
