//! The SP-bound identifier and its parts, as text from outside (labels,
//! the control server, SPs, the gateway's API): every parser, and the
//! promise of the crate docs that the text is a bijection. A parsed value
//! printed and parsed again is the same value, and the canonical parser
//! accepts exactly what the printer writes. Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sp_bound_id::{AccessTechnology, Eui, SpBoundId, SpIdentity};

fuzz_target!(|data: &[u8]| {
    // Raw octets, as a device's Hello frame carries them.
    if let Ok(eui) = Eui::from_bytes(data) {
        assert_eq!(eui.as_bytes(), data, "from_bytes keeps the octets");
        assert_eq!(Eui::from_canonical(&eui.to_string()), Ok(eui), "octets -> text -> octets");
    }
    let Ok(text) = std::str::from_utf8(data) else { return };

    if let Ok(id) = text.parse::<SpBoundId>() {
        assert_eq!(id.to_string(), text, "only the canonical text parses");
        assert_eq!(id.to_string().parse::<SpBoundId>().as_ref(), Ok(&id));
    }
    if let Ok(eui) = text.parse::<Eui>() {
        let canonical = eui.to_string();
        assert_eq!(canonical.parse::<Eui>(), Ok(eui), "Eui text round trip");
        assert_eq!(Eui::from_canonical(&canonical), Ok(eui));
    }
    if let Ok(eui) = Eui::from_canonical(text) {
        assert_eq!(eui.to_string(), text, "from_canonical takes only the canonical text");
    }
    if let Ok(sp) = SpIdentity::new(text) {
        assert_eq!(SpIdentity::new(sp.as_str()).as_ref(), Ok(&sp), "SP identity round trip");
    }
    if let Ok(sp) = SpIdentity::parse_lenient(text) {
        assert_eq!(SpIdentity::parse_lenient(sp.as_str()).as_ref(), Ok(&sp), "lenient SP identity is stable");
    }
    if let Ok(access) = text.parse::<AccessTechnology>() {
        assert_eq!(access.as_str().parse::<AccessTechnology>(), Ok(access));
    }
    // Serde reads what FromStr reads (a JSON string from the control server).
    if let Ok(id) = serde_json::from_slice::<SpBoundId>(data) {
        assert_eq!(serde_json::to_string(&id).ok().and_then(|j| serde_json::from_str(&j).ok()), Some(id));
    }
    let _ = serde_json::from_slice::<Eui>(data);
    let _ = serde_json::from_slice::<SpIdentity>(data);
});
