//! `tool new`: a new tool project with one working example tool.

use super::Failure;
use anyhow::anyhow;
use clap::{Args, ValueEnum};
use std::path::PathBuf;

/// `tool new` arguments.
#[derive(Args, Debug)]
pub struct NewArgs {
    /// The new project's directory (its last part names the tool).
    name: PathBuf,
    /// The language to write the tool in (`js` is JavaScript, `ts` TypeScript).
    #[arg(long, value_enum)]
    lang: Lang,
}

/// Languages `tool new` scaffolds.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Lang {
    /// Python, built with componentize-py.
    Python,
    /// JavaScript, built with componentize-js.
    Js,
    /// TypeScript, type-checked, its schemas made from its types.
    Ts,
    /// Rust, built with cargo and the guest SDK.
    Rust,
}

/// The files of a Python project, with `{{name}}` for the tool's name.
const PYTHON: &[(&str, &str)] = &[
    ("app.py", include_str!("new/python/app.py")),
    ("tool.toml", include_str!("new/python/tool.toml")),
    ("test.sh", include_str!("new/python/test.sh")),
    ("README.md", include_str!("new/python/README.md")),
    (".gitignore", include_str!("new/python/gitignore")),
];

/// The files of a JavaScript project.
const JS: &[(&str, &str)] = &[
    ("app.js", include_str!("new/js/app.js")),
    ("tool.toml", include_str!("new/js/tool.toml")),
    ("test.sh", include_str!("new/js/test.sh")),
    ("README.md", include_str!("new/js/README.md")),
    (".gitignore", include_str!("new/js/gitignore")),
];

/// The files of a TypeScript project.
const TS: &[(&str, &str)] = &[
    ("app.ts", include_str!("new/ts/app.ts")),
    ("tsconfig.json", include_str!("new/ts/tsconfig.json")),
    ("tool.toml", include_str!("new/ts/tool.toml")),
    ("test.sh", include_str!("new/ts/test.sh")),
    ("README.md", include_str!("new/ts/README.md")),
    (".gitignore", include_str!("new/ts/gitignore")),
];

/// The files of a Rust project, with `{{sdk}}` for the guest SDK's path.
const RUST: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("new/rust/Cargo.toml")),
    ("src/lib.rs", include_str!("new/rust/lib.rs")),
    ("tool.toml", include_str!("new/rust/tool.toml")),
    ("test.sh", include_str!("new/rust/test.sh")),
    ("README.md", include_str!("new/rust/README.md")),
    (".gitignore", include_str!("new/rust/gitignore")),
];

pub fn run(args: NewArgs) -> Result<(), Failure> {
    let name = args
        .name
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .ok_or_else(|| Failure::usage(anyhow!("{}: a tool's name is letters, digits, - and _", args.name.display())))?;
    if args.name.exists() {
        return Err(Failure::usage(anyhow!("{} already exists", args.name.display())));
    }
    let (files, language) = match args.lang {
        Lang::Python => (PYTHON, "Python"),
        Lang::Js => (JS, "JavaScript"),
        Lang::Ts => (TS, "TypeScript"),
        Lang::Rust => (RUST, "Rust"),
    };
    let sdk = match args.lang {
        Lang::Rust => toolmesh_host::build::rust::vendored_sdk(&super::build::cache_dir())
            .map_err(Failure::failed)?
            .display()
            .to_string(),
        _ => String::new(),
    };
    std::fs::create_dir_all(&args.name).map_err(Failure::failed)?;
    for (file, text) in files {
        let path = args.name.join(file);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(Failure::failed)?;
        }
        let text = text.replace("{{name}}", &name).replace("{{sdk}}", &sdk);
        std::fs::write(&path, text).map_err(Failure::failed)?;
        if file.ends_with(".sh") {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).map_err(Failure::failed)?;
        }
    }
    eprintln!("made {} ({language}): cd {} && tool build", args.name.display(), args.name.display());
    outln!("{}", args.name.display());
    Ok(())
}
