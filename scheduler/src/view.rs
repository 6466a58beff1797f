//! The parts of Pods and Nodes the scheduler reads.
//!
//! The scheduler caches every pod that has not finished and every node. A
//! full `Pod` carries images, commands, environment, probes, volumes and
//! container statuses the scheduler never looks at; with 10,000 pods they
//! would dominate its memory. [`PodView`] and [`NodeView`] decode only the
//! fields scheduling needs (the rest of the JSON is skipped while decoding),
//! much like client-go's metadata-only informers. They name the `v1` Pod and
//! Node resources, so `Api<PodView>` lists and watches pods and a
//! [`Reflector`](rkube_client::Reflector) caches them.
//!
//! What is left out, beyond unread fields: annotations and managed fields of
//! both; a pod's labels (nothing here selects pods), its containers' limits
//! and ports without a hostPort, and the conditions of a pod bound to a node.
//! The views are read-only projections: writing one back with
//! `Api::replace` would drop every field they leave out.

use k8s_openapi::Resource;
use k8s_openapi::api::core::v1::{
    Affinity, ContainerPort, Node, Pod, PodCondition, PodSchedulingGate, Taint, Toleration,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use rkube_api::view::{self, exact, exact_vec};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;

/// Decodes object metadata, dropping annotations and managed fields (often
/// the largest part of an object, and never read by the scheduler).
fn lean_metadata<'de, D: Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
    let mut meta = view::lean_metadata(d)?;
    meta.annotations = None;
    Ok(meta)
}

/// Decodes pod metadata: [`lean_metadata`] without the labels either.
fn pod_metadata<'de, D: Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
    let mut meta = lean_metadata(d)?;
    meta.labels = None;
    Ok(meta)
}

/// Decodes a container's ports, keeping those that take a host port.
fn host_ports<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ContainerPort>, D::Error> {
    let ports: Option<Vec<ContainerPort>> = Deserialize::deserialize(d)?;
    Ok(view::shrunk(ports.into_iter().flatten().filter(|p| p.host_port.is_some_and(|hp| hp > 0)).collect()))
}

/// Serializes a view with the apiVersion and kind of the resource it views.
fn serialize_view<S: Serializer, R: Resource>(
    s: S,
    metadata: &ObjectMeta,
    spec: &impl Serialize,
    status: &impl Serialize,
) -> Result<S::Ok, S::Error> {
    let mut st = s.serialize_struct(R::KIND, 5)?;
    st.serialize_field("apiVersion", R::API_VERSION)?;
    st.serialize_field("kind", R::KIND)?;
    st.serialize_field("metadata", metadata)?;
    st.serialize_field("spec", spec)?;
    st.serialize_field("status", status)?;
    st.end()
}

/// A Pod as the scheduler sees it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(from = "WirePod")]
pub struct PodView {
    /// Metadata without labels, annotations and managed fields.
    pub metadata: ObjectMeta,
    /// The scheduling-relevant part of the spec.
    pub spec: PodSpecView,
    /// The phase, and the conditions while the pod is unbound.
    pub status: PodStatusView,
}

/// A [`PodView`] as decoded, before the conditions of bound pods are dropped.
#[derive(Deserialize)]
struct WirePod {
    #[serde(default, deserialize_with = "pod_metadata")]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: PodSpecView,
    #[serde(default)]
    status: PodStatusView,
}

impl From<WirePod> for PodView {
    fn from(w: WirePod) -> PodView {
        let mut status = w.status;
        if w.spec.node_name.as_deref().is_some_and(|n| !n.is_empty()) {
            status.conditions = None;
        }
        PodView { metadata: w.metadata, spec: w.spec, status }
    }
}

/// The fields of a PodSpec that decide where the pod may run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpecView {
    /// The node the pod is bound to, if any.
    pub node_name: Option<String>,
    /// The scheduler responsible for the pod.
    pub scheduler_name: Option<String>,
    /// Labels a node must have.
    pub node_selector: Option<BTreeMap<String, String>>,
    /// Node (and pod) affinity.
    pub affinity: Option<Box<Affinity>>,
    /// Taints the pod tolerates.
    #[serde(default, deserialize_with = "exact")]
    pub tolerations: Option<Vec<Toleration>>,
    /// The containers: their requests and host ports.
    #[serde(default, deserialize_with = "exact_vec")]
    pub containers: Vec<ContainerView>,
    /// The init containers: their requests count while they run.
    #[serde(default, deserialize_with = "exact")]
    pub init_containers: Option<Vec<ContainerView>>,
    /// Resources the pod's sandbox uses beyond its containers.
    pub overhead: Option<BTreeMap<String, Quantity>>,
    /// While any gate remains, the pod is not scheduled.
    #[serde(default, deserialize_with = "exact")]
    pub scheduling_gates: Option<Vec<PodSchedulingGate>>,
}

/// The fields of a container the scheduler reads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerView {
    /// The container's name.
    #[serde(default)]
    pub name: String,
    /// `Always` marks an init container as a sidecar that keeps running.
    pub restart_policy: Option<String>,
    /// Its requests (limits are not kept: the apiserver already defaulted
    /// missing requests to them).
    #[serde(default)]
    pub resources: RequestsView,
    /// Its ports that take a host port.
    #[serde(default, deserialize_with = "host_ports")]
    pub ports: Vec<ContainerPort>,
}

/// The requests of a container's `resources`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestsView {
    /// Requested amounts by resource name.
    #[serde(default)]
    pub requests: ResourceList,
}

/// A resource list (`{"cpu": "100m", ...}`) kept as a short vector: a
/// container requests two or three resources, and a map would take a
/// node of eleven entries for them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResourceList(pub Vec<(String, Quantity)>);

impl ResourceList {
    /// The amount of `name`, if listed.
    pub fn get(&self, name: &str) -> Option<&Quantity> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, q)| q)
    }

    /// The entries, as a map would iterate them.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Quantity)> {
        self.0.iter().map(|(n, q)| (n, q))
    }
}

impl<'de> Deserialize<'de> for ResourceList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map: Option<BTreeMap<String, Quantity>> = Deserialize::deserialize(d)?;
        Ok(ResourceList(view::shrunk(map.into_iter().flatten().collect())))
    }
}

impl Serialize for ResourceList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

/// The fields of a PodStatus the scheduler reads and writes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStatusView {
    /// Pending, Running, Succeeded, Failed or Unknown.
    pub phase: Option<String>,
    /// Conditions, among them PodScheduled (not kept once the pod is bound).
    #[serde(default, deserialize_with = "exact")]
    pub conditions: Option<Vec<PodCondition>>,
}

impl PodView {
    /// The PodScheduled condition, if set.
    pub fn scheduled_condition(&self) -> Option<&PodCondition> {
        self.status.conditions.as_ref()?.iter().find(|c| c.type_ == "PodScheduled")
    }

    /// The node the pod is bound to ("" when unbound).
    pub fn node_name(&self) -> &str {
        self.spec.node_name.as_deref().unwrap_or_default()
    }
}

rkube_api::view_of!(PodView, Pod);

impl Serialize for PodView {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_view::<S, Pod>(s, &self.metadata, &self.spec, &self.status)
    }
}

/// A Node as the scheduler sees it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct NodeView {
    /// Metadata without annotations and managed fields.
    #[serde(default, deserialize_with = "lean_metadata")]
    pub metadata: ObjectMeta,
    /// Whether the node takes new pods, and its taints.
    #[serde(default)]
    pub spec: NodeSpecView,
    /// Resources and conditions.
    #[serde(default)]
    pub status: NodeStatusView,
}

/// The fields of a NodeSpec the scheduler reads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSpecView {
    /// Cordoned: no new pods (unless they tolerate it).
    pub unschedulable: Option<bool>,
    /// Taints repelling pods that do not tolerate them.
    #[serde(default, deserialize_with = "exact")]
    pub taints: Option<Vec<Taint>>,
}

/// The fields of a NodeStatus the scheduler reads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatusView {
    /// What pods may request in total.
    pub allocatable: Option<BTreeMap<String, Quantity>>,
    /// The node's total resources (used when allocatable is missing).
    pub capacity: Option<BTreeMap<String, Quantity>>,
    /// Conditions, of which Ready decides whether the node takes pods.
    #[serde(default, deserialize_with = "exact")]
    pub conditions: Option<Vec<NodeConditionView>>,
}

/// A node condition's type and status (its timestamps change on every
/// heartbeat and are not kept).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeConditionView {
    /// Ready, MemoryPressure, ...
    #[serde(rename = "type")]
    pub type_: String,
    /// True, False or Unknown.
    #[serde(default)]
    pub status: String,
}

impl NodeView {
    /// The node's name.
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }

    /// The status of the Ready condition (None when the node reports none).
    pub fn ready_status(&self) -> Option<&str> {
        self.status.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready").map(|c| c.status.as_str())
    }
}

rkube_api::view_of!(NodeView, Node);

impl Serialize for NodeView {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_view::<S, Node>(s, &self.metadata, &self.spec, &self.status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pod_view_keeps_scheduling_fields_and_drops_the_rest() {
        let pod: PodView = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}"}},
            "spec": {"schedulerName": "default-scheduler", "nodeSelector": {"zone": "north"},
                "containers": [{"name": "app", "image": "nginx", "env": [{"name": "A", "value": "b"}],
                    "resources": {"requests": {"cpu": "100m"}, "limits": {"memory": "1Gi"}},
                    "ports": [{"containerPort": 80, "hostPort": 8080}, {"containerPort": 9090}]}],
                "volumes": [{"name": "data", "emptyDir": {}}]},
            "status": {"phase": "Pending", "containerStatuses": []}
        }))
        .expect("a pod decodes as a view");
        assert_eq!(pod.metadata.name.as_deref(), Some("web"));
        assert_eq!((pod.metadata.annotations.as_ref(), pod.metadata.labels.as_ref()), (None, None));
        assert_eq!(pod.spec.node_selector.as_ref().map(|s| s["zone"].as_str()), Some("north"));
        let c = &pod.spec.containers[0];
        assert_eq!(c.ports.iter().map(|p| p.host_port).collect::<Vec<_>>(), [Some(8080)], "only host ports");
        assert_eq!(c.resources.requests.get("cpu"), Some(&Quantity("100m".into())));
        assert_eq!(c.resources.requests.get("memory"), None, "limits are not requests");
        assert_eq!(pod.status.phase.as_deref(), Some("Pending"));
        assert_eq!(pod.node_name(), "");
    }

    #[test]
    fn pod_view_keeps_conditions_only_while_unbound() {
        let conditions = json!([{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]);
        let pending: PodView =
            serde_json::from_value(json!({"spec": {}, "status": {"conditions": conditions}})).expect("decodes");
        assert_eq!(pending.scheduled_condition().map(|c| c.status.as_str()), Some("False"));
        let bound: PodView = serde_json::from_value(
            json!({"spec": {"nodeName": "n1"}, "status": {"phase": "Running", "conditions": conditions}}),
        )
        .expect("decodes");
        assert_eq!(bound.status.conditions, None);
        assert_eq!(bound.status.phase.as_deref(), Some("Running"));
    }

    #[test]
    fn resource_lists_round_trip_as_maps() {
        let list: ResourceList = serde_json::from_value(json!({"cpu": "1", "memory": "1Gi"})).expect("decodes");
        assert_eq!(list.get("memory"), Some(&Quantity("1Gi".into())));
        assert_eq!(serde_json::to_value(&list).expect("serializes"), json!({"cpu": "1", "memory": "1Gi"}));
        let empty: ResourceList = serde_json::from_value(json!(null)).expect("null is empty");
        assert_eq!(empty, ResourceList::default());
    }

    #[test]
    fn views_serialize_with_their_resource_type() {
        let node =
            NodeView { metadata: ObjectMeta { name: Some("n1".into()), ..Default::default() }, ..Default::default() };
        let v = serde_json::to_value(&node).expect("serializes");
        assert_eq!((v["apiVersion"].as_str(), v["kind"].as_str()), (Some("v1"), Some("Node")));
        let back: NodeView = serde_json::from_value(v).expect("round-trips");
        assert_eq!(back, node);
        let v = serde_json::to_value(PodView::default()).expect("serializes");
        assert_eq!(v["kind"], "Pod");
    }

    #[test]
    fn node_view_reads_the_ready_condition() {
        let node: NodeView = serde_json::from_value(json!({
            "metadata": {"name": "n1"},
            "status": {"conditions": [{"type": "MemoryPressure", "status": "False"},
                {"type": "Ready", "status": "True", "lastHeartbeatTime": "2024-01-01T00:00:00Z"}]}
        }))
        .expect("decodes");
        assert_eq!(node.ready_status(), Some("True"));
        assert_eq!(node.name(), "n1");
    }
}
