//! The `ServiceAccount` admission plugin (Kubernetes'
//! `plugin/pkg/admission/serviceaccount`).
//!
//! A new pod that names no ServiceAccount gets `default`
//! (`spec.serviceAccountName`, and `spec.serviceAccount`, its deprecated
//! alias, set to the same name; a pod that sets only the alias keeps its
//! name). A pod naming a ServiceAccount that does not exist is refused, as in
//! Kubernetes: `error looking up service account ns/name: serviceaccount
//! "name" not found`.
//!
//! When the apiserver issues service account tokens
//! (`--service-account-signing-key-file`), the pod also gets Kubernetes'
//! token volume: a projected volume `kube-api-access-<5 random chars>` of a
//! `serviceAccountToken` (path `token`, 3607 s), the `kube-root-ca.crt`
//! ConfigMap's `ca.crt` and the pod's namespace (downward API, path
//! `namespace`), mounted read-only at
//! `/var/run/secrets/kubernetes.io/serviceaccount` in every container and
//! init container — unless `automountServiceAccountToken: false` on the pod
//! (or, when the pod does not say, on its ServiceAccount), or a container
//! already mounts something there. An apiserver without a signing key adds
//! no volume: nothing could fill it.
//!
//! One deviation, for bootstrapping: `default` is admitted before the
//! serviceaccount controller has created it. Kubernetes refuses such pods
//! until the controller catches up; rkube lets them in (the kubelet's token
//! request waits for the ServiceAccount), so a cluster running only the
//! apiserver (tests, `--controllers` without `serviceaccount`) can still
//! create pods.
//!
//! Existence (and `automountServiceAccountToken`) is answered from a
//! [`ServiceAccountCache`] fed by the apiserver's own watch of
//! ServiceAccounts; a name missing from the cache is looked up in etcd
//! before a pod is refused.

use crate::registry::{ListOptions, Registry, random_suffix};
use crate::storage::Storage;
use futures::StreamExt;
use rkube_api::resource::lookup;
use rkube_api::{ApiError, Result};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::debug;

/// The ServiceAccount a pod runs as when it names none.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";

/// Where the token volume is mounted in every container.
pub const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The token volume's name prefix (a random 5-character suffix follows).
pub const TOKEN_VOLUME_PREFIX: &str = "kube-api-access-";
/// The lifetime the token volume asks for (kube's 3607 s, one hour and a bit).
pub const TOKEN_EXPIRATION_SECONDS: i64 = 3607;
/// The ConfigMap the root CA publisher writes into every namespace.
pub const ROOT_CA_CONFIG_MAP: &str = "kube-root-ca.crt";

/// The ServiceAccounts the apiserver has seen, by `namespace/name`, with
/// their `automountServiceAccountToken`.
#[derive(Debug)]
pub struct ServiceAccountCache {
    names: Mutex<HashMap<String, Option<bool>>>,
    storage: Storage,
}

impl ServiceAccountCache {
    /// An empty cache that reads through to `storage`.
    pub fn new(storage: Storage) -> Arc<Self> {
        Arc::new(ServiceAccountCache { names: Mutex::default(), storage })
    }

    fn names(&self) -> MutexGuard<'_, HashMap<String, Option<bool>>> {
        self.names.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether ServiceAccount `namespace/name` exists.
    pub async fn exists(&self, namespace: &str, name: &str) -> Result<bool> {
        Ok(self.lookup(namespace, name).await?.is_some())
    }

    /// ServiceAccount `namespace/name`'s `automountServiceAccountToken`
    /// (inner None: unset), or None when it does not exist.
    pub async fn lookup(&self, namespace: &str, name: &str) -> Result<Option<Option<bool>>> {
        let key = format!("{namespace}/{name}");
        if let Some(automount) = self.names().get(&key) {
            return Ok(Some(*automount));
        }
        let sa = lookup("serviceaccounts").expect("serviceaccounts are in the table");
        let Some(stored) = self.storage.get(&sa.key(namespace, name)).await? else { return Ok(None) };
        let automount = automount_of(&crate::codec::decode(&stored.value)?);
        self.names().insert(key, automount);
        Ok(Some(automount))
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
                        _ => {
                            let obj: Value = serde_json::from_slice(&ev.json).unwrap_or_default();
                            self.names().insert(key, automount_of(&obj))
                        }
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

fn automount_of(sa: &Value) -> Option<bool> {
    sa.get("automountServiceAccountToken").and_then(Value::as_bool)
}

/// Admits a new pod: names its ServiceAccount, checks that it exists (see
/// the module docs for `default`) and, with `token_volume`, adds the token
/// volume.
pub async fn admit_create(
    cache: &ServiceAccountCache,
    namespace: &str,
    pod: &mut Value,
    token_volume: bool,
) -> Result<()> {
    let name = service_account_of(pod);
    set_service_account(pod, &name);
    // Mirror pods (of static pods) get nothing: the kubelet runs them from its manifests.
    let mirror = pod.pointer("/metadata/annotations/kubernetes.io~1config.mirror").is_some();
    if mirror {
        return Ok(());
    }
    let automount = match cache.lookup(namespace, &name).await? {
        Some(automount) => automount,
        None if name == DEFAULT_SERVICE_ACCOUNT => None,
        None => {
            let pod_name = pod.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
            return Err(ApiError::forbidden(
                "pods",
                pod_name,
                &format!("error looking up service account {namespace}/{name}: serviceaccount \"{name}\" not found"),
            ));
        }
    };
    let pod_says = pod.pointer("/spec/automountServiceAccountToken").and_then(Value::as_bool);
    if token_volume && pod_says.or(automount).unwrap_or(true) {
        add_token_volume(pod);
    }
    Ok(())
}

/// Adds the projected token volume and its mounts, unless a container
/// mounts something at [`TOKEN_MOUNT_PATH`] already.
pub fn add_token_volume(pod: &mut Value) {
    let containers = |pod: &Value| -> Vec<Value> {
        ["containers", "initContainers"]
            .iter()
            .flat_map(|list| {
                pod.pointer(&format!("/spec/{list}")).and_then(Value::as_array).cloned().unwrap_or_default()
            })
            .collect()
    };
    let mounted = containers(pod).iter().any(|c| {
        c.get("volumeMounts").and_then(Value::as_array).into_iter().flatten().any(|m| {
            m.get("mountPath").and_then(Value::as_str).map(|p| p.trim_end_matches('/')) == Some(TOKEN_MOUNT_PATH)
        })
    });
    if mounted {
        return;
    }
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else { return };
    let volumes = spec.entry("volumes").or_insert_with(|| Value::Array(Vec::new()));
    let Some(volumes) = volumes.as_array_mut() else { return };
    let taken: Vec<String> =
        volumes.iter().filter_map(|v| v.get("name").and_then(Value::as_str)).map(str::to_string).collect();
    let name = loop {
        let name = format!("{TOKEN_VOLUME_PREFIX}{}", random_suffix());
        if !taken.contains(&name) {
            break name;
        }
    };
    volumes.push(serde_json::json!({
        "name": name,
        "projected": {
            "defaultMode": 0o644,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION_SECONDS, "path": "token"}},
                {"configMap": {"name": ROOT_CA_CONFIG_MAP, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [
                    {"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}
                ]}},
            ],
        },
    }));
    for list in ["containers", "initContainers"] {
        let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) else { continue };
        for c in containers {
            let Some(c) = c.as_object_mut() else { continue };
            let mounts = c.entry("volumeMounts").or_insert_with(|| Value::Array(Vec::new()));
            if let Some(mounts) = mounts.as_array_mut() {
                mounts.push(serde_json::json!({"name": name, "readOnly": true, "mountPath": TOKEN_MOUNT_PATH}));
            }
        }
    }
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

    #[test]
    fn the_token_volume_is_mounted_read_only_in_every_container() {
        let mut pod = json!({"spec": {
            "containers": [{"name": "a"}, {"name": "b", "volumeMounts": [{"name": "x", "mountPath": "/x"}]}],
            "initContainers": [{"name": "i"}],
            "volumes": [{"name": "x", "emptyDir": {}}],
        }});
        add_token_volume(&mut pod);
        let volumes = pod["spec"]["volumes"].as_array().expect("volumes");
        assert_eq!(volumes.len(), 2);
        let name = volumes[1]["name"].as_str().expect("a name");
        assert!(name.starts_with(TOKEN_VOLUME_PREFIX) && name.len() == TOKEN_VOLUME_PREFIX.len() + 5, "{name}");
        let sources = &volumes[1]["projected"]["sources"];
        assert_eq!(sources[0]["serviceAccountToken"], json!({"expirationSeconds": 3607, "path": "token"}));
        assert_eq!(sources[1]["configMap"]["name"], "kube-root-ca.crt");
        assert_eq!(sources[2]["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"], "metadata.namespace");
        for c in [&pod["spec"]["containers"][0], &pod["spec"]["containers"][1], &pod["spec"]["initContainers"][0]] {
            let mounts = c["volumeMounts"].as_array().expect("mounts");
            let mount = mounts.last().expect("a mount");
            assert_eq!(mount, &json!({"name": name, "readOnly": true, "mountPath": TOKEN_MOUNT_PATH}));
        }
    }

    #[test]
    fn no_token_volume_when_the_path_is_mounted_already() {
        let mut pod = json!({"spec": {"containers": [
            {"name": "a", "volumeMounts": [{"name": "mine", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount/"}]},
        ], "volumes": [{"name": "mine", "emptyDir": {}}]}});
        let before = pod.clone();
        add_token_volume(&mut pod);
        assert_eq!(pod, before);
    }
}
