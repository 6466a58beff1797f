//! [`PodInfo`]: what a pod asks of a node, worked out once per scheduling
//! attempt (requests in integers, host ports, parsed affinity terms) so that
//! checking one node is a handful of comparisons. [`PodUsage`] is the part a
//! node's accounting keeps for every pod placed on it.

use crate::resources::{NonZero, Resources, pod_non_zero_requests, pod_requests};
use crate::view::PodView;
use k8s_openapi::api::core::v1::{NodeSelectorRequirement, NodeSelectorTerm, Toleration};
use rkube_api::selector::{Op, Requirement};
use rkube_client::ObjectKey;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A port a pod takes on its node's addresses.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// The host address ("0.0.0.0": every address).
    pub ip: String,
    /// TCP, UDP or SCTP.
    pub protocol: String,
    /// The port number.
    pub port: i32,
}

/// The address that stands for every address of the node.
const ALL_ADDRESSES: &str = "0.0.0.0";

impl HostPort {
    /// Whether two pods asking for these ports cannot share a node: the same
    /// protocol and port on the same address, or on every address.
    pub fn conflicts_with(&self, other: &HostPort) -> bool {
        self.port == other.port
            && self.protocol == other.protocol
            && (self.ip == other.ip || self.ip == ALL_ADDRESSES || other.ip == ALL_ADDRESSES)
    }
}

/// What a pod placed on a node takes from it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodUsage {
    /// The pod's requests (see [`crate::resources::pod_requests`]).
    pub requests: Resources,
    /// The pod's requests as counted by scores.
    pub non_zero: NonZero,
    /// The host ports it occupies.
    pub host_ports: Vec<HostPort>,
    /// The uid of its controller (ReplicationController, ReplicaSet, ...), for spreading.
    pub owner: Option<Arc<str>>,
}

impl PodUsage {
    /// Works out a pod's usage from its spec.
    pub fn of(pod: &PodView) -> PodUsage {
        let mut host_ports = Vec::new();
        for c in pod.spec.containers.iter().chain(pod.spec.init_containers.iter().flatten()) {
            for p in &c.ports {
                let Some(port) = p.host_port.filter(|p| *p > 0) else { continue };
                let ip = p.host_ip.as_deref().filter(|ip| !ip.is_empty()).unwrap_or(ALL_ADDRESSES);
                let protocol = p.protocol.as_deref().filter(|p| !p.is_empty()).unwrap_or("TCP");
                host_ports.push(HostPort { ip: ip.to_string(), protocol: protocol.to_string(), port });
            }
        }
        let owner = pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|r| r.controller == Some(true))
            .map(|r| Arc::from(r.uid.as_str()));
        PodUsage { requests: pod_requests(&pod.spec), non_zero: pod_non_zero_requests(&pod.spec), host_ports, owner }
    }
}

/// One `nodeSelectorTerm`: label expressions and `metadata.name` field
/// expressions, all of which must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TermMatcher {
    labels: Vec<Requirement>,
    /// `metadata.name` expressions (In or NotIn).
    names: Vec<(Op, Vec<String>)>,
    /// False when an expression is malformed: the term then matches nothing.
    valid: bool,
}

/// Converts a node selector requirement; None when it is malformed (an
/// unknown operator, values where none belong, a non-integer for Gt/Lt).
fn requirement(r: &NodeSelectorRequirement) -> Option<Requirement> {
    let values = r.values.clone().unwrap_or_default();
    let op = match r.operator.as_str() {
        "In" => Op::In,
        "NotIn" => Op::NotIn,
        "Exists" => Op::Exists,
        "DoesNotExist" => Op::DoesNotExist,
        "Gt" => Op::Gt,
        "Lt" => Op::Lt,
        _ => return None,
    };
    let ok = match op {
        Op::In | Op::NotIn => !values.is_empty(),
        Op::Exists | Op::DoesNotExist => values.is_empty(),
        Op::Gt | Op::Lt => values.len() == 1 && values[0].parse::<i64>().is_ok(),
    };
    ok.then(|| Requirement { key: r.key.clone(), op, values })
}

impl TermMatcher {
    /// Parses a term.
    pub fn new(term: &NodeSelectorTerm) -> TermMatcher {
        let mut valid = true;
        let mut labels = Vec::new();
        for r in term.match_expressions.iter().flatten() {
            match requirement(r) {
                Some(req) => labels.push(req),
                None => valid = false,
            }
        }
        let mut names = Vec::new();
        for r in term.match_fields.iter().flatten() {
            match requirement(r) {
                Some(req) if r.key == "metadata.name" && matches!(req.op, Op::In | Op::NotIn) => {
                    names.push((req.op, req.values))
                }
                _ => valid = false,
            }
        }
        TermMatcher { labels, names, valid }
    }

    /// Whether a node with this name and these labels satisfies the term. An
    /// empty term matches no node, as in Kubernetes.
    pub fn matches(&self, node_name: &str, labels: &BTreeMap<String, String>) -> bool {
        if !self.valid || (self.labels.is_empty() && self.names.is_empty()) {
            return false;
        }
        self.labels.iter().all(|r| r.matches(labels))
            && self.names.iter().all(|(op, values)| {
                let listed = values.iter().any(|v| v == node_name);
                if *op == Op::In { listed } else { !listed }
            })
    }
}

/// Everything the filters and scores need to know about the pod being scheduled.
#[derive(Debug, Clone)]
pub struct PodInfo {
    /// The pod's namespace and name.
    pub key: ObjectKey,
    /// What it takes from the node it lands on.
    pub usage: PodUsage,
    /// `spec.nodeSelector`: labels the node must carry.
    pub node_selector: BTreeMap<String, String>,
    /// The required node affinity's terms (any one must match), if set.
    pub required_terms: Option<Vec<TermMatcher>>,
    /// The preferred node affinity's terms with their weights.
    pub preferred_terms: Vec<(i64, TermMatcher)>,
    /// The pod's tolerations.
    pub tolerations: Vec<Toleration>,
}

impl PodInfo {
    /// Works out what `pod` asks of a node.
    pub fn new(pod: &PodView) -> PodInfo {
        let node_affinity = pod.spec.affinity.as_ref().and_then(|a| a.node_affinity.as_ref());
        let required_terms = node_affinity
            .and_then(|na| na.required_during_scheduling_ignored_during_execution.as_ref())
            .map(|sel| sel.node_selector_terms.iter().map(TermMatcher::new).collect());
        let preferred_terms = node_affinity
            .and_then(|na| na.preferred_during_scheduling_ignored_during_execution.as_ref())
            .into_iter()
            .flatten()
            .filter(|t| t.weight != 0)
            .map(|t| (i64::from(t.weight), TermMatcher::new(&t.preference)))
            .collect();
        PodInfo {
            key: ObjectKey::of(pod),
            usage: PodUsage::of(pod),
            node_selector: pod.spec.node_selector.clone().unwrap_or_default(),
            required_terms,
            preferred_terms,
            tolerations: pod.spec.tolerations.clone().unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn term(v: serde_json::Value) -> TermMatcher {
        TermMatcher::new(&serde_json::from_value(v).expect("a valid term"))
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn term_expressions_must_all_hold() {
        let t = term(json!({"matchExpressions": [
            {"key": "zone", "operator": "In", "values": ["north", "east"]},
            {"key": "disk", "operator": "NotIn", "values": ["hdd"]},
            {"key": "cores", "operator": "Gt", "values": ["4"]},
            {"key": "gen", "operator": "Lt", "values": ["3"]},
            {"key": "gpu", "operator": "Exists"},
            {"key": "spot", "operator": "DoesNotExist"}]}));
        let good = labels(&[("zone", "north"), ("cores", "8"), ("gen", "2"), ("gpu", "")]);
        assert!(t.matches("n1", &good));
        for (k, v) in [("zone", "south"), ("disk", "hdd"), ("cores", "4"), ("gen", "3"), ("spot", "yes")] {
            let mut l = good.clone();
            l.insert(k.to_string(), v.to_string());
            assert!(!t.matches("n1", &l), "{k}={v} should fail the term");
        }
        let mut no_gpu = good.clone();
        no_gpu.remove("gpu");
        assert!(!t.matches("n1", &no_gpu));
    }

    #[test]
    fn gt_and_lt_fail_on_missing_or_non_integer_labels() {
        let t = term(json!({"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["4"]}]}));
        assert!(!t.matches("n1", &labels(&[])));
        assert!(!t.matches("n1", &labels(&[("cores", "many")])));
    }

    #[test]
    fn match_fields_select_by_node_name() {
        let t = term(json!({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1", "n2"]}]}));
        assert!(t.matches("n2", &labels(&[])));
        assert!(!t.matches("n3", &labels(&[])));
        let not = term(json!({"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["n1"]}]}));
        assert!(!not.matches("n1", &labels(&[])) && not.matches("n2", &labels(&[])));
    }

    #[test]
    fn empty_or_malformed_terms_match_nothing() {
        assert!(!term(json!({})).matches("n1", &labels(&[("a", "b")])));
        let bad_op = term(json!({"matchExpressions": [{"key": "a", "operator": "Near", "values": ["b"]}]}));
        assert!(!bad_op.matches("n1", &labels(&[("a", "b")])));
        let bad_gt = term(json!({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["x"]}]}));
        assert!(!bad_gt.matches("n1", &labels(&[("a", "9")])));
        let bad_field = term(json!({"matchFields": [{"key": "metadata.uid", "operator": "In", "values": ["x"]}]}));
        assert!(!bad_field.matches("x", &labels(&[])));
    }

    #[test]
    fn usage_collects_host_ports_with_defaults_and_the_controller() {
        let pod: PodView = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "default", "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "c", "uid": "u-cm"},
                {"apiVersion": "v1", "kind": "ReplicationController", "name": "rc", "uid": "u-rc", "controller": true}]},
            "spec": {"containers": [{"name": "a", "ports": [
                {"containerPort": 80, "hostPort": 8080},
                {"containerPort": 53, "hostPort": 53, "protocol": "UDP", "hostIP": "10.0.0.1"},
                {"containerPort": 9090}]}]}
        }))
        .expect("decodes");
        let u = PodUsage::of(&pod);
        assert_eq!(u.owner.as_deref(), Some("u-rc"));
        assert_eq!(
            u.host_ports,
            vec![
                HostPort { ip: "0.0.0.0".into(), protocol: "TCP".into(), port: 8080 },
                HostPort { ip: "10.0.0.1".into(), protocol: "UDP".into(), port: 53 },
            ]
        );
    }

    #[test]
    fn host_ports_conflict_on_the_same_address_or_any_address() {
        let hp = |ip: &str, proto: &str, port| HostPort { ip: ip.into(), protocol: proto.into(), port };
        assert!(hp("0.0.0.0", "TCP", 80).conflicts_with(&hp("10.0.0.1", "TCP", 80)));
        assert!(hp("10.0.0.1", "TCP", 80).conflicts_with(&hp("10.0.0.1", "TCP", 80)));
        assert!(!hp("10.0.0.1", "TCP", 80).conflicts_with(&hp("10.0.0.2", "TCP", 80)));
        assert!(!hp("0.0.0.0", "TCP", 80).conflicts_with(&hp("0.0.0.0", "UDP", 80)));
        assert!(!hp("0.0.0.0", "TCP", 80).conflicts_with(&hp("0.0.0.0", "TCP", 81)));
    }
}
