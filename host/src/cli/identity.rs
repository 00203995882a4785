//! Who the CLI publishes as: the publisher key (made on first use), and
//! the registry, namespace and token saved by `tool login`. All of it lives
//! in the configuration directory (`$TOOLMESH_CONFIG_DIR`, else the user's,
//! such as ~/.config/toolmesh); secrets in files only their owner can read.

use super::Failure;
use anyhow::{Context, anyhow};
use clap::Args;
use serde::{Deserialize, Serialize};
use std::io::Read as _;
use std::path::{Path, PathBuf};
use toolmesh_registry::files;
use toolmesh_registry::signing::SecretKey;

/// The namespace a local registry's tools go under when nothing names one.
pub const LOCAL_NAMESPACE: &str = "local";

/// The CLI's configuration directory.
pub fn config_dir() -> Option<PathBuf> {
    match std::env::var_os("TOOLMESH_CONFIG_DIR") {
        Some(dir) if !dir.is_empty() => Some(PathBuf::from(dir)),
        _ => dirs::config_dir().map(|d| d.join("toolmesh")),
    }
}

/// Where the publisher key lives unless a command is given one.
pub fn default_key_path() -> Option<PathBuf> {
    config_dir().map(|d| d.join("publisher.key"))
}

/// Reads the secret key in `path`.
pub fn read_key(path: &Path) -> Result<SecretKey, Failure> {
    std::fs::read_to_string(path)
        .with_context(|| format!("cannot read key {}", path.display()))
        .and_then(|t| SecretKey::from_text(&t).with_context(|| format!("in {}", path.display())))
        .map_err(Failure::usage)
}

/// Writes `key` to `path` only if no key is there, as a whole file
/// (written aside, then linked into place); returns whether it did.
fn create_key(path: &Path, key: &SecretKey) -> Result<bool, Failure> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let written = files::write_new(path, format!("{}\n", key.to_text()).as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    if !written {
        return Ok(false);
    }
    let public = PathBuf::from(format!("{}.pub", path.display()));
    std::fs::write(&public, format!("{}\n", key.public().to_text()))
        .with_context(|| format!("cannot write {}", public.display()))?;
    Ok(true)
}

/// The key in `path`, made there first if there is none.
pub fn key_at(path: &Path) -> Result<SecretKey, Failure> {
    if !path.exists() {
        create_key(path, &SecretKey::generate())?;
    }
    read_key(path)
}

/// The key to sign with: the one in `explicit`, else the default key,
/// made on first use when `create` (and said so on stderr).
pub fn publisher_key(explicit: Option<&Path>, create: bool) -> Result<Option<SecretKey>, Failure> {
    if let Some(path) = explicit {
        return read_key(path).map(Some);
    }
    let Some(path) = default_key_path() else { return Ok(None) };
    if path.exists() {
        return read_key(&path).map(Some);
    }
    if !create {
        return Ok(None);
    }
    let key = SecretKey::generate();
    if !create_key(&path, &key)? {
        // Another `tool` made it first: use that one.
        return read_key(&path).map(Some);
    }
    eprintln!(
        "made your publisher key {} in {} (first use). It signs what you publish and owns the namespaces \
         you publish into first: keep a copy of it.",
        key.public().key_id(),
        path.display()
    );
    Ok(Some(key))
}

/// What `tool login` saved.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    /// The registry to publish to and pull from.
    pub registry: Option<String>,
    /// The namespace to publish under when a name has none.
    pub namespace: Option<String>,
}

impl Login {
    fn path() -> Option<PathBuf> {
        config_dir().map(|d| d.join("login.toml"))
    }

    fn token_path() -> Option<PathBuf> {
        config_dir().map(|d| d.join("token"))
    }

    /// The saved login (empty when there is none).
    pub fn load() -> Result<Login, Failure> {
        let Some(path) = Self::path() else { return Ok(Login::default()) };
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text)
                .with_context(|| format!("{} is not a login file (run `tool login` again)", path.display()))
                .map_err(Failure::usage),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Login::default()),
            Err(e) => Err(anyhow!("cannot read {}: {e}", path.display()).into()),
        }
    }

    /// The saved token, for the saved registry.
    pub fn token() -> Option<String> {
        let token = std::fs::read_to_string(Self::token_path()?).ok()?;
        let token = token.trim();
        (!token.is_empty()).then(|| token.to_owned())
    }
}

/// Arguments of `tool login`.
#[derive(Args, Debug)]
pub struct LoginArgs {
    /// The registry to publish to from now on.
    #[arg(long, value_name = "URL")]
    registry: String,
    /// The namespace your tools go under when their name has none (`acme`).
    #[arg(long, value_name = "NAMESPACE")]
    namespace: Option<String>,
    /// Read the registry's push token from standard input (kept in a file
    /// only you can read).
    #[arg(long)]
    token_stdin: bool,
}

/// `tool login`: saves the registry, namespace and token, and makes the
/// publisher key if there is none yet.
pub fn login(args: LoginArgs) -> Result<(), Failure> {
    let dir = config_dir().ok_or_else(|| Failure::usage(anyhow!("no configuration directory known here")))?;
    if !args.registry.starts_with("http://") && !args.registry.starts_with("https://") {
        return Err(Failure::usage(anyhow!("--registry must be a URL such as https://registry.example.com")));
    }
    if let Some(namespace) = &args.namespace {
        toolmesh_registry::name::check_namespace(namespace).map_err(|_| {
            Failure::usage(anyhow!("`{namespace}` is not a namespace (lower-case letters, digits, `-`, `_`, `.`)"))
        })?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let token = if args.token_stdin {
        let mut token = String::new();
        std::io::stdin().read_to_string(&mut token).context("cannot read the token from standard input")?;
        let token = token.trim().to_owned();
        if token.is_empty() {
            return Err(Failure::usage(anyhow!("standard input held no token")));
        }
        Some(token)
    } else {
        None
    };
    // The old token goes first, so it can never sit beside another
    // registry's URL, whatever fails after.
    let token_path = dir.join("token");
    match std::fs::remove_file(&token_path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(anyhow!("cannot remove the old token {}: {e}", token_path.display()).into()),
    }
    let login = Login { registry: Some(args.registry.trim_end_matches('/').to_owned()), namespace: args.namespace };
    let path = dir.join("login.toml");
    let text = toml::to_string(&login).map_err(|e| anyhow!("cannot write the login: {e}"))?;
    files::write_atomic(&path, text.as_bytes()).with_context(|| format!("cannot write {}", path.display()))?;
    if let Some(token) = &token {
        files::write_atomic(&token_path, format!("{token}\n").as_bytes())
            .with_context(|| format!("cannot write {}", token_path.display()))?;
    }
    let key = publisher_key(None, true)?.ok_or_else(|| anyhow!("no publisher key"))?;
    outln!("registry: {}", login.registry.as_deref().unwrap_or_default());
    if let Some(namespace) = &login.namespace {
        outln!("namespace: {namespace}");
    }
    outln!("token: {}", if token.is_some() { token_path.display().to_string() } else { "none".into() });
    outln!("publisher key: {}", key.public().key_id());
    Ok(())
}
