//! Prometheus metrics on the `prometheus-client` crate: one [`Registry`] per
//! process, on which every daemon registers its own families and whose
//! [`render`](Registry::render) it serves on `/metrics` (the Prometheus text
//! format, [`CONTENT_TYPE`]).
//!
//! Names are given as they are exposed: a counter registered as
//! `scheduler_pods_scheduled_total` is served under that name. Labels are
//! arrays of `(name, value)` pairs ([`Labels`]), so a daemon needs no derive.
//! [`ControllerMetrics`] holds what every controller reports through the
//! worker loop (it is the loop's [`Observer`]): queue depth, reconcile
//! latency and reconciles by result, per controller.

use crate::controller::Observer;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::MetricConstructor;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use prometheus_client::metrics::counter::Counter;
pub use prometheus_client::metrics::family::Family;
pub use prometheus_client::metrics::gauge::Gauge;
pub use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
pub use prometheus_client::registry::Metric;

/// The `Content-Type` of [`Registry::render`]'s text (format 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// A family's labels: `N` (name, value) pairs, e.g. `[("verb", "create".into())]`.
pub type Labels<const N: usize> = [(&'static str, String); N];

/// A label set a family can be keyed by.
pub trait LabelSet: Clone + Hash + Eq + EncodeLabelSet + std::fmt::Debug + Send + Sync + 'static {}

impl<T> LabelSet for T where T: Clone + Hash + Eq + EncodeLabelSet + std::fmt::Debug + Send + Sync + 'static {}

/// Histogram bucket bounds, the constructor of a [`HistogramFamily`]'s histograms.
#[derive(Debug, Clone)]
pub struct Buckets(Arc<[f64]>);

impl MetricConstructor<Histogram> for Buckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(self.0.iter().copied())
    }
}

/// Histograms by label set, all with the same buckets.
pub type HistogramFamily<L> = Family<L, Histogram, Buckets>;

/// A process's metrics; see the module docs. Registering takes `&self`, so
/// it is shared as it is (`Arc<Registry>`).
#[derive(Debug, Default)]
pub struct Registry {
    inner: Mutex<prometheus_client::registry::Registry>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, prometheus_client::registry::Registry> {
        // Registering and encoding leave the registry whole even if they panic.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers `metric` (any `prometheus-client` metric or family) as
    /// `name`, exactly (a counter's name here is without `_total`, which the
    /// encoder adds); `help` is one sentence.
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        self.lock().register(name, help.trim_end_matches('.'), metric);
    }

    /// A counter exposed as `name` (ending in `_total`).
    pub fn counter(&self, name: &str, help: &str) -> Counter {
        let counter = Counter::default();
        self.register(counter_base(name), help, counter.clone());
        counter
    }

    /// Counters exposed as `name` (ending in `_total`), by label set.
    pub fn counter_family<L: LabelSet>(&self, name: &str, help: &str) -> Family<L, Counter> {
        let family = Family::default();
        self.register(counter_base(name), help, family.clone());
        family
    }

    /// A gauge exposed as `name`.
    pub fn gauge(&self, name: &str, help: &str) -> Gauge {
        let gauge = Gauge::default();
        self.register(name, help, gauge.clone());
        gauge
    }

    /// Gauges exposed as `name`, by label set.
    pub fn gauge_family<L: LabelSet>(&self, name: &str, help: &str) -> Family<L, Gauge> {
        let family = Family::default();
        self.register(name, help, family.clone());
        family
    }

    /// A histogram exposed as `name` with upper bounds `buckets` (`+Inf` is implied).
    pub fn histogram(&self, name: &str, help: &str, buckets: impl IntoIterator<Item = f64>) -> Histogram {
        let histogram = Histogram::new(buckets);
        self.register(name, help, histogram.clone());
        histogram
    }

    /// Histograms exposed as `name`, by label set, each with upper bounds `buckets`.
    pub fn histogram_family<L: LabelSet>(
        &self,
        name: &str,
        help: &str,
        buckets: impl IntoIterator<Item = f64>,
    ) -> HistogramFamily<L> {
        let family = Family::new_with_constructor(Buckets(buckets.into_iter().collect()));
        self.register(name, help, family.clone());
        family
    }

    /// Everything registered, in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.lock())
            .expect("writing to a String cannot fail");
        out
    }
}

/// A counter's name as registered: the encoder appends `_total`.
fn counter_base(name: &str) -> &str {
    name.strip_suffix("_total").unwrap_or(name)
}

/// What every controller reports, by controller name: reconciles by result
/// (`rkube_controller_reconcile_total{controller,result}`, result `success`
/// or `error`), reconcile latency
/// (`rkube_controller_reconcile_duration_seconds{controller}`) and queue
/// depth (`rkube_controller_queue_depth{controller}`). Cheap to clone.
#[derive(Debug, Clone)]
pub struct ControllerMetrics {
    reconciles: Family<Labels<2>, Counter>,
    duration: HistogramFamily<Labels<1>>,
    depth: Family<Labels<1>, Gauge>,
}

impl ControllerMetrics {
    /// Registers the families on `registry`.
    pub fn register(registry: &Registry) -> ControllerMetrics {
        ControllerMetrics {
            reconciles: registry.counter_family(
                "rkube_controller_reconcile_total",
                "Reconciles by controller and result (success, error)",
            ),
            // 1 ms to 32 s.
            duration: registry.histogram_family(
                "rkube_controller_reconcile_duration_seconds",
                "Time one reconcile took, by controller",
                exponential_buckets(0.001, 2.0, 16),
            ),
            depth: registry.gauge_family("rkube_controller_queue_depth", "Keys waiting in the controller's work queue"),
        }
    }

    /// Counts one reconcile of `controller` that took `seconds`; `ok` when it
    /// succeeded.
    pub fn reconciled(&self, controller: &str, ok: bool, seconds: f64) {
        let result = if ok { "success" } else { "error" };
        self.reconciles.get_or_create(&[("controller", controller.to_string()), ("result", result.into())]).inc();
        self.duration.get_or_create(&[("controller", controller.to_string())]).observe(seconds);
    }

    /// Sets how many keys wait in `controller`'s queue.
    pub fn set_queue_depth(&self, controller: &str, depth: usize) {
        let depth = i64::try_from(depth).unwrap_or(i64::MAX);
        self.depth.get_or_create(&[("controller", controller.to_string())]).set(depth);
    }
}

impl Observer for ControllerMetrics {
    fn reconciled(&self, controller: &'static str, ok: bool, elapsed: Duration) {
        ControllerMetrics::reconciled(self, controller, ok, elapsed.as_secs_f64());
    }

    fn queue_depth(&self, controller: &'static str, depth: usize) {
        self.set_queue_depth(controller, depth);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_gauges_and_cumulative_histograms_under_their_names() {
        let registry = Registry::new();
        let requests: Family<Labels<2>, Counter> = registry.counter_family("requests_total", "Requests.");
        let up = registry.gauge("up", "Whether it runs.");
        let latency = registry.histogram("latency_seconds", "Latency.", exponential_buckets(0.001, 2.0, 4));
        requests.get_or_create(&[("verb", "create".into()), ("code", "201".into())]).inc_by(2);
        up.set(1);
        latency.observe(0.003);
        latency.observe(0.3);
        let text = registry.render();
        for line in [
            "# HELP requests_total Requests.\n# TYPE requests_total counter\n",
            "requests_total{verb=\"create\",code=\"201\"} 2\n",
            "# TYPE up gauge\nup 1\n",
            "latency_seconds_bucket{le=\"0.002\"} 0\n",
            "latency_seconds_bucket{le=\"0.004\"} 1\n",
            "latency_seconds_bucket{le=\"+Inf\"} 2\n",
            "latency_seconds_count 2\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }

    #[test]
    fn controller_metrics_show_results_latency_and_queue_depth_per_controller() {
        let registry = Registry::new();
        let m = ControllerMetrics::register(&registry);
        m.reconciled("nodeipam", true, 0.002);
        m.reconciled("nodeipam", true, 0.002);
        Observer::reconciled(&m, "nodeipam", false, Duration::from_millis(40));
        m.set_queue_depth("replicaset", 7);
        let text = registry.render();
        for line in [
            "rkube_controller_reconcile_total{controller=\"nodeipam\",result=\"success\"} 2\n",
            "rkube_controller_reconcile_total{controller=\"nodeipam\",result=\"error\"} 1\n",
            "rkube_controller_reconcile_duration_seconds_count{controller=\"nodeipam\"} 3\n",
            "rkube_controller_reconcile_duration_seconds_bucket{controller=\"nodeipam\",le=\"0.002\"} 2\n",
            "rkube_controller_queue_depth{controller=\"replicaset\"} 7\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }
}
