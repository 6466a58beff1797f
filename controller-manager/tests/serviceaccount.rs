//! The serviceaccount controller against a real apiserver: every active
//! namespace gets a `default` ServiceAccount, recreated when deleted.

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use rkube_client::{Api, Client, DeleteParams};
use rkube_testkit::{TestApiserver, TestControllerManager, wait_for};
use serde_json::json;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(20);

async fn default_sa(client: &Client, namespace: &str) -> Option<ServiceAccount> {
    Api::<ServiceAccount>::namespaced(client.clone(), namespace).get_opt("default").await.ok().flatten()
}

#[tokio::test]
async fn every_namespace_gets_a_default_service_account_recreated_when_deleted() -> anyhow::Result<()> {
    let apiserver = TestApiserver::start().await?;
    let client = Client::new(&apiserver.url())?;
    let cm = TestControllerManager::start(&apiserver.url(), &["--leader-elect=false", "--controllers=serviceaccount"])
        .await?;
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        wait_for(TIMEOUT, || async { default_sa(&client, ns).await.is_some() })
            .await
            .with_context(|| format!("no default service account in {ns}"))?;
    }

    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces.create(&serde_json::from_value(json!({"metadata": {"name": "team"}}))?).await?;
    wait_for(TIMEOUT, || async { default_sa(&client, "team").await.is_some() }).await.context("new namespace")?;
    let first = default_sa(&client, "team").await.context("created")?;
    assert_eq!(first.secrets, None, "no token secret");

    Api::<ServiceAccount>::namespaced(client.clone(), "team").delete("default", &DeleteParams::default()).await?;
    wait_for(TIMEOUT, || async {
        default_sa(&client, "team").await.is_some_and(|sa| sa.metadata.uid != first.metadata.uid)
    })
    .await
    .context("the deleted default service account was not recreated")?;

    // Other service accounts are the users' own: deleting one brings nothing back.
    let robot: ServiceAccount = serde_json::from_value(json!({"metadata": {"name": "robot"}}))?;
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "team");
    sas.create(&robot).await?;
    sas.delete("robot", &DeleteParams::default()).await?;

    // A terminating namespace (no namespace controller here, so it stays
    // so) does not get its default back.
    namespaces.delete("team", &DeleteParams::default()).await?;
    sas.delete("default", &DeleteParams::default()).await?;
    namespaces.create(&serde_json::from_value(json!({"metadata": {"name": "probe"}}))?).await?;
    wait_for(TIMEOUT, || async { default_sa(&client, "probe").await.is_some() }).await.context("probe")?;
    assert!(default_sa(&client, "team").await.is_none(), "not recreated in a terminating namespace");
    assert!(sas.get_opt("robot").await?.is_none());
    cm.stop().await
}
