//! Rows of the controllers that own pods: replication controllers, replica
//! sets, deployments, daemon sets, jobs and horizontal pod autoscalers.

use super::age::{human_duration, seconds_between};
use super::{
    AGE, CONTAINERS, Cell, Column, IMAGES, NAME, age_of, containers_and_images, format_label_selector, format_labels,
    int, items, name, quantity, selector_string, text, time,
};
use jiff::Timestamp;
use serde_json::Value;

/// The replication controller table's columns.
pub(super) const RC_COLUMNS: &[Column] = &[
    NAME,
    Column::integer("Desired", "Replicas is the number of desired replicas."),
    Column::integer("Current", "Replicas is the most recently observed number of replicas."),
    Column::integer("Ready", "The number of ready replicas for this replication controller."),
    AGE,
    CONTAINERS,
    IMAGES,
    Column::string("Selector", "Selector is a label query over pods that should match the Replicas count.").wide(),
];

/// The replica set table's columns.
pub(super) const RS_COLUMNS: &[Column] = &[
    NAME,
    Column::integer("Desired", "Replicas is the number of desired replicas."),
    Column::integer("Current", "Replicas is the most recently observed number of replicas."),
    Column::integer("Ready", "The number of ready replicas for this replica set."),
    AGE,
    CONTAINERS,
    IMAGES,
    Column::string("Selector", "Selector is a label query over pods that should match the replica count.").wide(),
];

/// The deployment table's columns.
pub(super) const DEPLOYMENT_COLUMNS: &[Column] = &[
    NAME,
    Column::string("Ready", "Number of the pod with ready state"),
    Column::string(
        "Up-to-date",
        "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
    ),
    Column::string(
        "Available",
        "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    Column::string("Selector", "Label selector for pods.").wide(),
];

/// The daemon set table's columns.
pub(super) const DAEMON_SET_COLUMNS: &[Column] = &[
    NAME,
    Column::integer("Desired", "The total number of nodes that should be running the daemon pod."),
    Column::integer(
        "Current",
        "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod.",
    ),
    Column::integer(
        "Ready",
        "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready.",
    ),
    Column::integer("Up-to-date", "The total number of nodes that are running updated daemon pod"),
    Column::integer(
        "Available",
        "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running \
         and available (ready for at least spec.minReadySeconds)",
    ),
    Column::string("Node Selector", "NodeSelector is a selector which must be true for the pod to fit on a node."),
    AGE,
    CONTAINERS,
    IMAGES,
    Column::string("Selector", "A label query over pods that are managed by the daemon set.").wide(),
];

/// The job table's columns.
pub(super) const JOB_COLUMNS: &[Column] = &[
    NAME,
    Column::string("Status", "Status of the job."),
    Column::string("Completions", "The number of pods which reached phase Succeeded."),
    Column::string("Duration", "Time required to complete the job."),
    AGE,
    CONTAINERS,
    IMAGES,
    Column::string("Selector", "A label query over pods that should match the pod count.").wide(),
];

/// The horizontal pod autoscaler table's columns.
pub(super) const HPA_COLUMNS: &[Column] = &[
    NAME,
    Column::string(
        "Reference",
        "scaleTargetRef points to the target resource to scale, and is used to the pods for which metrics should be \
         collected, as well as to actually change the replica count.",
    ),
    Column::string(
        "Targets",
        "metrics contains the specifications for which to use to calculate the desired replica count.",
    ),
    Column::string(
        "MinPods",
        "minReplicas is the lower limit for the number of replicas to which the autoscaler can scale down.",
    ),
    Column::string(
        "MaxPods",
        "maxReplicas is the upper limit for the number of replicas to which the autoscaler can scale up.",
    ),
    Column::string("Replicas", "currentReplicas is current number of replicas of pods managed by this autoscaler."),
    AGE,
];

/// `spec.replicas`, 1 when unset (the default).
fn desired_replicas(spec: &Value) -> i64 {
    spec["replicas"].as_i64().unwrap_or(1)
}

/// The cells of a replication controller.
pub(super) fn replication_controller(rc: &Value, now: Timestamp) -> Vec<Cell> {
    let (spec, status) = (&rc["spec"], &rc["status"]);
    let [containers, images] = containers_and_images(&spec["template"]["spec"]);
    vec![
        name(rc),
        desired_replicas(spec).into(),
        int(&status["replicas"]).into(),
        int(&status["readyReplicas"]).into(),
        age_of(rc, now),
        containers,
        images,
        format_labels(&spec["selector"]).into(),
    ]
}

/// The cells of a replica set.
pub(super) fn replica_set(rs: &Value, now: Timestamp) -> Vec<Cell> {
    let (spec, status) = (&rs["spec"], &rs["status"]);
    let [containers, images] = containers_and_images(&spec["template"]["spec"]);
    vec![
        name(rs),
        desired_replicas(spec).into(),
        int(&status["replicas"]).into(),
        int(&status["readyReplicas"]).into(),
        age_of(rs, now),
        containers,
        images,
        format_label_selector(&spec["selector"]).into(),
    ]
}

/// The cells of a deployment.
pub(super) fn deployment(d: &Value, now: Timestamp) -> Vec<Cell> {
    let (spec, status) = (&d["spec"], &d["status"]);
    let [containers, images] = containers_and_images(&spec["template"]["spec"]);
    vec![
        name(d),
        format!("{}/{}", int(&status["readyReplicas"]), desired_replicas(spec)).into(),
        int(&status["updatedReplicas"]).into(),
        int(&status["availableReplicas"]).into(),
        age_of(d, now),
        containers,
        images,
        selector_string(&spec["selector"]).into(),
    ]
}

/// The cells of a daemon set.
pub(super) fn daemon_set(ds: &Value, now: Timestamp) -> Vec<Cell> {
    let (spec, status) = (&ds["spec"], &ds["status"]);
    let [containers, images] = containers_and_images(&spec["template"]["spec"]);
    vec![
        name(ds),
        int(&status["desiredNumberScheduled"]).into(),
        int(&status["currentNumberScheduled"]).into(),
        int(&status["numberReady"]).into(),
        int(&status["updatedNumberScheduled"]).into(),
        int(&status["numberAvailable"]).into(),
        format_labels(&spec["template"]["spec"]["nodeSelector"]).into(),
        age_of(ds, now),
        containers,
        images,
        format_label_selector(&spec["selector"]).into(),
    ]
}

/// The cells of a job: what it came to, how much of it is done, how long it took.
pub(super) fn job(job: &Value, now: Timestamp) -> Vec<Cell> {
    let (spec, status) = (&job["spec"], &job["status"]);
    let succeeded = int(&status["succeeded"]);
    let completions = match (spec["completions"].as_i64(), int(&spec["parallelism"])) {
        (Some(c), _) => format!("{succeeded}/{c}"),
        (None, p) if p > 1 => format!("{succeeded}/1 of {p}"),
        _ => format!("{succeeded}/1"),
    };
    let duration = match (time(&status["startTime"]), time(&status["completionTime"])) {
        (None, _) => String::new(),
        (Some(start), None) => human_duration(seconds_between(start, now)),
        (Some(start), Some(end)) => human_duration(seconds_between(start, end)),
    };
    // Like `hasJobCondition`: the first condition of the type decides.
    let has = |kind: &str| {
        items(&status["conditions"])
            .iter()
            .find(|c| text(&c["type"]) == kind)
            .is_some_and(|c| text(&c["status"]) == "True")
    };
    let state = if has("Complete") {
        "Complete"
    } else if has("Failed") {
        "Failed"
    } else if job["metadata"]["deletionTimestamp"].is_string() {
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
    let [containers, images] = containers_and_images(&spec["template"]["spec"]);
    vec![
        name(job),
        state.into(),
        completions.into(),
        duration.into(),
        age_of(job, now),
        containers,
        images,
        format_label_selector(&spec["selector"]).into(),
    ]
}

/// The Targets cell: each metric as `current/target`, at most two, then
/// `+ N more...`; the status metric at the same index is the current one
/// (`formatHPAMetrics`).
fn hpa_targets(specs: &[Value], statuses: &[Value]) -> String {
    const MAX: usize = 2;
    if specs.is_empty() {
        return "<none>".into();
    }
    let current = |i: usize, source: &str| statuses.get(i).map(|s| &s[source]).filter(|s| s.is_object());
    let unknown = || "<unknown>".to_string();
    let mut list: Vec<String> = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let entry = match text(&spec["type"]) {
            source @ ("External" | "Object") => {
                let field = if source == "External" { "external" } else { "object" };
                let target = &spec[field]["target"];
                let now = current(i, field).map(|s| &s["current"]);
                if target["averageValue"].is_null() {
                    let cur = now.map_or_else(unknown, |c| quantity(&c["value"]));
                    format!("{cur}/{}", quantity(&target["value"]))
                } else {
                    let cur = now
                        .filter(|c| !c["averageValue"].is_null())
                        .map_or_else(unknown, |c| quantity(&c["averageValue"]));
                    format!("{cur}/{} (avg)", quantity(&target["averageValue"]))
                }
            }
            "Pods" => {
                let cur = current(i, "pods").map_or_else(unknown, |s| quantity(&s["current"]["averageValue"]));
                format!("{cur}/{}", quantity(&spec["pods"]["target"]["averageValue"]))
            }
            source @ ("Resource" | "ContainerResource") => {
                let field = if source == "Resource" { "resource" } else { "containerResource" };
                let resource = &spec[field];
                let target = &resource["target"];
                let now = current(i, field).map(|s| &s["current"]);
                let (cur, goal) = if target["averageValue"].is_null() {
                    let cur =
                        now.and_then(|c| c["averageUtilization"].as_i64()).map_or_else(unknown, |u| format!("{u}%"));
                    (cur, target["averageUtilization"].as_i64().map_or("<auto>".to_string(), |u| format!("{u}%")))
                } else {
                    (now.map_or_else(unknown, |c| quantity(&c["averageValue"])), quantity(&target["averageValue"]))
                };
                format!("{}: {cur}/{goal}", text(&resource["name"]))
            }
            _ => "<unknown type>".into(),
        };
        list.push(entry);
    }
    if list.len() > MAX {
        let more = list.len() - MAX;
        return format!("{} + {more} more...", list[..MAX].join(", "));
    }
    list.join(", ")
}

/// The cells of a horizontal pod autoscaler.
pub(super) fn hpa(hpa: &Value, now: Timestamp) -> Vec<Cell> {
    let (spec, status) = (&hpa["spec"], &hpa["status"]);
    let target = &spec["scaleTargetRef"];
    vec![
        name(hpa),
        format!("{}/{}", text(&target["kind"]), text(&target["name"])).into(),
        hpa_targets(items(&spec["metrics"]), items(&status["currentMetrics"])).into(),
        spec["minReplicas"].as_i64().map_or("<unset>".to_string(), |m| m.to_string()).into(),
        int(&spec["maxReplicas"]).into(),
        int(&status["currentReplicas"]).into(),
        age_of(hpa, now),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(s: &str) -> Timestamp {
        s.parse().expect("a timestamp")
    }

    fn strings(cells: &[Cell]) -> Vec<String> {
        cells.iter().map(Cell::to_string).collect()
    }

    #[test]
    fn rc_cells_are_counts_containers_images_and_selector() {
        let rc = json!({
            "metadata": {"name": "web", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"replicas": 3, "selector": {"app": "web"},
                     "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1"}]}}},
            "status": {"replicas": 2, "readyReplicas": 1},
        });
        let cells = replication_controller(&rc, at("2024-01-01T01:00:00Z"));
        assert_eq!(cells[..5], [Cell::from("web"), 3.into(), 2.into(), 1.into(), "60m".into()]);
        assert_eq!(strings(&cells[5..]), ["nginx", "nginx:1", "app=web"]);
        let bare = replication_controller(&json!({"metadata": {"name": "x"}}), at("2024-01-01T01:00:00Z"));
        assert_eq!(bare[1..4], [Cell::Integer(1), 0.into(), 0.into()], "one replica by default");
        assert_eq!(bare[7], Cell::from("<none>"));
    }

    #[test]
    fn deployment_cells_show_ready_of_desired() {
        let d = json!({
            "metadata": {"name": "web"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"spec": {"containers": [{"name": "web", "image": "v1"}, {"name": "side", "image": "s"}]}}},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2},
        });
        let cells = deployment(&d, Timestamp::UNIX_EPOCH);
        assert_eq!(cells[..4], [Cell::from("web"), "2/3".into(), 3.into(), 2.into()]);
        assert_eq!(strings(&cells[5..]), ["web,side", "v1,s", "app=web"]);
        let everything =
            deployment(&json!({"metadata": {"name": "x"}, "spec": {"selector": {}}}), Timestamp::UNIX_EPOCH);
        assert_eq!(everything[7], Cell::from(""), "an empty selector prints empty");
    }

    #[test]
    fn replica_set_and_daemon_set_cells() {
        let rs = json!({"metadata": {"name": "web-1"}, "spec": {"replicas": 2,
            "selector": {"matchLabels": {"app": "web"}}}, "status": {"replicas": 2, "readyReplicas": 2}});
        assert_eq!(strings(&replica_set(&rs, Timestamp::UNIX_EPOCH))[..4], ["web-1", "2", "2", "2"]);
        let ds = json!({
            "metadata": {"name": "agent"},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                     "template": {"spec": {"nodeSelector": {"disk": "ssd"}, "containers": [{"name": "a", "image": "x"}]}}},
            "status": {"desiredNumberScheduled": 2, "currentNumberScheduled": 2, "numberReady": 1,
                       "updatedNumberScheduled": 2, "numberAvailable": 1, "numberMisscheduled": 0},
        });
        let cells = daemon_set(&ds, Timestamp::UNIX_EPOCH);
        assert_eq!(strings(&cells[..7]), ["agent", "2", "2", "1", "2", "1", "disk=ssd"]);
        assert_eq!(strings(&cells[8..]), ["a", "x", "app=agent"]);
    }

    #[test]
    fn job_status_completions_and_duration() {
        let done = json!({
            "metadata": {"name": "pi"},
            "spec": {"completions": 2, "template": {}},
            "status": {"succeeded": 2, "startTime": "2024-01-01T00:00:00Z", "completionTime": "2024-01-01T00:00:07Z",
                       "conditions": [{"type": "Complete", "status": "True"}]},
        });
        assert_eq!(strings(&job(&done, at("2024-01-02T00:00:00Z"))[..4]), ["pi", "Complete", "2/2", "7s"]);
        let running = json!({
            "metadata": {"name": "work"},
            "spec": {"parallelism": 3, "template": {}},
            "status": {"succeeded": 1, "startTime": "2024-01-01T00:00:00Z"},
        });
        let cells = job(&running, at("2024-01-01T00:03:00Z"));
        assert_eq!(strings(&cells[..4]), ["work", "Running", "1/1 of 3", "3m"]);
        assert_eq!(cells[7], Cell::from("<none>"));
    }

    #[test]
    fn hpa_targets_show_current_and_target_utilization() {
        let hpa_obj = json!({
            "metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"kind": "ReplicationController", "name": "web"}, "minReplicas": 1,
                     "maxReplicas": 5, "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                     "target": {"type": "Utilization", "averageUtilization": 80}}}]},
        });
        assert_eq!(
            strings(&hpa(&hpa_obj, Timestamp::UNIX_EPOCH))[..6],
            ["web", "ReplicationController/web", "cpu: <unknown>/80%", "1", "5", "0"]
        );
        let metric = |n: &str| json!({"type": "Resource", "resource": {"name": n, "target": {"averageValue": "500m"}}});
        let specs =
            [metric("cpu"), metric("memory"), json!({"type": "Pods", "pods": {"target": {"averageValue": "1k"}}})];
        let statuses = [
            json!({"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 12, "averageValue": "250m"}}}),
        ];
        assert_eq!(hpa_targets(&specs, &statuses), "cpu: 250m/500m, memory: <unknown>/500m + 1 more...");
    }
}
