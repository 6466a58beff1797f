//! The replication and replicaset controllers against a real apiserver on a
//! real etcd (no kubelet: pods stay Pending unless a test writes their
//! status): replicas kept, replaced, scaled through the scale subresource,
//! adoption and release, status, and the events they leave.

use anyhow::Context as _;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::autoscaling::v1::{Scale, ScaleSpec};
use k8s_openapi::api::core::v1::{Event, Pod, ReplicationController};
use rkube_client::{Api, Client, DeleteParams, ListParams};
use rkube_testkit::{TestApiserver, TestControllerManager, wait_for};
use serde_json::json;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(20);

fn rc(name: &str, replicas: i32) -> ReplicationController {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"replicas": replicas, "selector": {"app": name},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "rkube/toolbox:1.0"}]}}}
    }))
    .expect("a valid RC")
}

/// The active pods `owner_uid` controls.
async fn owned_pods(pods: &Api<Pod>, owner_uid: &str) -> anyhow::Result<Vec<Pod>> {
    let list = pods.list(&ListParams::default()).await?;
    Ok(list
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            p.metadata.owner_references.iter().flatten().any(|r| r.uid == owner_uid && r.controller == Some(true))
        })
        .collect())
}

async fn wait_for_count(pods: &Api<Pod>, owner_uid: &str, n: usize) -> anyhow::Result<()> {
    let result = wait_for(TIMEOUT, || async { owned_pods(pods, owner_uid).await.is_ok_and(|p| p.len() == n) }).await;
    let now = owned_pods(pods, owner_uid).await.map(|p| p.len());
    result.with_context(|| format!("never exactly {n} pods; now {now:?}"))
}

fn scale_to(replicas: i32) -> Scale {
    Scale { spec: Some(ScaleSpec { replicas: Some(replicas) }), ..Default::default() }
}

#[tokio::test]
async fn an_rc_keeps_its_replicas_through_deletes_and_scaling() -> anyhow::Result<()> {
    let apiserver = TestApiserver::start().await?;
    let client = Client::new(&apiserver.url())?;
    let cm =
        TestControllerManager::start(&apiserver.url(), &["--leader-elect=false", "--controllers=replication"]).await?;
    let rcs: Api<ReplicationController> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");

    let frontend = rcs.create(&rc("frontend", 3)).await?;
    let uid = frontend.metadata.uid.clone().unwrap_or_default();
    wait_for_count(&pods, &uid, 3).await?;
    let created = owned_pods(&pods, &uid).await?;
    for p in &created {
        let name = p.metadata.name.as_deref().unwrap_or_default();
        assert!(name.starts_with("frontend-") && name.len() == "frontend-".len() + 5, "generated name {name}");
        assert_eq!(p.metadata.labels.as_ref().and_then(|l| l.get("app")).map(String::as_str), Some("frontend"));
        let owner = &p.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("ReplicationController", "frontend"));
        assert_eq!(owner.block_owner_deletion, Some(true));
    }
    wait_for(TIMEOUT, || async {
        rcs.get("frontend").await.is_ok_and(|r| {
            let s = r.status.unwrap_or_default();
            s.replicas == 3 && s.fully_labeled_replicas == Some(3) && s.observed_generation == Some(1)
        })
    })
    .await
    .context("status.replicas never 3")?;

    // A deleted pod is replaced.
    let victim = created[0].metadata.name.clone().unwrap_or_default();
    pods.delete(&victim, &DeleteParams::default()).await?;
    wait_for(TIMEOUT, || async {
        owned_pods(&pods, &uid)
            .await
            .is_ok_and(|ps| ps.len() == 3 && ps.iter().all(|p| p.metadata.name.as_deref() != Some(victim.as_str())))
    })
    .await
    .context("the deleted pod was not replaced")?;

    // Scale through the scale subresource: 3 -> 5 -> 1.
    let scale = rcs.get_scale("frontend").await?;
    assert_eq!(scale.spec.as_ref().and_then(|s| s.replicas), Some(3));
    assert_eq!(scale.status.as_ref().and_then(|s| s.selector.as_deref()), Some("app=frontend"));
    rcs.replace_scale("frontend", &scale_to(5)).await?;
    wait_for_count(&pods, &uid, 5).await?;
    rcs.replace_scale("frontend", &scale_to(1)).await?;
    wait_for_count(&pods, &uid, 1).await?;
    wait_for(TIMEOUT, || async { rcs.get("frontend").await.is_ok_and(|r| r.status.unwrap_or_default().replicas == 1) })
        .await
        .context("status.replicas never 1")?;
    // A stale resourceVersion is a conflict, negative replicas are invalid.
    let mut stale = scale_to(2);
    stale.metadata.resource_version = scale.metadata.resource_version.clone();
    let err = rcs.replace_scale("frontend", &stale).await.unwrap_err();
    assert_eq!(err.reason, rkube_client::Reason::Conflict, "{err}");
    let err = rcs.replace_scale("frontend", &scale_to(-1)).await.unwrap_err();
    assert!(err.message.contains("spec.replicas: Invalid value: -1"), "{err}");

    // Events like Kubernetes': SuccessfulCreate / SuccessfulDelete from replication-controller.
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    wait_for(TIMEOUT, || async {
        events.list(&ListParams::default()).await.is_ok_and(|l| {
            let reasons: Vec<_> = l.items.iter().filter_map(|e| e.reason.clone()).collect();
            reasons.iter().any(|r| r == "SuccessfulCreate") && reasons.iter().any(|r| r == "SuccessfulDelete")
        })
    })
    .await
    .context("no SuccessfulCreate/SuccessfulDelete events")?;
    let list = events.list(&ListParams::default()).await?;
    let create = list.items.iter().find(|e| e.reason.as_deref() == Some("SuccessfulCreate")).unwrap();
    assert!(create.message.as_deref().unwrap_or_default().starts_with("Created pod: frontend-"), "{create:?}");
    assert_eq!(create.source.as_ref().and_then(|s| s.component.as_deref()), Some("replication-controller"));
    assert_eq!(create.involved_object.kind.as_deref(), Some("ReplicationController"));

    let metrics = cm.metrics().await?;
    assert!(metrics.contains("controller=\"replication\""), "{metrics}");
    cm.stop().await
}

#[tokio::test]
async fn a_replicaset_adopts_orphans_and_releases_pods_that_stop_matching() -> anyhow::Result<()> {
    let apiserver = TestApiserver::start().await?;
    let client = Client::new(&apiserver.url())?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    // An orphan that the ReplicaSet's selector matches, there before it.
    let orphan: Pod = serde_json::from_value(json!({"metadata": {"name": "orphan", "labels": {"app": "db"}},
        "spec": {"containers": [{"name": "c", "image": "rkube/toolbox:1.0"}]}}))?;
    pods.create(&orphan).await?;
    let cm =
        TestControllerManager::start(&apiserver.url(), &["--leader-elect=false", "--controllers=replicaset"]).await?;
    let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let rs: ReplicaSet = serde_json::from_value(json!({
        "metadata": {"name": "db"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}},
                "spec": {"containers": [{"name": "c", "image": "rkube/toolbox:1.0"}]}}}
    }))?;
    let uid = sets.create(&rs).await?.metadata.uid.unwrap_or_default();
    wait_for_count(&pods, &uid, 2).await?;
    let owned = owned_pods(&pods, &uid).await?;
    assert!(owned.iter().any(|p| p.metadata.name.as_deref() == Some("orphan")), "the orphan was adopted");

    // Relabelled out of the selector: released, and replaced.
    pods.patch("orphan", &json!({"metadata": {"labels": {"app": "elsewhere"}}})).await?;
    wait_for(TIMEOUT, || async {
        pods.get("orphan").await.is_ok_and(|p| p.metadata.owner_references.unwrap_or_default().is_empty())
    })
    .await
    .context("the relabelled pod was not released")?;
    wait_for_count(&pods, &uid, 2).await?;
    assert!(pods.get_opt("orphan").await?.is_some(), "a released pod is not deleted");
    cm.stop().await
}

#[tokio::test]
async fn a_restarted_controller_manager_creates_no_extra_pods() -> anyhow::Result<()> {
    let apiserver = TestApiserver::start().await?;
    let client = Client::new(&apiserver.url())?;
    let flags = ["--leader-elect=false", "--controllers=replication"];
    let cm = TestControllerManager::start(&apiserver.url(), &flags).await?;
    let rcs: Api<ReplicationController> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let uid = rcs.create(&rc("burst", 40)).await?.metadata.uid.unwrap_or_default();
    // Stop it in the middle of the scale-up, then start a new one.
    wait_for(TIMEOUT, || async { owned_pods(&pods, &uid).await.is_ok_and(|p| !p.is_empty()) }).await?;
    cm.stop().await?;
    let cm = TestControllerManager::start(&apiserver.url(), &flags).await?;
    wait_for_count(&pods, &uid, 40).await?;
    // Stays at 40: wait for the status to settle, then count again.
    wait_for(TIMEOUT, || async { rcs.get("burst").await.is_ok_and(|r| r.status.unwrap_or_default().replicas == 40) })
        .await?;
    assert_eq!(owned_pods(&pods, &uid).await?.len(), 40);
    cm.stop().await
}

#[tokio::test]
async fn refused_creates_set_replica_failure_and_back_off() -> anyhow::Result<()> {
    // SecurityContextDeny refuses pods that set runAsUser, but not the RC that templates them.
    let apiserver =
        TestApiserver::start_with(|a| a.enable_admission_plugins.push("SecurityContextDeny".into())).await?;
    let client = Client::new(&apiserver.url())?;
    let cm =
        TestControllerManager::start(&apiserver.url(), &["--leader-elect=false", "--controllers=replication"]).await?;
    let rcs: Api<ReplicationController> = Api::namespaced(client.clone(), "default");
    let mut privileged = rc("privileged", 3);
    let container =
        &mut privileged.spec.as_mut().unwrap().template.as_mut().unwrap().spec.as_mut().unwrap().containers[0];
    container.security_context =
        Some(k8s_openapi::api::core::v1::SecurityContext { run_as_user: Some(0), ..Default::default() });
    rcs.create(&privileged).await?;

    wait_for(TIMEOUT, || async {
        rcs.get("privileged").await.is_ok_and(|r| {
            let conditions = r.status.and_then(|s| s.conditions).unwrap_or_default();
            conditions.iter().any(|c| {
                c.type_ == "ReplicaFailure" && c.status == "True" && c.reason.as_deref() == Some("FailedCreate")
            })
        })
    })
    .await
    .context("no ReplicaFailure condition")?;
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let failed = || async {
        let list = events.list(&ListParams::default()).await.map(|l| l.items).unwrap_or_default();
        list.into_iter().find(|e| e.reason.as_deref() == Some("FailedCreate"))
    };
    wait_for(TIMEOUT, || async { failed().await.is_some() }).await.context("no FailedCreate event")?;
    let event = failed().await.unwrap();
    assert!(event.message.as_deref().unwrap_or_default().starts_with("Error creating: "), "{event:?}");
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    // Backing off: after a few seconds, a handful of attempts — not hundreds
    // (the slow start tries one pod per attempt, and the delays double).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let attempts = failed().await.and_then(|e| e.count).unwrap_or(0);
    assert!((1..=15).contains(&attempts), "{attempts} attempts in 3 s");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    assert!(pods.list(&ListParams::default()).await?.items.is_empty());
    cm.stop().await
}
