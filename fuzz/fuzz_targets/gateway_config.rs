//! `gateway.toml` as `GatewayConfig::load` parses it (`toml::from_str` into
//! `GatewayConfig`, unknown keys refused), then the checks `build` makes of
//! its values before touching files (SP identities of `sp_endpoints`).
//! Must never panic: a bad file is a parse error.
#![no_main]

use enrollment_gateway::config::GatewayConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(config) = toml::from_str::<GatewayConfig>(text) else { return };
    for sp in config.sp_endpoints.keys() {
        let _ = sp_bound_id::SpIdentity::new(sp);
    }
    let _ = config.control_server.geo;
});
