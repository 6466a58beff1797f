//! The scheduler's Prometheus metrics, named after kube-scheduler's where
//! one exists. Counters and histograms are lock-free atomics; gauges are
//! read from the scheduler's state when `/metrics` is scraped.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

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

/// A histogram with fixed buckets.
#[derive(Debug)]
pub struct Histogram {
    bounds: Vec<f64>,
    counts: Vec<AtomicU64>,
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    /// Buckets `start`, `start × factor`, ... (`n` of them), like Prometheus' `ExponentialBuckets`.
    pub fn exponential(start: f64, factor: f64, n: usize) -> Histogram {
        let bounds: Vec<f64> = (0..n).map(|i| start * factor.powi(i as i32)).collect();
        let counts = bounds.iter().map(|_| AtomicU64::new(0)).collect();
        Histogram { bounds, counts, count: AtomicU64::new(0), sum_nanos: AtomicU64::new(0) }
    }

    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = self.bounds.iter().position(|b| secs <= *b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// How many observations were recorded.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            cumulative += count.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let total = self.count();
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}");
        let _ = writeln!(out, "{name}_sum {}", self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9);
        let _ = writeln!(out, "{name}_count {total}");
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

/// The scheduler's counters and histograms.
#[derive(Debug)]
pub struct Metrics {
    scheduled: AtomicU64,
    attempts: [AtomicU64; 3],
    /// From the scheduler first seeing a pod to its binding succeeding.
    pub e2e: Histogram,
    /// One run of the filters and scores.
    pub algorithm: Histogram,
    /// One binding call.
    pub binding: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            scheduled: AtomicU64::new(0),
            attempts: Default::default(),
            e2e: Histogram::exponential(0.001, 2.0, 20),
            algorithm: Histogram::exponential(0.000_01, 2.0, 20),
            binding: Histogram::exponential(0.000_1, 2.0, 20),
        }
    }
}

impl Metrics {
    /// Counts one attempt.
    pub fn attempt(&self, result: AttemptResult) {
        let i = AttemptResult::ALL.iter().position(|r| *r == result).expect("ALL lists every result");
        self.attempts[i].fetch_add(1, Ordering::Relaxed);
        if result == AttemptResult::Scheduled {
            self.scheduled.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Pods bound so far.
    pub fn scheduled(&self) -> u64 {
        self.scheduled.load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition, with `profile` (the scheduler name) as a label.
    pub fn render(&self, profile: &str, g: &Gauges) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP rkube_component_implemented Whether this component does its work yet.\n\
             # TYPE rkube_component_implemented gauge\nrkube_component_implemented 1"
        );
        let _ = writeln!(
            out,
            "# HELP scheduler_pods_scheduled_total Pods bound to a node.\n\
             # TYPE scheduler_pods_scheduled_total counter\nscheduler_pods_scheduled_total {}",
            self.scheduled()
        );
        let _ = writeln!(
            out,
            "# HELP scheduler_schedule_attempts_total Scheduling attempts by result.\n\
             # TYPE scheduler_schedule_attempts_total counter"
        );
        for (r, n) in AttemptResult::ALL.iter().zip(&self.attempts) {
            let _ = writeln!(
                out,
                "scheduler_schedule_attempts_total{{profile=\"{profile}\",result=\"{}\"}} {}",
                r.label(),
                n.load(Ordering::Relaxed)
            );
        }
        self.e2e.render(
            &mut out,
            "scheduler_pod_scheduling_sli_duration_seconds",
            "E2e latency of a pod: from the scheduler first seeing it to its binding succeeding.",
        );
        self.algorithm.render(
            &mut out,
            "scheduler_scheduling_algorithm_duration_seconds",
            "Time to filter and score the nodes for one pod.",
        );
        self.binding.render(&mut out, "scheduler_binding_duration_seconds", "Time of one binding call.");
        let _ = writeln!(
            out,
            "# HELP scheduler_pending_pods Pending pods, by queue.\n# TYPE scheduler_pending_pods gauge\n\
             scheduler_pending_pods{{queue=\"active\"}} {}\nscheduler_pending_pods{{queue=\"unschedulable\"}} {}",
            g.active, g.unschedulable
        );
        let _ = writeln!(
            out,
            "# HELP scheduler_cache_size Nodes, pods and assumed pods in the scheduler cache.\n\
             # TYPE scheduler_cache_size gauge\nscheduler_cache_size{{type=\"nodes\"}} {}\n\
             scheduler_cache_size{{type=\"pods\"}} {}\nscheduler_cache_size{{type=\"assumed_pods\"}} {}",
            g.nodes, g.pods, g.assumed_pods
        );
        let _ = writeln!(
            out,
            "# HELP leader_election_master_status Whether this instance leads.\n\
             # TYPE leader_election_master_status gauge\nleader_election_master_status{{name=\"{profile}\"}} {}",
            u8::from(g.leader)
        );
        let _ = writeln!(
            out,
            "# HELP scheduler_events_dropped_total Events dropped because the event writer fell behind.\n\
             # TYPE scheduler_events_dropped_total counter\nscheduler_events_dropped_total {}",
            g.events_dropped
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_gauges_and_cumulative_histograms() {
        let m = Metrics::default();
        m.attempt(AttemptResult::Scheduled);
        m.attempt(AttemptResult::Unschedulable);
        m.attempt(AttemptResult::Scheduled);
        m.e2e.observe(Duration::from_millis(3));
        m.e2e.observe(Duration::from_millis(300));
        let g = Gauges { nodes: 3, pods: 5, unschedulable: 1, leader: true, ..Default::default() };
        let text = m.render("default-scheduler", &g);
        for line in [
            "scheduler_pods_scheduled_total 2",
            "scheduler_schedule_attempts_total{profile=\"default-scheduler\",result=\"scheduled\"} 2",
            "scheduler_schedule_attempts_total{profile=\"default-scheduler\",result=\"unschedulable\"} 1",
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
