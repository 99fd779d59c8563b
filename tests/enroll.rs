//! Both reference apps, enrolled in-process and over TCP against a separate
//! `device-agent` process: the identifier, configuration and public key the
//! device stored, and what the phone half relayed.

use end_to_end_tests::*;
use enrollment_apps::{AppPair, WIFI_METER, ZIGBEE_SENSOR};
use enrollment_assistant::NetworkCredentials;
use enrollment_device::DeviceStore;
use enrollment_device::DeviceFailure;
use enrollment_host::{FailureCode, Link, WireFailure};
use enrollment_assistant::{AccessTechnology, EnrollError, EnrollOptions, EnrollmentReport};

async fn enroll_in_process(
    fx: &Fixture,
    app: &AppPair,
    device: &str,
    options: EnrollOptions,
) -> (Result<EnrollmentReport, EnrollError>, Result<enrollment_device::DeviceReport, DeviceFailure>) {
    let (a, b) = Link::memory_pair();
    let app = label(app, device);
    tokio::join!(fx.assistant.enroll(a, &app, options), fx.device.serve(eui(device), b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wifi_meter_enrolls_in_process() -> anyhow::Result<()> {
    let fx = Fixture::new()?;
    let (assistant, device) = enroll_in_process(&fx, &WIFI_METER, METER_ID, EnrollOptions::default()).await;
    let report = assistant?;
    let device = device?;
    assert_eq!(report.relayed.sp_bound_id.to_string(), format!("{SP}/wifi/{METER_ID}"));
    assert_eq!(device.enrolled.sp_bound_id, report.relayed.sp_bound_id.to_string());
    assert_eq!(fx.services.relayed(), vec![report.relayed.clone()]);

    let state = fx.device.store().state(&eui(METER_ID))?.expect("provisioned");
    assert!(state.sealed);
    assert_eq!(state.sp_bound_id.as_ref(), Some(&report.relayed.sp_bound_id));
    assert_eq!(state.public_key, Some(report.relayed.public_key));
    assert_eq!(state.owner.as_deref(), Some("ACME Utilities"));
    assert_eq!(state.location.as_deref(), Some("geo:52.3676,4.9041"));
    assert_eq!(state.enrolled_by, Some(fx.assistant.public_key()));
    let network = NetworkCredentials::decode_for(state.network.as_deref().expect("network"), AccessTechnology::Wifi)?;
    assert_eq!(network, NetworkCredentials::Wifi { ssid: "plant-3".into(), passphrase: "correct horse battery".into() });
    let private = fx.device.store().private_key(&eui(METER_ID))?.expect("key pair stored");
    assert_eq!(private.verifying_key().to_bytes(), report.relayed.public_key, "stored private key matches");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zigbee_sensor_enrolls_in_process() -> anyhow::Result<()> {
    let fx = Fixture::new()?;
    let (assistant, device) = enroll_in_process(&fx, &ZIGBEE_SENSOR, SENSOR_ID, EnrollOptions::default()).await;
    let report = assistant?;
    device?;
    assert_eq!(report.relayed.sp_bound_id.to_string(), format!("{SP}/zigbee/{SENSOR_ID}"));
    let state = fx.device.store().state(&eui(SENSOR_ID))?.expect("provisioned");
    assert!(state.sealed);
    assert_eq!(state.public_key, Some(report.relayed.public_key));
    assert_eq!(state.owner, None, "the sensor is not given an owner");
    let network = NetworkCredentials::decode_for(state.network.as_deref().expect("network"), AccessTechnology::Zigbee)?;
    assert!(matches!(network, NetworkCredentials::Zigbee { pan_id: 0x1A62, channel: 15, .. }));
    // The other device in the same store is untouched.
    assert!(!fx.device.store().state(&eui(METER_ID))?.expect("provisioned").sealed);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_device_refuses_a_second_enrollment_unless_rebound_by_its_assistant() -> anyhow::Result<()> {
    let fx = Fixture::new()?;
    let (first, _) = enroll_in_process(&fx, &WIFI_METER, METER_ID, EnrollOptions::default()).await;
    let first = first?;
    let before = fx.device.store().state(&eui(METER_ID))?;

    let (again, device) = enroll_in_process(&fx, &WIFI_METER, METER_ID, EnrollOptions::default()).await;
    assert!(matches!(again, Err(EnrollError::DeviceSealed)), "{again:?}");
    assert!(device.is_err());
    assert_eq!(fx.device.store().state(&eui(METER_ID))?, before, "refusal changes nothing");

    // Another assistant cannot re-bind it.
    let other = Fixture::new()?;
    let (a, b) = Link::memory_pair();
    let app = label(&WIFI_METER, METER_ID);
    let (stranger, _) = tokio::join!(
        other.assistant.enroll(a, &app, EnrollOptions { rebind: true, ..Default::default() }),
        fx.device.serve(eui(METER_ID), b)
    );
    assert!(
        matches!(&stranger, Err(EnrollError::Device(f)) if f.code == FailureCode::BadRebindAuthorization),
        "{stranger:?}"
    );
    assert_eq!(fx.device.store().state(&eui(METER_ID))?, before, "refusal changes nothing");

    // The assistant it enrolled with can.
    let (rebound, _) = enroll_in_process(&fx, &WIFI_METER, METER_ID, EnrollOptions { rebind: true, ..Default::default() }).await;
    let rebound = rebound?;
    assert!(rebound.rebind);
    assert!(rebound.generation > first.generation);
    assert_ne!(rebound.relayed.public_key, first.relayed.public_key, "a re-bind generates a new key pair");
    let after = fx.device.store().state(&eui(METER_ID))?.expect("provisioned");
    assert_eq!(after.public_key, Some(rebound.relayed.public_key));
    assert_eq!(after.enrollments, 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_app_is_compiled_once() -> anyhow::Result<()> {
    let fx = Fixture::new()?;
    let (r, _) = enroll_in_process(&fx, &WIFI_METER, METER_ID, EnrollOptions::default()).await;
    r?;
    let (r, _) = enroll_in_process(&fx, &ZIGBEE_SENSOR, SENSOR_ID, EnrollOptions::default()).await;
    r?;
    fx.device.store().provision(eui("AC-DE-48-00-00-81"), AccessTechnology::Wifi)?;
    let (r, _) = enroll_in_process(&fx, &WIFI_METER, "AC-DE-48-00-00-81", EnrollOptions::default()).await;
    r?;
    assert_eq!(fx.assistant.cache().compilations(), 2, "two phone halves, three enrollments");
    assert_eq!(fx.device.cache().compilations(), 2, "two device halves, three enrollments");
    Ok(())
}

async fn enroll_over_tcp(app: &AppPair, device: &str, access: &str) -> anyhow::Result<()> {
    let fx = Fixture::new()?;
    let db = fx.dir.path().join("agent.sqlite");
    let agent = DeviceAgent::spawn(&db, device, access, &[])?;
    let stream = tokio::net::TcpStream::connect(agent.addr).await?;
    let report = fx.assistant.enroll(Link::tcp(stream), &label(app, device), EnrollOptions::default()).await?;
    assert_eq!(report.relayed.sp_bound_id.to_string(), format!("{SP}/{access}/{device}"));
    let line = agent.next_line()?;
    assert_eq!(line, format!("enrolled {} (generation {})", report.relayed.sp_bound_id, report.generation));

    // What the device process stored, read by another process.
    let shown = DeviceAgent::show(&db, device)?;
    assert_eq!(shown["sealed"], true);
    assert_eq!(shown["sp_bound_id"], report.relayed.sp_bound_id.to_string());
    assert_eq!(shown["public_key"], hex(&report.relayed.public_key));
    assert_eq!(shown["enrolled_by"], hex(&fx.assistant.public_key()));
    assert_eq!(shown["network_configured"], true);
    assert_eq!(fx.services.relayed(), vec![report.relayed.clone()]);

    // And after the device process is gone, the file still holds it all.
    drop(agent);
    let store = DeviceStore::open(&db)?;
    let state = store.state(&eui(device))?.expect("provisioned by the agent");
    assert!(state.sealed);
    assert_eq!(state.public_key, Some(report.relayed.public_key));
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wifi_meter_enrolls_over_tcp_with_a_device_agent_process() -> anyhow::Result<()> {
    enroll_over_tcp(&WIFI_METER, METER_ID, "wifi").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zigbee_sensor_enrolls_over_tcp_with_a_device_agent_process() -> anyhow::Result<()> {
    enroll_over_tcp(&ZIGBEE_SENSOR, SENSOR_ID, "zigbee").await
}

/// Plays a hostile phone: sends `payload` as the app and returns how the
/// device answered.
async fn device_answer_to(fx: &Fixture, device: &str, payload: Vec<u8>) -> anyhow::Result<WireFailure> {
    use enrollment_host::frame::{Frame, Start};
    let (mut phone, b) = Link::memory_pair();
    let serve = fx.device.serve(eui(device), b);
    let play = async {
        let Frame::Hello(_) = phone.rx.recv().await? else { anyhow::bail!("expected Hello") };
        phone.tx.send(Frame::Start(Start { payload, assistant_key: fx.assistant.public_key(), rebind: None })).await?;
        match phone.rx.recv().await? {
            Frame::Failed(failure) => Ok(failure),
            other => anyhow::bail!("device went on: {}", enrollment_host::frame::frame_name(&other)),
        }
    };
    let (served, answer) = tokio::join!(serve, play);
    assert!(served.is_err());
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_device_refuses_a_half_its_manufacturer_did_not_sign() -> anyhow::Result<()> {
    let fx = Fixture::new()?;
    let before = fx.device.store().state(&eui(METER_ID))?;
    let genuine = label(&WIFI_METER, METER_ID).signed_bytes().to_vec();

    // A phone swaps bytes in the signed payload (e.g. the device half).
    let mut swapped = genuine.clone();
    let at = swapped.len() - 80;
    swapped[at] ^= 0x01;
    let failure = device_answer_to(&fx, METER_ID, swapped).await?;
    assert!(
        failure.code == FailureCode::Untrusted && failure.detail.as_deref().is_some_and(|why| why.contains("signature")),
        "{failure}"
    );

    // A label signed by another manufacturer, well formed and self-consistent.
    let stranger = qr_packer::ManufacturerKey::from_secret("other-maker", [7; 32])?;
    let foreign = enrollment_assistant::label::seal(WIFI_METER.phone, WIFI_METER.device, &manifest(&WIFI_METER, METER_ID), &stranger)?;
    let failure = device_answer_to(&fx, METER_ID, foreign.signed_bytes().to_vec()).await?;
    assert_eq!(failure.code, FailureCode::Untrusted, "{failure}");

    // A genuine label of another device of the same manufacturer.
    let other_device = label(&WIFI_METER, "AC-DE-48-00-00-81").signed_bytes().to_vec();
    let failure = device_answer_to(&fx, METER_ID, other_device).await?;
    assert_eq!(failure.code, FailureCode::NotForThisDevice, "{failure}");

    assert_eq!(fx.device.store().state(&eui(METER_ID))?, before, "refusals change nothing");
    // And the genuine one still enrolls.
    let (report, _) = enroll_in_process(&fx, &WIFI_METER, METER_ID, EnrollOptions::default()).await;
    report?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_assistant_refuses_a_label_for_another_device_before_sending_anything() -> anyhow::Result<()> {
    let fx = Fixture::new()?;
    let (a, b) = Link::memory_pair();
    let app = label(&WIFI_METER, "AC-DE-48-00-00-81");
    let (assistant, device) = tokio::join!(
        fx.assistant.enroll(a, &app, EnrollOptions::default()),
        fx.device.serve(eui(METER_ID), b)
    );
    assert!(matches!(assistant, Err(EnrollError::Label(_))), "{assistant:?}");
    assert!(matches!(device, Err(DeviceFailure::Aborted(_))), "{device:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_service_provider_means_nothing_is_created_and_the_device_is_told_why() -> anyhow::Result<()> {
    let mut fx = Fixture::new()?;
    let mut services = assistant_services();
    services.default_sp = None;
    let services = std::sync::Arc::new(services);
    fx.assistant = enrollment_assistant::AssistantRuntime::new(fx.sandbox.clone(), services.clone(), fx.identity.clone(), Default::default())?;
    let before = fx.device.store().state(&eui(METER_ID))?;
    let (assistant, device) = enroll_in_process(&fx, &WIFI_METER, METER_ID, EnrollOptions::default()).await;
    assert!(matches!(assistant, Err(EnrollError::PhoneHalf { .. })), "{assistant:?}");
    match device {
        Err(DeviceFailure::Aborted(reason)) => {
            assert!(reason.to_string().contains("no service provider is known for device"), "{reason}")
        }
        other => panic!("the device should be told why: {other:?}"),
    }
    assert_eq!(fx.device.store().state(&eui(METER_ID))?, before, "nothing created");
    assert!(services.relayed().is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sp_rebind_is_accepted_only_from_the_assistant_the_device_enrolled_with() -> anyhow::Result<()> {
    use enrollment_assistant::rebind::{NewSp, RebindError, rebind_sp};
    use enrollment_host::frame::Frame;
    let fx = Fixture::new()?;
    let (first, _) = enroll_in_process(&fx, &WIFI_METER, METER_ID, EnrollOptions::default()).await;
    let first = first?;
    let before = fx.device.store().state(&eui(METER_ID))?.expect("provisioned");
    let sp_two = enrollment_assistant::SpIdentity::new("sp-two.example")?;
    let new = NewSp { sp: sp_two.clone(), endpoint: Some("http://127.0.0.1:9002".into()), public_key: Some([0x22; 32]) };
    let timeout = std::time::Duration::from_secs(5);

    let stranger = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let (a, b) = Link::memory_pair();
    let (refused, device) = tokio::join!(rebind_sp(a, &stranger, &new, timeout), fx.device.serve(eui(METER_ID), b));
    assert!(
        matches!(&refused, Err(RebindError::Device(f)) if f.code == FailureCode::BadRebindAuthorization),
        "{refused:?}"
    );
    assert!(device.is_err());
    assert_eq!(fx.device.store().state(&eui(METER_ID))?.as_ref(), Some(&before), "refusal changes nothing");

    // The assistant on record signed for one key; someone on the link swaps in another.
    let (mut a, b) = Link::memory_pair();
    let swapped = async {
        let Frame::Hello(hello) = a.rx.recv().await? else { anyhow::bail!("expected Hello") };
        let mut request = enrollment_host::frame::RebindSp {
            sp: sp_two.to_string(),
            sp_endpoint: new.endpoint.clone(),
            sp_public_key: new.public_key,
            assistant_key: fx.identity.verifying_key().to_bytes(),
            signature: enrollment_host::frame::Signature(Vec::new()),
        };
        let signed = enrollment_host::frame::rebind_sp_message(&hello.device_id, &hello.nonce, &request);
        request.signature = enrollment_host::frame::Signature(ed25519_dalek::Signer::sign(&fx.identity, &signed).to_vec());
        request.sp_public_key = Some([0x66; 32]);
        a.tx.send(Frame::RebindSp(request)).await?;
        Ok::<Frame, anyhow::Error>(a.rx.recv().await?)
    };
    let (answer, device) = tokio::join!(swapped, fx.device.serve(eui(METER_ID), b));
    assert!(matches!(&answer, Ok(Frame::Failed(f)) if f.code == FailureCode::BadRebindAuthorization), "{answer:?}");
    assert!(device.is_err());
    assert_eq!(fx.device.store().state(&eui(METER_ID))?.as_ref(), Some(&before), "a swapped key changes nothing");

    let (a, b) = Link::memory_pair();
    let (report, device) = tokio::join!(rebind_sp(a, &fx.identity, &new, timeout), fx.device.serve(eui(METER_ID), b));
    let report = report?;
    assert!(device?.sp_only);
    assert_eq!(report.sp_bound_id, first.relayed.sp_bound_id.with_sp(sp_two));
    let after = fx.device.store().state(&eui(METER_ID))?.expect("provisioned");
    assert_eq!(after.sp_bound_id, Some(report.sp_bound_id));
    assert_eq!(after.public_key, before.public_key, "the device's own key pair stays");
    assert_eq!((after.sp_endpoint, after.sp_public_key), (new.endpoint, new.public_key), "the new SP's endpoint and key");
    assert_eq!(after.generation, before.generation + 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ethernet_controller_and_the_ble_lock_enroll_in_process() -> anyhow::Result<()> {
    use enrollment_apps::{BLE_LOCK, ETHERNET_CONTROLLER};
    let fx = Fixture::new()?;
    for (app, id, access) in [(&ETHERNET_CONTROLLER, CONTROLLER_ID, "ethernet"), (&BLE_LOCK, LOCK_ID, "ble")] {
        let (report, device) = enroll_in_process(&fx, app, id, EnrollOptions::default()).await;
        let report = report?;
        device?;
        assert_eq!(report.relayed.sp_bound_id.to_string(), format!("{SP}/{access}/{id}"));
        let state = fx.device.store().state(&eui(id))?.expect("provisioned");
        assert!(state.sealed);
        assert_eq!(state.public_key, Some(report.relayed.public_key));
        assert_eq!(state.sp_bound_id, Some(report.relayed.sp_bound_id.clone()));
    }
    Ok(())
}

/// Claim 15: the label read from an NFC tag instead of a QR code. The tag
/// holds the same signed payload as bytes; the assistant reads it from a
/// Type 2 tag dump, and the device verifies it itself as always.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wifi_meter_enrolls_from_an_nfc_tag() -> anyhow::Result<()> {
    let fx = Fixture::new()?;
    let printed = label(&WIFI_METER, METER_ID);
    let message = qr_packer::nfc::encode_message(printed.signed_bytes())?;
    let tag = qr_packer::nfc::TAGS.into_iter().find(|t| t.fits(message.len())).expect("a tag that fits");
    let image = qr_packer::nfc::type2_image(tag, [4, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66], &message)?;

    let (payload, kind) = qr_packer::nfc::read_payload(&image)?;
    assert_eq!(kind, qr_packer::nfc::ImageKind::Type2Dump);
    let scanned = enrollment_assistant::ScannedApp::from_signed(
        qr_packer::SignedPayload::from_bytes(payload),
        &manufacturer().trusted(),
    )?;
    let (a, b) = Link::memory_pair();
    let (assistant, device) =
        tokio::join!(fx.assistant.enroll(a, &scanned, EnrollOptions::default()), fx.device.serve(eui(METER_ID), b));
    let report = assistant?;
    device?;
    assert_eq!(report.relayed.sp_bound_id.to_string(), format!("{SP}/wifi/{METER_ID}"));
    assert!(fx.device.store().state(&eui(METER_ID))?.expect("provisioned").sealed);
    Ok(())
}

/// Asks the device `device` of `fx` for its status as the assistant with `identity`.
async fn status_of(
    fx: &Fixture,
    device: &str,
    identity: &ed25519_dalek::SigningKey,
) -> Result<enrollment_assistant::status::CommittedStatus, enrollment_assistant::status::StatusError> {
    let (a, b) = Link::memory_pair();
    let timeout = std::time::Duration::from_secs(5);
    let (status, _) = tokio::join!(enrollment_assistant::status::ask_status(a, identity, timeout), fx.device.serve(eui(device), b));
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_tells_the_assistant_it_enrolled_with_what_it_committed_signed_with_its_own_key() -> anyhow::Result<()> {
    let fx = Fixture::new()?;
    let stranger = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);

    // Before enrolling: nothing held, and anyone may know that.
    let empty = status_of(&fx, METER_ID, &stranger).await?;
    assert_eq!((empty.sealed, empty.enrolled.is_none(), empty.generation), (false, true, 0));

    let (first, _) = enroll_in_process(&fx, &WIFI_METER, METER_ID, EnrollOptions::default()).await;
    let first = first?;
    let ours = fx.identity.verifying_key().to_bytes();
    let status = status_of(&fx, METER_ID, &fx.identity).await?;
    assert!(status.holds(&first.relayed.public_key, &ours), "{status:?}");
    assert_eq!(status.generation, first.generation);
    assert_eq!(status.enrolled.as_ref().map(|(id, _)| id.clone()), Some(first.relayed.sp_bound_id.clone()));
    assert!(!status.holds(&[7; 32], &ours), "another key is not held");

    // A sealed device tells only the assistant it enrolled with, and writes nothing.
    let before = fx.device.store().state(&eui(METER_ID))?;
    let refused = status_of(&fx, METER_ID, &stranger).await;
    assert!(
        matches!(&refused, Err(enrollment_assistant::status::StatusError::Device(f)) if f.code == FailureCode::BadStatusAuthorization),
        "{refused:?}"
    );
    assert_eq!(fx.device.store().state(&eui(METER_ID))?, before);
    Ok(())
}
