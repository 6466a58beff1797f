//! The replication controller (ReplicationController) and the replicaset
//! controller (ReplicaSet): one implementation over [`ReplicaKind`], as in
//! Kubernetes, where the RC controller is the RS controller behind an
//! adapter (`pkg/controller/replicaset/replica_set.go`).
//!
//! For each object, [`reconcile`]:
//! 1. claims the active pods of its namespace: its own, orphans its selector
//!    matches (adopted), and its pods that stopped matching (released);
//! 2. unless writes it made are still in flight ([`Expectations`]), creates
//!    or deletes the difference to `spec.replicas`: creations in slow-start
//!    batches of 1, 2, 4, … that stop at the first refusal, so a broken
//!    template costs one failed create per attempt, not hundreds; deletions
//!    pick the cheapest pods first ([`pod_state::deletion_order`]);
//! 3. writes status: replicas, fullyLabeledReplicas, readyReplicas,
//!    availableReplicas (ready for minReadySeconds), observedGeneration and
//!    a `ReplicaFailure` condition while creates or deletes are refused.
//!
//! A refused write is a `FailedCreate`/`FailedDelete` Warning event and an
//! error, retried with the work queue's growing back-off.

pub mod kind;

use crate::controllers::pod_state::{self, PodView, is_active};
use crate::controllers::{Controller, ControllerContext, Error};
use futures::future::join_all;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::ReplicationController;
use k8s_openapi::jiff::Timestamp;
pub use kind::ReplicaKind;
use rkube_client::controller::{
    Action, Expectations, Observations, PodControl, claim, controller_ref, plan_claim, pod_from_template,
    spawn_workers, status_patch,
};
use rkube_client::events::{EventRecorder, EventType, object_ref};
use rkube_client::informers::{enqueue_all, forward, forward_events, owner_key, owner_keys};
use rkube_client::{Api, ObjectKey, Store, WorkQueue};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info};

/// The registry entry of the ReplicationController controller.
pub const REPLICATION: Controller = Controller {
    name: ReplicationController::CONTROLLER,
    about: "keeps spec.replicas pods of each ReplicationController",
    enabled_by_default: true,
    check: |_| Ok(()),
    start: start::<ReplicationController>,
};

/// The registry entry of the ReplicaSet controller.
pub const REPLICASET: Controller = Controller {
    name: ReplicaSet::CONTROLLER,
    about: "keeps spec.replicas pods of each ReplicaSet",
    enabled_by_default: true,
    check: |_| Ok(()),
    start: start::<ReplicaSet>,
};

/// The flags of both controllers (kube-controller-manager's names).
#[derive(Debug, Clone, clap::Args)]
#[group(skip)]
#[command(next_help_heading = "ReplicationController and ReplicaSet controllers")]
pub struct Flags {
    /// ReplicationControllers reconciled at once.
    #[arg(long, env = "RKUBE_CONCURRENT_RC_SYNCS", default_value_t = 5)]
    pub concurrent_rc_syncs: usize,
    /// ReplicaSets reconciled at once.
    #[arg(long, env = "RKUBE_CONCURRENT_REPLICASET_SYNCS", default_value_t = 5)]
    pub concurrent_replicaset_syncs: usize,
}

/// Most pods created or deleted by one reconcile (Kubernetes' burst).
pub const BURST_REPLICAS: usize = 500;
/// The condition type set while pods cannot be created or deleted.
pub const REPLICA_FAILURE: &str = "ReplicaFailure";
/// The action of a failed deletion (a `FailedDelete` ReplicaFailure).
const DELETING: &str = "deleting pods";

/// The state shared by a controller's workers and watch handlers.
pub struct Context<K> {
    objects: Store<K>,
    pods: Store<PodView>,
    client: rkube_client::Client,
    pod_control: PodControl,
    expectations: Expectations,
    recorder: Arc<EventRecorder>,
    _kind: PhantomData<K>,
}

/// Keeps the object `key`'s pods at `spec.replicas` and its status current;
/// see the module docs.
pub async fn reconcile<K: ReplicaKind>(key: ObjectKey, ctx: Arc<Context<K>>) -> Result<Action, Error> {
    let Some(obj) = ctx.objects.get(&key) else {
        ctx.expectations.forget(&key);
        return Ok(Action::AwaitChange);
    };
    let selector = obj.selector().map_err(|message| Error::InvalidSelector { key: key.clone(), message })?;
    let owner = controller_ref(obj.as_ref());
    let deleting = obj.metadata().deletion_timestamp.is_some();
    let api = Api::<K>::namespaced(ctx.client.clone(), &key.namespace);
    let candidates = ctx.pods.list_namespace(&key.namespace).into_iter().filter(|p| is_active(p));
    let plan = plan_claim(&owner, deleting, &selector, candidates);
    let can_adopt = if plan.adopt.is_empty() {
        false
    } else {
        // Adopt only for the object that really is there (not one deleted and
        // recreated under the same name since the cache saw it).
        let live = api.get_opt(&key.name).await.map_err(Error::api(&key, "reading"))?;
        live.is_some_and(|l| l.metadata().uid == obj.metadata().uid && l.metadata().deletion_timestamp.is_none())
    };
    let pods_api = Api::<PodView>::namespaced(ctx.client.clone(), &key.namespace);
    let pods = claim(&pods_api, &owner, plan, can_adopt).await.map_err(Error::api(&key, "claiming pods"))?;

    let mut failure = None;
    if ctx.expectations.satisfied(&key) && !deleting {
        failure = manage_replicas(&ctx, &key, obj.as_ref(), &pods).await.err();
    }
    let now = Timestamp::now();
    let status = status_of(obj.as_ref(), &pods, failure.as_ref(), now);
    let current = obj.status_json();
    if status != current {
        api.patch_status(&key.name, &status_patch(&current, &status))
            .await
            .map_err(Error::api(&key, "updating status"))?;
    }
    if let Some(e) = failure {
        return Err(e);
    }
    let min_ready = obj.min_ready_seconds();
    let ready = status["readyReplicas"].as_i64().unwrap_or(0);
    if min_ready > 0 && ready != status["availableReplicas"].as_i64().unwrap_or(0) {
        // Look again when the ready pods have been ready long enough.
        return Ok(Action::RequeueAfter(Duration::from_secs(min_ready as u64)));
    }
    Ok(Action::AwaitChange)
}

/// Creates or deletes pods so that `pods` (the active ones `obj` controls)
/// number `spec.replicas`.
async fn manage_replicas<K: ReplicaKind>(
    ctx: &Context<K>,
    key: &ObjectKey,
    obj: &K,
    pods: &[Arc<PodView>],
) -> Result<(), Error> {
    let want = usize::try_from(obj.replicas()).unwrap_or(0);
    let reference = object_ref(obj);
    if pods.len() < want {
        let Some(template) = obj.template() else { return Ok(()) };
        let count = (want - pods.len()).min(BURST_REPLICAS);
        ctx.expectations.expect(key, count, 0);
        let pod = pod_from_template(template, &key.namespace, &controller_ref(obj));
        let results = ctx.pod_control.create_slow_start(&vec![pod; count]).await;
        // The pods never attempted will not arrive either.
        for _ in results.len()..count {
            ctx.expectations.creation_observed(key);
        }
        let mut refused = None;
        for result in results {
            match result {
                Ok(created) => {
                    let name = created.metadata.name.unwrap_or_default();
                    debug!(controller = K::CONTROLLER, key = %key, pod = name, "created pod");
                    let message = format!("Created pod: {name}");
                    ctx.recorder.record(&reference, EventType::Normal, "SuccessfulCreate", &message);
                }
                Err(e) => {
                    ctx.expectations.creation_observed(key);
                    let message = format!("Error creating: {e}");
                    ctx.recorder.record(&reference, EventType::Warning, "FailedCreate", &message);
                    refused.get_or_insert(e);
                }
            }
        }
        if let Some(source) = refused {
            return Err(Error::Api { key: key.clone(), action: "creating pods".into(), source });
        }
        info!(controller = K::CONTROLLER, key = %key, created = count, replicas = want, "scaled up");
    } else if pods.len() > want {
        let count = (pods.len() - want).min(BURST_REPLICAS);
        let mut victims: Vec<&Arc<PodView>> = pods.iter().collect();
        victims.sort_by(|a, b| pod_state::deletion_order(a, b));
        victims.truncate(count);
        ctx.expectations.expect(key, 0, count);
        let deletes = victims.iter().map(|p| {
            let name = p.metadata.name.clone().unwrap_or_default();
            let uid = p.metadata.uid.clone().unwrap_or_default();
            async move { (ctx.pod_control.delete(&key.namespace, &name, &uid).await, name) }
        });
        let mut refused = None;
        for (result, name) in join_all(deletes).await {
            match result {
                Ok(true) => ctx.recorder.record(
                    &reference,
                    EventType::Normal,
                    "SuccessfulDelete",
                    &format!("Deleted pod: {name}"),
                ),
                Ok(false) => ctx.expectations.deletion_observed(key),
                Err(e) => {
                    ctx.expectations.deletion_observed(key);
                    ctx.recorder.record(
                        &reference,
                        EventType::Warning,
                        "FailedDelete",
                        &format!("Error deleting: {e}"),
                    );
                    refused.get_or_insert(e);
                }
            }
        }
        if let Some(source) = refused {
            return Err(Error::Api { key: key.clone(), action: DELETING.into(), source });
        }
        info!(controller = K::CONTROLLER, key = %key, deleted = count, replicas = want, "scaled down");
    }
    Ok(())
}

/// The status `obj` should have with `pods` (the active pods it controls).
fn status_of<K: ReplicaKind>(obj: &K, pods: &[Arc<PodView>], failure: Option<&Error>, now: Timestamp) -> Value {
    let template_labels = obj.template().and_then(|t| t.metadata.as_ref()).and_then(|m| m.labels.clone());
    let template_labels = template_labels.unwrap_or_default();
    let empty = BTreeMap::new();
    let fully_labeled = pods
        .iter()
        .filter(|p| {
            let labels = p.metadata.labels.as_ref().unwrap_or(&empty);
            template_labels.iter().all(|(k, v)| labels.get(k) == Some(v))
        })
        .count();
    let ready = pods.iter().filter(|p| pod_state::is_ready(p)).count();
    let available = pods.iter().filter(|p| pod_state::is_available(p, obj.min_ready_seconds(), now)).count();
    let old = obj.status_json();
    let mut conditions: Vec<Value> = old["conditions"]
        .as_array()
        .map(|cs| cs.iter().filter(|c| c["type"] != REPLICA_FAILURE).cloned().collect())
        .unwrap_or_default();
    if let Some(e) = failure {
        let (reason, message) = match e {
            Error::Api { action, source, .. } if action == DELETING => ("FailedDelete", source.to_string()),
            Error::Api { source, .. } => ("FailedCreate", source.to_string()),
            Error::InvalidSelector { message, .. } => ("FailedCreate", message.clone()),
        };
        let earlier = old["conditions"].as_array().and_then(|cs| cs.iter().find(|c| c["type"] == REPLICA_FAILURE));
        let since = earlier.map_or_else(|| json!(now.to_string()), |c| c["lastTransitionTime"].clone());
        conditions.push(json!({"type": REPLICA_FAILURE, "status": "True", "reason": reason, "message": message,
            "lastTransitionTime": since}));
    }
    let mut status = json!({
        "replicas": pods.len(),
        "fullyLabeledReplicas": fully_labeled,
        "readyReplicas": ready,
        "availableReplicas": available,
        "observedGeneration": obj.metadata().generation.unwrap_or(0),
    });
    if !conditions.is_empty() {
        status["conditions"] = Value::Array(conditions);
    }
    // Kubernetes omits zero counts (omitempty); so do we, so that an
    // unchanged status compares equal to the stored one.
    if let Some(map) = status.as_object_mut() {
        map.retain(|k, v| k == "replicas" || v.as_i64() != Some(0));
    }
    status
}

/// Counts pod arrivals and departures toward the expectations of the pod's
/// controller, and returns the keys to reconcile: the pod's controller, or
/// every object of the namespace that selects an orphan.
fn pod_keys<K: ReplicaKind>(ctx: &Context<K>, seen: &Observations, pod: &PodView, deleted: bool) -> Vec<ObjectKey> {
    if let Some(key) = owner_key(pod, K::KIND) {
        seen.observe(&ctx.expectations, &key, &pod.metadata, deleted);
    }
    owner_keys(pod, K::KIND, &ctx.objects, |o, labels| o.selector().is_ok_and(|s| s.matches(labels)))
}

fn start<K: ReplicaKind>(
    ctx: &ControllerContext,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
) -> Result<(), String> {
    let workers = match K::CONTROLLER {
        "replication" => ctx.flags.replicaset.concurrent_rc_syncs,
        _ => ctx.flags.replicaset.concurrent_replicaset_syncs,
    };
    let objects = ctx.informers.get::<K>();
    let pods = ctx.informers.get::<PodView>();
    let context = Arc::new(Context {
        objects: objects.store().clone(),
        pods: pods.store().clone(),
        client: ctx.client.clone(),
        pod_control: PodControl::new(ctx.client.clone()),
        expectations: Expectations::default(),
        recorder: ctx.recorder(K::COMPONENT, tracker, shutdown.clone()),
        _kind: PhantomData,
    });
    let queue = WorkQueue::new();
    let (tracker2, observer) = (tracker.clone(), ctx.observer());
    tracker.spawn(async move {
        let synced = tokio::select! {
            _ = shutdown.cancelled() => return,
            synced = async { objects.wait_until_synced().await && pods.wait_until_synced().await } => synced,
        };
        if !synced {
            return;
        }
        let resync = enqueue_all(objects.store().clone(), queue.clone());
        forward(&objects, queue.clone(), &tracker2, shutdown.clone(), |o: &K| vec![ObjectKey::of(o)], resync.clone());
        let (c, seen) = (context.clone(), Observations::default());
        let keys = move |pod: &PodView, deleted| pod_keys(&c, &seen, pod, deleted);
        forward_events(&pods, queue.clone(), &tracker2, shutdown.clone(), keys, resync);
        let reconcile = move |key| reconcile(key, context.clone());
        spawn_workers(K::CONTROLLER, queue, workers, reconcile, observer, &tracker2, shutdown);
        info!(controller = K::CONTROLLER, "started");
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rc(v: Value) -> ReplicationController {
        serde_json::from_value(v).unwrap()
    }

    fn pod(v: Value) -> Arc<PodView> {
        Arc::new(serde_json::from_value(v).unwrap())
    }

    #[test]
    fn status_counts_labeled_ready_and_available_pods() {
        let obj = rc(json!({"metadata": {"name": "web", "generation": 3},
            "spec": {"replicas": 3, "minReadySeconds": 30, "selector": {"app": "web"},
                "template": {"metadata": {"labels": {"app": "web", "tier": "fe"}}, "spec": {"containers": []}}}}));
        let now: Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
        let ready = |since: &str| json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": since}]});
        let pods = [
            pod(json!({"metadata": {"labels": {"app": "web", "tier": "fe"}}, "status": ready("2026-01-01T00:00:00Z")})),
            pod(json!({"metadata": {"labels": {"app": "web"}}, "status": ready("2026-01-01T00:00:50Z")})),
            pod(json!({"metadata": {"labels": {"app": "web", "tier": "fe"}}, "status": {"phase": "Pending"}})),
        ];
        let status = status_of(&obj, &pods, None, now);
        assert_eq!(
            status,
            json!({"replicas": 3, "fullyLabeledReplicas": 2, "readyReplicas": 2, "availableReplicas": 1,
                "observedGeneration": 3})
        );
    }

    #[test]
    fn a_refused_create_sets_replica_failure_and_success_clears_it() {
        let obj = rc(json!({"metadata": {"name": "web"}, "spec": {"replicas": 1, "selector": {"app": "web"}}}));
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let refused = Error::Api {
            key: ObjectKey::new("default", "web"),
            action: "creating pods".into(),
            source: rkube_client::ApiError::new(
                rkube_client::Reason::Forbidden,
                "pods \"web-\" is forbidden: exceeded quota",
            ),
        };
        let status = status_of(&obj, &[], Some(&refused), now);
        assert_eq!(status["conditions"][0]["type"], REPLICA_FAILURE);
        assert_eq!(status["conditions"][0]["reason"], "FailedCreate");
        assert!(status["conditions"][0]["message"].as_str().unwrap().contains("exceeded quota"));
        let mut failed = obj.clone();
        failed.status = serde_json::from_value(status).unwrap();
        let status = status_of(&failed, &[], None, now);
        assert!(status.get("conditions").is_none(), "{status}");
        assert_eq!(status, json!({"replicas": 0}));
    }
}
