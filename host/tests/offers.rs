//! Resources, prompts and richer content in the sandbox, against real
//! components: the conformance fixtures, the Markdown example, the hostile
//! component, and a component that predates them (`plain` has no `server`
//! export at all; `hello` is read through `handler` when asked to).
//!
//! The components are built by `scripts/build-components.sh`.

mod common;

use common::{assert_still_serves, call, load, sandbox_with, small_limits};
use serde_json::json;
use toolmesh_host::sandbox::{Body, Content, SandboxError, offer};

#[tokio::test]
async fn a_package_offers_resources_templates_and_prompts() {
    let sandbox = sandbox_with(small_limits());
    let fixtures = load(&sandbox, "conformance");
    let offered = sandbox.offer(&fixtures).await.unwrap();
    let uris: Vec<&str> = offered.resources.iter().map(|r| r.uri.as_str()).collect();
    assert_eq!(uris, ["test://static-text", "test://static-binary"]);
    assert_eq!(offered.resources[0].mime_type.as_deref(), Some("text/plain"));
    assert_eq!(offered.templates[0].uri_template, "test://template/{id}/data");
    let prompts: Vec<&str> = offered.prompts.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        prompts,
        [
            "test_simple_prompt",
            "test_prompt_with_arguments",
            "test_prompt_with_embedded_resource",
            "test_prompt_with_image",
            "test_input_required_result_prompt"
        ]
    );
    assert!(offered.prompts[1].arguments.iter().all(|a| a.required));
    // A component without resources or prompts offers nothing.
    let hello = load(&sandbox, "hello");
    assert!(sandbox.offer(&hello).await.unwrap().is_empty());
}

#[tokio::test]
async fn resources_are_read_in_the_sandbox() {
    let sandbox = sandbox_with(small_limits());
    let fixtures = load(&sandbox, "conformance");
    let out = call(&sandbox, &fixtures, offer::READ_RESOURCE, json!({"uri": "test://static-binary"})).await.unwrap();
    let [Content::Resource(binary)] = out.as_slice() else { panic!("{out:?}") };
    assert_eq!((binary.uri.as_str(), binary.mime_type.as_deref()), ("test://static-binary", Some("image/png")));
    assert!(matches!(&binary.body, Body::Blob(bytes) if bytes.starts_with(b"\x89PNG")));

    let read =
        json!({"uri": "test://template/42/data", "template": "test://template/{id}/data", "variables": {"id": "42"}});
    let out = call(&sandbox, &fixtures, offer::READ_RESOURCE, read).await.unwrap();
    let [Content::Resource(item)] = out.as_slice() else { panic!("{out:?}") };
    let Body::Text(text) = &item.body else { panic!() };
    assert_eq!(serde_json::from_str::<serde_json::Value>(text).unwrap()["data"], "Data for ID: 42");

    let err = call(&sandbox, &fixtures, offer::READ_RESOURCE, json!({"uri": "test://nothing"})).await.unwrap_err();
    assert!(matches!(&err, SandboxError::NotFound(m) if m.contains("test://nothing")), "{err}");
    // The package's own "not found" for a value of its template.
    let md = load(&sandbox, "markdown");
    let read = json!({"uri": "markdown://examples/blink", "template": "markdown://examples/{name}", "variables": {"name": "blink"}});
    let err = call(&sandbox, &md, offer::READ_RESOURCE, read).await.unwrap_err();
    assert!(matches!(&err, SandboxError::NotFound(m) if m.contains("blink")), "{err}");
    // A component that offers nothing says so.
    let hello = load(&sandbox, "hello");
    let err = call(&sandbox, &hello, offer::READ_RESOURCE, json!({"uri": "x://y"})).await.unwrap_err();
    assert!(matches!(err, SandboxError::NotFound(_)), "{err}");
    let err = call(&sandbox, &hello, offer::READ_RESOURCE, json!({"url": "x://y"})).await.unwrap_err();
    assert!(matches!(err, SandboxError::InvalidArguments(_)), "{err}");
}

#[tokio::test]
async fn prompts_are_filled_in_the_sandbox() {
    let sandbox = sandbox_with(small_limits());
    let fixtures = load(&sandbox, "conformance");
    let ask = json!({"name": "test_prompt_with_embedded_resource", "arguments": {"resourceUri": "test://x"}});
    let out = call(&sandbox, &fixtures, offer::GET_PROMPT, ask).await.unwrap();
    let [Content::Json(prompt)] = out.as_slice() else { panic!("{out:?}") };
    assert_eq!(prompt["messages"][0]["role"], "user");
    assert_eq!(
        prompt["messages"][0]["content"],
        json!({"type": "resource", "resource": {"uri": "test://x", "mimeType": "text/plain", "text": "Embedded resource content for testing."}})
    );
    assert_eq!(prompt["messages"][1]["content"]["text"], "Please process the embedded resource above.");

    let missing = json!({"name": "test_prompt_with_arguments", "arguments": {"arg1": "a"}});
    let err = call(&sandbox, &fixtures, offer::GET_PROMPT, missing).await.unwrap_err();
    assert!(matches!(&err, SandboxError::InvalidArguments(m) if m.contains("arg2")), "{err}");
    let not_text = json!({"name": "test_prompt_with_arguments", "arguments": {"arg1": 1}});
    assert!(matches!(
        call(&sandbox, &fixtures, offer::GET_PROMPT, not_text).await,
        Err(SandboxError::InvalidArguments(_))
    ));
    let unknown = json!({"name": "nope"});
    assert!(matches!(call(&sandbox, &fixtures, offer::GET_PROMPT, unknown).await, Err(SandboxError::NotFound(_))));
}

#[tokio::test]
async fn every_kind_of_content_comes_back() {
    let sandbox = sandbox_with(small_limits());
    let fixtures = load(&sandbox, "conformance");
    let out = call(&sandbox, &fixtures, "test_audio_content", json!({})).await.unwrap();
    let [Content::Audio { data, mime_type }] = out.as_slice() else { panic!("{out:?}") };
    assert_eq!((mime_type.as_str(), &data[..4]), ("audio/wav", &b"RIFF"[..]));
    let out = call(&sandbox, &fixtures, "test_multiple_content_types", json!({})).await.unwrap();
    assert!(matches!(out.as_slice(), [Content::Text(_), Content::Image { .. }, Content::Resource(_)]), "{out:?}");
}

#[tokio::test]
async fn hostile_reads_and_prompts_are_contained() {
    let sandbox = sandbox_with(small_limits());
    let hostile = load(&sandbox, "hostile");
    let err = call(&sandbox, &hostile, offer::GET_PROMPT, json!({"name": "huge"})).await.unwrap_err();
    assert_eq!(err.kind(), "output_too_large", "{err}");
    let err = call(&sandbox, &hostile, offer::READ_RESOURCE, json!({"uri": "hostile://spin"})).await.unwrap_err();
    assert_eq!(err.kind(), "timeout", "{err}");
    assert_still_serves(&sandbox, &hostile).await;
}
