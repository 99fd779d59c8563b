//! Hostile and broken halves: each gets a specific error, and the device's
//! database is exactly as it was before.
//!
//! The hostile guests are core modules written in WAT against the canonical
//! ABI of `wit/enrollment.wit`, turned into components here with
//! `wit-component`, so each one is a real component of its world that does
//! one bad thing.

use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use enrollment_apps::WIFI_METER;
use enrollment_assistant::NetworkCredentials;
use enrollment_device::{DeviceState, DeviceStore};
use enrollment_device::DeviceReport;
use enrollment_device::DeviceFailure;
use enrollment_host::Link;
use qr_packer::{Dictionary, Halves, ManufacturerKey, Manifest, PreparedApp};
use enrollment_assistant::ScannedApp;
use enrollment_assistant::ConfiguredAssistant;
use enrollment_assistant::{
    AccessTechnology, AssistantRuntime, Compiler, EnrollError, EnrollOptions, EnrollmentReport, Eui, HalfError, Sandbox,
    SandboxConfig, SpIdentity, Timeouts,
};
use enrollment_device::DeviceRuntime;
use end_to_end_tests::componentize_wat as componentize;

const METER: &str = "AC-DE-48-00-00-80";

struct Fixture {
    _dir: tempfile::TempDir,
    assistant: AssistantRuntime,
    services: Arc<ConfiguredAssistant>,
    device: DeviceRuntime,
}

impl Fixture {
    fn new(half_deadline: Duration, receive: Duration) -> Self {
        Self::with_compiler(Compiler::default(), half_deadline, receive)
    }

    fn with_compiler(compiler: Compiler, half_deadline: Duration, receive: Duration) -> Self {
        let config = SandboxConfig { compiler, half_deadline, max_concurrent_halves: 16, ..SandboxConfig::default() };
        Self::with_config(config, receive)
    }

    fn with_config(config: SandboxConfig, receive: Duration) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let sandbox = Arc::new(Sandbox::new(config).unwrap());
        let services = Arc::new(ConfiguredAssistant {
            location: Some("geo:52.3676,4.9041".into()),
            owner: Some("ACME Utilities".into()),
            networks: vec![NetworkCredentials::Wifi { ssid: "plant-3".into(), passphrase: "correct horse".into() }],
            default_sp: Some(SpIdentity::new("sp-one.example").unwrap()),
            ..Default::default()
        });
        let timeouts = Timeouts { receive, protocol: Duration::from_secs(5), ..Timeouts::default() };
        let identity = SigningKey::generate(&mut rand::rngs::OsRng);
        let assistant = AssistantRuntime::new(sandbox.clone(), services.clone(), identity, timeouts).unwrap();
        let store = Arc::new(DeviceStore::open(&dir.path().join("device.sqlite")).unwrap());
        store.provision(meter(), AccessTechnology::Wifi).unwrap();
        let device = DeviceRuntime::new(sandbox, store, manufacturer().trusted(), timeouts, true).unwrap();
        Self { _dir: dir, assistant, services, device }
    }

    /// Short deadlines, but long enough for a debug build to compile the
    /// peer half on a loaded 2-core machine: a half's deadline counts its waits.
    fn quick() -> Self {
        Self::new(Duration::from_millis(2000), Duration::from_millis(3000))
    }

    fn state(&self) -> Option<DeviceState> {
        self.device.store().state(&meter()).unwrap()
    }

    /// Runs one in-process enrollment and checks the device is unchanged.
    async fn enroll_expecting_failure(
        &self,
        phone: &[u8],
        device: &[u8],
    ) -> (Result<EnrollmentReport, EnrollError>, Result<DeviceReport, DeviceFailure>) {
        let before = self.state();
        let (a, b) = Link::memory_pair();
        let app = hostile_label(phone, device);
        let (assistant, device) = tokio::join!(
            self.assistant.enroll(a, &app, EnrollOptions::default()),
            self.device.serve(meter(), b)
        );
        assert!(assistant.is_err(), "enrollment should fail: {assistant:?}");
        assert!(device.is_err(), "device should fail: {device:?}");
        assert_eq!(self.state(), before, "a failed enrollment must leave the device unchanged");
        (assistant, device)
    }
}

fn meter() -> Eui {
    METER.parse().unwrap()
}

/// The manufacturer whose key signs the hostile halves: a half can be
/// hostile (buggy or malicious) and still carry a valid signature, so the
/// sandbox must hold on its own.
fn manufacturer() -> ManufacturerKey {
    ManufacturerKey::from_secret("acme-hostile-tests", [0x24; 32]).unwrap()
}

/// `phone` and `device` in a label signed by [`manufacturer`], WITHOUT the
/// checks `qr-packer pack` makes (it would refuse most of these halves).
fn hostile_label(phone: &[u8], device: &[u8]) -> ScannedApp {
    let halves = Halves { phone: phone.to_vec(), device: device.to_vec(), operational: None };
    let manifest = Manifest {
        format_version: qr_packer::FORMAT_VERSION,
        app_id: "hostile".into(),
        app_version: "0.0.1".into(),
        manufacturer: "Acme".into(),
        product: "test".into(),
        access: "wifi".into(),
        capabilities: Vec::new(),
        device_id: Some(METER.into()),
        one_time_secret: None,
        params: Default::default(),
    };
    let signed = PreparedApp::unchecked(halves, &Dictionary::current()).unwrap().seal(&manifest, &manufacturer()).unwrap();
    ScannedApp::from_signed(signed, &manufacturer().trusted()).unwrap()
}

/// The imports a hostile device half may use, in canonical-ABI core form.
const DEVICE_IMPORTS: &str = r#"
  (import "iot-enroll:enrollment/transport@0.2.0" "send" (func $send (param i32 i32 i32)))
  (import "iot-enroll:enrollment/transport@0.2.0" "receive" (func $receive (param i32)))
  (import "iot-enroll:enrollment/device@0.2.0" "device-id" (func $device_id (param i32)))
  (import "iot-enroll:enrollment/take@0.2.0" "next" (func $next (param i32)))
  (import "iot-enroll:enrollment/take@0.2.0" "finish" (func $finish (param i32)))
"#;

const PHONE_IMPORTS: &str = r#"
  (import "iot-enroll:enrollment/transport@0.2.0" "send" (func $send (param i32 i32 i32)))
  (import "iot-enroll:enrollment/transport@0.2.0" "receive" (func $receive (param i32)))
"#;

/// Refusal codes as the canonical ABI lays them out (`types.refusal`).
const OUT_OF_ORDER: i32 = 3;
const TIMEOUT: i32 = 7;

/// Receives until the link closes: an answer, a timeout or an item that is
/// not for `receive` (out of order: it stays at the head) all go round again.
fn receive_until_closed() -> String {
    let refusal = "(i32.load8_u (i32.const 4))";
    format!(
        "(loop $l (call $receive (i32.const 0)) \
           (br_if $l (i32.or (i32.eqz (i32.load8_u (i32.const 0))) \
             (i32.or (i32.eq {refusal} (i32.const {TIMEOUT})) (i32.eq {refusal} (i32.const {OUT_OF_ORDER})))))) \
         (i32.const 1)"
    )
}

/// Memory, a bump `cabi_realloc`, and helpers shared by the hostile modules.
/// Return areas: 0..16 for results; the heap starts at 4096.
const RUNTIME: &str = r#"
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 4096))
  (func $realloc (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $p i32)
    (local.set $p (i32.and (i32.add (global.get $heap) (i32.sub (local.get 2) (i32.const 1)))
                           (i32.sub (i32.const 0) (local.get 2))))
    (global.set $heap (i32.add (local.get $p) (local.get 3)))
    (local.get $p))
"#;

/// A device half in the hostile style: imports, runtime, then `enroll`.
fn device_half(body: &str) -> Vec<u8> {
    let wat = format!("(module {DEVICE_IMPORTS} {RUNTIME} (func (export \"enroll\") (result i32) (local $i i32) {body}))");
    componentize("device-half", &wat)
}

fn phone_half(body: &str) -> Vec<u8> {
    let wat = format!("(module {PHONE_IMPORTS} {RUNTIME} (func (export \"enroll\") (result i32) (local $i i32) {body}))");
    componentize("phone-half", &wat)
}

fn is_half(error: &DeviceFailure, f: impl Fn(&HalfError) -> bool) -> bool {
    matches!(error, DeviceFailure::Half(e) if f(e))
}

#[tokio::test]
async fn device_half_that_traps() {
    let fx = Fixture::quick();
    let (assistant, device) = fx.enroll_expecting_failure(WIFI_METER.phone, &device_half("unreachable")).await;
    let device = device.unwrap_err();
    assert!(is_half(&device, |e| matches!(e, HalfError::Trap { reason, .. } if reason.contains("unreachable"))), "{device}");
    assert!(matches!(assistant, Err(EnrollError::Device(d)) if d == device.to_wire()));
}

#[tokio::test]
async fn device_half_that_loops_forever_hits_its_deadline() {
    let fx = Fixture::quick();
    let (_, device) = fx.enroll_expecting_failure(WIFI_METER.phone, &device_half("(loop $l (br $l)) unreachable")).await;
    let device = device.unwrap_err();
    assert!(is_half(&device, |e| matches!(e, HalfError::DeadlineExceeded { deadline_ms: 2000, .. })), "{device}");
}

#[tokio::test]
async fn device_half_that_grows_memory_past_its_cap() {
    let fx = Fixture::quick();
    let body = "(drop (memory.grow (i32.const 4))) (i32.const 0)";
    let (_, device) = fx.enroll_expecting_failure(WIFI_METER.phone, &device_half(body)).await;
    let device = device.unwrap_err();
    assert!(
        is_half(&device, |e| matches!(e, HalfError::MemoryCap { requested: 327680, cap: 131072, .. })),
        "{device}"
    );
}

#[tokio::test]
async fn device_half_that_sends_an_oversized_message() {
    let fx = Fixture::quick();
    let body = "(call $send (i32.const 4096) (i32.const 5000) (i32.const 0)) (i32.const 0)";
    let (_, device) = fx.enroll_expecting_failure(WIFI_METER.phone, &device_half(body)).await;
    let device = device.unwrap_err();
    assert!(is_half(&device, |e| matches!(e, HalfError::MessageTooLarge { size: 5000, max: 4096, .. })), "{device}");
}

#[tokio::test]
async fn device_half_that_never_answers_times_out_the_phone_half() {
    // The device half takes every item but never finishes; it waits for
    // messages until the link closes.
    let fx = Fixture::new(Duration::from_secs(5), Duration::from_millis(300));
    let take_to_the_end = "(block $done (loop $l (call $next (i32.const 0)) \
        (br_if $done (i32.ne (i32.load8_u (i32.const 0)) (i32.const 0))) \
        (br_if $done (i32.eq (i32.load8_u (i32.const 4)) (i32.const 7))) (br $l)))";
    let body = format!("{take_to_the_end} {}", receive_until_closed());
    let (assistant, device) = fx.enroll_expecting_failure(WIFI_METER.phone, &device_half(&body)).await;
    assert!(
        matches!(&assistant, Err(EnrollError::PhoneHalf { error: HalfError::PeerSilent { waited_ms: 300, .. }, .. })),
        "{assistant:?}"
    );
    assert!(matches!(device, Err(DeviceFailure::Aborted(_))), "{device:?}");
}

#[tokio::test]
async fn phone_half_that_never_answers_times_out_the_device_half() {
    let fx = Fixture::new(Duration::from_secs(5), Duration::from_millis(300));
    // Offers nothing: waits for the device without ever sending, until the
    // link closes.
    let phone = phone_half(&receive_until_closed());
    let (_, device) = fx.enroll_expecting_failure(&phone, WIFI_METER.device).await;
    let device = device.unwrap_err();
    assert!(is_half(&device, |e| matches!(e, HalfError::PeerSilent { waited_ms: 300, .. })), "{device}");
}

#[tokio::test]
async fn device_half_that_answers_with_its_own_bytes_instead_of_its_identity_is_not_committed() {
    let fx = Fixture::quick();
    // Takes every item until the end (item discriminant 7), then sends 32
    // bytes of its own where the host's identity item belongs, and finishes.
    // The identity is the host's, never the half's: the phone half's
    // `finish` finds a message, not the identity, and the enrollment stops.
    let body = r#"
      (block $done
        (loop $l
          (call $next (i32.const 0))
          (br_if $done (i32.ne (i32.load8_u (i32.const 0)) (i32.const 0)))
          (br_if $l (i32.ne (i32.load8_u (i32.const 4)) (i32.const 7)))
          (call $send (i32.const 1024) (i32.const 32) (i32.const 16))
          (call $finish (i32.const 16))
          (return (i32.const 0))))
      (i32.const 1)"#;
    let (assistant, device) = fx.enroll_expecting_failure(WIFI_METER.phone, &device_half(body)).await;
    assert!(
        matches!(&assistant, Err(EnrollError::PhoneHalf { refusal: Some(why), .. }) if why.contains("not its identity")),
        "{assistant:?}"
    );
    assert!(matches!(device, Err(DeviceFailure::Aborted(_))), "{device:?}");
}

#[tokio::test]
async fn device_half_that_returns_without_sealing_is_not_committed() {
    let fx = Fixture::quick();
    let (_, device) = fx.enroll_expecting_failure(WIFI_METER.phone, &device_half("(i32.const 0)")).await;
    assert!(matches!(device, Err(DeviceFailure::Incomplete(_))), "{device:?}");
}

#[tokio::test]
async fn phone_half_that_traps_leaves_the_device_unchanged() {
    let fx = Fixture::quick();
    let phone = phone_half("unreachable");
    // The device half races the assistant's hang-up; repeat to catch a device
    // that reports its own closed link instead of the assistant's Abort.
    for _ in 0..25 {
        let (assistant, device) = fx.enroll_expecting_failure(&phone, WIFI_METER.device).await;
        assert!(
            matches!(&assistant, Err(EnrollError::PhoneHalf { error: HalfError::Trap { .. }, .. })),
            "{assistant:?}"
        );
        assert!(matches!(device, Err(DeviceFailure::Aborted(_))), "{device:?}");
    }
}

#[tokio::test]
async fn half_that_imports_outside_its_world_is_refused_by_name() {
    let fx = Fixture::quick();
    // A device half that asks for the phone's capabilities.
    let (_, device) = fx.enroll_expecting_failure(WIFI_METER.phone, WIFI_METER.phone).await;
    let device = device.unwrap_err();
    assert!(
        is_half(&device, |e| matches!(e, HalfError::ForeignImport { name, .. }
            if name == "iot-enroll:enrollment/offer@0.2.0" || name == "iot-enroll:enrollment/assistant@0.2.0")),
        "{device}"
    );
    // A device half that asks for a file system.
    let wasi = wat::parse_str(
        r#"(component
             (import "wasi:filesystem/types@0.2.0" (instance))
             (core module $m (func (export "enroll") (result i32) i32.const 0))
             (core instance $i (instantiate $m))
             (func (export "enroll") (result (result)) (canon lift (core func $i "enroll"))))"#,
    )
    .unwrap();
    let (_, device) = fx.enroll_expecting_failure(WIFI_METER.phone, &wasi).await;
    let device = device.unwrap_err();
    assert!(
        is_half(&device, |e| matches!(e, HalfError::ForeignImport { name, .. } if name == "wasi:filesystem/types@0.2.0")),
        "{device}"
    );
}

#[tokio::test]
async fn not_a_valid_component_is_refused() {
    let fx = Fixture::quick();
    let (_, device) = fx.enroll_expecting_failure(WIFI_METER.phone, b"definitely not wasm").await;
    assert!(is_half(&device.unwrap_err(), |e| matches!(e, HalfError::InvalidComponent { .. })));

    let core = wat::parse_str("(module (func (export \"enroll\") (result i32) i32.const 0))").unwrap();
    let (_, device) = fx.enroll_expecting_failure(WIFI_METER.phone, &core).await;
    assert!(is_half(&device.unwrap_err(), |e| matches!(e, HalfError::CoreModule(_))));

    let mut truncated = WIFI_METER.device.to_vec();
    truncated.truncate(truncated.len() / 2);
    let (_, device) = fx.enroll_expecting_failure(WIFI_METER.phone, &truncated).await;
    assert!(is_half(&device.unwrap_err(), |e| matches!(e, HalfError::InvalidComponent { .. })));

    let (assistant, _) = fx.enroll_expecting_failure(b"\0asm\x0d\0\x01\0garbage", WIFI_METER.device).await;
    assert!(
        matches!(&assistant, Err(EnrollError::PhoneHalf { error: HalfError::InvalidComponent { .. }, .. })),
        "{assistant:?}"
    );
}

#[tokio::test]
async fn a_good_enrollment_after_hostile_ones_still_works() {
    let fx = Fixture::quick();
    let _ = fx.enroll_expecting_failure(WIFI_METER.phone, &device_half("unreachable")).await;
    let (a, b) = Link::memory_pair();
    let app = hostile_label(WIFI_METER.phone, WIFI_METER.device);
    let (assistant, device) = tokio::join!(
        fx.assistant.enroll(a, &app, EnrollOptions::default()),
        fx.device.serve(meter(), b)
    );
    assistant.unwrap();
    device.unwrap();
    assert!(fx.state().unwrap().sealed);
}

#[tokio::test]
async fn both_compilers_stop_hostile_halves_the_same_way() {
    for compiler in [Compiler::Cranelift, Compiler::Winch] {
        let fx = Fixture::with_compiler(compiler, Duration::from_millis(2000), Duration::from_millis(3000));
        let (_, device) = fx.enroll_expecting_failure(WIFI_METER.phone, &device_half("(loop $l (br $l)) unreachable")).await;
        let device = device.unwrap_err();
        assert!(is_half(&device, |e| matches!(e, HalfError::DeadlineExceeded { .. })), "{compiler:?}: {device}");
        let body = "(drop (memory.grow (i32.const 4))) (i32.const 0)";
        let (_, device) = fx.enroll_expecting_failure(WIFI_METER.phone, &device_half(body)).await;
        let device = device.unwrap_err();
        assert!(is_half(&device, |e| matches!(e, HalfError::MemoryCap { .. })), "{compiler:?}: {device}");
        let (_, device) = fx.enroll_expecting_failure(WIFI_METER.phone, &device_half("unreachable")).await;
        let device = device.unwrap_err();
        assert!(is_half(&device, |e| matches!(e, HalfError::Trap { .. })), "{compiler:?}: {device}");
        // A good enrollment works under this compiler too. Its own fixture:
        // a half's deadline counts its waits, and the peer's first (debug
        // build) Cranelift compile can take longer than the deadline above.
        let fx = Fixture::with_compiler(compiler, Duration::from_secs(30), Duration::from_secs(30));
        let (a, b) = Link::memory_pair();
        let app = hostile_label(WIFI_METER.phone, WIFI_METER.device);
        let (assistant, device) = tokio::join!(
            fx.assistant.enroll(a, &app, EnrollOptions::default()),
            fx.device.serve(meter(), b)
        );
        assistant.unwrap_or_else(|e| panic!("{compiler:?}: {e}"));
        device.unwrap();
    }
}

#[tokio::test]
async fn a_guest_function_named_like_a_pool_error_still_traps_as_a_trap() {
    // Guest function names appear in backtraces, so in the error's text: the
    // sandbox classifies by type, never by that text.
    let fx = Fixture::quick();
    let wat = format!(
        "(module {DEVICE_IMPORTS} {RUNTIME} (func $pooling_maximum_concurrent_exhausted unreachable) \
         (func (export \"enroll\") (result i32) (call $pooling_maximum_concurrent_exhausted) (i32.const 0)))"
    );
    let (_, device) = fx.enroll_expecting_failure(WIFI_METER.phone, &componentize("device-half", &wat)).await;
    let device = device.unwrap_err();
    assert!(is_half(&device, |e| matches!(e, HalfError::Trap { .. })), "{device}");
}

#[tokio::test]
async fn a_full_sandbox_pool_is_reported_as_exhausted() {
    // One slot for two halves: whichever side instantiates second finds the
    // pool full, and says so by type (wasmtime's PoolConcurrencyLimitError).
    let config = SandboxConfig { half_deadline: Duration::from_secs(2), max_concurrent_halves: 1, ..SandboxConfig::default() };
    let fx = Fixture::with_config(config, Duration::from_secs(3));
    let (assistant, device) = fx.enroll_expecting_failure(WIFI_METER.phone, WIFI_METER.device).await;
    let exhausted = |e: &HalfError| matches!(e, HalfError::Exhausted { .. });
    let on_device = matches!(&device, Err(d) if is_half(d, exhausted));
    let on_phone = matches!(&assistant, Err(EnrollError::PhoneHalf { error, .. }) if exhausted(error));
    assert!(on_device || on_phone, "assistant: {assistant:?}\ndevice: {device:?}");
}

#[tokio::test]
async fn a_half_built_for_wit_0_1_0_is_refused_with_the_supported_version() {
    let fx = Fixture::quick();
    let old = r#"(module
      (import "iot-enroll:enrollment/transport@0.1.0" "send" (func $send (param i32 i32 i32)))
      (memory (export "memory") 1)
      (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 4096))
      (func (export "enroll") (result i32) (call $send (i32.const 0) (i32.const 0) (i32.const 0)) (i32.const 0)))"#;
    let half = end_to_end_tests::componentize_wat_with(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/wit-0.1.0"), "device-half", old);
    let (_, device) = fx.enroll_expecting_failure(WIFI_METER.phone, &half).await;
    let device = device.unwrap_err();
    assert!(
        is_half(&device, |e| matches!(e, HalfError::UnsupportedWitVersion { found, supported, .. }
            if found == "0.1.0" && supported == "0.2.0")),
        "{device}"
    );
    assert!(device.to_string().contains("qr-packer build"), "{device}");
}

// ---------------------------------------------------------------------------
// Hostile peers: the other end of the link is not a runtime but the test,
// doing what a malicious phone or device could.

use enrollment_host::frame::{Enrolled, Frame, Hello, PROTOCOL_VERSION, Start};
use enrollment_host::handover::HandoverItem;

/// Longest a test waits for a runtime that should have given up by itself;
/// reaching it means the runtime was held.
const HELD: Duration = Duration::from_secs(60);

/// Says Hello as the meter and takes the assistant's Start.
async fn pose_as_the_meter(link: &mut Link) -> Start {
    let hello = Hello {
        protocol: PROTOCOL_VERSION,
        device_id: meter().as_bytes().to_vec(),
        access: "wifi".into(),
        sealed: false,
        nonce: [9; 32],
    };
    link.tx.send(Frame::Hello(hello)).await.unwrap();
    loop {
        match link.rx.recv_within(HELD).await.unwrap() {
            Frame::Start(start) => return start,
            _ => continue,
        }
    }
}

/// Reads until `stop` matches a frame; `None` if the link closed first.
async fn read_until(link: &mut Link, stop: impl Fn(&Frame) -> bool) -> Option<Frame> {
    loop {
        match link.rx.recv_within(HELD).await {
            Ok(frame) if stop(&frame) => return Some(frame),
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
}

#[tokio::test]
async fn a_device_that_names_another_sp_is_never_relayed_to_it() {
    let fx = Fixture::quick();
    let (a, mut peer) = Link::memory_pair();
    let app = hostile_label(WIFI_METER.phone, WIFI_METER.device);
    let evil = format!("evil-sp.example/wifi/{METER}");
    let device = async {
        pose_as_the_meter(&mut peer).await;
        // The device claims an identity under an SP of its own choosing, and
        // says it staged exactly that.
        let identity = HandoverItem::Identity { sp_bound_id: evil.clone(), public_key: [7; 32] };
        peer.tx.send(Frame::Item(identity)).await.unwrap();
        if let Some(abort @ Frame::Abort(_)) = read_until(&mut peer, |f| matches!(f, Frame::Close | Frame::Abort(_))).await {
            return Some(abort);
        }
        let ready = Enrolled { sp_bound_id: evil.clone(), public_key: [7; 32] };
        let _ = peer.tx.send(Frame::ReadyToCommit(ready)).await;
        read_until(&mut peer, |f| matches!(f, Frame::Commit | Frame::Abort(_))).await
    };
    let (result, last) = tokio::time::timeout(HELD, async { tokio::join!(fx.assistant.enroll(a, &app, EnrollOptions::default()), device) })
        .await
        .expect("the assistant was held");
    assert!(fx.services.relayed().is_empty(), "relayed to the device's own SP: {:?}", fx.services.relayed());
    match result {
        Err(EnrollError::PhoneHalf { refusal: Some(refusal), .. }) => {
            assert!(refusal.contains("names SP evil-sp.example, but this device is bound to sp-one.example"), "{refusal}");
        }
        other => panic!("expected the phone half's finish to be refused, got {other:?}"),
    }
    assert!(matches!(last, Some(Frame::Abort(_))), "the device is told why, never to commit: {last:?}");
}

#[tokio::test]
async fn a_device_that_trickles_stray_frames_cannot_hold_the_assistant() {
    let fx = Fixture::quick();
    let (a, mut peer) = Link::memory_pair();
    let app = hostile_label(WIFI_METER.phone, WIFI_METER.device);
    let device = async {
        pose_as_the_meter(&mut peer).await;
        let honest = HandoverItem::Identity { sp_bound_id: format!("sp-one.example/wifi/{METER}"), public_key: [7; 32] };
        peer.tx.send(Frame::Item(honest)).await.unwrap();
        read_until(&mut peer, |f| matches!(f, Frame::Close | Frame::Abort(_))).await;
        // Never ReadyToCommit: a stray frame every 100 ms instead, each of
        // which used to restart the assistant's 5 s wait.
        while peer.tx.send(Frame::Message(vec![0])).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let result = tokio::time::timeout(HELD, async {
        tokio::select! {
            result = fx.assistant.enroll(a, &app, EnrollOptions::default()) => result,
            () = device => panic!("the trickling peer stopped first"),
        }
    })
    .await
    .expect("the assistant was held by a trickling device");
    match result {
        Err(EnrollError::Link { during, failure: enrollment_host::link::LinkFailure::Timeout(waited) }) => {
            assert_eq!(during, "waiting for the device half to finish");
            assert_eq!(waited, Duration::from_secs(5), "the protocol timeout, not restarted");
        }
        other => panic!("expected a protocol timeout, got {other:?}"),
    }
    assert!(fx.services.relayed().is_empty());
}

#[tokio::test]
async fn a_device_half_whose_peer_stops_reading_is_stopped_at_its_deadline() {
    let fx = Fixture::quick();
    let before = fx.state();
    let (mut phone, b) = Link::memory_pair();
    // Sends one-byte messages for ever; the peer reads none of them, so the
    // host's send waits once the link is full.
    let flood = device_half("(loop $l (call $send (i32.const 4096) (i32.const 1) (i32.const 0)) (br $l)) (i32.const 0)");
    let app = hostile_label(WIFI_METER.phone, &flood);
    let peer = async {
        let _hello = phone.rx.recv_within(HELD).await.unwrap();
        let start = Start { payload: app.signed_bytes().to_vec(), assistant_key: [3; 32], rebind: None };
        phone.tx.send(Frame::Start(start)).await.unwrap();
        // Holds the link open and reads nothing.
        tokio::time::sleep(HELD * 2).await;
        phone
    };
    let result = tokio::time::timeout(HELD, async {
        tokio::select! {
            result = fx.device.serve(meter(), b) => result,
            _ = peer => panic!("the peer let go first"),
        }
    })
    .await
    .expect("the device was held by a peer that stopped reading");
    let failure = result.unwrap_err();
    assert!(is_half(&failure, |e| matches!(e, HalfError::DeadlineExceeded { deadline_ms: 2000, .. })), "{failure}");
    assert_eq!(fx.state(), before);
}

/// Assistant services whose control server is down, counting the asks.
struct UnreachableControl {
    asked: std::sync::atomic::AtomicU32,
}

impl enrollment_assistant::AssistantServices for UnreachableControl {
    fn location(&self) -> Option<String> {
        None
    }
    fn owner(&self) -> Option<String> {
        None
    }
    fn network_credentials(&self, _: AccessTechnology) -> Option<NetworkCredentials> {
        None
    }
    fn resolve_sp(
        &self,
        _: Eui,
        _: AccessTechnology,
    ) -> futures::future::BoxFuture<'_, Result<enrollment_assistant::SpBinding, enrollment_assistant::ResolveError>> {
        self.asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Box::pin(async { Err(enrollment_assistant::ResolveError::Unreachable("connection refused".into())) })
    }
    fn relay(
        &self,
        _: enrollment_assistant::RelayedDevice,
    ) -> futures::future::BoxFuture<'_, Result<(), enrollment_assistant::RelayError>> {
        Box::pin(async { Ok(()) })
    }
}

#[tokio::test]
async fn a_phone_half_that_asks_for_its_sp_in_a_loop_costs_a_few_requests() {
    let sandbox = Arc::new(Sandbox::new(SandboxConfig { half_deadline: Duration::from_secs(2), ..SandboxConfig::default() }).unwrap());
    let control = Arc::new(UnreachableControl { asked: Default::default() });
    let identity = SigningKey::generate(&mut rand::rngs::OsRng);
    let assistant = AssistantRuntime::new(sandbox, control.clone(), identity, Timeouts::default()).unwrap();
    // offer.assistant(service-provider) 100,000 times, whatever it answers.
    let phone = componentize(
        "phone-half",
        &format!(
            "(module {PHONE_IMPORTS} \
               (import \"iot-enroll:enrollment/offer@0.2.0\" \"assistant\" (func $offer (param i32 i32))) \
               {RUNTIME} \
               (func (export \"enroll\") (result i32) (local $i i32) \
                 (loop $l (call $offer (i32.const 3) (i32.const 0)) \
                   (local.set $i (i32.add (local.get $i) (i32.const 1))) \
                   (br_if $l (i32.lt_u (local.get $i) (i32.const 100000)))) \
                 (i32.const 1)))"
        ),
    );
    let app = hostile_label(&phone, WIFI_METER.device);
    let (a, mut peer) = Link::memory_pair();
    let device = async {
        pose_as_the_meter(&mut peer).await;
        read_until(&mut peer, |f| matches!(f, Frame::Abort(_))).await
    };
    let (result, _) = tokio::join!(assistant.enroll(a, &app, EnrollOptions::default()), device);
    match result {
        Err(EnrollError::PhoneHalf { refusal: Some(refusal), .. }) => {
            assert!(refusal.contains("asked 3 times in this enrollment"), "{refusal}");
        }
        other => panic!("expected the phone half to fail, got {other:?}"),
    }
    assert_eq!(
        control.asked.load(std::sync::atomic::Ordering::SeqCst),
        enrollment_assistant::capability::MAX_RESOLVES,
        "one enrollment asks the control server at most a few times"
    );
}

#[tokio::test]
async fn a_phone_half_that_floods_the_device_is_refused_after_its_send_budget() {
    let fx = Fixture::quick();
    // Sends one-byte messages until refused; traps unless the refusal is
    // `budget-exhausted` (8) after exactly MAX_SENDS sends, else fails.
    let phone = phone_half(&format!(
        "(loop $l \
           (call $send (i32.const 4096) (i32.const 1) (i32.const 0)) \
           (if (i32.load8_u (i32.const 0)) (then \
             (if (i32.ne (i32.load8_u (i32.const 1)) (i32.const 8)) (then unreachable)) \
             (if (i32.ne (local.get $i) (i32.const {})) (then unreachable)) \
             (return (i32.const 1)))) \
           (local.set $i (i32.add (local.get $i) (i32.const 1))) \
           (br_if $l (i32.lt_u (local.get $i) (i32.const 100000)))) \
         unreachable",
        enrollment_host::transport::MAX_SENDS
    ));
    let device = device_half(&receive_until_closed());
    let (assistant, _) = fx.enroll_expecting_failure(&phone, &device).await;
    assert!(
        matches!(&assistant, Err(EnrollError::PhoneHalf { error: HalfError::Failed { .. }, .. })),
        "the half saw budget-exhausted after MAX_SENDS sends: {assistant:?}"
    );
}
