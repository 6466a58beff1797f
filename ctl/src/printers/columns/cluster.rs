//! Rows of cluster-level objects: nodes, namespaces, events and leases.

use super::{opt, or_none};
use crate::printers::age;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Namespace, Node};

/// Headers of nodes.
pub fn node_headers(wide: bool) -> Vec<&'static str> {
    let mut h = vec!["NAME", "STATUS", "ROLES", "AGE", "VERSION"];
    if wide {
        h.extend(["INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"]);
    }
    h
}

/// `Ready`, `NotReady`, `Unknown`, plus `,SchedulingDisabled` when cordoned.
pub fn node_status(node: &Node) -> String {
    let conditions = node.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default();
    let mut status: Vec<String> = conditions
        .iter()
        .filter(|c| c.type_ == "Ready")
        .map(|c| if c.status == "True" { "Ready".to_string() } else { "NotReady".to_string() })
        .take(1)
        .collect();
    if status.is_empty() {
        status.push("Unknown".into());
    }
    if node.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false) {
        status.push("SchedulingDisabled".into());
    }
    status.join(",")
}

/// The roles a node's labels give it (`node-role.kubernetes.io/<role>`).
pub fn node_roles(node: &Node) -> Vec<String> {
    let mut roles: Vec<String> = Vec::new();
    for (k, v) in node.metadata.labels.iter().flatten() {
        let role = match k.strip_prefix("node-role.kubernetes.io/") {
            Some(r) => r.to_string(),
            None if k == "kubernetes.io/role" => v.clone(),
            None => continue,
        };
        if !role.is_empty() && !roles.contains(&role) {
            roles.push(role);
        }
    }
    roles.sort();
    roles
}

/// The node's first address of `kind` (`InternalIP`), or `<none>`.
pub fn node_address(node: &Node, kind: &str) -> String {
    node.status
        .as_ref()
        .and_then(|s| s.addresses.as_ref())
        .and_then(|a| a.iter().find(|a| a.type_ == kind))
        .map_or_else(|| "<none>".into(), |a| a.address.clone())
}

/// The cells of a node.
pub fn node(node: &Node, wide: bool) -> Vec<String> {
    let info = node.status.as_ref().and_then(|s| s.node_info.clone()).unwrap_or_default();
    let roles = node_roles(node).join(",");
    let mut cells = vec![
        opt(&node.metadata.name),
        node_status(node),
        or_none(&roles),
        age::age(node.metadata.creation_timestamp.as_ref()),
        info.kubelet_version.clone(),
    ];
    if wide {
        let unknown = |s: &str| if s.is_empty() { "<unknown>".to_string() } else { s.to_string() };
        cells.extend([
            node_address(node, "InternalIP"),
            node_address(node, "ExternalIP"),
            unknown(&info.os_image),
            unknown(&info.kernel_version),
            unknown(&info.container_runtime_version),
        ]);
    }
    cells
}

/// Headers of namespaces.
pub fn namespace_headers() -> Vec<&'static str> {
    vec!["NAME", "STATUS", "AGE"]
}

/// The cells of a namespace.
pub fn namespace(ns: &Namespace) -> Vec<String> {
    let phase = ns.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_else(|| "Active".into());
    vec![opt(&ns.metadata.name), phase, age::age(ns.metadata.creation_timestamp.as_ref())]
}

/// Headers of events.
pub fn event_headers(wide: bool) -> Vec<&'static str> {
    if wide {
        vec!["LAST SEEN", "TYPE", "REASON", "OBJECT", "SUBOBJECT", "SOURCE", "MESSAGE", "FIRST SEEN", "COUNT", "NAME"]
    } else {
        vec!["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    }
}

/// `kubelet, node1`: who reported an event.
pub fn event_source(e: &Event) -> String {
    let source = e.source.clone().unwrap_or_default();
    let component = source.component.filter(|c| !c.is_empty()).or(e.reporting_component.clone()).unwrap_or_default();
    match source.host.filter(|h| !h.is_empty()) {
        Some(host) => format!("{component}, {host}"),
        None => component,
    }
}

/// When an event was first seen, as an age.
pub fn event_first_seen(e: &Event) -> String {
    match &e.first_timestamp {
        Some(t) => age::age(Some(t)),
        None => age::age_micro(e.event_time.as_ref()),
    }
}

/// The time an event was last seen, in seconds since the epoch (for sorting).
pub fn event_last_seen_seconds(e: &Event) -> i64 {
    e.series
        .as_ref()
        .and_then(|s| s.last_observed_time.as_ref().map(|t| t.0.as_second()))
        .or(e.last_timestamp.as_ref().map(|t| t.0.as_second()))
        .or(e.event_time.as_ref().map(|t| t.0.as_second()))
        .or(e.first_timestamp.as_ref().map(|t| t.0.as_second()))
        .unwrap_or(0)
}

/// The cells of an event.
pub fn event(e: &Event, wide: bool) -> Vec<String> {
    let first = event_first_seen(e);
    let mut last = match &e.last_timestamp {
        Some(t) => age::age(Some(t)),
        None => first.clone(),
    };
    let mut count = e.count.unwrap_or(0);
    if let Some(series) = &e.series {
        last = age::age_micro(series.last_observed_time.as_ref());
        count = series.count.unwrap_or(0);
    } else if count == 0 {
        count = 1;
    }
    let obj = &e.involved_object;
    let kind = opt(&obj.kind).to_lowercase();
    let target = match obj.name.as_deref().filter(|n| !n.is_empty()) {
        Some(name) => format!("{kind}/{name}"),
        None => kind,
    };
    let message = opt(&e.message).trim().to_string();
    if wide {
        vec![
            last,
            opt(&e.type_),
            opt(&e.reason),
            target,
            opt(&obj.field_path),
            event_source(e),
            message,
            first,
            count.to_string(),
            opt(&e.metadata.name),
        ]
    } else {
        vec![last, opt(&e.type_), opt(&e.reason), target, message]
    }
}

/// Headers of leases.
pub fn lease_headers() -> Vec<&'static str> {
    vec!["NAME", "HOLDER", "AGE"]
}

/// The cells of a lease.
pub fn lease(l: &Lease) -> Vec<String> {
    let holder = l.spec.as_ref().and_then(|s| s.holder_identity.clone()).unwrap_or_default();
    vec![opt(&l.metadata.name), holder, age::age(l.metadata.creation_timestamp.as_ref())]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn node_status_follows_the_ready_condition() {
        let mut n: Node = serde_json::from_value(json!({
            "metadata": {"name": "n1", "labels": {"node-role.kubernetes.io/control-plane": "", "kubernetes.io/role": "master"}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "Ready", "status": "True"}], "nodeInfo": {"kubeletVersion": "v1.33.0"}},
        }))
        .expect("node");
        assert_eq!(node_status(&n), "Ready,SchedulingDisabled");
        assert_eq!(node_roles(&n), ["control-plane", "master"]);
        n.status = None;
        n.spec = None;
        assert_eq!(node_status(&n), "Unknown");
    }

    #[test]
    fn event_row_names_the_object() {
        let e: Event = serde_json::from_value(json!({
            "metadata": {"name": "web.1"},
            "involvedObject": {"kind": "Pod", "name": "web"},
            "type": "Normal", "reason": "Scheduled", "message": "Successfully assigned default/web to n1 ",
        }))
        .expect("event");
        assert_eq!(
            event(&e, false)[1..],
            ["Normal", "Scheduled", "pod/web", "Successfully assigned default/web to n1"]
        );
    }
}
