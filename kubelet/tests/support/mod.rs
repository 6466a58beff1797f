//! A real apiserver and an in-process rkubelet on the real Docker engine,
//! everything torn down afterwards — also when a test fails.
//!
//! Each harness has its own node name (`kt-<random>`), its own temporary
//! root dir, and its own pod CIDR: a 10.252.X.0/24 claimed through a file
//! in the temp dir (so tests running at once never share one) and not used
//! by any Docker network already. Cleanup removes every container labelled
//! with the node, the node's pod network, tmpfs mounts and the root dir.

#![allow(dead_code)]

use anyhow::{Context as _, bail};
use bollard::Docker;
use bollard::query_parameters::{ListContainersOptions, RemoveContainerOptions};
use k8s_openapi::api::core::v1::{Event, Pod};
use rkube_client::{Api, Client, ListParams};
use rkube_kubelet::{App, Args};
use rkube_testkit::{TestApiserver, wait_for};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The cluster CIDR of these tests (podnet's own tests use 10.250/16 and 10.251/16).
pub const CLUSTER_CIDR: &str = "10.252.0.0/16";
/// The toolbox image (busybox).
pub const TOOLBOX: &str = "rkube/toolbox:1.0";

/// A claimed 10.252.X.0/24, released on drop.
#[derive(Debug)]
pub struct CidrClaim {
    pub cidr: String,
    file: PathBuf,
}

impl Drop for CidrClaim {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file);
    }
}

fn process_alive(pid: &str) -> bool {
    !pid.is_empty() && std::path::Path::new("/proc").join(pid.trim()).exists()
}

async fn claim_cidr(docker: &Docker) -> anyhow::Result<CidrClaim> {
    let dir = std::env::temp_dir().join("rkubelet-test-cidrs");
    std::fs::create_dir_all(&dir)?;
    let taken: Vec<String> = docker
        .list_networks(None::<bollard::query_parameters::ListNetworksOptions>)
        .await?
        .into_iter()
        .flat_map(|n| n.ipam.and_then(|i| i.config).unwrap_or_default())
        .filter_map(|c| c.subnet)
        .collect();
    let start = fastrand::u8(..);
    for i in 0..=255u8 {
        let x = start.wrapping_add(i);
        let cidr = format!("10.252.{x}.0/24");
        if taken.contains(&cidr) {
            continue;
        }
        let file = dir.join(x.to_string());
        let claimed = std::fs::OpenOptions::new().write(true).create_new(true).open(&file).is_ok()
            || (!process_alive(&std::fs::read_to_string(&file).unwrap_or_default())
                && std::fs::remove_file(&file).is_ok()
                && std::fs::OpenOptions::new().write(true).create_new(true).open(&file).is_ok());
        if claimed {
            std::fs::write(&file, std::process::id().to_string())?;
            return Ok(CidrClaim { cidr, file });
        }
    }
    bail!("no free 10.252.X.0/24 for a test node")
}

/// Makes sure the images exist, building them with images/build.sh if not.
async fn ensure_images() -> anyhow::Result<()> {
    for image in [TOOLBOX, "rkube/pause:3.9"] {
        let ok = tokio::process::Command::new("docker").args(["image", "inspect", image]).output().await?;
        if !ok.status.success() {
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../images/build.sh");
            let out = tokio::process::Command::new("bash").arg(script).output().await?;
            if !out.status.success() {
                bail!("images/build.sh failed: {}", String::from_utf8_lossy(&out.stderr));
            }
            return Ok(());
        }
    }
    Ok(())
}

/// A running kubelet.
struct Kubelet {
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// An apiserver, a kubelet for one node, and cleanup.
pub struct Harness {
    pub apiserver: TestApiserver,
    pub client: Client,
    pub docker: Docker,
    pub node: String,
    pub root_dir: PathBuf,
    pub claim: CidrClaim,
    /// The running kubelet's /healthz and /metrics address.
    pub health: std::net::SocketAddr,
    /// `--pod-manifest-path`, if the kubelet runs static pods.
    pub manifest_dir: Option<PathBuf>,
    /// More flags for the kubelet.
    pub extra_args: Vec<String>,
    kubelet: Option<Kubelet>,
    cleaned: bool,
}

impl Harness {
    /// Starts the apiserver and a kubelet on Docker.
    pub async fn start() -> anyhow::Result<Harness> {
        Harness::start_with(false, &[]).await
    }

    /// Like [`Harness::start`], with more kubelet flags.
    pub async fn start_with_args(extra: &[&str]) -> anyhow::Result<Harness> {
        Harness::start_with(false, extra).await
    }

    /// Like [`Harness::start`], with `--pod-manifest-path` on an (empty)
    /// directory in the root dir, [`Harness::manifest_dir`].
    pub async fn start_with_manifests() -> anyhow::Result<Harness> {
        Harness::start_with(true, &[]).await
    }

    async fn start_with(manifests: bool, extra: &[&str]) -> anyhow::Result<Harness> {
        Harness::start_full(manifests, extra, |_| {}).await
    }

    /// Like [`Harness::start`], with apiserver flags that `tweak` sets.
    pub async fn start_with_apiserver(tweak: impl FnOnce(&mut rkube_apiserver::Args)) -> anyhow::Result<Harness> {
        Harness::start_full(false, &[], tweak).await
    }

    async fn start_full(
        manifests: bool,
        extra: &[&str],
        tweak: impl FnOnce(&mut rkube_apiserver::Args),
    ) -> anyhow::Result<Harness> {
        // Logs show when a test fails (nextest captures them otherwise).
        let _ = rkube_client::daemon::init_tracing("text");
        ensure_images().await?;
        let docker = Docker::connect_with_local_defaults()?.negotiate_version().await?;
        let claim = claim_cidr(&docker).await?;
        let apiserver = TestApiserver::start_with(tweak).await?;
        let client = Client::new(&apiserver.url())?;
        let node = format!("kt-{:08x}", fastrand::u32(..));
        let root_dir = std::env::temp_dir().join(format!("rkubelet-test-{node}"));
        let health = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        let manifest_dir = manifests.then(|| root_dir.join("manifests"));
        let mut h = Harness {
            apiserver,
            client,
            docker,
            node,
            root_dir,
            claim,
            health,
            manifest_dir,
            extra_args: extra.iter().map(|a| a.to_string()).collect(),
            kubelet: None,
            cleaned: false,
        };
        if let Some(dir) = &h.manifest_dir {
            std::fs::create_dir_all(dir)?;
        }
        h.start_kubelet().await?;
        Ok(h)
    }

    /// The kubelet's flags.
    pub fn args(&self) -> Args {
        use clap::Parser;
        let manifests = self.manifest_dir.iter().map(|d| format!("--pod-manifest-path={}", d.display()));
        Args::parse_from(
            [
                "rkubelet".to_string(),
                format!("--server={}", self.apiserver.url()),
                "--healthz-bind-address=127.0.0.1:0".into(),
                format!("--hostname-override={}", self.node),
                "--node-ip=127.0.0.1".into(),
                "--node-labels=rkube.io/test=kubelet,zone=a".into(),
                "--runtime=docker".into(),
                format!("--root-dir={}", self.root_dir.display()),
                format!("--pod-cidr={}", self.claim.cidr),
                format!("--cluster-cidr={CLUSTER_CIDR}"),
                "--port=0".into(),
            ]
            .into_iter()
            .chain(manifests)
            .chain(self.extra_args.iter().cloned()),
        )
    }

    /// Starts a kubelet (again).
    pub async fn start_kubelet(&mut self) -> anyhow::Result<()> {
        let app = App::build(self.args()).await?;
        self.health = app.health_addr();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(app.run(shutdown.clone()));
        self.kubelet = Some(Kubelet { shutdown, task });
        Ok(())
    }

    /// Stops the kubelet and waits for it (its containers keep running).
    pub async fn stop_kubelet(&mut self) -> anyhow::Result<()> {
        if let Some(k) = self.kubelet.take() {
            k.shutdown.cancel();
            k.task.await??;
        }
        Ok(())
    }

    /// Pods in the default namespace.
    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), "default")
    }

    /// Creates a pod from JSON and binds it to the node.
    pub async fn run_pod(&self, pod: serde_json::Value) -> anyhow::Result<Pod> {
        let pod: Pod = serde_json::from_value(pod)?;
        let created = self.pods().create(&pod).await?;
        let name = created.metadata.name.clone().unwrap_or_default();
        self.client.bind("default", &name, &self.node).await?;
        Ok(created)
    }

    /// Waits until pod `name` satisfies `pred`; the error shows its last status.
    pub async fn wait_pod(&self, name: &str, timeout: Duration, pred: impl Fn(&Pod) -> bool) -> anyhow::Result<Pod> {
        let api = self.pods();
        let pred = &pred;
        let found = wait_for(timeout, || {
            let api = api.clone();
            async move { api.get_opt(name).await.ok().flatten().is_some_and(|p| pred(&p)) }
        })
        .await;
        let pod = api.get_opt(name).await?;
        match (found, pod) {
            (Ok(()), Some(p)) => Ok(p),
            (_, p) => bail!(
                "pod {name} did not reach the expected state within {timeout:?}; last status: {}",
                p.and_then(|p| p.status)
                    .map(|s| serde_json::to_string_pretty(&s).unwrap_or_default())
                    .unwrap_or_default()
            ),
        }
    }

    /// The node's containers in Docker (all states), optionally of one pod uid.
    pub async fn containers(&self, pod_uid: Option<&str>) -> anyhow::Result<Vec<bollard::models::ContainerSummary>> {
        let mut labels = vec![format!("io.rkube.node={}", self.node)];
        if let Some(uid) = pod_uid {
            labels.push(format!("io.rkube.pod.uid={uid}"));
        }
        let opts = ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([("label".to_string(), labels)])),
            ..Default::default()
        };
        Ok(self.docker.list_containers(Some(opts)).await?)
    }

    /// Runs a command in a container and returns its output (test-side `docker exec`).
    pub async fn exec(&self, container_id: &str, cmd: &[&str]) -> anyhow::Result<String> {
        let out = tokio::process::Command::new("docker")
            .arg("exec")
            .arg(container_id)
            .args(cmd)
            .output()
            .await
            .context("running docker exec")?;
        if !out.status.success() {
            bail!("docker exec {cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The Docker id of container `name` of pod `pod_uid` (the running one).
    pub async fn container_id(&self, pod_uid: &str, name: &str) -> anyhow::Result<String> {
        self.containers(Some(pod_uid))
            .await?
            .into_iter()
            .filter(|c| {
                c.labels.as_ref().and_then(|l| l.get("io.rkube.container.name")).map(String::as_str) == Some(name)
            })
            .find(|c| matches!(c.state, Some(bollard::models::ContainerSummaryStateEnum::RUNNING)))
            .and_then(|c| c.id)
            .with_context(|| format!("no running container {name} in pod {pod_uid}"))
    }

    /// The Docker ids of every instance (any state) of container `name` of pod `pod_uid`.
    pub async fn container_ids(&self, pod_uid: &str, name: &str) -> anyhow::Result<Vec<String>> {
        Ok(self
            .containers(Some(pod_uid))
            .await?
            .into_iter()
            .filter(|c| {
                c.labels.as_ref().and_then(|l| l.get("io.rkube.container.name")).map(String::as_str) == Some(name)
            })
            .filter_map(|c| c.id)
            .collect())
    }

    /// A counter or gauge from the kubelet's /metrics.
    pub async fn metric(&self, name: &str) -> anyhow::Result<f64> {
        let (_, body) = rkube_testkit::http_get(&format!("http://{}/metrics", self.health)).await?;
        let line = body
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .with_context(|| format!("no metric {name}"))?;
        Ok(line.split_whitespace().nth(1).unwrap_or_default().parse()?)
    }

    /// The reasons of events about pod `name`.
    pub async fn event_reasons(&self, name: &str) -> anyhow::Result<Vec<String>> {
        let events: Api<Event> = Api::namespaced(self.client.clone(), "default");
        Ok(events
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter(|e| e.involved_object.name.as_deref() == Some(name))
            .filter_map(|e| e.reason)
            .collect())
    }

    /// Waits until the events about pod `name` include every one of
    /// `reasons` (events are written in the background); fails naming the
    /// reasons seen.
    pub async fn wait_for_events(&self, name: &str, reasons: &[&str]) -> anyhow::Result<()> {
        let all_seen = |seen: &[String]| reasons.iter().all(|r| seen.iter().any(|s| s == r));
        let found = wait_for(Duration::from_secs(20), || async {
            self.event_reasons(name).await.is_ok_and(|seen| all_seen(&seen))
        })
        .await;
        if found.is_err() {
            bail!("no events {reasons:?} about {name}; saw {:?}", self.event_reasons(name).await?);
        }
        Ok(())
    }

    /// Stops the kubelet and removes everything the test made.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        self.stop_kubelet().await?;
        cleanup(&self.docker, &self.node, &self.claim.cidr, &self.root_dir).await;
        self.cleaned = true;
        Ok(())
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if self.cleaned {
            return;
        }
        if let Some(k) = self.kubelet.take() {
            k.shutdown.cancel();
            k.task.abort();
        }
        let (node, cidr, root) = (self.node.clone(), self.claim.cidr.clone(), self.root_dir.clone());
        // Drop cannot await: clean up on a thread with its own runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
            rt.block_on(async {
                if let Ok(docker) = Docker::connect_with_local_defaults()
                    && let Ok(docker) = docker.negotiate_version().await
                {
                    cleanup(&docker, &node, &cidr, &root).await;
                }
            });
        })
        .join();
    }
}

/// Removes the node's containers (until none reappear), its pod network,
/// tmpfs mounts under the root dir and the root dir.
async fn cleanup(docker: &Docker, node: &str, cidr: &str, root: &PathBuf) {
    let list = || async {
        let opts = ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([("label".to_string(), vec![format!("io.rkube.node={node}")])])),
            ..Default::default()
        };
        docker.list_containers(Some(opts)).await.unwrap_or_default()
    };
    let _ = wait_for(Duration::from_secs(20), || async {
        let found = list().await;
        for c in &found {
            if let Some(id) = &c.id {
                let opts = RemoveContainerOptions { force: true, v: true, ..Default::default() };
                let _ = docker.remove_container(id, Some(opts)).await;
            }
        }
        found.is_empty()
    })
    .await;
    let network = rkube_podnet::bridge::network_name(node);
    if let Ok(Some(_)) = rkube_podnet::bridge::inspect(docker, &network).await {
        match rkube_podnet::PodNetwork::ensure(docker, node, cidr, CLUSTER_CIDR).await {
            Ok(net) => {
                let _ = net.teardown(docker).await;
            }
            Err(_) => {
                let _ = rkube_podnet::bridge::remove(docker, &network).await;
            }
        }
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points: Vec<String> = rkube_kubelet::volumes::parse_mountinfo(&mounts)
        .into_iter()
        .filter(|p| p.starts_with(root))
        .map(|p| p.display().to_string())
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = tokio::process::Command::new("umount").arg(&p).output().await;
    }
    let _ = std::fs::remove_dir_all(root);
}
