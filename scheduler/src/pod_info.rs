//! [`PodInfo`]: what a pod asks of a node, worked out once per scheduling
//! attempt (requests in integers, host ports, parsed affinity terms) so that
//! checking one node is a handful of comparisons. [`PodUsage`] is the part a
//! node's accounting keeps for every pod placed on it.

use crate::resources::{NonZero, Resources, pod_non_zero_requests, pod_requests};
use crate::view::PodView;
use k8s_openapi::api::core::v1::Toleration;
pub use rkube_api::scheduling::TermMatcher;
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
