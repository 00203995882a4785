//! Tests of the filesystem store.

use super::*;

#[tokio::test]
async fn reopening_keeps_fresh_uploads_and_drops_stale_ones() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::open(dir.path(), StoreConfig::default()).unwrap();
    let repo: Repository = "a/b".parse().unwrap();
    let fresh = store.start_upload(&repo).await.unwrap();
    let stale = store.start_upload(&repo).await.unwrap();
    let old = std::time::SystemTime::now() - STALE_UPLOAD - std::time::Duration::from_secs(60);
    std::fs::File::options()
        .write(true)
        .open(dir.path().join("uploads").join(&stale).join("data"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    std::fs::write(dir.path().join("tmp/partial"), b"half a blob").unwrap();
    std::fs::write(dir.path().join("tmp/in-flight"), b"being written").unwrap();
    std::fs::File::options()
        .write(true)
        .open(dir.path().join("tmp/partial"))
        .unwrap()
        .set_modified(std::time::SystemTime::now() - STALE_TMP - std::time::Duration::from_secs(60))
        .unwrap();
    let store = FsStore::open(dir.path(), StoreConfig::default()).unwrap();
    assert_eq!(store.upload_status(&repo, &fresh).await.unwrap().offset, 0);
    assert!(matches!(store.upload_status(&repo, &stale).await, Err(StoreError::UploadUnknown(_))));
    let left: Vec<_> = std::fs::read_dir(dir.path().join("tmp")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, ["in-flight"]);
}

#[tokio::test]
async fn tags_stamp_moves_with_tags_only() {
    use crate::oci::{Descriptor, Manifest, WASM_CONFIG_MEDIA_TYPE, WASM_LAYER_MEDIA_TYPE};
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::open(dir.path(), StoreConfig::default()).unwrap();
    let repo: Repository = "a/b".parse().unwrap();
    let empty = store.tags_stamp().await.unwrap();
    let manifest = |layer: &[u8]| Manifest {
        schema_version: 2,
        media_type: None,
        artifact_type: None,
        config: Descriptor::of(WASM_CONFIG_MEDIA_TYPE, b"{}"),
        layers: vec![Descriptor::of(WASM_LAYER_MEDIA_TYPE, layer)],
        subject: None,
        annotations: Default::default(),
    };
    for blob in [&b"{}"[..], b"one", b"two"] {
        store.put_blob_bytes(None, blob).await.unwrap();
    }
    let one = manifest(b"one").to_bytes();
    let by_digest = ManifestRef::Digest(Digest::of(&one));
    store.put_manifest(&repo, &by_digest, &one, None).await.unwrap();
    assert_eq!(store.tags_stamp().await.unwrap(), empty, "a push by digest moves no tag");
    let tag = ManifestRef::Tag("latest".parse().unwrap());
    store.put_manifest(&repo, &tag, &one, None).await.unwrap();
    let tagged = store.tags_stamp().await.unwrap();
    assert_ne!(tagged, empty);
    assert_eq!(store.tags_stamp().await.unwrap(), tagged, "stable while nothing changes");
    let two = manifest(b"two").to_bytes();
    store.put_manifest(&repo, &tag, &two, None).await.unwrap();
    let moved = store.tags_stamp().await.unwrap();
    assert_ne!(moved, tagged, "moving a tag changes the stamp");
    let version: Tag = "1.0".parse().unwrap();
    store.put_manifest(&repo, &ManifestRef::Tag(version.clone()), &one, None).await.unwrap();
    let versioned = store.tags_stamp().await.unwrap();
    store.set_yanked(&repo, &version, true).await.unwrap();
    assert_ne!(store.tags_stamp().await.unwrap(), versioned, "yanking changes the stamp (the catalog follows it)");
}

#[tokio::test]
async fn uploads_belong_to_their_repository() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::open(dir.path(), StoreConfig::default()).unwrap();
    let id = store.start_upload(&"a/b".parse().unwrap()).await.unwrap();
    let other: Repository = "c/d".parse().unwrap();
    assert!(matches!(store.upload_status(&other, &id).await, Err(StoreError::UploadUnknown(_))));
    assert!(matches!(store.upload_status(&other, "../../etc").await, Err(StoreError::UploadUnknown(_))));
}
