//! The pages: what each shows, built from the registry's store, the
//! gateway's catalog and counters, and the node's policy. Templates live in
//! `host/templates` and are compiled in; they escape every value.

use super::schema::{self, Field, InputKind};
use super::words;
use super::{Market, search};
use crate::gateway::{CatalogTool, Gateway};
use askama::Template;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::SystemTime;
use toolmesh_registry::api::{CatalogEntry, VersionInfo, catalog_entries, newest_versions, package_versions, signers};
use toolmesh_registry::name::Repository;
use toolmesh_registry::signing::PublicKey;
use toolmesh_registry::store::StoreError;

/// One package in a list of results.
pub struct Card {
    /// `namespace/name`.
    pub name: String,
    /// Its newest version.
    pub version: String,
    /// Its description.
    pub description: String,
    /// The key id that signed its newest version.
    pub signer: Option<String>,
    /// Its tools' names.
    pub tools: Vec<String>,
    /// Short labels of what it asks for.
    pub labels: Vec<String>,
}

/// `/`: search and results.
#[derive(Template)]
#[template(path = "index.html")]
pub struct IndexPage {
    /// The search words as typed.
    pub query: String,
    /// The matching packages, best first.
    pub cards: Vec<Card>,
    /// How many packages there are in all.
    pub total: usize,
    /// The bridged MCP servers that match.
    pub bridged: Vec<crate::gateway::catalog::BridgedServerView>,
}

/// One version in a package's history.
pub struct VersionRow {
    /// The version.
    pub version: String,
    /// The manifest digest.
    pub digest: String,
    /// When it was published (UTC), or empty when unknown.
    pub published: String,
    /// The component's size in words.
    pub size: String,
    /// The key id that signed it.
    pub signer: Option<String>,
    /// Whether it is yanked.
    pub yanked: bool,
}

/// How a tool has fared on this gateway.
pub struct Stats {
    /// Calls that ended.
    pub calls: u64,
    /// Share of calls that ended in an error, in words.
    pub error_rate: String,
    /// Median latency of recent calls, in words.
    pub p50: String,
    /// 95th percentile latency of recent calls, in words.
    pub p95: String,
}

/// One input of a tool's form.
pub struct Input {
    /// The argument's name.
    pub name: String,
    /// The element id (unique on the page).
    pub id: String,
    /// `text`, `long`, `number`, `integer`, `boolean`, `choice` or `json`.
    pub kind: &'static str,
    /// Whether the tool requires it.
    pub required: bool,
    /// Its description.
    pub description: String,
    /// What the input starts with.
    pub default: String,
    /// For a choice, the values as JSON text.
    pub options: Vec<String>,
}

/// One tool of a package.
pub struct ToolView {
    /// Its name inside the component.
    pub name: String,
    /// The name MCP clients call it by, when this gateway offers it.
    pub mcp_name: Option<String>,
    /// Its title, if it has one.
    pub title: String,
    /// Its description.
    pub description: String,
    /// What its annotations promise: `(label, meaning)`.
    pub annotations: Vec<(String, String)>,
    /// Its input fields.
    pub input: Vec<Field>,
    /// Its output fields, when it declares an output schema.
    pub output: Vec<Field>,
    /// The input schema as indented JSON.
    pub input_json: String,
    /// The output schema as indented JSON.
    pub output_json: Option<String>,
    /// The form that calls it.
    pub form: Vec<Input>,
    /// Its counters on this gateway.
    pub stats: Option<Stats>,
}

/// `/tools/<namespace>/<name>`: everything about one package.
#[derive(Template)]
#[template(path = "package.html")]
pub struct PackagePage {
    /// `namespace/name`.
    pub name: String,
    /// The version shown (the newest that is not yanked).
    pub version: String,
    /// Its manifest digest.
    pub digest: String,
    /// Its description.
    pub description: String,
    /// Where its source lives.
    pub source: Option<String>,
    /// The key id that signed it (an owner's, if an owner signed).
    pub signer: Option<String>,
    /// Whether that key owns the namespace.
    pub signer_owns: bool,
    /// The namespace (`acme` of `acme/tool`).
    pub namespace: String,
    /// The key ids that own the namespace.
    pub owners: Vec<String>,
    /// What it asks for, in sentences.
    pub permissions: Vec<String>,
    /// What this node would not grant it (empty when it runs here); `None`
    /// when this process has no node.
    pub missing: Option<Vec<String>>,
    /// Its tools.
    pub tools: Vec<ToolView>,
    /// Every version, newest first.
    pub versions: Vec<VersionRow>,
    /// The command that pulls this version, pinned.
    pub pull_command: String,
    /// The MCP endpoint's URL.
    pub mcp_url: String,
    /// An MCP client entry for this gateway, ready to paste.
    pub client_entry: String,
    /// Whether calls need an API key.
    pub needs_key: bool,
    /// Whether people may sign in with the team's identity provider.
    pub sign_in: bool,
    /// Whether this server runs tools (else it is a registry alone).
    pub has_gateway: bool,
}

/// `/signed-in`: where a sign-in ends.
#[derive(Template)]
#[template(path = "signed-in.html")]
pub struct SignedInPage;

/// A page that was not found.
#[derive(Template)]
#[template(path = "missing.html")]
pub struct MissingPage {
    /// What was looked for.
    pub what: String,
}

impl Market {
    /// The newest offered version of each package, by name.
    async fn newest(&self) -> Result<Vec<CatalogEntry>, StoreError> {
        // The `bridged` namespace is the bridged servers': a package there is no one's.
        let entries = catalog_entries(&self.store, None).await?;
        let packages = entries.into_iter().filter(|e| !crate::gateway::catalog::is_bridged_name(&e.name));
        Ok(newest_versions(packages.collect()))
    }

    /// The front page for `query`.
    pub async fn index(&self, query: &str) -> Result<IndexPage, StoreError> {
        let entries = self.newest().await?;
        let mut cards = Vec::new();
        let mut owners: BTreeMap<String, Vec<PublicKey>> = BTreeMap::new();
        for entry in search::rank(&entries, query).into_iter().take(200) {
            // Entries come from the store's own names and digests.
            let signer = match (entry.name.parse::<Repository>(), entry.digest.parse()) {
                (Ok(repo), Ok(digest)) => {
                    if !owners.contains_key(repo.namespace()) {
                        owners.insert(repo.namespace().to_owned(), self.store.owners(repo.namespace()).await?);
                    }
                    shown_signer(&signers(&self.store, &repo, &digest).await?, &owners[repo.namespace()]).0
                }
                _ => None,
            };
            cards.push(Card {
                name: entry.name.clone(),
                version: entry.version.clone(),
                description: entry.description.clone().unwrap_or_default(),
                signer,
                tools: tool_names(&entry.tools),
                labels: words::permission_labels(&entry.permissions),
            });
        }
        let words = search::words(query);
        // Shown as the listings show them: not on a gateway that needs a key.
        let bridged = match &self.gateway {
            Some(gateway) if !self.needs_key => {
                gateway.catalog().bridged_servers().into_iter().filter(|s| s.matches(&words)).collect()
            }
            _ => Vec::new(),
        };
        Ok(IndexPage { query: query.to_owned(), cards, total: entries.len(), bridged })
    }

    /// The page of package `repo`, with URLs for a client that reached this
    /// server at `base` (`http://host:port`); `None` when it has no offered version.
    pub async fn package(&self, repo: &Repository, base: &str) -> Result<Option<PackagePage>, StoreError> {
        let versions = match package_versions(&self.store, repo).await {
            Ok(versions) => versions,
            Err(StoreError::NameUnknown(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some(shown) = versions.iter().find(|v| !v.yanked && v.entry.is_some()) else { return Ok(None) };
        let entry = shown.entry.clone().unwrap_or_else(|| unreachable!("checked above"));
        let catalog = self.gateway.as_ref().map(Gateway::catalog).unwrap_or_default();
        let offered: Vec<&CatalogTool> =
            catalog.tools().filter(|t| &t.repository == repo && t.digest == shown.digest).map(AsRef::as_ref).collect();
        let tools = entry
            .tools
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
            .map(|(index, descriptor)| {
                let name = descriptor["name"].as_str().unwrap_or_default();
                let mcp_name = offered.iter().find(|t| t.tool == name).map(|t| t.name.clone());
                self.tool_view(index, descriptor, mcp_name)
            })
            .collect();
        let owners = self.store.owners(repo.namespace()).await?;
        let (signer, signer_owns) = shown_signer(&shown.signers, &owners);
        let mcp_url = format!("{base}/mcp");
        let mut server = serde_json::json!({"type": "http", "url": mcp_url});
        // Clients that speak MCP's sign-in find the issuer themselves.
        if self.needs_key && self.sign_in.is_none() {
            server["headers"] = serde_json::json!({"Authorization": "Bearer YOUR_API_KEY"});
        }
        let client_entry = serde_json::json!({"mcpServers": {"toolmesh": server}});
        Ok(Some(PackagePage {
            name: repo.to_string(),
            version: shown.version.clone(),
            digest: shown.digest.to_string(),
            description: entry.description.clone().unwrap_or_default(),
            // Only web links: a `javascript:` URL in a link would run when clicked.
            source: entry.source.clone().filter(|s| s.starts_with("https://") || s.starts_with("http://")),
            signer,
            signer_owns,
            namespace: repo.namespace().to_owned(),
            owners: owners.iter().map(PublicKey::key_id).collect(),
            permissions: words::permissions(&entry.permissions),
            missing: self.policy.as_ref().map(|p| p.grants().missing(&entry.permissions)),
            tools,
            versions: versions.iter().map(|v| version_row(v, &owners)).collect(),
            pull_command: format!("tool pull --registry {base} {repo}:{}@{}", shown.version, shown.digest),
            client_entry: serde_json::to_string_pretty(&client_entry).unwrap_or_default(),
            mcp_url,
            needs_key: self.needs_key,
            sign_in: self.sign_in.is_some(),
            has_gateway: self.gateway.is_some(),
        }))
    }

    fn tool_view(&self, index: usize, descriptor: &Value, mcp_name: Option<String>) -> ToolView {
        let text = |key: &str| descriptor[key].as_str().unwrap_or_default().to_owned();
        let input_schema = &descriptor["input_schema"];
        let output_schema = descriptor.get("output_schema").filter(|s| !s.is_null());
        let stats = mcp_name.as_deref().and_then(|n| crate::metrics::global().gateway.tally.get(n)).map(|t| Stats {
            calls: t.calls,
            error_rate: format!("{:.0}%", 100.0 * t.errors as f64 / t.calls.max(1) as f64),
            p50: t.quantile(0.5).map(seconds_words).unwrap_or_default(),
            p95: t.quantile(0.95).map(seconds_words).unwrap_or_default(),
        });
        let form = schema::form(input_schema)
            .into_iter()
            .enumerate()
            .map(|(i, field)| {
                let (kind, options) = match field.kind {
                    InputKind::Text => ("text", Vec::new()),
                    InputKind::LongText => ("long", Vec::new()),
                    InputKind::Number { integer: true } => ("integer", Vec::new()),
                    InputKind::Number { integer: false } => ("number", Vec::new()),
                    InputKind::Boolean => ("boolean", Vec::new()),
                    InputKind::Choice(options) => ("choice", options),
                    InputKind::Json => ("json", Vec::new()),
                };
                Input {
                    id: format!("t{index}-a{i}"),
                    name: field.name,
                    kind,
                    required: field.required,
                    description: field.description,
                    default: field.default,
                    options,
                }
            })
            .collect();
        ToolView {
            name: text("name"),
            mcp_name,
            title: descriptor["annotations"]["title"].as_str().map(str::to_owned).unwrap_or_else(|| text("title")),
            description: text("description"),
            annotations: words::annotations(&descriptor["annotations"]),
            input: schema::fields(input_schema),
            output: output_schema.map(schema::fields).unwrap_or_default(),
            input_json: serde_json::to_string_pretty(input_schema).unwrap_or_default(),
            output_json: output_schema.map(|s| serde_json::to_string_pretty(s).unwrap_or_default()),
            form,
            stats,
        }
    }
}

fn tool_names(tools: &Value) -> Vec<String> {
    tools.as_array().into_iter().flatten().filter_map(|t| t["name"].as_str().map(str::to_owned)).collect()
}

/// The signer to show of `signers`: an owner's key if one signed (compared
/// as whole keys, not ids), else the first; and whether it is an owner's.
fn shown_signer(signers: &[PublicKey], owners: &[PublicKey]) -> (Option<String>, bool) {
    match signers.iter().find(|k| owners.contains(k)) {
        Some(key) => (Some(key.key_id()), true),
        None => (signers.first().map(PublicKey::key_id), false),
    }
}

fn version_row(v: &VersionInfo, owners: &[PublicKey]) -> VersionRow {
    VersionRow {
        version: v.version.clone(),
        digest: v.digest.to_string(),
        published: v.published.map(date_words).unwrap_or_default(),
        size: size_words(v.size),
        signer: shown_signer(&v.signers, owners).0,
        yanked: v.yanked,
    }
}

/// A size such as `1.4 MB` or `820 bytes`.
pub fn size_words(bytes: u64) -> String {
    match bytes {
        0..1_000 => format!("{bytes} bytes"),
        1_000..1_000_000 => format!("{:.1} kB", bytes as f64 / 1e3),
        _ => format!("{:.1} MB", bytes as f64 / 1e6),
    }
}

/// A latency such as `1.2 ms` or `3.4 s`.
fn seconds_words(secs: f64) -> String {
    if secs < 1.0 { format!("{:.1} ms", secs * 1000.0) } else { format!("{secs:.1} s") }
}

/// `time` as `YYYY-MM-DD HH:MM UTC`.
pub fn date_words(time: SystemTime) -> String {
    let (year, month, day, secs) = civil(time);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02} UTC", secs / 3600, secs % 3600 / 60)
}

/// `time` as RFC 3339 (`YYYY-MM-DDTHH:MM:SSZ`), to the second.
pub fn rfc3339(time: SystemTime) -> String {
    let (year, month, day, secs) = civil(time);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs % 3600 / 60, secs % 60)
}

/// The civil date (proleptic Gregorian) of `time`, and the seconds into its day.
fn civil(time: SystemTime) -> (i64, i64, i64, u64) {
    let secs = time.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, rest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates_sizes_and_latencies_read_plainly() {
        let at = |secs| SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        assert_eq!(date_words(at(0)), "1970-01-01 00:00 UTC");
        assert_eq!(rfc3339(at(1_780_000_000)), "2026-05-28T20:26:40Z");
        assert_eq!(date_words(at(951_782_400 + 3_660)), "2000-02-29 01:01 UTC");
        assert_eq!(date_words(at(1_795_359_600)), "2026-11-22 15:00 UTC");
        assert_eq!(size_words(820), "820 bytes");
        assert_eq!(size_words(1_400_000), "1.4 MB");
        assert_eq!(seconds_words(0.0012), "1.2 ms");
        assert_eq!(seconds_words(3.44), "3.4 s");
    }
}
