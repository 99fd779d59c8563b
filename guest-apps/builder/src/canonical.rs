//! Gives a half's core module every import of its world, in the world's
//! order, before it is componentized: the same component structure and the
//! same function and type indices for every app of a world, whatever it
//! calls.
//!
//! Why: the linker keeps only the imports a half calls, in the order it
//! first calls them, and numbers the module's types and functions after
//! them. Two halves that call different imports then differ everywhere a
//! function or type index is written (every `call`), and their components
//! differ in the type sections, the lowered imports and the shim modules
//! wit-component derives from the imports. The shipped compression
//! dictionary holds the dictionary seeds, which call every import of their
//! world, so an app whose import set is not theirs matched it in small
//! pieces only. With every import present in one order, the structure is
//! the seeds' byte for byte and what remains is the app's own code.
//!
//! What an unused import costs: its name and signature in the module and a
//! lowered function in the component, all of them in the dictionary; the
//! host provides every function of the world anyway, and a half still can
//! import nothing outside its world.
//!
//! The world is the one the module's bindings were generated for (the
//! `component-type` custom section wit-bindgen writes, not the
//! "…-with-all-of-its-exports-removed" sections other `generate!` calls
//! of the same SDK leave). A module this does not understand (no such
//! section, an import that is not a function of the world, types other
//! than plain function types) is returned unchanged: it is still
//! componentized as it is, only without the size benefit.

use std::collections::HashMap;

use wasm_encoder::reencode::{self, Reencode, RoundtripReencoder};
use wasm_encoder::{EntityType, ImportSection, TypeSection, ValType};
use wasmparser::{CompositeInnerType, Parser, Payload, TypeRef};
use wit_parser::abi::{AbiVariant, WasmType};
use wit_parser::{Resolve, WorldItem};

/// A function type: parameters and results.
type Signature = (Vec<ValType>, Vec<ValType>);

/// An import of the world: module, name, signature.
type Import = (String, String, Signature);

/// `core` with every import of its world, in the world's order (see the
/// module docs), or `core` unchanged when it cannot be done.
pub fn with_whole_world(core: &[u8]) -> Vec<u8> {
    match plan(core) {
        Some(plan) => rewrite(core, plan).unwrap_or_else(|| core.to_vec()),
        None => core.to_vec(),
    }
}

/// The new type section and imports, and where each old type and function goes.
struct Plan {
    types: Vec<Signature>,
    imports: Vec<(String, String, u32)>,
    type_map: Vec<u32>,
    function_map: Vec<u32>,
}

fn plan(core: &[u8]) -> Option<Plan> {
    let world = world_imports(core)?;
    let mut old_types: Vec<Signature> = Vec::new();
    let mut old_imports: Vec<(String, String, u32)> = Vec::new();
    let mut defined = 0u32;
    for payload in Parser::new(0).parse_all(core) {
        match payload.ok()? {
            Payload::TypeSection(reader) => {
                for group in reader {
                    let group = group.ok()?;
                    if group.is_explicit_rec_group() {
                        return None;
                    }
                    for ty in group.types() {
                        let CompositeInnerType::Func(func) = &ty.composite_type.inner else { return None };
                        let convert = |types: &[wasmparser::ValType]| -> Option<Vec<ValType>> {
                            types.iter().map(|t| RoundtripReencoder.val_type(*t).ok()).collect()
                        };
                        old_types.push((convert(func.params())?, convert(func.results())?));
                    }
                }
            }
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    let import = import.ok()?;
                    let TypeRef::Func(ty) = import.ty else { return None };
                    old_imports.push((import.module.to_string(), import.name.to_string(), ty));
                }
            }
            Payload::FunctionSection(reader) => defined = reader.count(),
            _ => {}
        }
    }
    if old_imports.is_empty() {
        return None;
    }

    // The world's signatures first, in order, each once; then the module's
    // other types, each once.
    let mut types: Vec<Signature> = Vec::new();
    let index_of = |sig: &Signature, types: &mut Vec<Signature>| -> u32 {
        match types.iter().position(|t| t == sig) {
            Some(i) => i as u32,
            None => {
                types.push(sig.clone());
                (types.len() - 1) as u32
            }
        }
    };
    let imports: Vec<(String, String, u32)> =
        world.iter().map(|(module, name, sig)| (module.clone(), name.clone(), index_of(sig, &mut types))).collect();
    let type_map: Vec<u32> = old_types.iter().map(|sig| index_of(sig, &mut types)).collect();

    let position: HashMap<(&str, &str), usize> =
        world.iter().enumerate().map(|(i, (module, name, _))| ((module.as_str(), name.as_str()), i)).collect();
    let mut function_map = Vec::with_capacity(old_imports.len() + defined as usize);
    for (module, name, ty) in &old_imports {
        let at = *position.get(&(module.as_str(), name.as_str()))?;
        // The linker's signature must be the world's, or this is not a
        // module of that world.
        if old_types.get(*ty as usize)? != &world[at].2 {
            return None;
        }
        function_map.push(at as u32);
    }
    function_map.extend((0..defined).map(|k| world.len() as u32 + k));
    Some(Plan { types, imports, type_map, function_map })
}

/// Every function import of the world the module's bindings were generated
/// for: (module, name, core signature), in the world's order.
fn world_imports(core: &[u8]) -> Option<Vec<Import>> {
    let mut primary = None;
    for payload in Parser::new(0).parse_all(core) {
        if let Payload::CustomSection(section) = payload.ok()? {
            let name = section.name();
            if name.starts_with("component-type") && !name.contains("-with-all-of-its-exports-removed") {
                if primary.is_some() {
                    return None;
                }
                primary = Some(section.data());
            }
        }
    }
    let (resolve, world) = wit_parser::decoding::decode_world(primary?).ok()?;
    let mut imports = Vec::new();
    for (key, item) in &resolve.worlds[world].imports {
        match item {
            WorldItem::Interface { id, .. } => {
                let module = resolve.name_world_key(key);
                for (name, func) in &resolve.interfaces[*id].functions {
                    imports.push((module.clone(), name.clone(), signature(&resolve, func)?));
                }
            }
            WorldItem::Function(func) => imports.push(("$root".into(), func.name.clone(), signature(&resolve, func)?)),
            WorldItem::Type { .. } => {}
        }
    }
    Some(imports)
}

fn signature(resolve: &Resolve, func: &wit_parser::Function) -> Option<Signature> {
    let sig = resolve.wasm_signature(AbiVariant::GuestImport, func);
    let convert = |types: &[WasmType]| -> Option<Vec<ValType>> {
        types
            .iter()
            .map(|t| match t {
                WasmType::I32 | WasmType::Pointer | WasmType::Length => Some(ValType::I32),
                WasmType::I64 | WasmType::PointerOrI64 => Some(ValType::I64),
                WasmType::F32 => Some(ValType::F32),
                WasmType::F64 => Some(ValType::F64),
            })
            .collect()
    };
    Some((convert(&sig.params)?, convert(&sig.results)?))
}

/// Re-encodes `core` with the plan's types and imports, every type and
/// function index mapped; the `name` section (function names by the old
/// indices) is dropped.
fn rewrite(core: &[u8], plan: Plan) -> Option<Vec<u8>> {
    let mut module = wasm_encoder::Module::new();
    let mut reencoder = Renumber { plan };
    reencoder.parse_core_module(&mut module, Parser::new(0), core).ok()?;
    let out = module.finish();
    wasmparser::validate(&out).ok()?;
    Some(out)
}

struct Renumber {
    plan: Plan,
}

impl Reencode for Renumber {
    type Error = std::convert::Infallible;

    fn function_index(&mut self, func: u32) -> Result<u32, reencode::Error<Self::Error>> {
        Ok(self.plan.function_map.get(func as usize).copied().unwrap_or(func))
    }

    fn type_index(&mut self, ty: u32) -> Result<u32, reencode::Error<Self::Error>> {
        Ok(self.plan.type_map.get(ty as usize).copied().unwrap_or(ty))
    }

    fn parse_type_section(
        &mut self,
        types: &mut TypeSection,
        _: wasmparser::TypeSectionReader<'_>,
    ) -> Result<(), reencode::Error<Self::Error>> {
        for (params, results) in &self.plan.types {
            types.ty().function(params.iter().copied(), results.iter().copied());
        }
        Ok(())
    }

    fn parse_import_section(
        &mut self,
        imports: &mut ImportSection,
        _: wasmparser::ImportSectionReader<'_>,
    ) -> Result<(), reencode::Error<Self::Error>> {
        for (module, name, ty) in &self.plan.imports {
            imports.import(module, name, EntityType::Function(*ty));
        }
        Ok(())
    }

    fn parse_custom_section(
        &mut self,
        module: &mut wasm_encoder::Module,
        section: wasmparser::CustomSectionReader<'_>,
    ) -> Result<(), reencode::Error<Self::Error>> {
        if section.name() == "name" {
            return Ok(());
        }
        reencode::utils::parse_custom_section(self, module, section)
    }
}

#[cfg(test)]
mod tests {
    use super::with_whole_world;

    #[test]
    fn a_module_without_bindings_is_left_as_it_is() {
        // No `component-type` section: no world to take the imports from.
        let core = wat::parse_str(r#"(module (import "m" "f" (func)) (func (export "g") call 0))"#).unwrap();
        assert_eq!(with_whole_world(&core), core);
        let no_imports = wat::parse_str(r#"(module (func (export "g")))"#).unwrap();
        assert_eq!(with_whole_world(&no_imports), no_imports);
    }
}
