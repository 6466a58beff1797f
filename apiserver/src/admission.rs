//! Admission control: the plugins named by `--enable-admission-plugins`, run
//! on every write after validation and before storage.
//!
//! The namespace plugins consult a [`NamespaceCache`] fed by the apiserver's
//! own watch of namespaces, so a create costs no extra etcd read; a namespace
//! missing from the cache is looked up in etcd before a create is refused.

use crate::authn::UserInfo;
use crate::default_tolerations::DefaultTolerationSeconds;
use crate::registry::{ListOptions, Registry};
use crate::service_account::{self, ServiceAccountCache};
use crate::storage::Storage;
use futures::StreamExt;
use rkube_api::resource::lookup;
use rkube_api::{ApiError, ResourceInfo, Result};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::debug;

pub mod limitranger;
pub mod noderestriction;
pub mod policy_cache;
pub mod resourcequota;

use policy_cache::PolicyCache;

/// The admission plugins rkube implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plugin {
    /// Refuses new objects in namespaces being deleted or missing, and the
    /// deletion of the system namespaces.
    NamespaceLifecycle,
    /// Refuses objects in namespaces that do not exist.
    NamespaceExists,
    /// Refuses pods that set securityContext user, group or SELinux options.
    SecurityContextDeny,
    /// Names a pod's ServiceAccount (`default` when it names none) and
    /// refuses pods naming one that does not exist (see [`crate::service_account`]).
    ServiceAccount,
    /// Gives pods a limited toleration of the `not-ready` and `unreachable`
    /// NoExecute taints (see [`crate::default_tolerations`]).
    DefaultTolerationSeconds,
    /// Gives pods the default requests and limits of their namespace's
    /// LimitRanges and enforces their bounds (see [`limitranger`]).
    LimitRanger,
    /// Refuses objects that would exceed a ResourceQuota of their namespace
    /// and charges admitted ones to it (see [`resourcequota`]).
    ResourceQuota,
    /// Confines kubelets' writes to their own Node, Lease and pods (see
    /// [`noderestriction`]).
    NodeRestriction,
}

impl Plugin {
    /// Every plugin, by its Kubernetes name.
    pub const ALL: [(&'static str, Plugin); 8] = [
        ("NamespaceLifecycle", Plugin::NamespaceLifecycle),
        ("NamespaceExists", Plugin::NamespaceExists),
        ("SecurityContextDeny", Plugin::SecurityContextDeny),
        ("ServiceAccount", Plugin::ServiceAccount),
        ("DefaultTolerationSeconds", Plugin::DefaultTolerationSeconds),
        ("LimitRanger", Plugin::LimitRanger),
        ("ResourceQuota", Plugin::ResourceQuota),
        ("NodeRestriction", Plugin::NodeRestriction),
    ];

    /// The plugin called `name`, or an error that lists the known ones.
    pub fn parse(name: &str) -> std::result::Result<Plugin, String> {
        Plugin::ALL.iter().find(|(n, _)| *n == name).map(|(_, p)| *p).ok_or_else(|| {
            let known: Vec<&str> = Plugin::ALL.iter().map(|(n, _)| *n).collect();
            format!("admission plugin \"{name}\" is not supported (supported: {})", known.join(", "))
        })
    }
}

/// The namespaces the apiserver has seen, with their phase.
#[derive(Debug)]
pub struct NamespaceCache {
    phases: Mutex<HashMap<String, String>>,
    storage: Storage,
}

impl NamespaceCache {
    /// An empty cache that reads through to `storage`.
    pub fn new(storage: Storage) -> Arc<Self> {
        Arc::new(NamespaceCache { phases: Mutex::new(HashMap::new()), storage })
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.phases.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The phase of namespace `name`, or None if it does not exist.
    pub async fn phase(&self, name: &str) -> Result<Option<String>> {
        if let Some(p) = self.map().get(name) {
            return Ok(Some(p.clone()));
        }
        let ns = lookup("namespaces").expect("namespaces are in the table");
        let Some(stored) = self.storage.get(&ns.key("", name)).await? else { return Ok(None) };
        let obj: Value = crate::codec::decode(&stored.value)?;
        let phase = phase_of(&obj);
        self.map().insert(name.to_string(), phase.clone());
        Ok(Some(phase))
    }

    /// Keeps the cache current from the registry's namespace watch, until `shutdown`.
    pub async fn run(self: Arc<Self>, registry: Arc<Registry>, shutdown: tokio_util::sync::CancellationToken) {
        let ns = lookup("namespaces").expect("namespaces are in the table");
        while !shutdown.is_cancelled() {
            let result = async {
                let mut stream = registry.watch(ns, "", &ListOptions::default()).await?;
                // The initial ADDED events replace whatever the cache held.
                self.map().clear();
                while let Some(ev) = stream.next().await {
                    let ev = ev?;
                    let obj: Value = serde_json::from_slice(&ev.json).unwrap_or_default();
                    let mut map = self.map();
                    match ev.kind {
                        crate::watch::EventType::Deleted => map.remove(&ev.name),
                        _ => map.insert(ev.name.clone(), phase_of(&obj)),
                    };
                }
                Ok::<(), ApiError>(())
            };
            let result = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = result => r,
            };
            if let Err(e) = result {
                debug!(error = %e.message, "namespace cache watch ended; restarting");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }
}

fn phase_of(ns: &Value) -> String {
    ns.pointer("/status/phase").and_then(Value::as_str).unwrap_or("Active").to_string()
}

/// The enabled admission plugins.
#[derive(Debug)]
pub struct Admission {
    plugins: Vec<Plugin>,
    namespaces: Arc<NamespaceCache>,
    service_accounts: Arc<ServiceAccountCache>,
    default_tolerations: DefaultTolerationSeconds,
    token_volumes: bool,
    limit_ranges: Arc<PolicyCache>,
    quotas: Arc<PolicyCache>,
    quota_locks: resourcequota::NamespaceLocks,
}

impl Admission {
    /// Admission with `plugins`, checking namespaces through `namespaces`.
    pub fn new(plugins: Vec<Plugin>, namespaces: Arc<NamespaceCache>) -> Self {
        let service_accounts = ServiceAccountCache::new(namespaces.storage.clone());
        let default_tolerations = DefaultTolerationSeconds::default();
        let resource = |name| rkube_api::resource::lookup(name).expect("a served resource");
        let limit_ranges = PolicyCache::new(resource("limitranges"), namespaces.storage.clone());
        let quotas = PolicyCache::new(resource("resourcequotas"), namespaces.storage.clone());
        Admission {
            plugins,
            namespaces,
            service_accounts,
            default_tolerations,
            token_volumes: false,
            limit_ranges,
            quotas,
            quota_locks: Default::default(),
        }
    }

    /// With DefaultTolerationSeconds' seconds (`--default-not-ready-toleration-seconds`, ...).
    pub fn with_default_tolerations(mut self, seconds: DefaultTolerationSeconds) -> Self {
        self.default_tolerations = seconds;
        self
    }

    /// Whether the ServiceAccount plugin adds the token volume to pods (the
    /// apiserver issues tokens).
    pub fn with_token_volumes(mut self, on: bool) -> Self {
        self.token_volumes = on;
        self
    }

    /// The namespace cache.
    pub fn namespaces(&self) -> &Arc<NamespaceCache> {
        &self.namespaces
    }

    /// The ServiceAccount cache.
    pub fn service_accounts(&self) -> &Arc<ServiceAccountCache> {
        &self.service_accounts
    }

    /// Starts the LimitRange and ResourceQuota caches of the plugins that
    /// are on, following `registry` until `shutdown`.
    pub fn start_policy_caches(
        &self,
        registry: &Arc<Registry>,
        tracker: &tokio_util::task::TaskTracker,
        shutdown: &tokio_util::sync::CancellationToken,
    ) {
        for (plugin, cache) in [(Plugin::LimitRanger, &self.limit_ranges), (Plugin::ResourceQuota, &self.quotas)] {
            if self.on(plugin) {
                tracker.spawn(cache.clone().run(registry.clone(), shutdown.clone()));
            }
        }
    }

    /// The ResourceQuota plugin: checks a new object, valid and defaulted,
    /// against its namespace's quotas and charges it to them (not on a dry
    /// run). Runs after every other plugin, as Kubernetes runs it last.
    pub async fn admit_quota(
        &self,
        registry: &Registry,
        info: &'static ResourceInfo,
        namespace: &str,
        obj: &Value,
        dry_run: bool,
    ) -> Result<()> {
        if info.kind == "ResourceQuota" {
            self.quotas.expect(namespace);
        }
        if !self.on(Plugin::ResourceQuota) || in_bootstrap() {
            return Ok(());
        }
        resourcequota::admit(registry, &self.quotas, &self.quota_locks, info, namespace, obj, dry_run).await
    }

    fn on(&self, p: Plugin) -> bool {
        self.plugins.contains(&p)
    }

    /// Admits a new object.
    pub async fn admit_create(&self, info: &ResourceInfo, namespace: &str, obj: &mut Value) -> Result<()> {
        if info.namespaced && (self.on(Plugin::NamespaceLifecycle) || self.on(Plugin::NamespaceExists)) {
            match self.namespaces.phase(namespace).await? {
                None => return Err(ApiError::not_found("namespaces", namespace)),
                Some(p) if p == "Terminating" && self.on(Plugin::NamespaceLifecycle) && info.kind != "Event" => {
                    return Err(ApiError::forbidden(
                        info.plural,
                        obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default(),
                        &format!(
                            "unable to create new content in namespace {namespace} because it is being terminated"
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
        if self.on(Plugin::NodeRestriction)
            && let Some(node) = requesting_node()
        {
            noderestriction::admit_create(&node, info, namespace, obj)?;
        }
        if info.kind == "LimitRange" {
            self.limit_ranges.expect(namespace);
        }
        if self.on(Plugin::LimitRanger) && !in_bootstrap() {
            limitranger::admit(&self.limit_ranges, info, namespace, obj).await?;
        }
        if info.kind == "Pod" && self.on(Plugin::SecurityContextDeny) {
            security_context_deny(obj)?;
        }
        if info.kind == "Pod" && self.on(Plugin::ServiceAccount) {
            service_account::admit_create(&self.service_accounts, namespace, obj, self.token_volumes).await?;
        }
        if info.kind == "Pod" && self.on(Plugin::DefaultTolerationSeconds) {
            self.default_tolerations.admit(obj);
        }
        Ok(())
    }

    /// Admits an update of `old` to `new`.
    pub fn admit_update(&self, info: &ResourceInfo, namespace: &str, new: &mut Value, old: &Value) -> Result<()> {
        if self.on(Plugin::NodeRestriction)
            && let Some(node) = requesting_node()
        {
            noderestriction::admit_update(&node, info, namespace, new, old)?;
        }
        if info.kind == "Pod" && self.on(Plugin::SecurityContextDeny) {
            security_context_deny(new)?;
        }
        if info.kind == "Pod" && self.on(Plugin::DefaultTolerationSeconds) {
            self.default_tolerations.admit(new);
        }
        Ok(())
    }

    /// Admits a deletion.
    pub fn admit_delete(&self, info: &ResourceInfo, _namespace: &str, name: &str) -> Result<()> {
        if info.kind == "Namespace"
            && self.on(Plugin::NamespaceLifecycle)
            && crate::registry::SYSTEM_NAMESPACES.contains(&name)
        {
            return Err(ApiError::forbidden("namespaces", name, "this namespace may not be deleted"));
        }
        Ok(())
    }

    /// Admits the deletion of `old`, the stored object (plugins that look
    /// at what is deleted: NodeRestriction).
    pub fn admit_delete_of(&self, info: &ResourceInfo, namespace: &str, old: &Value) -> Result<()> {
        if self.on(Plugin::NodeRestriction)
            && let Some(node) = requesting_node()
        {
            noderestriction::admit_delete(&node, info, namespace, old)?;
        }
        Ok(())
    }
}

tokio::task_local! {
    /// The authenticated user of the request being served (set by the
    /// front-ends' authorization middleware, [`as_user`]).
    static REQUEST_USER: UserInfo;
}

/// Runs `f`, the handling of one request, as `user`: the plugins that ask
/// who writes (NodeRestriction) find it with [`requesting_user`]. A
/// task-local (as [`bootstrap`]) rather than a parameter of every registry
/// write: the user is Kubernetes' request context, and the registry's
/// callers (REST, gRPC, the apiserver's own writes) need not pass it.
/// Writes outside a request (the apiserver's own) have no user; those pass.
pub async fn as_user<F: std::future::Future>(user: UserInfo, f: F) -> F::Output {
    REQUEST_USER.scope(user, f).await
}

/// The user of the request being served, if any.
pub fn requesting_user() -> Option<UserInfo> {
    REQUEST_USER.try_with(UserInfo::clone).ok()
}

/// The node the request being served comes from, if a node's.
fn requesting_node() -> Option<String> {
    REQUEST_USER.try_with(|u| crate::authz::node::node_name(u).map(str::to_string)).ok().flatten()
}

tokio::task_local! {
    /// Set while the apiserver writes its own bootstrap objects.
    static BOOTSTRAP: ();
}

/// Runs `f` as the apiserver's own bootstrap (the system namespaces, the
/// `kubernetes` Service): as in Kubernetes, whose bootstrap objects do not
/// go through admission, LimitRanger and ResourceQuota leave its writes
/// alone, so no quota or LimitRange can lock the cluster out of them.
pub async fn bootstrap<F: std::future::Future>(f: F) -> F::Output {
    BOOTSTRAP.scope((), f).await
}

fn in_bootstrap() -> bool {
    BOOTSTRAP.try_with(|_| ()).is_ok()
}

fn security_context_deny(pod: &Value) -> Result<()> {
    let name = pod.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    let deny = |field: &str| Err(ApiError::forbidden("pods", name, &format!("{field} is forbidden")));
    for (ptr, field) in [
        ("/spec/securityContext/seLinuxOptions", "pod.Spec.SecurityContext.SELinuxOptions"),
        ("/spec/securityContext/runAsUser", "pod.Spec.SecurityContext.RunAsUser"),
        ("/spec/securityContext/supplementalGroups", "pod.Spec.SecurityContext.SupplementalGroups"),
        ("/spec/securityContext/fsGroup", "pod.Spec.SecurityContext.FSGroup"),
    ] {
        if pod.pointer(ptr).is_some_and(|v| !v.is_null()) {
            return deny(field);
        }
    }
    for list in ["containers", "initContainers"] {
        for c in pod.pointer(&format!("/spec/{list}")).and_then(Value::as_array).into_iter().flatten() {
            for (ptr, field) in [
                ("/securityContext/seLinuxOptions", "SecurityContext.SELinuxOptions"),
                ("/securityContext/runAsUser", "SecurityContext.RunAsUser"),
            ] {
                if c.pointer(ptr).is_some_and(|v| !v.is_null()) {
                    return deny(field);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_plugins_are_named_with_the_supported_ones() {
        let e = Plugin::parse("LimitRangerr").expect_err("unknown");
        assert!(e.contains("LimitRangerr") && e.contains("NamespaceLifecycle"), "{e}");
        assert_eq!(Plugin::parse("NamespaceExists"), Ok(Plugin::NamespaceExists));
    }

    #[test]
    fn security_context_deny_refuses_run_as_user() {
        let pod = serde_json::json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "c", "securityContext": {"runAsUser": 0}}]}});
        assert!(security_context_deny(&pod).is_err());
        let ok = serde_json::json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "c", "securityContext": {"privileged": true}}]}});
        assert!(security_context_deny(&ok).is_ok());
    }
}
