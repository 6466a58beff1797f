//! How controllers read a pod's state (Kubernetes' `podutil`): active,
//! ready, available for `minReadySeconds`, and which pod to delete first.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use std::cmp::Ordering;

/// `status.phase`, "" when not reported yet.
pub fn phase(pod: &Pod) -> &str {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("")
}

/// Counts toward a controller's replicas: not finished, not being deleted.
pub fn is_active(pod: &Pod) -> bool {
    !matches!(phase(pod), "Succeeded" | "Failed") && pod.metadata.deletion_timestamp.is_none()
}

/// When the pod's Ready condition last turned True, if it is True.
pub fn ready_since(pod: &Pod) -> Option<Timestamp> {
    let cond = pod.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready")?;
    if cond.status != "True" {
        return None;
    }
    Some(cond.last_transition_time.as_ref().map_or(Timestamp::UNIX_EPOCH, |t| t.0))
}

/// The Ready condition is True.
pub fn is_ready(pod: &Pod) -> bool {
    ready_since(pod).is_some()
}

/// Ready for at least `min_ready_seconds` at `now`.
pub fn is_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    match ready_since(pod) {
        None => false,
        Some(_) if min_ready_seconds <= 0 => true,
        Some(since) => since.as_second().saturating_add(i64::from(min_ready_seconds)) <= now.as_second(),
    }
}

/// Restarts of all the pod's containers.
fn restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map_or(0, |cs| cs.iter().map(|c| c.restart_count).sum())
}

fn phase_rank(pod: &Pod) -> u8 {
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
pub fn deletion_order(a: &Pod, b: &Pod) -> Ordering {
    let assigned = |p: &Pod| p.spec.as_ref().and_then(|s| s.node_name.as_deref()).is_some_and(|n| !n.is_empty());
    assigned(a)
        .cmp(&assigned(b))
        .then_with(|| phase_rank(a).cmp(&phase_rank(b)))
        .then_with(|| is_ready(a).cmp(&is_ready(b)))
        .then_with(|| ready_since(b).cmp(&ready_since(a)))
        .then_with(|| restarts(b).cmp(&restarts(a)))
        .then_with(|| {
            let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
            created(b).cmp(&created(a))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    fn ready_pod(name: &str, node: &str, since: &str, created: &str) -> Pod {
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
    fn available_after_min_ready_seconds() {
        let p = ready_pod("p", "n", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z");
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        assert!(is_available(&p, 0, at("2026-01-01T00:00:00Z")));
        assert!(!is_available(&p, 10, at("2026-01-01T00:00:09Z")));
        assert!(is_available(&p, 10, at("2026-01-01T00:00:10Z")));
        assert!(!is_active(&pod(json!({"metadata": {}, "status": {"phase": "Succeeded"}}))));
    }
}
