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
//! The wire contract (bodies, error codes, routes) is the `control_api`
//! crate, shared with the gateway's client and SPs.
//!
//! Modules, one job each (private unless marked public):
//! * [`config`] (public): the TOML file and policy an operator starts the server with;
//! * [`store`] (public): sqlx storage (SQLite or PostgreSQL) and migrations;
//! * `mapping`: the mapping table, an in-memory read-through cache over the store;
//! * `gateway_auth`: who may ask (HTTP Basic, cached credential checks);
//! * `sp_client`: SP validation and redirect chains;
//! * `state`: [`ServerState`], what every request handler shares, and
//!   registering the configuration;
//! * `resolve`: the resolve decision (table or SP, full identifier mode);
//! * `unsolicited`: COSE_Sign1 SP messages: building ([`MovePayloadExt`]), verifying, replay;
//! * `outbox`: per-gateway push (wake-ups, reading the outbox in order);
//! * `replicas`: changes committed by other replicas (PostgreSQL
//!   `LISTEN/NOTIFY`) and the outbox safety sweep;
//! * `api`, `error`, `openapi`: the HTTP surface;
//! * `server`: serving the routes on a listener ([`start`]), with the
//!   connection cap and header-read timeout;
//! * [`limits`] (public): every limit on what a peer can make the server hold;
//! * [`sp_sim`] (public): a configurable SP network for tests and the demo;
//! * [`admin`] (public): administration of the mapping table, SPs and
//!   gateways for the CLI, the admin API (`/v1/admin`) and `console` (the
//!   web console, `/console`).
//!
//! Imports go one way: `server` → `api` → `resolve` / `unsolicited` →
//! `state` → `mapping` / `gateway_auth` / `sp_client` / `outbox` → `store`.

pub mod admin;
pub mod config;
pub mod fuzzing;
pub mod limits;
pub mod sp_sim;
pub mod store;

mod api;
mod clock;
mod console;
mod error;
mod gateway_auth;
mod mapping;
pub mod metrics;
mod openapi;
mod outbox;
mod replicas;
mod resolve;
mod server;
mod sp_client;
mod state;
mod unsolicited;

pub use gateway_auth::{hash_credential, validate_gateway_id};
pub use openapi::ROUTES;
pub use server::{RunningServer, start};
pub use state::{ServerState, StartError};
pub use unsolicited::{BuildError, MovePayloadExt, random_hex};

/// Installs the process-wide rustls crypto provider (ring) used by the SP
/// client. Idempotent; call once at start-up of any binary or test that makes
/// HTTPS calls (plain-HTTP loopback calls work without it).
pub fn install_crypto_provider() {
    control_api::http_client::install_crypto_provider();
}

/// An HTTP client for talking to a control server or SP, with the crypto
/// provider installed (reqwest is built without a default one). It follows
/// no redirects (`control_api::http_client`). Fails only if the TLS backend
/// cannot be set up.
pub fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    control_api::http_client::client()
}
