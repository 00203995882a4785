//! Who may publish where, and what the registry tells about each version:
//! namespace ownership through signed statements, and version listings
//! with dates, sizes and signers.

mod common;

use bytes::Bytes;
use common::*;
use reqwest::StatusCode;
use std::collections::BTreeMap;
use toolmesh_registry::client::Client;
use toolmesh_registry::digest::Digest;
use toolmesh_registry::name::{ManifestRef, Repository};
use toolmesh_registry::oci::{self, Descriptor, Manifest};
use toolmesh_registry::store::{FsStore, StoreConfig};

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
