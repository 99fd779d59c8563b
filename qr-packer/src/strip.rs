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
    let mut offset = 0usize;
    loop {
        let (consumed, payload) = match parser.parse(&wasm[offset..], true)? {
            Chunk::Parsed { consumed, payload } => (consumed, payload),
            Chunk::NeedMoreData(_) => return Err(StripError::Truncated),
        };
        let header = offset..offset + consumed;
        offset += consumed;
        match payload {
            Payload::Version { .. } => out.extend_from_slice(&wasm[header]),
            Payload::CustomSection(_) => {}
            Payload::End(_) => return Ok(out),
            // A nested module or component: strip it too. The parent parser
            // does not read the nested bytes, so step over them here.
            Payload::ModuleSection { unchecked_range, .. } | Payload::ComponentSection { unchecked_range, .. } => {
                let range = span(unchecked_range)?;
                let inner = strip_custom_sections(&wasm[range.clone()])?;
                section(&mut out, wasm[header.start], &inner);
                offset = range.end;
            }
            // Copy the code section whole instead of entry by entry.
            Payload::CodeSectionStart { unchecked_range, .. } => {
                let range = span(unchecked_range)?;
                section(&mut out, wasm[header.start], &wasm[range.clone()]);
                parser.skip_section();
                offset = range.end;
            }
            other => {
                if let Some((id, range)) = other.as_section() {
                    section(&mut out, id, &wasm[span(range)?]);
                }
            }
        }
    }
}

/// Appends one section: its id, then its length-prefixed contents.
fn section(out: &mut Vec<u8>, id: u8, data: &[u8]) {
    out.push(id);
    RawSection { id, data }.encode(out);
}

/// A section's byte range as indices into the binary.
fn span<T: TryInto<usize>>(range: std::ops::Range<T>) -> Result<std::ops::Range<usize>, StripError> {
    match (range.start.try_into(), range.end.try_into()) {
        (Ok(start), Ok(end)) => Ok(start..end),
        _ => Err(StripError::Truncated),
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
