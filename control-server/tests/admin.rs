//! Administration: the admin HTTP API on a real loopback server (both
//! backends) and the `control-server` CLI as a real process against a real
//! database, including a running server picking up CLI changes without a
//! restart.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{Backend, DEV_A, DEV_B, DEV_C, GW1, Harness, SpSpec, basic, database_url, harness, sp};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

const CONTROL_SERVER: &str = env!("CARGO_BIN_EXE_control-server");
const TOKEN: &str = "csadm_test-token-0123456789abcdef0123456789abcdef";

fn one_and_two() -> Vec<SpSpec> {
    vec![
        SpSpec { may_release: true, may_move_to: vec!["sp-two.example"], ..sp("sp-one.example") },
        SpSpec { may_claim: true, ..sp("sp-two.example") },
    ]
}

/// A harness with the admin token set (and the credential re-read on every
/// request, so tests that change it see the change).
async fn admin_harness(backend: Backend) -> Option<Harness> {
    let h = harness(backend, one_and_two(), |c| c.policy.auth_cache_ttl_ms = 0).await?;
    control_server::admin::auth::set_token(h.store(), TOKEN).await.expect("set the admin token");
    Some(h)
}

struct Call {
    status: u16,
    body: Value,
}

async fn call(h: &Harness, method: &str, path: &str, auth: Option<String>, body: Option<Value>) -> Call {
    let url = format!("{}{path}", h.base);
    let mut request = match method {
        "GET" => h.http.get(url),
        "POST" => h.http.post(url),
        "DELETE" => h.http.delete(url),
        other => panic!("method {other}"),
    };
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let answer = request.send().await.expect("admin request");
    let status = answer.status().as_u16();
    let body = answer.json().await.unwrap_or(Value::Null);
    Call { status, body }
}

fn bearer() -> Option<String> {
    Some(format!("Bearer {TOKEN}"))
}

async fn admin(h: &Harness, method: &str, path: &str, body: Option<Value>) -> Call {
    call(h, method, path, bearer(), body).await
}

async fn off_wrong_and_gateway_credentials_are_refused(backend: Backend) {
    let Some(h) = harness(backend, one_and_two(), |c| c.policy.auth_cache_ttl_ms = 0).await else { return };
    // No admin token set: the admin API is off, and says how to turn it on.
    let off = call(&h, "GET", "/v1/admin/mappings", bearer(), None).await;
    assert_eq!((off.status, off.body["error"].as_str()), (403, Some("not_authorized")), "{}", off.body);
    assert!(off.body["message"].as_str().unwrap().contains("admin-token"), "{}", off.body);

    control_server::admin::auth::set_token(h.store(), TOKEN).await.unwrap();
    for auth in [
        None,
        Some("Bearer csadm_wrong".to_owned()),
        Some(format!("Bearer {TOKEN}x")),
        Some(basic(GW1)),
        Some(format!("Bearer {}", GW1.1)),
        Some(format!("Basic {TOKEN}")),
    ] {
        let refused = call(&h, "GET", "/v1/admin/gateways", auth.clone(), None).await;
        assert_eq!((refused.status, refused.body["error"].as_str()), (401, Some("unauthenticated")), "{auth:?}");
    }
    // The gateway credential still works where it belongs, the admin token does not.
    let (status, _) = h.resolve(GW1, json!({ "device_id": DEV_A })).await;
    assert_eq!(status, 404, "gw-1 authenticates on resolve (the device is unknown)");
    let answer = h
        .http
        .post(format!("{}/v1/resolve", h.base))
        .header("authorization", format!("Bearer {TOKEN}"))
        .json(&json!({ "device_id": DEV_A }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 401, "the admin token is no gateway credential");

    let ok = admin(&h, "GET", "/v1/admin/gateways", None).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let ids: Vec<&str> = ok.body["gateways"].as_array().unwrap().iter().map(|g| g["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["gw-1", "gw-2"]);

    // Removing the token turns the API off again.
    assert!(control_server::admin::auth::remove_token(h.store()).await.unwrap());
    assert_eq!(admin(&h, "GET", "/v1/admin/gateways", None).await.status, 403);
}

async fn mappings_change_at_once_with_history_and_push(backend: Backend) {
    let Some(h) = admin_harness(backend).await else { return };
    let added = admin(&h, "POST", "/v1/admin/mappings", Some(json!({ "device_id": "ac:de:48:00:00:80", "sp": "sp-one.example", "access": "wifi" }))).await;
    assert_eq!(added.status, 200, "{}", added.body);
    assert_eq!((added.body["device_id"].as_str(), added.body["outcome"].as_str()), (Some(DEV_A), Some("created")));

    // gw-1 asks (the row is now cached and gw-1 recorded against the device).
    let (status, body) = h.resolve(GW1, json!({ "device_id": DEV_A, "full_identifier": true })).await;
    assert_eq!((status, body["sp"].as_str()), (200, Some("sp-one.example")), "{body}");
    assert_eq!(body["identifier"], "sp-one.example/wifi/AC-DE-48-00-00-80");

    // Moved by the admin: the very next resolve answers the new SP (no cache delay) …
    let moved = admin(&h, "POST", "/v1/admin/mappings", Some(json!({ "device_id": DEV_A, "sp": "sp-two.example" }))).await;
    assert_eq!(moved.status, 200, "{}", moved.body);
    assert_eq!((moved.body["outcome"].as_str(), moved.body["previous_sp"].as_str()), (Some("moved"), Some("sp-one.example")));
    assert_eq!(moved.body["events"], 1, "gw-1 is told");
    let (_, body) = h.resolve(GW1, json!({ "device_id": DEV_A })).await;
    assert_eq!(body["sp"], "sp-two.example");
    // … the gateway got an outbox event with the access technology …
    let poll = h.poll(GW1, 0).await;
    assert_eq!(poll["events"][0]["sp"], "sp-two.example", "{poll}");
    assert_eq!(poll["events"][0]["previous_sp"], "sp-one.example");
    assert_eq!(poll["events"][0]["access"], "wifi");
    // … and the history says who did it.
    let history = admin(&h, "GET", &format!("/v1/admin/mappings/{DEV_A}/history"), None).await;
    let rows = history.body["history"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{}", history.body);
    assert_eq!((rows[1]["old_sp"].as_str(), rows[1]["new_sp"].as_str()), (Some("sp-one.example"), Some("sp-two.example")));
    assert_eq!(rows[1]["changed_by"], "admin:api");
    assert_eq!(rows[1]["message_id"], poll["events"][0]["message_id"]);

    // The same again changes nothing.
    let same = admin(&h, "POST", "/v1/admin/mappings", Some(json!({ "device_id": DEV_A, "sp": "sp-two.example" }))).await;
    assert_eq!((same.body["outcome"].as_str(), same.body["events"].as_u64()), (Some("unchanged"), Some(0)));

    // Unregistered SP, bad id, unknown field: specific errors, nothing written.
    let unknown_sp = admin(&h, "POST", "/v1/admin/mappings", Some(json!({ "device_id": DEV_B, "sp": "sp-nope.example" }))).await;
    assert_eq!((unknown_sp.status, unknown_sp.body["error"].as_str()), (422, Some("unknown_sp")));
    assert!(unknown_sp.body["message"].as_str().unwrap().contains("sp add"), "{}", unknown_sp.body);
    let bad_id = admin(&h, "POST", "/v1/admin/mappings", Some(json!({ "device_id": "nope", "sp": "sp-one.example" }))).await;
    assert_eq!((bad_id.status, bad_id.body["error"].as_str()), (400, Some("invalid_device_id")));
    let extra = admin(&h, "POST", "/v1/admin/mappings", Some(json!({ "device_id": DEV_B, "sp": "sp-one.example", "colour": 1 }))).await;
    assert_eq!(extra.status, 400);
    let wrong_access = admin(&h, "POST", "/v1/admin/mappings", Some(json!({ "device_id": DEV_B, "sp": "sp-one.example", "access": "warp" }))).await;
    assert_eq!(wrong_access.status, 400);

    // Listing and filters.
    admin(&h, "POST", "/v1/admin/mappings", Some(json!({ "device_id": DEV_B, "sp": "sp-one.example" }))).await;
    admin(&h, "POST", "/v1/admin/mappings", Some(json!({ "device_id": DEV_C, "sp": "sp-one.example", "service_type": "heating" }))).await;
    let all = admin(&h, "GET", "/v1/admin/mappings", None).await;
    assert_eq!(all.body["total"], 3, "{}", all.body);
    let by_sp = admin(&h, "GET", "/v1/admin/mappings?sp=sp-one.example", None).await;
    assert_eq!(by_sp.body["total"], 2);
    let by_gateway = admin(&h, "GET", "/v1/admin/mappings?gateway=gw-1", None).await;
    assert_eq!(by_gateway.body["mappings"][0]["device_id"], DEV_A);
    assert_eq!(by_gateway.body["total"], 1);
    let by_id = admin(&h, "GET", "/v1/admin/mappings?q=00:82", None).await;
    assert_eq!((by_id.body["total"].as_i64(), by_id.body["mappings"][0]["service_type"].as_str()), (Some(1), Some("heating")));
    let paged = admin(&h, "GET", "/v1/admin/mappings?limit=2", None).await;
    assert_eq!(paged.body["next"], DEV_B);
    let rest = admin(&h, "GET", &format!("/v1/admin/mappings?limit=2&after={DEV_B}"), None).await;
    assert_eq!((rest.body["mappings"][0]["device_id"].as_str(), rest.body["next"].as_str()), (Some(DEV_C), None));
    let bad_filter = admin(&h, "GET", "/v1/admin/mappings?q=%25", None).await;
    assert_eq!(bad_filter.status, 400);

    let shown = admin(&h, "GET", &format!("/v1/admin/mappings/{DEV_A}"), None).await;
    assert_eq!((shown.body["sp"].as_str(), shown.body["gateways"][0].as_str()), (Some("sp-two.example"), Some("gw-1")));

    // Removing: an unknown device says so; a known one is gone for resolve at once.
    let unknown = admin(&h, "DELETE", "/v1/admin/mappings/AC-DE-48-00-00-99", None).await;
    assert_eq!((unknown.status, unknown.body["error"].as_str()), (404, Some("unknown_device")));
    assert!(unknown.body["message"].as_str().unwrap().contains("not in the mapping table"), "{}", unknown.body);
    let removed = admin(&h, "DELETE", &format!("/v1/admin/mappings/{DEV_A}"), None).await;
    assert_eq!((removed.status, removed.body["sp"].as_str()), (200, Some("sp-two.example")), "{}", removed.body);
    let (status, body) = h.resolve(GW1, json!({ "device_id": DEV_A })).await;
    assert_eq!((status, body["error"].as_str()), (404, Some("unknown_device")));
    assert_eq!(admin(&h, "GET", &format!("/v1/admin/mappings/{DEV_A}"), None).await.status, 404);
    // Its history stays.
    assert_eq!(admin(&h, "GET", &format!("/v1/admin/mappings/{DEV_A}/history"), None).await.body["history"].as_array().unwrap().len(), 2);

    // SPs with their device counts.
    let sps = admin(&h, "GET", "/v1/admin/sps", None).await;
    let counts: Vec<(String, i64)> = sps.body["sps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["identity"].as_str().unwrap().to_owned(), s["devices"].as_i64().unwrap()))
        .collect();
    assert_eq!(counts, [("sp-one.example".to_owned(), 2), ("sp-two.example".to_owned(), 0)]);
    let one = admin(&h, "GET", "/v1/admin/sps/sp-one.example", None).await.body;
    assert_eq!(one["may_move_to"][0], "sp-two.example");
    assert_eq!(one["endpoint"], h.sps["sp-one.example"].url(), "{one}");
    assert_eq!(one["device_public_key"], one["public_key"], "no device-facing key: the registered one");
    assert_eq!(admin(&h, "GET", "/v1/admin/sps/sp-nope.example", None).await.status, 404);
    assert_eq!(admin(&h, "GET", "/v1/admin/gateways/gw-9", None).await.body["error"], "unknown_gateway");
}

async fn csv_import_is_all_or_nothing(backend: Backend) {
    let Some(h) = admin_harness(backend).await else { return };
    let import = |csv: &'static str| {
        let http = h.http.clone();
        let url = format!("{}/v1/admin/mappings/import", h.base);
        async move {
            let answer = http
                .post(url)
                .header("authorization", format!("Bearer {TOKEN}"))
                .header("content-type", "text/csv")
                .body(csv)
                .send()
                .await
                .unwrap();
            (answer.status().as_u16(), answer.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = import(
        "device_id,sp,service_type,access\n\
         AC-DE-48-00-00-80,sp-one.example,metering,wifi\n\
         AC-DE-48-00-00-8,sp-one.example,,\n\
         AC-DE-48-00-00-82,sp-two.example,,\n",
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("malformed_request")), "{body}");
    assert_eq!(body["lines"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(body["lines"][0]["line"], 3);
    assert!(body["message"].as_str().unwrap().contains("line 3"), "{body}");
    assert!(body["message"].as_str().unwrap().contains("nothing was imported"), "{body}");
    assert_eq!(admin(&h, "GET", "/v1/admin/mappings", None).await.body["total"], 0, "nothing imported");

    let (status, body) = import(
        "# one SP\nAC-DE-48-00-00-80,sp-one.example,metering,wifi\nAC-DE-48-00-00-81,sp-one.example\nAC-DE-48-00-00-82,sp-one.example,metering\n",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["rows"].as_u64(), body["created"].as_u64(), body["access_set"].as_u64()), (Some(3), Some(3), Some(1)));
    assert_eq!(body["transactions"], 2, "one per SP and service type");
    let shown = admin(&h, "GET", &format!("/v1/admin/mappings/{DEV_A}"), None).await;
    assert_eq!((shown.body["access"].as_str(), shown.body["service_type"].as_str()), (Some("wifi"), Some("metering")));

    let (status, body) = import("AC-DE-48-00-00-80,sp-one.example\nAC-DE-48-00-00-80,sp-two.example\n").await;
    assert_eq!(status, 400);
    assert_eq!(body["lines"][0]["line"], 2, "a device listed twice: {body}");
}

async fn handovers_accepted_and_refused_are_logged(backend: Backend) {
    let Some(h) = admin_harness(backend).await else { return };
    admin(&h, "POST", "/v1/admin/mappings", Some(json!({ "device_id": DEV_A, "sp": "sp-one.example" }))).await;
    admin(&h, "POST", "/v1/admin/mappings", Some(json!({ "device_id": DEV_B, "sp": "sp-two.example" }))).await;
    let ack = h.move_devices("sp-one.example", "sp-two.example", &[DEV_A]).await.expect("a permitted move");
    // sp-one does not hold DEV_B: refused.
    assert!(h.move_devices("sp-one.example", "sp-two.example", &[DEV_B]).await.is_err());

    let refused = admin(&h, "GET", "/v1/admin/handovers?outcome=refused", None).await;
    let entries = refused.body["handovers"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{}", refused.body);
    assert_eq!((entries[0]["code"].as_str(), entries[0]["sender"].as_str()), (Some("not_authorized"), Some("sp-one.example")));
    assert!(entries[0]["reason"].as_str().unwrap().contains(DEV_B));
    let accepted = admin(&h, "GET", "/v1/admin/handovers?outcome=accepted", None).await;
    assert_eq!(accepted.body["handovers"][0]["message_id"].as_str(), Some(ack.message_id.as_str()));
    assert_eq!(accepted.body["handovers"][0]["changed"], 1);
    assert_eq!(admin(&h, "GET", "/v1/admin/handovers", None).await.body["handovers"].as_array().unwrap().len(), 2);
    assert_eq!(admin(&h, "GET", "/v1/admin/handovers?outcome=maybe", None).await.status, 400);
}

async fn gateways_show_connection_and_outbox_lag(backend: Backend) {
    let Some(h) = admin_harness(backend).await else { return };
    admin(&h, "POST", "/v1/admin/mappings", Some(json!({ "device_id": DEV_A, "sp": "sp-one.example" }))).await;
    h.resolve(GW1, json!({ "device_id": DEV_A })).await;
    admin(&h, "POST", "/v1/admin/mappings", Some(json!({ "device_id": DEV_A, "sp": "sp-two.example" }))).await;
    admin(&h, "POST", "/v1/admin/mappings", Some(json!({ "device_id": DEV_A, "sp": "sp-one.example" }))).await;

    let gw = admin(&h, "GET", "/v1/admin/gateways/gw-1", None).await;
    assert_eq!((gw.body["last_seq"].as_i64(), gw.body["acked_seq"].as_i64(), gw.body["lag"].as_i64()), (Some(2), Some(0), Some(2)), "{}", gw.body);
    assert_eq!(gw.body["devices"], 1);
    assert_eq!(gw.body["connected"], false, "it has not streamed yet");

    let mut stream = h.stream(GW1, 0).await;
    assert!(stream.next(Duration::from_secs(10)).await.is_some(), "the stream replays");
    let gw = admin(&h, "GET", "/v1/admin/gateways/gw-1", None).await;
    assert_eq!((gw.body["connected"].as_bool(), gw.body["open_streams"].as_u64()), (Some(true), Some(1)), "{}", gw.body);
    let other = admin(&h, "GET", "/v1/admin/gateways/gw-2", None).await;
    assert_eq!(other.body["connected"], false);

    let (status, _) = h.ack(GW1, 1).await;
    assert_eq!(status, 200);
    let gw = admin(&h, "GET", "/v1/admin/gateways/gw-1", None).await;
    assert_eq!((gw.body["acked_seq"].as_i64(), gw.body["lag"].as_i64()), (Some(1), Some(1)), "{}", gw.body);
    drop(stream);
}

async fn admin_routes_are_in_the_openapi_document(backend: Backend) {
    let Some(h) = admin_harness(backend).await else { return };
    let doc: Value = h.http.get(format!("{}/openapi.json", h.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(doc["components"]["securitySchemes"]["admin"]["scheme"], "bearer");
    for (method, path, operation) in control_server::admin::ADMIN_ROUTES {
        let pointer = format!("/paths/{}/{method}", path.replace('/', "~1"));
        let op = doc.pointer(&pointer).unwrap_or_else(|| panic!("{method} {path} is described"));
        assert_eq!(op["operationId"], operation);
        assert!(op["responses"]["401"].is_object(), "{operation} documents 401");
        // Routed, and closed without the token.
        let concrete = path.replace("{device_id}", DEV_A).replace("{identity}", "sp-one.example").replace("{id}", "gw-1");
        let answer = call(&h, &method.to_uppercase(), &concrete, None, None).await;
        assert_eq!(answer.status, 401, "{method} {path}");
    }
}

both_backends!(
    off_wrong_and_gateway_credentials_are_refused,
    mappings_change_at_once_with_history_and_push,
    csv_import_is_all_or_nothing,
    handovers_accepted_and_refused_are_logged,
    gateways_show_connection_and_outbox_lag,
    admin_routes_are_in_the_openapi_document,
);

// ---- The CLI, as a real process ----

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn cli(db: &str, args: &[&str]) -> Out {
    let out = std::process::Command::new(CONTROL_SERVER)
        .args(["--database", db])
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run control-server");
    Out {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn cli_ok(db: &str, args: &[&str]) -> String {
    let out = cli(db, args);
    assert!(out.ok, "control-server {args:?} failed: {}", out.stderr);
    out.stdout
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

async fn cli_administers_a_running_server(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let Some(db) = database_url(backend, &dir).await else { return };
    let key = common::sp_key("sp-one.example");
    let public = hex::encode(key.verifying_key().to_bytes());
    let devices_key = hex::encode(common::sp_key("sp-one-devices").verifying_key().to_bytes());
    let added = cli_ok(&db, &[
        "sp", "add", "--identity", "sp-one.example", "--base-url", "http://127.0.0.1:9", "--public-key", &public,
        "--endpoint", "http://127.0.0.1:9/", "--device-public-key", &devices_key,
    ]);
    assert!(added.contains("endpoint http://127.0.0.1:9"), "{added}");
    let bare = cli_ok(&db, &["sp", "add", "--identity", "sp-two.example", "--base-url", "http://127.0.0.1:9", "--public-key", &public]);
    assert!(bare.contains("--endpoint"), "an SP without an endpoint is registered with a warning: {bare}");
    let refused = cli(&db, &["sp", "add", "--identity", "sp-three.example", "--base-url", "http://x", "--public-key", &public, "--endpoint", "ftp://x"]);
    assert!(!refused.ok && refused.stderr.contains("--endpoint"), "{}", refused.stderr);
    cli_ok(&db, &["gateway", "add", "--id", "gw-1", "--credential", "secret-1"]);

    // Add, show, list: tables by default, JSON with --json.
    let added = cli_ok(&db, &["mapping", "add", "--device-id", "ac-de-48-00-00-80", "--sp", "sp-one.example", "--access", "wifi"]);
    assert!(added.contains("AC-DE-48-00-00-80 added with sp-one.example"), "{added}");
    let table = cli_ok(&db, &["mapping", "list"]);
    assert!(table.lines().next().unwrap().starts_with("DEVICE"), "{table}");
    assert!(table.contains("AC-DE-48-00-00-80  sp-one.example"), "{table}");
    let listed = json_of(&cli_ok(&db, &["mapping", "list", "--json"]));
    assert_eq!(listed["total"], 1);
    assert_eq!(listed["mappings"][0]["access"], "wifi");

    // A bad CSV: the line is named, nothing is imported, the exit code says so.
    let csv = dir.path().join("devices.csv");
    std::fs::write(&csv, "device_id,sp\nAC-DE-48-00-00-81,sp-one.example\nAC-DE-48-00-00-82,sp-unknown.example\n").unwrap();
    let bad = cli(&db, &["mapping", "import", csv.to_str().unwrap()]);
    assert!(!bad.ok);
    assert!(bad.stderr.contains("line 3") && bad.stderr.contains("nothing was imported"), "{}", bad.stderr);
    assert!(bad.stderr.contains("sp add"), "says what to do: {}", bad.stderr);
    assert_eq!(json_of(&cli_ok(&db, &["mapping", "list", "--json"]))["total"], 1);
    std::fs::write(&csv, "device_id,sp\nAC-DE-48-00-00-81,sp-one.example\nAC-DE-48-00-00-82,sp-one.example\n").unwrap();
    let imported = json_of(&cli_ok(&db, &["mapping", "import", csv.to_str().unwrap(), "--json"]));
    assert_eq!((imported["created"].as_u64(), imported["transactions"].as_u64()), (Some(2), Some(1)), "{imported}");

    // Removing an unknown device says so and fails.
    let unknown = cli(&db, &["mapping", "remove", "AC-DE-48-00-00-99"]);
    assert!(!unknown.ok);
    assert!(unknown.stderr.contains("AC-DE-48-00-00-99 is not in the mapping table"), "{}", unknown.stderr);
    assert!(cli_ok(&db, &["mapping", "remove", "AC-DE-48-00-00-82"]).contains("removed"));

    // A server on this database, with a long mapping cache TTL: only
    // following the database can make it see CLI changes soon.
    let config = dir.path().join("cfg.toml");
    std::fs::write(&config, "[policy]\nmapping_cache_ttl_ms = 3600000\n").unwrap();
    let mut server = tokio::process::Command::new(CONTROL_SERVER)
        .args(["--database", &db, "serve", "--listen", "127.0.0.1:0", "--config", config.to_str().unwrap()])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the server");
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await.unwrap().unwrap().unwrap();
    let base = format!("http://{}", first.strip_prefix("listening on ").expect("listening on ADDR"));
    let http = control_server::http_client().unwrap();
    let resolve = |device: &'static str| {
        let (http, url) = (http.clone(), format!("{base}/v1/resolve"));
        async move {
            let answer =
                http.post(url).header("authorization", basic(GW1)).json(&json!({ "device_id": device })).send().await.unwrap();
            (answer.status().as_u16(), answer.json::<Value>().await.unwrap())
        }
    };
    assert_eq!(resolve(DEV_A).await.1["sp"], "sp-one.example", "cached from now on");
    cli_ok(&db, &["mapping", "add", "--device-id", DEV_A, "--sp", "sp-two.example"]);
    let mut seen = None;
    for _ in 0..100 {
        let (_, body) = resolve(DEV_A).await;
        if body["sp"] == "sp-two.example" {
            seen = Some(body);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen.is_some(), "the running server never saw the CLI's move (its cache TTL is an hour)");
    cli_ok(&db, &["mapping", "remove", DEV_A]);
    let mut gone = false;
    for _ in 0..100 {
        if resolve(DEV_A).await.0 == 404 {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "the running server never saw the CLI's removal");

    // History, SPs and gateways from the CLI.
    let history = json_of(&cli_ok(&db, &["mapping", "history", DEV_A, "--json"]));
    let by: Vec<&str> = history.as_array().unwrap().iter().map(|h| h["changed_by"].as_str().unwrap()).collect();
    assert_eq!(by, ["admin:cli", "admin:cli"]);
    let sps = cli_ok(&db, &["sp", "list"]);
    assert!(sps.contains("sp-one.example") && sps.contains("MAY CLAIM"), "{sps}");
    let one = json_of(&cli_ok(&db, &["sp", "show", "sp-one.example", "--json"]));
    assert_eq!(one["devices"], 1);
    assert_eq!((&one["endpoint"], &one["device_public_key"]), (&json!("http://127.0.0.1:9"), &json!(devices_key)), "{one}");
    let two = json_of(&cli_ok(&db, &["sp", "show", "sp-two.example", "--json"]));
    assert_eq!((&two["endpoint"], &two["device_public_key"]), (&serde_json::Value::Null, &json!(public)), "{two}");
    assert!(cli_ok(&db, &["sp", "list"]).contains("ENDPOINT"));
    let gateways = json_of(&cli_ok(&db, &["gateway", "list", "--json"]));
    assert_eq!(gateways[0]["id"], "gw-1");
    assert_eq!(gateways[0]["devices"], 0, "gw-1 asked only about the removed device: {gateways}");
    let missing = cli(&db, &["gateway", "show", "gw-9"]);
    assert!(!missing.ok && missing.stderr.contains("gateway add"), "{}", missing.stderr);

    // The admin token from the CLI opens the running server's admin API.
    let token = cli_ok(&db, &["admin-token"]).trim().to_owned();
    let mut status = 0;
    for _ in 0..50 {
        status = http
            .get(format!("{base}/v1/admin/sps"))
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200, "the token set by the CLI works on the running server");
    let _ = server.kill().await;
}

both_backends!(cli_administers_a_running_server);

#[test]
fn read_commands_refuse_a_mistyped_sqlite_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("typo.db");
    let db = format!("sqlite://{}", path.display());
    for args in [&["mapping", "list"][..], &["gateway", "list"], &["sp", "show", "a.example"], &["mapping", "remove", DEV_A]] {
        let out = cli(&db, args);
        assert!(!out.ok, "{args:?}");
        assert!(out.stderr.contains("no database at"), "{args:?}: {}", out.stderr);
    }
    assert!(!path.exists(), "no empty database was created");
}
