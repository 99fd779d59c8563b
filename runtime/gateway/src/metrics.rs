//! What the gateway counts, served as `GET /metrics` on its local API
//! (Prometheus text format 0.0.4, [`enrollment_metrics`]).
//!
//! `/metrics` is behind the API token like every route but `/healthz`: the
//! API may be reachable beyond loopback (`listen_beyond_loopback`), and
//! while the metrics name no device, how many enrollments fail and why is
//! the operator's business. Prometheus sends the token with
//! `authorization: { credentials_file: … }` in its scrape config.
//!
//! | metric | type | labels | meaning |
//! | --- | --- | --- | --- |
//! | `gateway_enrollments_total` | counter | `outcome` | enrollments through [`Gateway::enroll`]: `success`, `resumed` (the device had committed before; its answer had been lost), the stable error code of the API's answer (`bad_label`, `device_unreachable`, `device_sealed`, `device_refused`, `label_not_for_device`, `app_failed`, `sp_refused`, `sp_unreachable`, `device_link_failed`, `commit_unknown`, `gateway_store_failed`, `control_server_failed`, `gateway_error`), or `abandoned` (cut off before it ended: the request deadline, a caller that hung up) |
//! | `gateway_enrollments_running` | gauge | — | enrollments under way now |
//! | `gateway_enrollment_stage_duration_seconds` | histogram | `stage` | time per stage of a successful (not resumed) enrollment, the fields of [`GatewayTimings`]: `decode_verify`, `connect`, `handshake`, `prepare`, `run`, `control_server` (part of `run`), `relay`, `commit`, `record`, `total` |
//! | `gateway_rebinds_total` | counter | `outcome` | SP re-binds of enrolled devices: `done`, `failed` (the device stays pending and is retried) |
//! | `gateway_in_doubt_settled_total` | counter | `outcome` | enrollments in doubt asked about ([`crate::in_doubt`]): `committed`, `rolled_back`, `still_in_doubt` |
//! | `gateway_enrollments_in_doubt` | gauge | — | notes in doubt in the store now (read at scrape) |
//! | `gateway_store_readable` | gauge | — | `1` if the store answered that read, `0` if not |
//! | `gateway_updates_applied_total` | counter | — | pushed updates applied since start |
//! | `gateway_update_batches_total` | counter | — | transactions those updates were applied in |
//! | `gateway_update_stream_connected` | gauge | — | `1` while the control server's update stream is up |
//! | `gateway_update_stream_last_seq` | gauge | — | the last stream position applied |

use enrollment_metrics::{Counter, Exposition, Family, Gauge, Histogram, LATENCY_BUCKETS};

use crate::in_doubt::Settled;
use crate::{Gateway, GatewayEnrollment, GatewayError, GatewayTimings};

/// The outcomes of `gateway_enrollments_total` besides the API's error codes.
const SUCCESS: &str = "success";
const RESUMED: &str = "resumed";
const ABANDONED: &str = "abandoned";

/// Every code `api::answer_for` answers with.
const ERROR_CODES: &[&str] = &[
    "bad_label",
    "device_unreachable",
    "device_sealed",
    "device_refused",
    "label_not_for_device",
    "app_failed",
    "sp_refused",
    "sp_unreachable",
    "device_link_failed",
    "commit_unknown",
    "gateway_store_failed",
    "control_server_failed",
    "gateway_error",
];

const STAGES: &[&str] =
    &["decode_verify", "connect", "handshake", "prepare", "run", "control_server", "relay", "commit", "record", "total"];

/// The gateway's counters and histograms (what is read from the store or
/// the stream state at scrape time is not kept here).
#[derive(Debug)]
pub struct GatewayMetrics {
    enrollments: Family<Counter>,
    running: Gauge,
    stages: Family<Histogram>,
    rebinds: Family<Counter>,
    settled: Family<Counter>,
}

impl Default for GatewayMetrics {
    fn default() -> Self {
        let outcomes = [SUCCESS, RESUMED, ABANDONED].iter().chain(ERROR_CODES).map(|o| [*o]);
        Self {
            enrollments: Family::new(
                "gateway_enrollments_total",
                "Enrollments through the gateway, by outcome (success, resumed, abandoned, or the API's error code).",
                &["outcome"],
                outcomes,
                Counter::new,
            ),
            running: Gauge::new(),
            stages: Family::new(
                "gateway_enrollment_stage_duration_seconds",
                "Time per stage of a successful enrollment (control_server is part of run; total is the whole).",
                &["stage"],
                STAGES.iter().map(|s| [*s]),
                || Histogram::new(LATENCY_BUCKETS),
            ),
            rebinds: Family::new(
                "gateway_rebinds_total",
                "SP re-binds of enrolled devices, by outcome (done, failed: retried later).",
                &["outcome"],
                [["done"], ["failed"]],
                Counter::new,
            ),
            settled: Family::new(
                "gateway_in_doubt_settled_total",
                "Enrollments in doubt settled with their device, by outcome.",
                &["outcome"],
                [["committed"], ["rolled_back"], ["still_in_doubt"]],
                Counter::new,
            ),
        }
    }
}

impl GatewayMetrics {
    /// An enrollment starts; the guard records how it ended (`abandoned`
    /// if it is dropped before [`EnrollmentGuard::finish`]).
    pub(crate) fn enrollment(&self) -> EnrollmentGuard<'_> {
        self.running.inc();
        EnrollmentGuard { metrics: self, finished: false }
    }

    pub(crate) fn rebind(&self, done: bool) {
        self.rebinds.get(&[if done { "done" } else { "failed" }]).inc();
    }

    pub(crate) fn settled(&self, outcome: &Settled) {
        let label = match outcome {
            Settled::Committed { .. } => "committed",
            Settled::RolledBack { .. } => "rolled_back",
            Settled::StillInDoubt { .. } => "still_in_doubt",
        };
        self.settled.get(&[label]).inc();
    }

    fn stages(&self, t: &GatewayTimings) {
        let us = [
            t.decode_verify_us,
            t.connect_us,
            t.handshake_us,
            t.prepare_us,
            t.run_us,
            t.control_server_us,
            t.relay_us,
            t.commit_us,
            t.record_us,
            t.total_us,
        ];
        for (stage, us) in STAGES.iter().zip(us) {
            self.stages.get(&[stage]).observe(us as f64 / 1e6);
        }
    }
}

/// One enrollment under way ([`GatewayMetrics::enrollment`]).
pub(crate) struct EnrollmentGuard<'a> {
    metrics: &'a GatewayMetrics,
    finished: bool,
}

impl EnrollmentGuard<'_> {
    pub(crate) fn finish(mut self, outcome: &Result<GatewayEnrollment, GatewayError>) {
        self.finished = true;
        let label = match outcome {
            Ok(e) if e.resumed => RESUMED,
            Ok(e) => {
                self.metrics.stages(&e.timings);
                SUCCESS
            }
            Err(e) => crate::api::answer_for(e).1,
        };
        self.metrics.enrollments.get(&[label]).inc();
    }
}

impl Drop for EnrollmentGuard<'_> {
    fn drop(&mut self) {
        self.metrics.running.dec();
        if !self.finished {
            self.metrics.enrollments.get(&[ABANDONED]).inc();
        }
    }
}

impl Gateway {
    /// The gateway's counters and histograms.
    pub fn metrics(&self) -> &GatewayMetrics {
        &self.metrics
    }

    /// Every metric of the module table, as the text `GET /metrics` serves:
    /// one read of the store (enrollments in doubt), the rest from memory.
    pub async fn render_metrics(&self) -> String {
        let m = &self.metrics;
        let mut out = Exposition::new();
        out.family(&m.enrollments);
        out.gauge_value("gateway_enrollments_running", "Enrollments under way now.", m.running.get() as f64);
        out.family(&m.stages).family(&m.rebinds).family(&m.settled);
        let in_doubt = self.store.in_doubt().await;
        if let Ok(notes) = &in_doubt {
            out.gauge_value(
                "gateway_enrollments_in_doubt",
                "Enrollments whose outcome the gateway lost and still asks the device about.",
                notes.len() as f64,
            );
        }
        out.gauge_value(
            "gateway_store_readable",
            "1 if the gateway's store answered this scrape's read, 0 if not.",
            if in_doubt.is_ok() { 1.0 } else { 0.0 },
        );
        let stream = self.stream_state.borrow().clone();
        out.counter_value("gateway_updates_applied_total", "Pushed updates applied since start.", stream.updates_applied)
            .counter_value(
                "gateway_update_batches_total",
                "Transactions the pushed updates were applied in since start.",
                stream.update_batches,
            )
            .gauge_value(
                "gateway_update_stream_connected",
                "1 while the control server's update stream is up.",
                if stream.connected { 1.0 } else { 0.0 },
            )
            .gauge_value("gateway_update_stream_last_seq", "The last stream position applied.", stream.last_seq as f64);
        out.into_string()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use ed25519_dalek::SigningKey;
    use enrollment_assistant::{
        AccessTechnology, AssistantRuntime, ConfiguredAssistant, NetworkCredentials, Sandbox, SandboxConfig, SpIdentity,
        Timeouts,
    };
    use enrollment_metrics::check;

    use crate::api::serve;
    use crate::api_auth::ApiToken;
    use crate::config::ApiLimits;
    use crate::control::{ControlServer, ControlServerConfig};
    use crate::store::GatewayStore;
    use crate::Gateway;
    use super::STAGES;

    const TOKEN: &str = "metrics-test-token-0123456789";
    const METER: &str = "AC-DE-48-00-00-80";

    fn manufacturer() -> qr_packer::ManufacturerKey {
        qr_packer::ManufacturerKey::from_secret("acme-metrics-test", [7; 32]).unwrap()
    }

    fn label_text() -> String {
        let app = &enrollment_apps::WIFI_METER;
        let mut manifest = qr_packer::manifest::reference(app).unwrap();
        manifest.device_id = Some(METER.into());
        let sealed = enrollment_assistant::label::seal(app.phone, app.device, &manifest, &manufacturer()).unwrap();
        qr_packer::SignedPayload::from_bytes(sealed.signed_bytes().to_vec()).to_text()
    }

    /// A device on a loopback port, enrolled by whoever connects.
    async fn device(dir: &std::path::Path) -> std::net::SocketAddr {
        let store = Arc::new(enrollment_device::DeviceStore::open(&dir.join("device.sqlite")).unwrap());
        let meter: enrollment_device::Eui = METER.parse().unwrap();
        store.provision(meter, AccessTechnology::Wifi).unwrap();
        let sandbox = Arc::new(Sandbox::new(SandboxConfig { max_concurrent_halves: 4, ..SandboxConfig::default() }).unwrap());
        let device = enrollment_device::DeviceRuntime::new(sandbox, store, manufacturer().trusted(), Timeouts::default(), false)
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = device.serve(meter, enrollment_device::Link::tcp(stream)).await;
            }
        });
        addr
    }

    /// A gateway whose phone halves resolve to a configured SP (no control
    /// server is asked), its API on a loopback port.
    async fn gateway(dir: &std::path::Path) -> String {
        let store = GatewayStore::open(&dir.join("gateway.sqlite")).unwrap();
        let control = ControlServer::new(ControlServerConfig {
            timeout: Duration::from_millis(200),
            ..ControlServerConfig::new("http://127.0.0.1:9", "gw-test", "secret")
        })
        .unwrap();
        let services = Arc::new(ConfiguredAssistant {
            location: Some("geo:52.3676,4.9041".into()),
            owner: Some("ACME Utilities".into()),
            networks: vec![NetworkCredentials::Wifi { ssid: "plant-3".into(), passphrase: "correct horse".into() }],
            default_sp: Some(SpIdentity::new("sp-one.example").unwrap()),
            ..Default::default()
        });
        let identity = SigningKey::from_bytes(&[3; 32]);
        let sandbox = Arc::new(Sandbox::new(SandboxConfig { max_concurrent_halves: 4, ..SandboxConfig::default() }).unwrap());
        let assistant = AssistantRuntime::new(sandbox, services, identity.clone(), Timeouts::default()).unwrap();
        let gateway = Gateway::new(assistant, store, control, identity, manufacturer().trusted(), Timeouts::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let token = ApiToken::new(TOKEN).unwrap();
        tokio::spawn(serve(listener, Arc::new(gateway), token, ApiLimits::default(), std::future::pending()));
        format!("http://{addr}")
    }

    async fn scrape(http: &reqwest::Client, base: &str) -> check::Scrape {
        let answer = http.get(format!("{base}/metrics")).bearer_auth(TOKEN).send().await.unwrap();
        assert_eq!(answer.status(), 200);
        let content_type = answer.headers().get("content-type").unwrap().to_str().unwrap().to_owned();
        assert_eq!(content_type, enrollment_metrics::CONTENT_TYPE);
        let text = answer.text().await.unwrap();
        check::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_enrollment_moves_the_counters_and_the_stage_histograms() {
        let dir = tempfile::tempdir().unwrap();
        let device = device(dir.path()).await;
        let base = gateway(dir.path()).await;
        let http = crate::http_client().unwrap();

        // Behind the token, like the rest of the API.
        let anonymous = http.get(format!("{base}/metrics")).send().await.unwrap();
        assert_eq!(anonymous.status(), 401);

        let before = scrape(&http, &base).await;
        assert_eq!(before.value("gateway_enrollments_total", &[("outcome", "success")]), Some(0.0));
        assert_eq!(before.value("gateway_enrollment_stage_duration_seconds_count", &[("stage", "total")]), Some(0.0));

        let enroll = |label: String| {
            let http = http.clone();
            let url = format!("{base}/v1/enroll");
            async move {
                let body = serde_json::json!({"label_text": label, "device": device.to_string()});
                http.post(url).bearer_auth(TOKEN).json(&body).send().await.unwrap()
            }
        };
        let enrolled = enroll(label_text()).await;
        assert_eq!(enrolled.status(), 200, "{}", enrolled.text().await.unwrap());
        let unreadable = enroll("EN1:not base45".into()).await;
        assert_eq!(unreadable.status(), 422);
        // The same label again: the device is sealed, and this gateway's
        // enrollment of it is the answer.
        let again = enroll(label_text()).await;
        assert_eq!(again.status(), 200);
        assert_eq!(again.json::<serde_json::Value>().await.unwrap()["resumed"], true);

        let after = scrape(&http, &base).await;
        let outcome = |o: &str| after.value("gateway_enrollments_total", &[("outcome", o)]);
        assert_eq!(outcome("success"), Some(1.0));
        assert_eq!(outcome("bad_label"), Some(1.0));
        assert_eq!(outcome("resumed"), Some(1.0));
        assert_eq!(outcome("abandoned"), Some(0.0));
        for stage in STAGES {
            let count = after.value("gateway_enrollment_stage_duration_seconds_count", &[("stage", stage)]);
            assert_eq!(count, Some(1.0), "stage {stage}: one successful enrollment");
        }
        assert_eq!(after.value("gateway_enrollments_running", &[]), Some(0.0));
        assert_eq!(after.value("gateway_enrollments_in_doubt", &[]), Some(0.0));
        assert_eq!(after.value("gateway_store_readable", &[]), Some(1.0));
        assert_eq!(after.value("gateway_update_stream_connected", &[]), Some(0.0));
        assert_eq!(after.value("gateway_rebinds_total", &[("outcome", "done")]), Some(0.0));
        assert!(after.has("gateway_in_doubt_settled_total"));
        assert!(after.has("gateway_updates_applied_total") && after.has("gateway_update_batches_total"));
    }
}
