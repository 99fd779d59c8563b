//! A short crash campaign (the long one is `scripts/crash-campaign`): each
//! of device agent, gateway and control server killed during enrollments,
//! and every device agreed on by device, gateway and SP afterwards.

use end_to_end_tests::binary;

#[test]
fn a_short_crash_campaign_leaves_device_gateway_and_sp_agreeing() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let out = std::process::Command::new(binary("crash-campaign")?)
        .args(["--trials", "9", "--seed", "7", "--out"])
        .arg(dir.path())
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the campaign found disagreements or failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("disagreements: 0"), "{stdout}");
    for victim in ["DeviceAgent", "Gateway", "ControlServer"] {
        assert!(stdout.contains(&format!("kill {victim}:")), "{victim} was never killed:\n{stdout}");
    }
    Ok(())
}
