//! What a package offers besides tools, as the host understands it:
//! resources (fixed and templated), prompts, the contents of resources
//! and filled-in prompts, checked on the way in (names, URIs, media
//! types, sizes).

use super::bindings::toolmesh::tool::mcp_types as wit;
use super::content::{self, Content};
use super::error::SandboxError;
use serde::{Deserialize, Serialize};

/// What a resource holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// Text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

/// The contents of one resource.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceContents {
    /// The URI it was read from, as its package names it.
    pub uri: String,
    /// The media type of the body, when known.
    pub mime_type: Option<String>,
    /// The contents.
    pub body: Body,
}

impl ResourceContents {
    /// Its size in bytes, for output limits and metering.
    pub fn byte_len(&self) -> u64 {
        let body = match &self.body {
            Body::Text(text) => text.len(),
            Body::Blob(bytes) => bytes.len(),
        };
        (self.uri.len() + self.mime_type.as_ref().map_or(0, String::len) + body) as u64
    }
}

/// A resource a package offers, or a link to one in a result (MCP's
/// `Resource`, camelCase on the wire and in published metadata).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceInfo {
    /// Its URI, as the package names it.
    pub uri: String,
    /// A short programmatic name.
    pub name: String,
    /// A human-readable title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// What it holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Its media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// Its size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

impl ResourceInfo {
    /// Its size in bytes, for output limits and metering.
    pub fn byte_len(&self) -> u64 {
        let optional = |s: &Option<String>| s.as_ref().map_or(0, String::len);
        (self.uri.len()
            + self.name.len()
            + optional(&self.title)
            + optional(&self.description)
            + optional(&self.mime_type)
            + 8) as u64
    }
}

/// A family of resources read by URI template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TemplateInfo {
    /// The RFC 6570 URI template.
    pub uri_template: String,
    /// A short programmatic name.
    pub name: String,
    /// A human-readable title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// What its resources hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The media type of its resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
}

/// One argument of a prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptArgument {
    /// Its name.
    pub name: String,
    /// What it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Whether the prompt needs it.
    #[serde(default)]
    pub required: bool,
}

/// A prompt a package offers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptInfo {
    /// Its name within the package.
    pub name: String,
    /// A human-readable title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// What it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Its arguments.
    #[serde(default)]
    pub arguments: Vec<PromptArgument>,
}

/// Everything a package offers besides tools, as published in its
/// manifest (`dev.toolmesh.offer`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Offer {
    /// Resources with fixed URIs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<ResourceInfo>,
    /// Families of resources read by URI template.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub templates: Vec<TemplateInfo>,
    /// Prompts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prompts: Vec<PromptInfo>,
}

impl Offer {
    /// Whether it offers nothing.
    pub fn is_empty(&self) -> bool {
        self.resources.is_empty() && self.templates.is_empty() && self.prompts.is_empty()
    }
}

/// The name under which a call reads a resource (its arguments:
/// `{"uri": …}`): an MCP method's name, never a tool's.
pub const READ_RESOURCE: &str = "resources/read";

/// The name under which a call fills in a prompt (its arguments:
/// `{"name": …, "arguments": {…}}`).
pub const GET_PROMPT: &str = "prompts/get";

/// The most resources, templates and prompts one package may offer
/// together: a package describing a million resources is refused at
/// publish, not listed to every client.
pub const MAX_OFFERED: usize = 1000;

/// Whether `uri` is an absolute URI: a scheme (`[A-Za-z][A-Za-z0-9+.-]*`),
/// a colon, then no whitespace or control characters, within 2 KiB.
pub fn is_absolute_uri(uri: &str) -> bool {
    let Some((scheme, rest)) = uri.split_once(':') else { return false };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-'))
        && !rest.is_empty()
        && uri.len() <= 2048
        && !uri.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn invalid(message: String) -> SandboxError {
    SandboxError::InvalidOutput(message)
}

/// Checks and converts the guest's `offer` answer.
pub(crate) fn offer(raw: wit::Offer) -> Result<Offer, SandboxError> {
    let count = raw.resources.len() + raw.templates.len() + raw.prompts.len();
    if count > MAX_OFFERED {
        return Err(invalid(format!(
            "the package offers {count} resources, templates and prompts; at most {MAX_OFFERED}"
        )));
    }
    let mut uris = std::collections::HashSet::new();
    let resources = raw
        .resources
        .into_iter()
        .map(|r| {
            let info = resource_info(r)?;
            if !uris.insert(info.uri.clone()) {
                return Err(invalid(format!("resource `{}` is offered twice", info.uri)));
            }
            Ok(info)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let templates = raw
        .templates
        .into_iter()
        .map(|t| {
            if !is_absolute_uri(&t.uri_template) || !t.uri_template.contains('{') {
                return Err(invalid(format!(
                    "resource template {:?} is not an absolute URI with `{{variables}}`",
                    t.uri_template
                )));
            }
            crate::uri_template::UriTemplate::parse(&t.uri_template)
                .map_err(|e| invalid(format!("resource template {:?}: {e}", t.uri_template)))?;
            check_name("resource template", &t.name)?;
            Ok(TemplateInfo {
                uri_template: t.uri_template,
                name: t.name,
                title: t.title,
                description: t.description,
                mime_type: t.mime_type.map(|m| m.to_ascii_lowercase()),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut names = std::collections::HashSet::new();
    let prompts = raw
        .prompts
        .into_iter()
        .map(|p| {
            if !content::is_valid_tool_name(&p.name) {
                return Err(invalid(format!("prompt name {:?} is not 1-64 characters of [A-Za-z0-9_.-]", p.name)));
            }
            if !names.insert(p.name.clone()) {
                return Err(invalid(format!("prompt `{}` is offered twice", p.name)));
            }
            Ok(PromptInfo {
                arguments: p
                    .arguments
                    .into_iter()
                    .map(|a| {
                        check_name("prompt argument", &a.name)?;
                        Ok(PromptArgument { name: a.name, description: a.description, required: a.required })
                    })
                    .collect::<Result<_, SandboxError>>()?,
                name: p.name,
                title: p.title,
                description: p.description,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Offer { resources, templates, prompts })
}

fn check_name(what: &str, name: &str) -> Result<(), SandboxError> {
    if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
        return Err(invalid(format!("{what} name {name:?} is not 1-128 printable characters")));
    }
    Ok(())
}

/// Checks and converts a resource description (offered, or linked from a
/// result).
pub(crate) fn resource_info(r: wit::ResourceInfo) -> Result<ResourceInfo, SandboxError> {
    if !is_absolute_uri(&r.uri) {
        return Err(invalid(format!("resource URI {:?} is not an absolute URI (`scheme:…`)", r.uri)));
    }
    check_name("resource", &r.name)?;
    Ok(ResourceInfo {
        uri: r.uri,
        name: r.name,
        title: r.title,
        description: r.description,
        mime_type: r.mime_type.map(|m| m.to_ascii_lowercase()),
        size: r.size,
    })
}

/// Checks and converts resource contents.
pub(crate) fn resource_contents(r: wit::ResourceContents) -> Result<ResourceContents, SandboxError> {
    if !is_absolute_uri(&r.uri) {
        return Err(invalid(format!("resource URI {:?} is not an absolute URI (`scheme:…`)", r.uri)));
    }
    Ok(ResourceContents {
        uri: r.uri,
        mime_type: r.mime_type.map(|m| m.to_ascii_lowercase()),
        body: match r.body {
            wit::Body::Text(text) => Body::Text(text),
            wit::Body::Blob(bytes) => Body::Blob(bytes),
        },
    })
}

/// Checks the size of a resource read against `limit`, then converts it.
pub(crate) fn read(raw: Vec<wit::ResourceContents>, limit: u64) -> Result<Vec<Content>, SandboxError> {
    content::contents(raw.into_iter().map(wit::Item::Resource).collect(), limit)
}

/// The role of a prompt message, as MCP writes it.
fn role(role: wit::Role) -> &'static str {
    match role {
        wit::Role::User => "user",
        wit::Role::Assistant => "assistant",
    }
}

/// Checks a filled-in prompt against `limit` and converts it into one
/// JSON item: `{description?, messages: [{role, content}]}`, each content
/// as MCP writes it.
pub(crate) fn prompt_result(raw: wit::PromptResult, limit: u64) -> Result<Vec<Content>, SandboxError> {
    let roles: Vec<&'static str> = raw.messages.iter().map(|m| role(m.role)).collect();
    let items = content::contents(raw.messages.into_iter().map(|m| m.content).collect(), limit)?;
    let messages: Vec<serde_json::Value> = items
        .iter()
        .zip(roles)
        .map(|(item, role)| serde_json::json!({"role": role, "content": content::mcp_block(item)}))
        .collect();
    let mut out = serde_json::Map::new();
    if let Some(description) = raw.description {
        out.insert("description".into(), description.into());
    }
    out.insert("messages".into(), messages.into());
    Ok(vec![Content::Json(serde_json::Value::Object(out))])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_uris() {
        assert!(is_absolute_uri("test://static-text"));
        assert!(is_absolute_uri("urn:isbn:0451450523"));
        assert!(is_absolute_uri("docs+v2://a/b?c=d"));
        assert!(!is_absolute_uri("static-text"));
        assert!(!is_absolute_uri("1abc://x"));
        assert!(!is_absolute_uri("test://has space"));
        assert!(!is_absolute_uri("test:"));
        assert!(!is_absolute_uri(&format!("test://{}", "x".repeat(3000))));
    }

    fn resource(uri: &str) -> wit::ResourceInfo {
        wit::ResourceInfo {
            uri: uri.into(),
            name: "r".into(),
            title: None,
            description: None,
            mime_type: Some("Text/Plain".into()),
            size: None,
        }
    }

    #[test]
    fn offers_are_checked() {
        let ok =
            offer(wit::Offer { resources: vec![resource("test://a")], templates: vec![], prompts: vec![] }).unwrap();
        assert_eq!(ok.resources[0].mime_type.as_deref(), Some("text/plain"));
        let twice = wit::Offer {
            resources: vec![resource("test://a"), resource("test://a")],
            templates: vec![],
            prompts: vec![],
        };
        assert!(offer(twice).unwrap_err().to_string().contains("offered twice"));
        let relative = wit::Offer { resources: vec![resource("a")], templates: vec![], prompts: vec![] };
        assert!(offer(relative).unwrap_err().to_string().contains("absolute URI"));
        let flood = wit::Offer {
            resources: (0..1001).map(|i| resource(&format!("t://{i}"))).collect(),
            templates: vec![],
            prompts: vec![],
        };
        assert!(offer(flood).unwrap_err().to_string().contains("at most 1000"));
        let template = |t: &str| wit::Offer {
            resources: vec![],
            templates: vec![wit::ResourceTemplate {
                uri_template: t.into(),
                name: "t".into(),
                title: None,
                description: None,
                mime_type: None,
            }],
            prompts: vec![],
        };
        assert!(offer(template("test://template/{id}/data")).is_ok());
        assert!(offer(template("test://template/fixed")).is_err());
        assert!(offer(template("test://template/{id")).is_err());
        let bad_prompt = wit::Offer {
            resources: vec![],
            templates: vec![],
            prompts: vec![wit::Prompt { name: "has space".into(), title: None, description: None, arguments: vec![] }],
        };
        assert!(offer(bad_prompt).is_err());
    }

    #[test]
    fn prompt_results_are_mcp_messages() {
        let raw = wit::PromptResult {
            description: Some("d".into()),
            messages: vec![
                wit::PromptMessage { role: wit::Role::User, content: wit::Item::Text("hi".into()) },
                wit::PromptMessage {
                    role: wit::Role::Assistant,
                    content: wit::Item::Resource(wit::ResourceContents {
                        uri: "test://x".into(),
                        mime_type: Some("text/plain".into()),
                        body: wit::Body::Text("body".into()),
                    }),
                },
            ],
        };
        let out = prompt_result(raw, 10_000).unwrap();
        let [Content::Json(value)] = out.as_slice() else { panic!("{out:?}") };
        assert_eq!(value["description"], "d");
        assert_eq!(
            value["messages"][0],
            serde_json::json!({"role": "user", "content": {"type": "text", "text": "hi"}})
        );
        assert_eq!(
            value["messages"][1]["content"],
            serde_json::json!({"type": "resource", "resource": {"uri": "test://x", "mimeType": "text/plain", "text": "body"}})
        );
    }
}
