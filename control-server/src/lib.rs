//! The control server of the IoT enrollment product.
//!
//! A gateway that sees a new device asks the control server which service
//! provider (SP) the device belongs to. The server keeps a mapping table
//! (manufacturer device id → SP identity), answers from it while an
//! association is fresh, and otherwise validates it with the SP, following
//! redirects to a new SP. SPs move devices with signed, replay-protected
//! unsolicited messages; every change is written, in the same transaction,
//! to a durable per-gateway outbox that gateways read as a resumable stream.
//!
//! Modules, one job each:
//! * [`config`]: the TOML file and policy an operator starts the server with;
//! * [`store`]: sqlx storage (SQLite or PostgreSQL) and migrations;
//! * [`mapping`]: the [`mapping::MappingTable`], an in-memory read-through cache over the store;
//! * [`gateway_auth`]: who may ask (HTTP Basic, cached credential checks);
//! * [`sp_client`]: SP validation and redirect chains;
//! * [`resolve`]: the resolve decision (table or SP, full identifier mode);
//! * [`unsolicited`]: COSE_Sign1 SP messages: building, verifying, replay;
//! * [`outbox`]: per-gateway push (events, wake-ups, SSE and long-poll);
//! * [`api`], [`error`], [`openapi`]: the HTTP surface;
//! * [`server`]: wiring it all together;
//! * [`sp_sim`]: a configurable SP network for tests and the demo.

pub mod api;
pub mod clock;
pub mod config;
pub mod error;
pub mod gateway_auth;
pub mod mapping;
pub mod openapi;
pub mod outbox;
pub mod resolve;
pub mod server;
pub mod sp_client;
pub mod sp_sim;
pub mod store;
pub mod unsolicited;

/// Installs the process-wide rustls crypto provider (ring) used by the SP
/// client. Idempotent; call once at start-up of any binary or test that makes
/// HTTPS calls (plain-HTTP loopback calls work without it).
pub fn install_crypto_provider() {
    // Already installed (by us or the host application) is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// An HTTP client for talking to a control server or SP, with the crypto
/// provider installed (reqwest is built without a default one).
pub fn http_client() -> reqwest::Client {
    install_crypto_provider();
    reqwest::Client::new()
}
