//! The pod row: kubectl's READY, STATUS and RESTARTS logic (`printPod`).

use super::{AGE, Cell, Column, NAME, age, age_of, int, items, name, or_none, text, time};
use jiff::Timestamp;
use serde_json::{Value, json};

/// The pod table's columns.
pub(super) const COLUMNS: &[Column] = &[
    NAME,
    Column::string("Ready", "The aggregate readiness state of this pod for accepting traffic."),
    Column::string("Status", "The aggregate status of the containers in this pod."),
    Column::string(
        "Restarts",
        "The number of times the containers in this pod have been restarted and when the last container in this pod \
         has restarted.",
    ),
    AGE,
    Column::string(
        "IP",
        "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.",
    )
    .wide(),
    Column::string("Node", "NodeName indicates in which node this pod is scheduled.").wide(),
    Column::string(
        "Nominated Node",
        "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled \
         right away as preemption victims receive their graceful termination periods.",
    )
    .wide(),
    Column::string(
        "Readiness Gates",
        "If specified, all readiness gates will be evaluated for pod readiness. A pod is ready when all its \
         containers are ready AND all conditions specified in the readiness gates have status equal to \"True\".",
    )
    .wide(),
];

/// The cells of a pod at `now`.
pub(super) fn cells(pod: &Value, now: Timestamp) -> Vec<Cell> {
    let s = summarize(pod, now);
    let (spec, status) = (&pod["spec"], &pod["status"]);
    let ip = items(&status["podIPs"]).first().map_or_else(|| text(&status["podIP"]), |ip| text(&ip["ip"]));
    let gates = items(&spec["readinessGates"]);
    let gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let conditions = items(&status["conditions"]);
        let ready = gates
            .iter()
            .filter(|g| {
                let wanted = text(&g["conditionType"]);
                conditions.iter().find(|c| text(&c["type"]) == wanted).is_some_and(|c| text(&c["status"]) == "True")
            })
            .count();
        format!("{ready}/{}", gates.len())
    };
    vec![
        name(pod),
        s.ready.into(),
        s.status.into(),
        s.restarts.into(),
        age_of(pod, now),
        or_none(ip).into(),
        or_none(text(&spec["nodeName"])).into(),
        or_none(text(&status["nominatedNodeName"])).into(),
        gates.into(),
    ]
}

/// The row conditions kube-apiserver gives finished pods: `Completed`, with
/// the phase as the reason.
pub(super) fn row_conditions(pod: &Value) -> Option<Value> {
    let message = match text(&pod["status"]["phase"]) {
        "Succeeded" => "The pod has completed successfully.",
        "Failed" => "The pod failed.",
        _ => return None,
    };
    Some(json!([{"type": "Completed", "status": "True", "reason": pod["status"]["phase"], "message": message}]))
}

/// What the Ready, Status and Restarts columns say about a pod.
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

fn is_restartable_init(c: Option<&Value>) -> bool {
    c.is_some_and(|c| text(&c["restartPolicy"]) == "Always")
}

/// When a container last terminated (its `lastState`), if it did.
fn last_finished(c: &Value) -> Option<Timestamp> {
    time(&c["lastState"]["terminated"]["finishedAt"])
}

fn later(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    a.max(b)
}

/// `Signal:9` / `ExitCode:2` for a terminated state without a reason, else the reason.
fn terminated_reason(t: &Value) -> String {
    let reason = text(&t["reason"]);
    if !reason.is_empty() {
        return reason.to_string();
    }
    match int(&t["signal"]) {
        0 => format!("ExitCode:{}", int(&t["exitCode"])),
        signal => format!("Signal:{signal}"),
    }
}

/// kubectl's pod summary at `now`.
pub fn summarize(pod: &Value, now: Timestamp) -> PodSummary {
    let (spec, status) = (&pod["spec"], &pod["status"]);
    let phase = match text(&status["phase"]) {
        "" => "Pending",
        p => p,
    };
    let mut reason = match text(&status["reason"]) {
        "" => phase.to_string(),
        r => r.to_string(),
    };
    let conditions = items(&status["conditions"]);
    if conditions.iter().any(|c| text(&c["type"]) == "PodScheduled" && text(&c["reason"]) == "SchedulingGated") {
        reason = "SchedulingGated".into();
    }
    let init_specs = items(&spec["initContainers"]);
    let init_spec = |name: &str| init_specs.iter().find(|c| text(&c["name"]) == name);
    let total = items(&spec["containers"]).len() + init_specs.iter().filter(|c| is_restartable_init(Some(c))).count();
    let mut ready = 0;
    let mut restarts = 0;
    let mut last_restart: Option<Timestamp> = None;
    let mut sidecar_restarts = 0;
    let mut last_sidecar_restart: Option<Timestamp> = None;

    let mut initializing = false;
    for (i, c) in items(&status["initContainerStatuses"]).iter().enumerate() {
        restarts += int(&c["restartCount"]);
        last_restart = later(last_restart, last_finished(c));
        let sidecar = is_restartable_init(init_spec(text(&c["name"])));
        if sidecar {
            sidecar_restarts += int(&c["restartCount"]);
            last_sidecar_restart = later(last_sidecar_restart, last_finished(c));
        }
        let terminated = c["state"]["terminated"].as_object().map(|_| &c["state"]["terminated"]);
        let waiting = text(&c["state"]["waiting"]["reason"]);
        if terminated.is_some_and(|t| int(&t["exitCode"]) == 0) {
            continue;
        }
        if sidecar && c["started"] == Value::Bool(true) {
            if c["ready"] == Value::Bool(true) {
                ready += 1;
            }
            continue;
        }
        reason = match terminated {
            Some(t) => format!("Init:{}", terminated_reason(t)),
            None if !waiting.is_empty() && waiting != "PodInitializing" => format!("Init:{waiting}"),
            None => format!("Init:{i}/{}", init_specs.len()),
        };
        initializing = true;
        break;
    }

    let initialized = conditions.iter().any(|c| text(&c["type"]) == "Initialized" && text(&c["status"]) == "True");
    if !initializing || initialized {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        for c in items(&status["containerStatuses"]).iter().rev() {
            restarts += int(&c["restartCount"]);
            last_restart = later(last_restart, last_finished(c));
            let state = &c["state"];
            let waiting = text(&state["waiting"]["reason"]);
            if !waiting.is_empty() {
                reason = waiting.to_string();
            } else if state["terminated"].is_object() {
                reason = terminated_reason(&state["terminated"]);
            } else if c["ready"] == Value::Bool(true) && state["running"].is_object() {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            let pod_ready = conditions.iter().any(|c| text(&c["type"]) == "Ready" && text(&c["status"]) == "True");
            reason = if pod_ready { "Running".into() } else { "NotReady".into() };
        }
    }

    if pod["metadata"]["deletionTimestamp"].is_string() {
        if text(&status["reason"]) == "NodeLost" {
            reason = "Unknown".into();
        } else if !matches!(phase, "Succeeded" | "Failed") {
            reason = "Terminating".into();
        }
    }

    let restarts = match last_restart {
        Some(t) if restarts != 0 => format!("{restarts} ({} ago)", age(Some(t), now)),
        _ => restarts.to_string(),
    };
    PodSummary { ready: format!("{ready}/{total}"), status: reason, restarts }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().expect("a timestamp")
    }

    fn two_containers(statuses: Value) -> Value {
        json!({
            "metadata": {"name": "redis-php", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"containers": [{"name": "frontend"}, {"name": "redis"}]},
            "status": {"phase": "Running", "containerStatuses": statuses},
        })
    }

    fn running(name: &str) -> Value {
        json!({"name": name, "ready": true, "restartCount": 0, "state": {"running": {}}})
    }

    #[test]
    fn new_pod_without_status_is_pending() {
        let s = summarize(
            &json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}}),
            at("2024-01-01T00:00:00Z"),
        );
        assert_eq!(s, PodSummary { ready: "0/1".into(), status: "Pending".into(), restarts: "0".into() });
    }

    #[test]
    fn pod_row_shows_ready_containers_status_restarts_and_age() {
        let pod = two_containers(json!([running("frontend"), running("redis")]));
        let cells = cells(&pod, at("2024-01-01T00:05:00Z"));
        assert_eq!(cells[..5], [Cell::from("redis-php"), "2/2".into(), "Running".into(), "0".into(), "5m".into()]);
    }

    #[test]
    fn crash_loop_replaces_the_phase_and_restarts_show_when() {
        let pod = two_containers(json!([
            running("frontend"),
            {"name": "redis", "ready": false, "restartCount": 3,
             "state": {"waiting": {"reason": "CrashLoopBackOff"}},
             "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2024-01-01T00:01:40Z"}}},
        ]));
        let cells = cells(&pod, at("2024-01-01T00:03:40Z"));
        assert_eq!(cells[1..4], [Cell::from("1/2"), "CrashLoopBackOff".into(), "3 (2m ago)".into()]);
    }

    #[test]
    fn terminated_without_reason_shows_the_exit_code_or_signal() {
        let pod = two_containers(json!([{"name": "redis", "ready": false, "restartCount": 0,
                                         "state": {"terminated": {"exitCode": 2}}}]));
        assert_eq!(summarize(&pod, Timestamp::UNIX_EPOCH).status, "ExitCode:2");
        let pod = two_containers(json!([{"name": "redis", "ready": false, "restartCount": 0,
                                         "state": {"terminated": {"exitCode": 137, "signal": 9}}}]));
        assert_eq!(summarize(&pod, Timestamp::UNIX_EPOCH).status, "Signal:9");
    }

    #[test]
    fn finished_containers_show_completed_and_the_row_is_marked_completed() {
        let mut pod = two_containers(json!([
            {"name": "frontend", "ready": false, "restartCount": 0,
             "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
            {"name": "redis", "ready": false, "restartCount": 0,
             "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
        ]));
        pod["status"]["phase"] = json!("Succeeded");
        assert_eq!(summarize(&pod, Timestamp::UNIX_EPOCH).status, "Completed");
        assert_eq!(row_conditions(&pod).expect("completed")[0]["reason"], "Succeeded");
        // One container done, one still running: the pod is Running (or NotReady).
        let mut pod = two_containers(json!([
            running("frontend"),
            {"name": "redis", "ready": false, "restartCount": 0,
             "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
        ]));
        assert_eq!(summarize(&pod, Timestamp::UNIX_EPOCH).status, "NotReady");
        pod["status"]["conditions"] = json!([{"type": "Ready", "status": "True"}]);
        assert_eq!(summarize(&pod, Timestamp::UNIX_EPOCH).status, "Running");
        assert_eq!(row_conditions(&pod), None);
    }

    #[test]
    fn deletion_timestamp_means_terminating_unless_finished() {
        let mut pod = two_containers(json!([running("frontend"), running("redis")]));
        pod["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
        assert_eq!(summarize(&pod, Timestamp::UNIX_EPOCH).status, "Terminating");
        pod["status"]["reason"] = json!("NodeLost");
        assert_eq!(summarize(&pod, Timestamp::UNIX_EPOCH).status, "Unknown");
        pod["status"]["reason"] = Value::Null;
        pod["status"]["phase"] = json!("Succeeded");
        assert_eq!(summarize(&pod, Timestamp::UNIX_EPOCH).status, "Succeeded");
    }

    #[test]
    fn init_containers_report_progress() {
        let pod = json!({
            "metadata": {"name": "p"},
            "spec": {"initContainers": [{"name": "a"}, {"name": "b"}], "containers": [{"name": "c"}]},
            "status": {"phase": "Pending", "initContainerStatuses": [
                {"name": "a", "ready": true, "restartCount": 0,
                 "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                {"name": "b", "ready": false, "restartCount": 0, "state": {"running": {}}},
            ]},
        });
        assert_eq!(summarize(&pod, Timestamp::UNIX_EPOCH).status, "Init:1/2");
        let pod = json!({
            "metadata": {"name": "p"},
            "spec": {"initContainers": [{"name": "a"}], "containers": [{"name": "c"}]},
            "status": {"phase": "Pending", "initContainerStatuses": [
                {"name": "a", "ready": false, "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}}},
            ]},
        });
        let s = summarize(&pod, Timestamp::UNIX_EPOCH);
        assert_eq!((s.status.as_str(), s.restarts.as_str()), ("Init:CrashLoopBackOff", "4"));
    }

    #[test]
    fn sidecars_count_as_containers() {
        let pod = json!({
            "metadata": {"name": "p"},
            "spec": {"initContainers": [{"name": "proxy", "restartPolicy": "Always"}], "containers": [{"name": "c"}]},
            "status": {"phase": "Running",
                "conditions": [{"type": "Initialized", "status": "True"}],
                "initContainerStatuses": [{"name": "proxy", "ready": true, "started": true, "restartCount": 1,
                                           "state": {"running": {}}}],
                "containerStatuses": [{"name": "c", "ready": true, "restartCount": 0, "state": {"running": {}}}]},
        });
        let s = summarize(&pod, Timestamp::UNIX_EPOCH);
        assert_eq!((s.ready.as_str(), s.status.as_str(), s.restarts.as_str()), ("2/2", "Running", "1"));
    }

    #[test]
    fn wide_cells_show_ip_node_and_readiness_gates() {
        let pod = json!({
            "metadata": {"name": "p"},
            "spec": {"nodeName": "n1", "containers": [{"name": "c"}],
                     "readinessGates": [{"conditionType": "example.com/lb"}, {"conditionType": "example.com/dns"}]},
            "status": {"phase": "Running", "podIP": "10.1.0.9", "podIPs": [{"ip": "10.1.0.7"}],
                       "conditions": [{"type": "example.com/lb", "status": "True"}]},
        });
        let cells = cells(&pod, Timestamp::UNIX_EPOCH);
        assert_eq!(cells[4], Cell::from("<unknown>"), "no creation time");
        assert_eq!(cells[5..], [Cell::from("10.1.0.7"), "n1".into(), "<none>".into(), "1/2".into()]);
    }
}
