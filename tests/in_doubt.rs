//! Enrollments whose answer to `Commit` was lost, as real processes: the
//! gateway notes the enrollment before it relays, asks the device what it
//! committed, and settles its own record and the SP's to match the device
//! (`enrollment_gateway::in_doubt`). A frame-aware proxy on the link loses
//! exactly the frame each case needs.

use std::time::{Duration, Instant};

use anyhow::bail;
use end_to_end_tests::METER_ID;
use end_to_end_tests::link_proxy::{AfterLoss, LinkProxy, ProxyMode};
use end_to_end_tests::system::{STEP, System};
use serde_json::Value;

fn quiet(_: &str) {}

/// The keys SP 1 holds for the meter.
async fn sp_keys(system: &System) -> anyhow::Result<Vec<String>> {
    let devices = system.sp_devices(&system.sp_one).await?;
    Ok(devices
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| d["device_id"] == METER_ID)
        .filter_map(|d| d["public_key"].as_str().map(str::to_string))
        .collect())
}

/// Waits until the gateway has nothing in doubt.
async fn settled(system: &System) -> anyhow::Result<()> {
    let deadline = Instant::now() + STEP;
    loop {
        let notes = system.gateway_in_doubt().await?;
        if notes.as_array().is_some_and(|n| n.is_empty()) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("still in doubt: {notes}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Device, gateway and SP agree on the meter: enrolled with one key,
/// recorded with that key, and that key (only) at the SP.
async fn all_agree_enrolled(system: &System) -> anyhow::Result<String> {
    let device = system.device_state(METER_ID)?;
    assert_eq!(device["sealed"], true, "{device}");
    let key = device["public_key"].as_str().expect("the device holds a key").to_string();
    let gateway = system.gateway_device(METER_ID).await?;
    assert_eq!(gateway["state"], "enrolled", "{gateway}");
    assert_eq!(gateway["public_key"], key, "{gateway}");
    assert_eq!(gateway["identifier"], device["sp_bound_id"], "{gateway} / {device}");
    assert_eq!(sp_keys(system).await?, vec![key.clone()], "the SP holds exactly the committed key");
    Ok(key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_committed_is_settled_from_the_device_and_a_retry_reports_the_enrollment() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let system = System::start(dir.path(), &mut quiet).await?;
    let device = system.agent(METER_ID)?.1.addr;

    // 1. Committed is lost and the device is out of reach right after: the
    //    gateway cannot know, says so, and keeps a note.
    let proxy = LinkProxy::start(device, ProxyMode::LoseCommitted { then: AfterLoss::Refuse }).await?;
    let (status, answer) = system.enroll_label_at(METER_ID, proxy.addr).await?;
    assert_eq!(status, 504, "{answer}");
    assert_eq!(answer["error"], "commit_unknown", "{answer}");
    let notes = system.gateway_in_doubt().await?;
    assert_eq!(notes.as_array().map(Vec::len), Some(1), "{notes}");
    assert_eq!(notes[0]["device_id"], METER_ID);
    assert_eq!(system.device_state(METER_ID)?["sealed"], true, "the device did commit");
    assert_eq!(system.gateway_device(METER_ID).await?["state"], "known", "the gateway does not know it yet");

    // 2. The same enrollment again, device back in reach: the committed
    //    result, not `device_sealed`.
    proxy.set(ProxyMode::Pass);
    let (status, answer) = system.enroll_label_at(METER_ID, proxy.addr).await?;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["resumed"], true, "{answer}");
    settled(&system).await?;
    let key = all_agree_enrolled(&system).await?;
    assert_eq!(answer["public_key"], key);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_commit_rolls_back_the_sp_and_a_lost_committed_with_the_device_in_reach_settles_at_once() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let system = System::start(dir.path(), &mut quiet).await?;
    let device = system.agent(METER_ID)?.1.addr;

    // Commit never reaches the device: it stays unenrolled, and the key the
    // SP was told is taken back.
    let proxy = LinkProxy::start(device, ProxyMode::LoseCommit { then: AfterLoss::Pass }).await?;
    let (status, answer) = system.enroll_label_at(METER_ID, proxy.addr).await?;
    assert_eq!(status, 502, "{answer}");
    assert!(answer["message"].as_str().is_some_and(|m| m.contains("did not commit")), "{answer}");
    settled(&system).await?;
    assert_eq!(system.device_state(METER_ID)?["sealed"], false);
    assert_eq!(system.gateway_device(METER_ID).await?["state"], "known");
    assert!(sp_keys(&system).await?.is_empty(), "the SP dropped the key no device committed");
    let stats: Value = reqwest::get(format!("{}/admin/stats", system.sp_one.url())).await?.json().await?;
    assert_eq!(stats["withdrawals"], 1, "{stats}");

    // Committed is lost but the device answers at once: settled in the same
    // request, reported as the enrollment it was.
    proxy.set(ProxyMode::LoseCommitted { then: AfterLoss::Pass });
    let (status, answer) = system.enroll_label_at(METER_ID, proxy.addr).await?;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["resumed"], true, "{answer}");
    settled(&system).await?;
    all_agree_enrolled(&system).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_with_an_enrollment_in_doubt_settles_it_at_restart() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut system = System::start(dir.path(), &mut quiet).await?;
    let device = system.agent(METER_ID)?.1.addr;

    let proxy = LinkProxy::start(device, ProxyMode::LoseCommitted { then: AfterLoss::Refuse }).await?;
    let (status, answer) = system.enroll_label_at(METER_ID, proxy.addr).await?;
    assert_eq!(status, 504, "{answer}");
    system.gateway.kill();
    proxy.set(ProxyMode::Pass);
    system.restart_gateway()?;
    settled(&system).await?;
    all_agree_enrolled(&system).await?;
    Ok(())
}
