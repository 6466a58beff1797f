//! The node-lifecycle and taint-eviction controllers against a real
//! apiserver on a real etcd. The test plays two kubelets (Lease renewals
//! and Ready status); one of them falls silent, and comes back.

use anyhow::Context as _;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use k8s_openapi::jiff::Timestamp;
use rkube_client::{Api, Client, ListParams};
use rkube_testkit::{TestApiserver, TestControllerManager, wait_for};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const TIMEOUT: Duration = Duration::from_secs(30);
const UNREACHABLE: &str = "node.kubernetes.io/unreachable";

/// Registers `node` and keeps it alive as a kubelet would — its Lease
/// renewed and its Ready status posted every 300 ms — until the token is
/// cancelled.
async fn kubelet(client: Client, node: &str) -> anyhow::Result<CancellationToken> {
    let nodes: Api<Node> = Api::all(client.clone());
    if nodes.get_opt(node).await?.is_none() {
        nodes.create(&serde_json::from_value(json!({"metadata": {"name": node}}))?).await?;
    }
    let stop = CancellationToken::new();
    let (token, node) = (stop.clone(), node.to_string());
    tokio::spawn(async move {
        let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
        while !token.is_cancelled() {
            let now = Timestamp::now().to_string();
            let lease = json!({"metadata": {"name": node, "namespace": "kube-node-lease"},
                "spec": {"holderIdentity": node, "leaseDurationSeconds": 40, "renewTime": now}});
            let renewed = match leases.get_opt(&node).await {
                Ok(Some(_)) => leases.patch(&node, &json!({"spec": {"renewTime": now}})).await.map(drop),
                _ => match serde_json::from_value(lease) {
                    Ok(l) => leases.create(&l).await.map(drop),
                    Err(_) => Ok(()),
                },
            };
            if let Err(e) = renewed {
                eprintln!("renewing the lease of {node}: {e}");
            }
            let conditions = json!([{"type": "Ready", "status": "True", "reason": "KubeletReady",
                "message": "kubelet is posting ready status", "lastHeartbeatTime": now, "lastTransitionTime": now},
                {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory",
                 "lastHeartbeatTime": now, "lastTransitionTime": now}]);
            let _ = nodes.patch_status(&node, &json!({"status": {"conditions": conditions}})).await;
            tokio::select! {
                _ = token.cancelled() => {}
                _ = tokio::time::sleep(Duration::from_millis(300)) => {}
            }
        }
    });
    Ok(stop)
}

fn condition(node: &Node, type_: &str) -> Option<(String, String, String)> {
    let c = node.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == type_)?;
    Some((c.status.clone(), c.reason.clone().unwrap_or_default(), c.message.clone().unwrap_or_default()))
}

/// `node`'s taints as (key, effect, has timeAdded).
fn taints(node: &Node) -> Vec<(String, String, bool)> {
    let list = node.spec.as_ref().and_then(|s| s.taints.clone()).unwrap_or_default();
    list.into_iter().map(|t| (t.key, t.effect, t.time_added.is_some())).collect()
}

fn pod(name: &str, node: &str, tolerations: Value) -> anyhow::Result<Pod> {
    Ok(serde_json::from_value(json!({"metadata": {"name": name, "namespace": "default"},
        "spec": {"nodeName": node, "tolerations": tolerations,
            "containers": [{"name": "c", "image": "rkube/toolbox:1.0"}]}}))?)
}

fn ready(p: &Pod) -> Option<String> {
    let conditions = p.status.as_ref()?.conditions.as_ref()?;
    conditions.iter().find(|c| c.type_ == "Ready").map(|c| c.status.clone())
}

#[tokio::test]
async fn a_silent_node_turns_unknown_is_tainted_and_its_pods_evicted_after_their_tolerations() -> anyhow::Result<()> {
    let apiserver = TestApiserver::start().await?;
    let client = Client::new(&apiserver.url())?;
    let nodes: Api<Node> = Api::all(client.clone());
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let _cm = TestControllerManager::start(
        &apiserver.url(),
        &[
            "--leader-elect=false",
            "--controllers=node-lifecycle,taint-eviction-controller",
            "--node-monitor-period=500ms",
            "--node-monitor-grace-period=3s",
            "--node-startup-grace-period=3s",
        ],
    )
    .await?;
    let healthy = kubelet(client.clone(), "healthy").await?;
    let failing = kubelet(client.clone(), "failing").await?;
    wait_for(TIMEOUT, || async {
        let ready = |n: &str| {
            let nodes = nodes.clone();
            let n = n.to_string();
            async move { nodes.get(&n).await.is_ok_and(|n| condition(&n, "Ready").is_some_and(|c| c.0 == "True")) }
        };
        ready("healthy").await && ready("failing").await
    })
    .await
    .context("the nodes never posted Ready")?;

    // Pods on the failing node: one tolerating its loss for 2 s, one
    // forever, one with the default tolerations (300 s, from admission);
    // one on the healthy node.
    let short = json!([{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2}]);
    pods.create(&pod("short", "failing", short)?).await?;
    pods.create(&pod("forever", "failing", json!([{"key": UNREACHABLE, "operator": "Exists"}]))?).await?;
    pods.create(&pod("default", "failing", json!([]))?).await?;
    pods.create(&pod("elsewhere", "healthy", json!([]))?).await?;
    let default_tolerations = pods.get("default").await?.spec.and_then(|s| s.tolerations).unwrap_or_default();
    assert!(
        default_tolerations.iter().any(|t| t.key.as_deref() == Some(UNREACHABLE) && t.toleration_seconds == Some(300)),
        "DefaultTolerationSeconds: {default_tolerations:?}"
    );
    for name in ["short", "forever", "default", "elsewhere"] {
        let now = Timestamp::now().to_string();
        let status = json!({"status": {"phase": "Running",
            "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                {"type": "Ready", "status": "True", "lastTransitionTime": now}]}});
        pods.patch_status(name, &status).await?;
    }

    // The kubelet of "failing" stops.
    failing.cancel();
    let stopped = Instant::now();
    wait_for(TIMEOUT, || async {
        nodes.get("failing").await.is_ok_and(|n| condition(&n, "Ready").is_some_and(|c| c.0 == "Unknown"))
    })
    .await
    .context("the silent node never turned Unknown")?;
    let unknown_after = stopped.elapsed();
    let node = nodes.get("failing").await?;
    assert_eq!(
        condition(&node, "Ready"),
        Some(("Unknown".into(), "NodeStatusUnknown".into(), "Kubelet stopped posting node status.".into()))
    );
    assert_eq!(condition(&node, "MemoryPressure").map(|c| c.0), Some("Unknown".into()));
    assert_eq!(
        condition(&node, "DiskPressure").map(|c| (c.0, c.1)),
        Some(("Unknown".into(), "NodeStatusNeverUpdated".into()))
    );

    wait_for(TIMEOUT, || async {
        nodes.get("failing").await.is_ok_and(|n| {
            let t = taints(&n);
            t.contains(&(UNREACHABLE.into(), "NoExecute".into(), true))
                && t.contains(&(UNREACHABLE.into(), "NoSchedule".into(), false))
        })
    })
    .await
    .with_context(|| format!("the silent node was never tainted unreachable: {:?}", taints(&node)))?;
    let tainted_after = stopped.elapsed();

    // "short" goes 2 s after the taint; the others stay.
    let evicted = |p: Option<Pod>| p.is_none_or(|p| p.metadata.deletion_timestamp.is_some());
    wait_for(TIMEOUT, || async { pods.get_opt("short").await.is_ok_and(evicted) })
        .await
        .context("the pod tolerating 2 s was never evicted")?;
    let evicted_after = stopped.elapsed();
    if let Some(p) = pods.get_opt("short").await? {
        let conditions = p.status.and_then(|s| s.conditions).unwrap_or_default();
        assert!(
            conditions
                .iter()
                .any(|c| c.type_ == "DisruptionTarget" && c.reason.as_deref() == Some("DeletionByTaintManager")),
            "{conditions:?}"
        );
        assert!(conditions.iter().any(|c| c.type_ == "PodScheduled"), "the other conditions stay: {conditions:?}");
    }
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    wait_for(TIMEOUT, || async {
        events.list(&ListParams::default()).await.is_ok_and(|l| {
            l.items.iter().any(|e| {
                e.reason.as_deref() == Some("TaintManagerEviction")
                    && e.involved_object.name.as_deref() == Some("short")
                    && e.message.as_deref() == Some("Marking for deletion Pod default/short")
            })
        })
    })
    .await
    .context("no TaintManagerEviction event")?;
    for name in ["forever", "default", "elsewhere"] {
        let p = pods.get(name).await?;
        assert!(p.metadata.deletion_timestamp.is_none(), "{name} was evicted");
    }
    let forever = pods.get("forever").await?;
    assert_eq!(ready(&forever).as_deref(), Some("False"), "pods of the node are not ready");
    let kept = forever.status.and_then(|s| s.conditions).unwrap_or_default();
    assert!(
        kept.iter().any(|c| c.type_ == "PodScheduled" && c.status == "True"),
        "the other conditions stay: {kept:?}"
    );
    assert_eq!(ready(&pods.get("elsewhere").await?).as_deref(), Some("True"));
    assert!(taints(&nodes.get("healthy").await?).is_empty());

    // The kubelet comes back: Ready, and the taints go.
    let back = Instant::now();
    let _failing = kubelet(client.clone(), "failing").await?;
    wait_for(TIMEOUT, || async {
        nodes
            .get("failing")
            .await
            .is_ok_and(|n| condition(&n, "Ready").is_some_and(|c| c.0 == "True") && taints(&n).is_empty())
    })
    .await
    .with_context(|| "the taints stayed after the node came back")?;
    eprintln!(
        "grace 3 s: Unknown after {unknown_after:?}, tainted after {tainted_after:?}, 2 s pod evicted after \
         {evicted_after:?}; untainted {:?} after the kubelet came back",
        back.elapsed()
    );
    assert!(pods.get("forever").await?.metadata.deletion_timestamp.is_none());
    healthy.cancel();
    Ok(())
}
