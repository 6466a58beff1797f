//! The scheduler's picture of the cluster: every node with what is already
//! placed on it (like kube-scheduler's `internal/cache`).
//!
//! A [`NodeInfo`] holds a node's scheduling properties (labels, taints,
//! allocatable) and the running totals of the pods on it: requests, pod
//! count, host ports and pods per controller. Totals change by one pod at a
//! time as pods are bound, assumed, forgotten or deleted, so a scheduling
//! attempt never adds anything up.
//!
//! A pod is *assumed* on a node the moment the scheduler picks the node,
//! before the binding reaches the apiserver, so the next pod already sees
//! the node's resources taken. When the watch reports the pod bound the
//! assumption is confirmed; when binding fails it is forgotten. Pods bound to
//! a node the cache does not know (yet) are kept aside and counted as soon as
//! the node appears.

use crate::pod_info::{HostPort, PodUsage};
use crate::resources::{Allocatable, NonZero, Resources};
use crate::view::NodeView;
use k8s_openapi::api::core::v1::Taint;
use rkube_api::scheduling::with_lifecycle_taint;
use rkube_client::ObjectKey;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

pub use rkube_api::scheduling::{TAINT_NOT_READY, TAINT_UNREACHABLE, TAINT_UNSCHEDULABLE};
/// The zone label (and the region label, which qualifies it).
const ZONE_LABELS: [&str; 2] = ["topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone"];
const REGION_LABELS: [&str; 2] = ["topology.kubernetes.io/region", "failure-domain.beta.kubernetes.io/region"];

/// What the scheduler reads from a Node object.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeProps {
    /// The node's name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// `spec.unschedulable` (cordoned).
    pub unschedulable: bool,
    /// Its taints, plus `node.kubernetes.io/not-ready:NoSchedule` (or
    /// `unreachable`) when it is not Ready and carries no such taint yet, as
    /// the node lifecycle controller would taint it.
    pub taints: Vec<Taint>,
    /// What pods may use.
    pub allocatable: Allocatable,
    /// Its region and zone ("region:zone"), if labelled, for spreading.
    pub zone: Option<String>,
}

impl NodeProps {
    /// Reads the scheduling properties of a node.
    pub fn new(node: &NodeView) -> NodeProps {
        let labels = node.metadata.labels.clone().unwrap_or_default();
        let taints = with_lifecycle_taint(node.spec.taints.clone().unwrap_or_default(), node.ready_status());
        let first = |keys: [&str; 2]| keys.iter().find_map(|k| labels.get(*k)).filter(|v| !v.is_empty()).cloned();
        let zone = first(ZONE_LABELS).map(|zone| format!("{}:{zone}", first(REGION_LABELS).unwrap_or_default()));
        NodeProps {
            name: node.name().to_string(),
            unschedulable: node.spec.unschedulable.unwrap_or(false),
            taints,
            allocatable: Allocatable::from_status(node.status.allocatable.as_ref(), node.status.capacity.as_ref()),
            zone,
            labels,
        }
    }
}

/// The running totals of the pods placed on one node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeUsage {
    /// Pods bound or assumed here.
    pub pods: usize,
    /// The sum of their requests.
    pub requested: Resources,
    /// The sum of their requests as counted by scores.
    pub non_zero_requested: NonZero,
    /// Their host ports (one entry per pod port).
    pub host_ports: Vec<HostPort>,
    /// Their number per controller uid.
    pub owners: HashMap<Arc<str>, u32>,
}

impl NodeUsage {
    fn add(&mut self, u: &PodUsage) {
        self.pods += 1;
        self.requested.add(&u.requests);
        self.non_zero_requested.add(u.non_zero);
        self.host_ports.extend(u.host_ports.iter().cloned());
        if let Some(owner) = &u.owner {
            *self.owners.entry(owner.clone()).or_default() += 1;
        }
    }

    fn remove(&mut self, u: &PodUsage) {
        self.pods = self.pods.saturating_sub(1);
        self.requested.sub(&u.requests);
        self.non_zero_requested.sub(u.non_zero);
        for hp in &u.host_ports {
            if let Some(i) = self.host_ports.iter().position(|h| h == hp) {
                self.host_ports.swap_remove(i);
            }
        }
        if let Some(owner) = &u.owner
            && let Some(n) = self.owners.get_mut(owner)
        {
            *n -= 1;
            if *n == 0 {
                self.owners.remove(owner);
            }
        }
    }

    /// How many of the pods here belong to controller `owner`.
    pub fn owned_by(&self, owner: &str) -> u32 {
        self.owners.get(owner).copied().unwrap_or(0)
    }
}

/// A node and what is placed on it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeInfo {
    /// The node's scheduling properties.
    pub props: NodeProps,
    /// The pods placed on it.
    pub usage: NodeUsage,
}

/// A pod the cache counts on a node.
#[derive(Debug, Clone)]
struct PlacedPod {
    node: String,
    usage: PodUsage,
    /// Picked by this scheduler, not yet seen bound.
    assumed: bool,
}

/// What [`Cache::set_node`] changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeChange {
    /// The node is new.
    Added,
    /// A property the filters or scores read changed.
    Changed,
    /// Only things scheduling ignores changed (heartbeats, annotations, ...).
    Unchanged,
}

/// Every node and every placed pod; see the module docs.
#[derive(Debug, Default)]
pub struct Cache {
    /// Known nodes, in no particular order.
    nodes: Vec<NodeInfo>,
    /// Node name → position in `nodes`.
    index: HashMap<String, usize>,
    /// Usage of pods bound to nodes without a Node object (yet).
    orphans: HashMap<String, NodeUsage>,
    /// Every pod counted on a node.
    pods: HashMap<ObjectKey, PlacedPod>,
    /// How many of `pods` are assumed.
    assumed: usize,
}

impl Cache {
    /// An empty cache.
    pub fn new() -> Cache {
        Cache::default()
    }

    /// The known nodes.
    pub fn nodes(&self) -> &[NodeInfo] {
        &self.nodes
    }

    /// The node called `name`, if known.
    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.index.get(name).map(|&i| &self.nodes[i])
    }

    /// How many pods are counted on nodes (bound or assumed).
    pub fn pod_count(&self) -> usize {
        self.pods.len()
    }

    /// How many pods are assumed (picked, not yet seen bound).
    pub fn assumed_count(&self) -> usize {
        self.assumed
    }

    /// Whether `key` is assumed on a node (its binding is in flight).
    pub fn is_assumed(&self, key: &ObjectKey) -> bool {
        self.pods.get(key).is_some_and(|p| p.assumed)
    }

    /// The node `key` is counted on, if any.
    pub fn node_of(&self, key: &ObjectKey) -> Option<&str> {
        self.pods.get(key).map(|p| p.node.as_str())
    }

    fn usage_mut(&mut self, node: &str) -> &mut NodeUsage {
        match self.index.get(node) {
            Some(&i) => &mut self.nodes[i].usage,
            None => self.orphans.entry(node.to_string()).or_default(),
        }
    }

    /// Adds or updates a node; says whether scheduling could now decide differently.
    pub fn set_node(&mut self, node: &NodeView) -> NodeChange {
        let props = NodeProps::new(node);
        match self.index.get(&props.name) {
            Some(&i) => {
                if self.nodes[i].props == props {
                    NodeChange::Unchanged
                } else {
                    self.nodes[i].props = props;
                    NodeChange::Changed
                }
            }
            None => {
                let usage = self.orphans.remove(&props.name).unwrap_or_default();
                self.index.insert(props.name.clone(), self.nodes.len());
                self.nodes.push(NodeInfo { props, usage });
                NodeChange::Added
            }
        }
    }

    /// Removes a node; pods still bound to it stay counted aside.
    pub fn remove_node(&mut self, name: &str) {
        let Some(i) = self.index.remove(name) else { return };
        let info = self.nodes.swap_remove(i);
        if let Some(moved) = self.nodes.get(i) {
            self.index.insert(moved.props.name.clone(), i);
        }
        if info.usage.pods > 0 {
            self.orphans.insert(name.to_string(), info.usage);
        }
    }

    fn place(&mut self, key: ObjectKey, node: &str, usage: PodUsage, assumed: bool) {
        self.remove_pod(&key);
        self.usage_mut(node).add(&usage);
        if assumed {
            self.assumed += 1;
        }
        self.pods.insert(key, PlacedPod { node: node.to_string(), usage, assumed });
    }

    /// Counts a pod the apiserver reports bound to `node` (confirming an
    /// assumption, or replacing one on another node).
    pub fn add_bound_pod(&mut self, key: ObjectKey, node: &str, usage: PodUsage) {
        if let Some(p) = self.pods.get_mut(&key)
            && p.node == node
            && p.usage == usage
        {
            if p.assumed {
                p.assumed = false;
                self.assumed -= 1;
            }
            return;
        }
        self.place(key, node, usage, false);
    }

    /// Counts a pod on the node the scheduler picked, before it is bound.
    pub fn assume(&mut self, key: ObjectKey, node: &str, usage: PodUsage) {
        self.place(key, node, usage, true);
    }

    /// Undoes [`assume`](Self::assume) after a failed binding; a pod seen
    /// bound meanwhile stays counted.
    pub fn forget(&mut self, key: &ObjectKey) {
        if self.is_assumed(key) {
            self.remove_pod(key);
        }
    }

    /// Stops counting a pod (deleted, finished); true if it was counted.
    pub fn remove_pod(&mut self, key: &ObjectKey) -> bool {
        let Some(p) = self.pods.remove(key) else { return false };
        if p.assumed {
            self.assumed -= 1;
        }
        match self.index.get(&p.node) {
            Some(&i) => self.nodes[i].usage.remove(&p.usage),
            None => {
                if let Some(u) = self.orphans.get_mut(&p.node) {
                    u.remove(&p.usage);
                    if u.pods == 0 {
                        self.orphans.remove(&p.node);
                    }
                }
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, ready: &str, cpu: &str) -> NodeView {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"topology.kubernetes.io/zone": "a"}},
            "status": {"allocatable": {"cpu": cpu, "memory": "4Gi", "pods": "110"},
                "conditions": [{"type": "Ready", "status": ready}]}
        }))
        .expect("a node")
    }

    fn usage(cpu: i64, owner: Option<&str>) -> PodUsage {
        PodUsage {
            requests: Resources { milli_cpu: cpu, ..Default::default() },
            owner: owner.map(Arc::from),
            host_ports: vec![HostPort { ip: "0.0.0.0".into(), protocol: "TCP".into(), port: 80 }],
            ..Default::default()
        }
    }

    fn key(name: &str) -> ObjectKey {
        ObjectKey::new("default", name)
    }

    #[test]
    fn assumed_pods_count_until_forgotten() {
        let mut c = Cache::new();
        c.set_node(&node("n1", "True", "2"));
        c.assume(key("a"), "n1", usage(500, Some("rc")));
        let n = c.node("n1").expect("known");
        assert_eq!((n.usage.pods, n.usage.requested.milli_cpu, n.usage.owned_by("rc")), (1, 500, 1));
        assert_eq!(n.usage.host_ports.len(), 1);
        assert!(c.is_assumed(&key("a")));
        c.forget(&key("a"));
        let n = c.node("n1").expect("known");
        assert_eq!(n.usage, NodeUsage::default());
        assert_eq!(c.assumed_count(), 0);
    }

    #[test]
    fn a_bound_pod_confirms_its_assumption_and_survives_forget() {
        let mut c = Cache::new();
        c.set_node(&node("n1", "True", "2"));
        c.assume(key("a"), "n1", usage(500, None));
        c.add_bound_pod(key("a"), "n1", usage(500, None));
        assert!(!c.is_assumed(&key("a")));
        c.forget(&key("a"));
        assert_eq!(c.node("n1").expect("known").usage.requested.milli_cpu, 500);
        assert_eq!(c.pod_count(), 1);
    }

    #[test]
    fn a_pod_bound_elsewhere_moves_off_its_assumed_node() {
        let mut c = Cache::new();
        c.set_node(&node("n1", "True", "2"));
        c.set_node(&node("n2", "True", "2"));
        c.assume(key("a"), "n1", usage(500, None));
        c.add_bound_pod(key("a"), "n2", usage(500, None));
        assert_eq!(c.node("n1").expect("known").usage.pods, 0);
        assert_eq!(c.node("n2").expect("known").usage.pods, 1);
        assert_eq!(c.assumed_count(), 0);
    }

    #[test]
    fn pods_on_unknown_nodes_count_once_the_node_appears() {
        let mut c = Cache::new();
        c.add_bound_pod(key("a"), "n1", usage(300, None));
        assert!(c.node("n1").is_none());
        assert_eq!(c.set_node(&node("n1", "True", "2")), NodeChange::Added);
        assert_eq!(c.node("n1").expect("known").usage.requested.milli_cpu, 300);
        c.remove_node("n1");
        assert!(c.nodes().is_empty());
        assert!(c.remove_pod(&key("a")));
        assert!(c.orphans.is_empty());
    }

    #[test]
    fn removing_a_node_keeps_the_index_consistent() {
        let mut c = Cache::new();
        for n in ["n1", "n2", "n3"] {
            c.set_node(&node(n, "True", "2"));
        }
        c.remove_node("n1");
        assert_eq!(c.node("n3").map(|n| n.props.name.as_str()), Some("n3"));
        assert_eq!(c.node("n2").map(|n| n.props.name.as_str()), Some("n2"));
        assert_eq!(c.nodes().len(), 2);
    }

    #[test]
    fn set_node_reports_only_scheduling_relevant_changes() {
        let mut c = Cache::new();
        assert_eq!(c.set_node(&node("n1", "True", "2")), NodeChange::Added);
        assert_eq!(c.set_node(&node("n1", "True", "2")), NodeChange::Unchanged);
        assert_eq!(c.set_node(&node("n1", "True", "4")), NodeChange::Changed);
        assert_eq!(c.set_node(&node("n1", "False", "4")), NodeChange::Changed);
    }

    #[test]
    fn nodes_that_are_not_ready_get_the_lifecycle_taint() {
        let taint_keys = |n: &NodeView| NodeProps::new(n).taints.iter().map(|t| t.key.clone()).collect::<Vec<_>>();
        assert!(taint_keys(&node("n1", "True", "1")).is_empty());
        assert_eq!(taint_keys(&node("n1", "False", "1")), [TAINT_NOT_READY]);
        assert_eq!(taint_keys(&node("n1", "Unknown", "1")), [TAINT_UNREACHABLE]);
        let no_conditions: NodeView = serde_json::from_value(json!({"metadata": {"name": "n"}})).expect("node");
        assert_eq!(taint_keys(&no_conditions), [TAINT_NOT_READY]);
        let tainted: NodeView = serde_json::from_value(json!({"metadata": {"name": "n"},
            "spec": {"taints": [{"key": TAINT_NOT_READY, "effect": "NoSchedule"}]}}))
        .expect("node");
        assert_eq!(taint_keys(&tainted), [TAINT_NOT_READY], "not tainted twice");
    }

    #[test]
    fn zone_key_combines_region_and_zone() {
        let n: NodeView = serde_json::from_value(json!({"metadata": {"name": "n", "labels": {
            "topology.kubernetes.io/region": "eu", "topology.kubernetes.io/zone": "eu-1"}}}))
        .expect("node");
        assert_eq!(NodeProps::new(&n).zone.as_deref(), Some("eu:eu-1"));
        assert_eq!(NodeProps::new(&node("n", "True", "1")).zone.as_deref(), Some(":a"));
    }
}
