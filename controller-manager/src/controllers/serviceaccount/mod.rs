//! The serviceaccount controller: a `default` ServiceAccount in every
//! active namespace, recreated if deleted (Kubernetes'
//! `pkg/controller/serviceaccount/serviceaccounts_controller.go`).
//!
//! It watches namespaces and ServiceAccounts; a namespace that appears or
//! changes, or whose `default` ServiceAccount is deleted, is reconciled:
//! if it is Active and its `default` is missing from the cache, the
//! ServiceAccount is created. A namespace being deleted is left alone (the
//! namespace controller is emptying it, and the apiserver would refuse).
//! No token Secret is made: pods get bound tokens through the TokenRequest
//! API instead, as in Kubernetes since 1.24.

use crate::controllers::{Controller, ControllerContext, Error};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use rkube_client::controller::{Action, spawn_workers};
use rkube_client::informers::{enqueue_all, forward_events};
use rkube_client::{Api, ObjectKey, Reason, Store, WorkQueue};
use serde_json::json;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;

/// The controller's name in `--controllers`.
pub const NAME: &str = "serviceaccount";

/// The ServiceAccount every namespace gets.
pub const DEFAULT: &str = "default";

/// The registry entry.
pub const CONTROLLER: Controller = Controller {
    name: NAME,
    about: "a default ServiceAccount in every active namespace",
    enabled_by_default: true,
    check: |_| Ok(()),
    start,
};

/// The state shared by the workers.
pub struct Context {
    namespaces: Store<Namespace>,
    service_accounts: Store<ServiceAccount>,
    client: rkube_client::Client,
}

/// Whether `ns` should have its ServiceAccounts: it exists, is not being
/// deleted and is Active.
fn active(ns: &Namespace) -> bool {
    let phase = ns.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("Active");
    ns.metadata.deletion_timestamp.is_none() && phase == "Active"
}

/// Creates the `default` ServiceAccount of namespace `key` if it is missing.
pub async fn reconcile(key: ObjectKey, ctx: Arc<Context>) -> Result<Action, Error> {
    let Some(ns) = ctx.namespaces.get(&key) else { return Ok(Action::AwaitChange) };
    if !active(&ns) || ctx.service_accounts.get(&ObjectKey::new(&key.name, DEFAULT)).is_some() {
        return Ok(Action::AwaitChange);
    }
    let api = Api::<ServiceAccount>::namespaced(ctx.client.clone(), &key.name);
    let sa: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": DEFAULT}})).expect("a ServiceAccount with a name decodes");
    match api.create(&sa).await {
        Ok(_) => info!(controller = NAME, namespace = %key.name, "created the default service account"),
        // Already there (the cache was behind), or the namespace is going:
        // nothing to do.
        Err(e) if matches!(e.reason, Reason::AlreadyExists | Reason::Forbidden | Reason::NotFound) => {}
        Err(e) => return Err(Error::api(&key, "creating the default service account")(e)),
    }
    Ok(Action::AwaitChange)
}

fn start(ctx: &ControllerContext, tracker: &TaskTracker, shutdown: CancellationToken) -> Result<(), String> {
    let namespaces = ctx.informers.get::<Namespace>();
    let service_accounts = ctx.informers.get::<ServiceAccount>();
    let context = Arc::new(Context {
        namespaces: namespaces.store().clone(),
        service_accounts: service_accounts.store().clone(),
        client: ctx.client.clone(),
    });
    let queue = WorkQueue::new();
    let (tracker2, observer) = (tracker.clone(), ctx.observer());
    tracker.spawn(async move {
        let synced = tokio::select! {
            _ = shutdown.cancelled() => return,
            synced = async { namespaces.wait_until_synced().await && service_accounts.wait_until_synced().await } => synced,
        };
        if !synced {
            return;
        }
        let resync = enqueue_all(namespaces.store().clone(), queue.clone());
        let itself = |ns: &Namespace, _deleted: bool| vec![ObjectKey::of(ns)];
        forward_events(&namespaces, queue.clone(), &tracker2, shutdown.clone(), itself, resync.clone());
        let its_namespace = |sa: &ServiceAccount, deleted: bool| {
            let ns = sa.metadata.namespace.as_deref().unwrap_or_default();
            let default = sa.metadata.name.as_deref() == Some(DEFAULT);
            if deleted && default { vec![ObjectKey::new("", ns)] } else { Vec::new() }
        };
        forward_events(&service_accounts, queue.clone(), &tracker2, shutdown.clone(), its_namespace, resync.clone());
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
    fn only_active_namespaces_get_service_accounts() {
        let ns = |v: serde_json::Value| -> Namespace { serde_json::from_value(v).unwrap() };
        assert!(active(&ns(json!({"metadata": {"name": "a"}}))));
        assert!(active(&ns(json!({"metadata": {"name": "a"}, "status": {"phase": "Active"}}))));
        assert!(!active(&ns(json!({"metadata": {"name": "a"}, "status": {"phase": "Terminating"}}))));
        assert!(!active(&ns(json!({"metadata": {"name": "a", "deletionTimestamp": "2026-01-01T00:00:00Z"}}))));
    }
}
