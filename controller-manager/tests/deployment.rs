//! The deployment controller (with the replicaset controller under it)
//! against a real apiserver on a real etcd. There is no kubelet here: a
//! stand-in marks pods Running and Ready unless their image is `bad`, so
//! rollouts progress or stall the way they would on nodes.

use anyhow::Context as _;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use rkube_client::{Api, Client, ListParams};
use rkube_testkit::{TestApiserver, TestControllerManager, wait_for};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const TIMEOUT: Duration = Duration::from_secs(30);
const FLAGS: &[&str] = &["--leader-elect=false", "--controllers=replicaset,deployment"];

/// Marks every pod Running and Ready (except those whose image is `bad`)
/// until `stop`, like kubelets whose containers start at once.
fn fake_kubelet(pods: Api<Pod>, stop: CancellationToken) {
    tokio::spawn(async move {
        while !stop.is_cancelled() {
            for pod in pods.list(&ListParams::default()).await.map(|l| l.items).unwrap_or_default() {
                let image = pod.spec.as_ref().and_then(|s| s.containers.first()).and_then(|c| c.image.clone());
                let ready = pod.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|cs| !cs.is_empty());
                if image.as_deref() == Some("bad") || ready || pod.metadata.deletion_timestamp.is_some() {
                    continue;
                }
                let now = k8s_openapi::jiff::Timestamp::now().to_string();
                let status = json!({"status": {"phase": "Running", "conditions": [
                    {"type": "Ready", "status": "True", "lastTransitionTime": now}]}});
                let _ = pods.patch_status(pod.metadata.name.as_deref().unwrap_or_default(), &status).await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
}

fn deployment(name: &str, image: &str, replicas: i32, extra_spec: Value) -> Deployment {
    let mut spec = json!({"replicas": replicas, "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "c", "image": image}]}}});
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra_spec.as_object()) {
        spec.extend(extra.clone());
    }
    serde_json::from_value(json!({"metadata": {"name": name, "namespace": "default"}, "spec": spec})).unwrap()
}

/// The Deployment's ReplicaSets: (name, spec.replicas, revision, image).
async fn sets_of(sets: &Api<ReplicaSet>, name: &str) -> anyhow::Result<Vec<(String, i32, String, String)>> {
    let list = sets.list(&ListParams::default().labels(&format!("app={name}"))).await?;
    Ok(list
        .items
        .into_iter()
        .map(|rs| {
            let revision =
                rs.metadata.annotations.as_ref().and_then(|a| a.get("deployment.kubernetes.io/revision")).cloned();
            let spec = rs.spec.unwrap_or_default();
            let image =
                spec.template.and_then(|t| t.spec).and_then(|s| s.containers.first().and_then(|c| c.image.clone()));
            (
                rs.metadata.name.unwrap_or_default(),
                spec.replicas.unwrap_or(0),
                revision.unwrap_or_default(),
                image.unwrap_or_default(),
            )
        })
        .collect())
}

/// The rollout is complete as `kubectl rollout status` judges it.
fn rolled_out(d: &Deployment) -> bool {
    let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let s = d.status.clone().unwrap_or_default();
    s.observed_generation >= d.metadata.generation
        && s.updated_replicas == Some(replicas)
        && s.replicas == Some(replicas)
        && s.available_replicas == Some(replicas)
}

fn progressing_reason(d: &Deployment) -> String {
    let conditions = d.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default();
    conditions.into_iter().find(|c| c.type_ == "Progressing").and_then(|c| c.reason).unwrap_or_default()
}

#[tokio::test]
async fn a_deployment_rolls_out_a_new_image_and_back() -> anyhow::Result<()> {
    let apiserver = TestApiserver::start().await?;
    let client = Client::new(&apiserver.url())?;
    let stop = CancellationToken::new();
    fake_kubelet(Api::namespaced(client.clone(), "default"), stop.clone());
    let cm = TestControllerManager::start(&apiserver.url(), FLAGS).await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");

    deployments.create(&deployment("web", "nginx:1", 3, json!({}))).await?;
    wait_for(TIMEOUT, || async { deployments.get("web").await.is_ok_and(|d| rolled_out(&d)) })
        .await
        .context("first rollout never completed")?;
    let first = sets_of(&sets, "web").await?;
    assert_eq!(first.len(), 1, "{first:?}");
    let (rs1, replicas, revision, _) = &first[0];
    assert!(rs1.starts_with("web-"), "{rs1}");
    assert_eq!((*replicas, revision.as_str()), (3, "1"));
    let d = deployments.get("web").await?;
    assert_eq!(progressing_reason(&d), "NewReplicaSetAvailable");
    assert_eq!(d.metadata.annotations.unwrap_or_default().get("deployment.kubernetes.io/revision"), None::<&String>);

    // A new image: a second ReplicaSet takes over, the first goes to 0.
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:2"}]}}}});
    deployments.patch("web", &patch).await?;
    let result = wait_for(TIMEOUT, || async {
        let sets = sets_of(&sets, "web").await.unwrap_or_default();
        deployments.get("web").await.is_ok_and(|d| rolled_out(&d))
            && sets.len() == 2
            && sets.iter().any(|(n, r, rev, img)| n == rs1 && *r == 0 && rev == "1" && img == "nginx:1")
            && sets.iter().any(|(_, r, rev, img)| *r == 3 && rev == "2" && img == "nginx:2")
    })
    .await
    .with_context(|| "the update to nginx:2 never completed");
    if result.is_err() {
        eprintln!("sets: {:?}", sets_of(&sets, "web").await?);
        eprintln!("deployment: {:?}", deployments.get("web").await?.status);
    }
    result?;

    // Undo: the old template comes back; its ReplicaSet is reused as revision 3.
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}}});
    deployments.patch("web", &patch).await?;
    wait_for(TIMEOUT, || async {
        let sets = sets_of(&sets, "web").await.unwrap_or_default();
        deployments.get("web").await.is_ok_and(|d| rolled_out(&d))
            && sets.len() == 2
            && sets.iter().any(|(n, r, rev, _)| n == rs1 && *r == 3 && rev == "3")
    })
    .await
    .context("the rollback never completed")?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let live = pods.list(&ListParams::default().labels("app=web")).await?.items;
    let live: Vec<_> = live.into_iter().filter(|p| p.metadata.deletion_timestamp.is_none()).collect();
    assert!(live.iter().all(|p| p.spec.as_ref().unwrap().containers[0].image.as_deref() == Some("nginx:1")));
    stop.cancel();
    cm.stop().await
}

#[tokio::test]
async fn a_bad_image_stops_at_max_unavailable_and_exceeds_the_progress_deadline() -> anyhow::Result<()> {
    let apiserver = TestApiserver::start().await?;
    let client = Client::new(&apiserver.url())?;
    let stop = CancellationToken::new();
    fake_kubelet(Api::namespaced(client.clone(), "default"), stop.clone());
    let cm = TestControllerManager::start(&apiserver.url(), FLAGS).await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let extra = json!({"progressDeadlineSeconds": 3,
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}}});
    deployments.create(&deployment("api", "nginx:1", 4, extra)).await?;
    wait_for(TIMEOUT, || async { deployments.get("api").await.is_ok_and(|d| rolled_out(&d)) }).await?;

    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "bad"}]}}}});
    deployments.patch("api", &patch).await?;
    wait_for(TIMEOUT, || async {
        deployments.get("api").await.is_ok_and(|d| progressing_reason(&d) == "ProgressDeadlineExceeded")
    })
    .await
    .context("never ProgressDeadlineExceeded")?;
    let d = deployments.get("api").await?;
    let status = d.status.unwrap_or_default();
    assert_eq!(status.available_replicas, Some(3), "replicas - maxUnavailable stay available: {status:?}");
    let sets = sets_of(&sets, "api").await?;
    let old = sets.iter().find(|s| s.3 == "nginx:1").context("old set")?;
    let new = sets.iter().find(|s| s.3 == "bad").context("new set")?;
    assert_eq!((old.1, new.1), (3, 2), "old shrank by maxUnavailable, new grew within maxSurge: {sets:?}");
    let progressing = status.conditions.unwrap_or_default().into_iter().find(|c| c.type_ == "Progressing").unwrap();
    assert_eq!(progressing.status, "False");
    assert_eq!(
        progressing.message.as_deref(),
        Some(format!("ReplicaSet \"{}\" has timed out progressing.", new.0).as_str())
    );
    stop.cancel();
    cm.stop().await
}

#[tokio::test]
async fn recreate_removes_the_old_pods_before_starting_new_ones_and_pause_holds_the_rollout() -> anyhow::Result<()> {
    let apiserver = TestApiserver::start().await?;
    let client = Client::new(&apiserver.url())?;
    let stop = CancellationToken::new();
    fake_kubelet(Api::namespaced(client.clone(), "default"), stop.clone());
    let cm = TestControllerManager::start(&apiserver.url(), FLAGS).await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    deployments.create(&deployment("db", "db:1", 2, json!({"strategy": {"type": "Recreate"}}))).await?;
    wait_for(TIMEOUT, || async { deployments.get("db").await.is_ok_and(|d| rolled_out(&d)) }).await?;

    // Paused: a template change creates nothing.
    deployments.patch("db", &json!({"spec": {"paused": true}})).await?;
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "db:2"}]}}}});
    deployments.patch("db", &patch).await?;
    wait_for(TIMEOUT, || async {
        deployments.get("db").await.is_ok_and(|d| progressing_reason(&d) == "DeploymentPaused")
    })
    .await
    .context("never DeploymentPaused")?;
    assert_eq!(sets_of(&sets, "db").await?.len(), 1, "no new set while paused");

    deployments.patch("db", &json!({"spec": {"paused": false}})).await?;
    wait_for(TIMEOUT, || async {
        let sets = sets_of(&sets, "db").await.unwrap_or_default();
        deployments.get("db").await.is_ok_and(|d| rolled_out(&d))
            && sets.iter().any(|s| s.3 == "db:2" && s.1 == 2)
            && sets.iter().any(|s| s.3 == "db:1" && s.1 == 0)
    })
    .await
    .context("the recreate rollout never completed")?;
    stop.cancel();
    cm.stop().await
}
