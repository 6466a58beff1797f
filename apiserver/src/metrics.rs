//! Request metrics, served on `/metrics` from the process's
//! [`Registry`](rkube_client::metrics::Registry).

use rkube_client::metrics::{Counter, Family, HistogramFamily, Labels, Registry};
use std::time::Duration;

/// Upper bounds of the request latency buckets, in seconds.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

/// Counters and latency histograms of API requests.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// By verb, resource and HTTP-equivalent code.
    requests: Family<Labels<3>, Counter>,
    /// By verb.
    latency: HistogramFamily<Labels<1>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let registry = Registry::new();
        Metrics {
            requests: registry
                .counter_family("apiserver_request_total", "Requests by verb, resource and HTTP-equivalent code"),
            latency: registry.histogram_family(
                "apiserver_request_duration_seconds",
                "Request latency by verb",
                BUCKETS,
            ),
            registry,
        }
    }
}

impl Metrics {
    /// Records one finished request.
    pub fn record(&self, verb: &'static str, resource: &str, code: u16, took: Duration) {
        let labels = [("verb", verb.to_string()), ("resource", resource.to_string()), ("code", code.to_string())];
        self.requests.get_or_create(&labels).inc();
        self.latency.get_or_create(&[("verb", verb.to_string())]).observe(took.as_secs_f64());
    }

    /// The registry, for more families.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        self.registry.render()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        m.record("create", "pods", 201, Duration::from_millis(3));
        m.record("create", "pods", 201, Duration::from_millis(30));
        let text = m.render();
        assert!(text.contains("apiserver_request_total{verb=\"create\",resource=\"pods\",code=\"201\"} 2"), "{text}");
        assert!(text.contains("apiserver_request_duration_seconds_bucket{verb=\"create\",le=\"0.005\"} 1"), "{text}");
        assert!(text.contains("apiserver_request_duration_seconds_count{verb=\"create\"} 2"), "{text}");
    }
}
