//! Embedding the assistant runtime: enroll the device on a local link from
//! its label, as a phone app or a gateway would.
//!
//! ```sh
//! cargo run -p enrollment-assistant --example assistant -- \
//!     LABEL(.png|.txt) MANUFACTURER.pub.json DEVICE_ADDR SP_IDENTITY
//! ```
//!
//! The device end can be `device-agent serve` or the device crate's
//! `examples/device.rs`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use ed25519_dalek::SigningKey;
use enrollment_assistant::{
    AssistantRuntime, ConfiguredAssistant, EnrollOptions, Link, NetworkCredentials, Sandbox, SandboxConfig, ScannedApp,
    SpIdentity, Timeouts, TrustedKeys,
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [label, manufacturer_key, device, sp] = args.as_slice() else {
        bail!("usage: assistant LABEL MANUFACTURER_KEY DEVICE_ADDR SP_IDENTITY");
    };

    // Whose labels this assistant runs: the manufacturer keys it trusts.
    let trusted = TrustedKeys::from_files(&[PathBuf::from(manufacturer_key)])?;
    let bytes = std::fs::read(label).with_context(|| format!("reading {label}"))?;
    let app = if label.ends_with(".png") || label.ends_with(".jpg") {
        ScannedApp::from_image(&bytes, &trusted)?
    } else {
        ScannedApp::from_text(std::str::from_utf8(&bytes)?, &trusted)?
    };
    println!("label of {} signed by {}", app.manifest().product, app.signer());

    // What this assistant knows and can reach. Fixed here; a gateway
    // implements `AssistantServices` with its control server and SPs.
    let services = ConfiguredAssistant {
        owner: Some("Example Owner".into()),
        location: Some("geo:52.3676,4.9041".into()),
        networks: vec![NetworkCredentials::Wifi { ssid: "example".into(), passphrase: "example passphrase".into() }],
        default_sp: Some(SpIdentity::new(sp)?),
        ..Default::default()
    };
    // The assistant's identity: the device records it, and accepts re-binds
    // only from it. A real assistant keeps this key.
    let identity = SigningKey::from_bytes(&rand::random());
    let sandbox = Arc::new(Sandbox::new(SandboxConfig::default())?);
    let assistant = AssistantRuntime::new(sandbox, Arc::new(services), identity, Timeouts::default())?;

    let stream = tokio::net::TcpStream::connect(device).await.with_context(|| format!("connecting to {device}"))?;
    let report = assistant.enroll(Link::tcp(stream), &app, EnrollOptions::default()).await?;
    println!(
        "enrolled {} with public key {} (generation {})",
        report.relayed.sp_bound_id,
        hex::encode(report.relayed.public_key),
        report.generation
    );
    Ok(())
}
