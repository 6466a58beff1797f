//! The Job and TTL-after-finished controllers against a real apiserver on a
//! real etcd. No kubelet runs: tests finish pods by writing their phase.

use anyhow::Context as _;
use k8s_openapi::api::batch::v1::{Job, JobCondition};
use k8s_openapi::api::core::v1::{Event, Pod};
use rkube_client::{Api, Client, ListParams};
use rkube_testkit::{TestApiserver, TestControllerManager, wait_for};
use serde_json::{Value, json};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(20);

fn job(name: &str, spec: Value) -> anyhow::Result<Job> {
    let mut spec = spec;
    spec["template"] = json!({"metadata": {"labels": {"app": name}},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "rkube/toolbox:1.0"}]}});
    Ok(serde_json::from_value(json!({"metadata": {"name": name, "namespace": "default"}, "spec": spec}))?)
}

fn owned_by(p: &Pod, uid: &str) -> bool {
    p.metadata.owner_references.iter().flatten().any(|r| r.uid == uid && r.controller == Some(true))
}

fn phase(p: &Pod) -> &str {
    p.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("")
}

/// `uid`'s pods that are neither finished nor being deleted.
async fn active_pods(pods: &Api<Pod>, uid: &str) -> anyhow::Result<Vec<Pod>> {
    let list = pods.list(&ListParams::default()).await?.items;
    Ok(list
        .into_iter()
        .filter(|p| owned_by(p, uid) && p.metadata.deletion_timestamp.is_none())
        .filter(|p| !matches!(phase(p), "Succeeded" | "Failed"))
        .collect())
}

async fn wait_for_active(pods: &Api<Pod>, uid: &str, n: usize) -> anyhow::Result<Vec<Pod>> {
    let result = wait_for(TIMEOUT, || async { active_pods(pods, uid).await.is_ok_and(|p| p.len() == n) }).await;
    let now = active_pods(pods, uid).await?;
    result.with_context(|| format!("never exactly {n} active pods; now {}", now.len()))?;
    Ok(now)
}

/// Finishes a pod with `phase`, as its kubelet would.
async fn finish(pods: &Api<Pod>, pod: &Pod, phase: &str) -> anyhow::Result<()> {
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    pods.patch_status(
        name,
        &json!({"status": {"phase": phase,
        "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": now}]}}),
    )
    .await?;
    Ok(())
}

fn condition<'a>(job: &'a Job, type_: &str) -> Option<&'a JobCondition> {
    job.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == type_ && c.status == "True")
}

async fn wait_for_condition(jobs: &Api<Job>, name: &str, type_: &str) -> anyhow::Result<Job> {
    let result =
        wait_for(TIMEOUT, || async { jobs.get(name).await.is_ok_and(|j| condition(&j, type_).is_some()) }).await;
    let now = jobs.get(name).await?;
    result.with_context(|| format!("job {name} never {type_}; status {:?}", now.status))?;
    Ok(now)
}

/// The reasons of the events about `name` from job-controller.
async fn job_events(client: &Client, name: &str) -> anyhow::Result<Vec<(String, String)>> {
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    Ok(events
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(name))
        .filter(|e| e.source.as_ref().and_then(|s| s.component.as_deref()) == Some("job-controller"))
        .map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
        .collect())
}

async fn wait_for_event(client: &Client, name: &str, reason: &str, message: &str) -> anyhow::Result<()> {
    let want = (reason.to_string(), message.to_string());
    wait_for(TIMEOUT, || async { job_events(client, name).await.is_ok_and(|es| es.contains(&want)) })
        .await
        .with_context(|| format!("no {reason} event \"{message}\" about {name}"))
}

#[tokio::test]
async fn a_job_of_4_completions_2_at_a_time_completes() -> anyhow::Result<()> {
    let apiserver = TestApiserver::start().await?;
    let client = Client::new(&apiserver.url())?;
    let cm = TestControllerManager::start(&apiserver.url(), &["--leader-elect=false", "--controllers=job"]).await?;
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let created = jobs.create(&job("pi", json!({"completions": 4, "parallelism": 2}))?).await?;
    let uid = created.metadata.uid.clone().unwrap_or_default();

    let first = wait_for_active(&pods, &uid, 2).await?;
    let labels = first[0].metadata.labels.clone().unwrap_or_default();
    for (k, v) in [
        ("app", "pi"),
        ("batch.kubernetes.io/job-name", "pi"),
        ("job-name", "pi"),
        ("batch.kubernetes.io/controller-uid", uid.as_str()),
        ("controller-uid", uid.as_str()),
    ] {
        assert_eq!(labels.get(k).map(String::as_str), Some(v), "label {k}");
    }
    assert!(first[0].metadata.name.as_deref().unwrap_or_default().starts_with("pi-"));
    wait_for(TIMEOUT, || async {
        jobs.get("pi").await.is_ok_and(|j| {
            let s = j.status.unwrap_or_default();
            s.active == Some(2) && s.ready == Some(0) && s.start_time.is_some()
        })
    })
    .await
    .context("status never active 2 with a start time")?;

    for p in &first {
        finish(&pods, p, "Succeeded").await?;
    }
    let second = wait_for_active(&pods, &uid, 2).await?;
    assert!(second.iter().all(|p| first.iter().all(|f| f.metadata.uid != p.metadata.uid)), "two new pods");
    wait_for(TIMEOUT, || async {
        jobs.get("pi").await.is_ok_and(|j| j.status.unwrap_or_default().succeeded == Some(2))
    })
    .await
    .context("status never succeeded 2")?;
    for p in &second {
        finish(&pods, p, "Succeeded").await?;
    }
    let done = wait_for_condition(&jobs, "pi", "Complete").await?;
    let status = done.status.clone().unwrap_or_default();
    assert_eq!((status.succeeded, status.failed, status.active), (Some(4), None, None));
    assert!(status.completion_time.is_some());
    let met = condition(&done, "SuccessCriteriaMet").context("SuccessCriteriaMet comes first")?;
    let complete = condition(&done, "Complete").unwrap();
    for c in [met, complete] {
        assert_eq!(c.reason.as_deref(), Some("CompletionsReached"));
        assert_eq!(c.message.as_deref(), Some("Reached expected number of succeeded pods"));
    }
    wait_for_event(&client, "pi", "Completed", "Job completed").await?;
    let all = pods.list(&ListParams::default()).await?.items.into_iter().filter(|p| owned_by(p, &uid)).count();
    assert_eq!(all, 4, "no pod beyond the completions");
    assert!(
        job_events(&client, "pi")
            .await?
            .iter()
            .any(|(r, m)| r == "SuccessfulCreate" && m.starts_with("Created pod: pi-"))
    );
    cm.stop().await
}

#[tokio::test]
async fn a_job_whose_pods_fail_stops_at_its_backoff_limit() -> anyhow::Result<()> {
    let apiserver = TestApiserver::start().await?;
    let client = Client::new(&apiserver.url())?;
    let flags = ["--leader-elect=false", "--controllers=job", "--job-pod-failure-backoff=1s"];
    let cm = TestControllerManager::start(&apiserver.url(), &flags).await?;
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let uid = jobs.create(&job("crash", json!({"backoffLimit": 2}))?).await?.metadata.uid.unwrap_or_default();

    // Each failure is replaced after a back-off that doubles: 1 s, then 2 s
    // (counted from finish times that have whole seconds, so up to 1 s less).
    let mut failed_at = Vec::new();
    for _ in 0..3 {
        let p = wait_for_active(&pods, &uid, 1).await?;
        failed_at.push(std::time::Instant::now());
        finish(&pods, &p[0], "Failed").await?;
    }
    let failed = wait_for_condition(&jobs, "crash", "Failed").await?;
    let waited = failed_at[2] - failed_at[1];
    assert!(waited >= Duration::from_secs(1), "the second replacement came after {waited:?}");
    let status = failed.status.clone().unwrap_or_default();
    assert_eq!((status.failed, status.active, status.succeeded), (Some(3), None, None));
    for type_ in ["FailureTarget", "Failed"] {
        let c = condition(&failed, type_).with_context(|| format!("no {type_} condition"))?;
        assert_eq!(c.reason.as_deref(), Some("BackoffLimitExceeded"));
        assert_eq!(c.message.as_deref(), Some("Job has reached the specified backoff limit"));
    }
    assert!(active_pods(&pods, &uid).await?.is_empty(), "no replacement after the limit");
    wait_for_event(&client, "crash", "BackoffLimitExceeded", "Job has reached the specified backoff limit").await?;
    cm.stop().await
}

#[tokio::test]
async fn a_job_past_its_deadline_fails_and_its_pods_are_stopped() -> anyhow::Result<()> {
    let apiserver = TestApiserver::start().await?;
    let client = Client::new(&apiserver.url())?;
    let cm = TestControllerManager::start(&apiserver.url(), &["--leader-elect=false", "--controllers=job"]).await?;
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let spec = json!({"parallelism": 2, "completions": 5, "activeDeadlineSeconds": 2});
    let uid = jobs.create(&job("slow", spec)?).await?.metadata.uid.unwrap_or_default();
    wait_for_active(&pods, &uid, 2).await?;
    let failed = wait_for_condition(&jobs, "slow", "Failed").await?;
    let c = condition(&failed, "Failed").unwrap();
    assert_eq!(c.reason.as_deref(), Some("DeadlineExceeded"));
    assert_eq!(c.message.as_deref(), Some("Job was active longer than specified deadline"));
    let status = failed.status.clone().unwrap_or_default();
    assert_eq!(
        (status.failed, status.active, status.terminating),
        (Some(2), None, Some(0)),
        "its pods counted as failed"
    );
    assert!(active_pods(&pods, &uid).await?.is_empty(), "its pods were deleted");
    wait_for_event(&client, "slow", "DeadlineExceeded", "Job was active longer than specified deadline").await?;
    cm.stop().await
}

#[tokio::test]
async fn a_finished_job_is_deleted_after_its_ttl() -> anyhow::Result<()> {
    let apiserver = TestApiserver::start().await?;
    let client = Client::new(&apiserver.url())?;
    let flags = ["--leader-elect=false", "--controllers=job,ttl-after-finished,garbagecollector"];
    let cm = TestControllerManager::start(&apiserver.url(), &flags).await?;
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let uid = jobs.create(&job("once", json!({"ttlSecondsAfterFinished": 1}))?).await?.metadata.uid.unwrap_or_default();
    let p = wait_for_active(&pods, &uid, 1).await?;
    finish(&pods, &p[0], "Succeeded").await?;
    // Complete, then deleted after its TTL: with a TTL of 1 s the Job may
    // be gone before this looks, so either answer will do here.
    wait_for(TIMEOUT, || async {
        jobs.get_opt("once").await.is_ok_and(|j| j.is_none_or(|j| condition(&j, "Complete").is_some()))
    })
    .await
    .context("the job never completed")?;
    // Deleted in the foreground: its pod goes first, then the Job.
    wait_for(TIMEOUT, || async { jobs.get_opt("once").await.is_ok_and(|j| j.is_none()) })
        .await
        .context("the finished job was not deleted after its TTL")?;
    let left = pods.list(&ListParams::default()).await?.items.into_iter().filter(|p| owned_by(p, &uid)).count();
    assert_eq!(left, 0, "its pod went with it");
    cm.stop().await
}
