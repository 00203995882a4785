//! Talking to a registry from the CLI: the shared flags, fetching a
//! component by reference, and checking its signature.

use super::Failure;
use super::identity::Login;
use anyhow::{Context, anyhow};
use bytes::Bytes;
use clap::Args;
use std::path::PathBuf;
use toolmesh_host::node::source::{ComponentSource, signature_payload};
use toolmesh_registry::auth::Credentials;
use toolmesh_registry::client::{Client, ClientOptions};
use toolmesh_registry::digest::Digest;
use toolmesh_registry::name::Reference;
use toolmesh_registry::oci::{Manifest, annotation};
use toolmesh_registry::request::ToolRequest;
use toolmesh_registry::signing::{PublicKey, SecretKey};

/// Where `tool` looks for a registry unless told otherwise.
pub const DEFAULT_REGISTRY: &str = "http://127.0.0.1:7600";

/// Registry flags.
#[derive(Args, Debug, Clone)]
pub struct RegistryArgs {
    /// Registry base URL [default: the one saved by `tool login`, else
    /// http://127.0.0.1:7600, the local `tool serve`].
    #[arg(long, env = "TOOLMESH_REGISTRY", value_name = "URL")]
    pub registry: Option<String>,
    /// Token for pushing (and for pulling from registries that require one).
    #[arg(
        long,
        env = "TOOLMESH_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        conflicts_with = "registry_user"
    )]
    pub token: Option<String>,
    /// A user name at the registry (Basic auth, or the OCI token flow).
    #[arg(long, env = "TOOLMESH_REGISTRY_USER", value_name = "USER", requires = "registry_password")]
    pub registry_user: Option<String>,
    /// The registry user's password.
    #[arg(long, env = "TOOLMESH_REGISTRY_PASSWORD", hide_env_values = true, value_name = "PASSWORD")]
    pub registry_password: Option<String>,
    /// A PEM file of CA certificates to trust for the registry (a private CA).
    #[arg(long, env = "TOOLMESH_REGISTRY_CA", value_name = "FILE")]
    pub registry_ca: Option<PathBuf>,
}

impl RegistryArgs {
    /// A client for the registry. Without credentials, a registry on this
    /// machine (a loopback address) gets the push token of the local
    /// `tool serve`, if its data directory has one.
    pub fn client(&self) -> Result<Client, Failure> {
        let login = Login::load()?;
        let url = self.url_with(&login);
        let saved = || login.registry.as_deref().filter(|r| *r == url).and(Login::token());
        let credentials = match (&self.token, &self.registry_user, &self.registry_password) {
            (Some(token), _, _) => Credentials::Token(token.clone()),
            (None, Some(user), Some(password)) => Credentials::Basic { user: user.clone(), password: password.clone() },
            _ => match saved().or_else(|| local_push_token(&url)) {
                Some(token) => Credentials::Token(token),
                None => Credentials::Anonymous,
            },
        };
        let options = ClientOptions { credentials, ca_file: self.registry_ca.clone() };
        Ok(Client::with_options(&url, options)?)
    }

    /// The registry's URL: the flag, else the saved login's, else the local `tool serve`.
    pub fn url(&self) -> Result<String, Failure> {
        Ok(self.url_with(&Login::load()?))
    }

    fn url_with(&self, login: &Login) -> String {
        let url = self.registry.clone().or_else(|| login.registry.clone()).unwrap_or_else(|| DEFAULT_REGISTRY.into());
        url.trim_end_matches('/').to_owned()
    }
}

/// The local `tool serve`'s push token, when the registry at `url` is on a
/// loopback address and the data directory holds one.
fn local_push_token(url: &str) -> Option<String> {
    if !toolmesh_registry::client::is_loopback(url) {
        return None;
    }
    let path = super::serve::default_data_dir()?.join("push-token");
    let token = std::fs::read_to_string(path).ok()?.trim().to_owned();
    (!token.is_empty()).then_some(token)
}

/// A component fetched from a registry, verified against its digests.
pub struct Fetched {
    /// The component's bytes.
    pub bytes: Bytes,
    /// The manifest's digest (what signatures cover).
    pub manifest_digest: Digest,
    /// What the tool asks of the nodes that run it, as published.
    pub request: ToolRequest,
}

/// Parses `text` as a registry reference, with a usage error that says how.
pub fn parse_reference(text: &str) -> Result<Reference, Failure> {
    text.parse::<Reference>().map_err(Failure::usage)
}

/// Fetches the component of `reference`: the manifest, then its one
/// `application/wasm` layer, each checked against its digest.
pub async fn fetch(client: &Client, reference: &Reference) -> Result<Fetched, Failure> {
    let (bytes, manifest_digest, _) = client
        .pull_manifest(&reference.repository, &reference.manifest_ref())
        .await
        .with_context(|| format!("cannot fetch {reference} from {}", client.base()))?;
    let manifest = Manifest::parse(&bytes).map_err(|e| anyhow!("{reference}: {e}"))?;
    let layer = manifest.component().map_err(|e| anyhow!("{reference}: {e}"))?;
    let request = ToolRequest::from_annotation(manifest.annotations.get(annotation::PERMISSIONS).map(String::as_str))
        .map_err(|e| anyhow!("{reference}: {e}"))?;
    let bytes = client
        .pull_blob(&reference.repository, &layer.digest)
        .await
        .with_context(|| format!("cannot fetch the component of {reference}"))?;
    Ok(Fetched { bytes, manifest_digest, request })
}

/// Reads public keys from files (a secret key file stands for its public key).
pub fn read_trusted(paths: &[PathBuf]) -> Result<Vec<PublicKey>, Failure> {
    paths
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read key {}", path.display()))
                .map_err(Failure::usage)?;
            let key = PublicKey::from_text(&text)
                .or_else(|_| SecretKey::from_text(&text).map(|k| k.public()))
                .with_context(|| format!("in {}", path.display()))
                .map_err(Failure::usage)?;
            Ok(key)
        })
        .collect()
}

/// Checks that a signature by one of `trusted` covers `digest` in `reference`'s
/// repository. Returns the key id that verified.
pub async fn verify(
    client: &Client,
    reference: &Reference,
    digest: &Digest,
    trusted: &[PublicKey],
) -> Result<String, Failure> {
    let repo = &reference.repository;
    let signatures = ComponentSource::signatures(client, repo, *digest)
        .await
        .map_err(|e| anyhow!("cannot list the signatures of {reference}: {e}"))?;
    let mut reasons = Vec::new();
    for signature in signatures {
        match signature_payload(client, repo, signature).await {
            Ok(payload) => match payload.verify(digest, trusted) {
                Ok(key_id) => return Ok(key_id),
                Err(e) => reasons.push(e.to_string()),
            },
            Err(e) => reasons.push(e),
        }
    }
    if reasons.is_empty() {
        return Err(Failure::failed(anyhow!("{reference} ({digest}) is not signed")));
    }
    Err(Failure::failed(anyhow!("no trusted signature on {reference} ({digest}): {}", reasons.join("; "))))
}

/// Where a component comes from: a file, or a registry reference.
#[derive(Args, Debug)]
pub struct SourceArgs {
    /// Require a signature by one of these public keys when fetching from a registry (repeatable).
    #[arg(long, value_name = "KEY_FILE")]
    pub trust: Vec<PathBuf>,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// A component to run or inspect, with what it requests.
pub struct Source {
    /// The component's bytes.
    pub bytes: Vec<u8>,
    /// Its request: as published for a registry reference, from
    /// `tool.toml` (`manifest`, or beside the file) for a file.
    pub request: ToolRequest,
}

impl SourceArgs {
    /// The component `spec`: the file if one exists at that path, else the
    /// component of the registry reference `spec`, verified.
    pub async fn read(&self, spec: &str, manifest: Option<&std::path::Path>) -> Result<Source, Failure> {
        let path = std::path::Path::new(spec);
        if path.exists() || spec.ends_with(".wasm") || spec.ends_with(".wat") || !spec.contains('/') {
            let bytes = std::fs::read(path).with_context(|| format!("cannot read {spec}")).map_err(Failure::usage)?;
            let request = super::tool_toml::ToolToml::read(manifest, path)?.request()?;
            return Ok(Source { bytes, request });
        }
        let reference = parse_reference(spec)?;
        let client = self.registry.client()?;
        let fetched = fetch(&client, &reference).await?;
        let trusted = read_trusted(&self.trust)?;
        if !trusted.is_empty() {
            verify(&client, &reference, &fetched.manifest_digest, &trusted).await?;
        }
        Ok(Source { bytes: fetched.bytes.to_vec(), request: fetched.request })
    }
}
