//! The Resource Metrics API (`metrics.k8s.io/v1beta1`): NodeMetrics and
//! PodMetrics, what `kubectl top` and the HorizontalPodAutoscaler read.
//!
//! Nothing here is stored: the apiserver asks each node's kubelet for its
//! stats summary (shaped like the kubelet's `/stats/summary`) and turns it
//! into metrics with [`node_metrics`] and [`pod_metrics`], as metrics-server
//! does for Kubernetes. CPU is the kubelet's `usageNanoCores`, a rate over a
//! short window; a pod one of whose containers has no rate yet (a container
//! that just started) is left out rather than shown as idle.
//!
//! These kinds are deliberately not in [`crate::resource::RESOURCES`]:
//! everything that iterates that table (watches, garbage collection,
//! namespace deletion) is about stored objects. [`METRICS_RESOURCES`] is
//! their own small table.

use crate::quantity::{Format, Quantity};
use serde_json::{Map, Value, json};
use std::time::Duration;

/// The API group.
pub const GROUP: &str = "metrics.k8s.io";
/// The only version served.
pub const VERSION: &str = "v1beta1";
/// `metrics.k8s.io/v1beta1`.
pub const API_VERSION: &str = "metrics.k8s.io/v1beta1";

/// One resource of the metrics API: read-only (`get`, `list`), computed on
/// every request.
#[derive(Debug, PartialEq, Eq)]
pub struct MetricsResource {
    /// `nodes` or `pods`.
    pub plural: &'static str,
    /// `nodemetrics` or `podmetrics` (what errors name).
    pub singular: &'static str,
    /// `NodeMetrics` or `PodMetrics`.
    pub kind: &'static str,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
}

impl MetricsResource {
    /// `NodeMetricsList`.
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// `podmetrics.metrics.k8s.io`: how errors name the resource.
    pub fn qualified(&self) -> String {
        format!("{}.{GROUP}", self.singular)
    }
}

/// `nodes` (NodeMetrics, cluster-scoped).
pub const NODES: MetricsResource =
    MetricsResource { plural: "nodes", singular: "nodemetrics", kind: "NodeMetrics", namespaced: false };
/// `pods` (PodMetrics, namespaced).
pub const PODS: MetricsResource =
    MetricsResource { plural: "pods", singular: "podmetrics", kind: "PodMetrics", namespaced: true };

/// Every resource of `metrics.k8s.io/v1beta1`.
pub const METRICS_RESOURCES: [&MetricsResource; 2] = [&NODES, &PODS];

/// The metrics resource named `plural`, if there is one.
pub fn resource(plural: &str) -> Option<&'static MetricsResource> {
    METRICS_RESOURCES.iter().copied().find(|r| r.plural == plural)
}

/// A CPU rate in billionths of a core, as Kubernetes writes the quantity
/// (`12000000` → `12m`, `1234567` → `1234567n`, `2000000000` → `2`).
pub fn cpu_quantity(nano_cores: u64) -> String {
    // `<n>n` is always a valid quantity.
    crate::quantity::parse(&format!("{nano_cores}n"))
        .map_or_else(|_| format!("{nano_cores}n"), |q| q.to_canonical(Format::DecimalSI))
}

/// A byte count, as Kubernetes writes a binary quantity (`5242880` →
/// `5Mi`, `5243904` → `5121Ki`, `1536` → `1536`, `1000` → `1k`).
pub fn memory_quantity(bytes: u64) -> String {
    Quantity::from_int(i64::try_from(bytes).unwrap_or(i64::MAX)).to_canonical(Format::BinarySI)
}

/// A duration as Go's `time.Duration.String()` writes whole and fractional
/// seconds (`10s`, `1.5s`).
pub fn window_string(window: Duration) -> String {
    if window.subsec_nanos() == 0 {
        format!("{}s", window.as_secs())
    } else {
        let s = format!("{:.9}", window.as_secs_f64());
        format!("{}s", s.trim_end_matches('0').trim_end_matches('.'))
    }
}

/// `{"cpu":…,"memory":…}` of a summary entry, or None when its CPU rate is
/// unknown (missing or not a number).
fn usage(entry: &Value) -> Option<Value> {
    let nano_cores = entry.pointer("/cpu/usageNanoCores")?.as_u64()?;
    let memory = entry.pointer("/memory/workingSetBytes").and_then(Value::as_u64).unwrap_or(0);
    Some(json!({"cpu": cpu_quantity(nano_cores), "memory": memory_quantity(memory)}))
}

/// When an entry was measured (its CPU sample's time), else `now`.
fn timestamp(entry: &Value, now: &str) -> String {
    entry.pointer("/cpu/time").and_then(Value::as_str).unwrap_or(now).to_string()
}

/// The NodeMetrics of a summary's node, or None when the summary names no
/// node or its CPU rate is unknown. `now` (RFC 3339) is the creation time,
/// `window` what the kubelet measured the CPU rate over. Labels are the
/// caller's to add (the summary has none).
pub fn node_metrics(summary: &Value, now: &str, window: Duration) -> Option<Value> {
    let node = summary.get("node")?;
    let name = node.get("nodeName")?.as_str().filter(|n| !n.is_empty())?;
    Some(json!({
        "kind": NODES.kind,
        "apiVersion": API_VERSION,
        "metadata": {"name": name, "creationTimestamp": now},
        "timestamp": timestamp(node, now),
        "window": window_string(window),
        "usage": usage(node)?,
    }))
}

/// The PodMetrics of every pod in a summary whose containers all have a CPU
/// rate, in the summary's order. Pods without containers, or with a
/// container not measured yet, are left out: an absent pod says "no metrics
/// yet", a zero would say "idle".
pub fn pod_metrics(summary: &Value, now: &str, window: Duration) -> Vec<Value> {
    let pods = summary.get("pods").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    pods.iter().filter_map(|pod| one_pod(pod, now, window)).collect()
}

fn one_pod(pod: &Value, now: &str, window: Duration) -> Option<Value> {
    let name = pod.pointer("/podRef/name")?.as_str()?;
    let namespace = pod.pointer("/podRef/namespace")?.as_str()?;
    let containers = pod.get("containers")?.as_array()?;
    if containers.is_empty() {
        return None;
    }
    let containers = containers
        .iter()
        .map(|c| Some(json!({"name": c.get("name")?.as_str()?, "usage": usage(c)?})))
        .collect::<Option<Vec<Value>>>()?;
    let mut metadata = Map::new();
    metadata.insert("name".into(), name.into());
    metadata.insert("namespace".into(), namespace.into());
    metadata.insert("creationTimestamp".into(), now.into());
    Some(json!({
        "kind": PODS.kind,
        "apiVersion": API_VERSION,
        "metadata": metadata,
        "timestamp": timestamp(pod, now),
        "window": window_string(window),
        "containers": containers,
    }))
}

/// The uid of a summary's pod entry named `namespace/name` ("" when the
/// summary has no uid for it), to tell a pod from an earlier one of the
/// same name.
pub fn summary_pod_uid<'a>(summary: &'a Value, namespace: &str, name: &str) -> Option<&'a str> {
    summary.get("pods")?.as_array()?.iter().find_map(|p| {
        let r = p.get("podRef")?;
        (r["namespace"] == namespace && r["name"] == name).then(|| r["uid"].as_str().unwrap_or_default())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: &str = "2026-01-01T00:00:10Z";

    fn summary() -> Value {
        json!({
            "node": {
                "nodeName": "n1",
                "cpu": {"time": "2026-01-01T00:00:09Z", "usageNanoCores": 1_500_000_000u64, "usageCoreNanoSeconds": 9},
                "memory": {"time": "2026-01-01T00:00:09Z", "workingSetBytes": 2u64 << 30},
            },
            "pods": [
                {
                    "podRef": {"name": "web", "namespace": "default", "uid": "u1"},
                    "cpu": {"time": "2026-01-01T00:00:08Z", "usageNanoCores": 13_000_000u64},
                    "memory": {"workingSetBytes": 5u64 << 20},
                    "containers": [
                        {"name": "app", "cpu": {"usageNanoCores": 12_000_000u64}, "memory": {"workingSetBytes": 5u64 << 20}},
                        {"name": "side", "cpu": {"usageNanoCores": 1_234_567u64}, "memory": {"workingSetBytes": 5121u64 << 10}},
                    ],
                },
                {
                    "podRef": {"name": "new", "namespace": "x", "uid": "u2"},
                    "cpu": {"usageCoreNanoSeconds": 5},
                    "memory": {"workingSetBytes": 1000},
                    "containers": [
                        {"name": "app", "cpu": {"usageCoreNanoSeconds": 5}, "memory": {"workingSetBytes": 1000}},
                    ],
                },
                {"podRef": {"name": "empty", "namespace": "x", "uid": "u3"}, "containers": []},
            ],
        })
    }

    #[test]
    fn quantities_are_written_as_kubernetes_writes_them() {
        assert_eq!(cpu_quantity(12_000_000), "12m");
        assert_eq!(cpu_quantity(1_234_567), "1234567n");
        assert_eq!(cpu_quantity(2_000_000_000), "2");
        assert_eq!(cpu_quantity(0), "0");
        assert_eq!(memory_quantity(5 << 20), "5Mi");
        assert_eq!(memory_quantity(5121 << 10), "5121Ki");
        assert_eq!(memory_quantity(1536), "1536");
        assert_eq!(memory_quantity(1000), "1k", "under 1Ki, Kubernetes writes decimal");
        assert_eq!(window_string(Duration::from_secs(10)), "10s");
        assert_eq!(window_string(Duration::from_millis(1500)), "1.5s");
    }

    #[test]
    fn node_metrics_carry_the_node_rate_and_working_set() {
        let m = node_metrics(&summary(), NOW, Duration::from_secs(1)).unwrap();
        assert_eq!(
            m,
            json!({
                "kind": "NodeMetrics",
                "apiVersion": "metrics.k8s.io/v1beta1",
                "metadata": {"name": "n1", "creationTimestamp": NOW},
                "timestamp": "2026-01-01T00:00:09Z",
                "window": "1s",
                "usage": {"cpu": "1500m", "memory": "2Gi"},
            })
        );
        assert!(node_metrics(&json!({"pods": []}), NOW, Duration::from_secs(1)).is_none());
        let unmeasured = json!({"node": {"nodeName": "n1", "cpu": {}, "memory": {"workingSetBytes": 1}}});
        assert!(node_metrics(&unmeasured, NOW, Duration::from_secs(1)).is_none());
    }

    #[test]
    fn pod_metrics_list_each_container_and_leave_out_pods_not_measured_yet() {
        let pods = pod_metrics(&summary(), NOW, Duration::from_secs(1));
        assert_eq!(pods.len(), 1, "{pods:?}");
        assert_eq!(
            pods[0],
            json!({
                "kind": "PodMetrics",
                "apiVersion": "metrics.k8s.io/v1beta1",
                "metadata": {"name": "web", "namespace": "default", "creationTimestamp": NOW},
                "timestamp": "2026-01-01T00:00:08Z",
                "window": "1s",
                "containers": [
                    {"name": "app", "usage": {"cpu": "12m", "memory": "5Mi"}},
                    {"name": "side", "usage": {"cpu": "1234567n", "memory": "5121Ki"}},
                ],
            })
        );
        assert!(pod_metrics(&json!({"node": {}}), NOW, Duration::from_secs(1)).is_empty());
    }

    #[test]
    fn the_table_names_both_resources_and_their_errors() {
        assert_eq!(resource("pods"), Some(&PODS));
        assert_eq!(resource("nodes").map(MetricsResource::list_kind), Some("NodeMetricsList".to_string()));
        assert_eq!(PODS.qualified(), "podmetrics.metrics.k8s.io");
        assert!(resource("deployments").is_none());
        assert_eq!(summary_pod_uid(&summary(), "default", "web"), Some("u1"));
        assert_eq!(summary_pod_uid(&summary(), "default", "nope"), None);
    }
}
