//! Scores: of the nodes a pod fits, which is best? Each mirrors a
//! kube-scheduler score plugin, gives every feasible node 0..=100, and
//! counts with kube-scheduler's default weight:
//!
//! | score | weight | prefers |
//! |---|---|---|
//! | TaintToleration | 3 | fewer untolerated `PreferNoSchedule` taints |
//! | NodeAffinity | 2 | more weight of matching preferred node affinity terms |
//! | Spread | 2 | fewer pods of the same controller on the node (and in its zone) |
//! | LeastAllocated | 1 | more CPU and memory left |
//! | BalancedAllocation | 1 | CPU and memory used in equal proportion |
//!
//! Spread stands in for kube-scheduler's default topology spreading (and its
//! older SelectorSpread): it counts pods by controller ownerReference.

use crate::cache::NodeInfo;
use crate::filters::tolerated;
use crate::pod_info::PodInfo;
use std::collections::HashMap;

/// The best score a plugin gives.
pub const MAX_NODE_SCORE: i64 = 100;
/// Weight of [`taint_toleration`].
pub const WEIGHT_TAINT_TOLERATION: i64 = 3;
/// Weight of [`node_affinity`].
pub const WEIGHT_NODE_AFFINITY: i64 = 2;
/// Weight of [`spread`].
pub const WEIGHT_SPREAD: i64 = 2;
/// Weight of [`least_allocated`].
pub const WEIGHT_LEAST_ALLOCATED: i64 = 1;
/// Weight of [`balanced_allocation`].
pub const WEIGHT_BALANCED_ALLOCATION: i64 = 1;
/// How much of the spread score comes from zones when nodes are labelled with one.
const ZONE_WEIGHTING: f64 = 2.0 / 3.0;

/// Scales raw scores to 0..=100 by the largest (Kubernetes'
/// `DefaultNormalizeScore`); `reverse` makes the smallest raw score the best.
pub fn normalize(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0);
    if max <= 0 {
        if reverse {
            scores.fill(MAX_NODE_SCORE);
        }
        return;
    }
    for s in scores {
        let scaled = MAX_NODE_SCORE * *s / max;
        *s = if reverse { MAX_NODE_SCORE - scaled } else { scaled };
    }
}

/// LeastAllocated: the share of CPU and memory left free once the pod is
/// placed, averaged (counting containers without requests as 100m / 200Mi).
pub fn least_allocated(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let free = |requested: i64, capacity: i64| {
        if capacity <= 0 || requested > capacity { 0 } else { (capacity - requested) * MAX_NODE_SCORE / capacity }
    };
    let alloc = &node.props.allocatable.resources;
    let used = node.usage.non_zero_requested;
    let want = pod.usage.non_zero;
    let cpu = free(used.milli_cpu.saturating_add(want.milli_cpu), alloc.milli_cpu);
    let memory = free(used.memory.saturating_add(want.memory), alloc.memory);
    (cpu + memory) / 2
}

/// BalancedAllocation: 100 when CPU and memory would be equally used (as
/// fractions of allocatable), less as they drift apart. Pods requesting
/// neither score 0 everywhere (the plugin skips them).
pub fn balanced_allocation(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let want = &pod.usage.requests;
    if want.milli_cpu == 0 && want.memory == 0 {
        return 0;
    }
    let alloc = &node.props.allocatable.resources;
    let used = &node.usage.requested;
    let fraction =
        |requested: i64, capacity: i64| (capacity > 0).then(|| (requested as f64 / capacity as f64).min(1.0));
    let cpu = fraction(used.milli_cpu.saturating_add(want.milli_cpu), alloc.milli_cpu);
    let memory = fraction(used.memory.saturating_add(want.memory), alloc.memory);
    let std = match (cpu, memory) {
        (Some(c), Some(m)) => ((c - m) / 2.0).abs(),
        _ => 0.0,
    };
    ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
}

/// NodeAffinity (raw): the summed weight of the preferred terms the node
/// matches; normalize with [`normalize`].
pub fn node_affinity(pod: &PodInfo, node: &NodeInfo) -> i64 {
    pod.preferred_terms
        .iter()
        .filter(|(_, term)| term.matches(&node.props.name, &node.props.labels))
        .map(|(weight, _)| weight)
        .sum()
}

/// TaintToleration (raw): how many `PreferNoSchedule` taints the pod does
/// not tolerate; normalize with [`normalize`], reversed.
pub fn taint_toleration(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let count =
        node.props.taints.iter().filter(|t| t.effect == "PreferNoSchedule" && !tolerated(&pod.tolerations, t)).count();
    i64::try_from(count).unwrap_or(i64::MAX)
}

/// Spread: for each node, how few pods of the pod's controller it (and its
/// zone) already has, as SelectorSpread scores it: 100 × (max − count) / max
/// over the candidate nodes, blended 1/3 node and 2/3 zone when nodes carry
/// zone labels. A pod without a controller scores 0 everywhere.
pub fn spread(pod: &PodInfo, nodes: &[&NodeInfo]) -> Vec<i64> {
    let Some(owner) = pod.usage.owner.as_deref() else { return vec![0; nodes.len()] };
    let counts: Vec<i64> = nodes.iter().map(|n| i64::from(n.usage.owned_by(owner))).collect();
    let mut by_zone: HashMap<&str, i64> = HashMap::new();
    for (n, count) in nodes.iter().zip(&counts) {
        if let Some(zone) = n.props.zone.as_deref() {
            *by_zone.entry(zone).or_default() += count;
        }
    }
    let max_node = counts.iter().copied().max().unwrap_or(0);
    let max_zone = by_zone.values().copied().max().unwrap_or(0);
    let max = MAX_NODE_SCORE as f64;
    nodes
        .iter()
        .zip(&counts)
        .map(|(n, &count)| {
            let mut score = if max_node > 0 { max * (max_node - count) as f64 / max_node as f64 } else { max };
            if let Some(zone) = n.props.zone.as_deref() {
                let zone_score =
                    if max_zone > 0 { max * (max_zone - by_zone[zone]) as f64 / max_zone as f64 } else { max };
                score = score * (1.0 - ZONE_WEIGHTING) + zone_score * ZONE_WEIGHTING;
            }
            score as i64
        })
        .collect()
}

/// The weighted total of every score for each of `nodes` (all feasible for `pod`).
pub fn score(pod: &PodInfo, nodes: &[&NodeInfo]) -> Vec<i64> {
    let mut affinity: Vec<i64> = nodes.iter().map(|n| node_affinity(pod, n)).collect();
    normalize(&mut affinity, false);
    let mut taints: Vec<i64> = nodes.iter().map(|n| taint_toleration(pod, n)).collect();
    normalize(&mut taints, true);
    let spread = spread(pod, nodes);
    nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            WEIGHT_TAINT_TOLERATION * taints[i]
                + WEIGHT_NODE_AFFINITY * affinity[i]
                + WEIGHT_SPREAD * spread[i]
                + WEIGHT_LEAST_ALLOCATED * least_allocated(pod, n)
                + WEIGHT_BALANCED_ALLOCATION * balanced_allocation(pod, n)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{node, pod};
    use serde_json::json;
    use std::sync::Arc;

    #[test]
    fn normalize_scales_by_the_largest_score() {
        let mut s = [0, 5, 10];
        normalize(&mut s, false);
        assert_eq!(s, [0, 50, 100]);
        let mut s = [0, 5, 10];
        normalize(&mut s, true);
        assert_eq!(s, [100, 50, 0]);
        let mut s = [0, 0];
        normalize(&mut s, true);
        assert_eq!(s, [100, 100]);
        let mut s = [0, 0];
        normalize(&mut s, false);
        assert_eq!(s, [0, 0]);
    }

    #[test]
    fn least_allocated_prefers_emptier_nodes() {
        let p =
            pod(json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}}]}));
        let empty = node(json!({"metadata": {"name": "a"}}));
        let mut busy = node(json!({"metadata": {"name": "b"}}));
        busy.usage.non_zero_requested.milli_cpu = 1000;
        // 2 CPUs and 4Gi: (1500/2000 free → 75, 3/4 free → 75) vs (500/2000 → 25, 75).
        assert_eq!(least_allocated(&p, &empty), 75);
        assert_eq!(least_allocated(&p, &busy), 50);
    }

    #[test]
    fn least_allocated_counts_best_effort_pods_as_small_requests() {
        let p = pod(json!({}));
        let n = node(
            json!({"metadata": {"name": "a"}, "status": {"allocatable": {"cpu": "1", "memory": "1Gi", "pods": "10"}}}),
        );
        // 100m of 1000m → 90; 200Mi of 1Gi → 80 (integer maths).
        assert_eq!(least_allocated(&p, &n), (90 + 80) / 2);
    }

    #[test]
    fn balanced_allocation_prefers_equal_cpu_and_memory_use() {
        let p = pod(json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "1", "memory": "2Gi"}}}]}));
        let n = node(json!({"metadata": {"name": "a"}}));
        assert_eq!(balanced_allocation(&p, &n), 100, "half of each");
        let mut skewed = node(json!({"metadata": {"name": "b"}}));
        skewed.usage.requested.milli_cpu = 1000;
        assert_eq!(balanced_allocation(&p, &skewed), 75, "all CPU, half memory: std 0.25");
        assert_eq!(balanced_allocation(&pod(json!({})), &n), 0);
    }

    #[test]
    fn preferred_affinity_sums_the_weights_of_matching_terms() {
        let p = pod(json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 10, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["north"]}]}},
            {"weight": 5, "preference": {"matchExpressions": [{"key": "disk", "operator": "Exists"}]}}]}}}));
        let nodes = [
            node(json!({"metadata": {"name": "a", "labels": {"zone": "north", "disk": "ssd"}}})),
            node(json!({"metadata": {"name": "b", "labels": {"zone": "north"}}})),
            node(json!({"metadata": {"name": "c"}})),
        ];
        let raw: Vec<i64> = nodes.iter().map(|n| node_affinity(&p, n)).collect();
        assert_eq!(raw, [15, 10, 0]);
        let refs: Vec<&NodeInfo> = nodes.iter().collect();
        let total = score(&p, &refs);
        assert!(total[0] > total[1] && total[1] > total[2], "{total:?}");
    }

    #[test]
    fn untolerated_prefer_no_schedule_taints_lower_the_score() {
        let p = pod(json!({"tolerations": [{"key": "tolerated", "operator": "Exists", "effect": "PreferNoSchedule"}]}));
        let nodes = [
            node(
                json!({"metadata": {"name": "a"}, "spec": {"taints": [{"key": "soft", "effect": "PreferNoSchedule"}]}}),
            ),
            node(
                json!({"metadata": {"name": "b"}, "spec": {"taints": [{"key": "tolerated", "effect": "PreferNoSchedule"}]}}),
            ),
        ];
        assert_eq!(taint_toleration(&p, &nodes[0]), 1);
        assert_eq!(taint_toleration(&p, &nodes[1]), 0);
        let refs: Vec<&NodeInfo> = nodes.iter().collect();
        let total = score(&p, &refs);
        assert_eq!(total[1] - total[0], WEIGHT_TAINT_TOLERATION * MAX_NODE_SCORE);
    }

    #[test]
    fn spread_prefers_nodes_with_fewer_pods_of_the_same_controller() {
        let mut p = pod(json!({}));
        p.usage.owner = Some(Arc::from("rc-1"));
        let mut nodes = [node(json!({"metadata": {"name": "a"}})), node(json!({"metadata": {"name": "b"}}))];
        nodes[0].usage.owners.insert(Arc::from("rc-1"), 2);
        nodes[1].usage.owners.insert(Arc::from("other"), 5);
        let refs: Vec<&NodeInfo> = nodes.iter().collect();
        assert_eq!(spread(&p, &refs), [0, 100]);
        p.usage.owner = None;
        assert_eq!(spread(&p, &refs), [0, 0]);
    }

    #[test]
    fn spread_weighs_zones_two_thirds() {
        let mut p = pod(json!({}));
        p.usage.owner = Some(Arc::from("rc"));
        let zone = |name: &str, z: &str| {
            node(json!({"metadata": {"name": name, "labels": {"topology.kubernetes.io/zone": z}}}))
        };
        let mut nodes = [zone("a1", "a"), zone("a2", "a"), zone("b1", "b")];
        nodes[0].usage.owners.insert(Arc::from("rc"), 1);
        let refs: Vec<&NodeInfo> = nodes.iter().collect();
        // a1: node 0, zone 0 → 0; a2: node 100, zone 0 → 33; b1: node 100, zone 100 → 100.
        assert_eq!(spread(&p, &refs), [0, 33, 100]);
    }
}
