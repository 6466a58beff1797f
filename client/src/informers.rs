//! One watch and one cache per resource for a whole process (like
//! client-go's `SharedInformerFactory`).
//!
//! Controllers ask [`SharedInformers::get`] for the informer of a kind; the
//! first request starts its [`Reflector`] on the factory's tracker, later
//! ones share it. Ten controllers reading pods cost one pod watch and one
//! copy of every pod. Every reflector ends with the factory's shutdown token.
//!
//! [`owner_key`] and [`owner_keys`] map an owned object (a pod) to the key
//! of the controller that owns it (its ReplicaSet) — or, for an orphan, of
//! those that may adopt it — the way kube-runtime's `Controller::owns` does.

use crate::client::{Api, Client, ListParams};
use crate::queue::WorkQueue;
use crate::reflector::{Event, Informer, Reflector};
use crate::store::{ObjectKey, Store};
use k8s_openapi::Metadata;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::any::{Any, TypeId};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Started informers by (kind, label selector, field selector); each value
/// is an `Informer<K>` of that kind.
type Started = HashMap<(TypeId, String, String), Box<dyn Any + Send + Sync>>;

/// The informers of one process; cheap to clone, every clone shares them.
#[derive(Clone)]
pub struct SharedInformers {
    client: Client,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    started: Arc<Mutex<Started>>,
}

impl fmt::Debug for SharedInformers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let started = self.started.lock().unwrap_or_else(|p| p.into_inner()).len();
        f.debug_struct("SharedInformers").field("started", &started).finish_non_exhaustive()
    }
}

impl SharedInformers {
    /// A factory whose reflectors run on `tracker` until `shutdown`.
    pub fn new(client: Client, tracker: TaskTracker, shutdown: CancellationToken) -> Self {
        SharedInformers { client, tracker, shutdown, started: Arc::default() }
    }

    /// The client the reflectors use.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The informer of every `K` in every namespace, started on first use.
    pub fn get<K>(&self) -> Informer<K>
    where
        K: k8s_openapi::Resource + Metadata<Ty = ObjectMeta> + Serialize + DeserializeOwned + Clone + Send + Sync,
        K: 'static,
    {
        self.get_with(ListParams::default())
    }

    /// The informer of the `K`s that `params`' selectors pick (a kubelet's
    /// own pods: `spec.nodeName=<node>`), started on first use. Informers
    /// with different selectors are different watches.
    pub fn get_with<K>(&self, params: ListParams) -> Informer<K>
    where
        K: k8s_openapi::Resource + Metadata<Ty = ObjectMeta> + Serialize + DeserializeOwned + Clone + Send + Sync,
        K: 'static,
    {
        let key = (TypeId::of::<K>(), params.label_selector.clone(), params.field_selector.clone());
        let mut started = self.started.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(informer) = started.get(&key).and_then(|i| i.downcast_ref::<Informer<K>>()) {
            return informer.clone();
        }
        let reflector = Reflector::new(Api::<K>::all(self.client.clone()), params);
        let informer = reflector.informer();
        self.tracker.spawn(reflector.run(self.shutdown.clone()));
        started.insert(key, Box::new(informer.clone()));
        informer
    }
}

/// The controlling owner reference of `meta` (`controller: true`), if any.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references.as_deref().unwrap_or_default().iter().find(|r| r.controller == Some(true))
}

/// The key of the object of kind `owner_kind` that controls `obj`: its
/// namespace and the owner's name. None when `obj` has no controller of that
/// kind.
pub fn owner_key<K: Metadata<Ty = ObjectMeta>>(obj: &K, owner_kind: &str) -> Option<ObjectKey> {
    let meta = obj.metadata();
    let owner = controller_of(meta).filter(|r| r.kind == owner_kind)?;
    Some(ObjectKey::new(meta.namespace.as_deref().unwrap_or_default(), &owner.name))
}

/// Forwards `informer`'s events to `queue` until `shutdown`: each event's
/// object maps to keys through `keys` (the object itself, its owner, every
/// object that selects it...). `Restarted` calls `resync`, which should
/// enqueue everything the controller keeps (a re-list may hide deletions).
pub fn forward<K, F, R>(
    informer: &Informer<K>,
    queue: WorkQueue<ObjectKey>,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
    keys: F,
    resync: R,
) where
    K: Metadata<Ty = ObjectMeta> + Send + Sync + 'static,
    F: Fn(&K) -> Vec<ObjectKey> + Send + 'static,
    R: Fn() + Send + 'static,
{
    forward_events(informer, queue, tracker, shutdown, move |obj: &K, _deleted| keys(obj), resync);
}

/// [`forward`], telling `keys` whether the object was deleted (a controller
/// counting its pods' arrivals and departures needs to know).
pub fn forward_events<K, F, R>(
    informer: &Informer<K>,
    queue: WorkQueue<ObjectKey>,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
    keys: F,
    resync: R,
) where
    K: Metadata<Ty = ObjectMeta> + Send + Sync + 'static,
    F: Fn(&K, bool) -> Vec<ObjectKey> + Send + 'static,
    R: Fn() + Send + 'static,
{
    let mut events = informer.subscribe();
    tracker.spawn(async move {
        loop {
            let event = tokio::select! {
                _ = shutdown.cancelled() => return,
                event = events.recv() => match event { Some(e) => e, None => return },
            };
            let (obj, deleted) = match event {
                Event::Applied(obj) => (obj, false),
                Event::Deleted(obj) => (obj, true),
                Event::Restarted => {
                    resync();
                    continue;
                }
            };
            for key in keys(&obj, deleted) {
                queue.add(key);
            }
        }
    });
}

/// A `resync` for [`forward`]: enqueues the key of every object in `store`.
pub fn enqueue_all<K>(store: Store<K>, queue: WorkQueue<ObjectKey>) -> impl Fn() + Clone + Send + 'static
where
    K: Metadata<Ty = ObjectMeta> + Send + Sync + 'static,
{
    move || store.keys().into_iter().for_each(|k| queue.add(k))
}

/// The keys of the controllers of kind `owner_kind` (cached in `owners`) that
/// an event about `obj` concerns: its controller if it is of that kind;
/// nothing if another kind controls it; and for an orphan, every owner of
/// its namespace that `selects` it (so that one may adopt it).
pub fn owner_keys<K, O>(
    obj: &K,
    owner_kind: &str,
    owners: &Store<O>,
    selects: impl Fn(&O, &BTreeMap<String, String>) -> bool,
) -> Vec<ObjectKey>
where
    K: Metadata<Ty = ObjectMeta>,
    O: Metadata<Ty = ObjectMeta>,
{
    let meta = obj.metadata();
    match controller_of(meta) {
        Some(_) => owner_key(obj, owner_kind).into_iter().collect(),
        None => {
            let empty = BTreeMap::new();
            let labels = meta.labels.as_ref().unwrap_or(&empty);
            let namespace = meta.namespace.as_deref().unwrap_or_default();
            let owners = owners.list_namespace(namespace);
            owners.iter().filter(|o| selects(o, labels)).map(|o| ObjectKey::of(o.as_ref())).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;

    fn pod_owned_by(kind: &str, name: &str, controller: Option<bool>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                namespace: Some("ns".into()),
                owner_references: Some(vec![OwnerReference {
                    api_version: "apps/v1".into(),
                    kind: kind.into(),
                    name: name.into(),
                    uid: "u".into(),
                    controller,
                    block_owner_deletion: None,
                }]),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn owner_key_follows_the_controller_reference_of_that_kind_only() {
        assert_eq!(
            owner_key(&pod_owned_by("ReplicaSet", "web", Some(true)), "ReplicaSet"),
            Some(ObjectKey::new("ns", "web"))
        );
        assert_eq!(owner_key(&pod_owned_by("ReplicaSet", "web", Some(true)), "DaemonSet"), None);
        assert_eq!(owner_key(&pod_owned_by("ReplicaSet", "web", None), "ReplicaSet"), None, "not the controller");
        assert_eq!(owner_key(&Pod::default(), "ReplicaSet"), None);
    }

    #[tokio::test]
    async fn one_informer_per_kind_and_selector() {
        let client = Client::new("http://127.0.0.1:1").expect("a valid URL");
        let (tracker, shutdown) = (TaskTracker::new(), CancellationToken::new());
        let factory = SharedInformers::new(client, tracker.clone(), shutdown.clone());
        let a = factory.get::<Pod>();
        let b = factory.get::<Pod>();
        let c = factory.get_with::<Pod>(ListParams::default().fields("spec.nodeName=n1"));
        assert!(a.store().same_cache(b.store()), "the same cache");
        assert!(!a.store().same_cache(c.store()), "another selector, another cache");
        assert_eq!(tracker.len(), 2, "two reflectors");
        shutdown.cancel();
        tracker.close();
        tracker.wait().await;
    }
}
