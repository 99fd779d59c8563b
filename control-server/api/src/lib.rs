//! The control server's wire contract: the JSON bodies, query strings, error
//! codes and route paths that the control server, the gateway's client of it
//! and service providers (SPs) exchange. The control server and its clients
//! both use these types, so the wire form has one definition.
//!
//! Only data lives here (serde types, no HTTP server, no storage), so any
//! client can depend on it cheaply. The exceptions are opt-in: feature
//! `http-client` adds `http_client`, the rules every HTTP client of a
//! remote party follows (no redirects, bounded answer bodies), and
//! `http-server` adds `http_server`, the bounds every server keeps, so the
//! control server, the gateway and SPs apply them the same way.
//!
//! Modules, one job each:
//! * [`routes`]: the paths the control server serves, and those an SP serves;
//! * [`gateway`]: gateway ↔ control server: resolve, pushed association
//!   updates, long-poll and acknowledgement;
//! * [`sp`]: control server ↔ SP: validation, the signed move message's
//!   payload and its acknowledgement, and the device report a gateway relays
//!   to an SP;
//! * [`device`]: a device ↔ its SP after enrollment: signed device messages
//!   and signed SP commands;
//! * [`error`]: the error body every route answers with and its stable codes;
//! * `http_client` (feature `http-client`): redirect-free clients and bounded
//!   reads of answer bodies;
//! * `http_server` (feature `http-server`): serving a router with a
//!   connection cap and a header-read timeout (the control server's API and
//!   the gateway's local API).

pub mod device;
pub mod error;
pub mod gateway;
pub mod routes;
pub mod sp;

#[cfg(feature = "http-client")]
pub mod http_client;
#[cfg(feature = "http-server")]
pub mod http_server;

pub use error::{ErrorBody, ErrorCode, UnknownErrorCode};
