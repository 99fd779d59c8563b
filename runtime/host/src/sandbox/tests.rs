//! The bounds on loading a half: size cap, checks before compiling, compile
//! slots and timeout, refusals remembered by content hash.

use std::time::{Duration, Instant};

use wasmtime::component::{InstancePre, Linker};

use super::cache::ComponentCache;
use super::*;

type Pre = InstancePre<()>;

fn sandbox(config: SandboxConfig) -> Sandbox {
    Sandbox::new(SandboxConfig { max_concurrent_halves: 4, ..config }).expect("sandbox")
}

async fn prepare(sandbox: &Sandbox, cache: &ComponentCache<PreparedHalf<Pre>>, bytes: &[u8]) -> Result<(), HalfError> {
    let linker = Linker::<()>::new(sandbox.engine());
    sandbox.prepare(cache, HalfKind::Device, bytes, &linker, Ok).await.map(drop)
}

/// A component exporting `enroll`, with `imports` and a core module whose
/// `enroll` has `body` (not validated by `wat`: an ill-typed body parses).
fn component(imports: &str, body: &str) -> Vec<u8> {
    component_with(imports, &format!("(func (export \"enroll\") (result i32) {body})"))
}

fn component_with(imports: &str, core: &str) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(component {imports}
             (core module $m {core})
             (core instance $i (instantiate $m))
             (func (export "enroll") (result (result)) (canon lift (core func $i "enroll"))))"#
    ))
    .expect("test WAT")
}

/// An ill-typed `enroll` (returns nothing where an i32 is due): parses, but
/// fails validation, which happens in the compiler.
const ILL_TYPED: &str = "";

/// `bytes` with a custom section appended so that it is `len` bytes long.
fn padded_to(mut bytes: Vec<u8>, len: usize) -> Vec<u8> {
    let name = b"pad";
    let mut section = vec![name.len() as u8];
    section.extend_from_slice(name);
    // The size field is 3 LEB128 bytes (padded), so the total is exact.
    let data = len - bytes.len() - 1 - 3 - section.len();
    section.resize(section.len() + data, 0);
    let size = section.len() as u32;
    bytes.push(0);
    bytes.extend_from_slice(&[(size & 0x7f) as u8 | 0x80, ((size >> 7) & 0x7f) as u8 | 0x80, (size >> 14) as u8]);
    bytes.extend_from_slice(&section);
    assert_eq!(bytes.len(), len);
    bytes
}

/// A component whose core module has `functions` functions of straight-line
/// arithmetic: valid, within the size cap, and slow to compile in a debug build.
fn slow_to_compile(functions: usize, seed: u32) -> Vec<u8> {
    let mut core = String::from("(func (export \"enroll\") (result i32) i32.const 0)");
    for f in 0..functions {
        core.push_str(&format!("(func $f{f} (param i32) (result i32) local.get 0"));
        for k in 0..12 {
            core.push_str(&format!(" i32.const {} i32.mul i32.const {} i32.xor", seed + k, f as u32 + k));
        }
        core.push(')');
    }
    component_with("", &core)
}

#[test]
fn every_reference_half_is_well_within_the_size_and_locals_caps() {
    let apps = enrollment_apps::ALL.iter().chain(enrollment_apps::BENCH).chain(enrollment_apps::SEEDS);
    for app in apps {
        for (half, bytes) in [("phone", app.phone), ("device", app.device)] {
            assert!(
                bytes.len() * 3 <= MAX_HALF_BYTES,
                "{} {half} half is {} bytes: raise MAX_HALF_BYTES (and say why) before shipping it",
                app.name,
                bytes.len()
            );
            let locals = check::declared_locals(bytes).unwrap();
            assert!(locals * 100 <= check::MAX_HALF_LOCALS, "{} {half} half declares {locals} locals", app.name);
        }
    }
}

#[test]
fn the_packer_refuses_what_the_sandbox_refuses() {
    // `qr-packer pack` checks halves against these before signing a label.
    assert_eq!(qr_packer::check::MAX_HALF_BYTES, MAX_HALF_BYTES);
    assert_eq!(qr_packer::check::MAX_HALF_LOCALS, check::MAX_HALF_LOCALS);
}

#[tokio::test]
async fn a_half_over_the_size_cap_is_refused_before_it_is_compiled() {
    let sandbox = sandbox(SandboxConfig::default());
    let cache = ComponentCache::new(4);
    let big = padded_to(component("", "i32.const 0"), MAX_HALF_BYTES + 1);
    let error = prepare(&sandbox, &cache, &big).await.unwrap_err();
    assert_eq!(
        error,
        HalfError::TooLarge { half: "device half".into(), size: MAX_HALF_BYTES as u64 + 1, max: MAX_HALF_BYTES as u64 }
    );
    assert_eq!(error.code(), FailureCode::HalfTooLarge);
    assert_eq!(sandbox.compilations(), 0, "nothing reached the compiler");
    // At the cap exactly, the same half is compiled.
    let at_cap = padded_to(component("", "i32.const 0"), MAX_HALF_BYTES);
    prepare(&sandbox, &cache, &at_cap).await.unwrap();
    assert_eq!(sandbox.compilations(), 1);
}

#[tokio::test]
async fn imports_and_world_are_checked_on_the_bytes_before_compiling() {
    let sandbox = sandbox(SandboxConfig::default());
    let cache = ComponentCache::new(4);
    // Each of these would also fail to compile (ill-typed code): the check
    // before compiling is what names the import.
    let foreign = component(r#"(import "wasi:filesystem/types@0.2.0" (instance))"#, ILL_TYPED);
    assert_eq!(
        prepare(&sandbox, &cache, &foreign).await.unwrap_err(),
        HalfError::ForeignImport { half: "device half".into(), name: "wasi:filesystem/types@0.2.0".into() }
    );
    let phone_only = HalfKind::Phone
        .allowed_imports()
        .iter()
        .find(|name| !HalfKind::Device.allowed_imports().contains(name))
        .expect("the phone world offers an interface the device world does not");
    let phone_import = component(&format!(r#"(import "{phone_only}" (instance))"#), ILL_TYPED);
    assert!(matches!(
        prepare(&sandbox, &cache, &phone_import).await.unwrap_err(),
        HalfError::ForeignImport { name, .. } if name == *phone_only
    ));
    let old_wit = component(r#"(import "iot-enroll:enrollment/transport@0.1.0" (instance))"#, ILL_TYPED);
    assert!(matches!(
        prepare(&sandbox, &cache, &old_wit).await.unwrap_err(),
        HalfError::UnsupportedWitVersion { found, supported, .. } if found == "0.1.0" && supported == WIT_VERSION
    ));
    let no_enroll = wat::parse_str("(component (core module $m))").unwrap();
    assert!(matches!(prepare(&sandbox, &cache, &no_enroll).await.unwrap_err(), HalfError::WrongWorld { .. }));
    let core = wat::parse_str("(module)").unwrap();
    assert!(matches!(prepare(&sandbox, &cache, &core).await.unwrap_err(), HalfError::CoreModule(_)));
    let mut truncated = component("", "i32.const 0");
    truncated.truncate(truncated.len() - 5);
    assert!(matches!(prepare(&sandbox, &cache, &truncated).await.unwrap_err(), HalfError::InvalidComponent { .. }));
    assert_eq!(sandbox.compilations(), 0, "every one was refused before compiling");
}

#[tokio::test]
async fn a_hostile_half_sent_a_hundred_times_is_compiled_once() {
    let sandbox = sandbox(SandboxConfig::default());
    let hostile = component("", ILL_TYPED);
    // Sent one after the other, each session with a cache of its own (as a
    // device drops its compiled halves after every session).
    for _ in 0..50 {
        let cache = ComponentCache::new(4);
        assert!(matches!(prepare(&sandbox, &cache, &hostile).await, Err(HalfError::InvalidComponent { .. })));
    }
    // And all at once, sharing one cache.
    let cache = ComponentCache::new(4);
    let results = futures::future::join_all((0..50).map(|_| prepare(&sandbox, &cache, &hostile))).await;
    assert!(results.iter().all(|r| matches!(r, Err(HalfError::InvalidComponent { .. }))), "{results:?}");
    assert_eq!(sandbox.compilations(), 1, "compiled once, refused from memory 99 times");
    assert_eq!(sandbox.remembered_refusals(), 1);
    // A refusal of a device half says nothing about the same bytes as a phone half.
    let linker = Linker::<()>::new(sandbox.engine());
    let phone_cache = ComponentCache::<PreparedHalf<Pre>>::new(1);
    let phone = sandbox.prepare(&phone_cache, HalfKind::Phone, &hostile, &linker, Ok).await;
    assert!(matches!(phone.map(drop), Err(HalfError::InvalidComponent { .. })));
    assert_eq!(sandbox.compilations(), 2);
}

#[tokio::test]
async fn remembered_refusals_stay_bounded() {
    let sandbox = sandbox(SandboxConfig { refusal_capacity: 8, ..SandboxConfig::default() });
    let cache = ComponentCache::new(4);
    for i in 0..40 {
        let hostile = component("", &format!("i32.const {i} drop"));
        assert!(prepare(&sandbox, &cache, &hostile).await.is_err());
    }
    assert_eq!(sandbox.remembered_refusals(), 8);
}

#[tokio::test]
async fn a_compile_past_its_timeout_is_refused_and_keeps_its_slot_until_it_ends() {
    // Cranelift, the slower compiler: the background compile must still be
    // running when the second half asks for the slot (with Winch it once
    // ended in between, on a loaded machine, and the second half got the slot).
    let config = SandboxConfig {
        compile_timeout: Duration::from_millis(1),
        max_concurrent_compiles: 1,
        compiler: crate::sandbox::Compiler::Cranelift,
        ..SandboxConfig::default()
    };
    let sandbox = sandbox(config);
    let cache = ComponentCache::new(4);
    let slow = slow_to_compile(200, 1);
    assert!(slow.len() <= MAX_HALF_BYTES, "{} bytes", slow.len());
    let error = prepare(&sandbox, &cache, &slow).await.unwrap_err();
    assert_eq!(error, HalfError::CompileTimeout { half: "device half".into(), timeout_ms: 1 });
    assert_eq!(error.code(), FailureCode::HalfCompileTimeout);
    // The compile cannot be cancelled: it runs on, and holds the one slot.
    assert_eq!(sandbox.compiles_running(), 1, "the timed-out compile still runs");
    let other = slow_to_compile(200, 2);
    assert!(matches!(prepare(&sandbox, &cache, &other).await, Err(HalfError::Exhausted { .. })));
    let waited = Instant::now();
    while sandbox.compiles_running() > 0 {
        assert!(waited.elapsed() < Duration::from_secs(60), "the background compile ended");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Sent again: refused from memory, not compiled again.
    assert!(matches!(prepare(&sandbox, &cache, &slow).await, Err(HalfError::CompileTimeout { .. })));
    assert_eq!(sandbox.compilations(), 1);
}

#[tokio::test]
async fn a_good_half_compiles_within_the_default_bounds() {
    let sandbox = sandbox(SandboxConfig::default());
    let cache = ComponentCache::new(4);
    prepare(&sandbox, &cache, &component("", "i32.const 0")).await.unwrap();
    prepare(&sandbox, &cache, &component("", "i32.const 0")).await.unwrap();
    assert_eq!(sandbox.compilations(), 1, "the second came from the cache");
    assert_eq!(sandbox.remembered_refusals(), 0);
}

/// A component holding only a core module of `functions` empty functions
/// that each declare `locals` i64 locals: a few bytes per function (one
/// `(count, type)` entry), and a compile that grows with count x functions.
fn many_locals(functions: u32, locals: u32) -> Vec<u8> {
    fn leb(mut v: u32, out: &mut Vec<u8>) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    fn section(id: u8, body: &[u8], out: &mut Vec<u8>) {
        out.push(id);
        leb(body.len() as u32, out);
        out.extend_from_slice(body);
    }
    let mut module = b"\0asm\x01\0\0\0".to_vec();
    section(1, &[1, 0x60, 0, 0], &mut module); // one type: [] -> []
    let mut funcs = Vec::new();
    leb(functions, &mut funcs);
    funcs.extend(std::iter::repeat_n(0u8, functions as usize));
    section(3, &funcs, &mut module);
    let mut body = vec![1]; // one local entry
    leb(locals, &mut body);
    body.extend_from_slice(&[0x7e, 0x0b]); // i64, end
    let mut code = Vec::new();
    leb(functions, &mut code);
    for _ in 0..functions {
        leb(body.len() as u32, &mut code);
        code.extend_from_slice(&body);
    }
    section(10, &code, &mut module);
    let mut component = b"\0asm\x0d\0\x01\0".to_vec();
    section(1, &module, &mut component); // a core module section
    component
}

#[tokio::test]
async fn a_small_half_declaring_millions_of_locals_is_refused_before_compiling() {
    let sandbox = sandbox(SandboxConfig::default());
    let cache = ComponentCache::new(4);
    // 1.7 KiB, and 10 million locals: measured at 12.8 s and +110 MiB to
    // compile with Winch in a debug build (6 s with Cranelift).
    let bomb = many_locals(200, 50_000);
    assert!(bomb.len() < 2048, "{} bytes", bomb.len());
    let started = Instant::now();
    let error = prepare(&sandbox, &cache, &bomb).await.unwrap_err();
    assert_eq!(
        error,
        HalfError::TooManyLocals { half: "device half".into(), declared: 10_000_000, max: check::MAX_HALF_LOCALS }
    );
    assert_eq!(error.code(), FailureCode::HalfTooLarge);
    assert_eq!(sandbox.compilations(), 0);
    assert!(started.elapsed() < Duration::from_secs(5), "refused from the declarations, not compiled");
    // Within the cap, the count does not stop a half (it fails later, for
    // having no `enroll`).
    let within = many_locals(10, (check::MAX_HALF_LOCALS / 10) as u32);
    assert!(matches!(prepare(&sandbox, &cache, &within).await, Err(HalfError::WrongWorld { .. })));
}
