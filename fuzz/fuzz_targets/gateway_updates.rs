//! The update stream a gateway reads from the control server
//! (`GET /v1/updates`, server-sent events), as `ControlServer::updates`
//! reads it: the bytes cut into chunks as the network might deliver them,
//! parsed by `eventsource-stream`, each `association` event's data parsed
//! as an `AssociationEvent` and converted to the store's
//! `AssociationUpdate` (device id, SP identities, access technology). The
//! first byte sets the chunk size. Also the long-poll answer
//! (`PollResponse`). Must never panic.
#![no_main]

use control_api::gateway::{ASSOCIATION_EVENT, AssociationEvent, PollResponse};
use enrollment_gateway::store::AssociationUpdate;
use eventsource_stream::Eventsource;
use futures::StreamExt;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, body)) = data.split_first() else { return };
    let chunk = usize::from(chunk).max(1);
    let chunks: Vec<Result<Vec<u8>, std::convert::Infallible>> =
        body.chunks(chunk).map(|c| Ok(c.to_vec())).collect();
    let events = futures::executor::block_on(futures::stream::iter(chunks).eventsource().collect::<Vec<_>>());
    for event in events.into_iter().flatten() {
        if event.event == ASSOCIATION_EVENT {
            update(&event.data);
        }
    }
    if let Ok(poll) = serde_json::from_slice::<PollResponse>(body) {
        for event in poll.events {
            let _ = AssociationUpdate::try_from(event);
        }
    }
});

fn update(data: &str) {
    if let Ok(event) = serde_json::from_str::<AssociationEvent>(data) {
        let _ = AssociationUpdate::try_from(event);
    }
}
