//! The control server's configuration file (`control-server serve --config`):
//! TOML into `Config`, then its validation (gateway ids, SP identities,
//! keys, mappings). Must never panic: a bad file is a `ConfigError`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = control_server::config::Config::from_toml(text);
});
