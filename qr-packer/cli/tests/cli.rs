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

/// The exit status and the whole of stderr.
fn fails(args: &[&str]) -> (Option<i32>, String) {
    let out = run(args);
    assert!(!out.status.success(), "qr-packer {args:?} succeeded");
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A device half (it exports `enroll`) whose one core module has `body`,
/// with `imports` at the top of the component.
fn device_half(imports: &str, body: &str) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(component {imports} (core module $m {body} (func (export "f") (result i32) i32.const 0))
            (core instance $i (instantiate $m)) (func (export "enroll") (result (result)) (canon lift (core func $i "f"))))"#
    ))
    .unwrap()
}

/// An operational app (it exports `activate`, imports nothing) whose one
/// core module has a memory and `data`.
fn operational_app(data: &str) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(component (core module $m (memory (export "memory") 1 2) {data} (func (export "f") (result i32) i32.const 0))
            (core instance $i (instantiate $m)) (func (export "activate") (result (result)) (canon lift (core func $i "f"))))"#
    ))
    .unwrap()
}

/// Writes the wifi meter's phone half and `device` into `dir`; the pack
/// arguments for them.
fn custom_pair(dir: &Path, device: &[u8]) -> Vec<String> {
    let (phone_path, device_path) = (dir.join("p.wasm"), dir.join("d.wasm"));
    std::fs::write(&phone_path, enrollment_apps::WIFI_METER.phone).unwrap();
    std::fs::write(&device_path, device).unwrap();
    ["--phone", s(&phone_path), "--device", s(&device_path), "--app-id", "x", "--app-version", "1", "--access", "wifi"]
        .map(str::to_owned)
        .to_vec()
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
    // Halves on the SDK: the world says what they may call, the manifest
    // lists nothing unless asked (`--capability`).
    assert!(bundle.manifest.capabilities.is_empty(), "{:?}", bundle.manifest.capabilities);

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
    ok(&["pack", "--app", "zigbee-sensor", "--key", &key, "--out-dir", s(dir.path()), "--name", "z", "--unbound"]);
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
    assert_eq!(std::fs::read_dir(&out_dir).unwrap().count(), 5, "two devices × (txt, png), and index.csv");
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
    let data: String = noise.iter().map(|b| format!("\\{b:02x}")).collect();
    let op = operational_app(&format!("(data (i32.const 0) \"{data}\")"));
    let op_path = dir.path().join("op.wasm");
    std::fs::write(&op_path, op).unwrap();
    let out = run(&["pack", "--app", "ble-lock", "--operational", s(&op_path), "--key", &key, "--out-dir", s(dir.path()), "--unbound"]);
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

#[test]
fn pack_and_batch_refuse_a_half_over_the_runtime_memory_cap_before_signing() {
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = keygen(dir.path(), "acme-1");
    let pair = custom_pair(dir.path(), &device_half("", "(memory 17)"));
    let out_dir = dir.path().join("labels");
    let mut pack: Vec<&str> = vec!["pack", "--key", &key, "--out-dir", s(&out_dir), "--device-id", "AC-DE-48-00-00-80"];
    pack.extend(pair.iter().map(String::as_str));
    let expected = "error: refusing to pack these halves: the device half's core module asks for 1114112 bytes of initial linear memory; \
                    the runtime's cap is 131072 (link with -zstack-size=16384 --initial-memory=65536 --max-memory=131072, \
                    as the .cargo/config.toml that `qr-packer new` writes does)\n";
    assert_eq!(fails(&pack), (Some(2), expected.to_owned()));
    let csv = dir.path().join("devices.csv");
    std::fs::write(&csv, "device_id\nAC-DE-48-00-00-80\n").unwrap();
    let mut batch: Vec<&str> = vec!["batch", "--key", &key, "--out-dir", s(&out_dir), "--csv", s(&csv)];
    batch.extend(pair.iter().map(String::as_str));
    assert_eq!(fails(&batch), (Some(2), expected.to_owned()));
    assert!(!out_dir.exists(), "nothing was written");
}

#[test]
fn pack_names_the_supported_wit_version_for_a_half_built_against_another() {
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = keygen(dir.path(), "acme-1");
    let supported = qr_packer::check::wit_version().unwrap();
    let package = qr_packer::check::ENROLLMENT_WIT.lines().find_map(|l| l.strip_prefix("package ")).unwrap();
    let package = package.split('@').next().unwrap();
    let device = device_half(&format!(r#"(import "{package}/transport@9.9.9" (instance))"#), "");
    let mut pack: Vec<String> = ["pack", "--key", &key, "--out-dir", s(dir.path()), "--unbound"].map(str::to_owned).to_vec();
    pack.extend(custom_pair(dir.path(), &device));
    let expected = format!(
        "error: refusing to pack these halves: the device half was built against WIT version 9.9.9 of the enrollment contract; \
         this qr-packer supports version {supported} only (rebuild the half against its wit/enrollment.wit)\n"
    );
    assert_eq!(fails(&pack.iter().map(String::as_str).collect::<Vec<_>>()), (Some(2), expected));
}

#[test]
fn pack_without_a_device_id_needs_unbound() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keygen(dir.path(), "acme-1");
    let out = s(dir.path());
    let expected = "error: no --device-id: this label would name no device, and enroll any fresh wifi device that trusts this key and was \
                    started with --accept-unbound; give --device-id, or --unbound to print such a label\n";
    assert_eq!(fails(&["pack", "--app", "wifi-meter", "--key", &key, "--out-dir", out]), (Some(2), expected.to_owned()));
    assert!(!dir.path().join("wifi-meter.txt").exists());
    ok(&["pack", "--app", "wifi-meter", "--key", &key, "--out-dir", out, "--unbound"]);
    let text = std::fs::read_to_string(dir.path().join("wifi-meter.txt")).unwrap();
    let bundle = SignedPayload::from_text(&text).unwrap().verify(&TrustedKeys::from_files(&[&public]).unwrap()).unwrap();
    assert_eq!(bundle.manifest.device_id, None);
    let (code, stderr) = fails(&["pack", "--app", "wifi-meter", "--key", &key, "--out-dir", out, "--unbound", "--device-id", "AC-DE-48-00-00-80"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("'--unbound' cannot be used with '--device-id"), "{stderr}");
}

#[test]
fn a_label_above_max_version_is_refused_with_the_part_to_shrink_unless_forced() {
    use qr_packer::report::Parts;
    use qr_packer::{Dictionary, Ec, Halves, ManufacturerKey, PreparedApp};
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = keygen(dir.path(), "acme-1");
    // The same payload, sealed here: same sizes, so the same version and parts.
    let app = enrollment_apps::WIFI_METER;
    let halves = Halves { phone: app.phone.to_vec(), device: app.device.to_vec(), operational: None };
    let prepared = PreparedApp::prepare(halves, &Dictionary::current()).unwrap();
    let mut manifest = qr_packer::manifest::reference(&app).unwrap();
    manifest.device_id = Some("AC-DE-48-00-00-80".into());
    let payload = prepared.seal(&manifest, &ManufacturerKey::from_secret("acme-1", [1; 32]).unwrap()).unwrap();
    let version = qr_packer::version_for(&payload.to_text(), Ec::M).unwrap();
    let (part, bytes) = Parts::of(&prepared, &payload).unwrap().largest();
    assert!(version > 2, "the wifi meter needs version {version}");
    let expected = format!(
        "error: the label needs QR version {version} at error correction M, above the limit of version 2 (--max-version); \
         the largest part after compression is the {part} ({bytes} bytes): shrink it first, or give --force to print it anyway\n"
    );
    let out = s(dir.path());
    let pack = ["pack", "--app", "wifi-meter", "--key", &key, "--out-dir", out, "--device-id", "AC-DE-48-00-00-80", "--max-version", "2"];
    assert_eq!(fails(&pack), (Some(2), expected.clone()));
    assert!(!dir.path().join("AC-DE-48-00-00-80.txt").exists());
    let forced = ok(&[&pack[..], &["--force"]].concat());
    assert!(forced.contains("note: above --max-version 2, printed because of --force"), "{forced}");
    assert!(dir.path().join("AC-DE-48-00-00-80.png").exists());
    // Within the default (20), no flag is needed.
    ok(&pack[..pack.len() - 2]);

    let csv = dir.path().join("devices.csv");
    std::fs::write(&csv, "device_id\nAC-DE-48-00-00-80\n").unwrap();
    let batch_dir = dir.path().join("batch");
    let batch = ["batch", "--app", "wifi-meter", "--key", &key, "--csv", s(&csv), "--out-dir", s(&batch_dir), "--max-version", "2"];
    let (code, stderr) = fails(&batch);
    assert_eq!(code, Some(4));
    let row = expected.strip_prefix("error: ").unwrap();
    assert_eq!(stderr, format!("{}: line 2: {row}", s(&csv)));
    ok(&[&batch[..], &["--force"]].concat());
    assert!(batch_dir.join("AC-DE-48-00-00-80.txt").exists());
}

#[test]
fn train_dict_from_a_family_then_pack_and_verify_with_the_signers_dictionary() {
    let dir = tempfile::tempdir().unwrap();
    let family = dir.path().join("family");
    std::fs::create_dir(&family).unwrap();
    for app in enrollment_apps::ALL {
        std::fs::write(family.join(format!("{}-phone.wasm", app.name)), app.phone).unwrap();
        std::fs::write(family.join(format!("{}-device.wasm", app.name)), app.device).unwrap();
        std::fs::write(family.join(format!("{}-device.core.wasm", app.name)), app.device_core).unwrap();
    }
    let (key, public) = keygen(dir.path(), "acme-1");
    let zdict = dir.path().join("acme-family.zdict");
    let out = ok(&["train-dict", "--samples", s(&family), "--out", s(&zdict), "--id", "130"]);
    let samples = qr_packer::train::samples_from_dir(&family).unwrap().samples;
    let dict = std::fs::read(&zdict).unwrap();
    assert_eq!(dict, qr_packer::train::train(&samples));
    assert!(out.contains(&format!("dictionary 130: {} bytes, raw content of 4 stripped pairs → {}\n", dict.len(), s(&zdict))), "{out}");
    for m in qr_packer::train::leave_one_out(&samples).unwrap() {
        let line = format!("  {:<32} {:>15} {:>14} {:>14}\n", m.name, m.halves, m.no_dictionary, m.leave_one_out);
        assert!(out.contains(&line), "{line:?} in {out}");
    }
    assert!(out.contains("skipped wifi-meter-device.core.wasm: not a component"), "{out}");
    // The key file entry train-dict prints, added to the public key file.
    let entry = out.lines().find_map(|l| l.split_once("\"dictionaries\": ")).map(|(_, e)| e.to_owned()).expect("an entry");
    let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&public).unwrap()).unwrap();
    let plain_public = dir.path().join("plain.pub.json");
    std::fs::write(&plain_public, json.to_string()).unwrap();
    json["dictionaries"] = serde_json::from_str(&entry).unwrap();
    std::fs::write(&public, json.to_string()).unwrap();

    let labels = dir.path().join("labels");
    let pack = ["pack", "--app", "wifi-meter", "--key", &key, "--out-dir", s(&labels), "--device-id", "AC-DE-48-00-00-80"];
    let packed = ok(&[&pack[..], &["--dictionary", s(&zdict), "--dictionary-id", "130"]].concat());
    assert!(packed.contains("dictionary 130 (acme-family.zdict): readers need it listed"), "{packed}");
    let txt = labels.join("AC-DE-48-00-00-80.txt");
    ok(&["verify", s(&txt), "--trusted", &public]);
    assert!(ok(&["inspect", s(&txt), "--trusted", &public]).contains("dictionary 130 (the signer's own)"));
    let bundle = SignedPayload::from_text(&std::fs::read_to_string(&txt).unwrap())
        .unwrap()
        .verify(&TrustedKeys::from_files(&[&public]).unwrap())
        .unwrap();
    assert_eq!(bundle.dictionary, 130);
    // Through --trusted-dir too.
    let trusted_dir = dir.path().join("trusted");
    std::fs::create_dir(&trusted_dir).unwrap();
    std::fs::copy(&public, trusted_dir.join("acme-1.pub.json")).unwrap();
    std::fs::copy(&zdict, trusted_dir.join("acme-family.zdict")).unwrap();
    ok(&["verify", s(&txt), "--trusted-dir", s(&trusted_dir)]);

    // A reader whose key file does not list it.
    let expected = "error: the bundle was compressed with dictionary 130, one of signer \"acme-1\"'s own, which this reader does not have: \
                    it comes with that signer's trusted public key file (\"dictionaries\")\n";
    assert_eq!(fails(&["verify", s(&txt), "--trusted", s(&plain_public)]), (Some(17), expected.to_owned()));
    // A changed dictionary file is refused when the keys are read.
    std::fs::write(&zdict, b"other bytes").unwrap();
    let (code, stderr) = fails(&["verify", s(&txt), "--trusted", &public]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("acme-family.zdict") && stderr.contains("the key file pins"), "{stderr}");

    let shipped_id = fails(&[&pack[..], &["--dictionary", s(&zdict), "--dictionary-id", "5"]].concat());
    let expected = "error: dictionary id 5 is not a manufacturer dictionary id: those are 128 to 255 (0 is no dictionary, 1 to 127 are shipped with qr-packer)\n";
    assert_eq!(shipped_id, (Some(2), expected.to_owned()));
    let no_file = fails(&[&pack[..], &["--dictionary-id", "130"]].concat());
    assert_eq!(no_file, (Some(2), "error: dictionary 130 is a manufacturer's own: give its file with --dictionary FILE\n".to_owned()));
}

#[test]
fn train_dict_needs_samples_or_reference_and_shipped_retrains_the_shipped_dictionary() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr) = fails(&["train-dict", "--out", s(&dir.path().join("x.zdict"))]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("--samples <SAMPLES>|--reference|--shipped"), "{stderr}");
    let out = dir.path().join("enroll.zdict");
    ok(&["train-dict", "--shipped", "--out", s(&out)]);
    assert_eq!(std::fs::read(&out).unwrap(), qr_packer::Dictionary::current().bytes());
    // The reference apps are not what the shipped dictionary is made of.
    ok(&["train-dict", "--reference", "--out", s(&out)]);
    assert_ne!(std::fs::read(&out).unwrap(), qr_packer::Dictionary::current().bytes());
    let (code, stderr) = fails(&["train-dict", "--samples", s(dir.path()), "--out", s(&out), "--id", "1"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("dictionary id 1 is not a manufacturer dictionary id"), "{stderr}");
}

#[test]
fn pack_ndef_writes_an_nfc_label_that_reads_back_from_every_tag_image() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keygen(dir.path(), "acme-1");
    let out = s(dir.path());
    let report = ok(&["pack", "--app", "wifi-meter", "--key", &key, "--out-dir", out, "--device-id", "AC-DE-48-00-00-80", "--ndef"]);
    let base = dir.path().join("AC-DE-48-00-00-80");
    let message = std::fs::read(base.with_extension("ndef")).unwrap();
    let text = std::fs::read_to_string(base.with_extension("txt")).unwrap();
    // The same signed payload as the QR label, as bytes.
    let (payload, _) = qr_packer::nfc::read_payload(&message).unwrap();
    assert_eq!(SignedPayload::from_bytes(payload).to_text(), text.trim_end());
    let fits: Vec<&str> = qr_packer::nfc::TAGS.iter().filter(|t| t.fits(message.len())).map(|t| t.name).collect();
    assert!(!fits.is_empty(), "a reference app fits some common tag ({} bytes)", message.len());
    for tag in qr_packer::nfc::TAGS {
        let verdict = if tag.fits(message.len()) { "fits" } else { "too small" };
        assert!(report.contains(&format!("{} ({} B): {verdict}", tag.name, tag.user_bytes)), "{report}");
    }

    // verify and inspect read the .ndef, a Type 2 dump and a Type 4 image.
    let ndef = s(&base.with_extension("ndef")).to_owned();
    let inspect = ok(&["inspect", &ndef, "--trusted", &public]);
    assert!(inspect.contains("read from:     NFC: NDEF message") && inspect.contains("signature verified"), "{inspect}");
    let tag = qr_packer::nfc::TAGS.iter().find(|t| t.fits(message.len())).unwrap();
    let type2 = dir.path().join("tag2.bin");
    std::fs::write(&type2, qr_packer::nfc::type2_image(*tag, [4, 0x1F, 0x2E, 0x3D, 0x4C, 0x5B, 0x6A], &message).unwrap()).unwrap();
    let type4 = dir.path().join("tag4.bin");
    std::fs::write(&type4, qr_packer::nfc::type4_image(&message).unwrap()).unwrap();
    for (image, kind) in [(&type2, "NFC: Type 2 tag dump"), (&type4, "NFC: Type 4 NDEF file")] {
        ok(&["verify", s(image), "--trusted", &public]);
        let json: serde_json::Value = serde_json::from_str(&ok(&["inspect", s(image), "--trusted", &public, "--json"])).unwrap();
        assert_eq!(json["source"], kind);
        assert_eq!(json["manifest"]["device_id"], "AC-DE-48-00-00-80");
    }

    // One flipped bit in the payload: the signature stage refuses it (15);
    // a file that is no NFC image at all: 9.
    let mut tampered = message.clone();
    let last = tampered.len() - 70;
    tampered[last] ^= 1;
    let tampered_path = dir.path().join("tampered.ndef");
    std::fs::write(&tampered_path, &tampered).unwrap();
    let (code, stderr) = fails(&["verify", s(&tampered_path), "--trusted", &public]);
    assert_eq!(code, Some(15), "{stderr}");
    let junk = dir.path().join("junk.bin");
    std::fs::write(&junk, [0x13, 0x37, 0x00, 0xFF]).unwrap();
    let (code, stderr) = fails(&["verify", s(&junk), "--trusted", &public]);
    assert_eq!(code, Some(9), "{stderr}");
    assert!(stderr.contains("neither a label text, a QR image nor an NFC image"), "{stderr}");
}

/// Rasterizes page `page` of a PDF at 300 dpi with poppler's `pdftoppm`
/// (installed by `scripts/test`), as a printer driver would.
fn rasterize(pdf: &Path, page: u32) -> Vec<u8> {
    let dir = pdf.parent().unwrap();
    let prefix = dir.join(format!("raster-{page}"));
    let status = Command::new("pdftoppm")
        .args(["-r", "300", "-png", "-singlefile", "-f", &page.to_string(), "-l", &page.to_string(), s(pdf), s(&prefix)])
        .status()
        .expect("pdftoppm runs (Debian's poppler-utils; scripts/test installs it)");
    assert!(status.success(), "pdftoppm failed on {}", pdf.display());
    std::fs::read(prefix.with_extension("png")).unwrap()
}

#[test]
fn pack_writes_printable_labels_that_read_back_and_refuses_unreadable_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keygen(dir.path(), "acme-1");
    let out = s(dir.path());
    let report = ok(&["pack", "--app", "wifi-meter", "--key", &key, "--out-dir", out, "--device-id", "AC-DE-48-00-00-80", "--size-mm", "40", "--dpi", "600"]);
    assert!(report.contains("label: 40.0 mm wide"), "{report}");
    let base = dir.path().join("AC-DE-48-00-00-80");
    let text = std::fs::read_to_string(base.with_extension("txt")).unwrap();
    // The PNG at its resolution, the PDF as printed: both read back.
    let png = std::fs::read(base.with_extension("png")).unwrap();
    assert_eq!(read_label_image(&png).unwrap(), text.trim_end());
    let at = png.windows(4).position(|w| w == b"pHYs").expect("the PNG says its resolution");
    assert_eq!(&png[at + 4..at + 8], &23622u32.to_be_bytes(), "600 dpi");
    assert_eq!(read_label_image(&rasterize(&base.with_extension("pdf"), 1)).unwrap(), text.trim_end());
    let svg = std::fs::read_to_string(base.with_extension("svg")).unwrap();
    assert!(svg.contains(r#"width="40.000mm""#) && svg.contains(">AC-DE-48-00-00-80<") && svg.contains(">key acme-1<"));
    // The SVG, rendered at 300 dpi as a print pipeline would (librsvg), reads back too.
    let svg_png = dir.path().join("svg.png");
    let status = Command::new("rsvg-convert")
        .args(["-d", "300", "-p", "300", "-o", s(&svg_png), s(&base.with_extension("svg"))])
        .status()
        .expect("rsvg-convert runs (Debian's librsvg2-bin; scripts/test installs it)");
    assert!(status.success());
    assert_eq!(read_label_image(&std::fs::read(&svg_png).unwrap()).unwrap(), text.trim_end());
    ok(&["verify", s(&base.with_extension("png")), "--trusted", &public]);

    // Too small to read: refused, naming the size that reads; small: warned.
    let (code, stderr) = fails(&["pack", "--app", "wifi-meter", "--key", &key, "--out-dir", out, "--device-id", "AC-DE-48-00-00-80", "--size-mm", "12"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("below the smallest printed (0.25 mm") && stderr.contains("give --size-mm"), "{stderr}");
    let small = run(&["pack", "--app", "wifi-meter", "--key", &key, "--out-dir", out, "--device-id", "AC-DE-48-00-00-80", "--size-mm", "26"]);
    assert!(small.status.success());
    assert!(String::from_utf8_lossy(&small.stderr).contains("warning: a module is"), "{}", String::from_utf8_lossy(&small.stderr));
}

#[test]
fn batch_writes_an_index_and_sheets_of_labels_that_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keygen(dir.path(), "acme-1");
    let csv = dir.path().join("devices.csv");
    let devices: Vec<String> = (0..14).map(|i| format!("AC-DE-48-00-01-{i:02X}")).collect();
    std::fs::write(&csv, format!("device_id\n{}\n", devices.join("\n"))).unwrap();
    let out = dir.path().join("out");
    ok(&["batch", "--app", "wifi-meter", "--key", &key, "--csv", s(&csv), "--out-dir", s(&out), "--pdf", "--size-mm", "40"]);
    let index = std::fs::read_to_string(out.join("index.csv")).unwrap();
    let mut lines = index.lines();
    assert_eq!(lines.next(), Some("device_id,text,png,svg,text_chars,signed_bytes,qr_version"));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 14);
    for (row, device) in rows.iter().zip(&devices) {
        assert_eq!(row[0], device);
        assert_eq!(row[1], format!("{device}.txt"));
        let text = std::fs::read_to_string(out.join(row[1])).unwrap();
        assert_eq!(row[4].parse::<usize>().unwrap(), text.trim_end().len());
        assert_eq!(read_label_image(&std::fs::read(out.join(row[2])).unwrap()).unwrap(), text.trim_end());
    }
    // 40 mm labels: 4 a row, 5 rows on A4: the 14 labels on one page. Page 1
    // read back as printed carries one of the batch's payloads.
    let sheet = out.join("labels.pdf");
    let raster = rasterize(&sheet, 1);
    let read = read_label_image(&raster).unwrap();
    assert!(devices.iter().any(|d| std::fs::read_to_string(out.join(format!("{d}.txt"))).unwrap().trim_end() == read));
    let pdf = std::fs::read(&sheet).unwrap();
    assert_eq!(String::from_utf8_lossy(&pdf).matches(") Tj").count(), 14 * 3, "three caption lines a label");
    ok(&["verify", s(&out.join(rows[0][2])), "--trusted", &public]);
}

#[test]
fn inspect_into_a_closed_pipe_ends_quietly_and_an_svg_gets_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keygen(dir.path(), "acme-1");
    ok(&["pack", "--app", "wifi-meter", "--key", &key, "--out-dir", s(dir.path()), "--device-id", "AC-DE-48-00-00-80"]);
    let txt = dir.path().join("AC-DE-48-00-00-80.txt");
    // `inspect … | head -1`: the reader goes away after one line.
    let mut child = Command::new(env!("CARGO_BIN_EXE_qr-packer"))
        .args(["inspect", s(&txt), "--trusted", &public])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");

    let svg = dir.path().join("AC-DE-48-00-00-80.svg");
    let (code, stderr) = fails(&["inspect", s(&svg)]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("is an SVG drawing, which is not read back: give the label's PNG"), "{stderr}");
    // A missing key file is named once, not twice.
    let (_, stderr) = fails(&["verify", s(&txt), "--trusted", s(&dir.path().join("nope.pub.json"))]);
    assert_eq!(stderr.matches("No such file or directory").count(), 1, "{stderr}");
}

#[test]
fn with_operational_packs_the_reference_apps_operational_app_and_refuses_where_there_is_none() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keygen(dir.path(), "acme-1");
    let out = s(dir.path());
    let trusted = TrustedKeys::from_files(&[&public]).unwrap();
    let op = enrollment_apps::operational("wifi-meter").unwrap();
    let stripped = qr_packer::strip::strip_custom_sections(op.component).unwrap();
    let pack = ["pack", "--app", "wifi-meter", "--with-operational", "--key", &key, "--out-dir", out, "--device-id", "AC-DE-48-00-00-80"];

    // The operational app is the label's largest part: below the version
    // the label needs, pack names it.
    let (code, stderr) = fails(&[&pack[..], &["--max-version", "15"]].concat());
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("the largest part after compression is the operational application"), "{stderr}");

    // Within the default --max-version: the shipped dictionary knows world
    // `operational`.
    let report = ok(&pack);
    assert!(report.contains("operational, stripped") && report.contains(&stripped.len().to_string()), "{report}");
    let text = std::fs::read_to_string(dir.path().join("AC-DE-48-00-00-80.txt")).unwrap();
    let bundle = SignedPayload::from_text(&text).unwrap().verify(&trusted).unwrap();
    assert_eq!(bundle.halves.operational.as_deref(), Some(&stripped[..]));

    // batch takes the same flag.
    let csv = dir.path().join("devices.csv");
    std::fs::write(&csv, "device_id\n00-0D-6F-FF-FE-00-00-02\n").unwrap();
    let labels = dir.path().join("labels");
    ok(&["batch", "--app", "zigbee-sensor", "--with-operational", "--no-images", "--key", &key, "--csv", s(&csv), "--out-dir", s(&labels)]);
    let text = std::fs::read_to_string(labels.join("00-0D-6F-FF-FE-00-00-02.txt")).unwrap();
    let bundle = SignedPayload::from_text(&text).unwrap().verify(&trusted).unwrap();
    let zigbee = enrollment_apps::operational("zigbee-sensor").unwrap();
    assert_eq!(bundle.halves.operational, Some(qr_packer::strip::strip_custom_sections(zigbee.component).unwrap()));

    // Without it, no operational app.
    ok(&["pack", "--app", "wifi-meter", "--key", &key, "--out-dir", out, "--device-id", "AC-DE-48-00-00-80"]);
    let text = std::fs::read_to_string(dir.path().join("AC-DE-48-00-00-80.txt")).unwrap();
    assert_eq!(SignedPayload::from_text(&text).unwrap().verify(&trusted).unwrap().halves.operational, None);

    let (code, stderr) = fails(&["pack", "--app", "ble-lock", "--with-operational", "--key", &key, "--out-dir", out, "--unbound"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("\"ble-lock\" has no operational app") && stderr.contains("wifi-meter, zigbee-sensor"), "{stderr}");
    // Only with --app, and not with --operational FILE as well.
    let op_path = dir.path().join("op.wasm");
    std::fs::write(&op_path, op.component).unwrap();
    let (code, _) = fails(&["pack", "--app", "wifi-meter", "--with-operational", "--operational", s(&op_path), "--key", &key, "--out-dir", out, "--unbound"]);
    assert_eq!(code, Some(2));
    let phone = dir.path().join("p.wasm");
    std::fs::write(&phone, enrollment_apps::WIFI_METER.phone).unwrap();
    let (code, _) = fails(&["pack", "--phone", s(&phone), "--device", s(&phone), "--with-operational", "--key", &key, "--out-dir", out, "--unbound"]);
    assert_eq!(code, Some(2));
}

#[test]
fn pack_refuses_a_half_given_as_the_operational_app_before_signing() {
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = keygen(dir.path(), "acme-1");
    let phone = dir.path().join("p.wasm");
    std::fs::write(&phone, enrollment_apps::WIFI_METER.phone).unwrap();
    let (code, stderr) = fails(&["pack", "--app", "wifi-meter", "--operational", s(&phone), "--key", &key, "--out-dir", s(dir.path()), "--unbound"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("operational"), "{stderr}");
    assert!(!dir.path().join("wifi-meter.txt").exists(), "nothing is written");
}
