//! The `ServiceAccount` admission plugin (Kubernetes'
//! `plugin/pkg/admission/serviceaccount`), without tokens.
//!
//! A new pod that names no ServiceAccount gets `default`
//! (`spec.serviceAccountName`, and `spec.serviceAccount`, its deprecated
//! alias, set to the same name; a pod that sets only the alias keeps its
//! name). A pod naming a ServiceAccount that does not exist is refused, as in
//! Kubernetes: `error looking up service account ns/name: serviceaccount
//! "name" not found`.
//!
//! One deviation, for bootstrapping: `default` is admitted before the
//! serviceaccount controller has created it. Kubernetes refuses such pods
//! until the controller catches up; rkube mounts no token, so a pod needs
//! nothing from its ServiceAccount at admission, and a cluster running only
//! the apiserver (tests, `--controllers` without `serviceaccount`) can
//! still create pods. No token volume is added: rkube does not issue tokens.
//!
//! Existence is answered from a [`ServiceAccountCache`] fed by the
//! apiserver's own watch of ServiceAccounts; a name missing from the cache is
//! looked up in etcd before a pod is refused.

use crate::registry::{ListOptions, Registry};
use crate::storage::Storage;
use futures::StreamExt;
use rkube_api::resource::lookup;
use rkube_api::{ApiError, Result};
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::debug;

/// The ServiceAccount a pod runs as when it names none.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";

/// The ServiceAccounts the apiserver has seen, by `namespace/name`.
#[derive(Debug)]
pub struct ServiceAccountCache {
    names: Mutex<HashSet<String>>,
    storage: Storage,
}

impl ServiceAccountCache {
    /// An empty cache that reads through to `storage`.
    pub fn new(storage: Storage) -> Arc<Self> {
        Arc::new(ServiceAccountCache { names: Mutex::default(), storage })
    }

    fn names(&self) -> MutexGuard<'_, HashSet<String>> {
        self.names.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether ServiceAccount `namespace/name` exists.
    pub async fn exists(&self, namespace: &str, name: &str) -> Result<bool> {
        let key = format!("{namespace}/{name}");
        if self.names().contains(&key) {
            return Ok(true);
        }
        let sa = lookup("serviceaccounts").expect("serviceaccounts are in the table");
        let found = self.storage.get(&sa.key(namespace, name)).await?.is_some();
        if found {
            self.names().insert(key);
        }
        Ok(found)
    }

    /// Keeps the cache current from the registry's ServiceAccount watch, until `shutdown`.
    pub async fn run(self: Arc<Self>, registry: Arc<Registry>, shutdown: CancellationToken) {
        let sa = lookup("serviceaccounts").expect("serviceaccounts are in the table");
        while !shutdown.is_cancelled() {
            let result = async {
                let mut stream = registry.watch(sa, "", &ListOptions::default()).await?;
                // The initial ADDED events replace whatever the cache held.
                self.names().clear();
                while let Some(ev) = stream.next().await {
                    let ev = ev?;
                    let key = format!("{}/{}", ev.namespace, ev.name);
                    match ev.kind {
                        crate::watch::EventType::Deleted => self.names().remove(&key),
                        _ => self.names().insert(key),
                    };
                }
                Ok::<(), ApiError>(())
            };
            let result = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = result => r,
            };
            if let Err(e) = result {
                debug!(error = %e.message, "service account cache watch ended; restarting");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }
}

/// The ServiceAccount `pod` runs as: `spec.serviceAccountName`, else the
/// deprecated `spec.serviceAccount`, else `default`.
pub fn service_account_of(pod: &Value) -> String {
    let field = |f: &str| pod.pointer(&format!("/spec/{f}")).and_then(Value::as_str).filter(|s| !s.is_empty());
    field("serviceAccountName").or_else(|| field("serviceAccount")).unwrap_or(DEFAULT_SERVICE_ACCOUNT).to_string()
}

/// Writes `name` to both of `pod`'s ServiceAccount fields.
fn set_service_account(pod: &mut Value, name: &str) {
    let Some(root) = pod.as_object_mut() else { return };
    let spec = root.entry("spec").or_insert_with(|| Value::Object(Map::new()));
    if let Some(spec) = spec.as_object_mut() {
        spec.insert("serviceAccountName".into(), name.into());
        spec.insert("serviceAccount".into(), name.into());
    }
}

/// Admits a new pod: names its ServiceAccount and checks that it exists
/// (see the module docs for `default`).
pub async fn admit_create(cache: &ServiceAccountCache, namespace: &str, pod: &mut Value) -> Result<()> {
    let name = service_account_of(pod);
    set_service_account(pod, &name);
    if name == DEFAULT_SERVICE_ACCOUNT || cache.exists(namespace, &name).await? {
        return Ok(());
    }
    let pod_name = pod.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    Err(ApiError::forbidden(
        "pods",
        pod_name,
        &format!("error looking up service account {namespace}/{name}: serviceaccount \"{name}\" not found"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_service_account_comes_from_the_name_then_the_alias_then_default() {
        assert_eq!(service_account_of(&json!({"spec": {}})), "default");
        assert_eq!(service_account_of(&json!({"spec": {"serviceAccount": "old"}})), "old");
        assert_eq!(service_account_of(&json!({"spec": {"serviceAccountName": "new", "serviceAccount": "old"}})), "new");
        assert_eq!(service_account_of(&json!({"spec": {"serviceAccountName": ""}})), "default");
    }
}
