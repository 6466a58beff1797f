//! What the Job controller decides from a Job and its pods alone (no I/O):
//! the counts, how many pods should run, the back-off before replacing
//! failed pods, whether the Job failed or completed, and its conditions.
//!
//! Finished pods are counted by the pods present, without a tracking
//! finalizer (as Kubernetes did before 1.26): `succeeded` is the number of
//! the Job's pods in phase Succeeded, `failed` the number in phase Failed.
//! Each finished pod counts exactly once while it exists; once the Job is
//! finished its status is final. A finished pod deleted while the Job still
//! runs stops counting (a deleted Succeeded pod is run again), and a pod
//! deleted before it finished is replaced without counting as a failure.

use crate::controllers::pod_state::{self, PodView, phase};
use k8s_openapi::api::batch::v1::{Job, JobCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use std::sync::Arc;
use std::time::Duration;

/// The condition type of a Job that completed.
pub const COMPLETE: &str = "Complete";
/// The condition type of a Job that failed.
pub const FAILED: &str = "Failed";
/// The interim condition: the Job will fail once its pods have stopped.
pub const FAILURE_TARGET: &str = "FailureTarget";
/// The interim condition: the Job will complete once its pods have stopped.
pub const SUCCESS_CRITERIA_MET: &str = "SuccessCriteriaMet";
/// The condition type of a suspended Job.
pub const SUSPENDED: &str = "Suspended";
/// The reason of a Job whose failed pods exceed spec.backoffLimit.
pub const BACKOFF_LIMIT_EXCEEDED: &str = "BackoffLimitExceeded";
/// The reason of a Job that ran longer than spec.activeDeadlineSeconds.
pub const DEADLINE_EXCEEDED: &str = "DeadlineExceeded";
/// The reason of a Job that reached spec.completions.
pub const COMPLETIONS_REACHED: &str = "CompletionsReached";

/// Why a Job failed: the condition reason and Kubernetes' message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// The condition reason (and event reason).
    pub reason: &'static str,
    /// Kubernetes' message.
    pub message: &'static str,
}

/// Too many failed pods (or container restarts, with restartPolicy OnFailure).
pub const BACKOFF_FAILURE: Failure =
    Failure { reason: BACKOFF_LIMIT_EXCEEDED, message: "Job has reached the specified backoff limit" };
/// Ran longer than activeDeadlineSeconds.
pub const DEADLINE_FAILURE: Failure =
    Failure { reason: DEADLINE_EXCEEDED, message: "Job was active longer than specified deadline" };
/// The message of the Complete and SuccessCriteriaMet conditions.
pub const COMPLETIONS_MESSAGE: &str = "Reached expected number of succeeded pods";

/// A Job's pods sorted by state.
#[derive(Debug, Default)]
pub struct PodCounts {
    /// Pods neither finished nor being deleted.
    pub active: Vec<Arc<PodView>>,
    /// Active pods that are Ready.
    pub ready: i32,
    /// Pods in phase Succeeded.
    pub succeeded: i32,
    /// Pods in phase Failed.
    pub failed: i32,
    /// Pods being deleted that have not finished.
    pub terminating: i32,
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Sorts `pods` (the Job's) by state.
pub fn count_pods(pods: &[Arc<PodView>]) -> PodCounts {
    let mut c = PodCounts::default();
    for pod in pods {
        match phase(pod) {
            "Succeeded" => c.succeeded += 1,
            "Failed" => c.failed += 1,
            _ if pod.metadata.deletion_timestamp.is_some() => c.terminating += 1,
            _ => c.active.push(pod.clone()),
        }
    }
    c.ready = count(c.active.iter().filter(|p| pod_state::is_ready(p)).count());
    c
}

/// When a finished pod finished (Kubernetes' `getFinishedTime`): the last
/// container's finishedAt, else when Ready turned False, else its deletion
/// (less the grace period), else its creation.
pub fn finish_time(pod: &PodView) -> Timestamp {
    let status = pod.status.as_ref();
    let containers = status.and_then(|s| s.container_statuses.as_deref()).unwrap_or_default();
    let finished: Option<Vec<Timestamp>> = containers
        .iter()
        .map(|c| c.state.as_ref().and_then(|s| s.terminated.as_ref()).and_then(|t| t.finished_at.as_ref()).map(|t| t.0))
        .collect();
    if let Some(latest) = finished.and_then(|f| f.into_iter().max()) {
        return latest;
    }
    let not_ready = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready" && c.status == "False"))
        .and_then(|c| c.last_transition_time.as_ref());
    if let Some(t) = not_ready {
        return t.0;
    }
    if let Some(deleted) = &pod.metadata.deletion_timestamp {
        let grace = pod.metadata.deletion_grace_period_seconds.unwrap_or(0);
        return Timestamp::from_second(deleted.0.as_second().saturating_sub(grace)).unwrap_or(deleted.0);
    }
    pod.metadata.creation_timestamp.as_ref().map_or(Timestamp::UNIX_EPOCH, |t| t.0)
}

/// How long the Job must still wait before creating pods (Kubernetes' pod
/// failure back-off): with `n` pods failed since the last success, `base`
/// doubled `n - 1` times (at most `max`) after the last failure. None when
/// it need not wait.
pub fn creation_delay(pods: &[Arc<PodView>], base: Duration, max: Duration, now: Timestamp) -> Option<Duration> {
    let last_success = pods.iter().filter(|p| phase(p) == "Succeeded").map(|p| finish_time(p)).max();
    let failures: Vec<Timestamp> = pods
        .iter()
        .filter(|p| phase(p) == "Failed")
        .map(|p| finish_time(p))
        .filter(|t| last_success.is_none_or(|s| *t > s))
        .collect();
    let last_failure = failures.iter().max()?;
    let mut delay = base;
    for _ in 1..failures.len() {
        delay = (delay * 2).min(max);
        if delay == max {
            break;
        }
    }
    let delay = delay.min(max);
    let elapsed = u64::try_from(now.as_millisecond().saturating_sub(last_failure.as_millisecond())).unwrap_or(0);
    let elapsed = Duration::from_millis(elapsed);
    (elapsed < delay).then(|| delay - elapsed)
}

/// How many pods should be running: parallelism, but no more than the
/// completions still missing; with no completions set, parallelism until the
/// first success and then only the pods already running.
pub fn want_active(completions: Option<i32>, parallelism: i32, succeeded: i32, active: i32) -> i32 {
    match completions {
        None if succeeded > 0 => active,
        None => parallelism,
        Some(c) => (c - succeeded).min(parallelism).max(0),
    }
}

/// Whether the Job has enough successes and nothing still running.
pub fn is_complete(completions: Option<i32>, succeeded: i32, active: i32) -> bool {
    active == 0
        && match completions {
            None => succeeded > 0,
            Some(c) => succeeded >= c,
        }
}

/// With restartPolicy OnFailure, whether the containers of the running
/// pods restarted backoffLimit times (any restart when it is 0).
fn past_backoff_limit_on_failure(job: &Job, pods: &[Arc<PodView>]) -> bool {
    let spec = job.spec.as_ref();
    if spec.and_then(|s| s.template.spec.as_ref()).and_then(|s| s.restart_policy.as_deref()) != Some("OnFailure") {
        return false;
    }
    let restarts: i32 = pods
        .iter()
        .filter(|p| matches!(phase(p), "Running" | "Pending"))
        .filter_map(|p| p.status.as_ref())
        .flat_map(|s| s.init_container_statuses.iter().flatten().chain(s.container_statuses.iter().flatten()))
        .map(|c| c.restart_count)
        .sum();
    let limit = spec.and_then(|s| s.backoff_limit).unwrap_or(6);
    if limit == 0 { restarts > 0 } else { restarts >= limit }
}

/// `status.startTime` + activeDeadlineSeconds, when both are set.
fn deadline(job: &Job) -> Option<i64> {
    let seconds = job.spec.as_ref()?.active_deadline_seconds?;
    let start = job.status.as_ref()?.start_time.as_ref()?;
    Some(start.0.as_millisecond().saturating_add(seconds.saturating_mul(1000)))
}

/// Whether (and why) a running Job has failed: more failed pods than
/// backoffLimit (or restarts, see above), or past its active deadline.
pub fn failure(job: &Job, failed: i32, pods: &[Arc<PodView>], now: Timestamp) -> Option<Failure> {
    let limit = job.spec.as_ref().and_then(|s| s.backoff_limit).unwrap_or(6);
    if failed > limit || past_backoff_limit_on_failure(job, pods) {
        return Some(BACKOFF_FAILURE);
    }
    if !is_suspended(job) && deadline(job).is_some_and(|d| now.as_millisecond() >= d) {
        return Some(DEADLINE_FAILURE);
    }
    None
}

/// How long until a running Job reaches its active deadline.
pub fn until_deadline(job: &Job, now: Timestamp) -> Option<Duration> {
    if is_suspended(job) {
        return None;
    }
    let left = deadline(job)?.saturating_sub(now.as_millisecond());
    Some(Duration::from_millis(u64::try_from(left).unwrap_or(0)))
}

/// `spec.suspend`.
pub fn is_suspended(job: &Job) -> bool {
    job.spec.as_ref().and_then(|s| s.suspend) == Some(true)
}

/// The condition of type `type_` if its status is True.
pub fn true_condition<'a>(job: &'a Job, type_: &str) -> Option<&'a JobCondition> {
    job.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == type_ && c.status == "True")
}

/// Whether the Job completed or failed: it is then left as it is.
pub fn is_finished(job: &Job) -> bool {
    true_condition(job, COMPLETE).is_some() || true_condition(job, FAILED).is_some()
}

/// A new condition, probed and transitioned at `now`.
pub fn condition(type_: &str, status: &str, reason: &str, message: &str, now: Timestamp) -> JobCondition {
    JobCondition {
        type_: type_.into(),
        status: status.into(),
        reason: (!reason.is_empty()).then(|| reason.into()),
        message: (!message.is_empty()).then(|| message.into()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// Sets the condition `type_` (Kubernetes' `ensureJobConditionStatus`):
/// replaces one of that type whose status, reason or message differ; adds
/// it when missing, unless its status is False. Returns whether anything
/// changed.
pub fn ensure_condition(
    conditions: &mut Vec<JobCondition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> bool {
    let new = condition(type_, status, reason, message, now);
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) if (c.status.as_str(), &c.reason, &c.message) == (status, &new.reason, &new.message) => false,
        Some(c) => {
            *c = new;
            true
        }
        None if status == "False" => false,
        None => {
            conditions.push(new);
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn pod(phase: &str, finished: &str) -> Arc<PodView> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": "p", "creationTimestamp": "2026-01-01T00:00:00Z"},
                "status": {"phase": phase, "containerStatuses": [{"name": "c", "image": "i", "imageID": "", "ready": false,
                    "restartCount": 0, "state": {"terminated": {"exitCode": 1, "finishedAt": finished}}}]}}))
            .unwrap(),
        )
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn job(spec: Value, status: Value) -> Job {
        let mut spec = spec;
        spec["template"] = json!({"spec": {"containers": [], "restartPolicy": "Never"}});
        serde_json::from_value(json!({"metadata": {"name": "j"}, "spec": spec, "status": status})).unwrap()
    }

    #[test]
    fn pods_are_counted_by_phase_and_deletion() {
        let running: Arc<PodView> = Arc::new(
            serde_json::from_value(json!({"metadata": {}, "status": {"phase": "Running",
                "conditions": [{"type": "Ready", "status": "True"}]}}))
            .unwrap(),
        );
        let mut terminating = (*running).clone();
        terminating.metadata.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
        let pods = [
            running.clone(),
            Arc::new(terminating),
            pod("Succeeded", "2026-01-01T00:01:00Z"),
            pod("Failed", "2026-01-01T00:01:00Z"),
            pod("Failed", "2026-01-01T00:02:00Z"),
        ];
        let c = count_pods(&pods);
        assert_eq!((c.active.len(), c.ready, c.succeeded, c.failed, c.terminating), (1, 1, 1, 2, 1));
    }

    #[test]
    fn failed_pods_are_replaced_after_a_doubling_delay_capped_and_reset_by_success() {
        let (base, max) = (Duration::from_secs(10), Duration::from_secs(360));
        let one = [pod("Failed", "2026-01-01T00:00:00Z")];
        assert_eq!(creation_delay(&one, base, max, at("2026-01-01T00:00:04Z")), Some(Duration::from_secs(6)));
        assert_eq!(creation_delay(&one, base, max, at("2026-01-01T00:00:10Z")), None);
        let three = [
            pod("Failed", "2026-01-01T00:00:00Z"),
            pod("Failed", "2026-01-01T00:00:20Z"),
            pod("Failed", "2026-01-01T00:01:00Z"),
        ];
        assert_eq!(creation_delay(&three, base, max, at("2026-01-01T00:01:00Z")), Some(Duration::from_secs(40)));
        let many: Vec<Arc<PodView>> = (0..10).map(|i| pod("Failed", &format!("2026-01-01T00:0{i}:00Z"))).collect();
        assert_eq!(creation_delay(&many, base, max, at("2026-01-01T00:09:00Z")), Some(max), "capped");
        let mut after_success = three.to_vec();
        after_success.push(pod("Succeeded", "2026-01-01T00:00:30Z"));
        assert_eq!(
            creation_delay(&after_success, base, max, at("2026-01-01T00:01:00Z")),
            Some(Duration::from_secs(10)),
            "only the failure after the last success counts"
        );
        assert_eq!(
            creation_delay(&[pod("Succeeded", "2026-01-01T00:00:00Z")], base, max, at("2026-01-01T00:00:00Z")),
            None
        );
    }

    #[test]
    fn active_pods_are_bounded_by_parallelism_and_remaining_completions() {
        assert_eq!(want_active(Some(4), 2, 0, 0), 2);
        assert_eq!(want_active(Some(4), 2, 3, 1), 1);
        assert_eq!(want_active(Some(4), 2, 5, 0), 0);
        assert_eq!(want_active(None, 3, 0, 1), 3, "a work queue runs parallelism pods");
        assert_eq!(want_active(None, 3, 1, 2), 2, "until one succeeds; then no new ones");
        assert!(is_complete(Some(4), 4, 0) && !is_complete(Some(4), 4, 1) && !is_complete(Some(4), 3, 0));
        assert!(is_complete(None, 1, 0) && !is_complete(None, 0, 0));
    }

    #[test]
    fn jobs_fail_past_the_backoff_limit_or_the_deadline() {
        let now = at("2026-01-01T00:01:00Z");
        let j =
            job(json!({"backoffLimit": 2, "activeDeadlineSeconds": 100}), json!({"startTime": "2026-01-01T00:00:00Z"}));
        assert_eq!(failure(&j, 2, &[], now), None);
        assert_eq!(failure(&j, 3, &[], now), Some(BACKOFF_FAILURE));
        assert_eq!(until_deadline(&j, now), Some(Duration::from_secs(40)));
        assert_eq!(failure(&j, 0, &[], at("2026-01-01T00:01:40Z")), Some(DEADLINE_FAILURE));
        let mut on_failure = j.clone();
        on_failure.spec.as_mut().unwrap().template.spec.as_mut().unwrap().restart_policy = Some("OnFailure".into());
        let restarting: Arc<PodView> = Arc::new(
            serde_json::from_value(json!({"metadata": {}, "status": {"phase": "Running", "containerStatuses": [
                {"name": "c", "image": "i", "imageID": "", "ready": false, "restartCount": 2}]}}))
            .unwrap(),
        );
        assert_eq!(failure(&on_failure, 0, &[restarting], now), Some(BACKOFF_FAILURE), "restarts count with OnFailure");
    }

    #[test]
    fn conditions_change_only_when_their_status_reason_or_message_does() {
        let (t0, t1) = (at("2026-01-01T00:00:00Z"), at("2026-01-01T00:00:05Z"));
        let mut cs = Vec::new();
        assert!(!ensure_condition(&mut cs, SUSPENDED, "False", "JobResumed", "Job resumed", t0), "False is not added");
        assert!(ensure_condition(&mut cs, SUSPENDED, "True", "JobSuspended", "Job suspended", t0));
        assert!(!ensure_condition(&mut cs, SUSPENDED, "True", "JobSuspended", "Job suspended", t1));
        assert_eq!(cs[0].last_transition_time, Some(Time(t0)));
        assert!(ensure_condition(&mut cs, SUSPENDED, "False", "JobResumed", "Job resumed", t1));
        assert_eq!((cs.len(), cs[0].status.as_str(), cs[0].last_transition_time.clone()), (1, "False", Some(Time(t1))));
    }
}
