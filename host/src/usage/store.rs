//! Where quota counters and metering totals live: in this process
//! ([`LocalStore`], for `tool serve` and a gateway alone), or in a NATS
//! JetStream key-value bucket ([`NatsStore`]) that every gateway of a mesh
//! shares. Values are JSON documents changed by compare-and-swap
//! ([`modify`]), so gateways that change one at once never lose a count.

use serde_json::Value;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A store that could not be read or written.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the usage store: {0}")]
pub struct StoreError(pub String);

/// A boxed future of a store operation.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// JSON documents under keys, each with a revision that changes at every
/// write. Keys are `[A-Za-z0-9_.-]`, dot-separated.
pub trait Store: Send + Sync + 'static {
    /// The document under `key` and its revision, if there is one.
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<(Value, u64)>>;

    /// Writes `value` under `key` if its revision is still `revision`
    /// (`None`: if there is no document yet); `false` if another writer
    /// came first.
    fn swap<'a>(&'a self, key: &'a str, value: Value, revision: Option<u64>) -> StoreFuture<'a, bool>;

    /// Every document whose key starts with `prefix`.
    fn scan<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Vec<(String, Value)>>;
}

/// Tries of one [`modify`] before it gives up (each lost only to another
/// writer that succeeded).
const TRIES: usize = 32;

/// Changes the document under `key` with `change` (given the current one,
/// if any), retrying when another writer came first. `change` may refuse
/// (`Err`), which writes nothing; it returns what to write and what to
/// answer.
pub async fn modify<T, E>(
    store: &dyn Store,
    key: &str,
    mut change: impl FnMut(Option<&Value>) -> Result<(Value, T), E>,
) -> Result<Result<T, E>, StoreError> {
    for _ in 0..TRIES {
        let current = store.get(key).await?;
        let (value, answer) = match change(current.as_ref().map(|(v, _)| v)) {
            Ok(next) => next,
            Err(refused) => return Ok(Err(refused)),
        };
        if store.swap(key, value, current.map(|(_, revision)| revision)).await? {
            return Ok(Ok(answer));
        }
    }
    Err(StoreError(format!("`{key}` changed under every one of {TRIES} tries")))
}

/// A store in this process's memory, whose documents are forgotten
/// `max_age` after their last write (like a NATS bucket's `max_age`).
pub struct LocalStore {
    documents: Mutex<HashMap<String, (Value, u64, Instant)>>,
    max_age: Option<Duration>,
    revision: std::sync::atomic::AtomicU64,
}

impl LocalStore {
    /// An empty store; documents live `max_age` after their last write
    /// (for ever without one).
    pub fn new(max_age: Option<Duration>) -> Self {
        LocalStore { documents: Mutex::default(), max_age, revision: 1.into() }
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Value, u64, Instant)>> {
        let mut documents = self.documents.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(max_age) = self.max_age {
            documents.retain(|_, (_, _, written)| written.elapsed() < max_age);
        }
        documents
    }
}

impl Store for LocalStore {
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<(Value, u64)>> {
        let found = self.live().get(key).map(|(value, revision, _)| (value.clone(), *revision));
        Box::pin(std::future::ready(Ok(found)))
    }

    fn swap<'a>(&'a self, key: &'a str, value: Value, revision: Option<u64>) -> StoreFuture<'a, bool> {
        let mut documents = self.live();
        let current = documents.get(key).map(|(_, revision, _)| *revision);
        let won = current == revision;
        if won {
            let next = self.revision.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            documents.insert(key.to_owned(), (value, next, Instant::now()));
        }
        Box::pin(std::future::ready(Ok(won)))
    }

    fn scan<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Vec<(String, Value)>> {
        let found = self
            .live()
            .iter()
            .filter(|(key, _)| key.starts_with(prefix))
            .map(|(key, (value, _, _))| (key.clone(), value.clone()))
            .collect();
        Box::pin(std::future::ready(Ok(found)))
    }
}

/// Documents in files of a directory, one per key, so they outlive the
/// process (for `tool serve`, which has no NATS); forgotten `max_age`
/// after their last write. One process writes them at a time.
pub struct FileStore {
    dir: std::path::PathBuf,
    max_age: Duration,
    writing: Mutex<()>,
}

/// A document as a [`FileStore`] writes it.
#[derive(serde::Serialize, serde::Deserialize)]
struct FileDocument {
    value: Value,
    revision: u64,
    /// Unix seconds of the last write.
    written: u64,
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl FileStore {
    /// Documents kept in `dir` (made if missing).
    pub fn open(dir: impl Into<std::path::PathBuf>, max_age: Duration) -> Result<Self, StoreError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| StoreError(format!("cannot make {}: {e}", dir.display())))?;
        Ok(FileStore { dir, max_age, writing: Mutex::default() })
    }

    fn path(&self, key: &str) -> Result<std::path::PathBuf, StoreError> {
        if key.is_empty()
            || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
            || key.starts_with('.')
        {
            return Err(StoreError(format!("`{key}` is not a valid key")));
        }
        Ok(self.dir.join(format!("{key}.json")))
    }

    fn read(&self, key: &str) -> Result<Option<FileDocument>, StoreError> {
        let path = self.path(key)?;
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError(format!("cannot read {}: {e}", path.display()))),
        };
        // A document that does not parse (cut short) counts as absent.
        let document = serde_json::from_slice::<FileDocument>(&bytes).ok();
        Ok(document.filter(|d| unix_now().saturating_sub(d.written) < self.max_age.as_secs()))
    }
}

impl Store for FileStore {
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<(Value, u64)>> {
        let found = self.read(key).map(|d| d.map(|d| (d.value, d.revision)));
        Box::pin(std::future::ready(found))
    }

    fn swap<'a>(&'a self, key: &'a str, value: Value, revision: Option<u64>) -> StoreFuture<'a, bool> {
        let swapped = (|| {
            let _writing = self.writing.lock().unwrap_or_else(|e| e.into_inner());
            let current = self.read(key)?.map(|d| d.revision);
            if current != revision {
                return Ok(false);
            }
            let path = self.path(key)?;
            let document = FileDocument { value, revision: current.unwrap_or(0) + 1, written: unix_now() };
            let bytes = serde_json::to_vec(&document).map_err(|e| StoreError(e.to_string()))?;
            // Written whole, then renamed into place: never seen half-written.
            let temporary = path.with_extension("json.partial");
            std::fs::write(&temporary, bytes)
                .and_then(|()| std::fs::rename(&temporary, &path))
                .map_err(|e| StoreError(format!("cannot write {}: {e}", path.display())))?;
            Ok(true)
        })();
        Box::pin(std::future::ready(swapped))
    }

    fn scan<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Vec<(String, Value)>> {
        let scanned = (|| {
            let entries = std::fs::read_dir(&self.dir).map_err(|e| StoreError(e.to_string()))?;
            let mut found = Vec::new();
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let Some(key) = name.strip_suffix(".json").filter(|k| k.starts_with(prefix)) else { continue };
                if let Some(document) = self.read(key)? {
                    found.push((key.to_owned(), document.value));
                }
            }
            Ok(found)
        })();
        Box::pin(std::future::ready(scanned))
    }
}

/// A NATS JetStream key-value bucket: every gateway on the same NATS sees
/// and changes the same documents.
pub struct NatsStore {
    kv: async_nats::jetstream::kv::Store,
}

/// How long one store operation may take before it counts as failed.
const NATS_WAIT: Duration = Duration::from_secs(2);

impl NatsStore {
    /// Opens bucket `bucket` on `client`'s JetStream, making it (with
    /// documents kept `max_age` after their last write, for ever if zero)
    /// if there is none yet.
    pub async fn open(client: &async_nats::Client, bucket: &str, max_age: Duration) -> Result<Self, StoreError> {
        let jetstream = async_nats::jetstream::new(client.clone());
        let fail = |e: &dyn std::fmt::Display| StoreError(format!("cannot open the bucket `{bucket}`: {e}"));
        let opened = tokio::time::timeout(NATS_WAIT, async {
            match jetstream.get_key_value(bucket).await {
                Ok(kv) => Ok(kv),
                Err(_) => {
                    let config = async_nats::jetstream::kv::Config {
                        bucket: bucket.to_owned(),
                        description: "toolmesh quotas and metering".into(),
                        history: 1,
                        max_age,
                        ..Default::default()
                    };
                    jetstream.create_key_value(config).await.map_err(|e| fail(&e))
                }
            }
        })
        .await
        .map_err(|_| fail(&"NATS did not answer (is JetStream on? `nats-server -js`)"))??;
        Ok(NatsStore { kv: opened })
    }
}

/// `operation`, failed if NATS does not answer within [`NATS_WAIT`].
async fn bounded<T, E: std::fmt::Display>(
    what: &'static str,
    operation: impl Future<Output = Result<T, E>> + Send,
) -> Result<T, StoreError> {
    match tokio::time::timeout(NATS_WAIT, operation).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(StoreError(format!("{what}: {e}"))),
        Err(_) => Err(StoreError(format!("{what}: NATS did not answer"))),
    }
}

impl Store for NatsStore {
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<(Value, u64)>> {
        Box::pin(async move {
            let entry = bounded("read", self.kv.entry(key)).await?;
            Ok(entry.filter(|e| e.operation == async_nats::jetstream::kv::Operation::Put).and_then(|e| {
                // A document nobody of ours wrote is read as none.
                serde_json::from_slice(&e.value).ok().map(|value| (value, e.revision))
            }))
        })
    }

    fn swap<'a>(&'a self, key: &'a str, value: Value, revision: Option<u64>) -> StoreFuture<'a, bool> {
        use async_nats::jetstream::kv::{CreateErrorKind, UpdateErrorKind};
        let bytes = bytes::Bytes::from(serde_json::to_vec(&value).unwrap_or_default());
        Box::pin(async move {
            let written = match revision {
                None => match bounded("write", async { Ok::<_, String>(self.kv.create(key, bytes).await) }).await? {
                    Ok(_) => true,
                    Err(e) if e.kind() == CreateErrorKind::AlreadyExists => false,
                    Err(e) => return Err(StoreError(format!("write: {e}"))),
                },
                Some(revision) => {
                    match bounded("write", async { Ok::<_, String>(self.kv.update(key, bytes, revision).await) })
                        .await?
                    {
                        Ok(_) => true,
                        Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => false,
                        Err(e) => return Err(StoreError(format!("write: {e}"))),
                    }
                }
            };
            Ok(written)
        })
    }

    fn scan<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Vec<(String, Value)>> {
        use futures_util::StreamExt;
        Box::pin(async move {
            let keys = bounded("list", self.kv.keys()).await?;
            let keys: Vec<String> = bounded("list", async {
                Ok::<_, String>(keys.filter_map(|k| async move { k.ok() }).collect::<Vec<_>>().await)
            })
            .await?;
            let mut found = Vec::new();
            for key in keys.into_iter().filter(|k| k.starts_with(prefix)) {
                if let Some((value, _)) = self.get(&key).await? {
                    found.push((key, value));
                }
            }
            Ok(found)
        })
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn file_documents_outlive_the_store_and_swap_by_revision() {
        let dir = std::env::temp_dir().join(format!("toolmesh-filestore-{}", std::process::id()));
        let store = FileStore::open(&dir, Duration::from_secs(3600)).unwrap();
        assert!(store.swap("task.a", serde_json::json!(1), None).await.unwrap());
        assert!(!store.swap("task.a", serde_json::json!(2), None).await.unwrap());
        let (value, revision) = store.get("task.a").await.unwrap().unwrap();
        assert_eq!(value, serde_json::json!(1));
        assert!(store.swap("task.a", serde_json::json!(2), Some(revision)).await.unwrap());
        // Another store on the same directory (a restart) sees it.
        let again = FileStore::open(&dir, Duration::from_secs(3600)).unwrap();
        assert_eq!(again.get("task.a").await.unwrap().unwrap().0, serde_json::json!(2));
        assert_eq!(again.scan("task.").await.unwrap().len(), 1);
        assert!(again.get("../etc/passwd").await.is_err());
        // Past its age, a document is gone.
        let aged = FileStore::open(&dir, Duration::ZERO).unwrap();
        assert!(aged.get("task.a").await.unwrap().is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn modify_retries_lost_races_and_refusals_write_nothing() {
        let store = LocalStore::new(None);
        let add = |n: i64| {
            move |current: Option<&Value>| -> Result<(Value, i64), ()> {
                let next = current.and_then(Value::as_i64).unwrap_or(0) + n;
                Ok((json!(next), next))
            }
        };
        assert_eq!(modify(&store, "a", add(2)).await.unwrap(), Ok(2));
        assert_eq!(modify(&store, "a", add(3)).await.unwrap(), Ok(5));
        // A writer that loses a race reads again.
        let (_, revision) = store.get("a").await.unwrap().unwrap();
        assert!(store.swap("a", json!(10), Some(revision)).await.unwrap());
        assert!(!store.swap("a", json!(11), Some(revision)).await.unwrap(), "stale revision");
        assert!(!store.swap("a", json!(11), None).await.unwrap(), "exists already");
        assert_eq!(modify(&store, "a", add(1)).await.unwrap(), Ok(11));
        let refused = modify(&store, "a", |_| Err::<(Value, ()), _>("no")).await.unwrap();
        assert_eq!(refused, Err("no"));
        assert_eq!(store.get("a").await.unwrap().unwrap().0, json!(11));
        store.swap("b.1", json!(1), None).await.unwrap();
        let mut keys: Vec<String> = store.scan("b.").await.unwrap().into_iter().map(|(k, _)| k).collect();
        keys.sort();
        assert_eq!(keys, ["b.1"]);
    }

    #[tokio::test]
    async fn local_documents_expire_after_max_age() {
        let store = LocalStore::new(Some(Duration::from_millis(50)));
        store.swap("k", json!(1), None).await.unwrap();
        assert!(store.get("k").await.unwrap().is_some());
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert!(store.get("k").await.unwrap().is_none());
        assert!(store.swap("k", json!(2), None).await.unwrap(), "created anew");
    }
}
