//! The device gateway: the assisting device that stays.
//!
//! A gateway (US 2017/0257341, claims 1–8; US 2025/0254525 as the assisting
//! device) does three things, each in its own module:
//!
//! * keeps a durable table of the devices it serves and their unique
//!   identifiers ([`store`]);
//! * talks to the control server: resolves the SP identity of a device that
//!   appears, and follows the stream of unsolicited association updates
//!   ([`control`]), applying each batch atomically with its stream position;
//! * enrolls devices from their labels, running the phone half with
//!   [`services`] that resolve through the control server and relay to the
//!   SP, and re-binds enrolled devices when their SP changes
//!   (`enrollment_assistant::rebind`).
//!
//! [`Gateway`] ties them together; [`config`] builds one from `gateway.toml`
//! and [`api`] is its local HTTP API, which the `gateway` binary serves.
//!
//! A gateway vendor embeds this crate whole, or takes
//! `enrollment-assistant` alone and brings its own device table and
//! control-server client.

pub mod api;
pub mod api_auth;
pub mod config;
pub mod control;
pub mod device_admin;
pub mod in_doubt;
pub mod metrics;
pub mod openapi;
pub mod services;
pub mod store;
pub mod update_stream;
pub mod uplink;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use serde::Serialize;
use tokio::sync::watch;

use enrollment_assistant::rebind::{NewSp, RebindError, RebindReport, rebind_sp};
use enrollment_assistant::{
    AssistantRuntime, EnrollError, EnrollOptions, EnrollmentReport, LabelError, Link, ScannedApp, StageTimings, Timeouts,
};
use sp_bound_id::{Eui, SpBoundId};
use control::{ControlError, ControlServer};
use store::{Applied, GatewayStore, GatewayStoreError};

/// An HTTP client for the control server and SPs, with the process-wide
/// rustls crypto provider (ring) installed first (reqwest is built without
/// a default one and would panic on the first `https` URL). It follows no
/// redirects (`control_api::http_client`). Fails only if the TLS backend
/// cannot be set up.
pub fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    control_api::http_client::client()
}

/// Why a gateway operation failed.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("the label: {0}")]
    Label(#[from] LabelError),
    #[error("the device at {addr} could not be reached: {reason}")]
    DeviceUnreachable { addr: String, reason: String },
    #[error("enrollment failed: {0}")]
    Enroll(#[from] EnrollError),
    #[error("re-bind failed: {0}")]
    Rebind(#[from] RebindError),
    #[error(transparent)]
    Store(#[from] GatewayStoreError),
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error("the new service provider {sp} could not be told the device's identity and key ({cause}); the re-bind waits until it can")]
    NewSpNotTold { sp: String, cause: String },
    #[error("device {device} did not commit its enrollment ({cause}); its SP was told to drop the key")]
    NotCommitted { device: Eui, cause: String },
    #[error("device {device} may or may not have committed its enrollment ({cause}); the gateway keeps asking it (every retry interval and at restart) and settles the SP's record to match")]
    InDoubt { device: Eui, cause: String },
}

/// What one enrollment through the gateway did, step by step.
#[derive(Debug, Clone, Serialize)]
pub struct GatewayEnrollment {
    pub identifier: String,
    pub public_key: String,
    pub generation: u64,
    pub app_id: String,
    pub signer: String,
    /// The device had committed this enrollment before (an answer lost on
    /// the link); this is that enrollment, as the device holds it.
    pub resumed: bool,
    /// Microseconds per stage.
    pub timings: GatewayTimings,
}

/// Where an enrollment's time went, in microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct GatewayTimings {
    /// Label decoded (and the image read, for a photo), signature verified, split.
    pub decode_verify_us: u64,
    /// TCP connection to the device agent.
    pub connect_us: u64,
    /// Hello → Start sent.
    pub handshake_us: u64,
    /// Phone half from the compiled cache (or compiled).
    pub prepare_us: u64,
    /// Both halves running, including the control-server round trip.
    pub run_us: u64,
    /// Of which: the control server answering resolve.
    pub control_server_us: u64,
    /// Relay of identity and key to the SP.
    pub relay_us: u64,
    /// Commit on the device (one durable transaction) and its answer.
    pub commit_us: u64,
    /// The gateway store recording the result.
    pub record_us: u64,
    pub total_us: u64,
}

/// The gateway.
pub struct Gateway {
    assistant: AssistantRuntime,
    store: GatewayStore,
    control: ControlServer,
    identity: SigningKey,
    trusted: qr_packer::TrustedKeys,
    timeouts: Timeouts,
    stream_state: watch::Sender<StreamState>,
    /// Most pushed updates applied in one transaction.
    update_batch: usize,
    /// Held while pending re-binds are worked off: the update follower and
    /// the retry loop must not both re-bind the same device (each re-bind is
    /// a write on the device, two would count two generations).
    rebinding: tokio::sync::Mutex<()>,
    /// Held while enrollments in doubt are settled (`in_doubt`).
    settling: tokio::sync::Mutex<()>,
    /// The devices being enrolled right now, whose notes in doubt the
    /// settling pass leaves to their enrollment.
    in_flight: in_doubt::InFlight,
    /// Tells SPs to drop keys that no device committed (`in_doubt`).
    services: Option<Arc<services::GatewayServices>>,
    /// What `GET /metrics` serves ([`metrics`]).
    metrics: metrics::GatewayMetrics,
}

/// Where the gateway is in the control server's update stream.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct StreamState {
    pub connected: bool,
    /// The control-server replica the stream is (or was last) served by.
    pub control_url: Option<String>,
    pub last_seq: u64,
    pub last_error: Option<String>,
    pub updates_applied: u64,
    /// Transactions the pushed updates were applied in.
    pub update_batches: u64,
    pub rebinds_done: u64,
}

impl Gateway {
    /// A gateway; `assistant` must have been built with these `services`.
    pub fn new(
        assistant: AssistantRuntime,
        store: GatewayStore,
        control: ControlServer,
        identity: SigningKey,
        trusted: qr_packer::TrustedKeys,
        timeouts: Timeouts,
    ) -> Self {
        let (stream_state, _) = watch::channel(StreamState::default());
        Self {
            assistant,
            store,
            control,
            identity,
            trusted,
            timeouts,
            stream_state,
            update_batch: MAX_UPDATE_BATCH,
            rebinding: tokio::sync::Mutex::new(()),
            settling: tokio::sync::Mutex::new(()),
            in_flight: in_doubt::InFlight::default(),
            services: None,
            metrics: metrics::GatewayMetrics::default(),
        }
    }

    /// The services the assistant runs phone halves with, for what the
    /// gateway does outside an enrollment: withdrawing from an SP a key that
    /// no device committed ([`in_doubt`]). Without them such a key stays
    /// noted and the note is never settled.
    pub fn with_services(mut self, services: Arc<services::GatewayServices>) -> Self {
        self.services = Some(services);
        self
    }

    /// Applies at most `n` pushed updates per transaction (default
    /// [`MAX_UPDATE_BATCH`]); smaller batches mean more fsyncs.
    pub fn with_update_batch(mut self, n: usize) -> Self {
        self.update_batch = n.clamp(1, MAX_UPDATE_BATCH);
        self
    }

    pub fn store(&self) -> &GatewayStore {
        &self.store
    }

    /// The stream position and health, as it changes.
    pub fn stream_state(&self) -> watch::Receiver<StreamState> {
        self.stream_state.subscribe()
    }

    /// Enrolls the device whose local link is at `device` with the app on
    /// `label`: verify and split the label, connect, run both halves (the
    /// phone half resolves the SP through the control server), relay, commit
    /// on the device, record the identifier here.
    ///
    /// Logs one INFO line with the outcome (identifier and stage timings, or
    /// the error).
    pub async fn enroll(&self, label: Label, device: SocketAddr) -> Result<GatewayEnrollment, GatewayError> {
        let counted = self.metrics.enrollment();
        let outcome = self.enroll_once(label, device).await;
        counted.finish(&outcome);
        match &outcome {
            Ok(e) => {
                let t = &e.timings;
                let ms = |us: u64| us / 1000;
                tracing::info!(
                    %device, identifier = %e.identifier, generation = e.generation, app = %e.app_id, resumed = e.resumed,
                    total_ms = ms(t.total_us), resolve_ms = ms(t.control_server_us), relay_ms = ms(t.relay_us),
                    commit_ms = ms(t.commit_us), "enrolled"
                );
            }
            Err(error) => tracing::info!(%device, %error, "enrollment failed"),
        }
        outcome
    }

    async fn enroll_once(&self, label: Label, device: SocketAddr) -> Result<GatewayEnrollment, GatewayError> {
        let started = Instant::now();
        let t = Instant::now();
        let app = match label {
            Label::Text(text) => ScannedApp::from_text(&text, &self.trusted)?,
            Label::Image(bytes) => ScannedApp::from_image_async(bytes, &self.trusted).await?,
        };
        let decode_verify = t.elapsed();

        let t = Instant::now();
        let link = self.connect(&device.to_string()).await?;
        let connect = t.elapsed();

        // Until this returns, a note this enrollment writes is its own to settle.
        let _in_flight = self.in_flight.start(device.to_string());
        let journal = Arc::new(in_doubt::EnrollJournal::new(self.store.clone(), device.to_string()));
        let options = EnrollOptions { journal: Some(in_doubt::journal(&journal)), ..EnrollOptions::default() };
        let report: EnrollmentReport = match self.assistant.enroll(link, &app, options).await {
            Ok(report) => report,
            Err(e) => return self.after_failed_enrollment(e, journal.noted(), &app, device, started).await,
        };

        let t = Instant::now();
        // What the device committed; the store may record another SP if a
        // pushed update moved the device meanwhile (then a re-bind follows).
        let id = report.relayed.sp_bound_id.clone();
        self.store
            .record_enrolled(report.relayed.sp_bound_id.clone(), report.relayed.public_key, Some(device.to_string()), report.generation)
            .await?;
        let record = t.elapsed();
        let StageTimings { handshake, prepare, run, resolve, device: _, relay, commit } = report.timings;
        let us = |d: Duration| d.as_micros() as u64;
        Ok(GatewayEnrollment {
            identifier: id.to_string(),
            public_key: hex::encode(report.relayed.public_key),
            generation: report.generation,
            app_id: app.manifest().app_id.clone(),
            signer: app.signer().to_string(),
            resumed: false,
            timings: GatewayTimings {
                decode_verify_us: us(decode_verify),
                connect_us: us(connect),
                handshake_us: us(handshake),
                prepare_us: us(prepare),
                run_us: us(run),
                control_server_us: us(resolve),
                relay_us: us(relay),
                commit_us: us(commit),
                record_us: us(record),
                total_us: us(started.elapsed()),
            },
        })
    }

    /// An enrollment ended in `error`. If it may have committed, ask the
    /// device now and report what it holds; if it surely did not but the SP
    /// may have been told, take the key back; if the device is sealed and
    /// this gateway has an enrollment of it on record (noted in doubt or
    /// recorded), that enrollment is the answer.
    async fn after_failed_enrollment(
        &self,
        error: EnrollError,
        noted: Option<store::InDoubt>,
        app: &ScannedApp,
        device: SocketAddr,
        started: Instant,
    ) -> Result<GatewayEnrollment, GatewayError> {
        let resumed = |identifier: String, public_key: [u8; 32], generation: u64| GatewayEnrollment {
            identifier,
            public_key: hex::encode(public_key),
            generation,
            app_id: app.manifest().app_id.clone(),
            signer: app.signer().to_string(),
            resumed: true,
            timings: GatewayTimings { total_us: started.elapsed().as_micros() as u64, ..GatewayTimings::default() },
        };
        if matches!(error, EnrollError::DeviceSealed) {
            if let Some(done) = self.enrolled_before(device).await? {
                let (identifier, key, generation) = done;
                return Ok(resumed(identifier, key, generation));
            }
            return Err(error.into());
        }
        let Some(note) = noted else { return Err(error.into()) };
        if !error.outcome_unknown() {
            // Commit was never sent (or the device's store refused it): the
            // device is unchanged, so only the SP may need to forget the key.
            if let in_doubt::Settled::StillInDoubt { reason } = self.roll_back(&note).await? {
                tracing::warn!(device = %note.device_id, %reason, "a relayed key could not be withdrawn yet; retried later");
            }
            return Err(error.into());
        }
        match self.settle(&note).await? {
            in_doubt::Settled::Committed { identifier, generation } => {
                tracing::info!(device = %note.device_id, %identifier, "the answer to Commit was lost; the device had committed");
                Ok(resumed(identifier, note.public_key, generation))
            }
            in_doubt::Settled::RolledBack { .. } => {
                Err(GatewayError::NotCommitted { device: note.device_id, cause: error.to_string() })
            }
            in_doubt::Settled::StillInDoubt { reason } => {
                Err(GatewayError::InDoubt { device: note.device_id, cause: format!("{error}; asking the device: {reason}") })
            }
        }
    }

    /// For a sealed device at `addr`: the enrollment this gateway has of it
    /// (a note in doubt, or a recorded enrollment), if the device confirms
    /// it holds that key. Returns identifier, key and generation.
    async fn enrolled_before(&self, addr: SocketAddr) -> Result<Option<(String, [u8; 32], u64)>, GatewayError> {
        let addr = addr.to_string();
        if let Some(note) = self.store.in_doubt().await?.into_iter().find(|n| n.link_addr == addr) {
            return Ok(match self.settle(&note).await? {
                in_doubt::Settled::Committed { identifier, generation } => Some((identifier, note.public_key, generation)),
                _ => None,
            });
        }
        let recorded = self.store.devices().await?.into_iter().find(|d| {
            d.state == store::DeviceStatus::Enrolled && d.link_addr.as_deref() == Some(addr.as_str())
        });
        let Some(recorded) = recorded else { return Ok(None) };
        let mut key = [0u8; 32];
        if recorded.public_key.as_deref().map(|k| hex::decode_to_slice(k, &mut key)).is_none_or(|r| r.is_err()) {
            return Ok(None);
        }
        let link = self.connect(&addr).await?;
        let ours = self.identity.verifying_key().to_bytes();
        match enrollment_assistant::status::ask_status(link, &self.identity, self.timeouts.protocol).await {
            Ok(status) if status.holds(&key, &ours) => {
                let identifier = recorded.identifier.map(|i| i.to_string()).unwrap_or_default();
                Ok(Some((identifier, key, status.generation)))
            }
            _ => Ok(None),
        }
    }

    /// Tells every reachable enrolled device whose SP changed about it.
    /// Devices that cannot be reached stay pending and are retried later.
    /// One caller at a time: a second waits, then finds the first's work done.
    pub async fn rebind_pending(&self) -> Result<Vec<Result<RebindReport, (Eui, GatewayError)>>, GatewayError> {
        let _one_at_a_time = self.rebinding.lock().await;
        let mut results = Vec::new();
        for device in self.store.pending_rebinds().await? {
            let (Some(id), Some(addr)) = (device.identifier.clone(), device.link_addr.clone()) else { continue };
            let outcome = self.rebind_one(&id, &device.sp_endpoint, &device.sp_public_key, &addr).await;
            if let Ok(report) = &outcome {
                self.store.rebind_done(report.sp_bound_id.clone(), report.generation).await?;
                self.stream_state.send_modify(|s| s.rebinds_done += 1);
            }
            results.push(outcome.map_err(|e| (device.device_id, e)));
        }
        Ok(results)
    }

    /// Relays the enrolled device's key under its new identifier `id` to the
    /// new SP at `endpoint` (the same report as at enrollment). A device
    /// whose key the gateway does not hold (enrolled elsewhere) is not told
    /// about: nothing to relay.
    async fn tell_new_sp(&self, id: &SpBoundId, endpoint: &Option<String>) -> Result<(), GatewayError> {
        let Some(services) = &self.services else { return Ok(()) };
        let record = self.store.device(*id.device()).await?;
        let mut key = [0u8; 32];
        let Some(hex_key) = record.and_then(|r| r.public_key) else { return Ok(()) };
        if hex::decode_to_slice(&hex_key, &mut key).is_err() {
            return Ok(());
        }
        let device = enrollment_assistant::RelayedDevice { sp_bound_id: id.clone(), public_key: key, sp_endpoint: endpoint.clone() };
        enrollment_assistant::AssistantServices::relay(services.as_ref(), device)
            .await
            .map_err(|e| GatewayError::NewSpNotTold { sp: id.sp().to_string(), cause: e.to_string() })
    }

    /// Opens the local link to the device at `addr`.
    async fn connect(&self, addr: &str) -> Result<Link, GatewayError> {
        let unreachable = |reason: String| GatewayError::DeviceUnreachable { addr: addr.to_string(), reason };
        let stream = tokio::time::timeout(self.timeouts.protocol, tokio::net::TcpStream::connect(addr))
            .await
            .map_err(|_| unreachable("timed out".into()))?
            .map_err(|e| unreachable(e.to_string()))?;
        Ok(Link::tcp(stream))
    }

    /// Moves the device at `addr` to `id`'s SP with that SP's endpoint and key
    /// as the store holds them from the control server (all three replace
    /// the device's binding; absent ones are sent as absent, never the old
    /// SP's).
    async fn rebind_one(
        &self,
        id: &SpBoundId,
        sp_endpoint: &Option<String>,
        sp_public_key: &Option<String>,
        addr: &str,
    ) -> Result<RebindReport, GatewayError> {
        let new = NewSp {
            sp: id.sp().clone(),
            endpoint: sp_endpoint.clone(),
            public_key: sp_public_key.as_deref().and_then(store::parse_sp_key),
        };
        let failed = |_: &GatewayError| self.metrics.rebind(false);
        // The new SP learns the device's identity and key before the device
        // moves to it, so it accepts the device's messages from the first one.
        self.tell_new_sp(id, sp_endpoint).await.inspect_err(failed)?;
        let link = self.connect(addr).await.inspect_err(failed)?;
        let report = rebind_sp(link, &self.identity, &new, self.timeouts.protocol).await.map_err(GatewayError::from).inspect_err(failed)?;
        self.metrics.rebind(true);
        tracing::info!(device = %report.device, id = %report.sp_bound_id, "device re-bound");
        Ok(report)
    }

    /// Every `every`, settles enrollments in doubt ([`in_doubt`]) and tells
    /// enrolled devices whose SP changed while they were out of reach.
    pub async fn retry_rebinds(self: Arc<Self>, mut stop: watch::Receiver<bool>, every: Duration) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => return,
            }
            if let Err(e) = self.settle_in_doubt().await {
                tracing::warn!(error = %e, "settling enrollments in doubt failed");
            }
            match self.rebind_pending().await {
                Ok(results) => {
                    for result in results {
                        if let Err((device, e)) = result {
                            tracing::debug!(%device, error = %e, "re-bind still pending");
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "listing pending re-binds failed"),
            }
        }
    }

    /// Follows the control server's update stream until `shutdown` fires:
    /// connects from the last applied position, applies what arrives in
    /// batches (each batch and the new position in one transaction),
    /// acknowledges, re-binds reachable devices, and reconnects after a
    /// failure with a growing pause.
    pub async fn follow_updates(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut pause = Duration::from_millis(100);
        loop {
            let result = tokio::select! {
                r = self.follow_once() => r,
                _ = shutdown.changed() => return,
            };
            let error = match result {
                Ok(()) => "the control server closed the stream".to_string(),
                Err(e) => e.to_string(),
            };
            // A stream that was up: reconnect (to the next replica) at once
            // and start the back-off afresh; only failures to connect grow it.
            if self.stream_state.borrow().connected {
                pause = Duration::from_millis(100);
            }
            tracing::warn!(%error, "update stream interrupted; reconnecting");
            self.stream_state.send_modify(|s| {
                s.connected = false;
                s.last_error = Some(error.clone());
            });
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.changed() => return,
            }
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    }

    async fn follow_once(&self) -> Result<(), GatewayError> {
        let after = self.store.last_seq().await?;
        // Batches: whatever arrived while the previous batch was applied
        // (up to `update_batch`), one transaction each; acknowledged in the
        // background, per batch (`control::UpdateBatches`, `Acknowledger`).
        let mut batches = self.control.update_batches(after, self.update_batch).await?;
        let acker = self.control.acknowledger();
        self.stream_state.send_modify(|s| {
            s.connected = true;
            s.control_url = Some(self.control.current_url().to_owned());
            s.last_seq = after;
            s.last_error = None;
        });
        tracing::info!(after, url = self.control.current_url(), "following the control server's updates");
        while let Some(batch) = batches.next().await {
            let applied: Applied = self.store.apply_updates(batch?).await?;
            self.stream_state.send_modify(|s| {
                s.last_seq = applied.last_seq;
                s.updates_applied += applied.applied as u64;
                s.update_batches += 1;
            });
            acker.ack(applied.last_seq);
            if applied.rebinds > 0 {
                for result in self.rebind_pending().await? {
                    if let Err((device, e)) = result {
                        tracing::warn!(%device, error = %e, "re-bind pending; device not reachable now");
                    }
                }
            }
        }
        Ok(())
    }
}

/// Most pushed updates applied in one transaction.
pub const MAX_UPDATE_BATCH: usize = 1024;

/// A label as the gateway receives it.
pub enum Label {
    /// The payload text (what the QR code holds).
    Text(String),
    /// A photo or scan of the printed label (PNG or JPEG).
    Image(Vec<u8>),
}
