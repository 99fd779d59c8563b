//! Administration of a control server: the mapping table, SPs and gateways,
//! as the `control-server` CLI, the admin HTTP API (`/v1/admin/…`) and the
//! web console (`/console/…`) see them. One implementation ([`Admin`]) for
//! all three, so they cannot disagree.
//!
//! Why it is shaped this way:
//! * An admin change of a device's SP is an association change like an SP's
//!   hand-over: it goes through [`Store::apply_changes`] (one transaction:
//!   mapping, history, the gateways' outbox), with `changed_by = admin:<actor>`.
//! * The CLI writes to the database of a running server from another
//!   process. The server follows `history` and `admin_log` (module `follow`) and
//!   drops the cached rows they name within about a second
//!   (every 500 ms), instead of waiting for
//!   `policy.mapping_cache_ttl_ms`; a change made through the admin API of a
//!   replica invalidates that replica's cache at once.
//! * The admin credential is its own, distinct from every gateway's: one
//!   token, stored as a salted SHA-256 (`control-server admin-token`),
//!   presented as `Authorization: Bearer …` and compared in constant time
//!   ([`auth`]). Without one the admin API and the console are off.

pub mod auth;
pub mod csv;
pub(crate) mod follow;
pub(crate) mod http;
pub(crate) mod journal;
pub(crate) mod presence;

pub use http::ADMIN_ROUTES;

use std::collections::{BTreeMap, HashSet};
use std::str::FromStr;

use serde::Serialize;
use sp_bound_id::{AccessTechnology, Eui, SpIdentity};

use crate::clock;
use crate::mapping::MappingTable;
use crate::outbox::Notifier;
use crate::state::ServerState;
use crate::store::{
    ChangeError, ChangeOutcome, ChangeSet, GatewayStatus, HistoryRow, MappingFilter, MappingRow, PushRule, SpRecord,
    Store, StoreError,
};

/// Hand-overs kept in the hand-over log (accepted and refused together).
pub const HANDOVER_LOG_KEEP: i64 = 1000;
/// Most rows one listing returns.
pub const MAX_PAGE: i64 = 1000;
/// Rows one CSV import may hold.
pub const MAX_IMPORT_ROWS: usize = 100_000;

/// Why an admin operation was refused or failed. Each message says what to
/// do next.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The input is not usable (a flag, a field, a query).
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    InvalidDeviceId(String),
    #[error("{0}")]
    UnknownDevice(String),
    /// `sp show` of an SP that is not registered.
    #[error("{0}")]
    UnknownSp(String),
    /// A mapping names an SP that is not registered.
    #[error("{0}")]
    UnregisteredSp(String),
    #[error("{0}")]
    UnknownGateway(String),
    /// A CSV import with bad rows: every bad line (up to a limit), nothing imported.
    #[error("{}", csv_errors_text(.0))]
    Csv(Vec<csv::LineError>),
    #[error("the change was refused: {0}")]
    Change(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn csv_errors_text(errors: &[csv::LineError]) -> String {
    let mut text = format!("{} bad row(s), nothing was imported; fix them and import the file again:", errors.len());
    for e in errors.iter().take(20) {
        text.push_str(&format!("\n  line {}: {}", e.line, e.message));
    }
    if errors.len() > 20 {
        text.push_str(&format!("\n  … and {} more", errors.len() - 20));
    }
    text
}

impl From<ChangeError> for AdminError {
    fn from(e: ChangeError) -> Self {
        match e {
            ChangeError::Store(e) => AdminError::Store(e),
            other => AdminError::Change(other.to_string()),
        }
    }
}

/// One device to add or update.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingInput {
    pub device_id: String,
    pub sp: String,
    #[serde(default)]
    pub service_type: Option<String>,
    #[serde(default)]
    pub access: Option<String>,
}

/// A mapping row as shown: times as RFC 3339.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MappingView {
    pub device_id: String,
    pub sp: String,
    pub service_type: Option<String>,
    pub access: Option<String>,
    pub gateways: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
    pub validated_at: String,
}

impl From<&MappingRow> for MappingView {
    fn from(r: &MappingRow) -> Self {
        Self {
            device_id: r.device_id.clone(),
            sp: r.sp.clone(),
            service_type: r.service_type.clone(),
            access: r.access.clone(),
            gateways: r.gateways.clone(),
            created_at: clock::rfc3339(r.created_at),
            updated_at: clock::rfc3339(r.updated_at),
            validated_at: clock::rfc3339(r.validated_at),
        }
    }
}

/// One page of a listing.
#[derive(Debug, Clone, Serialize)]
pub struct MappingPage {
    pub mappings: Vec<MappingView>,
    /// Rows matching the filter in all.
    pub total: i64,
    /// Pass as `after` for the next page; `None` on the last.
    pub next: Option<String>,
}

/// A history row as shown.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryView {
    pub old_sp: Option<String>,
    pub new_sp: String,
    pub changed_by: String,
    pub message_id: Option<String>,
    pub at: String,
}

impl From<&HistoryRow> for HistoryView {
    fn from(h: &HistoryRow) -> Self {
        Self {
            old_sp: h.old_sp.clone(),
            new_sp: h.new_sp.clone(),
            changed_by: h.changed_by.clone(),
            message_id: h.message_id.clone(),
            at: clock::rfc3339(h.at),
        }
    }
}

/// An SP as shown.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpView {
    pub identity: String,
    pub base_url: String,
    /// Ed25519, hex: verifies its signed hand-overs.
    pub public_key: String,
    /// Where its devices and gateways reach it; `None`: not registered.
    pub endpoint: Option<String>,
    /// Ed25519, hex: the key devices verify it with (its `device_public_key`,
    /// else `public_key`).
    pub device_public_key: String,
    pub may_release: bool,
    pub may_move_to: Vec<String>,
    pub may_claim: bool,
    /// Devices it holds.
    pub devices: i64,
}

impl SpView {
    fn new(sp: &SpRecord, devices: i64) -> Self {
        Self {
            identity: sp.identity.clone(),
            base_url: sp.base_url.clone(),
            public_key: hex::encode(&sp.public_key),
            endpoint: sp.endpoint.clone(),
            device_public_key: hex::encode(sp.device_key()),
            may_release: sp.may_release,
            may_move_to: sp.may_move_to.clone(),
            may_claim: sp.may_claim,
            devices,
        }
    }
}

/// A gateway as shown.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GatewayView {
    pub id: String,
    pub revoked: bool,
    pub geo: Option<control_api::gateway::Geo>,
    pub devices: i64,
    pub last_seq: i64,
    pub acked_seq: i64,
    /// Events written and not acknowledged yet.
    pub lag: i64,
    pub created_at: String,
    /// Streams or long-polls open on the replica that answered (admin API
    /// and console only; the CLI cannot know).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connected: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_streams: Option<usize>,
    /// Seconds since its last stream, poll or ack on that replica.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seen_secs_ago: Option<u64>,
}

impl From<&GatewayStatus> for GatewayView {
    fn from(g: &GatewayStatus) -> Self {
        Self {
            id: g.id.clone(),
            revoked: g.revoked,
            geo: g.geo,
            devices: g.devices,
            last_seq: g.last_seq,
            acked_seq: g.acked_seq,
            lag: g.lag(),
            created_at: clock::rfc3339(g.created_at),
            connected: None,
            open_streams: None,
            last_seen_secs_ago: None,
        }
    }
}

/// What adding one device did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AddOutcome {
    pub device_id: String,
    /// `created`, `moved` (another SP before), `updated` (service type or
    /// access), or `unchanged`.
    pub outcome: &'static str,
    pub sp: String,
    pub previous_sp: Option<String>,
    /// Outbox events written (gateways told).
    pub events: usize,
}

/// What a CSV import did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImportOutcome {
    pub rows: usize,
    pub created: usize,
    /// Devices whose SP or service type changed (created ones not counted).
    pub changed: usize,
    /// Devices whose access technology was set or changed.
    pub access_set: usize,
    pub unchanged: usize,
    pub events: usize,
    /// Transactions the association changes took (one per SP and service type).
    pub transactions: usize,
}

/// What removing a device did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RemoveOutcome {
    pub device_id: String,
    pub removed: bool,
    /// The SP it had.
    pub sp: String,
}

/// The operations, over a store; with the running server's cache and
/// notifier when used in-process.
#[derive(Debug, Clone)]
pub struct Admin {
    store: Store,
    push: PushRule,
    actor: String,
    live: Option<(MappingTable, Notifier)>,
}

/// A device id as typed (any spelling `sp-bound-id` accepts) → canonical text.
pub fn canonical_device_id(text: &str) -> Result<String, AdminError> {
    Eui::from_str(text.trim()).map(|e| e.to_string()).map_err(|e| {
        AdminError::InvalidDeviceId(format!(
            "device id {text:?}: {e} (an EUI-48 or EUI-64 such as AC-DE-48-00-00-80)"
        ))
    })
}

/// What part of a device id to search for, upper-cased with `-` separators;
/// only hex digits and separators.
pub fn device_search(text: &str) -> Result<Option<String>, AdminError> {
    let t = text.trim().to_ascii_uppercase().replace(':', "-");
    if t.is_empty() {
        return Ok(None);
    }
    if !t.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        return Err(AdminError::Invalid(format!(
            "search {text:?}: a device id search is part of an EUI (hex digits and '-' or ':')"
        )));
    }
    Ok(Some(t))
}

impl Admin {
    /// Administration from another process (the CLI): changes reach a
    /// running server through the database. `push` is the server's
    /// `[push]` policy, which decides who gets outbox events.
    pub fn new(store: Store, push: PushRule, actor: &str) -> Self {
        Self { store, push, actor: actor.to_owned(), live: None }
    }

    /// Administration inside a running server: its cache is invalidated and
    /// its streams woken at once.
    pub(crate) fn in_server(state: &ServerState, actor: &str) -> Self {
        Self {
            store: state.store.clone(),
            push: state.config.push.rule(),
            actor: actor.to_owned(),
            live: Some((state.mapping.clone(), state.notifier.clone())),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    fn invalidate(&self, device: &str) {
        if let Some((mapping, _)) = &self.live {
            mapping.invalidate([device]);
        }
    }

    async fn apply(&self, set: &ChangeSet) -> Result<ChangeOutcome, AdminError> {
        Ok(match &self.live {
            Some((mapping, notifier)) => mapping.apply_changes(set, |_| Ok(()), notifier).await?,
            None => self.store.apply_changes(set, |_| Ok(())).await?,
        })
    }

    fn change_set(&self, sp: &str, service_type: Option<String>, devices: Vec<String>) -> ChangeSet {
        ChangeSet {
            message_id: format!("admin-{}", crate::unsolicited::random_hex(8)),
            changed_by: format!("admin:{}", self.actor),
            at: clock::now_ms(),
            new_sp: sp.to_owned(),
            service_type,
            devices,
            nonce: None,
            prune_nonces_before: 0,
            push: self.push,
        }
    }

    async fn registered_sp(&self, text: &str) -> Result<String, AdminError> {
        let sp = SpIdentity::new(text.trim())
            .map_err(|e| AdminError::Invalid(format!("SP {text:?}: {e}")))?
            .as_str()
            .to_owned();
        if self.store.sp(&sp).await?.is_none() {
            return Err(AdminError::UnregisteredSp(format!(
                "SP {sp} is not registered: register it first (`control-server sp add --identity {sp} …`; \
                 `control-server sp list` shows the registered ones)"
            )));
        }
        Ok(sp)
    }

    /// Adds a device, or moves / updates it (history and outbox written).
    pub async fn add(&self, input: &MappingInput) -> Result<AddOutcome, AdminError> {
        let device = canonical_device_id(&input.device_id)?;
        let service_type = check_service_type(input.service_type.as_deref())?;
        let access = check_access(input.access.as_deref(), &device)?;
        let sp = self.registered_sp(&input.sp).await?;
        let before = self.store.mapping(&device).await?;
        let now = clock::now_ms();
        // Access first for a known device, so the outbox event carries it.
        let mut access_changed = false;
        if let (Some(access), Some(_)) = (access, &before) {
            access_changed = self.store.set_access(&[(&device, access.as_str())], now, &self.admin_actor()).await? > 0;
        }
        let outcome = self.apply(&self.change_set(&sp, service_type, vec![device.clone()])).await?;
        if let (Some(access), None) = (access, &before) {
            self.store.set_access(&[(&device, access.as_str())], now, &self.admin_actor()).await?;
        }
        self.invalidate(&device);
        let kind = match &before {
            None => "created",
            Some(b) if b.sp != sp => "moved",
            Some(_) if outcome.changed > 0 || access_changed => "updated",
            Some(_) => "unchanged",
        };
        tracing::info!(device = %device, sp = %sp, outcome = kind, events = outcome.events, actor = %self.actor, "admin: mapping added");
        Ok(AddOutcome {
            device_id: device,
            outcome: kind,
            sp,
            previous_sp: before.map(|b| b.sp),
            events: outcome.events,
        })
    }

    fn admin_actor(&self) -> String {
        format!("admin:{}", self.actor)
    }

    /// Imports a CSV file (`device_id,sp[,service_type[,access]]`, optional
    /// header). Every row is checked first: one bad row and nothing is
    /// written. The association changes are then one transaction per
    /// (SP, service type) — one for a file of one SP.
    pub async fn import_csv(&self, text: &str) -> Result<ImportOutcome, AdminError> {
        let rows = csv::parse_mappings(text)?;
        if rows.len() > MAX_IMPORT_ROWS {
            return Err(AdminError::Invalid(format!(
                "{} rows; one import takes at most {MAX_IMPORT_ROWS}: split the file",
                rows.len()
            )));
        }
        let mut errors = Vec::new();
        let mut seen = HashSet::new();
        let mut registered: BTreeMap<String, bool> = BTreeMap::new();
        let mut checked = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut fail = |message: String| errors.push(csv::LineError { line: row.line, message });
            let device = match canonical_device_id(&row.input.device_id) {
                Ok(d) => d,
                Err(e) => {
                    fail(e.to_string());
                    continue;
                }
            };
            if !seen.insert(device.clone()) {
                fail(format!("device {device} is listed twice"));
                continue;
            }
            let service_type = match check_service_type(row.input.service_type.as_deref()) {
                Ok(s) => s,
                Err(e) => {
                    fail(e.to_string());
                    continue;
                }
            };
            let access = match check_access(row.input.access.as_deref(), &device) {
                Ok(a) => a,
                Err(e) => {
                    fail(e.to_string());
                    continue;
                }
            };
            let sp = match SpIdentity::new(row.input.sp.trim()) {
                Ok(sp) => sp.as_str().to_owned(),
                Err(e) => {
                    fail(format!("SP {:?}: {e}", row.input.sp));
                    continue;
                }
            };
            let known = match registered.get(&sp) {
                Some(k) => *k,
                None => {
                    let k = self.store.sp(&sp).await?.is_some();
                    registered.insert(sp.clone(), k);
                    k
                }
            };
            if !known {
                fail(format!("SP {sp} is not registered (`control-server sp add --identity {sp} …`)"));
                continue;
            }
            checked.push((device, sp, service_type, access));
        }
        if !errors.is_empty() {
            return Err(AdminError::Csv(errors));
        }
        let now = clock::now_ms();
        let actor = self.admin_actor();
        // Access of known devices first (their events carry it), of new ones after.
        let access_rows: Vec<(&str, &str)> =
            checked.iter().filter_map(|(d, _, _, a)| a.map(|a| (d.as_str(), a.as_str()))).collect();
        let mut access_set = self.store.set_access(&access_rows, now, &actor).await?;
        let mut groups: BTreeMap<(String, Option<String>), Vec<String>> = BTreeMap::new();
        for (device, sp, service_type, _) in &checked {
            groups.entry((sp.clone(), service_type.clone())).or_default().push(device.clone());
        }
        let mut result = ImportOutcome {
            rows: checked.len(),
            created: 0,
            changed: 0,
            access_set: 0,
            unchanged: 0,
            events: 0,
            transactions: groups.len(),
        };
        for ((sp, service_type), devices) in groups {
            let outcome = self.apply(&self.change_set(&sp, service_type, devices)).await?;
            result.created += outcome.created;
            result.changed += outcome.changed - outcome.created;
            result.events += outcome.events;
        }
        access_set += self.store.set_access(&access_rows, now, &actor).await?;
        for (device, ..) in &checked {
            self.invalidate(device);
        }
        result.access_set = access_set;
        result.unchanged = result.rows - result.created - result.changed;
        tracing::info!(rows = result.rows, created = result.created, changed = result.changed, actor = %self.actor, "admin: mapping imported");
        Ok(result)
    }

    /// A page of mapping rows matching the filter.
    pub async fn list(&self, mut filter: MappingFilter) -> Result<MappingPage, AdminError> {
        if filter.limit <= 0 || filter.limit > MAX_PAGE {
            filter.limit = filter.limit.clamp(1, MAX_PAGE);
        }
        if let Some(sp) = &filter.sp {
            SpIdentity::new(sp).map_err(|e| AdminError::Invalid(format!("SP {sp:?}: {e}")))?;
        }
        if let Some(g) = &filter.gateway {
            crate::gateway_auth::validate_gateway_id(g).map_err(AdminError::Invalid)?;
        }
        let total = self.store.count_mappings(&filter).await?;
        let rows = self.store.list_mappings(&filter).await?;
        let next = if rows.len() as i64 == filter.limit { rows.last().map(|r| r.device_id.clone()) } else { None };
        Ok(MappingPage { mappings: rows.iter().map(MappingView::from).collect(), total, next })
    }

    fn unknown_device(device: &str) -> AdminError {
        AdminError::UnknownDevice(format!(
            "device {device} is not in the mapping table (`control-server mapping list` shows what is; \
             `control-server mapping add --device-id {device} --sp …` adds it)"
        ))
    }

    /// One device's row.
    pub async fn show(&self, device: &str) -> Result<MappingView, AdminError> {
        let device = canonical_device_id(device)?;
        let row = self.store.mapping(&device).await?.ok_or_else(|| Self::unknown_device(&device))?;
        Ok(MappingView::from(&row))
    }

    /// One device's SP history, oldest first. A device removed from the
    /// table keeps its history; a device never seen is an error.
    pub async fn history(&self, device: &str) -> Result<Vec<HistoryView>, AdminError> {
        let device = canonical_device_id(device)?;
        let rows = self.store.history(&device).await?;
        if rows.is_empty() && self.store.mapping(&device).await?.is_none() {
            return Err(Self::unknown_device(&device));
        }
        Ok(rows.iter().map(HistoryView::from).collect())
    }

    /// Removes a device from the table. Gateways are not told (the push
    /// contract has no removal event); a later resolve gets `unknown_device`.
    pub async fn remove(&self, device: &str) -> Result<RemoveOutcome, AdminError> {
        let device = canonical_device_id(device)?;
        let sp = self
            .store
            .remove_mapping(&device, clock::now_ms(), &self.admin_actor())
            .await?
            .ok_or_else(|| Self::unknown_device(&device))?;
        self.invalidate(&device);
        tracing::info!(device = %device, sp = %sp, actor = %self.actor, "admin: mapping removed");
        Ok(RemoveOutcome { device_id: device, removed: true, sp })
    }

    pub async fn sps(&self) -> Result<Vec<SpView>, AdminError> {
        Ok(self.store.list_sps().await?.iter().map(|(sp, n)| SpView::new(sp, *n)).collect())
    }

    pub async fn sp(&self, identity: &str) -> Result<SpView, AdminError> {
        let all = self.sps().await?;
        let wanted = identity.trim();
        all.into_iter().find(|s| s.identity == wanted).ok_or_else(|| {
            AdminError::UnknownSp(format!(
                "SP {wanted:?} is not registered (`control-server sp list` shows the registered ones)"
            ))
        })
    }

    pub async fn gateways(&self) -> Result<Vec<GatewayView>, AdminError> {
        Ok(self.store.list_gateways(None).await?.iter().map(GatewayView::from).collect())
    }

    pub async fn gateway(&self, id: &str) -> Result<GatewayView, AdminError> {
        let id = id.trim();
        self.store.list_gateways(Some(id)).await?.first().map(GatewayView::from).ok_or_else(|| {
            AdminError::UnknownGateway(format!(
                "gateway {id:?} is not registered (`control-server gateway list` shows the registered ones; \
                 `control-server gateway add --id {id} --credential …` registers it)"
            ))
        })
    }
}

fn check_service_type(text: Option<&str>) -> Result<Option<String>, AdminError> {
    match text.map(str::trim) {
        None | Some("") => Ok(None),
        Some(t) if t.len() > 64 || t.chars().any(char::is_control) => Err(AdminError::Invalid(format!(
            "service type {t:?}: 1 to 64 characters, no control characters"
        ))),
        Some(t) => Ok(Some(t.to_owned())),
    }
}

fn check_access(text: Option<&str>, device: &str) -> Result<Option<AccessTechnology>, AdminError> {
    let Some(t) = text.map(str::trim).filter(|t| !t.is_empty()) else { return Ok(None) };
    let access = AccessTechnology::from_str(t).map_err(|e| {
        AdminError::Invalid(format!(
            "access {t:?}: {e} (one of wifi, zigbee, thread, ble, lorawan, ethernet, cellular)"
        ))
    })?;
    let kind = Eui::from_str(device).map_err(|e| AdminError::InvalidDeviceId(e.to_string()))?.kind();
    if !access.accepts(kind) {
        return Err(AdminError::InvalidDeviceId(format!("{access} devices are not identified by an {kind}")));
    }
    Ok(Some(access))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_ids_and_searches_are_normalised() {
        assert_eq!(canonical_device_id("ac:de:48:00:00:80").unwrap(), "AC-DE-48-00-00-80");
        assert!(matches!(canonical_device_id("nope"), Err(AdminError::InvalidDeviceId(_))));
        assert_eq!(device_search(" 00:80 ").unwrap().as_deref(), Some("00-80"));
        assert_eq!(device_search("").unwrap(), None);
        assert!(device_search("%").is_err());
    }

    #[test]
    fn access_must_fit_the_eui() {
        assert!(check_access(Some("wifi"), "AC-DE-48-00-00-80").unwrap().is_some());
        assert!(check_access(Some("warp"), "AC-DE-48-00-00-80").is_err());
        assert!(check_access(None, "AC-DE-48-00-00-80").unwrap().is_none());
    }
}
