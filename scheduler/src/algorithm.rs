//! One scheduling decision: filter the nodes, score the feasible ones, pick
//! the best (kube-scheduler's `schedulePod`).
//!
//! With many nodes, checking every one for every pod is wasted work: like
//! kube-scheduler, [`Algorithm::schedule`] stops filtering once it has found
//! [`num_feasible_nodes_to_find`] feasible nodes (all of them up to 100
//! nodes; 42% of 1,000 nodes; never under 5%), and starts each search where
//! the previous one stopped, so every node gets its turn. When no node fits,
//! every node has been checked, and the [`FitError`] counts why.

use crate::cache::Cache;
use crate::filters::{Reason, filter};
use crate::pod_info::PodInfo;
use crate::scores;
use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// Below this many nodes every node is checked.
pub const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;
/// The adaptive percentage never drops below this.
pub const MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND: usize = 5;

/// How many feasible nodes to look for among `num_all_nodes`, for a
/// `percentage` of nodes to score (0: adaptive, 50% minus 1% per 125 nodes).
pub fn num_feasible_nodes_to_find(percentage: u32, num_all_nodes: usize) -> usize {
    if num_all_nodes < MIN_FEASIBLE_NODES_TO_FIND {
        return num_all_nodes;
    }
    let percentage = match percentage.min(100) as usize {
        0 => 50usize.saturating_sub(num_all_nodes / 125).max(MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND),
        p => p,
    };
    (num_all_nodes * percentage / 100).max(MIN_FEASIBLE_NODES_TO_FIND)
}

/// Why no node fits a pod: how many nodes there are, and how many nodes
/// failed for each reason. Displays as Kubernetes' message,
/// `0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't match Pod's node affinity/selector.`
/// (entries sorted as strings, as Kubernetes sorts them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FitError {
    /// Nodes in the cluster.
    pub num_all_nodes: usize,
    /// Reason → number of nodes that gave it.
    pub reasons: BTreeMap<String, usize>,
}

impl fmt::Display for FitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0/{} nodes are available:", self.num_all_nodes)?;
        let mut entries: Vec<String> = self.reasons.iter().map(|(reason, n)| format!("{n} {reason}")).collect();
        entries.sort();
        if !entries.is_empty() {
            write!(f, " {}.", entries.join(", "))?;
        }
        Ok(())
    }
}

/// Why a pod could not be placed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The cluster has no nodes at all.
    #[error("no nodes available to schedule pods")]
    NoNodes,
    /// No node passes the filters.
    #[error("{0}")]
    Unfit(FitError),
}

/// Where a pod goes, and how much looking it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The chosen node.
    pub node: String,
    /// Nodes checked by the filters.
    pub evaluated: usize,
    /// Of those, nodes the pod fits.
    pub feasible: usize,
}

/// The scheduling algorithm and the little state it keeps between pods.
#[derive(Debug)]
pub struct Algorithm {
    /// Percentage of nodes to score (0: adaptive).
    percentage: u32,
    /// Where the next search starts.
    next_start: usize,
    /// Breaks ties between equally good nodes.
    rng: fastrand::Rng,
}

impl Algorithm {
    /// An algorithm scoring `percentage` of the nodes (0: adaptive).
    pub fn new(percentage: u32) -> Algorithm {
        Algorithm { percentage, next_start: 0, rng: fastrand::Rng::new() }
    }

    /// The same with a fixed random seed, for reproducible tie-breaks.
    pub fn with_seed(percentage: u32, seed: u64) -> Algorithm {
        Algorithm { percentage, next_start: 0, rng: fastrand::Rng::with_seed(seed) }
    }

    /// Picks a node for `pod` among the nodes in `cache`.
    pub fn schedule(&mut self, pod: &PodInfo, cache: &Cache) -> Result<Placement, ScheduleError> {
        let nodes = cache.nodes();
        let n = nodes.len();
        if n == 0 {
            return Err(ScheduleError::NoNodes);
        }
        let wanted = num_feasible_nodes_to_find(self.percentage, n);
        let start = self.next_start % n;
        let mut feasible = Vec::with_capacity(wanted);
        let mut reasons = Vec::new();
        let mut histogram: HashMap<Reason<'_>, usize> = HashMap::new();
        let mut evaluated = 0;
        for i in 0..n {
            let node = &nodes[(start + i) % n];
            evaluated += 1;
            if filter(pod, node, &mut reasons) {
                feasible.push(node);
                if feasible.len() >= wanted {
                    break;
                }
            } else {
                for r in reasons.drain(..) {
                    *histogram.entry(r).or_default() += 1;
                }
            }
        }
        self.next_start = (start + evaluated) % n;
        if feasible.is_empty() {
            let reasons = histogram.into_iter().map(|(r, count)| (r.to_string(), count)).collect();
            return Err(ScheduleError::Unfit(FitError { num_all_nodes: n, reasons }));
        }
        let chosen = if feasible.len() == 1 {
            feasible[0]
        } else {
            let totals = scores::score(pod, &feasible);
            // Reservoir sampling among the best, so ties are broken uniformly.
            let mut best = 0;
            let mut ties = 0u64;
            for (i, &s) in totals.iter().enumerate() {
                if s > totals[best] {
                    best = i;
                    ties = 1;
                } else if s == totals[best] {
                    ties += 1;
                    if self.rng.u64(0..ties) == 0 {
                        best = i;
                    }
                }
            }
            feasible[best]
        };
        Ok(Placement { node: chosen.props.name.clone(), evaluated, feasible: feasible.len() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{node_view, pod};
    use crate::pod_info::PodInfo;
    use rkube_client::ObjectKey;
    use serde_json::json;
    use std::collections::HashSet;

    fn cache(nodes: &[serde_json::Value]) -> Cache {
        let mut c = Cache::new();
        for n in nodes {
            c.set_node(&node_view(n.clone()));
        }
        c
    }

    fn cpu_pod(cpu: &str) -> PodInfo {
        pod(json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]}))
    }

    #[test]
    fn fit_error_lists_counts_sorted_as_strings() {
        let err = FitError {
            num_all_nodes: 3,
            reasons: BTreeMap::from([
                ("node(s) didn't match Pod's node affinity/selector".to_string(), 2),
                ("Insufficient cpu".to_string(), 1),
            ]),
        };
        assert_eq!(
            err.to_string(),
            "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't match Pod's node affinity/selector."
        );
        let err = FitError {
            num_all_nodes: 12,
            reasons: BTreeMap::from([("Insufficient memory".to_string(), 10), ("Insufficient cpu".to_string(), 2)]),
        };
        assert_eq!(err.to_string(), "0/12 nodes are available: 10 Insufficient memory, 2 Insufficient cpu.");
    }

    #[test]
    fn unschedulable_pod_gets_a_message_counting_every_node() {
        let c = cache(&[
            json!({"metadata": {"name": "n1", "labels": {"zone": "south"}}}),
            json!({"metadata": {"name": "n2", "labels": {"zone": "south"}}}),
            json!({"metadata": {"name": "n3", "labels": {"zone": "north"}},
                "status": {"allocatable": {"cpu": "1", "memory": "1Gi", "pods": "10"}}}),
        ]);
        let p = pod(json!({"nodeSelector": {"zone": "north"},
            "containers": [{"name": "c", "resources": {"requests": {"cpu": "2"}}}]}));
        let err = Algorithm::new(0).schedule(&p, &c).expect_err("nothing fits");
        assert_eq!(
            err.to_string(),
            "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't match Pod's node affinity/selector."
        );
    }

    #[test]
    fn no_nodes_is_its_own_error() {
        let err = Algorithm::new(0).schedule(&pod(json!({})), &Cache::new()).expect_err("no nodes");
        assert_eq!(err, ScheduleError::NoNodes);
        assert_eq!(err.to_string(), "no nodes available to schedule pods");
    }

    #[test]
    fn picks_the_only_node_that_fits() {
        let c = cache(&[
            json!({"metadata": {"name": "small"}, "status": {"allocatable": {"cpu": "500m", "memory": "1Gi", "pods": "10"}}}),
            json!({"metadata": {"name": "big"}, "status": {"allocatable": {"cpu": "8", "memory": "1Gi", "pods": "10"}}}),
        ]);
        let placed = Algorithm::new(0).schedule(&cpu_pod("1"), &c).expect("fits on big");
        assert_eq!(placed, Placement { node: "big".into(), evaluated: 2, feasible: 1 });
    }

    #[test]
    fn assumed_pods_fill_nodes_in_turn() {
        let mut c = cache(&[json!({"metadata": {"name": "a"}}), json!({"metadata": {"name": "b"}})]);
        let mut algo = Algorithm::with_seed(0, 7);
        let mut placed = Vec::new();
        for i in 0..4 {
            let p = cpu_pod("1");
            let node = algo.schedule(&p, &c).expect("room for four 1-CPU pods on two 2-CPU nodes").node;
            c.assume(ObjectKey::new("default", &format!("p{i}")), &node, p.usage.clone());
            placed.push(node);
        }
        placed.sort();
        assert_eq!(placed, ["a", "a", "b", "b"]);
        let err = algo.schedule(&cpu_pod("1"), &c).expect_err("full");
        assert_eq!(err.to_string(), "0/2 nodes are available: 2 Insufficient cpu.");
    }

    #[test]
    fn ties_are_broken_randomly() {
        let c = cache(&[
            json!({"metadata": {"name": "a"}}),
            json!({"metadata": {"name": "b"}}),
            json!({"metadata": {"name": "c"}}),
        ]);
        let mut algo = Algorithm::with_seed(0, 1);
        let chosen: HashSet<String> = (0..50).map(|_| algo.schedule(&pod(json!({})), &c).expect("fits").node).collect();
        assert_eq!(chosen.len(), 3, "{chosen:?}");
    }

    #[test]
    fn feasible_nodes_to_find_adapts_to_cluster_size() {
        assert_eq!(num_feasible_nodes_to_find(0, 50), 50);
        assert_eq!(num_feasible_nodes_to_find(0, 100), 100, "never fewer than 100");
        assert_eq!(num_feasible_nodes_to_find(0, 1000), 420);
        assert_eq!(num_feasible_nodes_to_find(0, 5000), 500);
        assert_eq!(num_feasible_nodes_to_find(0, 10_000), 500, "5% at least");
        assert_eq!(num_feasible_nodes_to_find(100, 1000), 1000);
        assert_eq!(num_feasible_nodes_to_find(10, 500), 100);
    }

    #[test]
    fn searches_start_where_the_last_one_stopped() {
        let nodes: Vec<_> = (0..200).map(|i| json!({"metadata": {"name": format!("n{i:03}")}})).collect();
        let c = cache(&nodes);
        let mut algo = Algorithm::with_seed(50, 3);
        let first = algo.schedule(&pod(json!({})), &c).expect("fits");
        assert_eq!((first.evaluated, first.feasible), (100, 100));
        assert_eq!(algo.next_start, 100);
        algo.schedule(&pod(json!({})), &c).expect("fits");
        assert_eq!(algo.next_start, 0);
    }
}
