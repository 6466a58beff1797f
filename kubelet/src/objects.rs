//! The API objects pods use — ConfigMaps, Secrets, PersistentVolumeClaims
//! and the PersistentVolumes they bind — read from the process's shared
//! informers instead of fetched on every sync (Kubernetes' watch-based
//! ConfigMap and Secret managers).
//!
//! One [`SharedInformers`] serves the whole process: a single node, or every
//! hollow node of `--hollow-nodes` (one ConfigMap watch and one Secret watch
//! for all of them). ConfigMaps and Secrets are watched from the start,
//! because a change to one re-syncs the pods on the node that use it
//! ([`requeue_users`]), so a configMap volume's files follow an update
//! within about a second; claims and volumes are watched from the first
//! read, that is, once a pod mounts a claim.
//!
//! [`ObjectCache::get`] answers from the cache once it has synced. It asks
//! the apiserver (one GET, as every read did before the cache) only
//! - while the cache is still listing, rather than holding the sync until
//!   the list completes: the pod's own watch may well be ahead of it;
//! - when the synced cache does not hold the object: the pod's watch event
//!   can arrive before the event of an object created just before the pod,
//!   and the GET then finds the object instead of failing the pod's mount
//!   with a `not found` event. An object that really is missing (a pod
//!   waiting for it, an `optional` one) so costs one GET per sync, as it
//!   always did; an object that exists costs none.
//!
//! Only API pods are re-synced on a change; static pods (which Kubernetes
//! does not let use API objects) follow at the periodic resync.

use crate::containers;
use k8s_openapi::Metadata;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use rkube_client::informers::forward;
use rkube_client::{Api, ApiError, ObjectKey, SharedInformers, Store, WorkQueue};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeSet;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Reads the objects pods use from the shared informers; cheap to clone,
/// every clone (and every node of the process) shares the caches.
#[derive(Debug, Clone)]
pub struct ObjectCache {
    informers: SharedInformers,
}

impl ObjectCache {
    /// Reads through `informers` (their client for the GETs the cache cannot answer).
    pub fn new(informers: &SharedInformers) -> ObjectCache {
        ObjectCache { informers: informers.clone() }
    }

    /// The client the cache reads (and the kubelet writes) through.
    pub fn client(&self) -> &rkube_client::Client {
        self.informers.client()
    }

    /// The object `name` in `namespace` ("" for cluster-scoped kinds); None
    /// when it does not exist. See the module docs for when this asks the
    /// apiserver instead of the cache.
    pub async fn get<K>(&self, namespace: &str, name: &str) -> Result<Option<Arc<K>>, ApiError>
    where
        K: k8s_openapi::Resource + Metadata<Ty = ObjectMeta> + Serialize + DeserializeOwned + Clone + Send + Sync,
        K: 'static,
    {
        let informer = self.informers.get::<K>();
        if let Some(obj) = cached(informer.store(), &ObjectKey::new(namespace, name)) {
            return Ok(Some(obj));
        }
        let client = self.informers.client().clone();
        let api = if namespace.is_empty() { Api::<K>::all(client) } else { Api::<K>::namespaced(client, namespace) };
        Ok(api.get_opt(name).await?.map(Arc::new))
    }
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

/// Queues on `queue` the pods in `pods` (one node's) that use a ConfigMap
/// or Secret whenever it is created, changed or deleted, until `shutdown`.
/// Starts the process's ConfigMap and Secret informers if nothing has yet.
/// A re-list reports what changed meanwhile as such, so it needs no resync
/// of its own; the kubelet's periodic resync stays the safety net.
pub fn requeue_users(
    informers: &SharedInformers,
    pods: &Store<Pod>,
    queue: &WorkQueue<ObjectKey>,
    tracker: &TaskTracker,
    shutdown: &CancellationToken,
) {
    let store = pods.clone();
    let keys = move |cm: &ConfigMap| users(&store, &ObjectKey::of(cm), |r| r.config_maps);
    forward(&informers.get::<ConfigMap>(), queue.clone(), tracker, shutdown.clone(), keys, || {});
    let store = pods.clone();
    let keys = move |s: &Secret| users(&store, &ObjectKey::of(s), |r| r.secrets);
    forward(&informers.get::<Secret>(), queue.clone(), tracker, shutdown.clone(), keys, || {});
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
    async fn reads_before_the_cache_has_synced_go_to_the_apiserver() {
        // Nothing listens there: the cache never syncs, and the GET fails.
        let client = rkube_client::Client::new("http://127.0.0.1:1").expect("a valid URL");
        let (tracker, shutdown) = (TaskTracker::new(), CancellationToken::new());
        let informers = SharedInformers::new(client, tracker.clone(), shutdown.clone());
        let err = ObjectCache::new(&informers).get::<ConfigMap>("ns", "cfg").await.unwrap_err();
        assert_eq!(err.reason, rkube_client::Reason::ServiceUnavailable, "{err}");
        shutdown.cancel();
        tracker.close();
        tracker.wait().await;
    }
}
