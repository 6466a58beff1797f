//! The root-ca-cert-publisher: a ConfigMap `kube-root-ca.crt` with key
//! `ca.crt` — the cluster CA of `--root-ca-file` — in every namespace,
//! kept as written and recreated if deleted (Kubernetes'
//! `pkg/controller/certificates/rootcacertpublisher`). Pods read it through
//! the token volume the ServiceAccount admission plugin mounts, to trust
//! the apiserver at `kubernetes.default.svc`.
//!
//! It watches namespaces and ConfigMaps: a namespace that appears, or whose
//! `kube-root-ca.crt` changes or is deleted, is reconciled: an active
//! namespace without the ConfigMap gets it; one whose `ca.crt` differs (or
//! which lacks the description annotation) is patched back. Without
//! `--root-ca-file` the controller does nothing, as in Kubernetes.

use crate::controllers::{Controller, ControllerContext, Error};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use rkube_client::controller::{Action, spawn_workers};
use rkube_client::informers::{enqueue_all, forward_events};
use rkube_client::{Api, ObjectKey, Reason, Store, WorkQueue};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;

/// The controller's name in `--controllers`.
pub const NAME: &str = "root-ca-cert-publisher";

/// The ConfigMap every namespace gets.
pub const CONFIG_MAP: &str = "kube-root-ca.crt";

/// Its key.
pub const KEY: &str = "ca.crt";

/// The annotation Kubernetes puts on the ConfigMap.
pub const DESCRIPTION_ANNOTATION: &str = "kubernetes.io/description";

/// What the annotation says (Kubernetes' words).
pub const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

/// The registry entry.
pub const CONTROLLER: Controller = Controller {
    name: NAME,
    about: "a kube-root-ca.crt ConfigMap (the cluster CA of --root-ca-file) in every namespace",
    enabled_by_default: true,
    check,
    start,
};

/// The controller's flags.
#[derive(Debug, Clone, clap::Args)]
#[group(skip)]
#[command(next_help_heading = "Root CA certificate publisher")]
pub struct Flags {
    /// The cluster CA (PEM) published as `ca.crt` of the `kube-root-ca.crt`
    /// ConfigMap in every namespace. Without it, nothing is published.
    #[arg(long, env = "RKUBE_ROOT_CA_FILE")]
    pub root_ca_file: Option<PathBuf>,
}

fn check(flags: &crate::controllers::Flags) -> Result<(), String> {
    match &flags.rootcacertpublisher.root_ca_file {
        Some(path) => read_ca(path).map(|_| ()),
        None => Ok(()),
    }
}

fn read_ca(path: &std::path::Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("--root-ca-file {}: {e}", path.display()))?;
    if !text.contains("-----BEGIN CERTIFICATE-----") {
        return Err(format!("--root-ca-file {}: no PEM certificate in it", path.display()));
    }
    Ok(text)
}

/// The state shared by the workers.
pub struct Context {
    namespaces: Store<Namespace>,
    config_maps: Store<ConfigMap>,
    client: rkube_client::Client,
    ca: String,
}

/// Whether `ns` may get the ConfigMap: it is not being deleted.
fn active(ns: &Namespace) -> bool {
    let phase = ns.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("Active");
    ns.metadata.deletion_timestamp.is_none() && phase == "Active"
}

/// Whether `cm` says what it should.
fn current(cm: &ConfigMap, ca: &str) -> bool {
    let data = cm.data.as_ref().and_then(|d| d.get(KEY)).map(String::as_str);
    let annotated = cm.metadata.annotations.as_ref().and_then(|a| a.get(DESCRIPTION_ANNOTATION)).is_some();
    data == Some(ca) && annotated
}

/// Creates or repairs `kube-root-ca.crt` in namespace `key`.
pub async fn reconcile(key: ObjectKey, ctx: Arc<Context>) -> Result<Action, Error> {
    let Some(ns) = ctx.namespaces.get(&key) else { return Ok(Action::AwaitChange) };
    if !active(&ns) {
        return Ok(Action::AwaitChange);
    }
    let api = Api::<ConfigMap>::namespaced(ctx.client.clone(), &key.name);
    match ctx.config_maps.get(&ObjectKey::new(&key.name, CONFIG_MAP)) {
        Some(cm) if current(&cm, &ctx.ca) => {}
        Some(_) => {
            let patch = json!({
                "metadata": {"annotations": {DESCRIPTION_ANNOTATION: DESCRIPTION}},
                "data": {KEY: ctx.ca},
            });
            match api.patch(CONFIG_MAP, &patch).await {
                Ok(_) => info!(controller = NAME, namespace = %key.name, "updated the root CA ConfigMap"),
                Err(e) if e.reason == Reason::NotFound => {
                    return Ok(Action::RequeueAfter(std::time::Duration::from_secs(1)));
                }
                Err(e) => return Err(Error::api(&key, "updating the root CA ConfigMap")(e)),
            }
        }
        None => {
            let cm: ConfigMap = serde_json::from_value(json!({
                "metadata": {"name": CONFIG_MAP, "annotations": {DESCRIPTION_ANNOTATION: DESCRIPTION}},
                "data": {KEY: ctx.ca},
            }))
            .expect("a ConfigMap decodes");
            match api.create(&cm).await {
                Ok(_) => info!(controller = NAME, namespace = %key.name, "published the root CA"),
                // The cache was behind, or the namespace is going.
                Err(e) if matches!(e.reason, Reason::AlreadyExists | Reason::Forbidden | Reason::NotFound) => {}
                Err(e) => return Err(Error::api(&key, "creating the root CA ConfigMap")(e)),
            }
        }
    }
    Ok(Action::AwaitChange)
}

fn start(ctx: &ControllerContext, tracker: &TaskTracker, shutdown: CancellationToken) -> Result<(), String> {
    let Some(path) = &ctx.flags.rootcacertpublisher.root_ca_file else {
        info!(controller = NAME, "no --root-ca-file: not publishing");
        return Ok(());
    };
    let ca = read_ca(path)?;
    let namespaces = ctx.informers.get::<Namespace>();
    let config_maps = ctx.informers.get::<ConfigMap>();
    let context = Arc::new(Context {
        namespaces: namespaces.store().clone(),
        config_maps: config_maps.store().clone(),
        client: ctx.client.clone(),
        ca,
    });
    let queue = WorkQueue::new();
    let (tracker2, observer) = (tracker.clone(), ctx.observer());
    tracker.spawn(async move {
        let synced = tokio::select! {
            _ = shutdown.cancelled() => return,
            synced = async { namespaces.wait_until_synced().await && config_maps.wait_until_synced().await } => synced,
        };
        if !synced {
            return;
        }
        let resync = enqueue_all(namespaces.store().clone(), queue.clone());
        let itself = |ns: &Namespace, _deleted: bool| vec![ObjectKey::of(ns)];
        forward_events(&namespaces, queue.clone(), &tracker2, shutdown.clone(), itself, resync.clone());
        let its_namespace = |cm: &ConfigMap, _deleted: bool| {
            let ns = cm.metadata.namespace.as_deref().unwrap_or_default();
            if cm.metadata.name.as_deref() == Some(CONFIG_MAP) { vec![ObjectKey::new("", ns)] } else { Vec::new() }
        };
        forward_events(&config_maps, queue.clone(), &tracker2, shutdown.clone(), its_namespace, resync.clone());
        resync();
        let reconcile = move |key| reconcile(key, context.clone());
        spawn_workers(NAME, queue, 1, reconcile, observer, &tracker2, shutdown);
        info!(controller = NAME, "started");
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_map_is_current_with_the_ca_and_the_description() {
        let cm = |v: serde_json::Value| -> ConfigMap { serde_json::from_value(v).unwrap() };
        let annotations = json!({DESCRIPTION_ANNOTATION: DESCRIPTION});
        assert!(current(&cm(json!({"metadata": {"annotations": annotations}, "data": {"ca.crt": "CA"}})), "CA"));
        assert!(!current(&cm(json!({"metadata": {"annotations": annotations}, "data": {"ca.crt": "old"}})), "CA"));
        assert!(!current(&cm(json!({"metadata": {}, "data": {"ca.crt": "CA"}})), "CA"));
        assert!(!current(&cm(json!({"metadata": {"annotations": annotations}})), "CA"));
    }
}
