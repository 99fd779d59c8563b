//! The enrolled devices join their IoT system, as real processes (issue 12):
//! the meter's operational app reports readings that SP 1 verifies with the
//! key relayed at enrollment (the Wi-Fi meter straight to its SP's endpoint,
//! the Zigbee sensor through the gateway); after SP 1 hands the meter to
//! SP 2 its readings go to SP 2 and no more to SP 1; SP 2 changes the
//! meter's reporting interval with a signed command that the device
//! verifies with SP 2's key and applies; the app runs again after the
//! device agent restarts.

use std::time::{Duration, Instant};

use anyhow::bail;
use end_to_end_tests::system::{STEP, SP_ONE, SP_TWO, Service, System};
use end_to_end_tests::{METER_ID, SENSOR_ID};
use serde_json::Value;

fn quiet(_: &str) {}

/// The messages `sp` recorded from `identifier`.
async fn from(system: &System, sp: &Service, identifier: &str) -> anyhow::Result<Vec<Value>> {
    Ok(system.sp_messages(sp).await?.into_iter().filter(|m| m["identifier"] == identifier).collect())
}

/// Waits until `sp` has at least `n` messages from `identifier`.
async fn wait_for_messages(system: &System, sp: &Service, identifier: &str, n: usize) -> anyhow::Result<Vec<Value>> {
    let deadline = Instant::now() + STEP;
    loop {
        let got = from(system, sp, identifier).await?;
        if got.len() >= n {
            return Ok(got);
        }
        if Instant::now() > deadline {
            bail!("{identifier}: {} of {n} messages at {}", got.len(), sp.url());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_follow_the_device_from_sp_one_to_sp_two_which_changes_its_interval() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut system = System::start(dir.path(), &mut quiet).await?;
    // Activations at most 300 ms apart, whatever the apps ask (60 s by default).
    let fast = ["--max-wake-ms".to_string(), "300".into()];
    system.restart_agent_with(METER_ID, &fast)?;
    let via = format!("{}/v1/uplink", system.gateway.url());
    system.restart_agent_with(SENSOR_ID, &[fast[0].clone(), fast[1].clone(), "--uplink-via".into(), via])?;

    for device in [METER_ID, SENSOR_ID] {
        let label = system.pack_operational_label(device)?;
        let addr = system.agent(device)?.1.addr;
        system.enroll_text(&label, addr).await?;
    }
    let meter_one = format!("{SP_ONE}/wifi/{METER_ID}");
    let sensor_one = format!("{SP_ONE}/zigbee/{SENSOR_ID}");

    // Readings verified at SP 1: the meter's straight, the sensor's through the gateway.
    let readings = wait_for_messages(&system, &system.sp_one, &meter_one, 2).await?;
    assert_eq!(readings[0]["body"], "reading=1007 seq=1", "{readings:?}");
    wait_for_messages(&system, &system.sp_one, &sensor_one, 2).await?;

    // The hand-over: the device is re-bound to SP 2 with SP 2's endpoint and key.
    system.hand_over(&[METER_ID])?;
    let meter_two = format!("{SP_TWO}/wifi/{METER_ID}");
    let (_, device) = system.wait_for_identifier(METER_ID, &meter_two, STEP).await?;
    assert_eq!(device["sp_endpoint"], system.sp_two.url(), "{device}");
    wait_for_messages(&system, &system.sp_two, &meter_two, 1).await?;
    let at_one = from(&system, &system.sp_one, &meter_one).await?.len();
    wait_for_messages(&system, &system.sp_two, &meter_two, 3).await?;
    assert_eq!(from(&system, &system.sp_one, &meter_one).await?.len(), at_one, "no more readings at SP 1");
    assert!(from(&system, &system.sp_one, &meter_two).await?.is_empty(), "SP 1 never hears the new identity");

    // SP 2 changes the interval; the device verifies the command with SP 2's key and applies it.
    system.sp_command(&system.sp_two, &meter_two, "interval=2").await?;
    let deadline = Instant::now() + STEP;
    loop {
        let state = system.device_state(METER_ID)?;
        if state["operational"]["kept"]["interval"] == "2" {
            assert_eq!(state["operational"]["last_command_seq"], 1, "{state}");
            break;
        }
        if Instant::now() > deadline {
            bail!("the command was not applied: {state}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The app survives a restart of the device: the agent runs it again
    // from the store, with what it kept.
    let before = from(&system, &system.sp_two, &meter_two).await?.len();
    system.restart_agent_with(METER_ID, &fast)?;
    let after = wait_for_messages(&system, &system.sp_two, &meter_two, before + 1).await?;
    assert!(after.last().and_then(|m| m["body"].as_str()).is_some_and(|b| b.starts_with("reading=")), "{after:?}");
    assert_eq!(system.device_state(METER_ID)?["operational"]["kept"]["interval"], "2", "kept across the restart");

    for sp in [&system.sp_one, &system.sp_two] {
        let stats = system.sp_stats(sp).await?;
        assert_eq!(stats["messages_rejected"], 0, "{stats}");
    }
    Ok(())
}
