//! The whole system as real processes on loopback (control server, two SP
//! networks, device agents, gateway, labels packed by `qr-packer`): the demo
//! flow, and what happens when parts of it fail.

use std::time::{Duration, Instant};

use end_to_end_tests::system::{DEVICES, SP_ONE, SP_TWO, STEP, System};

fn quiet(_: &str) {}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_flow_enrolls_both_devices_and_follows_a_hand_over() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let system = System::start(dir.path(), &mut quiet).await?;

    for d in &DEVICES {
        let report = system.enroll_from_label(d.device_id).await?;
        let expected = format!("{SP_ONE}/{}/{}", d.access, d.device_id);
        assert_eq!(report["identifier"], expected.as_str());
        // The gateway stored it, the device committed it, the SP recorded it.
        let gw = system.gateway_device(d.device_id).await?;
        assert_eq!(gw["identifier"], expected.as_str());
        assert_eq!(gw["state"], "enrolled");
        let dev = system.device_state(d.device_id)?;
        assert_eq!(dev["sp_bound_id"], expected.as_str());
        assert_eq!(dev["sealed"], true);
        assert_eq!(dev["public_key"], report["public_key"]);
        assert_eq!(gw["public_key"], report["public_key"]);
        // The SP's communication details, from the control server to the device.
        assert_eq!(dev["sp_endpoint"], system.sp_one.url().as_str(), "{dev}");
        assert_eq!(dev["sp_public_key"], system.sp_public_keys[0].as_str(), "{dev}");
        assert_eq!((&gw["sp_endpoint"], &gw["sp_public_key"]), (&dev["sp_endpoint"], &dev["sp_public_key"]), "{gw}");
    }
    let recorded = system.sp_devices(&system.sp_one).await?;
    let recorded: Vec<(String, String)> = recorded
        .as_array()
        .expect("a list")
        .iter()
        .map(|r| (r["identifier"].as_str().unwrap_or("").to_string(), r["public_key"].as_str().unwrap_or("").to_string()))
        .collect();
    for d in &DEVICES {
        let dev = system.device_state(d.device_id)?;
        let want = (dev["sp_bound_id"].as_str().unwrap_or("").to_string(), dev["public_key"].as_str().unwrap_or("").to_string());
        assert!(recorded.contains(&want), "{SP_ONE} recorded {recorded:?}, missing {want:?}");
    }
    assert_eq!(system.sp_devices(&system.sp_two).await?.as_array().map(Vec::len), Some(0));

    // SP 1 hands the meter to SP 2: pushed to the gateway, re-bound on the device.
    let meter = &DEVICES[0];
    let before = system.device_state(meter.device_id)?;
    system.hand_over(&[meter.device_id])?;
    let expected = format!("{SP_TWO}/{}/{}", meter.access, meter.device_id);
    let (gw, dev) = system.wait_for_identifier(meter.device_id, &expected, STEP).await?;
    assert_eq!(gw["identifier"], expected.as_str());
    assert_eq!(dev["public_key"], before["public_key"], "a hand-over keeps the key pair");
    assert_eq!(dev["generation"].as_u64(), before["generation"].as_u64().map(|g| g + 1));
    // The whole binding moved: SP 2's endpoint and key, never SP 1's.
    assert_eq!(dev["sp_endpoint"], system.sp_two.url().as_str(), "{dev}");
    assert_eq!(dev["sp_public_key"], system.sp_public_keys[1].as_str(), "{dev}");
    assert_ne!(dev["sp_public_key"], before["sp_public_key"], "the old SP's key is gone");
    assert_eq!(gw["sp_endpoint"], system.sp_two.url().as_str(), "{gw}");
    // The sensor was not part of it.
    let sensor = &DEVICES[1];
    let gw = system.gateway_device(sensor.device_id).await?;
    assert_eq!(gw["identifier"], format!("{SP_ONE}/{}/{}", sensor.access, sensor.device_id).as_str());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_server_down_leaves_the_device_unenrolled_and_it_can_retry() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut system = System::start(dir.path(), &mut quiet).await?;
    let meter = DEVICES[0].device_id;
    system.control.kill();

    let error = system.enroll_from_label(meter).await.expect_err("no control server, no enrollment");
    let message = format!("{error:#}");
    assert!(message.contains("control server could not be reached"), "{message}");
    let dev = system.device_state(meter)?;
    assert_eq!(dev["sealed"], false, "the device stays as it was: {dev}");
    assert_eq!(dev["sp_bound_id"], serde_json::Value::Null);

    system.restart_control_server()?;
    let report = system.enroll_from_label(meter).await?;
    assert_eq!(report["identifier"], format!("{SP_ONE}/wifi/{meter}").as_str());
    assert_eq!(system.device_state(meter)?["sealed"], true);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_agent_killed_mid_enrollment_leaves_the_device_unchanged() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let system = System::start(dir.path(), &mut quiet).await?;
    let meter = DEVICES[0].device_id;
    // The SP answers slowly, so the enrollment is in the middle (both halves
    // running, waiting for the SP identity) when the device dies.
    system.set_sp_behaviour(SP_ONE, meter, "slow:3000").await?;
    let pid = system.agent(meter)?.1.child.id();
    let enrolling = system.enroll_from_label(meter);
    let killer = async {
        tokio::time::sleep(Duration::from_millis(700)).await;
        std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status()
    };
    let (result, killed) = tokio::join!(enrolling, killer);
    assert!(killed?.success());
    let error = result.expect_err("the device died");
    assert!(format!("{error:#}").contains("enrollment"), "{error:#}");
    let dev = system.device_state(meter)?;
    assert_eq!(dev["sealed"], false, "{dev}");
    assert_eq!(dev["generation"], 0, "{dev}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_label_of_another_manufacturer_is_refused_by_the_device() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let system = System::start(dir.path(), &mut quiet).await?;
    let meter = DEVICES[0].device_id;
    // The gateway trusts both manufacturers; the meter trusts only its own.
    system.pack_foreign_label("wifi-meter", meter)?;
    let error = system.enroll_from_foreign_label(meter).await.expect_err("the device refuses it");
    let message = format!("{error:#}");
    assert!(message.contains("refuses the app"), "{message}");
    assert_eq!(system.device_state(meter)?["sealed"], false);
    // Its own manufacturer's label still works.
    system.enroll_from_label(meter).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_killed_while_applying_a_large_update_resumes_without_mixing() -> anyhow::Result<()> {
    const N: usize = 1000;
    let dir = tempfile::tempdir()?;
    let mut system = System::start_with_fleet(dir.path(), N, &mut quiet).await?;
    let fleet = system.fleet_ids();
    let ids: Vec<&str> = fleet.iter().map(String::as_str).collect();
    system.hand_over(&ids)?;

    // Kill the gateway as soon as it has applied part of the update.
    let deadline = Instant::now() + STEP;
    let applied_at_kill = loop {
        let seq = system.gateway_stream().await.map(|s| s["last_seq"].as_u64().unwrap_or(0)).unwrap_or(0);
        if seq >= 100 || Instant::now() > deadline {
            system.gateway.kill();
            break seq;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    // Straight after SIGKILL: every device is either before or after, and
    // exactly the updates up to the stored position are applied.
    let (last_seq, moved, old) = system.gateway_store_split(&fleet).await?;
    assert_eq!(moved + old, N, "every device is on the old or the new SP");
    assert_eq!(moved as u64, last_seq, "applied exactly the updates up to the stored position");
    eprintln!("killed with {applied_at_kill} seen applied; store had {last_seq} of {N}");

    // After a restart the rest comes from the stream.
    system.restart_gateway()?;
    let deadline = Instant::now() + STEP;
    loop {
        let (last_seq, moved, _) = system.gateway_store_split(&fleet).await?;
        if moved == N && last_seq == N as u64 {
            break;
        }
        assert!(Instant::now() < deadline, "stuck at {moved} of {N} moved (last_seq {last_seq})");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_out_of_reach_during_a_hand_over_is_re_bound_when_it_is_back() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut system = System::start(dir.path(), &mut quiet).await?;
    let meter = &DEVICES[0];
    system.enroll_from_label(meter.device_id).await?;
    system.stop_agent(meter.device_id)?;

    system.hand_over(&[meter.device_id])?;
    let expected = format!("{SP_TWO}/{}/{}", meter.access, meter.device_id);
    // The gateway learns it at once, but cannot tell the device yet.
    let deadline = Instant::now() + STEP;
    loop {
        let gw = system.gateway_device(meter.device_id).await?;
        if gw["identifier"] == expected.as_str() {
            assert_eq!(gw["rebind_pending"], true, "{gw}");
            break;
        }
        assert!(Instant::now() < deadline, "the update never reached the gateway: {gw}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(system.device_state(meter.device_id)?["sp_bound_id"], format!("{SP_ONE}/{}/{}", meter.access, meter.device_id).as_str());

    // Back in reach: the gateway's retry re-binds it.
    system.restart_agent(meter.device_id)?;
    system.wait_for_identifier(meter.device_id, &expected, STEP).await?;
    Ok(())
}
