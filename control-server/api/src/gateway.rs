//! Gateway ↔ control server: resolve a device's SP, then follow the pushed
//! association updates (SSE or long-poll) and acknowledge them.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A geo-location (degrees), as a gateway sends it and as the control server
/// forwards it to SPs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Geo {
    pub lat: f64,
    pub lon: f64,
}

/// `POST /v1/resolve` body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolveRequest {
    pub device_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geo: Option<Geo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_type: Option<String>,
    #[serde(default)]
    pub full_identifier: bool,
}

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Table,
    Sp,
}

/// `POST /v1/resolve` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResolveResponse {
    pub device_id: String,
    pub sp: String,
    pub service_type: Option<String>,
    pub source: Source,
    pub validated_at: String,
    pub identifier: Option<String>,
    /// True only when the SP could not be reached and policy allowed the table's answer.
    #[serde(default)]
    pub stale: bool,
    /// Where the SP's devices and gateways reach it (device reports go to
    /// `POST {sp_endpoint}/v1/devices`); `null` when the SP was registered
    /// without one.
    #[serde(default)]
    pub sp_endpoint: Option<String>,
    /// The Ed25519 key (64 hex digits) devices verify the SP with: its
    /// device-facing key, or the key it registered. `null` only from a
    /// control server older than this field.
    #[serde(default)]
    pub sp_public_key: Option<String>,
}

/// One association change as a gateway receives it (SSE `data`, or an item
/// of [`PollResponse::events`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssociationEvent {
    pub seq: u64,
    pub device_id: String,
    pub sp: String,
    pub previous_sp: Option<String>,
    pub service_type: Option<String>,
    /// The device's access technology, when the table knows it: with it a
    /// gateway can build the complete identifier of a device it has not seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<String>,
    pub changed_at: String,
    pub message_id: String,
    /// The new SP's endpoint, as in [`ResolveResponse::sp_endpoint`]:
    /// a gateway re-binds its devices to it with these details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sp_endpoint: Option<String>,
    /// The new SP's device-facing key, hex, as in [`ResolveResponse::sp_public_key`].
    /// Absent from events stored before the control server handed it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sp_public_key: Option<String>,
}

/// The SSE `event` name of an [`AssociationEvent`] on `GET /v1/updates`.
pub const ASSOCIATION_EVENT: &str = "association";

/// The control server writes something on an open `GET /v1/updates` stream
/// (an event, or an SSE comment line as keep-alive) at least this often.
pub const STREAM_KEEP_ALIVE: Duration = Duration::from_secs(15);

/// A gateway that has read nothing on its update stream for this long (three
/// keep-alive periods) takes the connection as dead and reconnects: a
/// half-open TCP connection or a stalled proxy otherwise keeps it waiting
/// for ever.
pub const STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(3 * STREAM_KEEP_ALIVE.as_secs());

/// `GET /v1/updates` query.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdatesQuery {
    pub after: Option<u64>,
}

/// `GET /v1/updates/poll` query.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollQuery {
    pub after: Option<u64>,
    pub wait_ms: Option<u64>,
    pub limit: Option<u64>,
}

/// `GET /v1/updates/poll` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollResponse {
    pub events: Vec<AssociationEvent>,
    /// The sequence number to pass as `after` next time.
    pub next: u64,
}

/// `POST /v1/updates/ack` body (and answer: echoed).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckRequest {
    pub seq: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_request_omits_what_is_absent_and_refuses_unknown_fields() {
        let request = ResolveRequest { device_id: "AC-DE-48-00-00-80".into(), ..ResolveRequest::default() };
        assert_eq!(
            serde_json::to_string(&request).unwrap(),
            r#"{"device_id":"AC-DE-48-00-00-80","full_identifier":false}"#
        );
        assert!(serde_json::from_str::<ResolveRequest>(r#"{"device_id":"x","color":1}"#).is_err());
        assert!(serde_json::from_str::<Geo>(r#"{"lat":1,"lon":2,"alt":3}"#).is_err());
    }

    #[test]
    fn events_carry_access_only_when_known() {
        let event = AssociationEvent {
            seq: 1,
            device_id: "AC-DE-48-00-00-80".into(),
            sp: "sp-two.example".into(),
            previous_sp: None,
            service_type: None,
            access: None,
            changed_at: "2023-11-14T22:13:20.123Z".into(),
            message_id: "m".into(),
            sp_endpoint: None,
            sp_public_key: None,
        };
        let json = serde_json::to_value(&event).unwrap();
        assert!(json.get("access").is_none());
        assert!(json.get("sp_endpoint").is_none() && json.get("sp_public_key").is_none());
        assert!(json["previous_sp"].is_null());
        assert_eq!(serde_json::to_string(&Source::Sp).unwrap(), r#""sp""#);
    }
}
