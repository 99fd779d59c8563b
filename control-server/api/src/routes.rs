//! Route paths. Clients join them to a base URL (`{base}{path}`); query
//! strings are the types in [`crate::gateway`].

/// `POST`, gateway: which SP a device belongs to
/// ([`crate::gateway::ResolveRequest`] → [`crate::gateway::ResolveResponse`]).
pub const RESOLVE: &str = "/v1/resolve";
/// `GET`, gateway: server-sent events of [`crate::gateway::AssociationEvent`]s
/// (query [`crate::gateway::UpdatesQuery`]).
pub const UPDATES: &str = "/v1/updates";
/// `GET`, gateway: long-poll (query [`crate::gateway::PollQuery`] →
/// [`crate::gateway::PollResponse`]).
pub const UPDATES_POLL: &str = "/v1/updates/poll";
/// `POST`, gateway: acknowledge events ([`crate::gateway::AckRequest`], echoed).
pub const UPDATES_ACK: &str = "/v1/updates/ack";
/// `POST`, SP: a signed unsolicited move (COSE_Sign1 over a
/// [`crate::sp::MovePayload`]) → [`crate::sp::MoveAck`].
pub const SP_ASSOCIATIONS: &str = "/v1/sp/associations";
/// `GET`: the OpenAPI 3.1 description of these routes.
pub const OPENAPI: &str = "/openapi.json";
/// `GET`: liveness (`ok`).
pub const HEALTHZ: &str = "/healthz";
/// `GET`: metrics in the Prometheus text exposition format 0.0.4 (the
/// control server's, and the gateway's and the device agent's on theirs).
pub const METRICS: &str = "/metrics";

/// Served by an SP, called by the control server:
/// [`crate::sp::ValidateRequest`] → [`crate::sp::Verdict`].
pub const SP_VALIDATE: &str = "/v1/validate";
/// Served by an SP, called by a gateway: `POST` a [`crate::sp::DeviceReport`].
pub const SP_DEVICES: &str = "/v1/devices";
/// Served by an SP, called by a gateway: `POST` a [`crate::sp::DeviceWithdrawal`]
/// (a relayed key that no device committed) → [`crate::sp::Withdrawn`].
pub const SP_DEVICES_WITHDRAW: &str = "/v1/devices/withdraw";
