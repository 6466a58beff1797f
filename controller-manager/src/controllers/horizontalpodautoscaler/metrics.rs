//! Where the autoscaler reads pods' usage: the Resource Metrics API
//! (`metrics.k8s.io/v1beta1` PodMetrics) behind [`MetricsSource`], so unit
//! tests can hand it samples; and how a PodMetrics becomes one
//! [`PodMetric`] per pod (Kubernetes' `resourceMetricsClient`).

use super::replicas::{PodMetric, PodMetrics};
use futures::future::BoxFuture;
use k8s_openapi::jiff::Timestamp;
use rkube_client::Client;
use serde_json::Value;
use std::time::Duration;

/// A source of PodMetrics.
pub trait MetricsSource: Send + Sync + 'static {
    /// The PodMetrics JSON of the pods of `namespace` that `selector`
    /// (a label selector string) matches; an error says why there are none.
    fn pod_metrics<'a>(&'a self, namespace: &'a str, selector: &'a str) -> BoxFuture<'a, Result<Vec<Value>, String>>;
}

impl MetricsSource for Client {
    fn pod_metrics<'a>(&'a self, namespace: &'a str, selector: &'a str) -> BoxFuture<'a, Result<Vec<Value>, String>> {
        Box::pin(async move { Client::pod_metrics(self, namespace, selector).await.map_err(|e| e.to_string()) })
    }
}

/// The window assumed when a PodMetrics names none (metrics-server's).
const DEFAULT_WINDOW: Duration = Duration::from_secs(30);

/// Each pod's usage of `resource` (`cpu` or `memory`), in thousandths: the
/// sum over its containers. A pod one of whose containers reports no usage
/// of the resource is left out, as Kubernetes does.
pub fn resource_metrics(items: &[Value], resource: &str) -> Result<PodMetrics, String> {
    if items.is_empty() {
        return Err("no metrics returned from resource metrics API".into());
    }
    let mut metrics = PodMetrics::new();
    'pods: for item in items {
        let Some(name) = item["metadata"]["name"].as_str() else { continue };
        let mut total = 0i64;
        for container in item["containers"].as_array().into_iter().flatten() {
            let Some(usage) = container["usage"][resource].as_str() else { continue 'pods };
            let Ok(q) = rkube_api::quantity::parse(usage) else { continue 'pods };
            total = total.saturating_add(i64::try_from(q.millis()).unwrap_or(i64::MAX));
        }
        let timestamp =
            item["timestamp"].as_str().and_then(|t| t.parse::<Timestamp>().ok()).unwrap_or_else(Timestamp::now);
        let window = item["window"]
            .as_str()
            .and_then(|w| rkube_client::leader::parse_duration(w).ok())
            .unwrap_or(DEFAULT_WINDOW);
        metrics.insert(name.to_string(), PodMetric { value: total, timestamp, window });
    }
    Ok(metrics)
}

#[cfg(test)]
pub mod fake {
    //! A [`MetricsSource`] answering from a list set by the test.

    use super::*;
    use std::sync::Mutex;

    /// PodMetrics by namespace, or an error for every request.
    #[derive(Debug)]
    pub struct FakeMetrics {
        /// What every request answers.
        pub answer: Mutex<Result<Vec<Value>, String>>,
    }

    impl MetricsSource for FakeMetrics {
        fn pod_metrics<'a>(&'a self, namespace: &'a str, _: &'a str) -> BoxFuture<'a, Result<Vec<Value>, String>> {
            let answer = self.answer.lock().unwrap().clone().map(|items| {
                items.into_iter().filter(|m| m["metadata"]["namespace"].as_str() == Some(namespace)).collect()
            });
            Box::pin(async move { answer })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pod_metrics_sum_containers_and_skip_incomplete_pods() {
        let items = [
            json!({"metadata": {"name": "a"}, "timestamp": "2026-01-01T00:00:00Z", "window": "10.5s",
                   "containers": [{"name": "x", "usage": {"cpu": "250m", "memory": "5Mi"}},
                                  {"name": "y", "usage": {"cpu": "123456n", "memory": "1Mi"}}]}),
            json!({"metadata": {"name": "b"}, "containers": [{"name": "x", "usage": {"memory": "1Mi"}}]}),
        ];
        let cpu = resource_metrics(&items, "cpu").unwrap();
        assert_eq!(cpu.keys().collect::<Vec<_>>(), ["a"]);
        assert_eq!(cpu["a"].value, 250 + 1, "123456n rounds up to 1m");
        assert_eq!(cpu["a"].window, Duration::from_millis(10_500));
        let memory = resource_metrics(&items, "memory").unwrap();
        assert_eq!(memory["b"].value, 1024 * 1024 * 1000);
        assert_eq!(resource_metrics(&[], "cpu").unwrap_err(), "no metrics returned from resource metrics API");
    }
}
