//! The controller manager's Prometheus metrics, served on `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// Counters and gauges of the running controllers; shared by all of them.
#[derive(Debug, Default)]
pub struct Metrics {
    leading: AtomicBool,
    /// (controller, success) -> reconciles.
    reconciles: Mutex<BTreeMap<(&'static str, bool), u64>>,
    /// (name, help) -> value, set by controllers.
    gauges: Mutex<BTreeMap<(&'static str, &'static str), f64>>,
}

impl Metrics {
    /// Records whether this instance leads (runs the controllers).
    pub fn set_leading(&self, leading: bool) {
        self.leading.store(leading, Ordering::Relaxed);
    }

    /// Counts one reconcile of `controller`.
    pub fn reconciled(&self, controller: &'static str, success: bool) {
        *self.reconciles.lock().unwrap_or_else(|p| p.into_inner()).entry((controller, success)).or_default() += 1;
    }

    /// Sets the gauge `name` (described by `help`).
    pub fn set_gauge(&self, name: &'static str, help: &'static str, value: f64) {
        self.gauges.lock().unwrap_or_else(|p| p.into_inner()).insert((name, help), value);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP rkube_component_implemented Whether this component does its work yet.\n");
        out.push_str("# TYPE rkube_component_implemented gauge\nrkube_component_implemented 1\n");
        out.push_str(
            "# HELP rkube_leader_election_master_status Whether this instance leads and runs the controllers.\n",
        );
        out.push_str("# TYPE rkube_leader_election_master_status gauge\n");
        let _ = writeln!(
            out,
            "rkube_leader_election_master_status{{name=\"rkube-controller-manager\"}} {}",
            u8::from(self.leading.load(Ordering::Relaxed))
        );
        out.push_str("# HELP rkube_controller_reconcile_total Reconciles by controller and result.\n");
        out.push_str("# TYPE rkube_controller_reconcile_total counter\n");
        for ((controller, ok), n) in self.reconciles.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let result = if *ok { "success" } else { "error" };
            let _ = writeln!(
                out,
                "rkube_controller_reconcile_total{{controller=\"{controller}\",result=\"{result}\"}} {n}"
            );
        }
        for ((name, help), value) in self.gauges.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_gauges_in_prometheus_text() {
        let m = Metrics::default();
        m.set_leading(true);
        m.reconciled("nodeipam", true);
        m.reconciled("nodeipam", true);
        m.reconciled("nodeipam", false);
        m.set_gauge("rkube_nodeipam_cidrs_used", "Node subnets in use.", 3.0);
        let text = m.render();
        assert!(text.contains("rkube_component_implemented 1\n"), "{text}");
        assert!(text.contains("rkube_leader_election_master_status{name=\"rkube-controller-manager\"} 1\n"), "{text}");
        assert!(text.contains("rkube_controller_reconcile_total{controller=\"nodeipam\",result=\"success\"} 2\n"));
        assert!(text.contains("rkube_controller_reconcile_total{controller=\"nodeipam\",result=\"error\"} 1\n"));
        assert!(text.contains("# TYPE rkube_nodeipam_cidrs_used gauge\nrkube_nodeipam_cidrs_used 3\n"), "{text}");
    }
}
