//! Which nodes should run a DaemonSet's pod (Kubernetes'
//! `NodeShouldRunDaemonPod`), and how a daemon pod is pinned to its node.
//!
//! A node should run the pod when the template's `nodeName` (if any) names
//! it, the node satisfies the template's nodeSelector and required node
//! affinity, and the pod — with the tolerations every daemon pod gets —
//! tolerates the node's NoSchedule and NoExecute taints. A pod already there
//! may stay as long as only NoSchedule taints are untolerated. Placement is
//! decided with [`rkube_api::scheduling`], the scheduler's own rules, and
//! the node's taints include the not-ready taint the scheduler assumes for
//! nodes that are not Ready.
//!
//! The pod itself goes through the scheduler: it gets a required node
//! affinity `metadata.name In [<node>]` (a `matchFields` term) in place of
//! the template's required terms, and `nodeName` stays empty.

use crate::controllers::pod_state::PodView;
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, PodSpec, PodTemplateSpec,
    Taint, Toleration,
};
use rkube_api::scheduling::{
    RequiredNodeAffinity, TAINT_DISK_PRESSURE, TAINT_MEMORY_PRESSURE, TAINT_NETWORK_UNAVAILABLE, TAINT_NOT_READY,
    TAINT_PID_PRESSURE, TAINT_UNREACHABLE, TAINT_UNSCHEDULABLE, find_untolerated_taint, node_taints,
};
use std::collections::BTreeMap;

/// The field a daemon pod's node affinity selects its node by.
const NODE_NAME_FIELD: &str = "metadata.name";

/// What placement reads from a Node: its name, labels and taints (with the
/// lifecycle taint of a node that is not Ready). Two nodes with equal facts
/// take the same daemon pods, so a node update that leaves them equal (a
/// heartbeat) changes nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeFacts {
    /// The node's name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its taints, plus the not-ready/unreachable taint when not Ready.
    pub taints: Vec<Taint>,
}

impl NodeFacts {
    /// The facts of `node`.
    pub fn of(node: &Node) -> NodeFacts {
        NodeFacts {
            name: node.metadata.name.clone().unwrap_or_default(),
            labels: node.metadata.labels.clone().unwrap_or_default(),
            taints: node_taints(node),
        }
    }
}

/// Whether a node should run a DaemonSet's pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Eligibility {
    /// A pod should be created there if none runs (`shouldRun`).
    pub should_run: bool,
    /// A pod running there may stay (`shouldContinueRunning`).
    pub may_stay: bool,
}

/// A DaemonSet template's placement rules.
#[derive(Debug, Clone)]
pub struct Placement {
    node_name: Option<String>,
    affinity: RequiredNodeAffinity,
    tolerations: Vec<Toleration>,
}

impl Placement {
    /// The rules of `template`, with the daemon pods' default tolerations.
    pub fn of(template: &PodTemplateSpec) -> Placement {
        let mut spec = template.spec.clone().unwrap_or_default();
        add_daemon_tolerations(&mut spec);
        Placement {
            node_name: spec.node_name.clone().filter(|n| !n.is_empty()),
            affinity: RequiredNodeAffinity::of(&spec),
            tolerations: spec.tolerations.unwrap_or_default(),
        }
    }

    /// Whether `node` should run the pod (Kubernetes' `NodeShouldRunDaemonPod`).
    pub fn on(&self, node: &NodeFacts) -> Eligibility {
        if self.node_name.as_ref().is_some_and(|n| *n != node.name) || !self.affinity.matches(&node.name, &node.labels)
        {
            return Eligibility::default();
        }
        let hard = |t: &Taint| t.effect == "NoSchedule" || t.effect == "NoExecute";
        if find_untolerated_taint(&node.taints, &self.tolerations, hard).is_none() {
            return Eligibility { should_run: true, may_stay: true };
        }
        let evicting = find_untolerated_taint(&node.taints, &self.tolerations, |t| t.effect == "NoExecute");
        Eligibility { should_run: false, may_stay: evicting.is_none() }
    }
}

fn toleration(key: &str, effect: &str) -> Toleration {
    Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some(effect.into()),
        ..Default::default()
    }
}

/// Adds `toleration` to `spec`, replacing one with the same key, operator,
/// value and effect (Kubernetes' `AddOrUpdateTolerationInPodSpec`).
fn add_or_update_toleration(spec: &mut PodSpec, toleration: Toleration) {
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    let same = |t: &Toleration| {
        (&t.key, &t.operator, &t.value, &t.effect)
            == (&toleration.key, &toleration.operator, &toleration.value, &toleration.effect)
    };
    match tolerations.iter_mut().find(|t| same(t)) {
        Some(existing) => *existing = toleration,
        None => tolerations.push(toleration),
    }
}

/// Adds the tolerations every daemon pod gets (Kubernetes'
/// `AddOrUpdateDaemonPodTolerations`): not-ready and unreachable NoExecute,
/// so node problems do not evict it; disk/memory/pid pressure and
/// unschedulable NoSchedule; network-unavailable for host-network pods.
pub fn add_daemon_tolerations(spec: &mut PodSpec) {
    for key in [TAINT_NOT_READY, TAINT_UNREACHABLE] {
        add_or_update_toleration(spec, toleration(key, "NoExecute"));
    }
    for key in [TAINT_DISK_PRESSURE, TAINT_MEMORY_PRESSURE, TAINT_PID_PRESSURE, TAINT_UNSCHEDULABLE] {
        add_or_update_toleration(spec, toleration(key, "NoSchedule"));
    }
    if spec.host_network == Some(true) {
        add_or_update_toleration(spec, toleration(TAINT_NETWORK_UNAVAILABLE, "NoSchedule"));
    }
}

/// Pins the pod to `node` through the scheduler: its required node affinity
/// becomes the single term `metadata.name In [node]` (Kubernetes'
/// `ReplaceDaemonSetPodNodeNameNodeAffinity`; the controller has checked the
/// template's own terms already). Preferred terms stay.
pub fn pin_to_node(spec: &mut PodSpec, node: &str) {
    let term = NodeSelectorTerm {
        match_expressions: None,
        match_fields: Some(vec![NodeSelectorRequirement {
            key: NODE_NAME_FIELD.into(),
            operator: "In".into(),
            values: Some(vec![node.to_string()]),
        }]),
    };
    let affinity = spec.affinity.get_or_insert_with(Affinity::default);
    let node_affinity = affinity.node_affinity.get_or_insert_with(NodeAffinity::default);
    node_affinity.required_during_scheduling_ignored_during_execution =
        Some(NodeSelector { node_selector_terms: vec![term] });
}

/// The node a daemon pod is for (Kubernetes' `GetTargetNodeName`): its
/// `nodeName` once bound, else the one name of its `metadata.name In`
/// affinity term.
pub fn target_node(pod: &PodView) -> Option<&str> {
    let spec = pod.spec.as_ref()?;
    if let Some(name) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        return Some(name);
    }
    let required =
        spec.affinity.as_ref()?.node_affinity.as_ref()?.required_during_scheduling_ignored_during_execution.as_ref()?;
    required.node_selector_terms.iter().flat_map(|t| t.match_fields.iter().flatten()).find_map(|r| {
        let values = r.values.as_deref().unwrap_or_default();
        (r.key == NODE_NAME_FIELD && r.operator == "In" && values.len() == 1).then(|| values[0].as_str())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn template(spec: Value) -> PodTemplateSpec {
        let mut spec = spec;
        spec["containers"] = json!([{"name": "c", "image": "agent"}]);
        serde_json::from_value(json!({"metadata": {"labels": {"app": "agent"}}, "spec": spec})).unwrap()
    }

    fn node(v: Value) -> NodeFacts {
        let mut v = v;
        if v.pointer("/status/conditions").is_none() {
            v["status"] = json!({"conditions": [{"type": "Ready", "status": "True"}]});
        }
        NodeFacts::of(&serde_json::from_value(v).unwrap())
    }

    const RUN: Eligibility = Eligibility { should_run: true, may_stay: true };
    const STAY: Eligibility = Eligibility { should_run: false, may_stay: true };
    const NO: Eligibility = Eligibility { should_run: false, may_stay: false };

    #[test]
    fn node_selector_and_required_affinity_pick_the_nodes() {
        let p = Placement::of(&template(json!({"nodeSelector": {"disk": "ssd"},
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["south"]}]}]}}}})));
        assert_eq!(p.on(&node(json!({"metadata": {"name": "a", "labels": {"disk": "ssd"}}}))), RUN);
        assert_eq!(p.on(&node(json!({"metadata": {"name": "b", "labels": {"disk": "hdd"}}}))), NO);
        assert_eq!(p.on(&node(json!({"metadata": {"name": "c", "labels": {"disk": "ssd", "zone": "south"}}}))), NO);
        let pinned = Placement::of(&template(json!({"nodeName": "a"})));
        assert_eq!(pinned.on(&node(json!({"metadata": {"name": "a"}}))), RUN);
        assert_eq!(pinned.on(&node(json!({"metadata": {"name": "b"}}))), NO);
    }

    #[test]
    fn taints_keep_new_pods_off_and_no_execute_evicts_running_ones() {
        let p = Placement::of(&template(json!({})));
        let tainted = |effect: &str| {
            node(json!({"metadata": {"name": "n"}, "spec": {"taints": [{"key": "dedicated", "effect": effect}]}}))
        };
        assert_eq!(p.on(&tainted("PreferNoSchedule")), RUN);
        assert_eq!(p.on(&tainted("NoSchedule")), STAY);
        assert_eq!(p.on(&tainted("NoExecute")), NO);
        let tolerant = Placement::of(&template(json!({"tolerations": [{"key": "dedicated", "operator": "Exists"}]})));
        assert_eq!(tolerant.on(&tainted("NoExecute")), RUN);
    }

    #[test]
    fn daemon_pods_tolerate_node_problems_and_cordons_but_wait_for_ready() {
        let p = Placement::of(&template(json!({})));
        let cordoned = node(json!({"metadata": {"name": "n"}, "spec": {"unschedulable": true, "taints": [
            {"key": TAINT_UNSCHEDULABLE, "effect": "NoSchedule"}, {"key": TAINT_MEMORY_PRESSURE, "effect": "NoSchedule"},
            {"key": TAINT_UNREACHABLE, "effect": "NoExecute"}]}}));
        assert_eq!(p.on(&cordoned), RUN);
        let not_ready =
            node(json!({"metadata": {"name": "n"}, "status": {"conditions": [{"type": "Ready", "status": "False"}]}}));
        assert_eq!(p.on(&not_ready), STAY, "no new pod on a node that is not Ready; the running one stays");
        let network = node(
            json!({"metadata": {"name": "n"}, "spec": {"taints": [{"key": TAINT_NETWORK_UNAVAILABLE, "effect": "NoSchedule"}]}}),
        );
        assert_eq!(p.on(&network), STAY);
        assert_eq!(Placement::of(&template(json!({"hostNetwork": true}))).on(&network), RUN);
    }

    #[test]
    fn default_tolerations_replace_equal_ones_and_keep_the_rest() {
        let mut spec: PodSpec = serde_json::from_value(json!({"containers": [], "tolerations": [
            {"key": TAINT_NOT_READY, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30},
            {"key": "mine", "operator": "Exists"}]}))
        .unwrap();
        add_daemon_tolerations(&mut spec);
        add_daemon_tolerations(&mut spec);
        let tolerations = spec.tolerations.unwrap();
        assert_eq!(tolerations.len(), 7, "{tolerations:?}");
        assert_eq!(tolerations[0].toleration_seconds, None, "replaced by the default");
        assert_eq!(tolerations[1].key.as_deref(), Some("mine"));
    }

    #[test]
    fn pods_are_pinned_by_a_match_fields_term_and_found_by_it() {
        let mut pod: k8s_openapi::api::core::v1::Pod =
            serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"containers": [],
            "affinity": {"nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "disk", "operator": "Exists"}]}]},
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {"weight": 1, "preference": {"matchExpressions": [{"key": "zone", "operator": "Exists"}]}}]}}}}))
            .unwrap();
        assert_eq!(target_node(&PodView::of(&pod)), None);
        pin_to_node(pod.spec.as_mut().unwrap(), "n7");
        let na = pod.spec.as_ref().and_then(|s| s.affinity.as_ref()).and_then(|a| a.node_affinity.as_ref()).unwrap();
        assert_eq!(
            serde_json::to_value(&na.required_during_scheduling_ignored_during_execution).unwrap(),
            json!({"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n7"]}]}]})
        );
        assert!(na.preferred_during_scheduling_ignored_during_execution.is_some(), "preferences stay");
        assert_eq!(target_node(&PodView::of(&pod)), Some("n7"));
        pod.spec.as_mut().unwrap().node_name = Some("n8".into());
        assert_eq!(target_node(&PodView::of(&pod)), Some("n8"), "the binding wins");
    }
}
