//! The replica calculator (Kubernetes' `pkg/controller/podautoscaler/
//! replica_calculator.go`): how many replicas a resource metric asks for,
//! given the target's pods, their requests and their measured usage.
//!
//! Pods are first sorted into groups ([`group_pods`]): pods being deleted
//! or Failed are ignored; Pending pods, and for cpu pods that are not ready
//! yet (or whose sample predates their readiness), are *unready*; pods the
//! metrics API has no sample for are *missing*. Ready pods alone decide
//! when nothing is missing or unready. Otherwise the ratio is computed
//! again with the missing pods at 100% of their request (or at the target,
//! if higher) on a scale-down and at 0% on a scale-up, and unready pods at
//! 0% on a scale-up — so pods without data damp the change and never
//! reverse its direction.

use crate::controllers::pod_state::{self, PodView};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

/// One pod's usage of a resource, as the metrics API measured it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PodMetric {
    /// The usage in thousandths (millicores for cpu, millibytes for memory,
    /// like Kubernetes' `MilliValue`).
    pub value: i64,
    /// When it was measured (the end of the window).
    pub timestamp: Timestamp,
    /// The window the usage is averaged over.
    pub window: Duration,
}

/// Usage by pod name.
pub type PodMetrics = BTreeMap<String, PodMetric>;

/// The calculator's settings (kube-controller-manager's flags).
#[derive(Debug, Clone, Copy)]
pub struct Calculator {
    /// Usage within this fraction of the target changes nothing (0.1).
    pub tolerance: f64,
    /// How long after its start a pod's cpu samples are trusted only once
    /// a full window was measured after it turned ready (5m).
    pub cpu_initialization_period: Duration,
    /// After the initialization period, a not-ready pod whose readiness last
    /// changed within this delay of its start is taken as never ready (30s).
    pub delay_of_initial_readiness: Duration,
}

/// The proposal of a `Utilization` target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtilizationProposal {
    /// The replicas the metric asks for.
    pub replicas: i32,
    /// The current average utilization, in percent of the requests.
    pub utilization: i32,
    /// The current average usage, in thousandths.
    pub raw_average: i64,
}

/// The pods of [`group_pods`], by name.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Groups {
    /// Ready pods with a sample.
    pub ready: usize,
    /// Pending pods, and (for cpu) pods not ready or sampled before ready.
    pub unready: BTreeSet<String>,
    /// Running pods without a sample.
    pub missing: BTreeSet<String>,
    /// Pods being deleted, and failed pods.
    pub ignored: BTreeSet<String>,
}

fn name(pod: &PodView) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

fn after(t: Timestamp, d: Duration) -> Timestamp {
    t.saturating_add(SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)).unwrap_or(Timestamp::MAX)
}

/// Sorts `pods` by what their samples are worth (Kubernetes' `groupPods`).
pub fn group_pods(
    pods: &[Arc<PodView>],
    metrics: &PodMetrics,
    resource: &str,
    calc: &Calculator,
    now: Timestamp,
) -> Groups {
    let mut groups = Groups::default();
    for pod in pods {
        if pod.metadata.deletion_timestamp.is_some() || pod_state::phase(pod) == "Failed" {
            groups.ignored.insert(name(pod));
            continue;
        }
        if pod_state::phase(pod) == "Pending" {
            groups.unready.insert(name(pod));
            continue;
        }
        let Some(metric) = metrics.get(&name(pod)) else {
            groups.missing.insert(name(pod));
            continue;
        };
        if resource == "cpu" {
            let status = pod.status.as_ref();
            let ready =
                status.and_then(|s| s.conditions.as_ref()).and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"));
            let start = status.and_then(|s| s.start_time.as_ref()).map(|t| t.0);
            let unready = match (ready, start) {
                (Some(ready), Some(start)) => {
                    let transition = ready.last_transition_time.as_ref().map_or(Timestamp::UNIX_EPOCH, |t| t.0);
                    if after(start, calc.cpu_initialization_period) > now {
                        // Still starting: a sample counts once a whole window
                        // was measured after the pod turned ready.
                        ready.status == "False" || metric.timestamp < after(transition, metric.window)
                    } else {
                        // Not ready and never was.
                        ready.status == "False" && after(start, calc.delay_of_initial_readiness) > transition
                    }
                }
                _ => true,
            };
            if unready {
                groups.unready.insert(name(pod));
                continue;
            }
        }
        groups.ready += 1;
    }
    groups
}

/// Each pod's request of `resource` in thousandths: the sum over its
/// containers and sidecar init containers. A container without a request
/// makes utilization meaningless, and is an error naming it.
pub fn pod_requests(pods: &[Arc<PodView>], resource: &str) -> Result<BTreeMap<String, i64>, String> {
    let mut requests = BTreeMap::new();
    for pod in pods {
        let spec = pod.spec.as_ref();
        let sidecars = spec
            .and_then(|s| s.init_containers.as_ref())
            .into_iter()
            .flatten()
            .filter(|c| c.restart_policy.as_deref() == Some("Always"));
        let containers = spec.map(|s| s.containers.as_slice()).unwrap_or_default().iter().chain(sidecars);
        let mut sum = 0i64;
        for c in containers {
            let request = c.resources.as_ref().and_then(|r| r.requests.as_ref()).and_then(|r| r.get(resource));
            let Some(request) = request else {
                return Err(format!("missing request for {resource} in container {} of Pod {}", c.name, name(pod)));
            };
            let millis = rkube_api::quantity::parse_k8s(request).map(|q| q.millis()).unwrap_or(0);
            sum = sum.saturating_add(i64::try_from(millis).unwrap_or(i64::MAX));
        }
        requests.insert(name(pod), sum);
    }
    Ok(requests)
}

/// The usage of the pods that have a request, against the target
/// utilization: (ratio, utilization %, average raw usage) — Kubernetes'
/// `GetResourceUtilizationRatio`.
fn utilization_ratio(
    metrics: &BTreeMap<String, i64>,
    requests: &BTreeMap<String, i64>,
    target: i32,
) -> Result<(f64, i32, i64), String> {
    let (mut used, mut requested, mut entries) = (0i64, 0i64, 0i64);
    for (pod, value) in metrics {
        let Some(request) = requests.get(pod) else { continue };
        used += value;
        requested += request;
        entries += 1;
    }
    if requested == 0 {
        return Err("no metrics returned matched known pods".into());
    }
    let utilization = i32::try_from(used * 100 / requested).unwrap_or(i32::MAX);
    Ok((f64::from(utilization) / f64::from(target), utilization, used / entries))
}

/// The average usage against a target average: (ratio, average) —
/// Kubernetes' `GetMetricUsageRatio`.
fn usage_ratio(metrics: &BTreeMap<String, i64>, target: i64) -> (f64, i64) {
    let total: i64 = metrics.values().sum();
    let average = total / i64::try_from(metrics.len()).unwrap_or(1).max(1);
    (average as f64 / target as f64, average)
}

fn ceil(x: f64) -> i32 {
    x.ceil() as i32
}

/// What both calculations share: samples of ready pods only, then the
/// second pass with missing and unready pods filled in when needed.
struct Samples {
    groups: Groups,
    values: BTreeMap<String, i64>,
}

fn samples(
    pods: &[Arc<PodView>],
    metrics: &PodMetrics,
    resource: &str,
    calc: &Calculator,
    now: Timestamp,
) -> Result<Samples, String> {
    if pods.is_empty() {
        return Err("no pods returned by selector while calculating replica count".into());
    }
    let groups = group_pods(pods, metrics, resource, calc, now);
    let values = metrics
        .iter()
        .filter(|(pod, _)| !groups.ignored.contains(*pod) && !groups.unready.contains(*pod))
        .map(|(pod, m)| (pod.clone(), m.value))
        .collect();
    Ok(Samples { groups, values })
}

impl Calculator {
    /// The replicas a `Utilization` target of `target` % asks for, with
    /// `current` replicas now (Kubernetes' `GetResourceReplicas`).
    pub fn resource_replicas(
        &self,
        current: i32,
        target: i32,
        resource: &str,
        pods: &[Arc<PodView>],
        metrics: &PodMetrics,
        now: Timestamp,
    ) -> Result<UtilizationProposal, String> {
        let Samples { groups, mut values } = samples(pods, metrics, resource, self, now)?;
        let requests = pod_requests(pods, resource)?;
        if values.is_empty() {
            return Err("did not receive metrics for targeted pods (pods might be unready)".into());
        }
        let (ratio, utilization, raw_average) = utilization_ratio(&values, &requests, target)?;
        let proposal = |replicas| UtilizationProposal { replicas, utilization, raw_average };
        let scale_up_with_unready = !groups.unready.is_empty() && ratio > 1.0;
        if !scale_up_with_unready && groups.missing.is_empty() {
            if (1.0 - ratio).abs() <= self.tolerance {
                return Ok(proposal(current));
            }
            return Ok(proposal(ceil(ratio * groups.ready as f64)));
        }
        if ratio < 1.0 {
            // Scaling down: the pods without samples count as using their
            // request (or the target, above 100%).
            let fallback = i64::from(target.max(100));
            for pod in &groups.missing {
                values.insert(pod.clone(), requests.get(pod).copied().unwrap_or(0) * fallback / 100);
            }
        } else if ratio > 1.0 {
            for pod in &groups.missing {
                values.insert(pod.clone(), 0);
            }
        }
        if scale_up_with_unready {
            for pod in &groups.unready {
                values.insert(pod.clone(), 0);
            }
        }
        let (new_ratio, _, _) = utilization_ratio(&values, &requests, target)?;
        Ok(proposal(self.damped(current, ratio, new_ratio, values.len())))
    }

    /// The replicas an `AverageValue` target of `target` thousandths asks
    /// for, and the current average (Kubernetes' `GetRawResourceReplicas`).
    pub fn raw_resource_replicas(
        &self,
        current: i32,
        target: i64,
        resource: &str,
        pods: &[Arc<PodView>],
        metrics: &PodMetrics,
        now: Timestamp,
    ) -> Result<(i32, i64), String> {
        let Samples { groups, mut values } = samples(pods, metrics, resource, self, now)?;
        if values.is_empty() {
            return Err("did not receive metrics for targeted pods (pods might be unready)".into());
        }
        let (ratio, average) = usage_ratio(&values, target);
        let scale_up_with_unready = !groups.unready.is_empty() && ratio > 1.0;
        if !scale_up_with_unready && groups.missing.is_empty() {
            if (1.0 - ratio).abs() <= self.tolerance {
                return Ok((current, average));
            }
            return Ok((ceil(ratio * groups.ready as f64), average));
        }
        let fallback = if ratio < 1.0 { target } else { 0 };
        for pod in &groups.missing {
            values.insert(pod.clone(), fallback);
        }
        if scale_up_with_unready {
            for pod in &groups.unready {
                values.insert(pod.clone(), 0);
            }
        }
        let (new_ratio, _) = usage_ratio(&values, target);
        Ok((self.damped(current, ratio, new_ratio, values.len()), average))
    }

    /// The second pass's answer: no change when it falls within the
    /// tolerance or reverses the first pass's direction.
    fn damped(&self, current: i32, ratio: f64, new_ratio: f64, samples: usize) -> i32 {
        if (1.0 - new_ratio).abs() <= self.tolerance
            || (ratio < 1.0 && new_ratio > 1.0)
            || (ratio > 1.0 && new_ratio < 1.0)
        {
            return current;
        }
        let replicas = ceil(new_ratio * samples as f64);
        if (new_ratio < 1.0 && replicas > current) || (new_ratio > 1.0 && replicas < current) {
            return current;
        }
        replicas
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    const CALC: Calculator = Calculator {
        tolerance: 0.1,
        cpu_initialization_period: Duration::from_secs(300),
        delay_of_initial_readiness: Duration::from_secs(30),
    };

    fn now() -> Timestamp {
        "2026-01-01T01:00:00Z".parse().unwrap()
    }

    fn ago(secs: i64) -> String {
        (now() - SignedDuration::from_secs(secs)).to_string()
    }

    /// How a test pod looks.
    #[derive(Clone, Copy)]
    enum State {
        /// Running, started an hour ago, ready for 50 minutes.
        Ready,
        /// Running, started an hour ago, never ready.
        NeverReady,
        /// Running, started 10 s ago, not ready yet.
        Starting,
        /// Pending.
        Pending,
        /// Being deleted.
        Deleting,
        /// Failed.
        Failed,
    }

    fn pod(name: &str, state: State, request: Option<&str>) -> Arc<PodView> {
        let resources = match request {
            Some(r) => json!({"requests": {"cpu": r, "memory": r}}),
            None => json!({}),
        };
        let (phase, ready, since, start) = match state {
            State::Ready | State::Deleting => ("Running", "True", ago(3000), ago(3600)),
            State::NeverReady => ("Running", "False", ago(3600), ago(3600)),
            State::Starting => ("Running", "False", ago(10), ago(10)),
            State::Pending => ("Pending", "False", ago(10), ago(10)),
            State::Failed => ("Failed", "False", ago(10), ago(3600)),
        };
        let mut v: Value = json!({"metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "resources": resources}]},
            "status": {"phase": phase, "startTime": start,
                       "conditions": [{"type": "Ready", "status": ready, "lastTransitionTime": since}]}});
        if matches!(state, State::Deleting) {
            v["metadata"]["deletionTimestamp"] = json!(ago(1));
        }
        Arc::new(serde_json::from_value(v).unwrap())
    }

    fn metrics(values: &[(&str, i64)]) -> PodMetrics {
        values
            .iter()
            .map(|(n, v)| (n.to_string(), PodMetric { value: *v, timestamp: now(), window: Duration::from_secs(30) }))
            .collect()
    }

    struct Case {
        name: &'static str,
        current: i32,
        target: i32,
        pods: Vec<(State, Option<&'static str>)>,
        /// Usage in millicores by pod index; absent = no sample.
        usage: Vec<Option<i64>>,
        want: Result<(i32, i32), &'static str>,
    }

    fn run(case: &Case, resource: &str) -> Result<(i32, i32), String> {
        let pods: Vec<_> = case.pods.iter().enumerate().map(|(i, (s, r))| pod(&format!("p{i}"), *s, *r)).collect();
        let names: Vec<String> = (0..case.pods.len()).map(|i| format!("p{i}")).collect();
        let values: Vec<(&str, i64)> =
            case.usage.iter().enumerate().filter_map(|(i, u)| u.map(|u| (names[i].as_str(), u))).collect();
        CALC.resource_replicas(case.current, case.target, resource, &pods, &metrics(&values), now())
            .map(|p| (p.replicas, p.utilization))
    }

    #[test]
    fn utilization_replicas_follow_kubernetes() {
        use State::*;
        let r = Some("1");
        let cases = [
            Case {
                name: "scale up",
                current: 3,
                target: 30,
                pods: vec![(Ready, r); 3],
                usage: vec![Some(300), Some(500), Some(700)],
                want: Ok((5, 50)),
            },
            Case {
                name: "scale down",
                current: 5,
                target: 50,
                pods: vec![(Ready, r); 5],
                usage: vec![Some(100), Some(300), Some(500), Some(250), Some(250)],
                want: Ok((3, 28)),
            },
            Case {
                name: "within tolerance",
                current: 3,
                target: 100,
                pods: vec![(Ready, r); 3],
                usage: vec![Some(1050), Some(1050), Some(1000)],
                want: Ok((3, 103)),
            },
            Case {
                name: "unready pods are ignored on scale up, then count as idle",
                current: 3,
                target: 30,
                pods: vec![(Ready, r), (Ready, r), (Starting, r)],
                usage: vec![Some(300), Some(500), Some(1000)],
                want: Ok((3, 40)),
            },
            Case {
                name: "a never-ready pod is ignored on scale up",
                current: 3,
                target: 30,
                pods: vec![(Ready, r), (Ready, r), (NeverReady, r)],
                usage: vec![Some(600), Some(900), Some(0)],
                want: Ok((5, 75)),
            },
            Case {
                name: "pending pods count as idle on scale up",
                current: 3,
                target: 50,
                pods: vec![(Ready, r), (Ready, r), (Pending, r)],
                usage: vec![Some(900), Some(900), None],
                want: Ok((4, 90)),
            },
            Case {
                name: "missing metrics count as 100% on scale down",
                current: 4,
                target: 50,
                pods: vec![(Ready, r); 4],
                usage: vec![Some(100), Some(100), Some(100), None],
                want: Ok((3, 10)),
            },
            Case {
                name: "missing metrics count as 0% on scale up",
                current: 4,
                target: 50,
                pods: vec![(Ready, r); 4],
                usage: vec![Some(900), Some(900), Some(900), None],
                want: Ok((6, 90)),
            },
            Case {
                name: "missing metrics that reverse the direction: no change",
                current: 2,
                target: 50,
                pods: vec![(Ready, r); 2],
                usage: vec![Some(600), None],
                want: Ok((2, 60)),
            },
            Case {
                name: "deleted and failed pods are ignored",
                current: 3,
                target: 50,
                pods: vec![(Ready, r), (Deleting, r), (Failed, r)],
                usage: vec![Some(1000), Some(0), Some(0)],
                want: Ok((2, 100)),
            },
            Case {
                name: "a missing request",
                current: 1,
                target: 50,
                pods: vec![(Ready, None)],
                usage: vec![Some(100)],
                want: Err("missing request for cpu in container c of Pod p0"),
            },
            Case {
                name: "no samples of ready pods",
                current: 1,
                target: 50,
                pods: vec![(Starting, r)],
                usage: vec![Some(900)],
                want: Err("did not receive metrics for targeted pods (pods might be unready)"),
            },
            Case {
                name: "no pods",
                current: 1,
                target: 50,
                pods: vec![],
                usage: vec![],
                want: Err("no pods returned by selector while calculating replica count"),
            },
        ];
        for case in &cases {
            assert_eq!(run(case, "cpu"), case.want.map_err(String::from), "{}", case.name);
        }
    }

    #[test]
    fn memory_counts_unready_pods() {
        use State::*;
        let case = Case {
            name: "memory",
            current: 3,
            target: 30,
            pods: vec![(Ready, Some("1")), (Ready, Some("1")), (Starting, Some("1"))],
            usage: vec![Some(300), Some(500), Some(1000)],
            want: Ok((6, 60)),
        };
        assert_eq!(run(&case, "memory"), case.want.map_err(String::from));
    }

    #[test]
    fn a_sample_taken_before_a_window_after_readiness_is_unready() {
        let mut p = (*pod("p", State::Starting, Some("1"))).clone();
        let cond = &mut p.status.as_mut().unwrap().conditions.as_mut().unwrap()[0];
        cond.status = "True".into();
        let pods = vec![Arc::new(p)];
        let m = metrics(&[("p", 500)]);
        assert_eq!(group_pods(&pods, &m, "cpu", &CALC, now()).unready.len(), 1);
        let later = now() + SignedDuration::from_secs(60);
        let m: PodMetrics = m.into_iter().map(|(k, v)| (k, PodMetric { timestamp: later, ..v })).collect();
        assert_eq!(group_pods(&pods, &m, "cpu", &CALC, later).ready, 1);
    }

    #[test]
    fn average_value_replicas() {
        let pods: Vec<_> = (0..3).map(|i| pod(&format!("p{i}"), State::Ready, Some("1"))).collect();
        let m = metrics(&[("p0", 400), ("p1", 500), ("p2", 600)]);
        assert_eq!(CALC.raw_resource_replicas(3, 250, "memory", &pods, &m, now()), Ok((6, 500)));
        assert_eq!(CALC.raw_resource_replicas(3, 480, "memory", &pods, &m, now()), Ok((3, 500)));
        let m = metrics(&[("p0", 100), ("p1", 100)]);
        // The pod without a sample counts as at target on a scale-down.
        assert_eq!(CALC.raw_resource_replicas(3, 400, "memory", &pods, &m, now()), Ok((2, 100)));
    }
}
