//! The device side of an enrollment: [`DeviceRuntime`] serves sessions on a
//! [`Link`], one at a time per device.
//!
//! The device writes nothing until the assistant says `Commit`, and then
//! writes everything in one durable transaction ([`DeviceStore::commit`]).
//! Any failure before that (a half that traps, an abort, a lost link)
//! leaves the device exactly as it was, and the assistant is told why with
//! a stable failure code.

use std::sync::Arc;

use enrollment_host::bindings::device::DeviceHalfPre;
use enrollment_host::bindings::operational::OperationalPre;
use enrollment_host::frame::{
    Enrolled, Frame, Hello, PROTOCOL_VERSION, RebindSp, Signature, StatusRequest, frame_name, rebind_message,
    verify_signature,
};
use enrollment_host::link::{Link, LinkFailure};
use enrollment_host::sandbox::cache::ComponentCache;
use enrollment_host::sandbox::{HalfKind, PreparedHalf, Sandbox, SetupError};
use enrollment_host::session::{self, SessionClock, Timeouts, last_word, within_deadline};
use enrollment_host::trace::{HalfTrace, Trace};
use enrollment_host::transport::TransportEnd;
use qr_packer::TrustedKeys;
use sp_bound_id::Eui;
use wasmtime::component::Linker;

use crate::admission::{Admitted, UnboundLabels, admit_device_half};
use crate::capability::DeviceHost;
use crate::operational::OperationalHost;
use crate::failure::DeviceFailure;
use crate::store::{DeviceState, DeviceStore, Enrollment, StoreError};

/// What a device did in one session.
#[derive(Debug, Clone)]
pub struct DeviceReport {
    pub enrolled: Enrolled,
    pub generation: u64,
    /// A sealed device was enrolled again or moved to another SP.
    pub rebind: bool,
    /// Only the SP part of the identifier changed (an SP re-bind).
    pub sp_only: bool,
    /// Nothing changed: the assistant only asked what the device holds
    /// (`enrolled` is empty if the device never enrolled).
    pub status_only: bool,
}

/// The device side: runs device halves and owns the device's store.
///
/// One runtime can serve one real device or a simulated fleet; each session
/// names the device it speaks for.
pub struct DeviceRuntime {
    sandbox: Arc<Sandbox>,
    linker: Linker<DeviceHost>,
    cache: ComponentCache<PreparedHalf<DeviceHalfPre<DeviceHost>>>,
    store: Arc<DeviceStore>,
    /// The manufacturer keys whose apps this device runs.
    trusted: TrustedKeys,
    timeouts: Timeouts,
    /// Keep compiled device halves after a session (a simulated fleet); a
    /// single device drops them with the rest of the enrollment information.
    keep_compiled: bool,
    /// Whether labels that name no device are run (refused by default).
    unbound: UnboundLabels,
    /// Record what device halves do into this trace (simulator, tests).
    trace: Option<Trace>,
    /// Sessions and half runs, for `GET /metrics` ([`crate::metrics`]).
    metrics: crate::metrics::DeviceMetrics,
    /// Operational apps are checked against their world at admission.
    operational_linker: Linker<OperationalHost>,
    operational_cache: ComponentCache<PreparedHalf<OperationalPre<OperationalHost>>>,
}

impl DeviceRuntime {
    pub fn new(
        sandbox: Arc<Sandbox>,
        store: Arc<DeviceStore>,
        trusted: TrustedKeys,
        timeouts: Timeouts,
        keep_compiled: bool,
    ) -> Result<Self, SetupError> {
        let linker = DeviceHost::linker(sandbox.engine())
            .map_err(|e| SetupError::Linker { world: "device-half", reason: format!("{e:#}") })?;
        let cache = ComponentCache::new(sandbox.config().cache_capacity);
        let operational_linker = OperationalHost::linker(sandbox.engine())
            .map_err(|e| SetupError::Linker { world: "operational", reason: format!("{e:#}") })?;
        let operational_cache = ComponentCache::new(sandbox.config().cache_capacity);
        let unbound = UnboundLabels::Refuse;
        Ok(Self {
            sandbox,
            linker,
            cache,
            store,
            trusted,
            timeouts,
            keep_compiled,
            unbound,
            trace: None,
            metrics: crate::metrics::DeviceMetrics::default(),
            operational_linker,
            operational_cache,
        })
    }

    /// Also runs labels that name no device (packed `--unbound`), which are
    /// refused by default: see [`crate::admission`].
    pub fn accept_unbound_labels(mut self) -> Self {
        self.unbound = UnboundLabels::Accept;
        self
    }

    /// Records what device halves do (items, messages, staged writes,
    /// refusals, diagnostics) into `trace`.
    pub fn with_trace(mut self, trace: Trace) -> Self {
        self.trace = Some(trace);
        self
    }

    /// The device store.
    pub fn store(&self) -> &Arc<DeviceStore> {
        &self.store
    }

    /// Sessions and half runs so far ([`crate::metrics`]).
    pub fn metrics(&self) -> &crate::metrics::DeviceMetrics {
        &self.metrics
    }

    /// The compiled device halves.
    pub fn cache(&self) -> &ComponentCache<PreparedHalf<DeviceHalfPre<DeviceHost>>> {
        &self.cache
    }

    /// Serves one enrollment session for `device` over `link`. On any failure
    /// the assistant is told why and the device's store is unchanged.
    pub async fn serve(&self, device: Eui, mut link: Link) -> Result<DeviceReport, DeviceFailure> {
        let clock = session::start(&mut link, self.timeouts);
        let result = self.session(device, &mut link, clock).await;
        self.metrics.session(&result);
        if let Err(failure) = &result {
            tracing::info!(%device, %failure, "enrollment failed; device unchanged");
            let _ = link.tx.send_last_word(Frame::Failed(failure.to_wire())).await;
        }
        result
    }

    async fn session(&self, device: Eui, link: &mut Link, clock: SessionClock) -> Result<DeviceReport, DeviceFailure> {
        let state = self
            .store
            .state(&device)
            .map_err(store_failure)?
            .ok_or_else(|| DeviceFailure::Store(format!("device {device} is not provisioned in this store")))?;
        let mut nonce = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
        let hello = Hello {
            protocol: PROTOCOL_VERSION,
            device_id: device.as_bytes().to_vec(),
            access: state.access.to_string(),
            sealed: state.sealed,
            nonce,
        };
        link.tx.send(Frame::Hello(hello)).await.map_err(protocol)?;
        let start = match clock.phase().next_frame(link).await.map_err(protocol)? {
            Frame::Start(start) => start,
            Frame::RebindSp(request) => return self.rebind_sp(device, &state, &nonce, &request, link).await,
            Frame::StatusRequest(request) => return self.status(device, &state, &nonce, &request, link).await,
            Frame::Abort(why) => return Err(DeviceFailure::Aborted(why)),
            other => return Err(DeviceFailure::Protocol(format!("expected Start, got {}", frame_name(&other)))),
        };
        let rebind = state.sealed;
        if rebind {
            let Some(Signature(sig)) = &start.rebind else {
                return Err(DeviceFailure::Sealed);
            };
            let authorized = state.enrolled_by == Some(start.assistant_key)
                && verify_signature(&start.assistant_key, &rebind_message(device.as_bytes(), &nonce), sig);
            if !authorized {
                return Err(DeviceFailure::BadRebindAuthorization);
            }
        }

        // The device trusts its manufacturer, not the assistant: the payload
        // must verify with the device's own keys and name this device.
        let Admitted { device_half, manifest, operational } =
            admit_device_half(start.payload, &self.trusted, device, state.access, self.unbound)?;
        // The operational app is checked now, before anything is staged: an
        // app of the wrong world fails the enrollment, not a later activation.
        if let Some(app) = &operational {
            let checked = self
                .sandbox
                .prepare(&self.operational_cache, HalfKind::Operational, app, &self.operational_linker, OperationalPre::new)
                .await
                .map_err(DeviceFailure::Half)?;
            if !self.keep_compiled {
                self.operational_cache.remove(&checked.digest);
            }
        }
        let prepared = self
            .sandbox
            .prepare(&self.cache, HalfKind::Device, &device_half, &self.linker, DeviceHalfPre::new)
            .await
            .map_err(DeviceFailure::Half)?;
        // Enrollment information is not kept: the payload went into the
        // check above, and the device half goes now.
        drop(device_half);

        let trace = HalfTrace::new(self.trace.clone(), HalfKind::Device);
        let lent = std::mem::replace(link, dead_link());
        let transport = TransportEnd::new(lent, HalfKind::Device, self.timeouts.receive, trace);
        let max_memory = self.sandbox.config().max_memory_bytes;
        let host = DeviceHost::new(transport, manifest, device, state.access, max_memory);
        let mut store = self.sandbox.store(host);
        let until = clock.half_until(self.sandbox.config().half_deadline);
        let ran = std::time::Instant::now();
        let result = within_deadline(HalfKind::Device, until, async {
            let instance = prepared.pre.instantiate_async(&mut store).await?;
            instance.call_enroll(&mut store).await
        })
        .await;
        self.metrics.half_ran(ran.elapsed());
        let outcome = self.sandbox.outcome(HalfKind::Device, &mut store, result);
        let host = store.into_data();
        let outcome = outcome.map_err(|e| host.transport.explain(e));
        let staged = host.staged;
        let (returned, control, failure) = host.transport.into_parts();
        *link = returned;
        let control = last_word(link, control, failure.is_some()).await;
        if !self.keep_compiled {
            self.cache.remove(&prepared.digest);
        }
        drop(prepared);

        if let Some(Frame::Abort(why)) = control {
            return Err(DeviceFailure::Aborted(why));
        }
        outcome.map_err(DeviceFailure::Half)?;
        let (Some(sp_bound_id), Some(signing_key)) = (staged.sp_bound_id, staged.signing_key) else {
            return Err(DeviceFailure::Incomplete("an SP-bound identifier and a key pair".into()));
        };
        if !staged.seal_requested {
            return Err(DeviceFailure::Incomplete("asking to be sealed".into()));
        }
        let enrolled =
            Enrolled { sp_bound_id: sp_bound_id.to_string(), public_key: signing_key.verifying_key().to_bytes() };
        link.tx.send(Frame::ReadyToCommit(enrolled.clone())).await.map_err(protocol)?;

        // One deadline for the whole wait: stray frames do not restart it.
        match clock.phase().next_protocol_frame(link).await.map_err(protocol)? {
            Frame::Commit => {}
            Frame::Abort(why) => return Err(DeviceFailure::Aborted(why)),
            other => {
                return Err(DeviceFailure::Protocol(format!("expected Commit, got {}", frame_name(&other))));
            }
        }
        let network = match staged.network.map(|n| n.encode()) {
            Some(Ok(bytes)) => Some(bytes),
            Some(Err(e)) => return Err(DeviceFailure::Store(format!("staged credentials: {e}"))),
            None => None,
        };
        let receipt = self
            .store
            .commit(Enrollment {
                device,
                expected_generation: state.generation,
                allow_sealed: rebind,
                sp_bound_id,
                signing_key,
                network,
                owner: staged.owner,
                location: staged.location,
                name: staged.name,
                sp_endpoint: staged.binding.as_ref().and_then(|b| b.endpoint.clone()),
                sp_public_key: staged.binding.as_ref().and_then(|b| b.public_key),
                config: staged.config,
                operational,
                enrolled_by: start.assistant_key,
                sealed: true,
            })
            .await
            .map_err(store_failure)?;
        tracing::info!(%device, id = %enrolled.sp_bound_id, generation = receipt.generation, "enrolled and sealed");
        let _ = link.tx.send(Frame::Committed { enrolled: enrolled.clone(), generation: receipt.generation }).await;
        Ok(DeviceReport { enrolled, generation: receipt.generation, rebind, sp_only: false, status_only: false })
    }
}

impl DeviceRuntime {
    /// Moves this enrolled device to another SP, if the assistant on record
    /// asked for it on this connection (see [`crate::rebind`]).
    async fn rebind_sp(
        &self,
        device: Eui,
        state: &DeviceState,
        nonce: &[u8; 32],
        request: &RebindSp,
        link: &mut Link,
    ) -> Result<DeviceReport, DeviceFailure> {
        let new = crate::rebind::authorize(&device, state, nonce, request)?;
        let receipt = self
            .store
            .rebind_sp(device, new.clone(), request.sp_endpoint.clone(), request.sp_public_key, state.generation)
            .await
            .map_err(store_failure)?;
        tracing::info!(%device, id = %new, generation = receipt.generation, "re-bound to another service provider");
        let _ = link.tx.send(Frame::Rebound { sp_bound_id: new.to_string(), generation: receipt.generation }).await;
        Ok(DeviceReport {
            enrolled: crate::rebind::enrolled(&new, state),
            generation: receipt.generation,
            rebind: true,
            sp_only: true,
            status_only: false,
        })
    }
}

impl DeviceRuntime {
    /// Tells the assistant on record what this device committed (see
    /// [`crate::status`]). Writes nothing.
    async fn status(
        &self,
        device: Eui,
        state: &DeviceState,
        nonce: &[u8; 32],
        request: &StatusRequest,
        link: &mut Link,
    ) -> Result<DeviceReport, DeviceFailure> {
        let key = self.store.private_key(&device).map_err(store_failure)?;
        let status = crate::status::answer(&device, state, key.as_ref(), nonce, request)?;
        drop(key);
        tracing::debug!(%device, generation = status.generation, "status asked");
        let report = DeviceReport {
            enrolled: status.enrolled.clone().unwrap_or(Enrolled { sp_bound_id: String::new(), public_key: [0; 32] }),
            generation: status.generation,
            rebind: false,
            sp_only: false,
            status_only: true,
        };
        let _ = link.tx.send_last_word(Frame::Status(status)).await;
        Ok(report)
    }
}

fn store_failure(e: StoreError) -> DeviceFailure {
    match e {
        StoreError::Sealed(_) => DeviceFailure::Sealed,
        StoreError::Conflict { .. } => DeviceFailure::Conflict,
        other => DeviceFailure::Store(other.to_string()),
    }
}

fn protocol(e: LinkFailure) -> DeviceFailure {
    DeviceFailure::Protocol(e.to_string())
}

/// A placeholder while the real link is lent to the device half's transport.
fn dead_link() -> Link {
    let (a, _b) = Link::memory_pair();
    a
}
