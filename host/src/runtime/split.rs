//! Splitting a built model component into the guest's code and the model's data, so that
//! `wafer serve` compiles a guest's code once for every model built from it.
//!
//! A model's component is the generic guest snapshotted by Wizer: the guest's main core module,
//! whose code is the same for every model, with the model in its memory image (its data
//! segments). [`split`] rewrites it into two parts:
//!
//! - **the code**: that core module with its memory imported (from [`IMAGE_MODULE`]) instead of
//!   defined, and without data segments. It is the same bytes for every model built from one
//!   guest, so it is compiled, cached and mapped once.
//! - **the rest**: the component, which now imports the code as a core module
//!   ([`CODE_IMPORT`]) and holds a small module of its own that defines the memory with the
//!   model's data segments, instantiated first and handed to the code. Compiling it compiles the
//!   model's memory image and the component's glue, not the guest.
//!
//! The split is an optimization of `wafer serve`'s compiled cache only: a component it cannot
//! split (another shape than Wizer's and wit-component's) is compiled whole, and what
//! `wafer build` writes is unchanged, for `wasmtime serve`, Spin and the browser.

use std::ops::Range;

use wasm_encoder::reencode::{Reencode as _, RoundtripReencoder};
use wasm_encoder::{ComponentImportSection, ComponentTypeRef, CoreTypeSection, EntityType};
use wasmparser::BinaryReader;

/// The name under which the rest imports the code.
pub const CODE_IMPORT: &str = "wafer-guest-code";

/// The module name under which the code imports its memory.
pub const IMAGE_MODULE: &str = "wafer-image";

/// A component split in two.
pub struct Split {
    /// The guest's main core module, its memory imported and its data removed.
    pub code: Vec<u8>,
    /// The component, importing `code` as [`CODE_IMPORT`].
    pub rest: Vec<u8>,
}

/// Why a component was not split.
#[derive(Debug, thiserror::Error)]
pub enum SplitError {
    /// Its shape is not the one this split knows.
    #[error("cannot split the component: {0}")]
    Shape(&'static str),
    /// It does not parse.
    #[error("cannot split the component: {0}")]
    Parse(#[from] wasmparser::BinaryReaderError),
    /// A type could not be carried into the code's module type.
    #[error("cannot split the component: {0}")]
    Reencode(#[from] wasm_encoder::reencode::Error),
}

type Result<T> = std::result::Result<T, SplitError>;

/// Component section ids (the component model's binary format).
const CORE_MODULE: u8 = 1;
const CORE_INSTANCE: u8 = 2;
const CORE_TYPE: u8 = 3;
const ALIAS: u8 = 6;
const IMPORT: u8 = 10;

/// Core module section ids.
const IMPORTS: u8 = 2;
const MEMORIES: u8 = 5;
const EXPORTS: u8 = 7;
const START: u8 = 8;
const DATA: u8 = 11;
const DATA_COUNT: u8 = 12;

/// Splits `component` into the guest's code and the rest (see the module's documentation).
pub fn split(component: &[u8]) -> Result<Split> {
    let sections = sections_of(component)?;
    if sections.iter().any(|s| s.id == CORE_TYPE) {
        return Err(SplitError::Shape("it defines core types"));
    }
    for s in sections.iter().filter(|s| s.id == IMPORT) {
        let reader = wasmparser::ComponentImportSectionReader::new(s.reader(component))?;
        for import in reader {
            if matches!(import?.ty, wasmparser::ComponentTypeRef::Module(_)) {
                return Err(SplitError::Shape("it imports a core module"));
            }
        }
    }
    for s in sections.iter().filter(|s| s.id == ALIAS) {
        for alias in wasmparser::ComponentAliasSectionReader::new(s.reader(component))? {
            let module = match alias? {
                wasmparser::ComponentAlias::InstanceExport { kind, .. } => {
                    kind == wasmparser::ComponentExternalKind::Module
                }
                wasmparser::ComponentAlias::Outer { kind, .. } => {
                    kind == wasmparser::ComponentOuterAliasKind::CoreModule
                }
                wasmparser::ComponentAlias::CoreInstanceExport { .. } => false,
            };
            if module {
                return Err(SplitError::Shape("it aliases a core module"));
            }
        }
    }
    // The core modules, in the order of their indices.
    let modules: Vec<&Section> = sections.iter().filter(|s| s.id == CORE_MODULE).collect();
    let main = modules
        .iter()
        .position(|s| {
            let module = &component[s.content.clone()];
            sections_of(module).is_ok_and(|inner| {
                inner.iter().any(|i| i.id == MEMORIES) && inner.iter().any(|i| i.id == DATA)
            })
        })
        .ok_or(SplitError::Shape("no core module holds a memory image"))?;
    let main_section = modules[main];
    let last_module = *modules.last().unwrap_or(&main_section);
    let (code, image) = code_and_image(&component[main_section.content.clone()])?;
    let image_module = modules.len() as u32;
    let code_type = module_type(&code)?;

    // The core instances: which one instantiates the main module, and where the image's
    // instance goes (just before the section holding it; later instances move up by one).
    let mut index = 0u32;
    let mut target = None;
    for s in sections.iter().filter(|s| s.id == CORE_INSTANCE) {
        let reader = wasmparser::InstanceSectionReader::new(s.reader(component))?;
        let first = index;
        for instance in reader {
            if let wasmparser::Instance::Instantiate { module_index, .. } = instance?
                && module_index == main as u32
            {
                if target.is_some() {
                    return Err(SplitError::Shape("its main module is instantiated twice"));
                }
                target = Some((s.content.start, first));
            }
            index += 1;
        }
    }
    let (target_section, image_instance) =
        target.ok_or(SplitError::Shape("its main module is never instantiated"))?;
    // The image module goes after the last module, so that no module index moves: it must be
    // defined before its instance.
    if last_module.content.start > target_section {
        return Err(SplitError::Shape(
            "a core module is defined after the main module's instance",
        ));
    }
    let moved = |i: u32| if i >= image_instance { i + 1 } else { i };

    let mut rest = component[..8].to_vec();
    for s in &sections {
        let content = &component[s.content.clone()];
        match s.id {
            CORE_MODULE if s.content == main_section.content => {
                let mut types = CoreTypeSection::new();
                types.ty().module(&code_type);
                push_section(&mut rest, CORE_TYPE, &encoded(&types));
                let mut imports = ComponentImportSection::new();
                imports.import(CODE_IMPORT, ComponentTypeRef::Module(0));
                push_section(&mut rest, IMPORT, &encoded(&imports));
                if s.content == last_module.content {
                    push_section(&mut rest, CORE_MODULE, &image);
                }
            }
            CORE_MODULE if s.content == last_module.content => {
                push_section(&mut rest, CORE_MODULE, content);
                push_section(&mut rest, CORE_MODULE, &image);
            }
            CORE_INSTANCE => {
                if s.content.start == target_section {
                    // `(core instance (instantiate $image))`
                    let mut instance = vec![1, 0x00];
                    leb(&mut instance, image_module);
                    leb(&mut instance, 0);
                    push_section(&mut rest, CORE_INSTANCE, &instance);
                }
                let added = (main as u32, image_instance);
                push_section(
                    &mut rest,
                    CORE_INSTANCE,
                    &instances(s, component, moved, added)?,
                );
            }
            ALIAS => push_section(&mut rest, ALIAS, &aliases(s, component, moved)?),
            _ => push_section(&mut rest, s.id, content),
        }
    }
    Ok(Split { code, rest })
}

/// A section: its id and where its content is.
#[derive(Clone, Debug)]
struct Section {
    id: u8,
    content: Range<usize>,
}

impl Section {
    fn reader<'a>(&self, bytes: &'a [u8]) -> BinaryReader<'a> {
        BinaryReader::new(&bytes[self.content.clone()], self.content.start)
    }
}

/// The sections of a module or component, after its 8-byte header.
fn sections_of(bytes: &[u8]) -> Result<Vec<Section>> {
    if bytes.len() < 8 {
        return Err(SplitError::Shape("truncated"));
    }
    let mut reader = BinaryReader::new(&bytes[8..], 8);
    let mut sections = Vec::new();
    while !reader.eof() {
        let id = reader.read_u8()?;
        let size = reader.read_var_u32()? as usize;
        let start = reader.original_position();
        reader.read_bytes(size)?;
        sections.push(Section {
            id,
            content: start..start + size,
        });
    }
    Ok(sections)
}

/// The main module split: its code (memory imported, no data) and the image module (the memory
/// and the data segments, the memory exported as `memory`).
fn code_and_image(module: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
    let sections = sections_of(module)?;
    let content = |id: u8| sections.iter().find(|s| s.id == id);
    if content(DATA_COUNT).is_some() || content(START).is_some() {
        return Err(SplitError::Shape(
            "its main module has a start or a data count",
        ));
    }
    let memories = content(MEMORIES).ok_or(SplitError::Shape("no memory"))?;
    let data = content(DATA).ok_or(SplitError::Shape("no data"))?;
    let reader = wasmparser::MemorySectionReader::new(memories.reader(module))?;
    let count = reader.count();
    // The memory imported, and the defined one the data goes to: only the defined one is.
    if let Some(imports) = sections.iter().find(|s| s.id == IMPORTS) {
        let reader = wasmparser::ImportSectionReader::new(imports.reader(module))?;
        for import in reader.into_imports() {
            if matches!(import?.ty, wasmparser::TypeRef::Memory(_)) {
                return Err(SplitError::Shape("its main module imports a memory"));
            }
        }
    }
    let memory = match (count, reader.into_iter().next().transpose()?) {
        (1, Some(m)) if !m.memory64 && !m.shared && m.page_size_log2.is_none() => m,
        _ => {
            return Err(SplitError::Shape(
                "its main module has other than one 32-bit memory",
            ));
        }
    };

    // The code's memory import: any size the image gives it, up to the same maximum.
    let mut import = Vec::new();
    name(&mut import, IMAGE_MODULE);
    name(&mut import, "memory");
    import.push(0x02);
    match memory.maximum {
        Some(max) => {
            import.push(0x01);
            leb(&mut import, 0);
            leb(
                &mut import,
                u32::try_from(max).map_err(|_| SplitError::Shape("memory"))?,
            );
        }
        None => {
            import.push(0x00);
            leb(&mut import, 0);
        }
    }
    let mut code = module[..8].to_vec();
    let mut imported = false;
    for s in &sections {
        // A module that imports nothing gets an import section where it would be.
        if !imported && !matches!(s.id, 0 | 1 | IMPORTS) {
            let mut content = vec![1];
            content.extend_from_slice(&import);
            push_section(&mut code, IMPORTS, &content);
            imported = true;
        }
        match s.id {
            MEMORIES | DATA => {}
            IMPORTS => {
                let mut reader = s.reader(module);
                let count = reader.read_var_u32()?;
                let entries = reader.original_position();
                let mut content = Vec::new();
                leb(&mut content, count + 1);
                content.extend_from_slice(&module[entries..s.content.end]);
                content.extend_from_slice(&import);
                push_section(&mut code, IMPORTS, &content);
                imported = true;
            }
            _ => push_section(&mut code, s.id, &module[s.content.clone()]),
        }
    }

    let mut image = module[..8].to_vec();
    push_section(&mut image, MEMORIES, &module[memories.content.clone()]);
    let mut export = vec![1];
    name(&mut export, "memory");
    export.extend_from_slice(&[0x02, 0x00]);
    push_section(&mut image, EXPORTS, &export);
    push_section(&mut image, DATA, &module[data.content.clone()]);

    let features = wasmparser::WasmFeatures::all();
    for (what, bytes) in [("code", &code), ("image", &image)] {
        wasmparser::Validator::new_with_features(features)
            .validate_all(bytes)
            .map_err(|e| {
                tracing::debug!(part = what, error = %e, "split part does not validate");
                SplitError::Shape("a part does not validate")
            })?;
    }
    Ok((code, image))
}

/// The core module type of `code`: its types, imports and exports.
fn module_type(code: &[u8]) -> Result<wasm_encoder::ModuleType> {
    let mut ty = wasm_encoder::ModuleType::new();
    let mut re = RoundtripReencoder;
    // The type of each function, table, memory and global, by index.
    let (mut funcs, mut tables, mut memories, mut globals) = (vec![], vec![], vec![], vec![]);
    let mut exports = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(code) {
        match payload? {
            wasmparser::Payload::TypeSection(reader) => {
                for group in reader {
                    re.parse_recursive_type_group(ty.ty(), group?)?;
                }
            }
            wasmparser::Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    let import = import?;
                    let entity = re.entity_type(import.ty)?;
                    match entity {
                        EntityType::Function(t) => funcs.push(t),
                        EntityType::Table(t) => tables.push(t),
                        EntityType::Memory(t) => memories.push(t),
                        EntityType::Global(t) => globals.push(t),
                        _ => return Err(SplitError::Shape("it imports a tag")),
                    }
                    ty.import(import.module, import.name, entity);
                }
            }
            wasmparser::Payload::FunctionSection(reader) => {
                for f in reader {
                    funcs.push(f?);
                }
            }
            wasmparser::Payload::TableSection(reader) => {
                for t in reader {
                    tables.push(re.table_type(t?.ty)?);
                }
            }
            wasmparser::Payload::GlobalSection(reader) => {
                for g in reader {
                    globals.push(re.global_type(g?.ty)?);
                }
            }
            wasmparser::Payload::ExportSection(reader) => {
                for e in reader {
                    let e = e?;
                    exports.push((e.name, e.kind, e.index as usize));
                }
            }
            _ => {}
        }
    }
    for (name, kind, index) in exports {
        let entity = match kind {
            wasmparser::ExternalKind::Func => funcs.get(index).map(|&t| EntityType::Function(t)),
            wasmparser::ExternalKind::Table => tables.get(index).map(|&t| EntityType::Table(t)),
            wasmparser::ExternalKind::Memory => memories.get(index).map(|&t| EntityType::Memory(t)),
            wasmparser::ExternalKind::Global => globals.get(index).map(|&t| EntityType::Global(t)),
            _ => None,
        };
        ty.export(name, entity.ok_or(SplitError::Shape("an export"))?);
    }
    Ok(ty)
}

/// A core instance section with its instance indices moved, and the image instance (`added`:
/// the main module's index, the image instance's) passed to the main module's instantiation.
fn instances(
    s: &Section,
    bytes: &[u8],
    moved: impl Fn(u32) -> u32,
    (main, image): (u32, u32),
) -> Result<Vec<u8>> {
    let (count, items) = items::<wasmparser::Instance>(s, bytes)?;
    let mut out = Vec::new();
    leb(&mut out, count);
    for (range, instance) in items {
        match instance {
            wasmparser::Instance::Instantiate { module_index, args } => {
                out.push(0x00);
                leb(&mut out, module_index);
                let extra = u32::from(module_index == main);
                leb(&mut out, args.len() as u32 + extra);
                for arg in args.iter() {
                    name(&mut out, arg.name);
                    out.push(0x12);
                    leb(&mut out, moved(arg.index));
                }
                if extra == 1 {
                    name(&mut out, IMAGE_MODULE);
                    out.push(0x12);
                    leb(&mut out, image);
                }
            }
            wasmparser::Instance::FromExports(_) => out.extend_from_slice(&bytes[range]),
        }
    }
    Ok(out)
}

/// An alias section with the core instance indices of its core export aliases moved.
fn aliases(s: &Section, bytes: &[u8], moved: impl Fn(u32) -> u32) -> Result<Vec<u8>> {
    let (count, items) = items::<wasmparser::ComponentAlias>(s, bytes)?;
    let mut out = Vec::new();
    leb(&mut out, count);
    for (range, alias) in items {
        match alias {
            wasmparser::ComponentAlias::CoreInstanceExport {
                instance_index,
                name: export,
                ..
            } => {
                // sort (0x00, then the core sort), target 0x01, instance, name
                out.extend_from_slice(&bytes[range.start..range.start + 2]);
                out.push(0x01);
                leb(&mut out, moved(instance_index));
                name(&mut out, export);
            }
            _ => out.extend_from_slice(&bytes[range]),
        }
    }
    Ok(out)
}

/// A section's count of items, and each item with the range of its bytes.
type Items<T> = (u32, Vec<(Range<usize>, T)>);

/// The items of a section with their count, each with the range of its bytes.
fn items<'a, T: wasmparser::FromReader<'a>>(s: &Section, bytes: &'a [u8]) -> Result<Items<T>> {
    let reader = wasmparser::SectionLimited::<T>::new(s.reader(bytes))?;
    let count = reader.count();
    let mut items = Vec::new();
    for item in reader.into_iter_with_offsets() {
        items.push(item?);
    }
    // Each ends where the next begins.
    let ends: Vec<usize> = items.iter().skip(1).map(|(start, _)| *start).collect();
    let ends = ends.into_iter().chain([s.content.end]);
    let items = items.into_iter().zip(ends);
    Ok((
        count,
        items
            .map(|((start, item), end)| (start..end, item))
            .collect(),
    ))
}

fn encoded(section: &impl wasm_encoder::Encode) -> Vec<u8> {
    let mut bytes = Vec::new();
    section.encode(&mut bytes);
    // `encode` writes the section's content with its size in front: keep the content.
    let mut reader = BinaryReader::new(&bytes, 0);
    let size = reader.read_var_u32().unwrap_or(0) as usize;
    bytes[bytes.len() - size..].to_vec()
}

fn push_section(out: &mut Vec<u8>, id: u8, content: &[u8]) {
    out.push(id);
    leb(out, content.len() as u32);
    out.extend_from_slice(content);
}

fn name(out: &mut Vec<u8>, s: &str) {
    leb(out, s.len() as u32);
    out.extend_from_slice(s.as_bytes());
}

fn leb(out: &mut Vec<u8>, mut n: u32) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use wasm_encoder::{
        Alias, CanonicalFunctionSection, CodeSection, Component, ComponentAliasSection,
        ComponentExportKind, ComponentExportSection, ComponentTypeSection, ConstExpr, DataSection,
        ExportKind, ExportSection, Function, FunctionSection, Instruction, MemArg, MemorySection,
        MemoryType, Module, ModuleSection, PrimitiveValType, TypeSection,
    };
    use wasmtime::component::Linker;
    use wasmtime::{Engine, Store};

    use super::*;

    /// A component whose module holds `byte` at address 16 in its memory image, and exports
    /// `get`, which reads it.
    fn component(byte: u8) -> Vec<u8> {
        let mut module = Module::new();
        let mut types = TypeSection::new();
        types.ty().function([], [wasm_encoder::ValType::I32]);
        module.section(&types);
        let mut functions = FunctionSection::new();
        functions.function(0);
        module.section(&functions);
        let mut memories = MemorySection::new();
        memories.memory(MemoryType {
            minimum: 1,
            maximum: Some(2),
            memory64: false,
            shared: false,
            page_size_log2: None,
        });
        module.section(&memories);
        let mut exports = ExportSection::new();
        exports.export("get", ExportKind::Func, 0);
        exports.export("memory", ExportKind::Memory, 0);
        module.section(&exports);
        let mut code = CodeSection::new();
        let mut get = Function::new([]);
        get.instruction(&Instruction::I32Const(16));
        get.instruction(&Instruction::I32Load8U(MemArg {
            offset: 0,
            align: 0,
            memory_index: 0,
        }));
        get.instruction(&Instruction::End);
        code.function(&get);
        module.section(&code);
        let mut data = DataSection::new();
        data.active(0, &ConstExpr::i32_const(16), [byte]);
        module.section(&data);

        let mut component = Component::new();
        component.section(&ModuleSection(&module));
        let mut instances = wasm_encoder::InstanceSection::new();
        instances.instantiate(0, Vec::<(&str, wasm_encoder::ModuleArg)>::new());
        component.section(&instances);
        let mut aliases = ComponentAliasSection::new();
        aliases.alias(Alias::CoreInstanceExport {
            instance: 0,
            kind: ExportKind::Func,
            name: "get",
        });
        component.section(&aliases);
        let mut types = ComponentTypeSection::new();
        types
            .function()
            .params(Vec::<(&str, PrimitiveValType)>::new())
            .result(Some(PrimitiveValType::U32.into()));
        component.section(&types);
        let mut canon = CanonicalFunctionSection::new();
        canon.lift(0, 0, []);
        component.section(&canon);
        let mut exports = ComponentExportSection::new();
        exports.export("get", ComponentExportKind::Func, 0, None);
        component.section(&exports);
        component.finish()
    }

    fn get(engine: &Engine, linker: &Linker<()>, wasm: &[u8]) -> u32 {
        let component = wasmtime::component::Component::new(engine, wasm).unwrap();
        let mut store = Store::new(engine, ());
        let instance = linker.instantiate(&mut store, &component).unwrap();
        let get = instance
            .get_typed_func::<(), (u32,)>(&mut store, "get")
            .unwrap();
        get.call(&mut store, ()).unwrap().0
    }

    #[test]
    fn the_code_is_shared_and_each_rest_brings_its_image() {
        let (seven, nine) = (component(7), component(9));
        let (a, b) = (split(&seven).unwrap(), split(&nine).unwrap());
        assert_eq!(a.code, b.code, "the code differs with the data");
        assert_ne!(a.rest, b.rest);

        let engine = Engine::default();
        assert_eq!(get(&engine, &Linker::new(&engine), &seven), 7);
        let code = wasmtime::Module::new(&engine, &a.code).unwrap();
        let mut linker = Linker::new(&engine);
        linker.root().module(CODE_IMPORT, &code).unwrap();
        assert_eq!(get(&engine, &linker, &a.rest), 7);
        assert_eq!(get(&engine, &linker, &b.rest), 9);
    }

    #[test]
    fn what_it_cannot_split_it_says() {
        assert!(matches!(split(b"\0asm"), Err(SplitError::Shape(_))));
        let mut no_image = Component::new();
        no_image.section(&ModuleSection(&Module::new()));
        assert!(matches!(
            split(&no_image.finish()),
            Err(SplitError::Shape("no core module holds a memory image"))
        ));
        // A module defined after the main module's instance (wit-component's start shim).
        let mut late = component(7);
        let mut empty = Vec::new();
        wasm_encoder::Encode::encode(&ModuleSection(&Module::new()), &mut empty);
        late.push(CORE_MODULE);
        late.extend_from_slice(&empty);
        assert!(matches!(
            split(&late),
            Err(SplitError::Shape(
                "a core module is defined after the main module's instance"
            ))
        ));
    }
}
