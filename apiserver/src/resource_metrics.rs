//! The Resource Metrics API (`metrics.k8s.io/v1beta1`) behind both
//! front-ends: NodeMetrics and PodMetrics computed on each request from the
//! kubelets' stats summaries, as metrics-server computes them for Kubernetes.
//!
//! [`ResourceMetrics::read`] selects the nodes or pods from the registry
//! (name, namespace, label selector), asks the kubelets of the nodes
//! involved for their summaries in parallel, and converts them with
//! [`rkube_api::metrics`]. A kubelet that does not answer within
//! [`NODE_TIMEOUT`] is skipped (its node and pods have no metrics), so one
//! dead node never holds up the list.

use crate::node_proxy::NodeProxy;
use crate::registry::{ListOptions, Registry};
use rkube_api::metrics::{self, MetricsResource};
use rkube_api::resource::lookup;
use rkube_api::{ApiError, Reason, Result};
use rkube_proto::v1 as pb;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tracing::warn;

/// How long one kubelet may take to answer before its node is skipped.
pub const NODE_TIMEOUT: Duration = Duration::from_secs(5);

/// What rkubelet measures a container's CPU rate over: Docker's stats
/// compare two samples taken about a second apart (`cpu_stats` against
/// `precpu_stats`). A node's rate spans the time since the kubelet's
/// previous summary; it is reported with the same window.
pub const KUBELET_CPU_WINDOW: Duration = Duration::from_secs(1);

/// Which metrics a request asks for.
#[derive(Debug, Clone, Copy)]
pub struct MetricsQuery<'a> {
    /// [`metrics::NODES`] or [`metrics::PODS`].
    pub resource: &'static MetricsResource,
    /// Pods only; "" is all namespaces.
    pub namespace: &'a str,
    /// One object; "" lists.
    pub name: &'a str,
    /// A label selector over the nodes or pods (lists only).
    pub label_selector: &'a str,
}

/// Reads metrics through the nodes' kubelets.
#[derive(Debug)]
pub struct ResourceMetrics {
    registry: Arc<Registry>,
    proxy: Arc<NodeProxy>,
}

impl ResourceMetrics {
    /// Metrics of the nodes and pods in `registry`, fetched through `proxy`.
    pub fn new(registry: Arc<Registry>, proxy: Arc<NodeProxy>) -> Self {
        ResourceMetrics { registry, proxy }
    }

    /// The NodeMetrics or PodMetrics `q` asks for, sorted by namespace and
    /// name. A named object without metrics is NotFound
    /// (`podmetrics.metrics.k8s.io "web" not found`).
    pub async fn read(&self, q: MetricsQuery<'_>) -> Result<Vec<Value>> {
        let not_found = || ApiError::not_found(&q.resource.qualified(), q.name);
        let objects = self.objects(q).await.map_err(|e| match e.reason {
            Reason::NotFound if !q.name.is_empty() => not_found(),
            _ => e,
        })?;
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        let window = KUBELET_CPU_WINDOW;
        let mut out = Vec::new();
        if q.resource.namespaced {
            let nodes: BTreeSet<&str> = objects.iter().filter_map(|p| p.pointer("/spec/nodeName")?.as_str()).collect();
            let pods: HashMap<(&str, &str), &Value> =
                objects.iter().map(|p| ((text(p, "namespace"), text(p, "name")), p)).collect();
            for summary in self.summaries(nodes).await.values() {
                for mut m in metrics::pod_metrics(summary, &now, window) {
                    let (ns, name) = (text(&m, "namespace").to_string(), text(&m, "name").to_string());
                    let Some(pod) = pods.get(&(ns.as_str(), name.as_str())) else { continue };
                    // A summary entry of an earlier pod of the same name is not this pod's.
                    let uid = pod.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or_default();
                    let seen = metrics::summary_pod_uid(summary, &ns, &name).unwrap_or_default();
                    if !uid.is_empty() && !seen.is_empty() && uid != seen {
                        continue;
                    }
                    copy_labels(pod, &mut m);
                    out.push(m);
                }
            }
        } else {
            let nodes: BTreeMap<&str, &Value> = objects.iter().map(|n| (text(n, "name"), n)).collect();
            for (name, summary) in self.summaries(nodes.keys().copied().collect()).await {
                if let Some(mut m) = metrics::node_metrics(&summary, &now, window) {
                    if text(&m, "name") != name {
                        continue;
                    }
                    copy_labels(nodes[name.as_str()], &mut m);
                    out.push(m);
                }
            }
        }
        out.sort_by(|a, b| (text(a, "namespace"), text(a, "name")).cmp(&(text(b, "namespace"), text(b, "name"))));
        if !q.name.is_empty() && out.is_empty() {
            return Err(not_found());
        }
        Ok(out)
    }

    /// The nodes or pods `q` selects, as JSON.
    async fn objects(&self, q: MetricsQuery<'_>) -> Result<Vec<Value>> {
        let info = lookup(if q.resource.namespaced { "pods" } else { "nodes" })?;
        let namespace = if q.resource.namespaced { q.namespace } else { "" };
        let stored = if q.name.is_empty() {
            let opts = ListOptions { label_selector: q.label_selector.to_string(), ..Default::default() };
            self.registry.list(info, namespace, &opts).await?.items
        } else {
            if q.resource.namespaced && namespace.is_empty() {
                return Err(ApiError::bad_request("a pod's metrics are read by namespace and name"));
            }
            vec![self.registry.get(info, namespace, q.name).await?]
        };
        stored
            .iter()
            .map(|o| serde_json::from_slice(&o.json).map_err(|e| ApiError::internal(format!("{}: {e}", o.name))))
            .collect()
    }

    /// The stats summary of each node that answered in time.
    async fn summaries(&self, nodes: BTreeSet<&str>) -> BTreeMap<String, Value> {
        let calls = nodes.into_iter().map(|node| async move {
            let fetch = async {
                let mut kubelet = self.proxy.kubelet(node).await?;
                let resp = kubelet.stats(pb::StatsRequest {}).await.map_err(crate::node_proxy::kubelet_error)?;
                serde_json::from_slice::<Value>(&resp.into_inner().json)
                    .map_err(|e| ApiError::internal(format!("the kubelet's stats are not JSON: {e}")))
            };
            match tokio::time::timeout(NODE_TIMEOUT, fetch).await {
                Ok(Ok(summary)) => Some((node.to_string(), summary)),
                Ok(Err(e)) => {
                    warn!(node, error = %e.message, "no metrics from the node's kubelet");
                    None
                }
                Err(_) => {
                    warn!(node, timeout = ?NODE_TIMEOUT, "no metrics: the node's kubelet did not answer in time");
                    None
                }
            }
        });
        futures::future::join_all(calls).await.into_iter().flatten().collect()
    }
}

/// `metadata.<field>` of an object ("" when absent).
fn text<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj.get("metadata").and_then(|m| m.get(field)).and_then(Value::as_str).unwrap_or_default()
}

/// Gives metrics the labels of the node or pod they measure.
fn copy_labels(from: &Value, to: &mut Value) {
    if let Some(labels) = from.pointer("/metadata/labels").filter(|l| l.as_object().is_some_and(|m| !m.is_empty())) {
        to["metadata"]["labels"] = labels.clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn metrics_take_the_labels_of_what_they_measure() {
        let mut m = json!({"metadata": {"name": "web"}});
        copy_labels(&json!({"metadata": {"labels": {}}}), &mut m);
        assert!(m["metadata"].get("labels").is_none());
        copy_labels(&json!({"metadata": {"labels": {"app": "web"}}}), &mut m);
        assert_eq!(m["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(text(&m, "name"), "web");
        assert_eq!(text(&m, "namespace"), "");
    }
}
