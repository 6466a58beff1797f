//! Filters: can this pod run on this node at all? Each mirrors a
//! kube-scheduler filter plugin and, when it says no, gives Kubernetes'
//! reason, which ends up counted in the pod's `0/N nodes are available: ...`
//! message.
//!
//! [`filter`] runs them in kube-scheduler's order (NodeUnschedulable,
//! TaintToleration, NodeAffinity, NodePorts, NodeResourcesFit) and stops at
//! the first that fails; only the resource filter reports several reasons at
//! once (one per insufficient resource).

use crate::cache::{NodeInfo, TAINT_UNSCHEDULABLE};
use crate::pod_info::PodInfo;
use k8s_openapi::api::core::v1::Taint;
pub use rkube_api::scheduling::{tolerated, tolerates};
use std::fmt;

/// Why a node cannot take a pod, worded as in Kubernetes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason<'a> {
    /// The node is cordoned and the pod does not tolerate that.
    Unschedulable,
    /// The node has a NoSchedule/NoExecute taint (key, value) the pod does not tolerate.
    UntoleratedTaint(&'a str, &'a str),
    /// The node fails the pod's nodeSelector or required node affinity.
    NodeAffinity,
    /// A host port the pod needs is taken on the node.
    NodePorts,
    /// The node runs as many pods as it may.
    TooManyPods,
    /// Not enough of this resource is left (`cpu`, `memory`, ...).
    Insufficient(&'a str),
}

impl fmt::Display for Reason<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Unschedulable => f.write_str("node(s) were unschedulable"),
            Reason::UntoleratedTaint(key, value) => write!(f, "node(s) had untolerated taint {{{key}: {value}}}"),
            Reason::NodeAffinity => f.write_str("node(s) didn't match Pod's node affinity/selector"),
            Reason::NodePorts => f.write_str("node(s) didn't have free ports for the requested pod ports"),
            Reason::TooManyPods => f.write_str("Too many pods"),
            Reason::Insufficient(resource) => write!(f, "Insufficient {resource}"),
        }
    }
}

/// NodeUnschedulable: a cordoned node takes only pods tolerating
/// `node.kubernetes.io/unschedulable:NoSchedule`.
pub fn node_unschedulable(pod: &PodInfo, node: &NodeInfo) -> Option<Reason<'static>> {
    if !node.props.unschedulable {
        return None;
    }
    let taint = Taint { key: TAINT_UNSCHEDULABLE.into(), effect: "NoSchedule".into(), ..Default::default() };
    (!tolerated(&pod.tolerations, &taint)).then_some(Reason::Unschedulable)
}

/// TaintToleration: the first NoSchedule or NoExecute taint the pod does not tolerate.
pub fn taint_toleration<'a>(pod: &PodInfo, node: &'a NodeInfo) -> Option<Reason<'a>> {
    node.props
        .taints
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .find(|t| !tolerated(&pod.tolerations, t))
        .map(|t| Reason::UntoleratedTaint(&t.key, t.value.as_deref().unwrap_or_default()))
}

/// Whether the node satisfies the pod's nodeSelector and required node
/// affinity (whose terms are ORed).
pub fn matches_node_affinity(pod: &PodInfo, node: &NodeInfo) -> bool {
    let labels = &node.props.labels;
    pod.node_selector.iter().all(|(k, v)| labels.get(k) == Some(v))
        && pod.required_terms.as_ref().is_none_or(|terms| terms.iter().any(|t| t.matches(&node.props.name, labels)))
}

/// NodeAffinity: nodeSelector and required node affinity.
pub fn node_affinity(pod: &PodInfo, node: &NodeInfo) -> Option<Reason<'static>> {
    (!matches_node_affinity(pod, node)).then_some(Reason::NodeAffinity)
}

/// NodePorts: every host port the pod needs must be free on the node.
pub fn node_ports(pod: &PodInfo, node: &NodeInfo) -> Option<Reason<'static>> {
    let taken =
        pod.usage.host_ports.iter().any(|want| node.usage.host_ports.iter().any(|used| want.conflicts_with(used)));
    taken.then_some(Reason::NodePorts)
}

/// NodeResourcesFit: room for one more pod, and for every resource the pod
/// requests, allocatable minus what is requested already covers it. Pushes
/// one reason per shortfall.
pub fn fits_resources<'a>(pod: &'a PodInfo, node: &NodeInfo, reasons: &mut Vec<Reason<'a>>) {
    let alloc = &node.props.allocatable;
    let used = &node.usage.requested;
    let want = &pod.usage.requests;
    if i64::try_from(node.usage.pods).unwrap_or(i64::MAX).saturating_add(1) > alloc.pods {
        reasons.push(Reason::TooManyPods);
    }
    let short = |want: i64, alloc: i64, used: i64| want > 0 && want > alloc.saturating_sub(used);
    if short(want.milli_cpu, alloc.resources.milli_cpu, used.milli_cpu) {
        reasons.push(Reason::Insufficient("cpu"));
    }
    if short(want.memory, alloc.resources.memory, used.memory) {
        reasons.push(Reason::Insufficient("memory"));
    }
    if short(want.ephemeral_storage, alloc.resources.ephemeral_storage, used.ephemeral_storage) {
        reasons.push(Reason::Insufficient("ephemeral-storage"));
    }
    for (name, amount) in &want.scalar {
        if short(*amount, alloc.resources.scalar(name), used.scalar(name)) {
            reasons.push(Reason::Insufficient(name));
        }
    }
}

/// Runs every filter in order; true when the node fits. Otherwise the
/// reasons of the first failing filter are pushed onto `reasons`.
pub fn filter<'a>(pod: &'a PodInfo, node: &'a NodeInfo, reasons: &mut Vec<Reason<'a>>) -> bool {
    let single = node_unschedulable(pod, node)
        .or_else(|| taint_toleration(pod, node))
        .or_else(|| node_affinity(pod, node))
        .or_else(|| node_ports(pod, node));
    if let Some(reason) = single {
        reasons.push(reason);
        return false;
    }
    let before = reasons.len();
    fits_resources(pod, node, reasons);
    reasons.len() == before
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{node, pod};
    use serde_json::{Value, json};

    fn run(pod: &PodInfo, node: &NodeInfo) -> Vec<String> {
        let mut reasons = Vec::new();
        let fits = filter(pod, node, &mut reasons);
        assert_eq!(fits, reasons.is_empty());
        reasons.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn an_empty_pod_fits_a_ready_node() {
        assert!(run(&pod(json!({})), &node(json!({"metadata": {"name": "n1"}}))).is_empty());
    }

    #[test]
    fn cordoned_nodes_refuse_pods_unless_tolerated() {
        let n = node(json!({"metadata": {"name": "n1"}, "spec": {"unschedulable": true}}));
        assert_eq!(run(&pod(json!({})), &n), ["node(s) were unschedulable"]);
        let tolerant =
            pod(json!({"tolerations": [{"key": TAINT_UNSCHEDULABLE, "operator": "Exists", "effect": "NoSchedule"}]}));
        assert!(run(&tolerant, &n).is_empty());
    }

    #[test]
    fn untolerated_no_schedule_and_no_execute_taints_refuse_pods() {
        let n = node(json!({"metadata": {"name": "n1"}, "spec": {"taints": [
            {"key": "soft", "value": "x", "effect": "PreferNoSchedule"},
            {"key": "dedicated", "value": "db", "effect": "NoSchedule"},
            {"key": "evict", "effect": "NoExecute"}]}}));
        assert_eq!(run(&pod(json!({})), &n), ["node(s) had untolerated taint {dedicated: db}"]);
        let one = pod(
            json!({"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}]}),
        );
        assert_eq!(run(&one, &n), ["node(s) had untolerated taint {evict: }"]);
        let both =
            pod(json!({"tolerations": [{"key": "dedicated", "value": "db"}, {"key": "evict", "operator": "Exists"}]}));
        assert!(run(&both, &n).is_empty());
        let everything = pod(json!({"tolerations": [{"operator": "Exists"}]}));
        assert!(run(&everything, &n).is_empty());
    }

    #[test]
    fn not_ready_nodes_are_filtered_by_the_not_ready_taint() {
        let n =
            node(json!({"metadata": {"name": "n1"}, "status": {"conditions": [{"type": "Ready", "status": "False"}]}}));
        assert_eq!(run(&pod(json!({})), &n), ["node(s) had untolerated taint {node.kubernetes.io/not-ready: }"]);
    }

    #[test]
    fn node_selector_and_required_affinity_must_both_match() {
        let n = node(json!({"metadata": {"name": "n1", "labels": {"zone": "north", "cores": "8"}}}));
        assert!(run(&pod(json!({"nodeSelector": {"zone": "north"}})), &n).is_empty());
        assert_eq!(run(&pod(json!({"nodeSelector": {"zone": "south"}})), &n), [Reason::NodeAffinity.to_string()]);
        let affinity = |op: &str, values: Value| {
            pod(json!({"nodeSelector": {"zone": "north"}, "affinity": {"nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "disk", "operator": "Exists"}]},
                    {"matchExpressions": [{"key": "cores", "operator": op, "values": values}]}]}}}}))
        };
        assert!(run(&affinity("Gt", json!(["4"])), &n).is_empty(), "the second term matches");
        assert_eq!(run(&affinity("Lt", json!(["4"])), &n), [Reason::NodeAffinity.to_string()]);
        assert_eq!(run(&affinity("NotIn", json!(["8"])), &n), [Reason::NodeAffinity.to_string()]);
    }

    #[test]
    fn daemon_pods_pinned_by_node_name_fields_fit_their_node_only() {
        let pinned = pod(json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
            {"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}]}}}}));
        assert!(run(&pinned, &node(json!({"metadata": {"name": "n2"}}))).is_empty());
        assert_eq!(run(&pinned, &node(json!({"metadata": {"name": "n1"}}))), [Reason::NodeAffinity.to_string()]);
    }

    #[test]
    fn taken_host_ports_refuse_pods() {
        let mut n = node(json!({"metadata": {"name": "n1"}}));
        let web = pod(json!({"containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 8080}]}]}));
        assert!(run(&web, &n).is_empty());
        n.usage.host_ports.extend(web.usage.host_ports.iter().cloned());
        assert_eq!(run(&web, &n), ["node(s) didn't have free ports for the requested pod ports"]);
        let udp = pod(
            json!({"containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 8080, "protocol": "UDP"}]}]}),
        );
        assert!(run(&udp, &n).is_empty());
    }

    #[test]
    fn resources_report_every_shortfall() {
        let mut n = node(json!({"metadata": {"name": "n1"},
            "status": {"allocatable": {"cpu": "1", "memory": "1Gi", "pods": "2", "example.com/gpu": "1"}}}));
        let big = pod(json!({"containers": [{"name": "c", "resources": {"requests": {
            "cpu": "2", "memory": "2Gi", "example.com/gpu": "2"}}}]}));
        assert_eq!(run(&big, &n), ["Insufficient cpu", "Insufficient memory", "Insufficient example.com/gpu"]);
        let small = pod(json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "500m"}}}]}));
        assert!(run(&small, &n).is_empty());
        n.usage.pods = 2;
        n.usage.requested.milli_cpu = 600;
        assert_eq!(run(&small, &n), ["Too many pods", "Insufficient cpu"]);
        let best_effort = pod(json!({}));
        assert_eq!(run(&best_effort, &n), ["Too many pods"]);
    }

    #[test]
    fn the_first_failing_filter_decides_the_reason() {
        let n = node(json!({"metadata": {"name": "n1"}, "spec": {"taints": [{"key": "a", "effect": "NoSchedule"}]},
            "status": {"allocatable": {"cpu": "100m", "pods": "10"}}}));
        let p = pod(
            json!({"nodeSelector": {"x": "y"}, "containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]}),
        );
        assert_eq!(run(&p, &n), ["node(s) had untolerated taint {a: }"]);
    }
}
