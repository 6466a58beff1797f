//! Static pods (Kubernetes' file source): pods the kubelet runs from the
//! manifests in `--pod-manifest-path`, with or without the apiserver.
//!
//! [`StaticPods::scan`] reads the directory every [`SCAN_PERIOD`]. Each
//! file (dotfiles aside) holds YAML or JSON Pods, read with
//! [`rkube_api::manifest::parse_documents`] and defaulted and validated as
//! the apiserver would ([`pod_from_manifest`]). A pod named `web` runs as
//! `web-<node>` (namespace `default` unless it names one), bound to the
//! node, with a uid that is the hash of its file's path and its defaulted
//! content ([`config_hash`]) and the annotations
//! `kubernetes.io/config.source: file`, `kubernetes.io/config.hash` and
//! `kubernetes.io/config.seen`. A file that does not parse or validate is
//! logged (once per change) and skipped; the others run. Changing a file
//! changes the hash, so its pod is replaced; removing the file stops it.
//!
//! The pod workers (`pod::sync`) run static pods like API pods, keep their
//! status here (the apiserver may be down), and keep one *mirror pod* per
//! static pod in the API ([`mirror_pod`]): the same pod annotated
//! `kubernetes.io/config.mirror: <hash>` and owned by the Node, whose
//! status they write. A mirror pod deleted through the API is created
//! again (its static pod keeps running); a mirror pod without a static pod
//! is deleted.

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use rkube_client::ObjectKey;
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// How often the manifest directory is read.
pub const SCAN_PERIOD: Duration = Duration::from_secs(3);
/// Annotation: where a pod came from (`file` for static pods).
pub const CONFIG_SOURCE: &str = "kubernetes.io/config.source";
/// Annotation: the static pod's hash (also its uid).
pub const CONFIG_HASH: &str = "kubernetes.io/config.hash";
/// Annotation: when the kubelet first saw this version of the manifest.
pub const CONFIG_SEEN: &str = "kubernetes.io/config.seen";
/// Annotation: marks a mirror pod; its value is the static pod's hash.
pub const CONFIG_MIRROR: &str = "kubernetes.io/config.mirror";

/// The name a static pod runs under: its manifest's name, then the node's.
pub fn static_pod_name(name: &str, node: &str) -> String {
    format!("{name}-{node}")
}

/// FNV-1a, 128 bits, as 32 hex digits.
fn fnv128(parts: &[&[u8]]) -> String {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    let mut h = OFFSET;
    for part in parts {
        for b in part.iter().chain([&0u8]) {
            h ^= u128::from(*b);
            h = h.wrapping_mul(PRIME);
        }
    }
    format!("{h:032x}")
}

/// The hash of document `index` of the manifest at `source`, after
/// defaulting: the same file content at the same path always hashes the same.
pub fn config_hash(source: &Path, index: usize, defaulted: &Value) -> String {
    let json = serde_json::to_vec(defaulted).expect("a JSON value always serializes");
    fnv128(&[source.as_os_str().as_encoded_bytes(), index.to_string().as_bytes(), &json])
}

/// The static pod that document `index` of the manifest at `source`
/// describes, for `node`; or why it cannot run, in the apiserver's words.
pub fn pod_from_manifest(doc: &Value, source: &Path, index: usize, node: &str) -> Result<Pod, String> {
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default();
    let api_version = doc.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    if (api_version, kind) != ("v1", "Pod") {
        return Err(format!(
            "document {}: a static pod manifest holds v1 Pods, not \"{api_version}\" \"{kind}\"",
            index + 1
        ));
    }
    let name = doc.pointer("/metadata/name").and_then(Value::as_str).filter(|n| !n.is_empty());
    let Some(name) = name else {
        return Err(format!("document {}: metadata.name: Required value", index + 1));
    };
    let mut obj = doc.clone();
    if let Some(map) = obj.as_object_mut() {
        map.remove("status");
    }
    let meta = obj
        .as_object_mut()
        .and_then(|o| o.entry("metadata").or_insert_with(|| Value::Object(Default::default())).as_object_mut())
        .ok_or_else(|| format!("document {}: metadata: must be an object", index + 1))?;
    for server_set in ["uid", "resourceVersion", "creationTimestamp", "deletionTimestamp", "generation"] {
        meta.remove(server_set);
    }
    meta.insert("name".into(), static_pod_name(name, node).into());
    if meta.get("namespace").and_then(Value::as_str).is_none_or(str::is_empty) {
        meta.insert("namespace".into(), "default".into());
    }
    if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
        spec.insert("nodeName".into(), node.into());
    }
    let pods = rkube_api::resource::lookup("pods").expect("pods are a known resource");
    let mut defaulted = rkube_api::kinds::prepare_create(pods, &obj).map_err(|e| e.message)?;
    if let Some(map) = defaulted.as_object_mut() {
        map.remove("status");
    }
    let hash = config_hash(source, index, &defaulted);
    let mut pod: Pod = serde_json::from_value(defaulted).map_err(|e| format!("decoding the pod: {e}"))?;
    pod.metadata.uid = Some(hash.clone());
    let annotations = pod.metadata.annotations.get_or_insert_with(Default::default);
    annotations.insert(CONFIG_SOURCE.into(), "file".into());
    annotations.insert(CONFIG_HASH.into(), hash);
    Ok(pod)
}

fn annotation<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata.annotations.as_ref().and_then(|a| a.get(key)).map(String::as_str)
}

/// Whether `pod` is a mirror pod (of some static pod).
pub fn is_mirror_pod(pod: &Pod) -> bool {
    annotation(pod, CONFIG_MIRROR).is_some()
}

/// The hash of the static pod a mirror pod mirrors.
pub fn mirror_hash(pod: &Pod) -> Option<&str> {
    annotation(pod, CONFIG_MIRROR)
}

/// A static pod's hash.
pub fn hash_of(pod: &Pod) -> Option<&str> {
    annotation(pod, CONFIG_HASH)
}

/// The mirror pod of `static_pod` on the node whose uid is `node_uid`: its
/// metadata, spec and the mirror annotation, owned by the Node.
pub fn mirror_pod(static_pod: &Pod, node_uid: &str) -> Pod {
    let m = &static_pod.metadata;
    let mut annotations = m.annotations.clone().unwrap_or_default();
    annotations.insert(CONFIG_MIRROR.into(), hash_of(static_pod).unwrap_or_default().to_string());
    let node = static_pod.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            name: m.name.clone(),
            namespace: m.namespace.clone(),
            labels: m.labels.clone(),
            annotations: Some(annotations),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".into(),
                kind: "Node".into(),
                name: node,
                uid: node_uid.to_string(),
                controller: Some(true),
                ..Default::default()
            }]),
            ..Default::default()
        },
        spec: static_pod.spec.clone(),
        status: None,
    }
}

/// What one read of the manifest directory found.
#[derive(Debug, Clone, Default)]
pub struct Manifests {
    /// The pods, with the file each came from, in file order.
    pub pods: Vec<(PathBuf, Pod)>,
    /// Files (or documents) that could not be used, with why.
    pub errors: Vec<(PathBuf, String)>,
}

/// Reads every manifest in `dir` (dotfiles and subdirectories aside) for `node`.
pub fn read_manifests(dir: &Path, node: &str) -> std::io::Result<Manifests> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter(|e| std::fs::metadata(e.path()).is_ok_and(|m| m.is_file()))
        .map(|e| e.path())
        .collect();
    files.sort();
    let mut out = Manifests::default();
    for path in files {
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            // Removed in between: it is simply gone.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                out.errors.push((path, format!("reading the file: {e}")));
                continue;
            }
        };
        for (index, doc) in rkube_api::manifest::parse_documents(&text).into_iter().enumerate() {
            match doc.map_err(|e| e.message).and_then(|doc| pod_from_manifest(&doc, &path, index, node)) {
                Ok(pod) => out.pods.push((path.clone(), pod)),
                Err(e) => out.errors.push((path.clone(), e)),
            }
        }
    }
    Ok(out)
}

/// What a scan changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Static pods added, changed or removed: sync them.
    pub changed: Vec<ObjectKey>,
    /// Static pods replaced or removed: their old containers must go.
    pub cleanup: Vec<ObjectKey>,
}

#[derive(Debug, Clone)]
struct Entry {
    pod: Arc<Pod>,
    hash: String,
}

#[derive(Debug, Default)]
struct State {
    pods: BTreeMap<ObjectKey, Entry>,
    /// Problems already logged, so each is logged once.
    errors: BTreeMap<PathBuf, Vec<String>>,
    dir_error: Option<String>,
}

/// The static pods of one node, as the last scan found them, with the
/// status the kubelet last computed for each.
#[derive(Debug)]
pub struct StaticPods {
    dir: Option<PathBuf>,
    node: String,
    state: Mutex<State>,
}

impl StaticPods {
    /// The static pods of `node` from `dir` (None: the node has none).
    pub fn new(dir: Option<PathBuf>, node: &str) -> StaticPods {
        StaticPods { dir, node: node.to_string(), state: Mutex::new(State::default()) }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Plain maps, consistent between statements.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The static pod named `key`, with its last computed status.
    pub fn get(&self, key: &ObjectKey) -> Option<Arc<Pod>> {
        self.lock().pods.get(key).map(|e| e.pod.clone())
    }

    /// Every static pod's key.
    pub fn keys(&self) -> Vec<ObjectKey> {
        self.lock().pods.keys().cloned().collect()
    }

    /// Every static pod's uid.
    pub fn uids(&self) -> HashSet<String> {
        self.lock().pods.values().filter_map(|e| e.pod.metadata.uid.clone()).collect()
    }

    /// Whether `pod` is one of these static pods (its current version).
    pub fn owns(&self, pod: &Pod) -> bool {
        let uid = pod.metadata.uid.as_deref();
        uid.is_some() && self.lock().pods.get(&ObjectKey::of(pod)).is_some_and(|e| e.pod.metadata.uid.as_deref() == uid)
    }

    /// Keeps `status` as the static pod's status (if `pod` is still current).
    pub fn set_status(&self, pod: &Pod, status: PodStatus) {
        let mut state = self.lock();
        if let Some(e) = state.pods.get_mut(&ObjectKey::of(pod))
            && e.pod.metadata.uid == pod.metadata.uid
        {
            Arc::make_mut(&mut e.pod).status = Some(status);
        }
    }

    /// Reads the directory and takes what it holds; returns what changed.
    /// A missing directory holds no pods; a directory that cannot be read
    /// keeps the pods as they are.
    pub async fn scan(&self) -> Changes {
        let Some(dir) = self.dir.clone() else { return Changes::default() };
        let node = self.node.clone();
        let read = tokio::task::spawn_blocking({
            let dir = dir.clone();
            move || read_manifests(&dir, &node)
        })
        .await;
        let found = match read {
            Ok(Ok(found)) => Ok(found),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => Err((e.to_string(), true)),
            Ok(Err(e)) => Err((e.to_string(), false)),
            Err(e) => Err((e.to_string(), false)),
        };
        match found {
            Ok(found) => {
                self.lock().dir_error = None;
                self.apply(found, Timestamp::now())
            }
            Err((error, missing)) => {
                let mut state = self.lock();
                if state.dir_error.as_ref() != Some(&error) {
                    if missing {
                        warn!(dir = %dir.display(), "the static pod manifest directory does not exist; no static pods");
                    } else {
                        warn!(dir = %dir.display(), error = %error, "cannot read the static pod manifest directory; keeping the static pods as they are");
                    }
                    state.dir_error = Some(error);
                }
                drop(state);
                if missing { self.apply(Manifests::default(), Timestamp::now()) } else { Changes::default() }
            }
        }
    }

    /// Takes `found` as the static pods, seen at `now`; returns what changed.
    pub fn apply(&self, found: Manifests, now: Timestamp) -> Changes {
        let mut errors: BTreeMap<PathBuf, Vec<String>> = BTreeMap::new();
        for (path, e) in found.errors {
            errors.entry(path).or_default().push(e);
        }
        let mut pods: BTreeMap<ObjectKey, (PathBuf, Pod)> = BTreeMap::new();
        for (path, pod) in found.pods {
            let key = ObjectKey::of(&pod);
            if let Some((first, _)) = pods.get(&key) {
                let e = format!("static pod {key} is already defined in {}; this one is ignored", first.display());
                errors.entry(path).or_default().push(e);
                continue;
            }
            pods.insert(key, (path, pod));
        }

        let mut state = self.lock();
        for (path, problems) in &errors {
            if state.errors.get(path) != Some(problems) {
                for e in problems {
                    warn!(file = %path.display(), error = %e, "skipping a static pod manifest");
                }
            }
        }
        state.errors = errors;

        let mut changes = Changes::default();
        let mut next: BTreeMap<ObjectKey, Entry> = BTreeMap::new();
        for (key, (path, mut pod)) in pods {
            let hash = hash_of(&pod).unwrap_or_default().to_string();
            match state.pods.get(&key) {
                Some(old) if old.hash == hash => {
                    next.insert(key, old.clone());
                    continue;
                }
                Some(_) => {
                    info!(pod = %key, file = %path.display(), hash = %hash, "static pod changed; replacing it");
                    changes.cleanup.push(key.clone());
                }
                None => info!(pod = %key, file = %path.display(), hash = %hash, "static pod added"),
            }
            let seen = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now);
            let seen = serde_json::to_value(seen).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
            pod.metadata.annotations.get_or_insert_with(Default::default).insert(CONFIG_SEEN.into(), seen);
            changes.changed.push(key.clone());
            next.insert(key, Entry { pod: Arc::new(pod), hash });
        }
        for key in state.pods.keys().filter(|k| !next.contains_key(*k)) {
            info!(pod = %key, "static pod removed");
            changes.changed.push(key.clone());
            changes.cleanup.push(key.clone());
        }
        state.pods = next;
        changes
    }

    /// Scans every [`SCAN_PERIOD`] until `shutdown`, handing each change to `on_change`.
    pub async fn run(self: Arc<Self>, on_change: impl Fn(Changes) + Send, shutdown: CancellationToken) {
        if self.dir.is_none() {
            return;
        }
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(SCAN_PERIOD) => {}
            }
            let changes = self.scan().await;
            if changes != Changes::default() {
                on_change(changes);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn manifest(image: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": image}]}})
    }

    fn path() -> PathBuf {
        PathBuf::from("/etc/rkube/manifests/web.yaml")
    }

    #[test]
    fn static_pods_take_the_node_name_a_namespace_and_a_content_hash_uid() {
        let pod = pod_from_manifest(&manifest("nginx:1.25"), &path(), 0, "node-1").unwrap();
        assert_eq!(pod.metadata.name.as_deref(), Some("web-node-1"));
        assert_eq!(pod.metadata.namespace.as_deref(), Some("default"));
        let uid = pod.metadata.uid.clone().unwrap();
        assert_eq!(uid.len(), 32);
        let annotations = pod.metadata.annotations.clone().unwrap();
        assert_eq!(annotations[CONFIG_SOURCE], "file");
        assert_eq!(annotations[CONFIG_HASH], uid);
        let spec = pod.spec.unwrap();
        assert_eq!(spec.node_name.as_deref(), Some("node-1"));
        assert_eq!(spec.restart_policy.as_deref(), Some("Always"), "defaults are applied");
        assert_eq!(spec.containers[0].image_pull_policy.as_deref(), Some("IfNotPresent"));
    }

    #[test]
    fn the_hash_is_stable_and_changes_with_content_path_and_document() {
        let uid = |doc: &Value, path: &Path, index| {
            pod_from_manifest(doc, path, index, "n").unwrap().metadata.uid.unwrap_or_default()
        };
        let a = uid(&manifest("nginx:1.25"), &path(), 0);
        assert_eq!(a, uid(&manifest("nginx:1.25"), &path(), 0));
        assert_ne!(a, uid(&manifest("nginx:1.26"), &path(), 0));
        assert_ne!(a, uid(&manifest("nginx:1.25"), Path::new("/elsewhere.yaml"), 0));
        assert_ne!(a, uid(&manifest("nginx:1.25"), &path(), 1));
        let mut ns = manifest("nginx:1.25");
        ns["metadata"]["namespace"] = "kube-system".into();
        let pod = pod_from_manifest(&ns, &path(), 0, "n").unwrap();
        assert_eq!(pod.metadata.namespace.as_deref(), Some("kube-system"));
    }

    #[test]
    fn bad_manifests_say_what_is_wrong() {
        let no_image = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
            "spec": {"containers": [{"name": "c"}]}});
        assert_eq!(
            pod_from_manifest(&no_image, &path(), 0, "n"),
            Err("Pod \"web-n\" is invalid: spec.containers[0].image: Required value".into())
        );
        let service = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}});
        assert_eq!(
            pod_from_manifest(&service, &path(), 0, "n"),
            Err("document 1: a static pod manifest holds v1 Pods, not \"v1\" \"Service\"".into())
        );
        let nameless = json!({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": []}});
        assert_eq!(
            pod_from_manifest(&nameless, &path(), 0, "n"),
            Err("document 1: metadata.name: Required value".into())
        );
    }

    #[test]
    fn mirror_pods_carry_the_hash_and_the_node_as_owner() {
        let pod = pod_from_manifest(&manifest("nginx:1.25"), &path(), 0, "node-1").unwrap();
        let mirror = mirror_pod(&pod, "node-uid");
        assert!(is_mirror_pod(&mirror) && !is_mirror_pod(&pod));
        assert_eq!(mirror_hash(&mirror), hash_of(&pod));
        assert_eq!(mirror.metadata.uid, None, "the apiserver gives the mirror its own uid");
        assert_eq!(mirror.metadata.labels, pod.metadata.labels);
        let owner = &mirror.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()), ("Node", "node-1", "node-uid"));
        assert_eq!(mirror.spec.unwrap().node_name.as_deref(), Some("node-1"));
    }

    fn found(images: &[(&str, &str)]) -> Manifests {
        let pods = images
            .iter()
            .map(|(file, image)| {
                let path = PathBuf::from(format!("/m/{file}"));
                let pod = pod_from_manifest(&manifest(image), &path, 0, "n").unwrap();
                (path, pod)
            })
            .collect();
        Manifests { pods, errors: vec![] }
    }

    #[test]
    fn scans_report_added_replaced_and_removed_pods() {
        let source = StaticPods::new(Some("/m".into()), "n");
        let key = ObjectKey::new("default", "web-n");
        let t0 = Timestamp::from_second(1_700_000_000).unwrap();
        let added = source.apply(found(&[("web.yaml", "nginx:1")]), t0);
        assert_eq!(added, Changes { changed: vec![key.clone()], cleanup: vec![] });
        let first = source.get(&key).unwrap();
        let seen = first.metadata.annotations.as_ref().unwrap()[CONFIG_SEEN].clone();
        assert!(seen.starts_with("2023-11-14T"), "{seen}");

        let t1 = Timestamp::from_second(1_700_000_100).unwrap();
        assert_eq!(source.apply(found(&[("web.yaml", "nginx:1")]), t1), Changes::default());
        source.set_status(&first, PodStatus { phase: Some("Running".into()), ..Default::default() });
        let same = source.get(&key).unwrap();
        assert_eq!(
            same.metadata.annotations.as_ref().unwrap()[CONFIG_SEEN],
            seen,
            "an unchanged pod keeps its seen time"
        );
        assert_eq!(same.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Running"));
        assert!(source.owns(&same));

        let replaced = source.apply(found(&[("web.yaml", "nginx:2")]), t1);
        assert_eq!(replaced, Changes { changed: vec![key.clone()], cleanup: vec![key.clone()] });
        assert_ne!(source.get(&key).unwrap().metadata.uid, first.metadata.uid);
        assert!(!source.owns(&first), "the old version is no longer this node's");

        let removed = source.apply(Manifests::default(), t1);
        assert_eq!(removed, Changes { changed: vec![key.clone()], cleanup: vec![key] });
        assert!(source.keys().is_empty());
    }

    #[test]
    fn a_second_pod_of_the_same_name_is_ignored() {
        let source = StaticPods::new(Some("/m".into()), "n");
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        source.apply(found(&[("a.yaml", "nginx:1"), ("b.yaml", "nginx:2")]), now);
        let pod = source.get(&ObjectKey::new("default", "web-n")).unwrap();
        assert_eq!(pod.spec.as_ref().unwrap().containers[0].image.as_deref(), Some("nginx:1"));
        assert_eq!(source.lock().errors.len(), 1);
    }

    #[tokio::test]
    async fn a_directory_scan_skips_bad_files_and_dotfiles() {
        let dir = std::env::temp_dir().join(format!("rkubelet-static-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("good.yaml"), serde_json::to_string(&manifest("nginx:1")).unwrap()).unwrap();
        std::fs::write(dir.join("bad.yaml"), "apiVersion: v1\nkind: Pod\nmetadata: {name: [\n").unwrap();
        std::fs::write(dir.join(".hidden.yaml"), "not: [a pod").unwrap();
        let source = StaticPods::new(Some(dir.clone()), "n");
        let changes = source.scan().await;
        assert_eq!(changes.changed, vec![ObjectKey::new("default", "web-n")]);
        let errors = source.lock().errors.clone();
        assert_eq!(errors.keys().cloned().collect::<Vec<_>>(), vec![dir.join("bad.yaml")]);
        std::fs::remove_dir_all(&dir).unwrap();
        let gone = source.scan().await;
        assert_eq!(gone.cleanup, vec![ObjectKey::new("default", "web-n")], "a missing directory holds no pods");
    }
}
