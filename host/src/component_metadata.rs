//! A component's own metadata: the standard custom sections that
//! `wasm-tools metadata add` writes and `wasm-tools metadata show` and `wkg`
//! read (`component-name`, `version`, `description`, `source`). Only the
//! outer component's sections count, not those of components or modules
//! nested inside it. Pure; reads without running or compiling anything.
//!
//! One section of toolmesh's own, [`GPU_SECTION`], says that a component
//! that imports the GPU interface runs without a GPU too. It counts
//! wherever it is, since a language's toolchain puts it in the core
//! module inside the component (the Rust guest SDK's `gpu_optional!`).

use wasmparser::{BinaryReaderError, Chunk, KnownCustom, Parser, Payload};

/// What a component says about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ComponentMetadata {
    /// Its name (`component-name` section).
    pub name: Option<String>,
    /// Its version (`version` section).
    pub version: Option<String>,
    /// Its description (`description` section).
    pub description: Option<String>,
    /// Where its source lives (`source` section).
    pub source: Option<String>,
}

/// The metadata of component (or module) `bytes`.
pub fn read(bytes: &[u8]) -> Result<ComponentMetadata, BinaryReaderError> {
    let mut out = ComponentMetadata::default();
    let mut parser = Parser::new(0);
    let mut data = bytes;
    loop {
        let (consumed, payload) = match parser.parse(data, true)? {
            Chunk::Parsed { consumed, payload } => (consumed, payload),
            // With the whole input given, the parser never asks for more.
            Chunk::NeedMoreData(_) => return Ok(out),
        };
        data = &data[consumed..];
        match payload {
            Payload::CustomSection(section) => {
                let text = || std::str::from_utf8(section.data()).ok().map(str::trim).filter(|t| !t.is_empty());
                match section.name() {
                    "version" => out.version = text().map(str::to_owned),
                    "description" => out.description = text().map(str::to_owned),
                    "source" => out.source = text().map(str::to_owned),
                    _ => {
                        if let KnownCustom::ComponentName(names) = section.as_known() {
                            for name in names.into_iter().flatten() {
                                if let wasmparser::ComponentName::Component { name, .. } = name {
                                    out.name = Some(name.to_owned()).filter(|n| !n.is_empty());
                                }
                            }
                        }
                    }
                }
            }
            // Nested components and modules have metadata of their own: the
            // outer parser goes on after them.
            Payload::ModuleSection { unchecked_range, .. } | Payload::ComponentSection { unchecked_range, .. } => {
                data = data.get(unchecked_range.len()..).unwrap_or_default();
            }
            Payload::CodeSectionStart { size, .. } => {
                parser.skip_section();
                data = data.get(size as usize..).unwrap_or_default();
            }
            Payload::End(_) => return Ok(out),
            _ => {}
        }
    }
}

/// The custom section in which a component says how it uses a GPU:
/// `optional` (it falls back to the CPU when the call gets no adapter) or
/// `required`.
pub const GPU_SECTION: &str = "toolmesh:gpu";

/// Whether component `bytes` says it runs without a GPU: a [`GPU_SECTION`]
/// that says `optional`, at any depth, and none that says `required`.
/// Bytes that cannot be read say nothing.
pub fn gpu_optional(bytes: &[u8]) -> bool {
    let mut optional = false;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload {
            Ok(Payload::CustomSection(section)) if section.name() == GPU_SECTION => {
                match std::str::from_utf8(section.data()).map(str::trim) {
                    Ok("optional") => optional = true,
                    _ => return false,
                }
            }
            Ok(_) => {}
            Err(_) => return false,
        }
    }
    optional
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A custom section named `name` holding `data`.
    pub fn custom_section(name: &str, data: &[u8]) -> Vec<u8> {
        let mut body = leb(name.len());
        body.extend_from_slice(name.as_bytes());
        body.extend_from_slice(data);
        let mut out = vec![0];
        out.extend(leb(body.len()));
        out.extend(body);
        out
    }

    /// A `component-name` section naming the component `name`.
    pub fn component_name(name: &str) -> Vec<u8> {
        let mut sub = leb(name.len());
        sub.extend_from_slice(name.as_bytes());
        let mut data = vec![0];
        data.extend(leb(sub.len()));
        data.extend(sub);
        custom_section("component-name", &data)
    }

    fn leb(mut n: usize) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return out;
            }
            out.push(byte | 0x80);
        }
    }

    /// An empty component with `sections` after its header.
    fn component(sections: &[Vec<u8>]) -> Vec<u8> {
        let mut out = b"\0asm\x0d\0\x01\0".to_vec();
        for section in sections {
            out.extend(section);
        }
        out
    }

    #[test]
    fn reads_the_outer_components_sections() {
        let nested_module = {
            let mut module = b"\0asm\x01\0\0\0".to_vec();
            module.extend(custom_section("version", b"9.9.9"));
            let mut section = vec![1];
            section.extend(leb(module.len()));
            section.extend(module);
            section
        };
        let bytes = component(&[
            custom_section("description", "Counts words, <b>fast</b>".as_bytes()),
            nested_module,
            component_name("wordcount"),
            custom_section("version", b" 1.2.3\n"),
            custom_section("source", b"https://example.com/src"),
        ]);
        let meta = read(&bytes).unwrap();
        assert_eq!(meta.name.as_deref(), Some("wordcount"));
        assert_eq!(meta.version.as_deref(), Some("1.2.3"), "the nested module's version is not the component's");
        assert_eq!(meta.description.as_deref(), Some("Counts words, <b>fast</b>"));
        assert_eq!(meta.source.as_deref(), Some("https://example.com/src"));
        assert_eq!(read(&component(&[])).unwrap(), ComponentMetadata::default());
        assert!(read(b"not wasm").is_err());
        assert!(read(&component(&[vec![0, 50, 1]])).is_err(), "a truncated section");
    }

    /// A module section holding a core module with `sections`.
    fn nested_module(sections: &[Vec<u8>]) -> Vec<u8> {
        let mut module = b"\0asm\x01\0\0\0".to_vec();
        for s in sections {
            module.extend(s);
        }
        let mut section = vec![1];
        section.extend(leb(module.len()));
        section.extend(module);
        section
    }

    #[test]
    fn a_gpu_section_anywhere_says_optional() {
        let optional = custom_section(GPU_SECTION, b"optional");
        assert!(gpu_optional(&component(std::slice::from_ref(&optional))));
        assert!(gpu_optional(&component(&[nested_module(std::slice::from_ref(&optional))])), "in the core module");
        assert!(!gpu_optional(&component(&[])));
        let required = custom_section(GPU_SECTION, b"required");
        assert!(!gpu_optional(&component(&[optional.clone(), nested_module(&[required])])), "required wins");
        assert!(!gpu_optional(&component(&[custom_section(GPU_SECTION, b"maybe")])));
        let mut truncated = component(&[optional]);
        truncated.extend([0, 50, 1]);
        assert!(!gpu_optional(&truncated), "unreadable bytes say nothing");
    }
}
