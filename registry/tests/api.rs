//! The registry's HTTP API on a real loopback listener, driven by the
//! project's client and by raw requests for the cases a client would never
//! send.

use bytes::Bytes;
use reqwest::StatusCode;
use serde_json::Value;
use std::collections::BTreeMap;
use toolmesh_registry::api::{AccessConfig, router};
use toolmesh_registry::client::{Client, ClientError};
use toolmesh_registry::digest::Digest;
use toolmesh_registry::name::{ManifestRef, Repository};
use toolmesh_registry::oci::{self, Descriptor, Manifest};
use toolmesh_registry::store::{FsStore, StoreConfig};

const PUSH: &str = "push-secret";

struct Registry {
    url: String,
    dir: tempfile::TempDir,
    http: reqwest::Client,
}

async fn start(config: StoreConfig, access: AccessConfig) -> Registry {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::open(dir.path(), config).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router(store, access)).await });
    Registry { url, dir, http: toolmesh_registry::client::http_builder().build().unwrap() }
}

async fn default_registry() -> Registry {
    start(StoreConfig::default(), AccessConfig { push_tokens: vec![PUSH.into()], ..AccessConfig::default() }).await
}

impl Registry {
    fn client(&self) -> Client {
        Client::new(&self.url, Some(PUSH.into())).unwrap()
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.url)).bearer_auth(PUSH)
    }

    /// Every file under blobs/, as (digest hex, bytes).
    fn stored_blobs(&self) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        for shard in std::fs::read_dir(self.dir.path().join("blobs/sha256")).unwrap() {
            for file in std::fs::read_dir(shard.unwrap().path()).unwrap() {
                let path = file.unwrap().path();
                out.push((path.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&path).unwrap()));
            }
        }
        out
    }
}

fn repo(name: &str) -> Repository {
    name.parse().unwrap()
}

async fn error_code(response: reqwest::Response) -> (StatusCode, String) {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or_default();
    (status, body["errors"][0]["code"].as_str().unwrap_or("").to_owned())
}

fn wasm_manifest(layer: &[u8], config: &[u8]) -> Manifest {
    Manifest {
        schema_version: 2,
        media_type: Some(oci::MANIFEST_MEDIA_TYPE.into()),
        artifact_type: None,
        config: Descriptor::of(oci::WASM_CONFIG_MEDIA_TYPE, config),
        layers: vec![Descriptor::of(oci::WASM_LAYER_MEDIA_TYPE, layer)],
        subject: None,
        annotations: BTreeMap::new(),
    }
}

/// Pushes a config and one layer per item of `layers` into `repo`; returns
/// the (not yet pushed) manifest of a Wasm tool for each layer.
async fn pushed_blobs_of(c: &Client, repo: &Repository, layers: &[&[u8]]) -> Vec<Vec<u8>> {
    let config = Bytes::from_static(b"{\"architecture\":\"wasm\"}");
    c.push_blob(repo, config.clone(), &|_| {}).await.unwrap();
    let mut manifests = Vec::new();
    for layer in layers {
        c.push_blob(repo, Bytes::copy_from_slice(layer), &|_| {}).await.unwrap();
        manifests.push(wasm_manifest(layer, &config).to_bytes());
    }
    manifests
}

#[tokio::test]
async fn push_and_pull_by_tag_and_digest() {
    let r = default_registry().await;
    let c = r.client();
    let repo = repo("acme/tool");
    let layer = Bytes::from(vec![7u8; 20 << 20]); // chunked: over one CHUNK
    let config = Bytes::from_static(b"{\"architecture\":\"wasm\"}");
    let layer_digest = c.push_blob(&repo, layer.clone(), &|_| {}).await.unwrap();
    c.push_blob(&repo, config.clone(), &|_| {}).await.unwrap();
    let manifest = wasm_manifest(&layer, &config);
    let tag = ManifestRef::Tag("1.0.0".parse().unwrap());
    let digest = c.push_manifest(&repo, &tag, manifest.to_bytes(), oci::MANIFEST_MEDIA_TYPE).await.unwrap();

    let (bytes, by_tag, media_type) = c.pull_manifest(&repo, &tag).await.unwrap();
    assert_eq!((by_tag, media_type.as_str()), (digest, oci::MANIFEST_MEDIA_TYPE));
    assert_eq!(bytes, manifest.to_bytes());
    let (_, by_digest, _) = c.pull_manifest(&repo, &ManifestRef::Digest(digest)).await.unwrap();
    assert_eq!(by_digest, digest);
    assert_eq!(c.pull_blob(&repo, &layer_digest).await.unwrap(), layer);
    assert_eq!(c.tags(&repo).await.unwrap(), vec!["1.0.0"]);
    // Identical blobs are stored once.
    c.push_blob(&"other/name".parse().unwrap(), layer.clone(), &|_| {}).await.unwrap();
    assert_eq!(r.stored_blobs().iter().filter(|(hex, _)| *hex == layer_digest.hex()).count(), 1);
}

#[tokio::test]
async fn a_published_version_is_never_replaced_but_other_tags_move() {
    let r = default_registry().await;
    let c = r.client();
    let repo = repo("acme/tool");
    let manifests = pushed_blobs_of(&c, &repo, &[b"first", b"second", b"third"]).await;
    let version = ManifestRef::Tag("1.0.0".parse().unwrap());
    let first = c.push_manifest(&repo, &version, manifests[0].clone(), oci::MANIFEST_MEDIA_TYPE).await.unwrap();
    // The same content again is fine (a retried publish).
    assert_eq!(c.push_manifest(&repo, &version, manifests[0].clone(), oci::MANIFEST_MEDIA_TYPE).await.unwrap(), first);
    // Other content under the same version is refused, with the reason.
    let refused = r
        .req(reqwest::Method::PUT, "/v2/acme/tool/manifests/1.0.0")
        .header("content-type", oci::MANIFEST_MEDIA_TYPE)
        .body(manifests[1].clone())
        .send()
        .await
        .unwrap();
    let status = refused.status();
    let body = refused.text().await.unwrap();
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body.contains("DENIED") && body.contains("already published") && body.contains(&first.to_string()),
        "{body}"
    );
    assert_eq!(c.pull_manifest(&repo, &version).await.unwrap().1, first);
    // `v2` is a version too; `latest` is not, and moves.
    let v2 = ManifestRef::Tag("v2".parse().unwrap());
    c.push_manifest(&repo, &v2, manifests[1].clone(), oci::MANIFEST_MEDIA_TYPE).await.unwrap();
    assert!(c.push_manifest(&repo, &v2, manifests[2].clone(), oci::MANIFEST_MEDIA_TYPE).await.is_err());
    let latest = ManifestRef::Tag("latest".parse().unwrap());
    c.push_manifest(&repo, &latest, manifests[1].clone(), oci::MANIFEST_MEDIA_TYPE).await.unwrap();
    let moved = c.push_manifest(&repo, &latest, manifests[2].clone(), oci::MANIFEST_MEDIA_TYPE).await.unwrap();
    assert_eq!(c.pull_manifest(&repo, &latest).await.unwrap().1, moved);

    // Two publishers racing for a new version: exactly one wins, and the
    // version names the winner's content.
    let race = ManifestRef::Tag("3.0.0".parse().unwrap());
    let pushes = manifests.iter().map(|m| c.push_manifest(&repo, &race, m.clone(), oci::MANIFEST_MEDIA_TYPE));
    let outcomes = futures_util::future::join_all(pushes).await;
    let winners: Vec<_> = outcomes.iter().filter_map(|o| o.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "{outcomes:?}");
    assert_eq!(c.pull_manifest(&repo, &race).await.unwrap().1, *winners[0]);
}

#[tokio::test]
async fn a_yanked_version_leaves_the_catalog_and_still_pulls() {
    let r = default_registry().await;
    let c = r.client();
    let repo = repo("acme/tool");
    let mut digests = Vec::new();
    for (manifest, version) in pushed_blobs_of(&c, &repo, &[b"one", b"two"]).await.into_iter().zip(["1.0.0", "1.1.0"]) {
        let tag = ManifestRef::Tag(version.parse().unwrap());
        digests.push(c.push_manifest(&repo, &tag, manifest, oci::MANIFEST_MEDIA_TYPE).await.unwrap());
    }
    let versions =
        |entries: Vec<toolmesh_registry::api::CatalogEntry>| entries.into_iter().map(|e| e.version).collect::<Vec<_>>();
    assert_eq!(versions(c.catalog(None).await.unwrap()), ["1.0.0", "1.1.0"]);

    let old: toolmesh_registry::name::Tag = "1.0.0".parse().unwrap();
    c.set_yanked(&repo, &old, true).await.unwrap();
    assert_eq!(versions(c.catalog(None).await.unwrap()), ["1.1.0"]);
    // Pins keep working, by version and by digest.
    assert_eq!(c.pull_manifest(&repo, &ManifestRef::Tag(old.clone())).await.unwrap().1, digests[0]);
    assert_eq!(c.pull_manifest(&repo, &ManifestRef::Digest(digests[0])).await.unwrap().1, digests[0]);
    // Yanking needs a push token, and a version that exists.
    let anonymous = Client::new(&r.url, None).unwrap();
    assert!(anonymous.set_yanked(&repo, &"1.1.0".parse().unwrap(), true).await.is_err());
    let (status, code) =
        error_code(r.req(reqwest::Method::PUT, "/toolmesh/v1/yanked/acme/tool/9.9").send().await.unwrap()).await;
    assert_eq!((status, code.as_str()), (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN"));
    assert_eq!(versions(c.catalog(None).await.unwrap()), ["1.1.0"]);
    // Restored.
    c.set_yanked(&repo, &old, false).await.unwrap();
    assert_eq!(versions(c.catalog(None).await.unwrap()), ["1.0.0", "1.1.0"]);
}

#[tokio::test]
async fn chunks_out_of_order_get_416_and_the_upload_survives() {
    let r = default_registry().await;
    let started = r.req(reqwest::Method::POST, "/v2/acme/tool/blobs/uploads/").send().await.unwrap();
    assert_eq!(started.status(), StatusCode::ACCEPTED);
    let location = started.headers()["location"].to_str().unwrap().to_owned();
    let patch = |range: &str, body: &'static [u8]| {
        r.http.patch(format!("{}{location}", r.url)).bearer_auth(PUSH).header("content-range", range).body(body).send()
    };
    assert_eq!(patch("0-4", b"hello").await.unwrap().status(), StatusCode::ACCEPTED);
    let skipped = patch("10-14", b"world").await.unwrap();
    assert_eq!(skipped.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(skipped.headers()["range"], "0-4");
    let status = r.http.get(format!("{}{location}", r.url)).bearer_auth(PUSH).send().await.unwrap();
    assert_eq!((status.status(), status.headers()["range"].to_str().unwrap()), (StatusCode::NO_CONTENT, "0-4"));
    assert_eq!(patch("5-10", b" world").await.unwrap().status(), StatusCode::ACCEPTED);
    let digest = Digest::of(b"hello world");
    let done = r.http.put(format!("{}{location}?digest={digest}", r.url)).bearer_auth(PUSH).send().await.unwrap();
    assert_eq!(done.status(), StatusCode::CREATED);
    assert_eq!(done.headers()["docker-content-digest"], digest.to_string().as_str());
    assert_eq!(r.client().pull_blob(&repo("acme/tool"), &digest).await.unwrap(), Bytes::from_static(b"hello world"));
}

#[tokio::test]
async fn a_wrong_digest_stores_nothing() {
    let r = default_registry().await;
    let wrong = Digest::of(b"something else");
    let monolithic = r
        .req(reqwest::Method::POST, &format!("/v2/acme/tool/blobs/uploads/?digest={wrong}"))
        .body("the real bytes")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(monolithic).await, (StatusCode::BAD_REQUEST, "DIGEST_INVALID".into()));

    let started = r.req(reqwest::Method::POST, "/v2/acme/tool/blobs/uploads/").send().await.unwrap();
    let location = started.headers()["location"].to_str().unwrap().to_owned();
    let finish = r.http.put(format!("{}{location}?digest={wrong}", r.url)).bearer_auth(PUSH).body("bytes").send();
    assert_eq!(error_code(finish.await.unwrap()).await, (StatusCode::BAD_REQUEST, "DIGEST_INVALID".into()));
    assert!(r.stored_blobs().is_empty(), "{:?}", r.stored_blobs().len());
    // The failed session is gone.
    let again = r.http.get(format!("{}{location}", r.url)).bearer_auth(PUSH).send().await.unwrap();
    assert_eq!(error_code(again).await, (StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN".into()));
    let malformed = r.req(reqwest::Method::POST, "/v2/acme/tool/blobs/uploads/?digest=sha256:zz").body("x").send();
    assert_eq!(error_code(malformed.await.unwrap()).await, (StatusCode::BAD_REQUEST, "DIGEST_INVALID".into()));
}

#[tokio::test]
async fn a_blob_corrupted_on_disk_is_refused_not_served() {
    let r = default_registry().await;
    let c = r.client();
    let digest = c.push_blob(&repo("acme/tool"), Bytes::from_static(b"precious bytes"), &|_| {}).await.unwrap();
    let path = r.dir.path().join("blobs/sha256").join(&digest.hex()[..2]).join(digest.hex());
    std::fs::write(&path, b"precious bytez").unwrap();
    let response = r.req(reqwest::Method::GET, &format!("/v2/acme/tool/blobs/{digest}")).send().await.unwrap();
    let status = response.status();
    let body = response.text().await.unwrap();
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("BLOB_UNKNOWN") && body.contains("corrupt") && !body.contains("precious bytez"), "{body}");
    // Truncated too, and HEAD says the same.
    std::fs::write(&path, b"precious").unwrap();
    assert!(matches!(c.pull_blob(&repo("acme/tool"), &digest).await, Err(ClientError::Registry { .. })));
    assert!(!c.blob_exists(&repo("acme/tool"), &digest).await.unwrap());
    // Pushing the blob again repairs it.
    c.push_blob(&repo("acme/tool"), Bytes::from_static(b"precious bytes"), &|_| {}).await.unwrap();
    assert_eq!(c.pull_blob(&repo("acme/tool"), &digest).await.unwrap(), Bytes::from_static(b"precious bytes"));
}

#[tokio::test]
async fn concurrent_pushes_of_the_same_blob_all_succeed() {
    let r = default_registry().await;
    let blob = Bytes::from(vec![42u8; 9 << 20]);
    let pushes = (0..6).map(|i| {
        let c = r.client();
        let blob = blob.clone();
        tokio::spawn(async move {
            let repo: Repository = format!("team/tool{}", i % 2).parse().unwrap();
            // Skip the existence check so every push really uploads.
            let started = c.push_blob(&repo, blob, &|_| {}).await;
            started.map(|d| d.to_string())
        })
    });
    for push in pushes.collect::<Vec<_>>() {
        assert_eq!(push.await.unwrap().unwrap(), Digest::of(&blob).to_string());
    }
    let stored = r.stored_blobs();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].1.len(), blob.len());
    assert!(std::fs::read_dir(r.dir.path().join("tmp")).unwrap().next().is_none());
}

#[tokio::test]
async fn names_tags_and_traversal_attempts_are_refused() {
    let r = default_registry().await;
    for path in [
        "/v2/Acme/tool/tags/list",
        "/v2/acme/../etc/tags/list",
        "/v2/acme/./tool/manifests/latest",
        "/v2/acme//tool/manifests/latest",
        "/v2/acme%2F..%2Fetc/tags/list",
    ] {
        let (status, code) = error_code(r.req(reqwest::Method::GET, path).send().await.unwrap()).await;
        assert!(status == StatusCode::BAD_REQUEST || status == StatusCode::NOT_FOUND, "{path}: {status}");
        assert!(
            ["NAME_INVALID", "NAME_UNKNOWN", "NOT_FOUND", "MANIFEST_UNKNOWN"].contains(&code.as_str()),
            "{path}: {code}"
        );
    }
    for tag in [".hidden", "-x", "a:b", "..."] {
        let response = r
            .req(reqwest::Method::PUT, &format!("/v2/acme/tool/manifests/{tag}"))
            .header("content-type", oci::MANIFEST_MEDIA_TYPE)
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(error_code(response).await, (StatusCode::BAD_REQUEST, "TAG_INVALID".into()), "{tag}");
    }
    // `..` and encoded slashes never name a tag (clients normalise `..` away;
    // an encoded `/` splits the path): nothing is stored either way.
    for tag in ["..", "a%2Fb", "%2E%2E"] {
        let response = r
            .req(reqwest::Method::PUT, &format!("/v2/acme/tool/manifests/{tag}"))
            .header("content-type", oci::MANIFEST_MEDIA_TYPE)
            .body("{}")
            .send()
            .await
            .unwrap();
        assert!(response.status().is_client_error(), "{tag}: {}", response.status());
    }
    assert!(!r.dir.path().join("repos/etc").exists());
    assert!(!r.dir.path().join("repos/acme").exists());
}

#[tokio::test]
async fn manifests_are_checked_and_size_limited() {
    let r = start(
        StoreConfig { max_blob: 1 << 20, max_manifest: 4096 },
        AccessConfig { push_tokens: vec![PUSH.into()], ..AccessConfig::default() },
    )
    .await;
    let put = |body: Vec<u8>| {
        r.req(reqwest::Method::PUT, "/v2/acme/tool/manifests/v1")
            .header("content-type", oci::MANIFEST_MEDIA_TYPE)
            .body(body)
            .send()
    };
    let huge = format!("{{\"schemaVersion\":2,\"padding\":\"{}\"}}", "x".repeat(8192));
    assert_eq!(error_code(put(huge.into_bytes()).await.unwrap()).await.0, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        error_code(put(b"not json".to_vec()).await.unwrap()).await,
        (StatusCode::BAD_REQUEST, "MANIFEST_INVALID".into())
    );
    // References blobs that were never pushed.
    let missing = wasm_manifest(b"never pushed", b"{}").to_bytes();
    assert_eq!(
        error_code(put(missing).await.unwrap()).await,
        (StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN".into())
    );
    // Blobs over the limit.
    let big = r
        .req(reqwest::Method::POST, &format!("/v2/acme/tool/blobs/uploads/?digest={}", Digest::of(&vec![0u8; 2 << 20])))
        .body(vec![0u8; 2 << 20])
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(big).await, (StatusCode::PAYLOAD_TOO_LARGE, "SIZE_INVALID".into()));
    assert!(r.stored_blobs().is_empty());
}

#[tokio::test]
async fn push_needs_a_token_and_pull_can_require_one() {
    let r = start(
        StoreConfig::default(),
        AccessConfig { push_tokens: vec![PUSH.into()], pull_tokens: vec!["reader".into()], anonymous_push: false },
    )
    .await;
    let anonymous = Client::new(&r.url, None).unwrap();
    let reader = Client::new(&r.url, Some("reader".into())).unwrap();
    let blob = Bytes::from_static(b"x");
    let err = anonymous.push_blob(&repo("a/b"), blob.clone(), &|_| {}).await.unwrap_err();
    assert!(matches!(err, ClientError::Registry { status: StatusCode::UNAUTHORIZED, .. }), "{err}");
    let err = reader.push_blob(&repo("a/b"), blob.clone(), &|_| {}).await.unwrap_err();
    assert!(matches!(err, ClientError::Registry { status: StatusCode::FORBIDDEN, .. }), "{err}");
    let digest = r.client().push_blob(&repo("a/b"), blob.clone(), &|_| {}).await.unwrap();
    assert!(anonymous.pull_blob(&repo("a/b"), &digest).await.is_err());
    assert_eq!(reader.pull_blob(&repo("a/b"), &digest).await.unwrap(), blob);
    let challenge = r.http.get(format!("{}/v2/", r.url)).send().await.unwrap();
    assert_eq!(challenge.status(), StatusCode::UNAUTHORIZED);
    assert!(challenge.headers()["www-authenticate"].to_str().unwrap().starts_with("Basic"));
    // Without credentials, /v2/ always challenges (so clients send theirs);
    // content stays readable anonymously where pull is open.
    let open = default_registry().await;
    let anonymous_ping = open.http.get(format!("{}/v2/", open.url)).send().await.unwrap();
    assert_eq!(anonymous_ping.status(), StatusCode::UNAUTHORIZED);
    let digest = open.client().push_blob(&repo("a/b"), blob.clone(), &|_| {}).await.unwrap();
    assert_eq!(Client::new(&open.url, None).unwrap().pull_blob(&repo("a/b"), &digest).await.unwrap(), blob);
    // Basic auth with the token as password works too (what `oras login` sends).
    let basic = r.http.get(format!("{}/v2/", r.url)).basic_auth("anyone", Some("reader")).send().await.unwrap();
    assert_eq!(basic.status(), StatusCode::OK);
}

#[tokio::test]
async fn referrers_list_manifests_by_subject_and_type() {
    let r = default_registry().await;
    let c = r.client();
    let repo = repo("acme/tool");
    let layer = b"\0asm component";
    c.push_blob(&repo, Bytes::from_static(layer), &|_| {}).await.unwrap();
    c.push_blob(&repo, Bytes::from_static(b"{}"), &|_| {}).await.unwrap();
    let manifest = wasm_manifest(layer, b"{}");
    let subject = c
        .push_manifest(&repo, &ManifestRef::Tag("1".parse().unwrap()), manifest.to_bytes(), oci::MANIFEST_MEDIA_TYPE)
        .await
        .unwrap();
    let payload = b"{\"sig\":1}";
    c.push_blob(&repo, Bytes::from_static(payload), &|_| {}).await.unwrap();
    let referrer = Manifest {
        artifact_type: Some(oci::SIGNATURE_ARTIFACT_TYPE.into()),
        config: Descriptor::of(oci::EMPTY_MEDIA_TYPE, b"{}"),
        layers: vec![Descriptor::of("application/json", payload)],
        subject: Some(Descriptor::of(oci::MANIFEST_MEDIA_TYPE, &manifest.to_bytes())),
        ..wasm_manifest(layer, b"{}")
    };
    let bytes = referrer.to_bytes();
    let by_digest = ManifestRef::Digest(Digest::of(&bytes));
    let response = r
        .req(reqwest::Method::PUT, &format!("/v2/acme/tool/manifests/{by_digest}"))
        .header("content-type", oci::MANIFEST_MEDIA_TYPE)
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["oci-subject"], subject.to_string().as_str());
    let found = c.referrers(&repo, &subject, Some(oci::SIGNATURE_ARTIFACT_TYPE)).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].digest, Digest::of(&bytes));
    assert!(c.referrers(&repo, &subject, Some("application/other")).await.unwrap().is_empty());
    assert!(c.referrers(&repo, &Digest::of(b"nothing"), None).await.unwrap().is_empty());
}

/// Pushes a signature artifact by `key` (its payload as signed, possibly
/// altered by `tamper`) that refers to `subject` in `repo`.
async fn push_signature(
    c: &Client,
    repo: &Repository,
    subject: (&Digest, &[u8]),
    key: &toolmesh_registry::signing::SecretKey,
    tamper: impl Fn(&mut toolmesh_registry::signing::SignaturePayload),
) {
    let mut payload = key.sign(subject.0);
    tamper(&mut payload);
    let payload = serde_json::to_vec(&payload).unwrap();
    c.push_blob(repo, Bytes::from(payload.clone()), &|_| {}).await.unwrap();
    c.push_blob(repo, Bytes::from_static(b"{}"), &|_| {}).await.unwrap();
    let referrer = Manifest {
        schema_version: 2,
        media_type: Some(oci::MANIFEST_MEDIA_TYPE.into()),
        artifact_type: Some(oci::SIGNATURE_ARTIFACT_TYPE.into()),
        config: Descriptor::of(oci::EMPTY_MEDIA_TYPE, b"{}"),
        layers: vec![Descriptor::of(toolmesh_registry::signing::PAYLOAD_MEDIA_TYPE, &payload)],
        subject: Some(Descriptor::of(oci::MANIFEST_MEDIA_TYPE, subject.1)),
        annotations: BTreeMap::new(),
    };
    let bytes = referrer.to_bytes();
    let by_digest = ManifestRef::Digest(Digest::of(&bytes));
    c.push_manifest(repo, &by_digest, bytes, oci::MANIFEST_MEDIA_TYPE).await.unwrap();
}

#[tokio::test]
async fn versions_list_newest_first_with_size_date_signer_and_yank() {
    use toolmesh_registry::signing::SecretKey;
    let r = default_registry().await;
    let c = r.client();
    let repo = repo("acme/tool");
    let manifests = pushed_blobs_of(&c, &repo, &[b"one", b"a longer two", b"three!"]).await;
    let mut digests = Vec::new();
    for (manifest, version) in manifests.iter().zip(["1.9.0", "1.10.0", "latest"]) {
        let tag = ManifestRef::Tag(version.parse().unwrap());
        digests.push(c.push_manifest(&repo, &tag, manifest.clone(), oci::MANIFEST_MEDIA_TYPE).await.unwrap());
    }
    let (key, other) = (SecretKey::generate(), SecretKey::generate());
    push_signature(&c, &repo, (&digests[1], &manifests[1]), &key, |_| {}).await;
    // A signature that names another key than the one that made it proves nothing.
    push_signature(&c, &repo, (&digests[0], &manifests[0]), &key, |p| {
        p.public_key = other.public().to_text();
        p.key_id = other.public().key_id();
    })
    .await;
    c.set_yanked(&repo, &"1.9.0".parse().unwrap(), true).await.unwrap();

    let store = FsStore::open(r.dir.path(), StoreConfig::default()).unwrap();
    let versions = toolmesh_registry::api::package_versions(&store, &repo).await.unwrap();
    let names: Vec<&str> = versions.iter().map(|v| v.version.as_str()).collect();
    assert_eq!(names, ["1.10.0", "1.9.0"], "versions only, newest first");
    assert_eq!((versions[0].digest, versions[0].size, versions[0].yanked), (digests[1], 12, false));
    assert_eq!(versions[0].signers, [key.public()]);
    assert_eq!((versions[1].size, versions[1].yanked, versions[1].signers.is_empty()), (3, true, true));
    let age = std::time::SystemTime::now().duration_since(versions[0].published.unwrap()).unwrap();
    assert!(age.as_secs() < 600, "published just now: {age:?}");
    assert!(matches!(
        toolmesh_registry::api::package_versions(&store, &"acme/none".parse().unwrap()).await,
        Err(toolmesh_registry::store::StoreError::NameUnknown(_))
    ));
}

/// A client of `r` acting for `key` (or for nobody).
fn publisher(r: &Registry, key: Option<&std::sync::Arc<toolmesh_registry::signing::SecretKey>>) -> Client {
    let client = r.client();
    match key {
        Some(key) => client.signed_by(key.clone()),
        None => client,
    }
}

/// Pushes a tool manifest of `layer` as `version` of `repo`; the error code on refusal.
async fn push_version(c: &Client, repo: &Repository, layer: &[u8], version: &str) -> Result<Digest, String> {
    let manifest = pushed_blobs_of(c, repo, &[layer]).await.remove(0);
    let tag = ManifestRef::Tag(version.parse().unwrap());
    c.push_manifest(repo, &tag, manifest, oci::MANIFEST_MEDIA_TYPE).await.map_err(|e| e.to_string())
}

#[tokio::test]
async fn a_namespace_belongs_to_its_first_signed_publisher() {
    use std::sync::Arc;
    use toolmesh_registry::signing::SecretKey;
    let r = default_registry().await;
    let (alice, bob) = (Arc::new(SecretKey::generate()), Arc::new(SecretKey::generate()));
    let tool = repo("acme/tool");

    // Unowned: unsigned pushes work as in any OCI registry.
    push_version(&publisher(&r, None), &repo("open/tool"), b"open", "1.0.0").await.unwrap();
    assert!(publisher(&r, None).owners("open").await.unwrap().is_empty());
    // Alice's signed push claims `acme`.
    push_version(&publisher(&r, Some(&alice)), &tool, b"alice 1", "1.0.0").await.unwrap();
    assert_eq!(publisher(&r, None).owners("acme").await.unwrap(), [alice.public()]);

    // Bob cannot push into it, signed or not, under any name or version.
    for (key, repository, version) in
        [(Some(&bob), "acme/tool", "1.1.0"), (None, "acme/tool", "1.1.0"), (Some(&bob), "acme/other", "1.0.0")]
    {
        let refused = push_version(&publisher(&r, key), &repo(repository), b"bob", version).await.unwrap_err();
        assert!(refused.contains("DENIED") && refused.contains("namespace `acme`"), "{refused}");
    }
    // Nor yank Alice's version.
    let refused = publisher(&r, Some(&bob)).set_yanked(&tool, &"1.0.0".parse().unwrap(), true).await.unwrap_err();
    assert!(refused.to_string().contains("DENIED"), "{refused}");
    // Nor add himself as an owner.
    let refused = publisher(&r, Some(&bob)).add_owner("acme", &bob.public()).await.unwrap_err();
    assert!(refused.to_string().contains("DENIED"), "{refused}");
    // A statement Alice made for one push does not cover another: replayed
    // under another version, the registry refuses it.
    let manifest = pushed_blobs_of(&publisher(&r, None), &tool, &[b"replay"]).await.remove(0);
    let signed_for = toolmesh_registry::statement::Statement::sign(
        &alice,
        toolmesh_registry::statement::Change {
            action: toolmesh_registry::statement::Action::Push,
            repository: "acme/tool".into(),
            reference: "1.2.0".into(),
            subject: Digest::of(&manifest).to_string(),
        },
    );
    let response = r
        .req(reqwest::Method::PUT, "/v2/acme/tool/manifests/6.6.6")
        .header("content-type", oci::MANIFEST_MEDIA_TYPE)
        .header(toolmesh_registry::statement::STATEMENT_HEADER, signed_for.to_header())
        .body(manifest)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(response).await, (StatusCode::FORBIDDEN, "DENIED".into()));
    // Alice's own yank works, and the version was never replaced.
    publisher(&r, Some(&alice)).set_yanked(&tool, &"1.0.0".parse().unwrap(), true).await.unwrap();
    publisher(&r, Some(&alice)).set_yanked(&tool, &"1.0.0".parse().unwrap(), false).await.unwrap();
    let versions: Vec<String> = r.client().catalog(None).await.unwrap().into_iter().map(|e| e.name).collect();
    assert_eq!(versions, ["acme/tool", "open/tool"]);

    // Alice adds Bob; now Bob may publish there.
    publisher(&r, Some(&alice)).add_owner("acme", &bob.public()).await.unwrap();
    let mut owners = vec![alice.public(), bob.public()];
    owners.sort_by_key(|k| k.key_id());
    assert_eq!(publisher(&r, None).owners("acme").await.unwrap(), owners);
    push_version(&publisher(&r, Some(&bob)), &tool, b"bob 2", "2.0.0").await.unwrap();
    // Adding an owner to a namespace nobody owns is refused: a push claims it.
    let refused = publisher(&r, Some(&alice)).add_owner("nobody", &bob.public()).await.unwrap_err();
    assert!(refused.to_string().contains("nobody owns namespace `nobody`"), "{refused}");
    // A garbled statement is refused, never ignored.
    let response = r
        .req(reqwest::Method::PUT, "/v2/open/tool/manifests/9.0.0")
        .header("content-type", oci::MANIFEST_MEDIA_TYPE)
        .header(toolmesh_registry::statement::STATEMENT_HEADER, "not-a-statement")
        .body(pushed_blobs_of(&publisher(&r, None), &repo("open/tool"), &[b"x"]).await.remove(0))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(response).await, (StatusCode::FORBIDDEN, "DENIED".into()));
}

#[tokio::test]
async fn of_racing_claims_on_a_namespace_exactly_one_wins() {
    use std::sync::Arc;
    use toolmesh_registry::signing::SecretKey;
    let r = default_registry().await;
    let keys: Vec<Arc<SecretKey>> = (0..4).map(|_| Arc::new(SecretKey::generate())).collect();
    let mut pushes = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let client = publisher(&r, Some(key));
        pushes.push(tokio::spawn(async move {
            push_version(&client, &"race/tool".parse().unwrap(), format!("layer {i}").as_bytes(), &format!("1.{i}.0"))
                .await
        }));
    }
    let mut won = Vec::new();
    for (push, key) in pushes.into_iter().zip(&keys) {
        if push.await.unwrap().is_ok() {
            won.push(key.public());
        }
    }
    assert_eq!(won.len(), 1, "exactly one push gets in");
    assert_eq!(r.client().owners("race").await.unwrap(), won);
}

#[tokio::test]
async fn only_a_push_that_succeeds_into_an_empty_namespace_claims_it() {
    use std::sync::Arc;
    use toolmesh_registry::signing::SecretKey;
    use toolmesh_registry::statement::{Action, Change, STATEMENT_HEADER, Statement};
    let r = default_registry().await;
    let (alice, mallory) = (Arc::new(SecretKey::generate()), Arc::new(SecretKey::generate()));

    // A signed push that fails (its blobs were never uploaded) claims nothing.
    let dangling = wasm_manifest(b"never uploaded", b"{}").to_bytes();
    let signed = publisher(&r, Some(&alice));
    let tag = ManifestRef::Tag("1.0.0".parse().unwrap());
    let failed = signed.push_manifest(&repo("fresh/tool"), &tag, dangling, oci::MANIFEST_MEDIA_TYPE).await;
    assert!(failed.unwrap_err().to_string().contains("MANIFEST_BLOB_UNKNOWN"));
    assert!(r.client().owners("fresh").await.unwrap().is_empty());

    // A namespace that already holds unsigned tools is not claimed by whoever signs next.
    push_version(&publisher(&r, None), &repo("shared/tool"), b"theirs", "1.0.0").await.unwrap();
    push_version(&publisher(&r, Some(&mallory)), &repo("shared/other"), b"mine", "1.0.0").await.unwrap();
    assert!(r.client().owners("shared").await.unwrap().is_empty());
    push_version(&publisher(&r, None), &repo("shared/tool"), b"theirs too", "1.1.0").await.unwrap();

    // In an owned namespace, a push by digest (a signature, say) needs an owner too.
    let subject = push_version(&signed, &repo("fresh/tool"), b"alice's", "1.0.0").await.unwrap();
    let referrer = Manifest {
        artifact_type: Some(oci::SIGNATURE_ARTIFACT_TYPE.into()),
        config: Descriptor::of(oci::EMPTY_MEDIA_TYPE, b"{}"),
        layers: vec![],
        subject: Some(Descriptor { digest: subject, ..Descriptor::of(oci::MANIFEST_MEDIA_TYPE, b"") }),
        ..wasm_manifest(b"", b"{}")
    }
    .to_bytes();
    let by_digest = ManifestRef::Digest(Digest::of(&referrer));
    let refused = publisher(&r, Some(&mallory))
        .push_manifest(&repo("fresh/tool"), &by_digest, referrer.clone(), oci::MANIFEST_MEDIA_TYPE)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("belongs to other publishers"), "{refused}");

    // Alice's own statement, made an hour ago, is too old to use.
    let change = Change {
        action: Action::Push,
        repository: "fresh/tool".into(),
        reference: by_digest.to_string(),
        subject: Digest::of(&referrer).to_string(),
    };
    let old = Statement::sign_at(&alice, change, std::time::SystemTime::now() - std::time::Duration::from_secs(3600));
    let response = r
        .req(reqwest::Method::PUT, &format!("/v2/fresh/tool/manifests/{by_digest}"))
        .header("content-type", oci::MANIFEST_MEDIA_TYPE)
        .header(STATEMENT_HEADER, old.to_header())
        .body(referrer.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(response).await, (StatusCode::FORBIDDEN, "DENIED".into()));
    signed.push_blob(&repo("fresh/tool"), Bytes::from_static(b"{}"), &|_| {}).await.unwrap();
    signed.push_manifest(&repo("fresh/tool"), &by_digest, referrer, oci::MANIFEST_MEDIA_TYPE).await.unwrap();

    // An owners body larger than a key is not read.
    let response =
        r.req(reqwest::Method::PUT, "/toolmesh/v1/owners/fresh").body(vec![b'k'; 1 << 20]).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}
