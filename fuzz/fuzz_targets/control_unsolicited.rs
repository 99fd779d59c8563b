//! `POST /v1/sp/associations`: an SP's signed unsolicited hand-over, through
//! the control server's own `unsolicited::accept` against a real (in-memory
//! SQLite) store. The first byte picks how the rest is used:
//! even: the request body as it arrives (COSE_Sign1: structure, kid,
//! algorithm, signature); odd: the payload's CBOR, signed here by the
//! registered sender, so decoding, the checks after the signature,
//! authorization and the transaction are reached. Must never panic; every
//! refusal is an error with a code.
#![no_main]

use std::sync::LazyLock;

use control_server::fuzzing::UnsolicitedHarness;
use libfuzzer_sys::fuzz_target;

static HARNESS: LazyLock<UnsolicitedHarness> = LazyLock::new(|| match UnsolicitedHarness::new() {
    Ok(h) => h,
    Err(e) => panic!("the fuzz harness could not start: {e}"),
});

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let result = if mode % 2 == 0 { HARNESS.accept(rest) } else { HARNESS.sign_and_accept(rest) };
    if let Err(e) = result {
        assert!(e.contains(": "), "every refusal has a code: {e}");
    }
});
