//! Rows of cluster-level objects: nodes, namespaces, events and leases.

use super::{AGE, Cell, Column, NAME, age, age_of, int, items, name, or_none, text, time};
use jiff::Timestamp;
use serde_json::Value;

/// The node table's columns.
pub(super) const NODE_COLUMNS: &[Column] = &[
    NAME,
    Column::string("Status", "The status of the node"),
    Column::string("Roles", "The roles of the node"),
    AGE,
    Column::string("Version", "Kubelet Version reported by the node."),
    Column::string("Internal-IP", "List of addresses reachable to the node.").wide(),
    Column::string("External-IP", "List of addresses reachable to the node.").wide(),
    Column::string(
        "OS-Image",
        "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).",
    )
    .wide(),
    Column::string(
        "Kernel-Version",
        "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).",
    )
    .wide(),
    Column::string(
        "Container-Runtime",
        "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).",
    )
    .wide(),
];

/// The namespace table's columns.
pub(super) const NAMESPACE_COLUMNS: &[Column] = &[NAME, Column::string("Status", "The status of the namespace"), AGE];

/// The event table's columns: the name comes last, and only with `-o wide`.
pub(super) const EVENT_COLUMNS: &[Column] = &[
    Column::string("Last Seen", "The time at which the most recent occurrence of this event was recorded."),
    Column::string("Type", "Type of this event (Normal, Warning), new types could be added in the future"),
    Column::string("Reason", "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
    Column::string("Object", "The object that this event is about."),
    Column::string("Subobject", "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement.").wide(),
    Column::string("Source", "The component reporting this event. Should be a short machine understandable string.").wide(),
    Column::string("Message", "A human-readable description of the status of this operation."),
    Column::string("First Seen", "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)")
        .wide(),
    Column::string("Count", "The number of times this event has occurred.").wide(),
    NAME.wide(),
];

/// The lease table's columns.
pub(super) const LEASE_COLUMNS: &[Column] =
    &[NAME, Column::string("Holder", "holderIdentity contains the identity of the holder of a current lease."), AGE];

/// `Ready`, `NotReady` or `Unknown`, plus `,SchedulingDisabled` when cordoned.
fn node_status(node: &Value) -> String {
    let ready = items(&node["status"]["conditions"]).iter().rev().find(|c| text(&c["type"]) == "Ready");
    let mut status = match ready {
        Some(c) if text(&c["status"]) == "True" => "Ready".to_string(),
        Some(_) => "NotReady".to_string(),
        None => "Unknown".to_string(),
    };
    if node["spec"]["unschedulable"] == Value::Bool(true) {
        status.push_str(",SchedulingDisabled");
    }
    status
}

/// The roles a node's labels give it (`node-role.kubernetes.io/<role>`,
/// `kubernetes.io/role=<role>`), sorted.
pub fn node_roles(node: &Value) -> Vec<String> {
    let mut roles: Vec<String> = Vec::new();
    for (k, v) in node["metadata"]["labels"].as_object().into_iter().flatten() {
        let role = match k.strip_prefix("node-role.kubernetes.io/") {
            Some(r) => r,
            None if k == "kubernetes.io/role" => text(v),
            None => continue,
        };
        if !role.is_empty() && !roles.iter().any(|r| r == role) {
            roles.push(role.to_string());
        }
    }
    roles.sort();
    roles
}

/// The node's first address of `kind` (`InternalIP`), or `<none>`.
fn node_address(node: &Value, kind: &str) -> String {
    items(&node["status"]["addresses"])
        .iter()
        .find(|a| text(&a["type"]) == kind)
        .map_or_else(|| "<none>".into(), |a| text(&a["address"]).to_string())
}

/// The cells of a node.
pub(super) fn node(node: &Value, now: Timestamp) -> Vec<Cell> {
    let info = &node["status"]["nodeInfo"];
    let unknown = |field: &str| match text(&info[field]) {
        "" => "<unknown>".to_string(),
        s => s.to_string(),
    };
    vec![
        name(node),
        node_status(node).into(),
        or_none(&node_roles(node).join(",")).into(),
        age_of(node, now),
        text(&info["kubeletVersion"]).into(),
        node_address(node, "InternalIP").into(),
        node_address(node, "ExternalIP").into(),
        unknown("osImage").into(),
        unknown("kernelVersion").into(),
        unknown("containerRuntimeVersion").into(),
    ]
}

/// The cells of a namespace.
pub(super) fn namespace(ns: &Value, now: Timestamp) -> Vec<Cell> {
    let phase = match text(&ns["status"]["phase"]) {
        "" => "Active",
        phase => phase,
    };
    vec![name(ns), phase.into(), age_of(ns, now)]
}

/// When an event was first seen, as an age at `now` (`firstTimestamp`, else `eventTime`).
pub fn event_first_seen(event: &Value, now: Timestamp) -> String {
    match time(&event["firstTimestamp"]) {
        Some(t) => age(Some(t), now),
        None => age(time(&event["eventTime"]), now),
    }
}

/// When an event was last seen (its series' last observation, else
/// `lastTimestamp`, `eventTime`, `firstTimestamp`), for sorting events.
pub fn event_last_seen(event: &Value) -> Option<Timestamp> {
    time(&event["series"]["lastObservedTime"])
        .or_else(|| time(&event["lastTimestamp"]))
        .or_else(|| time(&event["eventTime"]))
        .or_else(|| time(&event["firstTimestamp"]))
}

/// `kubelet, node1`: who reported an event (`formatEventSource`).
fn event_source(event: &Value) -> String {
    let first = |a: &'static str, b: &'static str| match text(&event["source"][a]) {
        "" => text(&event[b]),
        s => s,
    };
    let (component, instance) = (first("component", "reportingComponent"), first("host", "reportingInstance"));
    if instance.is_empty() { component.to_string() } else { format!("{component}, {instance}") }
}

/// The cells of an event.
pub(super) fn event(event: &Value, now: Timestamp) -> Vec<Cell> {
    let first = event_first_seen(event, now);
    let mut last = match time(&event["lastTimestamp"]) {
        Some(t) => age(Some(t), now),
        None => first.clone(),
    };
    let mut count = int(&event["count"]);
    if event["series"].is_object() {
        last = age(time(&event["series"]["lastObservedTime"]), now);
        count = int(&event["series"]["count"]);
    } else if count == 0 {
        // Singleton events of the events.k8s.io API set no count.
        count = 1;
    }
    let object = &event["involvedObject"];
    let kind = text(&object["kind"]).to_lowercase();
    let target = match text(&object["name"]) {
        "" => kind,
        name => format!("{kind}/{name}"),
    };
    vec![
        last.into(),
        text(&event["type"]).into(),
        text(&event["reason"]).into(),
        target.into(),
        text(&object["fieldPath"]).into(),
        event_source(event).into(),
        text(&event["message"]).trim().into(),
        first.into(),
        count.into(),
        name(event),
    ]
}

/// The cells of a lease.
pub(super) fn lease(lease: &Value, now: Timestamp) -> Vec<Cell> {
    vec![name(lease), text(&lease["spec"]["holderIdentity"]).into(), age_of(lease, now)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn strings(cells: &[Cell]) -> Vec<String> {
        cells.iter().map(Cell::to_string).collect()
    }

    #[test]
    fn node_row_shows_status_roles_version_and_addresses() {
        let n = json!({
            "metadata": {"name": "n1", "creationTimestamp": "2024-01-01T00:00:00Z",
                         "labels": {"node-role.kubernetes.io/control-plane": "", "kubernetes.io/role": "master"}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
                       "addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "10.0.0.5"}],
                       "nodeInfo": {"kubeletVersion": "v1.33.0", "osImage": "Debian GNU/Linux 12 (bookworm)"}},
        });
        let cells = node(&n, "2024-01-03T02:00:00Z".parse().expect("time"));
        assert_eq!(
            strings(&cells),
            [
                "n1",
                "Ready,SchedulingDisabled",
                "control-plane,master",
                "2d2h",
                "v1.33.0",
                "10.0.0.5",
                "<none>",
                "Debian GNU/Linux 12 (bookworm)",
                "<unknown>",
                "<unknown>"
            ]
        );
        let bare = node(&json!({"metadata": {"name": "n2"}}), Timestamp::UNIX_EPOCH);
        assert_eq!(strings(&bare)[1..3], ["Unknown", "<none>"]);
        let not_ready =
            json!({"metadata": {"name": "n3"}, "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}});
        assert_eq!(node(&not_ready, Timestamp::UNIX_EPOCH)[1], Cell::from("NotReady"));
    }

    #[test]
    fn event_row_names_the_object_source_and_count() {
        let e = json!({
            "metadata": {"name": "web.1"},
            "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{web}"},
            "source": {"component": "kubelet", "host": "n1"},
            "firstTimestamp": "2024-01-01T00:00:00Z", "lastTimestamp": "2024-01-01T00:04:00Z", "count": 3,
            "type": "Normal", "reason": "Pulled", "message": "Container image pulled ",
        });
        assert_eq!(
            strings(&event(&e, "2024-01-01T00:05:00Z".parse().expect("time"))),
            [
                "60s",
                "Normal",
                "Pulled",
                "pod/web",
                "spec.containers{web}",
                "kubelet, n1",
                "Container image pulled",
                "5m",
                "3",
                "web.1"
            ]
        );
        let new_api = json!({"metadata": {"name": "x"}, "involvedObject": {"kind": "Node"},
                             "reportingComponent": "scheduler", "eventTime": "2024-01-01T00:00:00.000000Z"});
        let cells = strings(&event(&new_api, "2024-01-01T00:00:09Z".parse().expect("time")));
        assert_eq!(
            (cells[0].as_str(), cells[3].as_str(), cells[5].as_str(), cells[8].as_str()),
            ("9s", "node", "scheduler", "1")
        );
    }

    #[test]
    fn namespace_and_lease_rows() {
        let ns = json!({"metadata": {"name": "prod"}, "status": {"phase": "Terminating"}});
        assert_eq!(strings(&namespace(&ns, Timestamp::UNIX_EPOCH))[..2], ["prod", "Terminating"]);
        let l = json!({"metadata": {"name": "kube-scheduler"}, "spec": {"holderIdentity": "host_1"}});
        assert_eq!(strings(&lease(&l, Timestamp::UNIX_EPOCH))[..2], ["kube-scheduler", "host_1"]);
    }
}
