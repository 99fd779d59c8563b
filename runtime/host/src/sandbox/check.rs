//! The checks a half's raw bytes pass before any code is generated for them.
//!
//! Compiling is the one step of loading a half that no deadline covers, so
//! whatever can be refused without compiling is refused here: a half that is
//! too large or declares too many locals (the two inputs compile cost grows
//! with), a core module, bytes that do not parse as a component, an import
//! outside the half's world (or of another WIT version) and a missing
//! `enroll` export. `wasmparser` reads the component's own (outermost)
//! import and export sections and the local declarations of every function
//! body; nothing else nested is looked at and nothing is validated, which is
//! linear in the size and cheap. The world's import lists
//! are generated from `wit/enrollment.wit` by `build.rs`.

use super::{HalfError, HalfKind, WIT_VERSION};

/// The largest half, in bytes, the sandbox compiles.
///
/// Compiling has no deadline, fuel or memory cap of its own (wasmtime offers
/// none for compilation), so the size of the input is what bounds it: a
/// crafted 64 KiB half was measured costing over 100 MiB of peak memory to
/// compile. The reference halves (`guest-apps`) are 2.9 to 8.8 KiB as
/// components, and a QR label carries at most 2,953 bytes, compressed;
/// 32 KiB is over 3.5 times the largest reference half and still far from
/// what a label could ever decompress to for real code.
pub const MAX_HALF_BYTES: usize = 32 * 1024;

/// The most locals a half may declare, summed over all its functions.
///
/// Locals are declared as `(count, type)` pairs, so a few bytes declare
/// 50,000 of them, and the compilers' work grows with the count: a 1.7 KiB
/// half of 200 functions with 50,000 locals each took 12.8 s and 110 MiB
/// to compile with Winch (debug build). The size cap does not catch that;
/// this does. The reference halves declare 6 to 75 locals in all (17 at most
/// in one function); 10,000 is over 130 times that.
pub const MAX_HALF_LOCALS: u64 = 10_000;

/// Refuses, before compiling, any half that is not a component of `kind`'s
/// world, with the error that says which check it failed. `max_bytes` is
/// [`super::SandboxConfig::max_half_bytes`].
pub(super) fn check_half(kind: HalfKind, bytes: &[u8], max_bytes: usize) -> Result<(), HalfError> {
    if bytes.len() > max_bytes {
        return Err(HalfError::TooLarge { half: kind.to_string(), size: bytes.len() as u64, max: max_bytes as u64 });
    }
    if wasmparser::Parser::is_core_wasm(bytes) {
        return Err(HalfError::CoreModule(kind.to_string()));
    }
    if !wasmparser::Parser::is_component(bytes) {
        return Err(HalfError::InvalidComponent {
            half: kind.to_string(),
            reason: "it does not start with the component-model preamble".into(),
        });
    }
    let outline = Outline::read(bytes).map_err(|e| HalfError::InvalidComponent {
        half: kind.to_string(),
        reason: format!("it does not parse as a component: {e}"),
    })?;
    if outline.locals > MAX_HALF_LOCALS {
        return Err(HalfError::TooManyLocals { half: kind.to_string(), declared: outline.locals, max: MAX_HALF_LOCALS });
    }
    check_imports(kind, &outline)?;
    let export = kind.export();
    if !outline.exports.iter().any(|n| n == export) {
        return Err(HalfError::WrongWorld {
            half: kind.to_string(),
            reason: format!("it exports {:?}, not `{export}`", outline.exports),
        });
    }
    Ok(())
}

/// The outermost imports and exports of a component.
struct Outline {
    /// Import names, and whether each imports an instance (an interface).
    imports: Vec<(String, bool)>,
    exports: Vec<String>,
    /// Locals declared by every function of every core module, summed.
    locals: u64,
}

impl Outline {
    fn read(bytes: &[u8]) -> Result<Self, wasmparser::BinaryReaderError> {
        use wasmparser::{ComponentTypeRef, Payload};
        let mut outline = Outline { imports: Vec::new(), exports: Vec::new(), locals: 0 };
        // Nested modules and components are parsed in line by `parse_all`;
        // only the sections of the outermost component (depth 0) count.
        let mut depth = 0usize;
        for payload in wasmparser::Parser::new(0).parse_all(bytes) {
            match payload? {
                Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
                Payload::End(_) => depth = depth.saturating_sub(1),
                Payload::ComponentImportSection(reader) if depth == 0 => {
                    for import in reader {
                        let import = import?;
                        let is_instance = matches!(import.ty, ComponentTypeRef::Instance(_));
                        outline.imports.push((import.name.full_name().into_owned(), is_instance));
                    }
                }
                Payload::ComponentExportSection(reader) if depth == 0 => {
                    for export in reader {
                        outline.exports.push(export?.name.full_name().into_owned());
                    }
                }
                // Function bodies are only outlined by the parser; their
                // local declarations are the first thing in them.
                Payload::CodeSectionEntry(body) => {
                    for entry in body.get_locals_reader()? {
                        outline.locals = outline.locals.saturating_add(u64::from(entry?.0));
                    }
                }
                _ => {}
            }
        }
        Ok(outline)
    }
}

/// The locals `bytes` (a component) declares in all, for tests and tools.
pub fn declared_locals(bytes: &[u8]) -> Result<u64, wasmparser::BinaryReaderError> {
    Outline::read(bytes).map(|outline| outline.locals)
}

/// Every import must be one of the world's interfaces: a half gets exactly
/// the capabilities of its world, and is told by name which import it may
/// not have.
fn check_imports(kind: HalfKind, outline: &Outline) -> Result<(), HalfError> {
    let allowed = kind.allowed_imports();
    for (name, is_instance) in &outline.imports {
        if let Some(found) = wit_version_of(name)
            && found != WIT_VERSION
        {
            return Err(HalfError::UnsupportedWitVersion {
                half: kind.to_string(),
                found: found.to_string(),
                supported: WIT_VERSION.to_string(),
            });
        }
        if !(*is_instance && allowed.contains(&name.as_str())) {
            return Err(HalfError::ForeignImport { half: kind.to_string(), name: name.clone() });
        }
    }
    Ok(())
}

/// The package version an import of `iot-enroll:enrollment/...@V` names.
fn wit_version_of(import: &str) -> Option<&str> {
    import.strip_prefix("iot-enroll:enrollment/")?.split_once('@').map(|(_, v)| v)
}
