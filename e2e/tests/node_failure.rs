//! Node failure on a whole cluster of real binaries (two nodes on Docker):
//! the kubelet of one node is killed with SIGKILL; the node-lifecycle
//! controller marks the node Unknown and taints it, the taint eviction
//! controller evicts its pod once the default toleration (5 s here, through
//! the apiserver's DefaultTolerationSeconds flags) runs out, and the
//! ReplicationController replaces it on the other node. When the kubelet
//! is back, the node is Ready and untainted, and the evicted pod is gone.

use anyhow::bail;
use k8s_openapi::api::core::v1::{Node, Pod};
use rkube_client::{Api, ListParams};
use rkube_e2e::{Cluster, Options};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(120);
const UNREACHABLE: &str = "node.kubernetes.io/unreachable";

const RC: &str = "apiVersion: v1
kind: ReplicationController
metadata: {name: survivor}
spec:
  replicas: 2
  selector: {app: survivor}
  template:
    metadata:
      labels: {app: survivor}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {name: c, image: 'rkube/toolbox:1.0', imagePullPolicy: Never, command: [sleep, '3600']}
";

/// Polls `check` every 300 ms until it holds, or fails with `what` and the daemons' logs.
async fn eventually<F, Fut>(cluster: &Cluster, what: &str, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<bool>>,
{
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match check().await {
            Ok(true) => return Ok(()),
            Ok(false) | Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(300)).await,
            Ok(false) => bail!("{what}: not within {TIMEOUT:?}\n{}", cluster.logs()),
            Err(e) => bail!("{what}: {e}\n{}", cluster.logs()),
        }
    }
}

fn ready_status(node: &Node) -> Option<(String, String)> {
    let c = node.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready")?;
    Some((c.status.clone(), c.reason.clone().unwrap_or_default()))
}

fn taints(node: &Node) -> Vec<(String, String)> {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|t| (t.key, t.effect))
        .collect()
}

fn node_of(p: &Pod) -> String {
    p.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default()
}

fn running_and_ready(p: &Pod) -> bool {
    let status = p.status.as_ref();
    status.and_then(|s| s.phase.as_deref()) == Some("Running")
        && status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

#[tokio::test]
async fn a_dead_kubelets_pod_is_evicted_and_replaced_and_the_node_recovers() -> anyhow::Result<()> {
    let mut cluster = Cluster::start_with(Options {
        nodes: 2,
        apiserver_flags: &["--default-not-ready-toleration-seconds=5", "--default-unreachable-toleration-seconds=5"],
        controller_manager_flags: &["--node-monitor-grace-period=20s", "--node-monitor-period=1s"],
        ..Options::default()
    })
    .await?;
    let nodes: Api<Node> = Api::all(cluster.client.clone());
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), "default");
    let selector = ListParams::default().labels("app=survivor");
    // Nodes come up NotReady (no pod network yet) and tainted; wait until
    // the controller has seen them Ready.
    eventually(&cluster, "both nodes untainted", || async {
        let list = nodes.list(&ListParams::default()).await?.items;
        Ok(list.len() == 2 && list.iter().all(|n| taints(n).is_empty()))
    })
    .await?;

    cluster.create(RC)?;
    eventually(&cluster, "2 running survivor pods", || async {
        let list = pods.list(&selector).await?.items;
        Ok(list.len() == 2 && list.iter().all(running_and_ready))
    })
    .await?;
    let before = pods.list(&selector).await?.items;
    let placement: Vec<String> = before.iter().map(node_of).collect();
    eprintln!("survivor pods on {placement:?}");
    let tolerations = before[0].spec.as_ref().and_then(|s| s.tolerations.clone()).unwrap_or_default();
    assert!(
        tolerations.iter().any(|t| t.key.as_deref() == Some(UNREACHABLE) && t.toleration_seconds == Some(5)),
        "DefaultTolerationSeconds with the apiserver's flag: {tolerations:?}"
    );
    let victim_node = placement[0].clone();
    let victim = cluster.nodes.iter().position(|n| *n == victim_node).expect("a pod runs on a cluster node");
    let other_node = cluster.nodes[1 - victim].clone();
    let evicted: Vec<String> =
        before.iter().filter(|p| node_of(p) == victim_node).filter_map(|p| p.metadata.name.clone()).collect();

    cluster.kill_kubelet(victim)?;
    let killed = Instant::now();
    eventually(&cluster, "the node turns Unknown", || async {
        Ok(ready_status(&nodes.get(&victim_node).await?) == Some(("Unknown".into(), "NodeStatusUnknown".into())))
    })
    .await?;
    let unknown_after = killed.elapsed();
    eventually(&cluster, "the node is tainted unreachable", || async {
        let t = taints(&nodes.get(&victim_node).await?);
        Ok(t.contains(&(UNREACHABLE.into(), "NoExecute".into()))
            && t.contains(&(UNREACHABLE.into(), "NoSchedule".into())))
    })
    .await?;
    let tainted_after = killed.elapsed();
    eventually(&cluster, "the dead node's pod is evicted", || async {
        for name in &evicted {
            if pods.get_opt(name).await?.is_some_and(|p| p.metadata.deletion_timestamp.is_none()) {
                return Ok(false);
            }
        }
        Ok(true)
    })
    .await?;
    let evicted_after = killed.elapsed();
    eventually(&cluster, "2 running survivor pods on the other node", || async {
        let live: Vec<Pod> =
            pods.list(&selector).await?.items.into_iter().filter(|p| p.metadata.deletion_timestamp.is_none()).collect();
        Ok(live.len() == 2 && live.iter().all(|p| running_and_ready(p) && node_of(p) == other_node))
    })
    .await?;
    let replaced_after = killed.elapsed();
    eprintln!(
        "kubelet killed (grace 20 s, tolerations 5 s): node Unknown after {unknown_after:?}, tainted after \
         {tainted_after:?}, pod evicted after {evicted_after:?}, replacement Running after {replaced_after:?}"
    );

    // The kubelet comes back: Ready, untainted, and the evicted pod finishes.
    cluster.spawn_kubelet(victim)?;
    let restarted = Instant::now();
    eventually(&cluster, "the node is Ready and untainted", || async {
        let n = nodes.get(&victim_node).await?;
        Ok(ready_status(&n).is_some_and(|(s, _)| s == "True") && taints(&n).is_empty())
    })
    .await?;
    let recovered_after = restarted.elapsed();
    eventually(&cluster, "the evicted pod is gone", || async {
        for name in &evicted {
            if pods.get_opt(name).await?.is_some() {
                return Ok(false);
            }
        }
        Ok(true)
    })
    .await?;
    eprintln!(
        "kubelet restarted: node Ready and untainted after {recovered_after:?}, evicted pod gone after {:?}",
        restarted.elapsed()
    );
    let live: Vec<Pod> =
        pods.list(&selector).await?.items.into_iter().filter(|p| p.metadata.deletion_timestamp.is_none()).collect();
    assert_eq!(live.len(), 2, "the RC still has 2 pods");
    Ok(())
}
