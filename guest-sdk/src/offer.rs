//! What a package offers besides tools: resources a client reads (fixed
//! URIs, or families of URIs under a template) and prompts it fills in.
//!
//! ```ignore
//! use toolmesh_guest::prelude::*;
//!
//! fn resources() -> Vec<Resource> {
//!     vec![
//!         Resource::new("notes://readme", "readme", |_| Ok(Contents::text("Hello")))
//!             .mime_type("text/markdown"),
//!         Resource::template("notes://pages/{slug}", "page", |read| match read.var("slug") {
//!             Some("intro") => Ok(Contents::text("The first page")),
//!             _ => Err(OfferError::not_found(format!("no page at {}", read.uri))),
//!         }),
//!     ]
//! }
//!
//! fn prompts() -> Vec<Prompt> {
//!     vec![Prompt::new("review", "Review a page.").argument("slug", "Which page", true).handler(|args| {
//!         Ok(vec![Message::user(format!("Please review {}", args.get("slug").unwrap_or_default()))])
//!     })]
//! }
//!
//! toolmesh_guest::export_tools!(tools, resources = resources, prompts = prompts);
//! ```
//!
//! Like tools, resources and prompts are read in a fresh sandbox each time:
//! what they return may depend on their arguments and on what the node
//! grants (network, secrets), never on an earlier call.

use crate::bindings::toolmesh::tool::mcp_types as wit;
use crate::{Content, ToolError};

/// Why a resource or prompt could not be made: not found, bad arguments,
/// or a failure. A [`ToolError`] converts into it, so `?` works on both.
pub use wit::OfferError;

impl OfferError {
    /// No such resource or prompt (such as a template's value that names
    /// nothing).
    pub fn not_found(message: impl std::fmt::Display) -> Self {
        OfferError::NotFound(message.to_string())
    }

    /// The arguments do not fit; `message` should name the argument.
    pub fn invalid_arguments(message: impl std::fmt::Display) -> Self {
        OfferError::InvalidArguments(message.to_string())
    }

    /// It could not be made.
    pub fn failed(message: impl std::fmt::Display) -> Self {
        OfferError::Failed(message.to_string())
    }
}

impl From<ToolError> for OfferError {
    fn from(error: ToolError) -> Self {
        match error {
            ToolError::InvalidArguments(m) => OfferError::InvalidArguments(m),
            ToolError::Failed(m) => OfferError::Failed(m),
        }
    }
}

/// The contents of a resource: text or bytes, with a media type.
#[derive(Debug, Clone, PartialEq)]
pub struct Contents {
    body: wit::Body,
    mime_type: Option<String>,
}

impl Contents {
    /// Text contents.
    pub fn text(text: impl Into<String>) -> Self {
        Contents { body: wit::Body::Text(text.into()), mime_type: None }
    }

    /// Bytes.
    pub fn blob(bytes: impl Into<Vec<u8>>) -> Self {
        Contents { body: wit::Body::Blob(bytes.into()), mime_type: None }
    }

    /// Sets the media type (else the resource's).
    pub fn mime_type(mut self, mime_type: &str) -> Self {
        self.mime_type = Some(mime_type.to_owned());
        self
    }

    /// These contents, embedded in a result or a prompt as the resource at `uri`.
    pub fn at(self, uri: &str) -> Content {
        Content::Resource(wit::ResourceContents { uri: uri.to_owned(), mime_type: self.mime_type, body: self.body })
    }
}

/// What a resource's handler is asked: the URI, and the values of its
/// template's variables.
#[derive(Debug, Clone, PartialEq)]
pub struct Read {
    /// The URI read.
    pub uri: String,
    /// The template's variables, as the host read them from the URI.
    pub variables: Vec<(String, String)>,
}

impl Read {
    /// The value of variable `name`.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.variables.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

type ReadHandler = Box<dyn Fn(&Read) -> Result<Contents, OfferError>>;

/// A resource, or a family of them under a URI template.
pub struct Resource {
    uri: String,
    templated: bool,
    name: String,
    title: Option<String>,
    description: Option<String>,
    mime_type: Option<String>,
    handler: ReadHandler,
}

impl Resource {
    /// A resource at `uri` (absolute: `scheme:…`), called `name`, whose
    /// contents `read` makes.
    pub fn new(uri: &str, name: &str, read: impl Fn(&Read) -> Result<Contents, OfferError> + 'static) -> Self {
        Resource {
            uri: uri.to_owned(),
            templated: false,
            name: name.to_owned(),
            title: None,
            description: None,
            mime_type: None,
            handler: Box::new(read),
        }
    }

    /// A family of resources whose URIs follow the RFC 6570 template
    /// `uri_template` (such as `notes://pages/{slug}`); `read` gets the
    /// values of its variables.
    pub fn template(
        uri_template: &str,
        name: &str,
        read: impl Fn(&Read) -> Result<Contents, OfferError> + 'static,
    ) -> Self {
        Resource { templated: true, ..Resource::new(uri_template, name, read) }
    }

    /// Tells the clients subscribed to this package's resource `uri` (as
    /// the package offers it: a fixed resource's URI, or one a template
    /// matches) that it changed, so they read it again. Call it from a tool
    /// (or a read) once the change is made; a call may report 32 URIs.
    pub fn updated(uri: &str) {
        crate::bindings::toolmesh::tool::resource_updates::updated(uri);
    }

    /// Sets a human-readable title.
    pub fn title(mut self, title: &str) -> Self {
        self.title = Some(title.to_owned());
        self
    }

    /// Says what it holds.
    pub fn description(mut self, description: &str) -> Self {
        self.description = Some(description.to_owned());
        self
    }

    /// Sets its media type.
    pub fn mime_type(mut self, mime_type: &str) -> Self {
        self.mime_type = Some(mime_type.to_owned());
        self
    }

    /// A link to this resource, for a result.
    pub fn link(&self) -> Content {
        Content::ResourceLink(wit::ResourceInfo {
            uri: self.uri.clone(),
            name: self.name.clone(),
            title: self.title.clone(),
            description: self.description.clone(),
            mime_type: self.mime_type.clone(),
            size: None,
        })
    }

    /// Reads it, as the host would.
    pub fn read(&self, read: &Read) -> Result<Vec<wit::ResourceContents>, OfferError> {
        let contents = (self.handler)(read)?;
        Ok(vec![wit::ResourceContents {
            uri: read.uri.clone(),
            mime_type: contents.mime_type.or_else(|| self.mime_type.clone()),
            body: contents.body,
        }])
    }
}

/// One message of a prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct Message(pub(crate) wit::PromptMessage);

impl Message {
    /// A message from the user saying `content` (text, an image, an
    /// embedded resource, …).
    pub fn user(content: impl Into<Content>) -> Self {
        Message(wit::PromptMessage { role: wit::Role::User, content: content.into() })
    }

    /// A message from the model.
    pub fn assistant(content: impl Into<Content>) -> Self {
        Message(wit::PromptMessage { role: wit::Role::Assistant, content: content.into() })
    }
}

impl From<String> for Content {
    fn from(text: String) -> Self {
        Content::Text(text)
    }
}

impl From<&str> for Content {
    fn from(text: &str) -> Self {
        Content::Text(text.to_owned())
    }
}

/// The arguments a prompt was filled in with.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PromptArgs(pub Vec<(String, String)>);

impl PromptArgs {
    /// The value of argument `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

type PromptHandler = Box<dyn Fn(&PromptArgs) -> Result<Vec<Message>, OfferError>>;

/// A prompt: a template of messages a client fills in with arguments.
pub struct Prompt {
    info: wit::Prompt,
    handler: PromptHandler,
}

impl Prompt {
    /// A prompt called `name` (1–64 of `[A-Za-z0-9_.-]`); give it its
    /// messages with [`Prompt::handler`].
    pub fn new(name: &str, description: &str) -> Self {
        Prompt {
            info: wit::Prompt {
                name: name.to_owned(),
                title: None,
                description: Some(description.to_owned()),
                arguments: Vec::new(),
            },
            handler: Box::new(|_| Ok(Vec::new())),
        }
    }

    /// Adds an argument.
    pub fn argument(mut self, name: &str, description: &str, required: bool) -> Self {
        self.info.arguments.push(wit::PromptArgument {
            name: name.to_owned(),
            description: Some(description.to_owned()),
            required,
        });
        self
    }

    /// Sets a human-readable title.
    pub fn title(mut self, title: &str) -> Self {
        self.info.title = Some(title.to_owned());
        self
    }

    /// Sets what makes its messages.
    pub fn handler(mut self, make: impl Fn(&PromptArgs) -> Result<Vec<Message>, OfferError> + 'static) -> Self {
        self.handler = Box::new(make);
        self
    }

    /// The prompt's name.
    pub fn name(&self) -> &str {
        &self.info.name
    }

    /// Fills it in, as the host would: a required argument missing is an
    /// error naming it.
    pub fn get(&self, args: &PromptArgs) -> Result<wit::PromptResult, OfferError> {
        if let Some(missing) = self.info.arguments.iter().find(|a| a.required && args.get(&a.name).is_none()) {
            return Err(OfferError::InvalidArguments(format!(
                "prompt `{}` needs argument `{}`",
                self.info.name, missing.name
            )));
        }
        let messages = (self.handler)(args)?;
        Ok(wit::PromptResult {
            description: self.info.description.clone(),
            messages: messages.into_iter().map(|m| m.0).collect(),
        })
    }
}

/// What `offer` answers for these resources and prompts.
pub(crate) fn describe(resources: &[Resource], prompts: &[Prompt]) -> wit::Offer {
    let (templates, fixed): (Vec<&Resource>, Vec<&Resource>) = resources.iter().partition(|r| r.templated);
    wit::Offer {
        resources: fixed
            .into_iter()
            .map(|r| wit::ResourceInfo {
                uri: r.uri.clone(),
                name: r.name.clone(),
                title: r.title.clone(),
                description: r.description.clone(),
                mime_type: r.mime_type.clone(),
                size: None,
            })
            .collect(),
        templates: templates
            .into_iter()
            .map(|r| wit::ResourceTemplate {
                uri_template: r.uri.clone(),
                name: r.name.clone(),
                title: r.title.clone(),
                description: r.description.clone(),
                mime_type: r.mime_type.clone(),
            })
            .collect(),
        prompts: prompts.iter().map(|p| p.info.clone()).collect(),
    }
}

/// Reads `uri` from `resources`: the resource of that URI, or the
/// template the host matched.
pub(crate) fn read(
    resources: &[Resource],
    uri: String,
    template: Option<String>,
    variables: Vec<(String, String)>,
) -> Result<Vec<wit::ResourceContents>, OfferError> {
    let found = match &template {
        Some(template) => resources.iter().find(|r| r.templated && &r.uri == template),
        None => resources.iter().find(|r| !r.templated && r.uri == uri),
    };
    let Some(resource) = found else {
        return Err(OfferError::NotFound(format!("no resource `{uri}`")));
    };
    resource.read(&Read { uri, variables })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resources() -> Vec<Resource> {
        vec![
            Resource::new("test://static", "static", |_| Ok(Contents::text("fixed"))).mime_type("text/plain"),
            Resource::template("test://items/{id}", "item", |read| {
                Ok(Contents::blob(read.var("id").unwrap_or_default().as_bytes().to_vec()))
            }),
        ]
    }

    #[test]
    fn resources_are_offered_and_read() {
        let offer = describe(&resources(), &[]);
        assert_eq!(offer.resources.len(), 1);
        assert_eq!(offer.templates[0].uri_template, "test://items/{id}");
        let fixed = read(&resources(), "test://static".into(), None, vec![]).unwrap();
        assert_eq!(fixed[0].body, wit::Body::Text("fixed".into()));
        assert_eq!(fixed[0].mime_type.as_deref(), Some("text/plain"));
        let item = read(
            &resources(),
            "test://items/7".into(),
            Some("test://items/{id}".into()),
            vec![("id".into(), "7".into())],
        )
        .unwrap();
        assert_eq!(item[0].body, wit::Body::Blob(b"7".to_vec()));
        assert_eq!(item[0].uri, "test://items/7");
        assert!(matches!(read(&resources(), "test://nope".into(), None, vec![]), Err(OfferError::NotFound(_))));
    }

    #[test]
    fn prompts_check_required_arguments() {
        let prompt = Prompt::new("p", "d")
            .argument("a", "first", true)
            .handler(|args| Ok(vec![Message::user(format!("a={}", args.get("a").unwrap_or_default()))]));
        assert!(
            matches!(prompt.get(&PromptArgs::default()), Err(OfferError::InvalidArguments(m)) if m.contains("`a`"))
        );
        let filled = prompt.get(&PromptArgs(vec![("a".into(), "x".into())])).unwrap();
        assert_eq!(filled.messages[0].content, Content::Text("a=x".into()));
    }
}
