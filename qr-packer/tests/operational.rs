//! The reference operational apps against world `operational`, as
//! `qr-packer` checks them before anything is signed: each built component
//! passes, a component of another world is refused with the error that
//! names the mismatch, and a label carrying one reads back with the same
//! bytes the packer stripped.

use enrollment_apps::{OPERATIONAL, WIFI_METER, ZIGBEE_SENSOR};
use qr_packer::check::{World, check_half, check_operational};
use qr_packer::manifest::reference;
use qr_packer::strip::strip_custom_sections;
use qr_packer::{Dictionary, Halves, ManufacturerKey, PackError, PreparedApp};

#[test]
fn every_built_operational_app_passes_as_built_and_stripped() {
    assert_eq!(OPERATIONAL.len(), 2);
    for op in OPERATIONAL {
        check_operational(op.component).unwrap_or_else(|e| panic!("{}: {e}", op.app));
        let stripped = strip_custom_sections(op.component).unwrap();
        check_operational(&stripped).unwrap_or_else(|e| panic!("{} stripped: {e}", op.app));
    }
}

#[test]
fn a_half_is_not_an_operational_app_nor_the_other_way_round() {
    // A phone half imports `offer` and `assistant`, which world
    // `operational` does not offer: refused on its first such import.
    let err = check_operational(WIFI_METER.phone).unwrap_err();
    assert!(matches!(err, PackError::ForbiddenImport { world: "operational", .. }), "{err}");
    let err = check_operational(ZIGBEE_SENSOR.device).unwrap_err();
    assert!(matches!(err, PackError::ForbiddenImport { world: "operational", .. }), "{err}");
    // An operational app given as a device half imports `settings`.
    let err = check_half(OPERATIONAL[0].component, World::Device).unwrap_err();
    assert!(matches!(err, PackError::ForbiddenImport { world: "device-half", .. }), "{err}");

    // A component whose imports the world allows, but that exports `enroll`
    // (a half's entry point), is of the wrong world.
    let enroll = wat::parse_str(
        r#"(component (core module $m (memory (export "memory") 1 2) (func (export "f") (result i32) i32.const 0))
            (core instance $i (instantiate $m)) (func (export "enroll") (result (result)) (canon lift (core func $i "f"))))"#,
    )
    .unwrap();
    let err = check_operational(&enroll).unwrap_err();
    match err {
        PackError::WrongWorld { world: "operational", reason, .. } => assert!(reason.contains("`activate`"), "{reason}"),
        other => panic!("{other}"),
    }
}

#[test]
fn a_label_with_the_operational_app_reads_back_with_it() {
    let key = ManufacturerKey::from_secret("acme-1", [42; 32]).unwrap();
    let apps = [(WIFI_METER, &OPERATIONAL[0], "AC-DE-48-00-00-80"), (ZIGBEE_SENSOR, &OPERATIONAL[1], "00-0D-6F-FF-FE-00-00-01")];
    for (app, op, device_id) in apps {
        assert_eq!(app.name, op.app);
        let halves = Halves { phone: app.phone.to_vec(), device: app.device.to_vec(), operational: Some(op.component.to_vec()) };
        let prepared = PreparedApp::prepare(halves, &Dictionary::current()).unwrap();
        let manifest = qr_packer::Manifest { device_id: Some(device_id.into()), ..reference(&app).unwrap() };
        let bundle = prepared.seal(&manifest, &key).unwrap().verify(&key.trusted()).unwrap();
        assert_eq!(bundle.halves.operational, Some(strip_custom_sections(op.component).unwrap()), "{}", app.name);
    }
}
