//! Dictionary seed, not an app: a device half that calls every import of its
//! world and every SDK helper once (see the phone half).

#![no_std]

use enrollment_sdk::device::{self, Item, diagnostics, manifest, take, transport};
use enrollment_sdk::record::Reader;

struct Seed;

impl device::Guest for Seed {
    fn enroll() -> Result<(), ()> {
        diagnostics::log("seed");
        let _ = device::device::device_id();
        let _ = device::device::technology();
        let _ = manifest::secret();
        let _ = manifest::param("name");
        device::device::set_config("mode", &[1]).map_err(drop)?;
        let message = transport::receive().map_err(drop)?;
        let mut r = Reader::new(&message);
        let n = device::param_number("n", 1, Some(1), 0, 9).map_err(drop)?;
        if (r.u8(), r.u16(), r.u32(), r.take(1)) != (Some(n), Some(1), Some(2), Some(&[3][..])) || r.finish().is_none() {
            return Err(());
        }
        transport::send(&[0]).map_err(drop)?;
        if let Item::Record((_, _)) = device::expect(&Item::Owner).map_err(drop)? {
            return Err(());
        }
        match take::next().map_err(drop)? {
            Item::End => take::finish().map_err(drop),
            _ => device::take_all().map_err(drop),
        }
    }
}

enrollment_sdk::device_half!(Seed);
