//! Static pods: from a manifest directory to running containers and a
//! mirror pod in the API (real apiserver and Docker), and without any
//! apiserver at all (a fake-runtime node).

mod support;

use k8s_openapi::api::core::v1::Pod;
use rkube_client::metrics::Registry;
use rkube_client::{Client, DeleteParams, SharedInformers};
use rkube_kubelet::host::HostInfo;
use rkube_kubelet::node::NodeConfig;
use rkube_kubelet::runtime::Runtime;
use rkube_kubelet::runtime::fake::FakeRuntime;
use rkube_kubelet::static_pods::{CONFIG_HASH, CONFIG_MIRROR, CONFIG_SOURCE};
use rkube_kubelet::{KubeletMetrics, NodeSetup, run_node};
use rkube_testkit::wait_for;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use support::{Harness, TOOLBOX};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const START: Duration = Duration::from_secs(60);

fn manifest(command: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: static-web\n  labels: {{app: web}}\nspec:\n  \
         terminationGracePeriodSeconds: 1\n  containers:\n  - name: app\n    image: {TOOLBOX}\n    \
         command: [sh, -c, '{command}']\n"
    )
}

fn annotation(p: &Pod, key: &str) -> String {
    p.metadata.annotations.as_ref().and_then(|a| a.get(key)).cloned().unwrap_or_default()
}

fn running_and_ready(p: &Pod) -> bool {
    let s = p.status.clone().unwrap_or_default();
    s.phase.as_deref() == Some("Running") && s.container_statuses.unwrap_or_default().iter().all(|c| c.ready)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_pod_runs_is_mirrored_outlives_its_mirror_and_stops_with_its_file() -> anyhow::Result<()> {
    let h = Harness::start_with_manifests().await?;
    let dir = h.manifest_dir.clone().expect("a manifest directory");
    std::fs::write(dir.join("web.yaml"), manifest("exec sleep 3600"))?;
    std::fs::write(dir.join("broken.yaml"), "apiVersion: v1\nkind: Pod\nmetadata: {name: broken}\nspec: {}\n")?;
    let name = format!("static-web-{}", h.node);

    let mirror = h.wait_pod(&name, START, running_and_ready).await?;
    let hash = annotation(&mirror, CONFIG_MIRROR);
    assert_eq!(hash.len(), 32, "the mirror carries the static pod's hash");
    assert_eq!(annotation(&mirror, CONFIG_HASH), hash);
    assert_eq!(annotation(&mirror, CONFIG_SOURCE), "file");
    assert_ne!(mirror.metadata.uid.as_deref(), Some(hash.as_str()), "the mirror has its own uid");
    assert_eq!(mirror.spec.as_ref().and_then(|s| s.node_name.as_deref()), Some(h.node.as_str()));
    let owner = mirror.metadata.owner_references.clone().unwrap_or_default();
    assert!(owner.iter().any(|o| o.kind == "Node" && o.name == h.node), "{owner:?}");
    assert!(h.pods().get_opt(&format!("broken-{}", h.node)).await?.is_none(), "a bad manifest is skipped");
    // The static pod's containers carry its own uid: the hash.
    let app = h.container_id(&hash, "app").await?;

    h.pods().delete(&name, &DeleteParams::default()).await?;
    let old_uid = mirror.metadata.uid.clone();
    let again = h
        .wait_pod(&name, START, |p| {
            p.metadata.uid != old_uid && p.metadata.deletion_timestamp.is_none() && running_and_ready(p)
        })
        .await?;
    assert_eq!(annotation(&again, CONFIG_MIRROR), hash);
    assert_eq!(h.container_id(&hash, "app").await?, app, "deleting the mirror does not touch the static pod");

    std::fs::write(dir.join("web.yaml"), manifest("exec sleep 3601"))?;
    let changed = h.wait_pod(&name, START, |p| annotation(p, CONFIG_MIRROR) != hash && running_and_ready(p)).await?;
    let new_hash = annotation(&changed, CONFIG_MIRROR);
    h.container_id(&new_hash, "app").await?;
    wait_for(Duration::from_secs(30), || async { h.containers(Some(&hash)).await.is_ok_and(|c| c.is_empty()) }).await?;

    std::fs::remove_file(dir.join("web.yaml"))?;
    wait_for(Duration::from_secs(30), || async {
        h.pods().get_opt(&name).await.is_ok_and(|p| p.is_none())
            && h.containers(Some(&new_hash)).await.is_ok_and(|c| c.is_empty())
    })
    .await?;
    h.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_pods_start_without_an_apiserver() -> anyhow::Result<()> {
    let node = format!("kt-offline-{:06x}", fastrand::u32(..0xffffff));
    let root_dir = std::env::temp_dir().join(format!("rkubelet-test-{node}"));
    let manifests = root_dir.join("manifests");
    std::fs::create_dir_all(&manifests)?;
    std::fs::write(manifests.join("web.yaml"), manifest("exec sleep 3600"))?;
    // Nothing listens there.
    let client = Client::new(&format!("http://127.0.0.1:{}", rkube_testkit::free_port()))?;
    let setup = NodeSetup {
        config: NodeConfig {
            name: node.clone(),
            node_ip: [127, 0, 0, 1].into(),
            labels: BTreeMap::new(),
            pod_cidr: Some("10.9.0.0/24".into()),
            cluster_cidr: "10.9.0.0/16".into(),
            max_pods: 10,
            kubelet_port: 0,
            host: HostInfo { hostname: node.clone(), ..HostInfo::detect() },
            heartbeat_period: Duration::from_secs(10),
            status_period: Duration::from_secs(60),
        },
        root_dir: root_dir.clone(),
        use_tmpfs: false,
        pod_manifest_path: Some(manifests),
        dns: Default::default(),
    };
    let runtime = Arc::new(FakeRuntime::new(&node));
    let shutdown = CancellationToken::new();
    let informers = SharedInformers::new(client, TaskTracker::new(), shutdown.clone());
    let task = tokio::spawn(run_node(
        informers,
        setup,
        runtime.clone(),
        KubeletMetrics::register(&Registry::new()).node(),
        shutdown.clone(),
    ));

    let name = format!("static-web-{node}");
    let started = wait_for(Duration::from_secs(30), || async {
        let containers = runtime.list_containers().await.unwrap_or_default();
        containers.iter().any(|c| c.meta.pod_name == name && c.meta.name == "app" && c.is_running())
    })
    .await;
    shutdown.cancel();
    task.await?;
    let _ = std::fs::remove_dir_all(&root_dir);
    started
}
