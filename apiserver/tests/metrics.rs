//! The metrics API (`metrics.k8s.io/v1beta1`) without kubelets: discovery
//! lists it, a node whose kubelet never answers is skipped within the
//! per-node time limit (never holding up the list), and objects without
//! metrics are NotFound with kube-apiserver's message, over REST and gRPC.

use rkube_api::Reason;
use rkube_api::resource::lookup;
use rkube_client::Client;
use rkube_testkit::{HttpResponse, TestApiserver, http_request};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

async fn get(server: &TestApiserver, path: &str) -> HttpResponse {
    let url = format!("{}{path}", server.url());
    http_request("GET", &url, &[], b"").await.unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// A node whose kubelet endpoint is `port` on 127.0.0.1.
async fn node(client: &Client, name: &str, port: u16) -> anyhow::Result<()> {
    let nodes = lookup("nodes")?;
    let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {"pool": "a"}}});
    client.create(nodes, "", serde_json::to_vec(&node)?).await?;
    let mut node: Value = serde_json::from_slice(&client.get(nodes, "", name).await?.json)?;
    node["status"] = json!({
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
    });
    client.update_status(nodes, "", name, serde_json::to_vec(&node)?).await?;
    Ok(())
}

#[tokio::test]
async fn discovery_lists_the_metrics_group_and_its_two_resources() -> anyhow::Result<()> {
    let server = TestApiserver::start().await?;
    let groups = get(&server, "/apis").await.json();
    let names: Vec<&str> = groups["groups"].as_array().unwrap().iter().filter_map(|g| g["name"].as_str()).collect();
    assert!(names.contains(&"metrics.k8s.io"), "{names:?}");
    let group = get(&server, "/apis/metrics.k8s.io").await.json();
    assert_eq!(group["preferredVersion"]["version"], "v1beta1");
    let list = get(&server, "/apis/metrics.k8s.io/v1beta1").await.json();
    let kinds: Vec<(&str, &str, bool)> = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap(), r["kind"].as_str().unwrap(), r["namespaced"].as_bool().unwrap()))
        .collect();
    assert_eq!(kinds, [("nodes", "NodeMetrics", false), ("pods", "PodMetrics", true)]);
    // Not stored: writes are refused.
    let url = format!("{}/apis/metrics.k8s.io/v1beta1/nodes", server.url());
    assert_eq!(http_request("POST", &url, &[("Content-Type", "application/json")], b"{}").await?.code, 405);
    Ok(())
}

#[tokio::test]
async fn a_node_whose_kubelet_does_not_answer_is_skipped_in_bounded_time() -> anyhow::Result<()> {
    let server = TestApiserver::start().await?;
    let client = Client::new(&server.url())?;
    // A kubelet that accepts connections and never answers…
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let silent_port = silent.local_addr()?.port();
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((c, _)) = silent.accept().await {
            conns.push(c);
        }
    });
    node(&client, "silent", silent_port).await?;
    // …and one that is not there at all.
    node(&client, "gone", rkube_testkit::free_port()).await?;
    let pods = lookup("pods")?;
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"nodeName": "gone", "containers": [{"name": "c", "image": "rkube/toolbox:1.0"}]}});
    client.create(pods, "default", serde_json::to_vec(&pod)?).await?;

    let start = Instant::now();
    let r = get(&server, "/apis/metrics.k8s.io/v1beta1/nodes").await;
    assert_eq!(r.code, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["kind"], "NodeMetricsList");
    assert_eq!(r.json()["items"], json!([]));
    let took = start.elapsed();
    assert!(took < Duration::from_secs(8), "the list waited {took:?} for a silent kubelet");

    let r = get(&server, "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods?labelSelector=app%3Dweb").await;
    assert_eq!((r.code, r.json()["kind"].as_str(), &r.json()["items"]), (200, Some("PodMetricsList"), &json!([])));

    let r = get(&server, "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/web").await;
    let status = r.json();
    assert_eq!((r.code, status["kind"].as_str()), (404, Some("Status")), "{status}");
    assert_eq!(status["message"], "podmetrics.metrics.k8s.io \"web\" not found");
    let r = get(&server, "/apis/metrics.k8s.io/v1beta1/nodes/nope").await;
    assert_eq!((r.code, r.json()["message"].as_str()), (404, Some("nodemetrics.metrics.k8s.io \"nope\" not found")));
    let r = get(&server, "/apis/metrics.k8s.io/v1beta1/pods?labelSelector=app%20in%20(").await;
    assert_eq!(r.code, 400, "a bad selector is the client's error");

    // The same through gRPC.
    assert!(client.node_metrics().await?.is_empty());
    assert!(client.pod_metrics("", "").await?.is_empty());
    let e = client.metrics("pods", "default", "web", "").await.expect_err("no metrics");
    assert_eq!(e.reason, Reason::NotFound);
    let e = client.metrics("widgets", "", "", "").await.expect_err("no such resource");
    assert_eq!(e.reason, Reason::BadRequest);
    held.abort();
    Ok(())
}
