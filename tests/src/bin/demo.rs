//! The enrollment demo: both reference apps enrolled over TCP, each against
//! its own `device-agent` process (a device waiting on its local link), with
//! this process as the assisting gateway.

use std::time::Instant;

use anyhow::Context;
use end_to_end_tests::{DeviceAgent, Fixture, METER_ID, SENSOR_ID};
use enrollment_apps::{AppPair, WIFI_METER, ZIGBEE_SENSOR};
use runtime::EnrollOptions;
use runtime::link::Link;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let fx = Fixture::new()?;
    let out = std::path::Path::new("out");
    std::fs::create_dir_all(out)?;
    println!("assistant key {}", hex(&fx.assistant.public_key()));
    for (app, id, access) in [(&WIFI_METER, METER_ID, "wifi"), (&ZIGBEE_SENSOR, SENSOR_ID, "zigbee")] {
        enroll(&fx, out, app, id, access).await.with_context(|| format!("enrolling the {}", app.name))?;
    }
    println!("device state files are in {}", out.display());
    Ok(())
}

async fn enroll(fx: &Fixture, out: &std::path::Path, app: &AppPair, id: &str, access: &str) -> anyhow::Result<()> {
    let db = out.join(format!("{}.sqlite", app.name));
    let _ = std::fs::remove_file(&db);
    let t = Instant::now();
    let agent = DeviceAgent::spawn(&db, id, access, &[])?;
    println!("\n{}: device {id} ({access}) listening on {} [{:.1} ms]", app.name, agent.addr, ms(t));
    println!("  phone half {} bytes, device half {} bytes", app.phone.len(), app.device.len());
    let t = Instant::now();
    let stream = tokio::net::TcpStream::connect(agent.addr).await?;
    let report = fx.assistant.enroll(Link::tcp(stream), app.phone, app.device, EnrollOptions::default()).await?;
    let tm = report.timings;
    println!("  enrolled in {:.1} ms: handshake {:.1}, compile {:.1}, halves {:.1}, device {:.1}, relay {:.1}, commit {:.1}",
        ms(t), tm.handshake.as_secs_f64() * 1e3, tm.prepare.as_secs_f64() * 1e3, tm.run.as_secs_f64() * 1e3,
        tm.device.as_secs_f64() * 1e3, tm.relay.as_secs_f64() * 1e3, tm.commit.as_secs_f64() * 1e3);
    println!("  SP-bound identifier: {}", report.relayed.sp_bound_id);
    println!("  public key relayed to the SP: {}", hex(&report.relayed.public_key));
    println!("  device agent says: {}", agent.next_line()?);
    let shown = DeviceAgent::show(&db, id)?;
    println!("  device store: sealed={} owner={} location={} generation={}",
        shown["sealed"], shown["owner"], shown["location"], shown["generation"]);
    Ok(())
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
