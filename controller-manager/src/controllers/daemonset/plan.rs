//! What a DaemonSet should do, decided from the cache alone (no I/O): which
//! nodes need a pod and which pods go ([`manage`], Kubernetes'
//! `podsShouldBeOnNode`), which old pods a rolling update replaces now
//! ([`rolling_update`]), and the status ([`status`]).

use super::placement::{NodeFacts, Placement, target_node};
use crate::controllers::pod_state::{self, PodView, phase};
use k8s_openapi::jiff::Timestamp;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The label a daemon pod carries with the hash of the template it was
/// made from (Kubernetes' `controller-revision-hash`).
pub const HASH_LABEL: &str = "controller-revision-hash";

/// A DaemonSet's pods by the node they are for ([`target_node`]). Pods that
/// are finished and being deleted are left out: there is nothing left to do
/// with them. Pods for no node are left out too.
pub fn pods_by_node(pods: &[Arc<PodView>]) -> BTreeMap<String, Vec<Arc<PodView>>> {
    let mut by_node: BTreeMap<String, Vec<Arc<PodView>>> = BTreeMap::new();
    for pod in pods {
        let terminal = matches!(phase(pod), "Succeeded" | "Failed");
        if terminal && pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        if let Some(node) = target_node(pod) {
            by_node.entry(node.to_string()).or_default().push(pod.clone());
        }
    }
    by_node
}

/// Kubernetes' `podByCreationTimestampAndPhase`: bound pods first, then
/// the oldest, then by name.
fn oldest_first(a: &Arc<PodView>, b: &Arc<PodView>) -> Ordering {
    let bound = |p: &PodView| p.spec.as_ref().and_then(|s| s.node_name.as_deref()).is_some_and(|n| !n.is_empty());
    let created = |p: &PodView| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
    bound(b)
        .cmp(&bound(a))
        .then_with(|| created(a).cmp(&created(b)))
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// What [`manage`] decided.
#[derive(Debug, Default)]
pub struct Manage {
    /// Nodes that should run a pod and have none.
    pub create_on: Vec<String>,
    /// Pods to delete: on nodes that should not run them, duplicates (all
    /// but the oldest), pods whose node is gone.
    pub delete: Vec<Arc<PodView>>,
    /// Failed pods (with their node), deleted unless the node is in back-off.
    pub failed: Vec<(String, Arc<PodView>)>,
    /// Succeeded pods (with their node), deleted to be replaced.
    pub succeeded: Vec<(String, Arc<PodView>)>,
}

/// Compares every node's pods with whether it should run one.
pub fn manage(placement: &Placement, nodes: &[NodeFacts], by_node: &BTreeMap<String, Vec<Arc<PodView>>>) -> Manage {
    let mut plan = Manage::default();
    for node in nodes {
        let eligible = placement.on(node);
        let pods = by_node.get(&node.name).map(Vec::as_slice).unwrap_or_default();
        if eligible.should_run && pods.is_empty() {
            plan.create_on.push(node.name.clone());
        } else if eligible.may_stay {
            let mut running = Vec::new();
            for pod in pods.iter().filter(|p| p.metadata.deletion_timestamp.is_none()) {
                match phase(pod) {
                    "Failed" => plan.failed.push((node.name.clone(), pod.clone())),
                    "Succeeded" => plan.succeeded.push((node.name.clone(), pod.clone())),
                    _ => running.push(pod.clone()),
                }
            }
            running.sort_by(oldest_first);
            plan.delete.extend(running.into_iter().skip(1));
        } else {
            plan.delete.extend(pods.iter().filter(|p| p.metadata.deletion_timestamp.is_none()).cloned());
        }
    }
    // Pods for nodes that are gone, never bound: no kubelet will ever stop
    // them (Kubernetes' `getUnscheduledPodsWithoutNode`).
    for (node, pods) in by_node {
        if nodes.iter().any(|n| n.name == *node) {
            continue;
        }
        let unbound =
            |p: &&Arc<PodView>| p.spec.as_ref().and_then(|s| s.node_name.as_deref()).is_none_or(str::is_empty);
        plan.delete.extend(pods.iter().filter(unbound).filter(|p| p.metadata.deletion_timestamp.is_none()).cloned());
    }
    plan
}

/// Whether `pod` was made from the template with hash `hash`.
pub fn is_updated(pod: &PodView, hash: &str) -> bool {
    pod.metadata.labels.as_ref().and_then(|l| l.get(HASH_LABEL)).is_some_and(|h| h == hash)
}

/// A node's live pods, when it has at most one up-to-date and one old.
struct NodePods<'a> {
    new: Option<&'a Arc<PodView>>,
    old: Option<&'a Arc<PodView>>,
}

/// The one up-to-date and the one old pod on a node (Kubernetes'
/// `findUpdatedPodsOnNode`); None when there are more, which [`manage`]
/// sorts out first.
fn updated_and_old<'a>(pods: &'a [Arc<PodView>], hash: &str) -> Option<NodePods<'a>> {
    let mut found = NodePods { new: None, old: None };
    for pod in pods.iter().filter(|p| p.metadata.deletion_timestamp.is_none()) {
        let slot = if is_updated(pod, hash) { &mut found.new } else { &mut found.old };
        if slot.is_some() {
            return None;
        }
        *slot = Some(pod);
    }
    Some(found)
}

/// The old pods a RollingUpdate deletes now so that new ones replace them
/// (Kubernetes' `rollingUpdate` without surge): every old pod that is not
/// available, and as many available old pods as `max_unavailable` leaves
/// room for, counting nodes whose pod is missing, not yet available or
/// being replaced as unavailable.
pub fn rolling_update(
    placement: &Placement,
    nodes: &[NodeFacts],
    by_node: &BTreeMap<String, Vec<Arc<PodView>>>,
    hash: &str,
    max_unavailable: usize,
    min_ready_seconds: i32,
    now: Timestamp,
) -> Vec<Arc<PodView>> {
    let mut candidates: BTreeMap<&str, &[Arc<PodView>]> =
        by_node.iter().map(|(node, pods)| (node.as_str(), pods.as_slice())).collect();
    for node in nodes.iter().filter(|n| placement.on(n).should_run) {
        candidates.entry(&node.name).or_default();
    }
    let available = |p: &PodView| pod_state::is_available(p, min_ready_seconds, now);
    let (mut unavailable, mut replace_now, mut replaceable) = (0, Vec::new(), Vec::new());
    for pods in candidates.values() {
        match updated_and_old(pods, hash) {
            None | Some(NodePods { new: None, old: None }) | Some(NodePods { new: Some(_), old: Some(_) }) => {
                unavailable += 1
            }
            Some(NodePods { new: Some(new), old: None }) => {
                if !available(new) {
                    unavailable += 1;
                }
            }
            Some(NodePods { new: None, old: Some(old) }) => {
                if !available(old) {
                    replace_now.push(old.clone());
                } else if unavailable < max_unavailable {
                    replaceable.push(old.clone());
                }
            }
        }
    }
    let room = max_unavailable.saturating_sub(unavailable).min(replaceable.len());
    replace_now.extend(replaceable.into_iter().take(room));
    replace_now
}

/// The DaemonSet status counts of Kubernetes' `updateDaemonSetStatus`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Nodes that should run the pod.
    pub desired: i32,
    /// Of those, nodes that have one.
    pub current: i32,
    /// Nodes that have one but should not.
    pub misscheduled: i32,
    /// Nodes whose (oldest) pod is Ready.
    pub ready: i32,
    /// Nodes whose (oldest) pod comes from the current template.
    pub updated: i32,
    /// Nodes whose (oldest) pod has been Ready for minReadySeconds.
    pub available: i32,
    /// Desired minus available.
    pub unavailable: i32,
}

/// Counts nodes and their pods for the status.
pub fn status(
    placement: &Placement,
    nodes: &[NodeFacts],
    by_node: &BTreeMap<String, Vec<Arc<PodView>>>,
    hash: &str,
    min_ready_seconds: i32,
    now: Timestamp,
) -> Counts {
    let mut c = Counts::default();
    for node in nodes {
        let scheduled = by_node.get(&node.name).filter(|pods| !pods.is_empty());
        if !placement.on(node).should_run {
            c.misscheduled += i32::from(scheduled.is_some());
            continue;
        }
        c.desired += 1;
        let Some(pods) = scheduled else { continue };
        c.current += 1;
        let mut pods = pods.clone();
        pods.sort_by(oldest_first);
        let pod = &pods[0];
        if pod_state::is_ready(pod) {
            c.ready += 1;
            c.available += i32::from(pod_state::is_available(pod, min_ready_seconds, now));
        }
        c.updated += i32::from(is_updated(pod, hash));
    }
    c.unavailable = c.desired - c.available;
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodTemplateSpec;
    use serde_json::{Value, json};

    fn placement(node_selector: Value) -> Placement {
        let t: PodTemplateSpec = serde_json::from_value(json!({"metadata": {"labels": {"app": "a"}},
            "spec": {"nodeSelector": node_selector, "containers": [{"name": "c", "image": "i"}]}}))
        .unwrap();
        Placement::of(&t)
    }

    fn node(name: &str, labels: Value) -> NodeFacts {
        NodeFacts::of(
            &serde_json::from_value(json!({"metadata": {"name": name, "labels": labels},
                "status": {"conditions": [{"type": "Ready", "status": "True"}]}}))
            .unwrap(),
        )
    }

    /// A pod for `node` with template hash `hash`, `phase`, ready or not,
    /// created at minute `created`.
    fn pod(name: &str, node: &str, hash: &str, phase: &str, ready: bool, created: u32) -> Arc<PodView> {
        let conditions = if ready {
            json!([{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}])
        } else {
            json!([])
        };
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "labels": {HASH_LABEL: hash},
                    "creationTimestamp": format!("2026-01-01T00:{created:02}:00Z")},
                "spec": {"containers": [], "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                    {"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]}}}},
                "status": {"phase": phase, "conditions": conditions}}))
            .unwrap(),
        )
    }

    fn names(pods: &[Arc<PodView>]) -> Vec<&str> {
        pods.iter().map(|p| p.metadata.name.as_deref().unwrap()).collect()
    }

    fn now() -> Timestamp {
        "2026-01-01T01:00:00Z".parse().unwrap()
    }

    #[test]
    fn eligible_nodes_get_one_pod_and_the_rest_lose_theirs() {
        let p = placement(json!({"disk": "ssd"}));
        let nodes = [node("a", json!({"disk": "ssd"})), node("b", json!({"disk": "ssd"})), node("c", json!({}))];
        let pods = [
            pod("on-b-old", "b", "h", "Running", true, 1),
            pod("on-b-new", "b", "h", "Running", true, 2),
            pod("on-c", "c", "h", "Running", true, 1),
            pod("on-gone", "gone", "h", "Pending", false, 1),
        ];
        let plan = manage(&p, &nodes, &pods_by_node(&pods));
        assert_eq!(plan.create_on, ["a"]);
        assert_eq!(names(&plan.delete), ["on-b-new", "on-c", "on-gone"], "the duplicate, the misplaced, the orphaned");
        assert!(plan.failed.is_empty() && plan.succeeded.is_empty());
    }

    #[test]
    fn finished_pods_are_replaced_and_terminating_ones_waited_for() {
        let p = placement(json!({}));
        let nodes = [node("a", json!({})), node("b", json!({})), node("c", json!({}))];
        let mut terminating = (*pod("terminating", "c", "h", "Running", true, 1)).clone();
        terminating.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now()));
        let pods = [
            pod("failed", "a", "h", "Failed", false, 1),
            pod("done", "b", "h", "Succeeded", false, 1),
            Arc::new(terminating),
        ];
        let plan = manage(&p, &nodes, &pods_by_node(&pods));
        assert!(plan.create_on.is_empty(), "every node still has its pod until it is gone");
        assert_eq!(plan.failed.len(), 1);
        assert_eq!(plan.failed[0].0, "a");
        assert_eq!(names(&[plan.succeeded[0].1.clone()]), ["done"]);
        assert!(plan.delete.is_empty());
    }

    #[test]
    fn rolling_update_replaces_unavailable_pods_first_then_up_to_max_unavailable() {
        let p = placement(json!({}));
        let nodes: Vec<NodeFacts> = ["a", "b", "c", "d"].iter().map(|n| node(n, json!({}))).collect();
        let pods = [
            pod("a-old-ready", "a", "old", "Running", true, 1),
            pod("b-old-ready", "b", "old", "Running", true, 1),
            pod("c-old-broken", "c", "old", "Running", false, 1),
            pod("d-new-ready", "d", "new", "Running", true, 1),
        ];
        let by_node = pods_by_node(&pods);
        let delete = rolling_update(&p, &nodes, &by_node, "new", 1, 0, now());
        assert_eq!(names(&delete), ["c-old-broken", "a-old-ready"]);
        // A node whose new pod is not ready yet uses up maxUnavailable.
        let pods = [
            pod("a-old-ready", "a", "old", "Running", true, 1),
            pod("b-new-starting", "b", "new", "Pending", false, 1),
        ];
        let delete = rolling_update(&p, &nodes[..2], &pods_by_node(&pods), "new", 1, 0, now());
        assert!(delete.is_empty(), "{:?}", names(&delete));
        let delete = rolling_update(&p, &nodes[..2], &pods_by_node(&pods), "new", 2, 0, now());
        assert_eq!(names(&delete), ["a-old-ready"]);
        // A node still waiting for its first pod counts as unavailable too.
        let pods = [pod("a-old-ready", "a", "old", "Running", true, 1)];
        assert!(rolling_update(&p, &nodes[..2], &pods_by_node(&pods), "new", 1, 0, now()).is_empty());
    }

    #[test]
    fn status_counts_nodes_by_their_oldest_pod() {
        let p = placement(json!({"disk": "ssd"}));
        let nodes = [node("a", json!({"disk": "ssd"})), node("b", json!({"disk": "ssd"})), node("c", json!({}))];
        let pods = [
            pod("a-old", "a", "new", "Running", true, 1),
            pod("a-dup", "a", "old", "Pending", false, 2),
            pod("c-misplaced", "c", "new", "Running", true, 1),
        ];
        let c = status(&p, &nodes, &pods_by_node(&pods), "new", 0, now());
        assert_eq!(
            c,
            Counts { desired: 2, current: 1, misscheduled: 1, ready: 1, updated: 1, available: 1, unavailable: 1 }
        );
        let c = status(&p, &nodes, &pods_by_node(&pods), "new", 7200, now());
        assert_eq!((c.ready, c.available, c.unavailable), (1, 0, 2), "not ready for minReadySeconds yet");
    }
}
