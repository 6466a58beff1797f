//! The taint eviction controller: deletes the pods of nodes with
//! `NoExecute` taints they do not tolerate, as Kubernetes'
//! `pkg/controller/tainteviction` does (split from the node lifecycle
//! controller in 1.29, same name in `--controllers`).
//!
//! A pod that does not tolerate one of its node's `NoExecute` taints goes at
//! once; one that tolerates them all with `tolerationSeconds` goes when the
//! first of them runs out, counted from the taint's `timeAdded` (or from
//! when this controller first saw the taint, if it has none); one that
//! tolerates them forever stays ([`eviction_time`]). [`reconcile`] is
//! level-triggered: it computes the time from the pod and its node in the
//! caches and comes back when it is due, so a restart loses nothing.
//!
//! Before deleting, the pod gets the condition `DisruptionTarget`
//! (`DeletionByTaintManager`), and the event `TaintManagerEviction`
//! ("Marking for deletion Pod ns/name"); a scheduled eviction that is no
//! longer due (the taint went, a toleration was added) is cancelled with
//! the event "Cancelling deletion of Pod ns/name".

use crate::controllers::pod_state::PodView;
use crate::controllers::{Controller, ControllerContext, Error};
use k8s_openapi::api::core::v1::{Node, Pod, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use rkube_api::scheduling::tolerates;
use rkube_client::controller::{Action, spawn_workers};
use rkube_client::events::EventRecorder;
use rkube_client::informers::{enqueue_all, forward, forward_events};
use rkube_client::{Api, Client, DeleteParams, ObjectKey, Reason, Store, WorkQueue};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

/// The controller's name in `--controllers`.
pub const NAME: &str = "taint-eviction-controller";

/// The reason of the events and of the `DisruptionTarget` condition.
pub const REASON_EVICTION: &str = "TaintManagerEviction";

/// Pods handled at once (Kubernetes' taint eviction workers).
const WORKERS: usize = 8;

/// The registry entry.
pub const CONTROLLER: Controller = Controller {
    name: NAME,
    about: "deletes pods from nodes with NoExecute taints they do not tolerate (or no longer)",
    enabled_by_default: true,
    check: |_| Ok(()),
    start,
};

/// When a pod with `tolerations` must leave a node with `taints`: None when
/// never (no `NoExecute` taint, or all tolerated forever); `now` when one is
/// not tolerated; otherwise the earliest `added(taint) + tolerationSeconds`
/// over the taints (each matched by the first toleration that tolerates it,
/// as Kubernetes' `GetMatchingTolerations`; seconds ≤ 0 mean at once).
pub fn eviction_time(
    tolerations: &[Toleration],
    taints: &[Taint],
    added: impl Fn(&Taint) -> Timestamp,
    now: Timestamp,
) -> Option<Timestamp> {
    let mut earliest: Option<Timestamp> = None;
    for taint in taints.iter().filter(|t| t.effect == "NoExecute") {
        let Some(toleration) = tolerations.iter().find(|t| tolerates(t, taint)) else { return Some(now) };
        let Some(seconds) = toleration.toleration_seconds else { continue };
        let at = if seconds <= 0 {
            now
        } else {
            added(taint).checked_add(SignedDuration::from_secs(seconds)).unwrap_or(Timestamp::MAX)
        };
        earliest = Some(earliest.map_or(at, |e| e.min(at)));
    }
    earliest
}

/// The `NoExecute` taints of `node`.
fn no_execute_taints(node: &Node) -> Vec<Taint> {
    let taints = node.spec.as_ref().and_then(|s| s.taints.as_deref()).unwrap_or_default();
    taints.iter().filter(|t| t.effect == "NoExecute").cloned().collect()
}

/// A taint's identity on a node, for the first-seen times.
type TaintId = (String, String, String);

fn taint_id(node: &str, t: &Taint) -> TaintId {
    (node.to_string(), t.key.clone(), t.value.clone().unwrap_or_default())
}

/// The state shared by the workers.
pub struct Context {
    pods: Store<PodView>,
    nodes: Store<Node>,
    client: Client,
    recorder: Arc<EventRecorder>,
    /// Pods with an eviction pending (for the cancelling event).
    scheduled: Mutex<HashSet<ObjectKey>>,
    /// When taints without `timeAdded` were first seen.
    first_seen: Mutex<HashMap<TaintId, Timestamp>>,
    /// Each node's `NoExecute` taints as last seen, so that only a change
    /// in them sends the node's pods to the queue.
    node_taints: Mutex<HashMap<String, Vec<Taint>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Context {
    fn added(&self, node: &str, taint: &Taint) -> Timestamp {
        match &taint.time_added {
            Some(t) => t.0,
            None => *lock(&self.first_seen).entry(taint_id(node, taint)).or_insert_with(Timestamp::now),
        }
    }

    fn cancel(&self, key: &ObjectKey, pod: Option<&PodView>) {
        if lock(&self.scheduled).remove(key)
            && let Some(pod) = pod
        {
            info!(controller = NAME, pod = %key, "eviction cancelled");
            self.recorder.normal(pod, REASON_EVICTION, format!("Cancelling deletion of Pod {key}"));
        }
    }

    /// The keys of the pods on `node` if its `NoExecute` taints changed.
    fn node_changed(&self, node: &Node, deleted: bool) -> Vec<ObjectKey> {
        let name = node.metadata.name.clone().unwrap_or_default();
        let taints = if deleted { Vec::new() } else { no_execute_taints(node) };
        {
            let mut seen = lock(&self.node_taints);
            if seen.get(&name).map_or(taints.is_empty(), |old| *old == taints) {
                return Vec::new();
            }
            if deleted {
                seen.remove(&name);
            } else {
                seen.insert(name.clone(), taints.clone());
            }
        }
        let present: HashSet<TaintId> = taints.iter().map(|t| taint_id(&name, t)).collect();
        lock(&self.first_seen).retain(|id, _| id.0 != name || present.contains(id));
        self.pods
            .list()
            .iter()
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(name.as_str()))
            .map(|p| ObjectKey::of(p.as_ref()))
            .collect()
    }
}

/// Deletes the pod `key` if its node's `NoExecute` taints say it must go
/// now, comes back when they will, or cancels a pending eviction.
pub async fn reconcile(key: ObjectKey, ctx: Arc<Context>) -> Result<Action, Error> {
    let Some(pod) = ctx.pods.get(&key) else {
        ctx.cancel(&key, None);
        return Ok(Action::AwaitChange);
    };
    if pod.metadata.deletion_timestamp.is_some() {
        lock(&ctx.scheduled).remove(&key);
        return Ok(Action::AwaitChange);
    }
    let spec = pod.spec.as_ref();
    let node_name = spec.and_then(|s| s.node_name.clone()).unwrap_or_default();
    let taints = ctx.nodes.get(&ObjectKey::new("", &node_name)).map(|n| no_execute_taints(&n)).unwrap_or_default();
    let tolerations = spec.and_then(|s| s.tolerations.as_deref()).unwrap_or_default();
    let now = Timestamp::now();
    let Some(at) = eviction_time(tolerations, &taints, |t| ctx.added(&node_name, t), now) else {
        ctx.cancel(&key, Some(&pod));
        return Ok(Action::AwaitChange);
    };
    let left = at.as_millisecond().saturating_sub(now.as_millisecond());
    if left > 0 {
        if lock(&ctx.scheduled).insert(key.clone()) {
            info!(controller = NAME, pod = %key, node = %node_name, at = %at, "eviction scheduled");
        }
        return Ok(Action::RequeueAfter(Duration::from_millis(u64::try_from(left).unwrap_or(0))));
    }
    lock(&ctx.scheduled).remove(&key);
    ctx.recorder.normal(pod.as_ref(), REASON_EVICTION, format!("Marking for deletion Pod {key}"));
    let api = Api::<Pod>::namespaced(ctx.client.clone(), &key.namespace);
    // A strategic merge patch: conditions merge by type, so the pod's
    // other conditions (which the pod view does not keep) stay.
    let condition = json!({"type": "DisruptionTarget", "status": "True", "reason": "DeletionByTaintManager",
        "message": "Taint manager: deleting due to NoExecute taint", "lastTransitionTime": Time(now)});
    let patch = json!({"metadata": {"resourceVersion": pod.metadata.resource_version},
        "status": {"conditions": [condition]}});
    match api.patch_status_strategic(&key.name, &patch).await {
        Ok(_) => {}
        Err(e) if e.reason == Reason::NotFound => return Ok(Action::AwaitChange),
        Err(e) => return Err(Error::api(&key, "adding the DisruptionTarget condition")(e)),
    }
    let params = DeleteParams { uid: pod.metadata.uid.clone().unwrap_or_default(), ..Default::default() };
    match api.delete(&key.name, &params).await {
        Ok(_) => info!(controller = NAME, pod = %key, node = %node_name, "evicted pod from tainted node"),
        Err(e) if matches!(e.reason, Reason::NotFound | Reason::Conflict) => {
            warn!(controller = NAME, pod = %key, error = %e, "pod changed before its eviction");
        }
        Err(e) => return Err(Error::api(&key, "deleting")(e)),
    }
    Ok(Action::AwaitChange)
}

fn start(ctx: &ControllerContext, tracker: &TaskTracker, shutdown: CancellationToken) -> Result<(), String> {
    let pods = ctx.informers.get::<PodView>();
    let nodes = ctx.informers.get::<Node>();
    let context = Arc::new(Context {
        pods: pods.store().clone(),
        nodes: nodes.store().clone(),
        client: ctx.client.clone(),
        recorder: ctx.recorder("taint-eviction-controller", tracker, shutdown.clone()),
        scheduled: Mutex::default(),
        first_seen: Mutex::default(),
        node_taints: Mutex::default(),
    });
    let queue = WorkQueue::new();
    let (tracker2, observer) = (tracker.clone(), ctx.observer());
    tracker.spawn(async move {
        let synced = tokio::select! {
            _ = shutdown.cancelled() => return,
            synced = async { pods.wait_until_synced().await && nodes.wait_until_synced().await } => synced,
        };
        if !synced {
            return;
        }
        let resync = enqueue_all(pods.store().clone(), queue.clone());
        let on_pod = |p: &PodView| {
            let bound = p.spec.as_ref().and_then(|s| s.node_name.as_deref()).is_some_and(|n| !n.is_empty());
            if bound { vec![ObjectKey::of(p)] } else { Vec::new() }
        };
        forward(&pods, queue.clone(), &tracker2, shutdown.clone(), on_pod, resync.clone());
        let by_node = context.clone();
        let on_node = move |n: &Node, deleted: bool| by_node.node_changed(n, deleted);
        forward_events(&nodes, queue.clone(), &tracker2, shutdown.clone(), on_node, resync.clone());
        resync();
        let reconcile = move |key| reconcile(key, context.clone());
        spawn_workers(NAME, queue, WORKERS, reconcile, observer, &tracker2, shutdown);
        info!(controller = NAME, "started");
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn tolerations(v: Value) -> Vec<Toleration> {
        serde_json::from_value(v).unwrap()
    }

    fn taint(key: &str, effect: &str, added: &str) -> Taint {
        serde_json::from_value(json!({"key": key, "effect": effect, "timeAdded": added})).unwrap()
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn when(tols: &[Toleration], taints: &[Taint]) -> Option<Timestamp> {
        eviction_time(tols, taints, |t| t.time_added.as_ref().unwrap().0, at("2026-01-01T00:10:00Z"))
    }

    #[test]
    fn untolerated_no_execute_taints_evict_at_once() {
        let unreachable = taint("node.kubernetes.io/unreachable", "NoExecute", "2026-01-01T00:00:00Z");
        assert_eq!(when(&[], std::slice::from_ref(&unreachable)), Some(at("2026-01-01T00:10:00Z")));
        let other = tolerations(json!([{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
            "effect": "NoExecute", "tolerationSeconds": 300}]));
        assert_eq!(when(&other, &[unreachable]), Some(at("2026-01-01T00:10:00Z")), "a toleration of another taint");
        let no_schedule = taint("node.kubernetes.io/unreachable", "NoSchedule", "2026-01-01T00:00:00Z");
        assert_eq!(when(&[], &[no_schedule]), None, "NoSchedule evicts nothing");
        assert_eq!(when(&[], &[]), None);
    }

    #[test]
    fn toleration_seconds_count_from_the_taints_time_added() {
        let unreachable = taint("node.kubernetes.io/unreachable", "NoExecute", "2026-01-01T00:00:00Z");
        let defaults = tolerations(json!([
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]));
        assert_eq!(when(&defaults, std::slice::from_ref(&unreachable)), Some(at("2026-01-01T00:05:00Z")));
        let forever = tolerations(json!([{"operator": "Exists"}]));
        assert_eq!(when(&forever, std::slice::from_ref(&unreachable)), None, "tolerated forever");
        let zero = tolerations(json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
            "tolerationSeconds": -5}]));
        assert_eq!(when(&zero, std::slice::from_ref(&unreachable)), Some(at("2026-01-01T00:10:00Z")), "≤ 0: now");
        let custom = taint("dedicated", "NoExecute", "2026-01-01T00:09:00Z");
        let both = tolerations(json!([
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "tolerationSeconds": 600},
            {"key": "dedicated", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30}]));
        assert_eq!(when(&both, &[unreachable, custom]), Some(at("2026-01-01T00:09:30Z")), "the earliest of the two");
    }
}
