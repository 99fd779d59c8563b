//! The simulated SP's side of a device's life after enrollment: it verifies
//! every device message with the public key the gateway relayed at
//! enrollment (the newest report for that identifier), refuses a forged one
//! or one whose sequence number it has seen, records the rest (visible at
//! `GET /admin/messages`), and signs commands (`POST /admin/command`) with
//! its own key for the device to fetch (`GET /v1/device-commands`).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use control_api::device::{DeviceMessage, MessageAccepted, SpCommand, command_signed_bytes, message_signed_bytes};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::{Shared, error, lock};

/// A device message the SP verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedMessage {
    pub identifier: String,
    pub seq: u64,
    /// The body as text (lossy), for people.
    pub body: String,
    /// When the SP had verified it, Unix milliseconds (a device's sequence
    /// number is its send time in milliseconds, so the two give the latency).
    #[serde(default)]
    pub verified_at_ms: u64,
}

/// What the SP holds of its devices' traffic.
#[derive(Debug, Default)]
pub(super) struct Messages {
    pub(super) key: Option<SigningKey>,
    pub(super) recorded: Vec<RecordedMessage>,
    pub(super) last_seq: HashMap<String, u64>,
    pub(super) commands: Vec<SpCommand>,
    pub(super) verified: u64,
    pub(super) rejected: u64,
}

/// Most messages kept (the oldest go first).
const KEPT: usize = 10_000;

pub(super) async fn receive(State(sim): State<Shared>, body: Bytes) -> Response {
    let message: DeviceMessage = match serde_json::from_slice(&body) {
        Ok(m) => m,
        Err(e) => return error(StatusCode::BAD_REQUEST, "malformed_request", e.to_string()),
    };
    let mut sim = lock(&sim);
    let key = sim.reports.iter().rev().find(|r| r.identifier == message.identifier).map(|r| r.public_key.clone());
    let verdict = (|| {
        let key = key.ok_or((StatusCode::NOT_FOUND, "unknown_device", "no device with this identifier was relayed to this SP"))?;
        let key: [u8; 32] = hex::decode(&key).ok().and_then(|k| k.try_into().ok()).ok_or((
            StatusCode::CONFLICT,
            "bad_relayed_key",
            "the key relayed for this device is not an Ed25519 public key",
        ))?;
        let body = hex::decode(&message.body).map_err(|_| (StatusCode::BAD_REQUEST, "malformed_request", "body is not hex"))?;
        let signature = hex::decode(&message.signature)
            .ok()
            .and_then(|s| Signature::from_slice(&s).ok())
            .ok_or((StatusCode::UNAUTHORIZED, "bad_signature", "the signature is not an Ed25519 signature"))?;
        let verifying = VerifyingKey::from_bytes(&key).map_err(|_| (StatusCode::CONFLICT, "bad_relayed_key", "not a valid point"))?;
        verifying
            .verify(&message_signed_bytes(&message.identifier, message.seq, &body), &signature)
            .map_err(|_| (StatusCode::UNAUTHORIZED, "bad_signature", "not signed by the key relayed for this device"))?;
        Ok(body)
    })();
    let body = match verdict {
        Ok(body) => body,
        Err((status, code, text)) => {
            sim.messages.rejected += 1;
            return error(status, code, text.into());
        }
    };
    let last = sim.messages.last_seq.get(&message.identifier).copied().unwrap_or(0);
    if message.seq <= last {
        sim.messages.rejected += 1;
        return error(StatusCode::CONFLICT, "replayed", format!("sequence number {} is not after {last}", message.seq));
    }
    sim.messages.last_seq.insert(message.identifier.clone(), message.seq);
    sim.messages.verified += 1;
    let verified_at_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    let recorded = RecordedMessage {
        identifier: message.identifier,
        seq: message.seq,
        body: String::from_utf8_lossy(&body).into_owned(),
        verified_at_ms,
    };
    let kept = &mut sim.messages.recorded;
    if kept.len() >= KEPT {
        kept.remove(0);
    }
    kept.push(recorded);
    (StatusCode::ACCEPTED, Json(MessageAccepted { seq: message.seq })).into_response()
}

pub(super) async fn list(State(sim): State<Shared>) -> Json<Vec<RecordedMessage>> {
    Json(lock(&sim).messages.recorded.clone())
}

#[derive(Deserialize)]
pub(super) struct CommandsQuery {
    identifier: String,
    #[serde(default)]
    after: u64,
}

pub(super) async fn commands(State(sim): State<Shared>, Query(q): Query<CommandsQuery>) -> Json<Vec<SpCommand>> {
    let sim = lock(&sim);
    Json(sim.messages.commands.iter().filter(|c| c.identifier == q.identifier && c.seq > q.after).cloned().collect())
}

/// `POST /admin/command`: what to tell a device.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CommandRequest {
    pub identifier: String,
    /// The command's text, e.g. `interval=5`.
    pub body: String,
}

pub(super) async fn issue(State(sim): State<Shared>, body: Bytes) -> Response {
    let request: CommandRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, "malformed_request", e.to_string()),
    };
    let mut sim = lock(&sim);
    let Some(key) = sim.messages.key.clone() else {
        return error(StatusCode::CONFLICT, "no_key", "this SP signs commands with its key: start sp-sim serve with --key".into());
    };
    let seq = sim.messages.commands.iter().filter(|c| c.identifier == request.identifier).map(|c| c.seq).max().unwrap_or(0) + 1;
    let signature = key.sign(&command_signed_bytes(&request.identifier, seq, request.body.as_bytes()));
    let command = SpCommand {
        identifier: request.identifier,
        seq,
        body: hex::encode(request.body.as_bytes()),
        signature: hex::encode(signature.to_bytes()),
    };
    sim.messages.commands.push(command.clone());
    (StatusCode::CREATED, Json(command)).into_response()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use control_api::device::{DEVICE_COMMANDS, DEVICE_MESSAGES, DeviceMessage, SpCommand, command_signed_bytes, message_signed_bytes};
    use control_api::sp::DeviceReport;
    use ed25519_dalek::{Signer, SigningKey, Verifier};

    use crate::sp_sim::{Behaviour, start_with_key};

    const ID: &str = "sp-one.example/wifi/AC-DE-48-00-00-80";

    fn message(key: &SigningKey, seq: u64, body: &[u8]) -> DeviceMessage {
        let signature = key.sign(&message_signed_bytes(ID, seq, body));
        DeviceMessage { identifier: ID.into(), seq, body: hex::encode(body), signature: hex::encode(signature.to_bytes()) }
    }

    #[tokio::test]
    async fn only_messages_signed_by_the_relayed_key_are_recorded_and_commands_are_signed() {
        let sp_key = SigningKey::from_bytes(&[3; 32]);
        let sim = start_with_key("sp-one.example", "127.0.0.1:0".parse().unwrap(), Behaviour::Confirm, HashMap::new(), Some(sp_key.clone()))
            .await
            .unwrap();
        let http = control_api::http_client::client().unwrap();
        let post = |m: &DeviceMessage| http.post(format!("{}{DEVICE_MESSAGES}", sim.url())).json(m).send();
        let device = SigningKey::from_bytes(&[7; 32]);

        // Before the relay: the SP does not know the device.
        assert_eq!(post(&message(&device, 1, b"reading=1")).await.unwrap().status(), 404);
        let report = DeviceReport {
            identifier: ID.into(),
            public_key: hex::encode(device.verifying_key().to_bytes()),
            device_id: Some("AC-DE-48-00-00-80".into()),
            relayed_by: Some("gw-1".into()),
        };
        assert_eq!(http.post(format!("{}/v1/devices", sim.url())).json(&report).send().await.unwrap().status(), 201);

        assert_eq!(post(&message(&device, 1, b"reading=1")).await.unwrap().status(), 202);
        // Altered on the way (a gateway changing one digit): refused.
        let mut altered = message(&device, 2, b"reading=2");
        altered.body = hex::encode(b"reading=9");
        assert_eq!(post(&altered).await.unwrap().status(), 401);
        // Signed by another key: refused. Replayed: refused.
        assert_eq!(post(&message(&SigningKey::from_bytes(&[8; 32]), 2, b"reading=2")).await.unwrap().status(), 401);
        assert_eq!(post(&message(&device, 1, b"reading=1")).await.unwrap().status(), 409);

        let recorded: Vec<super::RecordedMessage> =
            http.get(format!("{}/admin/messages", sim.url())).send().await.unwrap().json().await.unwrap();
        assert_eq!(recorded.len(), 1);
        assert_eq!(recorded[0].body, "reading=1");
        let stats: crate::sp_sim::SimStats = http.get(format!("{}/admin/stats", sim.url())).send().await.unwrap().json().await.unwrap();
        assert_eq!((stats.messages_verified, stats.messages_rejected), (1, 4));

        // A command is signed with the SP's key, over this device and its sequence number.
        let issued = http
            .post(format!("{}/admin/command", sim.url()))
            .json(&serde_json::json!({ "identifier": ID, "body": "interval=7" }))
            .send()
            .await
            .unwrap();
        assert_eq!(issued.status(), 201);
        let listed: Vec<SpCommand> = http
            .get(format!("{}{DEVICE_COMMANDS}?identifier={}&after=0", sim.url(), ID.replace('/', "%2F")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(listed.len(), 1);
        let signature = ed25519_dalek::Signature::from_slice(&hex::decode(&listed[0].signature).unwrap()).unwrap();
        let body = hex::decode(&listed[0].body).unwrap();
        sp_key.verifying_key().verify(&command_signed_bytes(ID, 1, &body), &signature).expect("signed by the SP");
        sim.stop().await;
    }
}
