//! The scheduler's Prometheus metrics, named after kube-scheduler's where
//! one exists, on a [`Registry`]. Gauges are read from the scheduler's state
//! when `/metrics` is scraped.

use rkube_client::metrics::{Counter, Family, Gauge, Histogram, Labels, Registry, exponential_buckets};

/// How a scheduling attempt ended (the `result` label of `scheduler_schedule_attempts_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptResult {
    /// A node was picked and the binding succeeded.
    Scheduled,
    /// No node fits.
    Unschedulable,
    /// Something else failed (the binding, most often).
    Error,
}

impl AttemptResult {
    const ALL: [AttemptResult; 3] = [AttemptResult::Scheduled, AttemptResult::Unschedulable, AttemptResult::Error];

    fn label(self) -> &'static str {
        match self {
            AttemptResult::Scheduled => "scheduled",
            AttemptResult::Unschedulable => "unschedulable",
            AttemptResult::Error => "error",
        }
    }
}

/// Gauges read from the scheduler's state at scrape time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gauges {
    /// Nodes in the cache.
    pub nodes: usize,
    /// Pods counted on nodes (bound or assumed).
    pub pods: usize,
    /// Pods assumed, their binding in flight.
    pub assumed_pods: usize,
    /// Pending pods queued for an attempt.
    pub active: usize,
    /// Pending pods parked as unschedulable.
    pub unschedulable: usize,
    /// Whether this instance leads (and so schedules).
    pub leader: bool,
    /// Events dropped because the event writer fell behind.
    pub events_dropped: u64,
}

/// The scheduler's metrics on its own [`Registry`].
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// The scheduler name: the `profile` and leader election `name` labels.
    profile: String,
    scheduled: Counter,
    attempts: Family<Labels<2>, Counter>,
    /// From the scheduler first seeing a pod to its binding succeeding, in seconds.
    pub e2e: Histogram,
    /// One run of the filters and scores, in seconds.
    pub algorithm: Histogram,
    /// One binding call, in seconds.
    pub binding: Histogram,
    pending: Family<Labels<1>, Gauge>,
    cache: Family<Labels<1>, Gauge>,
    leader: Family<Labels<1>, Gauge>,
    events_dropped: Counter,
}

impl Metrics {
    /// The metrics of the scheduler named `profile`, registered.
    pub fn new(profile: &str) -> Metrics {
        let registry = Registry::new();
        registry.gauge("rkube_component_implemented", "Whether this component does its work yet").set(1);
        let m = Metrics {
            scheduled: registry.counter("scheduler_pods_scheduled_total", "Pods bound to a node"),
            attempts: registry.counter_family("scheduler_schedule_attempts_total", "Scheduling attempts by result"),
            e2e: registry.histogram(
                "scheduler_pod_scheduling_sli_duration_seconds",
                "E2e latency of a pod: from the scheduler first seeing it to its binding succeeding",
                exponential_buckets(0.001, 2.0, 20),
            ),
            algorithm: registry.histogram(
                "scheduler_scheduling_algorithm_duration_seconds",
                "Time to filter and score the nodes for one pod",
                exponential_buckets(0.000_01, 2.0, 20),
            ),
            binding: registry.histogram(
                "scheduler_binding_duration_seconds",
                "Time of one binding call",
                exponential_buckets(0.000_1, 2.0, 20),
            ),
            pending: registry.gauge_family("scheduler_pending_pods", "Pending pods, by queue"),
            cache: registry.gauge_family("scheduler_cache_size", "Nodes, pods and assumed pods in the scheduler cache"),
            leader: registry.gauge_family("leader_election_master_status", "Whether this instance leads"),
            events_dropped: registry
                .counter("scheduler_events_dropped_total", "Events dropped because the event writer fell behind"),
            profile: profile.to_string(),
            registry,
        };
        // Every result shows, at 0 until it happens.
        for r in AttemptResult::ALL {
            let _ = m.attempts.get_or_create(&m.attempt_labels(r));
        }
        m
    }

    fn attempt_labels(&self, result: AttemptResult) -> Labels<2> {
        [("profile", self.profile.clone()), ("result", result.label().to_string())]
    }

    /// Counts one attempt.
    pub fn attempt(&self, result: AttemptResult) {
        self.attempts.get_or_create(&self.attempt_labels(result)).inc();
        if result == AttemptResult::Scheduled {
            self.scheduled.inc();
        }
    }

    /// Pods bound so far.
    pub fn scheduled(&self) -> u64 {
        self.scheduled.get()
    }

    /// The Prometheus text exposition, with the gauges read from the state as `g`.
    pub fn render(&self, g: &Gauges) -> String {
        let set = |family: &Family<Labels<1>, Gauge>, key: &'static str, value: &str, n: usize| {
            family.get_or_create(&[(key, value.to_string())]).set(i64::try_from(n).unwrap_or(i64::MAX));
        };
        set(&self.pending, "queue", "active", g.active);
        set(&self.pending, "queue", "unschedulable", g.unschedulable);
        set(&self.cache, "type", "nodes", g.nodes);
        set(&self.cache, "type", "pods", g.pods);
        set(&self.cache, "type", "assumed_pods", g.assumed_pods);
        set(&self.leader, "name", &self.profile, usize::from(g.leader));
        // The recorder counts drops itself; the counter catches up.
        self.events_dropped.inc_by(g.events_dropped.saturating_sub(self.events_dropped.get()));
        self.registry.render()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_gauges_and_cumulative_histograms() {
        let m = Metrics::new("default-scheduler");
        m.attempt(AttemptResult::Scheduled);
        m.attempt(AttemptResult::Unschedulable);
        m.attempt(AttemptResult::Scheduled);
        m.e2e.observe(0.003);
        m.e2e.observe(0.3);
        let g = Gauges { nodes: 3, pods: 5, unschedulable: 1, leader: true, events_dropped: 4, ..Default::default() };
        let text = m.render(&g);
        for line in [
            "scheduler_pods_scheduled_total 2",
            "scheduler_schedule_attempts_total{profile=\"default-scheduler\",result=\"scheduled\"} 2",
            "scheduler_schedule_attempts_total{profile=\"default-scheduler\",result=\"unschedulable\"} 1",
            "scheduler_schedule_attempts_total{profile=\"default-scheduler\",result=\"error\"} 0",
            "scheduler_events_dropped_total 4",
            "scheduler_pod_scheduling_sli_duration_seconds_bucket{le=\"0.004\"} 1",
            "scheduler_pod_scheduling_sli_duration_seconds_bucket{le=\"0.512\"} 2",
            "scheduler_pod_scheduling_sli_duration_seconds_count 2",
            "scheduler_cache_size{type=\"nodes\"} 3",
            "scheduler_pending_pods{queue=\"unschedulable\"} 1",
            "leader_election_master_status{name=\"default-scheduler\"} 1",
            "rkube_component_implemented 1",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }
}
