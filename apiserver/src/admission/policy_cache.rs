//! The LimitRanges or ResourceQuotas of each namespace, for the admission
//! plugins that apply them (Kubernetes' listers with a live lookup).
//!
//! The cache follows the registry's watch of the resource. A namespace the
//! cache holds nothing for is looked up in etcd, and the answer — usually
//! "none" — is kept for [`LIVE_TTL`]: a LimitRange created a moment before
//! a pod applies to it even if the watch has not delivered it yet, and a
//! namespace without policies costs one etcd read per [`LIVE_TTL`]. A
//! LimitRange or quota being created marks its namespace
//! ([`PolicyCache::expect`]): there, lookups read etcd until the watch has
//! caught up, so a policy applies as soon as its create returns.

use crate::registry::{ListOptions, Registry};
use crate::storage::Storage;
use futures::StreamExt;
use rkube_api::{ApiError, ResourceInfo, Result};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::debug;

/// How long a live lookup's answer stands in for the watch.
pub const LIVE_TTL: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
struct State {
    /// From the watch: namespace → name → object.
    watched: HashMap<String, BTreeMap<String, Value>>,
    /// Live lookups of namespaces the watch had nothing for.
    live: HashMap<String, (Instant, Vec<Value>)>,
    /// Namespaces where an object is being written that the watch has not
    /// delivered yet: read live, and keep no answer.
    expected: HashMap<String, Instant>,
}

/// The objects of one namespaced resource, by namespace.
#[derive(Debug)]
pub struct PolicyCache {
    info: &'static ResourceInfo,
    storage: Storage,
    state: Mutex<State>,
}

impl PolicyCache {
    /// An empty cache of `info`'s objects, reading through to `storage`.
    pub fn new(info: &'static ResourceInfo, storage: Storage) -> Arc<Self> {
        Arc::new(PolicyCache { info, storage, state: Mutex::default() })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The objects of `namespace`, in name order.
    pub async fn get(&self, namespace: &str) -> Result<Vec<Value>> {
        {
            let state = self.state();
            if let Some(objects) = state.watched.get(namespace).filter(|m| !m.is_empty()) {
                return Ok(objects.values().cloned().collect());
            }
            let expected = state.expected.get(namespace).is_some_and(|at| at.elapsed() < LIVE_TTL);
            if let Some((at, objects)) = state.live.get(namespace)
                && at.elapsed() < LIVE_TTL
                && !expected
            {
                return Ok(objects.clone());
            }
        }
        let prefix = format!("{}{namespace}/", self.info.key_prefix());
        let (stored, _, _) = self.storage.list(&prefix, None, 0, 0).await?;
        let objects: Vec<Value> = stored.iter().filter_map(|s| crate::codec::decode(&s.value).ok()).collect();
        let mut state = self.state();
        if state.expected.get(namespace).is_none_or(|at| at.elapsed() >= LIVE_TTL) {
            state.live.insert(namespace.to_string(), (Instant::now(), objects.clone()));
        }
        Ok(objects)
    }

    /// Says that an object of this resource is about to be written in
    /// `namespace`: until the watch delivers an event there (or
    /// [`LIVE_TTL`] passes), lookups read etcd, so the object applies from
    /// the moment its write returns.
    pub fn expect(&self, namespace: &str) {
        let mut state = self.state();
        state.expected.insert(namespace.to_string(), Instant::now());
        state.live.remove(namespace);
    }

    /// Keeps the cache current from the registry's watch, until `shutdown`.
    pub async fn run(self: Arc<Self>, registry: Arc<Registry>, shutdown: tokio_util::sync::CancellationToken) {
        while !shutdown.is_cancelled() {
            let result = async {
                let mut stream = registry.watch(self.info, "", &ListOptions::default()).await?;
                self.state().watched.clear();
                while let Some(ev) = stream.next().await {
                    let ev = ev?;
                    let mut state = self.state();
                    // The watch now speaks for this namespace.
                    state.live.remove(&ev.namespace);
                    state.expected.remove(&ev.namespace);
                    let objects = state.watched.entry(ev.namespace.clone()).or_default();
                    match ev.kind {
                        crate::watch::EventType::Deleted => {
                            objects.remove(&ev.name);
                        }
                        _ => {
                            let obj: Value = serde_json::from_slice(&ev.json).unwrap_or_default();
                            objects.insert(ev.name.clone(), obj);
                        }
                    }
                }
                Ok::<(), ApiError>(())
            };
            let result = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = result => r,
            };
            if let Err(e) = result {
                debug!(resource = self.info.plural, error = %e.message, "policy cache watch ended; restarting");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }
}
