//! The pod row: kubectl's READY, STATUS and RESTARTS logic (`printPod`).

use super::{opt, or_none};
use crate::printers::age;
use k8s_openapi::api::core::v1::{Container, ContainerState, ContainerStatus, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// Headers of the pod table.
pub fn headers(wide: bool) -> &'static [&'static str] {
    if wide {
        &["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED NODE", "READINESS GATES"]
    } else {
        &["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    }
}

/// The cells of one pod.
pub fn cells(pod: &Pod, wide: bool) -> Vec<String> {
    let s = summarize(pod, age::now_seconds());
    let mut cells = vec![
        opt(&pod.metadata.name),
        s.ready,
        s.status,
        s.restarts,
        age::age(pod.metadata.creation_timestamp.as_ref()),
    ];
    if wide {
        let status = pod.status.clone().unwrap_or_default();
        let ip = status
            .pod_ips
            .as_ref()
            .and_then(|ips| ips.first())
            .map(|ip| ip.ip.clone())
            .or(status.pod_ip.clone())
            .unwrap_or_default();
        let spec = pod.spec.clone().unwrap_or_default();
        let gates = spec.readiness_gates.unwrap_or_default();
        let gates = if gates.is_empty() {
            "<none>".to_string()
        } else {
            let conditions = status.conditions.unwrap_or_default();
            let ready = gates
                .iter()
                .filter(|g| conditions.iter().any(|c| c.type_ == g.condition_type && c.status == "True"))
                .count();
            format!("{ready}/{}", gates.len())
        };
        cells.extend([or_none(&ip), or_none(&opt(&spec.node_name)), or_none(&opt(&status.nominated_node_name)), gates]);
    }
    cells
}

/// What the READY, STATUS and RESTARTS columns say about a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodSummary {
    /// `ready/total` containers.
    pub ready: String,
    /// The phase, or the reason a container is waiting or terminated, or
    /// `Terminating`, `Init:1/2`, `Init:CrashLoopBackOff`, ...
    pub status: String,
    /// The restart count, with the time of the last restart (`3 (2m ago)`).
    pub restarts: String,
}

fn is_restartable_init(c: Option<&Container>) -> bool {
    c.is_some_and(|c| c.restart_policy.as_deref() == Some("Always"))
}

fn waiting_reason(s: &ContainerState) -> Option<&str> {
    s.waiting.as_ref().and_then(|w| w.reason.as_deref()).filter(|r| !r.is_empty())
}

fn last_finished(c: &ContainerStatus) -> Option<&Time> {
    c.last_state.as_ref().and_then(|s| s.terminated.as_ref()).and_then(|t| t.finished_at.as_ref())
}

fn later<'a>(a: Option<&'a Time>, b: Option<&'a Time>) -> Option<&'a Time> {
    match (a, b) {
        (Some(x), Some(y)) => Some(if y.0 > x.0 { y } else { x }),
        (x, None) => x,
        (None, y) => y,
    }
}

/// kubectl's pod summary at `now` (seconds since the epoch).
pub fn summarize(pod: &Pod, now: i64) -> PodSummary {
    let spec = pod.spec.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    let phase = status.phase.clone().filter(|p| !p.is_empty()).unwrap_or_else(|| "Pending".into());
    let mut reason = status.reason.clone().filter(|r| !r.is_empty()).unwrap_or_else(|| phase.clone());
    let conditions = status.conditions.clone().unwrap_or_default();
    if conditions.iter().any(|c| c.type_ == "PodScheduled" && c.reason.as_deref() == Some("SchedulingGated")) {
        reason = "SchedulingGated".into();
    }
    let init_specs = spec.init_containers.clone().unwrap_or_default();
    let init_spec = |name: &str| init_specs.iter().find(|c| c.name == name);
    let total = spec.containers.len() + init_specs.iter().filter(|c| is_restartable_init(Some(c))).count();
    let mut ready = 0;
    let mut restarts = 0;
    let mut last_restart: Option<&Time> = None;
    let mut sidecar_restarts = 0;
    let mut last_sidecar_restart: Option<&Time> = None;

    let init_statuses = status.init_container_statuses.clone().unwrap_or_default();
    let mut initializing = false;
    for (i, c) in init_statuses.iter().enumerate() {
        restarts += c.restart_count;
        last_restart = later(last_restart, last_finished(c));
        let sidecar = is_restartable_init(init_spec(&c.name));
        if sidecar {
            sidecar_restarts += c.restart_count;
            last_sidecar_restart = later(last_sidecar_restart, last_finished(c));
        }
        let state = c.state.clone().unwrap_or_default();
        let terminated = state.terminated.as_ref();
        if terminated.is_some_and(|t| t.exit_code == 0) {
            continue;
        }
        if sidecar && c.started == Some(true) {
            if c.ready {
                ready += 1;
            }
            continue;
        }
        reason = match (terminated, waiting_reason(&state)) {
            (Some(t), _) => match t.reason.as_deref().filter(|r| !r.is_empty()) {
                Some(r) => format!("Init:{r}"),
                None if t.signal.unwrap_or(0) != 0 => format!("Init:Signal:{}", t.signal.unwrap_or(0)),
                None => format!("Init:ExitCode:{}", t.exit_code),
            },
            (None, Some(r)) if r != "PodInitializing" => format!("Init:{r}"),
            _ => format!("Init:{i}/{}", init_specs.len()),
        };
        initializing = true;
        break;
    }

    let initialized = conditions.iter().any(|c| c.type_ == "Initialized" && c.status == "True");
    if !initializing || initialized {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        for c in status.container_statuses.iter().flatten().rev() {
            restarts += c.restart_count;
            last_restart = later(last_restart, last_finished(c));
            let state = c.state.clone().unwrap_or_default();
            if let Some(r) = waiting_reason(&state) {
                reason = r.to_string();
            } else if let Some(t) = &state.terminated {
                reason = match t.reason.as_deref().filter(|r| !r.is_empty()) {
                    Some(r) => r.to_string(),
                    None if t.signal.unwrap_or(0) != 0 => format!("Signal:{}", t.signal.unwrap_or(0)),
                    None => format!("ExitCode:{}", t.exit_code),
                };
            } else if c.ready && state.running.is_some() {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            let pod_ready = conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True");
            reason = if pod_ready { "Running".into() } else { "NotReady".into() };
        }
    }

    if pod.metadata.deletion_timestamp.is_some() {
        if status.reason.as_deref() == Some("NodeLost") {
            reason = "Unknown".into();
        } else if !matches!(phase.as_str(), "Succeeded" | "Failed") {
            reason = "Terminating".into();
        }
    }

    let restarts = match last_restart {
        Some(t) if restarts != 0 => format!("{restarts} ({} ago)", age::age_at(Some(&t.0), now)),
        _ => restarts.to_string(),
    };
    PodSummary { ready: format!("{ready}/{total}"), status: reason, restarts }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).expect("a pod")
    }

    fn two_containers(statuses: serde_json::Value) -> Pod {
        pod(json!({
            "metadata": {"name": "redis-php"},
            "spec": {"containers": [{"name": "frontend"}, {"name": "redis"}]},
            "status": {"phase": "Running", "containerStatuses": statuses},
        }))
    }

    #[test]
    fn new_pod_without_status_is_pending() {
        let s = summarize(&pod(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}})), 0);
        assert_eq!(s, PodSummary { ready: "0/1".into(), status: "Pending".into(), restarts: "0".into() });
    }

    #[test]
    fn running_ready_containers_count_as_ready() {
        let s = summarize(
            &two_containers(json!([
                {"name": "frontend", "ready": true, "restartCount": 0, "image": "", "imageID": "",
                 "state": {"running": {}}},
                {"name": "redis", "ready": true, "restartCount": 0, "image": "", "imageID": "",
                 "state": {"running": {}}},
            ])),
            0,
        );
        assert_eq!((s.ready.as_str(), s.status.as_str()), ("2/2", "Running"));
    }

    #[test]
    fn waiting_reason_replaces_the_phase_and_restarts_show_when() {
        let s = summarize(
            &two_containers(json!([
                {"name": "frontend", "ready": true, "restartCount": 0, "image": "", "imageID": "",
                 "state": {"running": {}}},
                {"name": "redis", "ready": false, "restartCount": 3, "image": "", "imageID": "",
                 "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                 "lastState": {"terminated": {"exitCode": 1, "finishedAt": "1970-01-01T00:01:40Z"}}},
            ])),
            220,
        );
        assert_eq!(s.ready, "1/2");
        assert_eq!(s.status, "CrashLoopBackOff");
        assert_eq!(s.restarts, "3 (2m ago)");
    }

    #[test]
    fn terminated_without_reason_shows_the_exit_code() {
        let s = summarize(
            &two_containers(json!([
                {"name": "redis", "ready": false, "restartCount": 0, "image": "", "imageID": "",
                 "state": {"terminated": {"exitCode": 2}}},
            ])),
            0,
        );
        assert_eq!(s.status, "ExitCode:2");
    }

    #[test]
    fn deletion_timestamp_means_terminating_unless_finished() {
        let mut p = two_containers(json!([]));
        p.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
        assert_eq!(summarize(&p, 0).status, "Terminating");
        p.status.as_mut().expect("status").phase = Some("Succeeded".into());
        assert_eq!(summarize(&p, 0).status, "Succeeded");
    }

    #[test]
    fn init_containers_report_progress() {
        let p = pod(json!({
            "metadata": {"name": "p"},
            "spec": {"initContainers": [{"name": "a"}, {"name": "b"}], "containers": [{"name": "c"}]},
            "status": {"phase": "Pending", "initContainerStatuses": [
                {"name": "a", "ready": true, "restartCount": 0, "image": "", "imageID": "",
                 "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                {"name": "b", "ready": false, "restartCount": 0, "image": "", "imageID": "",
                 "state": {"running": {}}},
            ]},
        }));
        assert_eq!(summarize(&p, 0).status, "Init:1/2");
    }
}
