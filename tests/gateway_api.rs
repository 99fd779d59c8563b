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
    let listed = run("gateway", &["devices".into(), "--json".into(), "--gateway".into(), url.clone(), "--token".into(), GATEWAY_API_TOKEN.into()])?;
    let devices: serde_json::Value = serde_json::from_str(listed.trim())?;
    assert!(devices.is_array(), "{listed}");
    let table = run("gateway", &["devices".into(), "--gateway".into(), url.clone(), "--token".into(), GATEWAY_API_TOKEN.into()])?;
    assert!(table.starts_with("DEVICE") && table.trim_end().ends_with(" devices"), "{table}");
    let unknown = run("gateway", &["device".into(), "rebind".into(), "AC-DE-48-00-00-AA".into(), "--gateway".into(), url.clone(), "--token".into(), GATEWAY_API_TOKEN.into()]);
    let unknown = unknown.expect_err("an unknown device is refused").to_string();
    assert!(unknown.contains("not known to this gateway"), "{unknown}");
    let refused = run("gateway", &["devices".into(), "--gateway".into(), url, "--token".into(), "wrong-token-0123456789".into()]);
    let refused = refused.expect_err("a wrong token fails the command").to_string();
    assert!(refused.contains("401"), "{refused}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_rebinds_and_resets_one_device_through_the_cli() -> anyhow::Result<()> {
    use end_to_end_tests::METER_ID;
    let dir = tempfile::tempdir()?;
    let system = System::start(dir.path(), &mut quiet).await?;
    let enrolled = system.enroll_from_label(METER_ID).await?;
    let api = |action: &str| -> Vec<String> {
        ["device", action, METER_ID, "--gateway", &system.gateway.url(), "--token", GATEWAY_API_TOKEN].map(String::from).to_vec()
    };

    let rebound: serde_json::Value = serde_json::from_str(run("gateway", &api("rebind"))?.trim())?;
    assert_eq!(rebound["identifier"], enrolled["identifier"], "{rebound}");
    assert!(rebound["generation"].as_u64() > enrolled["generation"].as_u64(), "{rebound} after {enrolled}");
    assert_eq!(system.device_state(METER_ID)?["generation"], rebound["generation"]);

    let key = enrolled["public_key"].as_str().expect("a key").to_string();
    let held = |devices: &serde_json::Value| devices.as_array().into_iter().flatten().any(|d| d["public_key"] == key.as_str());
    assert!(held(&system.sp_devices(&system.sp_one).await?));
    let reset: serde_json::Value = serde_json::from_str(run("gateway", &api("reset"))?.trim())?;
    assert_eq!(reset["withdrawn_at_sp"], 1, "{reset}");
    assert!(!held(&system.sp_devices(&system.sp_one).await?), "the SP dropped the key");
    assert_eq!(system.gateway_device(METER_ID).await?["error"], "unknown_device");
    let again = run("gateway", &api("reset")).expect_err("a forgotten device is unknown").to_string();
    assert!(again.contains("not known to this gateway"), "{again}");
    Ok(())
}
