//! What the node lifecycle controller decides about one node, without I/O:
//! when its kubelet was last heard from ([`Probe`]), which conditions turn
//! Unknown when it falls silent ([`unknown_conditions`]), which `NoSchedule`
//! taints its conditions call for ([`condition_taints`]) and how the
//! controller's `NoExecute` taints change ([`swap_no_execute`],
//! [`without_no_execute`]).

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use rkube_api::scheduling::{
    TAINT_DISK_PRESSURE, TAINT_MEMORY_PRESSURE, TAINT_NETWORK_UNAVAILABLE, TAINT_NOT_READY, TAINT_PID_PRESSURE,
    TAINT_UNREACHABLE, TAINT_UNSCHEDULABLE,
};
use std::time::{Duration, Instant};

/// The condition types a kubelet posts and the controller turns Unknown
/// when the kubelet falls silent (Kubernetes' `Ready` plus
/// `remainingNodeConditionTypes`).
pub const KUBELET_CONDITIONS: [&str; 4] = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// The reason of a condition the controller turned Unknown.
pub const REASON_UNKNOWN: &str = "NodeStatusUnknown";
/// Its message.
pub const MESSAGE_UNKNOWN: &str = "Kubelet stopped posting node status.";
/// The reason of a condition the kubelet never posted.
pub const REASON_NEVER_UPDATED: &str = "NodeStatusNeverUpdated";
/// Its message.
pub const MESSAGE_NEVER_UPDATED: &str = "Kubelet never posted node status.";

/// The effect of the taints that evict pods.
pub const NO_EXECUTE: &str = "NoExecute";
/// The effect of the taints that only keep new pods away.
pub const NO_SCHEDULE: &str = "NoSchedule";

/// The Ready condition of `node`, if it has one.
pub fn ready_condition(node: &Node) -> Option<&NodeCondition> {
    node.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready")
}

/// The status of `node`'s Ready condition (`True`, `False`, `Unknown`).
pub fn ready_status(node: &Node) -> Option<&str> {
    ready_condition(node).map(|c| c.status.as_str())
}

/// The last time the controller heard from a node's kubelet: a new Ready
/// heartbeat (`lastHeartbeatTime`) or a renewed Lease (`renewTime`), timed
/// on this process's clock when it was seen (as Kubernetes' `nodeHealth`
/// probe timestamp), so the kubelet's clock does not matter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    ready_heartbeat: Option<Timestamp>,
    lease_renewed: Option<Timestamp>,
    /// When something new was last seen.
    pub at: Instant,
}

impl Probe {
    /// The probe after looking at `node` and its `lease` at `now`, given what
    /// was `saved` from the last look. A node seen for the first time counts
    /// as heard from now.
    pub fn observe(saved: Option<&Probe>, node: &Node, lease: Option<&Lease>, now: Instant) -> Probe {
        let ready_heartbeat = ready_condition(node).and_then(|c| c.last_heartbeat_time.as_ref()).map(|t| t.0);
        let lease_renewed = lease.and_then(|l| l.spec.as_ref()).and_then(|s| s.renew_time.as_ref()).map(|t| t.0);
        let at = match saved {
            None => now,
            Some(s) if s.ready_heartbeat != ready_heartbeat => now,
            // Only a newer renewal counts (a Lease replaced by an older one does not).
            Some(s) if lease_renewed.is_some_and(|r| s.lease_renewed.is_none_or(|old| r > old)) => now,
            Some(s) => s.at,
        };
        let lease_renewed = match saved {
            Some(s) if lease_renewed.is_none_or(|r| s.lease_renewed.is_some_and(|old| old > r)) => s.lease_renewed,
            _ => lease_renewed,
        };
        Probe { ready_heartbeat, lease_renewed, at }
    }

    /// Whether the kubelet has been silent for longer than `grace` at `now`.
    pub fn expired(&self, grace: Duration, now: Instant) -> bool {
        now.saturating_duration_since(self.at) > grace
    }
}

/// The grace period of `node`: `startup` until its kubelet has posted a
/// Ready condition, `monitor` after.
pub fn grace_period(node: &Node, monitor: Duration, startup: Duration) -> Duration {
    if ready_condition(node).is_some() { monitor } else { startup }
}

/// The conditions of a node whose kubelet stopped posting: each of
/// [`KUBELET_CONDITIONS`] Unknown (reason `NodeStatusUnknown`, its
/// `lastHeartbeatTime` kept, `lastTransitionTime` now), a missing one added
/// as Unknown `NodeStatusNeverUpdated`; other conditions as they are. None
/// when they are all Unknown already.
pub fn unknown_conditions(node: &Node, now: Timestamp) -> Option<Vec<NodeCondition>> {
    let mut conditions = node.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default();
    let mut changed = false;
    for type_ in KUBELET_CONDITIONS {
        match conditions.iter_mut().find(|c| c.type_ == type_) {
            Some(c) if c.status == "Unknown" => {}
            Some(c) => {
                c.status = "Unknown".into();
                c.reason = Some(REASON_UNKNOWN.into());
                c.message = Some(MESSAGE_UNKNOWN.into());
                c.last_transition_time = Some(Time(now));
                changed = true;
            }
            None => {
                conditions.push(NodeCondition {
                    type_: type_.into(),
                    status: "Unknown".into(),
                    reason: Some(REASON_NEVER_UPDATED.into()),
                    message: Some(MESSAGE_NEVER_UPDATED.into()),
                    last_heartbeat_time: node.metadata.creation_timestamp.clone(),
                    last_transition_time: Some(Time(now)),
                });
                changed = true;
            }
        }
    }
    changed.then_some(conditions)
}

/// The `NoSchedule` taint keys the controller owns, with the condition (type,
/// status) each stands for (Kubernetes' `nodeConditionToTaintKeyStatusMap`);
/// `unschedulable` stands for `spec.unschedulable`.
const CONDITION_TAINTS: [(&str, &str, &str); 6] = [
    ("Ready", "False", TAINT_NOT_READY),
    ("Ready", "Unknown", TAINT_UNREACHABLE),
    ("MemoryPressure", "True", TAINT_MEMORY_PRESSURE),
    ("DiskPressure", "True", TAINT_DISK_PRESSURE),
    ("NetworkUnavailable", "True", TAINT_NETWORK_UNAVAILABLE),
    ("PIDPressure", "True", TAINT_PID_PRESSURE),
];

fn no_schedule(key: &str) -> Taint {
    Taint { key: key.into(), effect: NO_SCHEDULE.into(), ..Default::default() }
}

/// `node`'s taints with the controller's `NoSchedule` taints set as its
/// conditions and `spec.unschedulable` call for: `not-ready` (Ready False),
/// `unreachable` (Ready Unknown), the pressure taints, `network-unavailable`
/// and `unschedulable`. Other taints, and the ones that stay, are kept as
/// they are.
pub fn with_condition_taints(node: &Node) -> Vec<Taint> {
    let conditions = node.status.as_ref().and_then(|s| s.conditions.as_deref()).unwrap_or_default();
    let mut wanted: Vec<&str> = CONDITION_TAINTS
        .iter()
        .filter(|(type_, status, _)| conditions.iter().any(|c| c.type_ == *type_ && c.status == *status))
        .map(|(_, _, key)| *key)
        .collect();
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        wanted.push(TAINT_UNSCHEDULABLE);
    }
    let owned = |key: &str| key == TAINT_UNSCHEDULABLE || CONDITION_TAINTS.iter().any(|(_, _, k)| *k == key);
    let current = node.spec.as_ref().and_then(|s| s.taints.clone()).unwrap_or_default();
    let mut taints: Vec<Taint> = current
        .iter()
        .filter(|t| !(t.effect == NO_SCHEDULE && owned(&t.key) && !wanted.contains(&t.key.as_str())))
        .cloned()
        .collect();
    for key in wanted {
        if !taints.iter().any(|t| t.key == key && t.effect == NO_SCHEDULE) {
            taints.push(no_schedule(key));
        }
    }
    taints
}

/// The taint list of `node` (empty when it has none).
pub fn taints(node: &Node) -> &[Taint] {
    node.spec.as_ref().and_then(|s| s.taints.as_deref()).unwrap_or_default()
}

/// Whether `node` carries the `NoExecute` taint `key`.
pub fn has_no_execute(node: &Node, key: &str) -> bool {
    taints(node).iter().any(|t| t.key == key && t.effect == NO_EXECUTE)
}

/// `taints` with the `NoExecute` taint `add` (added at `now`, unless it is
/// there already: then it keeps its `timeAdded`) and without the
/// `NoExecute` taint `remove` (Kubernetes' `SwapNodeControllerTaint`).
pub fn swap_no_execute(taints: &[Taint], add: &str, remove: &str, now: Timestamp) -> Vec<Taint> {
    let mut out: Vec<Taint> = taints.iter().filter(|t| !(t.key == remove && t.effect == NO_EXECUTE)).cloned().collect();
    if !out.iter().any(|t| t.key == add && t.effect == NO_EXECUTE) {
        out.push(Taint { key: add.into(), effect: NO_EXECUTE.into(), time_added: Some(Time(now)), value: None });
    }
    out
}

/// `taints` without the controller's `NoExecute` taints (`not-ready` and
/// `unreachable`).
pub fn without_no_execute(taints: &[Taint]) -> Vec<Taint> {
    taints
        .iter()
        .filter(|t| !(t.effect == NO_EXECUTE && (t.key == TAINT_NOT_READY || t.key == TAINT_UNREACHABLE)))
        .cloned()
        .collect()
}

/// The zone a node counts in for eviction rates (Kubernetes' `GetZoneKey`):
/// its region and zone labels, "" when it has neither.
pub fn zone_key(node: &Node) -> String {
    let labels = node.metadata.labels.as_ref();
    let label = |keys: [&str; 2]| {
        keys.iter().find_map(|k| labels.and_then(|l| l.get(*k)).filter(|v| !v.is_empty()).cloned()).unwrap_or_default()
    };
    let region = label(["topology.kubernetes.io/region", "failure-domain.beta.kubernetes.io/region"]);
    let zone = label(["topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone"]);
    if region.is_empty() && zone.is_empty() { String::new() } else { format!("{region}:\x00:{zone}") }
}

/// Whether `node` is left out of zone disruption counts (the label
/// `node.kubernetes.io/exclude-disruption`).
pub fn excluded_from_disruption(node: &Node) -> bool {
    node.metadata.labels.as_ref().is_some_and(|l| l.contains_key("node.kubernetes.io/exclude-disruption"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn node(v: Value) -> Node {
        serde_json::from_value(v).unwrap()
    }

    fn ready(status: &str, heartbeat: &str) -> Node {
        node(json!({"metadata": {"name": "n1", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "status": {"conditions": [
                {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory",
                 "lastHeartbeatTime": heartbeat, "lastTransitionTime": "2026-01-01T00:00:00Z"},
                {"type": "Ready", "status": status, "reason": "KubeletReady",
                 "lastHeartbeatTime": heartbeat, "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}))
    }

    fn lease(renewed: &str) -> Lease {
        serde_json::from_value(json!({"metadata": {"name": "n1"}, "spec": {"renewTime": renewed}})).unwrap()
    }

    #[test]
    fn a_new_heartbeat_or_lease_renewal_refreshes_the_probe() {
        let t0 = Instant::now();
        let (t1, t2, t3) = (t0 + Duration::from_secs(10), t0 + Duration::from_secs(20), t0 + Duration::from_secs(30));
        let n = ready("True", "2026-01-01T00:00:00Z");
        let first = Probe::observe(None, &n, Some(&lease("2026-01-01T00:00:00.000000Z")), t0);
        assert_eq!(first.at, t0, "first sight counts as heard from");
        let same = Probe::observe(Some(&first), &n, Some(&lease("2026-01-01T00:00:00.000000Z")), t1);
        assert_eq!(same.at, t0, "nothing new");
        assert!(same.expired(Duration::from_secs(5), t1) && !same.expired(Duration::from_secs(40), t1));
        let renewed = Probe::observe(Some(&same), &n, Some(&lease("2026-01-01T00:00:10.000000Z")), t2);
        assert_eq!(renewed.at, t2, "the Lease was renewed");
        let older = Probe::observe(Some(&renewed), &n, Some(&lease("2026-01-01T00:00:05.000000Z")), t3);
        assert_eq!(older.at, t2, "an older renewTime is no news");
        let posted = Probe::observe(Some(&older), &ready("True", "2026-01-01T00:01:00Z"), None, t3);
        assert_eq!(posted.at, t3, "a new Ready heartbeat, without a Lease");
    }

    #[test]
    fn a_silent_kubelet_turns_its_conditions_unknown_once() {
        let now: Timestamp = "2026-01-01T00:05:00Z".parse().unwrap();
        let n = ready("True", "2026-01-01T00:01:00Z");
        let conditions = unknown_conditions(&n, now).expect("changed");
        let get = |t: &str| conditions.iter().find(|c| c.type_ == t).unwrap().clone();
        let ready = get("Ready");
        assert_eq!((ready.status.as_str(), ready.reason.as_deref()), ("Unknown", Some(REASON_UNKNOWN)));
        assert_eq!(ready.message.as_deref(), Some(MESSAGE_UNKNOWN));
        assert_eq!(ready.last_heartbeat_time, Some(Time("2026-01-01T00:01:00Z".parse().unwrap())), "kept");
        assert_eq!(ready.last_transition_time, Some(Time(now)));
        assert_eq!(get("MemoryPressure").status, "Unknown");
        let never = get("DiskPressure");
        assert_eq!((never.status.as_str(), never.reason.as_deref()), ("Unknown", Some(REASON_NEVER_UPDATED)));
        assert_eq!(never.last_heartbeat_time, Some(Time("2026-01-01T00:00:00Z".parse().unwrap())), "creation");
        assert_eq!(conditions.len(), 4);
        let mut unknown = n.clone();
        unknown.status.as_mut().unwrap().conditions = Some(conditions);
        assert_eq!(unknown_conditions(&unknown, now), None, "already Unknown");
    }

    #[test]
    fn the_startup_grace_period_applies_until_ready_is_posted() {
        let (monitor, startup) = (Duration::from_secs(40), Duration::from_secs(60));
        assert_eq!(grace_period(&ready("False", "2026-01-01T00:00:00Z"), monitor, startup), monitor);
        assert_eq!(grace_period(&node(json!({"metadata": {"name": "n"}})), monitor, startup), startup);
    }

    #[test]
    fn conditions_map_to_no_schedule_taints() {
        let keys =
            |n: &Node| with_condition_taints(n).iter().map(|t| (t.key.clone(), t.effect.clone())).collect::<Vec<_>>();
        assert!(keys(&ready("True", "2026-01-01T00:00:00Z")).is_empty());
        assert_eq!(keys(&ready("False", "2026-01-01T00:00:00Z")), [(TAINT_NOT_READY.into(), NO_SCHEDULE.into())]);
        assert_eq!(keys(&ready("Unknown", "2026-01-01T00:00:00Z")), [(TAINT_UNREACHABLE.into(), NO_SCHEDULE.into())]);
        let n = node(json!({"metadata": {"name": "n"},
            "spec": {"unschedulable": true, "taints": [
                {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
                {"key": TAINT_NOT_READY, "effect": "NoSchedule"},
                {"key": TAINT_UNREACHABLE, "effect": "NoExecute", "timeAdded": "2026-01-01T00:00:00Z"}]},
            "status": {"conditions": [{"type": "Ready", "status": "True"},
                {"type": "DiskPressure", "status": "True"}]}}));
        assert_eq!(
            keys(&n),
            [
                ("dedicated".into(), NO_SCHEDULE.into()),
                (TAINT_UNREACHABLE.into(), NO_EXECUTE.into()),
                (TAINT_DISK_PRESSURE.into(), NO_SCHEDULE.into()),
                (TAINT_UNSCHEDULABLE.into(), NO_SCHEDULE.into()),
            ],
            "not-ready goes, NoExecute and foreign taints stay"
        );
    }

    #[test]
    fn no_execute_taints_swap_and_keep_their_time() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let t1: Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
        let foreign = Taint { key: "x".into(), effect: NO_EXECUTE.into(), ..Default::default() };
        let unreachable = swap_no_execute(std::slice::from_ref(&foreign), TAINT_UNREACHABLE, TAINT_NOT_READY, t0);
        assert_eq!(unreachable[1].key, TAINT_UNREACHABLE);
        assert_eq!(unreachable[1].time_added, Some(Time(t0)));
        assert_eq!(swap_no_execute(&unreachable, TAINT_UNREACHABLE, TAINT_NOT_READY, t1), unreachable, "kept");
        let not_ready = swap_no_execute(&unreachable, TAINT_NOT_READY, TAINT_UNREACHABLE, t1);
        assert_eq!(not_ready.iter().map(|t| t.key.as_str()).collect::<Vec<_>>(), ["x", TAINT_NOT_READY]);
        assert_eq!(without_no_execute(&not_ready), [foreign]);
    }

    #[test]
    fn zones_come_from_region_and_zone_labels() {
        assert_eq!(zone_key(&node(json!({"metadata": {"name": "n"}}))), "");
        let labelled = node(json!({"metadata": {"name": "n", "labels": {
            "topology.kubernetes.io/region": "eu", "failure-domain.beta.kubernetes.io/zone": "eu-1a"}}}));
        assert_eq!(zone_key(&labelled), "eu:\x00:eu-1a");
    }
}
