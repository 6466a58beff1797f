//! The API objects pods use — ConfigMaps, Secrets, PersistentVolumeClaims
//! and the PersistentVolumes they bind — as Kubernetes' kubelet reads them:
//! each ConfigMap and Secret a pod of this node uses through a watch of that
//! one object (its namespace, field selector `metadata.name=<name>`:
//! Kubernetes' watch-based ConfigMap and Secret managers), claims and
//! volumes with a GET when a pod mounts one.
//!
//! A node may read no other: the apiserver's Node authorizer lets it get,
//! list or watch only the objects its pods refer to, one by name, so there
//! is no cluster-wide watch to share between nodes (or hollow nodes).
//! [`requeue_users`] follows the node's pods and keeps one watch per object
//! they refer to, started when the first pod refers to it and stopped when
//! the last is gone; a change to the object re-syncs the pods that use it
//! ([`users`]), so a configMap volume's files follow an update within
//! about a second.
//!
//! [`ObjectCache::get`] answers from the object's watch once it has
//! synced. It asks the apiserver (one GET, as every read did before the
//! cache) only
//! - while there is no watch yet, or it is still listing, rather than
//!   holding the sync until the list completes: the pod's own watch may
//!   well be ahead of it;
//! - when the synced watch does not hold the object: the object may have
//!   been created just before the pod, and the GET then finds it instead of
//!   failing the pod's mount with a `not found` event. An object that
//!   really is missing (a pod waiting for it, an `optional` one) so costs
//!   one GET per sync, as it always did; an object that exists costs none.
//!
//! Only API pods are followed; static pods (which Kubernetes does not let
//! use API objects) follow at the periodic resync.

use crate::containers;
use k8s_openapi::Metadata;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use rkube_client::informers::forward;
use rkube_client::{Api, ApiError, Client, Event, Informer, ListParams, ObjectKey, Reflector, Store, WorkQueue};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::any::Any;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// An object's kind and key.
type WatchKey = (&'static str, ObjectKey);

/// One object's watch: its store (a `Store<K>`) and what stops it.
type ObjectWatch = (Box<dyn Any + Send + Sync>, CancellationToken);

/// Reads the objects the pods of one node use; cheap to clone, every clone
/// shares the watches.
#[derive(Debug, Clone)]
pub struct ObjectCache {
    client: Client,
    watches: Arc<Mutex<HashMap<WatchKey, ObjectWatch>>>,
}

impl ObjectCache {
    /// Reads through `client`; no watch until [`requeue_users`] starts them.
    pub fn new(client: Client) -> ObjectCache {
        ObjectCache { client, watches: Arc::default() }
    }

    fn watches(&self) -> std::sync::MutexGuard<'_, HashMap<WatchKey, ObjectWatch>> {
        self.watches.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The client the cache reads (and the kubelet writes) through.
    pub fn client(&self) -> &rkube_client::Client {
        &self.client
    }

    /// The object `name` in `namespace` ("" for cluster-scoped kinds); None
    /// when it does not exist. See the module docs for when this asks the
    /// apiserver instead of the object's watch.
    pub async fn get<K>(&self, namespace: &str, name: &str) -> Result<Option<Arc<K>>, ApiError>
    where
        K: k8s_openapi::Resource + Metadata<Ty = ObjectMeta> + Serialize + DeserializeOwned + Clone + Send + Sync,
        K: 'static,
    {
        let key = ObjectKey::new(namespace, name);
        let store =
            self.watches().get(&(K::KIND, key.clone())).and_then(|(s, _)| s.downcast_ref::<Store<K>>().cloned());
        if let Some(obj) = store.and_then(|s| cached(&s, &key)) {
            return Ok(Some(obj));
        }
        let client = self.client.clone();
        let api = if namespace.is_empty() { Api::<K>::all(client) } else { Api::<K>::namespaced(client, namespace) };
        Ok(api.get_opt(name).await?.map(Arc::new))
    }

    /// Starts the watch of `K` `key` (re-syncing its users in `pods` on
    /// `queue`) unless it runs.
    fn watch<K>(&self, key: &ObjectKey, users: Users, tracker: &TaskTracker, shutdown: &CancellationToken)
    where
        K: k8s_openapi::Resource + Metadata<Ty = ObjectMeta> + Serialize + DeserializeOwned + Clone + Send + Sync,
        K: 'static,
    {
        let mut watches = self.watches();
        let Some(slot) = absent(&mut watches, (K::KIND, key.clone())) else { return };
        let api = Api::<K>::namespaced(self.client.clone(), &key.namespace);
        let reflector = Reflector::new(api, ListParams::default().fields(&format!("metadata.name={}", key.name)));
        let informer: Informer<K> = reflector.informer();
        let stop = shutdown.child_token();
        tracker.spawn(reflector.run(stop.clone()));
        let Users { pods, queue, pick } = users;
        let object = ObjectKey::new(&key.namespace, &key.name);
        forward(&informer, queue, tracker, stop.clone(), move |_: &K| self::users(&pods, &object, pick), || {});
        slot.insert((Box::new(informer.store().clone()), stop));
    }

    /// Stops the watches of the objects not in `wanted`.
    fn keep_only(&self, wanted: &BTreeSet<WatchKey>) {
        self.watches().retain(|key, (_, stop)| {
            let keep = wanted.contains(key);
            if !keep {
                stop.cancel();
            }
            keep
        });
    }
}

/// The vacant entry for `key`, if no watch runs for it.
fn absent(
    watches: &mut HashMap<WatchKey, ObjectWatch>,
    key: WatchKey,
) -> Option<std::collections::hash_map::VacantEntry<'_, WatchKey, ObjectWatch>> {
    match watches.entry(key) {
        std::collections::hash_map::Entry::Vacant(v) => Some(v),
        std::collections::hash_map::Entry::Occupied(_) => None,
    }
}

/// Whom a change of an object re-syncs.
struct Users {
    pods: Store<Pod>,
    queue: WorkQueue<ObjectKey>,
    pick: fn(References) -> BTreeSet<String>,
}

/// The object `key` if the synced `store` holds it; None means "ask the
/// apiserver" (not listed yet, or not (yet) seen).
fn cached<K: Metadata<Ty = ObjectMeta>>(store: &Store<K>, key: &ObjectKey) -> Option<Arc<K>> {
    if store.is_synced() { store.get(key) } else { None }
}

/// The names of the ConfigMaps and Secrets a pod reads when it syncs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct References {
    /// From configMap volumes and the env / envFrom of every container.
    pub config_maps: BTreeSet<String>,
    /// From secret volumes, env / envFrom, and imagePullSecrets.
    pub secrets: BTreeSet<String>,
}

/// What `pod` refers to: its configMap and secret volumes, the env and
/// envFrom of its init and app containers, and its imagePullSecrets.
pub fn references(pod: &Pod) -> References {
    let mut out = References::default();
    let Some(spec) = pod.spec.as_ref() else { return out };
    for v in spec.volumes.iter().flatten() {
        if let Some(cm) = &v.config_map {
            out.config_maps.insert(cm.name.clone());
        }
        if let Some(name) = v.secret.as_ref().and_then(|s| s.secret_name.clone()) {
            out.secrets.insert(name);
        }
        for source in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            if let Some(cm) = &source.config_map {
                out.config_maps.insert(cm.name.clone());
            }
            if let Some(secret) = &source.secret {
                out.secrets.insert(secret.name.clone());
            }
        }
    }
    for c in spec.init_containers.iter().flatten().chain(&spec.containers) {
        let (cms, secrets) = containers::env_references(c);
        out.config_maps.extend(cms);
        out.secrets.extend(secrets);
    }
    out.secrets.extend(spec.image_pull_secrets.iter().flatten().map(|r| r.name.clone()));
    out
}

/// The keys of the pods in `pods` that use the object `key` (a ConfigMap
/// or Secret, per `pick`): only pods of its namespace can.
fn users(pods: &Store<Pod>, key: &ObjectKey, pick: fn(References) -> BTreeSet<String>) -> Vec<ObjectKey> {
    pods.list_namespace(&key.namespace)
        .iter()
        .filter(|p| pick(references(p)).contains(&key.name))
        .map(|p| ObjectKey::of(p.as_ref()))
        .collect()
}

/// Follows `pods` (one node's) and keeps a watch of every ConfigMap and
/// Secret they refer to, queueing on `queue` the pods that use one whenever
/// it is created, changed or deleted, until `shutdown`. A watch stops when
/// no pod refers to its object any more. A re-list reports what changed
/// meanwhile as such, so it needs no resync of its own; the kubelet's
/// periodic resync stays the safety net.
pub fn requeue_users(
    objects: &ObjectCache,
    pods: &Informer<Pod>,
    queue: &WorkQueue<ObjectKey>,
    tracker: &TaskTracker,
    shutdown: &CancellationToken,
) {
    let mut events = pods.subscribe();
    let (objects, store, queue, t, stop) =
        (objects.clone(), pods.store().clone(), queue.clone(), tracker.clone(), shutdown.clone());
    tracker.spawn(async move {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                event = events.recv() => match event {
                    Some(Event::Applied(_) | Event::Deleted(_) | Event::Restarted) => {}
                    None => return,
                },
            }
            // Take every event already queued: one pass for a burst.
            while events.try_recv().is_ok() {}
            let mut wanted = BTreeSet::new();
            for pod in store.list() {
                let ns = pod.metadata.namespace.clone().unwrap_or_default();
                let refs = references(&pod);
                for name in refs.config_maps {
                    let key = ObjectKey::new(&ns, &name);
                    let users = Users { pods: store.clone(), queue: queue.clone(), pick: |r| r.config_maps };
                    objects.watch::<ConfigMap>(&key, users, &t, &stop);
                    wanted.insert((<ConfigMap as k8s_openapi::Resource>::KIND, key));
                }
                for name in refs.secrets {
                    let key = ObjectKey::new(&ns, &name);
                    let users = Users { pods: store.clone(), queue: queue.clone(), pick: |r| r.secrets };
                    objects.watch::<Secret>(&key, users, &t, &stop);
                    wanted.insert((<Secret as k8s_openapi::Resource>::KIND, key));
                }
            }
            objects.keep_only(&wanted);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use rkube_client::Writer;
    use serde_json::json;

    fn pod(name: &str, namespace: &str, spec: serde_json::Value) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name, "namespace": namespace}, "spec": spec})).unwrap(),
        )
    }

    fn names(set: &[&str]) -> BTreeSet<String> {
        set.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn references_cover_volumes_env_env_from_init_containers_and_pull_secrets() {
        let p = pod(
            "p",
            "ns",
            json!({
                "volumes": [
                    {"name": "a", "configMap": {"name": "vol-cm"}},
                    {"name": "b", "secret": {"secretName": "vol-secret"}},
                    {"name": "c", "emptyDir": {}}
                ],
                "initContainers": [{"name": "init", "envFrom": [{"configMapRef": {"name": "init-cm"}}]}],
                "containers": [{"name": "app", "env": [
                    {"name": "X", "valueFrom": {"secretKeyRef": {"name": "env-secret", "key": "k"}}},
                    {"name": "Y", "valueFrom": {"configMapKeyRef": {"name": "env-cm", "key": "k"}}}
                ], "envFrom": [{"secretRef": {"name": "from-secret"}}]}],
                "imagePullSecrets": [{"name": "registry"}]
            }),
        );
        let r = references(&p);
        assert_eq!(r.config_maps, names(&["env-cm", "init-cm", "vol-cm"]));
        assert_eq!(r.secrets, names(&["env-secret", "from-secret", "registry", "vol-secret"]));
        assert_eq!(references(&Pod::default()), References::default());
    }

    #[test]
    fn a_change_queues_only_the_pods_of_its_namespace_that_use_it() {
        let w = Writer::new();
        let uses = |name: &str, ns: &str| {
            pod(name, ns, json!({"containers": [], "volumes": [{"name": "v", "configMap": {"name": "cfg"}}]}))
        };
        w.apply(uses("a", "ns"));
        w.apply(uses("b", "other"));
        w.apply(pod("c", "ns", json!({"containers": [], "volumes": [{"name": "v", "secret": {"secretName": "cfg"}}]})));
        w.apply(uses("d", "ns"));
        let store = w.as_reader();
        let key = ObjectKey::new("ns", "cfg");
        assert_eq!(users(&store, &key, |r| r.config_maps), [ObjectKey::new("ns", "a"), ObjectKey::new("ns", "d")]);
        assert_eq!(users(&store, &key, |r| r.secrets), [ObjectKey::new("ns", "c")]);
        assert!(users(&store, &ObjectKey::new("ns", "unused"), |r| r.config_maps).is_empty());
    }

    #[test]
    fn only_a_synced_cache_answers_and_a_miss_asks_the_apiserver() {
        let w = Writer::new();
        let store = w.as_reader();
        let cm = |name: &str| {
            Arc::new(ConfigMap {
                metadata: ObjectMeta { name: Some(name.into()), namespace: Some("ns".into()), ..Default::default() },
                ..Default::default()
            })
        };
        w.apply(cm("early"));
        let key = ObjectKey::new("ns", "early");
        assert!(cached(&store, &key).is_none(), "an unsynced cache may be partial: ask");
        w.replace([cm("early")]);
        assert!(cached(&store, &key).is_some());
        assert!(cached(&store, &ObjectKey::new("ns", "late")).is_none(), "not seen (yet): ask");
    }

    #[tokio::test]
    async fn reads_without_a_synced_watch_go_to_the_apiserver() {
        // Nothing listens there: no watch runs, and the GET fails.
        let client = rkube_client::Client::new("http://127.0.0.1:1").expect("a valid URL");
        let err = ObjectCache::new(client).get::<ConfigMap>("ns", "cfg").await.unwrap_err();
        assert_eq!(err.reason, rkube_client::Reason::ServiceUnavailable, "{err}");
    }
}
