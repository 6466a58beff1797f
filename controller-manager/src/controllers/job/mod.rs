//! The Job controller: runs a Job's pods to completion, as Kubernetes'
//! `pkg/controller/job` does for NonIndexed Jobs.
//!
//! For each Job that has not finished, [`reconcile`]:
//! 1. claims the pods of its namespace that its selector matches (adopting
//!    orphans, releasing pods that stopped matching) and counts them
//!    ([`tracking`]: by the pods present, without a tracking finalizer);
//! 2. sets `startTime`, and fails the Job — condition `FailureTarget`, its
//!    active pods counted as failed and deleted, then `Failed` once none is
//!    left — when more pods failed than `backoffLimit` allows
//!    (`BackoffLimitExceeded`) or it ran past `activeDeadlineSeconds`
//!    (`DeadlineExceeded`), as Kubernetes 1.33 does;
//! 3. otherwise, unless its own writes are in flight ([`Expectations`]),
//!    keeps `min(parallelism, completions - succeeded)` pods running:
//!    creates the missing ones in slow-start batches, but after failures
//!    only once the back-off has passed (10 s doubling per failure since the
//!    last success, up to 6 min; [`Action::RequeueAfter`] brings it back),
//!    and deletes the surplus (all of them while `suspend` is set);
//! 4. once enough pods succeeded and none runs: `SuccessCriteriaMet`, then
//!    `Complete` (reason `CompletionsReached`) with `completionTime`;
//! 5. writes status (active, ready, succeeded, failed, terminating,
//!    startTime, completionTime, conditions) when it changed, conditional on
//!    the resourceVersion it read: a stale cache gets a Conflict and waits
//!    for the newer Job instead of finishing it twice.
//!
//! Not implemented: Indexed completion mode, podFailurePolicy,
//! backoffLimitPerIndex, successPolicy (the Job gets a Warning event and is
//! left alone), and Jobs whose `managedBy` names another controller are
//! skipped as in Kubernetes. Deleting finished Jobs after
//! `ttlSecondsAfterFinished` is the [`crate::controllers::ttlafterfinished`]
//! controller's job.

pub mod tracking;

use crate::controllers::pod_state::{self, PodView};
use crate::controllers::{Controller, ControllerContext, Error};
use k8s_openapi::api::batch::v1::{Job, JobStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use rkube_api::selector::Selector;
use rkube_api::strategy::workloads::JOB_NAME_LABEL;
use rkube_client::controller::{
    Action, Expectations, Observations, PodControl, claim, controller_ref, plan_claim, pod_from_template,
    spawn_workers, status_patch,
};
use rkube_client::events::{EventRecorder, EventType, object_ref};
use rkube_client::informers::{enqueue_all, forward, forward_events, owner_key, owner_keys};
use rkube_client::leader::parse_duration;
use rkube_client::{Api, ObjectKey, Reason, Store, WorkQueue};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info};
use tracking::{
    COMPLETE, COMPLETIONS_MESSAGE, COMPLETIONS_REACHED, FAILED, FAILURE_TARGET, Failure, PodCounts,
    SUCCESS_CRITERIA_MET, SUSPENDED, condition, count_pods, ensure_condition, is_finished, is_suspended,
    true_condition,
};

/// The controller's name in `--controllers`.
pub const NAME: &str = "job";
/// `source.component` of its Events.
pub const COMPONENT: &str = "job-controller";
/// The label with the Job's uid on its pods (and the legacy one).
pub const CONTROLLER_UID_LABELS: [&str; 2] = ["batch.kubernetes.io/controller-uid", "controller-uid"];
/// The legacy label with the Job's name on its pods.
pub const LEGACY_JOB_NAME_LABEL: &str = "job-name";
/// The `spec.managedBy` value that means this controller.
const MANAGED_BY_US: &str = "kubernetes.io/job-controller";
/// Most pods created or deleted by one reconcile (Kubernetes' limit).
pub const MAX_POD_CHANGES: usize = 500;

/// The registry entry.
pub const CONTROLLER: Controller = Controller {
    name: NAME,
    about: "runs each Job's pods until enough succeed, or it fails",
    enabled_by_default: true,
    check,
    start,
};

/// The Job controller's flags.
#[derive(Debug, Clone, clap::Args)]
#[group(skip)]
#[command(next_help_heading = "Job controller")]
pub struct Flags {
    /// Jobs reconciled at once.
    #[arg(long, env = "RKUBE_CONCURRENT_JOB_SYNCS", default_value_t = 5)]
    pub concurrent_job_syncs: usize,
    /// How long a Job waits after a pod failed before it creates a
    /// replacement; the wait doubles with each failure since the last
    /// success.
    #[arg(long, env = "RKUBE_JOB_POD_FAILURE_BACKOFF", default_value = "10s", value_parser = parse_duration)]
    pub job_pod_failure_backoff: Duration,
    /// The longest wait before a failed pod is replaced.
    #[arg(long, env = "RKUBE_JOB_POD_FAILURE_MAX_BACKOFF", default_value = "6m", value_parser = parse_duration)]
    pub job_pod_failure_max_backoff: Duration,
}

/// Refuses a back-off that is zero or above its cap.
fn check(flags: &crate::controllers::Flags) -> Result<(), String> {
    let f = &flags.job;
    if f.job_pod_failure_backoff.is_zero() {
        return Err("--job-pod-failure-backoff: must be greater than 0".into());
    }
    if f.job_pod_failure_max_backoff < f.job_pod_failure_backoff {
        return Err(format!(
            "--job-pod-failure-max-backoff={:?}: must not be less than --job-pod-failure-backoff={:?}",
            f.job_pod_failure_max_backoff, f.job_pod_failure_backoff
        ));
    }
    Ok(())
}

/// The state shared by the workers and the watch handlers.
pub struct Context {
    jobs: Store<Job>,
    pods: Store<PodView>,
    client: rkube_client::Client,
    pod_control: PodControl,
    expectations: Expectations,
    recorder: Arc<EventRecorder>,
    /// The first pod-failure back-off and its cap.
    backoff: (Duration, Duration),
}

/// The Job's selector; an error says what is wrong with it.
fn selector_of(job: &Job) -> Result<Selector, String> {
    let ls = job.spec.as_ref().and_then(|s| s.selector.as_ref()).ok_or("spec.selector: Required value")?;
    Selector::from_label_selector(ls).map_err(|e| format!("spec.selector: {}", e.message))
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// A count as Kubernetes stores it: omitted when 0.
fn omit_zero(n: i32) -> Option<i32> {
    (n != 0).then_some(n)
}

/// Events (type, reason, message) to record once the status that goes with
/// them is written.
type Events = Vec<(EventType, String, String)>;

/// Runs the Job `key`'s pods and keeps its status current; see the module
/// docs.
pub async fn reconcile(key: ObjectKey, ctx: Arc<Context>) -> Result<Action, Error> {
    let Some(job) = ctx.jobs.get(&key) else {
        ctx.expectations.forget(&key);
        return Ok(Action::AwaitChange);
    };
    if is_finished(&job) {
        return Ok(Action::AwaitChange);
    }
    let Some(spec) = job.spec.as_ref() else { return Ok(Action::AwaitChange) };
    if spec.managed_by.as_deref().is_some_and(|m| m != MANAGED_BY_US) {
        return Ok(Action::AwaitChange);
    }
    if let Some(unsupported) = unsupported_feature(&job) {
        ctx.recorder.warning(
            job.as_ref(),
            "UnsupportedJobFeature",
            format!("rkube does not run Jobs with {unsupported}"),
        );
        return Ok(Action::AwaitChange);
    }
    let selector = selector_of(&job).map_err(|message| Error::InvalidSelector { key: key.clone(), message })?;
    // Read before the pods, so that a pod arriving in between defers the
    // work to the next reconcile rather than being created twice.
    let satisfied = ctx.expectations.satisfied(&key);

    let owner = controller_ref(job.as_ref());
    let deleting = job.metadata.deletion_timestamp.is_some();
    let plan = plan_claim(&owner, deleting, &selector, ctx.pods.list_namespace(&key.namespace));
    let can_adopt = if plan.adopt.is_empty() {
        false
    } else {
        let live = jobs_api(&ctx, &key).get_opt(&key.name).await.map_err(Error::api(&key, "reading"))?;
        live.is_some_and(|l| l.metadata.uid == job.metadata.uid && l.metadata.deletion_timestamp.is_none())
    };
    let pods_api = Api::<PodView>::namespaced(ctx.client.clone(), &key.namespace);
    let pods = claim(&pods_api, &owner, plan, can_adopt).await.map_err(Error::api(&key, "claiming pods"))?;
    let counts = count_pods(&pods);
    let now = Timestamp::now();

    let old = job.status.clone().unwrap_or_default();
    let mut status = old.clone();
    let mut events = Events::new();
    let mut action = Action::AwaitChange;
    let mut failure_error = None;

    if let Some(target) = true_condition(&job, FAILURE_TARGET).cloned() {
        // Failing: the counts were settled when FailureTarget was set; stop
        // what still runs, then declare the Job Failed.
        let (deleted, err) = delete_pods(&ctx, &key, &job, &counts.active).await;
        failure_error = err;
        let (active, terminating) = (count(counts.active.len()) - deleted, counts.terminating + deleted);
        status.active = omit_zero(active);
        status.ready = Some(counts.ready.min(active));
        status.terminating = Some(terminating);
        if active == 0 && terminating == 0 {
            let (reason, message) = (target.reason.unwrap_or_default(), target.message.unwrap_or_default());
            let conditions = status.conditions.get_or_insert_with(Vec::new);
            ensure_condition(conditions, FAILED, "True", &reason, &message, now);
            events.push((EventType::Warning, reason, message));
        }
    } else if true_condition(&job, SUCCESS_CRITERIA_MET).is_some() {
        let (deleted, err) = delete_pods(&ctx, &key, &job, &counts.active).await;
        failure_error = err;
        set_counts(&mut status, &counts, count(counts.active.len()) - deleted, counts.terminating + deleted);
        if status.active.is_none() && status.terminating == Some(0) {
            complete(&mut status, spec.completions, now, &mut events);
        }
    } else {
        if status.start_time.is_none() && !is_suspended(&job) {
            status.start_time = Some(Time(now));
        }
        let mut started = (*job).clone();
        started.status = Some(status.clone());
        if let Some(failure) = tracking::failure(&started, counts.failed, &pods, now) {
            return fail(&ctx, &key, &job, status, &counts, failure, now).await;
        }
        if let Some(left) = tracking::until_deadline(&started, now) {
            action = Action::RequeueAfter(left);
        }
        let mut active = count(counts.active.len());
        let mut terminating = counts.terminating;
        let managed = satisfied && !deleting;
        if managed {
            let outcome = manage(&ctx, &key, &job, &counts, &pods, now).await;
            active = outcome.active;
            terminating += outcome.deleted;
            failure_error = outcome.error;
            if let Some(wait) = outcome.wait {
                action = earliest(action, wait);
            }
        }
        set_counts(&mut status, &counts, active, terminating);
        if tracking::is_complete(spec.completions, counts.succeeded, active) {
            let conditions = status.conditions.get_or_insert_with(Vec::new);
            conditions.push(condition(SUCCESS_CRITERIA_MET, "True", COMPLETIONS_REACHED, COMPLETIONS_MESSAGE, now));
            if terminating == 0 {
                complete(&mut status, spec.completions, now, &mut events);
            }
        } else if managed {
            suspend_conditions(&mut status, is_suspended(&job), now, &mut events);
        }
    }

    normalize(&mut status);
    if status != old && !write_status(&ctx, &key, &job, &status).await? {
        return Ok(Action::AwaitChange);
    }
    for (type_, reason, message) in events {
        ctx.recorder.record(&object_ref(job.as_ref()), type_, &reason, &message);
    }
    match failure_error {
        Some(e) => Err(e),
        None => Ok(action),
    }
}

/// What a Job uses that rkube does not implement.
fn unsupported_feature(job: &Job) -> Option<&'static str> {
    let spec = job.spec.as_ref()?;
    if spec.completion_mode.as_deref() == Some("Indexed") {
        Some("completionMode Indexed")
    } else if spec.pod_failure_policy.is_some() {
        Some("a podFailurePolicy")
    } else if spec.backoff_limit_per_index.is_some() {
        Some("backoffLimitPerIndex")
    } else if spec.success_policy.is_some() {
        Some("a successPolicy")
    } else {
        None
    }
}

fn earliest(action: Action, wait: Duration) -> Action {
    match action {
        Action::RequeueAfter(d) => Action::RequeueAfter(d.min(wait)),
        Action::AwaitChange => Action::RequeueAfter(wait),
    }
}

fn set_counts(status: &mut JobStatus, counts: &PodCounts, active: i32, terminating: i32) {
    status.active = omit_zero(active);
    status.ready = Some(counts.ready.min(active));
    status.succeeded = omit_zero(counts.succeeded);
    status.failed = omit_zero(counts.failed);
    status.terminating = Some(terminating);
}

/// Adds `Complete` (after `SuccessCriteriaMet`) with the completion time,
/// and its events.
fn complete(status: &mut JobStatus, completions: Option<i32>, now: Timestamp, events: &mut Events) {
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    ensure_condition(conditions, COMPLETE, "True", COMPLETIONS_REACHED, COMPLETIONS_MESSAGE, now);
    status.completion_time = Some(Time(now));
    let succeeded = status.succeeded.unwrap_or(0);
    if completions.is_some_and(|c| succeeded > c) {
        let message = "Too many succeeded pods running after completion count reached".to_string();
        events.push((EventType::Warning, "TooManySucceededPods".into(), message));
    }
    events.push((EventType::Normal, "Completed".into(), "Job completed".into()));
}

/// The Suspended condition follows `spec.suspend`; resuming restarts the
/// clock of activeDeadlineSeconds.
fn suspend_conditions(status: &mut JobStatus, suspended: bool, now: Timestamp, events: &mut Events) {
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    if suspended {
        if ensure_condition(conditions, SUSPENDED, "True", "JobSuspended", "Job suspended", now) {
            events.push((EventType::Normal, "Suspended".into(), "Job suspended".into()));
        }
    } else if ensure_condition(conditions, SUSPENDED, "False", "JobResumed", "Job resumed", now) {
        events.push((EventType::Normal, "Resumed".into(), "Job resumed".into()));
        status.start_time = Some(Time(now));
    }
}

/// Kubernetes omits an empty condition list.
fn normalize(status: &mut JobStatus) {
    if status.conditions.as_ref().is_some_and(Vec::is_empty) {
        status.conditions = None;
    }
}

/// Starts failing the Job: writes `FailureTarget` with the active pods
/// counted as failed (and `Failed` at once when nothing runs), then deletes
/// the active pods. The write comes first and is conditional, so a stale
/// cache cannot stop the pods of a Job that is not failing.
async fn fail(
    ctx: &Context,
    key: &ObjectKey,
    job: &Job,
    mut status: JobStatus,
    counts: &PodCounts,
    failure: Failure,
    now: Timestamp,
) -> Result<Action, Error> {
    let active = count(counts.active.len());
    status.failed = omit_zero(counts.failed + active);
    status.succeeded = omit_zero(counts.succeeded);
    status.active = None;
    status.ready = Some(0);
    status.terminating = Some(counts.terminating + active);
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    conditions.push(condition(FAILURE_TARGET, "True", failure.reason, failure.message, now));
    let finished = active == 0 && counts.terminating == 0;
    if finished {
        conditions.push(condition(FAILED, "True", failure.reason, failure.message, now));
    }
    if !write_status(ctx, key, job, &status).await? {
        return Ok(Action::AwaitChange);
    }
    info!(controller = NAME, key = %key, reason = failure.reason, "job failing");
    if finished {
        ctx.recorder.warning(job, failure.reason, failure.message);
    }
    match delete_pods(ctx, key, job, &counts.active).await {
        (_, Some(e)) => Err(e),
        (_, None) => Ok(Action::AwaitChange),
    }
}

/// What [`manage`] did.
struct Managed {
    /// The pods running (or being created) now.
    active: i32,
    /// Pods it deleted.
    deleted: i32,
    /// How long until failed pods may be replaced, when creation waits.
    wait: Option<Duration>,
    /// The first write the apiserver refused.
    error: Option<Error>,
}

/// Creates or deletes pods so that the number wanted runs (Kubernetes'
/// `manageJob`).
async fn manage(
    ctx: &Context,
    key: &ObjectKey,
    job: &Job,
    counts: &PodCounts,
    pods: &[Arc<PodView>],
    now: Timestamp,
) -> Managed {
    let spec = job.spec.clone().unwrap_or_default();
    let active = count(counts.active.len());
    let want = if is_suspended(job) {
        0
    } else {
        tracking::want_active(spec.completions, spec.parallelism.unwrap_or(1), counts.succeeded, active)
    };
    if active > want {
        let mut surplus = counts.active.clone();
        surplus.sort_by(|a, b| pod_state::deletion_order(a, b));
        surplus.truncate(usize::try_from(active - want).unwrap_or(0).min(MAX_POD_CHANGES));
        ctx.expectations.expect(key, 0, surplus.len());
        let (deleted, error) = delete_pods(ctx, key, job, &surplus).await;
        return Managed { active: active - deleted, deleted, wait: None, error };
    }
    let waiting_to_stop = if spec.pod_replacement_policy.as_deref() == Some("Failed") { counts.terminating } else { 0 };
    let missing = want - waiting_to_stop - active;
    if missing <= 0 {
        return Managed { active, deleted: 0, wait: None, error: None };
    }
    let (base, max) = ctx.backoff;
    if let Some(wait) = tracking::creation_delay(pods, base, max, now) {
        debug!(controller = NAME, key = %key, ?wait, "waiting before replacing failed pods");
        return Managed { active, deleted: 0, wait: Some(wait), error: None };
    }
    let missing = usize::try_from(missing).unwrap_or(0).min(MAX_POD_CHANGES);
    ctx.expectations.expect(key, missing, 0);
    let pod = job_pod(job, &key.namespace);
    let results = ctx.pod_control.create_slow_start(&vec![pod; missing]).await;
    for _ in results.len()..missing {
        ctx.expectations.creation_observed(key);
    }
    let reference = object_ref(job);
    let (mut created, mut error) = (0, None);
    for result in results {
        match result {
            Ok(p) => {
                created += 1;
                let name = p.metadata.name.unwrap_or_default();
                ctx.recorder.record(&reference, EventType::Normal, "SuccessfulCreate", &format!("Created pod: {name}"));
            }
            Err(e) => {
                ctx.expectations.creation_observed(key);
                ctx.recorder.record(&reference, EventType::Warning, "FailedCreate", &format!("Error creating: {e}"));
                error.get_or_insert(Error::Api { key: key.clone(), action: "creating pods".into(), source: e });
            }
        }
    }
    debug!(controller = NAME, key = %key, created, want, "created pods");
    Managed { active: active + created, deleted: 0, wait: None, error }
}

/// A pod of the Job: its template, with the labels Kubernetes gives Job
/// pods (`batch.kubernetes.io/controller-uid`, `batch.kubernetes.io/job-name`
/// and their legacy forms).
fn job_pod(job: &Job, namespace: &str) -> Pod {
    let template = job.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
    let mut pod = pod_from_template(&template, namespace, &controller_ref(job));
    let labels = pod.metadata.labels.get_or_insert_with(BTreeMap::new);
    let uid = job.metadata.uid.clone().unwrap_or_default();
    let name = job.metadata.name.clone().unwrap_or_default();
    for key in CONTROLLER_UID_LABELS {
        labels.entry(key.into()).or_insert_with(|| uid.clone());
    }
    for key in [JOB_NAME_LABEL, LEGACY_JOB_NAME_LABEL] {
        labels.entry(key.into()).or_insert_with(|| name.clone());
    }
    pod
}

/// Deletes `pods`, recording an event for each; returns how many were
/// deleted (or already gone) and the first refusal.
async fn delete_pods(ctx: &Context, key: &ObjectKey, job: &Job, pods: &[Arc<PodView>]) -> (i32, Option<Error>) {
    if pods.is_empty() {
        return (0, None);
    }
    let reference = object_ref(job);
    let deletes = pods.iter().map(|p| {
        let name = p.metadata.name.clone().unwrap_or_default();
        let uid = p.metadata.uid.clone().unwrap_or_default();
        async move { (ctx.pod_control.delete(&key.namespace, &name, &uid).await, name) }
    });
    let (mut deleted, mut error) = (0, None);
    for (result, name) in futures::future::join_all(deletes).await {
        match result {
            Ok(true) => {
                deleted += 1;
                ctx.recorder.record(&reference, EventType::Normal, "SuccessfulDelete", &format!("Deleted pod: {name}"));
            }
            Ok(false) => {
                deleted += 1;
                ctx.expectations.deletion_observed(key);
            }
            Err(e) => {
                ctx.expectations.deletion_observed(key);
                ctx.recorder.record(&reference, EventType::Warning, "FailedDelete", &format!("Error deleting: {e}"));
                error.get_or_insert(Error::Api { key: key.clone(), action: "deleting pods".into(), source: e });
            }
        }
    }
    (deleted, error)
}

fn jobs_api(ctx: &Context, key: &ObjectKey) -> Api<Job> {
    Api::namespaced(ctx.client.clone(), &key.namespace)
}

/// Writes `status` if the Job still has the resourceVersion the cache
/// showed. Ok(false) when it does not (or is gone): the newer Job's watch
/// event brings the controller back.
async fn write_status(ctx: &Context, key: &ObjectKey, job: &Job, status: &JobStatus) -> Result<bool, Error> {
    let as_json = |s: &JobStatus| serde_json::to_value(s).unwrap_or_default();
    let old = job.status.as_ref().map(as_json).unwrap_or_default();
    let mut patch = status_patch(&old, &as_json(status));
    patch["metadata"] = json!({"resourceVersion": job.metadata.resource_version});
    match jobs_api(ctx, key).patch_status(&key.name, &patch).await {
        Ok(_) => Ok(true),
        Err(e) if matches!(e.reason, Reason::Conflict | Reason::NotFound) => {
            debug!(controller = NAME, key = %key, error = %e, "status not written; the cache is behind");
            Ok(false)
        }
        Err(e) => Err(Error::Api { key: key.clone(), action: "updating status".into(), source: e }),
    }
}

/// Counts pod arrivals and departures toward the expectations of the pod's
/// Job and returns the keys to reconcile: its Job, or every Job of the
/// namespace that selects an orphan.
fn pod_keys(ctx: &Context, seen: &Observations, pod: &PodView, deleted: bool) -> Vec<ObjectKey> {
    if let Some(key) = owner_key(pod, "Job") {
        seen.observe(&ctx.expectations, &key, &pod.metadata, deleted);
    }
    owner_keys(pod, "Job", &ctx.jobs, |j, labels| {
        !is_finished(j) && selector_of(j).is_ok_and(|s| !s.is_empty() && s.matches(labels))
    })
}

fn start(ctx: &ControllerContext, tracker: &TaskTracker, shutdown: CancellationToken) -> Result<(), String> {
    let flags = &ctx.flags.job;
    let workers = flags.concurrent_job_syncs;
    let jobs = ctx.informers.get::<Job>();
    let pods = ctx.informers.get::<PodView>();
    let context = Arc::new(Context {
        jobs: jobs.store().clone(),
        pods: pods.store().clone(),
        client: ctx.client.clone(),
        pod_control: PodControl::new(ctx.client.clone()),
        expectations: Expectations::default(),
        recorder: ctx.recorder(COMPONENT, tracker, shutdown.clone()),
        backoff: (flags.job_pod_failure_backoff, flags.job_pod_failure_max_backoff),
    });
    let queue = WorkQueue::new();
    let (tracker2, observer) = (tracker.clone(), ctx.observer());
    tracker.spawn(async move {
        let synced = tokio::select! {
            _ = shutdown.cancelled() => return,
            synced = async { jobs.wait_until_synced().await && pods.wait_until_synced().await } => synced,
        };
        if !synced {
            return;
        }
        let resync = enqueue_all(jobs.store().clone(), queue.clone());
        forward(&jobs, queue.clone(), &tracker2, shutdown.clone(), |j: &Job| vec![ObjectKey::of(j)], resync.clone());
        let (c, seen) = (context.clone(), Observations::default());
        let keys = move |pod: &PodView, deleted| pod_keys(&c, &seen, pod, deleted);
        forward_events(&pods, queue.clone(), &tracker2, shutdown.clone(), keys, resync);
        let reconcile = move |key| reconcile(key, context.clone());
        spawn_workers(NAME, queue, workers, reconcile, observer, &tracker2, shutdown);
        info!(controller = NAME, "started");
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_pods_carry_the_job_labels_and_owner() {
        let job: Job = serde_json::from_value(json!({"metadata": {"name": "pi", "uid": "u-1"}, "spec": {
            "template": {"metadata": {"labels": {"app": "pi"}}, "spec": {"containers": [], "restartPolicy": "Never"}}}}))
        .unwrap();
        let pod = job_pod(&job, "default");
        let labels = pod.metadata.labels.unwrap();
        for (k, v) in [
            ("app", "pi"),
            ("batch.kubernetes.io/controller-uid", "u-1"),
            ("controller-uid", "u-1"),
            ("batch.kubernetes.io/job-name", "pi"),
            ("job-name", "pi"),
        ] {
            assert_eq!(labels.get(k).map(String::as_str), Some(v), "{k}");
        }
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("pi-"));
        assert_eq!(pod.metadata.owner_references.unwrap()[0].kind, "Job");
    }

    #[test]
    fn counts_that_drop_to_zero_are_omitted() {
        let mut status = JobStatus {
            active: omit_zero(0),
            failed: omit_zero(2),
            conditions: Some(Vec::new()),
            ..Default::default()
        };
        normalize(&mut status);
        assert_eq!(serde_json::to_value(&status).unwrap(), json!({"failed": 2}));
    }

    #[test]
    fn unsupported_features_are_named() {
        let job = |spec: serde_json::Value| -> Job {
            let mut spec = spec;
            spec["template"] = json!({"spec": {"containers": []}});
            serde_json::from_value(json!({"metadata": {"name": "j"}, "spec": spec})).unwrap()
        };
        assert_eq!(unsupported_feature(&job(json!({"completionMode": "Indexed"}))), Some("completionMode Indexed"));
        assert_eq!(unsupported_feature(&job(json!({"completionMode": "NonIndexed"}))), None);
    }

    #[test]
    fn back_off_flags_are_checked() {
        use clap::Parser;
        let parse = |extra: &[&str]| {
            let mut argv = vec!["rkube-controller-manager"];
            argv.extend_from_slice(extra);
            crate::Args::try_parse_from(argv).unwrap().flags
        };
        let defaults = parse(&[]);
        assert_eq!(defaults.job.job_pod_failure_backoff, Duration::from_secs(10));
        assert_eq!(defaults.job.job_pod_failure_max_backoff, Duration::from_secs(360));
        assert!(check(&defaults).is_ok());
        let err = check(&parse(&["--job-pod-failure-backoff=10m"])).unwrap_err();
        assert!(err.starts_with("--job-pod-failure-max-backoff="), "{err}");
        assert!(check(&parse(&["--job-pod-failure-backoff=0s"])).is_err());
    }
}
