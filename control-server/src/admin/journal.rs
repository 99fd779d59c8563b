//! The hand-over log: every SP hand-over that reached verification
//! (`POST /v1/sp/associations` with a body), accepted or refused, with its
//! outcome, in a bounded table ([`super::HANDOVER_LOG_KEEP`] newest rows) so
//! the console can show recent unsolicited updates and why others were
//! refused. A refused message's sender and target are what the message
//! claims (its `kid`, its payload), which may be forged: they are shown as
//! claimed, and escaped like everything else.

use control_api::sp::{MoveAck, MovePayload};
use coset::{CborSerializable, CoseSign1, TaggedCborSerializable};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::state::ServerState;
use crate::store::HandoverEntry;

/// Longest reason kept (characters).
const MAX_REASON: usize = 500;
/// Longest claimed sender or target kept (bytes of an SP identity).
const MAX_NAME: usize = 253;

fn claimed(body: &[u8]) -> (Option<String>, Option<String>, i64) {
    let Ok(sign1) = CoseSign1::from_tagged_slice(body).or_else(|_| CoseSign1::from_slice(body)) else {
        return (None, None, 0);
    };
    let kid = if sign1.protected.header.key_id.is_empty() {
        &sign1.unprotected.key_id
    } else {
        &sign1.protected.header.key_id
    };
    let sender = std::str::from_utf8(kid).ok().filter(|s| !s.is_empty()).map(|s| truncate(s, MAX_NAME));
    let payload: Option<MovePayload> = sign1.payload.as_deref().and_then(|p| ciborium::from_reader(p).ok());
    let new_sp = payload.as_ref().map(|p| truncate(&p.new_sp, MAX_NAME));
    let devices = payload.map_or(0, |p| p.devices.len() as i64);
    (sender, new_sp, devices)
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// Logs one hand-over's outcome. A failure to log is logged, never the
/// request's failure.
pub async fn record(state: &ServerState, body: &[u8], result: &Result<MoveAck, ApiError>) {
    let (sender, new_sp, claimed_devices) = claimed(body);
    let message_id = hex::encode(&Sha256::digest(body)[..16]);
    let at = crate::clock::now_ms();
    let entry = match result {
        Ok(ack) => HandoverEntry {
            id: 0,
            at,
            accepted: true,
            sender,
            new_sp,
            devices: ack.devices as i64,
            changed: ack.changed as i64,
            events: ack.events as i64,
            code: "ok".into(),
            reason: format!("{} changed, {} created, {} gateways told", ack.changed, ack.created, ack.gateways),
            message_id: ack.message_id.clone(),
        },
        Err(e) => HandoverEntry {
            id: 0,
            at,
            accepted: false,
            sender,
            new_sp,
            devices: claimed_devices,
            changed: 0,
            events: 0,
            code: e.code().to_owned(),
            reason: truncate(&e.to_string(), MAX_REASON),
            message_id,
        },
    };
    if let Err(err) = state.store.record_handover(&entry, super::HANDOVER_LOG_KEEP).await {
        tracing::warn!(%err, "cannot log a hand-over for the console");
    }
}
