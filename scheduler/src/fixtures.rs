//! Nodes and pods for unit tests, from JSON.

use crate::cache::{NodeInfo, NodeProps, NodeUsage};
use crate::pod_info::PodInfo;
use crate::view::{NodeView, PodView};
use serde_json::{Value, json};

/// A node from its JSON; unless given, allocatable is 2 CPUs, 4Gi and 110
/// pods, and the node is Ready.
pub fn node(v: Value) -> NodeInfo {
    NodeInfo { props: NodeProps::new(&node_view(v)), usage: NodeUsage::default() }
}

/// The view of a node from its JSON, with the defaults of [`node`].
pub fn node_view(mut v: Value) -> NodeView {
    let status = v.as_object_mut().expect("object").entry("status").or_insert_with(|| json!({}));
    let status = status.as_object_mut().expect("object");
    status.entry("allocatable").or_insert_with(|| json!({"cpu": "2", "memory": "4Gi", "pods": "110"}));
    status.entry("conditions").or_insert_with(|| json!([{"type": "Ready", "status": "True"}]));
    serde_json::from_value(v).expect("a node")
}

/// The view of pod `default/p` with this spec (one empty container unless given).
pub fn pod_view(mut spec: Value) -> PodView {
    spec.as_object_mut().expect("object").entry("containers").or_insert_with(|| json!([{"name": "c"}]));
    serde_json::from_value(json!({"metadata": {"name": "p", "namespace": "default"}, "spec": spec})).expect("a pod")
}

/// What pod `default/p` with this spec asks of a node.
pub fn pod(spec: Value) -> PodInfo {
    PodInfo::new(&pod_view(spec))
}
