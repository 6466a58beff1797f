//! The Node authorizer (kube-apiserver's `--authorization-mode=Node`,
//! `plugin/pkg/auth/authorizer/node/node_authorizer.go`): what a kubelet,
//! user `system:node:<name>` in group `system:nodes`, may do.
//!
//! Secrets, ConfigMaps, PersistentVolumeClaims, PersistentVolumes and
//! ServiceAccount tokens a node may read (or create) only when a pod bound
//! to it (`spec.nodeName`) refers to them: its volumes (secret, configMap,
//! projected sources, CSI node-publish secrets, claims and the volumes they
//! are bound to, ephemeral volumes' claims), the env and envFrom of each of
//! its containers, its imagePullSecrets and its ServiceAccount. Reads name
//! one object: a get, or a list or watch with a `metadata.name` field
//! selector (as the kubelet's per-object watches are made); a list of them
//! all is not allowed. Its Lease it may read and write in `kube-node-lease`
//! only under its own name (which name a new Lease has NodeRestriction
//! checks). Everything else a node may do the node rules say
//! ([`super::bootstrap::node_rules`], kube's `NodeRules`); the rest it
//! leaves to RBAC: the Node authorizer allows or has no opinion, it never
//! denies on its own.
//!
//! Who refers to what comes from [`Graph`], kept by [`NodeAuthorizer::run`]
//! from the registry's watch of pods and PersistentVolumeClaims (kube's
//! graph, fed by informers of pods, PVs and VolumeAttachments; rkube draws
//! PV edges from the claims' `spec.volumeName`). Decisions about those
//! kinds wait for the first list, so a freshly started apiserver does not
//! turn a kubelet away for want of a graph.

use super::rules::Rule;
use super::{Attributes, Decision, UserInfo};
use crate::registry::{ListOptions, Registry};
use crate::watch::EventType;
use futures::StreamExt;
use k8s_openapi::api::rbac::v1::PolicyRule;
use rkube_api::resource::lookup;
use rkube_api::{ApiError, Result};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

/// The group every node is in (`user.NodesGroup`).
pub const NODES_GROUP: &str = "system:nodes";

/// The prefix of node user names.
const NODE_USER_PREFIX: &str = "system:node:";

/// The namespace of node Leases.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

/// The node `user` is, if it is one (kube's `NodeIdentifier`: a
/// `system:node:<name>` user in `system:nodes`). Some("") for a node user
/// without a name.
pub fn node_name(user: &UserInfo) -> Option<&str> {
    let name = user.name.strip_prefix(NODE_USER_PREFIX)?;
    user.groups.iter().any(|g| g == NODES_GROUP).then_some(name)
}

/// What a pod refers to, as an edge of the graph.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Ref {
    /// A Secret (namespace, name).
    Secret(String, String),
    /// A ConfigMap.
    ConfigMap(String, String),
    /// A PersistentVolumeClaim.
    Claim(String, String),
    /// A ServiceAccount (for its tokens).
    ServiceAccount(String, String),
}

/// The pod's node and everything it refers to.
pub(crate) fn pod_edges(pod: &Value) -> Option<(String, Vec<Ref>)> {
    let node = pod.pointer("/spec/nodeName").and_then(Value::as_str).filter(|n| !n.is_empty())?;
    let ns = pod.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or_default();
    let pod_name = pod.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    let spec = pod.get("spec")?;
    let mut refs = Vec::new();
    let str_at =
        |v: &Value, ptr: &str| v.pointer(ptr).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
    let secret = |name: String| Ref::Secret(ns.to_string(), name);
    let config_map = |name: String| Ref::ConfigMap(ns.to_string(), name);
    let items = |v: &Value, ptr: &str| v.pointer(ptr).and_then(Value::as_array).cloned().unwrap_or_default();
    for v in items(spec, "/volumes") {
        refs.extend(str_at(&v, "/secret/secretName").map(secret));
        refs.extend(str_at(&v, "/configMap/name").map(config_map));
        refs.extend(str_at(&v, "/csi/nodePublishSecretRef/name").map(secret));
        refs.extend(str_at(&v, "/persistentVolumeClaim/claimName").map(|c| Ref::Claim(ns.to_string(), c)));
        if v.get("ephemeral").is_some_and(|e| !e.is_null())
            && let Some(vol) = v.get("name").and_then(Value::as_str)
        {
            refs.push(Ref::Claim(ns.to_string(), format!("{pod_name}-{vol}")));
        }
        for source in items(&v, "/projected/sources") {
            refs.extend(str_at(&source, "/secret/name").map(secret));
            refs.extend(str_at(&source, "/configMap/name").map(config_map));
        }
    }
    for list in ["/containers", "/initContainers", "/ephemeralContainers"] {
        for c in items(spec, list) {
            for e in items(&c, "/env") {
                refs.extend(str_at(&e, "/valueFrom/secretKeyRef/name").map(secret));
                refs.extend(str_at(&e, "/valueFrom/configMapKeyRef/name").map(config_map));
            }
            for e in items(&c, "/envFrom") {
                refs.extend(str_at(&e, "/secretRef/name").map(secret));
                refs.extend(str_at(&e, "/configMapRef/name").map(config_map));
            }
        }
    }
    for s in items(spec, "/imagePullSecrets") {
        refs.extend(str_at(&s, "/name").map(secret));
    }
    let account = str_at(spec, "/serviceAccountName").unwrap_or_else(|| "default".into());
    refs.push(Ref::ServiceAccount(ns.to_string(), account));
    refs.sort();
    refs.dedup();
    Some((node.to_string(), refs))
}

/// Which node refers to which object, through its pods (kube's `Graph`).
#[derive(Debug, Default)]
pub struct Graph {
    /// Each pod bound to a node: (namespace, name) → node and references.
    pods: HashMap<(String, String), (String, Vec<Ref>)>,
    /// Node → referenced object → how many of its pods refer to it.
    nodes: HashMap<String, HashMap<Ref, usize>>,
    /// Each claim bound to a volume: (namespace, name) → PersistentVolume.
    claims: HashMap<(String, String), String>,
}

impl Graph {
    /// Records pod `namespace/name` as `pod` (None: deleted).
    pub fn set_pod(&mut self, namespace: &str, name: &str, pod: Option<&Value>) {
        let key = (namespace.to_string(), name.to_string());
        if let Some((node, refs)) = self.pods.remove(&key)
            && let Some(counts) = self.nodes.get_mut(&node)
        {
            for r in refs {
                if let Some(n) = counts.get_mut(&r) {
                    *n -= 1;
                    if *n == 0 {
                        counts.remove(&r);
                    }
                }
            }
            if counts.is_empty() {
                self.nodes.remove(&node);
            }
        }
        if let Some((node, refs)) = pod.and_then(pod_edges) {
            let counts = self.nodes.entry(node.clone()).or_default();
            for r in &refs {
                *counts.entry(r.clone()).or_default() += 1;
            }
            self.pods.insert(key, (node, refs));
        }
    }

    /// Records claim `namespace/name` as `claim` (None: deleted).
    pub fn set_claim(&mut self, namespace: &str, name: &str, claim: Option<&Value>) {
        let key = (namespace.to_string(), name.to_string());
        match claim.and_then(|c| c.pointer("/spec/volumeName")).and_then(Value::as_str).filter(|v| !v.is_empty()) {
            Some(volume) => self.claims.insert(key, volume.to_string()),
            None => self.claims.remove(&key),
        };
    }

    /// Whether a pod bound to `node` refers to `r`.
    pub fn refers(&self, node: &str, r: &Ref) -> bool {
        self.nodes.get(node).is_some_and(|refs| refs.contains_key(r))
    }

    /// Whether a pod bound to `node` uses a claim bound to volume `pv`.
    pub fn refers_to_volume(&self, node: &str, pv: &str) -> bool {
        self.nodes.get(node).into_iter().flatten().any(|(r, _)| match r {
            Ref::Claim(ns, name) => self.claims.get(&(ns.clone(), name.clone())).is_some_and(|v| v == pv),
            _ => false,
        })
    }

    /// Whether a path leads from `node` to the object `attrs` names
    /// (kube's `hasPathFrom`).
    fn has_path(&self, node: &str, attrs: &Attributes<'_>) -> bool {
        let (ns, name) = (attrs.namespace.to_string(), attrs.name.to_string());
        match attrs.resource {
            "secrets" => self.refers(node, &Ref::Secret(ns, name)),
            "configmaps" => self.refers(node, &Ref::ConfigMap(ns, name)),
            "persistentvolumeclaims" => self.refers(node, &Ref::Claim(ns, name)),
            "serviceaccounts" => self.refers(node, &Ref::ServiceAccount(ns, name)),
            "persistentvolumes" => self.refers_to_volume(node, attrs.name),
            _ => false,
        }
    }
}

/// The Node authorizer of one apiserver.
#[derive(Debug)]
pub struct NodeAuthorizer {
    graph: RwLock<Graph>,
    rules: Vec<Rule>,
    /// True once the first list of pods and claims is in.
    synced: watch::Sender<bool>,
}

impl Default for NodeAuthorizer {
    fn default() -> Self {
        let rules = super::bootstrap::node_rules()
            .into_iter()
            .map(|v| {
                let rule: PolicyRule = serde_json::from_value(v).expect("the node rules are valid PolicyRules");
                Rule::from(&rule)
            })
            .collect();
        NodeAuthorizer { graph: Default::default(), rules, synced: watch::Sender::new(false) }
    }
}

/// "No opinion" with kube's reason.
fn no_opinion(reason: impl Into<String>) -> Decision {
    Decision::Deny { reason: reason.into() }
}

fn allow() -> Decision {
    Decision::Allow { reason: String::new() }
}

impl NodeAuthorizer {
    /// Waits until the first list of pods and claims is in.
    pub async fn wait_synced(&self) {
        let mut rx = self.synced.subscribe();
        // The sender lives as long as self, so this only ends when synced.
        let _ = rx.wait_for(|synced| *synced).await;
    }

    fn graph(&self) -> std::sync::RwLockReadGuard<'_, Graph> {
        self.graph.read().unwrap_or_else(|p| p.into_inner())
    }

    fn graph_mut(&self) -> std::sync::RwLockWriteGuard<'_, Graph> {
        self.graph.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Decides on a request of `node` (kube's `NodeAuthorizer.Authorize`):
    /// Allow, or Deny meaning "no opinion" (RBAC decides next).
    pub async fn authorize(&self, node: &str, attrs: &Attributes<'_>) -> Decision {
        if node.is_empty() {
            return no_opinion("unknown node");
        }
        if attrs.resource_request {
            match (attrs.api_group, attrs.resource) {
                ("", "secrets" | "configmaps") => return self.read_namespaced(node, attrs).await,
                ("", "persistentvolumeclaims") if attrs.subresource == "status" => {
                    return self.status_update(node, attrs).await;
                }
                ("", "persistentvolumeclaims" | "persistentvolumes") => return self.get(node, attrs).await,
                ("", "serviceaccounts") => return self.create_token(node, attrs).await,
                ("coordination.k8s.io", "leases") => return lease(node, attrs),
                _ => {}
            }
        }
        if self.rules.iter().any(|r| r.allows(attrs)) {
            return allow();
        }
        no_opinion("")
    }

    /// Kube's `authorizeReadNamespacedObject`.
    async fn read_namespaced(&self, node: &str, attrs: &Attributes<'_>) -> Decision {
        if !matches!(attrs.verb, "get" | "list" | "watch") {
            return no_opinion("can only read resources of this type");
        }
        if !attrs.subresource.is_empty() {
            return no_opinion("cannot read subresource");
        }
        if attrs.namespace.is_empty() {
            return no_opinion("can only read namespaced object of this type");
        }
        self.related(node, attrs).await
    }

    /// Kube's `authorizeGet`.
    async fn get(&self, node: &str, attrs: &Attributes<'_>) -> Decision {
        if attrs.verb != "get" {
            return no_opinion("can only get individual resources of this type");
        }
        if !attrs.subresource.is_empty() {
            return no_opinion("cannot get subresource");
        }
        self.related(node, attrs).await
    }

    /// Kube's `authorizeStatusUpdate`.
    async fn status_update(&self, node: &str, attrs: &Attributes<'_>) -> Decision {
        if !matches!(attrs.verb, "update" | "patch") {
            return no_opinion("can only get/update/patch this type");
        }
        self.related(node, attrs).await
    }

    /// Kube's `authorizeCreateToken`.
    async fn create_token(&self, node: &str, attrs: &Attributes<'_>) -> Decision {
        if attrs.verb != "create" {
            return no_opinion("can only create tokens for individual service accounts");
        }
        if attrs.subresource != "token" {
            return no_opinion("can only create token subresource of serviceaccount");
        }
        self.related(node, attrs).await
    }

    /// Kube's `authorize`: allowed when a pod bound to `node` leads to the object.
    async fn related(&self, node: &str, attrs: &Attributes<'_>) -> Decision {
        if attrs.name.is_empty() {
            return no_opinion("No Object name found");
        }
        if !*self.synced.borrow() {
            self.wait_synced().await;
        }
        if self.graph().has_path(node, attrs) {
            return allow();
        }
        no_opinion(format!("no relationship found between node '{node}' and this object"))
    }

    /// Lists pods and claims, then follows their watch, until `shutdown`.
    pub async fn run(self: std::sync::Arc<Self>, registry: std::sync::Arc<Registry>, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            let result = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = self.list_and_watch(&registry) => r,
            };
            if let Err(e) = result {
                debug!(error = %e.message, "node authorizer watch ended; listing again");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }

    async fn list_and_watch(&self, registry: &Registry) -> Result<()> {
        let mut fresh = Graph::default();
        let mut streams = Vec::new();
        for plural in ["pods", "persistentvolumeclaims"] {
            let info = lookup(plural).expect("pods and claims are in the resource table");
            let list = registry.list(info, "", &ListOptions::default()).await?;
            for o in &list.items {
                let v: Value = serde_json::from_slice(&o.json).unwrap_or_default();
                apply(&mut fresh, plural, &o.namespace, &o.name, Some(&v));
            }
            let opts = ListOptions { resource_version: list.rv.to_string(), ..Default::default() };
            let stream = registry.watch(info, "", &opts).await?;
            streams.push(stream.map(move |ev| (plural, ev)).boxed());
        }
        info!(pods = fresh.pods.len(), claims = fresh.claims.len(), "node authorizer graph loaded");
        *self.graph_mut() = fresh;
        self.synced.send_replace(true);
        let mut events = futures::stream::select_all(streams);
        while let Some((plural, ev)) = events.next().await {
            let ev = ev?;
            let v: Option<Value> =
                (ev.kind != EventType::Deleted).then(|| serde_json::from_slice(&ev.json).unwrap_or_default());
            apply(&mut self.graph_mut(), plural, &ev.namespace, &ev.name, v.as_ref());
        }
        Err(ApiError::unavailable("the node authorizer's watch ended"))
    }
}

fn apply(graph: &mut Graph, plural: &str, namespace: &str, name: &str, obj: Option<&Value>) {
    if plural == "pods" {
        graph.set_pod(namespace, name, obj);
    } else {
        graph.set_claim(namespace, name, obj);
    }
}

/// Kube's `authorizeLease`: a node's own Lease in `kube-node-lease` (a new
/// one's name NodeRestriction checks).
fn lease(node: &str, attrs: &Attributes<'_>) -> Decision {
    if !matches!(attrs.verb, "get" | "create" | "update" | "patch" | "delete") {
        return no_opinion("can only get, create, update, patch, or delete a node lease");
    }
    if attrs.namespace != NODE_LEASE_NAMESPACE {
        return no_opinion(format!("can only access leases in the {NODE_LEASE_NAMESPACE} namespace"));
    }
    if attrs.verb != "create" && attrs.name != node {
        return no_opinion("can only access node lease with the same name as the requesting node");
    }
    allow()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node_user(name: &str) -> UserInfo {
        UserInfo { name: format!("system:node:{name}"), uid: String::new(), groups: vec![NODES_GROUP.into()] }
    }

    fn pod(ns: &str, name: &str, node: &str) -> Value {
        json!({"metadata": {"namespace": ns, "name": name}, "spec": {
            "nodeName": node,
            "serviceAccountName": "app",
            "volumes": [
                {"name": "s", "secret": {"secretName": "vol-secret"}},
                {"name": "c", "configMap": {"name": "vol-cm"}},
                {"name": "p", "projected": {"sources": [{"secret": {"name": "proj-secret"}}, {"configMap": {"name": "proj-cm"}}]}},
                {"name": "d", "persistentVolumeClaim": {"claimName": "data"}},
                {"name": "e", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}}
            ],
            "initContainers": [{"name": "i", "envFrom": [{"secretRef": {"name": "init-secret"}}]}],
            "containers": [{"name": "c",
                "env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "env-cm", "key": "k"}}},
                        {"name": "B", "valueFrom": {"secretKeyRef": {"name": "env-secret", "key": "k"}}}],
                "envFrom": [{"configMapRef": {"name": "from-cm"}}]}],
            "imagePullSecrets": [{"name": "pull"}]
        }})
    }

    fn secret(ns: &str, name: &str) -> Ref {
        Ref::Secret(ns.into(), name.into())
    }

    #[test]
    fn node_identity_needs_the_prefix_and_the_group() {
        assert_eq!(node_name(&node_user("n1")), Some("n1"));
        let no_group = UserInfo { name: "system:node:n1".into(), ..Default::default() };
        assert_eq!(node_name(&no_group), None);
        let other = UserInfo { name: "jane".into(), groups: vec![NODES_GROUP.into()], ..Default::default() };
        assert_eq!(node_name(&other), None);
    }

    #[test]
    fn a_pod_links_its_node_to_everything_it_refers_to() {
        let mut g = Graph::default();
        g.set_pod("a", "web", Some(&pod("a", "web", "n1")));
        for name in ["vol-secret", "proj-secret", "init-secret", "env-secret", "pull"] {
            assert!(g.refers("n1", &secret("a", name)), "{name}");
            assert!(!g.refers("n2", &secret("a", name)), "{name}");
            assert!(!g.refers("n1", &secret("b", name)), "other namespace: {name}");
        }
        for name in ["vol-cm", "proj-cm", "env-cm", "from-cm"] {
            assert!(g.refers("n1", &Ref::ConfigMap("a".into(), name.into())), "{name}");
        }
        assert!(g.refers("n1", &Ref::Claim("a".into(), "data".into())));
        assert!(g.refers("n1", &Ref::Claim("a".into(), "web-e".into())), "ephemeral volume's claim");
        assert!(g.refers("n1", &Ref::ServiceAccount("a".into(), "app".into())));
        assert!(!g.refers("n1", &secret("a", "unrelated")));
    }

    #[test]
    fn unbound_pods_link_nothing_and_deletes_and_moves_unlink() {
        let mut g = Graph::default();
        g.set_pod("a", "pending", Some(&pod("a", "pending", "")));
        assert!(g.nodes.is_empty());
        g.set_pod("a", "web", Some(&pod("a", "web", "n1")));
        g.set_pod("a", "db", Some(&pod("a", "db", "n1")));
        g.set_pod("a", "web", None);
        assert!(g.refers("n1", &secret("a", "vol-secret")), "db still uses it");
        g.set_pod("a", "db", Some(&pod("a", "db", "n2")));
        assert!(!g.refers("n1", &secret("a", "vol-secret")));
        assert!(g.refers("n2", &secret("a", "vol-secret")));
        g.set_pod("a", "db", None);
        assert!(g.nodes.is_empty() && g.pods.is_empty());
    }

    #[test]
    fn volumes_are_reached_through_bound_claims() {
        let mut g = Graph::default();
        g.set_pod("a", "web", Some(&pod("a", "web", "n1")));
        assert!(!g.refers_to_volume("n1", "pv1"));
        g.set_claim("a", "data", Some(&json!({"spec": {"volumeName": "pv1"}})));
        assert!(g.refers_to_volume("n1", "pv1"));
        assert!(!g.refers_to_volume("n2", "pv1"));
        assert!(!g.refers_to_volume("n1", "pv2"));
        g.set_claim("a", "data", None);
        assert!(!g.refers_to_volume("n1", "pv1"));
    }

    #[tokio::test]
    async fn decisions_follow_the_graph_and_the_node_rules() {
        let authz = NodeAuthorizer::default();
        authz.graph_mut().set_pod("a", "web", Some(&pod("a", "web", "n1")));
        authz.synced.send_replace(true);
        let n1 = node_user("n1");
        let (authz, n1) = (&authz, &n1);
        let decide =
            |verb: &'static str, group: &'static str, resource: &'static str, ns: &'static str, name: &'static str| {
                let attrs = Attributes::resource(n1, verb, group, resource, ns, name);
                async move { authz.authorize("n1", &attrs).await }
            };
        assert!(decide("get", "", "secrets", "a", "vol-secret").await.allowed());
        assert!(decide("watch", "", "configmaps", "a", "env-cm").await.allowed(), "a per-object watch");
        assert_eq!(
            decide("get", "", "secrets", "a", "other").await.reason(),
            "no relationship found between node 'n1' and this object"
        );
        assert_eq!(decide("list", "", "secrets", "a", "").await.reason(), "No Object name found");
        assert_eq!(
            decide("list", "", "secrets", "", "").await.reason(),
            "can only read namespaced object of this type"
        );
        assert_eq!(
            decide("update", "", "secrets", "a", "vol-secret").await.reason(),
            "can only read resources of this type"
        );
        assert!(decide("get", "", "persistentvolumeclaims", "a", "data").await.allowed());
        assert!(!decide("list", "", "persistentvolumeclaims", "a", "data").await.allowed());
        assert!(decide("get", "coordination.k8s.io", "leases", "kube-node-lease", "n1").await.allowed());
        assert!(decide("create", "coordination.k8s.io", "leases", "kube-node-lease", "").await.allowed());
        assert!(!decide("update", "coordination.k8s.io", "leases", "kube-node-lease", "n2").await.allowed());
        assert!(!decide("get", "coordination.k8s.io", "leases", "default", "n1").await.allowed());
        // The node rules: pods, nodes, events, services.
        assert!(decide("watch", "", "pods", "", "").await.allowed());
        assert!(decide("create", "", "events", "a", "").await.allowed());
        assert!(decide("list", "", "services", "", "").await.allowed());
        assert!(!decide("delete", "", "nodes", "", "n1").await.allowed());
        assert!(!decide("list", "", "secrets", "", "").await.allowed());
    }
}
