//! The scheduler against a real apiserver (real etcd): Node objects created
//! through the API, pods created through the API, the scheduler running
//! in-process, and the outcome read back from the API.

use clap::Parser as _;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Node, Pod, ReplicationController};
use rkube_client::{Api, Client, DeleteParams, ListParams};
use rkube_scheduler::{App, Args};
use rkube_testkit::{TestApiserver, http_get, wait_for};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(20);

/// An apiserver with the scheduler running against it.
struct Cluster {
    _server: TestApiserver,
    client: Client,
    health: SocketAddr,
    shutdown: CancellationToken,
    scheduler: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Cluster {
    async fn start() -> anyhow::Result<Cluster> {
        Self::start_with(&[]).await
    }

    async fn start_with(flags: &[&str]) -> anyhow::Result<Cluster> {
        let server = TestApiserver::start().await?;
        let client = Client::new(&server.url())?;
        let url = server.url();
        let mut argv = vec!["rkube-scheduler", "--server", &url, "--healthz-bind-address", "127.0.0.1:0"];
        argv.extend_from_slice(flags);
        let app = App::build(Args::try_parse_from(argv)?).await?;
        let health = app.health_addr();
        let shutdown = CancellationToken::new();
        let scheduler = Some(tokio::spawn(app.run(shutdown.clone())));
        Ok(Cluster { _server: server, client, health, shutdown, scheduler })
    }

    fn nodes(&self) -> Api<Node> {
        Api::all(self.client.clone())
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), "default")
    }

    /// Creates a Ready node with `cpu` and 4Gi for 110 pods, and these extra
    /// fields (merged into the node's JSON).
    async fn node(&self, name: &str, cpu: &str, extra: Value) -> anyhow::Result<()> {
        let mut node = json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "status": {
                "capacity": {"cpu": cpu, "memory": "4Gi", "pods": "110"},
                "allocatable": {"cpu": cpu, "memory": "4Gi", "pods": "110"},
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
            },
        });
        merge(&mut node, extra);
        let node: Node = serde_json::from_value(node)?;
        let created = self.nodes().create(&node).await?;
        if created.status.as_ref().and_then(|s| s.allocatable.as_ref()).is_none() {
            let mut with_status = created;
            with_status.status = node.status;
            self.nodes().replace_status(&with_status).await?;
        }
        Ok(())
    }

    /// Creates pod `name` with one container requesting `cpu`, and these extra fields.
    async fn pod(&self, name: &str, cpu: &str, extra: Value) -> anyhow::Result<()> {
        let mut pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"containers": [{"name": "app", "image": "rkube/toolbox:1.0",
                "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}}}]},
        });
        merge(&mut pod, extra);
        self.pods().create(&serde_json::from_value(pod)?).await?;
        Ok(())
    }

    async fn node_of(&self, pod: &str) -> Option<String> {
        let pod = self.pods().get(pod).await.ok()?;
        pod.spec.and_then(|s| s.node_name).filter(|n| !n.is_empty())
    }

    /// Waits until `pod` is bound; returns its node.
    async fn bound(&self, pod: &str) -> anyhow::Result<String> {
        wait_for(WAIT, || async { self.node_of(pod).await.is_some() })
            .await
            .map_err(|e| anyhow::anyhow!("pod {pod} was not bound: {e}"))?;
        Ok(self.node_of(pod).await.unwrap_or_default())
    }

    /// The PodScheduled condition's (status, reason, message).
    async fn scheduled_condition(&self, pod: &str) -> Option<(String, String, String)> {
        let pod = self.pods().get(pod).await.ok()?;
        let c = pod.status?.conditions?.into_iter().find(|c| c.type_ == "PodScheduled")?;
        Some((c.status, c.reason.unwrap_or_default(), c.message.unwrap_or_default()))
    }

    /// Waits until `pod` is Unschedulable with `message`.
    async fn unschedulable(&self, pod: &str, message: &str) -> anyhow::Result<()> {
        let want = ("False".to_string(), "Unschedulable".to_string(), message.to_string());
        let waited = wait_for(WAIT, || async { self.scheduled_condition(pod).await.as_ref() == Some(&want) }).await;
        if waited.is_err() {
            anyhow::bail!("pod {pod}: PodScheduled is {:?}, not {want:?}", self.scheduled_condition(pod).await);
        }
        Ok(())
    }

    /// The events about `pod` with `reason`.
    async fn events(&self, pod: &str, reason: &str) -> Vec<Event> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), "default");
        let fields = format!("involvedObject.name={pod},reason={reason}");
        api.list(&ListParams::default().fields(&fields)).await.map(|l| l.items).unwrap_or_default()
    }

    /// Waits until the scheduler's cache holds `n` nodes, so that messages count them all.
    async fn wait_nodes(&self, n: usize) -> anyhow::Result<()> {
        let line = format!("scheduler_cache_size{{type=\"nodes\"}} {n}\n");
        wait_for(WAIT, || async { self.metrics().await.is_ok_and(|m| m.contains(&line)) }).await
    }

    async fn metrics(&self) -> anyhow::Result<String> {
        Ok(http_get(&format!("http://{}/metrics", self.health)).await?.1)
    }

    async fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        if let Some(task) = self.scheduler.take() {
            tokio::time::timeout(WAIT, task).await???;
        }
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// JSON merge of `extra` into `into` (objects merge, everything else replaces).
fn merge(into: &mut Value, extra: Value) {
    match (into, extra) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
}

#[tokio::test]
async fn a_pod_is_bound_to_a_node_with_a_scheduled_event() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    c.node("node-1", "2", json!({})).await?;
    c.pod("web", "100m", json!({})).await?;
    assert_eq!(c.bound("web").await?, "node-1");

    let condition = c.scheduled_condition("web").await;
    assert_eq!(condition.map(|c| c.0).as_deref(), Some("True"));
    wait_for(WAIT, || async { !c.events("web", "Scheduled").await.is_empty() }).await?;
    let event = c.events("web", "Scheduled").await.remove(0);
    assert_eq!(event.message.as_deref(), Some("Successfully assigned default/web to node-1"));
    assert_eq!(event.type_.as_deref(), Some("Normal"));
    assert_eq!(event.source.and_then(|s| s.component).as_deref(), Some("default-scheduler"));
    assert_eq!(event.involved_object.kind.as_deref(), Some("Pod"));
    assert_eq!(event.involved_object.name.as_deref(), Some("web"));

    let metrics = c.metrics().await?;
    assert!(metrics.contains("scheduler_pods_scheduled_total 1"), "{metrics}");
    assert!(
        metrics.contains("scheduler_schedule_attempts_total{profile=\"default-scheduler\",result=\"scheduled\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("scheduler_pod_scheduling_sli_duration_seconds_count 1"), "{metrics}");
    c.stop().await
}

#[tokio::test]
async fn node_selector_picks_the_labelled_node() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    c.node("node-1", "2", json!({})).await?;
    c.node("node-2", "2", json!({"metadata": {"labels": {"zone": "north"}}})).await?;
    c.node("node-3", "2", json!({"metadata": {"labels": {"zone": "south"}}})).await?;
    for i in 0..3 {
        c.pod(&format!("north-{i}"), "100m", json!({"spec": {"nodeSelector": {"zone": "north"}}})).await?;
    }
    for i in 0..3 {
        assert_eq!(c.bound(&format!("north-{i}")).await?, "node-2");
    }
    c.stop().await
}

#[tokio::test]
async fn insufficient_cpu_keeps_a_pod_pending_until_a_node_fits() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    c.node("node-1", "4", json!({"metadata": {"labels": {"zone": "south"}}})).await?;
    c.node("node-2", "4", json!({"metadata": {"labels": {"zone": "south"}}})).await?;
    c.node("node-3", "1", json!({"metadata": {"labels": {"zone": "north"}}})).await?;
    c.wait_nodes(3).await?;
    c.pod("big", "2", json!({"spec": {"nodeSelector": {"zone": "north"}}})).await?;

    let message = "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't match Pod's node affinity/selector.";
    c.unschedulable("big", message).await?;
    let pod = c.pods().get("big").await?;
    assert_eq!(pod.status.and_then(|s| s.phase).as_deref(), Some("Pending"));
    assert_eq!(c.node_of("big").await, None);
    wait_for(WAIT, || async { !c.events("big", "FailedScheduling").await.is_empty() }).await?;
    let failed = c.events("big", "FailedScheduling").await;
    assert_eq!(failed.len(), 1, "one event, counted, however often it is retried");
    assert_eq!(failed[0].message.as_deref(), Some(message));
    assert_eq!(failed[0].type_.as_deref(), Some("Warning"));
    // Retried with back-off: the same failure counts on the same event.
    let counted = || async { c.events("big", "FailedScheduling").await.first().and_then(|e| e.count) >= Some(2) };
    wait_for(WAIT, counted).await?;
    assert_eq!(c.events("big", "FailedScheduling").await.len(), 1);

    // A node that fits appears: the pod is scheduled without being touched.
    c.node("node-4", "4", json!({"metadata": {"labels": {"zone": "north"}}})).await?;
    assert_eq!(c.bound("big").await?, "node-4");
    let metrics = c.metrics().await?;
    assert!(metrics.contains("scheduler_pods_scheduled_total 1"), "{metrics}");
    c.stop().await
}

#[tokio::test]
async fn required_node_affinity_with_not_in_and_gt() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    c.node("hdd-fast", "2", json!({"metadata": {"labels": {"disk": "hdd", "cores": "16"}}})).await?;
    c.node("ssd-slow", "2", json!({"metadata": {"labels": {"disk": "ssd", "cores": "2"}}})).await?;
    c.node("ssd-fast", "2", json!({"metadata": {"labels": {"disk": "ssd", "cores": "8"}}})).await?;
    c.wait_nodes(3).await?;
    let affinity = |op: &str, cores: &str| {
        json!({"spec": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [
                {"key": "disk", "operator": "NotIn", "values": ["hdd"]},
                {"key": "cores", "operator": op, "values": [cores]}]}]}}}}})
    };
    c.pod("fast", "100m", affinity("Gt", "4")).await?;
    c.pod("slow", "100m", affinity("Lt", "4")).await?;
    c.pod("none", "100m", affinity("Gt", "32")).await?;
    assert_eq!(c.bound("fast").await?, "ssd-fast");
    assert_eq!(c.bound("slow").await?, "ssd-slow");
    c.unschedulable("none", "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector.").await?;
    c.stop().await
}

#[tokio::test]
async fn taints_repel_pods_that_do_not_tolerate_them() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    c.node("db-node", "2", json!({"spec": {"taints": [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]}}))
        .await?;
    c.node("sick-node", "2", json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}})).await?;
    c.wait_nodes(2).await?;
    c.pod("app", "100m", json!({})).await?;
    c.unschedulable(
        "app",
        "0/2 nodes are available: 1 node(s) had untolerated taint {dedicated: db}, \
         1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }.",
    )
    .await?;
    let toleration = json!({"spec": {"tolerations": [
        {"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}]}});
    c.pod("db", "100m", toleration).await?;
    assert_eq!(c.bound("db").await?, "db-node");
    c.pod("anything", "100m", json!({"spec": {"tolerations": [{"operator": "Exists"}]}})).await?;
    c.bound("anything").await?;

    // The sick node recovers: the waiting pod lands there.
    let mut sick = c.nodes().get("sick-node").await?;
    if let Some(status) = sick.status.as_mut() {
        status.conditions = Some(vec![serde_json::from_value(json!({"type": "Ready", "status": "True"}))?]);
    }
    c.nodes().replace_status(&sick).await?;
    assert_eq!(c.bound("app").await?, "sick-node");
    c.stop().await
}

#[tokio::test]
async fn pods_of_one_controller_spread_across_nodes() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    // A big node that least-allocated alone would always prefer.
    c.node("big", "32", json!({"status": {"allocatable": {"memory": "64Gi"}, "capacity": {"memory": "64Gi"}}})).await?;
    c.node("small-1", "2", json!({})).await?;
    c.node("small-2", "2", json!({})).await?;
    c.wait_nodes(3).await?;

    let rcs: Api<ReplicationController> = Api::namespaced(c.client.clone(), "default");
    let rc: ReplicationController = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ReplicationController",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 3, "selector": {"app": "web"}, "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "app", "image": "rkube/toolbox:1.0"}]}}}}))?;
    let rc = rcs.create(&rc).await?;
    let uid = rc.metadata.uid.clone().unwrap_or_default();
    let owned = json!({"metadata": {"labels": {"app": "web"}, "ownerReferences": [{
        "apiVersion": "v1", "kind": "ReplicationController", "name": "web", "uid": uid,
        "controller": true, "blockOwnerDeletion": true}]}});
    let mut placed = BTreeMap::new();
    for i in 0..3 {
        let name = format!("web-{i}");
        c.pod(&name, "100m", owned.clone()).await?;
        *placed.entry(c.bound(&name).await?).or_insert(0) += 1;
    }
    assert_eq!(placed, BTreeMap::from([("big".to_string(), 1), ("small-1".into(), 1), ("small-2".into(), 1)]));

    // Pods without a controller all go to the emptiest node.
    for i in 0..3 {
        let name = format!("loner-{i}");
        c.pod(&name, "100m", json!({})).await?;
        assert_eq!(c.bound(&name).await?, "big");
    }
    c.stop().await
}

#[tokio::test]
async fn a_taken_host_port_keeps_pods_off_the_node() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    c.node("node-1", "2", json!({})).await?;
    c.node("node-2", "2", json!({})).await?;
    c.wait_nodes(2).await?;
    let host_port = json!({"spec": {"containers": [{"name": "app", "image": "rkube/toolbox:1.0",
        "ports": [{"containerPort": 80, "hostPort": 8080}]}]}});
    c.pod("web-1", "100m", host_port.clone()).await?;
    let first = c.bound("web-1").await?;
    c.pod("web-2", "100m", host_port.clone()).await?;
    let second = c.bound("web-2").await?;
    assert_ne!(first, second, "both want host port 8080");
    c.pod("web-3", "100m", host_port).await?;
    c.unschedulable("web-3", "0/2 nodes are available: 2 node(s) didn't have free ports for the requested pod ports.")
        .await?;

    // Deleting a pod frees its port: the waiting pod takes its place.
    c.pods().delete("web-1", &DeleteParams { grace_period_seconds: Some(0), ..Default::default() }).await?;
    assert_eq!(c.bound("web-3").await?, first);
    c.stop().await
}

#[tokio::test]
async fn pods_for_another_scheduler_are_left_alone() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    c.node("node-1", "2", json!({})).await?;
    c.pod("theirs", "100m", json!({"spec": {"schedulerName": "other-scheduler"}})).await?;
    c.pod("ours", "100m", json!({})).await?;
    c.bound("ours").await?;
    assert_eq!(c.node_of("theirs").await, None);
    assert_eq!(c.scheduled_condition("theirs").await, None);
    c.stop().await
}

#[tokio::test]
async fn a_second_scheduler_name_schedules_its_own_pods() -> anyhow::Result<()> {
    let c = Cluster::start_with(&["--scheduler-name", "my-scheduler"]).await?;
    c.node("node-1", "2", json!({})).await?;
    c.pod("default", "100m", json!({})).await?;
    c.pod("mine", "100m", json!({"spec": {"schedulerName": "my-scheduler"}})).await?;
    c.bound("mine").await?;
    wait_for(WAIT, || async { !c.events("mine", "Scheduled").await.is_empty() }).await?;
    let event = c.events("mine", "Scheduled").await.remove(0);
    assert_eq!(event.source.and_then(|s| s.component).as_deref(), Some("my-scheduler"));
    assert_eq!(c.node_of("default").await, None);
    c.stop().await
}

#[tokio::test]
async fn with_leader_election_the_lease_holder_schedules() -> anyhow::Result<()> {
    let c = Cluster::start_with(&[
        "--leader-elect",
        "--leader-elect-lease-duration",
        "2s",
        "--leader-elect-renew-deadline",
        "1500ms",
        "--leader-elect-retry-period",
        "500ms",
    ])
    .await?;
    c.node("node-1", "2", json!({})).await?;
    c.pod("web", "100m", json!({})).await?;
    c.bound("web").await?;
    let leases: Api<Lease> = Api::namespaced(c.client.clone(), "kube-system");
    let lease = leases.get("default-scheduler").await?;
    let holder = lease.spec.and_then(|s| s.holder_identity).unwrap_or_default();
    assert!(!holder.is_empty(), "the scheduler holds the lease");
    assert!(c.metrics().await?.contains("leader_election_master_status{name=\"default-scheduler\"} 1"));
    c.stop().await?;
    Ok(())
}

#[tokio::test]
async fn many_pods_fill_nodes_without_overcommitting() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    for i in 0..5 {
        c.node(&format!("node-{i}"), "1", json!({})).await?;
    }
    c.wait_nodes(5).await?;
    // 5 nodes × 1 CPU hold 20 pods of 250m; the last 5 find no room.
    let pods = c.pods();
    let mut creates = Vec::new();
    for i in 0..25 {
        let pods = pods.clone();
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": format!("p-{i:02}"), "namespace": "default"},
            "spec": {"containers": [{"name": "app", "image": "rkube/toolbox:1.0",
                "resources": {"requests": {"cpu": "250m"}}}]}}))?;
        creates.push(tokio::spawn(async move { pods.create(&pod).await }));
    }
    for create in creates {
        create.await??;
    }
    let per_node = || async {
        let list = pods.list(&ListParams::default()).await.map(|l| l.items).unwrap_or_default();
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for p in list {
            *counts.entry(p.spec.and_then(|s| s.node_name).unwrap_or_default()).or_default() += 1;
        }
        counts
    };
    wait_for(WAIT, || async { per_node().await.get("").copied() == Some(5) && per_node().await.len() == 6 }).await?;
    let counts = per_node().await;
    for i in 0..5 {
        assert_eq!(counts.get(&format!("node-{i}")), Some(&4), "{counts:?}");
    }
    let message = "0/5 nodes are available: 5 Insufficient cpu.";
    let unbound: Vec<String> = pods
        .list(&ListParams::default().fields("spec.nodeName="))
        .await?
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect();
    for name in &unbound {
        c.unschedulable(name, message).await?;
    }
    c.stop().await
}
