//! The controller manager's Prometheus metrics, served on `/metrics`: whether
//! this instance leads, every controller's [`ControllerMetrics`] (reconciles
//! by result, reconcile latency, queue depth; fed by the worker loop, whose
//! [`Observer`] this is), and gauges a controller sets itself.

use rkube_client::controller::Observer;
use rkube_client::metrics::{ControllerMetrics, Family, Gauge, Labels, Registry};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// The metrics of the running controllers; shared by all of them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    leading: Gauge,
    controllers: ControllerMetrics,
    /// Gauges set by controllers, registered on first use.
    gauges: Mutex<HashMap<&'static str, Gauge>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let registry = Registry::new();
        registry.gauge("rkube_component_implemented", "Whether this component does its work yet").set(1);
        let leader: Family<Labels<1>, Gauge> = registry.gauge_family(
            "rkube_leader_election_master_status",
            "Whether this instance leads and runs the controllers",
        );
        Metrics {
            leading: leader.get_or_create(&[("name", "rkube-controller-manager".into())]).clone(),
            controllers: ControllerMetrics::register(&registry),
            gauges: Mutex::new(HashMap::new()),
            registry,
        }
    }
}

impl Metrics {
    /// Records whether this instance leads (runs the controllers).
    pub fn set_leading(&self, leading: bool) {
        self.leading.set(i64::from(leading));
    }

    /// The per-controller families.
    pub fn controllers(&self) -> &ControllerMetrics {
        &self.controllers
    }

    /// Sets the gauge `name` (described by `help`); it shows on `/metrics`
    /// from its first value on.
    pub fn set_gauge(&self, name: &'static str, help: &'static str, value: i64) {
        let mut gauges = self.gauges.lock().unwrap_or_else(|p| p.into_inner());
        gauges.entry(name).or_insert_with(|| self.registry.gauge(name, help)).set(value);
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

impl Observer for Metrics {
    fn reconciled(&self, controller: &'static str, ok: bool, elapsed: Duration) {
        self.controllers.reconciled(controller, ok, elapsed.as_secs_f64());
    }

    fn queue_depth(&self, controller: &'static str, depth: usize) {
        self.controllers.set_queue_depth(controller, depth);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_leadership_reconciles_and_controller_gauges() {
        let m = Metrics::default();
        m.set_leading(true);
        m.reconciled("nodeipam", true, Duration::from_millis(2));
        m.reconciled("nodeipam", true, Duration::from_millis(3));
        m.reconciled("nodeipam", false, Duration::from_millis(4));
        m.queue_depth("nodeipam", 2);
        let text = m.render();
        assert!(!text.contains("rkube_nodeipam_cidrs_used"), "a gauge shows from its first value: {text}");
        m.set_gauge("rkube_nodeipam_cidrs_used", "Node subnets in use.", 2);
        m.set_gauge("rkube_nodeipam_cidrs_used", "Node subnets in use.", 3);
        let text = m.render();
        assert!(text.contains("rkube_component_implemented 1\n"), "{text}");
        assert!(text.contains("rkube_leader_election_master_status{name=\"rkube-controller-manager\"} 1\n"), "{text}");
        assert!(text.contains("rkube_controller_reconcile_total{controller=\"nodeipam\",result=\"success\"} 2\n"));
        assert!(text.contains("rkube_controller_reconcile_total{controller=\"nodeipam\",result=\"error\"} 1\n"));
        assert!(text.contains("rkube_controller_reconcile_duration_seconds_count{controller=\"nodeipam\"} 3\n"));
        assert!(text.contains("rkube_controller_queue_depth{controller=\"nodeipam\"} 2\n"), "{text}");
        assert!(text.contains("# TYPE rkube_nodeipam_cidrs_used gauge\nrkube_nodeipam_cidrs_used 3\n"), "{text}");
    }
}
