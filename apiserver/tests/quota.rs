//! The ResourceQuota and LimitRanger admission plugins (on by default)
//! against a real etcd. No controller runs: tests write a quota's status
//! themselves, as the resourcequota controller would.

use rkube_api::Reason;
use rkube_api::resource::lookup;
use rkube_client::{Client, DeleteParams};
use rkube_testkit::{TestApiserver, wait_for};
use serde_json::{Value, json};
use std::time::Duration;

fn body(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("serializes")
}

fn json_of(o: &rkube_proto::v1::Object) -> Value {
    serde_json::from_slice(&o.json).expect("valid JSON")
}

fn pod(name: &str, resources: Value) -> Vec<u8> {
    body(&json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "rkube/toolbox:1.0", "resources": resources}]}}))
}

async fn namespace(client: &Client, name: &str) -> anyhow::Result<()> {
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    client.create(lookup("namespaces")?, "", body(&ns)).await?;
    Ok(())
}

/// Creates a quota with `hard`, and its status as the controller would
/// write it with nothing used yet.
async fn quota(client: &Client, ns: &str, name: &str, hard: Value, used: Value) -> anyhow::Result<()> {
    let quotas = lookup("resourcequotas")?;
    let q = json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": name}, "spec": {"hard": hard}});
    let mut created = json_of(&client.create(quotas, ns, body(&q)).await?);
    created["status"] = json!({"hard": hard, "used": used});
    client.update_status(quotas, ns, name, body(&created)).await?;
    Ok(())
}

async fn used(client: &Client, ns: &str, name: &str) -> anyhow::Result<Value> {
    Ok(json_of(&client.get(lookup("resourcequotas")?, ns, name).await?)["status"]["used"].clone())
}

#[tokio::test]
async fn a_quota_of_four_pods_refuses_the_fifth_with_kubernetes_message() -> anyhow::Result<()> {
    let server = TestApiserver::start().await?;
    let client = Client::new(&server.url())?;
    namespace(&client, "q1").await?;
    quota(&client, "q1", "compute-resources", json!({"pods": "4"}), json!({"pods": "0"})).await?;
    let pods = lookup("pods")?;
    for i in 1..=4 {
        client.create(pods, "q1", pod(&format!("p{i}"), json!({}))).await?;
    }
    assert_eq!(used(&client, "q1", "compute-resources").await?, json!({"pods": "4"}), "admission charged each pod");
    let refused = client.create(pods, "q1", pod("p5", json!({}))).await.expect_err("over quota");
    assert_eq!(refused.reason, Reason::Forbidden);
    assert_eq!(
        refused.message,
        "pods \"p5\" is forbidden: exceeded quota: compute-resources, requested: pods=1, used: pods=4, limited: pods=4"
    );
    // Other kinds and other namespaces are not limited by it.
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}});
    client.create(lookup("configmaps")?, "q1", body(&cm)).await?;
    client.create(pods, "default", pod("p5", json!({}))).await?;
    Ok(())
}

#[tokio::test]
async fn concurrent_creates_admit_exactly_the_limit() -> anyhow::Result<()> {
    let server = TestApiserver::start().await?;
    let client = Client::new(&server.url())?;
    namespace(&client, "q2").await?;
    quota(&client, "q2", "pods", json!({"pods": "4"}), json!({"pods": "0"})).await?;
    let pods = lookup("pods")?;
    let creates = (0..10).map(|i| {
        let client = client.clone();
        async move { client.create(pods, "q2", pod(&format!("p{i}"), json!({}))).await }
    });
    let results = futures::future::join_all(creates).await;
    let admitted = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(admitted, 4, "{results:?}");
    for refused in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(refused.reason, Reason::Forbidden, "{refused:?}");
        assert!(refused.message.contains("exceeded quota: pods"), "{}", refused.message);
    }
    assert_eq!(used(&client, "q2", "pods").await?, json!({"pods": "4"}));
    Ok(())
}

#[tokio::test]
async fn compute_quotas_require_and_count_requests() -> anyhow::Result<()> {
    let server = TestApiserver::start().await?;
    let client = Client::new(&server.url())?;
    namespace(&client, "q3").await?;
    quota(
        &client,
        "q3",
        "compute",
        json!({"requests.cpu": "1", "limits.memory": "1Gi"}),
        json!({"requests.cpu": "0", "limits.memory": "0"}),
    )
    .await?;
    let pods = lookup("pods")?;
    let bare = client.create(pods, "q3", pod("bare", json!({}))).await.expect_err("no requests");
    assert_eq!(
        bare.message,
        "pods \"bare\" is forbidden: failed quota: compute: must specify limits.memory for: c; requests.cpu for: c"
    );
    // The cpu request defaults to the limit before the quota measures it.
    let sized = json!({"limits": {"cpu": "600m", "memory": "256Mi"}});
    client.create(pods, "q3", pod("a", sized.clone())).await?;
    assert_eq!(used(&client, "q3", "compute").await?, json!({"requests.cpu": "600m", "limits.memory": "256Mi"}));
    let over = client.create(pods, "q3", pod("b", sized)).await.expect_err("over cpu");
    assert_eq!(
        over.message,
        "pods \"b\" is forbidden: exceeded quota: compute, requested: requests.cpu=600m, used: requests.cpu=600m, limited: requests.cpu=1"
    );
    Ok(())
}

#[tokio::test]
async fn limit_range_defaults_show_in_the_stored_pod_and_max_is_enforced() -> anyhow::Result<()> {
    let server = TestApiserver::start().await?;
    let client = Client::new(&server.url())?;
    namespace(&client, "lr").await?;
    let lr = json!({"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "limits"},
        "spec": {"limits": [{"type": "Container", "max": {"cpu": "500m"},
            "default": {"cpu": "200m", "memory": "128Mi"}, "defaultRequest": {"cpu": "100m"}}]}});
    client.create(lookup("limitranges")?, "lr", body(&lr)).await?;
    let pods = lookup("pods")?;
    let stored = json_of(&client.create(pods, "lr", pod("defaulted", json!({}))).await?);
    assert_eq!(
        stored["spec"]["containers"][0]["resources"],
        json!({"limits": {"cpu": "200m", "memory": "128Mi"}, "requests": {"cpu": "100m", "memory": "128Mi"}}),
        "{stored}"
    );
    assert_eq!(
        stored["metadata"]["annotations"]["kubernetes.io/limit-ranger"],
        "LimitRanger plugin set: cpu, memory request for container c; cpu, memory limit for container c"
    );
    let big = client.create(pods, "lr", pod("big", json!({"limits": {"cpu": "1"}}))).await.expect_err("over max");
    assert_eq!(big.reason, Reason::Forbidden);
    assert_eq!(big.message, "pods \"big\" is forbidden: maximum cpu usage per Container is 500m, but limit is 1");
    Ok(())
}

#[tokio::test]
async fn quotas_cannot_lock_the_apiserver_out_of_its_bootstrap_objects() -> anyhow::Result<()> {
    let mut server = TestApiserver::start().await?;
    let client = Client::new(&server.url())?;
    let services = lookup("services")?;
    quota(&client, "default", "no-services", json!({"services": "0"}), json!({"services": "0"})).await?;
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"ports": [{"port": 80}]}});
    let refused = client.create(services, "default", body(&svc)).await.expect_err("no services allowed");
    assert_eq!(
        refused.message,
        "services \"web\" is forbidden: exceeded quota: no-services, requested: services=1, used: services=0, limited: services=0"
    );
    client.delete(services, "default", "kubernetes", &DeleteParams::default()).await?;
    server.restart().await?;
    let client = Client::new(&server.url())?;
    wait_for(Duration::from_secs(20), || async { client.get(services, "default", "kubernetes").await.is_ok() }).await?;
    Ok(())
}
