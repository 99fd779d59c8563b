//! Dictionary seed, not an app: a phone half that calls every import of its
//! world and every SDK helper once, so the shipped dictionary holds the
//! component structure every app shares (the WIT-derived type sections,
//! the import shims, the SDK's code) and no app's own logic.

#![no_std]

use enrollment_sdk::phone::{self, assistant, diagnostics, manifest, offer, transport};
use enrollment_sdk::record::Writer;

struct Seed;

impl phone::Guest for Seed {
    fn enroll() -> Result<(), ()> {
        diagnostics::log("seed");
        let _ = assistant::device_id();
        let _ = manifest::secret();
        if let Some(value) = manifest::param("name") {
            offer::name(&value).map_err(drop)?;
        }
        phone::forward_param("interval").map_err(drop)?;
        offer::parameter("mode", "1").map_err(drop)?;
        let mut record = Writer::<16>::new();
        record.u8(1).u16(phone::param_number("n", 0, Some(1), 0, 9).map_err(drop)?).u32(2).bytes(&[3]);
        if record.overflowed() {
            return Err(());
        }
        offer::record(1, record.as_bytes()).map_err(drop)?;
        transport::send(&[0]).map_err(drop)?;
        let _ = transport::receive().map_err(drop)?;
        phone::hand_over().map_err(drop)
    }
}

enrollment_sdk::phone_half!(Seed);
