//! The root-ca-cert-publisher against a real apiserver: every namespace
//! gets `kube-root-ca.crt` with the CA of `--root-ca-file`, restored when
//! changed or deleted.

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use rkube_client::{Api, Client, DeleteParams};
use rkube_testkit::{TestApiserver, TestControllerManager, wait_for};
use serde_json::json;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(20);
const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n";

async fn published(client: &Client, namespace: &str) -> Option<String> {
    let cm = Api::<ConfigMap>::namespaced(client.clone(), namespace).get_opt("kube-root-ca.crt").await.ok()??;
    cm.data?.get("ca.crt").cloned()
}

#[tokio::test]
async fn every_namespace_gets_the_root_ca_and_keeps_it() -> anyhow::Result<()> {
    let apiserver = TestApiserver::start().await?;
    let client = Client::new(&apiserver.url())?;
    let dir = std::env::temp_dir().join(format!("rkube-rootca-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let ca_file = dir.join("ca.crt");
    std::fs::write(&ca_file, CA)?;
    let root_ca = format!("--root-ca-file={}", ca_file.display());
    let cm = TestControllerManager::start(
        &apiserver.url(),
        &["--leader-elect=false", "--controllers=root-ca-cert-publisher", &root_ca],
    )
    .await?;
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        wait_for(TIMEOUT, || async { published(&client, ns).await.as_deref() == Some(CA) })
            .await
            .with_context(|| format!("no root CA in {ns}"))?;
    }
    let annotated = Api::<ConfigMap>::namespaced(client.clone(), "default").get("kube-root-ca.crt").await?;
    assert!(annotated.metadata.annotations.unwrap_or_default().contains_key("kubernetes.io/description"));

    Api::<Namespace>::all(client.clone())
        .create(&serde_json::from_value(json!({"metadata": {"name": "team"}}))?)
        .await?;
    wait_for(TIMEOUT, || async { published(&client, "team").await.as_deref() == Some(CA) }).await.context("new")?;

    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "team");
    cms.patch("kube-root-ca.crt", &json!({"data": {"ca.crt": "tampered"}})).await?;
    wait_for(TIMEOUT, || async { published(&client, "team").await.as_deref() == Some(CA) })
        .await
        .context("restored")?;
    cms.delete("kube-root-ca.crt", &DeleteParams::default()).await?;
    wait_for(TIMEOUT, || async { published(&client, "team").await.as_deref() == Some(CA) })
        .await
        .context("recreated")?;
    std::fs::remove_dir_all(&dir).ok();
    cm.stop().await
}

#[tokio::test]
async fn without_a_root_ca_file_nothing_is_published() -> anyhow::Result<()> {
    let apiserver = TestApiserver::start().await?;
    let client = Client::new(&apiserver.url())?;
    let cm = TestControllerManager::start(
        &apiserver.url(),
        &["--leader-elect=false", "--controllers=root-ca-cert-publisher,serviceaccount"],
    )
    .await?;
    // The serviceaccount controller shows the manager is up and working.
    wait_for(TIMEOUT, || async {
        Api::<k8s_openapi::api::core::v1::ServiceAccount>::namespaced(client.clone(), "default")
            .get_opt("default")
            .await
            .is_ok_and(|sa| sa.is_some())
    })
    .await?;
    assert_eq!(published(&client, "default").await, None);
    cm.stop().await
}
