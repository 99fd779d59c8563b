//! The `qr-packer` binary, run for real: keygen, pack, inspect, verify,
//! batch (with a bad row), render, and the label round trip
//! pack → PNG → read → verify.

use std::path::Path;
use std::process::{Command, Output};

use qr_packer::{SignedPayload, TrustedKeys, read_label_image};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_qr-packer")).args(args).output().expect("the binary runs")
}

fn ok(args: &[&str]) -> String {
    let out = run(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "qr-packer {args:?} failed: {stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn keygen(dir: &Path, kid: &str) -> (String, String) {
    let key = dir.join(format!("{kid}.json"));
    let public = dir.join(format!("{kid}.pub.json"));
    ok(&["keygen", "--kid", kid, "--out", s(&key), "--public", s(&public)]);
    (s(&key).to_owned(), s(&public).to_owned())
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

#[test]
fn every_command_has_help() {
    for cmd in ["keygen", "pack", "batch", "inspect", "verify", "render", "train-dict"] {
        assert!(ok(&[cmd, "--help"]).contains("Usage"), "{cmd}");
    }
}

#[test]
fn pack_then_the_png_label_reads_back_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keygen(dir.path(), "acme-1");
    let out = s(dir.path());
    let report = ok(&["pack", "--app", "wifi-meter", "--key", &key, "--out-dir", out, "--device-id", "AC-DE-48-00-00-80", "--secret", "00ff"]);
    assert!(report.contains("QR version at EC M") && report.contains("naive"), "{report}");
    let base = dir.path().join("AC-DE-48-00-00-80");
    let text = std::fs::read_to_string(base.with_extension("txt")).unwrap();
    let png = std::fs::read(base.with_extension("png")).unwrap();
    assert_eq!(read_label_image(&png).unwrap(), text.trim_end());
    assert!(std::fs::read_to_string(base.with_extension("svg")).unwrap().contains("<svg"));
    let trusted = TrustedKeys::from_files(&[&public]).unwrap();
    let bundle = SignedPayload::from_text(&text).unwrap().verify(&trusted).unwrap();
    assert_eq!(bundle.manifest.device_id.as_deref(), Some("AC-DE-48-00-00-80"));
    assert!(bundle.manifest.capabilities.contains(&"device.configure-network".to_string()));

    // verify: 0 on the label image and on the text file.
    ok(&["verify", s(&base.with_extension("png")), "--trusted", &public]);
    ok(&["verify", s(&base.with_extension("txt")), "--trusted", &public]);
    // inspect --json on the image.
    let json: serde_json::Value = serde_json::from_str(&ok(&["inspect", s(&base.with_extension("png")), "--trusted", &public, "--json"])).unwrap();
    assert_eq!(json["manifest"]["app_id"], "wifi-meter");
    assert_eq!(json["signature_checked"], true);
    assert!(json["qr_version_at_m"].as_i64().unwrap() <= 40);
}

#[test]
fn verify_exits_non_zero_with_a_distinct_status_per_failure() {
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = keygen(dir.path(), "acme-1");
    let (_, stranger) = keygen(dir.path(), "stranger");
    ok(&["pack", "--app", "zigbee-sensor", "--key", &key, "--out-dir", s(dir.path()), "--name", "z"]);
    let txt = dir.path().join("z.txt");
    let unknown = run(&["verify", s(&txt), "--trusted", &stranger]);
    assert_eq!(unknown.status.code(), Some(14), "unknown kid: {}", String::from_utf8_lossy(&unknown.stderr));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("acme-1"));
    let wrong_prefix = run(&["verify", "EN1:", "--trusted", &stranger]);
    assert_eq!(wrong_prefix.status.code(), Some(12), "empty COSE is BadCose");
    let not_a_label = run(&["verify", "HC1:ABC", "--trusted", &stranger]);
    assert_eq!(not_a_label.status.code(), Some(10));
    let no_keys = run(&["verify", s(&txt)]);
    assert_eq!(no_keys.status.code(), Some(2));
}

#[test]
fn batch_reports_a_bad_row_by_line_and_produces_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keygen(dir.path(), "acme-1");
    let csv = dir.path().join("devices.csv");
    std::fs::write(&csv, "device_id,one_time_secret,site\nAC-DE-48-00-00-80,0011,north\nnot-an-eui,0011,south\nAC-DE-48-00-00-82,,east\n").unwrap();
    let out_dir = dir.path().join("labels");
    let out = run(&["batch", "--app", "wifi-meter", "--csv", s(&csv), "--key", &key, "--out-dir", s(&out_dir)]);
    assert_eq!(out.status.code(), Some(4), "a bad row makes the exit status non-zero");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 3") && stderr.contains("not-an-eui"), "{stderr}");
    let trusted = TrustedKeys::from_files(&[&public]).unwrap();
    for (id, site) in [("AC-DE-48-00-00-80", "north"), ("AC-DE-48-00-00-82", "east")] {
        let text = std::fs::read_to_string(out_dir.join(format!("{id}.txt"))).unwrap();
        let bundle = SignedPayload::from_text(&text).unwrap().verify(&trusted).unwrap();
        assert_eq!(bundle.manifest.device_id.as_deref(), Some(id));
        assert_eq!(bundle.manifest.params.get("site").map(String::as_str), Some(site));
        assert!(out_dir.join(format!("{id}.png")).exists());
    }
    assert_eq!(std::fs::read_dir(&out_dir).unwrap().count(), 4, "two devices × (txt, png)");
}

#[test]
fn pack_refuses_halves_outside_their_world() {
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = keygen(dir.path(), "acme-1");
    let (phone, device) = (dir.path().join("p.wasm"), dir.path().join("d.wasm"));
    // Swapped: the device half given as the phone half.
    std::fs::write(&phone, enrollment_apps::WIFI_METER.device).unwrap();
    std::fs::write(&device, enrollment_apps::WIFI_METER.phone).unwrap();
    let out = run(&["pack", "--phone", s(&phone), "--device", s(&device), "--key", &key, "--out-dir", s(dir.path()),
        "--app-id", "x", "--app-version", "1", "--access", "wifi"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("imports"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn pack_that_cannot_fit_version_40_fails_with_the_breakdown() {
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = keygen(dir.path(), "acme-1");
    // 5 KB of incompressible operational data cannot fit any QR code.
    use sha2::Digest;
    let noise: Vec<u8> = (0..160u32).flat_map(|i| sha2::Sha256::digest(i.to_le_bytes())).collect();
    let op = wat::parse_str(format!("(module (data \"{}\"))", noise.iter().map(|b| format!("\\{b:02x}")).collect::<String>())).unwrap();
    let op_path = dir.path().join("op.wasm");
    std::fs::write(&op_path, op).unwrap();
    let out = run(&["pack", "--app", "ble-lock", "--operational", s(&op_path), "--key", &key, "--out-dir", s(dir.path())]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("version 40") && stderr.contains("compressed") && stderr.contains("what to change"), "{stderr}");
}

#[test]
fn render_writes_png_svg_and_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("l.png");
    let svg = dir.path().join("l.svg");
    let out = ok(&["render", "EN1:HELLO", "--png", s(&png), "--svg", s(&svg), "--terminal"]);
    assert!(out.contains('█'));
    assert_eq!(read_label_image(&std::fs::read(&png).unwrap()).unwrap(), "EN1:HELLO");
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
}
