//! The resourcequota controller against a real apiserver on a real etcd:
//! `status.used` follows creates and deletes, and the admission plugin
//! refuses what the controller's counts leave no room for.

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{Pod, ResourceQuota};
use rkube_client::{Api, Client, DeleteParams};
use rkube_testkit::{TestApiserver, TestControllerManager, wait_for};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(20);

fn used(q: &ResourceQuota) -> BTreeMap<String, String> {
    q.status
        .as_ref()
        .and_then(|s| s.used.as_ref())
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect()
}

async fn wait_for_used(quotas: &Api<ResourceQuota>, name: &str, want: Value) -> anyhow::Result<()> {
    let want: BTreeMap<String, String> = serde_json::from_value(want)?;
    let result = wait_for(TIMEOUT, || async { quotas.get(name).await.is_ok_and(|q| used(&q) == want) }).await;
    let now = quotas.get(name).await?;
    result.with_context(|| format!("status.used never {want:?}; now {:?}", used(&now)))
}

fn pod(name: &str, cpu: &str) -> anyhow::Result<Pod> {
    Ok(serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"containers": [{"name": "c",
        "image": "rkube/toolbox:1.0", "resources": {"requests": {"cpu": cpu}, "limits": {"cpu": cpu}}}]}}))?)
}

#[tokio::test]
async fn status_used_follows_creates_and_deletes() -> anyhow::Result<()> {
    let apiserver = TestApiserver::start().await?;
    let client = Client::new(&apiserver.url())?;
    let _cm = TestControllerManager::start(&apiserver.url(), &["--leader-elect=false", "--controllers=resourcequota"])
        .await?;
    let ns: k8s_openapi::api::core::v1::Namespace = serde_json::from_value(json!({"metadata": {"name": "team"}}))?;
    Api::all(client.clone()).create(&ns).await?;
    let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), "team");
    quotas
        .create(&serde_json::from_value(json!({"metadata": {"name": "compute"}, "spec": {"hard": {
            "pods": "2", "requests.cpu": "1000m", "count/configmaps": "5", "count/deployments.apps": "3"}}}))?)
        .await?;
    wait_for_used(
        &quotas,
        "compute",
        json!({"pods": "0", "requests.cpu": "0", "count/configmaps": "0", "count/deployments.apps": "0"}),
    )
    .await?;
    let q = quotas.get("compute").await?;
    assert_eq!(q.status.and_then(|s| s.hard).expect("hard")["requests.cpu"].0, "1", "status.hard is spec.hard");

    let pods: Api<Pod> = Api::namespaced(client.clone(), "team");
    pods.create(&pod("a", "300m")?).await?;
    pods.create(&pod("b", "500m")?).await?;
    let cm = json!({"metadata": {"name": "settings"}});
    Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(client.clone(), "team")
        .create(&serde_json::from_value(cm)?)
        .await?;
    wait_for_used(
        &quotas,
        "compute",
        json!({"pods": "2", "requests.cpu": "800m", "count/configmaps": "1", "count/deployments.apps": "0"}),
    )
    .await?;
    let refused = pods.create(&pod("c", "100m")?).await.expect_err("a third pod is over quota");
    assert_eq!(
        refused.message,
        "pods \"c\" is forbidden: exceeded quota: compute, requested: pods=1, used: pods=2, limited: pods=2"
    );

    // A finished pod stops counting; a deleted one too.
    pods.patch_status("a", &json!({"status": {"phase": "Succeeded"}})).await?;
    wait_for_used(
        &quotas,
        "compute",
        json!({"pods": "1", "requests.cpu": "500m", "count/configmaps": "1", "count/deployments.apps": "0"}),
    )
    .await?;
    pods.delete("b", &DeleteParams { grace_period_seconds: Some(0), ..Default::default() }).await?;
    wait_for_used(
        &quotas,
        "compute",
        json!({"pods": "0", "requests.cpu": "0", "count/configmaps": "1", "count/deployments.apps": "0"}),
    )
    .await?;
    pods.create(&pod("c", "100m")?).await?;
    Ok(())
}
