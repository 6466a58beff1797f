//! `describe node`: identity, conditions, addresses, capacity, system info
//! and the pods running there with their requests and limits.

use super::{Related, Writer, annotations, events, labels, or_none, w};
use crate::printers::age;
use crate::printers::columns::node_roles;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use std::collections::BTreeMap;

/// The description of a node.
pub fn describe(node: &Node, related: &Related) -> String {
    let mut w = Writer::default();
    let meta = &node.metadata;
    let spec = node.spec.clone().unwrap_or_default();
    let status = node.status.clone().unwrap_or_default();
    w!(w, 0, "Name:\t{}\n", meta.name.clone().unwrap_or_default());
    w!(w, 0, "Roles:\t{}\n", or_none(&node_roles(node).join(",")));
    labels(&mut w, "Labels", meta.labels.as_ref());
    annotations(&mut w, "Annotations", meta.annotations.as_ref());
    if let Some(t) = &meta.creation_timestamp {
        w!(w, 0, "CreationTimestamp:\t{}\n", age::rfc1123(t));
    }
    let taints = spec.taints.clone().unwrap_or_default();
    if taints.is_empty() {
        w!(w, 0, "Taints:\t<none>\n");
    }
    for (i, t) in taints.iter().enumerate() {
        let value = t.value.as_deref().filter(|v| !v.is_empty()).map(|v| format!("={v}")).unwrap_or_default();
        let text = format!("{}{value}:{}", t.key, t.effect);
        if i == 0 {
            w!(w, 0, "Taints:\t{text}\n");
        } else {
            w!(w, 0, "\t{text}\n");
        }
    }
    w!(w, 0, "Unschedulable:\t{}\n", spec.unschedulable.unwrap_or(false));
    let conditions = status.conditions.clone().unwrap_or_default();
    if !conditions.is_empty() {
        w!(w, 0, "Conditions:\n  Type\tStatus\tLastHeartbeatTime\tLastTransitionTime\tReason\tMessage\n");
        w!(w, 0, "  ----\t------\t-----------------\t------------------\t------\t-------\n");
        for c in &conditions {
            let time = |t: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>| {
                t.as_ref().map(age::rfc1123).unwrap_or_default()
            };
            w!(
                w,
                1,
                "{} \t{} \t{} \t{} \t{} \t{}\n",
                c.type_,
                c.status,
                time(&c.last_heartbeat_time),
                time(&c.last_transition_time),
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default()
            );
        }
    }
    w!(w, 0, "Addresses:\n");
    for a in status.addresses.iter().flatten() {
        w!(w, 1, "{}:\t{}\n", a.type_, a.address);
    }
    for (title, list) in [("Capacity", &status.capacity), ("Allocatable", &status.allocatable)] {
        if let Some(list) = list.as_ref().filter(|l| !l.is_empty()) {
            w!(w, 0, "{title}:\n");
            for (k, q) in list {
                w!(w, 1, "{k}:\t{}\n", q.0);
            }
        }
    }
    let info = status.node_info.clone().unwrap_or_default();
    w!(w, 0, "System Info:\n");
    for (k, v) in [
        ("Machine ID", &info.machine_id),
        ("System UUID", &info.system_uuid),
        ("Boot ID", &info.boot_id),
        ("Kernel Version", &info.kernel_version),
        ("OS Image", &info.os_image),
        ("Operating System", &info.operating_system),
        ("Architecture", &info.architecture),
        ("Container Runtime Version", &info.container_runtime_version),
        ("Kubelet Version", &info.kubelet_version),
        ("Kube-Proxy Version", &info.kube_proxy_version),
    ] {
        w!(w, 1, "{k}:\t{v}\n");
    }
    if let Some(cidr) = spec.pod_cidr.as_deref().filter(|c| !c.is_empty()) {
        w!(w, 0, "PodCIDR:\t{cidr}\n");
        let cidrs = spec.pod_cidrs.clone().unwrap_or_else(|| vec![cidr.to_string()]);
        w!(w, 0, "PodCIDRs:\t{}\n", cidrs.join(","));
    }
    let allocatable = status.allocatable.clone().unwrap_or_default();
    pods(&mut w, &related.pods, &allocatable);
    events(&mut w, related.events.as_ref());
    w.finish()
}

/// Requests and limits of a pod, summed over its containers, per resource.
fn pod_totals(pod: &Pod) -> (BTreeMap<String, f64>, BTreeMap<String, f64>) {
    let mut requests = BTreeMap::new();
    let mut limits = BTreeMap::new();
    for c in pod.spec.iter().flat_map(|s| s.containers.iter()) {
        let res = c.resources.clone().unwrap_or_default();
        for (into, from) in
            [(&mut requests, res.requests.unwrap_or_default()), (&mut limits, res.limits.unwrap_or_default())]
        {
            for (k, q) in from {
                *into.entry(k).or_insert(0.0) += amount(&q);
            }
        }
    }
    (requests, limits)
}

/// A quantity's value (`500m` → 0.5, `1Gi` → 1073741824); 0 if malformed.
fn amount(q: &Quantity) -> f64 {
    let s = q.0.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+')).unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    let Ok(n) = number.parse::<f64>() else { return 0.0 };
    let factor = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exp => match exp.strip_prefix(['e', 'E']).and_then(|e| e.parse::<i32>().ok()) {
            Some(e) => 10f64.powi(e),
            None => return 0.0,
        },
    };
    n * factor
}

/// CPU as kubectl writes it (`2`, `250m`); memory with the largest exact
/// binary suffix (`128Mi`).
fn format_amount(resource: &str, value: f64) -> String {
    if resource == "cpu" {
        let millis = (value * 1000.0).round() as i64;
        return if millis % 1000 == 0 { (millis / 1000).to_string() } else { format!("{millis}m") };
    }
    let mut v = value.round() as i64;
    if v == 0 {
        return "0".into();
    }
    let mut suffix = "";
    for s in ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"] {
        if v % 1024 != 0 {
            break;
        }
        v /= 1024;
        suffix = s;
    }
    format!("{v}{suffix}")
}

/// `250m (12%)` / `128Mi (3%)`.
fn share(resource: &str, value: f64, allocatable: &BTreeMap<String, Quantity>) -> String {
    let text = format_amount(resource, value);
    let total = allocatable.get(resource).map(amount).unwrap_or(0.0);
    let percent = if total > 0.0 { (value / total * 100.0) as i64 } else { 0 };
    format!("{text} ({percent}%)")
}

fn pods(w: &mut Writer, pods: &[Pod], allocatable: &BTreeMap<String, Quantity>) {
    let running: Vec<&Pod> = pods
        .iter()
        .filter(|p| !matches!(p.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed")))
        .collect();
    w!(w, 0, "Non-terminated Pods:\t({} in total)\n", running.len());
    w!(w, 1, "Namespace\tName\tCPU Requests\tCPU Limits\tMemory Requests\tMemory Limits\tAge\n");
    w!(w, 1, "---------\t----\t------------\t----------\t---------------\t-------------\t---\n");
    let mut sum_req: BTreeMap<String, f64> = BTreeMap::new();
    let mut sum_lim: BTreeMap<String, f64> = BTreeMap::new();
    for p in &running {
        let (req, lim) = pod_totals(p);
        let get = |m: &BTreeMap<String, f64>, k: &str| m.get(k).copied().unwrap_or(0.0);
        w!(
            w,
            1,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
            p.metadata.namespace.clone().unwrap_or_default(),
            p.metadata.name.clone().unwrap_or_default(),
            share("cpu", get(&req, "cpu"), allocatable),
            share("cpu", get(&lim, "cpu"), allocatable),
            share("memory", get(&req, "memory"), allocatable),
            share("memory", get(&lim, "memory"), allocatable),
            age::age(p.metadata.creation_timestamp.as_ref())
        );
        for (k, v) in req {
            *sum_req.entry(k).or_insert(0.0) += v;
        }
        for (k, v) in lim {
            *sum_lim.entry(k).or_insert(0.0) += v;
        }
    }
    w!(w, 0, "Allocated resources:\n  (Total limits may be over 100 percent, i.e., overcommitted.)\n");
    w!(w, 1, "Resource\tRequests\tLimits\n");
    w!(w, 1, "--------\t--------\t------\n");
    for r in ["cpu", "memory"] {
        let req = sum_req.get(r).copied().unwrap_or(0.0);
        let lim = sum_lim.get(r).copied().unwrap_or(0.0);
        w!(w, 1, "{r}\t{}\t{}\n", share(r, req, allocatable), share(r, lim, allocatable));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn amounts_parse_and_format_like_quantities() {
        let q = |s: &str| amount(&Quantity(s.into()));
        assert_eq!(q("500m"), 0.5);
        assert_eq!(q("1Gi"), 1073741824.0);
        assert_eq!(q("2e3"), 2000.0);
        assert_eq!(q("bogus"), 0.0);
        assert_eq!(format_amount("cpu", 0.25), "250m");
        assert_eq!(format_amount("cpu", 2.0), "2");
        assert_eq!(format_amount("memory", 134217728.0), "128Mi");
        assert_eq!(format_amount("memory", 1536.0), "1536");
    }

    #[test]
    fn node_description_shows_capacity_and_pod_requests() {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": "node1", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "status": {
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
                "addresses": [{"type": "InternalIP", "address": "10.0.0.23"}],
                "capacity": {"cpu": "2", "memory": "4Gi"},
                "allocatable": {"cpu": "2", "memory": "4Gi"},
                "nodeInfo": {"kubeletVersion": "v1.33.0", "osImage": "Debian", "containerRuntimeVersion": "docker://27"},
            },
        }))
        .expect("node");
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}}]},
        }))
        .expect("pod");
        let text = describe(&node, &Related { pods: vec![pod], events: Some(vec![]), ..Default::default() });
        assert!(text.contains("Roles:              <none>"), "{text}");
        assert!(text.contains("  InternalIP:  10.0.0.23"), "{text}");
        assert!(text.contains("Non-terminated Pods:"), "{text}");
        assert!(text.contains("500m (25%)"), "{text}");
        assert!(text.contains("1Gi (25%)"), "{text}");
        assert!(text.contains("Kubelet Version:            v1.33.0"), "{text}");
    }
}
