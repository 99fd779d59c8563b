//! The whole system as real processes on loopback: a control server
//! (SQLite), two SP networks (`sp-sim`), a device agent per device, and a
//! gateway; labels packed by `qr-packer`. The demo and the end-to-end tests
//! drive the same [`System`], so the demo is tested.
//!
//! Every process is a child that is killed when its [`Service`] is dropped;
//! each prints `listening on ADDR` first, so ports are chosen free at run time.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

use crate::binary;

/// A child process that serves on a loopback port.
pub struct Service {
    pub name: String,
    pub child: Child,
    pub addr: SocketAddr,
    output: std::sync::mpsc::Receiver<String>,
}

impl Service {
    /// Starts `program args…` and waits for its `listening on ADDR` line.
    pub fn spawn(name: &str, program: &str, args: &[String], log: Option<&Path>) -> anyhow::Result<Self> {
        let stderr = match log {
            Some(path) => Stdio::from(std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?),
            None => Stdio::inherit(),
        };
        let mut child = Command::new(binary(program)?)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("starting {program}"))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let first = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => line,
            Err(_) => {
                let status = child.try_wait().ok().flatten();
                let _ = child.kill();
                bail!("{name} ({program}) printed nothing; exit status {status:?}")
            }
        };
        let addr = first
            .strip_prefix("listening on ")
            .with_context(|| format!("unexpected first line from {name}: {first}"))?
            .trim()
            .parse()
            .with_context(|| format!("{name}: address in {first:?}"))?;
        Ok(Self { name: name.into(), child, addr, output: rx })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The next line the process printed, waiting up to `timeout`.
    pub fn next_line(&self, timeout: Duration) -> anyhow::Result<String> {
        self.output.recv_timeout(timeout).with_context(|| format!("{} printed nothing more", self.name))
    }

    /// Kills the process at once (SIGKILL): no clean-up of its own.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs a command to completion and returns its stdout; fails with its stderr.
pub fn run(program: &str, args: &[String]) -> anyhow::Result<String> {
    let out = Command::new(binary(program)?).args(args).output().with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// One device of the demo.
#[derive(Debug, Clone)]
pub struct DeviceSpec {
    /// The reference app it runs (`wifi-meter`, `zigbee-sensor`).
    pub app: &'static str,
    pub device_id: &'static str,
    pub access: &'static str,
    /// The SP the control server maps it to at the start.
    pub sp: &'static str,
}

/// The demo's devices.
pub const DEVICES: [DeviceSpec; 2] = [
    DeviceSpec { app: "wifi-meter", device_id: crate::METER_ID, access: "wifi", sp: SP_ONE },
    DeviceSpec { app: "zigbee-sensor", device_id: crate::SENSOR_ID, access: "zigbee", sp: SP_ONE },
];

pub const SP_ONE: &str = "sp-one.example";
pub const SP_TWO: &str = "sp-two.example";
pub const GATEWAY_ID: &str = "gw-plant-3";
const GATEWAY_CREDENTIAL: &str = "gw-plant-3-credential-0f9e";
/// The gateway's local API token (`api_token` of its configuration).
pub const GATEWAY_API_TOKEN: &str = "gw-plant-3-api-token-7c1d";
pub const MANUFACTURER_KID: &str = "acme-2026";

/// Where everything of one run lives.
pub struct Paths {
    pub root: PathBuf,
}

impl Paths {
    pub fn new(root: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(root.join("labels"))?;
        std::fs::create_dir_all(root.join("state"))?;
        std::fs::create_dir_all(root.join("logs"))?;
        Ok(Self { root: root.to_owned() })
    }
    pub fn state(&self, name: &str) -> PathBuf {
        self.root.join("state").join(name)
    }
    pub fn label(&self, name: &str) -> PathBuf {
        self.root.join("labels").join(name)
    }
    pub fn log(&self, name: &str) -> PathBuf {
        self.root.join("logs").join(format!("{name}.log"))
    }
}

/// The running system.
pub struct System {
    pub paths: Paths,
    control_args: Vec<String>,
    gateway_args: Vec<String>,
    fleet: Vec<String>,
    pub control: Service,
    pub sp_one: Service,
    pub sp_two: Service,
    pub gateway: Service,
    pub agents: Vec<(DeviceSpec, Service, PathBuf)>,
    sp_one_key: PathBuf,
    /// The SPs' Ed25519 public keys (hex), as registered with the control
    /// server: the keys devices hold for their SP.
    pub sp_public_keys: [String; 2],
    http: reqwest::Client,
}

/// How long one step of the system may take before a test gives up.
pub const STEP: Duration = Duration::from_secs(30);

impl System {
    /// Keys, SPs, control server, labels, device agents, gateway: started
    /// in that order. `say` is told each step.
    pub async fn start(root: &Path, say: &mut dyn FnMut(&str)) -> anyhow::Result<Self> {
        Self::start_with_fleet(root, 0, say).await
    }

    /// [`System::start`], with `fleet` more Wi-Fi devices mapped to SP 1 and
    /// this gateway (known to the control server, not running an agent), and
    /// the gateway applying pushed updates in small batches.
    pub async fn start_with_fleet(root: &Path, fleet: usize, say: &mut dyn FnMut(&str)) -> anyhow::Result<Self> {
        // The HTTP client below speaks rustls with the ring provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let paths = Paths::new(root)?;
        let s = |p: &Path| p.display().to_string();
        let t = Instant::now();

        // Keys: the manufacturer's (signs labels), each SP's (signs updates).
        let maker_key = paths.state("manufacturer.key");
        let maker_pub = paths.state("manufacturer.pub");
        run("qr-packer", &args(&["keygen", "--kid", MANUFACTURER_KID, "--out", &s(&maker_key), "--public", &s(&maker_pub)]))?;
        // Another manufacturer the gateway also serves (its devices are not here).
        let other_key = paths.state("other-manufacturer.key");
        let other_pub = paths.state("other-manufacturer.pub");
        run("qr-packer", &args(&["keygen", "--kid", "globex-2026", "--out", &s(&other_key), "--public", &s(&other_pub)]))?;
        let sp_one_key = paths.state("sp-one.key");
        let sp_two_key = paths.state("sp-two.key");
        let sp_one_pub = run("sp-sim", &args(&["keygen", "--out", &s(&sp_one_key)]))?.trim().to_string();
        let sp_two_pub = run("sp-sim", &args(&["keygen", "--out", &s(&sp_two_key)]))?.trim().to_string();
        say(&format!("keys: manufacturer {MANUFACTURER_KID}, {SP_ONE}, {SP_TWO} [{} ms]", t.elapsed().as_millis()));

        // Two SP networks.
        let sp_one = Service::spawn(
            SP_ONE,
            "sp-sim",
            &args(&["serve", "--identity", SP_ONE, "--listen", "127.0.0.1:0", "--key", &s(&sp_one_key)]),
            Some(&paths.log("sp-one")),
        )?;
        let sp_two = Service::spawn(
            SP_TWO,
            "sp-sim",
            &args(&["serve", "--identity", SP_TWO, "--listen", "127.0.0.1:0", "--key", &s(&sp_two_key)]),
            Some(&paths.log("sp-two")),
        )?;
        say(&format!("SP networks: {SP_ONE} at {}, {SP_TWO} at {}", sp_one.addr, sp_two.addr));

        // The control server, on an SQLite file.
        let mut config = format!(
            "[policy]\nmax_age_secs = 0\n\n[[gateway]]\nid = \"{GATEWAY_ID}\"\ncredential = \"{GATEWAY_CREDENTIAL}\"\ngeo = {{ lat = 52.37, lon = 4.89 }}\n\n\
             [[sp]]\nidentity = \"{SP_ONE}\"\nbase_url = \"{one}\"\nendpoint = \"{one}\"\npublic_key = \"{sp_one_pub}\"\nmay_release = true\nmay_move_to = [\"{SP_TWO}\"]\n\n\
             [[sp]]\nidentity = \"{SP_TWO}\"\nbase_url = \"{two}\"\nendpoint = \"{two}\"\npublic_key = \"{sp_two_pub}\"\nmay_release = true\nmay_move_to = [\"{SP_ONE}\"]\n",
            one = sp_one.url(),
            two = sp_two.url()
        );
        for d in &DEVICES {
            config.push_str(&format!(
                "\n[[mapping]]\ndevice_id = \"{}\"\nsp = \"{}\"\nservice_type = \"metering\"\naccess = \"{}\"\ngateways = [\"{GATEWAY_ID}\"]\n",
                d.device_id, d.sp, d.access
            ));
        }
        let fleet_ids: Vec<String> = (0..fleet).map(|n| format!("AC-DE-48-01-{:02X}-{:02X}", n / 256, n % 256)).collect();
        for id in &fleet_ids {
            config.push_str(&format!(
                "\n[[mapping]]\ndevice_id = \"{id}\"\nsp = \"{SP_ONE}\"\naccess = \"wifi\"\ngateways = [\"{GATEWAY_ID}\"]\n"
            ));
        }
        let cs_config = paths.state("control-server.toml");
        std::fs::write(&cs_config, config)?;
        let database = format!("sqlite://{}", s(&paths.state("control-server.db")));
        let control_args = args(&["--database", &database, "serve", "--config", &s(&cs_config), "--listen"]);
        let control = Service::spawn(
            "control server",
            "control-server",
            &[control_args.clone(), args(&["127.0.0.1:0"])].concat(),
            Some(&paths.log("control-server")),
        )?;
        say(&format!("control server at {} ({})", control.addr, database));

        // Labels, as a manufacturer prints them.
        for d in &DEVICES {
            let t = Instant::now();
            let report = run(
                "qr-packer",
                &args(&[
                    "pack",
                    "--app",
                    d.app,
                    "--key",
                    &s(&maker_key),
                    "--device-id",
                    d.device_id,
                    "--out-dir",
                    &s(&paths.root.join("labels")),
                    "--name",
                    d.app,
                ]),
            )?;
            let figure = |label: &str| {
                report.lines().find(|l| l.trim_start().starts_with(label)).and_then(|l| l.split_whitespace().last()).unwrap_or("?")
            };
            let summary = format!(
                "QR version {} at EC M, {} characters, {} signed bytes",
                figure("QR version"),
                figure("text:"),
                figure("signed COSE_Sign1")
            );
            say(&format!("label {}.png for {} packed [{} ms] {summary}", d.app, d.device_id, t.elapsed().as_millis()));
        }
        say("(labels use the shipped dictionary, trained on the reference apps themselves; \
             a new app's size is the leave-one-out figure in BENCHMARKS.md)");

        // The devices, waiting on their local links.
        let mut agents = Vec::new();
        for d in &DEVICES {
            let db = paths.state(&format!("device-{}.sqlite", d.app));
            let agent = spawn_agent(&paths, d, &db, "127.0.0.1:0", "")?;
            say(&format!("device {} ({}) waiting on {}", d.device_id, d.access, agent.addr));
            agents.push((d.clone(), agent, db));
        }

        // The gateway.
        let gateway_config = paths.state("gateway.toml");
        std::fs::write(
            &gateway_config,
            format!(
                "db = \"gateway.sqlite\"\nidentity_key = \"gateway.key\"\napi_token = \"{GATEWAY_API_TOKEN}\"\n\
                 trusted_manufacturer_keys = [\"manufacturer.pub\", \"other-manufacturer.pub\"]\n{}\
                 owner = \"ACME Utilities\"\nlocation = \"geo:52.3676,4.9041\"\n\n\
                 [control_server]\nurl = \"{}\"\ngateway_id = \"{GATEWAY_ID}\"\ncredential = \"{GATEWAY_CREDENTIAL}\"\n\
                 service_type = \"metering\"\ngeo = {{ lat = 52.37, lon = 4.89 }}\n\n\
                 [[networks]]\nWifi = {{ ssid = \"plant-3\", passphrase = \"correct horse battery\" }}\n\n\
                 [[networks]]\nZigbee = {{ pan_id = 6754, extended_pan_id = [221, 221, 221, 221, 221, 221, 221, 221], channel = 15, network_key = [90, 90, 90, 90, 90, 90, 90, 90, 90, 90, 90, 90, 90, 90, 90, 90] }}\n",
                if fleet > 0 { "max_update_batch = 50\nrebind_retry_ms = 300\n" } else { "rebind_retry_ms = 300\n" },
                control.url()
            ),
        )?;
        let gateway_args = args(&["serve", "--config", &s(&gateway_config)]);
        let gateway = Service::spawn("gateway", "gateway", &gateway_args, Some(&paths.log("gateway")))?;
        say(&format!("gateway {GATEWAY_ID} at {}", gateway.addr));

        Ok(Self {
            paths,
            control_args,
            gateway_args,
            fleet: fleet_ids,
            control,
            sp_one,
            sp_two,
            gateway,
            agents,
            sp_one_key,
            sp_public_keys: [sp_one_pub.clone(), sp_two_pub.clone()],
            http: reqwest::Client::new(),
        })
    }

    /// Starts one device-agent process simulating every device of the fleet
    /// (each on its own port); returns the fleet's devices and addresses.
    pub fn spawn_fleet_agent(&mut self) -> anyhow::Result<(Service, Vec<(String, SocketAddr)>)> {
        self.spawn_fleet_agent_at("127.0.0.1:0")
    }

    /// [`System::spawn_fleet_agent`] on consecutive ports from `listen`'s
    /// (the same ones again after a restart), or free ones for port 0.
    pub fn spawn_fleet_agent_at(&self, listen: &str) -> anyhow::Result<(Service, Vec<(String, SocketAddr)>)> {
        self.spawn_fleet_agent_with(listen, &[])
    }

    /// [`System::spawn_fleet_agent_at`] with more arguments for `device-agent serve`.
    pub fn spawn_fleet_agent_with(&self, listen: &str, extra: &[String]) -> anyhow::Result<(Service, Vec<(String, SocketAddr)>)> {
        let first = self.fleet.first().context("no fleet")?.clone();
        let db = self.paths.state("fleet.sqlite");
        let agent = Service::spawn(
            "fleet",
            "device-agent",
            &args(&[
                "serve",
                "--db",
                &db.display().to_string(),
                "--device-id",
                &first,
                "--access",
                "wifi",
                "--trust",
                &self.paths.state("manufacturer.pub").display().to_string(),
                "--fleet",
                &self.fleet.len().to_string(),
                "--listen",
                listen,
            ])
            .into_iter()
            .chain(extra.iter().cloned())
            .collect::<Vec<_>>(),
            Some(&self.paths.log("fleet")),
        )?;
        let mut devices = Vec::new();
        for _ in 0..self.fleet.len() {
            let line = agent.next_line(STEP)?;
            let (id, addr) = line
                .strip_prefix("device ")
                .and_then(|rest| rest.split_once(" at "))
                .with_context(|| format!("unexpected line from the fleet agent: {line}"))?;
            devices.push((id.to_string(), addr.parse()?));
        }
        Ok((agent, devices))
    }

    /// Asks the gateway to enroll the device at `device` with a label's text.
    pub async fn enroll_text(&self, label_text: &str, device: SocketAddr) -> anyhow::Result<Value> {
        let body = serde_json::json!({ "label_text": label_text, "device": device });
        let response = self.http.post(format!("{}/v1/enroll", self.gateway.url())).bearer_auth(GATEWAY_API_TOKEN).json(&body).send().await?;
        let status = response.status();
        let value: Value = response.json().await?;
        if !status.is_success() {
            bail!("enrollment failed ({status}): {}", value["message"]);
        }
        Ok(value)
    }

    /// The extra devices of [`System::start_with_fleet`].
    pub fn fleet_ids(&self) -> Vec<String> {
        self.fleet.clone()
    }

    /// Starts the control server again on the same address and database.
    pub fn restart_control_server(&mut self) -> anyhow::Result<()> {
        self.control.kill();
        let addr = self.control.addr.to_string();
        let log = self.paths.log("control-server-2");
        self.control = Service::spawn(
            "control server",
            "control-server",
            &[self.control_args.clone(), vec![addr]].concat(),
            Some(&log),
        )?;
        Ok(())
    }

    /// Stops the device agent of `device_id` (SIGKILL): the device is out of reach.
    pub fn stop_agent(&mut self, device_id: &str) -> anyhow::Result<()> {
        let agent = self.agents.iter_mut().find(|(d, _, _)| d.device_id == device_id).context("no such device")?;
        agent.1.kill();
        Ok(())
    }

    /// Starts the device agent of `device_id` again, on the same address and store.
    pub fn restart_agent(&mut self, device_id: &str) -> anyhow::Result<()> {
        let paths = &self.paths;
        let agent = self.agents.iter_mut().find(|(d, _, _)| d.device_id == device_id).context("no such device")?;
        agent.1.kill();
        let listen = agent.1.addr.to_string();
        agent.1 = spawn_agent(paths, &agent.0, &agent.2, &listen, "-2")?;
        Ok(())
    }

    /// Starts the device agent of `device_id` again with `extra` arguments
    /// for `device-agent serve` (same address and store).
    pub fn restart_agent_with(&mut self, device_id: &str, extra: &[String]) -> anyhow::Result<()> {
        let paths = &self.paths;
        let agent = self.agents.iter_mut().find(|(d, _, _)| d.device_id == device_id).context("no such device")?;
        agent.1.kill();
        let listen = agent.1.addr.to_string();
        agent.1 = spawn_agent_with(paths, &agent.0, &agent.2, &listen, "-op", extra)?;
        Ok(())
    }

    /// Packs `device_id`'s reference app with its operational app on the
    /// label (`--with-operational`, within `pack`'s default `--max-version`)
    /// and returns the payload text.
    pub fn pack_operational_label(&self, device_id: &str) -> anyhow::Result<String> {
        let (spec, _, _) = self.agent(device_id)?;
        let name = format!("{}-op", spec.app);
        run(
            "qr-packer",
            &args(&[
                "pack",
                "--app",
                spec.app,
                "--with-operational",
                "--key",
                &self.paths.state("manufacturer.key").display().to_string(),
                "--device-id",
                device_id,
                "--out-dir",
                &self.paths.root.join("labels").display().to_string(),
                "--name",
                &name,
            ]),
        )?;
        let text = std::fs::read_to_string(self.paths.label(&format!("{name}.txt")))?;
        Ok(text.trim().to_string())
    }

    /// The device messages an SP verified and recorded (`GET /admin/messages`).
    pub async fn sp_messages(&self, sp: &Service) -> anyhow::Result<Vec<Value>> {
        let v: Value = self.http.get(format!("{}/admin/messages", sp.url())).send().await?.json().await?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    /// An SP's counters (`GET /admin/stats`).
    pub async fn sp_stats(&self, sp: &Service) -> anyhow::Result<Value> {
        Ok(self.http.get(format!("{}/admin/stats", sp.url())).send().await?.json().await?)
    }

    /// Has an SP sign a command for the device `identifier` (`POST /admin/command`).
    pub async fn sp_command(&self, sp: &Service, identifier: &str, body: &str) -> anyhow::Result<()> {
        let answer = self
            .http
            .post(format!("{}/admin/command", sp.url()))
            .json(&serde_json::json!({ "identifier": identifier, "body": body }))
            .send()
            .await?;
        if !answer.status().is_success() {
            bail!("the SP refused the command ({}): {}", answer.status(), answer.text().await?);
        }
        Ok(())
    }

    /// Starts the gateway again (same store, same configuration).
    pub fn restart_gateway(&mut self) -> anyhow::Result<()> {
        self.gateway.kill();
        let log = self.paths.log("gateway-2");
        self.gateway = Service::spawn("gateway", "gateway", &self.gateway_args, Some(&log))?;
        Ok(())
    }

    /// Sets how an SP network answers validations of `device_id`
    /// (`confirm`, `redirect:<sp>`, `reject`, `slow:<ms>`, `down`).
    pub async fn set_sp_behaviour(&self, sp: &str, device_id: &str, verdict: &str) -> anyhow::Result<()> {
        let service = if sp == SP_ONE { &self.sp_one } else { &self.sp_two };
        let response = self
            .http
            .post(format!("{}/admin/verdict", service.url()))
            .json(&serde_json::json!({ "device_id": device_id, "verdict": verdict }))
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("{sp} refused the verdict: {}", response.text().await?);
        }
        Ok(())
    }

    /// Packs a label of another manufacturer (one the gateway trusts but the
    /// device does not) for `device_id`.
    pub fn pack_foreign_label(&self, app: &str, device_id: &str) -> anyhow::Result<()> {
        let key = self.paths.state("other-manufacturer.key");
        run(
            "qr-packer",
            &args(&[
                "pack",
                "--app",
                app,
                "--key",
                &key.display().to_string(),
                "--device-id",
                device_id,
                "--out-dir",
                &self.paths.root.join("labels").display().to_string(),
                "--name",
                "foreign",
            ]),
        )?;
        Ok(())
    }

    /// Enrolls `device_id` with the label of [`System::pack_foreign_label`].
    pub async fn enroll_from_foreign_label(&self, device_id: &str) -> anyhow::Result<Value> {
        self.enroll_with_png(device_id, &self.paths.label("foreign.png")).await
    }

    /// The gateway's update-stream position and health.
    pub async fn gateway_stream(&self) -> anyhow::Result<Value> {
        Ok(self.http.get(format!("{}/v1/stream", self.gateway.url())).bearer_auth(GATEWAY_API_TOKEN).send().await?.json().await?)
    }

    /// Reads the gateway's store file directly: its stream position, and how
    /// many of `devices` are on SP 2 and how many still on SP 1 (or unknown).
    pub async fn gateway_store_split(&self, devices: &[String]) -> anyhow::Result<(u64, usize, usize)> {
        let store = enrollment_gateway::store::GatewayStore::open(&self.paths.state("gateway.sqlite"))?;
        let last_seq = store.last_seq().await?;
        let known = store.devices().await?;
        let mut moved = 0;
        let mut old = 0;
        for id in devices {
            let device = known.iter().find(|d| d.device_id.to_string() == *id);
            match device.and_then(|d| d.sp.as_ref()).map(|sp| sp.as_str()) {
                Some(SP_TWO) => moved += 1,
                Some(SP_ONE) | None => old += 1,
                Some(other) => bail!("{id} is on {other}"),
            }
        }
        Ok((last_seq, moved, old))
    }

    /// The device agent of `device_id`.
    pub fn agent(&self, device_id: &str) -> anyhow::Result<&(DeviceSpec, Service, PathBuf)> {
        self.agents.iter().find(|(d, _, _)| d.device_id == device_id).context("no such device")
    }

    /// Asks the gateway to enroll a device from the photo of its label.
    pub async fn enroll_from_label(&self, device_id: &str) -> anyhow::Result<Value> {
        let (spec, _, _) = self.agent(device_id)?;
        self.enroll_with_png(device_id, &self.paths.label(&format!("{}.png", spec.app))).await
    }

    async fn enroll_with_png(&self, device_id: &str, label: &Path) -> anyhow::Result<Value> {
        let (_, agent, _) = self.agent(device_id)?;
        let (status, value) = self.enroll_png_at(label, agent.addr).await?;
        if !(200..300).contains(&status) {
            bail!("enrollment of {device_id} failed ({status}): {}", value["message"]);
        }
        Ok(value)
    }

    /// Asks the gateway to enroll the device whose link is at `device` from
    /// the label photo of `device_id`'s app; the HTTP status and the answer,
    /// whatever they are.
    pub async fn enroll_label_at(&self, device_id: &str, device: SocketAddr) -> anyhow::Result<(u16, Value)> {
        let (spec, _, _) = self.agent(device_id)?;
        self.enroll_png_at(&self.paths.label(&format!("{}.png", spec.app)), device).await
    }

    async fn enroll_png_at(&self, label: &Path, device: SocketAddr) -> anyhow::Result<(u16, Value)> {
        use base64::Engine;
        let png = std::fs::read(label).with_context(|| format!("reading {}", label.display()))?;
        let body = serde_json::json!({
            "label_image_base64": base64::engine::general_purpose::STANDARD.encode(png),
            "device": device,
        });
        let response = self.http.post(format!("{}/v1/enroll", self.gateway.url())).bearer_auth(GATEWAY_API_TOKEN).json(&body).send().await?;
        let status = response.status().as_u16();
        Ok((status, response.json().await?))
    }

    /// What the fleet agent's store holds for `device_id` (read by another process).
    pub fn fleet_device_state(&self, device_id: &str) -> anyhow::Result<Value> {
        let db = self.paths.state("fleet.sqlite");
        let out = run("device-agent", &args(&["show", "--db", &db.display().to_string(), "--device-id", device_id]))?;
        Ok(serde_json::from_str(&out)?)
    }

    /// Packs one bound label per fleet device (payload text only):
    /// `labels/fleet/DEVICE.txt`.
    pub fn pack_fleet_labels(&self, app: &str) -> anyhow::Result<PathBuf> {
        self.pack_fleet_labels_with(app, &[])
    }

    /// [`System::pack_fleet_labels`] with more arguments for `qr-packer batch`
    /// (e.g. `--with-operational`).
    pub fn pack_fleet_labels_with(&self, app: &str, extra: &[&str]) -> anyhow::Result<PathBuf> {
        let csv = self.paths.state("fleet.csv");
        let mut rows = String::from("device_id\n");
        for id in &self.fleet {
            rows.push_str(id);
            rows.push('\n');
        }
        std::fs::write(&csv, rows)?;
        let out = self.paths.root.join("labels").join("fleet");
        run(
            "qr-packer",
            &args(&[
                "batch",
                "--app",
                app,
                "--csv",
                &csv.display().to_string(),
                "--key",
                &self.paths.state("manufacturer.key").display().to_string(),
                "--out-dir",
                &out.display().to_string(),
                "--no-images",
            ])
            .into_iter()
            .chain(extra.iter().map(|a| a.to_string()))
            .collect::<Vec<_>>(),
        )?;
        Ok(out)
    }

    /// The gateway's enrollments in doubt (`GET /v1/in-doubt`).
    pub async fn gateway_in_doubt(&self) -> anyhow::Result<Value> {
        Ok(self.http.get(format!("{}/v1/in-doubt", self.gateway.url())).bearer_auth(GATEWAY_API_TOKEN).send().await?.json().await?)
    }

    /// The gateway's record of a device.
    pub async fn gateway_device(&self, device_id: &str) -> anyhow::Result<Value> {
        Ok(self.http.get(format!("{}/v1/devices/{device_id}", self.gateway.url())).bearer_auth(GATEWAY_API_TOKEN).send().await?.json().await?)
    }

    /// What the device agent's store holds (read by another process).
    pub fn device_state(&self, device_id: &str) -> anyhow::Result<Value> {
        let (_, _, db) = self.agent(device_id)?;
        let out = run("device-agent", &args(&["show", "--db", &db.display().to_string(), "--device-id", device_id]))?;
        Ok(serde_json::from_str(&out)?)
    }

    /// The devices an SP network has had reported to it.
    pub async fn sp_devices(&self, sp: &Service) -> anyhow::Result<Value> {
        Ok(self.http.get(format!("{}/v1/devices", sp.url())).send().await?.json().await?)
    }

    /// SP 1 hands `device_ids` to SP 2 with a signed unsolicited update.
    pub fn hand_over(&self, device_ids: &[&str]) -> anyhow::Result<String> {
        run(
            "sp-sim",
            &args(&[
                "move",
                "--key",
                &self.sp_one_key.display().to_string(),
                "--identity",
                SP_ONE,
                "--control-server",
                &self.control.url(),
                "--new-sp",
                SP_TWO,
                "--devices",
                &device_ids.join(","),
            ]),
        )
    }

    /// Waits until the gateway and the device both hold `expected` for
    /// `device_id` and the device has been told (no re-bind pending).
    pub async fn wait_for_identifier(&self, device_id: &str, expected: &str, within: Duration) -> anyhow::Result<(Value, Value)> {
        let deadline = Instant::now() + within;
        loop {
            let gw = self.gateway_device(device_id).await?;
            let dev = self.device_state(device_id)?;
            if gw["identifier"] == expected && gw["rebind_pending"] == false && dev["sp_bound_id"] == expected {
                return Ok((gw, dev));
            }
            if Instant::now() > deadline {
                bail!("{device_id} did not reach {expected}: gateway {gw}, device {dev}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Starts the device agent of `d` on `listen`.
fn spawn_agent(paths: &Paths, d: &DeviceSpec, db: &Path, listen: &str, run: &str) -> anyhow::Result<Service> {
    spawn_agent_with(paths, d, db, listen, run, &[])
}

/// [`spawn_agent`] with more arguments for `device-agent serve`.
fn spawn_agent_with(paths: &Paths, d: &DeviceSpec, db: &Path, listen: &str, run: &str, extra: &[String]) -> anyhow::Result<Service> {
    let mut all = args(&[
            "serve",
            "--db",
            &db.display().to_string(),
            "--device-id",
            d.device_id,
            "--access",
            d.access,
            "--trust",
            &paths.state("manufacturer.pub").display().to_string(),
            "--listen",
            listen,
        ]);
    all.extend_from_slice(extra);
    Service::spawn(&format!("device {}", d.device_id), "device-agent", &all, Some(&paths.log(&format!("device-{}{run}", d.app))))
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}
