//! Keeps a [`Store`] in step with the apiserver and tells controllers what
//! changed (like client-go's Reflector + SharedInformer, kube-runtime's
//! `watcher` + `reflector`).
//!
//! A [`Reflector`] lists the resource, replaces the store's contents with the
//! list in one step, then watches from the list's resourceVersion. When the
//! watch ends or fails it reconnects from the last resourceVersion it saw, so
//! nothing is missed; when that resourceVersion has expired it lists again,
//! reporting objects that vanished in between as deletions. Failures are
//! retried with jittered exponential back-off (100 ms doubling to 10 s).
//!
//! An [`Informer`] is the read side: the store plus [`Informer::subscribe`],
//! a lossless stream of [`Event`]s for enqueueing keys.

use crate::backoff::Backoff;
use crate::client::{Api, ListParams, WatchEvent};
use crate::store::{ObjectKey, Store, Writer};
use futures::StreamExt;
use k8s_openapi::Metadata;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use rkube_api::{ApiError, Reason, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Objects per page when a reflector lists (client-go's 500).
pub const LIST_PAGE_SIZE: i64 = 500;
/// A watch that stayed open this long was healthy: the back-off starts over.
const HEALTHY_WATCH: Duration = Duration::from_secs(10);

/// What happened to the cache, as told to subscribers. The store already
/// reflects the event when it is received.
#[derive(Debug)]
pub enum Event<K> {
    /// The object was created or changed (or is part of the initial state).
    Applied(Arc<K>),
    /// The object was deleted (or left the selection); its last known state.
    Deleted(Arc<K>),
    /// The store now holds a complete, fresh list: it follows the initial
    /// state and every re-list. Keepers of derived state should resync.
    Restarted,
}

impl<K> Clone for Event<K> {
    fn clone(&self) -> Self {
        match self {
            Event::Applied(o) => Event::Applied(o.clone()),
            Event::Deleted(o) => Event::Deleted(o.clone()),
            Event::Restarted => Event::Restarted,
        }
    }
}

impl<K: Metadata<Ty = ObjectMeta>> Event<K> {
    /// The key of the object the event is about (None for `Restarted`).
    pub fn key(&self) -> Option<ObjectKey> {
        match self {
            Event::Applied(o) | Event::Deleted(o) => Some(ObjectKey::of(o.as_ref())),
            Event::Restarted => None,
        }
    }
}

/// The senders of every live subscription.
struct Subscribers<K> {
    senders: Mutex<Vec<mpsc::UnboundedSender<Event<K>>>>,
}

impl<K> Subscribers<K> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<mpsc::UnboundedSender<Event<K>>>> {
        self.senders.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends `events` to every subscriber, dropping those that went away.
    fn send(&self, events: &[Event<K>]) {
        if events.is_empty() {
            return;
        }
        self.lock().retain(|tx| events.iter().all(|ev| tx.send(ev.clone()).is_ok()));
    }
}

/// The read side of a reflector: its store and its event stream. Cheap to clone.
pub struct Informer<K> {
    store: Store<K>,
    subscribers: Arc<Subscribers<K>>,
}

impl<K> Clone for Informer<K> {
    fn clone(&self) -> Self {
        Informer { store: self.store.clone(), subscribers: self.subscribers.clone() }
    }
}

impl<K> fmt::Debug for Informer<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Informer").field("subscribers", &self.subscribers.lock().len()).finish_non_exhaustive()
    }
}

impl<K> Informer<K>
where
    K: k8s_openapi::Resource + Metadata<Ty = ObjectMeta> + Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// Starts a [`Reflector`] for `api` and `params` on the current tokio
    /// runtime, running until `shutdown`; returns its read side.
    pub fn spawn(api: Api<K>, params: ListParams, shutdown: CancellationToken) -> Informer<K> {
        let reflector = Reflector::new(api, params);
        let informer = reflector.informer();
        tokio::spawn(reflector.run(shutdown));
        informer
    }
}

impl<K: Metadata<Ty = ObjectMeta>> Informer<K> {
    /// The cache the reflector fills.
    pub fn store(&self) -> &Store<K> {
        &self.store
    }

    /// Waits until the store has been filled from a complete list; false if
    /// the reflector stopped before that.
    pub async fn wait_until_synced(&self) -> bool {
        self.store.wait_until_synced().await.is_ok()
    }

    /// A new subscription to the reflector's events. It starts with an
    /// `Applied` event for every object already cached (then `Restarted` if the
    /// store is synced), so a late subscriber misses nothing; afterwards it
    /// receives every change, in order. The channel is unbounded: a subscriber
    /// should only enqueue keys, not do work, in its receive loop.
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<Event<K>> {
        let (tx, rx) = mpsc::unbounded_channel();
        // Holding the subscriber lock while reading the store: a change the
        // snapshot misses is sent after this subscription is registered.
        let mut senders = self.subscribers.lock();
        for obj in self.store.list() {
            let _ = tx.send(Event::Applied(obj));
        }
        if self.store.is_synced() {
            let _ = tx.send(Event::Restarted);
        }
        senders.push(tx);
        rx
    }
}

/// How a watch ended.
enum WatchEnd {
    /// Shutdown was requested.
    Shutdown,
    /// The resourceVersion is too old: list again.
    Expired,
    /// The watch failed or ended; resume from this resourceVersion.
    Broken { resource_version: String, error: Option<ApiError>, healthy: bool },
}

/// Lists and watches one resource into a store; see the module docs.
pub struct Reflector<K> {
    api: Api<K>,
    params: ListParams,
    writer: Writer<K>,
    subscribers: Arc<Subscribers<K>>,
    backoff: Backoff,
}

impl<K> fmt::Debug for Reflector<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reflector").field("api", &self.api).field("params", &self.params).finish_non_exhaustive()
    }
}

/// Runs `fut` unless `shutdown` comes first (None).
async fn unless_shutdown<T>(shutdown: &CancellationToken, fut: impl Future<Output = T>) -> Option<T> {
    tokio::select! {
        _ = shutdown.cancelled() => None,
        v = fut => Some(v),
    }
}

impl<K> Reflector<K>
where
    K: k8s_openapi::Resource + Metadata<Ty = ObjectMeta> + Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// A reflector of the objects `api` and `params` select, with an empty store.
    pub fn new(api: Api<K>, params: ListParams) -> Self {
        Reflector {
            api,
            params,
            writer: Writer::new(),
            subscribers: Arc::new(Subscribers { senders: Mutex::new(Vec::new()) }),
            backoff: Backoff::default(),
        }
    }

    /// Uses `backoff` between failed attempts instead of 100 ms doubling to 10 s.
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The read side: the store and event subscriptions.
    pub fn informer(&self) -> Informer<K> {
        Informer { store: self.writer.as_reader(), subscribers: self.subscribers.clone() }
    }

    /// Lists and watches until `shutdown`, retrying every failure.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let resource = self.api.resource().plural;
        let mut resume_from: Option<String> = None;
        loop {
            let resource_version = match resume_from.take() {
                Some(rv) => rv,
                None => match unless_shutdown(&shutdown, self.list()).await {
                    None => return,
                    Some(Ok(rv)) => {
                        self.backoff.reset();
                        rv
                    }
                    Some(Err(e)) => {
                        warn!(resource, error = %e, "list failed; retrying");
                        if !self.pause(&shutdown).await {
                            return;
                        }
                        continue;
                    }
                },
            };
            match self.watch(&resource_version, &shutdown).await {
                WatchEnd::Shutdown => return,
                WatchEnd::Expired => info!(resource, resource_version, "watch expired; re-listing"),
                WatchEnd::Broken { resource_version, error, healthy } => {
                    match error {
                        Some(e) => warn!(resource, error = %e, "watch failed; resuming"),
                        None => debug!(resource, "watch ended; resuming"),
                    }
                    if healthy {
                        self.backoff.reset();
                    }
                    resume_from = Some(resource_version);
                    if !self.pause(&shutdown).await {
                        return;
                    }
                }
            }
        }
    }

    /// Waits out the back-off; false if shutdown came first.
    async fn pause(&mut self, shutdown: &CancellationToken) -> bool {
        unless_shutdown(shutdown, tokio::time::sleep(self.backoff.next_delay())).await.is_some()
    }

    /// Lists every page, replaces the store's contents and tells subscribers;
    /// returns the list's resourceVersion.
    async fn list(&mut self) -> Result<String> {
        let mut params = self.params.clone();
        params.continue_token.clear();
        if params.limit == 0 {
            // Pages, as client-go's reflector lists: a whole cluster's pods in
            // one response would be tens of megabytes held at once, a peak
            // the allocator keeps long after.
            params.limit = LIST_PAGE_SIZE;
        }
        let mut items = Vec::new();
        let mut resource_version = None;
        loop {
            let page = self.api.list(&params).await?;
            resource_version.get_or_insert(page.resource_version);
            items.extend(page.items.into_iter().map(Arc::new));
            if page.continue_token.is_empty() {
                break;
            }
            params.continue_token = page.continue_token;
        }
        let count = items.len();
        let diff = self.writer.replace(items);
        let events: Vec<Event<K>> = diff
            .deleted
            .into_iter()
            .map(Event::Deleted)
            .chain(diff.applied.into_iter().map(Event::Applied))
            .chain([Event::Restarted])
            .collect();
        self.subscribers.send(&events);
        if count >= crate::memory::BURST_ITEMS {
            // The pages' wire bytes and the replaced objects are garbage now.
            crate::memory::release_soon();
        }
        let resource_version = resource_version.unwrap_or_default();
        debug!(resource = self.api.resource().plural, count, resource_version, "listed");
        Ok(resource_version)
    }

    /// Watches from `resource_version`, applying events, until it ends.
    async fn watch(&mut self, resource_version: &str, shutdown: &CancellationToken) -> WatchEnd {
        let mut resource_version = resource_version.to_string();
        let broken = |resource_version: String, error, healthy| WatchEnd::Broken { resource_version, error, healthy };
        let stream = match unless_shutdown(shutdown, self.api.watch(&self.params, &resource_version)).await {
            None => return WatchEnd::Shutdown,
            Some(Ok(s)) => s,
            Some(Err(e)) if e.reason == Reason::Expired => return WatchEnd::Expired,
            Some(Err(e)) => return broken(resource_version, Some(e), false),
        };
        let mut stream = std::pin::pin!(stream);
        let opened = Instant::now();
        loop {
            let event = match unless_shutdown(shutdown, stream.next()).await {
                None => return WatchEnd::Shutdown,
                Some(None) => return broken(resource_version, None, opened.elapsed() >= HEALTHY_WATCH),
                Some(Some(Err(e))) if e.reason == Reason::Expired => return WatchEnd::Expired,
                Some(Some(Err(e))) => return broken(resource_version, Some(e), opened.elapsed() >= HEALTHY_WATCH),
                Some(Some(Ok(event))) => event,
            };
            self.backoff.reset();
            let (obj, deleted) = match event {
                WatchEvent::Added(o) | WatchEvent::Modified(o) => (Arc::new(o), false),
                WatchEvent::Deleted(o) => (Arc::new(o), true),
            };
            if let Some(rv) = obj.metadata().resource_version.as_ref().filter(|rv| !rv.is_empty()) {
                resource_version.clone_from(rv);
            }
            let event = if deleted {
                self.writer.delete(&ObjectKey::of(obj.as_ref()));
                Event::Deleted(obj)
            } else {
                self.writer.apply(obj.clone());
                Event::Applied(obj)
            };
            self.subscribers.send(std::slice::from_ref(&event));
        }
    }
}
