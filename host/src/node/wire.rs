//! The contract between gateways and nodes that run in other processes:
//! what a gateway sends to run a call, what a node answers, and what a
//! node advertises about itself. Plain serde types with a version, never
//! sandbox internals, so either side can change its insides freely and a
//! newer message is refused by name rather than misread.

use crate::grant::Grants;
use crate::sandbox::{Body, Content, ResourceContents, ResourceInfo};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The version of the messages this side writes. Version 2 added the
/// caller to calls and what a call used to its answers; version 3 calls
/// from a call's code to other tools ([`NodeMessage::Tools`],
/// [`ToolsAnswer`]); version 4 audio, embedded resources and resource
/// links in results ([`WireContent`]), which a node writes to an older
/// gateway as text, and questions to the client ([`WireAsk`]); version 5
/// resources a call reports changed ([`NodeMessage::Updated`]); version 6
/// bridged MCP servers (their tools in [`Advert::bridges`], calls of them
/// by [`CallMessage::bridge`]).
pub const WIRE_VERSION: u32 = 6;

/// The oldest version this side still reads and, to a peer that speaks
/// only it, writes.
pub const OLDEST_WIRE_VERSION: u32 = 1;

/// The version to write to a peer that speaks `theirs` (from its advert):
/// the newer of the two sides' is never sent to an older peer.
pub fn version_for(theirs: u32) -> u32 {
    theirs.clamp(OLDEST_WIRE_VERSION, WIRE_VERSION)
}

/// A message that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Not JSON of the expected shape.
    #[error("malformed {what}: {why}")]
    Malformed {
        /// Which message.
        what: &'static str,
        /// What is wrong.
        why: String,
    },
    /// Written by a newer (or much older) peer.
    #[error("{what} has version {found}; this side speaks {OLDEST_WIRE_VERSION} to {WIRE_VERSION}")]
    Version {
        /// Which message.
        what: &'static str,
        /// The version found.
        found: u32,
    },
}

/// Reads message `what` from JSON `bytes`, checking its version first: any
/// from [`OLDEST_WIRE_VERSION`] to [`WIRE_VERSION`] (an older message
/// lacks the newer fields, which read as absent).
pub fn decode<T: for<'de> Deserialize<'de>>(what: &'static str, bytes: &[u8]) -> Result<T, WireError> {
    #[derive(Deserialize)]
    struct Versioned {
        v: u32,
    }
    let malformed = |e: serde_json::Error| WireError::Malformed { what, why: e.to_string() };
    let Versioned { v } = serde_json::from_slice(bytes).map_err(malformed)?;
    if !(OLDEST_WIRE_VERSION..=WIRE_VERSION).contains(&v) {
        return Err(WireError::Version { what, found: v });
    }
    serde_json::from_slice(bytes).map_err(malformed)
}

/// Writes a message as JSON.
pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    serde_json::to_vec(message).expect("wire messages serialise")
}

/// A gateway's request to run one call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallMessage {
    /// The message's version (see [`WIRE_VERSION`]).
    pub v: u32,
    /// The call's id, the same in the gateway's and the node's logs.
    pub call_id: String,
    /// 1 for the first try; a retry elsewhere counts up, and answers to an
    /// older attempt are dropped.
    pub attempt: u32,
    /// The repository the component was published to.
    pub repository: String,
    /// The manifest digest the call is pinned to.
    pub digest: String,
    /// The tool inside the component.
    pub tool: String,
    /// The arguments, a JSON object as text.
    pub arguments: String,
    /// Whether the caller wants progress reports.
    #[serde(default)]
    pub progress: bool,
    /// Who asked for the call (a token's subject, an API key's name), for
    /// the node's logs. Since version 2; never a credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller: Option<String>,
    /// Whether the gateway answers the call's calls to other tools
    /// ([`NodeMessage::Tools`]). Since version 3.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tools: bool,
    /// The session the call runs in (its instance kept between calls).
    /// Since version 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<WireSession>,
    /// What the call may ask its client, and the answers so far. Since
    /// version 4. A call that asks what it has no answer to fails with
    /// kind `input_required`, its message the JSON object of the questions
    /// by key; one that failed for want of a capability the client lacks,
    /// with kind `missing_capability`, its message the JSON array of their
    /// names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ask: Option<WireAsk>,
    /// The bridged server whose tool this is, by its name on the node
    /// (then `repository` and `digest` only name the call in logs). Since
    /// version 6, and only to a node that advertised the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<String>,
}

/// A call's questions to its client on the wire: what the client can
/// answer, and the answers so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireAsk {
    /// What the client can answer.
    pub abilities: crate::capability::ask::ClientAbilities,
    /// The answers so far, by key.
    #[serde(default)]
    pub answers: BTreeMap<String, serde_json::Value>,
}

/// A call's session on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireSession {
    /// The session's key on the node (its id and opening tag).
    pub key: String,
    /// Whether the node must hold it already ("session lost" if not).
    pub resume: bool,
}

/// What a call's code asks of the gateway that sent the call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum ToolsOp {
    /// Call tool `name` with `arguments` (a JSON object as text).
    Call {
        /// The tool's MCP name.
        name: String,
        /// The arguments.
        arguments: String,
    },
    /// List the tools matching `query`.
    Describe {
        /// The words to look for.
        query: String,
    },
}

/// A gateway's answer to a [`NodeMessage::Tools`], sent to
/// [`crate::mesh::subjects`]' `tools` subject of the call's node. Since
/// version 3.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolsAnswer {
    /// The message's version (see [`WIRE_VERSION`]).
    pub v: u32,
    /// The call whose code asked.
    pub call_id: String,
    /// Its attempt.
    pub attempt: u32,
    /// The request answered.
    pub request: u64,
    /// The MCP result as JSON text, or why there is none.
    pub outcome: ToolsOutcome,
}

/// What a call from code came to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ToolsOutcome {
    /// The answer, as JSON text.
    Ok(String),
    /// Why there is none.
    Error(crate::capability::tools::CallError),
}

/// A gateway's word that a call's caller went away: stop it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelMessage {
    /// The message's version (see [`WIRE_VERSION`]).
    pub v: u32,
    /// The call.
    pub call_id: String,
    /// The attempt.
    pub attempt: u32,
}

/// What a node sends back about a call, in order: accepted, then any
/// keep-alives and progress, then exactly one result or error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum NodeMessage {
    /// The node took the call.
    Accepted {
        /// The message's version (see [`WIRE_VERSION`]).
        v: u32,
        /// The call.
        call_id: String,
        /// The attempt.
        attempt: u32,
        /// The node's id.
        node: String,
    },
    /// The call is still running (sent at a fixed interval, so a silent
    /// node is known to be lost).
    KeepAlive {
        /// The message's version (see [`WIRE_VERSION`]).
        v: u32,
        /// The call.
        call_id: String,
        /// The attempt.
        attempt: u32,
    },
    /// A progress report from the tool.
    Progress {
        /// The message's version (see [`WIRE_VERSION`]).
        v: u32,
        /// The call.
        call_id: String,
        /// The attempt.
        attempt: u32,
        /// Work done.
        done: f64,
        /// Total work, if known.
        total: Option<f64>,
        /// What it is doing.
        message: Option<String>,
    },
    /// The call reports that its package's resource `uri` (as the package
    /// offers it) changed. Since version 5, each URI once per attempt.
    Updated {
        /// The message's version (see [`WIRE_VERSION`]).
        v: u32,
        /// The call.
        call_id: String,
        /// The attempt.
        attempt: u32,
        /// The resource, as the package offers it.
        uri: String,
    },
    /// The call's code asks something of the gateway (answered with a
    /// [`ToolsAnswer`]). Since version 3, and only for calls whose message
    /// said `tools`.
    Tools {
        /// The message's version (see [`WIRE_VERSION`]).
        v: u32,
        /// The call.
        call_id: String,
        /// The attempt.
        attempt: u32,
        /// Numbers the call's requests, from 1.
        request: u64,
        /// What it asks.
        op: ToolsOp,
    },
    /// The call's result.
    Result {
        /// The message's version (see [`WIRE_VERSION`]).
        v: u32,
        /// The call.
        call_id: String,
        /// The attempt.
        attempt: u32,
        /// The content items.
        content: Vec<WireContent>,
        /// What the call used. Since version 2.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        usage: Option<WireUsage>,
    },
    /// The call failed.
    Error {
        /// The message's version (see [`WIRE_VERSION`]).
        v: u32,
        /// The call.
        call_id: String,
        /// The attempt.
        attempt: u32,
        /// A short stable word (`timeout`, `not_granted`, `node_busy`, …).
        kind: String,
        /// The phase it failed in (`fetch`, `load`, `admission`, …).
        phase: String,
        /// What happened, in words.
        message: String,
        /// Whether the tool is at fault (the model should see it as a
        /// result) rather than the host or the caller.
        tool_failure: bool,
        /// Whether another node could succeed (busy, not granted here).
        retryable: bool,
        /// What the call used before it failed. Since version 2.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        usage: Option<WireUsage>,
    },
}

/// What a call used of the node that ran it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireUsage {
    /// CPU time, in microseconds.
    pub cpu_us: u64,
    /// GPU time, in microseconds.
    #[serde(default)]
    pub gpu_us: u64,
}

impl WireUsage {
    /// What `meter` measured.
    pub fn of(meter: &crate::sandbox::CallMeter) -> Self {
        let us = |d: std::time::Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        WireUsage { cpu_us: us(meter.cpu()), gpu_us: us(meter.gpu()) }
    }

    /// Adds it to `meter`.
    pub fn add_to(self, meter: &crate::sandbox::CallMeter) {
        meter.add_cpu(std::time::Duration::from_micros(self.cpu_us));
        meter.add_gpu(std::time::Duration::from_micros(self.gpu_us));
    }
}

/// A content item on the wire: images travel as base64.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum WireContent {
    /// Plain text.
    Text {
        /// The text.
        text: String,
    },
    /// Structured content.
    Json {
        /// The document.
        value: serde_json::Value,
    },
    /// Structured content with no content block of its own. Since version 6.
    Structured {
        /// The document.
        value: serde_json::Value,
    },
    /// An image.
    Image {
        /// The bytes, base64.
        data: String,
        /// Their media type.
        mime_type: String,
    },
    /// Audio. Since version 4.
    Audio {
        /// The bytes, base64.
        data: String,
        /// Their media type.
        mime_type: String,
    },
    /// A resource's contents. Since version 4.
    Resource {
        /// Its URI.
        uri: String,
        /// Its media type.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mime_type: Option<String>,
        /// Its text, if it is text.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        /// Its bytes, base64, if it is not.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        blob: Option<String>,
    },
    /// A link to a resource. Since version 4.
    ResourceLink {
        /// The resource, as MCP describes it.
        resource: ResourceInfo,
    },
}

impl From<Content> for WireContent {
    fn from(content: Content) -> Self {
        match content {
            Content::Text(text) => WireContent::Text { text },
            Content::Json(value) => WireContent::Json { value },
            Content::Structured(value) => WireContent::Structured { value },
            Content::Image { data, mime_type } => WireContent::Image { data: BASE64.encode(data), mime_type },
            Content::Audio { data, mime_type } => WireContent::Audio { data: BASE64.encode(data), mime_type },
            Content::Resource(ResourceContents { uri, mime_type, body }) => {
                let (text, blob) = match body {
                    Body::Text(text) => (Some(text), None),
                    Body::Blob(bytes) => (None, Some(BASE64.encode(bytes))),
                };
                WireContent::Resource { uri, mime_type, text, blob }
            }
            Content::ResourceLink(resource) => WireContent::ResourceLink { resource },
        }
    }
}

impl WireContent {
    /// `content` as a peer of wire version `v` reads it: before version 4,
    /// audio, resources and links become text that says what they were.
    pub fn for_version(content: Content, v: u32) -> Self {
        if let (Content::Structured(value), ..6) = (&content, v) {
            return WireContent::Json { value: value.clone() };
        }
        if v >= 4 {
            return content.into();
        }
        match content {
            Content::Audio { data, mime_type } => {
                WireContent::Text { text: format!("[{mime_type} audio, {} bytes]", data.len()) }
            }
            Content::Resource(ResourceContents { uri, body: Body::Text(text), .. }) => {
                WireContent::Text { text: format!("[{uri}]\n{text}") }
            }
            Content::Resource(ResourceContents { uri, body: Body::Blob(bytes), .. }) => {
                WireContent::Text { text: format!("[{uri}: {} bytes]", bytes.len()) }
            }
            Content::ResourceLink(link) => WireContent::Text { text: format!("[link: {}]", link.uri) },
            other => other.into(),
        }
    }
}

impl TryFrom<WireContent> for Content {
    type Error = WireError;

    fn try_from(content: WireContent) -> Result<Self, WireError> {
        Ok(match content {
            WireContent::Text { text } => Content::Text(text),
            WireContent::Json { value } => Content::Json(value),
            WireContent::Structured { value } => Content::Structured(value),
            WireContent::Image { data, mime_type } => {
                Content::Image { data: decode_base64("image content", data)?, mime_type }
            }
            WireContent::Audio { data, mime_type } => {
                Content::Audio { data: decode_base64("audio content", data)?, mime_type }
            }
            WireContent::Resource { uri, mime_type, text, blob } => {
                let body = match (text, blob) {
                    (Some(text), None) => Body::Text(text),
                    (None, Some(blob)) => Body::Blob(decode_base64("resource content", blob)?),
                    _ => {
                        return Err(WireError::Malformed {
                            what: "resource content",
                            why: "it needs one of `text` and `blob`".into(),
                        });
                    }
                };
                Content::Resource(ResourceContents { uri, mime_type, body })
            }
            WireContent::ResourceLink { resource } => Content::ResourceLink(resource),
        })
    }
}

/// The bytes of base64 `data`, or why not.
fn decode_base64(what: &'static str, data: String) -> Result<Vec<u8>, WireError> {
    BASE64.decode(data).map_err(|e| WireError::Malformed { what, why: e.to_string() })
}

/// What a node tells gateways about itself, published at an interval and
/// forgotten when it stops coming.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Advert {
    /// The newest version the node speaks: gateways write it calls of
    /// that version at most ([`version_for`]).
    pub v: u32,
    /// A unique id, new at every start.
    pub id: String,
    /// A name people chose (`gpu-box-1`).
    pub name: String,
    /// Labels from `--label k=v`.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// CPU cores.
    pub cores: u32,
    /// Memory the node's calls may reserve, in bytes.
    pub memory_bytes: u64,
    /// Calls it runs at once.
    pub slots: u32,
    /// Calls running now.
    pub in_flight: u32,
    /// GPU adapters it offers to tools.
    #[serde(default)]
    pub gpus: Vec<GpuAdapter>,
    /// What its policy grants.
    pub grants: Grants,
    /// Manifest digests whose components it has compiled.
    #[serde(default)]
    pub compiled: Vec<String>,
    /// The MCP servers it bridges, with their tools. Since version 6.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bridges: Vec<crate::bridge::listing::ServerListing>,
    /// How long this advert stays true without another, in milliseconds.
    pub ttl_ms: u64,
}

/// A GPU adapter a node offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuAdapter {
    /// The adapter's name.
    pub name: String,
    /// The backend (`vulkan`, `metal`, …).
    pub backend: String,
    /// `discrete`, `integrated`, `cpu` (a software adapter), …
    pub device_type: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_newer_versions_are_named() {
        let call = CallMessage {
            v: WIRE_VERSION,
            call_id: "c1".into(),
            attempt: 2,
            repository: "examples/text".into(),
            digest: "sha256:00".into(),
            tool: "count".into(),
            arguments: r#"{"text":"a"}"#.into(),
            progress: true,
            caller: Some("alice".into()),
            tools: true,
            session: Some(WireSession { key: "work#ab12".into(), resume: true }),
            ask: Some(WireAsk {
                abilities: crate::capability::ask::ClientAbilities { elicitation: true, sampling: false, roots: true },
                answers: BTreeMap::from([("name".into(), serde_json::json!({"action": "decline"}))]),
            }),
            bridge: Some("time".into()),
        };
        assert_eq!(decode::<CallMessage>("call", &encode(&call)).unwrap(), call);
        let newer = br#"{"v": 7, "call_id": "c1", "teleport": true}"#;
        assert_eq!(decode::<CallMessage>("call", newer).unwrap_err(), WireError::Version { what: "call", found: 7 });
        let ancient = br#"{"v": 0, "call_id": "c1"}"#;
        assert_eq!(decode::<CallMessage>("call", ancient).unwrap_err(), WireError::Version { what: "call", found: 0 });
        assert!(matches!(decode::<CallMessage>("call", b"[1,2"), Err(WireError::Malformed { .. })));

        let done = NodeMessage::Result {
            v: WIRE_VERSION,
            call_id: "c1".into(),
            attempt: 2,
            content: vec![
                Content::Text("hi".into()).into(),
                Content::Image { data: vec![0, 159, 255], mime_type: "image/png".into() }.into(),
            ],
            usage: Some(WireUsage { cpu_us: 1500, gpu_us: 0 }),
        };
        let json = encode(&done);
        assert!(String::from_utf8_lossy(&json).contains(r#""type":"result""#));
        let NodeMessage::Result { content, usage, .. } = decode::<NodeMessage>("answer", &json).unwrap() else {
            panic!()
        };
        assert_eq!(usage, Some(WireUsage { cpu_us: 1500, gpu_us: 0 }));
        let back: Vec<Content> = content.into_iter().map(|c| c.try_into().unwrap()).collect();
        assert_eq!(back[1], Content::Image { data: vec![0, 159, 255], mime_type: "image/png".into() });

        // Version 4 carries every kind of content; older gateways get text.
        let rich = vec![
            Content::Audio { data: vec![1, 2, 3], mime_type: "audio/wav".into() },
            Content::Resource(ResourceContents {
                uri: "test://a".into(),
                mime_type: Some("application/json".into()),
                body: Body::Text("{}".into()),
            }),
            Content::Resource(ResourceContents { uri: "test://b".into(), mime_type: None, body: Body::Blob(vec![9]) }),
            Content::ResourceLink(ResourceInfo {
                uri: "test://c".into(),
                name: "c".into(),
                title: None,
                description: None,
                mime_type: None,
                size: None,
            }),
        ];
        for item in &rich {
            let json = serde_json::to_vec(&WireContent::for_version(item.clone(), 4)).unwrap();
            let back: WireContent = serde_json::from_slice(&json).unwrap();
            assert_eq!(&Content::try_from(back).unwrap(), item);
            assert!(matches!(WireContent::for_version(item.clone(), 3), WireContent::Text { .. }));
        }
        // Structured content alone travels as such to version 6, as JSON before.
        let alone = Content::Structured(serde_json::json!({"a": 1}));
        let json = serde_json::to_vec(&WireContent::for_version(alone.clone(), 6)).unwrap();
        assert_eq!(Content::try_from(serde_json::from_slice::<WireContent>(&json).unwrap()).unwrap(), alone);
        assert!(matches!(WireContent::for_version(alone, 5), WireContent::Json { .. }));
        let both = br#"{"type": "resource", "uri": "test://x", "text": "a", "blob": "AA=="}"#;
        let both: WireContent = serde_json::from_slice(both).unwrap();
        assert!(Content::try_from(both).is_err());

        let ask = NodeMessage::Tools {
            v: WIRE_VERSION,
            call_id: "c1".into(),
            attempt: 2,
            request: 7,
            op: ToolsOp::Call { name: "examples.text.count".into(), arguments: "{}".into() },
        };
        assert_eq!(decode::<NodeMessage>("answer", &encode(&ask)).unwrap(), ask);
        let updated =
            NodeMessage::Updated { v: WIRE_VERSION, call_id: "c1".into(), attempt: 2, uri: "notes://all".into() };
        let json = String::from_utf8(encode(&updated)).unwrap();
        assert_eq!(json, r#"{"type":"updated","v":6,"call_id":"c1","attempt":2,"uri":"notes://all"}"#);
        assert_eq!(decode::<NodeMessage>("answer", json.as_bytes()).unwrap(), updated);
        let answer = ToolsAnswer {
            v: WIRE_VERSION,
            call_id: "c1".into(),
            attempt: 2,
            request: 7,
            outcome: ToolsOutcome::Error(crate::capability::tools::CallError::Limit("too deep".into())),
        };
        let json = String::from_utf8(encode(&answer)).unwrap();
        assert!(json.contains(r#""outcome":{"error":{"kind":"limit","message":"too deep"}}"#), "{json}");
        assert_eq!(decode::<ToolsAnswer>("tools answer", json.as_bytes()).unwrap(), answer);
    }

    #[test]
    fn version_1_peers_are_read_and_written_to_without_the_newer_fields() {
        // A version-1 gateway's call: read, with no caller.
        let old_call = br#"{"v":1,"call_id":"c1","attempt":1,"repository":"examples/text","digest":"sha256:00","tool":"count","arguments":"{}","progress":false}"#;
        let call = decode::<CallMessage>("call", old_call).unwrap();
        assert_eq!((call.v, call.caller), (1, None));
        // To a version-1 node a call goes out in version 1, whose reader
        // refuses unknown fields: so no caller field at all.
        assert_eq!(version_for(1), 1);
        assert_eq!(version_for(7), WIRE_VERSION, "never newer than this side");
        let to_old =
            CallMessage { v: version_for(1), caller: None, ..decode::<CallMessage>("call", old_call).unwrap() };
        assert_eq!(encode(&to_old), old_call.to_vec());
        // A version-1 node's answer: no usage.
        let old_answer = br#"{"type":"error","v":1,"call_id":"c1","attempt":1,"kind":"timeout","phase":"call","message":"slow","tool_failure":true,"retryable":false}"#;
        let NodeMessage::Error { usage, .. } = decode::<NodeMessage>("answer", old_answer).unwrap() else { panic!() };
        assert_eq!(usage, None);
        // A field a version does not know is still refused.
        let odd = br#"{"type":"keep_alive","v":2,"call_id":"c1","attempt":1,"mood":"fine"}"#;
        assert!(matches!(decode::<NodeMessage>("answer", odd), Err(WireError::Malformed { .. })));
    }
}
