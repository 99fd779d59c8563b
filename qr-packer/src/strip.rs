//! Removes custom sections from a component, at every nesting level.
//!
//! A componentized half carries names (`name`, `component-name`), producer
//! records, the `component-type` WIT description and similar custom sections:
//! about a kilobyte per half that the runtime never reads, and a kilobyte is a
//! third of a QR code. Everything else is copied byte for byte, so the result
//! is the same component: same types, same code, same imports and exports.

use wasm_encoder::{Encode, RawSection};
use wasmparser::{Chunk, Parser, Payload};

/// Why a component could not be stripped.
#[derive(Debug, thiserror::Error)]
pub enum StripError {
    #[error("not a WebAssembly binary: {0}")]
    Parse(#[from] wasmparser::BinaryReaderError),
    #[error("the binary ends in the middle of a section")]
    Truncated,
}

/// A copy of `wasm` (a component or a core module) without custom sections.
pub fn strip_custom_sections(wasm: &[u8]) -> Result<Vec<u8>, StripError> {
    let mut out = Vec::with_capacity(wasm.len());
    let mut parser = Parser::new(0);
    let mut rest = wasm;
    loop {
        let (consumed, payload) = match parser.parse(rest, true)? {
            Chunk::Parsed { consumed, payload } => (consumed, payload),
            Chunk::NeedMoreData(_) => return Err(StripError::Truncated),
        };
        match payload {
            Payload::Version { .. } => out.extend_from_slice(&rest[..consumed]),
            Payload::CustomSection(_) => {}
            Payload::ModuleSection { unchecked_range, .. } | Payload::ComponentSection { unchecked_range, .. } => {
                let id = rest[0];
                let inner = strip_custom_sections(&wasm[unchecked_range.clone()])?;
                RawSection { id, data: &inner }.encode(&mut out);
                parser.skip_section();
                rest = &wasm[unchecked_range.end..];
                continue;
            }
            Payload::End(_) => return Ok(out),
            other => {
                // A code section is copied whole at its start; its entries,
                // reported one by one afterwards, are not sections.
                if let Some((id, range)) = other.as_section() {
                    RawSection { id, data: &wasm[range] }.encode(&mut out);
                }
            }
        }
        rest = &rest[consumed..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use enrollment_apps::ALL;

    fn validate(bytes: &[u8]) {
        wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all()).validate_all(bytes).unwrap();
    }

    fn custom_sections(bytes: &[u8]) -> Vec<String> {
        Parser::new(0)
            .parse_all(bytes)
            .filter_map(|p| match p.unwrap() {
                Payload::CustomSection(c) => Some(c.name().to_string()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn reference_halves_lose_every_custom_section_and_stay_valid() {
        for app in ALL {
            for half in [app.phone, app.device] {
                assert!(!custom_sections(half).is_empty(), "{} has custom sections to remove", app.name);
                let stripped = strip_custom_sections(half).unwrap();
                validate(&stripped);
                assert!(custom_sections(&stripped).is_empty());
                assert!(stripped.len() < half.len());
                assert_eq!(strip_custom_sections(&stripped).unwrap(), stripped, "stripping is idempotent");
            }
        }
    }

    #[test]
    fn a_core_module_keeps_its_code() {
        let wasm = wat::parse_str(r#"(module (@custom "x" "hello") (func (export "f") (result i32) i32.const 7))"#).unwrap();
        let stripped = strip_custom_sections(&wasm).unwrap();
        validate(&stripped);
        assert!(custom_sections(&stripped).is_empty());
        assert_eq!(stripped, wat::parse_str(r#"(module (func (export "f") (result i32) i32.const 7))"#).unwrap());
    }

    #[test]
    fn garbage_and_truncation_are_errors() {
        assert!(strip_custom_sections(b"not wasm at all").is_err());
        let half = ALL[0].device;
        assert!(strip_custom_sections(&half[..half.len() - 3]).is_err());
    }
}
