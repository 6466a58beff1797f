//! The garbage collector with the replication and replicaset controllers,
//! against a real apiserver on a real etcd: background, foreground and
//! orphan deletion as Kubernetes does them, and owners that vanish.

use anyhow::Context as _;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, ReplicationController};
use rkube_client::{Api, Client, DeleteParams, ListParams};
use rkube_testkit::{TestApiserver, TestControllerManager, wait_for};
use serde_json::json;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(20);
const FLAGS: &[&str] = &["--leader-elect=false", "--controllers=replication,replicaset,garbagecollector"];

fn rc(name: &str, replicas: i32) -> ReplicationController {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"replicas": replicas, "selector": {"app": name},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "rkube/toolbox:1.0"}]}}}
    }))
    .unwrap()
}

async fn pods_labelled(pods: &Api<Pod>, app: &str) -> Vec<Pod> {
    pods.list(&ListParams::default().labels(&format!("app={app}"))).await.map(|l| l.items).unwrap_or_default()
}

fn delete_with(policy: &str) -> DeleteParams {
    DeleteParams { propagation_policy: Some(policy.into()), ..Default::default() }
}

#[tokio::test]
async fn background_foreground_and_orphan_deletion() -> anyhow::Result<()> {
    let apiserver = TestApiserver::start().await?;
    let client = Client::new(&apiserver.url())?;
    let cm = TestControllerManager::start(&apiserver.url(), FLAGS).await?;
    let rcs: Api<ReplicationController> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    for name in ["bg", "fg", "orphans"] {
        rcs.create(&rc(name, 2)).await?;
    }
    for name in ["bg", "fg", "orphans"] {
        wait_for(TIMEOUT, || async { pods_labelled(&pods, name).await.len() == 2 }).await?;
    }

    // Background (the default): the owner goes at once, its pods follow.
    rcs.delete("bg", &DeleteParams::default()).await?;
    wait_for(TIMEOUT, || async { pods_labelled(&pods, "bg").await.is_empty() })
        .await
        .context("the pods of a deleted RC were not collected")?;

    // Foreground: the owner waits, with the finalizer, until its pods are gone.
    let (deleting, gone) = rcs.delete("fg", &delete_with("Foreground")).await?;
    assert!(!gone, "a foreground delete keeps the owner until its dependents go");
    assert!(deleting.metadata.finalizers.unwrap_or_default().contains(&"foregroundDeletion".to_string()));
    wait_for(TIMEOUT, || async { rcs.get_opt("fg").await.is_ok_and(|r| r.is_none()) })
        .await
        .context("the foreground-deleted RC never went")?;
    assert!(pods_labelled(&pods, "fg").await.is_empty(), "its pods went first");

    // Orphan: the owner goes, its pods stay, free of it.
    rcs.delete("orphans", &delete_with("Orphan")).await?;
    wait_for(TIMEOUT, || async { rcs.get_opt("orphans").await.is_ok_and(|r| r.is_none()) })
        .await
        .context("the orphaning RC never went")?;
    let left = pods_labelled(&pods, "orphans").await;
    assert_eq!(left.len(), 2, "orphaned pods stay");
    assert!(left.iter().all(|p| p.metadata.owner_references.clone().unwrap_or_default().is_empty()), "{left:?}");
    cm.stop().await
}

#[tokio::test]
async fn objects_whose_owner_is_gone_are_collected_but_not_those_of_a_namesake() -> anyhow::Result<()> {
    let apiserver = TestApiserver::start().await?;
    let client = Client::new(&apiserver.url())?;
    let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let rs: ReplicaSet = serde_json::from_value(json!({"metadata": {"name": "owner"},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "x"}},
            "template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}}))?;
    let owner = sets.create(&rs).await?;
    let owned = |name: &str, uid: &str| -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": name, "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "owner", "uid": uid}]}}))
        .unwrap()
    };
    maps.create(&owned("live-owner", owner.metadata.uid.as_deref().unwrap())).await?;
    // Names an owner of the same name but another uid: that owner is gone.
    maps.create(&owned("stale-owner", "no-such-uid")).await?;
    let cm = TestControllerManager::start(&apiserver.url(), FLAGS).await?;
    wait_for(TIMEOUT, || async { maps.get_opt("stale-owner").await.is_ok_and(|m| m.is_none()) })
        .await
        .context("a ConfigMap whose owner is gone was kept")?;
    assert!(maps.get_opt("live-owner").await?.is_some(), "a ConfigMap whose owner exists was collected");
    sets.delete("owner", &DeleteParams::default()).await?;
    wait_for(TIMEOUT, || async { maps.get_opt("live-owner").await.is_ok_and(|m| m.is_none()) })
        .await
        .context("the dependent of a deleted ReplicaSet was kept")?;
    cm.stop().await
}
