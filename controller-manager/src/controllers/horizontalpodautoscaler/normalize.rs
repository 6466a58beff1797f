//! From the metrics' proposal to the replica count the target gets
//! (Kubernetes' `normalizeDesiredReplicas` and
//! `normalizeDesiredReplicasWithBehaviors`): stabilisation over recent
//! recommendations, then the min/max clamps and the rate limits.
//!
//! Without `spec.behavior`, a scale-down takes the highest recommendation
//! of the last `--horizontal-pod-autoscaler-downscale-stabilization`, and a
//! scale-up goes at most to max(2 × current, 4). With it, each direction
//! has its own stabilisation window and its policies (`Pods` / `Percent`
//! per `periodSeconds`, `selectPolicy` Max, Min or Disabled), with
//! Kubernetes' defaults for what it leaves out.

use k8s_openapi::api::autoscaling::v2::{HPAScalingRules, HorizontalPodAutoscalerBehavior};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use std::time::Duration;

/// How policies combine (`selectPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Select {
    /// The policy allowing the largest change (the default).
    Max,
    /// The policy allowing the smallest change.
    Min,
    /// No scaling in this direction.
    Disabled,
}

/// One scaling policy: `value` pods, or `value` percent, per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// True for `Pods`, false for `Percent`.
    pub pods: bool,
    /// The amount.
    pub value: i32,
    /// The period, in seconds.
    pub period: i64,
}

/// One direction's rules, defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// The stabilisation window.
    pub window: Duration,
    /// How policies combine.
    pub select: Select,
    /// The policies.
    pub policies: Vec<Policy>,
}

/// `spec.behavior`, defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Behavior {
    /// Scaling up.
    pub up: Rules,
    /// Scaling down.
    pub down: Rules,
}

fn rules(given: Option<&HPAScalingRules>, window: Duration, policies: &[Policy]) -> Rules {
    let select = match given.and_then(|g| g.select_policy.as_deref()) {
        Some("Min") => Select::Min,
        Some("Disabled") => Select::Disabled,
        _ => Select::Max,
    };
    let policies = match given.and_then(|g| g.policies.as_ref()) {
        Some(ps) => ps
            .iter()
            .map(|p| Policy { pods: p.type_ == "Pods", value: p.value, period: i64::from(p.period_seconds) })
            .collect(),
        None => policies.to_vec(),
    };
    let window = given
        .and_then(|g| g.stabilization_window_seconds)
        .map_or(window, |s| Duration::from_secs(u64::try_from(s).unwrap_or(0)));
    Rules { window, select, policies }
}

impl Behavior {
    /// `b` with Kubernetes' defaults: up — no window, 4 pods or 100% per
    /// 15 s, whichever is more; down — the `--horizontal-pod-autoscaler-
    /// downscale-stabilization` window, 100% per 15 s.
    pub fn of(b: &HorizontalPodAutoscalerBehavior, downscale_window: Duration) -> Behavior {
        let up = [Policy { pods: true, value: 4, period: 15 }, Policy { pods: false, value: 100, period: 15 }];
        let down = [Policy { pods: false, value: 100, period: 15 }];
        Behavior {
            up: rules(b.scale_up.as_ref(), Duration::ZERO, &up),
            down: rules(b.scale_down.as_ref(), downscale_window, &down),
        }
    }
}

/// A condition the normalisation sets: (status, reason, message).
pub type Verdict = (bool, &'static str, &'static str);

/// The outcome of [`History::normalize`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalized {
    /// The replicas the target should have.
    pub replicas: i32,
    /// AbleToScale (always True here): stabilised or ready for a new scale.
    pub able_to_scale: Verdict,
    /// ScalingLimited: whether a clamp or rate changed the stabilised count.
    pub scaling_limited: Verdict,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    replicas: i32,
    at: Timestamp,
}

/// What the controller remembers of one HPA between syncs: its recent
/// recommendations and scale changes. Lost on restart (and a new
/// leadership term), as in Kubernetes.
#[derive(Debug, Default, Clone)]
pub struct History {
    recommendations: Vec<Sample>,
    scale_ups: Vec<Sample>,
    scale_downs: Vec<Sample>,
}

fn before(now: Timestamp, d: Duration) -> Timestamp {
    now.saturating_sub(SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)).unwrap_or(Timestamp::MIN)
}

const STABILIZED_DOWN: &str =
    "recent recommendations were higher than current one, applying the highest recent recommendation";
const STABILIZED_UP: &str =
    "recent recommendations were lower than current one, applying the lowest recent recommendation";
const READY: Verdict = (true, "ReadyForNewScale", "recommended size matches current size");
const WITHIN_RANGE: (&str, &str) = ("DesiredWithinRange", "the desired count is within the acceptable range");
const TOO_FEW: (&str, &str) = ("TooFewReplicas", "the desired replica count is less than the minimum replica count");
const TOO_MANY: (&str, &str) = ("TooManyReplicas", "the desired replica count is more than the maximum replica count");
const UP_LIMIT: (&str, &str) =
    ("ScaleUpLimit", "the desired replica count is increasing faster than the maximum scale rate");
const DOWN_LIMIT: (&str, &str) =
    ("ScaleDownLimit", "the desired replica count is decreasing faster than the maximum scale rate");

fn limited(replicas: i32, stabilized: i32, (reason, message): (&'static str, &'static str)) -> Verdict {
    (replicas != stabilized, reason, message)
}

impl History {
    /// The current replicas count as a recommendation when nothing is
    /// remembered yet, so a restarted controller does not scale down at once.
    pub fn record_initial(&mut self, current: i32, now: Timestamp) {
        if self.recommendations.is_empty() {
            self.recommendations.push(Sample { replicas: current, at: now });
        }
    }

    /// Records `desired`, replacing one sample older than `keep` if any.
    fn remember(&mut self, desired: i32, keep: Timestamp, now: Timestamp) {
        let sample = Sample { replicas: desired, at: now };
        match self.recommendations.iter_mut().find(|r| r.at < keep) {
            Some(old) => *old = sample,
            None => self.recommendations.push(sample),
        }
    }

    /// Without `behavior`: the highest recommendation within `window`, then
    /// clamped to `[min, max]` and to max(2 × current, 4).
    pub fn normalize(
        &mut self,
        window: Duration,
        current: i32,
        desired: i32,
        min: i32,
        max: i32,
        now: Timestamp,
    ) -> Normalized {
        let cutoff = before(now, window);
        let stabilized =
            self.recommendations.iter().filter(|r| r.at >= cutoff).map(|r| r.replicas).fold(desired, i32::max);
        self.remember(desired, cutoff, now);
        let able_to_scale = if stabilized != desired { (true, "ScaleDownStabilized", STABILIZED_DOWN) } else { READY };
        let up_limit = current.saturating_mul(2).max(4);
        let (upper, upper_why) = if max > up_limit { (up_limit, UP_LIMIT) } else { (max, TOO_MANY) };
        let (replicas, why) = if stabilized < min {
            (min, TOO_FEW)
        } else if stabilized > upper {
            (upper, upper_why)
        } else {
            (stabilized, WITHIN_RANGE)
        };
        Normalized { replicas, able_to_scale, scaling_limited: limited(replicas, stabilized, why) }
    }

    /// With `behavior`: stabilised between the lowest recommendation of the
    /// up window and the highest of the down window, then limited by the
    /// direction's policies and `[min, max]`.
    pub fn normalize_with_behavior(
        &mut self,
        behavior: &Behavior,
        current: i32,
        desired: i32,
        min: i32,
        max: i32,
        now: Timestamp,
    ) -> Normalized {
        let (up_cutoff, down_cutoff) = (before(now, behavior.up.window), before(now, behavior.down.window));
        let (mut up, mut down) = (desired, desired);
        for r in &self.recommendations {
            if r.at > up_cutoff {
                up = up.min(r.replicas);
            }
            if r.at > down_cutoff {
                down = down.max(r.replicas);
            }
        }
        let stabilized = current.max(up).min(down);
        self.remember(desired, up_cutoff.min(down_cutoff), now);
        let able_to_scale = if stabilized == desired {
            READY
        } else if desired >= current {
            (true, "ScaleUpStabilized", STABILIZED_UP)
        } else {
            (true, "ScaleDownStabilized", STABILIZED_DOWN)
        };
        let (replicas, why) = if stabilized > current {
            let limit = self.up_limit(&behavior.up, current, now).max(current);
            let (upper, why) = if max > limit { (limit, UP_LIMIT) } else { (max, TOO_MANY) };
            if stabilized > upper { (upper, why) } else { (stabilized, WITHIN_RANGE) }
        } else if stabilized < current {
            let limit = self.down_limit(&behavior.down, current, now).min(current);
            let (lower, why) = if min < limit { (limit, DOWN_LIMIT) } else { (min, TOO_FEW) };
            if stabilized < lower { (lower, why) } else { (stabilized, WITHIN_RANGE) }
        } else {
            (stabilized, WITHIN_RANGE)
        };
        Normalized { replicas, able_to_scale, scaling_limited: limited(replicas, stabilized, why) }
    }

    fn changed_since(events: &[Sample], period: i64, now: Timestamp) -> i32 {
        let cutoff = before(now, Duration::from_secs(u64::try_from(period).unwrap_or(0)));
        events.iter().filter(|e| e.at > cutoff).map(|e| e.replicas).sum()
    }

    /// The replicas each policy lets the target have at the start of its
    /// period plus its allowance (`calculateScaleUpLimitWithScalingRules`).
    fn up_limit(&self, rules: &Rules, current: i32, now: Timestamp) -> i32 {
        let proposals = rules.policies.iter().map(|p| {
            let start = current - Self::changed_since(&self.scale_ups, p.period, now)
                + Self::changed_since(&self.scale_downs, p.period, now);
            if p.pods {
                start.saturating_add(p.value)
            } else {
                (f64::from(start) * (1.0 + f64::from(p.value) / 100.0)).ceil() as i32
            }
        });
        match rules.select {
            Select::Disabled => current,
            Select::Min => proposals.min().unwrap_or(i32::MAX),
            Select::Max => proposals.max().unwrap_or(i32::MIN),
        }
    }

    /// The fewest replicas the policies allow (`calculateScaleDownLimitWithBehaviors`).
    fn down_limit(&self, rules: &Rules, current: i32, now: Timestamp) -> i32 {
        let proposals = rules.policies.iter().map(|p| {
            let start = current - Self::changed_since(&self.scale_ups, p.period, now)
                + Self::changed_since(&self.scale_downs, p.period, now);
            if p.pods { start - p.value } else { (f64::from(start) * (1.0 - f64::from(p.value) / 100.0)) as i32 }
        });
        match rules.select {
            Select::Disabled => current,
            Select::Min => proposals.max().unwrap_or(i32::MIN),
            Select::Max => proposals.min().unwrap_or(i32::MAX),
        }
    }

    /// Remembers a rescale from `from` to `to`, for the policies' periods
    /// (only with a behavior, as in Kubernetes).
    pub fn record_scale(&mut self, behavior: &Behavior, from: i32, to: i32, now: Timestamp) {
        let (events, rules) =
            if to > from { (&mut self.scale_ups, &behavior.up) } else { (&mut self.scale_downs, &behavior.down) };
        let longest = rules.policies.iter().map(|p| p.period).max().unwrap_or(0);
        let cutoff = before(now, Duration::from_secs(u64::try_from(longest).unwrap_or(0)));
        events.retain(|e| e.at > cutoff);
        events.push(Sample { replicas: (to - from).abs(), at: now });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const WINDOW: Duration = Duration::from_secs(300);

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    #[test]
    fn scale_down_waits_for_the_window() {
        let mut h = History::default();
        h.record_initial(5, at(0));
        // A minute later the metrics want 2: the 5 of a minute ago holds.
        let n = h.normalize(WINDOW, 5, 2, 1, 10, at(60));
        assert_eq!(n.replicas, 5);
        assert_eq!(n.able_to_scale.1, "ScaleDownStabilized");
        assert_eq!(n.scaling_limited, (false, "DesiredWithinRange", WITHIN_RANGE.1));
        // 4 at 2 min; at 5 min 30 s the 5 is out of the window, the 4 is not.
        assert_eq!(h.normalize(WINDOW, 5, 4, 1, 10, at(120)).replicas, 5);
        assert_eq!(h.normalize(WINDOW, 5, 2, 1, 10, at(330)).replicas, 4);
        // Once every higher sample is out of the window, the scale-down goes through.
        let n = h.normalize(WINDOW, 4, 2, 1, 10, at(700));
        assert_eq!(n.replicas, 2);
        assert_eq!(n.able_to_scale, READY);
        // A scale-up is never held back.
        assert_eq!(h.normalize(WINDOW, 3, 6, 1, 10, at(701)).replicas, 6);
        // Old samples are replaced rather than piling up.
        assert!(h.recommendations.len() <= 5, "{:?}", h.recommendations);
    }

    #[test]
    fn clamps_to_min_max_and_the_scale_up_rate() {
        let mut h = History::default();
        let n = h.normalize(Duration::ZERO, 3, 20, 1, 10, at(0));
        assert_eq!((n.replicas, n.scaling_limited), (6, (true, UP_LIMIT.0, UP_LIMIT.1)));
        let n = h.normalize(Duration::ZERO, 6, 20, 1, 10, at(1));
        assert_eq!((n.replicas, n.scaling_limited), (10, (true, TOO_MANY.0, TOO_MANY.1)));
        let n = h.normalize(Duration::ZERO, 3, 1, 2, 10, at(2));
        assert_eq!((n.replicas, n.scaling_limited), (2, (true, TOO_FEW.0, TOO_FEW.1)));
    }

    fn behavior(v: serde_json::Value) -> Behavior {
        Behavior::of(&serde_json::from_value(v).unwrap(), WINDOW)
    }

    #[test]
    fn behavior_defaults_follow_kubernetes() {
        let b = behavior(json!({"scaleDown": {"stabilizationWindowSeconds": 10}}));
        assert_eq!(b.down.window, Duration::from_secs(10));
        assert_eq!(b.up.window, Duration::ZERO);
        assert_eq!(b.up.policies.len(), 2);
        assert_eq!(b.down.select, Select::Max);
        assert_eq!(behavior(json!({})).down.window, WINDOW);
    }

    #[test]
    fn behavior_policies_limit_the_rate() {
        let b = behavior(json!({
            "scaleUp": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]},
            "scaleDown": {"stabilizationWindowSeconds": 0, "policies": [{"type": "Percent", "value": 50, "periodSeconds": 60}]},
        }));
        let mut h = History::default();
        let n = h.normalize_with_behavior(&b, 2, 5, 1, 10, at(0));
        assert_eq!((n.replicas, n.scaling_limited.1), (3, "ScaleUpLimit"));
        h.record_scale(&b, 2, 3, at(0));
        // Within the minute the one pod allowed was used.
        assert_eq!(h.normalize_with_behavior(&b, 3, 5, 1, 10, at(30)).replicas, 3);
        assert_eq!(h.normalize_with_behavior(&b, 3, 5, 1, 10, at(61)).replicas, 4);
        // Down by at most half per minute.
        let mut h = History::default();
        let n = h.normalize_with_behavior(&b, 8, 1, 1, 10, at(0));
        assert_eq!((n.replicas, n.scaling_limited.1), (4, "ScaleDownLimit"));
        let disabled = behavior(json!({"scaleDown": {"selectPolicy": "Disabled"}}));
        assert_eq!(History::default().normalize_with_behavior(&disabled, 8, 1, 1, 10, at(0)).replicas, 8);
    }

    #[test]
    fn behavior_windows_stabilize_both_ways() {
        let b = behavior(json!({"scaleUp": {"stabilizationWindowSeconds": 60},
                                "scaleDown": {"stabilizationWindowSeconds": 60}}));
        let mut h = History::default();
        h.record_initial(3, at(0));
        let n = h.normalize_with_behavior(&b, 3, 6, 1, 10, at(10));
        assert_eq!((n.replicas, n.able_to_scale.1), (3, "ScaleUpStabilized"));
        assert_eq!(h.normalize_with_behavior(&b, 3, 6, 1, 10, at(65)).replicas, 6);
    }
}
