//! Reading a package's resources and filling in its prompts: each runs on
//! a node in a fresh sandbox, placed, metered and audited like a tool call
//! ([`Gateway::invoke_counted`]), as the caller, with the caller's rights
//! over the item's MCP name. Documentation is written by the gateway.

use super::Gateway;
use super::call::{Counted, missing_of, questions_of};
use super::invoker::Invocation;
use super::offers::{self, CatalogPackage, Target};
use crate::auth::Caller;
use crate::capability::ask::Asking;
use crate::sandbox::{Body, Content, ResourceContents, SandboxError, offer};
use serde_json::{Map, Value, json};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// Why a read or a prompt produced nothing.
#[derive(Debug)]
pub(crate) enum ReadRefusal {
    /// No resource at that URI, or no prompt of that name.
    NotFound(String),
    /// The caller may not read it; these scopes would let it.
    NotAllowed { name: String },
    /// The arguments do not fit.
    InvalidArguments(String),
    /// The package failed to produce it, or a limit stopped it.
    Failed(String),
    /// The caller's quota refused it.
    OverQuota(String),
    /// The caller gave up.
    Cancelled,
    /// Refused for now; trying again may work.
    Retryable(String),
    /// The package asks the client these questions first.
    InputRequired(std::collections::BTreeMap<String, crate::capability::ask::Question>),
    /// The package failed for want of these client capabilities.
    MissingCapability(Vec<String>),
}

impl Gateway {
    /// Reads the resource at `uri` for `caller`: its contents, with the
    /// URIs as the gateway offers them.
    pub(crate) async fn read_resource(
        &self,
        caller: &Caller,
        uri: &str,
        ask: Option<Arc<Asking>>,
        cancelled: Pin<Box<dyn Future<Output = ()> + Send>>,
    ) -> Result<Vec<ResourceContents>, ReadRefusal> {
        let catalog = self.catalog();
        let not_found = || ReadRefusal::NotFound(format!("no resource `{uri}`"));
        match catalog.offers().resolve(uri).ok_or_else(not_found)? {
            Target::Docs(package) => {
                if !self.package_visible(caller, &package) {
                    return Err(not_found());
                }
                let text = offers::docs(&catalog, &package);
                let body = Body::Text(text);
                Ok(vec![ResourceContents { uri: uri.to_owned(), mime_type: Some("text/markdown".into()), body }])
            }
            Target::Resource { package, declared, template, name } => {
                if !caller.may_call(&name) {
                    return Err(ReadRefusal::NotAllowed { name });
                }
                let mut arguments = json!({ "uri": declared });
                if let Some((template, variables)) = template {
                    arguments["template"] = template.into();
                    let variables: Map<String, Value> = variables.into_iter().map(|(k, v)| (k, v.into())).collect();
                    arguments["variables"] = variables.into();
                }
                let content = self
                    .run_offered(caller, (&package, &name), offer::READ_RESOURCE, arguments, ask, cancelled)
                    .await?;
                Ok(content
                    .into_iter()
                    .filter_map(|item| match item {
                        // The package's URIs, offered under the gateway's.
                        Content::Resource(mut resource) => {
                            resource.uri = package.uri(&resource.uri);
                            Some(resource)
                        }
                        _ => None,
                    })
                    .collect())
            }
        }
    }

    /// Fills in prompt `name` with `arguments` for `caller`: the MCP
    /// `GetPromptResult` as JSON.
    pub(crate) async fn get_prompt(
        &self,
        caller: &Caller,
        name: &str,
        arguments: Map<String, Value>,
        ask: Option<Arc<Asking>>,
        cancelled: Pin<Box<dyn Future<Output = ()> + Send>>,
    ) -> Result<Value, ReadRefusal> {
        let catalog = self.catalog();
        let Some((package, prompt)) = catalog.offers().prompt(name) else {
            return Err(ReadRefusal::NotFound(format!("no prompt `{name}`")));
        };
        if !caller.may_call(name) {
            return Err(ReadRefusal::NotAllowed { name: name.to_owned() });
        }
        // Checked here too, so a missing argument costs no sandbox.
        if let Some(missing) = prompt.arguments.iter().find(|a| a.required && !arguments.contains_key(&a.name)) {
            return Err(ReadRefusal::InvalidArguments(format!("prompt `{name}` needs argument `{}`", missing.name)));
        }
        if let Some((key, _)) = arguments.iter().find(|(_, v)| !v.is_string()) {
            return Err(ReadRefusal::InvalidArguments(format!("prompt argument `{key}` must be a string")));
        }
        let request = json!({ "name": prompt.name, "arguments": arguments });
        let package = package.clone();
        let content = self.run_offered(caller, (&package, name), offer::GET_PROMPT, request, ask, cancelled).await?;
        match content.into_iter().next() {
            Some(Content::Json(result)) => Ok(result),
            _ => Err(ReadRefusal::Failed(format!("prompt `{name}` came back without its messages"))),
        }
    }

    /// Whether `caller` may see anything of `package`, and so its
    /// documentation.
    pub(crate) fn package_visible(&self, caller: &Caller, package: &CatalogPackage) -> bool {
        let catalog = self.catalog();
        let mut names = catalog
            .tools()
            .filter(|t| t.repository == package.repository)
            .map(|t| t.name.clone())
            .chain(package.offer.resources.iter().map(|r| package.name(&r.name)))
            .chain(package.offer.templates.iter().map(|t| package.name(&t.name)))
            .chain(package.offer.prompts.iter().map(|p| package.name(&p.name)));
        names.any(|name| caller.may_call(&name))
    }

    /// Runs `operation` (a read or a prompt) of `package` on a node.
    async fn run_offered(
        &self,
        caller: &Caller,
        (package, name): (&Arc<CatalogPackage>, &str),
        operation: &str,
        arguments: Value,
        ask: Option<Arc<Asking>>,
        cancelled: Pin<Box<dyn Future<Output = ()> + Send>>,
    ) -> Result<Vec<Content>, ReadRefusal> {
        let invocation = Invocation {
            repository: package.repository.clone(),
            digest: package.digest,
            tool: operation.to_owned(),
            arguments: arguments.to_string(),
            progress: None,
            call_id: self.next_call_id(),
            request: package.permissions.clone(),
            // Reads and prompts change nothing: a lost node's are retried.
            retry_safe: true,
            effects: Arc::default(),
            caller: Some(caller.name.clone()),
            meter: Arc::default(),
            tools: None,
            session: None,
            ask,
            updates: None,
            bridge: package.bridge.clone(),
        };
        let outcome = match self.invoke_counted(caller, name, invocation, None, cancelled, 0).await {
            Counted::OverQuota(result) => {
                let text = result.content.first().and_then(|c| c.as_text()).map(|t| t.text.clone());
                return Err(ReadRefusal::OverQuota(text.unwrap_or_else(|| "over quota".into())));
            }
            Counted::Ran(outcome) => outcome,
        };
        match outcome {
            None => Err(ReadRefusal::Cancelled),
            Some(Ok(output)) => Ok(output.into_content()),
            Some(Err(e)) if let Some(questions) = questions_of(&e) => Err(ReadRefusal::InputRequired(questions)),
            Some(Err(e)) if let Some(missing) = missing_of(&e) => Err(ReadRefusal::MissingCapability(missing)),
            Some(Err(e)) => Err(match e.sandbox() {
                Some(SandboxError::NotFound(message)) => ReadRefusal::NotFound(message.clone()),
                Some(SandboxError::InvalidArguments(message)) => ReadRefusal::InvalidArguments(message.clone()),
                _ if e.kind() == "not_found" => ReadRefusal::NotFound(e.cause.to_string()),
                _ if e.kind() == "invalid_arguments" => ReadRefusal::InvalidArguments(e.cause.to_string()),
                _ if e.is_retryable() => ReadRefusal::Retryable(e.cause.to_string()),
                _ => ReadRefusal::Failed(e.cause.to_string()),
            }),
        }
    }
}
