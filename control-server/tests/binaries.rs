//! The real `control-server` and `sp-sim` binaries as separate processes:
//! key generation, gateway registration and revocation by CLI, resolve with
//! validation and a redirect across processes, a signed move sent by
//! `sp-sim move`, the push it causes, and device reports.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{Backend, basic, database_url};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const CONTROL_SERVER: &str = env!("CARGO_BIN_EXE_control-server");
const SP_SIM: &str = env!("CARGO_BIN_EXE_sp-sim");

/// Spawns a server binary and returns it with the address of its first
/// stdout line, `listening on ADDR`.
async fn spawn_listening(program: &str, args: &[&str]) -> (Child, String) {
    let mut child = Command::new(program)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {program}: {e}"));
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("server printed its address in time")
        .expect("read stdout")
        .expect("a first line");
    let addr = line.strip_prefix("listening on ").unwrap_or_else(|| panic!("unexpected first line {line:?}")).to_owned();
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr)
}

fn run(program: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(program).args(args).output().expect("run");
    assert!(out.status.success(), "{program} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8 stdout")
}

async fn binaries_end_to_end(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let Some(db) = database_url(backend, &dir).await else { return };
    let key1 = dir.path().join("sp1.key");
    let key2 = dir.path().join("sp2.key");
    let pub1 = run(SP_SIM, &["keygen", "--out", key1.to_str().unwrap()]).trim().to_owned();
    let pub2 = run(SP_SIM, &["keygen", "--out", key2.to_str().unwrap()]).trim().to_owned();
    assert_eq!(pub1.len(), 64);
    assert_eq!(run(SP_SIM, &["pubkey", "--key", key1.to_str().unwrap()]).trim(), pub1);

    let (_sp1, sp1_addr) = spawn_listening(
        SP_SIM,
        &[
            "serve", "--identity", "sp-one.example", "--listen", "127.0.0.1:0", "--key", key1.to_str().unwrap(),
            "--verdict", "AC-DE-48-00-00-81=redirect:sp-two.example",
        ],
    )
    .await;
    let (_sp2, sp2_addr) =
        spawn_listening(SP_SIM, &["serve", "--identity", "sp-two.example", "--listen", "127.0.0.1:0"]).await;

    let config = format!(
        r#"
[policy]
max_age_secs = 3600

[[gateway]]
id = "gw-1"
credential = "secret-1"

[[sp]]
identity = "sp-one.example"
base_url = "http://{sp1_addr}"
public_key = "{pub1}"
may_release = true
may_move_to = ["sp-two.example"]

[[sp]]
identity = "sp-two.example"
base_url = "http://{sp2_addr}"
public_key = "{pub2}"
may_claim = true

[[mapping]]
device_id = "AC-DE-48-00-00-80"
sp = "sp-one.example"
access = "wifi"
gateways = ["gw-1"]
validated_at = 1000000000

[[mapping]]
device_id = "AC-DE-48-00-00-81"
sp = "sp-one.example"
validated_at = 1000000000
"#
    );
    let config_path = dir.path().join("cfg.toml");
    std::fs::write(&config_path, config).unwrap();
    // A gateway registered by the operator CLI before the server starts.
    run(CONTROL_SERVER, &["--database", &db, "gateway", "add", "--id", "gw-2", "--credential", "secret-2", "--geo", "52.1,4.3"]);

    let (_server, addr) = spawn_listening(
        CONTROL_SERVER,
        &["--database", &db, "serve", "--listen", "127.0.0.1:0", "--config", config_path.to_str().unwrap()],
    )
    .await;
    let base = format!("http://{addr}");
    let http = control_server::http_client().expect("HTTP client");
    let resolve = |gw: (&'static str, &'static str), body: Value| {
        let http = http.clone();
        let url = format!("{base}/v1/resolve");
        async move {
            let answer = http.post(url).header("authorization", basic(gw)).json(&body).send().await.unwrap();
            (answer.status().as_u16(), answer.json::<Value>().await.unwrap())
        }
    };

    // Stale → validated by the sp-sim process; full identifier.
    let (status, body) =
        resolve(("gw-1", "secret-1"), json!({ "device_id": "AC-DE-48-00-00-80", "full_identifier": true })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["source"].as_str(), body["sp"].as_str()), (Some("sp"), Some("sp-one.example")));
    assert_eq!(body["identifier"], "sp-one.example/wifi/AC-DE-48-00-00-80");
    // Redirect across processes.
    let (status, body) = resolve(("gw-2", "secret-2"), json!({ "device_id": "AC-DE-48-00-00-81" })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sp"], "sp-two.example");

    // A signed move sent by the sp-sim CLI.
    let out = run(
        SP_SIM,
        &[
            "move", "--key", key1.to_str().unwrap(), "--identity", "sp-one.example", "--control-server", &base,
            "--new-sp", "sp-two.example", "--devices", "AC-DE-48-00-00-80",
        ],
    );
    let ack: Value = serde_json::from_str(out.trim()).expect("ack JSON on stdout");
    assert_eq!((ack["changed"].as_u64(), ack["events"].as_u64()), (Some(1), Some(1)), "{ack}");
    let poll: Value = http
        .get(format!("{base}/v1/updates/poll?after=0&wait_ms=5000"))
        .header("authorization", basic(("gw-1", "secret-1")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(poll["events"][0]["device_id"], "AC-DE-48-00-00-80");
    assert_eq!(poll["events"][0]["sp"], "sp-two.example");
    assert_eq!(poll["events"][0]["message_id"], ack["message_id"]);

    // A move by an SP without the right to it, through the CLI: refused, non-zero exit.
    let refused = std::process::Command::new(SP_SIM)
        .args([
            "move", "--key", key2.to_str().unwrap(), "--identity", "sp-one.example", "--control-server", &base,
            "--new-sp", "sp-two.example", "--devices", "AC-DE-48-00-00-81",
        ])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("bad_signature"));

    // Revocation by the CLI reaches the running server within its auth cache TTL (1 s).
    run(CONTROL_SERVER, &["--database", &db, "gateway", "revoke", "--id", "gw-2"]);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (status, body) = resolve(("gw-2", "secret-2"), json!({ "device_id": "AC-DE-48-00-00-81" })).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("revoked_gateway")));

    // Device reports relayed to the SP are recorded and listed.
    let report = json!({
        "identifier": "sp-two.example/wifi/AC-DE-48-00-00-80",
        "public_key": "11".repeat(32),
        "device_id": "AC-DE-48-00-00-80",
        "relayed_by": "gw-1"
    });
    let answer = http.post(format!("http://{sp2_addr}/v1/devices")).json(&report).send().await.unwrap();
    assert_eq!(answer.status().as_u16(), 201);
    let wrong_sp = json!({ "identifier": "sp-one.example/wifi/AC-DE-48-00-00-80", "public_key": "11" });
    let answer = http.post(format!("http://{sp2_addr}/v1/devices")).json(&wrong_sp).send().await.unwrap();
    assert_eq!(answer.status().as_u16(), 409);
    let listed: Vec<Value> = http.get(format!("http://{sp2_addr}/v1/devices")).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed, vec![report]);
}

both_backends!(binaries_end_to_end);

#[test]
fn both_binaries_say_their_version() {
    for program in [CONTROL_SERVER, SP_SIM] {
        let out = std::process::Command::new(program).arg("--version").output().expect("runs");
        assert!(out.status.success(), "{program} --version");
        assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")), "{program}");
    }
}
