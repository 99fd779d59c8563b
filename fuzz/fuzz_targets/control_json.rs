//! The control server's JSON bodies, as each side reads them from the
//! other: what the control server reads from gateways (resolve, ack) and
//! from SPs (verdicts), what gateways read from the control server (resolve
//! answers, polled events, error bodies), what SPs read (validation
//! requests, device reports). Each input is tried as every type
//! (`serde_json::from_slice`, as the handlers and clients call it); one that
//! parses must serialize and parse back to the same value. Must never panic.
#![no_main]

use control_api::gateway::{AckRequest, AssociationEvent, PollResponse, ResolveRequest, ResolveResponse};
use control_api::sp::{DeviceReport, MoveAck, ValidateRequest, Verdict};
use control_api::ErrorBody;
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::Serialize;

fuzz_target!(|data: &[u8]| {
    round_trip::<ResolveRequest>(data);
    round_trip::<ResolveResponse>(data);
    round_trip::<AssociationEvent>(data);
    round_trip::<PollResponse>(data);
    round_trip::<ValidateRequest>(data);
    round_trip::<Verdict>(data);
    round_trip::<MoveAck>(data);
    round_trip::<DeviceReport>(data);
    round_trip::<ErrorBody>(data);
    if let Ok(ack) = serde_json::from_slice::<AckRequest>(data) {
        let _ = serde_json::to_vec(&ack);
    }
    if let Ok(body) = serde_json::from_slice::<ErrorBody>(data) {
        let _ = body.code();
    }
});

/// Parses `data` as `T`; a value that parses must come back the same
/// through its own JSON (floats compared by their JSON text).
fn round_trip<T: DeserializeOwned + Serialize + std::fmt::Debug>(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<T>(data) else { return };
    let Ok(first) = serde_json::to_string(&value) else { return };
    let again: T = match serde_json::from_str(&first) {
        Ok(again) => again,
        Err(e) => panic!("{value:?} serialized to {first:?}, which does not parse: {e}"),
    };
    let second = serde_json::to_string(&again).ok();
    assert_eq!(Some(&first), second.as_ref(), "JSON round trip of {value:?}");
}
