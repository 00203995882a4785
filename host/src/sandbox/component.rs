//! What the sandbox hands out and takes in: a loaded [`ToolComponent`],
//! the [`CallOptions`] of one call, and its [`CallOutput`].

use super::bindings::exports::toolmesh::tool::{handler, server};
use super::bindings::toolmesh::tool::mcp_types::{Item, OfferError, PromptResult, ResourceContents};
use super::bindings::toolmesh::tool::types::ToolError;
use super::plain::PlainExports;
use super::{CallState, Content, ProgressSink, Reservation, SandboxError, Tier};
use crate::capability::{self, Capability};
use crate::config::Limits;
use crate::grant::Grant;
use std::sync::Arc;
use toolmesh_registry::digest::Digest;
use wasmtime::component::InstancePre;

/// A loaded component, compiled and linked, ready to run calls.
#[derive(Clone)]
pub struct ToolComponent {
    pub(super) digest: Digest,
    pub(super) imports: Arc<[String]>,
    /// For each capability that needs a grant, the first import that uses it.
    pub(super) gated: Arc<[(&'static Capability, String)]>,
    pub(super) pre: InstancePre<CallState>,
    pub(super) entry: Entry,
    pub(super) tier: Tier,
}

/// How a component is called: through the toolmesh world's handler, or
/// through its plain exported functions.
#[derive(Clone)]
pub(super) enum Entry {
    /// It exports `toolmesh:tool/handler`, and perhaps `toolmesh:tool/server`.
    Toolmesh(Arc<Exports>),
    /// It exports plain functions, one tool each.
    Plain(Arc<PlainExports>),
}

/// Where a toolmesh-world component's exports are.
pub(super) struct Exports {
    /// `toolmesh:tool/handler`, which every one exports.
    pub handler: handler::GuestIndices,
    /// `toolmesh:tool/server`, which components built with this release's
    /// SDKs export: results with every kind of content, resources, prompts.
    pub server: Option<server::GuestIndices>,
}

/// What a call asks of a toolmesh-world component.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Operation {
    /// Run a tool.
    Call { tool: String, arguments: String },
    /// Read a resource: its URI, and the template that matched it with
    /// its variables' values.
    Read { uri: String, template: Option<String>, variables: Vec<(String, String)> },
    /// Fill in a prompt.
    Prompt { name: String, arguments: Vec<(String, String)> },
}

/// What a component answered to an [`Operation`], unchecked.
pub(super) enum Answer {
    /// A tool's result.
    Items(Result<Vec<Item>, ToolError>),
    /// A resource's contents.
    Read(Result<Vec<ResourceContents>, OfferError>),
    /// A filled-in prompt.
    Prompt(Result<PromptResult, OfferError>),
}

impl Exports {
    /// Runs `operation` in `instance`: a tool through `server` when the
    /// component exports it (every kind of content), else `handler`.
    pub(super) async fn run(
        &self,
        store: &mut wasmtime::Store<CallState>,
        instance: &wasmtime::component::Instance,
        operation: &Operation,
    ) -> wasmtime::Result<Answer> {
        let server = match &self.server {
            Some(server) => Some(server.load(&mut *store, instance)?),
            None => None,
        };
        Ok(match (operation, server) {
            (Operation::Call { tool, arguments }, Some(server)) => {
                Answer::Items(server.call_call(&mut *store, tool, arguments).await?)
            }
            (Operation::Call { tool, arguments }, None) => {
                let handler = self.handler.load(&mut *store, instance)?;
                Answer::Items(handler.call_call(&mut *store, tool, arguments).await?.map(super::content::items))
            }
            (Operation::Read { uri, template, variables }, Some(server)) => {
                Answer::Read(server.call_read(&mut *store, uri, template.as_deref(), variables).await?)
            }
            (Operation::Prompt { name, arguments }, Some(server)) => {
                Answer::Prompt(server.call_get_prompt(&mut *store, name, arguments).await?)
            }
            (Operation::Read { uri, .. }, None) => {
                Answer::Read(Err(OfferError::NotFound(format!("unknown resource `{uri}`: the package offers none"))))
            }
            (Operation::Prompt { name, .. }, None) => {
                Answer::Prompt(Err(OfferError::NotFound(format!("unknown prompt `{name}`: the package offers none"))))
            }
        })
    }
}

impl ToolComponent {
    /// Bytes of compiled code it holds in memory.
    pub fn code_size(&self) -> u64 {
        let image = self.pre.component().image_range();
        (image.end as usize).saturating_sub(image.start as usize) as u64
    }

    /// Which compiler made its code.
    pub fn tier(&self) -> Tier {
        self.tier
    }

    /// The sha256 of the component's bytes.
    pub fn digest(&self) -> Digest {
        self.digest
    }

    /// Whether it is a component of another world, its exported functions
    /// offered as tools, rather than of the toolmesh world.
    pub fn is_plain(&self) -> bool {
        matches!(self.entry, Entry::Plain(_))
    }

    /// The names of everything the component imports.
    pub fn imports(&self) -> &[String] {
        &self.imports
    }

    /// The host capabilities its imports use, by name, in the host's order.
    pub fn capabilities(&self) -> Vec<&'static str> {
        capability::CAPABILITIES
            .iter()
            .filter(|c| self.imports.iter().any(|import| c.provides(import)))
            .map(|c| c.name)
            .collect()
    }

    /// Whether it imports the GPU interface (`toolmesh:tool/gpu`).
    pub fn uses_gpu(&self) -> bool {
        self.capabilities().contains(&"gpu")
    }

    /// Whether it imports calls to other tools (`toolmesh:tool/tools`).
    pub fn calls_tools(&self) -> bool {
        self.capabilities().contains(&"tools")
    }

    /// Refuses a call under `grant` if the component imports an interface
    /// the grant does not give, naming the import and the missing grant.
    pub fn check_grant(&self, grant: &Grant) -> Result<(), SandboxError> {
        self.gated.iter().try_for_each(|(capability, import)| capability.check(import, grant))
    }
}

/// What a call returned. It holds the call's share of the node's memory
/// budget until dropped (or until [`CallOutput::into_parts`] hands it
/// over), so the host's copies of the result made after the call (parsed,
/// shaped for MCP) are still covered by the budget.
pub struct CallOutput {
    pub(super) content: Vec<Content>,
    pub(super) reservation: Option<Reservation>,
}

impl CallOutput {
    /// Content that no sandbox produced (an invoker that runs nothing, a
    /// result that arrived from another node): nothing is reserved.
    pub fn unreserved(content: Vec<Content>) -> Self {
        CallOutput { content, reservation: None }
    }

    /// The content, giving the reservation back.
    pub fn into_content(self) -> Vec<Content> {
        self.content
    }

    /// The content and the reservation; drop the reservation once the
    /// content's copies are gone.
    pub fn into_parts(self) -> (Vec<Content>, Option<Reservation>) {
        (self.content, self.reservation)
    }
}

impl std::ops::Deref for CallOutput {
    type Target = [Content];

    fn deref(&self) -> &[Content] {
        &self.content
    }
}

impl std::fmt::Debug for CallOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallOutput").field("content", &self.content).finish_non_exhaustive()
    }
}

/// Per-call options; the default runs under the sandbox's default limits.
#[derive(Default, Clone)]
pub struct CallOptions {
    /// Limits of this call instead of the sandbox's defaults. They may not
    /// exceed the engine's maxima.
    pub limits: Option<Limits>,
    /// Receives the tool's progress reports.
    pub progress: Option<ProgressSink>,
    /// An identifier for log lines; one is made up if absent.
    pub call_id: Option<String>,
    /// What the call may use beyond the WASI base, log and progress
    /// (the tool's request as covered by the node's policy); none if absent.
    pub grant: Option<Arc<Grant>>,
    /// Receives the CPU and GPU time the call uses.
    pub meter: Option<Arc<super::CallMeter>>,
    /// Makes the call's calls to other tools; without it the call may not
    /// make any.
    pub tools: Option<Arc<dyn crate::capability::tools::ToolCaller>>,
    /// The session to run in, keeping the instance for the next call of
    /// the session; a fresh instance, dropped after, when absent.
    pub session: Option<super::SessionRequest>,
    /// What the call may ask its client, and the answers so far; the call
    /// may ask nothing when absent. Questions it leaves pending end it with
    /// [`SandboxError::InputRequired`].
    pub ask: Option<Arc<crate::capability::ask::Asking>>,
    /// Hears of the package's resources the call reports changed; reports
    /// are dropped when absent.
    pub updates: Option<crate::capability::resource_updates::UpdateSink>,
}
