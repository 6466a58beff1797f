//! The namespace controller: empties a namespace being deleted, then lets
//! it go (Kubernetes' `pkg/controller/namespace`).
//!
//! Deleting a namespace only marks it: the apiserver sets
//! `deletionTimestamp` and `status.phase: Terminating`, and the namespace
//! stays while `spec.finalizers` holds `kubernetes` (NamespaceLifecycle
//! admission refuses new content meanwhile). [`reconcile`] then:
//! 1. reads the namespace live (the cache may be behind);
//! 2. deletes its content through the API ([`deleter`]: pods first, then
//!    every other namespaced kind), so finalizers, graceful pod deletion and
//!    the kubelet's clean-up all hold;
//! 3. writes what is left as status [`conditions`];
//! 4. while objects remain, comes back after half their estimated time
//!    (a pod deletion in the namespace brings it back sooner); once nothing
//!    is left, removes `kubernetes` from `spec.finalizers` — an update the
//!    apiserver allows, standing for Kubernetes' `finalize` subresource —
//!    and, with no finalizer left, the apiserver removes the namespace.

pub mod conditions;
pub mod deleter;

use crate::controllers::pod_state::PodView;
use crate::controllers::{Controller, ControllerContext};
use deleter::Content;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use rkube_api::strategy::cluster::NAMESPACE_FINALIZER;
use rkube_client::controller::{Action, ReconcileError, spawn_workers};
use rkube_client::informers::{enqueue_all, forward, forward_events};
use rkube_client::leader::parse_duration;
use rkube_client::{Api, ApiError, Client, ObjectKey, Reason, Store, WorkQueue};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info};

/// The controller's name in `--controllers`.
pub const NAME: &str = "namespace";

/// The registry entry.
pub const CONTROLLER: Controller = Controller {
    name: NAME,
    about: "deletes the content of namespaces being deleted, then the namespaces",
    enabled_by_default: true,
    check,
    start,
};

/// The namespace controller's flags (kube-controller-manager's names).
#[derive(Debug, Clone, clap::Args)]
#[group(skip)]
#[command(next_help_heading = "Namespace controller")]
pub struct Flags {
    /// Namespaces emptied at once.
    #[arg(long, env = "RKUBE_CONCURRENT_NAMESPACE_SYNCS", default_value_t = 10)]
    pub concurrent_namespace_syncs: usize,
    /// How often every terminating namespace is looked at again, whatever
    /// the watches said.
    #[arg(long, env = "RKUBE_NAMESPACE_SYNC_PERIOD", default_value = "5m", value_parser = parse_duration)]
    pub namespace_sync_period: Duration,
}

fn check(flags: &crate::controllers::Flags) -> Result<(), String> {
    if flags.namespace.namespace_sync_period.is_zero() {
        return Err("--namespace-sync-period: must be greater than 0".into());
    }
    Ok(())
}

/// Why a namespace could not be finished yet (it is retried with back-off).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The apiserver refused a read or write of the namespace itself.
    #[error("namespace {namespace}: {action}: {source}")]
    Api {
        /// The namespace.
        namespace: String,
        /// What was being done.
        action: &'static str,
        /// The apiserver's answer.
        #[source]
        source: ApiError,
    },
    /// Some content could not be listed or deleted (the namespace's
    /// `NamespaceDeletionContentFailure` condition says what).
    #[error("namespace {namespace}: {}", errors.join("; "))]
    Content {
        /// The namespace.
        namespace: String,
        /// What failed.
        errors: Vec<String>,
    },
}

impl ReconcileError for Error {
    fn is_race(&self) -> bool {
        matches!(self, Error::Api { source, .. } if source.reason == Reason::Conflict)
    }
}

/// The state shared by the workers.
pub struct Context {
    namespaces: Store<Namespace>,
    client: Client,
}

fn api_error(namespace: &str, action: &'static str) -> impl FnOnce(ApiError) -> Error {
    let namespace = namespace.to_string();
    move |source| Error::Api { namespace, action, source }
}

/// Whether `ns` is being deleted and still has the `kubernetes` finalizer.
fn awaits_finalization(ns: &Namespace) -> bool {
    ns.metadata.deletion_timestamp.is_some()
        && ns
            .spec
            .as_ref()
            .and_then(|s| s.finalizers.as_ref())
            .is_some_and(|f| f.iter().any(|f| f == NAMESPACE_FINALIZER))
}

/// When to look again at a namespace whose content is still going:
/// half the estimate, plus a second, as Kubernetes does.
fn requeue_after(content: &Content) -> Duration {
    Duration::from_secs(u64::try_from(content.estimate_seconds / 2 + 1).unwrap_or(1))
}

/// Takes the namespace `key` one step toward gone; see the module docs.
pub async fn reconcile(key: ObjectKey, ctx: Arc<Context>) -> Result<Action, Error> {
    let name = key.name.as_str();
    let Some(cached) = ctx.namespaces.get(&key) else { return Ok(Action::AwaitChange) };
    if cached.metadata.deletion_timestamp.is_none() {
        return Ok(Action::AwaitChange);
    }
    let api = Api::<Namespace>::all(ctx.client.clone());
    let Some(mut ns) = api.get_opt(name).await.map_err(api_error(name, "reading"))? else {
        return Ok(Action::AwaitChange);
    };
    if !awaits_finalization(&ns) {
        return Ok(Action::AwaitChange);
    }
    let content = deleter::delete_all_content(&ctx.client, name).await;

    let status = ns.status.get_or_insert_with(Default::default);
    let mut conditions = status.conditions.clone().unwrap_or_default();
    let now = Time(Timestamp::now());
    let phase_wrong = status.phase.as_deref() != Some("Terminating");
    if conditions::update(&mut conditions, &content, &now) || phase_wrong {
        let patch = json!({"status": {"phase": "Terminating", "conditions": conditions}});
        match api.patch_status(name, &patch).await {
            Ok(_) => {}
            Err(e) if e.reason == Reason::NotFound => return Ok(Action::AwaitChange),
            Err(e) => return Err(api_error(name, "updating the status")(e)),
        }
    }
    if !content.errors.is_empty() {
        return Err(Error::Content { namespace: name.to_string(), errors: content.errors });
    }
    if !content.remaining.is_empty() {
        debug!(controller = NAME, namespace = name, remaining = ?content.remaining, "content remains");
        return Ok(Action::RequeueAfter(requeue_after(&content)));
    }
    finalize(&api, name).await?;
    info!(controller = NAME, namespace = name, "content deleted; namespace finalized");
    Ok(Action::AwaitChange)
}

/// Removes the `kubernetes` finalizer from `spec.finalizers`, conditional
/// on the namespace not having changed since it was read; a lost race is
/// retried by the worker loop.
async fn finalize(api: &Api<Namespace>, name: &str) -> Result<(), Error> {
    let Some(ns) = api.get_opt(name).await.map_err(api_error(name, "reading"))? else { return Ok(()) };
    let rest: Vec<&String> = ns
        .spec
        .as_ref()
        .and_then(|s| s.finalizers.as_ref())
        .into_iter()
        .flatten()
        .filter(|f| *f != NAMESPACE_FINALIZER)
        .collect();
    let patch = json!({"metadata": {"resourceVersion": ns.metadata.resource_version}, "spec": {"finalizers": rest}});
    match api.patch(name, &patch).await {
        Ok(_) => Ok(()),
        Err(e) if e.reason == Reason::NotFound => Ok(()),
        Err(e) => Err(api_error(name, "removing the kubernetes finalizer")(e)),
    }
}

fn start(ctx: &ControllerContext, tracker: &TaskTracker, shutdown: CancellationToken) -> Result<(), String> {
    let flags = ctx.flags.namespace.clone();
    let namespaces = ctx.informers.get::<Namespace>();
    let pods = ctx.informers.get::<PodView>();
    let context = Arc::new(Context { namespaces: namespaces.store().clone(), client: ctx.client.clone() });
    let queue = WorkQueue::new();
    let (tracker2, observer) = (tracker.clone(), ctx.observer());
    tracker.spawn(async move {
        let synced = tokio::select! {
            _ = shutdown.cancelled() => return,
            synced = async { namespaces.wait_until_synced().await && pods.wait_until_synced().await } => synced,
        };
        if !synced {
            return;
        }
        let store = namespaces.store().clone();
        let resync = enqueue_all(store.clone(), queue.clone());
        let deleting = |ns: &Namespace| {
            if ns.metadata.deletion_timestamp.is_some() { vec![ObjectKey::of(ns)] } else { Vec::new() }
        };
        forward(&namespaces, queue.clone(), &tracker2, shutdown.clone(), deleting, resync.clone());
        // A pod gone from a terminating namespace may be the last one.
        let terminating = store.clone();
        let pod_gone = move |pod: &PodView, deleted: bool| {
            let key = ObjectKey::new("", pod.metadata.namespace.as_deref().unwrap_or_default());
            let ns_deleting = terminating.get(&key).is_some_and(|ns| ns.metadata.deletion_timestamp.is_some());
            if deleted && ns_deleting { vec![key] } else { Vec::new() }
        };
        forward_events(&pods, queue.clone(), &tracker2, shutdown.clone(), pod_gone, || {});
        let periodic = (queue.clone(), store, shutdown.clone(), flags.namespace_sync_period);
        tracker2.spawn(async move {
            let (queue, store, shutdown, period) = periodic;
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(period) => {}
                }
                store.keys().into_iter().for_each(|k| queue.add(k));
            }
        });
        resync();
        let reconcile = move |key| reconcile(key, context.clone());
        spawn_workers(NAME, queue, flags.concurrent_namespace_syncs, reconcile, observer, &tracker2, shutdown);
        info!(controller = NAME, "started");
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(value: serde_json::Value) -> Namespace {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn only_deleted_namespaces_with_the_kubernetes_finalizer_are_emptied() {
        let deleted = json!({"metadata": {"name": "a", "deletionTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"finalizers": ["kubernetes"]}});
        assert!(awaits_finalization(&ns(deleted)));
        let active = json!({"metadata": {"name": "a"}, "spec": {"finalizers": ["kubernetes"]}});
        assert!(!awaits_finalization(&ns(active)));
        let finalized = json!({"metadata": {"name": "a", "deletionTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"finalizers": ["example.com/other"]}});
        assert!(!awaits_finalization(&ns(finalized)), "another finalizer's to remove");
    }

    #[test]
    fn remaining_content_is_looked_at_again_after_half_its_estimate() {
        let content = |estimate_seconds| Content { estimate_seconds, ..Default::default() };
        assert_eq!(requeue_after(&content(30)), Duration::from_secs(16));
        assert_eq!(requeue_after(&content(0)), Duration::from_secs(1));
    }
}
