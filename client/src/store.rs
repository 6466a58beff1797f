//! The local cache a controller reads instead of the apiserver (like
//! client-go's indexer / kube-runtime's `reflector::Store`).
//!
//! A [`Writer`] is filled by exactly one reflector; any number of cheap
//! [`Store`] clones read it from any thread. Objects are shared as `Arc<K>`,
//! ordered by [`ObjectKey`], and indexed by label so [`Store::by_label`] and
//! [`Store::select`] do not scan every object.

use k8s_openapi::Metadata;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use rkube_api::selector::{Op, Selector};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use tokio::sync::watch;

/// Where an object lives: its namespace ("" for cluster-scoped objects) and
/// name. Displays as `namespace/name`, or `name` when cluster-scoped.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    /// The namespace ("" for cluster-scoped objects).
    pub namespace: String,
    /// The name.
    pub name: String,
}

impl ObjectKey {
    /// The key of `name` in `namespace` ("" for cluster-scoped).
    pub fn new(namespace: &str, name: &str) -> Self {
        ObjectKey { namespace: namespace.to_string(), name: name.to_string() }
    }

    /// The key of an object, from its metadata.
    pub fn of<K: Metadata<Ty = ObjectMeta>>(obj: &K) -> Self {
        let meta = obj.metadata();
        ObjectKey { namespace: meta.namespace.clone().unwrap_or_default(), name: meta.name.clone().unwrap_or_default() }
    }

    /// Parses the [`Display`](fmt::Display) form: `namespace/name` or `name`.
    pub fn parse(s: &str) -> Self {
        match s.split_once('/') {
            Some((ns, name)) => ObjectKey::new(ns, name),
            None => ObjectKey::new("", s),
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() { f.write_str(&self.name) } else { write!(f, "{}/{}", self.namespace, self.name) }
    }
}

/// The objects and the label index, always changed together.
struct State<K> {
    /// Keyed by one shared `Arc<ObjectKey>` per object, which the label
    /// index points at too (no copy of the key per label).
    objects: BTreeMap<Arc<ObjectKey>, Arc<K>>,
    /// (label key, label value) -> the objects carrying that label.
    labels: HashMap<(String, String), HashSet<Arc<ObjectKey>>>,
}

impl<K> Default for State<K> {
    fn default() -> Self {
        State { objects: BTreeMap::new(), labels: HashMap::new() }
    }
}

fn labels_of<K: Metadata<Ty = ObjectMeta>>(obj: &K) -> impl Iterator<Item = (&String, &String)> {
    obj.metadata().labels.iter().flatten()
}

impl<K: Metadata<Ty = ObjectMeta>> State<K> {
    fn index(&mut self, key: &Arc<ObjectKey>, obj: &K) {
        for (k, v) in labels_of(obj) {
            self.labels.entry((k.clone(), v.clone())).or_default().insert(key.clone());
        }
    }

    fn unindex(&mut self, key: &ObjectKey, obj: &K) {
        for (k, v) in labels_of(obj) {
            let label = (k.clone(), v.clone());
            if let Some(keys) = self.labels.get_mut(&label) {
                keys.remove(key);
                if keys.is_empty() {
                    self.labels.remove(&label);
                }
            }
        }
    }

    fn insert(&mut self, obj: Arc<K>) -> Option<Arc<K>> {
        let key = ObjectKey::of(obj.as_ref());
        let key = match self.objects.get_key_value(&key) {
            Some((shared, _)) => shared.clone(),
            None => Arc::new(key),
        };
        let old = self.objects.insert(key.clone(), obj.clone());
        if let Some(old) = &old {
            self.unindex(&key, old);
        }
        self.index(&key, &obj);
        old
    }

    fn remove(&mut self, key: &ObjectKey) -> Option<Arc<K>> {
        let old = self.objects.remove(key)?;
        self.unindex(key, &old);
        Some(old)
    }
}

struct Shared<K> {
    state: RwLock<State<K>>,
}

impl<K> Shared<K> {
    fn read(&self) -> RwLockReadGuard<'_, State<K>> {
        // A panic while holding the lock cannot leave the state half-changed
        // in a way readers care about more than about a dead cache.
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State<K>> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// The read side of the cache: cheap to clone, safe to share between threads.
pub struct Store<K> {
    shared: Arc<Shared<K>>,
    synced: watch::Receiver<bool>,
}

impl<K> Clone for Store<K> {
    fn clone(&self) -> Self {
        Store { shared: self.shared.clone(), synced: self.synced.clone() }
    }
}

impl<K> Store<K> {
    /// Whether `other` reads the same cache (a clone of this store).
    pub fn same_cache(&self, other: &Store<K>) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

impl<K> fmt::Debug for Store<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("len", &self.shared.read().objects.len())
            .field("synced", &*self.synced.borrow())
            .finish()
    }
}

/// [`Store::wait_until_synced`] cannot finish: the store's [`Writer`] was
/// dropped before the first list completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the store's writer was dropped before the store was synced")]
pub struct WriterDropped;

impl<K: Metadata<Ty = ObjectMeta>> Store<K> {
    /// The object with `key`, if cached.
    pub fn get(&self, key: &ObjectKey) -> Option<Arc<K>> {
        self.shared.read().objects.get(key).cloned()
    }

    /// Every cached object, ordered by key.
    pub fn list(&self) -> Vec<Arc<K>> {
        self.shared.read().objects.values().cloned().collect()
    }

    /// Every cached object's key, in order.
    pub fn keys(&self) -> Vec<ObjectKey> {
        self.shared.read().objects.keys().map(|k| ObjectKey::clone(k)).collect()
    }

    /// The cached objects in namespace `namespace`, ordered by name.
    pub fn list_namespace(&self, namespace: &str) -> Vec<Arc<K>> {
        let state = self.shared.read();
        let from = ObjectKey::new(namespace, "");
        state.objects.range(from..).take_while(|(k, _)| k.namespace == namespace).map(|(_, o)| o.clone()).collect()
    }

    /// The cached objects labelled `key=value`, ordered by key; served from
    /// the label index.
    pub fn by_label(&self, key: &str, value: &str) -> Vec<Arc<K>> {
        let state = self.shared.read();
        let Some(keys) = state.labels.get(&(key.to_string(), value.to_string())) else { return Vec::new() };
        let mut keys: Vec<&ObjectKey> = keys.iter().map(|k| &**k).collect();
        keys.sort();
        keys.into_iter().filter_map(|k| state.objects.get(k).cloned()).collect()
    }

    /// The cached objects (in every namespace) that `selector` selects,
    /// ordered by key. An empty selector selects everything.
    pub fn select(&self, selector: &Selector) -> Vec<Arc<K>> {
        self.select_in(None, selector)
    }

    /// The cached objects in namespace `namespace` that `selector` selects,
    /// ordered by name (a ReplicaSet's pods, a Service's endpoints).
    pub fn select_namespace(&self, namespace: &str, selector: &Selector) -> Vec<Arc<K>> {
        self.select_in(Some(namespace), selector)
    }

    fn select_in(&self, namespace: Option<&str>, selector: &Selector) -> Vec<Arc<K>> {
        let state = self.shared.read();
        let in_namespace = |k: &ObjectKey| namespace.is_none_or(|ns| k.namespace == ns);
        let matches = |o: &K| selector.matches(o.metadata().labels.as_ref().unwrap_or(&BTreeMap::new()));
        match candidates(&state, selector) {
            Some(mut keys) => {
                keys.retain(|k| in_namespace(k));
                keys.sort();
                keys.into_iter().filter_map(|k| state.objects.get(&k)).filter(|o| matches(o)).cloned().collect()
            }
            None => {
                let objects: Box<dyn Iterator<Item = (&ObjectKey, &Arc<K>)>> = match namespace {
                    Some(ns) => Box::new(
                        state
                            .objects
                            .range(ObjectKey::new(ns, "")..)
                            .take_while(move |(k, _)| k.namespace == ns)
                            .map(|(k, o)| (&**k, o)),
                    ),
                    None => Box::new(state.objects.iter().map(|(k, o)| (&**k, o))),
                };
                objects.filter(|(_, o)| matches(o)).map(|(_, o)| o.clone()).collect()
            }
        }
    }

    /// The number of cached objects.
    pub fn len(&self) -> usize {
        self.shared.read().objects.len()
    }

    /// Whether the cache holds no objects.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the cache has been filled from a complete list at least once.
    /// Before that, a missing object may simply not have arrived yet.
    pub fn is_synced(&self) -> bool {
        *self.synced.borrow()
    }

    /// Waits until the cache has been filled from a complete list.
    pub async fn wait_until_synced(&self) -> Result<(), WriterDropped> {
        let mut rx = self.synced.clone();
        rx.wait_for(|synced| *synced).await.map(|_| ()).map_err(|_| WriterDropped)
    }
}

/// The keys a selector can only select among, from the label index: the
/// smallest set over its `key=value` / `key in (..)` requirements. None when
/// no requirement narrows the search (the caller scans every object).
fn candidates<K>(state: &State<K>, selector: &Selector) -> Option<Vec<Arc<ObjectKey>>> {
    selector
        .requirements
        .iter()
        .filter(|r| r.op == Op::In)
        .map(|r| {
            r.values
                .iter()
                .filter_map(|v| state.labels.get(&(r.key.clone(), v.clone())))
                .flatten()
                .cloned()
                .collect::<HashSet<Arc<ObjectKey>>>()
        })
        .min_by_key(HashSet::len)
        .map(|keys| keys.into_iter().collect())
}

/// What [`Writer::replace`] changed: the objects that are new or have a new
/// resourceVersion, and the objects that are gone (in their last known state).
#[derive(Debug)]
pub struct Replaced<K> {
    /// Objects that were not cached, or were cached with another resourceVersion.
    pub applied: Vec<Arc<K>>,
    /// Objects that were cached and are not in the new contents.
    pub deleted: Vec<Arc<K>>,
}

/// The write side of the cache. There is one per store (held by its
/// reflector), so readers never see two writers' changes interleaved.
pub struct Writer<K> {
    shared: Arc<Shared<K>>,
    synced: watch::Sender<bool>,
}

impl<K> fmt::Debug for Writer<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Writer").field("len", &self.shared.read().objects.len()).finish()
    }
}

impl<K> Default for Writer<K> {
    fn default() -> Self {
        Writer { shared: Arc::new(Shared { state: RwLock::new(State::default()) }), synced: watch::channel(false).0 }
    }
}

impl<K: Metadata<Ty = ObjectMeta>> Writer<K> {
    /// An empty, not yet synced cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// A reader of this cache.
    pub fn as_reader(&self) -> Store<K> {
        Store { shared: self.shared.clone(), synced: self.synced.subscribe() }
    }

    /// Adds or replaces an object; returns the version it replaced.
    pub fn apply(&self, obj: Arc<K>) -> Option<Arc<K>> {
        self.shared.write().insert(obj)
    }

    /// Removes an object; returns it if it was cached.
    pub fn delete(&self, key: &ObjectKey) -> Option<Arc<K>> {
        self.shared.write().remove(key)
    }

    /// Replaces the whole contents in one step (readers see either the old or
    /// the new contents, never a mix), and marks the cache synced.
    pub fn replace(&self, objects: impl IntoIterator<Item = Arc<K>>) -> Replaced<K> {
        let mut fresh = State::default();
        for obj in objects {
            fresh.insert(obj);
        }
        let old = std::mem::replace(&mut *self.shared.write(), fresh);
        let state = self.shared.read();
        let applied = state
            .objects
            .iter()
            .filter(|(key, new)| {
                old.objects.get(*key).is_none_or(|was| {
                    let rv = |o: &K| o.metadata().resource_version.clone();
                    rv(was).is_none() || rv(was) != rv(new)
                })
            })
            .map(|(_, o)| o.clone())
            .collect();
        let deleted =
            old.objects.into_iter().filter(|(key, _)| !state.objects.contains_key(key)).map(|(_, o)| o).collect();
        drop(state);
        self.synced.send_replace(true);
        Replaced { applied, deleted }
    }

    /// Marks the cache synced without changing it.
    pub fn mark_synced(&self) {
        self.synced.send_replace(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;

    fn cm(ns: &str, name: &str, rv: &str, labels: &[(&str, &str)]) -> Arc<ConfigMap> {
        let labels = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>();
        Arc::new(ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: (!ns.is_empty()).then(|| ns.to_string()),
                resource_version: Some(rv.into()),
                labels: (!labels.is_empty()).then_some(labels),
                ..Default::default()
            },
            ..Default::default()
        })
    }

    fn names(objs: &[Arc<ConfigMap>]) -> Vec<String> {
        objs.iter().map(|o| ObjectKey::of(o.as_ref()).to_string()).collect()
    }

    #[test]
    fn object_key_displays_and_parses_namespaced_and_cluster_scoped() {
        assert_eq!(ObjectKey::new("default", "web").to_string(), "default/web");
        assert_eq!(ObjectKey::new("", "node-1").to_string(), "node-1");
        assert_eq!(ObjectKey::parse("default/web"), ObjectKey::new("default", "web"));
        assert_eq!(ObjectKey::parse("node-1"), ObjectKey::new("", "node-1"));
    }

    #[test]
    fn apply_get_and_delete_round_trip() {
        let w = Writer::new();
        let store = w.as_reader();
        assert!(w.apply(cm("default", "a", "1", &[])).is_none());
        let old = w.apply(cm("default", "a", "2", &[])).expect("replaces the first version");
        assert_eq!(old.metadata.resource_version.as_deref(), Some("1"));
        let key = ObjectKey::new("default", "a");
        assert_eq!(store.get(&key).and_then(|o| o.metadata.resource_version.clone()).as_deref(), Some("2"));
        assert_eq!(store.len(), 1);
        assert!(w.delete(&key).is_some());
        assert!(store.get(&key).is_none());
        assert!(store.is_empty());
        assert!(w.delete(&key).is_none());
    }

    #[test]
    fn list_namespace_returns_only_that_namespace_in_name_order() {
        let w = Writer::new();
        for (ns, name) in [("b", "z"), ("a", "y"), ("b", "x"), ("bb", "w"), ("", "c")] {
            w.apply(cm(ns, name, "1", &[]));
        }
        let store = w.as_reader();
        assert_eq!(names(&store.list_namespace("b")), ["b/x", "b/z"]);
        assert_eq!(names(&store.list_namespace("")), ["c"]);
        assert_eq!(names(&store.list()), ["c", "a/y", "b/x", "b/z", "bb/w"]);
    }

    #[test]
    fn label_index_follows_relabels_and_deletes() {
        let w = Writer::new();
        let store = w.as_reader();
        w.apply(cm("default", "a", "1", &[("app", "web")]));
        w.apply(cm("default", "b", "1", &[("app", "web"), ("tier", "fe")]));
        w.apply(cm("other", "c", "1", &[("app", "db")]));
        assert_eq!(names(&store.by_label("app", "web")), ["default/a", "default/b"]);

        w.apply(cm("default", "a", "2", &[("app", "db")]));
        assert_eq!(names(&store.by_label("app", "web")), ["default/b"]);
        assert_eq!(names(&store.by_label("app", "db")), ["default/a", "other/c"]);

        w.delete(&ObjectKey::new("default", "b"));
        assert!(store.by_label("app", "web").is_empty());
        assert!(store.by_label("tier", "fe").is_empty());
        assert!(!w.shared.read().labels.contains_key(&("app".into(), "web".into())), "empty index entries are pruned");
    }

    #[test]
    fn select_matches_every_requirement_with_and_without_the_index() {
        let w = Writer::new();
        w.apply(cm("default", "a", "1", &[("app", "web"), ("tier", "fe")]));
        w.apply(cm("default", "b", "1", &[("app", "web"), ("tier", "be")]));
        w.apply(cm("other", "c", "1", &[("app", "web"), ("tier", "fe")]));
        w.apply(cm("default", "d", "1", &[]));
        let store = w.as_reader();
        let sel = |s: &str| Selector::parse(s).expect("valid selector");
        assert_eq!(names(&store.select(&sel("app=web,tier=fe"))), ["default/a", "other/c"]);
        assert_eq!(names(&store.select(&sel("app in (web,db),tier!=fe"))), ["default/b"]);
        assert_eq!(names(&store.select(&sel("!app"))), ["default/d"]);
        assert_eq!(names(&store.select(&sel("tier"))), ["default/a", "default/b", "other/c"]);
        assert_eq!(store.select(&Selector::everything()).len(), 4);
        assert_eq!(names(&store.select_namespace("default", &sel("tier=fe"))), ["default/a"]);
        assert_eq!(names(&store.select_namespace("other", &sel("tier"))), ["other/c"]);
        assert!(store.select(&sel("app=nothing")).is_empty());
    }

    #[test]
    fn replace_reports_new_changed_and_vanished_objects() {
        let w = Writer::new();
        let store = w.as_reader();
        w.apply(cm("default", "same", "1", &[("app", "old")]));
        w.apply(cm("default", "changed", "1", &[]));
        w.apply(cm("default", "gone", "1", &[("app", "old")]));
        let diff = w.replace([
            cm("default", "same", "1", &[("app", "old")]),
            cm("default", "changed", "2", &[]),
            cm("default", "new", "3", &[("app", "new")]),
        ]);
        assert_eq!(names(&diff.applied), ["default/changed", "default/new"]);
        assert_eq!(names(&diff.deleted), ["default/gone"]);
        assert_eq!(names(&store.list()), ["default/changed", "default/new", "default/same"]);
        assert_eq!(names(&store.by_label("app", "old")), ["default/same"]);
        assert_eq!(names(&store.by_label("app", "new")), ["default/new"]);
    }

    #[tokio::test]
    async fn wait_until_synced_finishes_after_the_first_replace() {
        let w: Writer<ConfigMap> = Writer::new();
        let store = w.as_reader();
        assert!(!store.is_synced());
        let waiter = tokio::spawn({
            let store = store.clone();
            async move { store.wait_until_synced().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        w.replace([]);
        assert_eq!(waiter.await.expect("waiter ran"), Ok(()));
        assert!(store.is_synced());
    }

    #[tokio::test]
    async fn wait_until_synced_fails_when_the_writer_is_dropped_first() {
        let w: Writer<ConfigMap> = Writer::new();
        let store = w.as_reader();
        drop(w);
        assert_eq!(store.wait_until_synced().await, Err(WriterDropped));
    }

    #[test]
    fn clones_share_one_cache_across_threads() {
        let w = Writer::new();
        let store = w.as_reader();
        let readers: Vec<_> = (0..4)
            .map(|_| {
                let store = store.clone();
                std::thread::spawn(move || (0..1000).map(|_| store.len()).max().unwrap_or(0))
            })
            .collect();
        for i in 0..100 {
            w.apply(cm("default", &format!("cm-{i}"), "1", &[("app", "web")]));
        }
        for r in readers {
            assert!(r.join().expect("reader thread") <= 100);
        }
        assert_eq!(store.len(), 100);
        assert_eq!(store.clone().by_label("app", "web").len(), 100);
    }
}
