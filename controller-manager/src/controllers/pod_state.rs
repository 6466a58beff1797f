//! The pods controllers cache, and how they read a pod's state
//! (Kubernetes' `podutil`): active, ready, available for
//! `minReadySeconds`, and which pod to delete first.
//!
//! Every controller of the process shares one pod cache. A full `Pod`
//! carries containers, volumes, probes and environment no controller reads:
//! with 10,000 pods they would be most of the controller-manager's memory.
//! [`PodView`] decodes only what the controllers read — metadata, the
//! node, affinity and tolerations, restart policy, the containers' ports,
//! hostname and subdomain, phase, pod IPs, the Ready condition and lean
//! container statuses — under the same field names as `Pod`, and names the
//! `v1` Pod resource, so `Api<PodView>` lists and watches pods. It is a
//! read-only projection: writing one back would drop what it leaves out.

use k8s_openapi::api::core::v1::{
    Affinity, ContainerPort, ContainerStateTerminated, Pod, PodCondition, PodIP, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use rkube_api::view::{exact, exact_vec, lean_metadata};
use serde::{Deserialize, Deserializer, Serialize};
use std::cmp::Ordering;

/// The parts of a pod controllers read; see the module docs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PodView {
    /// Metadata, without managed fields.
    #[serde(default, deserialize_with = "lean_metadata")]
    pub metadata: ObjectMeta,
    /// The spec fields controllers read.
    #[serde(default)]
    pub spec: Option<PodSpecView>,
    /// The status fields controllers read.
    #[serde(default)]
    pub status: Option<PodStatusView>,
}

/// The fields of a PodSpec controllers read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpecView {
    /// The node it is bound to.
    pub node_name: Option<String>,
    /// Its affinity (a DaemonSet pod names its node there). Boxed: most
    /// pods have none, and inline it would take 144 bytes of every pod.
    pub affinity: Option<Box<Affinity>>,
    /// Its tolerations.
    #[serde(default, deserialize_with = "exact")]
    pub tolerations: Option<Vec<Toleration>>,
    /// Always, OnFailure or Never.
    pub restart_policy: Option<String>,
    /// The app containers: names and ports only (Services resolve named
    /// target ports against them).
    #[serde(default, deserialize_with = "exact_vec")]
    pub containers: Vec<ContainerView>,
    /// `spec.hostname` (a headless Service's DNS name for the pod).
    pub hostname: Option<String>,
    /// `spec.subdomain` (the headless Service the hostname is under).
    pub subdomain: Option<String>,
    /// The init containers (resource quota sums their resources).
    #[serde(default, deserialize_with = "exact")]
    pub init_containers: Option<Vec<ContainerView>>,
    /// `spec.overhead` (counted by resource quota).
    pub overhead: Option<std::collections::BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
    /// `spec.activeDeadlineSeconds` (resource quota's Terminating scope).
    pub active_deadline_seconds: Option<i64>,
}

/// A container's name and ports.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerView {
    /// The container's name.
    pub name: String,
    /// Its ports.
    #[serde(default, deserialize_with = "exact")]
    pub ports: Option<Vec<ContainerPort>>,
    /// Its requests and limits (resource quota sums them).
    pub resources: Option<k8s_openapi::api::core::v1::ResourceRequirements>,
    /// `Always` for a sidecar init container.
    #[serde(rename = "restartPolicy")]
    pub restart_policy: Option<String>,
}

/// The fields of a PodStatus controllers read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStatusView {
    /// Pending, Running, Succeeded, Failed or Unknown.
    pub phase: Option<String>,
    /// The Ready condition (the only one controllers read).
    #[serde(default, deserialize_with = "ready_condition")]
    pub conditions: Option<Vec<PodCondition>>,
    /// The app containers' statuses: name, readiness, restarts and how
    /// they terminated.
    #[serde(default, deserialize_with = "exact")]
    pub container_statuses: Option<Vec<ContainerStatusView>>,
    /// The init containers' statuses, as lean.
    #[serde(default, deserialize_with = "exact")]
    pub init_container_statuses: Option<Vec<ContainerStatusView>>,
    /// When the kubelet started the pod.
    pub start_time: Option<Time>,
    /// The pod's IP, once the kubelet has set up its network.
    #[serde(rename = "podIP")]
    pub pod_ip: Option<String>,
    /// All its IPs (the first is `podIP`).
    #[serde(default, rename = "podIPs", deserialize_with = "exact")]
    pub pod_ips: Option<Vec<PodIP>>,
}

/// Keeps the Ready condition only, dropping the others as they are read
/// (no list of every condition is built and freed: a cache filled from
/// such short-lived lists keeps their holes in its pages).
fn ready_condition<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<PodCondition>>, D::Error> {
    struct ReadyOnly;
    impl<'de> serde::de::Visitor<'de> for ReadyOnly {
        type Value = Option<Vec<PodCondition>>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a list of pod conditions")
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_seq(self)
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut ready = Vec::new();
            while let Some(condition) = seq.next_element::<PodCondition>()? {
                if condition.type_ == "Ready" {
                    ready = vec![condition];
                }
            }
            Ok(Some(ready))
        }
    }
    d.deserialize_option(ReadyOnly)
}

/// Of a container's status, what controllers read: its name, readiness,
/// restart count and how it terminated (images, ids and the running and
/// waiting details go).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStatusView {
    /// The container's name.
    pub name: String,
    /// Whether it passes its readiness probe.
    #[serde(default)]
    pub ready: bool,
    /// How often the kubelet restarted it.
    #[serde(default)]
    pub restart_count: i32,
    /// Its state: only a termination is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ContainerStateView>,
}

/// A container's state, as far as controllers read it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerStateView {
    /// Set once the container has terminated (boxed: rare, and 136 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminated: Option<Box<ContainerStateTerminated>>,
}

impl PodView {
    /// The view of a full pod (a round trip through JSON; for cold paths).
    pub fn of(pod: &Pod) -> PodView {
        serde_json::to_value(pod).and_then(serde_json::from_value).unwrap_or_default()
    }
}

rkube_api::view_of!(PodView, Pod);

/// `status.phase`, "" when not reported yet.
pub fn phase(pod: &PodView) -> &str {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("")
}

/// Counts toward a controller's replicas: not finished, not being deleted.
pub fn is_active(pod: &PodView) -> bool {
    !matches!(phase(pod), "Succeeded" | "Failed") && pod.metadata.deletion_timestamp.is_none()
}

/// When the pod's Ready condition last turned True, if it is True.
pub fn ready_since(pod: &PodView) -> Option<Timestamp> {
    let cond = pod.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready")?;
    if cond.status != "True" {
        return None;
    }
    Some(cond.last_transition_time.as_ref().map_or(Timestamp::UNIX_EPOCH, |t| t.0))
}

/// The Ready condition is True.
pub fn is_ready(pod: &PodView) -> bool {
    ready_since(pod).is_some()
}

/// Ready for at least `min_ready_seconds` at `now`.
pub fn is_available(pod: &PodView, min_ready_seconds: i32, now: Timestamp) -> bool {
    match ready_since(pod) {
        None => false,
        Some(_) if min_ready_seconds <= 0 => true,
        Some(since) => since.as_second().saturating_add(i64::from(min_ready_seconds)) <= now.as_second(),
    }
}

/// Restarts of all the pod's containers.
fn restarts(pod: &PodView) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map_or(0, |cs| cs.iter().map(|c| c.restart_count).sum())
}

fn phase_rank(pod: &PodView) -> u8 {
    match phase(pod) {
        "Pending" | "" => 0,
        "Unknown" => 1,
        _ => 2,
    }
}

/// Which of two pods to delete first when scaling down (Kubernetes'
/// `ActivePods` order): `Less` means `a` goes first. Unassigned before
/// assigned; Pending before Unknown before Running; not ready before ready;
/// ready for less time before longer; more restarts before fewer; newer
/// before older.
pub fn deletion_order(a: &PodView, b: &PodView) -> Ordering {
    let assigned = |p: &PodView| p.spec.as_ref().and_then(|s| s.node_name.as_deref()).is_some_and(|n| !n.is_empty());
    assigned(a)
        .cmp(&assigned(b))
        .then_with(|| phase_rank(a).cmp(&phase_rank(b)))
        .then_with(|| is_ready(a).cmp(&is_ready(b)))
        .then_with(|| ready_since(b).cmp(&ready_since(a)))
        .then_with(|| restarts(b).cmp(&restarts(a)))
        .then_with(|| {
            let created = |p: &PodView| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
            created(b).cmp(&created(a))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> PodView {
        serde_json::from_value(v).unwrap()
    }

    fn ready_pod(name: &str, node: &str, since: &str, created: &str) -> PodView {
        pod(json!({"metadata": {"name": name, "creationTimestamp": created},
            "spec": {"nodeName": node, "containers": []},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": since}]}}))
    }

    #[test]
    fn the_cheapest_pods_are_deleted_first() {
        let unassigned = pod(json!({"metadata": {"name": "unassigned"}, "spec": {"containers": []}}));
        let pending = pod(json!({"metadata": {"name": "pending"}, "spec": {"nodeName": "n", "containers": []},
            "status": {"phase": "Pending"}}));
        let not_ready = pod(json!({"metadata": {"name": "not-ready"}, "spec": {"nodeName": "n", "containers": []},
            "status": {"phase": "Running"}}));
        let young = ready_pod("young", "n", "2026-01-01T00:10:00Z", "2026-01-01T00:00:00Z");
        let old = ready_pod("old", "n", "2026-01-01T00:01:00Z", "2026-01-01T00:00:00Z");
        let mut pods = [old.clone(), young.clone(), not_ready, pending, unassigned];
        pods.sort_by(deletion_order);
        let names: Vec<_> = pods.iter().map(|p| p.metadata.name.as_deref().unwrap()).collect();
        assert_eq!(names, ["unassigned", "pending", "not-ready", "young", "old"]);
    }

    #[test]
    fn the_view_keeps_what_controllers_read_and_drops_the_rest() {
        let view = pod(json!({"metadata": {"name": "p", "managedFields": [{"manager": "x"}]},
            "spec": {"nodeName": "n1", "restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": "Failed", "conditions": [
                {"type": "PodScheduled", "status": "True"},
                {"type": "Ready", "status": "False", "lastTransitionTime": "2026-01-01T00:00:05Z"}],
                "containerStatuses": [{"name": "c", "image": "i", "imageID": "sha", "containerID": "docker://1",
                    "ready": false, "restartCount": 2,
                    "state": {"terminated": {"exitCode": 3, "finishedAt": "2026-01-01T00:00:04Z"}}}]}}));
        assert_eq!(view.metadata.managed_fields, None);
        let spec = view.spec.as_ref().unwrap();
        assert_eq!((spec.node_name.as_deref(), spec.restart_policy.as_deref()), (Some("n1"), Some("Never")));
        let status = view.status.as_ref().unwrap();
        let conditions = status.conditions.as_ref().unwrap();
        assert_eq!(conditions.iter().map(|c| c.type_.as_str()).collect::<Vec<_>>(), ["Ready"]);
        assert_eq!(conditions.capacity(), 1, "no room kept for the conditions dropped");
        let none = pod(json!({"metadata": {"name": "p"}, "status": {"conditions": null}}));
        assert_eq!(none.status.unwrap().conditions, None);
        let bad = serde_json::from_value::<PodView>(json!({"status": {"conditions": [{"type": 5}]}}));
        assert!(bad.is_err(), "a malformed condition is an error, not silently dropped");
        let c = &status.container_statuses.as_ref().unwrap()[0];
        assert_eq!((c.name.as_str(), c.restart_count, c.ready), ("c", 2, false));
        assert_eq!(serde_json::to_value(c).unwrap().get("image"), None, "the image is not kept");
        assert_eq!(c.state.as_ref().and_then(|s| s.terminated.as_ref()).map(|t| t.exit_code), Some(3));
        assert_eq!(phase(&view), "Failed");
        assert_eq!(spec.containers[0].name, "c");
        let ported = pod(json!({"metadata": {"name": "p"},
            "spec": {"hostname": "h", "subdomain": "s", "containers": [{"name": "c", "image": "i",
                "ports": [{"name": "http", "containerPort": 8080}], "env": [{"name": "A", "value": "1"}]}]},
            "status": {"podIP": "10.1.0.5", "podIPs": [{"ip": "10.1.0.5"}]}}));
        let spec = ported.spec.as_ref().unwrap();
        assert_eq!(spec.containers[0].ports.as_ref().unwrap()[0].container_port, 8080);
        assert_eq!((spec.hostname.as_deref(), spec.subdomain.as_deref()), (Some("h"), Some("s")));
        assert_eq!(ported.status.as_ref().unwrap().pod_ip.as_deref(), Some("10.1.0.5"));
        let json = serde_json::to_value(&ported).unwrap();
        assert_eq!(json["status"]["podIP"], "10.1.0.5");
        assert_eq!(json["spec"]["containers"][0]["env"], serde_json::Value::Null, "env is not kept");
    }

    #[test]
    fn available_after_min_ready_seconds() {
        let p = ready_pod("p", "n", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z");
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        assert!(is_available(&p, 0, at("2026-01-01T00:00:00Z")));
        assert!(!is_available(&p, 10, at("2026-01-01T00:00:09Z")));
        assert!(is_available(&p, 10, at("2026-01-01T00:00:10Z")));
        assert!(!is_active(&pod(json!({"metadata": {}, "status": {"phase": "Succeeded"}}))));
    }
}
