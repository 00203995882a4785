//! The registry's HTTP API on a real loopback listener, driven by the
//! project's client and by raw requests for the cases a client would never
//! send.

mod common;

use bytes::Bytes;
use common::*;
use reqwest::StatusCode;
use toolmesh_registry::api::AccessConfig;
use toolmesh_registry::client::{Client, ClientError};
use toolmesh_registry::digest::Digest;
use toolmesh_registry::name::{ManifestRef, Repository};
use toolmesh_registry::oci::{self, Descriptor, Manifest};
use toolmesh_registry::store::StoreConfig;

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
