//! The operational app after enrollment, in process: the reference meter's
//! app reports signed readings and applies only commands its SP signed;
//! hostile apps are stopped with specific errors and the device stays
//! enrolled; an app of the wrong world fails the enrollment at admission.

use std::sync::Arc;
use std::time::Duration;

use control_api::device::message_signed_bytes;
use ed25519_dalek::SigningKey;
use end_to_end_tests::operational_support::{FakeSp, Fixture, command};
use end_to_end_tests::{METER_ID, eui};
use enrollment_apps::{WIFI_METER, WIFI_METER_OPERATIONAL};
use enrollment_assistant::HalfError;
use enrollment_device::DeviceFailure;
use enrollment_device::operational::OperationalError;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_meter_reports_signed_readings_and_applies_only_commands_its_sp_signed() {
    let fx = Fixture::new(Duration::from_secs(10));
    let enrolled = fx.enroll(WIFI_METER_OPERATIONAL).await.expect("enrolled");
    let state = fx.device.store().state(&eui(METER_ID)).unwrap().unwrap();
    let identifier = enrolled.enrolled.sp_bound_id.clone();
    assert!(fx.device.store().operational(&eui(METER_ID)).unwrap().is_some(), "the app is stored with the enrollment");
    assert_eq!(state.sp_public_key, Some(fx.sp_key.verifying_key().to_bytes()));

    let sp = Arc::new(FakeSp::default());
    let runtime = fx.runtime(sp.clone());
    let first = runtime.activate(eui(METER_ID)).await.expect("activation");
    assert_eq!((first.sent, first.commands, first.dropped), (1, 0, 0));

    // The message is the device's: it verifies with the key relayed at enrollment, and only with it.
    let message = sp.received.lock().unwrap()[0].clone();
    assert_eq!(message.identifier, identifier);
    let body = hex::decode(&message.body).unwrap();
    assert_eq!(String::from_utf8_lossy(&body), "reading=1007 seq=1");
    let signature = hex::decode(&message.signature).unwrap();
    let signed = message_signed_bytes(&identifier, message.seq, &body);
    let device_key = state.public_key.unwrap();
    assert!(enrollment_host::frame::verify_signature(&device_key, &signed, &signature));
    let mut altered = body.clone();
    altered[8] ^= 1; // a gateway that changes one digit
    assert!(!enrollment_host::frame::verify_signature(&device_key, &message_signed_bytes(&identifier, message.seq, &altered), &signature));

    // A command signed by another key is dropped and counted; the SP's own is applied.
    let stranger = SigningKey::from_bytes(&[0x99; 32]);
    sp.commands.lock().unwrap().extend([command(&stranger, &identifier, 1, "interval=1"), command(&fx.sp_key, &identifier, 2, "interval=7")]);
    let second = runtime.activate(eui(METER_ID)).await.expect("activation");
    assert_eq!((second.sent, second.commands, second.dropped), (1, 1, 1), "{second:?}");
    assert_eq!(second.wake_after, Duration::from_secs(7), "the SP's interval applies");

    // Replayed: the same command again (an SP or a path that repeats it) is dropped.
    sp.commands.lock().unwrap().push(command(&fx.sp_key, &identifier, 2, "interval=1"));
    let third = runtime.activate(eui(METER_ID)).await.expect("activation");
    assert_eq!((third.commands, third.wake_after), (0, Duration::from_secs(7)), "{third:?}");
    let stats = runtime.stats();
    assert_eq!((stats.commands_accepted, stats.commands_forged), (1, 1));

    // Every message carries a larger sequence number, and the app's own counter survives.
    let received = sp.received.lock().unwrap().clone();
    assert!(received.windows(2).all(|w| w[1].seq > w[0].seq));
    assert_eq!(String::from_utf8_lossy(&hex::decode(&received[2].body).unwrap()), "reading=1021 seq=3");
}

// Hostile operational apps, in WAT: the imports they use, a bump allocator.
const RUNTIME: &str = r#"
  (import "iot-enroll:enrollment/uplink@0.2.0" "send" (func $send (param i32 i32 i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 4096))
  (func $realloc (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $p i32)
    (local.set $p (i32.and (i32.add (global.get $heap) (i32.sub (local.get 2) (i32.const 1)))
                           (i32.sub (i32.const 0) (local.get 2))))
    (global.set $heap (i32.add (local.get $p) (local.get 3)))
    (local.get $p))
"#;

fn operational(body: &str) -> Vec<u8> {
    let wat = format!("(module {RUNTIME} (func (export \"activate\") (result i32) (local $i i32) {body}))");
    end_to_end_tests::componentize_wat("operational", &wat)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_operational_apps_are_stopped_and_the_device_stays_enrolled() {
    /// What the app does, its body, and the error that must stop it.
    type Case = (&'static str, String, fn(&HalfError) -> bool);
    let cases: [Case; 4] = [
        ("loops", "(loop $l (br $l)) (i32.const 0)".into(), |e| matches!(e, HalfError::DeadlineExceeded { .. })),
        ("grows past its memory cap", "(drop (memory.grow (i32.const 64))) (unreachable)".into(), |e| matches!(e, HalfError::MemoryCap { .. })),
        (
            "floods sends",
            "(loop $l (call $send (i32.const 100) (i32.const 4) (i32.const 0)) (local.set $i (i32.add (local.get $i) (i32.const 1))) (br_if $l (i32.lt_u (local.get $i) (i32.const 100000)))) (i32.const 0)".into(),
            |e| matches!(e, HalfError::Exhausted { .. }),
        ),
        ("traps", "(unreachable)".into(), |e| matches!(e, HalfError::Trap { .. })),
    ];
    for (what, body, expected) in cases {
        let fx = Fixture::new(Duration::from_millis(1500));
        fx.enroll(&operational(&body)).await.unwrap_or_else(|e| panic!("{what}: the app passes admission: {e}"));
        let before = fx.device.store().state(&eui(METER_ID)).unwrap();
        let sp = Arc::new(FakeSp::default());
        let runtime = fx.runtime(sp.clone());
        match runtime.activate(eui(METER_ID)).await {
            Err(OperationalError::App { error, .. }) => assert!(expected(&error), "{what}: {error:?}"),
            other => panic!("{what}: {other:?}"),
        }
        assert!(sp.received.lock().unwrap().is_empty(), "{what}: a failed activation sends nothing");
        assert_eq!(fx.device.store().state(&eui(METER_ID)).unwrap(), before, "{what}: the device stays enrolled, unchanged");
        assert_eq!(runtime.stats().failed, 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operational_app_of_another_world_fails_the_enrollment_at_admission() {
    let fx = Fixture::new(Duration::from_secs(10));
    let before = fx.device.store().state(&eui(METER_ID)).unwrap();
    let refused = fx.enroll(WIFI_METER.device).await.expect_err("a device half is not an operational app");
    assert!(matches!(&refused, DeviceFailure::Half(HalfError::ForeignImport { .. } | HalfError::WrongWorld { .. })), "{refused:?}");
    assert_eq!(fx.device.store().state(&eui(METER_ID)).unwrap(), before, "nothing committed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operational_app_not_signed_by_the_devices_manufacturer_is_refused_with_its_label() {
    use end_to_end_tests::manifest;
    use qr_packer::{Dictionary, Halves, ManufacturerKey, PreparedApp};
    let fx = Fixture::new(Duration::from_secs(10));
    let before = fx.device.store().state(&eui(METER_ID)).unwrap();
    // A phone (or anyone on the way) that puts its own operational app in
    // the payload must sign it itself: the device trusts only its manufacturer.
    let stranger = ManufacturerKey::from_secret("not-acme", [0x66; 32]).unwrap();
    let halves = Halves {
        phone: enrollment_apps::WIFI_METER.phone.to_vec(),
        device: enrollment_apps::WIFI_METER.device.to_vec(),
        operational: Some(WIFI_METER_OPERATIONAL.to_vec()),
    };
    let signed = PreparedApp::unchecked(halves, &Dictionary::current())
        .unwrap()
        .seal(&manifest(&WIFI_METER, METER_ID), &stranger)
        .unwrap();
    let app = enrollment_assistant::ScannedApp::from_signed(signed, &stranger.trusted()).unwrap();
    let (a, b) = enrollment_assistant::Link::memory_pair();
    let (_, device) =
        tokio::join!(fx.assistant.enroll(a, &app, enrollment_assistant::EnrollOptions::default()), fx.device.serve(eui(METER_ID), b));
    assert!(matches!(device, Err(DeviceFailure::Untrusted(_))), "{device:?}");
    assert_eq!(fx.device.store().state(&eui(METER_ID)).unwrap(), before, "nothing committed");
    assert!(fx.device.store().operational(&eui(METER_ID)).unwrap().is_none());
}
