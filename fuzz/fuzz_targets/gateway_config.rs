//! `gateway.toml` as `GatewayConfig::load` parses it (`toml::from_str` into
//! `GatewayConfig`, unknown keys refused), then the checks `build` makes of
//! its values before touching files (the removed `sp_endpoints` refused,
//! the control-server URLs).
//! Must never panic: a bad file is a parse error.
#![no_main]

use enrollment_gateway::config::GatewayConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(config) = toml::from_str::<GatewayConfig>(text) else { return };
    let _ = config.no_removed_keys();
    let _ = config.control_server.all_urls();
    let _ = config.control_server.geo;
});
