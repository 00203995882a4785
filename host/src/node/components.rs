//! Loaded components in memory, by digest: at most a fixed number of bytes
//! of compiled code, the least recently used dropped first, and each
//! loaded once however many calls miss it at the same moment (the others
//! wait for that load).

use crate::sandbox::ToolComponent;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::OnceCell;
use toolmesh_registry::digest::Digest;

/// What a cached value weighs against the cache's capacity.
pub trait Weigh {
    /// Its weight in bytes.
    fn weight(&self) -> u64;
}

impl Weigh for ToolComponent {
    fn weight(&self) -> u64 {
        self.code_size()
    }
}

/// A bounded, single-flight map from digest to loaded component (generic
/// only so it can be tested without compiling components).
pub struct ComponentCache<C = ToolComponent> {
    capacity: u64,
    state: Mutex<State<C>>,
}

struct State<C> {
    entries: HashMap<Digest, Entry<C>>,
    clock: u64,
}

struct Entry<C> {
    cell: Arc<OnceCell<C>>,
    used: u64,
}

impl<C: Clone + Weigh> ComponentCache<C> {
    /// A cache that keeps components weighing `capacity` bytes in all (and
    /// always the one most recently used, however heavy).
    pub fn new(capacity: u64) -> Self {
        ComponentCache { capacity, state: Mutex::new(State { entries: HashMap::new(), clock: 0 }) }
    }

    /// Bytes the loaded components weigh together.
    pub fn weight(&self) -> u64 {
        Self::weight_of(&self.lock())
    }

    fn weight_of(state: &State<C>) -> u64 {
        state.entries.values().filter_map(|e| e.cell.get()).map(Weigh::weight).sum()
    }

    /// How many components are loaded or loading.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether nothing is loaded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The digests loaded (not those still loading).
    pub fn digests(&self) -> Vec<Digest> {
        self.lock().entries.iter().filter(|(_, e)| e.cell.initialized()).map(|(d, _)| *d).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<C>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The component `digest`, loaded by `load` on a miss. Concurrent
    /// misses of one digest share a single `load`; a failed load is not
    /// remembered, so the next call tries again.
    pub async fn get_or_load<E, F, Fut>(&self, digest: Digest, load: F) -> Result<C, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<C, E>>,
    {
        let cell = {
            let mut state = self.lock();
            state.clock += 1;
            let now = state.clock;
            let entry =
                state.entries.entry(digest).or_insert_with(|| Entry { cell: Arc::new(OnceCell::new()), used: now });
            entry.used = now;
            entry.cell.clone()
        };
        // Only a completed load adds weight: evict then, not on every hit.
        let mut loaded_here = false;
        let outcome = cell
            .get_or_try_init(|| {
                loaded_here = true;
                load()
            })
            .await;
        match outcome {
            Ok(component) => {
                let component = component.clone();
                if loaded_here {
                    self.evict(&mut self.lock(), digest);
                }
                Ok(component)
            }
            Err(error) => {
                let mut state = self.lock();
                if state.entries.get(&digest).is_some_and(|e| Arc::ptr_eq(&e.cell, &cell) && !cell.initialized()) {
                    state.entries.remove(&digest);
                }
                Err(error)
            }
        }
    }

    /// Puts `component` in place of whatever `digest` holds (a better build
    /// of the same component), keeping its place in the eviction order.
    pub fn replace(&self, digest: Digest, component: C) {
        let mut state = self.lock();
        state.clock += 1;
        let now = state.clock;
        let used = state.entries.get(&digest).map_or(now, |e| e.used);
        state.entries.insert(digest, Entry { cell: Arc::new(OnceCell::new_with(Some(component))), used });
        self.evict(&mut state, digest);
    }

    /// Drops the least recently used loaded components while they weigh
    /// more than the capacity, keeping `keep` (the one a call is using).
    /// Entries still loading are kept (their callers are waiting on them).
    fn evict(&self, state: &mut State<C>, keep: Digest) {
        let mut weight = Self::weight_of(state);
        while weight > self.capacity {
            let oldest = state
                .entries
                .iter()
                .filter(|(digest, e)| e.cell.initialized() && **digest != keep)
                .min_by_key(|(_, e)| e.used)
                .map(|(digest, _)| *digest);
            match oldest {
                Some(digest) => {
                    if let Some(dropped) = state.entries.remove(&digest) {
                        weight -= dropped.cell.get().map_or(0, Weigh::weight);
                        tracing::debug!(%digest, "compiled component dropped from memory (least recently used)");
                    }
                }
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Weigh for u32 {
        fn weight(&self) -> u64 {
            1
        }
    }

    impl Weigh for u8 {
        fn weight(&self) -> u64 {
            u64::from(*self)
        }
    }

    impl Weigh for &str {
        fn weight(&self) -> u64 {
            self.len() as u64
        }
    }
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    fn digest(n: u8) -> Digest {
        Digest::of(&[n])
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_misses_load_once() {
        let cache = Arc::new(ComponentCache::<u32>::new(4));
        let loads = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let (cache, loads) = (cache.clone(), loads.clone());
                tokio::spawn(async move {
                    cache
                        .get_or_load(digest(1), || async {
                            loads.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            Ok::<_, ()>(7)
                        })
                        .await
                })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap(), Ok(7));
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn keeps_at_most_capacity_bytes_dropping_the_least_recently_used() {
        // Components 1, 2, 3 weigh 1, 2, 3 bytes; room for 4.
        let cache = ComponentCache::<u8>::new(4);
        let load = |n: u8| move || async move { Ok::<_, ()>(n) };
        cache.get_or_load(digest(1), load(1)).await.unwrap();
        cache.get_or_load(digest(2), load(2)).await.unwrap();
        cache.get_or_load(digest(1), load(1)).await.unwrap(); // 1 is now the most recent
        cache.get_or_load(digest(3), load(3)).await.unwrap(); // 6 bytes: evicts 2
        assert_eq!((cache.len(), cache.weight()), (2, 4));
        let reloaded = AtomicUsize::new(0);
        let counting = |n: u8| {
            let reloaded = &reloaded;
            move || async move {
                reloaded.fetch_add(1, Ordering::SeqCst);
                Ok::<_, ()>(n)
            }
        };
        cache.get_or_load(digest(1), counting(1)).await.unwrap();
        cache.get_or_load(digest(3), counting(3)).await.unwrap();
        assert_eq!(reloaded.load(Ordering::SeqCst), 0, "1 and 3 stayed loaded");
        cache.get_or_load(digest(2), counting(2)).await.unwrap();
        assert_eq!(reloaded.load(Ordering::SeqCst), 1, "2 was evicted and loads again");
        assert_eq!(cache.weight(), 2, "loading 2 dropped 1 and 3 (least recently used first)");
        // One component heavier than the whole cache still serves its calls.
        let heavy = ComponentCache::<u8>::new(4);
        heavy.get_or_load(digest(9), load(9)).await.unwrap();
        assert_eq!(heavy.len(), 1);
        heavy.get_or_load(digest(1), load(1)).await.unwrap();
        assert_eq!((heavy.len(), heavy.weight()), (1, 1), "the heavy one goes once another is used");
    }

    #[tokio::test]
    async fn a_replacement_serves_later_calls() {
        let cache = ComponentCache::<&str>::new(64);
        cache.get_or_load(digest(1), || async { Ok::<_, ()>("baseline") }).await.unwrap();
        cache.replace(digest(1), "optimized");
        let got = cache.get_or_load(digest(1), || async { Ok::<_, ()>("loaded again") }).await.unwrap();
        assert_eq!(got, "optimized");
        assert_eq!(cache.len(), 1);
    }

    #[tokio::test]
    async fn failed_loads_are_retried() {
        let cache = ComponentCache::<u8>::new(8);
        assert_eq!(cache.get_or_load(digest(1), || async { Err::<u8, _>("boom") }).await, Err("boom"));
        assert!(cache.is_empty());
        assert_eq!(cache.get_or_load(digest(1), || async { Ok::<_, &str>(5) }).await, Ok(5));
    }
}
