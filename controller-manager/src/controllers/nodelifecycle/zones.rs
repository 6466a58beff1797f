//! How fast nodes are tainted for eviction, zone by zone (Kubernetes'
//! `zoneNoExecuteTainter` and zone states).
//!
//! Each zone has a [`Tainter`]: a queue of the nodes waiting for their
//! `NoExecute` taint and a [`TokenBucket`] (burst 1) that lets them through
//! at the zone's rate. The rate follows the zone's [`ZoneState`]:
//! `--node-eviction-rate` while it is mostly healthy; when at least
//! `--unhealthy-zone-threshold` of its nodes (and more than 2) are not
//! Ready, `--secondary-node-eviction-rate` in zones larger than
//! `--large-cluster-size-threshold`, and nothing in smaller ones. When
//! every zone has lost all its nodes the controller assumes the trouble is
//! its own (or the network's) and stops evicting altogether.

use std::collections::{HashSet, VecDeque};
use std::time::Instant;

/// A token bucket: `qps` tokens a second, at most `burst` saved up.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    qps: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(qps: f64, burst: u32, now: Instant) -> TokenBucket {
        let burst = f64::from(burst.max(1));
        TokenBucket { qps, burst, tokens: burst, last: now }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.qps.max(0.0)).min(self.burst);
        self.last = now;
    }

    /// Takes a token if there is one.
    pub fn try_accept(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.qps <= 0.0 || self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }

    /// The rate now.
    pub fn qps(&self) -> f64 {
        self.qps
    }

    /// Changes the rate (0 lets nothing through); tokens saved so far stay.
    pub fn set_qps(&mut self, qps: f64, now: Instant) {
        self.refill(now);
        self.qps = qps;
    }
}

/// The nodes of one zone waiting for their `NoExecute` taint, let through
/// by a token bucket. A node stays known after it was let through, so the
/// next pass does not queue it again, until [`Tainter::remove`] forgets it
/// (the node is healthy again, or lost its taint).
#[derive(Debug, Clone)]
pub struct Tainter {
    queue: VecDeque<String>,
    known: HashSet<String>,
    /// The zone's rate.
    pub bucket: TokenBucket,
}

impl Tainter {
    /// An empty queue with rate `qps`.
    pub fn new(qps: f64, now: Instant) -> Tainter {
        Tainter { queue: VecDeque::new(), known: HashSet::new(), bucket: TokenBucket::new(qps, 1, now) }
    }

    /// Queues `node` unless it is known already; whether it was queued.
    pub fn add(&mut self, node: &str) -> bool {
        if !self.known.insert(node.to_string()) {
            return false;
        }
        self.queue.push_back(node.to_string());
        true
    }

    /// Forgets `node`: it leaves the queue and may be added again.
    pub fn remove(&mut self, node: &str) {
        self.known.remove(node);
        self.queue.retain(|n| n != node);
    }

    /// Forgets the nodes `keep` refuses (deleted nodes).
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.known.retain(|n| keep(n));
        self.queue.retain(|n| keep(n));
    }

    /// Puts `node` back at the end of the queue (its taint write failed).
    pub fn retry(&mut self, node: &str) {
        self.known.insert(node.to_string());
        if !self.queue.iter().any(|n| n == node) {
            self.queue.push_back(node.to_string());
        }
    }

    /// The nodes the bucket lets through now, in queue order.
    pub fn take(&mut self, now: Instant) -> Vec<String> {
        let mut out = Vec::new();
        while !self.queue.is_empty() && self.bucket.try_accept(now) {
            out.extend(self.queue.pop_front());
        }
        out
    }

    /// How many nodes wait.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether no node waits.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

/// A zone's health, by how many of its nodes are not Ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZoneState {
    /// Not yet looked at.
    Initial,
    /// Mostly Ready.
    Normal,
    /// More than 2 nodes, and at least the threshold's share, not Ready.
    PartialDisruption,
    /// No node Ready.
    FullDisruption,
}

/// The state of a zone whose nodes' Ready statuses are `ready` (None: no
/// Ready condition), and how many are not Ready (Kubernetes'
/// `ComputeZoneState`).
pub fn zone_state(ready: &[Option<String>], unhealthy_threshold: f32) -> (usize, ZoneState) {
    let healthy = ready.iter().filter(|s| s.as_deref() == Some("True")).count();
    let unhealthy = ready.len() - healthy;
    let state = if healthy == 0 && unhealthy > 0 {
        ZoneState::FullDisruption
    } else if unhealthy > 2 && unhealthy as f32 / ready.len() as f32 >= unhealthy_threshold {
        ZoneState::PartialDisruption
    } else {
        ZoneState::Normal
    };
    (unhealthy, state)
}

/// The eviction rates, from the flags.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    /// `--node-eviction-rate`.
    pub healthy: f32,
    /// `--secondary-node-eviction-rate`.
    pub secondary: f32,
    /// `--large-cluster-size-threshold`.
    pub large_cluster: usize,
}

impl Rates {
    /// The tainting rate of a zone of `size` nodes in `state` (Kubernetes'
    /// `setLimiterInZone`): a full disruption of one zone is evicted at the
    /// normal rate (the other zones are fine, so it is the zone's fault).
    pub fn for_zone(&self, state: ZoneState, size: usize) -> f64 {
        match state {
            ZoneState::Initial | ZoneState::Normal | ZoneState::FullDisruption => f64::from(self.healthy),
            ZoneState::PartialDisruption if size > self.large_cluster => f64::from(self.secondary),
            ZoneState::PartialDisruption => 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn statuses(list: &[&str]) -> Vec<Option<String>> {
        list.iter().map(|s| (!s.is_empty()).then(|| s.to_string())).collect()
    }

    #[test]
    fn the_bucket_lets_one_through_then_one_per_period() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(0.1, 1, t0);
        assert!(b.try_accept(t0), "starts full");
        assert!(!b.try_accept(t0));
        assert!(!b.try_accept(t0 + Duration::from_secs(9)));
        assert!(b.try_accept(t0 + Duration::from_secs(10)), "0.1/s: one every 10 s");
        let later = t0 + Duration::from_secs(100);
        assert!(b.try_accept(later));
        assert!(!b.try_accept(later), "burst 1: idle time saves one token only");
        b.set_qps(0.0, t0 + Duration::from_secs(200));
        assert!(!b.try_accept(t0 + Duration::from_secs(1000)), "rate 0 stops everything");
    }

    #[test]
    fn the_tainter_queues_each_node_once_until_removed() {
        let t0 = Instant::now();
        let mut t = Tainter::new(1.0, t0);
        assert!(t.add("a") && t.add("b") && t.add("c"));
        assert!(!t.add("a"), "queued already");
        assert_eq!(t.take(t0), ["a"]);
        assert!(!t.add("a"), "let through, still known");
        assert_eq!(t.take(t0 + Duration::from_millis(500)), Vec::<String>::new());
        assert_eq!(t.take(t0 + Duration::from_secs(1)), ["b"]);
        t.remove("c");
        assert!(t.is_empty());
        t.remove("a");
        assert!(t.add("a"), "forgotten, queued again");
        t.retry("a");
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn zone_states_follow_kubernetes() {
        assert_eq!(zone_state(&statuses(&["True", "False"]), 0.55), (1, ZoneState::Normal));
        assert_eq!(zone_state(&statuses(&["Unknown", ""]), 0.55), (2, ZoneState::FullDisruption));
        assert_eq!(zone_state(&statuses(&["True", "False", "False"]), 0.55), (2, ZoneState::Normal), "not more than 2");
        let five = statuses(&["True", "True", "False", "Unknown", "Unknown"]);
        assert_eq!(zone_state(&five, 0.55), (3, ZoneState::PartialDisruption));
        assert_eq!(zone_state(&five, 0.7), (3, ZoneState::Normal));
    }

    #[test]
    fn partial_disruption_slows_or_stops_evictions_by_size() {
        let rates = Rates { healthy: 0.1, secondary: 0.01, large_cluster: 50 };
        let close = |a: f64, b: f64| (a - b).abs() < 1e-6;
        assert!(close(rates.for_zone(ZoneState::Normal, 10), 0.1));
        assert!(close(rates.for_zone(ZoneState::FullDisruption, 10), 0.1));
        assert!(close(rates.for_zone(ZoneState::PartialDisruption, 51), 0.01));
        assert!(close(rates.for_zone(ZoneState::PartialDisruption, 50), 0.0));
    }
}
