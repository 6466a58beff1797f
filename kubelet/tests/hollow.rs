//! Hollow nodes (the fake runtime) against a real apiserver: several nodes
//! in one process register and become Ready, and run pods bound to them;
//! they share one ConfigMap watch, and a configMap volume follows updates.

use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use rkube_client::{Api, Client, DeleteParams};
use rkube_kubelet::HollowNodes;
use rkube_testkit::{TestApiserver, wait_for};
use serde_json::json;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

fn ready(n: &Node) -> bool {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hollow_nodes_register_and_run_pods_without_containers() -> anyhow::Result<()> {
    let apiserver = TestApiserver::start().await?;
    let client = Client::new(&apiserver.url())?;
    let mut hollow = HollowNodes::new(&format!("h{:06x}", fastrand::u32(..0xffffff)), 3);
    hollow.root_dir = std::env::temp_dir().join(format!("rkubelet-hollow-test-{}", fastrand::u64(..)));
    let root_dir = hollow.root_dir.clone();
    let names = hollow.names();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn({
        let (client, shutdown) = (client.clone(), shutdown.clone());
        async move { hollow.run(client, shutdown).await }
    });

    let nodes: Api<Node> = Api::all(client.clone());
    wait_for(Duration::from_secs(30), || async {
        let list = nodes.list(&Default::default()).await.map(|l| l.items).unwrap_or_default();
        names.iter().all(|name| list.iter().any(|n| n.metadata.name.as_ref() == Some(name) && ready(n)))
    })
    .await?;
    let node = nodes.get(&names[1]).await?;
    let info = node.status.and_then(|s| s.node_info).unwrap_or_default();
    assert!(info.container_runtime_version.starts_with("fake://"), "{}", info.container_runtime_version);

    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    cms.create(&serde_json::from_value(json!({"metadata": {"name": "cfg"}, "data": {"k": "1"}}))?).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {
        "containers": [{"name": "a", "image": "nginx:1.25"}, {"name": "b", "image": "redis:7"}],
        "volumes": [{"name": "cfg", "configMap": {"name": "cfg"}}]}}))?;
    let uid = pods.create(&pod).await?.metadata.uid.unwrap_or_default();
    client.bind("default", "p", &names[1]).await?;
    wait_for(Duration::from_secs(20), || async {
        pods.get("p").await.ok().and_then(|p| p.status).is_some_and(|s| {
            s.phase.as_deref() == Some("Running")
                && s.pod_ip.is_some()
                && s.container_statuses.unwrap_or_default().iter().filter(|c| c.ready).count() == 2
        })
    })
    .await?;

    // The projected file on the hollow node's disk follows the ConfigMap at once.
    let file = root_dir.join(&names[1]).join("pods").join(&uid).join("volumes/kubernetes.io~configmap/cfg/k");
    assert_eq!(std::fs::read_to_string(&file)?, "1");
    let started = Instant::now();
    cms.patch("cfg", &json!({"data": {"k": "2"}})).await?;
    wait_for(Duration::from_secs(20), || async { std::fs::read_to_string(&file).is_ok_and(|s| s == "2") }).await?;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "the update took {took:?} to reach the volume");
    // Three nodes, one process: one ConfigMap watch, not one per node.
    let (_, metrics) = rkube_testkit::http_get(&format!("{}/metrics", apiserver.url())).await?;
    let watches: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{") && l.contains(r#"verb="watch""#))
        .filter(|l| l.contains(r#"resource="configmaps""#))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .sum();
    assert!((1.0..3.0).contains(&watches), "{watches} ConfigMap watches for 3 hollow nodes");

    pods.delete("p", &DeleteParams::default()).await?;
    wait_for(Duration::from_secs(20), || async { pods.get_opt("p").await.is_ok_and(|p| p.is_none()) }).await?;

    shutdown.cancel();
    let metrics = running.await?;
    assert_eq!(metrics.len(), 3);
    Ok(())
}
