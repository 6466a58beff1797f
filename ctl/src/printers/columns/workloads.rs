//! Rows of the controllers that own pods: replication controllers, replica
//! sets, deployments, daemon sets, jobs and horizontal pod autoscalers.

use super::{format_label_selector, opt};
use crate::printers::age;
use crate::printers::table::format_labels;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PodTemplateSpec, ReplicationController};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

const WIDE_POD_TEMPLATE: [&str; 3] = ["CONTAINERS", "IMAGES", "SELECTOR"];

fn with_wide(base: &[&'static str], wide: bool) -> Vec<&'static str> {
    let mut h = base.to_vec();
    if wide {
        h.extend(WIDE_POD_TEMPLATE);
    }
    h
}

/// The CONTAINERS and IMAGES cells of a pod template.
fn containers_and_images(template: Option<&PodTemplateSpec>) -> [String; 2] {
    let containers = template.and_then(|t| t.spec.as_ref()).map(|s| s.containers.clone()).unwrap_or_default();
    [
        containers.iter().map(|c| c.name.clone()).collect::<Vec<_>>().join(","),
        containers.iter().map(|c| opt(&c.image)).collect::<Vec<_>>().join(","),
    ]
}

/// Headers of replication controllers and replica sets.
pub fn replica_headers(wide: bool) -> Vec<&'static str> {
    with_wide(&["NAME", "DESIRED", "CURRENT", "READY", "AGE"], wide)
}

/// The cells of a replication controller.
pub fn replication_controller(rc: &ReplicationController, wide: bool) -> Vec<String> {
    let spec = rc.spec.clone().unwrap_or_default();
    let status = rc.status.clone().unwrap_or_default();
    let mut cells = vec![
        opt(&rc.metadata.name),
        spec.replicas.unwrap_or(1).to_string(),
        status.replicas.to_string(),
        status.ready_replicas.unwrap_or(0).to_string(),
        age::age(rc.metadata.creation_timestamp.as_ref()),
    ];
    if wide {
        cells.extend(containers_and_images(spec.template.as_ref()));
        cells.push(format_labels(&spec.selector.unwrap_or_default()));
    }
    cells
}

/// The cells of a replica set.
pub fn replica_set(rs: &ReplicaSet, wide: bool) -> Vec<String> {
    let spec = rs.spec.clone().unwrap_or_default();
    let status = rs.status.clone().unwrap_or_default();
    let mut cells = vec![
        opt(&rs.metadata.name),
        spec.replicas.unwrap_or(1).to_string(),
        status.replicas.to_string(),
        status.ready_replicas.unwrap_or(0).to_string(),
        age::age(rs.metadata.creation_timestamp.as_ref()),
    ];
    if wide {
        cells.extend(containers_and_images(spec.template.as_ref()));
        cells.push(format_label_selector(&spec.selector));
    }
    cells
}

/// Headers of deployments.
pub fn deployment_headers(wide: bool) -> Vec<&'static str> {
    with_wide(&["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"], wide)
}

/// The cells of a deployment.
pub fn deployment(d: &Deployment, wide: bool) -> Vec<String> {
    let spec = d.spec.clone().unwrap_or_default();
    let status = d.status.clone().unwrap_or_default();
    let mut cells = vec![
        opt(&d.metadata.name),
        format!("{}/{}", status.ready_replicas.unwrap_or(0), spec.replicas.unwrap_or(1)),
        status.updated_replicas.unwrap_or(0).to_string(),
        status.available_replicas.unwrap_or(0).to_string(),
        age::age(d.metadata.creation_timestamp.as_ref()),
    ];
    if wide {
        cells.extend(containers_and_images(Some(&spec.template)));
        cells.push(selector_string(Some(&spec.selector)));
    }
    cells
}

/// `labels.Selector.String()` of a label selector, as kubectl prints the
/// SELECTOR of deployments and jobs: "" when it selects everything or nothing.
fn selector_string(selector: Option<&LabelSelector>) -> String {
    let text = selector.map(format_label_selector).unwrap_or_default();
    if text == "<none>" { String::new() } else { text }
}

/// Headers of daemon sets.
pub fn daemon_set_headers(wide: bool) -> Vec<&'static str> {
    with_wide(&["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE SELECTOR", "AGE"], wide)
}

/// The cells of a daemon set.
pub fn daemon_set(ds: &DaemonSet, wide: bool) -> Vec<String> {
    let spec = ds.spec.clone().unwrap_or_default();
    let status = ds.status.clone().unwrap_or_default();
    let node_selector = spec.template.spec.as_ref().and_then(|s| s.node_selector.clone()).unwrap_or_default();
    let mut cells = vec![
        opt(&ds.metadata.name),
        status.desired_number_scheduled.to_string(),
        status.current_number_scheduled.to_string(),
        status.number_ready.to_string(),
        status.updated_number_scheduled.unwrap_or(0).to_string(),
        status.number_available.unwrap_or(0).to_string(),
        format_labels(&node_selector),
        age::age(ds.metadata.creation_timestamp.as_ref()),
    ];
    if wide {
        cells.extend(containers_and_images(Some(&spec.template)));
        cells.push(format_label_selector(&spec.selector));
    }
    cells
}

/// Headers of jobs.
pub fn job_headers(wide: bool) -> Vec<&'static str> {
    with_wide(&["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"], wide)
}

/// The cells of a job.
pub fn job(job: &Job, wide: bool) -> Vec<String> {
    let spec = job.spec.clone().unwrap_or_default();
    let status = job.status.clone().unwrap_or_default();
    let succeeded = status.succeeded.unwrap_or(0);
    let completions = match (spec.completions, spec.parallelism) {
        (Some(c), _) => format!("{succeeded}/{c}"),
        (None, Some(p)) if p > 1 => format!("{succeeded}/1 of {p}"),
        _ => format!("{succeeded}/1"),
    };
    let duration = match (&status.start_time, &status.completion_time) {
        (None, _) => String::new(),
        (Some(start), None) => age::age(Some(start)),
        (Some(start), Some(end)) => age::between(start, end),
    };
    let conditions = status.conditions.clone().unwrap_or_default();
    let has = |t: &str| conditions.iter().any(|c| c.type_ == t && c.status == "True");
    let state = if has("Complete") {
        "Complete"
    } else if has("Failed") {
        "Failed"
    } else if job.metadata.deletion_timestamp.is_some() {
        "Terminating"
    } else if has("Suspended") {
        "Suspended"
    } else if has("FailureTarget") {
        "FailureTarget"
    } else if has("SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else {
        "Running"
    };
    let mut cells = vec![
        opt(&job.metadata.name),
        state.to_string(),
        completions,
        duration,
        age::age(job.metadata.creation_timestamp.as_ref()),
    ];
    if wide {
        cells.extend(containers_and_images(Some(&spec.template)));
        cells.push(selector_string(spec.selector.as_ref()));
    }
    cells
}

/// Headers of horizontal pod autoscalers.
pub fn hpa_headers() -> Vec<&'static str> {
    vec!["NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE"]
}

/// The cells of a horizontal pod autoscaler.
pub fn hpa(hpa: &HorizontalPodAutoscaler) -> Vec<String> {
    let spec = hpa.spec.clone().unwrap_or_default();
    let status = hpa.status.clone().unwrap_or_default();
    let current = status.current_metrics.unwrap_or_default();
    let mut targets: Vec<String> = Vec::new();
    for m in spec.metrics.iter().flatten() {
        let Some(res) = &m.resource else {
            targets.push(format!("<unknown>/{}", m.type_));
            continue;
        };
        let now = current.iter().filter_map(|c| c.resource.as_ref()).find(|c| c.name == res.name).map(|c| &c.current);
        let target = match (&res.target.average_utilization, &res.target.average_value) {
            (Some(u), _) => {
                let cur = now.and_then(|c| c.average_utilization).map_or("<unknown>".into(), |u| format!("{u}%"));
                format!("{}: {cur}/{u}%", res.name)
            }
            (None, Some(v)) => {
                let cur = now.and_then(|c| c.average_value.as_ref()).map_or("<unknown>".into(), |v| v.0.clone());
                format!("{}: {cur}/{}", res.name, v.0)
            }
            _ => format!("{}: <unknown>", res.name),
        };
        targets.push(target);
    }
    let targets = match targets.len() {
        0 => "<none>".to_string(),
        1 | 2 => targets.join(", "),
        n => format!("{} + {} more...", targets[..2].join(", "), n - 2),
    };
    vec![
        opt(&hpa.metadata.name),
        format!("{}/{}", spec.scale_target_ref.kind, spec.scale_target_ref.name),
        targets,
        spec.min_replicas.map_or("<unset>".into(), |m| m.to_string()),
        spec.max_replicas.to_string(),
        status.current_replicas.unwrap_or(0).to_string(),
        age::age(hpa.metadata.creation_timestamp.as_ref()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rc_columns_show_desired_current_ready() {
        let rc: ReplicationController = serde_json::from_value(json!({
            "metadata": {"name": "web"},
            "spec": {"replicas": 3, "selector": {"app": "web"},
                     "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1"}]}}},
            "status": {"replicas": 2, "readyReplicas": 1},
        }))
        .expect("rc");
        let cells = replication_controller(&rc, true);
        assert_eq!(cells[..4], ["web", "3", "2", "1"]);
        assert_eq!(cells[5..], ["nginx", "nginx:1", "app=web"]);
    }

    #[test]
    fn job_status_and_completions() {
        let job: Job = serde_json::from_value(json!({
            "metadata": {"name": "pi"},
            "spec": {"completions": 2, "template": {}},
            "status": {"succeeded": 2, "startTime": "2024-01-01T00:00:00Z", "completionTime": "2024-01-01T00:00:07Z",
                       "conditions": [{"type": "Complete", "status": "True"}]},
        }))
        .expect("job");
        assert_eq!(super::job(&job, false)[..4], ["pi", "Complete", "2/2", "7s"]);
    }

    #[test]
    fn hpa_targets_show_cpu_utilization() {
        let hpa: HorizontalPodAutoscaler = serde_json::from_value(json!({
            "metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"kind": "ReplicationController", "name": "web"}, "minReplicas": 1,
                     "maxReplicas": 5, "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                     "target": {"type": "Utilization", "averageUtilization": 80}}}]},
        }))
        .expect("hpa");
        assert_eq!(super::hpa(&hpa)[..6], ["web", "ReplicationController/web", "cpu: <unknown>/80%", "1", "5", "0"]);
    }

    #[test]
    fn deployment_and_daemon_set_columns() {
        let d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "web"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"spec": {"containers": [{"name": "web", "image": "v1"}, {"name": "side", "image": "s"}]}}},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2},
        }))
        .expect("deployment");
        let cells = deployment(&d, true);
        assert_eq!(cells[..4], ["web", "2/3", "3", "2"]);
        assert_eq!(cells[5..], ["web,side", "v1,s", "app=web"]);
        let ds: DaemonSet = serde_json::from_value(json!({
            "metadata": {"name": "agent"},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                     "template": {"spec": {"nodeSelector": {"disk": "ssd"}, "containers": [{"name": "a", "image": "x"}]}}},
            "status": {"desiredNumberScheduled": 2, "currentNumberScheduled": 2, "numberReady": 1,
                       "updatedNumberScheduled": 2, "numberAvailable": 1, "numberMisscheduled": 0},
        }))
        .expect("daemon set");
        assert_eq!(daemon_set(&ds, false)[..7], ["agent", "2", "2", "1", "2", "1", "disk=ssd"]);
        assert_eq!(daemon_set_headers(false)[6], "NODE SELECTOR");
    }

    #[test]
    fn a_running_job_with_parallelism_and_no_completions() {
        let job: Job = serde_json::from_value(json!({
            "metadata": {"name": "work"},
            "spec": {"parallelism": 3, "template": {}},
            "status": {"succeeded": 1},
        }))
        .expect("job");
        let cells = super::job(&job, true);
        assert_eq!(cells[..4], ["work", "Running", "1/1 of 3", ""]);
        assert_eq!(cells[7], "");
    }
}
