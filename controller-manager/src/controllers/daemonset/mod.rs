//! The DaemonSet controller: one pod per eligible node, as Kubernetes'
//! `pkg/controller/daemon` keeps it.
//!
//! For each DaemonSet, [`reconcile`]:
//! 1. claims the pods of its namespace (its own, orphans its selector
//!    matches, releasing pods that stopped matching) and groups them by the
//!    node each is for ([`plan::pods_by_node`]);
//! 2. unless its own writes are still in flight ([`Expectations`]), creates
//!    a pod for every node that should run one and has none, and deletes
//!    pods on nodes that should not run them, duplicates, finished pods
//!    (failed ones with a back-off per node) and never-bound pods of nodes
//!    that are gone ([`plan::manage`]). Which nodes qualify is
//!    [`placement`]'s call: nodeSelector, required node affinity, taints
//!    against the pod's tolerations plus the defaults every daemon pod gets;
//! 3. then, if nothing was in flight, a `RollingUpdate` replaces pods of an
//!    older template, at most `maxUnavailable` nodes at a time
//!    ([`plan::rolling_update`]); `OnDelete` waits for the user to delete them;
//! 4. writes status (desired/current/misscheduled/ready/updated/available/
//!    unavailable, observedGeneration) when it changed.
//!
//! Pods are not bound here: each gets a required node affinity
//! `metadata.name In [<node>]` and the scheduler places it, as in
//! Kubernetes. Rkube stores no ControllerRevisions: a pod's template is
//! recognised by its `controller-revision-hash` label, the hash of the
//! template computed like the Deployment's `pod-template-hash`. `maxSurge`
//! is not implemented: updates replace pods in place (delete, then create).
//!
//! Nodes are watched: a node that joins, leaves, is relabelled, tainted or
//! turns (not) Ready enqueues the DaemonSets whose answer for it changed;
//! heartbeats, which change nothing placement reads, enqueue nothing.

pub mod placement;
pub mod plan;

use crate::controllers::pod_state::PodView;
use crate::controllers::template_hash::template_hash;
use crate::controllers::{Controller, ControllerContext, Error};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use placement::{Eligibility, NodeFacts, Placement, add_daemon_tolerations, pin_to_node};
use plan::{Counts, HASH_LABEL};
use rkube_api::intstr::scaled_value;
use rkube_api::selector::Selector;
use rkube_client::backoff::KeyedBackoff;
use rkube_client::controller::{
    Action, Expectations, Observations, PodControl, claim, controller_ref, plan_claim, pod_from_template, spawn_workers,
};
use rkube_client::events::{EventRecorder, EventType, object_ref};
use rkube_client::informers::{enqueue_all, forward, forward_events, owner_key, owner_keys};
use rkube_client::{Api, Event, ObjectKey, Store, WorkQueue};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info};

/// The controller's name in `--controllers`.
pub const NAME: &str = "daemonset";
/// `source.component` of its Events.
pub const COMPONENT: &str = "daemonset-controller";

/// The registry entry.
pub const CONTROLLER: Controller = Controller {
    name: NAME,
    about: "runs one pod of each DaemonSet on every eligible node",
    enabled_by_default: true,
    check: |_| Ok(()),
    start,
};

/// The DaemonSet controller's flags (kube-controller-manager's names).
#[derive(Debug, Clone, clap::Args)]
#[group(skip)]
#[command(next_help_heading = "DaemonSet controller")]
pub struct Flags {
    /// DaemonSets reconciled at once.
    #[arg(long, env = "RKUBE_CONCURRENT_DAEMONSET_SYNCS", default_value_t = 2)]
    pub concurrent_daemonset_syncs: usize,
}

/// Most pods created or deleted by one reconcile (Kubernetes' burst).
pub const BURST_REPLICAS: usize = 250;
/// The first wait before a failed daemon pod on a node is replaced again;
/// it doubles with each failure, up to [`FAILED_POD_MAX_BACKOFF`].
const FAILED_POD_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait before a failed daemon pod is replaced.
const FAILED_POD_MAX_BACKOFF: Duration = Duration::from_secs(15 * 60);

/// The state shared by the workers and the watch handlers.
pub struct Context {
    daemonsets: Store<DaemonSet>,
    pods: Store<PodView>,
    nodes: Store<Node>,
    client: rkube_client::Client,
    pod_control: PodControl,
    expectations: Expectations,
    /// Per DaemonSet, generation and node: when a failed pod may be replaced.
    failed_pods: KeyedBackoff,
    recorder: Arc<EventRecorder>,
}

/// The DaemonSet's selector; an error says what is wrong with it.
fn selector_of(ds: &DaemonSet) -> Result<Selector, String> {
    let ls = ds.spec.as_ref().map(|s| &s.selector).ok_or("spec.selector: Required value")?;
    Selector::from_label_selector(ls).map_err(|e| format!("spec.selector: {}", e.message))
}

/// `spec.updateStrategy.rollingUpdate.maxUnavailable` resolved against the
/// number of nodes that should run the pod (rounded up); 1 when it and
/// maxSurge both come to 0 (Kubernetes' `updatedDesiredNodeCounts`). None
/// for `OnDelete`.
fn max_unavailable(ds: &DaemonSet, desired: i32) -> Option<usize> {
    let strategy = ds.spec.as_ref().and_then(|s| s.update_strategy.as_ref());
    if strategy.and_then(|s| s.type_.as_deref()) == Some("OnDelete") {
        return None;
    }
    let ru = strategy.and_then(|s| s.rolling_update.as_ref());
    let get = |v: Option<&IntOrString>, default| scaled_value(v.unwrap_or(&IntOrString::Int(default)), desired, true);
    let unavailable = get(ru.and_then(|r| r.max_unavailable.as_ref()), 1);
    let surge = get(ru.and_then(|r| r.max_surge.as_ref()), 0);
    let unavailable = if desired > 0 && unavailable <= 0 && surge <= 0 { 1 } else { unavailable };
    Some(usize::try_from(unavailable).unwrap_or(0))
}

/// Keeps one pod of the DaemonSet `key` on every eligible node and its
/// status current; see the module docs.
pub async fn reconcile(key: ObjectKey, ctx: Arc<Context>) -> Result<Action, Error> {
    let Some(ds) = ctx.daemonsets.get(&key) else {
        ctx.expectations.forget(&key);
        return Ok(Action::AwaitChange);
    };
    let selector = selector_of(&ds).map_err(|message| Error::InvalidSelector { key: key.clone(), message })?;
    if selector.is_empty() {
        ctx.recorder.warning(
            ds.as_ref(),
            "SelectingAll",
            "This daemon set is selecting all pods. A non-empty selector is required.",
        );
        return Ok(Action::AwaitChange);
    }
    // Kubernetes leaves a DaemonSet being deleted alone, status included:
    // the garbage collector removes its pods.
    if ds.metadata.deletion_timestamp.is_some() {
        return Ok(Action::AwaitChange);
    }
    let Some(spec) = ds.spec.as_ref() else { return Ok(Action::AwaitChange) };
    let hash = template_hash(&spec.template, ds.status.as_ref().and_then(|s| s.collision_count));
    let placement = Placement::of(&spec.template);
    let mut nodes: Vec<NodeFacts> = ctx.nodes.list().iter().map(|n| NodeFacts::of(n)).collect();
    nodes.sort_by(|a, b| a.name.cmp(&b.name));

    let owner = controller_ref(ds.as_ref());
    let plan = plan_claim(&owner, false, &selector, ctx.pods.list_namespace(&key.namespace));
    let can_adopt = if plan.adopt.is_empty() {
        false
    } else {
        let live = Api::<DaemonSet>::namespaced(ctx.client.clone(), &key.namespace)
            .get_opt(&key.name)
            .await
            .map_err(Error::api(&key, "reading"))?;
        live.is_some_and(|l| l.metadata.uid == ds.metadata.uid && l.metadata.deletion_timestamp.is_none())
    };
    let pods_api = Api::<PodView>::namespaced(ctx.client.clone(), &key.namespace);
    let pods = claim(&pods_api, &owner, plan, can_adopt).await.map_err(Error::api(&key, "claiming pods"))?;
    let by_node = plan::pods_by_node(&pods);
    let now = Timestamp::now();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);

    let mut action = Action::AwaitChange;
    let mut failure = None;
    let satisfied = ctx.expectations.satisfied(&key);
    if satisfied {
        let manage = plan::manage(&placement, &nodes, &by_node);
        let (mut delete, backoff) = failed_pods_to_delete(&ctx, &ds, &manage);
        if let Some(wait) = backoff {
            action = Action::RequeueAfter(wait);
        }
        delete.extend(manage.delete);
        failure = sync_nodes(&ctx, &key, &ds, &hash, &manage.create_on, &delete).await.err();
        let desired = nodes.iter().filter(|n| placement.on(n).should_run).count();
        let limit = max_unavailable(&ds, i32::try_from(desired).unwrap_or(i32::MAX));
        if let (None, Some(limit)) = (&failure, limit)
            && ctx.expectations.satisfied(&key)
        {
            let old = plan::rolling_update(&placement, &nodes, &by_node, &hash, limit, min_ready, now);
            failure = sync_nodes(&ctx, &key, &ds, &hash, &[], &old).await.err();
        }
    }

    let counts = plan::status(&placement, &nodes, &by_node, &hash, min_ready, now);
    write_status(&ctx, &key, &ds, counts, satisfied).await?;
    if let Some(e) = failure {
        return Err(e);
    }
    if min_ready > 0 && counts.ready != counts.available {
        let later = Duration::from_secs(u64::try_from(min_ready).unwrap_or(0));
        action = match action {
            Action::RequeueAfter(d) => Action::RequeueAfter(d.min(later)),
            Action::AwaitChange => Action::RequeueAfter(later),
        };
    }
    Ok(action)
}

/// The failed pods to delete now (with a Warning event each), and how long
/// until the next node's back-off ends when some must wait.
fn failed_pods_to_delete(
    ctx: &Context,
    ds: &DaemonSet,
    manage: &plan::Manage,
) -> (Vec<Arc<PodView>>, Option<Duration>) {
    let mut delete = Vec::new();
    let mut wait: Option<Duration> = None;
    let now = Instant::now();
    let uid = ds.metadata.uid.as_deref().unwrap_or_default();
    let generation = ds.status.as_ref().and_then(|s| s.observed_generation).unwrap_or(0);
    for (node, pod) in &manage.failed {
        let backoff_key = format!("{uid}/{generation}/{node}");
        if let Some(remaining) = ctx.failed_pods.remaining(&backoff_key, now) {
            wait = Some(wait.map_or(remaining, |w| w.min(remaining)));
            continue;
        }
        ctx.failed_pods.next(&backoff_key, now);
        let (ns, name) =
            (pod.metadata.namespace.as_deref().unwrap_or_default(), pod.metadata.name.as_deref().unwrap_or_default());
        ctx.recorder.warning(
            ds,
            "FailedDaemonPod",
            format!("Found failed daemon pod {ns}/{name} on node {node}, will try to kill it"),
        );
        delete.push(pod.clone());
    }
    for (node, pod) in &manage.succeeded {
        let (ns, name) =
            (pod.metadata.namespace.as_deref().unwrap_or_default(), pod.metadata.name.as_deref().unwrap_or_default());
        ctx.recorder.normal(
            ds,
            "SucceededDaemonPod",
            format!("Found succeeded daemon pod {ns}/{name} on node {node}, will try to delete it"),
        );
        delete.push(pod.clone());
    }
    (delete, wait)
}

/// The pod the DaemonSet runs on `node`: its template, the hash label, the
/// daemon tolerations, and pinned to the node through node affinity.
fn daemon_pod(ds: &DaemonSet, namespace: &str, hash: &str, node: &str) -> Pod {
    let template = ds.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
    let mut pod = pod_from_template(&template, namespace, &controller_ref(ds));
    pod.metadata.labels.get_or_insert_with(BTreeMap::new).insert(HASH_LABEL.into(), hash.into());
    let spec = pod.spec.get_or_insert_with(Default::default);
    add_daemon_tolerations(spec);
    pin_to_node(spec, node);
    pod
}

/// Creates pods on `create_on` and deletes `delete` (each list capped at
/// [`BURST_REPLICAS`]), counting them in the expectations first (Kubernetes'
/// `syncNodes`). Creates go in slow-start batches.
async fn sync_nodes(
    ctx: &Context,
    key: &ObjectKey,
    ds: &DaemonSet,
    hash: &str,
    create_on: &[String],
    delete: &[Arc<PodView>],
) -> Result<(), Error> {
    let (create_on, delete) =
        (&create_on[..create_on.len().min(BURST_REPLICAS)], &delete[..delete.len().min(BURST_REPLICAS)]);
    ctx.expectations.expect(key, create_on.len(), delete.len());
    let reference = object_ref(ds);
    let mut refused = None;

    let pods: Vec<Pod> = create_on.iter().map(|node| daemon_pod(ds, &key.namespace, hash, node)).collect();
    let results = ctx.pod_control.create_slow_start(&pods).await;
    for _ in results.len()..pods.len() {
        ctx.expectations.creation_observed(key);
    }
    for (result, node) in results.into_iter().zip(create_on) {
        match result {
            Ok(created) => {
                let name = created.metadata.name.unwrap_or_default();
                debug!(controller = NAME, key = %key, pod = name, node = %node, "created pod");
                ctx.recorder.record(&reference, EventType::Normal, "SuccessfulCreate", &format!("Created pod: {name}"));
            }
            Err(e) => {
                ctx.expectations.creation_observed(key);
                ctx.recorder.record(&reference, EventType::Warning, "FailedCreate", &format!("Error creating: {e}"));
                refused.get_or_insert(Error::Api { key: key.clone(), action: "creating pods".into(), source: e });
            }
        }
    }

    let deletes = delete.iter().map(|p| {
        let name = p.metadata.name.clone().unwrap_or_default();
        let uid = p.metadata.uid.clone().unwrap_or_default();
        async move { (ctx.pod_control.delete(&key.namespace, &name, &uid).await, name) }
    });
    for (result, name) in futures::future::join_all(deletes).await {
        match result {
            Ok(true) => {
                ctx.recorder.record(&reference, EventType::Normal, "SuccessfulDelete", &format!("Deleted pod: {name}"))
            }
            Ok(false) => ctx.expectations.deletion_observed(key),
            Err(e) => {
                ctx.expectations.deletion_observed(key);
                ctx.recorder.record(&reference, EventType::Warning, "FailedDelete", &format!("Error deleting: {e}"));
                refused.get_or_insert(Error::Api { key: key.clone(), action: "deleting pods".into(), source: e });
            }
        }
    }
    if !create_on.is_empty() || !delete.is_empty() {
        info!(controller = NAME, key = %key, created = create_on.len(), deleted = delete.len(), "synced nodes");
    }
    refused.map_or(Ok(()), Err)
}

/// Writes the status when a count changed, or `observedGeneration` when
/// this reconcile acted on a newer generation (only then: one that waited
/// for its writes did not act on it).
async fn write_status(ctx: &Context, key: &ObjectKey, ds: &DaemonSet, c: Counts, acted: bool) -> Result<(), Error> {
    let old = ds.status.clone().unwrap_or_default();
    let old_counts = Counts {
        desired: old.desired_number_scheduled,
        current: old.current_number_scheduled,
        misscheduled: old.number_misscheduled,
        ready: old.number_ready,
        updated: old.updated_number_scheduled.unwrap_or(0),
        available: old.number_available.unwrap_or(0),
        unavailable: old.number_unavailable.unwrap_or(0),
    };
    let generation = ds.metadata.generation.unwrap_or(0);
    let observed = old.observed_generation.unwrap_or(0);
    let bump = acted && observed < generation;
    if old_counts == c && !bump {
        return Ok(());
    }
    let mut status = json!({
        "desiredNumberScheduled": c.desired,
        "currentNumberScheduled": c.current,
        "numberMisscheduled": c.misscheduled,
        "numberReady": c.ready,
        "updatedNumberScheduled": c.updated,
        "numberAvailable": c.available,
        "numberUnavailable": c.unavailable,
    });
    if bump {
        status["observedGeneration"] = json!(generation);
    }
    Api::<DaemonSet>::namespaced(ctx.client.clone(), &key.namespace)
        .patch_status(&key.name, &json!({ "status": status }))
        .await
        .map_err(Error::api(key, "updating status"))?;
    Ok(())
}

/// Counts pod arrivals and departures toward the expectations of the pod's
/// DaemonSet and returns the keys to reconcile: its DaemonSet, or every
/// DaemonSet of the namespace that selects an orphan.
fn pod_keys(ctx: &Context, seen: &Observations, pod: &PodView, deleted: bool) -> Vec<ObjectKey> {
    if let Some(key) = owner_key(pod, "DaemonSet") {
        seen.observe(&ctx.expectations, &key, &pod.metadata, deleted);
    }
    owner_keys(pod, "DaemonSet", &ctx.daemonsets, |ds, labels| {
        selector_of(ds).is_ok_and(|s| !s.is_empty() && s.matches(labels))
    })
}

/// The DaemonSets whose answer for a node changed between `before` and
/// `after` (None: the node was not there).
fn node_keys(ctx: &Context, before: Option<&NodeFacts>, after: Option<&NodeFacts>) -> Vec<ObjectKey> {
    ctx.daemonsets
        .list()
        .iter()
        .filter(|ds| {
            let Some(spec) = ds.spec.as_ref() else { return false };
            let p = Placement::of(&spec.template);
            let on = |n: Option<&NodeFacts>| n.map_or(Eligibility::default(), |n| p.on(n));
            on(before) != on(after)
        })
        .map(|ds| ObjectKey::of(ds.as_ref()))
        .collect()
}

fn start(ctx: &ControllerContext, tracker: &TaskTracker, shutdown: CancellationToken) -> Result<(), String> {
    let workers = ctx.flags.daemonset.concurrent_daemonset_syncs;
    let daemonsets = ctx.informers.get::<DaemonSet>();
    let pods = ctx.informers.get::<PodView>();
    let nodes = ctx.informers.get::<Node>();
    let context = Arc::new(Context {
        daemonsets: daemonsets.store().clone(),
        pods: pods.store().clone(),
        nodes: nodes.store().clone(),
        client: ctx.client.clone(),
        pod_control: PodControl::new(ctx.client.clone()),
        expectations: Expectations::default(),
        failed_pods: KeyedBackoff::new(FAILED_POD_BACKOFF, FAILED_POD_MAX_BACKOFF),
        recorder: ctx.recorder(COMPONENT, tracker, shutdown.clone()),
    });
    let queue = WorkQueue::new();
    let (tracker2, observer) = (tracker.clone(), ctx.observer());
    tracker.spawn(async move {
        let synced = tokio::select! {
            _ = shutdown.cancelled() => return,
            synced = async {
                daemonsets.wait_until_synced().await && pods.wait_until_synced().await && nodes.wait_until_synced().await
            } => synced,
        };
        if !synced {
            return;
        }
        let resync = enqueue_all(daemonsets.store().clone(), queue.clone());
        forward(&daemonsets, queue.clone(), &tracker2, shutdown.clone(), |d: &DaemonSet| vec![ObjectKey::of(d)], resync.clone());

        let (c, seen) = (context.clone(), Observations::default());
        let keys = move |pod: &PodView, deleted| pod_keys(&c, &seen, pod, deleted);
        forward_events(&pods, queue.clone(), &tracker2, shutdown.clone(), keys, resync.clone());

        let (c, q, node_store) = (context.clone(), queue.clone(), nodes.store().clone());
        let mut node_events = nodes.subscribe();
        let stop = shutdown.clone();
        tracker2.spawn(async move {
            // What placement last saw of each node, so heartbeats cost nothing.
            let mut known: HashMap<String, NodeFacts> = HashMap::new();
            loop {
                let event = tokio::select! {
                    _ = stop.cancelled() => return,
                    e = node_events.recv() => match e { Some(e) => e, None => return },
                };
                let keys = match &event {
                    Event::Applied(n) => {
                        let facts = NodeFacts::of(n);

                        let before = known.insert(facts.name.clone(), facts.clone());
                        if before.as_ref() == Some(&facts) {
                            continue;
                        }
                        node_keys(&c, before.as_ref(), Some(&facts))
                    }
                    Event::Deleted(n) => {
                        let before = known.remove(n.metadata.name.as_deref().unwrap_or_default());
                        node_keys(&c, before.as_ref(), None)
                    }
                    Event::Restarted => {
                        // The store holds a fresh list: start from it.
                        known = node_store.list().iter().map(|n| NodeFacts::of(n)).map(|f| (f.name.clone(), f)).collect();
                        resync();
                        continue;
                    }
                };
                keys.into_iter().for_each(|k| q.add(k));
            }
        });

        let reconcile = move |key| reconcile(key, context.clone());
        spawn_workers(NAME, queue, workers, reconcile, observer, &tracker2, shutdown);
        info!(controller = NAME, "started");
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ds(strategy: serde_json::Value) -> DaemonSet {
        serde_json::from_value(json!({"metadata": {"name": "agent"}, "spec": {
            "selector": {"matchLabels": {"app": "agent"}}, "updateStrategy": strategy,
            "template": {"metadata": {"labels": {"app": "agent"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}}))
        .unwrap()
    }

    #[test]
    fn max_unavailable_scales_with_the_desired_nodes_and_is_never_zero() {
        let ru = |v: serde_json::Value| ds(json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": v}}));
        assert_eq!(max_unavailable(&ru(json!(2)), 10), Some(2));
        assert_eq!(max_unavailable(&ru(json!("25%")), 10), Some(3), "rounded up");
        assert_eq!(max_unavailable(&ru(json!(0)), 10), Some(1), "both zero: one at a time");
        assert_eq!(max_unavailable(&ru(json!(0)), 0), Some(0));
        assert_eq!(max_unavailable(&ds(json!({"type": "OnDelete"})), 10), None);
        assert_eq!(max_unavailable(&ds(json!(null)), 3), Some(1), "Kubernetes' default");
    }

    #[test]
    fn daemon_pods_carry_the_hash_the_tolerations_and_their_node() {
        let mut d = ds(json!(null));
        d.metadata.uid = Some("u".into());
        let pod = daemon_pod(&d, "default", "abc", "n1");
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("agent-"));
        let labels = pod.metadata.labels.clone().unwrap();
        assert_eq!((labels["app"].as_str(), labels[HASH_LABEL].as_str()), ("agent", "abc"));
        assert_eq!(placement::target_node(&PodView::of(&pod)), Some("n1"));
        let spec = pod.spec.unwrap();
        assert_eq!(spec.node_name, None, "the scheduler binds it");
        assert_eq!(spec.tolerations.unwrap().len(), 6);
        assert_eq!(pod.metadata.owner_references.unwrap()[0].kind, "DaemonSet");
    }
}
