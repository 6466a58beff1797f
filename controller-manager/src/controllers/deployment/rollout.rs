//! The arithmetic of a rolling update, free of I/O (Kubernetes'
//! `pkg/controller/deployment/rolling.go` and `util/deployment_util.go`):
//! how far the new ReplicaSet may grow (`maxSurge`) and how far the old
//! ones may shrink (`maxUnavailable`) at each step.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use rkube_api::intstr::scaled_value;

/// What the rollout needs to know of one ReplicaSet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replicas {
    /// Its name.
    pub name: String,
    /// `spec.replicas`.
    pub desired: i32,
    /// `status.availableReplicas`.
    pub available: i32,
}

/// `(maxSurge, maxUnavailable)` as counts out of `replicas`; both 0 would
/// stall the rollout, so maxUnavailable is then 1 (Kubernetes' `ResolveFenceposts`).
pub fn fenceposts(max_surge: &IntOrString, max_unavailable: &IntOrString, replicas: i32) -> (i32, i32) {
    let surge = scaled_value(max_surge, replicas, true).max(0);
    let unavailable = scaled_value(max_unavailable, replicas, false).max(0);
    if surge == 0 && unavailable == 0 { (0, 1) } else { (surge, unavailable) }
}

/// How many replicas the new ReplicaSet should have now: grow by what
/// `maxSurge` leaves room for above `replicas`, never past `replicas`.
pub fn new_rs_replicas(replicas: i32, max_surge: i32, new: &Replicas, all: &[Replicas]) -> i32 {
    if new.desired >= replicas {
        return replicas;
    }
    let total: i32 = all.iter().map(|r| r.desired).sum();
    let room = (replicas + max_surge - total).max(0);
    new.desired + room.min(replicas - new.desired)
}

/// The old ReplicaSets' new sizes (only those that change), oldest first:
/// first drop their unavailable pods, then available ones, as long as
/// `replicas - maxUnavailable` pods stay available.
pub fn scale_down_old(replicas: i32, max_unavailable: i32, new: &Replicas, old: &[Replicas]) -> Vec<(String, i32)> {
    let old_total: i32 = old.iter().map(|r| r.desired).sum();
    if old_total == 0 {
        return Vec::new();
    }
    let all_total = old_total + new.desired;
    let min_available = replicas - max_unavailable;
    let new_unavailable = (new.desired - new.available).max(0);
    let mut budget = all_total - min_available - new_unavailable;
    if budget <= 0 {
        return Vec::new();
    }
    let mut sizes: Vec<(String, i32, i32)> = old.iter().map(|r| (r.name.clone(), r.desired, r.available)).collect();
    // Unhealthy pods first: they do not count toward availability.
    for (_, desired, available) in sizes.iter_mut() {
        if budget == 0 {
            break;
        }
        let unhealthy = (*desired - *available).max(0).min(budget);
        *desired -= unhealthy;
        budget -= unhealthy;
    }
    // Then available ones, while enough stay available.
    let available_total: i32 = new.available + old.iter().map(|r| r.available).sum::<i32>();
    let mut budget = (available_total - min_available).max(0);
    for (_, desired, _) in sizes.iter_mut() {
        if budget == 0 {
            break;
        }
        let down = (*desired).min(budget);
        *desired -= down;
        budget -= down;
    }
    sizes
        .into_iter()
        .zip(old)
        .filter(|((_, desired, _), r)| *desired != r.desired)
        .map(|((name, desired, _), _)| (name, desired))
        .collect()
}

/// Proportional scaling: when `replicas` changes while several ReplicaSets
/// have pods, each takes its share of the change (by current size, the
/// newest absorbing rounding leftovers). Returns each set's new size, in
/// the order given (newest first).
pub fn scale_proportionally(sets: &[Replicas], allowed_total: i32) -> Vec<i32> {
    let current: i32 = sets.iter().map(|r| r.desired).sum();
    let delta = allowed_total - current;
    if delta == 0 || current == 0 {
        return sets.iter().map(|r| r.desired).collect();
    }
    let mut sizes: Vec<i32> = sets.iter().map(|r| r.desired).collect();
    let mut given = 0;
    for (i, r) in sets.iter().enumerate() {
        let share = (i64::from(r.desired) * i64::from(delta) / i64::from(current)) as i32;
        let share = if delta < 0 { share.max(-r.desired) } else { share };
        sizes[i] += share;
        given += share;
    }
    if let Some(first) = sizes.first_mut() {
        *first = (*first + delta - given).max(0);
    }
    sizes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rs(name: &str, desired: i32, available: i32) -> Replicas {
        Replicas { name: name.into(), desired, available }
    }

    #[test]
    fn fenceposts_round_surge_up_and_unavailable_down_and_never_both_zero() {
        let pct = |s: &str| IntOrString::String(s.into());
        assert_eq!(fenceposts(&pct("25%"), &pct("25%"), 10), (3, 2));
        assert_eq!(fenceposts(&IntOrString::Int(0), &IntOrString::Int(0), 3), (0, 1));
        assert_eq!(fenceposts(&pct("25%"), &pct("25%"), 1), (1, 0));
    }

    #[test]
    fn the_new_set_grows_within_max_surge() {
        let new = rs("new", 0, 0);
        let all = [new.clone(), rs("old", 3, 3)];
        assert_eq!(new_rs_replicas(3, 1, &new, &all), 1, "3 + 1 surge - 3 existing");
        let new = rs("new", 1, 0);
        let all = [new.clone(), rs("old", 3, 3)];
        assert_eq!(new_rs_replicas(3, 1, &new, &all), 1, "no room until an old pod goes");
        let new = rs("new", 2, 2);
        let all = [new.clone(), rs("old", 0, 0)];
        assert_eq!(new_rs_replicas(3, 1, &new, &all), 3, "never past replicas");
        assert_eq!(new_rs_replicas(2, 1, &rs("new", 5, 5), &[]), 2, "shrinks to replicas");
    }

    #[test]
    fn old_sets_shrink_while_enough_pods_stay_available() {
        // replicas 3, maxUnavailable 0: the new pod must be available first.
        let new = rs("new", 1, 0);
        assert!(scale_down_old(3, 0, &new, &[rs("old", 3, 3)]).is_empty());
        let new = rs("new", 1, 1);
        assert_eq!(scale_down_old(3, 0, &new, &[rs("old", 3, 3)]), [("old".to_string(), 2)]);
        // maxUnavailable 1: one old pod may go at once.
        let new = rs("new", 1, 0);
        assert_eq!(scale_down_old(3, 1, &new, &[rs("old", 3, 3)]), [("old".to_string(), 2)]);
        // Unavailable old pods go first, within the budget.
        let new = rs("new", 0, 0);
        assert_eq!(scale_down_old(3, 1, &new, &[rs("old", 3, 1)]), [("old".to_string(), 2)]);
        assert!(scale_down_old(3, 0, &new, &[rs("old", 3, 1)]).is_empty(), "no budget: the new set surges first");
    }

    #[test]
    fn a_stalled_rollout_with_a_bad_image_stops_at_max_unavailable() {
        // New pods never become available: old ones shrink only to replicas - maxUnavailable.
        let new = rs("new", 2, 0);
        assert_eq!(scale_down_old(4, 1, &new, &[rs("old", 4, 4)]), [("old".to_string(), 3)]);
        let new = rs("new", 2, 0);
        assert!(scale_down_old(4, 1, &new, &[rs("old", 3, 3)]).is_empty());
    }

    #[test]
    fn proportional_scaling_shares_the_change_by_size() {
        let sets = [rs("new", 2, 2), rs("old", 6, 6)];
        assert_eq!(scale_proportionally(&sets, 16), [4, 12]);
        assert_eq!(scale_proportionally(&sets, 4), [1, 3]);
        assert_eq!(scale_proportionally(&sets, 8), [2, 6]);
    }
}
