//! `device-agent serve --metrics-listen`: a real agent process, enrolled over
//! its TCP link by an in-process assistant, then scraped over HTTP on
//! loopback: the text parses, and sessions, failures by code, the half's
//! run and the store's commits are counted.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use enrollment_apps::WIFI_METER;
use enrollment_assistant::{
    AssistantRuntime, ConfiguredAssistant, EnrollError, EnrollOptions, NetworkCredentials, Sandbox, SandboxConfig,
    SpIdentity, Timeouts,
};
use enrollment_metrics::check;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const METER: &str = "AC-DE-48-00-00-80";

fn manufacturer() -> qr_packer::ManufacturerKey {
    qr_packer::ManufacturerKey::from_secret("acme-metrics-tests", [0x42; 32]).unwrap()
}

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn assistant() -> AssistantRuntime {
    let sandbox = Arc::new(Sandbox::new(SandboxConfig { max_concurrent_halves: 4, ..SandboxConfig::default() }).unwrap());
    let services = Arc::new(ConfiguredAssistant {
        location: Some("geo:52.3676,4.9041".into()),
        owner: Some("ACME Utilities".into()),
        networks: vec![NetworkCredentials::Wifi { ssid: "plant-3".into(), passphrase: "correct horse".into() }],
        default_sp: Some(SpIdentity::new("sp-one.example").unwrap()),
        ..Default::default()
    });
    let identity = SigningKey::generate(&mut rand::rngs::OsRng);
    AssistantRuntime::new(sandbox, services, identity, Timeouts::default()).unwrap()
}

async fn scrape(addr: &str) -> (String, check::Scrape) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: device\r\n\r\n").await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(head.contains(enrollment_metrics::CONTENT_TYPE), "{head}");
    let scrape = check::parse(body).unwrap_or_else(|e| panic!("not a valid exposition: {e}\n{body}"));
    (head.to_owned(), scrape)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_counts_its_sessions_and_serves_them() {
    let dir = tempfile::tempdir().unwrap();
    let trust = dir.path().join("acme.pub.json");
    manufacturer().public_to_file(&trust).unwrap();
    let db = dir.path().join("meter.sqlite");
    let mut child = Command::new(env!("CARGO_BIN_EXE_device-agent"))
        .args(["serve", "--db"])
        .arg(&db)
        .arg("--trust")
        .arg(&trust)
        .args(["--device-id", METER, "--access", "wifi", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("device-agent starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let _agent = Agent(child);
    let mut next = || lines.next().expect("a line").expect("readable");
    let link = next().strip_prefix("listening on ").expect("the link address first").to_owned();
    let metrics = next().strip_prefix("metrics on ").expect("then the metrics address").to_owned();

    let (_, before) = scrape(&metrics).await;
    assert_eq!(before.value("device_sessions_total", &[("outcome", "enrolled")]), Some(0.0));
    assert_eq!(before.value("device_half_run_duration_seconds_count", &[]), Some(0.0));
    let provisioned = before.value("device_store_commit_duration_seconds_count", &[]).unwrap();
    assert!(provisioned >= 1.0, "the agent provisioned the device in a transaction");

    let manifest = qr_packer::Manifest {
        format_version: qr_packer::FORMAT_VERSION,
        app_id: "wifi-meter".into(),
        app_version: "1.0.0".into(),
        manufacturer: "Acme IoT".into(),
        product: "Smart meter M1".into(),
        access: "wifi".into(),
        capabilities: Vec::new(),
        device_id: Some(METER.into()),
        one_time_secret: None,
        params: Default::default(),
    };
    let label = enrollment_assistant::label::seal(WIFI_METER.phone, WIFI_METER.device, &manifest, &manufacturer()).unwrap();
    let stream = tokio::net::TcpStream::connect(&link).await.unwrap();
    assistant().enroll(enrollment_assistant::Link::tcp(stream), &label, EnrollOptions::default()).await.expect("enrolled");
    assert!(next().starts_with("enrolled "));
    // Another assistant: the device is sealed to the first.
    let stream = tokio::net::TcpStream::connect(&link).await.unwrap();
    let refused = assistant().enroll(enrollment_assistant::Link::tcp(stream), &label, EnrollOptions::default()).await;
    assert!(matches!(refused, Err(EnrollError::DeviceSealed)), "{refused:?}");
    assert!(next().starts_with("enrollment failed"));

    let (_, after) = scrape(&metrics).await;
    let sessions = |o: &str| after.value("device_sessions_total", &[("outcome", o)]);
    assert_eq!(sessions("enrolled"), Some(1.0));
    assert_eq!(sessions("failed"), Some(1.0));
    assert_eq!(sessions("rebound"), Some(0.0));
    // The assistant saw the seal in Hello and aborted: the device counts the abort.
    assert_eq!(after.value("device_session_failures_total", &[("code", "aborted")]), Some(1.0));
    assert_eq!(after.sum("device_session_failures_total", &[]), 1.0);
    assert_eq!(after.value("device_half_run_duration_seconds_count", &[]), Some(1.0));
    let commits = after.value("device_store_commit_duration_seconds_count", &[]).unwrap();
    assert!(commits > provisioned, "the enrollment was one more transaction ({provisioned} → {commits})");

    // Anything but GET /metrics is refused.
    let mut stream = tokio::net::TcpStream::connect(&metrics).await.unwrap();
    stream.write_all(b"GET /v1/devices HTTP/1.1\r\n\r\n").await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut answer)).await.unwrap().unwrap();
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
}
