//! What the scheduler remembers about each pod waiting for a node: when it
//! first saw it, how often it tried, whether it is parked as unschedulable,
//! and the FailedScheduling event it last wrote.
//!
//! Retries follow kube-scheduler's queue. A pod that did not fit is parked:
//! it comes back after [`retry_interval`] (1 s doubling to 5 minutes), or
//! sooner when the cluster changes in a way that may make room (a node added
//! or changed, a placed pod deleted), but never before its [`backoff`]
//! (1 s doubling to 10 s) has passed since its last attempt.

use std::time::Duration;
use tokio::time::Instant;

/// The first back-off after a failed attempt.
pub const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// The longest back-off (kube-scheduler's `podMaxBackoffSeconds`).
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// The longest a parked pod waits for a retry when nothing changes
/// (kube-scheduler's `podMaxInUnschedulablePodsDuration`).
pub const MAX_RETRY_INTERVAL: Duration = Duration::from_secs(300);

fn doubling(attempts: u32, cap: Duration) -> Duration {
    if attempts == 0 {
        return Duration::ZERO;
    }
    INITIAL_BACKOFF.checked_mul(1u32 << (attempts - 1).min(16)).map_or(cap, |d| d.min(cap))
}

/// How long after its last attempt a pod that failed `attempts` times may be tried again.
pub fn backoff(attempts: u32) -> Duration {
    doubling(attempts, MAX_BACKOFF)
}

/// When, after its last attempt, a parked pod is tried again even if nothing changed.
pub fn retry_interval(attempts: u32) -> Duration {
    doubling(attempts, MAX_RETRY_INTERVAL)
}

/// A pod waiting for a node.
#[derive(Debug, Clone)]
pub struct PendingPod {
    /// When the scheduler first saw the pod.
    pub first_seen: Instant,
    /// Scheduling attempts so far.
    pub attempts: u32,
    /// When the last attempt started.
    pub last_attempt: Option<Instant>,
    /// The pod's `metadata.generation` when last seen: a change (its spec
    /// was edited, e.g. a scheduling gate removed) calls for a new attempt.
    pub generation: Option<i64>,
    /// Parked after failing, until a cluster change or its retry timer.
    pub unschedulable: bool,
}

impl PendingPod {
    /// A pod first seen now, at `generation`.
    pub fn new(generation: Option<i64>) -> PendingPod {
        PendingPod { first_seen: Instant::now(), attempts: 0, last_attempt: None, generation, unschedulable: false }
    }

    /// How much of its back-off is left at `now` (zero: it may be tried).
    pub fn backoff_remaining(&self, now: Instant) -> Duration {
        match self.last_attempt {
            Some(at) => (at + backoff(self.attempts)).saturating_duration_since(now),
            None => Duration::ZERO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_one_second_to_ten() {
        let secs: Vec<u64> = (0..7).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(secs, [0, 1, 2, 4, 8, 10, 10]);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn retry_interval_doubles_up_to_five_minutes() {
        assert_eq!(retry_interval(1), Duration::from_secs(1));
        assert_eq!(retry_interval(6), Duration::from_secs(32));
        assert_eq!(retry_interval(20), MAX_RETRY_INTERVAL);
    }

    #[test]
    fn backoff_remaining_counts_down_from_the_last_attempt() {
        let mut p = PendingPod::new(Some(1));
        let t0 = Instant::now();
        assert_eq!(p.backoff_remaining(t0), Duration::ZERO);
        p.attempts = 2;
        p.last_attempt = Some(t0);
        assert_eq!(p.backoff_remaining(t0), Duration::from_secs(2));
        assert_eq!(p.backoff_remaining(t0 + Duration::from_millis(1500)), Duration::from_millis(500));
        assert_eq!(p.backoff_remaining(t0 + Duration::from_secs(7)), Duration::ZERO);
    }
}
