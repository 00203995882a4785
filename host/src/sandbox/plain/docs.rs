//! Doc comments of a component's WIT, from the `package-docs` custom
//! section that wit-component writes (version byte, then JSON): the docs of
//! interfaces, functions, and of types with their fields and cases.
//! Toolchains often drop the section; without it tools are described by
//! their signatures.

use serde::Deserialize;
use std::collections::BTreeMap;

/// The name of the custom section.
pub(crate) const SECTION: &str = "package-docs";

/// The docs of everything the component's sections describe, by interface
/// name (`values`) and, for a world's own functions, by world.
#[derive(Debug, Default)]
pub(crate) struct Docs {
    interfaces: BTreeMap<String, InterfaceDocs>,
    /// Functions a world exports directly, by name.
    world_funcs: BTreeMap<String, String>,
}

/// The docs of one interface.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct InterfaceDocs {
    #[serde(default)]
    docs: Option<String>,
    #[serde(default)]
    funcs: BTreeMap<String, FuncDocs>,
    #[serde(default)]
    types: BTreeMap<String, TypeDocs>,
}

/// A function's docs: the old format's bare string or the newer object.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum FuncDocs {
    Text(String),
    Full {
        #[serde(default)]
        docs: Option<String>,
    },
}

impl FuncDocs {
    fn text(&self) -> Option<&str> {
        match self {
            FuncDocs::Text(text) => Some(text),
            FuncDocs::Full { docs } => docs.as_deref(),
        }
    }
}

/// A type's docs and those of its fields or cases.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct TypeDocs {
    #[serde(default)]
    pub(crate) docs: Option<String>,
    #[serde(default)]
    pub(crate) items: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct PackageDocs {
    #[serde(default)]
    worlds: BTreeMap<String, WorldDocs>,
    #[serde(default)]
    interfaces: BTreeMap<String, InterfaceDocs>,
}

#[derive(Deserialize)]
struct WorldDocs {
    #[serde(default)]
    funcs: BTreeMap<String, FuncDocs>,
    #[serde(default)]
    func_exports: BTreeMap<String, FuncDocs>,
    #[serde(default)]
    interfaces: BTreeMap<String, InterfaceDocs>,
    #[serde(default)]
    interface_exports: BTreeMap<String, InterfaceDocs>,
}

impl Docs {
    /// Reads every `package-docs` section of the component `bytes` (its
    /// own and those of components nested in it). A section that cannot be
    /// read is skipped: docs are a courtesy, never a reason to refuse.
    pub(crate) fn read(bytes: &[u8]) -> Docs {
        let mut docs = Docs::default();
        for payload in wasmparser::Parser::new(0).parse_all(bytes) {
            let Ok(wasmparser::Payload::CustomSection(section)) = payload else { continue };
            if section.name() != SECTION {
                continue;
            }
            match section.data() {
                [0 | 1, json @ ..] => match serde_json::from_slice::<PackageDocs>(json) {
                    Ok(package) => docs.add(package),
                    Err(e) => tracing::debug!(error = %e, "a package-docs section cannot be read"),
                },
                _ => tracing::debug!("a package-docs section of an unknown version"),
            }
        }
        docs
    }

    fn add(&mut self, package: PackageDocs) {
        self.interfaces.extend(package.interfaces);
        for world in package.worlds.into_values() {
            self.interfaces.extend(world.interfaces);
            self.interfaces.extend(world.interface_exports);
            for (name, func) in world.funcs.into_iter().chain(world.func_exports) {
                if let Some(text) = func.text() {
                    self.world_funcs.insert(name, text.to_owned());
                }
            }
        }
    }

    /// The docs of interface `interface` (its short name), if known.
    pub(crate) fn interface(&self, interface: &str) -> Option<&InterfaceDocs> {
        self.interfaces.get(interface)
    }

    /// The docs of function `func` of `interface`, or of the world when
    /// `interface` is `None`.
    pub(crate) fn function(&self, interface: Option<&str>, func: &str) -> Option<&str> {
        match interface {
            Some(interface) => self.interfaces.get(interface)?.funcs.get(func)?.text(),
            None => self.world_funcs.get(func).map(String::as_str),
        }
    }
}

impl InterfaceDocs {
    /// The interface's own docs.
    pub(crate) fn text(&self) -> Option<&str> {
        self.docs.as_deref()
    }

    /// The docs of the type of this interface whose fields or cases are
    /// `names`: the one type documenting only names among them, if exactly
    /// one does (the component's types carry no names to look them up by).
    pub(crate) fn type_with(&self, names: &[&str]) -> Option<&TypeDocs> {
        let mut found =
            self.types.values().filter(|t| !t.items.is_empty() && t.items.keys().all(|k| names.contains(&k.as_str())));
        let first = found.next()?;
        found.next().is_none().then_some(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_formats_of_function_docs_are_read() {
        let json = r#"{"interfaces":{"time":{"docs":"Clocks.","funcs":{"now":"The time.","later":{"docs":"Soon.","stability":{"unknown":null}}},
            "types":{"point":{"docs":"A point.","items":{"x":"Across."}}}}},
            "worlds":{"w":{"func_exports":{"add":{"docs":"Adds."}}}}}"#;
        let mut docs = Docs::default();
        docs.add(serde_json::from_str(json).unwrap());
        assert_eq!(docs.function(Some("time"), "now"), Some("The time."));
        assert_eq!(docs.function(Some("time"), "later"), Some("Soon."));
        assert_eq!(docs.function(None, "add"), Some("Adds."));
        let time = docs.interface("time").unwrap();
        assert_eq!(time.text(), Some("Clocks."));
        assert_eq!(time.type_with(&["x", "y"]).unwrap().items["x"], "Across.");
        assert!(time.type_with(&["a"]).is_none());
    }
}
