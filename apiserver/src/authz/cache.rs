//! The RBAC authorizer and the policy it decides on: every Role,
//! ClusterRole, RoleBinding and ClusterRoleBinding, followed from the
//! registry's watch and indexed by subject.
//!
//! [`Authorizer::run`] lists the four kinds, builds a [`PolicyIndex`],
//! then applies each watch event and rebuilds the index (RBAC objects
//! change rarely; a rebuild is linear in their number). Until a list made
//! after the bootstrap policy was written ([`Authorizer::policy_bootstrapped`])
//! is in, [`Authorizer::authorize`] waits: an apiserver that has just
//! started must not deny a request because its cache is still empty or
//! lacks the default bindings. After a watch error it lists again;
//! decisions meanwhile use the last index.
//!
//! The index maps each subject (user, group, service account) to what its
//! bindings grant: the bound role's rules, already resolved, and the
//! binding's description. A decision looks up the user's name, each of its
//! groups and, for a service account user, the account, first among
//! ClusterRoleBindings and then among RoleBindings of the request's
//! namespace, and scans those rules.

use super::node::{self, NodeAuthorizer};
use super::rules::Rule;
use super::{Attributes, Decision, SYSTEM_MASTERS, UserInfo};
use crate::registry::{ListOptions, Registry};
use crate::watch::EventType;
use futures::StreamExt;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject};
use rkube_api::resource::lookup;
use rkube_api::{ApiError, ResourceInfo, Result};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

/// The prefix of service account user names (`system:serviceaccount:<ns>:<name>`).
const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";

/// Who a binding grants to, as the index keys it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum SubjectKey {
    User(String),
    Group(String),
    /// Namespace and name.
    ServiceAccount(String, String),
}

/// What one binding grants one subject.
#[derive(Debug, Clone)]
struct Grant {
    /// The bound role's rules, or why they cannot be found.
    rules: std::result::Result<Arc<[Rule]>, String>,
    /// `ClusterRoleBinding "x" of ClusterRole "y" to User "z"`.
    source: Arc<str>,
}

/// The RBAC objects, as the watch delivered them.
#[derive(Debug, Default)]
struct Objects {
    cluster_roles: BTreeMap<String, ClusterRole>,
    roles: BTreeMap<(String, String), Role>,
    cluster_role_bindings: BTreeMap<String, ClusterRoleBinding>,
    role_bindings: BTreeMap<(String, String), RoleBinding>,
}

/// The policy, indexed for decisions.
#[derive(Debug, Default)]
pub struct PolicyIndex {
    /// From ClusterRoleBindings.
    cluster: HashMap<SubjectKey, Vec<Grant>>,
    /// From RoleBindings: namespace → subject → grants.
    namespaced: HashMap<String, HashMap<SubjectKey, Vec<Grant>>>,
}

fn rules_of(rules: &Option<Vec<PolicyRule>>) -> Arc<[Rule]> {
    rules.iter().flatten().map(Rule::from).collect()
}

/// Kubernetes' `describeSubject`.
fn describe_subject(s: &Subject, binding_namespace: &str) -> String {
    match s.kind.as_str() {
        "ServiceAccount" => {
            let ns = s.namespace.as_deref().filter(|n| !n.is_empty()).unwrap_or(binding_namespace);
            format!("{} {:?}", s.kind, format!("{}/{ns}", s.name))
        }
        _ => format!("{} {:?}", s.kind, s.name),
    }
}

/// The index key of a subject of a binding in `namespace` ("" for a
/// ClusterRoleBinding): a ServiceAccount without a namespace is one of the
/// binding's namespace.
fn subject_key(s: &Subject, namespace: &str) -> Option<SubjectKey> {
    match s.kind.as_str() {
        "User" => Some(SubjectKey::User(s.name.clone())),
        "Group" => Some(SubjectKey::Group(s.name.clone())),
        "ServiceAccount" => {
            let ns = s.namespace.as_deref().filter(|n| !n.is_empty()).unwrap_or(namespace);
            (!ns.is_empty()).then(|| SubjectKey::ServiceAccount(ns.to_string(), s.name.clone()))
        }
        _ => None,
    }
}

impl Objects {
    /// The rules a binding in `namespace` ("" for cluster) refers to.
    fn resolve(&self, role_ref: &RoleRef, namespace: &str) -> std::result::Result<Arc<[Rule]>, String> {
        match role_ref.kind.as_str() {
            "ClusterRole" => self
                .cluster_roles
                .get(&role_ref.name)
                .map(|r| rules_of(&r.rules))
                .ok_or_else(|| format!("clusterrole.rbac.authorization.k8s.io {:?} not found", role_ref.name)),
            "Role" if !namespace.is_empty() => self
                .roles
                .get(&(namespace.to_string(), role_ref.name.clone()))
                .map(|r| rules_of(&r.rules))
                .ok_or_else(|| format!("role.rbac.authorization.k8s.io {:?} not found", role_ref.name)),
            other => Err(format!("unsupported role reference kind: {other:?}")),
        }
    }

    fn index(&self) -> PolicyIndex {
        let mut index = PolicyIndex::default();
        for (name, b) in &self.cluster_role_bindings {
            let rules = self.resolve(&b.role_ref, "");
            for s in b.subjects.iter().flatten() {
                let Some(key) = subject_key(s, "") else { continue };
                let source = format!(
                    "ClusterRoleBinding {name:?} of {} {:?} to {}",
                    b.role_ref.kind,
                    b.role_ref.name,
                    describe_subject(s, "")
                );
                index.cluster.entry(key).or_default().push(Grant { rules: rules.clone(), source: source.into() });
            }
        }
        for ((ns, name), b) in &self.role_bindings {
            let rules = self.resolve(&b.role_ref, ns);
            let by_subject = index.namespaced.entry(ns.clone()).or_default();
            for s in b.subjects.iter().flatten() {
                let Some(key) = subject_key(s, ns) else { continue };
                let source = format!(
                    "RoleBinding {:?} of {} {:?} to {}",
                    format!("{name}/{ns}"),
                    b.role_ref.kind,
                    b.role_ref.name,
                    describe_subject(s, ns)
                );
                by_subject.entry(key).or_default().push(Grant { rules: rules.clone(), source: source.into() });
            }
        }
        index
    }

    /// Applies one watch event of `kind`; false if the object does not decode.
    fn apply(&mut self, kind: &str, deleted: bool, namespace: &str, name: &str, json: &[u8]) -> bool {
        let key = (namespace.to_string(), name.to_string());
        macro_rules! put {
            ($map:expr, $key:expr) => {{
                if deleted {
                    $map.remove(&$key);
                    true
                } else {
                    match serde_json::from_slice(json) {
                        Ok(obj) => {
                            $map.insert($key, obj);
                            true
                        }
                        Err(_) => false,
                    }
                }
            }};
        }
        match kind {
            "ClusterRole" => put!(self.cluster_roles, name.to_string()),
            "Role" => put!(self.roles, key),
            "ClusterRoleBinding" => put!(self.cluster_role_bindings, name.to_string()),
            "RoleBinding" => put!(self.role_bindings, key),
            _ => false,
        }
    }
}

impl PolicyIndex {
    /// The index keys `user` is found under: its name, its groups and, for
    /// a service account user, the account.
    fn keys(user: &UserInfo) -> Vec<SubjectKey> {
        let mut keys = Vec::with_capacity(user.groups.len() + 2);
        keys.push(SubjectKey::User(user.name.clone()));
        keys.extend(user.groups.iter().map(|g| SubjectKey::Group(g.clone())));
        if let Some((ns, name)) = user.name.strip_prefix(SERVICE_ACCOUNT_PREFIX).and_then(|r| r.split_once(':'))
            && !ns.is_empty()
            && !name.is_empty()
            && !name.contains(':')
        {
            keys.push(SubjectKey::ServiceAccount(ns.to_string(), name.to_string()));
        }
        keys
    }

    /// Decides on `attrs` as Kubernetes' `RBACAuthorizer.Authorize`.
    pub fn decide(&self, attrs: &Attributes<'_>) -> Decision {
        let keys = Self::keys(attrs.user);
        let mut errors: Vec<&str> = Vec::new();
        let namespaced = (!attrs.namespace.is_empty()).then(|| self.namespaced.get(attrs.namespace)).flatten();
        let scopes = std::iter::once(&self.cluster).chain(namespaced);
        for scope in scopes {
            for key in &keys {
                for grant in scope.get(key).into_iter().flatten() {
                    match &grant.rules {
                        Ok(rules) => {
                            if rules.iter().any(|r| r.allows(attrs)) {
                                return Decision::Allow { reason: format!("RBAC: allowed by {}", grant.source) };
                            }
                        }
                        Err(e) => {
                            if !errors.contains(&e.as_str()) {
                                errors.push(e);
                            }
                        }
                    }
                }
            }
        }
        let reason = match errors.as_slice() {
            [] => String::new(),
            [one] => format!("RBAC: {one}"),
            many => format!("RBAC: [{}]", many.join(", ")),
        };
        Decision::Deny { reason }
    }
}

/// The RBAC authorizer of one apiserver.
#[derive(Debug)]
pub struct Authorizer {
    /// The Node authorizer, asked first (`--authorization-mode=Node,RBAC`).
    node: Arc<NodeAuthorizer>,
    objects: std::sync::Mutex<Objects>,
    index: RwLock<Arc<PolicyIndex>>,
    /// True once the bootstrap policy is in etcd ([`Authorizer::policy_bootstrapped`]).
    bootstrapped: AtomicBool,
    /// Wakes the watch loop to list again when the bootstrap policy is in.
    relist: Notify,
    /// True once a list made after the bootstrap is in.
    synced: watch::Sender<bool>,
}

impl Default for Authorizer {
    fn default() -> Self {
        Authorizer {
            node: Default::default(),
            objects: Default::default(),
            index: Default::default(),
            bootstrapped: AtomicBool::new(false),
            relist: Notify::new(),
            synced: watch::Sender::new(false),
        }
    }
}

/// The four RBAC resources.
fn rbac_resources() -> [&'static ResourceInfo; 4] {
    ["clusterroles", "roles", "clusterrolebindings", "rolebindings"]
        .map(|r| lookup(r).expect("the RBAC kinds are in the resource table"))
}

impl Authorizer {
    /// An authorizer with no policy yet; [`Authorizer::run`] fills it.
    pub fn new() -> Arc<Self> {
        Arc::new(Authorizer::default())
    }

    /// Says that the bootstrap policy is in etcd: the authorizer lists
    /// again, and decides from that list on. Until then decisions wait, so
    /// none is made from a cache that lacks the default bindings.
    pub fn policy_bootstrapped(&self) {
        if !self.bootstrapped.swap(true, Ordering::SeqCst) {
            self.relist.notify_one();
        }
    }

    /// Whether a list of the RBAC objects made after the bootstrap is in.
    pub fn is_synced(&self) -> bool {
        *self.synced.borrow()
    }

    /// Waits until the first list of the RBAC objects is in.
    pub async fn wait_synced(&self) {
        let mut rx = self.synced.subscribe();
        // The sender lives as long as self, so this only ends when synced.
        let _ = rx.wait_for(|synced| *synced).await;
    }

    /// The current index (cheap: one reference count).
    pub fn index(&self) -> Arc<PolicyIndex> {
        self.index.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The Node authorizer (its graph follows the registry once started).
    pub fn node(&self) -> &Arc<NodeAuthorizer> {
        &self.node
    }

    /// Decides whether the request `attrs` describes is allowed, waiting
    /// for the first list of the policy if it is not in yet: the Node
    /// authorizer first for node users, then RBAC (kube's union
    /// authorizer: the first to allow wins; the reasons of those without
    /// an opinion are joined).
    pub async fn authorize(&self, attrs: &Attributes<'_>) -> Decision {
        // kube-apiserver puts a system:masters authorizer before RBAC; the
        // cluster-admin ClusterRoleBinding to the group grants the same.
        if attrs.user.groups.iter().any(|g| g == SYSTEM_MASTERS) {
            return Decision::Allow { reason: String::new() };
        }
        let mut reasons = Vec::new();
        if let Some(name) = node::node_name(attrs.user) {
            match self.node.authorize(name, attrs).await {
                allowed @ Decision::Allow { .. } => return allowed,
                Decision::Deny { reason } => reasons.push(reason),
            }
        }
        if !self.is_synced() {
            self.wait_synced().await;
        }
        match self.index().decide(attrs) {
            allowed @ Decision::Allow { .. } => allowed,
            Decision::Deny { reason } => {
                reasons.push(reason);
                reasons.retain(|r| !r.is_empty());
                Decision::Deny { reason: reasons.join("\n") }
            }
        }
    }

    fn objects(&self) -> std::sync::MutexGuard<'_, Objects> {
        self.objects.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn reindex(&self, objects: &Objects) {
        let index = Arc::new(objects.index());
        *self.index.write().unwrap_or_else(|p| p.into_inner()) = index;
    }

    /// Lists the RBAC objects, then follows their watch, until `shutdown`.
    pub async fn run(self: Arc<Self>, registry: Arc<Registry>, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            let result = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = self.list_and_watch(&registry) => r,
            };
            match result {
                // Asked to list again: the bootstrap policy is in.
                Ok(()) => continue,
                Err(e) => debug!(error = %e.message, "RBAC policy watch ended; listing again"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }

    async fn list_and_watch(&self, registry: &Registry) -> Result<()> {
        // A list that starts after the bootstrap holds the default policy.
        let complete = self.bootstrapped.load(Ordering::SeqCst);
        let mut fresh = Objects::default();
        let mut streams = Vec::new();
        for info in rbac_resources() {
            let list = registry.list(info, "", &ListOptions::default()).await?;
            for o in &list.items {
                fresh.apply(info.kind, false, &o.namespace, &o.name, &o.json);
            }
            let opts = ListOptions { resource_version: list.rv.to_string(), ..Default::default() };
            let stream = registry.watch(info, "", &opts).await?;
            streams.push(stream.map(move |ev| (info.kind, ev)).boxed());
        }
        {
            let mut objects = self.objects();
            *objects = fresh;
            self.reindex(&objects);
            info!(
                cluster_roles = objects.cluster_roles.len(),
                roles = objects.roles.len(),
                cluster_role_bindings = objects.cluster_role_bindings.len(),
                role_bindings = objects.role_bindings.len(),
                "RBAC policy loaded"
            );
        }
        if complete {
            self.synced.send_replace(true);
        }
        let mut events = futures::stream::select_all(streams);
        loop {
            let next = tokio::select! {
                next = events.next() => next,
                () = self.relist.notified(), if !complete => return Ok(()),
            };
            let Some((kind, ev)) = next else { break };
            let ev = ev?;
            let deleted = ev.kind == EventType::Deleted;
            let mut objects = self.objects();
            if objects.apply(kind, deleted, &ev.namespace, &ev.name, &ev.json) {
                self.reindex(&objects);
            }
        }
        Err(ApiError::unavailable("the RBAC watch ended"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn objects(list: &[serde_json::Value]) -> Objects {
        let mut o = Objects::default();
        for v in list {
            let kind = v["kind"].as_str().unwrap();
            let ns = v["metadata"]["namespace"].as_str().unwrap_or_default();
            let name = v["metadata"]["name"].as_str().unwrap();
            assert!(o.apply(kind, false, ns, name, &serde_json::to_vec(v).unwrap()), "{v}");
        }
        o
    }

    fn user(name: &str, groups: &[&str]) -> UserInfo {
        UserInfo { name: name.into(), uid: String::new(), groups: groups.iter().map(|g| g.to_string()).collect() }
    }

    fn policy() -> PolicyIndex {
        objects(&[
            json!({"kind": "ClusterRole", "metadata": {"name": "view"},
                   "rules": [{"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["pods"]}]}),
            json!({"kind": "ClusterRole", "metadata": {"name": "nodes"},
                   "rules": [{"verbs": ["list"], "apiGroups": [""], "resources": ["nodes"]},
                             {"verbs": ["get"], "nonResourceURLs": ["/metrics"]}]}),
            json!({"kind": "Role", "metadata": {"name": "secrets", "namespace": "a"},
                   "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["db"]}]}),
            json!({"kind": "RoleBinding", "metadata": {"name": "jane-view", "namespace": "a"},
                   "roleRef": {"kind": "ClusterRole", "name": "view", "apiGroup": "rbac.authorization.k8s.io"},
                   "subjects": [{"kind": "User", "name": "jane", "apiGroup": "rbac.authorization.k8s.io"}]}),
            json!({"kind": "RoleBinding", "metadata": {"name": "sa-secrets", "namespace": "a"},
                   "roleRef": {"kind": "Role", "name": "secrets", "apiGroup": "rbac.authorization.k8s.io"},
                   "subjects": [{"kind": "ServiceAccount", "name": "app"}]}),
            json!({"kind": "ClusterRoleBinding", "metadata": {"name": "ops-nodes"},
                   "roleRef": {"kind": "ClusterRole", "name": "nodes", "apiGroup": "rbac.authorization.k8s.io"},
                   "subjects": [{"kind": "Group", "name": "ops", "apiGroup": "rbac.authorization.k8s.io"}]}),
            json!({"kind": "ClusterRoleBinding", "metadata": {"name": "dangling"},
                   "roleRef": {"kind": "ClusterRole", "name": "gone", "apiGroup": "rbac.authorization.k8s.io"},
                   "subjects": [{"kind": "User", "name": "ghost", "apiGroup": "rbac.authorization.k8s.io"}]}),
        ])
        .index()
    }

    #[test]
    fn bindings_grant_in_their_scope_to_their_subjects() {
        let index = policy();
        let jane = user("jane", &["system:authenticated"]);
        let sa = user("system:serviceaccount:a:app", &["system:serviceaccounts"]);
        let other_sa = user("system:serviceaccount:b:app", &[]);
        let ops = user("bob", &["ops"]);
        let ghost = user("ghost", &[]);
        // (user, verb, resource, namespace, name, allowed)
        let cases: &[(&UserInfo, &str, &str, &str, &str, bool)] = &[
            (&jane, "list", "pods", "a", "", true),
            (&jane, "get", "pods", "a", "web", true),
            (&jane, "list", "pods", "b", "", false),
            (&jane, "list", "pods", "", "", false),
            (&jane, "delete", "pods", "a", "web", false),
            (&jane, "get", "secrets", "a", "db", false),
            (&sa, "get", "secrets", "a", "db", true),
            (&sa, "get", "secrets", "a", "other", false),
            (&sa, "list", "secrets", "a", "", false),
            (&other_sa, "get", "secrets", "a", "db", false),
            (&ops, "list", "nodes", "", "", true),
            // Cluster bindings grant in every namespace too.
            (&ops, "list", "nodes", "a", "", true),
            (&ghost, "list", "nodes", "", "", false),
        ];
        for (i, (u, verb, resource, ns, name, want)) in cases.iter().enumerate() {
            let attrs = Attributes::resource(u, verb, "", resource, ns, name);
            assert_eq!(index.decide(&attrs).allowed(), *want, "case {i}: {attrs:?}");
        }
        assert!(index.decide(&Attributes::non_resource(&ops, "get", "/metrics")).allowed());
        assert!(!index.decide(&Attributes::non_resource(&jane, "get", "/metrics")).allowed());
    }

    #[test]
    fn decisions_say_why() {
        let index = policy();
        let jane = user("jane", &[]);
        assert_eq!(
            index.decide(&Attributes::resource(&jane, "list", "", "pods", "a", "")),
            Decision::Allow {
                reason: r#"RBAC: allowed by RoleBinding "jane-view/a" of ClusterRole "view" to User "jane""#.into()
            }
        );
        let sa = user("system:serviceaccount:a:app", &[]);
        assert_eq!(
            index.decide(&Attributes::resource(&sa, "get", "", "secrets", "a", "db")).reason(),
            r#"RBAC: allowed by RoleBinding "sa-secrets/a" of Role "secrets" to ServiceAccount "app/a""#
        );
        assert_eq!(index.decide(&Attributes::resource(&jane, "list", "", "pods", "b", "")).reason(), "");
        let ghost = user("ghost", &[]);
        assert_eq!(
            index.decide(&Attributes::resource(&ghost, "list", "", "nodes", "", "")),
            Decision::Deny { reason: r#"RBAC: clusterrole.rbac.authorization.k8s.io "gone" not found"#.into() }
        );
    }

    #[test]
    fn deletes_take_grants_away() {
        let mut o = objects(&[
            json!({"kind": "ClusterRole", "metadata": {"name": "view"},
                   "rules": [{"verbs": ["list"], "apiGroups": [""], "resources": ["pods"]}]}),
            json!({"kind": "RoleBinding", "metadata": {"name": "b", "namespace": "a"},
                   "roleRef": {"kind": "ClusterRole", "name": "view", "apiGroup": "rbac.authorization.k8s.io"},
                   "subjects": [{"kind": "User", "name": "jane", "apiGroup": "rbac.authorization.k8s.io"}]}),
        ]);
        let jane = user("jane", &[]);
        let attrs = Attributes::resource(&jane, "list", "", "pods", "a", "");
        assert!(o.index().decide(&attrs).allowed());
        assert!(o.apply("ClusterRole", true, "", "view", b""));
        assert_eq!(
            o.index().decide(&attrs).reason(),
            r#"RBAC: clusterrole.rbac.authorization.k8s.io "view" not found"#
        );
        assert!(o.apply("RoleBinding", true, "a", "b", b""));
        assert_eq!(o.index().decide(&attrs), Decision::Deny { reason: String::new() });
    }

    #[tokio::test]
    async fn system_masters_are_allowed_even_before_the_policy_is_loaded() {
        let authorizer = Authorizer::new();
        let admin = user("admin", &["system:masters"]);
        let attrs = Attributes::resource(&admin, "delete", "", "nodes", "", "n1");
        assert!(authorizer.authorize(&attrs).await.allowed());
        let jane = user("jane", &[]);
        let attrs = Attributes::resource(&jane, "list", "", "pods", "a", "");
        let waiting = tokio::time::timeout(Duration::from_millis(50), authorizer.authorize(&attrs)).await;
        assert!(waiting.is_err(), "must wait for the first list instead of denying");
    }
}
