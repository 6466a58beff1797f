//! The TTL-after-finished controller: deletes a finished Job once
//! `spec.ttlSecondsAfterFinished` has passed since it finished, as
//! Kubernetes' `pkg/controller/ttlafterfinished` does.
//!
//! A Job finishes when its `Complete` or `Failed` condition turns True; the
//! condition's `lastTransitionTime` starts the clock. [`reconcile`] asks to
//! come back when the TTL expires ([`Action::RequeueAfter`]); when it has,
//! it reads the Job again from the apiserver (the TTL may have changed
//! since the cache saw it) and deletes it with foreground propagation and
//! the Job's uid as precondition, as Kubernetes does: the Job stays until
//! the garbage collector has deleted its pods.

use crate::controllers::job::tracking::{COMPLETE, FAILED, true_condition};
use crate::controllers::{Controller, ControllerContext, Error};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::jiff::Timestamp;
use rkube_client::controller::{Action, spawn_workers};
use rkube_client::informers::{enqueue_all, forward};
use rkube_client::{Api, DeleteParams, ObjectKey, Reason, Store, WorkQueue};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

/// The controller's name in `--controllers`.
pub const NAME: &str = "ttl-after-finished";

/// The registry entry.
pub const CONTROLLER: Controller = Controller {
    name: NAME,
    about: "deletes finished Jobs once their ttlSecondsAfterFinished has passed",
    enabled_by_default: true,
    check: |_| Ok(()),
    start,
};

/// The TTL-after-finished controller's flags (kube-controller-manager's name).
#[derive(Debug, Clone, clap::Args)]
#[group(skip)]
#[command(next_help_heading = "TTL-after-finished controller")]
pub struct Flags {
    /// Jobs checked for expiry at once.
    #[arg(long, env = "RKUBE_CONCURRENT_TTL_AFTER_FINISHED_SYNCS", default_value_t = 5)]
    pub concurrent_ttl_after_finished_syncs: usize,
}

/// The state shared by the workers.
pub struct Context {
    jobs: Store<Job>,
    client: rkube_client::Client,
}

/// When the Job expires: the finish time plus its TTL. None when it has no
/// TTL, has not finished, is being deleted, or its finish time is unknown.
pub fn expiry(job: &Job) -> Option<Timestamp> {
    if job.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let ttl = job.spec.as_ref()?.ttl_seconds_after_finished?;
    let finished = true_condition(job, COMPLETE).or_else(|| true_condition(job, FAILED))?;
    let at = finished.last_transition_time.as_ref()?.0;
    Timestamp::from_second(at.as_second().saturating_add(i64::from(ttl))).ok()
}

/// How long until `at`, if it is in the future.
fn until(at: Timestamp, now: Timestamp) -> Option<Duration> {
    let left = at.as_millisecond().saturating_sub(now.as_millisecond());
    (left > 0).then(|| Duration::from_millis(u64::try_from(left).unwrap_or(0)))
}

/// Deletes the Job `key` if its TTL after finishing has passed, or comes
/// back when it will have; see the module docs.
pub async fn reconcile(key: ObjectKey, ctx: Arc<Context>) -> Result<Action, Error> {
    let Some(cached) = ctx.jobs.get(&key) else { return Ok(Action::AwaitChange) };
    let Some(at) = expiry(&cached) else { return Ok(Action::AwaitChange) };
    if let Some(left) = until(at, Timestamp::now()) {
        return Ok(Action::RequeueAfter(left));
    }
    let api = Api::<Job>::namespaced(ctx.client.clone(), &key.namespace);
    let Some(fresh) = api.get_opt(&key.name).await.map_err(Error::api(&key, "reading"))? else {
        return Ok(Action::AwaitChange);
    };
    let Some(at) = expiry(&fresh) else { return Ok(Action::AwaitChange) };
    if let Some(left) = until(at, Timestamp::now()) {
        return Ok(Action::RequeueAfter(left));
    }
    let params = DeleteParams {
        uid: fresh.metadata.uid.clone().unwrap_or_default(),
        propagation_policy: Some("Foreground".into()),
        ..Default::default()
    };
    match api.delete(&key.name, &params).await {
        Ok(_) => info!(controller = NAME, job = %key, "deleted finished job after its TTL"),
        Err(e) if matches!(e.reason, Reason::NotFound | Reason::Conflict) => {
            warn!(controller = NAME, job = %key, error = %e, "job changed before its TTL deletion");
        }
        Err(e) => return Err(Error::api(&key, "deleting")(e)),
    }
    Ok(Action::AwaitChange)
}

fn start(ctx: &ControllerContext, tracker: &TaskTracker, shutdown: CancellationToken) -> Result<(), String> {
    let workers = ctx.flags.ttlafterfinished.concurrent_ttl_after_finished_syncs;
    let jobs = ctx.informers.get::<Job>();
    let context = Arc::new(Context { jobs: jobs.store().clone(), client: ctx.client.clone() });
    let queue = WorkQueue::new();
    let (tracker2, observer) = (tracker.clone(), ctx.observer());
    tracker.spawn(async move {
        let synced = tokio::select! {
            _ = shutdown.cancelled() => return,
            synced = jobs.wait_until_synced() => synced,
        };
        if !synced {
            return;
        }
        let resync = enqueue_all(jobs.store().clone(), queue.clone());
        // Only Jobs that could expire are worth a look.
        let keys = |j: &Job| if expiry(j).is_some() { vec![ObjectKey::of(j)] } else { Vec::new() };
        forward(&jobs, queue.clone(), &tracker2, shutdown.clone(), keys, resync);
        let reconcile = move |key| reconcile(key, context.clone());
        spawn_workers(NAME, queue, workers, reconcile, observer, &tracker2, shutdown);
        info!(controller = NAME, "started");
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn job(ttl: Value, conditions: Value) -> Job {
        serde_json::from_value(json!({"metadata": {"name": "j"},
            "spec": {"ttlSecondsAfterFinished": ttl, "template": {"spec": {"containers": []}}},
            "status": {"conditions": conditions}}))
        .unwrap()
    }

    #[test]
    fn finished_jobs_with_a_ttl_expire_after_it() {
        let done = json!([{"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"},
            {"type": "Complete", "status": "True", "lastTransitionTime": "2026-01-01T00:00:01Z"}]);
        assert_eq!(expiry(&job(json!(100), done.clone())), Some("2026-01-01T00:01:41Z".parse().unwrap()));
        let failed = json!([{"type": "Failed", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]);
        assert_eq!(expiry(&job(json!(0), failed)), Some("2026-01-01T00:00:00Z".parse().unwrap()));
        assert_eq!(expiry(&job(json!(null), done)), None, "no TTL");
        let running =
            json!([{"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]);
        assert_eq!(expiry(&job(json!(100), running)), None, "not finished");
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(until("2026-01-01T00:00:02Z".parse().unwrap(), now), Some(Duration::from_secs(2)));
        assert_eq!(until(now, now), None);
    }
}
